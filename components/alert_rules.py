"""Alerts as PrometheusRules: per-model SLO burn-rate alerts and the symptoms that explain them.

`alert_rule_groups(args)` is pure: it returns what goes in a PrometheusRule's `spec.groups` (plain dicts),
so the tests write it to a file and run promtool on it. `AlertRules` wraps it in one
`monitoring.coreos.com/v1 PrometheusRule`.

What is emitted, and only when its series are scraped (an alert on a series nobody scrapes is silent
forever, which is worse than no alert: it reads as "all is well"). `SeriesSources` says what is scraped:

* always (the model server's PodMonitor scrapes vLLM): the latency SLO, queue saturation, KV cache near
  full; the availability SLO from the engine's own HTTP counter when the gateway is not scraped;
* `gateway` (the Envoy PodMonitor of components/monitoring.py): the availability SLO measured at the
  gateway, the gateway's 5xx and 429 rates;
* `dcgm` (DCGM exporter): GPU memory near full, XID errors;
* `kube_state_metrics`: pods not ready, pods restarting (the models' and the guardrail processor's), the
  guardrail processor with no available replica;
* `cert_manager` (its controller's /metrics scraped): certificates near expiry;
* `keda_http` and `kube_state_metrics`: a model held at zero while requests wait in the interceptor.

SLOs: multi-window, multi-burn-rate alerts (Google SRE workbook, chapter 5 "Alerting on SLOs", table 5-8:
page at 14.4x burn over 1h confirmed by 5m, and 6x over 6h confirmed by 30m; ticket at 3x over 1d confirmed
by 2h, and 1x over 3d confirmed by 6h). The budget is over a 30-day window (the workbook's), so 14.4x for
1h spends 2% of it, 6x for 6h 5%, 3x for 1d 10%, 1x for 3d 10%. Each window's error ratio is a recording
rule, so an alert reads two precomputed series.

Metric sources (names as the pinned versions export them; every one is listed in docs/operating.md#metric-sources):

* vLLM v0.31.0, vllm/v1/metrics/loggers.py PrometheusStatLogger (labels `model_name` = the served model
  name, `engine`): gauges `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc` (0..1; the older
  `vllm:gpu_cache_usage_perc` is deprecated), histogram `vllm:time_to_first_token_seconds` with buckets
  0.001 .. 2560 s (TTFT_BUCKETS). The API server's `http_requests_total{handler,status}` comes from
  prometheus-fastapi-instrumentator (status grouped as 2xx/4xx/5xx). Read in the search index's copy of
  those files, not a checkout of the tag (the repository is too large to mirror here; see
  inferstack/promotion.py): check against `curl <pod>:8000/metrics` on the pinned image.
* Envoy (Envoy Gateway v1.8.3's proxies, scraped at /stats/prometheus): cluster stats
  `envoy_cluster_upstream_rq_total`, `envoy_cluster_upstream_rq_xx{envoy_response_code_class}`,
  `envoy_cluster_ratelimit_over_limit` (the global HTTP rate-limit filter's - the token quotas' - stats live
  under `cluster.<route target cluster>.ratelimit.`, Envoy docs "Rate limit" filter statistics), the local
  rate-limit filter's `envoy_http_local_rate_limit_rate_limited{envoy_local_http_ratelimit_prefix=
  "http_local_rate_limiter"}` (BackendTrafficPolicy rateLimit.type Local: Envoy Gateway v1.8.3
  internal/xds/translator/local_ratelimit.go sets stat_prefix `http_local_rate_limiter`; the filter counts
  under `<stat_prefix>.http_local_rate_limit.`, and Envoy's default tag extractor - source/common/config/
  well_known_names.cc `$.http_local_rate_limit.**`, on since EG's bootstrap keeps `use_all_default_tags:
  true` - moves the prefix into that label), and the listener's HTTP connection manager stats
  `envoy_http_downstream_rq_total`, `envoy_http_downstream_rq_xx` with `envoy_http_conn_manager_prefix` =
  `http-<port>` / `https-<port>` (internal/xds/translator/listener.go hcmStatPrefix at v1.8.3). Envoy's Prometheus output turns the tag-extracted names into labels
  (`envoy_cluster_name`, `envoy_response_code_class`) - Envoy docs, admin `/stats/prometheus` and
  config.metrics.v3 default tag specifiers.
* DCGM exporter (etc/default-counters.csv, also the dcgm-exporter chart's values at 4.5.3-4.8.2):
  `DCGM_FI_DEV_FB_USED`, `DCGM_FI_DEV_FB_FREE` (MiB), `DCGM_FI_DEV_XID_ERRORS` (gauge: the code of the LAST
  XID seen, held until the exporter restarts - NVIDIA/dcgm-exporter#500, NVIDIA/DCGM#277 - so only a change
  of it is news).
* kube-state-metrics v2.20.0 (docs/metrics/workload/pod-metrics.md, deployment-metrics.md):
  `kube_pod_status_ready{condition}`, `kube_pod_status_phase{phase}`, `kube_pod_status_unschedulable`,
  `kube_pod_container_status_restarts_total`, `kube_deployment_status_replicas_available`.
* cert-manager v1.20.2 (pkg/metrics/certificates.go): `certmanager_certificate_expiration_timestamp_seconds`
  {name, namespace}.
* KEDA HTTP add-on v0.15.0 interceptor (interceptor/metrics/instruments.go): OTel UpDownCounter
  `interceptor.request.concurrency` {route_name, route_namespace}, incremented when a request enters the
  interceptor (middleware/counting.go) and decremented when it leaves, so held requests count; the OTel
  Prometheus exporter (on by default, OTEL_PROM_EXPORTER_ENABLED, port 2223: pkg/observability/config.go)
  writes it as the gauge `interceptor_request_concurrency`.

Which availability SLI: the gateway's, per model, when the gateway is scraped. The engine never counts a
request it did not receive - a pod that is down, a model at zero that never woke, a request that timed out
in the gateway - and those are the outages users see. Per model means per route cluster: Envoy Gateway names
a route rule's cluster `httproute/<namespace>/<route>/rule/<index>` (internal/gatewayapi/helpers.go
irRouteDestinationName at v1.8.3; `/backend/<n>` appended when it makes a cluster per backend, which AI
Gateway v1.1.0 parses in internal/extensionserver/post_translate_modify.go parseAIGatewayClusterName). AI
Gateway v1.1.0 copies an AIGatewayRoute's rules in order into an HTTPRoute of the same name and appends one
`route-not-found` rule (internal/controller/ai_gateway_route.go), so the model's clusters are those of the
AIGatewayRoute rules that match its `x-ai-eg-model` header (`ai_gateway_cluster_pattern`). Router-made
503s (no healthy upstream) and 504s (upstream timeout) are charged to the cluster too; a request refused
before routing (bad API key: 401, unknown model: 404 from AI Gateway) belongs to no model and is not an
availability error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._common import child, labels, reject_invalid_args

#: vLLM v0.31.0's TTFT histogram buckets (vllm/v1/metrics/loggers.py, `vllm:time_to_first_token_seconds`).
#: A latency objective's threshold must be one of them: between two buckets the share of fast requests is
#: not in the data.
TTFT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip

#: (long window, short window, burn rate, severity): Google SRE workbook ch. 5, "Multiwindow,
#: Multi-Burn-Rate Alerts" (recommended parameters for a 30-day, 99.9% SLO; the factors hold for any target).
BURN_WINDOWS: tuple[tuple[str, str, float, str], ...] = (
    ("1h", "5m", 14.4, "page"),
    ("6h", "30m", 6.0, "page"),
    ("1d", "2h", 3.0, "ticket"),
    ("3d", "6h", 1.0, "ticket"),
)
#: Every window a recording rule is kept for.
SLO_WINDOWS: tuple[str, ...] = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
#: The windows only the ticket alerts read. A 1d or 3d ratio moves little in a few minutes, so re-reading a
#: day of samples every 30 s is wasted work: these are recorded in their own group every
#: LONG_WINDOW_INTERVAL, together with the ticket alerts that read them. Rules of a group run in order at one
#: timestamp, so those alerts always see this evaluation's ratios; an alert in another group could find the
#: recorded series older than the query lookback (5 minutes by default) and blink out between evaluations.
LONG_WINDOWS: tuple[str, ...] = ("1d", "3d")
LONG_WINDOW_INTERVAL = "5m"

SEVERITY_PAGE = "page"
SEVERITY_TICKET = "ticket"

#: The HTTP connection manager prefixes of a Gateway's listeners (`http-<port>` / `https-<port>`, Envoy
#: Gateway v1.8.3 hcmStatPrefix); the proxy's own stats and readiness listeners (`eg-stats-http`, ...) are
#: not client traffic.
GATEWAY_HCM_PREFIX = "https?-[0-9]+"
#: The pod label Envoy Gateway puts on each proxy pod, copied onto every Envoy series by the PodMonitor
#: (components/monitoring.py ENVOY_GATEWAY_POD_LABELS).
GATEWAY_NAME_LABEL = "gateway_envoyproxy_io_owning_gateway_name"
#: The local rate-limit filter's stat_prefix (Envoy Gateway v1.8.3 internal/xds/translator/local_ratelimit.go
#: localRateLimitFilterStatPrefix); Envoy's default tag extractor writes it as this label's value.
LOCAL_RATE_LIMIT_PREFIX = "http_local_rate_limiter"
LOCAL_RATE_LIMIT_PREFIX_LABEL = "envoy_local_http_ratelimit_prefix"
#: XIDs that report a fault of the application on the GPU, not of the GPU: NVIDIA's Xid catalogue
#: (https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html) puts 13 (graphics engine
#: exception), 31 (GPU memory page fault), 43 (GPU stopped processing: the channel of a killed or faulting
#: process) and 45 (preemptive cleanup after a process ends or is killed) in the RESTART_APP bucket. vLLM
#: pods stopped on scale-down or a rollout raise 43/45; an engine bug raises 13/31 and shows as the pod's
#: own errors and restarts, which have their alerts. None of them needs the node drained.
APPLICATION_XIDS: tuple[int, ...] = (13, 31, 43, 45)
#: AI Gateway's model header (components/model_routing.py MODEL_HEADER; ai-gateway internal/apischema).
AI_GATEWAY_MODEL_HEADER = "x-ai-eg-model"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_K8S_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class ServedVariant:
    """One Deployment serving a model: what the per-replica alerts select on."""

    model: str  # the OpenAI model name clients send; vLLM's `model_name` label
    variant: str  # the variant's name (A/B); shown in alert labels
    deployment: str  # the Deployment's name; its pods are `<deployment>-<pod-template-hash>-<suffix>`
    namespace: str  # the Deployment's namespace


@dataclass(frozen=True, kw_only=True)
class ModelObjectives:
    """One model's SLOs (over a 30-day window) and the gateway clusters that carry its requests."""

    model: str  # the OpenAI model name, as in ServedVariant.model
    availability: float = 0.995  # share of requests not answered 5xx, 0 < x < 1
    ttft_seconds: float = 2.5  # latency threshold: time to first token; one of TTFT_BUCKETS
    ttft_target: float = 0.95  # share of requests with TTFT <= ttft_seconds, 0 < x < 1
    # RE2 pattern of the Envoy cluster names (envoy_cluster_name) of this model's route rules
    # (route_cluster_pattern / ai_gateway_cluster_pattern). None: availability from the engine's own counter.
    gateway_clusters: str | None = None
    # KEDA HTTP add-on InterceptorRoute (namespace, name) that holds this model's requests at zero
    # (components/cold_start_hold.py); None: no cold-start hold, no stuck-at-zero alert.
    interceptor_route: tuple[str, str] | None = None


