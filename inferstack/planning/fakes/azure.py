"""Realistic, deterministic Azure (`azure-native`) outputs and data-source answers for the recording mock.

Every `azure-native:` resource gets what Azure Resource Manager and the provider would compute: its ARM
resource id (/subscriptions/<sub>/resourceGroups/<rg>/providers/<Namespace>/<type>/<name>[/<child type>/
<name>...], the shape of "resourceId()" in learn.microsoft.com "Template functions - resources"), its
physical name, its ARM `type`, `provisioningState`, the API version the provider used (`azureApiVersion`,
set by the provider at Check since v3), and the computed attributes callers read: an AKS cluster's FQDNs,
OIDC issuer URL, kubelet identity and node resource group; a vault's URI; a key's URIs; an identity's
client/principal ids; a storage account's endpoints; a public IP's address; a private endpoint's NIC and
private address; a DNS zone's name servers.

Names: where the resource's name input is absent, azure-native auto-names it the way its Check does
(pulumi-azure-native provider/pkg/provider/provider.go `getDefaultName`): strategy "random" is the logical
name + 8 random hex characters with no separator ("test" -> "test614742c2", autonaming_test.go); strategy
"uuid" (a role assignment, whose name must be a GUID) is a random UUID. The provider does not lower-case or
strip the logical name, so an auto-named storage account whose logical name has a dash or capital is
rejected by ARM (pulumi/pulumi-azure-native#3665): the fake gives the same name and the stack must name
its storage account explicitly. Location: the input, else the provider's `location` setting, else the
resource group's location (provider.go `getDefaultLocation`, same order); zones and their links are
"global".

Everything derives from type, name and inputs (GUIDs are uuid5 of what they identify), so plans are
byte-identical between runs. Values that only a real deployment knows (random suffixes, GUIDs, addresses)
are stand-ins in the real formats; the recording mock marks them as made up.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
import uuid
from collections.abc import Callable
from typing import Any

#: Fake ids in the form of Microsoft's documentation placeholder GUIDs (learn.microsoft.com contributor guide,
#: "Use of GUIDs in documentation"), so nobody mistakes them for a real subscription or tenant.
FAKE_SUBSCRIPTION_ID = "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e"
FAKE_TENANT_ID = "aaaabbbb-0000-cccc-1111-dddd2222eeee"
#: The deployer's identity as `azure-native:authorization:getClientConfig` reports it (a service principal
#: signed in with OIDC in CI, or a user with `az login`).
FAKE_DEPLOYER_CLIENT_ID = "00001111-aaaa-2222-bbbb-3333cccc4444"
FAKE_DEPLOYER_OBJECT_ID = "bbbbbbbb-1111-2222-3333-cccccccccccc"
DEFAULT_LOCATION = "eastus"
#: What AKS runs when the cluster asks for a minor version only (AKS picks that minor's latest patch).
FAKE_KUBERNETES_PATCH = "1"
DEFAULT_KUBERNETES_VERSION = "1.34.1"

#: The AKS Microsoft Entra server application (its id is the same in every tenant) and kubelogin's
#: public client id, as AKS writes them into an Entra ID cluster's exec kubeconfig (Azure/kubelogin README,
#: "Exec plugin format"; learn.microsoft.com "Use kubelogin to authenticate users in AKS").
AKS_AAD_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
KUBELOGIN_DEFAULT_CLIENT_ID = "80faf920-1908-4b52-b5ef-a8e7bedfc67a"

_GUID_NAMESPACE = uuid.UUID("6f2d35e4-5a0b-5c51-9d7a-1e0c4f7b2a90")

#: The input that names each resource type (the ARM path parameter for its own name), per the SDK's
#: `*Args` classes at pulumi-azure-native 3.29.0.
NAME_INPUT: dict[str, str] = {
    "azure-native:resources:ResourceGroup": "resourceGroupName",
    "azure-native:network:VirtualNetwork": "virtualNetworkName",
    "azure-native:network:Subnet": "subnetName",
    "azure-native:network:NatGateway": "natGatewayName",
    "azure-native:network:PublicIPAddress": "publicIpAddressName",
    "azure-native:network:NetworkSecurityGroup": "networkSecurityGroupName",
    "azure-native:network:PrivateEndpoint": "privateEndpointName",
    "azure-native:network:PrivateDnsZoneGroup": "privateDnsZoneGroupName",
    "azure-native:privatedns:PrivateZone": "privateZoneName",
    "azure-native:privatedns:VirtualNetworkLink": "virtualNetworkLinkName",
    "azure-native:dns:Zone": "zoneName",
    "azure-native:dns:RecordSet": "relativeRecordSetName",
    "azure-native:containerservice:ManagedCluster": "resourceName",
    "azure-native:containerservice:AgentPool": "agentPoolName",
    "azure-native:keyvault:Vault": "vaultName",
    "azure-native:keyvault:Key": "keyName",
    "azure-native:managedidentity:UserAssignedIdentity": "resourceName",
    "azure-native:managedidentity:FederatedIdentityCredential": "federatedIdentityCredentialResourceName",
    "azure-native:authorization:RoleAssignment": "roleAssignmentName",
    "azure-native:storage:StorageAccount": "accountName",
    "azure-native:storage:BlobContainer": "containerName",
    "azure-native:storage:BlobServiceProperties": "blobServicesName",
}

#: The ARM API version each type's module uses by default at pulumi-azure-native 3.29.0 (the SDK's docstrings:
#: "Uses Azure REST API version ..."); the provider records it as the `azureApiVersion` output.
API_VERSION: dict[str, str] = {
    "azure-native:resources:ResourceGroup": "2024-03-01",
    "azure-native:network:VirtualNetwork": "2024-05-01",
    "azure-native:network:Subnet": "2024-05-01",
    "azure-native:network:NatGateway": "2024-05-01",
    "azure-native:network:PublicIPAddress": "2024-05-01",
    "azure-native:network:NetworkSecurityGroup": "2024-05-01",
    "azure-native:network:PrivateEndpoint": "2024-05-01",
    "azure-native:network:PrivateDnsZoneGroup": "2024-05-01",
    "azure-native:privatedns:PrivateZone": "2024-06-01",
    "azure-native:privatedns:VirtualNetworkLink": "2024-06-01",
    "azure-native:dns:Zone": "2023-07-01-preview",
    "azure-native:dns:RecordSet": "2023-07-01-preview",
    "azure-native:containerservice:ManagedCluster": "2025-09-01",
    "azure-native:containerservice:AgentPool": "2025-09-01",
    "azure-native:keyvault:Vault": "2024-11-01",
    "azure-native:keyvault:Key": "2024-11-01",
    "azure-native:managedidentity:UserAssignedIdentity": "2023-01-31",
    "azure-native:managedidentity:FederatedIdentityCredential": "2023-01-31",
    "azure-native:authorization:RoleAssignment": "2022-04-01",
    "azure-native:storage:StorageAccount": "2024-01-01",
    "azure-native:storage:BlobContainer": "2024-01-01",
    "azure-native:storage:BlobServiceProperties": "2024-01-01",
}

#: Resource provider namespace per SDK module, for ids of types without their own branch below.
_NAMESPACE = {
    "resources": "Microsoft.Resources",
    "network": "Microsoft.Network",
    "privatedns": "Microsoft.Network",
    "dns": "Microsoft.Network",
    "containerservice": "Microsoft.ContainerService",
    "keyvault": "Microsoft.KeyVault",
    "managedidentity": "Microsoft.ManagedIdentity",
    "authorization": "Microsoft.Authorization",
    "storage": "Microsoft.Storage",
    "monitor": "Microsoft.Insights",
    "operationalinsights": "Microsoft.OperationalInsights",
}

#: Types whose location is always "global" (DNS zones, private DNS zones and their links: ARM rejects any
#: other; learn.microsoft.com REST reference, Zones / Private Zones "location": "Global").
_GLOBAL = {
    "azure-native:dns:Zone",
    "azure-native:privatedns:PrivateZone",
    "azure-native:privatedns:VirtualNetworkLink",
}
#: Types that are tracked ARM resources in a region (they carry a location).
_REGIONAL = {
    "azure-native:resources:ResourceGroup",
    "azure-native:network:VirtualNetwork",
    "azure-native:network:NatGateway",
    "azure-native:network:PublicIPAddress",
    "azure-native:network:NetworkSecurityGroup",
    "azure-native:network:PrivateEndpoint",
    "azure-native:containerservice:ManagedCluster",
    "azure-native:keyvault:Vault",
    "azure-native:managedidentity:UserAssignedIdentity",
    "azure-native:storage:StorageAccount",
}

#: The rules every network security group has below its own (priorities 65000-65500), as ARM returns them in
#: `defaultSecurityRules` (learn.microsoft.com "Network security groups", "Default security rules").
_DEFAULT_NSG_RULES = (
    ("AllowVnetInBound", "Inbound", "Allow", 65000, "VirtualNetwork", "VirtualNetwork"),
    ("AllowAzureLoadBalancerInBound", "Inbound", "Allow", 65001, "AzureLoadBalancer", "*"),
    ("DenyAllInBound", "Inbound", "Deny", 65500, "*", "*"),
    ("AllowVnetOutBound", "Outbound", "Allow", 65000, "VirtualNetwork", "VirtualNetwork"),
    ("AllowInternetOutBound", "Outbound", "Allow", 65001, "*", "Internet"),
    ("DenyAllOutBound", "Outbound", "Deny", 65500, "*", "*"),
)

#: The public DNS suffix of a private endpoint's target, per group id (learn.microsoft.com "Azure Private
#: Endpoint private DNS zone values": blob -> privatelink.blob.core.windows.net, vault -> privatelink.
#: vaultcore.azure.net; the public names are <account>.blob.core.windows.net and <vault>.vault.azure.net).
_PRIVATE_LINK_SUFFIX = {
    "blob": ("blob.core.windows.net", "privatelink.blob.core.windows.net"),
    "dfs": ("dfs.core.windows.net", "privatelink.dfs.core.windows.net"),
    "vault": ("vault.azure.net", "privatelink.vaultcore.azure.net"),
}

#: A lookup of a resource already registered in the same run: ARM id (any case) -> its outputs, or None.
Lookup = Callable[[str], "dict[str, Any] | None"]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def guid(*parts: str) -> str:
    """A GUID Azure would assign, made deterministic: uuid5 of what it identifies."""
    return str(uuid.uuid5(_GUID_NAMESPACE, "\x00".join(parts)))


def auto_name(name: str, type_token: str) -> str:
    """azure-native's "random" auto-name: logical name + 8 hex characters, no separator."""
    return f"{name}{_digest('name', type_token, name)[:8]}"


