"""AzureGpuNodePool: an AKS user node pool of GPU VMs that scales from zero and admits only GPU workloads.

Like the other cloud flavours it hands the model server the three `GpuPlacement` attributes (node selector,
tolerations, GPU resource name) and, since it makes the nodes, it decides their labels and taints: every node
carries `inferstack.io/gpu-pool: <name>` and, by default, `nvidia.com/gpu=present:NoSchedule` (AKS writes a
taint as key=value:Effect; the value is the one GKE puts on its GPU nodes, and the model server tolerates
the key with operator Exists, so any value matches).

GPU drivers, one choice: the AKS-managed driver plus NVIDIA's device plugin chart.

- AKS installs the NVIDIA driver itself on the GPU sizes it supports (every size in AZURE_GPU_VM_SIZES) and
  keeps it with the node image, which Microsoft "supports and manages" (AKS "Use GPUs for compute-intensive
  workloads"). We set `gpuProfile.driver: Install` explicitly (the 2025-09-01 API that pulumi-azure-native
  3.29.0 uses; "When it's not specified, default is Install"), so a changed default cannot drop it.
- That path does NOT install the device plugin: "While the NVIDIA drivers are installed by default on GPU
  capable nodes, you need to install the device plugin" (same page). So, as on AWS with AL2023, the pinned
  nvidia-device-plugin chart (components/_common.py NVIDIA_DEVICE_PLUGIN) runs here, pinned to this pool's
  label and tolerating its taints; nodes then advertise `nvidia.com/gpu`.
- Not chosen: `gpuProfile.driver: None` + the NVIDIA GPU operator. AKS then installs no driver and
  Microsoft "doesn't support or manage" it; the operator would build or pull a driver per kernel on every
  node start, which lengthens each scale-from-zero, and the node image updates AKS rolls out are no longer
  tested against that driver. Also not chosen: "AKS-managed GPU node pools" (driver, device plugin and
  DCGM exporter by AKS): preview, behind the ManagedGPUExperiencePreview feature flag, Kubernetes 1.34+,
  and not part of the GA API version we pin.
- The driver AKS installs is CUDA's on NC/ND sizes and the GRID (converged) one on NVads A10 v5; both run
  CUDA workloads. GPU telemetry: components/gpu_telemetry.py's device-plugin source (dcgm-exporter chart).

What else we choose, each explicit:

- Elastic: cluster autoscaler on, `minCount` 0, `maxCount` = max_nodes, `count` 0 at creation (AKS allows 0
  to 1000 nodes for user pools); an idle pool costs nothing. The autoscaler owns the count afterwards.
- Spot (optional): `scaleSetPriority: Spot`, `scaleSetEvictionPolicy: Delete` (a Deallocated node still
  counts against quota and blocks scale-out), `spotMaxPrice: -1` (pay up to the on-demand price, never
  evicted for price). AKS puts `kubernetes.azure.com/scalesetpriority=spot:NoSchedule` and the label
  `kubernetes.azure.com/scalesetpriority: spot` on spot pools ("Add an Azure Spot node pool", Limitations);
  we write both into the pool as AKS reads them back (so a refresh shows no drift) and the tolerations
  include that taint. There is no surge node for a spot pool upgrade (same page).
- Upgrades: maxSurge 0, maxUnavailable 1: a surge GPU node needs spare quota and stock (the scarcest thing
  in the stack) and an upgrade that cannot get one waits; one node at a time honours the model server's
  PodDisruptionBudget and the autoscaler replaces capacity within max_nodes.
- OS: Ubuntu (Azure Linux has no A100/H100 support on AKS: "Certain SKUs, including A100 and H100 VM SKUs,
  aren't available for Azure Linux"); OS disk Managed by default or Ephemeral when it fits the size's temp
  disk; no public IP per node; SSH to nodes disabled (`securityProfile.sshAccess: Disabled`); encryption at
  host when asked (needs the subscription's Microsoft.Compute/EncryptionAtHost feature).
- The agent pool name is fixed (AKS names a pool by it, at most 12 lower-case letters and digits), so a
  change that replaces the pool deletes the old one first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_azure_native.containerservice as containerservice

from components._common import NVIDIA_DEVICE_PLUGIN, child, helm_release, reject_invalid_args
from components.choices import AzureOsDiskType, CapacityType, GpuDriverStack, TaintEffect
from components.clusters.azure.gpu_vm_sizes import AZURE_GPU_VM_SIZES, find_vm_size
from components.gpu_node_pool import (
    DEFAULT_GPU_RESOURCE,
    DEFAULT_TAINTS,
    DEVICE_PLUGIN_NAMESPACE,
    POOL_LABEL,
    GpuNodePoolArgs,
    Taint,
    cloud_pool_label_problems,
    device_plugin_values,
    tolerations_for,
)

#: AKS needs a value on a node taint; value-less taints (tolerated with Exists) get nvidia.com/gpu=present.
DEFAULT_TAINT_VALUE = "present"
#: What AKS puts on every node of a spot pool ("Add an Azure Spot node pool", Limitations).
SPOT_PRIORITY_KEY = "kubernetes.azure.com/scalesetpriority"
SPOT_TAINT = Taint(SPOT_PRIORITY_KEY, "spot", TaintEffect.NO_SCHEDULE)
SPOT_LABEL = {SPOT_PRIORITY_KEY: "spot"}
#: -1: pay up to the on-demand price; the VM is never evicted for price, only for capacity.
SPOT_MAX_PRICE = -1.0
MIN_OS_DISK_GIB = 128  # the vLLM image is many GB compressed and more unpacked; the model cache comes on top
MAX_OS_DISK_GIB = 2048  # the largest OS disk Azure allows
MAX_SURGE = "0"
MAX_UNAVAILABLE = "1"
# Azure CNI (overlay) allows 10-250 pods per node (AKS "Configure Azure CNI Overlay networking").
MIN_PODS, MAX_PODS = 10, 250
#: AKS allows a user pool 0 to 1000 nodes (AgentPool `count`, API 2025-09-01).
MAX_NODES = 1000

# AKS: "Linux agent pool names must be 1-12 characters ... lowercase letters and numbers, start with a letter".
_AGENT_POOL_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
# The component's name is the value of POOL_LABEL on every node (a DNS label keeps it a valid label value).
_POOL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_ZONE = re.compile(r"^[1-3]$")
# Label domains Kubernetes and AKS keep for themselves (AKS rejects kubernetes.azure.com labels it does not own).
_RESERVED_LABEL_DOMAINS = ("kubernetes.io", "k8s.io", "kubernetes.azure.com")


@dataclass(frozen=True, kw_only=True)
class AzureGpuNodePoolArgs:
    """GPU nodes for one AKS cluster."""

    resource_group_name: pulumi.Input[str]  # the cluster's resource group
    cluster_name: pulumi.Input[str]  # the managed cluster's name
    agent_pool_name: str = "gpu"  # AKS's name for the pool: 1-12 lower-case letters and digits
    vm_size: str  # a key of AZURE_GPU_VM_SIZES (any case)
    max_nodes: int  # most nodes (autoscaler maxCount): the spend cap
    capacity_type: CapacityType = (
        CapacityType.ON_DEMAND
    )  # on-demand, or spot (cheaper, evicted at 30 s notice)
    zones: list[str] = field(
        default_factory=list
    )  # availability zones "1".."3" with this size; empty: regional
    vnet_subnet_id: pulumi.Input[str] | None = None  # the node subnet; None: the cluster's default
    orchestrator_version: str | None = None  # the cluster's Kubernetes version; None: the control plane's
    os_disk_gib: int = 256  # OS disk: OS, images and the model cache (emptyDir on the OS disk)
    os_disk_type: AzureOsDiskType = AzureOsDiskType.MANAGED
    max_pods: int = 30  # pods per node; a GPU node runs the model server and a few DaemonSets
    encryption_at_host: bool = False  # encrypt temp and cache disks at the host (subscription feature needed)
    taints: list[Taint] = field(default_factory=lambda: list(DEFAULT_TAINTS))  # put on every node
    labels: dict[str, str] = field(default_factory=dict)  # extra Kubernetes node labels (POOL_LABEL is set)
    tags: dict[str, str] = field(default_factory=dict)  # Azure tags on the pool's scale set
    values: dict[str, Any] = field(default_factory=dict)  # escape hatch: device plugin chart values over ours


def validate_pool_name(name: str) -> list[str]:
    """The component's name is the pool label's value on every node."""
    if _POOL_NAME.match(name):
        return []
    return [
        f"name: {name!r} must be a DNS label (lower-case letters, digits, '-', at most 63) for the pool label"
    ]


def validate_azure_gpu_node_pool_args(args: AzureGpuNodePoolArgs) -> list[str]:
    """Every problem with the args, each naming the field; empty when they are usable."""
    problems: list[str] = []
    found = find_vm_size(args.vm_size) if isinstance(args.vm_size, str) else None
    if found is None:
        problems.append(
            f"vm_size: {args.vm_size!r} is not a GPU VM size we accept; use one of "
            f"{', '.join(sorted(AZURE_GPU_VM_SIZES))}"
        )
    if not _AGENT_POOL_NAME.match(args.agent_pool_name):
        problems.append(
            f"agent_pool_name: {args.agent_pool_name!r} must be 1-12 lower-case letters and digits, starting "
            "with a letter (AKS's rule for Linux node pools)"
        )
    if not isinstance(args.capacity_type, CapacityType):
        problems.append(f"capacity_type: {args.capacity_type!r} is not one of {', '.join(CapacityType)}")
    if args.max_nodes < 1:
        problems.append(f"max_nodes: {args.max_nodes} would let the pool hold no node; give 1 or more")
    elif args.max_nodes > MAX_NODES:
        problems.append(f"max_nodes: {args.max_nodes} is above AKS's {MAX_NODES} nodes per pool")

    for zone in args.zones:
        if not _ZONE.match(str(zone)):
            problems.append(f"zones: {zone!r} is not an Azure availability zone; use '1', '2' or '3'")
    if len(set(args.zones)) != len(args.zones):
        problems.append("zones: a zone is listed twice; list each once")

    if not isinstance(args.os_disk_type, AzureOsDiskType):
        problems.append(f"os_disk_type: {args.os_disk_type!r} is not one of {', '.join(AzureOsDiskType)}")
    if args.os_disk_gib < MIN_OS_DISK_GIB:
        problems.append(
            f"os_disk_gib: {args.os_disk_gib} GiB cannot hold the OS, the serving image and a model cache; "
            f"give {MIN_OS_DISK_GIB} or more"
        )
    elif args.os_disk_gib > MAX_OS_DISK_GIB:
        problems.append(f"os_disk_gib: {args.os_disk_gib} GiB is above Azure's {MAX_OS_DISK_GIB} GiB OS disk")
    elif args.os_disk_type is AzureOsDiskType.EPHEMERAL and found is not None:
        known, size = found
        if args.os_disk_gib > size.temp_disk_gib:
            problems.append(
                f"os_disk_gib: an Ephemeral OS disk lives on the VM's temp disk, and {known} has "
                f"{size.temp_disk_gib} GiB; lower os_disk_gib or use os_disk_type Managed"
            )
    if not MIN_PODS <= args.max_pods <= MAX_PODS:
        problems.append(
            f"max_pods: {args.max_pods} is outside Azure CNI's {MIN_PODS}-{MAX_PODS} pods per node"
        )

    problems.extend(
        cloud_pool_label_problems(args.labels, args.taints, _RESERVED_LABEL_DOMAINS, "Kubernetes or AKS")
    )
    for i, taint in enumerate(args.taints):
        if taint.key == SPOT_PRIORITY_KEY:
            problems.append(
                f"taints[{i}]: {SPOT_PRIORITY_KEY} is AKS's spot taint; set capacity_type spot instead"
            )
    return problems


def aks_taint(taint: Taint) -> str:
    """A node taint as AKS writes it: key=value:Effect."""
    value = taint.value if taint.value is not None else DEFAULT_TAINT_VALUE
    return f"{taint.key}={value}:{taint.effect.value}"


def node_taints(args: AzureGpuNodePoolArgs) -> list[Taint]:
    """Every taint a node of the pool carries: ours, and AKS's own on spot pools."""
    spot = [SPOT_TAINT] if args.capacity_type is CapacityType.SPOT else []
    return [*args.taints, *spot]


