"""What a client sees of a serving endpoint, checked with the official `openai` client: the model list, a
chat completion, a stream, an unknown model, and a stream drained through SIGTERM.

One set of checks for every way the endpoint runs: the launcher as a local process
(tests/model_image/test_image_openai.py), the planned pod under Docker (tests/model_image/
test_image_container.py, `make e2e`), and the whole stack through the gateway on a kind cluster
(tests/e2e/, .github/workflows/e2e.yml). Each check takes an `openai.OpenAI` client built for that
endpoint (base URL, API key, CA) and the served model name, and raises AssertionError naming what differs.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
from openai.types.chat import ChatCompletionChunk

# The tiny random model (tests/model_image/image_helpers.py build_tiny_chat_model) never samples
# end-of-text, so every reply runs to max_tokens and the checks can count tokens exactly. A real model may
# stop early: pass exact=False for one.


def assert_models_list(client: openai.OpenAI, served: str) -> None:
    """GET /v1/models names exactly the served model."""
    ids = [m.id for m in client.models.list().data]
    assert ids == [served], f"/v1/models lists {ids}, expected [{served!r}]"


def assert_chat_completion(
    client: openai.OpenAI, served: str, max_tokens: int = 8, exact: bool = True
) -> None:
    """POST /v1/chat/completions returns text and a consistent `usage`."""
    reply = client.chat.completions.create(
        model=served, messages=[{"role": "user", "content": "hello there"}], max_tokens=max_tokens
    )
    choice = reply.choices[0]
    assert isinstance(choice.message.content, str) and choice.message.content.strip(), f"empty reply: {reply}"
    assert reply.usage is not None, "the reply has no usage"
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    if exact:
        assert choice.finish_reason == "length", f"finish_reason {choice.finish_reason!r}, expected 'length'"
        assert reply.usage.completion_tokens == max_tokens


def stream_text(chunks: list[ChatCompletionChunk]) -> tuple[str, list[str]]:
    """The streamed text and every finish_reason the chunks carried."""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [str(c.choices[0].finish_reason) for c in chunks if c.choices and c.choices[0].finish_reason]
    return text, finishes


def assert_streaming_chat(
    client: openai.OpenAI, served: str, max_tokens: int = 6, exact: bool = True
) -> None:
    """A streamed chat completion arrives as several chunks and finishes once."""
    stream = client.chat.completions.create(
        model=served, messages=[{"role": "user", "content": "hello"}], max_tokens=max_tokens, stream=True
    )
    chunks = list(stream)
    text, finishes = stream_text(chunks)
    assert len(chunks) >= 3, f"a stream is several chunks, not {len(chunks)}"
    assert text.strip(), "the stream carried no text"
    assert len(finishes) == 1, f"finish reasons {finishes}: a stream finishes exactly once"
    if exact:
        assert finishes == ["length"], f"finish reasons {finishes}, expected ['length']"


def assert_unknown_model_rejected(client: openai.OpenAI) -> int:
    """A model the endpoint does not serve is a client error (4xx); returns the status code."""
    try:
        client.chat.completions.create(
            model="acme/no-such-model", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    except openai.APIStatusError as err:
        assert 400 <= err.status_code < 500, f"status {err.status_code} for an unknown model, expected 4xx"
        return err.status_code
    raise AssertionError("a chat completion for an unknown model succeeded")


def open_stream(client: openai.OpenAI, served: str, max_tokens: int) -> Iterator[ChatCompletionChunk]:
    """A stream with its first chunk already read, so it is open on the server when this returns."""
    stream = client.chat.completions.create(
        model=served,
        messages=[{"role": "user", "content": "tell me"}],
        max_tokens=max_tokens,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = iter(stream)
    next(chunks)
    return chunks


def assert_drained(rest: Iterator[ChatCompletionChunk], max_tokens: int) -> None:
    """Read what remains of a stream opened by `open_stream`: it must finish normally with every token
    delivered (a cut stream raises from the client or ends without a finish_reason)."""
    try:
        chunks = list(rest)
    except (openai.APIError, OSError) as err:  # httpx reports a cut connection as an APIError subclass
        raise AssertionError(f"the open stream was cut, not drained: {err!r}") from err
    _, finishes = stream_text(chunks)
    assert finishes == ["length"], f"the open stream ended with finish reasons {finishes}, not drained"
    usage = chunks[-1].usage if chunks else None
    assert usage is not None and usage.completion_tokens == max_tokens, (
        f"the drained stream delivered {usage and usage.completion_tokens} of {max_tokens} tokens"
    )
