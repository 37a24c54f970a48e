"""Composition for Azure: a VNet and an AKS cluster made by the stack, then the same workload as elsewhere.

Order of concerns: the azure-native provider (subscription, location); the stack's resource group; the
network (VNet with node, private-endpoint and API-server subnets, NAT gateway, NSGs, privatelink DNS
zones); AKS (Entra ID with Azure RBAC, local accounts off, OIDC issuer and Workload Identity, Azure CNI
overlay with Cilium, KMS etcd encryption with a Key Vault key, a hardened system pool); a general user
pool (the system pool admits critical add-ons only); the GPU pool (AKS installs the driver, our device
plugin, autoscaling from 0); the serving identity federated to exactly the model server's ServiceAccount;
the Blob model store with its read-only, prefix-conditioned grant (and its private endpoint); cert-manager's
identity for Azure DNS; the shared workload behind AKS's Standard load balancer; an A record for the
hostname.

Identity is Microsoft Entra Workload ID: a user-assigned managed identity with a federated credential whose
subject is `system:serviceaccount:<namespace>:<name>`. AKS's webhook (installed by
securityProfile.workloadIdentity) injects AZURE_CLIENT_ID, AZURE_TENANT_ID and the projected token into
pods labelled `azure.workload.identity/use: "true"` whose ServiceAccount names the identity's client id.
No key or connection string exists anywhere.

Teardown follows the graph backwards: every Kubernetes object (the gateway's LoadBalancer Service first,
whose Azure load-balancer rule and public IP AKS's cloud controller removes while the cluster still runs)
goes before the pools and the cluster; the role assignments and federated credentials before their
identities; the cluster before its grants, its Key Vault key and the subnets; the private endpoints before
the storage account and the subnet; the subnets before the NAT gateway and the VNet; the resource group
last. The model store lives in a resource group of its own, kept on destroy unless
azure.model_store.force_destroy (deleting the stack's group deletes all in it), with its key's vault. The
stack's Key Vault stays soft-deleted for its retention (docs/azure.md, "Destroying cleanly").
"""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_azure_native as azure_native
import pulumi_azure_native.dns as dns
import pulumi_azure_native.keyvault as keyvault
import pulumi_azure_native.resources as resources

from components._common import cluster_providers
from components.choices import Dns01Provider, LoadBalancerKind, TlsMode
from components.clusters.azure.aks import AksCluster, AksClusterArgs
from components.clusters.azure.gpu_node_pool import AzureGpuNodePool, AzureGpuNodePoolArgs
from components.clusters.azure.key_vault import hardened_vault, rsa_key
from components.clusters.azure.load_balancer import aks_service_exposure
from components.clusters.azure.model_store import (
    AzureBlobModelStore,
    AzureBlobModelStoreArgs,
    CustomerManagedKey,
    StoreNetworkAccess,
)
from components.clusters.azure.network import AzureNetwork, AzureNetworkArgs, PrivateLinkGroup
from components.clusters.azure.user_pool import AksUserPool, AksUserPoolArgs
from components.clusters.azure.workload_identity import (
    ACR_PULL,
    DNS_ZONE_CONTRIBUTOR,
    ENTRA_ID_LOGIN_EGRESS,
    POD_LABEL,
    federated_identity,
    role_assignment,
    service_account_annotations,
)
from components.load_balancer import is_open
from components.tls import CERT_MANAGER_NAMESPACE, cert_manager_service_account
from stacks.config import StackConfig
from stacks.config_azure import AzureConfig, AzureLoadBalancerScheme
from stacks.rules_azure import azure_max_gpu_nodes, sku_tier, store_private_endpoint
from stacks.workload import NAME, ClusterContext, GatewayExposure, deploy_workload

#: The model store's customer-managed key, in the stack's Key Vault.
MODEL_STORE_KEY_NAME = "model-store"
#: The gateway's listener ports opened in the node subnet's NSG for an external load balancer: HTTPS, and
#: HTTP for the redirect listener and ACME HTTP-01 challenges.
GATEWAY_PORTS = [80, 443]