@dataclass(frozen=True, kw_only=True)
class GuardrailProcessor:
    """The content-filter guardrail's processor (components/guardrail.py): one Deployment, its pods
    `<deployment>-<pod-template-hash>-<suffix>`, called by Envoy for every guarded request. Down, it fails
    every request open (served unchecked) or closed (a 5xx), so it is watched like a model server."""

    deployment: str  # the Deployment's name: `<component name>-guardrail`, e.g. `llm-guardrail`
    namespace: str  # the Deployment's namespace (the serving namespace)
    fail_open: bool  # the EnvoyExtensionPolicy's failOpen: what its being down does to traffic


@dataclass(frozen=True, kw_only=True)
class SeriesSources:
    """Which exporters the Prometheus that loads these rules scrapes. vLLM's is always assumed (the model
    server makes its own PodMonitor)."""

    gateway: bool = True  # Envoy proxies (components/monitoring.py scrape_envoy)
    dcgm: bool = False  # NVIDIA DCGM exporter (GPU operator or its own chart)
    kube_state_metrics: bool = False  # kube-state-metrics
    cert_manager: bool = False  # cert-manager controller's /metrics
    keda_http: bool = False  # KEDA HTTP add-on interceptor's /metrics (port 2223)


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """The symptom alerts' thresholds and how long each must hold."""

    queue_waiting_per_replica: float = 8.0  # vllm:num_requests_waiting averaged over a variant's pods
    queue_for: str = "10m"
    kv_cache_usage: float = 0.95  # vllm:kv_cache_usage_perc (0..1) on any pod
    kv_cache_for: str = "15m"
    # Share of a GPU's framebuffer in use. vLLM claims --gpu-memory-utilization (0.9 by default) of it at
    # start and holds it, so this must sit above that or it fires on every healthy GPU.
    gpu_memory_usage: float = 0.97
    gpu_memory_for: str = "15m"
    pod_not_ready_for: str = "20m"  # longer than a model load: a starting pod is not ready by design
    # The guardrail processor loads no model: its gRPC readiness probe passes within seconds of the start
    # (components/guardrail.py), so a pod not ready for minutes is stuck, not starting.
    guardrail_not_ready_for: str = "5m"
    # No processor replica available: every guarded request fails (open or closed). Past a rollout's or a
    # node's hiccup (the rollout surges before it removes a pod: maxUnavailable 0).
    guardrail_down_for: str = "2m"
    restarts_in_30m: int = 2  # container restarts in 30 minutes above which a pod is restarting
    gateway_5xx_ratio: float = 0.05  # share of a Gateway's responses that are 5xx
    # Share of a Gateway's requests (at its listeners) refused with 429 by the local (requests per minute)
    # and global (token quota) rate limits together.
    gateway_429_ratio: float = 0.10
    gateway_for: str = "10m"
    certificate_days: float = 14.0  # days left before notAfter (cert-manager renews at 2/3 of the lifetime)
    stuck_at_zero_for: str = "15m"  # longer than a cold start (the plan's cold-start budget)
    # Fewest requests in a fast-burn (page) alert's long window (1h, 6h) for it to fire. With fewer, one or
    # two failures are a large share and page at night for what no user noticed. 100 keeps a page to real
    # bursts: the default 99.5% availability objective then needs at least 8 failed requests in the hour
    # (100 x 14.4 x 0.005 = 7.2) and 3 in six hours (100 x 6 x 0.005); the 95% latency objective 72 slow
    # ones. At that traffic (under 2 requests a minute) the slow-burn tickets still report the trend.
    page_min_requests: int = 100


