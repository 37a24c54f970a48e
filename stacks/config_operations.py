"""The stack file's operating sections: service-level objectives, alerts, dashboards, GPU telemetry, the
content-filter guardrail and the chat front end (docs/operating.md).

Kept apart from `stacks/config.py`, which imports these sections and states the rules that cross them
(a guardrail's classifier must be one of the stack's models, a chat client one of its API clients); this
module imports nothing of the schema back.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator, model_validator

from components.alert_rules import BURN_WINDOWS, TTFT_BUCKETS
from guardrail.categories import LLAMA_GUARD_3_CATEGORIES
from stacks.config_base import DNS_NAME, K8sName, Quantity, Section, parse_cidrs

# --- service-level objectives and alerts -----------------------------------------------------------------

#: The burn rate of the fastest SLO alert (the Google SRE workbook's 14.4x over 1 h).
FASTEST_BURN_RATE = BURN_WINDOWS[0][2]


class SloConfig(Section):
    """What a model promises its clients; the burn-rate alerts (components/alert_rules.py) spend its error
    budget over a 30-day window, as the Google SRE workbook's multi-window alerts are tuned for."""

    availability: float = Field(
        0.995,
        lt=1,
        description="share of requests answered without a 5xx, measured at the gateway per model (0.995: "
        "3.6 h of errors in 30 days)",
    )
    ttft_seconds: float = Field(
        2.5,
        gt=0,
        description="time to first token (seconds) a request must meet to count as fast: one of vLLM's "
        "time_to_first_token_seconds bucket bounds (0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, ...)",
    )
    ttft_target: float = Field(
        0.95, lt=1, description="share of requests whose first token comes within ttft_seconds"
    )

    @field_validator("availability", "ttft_target")
    @classmethod
    def _fast_burn_can_fire(cls, share: float) -> float:
        # The fastest alert fires at 14.4x the budget's burn: a budget above 1/14.4 could never burn that fast.
        least = 1 - 1 / FASTEST_BURN_RATE
        if share < least:
            raise ValueError(
                f"{share} leaves an error budget of {1 - share:.3g}, so the {FASTEST_BURN_RATE}x burn-rate alert "
                f"could never fire: use at least {least:.4f} (e.g. 0.99)"
            )
        return share

    @field_validator("ttft_seconds")
    @classmethod
    def _a_bucket_bound(cls, seconds: float) -> float:
        if not any(math.isclose(seconds, b) for b in TTFT_BUCKETS):
            raise ValueError(
                f"{seconds} s is not a bucket bound of vLLM's time-to-first-token histogram, so the share "
                f"under it cannot be counted: use one of {', '.join(f'{b:g}' for b in TTFT_BUCKETS)}"
            )
        return seconds


class AlertsConfig(Section):
    enabled: bool = Field(
        True,
        description="PrometheusRules for the SLOs and the serving path (docs/operating.md, Alerts); needs the "
        "Prometheus operator's CRDs",
    )
    rule_labels: dict[str, str] | None = Field(
        None,
        description="labels put on the PrometheusRule so the Prometheus selects it (default: "
        "monitoring.pod_monitor_labels); an existing kube-prometheus-stack with default values selects "
        "release: <its Helm release name>",
    )
    alertmanager: bool = Field(
        False,
        description="install Alertmanager beside the stack's Prometheus (install_prometheus) so alerts reach "
        "someone; its receivers are yours: a Secret alertmanager-llm-alertmanager (key alertmanager.yaml) in "
        "the Prometheus namespace. Off: alerts are evaluated and shown by Prometheus, and notify no one",
    )
    runbook_url: str = Field(
        "docs/operating.md",
        description="where each alert's runbook_url points (its anchor is the alert's name in lower case): "
        "your copy of docs/operating.md, e.g. https://git.example.com/platform/inferstack/blob/main/docs/operating.md",
    )


class DashboardsConfig(Section):
    enabled: bool = Field(
        True,
        description="Grafana dashboards (models, API clients, GPUs) as ConfigMaps for Grafana's dashboard "
        "sidecar",
    )
    install_grafana: bool = Field(
        False,
        description="install Grafana with the stack's kube-prometheus-stack (install_prometheus); off: an "
        "existing Grafana's sidecar picks the ConfigMaps up (label and namespace below)",
    )
    namespace: K8sName | None = Field(
        None,
        description="namespace of the dashboard ConfigMaps (default: the Prometheus namespace); an existing "
        "Grafana's sidecar must search it",
    )
    sidecar_label: str = Field("grafana_dashboard", description="label the Grafana dashboard sidecar selects")
    sidecar_label_value: str = Field("1", description="value of sidecar_label")


