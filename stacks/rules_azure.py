"""The rules between the `inferstack:azure` section (stacks/config_azure.py) and the rest of the stack, and
the figures derived from both (the GPU pool's ceiling in GPUs and VMs).

This module imports the core schema and registers its rules with it (stacks/config.py
register_platform_rules) when the `stacks` package loads; the core never imports it back.
"""

from __future__ import annotations

import ipaddress
import math
import re

from components.address_space import internet_exposure
from components.choices import AksSkuTier, AzureOsDiskType, CapacityType, Dns01Provider, Engine, TlsMode
from components.clusters.azure.blob_names import ip_range_problems, prefix_problems
from components.clusters.azure.gpu_vm_sizes import AZURE_GPU_VM_SIZES
from stacks.config import Platform, StackConfig, Tier, register_platform_rules
from stacks.config_base import NODE_DISK_OVERHEAD_GIB, pool_gpus_with_surge, quantity_bytes

#: Ranges no client of a public endpoint comes from: RFC 1918, shared address space (RFC 6598), loopback,
#: link-local.
NON_PUBLIC_RANGES = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
)
#: Address ranges AKS refuses for a cluster's VNet, pod and Service ranges.
AKS_RESERVED_RANGES = ("169.254.0.0/16", "172.30.0.0/16", "172.31.0.0/16", "192.0.2.0/24")
#: Storage account names: 3-24 lower-case letters and digits, unique in Azure (learn.microsoft.com,
#: "Storage account overview", Storage account name).
STORAGE_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
#: Container names: 3-63 lower-case letters, digits and single hyphens, starting and ending with a letter
#: or digit (learn.microsoft.com, "Naming and Referencing Containers, Blobs, and Metadata").
CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")


def azure_gpu_limit(cfg: StackConfig) -> int:
    """The pool's GPU ceiling: the configured one, or max_replicas + 1 replicas' GPUs (of every model).

    The extra replica is room for a rolling update's surge pod at max_replicas (stacks/rollout.py).
    """
    assert cfg.azure is not None
    return cfg.azure.gpu_nodes.gpu_limit or pool_gpus_with_surge(cfg)


def azure_vms_per_replica(cfg: StackConfig, model: StackConfig) -> int:
    """GPU VMs one replica of `model` (a model or variant of cfg.served) takes: its GPUs over the VM
    size's, rounded up (a replica's GPUs are on one VM: the schema refuses more)."""
    assert cfg.azure is not None
    return math.ceil(model.serving.gpus_per_replica / AZURE_GPU_VM_SIZES[cfg.azure.gpu_nodes.vm_size].gpus)


def azure_max_gpu_nodes(cfg: StackConfig) -> int:
    """GPU VMs the pool's cluster autoscaler may grow to (the AgentPool's maxCount): the GPU ceiling in
    whole VMs. Several models without a gpu_limit: one VM set per replica, each model at max_replicas
    plus one surge replica (as on GKE, stacks/rules_gcp.py gcp_max_gpu_nodes)."""
    assert cfg.azure is not None
    if len(cfg.served) > 1 and not cfg.azure.gpu_nodes.gpu_limit:
        return max(
            1,
            sum(
                (v.config.autoscaling.max_replicas + 1) * azure_vms_per_replica(cfg, v.config)
                for v in cfg.served
                if v.config.uses_gpu
            ),
        )
    per_vm = AZURE_GPU_VM_SIZES[cfg.azure.gpu_nodes.vm_size].gpus
    return max(1, math.ceil(azure_gpu_limit(cfg) / per_vm))


def store_private_endpoint(cfg: StackConfig) -> bool:
    """Whether the model store is reached through a private endpoint (its public access closed)."""
    assert cfg.azure is not None
    chosen = cfg.azure.model_store.private_endpoint
    return cfg.tier is Tier.PROD if chosen is None else chosen


def sku_tier(cfg: StackConfig) -> AksSkuTier:
    """The AKS control plane's tier: the stack's, or Standard (uptime SLA) in prod and Free in dev."""
    assert cfg.azure is not None
    if cfg.azure.sku_tier is not None:
        return cfg.azure.sku_tier
    return AksSkuTier.STANDARD if cfg.tier is Tier.PROD else AksSkuTier.FREE


