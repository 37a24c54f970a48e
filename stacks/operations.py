"""What makes a deployed stack operable and guarded (docs/operating.md): dashboards, alert rules, GPU
telemetry, the content-filter guardrail and the chat front end, composed from the stack file's operating
sections (stacks/config_operations.py) once the workload (stacks/workload.py) has its namespace, Prometheus,
gateway and model servers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.alert_rules import (
    AlertRules,
    AlertRulesArgs,
    GuardrailProcessor,
    ModelObjectives,
    SeriesSources,
    Thresholds,
    ai_gateway_cluster_pattern,
    route_cluster_pattern,
)
from components.alert_rules import ServedVariant as AlertedVariant
from components.chat_ui import ChatOidc, ChatPersistence, ChatUi, ChatUiArgs
from components.choices import GpuDriverStack, TlsMode
from components.dashboards import Dashboards, DashboardsArgs
from components.gpu_node_pool import GpuPlacement
from components.gpu_telemetry import (
    GpuTelemetry,
    GpuTelemetryArgs,
    GpuTelemetrySource,
    gpu_operator_telemetry_values,
)
from components.guardrail import GuardrailArgs, GuardrailFailureMode
from components.load_balancer import LoadBalancer
from components.monitoring import Monitoring, MonitoringArgs, gateway_pod_monitors
from components.tls import TlsCertificates
from stacks.config import (
    GUARDRAIL_MAX_TEXT_CHARS,
    Platform,
    StackConfig,
    cold_start_budget_of,
    cold_start_seconds,
)
from stacks.routing import VariantRoute, route_timeout_seconds

#: Component name of every operating piece (objects `llm-...`, as the workload's).
NAME = "llm"
#: The chat UI's listeners on the Gateway: http-chat and https-chat (components/load_balancer.py).
CHAT_LISTENER = "chat"


#: Where the guardrail's ext_proc runs in the gateway's HTTP filter chain (EnvoyProxy spec.filterOrder). By
#: default Envoy Gateway v1.8.3 runs ext_proc (order 100+) before RBAC (301, the SecurityPolicy's address rules),
#: the local rate limit (302, requests per client) and the global one (303, token quotas)
#: (internal/xds/translator/httpfilters.go newOrderedHTTPFilter), so a request those would refuse still costs a
#: classifier call, and one client over its limit could saturate the classifier for everyone. Each entry moves
#: every ext_proc after the last filter of that type, when the chain has one (sortHTTPFilters), so the three
#: together put it after whichever of them exist. AI Gateway's own ext_proc is inserted later, before the first
#: ext_proc, wasm, lua or rbac filter (ai-gateway v1.1.0 internal/extensionserver/post_translate_modify.go
#: insertAIGatewayExtProcFilter), so it still reads the model before routing. That insertion point list also
#: holds custom_response (order 0), which a BackendTrafficPolicy responseOverride adds: with one (token quotas'
#: 429, the hold's 503) AI Gateway's ext_proc lands first in the chain, before the API-key check, and reads
#: bodies of requests the key check then refuses (docs/operating.md, "Where it sits").
GUARDRAIL_FILTER_ORDER: tuple[dict[str, str], ...] = (
    {"name": "envoy.filters.http.ext_proc", "after": "envoy.filters.http.rbac"},
    {"name": "envoy.filters.http.ext_proc", "after": "envoy.filters.http.local_ratelimit"},
    {"name": "envoy.filters.http.ext_proc", "after": "envoy.filters.http.ratelimit"},
)


def chat_pod_cidrs(cfg: StackConfig) -> list[str]:
    """Where the chat UI's calls to the endpoint come from, for the API's address rules, when those are an
    allow-list: the pod network (AWS VPC CNI gives pods VPC addresses; GKE the pods range; AKS overlay its
    pod range; on-prem the stack file names it). [] when the chat UI is off or the API is open to every address."""
    if not cfg.chat_ui.enabled or "0.0.0.0/0" in cfg.gateway.allowed_source_cidrs:
        return []
    if cfg.chat_ui.pod_cidrs is not None:
        return list(cfg.chat_ui.pod_cidrs)
    if cfg.platform is Platform.AWS and cfg.aws is not None:
        return [cfg.aws.network.vpc_cidr]
    if cfg.platform is Platform.GCP and cfg.gcp is not None:
        return [cfg.gcp.network.pods_cidr]
    if cfg.platform is Platform.AZURE and cfg.azure is not None:
        # The chat UI reaches Envoy through the internal ClusterIP Service, pod to pod inside the overlay:
        # no SNAT (overlay SNATs only traffic leaving for the VNet), so Envoy sees the pod range.
        return [cfg.azure.network.pod_cidr]
    return []


@dataclass(frozen=True)
class OperationsContext:
    """What the workload hands over: the provider, where the monitors may go, what they wait for."""

    provider: k8s.Provider
    placement: GpuPlacement | None  # where GPU replicas land (None: no GPU)
    monitors_possible: bool  # the Prometheus operator's CRDs are there (installed or the cluster's)
    monitors_after: list[pulumi.Resource]  # the release that installs those CRDs, when the stack does
    monitoring: Monitoring | None = None  # the stack's Monitoring (its gateway PodMonitors are its children)
    gateway_release: pulumi.Resource | None = None  # Envoy Gateway's release: makes the proxies' namespace
    namespace: str = "inferstack"  # the serving namespace
    namespace_resource: pulumi.Resource | None = None  # ... and the Namespace object that makes it
    routes: list[VariantRoute] = field(default_factory=list)  # every model/variant and how it is reached
    model_route: str | None = None  # the AIGatewayRoute, where the stack routes by model
    model_route_rules: list[dict[str, Any]] = field(default_factory=list)  # its spec.rules
    api_route: str = "llm-api"  # the plain HTTPRoute of a stack that does not route by model
    dns_cidrs: list[str] = field(default_factory=list)  # resolvers off the pod network (workload.dns_cidrs)
    gateway: LoadBalancer | None = None  # the stack's gateway (the chat UI's listener, internal Service)
    tls: TlsCertificates | None = None  # its certificates (the internal CA the chat UI must trust)
    api_key_secret: str = "llm-api-keys"  # the Secret of API keys, one per client id
    https_port: int = 443  # where browsers reach HTTPS (a node port on a laptop cluster)


def reads_gateway_series(cfg: StackConfig) -> bool:
    """Whether alerts or dashboards read the gateway's and the cluster's series (Envoy's stats,
    kube-state-metrics), so that the stack's Prometheus must scrape them."""
    m = cfg.monitoring
    return (m.alerts.enabled or m.dashboards.enabled) and (m.install_prometheus or m.pod_monitor)


