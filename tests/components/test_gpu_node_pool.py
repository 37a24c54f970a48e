"""GpuNodePool (on-prem): the chosen driver stack, pinned, on the GPU nodes, tolerating their taints."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components._common import GPU_OPERATOR, NVIDIA_DEVICE_PLUGIN
from components.choices import GpuDriverStack, TaintEffect
from components.gpu_node_pool import (
    GpuNodePool,
    GpuNodePoolArgs,
    GpuPlacement,
    Taint,
    device_plugin_values,
    gpu_operator_values,
    tolerations_for,
    validate_gpu_node_pool_args,
)
from inferstack.planning.recording import Recording, run_program
from tests.components.schemas import chart_value_errors, needs_charts

RELEASE = "kubernetes:helm.sh/v3:Release"
SELECTOR = {"nvidia.com/gpu.present": "true", "node.example.com/pool": "l40s"}
TAINTS = [
    Taint("nvidia.com/gpu", None, TaintEffect.NO_SCHEDULE),
    Taint("dedicated", "inference", TaintEffect.NO_EXECUTE),
]


def pool_args(driver_stack: GpuDriverStack = GpuDriverStack.DEVICE_PLUGIN, **changes: Any) -> GpuNodePoolArgs:
    return dataclasses.replace(
        GpuNodePoolArgs(driver_stack=driver_stack, node_selector=dict(SELECTOR), taints=list(TAINTS)),
        **changes,
    )


def render(args: GpuNodePoolArgs, name: str = "gpu") -> tuple[Recording, GpuNodePool]:
    made: list[GpuNodePool] = []
    rec = run_program(lambda: made.append(GpuNodePool(name, args)))
    return rec, made[0]


def tolerates(toleration: dict[str, Any], taint: Taint) -> bool:
    """Kubernetes' rule (pkg/apis/core/v1/helper ToleratesTaint), written independently of the code."""
    if toleration.get("effect") and toleration["effect"] != taint.effect.value:
        return False
    if toleration.get("key") and toleration["key"] != taint.key:
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return True
    return toleration.get("value", "") == (taint.value or "")


def tolerates_all(tolerations: list[dict[str, Any]], taints: list[Taint]) -> bool:
    return all(any(tolerates(t, taint) for t in tolerations) for taint in taints)


def selects(affinity: dict[str, Any], node_labels: dict[str, str]) -> bool:
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    return any(
        all(
            e["operator"] == "In" and node_labels.get(e["key"]) in e["values"]
            for e in term["matchExpressions"]
        )
        for term in terms
    )


# --- device plugin -----------------------------------------------------------------------------------


def test_device_plugin_mode_installs_only_the_pinned_device_plugin() -> None:
    rec, _ = render(pool_args())
    (release,) = rec.of_type(RELEASE)
    assert release.name == "gpu-device-plugin"
    assert release.inputs["chart"] == "nvidia-device-plugin"
    assert release.inputs["version"] == NVIDIA_DEVICE_PLUGIN.version == "0.20.0"
    assert release.inputs["repositoryOpts"]["repo"] == NVIDIA_DEVICE_PLUGIN.repo
    assert (release.parent or "").endswith("inferstack:gpu_node_pool:GpuNodePool::gpu")


def test_device_plugin_runs_on_the_gpu_nodes_only_and_tolerates_their_taints() -> None:
    rec, _ = render(pool_args())
    values = rec.one(RELEASE).inputs["values"]
    assert values["nodeSelector"] == SELECTOR
    assert selects(values["affinity"], {**SELECTOR, "kubernetes.io/os": "linux"})
    assert not selects(values["affinity"], {"nvidia.com/gpu.present": "true"})  # the other label missing
    assert tolerates_all(values["tolerations"], TAINTS)


@needs_charts
def test_device_plugin_value_keys_exist_in_the_chart_defaults() -> None:
    assert chart_value_errors(NVIDIA_DEVICE_PLUGIN.values_dir, device_plugin_values(pool_args())) == []


def test_values_escape_hatch_is_merged_over_ours() -> None:
    rec, _ = render(pool_args(values={"migStrategy": "single"}))
    values = rec.one(RELEASE).inputs["values"]
    assert values["migStrategy"] == "single"
    assert values["nodeSelector"] == SELECTOR


# --- GPU operator ------------------------------------------------------------------------------------


