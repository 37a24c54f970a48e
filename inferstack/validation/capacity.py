"""Three plan-level rules about time and room that no schema states.

`scale-to-zero-after-cold-start`: a ScaledObject that may scale to zero (minReplicaCount 0) keeps a
woken replica for at least its cold start: cooldownPeriod >= the target Deployment's startup-probe budget
(initialDelaySeconds + periodSeconds x failureThreshold) + an image pull + a GPU node's provisioning where
the plan provisions GPU nodes (a Karpenter NodePool, a GKE node pool or an AKS agent pool with
autoscaling). KEDA v2.20.2 scales to zero once no trigger has been active for cooldownPeriod, whether or not the replica is ready yet
(stacks/cold_start.py has the source and the figures).

`rollout-fits-capacity`: a Deployment that requests GPUs and surges during a rolling update (maxSurge > 0)
needs room for one replica beyond its ceiling (the ScaledObject's maxReplicaCount, else spec.replicas) in
the GPU capacity the plan caps: a Karpenter NodePool's `spec.limits`, an AKS agent pool's maxCount x its
VM size's GPUs, or a GKE node pool's totalMaxNodeCount x accelerators per node. Where the plan caps nothing we know (fixed on-prem nodes, a
managed node group) a surge cannot be shown to fit, so it is a finding too; maxSurge 0 with
maxUnavailable 1 always fits (stacks/rollout.py).

`rollout-deadline-covers-cold-start`: a Deployment that requests GPUs gives each new pod of a rollout a
cold start before Kubernetes calls the rollout failed: spec.progressDeadlineSeconds (600 s when absent)
>= the startup-probe budget + an image pull + a GPU node's provisioning where the plan provisions GPU
nodes. The controller restarts that clock at every step of a rollout, so one pod's cold start is the
floor. And `pulumi up` waits for the whole rollout: the Deployment's Pulumi customTimeouts create and
update (10 minutes when unset) >= that cold start x the replicas a rollout replaces (the ScaledObject's
maxReplicaCount, else spec.replicas), one after another (stacks/cold_start.py has the sources). The
weight download is not in the plan's objects, so this floor is lower than the stack's own budget.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from components.clusters.azure.gpu_vm_sizes import find_vm_size
from inferstack.planning.recording import RecordedResource
from inferstack.validation.common import CheckOutcome, Finding, resource_id
from stacks.cold_start import IMAGE_PULL_SECONDS, NODE_PROVISIONING_SECONDS

COLD_START_CHECK = "scale-to-zero-after-cold-start"
ROLLOUT_CHECK = "rollout-fits-capacity"
DEADLINE_CHECK = "rollout-deadline-covers-cold-start"

#: KEDA's cooldownPeriod when the ScaledObject omits it (v2.20.2 pkg/scaling/executor/scale_executor.go).
KEDA_DEFAULT_COOLDOWN_SECONDS = 300
_GKE_NODE_POOL = "gcp:container/nodePool:NodePool"
_AKS_AGENT_POOL = "azure-native:containerservice:AgentPool"
_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
#: spec.progressDeadlineSeconds when absent (kubernetes pkg/apis/apps/v1/defaults.go,
#: SetDefaults_Deployment).
KUBERNETES_DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
#: How long pulumi-kubernetes awaits a Deployment without customTimeouts (provider/pkg/await/deployment.go,
#: DefaultDeploymentTimeoutMins = 10).
PULUMI_DEFAULT_DEPLOYMENT_TIMEOUT_SECONDS = 600


def _deployments(manifests: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (m["metadata"].get("namespace", ""), m["metadata"]["name"]): m
        for m in manifests
        if m.get("kind") == "Deployment" and isinstance(m.get("metadata"), dict)
    }


def _scaled_objects(manifests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        m
        for m in manifests
        if m.get("kind") == "ScaledObject" and m.get("apiVersion", "").startswith("keda.sh/")
    ]


def _target(so: dict[str, Any]) -> tuple[str, str] | None:
    ref = (so.get("spec") or {}).get("scaleTargetRef") or {}
    if ref.get("kind", "Deployment") != "Deployment" or not ref.get("name"):
        return None
    return so["metadata"].get("namespace", ""), ref["name"]


def _containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    return list(spec.get("containers") or [])


def startup_budget_seconds(deployment: dict[str, Any]) -> int:
    """Longest startup-probe budget of the Deployment's containers, in seconds (Kubernetes' probe defaults)."""
    budgets = [0]
    for container in _containers(deployment):
        probe = container.get("startupProbe")
        if isinstance(probe, dict):
            budgets.append(
                int(probe.get("initialDelaySeconds", 0))
                + int(probe.get("periodSeconds", 10)) * int(probe.get("failureThreshold", 3))
            )
    return max(budgets)


def gpus_per_pod(deployment: dict[str, Any]) -> int:
    """GPUs a pod requests: the sum over containers of every `*/gpu` extended resource's limit."""
    total = 0
    for container in _containers(deployment):
        limits = (container.get("resources") or {}).get("limits") or {}
        total += sum(int(v) for k, v in limits.items() if k.endswith("/gpu"))
    return total


