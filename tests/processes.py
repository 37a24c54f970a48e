"""Servers a test starts: waiting for one (Envoy, Prometheus) to answer its readiness URL, and the loopback
HTTP server every stand-in upstream is built on."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from http.server import ThreadingHTTPServer


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A thread-per-connection HTTP server whose listen backlog holds a burst of connections.

    socketserver.TCPServer listens with request_queue_size = 5. When more connections arrive at once
    (Envoy opening 24 upstream connections as 24 exchanges finish their checks together), Linux drops the
    SYNs past the accept queue and the client retransmits after 1 s (TCP_TIMEOUT_INIT), which is exactly
    a test cluster's 1 s connect_timeout: Envoy answered one exchange 503 in a CI run. 128 is
    SOMAXCONN's old default and more than any test opens at once.
    """

    daemon_threads = True
    request_queue_size = 128


def wait_until_ready(url: str, proc: subprocess.Popen[bytes], seconds: float) -> bool:
    """Poll `url` until it answers 200 (True), or until `proc` exits or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.2)