def test_gpu_operator_mode_installs_the_operator_and_not_the_plugin() -> None:
    rec, _ = render(pool_args(GpuDriverStack.GPU_OPERATOR))
    (release,) = rec.of_type(RELEASE)
    assert release.name == "gpu-gpu-operator"
    assert release.inputs["chart"] == "gpu-operator"
    assert release.inputs["version"] == GPU_OPERATOR.version == "v26.7.0"
    assert release.inputs["repositoryOpts"]["repo"] == GPU_OPERATOR.repo
    assert release.inputs["namespace"] == "gpu-operator"
    values = release.inputs["values"]
    for part in ("driver", "toolkit", "devicePlugin"):
        assert values[part]["enabled"] is True, part
    assert tolerates_all(values["daemonsets"]["tolerations"], TAINTS)
    assert tolerates_all(values["node-feature-discovery"]["worker"]["tolerations"], TAINTS)


@needs_charts
def test_gpu_operator_value_keys_exist_in_the_chart_defaults() -> None:
    values = gpu_operator_values(pool_args(GpuDriverStack.GPU_OPERATOR))
    assert chart_value_errors(GPU_OPERATOR.values_dir, values) == []


# --- preinstalled, and what the model server reads ---------------------------------------------------


def test_preinstalled_installs_nothing_but_still_places_pods() -> None:
    rec, pool = render(pool_args(GpuDriverStack.PREINSTALLED))
    assert [r for r in rec.resources if r.custom] == []
    assert pool.node_selector == SELECTOR
    assert tolerates_all(pool.tolerations, TAINTS)


def test_placement_attributes_are_plain_kubernetes_values() -> None:
    _, pool = render(pool_args(gpu_resource_name="nvidia.com/mig-1g.10gb"))
    placement: GpuPlacement = pool
    assert placement.gpu_resource_name == "nvidia.com/mig-1g.10gb"
    assert placement.tolerations == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "inference", "effect": "NoExecute"},
    ]
    assert placement.node_selector == SELECTOR
    assert placement.node_selector is not SELECTOR  # a copy: callers cannot change our args


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.builds(
            Taint,
            key=st.sampled_from(["nvidia.com/gpu", "dedicated", "example.com/team", "gpu"]),
            value=st.one_of(st.none(), st.sampled_from(["", "present", "inference", "a-b.c_d"])),
            effect=st.sampled_from(list(TaintEffect)),
        ),
        max_size=6,
    )
)
def test_tolerations_tolerate_exactly_the_given_taints(taints: list[Taint]) -> None:
    tolerations = tolerations_for(taints)
    assert tolerates_all(tolerations, taints)
    for t in tolerations:
        assert set(t) <= {"key", "operator", "value", "effect"}
        assert (t["operator"] == "Exists") == ("value" not in t)
    # Nothing broader than asked: a taint on another key is not tolerated.
    assert not any(
        tolerates(t, Taint("unrelated.example/x", "y", TaintEffect.NO_SCHEDULE)) for t in tolerations
    )


# --- validation --------------------------------------------------------------------------------------


def test_device_plugin_needs_a_node_selector() -> None:
    problems = validate_gpu_node_pool_args(pool_args(node_selector={}))
    assert [p.split(":")[0] for p in problems] == ["node_selector"]
    assert validate_gpu_node_pool_args(pool_args(GpuDriverStack.GPU_OPERATOR, node_selector={})) == []


def test_preinstalled_with_values_is_rejected_naming_both() -> None:
    problems = validate_gpu_node_pool_args(pool_args(GpuDriverStack.PREINSTALLED, values={"a": 1}))
    assert len(problems) == 1 and "values" in problems[0] and "preinstalled" in problems[0]


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"node_selector": {"bad key!": "x"}}, "node_selector"),
        ({"node_selector": {"ok": "not ok!"}}, "node_selector"),
        ({"taints": [Taint("-bad", None, TaintEffect.NO_SCHEDULE)]}, "taints[0].key"),
        ({"taints": [Taint("ok", "bad value!", TaintEffect.NO_SCHEDULE)]}, "taints[0].value"),
        ({"taints": [*TAINTS, TAINTS[0]]}, "taints[2]"),
        ({"gpu_resource_name": "gpu"}, "gpu_resource_name"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], field_name: str) -> None:
    problems = validate_gpu_node_pool_args(pool_args(**changes))
    assert [p.split(":")[0] for p in problems] == [field_name]


def test_constructor_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        GpuNodePool("gpu", pool_args(node_selector={}, gpu_resource_name="gpu"))
    assert "node_selector" in str(raised.value) and "gpu_resource_name" in str(raised.value)
