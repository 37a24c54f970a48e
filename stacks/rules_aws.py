"""The rules between the `inferstack:aws` section (stacks/config_aws.py) and the rest of the stack, and the
figures derived from both (the GPU pool's ceiling).

This module imports the core schema and registers its rules with it (stacks/config.py
register_platform_rules) when the `stacks` package loads; the core never imports it back.
"""

from __future__ import annotations

from components.address_space import internet_exposure
from components.choices import CapacityType, Dns01Provider, Engine, GpuProvisioner, TlsMode
from stacks.config import Platform, StackConfig, Tier, register_platform_rules
from stacks.config_aws import AWS_GPU_FAMILIES
from stacks.config_base import NODE_DISK_OVERHEAD_GIB, pool_gpus_with_surge, quantity_bytes


def gpu_limit(cfg: StackConfig) -> int:
    """The pool's GPU ceiling: the configured one, or max_replicas + 1 replicas' GPUs (of every model).

    The extra replica is room for a rolling update's surge pod at max_replicas (stacks/rollout.py); the
    autoscaler never asks for more than max_replicas, so only a rollout uses it, for as long as it runs.
    """
    assert cfg.aws is not None
    return cfg.aws.gpu_nodes.gpu_limit or pool_gpus_with_surge(cfg)


def aws_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Rules between the aws section and the rest of the stack. (field path, message with the fix)."""
    problems: list[tuple[str, str]] = []
    # Registered for platform aws only; the core has checked that the section is there.
    assert cfg.aws is not None
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


register_platform_rules(Platform.AWS, aws_problems)
