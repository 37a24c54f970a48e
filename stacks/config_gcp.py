"""The `inferstack:gcp` section of a stack file: its fields, defaults and the rules within it.

Only read when `platform: gcp`. Defaults are the production-safe ones (a regional cluster, no public IP
endpoint, an internal load balancer, on-demand GPUs, a bucket kept on destroy, deletion protection on); a
dev stack file relaxes what it needs. The rules that tie it to the rest of the stack are in
stacks/rules_gcp.py; this module imports nothing of the schema but stacks/config_base.py.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from components.choices import (
    CapacityType,
    GcpLoadBalancerScheme,
    GkeReleaseChannel,
    GpuDriverVersion,
)
from components.clusters.gcp.gpu_machines import GCP_GPU_MACHINES
from stacks.config_base import (
    Section,
    parse_cidrs,
)

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
