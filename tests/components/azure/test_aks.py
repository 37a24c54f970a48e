"""AksCluster: a private (prod) or allow-listed (dev) API server, Entra ID + Azure RBAC with local accounts
off, OIDC issuer + Workload Identity, CNI Overlay + Cilium behind the NAT gateway, etcd Secrets under a Key
Vault key the control-plane identity may use before the cluster exists, a tainted system pool, a pinned
version with a deliberate upgrade channel, and a kubeconfig that runs kubelogin."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pulumi
import pulumi_azure_native.network as network
import pytest
from pulumi.runtime.sync_await import _sync_await

from components.choices import AksSkuTier, AzureOsDiskType, NodeOsUpgradeChannel, UpgradeChannel
from components.clusters.azure.aks import (
    AKS_AAD_SERVER_ID,
    KEY_VAULT_CONTRIBUTOR,
    KEY_VAULT_CRYPTO_USER,
    NETWORK_CONTRIBUTOR,
    SYSTEM_POOL_TAINT,
    AksCluster,
    AksClusterArgs,
    component_name_problems,
    kubeconfig_from_credentials,
    validate_aks_cluster_args,
)
from inferstack.planning import fakes
from inferstack.planning.recording import Recording, run_program

CLUSTER = "azure-native:containerservice:ManagedCluster"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
VAULT = "azure-native:keyvault:Vault"
KEY = "azure-native:keyvault:Key"
ROLE = "azure-native:authorization:RoleAssignment"
CREDENTIALS = "azure-native:containerservice:listManagedClusterUserCredentials"
SUB = "00000000-0000-0000-0000-0000000000a1"
TENANT = "00000000-0000-0000-0000-0000000000b2"
ADMINS = "00000000-0000-0000-0000-0000000000c3"
NODE_SUBNET = (
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/nodes"
)
API_SUBNET = (
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/api"
)
PRINCIPAL = "00000000-0000-0000-0000-0000000000d4"
CLIENT = "00000000-0000-0000-0000-0000000000e5"
ALLOWED = ["203.0.113.0/24", "198.51.100.7/32"]
SERVER = "https://inferstack-prod-x1y2.privatelink.westeurope.azmk8s.io:443"
CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
# What listClusterUserCredential (format=exec) returns for an Entra cluster: kubelogin with devicecode.
CREDENTIAL = base64.b64encode(
    f"""apiVersion: v1
kind: Config
clusters:
- name: inferstack-prod
  cluster:
    certificate-authority-data: {CA}
    server: {SERVER}
users:
- name: clusterUser_rg_inferstack-prod
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kubelogin
      args: [get-token, --login, devicecode, --server-id, {AKS_AAD_SERVER_ID}]
