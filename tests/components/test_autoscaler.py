"""Autoscaler: the ScaledObject scales the model Deployment on the right signal and is a valid KEDA object."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from typing import Any

import pulumi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components._common import KEDA
from components.autoscaler import (
    Autoscaler,
    AutoscalerArgs,
    ColdStartHoldRef,
    EnvoyRouteHint,
    keda_values,
    scaled_object_spec,
    validate_autoscaler_args,
)
from components.choices import ScalingSignal
from components.monitoring import ENVOY_GATEWAY_POD_LABELS
from inferstack.planning.recording import Recording, run_program
from tests.components.schemas import chart_value_errors, crd_errors, error_paths, needs_charts, needs_crds

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
RELEASE = "kubernetes:helm.sh/v3:Release"
PROMETHEUS = "http://monitoring-prometheus.monitoring.svc:9090"
HINT = EnvoyRouteHint(
    gateway_namespace="inferstack", gateway_name="llm-gateway", route_namespace="inferstack", route_name="llm"
)


def scaled_object_errors(resource: dict[str, Any]) -> list[str]:
    """crd_errors, after making sure the object is the KEDA ScaledObject this file means to check."""
    assert (resource["apiVersion"], resource["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    return crd_errors(resource)


# --- helpers: building and rendering -----------------------------------------------------------------


def queue_args(**changes: Any) -> AutoscalerArgs:
    base = AutoscalerArgs(
        namespace="inferstack",
        deployment_name="llm",
        served_model_name="llama-3.1-8b-instruct",
        signal=ScalingSignal.QUEUE_DEPTH,
        min_replicas=1,
        max_replicas=4,
        target_queue_depth=8,
        polling_interval_seconds=10,
        cooldown_seconds=900,
        scale_down_stabilization_seconds=420,
        prometheus_url=PROMETHEUS,
        envoy_route_hint=HINT,
    )
    return dataclasses.replace(base, **changes)


def cpu_args(**changes: Any) -> AutoscalerArgs:
    return queue_args(signal=ScalingSignal.CPU, prometheus_url=None, envoy_route_hint=None, **changes)


def render(args: AutoscalerArgs, name: str = "llm-autoscaler") -> Recording:
    def program() -> None:
        scaler = Autoscaler(name, args)
        pulumi.export("scaled_object_name", scaler.scaled_object_name)

    return run_program(program)


def scaled_object(rec: Recording) -> dict[str, Any]:
    return rec.one(SCALED_OBJECT).inputs


def triggers_by_name(rec: Recording) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in scaled_object(rec)["spec"]["triggers"]}


# --- the ScaledObject --------------------------------------------------------------------------------


def test_scaled_object_targets_the_model_deployment_even_when_its_name_is_an_output() -> None:
    rec = render(queue_args(deployment_name=pulumi.Output.from_input("llm-7f3a2c1")))
    obj = scaled_object(rec)
    assert obj["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "llm-7f3a2c1",
    }
    assert obj["metadata"]["namespace"] == "inferstack"
    assert obj["metadata"]["name"] == "llm-autoscaler"
    assert rec.exports["scaled_object_name"] == "llm-autoscaler"


def test_queue_trigger_reads_the_vllm_queue_of_this_model_in_this_namespace() -> None:
    rec = render(queue_args(target_queue_depth=7))
    queue = triggers_by_name(rec)["queue-depth"]
    assert queue["type"] == "prometheus"
    meta = queue["metadata"]
    assert meta["serverAddress"] == PROMETHEUS
    assert meta["query"] == (
        'sum(vllm:num_requests_waiting{namespace="inferstack", model_name="llama-3.1-8b-instruct"})'
    )
    assert meta["threshold"] == "7"


def test_model_name_is_quoted_safely_in_promql() -> None:
    rec = render(queue_args(served_model_name='odd"name\\v1'))
    query = triggers_by_name(rec)["queue-depth"]["metadata"]["query"]
    assert 'model_name="odd\\"name\\\\v1"' in query


def test_min_zero_adds_a_wake_up_trigger_on_the_gateway_and_route() -> None:
    rec = render(queue_args(min_replicas=0))
    triggers = triggers_by_name(rec)
    assert set(triggers) == {"queue-depth", "wake-from-zero"}
    wake = triggers["wake-from-zero"]
    assert wake["type"] == "prometheus"
    query = wake["metadata"]["query"]
    # Served requests on this route's Envoy clusters, and 5xx answers from this Gateway's proxies.
    assert 'envoy_cluster_upstream_rq_total{envoy_cluster_name=~"httproute/inferstack/llm/rule/.+"}' in query
    assert 'envoy_http_downstream_rq_xx{envoy_response_code_class="5"' in query
    assert 'gateway_envoyproxy_io_owning_gateway_name="llm-gateway"' in query
    assert 'gateway_envoyproxy_io_owning_gateway_namespace="inferstack"' in query
    assert "[2m]" in query
    # Clamped to 1 against a target of 1: this trigger alone never asks for more than one replica.
    assert query.startswith("clamp_max(") and query.endswith(", 1)")
    assert wake["metadata"]["threshold"] == "1"
    assert wake["metadata"]["activationThreshold"] == "0"
    assert scaled_object(rec)["spec"]["minReplicaCount"] == 0


def test_min_one_has_only_the_queue_trigger() -> None:
    rec = render(queue_args(min_replicas=1))
    assert [t["name"] for t in scaled_object(rec)["spec"]["triggers"]] == ["queue-depth"]


def test_wake_query_uses_the_labels_the_envoy_pod_monitor_copies() -> None:
    # Prometheus turns pod label names into label names by replacing every invalid character with "_".
    query = scaled_object_spec(queue_args(min_replicas=0), "llm", PROMETHEUS)["triggers"][1]["metadata"][
        "query"
    ]
    for pod_label in ENVOY_GATEWAY_POD_LABELS:
        assert re.sub(r"[^a-zA-Z0-9_]", "_", pod_label) + "=" in query


def test_cpu_signal_uses_a_cpu_utilisation_trigger_and_no_prometheus() -> None:
    rec = render(cpu_args(min_replicas=2, cpu_target_percent=65))
    spec = scaled_object(rec)["spec"]
    assert spec["triggers"] == [
        {"type": "cpu", "name": "cpu", "metricType": "Utilization", "metadata": {"value": "65"}}
    ]
    # KEDA's fallback does not apply to cpu triggers; setting it would only mislead.
    assert "fallback" not in spec
    assert spec["minReplicaCount"] == 2


def test_timings_and_bounds_propagate() -> None:
    spec = scaled_object(render(queue_args(min_replicas=2, max_replicas=6)))["spec"]
    assert spec["minReplicaCount"] == 2
    assert spec["maxReplicaCount"] == 6
    assert spec["pollingInterval"] == 10
    assert spec["cooldownPeriod"] == 900
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 420
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0


def test_fallback_keeps_at_least_one_replica_when_prometheus_is_unreachable() -> None:
    spec = scaled_object(render(queue_args(min_replicas=0)))["spec"]
    assert spec["fallback"]["replicas"] == 1
    assert spec["fallback"]["behavior"] == "currentReplicasIfHigher"
    spec = scaled_object(render(queue_args(min_replicas=3)))["spec"]
    assert spec["fallback"]["replicas"] == 3


@needs_crds
@pytest.mark.parametrize(
    "args",
    [queue_args(), queue_args(min_replicas=0), cpu_args(min_replicas=1)],
    ids=["queue", "queue-from-zero", "cpu"],
)
def test_scaled_object_validates_against_the_keda_crd(args: AutoscalerArgs) -> None:
    obj = scaled_object(render(args))
    assert scaled_object_errors(obj) == []


@needs_crds
def test_crd_check_catches_a_misspelt_field() -> None:
    obj = copy.deepcopy(scaled_object(render(queue_args())))
    obj["spec"]["cooldownPeriods"] = obj["spec"].pop("cooldownPeriod")
    obj["spec"]["triggers"][0]["metadata"]["threshold"] = 5  # metadata values must be strings
    errors = scaled_object_errors(obj)
    assert any("cooldownPeriods" in e for e in errors)
    assert any("threshold" in e for e in errors)


# --- KEDA itself -------------------------------------------------------------------------------------


def test_keda_release_is_pinned_and_the_scaled_object_waits_for_it() -> None:
    rec = render(queue_args())
    release = rec.one(RELEASE, "-keda")
    assert release.name == "llm-autoscaler-keda"
    assert release.inputs["chart"] == KEDA.chart == "keda"
    assert release.inputs["version"] == KEDA.version == "2.20.2"
    assert release.inputs["repositoryOpts"]["repo"] == KEDA.repo
    assert release.inputs["namespace"] == "keda"
    assert release.urn in rec.one(SCALED_OBJECT).dependencies


def test_keda_runs_with_restricted_security_contexts() -> None:
    values = render(queue_args()).one(RELEASE, "-keda").inputs["values"]
    for part in ("operator", "metricServer", "webhooks"):
        container = values["securityContext"][part]
        assert container["allowPrivilegeEscalation"] is False
        assert container["capabilities"]["drop"] == ["ALL"]
        assert container["seccompProfile"]["type"] == "RuntimeDefault"
        assert values["podSecurityContext"][part]["runAsNonRoot"] is True


@needs_charts
def test_keda_value_keys_exist_in_the_chart_defaults() -> None:
    assert chart_value_errors(KEDA.values_dir, keda_values()) == []


@needs_charts
def test_values_key_check_catches_an_unknown_key() -> None:
    errors = chart_value_errors(KEDA.values_dir, {"operator": {"replicaCountt": 2}})
    assert error_paths(errors) == ["operator.replicaCountt"]


def test_keda_values_escape_hatch_is_merged_over_ours() -> None:
    values = render(queue_args(keda_values={"operator": {"replicaCount": 2}})).one(RELEASE).inputs["values"]
    assert values["operator"]["replicaCount"] == 2
    assert values["securityContext"]["operator"]["readOnlyRootFilesystem"] is True


def test_without_install_keda_only_the_scaled_object_is_made() -> None:
    rec = render(queue_args(install_keda=False))
    assert rec.of_type(RELEASE) == []
    assert rec.one(SCALED_OBJECT).dependencies == []


def test_children_are_named_after_and_parented_to_the_component() -> None:
    def program() -> None:
        Autoscaler("a", queue_args())
        Autoscaler("b", queue_args(install_keda=False))

    rec = run_program(program)
    # The recording keeps a child's parent URN; a component's own URN ends with its type and name.
    components = {n: f"inferstack:autoscaler:Autoscaler::{n}" for n in ("a", "b")}
    objects = {r.name: r for r in rec.of_type(SCALED_OBJECT)}
    assert set(objects) == {"a-scaledobject", "b-scaledobject"}
    assert (objects["a-scaledobject"].parent or "").endswith(components["a"])
    assert (objects["b-scaledobject"].parent or "").endswith(components["b"])
    assert objects["b-scaledobject"].inputs["metadata"]["name"] == "b"
    assert (rec.one(RELEASE).parent or "").endswith(components["a"])


# --- validation --------------------------------------------------------------------------------------


def test_min_above_max_is_rejected_naming_both_fields() -> None:
    problems = validate_autoscaler_args(queue_args(min_replicas=5, max_replicas=2))
    assert any("min_replicas" in p and "max_replicas" in p for p in problems)


def test_cpu_signal_rejects_min_zero() -> None:
    problems = validate_autoscaler_args(cpu_args(min_replicas=0))
    assert any("signal" in p and "min_replicas" in p and "zero" in p for p in problems)


def test_queue_signal_needs_prometheus_and_min_zero_needs_a_wake_up_signal() -> None:
    problems = validate_autoscaler_args(
        queue_args(prometheus_url=None, min_replicas=0, envoy_route_hint=None)
    )
    assert any(p.startswith("prometheus_url") for p in problems)
    # The message names the hold, the way to scale from zero without failing requests.
    assert any(p.startswith("cold_start_hold and min_replicas") for p in problems)
    assert validate_autoscaler_args(queue_args(envoy_route_hint=None)) == []  # min 1 needs no hint


def test_route_hint_names_must_survive_envoy_stat_names() -> None:
    hint = dataclasses.replace(HINT, route_name="llm.v1")
    problems = validate_autoscaler_args(queue_args(min_replicas=0, envoy_route_hint=hint))
    assert problems and all(p.startswith("envoy_route_hint.route_name") for p in problems)


def test_constructor_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        Autoscaler(
            "x", cpu_args(min_replicas=6, max_replicas=2, cpu_target_percent=0, polling_interval_seconds=0)
        )
    message = str(raised.value)
    for field_name in ("min_replicas", "max_replicas", "cpu_target_percent", "polling_interval_seconds"):
        assert field_name in message


def test_keda_values_without_keda_is_rejected() -> None:
    problems = validate_autoscaler_args(queue_args(install_keda=False, keda_values={"operator": {}}))
    assert any("install_keda" in p and "keda_values" in p for p in problems)


@needs_crds
@settings(max_examples=150, deadline=None)
@given(
    signal=st.sampled_from(list(ScalingSignal)),
    min_replicas=st.integers(-2, 12),
    max_replicas=st.integers(-1, 12),
    target=st.integers(-1, 50),
    cpu_percent=st.integers(-5, 120),
    polling=st.integers(0, 600),
    cooldown=st.integers(-5, 4000),
    stabilization=st.integers(-5, 4000),
)
def test_any_numbers_give_a_crd_valid_spec_or_a_clean_problem_list(
    signal: ScalingSignal,
    min_replicas: int,
    max_replicas: int,
    target: int,
    cpu_percent: int,
    polling: int,
    cooldown: int,
    stabilization: int,
) -> None:
    args = queue_args(
        signal=signal,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_queue_depth=target,
        cpu_target_percent=cpu_percent,
        polling_interval_seconds=polling,
        cooldown_seconds=cooldown,
        scale_down_stabilization_seconds=stabilization,
    )
    problems = validate_autoscaler_args(args)
    assert all(isinstance(p, str) and ": " in p for p in problems)

    # An independent statement of the rules.
    expected_bad = {
        "min_replicas": min_replicas < 0
        or min_replicas > max_replicas
        or (signal is ScalingSignal.CPU and min_replicas == 0),
        "max_replicas": max_replicas < 1 or min_replicas > max_replicas,
        "polling_interval_seconds": polling < 1,
        "cooldown_seconds": cooldown < 0,
        "scale_down_stabilization_seconds": not 0 <= stabilization <= 3600,
        "target_queue_depth": signal is ScalingSignal.QUEUE_DEPTH and target < 1,
        "cpu_target_percent": signal is ScalingSignal.CPU and not 1 <= cpu_percent <= 100,
        "signal": signal is ScalingSignal.CPU and min_replicas == 0,
    }
    for field_name, bad in expected_bad.items():
        named = any(re.search(rf"\b{field_name}\b", p) for p in problems)
        assert named == bad, (field_name, problems)
    if problems:
        return

    spec = scaled_object_spec(args, "llm", PROMETHEUS if signal is ScalingSignal.QUEUE_DEPTH else None)
    obj = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "llm", "namespace": "inferstack"},
        "spec": spec,
    }
    assert scaled_object_errors(obj) == []
    assert spec["minReplicaCount"] <= spec["maxReplicaCount"]
    has_wake = any(t["name"] == "wake-from-zero" for t in spec["triggers"])
    assert has_wake == (min_replicas == 0)
    if signal is ScalingSignal.QUEUE_DEPTH:
        assert spec["triggers"][0]["metadata"]["threshold"] == str(target)


# --- scale from zero behind a cold-start hold (KEDA HTTP add-on) ---------------------------------------

HOLD = ColdStartHoldRef(
    interceptor_route_name="llm-hold", scaler_address="keda-add-ons-http-external-scaler.keda:9090"
)


def held_args(**changes: Any) -> AutoscalerArgs:
    return queue_args(**{"min_replicas": 0, "envoy_route_hint": None, "cold_start_hold": HOLD, **changes})


def test_hold_replaces_the_envoy_wake_trigger_with_the_add_on_external_push_trigger() -> None:
    rec = render(held_args(deployment_name=pulumi.Output.from_input("llm-7f3a2c1")))
    triggers = triggers_by_name(rec)
    assert set(triggers) == {"queue-depth", "wake-from-zero"}
    wake = triggers["wake-from-zero"]
    assert wake == {
        "type": "external-push",
        "name": "wake-from-zero",
        "metadata": {
            "scalerAddress": "keda-add-ons-http-external-scaler.keda:9090",
            "interceptorRoute": "llm-hold",
        },
    }
    # No Envoy series at all: the gateway's route ends at the interceptor now.
    assert "envoy_" not in json.dumps(scaled_object(rec)["spec"]["triggers"])
    assert scaled_object(rec)["spec"]["minReplicaCount"] == 0


def test_held_queue_depth_is_zero_only_where_kube_state_metrics_sees_no_available_replica() -> None:
    rec = render(held_args(deployment_name=pulumi.Output.from_input("llm-7f3a2c1")))
    queue = triggers_by_name(rec)["queue-depth"]["metadata"]
    assert queue["query"] == (
        'sum(vllm:num_requests_waiting{namespace="inferstack", model_name="llama-3.1-8b-instruct"}) or '
        '(sum(kube_deployment_status_replicas_available{namespace="inferstack", deployment="llm-7f3a2c1"}) == 0)'
    )
    # Still an error (not a silent 0) when the series is missing for another reason.
    assert queue["ignoreNullValues"] == "false"


@needs_crds
def test_held_scaled_object_is_a_valid_keda_object_with_its_fallback() -> None:
    obj = scaled_object(render(held_args()))
    assert scaled_object_errors(obj) == []
    # external-push is an AverageValue trigger, so KEDA accepts the fallback (CheckFallbackValid).
    assert obj["spec"]["fallback"]["replicas"] == 1


def test_hold_and_route_hint_together_are_refused_naming_both() -> None:
    problems = validate_autoscaler_args(held_args(envoy_route_hint=HINT))
    assert problems == [
        "cold_start_hold and envoy_route_hint: give one wake-up signal; with a cold-start hold the add-on's "
        "route wakes the model, so drop envoy_route_hint"
    ]


def test_hold_for_a_model_that_never_scales_to_zero_is_refused() -> None:
    problems = validate_autoscaler_args(held_args(min_replicas=1))
    assert [p.split(":")[0] for p in problems] == ["cold_start_hold and min_replicas"]


def test_hold_reference_fields_are_checked() -> None:
    bad = ColdStartHoldRef(interceptor_route_name="Llm_Hold", scaler_address="scaler")
    problems = validate_autoscaler_args(held_args(cold_start_hold=bad))
    assert [p.split(":")[0] for p in problems] == [
        "cold_start_hold.interceptor_route_name",
        "cold_start_hold.scaler_address",
    ]
