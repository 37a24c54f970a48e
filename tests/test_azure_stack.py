"""The dev-azure and prod-azure stacks, planned whole under the recording mock: the security and teardown
properties the Azure composition promises (issue 18's done-when list), checked on what it registers."""

from __future__ import annotations

import ipaddress
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.address_space import internet_exposure
from components.clusters.azure.workload_identity import (
    DNS_ZONE_CONTRIBUTOR,
    ENTRA_ID_LOGIN_CIDRS,
    STORAGE_BLOB_DATA_READER,
    TOKEN_EXCHANGE_AUDIENCE,
)
from inferstack.planning.plan import Plan, plan_stack
from stacks.config import load_stack_file, parse_stack_config
from stacks.rules_azure import azure_max_gpu_nodes
from tests.model_servers import model_server_allow, model_server_deployments
from tests.stack_graph import ancestors_and_dependencies, covers

ROOT = Path(__file__).resolve().parents[1]
AZURE_STACKS = ["dev-azure", "prod-azure"]

CLUSTER = "azure-native:containerservice:ManagedCluster"
AGENT_POOL = "azure-native:containerservice:AgentPool"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
FEDERATED = "azure-native:managedidentity:FederatedIdentityCredential"
ROLE = "azure-native:authorization:RoleAssignment"
ACCOUNT = "azure-native:storage:StorageAccount"
CONTAINER = "azure-native:storage:BlobContainer"
KEY = "azure-native:keyvault:Key"
SERVICE = "kubernetes:core/v1:Service"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
#: Roles that only read blobs: Storage Blob Data Reader. Contributor/Owner (write, delete) must never appear.
READ_ONLY_ROLES = {STORAGE_BLOB_DATA_READER}


@cache
def planned(stack: str) -> Plan:
    return plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)


def cluster(plan: Plan) -> dict[str, Any]:
    return plan.recording.one(CLUSTER).inputs


def role_guid(assignment: dict[str, Any]) -> str:
    return str(assignment["roleDefinitionId"]).rsplit("/", 1)[-1]