# --- the content-filter guardrail --------------------------------------------------------------------------


class FailureMode(StrEnum):
    OPEN = "open"  # a failure lets the request through (availability first)
    CLOSED = "closed"  # ... refuses it (safety first)


class GuardrailPolicy(Section):
    """What the guardrail does for one API client; unset keys come from `guardrail.default`."""

    enabled: bool | None = Field(None, description="check this client's traffic at all")
    block: list[str] | None = Field(
        None,
        description="Llama Guard 3 categories (S1..S14) refused with a 400, code content_filter (default: all)",
    )
    flag: list[str] | None = Field(
        None,
        description="categories let through but marked (x-inferstack-guardrail response header, audit log)",
    )
    failure_mode: FailureMode | None = Field(
        None,
        description="when the classifier fails: open serves the request unchecked, closed refuses it (503)",
    )
    check_responses: bool | None = Field(
        None,
        description="also classify the model's answers (streamed ones every stream_check_interval_chars)",
    )

    @field_validator("block", "flag")
    @classmethod
    def _categories(cls, codes: list[str] | None) -> list[str] | None:
        bad = [c for c in codes or [] if c.upper() not in LLAMA_GUARD_3_CATEGORIES]
        if bad:
            raise ValueError(
                f"{bad} are not Llama Guard 3 categories: use codes among {', '.join(LLAMA_GUARD_3_CATEGORIES)}"
            )
        return codes


class GuardrailConfig(Section):
    enabled: bool = Field(False, description="check prompts (and optionally answers) before the engine")
    classifier_model: str | None = Field(
        None,
        description="the stack's model (models[].name) that classifies: a moderation model of the Llama Guard 3 "
        "family, served like any other",
    )
    image: str | None = Field(
        None, description="the processor's image (built from guardrail/Dockerfile), pinned by digest in prod"
    )
    failure_mode: FailureMode = Field(
        FailureMode.CLOSED,
        description="when the processor itself is down or too slow: open serves requests unchecked, closed "
        "refuses them (Envoy's ext_proc failOpen)",
    )
    classifier_timeout_seconds: float = Field(
        2.0, gt=0, le=30, description="one classifier call's limit (seconds)"
    )
    stream_check_interval_chars: int = Field(
        400,
        ge=50,
        description="streamed answers are classified every this many new characters and at the end",
    )
    replicas: int = Field(2, ge=1, description="processor pods (2 or more keep one during node drains)")
    memory: Quantity = Field(
        "512Mi",
        description="each processor pod's memory (request = limit); it sizes how many large prompts a pod checks "
        "at once (guardrail/memory.py)",
    )
    default: GuardrailPolicy = Field(
        default_factory=GuardrailPolicy,  # type: ignore[arg-type]
        description="the policy of every API client without its own",
    )
    clients: dict[K8sName, GuardrailPolicy] = Field(
        default_factory=dict, description="per API client id: keys that differ from `default`"
    )
    log_prompts: bool = Field(
        False, description="write the checked text into the audit log (off: client, category, decision only)"
    )

    @model_validator(mode="after")
    def _needs(self) -> GuardrailConfig:
        if self.enabled:
            missing = [k for k in ("classifier_model", "image") if getattr(self, k) is None]
            if missing:
                raise ValueError(
                    f"{' and '.join(missing)}: the guardrail needs a moderation model of the stack (e.g. add "
                    "{name: llama-guard-3-1b, ...} to models and name it) and the processor's image "
                    "(docker build -f guardrail/Dockerfile)"
                )
        return self

    @model_validator(mode="after")
    def _block_or_flag(self) -> GuardrailConfig:
        for where, policy in self._effective().items():
            both = sorted(set(policy.get("block", [])) & set(policy.get("flag", [])))
            if both:
                raise ValueError(
                    f"{where}: {', '.join(both)} both blocked and flagged; a category is one or the other "
                    "(drop it from block, or from flag)"
                )
        return self

    def _effective(self) -> dict[str, dict[str, Any]]:
        """Each policy as the processor reads it, by where it is written: a client's unset keys are the
        default's, and a category flagged with `block` unset is taken out of the default block list (all
        fourteen), so `flag: [S6]` alone means "let S6 through, marked"."""
        default = self.default.model_dump(exclude_none=True, mode="json")
        out = {"default": default}
        for client, own in self.clients.items():
            out[f"clients.{client}"] = {**default, **own.model_dump(exclude_none=True, mode="json")}
        for effective in out.values():
            if "block" not in effective and effective.get("flag"):
                flagged = {c.upper() for c in effective["flag"]}
                effective["block"] = [c for c in LLAMA_GUARD_3_CATEGORIES if c not in flagged]
        return out

    def policy(self) -> dict[str, Any]:
        """The processor's policy file (guardrail/policy.py): {"default": ..., "clients": {id: ...}}."""
        effective = self._effective()
        return {
            "default": effective.pop("default"),
            "clients": {where.removeprefix("clients."): p for where, p in effective.items()},
        }


