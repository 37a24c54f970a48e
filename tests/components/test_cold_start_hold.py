"""ColdStartHold: a model at zero has its requests held by the KEDA HTTP add-on's interceptor, for exactly
the hold timeout, then a retryable OpenAI-shaped 503; the objects are valid and the network paths open."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pulumi
import pytest

from components._common import CRD_UPGRADES, KEDA_HTTP_ADD_ON, CrdLocation
from components.autoscaler import AutoscalerArgs, ColdStartHoldRef, triggers
from components.choices import ScalingSignal
from components.cold_start_hold import (
    HOLD_HEADER,
    INTERCEPTOR_POD_LABELS,
    INTERCEPTOR_PROXY_PORT,
    INTERCEPTOR_PROXY_SERVICE,
    KEDA_OPERATOR_POD_LABELS,
    SCALER_POD_LABELS,
    ColdStartHold,
    ColdStartHoldArgs,
    KedaHttpAddOn,
    add_on_values,
    gateway_policy_fragment,
    hold_backend,
    required_route_timeout_seconds,
    scaler_address,
    validate_cold_start_hold_args,
)
from components.model_server import SERVING_PORT
from inferstack.planning.recording import Recording, run_program
from inferstack.validation.dependencies import CRD_SOURCES
from tests.components.schemas import chart_value_errors, crd_errors, error_paths, needs_charts, needs_crds

ROUTE = "kubernetes:http.keda.sh/v1beta1:InterceptorRoute"
GRANT = "kubernetes:gateway.networking.k8s.io/v1beta1:ReferenceGrant"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RELEASE = "kubernetes:helm.sh/v3:Release"
MODEL_PODS = {"app.kubernetes.io/name": "llm", "app.kubernetes.io/instance": "llm-small"}
ENVOY_PODS = {"app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy"}


def hold_args(**changes: Any) -> ColdStartHoldArgs:
    base = ColdStartHoldArgs(
        namespace="inferstack",
        served_model_name="qwen2.5-0.5b",
        service_name="llm-small",
        model_pod_labels=MODEL_PODS,
        hold_timeout_seconds=1380,
        gateway_pod_labels=ENVOY_PODS,
    )
    return dataclasses.replace(base, **changes)


def render(args: ColdStartHoldArgs, name: str = "small-hold") -> Recording:
    def program() -> None:
        hold = ColdStartHold(name, args)
        pulumi.export("route", hold.interceptor_route_name)
        pulumi.export("scaler", hold.scaler_address)

    return run_program(program)


def route_spec(rec: Recording) -> dict[str, Any]:
    spec: dict[str, Any] = rec.one(ROUTE).inputs["spec"]
    return spec


def policies(rec: Recording) -> dict[str, dict[str, Any]]:
    return {r.inputs["metadata"]["name"]: r.inputs for r in rec.of_type(POLICY)}


# --- the hold path exists for a model at zero, and only there -------------------------------------------


def autoscaler_triggers(min_replicas: int, hold: ColdStartHoldRef | None) -> list[dict[str, Any]]:
    args = AutoscalerArgs(
        namespace="inferstack",
        deployment_name="llm-small",
        served_model_name="qwen2.5-0.5b",
        signal=ScalingSignal.QUEUE_DEPTH,
        min_replicas=min_replicas,
        prometheus_url="http://prometheus:9090",
        cold_start_hold=hold,
    )
    return triggers(args, "http://prometheus:9090", "llm-small")


def test_a_model_at_zero_is_woken_by_its_interceptor_route_and_a_model_at_one_has_no_hold_path() -> None:
    rec = render(hold_args())
    ref = ColdStartHoldRef(rec.exports["route"], rec.exports["scaler"])
    wake = [t for t in autoscaler_triggers(0, ref) if t["type"] == "external-push"]
    # The trigger names the very InterceptorRoute the component made, in the ScaledObject's namespace.
    assert wake[0]["metadata"]["interceptorRoute"] == rec.one(ROUTE).inputs["metadata"]["name"]
    assert rec.one(ROUTE).inputs["metadata"]["namespace"] == "inferstack"
    assert wake[0]["metadata"]["scalerAddress"] == "keda-add-ons-http-external-scaler.keda:9090"
    # min_replicas >= 1: no external-push trigger, and the autoscaler refuses a hold.
    assert [t["type"] for t in autoscaler_triggers(1, None)] == ["prometheus"]


def test_readiness_timeout_is_the_hold_timeout_and_the_interceptor_cuts_nothing_else() -> None:
    spec = route_spec(render(hold_args(hold_timeout_seconds=917)))
    assert spec["timeouts"] == {"readiness": "917s", "responseHeader": "0s", "request": "0s"}


def test_route_matches_the_header_the_gateway_sets_and_targets_the_model_service() -> None:
    name = "small-hold"
    rec = render(hold_args(), name)
    spec = route_spec(rec)
    assert spec["target"] == {"service": "llm-small", "port": SERVING_PORT}
    assert spec["rules"] == [{"headers": [{"name": HOLD_HEADER, "value": name}], "paths": [{"value": "/v1"}]}]
    backend = hold_backend(name, hold_args())
    # The gateway's backend sets exactly the header value the route matches, and points at the proxy.
    assert backend["headerMutation"]["set"] == spec["rules"][0]["headers"]
    assert backend["backendRef"] == {
        "group": "",
        "kind": "Service",
        "name": INTERCEPTOR_PROXY_SERVICE,
        "namespace": "keda",
        "port": INTERCEPTOR_PROXY_PORT,
    }


def test_two_models_get_distinct_route_keys() -> None:
    a = route_spec(render(hold_args(), "a-hold"))["rules"][0]["headers"][0]["value"]
    b = route_spec(render(hold_args(service_name="llm-big"), "b-hold"))["rules"][0]["headers"][0]["value"]
    assert a != b


# --- the 503 after the hold -----------------------------------------------------------------------------


def test_interceptor_timeout_becomes_a_retryable_openai_503_with_retry_after() -> None:
    fragment = gateway_policy_fragment(hold_args(retry_after_seconds=45, hold_timeout_seconds=600))
    (override,) = fragment["responseOverride"]
    # Only the interceptor's own 504 (a backend answer), not Envoy's local route-timeout 504.
    assert override["match"] == {"statusCodes": [{"type": "Value", "value": 504}]}
    assert override["source"] == "Backend"
    response = override["response"]
    assert response["statusCode"] == 503
    assert response["contentType"] == "application/json"
    assert response["header"] == {"set": [{"name": "Retry-After", "value": "45"}]}
    body = json.loads(response["body"]["inline"])
    assert set(body) == {"error"}
    assert body["error"]["type"] == "service_unavailable"
    assert body["error"]["code"] == "model_not_ready"
    assert "qwen2.5-0.5b" in body["error"]["message"] and "600 s" in body["error"]["message"]
    # No byte flows while a request is held: Envoy's stream idle timeout must outlast the hold.
    assert fragment["timeout"]["http"]["streamIdleTimeout"] == "630s"


@needs_crds
def test_policy_fragment_is_a_valid_backend_traffic_policy_spec() -> None:
    manifest = {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "BackendTrafficPolicy",
        "metadata": {"name": "api", "namespace": "inferstack"},
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "api"}],
            **gateway_policy_fragment(hold_args()),
        },
    }
    assert crd_errors(manifest) == []
    broken = copy.deepcopy(manifest)
    broken["spec"]["responseOverride"][0]["response"]["header"] = {"remove": ["Server"]}
    assert crd_errors(broken) != []  # CEL: header removal is refused in a CustomResponse


def test_route_timeout_covers_hold_and_generation() -> None:
    assert required_route_timeout_seconds(1380, 600) == 1380 + 600 + 30


# --- CRDs, chart values ---------------------------------------------------------------------------------


@needs_crds
def test_interceptor_route_and_reference_grant_are_valid_against_their_crds() -> None:
    rec = render(hold_args())
    assert crd_errors(copy.deepcopy(rec.one(ROUTE).inputs)) == []
    assert crd_errors(copy.deepcopy(rec.one(GRANT).inputs)) == []


@needs_crds
def test_crd_cel_rule_catches_a_target_with_port_and_port_name() -> None:
    manifest = copy.deepcopy(render(hold_args()).one(ROUTE).inputs)
    manifest["spec"]["target"]["portName"] = "http"
    assert any("exactly one of 'port' or 'portName'" in e for e in crd_errors(manifest))


def test_reference_grant_lets_the_serving_namespace_routes_name_the_interceptor_proxy() -> None:
    grant = render(hold_args()).one(GRANT).inputs
    assert grant["metadata"]["namespace"] == "keda"
    assert grant["spec"]["from"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "inferstack"}
    ]
    assert grant["spec"]["to"] == [{"group": "", "kind": "Service", "name": INTERCEPTOR_PROXY_SERVICE}]


@needs_charts
def test_add_on_values_exist_in_the_chart_defaults() -> None:
    errors = chart_value_errors(KEDA_HTTP_ADD_ON.values_dir, add_on_values(hold_args()))
    # The chart's securityContext is a free-form container securityContext applied to every container;
    # runAsNonRoot and seccompProfile are valid there though its values.yaml does not list them.
    assert sorted(error_paths(errors)) == ["securityContext.runAsNonRoot", "securityContext.seccompProfile"]


def test_add_on_runs_restricted_with_at_least_two_interceptors() -> None:
    rec = render(hold_args(install_add_on=True, interceptor_replicas=2))
    release = rec.one(RELEASE).inputs
    assert release["chart"] == "keda-add-ons-http" and release["version"] == "0.15.0"
    values = release["values"]
    assert values["interceptor"]["replicas"]["min"] >= 2
    sc = values["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"} and sc["capabilities"] == {"drop": ["ALL"]}


def test_add_on_crds_have_a_known_source_and_follow_upgrades() -> None:
    assert CRD_UPGRADES[KEDA_HTTP_ADD_ON.chart].location is CrdLocation.TEMPLATES
    assert any(s.chart == "keda-add-ons-http" and "http.keda.sh" in s.groups for s in CRD_SOURCES)


# --- NetworkPolicies --------------------------------------------------------------------------------------


def test_model_pods_admit_the_interceptor_on_the_serving_port_only() -> None:
    policy = policies(render(hold_args()))["small-hold-allow-from-interceptor"]
    assert policy["metadata"]["namespace"] == "inferstack"
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": MODEL_PODS}
    assert spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
            "podSelector": {"matchLabels": INTERCEPTOR_POD_LABELS},
        }
    ]
    assert rule["ports"] == [{"port": SERVING_PORT, "protocol": "TCP"}]


def test_add_on_namespace_policies_admit_envoy_to_the_interceptor_and_keda_to_the_scaler() -> None:
    found = policies(render(hold_args(install_add_on=True)))
    assert found["small-hold-allow-to-interceptor"]["metadata"]["namespace"] == "keda"
    assert found["small-hold-allow-to-scaler"]["metadata"]["namespace"] == "keda"
    to_interceptor = found["small-hold-allow-to-interceptor"]["spec"]
    assert to_interceptor["podSelector"] == {"matchLabels": INTERCEPTOR_POD_LABELS}
    envoy_rule, scaler_rule = to_interceptor["ingress"]
    assert envoy_rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}},
            "podSelector": {"matchLabels": ENVOY_PODS},
        }
    ]
    assert envoy_rule["ports"] == [{"port": INTERCEPTOR_PROXY_PORT, "protocol": "TCP"}]
    assert scaler_rule["from"] == [{"podSelector": {"matchLabels": SCALER_POD_LABELS}}]
    assert scaler_rule["ports"] == [{"port": 9090, "protocol": "TCP"}]
    to_scaler = found["small-hold-allow-to-scaler"]["spec"]
    assert to_scaler["podSelector"] == {"matchLabels": SCALER_POD_LABELS}
    assert to_scaler["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": KEDA_OPERATOR_POD_LABELS}}],
            "ports": [{"port": 9090, "protocol": "TCP"}],
        }
    ]


def test_without_install_add_on_nothing_is_made_in_the_add_on_namespace_but_the_grant() -> None:
    rec = render(hold_args())
    assert rec.of_type(RELEASE) == []
    assert [p["metadata"]["namespace"] for p in policies(rec).values()] == ["inferstack"]


def test_no_grant_where_the_route_reaches_the_interceptor_by_a_backend_fqdn() -> None:
    # An AIGatewayRoute reaches the interceptor through an Envoy Gateway Backend (an FQDN): no
    # cross-namespace backendRef, so no ReferenceGrant widens what the namespace's routes may name.
    rec = render(hold_args(reference_grant=False))
    assert rec.of_type(GRANT) == []
    assert len(rec.of_type(ROUTE)) == 1


# --- validation ---------------------------------------------------------------------------------------------


def test_validation_names_every_bad_field() -> None:
    problems = validate_cold_start_hold_args(
        hold_args(
            namespace="Bad_NS",
            model_pod_labels={},
            hold_timeout_seconds=0,
            retry_after_seconds=0,
            add_on_values={"interceptor": {}},
        )
    )
    assert [p.split(":")[0] for p in problems] == [
        "namespace",
        "model_pod_labels",
        "hold_timeout_seconds",
        "retry_after_seconds",
        "install_add_on and add_on_values",
    ]


def test_constructor_refuses_bad_args_before_making_anything() -> None:
    with pytest.raises(ValueError, match="hold_timeout_seconds"):
        ColdStartHold("x", hold_args(hold_timeout_seconds=0))


def test_scaler_address_follows_the_add_on_namespace() -> None:
    assert scaler_address("autoscaling") == "keda-add-ons-http-external-scaler.autoscaling:9090"


# --- scraping the interceptor (KedaHttpAddOn / install_add_on, scrape_interceptor) ----------------------

SERVICE = "kubernetes:core/v1:Service"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
PROMETHEUS_PODS = {
    "app.kubernetes.io/name": "prometheus",
    "app.kubernetes.io/managed-by": "prometheus-operator",
}

#: The labels the chart (keda-add-ons-http 0.15.0, kedacore/charts c4b92e9) renders on each Deployment's
#: pod template for a release `llm-keda-http` (templates/interceptor/deployment.yaml,
#: scaler/deployment.yaml, operator/deployment.yaml, with `keda-http-add-on.labels` from _helpers.tpl),
#: written out here because CI has the chart's values, not its templates.
_CHART_COMMON = {
    "app.kubernetes.io/part-of": "keda-add-ons-http",
    "app.kubernetes.io/managed-by": "Helm",
    "app.kubernetes.io/instance": "llm-keda-http",
    "app.kubernetes.io/version": "0.15.0",
    "helm.sh/chart": "keda-add-ons-http-0.15.0",
}
CHART_POD_LABELS = {
    role: {"app.kubernetes.io/component": role, "app.kubernetes.io/name": "http-add-on", **_CHART_COMMON}
    for role in ("interceptor", "scaler", "operator")
}


def render_add_on(name: str = "llm", **changes: Any) -> tuple[Recording, str]:
    """KedaHttpAddOn as the stack makes it (from a model's hold args, install_add_on false), plus a stand-in
    for the release that installs the Prometheus operator's CRDs; returns the stand-in's URN too."""
    urns: dict[str, str] = {}

    def program() -> None:
        crds = pulumi.CustomResource("test:index:CrdSource", "prometheus-operator-crds", {})
        crds.urn.apply(lambda urn: urns.__setitem__("crds", urn))
        scrape = {"monitors_after": [crds]} if changes.get("scrape_interceptor") else {}
        KedaHttpAddOn(name, hold_args(**changes, **scrape))

    rec = run_program(program)
    return rec, urns["crds"]


def _selects(selector: dict[str, str], pod_labels: dict[str, str]) -> bool:
    return all(pod_labels.get(k) == v for k, v in selector.items())


def test_metrics_service_selects_the_interceptor_pods_and_no_other_add_on_pod() -> None:
    rec, _ = render_add_on(scrape_interceptor=True)
    service = rec.one(SERVICE).inputs
    assert service["metadata"]["namespace"] == "keda"
    spec = service["spec"]
    assert _selects(spec["selector"], CHART_POD_LABELS["interceptor"])
    assert not _selects(spec["selector"], CHART_POD_LABELS["scaler"])
    assert not _selects(spec["selector"], CHART_POD_LABELS["operator"])
    # The exporter's port (OTEL_PROM_EXPORTER_PORT default) by number: the chart declares no such port.
    assert spec["ports"] == [{"name": "metrics", "port": 2223, "targetPort": 2223, "protocol": "TCP"}]


def test_service_monitor_selects_the_metrics_service_alone_and_names_its_port() -> None:
    rec, crds = render_add_on(scrape_interceptor=True, pod_monitor_labels={"release": "kps"})
    service = rec.one(SERVICE).inputs
    monitor = rec.one(SERVICE_MONITOR)
    spec = monitor.inputs["spec"]
    assert monitor.inputs["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert monitor.inputs["metadata"]["labels"]["release"] == "kps"
    assert _selects(spec["selector"]["matchLabels"], service["metadata"]["labels"])
    # The chart's own Services carry the interceptor's pod labels (service-admin.yaml, service-proxy.yaml);
    # the monitor must not pick them (they have no `metrics` port).
    chart_service_labels = {
        "app.kubernetes.io/component": "interceptor",
        "app.kubernetes.io/name": "http-add-on",
    }
    assert not _selects(spec["selector"]["matchLabels"], {**_CHART_COMMON, **chart_service_labels})
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert crds in monitor.dependencies  # the CRD exists before the monitor
    assert rec.one(RELEASE).urn in monitor.dependencies  # and so does the namespace


@needs_crds
def test_service_monitor_is_valid_against_its_crd() -> None:
    rec, _ = render_add_on(scrape_interceptor=True)
    assert crd_errors(copy.deepcopy(rec.one(SERVICE_MONITOR).inputs)) == []
    broken = copy.deepcopy(rec.one(SERVICE_MONITOR).inputs)
    broken["spec"]["endpoints"][0]["interval"] = "soon"
    assert crd_errors(broken) != []


def test_prometheus_may_reach_the_interceptor_metrics_port_and_nothing_else() -> None:
    rec, _ = render_add_on(scrape_interceptor=True, prometheus_namespace="observability")
    policy = policies(rec)["llm-allow-interceptor-scrape"]
    assert policy["metadata"]["namespace"] == "keda"
    spec = policy["spec"]
    assert _selects(spec["podSelector"]["matchLabels"], CHART_POD_LABELS["interceptor"])
    (rule,) = spec["ingress"]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}},
            "podSelector": {"matchLabels": PROMETHEUS_PODS},
        }
    ]
    assert rule["ports"] == [{"port": 2223, "protocol": "TCP"}]
    # The port the Service sends to is the one admitted.
    assert rec.one(SERVICE).inputs["spec"]["ports"][0]["targetPort"] == 2223


def _cluster_objects(rec: Recording) -> dict[str, dict[str, Any]]:
    return {r.name: r.inputs for r in rec.resources if r.type.startswith("kubernetes:")}


def test_scrape_off_makes_exactly_the_objects_it_made_before() -> None:
    off, _ = render_add_on()
    assert sorted((r.type, r.name) for r in off.resources if r.type.startswith("kubernetes:")) == [
        (RELEASE, "llm-keda-http"),
        (POLICY, "llm-allow-to-interceptor"),
        (POLICY, "llm-allow-to-scaler"),
    ]
    # Scrape on adds three objects and changes none of the others.
    on, _ = render_add_on(scrape_interceptor=True)
    before, after = _cluster_objects(off), _cluster_objects(on)
    assert set(after) - set(before) == {
        "llm-interceptor-metrics",
        "llm-interceptor-servicemonitor",
        "llm-allow-interceptor-scrape",
    }
    assert {k: after[k] for k in before} == before


def test_hold_with_install_add_on_scrapes_too() -> None:
    rec = render(hold_args(install_add_on=True, scrape_interceptor=True))
    assert len(rec.of_type(SERVICE_MONITOR)) == 1 and len(rec.of_type(SERVICE)) == 1


def test_scrape_where_the_add_on_is_not_installed_is_refused() -> None:
    problems = validate_cold_start_hold_args(hold_args(scrape_interceptor=True, prometheus_pod_labels={}))
    assert [p.split(":")[0] for p in problems] == [
        "install_add_on and scrape_interceptor",
        "prometheus_pod_labels",
    ]
    # KedaHttpAddOn installs whatever install_add_on says.
    assert validate_cold_start_hold_args(hold_args(scrape_interceptor=True), installs=True) == []
    bad = validate_cold_start_hold_args(
        hold_args(scrape_interceptor=True, prometheus_namespace="Mon", scrape_interval="15"), installs=True
    )
    assert [p.split(":")[0] for p in bad] == ["prometheus_namespace", "scrape_interval"]
