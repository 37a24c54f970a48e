"""Scale-to-zero timers and rollout deadlines follow the cold-start budget; rollouts fit the GPU capacity
(issue 13 kinds 7, 9).

The plan-level rules `scale-to-zero-after-cold-start`, `rollout-fits-capacity` and
`rollout-deadline-covers-cold-start` (inferstack/validation/capacity.py, run by `inferstack check`): every
stack in stacks/ and docs/examples/ passes, and the defective form of every stack fails: KEDA's old 300 s
cooldown on a stack that scales to zero, `maxSurge: 1, maxUnavailable: 0` on a pool capped at exactly
max_replicas x GPUs, and Kubernetes' default 600 s progress deadline with Pulumi timeouts of the startup
window + 600 s.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import re
from pathlib import Path
from typing import Any

import pytest

from components.clusters.azure.gpu_vm_sizes import find_vm_size
from inferstack.planning.plan import Plan, plan_stack
from inferstack.planning.recording import RecordedResource
from inferstack.validation.capacity import (
    COLD_START_CHECK,
    DEADLINE_CHECK,
    ROLLOUT_CHECK,
    cold_start_outcome,
    deadline_outcome,
    gpus_per_pod,
    rollout_outcome,
    startup_budget_seconds,
)
from stacks.cold_start import (
    IMAGE_PULL_SECONDS,
    NODE_PROVISIONING_SECONDS,
    ROLLOUT_MARGIN_SECONDS,
    minimum_cooldown_seconds,
    progress_deadline_seconds,
    rollout_timeout_seconds,
    weight_download_seconds,
)
from stacks.config import (
    ConfigError,
    StackConfig,
    cold_start_budget_of,
    cold_start_seconds,
    config_values_from_stack_yaml,
    cooldown_seconds,
    load_stack_file,
    parse_stack_config,
)
from stacks.gpus import weight_bytes_per_parameter
from stacks.rollout import ONE_AT_A_TIME, SURGE, most_replicas, rollout_strategy, stack_rollout_strategy
from stacks.stack_yaml import load_yaml
from tests.model_servers import model_server_deployments, model_server_manifests

ROOT = Path(__file__).resolve().parents[1]
STACK_FILES = {
    p.name.removeprefix("Pulumi.").removesuffix(".yaml"): p
    for p in [*(ROOT / "stacks").glob("Pulumi.*.yaml"), *(ROOT / "docs" / "examples").glob("Pulumi.*.yaml")]
}
STACKS = sorted(STACK_FILES)
Manifests = list[dict[str, Any]]


@functools.cache
def plan_of(stack: str) -> Plan:
    return plan_stack(load_stack_file(STACK_FILES[stack]), stack)


def manifests_of(stack: str) -> Manifests:
    return copy.deepcopy(plan_of(stack).manifests())


def stack_values(stack: str) -> dict[str, Any]:
    """The inferstack: values of a stack file, keyed by section (what parse_stack_config takes)."""
    document = load_yaml(STACK_FILES[stack].read_text(encoding="utf-8")).document
    return config_values_from_stack_yaml(document, stack)


def of_kind(manifests: Manifests, kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m.get("kind") == kind]


def gpu_deployments(manifests: Manifests) -> list[dict[str, Any]]:
    return [d for d in of_kind(manifests, "Deployment") if gpus_per_pod(d)]


def variant_configs(plan: Plan) -> dict[str, StackConfig]:
    """Each model server Deployment's name -> the stack as its model (or variant) sees it: `llm` -> the
    stack in the single-model form, `llm-<id>[-<variant>]` -> that entry merged over the stack's sections."""
    return {v.resource_name: v.config for v in plan.config.served}


# --- pure parts -----------------------------------------------------------------------------------------


def test_the_minimum_cooldown_is_the_whole_cold_start() -> None:
    assert (
        minimum_cooldown_seconds(600, provisions_nodes=True)
        == 600 + IMAGE_PULL_SECONDS + NODE_PROVISIONING_SECONDS
    )
    assert minimum_cooldown_seconds(1200, provisions_nodes=False) == 1200 + IMAGE_PULL_SECONDS
    # KEDA's own default (300 s) covers none of them.
    assert minimum_cooldown_seconds(60, provisions_nodes=False) > 300


