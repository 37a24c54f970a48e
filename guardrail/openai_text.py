"""The text inside OpenAI API bodies: what a client asked (chat/completions `messages`, completions
`prompt`) and what the model answered (a JSON response, or a `text/event-stream` of chunks).

Shapes follow the OpenAI API reference as vLLM's OpenAI server implements it: a message's `content` is a
string or a list of parts, of which `{"type": "text", "text": ...}` carry text (image and audio parts are not
classified); a completion's `prompt` is a string or a list of strings (token-id prompts carry no text here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class BodyError(ValueError):
    """A request body that is not an OpenAI JSON object; the message says what was expected."""


@dataclass(frozen=True)
class Prompt:
    """The model name and the text of a request, as (role, text) turns; `param` is the body field the
    text came from (messages or prompt), named in a refusal's error body."""

    model: str | None
    turns: tuple[tuple[str, str], ...]
    param: str | None


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def request_prompt(body: bytes) -> Prompt:
    """The prompt in a request body. An empty body gives no turns (nothing to classify). Raises BodyError
    when the body is not a JSON object."""
    if not body.strip():
        return Prompt(model=None, turns=(), param=None)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BodyError(f"the request body is not JSON ({err})") from None
    if not isinstance(data, dict):
        raise BodyError("the request body is not a JSON object")
    model = data.get("model") if isinstance(data.get("model"), str) else None
    if isinstance(data.get("messages"), list):
        turns = tuple(
            (str(m.get("role", "user")), _content_text(m.get("content")))
            for m in data["messages"]
            if isinstance(m, dict)
        )
        return Prompt(model, tuple(t for t in turns if t[1]), "messages")
    prompt = data.get("prompt")
    if isinstance(prompt, str):
        return Prompt(model, (("user", prompt),) if prompt else (), "prompt")
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return Prompt(model, tuple(("user", p) for p in prompt if p), "prompt")
    return Prompt(model, (), None)


def response_text(body: bytes) -> str:
    """The answer text in a non-streamed response (each choice's message content or completion text,
    joined); "" when the body is not an OpenAI response (an error body, say)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        return ""
    parts = []
    for choice in data["choices"]:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict):
            parts.append(_content_text(message.get("content")))
        if isinstance(choice.get("text"), str):
            parts.append(choice["text"])
    return "\n".join(p for p in parts if p)


@dataclass
class StreamText:
    """Accumulates the answer text of a `text/event-stream` response as chunks arrive, across chunk
    boundaries that may split an event or a UTF-8 character. Each event's `data:` is a JSON chunk whose
    choices carry `delta.content` (chat) or `text` (completions); `data: [DONE]` ends the stream."""

    text: str = ""
    done: bool = False
    _pending: bytes = field(default=b"", repr=False)

    def feed(self, chunk: bytes) -> None:
        """Add a chunk of the body; complete events are read, a partial one waits for the next chunk."""
        self._pending += chunk
        # SSE events end with a blank line; servers use \n\n (vLLM) or \r\n\r\n.
        normalized = self._pending.replace(b"\r\n", b"\n")
        *events, self._pending = normalized.split(b"\n\n")
        for event in events:
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
                if not isinstance(data, dict):
                    continue
                for choice in data.get("choices") or []:
                    if not isinstance(choice, dict):
                        continue
                    delta = choice.get("delta")
                    if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                        self.text += delta["content"]
                    if isinstance(choice.get("text"), str):
                        self.text += choice["text"]
