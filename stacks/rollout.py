"""The model server's rolling-update strategy, derived from the room the GPU pool has for one more pod.

A RollingUpdate with maxSurge 1, maxUnavailable 0 starts the new pod before it stops an old one. At
max_replicas that pod needs one replica's GPUs beyond max_replicas x gpus_per_replica; where the pool's
ceiling is exactly that (a Karpenter NodePool `limits`, a GKE node pool's max node count, fixed nodes)
the surge pod stays Pending, the Deployment never progresses and `pulumi up` times out. So:

* the pool has room for max_replicas + 1 replicas: keep the surge (no capacity is lost during an
  update; the extra node lives only while the rollout runs);
* otherwise, or where the stack cannot know the capacity (on-prem nodes, a managed node group whose
  instance types we do not size, the CPU engine on a cluster we do not size): maxSurge 0,
  maxUnavailable 1: the update replaces one replica at a time, so it always fits, and runs one replica
  short while it does (with one replica, the endpoint is down while the new one loads).

Elastic cloud pools get the room by default (stacks/rules_aws.gpu_limit, rules_gcp.gcp_gpu_limit): a
ceiling costs nothing until a pod uses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from components.choices import GpuProvisioner
from components.clusters.azure.gpu_vm_sizes import AZURE_GPU_VM_SIZES
from stacks.config import Platform, StackConfig
from stacks.config_gcp import GCP_GPU_MACHINES
from stacks.rules_aws import gpu_limit
from stacks.rules_azure import azure_max_gpu_nodes, azure_vms_per_replica
from stacks.rules_gcp import gcp_max_gpu_nodes, machines_per_replica


@dataclass(frozen=True)
class RollingUpdate:
    """A Deployment's spec.strategy.rollingUpdate, in pods."""

    max_surge: int
    max_unavailable: int

    @property
    def surges(self) -> bool:
        return self.max_surge > 0


#: Start the new pod first: no capacity lost during an update.
SURGE = RollingUpdate(max_surge=1, max_unavailable=0)
#: Stop one old pod first: fits a pool that is full at max_replicas.
ONE_AT_A_TIME = RollingUpdate(max_surge=0, max_unavailable=1)


def pool_gpu_capacity(cfg: StackConfig) -> int | None:
    """GPUs the model server's pool can hold at most, or None where the stack cannot know it."""
    if not cfg.uses_gpu:
        return None
    if cfg.platform is Platform.AWS:
        assert cfg.aws is not None
        if cfg.aws.gpu_nodes.provisioner is GpuProvisioner.KARPENTER:
            return gpu_limit(cfg)
        return None  # a managed node group's size in GPUs depends on instance types we do not table
    if cfg.platform is Platform.GCP:
        assert cfg.gcp is not None
        return gcp_max_gpu_nodes(cfg) * GCP_GPU_MACHINES[cfg.gcp.gpu_nodes.machine_type].count
    if cfg.platform is Platform.AZURE:
        assert cfg.azure is not None
        return azure_max_gpu_nodes(cfg) * AZURE_GPU_VM_SIZES[cfg.azure.gpu_nodes.vm_size].gpus
    return None  # on-prem: the nodes exist already and the stack file does not say how many GPUs


def _machine_counted_pool(cfg: StackConfig) -> tuple[int, Callable[[StackConfig], int]] | None:
    """(most machines, machines one replica of a model takes) of a GKE or AKS GPU pool whose size the stack
    chose (no gpu_limit in the stack file), or None."""
    if cfg.platform is Platform.GCP and cfg.gcp is not None and not cfg.gcp.gpu_nodes.gpu_limit:
        return gcp_max_gpu_nodes(cfg), lambda model: machines_per_replica(cfg, model)
    if cfg.platform is Platform.AZURE and cfg.azure is not None and not cfg.azure.gpu_nodes.gpu_limit:
        return azure_max_gpu_nodes(cfg), lambda model: azure_vms_per_replica(cfg, model)
    return None


def most_replicas(cfg: StackConfig) -> int:
    return cfg.autoscaling.max_replicas if cfg.autoscaling.enabled else cfg.serving.replicas


def rollout_strategy(capacity_gpus: int | None, max_replicas: int, gpus_per_replica: int) -> RollingUpdate:
    """SURGE when capacity_gpus holds max_replicas + 1 replicas of gpus_per_replica GPUs, else ONE_AT_A_TIME.

    capacity_gpus None means unknown and is treated as full.
    """
    if capacity_gpus is None:
        return ONE_AT_A_TIME
    replicas_that_fit = math.floor(capacity_gpus / max(gpus_per_replica, 1))
    return SURGE if replicas_that_fit >= max_replicas + 1 else ONE_AT_A_TIME


def stack_rollout_strategy(cfg: StackConfig, variant: StackConfig | None = None) -> RollingUpdate:
    """The strategy of one model server (`variant`, a model or variant of `cfg.served`; default: the
    stack's own model). The pool is shared: the room for its surge pod is what the other GPU model servers
    leave at their max_replicas."""
    own = variant if variant is not None else cfg
    machines = _machine_counted_pool(cfg)
    if machines is not None and len(cfg.served) > 1 and own.uses_gpu:
        # Several models on a GKE or AKS pool sized by the stack: counted in machines, one replica per
        # machine (gcp_max_gpu_nodes, azure_max_gpu_nodes); a gpu_limit from the stack file is counted in
        # GPUs, as below.
        most_nodes, per_replica = machines
        room = most_nodes - sum(
            most_replicas(v.config) * per_replica(v.config)
            for v in cfg.served
            if v.config is not own and v.config.uses_gpu
        )
        return SURGE if room >= (most_replicas(own) + 1) * per_replica(own) else ONE_AT_A_TIME
    capacity = pool_gpu_capacity(cfg)
    if capacity is not None:
        capacity -= sum(
            most_replicas(v.config) * v.config.serving.gpus_per_replica
            for v in cfg.served
            if v.config is not own and v.config.uses_gpu
        )
    return rollout_strategy(capacity, most_replicas(own), own.serving.gpus_per_replica)
