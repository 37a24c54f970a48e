"""The moderation model, asked through the OpenAI API (chat.completions) like any model of the stack.

Llama Guard 3's chat template (the model's tokenizer_config.json, which vLLM applies) takes a conversation of
alternating user/assistant turns and builds the moderation prompt itself, with the taxonomy; it classifies
the last turn: a user turn for a prompt check, an assistant turn for an answer check. It refuses other
roles, so the client's system and earlier turns are folded into one user turn (the classifier sees all the
text the engine will see) and the answer, when checked, follows as the assistant turn.
"""

from __future__ import annotations

from typing import Protocol

import openai

from guardrail.categories import Verdict, parse_verdict


class ClassifierError(RuntimeError):
    """The classifier did not give a verdict (unreachable, timed out, HTTP error, unreadable answer)."""


class ClassifierInputTooLong(ClassifierError):
    """The classifier refused the conversation as longer than its context window. Not transient: the same
    text fails again, so the processor refuses it as too_large rather than applying the failure mode."""


#: vLLM's refusal of a prompt over max_model_len: HTTP 400 with {"error": {"message": "This model's maximum
#: context length is N tokens. However, your request has M input tokens. ...", "type": "BadRequestError",
#: "code": 400}} (vllm/entrypoints/openai serving code's length check; the sentence's opening has been the
#: same since vLLM's first OpenAI server, the rest varies by version, so only the opening is matched).
CONTEXT_LENGTH_MARKER = "maximum context length"


class Classifier(Protocol):
    """What the processor needs: a verdict on a prompt, or on an answer to it (awaited: the processor is
    asyncio, and a blocking call would hold every other exchange)."""

    async def classify(self, prompt: str, answer: str | None = None) -> Verdict: ...


def conversation(prompt: str, answer: str | None) -> list[dict[str, str]]:
    """The messages sent to Llama Guard: one user turn, then the answer as an assistant turn if given."""
    messages = [{"role": "user", "content": prompt}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


class OpenAIClassifier:
    """A Llama Guard model behind an OpenAI-compatible server (vLLM in the stack).

    `base_url`: the server's /v1 URL (in the cluster: http://<model Service>.<namespace>.svc:8000/v1);
    `model`: the served model name; `timeout_s`: the whole call's limit in seconds (no retries: the
    request is waiting behind it, and Envoy's messageTimeout bounds the wait anyway). Raises
    ClassifierInputTooLong for vLLM's context-length refusal, ClassifierError for every other failure.

    One AsyncOpenAI client (one httpx connection pool) for the process; openai's DEFAULT_CONNECTION_LIMITS
    (openai/_constants.py: at most 1000 connections, 100 kept alive) is above the processor's stream limit
    (settings.max_streams), so calls in flight never queue for a connection."""

    def __init__(self, base_url: str, model: str, timeout_s: float, api_key: str = "unused") -> None:
        self.model = model
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0
        )

    async def classify(self, prompt: str, answer: str | None = None) -> Verdict:
        try:
            reply = await self._client.chat.completions.create(
                model=self.model,
                messages=conversation(prompt, answer),  # type: ignore[arg-type]
                # The verdict is at most "unsafe\nS1,S2,...": a few tokens; greedy, as the card evaluates.
                max_tokens=32,
                temperature=0,
            )
        except openai.BadRequestError as err:
            if CONTEXT_LENGTH_MARKER in str(err).lower():
                raise ClassifierInputTooLong(f"classifier {self.model}: {err.message}") from err
            raise ClassifierError(f"classifier {self.model}: {type(err).__name__}: {err}") from err
        except openai.OpenAIError as err:
            raise ClassifierError(f"classifier {self.model}: {type(err).__name__}: {err}") from err
        if not reply.choices or reply.choices[0].message.content is None:
            raise ClassifierError(f"classifier {self.model}: the answer has no text")
        try:
            return parse_verdict(reply.choices[0].message.content)
        except ValueError as err:
            raise ClassifierError(str(err)) from err