def resource_group_name_for(project: str, stack: str) -> str:
    """One resource group per stack, named after it (1-90 characters: letters, digits, - _ . ( ))."""
    return f"{project}-{stack}".lower()[:90].rstrip(".")


def cluster_name_for(project: str, stack: str) -> str:
    """One AKS cluster per stack (1-63 characters: letters, digits, - and _)."""
    return f"{project}-{stack}".lower()[:63].rstrip("-_")


def deploy_azure(cfg: StackConfig) -> None:
    assert cfg.azure is not None  # the schema requires the section for platform azure
    az = cfg.azure
    project, stack = pulumi.get_project(), pulumi.get_stack()
    cluster_name = cluster_name_for(project, stack)
    tags = {"inferstack-stack": stack.lower(), "inferstack-cluster": cluster_name}
    provider = azure_native.Provider(
        "azure-native", subscription_id=az.subscription_id, tenant_id=az.tenant_id, location=az.location
    )
    on_azure = pulumi.ResourceOptions(provider=provider)

    resource_group_name = az.resource_group or resource_group_name_for(project, stack)
    group = resources.ResourceGroup(
        "resource-group",
        resource_group_name=resource_group_name,
        location=az.location,
        tags=tags,
        opts=on_azure,
    )
    rg = group.name
    external = az.load_balancer_scheme is AzureLoadBalancerScheme.EXTERNAL
    net = AzureNetwork(
        "network",
        AzureNetworkArgs(
            resource_group_name=rg,
            location=az.location,
            vnet_cidr=az.network.vnet_cidr,
            node_subnet_cidr=az.network.node_subnet_cidr,
            private_endpoint_subnet_cidr=az.network.endpoints_subnet_cidr,
            api_server_subnet_cidr=az.network.api_server_subnet_cidr,
            pod_cidr=az.network.pod_cidr,
            service_cidr=az.network.service_cidr,
            dns_service_ip=az.network.dns_service_ip,
            public_ingress=external,
            # [] means everyone to the component (a 0.0.0.0/0 list it refuses as a spelled-out internet).
            ingress_source_cidrs=(
                []
                if not external or is_open(cfg.gateway.allowed_source_cidrs)
                else list(cfg.gateway.allowed_source_cidrs)
            ),
            ingress_ports=GATEWAY_PORTS,
            storage_service_endpoint=_store_public(cfg),
            public_api_server=not az.api_server.private,
            tags=tags,
        ),
        opts=on_azure,
    )
    aks = AksCluster(
        "aks",
        AksClusterArgs(
            cluster_name=cluster_name,
            resource_group_name=rg,
            location=az.location,
            subscription_id=az.subscription_id,
            tenant_id=az.tenant_id,
            kubernetes_version=cfg.cluster.kubernetes_version,
            node_subnet_id=net.node_subnet_id,
            api_server_subnet_id=net.api_server_subnet_id,
            pod_cidr=az.network.pod_cidr,
            service_cidr=az.network.service_cidr,
            dns_service_ip=az.network.dns_service_ip,
            private_cluster=az.api_server.private,
            authorized_ip_ranges=list(az.api_server.authorized_ip_ranges),
            egress_ip=net.nat_public_ip,
            vault_private_endpoint=lambda vault_id, parent: net.private_endpoint(
                "aks-kv", resource_id=vault_id, group=PrivateLinkGroup.VAULT, parent=parent
            ),
            admin_group_object_ids=list(az.admin_group_object_ids),
            upgrade_channel=az.upgrade_channel,
            sku_tier=sku_tier(cfg),
            system_vm_size=az.system_nodes.vm_size,
            system_os_disk_type=az.system_nodes.os_disk_type,
            system_nodes_min=az.system_nodes.min_count,
            system_nodes_max=az.system_nodes.max_count,
            zones=list(az.zones),
            tags=tags,
        ),
        opts=on_azure,
    )
    kubernetes, crds = cluster_providers(kubeconfig=aks.kubeconfig, namespace=cfg.cluster.namespace)
    general = AksUserPool(
        "general",
        AksUserPoolArgs(
            resource_group_name=rg,
            cluster_name=aks.cluster_name,
            vnet_subnet_id=net.node_subnet_id,
            vm_size=az.user_nodes.vm_size,
            min_count=az.user_nodes.min_count,
            max_count=az.user_nodes.max_count,
            os_disk_type=az.user_nodes.os_disk_type,
            zones=list(az.zones),
            tags=tags,
        ),
        opts=pulumi.ResourceOptions(provider=provider, depends_on=[aks]),
    )

    pool: AzureGpuNodePool | None = None
    if cfg.uses_gpu:
        pool = AzureGpuNodePool(
            NAME,
            AzureGpuNodePoolArgs(
                resource_group_name=rg,
                cluster_name=aks.cluster_name,
                vm_size=az.gpu_nodes.vm_size,
                max_nodes=azure_max_gpu_nodes(cfg),
                capacity_type=az.gpu_nodes.capacity_type,
                zones=list(az.gpu_nodes.zones or az.zones),
                vnet_subnet_id=net.node_subnet_id,
                os_disk_gib=az.gpu_nodes.os_disk_gib,
                os_disk_type=az.gpu_nodes.os_disk_type,
                tags=tags,
            ),
            # The device plugin chart goes to the cluster; the pool to ARM.
            opts=pulumi.ResourceOptions(
                providers={"azure-native": provider, "kubernetes": kubernetes}, depends_on=[aks, general]
            ),
        )

    server_after: list[pulumi.Resource] = [pool] if pool is not None else []
    if az.container_registry_id is not None:
        # What `az aks update --attach-acr` does: the nodes' kubelet identity pulls serving.image.
        server_after.append(
            role_assignment(
                "acr-pull",
                subscription_id=az.container_registry_id.split("/")[2],
                scope=az.container_registry_id,
                role_guid=ACR_PULL,
                principal_id=aks.kubelet_identity_object_id,
                description="the AKS nodes pull the model server's image",
                opts=pulumi.ResourceOptions(provider=provider, depends_on=[aks]),
            )
        )
    model_sa_annotations: dict[str, pulumi.Input[str]] = {}
    store_private_cidrs: list[str] = []
    if cfg.model.scheme == "az":
        # ModelServer names its ServiceAccount after the component: the first model's (the stack's own
        # model; the schema keeps every other model off the store).
        reader, credential = federated_identity(
            "model-reader",
            resource_group_name=rg,
            location=az.location,
            issuer_url=aks.oidc_issuer_url,
            namespace=cfg.cluster.namespace,
            service_account=cfg.served[0].resource_name,
            tags=tags,
            opts=on_azure,
        )
        model_sa_annotations = service_account_annotations(reader.client_id)
        store = _model_store(cfg, az, resource_group_name, net, aks, reader.principal_id, provider, tags)
        server_after += [store, credential]
        if store_private_endpoint(cfg):
            store_private_cidrs = [az.network.endpoints_subnet_cidr]

    tls_after: list[pulumi.Resource] = []
    cert_manager_client_id: pulumi.Output[str] | None = None
    dns01 = cfg.tls.acme.dns01
    if (
        cfg.tls.mode is TlsMode.ACME
        and dns01 is not None
        and dns01.provider is Dns01Provider.AZUREDNS
        and az.dns_zone is not None
    ):
        dns_identity, dns_credential = federated_identity(
            "cert-manager-dns",
            resource_group_name=rg,
            location=az.location,
            issuer_url=aks.oidc_issuer_url,
            namespace=CERT_MANAGER_NAMESPACE,
            service_account=cert_manager_service_account(NAME),
            tags=tags,
            opts=on_azure,
        )
        zone_subscription = az.dns_zone.subscription_id or az.subscription_id
        grant = role_assignment(
            "cert-manager-dns",
            subscription_id=zone_subscription,
            scope=_dns_zone_id(zone_subscription, az.dns_zone.resource_group, az.dns_zone.name),
            role_guid=DNS_ZONE_CONTRIBUTOR,
            principal_id=dns_identity.principal_id,
            description="cert-manager answers ACME DNS-01 challenges in this zone",
            opts=pulumi.ResourceOptions(provider=provider, depends_on=[dns_identity]),
        )
        tls_after += [dns_credential, grant]
        cert_manager_client_id = dns_identity.client_id

    annotations, load_balancer_class = aks_service_exposure(internal=not external)
    workload = deploy_workload(
        cfg,
        ClusterContext(
            provider=kubernetes,
            crd_provider=crds,
            placement=pool,
            exposure=GatewayExposure(
                kind=LoadBalancerKind.CLOUD,
                cloud_service_annotations=annotations,
                cloud_load_balancer_class=load_balancer_class,
            ),
            cluster_ready=[aks, general],
            server_after=server_after,
            tls_after=tls_after,
            model_service_account_annotations=model_sa_annotations,
            model_pod_labels=dict(POD_LABEL) if model_sa_annotations else {},
            # Workload ID's token exchange: the pod calls Entra ID itself (no node-local broker on AKS).
            model_extra_egress=list(ENTRA_ID_LOGIN_EGRESS) if model_sa_annotations else [],
            model_store_private_cidrs=store_private_cidrs,
            cert_manager_client_id=cert_manager_client_id,
            # The API server as pods reach it: an internal load balancer in its delegated subnet (API Server
            # VNet Integration, on public and private clusters alike: components/clusters/azure/aks.py); and
            # the `kubernetes` Service's ClusterIP (the first address of the Services range) for a dataplane
            # that matches before DNAT.
            api_server_cidrs=[
                az.network.api_server_subnet_cidr,
                f"{ipaddress.ip_network(az.network.service_cidr)[1]}/32",
            ],
        ),
    )

    address = workload.gateway.load_balancer_hostname  # an IP on AKS
    if az.dns_zone is not None and address is not None:
        zone = az.dns_zone
        relative = cfg.gateway.hostname.removesuffix(zone.name).rstrip(".") or "@"
        dns.RecordSet(
            "hostname",
            resource_group_name=zone.resource_group,
            zone_name=zone.name,
            relative_record_set_name=relative,
            record_type="A",
            ttl=300,
            a_records=[dns.ARecordArgs(ipv4_address=address)],
            opts=pulumi.ResourceOptions(
                provider=provider
                if zone.subscription_id in (None, az.subscription_id)
                else azure_native.Provider(
                    "azure-native-dns", subscription_id=zone.subscription_id, location=az.location
                )
            ),
        )

    pulumi.export("subscription_id", az.subscription_id)
    pulumi.export("location", az.location)
    pulumi.export("resource_group", rg)
    pulumi.export("cluster_name", aks.cluster_name)
    pulumi.export("kubeconfig", aks.kubeconfig)
    pulumi.export("load_balancer_ip", address)


