"""The stack file's operating sections: service-level objectives, alerts, dashboards, GPU telemetry, the
content-filter guardrail and the chat front end (docs/operating.md).

Kept apart from `stacks/config.py`, which imports these sections and states the rules that cross them
(a guardrail's classifier must be one of the stack's models, a chat client one of its API clients); this
module imports nothing of the schema back.
"""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from components.alert_rules import BURN_WINDOWS, TTFT_BUCKETS
from stacks.config_base import DNS_NAME, K8sName, Quantity, Section

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
    OPEN = "open"  # a processor or classifier failure lets the request through (availability first)
    CLOSED = "closed"  # ... refuses it (safety first)


class GuardrailPolicy(Section):
    """What the guardrail does for one API client (or every client without its own)."""

    block: list[str] | None = Field(
        None, description="classifier categories refused with a 400 (e.g. Llama Guard's S1..S14)"
    )
    flag: list[str] | None = Field(
        None, description="categories let through but marked (response header, audit log)"
    )
    failure_mode: FailureMode | None = Field(
        None, description="open: serve when the classifier fails; closed: refuse"
    )
    check_responses: bool | None = Field(None, description="also classify the model's answers")
    pii: bool | None = Field(None, description="also refuse prompts carrying personal data (Presidio)")


class GuardrailConfig(Section):
    enabled: bool = Field(False, description="check prompts (and optionally answers) before the engine")
    classifier_model: str | None = Field(
        None,
        description="the stack's model (models[].name) that classifies: a moderation model such as Llama "
        "Guard, served like any other",
    )
    image: str | None = Field(
        None, description="the processor's image (guardrail/Dockerfile), pinned by digest in prod"
    )
    replicas: int = Field(2, ge=1, description="processor pods (2 or more keep one during node drains)")
    default: GuardrailPolicy = Field(
        default_factory=GuardrailPolicy,  # type: ignore[arg-type]
        description="the policy of every API client without its own",
    )
    clients: dict[K8sName, GuardrailPolicy] = Field(
        default_factory=dict, description="per API client id: keys that differ from `default`"
    )
    log_prompts: bool = Field(
        False, description="write prompt text into the audit log (off: client, category, decision only)"
    )

    @model_validator(mode="after")
    def _needs_classifier(self) -> GuardrailConfig:
        if self.enabled and not self.classifier_model:
            raise ValueError(
                "classifier_model: the guardrail needs a moderation model of the stack, e.g. add "
                "{name: llama-guard-3-1b, ...} to models and name it here"
            )
        return self


# --- the chat front end --------------------------------------------------------------------------------------


class OidcConfig(Section):
    issuer_url: str = Field(..., pattern=r"^https://", description="the OpenID provider's issuer URL")
    client_id: str = Field(..., min_length=1, description="the OAuth client id registered for the chat UI")
    client_secret: K8sName = Field(
        ..., description="Secret in the namespace holding the client secret under key client-secret"
    )
    signup: bool = Field(True, description="create an account on a user's first sign-in")
    login_form: bool = Field(False, description="keep Open WebUI's own e-mail/password form")


class ChatPersistenceConfig(Section):
    enabled: bool = Field(True, description="keep chats and accounts on a PersistentVolumeClaim")
    size: Quantity = Field("2Gi", description="size of the claim")
    storage_class: K8sName | None = Field(None, description="StorageClass (default: the cluster's)")


class ChatUiConfig(Section):
    enabled: bool = Field(False, description="Open WebUI on its own hostname through the same gateway")
    hostname: str | None = Field(None, description="DNS name of the chat UI (the certificate covers it)")
    client: K8sName = Field(
        "open-webui", description="the API client id (serving.api_keys.clients) the chat UI calls with"
    )
    oidc: OidcConfig | None = Field(None, description="single sign-on; absent: Open WebUI's own accounts")
    persistence: ChatPersistenceConfig = Field(default_factory=ChatPersistenceConfig)  # type: ignore[arg-type]

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, hostname: str | None) -> str | None:
        if hostname is not None and not DNS_NAME.match(hostname):
            raise ValueError(
                f"{hostname!r} is not a lowercase DNS name with a domain (e.g. chat.example.com)"
            )
        return hostname

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
