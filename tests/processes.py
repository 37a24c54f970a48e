"""Waiting for a server a test started (Envoy, Prometheus) to answer its readiness URL."""

from __future__ import annotations

import subprocess
import time
import urllib.request


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