def resource_group_id(subscription: str, resource_group: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}"


def arm_id(subscription: str, resource_group: str, namespace: str, path: str) -> str:
    """/subscriptions/<sub>/resourceGroups/<rg>/providers/<Namespace>/<type>/<name>[/<type>/<name>...]."""
    return f"{resource_group_id(subscription, resource_group)}/providers/{namespace}/{path}"


def identity_ids(resource_id: str, tenant: str) -> dict[str, str]:
    """A managed identity's clientId (its application id) and principalId (its service principal's object id),
    derived from its ARM id, so that an identity and every reference to it (an AKS kubelet identity, a role
    assignment's principal) agree."""
    key = resource_id.lower()
    return {
        "clientId": guid("client", key),
        "principalId": guid("principal", key),
        "tenantId": tenant,
    }


def _location(value: Any) -> str:
    # ARM returns a location as its programmatic name: "West Europe" -> "westeurope".
    return str(value).replace(" ", "").lower()


def _kubernetes_version(requested: Any) -> str:
    version = str(requested or DEFAULT_KUBERNETES_VERSION)
    return version if version.count(".") >= 2 else f"{version}.{FAKE_KUBERNETES_PATCH}"


def _fake_ca_base64(seed: str) -> str:
    body = base64.b64encode(hashlib.sha512(seed.encode()).digest() * 6).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    pem = f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"
    return base64.b64encode(pem.encode()).decode()


