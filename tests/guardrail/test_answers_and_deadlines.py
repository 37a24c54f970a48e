"""Answer checks of every answer shape AI Gateway routes, compressed and textless answers, the per-message
deadline, the parse pool and a cancelled stream (the processor without Envoy; tests/guardrail/
test_envoy_ext_proc.py runs the same under real Envoy)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from guardrail import memory, processor
from guardrail.categories import Verdict
from guardrail.classifier import OpenAIClassifier
from guardrail.openai_text import StreamText, response_text
from guardrail.policy import parse_policy

UNSAFE = "ATTACK-PLAN"


class _Rule:
    """Unsafe (S1) when the classified turn holds UNSAFE; records the answers it was asked about."""

    def __init__(self) -> None:
        self.answers: list[str | None] = []

    async def classify(self, prompt: str, answer: str | None = None) -> Verdict:
        self.answers.append(answer)
        text = answer if answer is not None else prompt
        return Verdict(False, ("S1",)) if UNSAFE in text else Verdict(True)


def _headers(values: dict[str, str]) -> pb.HttpHeaders:
    return pb.HttpHeaders(
        headers=base_pb2.HeaderMap(
            headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in values.items()]
        )
    )


def _policy(failure_mode: str = "closed") -> Any:
    return parse_policy(
        json.dumps({"default": {"block": ["S1"], "check_responses": True, "failure_mode": failure_mode}})
    )


def _exchange(
    servicer: processor.GuardrailProcessor,
    path: str,
    request: dict[str, Any],
    response_headers: dict[str, str],
    chunks: list[bytes],
) -> list[pb.ProcessingResponse]:
    """One exchange's messages through `servicer`, as Envoy sends them; the replies, one per message."""

    async def go() -> list[pb.ProcessingResponse]:
        ex = processor.Exchange()
        replies = [
            await servicer.handle(
                pb.ProcessingRequest(request_headers=_headers({":path": path, ":method": "POST"})), ex
            ),
            await servicer.handle(
                pb.ProcessingRequest(
                    request_body=pb.HttpBody(body=json.dumps(request).encode(), end_of_stream=True)
                ),
                ex,
            ),
            await servicer.handle(pb.ProcessingRequest(response_headers=_headers(response_headers)), ex),
        ]
        if replies[-1].WhichOneof("response") == "immediate_response":
            return replies
        for i, chunk in enumerate(chunks):
            body = pb.HttpBody(body=chunk, end_of_stream=i == len(chunks) - 1)
            replies.append(await servicer.handle(pb.ProcessingRequest(response_body=body), ex))
        return replies

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(go())
    finally:
        loop.close()


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


JSON = {":status": "200", "content-type": "application/json"}
SSE = {":status": "200", "content-type": "text/event-stream"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
RESPONSES = {"model": "m", "input": "hi"}
MESSAGES = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("path", "request_body", "answer"),
    [
        (
            "/v1/responses",
            RESPONSES,
            {
                "object": "response",
                "output": [
                    {"type": "reasoning", "summary": []},
                    {"type": "message", "content": [{"type": "output_text", "text": UNSAFE}]},
                ],
            },
        ),
        ("/v1/messages", MESSAGES, {"type": "message", "content": [{"type": "text", "text": UNSAFE}]}),
        ("/v1/chat/completions", CHAT, {"choices": [{"message": {"content": UNSAFE}}]}),
    ],
    ids=["responses", "anthropic-messages", "chat"],
)
def test_json_answers_of_each_api_are_checked(path: str, request_body: Any, answer: Any) -> None:
    classifier = _Rule()
    replies = _exchange(
        processor.GuardrailProcessor(_policy(), classifier),
        path,
        request_body,
        JSON,
        [json.dumps(answer).encode()],
    )
    assert replies[-1].immediate_response.status.code == 400
    assert classifier.answers[-1] == UNSAFE


