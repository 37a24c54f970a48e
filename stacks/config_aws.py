"""The `inferstack:aws` section of a stack file: its fields, defaults and the rules within it.

Only read when `platform: aws`. Defaults are the production-safe ones (three zones, a NAT per zone, a
private API endpoint, an internal NLB, on-demand GPUs); a dev stack file relaxes what it needs. The rules
that tie it to the rest of the stack are in stacks/rules_aws.py; this module imports nothing of the
schema but stacks/config_base.py, so the core schema (stacks/config.py) can read it without a circle.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from components.choices import (
    AwsLoadBalancerScheme,
    CapacityType,
    GpuAmiFamily,
    GpuProvisioner,
)
from stacks.config_base import (
    Section,
    parse_cidrs,
)
from stacks.gpus import GpuType

#: Which NVIDIA GPU each EC2 GPU instance family carries (AWS's accelerated-computing instance pages).
AWS_GPU_FAMILIES: dict[str, GpuType] = {
    "g4dn": GpuType.T4,
    "g5": GpuType.A10G,
    "g6": GpuType.L4,
    "gr6": GpuType.L4,
    "g6e": GpuType.L40S,
    "p4d": GpuType.A100_40GB,
    "p4de": GpuType.A100_80GB,
    "p5": GpuType.H100_80GB,
    "p5e": GpuType.H200,
    "p5en": GpuType.H200,
    "p6-b200": GpuType.B200,
}

_REGION = r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$"
_IAM_PRINCIPAL_ARN = re.compile(r"^arn:aws:iam::[0-9]{12}:(role|user)/[\w+=,.@/-]+$")
_EC2_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[0-9]*[a-z0-9]+$")


class AwsNetworkConfig(Section):
    vpc_cidr: str = Field("10.0.0.0/16", description="the VPC's address range (/16 to /20)")
    availability_zones: int = Field(3, ge=2, le=6, description="zones spanned (prod needs 3)")
    nat_gateway_per_zone: bool = Field(
        True, description="a NAT gateway per zone (zone-independent); false: one shared NAT (cheaper, dev)"
    )

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, cidr: str) -> str:
        return parse_cidrs([cidr])[0]


class AwsApiEndpointConfig(Section):
    public_access_cidrs: list[str] = Field(
        default_factory=list,
        description="networks allowed to the public API endpoint; empty = private endpoint only. A list that "
        "admits more public addresses than a /8 (or an IPv6 /16), however written ([0.0.0.0/1, 128.0.0.0/1]), "
        "is refused as open to the internet; private ranges do not count",
    )
    private_access_cidrs: list[str] = Field(
        default_factory=list,
        description="networks (VPN, CI runners) allowed to the private endpoint on 443",
    )
    admin_principal_arns: list[str] = Field(
        default_factory=list,
        description="IAM roles/users given cluster admin through EKS access entries (besides the deployer)",
    )

    @field_validator("public_access_cidrs", "private_access_cidrs")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        return parse_cidrs(cidrs)

    @field_validator("admin_principal_arns")
    @classmethod
    def _arns(cls, arns: list[str]) -> list[str]:
        for arn in arns:
            if not _IAM_PRINCIPAL_ARN.match(arn):
                raise ValueError(
                    f"{arn!r} is not an IAM role or user ARN (arn:aws:iam::<account>:role/<name>)"
                )
        return arns


class AwsSystemNodesConfig(Section):
    instance_types: list[str] = Field(
        default_factory=lambda: ["m7i.large"],
        min_length=1,
        description="on-demand instance types for the system node group (controllers, gateway)",
    )
    min_size: int = Field(2, ge=1, le=20, description="fewest system nodes")
    desired_size: int = Field(2, ge=1, le=20, description="system nodes at creation")
    max_size: int = Field(3, ge=1, le=20, description="most system nodes")
    disk_gib: int = Field(50, ge=20, le=1000, description="encrypted root volume per system node")


class AwsGpuNodesConfig(Section):
    provisioner: GpuProvisioner = Field(
        GpuProvisioner.KARPENTER,
        description="karpenter (elastic, scales to zero) or managed_node_group (fixed)",
    )
    ami_family: GpuAmiFamily = Field(
        GpuAmiFamily.AL2023, description="NVIDIA node image: al2023 or bottlerocket"
    )
    ami_version: str = Field(
        "latest",
        pattern=r"^(latest|v[0-9]{8})$",
        description="image release (vYYYYMMDD pins it; latest rolls nodes when AWS publishes one)",
    )
    instance_families: list[str] = Field(
        default_factory=lambda: ["g6"], min_length=1, description="EC2 GPU families Karpenter may launch"
    )
    capacity_types: list[CapacityType] = Field(
        default_factory=lambda: [CapacityType.ON_DEMAND],
        min_length=1,
        description="on-demand and/or spot (spot: cheaper, may be reclaimed with 2 minutes' notice)",
    )
    gpu_limit: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="most GPUs the pool may hold; default: (max_replicas + 1) x gpus_per_replica, the extra replica for a rolling update's surge pod (below that, updates replace one replica at a time)",
    )
    consolidate_after_seconds: int = Field(
        600, ge=0, le=86400, description="how long an empty GPU node lives before it is removed"
    )
    volume_size_gib: int = Field(
        200, ge=100, le=16384, description="encrypted node volume: image + model cache"
    )
    managed_instance_types: list[str] = Field(
        default_factory=list, description="managed_node_group: instance types, e.g. [g6.xlarge]"
    )
    managed_node_count: int = Field(1, ge=1, le=100, description="managed_node_group: fixed node count")

    @field_validator("instance_families")
    @classmethod
    def _families(cls, families: list[str]) -> list[str]:
        unknown = [f for f in families if f not in AWS_GPU_FAMILIES]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not an NVIDIA GPU instance family we know; use "
                f"{', '.join(AWS_GPU_FAMILIES)}"
            )
        return families

    @field_validator("managed_instance_types")
    @classmethod
    def _instance_types(cls, types: list[str]) -> list[str]:
        for t in types:
            if not _EC2_INSTANCE_TYPE.match(t):
                raise ValueError(f"{t!r} is not an EC2 instance type (e.g. g6.xlarge)")
        return types


class AwsModelStoreConfig(Section):
    create_bucket: bool = Field(
        True, description="create the s3:// bucket of model.uri (KMS, versioned, private); false: it exists"
    )
    existing_kms_key_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$",
        description="an existing bucket's KMS key, so the serving role may decrypt",
    )
    force_destroy: bool = Field(
        False, description="let `pulumi destroy` delete a bucket that still holds weights"
    )


class AwsConfig(Section):
    region: str = Field(..., pattern=_REGION, description="AWS region, e.g. us-east-1")
    network: AwsNetworkConfig = Field(default_factory=AwsNetworkConfig)  # type: ignore[arg-type]
    api_endpoint: AwsApiEndpointConfig = Field(default_factory=AwsApiEndpointConfig)
    system_nodes: AwsSystemNodesConfig = Field(default_factory=AwsSystemNodesConfig)  # type: ignore[arg-type]
    gpu_nodes: AwsGpuNodesConfig = Field(default_factory=AwsGpuNodesConfig)  # type: ignore[arg-type]
    model_store: AwsModelStoreConfig = Field(default_factory=AwsModelStoreConfig)  # type: ignore[arg-type]
    load_balancer_scheme: AwsLoadBalancerScheme = Field(
        AwsLoadBalancerScheme.INTERNAL, description="the gateway's NLB: internal or internet-facing"
    )
    route53_zone_id: str | None = Field(
        None,
        pattern=r"^Z[A-Z0-9]{1,31}$",
        description="a public or private hosted zone: an alias record for gateway.hostname goes there",
    )
    create_spot_service_linked_role: bool = Field(
        True,
        description="with Karpenter and spot capacity, create the account's EC2 Spot service-linked role "
        "(AWSServiceRoleForEC2Spot) when an IAM lookup at `pulumi up` finds none (the deployer needs "
        "iam:ListRoles); false never looks up or creates it (the role is someone else's to make)",
    )
