"""`python -m guardrail`: serve ExternalProcessor on GUARDRAIL_PORT and grpc.health.v1.Health on
GUARDRAIL_HEALTH_PORT, two grpc.aio servers in one event loop."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import sys
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic import ValidationError

from guardrail import openai_text
from guardrail.classifier import OpenAIClassifier
from guardrail.memory import large_body_slots
from guardrail.policy import PolicyError, load_policy
from guardrail.processor import GuardrailProcessor
from guardrail.settings import Settings

#: The name Envoy's ext_proc calls and a probe may ask the health of.
SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
#: The largest gRPC message taken or sent, bytes. grpcio's default receive limit is 4 MiB
#: (GRPC_DEFAULT_MAX_RECV_MESSAGE_LENGTH); Envoy sends a BUFFERED body whole, up to the listener's buffer
#: limit (components/load_balancer.py MODEL_ROUTING_BUFFER_LIMIT, 50Mi), so a 5 MB body failed the stream
#: and failOpen served it unchecked. 64 MiB holds a 50 MiB body and its message's framing; a body over the
#: buffer limit never gets here (Envoy answers 413 itself). tests/guardrail holds the order of the two.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: The processor's deadline for one message's work, over the classifier's timeout, seconds: under the
#: half-second left before Envoy's messageTimeout (components/guardrail.py message_timeout: the classifier's
#: timeout plus 1 s), so the client's failure_mode decides a slow check, not Envoy's failOpen.
DEADLINE_MARGIN_S = 0.5


@dataclass
class Servers:
    """The processor's server (Envoy's streams, at most settings.max_streams), the health server (the
    kubelet's probes, not limited: a probe must not wait behind, or be refused by, a full stream limit),
    and the health servicer both report through."""

    processor: grpc.aio.Server
    health: grpc.aio.Server
    checker: health.aio.HealthServicer


def slots(settings: Settings) -> int:
    """The large-body slots for the settings; at least one (with a warning when the memory limit is too
    small for max_text_chars by the arithmetic of guardrail/memory.py large_body_slots)."""
    count = large_body_slots(
        settings.memory_limit_bytes, settings.max_text_chars, settings.max_streams, settings.parse_workers
    )
    if count < 1:
        logging.getLogger("guardrail").warning(
            "memory limit %d bytes is too small for max_text_chars %d and max_streams %d: "
            "one large body at a time",
            settings.memory_limit_bytes,
            settings.max_text_chars,
            settings.max_streams,
        )
    return max(count, 1)


def parse_pool(workers: int) -> Executor:
    """The processes that parse large bodies. "spawn", not fork: forking a process that runs gRPC's core
    is unsafe (grpc/docs/fork_support.md); a spawned worker imports only what the parse needs (and the
    main module, as multiprocessing's spawn does). Started now, not at the first large body: a cold start
    (~0.3 s) would otherwise eat into that body's deadline."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    for future in [pool.submit(openai_text.request_prompt, b"{}") for _ in range(workers)]:
        future.result()
    return pool


async def build_server(settings: Settings) -> Servers:
    """The ready (not yet started) servers on all addresses at settings.port and settings.health_port;
    awaited inside the event loop that will serve them."""
    policy = load_policy(settings.policy_file)
    classifier = OpenAIClassifier(
        settings.classifier_url, settings.classifier_model, settings.classifier_timeout_s
    )
    server = grpc.aio.server(
        maximum_concurrent_rpcs=settings.max_streams,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    pb_grpc.add_ExternalProcessorServicer_to_server(
        GuardrailProcessor(
            policy,
            classifier,
            interval_chars=settings.stream_check_interval_chars,
            log_prompts=settings.log_prompts,
            max_text_chars=settings.max_text_chars,
            large_body_slots=slots(settings),
            deadline_s=settings.classifier_timeout_s + DEADLINE_MARGIN_S,
            parse_pool_factory=lambda: parse_pool(settings.parse_workers),
        ),
        server,
    )
    server.add_insecure_port(f"[::]:{settings.port}")
    checker = health.aio.HealthServicer()
    for name in ("", SERVICE):
        await checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(checker, health_server)
    health_server.add_insecure_port(f"[::]:{settings.health_port}")
    return Servers(server, health_server, checker)


async def serve(settings: Settings) -> None:
    """Build, start and serve until SIGTERM; then health says NOT_SERVING, no new stream is taken, and open
    ones get settings.drain_seconds to finish (grpc.aio Server.stop(grace): it refuses new RPCs at once and
    cancels those still open when the grace ends). The pod's terminationGracePeriodSeconds covers the
    preStop sleep plus this (components/guardrail.py)."""
    servers = await build_server(settings)
    await servers.health.start()
    await servers.processor.start()
    logging.getLogger("guardrail").info(
        "guardrail serving on port %d (at most %d streams), health on port %d",
        settings.port,
        settings.max_streams,
        settings.health_port,
    )
    stopping: list[asyncio.Task[None]] = []

    async def stop() -> None:
        await servers.checker.enter_graceful_shutdown()  # probes say NOT_SERVING while open streams finish
        logging.getLogger("guardrail").info(
            "SIGTERM: draining open streams for up to %g s", settings.drain_seconds
        )
        await servers.processor.stop(grace=settings.drain_seconds)
        await servers.health.stop(grace=None)

    asyncio.get_running_loop().add_signal_handler(
        signal.SIGTERM, lambda: stopping.append(asyncio.create_task(stop()))
    )
    await servers.processor.wait_for_termination()
    # The processor has stopped; stop() may still be stopping the health server. Returning now would let
    # asyncio.run cancel it and close the loop under grpc's servers, whose finalizers then need the closed
    # loop and leave the process hung until the kubelet's SIGKILL (review, 2 of 10 runs): finish it first.
    if stopping:
        await asyncio.gather(*stopping)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        settings = Settings()  # type: ignore[call-arg]  # from the environment
        load_policy(settings.policy_file)  # its errors before the loop starts, as a message
    except ValidationError as err:
        print(f"guardrail: bad settings (GUARDRAIL_* environment):\n{err}", file=sys.stderr)
        return 2
    except PolicyError as err:
        print(f"guardrail: {err}", file=sys.stderr)
        return 2
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