@dataclass(frozen=True, kw_only=True)
class AlertRulesArgs:
    """The served models, their objectives, and what the rules may rely on."""

    namespace: str  # where the PrometheusRule lives (the Prometheus's ruleNamespaceSelector must match it)
    variants: tuple[ServedVariant, ...]  # every Deployment serving a model
    objectives: tuple[ModelObjectives, ...] = ()  # per model; a served model without one gets the defaults
    sources: SeriesSources = field(default_factory=SeriesSources)
    thresholds: Thresholds = field(default_factory=Thresholds)
    # Labels put on the PrometheusRule: what the Prometheus's ruleSelector matches. kube-prometheus-stack
    # with default values selects only `release: <its Helm release>` (chart 88.5.3 values.yaml
    # `ruleSelectorNilUsesHelmValues: true`, `ruleSelector: {}`; templates/prometheus/prometheus.yaml then
    # renders `ruleSelector: {matchLabels: {release: <release>}}`). The stack's own install selects all.
    rule_labels: dict[str, str] = field(default_factory=dict)
    # Where the runbooks are; each alert links `<runbook_base_url>#<alert name in lower case>`.
    runbook_base_url: str = "docs/operating.md"
    # The guardrail processor, where the stack has one: its pods join the pod alerts and its having no
    # available replica pages (InferStackGuardrailDown). Needs sources.kube_state_metrics; None: no guardrail.
    guardrail: GuardrailProcessor | None = None


def route_cluster_pattern(route_namespace: str, route_name: str, rule_indices: Sequence[int]) -> str:
    """RE2 pattern of the Envoy clusters of an HTTPRoute's rules: `httproute/<ns>/<name>/rule/<i>` with or
    without `/backend/<n>` (Envoy Gateway v1.8.3 irRouteDestinationName / irDestinationSettingName)."""
    if not rule_indices:
        raise ValueError("rule_indices: name at least one rule of the route")
    alternatives = "|".join(str(i) for i in sorted(set(rule_indices)))
    return f"httproute/{re.escape(route_namespace)}/{re.escape(route_name)}/rule/({alternatives})(/backend/[0-9]+)?"


def ai_gateway_cluster_pattern(
    route_namespace: str, route_name: str, rules: Sequence[Mapping[str, Any]], model: str
) -> str:
    """The cluster pattern of every AIGatewayRoute rule that matches `model` by its `x-ai-eg-model` header
    (an Exact match on it, or an anchored regular expression it matches): the rule indices are the
    HTTPRoute's, since AI Gateway v1.1.0 copies the rules in order. `rules` is the AIGatewayRoute's
    spec.rules (components/model_routing.py route_rules). ValueError when no rule matches the model."""
    indices: list[int] = []
    for index, rule in enumerate(rules):
        for match in rule.get("matches", []):
            for header in match.get("headers", []):
                if header.get("name") != AI_GATEWAY_MODEL_HEADER:
                    continue
                kind = header.get("type", "Exact")
                value = str(header.get("value", ""))
                if (kind == "Exact" and value == model) or (
                    kind == "RegularExpression" and re.fullmatch(value, model) is not None
                ):
                    indices.append(index)
    if not indices:
        raise ValueError(f"model {model!r}: no rule of AIGatewayRoute {route_name!r} matches it")
    return route_cluster_pattern(route_namespace, route_name, indices)


