"""A Key Vault for the stack's keys, hardened the one way both its users need: the cluster's KMS key
(components/clusters/azure/aks.py) and the model store's customer-managed key (stacks/azure.py).

- Azure RBAC for the data plane (`enableRbacAuthorization`): access policies are ignored, grants are role
  assignments on the key itself.
- Soft delete and purge protection: what both AKS KMS and Storage customer-managed keys require (AKS
  "Add KMS etcd encryption", Storage "Customer-managed keys for account encryption"); a deleted vault is
  kept for `retention_days` and cannot be purged early, so it never loses a key a disk or etcd still needs.
- No deployment, disk-encryption or template access (`enabledFor*` false): no VM or ARM template reads it.
- The network: `private` closes public access (reached through a private endpoint, which the caller makes);
  otherwise public, with the firewall open: AKS's KMS docs call a vault firewall limited to networks
  unsupported for a public KMS vault, so Entra ID and RBAC guard it. Trusted Azure services pass either way
  (`bypass: AzureServices`), which Storage's CMK access needs.
"""

from __future__ import annotations

import pulumi
import pulumi_azure_native.keyvault as keyvault


def hardened_vault(
    name: str,
    *,
    resource_group_name: pulumi.Input[str],
    location: str,
    tenant_id: str,
    private: bool,
    retention_days: int = 90,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> keyvault.Vault:
    """The vault (auto-named `name` + 8 characters: keep `name` within 16 for Key Vault's 24)."""
    return keyvault.Vault(
        name,
        resource_group_name=resource_group_name,
        location=location,
        properties=keyvault.VaultPropertiesArgs(
            tenant_id=tenant_id,
            sku=keyvault.SkuArgs(family="A", name=keyvault.SkuName.STANDARD),
            enable_rbac_authorization=True,
            enable_soft_delete=True,
            soft_delete_retention_in_days=retention_days,
            enable_purge_protection=True,
            enabled_for_deployment=False,
            enabled_for_disk_encryption=False,
            enabled_for_template_deployment=False,
            public_network_access="Disabled" if private else "Enabled",
            network_acls=keyvault.NetworkRuleSetArgs(
                default_action="Deny" if private else "Allow", bypass="AzureServices"
            ),
        ),
        tags=tags,
        opts=opts,
    )


def rsa_key(
    name: str,
    *,
    resource_group_name: pulumi.Input[str],
    vault_name: pulumi.Input[str],
    key_name: str,
    size: int,
    operations: list[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> keyvault.Key:
    """An RSA key that allows only `operations` (e.g. encrypt/decrypt for KMS, wrapKey/unwrapKey for
    Storage) and can never be exported."""
    return keyvault.Key(
        name,
        resource_group_name=resource_group_name,
        vault_name=vault_name,
        key_name=key_name,
        properties=keyvault.KeyPropertiesArgs(
            kty="RSA",
            key_size=size,
            key_ops=list(operations),
            attributes=keyvault.KeyAttributesArgs(enabled=True, exportable=False),
        ),
        tags=tags,
        opts=opts,
    )
