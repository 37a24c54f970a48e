"""The Envoy external processor: one gRPC stream per HTTP exchange (envoy.service.ext_proc.v3
ExternalProcessor.Process), messages in the order Envoy sends them.

Envoy's side, as Envoy Gateway v1.8.3 configures it from the EnvoyExtensionPolicy that
components/guardrail.py writes (internal/xds/translator/extproc.go buildProcessingMode):
- request headers SEND, request body BUFFERED (the whole body in one message; over the listener's buffer
  limit Envoy answers 413 itself);
- response headers SEND; response body STREAMED when some client has check_responses, else NONE; with
  allowModeOverride, this processor then sets, per exchange, on the response headers: BUFFERED for a JSON
  answer that is checked (so a refusal can still replace it), STREAMED for an event stream that is checked,
  NONE for one that is not (no further round trips).
Envoy waits for the reply to each message before it forwards what the message held, so a STREAMED chunk
reaches the client only after this processor has answered for it.

Envoy holds one stream open for the whole HTTP exchange, including the time the engine takes to answer, so
the servicer is asyncio (grpc.aio): an open stream waiting on Envoy costs a coroutine, not a thread, and the
classifier call is awaited (openai.AsyncOpenAI). With a thread pool, the pool's size was the number of
exchanges in flight; the next one waited for a thread until messageTimeout (504, or unchecked with failOpen).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import BrokenExecutor, Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.type.v3 import http_status_pb2

from guardrail.categories import Verdict, describe
from guardrail.classifier import Classifier, ClassifierError, ClassifierInputTooLong
from guardrail.memory import OFF_LOOP_BYTES, SMALL_BODY_BYTES, max_body_bytes
from guardrail.openai_text import (
    BodyError,
    StreamText,
    is_generation_path,
    request_prompt,
    response_text,
)
from guardrail.policy import ClientPolicy, FailureMode, Policy

#: Set by the gateway's API-key filter from the key (components/load_balancer.py CLIENT_ID_HEADER).
CLIENT_ID_HEADER = "x-inferstack-client-id"
#: Added to a flagged exchange's response: "flagged".
DECISION_HEADER = "x-inferstack-guardrail"
#: Added beside it: the flagged codes, comma-separated ("S6,S10").
CATEGORIES_HEADER = "x-inferstack-guardrail-categories"

audit_log = logging.getLogger("guardrail.audit")
log = logging.getLogger("guardrail")

_BodyMode = processing_mode_pb2.ProcessingMode
_T = TypeVar("_T")

#: Content codings the processor reads: none. An answer compressed by the engine or a filter before this one
#: cannot be classified (the processor does not inflate: a small compressed body can inflate to any size),
#: so `accept-encoding` is removed from the requests whose answers are checked, and a compressed answer that
#: arrives anyway is "cannot check" (the client's failure_mode).
IDENTITY_CODINGS = frozenset({"", "identity"})


def error_body(message: str, error_type: str, param: str | None, code: str) -> bytes:
    """An OpenAI-style error body: {"error": {"message", "type", "param", "code"}} (the shape the openai
    client reads into APIStatusError.message/type/param/code)."""
    return json.dumps(
        {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    ).encode()


def refusal(categories: tuple[str, ...], param: str | None, answer: bool) -> bytes:
    """The error body of a blocked prompt (answer False) or a blocked answer, naming the categories."""
    what = "The model's answer" if answer else "The request"
    return error_body(
        f"{what} was blocked by the content filter: {describe(categories)}.",
        "invalid_request_error",
        param,
        "content_filter",
    )


def unavailable(param: str | None) -> bytes:
    """The error body when the classifier failed and the client's failure mode is closed."""
    return error_body(
        "The content filter could not check this request; try again later.",
        "server_error",
        param,
        "content_filter_unavailable",
    )


def too_large(param: str | None, cause: str, answer: bool) -> bytes:
    """The error body when the text to check is longer than the classifier can read (`cause` says which
    limit). A client error, whatever the failure mode: the same input fails the same way on every retry, and
    an input the filter cannot read is not served unchecked."""
    what = "The model's answer" if answer else "The request"
    return error_body(
        f"{what} is too long for the content filter to check: {cause}. Shorten the conversation.",
        "invalid_request_error",
        param,
        "content_too_large",
    )