def _is_ratio(value: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value < 1.0


def validate_alert_rules_args(args: AlertRulesArgs) -> list[str]:
    """Every problem with `args`, each naming its field and the fix; empty when usable."""
    problems: list[str] = []
    if not _DNS_LABEL.match(args.namespace) or len(args.namespace) > 63:
        problems.append(f"namespace: {args.namespace!r} is not a Kubernetes namespace name")
    if not args.variants:
        problems.append("variants: name at least one served variant (model, variant, deployment, namespace)")
    seen: set[tuple[str, str]] = set()
    for i, v in enumerate(args.variants):
        where = f"variants[{i}]"
        if not v.model:
            problems.append(f"{where}.model: must not be empty (the OpenAI model name)")
        if not _DNS_LABEL.match(v.variant):
            problems.append(f"{where}.variant: {v.variant!r} must be a DNS label")
        if not _DNS_LABEL.match(v.deployment) or len(v.deployment) > 253:
            problems.append(f"{where}.deployment: {v.deployment!r} is not a Deployment name")
        if not _DNS_LABEL.match(v.namespace) or len(v.namespace) > 63:
            problems.append(f"{where}.namespace: {v.namespace!r} is not a Kubernetes namespace name")
        if (v.namespace, v.deployment) in seen:
            problems.append(f"{where}: Deployment {v.namespace}/{v.deployment} is listed twice; list it once")
        seen.add((v.namespace, v.deployment))
    served = {v.model for v in args.variants}
    named: set[str] = set()
    for i, o in enumerate(args.objectives):
        where = f"objectives[{i}]"
        if o.model in named:
            problems.append(f"{where}.model: {o.model!r} has objectives twice; keep one")
        named.add(o.model)
        if o.model not in served:
            problems.append(
                f"{where}.model: {o.model!r} is served by no variant (served: {sorted(served)}); "
                "fix the name or drop the objectives"
            )
        for name in ("availability", "ttft_target"):
            value = getattr(o, name)
            if not _is_ratio(value):
                problems.append(
                    f"{where}.{name}: {value!r} must be a share strictly between 0 and 1, e.g. 0.995"
                )
            elif (1 - value) * BURN_WINDOWS[0][2] >= 1:
                # With a budget this large a 14.4x burn means more than every request failing: never fires.
                problems.append(
                    f"{where}.{name}: {value} leaves an error budget of {1 - value:.3g}; the fastest burn-rate "
                    f"alert ({BURN_WINDOWS[0][2]}x) could never fire. Use at least {1 - 1 / BURN_WINDOWS[0][2]:.4f}"
                )
        if not any(math.isclose(o.ttft_seconds, b) for b in TTFT_BUCKETS):
            problems.append(
                f"{where}.ttft_seconds: {o.ttft_seconds!r} is not a bucket boundary of vLLM's TTFT histogram; "
                f"use one of {', '.join(f'{b:g}' for b in TTFT_BUCKETS)}"
            )
        if o.interceptor_route is not None:
            ns, route = o.interceptor_route
            if not _DNS_LABEL.match(ns) or not route:
                problems.append(
                    f"{where}.interceptor_route: {o.interceptor_route!r} must be (namespace, name)"
                )
        if o.gateway_clusters is not None:
            try:
                re.compile(o.gateway_clusters)
            except re.error as exc:
                problems.append(
                    f"{where}.gateway_clusters: {o.gateway_clusters!r} is not a regular expression: {exc}"
                )
    t = args.thresholds
    for name in (
        "queue_for",
        "kv_cache_for",
        "gpu_memory_for",
        "pod_not_ready_for",
        "guardrail_not_ready_for",
        "guardrail_down_for",
        "gateway_for",
        "stuck_at_zero_for",
    ):
        value = getattr(t, name)
        if not _DURATION.match(value):
            problems.append(f"thresholds.{name}: {value!r} is not a Prometheus duration such as '10m'")
    for name in ("kv_cache_usage", "gpu_memory_usage", "gateway_5xx_ratio", "gateway_429_ratio"):
        if not _is_ratio(getattr(t, name)):
            problems.append(
                f"thresholds.{name}: {getattr(t, name)!r} must be a share strictly between 0 and 1"
            )
    if not t.queue_waiting_per_replica > 0:
        problems.append(
            "thresholds.queue_waiting_per_replica: must be above 0 (requests waiting per replica)"
        )
    if (
        isinstance(t.page_min_requests, bool)
        or not isinstance(t.page_min_requests, int)
        or t.page_min_requests < 0
    ):
        problems.append(
            f"thresholds.page_min_requests: {t.page_min_requests!r} must be a whole number of requests, 0 or more "
            "(0: page on any traffic)"
        )
    if t.restarts_in_30m < 0:
        problems.append("thresholds.restarts_in_30m: must be 0 or more")
    if not t.certificate_days > 0:
        problems.append("thresholds.certificate_days: must be above 0 (days before expiry)")
    for key, value in args.rule_labels.items():
        if not _K8S_LABEL_KEY.match(key) or len(value) > 63:
            problems.append(f"rule_labels: {key!r}: {value!r} is not a Kubernetes label")
    g = args.guardrail
    if g is not None:
        if not _DNS_LABEL.match(g.deployment) or len(g.deployment) > 253:
            problems.append(f"guardrail.deployment: {g.deployment!r} is not a Deployment name")
        if not _DNS_LABEL.match(g.namespace) or len(g.namespace) > 63:
            problems.append(f"guardrail.namespace: {g.namespace!r} is not a Kubernetes namespace name")
        if (g.namespace, g.deployment) in seen:
            problems.append(
                f"guardrail.deployment: {g.namespace}/{g.deployment} is also a model's Deployment in variants; "
                "name the processor's own Deployment (`<name>-guardrail`)"
            )
    if not args.runbook_base_url:
        problems.append("runbook_base_url: must not be empty (where docs/operating.md is published)")
    if (
        any(o.interceptor_route for o in args.objectives)
        and args.sources.keda_http
        and not (args.sources.kube_state_metrics)
    ):
        problems.append(
            "sources.keda_http: the stuck-at-zero alert also needs kube-state-metrics (replicas available); "
            "set sources.kube_state_metrics or expect no such alert"
        )
    return problems


# --- PromQL helpers ---------------------------------------------------------------------------------


def _q(text: str) -> str:
    """A PromQL string literal (double quotes; backslash and quote escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _le_matcher(bucket: float) -> str:
    """The `le` matcher of a bucket. prometheus_client (vLLM) writes 1.0 as "1.0", and Prometheus 3
    normalises classic histogram `le` values on ingestion to that float form ("1.0"; Prometheus 3.0 migration
    guide, "le and quantile label values"); Prometheus 2 (promtool 2.42) keeps what was scraped, and other
    clients write "1": match both spellings."""
    canonical = f"{bucket:g}"
    python = repr(float(bucket))
    if canonical == python:
        return f"le={_q(canonical)}"
    return f"le=~{_q(re.escape(canonical) + '|' + re.escape(python))}"


def _pods_of(deployment: str) -> str:
    """A Deployment's pods: `<deployment>-<pod-template-hash>-<5 characters>` (ReplicaSet controller)."""
    return f"{re.escape(deployment)}-[a-z0-9]+-[a-z0-9]+"


def _sel(**matchers: str) -> str:
    return "{" + ",".join(f"{k}{v}" for k, v in matchers.items()) + "}"


def _eq(value: str) -> str:
    return "=" + _q(value)


def _re(value: str) -> str:
    return "=~" + _q(value)


def _alert(
    name: str,
    expr: str,
    for_: str,
    severity: str,
    summary: str,
    description: str,
    runbook_base_url: str,
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, **(extra_labels or {})},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{runbook_base_url}#{name.lower()}",
        },
    }


