"""The processor's pure parts: Llama Guard verdicts, the policy file, decisions, error bodies, OpenAI text."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from components.load_balancer import CLIENT_ID_HEADER, MODEL_ROUTING_BUFFER_LIMIT
from guardrail import memory, processor
from guardrail.__main__ import MAX_MESSAGE_BYTES
from guardrail.categories import LLAMA_GUARD_3_CATEGORIES, Verdict, VerdictError, parse_verdict
from guardrail.classifier import ClassifierError, ClassifierInputTooLong, OpenAIClassifier
from guardrail.openai_text import (
    BodyError,
    StreamText,
    is_generation_path,
    request_prompt,
    response_text,
)
from guardrail.policy import ClientPolicy, FailureMode, PolicyError, parse_policy

T = TypeVar("T")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("safe", Verdict(True)),
        ("  Safe \n", Verdict(True)),
        ("safe.", Verdict(True)),
        ("unsafe\nS1", Verdict(False, ("S1",))),
        ("unsafe\nS10,S2", Verdict(False, ("S2", "S10"))),
        ("unsafe\nS1, S14", Verdict(False, ("S1", "S14"))),
        ("\n unsafe \n s3 \n", Verdict(False, ("S3",))),
        ("unsafe", Verdict(False, ())),
        ("unsafe\nS15,S1", Verdict(False, ("S1",))),  # no S15 in the taxonomy
        ("unsafe\nS01", Verdict(False, ("S1",))),
    ],
)
def test_llama_guard_verdicts(answer: str, expected: Verdict) -> None:
    assert parse_verdict(answer) == expected


@pytest.mark.parametrize("answer", ["", "I cannot help with that.", "S1", "unsafe-ish"])
def test_answers_that_are_not_verdicts_are_refused(answer: str) -> None:
    with pytest.raises(VerdictError, match="not 'safe' or 'unsafe'"):
        parse_verdict(answer)


def test_taxonomy_is_llama_guard_3s_fourteen() -> None:
    assert list(LLAMA_GUARD_3_CATEGORIES) == [f"S{i}" for i in range(1, 15)]
    assert LLAMA_GUARD_3_CATEGORIES["S11"] == "Suicide & Self-Harm"


def test_policy_defaults_and_client_lookup() -> None:
    policy = parse_policy(json.dumps({"clients": {"a": {"block": ["s2", "S1"], "failure_mode": "open"}}}))
    assert policy.default.block == list(LLAMA_GUARD_3_CATEGORIES)
    assert policy.default.failure_mode is FailureMode.CLOSED
    assert policy.for_client("a").block == ["S1", "S2"]
    assert policy.for_client("a").failure_mode is FailureMode.OPEN
    assert policy.for_client("b") is policy.default
    assert policy.for_client(None) is policy.default
    assert not policy.any_checks_responses


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"default": {"block": ["S99"]}}, r"default\.block: .*'S99'.* not Llama Guard 3 categories"),
        ({"clients": {"a": {"block": ["S1"], "flag": ["S1"]}}}, r"clients\.a: .*'S1'.* both block and flag"),
        ({"clients": {"a": {"failure_mode": "sometimes"}}}, r"clients\.a\.failure_mode"),
        ({"defaults": {}}, r"defaults: Extra inputs are not permitted"),
    ],
)
def test_bad_policies_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(json.dumps(data), "policy.json")


def test_policy_that_is_not_json_names_the_file() -> None:
    with pytest.raises(PolicyError, match=r"^p\.json: not JSON"):
        parse_policy("{", "p.json")


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        (Verdict(True), ("allowed", ())),
        (Verdict(False, ("S1", "S6")), ("blocked", ("S1",))),
        (Verdict(False, ("S6",)), ("flagged", ("S6",))),
        (Verdict(False, ("S9",)), ("allowed", ("S9",))),
        (Verdict(False, ()), ("blocked", ())),
    ],
)
def test_decisions(verdict: Verdict, expected: tuple[str, tuple[str, ...]]) -> None:
    policy = ClientPolicy(block=["S1", "S2"], flag=["S6"])
    decision = processor.decide(verdict, policy)
    assert (decision.decision, decision.categories) == expected


def test_unsafe_without_category_is_flagged_when_nothing_is_blocked() -> None:
    assert processor.decide(Verdict(False, ()), ClientPolicy(block=[], flag=[])).decision == "flagged"


def test_refusal_is_an_openai_error_body() -> None:
    body = json.loads(processor.refusal(("S1", "S10"), "messages", answer=False))
    assert body == {
        "error": {
            "message": "The request was blocked by the content filter: S1 (Violent Crimes), S10 (Hate).",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "content_filter",
        }
    }
    assert json.loads(processor.refusal(("S1",), None, answer=True))["error"]["message"].startswith(
        "The model's answer"
    )


def test_client_id_header_is_the_gateways() -> None:
    assert processor.CLIENT_ID_HEADER == CLIENT_ID_HEADER


def test_request_prompt_reads_chat_and_completions() -> None:
    chat = request_prompt(
        json.dumps(
            {
                "model": "m",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]},
                ],
            }
        ).encode()
    )
    assert (chat.model, chat.turns, chat.param) == ("m", (("system", "be brief"), ("user", "hi")), "messages")
    assert request_prompt(b'{"model": "m", "prompt": ["a", "b"]}').turns == (("user", "a"), ("user", "b"))
    assert request_prompt(b"").turns == ()
    with pytest.raises(BodyError):
        request_prompt(b"not json")
    with pytest.raises(BodyError):
        request_prompt(b"[1]")


def test_response_text() -> None:
    assert response_text(b'{"choices": [{"message": {"content": "x"}}, {"text": "y"}]}') == "x\ny"
    assert response_text(b'{"error": {"message": "no"}}') == ""


def test_stream_text_across_split_chunks() -> None:
    events = (
        b"".join(
            b"data: " + json.dumps({"choices": [{"delta": {"content": word}}]}).encode() + b"\r\n\r\n"
            for word in ["caf\u00e9", " au", " lait"]
        )
        + b"data: [DONE]\n\n"
    )
    stream = StreamText()
    for i in range(0, len(events), 7):  # 7-byte pieces split events and the UTF-8 'é'
        stream.feed(events[i : i + 7])
    assert stream.text == "caf\u00e9 au lait"
    assert stream.done


class _Safe:
    def __init__(self) -> None:
        self.calls = 0

    async def classify(self, prompt: str, answer: str | None = None) -> Verdict:
        self.calls += 1
        return Verdict(True)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on a loop of its own. Not asyncio.run: that leaves the thread's event loop unset,
    and the Pulumi recordings of other tests in the session (tests/components) ask for the current one."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def _chat_body(text: str) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()


def _send_body(
    servicer: processor.GuardrailProcessor, body: bytes, exchange: processor.Exchange | None = None
) -> pb.ProcessingResponse:
    request = pb.ProcessingRequest(request_body=pb.HttpBody(body=body, end_of_stream=True))
    return _run(servicer.handle(request, exchange or processor.Exchange()))


def _audit(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "guardrail.audit"]


@pytest.mark.parametrize("log_prompts", [False, True])
def test_prompt_text_is_logged_only_on_opt_in(log_prompts: bool, caplog: pytest.LogCaptureFixture) -> None:
    servicer = processor.GuardrailProcessor(parse_policy("{}"), _Safe(), log_prompts=log_prompts)
    body = b'{"model": "m", "messages": [{"role": "user", "content": "secret words"}]}'
    with caplog.at_level("INFO", logger="guardrail.audit"):
        _send_body(servicer, body)
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "guardrail.audit"]
    assert line["decision"] == "allowed" and line["model"] == "m"
    assert ("secret words" in caplog.text) is log_prompts


@pytest.fixture(scope="module")
def standin_classifier() -> Iterator[str]:
    """The stand-in Llama Guard (tests/guardrail/standins.py); yields its /v1 URL."""
    from tests.guardrail import standins

    with standins.serving(standins.Classifier()) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"


def test_vllm_context_length_refusal_is_its_own_error(standin_classifier: str) -> None:
    from tests.guardrail import standins

    async def check() -> None:
        # One event loop for the client's whole life: its connection pool belongs to the loop.
        classifier = OpenAIClassifier(standin_classifier, "llama-guard", timeout_s=5)
        with pytest.raises(ClassifierInputTooLong, match="maximum context length is 8192 tokens"):
            await classifier.classify(f"a long talk {standins.CLASSIFIER_TOO_LONG_WORD}")
        # Any other failure stays a ClassifierError that the failure mode decides.
        with pytest.raises(ClassifierError) as other:
            await classifier.classify(standins.CLASSIFIER_FAIL_WORD)
        assert not isinstance(other.value, ClassifierInputTooLong)
        assert await classifier.classify("hello") == Verdict(True)

    _run(check())


def _immediate_error(response: pb.ProcessingResponse) -> tuple[int, dict[str, Any]]:
    assert response.WhichOneof("response") == "immediate_response"
    return response.immediate_response.status.code, json.loads(response.immediate_response.body)["error"]


@pytest.mark.parametrize("failure_mode", ["open", "closed"])
def test_context_length_refusal_is_413_in_either_failure_mode(
    standin_classifier: str, failure_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.guardrail import standins

    policy = parse_policy(json.dumps({"default": {"failure_mode": failure_mode}}))
    servicer = processor.GuardrailProcessor(policy, OpenAIClassifier(standin_classifier, "lg", timeout_s=5))
    with caplog.at_level("INFO", logger="guardrail.audit"):
        response = _send_body(servicer, _chat_body(f"long {standins.CLASSIFIER_TOO_LONG_WORD}"))
    status, error = _immediate_error(response)
    assert status == 413
    assert error["code"] == "content_too_large"
    assert error["param"] == "messages"
    assert "context window" in error["message"] and "try again" not in error["message"]
    (line,) = _audit(caplog)
    assert line["decision"] == "too_large"
    assert "maximum context length" in line["error"]


@pytest.mark.parametrize("failure_mode", ["open", "closed"])
def test_text_over_the_limit_is_413_without_asking_the_classifier(
    failure_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    classifier = _Safe()
    policy = parse_policy(json.dumps({"default": {"failure_mode": failure_mode}}))
    servicer = processor.GuardrailProcessor(policy, classifier, max_text_chars=1000)
    with caplog.at_level("INFO", logger="guardrail.audit"):
        assert _send_body(servicer, _chat_body("x" * 1000)).WhichOneof("response") == "request_body"
        status, error = _immediate_error(_send_body(servicer, _chat_body("x" * 1001)))
    assert (status, error["code"]) == (413, "content_too_large")
    assert "1001 characters" in error["message"]
    assert classifier.calls == 1
    assert [line["decision"] for line in _audit(caplog)] == ["allowed", "too_large"]


def _mebibytes(quantity: str) -> int:
    assert quantity.endswith("Mi"), quantity
    return int(quantity[:-2]) * 1024 * 1024


def test_grpc_message_limit_holds_the_gateways_largest_body() -> None:
    # Envoy sends a buffered body whole, up to the listener's buffer limit; a larger gRPC message than the
    # processor takes fails the stream, and failOpen would serve the body unchecked.
    assert _mebibytes(MODEL_ROUTING_BUFFER_LIMIT) + 64 * 1024 < MAX_MESSAGE_BYTES


@pytest.mark.parametrize(
    ("body", "turns", "param"),
    [
        # /v1/responses: a string input, instructions as a system turn.
        (
            {"model": "m", "input": "hi", "instructions": "be brief"},
            (("system", "be brief"), ("user", "hi")),
            "input",
        ),
        # /v1/responses: items with input_text parts, an earlier answer's output_text, a tool's output.
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_text", "text": "a"}, {"type": "input_image"}],
                    },
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": "b"}],
                    },
                    {"type": "function_call_output", "call_id": "c", "output": "c-out"},
                    {"type": "reasoning", "summary": []},
                ]
            },
            (("user", "a"), ("assistant", "b"), ("tool", "c-out")),
            "input",
        ),
        # Anthropic /v1/messages: system as text blocks, content blocks, a tool_result's own content.
        (
            {
                "system": [{"type": "text", "text": "sys"}],
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "u1"}, {"type": "image", "source": {}}],
                    },
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "content": [{"type": "text", "text": "r"}]}],
                    },
                ],
            },
            (("system", "sys"), ("user", "u1"), ("user", "r")),
            "messages",
        ),
        ({"system": "only a system prompt", "messages": []}, (("system", "only a system prompt"),), "system"),
    ],
)
def test_request_prompt_reads_responses_and_anthropic(
    body: dict[str, Any], turns: tuple[tuple[str, str], ...], param: str
) -> None:
    prompt = request_prompt(json.dumps(body).encode())
    assert (prompt.turns, prompt.param, prompt.unreadable) == (turns, param, None)


@pytest.mark.parametrize("prompt", [[1, 2, 3], [[1, 2], [3]], ["text", [1, 2]], 42])
def test_token_id_prompts_are_unreadable(prompt: Any) -> None:
    assert "token ids" in (request_prompt(json.dumps({"prompt": prompt}).encode()).unreadable or "")


def test_image_only_chat_has_no_text() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    assert request_prompt(json.dumps(body).encode()).turns == ()


@pytest.mark.parametrize(
    ("path", "generation"),
    [
        ("/v1/chat/completions", True),
        ("/v1/completions", True),
        ("/v1/responses", True),
        ("/v1/messages", True),
        ("/anthropic/v1/messages?beta=true", True),
        ("/v1/audio/transcriptions", True),
        ("/v1/some/future/endpoint", True),
        ("/v1/models", False),
        ("/v1/models?x=1", False),
        ("/v1/embeddings", False),
        ("/v1/responses/input_tokens", False),
        ("/v1/messages/count_tokens", False),
        ("/tokenize", False),
        ("/v2/rerank", False),
    ],
)
def test_generation_paths(path: str, generation: bool) -> None:
    assert is_generation_path(path) is generation


def _exchange(path: str, client_policy: dict[str, Any] | None = None) -> processor.Exchange:
    exchange = processor.Exchange(path=path)
    if client_policy is not None:
        exchange.policy = ClientPolicy(**client_policy)
    return exchange


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "m", "prompt": [1, 2, 3]}',
        b'{"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}',
        b'{"model": "m", "something": "else"}',
        b"--boundary\r\nContent-Disposition: form-data; name=file\r\n\r\nRIFF....",
    ],
    ids=["token-ids", "image-only", "unknown-shape", "multipart-audio"],
)
def test_unreadable_generation_request_is_refused_when_the_policy_blocks(
    body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    classifier = _Safe()
    servicer = processor.GuardrailProcessor(parse_policy("{}"), classifier)
    with caplog.at_level("INFO", logger="guardrail.audit"):
        status, error = _immediate_error(_send_body(servicer, body, _exchange("/v1/completions")))
    assert (status, error["code"], error["type"]) == (
        400,
        "content_filter_unsupported_input",
        "invalid_request_error",
    )
    assert classifier.calls == 0
    (line,) = _audit(caplog)
    assert line["decision"] == "unsupported"
    # A flag-only policy blocks nothing, so it has nothing to refuse: served, and said so.
    caplog.clear()
    with caplog.at_level("INFO", logger="guardrail.audit"):
        response = _send_body(servicer, body, _exchange("/v1/completions", {"block": [], "flag": ["S6"]}))
    assert response.WhichOneof("response") == "request_body"
    (line,) = _audit(caplog)
    assert line["decision"] == "skipped" and line["error"].startswith("unreadable:")


def test_non_generation_paths_pass_unread(caplog: pytest.LogCaptureFixture) -> None:
    classifier = _Safe()
    servicer = processor.GuardrailProcessor(parse_policy("{}"), classifier)
    with caplog.at_level("INFO", logger="guardrail.audit"):
        response = _send_body(servicer, b'{"model": "m", "input": [1, 2, 3]}', _exchange("/v1/embeddings"))
    assert response.WhichOneof("response") == "request_body"
    assert classifier.calls == 0
    assert _audit(caplog)[0]["decision"] == "skipped"


def test_body_over_the_byte_bound_is_refused_without_parsing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    parsed: list[int] = []
    real_loads = json.loads

    def counting_loads(text: Any, **kwargs: Any) -> Any:
        if len(text) > 1000:  # request bodies, not the small error bodies the test itself reads
            parsed.append(len(text))
        return real_loads(text, **kwargs)

    servicer = processor.GuardrailProcessor(parse_policy("{}"), _Safe(), max_text_chars=1000)
    monkeypatch.setattr("guardrail.openai_text.json.loads", counting_loads)
    bound = memory.max_body_bytes(1000)
    assert bound == 6 * 1000 + memory.BODY_OVERHEAD_BYTES
    # Just under the bound, mostly padding outside the text: parsed (and its short text allowed).
    under = (
        _chat_body("x" * 10)[:-1] + b', "pad": "' + b" " * (bound - len(_chat_body("x" * 10)) - 11) + b'"}'
    )
    assert len(under) == bound
    assert _send_body(servicer, under).WhichOneof("response") == "request_body"
    assert parsed == [bound]
    with caplog.at_level("INFO", logger="guardrail.audit"):
        status, error = _immediate_error(_send_body(servicer, under + b" "))
    assert (status, error["code"]) == (413, "content_too_large")
    assert f"{bound + 1}-byte body" in error["message"]
    assert parsed == [bound]  # not parsed
    assert _audit(caplog)[0]["decision"] == "too_large"


def test_memory_arithmetic_at_the_defaults() -> None:
    mib = memory.MiB
    assert memory.max_body_bytes(500_000) == 4_048_576
    assert memory.max_body_bytes(500_000) < _mebibytes(MODEL_ROUTING_BUFFER_LIMIT)
    assert memory.large_body_slots(512 * mib, 500_000, 1000) == 4
    # What the slots allow, at the worst factors, fits the planned share of the limit.
    body = memory.max_body_bytes(500_000)
    worst = (
        memory.REST_BYTES
        + memory.WORKER_REST_BYTES
        + memory.PARSE_OVERHEAD_FACTOR * body  # the one worker's parse
        + memory.PARSE_OVERHEAD_FACTOR * memory.OFF_LOOP_BYTES  # a parse on the loop
        + 1000 * memory.HELD_FACTOR * memory.SMALL_BODY_BYTES
        + 4 * memory.HELD_FACTOR * body
    )
    assert worst <= 0.9 * 512 * mib < worst + memory.HELD_FACTOR * body
    assert memory.large_body_slots(256 * mib, 500_000, 1000) < 1


class _Slow:
    """A classifier that answers `safe` after `delay_s`, counting calls in flight."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.in_flight = 0
        self.most_in_flight = 0

    async def classify(self, prompt: str, answer: str | None = None) -> Verdict:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.delay_s)
        self.in_flight -= 1
        return Verdict(True)


