"""Monitoring: the Prometheus the autoscaler queries, and scraping of the gateway's Envoy proxies.

Either installs kube-prometheus-stack (pinned) with a lean footprint - Prometheus and its operator only;
Grafana, Alertmanager, node exporter and kube-state-metrics are off unless asked for - or, given the URL
of a Prometheus the cluster already has, installs nothing and hands that URL on.

The installed Prometheus selects PodMonitors and ServiceMonitors in every namespace whatever their
labels (the chart's default only picks objects labelled for its own Helm release), so the model
server's PodMonitor is scraped wherever it lives.

An existing Prometheus (`prometheus_url`) keeps its own selectors, and they are not ours to change. A
kube-prometheus-stack installed with its defaults selects only PodMonitors labelled
`release: <its Helm release name>` (chart 88.5.3 values.yaml: `podMonitorSelectorNilUsesHelmValues: true`
with `podMonitorSelector: {}`; templates/prometheus/prometheus.yaml then renders
`podMonitorSelector: {matchLabels: {release: {{ $.Release.Name }}}}`). A PodMonitor without that label
is never scraped, no vLLM or Envoy series exists, and the autoscaler's queries come back empty - so the
stack file must name the labels (`monitoring.pod_monitor_labels`), and every PodMonitor carries them.

The Envoy PodMonitor matters for scale-from-zero: while no model pod runs there is no vLLM metric at
all, and the gateway's own counters are the only signal that clients are waiting. It copies each proxy
pod's owning-Gateway labels onto the series (`gateway_envoyproxy_io_owning_gateway_name`, `..._namespace`)
so the autoscaler can tell one Gateway's traffic from another's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._common import KUBE_PROMETHEUS_STACK, child, helm_release, labels, reject_invalid_args

DEFAULT_NAMESPACE = "monitoring"
PROMETHEUS_PORT = 9090
#: kube-prometheus-stack truncates its fullname to this many characters before adding "-prometheus".
_FULLNAME_MAX = 26

#: Labels the Prometheus operator puts on every Prometheus server pod it runs (prometheus-operator
#: pkg/prometheus/server/statefulset.go, `podSelectorLabels`; the operator kube-prometheus-stack 88.5.3
#: deploys): what a NetworkPolicy admits scrapes from when the stack file does not say otherwise.
PROMETHEUS_POD_LABELS = {
    "app.kubernetes.io/name": "prometheus",
    "app.kubernetes.io/managed-by": "prometheus-operator",
}
#: The label kube-prometheus-stack's default podMonitorSelector matches (value: its Helm release name).
HELM_RELEASE_SELECTOR_LABEL = "release"

ENVOY_GATEWAY_NAMESPACE = "envoy-gateway-system"
#: Labels Envoy Gateway puts on every proxy pod it runs for a Gateway (v1.8.3
#: internal/infrastructure/kubernetes/proxy/resource.go `EnvoyAppLabel`, which also sets
#: app.kubernetes.io/managed-by: envoy-gateway).
ENVOY_PROXY_POD_LABELS = {"app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy"}
#: The proxy container's port named "metrics" (19001, bootstrap.EnvoyStatsPort) serves Envoy's stats in
#: Prometheus format at /stats/prometheus (v1.8.3 proxy/resource.go `expectedProxyContainers` and
#: resource_provider.go `getPodAnnotations`), unless the EnvoyProxy turns Prometheus metrics off.
ENVOY_METRICS_PORT = "metrics"
ENVOY_METRICS_PATH = "/stats/prometheus"
#: Envoy AI Gateway v1.1.0 runs its external processor as a native sidecar (an init container with
#: restartPolicy Always) injected into the same proxy pods (internal/controller/gateway_mutator.go,
#: container `ai-gateway-extproc`); its admin server serves /metrics and /health on port 1064, named
#: "aigw-admin" (internal/controller/extproc_builder.go `extProcAdminPort`; cmd/extproc/mainlib/admin.go).
AI_GATEWAY_EXTPROC_METRICS_PORT = "aigw-admin"
AI_GATEWAY_EXTPROC_METRICS_PATH = "/metrics"
#: Pod labels copied onto every Envoy series; Prometheus turns them into
#: gateway_envoyproxy_io_owning_gateway_name / ..._namespace.
ENVOY_GATEWAY_POD_LABELS = [
    "gateway.envoyproxy.io/owning-gateway-name",
    "gateway.envoyproxy.io/owning-gateway-namespace",
]


@dataclass(frozen=True)
class MonitoringArgs:
    """Where metrics come from; defaults give a small in-cluster Prometheus."""

    prometheus_url: str | None = None  # an existing Prometheus (http[s]://...): install nothing
    namespace: str = DEFAULT_NAMESPACE  # namespace of the installed stack
    retention: str = "7d"  # how long samples are kept (Prometheus duration)
    retention_size: str = "5GiB"  # cap on the TSDB size; the default volume is an emptyDir
    grafana: bool = False  # also install Grafana
    alertmanager: bool = False  # also install Alertmanager
    node_exporter: bool = False  # also run node exporter on every node
    kube_state_metrics: bool = False  # also install kube-state-metrics
    scrape_envoy: bool = True  # PodMonitor for the Envoy Gateway proxies (scale-from-zero signal)
    # PodMonitor for Envoy AI Gateway's ext_proc sidecar in the same proxy pods (token usage, per-model
    # request metrics); only stacks that route through AI Gateway have the sidecar.
    scrape_ai_gateway_extproc: bool = False
    envoy_namespace: str = ENVOY_GATEWAY_NAMESPACE  # where Envoy Gateway runs its proxy pods
    # Labels put on every PodMonitor: what an existing Prometheus's podMonitorSelector matches, e.g.
    # {"release": "<its Helm release>"} for a kube-prometheus-stack with default values.
    pod_monitor_labels: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)  # escape hatch: chart values merged over ours
    # The provider CRD charts are applied with (components/_common.py crd_provider): adopts CRDs already on
    # the cluster. None: the inherited provider (a fresh cluster only).
    crd_provider: pulumi.ProviderResource | None = None


def validate_monitoring_args(args: MonitoringArgs) -> list[str]:
    """Every problem with the args, each naming the field; empty when they are usable."""
    problems: list[str] = []
    if args.prometheus_url is not None:
        if not args.prometheus_url.startswith(("http://", "https://")):
            problems.append(f"prometheus_url: {args.prometheus_url!r} must start with http:// or https://")
        installs_only = [
            name
            for name, is_set in (
                ("values", bool(args.values)),
                ("grafana", args.grafana),
                ("alertmanager", args.alertmanager),
                ("node_exporter", args.node_exporter),
                ("kube_state_metrics", args.kube_state_metrics),
            )
            if is_set
        ]
        if installs_only:
            problems.append(
                f"prometheus_url and {', '.join(installs_only)}: an existing Prometheus means nothing is "
                "installed, so these would be ignored; drop them or drop prometheus_url"
            )
    if not args.namespace:
        problems.append("namespace: must not be empty")
    if (args.scrape_envoy or args.scrape_ai_gateway_extproc) and not args.envoy_namespace:
        problems.append(
            "envoy_namespace: must not be empty when scrape_envoy or scrape_ai_gateway_extproc is on"
        )
    for key in ("retention", "retention_size"):
        if not getattr(args, key):
            problems.append(f"{key}: must not be empty")
    return problems


def stack_fullname(name: str) -> str:
    """The chart's fullnameOverride for this component: its name, cut as the chart cuts it, so the
    Prometheus Service is always `<fullname>-prometheus`."""
    return name[:_FULLNAME_MAX].rstrip("-")


def in_cluster_url(name: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    return f"http://{stack_fullname(name)}-prometheus.{namespace}.svc:{PROMETHEUS_PORT}"


def prometheus_stack_values(name: str, args: MonitoringArgs) -> dict[str, Any]:
    """kube-prometheus-stack values: Prometheus + operator, every monitor selected, modest retention."""
    return {
        "fullnameOverride": stack_fullname(name),
        "grafana": {"enabled": args.grafana},
        # The receivers are the operator's: with useExistingSecret the chart writes no configuration and the
        # Alertmanager reads the Secret alertmanager-<fullname>-alertmanager (kube-prometheus-stack 88.5.3
        # values.yaml alertmanager.alertmanagerSpec.useExistingSecret) that the cluster's owner creates.
        "alertmanager": {"enabled": args.alertmanager}
        | ({"alertmanagerSpec": {"useExistingSecret": True}} if args.alertmanager else {}),
        "nodeExporter": {"enabled": args.node_exporter},
        # The chart's own rules (kube-prometheus's: Watchdog, KubeSchedulerDown, KubeControllerManagerDown, ...)
        # alert on control-plane components a managed cluster does not expose and carry their own severities
        # (critical, warning, none); with Alertmanager on they would page beside the stack's rules
        # (components/alert_rules.py, severities page and ticket). Only the stack's rules are loaded.
        "defaultRules": {"create": False},
        "kubeStateMetrics": {"enabled": args.kube_state_metrics},
        "prometheus": {
            "enabled": True,
            "prometheusSpec": {
                "retention": args.retention,
                "retentionSize": args.retention_size,
                # Empty selectors + NilUsesHelmValues false: every monitor in every namespace, not only
                # those labelled for this Helm release.
                "podMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelector": {},
                "podMonitorNamespaceSelector": {},
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "serviceMonitorSelector": {},
                "serviceMonitorNamespaceSelector": {},
                "ruleSelectorNilUsesHelmValues": False,
                "probeSelectorNilUsesHelmValues": False,
            },
        },
    }


def envoy_pod_monitor_spec() -> dict[str, Any]:
    return {
        "selector": {"matchLabels": dict(ENVOY_PROXY_POD_LABELS)},
        "podTargetLabels": list(ENVOY_GATEWAY_POD_LABELS),
        "podMetricsEndpoints": [{"port": ENVOY_METRICS_PORT, "path": ENVOY_METRICS_PATH, "interval": "15s"}],
    }


def ai_gateway_extproc_pod_monitor_spec() -> dict[str, Any]:
    """The extproc sidecar's admin port on every proxy pod; pods without the sidecar give no target.
    Prometheus's pod discovery lists init containers' ports too (`__meta_kubernetes_pod_container_init`),
    which is where a native sidecar's port is declared."""
    return {
        "selector": {"matchLabels": dict(ENVOY_PROXY_POD_LABELS)},
        "podTargetLabels": list(ENVOY_GATEWAY_POD_LABELS),
        "podMetricsEndpoints": [
            {
                "port": AI_GATEWAY_EXTPROC_METRICS_PORT,
                "path": AI_GATEWAY_EXTPROC_METRICS_PATH,
                "interval": "15s",
            }
        ],
    }


