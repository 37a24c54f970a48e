"""GpuTelemetry: the DCGM exporter on GPU nodes only, per platform, scraped through a default-deny namespace."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pulumi_kubernetes as k8s
import pytest
import yaml

from components._common import DCGM_EXPORTER, GPU_OPERATOR, deep_merge
from components.choices import GpuDriverStack
from components.gpu_node_pool import DEFAULT_TAINTS, GpuNodePoolArgs, gpu_operator_values, tolerations_for
from components.gpu_telemetry import (
    EXPORTER_PORT,
    EXPORTER_PORT_NAME,
    GpuTelemetry,
    GpuTelemetryArgs,
    GpuTelemetrySource,
    dcgm_exporter_values,
    exporter_pod_labels,
    gpu_operator_telemetry_values,
    validate_gpu_telemetry_args,
)
from components.monitoring import PROMETHEUS_POD_LABELS
from inferstack.planning.recording import Recording, run_program
from tests.components.schemas import (
    CHART_DIR,
    chart_value_errors,
    crd_errors,
    manifest_of,
    needs_charts,
    needs_crds,
)

RELEASE = "kubernetes:helm.sh/v3:Release"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE = "kubernetes:core/v1:Namespace"
QUOTA = "kubernetes:core/v1:ResourceQuota"

#: What the cloud pools (and an on-prem cluster following components/gpu_node_pool.py) put on GPU nodes.
GPU_TOLERATIONS = tolerations_for(list(DEFAULT_TAINTS))
POOL_SELECTOR = {"inferstack.io/gpu-pool": "gpu"}


def args_for(source: GpuTelemetrySource, **changes: Any) -> GpuTelemetryArgs:
    if source is GpuTelemetrySource.GPU_OPERATOR:
        return GpuTelemetryArgs(source=source, **changes)
    return GpuTelemetryArgs(
        source=source, node_selector=POOL_SELECTOR, tolerations=GPU_TOLERATIONS, **changes
    )


def render(args: GpuTelemetryArgs, name: str = "gpu-telemetry") -> Recording:
    def program() -> None:
        GpuTelemetry(name, args)

    return run_program(program)


def chart_file(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART_DIR / DCGM_EXPORTER.values_dir / name).read_text())
    return loaded


CHART_SOURCES = [GpuTelemetrySource.NVIDIA_RUNTIME, GpuTelemetrySource.GKE]


@pytest.mark.parametrize("source", CHART_SOURCES)
def test_installs_the_pinned_chart_on_gpu_nodes_only_tolerating_the_gpu_taint(
    source: GpuTelemetrySource,
) -> None:
    rec = render(args_for(source))
    release = rec.one(RELEASE, "-dcgm-exporter")
    assert (release.inputs["chart"], release.inputs["version"]) == ("dcgm-exporter", "4.8.2")
    assert release.inputs["repositoryOpts"]["repo"] == DCGM_EXPORTER.repo
    assert release.inputs["namespace"] == "gpu-telemetry"
    values = release.inputs["values"]
    assert values["nodeSelector"] == POOL_SELECTOR
    # The taint the GPU pools put on every node is tolerated, and the chart's own toleration is kept.
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in values["tolerations"]
    assert any(t["key"] == "node-role.kubernetes.io/control-plane" for t in values["tolerations"])
    assert values["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert values["serviceMonitor"] == {"enabled": False}


def test_nvidia_runtime_keeps_the_charts_security_context_and_no_host_driver() -> None:
    values = dcgm_exporter_values(args_for(GpuTelemetrySource.NVIDIA_RUNTIME))
    assert "securityContext" not in values  # the chart's: root, SYS_ADMIN added, ALL else dropped
    assert "extraHostVolumes" not in values
    assert "runtimeClassName" not in values
    with_class = dcgm_exporter_values(
        args_for(GpuTelemetrySource.NVIDIA_RUNTIME, runtime_class_name="nvidia")
    )
    assert with_class["runtimeClassName"] == "nvidia"


@needs_charts
def test_gke_mounts_the_driver_runs_privileged_and_names_gpus_by_device() -> None:
    values = dcgm_exporter_values(args_for(GpuTelemetrySource.GKE))
    assert values["extraHostVolumes"] == [
        {"name": "nvidia-install-dir-host", "hostPath": "/home/kubernetes/bin/nvidia"}
    ]
    mounts = {m["name"]: m for m in values["extraVolumeMounts"]}
    assert mounts["nvidia-install-dir-host"]["mountPath"] == "/usr/local/nvidia"
    # The chart's counters mount survives (a list in values replaces the chart's list).
    assert mounts["exporter-metrics-volume"] == chart_file("values.yaml")["extraVolumeMounts"][0]
    env = {e["name"]: e["value"] for e in values["extraEnv"]}
    assert env == {
        "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64",
        "DCGM_EXPORTER_KUBERNETES_GPU_ID_TYPE": "device-name",
    }
    merged = deep_merge(chart_file("values.yaml")["securityContext"], values["securityContext"])
    # privileged with allowPrivilegeEscalation false is rejected by the API server.
    assert merged["privileged"] is True and merged["allowPrivilegeEscalation"] is True


@needs_charts
def test_gke_gets_a_quota_for_the_charts_critical_priority_class() -> None:
    rec = render(args_for(GpuTelemetrySource.GKE))
    quota = rec.one(QUOTA)
    (expr,) = quota.inputs["spec"]["scopeSelector"]["matchExpressions"]
    assert expr["scopeName"] == "PriorityClass"
    assert chart_file("values.yaml")["priorityClassName"] in expr["values"]
    assert quota.urn in rec.one(RELEASE).dependencies
    assert render(args_for(GpuTelemetrySource.NVIDIA_RUNTIME)).of_type(QUOTA) == []


@pytest.mark.parametrize("source", CHART_SOURCES)
def test_namespace_is_privileged_and_default_deny_with_prometheus_let_in_on_9400(
    source: GpuTelemetrySource,
) -> None:
    rec = render(args_for(source))
    ns = rec.one(NAMESPACE)
    assert ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    policies = {p.inputs["metadata"]["name"]: p.inputs["spec"] for p in rec.of_type(POLICY)}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    allow = policies["allow-prometheus-scrape"]
    assert allow["podSelector"]["matchLabels"] == exporter_pod_labels("gpu-telemetry")
    (rule,) = allow["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert peer["podSelector"]["matchLabels"] == PROMETHEUS_POD_LABELS
    assert rule["ports"] == [{"port": EXPORTER_PORT, "protocol": "TCP"}]
    assert allow["policyTypes"] == ["Ingress"]


@needs_charts
def test_selector_and_port_are_the_ones_the_pinned_chart_puts_on_its_pods() -> None:
    chart = chart_file("Chart.yaml")
    values = chart_file("values.yaml")
    assert chart["version"] == DCGM_EXPORTER.version
    # templates/_helpers.tpl selectorLabels: name and component are the chart's name (nameOverride empty),
    # instance the release name; the container port is named "metrics" on service.port.
    assert values["nameOverride"] == ""
    labels = exporter_pod_labels("gpu-telemetry")
    assert labels["app.kubernetes.io/name"] == labels["app.kubernetes.io/component"] == chart["name"]
    assert labels["app.kubernetes.io/instance"] == "gpu-telemetry-dcgm-exporter"
    assert values["service"]["port"] == EXPORTER_PORT and EXPORTER_PORT_NAME == "metrics"


@pytest.mark.parametrize("source", CHART_SOURCES)
def test_pod_monitor_selects_the_exporter_pods_and_carries_the_prometheus_labels(
    source: GpuTelemetrySource,
) -> None:
    rec = render(args_for(source, pod_monitor_labels={"release": "prom"}))
    monitor = rec.one(POD_MONITOR)
    assert monitor.inputs["metadata"]["namespace"] == "gpu-telemetry"
    assert monitor.inputs["metadata"]["labels"]["release"] == "prom"
    spec = monitor.inputs["spec"]
    # The release is named so that the chart's fullname and instance label are predictable.
    assert rec.one(RELEASE).inputs["name"] == spec["selector"]["matchLabels"]["app.kubernetes.io/instance"]
    assert spec["selector"]["matchLabels"] == exporter_pod_labels("gpu-telemetry")
    (endpoint,) = spec["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("metrics", "/metrics", "15s")


@needs_crds
@pytest.mark.parametrize("source", CHART_SOURCES)
def test_pod_monitor_validates_against_the_crd(source: GpuTelemetrySource) -> None:
    assert crd_errors(manifest_of(render(args_for(source)).one(POD_MONITOR))) == []


@needs_charts
@pytest.mark.parametrize("source", CHART_SOURCES)
def test_release_values_validate_against_the_chart(source: GpuTelemetrySource) -> None:
    values = dcgm_exporter_values(args_for(source))
    # The chart writes securityContext whole into the container (templates/daemonset.yaml `toYaml
    # .Values.securityContext`), so its keys are a container SecurityContext's fields, not values.yaml's.
    security = values.pop("securityContext", {})
    assert chart_value_errors(DCGM_EXPORTER.values_dir, values) == []
    fields = {_camel(f) for f in inspect.signature(k8s.core.v1.SecurityContextArgs).parameters}
    assert set(security) <= fields


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def test_gpu_operator_installs_nothing_and_hands_on_values_for_the_operator() -> None:
    rec = render(args_for(GpuTelemetrySource.GPU_OPERATOR, pod_monitor_labels={"release": "prom"}))
    assert rec.of_type(RELEASE) == [] and rec.of_type(POD_MONITOR) == [] and rec.of_type(POLICY) == []
    values = gpu_operator_telemetry_values(
        args_for(GpuTelemetrySource.GPU_OPERATOR, pod_monitor_labels={"release": "prom"})
    )
    exporter = values["dcgmExporter"]
    assert exporter["enabled"] is True
    assert exporter["serviceMonitor"]["enabled"] is True
    assert exporter["serviceMonitor"]["additionalLabels"] == {"release": "prom"}


@needs_charts
def test_gpu_operator_values_validate_against_the_operator_chart_merged_with_the_pools() -> None:
    pool = gpu_operator_values(
        GpuNodePoolArgs(
            driver_stack=GpuDriverStack.GPU_OPERATOR, node_selector={}, taints=list(DEFAULT_TAINTS)
        )
    )
    ours = gpu_operator_telemetry_values(
        args_for(GpuTelemetrySource.GPU_OPERATOR, pod_monitor_labels={"a": "b"})
    )
    assert chart_value_errors(GPU_OPERATOR.values_dir, deep_merge(pool, ours)) == []


def test_escape_hatch_values_are_merged_over_ours() -> None:
    rec = render(
        args_for(GpuTelemetrySource.NVIDIA_RUNTIME, values={"resources": {"limits": {"memory": "1Gi"}}})
    )
    resources = rec.one(RELEASE).inputs["values"]["resources"]
    assert resources["limits"] == {"cpu": "200m", "memory": "1Gi"}


@pytest.mark.parametrize(
    ("source", "changes", "field_name"),
    [
        (GpuTelemetrySource.NVIDIA_RUNTIME, {"node_selector": {}}, "node_selector"),
        (GpuTelemetrySource.GKE, {"tolerations": []}, "tolerations"),
        (GpuTelemetrySource.GKE, {"runtime_class_name": "nvidia"}, "runtime_class_name"),
        (GpuTelemetrySource.NVIDIA_RUNTIME, {"runtime_class_name": "Not_A_Name"}, "runtime_class_name"),
        (GpuTelemetrySource.NVIDIA_RUNTIME, {"namespace": "GPU"}, "namespace"),
        (GpuTelemetrySource.NVIDIA_RUNTIME, {"prometheus_namespace": ""}, "prometheus_namespace"),
        (GpuTelemetrySource.NVIDIA_RUNTIME, {"prometheus_pod_labels": {}}, "prometheus_pod_labels"),
        (GpuTelemetrySource.NVIDIA_RUNTIME, {"scrape_interval": "15"}, "scrape_interval"),
        (GpuTelemetrySource.NVIDIA_RUNTIME, {"memory_limit": "lots"}, "memory_limit"),
    ],
)
def test_bad_fields_are_named(source: GpuTelemetrySource, changes: dict[str, Any], field_name: str) -> None:
    problems = validate_gpu_telemetry_args(dataclasses.replace(args_for(source), **changes))
    assert [p.split(":")[0] for p in problems] == [field_name]


def test_gpu_operator_with_install_options_is_rejected_naming_them() -> None:
    args = GpuTelemetryArgs(
        source=GpuTelemetrySource.GPU_OPERATOR, node_selector=POOL_SELECTOR, values={"x": 1}
    )
    (problem,) = validate_gpu_telemetry_args(args)
    assert "gpu_operator" in problem and "node_selector" in problem and "values" in problem


def test_defaults_for_each_source_are_valid() -> None:
    for source in GpuTelemetrySource:
        assert validate_gpu_telemetry_args(args_for(source)) == []


def test_constructor_raises_with_the_problems() -> None:
    with pytest.raises(ValueError, match="node_selector"):
        GpuTelemetry("g", GpuTelemetryArgs(source=GpuTelemetrySource.GKE, tolerations=GPU_TOLERATIONS))