def _store_public(cfg: StackConfig) -> bool:
    """Whether the created model store keeps a public endpoint behind its firewall (dev's default): the
    nodes then reach it through a Microsoft.Storage service endpoint on their subnet."""
    return cfg.model.scheme == "az" and not store_private_endpoint(cfg)


def _model_store(
    cfg: StackConfig,
    az: AzureConfig,
    stack_group: str,
    net: AzureNetwork,
    aks: AksCluster,
    reader_principal_id: pulumi.Input[str],
    provider: azure_native.Provider,
    tags: dict[str, str],
) -> AzureBlobModelStore:
    """The Blob model store, in a resource group of its own: `pulumi destroy` deletes the stack's group and
    everything in it (ARM's resource group delete; the provider does not refuse a non-empty group,
    pulumi/pulumi-azure-native#2522), so weights kept on destroy (force_destroy false) must live apart, and
    so must a customer-managed key's vault, or a kept account could not be read."""
    store_cfg = az.model_store
    account, container, prefix = cfg.model.azure_blob_location
    private = store_private_endpoint(cfg)
    kept = not store_cfg.force_destroy
    group_name = store_cfg.resource_group or f"{stack_group}-models"[:90]
    on_azure = pulumi.ResourceOptions(provider=provider, depends_on=[aks])
    if store_cfg.create_account:
        group = resources.ResourceGroup(
            "model-store-group",
            resource_group_name=group_name,
            location=az.location,
            tags=tags,
            opts=pulumi.ResourceOptions(provider=provider, retain_on_delete=kept),
        )
        on_azure = pulumi.ResourceOptions(provider=provider, depends_on=[aks, group])
    key: CustomerManagedKey | None = None
    if store_cfg.customer_managed_key and store_cfg.create_account:
        key, key_resource = _store_key(az, group_name, kept, private, net, on_azure, tags)
        on_azure = pulumi.ResourceOptions.merge(on_azure, pulumi.ResourceOptions(depends_on=[key_resource]))
    store = AzureBlobModelStore(
        "model-store",
        AzureBlobModelStoreArgs(
            account_name=account,
            container_name=container,
            prefix=prefix.strip("/"),
            create_account=store_cfg.create_account,
            subscription_id=az.subscription_id,
            resource_group_name=group_name,
            location=az.location,
            reader_principal_id=reader_principal_id,
            network_access=StoreNetworkAccess.PRIVATE_ENDPOINT
            if private
            else StoreNetworkAccess.ALLOW_LISTED,
            allowed_ip_ranges=[] if private else list(store_cfg.uploader_cidrs),
            allowed_subnet_ids=[] if private else [net.node_subnet_id],
            customer_managed_key=key,
            force_destroy=store_cfg.force_destroy,
            tags=tags,
        ),
        opts=on_azure,
    )
    if private:
        # An existing account too: the model server's egress goes to the endpoints subnet only.
        net.private_endpoint(
            "model-store", resource_id=store.account_id, group=PrivateLinkGroup.BLOB, parent=store
        )
    return store


