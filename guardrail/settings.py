"""The processor's settings, from the environment (GUARDRAIL_*), set by components/guardrail.py."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    port: int = Field(default=9002, ge=1, le=65535)
    """The gRPC port (ExternalProcessor and grpc.health.v1.Health)."""
    stream_check_interval_chars: int = Field(default=400, gt=0)
    """A streamed answer is classified each time this many new characters arrived, and at its end."""
    log_prompts: bool = False
    """Put the checked text into audit lines. Off by default: audit lines carry no prompt or answer text."""
    workers: int = Field(default=16, gt=0)
    """gRPC worker threads: one per concurrent HTTP exchange being processed."""