""".encode()
).decode()


@pytest.fixture(scope="module", autouse=True)
def azure_provider_shapes() -> Iterator[None]:
    """Stand-ins for what the real provider returns, until inferstack/planning/fakes/azure.py answers them:
    the user credential invoke, the versioned key URI, and the cluster identity's map shape (the input is
    a list of ids, the output a map keyed by id). Answers from the fakes module win when it has them."""
    original_outputs, original_invoke = fakes.outputs_for, fakes.invoke_result

    def outputs_for(type_token: str, name: str, inputs: dict[str, Any], *rest: Any) -> dict[str, Any]:
        outputs = original_outputs(type_token, name, inputs, *rest)
        if type_token == KEY and not outputs.get("keyUriWithVersion"):
            outputs = {
                **outputs,
                "keyUriWithVersion": f"https://kv.vault.azure.net/keys/{inputs['keyName']}/0a1b2c",
            }
        if type_token == IDENTITY and not outputs.get("principalId"):
            outputs = {**outputs, "principalId": PRINCIPAL, "clientId": CLIENT}
        identities = (outputs.get("identity") or {}).get("userAssignedIdentities")
        if isinstance(identities, list):
            outputs = copy.deepcopy(outputs)
            outputs["identity"]["userAssignedIdentities"] = {
                i: {"principalId": SUB, "clientId": SUB} for i in identities
            }
        return outputs

    def invoke_result(token: str, args: dict[str, Any], *rest: Any) -> dict[str, Any]:
        try:
            return original_invoke(token, args, *rest)
        except NotImplementedError:
            if token != CREDENTIALS:
                raise
            return {"kubeconfigs": [{"name": "clusterUser", "value": CREDENTIAL}]}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fakes, "outputs_for", outputs_for)
        patch.setattr(fakes, "invoke_result", invoke_result)
        yield


def vault_endpoint(vault_id: Any, parent: pulumi.Resource) -> pulumi.Resource:
    """A stand-in for AzureNetwork.private_endpoint(group vault): the endpoint the key must wait for."""
    return network.PrivateEndpoint(
        "aks-kv-pe",
        resource_group_name="rg-inferstack",
        private_link_service_connections=[
            network.PrivateLinkServiceConnectionArgs(
                name="vault", private_link_service_id=vault_id, group_ids=["vault"]
            )
        ],
        opts=pulumi.ResourceOptions(parent=parent),
    )


def cluster_args(**changes: Any) -> AksClusterArgs:
    base = AksClusterArgs(
        vault_private_endpoint=vault_endpoint,
        cluster_name="inferstack-prod",
        resource_group_name="rg-inferstack",
        location="westeurope",
        subscription_id=SUB,
        tenant_id=TENANT,
        kubernetes_version="1.34",
        node_subnet_id=NODE_SUBNET,
        api_server_subnet_id=API_SUBNET,
        pod_cidr="192.168.0.0/16",
        service_cidr="172.16.0.0/16",
        dns_service_ip="172.16.0.10",
        private_cluster=True,
        admin_group_object_ids=[ADMINS],
        sku_tier=AksSkuTier.STANDARD,
        zones=["1", "2", "3"],
        tags={"team": "ml-platform"},
    )
    return dataclasses.replace(base, **changes)


def public_args(**changes: Any) -> AksClusterArgs:
    base: dict[str, Any] = {
        "private_cluster": False,
        "authorized_ip_ranges": list(ALLOWED),
        "sku_tier": AksSkuTier.FREE,
    }
    return cluster_args(**{**base, **changes})


def render(args: AksClusterArgs, name: str = "aks") -> tuple[Recording, AksCluster]:
    made: list[AksCluster] = []
    rec = run_program(lambda: made.append(AksCluster(name, args)))
    return rec, made[0]


@pytest.fixture(scope="module")
def prod() -> tuple[Recording, AksCluster]:
    return render(cluster_args())


@pytest.fixture(scope="module")
def dev() -> tuple[Recording, AksCluster]:
    return render(public_args())


def resolve(output: Any) -> Any:
    return _sync_await(output.future())


def cluster(rec: Recording) -> dict[str, Any]:
    return rec.one(CLUSTER).inputs


def system_pool(rec: Recording) -> dict[str, Any]:
    (pool,) = cluster(rec)["agentPoolProfiles"]
    return pool


def roles(rec: Recording) -> dict[str, dict[str, Any]]:
    return {r.name: r.inputs for r in rec.of_type(ROLE)}


# --- API server --------------------------------------------------------------------------------------


def test_prod_api_server_is_private_in_the_vnet(prod: tuple[Recording, AksCluster]) -> None:
    access = cluster(prod[0])["apiServerAccessProfile"]
    assert access["enablePrivateCluster"] is True
    # The name is public and resolves to the private address: no zone to link for peered runners.
    assert access["enablePrivateClusterPublicFQDN"] is True and access["privateDNSZone"] == "none"
    assert access["enableVnetIntegration"] is True and access["subnetId"] == API_SUBNET
    assert not access.get("authorizedIPRanges")


def test_dev_api_server_is_public_for_the_allow_list_only(dev: tuple[Recording, AksCluster]) -> None:
    access = cluster(dev[0])["apiServerAccessProfile"]
    assert access["enablePrivateCluster"] is False
    assert access["authorizedIPRanges"] == ALLOWED
    # VNet integration on a public cluster too: pods reach the API server on its subnet.
    assert access["enableVnetIntegration"] is True and access["subnetId"] == API_SUBNET
    assert access["disableRunCommand"] is True


# --- identity and access -----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["prod", "dev"])
def test_entra_id_with_azure_rbac_and_no_local_accounts(which: str, request: pytest.FixtureRequest) -> None:
    rec, _ = request.getfixturevalue(which)
    inputs = cluster(rec)
    assert inputs["aadProfile"] == {
        "managed": True,
        "enableAzureRBAC": True,
        "adminGroupObjectIDs": [ADMINS],
        "tenantID": TENANT,
    }
    assert inputs["disableLocalAccounts"] is True
    assert inputs["enableRBAC"] is True


def test_oidc_issuer_and_workload_identity_are_on(prod: tuple[Recording, AksCluster]) -> None:
    inputs = cluster(prod[0])
    assert inputs["oidcIssuerProfile"] == {"enabled": True}
    assert inputs["securityProfile"]["workloadIdentity"] == {"enabled": True}


def test_control_plane_runs_as_the_user_assigned_identity(prod: tuple[Recording, AksCluster]) -> None:
    rec, _ = prod
    identity = cluster(rec)["identity"]
    assert identity["type"] == "UserAssigned"
    assert identity["userAssignedIdentities"] == [rec.one(IDENTITY).id]


# --- network -----------------------------------------------------------------------------------------


def test_cni_overlay_with_cilium_behind_the_nat_gateway(prod: tuple[Recording, AksCluster]) -> None:
    network = cluster(prod[0])["networkProfile"]
    assert network["networkPlugin"] == "azure" and network["networkPluginMode"] == "overlay"
    assert network["networkDataplane"] == "cilium" and network["networkPolicy"] == "cilium"
    assert (network["podCidr"], network["serviceCidr"], network["dnsServiceIP"]) == (
        "192.168.0.0/16",
        "172.16.0.0/16",
        "172.16.0.10",
    )
    assert network["outboundType"] == "userAssignedNATGateway"
    assert network["loadBalancerSku"] == "standard"


def test_control_plane_may_manage_its_subnets(prod: tuple[Recording, AksCluster]) -> None:
    rec, _ = prod
    principal = rec.one(IDENTITY).outputs["principalId"]
    network_roles = [r for r in roles(rec).values() if r["roleDefinitionId"].endswith(NETWORK_CONTRIBUTOR)]
    assert sorted(r["scope"] for r in network_roles) == sorted([NODE_SUBNET, API_SUBNET])
    assert network_roles and all(r["principalId"] == principal for r in network_roles)


# --- KMS ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["prod", "dev"])
def test_etcd_is_encrypted_with_our_versioned_key(which: str, request: pytest.FixtureRequest) -> None:
    rec, aks = request.getfixturevalue(which)
    kms = cluster(rec)["securityProfile"]["azureKeyVaultKms"]
    key = rec.one(KEY)
    assert kms["enabled"] is True
    assert kms["keyId"] and kms["keyId"] == key.outputs["keyUriWithVersion"]
    assert resolve(aks.kms_key_id) == kms["keyId"]
    props = key.inputs["properties"]
    assert props["kty"] == "RSA" and props["keySize"] >= 2048
    assert sorted(props["keyOps"]) == ["decrypt", "encrypt"]
    assert props["attributes"]["exportable"] is False


@pytest.mark.parametrize("which", ["prod", "dev"])
def test_control_plane_holds_crypto_user_on_the_key_before_the_cluster(
    which: str, request: pytest.FixtureRequest
) -> None:
    rec, _ = request.getfixturevalue(which)
    (grant,) = [r for r in rec.of_type(ROLE) if r.inputs["roleDefinitionId"].endswith(KEY_VAULT_CRYPTO_USER)]
    assert grant.inputs["scope"] == rec.one(KEY).id  # the key itself, not the vault or the group
    assert grant.inputs["roleDefinitionId"] == (
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{KEY_VAULT_CRYPTO_USER}"
    )
    assert grant.inputs["principalType"] == "ServicePrincipal"
    assert grant.inputs["principalId"] == rec.one(IDENTITY).outputs["principalId"]
    assert grant.urn in rec.one(CLUSTER).dependencies


@pytest.mark.parametrize("which", ["prod", "dev"])
def test_key_vault_uses_rbac_soft_delete_and_purge_protection(
    which: str, request: pytest.FixtureRequest
) -> None:
    rec, _ = request.getfixturevalue(which)
    props = rec.one(VAULT).inputs["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True and props["softDeleteRetentionInDays"] == 90
    assert props["enablePurgeProtection"] is True
    assert props["tenantId"] == TENANT
    assert not props.get("accessPolicies")


def test_prod_key_vault_is_private(prod: tuple[Recording, AksCluster]) -> None:
    rec, _ = prod
    kms = cluster(rec)["securityProfile"]["azureKeyVaultKms"]
    assert kms["keyVaultNetworkAccess"] == "Private"
    assert kms["keyVaultResourceId"] == rec.one(VAULT).id
    vault = rec.one(VAULT).inputs["properties"]
    assert vault["publicNetworkAccess"] == "Disabled" and vault["networkAcls"]["defaultAction"] == "Deny"
    contributor = [r for r in roles(rec).values() if r["roleDefinitionId"].endswith(KEY_VAULT_CONTRIBUTOR)]
    assert [r["scope"] for r in contributor] == [rec.one(VAULT).id]


def test_dev_key_vault_is_public_and_needs_no_vault_contributor(dev: tuple[Recording, AksCluster]) -> None:
    rec, _ = dev
    kms = cluster(rec)["securityProfile"]["azureKeyVaultKms"]
    assert kms["keyVaultNetworkAccess"] == "Public" and not kms.get("keyVaultResourceId")
    assert not [r for r in roles(rec).values() if r["roleDefinitionId"].endswith(KEY_VAULT_CONTRIBUTOR)]
    # Both subnets AKS joins: the nodes' and the API server's (VNet integration on a public cluster too).
    network = [r["scope"] for r in roles(rec).values() if r["roleDefinitionId"].endswith(NETWORK_CONTRIBUTOR)]
    assert sorted(network) == sorted([NODE_SUBNET, API_SUBNET])


# --- system pool and lifecycle -----------------------------------------------------------------------


def test_system_pool_is_hardened(prod: tuple[Recording, AksCluster]) -> None:
    pool = system_pool(prod[0])
    assert pool["mode"] == "System"
    assert pool["nodeTaints"] == [SYSTEM_POOL_TAINT] == ["CriticalAddonsOnly=true:NoSchedule"]
    assert pool["enableNodePublicIP"] is False
    assert pool["enableAutoScaling"] is True and (pool["minCount"], pool["maxCount"]) == (2, 4)
    assert pool["availabilityZones"] == ["1", "2", "3"]
    assert pool["osDiskType"] == "Ephemeral" and pool["osSKU"] == "AzureLinux"
    assert pool["maxPods"] == 110 and pool["upgradeSettings"]["maxSurge"] == "33%"
    assert pool["vnetSubnetID"] == NODE_SUBNET
    assert pool["enableEncryptionAtHost"] is True


def test_version_is_pinned_with_a_deliberate_upgrade_channel(prod: tuple[Recording, AksCluster]) -> None:
    inputs = cluster(prod[0])
    assert inputs["kubernetesVersion"] == "1.34"
    assert system_pool(prod[0])["orchestratorVersion"] == "1.34"
    assert inputs["autoUpgradeProfile"] == {"upgradeChannel": "patch", "nodeOSUpgradeChannel": "NodeImage"}


def test_sku_tier_node_resource_group_and_tags(
    prod: tuple[Recording, AksCluster], dev: tuple[Recording, AksCluster]
) -> None:
    assert cluster(prod[0])["sku"] == {"name": "Base", "tier": "Standard"}
    assert cluster(dev[0])["sku"] == {"name": "Base", "tier": "Free"}
    inputs = cluster(prod[0])
    assert inputs["nodeResourceGroup"] == "inferstack-prod-nodes" == prod[1].node_resource_group
    assert inputs["nodeResourceGroupProfile"] == {"restrictionLevel": "ReadOnly"}
    assert inputs["tags"] == {"team": "ml-platform"}
    assert prod[1].system_pool_name == system_pool(prod[0])["name"]


def test_destroy_order_removes_the_cluster_before_its_key_identity_and_grants(
    prod: tuple[Recording, AksCluster],
) -> None:
    rec, _ = prod
    # Pulumi deletes dependents first: the cluster depends on every grant, and each grant on the key/identity.
    cluster_deps = set(rec.one(CLUSTER).dependencies)
    assert {r.urn for r in rec.of_type(ROLE)} <= cluster_deps
    for grant in rec.of_type(ROLE):
        assert rec.one(IDENTITY).urn in grant.dependencies
    crypto = next(
        r for r in rec.of_type(ROLE) if r.inputs["roleDefinitionId"].endswith(KEY_VAULT_CRYPTO_USER)
    )
    assert rec.one(KEY).urn in crypto.dependencies
    assert rec.one(KEY).urn in cluster_deps  # keyId comes from the key


# --- kubeconfig --------------------------------------------------------------------------------------


def test_kubeconfig_runs_kubelogin_with_no_static_credential(prod: tuple[Recording, AksCluster]) -> None:
    rec, aks = prod
    assert _sync_await(aks.kubeconfig.is_secret()) is True
    config = json.loads(resolve(aks.kubeconfig))
    (user,) = config["users"]
    assert set(user["user"]) == {"exec"}  # no token, client-certificate-data, client-key-data, password
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "kubelogin"
    assert exec_["args"] == [
        "get-token",
        "--login",
        "azurecli",
        "--server-id",
        "6dae42f8-4368-4678-94ff-3960e28e3630",
    ]
    (entry,) = config["clusters"]
    # Server and CA come from AKS's own user credential (fetched after the cluster exists).
    (call,) = [i for i in rec.invokes if i.token == CREDENTIALS]
    assert call.args["format"] == "exec" and call.args["resourceName"] == "inferstack-prod"
    assert entry["cluster"]["server"] and entry["cluster"]["certificate-authority-data"]


def test_kubeconfig_from_credentials_keeps_server_and_ca() -> None:
    config = json.loads(kubeconfig_from_credentials("ctx", CREDENTIAL))
    assert config["clusters"][0]["cluster"] == {"server": SERVER, "certificate-authority-data": CA}
    assert "devicecode" not in json.dumps(config)
    with pytest.raises(ValueError, match="no cluster server"):
        kubeconfig_from_credentials("ctx", base64.b64encode(b"apiVersion: v1\nclusters: []\n").decode())
    with pytest.raises(ValueError, match="not a base64 kubeconfig"):
        kubeconfig_from_credentials("ctx", "%%%")


# --- validation (pure) -------------------------------------------------------------------------------


def test_valid_args_have_no_problems() -> None:
    assert validate_aks_cluster_args(cluster_args()) == []
    assert validate_aks_cluster_args(public_args()) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            public_args(authorized_ip_ranges=[]),
            "authorized_ip_ranges: a public API server needs an allow-list",
        ),
        (public_args(authorized_ip_ranges=["0.0.0.0/0"]), "authorized_ip_ranges: open to the internet"),
        (public_args(authorized_ip_ranges=["0.0.0.0/1", "128.0.0.0/1"]), "open to the internet"),
        (
            public_args(authorized_ip_ranges=["2001:db8::/32"]),
            "authorized_ip_ranges[0]: 2001:db8::/32 is IPv6",
        ),
        (cluster_args(authorized_ip_ranges=ALLOWED), "private_cluster/authorized_ip_ranges"),
        (cluster_args(api_server_subnet_id=None), "api_server_subnet_id: a private cluster"),
        (cluster_args(admin_group_object_ids=[]), "admin_group_object_ids: with local accounts off"),
        (
            cluster_args(admin_group_object_ids=["admins"]),
            "admin_group_object_ids[0]: 'admins' is not a GUID",
        ),
        (cluster_args(tenant_id="contoso.onmicrosoft.com"), "tenant_id:"),
        (cluster_args(subscription_id=""), "subscription_id:"),
        (cluster_args(kubernetes_version="1.34.2"), "kubernetes_version: '1.34.2' pins a patch"),
        (cluster_args(kubernetes_version="latest"), "kubernetes_version: 'latest'"),
        (
            cluster_args(
                upgrade_channel=UpgradeChannel.NODE_IMAGE, node_os_upgrade_channel=NodeOsUpgradeChannel.NONE
            ),
            "upgrade_channel/node_os_upgrade_channel",
        ),
        (
            cluster_args(system_vm_size="Standard_D4s_v5"),
            "system_os_disk_type: Standard_D4s_v5 has no local disk",
        ),
        (cluster_args(system_os_disk_gib=200), "system_os_disk_gib: 200 GiB does not fit the 150 GiB"),
        (cluster_args(system_vm_size="d4"), "system_vm_size: 'd4'"),
        (cluster_args(system_nodes_min=0), "system_nodes_min:"),
        (cluster_args(system_nodes_min=5), "system_nodes_min/system_nodes_max"),
        (cluster_args(system_max_pods=300), "system_max_pods: 300"),
        (cluster_args(system_max_surge="lots"), "system_max_surge: 'lots'"),
        (cluster_args(zones=["4"]), "zones[0]: '4'"),
        (cluster_args(zones=["1", "1"]), "zones: lists a zone twice"),
        (cluster_args(dns_service_ip="10.0.0.10"), "dns_service_ip: 10.0.0.10 must be inside service_cidr"),
        (cluster_args(kms_key_size=1024), "kms_key_size: 1024"),
        (cluster_args(soft_delete_retention_days=3), "soft_delete_retention_days: 3"),
        (cluster_args(cluster_name="-bad"), "cluster_name: '-bad'"),
        (cluster_args(node_resource_group="nodes."), "node_resource_group: 'nodes.'"),
        (cluster_args(location="West Europe"), "location: 'West Europe'"),
    ],
)
def test_each_bad_arg_is_named(args: AksClusterArgs, expected: str) -> None:
    problems = validate_aks_cluster_args(args)
    assert any(expected in p for p in problems), problems


def test_managed_os_disk_lifts_the_local_disk_rules() -> None:
    args = cluster_args(
        system_vm_size="Standard_D4s_v5", system_os_disk_type=AzureOsDiskType.MANAGED, system_os_disk_gib=200
    )
    assert validate_aks_cluster_args(args) == []


def test_patch_pin_is_fine_without_a_version_channel() -> None:
    assert (
        validate_aks_cluster_args(
            cluster_args(kubernetes_version="1.34.2", upgrade_channel=UpgradeChannel.NONE)
        )
        == []
    )


def test_bad_args_fail_before_any_resource_with_every_problem() -> None:
    made: list[Any] = []
    with pytest.raises(ValueError, match=r"AksCluster 'aks': 2 problem") as error:
        run_program(
            lambda: made.append(AksCluster("aks", public_args(authorized_ip_ranges=[], tenant_id="x")))
        )
    assert "authorized_ip_ranges" in str(error.value) and "tenant_id" in str(error.value)


def test_component_name_fits_the_vault_name() -> None:
    assert component_name_problems("aks") == []
    assert component_name_problems("inferstack-prod")  # 15 + "-kv" + 8 > 24
