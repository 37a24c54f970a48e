"""GcpGpuNodePool: a GKE Standard node pool of GPU machines that only GPU workloads land on.

Like the other flavours it hands the model server the three `GpuPlacement` attributes (node selector,
tolerations, GPU resource name), and like the AWS one it makes the nodes, so it decides their labels and
taints: every node carries `inferstack.io/gpu-pool: <name>` and, by default, `nvidia.com/gpu:NoSchedule`.

What GKE does for us and what we choose:

- Driver and device plugin: `gpu_driver_installation_config` makes GKE install the NVIDIA driver
  (DEFAULT or LATEST for the node's GKE version) and run its own device plugin, so the nodes advertise
  `nvidia.com/gpu` with no chart of ours.
- Elastic: the cluster autoscaler keeps the pool between `min_nodes` and `max_nodes` in total across its
  zones; with `min_nodes` 0 an idle pool costs nothing. Spot pools scale with location policy ANY (take
  capacity wherever it is, which also lowers preemption risk); on-demand pools with BALANCED (spread
  across zones).
- Spot: GKE gives pods about 15 s to stop when a Spot VM is reclaimed, too short to drain streaming
  answers, so production stacks default to on-demand.
- Upgrades: surge with max_surge 0 and max_unavailable 1. A surge GPU node would need spare GPU quota and
  stock in the zone (the scarcest thing in the stack, and billed alongside the old node), and an upgrade
  that cannot get one waits. With 0/1 GKE drains one node at a time, honouring the model server's
  PodDisruptionBudget (for up to an hour), and the cluster autoscaler brings up a replacement for the evicted pods if
  `max_nodes` leaves headroom; a pool at its maximum runs one node short during an upgrade.
- Model cache and images on local SSD: machines that come with local SSDs (A2 Ultra, A3) get them as
  ephemeral storage (emptyDir, container images, kubelet), far faster than the boot disk. We pass the
  exact bundled count: GKE reads 0 as "all bundled disks" on machines with a fixed count and "none" on
  machines with a flexible one, and the exact count means the same on both. Machines with no bundled SSD
  (G2, A2 Standard) keep ephemeral storage on the boot disk; we attach no extra SSDs there.
- Hardening: COS with containerd, Shielded VM (secure boot, integrity monitoring), GKE metadata server
  (Workload Identity; pods never see the node's credentials), legacy metadata endpoints off, gVNIC,
  image streaming on (for images in Artifact Registry; ai-on-gke measured a 5.4 GB image starting in 30 s
  instead of 191 s), the given node service account with the cloud-platform scope (IAM, not scopes,
  decides what it may do).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp as gcp

from components._common import child, reject_invalid_args
from components.choices import CapacityType, GpuDriverVersion, TaintEffect
from components.clusters.gcp.gpu_machines import GCP_GPU_MACHINES
from components.gpu_node_pool import (
    DEFAULT_GPU_RESOURCE,
    DEFAULT_TAINTS,
    POOL_LABEL,
    Taint,
    cloud_pool_label_problems,
    tolerations_for,
)

#: The node image: Container-Optimized OS with containerd (GKE's GPU driver installation supports it).
IMAGE_TYPE = "COS_CONTAINERD"
#: The scope GKE recommends with a dedicated node service account: IAM roles decide what it can do.
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: GKE needs a value on a node taint; value-less taints (tolerated with Exists) get the one GKE itself
#: puts on GPU nodes, nvidia.com/gpu=present.
DEFAULT_TAINT_VALUE = "present"
MIN_DISK_GIB = 100  # the vLLM image is many GB compressed and more unpacked; the model cache may come on top
MAX_SURGE = 0
MAX_UNAVAILABLE = 1

_TAINT_EFFECT = {
    TaintEffect.NO_SCHEDULE: "NO_SCHEDULE",
    TaintEffect.PREFER_NO_SCHEDULE: "PREFER_NO_SCHEDULE",
    TaintEffect.NO_EXECUTE: "NO_EXECUTE",
}
_LOCATION_POLICY = {CapacityType.SPOT: "ANY", CapacityType.ON_DEMAND: "BALANCED"}

_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_ZONE = re.compile(r"^([a-z]+-[a-z]+[0-9]+)-[a-z]$")
# The pool's name is the value of POOL_LABEL on every node: a DNS label keeps it a valid label value and a
# valid Kubernetes name wherever it is reused.
_POOL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Label domains Kubernetes and GKE keep for themselves; node.kubernetes.io and
# node-restriction.kubernetes.io are the documented exceptions.
_RESERVED_LABEL_DOMAINS = ("kubernetes.io", "k8s.io", "cloud.google.com", "gke.io")


@dataclass(frozen=True, kw_only=True)
class GcpGpuNodePoolArgs:
    """GPU nodes for one GKE Standard cluster."""

    cluster: pulumi.Input[str]  # the cluster's id or name
    project: str  # the cluster's project
    location: str  # the cluster's location (region or zone)
    node_zones: list[str]  # zones with this accelerator in stock; empty: the cluster's node zones
    machine_type: str  # a key of GCP_GPU_MACHINES
    capacity_type: CapacityType  # on-demand, or spot (cheaper; ~15 s notice before reclaim)
    max_nodes: int  # most nodes across all zones (total_max_node_count): the spend cap
    min_nodes: int = 0  # fewest nodes across all zones (total_min_node_count); 0 lets the pool scale to zero
    service_account_email: pulumi.Input[str]  # the nodes' service account (least privilege, not Compute's)
    disk_gib: int = 200  # boot disk: OS, images and (without local SSDs) the model cache
    driver_version: GpuDriverVersion = GpuDriverVersion.LATEST  # which NVIDIA driver GKE installs
    local_ssd_cache: bool = True  # ephemeral storage (model cache emptyDir, images) on bundled local SSDs
    taints: list[Taint] = field(default_factory=lambda: list(DEFAULT_TAINTS))  # put on every node
    labels: dict[str, str] = field(default_factory=dict)  # extra Kubernetes node labels (POOL_LABEL is set)


def region_of(location: str) -> str | None:
    """The region of a region or zone name; None when it is neither."""
    if _REGION.match(location):
        return location
    zone = _ZONE.match(location)
    return zone.group(1) if zone else None


def validate_gcp_gpu_node_pool_args(args: GcpGpuNodePoolArgs) -> list[str]:
    """Every problem with the args, each naming the field; empty when they are usable."""
    problems: list[str] = []
    machine = GCP_GPU_MACHINES.get(args.machine_type)
    if machine is None:
        problems.append(
            f"machine_type: {args.machine_type!r} is not a GPU machine type we know; use one of "
            f"{', '.join(sorted(GCP_GPU_MACHINES))}"
        )
    if not isinstance(args.capacity_type, CapacityType):
        problems.append(f"capacity_type: {args.capacity_type!r} is not one of {', '.join(CapacityType)}")
    if not isinstance(args.driver_version, GpuDriverVersion):
        problems.append(
            f"driver_version: {args.driver_version!r} is not one of {', '.join(GpuDriverVersion)}"
        )

    if args.min_nodes < 0:
        problems.append(f"min_nodes: {args.min_nodes} is negative; give 0 (scale to zero) or more")
    if args.max_nodes < 1:
        problems.append(f"max_nodes: {args.max_nodes} would let the pool hold no node; give 1 or more")
    elif args.max_nodes < args.min_nodes:
        problems.append(
            f"max_nodes: {args.max_nodes} is below min_nodes {args.min_nodes}; raise max_nodes or lower min_nodes"
        )

    if not args.project:
        problems.append("project: the cluster's project id is required")
    region = region_of(args.location) if isinstance(args.location, str) else None
    if isinstance(args.location, str) and region is None:
        problems.append(
            f"location: {args.location!r} is neither a region (us-central1) nor a zone (us-central1-a)"
        )
    for zone in args.node_zones:
        match = _ZONE.match(zone)
        if match is None:
            problems.append(f"node_zones: {zone!r} is not a zone name (e.g. us-central1-a)")
        elif region is not None and match.group(1) != region:
            problems.append(
                f"node_zones: {zone} is not in the cluster's region {region}; GKE places a pool's nodes in "
                "its cluster's region only"
            )
    if len(set(args.node_zones)) != len(args.node_zones):
        problems.append("node_zones: a zone is listed twice; list each once")

    if args.disk_gib < MIN_DISK_GIB:
        problems.append(
            f"disk_gib: {args.disk_gib} GiB cannot hold the OS and the serving image; give {MIN_DISK_GIB} or more"
        )

    problems.extend(
        cloud_pool_label_problems(args.labels, args.taints, _RESERVED_LABEL_DOMAINS, "Kubernetes or GKE")
    )
    return problems


def validate_pool_name(name: str) -> list[str]:
    """The component's name is the pool label's value on every node."""
    if _POOL_NAME.match(name):
        return []
    return [
        f"name: {name!r} must be a DNS label (lower-case letters, digits, '-', at most 63) for the pool label"
    ]


def gke_taints(taints: list[Taint]) -> list[dict[str, str]]:
    """Node taints as GKE's API writes them."""
    return [
        {
            "key": taint.key,
            "value": taint.value if taint.value is not None else DEFAULT_TAINT_VALUE,
            "effect": _TAINT_EFFECT[taint.effect],
        }
        for taint in taints
    ]


