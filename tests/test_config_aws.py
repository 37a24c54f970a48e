"""The `aws` section of a stack file and the rules that tie it to the rest of the stack."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from components.address_space import internet_exposure
from components.choices import CapacityType, GpuProvisioner, LoadBalancerKind
from stacks.config import Platform, Tier, load_stack_file, parse_stack_config
from stacks.config_aws import AWS_GPU_FAMILIES
from stacks.config_base import NODE_DISK_OVERHEAD_GIB
from stacks.gpus import GpuType
from stacks.rules_aws import gpu_limit
from tests.test_config import minimal, problems_of, with_sections

ROOT = Path(__file__).resolve().parents[1]
MODEL = "s3://models-bucket/llama-3.1-8b"


def aws_stack(**sections: Any) -> dict[str, Any]:
    """A valid dev AWS stack (8B model on L4), with sections overridden one level deep."""
    base = minimal(
        platform="aws",
        aws={"region": "eu-west-1"},
        model={"uri": MODEL, "parameters_b": 8, "kv_cache_bytes_per_token": 131072},
        serving={"gpu_type": "nvidia-l4"},
    )
    return with_sections(base, sections)


def test_the_repository_aws_stacks_load_with_the_promised_shape() -> None:
    dev = load_stack_file(ROOT / "stacks" / "Pulumi.dev-aws.yaml")
    prod = load_stack_file(ROOT / "stacks" / "Pulumi.prod-aws.yaml")
    assert dev.aws is not None and prod.aws is not None
    assert (dev.platform, dev.tier, prod.platform, prod.tier) == (
        Platform.AWS,
        Tier.DEV,
        Platform.AWS,
        Tier.PROD,
    )
    # dev: small, spot, scale to zero, public API endpoint restricted to a CIDR
    assert CapacityType.SPOT in dev.aws.gpu_nodes.capacity_types
    assert dev.autoscaling.min_replicas == 0
    assert (
        dev.aws.api_endpoint.public_access_cidrs
        and internet_exposure(dev.aws.api_endpoint.public_access_cidrs) is None
    )
    # prod: on-demand GPUs, at least 2 replicas, private endpoint, image pinned by digest, three zones
    assert prod.aws.gpu_nodes.capacity_types == [CapacityType.ON_DEMAND]
    assert prod.autoscaling.min_replicas >= 2
    assert prod.aws.api_endpoint.public_access_cidrs == []
    assert "@sha256:" in prod.serving.image
    assert prod.aws.network.availability_zones >= 3


def test_defaults_are_the_production_safe_ones() -> None:
    cfg = parse_stack_config(aws_stack())
    assert cfg.aws is not None
    assert cfg.aws.network.availability_zones == 3 and cfg.aws.network.nat_gateway_per_zone
    assert cfg.aws.api_endpoint.public_access_cidrs == []  # private endpoint
    assert cfg.aws.gpu_nodes.provisioner is GpuProvisioner.KARPENTER
    assert cfg.aws.gpu_nodes.capacity_types == [CapacityType.ON_DEMAND]
    assert cfg.aws.load_balancer_scheme.value == "internal"
    assert cfg.aws.model_store.create_bucket and not cfg.aws.model_store.force_destroy
    # The pool's GPU ceiling follows the replica ceiling, plus one replica for a rollout's surge pod.
    assert gpu_limit(cfg) == (cfg.autoscaling.max_replicas + 1) * cfg.serving.gpus_per_replica


@pytest.mark.parametrize(
    ("values", "field", "says"),
    [
        (aws_stack(aws=None), "aws", "needs an aws section"),
        ({**aws_stack(), "platform": "onprem"}, "aws", "only used with platform aws"),
        (aws_stack(aws={"region": "Europe"}), "aws.region", "pattern"),
        (
            aws_stack(aws={"region": "us-east-1", "api_endpoint": {"public_access_cidrs": ["0.0.0.0/0"]}}),
            "aws.api_endpoint.public_access_cidrs",
            "opens the Kubernetes API to the internet",
        ),
        (  # the internet in two halves: measured, not compared with "0.0.0.0/0"
            {
                **aws_stack(tier="prod"),
                "aws": {
                    "region": "us-east-1",
                    "api_endpoint": {"public_access_cidrs": ["0.0.0.0/1", "128.0.0.0/1"]},
                },
            },
            "aws.api_endpoint.public_access_cidrs",
            "admits 3,702,258,688 public IPv4 addresses (100% of the internet)",
        ),
        (
            aws_stack(
                aws={"region": "us-east-1", "api_endpoint": {"private_access_cidrs": ["::/1", "8000::/1"]}}
            ),
            "aws.api_endpoint.private_access_cidrs",
            "public IPv6",
        ),
        (
            aws_stack(aws={"region": "us-east-1", "api_endpoint": {"public_access_cidrs": ["10.0.0.1/8"]}}),
            "aws.api_endpoint.public_access_cidrs",
            "CIDR",
        ),
        (
            aws_stack(aws={"region": "us-east-1", "api_endpoint": {"admin_principal_arns": ["admins"]}}),
            "aws.api_endpoint.admin_principal_arns",
            "ARN",
        ),
        (
            {**aws_stack(tier="prod"), "aws": {"region": "us-east-1", "network": {"availability_zones": 2}}},
            "aws.network.availability_zones",
            "3 zones",
        ),
        (aws_stack(model={"uri": "gs://bucket/model"}), "model.uri", "s3://"),
        (aws_stack(model={"uri": "s3://bucket-only"}), "model.uri", "prefix"),
        (
            aws_stack(aws={"region": "us-east-1", "gpu_nodes": {"instance_families": ["m7i"]}}),
            "aws.gpu_nodes.instance_families",
            "not an NVIDIA GPU instance family",
        ),
        (
            aws_stack(aws={"region": "us-east-1", "gpu_nodes": {"instance_families": ["p5"]}}),
            "aws.gpu_nodes.instance_families",
            "use g6",
        ),
        (
            aws_stack(aws={"region": "us-east-1", "gpu_nodes": {"volume_size_gib": 100}}),
            "aws.gpu_nodes.volume_size_gib",
            "model cache",
        ),
        (
            aws_stack(
                aws={"region": "us-east-1", "gpu_nodes": {"gpu_limit": 1}}, autoscaling={"min_replicas": 2}
            ),
            "aws.gpu_nodes.gpu_limit",
            "raise it",
        ),
        (
            aws_stack(aws={"region": "us-east-1", "gpu_nodes": {"provisioner": "managed_node_group"}}),
            "aws.gpu_nodes.managed_instance_types",
            "instance types",
        ),
        (
            aws_stack(
                aws={
                    "region": "us-east-1",
                    "gpu_nodes": {
                        "provisioner": "managed_node_group",
                        "managed_instance_types": ["g6.xlarge"],
                    },
                },
                autoscaling={"min_replicas": 0},
            ),
            "aws.gpu_nodes.provisioner",
            "never scale to zero",
        ),
        (
            {
                **aws_stack(tier="prod"),
                "aws": {"region": "us-east-1", "gpu_nodes": {"capacity_types": ["spot"]}},
            },
            "aws.gpu_nodes.capacity_types",
            "min_replicas >= 2",
        ),
        (
            aws_stack(
                gateway={
                    "hostname": "llm.example.com",
                    "load_balancer": {"kind": "metallb", "metallb_pool": "p"},
                }
            ),
            "gateway.load_balancer.kind",
            "NLB",
        ),
        (aws_stack(cluster={"kube_context": "kind-kind"}), "cluster.kube_context", "makes its own cluster"),
        (aws_stack(gpu_pool={"driver_stack": "gpu_operator"}), "gpu_pool", "aws.gpu_nodes"),
        (
            aws_stack(
                aws={
                    "region": "us-east-1",
                    "model_store": {"existing_kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/k"},
                }
            ),
            "aws.model_store.existing_kms_key_arn",
            "create_bucket: false",
        ),
        (
            aws_stack(
                tls={
                    "mode": "acme",
                    "acme": {
                        "email": "ops@example.com",
                        "solver": "dns01",
                        "dns01": {"provider": "route53", "route53_region": "us-east-1"},
                    },
                }
            ),
            "tls.acme.dns01.route53_hosted_zone_id",
            "hosted zone",
        ),
    ],
)
def test_bad_aws_input_names_the_field_and_the_fix(values: dict[str, Any], field: str, says: str) -> None:
    problems = problems_of(values)
    assert field in problems, problems
    assert says in problems[field]


def test_kind_cloud_is_not_for_onprem_stacks() -> None:
    values = aws_stack(
        gateway={"hostname": "llm.example.com", "load_balancer": {"kind": LoadBalancerKind.CLOUD.value}}
    )
    values["platform"] = "onprem"
    del values["aws"]
    values["model"] = {"uri": "hf://org/name@" + "a" * 40, "parameters_b": 8}
    assert "gateway.load_balancer.kind" in problems_of(values)


def test_every_gpu_type_on_aws_has_a_family_and_the_rule_accepts_it() -> None:
    families_by_gpu: dict[GpuType, str] = {}
    for family, gpu in AWS_GPU_FAMILIES.items():
        families_by_gpu.setdefault(gpu, family)
    for gpu, family in families_by_gpu.items():
        values = aws_stack(
            serving={"image": "registry.example/model:1.0", "gpu_type": gpu.value},
            model={"uri": MODEL, "parameters_b": 1},
            aws={"region": "us-east-1", "gpu_nodes": {"instance_families": [family]}},
        )
        assert parse_stack_config(copy.deepcopy(values)).serving.gpu_type is gpu


def test_the_disk_rule_uses_the_cache_size() -> None:
    values = aws_stack(
        serving={"image": "registry.example/model:1.0", "gpu_type": "nvidia-l4", "model_cache_size": "300Gi"},
        aws={"region": "us-east-1", "gpu_nodes": {"volume_size_gib": 300}},
    )
    message = problems_of(values)["aws.gpu_nodes.volume_size_gib"]
    assert f"at least {300 + NODE_DISK_OVERHEAD_GIB}" in message


def test_every_family_the_schema_accepts_is_one_the_gpu_pool_accepts() -> None:
    from components.clusters.aws.gpu_node_pool import GPU_INSTANCE_FAMILIES

    assert set(AWS_GPU_FAMILIES) <= set(GPU_INSTANCE_FAMILIES)
