"""AzureBlobModelStore: the model's Blob Storage location and the serving identity's read-only, prefix-scoped
grant.

The account (when the stack makes it) is private by construction, every property explicit:

- no anonymous reads (`allowBlobPublicAccess: false`, container `publicAccess: None`);
- Entra ID only: shared-key access off (`allowSharedKeyAccess: false`), so no account key or SAS signed
  with one works, and the portal defaults to Entra auth (`defaultToOAuthAuthentication`);
- HTTPS only, TLS 1.2 minimum (`supportsHttpsTrafficOnly`, `minimumTlsVersion: TLS1_2`);
- infrastructure (double) encryption, set at creation (it cannot be turned on later); Microsoft-managed keys
  by default or a customer-managed Key Vault key (CMK) through a user-assigned identity granted Key Vault
  Crypto Service Encryption User on that key before the account names it. The key is used versionless, so
  Azure Storage follows the key's rotation. (Azure Storage requires soft delete and purge protection on
  the vault: the Key Vault part's settings.)
- no cross-tenant object replication, copies only from accounts in the same Entra tenant, no SFTP or local
  users, flat namespace (Blob API; the launcher's az:// reads need nothing else);
- blob versioning and soft delete (30 days) so an overwritten or deleted shard can be restored.

Network access, one of two (`network_access`):

- `private_endpoint`: `publicNetworkAccess: Disabled`; the composition makes a private endpoint (group
  `blob`) and the privatelink.blob.core.windows.net zone in the cluster's VNet. The deployer uploads the
  weights from inside that network (a VPN, a peered network, a jump host) or from a pod.
- `allow_listed`: `publicNetworkAccess: Enabled` but the firewall's default action is Deny: only the given
  public IPs/ranges (the deployer's) and VNet subnets (the nodes', through a Microsoft.Storage service
  endpoint) get through. No trusted-service bypass either way (`bypass: None`).

The reader, the serving identity (a Workload ID managed identity, see workload_identity.py), gets Storage
Blob Data Reader on this container only, under an ABAC condition (version 2.0, the "Read or list blobs in
named containers with a path" example of "Example Azure role assignment conditions for Blob Storage"):
reads only of blobs whose path starts with `<prefix>/`, listings only with a prefix that starts with
`<prefix>/` (the launcher lists `<prefix>/`), both only in this container. The role carries no write,
delete or permission action, so the reader can only read.

Unless force_destroy, `pulumi destroy` leaves the account, its container and the CMK identity and grant in
place (the stack forgets them): removing the key grant under an account that stays would make every weight
unreadable. The reader's grant is the stack's either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pulumi
import pulumi_azure_native.managedidentity as managedidentity
import pulumi_azure_native.storage as storage

from components._common import child, reject_invalid_args
from components.clusters.azure.blob_names import ip_range_problems, prefix_problems
from components.clusters.azure.workload_identity import (
    KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
    STORAGE_BLOB_DATA_READER,
    role_assignment,
)

#: Soft-deleted blobs and containers, and old blob versions' restore window, in days.
SOFT_DELETE_DAYS = 30
#: Blob read data action, and the list sub-operation (the same action with SubOperation Blob.List).
BLOB_READ_ACTION = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
BLOB_LIST_SUBOPERATION = "Blob.List"
SKUS = ("Standard_LRS", "Standard_ZRS", "Standard_GRS", "Standard_GZRS")

# Storage account names: 3-24 lower-case letters and digits, unique in Azure.
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
# Container names: 3-63 lower-case letters, digits and single hyphens, starting and ending alphanumeric.
_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_KEY_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
_KEY_VAULT_URI = re.compile(r"^https://[0-9a-zA-Z-]{3,24}\.vault\.azure\.net/?$")
_TAG_KEY_FORBIDDEN = set("<>%&\\?/")


class StoreNetworkAccess(StrEnum):
    """How the account is reached."""

    PRIVATE_ENDPOINT = "private_endpoint"  # public endpoint disabled; reads through a private endpoint
    ALLOW_LISTED = "allow_listed"  # public endpoint, firewall default Deny, listed IPs and subnets only


@dataclass(frozen=True, kw_only=True)
class CustomerManagedKey:
    """An existing Key Vault key the account is encrypted with (RBAC-mode vault, purge protection on)."""

    key_vault_id: pulumi.Input[str]  # the vault's resource id (the grant is scoped to the key inside it)
    key_vault_uri: pulumi.Input[str]  # https://<vault>.vault.azure.net/ (checked when known)
    key_name: str  # the key's name; used versionless, so rotation is followed


@dataclass(frozen=True, kw_only=True)
class AzureBlobModelStoreArgs:
    """A Blob Storage location for model weights and the serving identity that reads them."""

    account_name: str  # the <account> of the stack's az://<account>/<container>/<prefix> model uri
    container_name: str  # the <container>
    prefix: str  # the model's folder, no leading or trailing '/'; the reader may read only under it
    create_account: bool  # True: create and own account and container; False: existing ones, only the grant
    subscription_id: pulumi.Input[str]  # the account's subscription (role definition ids, scopes)
    resource_group_name: pulumi.Input[str]  # the account's resource group
    location: str  # the cluster's region, so reads stay in-region
    reader_principal_id: pulumi.Input[str]  # principalId of the serving identity (federated_identity)
    network_access: StoreNetworkAccess = StoreNetworkAccess.PRIVATE_ENDPOINT
    allowed_ip_ranges: list[str] = field(default_factory=list)  # allow_listed: public IPs/CIDRs (uploaders)
    allowed_subnet_ids: list[pulumi.Input[str]] = field(default_factory=list)  # allow_listed: node subnets
    sku: str = "Standard_ZRS"  # replication; ZRS survives a zone loss within the region
    customer_managed_key: CustomerManagedKey | None = None  # None: Microsoft-managed keys
    force_destroy: bool = False  # created account only: let `pulumi destroy` delete it and its weights
    tags: dict[str, str] = field(default_factory=dict)  # Azure tags on what is created


def validate_azure_blob_model_store_args(args: AzureBlobModelStoreArgs) -> list[str]:
    """Every problem with the args, each naming the field; empty when they are usable."""
    problems: list[str] = []
    if not _ACCOUNT_NAME.match(args.account_name):
        problems.append(
            f"account_name: {args.account_name!r} must be 3-24 lower-case letters and digits (Azure's rule for "
            "storage account names)"
        )
    if not _CONTAINER_NAME.match(args.container_name):
        problems.append(
            f"container_name: {args.container_name!r} must be 3-63 lower-case letters, digits and single "
            "hyphens, starting and ending with a letter or digit"
        )
    problems.extend(prefix_problems(args.prefix))
    if not args.location:
        problems.append("location: the account's region is required (e.g. westeurope)")

    if not isinstance(args.network_access, StoreNetworkAccess):
        problems.append(
            f"network_access: {args.network_access!r} is not one of {', '.join(StoreNetworkAccess)}"
        )
    elif args.network_access is StoreNetworkAccess.PRIVATE_ENDPOINT:
        for name in ("allowed_ip_ranges", "allowed_subnet_ids"):
            if getattr(args, name):
                problems.append(
                    f"{name}: the public endpoint is disabled with network_access private_endpoint, so the "
                    "list would do nothing; drop it or use network_access allow_listed"
                )
    elif args.create_account and not (args.allowed_ip_ranges or args.allowed_subnet_ids):
        problems.append(
            "allowed_ip_ranges, allowed_subnet_ids: network_access allow_listed with nothing listed lets "
            "nobody in, the nodes included; list the node subnet and the uploaders' addresses"
        )
    problems.extend(ip_range_problems(args.allowed_ip_ranges))

    if args.sku not in SKUS:
        problems.append(f"sku: {args.sku!r} is not one of {', '.join(SKUS)}")
    key = args.customer_managed_key
    if key is not None:
        if isinstance(key.key_vault_uri, str) and not _KEY_VAULT_URI.match(key.key_vault_uri):
            problems.append(
                f"customer_managed_key.key_vault_uri: {key.key_vault_uri!r} is not a vault URI "
                "(https://<vault>.vault.azure.net/)"
            )
        if not _KEY_NAME.match(key.key_name):
            problems.append(
                f"customer_managed_key.key_name: {key.key_name!r} is not a key name (letters, digits, '-'); "
                "give the key's name, not its versioned id"
            )
    if not args.create_account:
        for name in ("customer_managed_key", "force_destroy"):
            if getattr(args, name):
                problems.append(
                    f"{name}: only for an account this stack creates (create_account True); an existing "
                    "account keeps its own encryption and is never deleted by this stack, so drop it"
                )
    for tag in args.tags:
        if not tag or len(tag) > 512 or set(tag) & _TAG_KEY_FORBIDDEN:
            problems.append(f"tags: key {tag!r} must be 1-512 characters without < > % & \\ ? /")
    return problems


def prefix_condition(container_name: str, prefix: str) -> str:
    """The role assignment condition that keeps a container-scoped Storage Blob Data Reader grant to
    `prefix/`: any blob read (other than a listing) must be of a blob under `prefix/`, and a listing must
    ask for a prefix starting with `prefix/`; both in `container_name` only. Actions the condition does
    not name (none the role holds besides reading container metadata) are left as the role has them."""
    container = (
        "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] "
        f"StringEquals '{container_name}'"
    )
    return (
        "("
        f" ( !(ActionMatches{{'{BLOB_READ_ACTION}'}} AND NOT SubOperationMatches{{'{BLOB_LIST_SUBOPERATION}'}}) )"
        " OR"
        f" ( {container} AND"
        " @Resource[Microsoft.Storage/storageAccounts/blobServices/containers/blobs:path]"
        f" StringStartsWith '{prefix}/' )"
        ") AND ("
        f" ( !(ActionMatches{{'{BLOB_READ_ACTION}'}} AND SubOperationMatches{{'{BLOB_LIST_SUBOPERATION}'}}) )"
        " OR"
        f" ( {container} AND"
        " @Request[Microsoft.Storage/storageAccounts/blobServices/containers/blobs:prefix]"
        f" StringStartsWith '{prefix}/' )"
        ")"
    )


def account_id(
    subscription_id: pulumi.Input[str], resource_group_name: pulumi.Input[str], account_name: str
) -> pulumi.Output[str]:
    return pulumi.Output.concat(
        "/subscriptions/",
        subscription_id,
        "/resourceGroups/",
        resource_group_name,
        f"/providers/Microsoft.Storage/storageAccounts/{account_name}",
    )


class AzureBlobModelStore(pulumi.ComponentResource):
    """The model's Blob Storage location (made here or existing) and the serving identity's read-only,
    prefix-scoped grant."""

    account_id: pulumi.Output[str]
    account_name: pulumi.Output[str]
    container_name: pulumi.Output[str]
    blob_endpoint: pulumi.Output[str]
    uri: pulumi.Output[str]
    reader: pulumi.Resource

    def __init__(
        self, name: str, args: AzureBlobModelStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        reject_invalid_args("AzureBlobModelStore", name, validate_azure_blob_model_store_args(args))
        super().__init__("inferstack:azure:AzureBlobModelStore", name, None, opts)

        the_account_id = account_id(args.subscription_id, args.resource_group_name, args.account_name)
        reader_after: list[pulumi.Resource] = [self._create(name, args)] if args.create_account else []
        self.account_id = the_account_id
        self.account_name = pulumi.Output.from_input(args.account_name)
        self.container_name = pulumi.Output.from_input(args.container_name)

        self.reader = role_assignment(
            f"{name}-reader",
            subscription_id=args.subscription_id,
            scope=pulumi.Output.concat(
                the_account_id, "/blobServices/default/containers/", args.container_name
            ),
            role_guid=STORAGE_BLOB_DATA_READER,
            principal_id=args.reader_principal_id,
            condition=prefix_condition(args.container_name, args.prefix),
            description=f"Read the model under {args.prefix}/ only",
            opts=child(self, depends_on=reader_after),
        )
        self.blob_endpoint = pulumi.Output.from_input(f"https://{args.account_name}.blob.core.windows.net/")
        # Resolved once the reader's grant exists (and so the container), so whatever reads the model
        # through it waits for both.
        model_uri = f"az://{args.account_name}/{args.container_name}/{args.prefix}"
        self.uri = self.reader.id.apply(lambda _: model_uri)

        self.register_outputs(
            {
                "account_id": self.account_id,
                "account_name": self.account_name,
                "container_name": self.container_name,
                "blob_endpoint": self.blob_endpoint,
                "uri": self.uri,
            }
        )

    def _create(self, name: str, args: AzureBlobModelStoreArgs) -> storage.BlobContainer:
        def kept(**extra: Any) -> pulumi.ResourceOptions:
            return child(self, retain_on_delete=not args.force_destroy, **extra)

        identity: storage.IdentityArgs | None = None
        encryption_identity: storage.EncryptionIdentityArgs | None = None
        key_vault_properties: storage.KeyVaultPropertiesArgs | None = None
        account_after: list[pulumi.Resource] = []
        key = args.customer_managed_key
        if key is not None:
            cmk_identity = managedidentity.UserAssignedIdentity(
                f"{name}-cmk-identity",
                resource_group_name=args.resource_group_name,
                location=args.location,
                tags=dict(args.tags),
                opts=kept(),
            )
            grant = role_assignment(
                f"{name}-cmk-key-user",
                subscription_id=args.subscription_id,
                scope=pulumi.Output.concat(key.key_vault_id, "/keys/", key.key_name),
                role_guid=KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
                principal_id=cmk_identity.principal_id,
                description="Azure Storage wraps the model store's account key with this key",
                opts=kept(),
            )
            account_after.append(grant)
            identity = storage.IdentityArgs(
                type=storage.IdentityType.USER_ASSIGNED, user_assigned_identities=[cmk_identity.id]
            )
            encryption_identity = storage.EncryptionIdentityArgs(
                encryption_user_assigned_identity=cmk_identity.id
            )
            key_vault_properties = storage.KeyVaultPropertiesArgs(
                key_name=key.key_name, key_vault_uri=key.key_vault_uri
            )

        private = args.network_access is StoreNetworkAccess.PRIVATE_ENDPOINT
        account = storage.StorageAccount(
            f"{name}-account",
            account_name=args.account_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind=storage.Kind.STORAGE_V2,
            sku=storage.SkuArgs(name=args.sku),
            access_tier=storage.AccessTier.HOT,
            allow_blob_public_access=False,
            allow_shared_key_access=False,
            default_to_o_auth_authentication=True,
            enable_https_traffic_only=True,
            minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            allow_cross_tenant_replication=False,
            allowed_copy_scope=storage.AllowedCopyScope.AAD,
            is_hns_enabled=False,
            is_sftp_enabled=False,
            is_local_user_enabled=False,
            public_network_access=(
                storage.PublicNetworkAccess.DISABLED if private else storage.PublicNetworkAccess.ENABLED
            ),
            network_rule_set=storage.NetworkRuleSetArgs(
                default_action=storage.DefaultAction.DENY,
                bypass=storage.Bypass.NONE,
                ip_rules=[
                    storage.IPRuleArgs(
                        i_p_address_or_range=r.removesuffix("/32"), action=storage.Action.ALLOW
                    )
                    for r in args.allowed_ip_ranges
                ],
                virtual_network_rules=[
                    storage.VirtualNetworkRuleArgs(virtual_network_resource_id=s, action=storage.Action.ALLOW)
                    for s in args.allowed_subnet_ids
                ],
            ),
            identity=identity,
            encryption=storage.EncryptionArgs(
                require_infrastructure_encryption=True,
                key_source=(
                    storage.KeySource.MICROSOFT_KEYVAULT
                    if key is not None
                    else storage.KeySource.MICROSOFT_STORAGE
                ),
                key_vault_properties=key_vault_properties,
                encryption_identity=encryption_identity,
                services=storage.EncryptionServicesArgs(
                    blob=storage.EncryptionServiceArgs(enabled=True, key_type=storage.KeyType.ACCOUNT)
                ),
            ),
            tags=dict(args.tags),
            opts=kept(depends_on=account_after),
        )
        storage.BlobServiceProperties(
            f"{name}-blob-service",
            account_name=account.name,
            resource_group_name=args.resource_group_name,
            blob_services_name="default",
            is_versioning_enabled=True,
            delete_retention_policy=storage.DeleteRetentionPolicyArgs(enabled=True, days=SOFT_DELETE_DAYS),
            container_delete_retention_policy=storage.DeleteRetentionPolicyArgs(
                enabled=True, days=SOFT_DELETE_DAYS
            ),
            opts=kept(),
        )
        return storage.BlobContainer(
            f"{name}-container",
            account_name=account.name,
            resource_group_name=args.resource_group_name,
            container_name=args.container_name,
            public_access=storage.PublicAccess.NONE,
            opts=kept(),
        )