@pytest.mark.parametrize(
    ("path", "request_body", "events"),
    [
        (
            "/v1/responses",
            RESPONSES,
            [
                {"type": "response.created", "response": {}},
                {"type": "response.output_text.delta", "delta": "Here: "},
                {"type": "response.output_text.delta", "delta": UNSAFE},
                {"type": "response.completed", "response": {}},
            ],
        ),
        (
            "/v1/messages",
            MESSAGES,
            [
                {"type": "message_start", "message": {}},
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Here: "},
                },
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": UNSAFE}},
                {"type": "message_stop"},
            ],
        ),
    ],
    ids=["responses", "anthropic-messages"],
)
def test_streamed_answers_of_each_api_are_checked(path: str, request_body: Any, events: list[Any]) -> None:
    classifier = _Rule()
    chunks = [_sse(e) for e in events] + [b""]
    replies = _exchange(
        processor.GuardrailProcessor(_policy(), classifier, interval_chars=10_000),
        path,
        request_body,
        SSE,
        chunks,
    )
    assert classifier.answers[-1] == "Here: " + UNSAFE
    mutated = [
        r.response_body.response.body_mutation.body
        for r in replies[3:]
        if r.response_body.response.body_mutation.body
    ]
    assert len(mutated) == 1 and b"content_filter" in mutated[0]


def test_a_last_event_without_its_blank_line_is_checked() -> None:
    classifier = _Rule()
    event = b"data: " + json.dumps({"choices": [{"delta": {"content": UNSAFE}}]}).encode()
    replies = _exchange(
        processor.GuardrailProcessor(_policy(), classifier),
        "/v1/chat/completions",
        {**CHAT, "stream": True},
        SSE,
        [_sse({"choices": [{"delta": {"content": "hello "}}]}), event],
    )
    assert classifier.answers == [None, "hello " + UNSAFE]
    assert b"content_filter" in replies[-1].response_body.response.body_mutation.body


def test_accept_encoding_is_removed_only_where_the_answer_is_checked() -> None:
    def removed(policy: str) -> list[str]:
        servicer = processor.GuardrailProcessor(parse_policy(policy), _Rule())
        reply = _exchange(servicer, "/v1/chat/completions", CHAT, JSON, [])[0]
        return list(reply.request_headers.response.header_mutation.remove_headers)

    assert removed('{"default": {"check_responses": true}}') == ["accept-encoding"]
    assert removed("{}") == []


@pytest.mark.parametrize(("failure_mode", "served"), [("closed", False), ("open", True)])
@pytest.mark.parametrize("media", ["application/json", "text/event-stream"])
def test_a_compressed_answer_follows_the_failure_mode(
    failure_mode: str, served: bool, media: str, caplog: pytest.LogCaptureFixture
) -> None:
    classifier = _Rule()
    answer = gzip.compress(json.dumps({"choices": [{"message": {"content": UNSAFE}}]}).encode())
    headers = {":status": "200", "content-type": media, "content-encoding": "gzip"}
    with caplog.at_level("INFO", logger="guardrail.audit"):
        replies = _exchange(
            processor.GuardrailProcessor(_policy(failure_mode), classifier),
            "/v1/chat/completions",
            CHAT,
            headers,
            [answer],
        )
    assert (replies[2].WhichOneof("response") == "response_headers") is served
    if not served:
        assert replies[2].immediate_response.status.code == 503
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "guardrail.audit"]
    assert lines[-1]["phase"] == "response" and "gzip" in lines[-1]["error"]
    assert classifier.answers == [None]  # never classified as if it were text


@pytest.mark.parametrize(("failure_mode", "status"), [("closed", 503), ("open", None)])
def test_a_checked_answer_without_text_follows_the_failure_mode(
    failure_mode: str, status: int | None, caplog: pytest.LogCaptureFixture
) -> None:
    tool_call = {"choices": [{"message": {"content": None, "tool_calls": [{"id": "1"}]}}]}
    with caplog.at_level("INFO", logger="guardrail.audit"):
        replies = _exchange(
            processor.GuardrailProcessor(_policy(failure_mode), _Rule()),
            "/v1/chat/completions",
            CHAT,
            JSON,
            [json.dumps(tool_call).encode()],
        )
    assert (replies[-1].immediate_response.status.code or None) == status
    line = [json.loads(r.getMessage()) for r in caplog.records if r.name == "guardrail.audit"][-1]
    assert line["decision"] == f"error_{'blocked' if status else 'allowed'}" and "no text" in line["error"]


