"""The CPU engine for real: fetch the tiny model, `python -m model_image serve` it with
ENGINE=transformers on a loopback port, and drive it with the official openai client.

One server for the module; the last test stops it with SIGTERM while a stream is open."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
from image_helpers import REPO_ROOT, free_port, launcher_env, run_launcher, stop, wait_http

from tests import endpoint_checks

SERVED = "acme/tiny-chat"
# The module server's drain deadline: far above how long the drained reply takes even on a loaded machine.
# The launcher runs the engine under model_image.drain, which SIGKILLs it SHUTDOWN_TIMEOUT seconds after SIGTERM
# (model_image/serve.py): with 10 s and a 400-token reply (14.5 s measured on a loaded 2-core machine),
# the kill cut the stream ("incomplete chunked read") -- the deadline working, not the drain failing.
# test_sigterm_drain_is_cut_at_shutdown_timeout tests the deadline itself, with its own server.
SHUTDOWN_TIMEOUT = 120
# Long enough that the stream is still open when uvicorn begins its shutdown (it polls its exit flag every
# 0.1 s), short enough to drain in seconds: about 1 s idle, about 7 s at load average 6 on 2 cores.
DRAINED_TOKENS = 200


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key="unused", max_retries=0, timeout=60)


def start(tiny_model: Path, work: Path, shutdown_timeout: int) -> Server:
    port = free_port()
    env = launcher_env(
        MODEL_URI=f"file://{tiny_model}",
        MODEL_DIR=str(work / "models"),
        ENGINE="transformers",
        SERVED_MODEL_NAME=SERVED,
        HOST="127.0.0.1",
        PORT=str(port),
        SHUTDOWN_TIMEOUT=str(shutdown_timeout),
        HOME=str(work / "home"),
        XDG_CACHE_HOME=str(work / "home" / ".cache"),
    )
    fetched = run_launcher("fetch", env=env)
    assert fetched.returncode == 0, fetched.stderr
    log = work / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "model_image", "serve"], env=env, cwd=REPO_ROOT, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health", 120, proc)
    except Exception:
        stop(proc)
        raise AssertionError(f"server did not start:\n{log.read_text()[-4000:]}") from None
    return Server(proc, base, log)


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start(tiny_model, tmp_path_factory.mktemp("serve"), SHUTDOWN_TIMEOUT)
    yield srv
    stop(srv.proc)


def test_models_list_names_the_served_model(server: Server) -> None:
    endpoint_checks.assert_models_list(server.client(), SERVED)


def test_chat_completion_returns_text_and_usage(server: Server) -> None:
    endpoint_checks.assert_chat_completion(server.client(), SERVED, max_tokens=8)


def test_streaming_chat_yields_chunks_and_finishes(server: Server) -> None:
    endpoint_checks.assert_streaming_chat(server.client(), SERVED, max_tokens=6)


def test_unknown_model_is_a_client_error(server: Server) -> None:
    endpoint_checks.assert_unknown_model_rejected(server.client())


def test_sigterm_drains_the_open_stream_and_exits_cleanly(server: Server) -> None:
    # Runs last in this module: it stops the shared server.
    rest = endpoint_checks.open_stream(server.client(), SERVED, DRAINED_TOKENS)
    sent = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    endpoint_checks.assert_drained(rest, DRAINED_TOKENS)
    code = server.proc.wait(timeout=SHUTDOWN_TIMEOUT + 15)
    took = time.monotonic() - sent
    log = server.log.read_text()
    # uvicorn logs this only when a response was still in flight once shutdown began: the stream was
    # drained, not already finished before the signal took effect.
    assert "Waiting for connections to close" in log, log[-3000:]
    # 0: the engine drained and ended on the SIGTERM it was passed (model_image/drain.py), not 143.
    assert code == 0, log[-3000:]
    assert took < SHUTDOWN_TIMEOUT, "the engine was killed at the deadline instead of finishing the drain"
    assert "Finished server process" in log


def test_sigterm_drain_is_cut_at_shutdown_timeout(tiny_model: Path, tmp_path: Path) -> None:
    # Three long replies (several seconds of work in all) and SHUTDOWN_TIMEOUT=2: the engine is
    # killed about 2 s after SIGTERM instead of draining them to the end.
    srv = start(tiny_model, tmp_path, shutdown_timeout=2)
    started = threading.Barrier(4)

    def long_reply() -> None:
        with contextlib.suppress(Exception):  # the kill cuts these streams; that is the point
            stream = srv.client().chat.completions.create(
                model=SERVED, messages=[{"role": "user", "content": "go on"}], max_tokens=2000, stream=True
            )
            for i, _ in enumerate(stream):
                if i == 0:
                    started.wait(30)

    readers = [threading.Thread(target=long_reply, daemon=True) for _ in range(3)]
    try:
        for t in readers:
            t.start()
        started.wait(30)
        sent = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        code = srv.proc.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        stop(srv.proc)
        for t in readers:
            t.join(10)
    assert code in (128 + signal.SIGKILL, -signal.SIGKILL), srv.log.read_text()[-3000:]
    assert 1.5 < took < 8