def _record(name: str, expr: str, rule_labels: Mapping[str, str]) -> dict[str, Any]:
    return {"record": name, "expr": expr, "labels": dict(rule_labels)}


def slo_record_name(slo: str, window: str) -> str:
    """`inferstack:slo_<slo>_errors:ratio_rate<window>` (Prometheus recording-rule naming: level:metric:ops)."""
    return f"inferstack:slo_{slo}_errors:ratio_rate{window}"


# --- the groups -------------------------------------------------------------------------------------


def _objectives_by_model(args: AlertRulesArgs) -> dict[str, ModelObjectives]:
    given = {o.model: o for o in args.objectives}
    out: dict[str, ModelObjectives] = {}
    for v in args.variants:
        if v.model not in out:
            out[v.model] = given.get(v.model, ModelObjectives(model=v.model))
    return out


def _model_namespaces(args: AlertRulesArgs, model: str) -> str:
    return "|".join(sorted({re.escape(v.namespace) for v in args.variants if v.model == model}))


def _availability_series(args: AlertRulesArgs, o: ModelObjectives) -> tuple[str, str]:
    """(5xx answers, all answers) counter selectors of a model's availability SLI."""
    if args.sources.gateway and o.gateway_clusters is not None:
        clusters = _re(o.gateway_clusters)
        bad = f"envoy_cluster_upstream_rq_xx{_sel(envoy_cluster_name=clusters, envoy_response_code_class=_eq('5'))}"
        return bad, f"envoy_cluster_upstream_rq_total{_sel(envoy_cluster_name=clusters)}"
    # The engine's API server counter (prometheus-fastapi-instrumentator): misses every request that never
    # reached a pod - the reason the gateway's is preferred.
    sel = {"namespace": _re(_model_namespaces(args, o.model)), "handler": _re("/v1/.+")}
    sel["pod"] = _re("|".join(_pods_of(v.deployment) for v in args.variants if v.model == o.model))
    return f"http_requests_total{_sel(**sel, status=_eq('5xx'))}", f"http_requests_total{_sel(**sel)}"


def _latency_series(args: AlertRulesArgs, o: ModelObjectives) -> tuple[str, str]:
    """(requests with TTFT <= the threshold, all requests) counter selectors of a model's latency SLI."""
    sel = {"namespace": _re(_model_namespaces(args, o.model)), "model_name": _eq(o.model)}
    fast = f"vllm:time_to_first_token_seconds_bucket{_sel(**sel)[:-1]},{_le_matcher(o.ttft_seconds)}}}"
    return fast, f"vllm:time_to_first_token_seconds_count{_sel(**sel)}"


def _availability_ratio(args: AlertRulesArgs, o: ModelObjectives, window: str) -> str:
    bad, total = _availability_series(args, o)
    return f"sum(rate({bad}[{window}])) / sum(rate({total}[{window}]))"


def _latency_ratio(args: AlertRulesArgs, o: ModelObjectives, window: str) -> str:
    fast, total = _latency_series(args, o)
    return f"1 - (sum(rate({fast}[{window}])) / sum(rate({total}[{window}])))"


def _request_count(args: AlertRulesArgs, o: ModelObjectives, slo: str, window: str) -> str:
    _, total = (_availability_series if slo == "availability" else _latency_series)(args, o)
    return f"sum(increase({total}[{window}]))"


def slo_requests_record_name(slo: str, window: str) -> str:
    """`inferstack:slo_<slo>_requests:increase<window>`: requests the SLI counted in the window."""
    return f"inferstack:slo_{slo}_requests:increase{window}"


def _slo_groups(args: AlertRulesArgs) -> list[dict[str, Any]]:
    """Four groups, in evaluation order: short-window ratios and the page alerts' request counts (every
    30 s); the long-window ratios with the ticket alerts that read them (every LONG_WINDOW_INTERVAL); the
    page alerts (the Prometheus's evaluation interval)."""
    recording: list[dict[str, Any]] = []
    long_group: list[dict[str, Any]] = []
    tickets: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    min_requests = args.thresholds.page_min_requests
    for model, o in _objectives_by_model(args).items():
        where = "the gateway" if args.sources.gateway and o.gateway_clusters is not None else "the engine"
        slos = (
            (
                "availability",
                o.availability,
                _availability_ratio,
                f"requests answered 5xx (measured at {where})",
            ),
            (
                "ttft",
                o.ttft_target,
                _latency_ratio,
                f"requests with time to first token over {o.ttft_seconds:g} s",
            ),
        )
        for slo, target, ratio, what in slos:
            for window in SLO_WINDOWS:
                record = _record(
                    slo_record_name(slo, window), ratio(args, o, window), {"model": model, "slo": slo}
                )
                (long_group if window in LONG_WINDOWS else recording).append(record)
            page_windows = sorted(
                {lw for lw, _, _, sev in BURN_WINDOWS if sev == SEVERITY_PAGE}, key=SLO_WINDOWS.index
            )
            for window in page_windows:
                recording.append(
                    _record(
                        slo_requests_record_name(slo, window),
                        _request_count(args, o, slo, window),
                        {"model": model, "slo": slo},
                    )
                )
            budget = 1 - target
            m = _sel(model=_eq(model))
            for severity, name_suffix in ((SEVERITY_PAGE, "Fast"), (SEVERITY_TICKET, "Slow")):
                pairs = [(lw, sw, f) for lw, sw, f, sev in BURN_WINDOWS if sev == severity]
                terms = []
                for lw, sw, f in pairs:
                    term = (
                        f"max({slo_record_name(slo, lw)}{m}) > {f * budget:.6g}"
                        f" and max({slo_record_name(slo, sw)}{m}) > {f * budget:.6g}"
                    )
                    if severity == SEVERITY_PAGE and min_requests > 0:
                        # The traffic guard: `and` keeps the ratio (the alert's value) and drops it when the
                        # long window counted too few requests for a share to mean anything.
                        term += f" and max({slo_requests_record_name(slo, lw)}{m}) >= {min_requests}"
                    terms.append(f"({term})")
                expr = " or ".join(terms)
                windows = ", ".join(f"{f:g}x over {lw} and {sw}" for lw, sw, f in pairs)
                guard = (
                    f" with at least {min_requests} requests in the long window"
                    if severity == SEVERITY_PAGE and min_requests > 0
                    else ""
                )
                title = "Availability" if slo == "availability" else "Latency"
                (pages if severity == SEVERITY_PAGE else tickets).append(
                    _alert(
                        f"InferStack{title}BudgetBurn{name_suffix}",
                        expr,
                        "2m" if severity == SEVERITY_PAGE else "15m",
                        severity,
                        f"{model}: {title.lower()} error budget burning {'fast' if severity == SEVERITY_PAGE else 'slowly'}",
                        f"Model {model}: {what} exceed the budget of the {target:g} objective (30 days) at "
                        f"a burn rate of {windows}{guard}. Error ratio now: {{{{ $value | humanizePercentage }}}}.",
                        args.runbook_base_url,
                        {"model": model, "slo": slo},
                    )
                )
    return [
        {"name": "inferstack-slo-recording", "interval": "30s", "rules": recording},
        {
            "name": "inferstack-slo-long-windows",
            "interval": LONG_WINDOW_INTERVAL,
            "rules": long_group + tickets,
        },
        {"name": "inferstack-slo-alerts", "rules": pages},
    ]