def test_prod_api_server_is_private_and_dev_is_public_only_to_the_listed_networks() -> None:
    prod = cluster(planned("prod-azure"))["apiServerAccessProfile"]
    assert prod["enablePrivateCluster"] is True
    # Its name in public DNS resolves to the private address: peered runners need no VNet link to a zone.
    assert (prod["enablePrivateClusterPublicFQDN"], prod["privateDNSZone"]) == (True, "none")
    assert not prod.get("authorizedIPRanges")
    dev_plan = planned("dev-azure")
    assert dev_plan.config.azure is not None
    dev = cluster(dev_plan)["apiServerAccessProfile"]
    assert dev["enablePrivateCluster"] is False
    # The listed networks, and the cluster's own NAT address (AKS admits only a load balancer's by itself).
    nat_ip = dev_plan.recording.one("azure-native:network:PublicIPAddress", "network-nat-ip").outputs[
        "ipAddress"
    ]
    assert dev["authorizedIPRanges"] == [
        *dev_plan.config.azure.api_server.authorized_ip_ranges,
        f"{nat_ip}/32",
    ]
    assert not internet_exposure(dev["authorizedIPRanges"])


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_sign_in_is_entra_id_with_azure_rbac_and_local_accounts_off(stack: str) -> None:
    plan = planned(stack)
    assert plan.config.azure is not None
    inputs = cluster(plan)
    assert inputs["disableLocalAccounts"] is True
    aad = inputs["aadProfile"]
    assert aad["managed"] is True and aad["enableAzureRBAC"] is True
    assert aad["adminGroupObjectIDs"] == plan.config.azure.admin_group_object_ids
    assert aad["tenantID"] == plan.config.azure.tenant_id


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_the_kubeconfig_signs_in_with_kubelogin_and_holds_no_credential(stack: str) -> None:
    plan = planned(stack)
    assert plan.recording.exports["kubeconfig"] == "[secret]"
    # The Kubernetes provider's input is the same kubeconfig, unredacted in the recording.
    kubeconfig = yaml.safe_load(
        plan.recording.one("pulumi:providers:kubernetes", "cluster").inputs["kubeconfig"]
    )
    outputs = plan.recording.one(CLUSTER).outputs
    [cluster_entry] = kubeconfig["clusters"]
    # The public FQDN on both: a private cluster's resolves to its private address (privateDNSZone none).
    assert cluster_entry["cluster"]["server"] == f"https://{outputs['fqdn']}:443"
    [user] = kubeconfig["users"]
    assert set(user["user"]) == {"exec"}  # no token, password or client key in the file
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "kubelogin"
    # AKS's Entra server application id (the audience of every AKS Entra token), from the Azure CLI.
    assert exec_["args"] == [
        "get-token",
        "--login",
        "azurecli",
        "--server-id",
        "6dae42f8-4368-4678-94ff-3960e28e3630",
    ]


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_oidc_issuer_workload_identity_overlay_and_cilium_are_on(stack: str) -> None:
    inputs = cluster(planned(stack))
    assert inputs["oidcIssuerProfile"]["enabled"] is True
    assert inputs["securityProfile"]["workloadIdentity"]["enabled"] is True
    net = inputs["networkProfile"]
    assert (net["networkPlugin"], net["networkPluginMode"]) == ("azure", "overlay")
    assert (net["networkDataplane"], net["networkPolicy"]) == ("cilium", "cilium")
    assert net["outboundType"] == "userAssignedNATGateway"


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_etcd_secrets_are_encrypted_with_the_stacks_key_vault_key(stack: str) -> None:
    plan = planned(stack)
    inputs = cluster(plan)
    kms = inputs["securityProfile"]["azureKeyVaultKms"]
    assert kms["enabled"] is True
    [etcd_key] = [k for k in plan.recording.of_type(KEY) if k.name.endswith("etcd-key")]
    assert kms["keyId"] == etcd_key.outputs["keyUriWithVersion"]  # a key this stack made
    private = plan.config.azure is not None and plan.config.azure.api_server.private
    assert kms["keyVaultNetworkAccess"] == ("Private" if private else "Public")


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_kubernetes_is_pinned_and_upgrades_take_patches_only(stack: str) -> None:
    plan = planned(stack)
    inputs = cluster(plan)
    assert inputs["kubernetesVersion"] == plan.config.cluster.kubernetes_version
    assert inputs["autoUpgradeProfile"]["upgradeChannel"] == "patch"
    assert inputs["autoUpgradeProfile"]["nodeOSUpgradeChannel"] == "NodeImage"


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_the_system_pool_admits_critical_add_ons_only_and_a_general_pool_takes_the_rest(stack: str) -> None:
    plan = planned(stack)
    [system] = cluster(plan)["agentPoolProfiles"]
    assert system["mode"] == "System"
    assert system["nodeTaints"] == ["CriticalAddonsOnly=true:NoSchedule"]
    assert system["enableNodePublicIP"] is False
    general = plan.recording.one(AGENT_POOL, "general-pool").inputs
    assert general["mode"] == "User" and not general.get("nodeTaints")
    assert general["enableNodePublicIP"] is False


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_gpu_pool_scales_from_zero_with_the_gpu_taint(stack: str) -> None:
    plan = planned(stack)
    pool = plan.recording.one(AGENT_POOL, "llm-pool").inputs
    assert pool["mode"] == "User"
    assert (pool["enableAutoScaling"], pool["minCount"], pool["count"]) == (True, 0, 0)
    assert pool["maxCount"] == azure_max_gpu_nodes(plan.config)
    assert "nvidia.com/gpu=present:NoSchedule" in pool["nodeTaints"]
    assert pool["gpuProfile"] == {"driver": "Install"}  # AKS installs the driver; we add the device plugin
    # The model server tolerates every taint the pool's nodes carry, and selects the pool.
    for deployment in model_server_deployments(plan.recording):
        pod = deployment.inputs["spec"]["template"]["spec"]
        tolerated = {(t["key"], t.get("effect")) for t in pod["tolerations"]}
        for taint in pool["nodeTaints"]:
            key, _, rest = taint.partition("=")
            assert (key, rest.rpartition(":")[2]) in tolerated, taint
        assert pod["nodeSelector"].items() <= pool["nodeLabels"].items()