@pytest.mark.parametrize(
    ("capacity", "max_replicas", "gpus", "expected"),
    [
        (None, 4, 1, ONE_AT_A_TIME),  # unknown capacity (on-prem, managed node group, CPU): full
        (4, 4, 1, ONE_AT_A_TIME),  # exactly max_replicas x GPUs: the surge pod would stay Pending
        (5, 4, 1, SURGE),
        (16, 8, 2, ONE_AT_A_TIME),
        (17, 8, 2, ONE_AT_A_TIME),  # half a replica of room is no room
        (18, 8, 2, SURGE),
    ],
)
def test_the_strategy_surges_only_with_room_for_one_more_replica(
    capacity: int | None, max_replicas: int, gpus: int, expected: object
) -> None:
    assert rollout_strategy(capacity, max_replicas, gpus) == expected


# --- the stack files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_a_cooldown_shorter_than_the_cold_start_is_rejected_in_every_stack(stack: str) -> None:
    values = stack_values(stack)
    values.setdefault("autoscaling", {}).update(enabled=True, min_replicas=0, cooldown_seconds=300)
    values.setdefault("serving", {})["engine"] = "vllm"
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(values, stack)
    # With `models` the stack's section is every model's default: the problem stays at that key and says
    # for which model (and variant) it was found.
    assert re.search(
        r"  autoscaling\.cooldown_seconds: (for model \S+( variant \S+)?: )?300 s is shorter than a cold start",
        str(raised.value),
    ), str(raised.value)


@pytest.mark.parametrize("stack", STACKS)
def test_the_default_cooldown_is_the_stacks_cold_start_budget(stack: str) -> None:
    cfg = load_stack_file(STACK_FILES[stack])
    assert cfg.autoscaling.cooldown_seconds is None or cfg.autoscaling.min_replicas > 0, (
        "a stack that scales to zero should take the derived cooldown"
    )
    quant = cfg.model.quantization.value if cfg.model.quantization else None
    checkpoint = cfg.model.parameters_b * 1e9 * weight_bytes_per_parameter(cfg.model.dtype.value, quant)
    budget = cold_start_budget_of(cfg)
    assert cooldown_seconds(cfg) == budget.total_seconds
    # The fresh emptyDir cache downloads the whole checkpoint (copy mode): an 8B bf16 model from S3 adds
    # 160 s at 100 MB/s.
    assert budget.item("weight fetch").seconds == weight_download_seconds(checkpoint, cfg.model.scheme)


# --- the plans: every stack passes, the defective form of every stack fails ------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_both_rules(stack: str) -> None:
    plan = plan_of(stack)
    manifests = plan.manifests()
    assert cold_start_outcome(manifests, plan.recording.resources).findings == []
    assert rollout_outcome(manifests, plan.recording.resources).findings == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_deployment_strategy_is_the_one_derived_from_capacity(stack: str) -> None:
    plan = plan_of(stack)
    configs = variant_configs(plan)
    servers = model_server_manifests(plan.manifests())
    assert sorted(d["metadata"]["name"] for d in servers) == sorted(configs)
    for server in servers:
        expected = stack_rollout_strategy(configs[server["metadata"]["name"]])
        assert server["spec"]["strategy"]["rollingUpdate"] == {
            "maxSurge": expected.max_surge,
            "maxUnavailable": expected.max_unavailable,
        }


@pytest.mark.parametrize("stack", [s for s in STACKS if of_kind(plan_of(s).manifests(), "ScaledObject")])
def test_keda_default_cooldown_on_scale_to_zero_fails_in_every_stack(stack: str) -> None:
    manifests = manifests_of(stack)
    scaled = of_kind(manifests, "ScaledObject")
    for so in scaled:
        so["spec"]["minReplicaCount"] = 0
        so["spec"]["cooldownPeriod"] = 300
    findings = cold_start_outcome(manifests, plan_of(stack).recording.resources).findings
    # One finding per ScaledObject (one per model or variant that autoscales).
    assert [f.check for f in findings] == [COLD_START_CHECK] * len(scaled)
    assert all("autoscaling.cooldown_seconds" in f.message for f in findings)
    # A cooldown absent from the ScaledObject is KEDA's default, 300 s: the same finding.
    for so in of_kind(manifests, "ScaledObject"):
        del so["spec"]["cooldownPeriod"]
    assert cold_start_outcome(manifests, plan_of(stack).recording.resources).findings


