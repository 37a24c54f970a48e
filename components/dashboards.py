"""Dashboards as code: Grafana dashboards for models, API clients and GPUs, provisioned as ConfigMaps that
Grafana's dashboard sidecar loads.

Built with Grafana's own `grafana-foundation-sdk` (PyPI `grafana-foundation-sdk==1769699241`, the build
"generated for Grafana next": the numbered builds stop at Grafana 11.6, and kube-prometheus-stack 88.5.3's
grafana subchart 12.11.1 runs Grafana 13.2.0, ../shared/charts/grafana/Chart.yaml appVersion). Its
Dashboard model writes `schemaVersion: 41`, which Grafana 13 reads and migrates forward on load.

Every PromQL expression names only series in the metric catalogue (components/metrics/exported.yaml);
tests/components/test_dashboards.py parses each one and checks the names.

How the sidecar finds them (grafana chart 12.11.1 values.yaml `sidecar.dashboards`; kube-prometheus-stack
88.5.3 values.yaml `grafana.sidecar.dashboards`: enabled, label `grafana_dashboard`, labelValue "1",
searchNamespace ALL): a ConfigMap carrying that label, in a namespace the sidecar searches, whose data keys
are `<file>.json`. For an existing Grafana the label, its value and the namespace are args.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import prometheus as gprom
from grafana_foundation_sdk.builders import stat as gstat
from grafana_foundation_sdk.builders import timeseries as gts
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as gcommon
from grafana_foundation_sdk.models import dashboard as gdashboard_model

from components._common import child, labels, reject_invalid_args
from components.alert_rules import GATEWAY_NAME_LABEL, gateway_refused_share

#: kube-prometheus-stack 88.5.3 values.yaml grafana.sidecar.dashboards: label / labelValue.
SIDECAR_LABEL = "grafana_dashboard"
SIDECAR_LABEL_VALUE = "1"
#: The dashboards' datasource template variable: every panel queries `${datasource}`, so one dashboard works
#: against whichever Prometheus datasource the Grafana has.
DATASOURCE_VARIABLE = "datasource"
_DATASOURCE = gcommon.DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VARIABLE + "}")
#: The label AI Gateway puts the API client's id under when its controller maps the header to a metric
#: attribute: ai-gateway-helm v1.1.0 values.yaml `controller.metricsRequestHeaderAttributes`
#: ("header1:label1"), set to model_routing.CLIENT_ID_METRICS_HEADER_ATTRIBUTES; the OTel Prometheus exporter
#: writes the attribute's dots as underscores. Without that setting the per-client panels are empty.
CLIENT_ID_LABEL = "inferstack_client_id"
#: The model server's container (components/model_server.py: the pod's `server` container holds vLLM and its
#: /metrics port); prometheus-operator puts the scraped container's name in the `container` target label.
MODEL_SERVER_CONTAINER = "server"
#: Grafana's interval macro; PromQL parsers do not know it (tests substitute a duration).
RATE = "$__rate_interval"

_UID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Panel:
    """One panel: title, what it shows (shown in Grafana's panel info), unit, and its PromQL with legends."""

    title: str
    description: str
    unit: str
    queries: tuple[tuple[str, str], ...]  # (expr, legend format)
    kind: str = "timeseries"  # timeseries | stat


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    variables: tuple[tuple[str, str, str], ...]  # (name, label, label_values(...) query)
    panels: tuple[Panel, ...]


# The variant filter reads `app_kubernetes_io_name`, which the model server's PodMonitor copies from the pod
# label app.kubernetes.io/name (podTargetLabels, ModelServerArgs.pod_monitor_target_labels); the stack sets it
# whenever dashboards are on.
_MODEL = 'model_name=~"$model", app_kubernetes_io_name=~"$variant"'
_VARIANT = 'app_kubernetes_io_name=~"$variant"'


def _quantiles(metric: str, what: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (
            f"histogram_quantile({q}, sum by (le, model_name, app_kubernetes_io_name) "
            f"(rate({metric}_bucket{{{_MODEL}}}[{RATE}])))",
            f"p{int(q * 100)} {what} {{{{model_name}}}} {{{{app_kubernetes_io_name}}}}",
        )
        for q in (0.5, 0.9, 0.99)
    )


MODELS = DashboardSpec(
    uid="inferstack-models",
    title="InferStack / Models",
    description="Per model and variant: traffic, errors, latency, queue, KV cache, tokens, replicas (vLLM).",
    variables=(
        ("model", "Model", "label_values(vllm:num_requests_running, model_name)"),
        (
            "variant",
            "Variant",
            'label_values(vllm:num_requests_running{model_name=~"$model"}, app_kubernetes_io_name)',
        ),
    ),
    panels=(
        Panel(
            "Request rate",
            "Finished requests per second by finish reason (stop, length, abort, ...), from the engine.",
            "reqps",
            (
                (
                    f"sum by (model_name, finished_reason) (rate(vllm:request_success_total{{{_MODEL}}}[{RATE}]))",
                    "{{model_name}} {{finished_reason}}",
                ),
            ),
        ),
        Panel(
            "Responses by status",
            "HTTP responses per second from the engine's /v1 endpoints by status class (2xx, 4xx, 5xx). "
            "The engine's HTTP metric has no model label: in a multi-model stack pick the variant.",
            "reqps",
            (
                (
                    f'sum by (status) (rate(http_requests_total{{{_VARIANT}, handler=~"/v1/.*"}}[{RATE}]))',
                    "{{status}}",
                ),
            ),
        ),
        Panel(
            "Error ratio",
            "Share of /v1 responses that are 5xx (server errors); 4xx are client errors and shown above.",
            "percentunit",
            (
                (
                    f'sum(rate(http_requests_total{{{_VARIANT}, handler=~"/v1/.*", status="5xx"}}[{RATE}])) '
                    f'/ sum(rate(http_requests_total{{{_VARIANT}, handler=~"/v1/.*"}}[{RATE}]))',
                    "5xx ratio",
                ),
            ),
        ),
        Panel(
            "Time to first token",
            "p50/p90/p99 of the time from request arrival to the first output token (includes queueing).",
            "s",
            _quantiles("vllm:time_to_first_token_seconds", "TTFT"),
        ),
        Panel(
            "Inter-token latency",
            "p50/p90/p99 of the time between consecutive output tokens of a request (decode speed).",
            "s",
            _quantiles("vllm:inter_token_latency_seconds", "ITL"),
        ),
        Panel(
            "Queue depth",
            "Requests waiting for a batch slot (the autoscaler's signal) per pod.",
            "short",
            (
                (
                    f"sum by (model_name, pod) (vllm:num_requests_waiting{{{_MODEL}}})",
                    "{{model_name}} {{pod}}",
                ),
            ),
        ),
        Panel(
            "Running requests",
            "Requests in the running batch per pod.",
            "short",
            (
                (
                    f"sum by (model_name, pod) (vllm:num_requests_running{{{_MODEL}}})",
                    "{{model_name}} {{pod}}",
                ),
            ),
        ),
        Panel(
            "KV-cache usage",
            "Share of the GPU KV-cache blocks in use per pod (1 = full: new requests wait or are preempted).",
            "percentunit",
            ((f"max by (model_name, pod) (vllm:kv_cache_usage_perc{{{_MODEL}}})", "{{model_name}} {{pod}}"),),
        ),
        Panel(
            "Tokens per second",
            "Prompt (prefill) and generated (decode) tokens processed per second.",
            "short",
            (
                (
                    f"sum by (model_name) (rate(vllm:prompt_tokens_total{{{_MODEL}}}[{RATE}]))",
                    "prompt {{model_name}}",
                ),
                (
                    f"sum by (model_name) (rate(vllm:generation_tokens_total{{{_MODEL}}}[{RATE}]))",
                    "generation {{model_name}}",
                ),
            ),
        ),
        Panel(
            "Replicas and readiness",
            "Desired, existing and ready replicas of each variant's Deployment (kube-state-metrics).",
            "short",
            (
                (
                    'sum by (deployment) (kube_deployment_spec_replicas{deployment=~"$variant"})',
                    "desired {{deployment}}",
                ),
                (
                    'sum by (deployment) (kube_deployment_status_replicas{deployment=~"$variant"})',
                    "existing {{deployment}}",
                ),
                (
                    'sum by (deployment) (kube_deployment_status_replicas_ready{deployment=~"$variant"})',
                    "ready {{deployment}}",
                ),
            ),
        ),
        Panel(
            "Engines scraped",
            "Engine pods whose /metrics answered the last scrape (0 while scaled to zero or not ready).",
            "short",
            (
                (
                    f'sum by (app_kubernetes_io_name) (up{{{_VARIANT}, container="{MODEL_SERVER_CONTAINER}"}})',
                    "{{app_kubernetes_io_name}}",
                ),
            ),
            kind="stat",
        ),
    ),
)

CLIENTS = DashboardSpec(
    uid="inferstack-clients",
    title="InferStack / API clients",
    description=(
        "Per API client: requests and tokens (Envoy AI Gateway's GenAI metrics, labelled by client id when "
        "its controller maps the client-id header), and the gateway's rate-limit refusals (Envoy)."
    ),
    variables=(
        (
            "client",
            "API client",
            f"label_values(gen_ai_server_request_duration_seconds_count, {CLIENT_ID_LABEL})",
        ),
    ),
    panels=(
        Panel(
            "Requests per client",
            "Requests per second through AI Gateway by client id and model.",
            "reqps",
            (
                (
                    f"sum by ({CLIENT_ID_LABEL}, gen_ai_request_model) (rate(gen_ai_server_request_duration_seconds_count"
                    f'{{{CLIENT_ID_LABEL}=~"$client"}}[{RATE}]))',
                    "{{" + CLIENT_ID_LABEL + "}} {{gen_ai_request_model}}",
                ),
            ),
        ),
        Panel(
            "Failed requests per client",
            "Requests AI Gateway saw fail (error_type set), per client.",
            "reqps",
            (
                (
                    f"sum by ({CLIENT_ID_LABEL}) (rate(gen_ai_server_request_duration_seconds_count"
                    f'{{{CLIENT_ID_LABEL}=~"$client", error_type!=""}}[{RATE}]))',
                    "{{" + CLIENT_ID_LABEL + "}}",
                ),
            ),
        ),
        Panel(
            "Tokens per client",
            "Input and output tokens per second by client (the usage the token quotas charge).",
            "short",
            (
                (
                    f"sum by ({CLIENT_ID_LABEL}, gen_ai_token_type) (rate(gen_ai_client_token_usage_sum"
                    f'{{{CLIENT_ID_LABEL}=~"$client", gen_ai_token_type=~"input|output"}}[{RATE}]))',
                    "{{" + CLIENT_ID_LABEL + "}} {{gen_ai_token_type}}",
                ),
            ),
        ),
        Panel(
            "Requests refused by rate limits (all clients)",
            "Share of each Gateway's requests answered 429 by its rate limits: the local requests-per-minute "
            "limit and the global token quotas together, over the requests its listeners received (the "
            "InferStackGateway429Rate alert's expression). Both are refused before any backend, so route "
            "counters do not see the local ones. Envoy's rate-limit counters carry no client label: this is "
            "every client's, per Gateway.",
            "percentunit",
            (
                (
                    gateway_refused_share(RATE),
                    "{{" + GATEWAY_NAME_LABEL + "}}",
                ),
            ),
        ),
        Panel(
            "429s by route",
            "429 responses per second charged to each Envoy route cluster: backends' own 429s and the global "
            "(token quota) limit's refusals. The local requests-per-minute limit answers before routing and "
            "is not counted here; the panel above has it.",
            "reqps",
            (
                (
                    f'sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq{{envoy_response_code="429"}}[{RATE}]))',
                    "{{envoy_cluster_name}}",
                ),
            ),
        ),
    ),
)

GPUS = DashboardSpec(
    uid="inferstack-gpus",
    title="InferStack / GPUs",
    description="Per GPU (NVIDIA DCGM exporter): utilization, memory, power, temperature, XID errors.",
    variables=(
        ("node", "Node", "label_values(DCGM_FI_DEV_GPU_UTIL, Hostname)"),
        ("gpu", "GPU", 'label_values(DCGM_FI_DEV_GPU_UTIL{Hostname=~"$node"}, gpu)'),
    ),
    panels=(
        Panel(
            "Utilization",
            "Share of time a kernel ran on the GPU (DCGM_FI_DEV_GPU_UTIL, percent).",
            "percent",
            (
                (
                    'avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL{Hostname=~"$node", gpu=~"$gpu"})',
                    "{{Hostname}} GPU {{gpu}}",
                ),
            ),
        ),
        Panel(
            "Memory used",
            "Framebuffer memory used as a share of used + free (vLLM reserves most of it for the KV cache).",
            "percentunit",
            (
                (
                    'sum by (Hostname, gpu) (DCGM_FI_DEV_FB_USED{Hostname=~"$node", gpu=~"$gpu"}) / '
                    'sum by (Hostname, gpu) (DCGM_FI_DEV_FB_USED{Hostname=~"$node", gpu=~"$gpu"} + '
                    'DCGM_FI_DEV_FB_FREE{Hostname=~"$node", gpu=~"$gpu"})',
                    "{{Hostname}} GPU {{gpu}}",
                ),
            ),
        ),
        Panel(
            "Power draw",
            "Power draw in watts.",
            "watt",
            (
                (
                    'avg by (Hostname, gpu) (DCGM_FI_DEV_POWER_USAGE{Hostname=~"$node", gpu=~"$gpu"})',
                    "{{Hostname}} GPU {{gpu}}",
                ),
            ),
        ),
        Panel(
            "Temperature",
            "GPU and memory temperature in degrees Celsius.",
            "celsius",
            (
                (
                    'avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_TEMP{Hostname=~"$node", gpu=~"$gpu"})',
                    "GPU {{Hostname}} {{gpu}}",
                ),
                (
                    'avg by (Hostname, gpu) (DCGM_FI_DEV_MEMORY_TEMP{Hostname=~"$node", gpu=~"$gpu"})',
                    "memory {{Hostname}} {{gpu}}",
                ),
            ),
        ),
        Panel(
            "Last XID error",
            "The code of the last XID error each GPU reported (0: none). The exporter keeps it until it "
            "restarts, so a steady value may be old: the InferStackGpuXidError alert fires on a change. 13, 31, "
            "43, 45 are an application's (e.g. a vLLM pod stopped); see NVIDIA's XID catalogue for the rest - "
            "48, 63, 64, 74, 79, 94, 95 usually mean draining the node.",
            "none",
            (
                (
                    'max by (Hostname, gpu) (DCGM_FI_DEV_XID_ERRORS{Hostname=~"$node", gpu=~"$gpu"})',
                    "{{Hostname}} GPU {{gpu}}",
                ),
            ),
            kind="stat",
        ),
    ),
)

DASHBOARDS: tuple[DashboardSpec, ...] = (MODELS, CLIENTS, GPUS)


def _panel(panel: Panel) -> Any:
    builder: Any = gstat.Panel() if panel.kind == "stat" else gts.Panel()
    builder = (
        builder.title(panel.title).description(panel.description).unit(panel.unit).datasource(_DATASOURCE)
    )
    builder = builder.height(8).span(12)
    for i, (expr, legend) in enumerate(panel.queries):
        builder = builder.with_target(
            gprom.Dataquery()
            .expr(expr)
            .legend_format(legend)
            .ref_id(chr(ord("A") + i))
            .datasource(_DATASOURCE)
        )
    return builder


def build_dashboard(spec: DashboardSpec) -> dict[str, Any]:
    """One dashboard's JSON model (a dict Grafana's dashboard API and file provisioning accept)."""
    builder = (
        gdash.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(["inferstack"])
        .time("now-6h", "now")
        .refresh("1m")
        .with_variable(gdash.DatasourceVariable(DATASOURCE_VARIABLE).label("Data source").type("prometheus"))
    )
    for name, label, query in spec.variables:
        builder = builder.with_variable(
            gdash.QueryVariable(name)
            .label(label)
            .query(query)
            .datasource(_DATASOURCE)
            .refresh(gdashboard_model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(gdashboard_model.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            # ".*" also matches series without the label (single-model stacks have no variant label).
            .all_value(".*")
        )
    for panel in spec.panels:
        builder = builder.with_panel(_panel(panel))
    result: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return result


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard's JSON model by file name (`<uid>.json`): pure, same output every call."""
    return {f"{spec.uid}.json": build_dashboard(spec) for spec in DASHBOARDS}


def dashboard_expressions(model: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and query variable of a dashboard JSON model."""
    found: list[tuple[str, str]] = []
    for panel in model.get("panels", []):
        for target in panel.get("targets", []):
            found.append((f"{model['uid']} / {panel['title']} / {target['refId']}", target["expr"]))
    for variable in model.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            found.append((f"{model['uid']} / ${variable['name']}", variable["query"]))
    return found


@dataclass(frozen=True)
class DashboardsArgs:
    """Where the dashboard ConfigMaps go and how Grafana's sidecar recognises them."""

    namespace: str = "monitoring"  # a namespace the sidecar searches (kube-prometheus-stack: ALL)
    sidecar_label: str = SIDECAR_LABEL  # the sidecar's `sidecar.dashboards.label`
    sidecar_label_value: str = SIDECAR_LABEL_VALUE  # its `sidecar.dashboards.labelValue`
    folder: str | None = None  # Grafana folder (annotation the sidecar reads when folderAnnotation is set)
    folder_annotation: str = "grafana_folder"  # the sidecar's `sidecar.dashboards.folderAnnotation`


def validate_dashboards_args(args: DashboardsArgs) -> list[str]:
    """Every problem with the args, each naming the field; empty when they are usable."""
    problems: list[str] = []
    if not _DNS_LABEL_RE.match(args.namespace or ""):
        problems.append(
            f"namespace: {args.namespace!r} is not a Kubernetes namespace name (lowercase, digits, '-')"
        )
    if not args.sidecar_label:
        problems.append(
            "sidecar_label: must not be empty; Grafana's sidecar selects ConfigMaps by this label"
        )
    elif not re.match(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", args.sidecar_label):
        problems.append(f"sidecar_label: {args.sidecar_label!r} is not a valid Kubernetes label key")
    if len(args.sidecar_label_value) > 63 or not re.match(
        r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$", args.sidecar_label_value
    ):
        problems.append(
            f"sidecar_label_value: {args.sidecar_label_value!r} is not a valid Kubernetes label value"
        )
    if args.folder is not None and not args.folder.strip():
        problems.append("folder: must not be blank; leave it None for Grafana's default folder")
    for spec in DASHBOARDS:
        if not _UID_RE.match(spec.uid):  # Grafana: uid up to 40 characters of [a-zA-Z0-9_-]
            problems.append(f"dashboard uid {spec.uid!r}: at most 40 of [a-zA-Z0-9_-]")
    return problems


class Dashboards(pulumi.ComponentResource):
    """One ConfigMap per dashboard, labelled for Grafana's dashboard sidecar."""

    config_map_names: list[str]

    def __init__(self, name: str, args: DashboardsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args("Dashboards", name, validate_dashboards_args(args))
        super().__init__("inferstack:dashboards:Dashboards", name, None, opts)
        annotations = {args.folder_annotation: args.folder} if args.folder else None
        self.config_map_names = []
        for file_name, model in dashboards().items():
            role = file_name.removesuffix(".json")
            cm_name = f"{name}-{role.removeprefix('inferstack-')}"
            k8s.core.v1.ConfigMap(
                f"{name}-{role}",
                metadata={
                    "name": cm_name,
                    "namespace": args.namespace,
                    "labels": {**labels(name, "dashboards"), args.sidecar_label: args.sidecar_label_value},
                    **({"annotations": annotations} if annotations else {}),
                },
                # Sorted keys: the JSON text (and so the ConfigMap) changes only when a dashboard does.
                data={file_name: json.dumps(model, indent=1, sort_keys=True)},
                opts=child(self),
            )
            self.config_map_names.append(cm_name)
        self.register_outputs({"config_map_names": self.config_map_names})
