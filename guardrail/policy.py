"""The per-client policy file (JSON, mounted from the component's ConfigMap).

Shape:
    {"default": {<ClientPolicy>}, "clients": {"<client id>": {<ClientPolicy>}, ...}}
where a ClientPolicy is
    {"enabled": true, "block": ["S1", ...], "flag": ["S6"], "failure_mode": "closed", "check_responses": false}
The client id is the value of the gateway's `x-inferstack-client-id` header (components/load_balancer.py
CLIENT_ID_HEADER, set from the API key); a request without one, or with an id not listed, gets `default`.
A client entry is complete on its own: fields it leaves out take ClientPolicy's defaults, not `default`'s,
so what a client gets can be read from its own entry.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from guardrail.categories import LLAMA_GUARD_3_CATEGORIES


class FailureMode(StrEnum):
    """What a request gets when the classifier cannot answer (timeout, error, unreadable verdict).

    `open`: served unchecked (logged as error_allowed); `closed`: refused with 503 (error_blocked).
    The processor being down or over Envoy's messageTimeout is decided by Envoy, not here: the
    EnvoyExtensionPolicy's failOpen (one value per route, components/guardrail.py)."""

    OPEN = "open"
    CLOSED = "closed"


class PolicyError(ValueError):
    """The policy file is unreadable or invalid; the message names the file, the field and the fix."""


def _codes(value: list[str], field: str) -> list[str]:
    bad = [c for c in value if c.upper() not in LLAMA_GUARD_3_CATEGORIES]
    if bad:
        raise ValueError(
            f"{field}: {bad} are not Llama Guard 3 categories; use codes among {list(LLAMA_GUARD_3_CATEGORIES)}"
        )
    return sorted({c.upper() for c in value}, key=lambda c: int(c[1:]))


class ClientPolicy(BaseModel):
    """One API client's policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """Whether this client's traffic is checked at all (False: passed through, an audit line still says so)."""
    block: list[str] = Field(default_factory=lambda: list(LLAMA_GUARD_3_CATEGORIES))
    """Categories that refuse the request (400, code content_filter). Default: all fourteen."""
    flag: list[str] = Field(default_factory=list)
    """Categories that let the request through with the x-inferstack-guardrail response header."""
    failure_mode: FailureMode = FailureMode.CLOSED
    """The classifier's failures: open or closed (see FailureMode)."""
    check_responses: bool = False
    """Whether the model's answers are classified too (streamed ones at intervals and at the end)."""

    @field_validator("block")
    @classmethod
    def _block(cls, value: list[str]) -> list[str]:
        return _codes(value, "block")

    @field_validator("flag")
    @classmethod
    def _flag(cls, value: list[str]) -> list[str]:
        return _codes(value, "flag")

    @model_validator(mode="after")
    def _disjoint(self) -> ClientPolicy:
        both = sorted(set(self.block) & set(self.flag), key=lambda c: int(c[1:]))
        if both:
            raise ValueError(f"{both} are in both block and flag; a category is one or the other")
        return self


class Policy(BaseModel):
    """The whole file: a default and per-client overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: ClientPolicy = Field(default_factory=ClientPolicy)
    clients: dict[str, ClientPolicy] = Field(default_factory=dict)

    def for_client(self, client_id: str | None) -> ClientPolicy:
        """The policy of `client_id`, or `default` when it is None or not listed."""
        return self.clients.get(client_id, self.default) if client_id else self.default

    @property
    def any_checks_responses(self) -> bool:
        """Whether some client has check_responses (then Envoy must send response bodies)."""
        return self.default.check_responses or any(c.check_responses for c in self.clients.values())


def parse_policy(text: str, source: str = "policy") -> Policy:
    """Parse the JSON policy text. Raises PolicyError naming `source`, each bad field's path and the fix."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PolicyError(f"{source}: not JSON ({err})") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in err.errors()
        )
        raise PolicyError(f"{source}: {problems}") from None


def load_policy(path: Path) -> Policy:
    """Read and parse the policy file at `path` (PolicyError when missing, unreadable or invalid)."""
    try:
        text = path.read_text()
    except OSError as err:
        raise PolicyError(f"{path}: cannot read the policy file ({err.strerror})") from None
    return parse_policy(text, str(path))