def _host_in(prefix: str, seed: str) -> str:
    """An address in the subnet that ARM could hand out: Azure keeps the first four and the last address of
    every subnet (learn.microsoft.com "Azure Virtual Network FAQ", "Are there any restrictions on using IP
    addresses within these subnets?"), so the first usable one is .4."""
    network = ipaddress.ip_network(prefix, strict=False)
    usable = max(network.num_addresses - 5, 1)
    return str(network.network_address + 4 + int(seed[:8], 16) % min(usable, 250))


def _subnet_prefix(outputs: dict[str, Any] | None) -> str | None:
    if not outputs:
        return None
    prefixes = outputs.get("addressPrefixes") or []
    return str(outputs.get("addressPrefix") or (prefixes[0] if prefixes else "")) or None


def outputs_for(
    type_token: str,
    name: str,
    inputs: dict[str, Any],
    subscription: str | None,
    location: str | None,
    tenant: str | None = None,
    lookup: Lookup | None = None,
) -> dict[str, Any]:
    """The inputs plus what ARM and the provider compute, for one `azure-native:` resource.

    `subscription`, `location` and `tenant` are the stack provider's settings (None: the fakes' defaults);
    `lookup` finds the outputs of a resource registered earlier in the run by its ARM id (a subnet's address
    prefix for a private endpoint's address, a resource group's location, a cluster for its credentials).
    """
    sub = subscription or FAKE_SUBSCRIPTION_ID
    tenant = tenant or FAKE_TENANT_ID
    find: Lookup = lookup or (lambda _id: None)
    out = copy.deepcopy(inputs)
    seed = _digest(type_token, name)
    module, kind = type_token.split(":")[1:3]
    name_key = NAME_INPUT.get(type_token, "name")
    if type_token == "azure-native:authorization:RoleAssignment":
        physical = str(inputs.get(name_key) or guid("roleAssignment", name))
    else:
        physical = str(inputs.get(name_key) or auto_name(name, type_token))
    rg = str(inputs.get("resourceGroupName") or "")
    if type_token in _GLOBAL:
        out["location"] = _location(inputs.get("location") or "global")
    elif type_token in _REGIONAL:
        group = find(resource_group_id(sub, rg)) if rg else None
        fallback = (group or {}).get("location") or DEFAULT_LOCATION
        out["location"] = _location(inputs.get("location") or location or fallback)
    region = str(out.get("location") or _location(location or DEFAULT_LOCATION))
    out["name"] = physical
    if type_token in API_VERSION:
        out.setdefault("azureApiVersion", API_VERSION[type_token])
        out["provisioningState"] = "Succeeded"

    def rid(namespace: str, path: str) -> str:
        return arm_id(sub, rg, namespace, path)

    if type_token == "azure-native:resources:ResourceGroup":
        out["id"] = resource_group_id(sub, physical)
        out["type"] = "Microsoft.Resources/resourceGroups"
        out.pop("provisioningState", None)
        out["properties"] = {"provisioningState": "Succeeded"}
    elif type_token == "azure-native:network:VirtualNetwork":
        out["id"] = rid("Microsoft.Network", f"virtualNetworks/{physical}")
        out["type"] = "Microsoft.Network/virtualNetworks"
        out["resourceGuid"] = guid("resourceGuid", out["id"])
        out["etag"] = f'W/"{guid("etag", out["id"])}"'
        out["subnets"] = [
            {
                **s,
                "id": f"{out['id']}/subnets/{s.get('name', f'subnet{i}')}",
                "provisioningState": "Succeeded",
            }
            for i, s in enumerate(inputs.get("subnets") or [])
        ]
    elif type_token == "azure-native:network:Subnet":
        out["id"] = rid(
            "Microsoft.Network", f"virtualNetworks/{inputs.get('virtualNetworkName')}/subnets/{physical}"
        )
        out["type"] = "Microsoft.Network/virtualNetworks/subnets"
        out["etag"] = f'W/"{guid("etag", out["id"])}"'
    elif type_token == "azure-native:network:NatGateway":
        out["id"] = rid("Microsoft.Network", f"natGateways/{physical}")
        out["type"] = "Microsoft.Network/natGateways"
        out["resourceGuid"] = guid("resourceGuid", out["id"])
        out.setdefault("idleTimeoutInMinutes", 4)  # ARM's default (NAT gateway resource reference)
    elif type_token == "azure-native:network:PublicIPAddress":
        out["id"] = rid("Microsoft.Network", f"publicIPAddresses/{physical}")
        out["type"] = "Microsoft.Network/publicIPAddresses"
        out["resourceGuid"] = guid("resourceGuid", out["id"])
        # A Standard SKU address is always static and assigned at creation; a Basic dynamic one only when
        # attached. TEST-NET-1 (RFC 5737) stands in for Azure's public ranges.
        if inputs.get("publicIPAllocationMethod") != "Dynamic":
            out["ipAddress"] = f"192.0.2.{int(seed[:2], 16) % 250 + 1}"
    elif type_token == "azure-native:network:NetworkSecurityGroup":
        out["id"] = rid("Microsoft.Network", f"networkSecurityGroups/{physical}")
        out["type"] = "Microsoft.Network/networkSecurityGroups"
        out["resourceGuid"] = guid("resourceGuid", out["id"])
        out["securityRules"] = [
            {
                **r,
                "id": f"{out['id']}/securityRules/{r.get('name', f'rule{i}')}",
                "provisioningState": "Succeeded",
            }
            for i, r in enumerate(inputs.get("securityRules") or [])
        ]
        out["defaultSecurityRules"] = [
            {
                "id": f"{out['id']}/defaultSecurityRules/{rule}",
                "name": rule,
                "direction": direction,
                "access": access,
                "priority": priority,
                "protocol": "*",
                "sourceAddressPrefix": source,
                "sourcePortRange": "*",
                "destinationAddressPrefix": destination,
                "destinationPortRange": "*",
                "provisioningState": "Succeeded",
            }
            for rule, direction, access, priority, source, destination in _DEFAULT_NSG_RULES
        ]
    elif type_token == "azure-native:network:PrivateEndpoint":
        out["id"] = rid("Microsoft.Network", f"privateEndpoints/{physical}")
        out["type"] = "Microsoft.Network/privateEndpoints"
        _private_endpoint(out, inputs, sub, rg, physical, seed, find)
    elif type_token == "azure-native:network:PrivateDnsZoneGroup":
        endpoint = str(inputs.get("privateEndpointName") or "endpoint")
        out["id"] = rid("Microsoft.Network", f"privateEndpoints/{endpoint}/privateDnsZoneGroups/{physical}")
        out["etag"] = f'W/"{guid("etag", out["id"])}"'
        found = find(rid("Microsoft.Network", f"privateEndpoints/{endpoint}"))
        out["privateDnsZoneConfigs"] = _zone_group_records(inputs, found)
    elif type_token == "azure-native:privatedns:PrivateZone":
        out["id"] = rid("Microsoft.Network", f"privateDnsZones/{physical}")
        out["type"] = "Microsoft.Network/privateDnsZones"
        out["internalId"] = base64.b64encode(bytes.fromhex(seed[:32])).decode()
        out["numberOfRecordSets"] = 1  # the SOA record
        out["maxNumberOfRecordSets"] = 25000
        out["maxNumberOfVirtualNetworkLinks"] = 1000
        out["maxNumberOfVirtualNetworkLinksWithRegistration"] = 100
    elif type_token == "azure-native:privatedns:VirtualNetworkLink":
        zone = str(inputs.get("privateZoneName") or "zone")
        out["id"] = rid("Microsoft.Network", f"privateDnsZones/{zone}/virtualNetworkLinks/{physical}")
        out["type"] = "Microsoft.Network/privateDnsZones/virtualNetworkLinks"
        out["virtualNetworkLinkState"] = "Completed"
        out.setdefault("registrationEnabled", False)
    elif type_token == "azure-native:dns:Zone":
        out["id"] = rid("Microsoft.Network", f"dnsZones/{physical}")
        out["type"] = "Microsoft.Network/dnsZones"
        out.setdefault("zoneType", "Public")
        # Azure DNS delegates each zone to four name servers, one per TLD, from a numbered set
        # (learn.microsoft.com "Delegate a domain to Azure DNS": ns1-01.azure-dns.com. ... ns4-01.azure-dns.info.).
        number = int(seed[:2], 16) % 9 + 1
        out["nameServers"] = [
            f"ns{i}-0{number}.azure-dns.{tld}." for i, tld in enumerate(("com", "net", "org", "info"), 1)
        ]
        out["numberOfRecordSets"] = 2  # SOA and NS
        out["maxNumberOfRecordSets"] = 10000
    elif type_token == "azure-native:dns:RecordSet":
        zone = str(inputs.get("zoneName") or "zone")
        record_type = str(inputs.get("recordType") or "A")
        out["id"] = rid("Microsoft.Network", f"dnsZones/{zone}/{record_type}/{physical}")
        out["type"] = f"Microsoft.Network/dnsZones/{record_type}"
        out["fqdn"] = f"{zone}." if physical == "@" else f"{physical}.{zone}."
        out["etag"] = guid("etag", out["id"])
    elif type_token == "azure-native:containerservice:ManagedCluster":
        out["id"] = rid("Microsoft.ContainerService", f"managedClusters/{physical}")
        out["type"] = "Microsoft.ContainerService/ManagedClusters"
        _managed_cluster(out, inputs, sub, rg, physical, region, tenant, seed)
    elif type_token == "azure-native:containerservice:AgentPool":
        cluster = str(inputs.get("resourceName") or "cluster")
        out["id"] = rid("Microsoft.ContainerService", f"managedClusters/{cluster}/agentPools/{physical}")
        out["type"] = "Microsoft.ContainerService/managedClusters/agentPools"
        out["currentOrchestratorVersion"] = _kubernetes_version(inputs.get("orchestratorVersion"))
        out["nodeImageVersion"] = _node_image(inputs.get("osSKU"))
        out["powerState"] = {"code": "Running"}
        out["eTag"] = guid("etag", out["id"])
    elif type_token == "azure-native:keyvault:Vault":
        out["id"] = rid("Microsoft.KeyVault", f"vaults/{physical}")
        out["type"] = "Microsoft.KeyVault/vaults"
        out.pop("provisioningState", None)
        properties = dict(inputs.get("properties") or {})
        # learn.microsoft.com "About Azure Key Vault": a vault's DNS name is https://<vault-name>.vault.azure.net/.
        properties["vaultUri"] = f"https://{physical}.vault.azure.net/"
        properties["provisioningState"] = "Succeeded"
        properties.setdefault("tenantId", tenant)
        out["properties"] = properties
    elif type_token == "azure-native:keyvault:Key":
        vault = str(inputs.get("vaultName") or "vault")
        out["id"] = rid("Microsoft.KeyVault", f"vaults/{vault}/keys/{physical}")
        out["type"] = "Microsoft.KeyVault/vaults/keys"
        out.pop("provisioningState", None)
        properties = dict(inputs.get("properties") or {})
        # Key Vault object identifiers (learn.microsoft.com "About keys, secrets, and certificates"):
        # https://<vault>.vault.azure.net/keys/<name>[/<version>], a version being 32 hex characters.
        out["keyUri"] = f"https://{vault}.vault.azure.net/keys/{physical}"
        out["keyUriWithVersion"] = f"{out['keyUri']}/{_digest('version', out['id'])[:32]}"
        out["kty"] = properties.get("kty", "RSA")
        out["keySize"] = properties.get("keySize", 2048 if str(out["kty"]).startswith("RSA") else None)
        out["keyOps"] = properties.get("keyOps", [])
        out["attributes"] = {
            **(properties.get("attributes") or {}),
            "enabled": (properties.get("attributes") or {}).get("enabled", True),
            "created": 1767225600,  # 2026-01-01T00:00:00Z
            "updated": 1767225600,
            "recoveryLevel": "Recoverable",
        }
        found = find(arm_id(sub, rg, "Microsoft.KeyVault", f"vaults/{vault}"))
        out["location"] = (found or {}).get("location") or region
    elif type_token == "azure-native:managedidentity:UserAssignedIdentity":
        out["id"] = rid("Microsoft.ManagedIdentity", f"userAssignedIdentities/{physical}")
        out["type"] = "Microsoft.ManagedIdentity/userAssignedIdentities"
        out.pop("provisioningState", None)
        out.update(identity_ids(out["id"], tenant))
    elif type_token == "azure-native:managedidentity:FederatedIdentityCredential":
        identity = str(inputs.get("resourceName") or "identity")
        path = f"userAssignedIdentities/{identity}/federatedIdentityCredentials/{physical}"
        out["id"] = rid("Microsoft.ManagedIdentity", path)
        out["type"] = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"
        out.pop("provisioningState", None)
    elif type_token == "azure-native:authorization:RoleAssignment":
        scope = str(inputs.get("scope") or resource_group_id(sub, rg or "scope")).rstrip("/")
        out["id"] = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{physical}"
        out["type"] = "Microsoft.Authorization/roleAssignments"
        out.pop("provisioningState", None)
        out["createdOn"] = "2026-01-01T00:00:00.0000000Z"
        out["updatedOn"] = out["createdOn"]
        out["createdBy"] = FAKE_DEPLOYER_OBJECT_ID
        out["updatedBy"] = FAKE_DEPLOYER_OBJECT_ID
    elif type_token == "azure-native:storage:StorageAccount":
        out["id"] = rid("Microsoft.Storage", f"storageAccounts/{physical}")
        out["type"] = "Microsoft.Storage/storageAccounts"
        # learn.microsoft.com "Storage account overview", "Standard endpoints": https://<account>.<service>.
        # core.windows.net/; the static website one carries a zone number (z1..z43) Azure picks.
        services = ("blob", "dfs", "file", "queue", "table")
        endpoints = {s: f"https://{physical}.{s}.core.windows.net/" for s in services}
        endpoints["web"] = f"https://{physical}.z{int(seed[:2], 16) % 43 + 1}.web.core.windows.net/"
        out["primaryEndpoints"] = endpoints
        out["primaryLocation"] = region
        out["statusOfPrimary"] = "available"
        out["creationTime"] = "2026-01-01T00:00:00.0000000Z"
    elif type_token == "azure-native:storage:BlobContainer":
        account = str(inputs.get("accountName") or "account")
        out["id"] = rid(
            "Microsoft.Storage", f"storageAccounts/{account}/blobServices/default/containers/{physical}"
        )
        out["type"] = "Microsoft.Storage/storageAccounts/blobServices/containers"
        out.pop("provisioningState", None)
        out.setdefault("publicAccess", "None")
        out["etag"] = f'"0x{_digest("etag", out["id"])[:15].upper()}"'
        out["lastModifiedTime"] = "2026-01-01T00:00:00Z"
        out["leaseState"] = "Available"
        out["leaseStatus"] = "Unlocked"
        out["hasImmutabilityPolicy"] = False
        out["hasLegalHold"] = False
        out["deleted"] = False
    elif type_token == "azure-native:storage:BlobServiceProperties":
        # A storage account's one blob service: ARM accepts only the name "default" (the SDK's docstring).
        account = str(inputs.get("accountName") or "account")
        out["name"] = "default"
        out["id"] = rid("Microsoft.Storage", f"storageAccounts/{account}/blobServices/default")
        out["type"] = "Microsoft.Storage/storageAccounts/blobServices"
        out.pop("provisioningState", None)
    else:
        # A type without its own branch: an id of the usual ARM shape, so nothing downstream reads a None.
        namespace = _NAMESPACE.get(module, f"Microsoft.{module[:1].upper()}{module[1:]}")
        plural = f"{kind[:1].lower()}{kind[1:]}s"
        out["id"] = rid(namespace, f"{plural}/{physical}")
        out["type"] = f"{namespace}/{plural}"
    _user_assigned_identities(out, tenant)
    return out