def uses_gpus(cfg: StackConfig) -> bool:
    return any(v.config.uses_gpu for v in cfg.served)


def telemetry_source(cfg: StackConfig) -> GpuTelemetrySource:
    """How the DCGM exporter reaches the GPUs, by how the stack's GPU nodes got their driver stack
    (components/gpu_telemetry.py GpuTelemetrySource)."""
    if cfg.platform is Platform.GCP:
        return GpuTelemetrySource.GKE
    if cfg.platform is Platform.ONPREM and cfg.gpu_pool.driver_stack is GpuDriverStack.GPU_OPERATOR:
        return GpuTelemetrySource.GPU_OPERATOR
    return GpuTelemetrySource.NVIDIA_RUNTIME


def gpu_telemetry_args(cfg: StackConfig, placement: GpuPlacement | None) -> GpuTelemetryArgs | None:
    """The exporter's args, or None where the stack has no GPU, no monitors, or the file turns it off.
    With the GPU operator the args only yield values for the operator's release (stacks/onprem.py)."""
    m = cfg.monitoring
    if not (m.gpu_telemetry.enabled and uses_gpus(cfg) and (m.install_prometheus or m.pod_monitor)):
        return None
    source = telemetry_source(cfg)
    if source is GpuTelemetrySource.GPU_OPERATOR:
        return GpuTelemetryArgs(source=source, pod_monitor_labels=dict(m.pod_monitor_labels))
    if placement is None:
        return None
    return GpuTelemetryArgs(
        source=source,
        node_selector=dict(placement.node_selector),
        tolerations=list(placement.tolerations),
        namespace=m.gpu_telemetry.namespace,
        prometheus_namespace=m.prometheus_namespace,
        prometheus_pod_labels=dict(m.prometheus_pod_labels),
        pod_monitor_labels=dict(m.pod_monitor_labels),
        runtime_class_name=m.gpu_telemetry.runtime_class_name,
    )


