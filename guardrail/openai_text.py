"""The text inside OpenAI API bodies: what a client asked and what the model answered (a JSON response, or a
`text/event-stream` of chunks).

Request shapes: every path that Envoy AI Gateway v1.1.0 routes (cmd/extproc/mainlib/main.go:326-353) and
that carries a person's text, as AI Gateway's own schema reads it (internal/apischema at v1.1.0):
- /v1/chat/completions `messages` (openai/openai.go ChatCompletionRequest): a message's `content` is a string
  or a list of parts, of which `{"type": "text", "text": ...}` carry text (image, audio and file parts are
  not classified);
- /v1/completions `prompt` (openai/openai.go CompletionRequest, PromptUnion): a string or a list of strings
  is read; token ids (a list of ints, or of lists of ints) are not text the processor can read;
- /v1/responses `instructions` (a string) and `input` (openai/openai.go ResponseRequest,
  ResponseNewParamsInputUnion): a string, or a list of items (ResponseInputItemUnionParam) whose messages
  (EasyInputMessageParam, ResponseInputItemMessageParam) hold `content` as a string or parts
  (ResponseInputTextParam `{"type": "input_text", "text"}`; earlier answers as `output_text`), and whose
  tool outputs (ResponseInputItemFunctionCallOutputParam) hold `output` as a string;
- Anthropic /v1/messages `system` and `messages` (anthropic/anthropic.go MessagesRequest, SystemPrompt,
  MessageContent): `system` a string or text blocks, a message's `content` a string or content blocks, of
  which `text` blocks carry text and `tool_result` blocks carry a string or blocks of their own;
- /v1/images/generations `prompt` (ImageGenerationRequest) and /v1/audio/speech `input` (SpeechRequest):
  strings.
/v1/audio/transcriptions and /v1/audio/translations carry audio (multipart): nothing readable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class BodyError(ValueError):
    """A request body that is not an OpenAI JSON object; the message says what was expected."""


#: Paths whose requests make the model generate nothing a person reads (vectors, scores, token counts, the
#: model list), matched at the path's end so that a gateway root prefix does not matter. Their bodies pass
#: unchecked: embeddings and rerank inputs are often documents being indexed, whose subject (crime, medicine)
#: is no request for harmful content, and their output is numbers.
NON_GENERATION_PATHS = (
    "/v1/models",
    "/v1/embeddings",
    "/v1/responses/input_tokens",
    "/v1/messages/count_tokens",
    "/tokenize",
    "/v2/rerank",
)

#: The part types whose `text` is read: chat and Anthropic `text`, Responses `input_text` and `output_text`.
TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


def is_generation_path(path: str) -> bool:
    """Whether a request to `path` (the `:path` header, query included) makes the model generate text or
    media: every path but NON_GENERATION_PATHS, unknown ones included (checked, not waved through)."""
    bare = path.split("?", 1)[0].rstrip("/")
    return not bare.endswith(NON_GENERATION_PATHS)


@dataclass(frozen=True)
class Prompt:
    """The model name and the text of a request, as (role, text) turns; `param` is the body field the
    text came from (messages, input, prompt, ...), named in a refusal's error body; `unreadable` says what
    the body holds that cannot be read as text (token ids, say), or is None."""

    model: str | None
    turns: tuple[tuple[str, str], ...]
    param: str | None
    unreadable: str | None = None


def _content_text(content: Any) -> str:
    """A string, or the text of a list of parts/blocks (TEXT_PART_TYPES; an Anthropic tool_result's own
    content, read the same way); other parts (images, audio, files, tool calls) give nothing."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") in TEXT_PART_TYPES and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") == "tool_result":
            texts.append(_content_text(part.get("content")))
    return "\n".join(t for t in texts if t)


def _input_turns(value: Any) -> list[tuple[str, str]]:
    """The Responses API `input` (also /v1/audio/speech's): a string, or a list of items."""
    if isinstance(value, str):
        return [("user", value)]
    if not isinstance(value, list):
        return []
    turns = []
    for item in value:
        if isinstance(item, str):
            turns.append(("user", item))
        elif isinstance(item, dict):
            role = str(item.get("role") or ("tool" if "output" in item else "user"))
            text = _content_text(item.get("content"))
            if isinstance(item.get("output"), str):
                text = "\n".join(t for t in (text, item["output"]) if t)
            turns.append((role, text))
    return turns


def request_prompt(body: bytes) -> Prompt:
    """The text of a request body, read from every field of the shapes above that carries it (the path
    decides only whether the body is checked at all: is_generation_path). An empty body gives no turns.
    Raises BodyError when the body is not a JSON object."""
    if not body.strip():
        return Prompt(model=None, turns=(), param=None)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BodyError(f"the request body is not JSON ({err})") from None
    if not isinstance(data, dict):
        raise BodyError("the request body is not a JSON object")
    model = data.get("model") if isinstance(data.get("model"), str) else None
    fields: list[tuple[str, list[tuple[str, str]]]] = []
    unreadable = None
    if "system" in data:  # Anthropic
        fields.append(("system", [("system", _content_text(data["system"]))]))
    if isinstance(data.get("instructions"), str):  # Responses
        fields.append(("instructions", [("system", data["instructions"])]))
    if isinstance(data.get("messages"), list):
        fields.append(
            (
                "messages",
                [
                    (str(m.get("role", "user")), _content_text(m.get("content")))
                    for m in data["messages"]
                    if isinstance(m, dict)
                ],
            )
        )
    if "input" in data:
        fields.append(("input", _input_turns(data["input"])))
    prompt = data.get("prompt")
    if isinstance(prompt, str):
        fields.append(("prompt", [("user", prompt)]))
    elif isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        fields.append(("prompt", [("user", p) for p in prompt]))
    elif prompt is not None:
        # Token ids: the text is in the engine's tokenizer, not here. Refused even beside readable text,
        # which would otherwise carry an unread payload past the check.
        unreadable = "prompt: token ids (or another shape than a string or a list of strings)"
    turns = tuple((role, text) for _, found in fields for role, text in found if text)
    texts = [name for name, found in fields if any(text for _, text in found)]
    main = [name for name in texts if name not in ("system", "instructions")]
    param = main[0] if main else texts[0] if texts else None
    return Prompt(model, turns, param, unreadable)