def node_labels(name: str, args: GcpGpuNodePoolArgs) -> dict[str, str]:
    return {**args.labels, POOL_LABEL: name}


def local_ssd_count(args: GcpGpuNodePoolArgs) -> int:
    """Local SSDs backing ephemeral storage: the machine's bundled count when asked for, else none."""
    machine = GCP_GPU_MACHINES[args.machine_type]
    return machine.local_ssds if args.local_ssd_cache else 0


def node_config(name: str, args: GcpGpuNodePoolArgs) -> dict[str, Any]:
    """The pool's node_config (pulumi-gcp's NodePoolNodeConfigArgs as a dict)."""
    machine = GCP_GPU_MACHINES[args.machine_type]
    config: dict[str, Any] = {
        "machine_type": args.machine_type,
        "image_type": IMAGE_TYPE,
        "disk_size_gb": args.disk_gib,
        "disk_type": machine.boot_disk_type,
        "guest_accelerators": [
            {
                "type": machine.accelerator,
                "count": machine.count,
                "gpu_driver_installation_config": {"gpu_driver_version": args.driver_version.value},
            }
        ],
        "spot": args.capacity_type is CapacityType.SPOT,
        "service_account": args.service_account_email,
        "oauth_scopes": [CLOUD_PLATFORM_SCOPE],
        "labels": node_labels(name, args),
        "taints": gke_taints(args.taints),
        "metadata": {"disable-legacy-endpoints": "true"},
        "shielded_instance_config": {"enable_secure_boot": True, "enable_integrity_monitoring": True},
        "workload_metadata_config": {"mode": "GKE_METADATA"},
        "gcfs_config": {"enabled": True},
        # gVNIC: GKE's documented way to raise GPU nodes' network bandwidth (image and weight pulls).
        "gvnic": {"enabled": True},
    }
    ssds = local_ssd_count(args)
    if ssds:
        config["ephemeral_storage_local_ssd_config"] = {"local_ssd_count": ssds}
    return config


