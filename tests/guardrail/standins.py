"""Stand-ins for the guardrail test, each an HTTP server on a loopback port in a thread:

- `model_server`: an OpenAI-compatible chat endpoint. It answers "echo: <last user message>", or, when
  the message contains BAD_ANSWER_TRIGGER, an answer holding CLASSIFIER_UNSAFE_WORD (so an answer check
  has something to find that the prompt did not hold). `stream: true` gets one SSE chunk per word, flushed
  one at a time, then `data: [DONE]`, as vLLM's server streams. A message containing SLOW_ANSWER_TRIGGER
  is answered after SLOW_ANSWER_S seconds (an engine busy generating: the ext_proc stream stays open).
- `classifier`: a Llama Guard stand-in on /v1/chat/completions. It reads the last message of the
  conversation (the turn Llama Guard classifies) and answers by rule: CLASSIFIER_UNSAFE_WORD -> "unsafe\\nS1",
  CLASSIFIER_FLAG_WORD -> "unsafe\\nS6", CLASSIFIER_FAIL_WORD -> HTTP 500, CLASSIFIER_TOO_LONG_WORD ->
  vLLM's HTTP 400 for a prompt over max_model_len (VLLM_CONTEXT_LENGTH_ERROR), anything else -> "safe". It
  records every conversation it was asked about.
Both answer GET /v1/models with a one-model list (the engine's model list, a path the guardrail passes).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.processes import LoopbackHTTPServer

CLASSIFIER_UNSAFE_WORD = "ATTACK-PLAN"
CLASSIFIER_FLAG_WORD = "MEDICAL-DOSE"
CLASSIFIER_FAIL_WORD = "CLASSIFIER-CRASH"
CLASSIFIER_TOO_LONG_WORD = "CLASSIFIER-CONTEXT-OVERFLOW"
BAD_ANSWER_TRIGGER = "tell-me-something-bad"
SLOW_ANSWER_TRIGGER = "take-your-time"
SLOW_ANSWER_S = 6.0
#: vLLM's OpenAI server's answer to a prompt longer than max_model_len: HTTP 400, the ErrorResponse shape
#: {"error": {"message", "type": "BadRequestError", "param", "code": 400}} and its length check's wording.
VLLM_CONTEXT_LENGTH_ERROR = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens. However, your request has 9013 input "
        "tokens. Please reduce the length of the input messages.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
}
#: The words the stand-in model streams before and after the unsafe word when triggered.
BAD_ANSWER_WORDS = ["Here", "is", "a", "long", "and", "harmless", "opening", "sentence", "before",
                    "the", "part", "that", "matters:", CLASSIFIER_UNSAFE_WORD, "and", "then", "more",
                    "words", "that", "must", "never", "arrive", "at", "the", "client", "end."]  # fmt: skip


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def model_answer(body: dict[str, Any]) -> str:
    """The stand-in model's answer to a chat request body."""
    asked = _last_user_text(body)
    if BAD_ANSWER_TRIGGER in asked:
        return " ".join(BAD_ANSWER_WORDS)
    return f"echo: {asked}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": None})
        if self.path.split("?")[0] == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "x"}]})
        else:
            self.send_json(404, {"error": {"message": f"no {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.server.respond(self, body)

    def send_json(self, status: int, data: dict[str, Any]) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


class _Server(LoopbackHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []

    def respond(self, handler: _Handler, body: dict[str, Any]) -> None:
        raise NotImplementedError


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class ModelServer(_Server):
    def respond(self, handler: _Handler, body: dict[str, Any]) -> None:
        model = body.get("model", "standin")
        text = model_answer(body)
        if SLOW_ANSWER_TRIGGER in _last_user_text(body):
            time.sleep(SLOW_ANSWER_S)
        if handler.path.split("?")[0].endswith("/v1/responses"):
            self.respond_responses(handler, body, model)
            return
        if not body.get("stream"):
            handler.send_json(200, _completion(model, text))
            return
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()

        def chunk(data: bytes) -> None:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            handler.wfile.flush()

        for i, word in enumerate(text.split(" ")):
            delta = {"content": word if i == 0 else " " + word}
            event = {
                "id": "chatcmpl-standin",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
            time.sleep(0.01)  # separate chunks, as a real engine's tokens are
        chunk(b"data: [DONE]\n\n")
        chunk(b"")

    def respond_responses(self, handler: _Handler, body: dict[str, Any], model: str) -> None:
        """The Responses API (`input` a string): the answer as one `output_text` message, or streamed as
        `response.output_text.delta` events (one per word) between response.created and response.completed,
        as OpenAI's Responses stream is shaped."""
        asked = body.get("input") if isinstance(body.get("input"), str) else ""
        text = model_answer({"messages": [{"role": "user", "content": asked}]})
        if not body.get("stream"):
            message = {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text}],
            }
            handler.send_json(200, {"id": "resp", "object": "response", "model": model, "output": [message]})
            return
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()

        def event(data: dict[str, Any]) -> None:
            raw = f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
            handler.wfile.flush()

        event({"type": "response.created", "response": {"id": "resp", "status": "in_progress"}})
        for i, word in enumerate(text.split(" ")):
            event({"type": "response.output_text.delta", "item_id": "msg", "output_index": 0,
                   "content_index": 0, "delta": word if i == 0 else " " + word})  # fmt: skip
            time.sleep(0.01)
        event({"type": "response.completed", "response": {"id": "resp", "status": "completed"}})
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()


class Classifier(_Server):
    def respond(self, handler: _Handler, body: dict[str, Any]) -> None:
        messages = body.get("messages") or []
        last = messages[-1]["content"] if messages else ""
        if CLASSIFIER_FAIL_WORD in last:
            handler.send_json(500, {"error": {"message": "stand-in failure", "type": "server_error"}})
            return
        if CLASSIFIER_TOO_LONG_WORD in last:
            handler.send_json(400, VLLM_CONTEXT_LENGTH_ERROR)
            return
        if CLASSIFIER_UNSAFE_WORD in last:
            verdict = "unsafe\nS1"
        elif CLASSIFIER_FLAG_WORD in last:
            verdict = "unsafe\nS6"
        else:
            verdict = "safe"
        handler.send_json(200, _completion(body.get("model", "llama-guard"), verdict))


@contextmanager
def serving(server: _Server) -> Iterator[_Server]:
    """Serve `server` in a daemon thread; shut it down on exit. `server.server_address[1]` is its port."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