def gpu_operator_values(cfg: StackConfig) -> dict[str, Any]:
    """Values for the GPU operator's release that turn on its own DCGM exporter and ServiceMonitor, or {}
    where the stack has no GPU operator or no GPU telemetry."""
    telemetry = gpu_telemetry_args(cfg, None)
    if telemetry is None or telemetry.source is not GpuTelemetrySource.GPU_OPERATOR:
        return {}
    return gpu_operator_telemetry_values(telemetry)


def stuck_at_zero_for(routes: list[VariantRoute]) -> str:
    """The `for:` of InferStackModelStuckAtZero: past the time to first token a held model's budget expects
    (a normal wake-up never pages), and before the gateway gives a held request up (its hold timeout, the
    budget's total: the interceptor then answers, its held-requests gauge drops to 0 and a pending alert
    would reset without ever firing). The shortest hold bounds it, the longest expectation sets it."""
    held = [r for r in routes if r.hold_name and r.hold_timeout_seconds]
    if not held:
        return "15m"
    expected = max(cold_start_budget_of(r.variant.config).expected_seconds for r in held)
    hold = min(int(r.hold_timeout_seconds or 0) for r in held)
    # At least 5 minutes; at most one minute under the hold, so the alert fires while a request still waits.
    seconds = min(max(expected + 60, 300), hold - 60)
    return f"{max(seconds // 60, 1)}m"


def _minutes(seconds: int) -> str:
    """A Prometheus `for:` duration of at least `seconds` and at least 15 minutes, in whole minutes."""
    return f"{max(15, math.ceil(seconds / 60))}m"


def alert_rules_args(cfg: StackConfig, ctx: OperationsContext, telemetry: bool) -> AlertRulesArgs:
    """The alerts of the stack: every served variant, each model's objectives (its own `slo`), and only
    the series sources the stack scrapes (an alert on a series nobody scrapes stays silent)."""
    m = cfg.monitoring
    gateway = ctx.monitoring is not None and reads_gateway_series(cfg)
    objectives: dict[str, ModelObjectives] = {}
    for route in ctx.routes:
        v = route.variant
        if v.model_name in objectives:
            continue
        slo = v.config.slo
        clusters = None
        # The guardrail's classifier is called by the processor straight at its Service, never through the
        # gateway: its availability is the engine's own count (the gateway would see only direct calls).
        classifier = cfg.guardrail.enabled and v.model_name == cfg.guardrail.classifier_model
        if gateway and not classifier:
            # The model's share of the gateway's traffic: its route rules' Envoy clusters.
            clusters = (
                ai_gateway_cluster_pattern(
                    ctx.namespace, ctx.model_route, ctx.model_route_rules, v.model_name
                )
                if ctx.model_route is not None
                else route_cluster_pattern(ctx.namespace, ctx.api_route, [0])
            )
        holds = [r for r in ctx.routes if r.variant.model_name == v.model_name and r.hold_name]
        objectives[v.model_name] = ModelObjectives(
            model=v.model_name,
            availability=slo.availability,
            ttft_seconds=slo.ttft_seconds,
            ttft_target=slo.ttft_target,
            gateway_clusters=clusters,
            interceptor_route=(ctx.namespace, holds[0].hold_name) if holds and holds[0].hold_name else None,
        )
    return AlertRulesArgs(
        namespace=ctx.namespace,
        variants=tuple(
            AlertedVariant(
                model=r.variant.model_name,
                variant=r.variant.variant or "default",
                deployment=r.variant.resource_name,
                namespace=ctx.namespace,
            )
            for r in ctx.routes
        ),
        objectives=tuple(objectives.values()),
        sources=SeriesSources(
            gateway=gateway,
            dcgm=telemetry,
            # Installed with the stack's Prometheus; an existing one must scrape it wherever a model is held
            # (the held model's autoscaler reads it too: docs/multi-model.md).
            kube_state_metrics=m.install_prometheus or any(r.hold_name for r in ctx.routes),
            # Both scraped wherever monitors can be made (stacks/workload.py: the cert-manager release's
            # PodMonitor, the KEDA HTTP add-on's interceptor ServiceMonitor where a model is held).
            cert_manager=ctx.monitors_possible,
            keda_http=ctx.monitors_possible and any(r.hold_name for r in ctx.routes),
        ),
        thresholds=Thresholds(
            # A pod is not ready, by design, for its whole cold start (a GPU node, the image, the weights, the
            # load, up to the startup probe's allowance): the alert waits the longest the plan budgets
            # (stacks/cold_start.py), so a replica loading its model never pages.
            pod_not_ready_for=_minutes(max(cold_start_seconds(r.variant.config) for r in ctx.routes)),
            stuck_at_zero_for=stuck_at_zero_for(ctx.routes),
        ),
        rule_labels=dict(m.pod_monitor_labels if m.alerts.rule_labels is None else m.alerts.rule_labels),
        runbook_base_url=m.alerts.runbook_url,
        # The processor's Deployment, `<NAME>-guardrail` (components/guardrail.py), made exactly where
        # guardrail_args gives args: the guardrail on, in front of the model route.
        guardrail=GuardrailProcessor(
            deployment=f"{NAME}-guardrail",
            namespace=ctx.namespace,
            fail_open=GuardrailFailureMode(cfg.guardrail.failure_mode.value) is GuardrailFailureMode.OPEN,
        )
        if cfg.guardrail.enabled and ctx.model_route is not None
        else None,
    )


