"""The plan-level rule `metrics-api`: a resource-metric scaler has something serving metrics.k8s.io.

KEDA's `cpu` and `memory` triggers, and an HPA's `Resource` / `ContainerResource` metrics, read the
resource metrics API (`metrics.k8s.io`), which only metrics-server (or a replacement registered as that
APIService) serves. KEDA's cpu scaler docs (2.20, "Prerequisites"): "KEDA uses standard cpu and memory
metrics from the Kubernetes Metrics Server, which is not installed by default on certain Kubernetes
deployments such as EKS on AWS". Without it the ScaledObject is created, its HPA reports
`FailedGetResourceMetric`, and nothing ever scales: a schema cannot see that, the plan can.

The rule passes when the plan installs metrics-server (a Helm release of the kubernetes-sigs chart), or
the stack says who else serves the API (`provider`: "platform" for GKE, "cluster" for a stack file whose
`cluster.metrics_server.install` is false).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from inferstack.validation.common import CheckOutcome, Finding, resource_id

CHECK = "metrics-api"
#: KEDA trigger types that read metrics.k8s.io (KEDA pkg/scalers/cpu_memory_scaler.go serves both).
RESOURCE_TRIGGERS = frozenset({"cpu", "memory"})
#: HPA (autoscaling/v2) metric types answered from metrics.k8s.io.
RESOURCE_METRIC_TYPES = frozenset({"Resource", "ContainerResource"})
#: The chart name as given to Helm, alone or at the end of an OCI/URL reference.
METRICS_SERVER_CHART = "metrics-server"


def resource_metric_readers(manifests: Iterable[dict[str, Any]]) -> list[str]:
    """`Kind/namespace/name` of every ScaledObject with a cpu/memory trigger and every HPA with a
    Resource/ContainerResource metric."""
    readers = []
    for obj in manifests:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            continue
        kind = obj.get("kind")
        if kind == "ScaledObject" and str(obj.get("apiVersion", "")).startswith("keda.sh/"):
            types = {t.get("type") for t in spec.get("triggers") or [] if isinstance(t, dict)}
        elif kind == "HorizontalPodAutoscaler":
            types = {m.get("type") for m in spec.get("metrics") or [] if isinstance(m, dict)}
        else:
            continue
        if types & (RESOURCE_TRIGGERS | RESOURCE_METRIC_TYPES):
            readers.append(resource_id(obj))
    return readers


def metrics_api_outcome(
    manifests: Iterable[dict[str, Any]], helm_charts: Iterable[str], provider: str | None
) -> CheckOutcome:
    """One finding per resource-metric reader when nothing serves metrics.k8s.io.

    `helm_charts` are the plan's Helm chart references; `provider` is the stack's own statement of who
    serves the API besides the plan ("platform", "cluster" or None; `StackConfig.metrics_api_provider`).
    """
    readers = resource_metric_readers(manifests)
    installed = any(c.rstrip("/").rsplit("/", 1)[-1] == METRICS_SERVER_CHART for c in helm_charts)
    if not readers or installed or provider in {"platform", "cluster"}:
        return CheckOutcome(findings=[], notes=[], validated=len(readers))
    findings = [
        Finding(
            check=CHECK,
            resource=reader,
            message="scales on CPU/memory, which KEDA and the HPA read from metrics.k8s.io, yet the plan "
            "installs no metrics-server and the stack does not say the cluster has one: leave "
            "cluster.metrics_server.install unset (aws, onprem) or set it to true, or set it to false only "
            "where the cluster already runs metrics-server (k3s, kubespray metrics_server_enabled)",
        )
        for reader in readers
    ]
    return CheckOutcome(findings=findings, notes=[], validated=len(readers))
