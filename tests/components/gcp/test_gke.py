"""GkeCluster: private nodes, a private (or allow-listed) control plane and the IAM-authenticated DNS
endpoint, Workload Identity, Shielded nodes, Dataplane V2, Secrets under our own KMS key that GKE's agent
may use before the cluster exists, a node service account with two roles only, a hardened system pool,
and an exec-plugin kubeconfig."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pulumi.runtime.sync_await import _sync_await

from components.choices import GkeReleaseChannel
from components.clusters.gcp.gke import (
    GkeCluster,
    GkeClusterArgs,
    api_server_url,
    component_name_problems,
    kubeconfig,
    node_service_account_id,
    region_of,
    validate_gke_cluster_args,
)
from inferstack.planning.fakes.gcp import FAKE_PROJECT_NUMBER
from inferstack.planning.recording import RecordedResource, Recording, run_program

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
KEY_RING = "gcp:kms/keyRing:KeyRing"
KEY = "gcp:kms/cryptoKey:CryptoKey"
KEY_GRANT = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
ACCOUNT = "gcp:serviceaccount/account:Account"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
PROJECT = "acme-inference"
NAME = "inferstack-prod"
NETWORK = f"projects/{PROJECT}/global/networks/net-vpc-4b1fc27"
SUBNET = f"projects/{PROJECT}/regions/europe-west4/subnetworks/net-subnet-386d886"
PRIVATE = ["10.50.0.0/16", "192.168.8.0/24"]
PUBLIC = ["203.0.113.0/24", "198.51.100.7/32"]
PLUGIN_API = "client.authentication.k8s.io/v1beta1"


def cluster_args(**changes: Any) -> GkeClusterArgs:
    base = GkeClusterArgs(
        cluster_name=NAME,
        project=PROJECT,
        project_number=FAKE_PROJECT_NUMBER,
        location="europe-west4",
        release_channel=GkeReleaseChannel.REGULAR,
        kubernetes_version="1.34",
        network_id=NETWORK,
        subnetwork_id=SUBNET,
        pods_range_name="pods",
        services_range_name="services",
        control_plane_cidr="172.16.0.0/28",
        public_access_cidrs=[],
        private_access_cidrs=list(PRIVATE),
        labels={"team": "ml-platform"},
    )
    return dataclasses.replace(base, **changes)


def render(args: GkeClusterArgs, name: str = "gke") -> tuple[Recording, GkeCluster]:
    made: list[GkeCluster] = []
    rec = run_program(lambda: made.append(GkeCluster(name, args)))
    return rec, made[0]


@pytest.fixture(scope="module")
def default() -> tuple[Recording, GkeCluster]:
    """One rendering shared by the tests that only read it (keeps the file fast)."""
    return render(cluster_args())


@pytest.fixture(scope="module")
def public() -> tuple[Recording, GkeCluster]:
    """Allow-listed public endpoint, no DNS endpoint: the kubeconfig uses the public IP."""
    return render(cluster_args(public_access_cidrs=list(PUBLIC), dns_endpoint=False))


def resolve(output: Any) -> Any:
    return _sync_await(output.future())


def cluster(rec: Recording) -> dict[str, Any]:
    return rec.one(CLUSTER).inputs


def pool(rec: Recording) -> dict[str, Any]:
    return rec.one(NODE_POOL).inputs


def node_account(rec: Recording) -> RecordedResource:
    return rec.one(ACCOUNT)


# --- network isolation -------------------------------------------------------------------------------


def test_nodes_are_private_and_the_endpoint_is_private_without_public_cidrs(
    default: tuple[Recording, GkeCluster],
) -> None:
    rec, _ = default
    private = cluster(rec)["privateClusterConfig"]
    assert private["enablePrivateNodes"] is True
    assert private["enablePrivateEndpoint"] is True
    assert private["masterIpv4CidrBlock"] == "172.16.0.0/28"
    assert private["masterGlobalAccessConfig"] == {"enabled": True}


def test_public_cidrs_open_the_public_endpoint_to_them_only(public: tuple[Recording, GkeCluster]) -> None:
    rec, _ = public
    inputs = cluster(rec)
    assert inputs["privateClusterConfig"]["enablePrivateEndpoint"] is False
    assert inputs["privateClusterConfig"]["enablePrivateNodes"] is True  # nodes stay private either way
    blocks = inputs["masterAuthorizedNetworksConfig"]["cidrBlocks"]
    assert sorted(b["cidrBlock"] for b in blocks) == sorted(PUBLIC + PRIVATE)


def test_authorized_networks_are_exactly_the_listed_cidrs(default: tuple[Recording, GkeCluster]) -> None:
    rec, _ = default
    authorized = cluster(rec)["masterAuthorizedNetworksConfig"]
    assert [b["cidrBlock"] for b in authorized["cidrBlocks"]] == PRIVATE
    assert len({b["displayName"] for b in authorized["cidrBlocks"]}) == len(PRIVATE)
    # Not every VM in Google Cloud: only our networks pass the IP check.
    assert authorized["gcpPublicCidrsAccessEnabled"] is False


def test_no_cidrs_at_all_still_enables_authorized_networks_with_none_listed() -> None:
    rec, _ = render(cluster_args(private_access_cidrs=[]))
    authorized = cluster(rec)["masterAuthorizedNetworksConfig"]
    assert not authorized.get("cidrBlocks")
    assert authorized["gcpPublicCidrsAccessEnabled"] is False


def test_dns_endpoint_follows_the_flag(
    default: tuple[Recording, GkeCluster], public: tuple[Recording, GkeCluster]
) -> None:
    on = cluster(default[0])["controlPlaneEndpointsConfig"]["dnsEndpointConfig"]
    off = cluster(public[0])["controlPlaneEndpointsConfig"]["dnsEndpointConfig"]
    assert on["allowExternalTraffic"] is True
    assert off["allowExternalTraffic"] is False


def test_vpc_native_on_the_named_ranges_of_the_given_subnet(default: tuple[Recording, GkeCluster]) -> None:
    rec, _ = default
    inputs = cluster(rec)
    assert inputs["networkingMode"] == "VPC_NATIVE"
    assert inputs["network"] == NETWORK and inputs["subnetwork"] == SUBNET
    policy = inputs["ipAllocationPolicy"]
    assert policy["clusterSecondaryRangeName"] == "pods"
    assert policy["servicesSecondaryRangeName"] == "services"
    assert not policy.get("clusterIpv4CidrBlock") and not policy.get("servicesIpv4CidrBlock")


# --- cluster hardening -------------------------------------------------------------------------------


def test_workload_identity_pool_is_the_projects(default: tuple[Recording, GkeCluster]) -> None:
    rec, gke = default
    assert cluster(rec)["workloadIdentityConfig"] == {"workloadPool": f"{PROJECT}.svc.id.goog"}
    assert gke.workload_pool == f"{PROJECT}.svc.id.goog"


def test_shielded_nodes_dataplane_v2_no_legacy_auth(default: tuple[Recording, GkeCluster]) -> None:
    rec, _ = default
    inputs = cluster(rec)
    assert inputs["enableShieldedNodes"] is True
    assert inputs["datapathProvider"] == "ADVANCED_DATAPATH"  # enforces NetworkPolicy
    assert not inputs.get("networkPolicy")  # no Calico on top of Dataplane V2
    assert inputs["enableLegacyAbac"] is False
    assert inputs["masterAuth"]["clientCertificateConfig"] == {"issueClientCertificate": False}


def test_default_pool_is_removed_and_would_run_as_our_node_account(
    default: tuple[Recording, GkeCluster],
) -> None:
    rec, _ = default
    inputs = cluster(rec)
    assert inputs["removeDefaultNodePool"] is True
    assert inputs["initialNodeCount"] == 1
    assert inputs["nodeConfig"]["serviceAccount"] == node_account(rec).outputs["email"]
    assert inputs["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert not inputs.get("nodePools")


def test_release_channel_version_floor_protection_and_labels(default: tuple[Recording, GkeCluster]) -> None:
    rec, gke = default
    inputs = cluster(rec)
    assert inputs["name"] == NAME and inputs["project"] == PROJECT
    assert inputs["location"] == "europe-west4" and gke.location == "europe-west4"
    assert inputs["releaseChannel"] == {"channel": "REGULAR"}
    assert inputs["minMasterVersion"] == "1.34"
    assert inputs["deletionProtection"] is True
    assert inputs["resourceLabels"] == {"team": "ml-platform"}
    assert not inputs.get("nodeLocations")  # GKE's default zones for a regional cluster


def test_logs_and_metrics_without_managed_prometheus(default: tuple[Recording, GkeCluster]) -> None:
    rec, _ = default
    inputs = cluster(rec)
    assert inputs["loggingConfig"]["enableComponents"] == ["SYSTEM_COMPONENTS", "WORKLOADS"]
    assert inputs["monitoringConfig"]["enableComponents"] == ["SYSTEM_COMPONENTS"]
    assert inputs["monitoringConfig"]["managedPrometheus"] == {"enabled": False}


def test_gke_leaves_the_gateway_api_crds_to_envoy_gateway(default: tuple[Recording, GkeCluster]) -> None:
    rec, _ = default
    assert cluster(rec)["gatewayApiConfig"] == {"channel": "CHANNEL_DISABLED"}


# --- secrets encryption ------------------------------------------------------------------------------


def test_secrets_are_encrypted_with_the_key_the_component_made(default: tuple[Recording, GkeCluster]) -> None:
    rec, gke = default
    key = rec.one(KEY)
    assert cluster(rec)["databaseEncryption"] == {"state": "ENCRYPTED", "keyName": key.id}
    assert resolve(gke.secrets_key_id) == key.id
    assert key.inputs["keyRing"] == rec.one(KEY_RING).id
    assert key.inputs["rotationPeriod"] == "7776000s"  # 90 days
    assert key.inputs["purpose"] == "ENCRYPT_DECRYPT"


def test_gke_service_agent_may_use_the_key_before_the_cluster_exists(
    default: tuple[Recording, GkeCluster],
) -> None:
    rec, _ = default
    (grant,) = rec.of_type(KEY_GRANT)
    assert grant.inputs["cryptoKeyId"] == rec.one(KEY).id
    assert grant.inputs["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert (
        grant.inputs["member"]
        == f"serviceAccount:service-{FAKE_PROJECT_NUMBER}@container-engine-robot.iam.gserviceaccount.com"
    )
    assert grant.urn in rec.one(CLUSTER).dependencies


def test_key_ring_and_key_outlive_destroy_in_the_clusters_region() -> None:
    rec, _ = render(cluster_args(location="europe-west4-b", node_zones=["europe-west4-c"]))
    ring, key = rec.one(KEY_RING), rec.one(KEY)
    assert ring.retain_on_delete and key.retain_on_delete  # KMS rings and keys cannot be deleted
    assert ring.inputs["location"] == "europe-west4"  # a zonal cluster's key lives in its region
    assert ring.inputs["project"] == PROJECT
    assert not rec.one(KEY_GRANT).retain_on_delete


# --- node identity -----------------------------------------------------------------------------------


def test_node_account_has_only_the_listed_roles(default: tuple[Recording, GkeCluster]) -> None:
    rec, gke = default
    account = node_account(rec)
    members = rec.of_type(PROJECT_MEMBER)
    assert sorted(m.inputs["role"] for m in members) == [
        "roles/artifactregistry.reader",
        "roles/container.defaultNodeServiceAccount",
    ]
    assert all(m.inputs["member"] == account.outputs["member"] for m in members)
    assert all(m.inputs["project"] == PROJECT for m in members)
    assert account.inputs["accountId"] == f"{NAME}-nodes"
    assert resolve(gke.node_service_account_email) == account.outputs["email"]


def test_nodes_are_created_after_their_account_has_its_roles(default: tuple[Recording, GkeCluster]) -> None:
    rec, _ = default
    roles = {m.urn for m in rec.of_type(PROJECT_MEMBER)}
    assert roles <= set(rec.one(NODE_POOL).dependencies)
    assert roles <= set(rec.one(CLUSTER).dependencies)


@pytest.mark.parametrize("cluster_name", ["a", "abc", "x" * 24, "x" * 25, "a" + "-b" * 19, "inferstack-prod"])
def test_node_account_id_is_a_valid_service_account_id(cluster_name: str) -> None:
    account_id = node_service_account_id(cluster_name)
    assert re.fullmatch(r"[a-z][-a-z0-9]{4,28}[a-z0-9]", account_id), account_id
    assert account_id == node_service_account_id(cluster_name)  # stable


@settings(max_examples=60, deadline=None)
@given(
    prefix=st.from_regex(r"[a-z][-a-z0-9]{24,30}", fullmatch=True), a=st.text("abc", min_size=5, max_size=8)
)
def test_long_names_sharing_a_prefix_get_different_node_accounts(prefix: str, a: str) -> None:
    first, second = f"{prefix}{a}"[:40], f"{prefix}{a[::-1]}x"[:40]
    if first != second:
        assert node_service_account_id(first) != node_service_account_id(second)
    assert len(node_service_account_id(first)) <= 30


# --- system node pool --------------------------------------------------------------------------------


def test_system_pool_autoscales_per_zone_and_is_auto_repaired_and_upgraded(
    default: tuple[Recording, GkeCluster],
) -> None:
    rec, gke = default
    inputs = pool(rec)
    assert inputs["cluster"] == NAME
    assert inputs["location"] == "europe-west4" and inputs["project"] == PROJECT
    assert inputs["autoscaling"] == {"minNodeCount": 1, "maxNodeCount": 3}
    assert inputs["initialNodeCount"] == 1
    assert inputs["management"] == {"autoRepair": True, "autoUpgrade": True}
    assert inputs["upgradeSettings"]["maxUnavailable"] == 0
    assert rec.one(CLUSTER).urn in rec.one(NODE_POOL).dependencies
    assert resolve(gke.system_node_pool.id) == rec.one(NODE_POOL).id


def test_system_nodes_are_hardened(default: tuple[Recording, GkeCluster]) -> None:
    rec, _ = default
    node = pool(rec)["nodeConfig"]
    assert node["serviceAccount"] == node_account(rec).outputs["email"]
    assert node["oauthScopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert node["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}  # pods never see node credentials
    assert node["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
    assert node["imageType"] == "COS_CONTAINERD"
    assert node["diskType"] == "pd-balanced" and node["diskSizeGb"] == 50
    assert node["machineType"] == "e2-standard-4"
    assert node["metadata"] == {"disable-legacy-endpoints": "true"}
    assert node["labels"] == {"inferstack.io/node-role": "system"}
    assert node["resourceLabels"] == {"team": "ml-platform"}
    assert not node.get("taints")  # system pods tolerate nothing special
    assert not node.get("spot") and not node.get("preemptible")


def test_pool_sizes_follow_the_args() -> None:
    rec, _ = render(
        cluster_args(
            system_nodes_min=2, system_nodes_max=5, system_machine_type="n2-standard-8", system_disk_gib=100
        )
    )
    inputs = pool(rec)
    assert inputs["autoscaling"] == {"minNodeCount": 2, "maxNodeCount": 5}
    assert inputs["nodeConfig"]["machineType"] == "n2-standard-8"
    assert inputs["nodeConfig"]["diskSizeGb"] == 100


def test_zonal_cluster_spreads_nodes_over_the_listed_zones() -> None:
    rec, gke = render(
        cluster_args(location="europe-west4-a", node_zones=["europe-west4-b", "europe-west4-c"])
    )
    inputs = cluster(rec)
    assert inputs["location"] == "europe-west4-a" and gke.location == "europe-west4-a"
    assert inputs["nodeLocations"] == ["europe-west4-b", "europe-west4-c"]


# --- kubeconfig --------------------------------------------------------------------------------------


def _config(gke: GkeCluster) -> dict[str, Any]:
    return json.loads(resolve(gke.kubeconfig))


def test_kubeconfig_is_secret_and_uses_the_exec_plugin(default: tuple[Recording, GkeCluster]) -> None:
    _, gke = default
    assert _sync_await(gke.kubeconfig.is_secret()) is True
    config = _config(gke)
    (user,) = config["users"]
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "gke-gcloud-auth-plugin"
    assert exec_["apiVersion"] == PLUGIN_API
    assert exec_["provideClusterInfo"] is True
    assert exec_["installHint"]
    assert set(user["user"]) == {"exec"}  # no token, no client certificate


def test_kubeconfig_uses_the_dns_endpoint_without_a_ca(default: tuple[Recording, GkeCluster]) -> None:
    rec, gke = default
    (entry,) = _config(gke)["clusters"]
    dns = rec.one(CLUSTER).outputs["controlPlaneEndpointsConfig"]["dnsEndpointConfig"]["endpoint"]
    assert dns.endswith(".gke.goog")
    assert entry["cluster"] == {"server": f"https://{dns}"}
    assert resolve(gke.cluster_name) == NAME


def test_kubeconfig_uses_the_public_endpoint_with_the_ca(public: tuple[Recording, GkeCluster]) -> None:
    rec, gke = public
    out = rec.one(CLUSTER).outputs
    (entry,) = _config(gke)["clusters"]
    assert entry["cluster"] == {
        "server": f"https://{out['endpoint']}",
        "certificate-authority-data": out["masterAuth"]["clusterCaCertificate"],
    }


def test_kubeconfig_uses_the_private_endpoint_when_nothing_else_is_open() -> None:
    rec, gke = render(cluster_args(dns_endpoint=False))
    out = rec.one(CLUSTER).outputs
    (entry,) = _config(gke)["clusters"]
    private = out["privateClusterConfig"]["privateEndpoint"]
    assert private.startswith("172.16.0.")
    assert entry["cluster"]["server"] == f"https://{private}"
    assert entry["cluster"]["certificate-authority-data"] == out["masterAuth"]["clusterCaCertificate"]


def test_kubeconfig_context_names_the_cluster_like_gcloud() -> None:
    config = json.loads(kubeconfig("gke_p_europe-west4_c1", "https://10.0.0.2", "Q0E="))
    (context,) = config["contexts"]
    assert context["name"] == config["current-context"] == "gke_p_europe-west4_c1"
    assert context["context"] == {"cluster": "gke_p_europe-west4_c1", "user": "gke_p_europe-west4_c1"}
    assert config["clusters"][0]["cluster"]["certificate-authority-data"] == "Q0E="


@pytest.mark.parametrize(
    ("dns", "public", "expected"),
    [
        (True, True, ("https://gke-x.europe-west4.gke.goog", False)),
        (True, False, ("https://gke-x.europe-west4.gke.goog", False)),
        (False, True, ("https://34.29.120.9", True)),
        (False, False, ("https://172.16.0.2", True)),
    ],
)
def test_api_server_choice(dns: bool, public: bool, expected: tuple[str, bool]) -> None:
    assert (
        api_server_url(
            dns_endpoint=dns,
            public=public,
            dns_name="gke-x.europe-west4.gke.goog",
            public_ip="34.29.120.9",
            private_ip="172.16.0.2",
        )
        == expected
    )


# --- names -------------------------------------------------------------------------------------------


def test_children_have_stable_names_and_are_parented(default: tuple[Recording, GkeCluster]) -> None:
    rec, _ = default
    custom = sorted(r.name for r in rec.resources if r.custom)
    assert custom == [
        "gke-cluster",
        "gke-keyring",
        "gke-nodes",
        "gke-nodes-default-node",
        "gke-nodes-registry-reader",
        "gke-secrets-key",
        "gke-secrets-key-gke",
        "gke-system",
    ]
    for r in rec.resources:
        if r.custom:
            assert (r.parent or "").endswith("inferstack:gcp:GkeCluster::gke"), r.name


def test_system_pool_is_auto_named_so_a_replacement_can_come_up_first(
    default: tuple[Recording, GkeCluster],
) -> None:
    rec, _ = default
    assert "name" not in pool(rec)
    assert len(rec.one(NODE_POOL).outputs["name"]) <= 40


# --- validation --------------------------------------------------------------------------------------


def test_default_args_have_no_problems() -> None:
    assert validate_gke_cluster_args(cluster_args()) == []
    zonal = cluster_args(location="us-central1-f", node_zones=["us-central1-a"], public_access_cidrs=PUBLIC)
    assert validate_gke_cluster_args(zonal) == []


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"cluster_name": "Inferstack"}, "cluster_name"),
        ({"cluster_name": "1cluster"}, "cluster_name"),
        ({"cluster_name": "cluster-"}, "cluster_name"),
        ({"cluster_name": "c" * 41}, "cluster_name"),
        ({"cluster_name": "has_underscore"}, "cluster_name"),
        ({"project": "Acme"}, "project"),
        ({"project": "12345678"}, "project"),
        ({"project": "abc"}, "project"),
        ({"project_number": "acme-inference"}, "project_number"),
        ({"location": "europe"}, "location"),
        ({"location": "europe-west4-ab"}, "location"),
        ({"node_zones": ["us-central1-a"]}, "node_zones[0]"),
        ({"node_zones": ["europe-west4"]}, "node_zones[0]"),
        ({"node_zones": ["europe-west4-a", "europe-west4-a"]}, "node_zones"),
        ({"location": "europe-west4-a", "node_zones": ["europe-west4-a"]}, "node_zones[0]"),
        ({"kubernetes_version": "1.34.1-gke.1000"}, "kubernetes_version"),
        ({"kubernetes_version": "latest"}, "kubernetes_version"),
        ({"pods_range_name": "Pods"}, "pods_range_name"),
        ({"services_range_name": "pods"}, "pods_range_name/services_range_name"),
        ({"control_plane_cidr": "172.16.0.0/24"}, "control_plane_cidr"),
        ({"control_plane_cidr": "172.16.0.1/28"}, "control_plane_cidr"),
        ({"public_access_cidrs": ["0.0.0.0/0"]}, "public_access_cidrs"),
        ({"public_access_cidrs": ["0.0.0.0/1", "128.0.0.0/1"]}, "public_access_cidrs"),
        ({"public_access_cidrs": ["::/0"]}, "public_access_cidrs"),
        ({"public_access_cidrs": ["203.0.113.7/24"]}, "public_access_cidrs[0]"),
        ({"public_access_cidrs": ["office"]}, "public_access_cidrs[0]"),
        ({"public_access_cidrs": ["203.0.113.0/24", "203.0.113.0/24"]}, "public_access_cidrs"),
        ({"private_access_cidrs": ["0.0.0.0/0"]}, "private_access_cidrs"),
        ({"public_access_cidrs": [PRIVATE[0]]}, "public_access_cidrs/private_access_cidrs"),
        ({"system_machine_type": "large"}, "system_machine_type"),
        ({"system_nodes_min": 0}, "system_nodes_min"),
        ({"system_nodes_min": 4}, "system_nodes_min/system_nodes_max"),
        ({"system_disk_gib": 5}, "system_disk_gib"),
        ({"labels": {"Team": "ml"}}, "labels"),
        ({"labels": {"team": "ML Platform"}}, "labels"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], field_name: str) -> None:
    problems = validate_gke_cluster_args(cluster_args(**changes))
    assert [p.split(": ")[0] for p in problems] == [field_name]


def test_too_many_authorized_networks() -> None:
    many = [f"10.{i // 256}.{i % 256}.0/24" for i in range(101)]
    problems = validate_gke_cluster_args(cluster_args(private_access_cidrs=many))
    assert [p.split(": ")[0] for p in problems] == ["public_access_cidrs/private_access_cidrs"]


def test_project_number_may_be_an_output() -> None:
    import pulumi

    args = cluster_args(project_number=pulumi.Output.from_input(FAKE_PROJECT_NUMBER))
    assert validate_gke_cluster_args(args) == []


def test_messages_say_the_fix() -> None:
    (host_bits,) = validate_gke_cluster_args(cluster_args(public_access_cidrs=["203.0.113.7/24"]))
    assert "did you mean 203.0.113.0/24" in host_bits
    (open_to_all,) = validate_gke_cluster_args(cluster_args(public_access_cidrs=["0.0.0.0/0"]))
    assert "open to the internet" in open_to_all and "dns_endpoint" in open_to_all
    (wrong_region,) = validate_gke_cluster_args(cluster_args(node_zones=["us-east1-b"]))
    assert "europe-west4" in wrong_region


def test_constructor_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        GkeCluster("gke", cluster_args(public_access_cidrs=["0.0.0.0/0"], system_nodes_min=5))
    message = str(raised.value)
    assert (
        "public_access_cidrs: open to the internet" in message
        and "system_nodes_min/system_nodes_max" in message
    )


@pytest.mark.parametrize("name", ["GKE", "gke_1", "9gke", "g" * 26])
def test_component_name_must_leave_room_for_the_pool_name(name: str) -> None:
    assert [p.split(": ")[0] for p in component_name_problems(name)] == ["name"]


def test_component_names_that_fit() -> None:
    assert component_name_problems("gke") == component_name_problems("g" * 25) == []


@pytest.mark.parametrize(
    ("location", "region"),
    [("europe-west4", "europe-west4"), ("europe-west4-a", "europe-west4"), ("us-central1-f", "us-central1")],
)
def test_region_of(location: str, region: str) -> None:
    assert region_of(location) == region
