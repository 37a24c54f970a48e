"""The recording mock's Azure answers look like Azure's: every azure-native type the Azure stacks create gets
its ARM id with the stack provider's subscription, names follow Azure's naming rules, the computed outputs
callers read (AKS FQDNs, OIDC issuer, kubelet identity, vault and key URIs, identity GUIDs, private endpoint
addresses) have the provider's real formats, and a data source the fakes do not know fails loudly.

Id formats: an ARM resource id is /subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/
{resourceProviderNamespace}/{resourceType}/{resourceName}, child types appending /{type}/{name}
(learn.microsoft.com "Template functions - resources", resourceId); the per-type paths are the ARM REST
reference's. Name rules: learn.microsoft.com "Naming rules and restrictions for Azure resources".
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import pulumi_azure_native as azure_native
import pulumi_azure_native.authorization as authorization
import pulumi_azure_native.containerservice as containerservice
import pulumi_azure_native.dns as dns
import pulumi_azure_native.keyvault as keyvault
import pulumi_azure_native.managedidentity as managedidentity
import pulumi_azure_native.network as network
import pulumi_azure_native.privatedns as privatedns
import pulumi_azure_native.resources as resources
import pulumi_azure_native.storage as storage
import pytest
import yaml
from pulumi.runtime.sync_await import _sync_await

from inferstack.planning import fakes
from inferstack.planning.fakes import azure as fakes_azure
from inferstack.planning.recording import Recording, run_program
from inferstack.validation.invokes import CHECK, invoke_provider_outcome

ROOT = Path(__file__).resolve().parents[1]
SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
TENANT = "99999999-8888-7777-6666-555555555555"
LOCATION = "westeurope"

GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# Names, per "Naming rules and restrictions for Azure resources".
_RG = r"[-\w.()]{0,89}[-\w()]"  # 1-90: alphanumerics, underscores, parentheses, hyphens, periods (not last)
_NET = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?"  # Microsoft.Network: 1-80, end alnum or _
_VNET = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}[A-Za-z0-9_]"  # virtualNetworks: 2-64
_DNS_ZONE = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
_RECORD = r"(?:@|[A-Za-z0-9*_-](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9_-])?)"
_AKS = r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"  # managedClusters: 1-63
_POOL = r"[a-z][a-z0-9]{0,11}"  # agentPools (Linux): 1-12 lowercase letters and digits, start with a letter
_VAULT = r"[A-Za-z](?:[A-Za-z0-9]|-(?!-)){1,22}[A-Za-z0-9]"  # vaults: 3-24, no consecutive hyphens
_KEY = r"[A-Za-z0-9-]{1,127}"
_IDENTITY = r"[A-Za-z0-9][A-Za-z0-9_-]{2,127}"  # userAssignedIdentities: 3-128
_CREDENTIAL = r"[A-Za-z0-9][A-Za-z0-9_-]{2,119}"  # federatedIdentityCredentials: 3-120
_ACCOUNT = r"[a-z0-9]{3,24}"  # storageAccounts: 3-24 lowercase letters and digits
_CONTAINER = r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]"  # containers: 3-63, no consecutive hyphens

_P = r"/subscriptions/{s}/resourceGroups/" + _RG + "/providers/"
#: The ARM id format of every azure-native type the Azure stacks create.
ID_FORMATS = {
    "azure-native:resources:ResourceGroup": r"/subscriptions/{s}/resourceGroups/" + _RG,
    "azure-native:network:VirtualNetwork": _P + r"Microsoft\.Network/virtualNetworks/" + _VNET,
    "azure-native:network:Subnet": _P + rf"Microsoft\.Network/virtualNetworks/{_VNET}/subnets/{_NET}",
    "azure-native:network:NatGateway": _P + r"Microsoft\.Network/natGateways/" + _NET,
    "azure-native:network:PublicIPAddress": _P + r"Microsoft\.Network/publicIPAddresses/" + _NET,
    "azure-native:network:NetworkSecurityGroup": _P + r"Microsoft\.Network/networkSecurityGroups/" + _NET,
    "azure-native:network:PrivateEndpoint": _P + r"Microsoft\.Network/privateEndpoints/" + _NET,
    "azure-native:network:PrivateDnsZoneGroup": _P
    + rf"Microsoft\.Network/privateEndpoints/{_NET}/privateDnsZoneGroups/{_NET}",
    "azure-native:privatedns:PrivateZone": _P + r"Microsoft\.Network/privateDnsZones/" + _DNS_ZONE,
    "azure-native:privatedns:VirtualNetworkLink": _P
    + rf"Microsoft\.Network/privateDnsZones/{_DNS_ZONE}/virtualNetworkLinks/{_NET}",
    "azure-native:dns:Zone": _P + r"Microsoft\.Network/dnsZones/" + _DNS_ZONE,
    "azure-native:dns:RecordSet": _P
    + rf"Microsoft\.Network/dnsZones/{_DNS_ZONE}/(A|AAAA|CNAME|TXT|CAA)/{_RECORD}",
    "azure-native:containerservice:ManagedCluster": _P
    + r"Microsoft\.ContainerService/managedClusters/"
    + _AKS,
    "azure-native:containerservice:AgentPool": _P
    + rf"Microsoft\.ContainerService/managedClusters/{_AKS}/agentPools/{_POOL}",
    "azure-native:keyvault:Vault": _P + r"Microsoft\.KeyVault/vaults/" + _VAULT,
    "azure-native:keyvault:Key": _P + rf"Microsoft\.KeyVault/vaults/{_VAULT}/keys/{_KEY}",
    "azure-native:managedidentity:UserAssignedIdentity": _P
    + r"Microsoft\.ManagedIdentity/userAssignedIdentities/"
    + _IDENTITY,
    "azure-native:managedidentity:FederatedIdentityCredential": _P
    + rf"Microsoft\.ManagedIdentity/userAssignedIdentities/{_IDENTITY}/federatedIdentityCredentials/{_CREDENTIAL}",
    # A role assignment lives under its scope (any ARM id, in any subscription): <scope>/providers/
    # Microsoft.Authorization/roleAssignments/<GUID>.
    "azure-native:authorization:RoleAssignment": rf"/subscriptions/{GUID}(/\S+)?/providers/Microsoft\.Authorization/"
    + rf"roleAssignments/{GUID}",
    "azure-native:storage:StorageAccount": _P + r"Microsoft\.Storage/storageAccounts/" + _ACCOUNT,
    "azure-native:storage:BlobContainer": _P
    + rf"Microsoft\.Storage/storageAccounts/{_ACCOUNT}/blobServices/default/containers/{_CONTAINER}",
    "azure-native:storage:BlobServiceProperties": _P
    + rf"Microsoft\.Storage/storageAccounts/{_ACCOUNT}/blobServices/default",
}


def _options(provider: pulumi.ProviderResource, *depends: pulumi.Resource) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(provider=provider, depends_on=list(depends))


def azure_program(*, private: bool = True, provider_location: str | None = LOCATION) -> None:
    """What the Azure stack creates, built the way its components build it (names given where Azure's rules
    are strict, auto-names elsewhere), plus the two data sources it calls."""
    provider = azure_native.Provider(
        "azure", location=provider_location, subscription_id=SUBSCRIPTION, tenant_id=TENANT
    )
    on = pulumi.InvokeOutputOptions(provider=provider)
    opts = pulumi.ResourceOptions(provider=provider)
    rg = resources.ResourceGroup("rg", resource_group_name="inferstack-dev", location=LOCATION, opts=opts)
    vnet = network.VirtualNetwork(
        "vnet", resource_group_name=rg.name, address_space={"address_prefixes": ["10.40.0.0/16"]}, opts=opts
    )
    nsg = network.NetworkSecurityGroup("nodes-nsg", resource_group_name=rg.name, opts=opts)
    ip = network.PublicIPAddress(
        "nat-ip",
        resource_group_name=rg.name,
        sku={"name": "Standard"},
        public_ip_allocation_method="Static",
        opts=opts,
    )
    nat = network.NatGateway(
        "nat",
        resource_group_name=rg.name,
        sku={"name": "Standard"},
        public_ip_addresses=[{"id": ip.id}],
        opts=opts,
    )
    nodes = network.Subnet(
        "nodes",
        resource_group_name=rg.name,
        virtual_network_name=vnet.name,
        address_prefix="10.40.0.0/20",
        nat_gateway={"id": nat.id},
        network_security_group={"id": nsg.id},
        opts=opts,
    )
    endpoints = network.Subnet(
        "endpoints",
        resource_group_name=rg.name,
        virtual_network_name=vnet.name,
        address_prefix="10.40.16.0/24",
        opts=_options(provider, nodes),
    )
    blob_zone = privatedns.PrivateZone(
        "blob-zone",
        private_zone_name="privatelink.blob.core.windows.net",
        resource_group_name=rg.name,
        opts=opts,
    )
    privatedns.VirtualNetworkLink(
        "blob-link",
        resource_group_name=rg.name,
        private_zone_name=blob_zone.name,
        virtual_network={"id": vnet.id},
        registration_enabled=False,
        opts=opts,
    )
    account = storage.StorageAccount(
        "models",
        account_name="infermodels7f3a",
        resource_group_name=rg.name,
        kind="StorageV2",
        sku={"name": "Standard_ZRS"},
        allow_blob_public_access=False,
        opts=opts,
    )
    storage.BlobServiceProperties(
        "blob-service",
        blob_services_name="default",
        account_name=account.name,
        resource_group_name=rg.name,
        delete_retention_policy={"enabled": True, "days": 7},
        opts=opts,
    )
    container = storage.BlobContainer(
        "weights", container_name="weights", account_name=account.name, resource_group_name=rg.name, opts=opts
    )
    endpoint = network.PrivateEndpoint(
        "blob-pe",
        resource_group_name=rg.name,
        subnet={"id": endpoints.id},
        private_link_service_connections=[
            {"name": "blob", "private_link_service_id": account.id, "group_ids": ["blob"]}
        ],
        opts=opts,
    )
    network.PrivateDnsZoneGroup(
        "blob-dns",
        resource_group_name=rg.name,
        private_endpoint_name=endpoint.name,
        private_dns_zone_configs=[{"name": "blob", "private_dns_zone_id": blob_zone.id}],
        opts=opts,
    )
    control_plane = managedidentity.UserAssignedIdentity(
        "aks-identity", resource_group_name=rg.name, opts=opts
    )
    vault = keyvault.Vault(
        "kms-vault",
        vault_name="infer-kms-7f3a",
        resource_group_name=rg.name,
        properties={
            "tenant_id": TENANT,
            "sku": {"family": "A", "name": "standard"},
            "enable_rbac_authorization": True,
        },
        opts=opts,
    )
    key = keyvault.Key(
        "etcd",
        resource_group_name=rg.name,
        vault_name=vault.name,
        properties={"kty": "RSA", "key_size": 2048},
        opts=opts,
    )
    authorization.RoleAssignment(
        "kms-user",
        principal_id=control_plane.principal_id,
        principal_type="ServicePrincipal",
        role_definition_id=f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/"
        "12338af0-0e69-4776-bea7-57ae8d297424",
        scope=vault.id,
        opts=opts,
    )
    cluster = containerservice.ManagedCluster(
        "aks",
        resource_group_name=rg.name,
        dns_prefix="inferstack-dev",
        kubernetes_version="1.34",
        identity={"type": "UserAssigned", "user_assigned_identities": [control_plane.id]},
        api_server_access_profile=(
            {"enable_private_cluster": True} if private else {"authorized_ip_ranges": ["198.51.100.0/24"]}
        ),
        oidc_issuer_profile={"enabled": True},
        security_profile={
            "workload_identity": {"enabled": True},
            "azure_key_vault_kms": {"enabled": True, "key_id": key.key_uri_with_version},
        },
        agent_pool_profiles=[{"name": "system", "mode": "System", "count": 2, "vm_size": "Standard_D4ds_v5"}],
        opts=opts,
    )
    containerservice.AgentPool(
        "gpu",
        agent_pool_name="gpu",
        resource_group_name=rg.name,
        resource_name_=cluster.name,
        vm_size="Standard_NC24ads_A100_v4",
        os_sku="AzureLinux",
        opts=opts,
    )
    serving = managedidentity.UserAssignedIdentity("serving", resource_group_name=rg.name, opts=opts)
    managedidentity.FederatedIdentityCredential(
        "serving-fic",
        resource_group_name=rg.name,
        resource_name_=serving.name,
        issuer=cluster.oidc_issuer_profile.apply(lambda p: p.issuer_url if p else ""),
        subject="system:serviceaccount:inferstack:llm",
        audiences=["api://AzureADTokenExchange"],
        opts=opts,
    )
    authorization.RoleAssignment(
        "reader",
        principal_id=serving.principal_id,
        principal_type="ServicePrincipal",
        role_definition_id=f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/"
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        scope=container.id,
        opts=opts,
    )
    zone = dns.Zone(
        "zone", zone_name="llm.example.com", resource_group_name=rg.name, location="global", opts=opts
    )
    dns.RecordSet(
        "api",
        zone_name=zone.name,
        resource_group_name=rg.name,
        record_type="A",
        relative_record_set_name="api",
        ttl=300,
        a_records=[{"ipv4_address": "203.0.113.10"}],
        opts=opts,
    )
    client = authorization.get_client_config_output(opts=on)
    credentials = containerservice.list_managed_cluster_user_credentials_output(
        resource_group_name=rg.name, resource_name=cluster.name, opts=on
    )
    pulumi.export("tenant_id", client.tenant_id)
    pulumi.export("subscription_id", client.subscription_id)
    pulumi.export("kubeconfig", credentials.kubeconfigs[0].value)


@cache
def recorded(private: bool = True) -> Recording:
    return run_program(lambda: azure_program(private=private), stack="azure-fakes")


def outputs(type_token: str, name_suffix: str = "", private: bool = True) -> dict[str, Any]:
    return recorded(private).one(type_token, name_suffix).outputs


def test_every_azure_type_the_stacks_create_has_a_realistic_fake_and_an_id_format() -> None:
    assert set(ID_FORMATS) == set(fakes_azure.NAME_INPUT) == set(fakes_azure.API_VERSION)
    created = {r.type for r in recorded().resources if r.type.startswith("azure-native:")}
    assert created == set(ID_FORMATS), "the test program misses a type the fakes know"


@pytest.mark.parametrize("private", [True, False], ids=["private", "public"])
def test_every_azure_resource_gets_an_arm_id_in_its_own_format(private: bool) -> None:
    for r in recorded(private).resources:
        if not r.type.startswith("azure-native:"):
            continue
        pattern = ID_FORMATS[r.type].replace("{s}", re.escape(SUBSCRIPTION))
        assert r.id is not None and re.fullmatch(pattern, r.id), (r.type, r.id)
        assert r.outputs["id"] == r.id
        # The name ARM reports is the id's last segment.
        assert r.id.rsplit("/", 1)[-1] == r.outputs["name"], (r.type, r.id)


def test_names_are_the_ones_given_or_azure_natives_auto_names() -> None:
    assert outputs("azure-native:storage:StorageAccount")["name"] == "infermodels7f3a"
    assert outputs("azure-native:containerservice:AgentPool")["name"] == "gpu"
    # azure-native's "random" strategy: the logical name + 8 hex characters, no separator.
    assert re.fullmatch(r"vnet[0-9a-f]{8}", outputs("azure-native:network:VirtualNetwork")["name"])
    assert re.fullmatch(r"aks[0-9a-f]{8}", outputs("azure-native:containerservice:ManagedCluster")["name"])
    # A role assignment's name must be a GUID: the "uuid" strategy.
    for r in recorded().of_type("azure-native:authorization:RoleAssignment"):
        assert re.fullmatch(GUID, r.outputs["name"])


def test_locations_come_from_the_provider_and_zones_are_global() -> None:
    assert outputs("azure-native:network:VirtualNetwork")["location"] == LOCATION
    assert outputs("azure-native:containerservice:ManagedCluster")["location"] == LOCATION
    assert outputs("azure-native:privatedns:PrivateZone")["location"] == "global"
    assert outputs("azure-native:privatedns:VirtualNetworkLink")["location"] == "global"
    assert outputs("azure-native:dns:Zone")["location"] == "global"
    assert "location" not in outputs("azure-native:network:Subnet", "nodes")


def test_without_a_provider_location_a_resource_takes_its_resource_groups() -> None:
    def program() -> None:
        provider = azure_native.Provider("azure", subscription_id=SUBSCRIPTION)
        opts = pulumi.ResourceOptions(provider=provider)
        rg = resources.ResourceGroup("rg", resource_group_name="rg-ne", location="North Europe", opts=opts)
        managedidentity.UserAssignedIdentity("id", resource_group_name=rg.name, opts=opts)

    recording = run_program(program, stack="rg-location")
    assert recording.one("azure-native:resources:ResourceGroup").outputs["location"] == "northeurope"
    assert (
        recording.one("azure-native:managedidentity:UserAssignedIdentity").outputs["location"]
        == "northeurope"
    )


def test_private_cluster_outputs_have_aks_formats() -> None:
    cluster = outputs("azure-native:containerservice:ManagedCluster")
    host = r"inferstack-dev-[a-z0-9]{8}"
    assert re.fullmatch(rf"{host}\.hcp\.westeurope\.azmk8s\.io", cluster["fqdn"])
    # The system-managed private DNS zone is <guid>.privatelink.<region>.azmk8s.io.
    assert re.fullmatch(rf"{host}\.{GUID}\.privatelink\.westeurope\.azmk8s\.io", cluster["privateFQDN"])
    assert re.fullmatch(
        rf"https://westeurope\.oic\.prod-aks\.azure\.com/{TENANT}/{GUID}/",
        cluster["oidcIssuerProfile"]["issuerURL"],
    )
    assert cluster["nodeResourceGroup"] == f"MC_inferstack-dev_{cluster['name']}_westeurope"
    assert cluster["currentKubernetesVersion"] == "1.34.1"
    assert cluster["powerState"] == {"code": "Running"}
    assert cluster["provisioningState"] == "Succeeded"
    assert cluster["azureApiVersion"] == "2025-09-01"
    assert [p["currentOrchestratorVersion"] for p in cluster["agentPoolProfiles"]] == ["1.34.1"]


def test_a_public_cluster_has_no_private_fqdn() -> None:
    cluster = outputs("azure-native:containerservice:ManagedCluster", private=False)
    assert "privateFQDN" not in cluster
    assert cluster["fqdn"].endswith(".hcp.westeurope.azmk8s.io")


def test_identities_agree_wherever_they_are_referenced() -> None:
    cluster = outputs("azure-native:containerservice:ManagedCluster")
    control_plane = outputs("azure-native:managedidentity:UserAssignedIdentity", "aks-identity")
    for key in ("clientId", "principalId", "tenantId"):
        assert re.fullmatch(GUID, control_plane[key]), key
    assert control_plane["tenantId"] == TENANT
    assert cluster["identity"]["userAssignedIdentities"][control_plane["id"]] == {
        "clientId": control_plane["clientId"],
        "principalId": control_plane["principalId"],
    }
    kms_user = recorded().one("azure-native:authorization:RoleAssignment", "kms-user")
    assert kms_user.inputs["principalId"] == control_plane["principalId"]
    # AKS makes the kubelet identity <cluster>-agentpool in the node resource group.
    kubelet = cluster["identityProfile"]["kubeletidentity"]
    assert kubelet["resourceId"] == (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{cluster['nodeResourceGroup']}/providers/"
        f"Microsoft.ManagedIdentity/userAssignedIdentities/{cluster['name']}-agentpool"
    )
    assert re.fullmatch(GUID, kubelet["clientId"]) and re.fullmatch(GUID, kubelet["objectId"])
    assert kubelet["objectId"] != control_plane["principalId"]
    # The federated credential trusts exactly the cluster's issuer.
    credential = recorded().one("azure-native:managedidentity:FederatedIdentityCredential")
    assert credential.inputs["issuer"] == cluster["oidcIssuerProfile"]["issuerURL"]


def test_key_vault_and_storage_endpoints() -> None:
    vault = outputs("azure-native:keyvault:Vault")
    assert vault["properties"]["vaultUri"] == "https://infer-kms-7f3a.vault.azure.net/"
    key = outputs("azure-native:keyvault:Key")
    assert re.fullmatch(r"https://infer-kms-7f3a\.vault\.azure\.net/keys/etcd[0-9a-f]{8}", key["keyUri"])
    assert re.fullmatch(re.escape(key["keyUri"]) + r"/[0-9a-f]{32}", key["keyUriWithVersion"])
    kms = recorded().one("azure-native:containerservice:ManagedCluster").inputs["securityProfile"]
    assert kms["azureKeyVaultKms"]["keyId"] == key["keyUriWithVersion"]
    account = outputs("azure-native:storage:StorageAccount")
    assert account["primaryEndpoints"]["blob"] == "https://infermodels7f3a.blob.core.windows.net/"
    assert outputs("azure-native:storage:BlobContainer")["publicAccess"] == "None"


def test_network_outputs() -> None:
    address = ipaddress.ip_address(outputs("azure-native:network:PublicIPAddress")["ipAddress"])
    assert address in ipaddress.ip_network("192.0.2.0/24")  # TEST-NET-1, RFC 5737
    defaults = outputs("azure-native:network:NetworkSecurityGroup")["defaultSecurityRules"]
    assert {(r["name"], r["priority"]) for r in defaults} >= {
        ("DenyAllInBound", 65500),
        ("AllowVnetInBound", 65000),
    }
    assert re.fullmatch(r"ns1-0\d\.azure-dns\.com\.", outputs("azure-native:dns:Zone")["nameServers"][0])
    assert outputs("azure-native:dns:RecordSet")["fqdn"] == "api.llm.example.com."


def test_a_private_endpoint_gets_an_address_its_subnet_can_hand_out() -> None:
    endpoint = outputs("azure-native:network:PrivateEndpoint")
    [config] = endpoint["customDnsConfigs"]
    assert config["fqdn"] == "infermodels7f3a.blob.core.windows.net"
    [address] = config["ipAddresses"]
    subnet = ipaddress.ip_network("10.40.16.0/24")
    # Azure keeps the first four addresses and the last one of every subnet.
    assert ipaddress.ip_address(address) in subnet
    assert int(ipaddress.ip_address(address)) - int(subnet.network_address) >= 4
    assert address != str(subnet.broadcast_address)
    assert re.fullmatch(
        rf".*/Microsoft\.Network/networkInterfaces/{endpoint['name']}\.nic\.{GUID}",
        endpoint["networkInterfaces"][0]["id"],
    )
    [zone] = outputs("azure-native:network:PrivateDnsZoneGroup")["privateDnsZoneConfigs"]
    assert zone["recordSets"] == [
        {
            "recordType": "A",
            "recordSetName": "infermodels7f3a",
            "fqdn": "infermodels7f3a.privatelink.blob.core.windows.net",
            "ttl": 10,
            "ipAddresses": [address],
            "provisioningState": "Succeeded",
        }
    ]


def test_plans_are_byte_identical_between_runs() -> None:
    def snapshot(recording: Recording) -> str:
        rows = sorted(
            (r.urn, r.id, r.outputs) for r in recording.resources if r.type.startswith("azure-native:")
        )
        return json.dumps([rows, recording.exports], sort_keys=True, default=str)

    again = run_program(lambda: azure_program(private=True), stack="azure-fakes")
    assert snapshot(again) == snapshot(recorded(True))


def test_client_config_answers_with_the_providers_subscription_and_tenant() -> None:
    exports = recorded().exports
    assert (exports["subscription_id"], exports["tenant_id"]) == (SUBSCRIPTION, TENANT)
    answer = fakes.invoke_result("azure-native:authorization:getClientConfig", {})
    assert answer["subscriptionId"] == fakes_azure.FAKE_SUBSCRIPTION_ID
    for key in ("clientId", "objectId", "subscriptionId", "tenantId"):
        assert re.fullmatch(GUID, answer[key]), key


def test_user_credentials_are_an_exec_kubeconfig_for_the_clusters_server() -> None:
    config = yaml.safe_load(base64.b64decode(recorded().exports["kubeconfig"]))
    cluster = outputs("azure-native:containerservice:ManagedCluster")
    assert config["clusters"][0]["cluster"]["server"] == f"https://{cluster['privateFQDN']}:443"
    [user] = config["users"]
    assert set(user["user"]) == {"exec"}, "no token, password or client certificate"
    assert user["user"]["exec"]["command"] == "kubelogin"
    args = user["user"]["exec"]["args"]
    assert args[args.index("--server-id") + 1] == fakes_azure.AKS_AAD_SERVER_APP_ID
    assert args[args.index("--tenant-id") + 1] == TENANT
    public = yaml.safe_load(
        base64.b64decode(run_program(lambda: azure_program(private=False)).exports["kubeconfig"])
    )
    public_fqdn = outputs("azure-native:containerservice:ManagedCluster", private=False)["fqdn"]
    assert public["clusters"][0]["cluster"]["server"] == f"https://{public_fqdn}:443"


def test_an_unknown_azure_data_source_fails_loudly() -> None:
    with pytest.raises(NotImplementedError, match="listManagedClusterAdminCredentials"):
        fakes.invoke_result("azure-native:containerservice:listManagedClusterAdminCredentials", {})


def test_an_internal_aks_balancer_gets_a_private_address() -> None:
    def service(annotations: dict[str, str]) -> dict[str, Any]:
        inputs = {"metadata": {"annotations": annotations}, "spec": {"type": "LoadBalancer"}}
        return fakes.outputs_for("kubernetes:core/v1:Service", "gateway", inputs, "s")

    internal = service({"service.beta.kubernetes.io/azure-load-balancer-internal": "true"})
    public = service({"service.beta.kubernetes.io/azure-load-balancer-internal": "false"})
    assert internal["status"]["loadBalancer"]["ingress"] == [{"ip": fakes.FAKE_INTERNAL_LOAD_BALANCER_IP}]
    assert public["status"]["loadBalancer"]["ingress"] == [{"ip": fakes.FAKE_LOAD_BALANCER_IP}]


def test_the_invoke_rule_accepts_the_azure_provider_and_names_the_default_one() -> None:
    answers: dict[str, pulumi.Output[str]] = {}

    def program() -> None:
        provider = azure_native.Provider("azure", subscription_id=SUBSCRIPTION, location=LOCATION)
        on = pulumi.InvokeOutputOptions(provider=provider)
        answers["stack"] = authorization.get_client_config_output(opts=on).subscription_id
        answers["default"] = authorization.get_client_config_output().subscription_id  # the defect

    recording = run_program(program, stack="azure-invokes")
    outcome = invoke_provider_outcome(recording.invokes, recording.resources)
    assert outcome.validated == 2
    assert [(f.check, f.resource) for f in outcome.findings] == [
        (CHECK, "invoke azure-native:authorization:getClientConfig")
    ]
    assert "default azure-native provider" in outcome.findings[0].message
    # The mock answers the default provider without the stack's settings, as a real engine would.
    assert _sync_await(answers["stack"].future()) == SUBSCRIPTION
    assert _sync_await(answers["default"].future()) == fakes_azure.FAKE_SUBSCRIPTION_ID


AZURE_STACK_FILES = sorted((ROOT / "stacks").glob("Pulumi.*azure*.yaml"))


@pytest.mark.skipif(
    not AZURE_STACK_FILES, reason="no Azure stack file yet (issue 18: the coordinator adds them)"
)
@pytest.mark.parametrize("path", AZURE_STACK_FILES, ids=lambda p: p.name)
def test_every_resource_of_an_azure_stack_has_a_realistic_id(path: Path) -> None:
    from inferstack.planning.plan import plan_stack
    from stacks.config import load_stack_file

    plan = plan_stack(load_stack_file(path), path.name.removeprefix("Pulumi.").removesuffix(".yaml"))
    provider = plan.recording.one("pulumi:providers:azure-native")
    subscription = str(provider.inputs.get("subscriptionId") or fakes_azure.FAKE_SUBSCRIPTION_ID)
    azure = [r for r in plan.recording.resources if r.type.startswith("azure-native:")]
    assert azure, f"{path.name}: no azure-native resource"
    assert {r.type for r in azure} <= set(ID_FORMATS), "an azure-native type without a realistic fake"
    for r in azure:
        pattern = ID_FORMATS[r.type].replace("{s}", re.escape(subscription))
        assert r.id is not None and re.fullmatch(pattern, r.id), (r.type, r.id)
