"""The processor's settings, from the environment (GUARDRAIL_*), set by components/guardrail.py."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from guardrail.memory import DEFAULT_MAX_STREAMS


class Settings(BaseSettings):
    """Required fields have no default: a pod without them fails at start with pydantic's message."""

    model_config = SettingsConfigDict(env_prefix="GUARDRAIL_", extra="forbid")

    classifier_url: str
    """The moderation model's OpenAI base URL, e.g. http://llama-guard.inferstack.svc:8000/v1."""
    classifier_model: str
    """The served model name the classifier is asked by."""
    policy_file: Path
    """The JSON policy (guardrail/policy.py), mounted from the ConfigMap."""
    classifier_timeout_s: float = Field(default=2.0, gt=0)
    """The classifier call's limit; keep it under the EnvoyExtensionPolicy's messageTimeout, or Envoy gives
    up first and applies failOpen instead of the client's failure_mode."""
    drain_seconds: float = Field(default=600.0, ge=0)
    """On SIGTERM, how long open exchanges may take to finish, seconds: the route's request timeout (an
    ext_proc stream lasts as long as its HTTP exchange: to the response headers, or to the last chunk of a
    checked stream). The pod's terminationGracePeriodSeconds is this plus the preStop sleep and a margin
    (components/guardrail.py)."""
    parse_workers: int = Field(default=1, ge=1)
    """Processes that parse bodies over OFF_LOOP_BYTES (guardrail/memory.py) off the event loop; each costs
    WORKER_REST_BYTES plus one parse at a time (the memory arithmetic counts them)."""
    port: int = Field(default=9002, ge=1, le=65535)
    """The ExternalProcessor's gRPC port (Envoy's)."""
    health_port: int = Field(default=9003, ge=1, le=65535)
    """grpc.health.v1.Health's port, on a server of its own: the kubelet's probes do not count against
    max_streams, so a pod at its stream limit still answers them (and is not restarted for being busy)."""
    memory_limit_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    """The container's memory limit, bytes (the Downward API's limits.memory, components/guardrail.py): the
    number of large bodies checked at once is sized to it (guardrail/memory.py large_body_slots)."""
    stream_check_interval_chars: int = Field(default=400, gt=0)
    """A streamed answer is classified each time this many new characters arrived, and at its end."""
    log_prompts: bool = False
    """Put the checked text into audit lines. Off by default: audit lines carry no prompt or answer text."""
    max_streams: int = Field(default=DEFAULT_MAX_STREAMS, gt=0)
    """Exchanges in flight per pod (grpc.aio maximum_concurrent_rpcs): one ext_proc stream per HTTP request,
    open from its headers to its last body chunk, the engine's answer time included. A stream costs a
    coroutine, not a thread; past this, a new stream is refused at once (RESOURCE_EXHAUSTED), and Envoy
    applies failOpen to it: a visible 500 or an unchecked request, never a wait."""
    max_text_chars: int = Field(default=500_000, gt=0)
    """A check whose text (prompt, plus the answer for an answer check) is longer is refused with 413
    content_too_large without asking the classifier. 500,000 characters is about 125,000 tokens at ~4
    characters a token, Llama Guard 3's whole 128K context: no Llama Guard 3 serving reads more, and a
    classifier served with a shorter max_model_len refuses the rest itself (also a 413)."""