def test_dev_gpus_are_spot_deleted_on_eviction_and_prod_gpus_on_demand() -> None:
    dev = planned("dev-azure").recording.one(AGENT_POOL, "llm-pool").inputs
    assert (dev["scaleSetPriority"], dev["scaleSetEvictionPolicy"], dev["spotMaxPrice"]) == (
        "Spot",
        "Delete",
        -1,
    )
    prod = planned("prod-azure").recording.one(AGENT_POOL, "llm-pool").inputs
    assert prod["scaleSetPriority"] == "Regular"


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_the_model_store_has_no_public_access_and_entra_id_only(stack: str) -> None:
    plan = planned(stack)
    account = plan.recording.one(ACCOUNT).inputs
    assert account["allowBlobPublicAccess"] is False
    assert account["allowSharedKeyAccess"] is False  # no account keys, no SAS: Entra ID only
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["enableHttpsTrafficOnly"] is True
    assert account["networkRuleSet"]["defaultAction"] == "Deny"
    assert plan.recording.one(CONTAINER).inputs["publicAccess"] == "None"


def test_prod_store_is_private_and_encrypted_with_the_stacks_key_dev_store_admits_the_node_subnet() -> None:
    prod = planned("prod-azure")
    account = prod.recording.one(ACCOUNT).inputs
    assert account["publicNetworkAccess"] == "Disabled"
    endpoints = {e.name: e.inputs for e in prod.recording.of_type("azure-native:network:PrivateEndpoint")}
    assert endpoints["model-store-pe"]["privateLinkServiceConnections"][0]["groupIds"] == ["blob"]
    assert account["encryption"]["keySource"] == "Microsoft.Keyvault"
    assert account["encryption"]["keyVaultProperties"]["keyName"] == "model-store"
    dev = planned("dev-azure").recording.one(ACCOUNT).inputs
    assert dev["publicNetworkAccess"] == "Enabled"
    [rule] = dev["networkRuleSet"]["virtualNetworkRules"]
    assert rule["virtualNetworkResourceId"].endswith(
        planned("dev-azure").recording.one("azure-native:network:Subnet", "network-nodes").outputs["name"]
    )


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_the_serving_identity_may_only_read_under_the_models_prefix(stack: str) -> None:
    plan = planned(stack)
    account, container, prefix = plan.config.model.azure_blob_location
    reader = plan.recording.one(IDENTITY, "model-reader")
    grants = [
        g for g in plan.recording.of_type(ROLE) if g.inputs["principalId"] == reader.outputs["principalId"]
    ]
    assert len(grants) == 1  # one grant, nothing else for this identity
    grant = grants[0].inputs
    assert role_guid(grant) in READ_ONLY_ROLES
    assert grant["scope"].endswith(f"/storageAccounts/{account}/blobServices/default/containers/{container}")
    assert grant["conditionVersion"] == "2.0"
    assert f"StringStartsWith '{prefix}/'" in grant["condition"]
    assert "blobs:prefix] StringStartsWith" in grant["condition"]  # listing too


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_the_federated_credential_trusts_exactly_the_serving_service_account(stack: str) -> None:
    plan = planned(stack)
    reader = plan.recording.one(IDENTITY, "model-reader")
    [credential] = [c for c in plan.recording.of_type(FEDERATED) if c.name == "model-reader-federated"]
    service_account = plan.recording.one(SERVICE_ACCOUNT, f"{plan.config.served[0].resource_name}-sa")
    namespace, name = (
        service_account.inputs["metadata"]["namespace"],
        service_account.outputs["metadata"]["name"],
    )
    assert credential.inputs["subject"] == f"system:serviceaccount:{namespace}:{name}"
    assert credential.inputs["audiences"] == [TOKEN_EXCHANGE_AUDIENCE]
    assert (
        credential.inputs["issuer"] == plan.recording.one(CLUSTER).outputs["oidcIssuerProfile"]["issuerURL"]
    )
    assert credential.inputs["resourceName"] == reader.outputs["name"]
    # The ServiceAccount names the identity; the pod carries the label AKS's webhook acts on.
    annotations = service_account.inputs["metadata"]["annotations"]
    assert annotations["azure.workload.identity/client-id"] == reader.outputs["clientId"]
    for deployment in model_server_deployments(plan.recording):
        assert (
            deployment.inputs["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"]
            == "true"
        )
        assert "azure.workload.identity/use" not in deployment.inputs["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_serving_pods_reach_entra_id_sign_in_and_in_prod_only_the_stores_private_endpoint(stack: str) -> None:
    plan = planned(stack)
    assert plan.config.azure is not None
    for deployment in model_server_deployments(plan.recording):
        allow = model_server_allow(plan.recording, deployment)
        egress_443 = {
            peer["ipBlock"]["cidr"]
            for rule in allow["egress"]
            if {"port": 443, "protocol": "TCP"} in rule.get("ports", [])
            for peer in rule["to"]
            if "ipBlock" in peer
        }
        assert set(ENTRA_ID_LOGIN_CIDRS) <= egress_443
        if plan.config.tier.value == "prod":
            assert egress_443 == {*ENTRA_ID_LOGIN_CIDRS, plan.config.azure.network.endpoints_subnet_cidr}
            assert not internet_exposure(sorted(egress_443))


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_gateway_keeps_the_client_ip_behind_the_allow_list(stack: str) -> None:
    plan = planned(stack)
    assert plan.config.azure is not None
    [service] = [s for s in plan.recording.of_type(SERVICE) if s.inputs["spec"].get("type") == "LoadBalancer"]
    spec, annotations = service.inputs["spec"], service.inputs["metadata"].get("annotations", {})
    internal = annotations.get("service.beta.kubernetes.io/azure-load-balancer-internal") == "true"
    assert internal is (plan.config.azure.load_balancer_scheme.value == "internal")
    assert spec["loadBalancerSourceRanges"] == plan.config.gateway.allowed_source_cidrs
    # Azure's load balancer passes the client's address through; only Local keeps it past the node.
    assert spec["externalTrafficPolicy"] == "Local"


def test_prod_cert_manager_may_write_only_in_its_zone_and_the_hostname_points_at_the_balancer() -> None:
    plan = planned("prod-azure")
    assert plan.config.azure is not None and plan.config.azure.dns_zone is not None
    zone = plan.config.azure.dns_zone
    identity = plan.recording.one(IDENTITY, "cert-manager-dns")
    [grant] = [
        g for g in plan.recording.of_type(ROLE) if g.inputs["principalId"] == identity.outputs["principalId"]
    ]
    assert role_guid(grant.inputs) == DNS_ZONE_CONTRIBUTOR
    assert (
        grant.inputs["scope"]
        .lower()
        .endswith(f"/resourcegroups/{zone.resource_group}/providers/microsoft.network/dnszones/{zone.name}")
    )
    [credential] = [c for c in plan.recording.of_type(FEDERATED) if c.name == "cert-manager-dns-federated"]
    assert credential.inputs["subject"] == "system:serviceaccount:cert-manager:llm-cert-manager"
    issuer = plan.recording.one("kubernetes:cert-manager.io/v1:ClusterIssuer").inputs["spec"]
    [solver] = issuer["acme"]["solvers"]
    azure_dns = solver["dns01"]["azureDNS"]
    assert azure_dns["hostedZoneName"] == zone.name
    assert azure_dns["managedIdentity"]["clientID"] == identity.outputs["clientId"]
    assert "clientSecretSecretRef" not in azure_dns  # no secret
    record = plan.recording.one("azure-native:dns:RecordSet", "hostname").inputs
    assert (record["zoneName"], record["relativeRecordSetName"], record["recordType"]) == (
        zone.name,
        "llm",
        "A",
    )
    assert record["aRecords"] == [{"ipv4Address": plan.recording.exports["load_balancer_ip"]}]


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_teardown_removes_kubernetes_objects_and_pools_before_the_cluster_and_the_cluster_before_the_network(
    stack: str,
) -> None:
    plan = planned(stack)
    [lb_service] = [
        s for s in plan.recording.of_type(SERVICE) if s.inputs["spec"].get("type") == "LoadBalancer"
    ]
    # The LoadBalancer Service goes while the cluster (whose cloud controller removes the LB rule) runs.
    assert covers(plan, ancestors_and_dependencies(plan, lb_service), CLUSTER)
    for pool in ("llm-pool", "general-pool"):
        assert covers(plan, ancestors_and_dependencies(plan, plan.recording.one(AGENT_POOL, pool)), CLUSTER)
    cluster_waits = ancestors_and_dependencies(plan, plan.recording.one(CLUSTER))
    for name, type_token in (
        ("network-nat", "azure-native:network:NatGateway"),
        ("network-nodes", "azure-native:network:Subnet"),
        ("network-vnet", "azure-native:network:VirtualNetwork"),
        ("aks-etcd-key", KEY),
        ("aks-kms-crypto-user", ROLE),
    ):
        # The resource itself: a cluster that outlives its NAT, subnet or KMS key grant cannot drain.
        assert plan.recording.one(type_token, name).urn in cluster_waits, name
    # Grants go before the identities they name (a dangling principal is an "Unknown" assignment).
    reader = plan.recording.one(IDENTITY, "model-reader")
    [grant] = [
        g for g in plan.recording.of_type(ROLE) if g.inputs["principalId"] == reader.outputs["principalId"]
    ]
    assert reader.urn in ancestors_and_dependencies(plan, grant)


def test_a_private_clusters_key_vault_gets_its_keys_through_a_private_endpoint() -> None:
    """AKS's KMS docs: creating keys in a private key vault without a private endpoint is not supported."""
    plan = planned("prod-azure")
    [vault] = [v for v in plan.recording.of_type("azure-native:keyvault:Vault") if v.name == "aks-kv"]
    assert vault.inputs["properties"]["publicNetworkAccess"] == "Disabled"
    [endpoint] = [
        e for e in plan.recording.of_type("azure-native:network:PrivateEndpoint") if e.name == "aks-kv-pe"
    ]
    connection = endpoint.inputs["privateLinkServiceConnections"][0]
    assert connection["groupIds"] == ["vault"] and connection["privateLinkServiceId"] == vault.outputs["id"]
    key = plan.recording.one(KEY, "aks-etcd-key")
    assert endpoint.urn in ancestors_and_dependencies(plan, key)


def test_the_prod_stores_key_vault_is_private_and_its_endpoint_goes_with_the_network() -> None:
    """The store's vault is kept on destroy; its private endpoint sits in the stack's subnet, so it must not
    be kept with the vault (a kept endpoint would block the subnet's delete)."""
    plan = planned("prod-azure")
    [vault] = [v for v in plan.recording.of_type("azure-native:keyvault:Vault") if v.name == "model-store-kv"]
    assert vault.inputs["properties"]["publicNetworkAccess"] == "Disabled" and vault.retain_on_delete
    [endpoint] = [
        e
        for e in plan.recording.of_type("azure-native:network:PrivateEndpoint")
        if e.name == "model-store-kv-pe"
    ]
    assert not endpoint.retain_on_delete
    assert endpoint.parent == plan.recording.one("inferstack:azure:Network").urn
    key = plan.recording.one(KEY, "model-store-key")
    assert endpoint.urn in ancestors_and_dependencies(plan, key)


def test_dns_service_ip_is_inside_the_service_range() -> None:
    plan = planned("prod-azure")
    net = cluster(plan)["networkProfile"]
    assert ipaddress.ip_address(net["dnsServiceIP"]) in ipaddress.ip_network(net["serviceCidr"])
    assert not ipaddress.ip_network(net["podCidr"]).overlaps(ipaddress.ip_network("10.40.0.0/16"))


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_destroy_keeps_the_weights_in_a_resource_group_of_their_own(stack: str) -> None:
    """`pulumi destroy` deletes the stack's resource group and everything in it, so a store kept on destroy
    (force_destroy false) must live in another group, itself kept, and so must its key's vault."""
    plan = planned(stack)
    groups = {g.name: g for g in plan.recording.of_type("azure-native:resources:ResourceGroup")}
    stack_group, store_group = groups["resource-group"], groups["model-store-group"]
    assert store_group.inputs["resourceGroupName"] == f"{stack_group.inputs['resourceGroupName']}-models"
    assert store_group.retain_on_delete and not stack_group.retain_on_delete
    account = plan.recording.one(ACCOUNT)
    assert account.inputs["resourceGroupName"] == store_group.inputs["resourceGroupName"]
    assert account.retain_on_delete
    for vault in plan.recording.of_type("azure-native:keyvault:Vault"):
        if vault.name == "model-store-kv":
            assert vault.inputs["resourceGroupName"] == store_group.inputs["resourceGroupName"]
            assert vault.retain_on_delete and vault.inputs["properties"]["enablePurgeProtection"] is True


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_the_nodes_may_pull_the_model_servers_image_and_nothing_more(stack: str) -> None:
    plan = planned(stack)
    assert plan.config.azure is not None
    [grant] = [g for g in plan.recording.of_type(ROLE) if g.name == "acr-pull"]
    assert role_guid(grant.inputs) == "7f951dda-4ed3-4680-a7ca-43fe172d538d"  # AcrPull: pull only
    assert grant.inputs["scope"] == plan.config.azure.container_registry_id
    kubelet = plan.recording.one(CLUSTER).outputs["identityProfile"]["kubeletidentity"]["objectId"]
    assert grant.inputs["principalId"] == kubelet
    for deployment in model_server_deployments(plan.recording):
        assert grant.urn in ancestors_and_dependencies(plan, deployment)  # no pull before the grant


def test_a_dns_zone_in_another_subscription_is_written_there_and_only_the_zone_is() -> None:
    """The A record goes through a provider of the zone's subscription; every other resource stays in the
    stack's (in the offline plan too: each Azure resource's id carries its own provider's subscription)."""
    path = ROOT / "stacks" / "Pulumi.prod-azure.yaml"
    document = yaml.safe_load(path.read_text())
    other = "99999999-8888-7777-6666-555555555555"
    document["config"]["inferstack:azure"]["dns_zone"]["subscription_id"] = other
    values = {k.split(":", 1)[1]: v for k, v in document["config"].items()}
    plan = plan_stack(parse_stack_config(values, path.name), "prod-azure")
    main = plan.config.azure.subscription_id if plan.config.azure else ""
    record = plan.recording.one("azure-native:dns:RecordSet", "hostname")
    assert f"/subscriptions/{other}/" in record.outputs["id"]
    assert f"/subscriptions/{main}/" in plan.recording.one(CLUSTER).outputs["id"]
    [grant] = [g for g in plan.recording.of_type(ROLE) if g.name == "cert-manager-dns"]
    assert grant.inputs["scope"].startswith(f"/subscriptions/{other}/")
