"""The `inferstack:aws` section of a stack file, and the rules that tie it to the rest of the stack.

Only read when `platform: aws`. Defaults are the production-safe ones (three zones, a NAT per zone, a
private API endpoint, an internal NLB, on-demand GPUs); a dev stack file relaxes what it needs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from components.address_space import internet_exposure
from components.choices import (
    AwsLoadBalancerScheme,
    CapacityType,
    Dns01Provider,
    Engine,
    GpuAmiFamily,
    GpuProvisioner,
    TlsMode,
)
from stacks.config_base import (
    NODE_DISK_OVERHEAD_GIB,
    Section,
    parse_cidrs,
    pool_gpus_with_surge,
    quantity_bytes,
)
from stacks.gpus import GpuType

if TYPE_CHECKING:
    from stacks.config import StackConfig

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


def gpu_limit(cfg: StackConfig) -> int:
    """The pool's GPU ceiling: the configured one, or max_replicas + 1 replicas' GPUs (of every model).

    The extra replica is room for a rolling update's surge pod at max_replicas (stacks/rollout.py); the
    autoscaler never asks for more than max_replicas, so only a rollout uses it, for as long as it runs.
    """
    assert cfg.aws is not None
    return cfg.aws.gpu_nodes.gpu_limit or pool_gpus_with_surge(cfg)


def aws_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Rules between the aws section and the rest of the stack. (field path, message with the fix)."""
    from stacks.config import Platform, Tier

    problems: list[tuple[str, str]] = []
    if cfg.platform is not Platform.AWS:
        if cfg.aws is not None:
            problems.append(
                ("aws", f"only used with platform aws (this stack is {cfg.platform.value}): remove it")
            )
        return problems
    if cfg.aws is None:
        return [("aws", "platform aws needs an aws section with at least region")]

    aws, prod = cfg.aws, cfg.tier is Tier.PROD
    endpoint, nodes = aws.api_endpoint, aws.gpu_nodes
    if prod and aws.network.availability_zones < 3:
        problems.append(
            (
                "aws.network.availability_zones",
                f"a prod stack spans 3 zones so losing one keeps the endpoint up (got {aws.network.availability_zones})",
            )
        )
    # Measured, not compared with "0.0.0.0/0": [0.0.0.0/1, 128.0.0.0/1] is the same internet.
    for field_name in ("public_access_cidrs", "private_access_cidrs"):
        exposure = internet_exposure(getattr(endpoint, field_name))
        if exposure:
            problems.append(
                (
                    f"aws.api_endpoint.{field_name}",
                    f"opens the Kubernetes API to the internet: the list {exposure}; list your own networks"
                    + (
                        ", or leave it empty for a private endpoint"
                        if field_name.startswith("public")
                        else ""
                    ),
                )
            )

    scheme = cfg.model.scheme
    if scheme == "gs":
        problems.append(("model.uri", "a gs:// model on AWS: copy the weights to an s3:// bucket"))
    if scheme == "file":
        problems.append(
            ("model.uri", "file:// models need a volume the cluster already has; on AWS use an s3:// uri")
        )
    if scheme != "s3" and "model_store" in aws.model_fields_set:
        problems.append(("aws.model_store", "only used with an s3:// model.uri: remove it"))
    if aws.model_store.existing_kms_key_arn and aws.model_store.create_bucket:
        problems.append(
            (
                "aws.model_store.existing_kms_key_arn",
                "the stack creates the bucket with its own key: remove it, or set create_bucket: false",
            )
        )
    if scheme == "s3" and not cfg.model.bucket_and_prefix[1]:
        problems.append(
            (
                "model.uri",
                "give the model's prefix (s3://bucket/models/name): the serving role may read only under it",
            )
        )

    if "kind" in cfg.gateway.load_balancer.model_fields_set:
        problems.append(
            (
                "gateway.load_balancer.kind",
                "on AWS the gateway is an NLB made by the AWS Load Balancer Controller: remove kind "
                "(aws.load_balancer_scheme picks internal or internet-facing)",
            )
        )

    dns01 = cfg.tls.acme.dns01
    if cfg.tls.mode is TlsMode.ACME and dns01 is not None:
        if dns01.provider is Dns01Provider.CLOUDDNS:
            problems.append(("tls.acme.dns01.provider", "clouddns is GCP's: use route53 on AWS"))
        if dns01.provider is Dns01Provider.ROUTE53 and not (
            dns01.route53_hosted_zone_id or aws.route53_zone_id
        ):
            problems.append(
                (
                    "tls.acme.dns01.route53_hosted_zone_id",
                    "name the hosted zone (or set aws.route53_zone_id): cert-manager's role may change "
                    "records in that zone only",
                )
            )

    if cfg.serving.engine is Engine.VLLM:
        carried = {AWS_GPU_FAMILIES[f] for f in nodes.instance_families}
        if nodes.provisioner is GpuProvisioner.KARPENTER and carried != {cfg.serving.gpu_type}:
            wanted = [f for f, gpu in AWS_GPU_FAMILIES.items() if gpu is cfg.serving.gpu_type]
            problems.append(
                (
                    "aws.gpu_nodes.instance_families",
                    f"serving.gpu_type is {cfg.serving.gpu_type.value} (the memory check assumes it), but "
                    f"{', '.join(nodes.instance_families)} carry {', '.join(sorted(g.value for g in carried))}: "
                    f"use {', '.join(wanted) or 'another gpu_type'}",
                )
            )
        if nodes.provisioner is GpuProvisioner.MANAGED_NODE_GROUP:
            if not nodes.managed_instance_types:
                problems.append(
                    (
                        "aws.gpu_nodes.managed_instance_types",
                        "managed_node_group needs instance types, e.g. [g6.xlarge]",
                    )
                )
            if len(nodes.capacity_types) != 1:
                problems.append(
                    (
                        "aws.gpu_nodes.capacity_types",
                        "a managed node group buys one capacity type: pick on-demand or spot",
                    )
                )
            if cfg.autoscaling.enabled and cfg.autoscaling.min_replicas == 0:
                problems.append(
                    (
                        "aws.gpu_nodes.provisioner",
                        "a managed node group has a fixed size, so GPU nodes never scale to zero: use karpenter, "
                        "or autoscaling.min_replicas >= 1",
                    )
                )
        limit = gpu_limit(cfg)
        per_replica = cfg.serving.gpus_per_replica
        if limit < per_replica * max(1, cfg.autoscaling.min_replicas):
            problems.append(
                (
                    "aws.gpu_nodes.gpu_limit",
                    f"{limit} GPUs cannot hold min_replicas x gpus_per_replica = "
                    f"{max(1, cfg.autoscaling.min_replicas)} x {per_replica}: raise it",
                )
            )
        needed_gib = quantity_bytes(cfg.serving.model_cache_size) / 2**30 + NODE_DISK_OVERHEAD_GIB
        if nodes.volume_size_gib < needed_gib:
            problems.append(
                (
                    "aws.gpu_nodes.volume_size_gib",
                    f"{nodes.volume_size_gib} GiB cannot hold the model cache ({cfg.serving.model_cache_size}) "
                    f"plus image and OS (~{NODE_DISK_OVERHEAD_GIB} GiB): use at least {int(needed_gib + 0.999)}",
                )
            )
    if prod and CapacityType.SPOT in nodes.capacity_types and cfg.autoscaling.min_replicas < 2:
        problems.append(
            (
                "aws.gpu_nodes.capacity_types",
                "spot GPUs can be reclaimed at 2 minutes' notice: a prod stack on spot needs "
                "autoscaling.min_replicas >= 2, or on-demand only",
            )
        )
    return problems