def _store_key(
    az: AzureConfig,
    group_name: str,
    kept: bool,
    private: bool,
    net: AzureNetwork,
    on_azure: pulumi.ResourceOptions,
    tags: dict[str, str],
) -> tuple[CustomerManagedKey, keyvault.Key]:
    """A Key Vault and key for the model store's customer-managed key, in the store's own group and kept
    with it (components/clusters/azure/key_vault.py says how the vault is hardened). A private store's vault
    is private too, reached through its own private endpoint (keys are made in a private vault only through
    one: AKS KMS docs); Storage reaches it as a trusted Azure service."""
    keep = pulumi.ResourceOptions.merge(on_azure, pulumi.ResourceOptions(retain_on_delete=kept))
    vault = hardened_vault(
        "model-store-kv",
        resource_group_name=group_name,
        location=az.location,
        tenant_id=az.tenant_id,
        private=private,
        tags=tags,
        opts=keep,
    )
    if private:
        endpoint = net.private_endpoint(
            "model-store-kv", resource_id=vault.id, group=PrivateLinkGroup.VAULT, parent=net
        )
        keep = pulumi.ResourceOptions.merge(keep, pulumi.ResourceOptions(depends_on=[endpoint]))
    # Storage wraps and unwraps its account encryption key with it (Storage CMK docs).
    key = rsa_key(
        "model-store-key",
        resource_group_name=group_name,
        vault_name=vault.name,
        key_name=MODEL_STORE_KEY_NAME,
        size=3072,
        operations=["wrapKey", "unwrapKey"],
        tags=tags,
        opts=keep,
    )
    return (
        CustomerManagedKey(
            key_vault_id=vault.id,
            key_vault_uri=vault.properties.apply(lambda props: props.vault_uri or ""),
            key_name=MODEL_STORE_KEY_NAME,
        ),
        key,
    )


def _dns_zone_id(subscription_id: str, resource_group: str, zone: str) -> str:
    """An Azure DNS zone's resource id (Microsoft.Network/dnszones)."""
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.Network/dnszones/{zone}"