class GcpGpuNodePool(pulumi.ComponentResource):
    """A GKE GPU node pool (driver and device plugin by GKE, autoscaled) and how to schedule onto it."""

    node_selector: dict[str, str]
    tolerations: list[dict[str, str]]
    gpu_resource_name: str
    node_pool: gcp.container.NodePool

    def __init__(
        self, name: str, args: GcpGpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        reject_invalid_args(
            "GcpGpuNodePool", name, validate_pool_name(name) + validate_gcp_gpu_node_pool_args(args)
        )
        super().__init__("inferstack:gcp:GcpGpuNodePool", name, None, opts)

        self.node_selector = {POOL_LABEL: name}
        self.tolerations = tolerations_for(args.taints)
        self.gpu_resource_name = DEFAULT_GPU_RESOURCE

        # No fixed name: GKE node pool settings mostly force a replacement, and an auto-named pool lets
        # Pulumi create the new one before deleting the old. No initial_node_count: the autoscaler owns the
        # size, and a value here would be read back as drift after every scale.
        self.node_pool = gcp.container.NodePool(
            f"{name}-pool",
            cluster=args.cluster,
            project=args.project,
            location=args.location,
            node_locations=list(args.node_zones) or None,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                total_min_node_count=args.min_nodes,
                total_max_node_count=args.max_nodes,
                location_policy=_LOCATION_POLICY[args.capacity_type],
            ),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            upgrade_settings=gcp.container.NodePoolUpgradeSettingsArgs(
                strategy="SURGE", max_surge=MAX_SURGE, max_unavailable=MAX_UNAVAILABLE
            ),
            node_config=gcp.container.NodePoolNodeConfigArgs(**node_config(name, args)),
            opts=child(self),
        )

        self.register_outputs(
            {
                "node_pool_name": self.node_pool.name,
                "node_selector": self.node_selector,
                "gpu_resource_name": self.gpu_resource_name,
            }
        )