def test_the_startup_budget_reads_the_probe() -> None:
    deployment = {
        "spec": {
            "template": {
                "spec": {"containers": [{"startupProbe": {"periodSeconds": 10, "failureThreshold": 60}}]}
            }
        }
    }
    assert startup_budget_seconds(deployment) == 600


def _exact_capacity(stack: str, manifests: Manifests) -> list[RecordedResource]:
    """The stack's GPU pool capped at exactly what its GPU Deployments use at their replica ceilings (the
    defect's shape: max_replicas x GPUs, summed over the models), as a copy."""
    ceiling = {
        so["spec"]["scaleTargetRef"]["name"]: so["spec"]["maxReplicaCount"]
        for so in of_kind(manifests, "ScaledObject")
    }
    exact = sum(
        ceiling.get(server["metadata"]["name"], server["spec"]["replicas"]) * gpus_per_pod(server)
        for server in gpu_deployments(manifests)
    )
    for pool in of_kind(manifests, "NodePool"):
        pool["spec"]["limits"]["nvidia.com/gpu"] = exact
    resources = []
    for r in plan_of(stack).recording.resources:
        accelerators = (r.inputs.get("nodeConfig") or {}).get("guestAccelerators")
        if r.type == "gcp:container/nodePool:NodePool" and r.inputs.get("autoscaling") and accelerators:
            inputs = copy.deepcopy(r.inputs)
            per_node = sum(a["count"] for a in inputs["nodeConfig"]["guestAccelerators"])
            inputs["autoscaling"]["totalMaxNodeCount"] = math.ceil(exact / per_node)
            r = dataclasses.replace(r, inputs=inputs)
        found = find_vm_size(str(r.inputs.get("vmSize") or ""))
        if (
            r.type == "azure-native:containerservice:AgentPool"
            and r.inputs.get("enableAutoScaling")
            and found
        ):
            inputs = copy.deepcopy(r.inputs)
            inputs["maxCount"] = math.ceil(exact / found[1].gpus)
            r = dataclasses.replace(r, inputs=inputs)
        resources.append(r)
    return resources