def _user_assigned_identities(out: dict[str, Any], tenant: str) -> None:
    """A resource's managed identities as ARM answers them, for every type (a storage account's for its
    customer-managed key, a cluster's control plane): `identity.userAssignedIdentities` goes in as a list
    of identity ids (the SDK's input) and comes back as a map of id -> {principalId, clientId}."""
    identity = out.get("identity")
    if not isinstance(identity, dict):
        return
    assigned = identity.get("userAssignedIdentities")
    if isinstance(assigned, (list, dict)):  # ids as a list, or a map of id -> {} (either input form)
        identity["userAssignedIdentities"] = {
            key: {k: v for k, v in identity_ids(str(key), tenant).items() if k != "tenantId"}
            for key in assigned
        }


def _node_image(os_sku: Any) -> str:
    # AKS node image names (learn.microsoft.com "Upgrade AKS node images": AKSUbuntu-2204gen2containerd-<date>,
    # AKSAzureLinux-V3gen2-<date>).
    if str(os_sku or "Ubuntu").startswith("AzureLinux"):
        return "AKSAzureLinux-V3gen2-202511.10.0"
    return "AKSUbuntu-2204gen2containerd-202511.10.0"


def _private_endpoint(
    out: dict[str, Any], inputs: dict[str, Any], sub: str, rg: str, physical: str, seed: str, find: Lookup
) -> None:
    """A private endpoint's NIC (named <endpoint>.nic.<guid> unless customNetworkInterfaceName is given) with
    an address in its subnet, and the DNS names it answers for (customDnsConfigs)."""
    subnet_id = str((inputs.get("subnet") or {}).get("id") or "")
    prefix = _subnet_prefix(find(subnet_id)) if subnet_id else None
    address = _host_in(prefix or "10.0.2.0/24", seed)
    nic = str(inputs.get("customNetworkInterfaceName") or f"{physical}.nic.{guid('nic', out['id'])}")
    out["networkInterfaces"] = [{"id": arm_id(sub, rg, "Microsoft.Network", f"networkInterfaces/{nic}")}]
    configs = []
    for connection in [
        *(out.get("privateLinkServiceConnections") or []),
        *(out.get("manualPrivateLinkServiceConnections") or []),
    ]:
        target = str(connection.get("privateLinkServiceId") or "")
        for group in connection.get("groupIds") or []:
            public_suffix = _PRIVATE_LINK_SUFFIX.get(str(group), (f"{group}.core.windows.net", ""))[0]
            configs.append({"fqdn": f"{target.rsplit('/', 1)[-1]}.{public_suffix}", "ipAddresses": [address]})
        connection.setdefault(
            "privateLinkServiceConnectionState", {"status": "Approved", "actionsRequired": "None"}
        )
    out["customDnsConfigs"] = configs
    out["ipConfigurations"] = inputs.get("ipConfigurations") or []


