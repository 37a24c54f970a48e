"""The dev-aws and prod-aws stacks, planned whole under the recording mock: the security and teardown
properties the AWS composition promises, checked on what it actually registers."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from components.load_balancer import ENVOY_PRIVILEGED_PORT_SHIFT
from inferstack.planning.plan import Plan, plan_stack
from stacks.config import load_stack_file, parse_stack_config
from stacks.rules_aws import gpu_limit
from tests.model_servers import model_server_allow, model_server_deployments
from tests.stack_graph import ancestors_and_dependencies, covers

ROOT = Path(__file__).resolve().parents[1]
AWS_STACKS = ["dev-aws", "prod-aws"]

CLUSTER = "aws:eks/cluster:Cluster"
KMS_KEY = "aws:kms/key:Key"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
SERVICE = "kubernetes:core/v1:Service"
RELEASE = "kubernetes:helm.sh/v3:Release"


@cache
def planned(stack: str) -> Plan:
    return plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_every_node_template_requires_imdsv2_with_hop_limit_one(stack: str) -> None:
    plan = planned(stack)
    templates = plan.recording.of_type(LAUNCH_TEMPLATE)
    node_classes = plan.recording.of_type(NODE_CLASS)
    assert templates and node_classes  # system nodes (managed node group) and Karpenter GPU nodes
    for lt in templates:
        assert lt.inputs["metadataOptions"]["httpTokens"] == "required", lt.name
        assert lt.inputs["metadataOptions"]["httpPutResponseHopLimit"] == 1, lt.name
    for nc in node_classes:
        metadata = nc.inputs["spec"]["metadataOptions"]
        assert (metadata["httpTokens"], metadata["httpPutResponseHopLimit"]) == ("required", 1)


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_cluster_secrets_are_encrypted_with_our_rotating_key(stack: str) -> None:
    plan = planned(stack)
    cluster = plan.recording.one(CLUSTER)
    [encryption] = (
        cluster.inputs["encryptionConfig"]
        if isinstance(cluster.inputs["encryptionConfig"], list)
        else [cluster.inputs["encryptionConfig"]]
    )
    assert encryption["resources"] == ["secrets"]
    keys = {k.outputs["arn"]: k for k in plan.recording.of_type(KMS_KEY)}
    key = keys[encryption["provider"]["keyArn"]]  # a key this stack made, not an AWS-managed one
    assert key.inputs["enableKeyRotation"] is True


def test_prod_api_endpoint_is_private_and_never_open_to_the_internet() -> None:
    vpc = planned("prod-aws").recording.one(CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False
    assert "0.0.0.0/0" not in (vpc.get("publicAccessCidrs") or [])


def test_dev_api_endpoint_is_public_only_to_the_listed_networks() -> None:
    cfg = load_stack_file(ROOT / "stacks" / "Pulumi.dev-aws.yaml")
    assert cfg.aws is not None
    vpc = planned("dev-aws").recording.one(CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == cfg.aws.api_endpoint.public_access_cidrs
    assert "0.0.0.0/0" not in vpc["publicAccessCidrs"]


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_gpu_node_pool_is_tainted_limited_and_where_the_server_lands(stack: str) -> None:
    plan = planned(stack)
    pool = plan.recording.one(NODE_POOL)
    template = pool.inputs["spec"]["template"]
    assert {"key": "nvidia.com/gpu", "effect": "NoSchedule"} in [
        {k: t[k] for k in ("key", "effect")} for t in template["spec"]["taints"]
    ]
    assert int(pool.inputs["spec"]["limits"]["nvidia.com/gpu"]) == gpu_limit(plan.config)
    assert pool.inputs["spec"]["disruption"]["consolidationPolicy"] == "WhenEmpty"
    # Every model server selects the pool's label and tolerates its taint (an endpoint picker, which needs
    # no GPU, is not a model server: tests/model_servers.py).
    for deployment in model_server_deployments(plan.recording):
        pod = deployment.inputs["spec"]["template"]["spec"]
        assert pod["nodeSelector"], deployment.name
        for key, value in pod["nodeSelector"].items():
            assert template["metadata"]["labels"][key] == value
        assert any(t.get("key") == "nvidia.com/gpu" for t in pod["tolerations"])


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_model_bucket_is_private_encrypted_versioned_and_tls_only(stack: str) -> None:
    plan = planned(stack)
    rec = plan.recording
    block = rec.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[k] is True
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    sse = rec.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).inputs
    [rule] = sse["rules"]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    assert rule["bucketKeyEnabled"] is True
    assert (
        rec.one("aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"]["status"]
        == "Enabled"
    )
    policy = json.loads(rec.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    assert any(
        s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
        for s in policy["Statement"]
    )


def _serving_policy(plan: Plan) -> dict[str, Any]:
    """The inline policy of the role associated with the serving ServiceAccount (namespace/llm)."""
    ns = plan.config.cluster.namespace
    [association] = [
        a
        for a in plan.recording.of_type(ASSOCIATION)
        if (a.inputs["namespace"], a.inputs["serviceAccount"]) == (ns, "llm")
    ]
    role_prefix = association.name.removesuffix("-association")
    return json.loads(plan.recording.one(ROLE_POLICY, f"{role_prefix}-policy").inputs["policy"])


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_serving_role_reads_only_its_model_prefix(stack: str) -> None:
    plan = planned(stack)
    bucket, _, prefix = plan.config.model.uri.removeprefix("s3://").partition("/")
    allowed: set[str] = set()
    for stmt in _serving_policy(plan)["Statement"]:
        assert stmt["Effect"] == "Allow"
        actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        resources = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
        allowed.update(actions)
        assert "*" not in resources
        if "s3:GetObject" in actions:
            assert resources == [f"arn:aws:s3:::{bucket}/{prefix}/*"]
        if "s3:ListBucket" in actions:
            assert resources == [f"arn:aws:s3:::{bucket}"]
            assert all(p.startswith(prefix) for p in stmt["Condition"]["StringLike"]["s3:prefix"])
    assert {"s3:GetObject", "s3:ListBucket"} <= allowed
    assert not any(a.startswith(("s3:Put", "s3:Delete")) or a in {"s3:*", "*"} for a in allowed)


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_serving_pods_reach_the_pod_identity_agent_and_know_their_region(stack: str) -> None:
    plan = planned(stack)
    assert plan.config.aws is not None
    for deployment in model_server_deployments(plan.recording):
        pod = deployment.inputs["spec"]["template"]["spec"]
        fetch = pod["initContainers"][0]
        assert {"name": "AWS_REGION", "value": plan.config.aws.region} in fetch["env"]
        allow = model_server_allow(plan.recording, deployment)
        assert {
            "to": [{"ipBlock": {"cidr": "169.254.170.23/32"}}],
            "ports": [{"port": 80, "protocol": "TCP"}],
        } in allow["egress"]


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_gateway_is_an_nlb_service_of_our_own_restricted_to_the_allow_list(stack: str) -> None:
    plan = planned(stack)
    assert plan.config.aws is not None
    [service] = [s for s in plan.recording.of_type(SERVICE) if s.inputs["spec"].get("type") == "LoadBalancer"]
    spec, annotations = service.inputs["spec"], service.inputs["metadata"]["annotations"]
    assert spec["loadBalancerClass"] == "service.k8s.aws/nlb"
    assert (
        annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"]
        == plan.config.aws.load_balancer_scheme.value
    )
    assert spec["loadBalancerSourceRanges"] == plan.config.gateway.allowed_source_cidrs
    assert {p["port"]: p["targetPort"] for p in spec["ports"]} == {
        80: 80 + ENVOY_PRIVILEGED_PORT_SHIFT,
        443: 443 + ENVOY_PRIVILEGED_PORT_SHIFT,
    }
    # Envoy Gateway's own Service stays inside the cluster: one balancer, the one we own.
    envoy_proxy = plan.recording.one("kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy")
    assert envoy_proxy.inputs["spec"]["provider"]["kubernetes"]["envoyService"]["type"] == "ClusterIP"


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_teardown_removes_balancers_and_gpu_nodes_before_their_controllers_and_the_vpc(stack: str) -> None:
    plan = planned(stack)
    [nlb_service] = [
        s for s in plan.recording.of_type(SERVICE) if s.inputs["spec"].get("type") == "LoadBalancer"
    ]
    # The NLB Service outlives nothing it needs: deleted before the LB controller, the cluster and the VPC.
    waits_for = ancestors_and_dependencies(plan, nlb_service)
    assert covers(plan, waits_for, RELEASE, "aws-lb-controller-controller")
    # The GPU NodePool and EC2NodeClass are deleted before Karpenter (whose finalizers stop instances).
    for kind in (NODE_POOL, NODE_CLASS):
        assert covers(
            plan, ancestors_and_dependencies(plan, plan.recording.one(kind)), RELEASE, "karpenter-controller"
        )
    # Every Kubernetes object goes before the cluster (through the provider built from its kubeconfig), and
    # the cluster's nodes before the NAT gateways and subnets they route through.
    provider = plan.recording.one("pulumi:providers:kubernetes", "cluster")
    assert covers(plan, ancestors_and_dependencies(plan, provider), CLUSTER)
    node_group_waits = ancestors_and_dependencies(plan, plan.recording.one("aws:eks/nodeGroup:NodeGroup"))
    assert {n.urn for n in plan.recording.of_type("aws:ec2/natGateway:NatGateway")} <= node_group_waits


def test_prod_writes_an_alias_record_to_the_nlb() -> None:
    plan = planned("prod-aws")
    record = plan.recording.one("aws:route53/record:Record").inputs
    assert record["name"] == plan.config.gateway.hostname and record["type"] == "A"
    [alias] = record["aliases"]
    assert alias["name"].endswith(".elb.us-east-1.amazonaws.com")
    assert alias["zoneId"] == "Z26RNL4JYFTOTI"  # NLBs in us-east-1


def test_cert_manager_may_only_change_txt_records_in_its_zone() -> None:
    plan = planned("prod-aws")
    [association] = [
        a for a in plan.recording.of_type(ASSOCIATION) if a.inputs["namespace"] == "cert-manager"
    ]
    assert association.inputs["serviceAccount"] == "llm-cert-manager"
    policy = json.loads(plan.recording.one(ROLE_POLICY, "cert-manager-dns-policy").inputs["policy"])
    change = next(s for s in policy["Statement"] if "route53:ChangeResourceRecordSets" in s["Action"])
    assert change["Resource"] == ["arn:aws:route53:::hostedzone/Z0123456789EXAMPLEZONE"]
    assert change["Condition"]["ForAllValues:StringEquals"][
        "route53:ChangeResourceRecordSetsRecordTypes"
    ] == ["TXT"]


def test_the_cpu_engine_on_aws_makes_no_gpu_capacity() -> None:
    values = {
        "platform": "aws",
        "aws": {"region": "us-west-2"},
        "model": {"uri": "hf://Qwen/Qwen2.5-0.5B-Instruct@" + "7" * 40, "parameters_b": 0.5},
        "serving": {"engine": "transformers", "image": "registry.example/model-cpu:1.0"},
        "autoscaling": {"min_replicas": 1},
        "gateway": {"hostname": "llm.example.com"},
    }
    plan = plan_stack(parse_stack_config(values), "cpu-aws")
    assert not plan.recording.of_type(NODE_POOL) and not plan.recording.of_type("aws:sqs/queue:Queue")
    assert not plan.recording.of_type("aws:s3/bucket:Bucket")  # an hf:// model needs no bucket
    # ARNs carry the stack's region.
    assert plan.recording.one(CLUSTER).outputs["arn"].startswith("arn:aws:eks:us-west-2:")