@pytest.mark.parametrize("stack", [s for s in STACKS if gpu_deployments(plan_of(s).manifests())])
def test_a_surge_on_an_exactly_sized_pool_fails_in_every_gpu_stack(stack: str) -> None:
    manifests = manifests_of(stack)
    resources = _exact_capacity(stack, manifests)
    # Each GPU model server in turn (the others as planned): its surge pod has no room.
    for server in gpu_deployments(manifests):
        planned = copy.deepcopy(server["spec"]["strategy"])
        server["spec"]["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
        findings = rollout_outcome(manifests, resources).findings
        assert [f.check for f in findings] == [ROLLOUT_CHECK], server["metadata"]["name"]
        assert server["metadata"]["name"] in findings[0].resource
        # One replica at a time always fits.
        server["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 0, "maxUnavailable": 1}
        assert rollout_outcome(manifests, resources).findings == []
        server["spec"]["strategy"] = planned


# --- rollout deadlines: Kubernetes' per pod, Pulumi's per rollout -----------------------------------------

DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"


def test_the_deadlines_are_one_cold_start_and_every_replica_one_after_another() -> None:
    assert progress_deadline_seconds(1600) == 1600 + ROLLOUT_MARGIN_SECONDS
    assert rollout_timeout_seconds(1600, 4) == 4 * 1600 + ROLLOUT_MARGIN_SECONDS
    # A Deployment scaled to zero still replaces at least one replica when it is woken during a rollout.
    assert rollout_timeout_seconds(1600, 0) == rollout_timeout_seconds(1600, 1)


def _servers(stack: str) -> list[tuple[dict[str, Any], RecordedResource, StackConfig]]:
    """Each model server: its manifest, its recorded Deployment and the stack as its model sees it."""
    plan = plan_of(stack)
    configs = variant_configs(plan)
    resources = {r.inputs["metadata"]["name"]: r for r in model_server_deployments(plan.recording)}
    manifests = model_server_manifests(plan.manifests())
    assert sorted(resources) == sorted(configs) == sorted(m["metadata"]["name"] for m in manifests)
    return [(m, resources[m["metadata"]["name"]], configs[m["metadata"]["name"]]) for m in manifests]


@pytest.mark.parametrize("stack", STACKS)
def test_the_server_deadlines_are_derived_from_the_stacks_cold_start(stack: str) -> None:
    # Every model server, from its own model's cold start (models differ in size, so in deadlines).
    for manifest, resource, cfg in _servers(stack):
        cold_start = cold_start_seconds(cfg)
        assert cold_start == cold_start_budget_of(cfg).total_seconds
        deadline = manifest["spec"]["progressDeadlineSeconds"]
        assert deadline == progress_deadline_seconds(cold_start)
        # Longer than Kubernetes' default, which the defect left in place, in every stack.
        assert deadline > 600
        timeout = f"{rollout_timeout_seconds(cold_start, most_replicas(cfg))}s"
        assert resource.custom_timeouts == {"create": timeout, "update": timeout}
        assert int(timeout[:-1]) >= most_replicas(cfg) * cold_start


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_the_deadline_rule(stack: str) -> None:
    plan = plan_of(stack)
    outcome = deadline_outcome(plan.manifests(), plan.recording.resources)
    assert outcome.findings == []


def _defective(stack: str) -> tuple[Manifests, list[RecordedResource]]:
    """The stack as it was: no progressDeadlineSeconds (600 s) and Pulumi timeouts of startup + 600 s."""
    manifests = manifests_of(stack)
    startup = plan_of(stack).config.serving.startup_timeout_seconds
    for d in of_kind(manifests, "Deployment"):
        d["spec"].pop("progressDeadlineSeconds", None)
    resources = [
        dataclasses.replace(r, custom_timeouts={"create": f"{startup + 600}s", "update": f"{startup + 600}s"})
        if r.type == DEPLOYMENT_TYPE
        else r
        for r in plan_of(stack).recording.resources
    ]
    return manifests, resources


@pytest.mark.parametrize("stack", [s for s in STACKS if gpu_deployments(plan_of(s).manifests())])
def test_the_defective_deadlines_fail_in_every_gpu_stack(stack: str) -> None:
    manifests, resources = _defective(stack)
    findings = deadline_outcome(manifests, resources).findings
    assert {f.check for f in findings} == {DEADLINE_CHECK}
    messages = [f.message for f in findings]
    assert any(m.startswith("spec.progressDeadlineSeconds: 600 s is shorter") for m in messages), messages
    # startup + 600 s is shorter than a cold start once the image pull (360 s) and a node (480 s) are in;
    # on-prem it still falls short of max_replicas cold starts wherever a rollout replaces more than one.
    cfg = plan_of(stack).config
    if cfg.platform.value != "onprem" or most_replicas(cfg) > 1:
        assert any(m.startswith("customTimeouts.update:") for m in messages), messages
    # Absent timeouts are pulumi-kubernetes' 10 minutes: a finding too.
    bare = [dataclasses.replace(r, custom_timeouts={}) for r in resources]
    assert any("pulumi-kubernetes' default" in f.message for f in deadline_outcome(manifests, bare).findings)


def test_the_deadline_rule_reads_the_plan_not_the_stack() -> None:
    """One GPU Deployment by hand: 2 replicas, a 600 s startup probe, fixed nodes (no provisioning)."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm", "namespace": "ai"},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 600 + IMAGE_PULL_SECONDS,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "startupProbe": {"periodSeconds": 10, "failureThreshold": 60},
                            "resources": {"limits": {"nvidia.com/gpu": "1"}},
                        }
                    ]
                }
            },
        },
    }
    cold_start = 600 + IMAGE_PULL_SECONDS
    resource = RecordedResource(
        urn="urn:x",
        type=DEPLOYMENT_TYPE,
        name="llm-deployment",
        parent=None,
        custom=True,
        inputs={"metadata": {"name": "llm", "namespace": "ai"}},
        redacted_inputs={},
        custom_timeouts={
            "create": f"{2 * cold_start}s",
            "update": f"{2 * cold_start // 60}m{2 * cold_start % 60}s",
        },
    )
    assert deadline_outcome([deployment], [resource]).findings == []  # 2 cold starts, as minutes and seconds
    deployment["spec"]["progressDeadlineSeconds"] = cold_start - 1
    resource.custom_timeouts["update"] = f"{2 * cold_start - 1}s"
    findings = deadline_outcome([deployment], [resource]).findings
    assert [f.message.split(":")[0] for f in findings] == [
        "spec.progressDeadlineSeconds",
        "customTimeouts.update",
    ]
    resource.custom_timeouts["update"] = "soon"
    with pytest.raises(ValueError, match="not a duration"):
        deadline_outcome([deployment], [resource])