# --- the chat front end --------------------------------------------------------------------------------------


class OidcConfig(Section):
    provider_url: str = Field(
        ...,
        pattern=r"^https://.+/\.well-known/openid-configuration$",
        description="the OpenID provider's discovery URL (https://.../.well-known/openid-configuration)",
    )
    client_id: str = Field(
        ...,
        min_length=1,
        description="the client registered at the provider (redirect URI https://<chat hostname>/oauth/oidc/callback)",
    )
    client_secret_name: K8sName = Field(..., description="Secret in the namespace holding the client secret")
    client_secret_key: str = Field("client-secret", min_length=1, description="its key in that Secret")
    issuer_cidrs: list[str] = Field(
        ...,
        min_length=1,
        description="networks the provider's discovery, token and keys endpoints answer from (a NetworkPolicy "
        "cannot name a DNS name); the chat pod may reach them on 443 only",
    )
    provider_name: str = Field("SSO", min_length=1, description="the sign-in button's label")
    scopes: str = Field("openid email profile", description="space-separated scopes")
    allow_signup: bool = Field(True, description="a first sign-in creates the account")
    login_form: bool = Field(False, description="also keep Open WebUI's own e-mail/password form")

    @field_validator("issuer_cidrs")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        open_to_all = [c for c in parse_cidrs(cidrs) if c.endswith("/0")]
        if open_to_all:
            raise ValueError(
                f"{', '.join(open_to_all)} would open the chat pod's egress to every address on 443; name the "
                "provider's own networks (its discovery, token and keys endpoints), e.g. 10.0.0.20/32"
            )
        return cidrs


class ChatPersistenceConfig(Section):
    enabled: bool = Field(
        True, description="keep accounts and chats on a PersistentVolumeClaim (off: a restart loses them)"
    )
    size: Quantity = Field("2Gi", description="size of the claim")
    storage_class: K8sName | None = Field(None, description="StorageClass (default: the cluster's)")


class ChatUiConfig(Section):
    enabled: bool = Field(
        False, description="Open WebUI on its own hostname through the same gateway and TLS"
    )
    hostname: str | None = Field(
        None,
        description="DNS name of the chat UI: resolves to the gateway's address; the certificate covers it",
    )
    client: K8sName = Field(
        "open-webui", description="the API client id (serving.api_keys.clients) the chat UI calls with"
    )
    oidc: OidcConfig | None = Field(None, description="single sign-on; absent: Open WebUI's own accounts")
    persistence: ChatPersistenceConfig = Field(default_factory=ChatPersistenceConfig)  # type: ignore[arg-type]
    pod_cidrs: list[str] | None = Field(
        None,
        description="on-prem, where gateway.allowed_source_cidrs is an allow-list: the cluster's pod network, "
        "admitted for the chat UI's own calls to the endpoint (AWS: the VPC, GCP: the pods range, by default)",
    )

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, hostname: str | None) -> str | None:
        if hostname is not None and not DNS_NAME.match(hostname):
            raise ValueError(
                f"{hostname!r} is not a lowercase DNS name with a domain (e.g. chat.example.com)"
            )
        return hostname

    @field_validator("pod_cidrs")
    @classmethod
    def _pod_cidrs(cls, cidrs: list[str] | None) -> list[str] | None:
        return None if cidrs is None else parse_cidrs(cidrs)

    @model_validator(mode="after")
    def _needs_hostname(self) -> ChatUiConfig:
        if self.enabled and self.hostname is None:
            raise ValueError("hostname: the chat UI needs its own DNS name, e.g. chat.example.com")
        return self


# --- GPU telemetry ----------------------------------------------------------------------------------------


class GpuTelemetryConfig(Section):
    enabled: bool = Field(
        True,
        description="NVIDIA's DCGM exporter on the GPU nodes, scraped by the stack's Prometheus (only where "
        "the stack serves on GPUs; with the GPU operator, the operator's own exporter)",
    )
    namespace: K8sName = Field(
        "gpu-telemetry",
        description="the exporter's own namespace (Pod Security privileged: it reads the GPUs through the "
        "host's driver)",
    )
    runtime_class_name: K8sName | None = Field(
        None,
        description="on-prem with the device plugin: the RuntimeClass that exposes GPUs to containers, "
        "where NVIDIA's runtime is not containerd's default (e.g. nvidia)",
    )
