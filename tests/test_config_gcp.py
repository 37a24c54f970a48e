"""The `gcp` section of a stack file and the rules that tie it to the rest of the stack."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from components.address_space import internet_exposure
from components.choices import CapacityType, GcpLoadBalancerScheme
from components.clusters.gcp.gpu_machines import GCP_GPU_MACHINES
from stacks.config import Platform, Tier, load_stack_file, parse_stack_config
from stacks.config_base import NODE_DISK_OVERHEAD_GIB
from stacks.gpus import GpuType
from stacks.rules_gcp import gcp_gpu_limit, gcp_max_gpu_nodes
from tests.test_config import minimal, problems_of, with_sections

ROOT = Path(__file__).resolve().parents[1]
MODEL = "gs://models-bucket/llama-3.1-8b"
GCP = {"project": "acme-inference", "region": "europe-west4"}


def gcp_stack(**sections: Any) -> dict[str, Any]:
    """A valid dev GCP stack (8B model on L4), with sections overridden one level deep."""
    base = minimal(
        platform="gcp",
        gcp=dict(GCP),
        model={"uri": MODEL, "parameters_b": 8, "kv_cache_bytes_per_token": 131072},
        serving={"gpu_type": "nvidia-l4"},
    )
    return with_sections(base, sections)


def gcp_section(**fields: Any) -> dict[str, Any]:
    return {**GCP, **fields}


def test_the_repository_gcp_stacks_load_with_the_promised_shape() -> None:
    dev = load_stack_file(ROOT / "stacks" / "Pulumi.dev-gcp.yaml")
    prod = load_stack_file(ROOT / "stacks" / "Pulumi.prod-gcp.yaml")
    assert dev.gcp is not None and prod.gcp is not None
    assert (dev.platform, dev.tier, prod.platform, prod.tier) == (
        Platform.GCP,
        Tier.DEV,
        Platform.GCP,
        Tier.PROD,
    )
    # dev: small, spot, scale to zero, deletable, public API endpoint restricted to a CIDR
    assert dev.gcp.gpu_nodes.capacity_type is CapacityType.SPOT
    assert dev.autoscaling.min_replicas == 0
    assert not dev.gcp.deletion_protection
    assert (
        dev.gcp.api_endpoint.public_access_cidrs
        and internet_exposure(dev.gcp.api_endpoint.public_access_cidrs) is None
    )
    # prod: regional, on-demand GPUs, at least 2 replicas, no public IP endpoint, pinned image, CMEK bucket
    assert prod.gcp.regional and prod.gcp.deletion_protection
    assert prod.gcp.gpu_nodes.capacity_type is CapacityType.ON_DEMAND
    assert prod.autoscaling.min_replicas >= 2
    assert prod.gcp.api_endpoint.public_access_cidrs == []
    assert "@sha256:" in prod.serving.image
    assert prod.gcp.model_store.cmek


def test_defaults_are_the_production_safe_ones() -> None:
    cfg = parse_stack_config(gcp_stack())
    assert cfg.gcp is not None
    g = cfg.gcp
    assert g.regional and g.location == "europe-west4" and g.deletion_protection
    assert g.api_endpoint.public_access_cidrs == [] and g.api_endpoint.dns_endpoint
    assert g.gpu_nodes.capacity_type is CapacityType.ON_DEMAND
    assert g.load_balancer_scheme is GcpLoadBalancerScheme.INTERNAL
    assert g.model_store.create_bucket and not g.model_store.force_destroy
    assert gcp_gpu_limit(cfg) == (cfg.autoscaling.max_replicas + 1) * cfg.serving.gpus_per_replica


def test_a_zonal_cluster_lives_in_its_first_zone() -> None:
    cfg = parse_stack_config(gcp_stack(gcp=gcp_section(regional=False, zones=["europe-west4-b"])))
    assert cfg.gcp is not None and cfg.gcp.location == "europe-west4-b"


def test_the_pool_grows_to_whole_machines() -> None:
    # (8 + 1 surge) replicas x 2 GPUs on g2-standard-24 (2 x L4): 9 machines; a limit of 5 GPUs rounds up to 3.
    values = gcp_stack(
        serving={"image": "registry.example/model:1.0", "gpu_type": "nvidia-l4", "gpus_per_replica": 2},
        autoscaling={"max_replicas": 8},
        gcp=gcp_section(gpu_nodes={"machine_type": "g2-standard-24"}),
    )
    assert gcp_max_gpu_nodes(parse_stack_config(copy.deepcopy(values))) == 9
    values["gcp"]["gpu_nodes"]["gpu_limit"] = 5
    assert gcp_max_gpu_nodes(parse_stack_config(values)) == 3


@pytest.mark.parametrize(
    ("values", "field", "says"),
    [
        (gcp_stack(gcp=None), "gcp", "needs a gcp section"),
        ({**gcp_stack(), "platform": "onprem"}, "gcp", "only used with platform gcp"),
        (gcp_stack(gcp={"project": "Acme", "region": "europe-west4"}), "gcp.project", "pattern"),
        (gcp_stack(gcp={"project": "acme-inference", "region": "Europe"}), "gcp.region", "pattern"),
        (
            gcp_stack(gcp=gcp_section(api_endpoint={"public_access_cidrs": ["0.0.0.0/0"]})),
            "gcp.api_endpoint.public_access_cidrs",
            "opens the Kubernetes API to the internet",
        ),
        (  # the internet in two halves: measured, not compared with "0.0.0.0/0"
            {
                **gcp_stack(tier="prod"),
                "gcp": gcp_section(api_endpoint={"public_access_cidrs": ["0.0.0.0/1", "128.0.0.0/1"]}),
            },
            "gcp.api_endpoint.public_access_cidrs",
            "admits 3,702,258,688 public IPv4 addresses (100% of the internet)",
        ),
        (
            gcp_stack(gcp=gcp_section(api_endpoint={"private_access_cidrs": ["0.0.0.0/2", "64.0.0.0/2"]})),
            "gcp.api_endpoint.private_access_cidrs",
            "public IPv4 addresses",
        ),
        (
            gcp_stack(gcp=gcp_section(api_endpoint={"dns_endpoint": False})),
            "gcp.api_endpoint.dns_endpoint",
            "pulumi up",
        ),
        (
            {**gcp_stack(tier="prod"), "gcp": gcp_section(regional=False)},
            "gcp.regional",
            "regional cluster",
        ),
        (gcp_stack(gcp=gcp_section(zones=["us-east1-b"])), "gcp.zones", "not in region europe-west4"),
        (gcp_stack(gcp=gcp_section(zones=["europe-west4"])), "gcp.zones", "not a GCP zone"),
        (
            gcp_stack(gcp=gcp_section(network={"pods_cidr": "10.0.0.0/14"})),
            "gcp.network.pods_cidr",
            "overlaps",
        ),
        (
            gcp_stack(gcp=gcp_section(network={"control_plane_cidr": "172.16.0.0/24"})),
            "gcp.network.control_plane_cidr",
            "/28",
        ),
        (gcp_stack(model={"uri": "s3://bucket/model"}), "model.uri", "gs://"),
        (gcp_stack(model={"uri": "gs://bucket-only"}), "model.uri", "prefix"),
        (
            gcp_stack(gcp=gcp_section(gpu_nodes={"machine_type": "n2-standard-8"})),
            "gcp.gpu_nodes.machine_type",
            "not an NVIDIA GPU machine type",
        ),
        (
            gcp_stack(gcp=gcp_section(gpu_nodes={"machine_type": "a3-highgpu-1g"})),
            "gcp.gpu_nodes.machine_type",
            "g2-standard",
        ),
        (
            gcp_stack(
                serving={
                    "image": "registry.example/model:1.0",
                    "gpu_type": "nvidia-l4",
                    "gpus_per_replica": 2,
                }
            ),
            "gcp.gpu_nodes.machine_type",
            "larger shape",
        ),
        (
            gcp_stack(gcp=gcp_section(gpu_nodes={"gpu_limit": 1}), autoscaling={"min_replicas": 2}),
            "gcp.gpu_nodes.gpu_limit",
            "raise it",
        ),
        (
            {**gcp_stack(tier="prod"), "gcp": gcp_section(gpu_nodes={"capacity_type": "spot"})},
            "gcp.gpu_nodes.capacity_type",
            "15 s",
        ),
        (
            gcp_stack(gateway={"hostname": "llm.example.com", "load_balancer": {"kind": "nodeport"}}),
            "gateway.load_balancer.kind",
            "load_balancer_scheme",
        ),
        (gcp_stack(cluster={"kubeconfig": "/k"}), "cluster.kubeconfig", "makes its own cluster"),
        (gcp_stack(gpu_pool={"driver_stack": "gpu_operator"}), "gpu_pool", "gcp.gpu_nodes"),
        (
            gcp_stack(
                gcp=gcp_section(
                    model_store={
                        "cmek": True,
                        "kms_key_name": "projects/p/locations/europe-west4/keyRings/r/cryptoKeys/k",
                    }
                )
            ),
            "gcp.model_store.kms_key_name",
            "not both",
        ),
        (
            gcp_stack(gcp=gcp_section(model_store={"create_bucket": False, "cmek": True})),
            "gcp.model_store.cmek",
            "create_bucket: true",
        ),
        (
            gcp_stack(
                model={"uri": "hf://org/name@" + "a" * 40, "parameters_b": 8}, gcp=gcp_section(model_store={})
            ),
            "gcp.model_store",
            "gs://",
        ),
        (
            gcp_stack(
                tls={
                    "mode": "acme",
                    "acme": {
                        "email": "ops@example.com",
                        "solver": "dns01",
                        "dns01": {"provider": "clouddns", "clouddns_project": "acme-inference"},
                    },
                }
            ),
            "tls.acme.dns01.clouddns_hosted_zone_name",
            "managed zone",
        ),
        (
            gcp_stack(
                tls={
                    "mode": "acme",
                    "acme": {
                        "email": "ops@example.com",
                        "solver": "dns01",
                        "dns01": {"provider": "route53", "route53_region": "us-east-1"},
                    },
                }
            ),
            "tls.acme.dns01.provider",
            "clouddns",
        ),
    ],
)
def test_bad_gcp_input_names_the_field_and_the_fix(values: dict[str, Any], field: str, says: str) -> None:
    problems = problems_of(values)
    assert field in problems, problems
    assert says in problems[field]


def test_the_disk_rule_applies_without_local_ssd_and_uses_the_cache_size() -> None:
    values = gcp_stack(
        serving={"image": "registry.example/model:1.0", "gpu_type": "nvidia-l4", "model_cache_size": "300Gi"},
        gcp=gcp_section(gpu_nodes={"disk_gib": 300, "local_ssd_cache": False}),
    )
    message = problems_of(values)["gcp.gpu_nodes.disk_gib"]
    assert f"at least {300 + NODE_DISK_OVERHEAD_GIB}" in message


def test_a_machine_with_local_ssds_holds_the_cache_there() -> None:
    machine, spec = min(
        ((m, spec) for m, spec in GCP_GPU_MACHINES.items() if spec.local_ssds), key=lambda item: item[1].count
    )
    values = gcp_stack(
        serving={
            "image": "registry.example/model:1.0",
            "gpu_type": spec.gpu.value,
            "model_cache_size": "300Gi",
        },
        gcp=gcp_section(gpu_nodes={"machine_type": machine, "disk_gib": 100}),
    )
    cfg = parse_stack_config(copy.deepcopy(values))  # the boot disk need not hold the cache
    assert cfg.gcp is not None and cfg.gcp.gpu_nodes.disk_gib == 100
    values["serving"]["model_cache_size"] = f"{spec.local_ssds * 375}G"
    assert "local_ssd_cache: false" in problems_of(values)["serving.model_cache_size"]


def test_every_gpu_type_on_gcp_has_a_machine_and_the_rule_accepts_it() -> None:
    machines_by_gpu: dict[GpuType, str] = {}
    for machine, spec in sorted(GCP_GPU_MACHINES.items(), key=lambda item: item[1].count):
        machines_by_gpu.setdefault(spec.gpu, machine)
    assert GpuType.L4 in machines_by_gpu and GpuType.H100_80GB in machines_by_gpu
    for gpu, machine in machines_by_gpu.items():
        values = gcp_stack(
            serving={"image": "registry.example/model:1.0", "gpu_type": gpu.value},
            model={"uri": MODEL, "parameters_b": 1},
            gcp=gcp_section(gpu_nodes={"machine_type": machine}),
        )
        assert parse_stack_config(copy.deepcopy(values)).serving.gpu_type is gpu
