"""The `inferstack:azure` section of a stack file: its fields, defaults and the rules within it.

Only read when `platform: azure`. Defaults are the production-safe ones (a private API server, three
availability zones, an internal load balancer, on-demand GPUs, a model store reached through a private
endpoint in prod); a dev stack file relaxes what it needs. The rules that tie it to the rest of the stack
are in stacks/rules_azure.py; this module imports nothing of the schema but stacks/config_base.py.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum

from pydantic import Field, field_validator

from components.choices import AksSkuTier, AzureOsDiskType, CapacityType, UpgradeChannel
from components.clusters.azure.gpu_vm_sizes import AZURE_GPU_VM_SIZES
from stacks.config_base import Section, parse_cidrs

_GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# An Azure region's programmatic name as `az account list-locations -o table` prints it (westeurope,
# eastus2, swedencentral): lower-case letters and digits.
_LOCATION = r"^[a-z][a-z0-9]{2,30}$"
# Resource group names: 1-90 of letters, digits, underscores, hyphens, periods and parentheses, not ending
# in a period (learn.microsoft.com, "Naming rules and restrictions for Azure resources", Microsoft.Resources).
_RESOURCE_GROUP = r"^[-\w\.\(\)]{0,89}[-\w\(\)]$"
# A VM size as the Compute API names it: Standard_<family and size>.
_VM_SIZE = re.compile(r"^Standard_[A-Za-z0-9_]+$")
# Availability zones are logical numbers per subscription and region.
_ZONE = re.compile(r"^[123]$")


class AzureLoadBalancerScheme(StrEnum):
    INTERNAL = (
        "internal"  # an address of the node subnet (service.beta.kubernetes.io/azure-load-balancer-internal)
    )
    EXTERNAL = "external"  # a public IP on AKS's Standard load balancer


def _zones(zones: list[str]) -> list[str]:
    bad = [z for z in zones if not _ZONE.match(z)]
    if bad:
        raise ValueError(f"{', '.join(bad)}: an Azure availability zone is 1, 2 or 3")
    if len(set(zones)) != len(zones):
        raise ValueError("a zone is listed twice")
    return zones


class AzureNetworkConfig(Section):
    vnet_cidr: str = Field("10.0.0.0/16", description="the virtual network's address space")
    node_subnet_cidr: str = Field(
        "10.0.0.0/20", description="nodes and internal load balancers (inside vnet_cidr)"
    )
    endpoints_subnet_cidr: str = Field(
        "10.0.16.0/24",
        description="private endpoints of the model store and the Key Vault (inside vnet_cidr)",
    )
    api_server_subnet_cidr: str = Field(
        "10.0.17.0/27",
        description="delegated to AKS for the API server's internal load balancer (API Server VNet "
        "Integration; inside vnet_cidr). AKS reserves at least 9 of its addresses and needs room for "
        "upgrades: a /27, at least a /28",
    )
    pod_cidr: str = Field(
        "10.244.0.0/16",
        description="Azure CNI overlay's pod range: outside the VNet, never routed off the cluster",
    )
    service_cidr: str = Field("10.245.0.0/16", description="Services' ClusterIPs (outside the VNet)")

    @field_validator(
        "vnet_cidr",
        "node_subnet_cidr",
        "endpoints_subnet_cidr",
        "api_server_subnet_cidr",
        "pod_cidr",
        "service_cidr",
    )
    @classmethod
    def _cidr(cls, cidr: str) -> str:
        return parse_cidrs([cidr])[0]

    @property
    def dns_service_ip(self) -> str:
        """kube-dns's ClusterIP: the tenth address of service_cidr, as AKS's default (10.0.0.10 in 10.0.0.0/16)."""
        return str(ipaddress.ip_network(self.service_cidr)[10])


class AzureApiServerConfig(Section):
    private: bool = Field(
        True,
        description="a private cluster: the API server has only a private endpoint in the VNet (reach it "
        "over VPN/ExpressRoute/peering, or a runner inside the VNet); false: a public endpoint limited to "
        "authorized_ip_ranges",
    )
    authorized_ip_ranges: list[str] = Field(
        default_factory=list,
        description="with private false: the networks allowed to the public API server (your office, CI "
        "runners). Measured like aws.api_endpoint.public_access_cidrs: more than a /8 is refused",
    )

    @field_validator("authorized_ip_ranges")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        return parse_cidrs(cidrs)


class AzureSystemNodesConfig(Section):
    vm_size: str = Field(
        "Standard_D4ds_v5",
        pattern=_VM_SIZE.pattern,
        description="system pool (CriticalAddonsOnly: CoreDNS, konnectivity, metrics); 4 vCPU, 16 GiB",
    )
    min_count: int = Field(
        2, ge=1, le=100, description="fewest system nodes: two, so a node upgrade or loss keeps CoreDNS up"
    )
    max_count: int = Field(4, ge=1, le=100, description="most system nodes")
    os_disk_type: AzureOsDiskType = Field(
        AzureOsDiskType.EPHEMERAL,
        description="Ephemeral: on the VM's local disk (must fit it: Standard_D4ds_v5 has 150 GiB); Managed",
    )


class AzureUserNodesConfig(Section):
    """The pool the gateway, controllers and Prometheus run on (the system pool admits critical add-ons only)."""

    vm_size: str = Field("Standard_D4ds_v5", pattern=_VM_SIZE.pattern, description="general-purpose pool")
    min_count: int = Field(1, ge=1, le=100, description="fewest nodes")
    max_count: int = Field(4, ge=1, le=100, description="most nodes")
    os_disk_type: AzureOsDiskType = Field(
        AzureOsDiskType.EPHEMERAL, description="Ephemeral (on the VM's local disk) or Managed"
    )


class AzureGpuNodesConfig(Section):
    vm_size: str = Field(
        "Standard_NV36ads_A10_v5",
        description="GPU VM size (components/clusters/azure/gpu_vm_sizes.py: NVads A10 v5, NC A100 v4, "
        "NCads H100 v5, ND H100 v5); one replica per VM",
    )
    zones: list[str] = Field(
        default_factory=list,
        description="zones with the size in stock (quota and stock differ per zone); empty = the cluster's",
    )
    capacity_type: CapacityType = Field(
        CapacityType.ON_DEMAND,
        description="on-demand or spot (evicted with 30 s notice, deleted; priced by the market)",
    )
    gpu_limit: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="most GPUs the pool may hold; default: (max_replicas + 1) x gpus_per_replica, the extra "
        "replica for a rolling update's surge pod",
    )
    os_disk_gib: int = Field(256, ge=128, le=2048, description="OS disk per GPU node: images + model cache")
    os_disk_type: AzureOsDiskType = Field(
        AzureOsDiskType.MANAGED,
        description="Managed (any size) or Ephemeral (must fit the size's local disk: 64 GiB on NC24ads A100 v4)",
    )

    @field_validator("vm_size")
    @classmethod
    def _known_size(cls, size: str) -> str:
        if size not in AZURE_GPU_VM_SIZES:
            raise ValueError(
                f"{size!r} is not a GPU VM size we accept; use one of {', '.join(sorted(AZURE_GPU_VM_SIZES))}"
            )
        return size

    @field_validator("zones")
    @classmethod
    def _zone_names(cls, zones: list[str]) -> list[str]:
        return _zones(zones)


class AzureModelStoreConfig(Section):
    create_account: bool = Field(
        True,
        description="create the storage account and container of model.uri (az://<account>/<container>/...); "
        "false: they exist, and the stack only grants its readers",
    )
    resource_group: str | None = Field(
        None,
        pattern=_RESOURCE_GROUP,
        description="the account's resource group: an existing account's (required with create_account "
        "false); a created one's, default <azure.resource_group>-models. Apart from the stack's group, so "
        "`pulumi destroy` (which deletes the stack's group and all in it) keeps the weights",
    )
    private_endpoint: bool | None = Field(
        None,
        description="reach the account through a private endpoint in the VNet and close its public "
        "network access; default: true in prod, false in dev (the deployer uploads weights over the "
        "public endpoint, with Entra ID)",
    )
    uploader_cidrs: list[str] = Field(
        default_factory=list,
        description="with the public endpoint (no private endpoint): public networks allowed through the "
        "account's firewall to upload weights (the nodes reach it through a service endpoint)",
    )
    customer_managed_key: bool = Field(
        False,
        description="encrypt the created account with a key the stack makes (CMK), in a Key Vault of the "
        "store's own resource group, kept with the account",
    )
    force_destroy: bool = Field(
        False,
        description="let `pulumi destroy` delete the created account, its weights and its resource group "
        "(default: they are left, and `pulumi destroy` forgets them)",
    )

    @field_validator("uploader_cidrs")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        return parse_cidrs(cidrs)


class AzureDnsZoneConfig(Section):
    name: str = Field(
        ..., pattern=r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,}$", description="e.g. example.com"
    )
    resource_group: str = Field(..., pattern=_RESOURCE_GROUP, description="the zone's resource group")
    subscription_id: str | None = Field(
        None, pattern=_GUID, description="the zone's subscription; default: azure.subscription_id"
    )


class AzureConfig(Section):
    subscription_id: str = Field(
        ..., pattern=_GUID, description="an Azure subscription id (a GUID): everything goes in it"
    )
    container_registry_id: str | None = Field(
        None,
        pattern=r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ContainerRegistry/registries/[^/]+$",
        description="the Azure Container Registry serving.image comes from (its resource id): the nodes' "
        "kubelet identity gets AcrPull on it, as `az aks update --attach-acr` would",
    )
    tenant_id: str = Field(
        ...,
        pattern=_GUID,
        description="a Microsoft Entra tenant id (a GUID): the subscription's (cluster sign-in, Key Vault)",
    )
    location: str = Field(
        ...,
        pattern=_LOCATION,
        description="an Azure region's name as `az account list-locations` prints it, e.g. westeurope",
    )
    resource_group: str | None = Field(
        None,
        pattern=_RESOURCE_GROUP,
        description="the resource group the stack makes; default: <project>-<stack>",
    )
    zones: list[str] = Field(
        default_factory=lambda: ["1", "2", "3"],
        description="availability zones of the system and user pools; empty = no zone (regions without)",
    )
    admin_group_object_ids: list[str] = Field(
        default_factory=list,
        description="Entra ID groups given cluster-admin through Azure RBAC for Kubernetes (the deployer "
        "gets it apart); local accounts are off, so these and Azure role assignments are the only way in",
    )
    upgrade_channel: UpgradeChannel = Field(
        UpgradeChannel.PATCH,
        description="AKS auto-upgrade: patch keeps cluster.kubernetes_version's minor and takes its patches",
    )
    sku_tier: AksSkuTier | None = Field(
        None, description="control-plane tier; default: Standard (uptime SLA) in prod, Free in dev"
    )
    network: AzureNetworkConfig = Field(default_factory=AzureNetworkConfig)  # type: ignore[arg-type]
    api_server: AzureApiServerConfig = Field(default_factory=AzureApiServerConfig)  # type: ignore[arg-type]
    system_nodes: AzureSystemNodesConfig = Field(default_factory=AzureSystemNodesConfig)  # type: ignore[arg-type]
    user_nodes: AzureUserNodesConfig = Field(default_factory=AzureUserNodesConfig)  # type: ignore[arg-type]
    gpu_nodes: AzureGpuNodesConfig = Field(default_factory=AzureGpuNodesConfig)  # type: ignore[arg-type]
    model_store: AzureModelStoreConfig = Field(default_factory=AzureModelStoreConfig)  # type: ignore[arg-type]
    load_balancer_scheme: AzureLoadBalancerScheme = Field(
        AzureLoadBalancerScheme.INTERNAL, description="the gateway's load balancer: internal or external"
    )
    dns_zone: AzureDnsZoneConfig | None = Field(
        None, description="an Azure DNS zone: an A record for gateway.hostname goes there, and DNS-01 answers"
    )

    @field_validator("zones")
    @classmethod
    def _zone_names(cls, zones: list[str]) -> list[str]:
        return _zones(zones)

    @field_validator("admin_group_object_ids")
    @classmethod
    def _guids(cls, ids: list[str]) -> list[str]:
        bad = [i for i in ids if not re.match(_GUID, i)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: not an Entra ID object id (a GUID)")
        return ids