def node_labels(name: str, args: AzureGpuNodePoolArgs) -> dict[str, str]:
    spot = SPOT_LABEL if args.capacity_type is CapacityType.SPOT else {}
    return {**args.labels, **spot, POOL_LABEL: name}


def agent_pool_inputs(name: str, args: AzureGpuNodePoolArgs) -> dict[str, Any]:
    """The AgentPool's inputs (pulumi-azure-native keyword arguments), without the cluster reference."""
    found = find_vm_size(args.vm_size)
    assert found is not None  # validated
    spot = args.capacity_type is CapacityType.SPOT
    inputs: dict[str, Any] = {
        "agent_pool_name": args.agent_pool_name,
        "mode": containerservice.AgentPoolMode.USER,
        "type": containerservice.AgentPoolType.VIRTUAL_MACHINE_SCALE_SETS,
        "vm_size": found[0],
        "os_type": containerservice.OSType.LINUX,
        "os_sku": containerservice.OSSKU.UBUNTU,
        "os_disk_type": args.os_disk_type.value,
        "os_disk_size_gb": args.os_disk_gib,
        "kubelet_disk_type": containerservice.KubeletDiskType.OS,
        "max_pods": args.max_pods,
        "enable_auto_scaling": True,
        "count": 0,
        "min_count": 0,
        "max_count": args.max_nodes,
        "scale_down_mode": containerservice.ScaleDownMode.DELETE,
        "node_taints": [aks_taint(t) for t in node_taints(args)],
        "node_labels": node_labels(name, args),
        "enable_node_public_ip": False,
        "enable_encryption_at_host": args.encryption_at_host,
        "gpu_profile": containerservice.GPUProfileArgs(driver=containerservice.GPUDriver.INSTALL),
        "security_profile": containerservice.AgentPoolSecurityProfileArgs(
            ssh_access=containerservice.AgentPoolSSHAccess.DISABLED
        ),
        "upgrade_settings": containerservice.AgentPoolUpgradeSettingsArgs(
            max_surge=MAX_SURGE, max_unavailable=MAX_UNAVAILABLE
        ),
        "scale_set_priority": (
            containerservice.ScaleSetPriority.SPOT if spot else containerservice.ScaleSetPriority.REGULAR
        ),
        "tags": dict(args.tags),
    }
    if spot:
        inputs["scale_set_eviction_policy"] = containerservice.ScaleSetEvictionPolicy.DELETE
        inputs["spot_max_price"] = SPOT_MAX_PRICE
    if args.zones:
        inputs["availability_zones"] = list(args.zones)
    if args.vnet_subnet_id is not None:
        inputs["vnet_subnet_id"] = args.vnet_subnet_id
    if args.orchestrator_version is not None:
        inputs["orchestrator_version"] = args.orchestrator_version
    return inputs


