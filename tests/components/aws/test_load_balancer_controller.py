"""AwsLoadBalancerController: pinned chart, NLBs only on request, a policy scoped to this cluster's own NLBs."""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import pytest

from components.clusters.aws.load_balancer_controller import (
    AWS_LOAD_BALANCER_CONTROLLER,
    CLUSTER_TAG,
    NLB_LOAD_BALANCER_CLASS,
    AwsLoadBalancerController,
    AwsLoadBalancerControllerArgs,
    controller_policy,
    controller_values,
    nlb_service_annotations,
    validate_aws_load_balancer_controller_args,
)
from inferstack.planning.recording import Recording, run_program
from tests.components.schemas import chart_value_errors, needs_charts

T_RELEASE = "kubernetes:helm.sh/v3:Release"
T_ROLE = "aws:iam/role:Role"
T_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
T_ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"

CLUSTER = "prod-eks"
VPC = "vpc-0a1b2c3d4e5f60718"
REGION = "eu-west-1"
VPC_ARN = f"arn:aws:ec2:{REGION}:*:vpc/{VPC}"
ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-"

# Calls that change a load balancer, target group or security group the controller made: each must be
# allowed only on resources carrying this cluster's tag (upstream's policy conditions the same calls).
TAG_GUARDED = {
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:ModifyListenerAttributes",
    "elasticloadbalancing:RegisterTargets",
    "elasticloadbalancing:DeregisterTargets",
    "elasticloadbalancing:SetSecurityGroups",
    "elasticloadbalancing:SetSubnets",
    "elasticloadbalancing:SetIpAddressType",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteTags",
}
# Calls that create a load balancer or target group: the request must carry the tag (security groups
# have their own test below).
CREATE_GUARDED = {
    "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:CreateTargetGroup",
}


def controller_args(**changes: Any) -> AwsLoadBalancerControllerArgs:
    base = AwsLoadBalancerControllerArgs(cluster_name=CLUSTER, vpc_id=VPC, region=REGION, tags={"team": "ml"})
    return dataclasses.replace(base, **changes)


def deploy(args: AwsLoadBalancerControllerArgs, name: str = "lbc") -> tuple[Recording, dict[str, Any]]:
    resolved: dict[str, Any] = {}

    def program() -> None:
        lbc = AwsLoadBalancerController(name, args)
        lbc.role_arn.apply(functools.partial(resolved.__setitem__, "role_arn"))
        lbc.release.name.apply(functools.partial(resolved.__setitem__, "release_name"))

    return run_program(program), resolved


@functools.cache
def default_run() -> tuple[Recording, dict[str, Any]]:
    return deploy(controller_args())


def recorded_policy(rec: Recording) -> dict[str, Any]:
    return json.loads(rec.one(T_ROLE_POLICY).inputs["policy"])


def is_read(action: str) -> bool:
    return action.split(":", 1)[1].startswith(("Describe", "Get", "List"))


def cluster_tag_condition(stmt: dict[str, Any], kind: str) -> Any:
    """The value a statement requires of the cluster tag (kind: RequestTag or ResourceTag), or None."""
    return stmt.get("Condition", {}).get("StringEquals", {}).get(f"aws:{kind}/{CLUSTER_TAG}")


# --- chart and values --------------------------------------------------------------------------------


def test_installs_the_pinned_chart_into_kube_system() -> None:
    rec, out = default_run()
    release = rec.one(T_RELEASE)
    assert release.name == "lbc-controller" == out["release_name"]
    assert release.inputs["chart"] == "aws-load-balancer-controller"
    assert release.inputs["version"] == AWS_LOAD_BALANCER_CONTROLLER.version == "3.5.0"
    assert release.inputs["repositoryOpts"]["repo"] == "https://aws.github.io/eks-charts"
    assert release.inputs["namespace"] == "kube-system"


def test_values_name_the_cluster_region_and_vpc_explicitly() -> None:
    rec, _ = default_run()
    values = rec.one(T_RELEASE).inputs["values"]
    assert values["clusterName"] == CLUSTER
    assert values["region"] == REGION
    assert values["vpcId"] == VPC
    assert values["serviceAccount"] == {"create": True, "name": "aws-load-balancer-controller"}
    assert values["replicaCount"] == 2
    assert values["podDisruptionBudget"] == {"maxUnavailable": 1}
    assert values["defaultTags"] == {"team": "ml"}
    assert values["resources"]["requests"]["memory"]


def test_controller_takes_only_services_that_ask_for_an_nlb() -> None:
    values = controller_values(controller_args())
    assert values["enableServiceMutatorWebhook"] is False
    assert values["loadBalancerClass"] == NLB_LOAD_BALANCER_CLASS == "service.k8s.aws/nlb"
    assert values["createIngressClassResource"] is False
    assert values["enableShield"] is values["enableWaf"] is values["enableWafv2"] is False


