"""AksCluster: an AKS cluster in an AzureNetwork, with its KMS key vault and a hardened system node pool.

Uses containerservice at ARM API 2025-09-01 (pulumi-azure-native 3.29.0's default for ManagedCluster and
listManagedClusterUserCredentials), keyvault 2024-11-01, managedidentity 2023-01-31, authorization
2022-04-01.

Security defaults (DESIGN.md): Microsoft Entra ID integration with Azure RBAC for Kubernetes authorization
and local accounts off, so every kubectl call is an Entra identity checked by Azure RBAC and no static
admin credential exists; the OIDC issuer and Workload Identity on, so pods get federated tokens instead of
secrets; Azure CNI Overlay with Cilium as dataplane and network policy engine (enforces the model server's
NetworkPolicies); egress only through the network's NAT gateway; Kubernetes Secrets encrypted in etcd
with a Key Vault key of ours (KMS); a system pool tainted CriticalAddonsOnly so workloads never land on
it, with no node public IPs.

API server. Projected into the VNet's delegated subnet (API Server VNet Integration) on every cluster, so
nodes and pods reach it on a private address. `private_cluster` (prod): no public endpoint; its name is in
public DNS (privateDNSZone "none" with the public FQDN) and resolves to the private address, so a runner in
a peered network needs no link to a private zone. Otherwise (dev): a public endpoint open only to
`authorized_ip_ranges` (never empty, never the internet) plus the cluster's own NAT address (`egress_ip`).

KMS (learn.microsoft.com, "Add Key Management Service etcd encryption to an AKS cluster"):
  - the control plane must run as a user-assigned identity: "KMS etcd encryption doesn't work with
    system-assigned managed identity ... the key vault access policy must be set before the feature is
    turned on", so the identity and its role exist before the cluster;
  - with an Azure RBAC key vault the identity needs "Key Vault Crypto User"; we grant it on the key itself,
    the narrowest scope. The KMS plugin only calls Encrypt and Decrypt (Azure/kubernetes-kms
    pkg/plugin/keyvault.go), so the key allows only those operations; it needs the key's version too
    ("key vault name, key name and key version are required"), hence `keyUriWithVersion`;
  - network access: a public key vault works with the plugin's default path, but the docs list a vault
    firewall limited to "specific virtual networks and IP addresses" as unsupported, so a Public vault is
    open at the network layer and guarded by Entra ID + RBAC alone. A Private vault "disables public
    access and enables private link" and is supported only with API
    Server VNet Integration; the identity then also needs "Key Vault Contributor" on the vault, and keys
    are made in it only through a private endpoint ("Creating or updating keys in a private key vault that
    doesn't have a private endpoint isn't supported"), which `vault_private_endpoint` makes first.
    We choose: dev (public cluster) -> Public vault; prod (private cluster, which has VNet integration
    here) -> Private vault. The mode cannot change while KMS is on, so switching a stack between private
    and public replaces the cluster;
  - "Deleting the key, the key vault, or the associated identity isn't supported" while the cluster
    uses them: the cluster depends on all three, so `pulumi destroy` removes it first. The vault has soft
    delete and purge protection, so a destroyed vault stays recoverable for `soft_delete_retention_days`
    and its auto-generated name is never reused by the next stack.

Upgrades. `upgrade_channel` "patch" (default) keeps the minor version the stack pins and applies that
minor's patch releases as AKS ships them (CVE fixes without a code change); a minor upgrade stays a
reviewed change of `kubernetes_version`. `node_os_upgrade_channel` "NodeImage" rolls the weekly AKS node
image (OS packages, containerd, kernel) through the pool's surge settings, the one channel that also
updates Azure Linux and Ubuntu images as a unit. Because the patch channel moves the patch version,
`kubernetes_version` is the minor ("1.34") whenever a version channel is on.

Kubeconfig. AKS's listClusterUserCredential with format "exec" returns a kubeconfig whose user runs
kubelogin; we keep its cluster entry (server and CA) and write our own user: `kubelogin get-token
--login azurecli --server-id 6dae42f8-4368-4678-94ff-3960e28e3630`, i.e. the caller's `az login` token
for the AKS Microsoft Entra server application (the server id every AKS-managed Entra cluster uses:
learn.microsoft.com, "Use kubelogin to authenticate in AKS", and Azure/kubelogin's docs). No token, key
or certificate of a user is in it; it is marked secret anyway since it names the private endpoint.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_azure_native.containerservice as containerservice
import pulumi_azure_native.managedidentity as managedidentity
import yaml

from components._common import child, reject_invalid_args
from components.choices import AksSkuTier, AzureOsDiskType, NodeOsUpgradeChannel, UpgradeChannel
from components.clusters.api_access import api_cidr_problems
from components.clusters.azure.key_vault import hardened_vault, rsa_key
from components.clusters.azure.network import overlay_ranges_problems
from components.clusters.azure.workload_identity import (
    KEY_VAULT_CONTRIBUTOR,
    KEY_VAULT_CRYPTO_USER,
    NETWORK_CONTRIBUTOR,
    role_assignment,
)

#: The AKS Microsoft Entra server application id (the `--server-id` kubelogin asks a token for).
AKS_AAD_SERVER_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
KUBELOGIN = "kubelogin"
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"


SYSTEM_POOL_NAME = "system"  # AKS pool names: 1-12 lowercase alphanumerics (Linux)
#: Keeps everything but critical add-ons (CoreDNS, metrics-server, konnectivity, CSI) off the system
#: pool (learn.microsoft.com, "Manage system node pools in AKS": CriticalAddonsOnly=true:NoSchedule).
SYSTEM_POOL_TAINT = "CriticalAddonsOnly=true:NoSchedule"
SYSTEM_NODE_LABELS = {"inferstack.io/node-role": "system"}
#: Azure Linux: Microsoft's container host OS, a smaller package set than Ubuntu and the same NodeImage
#: upgrade path; the GPU pool chooses its own OS.
SYSTEM_OS_SKU = "AzureLinux"
ETCD_KEY_NAME = "etcd-kms"
ETCD_KEY_OPERATIONS = ["encrypt", "decrypt"]
KMS_KEY_SIZES = (2048, 3072, 4096)
MAX_AUTHORIZED_IP_RANGES = 200  # AKS's limit on API server authorized IP ranges
MAX_PODS_OVERLAY = 250  # Azure CNI Overlay's per-node maximum
SOFT_DELETE_DAYS = (7, 90)  # Key Vault's allowed retention
ZONES = ("1", "2", "3")

#: Local (temp) disk of the VM sizes we suggest for the system pool, GiB; an Ephemeral OS disk must fit in
#: it (learn.microsoft.com, "Ddsv5 series" and "Dadsv5 series" size tables, "Temp storage (SSD) GiB").
TEMP_DISK_GIB = {
    "Standard_D2ds_v5": 75,
    "Standard_D4ds_v5": 150,
    "Standard_D8ds_v5": 300,
    "Standard_D16ds_v5": 600,
    "Standard_D2ads_v5": 75,
    "Standard_D4ads_v5": 150,
    "Standard_D8ads_v5": 300,
    "Standard_D16ads_v5": 600,
}

_CLUSTER_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LOCATION = re.compile(r"^[a-z]+[a-z0-9]*$")
_MINOR = re.compile(r"^1\.\d{2}$")
_PATCH = re.compile(r"^1\.\d{2}\.\d+$")
# Standard_<family><vCPUs><features>_v<n>; a "d" among the features means a local temp disk.
_VM_SIZE = re.compile(r"^Standard_[A-Z]+[0-9]+(?:-[0-9]+)?([a-z]*)(?:_[A-Za-z0-9]+)*$")
_RESOURCE_GROUP = re.compile(r"^[-\w._()]{1,89}[-\w_()]$")
_SURGE = re.compile(r"^(?:[1-9][0-9]*|(?:[1-9][0-9]?|100)%)$")
_COMPONENT_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
# The vault is auto-named "<name>-kv" + 8 random characters, and vault names are at most 24 characters.
_VAULT_NAME_MAX = 24
_VAULT_ROLE = "-kv"
_AUTONAME_SUFFIX = 8


_VERSION_CHANNELS = (UpgradeChannel.PATCH, UpgradeChannel.STABLE, UpgradeChannel.RAPID)


@dataclass(frozen=True, kw_only=True)
class AksClusterArgs:
    """An AKS cluster with Entra ID + Azure RBAC, Workload Identity, CNI Overlay + Cilium and KMS."""

    cluster_name: str  # AKS cluster name (1-63: letters, digits, _ and -)
    resource_group_name: pulumi.Input[str]  # the stack's resource group
    location: str  # Azure region, e.g. westeurope
    subscription_id: str  # GUID; role definition ids are scoped to it
    tenant_id: str  # Entra tenant GUID: the cluster's Entra integration and the key vault
    kubernetes_version: (
        str  # "1.34" (a minor, with a version upgrade channel) or "1.34.3" (channel none / node-image)
    )
    node_subnet_id: pulumi.Input[str]  # AzureNetwork.node_subnet_id (NAT gateway attached)
    api_server_subnet_id: (
        pulumi.Input[str] | None
    )  # AzureNetwork.api_server_subnet_id: API Server VNet Integration
    pod_cidr: str  # AzureNetwork.pod_cidr
    service_cidr: str  # AzureNetwork.service_cidr
    dns_service_ip: str  # AzureNetwork.dns_service_ip
    private_cluster: bool  # True: no public API endpoint (prod); False: public, authorized_ip_ranges only
    authorized_ip_ranges: list[str] = field(default_factory=list)  # public API server allow-list (IPv4)
    # The cluster's own egress address (the NAT gateway's public IP): a public API server admits only the
    # Standard load balancer's outbound IP by itself, so nodes and in-cluster clients leaving through a NAT
    # gateway must be listed (AKS docs, "API server authorized IP ranges": add "the cluster egress IP
    # address (firewall, NAT gateway ...)").
    egress_ip: pulumi.Input[str] | None = None
    # A private cluster's Key Vault has no public access, and AKS's KMS docs: "Creating or updating keys in a
    # private key vault that doesn't have a private endpoint isn't supported". This makes one (the network's
    # AzureNetwork.private_endpoint with group "vault", which also writes its privatelink A record):
    # (vault resource id, parent) -> the endpoint; the key waits for it.
    vault_private_endpoint: Callable[[pulumi.Input[str], pulumi.Resource], pulumi.Resource] | None = None
    admin_group_object_ids: list[str] = field(default_factory=list)  # Entra groups bound to cluster-admin
    upgrade_channel: UpgradeChannel = UpgradeChannel.PATCH
    node_os_upgrade_channel: NodeOsUpgradeChannel = NodeOsUpgradeChannel.NODE_IMAGE
    sku_tier: AksSkuTier = AksSkuTier.FREE  # Free for dev, Standard for prod (API server SLA)
    node_resource_group: str = ""  # the AKS-managed resource group for nodes; "" -> "<cluster_name>-nodes"
    system_vm_size: str = "Standard_D4ds_v5"  # 4 vCPU / 16 GiB, 150 GiB local disk (Ephemeral OS fits)
    system_os_disk_type: AzureOsDiskType = AzureOsDiskType.EPHEMERAL
    system_os_disk_gib: int = 64
    system_nodes_min: int = 2  # two, so a node upgrade or loss keeps CoreDNS and the controllers up
    system_nodes_max: int = 4
    system_max_pods: int = 110
    system_max_surge: str = "33%"  # AKS's recommendation for production pools
    zones: list[str] = field(default_factory=list)  # availability zones "1".."3"; [] = region without zones
    encryption_at_host: bool = True  # needs the Microsoft.Compute/EncryptionAtHost feature registered
    kms_key_size: int = 2048  # RSA bits
    soft_delete_retention_days: int = 90  # the key vault's soft-delete window, 7..90
    tags: dict[str, str] = field(default_factory=dict)


def _guid_problems(field_name: str, value: str) -> list[str]:
    if _GUID.match(value or ""):
        return []
    return [f"{field_name}: {value!r} is not a GUID like 00000000-0000-0000-0000-000000000000"]


def _version_problems(args: AksClusterArgs) -> list[str]:
    version = args.kubernetes_version or ""
    if args.upgrade_channel in _VERSION_CHANNELS:
        if _PATCH.match(version):
            minor = version.rsplit(".", 1)[0]
            return [
                f"kubernetes_version: {version!r} pins a patch that the {args.upgrade_channel.value!r} "
                f"upgrade channel moves past (AKS refuses the downgrade); give the minor, {minor!r}"
            ]
        if not _MINOR.match(version):
            return [f"kubernetes_version: {version!r} is not a minor version like '1.34'"]
        return []
    if not (_MINOR.match(version) or _PATCH.match(version)):
        return [f"kubernetes_version: {version!r} is not a version like '1.34' or '1.34.3'"]
    return []


def _api_server_problems(args: AksClusterArgs) -> list[str]:
    if args.private_cluster:
        problems = []
        if args.authorized_ip_ranges:
            problems.append(
                "private_cluster/authorized_ip_ranges: a private cluster has no public endpoint to allow-list; "
                "drop the ranges, or make the cluster public"
            )
        if args.api_server_subnet_id is None:
            problems.append(
                "api_server_subnet_id: a private cluster here uses API Server VNet Integration (needed for "
                "the private KMS key vault); pass AzureNetwork.api_server_subnet_id"
            )
        if args.vault_private_endpoint is None:
            problems.append(
                "vault_private_endpoint: a private cluster's Key Vault has no public access, and keys are made "
                "in it only through a private endpoint; pass a maker (AzureNetwork.private_endpoint, group vault)"
            )
        return problems
    if not args.authorized_ip_ranges:
        return [
            "authorized_ip_ranges: a public API server needs an allow-list; list your networks (VPN, CI "
            "egress) or set private_cluster"
        ]
    problems = api_cidr_problems(
        "authorized_ip_ranges",
        args.authorized_ip_ranges,
        open_fix="list your networks, or set private_cluster",
        ipv6_refusal="AKS authorized IP ranges are IPv4",
    )
    if len(args.authorized_ip_ranges) > MAX_AUTHORIZED_IP_RANGES:
        problems.append(
            f"authorized_ip_ranges: AKS allows at most {MAX_AUTHORIZED_IP_RANGES}; merge adjacent ranges"
        )
    return problems


def _system_pool_problems(args: AksClusterArgs) -> list[str]:
    problems: list[str] = []
    size = _VM_SIZE.match(args.system_vm_size or "")
    if not size:
        problems.append(
            f"system_vm_size: {args.system_vm_size!r} is not an Azure VM size like Standard_D4ds_v5"
        )
    elif args.system_os_disk_type is AzureOsDiskType.EPHEMERAL:
        local_disk = TEMP_DISK_GIB.get(args.system_vm_size)
        if "d" not in size.group(1):
            problems.append(
                f"system_os_disk_type: {args.system_vm_size} has no local disk for an Ephemeral OS disk; "
                "pick a size with 'd' (Standard_D4ds_v5) or set Managed"
            )
        elif local_disk is not None and args.system_os_disk_gib > local_disk:
            problems.append(
                f"system_os_disk_gib: {args.system_os_disk_gib} GiB does not fit the {local_disk} GiB local "
                f"disk of {args.system_vm_size} (Ephemeral); lower it or set system_os_disk_type Managed"
            )
    if not 30 <= args.system_os_disk_gib <= 2048:
        problems.append(f"system_os_disk_gib: {args.system_os_disk_gib} is outside 30..2048")
    if args.system_nodes_min < 1:
        problems.append(
            "system_nodes_min: a cluster needs a system node for CoreDNS and metrics; use 1 or more"
        )
    if args.system_nodes_min > args.system_nodes_max:
        problems.append(
            f"system_nodes_min/system_nodes_max: need min <= max, got {args.system_nodes_min}/"
            f"{args.system_nodes_max}"
        )
    if args.system_nodes_max > 1000:
        problems.append(f"system_nodes_max: {args.system_nodes_max} is above AKS's 1,000 nodes per pool")
    if not 10 <= args.system_max_pods <= MAX_PODS_OVERLAY:
        problems.append(
            f"system_max_pods: {args.system_max_pods} is outside 10..{MAX_PODS_OVERLAY} (Azure CNI Overlay)"
        )
    if not _SURGE.match(args.system_max_surge or ""):
        problems.append(
            f"system_max_surge: {args.system_max_surge!r} is neither a node count ('1') nor a percentage "
            "('33%')"
        )
    for i, zone in enumerate(args.zones):
        if zone not in ZONES:
            problems.append(f"zones[{i}]: {zone!r} is not an availability zone; use '1', '2' or '3'")
    if len(set(args.zones)) != len(args.zones):
        problems.append("zones: lists a zone twice; drop the repeat")
    return problems


def validate_aks_cluster_args(args: AksClusterArgs) -> list[str]:
    """Every problem with the args, each naming its field; empty when they are usable."""
    problems: list[str] = []
    if not _CLUSTER_NAME.match(args.cluster_name or ""):
        problems.append(
            f"cluster_name: {args.cluster_name!r} is not an AKS cluster name; use 1-63 letters, digits, _ and "
            "-, starting and ending with a letter or digit"
        )
    if not _LOCATION.match(args.location or ""):
        problems.append(f"location: {args.location!r} is not an Azure region name like westeurope")
    problems += _guid_problems("subscription_id", args.subscription_id)
    problems += _guid_problems("tenant_id", args.tenant_id)
    problems += _version_problems(args)
    if args.upgrade_channel is UpgradeChannel.NODE_IMAGE and (
        args.node_os_upgrade_channel is not NodeOsUpgradeChannel.NODE_IMAGE
    ):
        problems.append(
            "upgrade_channel/node_os_upgrade_channel: the node-image upgrade channel needs the NodeImage "
            "node OS channel (AKS refuses the pair otherwise)"
        )
    problems += _api_server_problems(args)
    if not args.admin_group_object_ids:
        problems.append(
            "admin_group_object_ids: with local accounts off, an Entra group must hold cluster-admin; give "
            "its object id (az ad group show -g <name> --query id -o tsv)"
        )
    for i, group in enumerate(args.admin_group_object_ids):
        problems += _guid_problems(f"admin_group_object_ids[{i}]", group)
    problems += overlay_ranges_problems(
        pod_cidr=args.pod_cidr, service_cidr=args.service_cidr, dns_service_ip=args.dns_service_ip
    )
    if args.node_resource_group and not _RESOURCE_GROUP.match(args.node_resource_group):
        problems.append(
            f"node_resource_group: {args.node_resource_group!r} is not a resource group name (1-90 letters, "
            "digits, - _ . ( ), not ending with .)"
        )
    problems += _system_pool_problems(args)
    if args.kms_key_size not in KMS_KEY_SIZES:
        problems.append(
            f"kms_key_size: {args.kms_key_size} is not an RSA size Key Vault offers {KMS_KEY_SIZES}"
        )
    low, high = SOFT_DELETE_DAYS
    if not low <= args.soft_delete_retention_days <= high:
        problems.append(
            f"soft_delete_retention_days: {args.soft_delete_retention_days} is outside Key Vault's {low}..{high}"
        )
    for key in args.tags:
        if any(c in key for c in "<>%&\\?/") or len(key) > 512:
            problems.append(f"tags: key {key!r} may not hold < > % & \\ ? / (Azure tag names)")
    return problems


def component_name_problems(name: str) -> list[str]:
    """The KMS vault is auto-named after the component, and vault names are at most 24 characters."""
    longest = len(name) + len(_VAULT_ROLE) + _AUTONAME_SUFFIX
    if not _COMPONENT_NAME.match(name or "") or longest > _VAULT_NAME_MAX:
        return [
            f"name: {name!r} must be lowercase letters, digits and -, start with a letter and be at most "
            f"{_VAULT_NAME_MAX - len(_VAULT_ROLE) - _AUTONAME_SUFFIX} characters (Key Vault names)"
        ]
    return []


def kubeconfig(context: str, server: str, ca_certificate: str) -> str:
    """A kubeconfig (JSON, which is YAML) for `server` whose user runs kubelogin with the caller's Azure CLI
    login: a short-lived Entra token for the AKS server application, no credential stored.
    `ca_certificate` is the base64 PEM of the cluster CA, as AKS reports it."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": context, "cluster": {"server": server, "certificate-authority-data": ca_certificate}}
        ],
        "users": [
            {
                "name": context,
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API_VERSION,
                        "command": KUBELOGIN,
                        "args": ["get-token", "--login", "azurecli", "--server-id", AKS_AAD_SERVER_ID],
                        "provideClusterInfo": False,
                        "installHint": (
                            "Install kubelogin (az aks install-cli, or https://github.com/Azure/kubelogin "
                            "releases) and run az login"
                        ),
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }
    return json.dumps(config, indent=2)


def kubeconfig_from_credentials(context: str, credential_kubeconfig: str) -> str:
    """Our kubeconfig from the cluster entry of AKS's user credential (a base64 kubeconfig, as
    listClusterUserCredential returns it): same server and CA, our exec user. Raises ValueError when the
    credential holds no cluster with a server and CA."""
    try:
        parsed: Any = yaml.safe_load(base64.b64decode(credential_kubeconfig, validate=True))
    except (ValueError, yaml.YAMLError) as error:
        raise ValueError(f"AKS user credential is not a base64 kubeconfig: {error}") from error
    clusters = parsed.get("clusters") if isinstance(parsed, dict) else None
    entry = (clusters or [{}])[0].get("cluster") or {}
    server, ca = entry.get("server"), entry.get("certificate-authority-data")
    if not server or not ca:
        raise ValueError("AKS user credential has no cluster server and certificate-authority-data")
    return kubeconfig(context, str(server), str(ca))


def _kubelet_object_id(profiles: Any) -> str:
    """The kubelet identity's object id from the cluster's identityProfile ("" until AKS reports it)."""
    kubelet = (profiles or {}).get("kubeletidentity")
    return str(getattr(kubelet, "object_id", None) or "")


class AksCluster(pulumi.ComponentResource):
    """Control-plane identity, KMS key vault and key, their role assignments, and the AKS cluster."""

    cluster: containerservice.ManagedCluster
    cluster_name: pulumi.Output[str]
    cluster_id: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    kubelet_identity_object_id: pulumi.Output[str]
    control_plane_identity_principal_id: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    node_resource_group: str
    system_pool_name: str
    kms_key_id: pulumi.Output[str]
    key_vault_id: pulumi.Output[str]

    def __init__(self, name: str, args: AksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args(
            "AksCluster", name, component_name_problems(name) + validate_aks_cluster_args(args)
        )
        super().__init__("inferstack:azure:AksCluster", name, None, opts)
        rg = args.resource_group_name
        tags = dict(args.tags)
        private_vault = args.private_cluster  # see the module docstring, KMS network access

        identity = managedidentity.UserAssignedIdentity(
            f"{name}-control-plane",
            resource_group_name=rg,
            location=args.location,
            tags=tags,
            opts=child(self),
        )
        vault = hardened_vault(
            f"{name}{_VAULT_ROLE}",
            resource_group_name=rg,
            location=args.location,
            tenant_id=args.tenant_id,
            private=private_vault,
            retention_days=args.soft_delete_retention_days,
            tags=tags,
            opts=child(self),
        )
        key_after: list[pulumi.Resource] = []
        if private_vault and args.vault_private_endpoint is not None:
            key_after.append(args.vault_private_endpoint(vault.id, self))
        key = rsa_key(
            f"{name}-etcd-key",
            resource_group_name=rg,
            vault_name=vault.name,
            key_name=ETCD_KEY_NAME,
            size=args.kms_key_size,
            operations=ETCD_KEY_OPERATIONS,
            tags=tags,
            opts=child(self, depends_on=key_after),
        )
        grants: list[pulumi.Resource] = [
            role_assignment(
                f"{name}-kms-crypto-user",
                subscription_id=args.subscription_id,
                scope=key.id,
                role_guid=KEY_VAULT_CRYPTO_USER,
                principal_id=identity.principal_id,
                description="InferStack: AKS control plane encrypts/decrypts etcd Secrets (KMS)",
                opts=child(self, depends_on=[identity]),
            )
        ]
        if private_vault:
            grants.append(
                role_assignment(
                    f"{name}-kms-vault-contributor",
                    subscription_id=args.subscription_id,
                    scope=vault.id,
                    role_guid=KEY_VAULT_CONTRIBUTOR,
                    principal_id=identity.principal_id,
                    description="InferStack: AKS makes the private endpoint of the KMS key vault",
                    opts=child(self, depends_on=[identity]),
                )
            )
        # Bring-your-own subnets: the control plane joins the nodes and the API server (VNet Integration) to them.
        subnets: list[tuple[str, pulumi.Input[str]]] = [("nodes", args.node_subnet_id)]
        if args.api_server_subnet_id is not None:
            subnets.append(("apiserver", args.api_server_subnet_id))
        for role, subnet_id in subnets:
            grants.append(
                role_assignment(
                    f"{name}-{role}-subnet-network",
                    subscription_id=args.subscription_id,
                    scope=subnet_id,
                    role_guid=NETWORK_CONTRIBUTOR,
                    principal_id=identity.principal_id,
                    description="InferStack: AKS control plane manages its bring-your-own subnet",
                    opts=child(self, depends_on=[identity]),
                )
            )

        if args.private_cluster:
            # privateDNSZone "none" with the public FQDN on: the API server's name is in public DNS and
            # resolves to its private address (AKS docs, "Create a private AKS cluster": "--private-dns-zone
            # none" needs "--enable-public-fqdn"). A runner in a peered network or over VPN reaches it with
            # no VNet link to a zone AKS would keep in the node resource group, which the ReadOnly lockdown
            # below lets no one edit. The name is public; the address is not reachable from outside.
            api_access = containerservice.ManagedClusterAPIServerAccessProfileArgs(
                enable_private_cluster=True,
                enable_private_cluster_public_fqdn=True,
                private_dns_zone="none",
                enable_vnet_integration=True,
                subnet_id=args.api_server_subnet_id,
                # `az aks command invoke` stays available: it is authorized by Entra ID + Azure RBAC and
                # is how an operator outside the VNet reaches a private cluster.
                disable_run_command=False,
            )
        else:
            # API Server VNet Integration on a public cluster too (AKS docs, "API Server VNet Integration":
            # public or private clusters): the API server also gets an internal load balancer in its
            # delegated subnet, and nodes and pods reach it there. Without it, the `kubernetes` Service of a
            # public cluster leads to the API server's public address, which a pod's egress NetworkPolicy
            # (Cilium applies it after service translation) cannot name: the endpoint picker could not start.
            api_access = containerservice.ManagedClusterAPIServerAccessProfileArgs(
                enable_private_cluster=False,
                enable_vnet_integration=args.api_server_subnet_id is not None,
                subnet_id=args.api_server_subnet_id,
                authorized_ip_ranges=[
                    *args.authorized_ip_ranges,
                    *([pulumi.Output.concat(args.egress_ip, "/32")] if args.egress_ip is not None else []),
                ],
                disable_run_command=True,
            )
        self.node_resource_group = args.node_resource_group or f"{args.cluster_name}-nodes"
        self.system_pool_name = SYSTEM_POOL_NAME
        self.cluster = containerservice.ManagedCluster(
            f"{name}-cluster",
            resource_name_=args.cluster_name,
            resource_group_name=rg,
            location=args.location,
            dns_prefix=args.cluster_name,
            kubernetes_version=args.kubernetes_version,
            sku=containerservice.ManagedClusterSKUArgs(name="Base", tier=args.sku_tier.value),
            identity=containerservice.ManagedClusterIdentityArgs(
                type=containerservice.ResourceIdentityType.USER_ASSIGNED,
                user_assigned_identities=[identity.id],
            ),
            enable_rbac=True,
            disable_local_accounts=True,
            aad_profile=containerservice.ManagedClusterAADProfileArgs(
                managed=True,
                enable_azure_rbac=True,
                admin_group_object_ids=list(args.admin_group_object_ids),
                tenant_id=args.tenant_id,
            ),
            oidc_issuer_profile=containerservice.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
            security_profile=containerservice.ManagedClusterSecurityProfileArgs(
                workload_identity=containerservice.ManagedClusterSecurityProfileWorkloadIdentityArgs(
                    enabled=True
                ),
                azure_key_vault_kms=containerservice.AzureKeyVaultKmsArgs(
                    enabled=True,
                    key_id=key.key_uri_with_version,
                    key_vault_network_access="Private" if private_vault else "Public",
                    key_vault_resource_id=vault.id if private_vault else None,
                ),
            ),
            api_server_access_profile=api_access,
            # The API server's exposure is decided by apiServerAccessProfile above; this flag stays on.
            public_network_access="Enabled",
            network_profile=containerservice.ContainerServiceNetworkProfileArgs(
                network_plugin="azure",
                network_plugin_mode="overlay",
                network_dataplane="cilium",
                network_policy="cilium",
                pod_cidr=args.pod_cidr,
                service_cidr=args.service_cidr,
                dns_service_ip=args.dns_service_ip,
                ip_families=["IPv4"],
                outbound_type="userAssignedNATGateway",
                load_balancer_sku="standard",
            ),
            auto_upgrade_profile=containerservice.ManagedClusterAutoUpgradeProfileArgs(
                upgrade_channel=args.upgrade_channel.value,
                node_os_upgrade_channel=args.node_os_upgrade_channel.value,
            ),
            node_resource_group=self.node_resource_group,
            # Nobody, not even a subscription Owner, edits the AKS-managed node resources by hand.
            node_resource_group_profile=containerservice.ManagedClusterNodeResourceGroupProfileArgs(
                restriction_level="ReadOnly"
            ),
            # Only the CSI drivers the stack uses: disks (and their snapshots); no Azure Files or Blob mounts.
            storage_profile=containerservice.ManagedClusterStorageProfileArgs(
                disk_csi_driver=containerservice.ManagedClusterStorageProfileDiskCSIDriverArgs(enabled=True),
                snapshot_controller=containerservice.ManagedClusterStorageProfileSnapshotControllerArgs(
                    enabled=True
                ),
                file_csi_driver=containerservice.ManagedClusterStorageProfileFileCSIDriverArgs(enabled=False),
                blob_csi_driver=containerservice.ManagedClusterStorageProfileBlobCSIDriverArgs(enabled=False),
            ),
            agent_pool_profiles=[
                containerservice.ManagedClusterAgentPoolProfileArgs(
                    name=SYSTEM_POOL_NAME,
                    mode="System",
                    type="VirtualMachineScaleSets",
                    vm_size=args.system_vm_size,
                    os_type="Linux",
                    os_sku=SYSTEM_OS_SKU,
                    os_disk_type=args.system_os_disk_type.value,
                    os_disk_size_gb=args.system_os_disk_gib,
                    orchestrator_version=args.kubernetes_version,
                    count=args.system_nodes_min,
                    enable_auto_scaling=True,
                    min_count=args.system_nodes_min,
                    max_count=args.system_nodes_max,
                    max_pods=args.system_max_pods,
                    availability_zones=list(args.zones) or None,
                    vnet_subnet_id=args.node_subnet_id,
                    enable_node_public_ip=False,
                    enable_encryption_at_host=args.encryption_at_host,
                    enable_fips=False,
                    node_taints=[SYSTEM_POOL_TAINT],
                    node_labels=dict(SYSTEM_NODE_LABELS),
                    upgrade_settings=containerservice.AgentPoolUpgradeSettingsArgs(
                        max_surge=args.system_max_surge, max_unavailable="0"
                    ),
                    tags=tags,
                )
            ],
            tags=tags,
            opts=child(
                self,
                # KMS is on from the first write, so the identity must already hold its roles.
                depends_on=grants,
                # The autoscaler owns the pool's size after creation.
                ignore_changes=["agentPoolProfiles[0].count"],
            ),
        )

        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=rg,
            # The cluster's id resolves once it exists, so the credential is read after creation.
            resource_name=self.cluster.id.apply(lambda _: args.cluster_name),
            format="exec",
            # The public FQDN (a private address for a private cluster: see api_access above).
            server_fqdn="public",
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        context = args.cluster_name
        self.kubeconfig = pulumi.Output.secret(
            credentials.kubeconfigs.apply(lambda items: kubeconfig_from_credentials(context, items[0].value))
        )
        self.cluster_name = self.cluster.name
        self.cluster_id = self.cluster.id
        self.oidc_issuer_url = self.cluster.oidc_issuer_profile.apply(
            lambda profile: (profile.issuer_url if profile else None) or ""
        )
        self.kubelet_identity_object_id = self.cluster.identity_profile.apply(_kubelet_object_id)
        self.control_plane_identity_principal_id = identity.principal_id
        self.kms_key_id = key.key_uri_with_version
        self.key_vault_id = vault.id
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "cluster_id": self.cluster_id,
                "oidc_issuer_url": self.oidc_issuer_url,
                "kubelet_identity_object_id": self.kubelet_identity_object_id,
                "kubeconfig": self.kubeconfig,
                "node_resource_group": self.node_resource_group,
                "system_pool_name": self.system_pool_name,
            }
        )