def gateway_pod_monitors(
    name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions
) -> list[k8s.apiextensions.CustomResource]:
    """The PodMonitors for the gateway's proxies that `scrape_envoy` / `scrape_ai_gateway_extproc` ask for,
    in `envoy_namespace`, next to the proxies (no namespaceSelector needed). That namespace is made by the
    Envoy Gateway release: a composition that installs the gateway after Monitoring creates these itself,
    after that release (Monitoring's own args then leave both off), parented to the Monitoring component."""
    monitors = []
    wanted = (
        (args.scrape_envoy, "envoy", envoy_pod_monitor_spec()),
        (args.scrape_ai_gateway_extproc, "ai-gateway-extproc", ai_gateway_extproc_pod_monitor_spec()),
    )
    for on, role, spec in wanted:
        if not on:
            continue
        monitors.append(
            k8s.apiextensions.CustomResource(
                f"{name}-{role}-podmonitor",
                api_version="monitoring.coreos.com/v1",
                kind="PodMonitor",
                metadata={
                    "name": f"{name}-{role}",
                    "namespace": args.envoy_namespace,
                    "labels": {**labels(f"{name}-{role}", "monitoring"), **args.pod_monitor_labels},
                },
                spec=spec,
                opts=opts,
            )
        )
    return monitors


class Monitoring(pulumi.ComponentResource):
    """Prometheus for the autoscaler: installed here, or an existing one passed through."""

    prometheus_url: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args("Monitoring", name, validate_monitoring_args(args))
        super().__init__("inferstack:monitoring:Monitoring", name, None, opts)

        #: The kube-prometheus-stack release when installed: depend on it for anything that needs the
        #: Prometheus operator's CRDs (PodMonitor, ServiceMonitor).
        self.release: k8s.helm.v3.Release | None = None
        if args.prometheus_url is None:
            self.release = helm_release(
                f"{name}-prometheus-stack",
                KUBE_PROMETHEUS_STACK,
                namespace=args.namespace,
                values=prometheus_stack_values(name, args),
                extra_values=args.values,
                crd_provider=args.crd_provider,
                opts=child(self),
            )
            url: pulumi.Input[str] = self.release.status.apply(lambda _: in_cluster_url(name, args.namespace))
        else:
            url = args.prometheus_url

        gateway_pod_monitors(name, args, child(self, depends_on=[self.release] if self.release else None))

        self.prometheus_url = pulumi.Output.from_input(url)
        self.register_outputs({"prometheus_url": self.prometheus_url})