def test_one_replica_gets_no_disruption_budget() -> None:
    values = controller_values(controller_args(replicas=1))
    assert values["replicaCount"] == 1
    assert "podDisruptionBudget" not in values


@needs_charts
@pytest.mark.parametrize("replicas", [1, 3])
def test_values_exist_in_the_chart(replicas: int) -> None:
    values = controller_values(controller_args(replicas=replicas))
    assert chart_value_errors(AWS_LOAD_BALANCER_CONTROLLER.values_dir, values) == []


def test_values_escape_hatch_is_merged_over_ours() -> None:
    rec, _ = deploy(controller_args(values={"logLevel": "debug", "resources": {"limits": {"memory": "1Gi"}}}))
    values = rec.one(T_RELEASE).inputs["values"]
    assert values["logLevel"] == "debug"
    assert values["resources"]["limits"]["memory"] == "1Gi"
    assert values["resources"]["requests"]["cpu"] == "100m"
    assert values["clusterName"] == CLUSTER


def test_release_waits_for_the_pod_identity_association() -> None:
    rec, out = default_run()
    association = rec.one(T_ASSOCIATION)
    assert association.urn in rec.one(T_RELEASE).dependencies
    assert association.inputs["clusterName"] == CLUSTER
    assert association.inputs["namespace"] == "kube-system"
    assert association.inputs["serviceAccount"] == "aws-load-balancer-controller"
    assert association.inputs["roleArn"] == rec.one(T_ROLE).outputs["arn"] == out["role_arn"]


# --- IAM policy --------------------------------------------------------------------------------------


def test_recorded_policy_is_the_pure_one() -> None:
    rec, _ = default_run()
    assert recorded_policy(rec) == json.loads(json.dumps(controller_policy(CLUSTER, VPC, REGION)))


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    return recorded_policy(default_run()[0])


def test_no_wildcard_actions(policy: dict[str, Any]) -> None:
    actions = [a for s in policy["Statement"] for a in s["Action"]]
    assert all("*" not in a for a in actions), actions
    assert not any(a.startswith("iam:") and a != "iam:CreateServiceLinkedRole" for a in actions)
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])


def test_only_reads_use_a_wildcard_resource(policy: dict[str, Any]) -> None:
    for stmt in policy["Statement"]:
        if "*" in stmt["Resource"]:
            assert all(is_read(a) for a in stmt["Action"]), stmt


def test_nlb_only(policy: dict[str, Any]) -> None:
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert not any(a.split(":")[0] in {"wafv2", "waf-regional", "shield", "cognito-idp"} for a in actions)
    assert not any(a.endswith(("Rule", "RulePriorities")) for a in actions)  # NLB listeners have no rules
    elb_resources = [r for s in policy["Statement"] for r in s["Resource"] if ":elasticloadbalancing:" in r]
    assert elb_resources and not any("/app/" in r for r in elb_resources)
    assert all(f":elasticloadbalancing:{REGION}:" in r for r in elb_resources)


def test_service_linked_role_only_for_elastic_load_balancing(policy: dict[str, Any]) -> None:
    (stmt,) = [s for s in policy["Statement"] if "iam:CreateServiceLinkedRole" in s["Action"]]
    assert stmt["Action"] == ["iam:CreateServiceLinkedRole"]
    assert stmt["Condition"] == {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}}
    (resource,) = stmt["Resource"]
    assert "/elasticloadbalancing.amazonaws.com/" in resource


def test_changes_to_existing_resources_need_this_clusters_tag(policy: dict[str, Any]) -> None:
    seen: set[str] = set()
    for stmt in policy["Statement"]:
        guarded = TAG_GUARDED & set(stmt["Action"])
        if guarded:
            assert cluster_tag_condition(stmt, "ResourceTag") == CLUSTER, stmt
            seen |= guarded
    assert seen == TAG_GUARDED


def test_creation_needs_this_clusters_tag_on_the_request(policy: dict[str, Any]) -> None:
    seen: set[str] = set()
    for stmt in policy["Statement"]:
        guarded = CREATE_GUARDED & set(stmt["Action"])
        if guarded:
            assert cluster_tag_condition(stmt, "RequestTag") == CLUSTER, stmt
            seen |= guarded
    assert seen == CREATE_GUARDED


def test_tagging_cannot_claim_or_move_the_cluster_tag(policy: dict[str, Any]) -> None:
    tagging = {
        "ec2:CreateTags",
        "ec2:DeleteTags",
        "elasticloadbalancing:AddTags",
        "elasticloadbalancing:RemoveTags",
    }
    for stmt in policy["Statement"]:
        if not tagging & set(stmt["Action"]):
            continue
        condition = stmt.get("Condition", {})
        on_create = condition.get("StringEquals", {})
        if "ec2:CreateAction" in on_create or "elasticloadbalancing:CreateAction" in on_create:
            # Tags given while creating: the new resource must be this cluster's.
            assert cluster_tag_condition(stmt, "RequestTag") == CLUSTER, stmt
        elif all("listener/net/" in r for r in stmt["Resource"]):
            # Upstream tags listeners without conditions; they hang off tag-guarded NLBs.
            assert stmt["Action"] == ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]
        else:
            assert condition["Null"] == {f"aws:RequestTag/{CLUSTER_TAG}": "true"}, stmt
            assert cluster_tag_condition(stmt, "ResourceTag") == CLUSTER, stmt


