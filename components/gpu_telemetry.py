"""GpuTelemetry: NVIDIA's DCGM exporter on the GPU nodes, scraped by the stack's Prometheus.

Which exporter runs depends on how the nodes got their driver stack (`GpuTelemetrySource`):

- `gpu_operator` (on-prem, components/gpu_node_pool.py with driver_stack gpu_operator): the operator runs
  its own exporter (NVIDIA/gpu-operator assets/state-dcgm-exporter: DaemonSet `nvidia-dcgm-exporter`, pods
  labelled `app: nvidia-dcgm-exporter`, port 9400, Service port `gpu-metrics`, namespace `gpu-operator`)
  and its own ServiceMonitor. Nothing is installed here: `gpu_operator_telemetry_values` gives the values
  the GPU operator's release needs (dcgmExporter and its serviceMonitor on, labelled for our Prometheus).
  Installing a second exporter would run two DCGM host engines on each GPU.
- `nvidia_runtime` (on-prem with the device plugin; EKS AL2023/Bottlerocket NVIDIA AMIs): NVIDIA's
  dcgm-exporter chart, pinned (components/_common.py DCGM_EXPORTER). The NVIDIA container runtime gives
  the exporter the GPUs and driver libraries (its image sets NVIDIA_VISIBLE_DEVICES=all,
  docker/Dockerfile at 4.5.3-4.8.2); where containerd's default runtime is not NVIDIA's, name its
  RuntimeClass in `runtime_class_name`.
- `gke` (GKE-installed drivers, stacks/gcp.py): GKE offers managed DCGM metrics, but they are collected
  by Google Cloud Managed Service for Prometheus into Cloud Monitoring, not by a Prometheus of our own;
  Google's GMP exporter page sends self-deployed collection to the dcgm-exporter repository, and its own
  manifest (GoogleCloudPlatform/prometheus-engine examples/nvidia-dcgm/exporter.yaml) is what differs on
  GKE: the driver lives on the host at /home/kubernetes/bin/nvidia (mounted at /usr/local/nvidia,
  LD_LIBRARY_PATH=/usr/local/nvidia/lib64), the container is privileged (no NVIDIA runtime hands it the
  device nodes), and DCGM_EXPORTER_KUBERNETES_GPU_ID_TYPE=device-name (GKE's device plugin names devices,
  not UUIDs, in the kubelet's pod-resources API). So: the same pinned chart with those three changes,
  plus a ResourceQuota that lets the chart's `system-node-critical` pods run outside kube-system (GKE
  limits those priority classes to namespaces with such a quota: Kubernetes docs "Limit Priority Class
  consumption by default"; kube-system's `gcp-critical-pods` quota, e.g. openservicemesh/osm#4408).

Chart installs get their own namespace at Pod Security level `privileged`: the exporter mounts the
kubelet's pod-resources socket from the host (hostPath), runs as root and adds SYS_ADMIN for the
profiling (DCGM_FI_PROF_*) metrics (chart values.yaml `securityContext`), all of which `baseline`
forbids. The namespace is default-deny; one NetworkPolicy admits Prometheus to port 9400. The chart's
ServiceMonitor is off and a PodMonitor of ours (validated against the CRD, labelled
`pod_monitor_labels`) selects the chart's pods by their selector labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._common import DCGM_EXPORTER, child, helm_release, labels, reject_invalid_args
from components.monitoring import DEFAULT_NAMESPACE as PROMETHEUS_NAMESPACE
from components.monitoring import PROMETHEUS_POD_LABELS
from components.network_policy import in_namespace, namespace_default_deny

DEFAULT_NAMESPACE = "gpu-telemetry"
#: dcgm-exporter's listen port (chart values `service.port` / `service.address`; the operator's too).
EXPORTER_PORT = 9400
#: The container port's name in the chart's DaemonSet (templates/daemonset.yaml `ports: - name: "metrics"`).
EXPORTER_PORT_NAME = "metrics"
EXPORTER_METRICS_PATH = "/metrics"
#: The chart's name: its pods' `app.kubernetes.io/name` and `.../component` (templates/_helpers.tpl
#: `dcgm-exporter.selectorLabels`, with nameOverride left empty).
CHART_NAME = "dcgm-exporter"
#: What the GPU operator labels its exporter pods (assets/state-dcgm-exporter/0800_daemonset.yaml).
GPU_OPERATOR_EXPORTER_POD_LABELS = {"app": "nvidia-dcgm-exporter"}

#: GKE's driver install directory on the node and where Google's manifest mounts it in the container.
GKE_DRIVER_HOST_PATH = "/home/kubernetes/bin/nvidia"
GKE_DRIVER_MOUNT_PATH = "/usr/local/nvidia"
#: The chart's default `priorityClassName`; GKE admits it outside kube-system only under a quota.
CRITICAL_PRIORITY_CLASS = "system-node-critical"

#: The chart's default tolerations (values.yaml), kept when ours are added: a list in values replaces it.
_CHART_TOLERATIONS = [
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
]
#: The chart's default extraVolumeMounts (values.yaml): the counters file from the chart's ConfigMap.
#: Written out because adding the GKE driver mount replaces the list.
_CHART_VOLUME_MOUNTS = [
    {
        "name": "exporter-metrics-volume",
        "mountPath": "/etc/dcgm-exporter/default-counters.csv",
        "subPath": "default-counters.csv",
    }
]
#: Kubernetes quantities (the subset resource requests use).
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class GpuTelemetrySource(StrEnum):
    """Where the DCGM exporter comes from, by how the GPU nodes got their driver stack."""

    GPU_OPERATOR = "gpu_operator"  # the GPU operator's own exporter: values for its release, nothing here
    NVIDIA_RUNTIME = "nvidia_runtime"  # NVIDIA's chart on nodes with the NVIDIA container runtime
    GKE = "gke"  # NVIDIA's chart with GKE's driver path, privileged (Google's manifest)


@dataclass(frozen=True)
class GpuTelemetryArgs:
    """The GPU nodes to watch and the Prometheus that scrapes them."""

    source: GpuTelemetrySource  # how the exporter gets to the GPUs (see GpuTelemetrySource)
    # The GPU nodes: the pool's GpuPlacement.node_selector and .tolerations (camelCase dicts).
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, str]] = field(default_factory=list)
    namespace: str = DEFAULT_NAMESPACE  # the exporter's own namespace (chart installs)
    prometheus_namespace: str = PROMETHEUS_NAMESPACE  # where the scraping Prometheus pods run
    prometheus_pod_labels: dict[str, str] = field(default_factory=lambda: dict(PROMETHEUS_POD_LABELS))
    # Labels on the PodMonitor / the operator's ServiceMonitor: what the Prometheus's selector matches.
    pod_monitor_labels: dict[str, str] = field(default_factory=dict)
    scrape_interval: str = "15s"  # the chart's and the operator's default
    cpu_request: str = "100m"  # the chart's defaults (values.yaml `resources`)
    memory_request: str = "128Mi"
    cpu_limit: str = "200m"
    memory_limit: str = "512Mi"
    runtime_class_name: str | None = None  # nvidia_runtime: RuntimeClass when NVIDIA's is not the default
    values: dict[str, Any] = field(default_factory=dict)  # escape hatch: chart values merged over ours
    # Resources the PodMonitor waits for: the release that installs the Prometheus operator's CRDs
    # (Monitoring.release) where this stack installs it.
    monitors_after: list[pulumi.Resource] = field(default_factory=list)


def validate_gpu_telemetry_args(args: GpuTelemetryArgs) -> list[str]:
    """Every problem with the args, each naming the field; empty when they are usable."""
    problems: list[str] = []
    if not isinstance(args.source, GpuTelemetrySource):
        problems.append(
            f"source: {args.source!r} is not one of {', '.join(s.value for s in GpuTelemetrySource)}"
        )
        return problems
    installs = args.source is not GpuTelemetrySource.GPU_OPERATOR
    if installs and not args.node_selector:
        problems.append(
            "node_selector: the exporter must run on the GPU nodes only; pass the GPU pool's node_selector "
            "(e.g. {'inferstack.io/gpu-pool': 'gpu'})"
        )
    if installs and not any(t.get("key") == "nvidia.com/gpu" for t in args.tolerations):
        problems.append(
            "tolerations: none tolerates the nvidia.com/gpu taint, so the exporter never lands on a tainted "
            "GPU node; pass the GPU pool's tolerations"
        )
    if not installs:
        ignored = [
            name
            for name, is_set in (
                ("node_selector", bool(args.node_selector)),
                ("tolerations", bool(args.tolerations)),
                ("values", bool(args.values)),
                ("runtime_class_name", args.runtime_class_name is not None),
            )
            if is_set
        ]
        if ignored:
            problems.append(
                f"source gpu_operator and {', '.join(ignored)}: the operator runs its own exporter and "
                "this installs nothing, so these would be ignored; drop them (set the operator's "
                "dcgmExporter through the GPU node pool's values)"
            )
    if args.source is GpuTelemetrySource.GKE and args.runtime_class_name is not None:
        problems.append(
            "runtime_class_name: GKE has no NVIDIA RuntimeClass; drop it (source gke mounts the driver)"
        )
    if args.runtime_class_name is not None and not _DNS_LABEL.match(args.runtime_class_name):
        problems.append(f"runtime_class_name: {args.runtime_class_name!r} is not a RuntimeClass name")
    for key in ("namespace", "prometheus_namespace"):
        if not _DNS_LABEL.match(getattr(args, key)):
            problems.append(f"{key}: {getattr(args, key)!r} is not a namespace name (a DNS label)")
    if not args.prometheus_pod_labels:
        problems.append("prometheus_pod_labels: must not be empty (they pick the pods allowed to scrape)")
    if not _DURATION.match(args.scrape_interval):
        problems.append(f"scrape_interval: {args.scrape_interval!r} is not a Prometheus duration like 15s")
    for key in ("cpu_request", "memory_request", "cpu_limit", "memory_limit"):
        if not _QUANTITY.match(getattr(args, key)):
            problems.append(f"{key}: {getattr(args, key)!r} is not a Kubernetes quantity like 100m or 128Mi")
    return problems


def release_name(name: str) -> str:
    """The Helm release's name; it contains the chart's name, so the chart uses it as the fullname."""
    return f"{name}-{CHART_NAME}"


def exporter_pod_labels(name: str) -> dict[str, str]:
    """The labels the pinned chart puts on the exporter pods (templates/_helpers.tpl selectorLabels)."""
    return {
        "app.kubernetes.io/name": CHART_NAME,
        "app.kubernetes.io/instance": release_name(name),
        "app.kubernetes.io/component": CHART_NAME,
    }


def dcgm_exporter_values(args: GpuTelemetryArgs) -> dict[str, Any]:
    """Values for the dcgm-exporter chart: GPU nodes only, our resources, no ServiceMonitor of its own;
    on GKE the driver mount, privileged container and device-name GPU ids of Google's manifest. The
    escape hatch `args.values` is merged over these by the release (helm_release extra_values)."""
    values: dict[str, Any] = {
        "nodeSelector": dict(args.node_selector),
        "tolerations": [*_CHART_TOLERATIONS, *(t for t in args.tolerations if t not in _CHART_TOLERATIONS)],
        "resources": {
            "requests": {"cpu": args.cpu_request, "memory": args.memory_request},
            "limits": {"cpu": args.cpu_limit, "memory": args.memory_limit},
        },
        # Ours is a PodMonitor (CRD-validated, labelled for the stack's Prometheus).
        "serviceMonitor": {"enabled": False},
    }
    if args.runtime_class_name is not None:
        values["runtimeClassName"] = args.runtime_class_name
    if args.source is GpuTelemetrySource.GKE:
        values["extraHostVolumes"] = [{"name": "nvidia-install-dir-host", "hostPath": GKE_DRIVER_HOST_PATH}]
        values["extraVolumeMounts"] = [
            *_CHART_VOLUME_MOUNTS,
            {"name": "nvidia-install-dir-host", "mountPath": GKE_DRIVER_MOUNT_PATH, "readOnly": True},
        ]
        values["extraEnv"] = [
            {"name": "LD_LIBRARY_PATH", "value": f"{GKE_DRIVER_MOUNT_PATH}/lib64"},
            {"name": "DCGM_EXPORTER_KUBERNETES_GPU_ID_TYPE", "value": "device-name"},
        ]
        # Helm merges this map over the chart's: privileged needs allowPrivilegeEscalation not false (the
        # API server rejects that pair), so it is set true rather than left at the chart's false.
        values["securityContext"] = {"privileged": True, "allowPrivilegeEscalation": True}
    return values


def gpu_operator_telemetry_values(args: GpuTelemetryArgs) -> dict[str, Any]:
    """Values to merge into the GPU operator's release (GpuNodePoolArgs.values): its own exporter and
    ServiceMonitor on, labelled for our Prometheus (gpu-operator values.yaml `dcgmExporter`)."""
    return {
        "dcgmExporter": {
            "enabled": True,
            "serviceMonitor": {
                "enabled": True,
                "interval": args.scrape_interval,
                "additionalLabels": dict(args.pod_monitor_labels),
            },
        }
    }


def pod_monitor_spec(name: str, args: GpuTelemetryArgs) -> dict[str, Any]:
    """PodMonitor spec for the chart's exporter pods; the node's name is kept as `node` (DCGM labels
    series with `Hostname`, which is the pod's name in a container, not the node's)."""
    return {
        "selector": {"matchLabels": exporter_pod_labels(name)},
        "podMetricsEndpoints": [
            {
                "port": EXPORTER_PORT_NAME,
                "path": EXPORTER_METRICS_PATH,
                "interval": args.scrape_interval,
                "relabelings": [
                    {
                        "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                        "targetLabel": "node",
                        "action": "replace",
                    }
                ],
            }
        ],
    }


def prometheus_allow_spec(name: str, args: GpuTelemetryArgs) -> Any:
    """NetworkPolicy spec (a snake_case dict, typed Any: the SDK's TypedDicts cannot spell `from`): the
    Prometheus pods reach the exporter on TCP 9400, nothing else."""
    return {
        "pod_selector": {"match_labels": exporter_pod_labels(name)},
        "policy_types": ["Ingress"],
        "ingress": [
            {
                "from": [
                    {
                        "namespace_selector": in_namespace(args.prometheus_namespace),
                        "pod_selector": {"match_labels": dict(args.prometheus_pod_labels)},
                    }
                ],
                "ports": [{"port": EXPORTER_PORT, "protocol": "TCP"}],
            }
        ],
    }


class GpuTelemetry(pulumi.ComponentResource):
    """DCGM exporter on the GPU nodes (or, with the GPU operator, the values that turn its own on)."""

    #: Values for the GPU operator's release (source gpu_operator); {} otherwise.
    gpu_operator_values: dict[str, Any]

    def __init__(self, name: str, args: GpuTelemetryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args("GpuTelemetry", name, validate_gpu_telemetry_args(args))
        super().__init__("inferstack:gpu_telemetry:GpuTelemetry", name, None, opts)

        self.gpu_operator_values = {}
        if args.source is GpuTelemetrySource.GPU_OPERATOR:
            self.gpu_operator_values = gpu_operator_telemetry_values(args)
            self.register_outputs({"source": args.source.value})
            return

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": args.namespace,
                "labels": {
                    # hostPath, root and SYS_ADMIN (and on GKE privileged): only `privileged` admits them.
                    "pod-security.kubernetes.io/enforce": "privileged",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    **labels(name, "gpu-telemetry"),
                },
            },
            opts=child(self),
        )
        in_ns = child(self, depends_on=[namespace])
        namespace_default_deny(f"{name}-default-deny", args.namespace, in_ns)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-prometheus",
            metadata={"name": "allow-prometheus-scrape", "namespace": args.namespace},
            spec=prometheus_allow_spec(name, args),
            opts=in_ns,
        )
        quota: list[pulumi.Resource] = []
        if args.source is GpuTelemetrySource.GKE:
            quota.append(
                k8s.core.v1.ResourceQuota(
                    f"{name}-critical-pods",
                    metadata={"name": "critical-pods", "namespace": args.namespace},
                    spec={
                        # One exporter pod per GPU node; the cap only has to exceed any pool's size.
                        "hard": {"pods": "1000"},
                        "scope_selector": {
                            "match_expressions": [
                                {
                                    "operator": "In",
                                    "scope_name": "PriorityClass",
                                    "values": [CRITICAL_PRIORITY_CLASS],
                                }
                            ]
                        },
                    },
                    opts=in_ns,
                )
            )
        self.release = helm_release(
            release_name(name),
            DCGM_EXPORTER,
            namespace=args.namespace,
            values=dcgm_exporter_values(args),
            extra_values=args.values,
            opts=child(self, depends_on=[namespace, *quota]),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-podmonitor",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata={
                "name": f"{name}-dcgm-exporter",
                "namespace": args.namespace,
                "labels": {**labels(f"{name}-dcgm-exporter", "monitoring"), **args.pod_monitor_labels},
            },
            spec=pod_monitor_spec(name, args),
            opts=child(self, depends_on=[namespace, *args.monitors_after]),
        )
        self.register_outputs({"source": args.source.value, "namespace": args.namespace})