def unsupported(cause: str) -> bytes:
    """The error body of a request on a generation path whose text the filter cannot read (token ids, only
    images or audio, a shape it does not know), refused for a client whose policy blocks anything: serving
    it unread would let any prompt past the filter by encoding it."""
    return error_body(
        f"The content filter cannot read this request's text ({cause}), and this API key's policy requires "
        "every request to be checked. Send the text as text: chat `messages` content, a string `prompt`, "
        "Responses `input`/`instructions`, or Anthropic `system`/`messages` text blocks.",
        "invalid_request_error",
        None,
        "content_filter_unsupported_input",
    )


#: The status of a too_large refusal: 413 Content Too Large (RFC 9110 15.5.14), the one Envoy gives a body
#: over its buffer limit, so that "too big" reads the same from either.
TOO_LARGE_STATUS = 413


def _immediate(status: int, body: bytes) -> pb.ProcessingResponse:
    return pb.ProcessingResponse(
        immediate_response=pb.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=status),
            headers=pb.HeaderMutation(
                set_headers=[
                    base_pb2.HeaderValueOption(
                        header=base_pb2.HeaderValue(key="content-type", raw_value=b"application/json")
                    )
                ]
            ),
            body=body,
        )
    )


def _headers(message: pb.HttpHeaders) -> dict[str, str]:
    # Envoy sends raw_value (bytes) unless its send_header_raw_value runtime flag is off; then value.
    return {
        h.key.lower(): (h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value)
        for h in message.headers.headers
    }


@dataclass
class Decision:
    """What one check decided: allowed, flagged, blocked, error_allowed, error_blocked, skipped,
    too_large (the text is longer than the classifier can read; refused with 413 in either failure mode), or
    unsupported (a generation request with no text the processor can read, refused for a client that blocks
    anything)."""

    decision: str
    categories: tuple[str, ...] = ()
    error: str | None = None
    #: For too_large: the cause as the client is told it (no text, no classifier internals).
    cause: str = ""


@dataclass
class Exchange:
    """One HTTP exchange's state across its messages (lives as long as its gRPC stream)."""

    client_id: str | None = None
    path: str = ""
    policy: ClientPolicy = field(default_factory=ClientPolicy)
    model: str | None = None
    param: str | None = None
    prompt: str = ""
    flagged: tuple[str, ...] = ()
    check_answer: bool = False
    stream: StreamText | None = None
    checked_chars: int = 0
    answer_blocked: bool = False
    answer_json: bytearray = field(default_factory=bytearray)
    answer: str = ""


def decide(verdict: Verdict, policy: ClientPolicy) -> Decision:
    """Block if a named category is in `block`, else flag if one is in `flag`, else allow. An `unsafe`
    that names no category is blocked when the policy blocks anything (flagged otherwise): failing safe."""
    if verdict.safe:
        return Decision("allowed")
    if not verdict.categories:
        return Decision("blocked" if policy.block else "flagged")
    blocked = tuple(c for c in verdict.categories if c in policy.block)
    if blocked:
        return Decision("blocked", blocked)
    flagged = tuple(c for c in verdict.categories if c in policy.flag)
    if flagged:
        return Decision("flagged", flagged)
    return Decision("allowed", verdict.categories)


