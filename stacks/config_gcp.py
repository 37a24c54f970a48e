"""The `inferstack:gcp` section of a stack file, and the rules that tie it to the rest of the stack.

Only read when `platform: gcp`. Defaults are the production-safe ones (a regional cluster, no public IP
endpoint, an internal load balancer, on-demand GPUs, a bucket kept on destroy, deletion protection on); a
dev stack file relaxes what it needs.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from components.address_space import internet_exposure
from components.choices import (
    CapacityType,
    Dns01Provider,
    Engine,
    GcpLoadBalancerScheme,
    GkeReleaseChannel,
    GpuDriverVersion,
    TlsMode,
)
from components.clusters.gcp.gpu_machines import GCP_GPU_MACHINES
from stacks.config_base import (
    NODE_DISK_OVERHEAD_GIB,
    Section,
    parse_cidrs,
    pool_gpus_with_surge,
    quantity_bytes,
)

if TYPE_CHECKING:
    from stacks.config import StackConfig

#: A local SSD's size on GCP (GB); a GPU machine's bundled SSDs hold the model cache when there are some.
LOCAL_SSD_GB = 375
#: How long GKE gives a Spot node's pods to stop before the VM goes (GKE's documented default).
GKE_SPOT_SHUTDOWN_SECONDS = 15

_PROJECT = r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"
_REGION = r"^[a-z]+-[a-z]+[0-9]+$"
_ZONE = re.compile(r"^([a-z]+-[a-z]+[0-9]+)-[a-z]$")
_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9]*-[a-z0-9-]+$")


def _zones(zones: list[str]) -> list[str]:
    bad = [z for z in zones if not _ZONE.match(z)]
    if bad:
        raise ValueError(f"{', '.join(bad)}: not a GCP zone (e.g. europe-west4-a)")
    return zones


class GcpNetworkConfig(Section):
    subnet_cidr: str = Field("10.0.0.0/20", description="the subnet's primary range: nodes, internal LBs")
    pods_cidr: str = Field("10.16.0.0/14", description="secondary range for pods (VPC-native)")
    services_cidr: str = Field("10.20.0.0/20", description="secondary range for Services")
    control_plane_cidr: str = Field(
        "172.16.0.0/28", description="the GKE control plane's private /28 (must not overlap the others)"
    )

    @field_validator("subnet_cidr", "pods_cidr", "services_cidr", "control_plane_cidr")
    @classmethod
    def _cidr(cls, cidr: str) -> str:
        return parse_cidrs([cidr])[0]


class GcpApiEndpointConfig(Section):
    public_access_cidrs: list[str] = Field(
        default_factory=list,
        description="networks allowed to the public IP endpoint; empty = no public IP endpoint. Measured like "
        "aws.api_endpoint.public_access_cidrs: more public addresses than a /8 (IPv6: a /16) is refused",
    )
    private_access_cidrs: list[str] = Field(
        default_factory=list,
        description="networks (VPN, CI runners) allowed to the private endpoint",
    )
    dns_endpoint: bool = Field(
        True,
        description="the DNS endpoint (reachable anywhere, every call IAM-checked): how `pulumi up` reaches "
        "a cluster without a public IP endpoint",
    )

    @field_validator("public_access_cidrs", "private_access_cidrs")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        return parse_cidrs(cidrs)


class GcpSystemNodesConfig(Section):
    machine_type: str = Field(
        "e2-standard-4", pattern=_MACHINE_TYPE.pattern, description="system pool (controllers, gateway)"
    )
    min_per_zone: int = Field(1, ge=1, le=20, description="fewest system nodes per zone")
    max_per_zone: int = Field(3, ge=1, le=20, description="most system nodes per zone")
    disk_gib: int = Field(50, ge=20, le=1000, description="boot disk per system node")


class GcpGpuNodesConfig(Section):
    machine_type: str = Field(
        "g2-standard-8",
        description="GPU machine type (g2: L4, a2: A100, a3: H100/H200); one replica per machine",
    )
    zones: list[str] = Field(
        default_factory=list,
        description="zones that have the accelerator (GPU stock differs per zone); empty = the cluster's",
    )
    capacity_type: CapacityType = Field(
        CapacityType.ON_DEMAND,
        description=f"on-demand or spot (spot: ~60-90% cheaper, {GKE_SPOT_SHUTDOWN_SECONDS} s to stop)",
    )
    gpu_limit: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="most GPUs the pool may hold; default: (max_replicas + 1) x gpus_per_replica, the extra replica for a rolling update's surge pod (below that, updates replace one replica at a time)",
    )
    disk_gib: int = Field(
        200, ge=100, le=65536, description="boot disk: image + model cache without local SSD"
    )
    driver_version: GpuDriverVersion = Field(
        GpuDriverVersion.LATEST,
        description="NVIDIA driver GKE installs: LATEST or DEFAULT for the node version",
    )
    local_ssd_cache: bool = Field(
        True, description="put the model cache and images on the machine's local SSDs where it has them"
    )

    @field_validator("machine_type")
    @classmethod
    def _known_machine(cls, machine: str) -> str:
        if machine not in GCP_GPU_MACHINES:
            families = sorted({m.split("-", 1)[0] for m in GCP_GPU_MACHINES})
            raise ValueError(
                f"{machine!r} is not an NVIDIA GPU machine type we know; use one of the "
                f"{', '.join(families)} types, e.g. g2-standard-8 (1 x L4) or a3-highgpu-1g (1 x H100)"
            )
        return machine

    @field_validator("zones")
    @classmethod
    def _zone_names(cls, zones: list[str]) -> list[str]:
        return _zones(zones)


class GcpModelStoreConfig(Section):
    create_bucket: bool = Field(
        True, description="create the gs:// bucket of model.uri (private, versioned); false: it exists"
    )
    cmek: bool = Field(False, description="encrypt the created bucket with a Cloud KMS key the stack makes")
    kms_key_name: str | None = Field(
        None,
        pattern=r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$",
        description="encrypt the created bucket with this existing Cloud KMS key instead",
    )
    force_destroy: bool = Field(
        False, description="let `pulumi destroy` delete a bucket that still holds weights"
    )


class GcpConfig(Section):
    project: str = Field(..., pattern=_PROJECT, description="GCP project id (APIs are enabled in it)")
    region: str = Field(..., pattern=_REGION, description="GCP region, e.g. europe-west4")
    regional: bool = Field(
        True, description="a regional cluster (3 control-plane replicas, nodes in 3 zones); false: zonal"
    )
    zones: list[str] = Field(
        default_factory=list,
        description="zones of the system nodes (zonal: the first is the cluster's); empty = GKE's choice",
    )
    release_channel: GkeReleaseChannel = Field(
        GkeReleaseChannel.REGULAR, description="GKE upgrade channel; cluster.kubernetes_version is the floor"
    )
    deletion_protection: bool = Field(
        True, description="GKE refuses to delete the cluster; set false (and `pulumi up`) before destroy"
    )
    network: GcpNetworkConfig = Field(default_factory=GcpNetworkConfig)  # type: ignore[arg-type]
    api_endpoint: GcpApiEndpointConfig = Field(default_factory=GcpApiEndpointConfig)  # type: ignore[arg-type]
    system_nodes: GcpSystemNodesConfig = Field(default_factory=GcpSystemNodesConfig)  # type: ignore[arg-type]
    gpu_nodes: GcpGpuNodesConfig = Field(default_factory=GcpGpuNodesConfig)  # type: ignore[arg-type]
    model_store: GcpModelStoreConfig = Field(default_factory=GcpModelStoreConfig)  # type: ignore[arg-type]
    load_balancer_scheme: GcpLoadBalancerScheme = Field(
        GcpLoadBalancerScheme.INTERNAL, description="the gateway's L4 load balancer: internal or external"
    )
    dns_zone: str | None = Field(
        None,
        pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="a Cloud DNS managed zone in the project: an A record for gateway.hostname goes there",
    )

    @field_validator("zones")
    @classmethod
    def _zone_names(cls, zones: list[str]) -> list[str]:
        return _zones(zones)

    @property
    def location(self) -> str:
        """Where the cluster lives: the region, or one zone for a zonal cluster."""
        if self.regional:
            return self.region
        return self.zones[0] if self.zones else f"{self.region}-a"


def gcp_gpu_limit(cfg: StackConfig) -> int:
    """The pool's GPU ceiling: the configured one, or max_replicas + 1 replicas' GPUs (of every model).

    The extra replica is room for a rolling update's surge pod at max_replicas (stacks/rollout.py); the
    autoscaler never asks for more than max_replicas, so only a rollout uses it, for as long as it runs.
    """
    assert cfg.gcp is not None
    return cfg.gcp.gpu_nodes.gpu_limit or pool_gpus_with_surge(cfg)


def gcp_max_gpu_nodes(cfg: StackConfig) -> int:
    """GPU machines the pool may grow to: the GPU ceiling in whole machines.

    With several models on the pool and no gpu_limit, one machine per replica (replicas of different
    models do not share a machine's CPU and memory reliably; the cost estimate assumes the same), each
    model at max_replicas plus one surge replica: sum of (max_replicas + 1) x ceil(gpus_per_replica /
    GPUs per machine)."""
    assert cfg.gcp is not None
    if len(cfg.served) > 1 and not cfg.gcp.gpu_nodes.gpu_limit:
        return max(
            1,
            sum(
                (v.config.autoscaling.max_replicas + 1) * machines_per_replica(cfg, v.config)
                for v in cfg.served
                if v.config.uses_gpu
            ),
        )
    per_machine = GCP_GPU_MACHINES[cfg.gcp.gpu_nodes.machine_type].count
    return max(1, math.ceil(gcp_gpu_limit(cfg) / per_machine))


def machines_per_replica(cfg: StackConfig, model: StackConfig) -> int:
    """Machines of the stack's GPU pool one replica of `model` (a model or variant of cfg.served) takes
    when each replica gets machines of its own: its GPUs over the machine type's, rounded up."""
    assert cfg.gcp is not None
    return math.ceil(model.serving.gpus_per_replica / GCP_GPU_MACHINES[cfg.gcp.gpu_nodes.machine_type].count)


def gcp_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Rules between the gcp section and the rest of the stack. (field path, message with the fix)."""
    from stacks.config import Platform, Tier

    problems: list[tuple[str, str]] = []
    if cfg.platform is not Platform.GCP:
        if cfg.gcp is not None:
            problems.append(
                ("gcp", f"only used with platform gcp (this stack is {cfg.platform.value}): remove it")
            )
        return problems
    if cfg.gcp is None:
        return [("gcp", "platform gcp needs a gcp section with at least project and region")]

    gcp, prod = cfg.gcp, cfg.tier is Tier.PROD
    nodes = gcp.gpu_nodes
    if prod and not gcp.regional:
        problems.append(
            (
                "gcp.regional",
                "a prod stack runs a regional cluster, so a zone outage or a control-plane upgrade keeps the "
                "endpoint up: remove regional: false",
            )
        )
    foreign = [z for z in [*gcp.zones, *nodes.zones] if not z.startswith(gcp.region + "-")]
    if foreign:
        problems.append(("gcp.zones", f"{', '.join(foreign)} not in region {gcp.region}: use its zones"))
    net = gcp.network
    ranges = {
        "subnet_cidr": net.subnet_cidr,
        "pods_cidr": net.pods_cidr,
        "services_cidr": net.services_cidr,
        "control_plane_cidr": net.control_plane_cidr,
    }
    problems.extend(_overlaps(ranges))
    if not net.control_plane_cidr.endswith("/28"):
        problems.append(("gcp.network.control_plane_cidr", "GKE's control plane range is a /28"))
    # Measured, not compared with "0.0.0.0/0": [0.0.0.0/1, 128.0.0.0/1] is the same internet.
    for field_name in ("public_access_cidrs", "private_access_cidrs"):
        exposure = internet_exposure(getattr(gcp.api_endpoint, field_name))
        if exposure:
            problems.append(
                (
                    f"gcp.api_endpoint.{field_name}",
                    f"opens the Kubernetes API to the internet: the list {exposure}; list your own networks"
                    + (
                        ", or leave it empty (the DNS endpoint still lets `pulumi up` in, through IAM)"
                        if field_name.startswith("public")
                        else ""
                    ),
                )
            )
    endpoint = gcp.api_endpoint
    if not (endpoint.public_access_cidrs or endpoint.dns_endpoint or endpoint.private_access_cidrs):
        problems.append(
            (
                "gcp.api_endpoint.dns_endpoint",
                "with no public IP endpoint, no DNS endpoint and no private_access_cidrs nothing outside the "
                "cluster reaches the API, `pulumi up` included: keep dns_endpoint: true or list your VPN",
            )
        )
    if gcp.system_nodes.min_per_zone > gcp.system_nodes.max_per_zone:
        problems.append(("gcp.system_nodes.min_per_zone", "is above max_per_zone: lower it or raise max"))

    problems.extend(_model_store_problems(cfg))

    if "kind" in cfg.gateway.load_balancer.model_fields_set:
        problems.append(
            (
                "gateway.load_balancer.kind",
                "on GCP the gateway is a GKE passthrough Network Load Balancer: remove kind "
                "(gcp.load_balancer_scheme picks internal or external)",
            )
        )
    dns01 = cfg.tls.acme.dns01
    if cfg.tls.mode is TlsMode.ACME and dns01 is not None:
        if dns01.provider is Dns01Provider.ROUTE53:
            problems.append(("tls.acme.dns01.provider", "route53 is AWS's: use clouddns on GCP"))
        if dns01.provider is Dns01Provider.CLOUDDNS and not (dns01.clouddns_hosted_zone_name or gcp.dns_zone):
            problems.append(
                (
                    "tls.acme.dns01.clouddns_hosted_zone_name",
                    "name the managed zone (or set gcp.dns_zone): cert-manager may change records in that "
                    "zone only",
                )
            )

    if cfg.serving.engine is Engine.VLLM:
        machine = GCP_GPU_MACHINES[nodes.machine_type]
        if machine.gpu is not cfg.serving.gpu_type:
            wanted = sorted(m for m, spec in GCP_GPU_MACHINES.items() if spec.gpu is cfg.serving.gpu_type)
            problems.append(
                (
                    "gcp.gpu_nodes.machine_type",
                    f"serving.gpu_type is {cfg.serving.gpu_type.value} (the memory check assumes it), but "
                    f"{nodes.machine_type} carries {machine.gpu.value}: use "
                    f"{', '.join(wanted[:4]) or 'another gpu_type'}",
                )
            )
        if machine.count < cfg.serving.gpus_per_replica:
            problems.append(
                (
                    "gcp.gpu_nodes.machine_type",
                    f"{nodes.machine_type} has {machine.count} GPU(s) but a replica needs "
                    f"serving.gpus_per_replica = {cfg.serving.gpus_per_replica} on one machine: pick a larger shape",
                )
            )
        limit, per_replica = gcp_gpu_limit(cfg), cfg.serving.gpus_per_replica
        if limit < per_replica * max(1, cfg.autoscaling.min_replicas):
            problems.append(
                (
                    "gcp.gpu_nodes.gpu_limit",
                    f"{limit} GPUs cannot hold min_replicas x gpus_per_replica = "
                    f"{max(1, cfg.autoscaling.min_replicas)} x {per_replica}: raise it",
                )
            )
        cache_gb = quantity_bytes(cfg.serving.model_cache_size) / 1e9
        on_ssd = nodes.local_ssd_cache and machine.local_ssds > 0
        if on_ssd and cache_gb > machine.local_ssds * LOCAL_SSD_GB * 0.9:
            problems.append(
                (
                    "serving.model_cache_size",
                    f"{cfg.serving.model_cache_size} does not fit the {machine.local_ssds} x {LOCAL_SSD_GB} GB "
                    f"local SSDs of {nodes.machine_type}: lower it, or set gcp.gpu_nodes.local_ssd_cache: false",
                )
            )
        needed_gib = quantity_bytes(cfg.serving.model_cache_size) / 2**30 + NODE_DISK_OVERHEAD_GIB
        if not on_ssd and nodes.disk_gib < needed_gib:
            problems.append(
                (
                    "gcp.gpu_nodes.disk_gib",
                    f"{nodes.disk_gib} GiB cannot hold the model cache ({cfg.serving.model_cache_size}) plus image "
                    f"and OS (~{NODE_DISK_OVERHEAD_GIB} GiB): use at least {math.ceil(needed_gib)}",
                )
            )
        if prod and nodes.capacity_type is CapacityType.SPOT and cfg.autoscaling.min_replicas < 2:
            problems.append(
                (
                    "gcp.gpu_nodes.capacity_type",
                    f"GKE Spot nodes give pods about {GKE_SPOT_SHUTDOWN_SECONDS} s to stop, too short to drain "
                    "streaming answers: a prod stack on spot needs autoscaling.min_replicas >= 2, or on-demand",
                )
            )
    return problems


def _overlaps(ranges: dict[str, str]) -> list[tuple[str, str]]:
    problems = []
    items = [(field, ipaddress.ip_network(cidr)) for field, cidr in ranges.items()]
    for i, (field, net) in enumerate(items):
        for other, other_net in items[i + 1 :]:
            if net.overlaps(other_net):
                problems.append(
                    (f"gcp.network.{other}", f"{other_net} overlaps {field} {net}: pick a disjoint range")
                )
    return problems


def _model_store_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    assert cfg.gcp is not None
    store = cfg.gcp.model_store
    problems: list[tuple[str, str]] = []
    scheme = cfg.model.scheme
    if scheme == "s3":
        problems.append(("model.uri", "an s3:// model on GCP: copy the weights to a gs:// bucket"))
    if scheme == "file":
        problems.append(
            ("model.uri", "file:// models need a volume the cluster already has; on GCP use a gs:// uri")
        )
    if scheme != "gs" and "model_store" in cfg.gcp.model_fields_set:
        problems.append(("gcp.model_store", "only used with a gs:// model.uri: remove it"))
    if scheme == "gs" and not cfg.model.bucket_and_prefix[1]:
        problems.append(
            (
                "model.uri",
                "give the model's prefix (gs://bucket/models/name): the serving identity may read only under it",
            )
        )
    if store.cmek and store.kms_key_name:
        problems.append(
            (
                "gcp.model_store.kms_key_name",
                "cmek makes a key of its own: set cmek or kms_key_name, not both",
            )
        )
    if not store.create_bucket and (store.cmek or store.kms_key_name):
        field = "cmek" if store.cmek else "kms_key_name"
        problems.append(
            (
                f"gcp.model_store.{field}",
                "an existing bucket keeps its own encryption: remove it, or set create_bucket: true",
            )
        )
    return problems
