"""Microsoft Entra Workload ID on AKS: a user-assigned managed identity that exactly one Kubernetes
ServiceAccount may act as, built-in role grants to it, and what the pod and the network must carry.

How it works (azure-workload-identity docs, "Quick start" and "Service Account Labels and Annotations";
AKS "Use Microsoft Entra Workload ID with AKS"): the cluster's OIDC issuer signs the ServiceAccount's
projected token; a federated identity credential on the managed identity trusts tokens from that issuer
whose subject is `system:serviceaccount:<namespace>:<name>` and whose audience is
`api://AzureADTokenExchange`; the pod exchanges the token for an Entra access token at the Entra login
endpoint. AKS's mutating webhook does the plumbing (projected token volume, AZURE_CLIENT_ID,
AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST) for pods labelled
`azure.workload.identity/use: "true"` whose ServiceAccount is annotated with the identity's client id.
No secret or key exists anywhere.

The network: the token exchange is an HTTPS call to login.microsoftonline.com (AZURE_AUTHORITY_HOST), from
the pod itself (AKS has no node-local broker like EKS Pod Identity's agent or GKE's metadata server).
Microsoft publishes the addresses of that endpoint: "Microsoft 365 URLs and IP address ranges"
(learn.microsoft.com, endpoint set 56, Microsoft 365 Common, `login.microsoftonline.com` on TCP 443/80:
20.20.32.0/19, 20.190.128.0/18, 20.231.128.0/19, 40.126.0.0/18, plus IPv6), and Azure AD's August 2018
change notice ("Changes to Azure Active Directory IP address ranges") moved sign-in to 20.190.128.0/18 and
40.126.0.0/18 precisely so firewalls need no change as endpoints are added. ENTRA_ID_LOGIN_EGRESS is those
four IPv4 ranges on 443: a default-deny egress NetworkPolicy names them instead of the internet. Should
Microsoft add a range (the web service at endpoints.office.com versions the list), a stack adds it with
network.extra_egress until this table follows.
"""

from __future__ import annotations

import re

import pulumi
import pulumi_azure_native.authorization as authorization
import pulumi_azure_native.managedidentity as managedidentity

from components._common import reject_invalid_args

#: The only audience Entra accepts for a federated identity credential's token exchange.
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
#: Pod label that makes AKS's webhook inject the token and environment (required since webhook v1.0).
POD_LABEL = {"azure.workload.identity/use": "true"}
#: ServiceAccount annotation naming the managed identity (its client id) the pod acts as.
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
#: Where the pod exchanges its token: Entra ID's login endpoint (AZURE_AUTHORITY_HOST), HTTPS.
ENTRA_LOGIN_HOST = "login.microsoftonline.com"
#: (CIDR, TCP port) a NetworkPolicy allows for the token exchange: Entra ID's published sign-in ranges on
#: 443 (see the module docstring for the sources).
ENTRA_ID_LOGIN_CIDRS = ("20.20.32.0/19", "20.190.128.0/18", "20.231.128.0/19", "40.126.0.0/18")
ENTRA_ID_LOGIN_EGRESS: list[tuple[str, int]] = [(cidr, 443) for cidr in ENTRA_ID_LOGIN_CIDRS]
#: A role assignment's principalType for a managed identity. Setting it lets ARM accept the assignment
#: before Entra ID has replicated a just-created identity ("PrincipalNotFound" otherwise).
SERVICE_PRINCIPAL = "ServicePrincipal"
#: The only condition language version ARM accepts on role assignments.
CONDITION_VERSION = "2.0"

# Built-in role definition GUIDs: the same in every tenant ("Azure built-in roles", learn.microsoft.com/
# azure/role-based-access-control/built-in-roles).
#: AcrPull: pull images from a container registry (what `az aks update --attach-acr` grants the kubelet).
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
#: Storage Blob Data Reader: read and list blobs and containers; no write, delete or permission changes.
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
#: Key Vault Crypto User: cryptographic operations with keys (e.g. the cluster's KMS wrap/unwrap).
KEY_VAULT_CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
#: Key Vault Crypto Service Encryption User: read a key and wrap/unwrap with it; what Azure Storage's
#: customer-managed key identity needs ("Configure customer-managed keys ... for a new storage account").
KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
#: Key Vault Contributor: manage a vault (not its keys' material); what AKS needs on a private KMS vault to
#: make its private endpoint ("Add KMS etcd encryption to an AKS cluster").
KEY_VAULT_CONTRIBUTOR = "f25e0fa2-a7c8-4377-a976-54943a77a395"
#: Network Contributor: what AKS's control-plane identity needs on a bring-your-own subnet.
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67861a3b1b7"
#: DNS Zone Contributor: manage record sets in Azure DNS zones (cert-manager's DNS-01 and the A record).
DNS_ZONE_CONTRIBUTOR = "befefa01-2a29-4197-83a8-272ff33ce314"