def guardrail_args(
    cfg: StackConfig, namespace: str, model_route: str | None, routes: list[VariantRoute], dns: list[str]
) -> GuardrailArgs | None:
    """The guardrail in front of the stack's model route, classifying with the stack's own moderation model
    (its Deployment), or None where the stack file leaves it off. Its extProc goes into the route's one
    EnvoyExtensionPolicy, which AI Gateway routing writes (attach_policy False; ModelRoutingArgs.ext_proc)."""
    g = cfg.guardrail
    if not g.enabled or g.classifier_model is None or g.image is None or model_route is None:
        return None
    classifier = next(r.variant for r in routes if r.variant.model_name == g.classifier_model)
    return GuardrailArgs(
        namespace=namespace,
        route_name=model_route,
        classifier_model=classifier.model_name,
        classifier_service=classifier.resource_name,
        classifier_pod_labels={
            "app.kubernetes.io/name": classifier.resource_name,
            "app.kubernetes.io/component": "model-server",
        },
        image=g.image,
        policy=g.policy(),
        failure_mode=GuardrailFailureMode(g.failure_mode.value),
        classifier_timeout_s=g.classifier_timeout_seconds,
        stream_check_interval_chars=g.stream_check_interval_chars,
        log_prompts=g.log_prompts,
        replicas=g.replicas,
        # Refused early (413), without a classifier call, what the classifier could never read: English runs
        # about 4 characters a token with the Llama 3 tokenizer, so 8 a token is above any text that fits its
        # context; between the two the classifier's own context-length refusal gives the same 413.
        max_text_chars=min(8 * classifier.config.model.max_model_len, GUARDRAIL_MAX_TEXT_CHARS),
        memory=g.memory,
        # Envoy holds a guarded exchange's ext_proc stream as long as the route lets it run: a processor pod
        # going away drains that long before it stops.
        drain_seconds=route_timeout_seconds(cfg, routes),
        dns_cidrs=list(dns),
        attach_policy=False,
    )


