"""The dev-gcp and prod-gcp stacks, planned whole under the recording mock: the security and teardown
properties the GCP composition promises, checked on what it actually registers."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import yaml

from components.clusters.gcp.gpu_machines import GCP_GPU_MACHINES
from inferstack.planning.plan import Plan, plan_stack
from stacks.config import load_stack_file, parse_stack_config
from stacks.gcp import REQUIRED_APIS
from stacks.rules_gcp import gcp_max_gpu_nodes
from tests.model_servers import model_server_allow, model_server_deployments
from tests.stack_graph import ancestors_and_dependencies, covers

ROOT = Path(__file__).resolve().parents[1]
GCP_STACKS = ["dev-gcp", "prod-gcp"]

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
KMS_KEY = "gcp:kms/cryptoKey:CryptoKey"
KEY_GRANT = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
BUCKET = "gcp:storage/bucket:Bucket"
BUCKET_GRANT = "gcp:storage/bucketIAMMember:BucketIAMMember"
SERVICE = "kubernetes:core/v1:Service"
READ_ONLY_ROLES = {"roles/storage.objectViewer"}


@cache
def planned(stack: str) -> Plan:
    return plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)


def gpu_pool(plan: Plan) -> dict:
    return plan.recording.one(NODE_POOL, "llm-pool").inputs


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_nodes_are_private_shielded_and_use_the_gke_metadata_server(stack: str) -> None:
    plan = planned(stack)
    cluster = plan.recording.one(CLUSTER).inputs
    assert cluster["privateClusterConfig"]["enablePrivateNodes"] is True
    assert cluster["enableShieldedNodes"] is True
    assert cluster["enableLegacyAbac"] is False
    for pool in plan.recording.of_type(NODE_POOL):
        node = pool.inputs["nodeConfig"]
        assert node["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
        # GKE_METADATA: pods see the Workload Identity metadata server, never the node's credentials.
        assert node["workloadMetadataConfig"]["mode"] == "GKE_METADATA", pool.name
        assert node["metadata"]["disable-legacy-endpoints"] == "true"
        assert pool.inputs["management"] == {"autoRepair": True, "autoUpgrade": True}


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_workload_identity_is_on_and_network_policy_is_enforced(stack: str) -> None:
    plan = planned(stack)
    assert plan.config.gcp is not None
    cluster = plan.recording.one(CLUSTER).inputs
    assert cluster["workloadIdentityConfig"]["workloadPool"] == f"{plan.config.gcp.project}.svc.id.goog"
    # Dataplane V2 enforces NetworkPolicy (the model server's default-deny and allow rules).
    assert cluster["datapathProvider"] == "ADVANCED_DATAPATH"


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_cluster_secrets_are_encrypted_with_our_rotating_key_granted_to_gke_first(stack: str) -> None:
    plan = planned(stack)
    cluster = plan.recording.one(CLUSTER)
    encryption = cluster.inputs["databaseEncryption"]
    assert encryption["state"] == "ENCRYPTED"
    keys = {k.outputs["id"]: k for k in plan.recording.of_type(KMS_KEY)}
    key = keys[encryption["keyName"]]  # a key this stack made, not a Google-managed one
    assert key.inputs["rotationPeriod"]
    assert key.retain_on_delete  # KMS keys cannot be deleted; the stack forgets them instead
    grant = next(
        g
        for g in plan.recording.of_type(KEY_GRANT)
        if g.inputs["cryptoKeyId"] == encryption["keyName"] and "container-engine-robot" in g.inputs["member"]
    )
    assert grant.inputs["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert grant.urn in ancestors_and_dependencies(plan, cluster)


def test_prod_has_no_public_ip_endpoint_and_authorizes_only_the_listed_networks() -> None:
    plan = planned("prod-gcp")
    assert plan.config.gcp is not None
    cluster = plan.recording.one(CLUSTER).inputs
    assert cluster["privateClusterConfig"]["enablePrivateEndpoint"] is True
    authorized = [b["cidrBlock"] for b in cluster["masterAuthorizedNetworksConfig"]["cidrBlocks"]]
    assert authorized == plan.config.gcp.api_endpoint.private_access_cidrs
    assert "0.0.0.0/0" not in authorized
    assert cluster["masterAuthorizedNetworksConfig"]["gcpPublicCidrsAccessEnabled"] is False


def test_dev_api_endpoint_is_public_only_to_the_listed_networks() -> None:
    plan = planned("dev-gcp")
    assert plan.config.gcp is not None
    cluster = plan.recording.one(CLUSTER).inputs
    assert cluster["privateClusterConfig"].get("enablePrivateEndpoint") is False
    authorized = {b["cidrBlock"] for b in cluster["masterAuthorizedNetworksConfig"]["cidrBlocks"]}
    assert set(plan.config.gcp.api_endpoint.public_access_cidrs) <= authorized
    assert "0.0.0.0/0" not in authorized


def test_the_kubeconfig_goes_through_the_dns_endpoint_with_the_gke_auth_plugin() -> None:
    plan = planned("prod-gcp")
    assert plan.recording.exports["kubeconfig"] == "[secret]"
    # The Kubernetes provider's input is the same kubeconfig, unredacted in the recording.
    kubeconfig = yaml.safe_load(
        plan.recording.one("pulumi:providers:kubernetes", "cluster").inputs["kubeconfig"]
    )
    dns_endpoint = plan.recording.one(CLUSTER).outputs["controlPlaneEndpointsConfig"]["dnsEndpointConfig"]
    [cluster] = kubeconfig["clusters"]
    assert cluster["cluster"]["server"] == f"https://{dns_endpoint['endpoint']}"
    [user] = kubeconfig["users"]
    assert user["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert set(user["user"]) == {"exec"}  # no token, password or client key in the file


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_gpu_pool_has_accelerators_driver_install_min_zero_autoscaling_and_the_taint(stack: str) -> None:
    plan = planned(stack)
    assert plan.config.gcp is not None
    pool = gpu_pool(plan)
    machine = GCP_GPU_MACHINES[plan.config.gcp.gpu_nodes.machine_type]
    [accelerator] = pool["nodeConfig"]["guestAccelerators"]
    assert (accelerator["type"], accelerator["count"]) == (machine.accelerator, machine.count)
    assert accelerator["gpuDriverInstallationConfig"]["gpuDriverVersion"] in {"LATEST", "DEFAULT"}
    assert pool["autoscaling"]["totalMinNodeCount"] == 0
    assert pool["autoscaling"]["totalMaxNodeCount"] == gcp_max_gpu_nodes(plan.config)
    assert {"key": "nvidia.com/gpu", "effect": "NO_SCHEDULE"} in [
        {k: t[k] for k in ("key", "effect")} for t in pool["nodeConfig"]["taints"]
    ]
    assert pool["nodeConfig"]["gcfsConfig"]["enabled"] is True  # image streaming
    assert pool["nodeConfig"]["spot"] is (plan.config.gcp.gpu_nodes.capacity_type.value == "spot")
    # Every model server selects the pool's label and tolerates its taint, and asks for the machine's GPUs
    # (an endpoint picker, which needs no GPU, is not a model server: tests/model_servers.py).
    for deployment in model_server_deployments(plan.recording):
        pod = deployment.inputs["spec"]["template"]["spec"]
        assert pod["nodeSelector"], deployment.name
        for key, value in pod["nodeSelector"].items():
            assert pool["nodeConfig"]["labels"][key] == value
        assert any(t.get("key") == "nvidia.com/gpu" for t in pod["tolerations"])
        server = next(c for c in pod["containers"] if c["name"] == "server")
        assert int(server["resources"]["limits"]["nvidia.com/gpu"]) == plan.config.serving.gpus_per_replica


def test_dev_gpus_are_spot_and_prod_gpus_on_demand() -> None:
    assert gpu_pool(planned("dev-gcp"))["nodeConfig"]["spot"] is True
    assert gpu_pool(planned("prod-gcp"))["nodeConfig"]["spot"] is False


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_model_bucket_is_private_and_versioned(stack: str) -> None:
    plan = planned(stack)
    bucket = plan.recording.one(BUCKET)
    assert bucket.inputs["uniformBucketLevelAccess"] is True
    assert bucket.inputs["publicAccessPrevention"] == "enforced"
    assert bucket.inputs["versioning"]["enabled"] is True
    assert bucket.retain_on_delete  # weights survive `pulumi destroy` unless force_destroy


def test_prod_bucket_is_encrypted_with_the_stacks_key() -> None:
    plan = planned("prod-gcp")
    key_name = plan.recording.one(BUCKET).inputs["encryption"]["defaultKmsKeyName"]
    assert key_name in {k.outputs["id"] for k in plan.recording.of_type(KMS_KEY)}


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_serving_identity_reads_only_its_model_prefix(stack: str) -> None:
    plan = planned(stack)
    assert plan.config.gcp is not None
    bucket, _, prefix = plan.config.model.uri.removeprefix("gs://").partition("/")
    [grant] = plan.recording.of_type(BUCKET_GRANT)
    assert grant.inputs["bucket"] == bucket
    assert grant.inputs["role"] in READ_ONLY_ROLES
    ns = plan.config.cluster.namespace
    assert grant.inputs["member"].endswith(
        f"/workloadIdentityPools/{plan.config.gcp.project}.svc.id.goog/subject/ns/{ns}/sa/llm"
    )
    assert f"/objects/{prefix}/" in grant.inputs["condition"]["expression"]
    # No other grant anywhere in the stack gives that identity anything.
    members = [
        r
        for r in plan.recording.resources
        if r.type.startswith("gcp:") and r.inputs.get("member") == grant.inputs["member"]
    ]
    assert members == [grant]


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_serving_pods_reach_the_gke_metadata_server_and_know_their_project(stack: str) -> None:
    plan = planned(stack)
    assert plan.config.gcp is not None
    for deployment in model_server_deployments(plan.recording):
        pod = deployment.inputs["spec"]["template"]["spec"]
        fetch = pod["initContainers"][0]
        assert {"name": "GOOGLE_CLOUD_PROJECT", "value": plan.config.gcp.project} in fetch["env"]
        allow = model_server_allow(plan.recording, deployment)
        assert {
            "to": [{"ipBlock": {"cidr": "169.254.169.252/32"}}],
            "ports": [{"port": 988, "protocol": "TCP"}],
        } in allow["egress"]


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_gateway_is_a_gke_l4_balancer_of_the_chosen_scheme_restricted_to_the_allow_list(stack: str) -> None:
    plan = planned(stack)
    assert plan.config.gcp is not None
    [service] = [s for s in plan.recording.of_type(SERVICE) if s.inputs["spec"].get("type") == "LoadBalancer"]
    annotations = service.inputs["metadata"]["annotations"]
    internal = annotations.get("networking.gke.io/load-balancer-type") == "Internal"
    assert internal is (plan.config.gcp.load_balancer_scheme.value == "internal")
    assert service.inputs["spec"]["loadBalancerSourceRanges"] == plan.config.gateway.allowed_source_cidrs


def test_prod_cert_manager_may_write_only_in_its_zone_and_the_hostname_points_at_the_balancer() -> None:
    plan = planned("prod-gcp")
    assert plan.config.gcp is not None
    [grant] = plan.recording.of_type("gcp:dns/dnsManagedZoneIamMember:DnsManagedZoneIamMember")
    assert grant.inputs["managedZone"] == plan.config.gcp.dns_zone
    assert grant.inputs["member"].endswith("/subject/ns/cert-manager/sa/llm-cert-manager")
    issuer = plan.recording.one("kubernetes:cert-manager.io/v1:ClusterIssuer").inputs["spec"]
    [solver] = issuer["acme"]["solvers"]
    assert solver["dns01"]["cloudDNS"]["hostedZoneName"] == plan.config.gcp.dns_zone
    assert "serviceAccountSecretRef" not in solver["dns01"]["cloudDNS"]  # no key file
    record = plan.recording.one("gcp:dns/recordSet:RecordSet", "hostname").inputs
    assert record["name"] == f"{plan.config.gateway.hostname}." and record["type"] == "A"
    assert record["rrdatas"] == [plan.recording.exports["load_balancer_ip"]]


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_an_empty_project_gets_its_apis_before_anything_uses_them(stack: str) -> None:
    plan = planned(stack)
    apis = {s.inputs["service"]: s for s in plan.recording.of_type("gcp:projects/service:Service")}
    assert set(REQUIRED_APIS) <= set(apis)
    assert all(s.inputs["disableOnDestroy"] is False for s in apis.values())
    cluster_waits = ancestors_and_dependencies(plan, plan.recording.one(CLUSTER))
    assert apis["container.googleapis.com"].urn in cluster_waits


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_every_api_waits_for_cloud_resource_manager(stack: str) -> None:
    """A Service reads itself back through Resource Manager's projects.get (terraform-provider-google
    resourceGoogleProjectServiceRead): enabled in parallel, the first `pulumi up` of a fresh project fails."""
    plan = planned(stack)
    apis = {s.inputs["service"]: s for s in plan.recording.of_type("gcp:projects/service:Service")}
    resource_manager = apis.pop("cloudresourcemanager.googleapis.com")
    assert resource_manager.name == "api-cloudresourcemanager"  # the URN existing stacks hold
    assert len(apis) >= 6, "the stack should enable more than Resource Manager"
    for api, service in apis.items():
        assert resource_manager.urn in service.dependencies, f"{api} does not wait for Resource Manager"
    assert not (
        set(resource_manager.dependencies) & {s.urn for s in apis.values()}
    )  # no cycle, it goes first


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_teardown_removes_the_balancer_and_gpu_nodes_before_the_cluster_and_the_network(stack: str) -> None:
    plan = planned(stack)
    [lb_service] = [
        s for s in plan.recording.of_type(SERVICE) if s.inputs["spec"].get("type") == "LoadBalancer"
    ]
    # The LoadBalancer Service goes while the cluster (whose controller removes the forwarding rule) runs.
    assert covers(plan, ancestors_and_dependencies(plan, lb_service), CLUSTER)
    # The GPU pool goes before the cluster; the cluster before the NAT, subnet and VPC it uses.
    assert covers(plan, ancestors_and_dependencies(plan, plan.recording.one(NODE_POOL, "llm-pool")), CLUSTER)
    cluster_waits = ancestors_and_dependencies(plan, plan.recording.one(CLUSTER))
    for network_piece in (
        "gcp:compute/routerNat:RouterNat",
        "gcp:compute/subnetwork:Subnetwork",
        "gcp:compute/network:Network",
    ):
        # The resource itself, not just its component: nodes that outlive the NAT lose their image pulls.
        assert plan.recording.one(network_piece).urn in cluster_waits, network_piece


def test_dev_can_be_destroyed_and_prod_is_protected() -> None:
    assert planned("dev-gcp").recording.one(CLUSTER).inputs["deletionProtection"] is False
    assert planned("prod-gcp").recording.one(CLUSTER).inputs["deletionProtection"] is True


def test_the_cpu_engine_on_gcp_makes_no_gpu_pool_and_no_bucket_for_a_hub_model() -> None:
    values = {
        "platform": "gcp",
        "gcp": {"project": "acme-inference", "region": "us-east1"},
        "model": {"uri": "hf://Qwen/Qwen2.5-0.5B-Instruct@" + "7" * 40, "parameters_b": 0.5},
        "serving": {"engine": "transformers", "image": "registry.example/model-cpu:1.0"},
        "autoscaling": {"min_replicas": 1},
        "gateway": {"hostname": "llm.example.com"},
    }
    plan = plan_stack(parse_stack_config(values), "cpu-gcp")
    assert [p.name for p in plan.recording.of_type(NODE_POOL)] == ["gke-system"]
    assert not plan.recording.of_type(BUCKET)
    # Ids carry the stack's project and region.
    assert plan.recording.one(CLUSTER).outputs["id"] == (
        "projects/acme-inference/locations/us-east1/clusters/inferstack-cpu-gcp"
    )