def test_security_groups_are_made_and_opened_only_in_the_cluster_vpc(policy: dict[str, Any]) -> None:
    create = [s for s in policy["Statement"] if "ec2:CreateSecurityGroup" in s["Action"]]
    assert {r for s in create for r in s["Resource"]} == {
        VPC_ARN,
        f"arn:aws:ec2:{REGION}:*:security-group/*",
    }
    for stmt in create:
        if stmt["Resource"] != [VPC_ARN]:
            assert cluster_tag_condition(stmt, "RequestTag") == CLUSTER
    rules = [s for s in policy["Statement"] if "ec2:AuthorizeSecurityGroupIngress" in s["Action"]]
    assert len(rules) == 1
    assert rules[0]["Condition"] == {"ArnEquals": {"ec2:Vpc": VPC_ARN}}
    assert {a for s in policy["Statement"] for a in s["Action"] if "Egress" in a} == set()


def test_policy_function_takes_plain_values() -> None:
    plain = controller_policy("other-cluster", "vpc-1", "us-east-1")
    statements = plain["Statement"]
    guarded = [s for s in statements if "elasticloadbalancing:DeleteLoadBalancer" in s["Action"]]
    assert cluster_tag_condition(guarded[0], "ResourceTag") == "other-cluster"


# --- Service annotations -----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["internet-facing", "internal"])
def test_annotations_for_an_nlb_to_envoy_pods_with_client_addresses(scheme: str) -> None:
    annotations = nlb_service_annotations(scheme, ["203.0.113.0/24"])
    assert annotations[f"{ANNOTATION}scheme"] == scheme
    assert annotations[f"{ANNOTATION}nlb-target-type"] == "ip"
    assert "preserve_client_ip.enabled=true" in annotations[f"{ANNOTATION}target-group-attributes"].split(",")
    assert "load_balancing.cross_zone.enabled=true" in annotations[f"{ANNOTATION}attributes"].split(",")
    assert all(isinstance(v, str) for v in annotations.values())  # annotation values are strings
    assert all(k.startswith("service.beta.kubernetes.io/aws-load-balancer-") for k in annotations)
    # The deprecated per-attribute annotation is not used.
    assert f"{ANNOTATION}cross-zone-load-balancing-enabled" not in annotations


def test_annotations_do_not_depend_on_how_open_the_allow_list_is() -> None:
    assert nlb_service_annotations("internal", ["0.0.0.0/0"]) == nlb_service_annotations(
        "internal", ["10.0.0.0/8", "2001:db8::/32"]
    )


@pytest.mark.parametrize(
    ("scheme", "cidrs", "says"),
    [
        ("public", ["0.0.0.0/0"], "scheme"),
        ("Internet-Facing", ["0.0.0.0/0"], "scheme"),
        ("internal", [], "allowed_cidrs"),
        ("internal", ["10.0.0.1/8"], "allowed_cidrs"),  # host bits set
        ("internal", ["not-a-cidr"], "allowed_cidrs"),
    ],
)
def test_bad_annotation_arguments_are_refused(scheme: str, cidrs: list[str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        nlb_service_annotations(scheme, cidrs)


# --- validation --------------------------------------------------------------------------------------


def test_good_args_have_no_problems() -> None:
    assert validate_aws_load_balancer_controller_args(controller_args()) == []


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"region": "eu-west"}, "region"),
        ({"region": "cn-north-1"}, "region"),
        ({"region": "us-gov-west-1"}, "region"),
        ({"namespace": "Kube_System"}, "namespace"),
        ({"service_account": ""}, "service_account"),
        ({"replicas": 0}, "replicas"),
        ({"tags": {"elbv2.k8s.aws/cluster": "x"}}, "tags"),
        ({"tags": {"aws:createdBy": "x"}}, "tags"),
        ({"values": {"serviceAccount": {"name": "other"}}}, "values.serviceAccount.name"),
        ({"values": {"clusterName": "other"}}, "values.clusterName"),
        ({"values": {"vpcId": "vpc-other"}}, "values.vpcId"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], field_name: str) -> None:
    problems = validate_aws_load_balancer_controller_args(controller_args(**changes))
    assert [p.split(":")[0] for p in problems] == [field_name]


def test_constructor_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        AwsLoadBalancerController("lbc", controller_args(region="nowhere", replicas=0))
    assert "region" in str(raised.value) and "replicas" in str(raised.value)