@pytest.mark.parametrize(
    ("failure_mode", "kind"), [("closed", "immediate_response"), ("open", "request_body")]
)
def test_large_bodies_wait_for_a_slot_then_follow_the_failure_mode(
    failure_mode: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    classifier = _Slow(0.3)
    policy = parse_policy(json.dumps({"default": {"failure_mode": failure_mode}}))
    large = _chat_body("y" * (memory.SMALL_BODY_BYTES + 1))
    small = _chat_body("small")

    async def go() -> list[pb.ProcessingResponse]:
        servicer = processor.GuardrailProcessor(policy, classifier, large_body_slots=2, slot_wait_s=0.1)

        def send(body: bytes) -> Coroutine[Any, Any, pb.ProcessingResponse]:
            request = pb.ProcessingRequest(request_body=pb.HttpBody(body=body, end_of_stream=True))
            return servicer.handle(request, processor.Exchange(policy=policy.default))

        # Three large at once: two checked, the third finds no slot within 0.1 s. Small ones need none.
        return list(await asyncio.gather(send(large), send(large), send(large), send(small), send(small)))

    with caplog.at_level("INFO", logger="guardrail.audit"):
        responses = _run(go())
    assert [r.WhichOneof("response") for r in responses] == ["request_body"] * 2 + [kind] + [
        "request_body"
    ] * 2
    assert classifier.most_in_flight == 4
    decisions = sorted(line["decision"] for line in _audit(caplog))
    assert decisions == sorted(
        ["allowed"] * 4 + [f"error_{'blocked' if failure_mode == 'closed' else 'allowed'}"]
    )


def test_the_prompt_is_kept_past_the_request_only_for_an_answer_check() -> None:
    servicer = processor.GuardrailProcessor(parse_policy("{}"), _Safe())
    plain, checked = processor.Exchange(), _exchange("", {"check_responses": True})
    _send_body(servicer, _chat_body("remember me"), plain)
    _send_body(servicer, _chat_body("remember me"), checked)
    assert (plain.prompt, checked.prompt) == ("", "remember me")