def _engine_group(args: AlertRulesArgs) -> dict[str, Any]:
    t = args.thresholds
    rules: list[dict[str, Any]] = []
    for v in args.variants:
        sel = _sel(namespace=_eq(v.namespace), pod=_re(_pods_of(v.deployment)))
        extra = {"model": v.model, "variant": v.variant, "deployment": v.deployment}
        rules.append(
            _alert(
                "InferStackQueueSaturated",
                f"avg(vllm:num_requests_waiting{sel}) > {t.queue_waiting_per_replica:g}",
                t.queue_for,
                SEVERITY_TICKET,
                f"{v.model}/{v.variant}: requests queue in the engine",
                f"Deployment {v.namespace}/{v.deployment} has {{{{ $value }}}} requests waiting per replica "
                f"(over {t.queue_waiting_per_replica:g} for {t.queue_for}): the autoscaler is not keeping up.",
                args.runbook_base_url,
                {**extra, "namespace": v.namespace},
            )
        )
        rules.append(
            _alert(
                "InferStackKvCacheNearFull",
                f"max by (namespace, pod) (vllm:kv_cache_usage_perc{sel}) > {t.kv_cache_usage:g}",
                t.kv_cache_for,
                SEVERITY_TICKET,
                f"{v.model}/{v.variant}: KV cache near full on {{{{ $labels.pod }}}}",
                f"Pod {{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}} uses {{{{ $value | humanizePercentage }}}} "
                f"of its KV cache (over {t.kv_cache_usage:g} for {t.kv_cache_for}): requests are being "
                "preempted or wait for cache blocks.",
                args.runbook_base_url,
                extra,
            )
        )
    return {"name": "inferstack-engine", "rules": rules}


def _gpu_group(args: AlertRulesArgs) -> dict[str, Any]:
    t = args.thresholds
    used = "DCGM_FI_DEV_FB_USED"
    xid = "DCGM_FI_DEV_XID_ERRORS"
    return {
        "name": "inferstack-gpu",
        "rules": [
            _alert(
                "InferStackGpuMemoryNearFull",
                f"{used} / ({used} + DCGM_FI_DEV_FB_FREE) > {t.gpu_memory_usage:g}",
                t.gpu_memory_for,
                SEVERITY_TICKET,
                "GPU {{ $labels.gpu }} on {{ $labels.Hostname }}: framebuffer near full",
                f"GPU {{{{ $labels.gpu }}}} ({{{{ $labels.modelName }}}}) on {{{{ $labels.Hostname }}}} has "
                f"{{{{ $value | humanizePercentage }}}} of its memory in use (over {t.gpu_memory_usage:g} for "
                f"{t.gpu_memory_for}); vLLM holds --gpu-memory-utilization of it by design, so more is another "
                "process or a leak.",
                args.runbook_base_url,
            ),
            _alert(
                "InferStackGpuXidError",
                # The gauge keeps the last code until the exporter restarts, so its value alone would fire
                # for ever after one XID: fire when it changed in the last 10 minutes to a code that is not
                # an application's (APPLICATION_XIDS), the value being the new code. A second XID with the
                # same code as the last one leaves the gauge unchanged and is not seen: the node's kernel
                # log (`NVRM: Xid`) has every one.
                f"(({xid} > 0{''.join(f' != {code}' for code in APPLICATION_XIDS)})"
                f" and changes({xid}[10m]) > 0)",
                "0m",
                SEVERITY_TICKET,
                "GPU {{ $labels.gpu }} on {{ $labels.Hostname }}: XID error {{ $value }}",
                "The NVIDIA driver reported XID {{ $value }} on GPU {{ $labels.gpu }} ({{ $labels.UUID }}) of "
                "node {{ $labels.Hostname }} in the last 10 minutes. Look the code up in NVIDIA's XID catalogue: "
                "some (e.g. 48, 79, 94, 95) need the node drained. Application XIDs "
                f"({', '.join(str(c) for c in APPLICATION_XIDS)}) are left out: a process killed or faulting "
                "on the GPU, e.g. a vLLM pod stopped on scale-down.",
                args.runbook_base_url,
            ),
        ],
    }


def _not_ready_expr(sel: str) -> str:
    """PromQL: the pods of `sel` (a {namespace, pod} selector) that should be ready and are not, by
    (namespace, pod). Ready=false alone also holds for pods that are over (evicted, Failed, Succeeded) until
    they are garbage-collected: only pods that should become ready (Pending, Running, Unknown) count. A pod
    no node can take has no Ready condition at all (only PodScheduled=false), so it is added by
    kube_pod_status_unschedulable. Both sides are by (namespace, pod), so a pod moving from unschedulable to
    not ready keeps its pending `for:` clock."""
    return (
        f"(max by (namespace, pod) (kube_pod_status_ready{sel[:-1]},condition={_q('false')}}}) == 1"
        f" and on (namespace, pod) max by (namespace, pod) "
        f"(kube_pod_status_phase{sel[:-1]},phase=~{_q('Pending|Running|Unknown')}}}) == 1)"
        f" or max by (namespace, pod) (kube_pod_status_unschedulable{sel}) == 1"
    )