def _cold_start(deployment: dict[str, Any], provisions_node: bool) -> tuple[int, str]:
    """(seconds, "startup probe S + image pull P [+ GPU node N]"): the floor of one new pod's cold start
    a plan can state (the weight download needs the model's size, which the objects do not carry)."""
    startup = startup_budget_seconds(deployment)
    node = NODE_PROVISIONING_SECONDS if provisions_node else 0
    terms = f"startup probe {startup} + image pull {IMAGE_PULL_SECONDS}" + (
        f" + GPU node {node}" if node else ""
    )
    return startup + IMAGE_PULL_SECONDS + node, terms


def _replica_ceilings(manifests: Sequence[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """(namespace, Deployment name) -> its ScaledObject's maxReplicaCount (KEDA's default 100 when unset)."""
    return {
        t: int((so.get("spec") or {}).get("maxReplicaCount", 100))
        for so in _scaled_objects(manifests)
        if (t := _target(so)) is not None
    }


def _provisions_gpu_nodes(manifests: Sequence[dict[str, Any]], resources: Iterable[RecordedResource]) -> bool:
    if any(
        m.get("kind") == "NodePool" and m.get("apiVersion", "").startswith("karpenter.sh/") for m in manifests
    ):
        return True
    return any(
        (r.type == _GKE_NODE_POOL and r.inputs.get("autoscaling") and _accelerators(r))
        or (r.type == _AKS_AGENT_POOL and r.inputs.get("enableAutoScaling") and _accelerators(r))
        for r in resources
    )


def _accelerators(pool: RecordedResource) -> int:
    """GPUs per node of a GKE node pool (its guest accelerators) or an AKS agent pool (its VM size)."""
    if pool.type == _AKS_AGENT_POOL:
        found = find_vm_size(str(pool.inputs.get("vmSize") or ""))
        return found[1].gpus if found else 0
    accelerators = (pool.inputs.get("nodeConfig") or {}).get("guestAccelerators") or []
    return sum(int(a.get("count", 0)) for a in accelerators)


def gpu_capacity(manifests: Sequence[dict[str, Any]], resources: Iterable[RecordedResource]) -> int | None:
    """GPUs the plan's GPU pools may hold in all, or None when the plan caps no GPU pool it makes."""
    found = False
    total = 0
    for m in manifests:
        if m.get("kind") == "NodePool" and m.get("apiVersion", "").startswith("karpenter.sh/"):
            limits = (m.get("spec") or {}).get("limits") or {}
            gpu = [int(v) for k, v in limits.items() if k.endswith("/gpu")]
            if gpu:
                found, total = True, total + sum(gpu)
    for r in resources:
        per_node = _accelerators(r) if r.type in (_GKE_NODE_POOL, _AKS_AGENT_POOL) else 0
        if r.type == _GKE_NODE_POOL:
            most = (r.inputs.get("autoscaling") or {}).get("totalMaxNodeCount")
        elif r.type == _AKS_AGENT_POOL and r.inputs.get("enableAutoScaling"):
            most = r.inputs.get("maxCount")  # the cluster autoscaler's ceiling for the pool
        else:
            most = None
        if per_node and most is not None:
            found, total = True, total + per_node * int(most)
    return total if found else None


def _surge_pods(deployment: dict[str, Any], replicas: int) -> int:
    """maxSurge in pods (Kubernetes rounds a percentage up; the default is 25%)."""
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0  # Recreate stops every old pod first
    surge = (strategy.get("rollingUpdate") or {}).get("maxSurge", "25%")
    if isinstance(surge, str) and surge.endswith("%"):
        return math.ceil(replicas * int(surge[:-1]) / 100)
    return int(surge)


def cold_start_outcome(
    manifests: Sequence[dict[str, Any]], resources: Iterable[RecordedResource]
) -> CheckOutcome:
    """One finding per ScaledObject with minReplicaCount 0 whose cooldownPeriod is shorter than a cold start."""
    deployments = _deployments(manifests)
    provisions = _provisions_gpu_nodes(manifests, list(resources))
    findings: list[Finding] = []
    checked = 0
    for so in _scaled_objects(manifests):
        spec = so.get("spec") or {}
        target = _target(so)
        if spec.get("minReplicaCount", 0) != 0 or target is None or target not in deployments:
            continue
        checked += 1
        deployment = deployments[target]
        least, terms = _cold_start(deployment, provisions and bool(gpus_per_pod(deployment)))
        cooldown = int(spec.get("cooldownPeriod", KEDA_DEFAULT_COOLDOWN_SECONDS))
        if cooldown < least:
            findings.append(
                Finding(
                    check=COLD_START_CHECK,
                    resource=resource_id(so),
                    message=f"spec.cooldownPeriod: {cooldown} s is shorter than a cold start of "
                    f"{resource_id(deployment)} ({least} s = {terms}): KEDA would scale a "
                    "still-loading replica to zero; raise autoscaling.cooldown_seconds to at least "
                    f"{least} (or remove it: the default is the cold-start budget)",
                )
            )
    return CheckOutcome(findings=findings, notes=[], validated=checked)


def rollout_outcome(
    manifests: Sequence[dict[str, Any]], resources: Iterable[RecordedResource]
) -> CheckOutcome:
    """One finding per GPU Deployment whose rolling-update surge has no room at its replica ceiling."""
    resources = list(resources)
    ceilings = _replica_ceilings(manifests)
    capacity = gpu_capacity(manifests, resources)
    findings: list[Finding] = []
    checked = 0
    for key, deployment in sorted(_deployments(manifests).items()):
        per_pod = gpus_per_pod(deployment)
        if not per_pod:
            continue
        checked += 1
        replicas = ceilings.get(key, int((deployment.get("spec") or {}).get("replicas", 1)))
        surge = _surge_pods(deployment, replicas)
        if surge <= 0:
            continue
        needed = (replicas + surge) * per_pod
        if capacity is None or capacity < needed:
            room = (
                "caps no GPU pool it makes" if capacity is None else f"caps the GPU pools at {capacity} GPUs"
            )
            findings.append(
                Finding(
                    check=ROLLOUT_CHECK,
                    resource=resource_id(deployment),
                    message=f"spec.strategy.rollingUpdate.maxSurge: {surge} surge pod(s) at {replicas} replicas "
                    f"need {needed} GPUs but the plan {room}: the surge pod would stay Pending and the update "
                    "time out; raise the pool's gpu_limit by one replica's GPUs, or use maxSurge 0 with "
                    "maxUnavailable 1",
                )
            )
    return CheckOutcome(findings=findings, notes=[], validated=checked)


def _seconds(duration: str) -> float:
    """A Pulumi customTimeouts string ("1500s", "25m", "1h30m") in seconds (Go's time.ParseDuration units)."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration.strip():
        raise ValueError(f"custom timeout {duration!r} is not a duration such as 1500s or 25m")
    return sum(float(n) * units[u] for n, u in parts)


def _pulumi_timeouts(resources: Sequence[RecordedResource]) -> dict[tuple[str, str], dict[str, str]]:
    """Each Deployment's Pulumi customTimeouts, keyed like _deployments (namespace, name)."""
    timeouts = {}
    for r in resources:
        if r.type != _DEPLOYMENT:
            continue
        metadata = {**(r.outputs.get("metadata") or {}), **(r.inputs.get("metadata") or {})}
        timeouts[(str(metadata.get("namespace", "")), str(metadata.get("name", "")))] = r.custom_timeouts
    return timeouts


def deadline_outcome(
    manifests: Sequence[dict[str, Any]], resources: Iterable[RecordedResource]
) -> CheckOutcome:
    """One finding per GPU Deployment whose progress deadline, or whose Pulumi timeouts, end a rollout
    that is still doing its cold starts."""
    resources = list(resources)
    provisions = _provisions_gpu_nodes(manifests, resources)
    ceilings = _replica_ceilings(manifests)
    timeouts = _pulumi_timeouts(resources)
    findings: list[Finding] = []
    checked = 0
    for key, deployment in sorted(_deployments(manifests).items()):
        if not gpus_per_pod(deployment):
            continue
        checked += 1
        spec = deployment.get("spec") or {}
        cold_start, terms = _cold_start(deployment, provisions)
        deadline = int(spec.get("progressDeadlineSeconds", KUBERNETES_DEFAULT_PROGRESS_DEADLINE_SECONDS))
        if deadline < cold_start:
            findings.append(
                Finding(
                    check=DEADLINE_CHECK,
                    resource=resource_id(deployment),
                    message=f"spec.progressDeadlineSeconds: {deadline} s is shorter than one new pod's cold "
                    f"start ({cold_start} s = {terms}): Kubernetes would mark a rollout that is still loading "
                    "ProgressDeadlineExceeded, which kubectl rollout status, Argo CD and Flux report as failed; "
                    "set it to the stack's cold start plus a margin (stacks/cold_start.progress_deadline_seconds)",
                )
            )
        replicas = max(ceilings.get(key, int(spec.get("replicas", 1))), 1)
        for operation in ("create", "update"):
            given = timeouts.get(key, {}).get(operation)
            waits = _seconds(given) if given else PULUMI_DEFAULT_DEPLOYMENT_TIMEOUT_SECONDS
            if waits < replicas * cold_start:
                findings.append(
                    Finding(
                        check=DEADLINE_CHECK,
                        resource=resource_id(deployment),
                        message=f"customTimeouts.{operation}: `pulumi up` waits {waits:g} s"
                        + ("" if given else " (pulumi-kubernetes' default)")
                        + f" but a rollout replaces {replicas} replica(s) one cold start ({cold_start} s = "
                        f"{terms}) after another, {replicas * cold_start} s: it would fail while the cluster "
                        "still finishes; give the Deployment that long and a margin "
                        "(stacks/cold_start.rollout_timeout_seconds)",
                    )
                )
    return CheckOutcome(findings=findings, notes=[], validated=checked)
