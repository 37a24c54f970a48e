"""`python -m guardrail`: serve ExternalProcessor and grpc.health.v1.Health on GUARDRAIL_PORT."""

from __future__ import annotations

import logging
import signal
import sys
from concurrent import futures

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic import ValidationError

from guardrail.classifier import OpenAIClassifier
from guardrail.policy import PolicyError, load_policy
from guardrail.processor import GuardrailProcessor
from guardrail.settings import Settings

#: The name Envoy's ext_proc calls and a probe may ask the health of.
SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"


def build_server(settings: Settings) -> grpc.Server:
    """A started-ready (not yet started) gRPC server on all addresses at settings.port."""
    policy = load_policy(settings.policy_file)
    classifier = OpenAIClassifier(
        settings.classifier_url, settings.classifier_model, settings.classifier_timeout_s
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=settings.workers))
    pb_grpc.add_ExternalProcessorServicer_to_server(
        GuardrailProcessor(
            policy,
            classifier,
            interval_chars=settings.stream_check_interval_chars,
            log_prompts=settings.log_prompts,
        ),
        server,
    )
    checker = health.HealthServicer()
    for name in ("", SERVICE):
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    server.add_insecure_port(f"[::]:{settings.port}")
    return server


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        settings = Settings()  # type: ignore[call-arg]  # from the environment
        server = build_server(settings)
    except ValidationError as err:
        print(f"guardrail: bad settings (GUARDRAIL_* environment):\n{err}", file=sys.stderr)
        return 2
    except PolicyError as err:
        print(f"guardrail: {err}", file=sys.stderr)
        return 2
    server.start()
    logging.getLogger("guardrail").info("guardrail serving on port %d", settings.port)
    # SIGTERM (pod deletion): stop taking streams, give open ones the grace period's first seconds.
    signal.signal(signal.SIGTERM, lambda *_: server.stop(grace=10))
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
