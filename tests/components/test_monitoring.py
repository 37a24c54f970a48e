"""Monitoring: a lean, pinned Prometheus that sees every monitor, or an existing one; Envoy scraped."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
import pytest

from components._common import KUBE_PROMETHEUS_STACK
from components.monitoring import (
    Monitoring,
    MonitoringArgs,
    prometheus_stack_values,
    validate_monitoring_args,
)
from inferstack.planning.recording import Recording, run_program
from tests.components.schemas import chart_value_errors, crd_errors, manifest_of, needs_charts, needs_crds

RELEASE = "kubernetes:helm.sh/v3:Release"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"


def render(args: MonitoringArgs, name: str = "monitoring") -> Recording:
    def program() -> None:
        pulumi.export("prometheus_url", Monitoring(name, args).prometheus_url)

    return run_program(program)


def stack_values(rec: Recording) -> dict[str, Any]:
    return rec.one(RELEASE, "-prometheus-stack").inputs["values"]


def test_installs_the_pinned_kube_prometheus_stack_in_monitoring() -> None:
    rec = render(MonitoringArgs())
    release = rec.one(RELEASE, "-prometheus-stack")
    assert release.inputs["chart"] == "kube-prometheus-stack"
    assert release.inputs["version"] == KUBE_PROMETHEUS_STACK.version == "88.5.3"
    assert release.inputs["repositoryOpts"]["repo"] == KUBE_PROMETHEUS_STACK.repo
    assert release.inputs["namespace"] == "monitoring"


def test_prometheus_url_is_the_deterministic_in_cluster_service() -> None:
    rec = render(MonitoringArgs())
    assert stack_values(rec)["fullnameOverride"] == "monitoring"
    # The chart names the Service <fullname>-prometheus and serves on 9090.
    assert rec.exports["prometheus_url"] == "http://monitoring-prometheus.monitoring.svc:9090"


def test_long_names_are_cut_like_the_chart_cuts_them() -> None:
    name = "inferstack-production-monitoring"
    rec = render(MonitoringArgs(), name=name)
    fullname = stack_values(rec)["fullnameOverride"]
    assert fullname == name[:26].rstrip("-") and len(fullname) <= 26
    assert rec.exports["prometheus_url"] == f"http://{fullname}-prometheus.monitoring.svc:9090"


def test_footprint_is_lean_unless_asked() -> None:
    values = stack_values(render(MonitoringArgs()))
    for part in ("grafana", "alertmanager", "nodeExporter", "kubeStateMetrics"):
        assert values[part]["enabled"] is False, part
    assert values["prometheus"]["enabled"] is True
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "7d"
    assert spec["retentionSize"] == "5GiB"

    values = stack_values(render(MonitoringArgs(grafana=True, node_exporter=True)))
    assert values["grafana"]["enabled"] is True
    assert values["nodeExporter"]["enabled"] is True
    assert values["alertmanager"]["enabled"] is False


def test_monitors_in_any_namespace_are_selected_whatever_their_labels() -> None:
    spec = stack_values(render(MonitoringArgs()))["prometheus"]["prometheusSpec"]
    for kind in ("podMonitor", "serviceMonitor"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False
        assert spec[f"{kind}Selector"] == {}
        assert spec[f"{kind}NamespaceSelector"] == {}


def test_values_escape_hatch_is_merged_over_ours() -> None:
    values = stack_values(render(MonitoringArgs(values={"prometheus": {"prometheusSpec": {"replicas": 2}}})))
    assert values["prometheus"]["prometheusSpec"]["replicas"] == 2
    assert values["prometheus"]["prometheusSpec"]["retention"] == "7d"


@needs_charts
def test_stack_value_keys_exist_in_the_chart_defaults() -> None:
    ours = prometheus_stack_values("monitoring", MonitoringArgs(grafana=True))
    assert chart_value_errors(KUBE_PROMETHEUS_STACK.values_dir, ours) == []


def test_existing_prometheus_installs_nothing_and_passes_its_url_on() -> None:
    url = "http://prometheus-operated.observability.svc:9090"
    rec = render(MonitoringArgs(prometheus_url=url, scrape_envoy=False))
    assert rec.of_type(RELEASE) == []
    assert [r for r in rec.resources if r.custom] == []
    assert rec.exports["prometheus_url"] == url


def test_envoy_pod_monitor_scrapes_the_gateway_proxies() -> None:
    rec = render(MonitoringArgs())
    monitor = rec.one(POD_MONITOR)
    assert monitor.name == "monitoring-envoy-podmonitor"
    assert monitor.inputs["metadata"]["namespace"] == "envoy-gateway-system"
    spec = monitor.inputs["spec"]
    assert spec["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy"}
    }
    (endpoint,) = spec["podMetricsEndpoints"]
    # The envoy container's port 19001 is named "metrics"; Envoy serves Prometheus text here.
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/stats/prometheus"
    assert "gateway.envoyproxy.io/owning-gateway-name" in spec["podTargetLabels"]
    # The CRD comes with the stack: the monitor must wait for it.
    assert rec.one(RELEASE, "-prometheus-stack").urn in monitor.dependencies


def test_envoy_pod_monitor_with_an_existing_prometheus_carries_its_selector_labels() -> None:
    rec = render(
        MonitoringArgs(prometheus_url="https://prom.example.internal", pod_monitor_labels={"release": "prom"})
    )
    monitor = rec.one(POD_MONITOR)
    assert monitor.inputs["metadata"]["labels"]["release"] == "prom"
    assert monitor.dependencies == []


def test_no_envoy_pod_monitor_when_not_asked() -> None:
    assert render(MonitoringArgs(scrape_envoy=False)).of_type(POD_MONITOR) == []


@needs_crds
def test_envoy_pod_monitor_validates_against_the_crd() -> None:
    monitor = manifest_of(render(MonitoringArgs()).one(POD_MONITOR))
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    assert crd_errors(monitor) == []


def test_an_existing_url_with_install_options_is_rejected_naming_both() -> None:
    problems = validate_monitoring_args(
        MonitoringArgs(prometheus_url="http://p:9090", grafana=True, values={"x": 1})
    )
    assert len(problems) == 1
    assert "prometheus_url" in problems[0] and "grafana" in problems[0] and "values" in problems[0]


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"prometheus_url": "prometheus:9090"}, "prometheus_url"),
        ({"retention": ""}, "retention"),
        ({"envoy_namespace": ""}, "envoy_namespace"),
        ({"namespace": ""}, "namespace"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], field_name: str) -> None:
    problems = validate_monitoring_args(dataclasses.replace(MonitoringArgs(), **changes))
    assert [p.split(":")[0] for p in problems] == [field_name]


def test_constructor_raises_with_the_problems() -> None:
    with pytest.raises(ValueError, match="prometheus_url"):
        Monitoring("m", MonitoringArgs(prometheus_url="ftp://x"))


def test_ai_gateway_extproc_pod_monitor_scrapes_the_sidecars_admin_port() -> None:
    rec = render(MonitoringArgs(scrape_ai_gateway_extproc=True, pod_monitor_labels={"release": "prom"}))
    monitor = rec.one(POD_MONITOR, "-ai-gateway-extproc-podmonitor")
    assert monitor.inputs["metadata"]["namespace"] == "envoy-gateway-system"
    assert monitor.inputs["metadata"]["labels"]["release"] == "prom"
    spec = monitor.inputs["spec"]
    # The sidecar is injected into the Envoy proxy pods, so the selector is the proxies'.
    assert spec["selector"] == rec.one(POD_MONITOR, "-envoy-podmonitor").inputs["spec"]["selector"]
    (endpoint,) = spec["podMetricsEndpoints"]
    # ai-gateway v1.1.0 extproc_builder.go: port "aigw-admin" (1064) serves /metrics.
    assert (endpoint["port"], endpoint["path"]) == ("aigw-admin", "/metrics")
    assert rec.one(RELEASE, "-prometheus-stack").urn in monitor.dependencies
    assert len(render(MonitoringArgs()).of_type(POD_MONITOR)) == 1


@needs_crds
def test_ai_gateway_extproc_pod_monitor_validates_against_the_crd() -> None:
    rec = render(MonitoringArgs(scrape_ai_gateway_extproc=True))
    assert crd_errors(manifest_of(rec.one(POD_MONITOR, "-ai-gateway-extproc-podmonitor"))) == []
