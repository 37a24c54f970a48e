"""The AKS user pool for everything that is not a model server: the gateway, its controllers, KEDA,
cert-manager, Prometheus.

AKS's system pool carries `CriticalAddonsOnly=true:NoSchedule` (components/clusters/azure/aks.py), which
AKS recommends so that system pods are not starved by application pods ("Manage system node pools in
AKS": "use a dedicated system node pool ... with the CriticalAddonsOnly taint"); those pods do not
tolerate it, so they need a pool of their own. No taint here: every pod without a GPU lands on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_azure_native.containerservice as containerservice

from components._common import child, reject_invalid_args
from components.choices import AzureOsDiskType

#: AKS agent pool names: 1-12 lower-case letters and digits, starting with a letter (AgentPool name rules).
_POOL_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_VM_SIZE = re.compile(r"^Standard_[A-Za-z0-9_]+$")
#: One node more than the pool's size during an upgrade, as AKS recommends for production pools.
MAX_SURGE = "33%"


@dataclass(frozen=True, kw_only=True)
class AksUserPoolArgs:
    resource_group_name: pulumi.Input[str]  # the cluster's resource group
    cluster_name: pulumi.Input[str]  # the managed cluster's name
    vnet_subnet_id: pulumi.Input[str]  # the node subnet (the NAT gateway's)
    agent_pool_name: str = "general"  # AKS's name for the pool
    vm_size: str = "Standard_D4ds_v5"  # 4 vCPU, 16 GiB, 150 GiB local disk
    min_count: int = 1
    max_count: int = 4
    zones: list[str] = field(default_factory=list)  # "1".."3"; [] for a region without zones
    os_disk_type: AzureOsDiskType = AzureOsDiskType.EPHEMERAL
    os_disk_gib: int = 128  # must fit the size's local disk when Ephemeral
    orchestrator_version: str | None = None  # the cluster's Kubernetes version; None: the control plane's
    tags: dict[str, str] = field(default_factory=dict)


def validate_aks_user_pool_args(args: AksUserPoolArgs) -> list[str]:
    """Every problem with the args, each naming the field and the fix; [] when they are usable."""
    problems: list[str] = []
    if not _POOL_NAME.match(args.agent_pool_name):
        problems.append(
            f"agent_pool_name: {args.agent_pool_name!r} is not an AKS pool name (1-12 lower-case letters and "
            "digits, starting with a letter)"
        )
    if not _VM_SIZE.match(args.vm_size):
        problems.append(f"vm_size: {args.vm_size!r} is not a VM size (e.g. Standard_D4ds_v5)")
    if not 1 <= args.min_count <= args.max_count:
        problems.append(
            f"min_count {args.min_count} / max_count {args.max_count}: need 1 <= min_count <= max_count "
            "(the gateway and its controllers always run)"
        )
    bad = [z for z in args.zones if z not in ("1", "2", "3")]
    if bad:
        problems.append(f"zones: {bad} are not availability zones (1, 2 or 3)")
    return problems


class AksUserPool(pulumi.ComponentResource):
    """An autoscaled user agent pool without taints (see the module docstring)."""

    def __init__(self, name: str, args: AksUserPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args("AksUserPool", name, validate_aks_user_pool_args(args))
        super().__init__("inferstack:azure:AksUserPool", name, None, opts)
        inputs: dict[str, Any] = {
            "agent_pool_name": args.agent_pool_name,
            "mode": containerservice.AgentPoolMode.USER,
            "type": containerservice.AgentPoolType.VIRTUAL_MACHINE_SCALE_SETS,
            "vm_size": args.vm_size,
            "os_type": containerservice.OSType.LINUX,
            "os_sku": containerservice.OSSKU.AZURE_LINUX,
            "os_disk_type": args.os_disk_type.value,
            "os_disk_size_gb": args.os_disk_gib,
            "enable_auto_scaling": True,
            "count": args.min_count,
            "min_count": args.min_count,
            "max_count": args.max_count,
            "vnet_subnet_id": args.vnet_subnet_id,
            "enable_node_public_ip": False,
            "security_profile": containerservice.AgentPoolSecurityProfileArgs(
                ssh_access=containerservice.AgentPoolSSHAccess.DISABLED
            ),
            "upgrade_settings": containerservice.AgentPoolUpgradeSettingsArgs(max_surge=MAX_SURGE),
            "tags": dict(args.tags),
        }
        if args.zones:
            inputs["availability_zones"] = list(args.zones)
        if args.orchestrator_version is not None:
            inputs["orchestrator_version"] = args.orchestrator_version
        self.agent_pool = containerservice.AgentPool(
            f"{name}-pool",
            resource_group_name=args.resource_group_name,
            resource_name_=args.cluster_name,
            **inputs,
            # The cluster autoscaler owns `count` once the pool exists (as for the GPU pool).
            opts=child(self, delete_before_replace=True, ignore_changes=["count"]),
        )
        self.register_outputs({"agent_pool_name": args.agent_pool_name})
