"""Typed settings: environment variables (MODEL_URI, ...) or the matching flags (--model-uri, ...).

Flags win over the environment. Required settings have no default. Every problem is collected and
reported together, each naming the setting and how to fix it.
"""

from __future__ import annotations

import re
import shlex
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model_image.errors import SettingsError
from model_image.uri import ModelURI, parse_model_uri

# A hub-style id: transformers serve lists the model under it, vLLM answers to it.
_SERVED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_QUANTIZATION = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")

S = TypeVar("S", bound=BaseSettings)


class Engine(StrEnum):
    VLLM = "vllm"
    TRANSFORMERS = "transformers"


class LoadMode(StrEnum):
    """How the engine gets its weights (the stack file's model.load_mode; docs/operating.md#cold-start)."""

    #: `fetch` (the init container) downloads every file into MODEL_DIR, checks each file's sha256 against
    #: the source's manifest and renames the folder into place; `serve` loads that verified folder.
    COPY = "copy"
    #: `serve` hands vLLM the s3:// or gs:// uri with `--load-format runai_streamer`: the Run:ai model
    #: streamer reads the safetensors straight into GPU memory. No fetch, no cache, no sha256 check.
    STREAM = "stream"


class Dtype(StrEnum):
    AUTO = "auto"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    FLOAT32 = "float32"


class FetchSettings(BaseSettings):
    """What `fetch` (and every other command) needs: where the model comes from and where it goes."""

    model_config = SettingsConfigDict(env_ignore_empty=True, extra="forbid", case_sensitive=False)

    model_uri: str = Field(
        description="where the model is: file:///path, s3://bucket/prefix, gs://bucket/prefix, "
        "az://account/container/prefix, hf://org/name@rev"
    )
    model_dir: Path = Field(description="the model cache folder (a volume shared by fetch and serve)")

    @field_validator("model_uri")
    @classmethod
    def _check_uri(cls, v: str) -> str:
        return parse_model_uri(v).canonical

    @property
    def uri(self) -> ModelURI:
        return parse_model_uri(self.model_uri)


class ServeSettings(FetchSettings):
    """What `serve` needs on top: the engine and its options."""

    engine: Engine = Field(description="vllm (GPU) or transformers (CPU)")
    served_model_name: str = Field(description="the model name clients send, e.g. acme/chat-small")
    host: str = Field("0.0.0.0", description="listen address")
    port: int = Field(8000, ge=1, le=65535, description="listen port")
    api_key_file: Path | None = Field(None, description="file holding the API key clients must send (vllm)")
    max_model_len: int | None = Field(None, ge=1, description="context length limit (vllm)")
    dtype: Dtype | None = Field(
        None, description="weights/activations dtype: auto, float16, bfloat16, float32"
    )
    quantization: str | None = Field(None, description="quantization method, e.g. fp8, awq (vllm)")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description="GPU memory fraction (vllm)")
    shutdown_timeout: int = Field(30, ge=1, le=3600, description="seconds to drain requests after SIGTERM")
    extra_engine_args: str = Field("", description="more engine flags, shell-quoted")
    load_mode: LoadMode = Field(
        LoadMode.COPY,
        description="copy: serve the verified folder `fetch` made; stream: vLLM reads the s3:// or gs:// "
        "MODEL_URI into GPU memory (--load-format runai_streamer), no sha256 check",
    )

    @field_validator("served_model_name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not _SERVED_NAME.match(v) or "--" in v:
            raise ValueError(
                f"{v!r} is not a model id: use letters, digits, '.', '_', '-' and at most one '/' "
                "(like acme/chat-small), no '--'"
            )
        return v

    @field_validator("quantization")
    @classmethod
    def _check_quantization(cls, v: str | None) -> str | None:
        if v is not None and not _QUANTIZATION.match(v):
            raise ValueError(f"{v!r} is not a quantization method name (e.g. fp8, awq, gptq)")
        return v

    @field_validator("extra_engine_args")
    @classmethod
    def _check_extra(cls, v: str) -> str:
        try:
            shlex.split(v)
        except ValueError as e:
            raise ValueError(f"cannot be split like a shell command line ({e}); check the quotes") from None
        return v

    @property
    def extra_args(self) -> list[str]:
        return shlex.split(self.extra_engine_args)


def env_name(field: str) -> str:
    return field.upper()


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _describe(error: Any) -> str:
    loc = error.get("loc") or ()
    field = str(loc[0]) if loc else "?"
    where = f"{env_name(field)} ({flag_name(field)})"
    if error.get("type") == "missing":
        return (
            f"{where} is required: set the environment variable {env_name(field)} or pass {flag_name(field)}"
        )
    if error.get("type") == "extra_forbidden":
        return f"{flag_name(field)} is not a setting of this command"
    msg = str(error.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    shown = error.get("input")
    if error.get("type", "").startswith("value_error"):
        return f"{where}: {msg}"
    return f"{where}={shown!r}: {msg}"


def load(cls: type[S], **overrides: Any) -> S:
    """Build settings from the environment plus `overrides` (the flags), or raise SettingsError."""
    try:
        return cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        raise SettingsError([_describe(err) for err in e.errors()]) from None