def _restarts_expr(sel: str, restarts: int) -> str:
    return (
        f"sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total{sel}[30m])) > {restarts}"
    )


def _guardrail_traffic(g: GuardrailProcessor) -> str:
    """What the processor being unreachable does to guarded requests (Envoy ext_proc failure_mode_allow)."""
    if g.fail_open:
        return "failOpen is true: Envoy serves every guarded request UNCHECKED while no processor answers"
    return "failOpen is false: Envoy answers every guarded request with a 5xx while no processor answers"


def _pods_group(args: AlertRulesArgs) -> dict[str, Any]:
    t = args.thresholds
    rules: list[dict[str, Any]] = []
    for v in args.variants:
        sel = _sel(namespace=_eq(v.namespace), pod=_re(_pods_of(v.deployment)))
        extra = {"model": v.model, "variant": v.variant, "deployment": v.deployment}
        rules.append(
            _alert(
                "InferStackPodNotReady",
                _not_ready_expr(sel),
                t.pod_not_ready_for,
                SEVERITY_TICKET,
                f"{v.model}/{v.variant}: pod {{{{ $labels.pod }}}} not ready",
                f"Pod {{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}} of Deployment {v.deployment} has not been "
                f"ready (or could not be scheduled) for {t.pod_not_ready_for}, longer than the plan's cold "
                "start for it.",
                args.runbook_base_url,
                extra,
            )
        )
        rules.append(
            _alert(
                "InferStackPodRestarting",
                _restarts_expr(sel, t.restarts_in_30m),
                "1m",
                SEVERITY_TICKET,
                f"{v.model}/{v.variant}: pod {{{{ $labels.pod }}}} restarting",
                f"Pod {{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}} of Deployment {v.deployment} restarted "
                f'{{{{ $value | printf "%.0f" }}}} times in 30 minutes (more than {t.restarts_in_30m}).',
                args.runbook_base_url,
                extra,
            )
        )
    g = args.guardrail
    if g is not None:
        rules.extend(_guardrail_rules(args, g))
    return {"name": "inferstack-pods", "rules": rules}


def _guardrail_rules(args: AlertRulesArgs, g: GuardrailProcessor) -> list[dict[str, Any]]:
    """The processor's pods in the pod alerts (labelled `component: guardrail`, no model), and the page when
    none of its replicas is available."""
    t = args.thresholds
    sel = _sel(namespace=_eq(g.namespace), pod=_re(_pods_of(g.deployment)))
    extra = {"component": "guardrail", "deployment": g.deployment}
    traffic = _guardrail_traffic(g)
    deployment = _sel(namespace=_eq(g.namespace), deployment=_eq(g.deployment))
    by = "max by (namespace, deployment)"
    return [
        _alert(
            "InferStackPodNotReady",
            _not_ready_expr(sel),
            t.guardrail_not_ready_for,
            SEVERITY_TICKET,
            "guardrail: pod {{ $labels.pod }} not ready",
            f"Pod {{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}} of the guardrail processor (Deployment "
            f"{g.deployment}) has not been ready (or could not be scheduled) for {t.guardrail_not_ready_for}; "
            "it starts in seconds. The other replicas carry its share; with none, "
            f"{traffic} (InferStackGuardrailDown).",
            args.runbook_base_url,
            extra,
        ),
        _alert(
            "InferStackPodRestarting",
            _restarts_expr(sel, t.restarts_in_30m),
            "1m",
            SEVERITY_TICKET,
            "guardrail: pod {{ $labels.pod }} restarting",
            f"Pod {{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}} of the guardrail processor (Deployment "
            f'{g.deployment}) restarted {{{{ $value | printf "%.0f" }}}} times in 30 minutes (more than '
            f"{t.restarts_in_30m}): each exit fails the exchanges it held; {traffic}.",
            args.runbook_base_url,
            extra,
        ),
        _alert(
            "InferStackGuardrailDown",
            # The Deployment exists (its spec series is there) and no replica is available: 0, or no
            # series of it. Any spec count: the stack never runs it at 0 (GuardrailArgs.replicas >= 1, no
            # autoscaler), so 0 is a hand scale-down that leaves the route's ext_proc in place - as down as a
            # crash loop. The value is the spec's replica count.
            f"{by} (kube_deployment_spec_replicas{deployment}) unless on (namespace, deployment) "
            f"({by} (kube_deployment_status_replicas_available{deployment}) > 0)",
            t.guardrail_down_for,
            SEVERITY_PAGE,
            "guardrail: no processor replica available",
            f"Deployment {g.namespace}/{g.deployment} (the guardrail processor) has had 0 of {{{{ $value }}}} "
            f"replicas available for {t.guardrail_down_for}: {traffic}.",
            args.runbook_base_url,
            {"component": "guardrail"},
        ),
    ]


def gateway_refused_share(window: str) -> str:
    """PromQL: per Gateway (GATEWAY_NAME_LABEL), the share of its listeners' requests refused by a rate limit
    over `window`: (local rate-limited + global over-limit) / downstream requests.

    Both refusals are answered by a filter in the listener's HTTP connection manager, so they are in
    `envoy_http_downstream_rq_total` but never reach a cluster's upstream counters. A proxy that has not
    refused anything yet has no series of that kind at all (Envoy Gateway's bootstrap defers stat creation,
    and the local filter exists only where a route has a local limit), so each term falls back to 0 per
    Gateway (`or 0 * requests`) instead of blanking the sum; `or vector(0)` would not do, its 0 has no
    Gateway label to add up with. The dashboards' 429 panel reads the same expression."""
    by = f"sum by ({GATEWAY_NAME_LABEL})"
    requests = f"{by} (rate(envoy_http_downstream_rq_total{_sel(envoy_http_conn_manager_prefix=_re(GATEWAY_HCM_PREFIX))}[{window}]))"
    local = (
        f"{by} (rate(envoy_http_local_rate_limit_rate_limited"
        f"{_sel(**{LOCAL_RATE_LIMIT_PREFIX_LABEL: _eq(LOCAL_RATE_LIMIT_PREFIX)})}[{window}]))"
    )
    quota = f"{by} (rate(envoy_cluster_ratelimit_over_limit[{window}]))"
    zero = f"0 * {requests}"
    return f"(({local} or {zero}) + ({quota} or {zero})) / {requests}"