class AzureGpuNodePool(pulumi.ComponentResource):
    """An AKS GPU node pool (AKS-managed driver, NVIDIA device plugin, autoscaled from zero) and how to
    schedule onto it. The device plugin needs the cluster's Kubernetes provider in `opts.providers`."""

    node_selector: dict[str, str]
    tolerations: list[dict[str, str]]
    gpu_resource_name: str
    agent_pool: containerservice.AgentPool

    def __init__(
        self, name: str, args: AzureGpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        reject_invalid_args(
            "AzureGpuNodePool", name, validate_pool_name(name) + validate_azure_gpu_node_pool_args(args)
        )
        super().__init__("inferstack:azure:AzureGpuNodePool", name, None, opts)

        self.node_selector = {POOL_LABEL: name}
        self.tolerations = tolerations_for(node_taints(args))
        self.gpu_resource_name = DEFAULT_GPU_RESOURCE

        # A fixed agent pool name: AKS cannot hold two pools of one name, so a replacement deletes first.
        self.agent_pool = containerservice.AgentPool(
            f"{name}-pool",
            resource_group_name=args.resource_group_name,
            resource_name_=args.cluster_name,
            **agent_pool_inputs(name, args),
            # The cluster autoscaler owns `count` once the pool exists: sending the creation count again on a
            # later update would scale a busy pool down, or be refused while autoscaling is on.
            opts=child(self, delete_before_replace=True, ignore_changes=["count"]),
        )

        helm_release(
            f"{name}-device-plugin",
            NVIDIA_DEVICE_PLUGIN,
            namespace=DEVICE_PLUGIN_NAMESPACE,
            values=self.device_plugin_values(args),
            extra_values=args.values,
            opts=child(self),
        )

        self.register_outputs(
            {
                "agent_pool_name": args.agent_pool_name,
                "node_selector": self.node_selector,
                "gpu_resource_name": self.gpu_resource_name,
            }
        )

    def device_plugin_values(self, args: AzureGpuNodePoolArgs) -> dict[str, Any]:
        """The on-prem flavour's device plugin values, pinned to this pool's label and every taint its
        nodes carry (the spot taint too)."""
        return device_plugin_values(
            GpuNodePoolArgs(
                driver_stack=GpuDriverStack.DEVICE_PLUGIN,
                node_selector=self.node_selector,
                taints=node_taints(args),
            )
        )