def _answer_texts(data: Any) -> list[str]:
    """The answer text in one parsed non-streamed response, by shape (AI Gateway v1.1.0 internal/apischema):
    - chat and completions (openai/openai.go ChatCompletionResponse, CompletionResponse): `choices[]`,
      each with `message.content` (a string or text parts) or `text`;
    - Responses (openai/openai.go:6384 Response, `output` of ResponseOutputItemUnion): `output[]` items of
      type `message` whose `content` holds `output_text` parts (ResponseOutputTextParam) and `refusal` parts;
      a top-level `output_text` string where a server adds the SDK's convenience field;
    - Anthropic Messages (anthropic/anthropic.go:1412 MessagesResponse): `content[]` blocks of type `text`.
    Tool calls, reasoning and images are not read (not text a person is shown as the answer)."""
    if not isinstance(data, dict):
        return []
    parts: list[str] = []
    for choice in data.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict):
            parts.append(_content_text(message.get("content")))
        if isinstance(choice.get("text"), str):
            parts.append(choice["text"])
    output = data.get("output")
    if isinstance(output, list):
        for item in output:
            if isinstance(item, dict) and item.get("type") == "message":
                parts.append(_content_text(item.get("content")))
                for part in item.get("content") or []:
                    if isinstance(part, dict) and isinstance(part.get("refusal"), str):
                        parts.append(part["refusal"])
    elif isinstance(data.get("output_text"), str):
        parts.append(data["output_text"])
    if data.get("type") == "message" and isinstance(data.get("content"), list):
        parts.append(_content_text(data["content"]))
    return [p for p in parts if p]


def response_text(body: bytes) -> str:
    """The answer text in a non-streamed response (_answer_texts' shapes, joined); "" when the body holds
    none (an error body, a tool call only, or not JSON)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    return "\n".join(_answer_texts(data))


def _event_text(data: Any) -> str:
    """The answer text one SSE event's JSON adds, by shape:
    - chat `choices[].delta.content`, completions `choices[].text` (vLLM's chunks);
    - Responses `{"type": "response.output_text.delta", "delta": "..."}` (openai/openai.go:8620
      ResponseTextDeltaEvent) and `response.refusal.delta`;
    - Anthropic `{"type": "content_block_delta", "delta": {"type": "text_delta", "text": "..."}}`
      (anthropic/anthropic.go:1625-1660 MessagesStreamChunk).
    Other events (created, completed, message_start, tool-call argument deltas) add nothing."""
    if not isinstance(data, dict):
        return ""
    texts: list[str] = []
    for choice in data.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            texts.append(delta["content"])
        if isinstance(choice.get("text"), str):
            texts.append(choice["text"])
    kind = data.get("type")
    if kind in ("response.output_text.delta", "response.refusal.delta") and isinstance(
        data.get("delta"), str
    ):
        texts.append(data["delta"])
    if kind == "content_block_delta":
        delta = data.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("text"), str):
            texts.append(delta["text"])
    return "".join(texts)


@dataclass
class StreamText:
    """Accumulates the answer text of a `text/event-stream` response as chunks arrive, across chunk
    boundaries that may split an event or a UTF-8 character. Each event's `data:` is JSON read by
    _event_text (chat, completions, Responses and Anthropic streams); `data: [DONE]` ends an OpenAI chat
    stream (Responses and Anthropic streams end with the body). `finish()` reads a last event that ends
    without the blank line (a server that closes the stream right after it)."""

    done: bool = False
    _parts: list[str] = field(default_factory=list, repr=False)
    _length: int = field(default=0, repr=False)
    _pending: bytes = field(default=b"", repr=False)

    @property
    def text(self) -> str:
        """The answer so far (joined on demand: appending to one str would copy it on every delta)."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def __len__(self) -> int:
        return self._length

    def feed(self, chunk: bytes) -> None:
        """Add a chunk of the body; complete events are read, a partial one waits for the next chunk."""
        self._pending += chunk
        # SSE events end with a blank line; servers use \n\n (vLLM) or \r\n\r\n.
        normalized = self._pending.replace(b"\r\n", b"\n")
        *events, self._pending = normalized.split(b"\n\n")
        for event in events:
            self._event(event)

    def finish(self) -> None:
        """The body ended: read what is pending as the last event."""
        pending, self._pending = self._pending, b""
        if pending.strip():
            self._event(pending.replace(b"\r\n", b"\n"))

    def _event(self, event: bytes) -> None:
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                continue
            try:
                data = json.loads(payload)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            text = _event_text(data)
            if text:
                self._parts.append(text)
                self._length += len(text)