# A Kubernetes namespace is a DNS label; a ServiceAccount name a DNS subdomain (RFC 1123).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def subject_for(namespace: str, service_account: str) -> str:
    """The token subject Kubernetes writes for a ServiceAccount, which the credential must match exactly."""
    return f"system:serviceaccount:{namespace}:{service_account}"


def service_account_annotations(client_id: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """Annotations for the Kubernetes ServiceAccount that acts as the identity."""
    return {CLIENT_ID_ANNOTATION: client_id}


def federated_identity_problems(
    issuer_url: pulumi.Input[str], namespace: str, service_account: str
) -> list[str]:
    """Every problem with the parts of a federated credential, each naming its argument."""
    problems: list[str] = []
    if isinstance(issuer_url, str) and not issuer_url.startswith("https://"):
        problems.append(
            f"issuer_url: {issuer_url!r} is not an https URL; give the cluster's OIDC issuer "
            "(managedCluster oidcIssuerProfile.issuerURL)"
        )
    if not _DNS_LABEL.match(namespace):
        problems.append(f"namespace: {namespace!r} is not a Kubernetes namespace name (a DNS label)")
    if not _DNS_SUBDOMAIN.match(service_account):
        problems.append(
            f"service_account: {service_account!r} is not a Kubernetes ServiceAccount name (a DNS subdomain)"
        )
    return problems


def federated_identity(
    name: str,
    *,
    resource_group_name: pulumi.Input[str],
    location: str,
    issuer_url: pulumi.Input[str],
    namespace: str,
    service_account: str,
    tags: dict[str, str] | None = None,
    opts: pulumi.ResourceOptions | None = None,
) -> tuple[managedidentity.UserAssignedIdentity, managedidentity.FederatedIdentityCredential]:
    """A user-assigned managed identity `<name>` and its one federated credential `<name>-federated`, which
    lets exactly the ServiceAccount `namespace/service_account` of the cluster behind `issuer_url` act as it.

    Use the identity's `client_id` in the ServiceAccount annotation (service_account_annotations) and its
    `principal_id` in role assignments. Raises ValueError listing every problem with the arguments.
    """
    reject_invalid_args(
        "federated_identity", name, federated_identity_problems(issuer_url, namespace, service_account)
    )
    identity = managedidentity.UserAssignedIdentity(
        name, resource_group_name=resource_group_name, location=location, tags=tags or {}, opts=opts
    )
    credential = managedidentity.FederatedIdentityCredential(
        f"{name}-federated",
        resource_group_name=resource_group_name,
        resource_name_=identity.name,
        issuer=issuer_url,
        subject=subject_for(namespace, service_account),
        audiences=[TOKEN_EXCHANGE_AUDIENCE],
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[identity])),
    )
    return identity, credential


def role_definition_id(subscription_id: pulumi.Input[str], role_guid: str) -> pulumi.Output[str]:
    """The subscription-scoped id of a built-in role, the form ARM returns (the tenant-level form
    /providers/... would read back different and show a diff on every refresh)."""
    return pulumi.Output.concat(
        "/subscriptions/", subscription_id, "/providers/Microsoft.Authorization/roleDefinitions/", role_guid
    )


def role_assignment(
    name: str,
    *,
    subscription_id: pulumi.Input[str],
    scope: pulumi.Input[str],
    role_guid: str,
    principal_id: pulumi.Input[str],
    condition: pulumi.Input[str] | None = None,
    description: str | None = None,
    opts: pulumi.ResourceOptions | None = None,
) -> authorization.RoleAssignment:
    """Grant the built-in role `role_guid` (one of the constants above) to a managed identity's principal
    on `scope` (a resource id), optionally under an ABAC `condition` (version 2.0). The assignment's own
    name is a GUID pulumi-azure-native generates. Raises ValueError when role_guid is not a GUID."""
    if not _GUID.match(role_guid):
        raise ValueError(f"role_assignment {name!r}: role_guid {role_guid!r} is not a role definition GUID")
    return authorization.RoleAssignment(
        name,
        scope=scope,
        role_definition_id=role_definition_id(subscription_id, role_guid),
        principal_id=principal_id,
        principal_type=SERVICE_PRINCIPAL,
        condition=condition,
        condition_version=CONDITION_VERSION if condition is not None else None,
        description=description,
        opts=opts,
    )