def _gateway_group(args: AlertRulesArgs) -> dict[str, Any]:
    t = args.thresholds
    hcm = _sel(envoy_http_conn_manager_prefix=_re(GATEWAY_HCM_PREFIX))
    hcm_5xx = _sel(envoy_http_conn_manager_prefix=_re(GATEWAY_HCM_PREFIX), envoy_response_code_class=_eq("5"))
    by = f"sum by ({GATEWAY_NAME_LABEL})"
    rules = [
        _alert(
            "InferStackGateway5xxRate",
            f"{by} (rate(envoy_http_downstream_rq_xx{hcm_5xx}[5m])) / {by} (rate(envoy_http_downstream_rq_total{hcm}[5m]))"
            f" > {t.gateway_5xx_ratio:g}",
            t.gateway_for,
            SEVERITY_TICKET,
            f"Gateway {{{{ $labels.{GATEWAY_NAME_LABEL} }}}}: many 5xx answers",
            f"{{{{ $value | humanizePercentage }}}} of the responses of Gateway {{{{ $labels.{GATEWAY_NAME_LABEL} }}}} "
            f"are 5xx (over {t.gateway_5xx_ratio:g} for {t.gateway_for}), counted where clients see them "
            "(the listener), so errors made before routing are included.",
            args.runbook_base_url,
        )
    ]
    rules.append(
        _alert(
            "InferStackGateway429Rate",
            f"{gateway_refused_share('5m')} > {t.gateway_429_ratio:g}",
            t.gateway_for,
            SEVERITY_TICKET,
            f"Gateway {{{{ $labels.{GATEWAY_NAME_LABEL} }}}}: many requests refused by rate limits",
            f"{{{{ $value | humanizePercentage }}}} of the requests to Gateway {{{{ $labels.{GATEWAY_NAME_LABEL} }}}} "
            "were refused with 429 by its rate limits - requests per minute (local) and token quotas (global) "
            f"together - over {t.gateway_429_ratio:g} for {t.gateway_for}.",
            args.runbook_base_url,
        )
    )
    return {"name": "inferstack-gateway", "rules": rules}


def _certificate_group(args: AlertRulesArgs) -> dict[str, Any]:
    t = args.thresholds
    seconds = int(t.certificate_days * 86400)
    return {
        "name": "inferstack-certificates",
        "rules": [
            _alert(
                "InferStackCertificateExpiringSoon",
                f"min by (namespace, name) (certmanager_certificate_expiration_timestamp_seconds) - time() < {seconds}",
                "1h",
                SEVERITY_TICKET,
                "Certificate {{ $labels.namespace }}/{{ $labels.name }} expires soon",
                "Certificate {{ $labels.namespace }}/{{ $labels.name }} expires in {{ $value | humanizeDuration }} "
                f"(less than {t.certificate_days:g} days): cert-manager should have renewed it at two thirds of "
                "its lifetime.",
                args.runbook_base_url,
            )
        ],
    }


def _cold_start_group(args: AlertRulesArgs) -> dict[str, Any] | None:
    t = args.thresholds
    rules: list[dict[str, Any]] = []
    for model, o in _objectives_by_model(args).items():
        if o.interceptor_route is None:
            continue
        route_ns, route = o.interceptor_route
        waiting = (
            "sum(interceptor_request_concurrency"
            f"{_sel(route_namespace=_eq(route_ns), route_name=_eq(route))}) > 0"
        )
        deployments = [v for v in args.variants if v.model == model]
        available = " + ".join(
            f"sum(kube_deployment_status_replicas_available{_sel(namespace=_eq(v.namespace), deployment=_eq(v.deployment))})"
            for v in deployments
        )
        rules.append(
            _alert(
                "InferStackModelStuckAtZero",
                f"({waiting}) and on() (({available}) == 0)",
                t.stuck_at_zero_for,
                SEVERITY_PAGE,
                f"{model}: requests wait but no replica comes up",
                f"{{{{ $value }}}} requests for model {model} are held in the KEDA HTTP interceptor and no replica "
                f"of it has been available for {t.stuck_at_zero_for}: the scale-up from zero is stuck.",
                args.runbook_base_url,
                {"model": model},
            )
        )
    return {"name": "inferstack-cold-start", "rules": rules} if rules else None


def alert_rule_groups(args: AlertRulesArgs) -> list[dict[str, Any]]:
    """The PrometheusRule `spec.groups`: a list of {name, rules[, interval]} with rules as Prometheus rule
    files write them (record/alert, expr, for, labels, annotations). Only groups whose series are scraped
    (`args.sources`). Raises ValueError listing every problem with `args`."""
    reject_invalid_args("AlertRules", "alert_rule_groups", validate_alert_rules_args(args))
    groups = _slo_groups(args)
    groups.append(_engine_group(args))
    s = args.sources
    if s.dcgm:
        groups.append(_gpu_group(args))
    if s.kube_state_metrics:
        groups.append(_pods_group(args))
    if s.gateway:
        groups.append(_gateway_group(args))
    if s.cert_manager:
        groups.append(_certificate_group(args))
    if s.keda_http and s.kube_state_metrics:
        cold = _cold_start_group(args)
        if cold is not None:
            groups.append(cold)
    return groups


class AlertRules(pulumi.ComponentResource):
    """One PrometheusRule with the stack's SLO and symptom alerts."""

    rule_name: pulumi.Output[str]

    def __init__(self, name: str, args: AlertRulesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args("AlertRules", name, validate_alert_rules_args(args))
        super().__init__("inferstack:alert_rules:AlertRules", name, None, opts)
        rule_name = f"{name}-alerts"
        k8s.apiextensions.CustomResource(
            f"{name}-prometheus-rule",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={
                "name": rule_name,
                "namespace": args.namespace,
                "labels": {**labels(rule_name, "alerting"), **args.rule_labels},
            },
            spec={"groups": alert_rule_groups(args)},
            opts=child(self),
        )
        self.rule_name = pulumi.Output.from_input(rule_name)
        self.register_outputs({"rule_name": self.rule_name})