class GuardrailProcessor(pb_grpc.ExternalProcessorServicer):
    """The servicer. `classifier` gives verdicts; `interval_chars`: a streamed answer is classified each
    time this many characters have accumulated since the last check, and at its end; `log_prompts`: put
    the checked text into audit lines (off by default: privacy); `max_text_chars`: a check whose text (the
    prompt, plus the answer for an answer check) is longer than this is refused as too_large without asking
    the classifier (the classifier's own context-length refusal covers shorter texts it cannot read), and a
    request body over max_body_bytes(max_text_chars) is refused the same way before it is parsed;
    `large_body_slots`: how many bodies over SMALL_BODY_BYTES are checked at once (large_body_slots());
    `slot_wait_s`: how long one waits for a slot before its client's failure_mode decides; `deadline_s`:
    the whole work on one message (slot wait, parse, classifier call) in seconds, after which the client's
    failure_mode decides: kept under Envoy's messageTimeout (components/guardrail.py message_timeout, the
    classifier's timeout plus 1 s; the processor's default is the classifier's timeout plus 0.5 s), so that
    the processor answers before Envoy gives up and applies failOpen. The classifier's httpx timeouts are per
    phase (connect, each read), so a classifier that dribbles its answer outlives them; this one does not.
    `parse_pool_factory`: makes the executor where bodies over OFF_LOOP_BYTES are parsed (a
    ProcessPoolExecutor: json.loads of a body at the byte bound holds the GIL for ~0.15 s, during which every
    other exchange stalls; a thread would hold the same GIL), called at start and again when the pool broke
    (a worker killed); None parses on the event loop."""

    def __init__(
        self,
        policy: Policy,
        classifier: Classifier,
        *,
        interval_chars: int = 400,
        log_prompts: bool = False,
        max_text_chars: int = 500_000,
        large_body_slots: int = 8,
        slot_wait_s: float = 0.5,
        deadline_s: float = 2.5,
        parse_pool_factory: Callable[[], Executor] | None = None,
    ) -> None:
        self.policy = policy
        self.classifier = classifier
        self.interval_chars = interval_chars
        self.log_prompts = log_prompts
        self.max_text_chars = max_text_chars
        self.max_body_bytes = max_body_bytes(max_text_chars)
        self.large_body_slots = large_body_slots
        self.slot_wait_s = slot_wait_s
        self.deadline_s = deadline_s
        self._parse_pool_factory = parse_pool_factory
        self.parse_pool = parse_pool_factory() if parse_pool_factory else None
        # Created here, in the event loop that serves (build_server is awaited inside it).
        self._large_bodies = asyncio.Semaphore(large_body_slots)

    async def Process(  # the gRPC method's name
        self, request_iterator: AsyncIterator[pb.ProcessingRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ProcessingResponse]:
        exchange = Exchange()
        try:
            async for request in request_iterator:
                try:
                    response = await self.handle(request, exchange)
                except Exception as err:  # a processor bug must follow the client's failure mode
                    log.exception("processing failed")
                    response = self._failure(request, exchange, f"{type(err).__name__}: {err}")
                # Not held while Envoy waits for the engine's answer: the request body (up to the gateway's
                # 50Mi) would otherwise stay in memory for the whole exchange.
                del request
                yield response
        except asyncio.CancelledError:
            # Envoy closed the stream (the client went away, or the route's timeout): gRPC cancels the
            # handler. An expected end, not a fault: one line, no traceback.
            log.info(
                json.dumps(
                    {"event": "stream_cancelled", "client_id": exchange.client_id, "path": exchange.path}
                )
            )
            raise

    async def handle(self, request: pb.ProcessingRequest, exchange: Exchange) -> pb.ProcessingResponse:
        """The reply to one message of `exchange`."""
        kind = request.WhichOneof("request")
        if kind == "request_headers":
            return self._request_headers(_headers(request.request_headers), exchange)
        if kind == "request_body":
            return await self._request_body(request.request_body.body, exchange)
        if kind == "response_headers":
            return self._response_headers(_headers(request.response_headers), exchange)
        if kind == "response_body":
            return await self._response_body(request.response_body, exchange)
        # Trailers are not asked for (SKIP); answer anything else with "continue".
        return _continue(kind)

    def _request_headers(self, headers: dict[str, str], exchange: Exchange) -> pb.ProcessingResponse:
        exchange.client_id = headers.get(CLIENT_ID_HEADER) or None
        exchange.path = headers.get(":path", "")
        exchange.policy = self.policy.for_client(exchange.client_id)
        common = pb.CommonResponse()
        policy = exchange.policy
        if policy.enabled and policy.check_responses and is_generation_path(exchange.path):
            # The answer is read here, so it must come uncompressed (IDENTITY_CODINGS). ext_proc's header
            # mutation may remove any header but pseudo-headers and host (Envoy's HeaderMutationRules
            # defaults; Envoy Gateway sets none).
            common.header_mutation.remove_headers.append("accept-encoding")
        return pb.ProcessingResponse(request_headers=pb.HeadersResponse(response=common))

    async def _off_loop(self, size: int, parse: Callable[[bytes], _T], body: bytes) -> _T:
        """parse(body), in parse_pool when the body is over OFF_LOOP_BYTES, else here."""
        pool = self.parse_pool
        if pool is None or size <= OFF_LOOP_BYTES:
            return parse(body)
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, parse, body)
        except BrokenExecutor:
            # A worker died (killed, say): this check fails by the failure mode (the caller's exception
            # handler), and the next one gets a new pool, started in a thread: the factory waits for its
            # workers (about 0.5 s), which on the loop would stall every other stream past its deadline.
            # Under cgroup v2 Kubernetes (1.28+) sets memory.oom.group, so a worker over the container's
            # memory takes the whole container with it; this path is for a worker that dies alone.
            if self._parse_pool_factory and self.parse_pool is pool:
                pool.shutdown(wait=False, cancel_futures=True)
                self.parse_pool = None  # large bodies parse here until the new pool is ready
                self.parse_pool = await asyncio.to_thread(self._parse_pool_factory)
            raise

    async def _request_body(self, body: bytes, exchange: Exchange) -> pb.ProcessingResponse:
        cont = pb.ProcessingResponse(request_body=pb.BodyResponse())
        if not exchange.policy.enabled:
            self._audit(exchange, "request", Decision("skipped", error="disabled for this client"), 0.0)
            return cont
        if not is_generation_path(exchange.path):
            self._audit(exchange, "request", Decision("skipped", error="not a generation path"), 0.0)
            return cont
        if len(body) > self.max_body_bytes:
            # By length, before json.loads: a parse costs up to PARSE_OVERHEAD_FACTOR times the body.
            decision = Decision(
                "too_large",
                error=f"{len(body)} bytes, over the body limit of {self.max_body_bytes} (not parsed)",
                cause=f"a {len(body)}-byte body, over the limit of {self.max_body_bytes} bytes",
            )
            self._audit(exchange, "request", decision, 0.0)
            return _immediate(TOO_LARGE_STATUS, too_large(None, decision.cause, answer=False))
        began = time.monotonic()
        try:
            # One deadline for the slot wait, the parse and the classifier call together (deadline_s).
            async with asyncio.timeout(self.deadline_s):
                if len(body) <= SMALL_BODY_BYTES:
                    return await self._check_request(body, exchange)
                try:
                    async with asyncio.timeout(self.slot_wait_s):
                        await self._large_bodies.acquire()
                except TimeoutError:
                    error = (
                        f"{self.large_body_slots} large bodies already being checked (the memory bound); "
                        f"no slot in {self.slot_wait_s} s"
                    )
                    return self._answer_request(exchange, self._failed(exchange, error), 0.0)
                try:
                    return await self._check_request(body, exchange)
                finally:
                    self._large_bodies.release()
        except TimeoutError:
            error = f"the check took over its deadline of {self.deadline_s} s"
            exchange.prompt = ""
            return self._answer_request(exchange, self._failed(exchange, error), time.monotonic() - began)

    async def _check_request(self, body: bytes, exchange: Exchange) -> pb.ProcessingResponse:
        try:
            prompt = await self._off_loop(len(body), request_prompt, body)
        except BodyError as err:
            # Multipart audio, say, or a body the engine refuses itself: nothing here reads it.
            return self._unreadable(exchange, str(err))
        exchange.model, exchange.param = prompt.model, prompt.param
        if prompt.unreadable:
            return self._unreadable(exchange, prompt.unreadable)
        exchange.prompt = "\n\n".join(text for _, text in prompt.turns)
        del prompt
        if not exchange.prompt:
            return self._unreadable(exchange, "no text in any field the filter reads")
        decision, latency = await self._classify(exchange, None)
        response = self._answer_request(exchange, decision, latency)
        if response.WhichOneof("response") == "request_body":
            exchange.check_answer = exchange.policy.check_responses
        if not exchange.check_answer:
            exchange.prompt = ""  # kept for the exchange's life only where an answer check reads it
        return response

    def _answer_request(
        self, exchange: Exchange, decision: Decision, latency_s: float
    ) -> pb.ProcessingResponse:
        """Audit a request check's decision and give Envoy its reply."""
        self._audit(exchange, "request", decision, latency_s)
        if decision.decision == "blocked":
            return _immediate(400, refusal(decision.categories, exchange.param, answer=False))
        if decision.decision == "too_large":
            return _immediate(TOO_LARGE_STATUS, too_large(exchange.param, decision.cause, answer=False))
        if decision.decision == "error_blocked":
            return _immediate(503, unavailable(exchange.param))
        if decision.decision == "flagged":
            exchange.flagged = decision.categories
        return pb.ProcessingResponse(request_body=pb.BodyResponse())

    def _unreadable(self, exchange: Exchange, cause: str) -> pb.ProcessingResponse:
        """A generation request without text the processor can read: refused (400) when the client's policy
        blocks anything, else served (a flag-only policy has nothing to refuse)."""
        if exchange.policy.block:
            self._audit(exchange, "request", Decision("unsupported", error=cause), 0.0)
            return _immediate(400, unsupported(cause))
        self._audit(exchange, "request", Decision("skipped", error=f"unreadable: {cause}"), 0.0)
        return pb.ProcessingResponse(request_body=pb.BodyResponse())

    def _response_headers(self, headers: dict[str, str], exchange: Exchange) -> pb.ProcessingResponse:
        common = pb.CommonResponse()
        if exchange.flagged:
            common.header_mutation.set_headers.extend(
                [
                    base_pb2.HeaderValueOption(
                        header=base_pb2.HeaderValue(key=DECISION_HEADER, raw_value=b"flagged")
                    ),
                    base_pb2.HeaderValueOption(
                        header=base_pb2.HeaderValue(
                            key=CATEGORIES_HEADER, raw_value=",".join(exchange.flagged).encode()
                        )
                    ),
                ]
            )
        check = exchange.check_answer and headers.get(":status") == "200"
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        coding = headers.get("content-encoding", "").strip().lower()
        if check and coding not in IDENTITY_CODINGS:
            # Compressed although accept-encoding was removed (a filter or an engine that compresses
            # anyway): the answer cannot be read, so it is not checked; the client's failure_mode decides.
            exchange.check_answer = False
            exchange.prompt = ""
            decision = self._failed(exchange, f"the answer is compressed ({coding}); cannot check it")
            self._audit(exchange, "response", decision, 0.0)
            if decision.decision == "error_blocked":
                return _immediate(503, unavailable(None))
            mode = _BodyMode.NONE
        elif check and media == "text/event-stream":
            exchange.stream = StreamText()
            mode = _BodyMode.STREAMED
        elif check:
            mode = _BodyMode.BUFFERED
        else:
            exchange.check_answer = False
            exchange.prompt = ""
            mode = _BodyMode.NONE
        return pb.ProcessingResponse(
            response_headers=pb.HeadersResponse(response=common),
            mode_override=processing_mode_pb2.ProcessingMode(response_body_mode=mode),
        )

    async def _response_body(self, message: pb.HttpBody, exchange: Exchange) -> pb.ProcessingResponse:
        cont = pb.ProcessingResponse(response_body=pb.BodyResponse())
        if not exchange.check_answer:
            return cont
        if exchange.stream is None:
            # BUFFERED: the whole answer arrives at once (end_of_stream); keep any earlier piece anyway.
            exchange.answer_json += message.body
            if not message.end_of_stream:
                return cont
            body = bytes(exchange.answer_json)
            exchange.answer_json = bytearray()
            began = time.monotonic()
            try:
                async with asyncio.timeout(self.deadline_s):
                    exchange.answer = await self._off_loop(len(body), response_text, body)
                    del body
                    if not exchange.answer:
                        decision = self._failed(exchange, "a checked answer with no text the filter reads")
                    else:
                        decision = await self._classify_answer(exchange, exchange.answer)
            except TimeoutError:
                decision = self._failed(exchange, f"the check took over its deadline of {self.deadline_s} s")
            latency = time.monotonic() - began
            self._audit(exchange, "response", decision, latency)
            exchange.prompt = exchange.answer = ""
            if decision.decision == "blocked":
                return _immediate(400, refusal(decision.categories, None, answer=True))
            if decision.decision == "too_large":
                return _immediate(TOO_LARGE_STATUS, too_large(None, decision.cause, answer=True))
            if decision.decision == "error_blocked":
                return _immediate(503, unavailable(None))
            return cont
        if exchange.answer_blocked:
            return _replace_chunk(b"")
        stream = exchange.stream
        stream.feed(message.body)
        if message.end_of_stream:
            stream.finish()  # a last event without its blank line
        length = len(stream)
        at_end = message.end_of_stream or stream.done
        if length - exchange.checked_chars < self.interval_chars and not at_end:
            return cont
        if at_end and length == exchange.checked_chars:
            if length == 0 and message.end_of_stream:
                return self._stream_decided(
                    exchange, self._failed(exchange, "a checked answer with no text the filter reads"), 0.0
                )
            return cont
        exchange.checked_chars = length
        text = exchange.answer = stream.text
        began = time.monotonic()
        try:
            async with asyncio.timeout(self.deadline_s):
                decision = await self._classify_answer(exchange, text)
        except TimeoutError:
            decision = self._failed(exchange, f"the check took over its deadline of {self.deadline_s} s")
        return self._stream_decided(exchange, decision, time.monotonic() - began)

    def _stream_decided(
        self, exchange: Exchange, decision: Decision, latency_s: float
    ) -> pb.ProcessingResponse:
        """Audit a streamed answer check and give Envoy the chunk's reply: unchanged, or (blocked,
        error_blocked, too_large) an error event that ends the stream."""
        self._audit(exchange, "response", decision, latency_s)
        if decision.decision == "blocked":
            body = refusal(decision.categories, None, answer=True)
        elif decision.decision == "error_blocked":
            body = unavailable(None)
        elif decision.decision == "too_large":
            # The answer grew past what the classifier reads: the rest cannot be checked, so it is not sent.
            body = too_large(None, decision.cause, answer=True)
        else:
            return pb.ProcessingResponse(response_body=pb.BodyResponse())
        exchange.answer_blocked = True
        # The status line and the earlier chunks are already with the client: this chunk becomes an error
        # event (the openai client raises APIError on it) and the stream ends.
        return _replace_chunk(b"data: " + body + b"\n\ndata: [DONE]\n\n")

    async def _classify_answer(self, exchange: Exchange, answer: str) -> Decision:
        """An answer check; one of a prompt over SMALL_BODY_BYTES characters takes a large-body slot (the
        prompt is written into the classifier's request again: guardrail/memory.py HELD_FACTOR)."""
        if len(exchange.prompt) <= SMALL_BODY_BYTES:
            return (await self._classify(exchange, answer))[0]
        try:
            async with asyncio.timeout(self.slot_wait_s):
                await self._large_bodies.acquire()
        except TimeoutError:
            return self._failed(
                exchange,
                f"{self.large_body_slots} large checks already running; no slot in {self.slot_wait_s} s",
            )
        try:
            return (await self._classify(exchange, answer))[0]
        finally:
            self._large_bodies.release()

    async def _classify(self, exchange: Exchange, answer: str | None) -> tuple[Decision, float]:
        began = time.monotonic()
        length = len(exchange.prompt) + len(answer or "")
        if length > self.max_text_chars:
            return Decision(
                "too_large",
                error=f"{length} characters, over the processor's limit of {self.max_text_chars}",
                cause=f"{length} characters of text, over the limit of {self.max_text_chars}",
            ), 0.0
        try:
            verdict = await self.classifier.classify(exchange.prompt, answer)
        except ClassifierInputTooLong as err:
            # Not a transient failure: the same text fails the same way again, so failure_mode does not apply.
            return Decision(
                "too_large", error=str(err), cause="longer than the classifier model's context window"
            ), time.monotonic() - began
        except ClassifierError as err:
            return self._failed(exchange, str(err)), time.monotonic() - began
        return decide(verdict, exchange.policy), time.monotonic() - began

    @staticmethod
    def _failed(exchange: Exchange, error: str) -> Decision:
        """The client's failure_mode applied to a check that could not run."""
        failed = "error_allowed" if exchange.policy.failure_mode is FailureMode.OPEN else "error_blocked"
        return Decision(failed, error=error)

    def _failure(
        self, request: pb.ProcessingRequest, exchange: Exchange, error: str
    ) -> pb.ProcessingResponse:
        kind = request.WhichOneof("request") or "unknown"
        if exchange.policy.failure_mode is FailureMode.OPEN:
            self._audit(exchange, kind, Decision("error_allowed", error=error), 0.0)
            return _continue(kind)
        self._audit(exchange, kind, Decision("error_blocked", error=error), 0.0)
        return _immediate(503, unavailable(exchange.param))

    def _audit(self, exchange: Exchange, phase: str, decision: Decision, latency_s: float) -> None:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "client_id": exchange.client_id,
            "model": exchange.model,
            "path": exchange.path,
            "phase": phase,
            "decision": decision.decision,
            "categories": list(decision.categories),
            "latency_ms": round(latency_s * 1000, 1),
        }
        if decision.error:
            line["error"] = decision.error
        if self.log_prompts:
            line["text"] = exchange.prompt if phase == "request" else exchange.answer
        audit_log.info(json.dumps(line))


def _continue(kind: str | None) -> pb.ProcessingResponse:
    if kind in ("request_headers", "response_headers"):
        return pb.ProcessingResponse(**{kind: pb.HeadersResponse()})
    if kind in ("request_body", "response_body"):
        return pb.ProcessingResponse(**{kind: pb.BodyResponse()})
    if kind in ("request_trailers", "response_trailers"):
        return pb.ProcessingResponse(**{kind: pb.TrailersResponse()})
    return pb.ProcessingResponse()


def _replace_chunk(body: bytes) -> pb.ProcessingResponse:
    mutation = pb.BodyMutation(body=body) if body else pb.BodyMutation(clear_body=True)
    return pb.ProcessingResponse(
        response_body=pb.BodyResponse(response=pb.CommonResponse(body_mutation=mutation))
    )