def chat_ui_args(cfg: StackConfig, ctx: OperationsContext) -> ChatUiArgs | None:
    """Open WebUI on the chat hostname, calling the endpoint as its own API client, or None when off."""
    chat = cfg.chat_ui
    gateway = ctx.gateway
    if not chat.enabled or chat.hostname is None or gateway is None or gateway.internal_address is None:
        return None
    oidc = chat.oidc
    return ChatUiArgs(
        namespace=ctx.namespace,
        hostname=chat.hostname,
        listener_key=CHAT_LISTENER,
        gateway_name=NAME,
        api_hostname=cfg.gateway.hostname,
        endpoint_address=gateway.internal_address,
        api_key_secret=ctx.api_key_secret,
        api_key_client_id=chat.client,
        https_port=ctx.https_port,
        oidc=ChatOidc(
            provider_url=oidc.provider_url,
            client_id=oidc.client_id,
            client_secret_name=oidc.client_secret_name,
            client_secret_key=oidc.client_secret_key,
            issuer_cidrs=list(oidc.issuer_cidrs),
            provider_name=oidc.provider_name,
            scopes=oidc.scopes,
            allow_signup=oidc.allow_signup,
            login_form=oidc.login_form,
        )
        if oidc is not None
        else None,
        persistence=ChatPersistence.VOLUME if chat.persistence.enabled else ChatPersistence.NONE,
        storage_size=chat.persistence.size if chat.persistence.enabled else None,
        storage_class=chat.persistence.storage_class if chat.persistence.enabled else None,
        # The internal CA signs the endpoint's certificate: the chat pod must trust it.
        trusted_ca_pem=ctx.tls.ca_certificate_pem.apply(lambda pem: pem or "")
        if ctx.tls is not None and cfg.tls.mode is TlsMode.INTERNAL_CA
        else None,
        dns_cidrs=list(ctx.dns_cidrs),
        depends_on=[
            gateway,
            *([ctx.tls] if ctx.tls is not None else []),
            *([ctx.namespace_resource] if ctx.namespace_resource is not None else []),
        ],
    )


def deploy_operations(cfg: StackConfig, ctx: OperationsContext) -> None:
    """Dashboards, alert rules, GPU telemetry and the chat UI (each only where the stack file asks and it can
    work). The guardrail is made by the workload, before the model route whose policy names it."""
    m = cfg.monitoring
    opts = pulumi.ResourceOptions(provider=ctx.provider, depends_on=list(ctx.monitors_after))
    # The ConfigMaps need a namespace that exists: the installed Prometheus's (its release makes it), or
    # the one the stack file names for an existing Grafana.
    if m.dashboards.enabled and (m.install_prometheus or m.dashboards.namespace is not None):
        Dashboards(
            NAME,
            DashboardsArgs(
                namespace=m.dashboards.namespace or m.prometheus_namespace,
                sidecar_label=m.dashboards.sidecar_label,
                sidecar_label_value=m.dashboards.sidecar_label_value,
            ),
            opts=opts,
        )
    if ctx.monitoring is not None and reads_gateway_series(cfg):
        # Envoy's stats (5xx, 429, per-route traffic) for the alerts and dashboards; AI Gateway's sidecar
        # adds per-model token usage where the stack routes by model.
        gateway_pod_monitors(
            NAME,
            MonitoringArgs(
                scrape_envoy=True,
                scrape_ai_gateway_extproc=cfg.routes_by_model,
                pod_monitor_labels=dict(m.pod_monitor_labels),
            ),
            pulumi.ResourceOptions(
                parent=ctx.monitoring,
                depends_on=[*ctx.monitors_after, *([ctx.gateway_release] if ctx.gateway_release else [])],
            ),
        )
    chat = chat_ui_args(cfg, ctx)
    if chat is not None:
        ChatUi(NAME, chat, opts=pulumi.ResourceOptions(provider=ctx.provider))
    telemetry = gpu_telemetry_args(cfg, ctx.placement)
    if m.alerts.enabled and ctx.monitors_possible:
        AlertRules(
            NAME,
            alert_rules_args(cfg, ctx, telemetry is not None),
            opts=pulumi.ResourceOptions(
                provider=ctx.provider,
                depends_on=[
                    *ctx.monitors_after,
                    *([ctx.namespace_resource] if ctx.namespace_resource else []),
                ],
            ),
        )
    if telemetry is not None and telemetry.source is not GpuTelemetrySource.GPU_OPERATOR:
        GpuTelemetry(
            NAME,
            GpuTelemetryArgs(**{**telemetry.__dict__, "monitors_after": list(ctx.monitors_after)}),
            opts=pulumi.ResourceOptions(provider=ctx.provider),
        )