def _zone_group_records(inputs: dict[str, Any], endpoint: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The A records a private DNS zone group writes: for each zone, each of the endpoint's names whose
    privatelink zone it is, as <first label> -> the endpoint's address, TTL 10 (what ARM reports in
    privateDnsZoneConfigs[].recordSets)."""
    configs = []
    for config in inputs.get("privateDnsZoneConfigs") or []:
        zone = str(config.get("privateDnsZoneId") or "").rsplit("/", 1)[-1]
        records = []
        for dns in (endpoint or {}).get("customDnsConfigs") or []:
            label, _, public_suffix = str(dns.get("fqdn", "")).partition(".")
            if any(pub == public_suffix and priv == zone for pub, priv in _PRIVATE_LINK_SUFFIX.values()):
                records.append(
                    {
                        "recordType": "A",
                        "recordSetName": label,
                        "fqdn": f"{label}.{zone}",
                        "ttl": 10,
                        "ipAddresses": list(dns.get("ipAddresses") or []),
                        "provisioningState": "Succeeded",
                    }
                )
        configs.append({**config, "recordSets": records})
    return configs


def _managed_cluster(
    out: dict[str, Any],
    inputs: dict[str, Any],
    sub: str,
    rg: str,
    physical: str,
    region: str,
    tenant: str,
    seed: str,
) -> None:
    """What AKS computes for a managed cluster (API 2025-09-01), per learn.microsoft.com:

    - fqdn <dnsPrefix>-<8 chars>.hcp.<region>.azmk8s.io and azurePortalFQDN <dnsPrefix>-<8>.portal.hcp...;
    - a private cluster ("Create a private AKS cluster") also gets privateFQDN in its private DNS zone: by
      default ("system") a zone AKS makes, <guid>.privatelink.<region>.azmk8s.io; a custom zone's own name
      when privateDNSZone is its id; none with privateDNSZone "none". The public FQDN stays unless
      enablePrivateClusterPublicFQDN is false;
    - oidcIssuerProfile.issuerURL https://<region>.oic.prod-aks.azure.com/<tenant>/<guid>/ ("Create an OpenID
      Connect provider on AKS", sample output);
    - nodeResourceGroup MC_<rg>_<cluster>_<region> unless given ("AKS FAQ: Why are two resource groups created
      with AKS?");
    - the kubelet identity: the one given in identityProfile.kubeletidentity, else one AKS makes in the node
      resource group, named <cluster>-agentpool ("Use a managed identity in AKS");
    - the control-plane identity's principal (SystemAssigned) or each user-assigned identity's ids.
    """
    prefix = str(inputs.get("dnsPrefix") or f"{physical[:10]}-{rg[:16]}-{sub[:6]}")
    host = f"{prefix}-{seed[:8]}"
    access = dict(inputs.get("apiServerAccessProfile") or {})
    private = bool(access.get("enablePrivateCluster"))
    if not private or access.get("enablePrivateClusterPublicFQDN", True) is not False:
        out["fqdn"] = f"{host}.hcp.{region}.azmk8s.io"
    out["azurePortalFQDN"] = f"{host}.portal.hcp.{region}.azmk8s.io"
    if private:
        zone_setting = str(access.get("privateDNSZone") or "system")
        if zone_setting.lower() != "none":
            zone = (
                zone_setting.rsplit("/", 1)[-1]
                if zone_setting.startswith("/")
                else f"{guid('privateDnsZone', seed)}.privatelink.{region}.azmk8s.io"
            )
            subdomain = inputs.get("fqdnSubdomain")
            out["privateFQDN"] = f"{subdomain}.{zone}" if subdomain else f"{host}.{zone}"
    oidc = dict(inputs.get("oidcIssuerProfile") or {})
    if oidc.get("enabled"):
        oidc["issuerURL"] = f"https://{region}.oic.prod-aks.azure.com/{tenant}/{guid('oidc', seed)}/"
        out["oidcIssuerProfile"] = oidc
    node_rg = str(inputs.get("nodeResourceGroup") or f"MC_{rg}_{physical}_{region}"[:80])
    out["nodeResourceGroup"] = node_rg
    profile = dict(inputs.get("identityProfile") or {})
    kubelet = dict(profile.get("kubeletidentity") or {})
    kubelet_id = str(
        kubelet.get("resourceId")
        or arm_id(sub, node_rg, "Microsoft.ManagedIdentity", f"userAssignedIdentities/{physical}-agentpool")
    )
    ids = identity_ids(kubelet_id, tenant)
    profile["kubeletidentity"] = {
        "resourceId": kubelet_id,
        "clientId": ids["clientId"],
        "objectId": ids["principalId"],
    }
    out["identityProfile"] = profile
    identity = dict(inputs.get("identity") or {})
    if identity.get("type") == "SystemAssigned":
        identity["principalId"] = guid("principal", out["id"].lower())
        identity["tenantId"] = tenant
    if identity:
        out["identity"] = identity
    version = _kubernetes_version(inputs.get("kubernetesVersion"))
    out["currentKubernetesVersion"] = version
    out["agentPoolProfiles"] = [
        {
            **pool,
            "currentOrchestratorVersion": _kubernetes_version(pool.get("orchestratorVersion") or version),
            "nodeImageVersion": _node_image(pool.get("osSKU")),
            "provisioningState": "Succeeded",
            "powerState": {"code": "Running"},
        }
        for pool in inputs.get("agentPoolProfiles") or []
    ]
    out["powerState"] = {"code": "Running"}
    out["maxAgentPools"] = 100
    out["resourceUID"] = seed[:24]
    out["eTag"] = guid("etag", out["id"])


def kubeconfig(cluster: str, resource_group: str, server: str, tenant: str, seed: str) -> str:
    """The kubeconfig AKS returns for an Entra ID cluster (listClusterUserCredential, format "exec"): the CA,
    the server, and a user that runs `kubelogin get-token` (device code login until converted with
    `kubelogin convert-kubeconfig -l azurecli`); no token or client certificate (Azure/kubelogin README)."""
    user = f"clusterUser_{resource_group}_{cluster}"
    return "\n".join(
        [
            "apiVersion: v1",
            "kind: Config",
            "clusters:",
            "- cluster:",
            f"    certificate-authority-data: {_fake_ca_base64(seed)}",
            f"    server: https://{server}:443",
            f"  name: {cluster}",
            "contexts:",
            "- context:",
            f"    cluster: {cluster}",
            f"    user: {user}",
            f"  name: {cluster}",
            f"current-context: {cluster}",
            "preferences: {}",
            "users:",
            f"- name: {user}",
            "  user:",
            "    exec:",
            "      apiVersion: client.authentication.k8s.io/v1beta1",
            "      args:",
            "      - get-token",
            "      - --environment",
            "      - AzurePublicCloud",
            "      - --server-id",
            f"      - {AKS_AAD_SERVER_APP_ID}",
            "      - --client-id",
            f"      - {KUBELOGIN_DEFAULT_CLIENT_ID}",
            "      - --tenant-id",
            f"      - {tenant}",
            "      - --login",
            "      - devicecode",
            "      command: kubelogin",
            "      env: null",
            "      provideClusterInfo: false",
            "",
        ]
    )


def invoke_result(
    token: str,
    args: dict[str, Any],
    subscription: str | None,
    location: str | None,
    tenant: str | None = None,
    lookup: Lookup | None = None,
) -> dict[str, Any] | None:
    """Answers for the Azure data sources InferStack calls; None for tokens the fakes do not know."""
    sub = subscription or FAKE_SUBSCRIPTION_ID
    tenant = tenant or FAKE_TENANT_ID
    find: Lookup = lookup or (lambda _id: None)
    if token == "azure-native:authorization:getClientConfig":
        # pulumi-azure-native provider/pkg/provider/auth_getclientconfig.go: the signed-in principal's client
        # (application) id and object id, the subscription and the tenant.
        return {
            "clientId": FAKE_DEPLOYER_CLIENT_ID,
            "objectId": FAKE_DEPLOYER_OBJECT_ID,
            "subscriptionId": sub,
            "tenantId": tenant,
        }
    if token == "azure-native:containerservice:listManagedClusterUserCredentials":
        rg = str(args.get("resourceGroupName") or "")
        cluster = str(args.get("resourceName") or "")
        found = find(arm_id(sub, rg, "Microsoft.ContainerService", f"managedClusters/{cluster}")) or {}
        region = _location(found.get("location") or location or DEFAULT_LOCATION)
        # serverFqdn is which name to return ("public" or "private"), as the REST API's server-fqdn query
        # parameter; without it AKS returns the private FQDN of a private cluster.
        wanted = str(args.get("serverFqdn") or "").lower()
        names = [found.get("fqdn"), found.get("privateFQDN")]
        if wanted != "public":
            names.reverse()
        server = str(
            next((n for n in names if n), None)
            or f"{cluster}-{_digest('fqdn', rg, cluster)[:8]}.hcp.{region}.azmk8s.io"
        )
        config = kubeconfig(cluster, rg, server, tenant, _digest("ca", rg, cluster))
        return {"kubeconfigs": [{"name": "clusterUser", "value": base64.b64encode(config.encode()).decode()}]}
    return None