def test_stream_text_is_linear() -> None:
    # 200,000 one-character deltas: with `text +=` on a str this was quadratic in the answer's length.
    event = _sse({"choices": [{"delta": {"content": "a"}}]})
    stream = StreamText()
    began = time.perf_counter()
    for _ in range(200_000):
        stream.feed(event)
    assert len(stream) == 200_000 and stream.text == "a" * 200_000
    assert time.perf_counter() - began < 10


def test_response_text_reads_refusals_and_skips_tool_calls() -> None:
    body = {
        "output": [
            {"type": "message", "content": [{"type": "refusal", "refusal": "no"}]},
            {"type": "function_call"},
        ]
    }
    assert response_text(json.dumps(body).encode()) == "no"


@pytest.fixture(scope="module")
def dribbling_classifier() -> Iterator[str]:
    """A classifier that sends its (safe) answer in five pieces 1.2 s apart: each read is within httpx's
    per-phase timeout, the whole call is 6 s (the reviewer's tmo.py)."""
    body = json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 1,
            "model": "lg",
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "safe"}}
            ],
        }
    ).encode()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        )
        step = len(body) // 5 + 1
        try:
            for i in range(0, len(body), step):
                time.sleep(1.2)
                conn.sendall(body[i : i + step])
        except OSError:
            pass
        conn.close()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    server.close()


@pytest.mark.parametrize(
    ("failure_mode", "kind"), [("closed", "immediate_response"), ("open", "request_body")]
)
def test_a_dribbling_classifier_is_cut_at_the_deadline(
    dribbling_classifier: str, failure_mode: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    policy = parse_policy(json.dumps({"default": {"failure_mode": failure_mode}}))
    servicer = processor.GuardrailProcessor(
        policy, OpenAIClassifier(dribbling_classifier, "lg", timeout_s=2.0), deadline_s=2.5
    )
    began = time.monotonic()
    with caplog.at_level("INFO", logger="guardrail.audit"):
        replies = _exchange(servicer, "/v1/chat/completions", CHAT, JSON, [])
    elapsed = time.monotonic() - began
    # Under Envoy's messageTimeout (3 s for a 2 s classifier timeout), so the client's failure_mode decides.
    assert elapsed < 3.0, elapsed
    assert replies[1].WhichOneof("response") == kind
    line = next(json.loads(r.getMessage()) for r in caplog.records if r.name == "guardrail.audit")
    assert "deadline" in line["error"]


def test_large_bodies_are_parsed_in_the_pool() -> None:
    parsed: list[int] = []

    class Recording(ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            parsed.append(len(args[0]))
            return super().submit(fn, *args, **kwargs)

    pool = Recording(1)
    servicer = processor.GuardrailProcessor(parse_policy("{}"), _Rule(), parse_pool_factory=lambda: pool)
    small = {"model": "m", "messages": [{"role": "user", "content": "x" * 100}]}
    large = {"model": "m", "messages": [{"role": "user", "content": "x" * (memory.OFF_LOOP_BYTES + 1)}]}
    _exchange(servicer, "/v1/chat/completions", small, JSON, [b"{}"])
    assert parsed == []
    _exchange(servicer, "/v1/chat/completions", large, JSON, [b"{}"])
    assert len(parsed) == 1 and parsed[0] > memory.OFF_LOOP_BYTES
    pool.shutdown()


def test_a_cancelled_stream_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    class Slow:
        async def classify(self, prompt: str, answer: str | None = None) -> Verdict:
            await asyncio.sleep(5)
            return Verdict(True)

    servicer = processor.GuardrailProcessor(parse_policy("{}"), Slow())

    async def requests() -> Any:
        yield pb.ProcessingRequest(request_headers=_headers({":path": "/v1/chat/completions"}))
        yield pb.ProcessingRequest(
            request_body=pb.HttpBody(body=json.dumps(CHAT).encode(), end_of_stream=True)
        )

    async def go() -> None:
        async def consume() -> None:
            async for _ in servicer.Process(requests(), None):  # type: ignore[arg-type]
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    loop = asyncio.new_event_loop()
    with caplog.at_level(logging.INFO, logger="guardrail"):
        try:
            loop.run_until_complete(go())
        finally:
            loop.close()
    lines = [r for r in caplog.records if r.name == "guardrail"]
    assert len(lines) == 1 and "stream_cancelled" in lines[0].getMessage() and lines[0].exc_info is None
