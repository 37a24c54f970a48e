"""The `azure` section of a stack file and the rules that tie it to the rest of the stack (stacks/rules_azure.py):
every bad input is refused with the field's path and the fix, before any resource exists."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config import parse_stack_config
from stacks.rules_azure import azure_gpu_limit, azure_max_gpu_nodes, sku_tier, store_private_endpoint
from tests.test_config import minimal, problems_of, with_sections

GUID = "11111111-2222-3333-4444-555555555555"
AZURE = {
    "subscription_id": GUID,
    "tenant_id": GUID,
    "location": "westeurope",
    "admin_group_object_ids": [GUID],
    "api_server": {"private": False, "authorized_ip_ranges": ["203.0.113.0/24"]},
}
MODEL = "az://acmeweights/models/llama-3.1-8b"


def azure_stack(**sections: Any) -> dict[str, Any]:
    """A valid dev Azure stack (8B model on an A10), with sections overridden one level deep."""
    base = minimal(
        platform="azure",
        azure=dict(AZURE),
        model={"uri": MODEL, "parameters_b": 8, "kv_cache_bytes_per_token": 131072},
        serving={"gpu_type": "nvidia-a10"},
    )
    return with_sections(base, sections)


def azure_section(**fields: Any) -> dict[str, Any]:
    return {**AZURE, **fields}


def test_the_minimal_azure_stack_is_valid_and_its_defaults_are_the_safe_ones() -> None:
    cfg = parse_stack_config(azure_stack())
    assert cfg.azure is not None
    assert cfg.azure.gpu_nodes.vm_size == "Standard_NV36ads_A10_v5"
    assert sku_tier(cfg).value == "Free" and not store_private_endpoint(cfg)  # dev
    prod = parse_stack_config(
        azure_stack(
            tier="prod", azure=azure_section(api_server={"private": True}), autoscaling={"min_replicas": 1}
        )
    )
    assert sku_tier(prod).value == "Standard" and store_private_endpoint(prod)
    # (max_replicas + 1) replicas' GPUs, in whole one-GPU VMs.
    assert azure_gpu_limit(cfg) == (cfg.autoscaling.max_replicas + 1) * cfg.serving.gpus_per_replica
    assert azure_max_gpu_nodes(cfg) == azure_gpu_limit(cfg)


@pytest.mark.parametrize(
    ("azure", "sections", "field", "says"),
    [
        ({"admin_group_object_ids": []}, {}, "azure.admin_group_object_ids", "Entra ID group"),
        ({"api_server": {"private": False}}, {}, "azure.api_server.authorized_ip_ranges", "networks allowed"),
        (
            {"api_server": {"private": False, "authorized_ip_ranges": ["0.0.0.0/1", "128.0.0.0/1"]}},
            {},
            "azure.api_server.authorized_ip_ranges",
            "internet",
        ),
        (
            {"api_server": {"private": False, "authorized_ip_ranges": ["10.0.0.0/8"]}},
            {},
            "azure.api_server.authorized_ip_ranges",
            "public egress addresses",
        ),
        (
            {"api_server": {"private": True, "authorized_ip_ranges": ["203.0.113.0/24"]}},
            {},
            "azure.api_server.authorized_ip_ranges",
            "public API server only",
        ),
        ({"network": {"service_cidr": "172.30.0.0/16"}}, {}, "azure.network.service_cidr", "AKS reserves"),
        ({"network": {"pod_cidr": "10.0.128.0/17"}}, {}, "azure.network.pod_cidr", "outside the VNet"),
        (
            {"network": {"api_server_subnet_cidr": "10.0.17.0/29"}},
            {},
            "azure.network.api_server_subnet_cidr",
            "/28",
        ),
        (
            {"gpu_nodes": {"vm_size": "Standard_NC24ads_A100_v4"}},
            {},
            "azure.gpu_nodes.vm_size",
            "carries nvidia-a100-80gb",
        ),
        (
            {"gpu_nodes": {"os_disk_type": "Ephemeral", "os_disk_gib": 2048}},
            {},
            "azure.gpu_nodes.os_disk_type",
            "temporary disk",
        ),
        (
            {"model_store": {"uploader_cidrs": ["192.168.1.0/24"]}},
            {},
            "azure.model_store.uploader_cidrs",
            "public",
        ),
        (
            {"model_store": {"private_endpoint": True, "uploader_cidrs": ["203.0.113.0/24"]}},
            {},
            "azure.model_store.uploader_cidrs",
            "no public endpoint",
        ),
        ({"model_store": {"create_account": False}}, {}, "azure.model_store.resource_group", "existing"),
        ({}, {"model": {"uri": "az://acmeweights/models/bob's-llama"}}, "model.uri", "condition"),
        ({}, {"model": {"uri": "az://Acme-Weights/models/x"}}, "model.uri", "storage account name"),
        ({}, {"model": {"uri": "s3://bucket/models/x"}}, "model.uri", "az://"),
        (
            {},
            {"model": {"uri": "https://acmeweights.blob.core.windows.net/models/x"}},
            "model.uri",
            "az://acmeweights/models/x",
        ),
        ({}, {"serving": {"image": "acme.azurecr.io/llm:1"}}, "azure.container_registry_id", "AcrPull"),
        (
            {
                "container_registry_id": f"/subscriptions/{GUID}/resourceGroups/r/providers/"
                "Microsoft.ContainerRegistry/registries/other"
            },
            {"serving": {"image": "acme.azurecr.io/llm:1"}},
            "azure.container_registry_id",
            "wrong registry",
        ),
        (
            {"dns_zone": {"name": "example.org", "resource_group": "dns"}},
            {"gateway": {"hostname": "llm.example.com"}},
            "azure.dns_zone.name",
            "not in zone",
        ),
        ({"sku_tier": "Free"}, {"tier": "prod", "autoscaling": {"min_replicas": 1}}, "azure.sku_tier", "SLA"),
        (
            {"zones": ["1"]},
            {"tier": "prod", "autoscaling": {"min_replicas": 1}},
            "azure.zones",
            "3 availability",
        ),
    ],
)
def test_bad_azure_input_names_the_field_and_the_fix(
    azure: dict[str, Any], sections: dict[str, Any], field: str, says: str
) -> None:
    problems = problems_of(azure_stack(azure=azure_section(**azure), **sections))
    assert field in problems, problems
    assert says in problems[field], problems[field]


def test_another_platforms_section_is_refused_and_the_own_one_is_required() -> None:
    problems = problems_of(azure_stack(gcp={"project": "acme-inference", "region": "europe-west4"}))
    assert "only used with platform gcp" in problems["gcp"]
    values = azure_stack()
    del values["azure"]
    assert (
        "needs an azure section with at least subscription_id and tenant_id and location"
        in problems_of(values)["azure"]
    )
