"""Small pieces every component shares: child options, labels, and pinned Helm charts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

MANAGED_BY = {"app.kubernetes.io/managed-by": "inferstack", "app.kubernetes.io/part-of": "inferstack"}


def child(parent: pulumi.Resource, **kwargs: Any) -> pulumi.ResourceOptions:
    """Options for a component's child: parented, so names nest, deletes cascade and the component's
    providers (the cluster's Kubernetes provider) are inherited."""
    return pulumi.ResourceOptions(parent=parent, **kwargs)


def reject_invalid_args(component: str, name: str, problems: list[str]) -> None:
    """Raise one ValueError listing every problem (each names its field), before any resource exists."""
    if problems:
        raise ValueError(f"{component} {name!r}: {len(problems)} problem(s)\n  " + "\n  ".join(problems))


def labels(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component, **MANAGED_BY}


@dataclass(frozen=True)
class HelmChart:
    """A chart pinned to an exact version. `values_dir` names its folder under the charts data directory
    (`--chart-dir` / $INFERSTACK_CHART_DIR) that `inferstack check` validates our values against."""

    chart: str
    version: str
    repo: str | None
    values_dir: str


# Versions seen released in August-November 2026 (see DESIGN.md); bump deliberately, one at a time.
ENVOY_GATEWAY = HelmChart("oci://docker.io/envoyproxy/gateway-helm", "v1.8.4", None, "envoy-gateway")
CERT_MANAGER = HelmChart("cert-manager", "v1.20.2", "https://charts.jetstack.io", "cert-manager")
KEDA = HelmChart("keda", "2.20.2", "https://kedacore.github.io/charts", "keda")
KUBE_PROMETHEUS_STACK = HelmChart(
    "kube-prometheus-stack",
    "88.5.3",
    "https://prometheus-community.github.io/helm-charts",
    "kube-prometheus-stack",
)
NVIDIA_DEVICE_PLUGIN = HelmChart(
    "nvidia-device-plugin", "0.20.0", "https://nvidia.github.io/k8s-device-plugin", "nvidia-device-plugin"
)
GPU_OPERATOR = HelmChart("gpu-operator", "v26.7.0", "https://helm.ngc.nvidia.com/nvidia", "gpu-operator")

# 1.14.1 is released: the chart on aws/karpenter-provider-aws's default branch says 1.14.1 with the
# controller image's digest (the release commit), and others pin 1.14.1 from the OCI registry since
# 2026-08. Its values.yaml is the one our values are checked against (../shared/charts/karpenter).
# Bumping it: Helm installs the chart's CRDs on first install only, so apply the new version's CRDs (the
# karpenter-crd chart or the CRD files) before upgrading, as Karpenter's upgrade guide says.
KARPENTER = HelmChart("oci://public.ecr.aws/karpenter/karpenter", "1.14.1", None, "karpenter")

# aws/eks-charts PR #1354 "aws-load-balancer-controller: v3.5.0", merged 2026-08-03; chart 3.5.0 serves
# controller v3.5.0 (../shared/charts/aws-load-balancer-controller/Chart.yaml at that commit).
AWS_LOAD_BALANCER_CONTROLLER = HelmChart(
    "aws-load-balancer-controller",
    "3.5.0",
    "https://aws.github.io/eks-charts",
    "aws-load-balancer-controller",
)


def helm_release(
    name: str,
    chart: HelmChart,
    *,
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
    extra_values: dict[str, Any] | None = None,
) -> k8s.helm.v3.Release:
    """Install a pinned chart into its own namespace; `extra_values` is the escape hatch for settings we
    do not type, merged over ours."""
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=chart.chart,
        version=chart.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo) if chart.repo else None,
        namespace=namespace,
        create_namespace=True,
        atomic=True,
        cleanup_on_fail=True,
        timeout=600,
        values=deep_merge(values, extra_values or {}),
        opts=opts,
    )


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


RESTRICTED_CONTAINER_SECURITY: dict[str, Any] = {
    "allow_privilege_escalation": False,
    "capabilities": {"drop": ["ALL"]},
    "run_as_non_root": True,
    "read_only_root_filesystem": True,
    "seccomp_profile": {"type": "RuntimeDefault"},
}