def azure_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Rules between the azure section and the rest of the stack. (field path, message with the fix)."""
    # Registered for platform azure only; the core has checked that the section is there.
    assert cfg.azure is not None
    az, prod = cfg.azure, cfg.tier is Tier.PROD
    problems: list[tuple[str, str]] = []

    if prod and len(az.zones) < 3:
        problems.append(
            (
                "azure.zones",
                "a prod stack spreads its nodes over 3 availability zones so losing one keeps the endpoint "
                f'up (got {az.zones or "none"}): use ["1", "2", "3"] in a region that has zones',
            )
        )
    if prod and sku_tier(cfg) is AksSkuTier.FREE:
        problems.append(
            (
                "azure.sku_tier",
                "the Free tier has no uptime SLA and is meant for dev/test (AKS pricing tiers): use Standard",
            )
        )
    if not az.admin_group_object_ids:
        problems.append(
            (
                "azure.admin_group_object_ids",
                "local accounts are off, so an Entra ID group must hold cluster-admin (Azure RBAC for "
                "Kubernetes); the deployer who runs `pulumi up` must be in it too, since the stack's own "
                "kubeconfig signs in as them (kubelogin, azurecli): give its object id (`az ad group show "
                "-g <name> --query id -o tsv`)",
            )
        )
    foreign = [z for z in az.gpu_nodes.zones if az.zones and z not in az.zones]
    if foreign:
        problems.append(("azure.gpu_nodes.zones", f"{', '.join(foreign)} not in azure.zones {az.zones}"))

    api = az.api_server
    exposure = internet_exposure(api.authorized_ip_ranges)
    if exposure:
        problems.append(
            (
                "azure.api_server.authorized_ip_ranges",
                f"opens the Kubernetes API to the internet: the list {exposure}; list your own networks",
            )
        )
    if api.private and api.authorized_ip_ranges:
        problems.append(
            (
                "azure.api_server.authorized_ip_ranges",
                "authorized IP ranges apply to a public API server only (AKS docs, 'API server authorized IP "
                "ranges'); a private cluster is reached from the VNet: remove them, or set private: false",
            )
        )
    private_ranges = [
        c
        for c in api.authorized_ip_ranges
        if any(ipaddress.ip_network(c).subnet_of(ipaddress.ip_network(r)) for r in NON_PUBLIC_RANGES)  # type: ignore[arg-type]
    ]
    if private_ranges and not api.private:
        problems.append(
            (
                "azure.api_server.authorized_ip_ranges",
                f"{', '.join(private_ranges)}: authorized IP ranges filter the public API server's clients by "
                "their public address, so a private range admits no one (and `pulumi up` from there is shut "
                "out): list the public egress addresses of your office or runners",
            )
        )
    if not api.private and not api.authorized_ip_ranges:
        problems.append(
            (
                "azure.api_server.authorized_ip_ranges",
                "a public API server needs the networks allowed to it (your office, CI runners), or set "
                "private: true and reach it from the VNet",
            )
        )
    for pool in ("system_nodes", "user_nodes"):
        nodes = getattr(az, pool)
        if nodes.min_count > nodes.max_count:
            problems.append((f"azure.{pool}.min_count", "is above max_count: lower it or raise max_count"))

    problems.extend(_network_problems(cfg))
    problems.extend(_model_store_problems(cfg))

    if "kind" in cfg.gateway.load_balancer.model_fields_set:
        problems.append(
            (
                "gateway.load_balancer.kind",
                "on Azure the gateway is a Service on AKS's Standard load balancer: remove kind "
                "(azure.load_balancer_scheme picks internal or external)",
            )
        )
    dns01 = cfg.tls.acme.dns01
    if cfg.tls.mode is TlsMode.ACME and dns01 is not None:
        if dns01.provider in (Dns01Provider.ROUTE53, Dns01Provider.CLOUDDNS):
            problems.append(
                (
                    "tls.acme.dns01.provider",
                    f"{dns01.provider.value} is another cloud's: use azuredns on Azure",
                )
            )
        if dns01.provider is Dns01Provider.AZUREDNS and az.dns_zone is None:
            problems.append(
                (
                    "azure.dns_zone",
                    "DNS-01 through Azure DNS answers in the stack's zone: set azure.dns_zone {name, "
                    "resource_group} (cert-manager's identity may change records in that zone only)",
                )
            )
    if az.dns_zone is not None and not (
        cfg.gateway.hostname == az.dns_zone.name or cfg.gateway.hostname.endswith("." + az.dns_zone.name)
    ):
        problems.append(
            (
                "azure.dns_zone.name",
                f"gateway.hostname {cfg.gateway.hostname} is not in zone {az.dns_zone.name}: the A record "
                "and the DNS-01 TXT record go in this zone; name the zone that holds the hostname",
            )
        )

    registry = cfg.serving.image.partition("/")[0]
    named = (az.container_registry_id or "").rsplit("/", 1)[-1].lower()
    if (
        registry.endswith(".azurecr.io")
        and az.container_registry_id is not None
        and registry != f"{named}.azurecr.io"
    ):
        problems.append(
            (
                "azure.container_registry_id",
                f"names registry {named}, but serving.image comes from {registry}: the nodes would get AcrPull "
                f"on the wrong registry; give {registry.removesuffix('.azurecr.io')}'s id",
            )
        )
    if registry.endswith(".azurecr.io") and az.container_registry_id is None:
        problems.append(
            (
                "azure.container_registry_id",
                f"serving.image comes from {registry}, which the nodes cannot pull from until their kubelet "
                "identity has AcrPull on it: give the registry's resource id (`az acr show -n "
                f"{registry.removesuffix('.azurecr.io')} --query id -o tsv`) and the stack grants it",
            )
        )
    if cfg.serving.engine is Engine.VLLM:
        problems.extend(_gpu_problems(cfg))
    return problems


def _gpu_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    assert cfg.azure is not None
    nodes, prod = cfg.azure.gpu_nodes, cfg.tier is Tier.PROD
    size = AZURE_GPU_VM_SIZES[nodes.vm_size]
    problems: list[tuple[str, str]] = []
    if size.gpu is not cfg.serving.gpu_type:
        wanted = sorted(n for n, s in AZURE_GPU_VM_SIZES.items() if s.gpu is cfg.serving.gpu_type)
        problems.append(
            (
                "azure.gpu_nodes.vm_size",
                f"serving.gpu_type is {cfg.serving.gpu_type.value} (the memory check assumes it), but "
                f"{nodes.vm_size} carries {size.gpu.value}: use {', '.join(wanted[:4]) or 'another gpu_type'}",
            )
        )
    if size.gpus < cfg.serving.gpus_per_replica:
        problems.append(
            (
                "azure.gpu_nodes.vm_size",
                f"{nodes.vm_size} has {size.gpus} GPU(s) but a replica needs serving.gpus_per_replica = "
                f"{cfg.serving.gpus_per_replica} on one VM: pick a larger size",
            )
        )
    limit, per_replica = azure_gpu_limit(cfg), cfg.serving.gpus_per_replica
    if limit < per_replica * max(1, cfg.autoscaling.min_replicas):
        problems.append(
            (
                "azure.gpu_nodes.gpu_limit",
                f"{limit} GPUs cannot hold min_replicas x gpus_per_replica = "
                f"{max(1, cfg.autoscaling.min_replicas)} x {per_replica}: raise it",
            )
        )
    if nodes.os_disk_type is AzureOsDiskType.EPHEMERAL and nodes.os_disk_gib > size.temp_disk_gib:
        problems.append(
            (
                "azure.gpu_nodes.os_disk_type",
                f"an Ephemeral OS disk lives on the VM's temporary disk, and {nodes.vm_size} has "
                f"{size.temp_disk_gib} GiB for the {nodes.os_disk_gib} GiB asked: use Managed, or a smaller "
                "os_disk_gib",
            )
        )
    needed_gib = quantity_bytes(cfg.serving.model_cache_size) / 2**30 + NODE_DISK_OVERHEAD_GIB
    if nodes.os_disk_gib < needed_gib:
        problems.append(
            (
                "azure.gpu_nodes.os_disk_gib",
                f"{nodes.os_disk_gib} GiB cannot hold the model cache ({cfg.serving.model_cache_size}) plus "
                f"image and OS (~{NODE_DISK_OVERHEAD_GIB} GiB): use at least {math.ceil(needed_gib)}",
            )
        )
    if prod and nodes.capacity_type is CapacityType.SPOT and cfg.autoscaling.min_replicas < 2:
        problems.append(
            (
                "azure.gpu_nodes.capacity_type",
                "Azure evicts a Spot VM with 30 s notice (Scheduled Events), too short to drain streaming "
                "answers: a prod stack on spot needs autoscaling.min_replicas >= 2, or on-demand",
            )
        )
    return problems


def _network_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    assert cfg.azure is not None
    net = cfg.azure.network
    vnet = ipaddress.ip_network(net.vnet_cidr)
    problems: list[tuple[str, str]] = []
    subnets = {
        "node_subnet_cidr": net.node_subnet_cidr,
        "endpoints_subnet_cidr": net.endpoints_subnet_cidr,
        "api_server_subnet_cidr": net.api_server_subnet_cidr,
    }
    for field, cidr in subnets.items():
        if not ipaddress.ip_network(cidr).subnet_of(vnet):  # type: ignore[arg-type]
            problems.append(
                (f"azure.network.{field}", f"{cidr} is not inside vnet_cidr {vnet}: pick a range in it")
            )
    if ipaddress.ip_network(net.api_server_subnet_cidr).prefixlen > 28:
        problems.append(
            (
                "azure.network.api_server_subnet_cidr",
                f"{net.api_server_subnet_cidr} is smaller than the /28 API Server VNet Integration needs (AKS "
                "reserves at least 9 addresses): use a /27",
            )
        )
    # Azure CNI overlay: the pod and Service ranges must not overlap the VNet or each other (AKS docs,
    # "Configure Azure CNI Overlay networking": "the pod CIDR space must not overlap with the cluster
    # subnet range" and on-premises/peered networks).
    ranges = {
        "node_subnet_cidr": net.node_subnet_cidr,
        "endpoints_subnet_cidr": net.endpoints_subnet_cidr,
        "api_server_subnet_cidr": net.api_server_subnet_cidr,
        "pod_cidr": net.pod_cidr,
        "service_cidr": net.service_cidr,
    }
    items = [(field, ipaddress.ip_network(cidr)) for field, cidr in ranges.items()]
    for i, (field, one) in enumerate(items):
        for other, two in items[i + 1 :]:
            if one.overlaps(two):
                problems.append(
                    (f"azure.network.{other}", f"{two} overlaps {field} {one}: pick a disjoint range")
                )
    # AKS refuses these for the Service, pod and VNet ranges (AKS docs, "Azure CNI networking overview",
    # prerequisites: "AKS clusters can't use 169.254.0.0/16, 172.30.0.0/16, 172.31.0.0/16, or 192.0.2.0/24").
    for field, cidr in {"vnet_cidr": net.vnet_cidr, **ranges}.items():
        taken = [
            r for r in AKS_RESERVED_RANGES if ipaddress.ip_network(cidr).overlaps(ipaddress.ip_network(r))
        ]
        if taken:
            problems.append(
                (
                    f"azure.network.{field}",
                    f"{cidr} overlaps {', '.join(taken)}, which AKS reserves: pick another range",
                )
            )
    for field in ("pod_cidr", "service_cidr"):
        if ipaddress.ip_network(ranges[field]).overlaps(vnet):
            problems.append(
                (
                    f"azure.network.{field}",
                    f"{ranges[field]} overlaps the VNet {vnet}: with Azure CNI overlay it lies outside the VNet",
                )
            )
    return problems


def _model_store_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    assert cfg.azure is not None
    store = cfg.azure.model_store
    scheme = cfg.model.scheme
    problems: list[tuple[str, str]] = []
    if scheme in ("s3", "gs"):
        problems.append(
            (
                "model.uri",
                f"a {scheme}:// model on Azure: copy the weights to az://<account>/<container>/<prefix>",
            )
        )
    if scheme == "file":
        problems.append(
            ("model.uri", "file:// models need a volume the cluster already has; on Azure use an az:// uri")
        )
    if scheme != "az" and "model_store" in cfg.azure.model_fields_set:
        problems.append(("azure.model_store", "only used with an az:// model.uri: remove it"))
    if scheme == "az":
        account, container, prefix = cfg.model.azure_blob_location
        if not STORAGE_ACCOUNT_NAME.match(account):
            problems.append(
                (
                    "model.uri",
                    f"{account!r} is not a storage account name: 3-24 lower-case letters and digits",
                )
            )
        if not CONTAINER_NAME.match(container):
            problems.append(
                (
                    "model.uri",
                    f"{container!r} is not a blob container name: az://<account>/<container>/<prefix>, the "
                    "container 3-63 lower-case letters, digits and hyphens",
                )
            )
        if not prefix:
            problems.append(
                (
                    "model.uri",
                    "give the model's prefix (az://account/container/models/name): the serving identity may "
                    "read only under it",
                )
            )
        else:
            for problem in prefix_problems(prefix.strip("/")):
                problems.append(("model.uri", f"the prefix {problem.removeprefix('prefix: ')}"))
    if not store.create_account and scheme == "az" and store.resource_group is None:
        problems.append(
            (
                "azure.model_store.resource_group",
                "an existing storage account: name its resource group (`az storage account show -n "
                "<account> --query resourceGroup`), so the reader's grant can be scoped to its container",
            )
        )
    if store.uploader_cidrs and store_private_endpoint(cfg):
        problems.append(
            (
                "azure.model_store.uploader_cidrs",
                "the account has no public endpoint with a private endpoint (prod's default): upload from the "
                "VNet, or set azure.model_store.private_endpoint: false",
            )
        )
    # The component's own checks (components/clusters/azure/blob_names.py), here with the stack file's names.
    for problem in ip_range_problems(list(store.uploader_cidrs)):
        problems.append(("azure.model_store.uploader_cidrs", problem.removeprefix("allowed_ip_ranges: ")))
    exposure = internet_exposure(list(store.uploader_cidrs))
    if exposure:
        problems.append(
            (
                "azure.model_store.uploader_cidrs",
                f"opens the model store to the internet: the list {exposure}",
            )
        )
    if store.customer_managed_key and not store.create_account:
        problems.append(
            (
                "azure.model_store.customer_managed_key",
                "an existing account keeps its own encryption: remove it, or set create_account: true",
            )
        )
    return problems


register_platform_rules(Platform.AZURE, azure_problems)
