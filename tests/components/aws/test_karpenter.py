"""Karpenter on EKS: node role and access entry, interruption queue and rules, a least-privilege controller
policy, and a chart release that waits for the controller's credentials."""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import json
from typing import Any

import pulumi_kubernetes as k8s
import pytest

from components.clusters.aws.karpenter import (
    INTERRUPTION_EVENTS,
    KARPENTER,
    NODE_MANAGED_POLICIES,
    Karpenter,
    KarpenterArgs,
    PolicyScope,
    controller_policy,
    karpenter_values,
    validate_karpenter_args,
)
from inferstack.planning.recording import RecordedResource, Recording, run_program
from inferstack.validation.helm import load_chart
from tests.components.schemas import CHART_DIR, chart_value_errors, error_paths, needs_charts

T_ROLE = "aws:iam/role:Role"
T_ATTACH = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
T_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
T_ACCESS = "aws:eks/accessEntry:AccessEntry"
T_ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
T_QUEUE = "aws:sqs/queue:Queue"
T_QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
T_RULE = "aws:cloudwatch/eventRule:EventRule"
T_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
T_RELEASE = "kubernetes:helm.sh/v3:Release"

CLUSTER = "prod-llm"
ENDPOINT = "https://ABCDEF0123456789.gr7.us-east-1.eks.amazonaws.com"
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def make_args(**changes: Any) -> KarpenterArgs:
    return dataclasses.replace(KarpenterArgs(cluster_name=CLUSTER, cluster_endpoint=ENDPOINT), **changes)


def deploy(args: KarpenterArgs, name: str = "karpenter") -> tuple[Recording, dict[str, Any]]:
    """Run one Karpenter; also return its outputs, resolved."""
    resolved: dict[str, Any] = {}

    def program() -> None:
        karpenter = Karpenter(name, args)
        for output in ("node_role_name", "node_role_arn", "interruption_queue_name"):
            getattr(karpenter, output).apply(functools.partial(resolved.__setitem__, output))
        resolved["release"] = karpenter.release

    return run_program(program), resolved


@functools.cache
def default_run() -> tuple[Recording, dict[str, Any]]:
    return deploy(make_args())


def node_role(rec: Recording) -> RecordedResource:
    return rec.one(T_ROLE, "-node-role")


def controller_statements(rec: Recording) -> list[dict[str, Any]]:
    return list(json.loads(rec.one(T_ROLE_POLICY).inputs["policy"])["Statement"])


def actions(stmt: dict[str, Any]) -> list[str]:
    action = stmt["Action"]
    return [action] if isinstance(action, str) else list(action)


def allowing(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    """The Allow statements that grant `action` (wildcards in the policy included)."""
    return [
        s
        for s in statements
        if s["Effect"] == "Allow" and any(fnmatch.fnmatchcase(action, a) for a in actions(s))
    ]


# --- the nodes' identity -------------------------------------------------------------------------------


def test_node_role_is_for_ec2_with_the_four_node_policies() -> None:
    rec, _ = default_run()
    role = node_role(rec)
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "ec2.amazonaws.com"}]
    attached = sorted(a.inputs["policyArn"] for a in rec.of_type(T_ATTACH))
    assert attached == sorted(f"arn:aws:iam::aws:policy/{p}" for p in NODE_MANAGED_POLICIES.values())
    # Registry pull-only rather than ReadOnly: pulling is all a node does (Karpenter's own node role agrees).
    assert set(NODE_MANAGED_POLICIES.values()) == {
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonEC2ContainerRegistryPullOnly",
        "AmazonSSMManagedInstanceCore",
    }
    assert all(a.inputs["role"] == role.outputs["name"] for a in rec.of_type(T_ATTACH))


def test_nodes_join_through_an_ec2_linux_access_entry() -> None:
    rec, _ = default_run()
    entry = rec.one(T_ACCESS)
    assert entry.inputs["type"] == "EC2_LINUX"
    assert entry.inputs["principalArn"] == node_role(rec).outputs["arn"]
    assert entry.inputs["clusterName"] == CLUSTER


# --- interruption handling ---------------------------------------------------------------------------


def test_queue_keeps_messages_five_minutes_encrypted() -> None:
    rec, _ = default_run()
    queue = rec.one(T_QUEUE)
    assert queue.inputs["messageRetentionSeconds"] == 300
    assert queue.inputs["sqsManagedSseEnabled"] is True


def test_queue_policy_lets_only_our_rules_deliver_and_denies_plain_http() -> None:
    rec, _ = default_run()
    queue = rec.one(T_QUEUE)
    policy_resource = rec.one(T_QUEUE_POLICY)
    assert policy_resource.inputs["queueUrl"] == queue.outputs["url"]
    statements = json.loads(policy_resource.inputs["policy"])["Statement"]
    for stmt in statements:
        assert stmt["Resource"] == [queue.outputs["arn"]]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert all(actions(s) == ["sqs:SendMessage"] for s in allows)
    assert {s["Principal"]["Service"] for s in allows} == {"events.amazonaws.com", "sqs.amazonaws.com"}
    (from_events,) = [s for s in allows if s["Principal"]["Service"] == "events.amazonaws.com"]
    rule_arns = {r.outputs["arn"] for r in rec.of_type(T_RULE)}
    assert set(from_events["Condition"]["ArnEquals"]["aws:SourceArn"]) == rule_arns
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Principal"] == "*" and actions(deny) == ["sqs:*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_four_interruption_events_are_routed_to_the_queue() -> None:
    rec, _ = default_run()
    queue_arn = rec.one(T_QUEUE).outputs["arn"]
    patterns = {}
    for rule in rec.of_type(T_RULE):
        pattern = json.loads(rule.inputs["eventPattern"])
        (detail_type,) = pattern["detail-type"]
        patterns[detail_type] = pattern
        (target,) = [t for t in rec.of_type(T_TARGET) if t.inputs["rule"] == rule.outputs["name"]]
        assert target.inputs["arn"] == queue_arn
    assert set(patterns) == {
        "EC2 Spot Instance Interruption Warning",
        "EC2 Instance Rebalance Recommendation",
        "EC2 Instance State-change Notification",
        "AWS Health Event",
    }
    assert patterns["EC2 Spot Instance Interruption Warning"]["source"] == ["aws.ec2"]
    health = patterns["AWS Health Event"]
    assert health["source"] == ["aws.health"]
    assert health["detail"]["eventTypeCategory"] == ["scheduledChange"]
    assert len(rec.of_type(T_TARGET)) == len(INTERRUPTION_EVENTS) == 4


# --- the controller's policy ---------------------------------------------------------------------------


def test_controller_policy_grants_no_wildcard_actions() -> None:
    rec, _ = default_run()
    for stmt in controller_statements(rec):
        assert stmt["Effect"] == "Allow"
        for action in actions(stmt):
            assert action != "*" and not action.endswith(":*"), stmt
            assert not action.startswith("iam:") or action in {
                "iam:PassRole",
                "iam:CreateInstanceProfile",
                "iam:TagInstanceProfile",
                "iam:AddRoleToInstanceProfile",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:DeleteInstanceProfile",
                "iam:GetInstanceProfile",
                "iam:ListInstanceProfiles",
            }, stmt


def test_controller_may_pass_only_the_node_role_and_only_to_ec2() -> None:
    rec, _ = default_run()
    (passing,) = allowing(controller_statements(rec), "iam:PassRole")
    assert passing["Resource"] == [node_role(rec).outputs["arn"]]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


def test_controller_terminates_only_instances_a_nodepool_of_this_cluster_launched() -> None:
    rec, _ = default_run()
    terminating = allowing(controller_statements(rec), "ec2:TerminateInstances")
    assert terminating
    for stmt in terminating:
        assert stmt["Condition"]["StringLike"] == {"aws:ResourceTag/karpenter.sh/nodepool": "*"}
        assert stmt["Condition"]["StringEquals"] == {
            f"aws:ResourceTag/kubernetes.io/cluster/{CLUSTER}": "owned"
        }


def test_controller_creates_only_cluster_tagged_instances() -> None:
    rec, _ = default_run()
    for stmt in allowing(controller_statements(rec), "ec2:RunInstances"):
        instance_arns = [r for r in stmt["Resource"] if ":instance/" in r]
        if instance_arns:  # launching an instance (not just reading an AMI or subnet) needs the tags
            assert (
                stmt["Condition"]["StringEquals"][f"aws:RequestTag/kubernetes.io/cluster/{CLUSTER}"]
                == "owned"
            )
            assert stmt["Condition"]["StringLike"] == {"aws:RequestTag/karpenter.sh/nodepool": "*"}


def test_controller_reads_only_its_queue_and_its_cluster() -> None:
    rec, _ = default_run()
    statements = controller_statements(rec)
    queue_arn = rec.one(T_QUEUE).outputs["arn"]
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueUrl"):
        (stmt,) = allowing(statements, action)
        assert stmt["Resource"] == [queue_arn]
    (describe,) = allowing(statements, "eks:DescribeCluster")
    assert describe["Resource"] == [f"arn:aws:eks:us-east-1:123456789012:cluster/{CLUSTER}"]
    (ssm,) = allowing(statements, "ssm:GetParameter")
    assert ssm["Resource"] == ["arn:aws:ssm:us-east-1::parameter/aws/service/*"]
    assert allowing(statements, "pricing:GetProducts")
    assert allowing(statements, "ec2:DescribeInstanceTypes")[0]["Condition"] == {
        "StringEquals": {"aws:RequestedRegion": "us-east-1"}
    }
    assert not allowing(statements, "kms:CreateGrant")  # no customer-managed key given


def test_volume_keys_are_usable_only_through_ec2() -> None:
    rec, _ = deploy(make_args(volume_kms_key_arns=[KMS_KEY]))
    statements = controller_statements(rec)
    for action in ("kms:CreateGrant", "kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt"):
        (stmt,) = allowing(statements, action)
        assert stmt["Resource"] == [KMS_KEY]
        assert stmt["Condition"]["StringEquals"] == {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}
    (grant,) = allowing(statements, "kms:CreateGrant")
    assert grant["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}


def test_policy_follows_the_partition_and_region() -> None:
    scope = PolicyScope(partition="aws-cn", region="cn-north-1", account_id="210987654321", cluster_name="c")
    policy = controller_policy(scope, node_role_arn="arn:aws-cn:iam::210987654321:role/n", queue_arn="q")
    text = json.dumps(policy)
    assert "arn:aws:" not in text and "us-east-1" not in text
    (passing,) = allowing(policy["Statement"], "iam:PassRole")
    assert passing["Condition"]["StringEquals"]["iam:PassedToService"] == "ec2.amazonaws.com.cn"


def test_controller_role_is_bound_to_the_service_account() -> None:
    rec, _ = deploy(make_args(namespace="karpenter", service_account="controller"))
    association = rec.one(T_ASSOCIATION)
    assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == (
        "karpenter",
        "controller",
    )
    assert association.inputs["clusterName"] == CLUSTER
    values = rec.one(T_RELEASE, "-controller").inputs["values"]
    assert values["serviceAccount"]["name"] == "controller"
    assert rec.one(T_RELEASE, "-controller").inputs["namespace"] == "karpenter"


# --- the chart -------------------------------------------------------------------------------------------


def test_release_is_the_pinned_oci_chart_with_our_settings() -> None:
    rec, resolved = default_run()
    release = rec.one(T_RELEASE, "-controller")
    assert release.inputs["chart"] == "oci://public.ecr.aws/karpenter/karpenter"
    assert release.inputs["version"] == KARPENTER.version == "1.14.1"
    assert "repositoryOpts" not in release.inputs
    values = release.inputs["values"]
    assert values["settings"] == {
        "clusterName": CLUSTER,
        "clusterEndpoint": ENDPOINT,
        "interruptionQueue": rec.one(T_QUEUE).outputs["name"],
    }
    assert values["replicas"] == 2
    assert values["controller"]["resources"]["requests"]
    assert resolved["interruption_queue_name"] == rec.one(T_QUEUE).outputs["name"]
    assert resolved["node_role_name"] == node_role(rec).outputs["name"]
    assert resolved["node_role_arn"] == node_role(rec).outputs["arn"]
    assert isinstance(resolved["release"], k8s.helm.v3.Release)


def test_release_waits_for_credentials_and_for_nodes_to_be_admitted() -> None:
    rec, _ = default_run()
    dependencies = set(rec.one(T_RELEASE, "-controller").dependencies)
    for needed in (rec.one(T_ASSOCIATION), rec.one(T_ROLE_POLICY), rec.one(T_ACCESS), *rec.of_type(T_ATTACH)):
        assert needed.urn in dependencies, needed.name


def test_controller_stays_off_the_nodes_it_launches() -> None:
    rec, _ = default_run()
    terms = rec.one(T_RELEASE, "-controller").inputs["values"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "karpenter.sh/nodepool", "operator": "DoesNotExist"}]}]


@needs_charts
def test_our_affinity_is_the_charts_default_restated() -> None:
    defaults = load_chart(str((CHART_DIR / KARPENTER.values_dir).resolve())).defaults
    ours = karpenter_values(
        cluster_name="c", cluster_endpoint="e", interruption_queue="q", service_account="s"
    )
    assert ours["affinity"]["nodeAffinity"] == defaults["affinity"]["nodeAffinity"]


@needs_charts
def test_value_keys_exist_in_the_chart() -> None:
    values = karpenter_values(
        cluster_name=CLUSTER, cluster_endpoint=ENDPOINT, interruption_queue="q", service_account="karpenter"
    )
    assert chart_value_errors(KARPENTER.values_dir, values) == []


def test_values_escape_hatch_is_merged_over_ours() -> None:
    rec, _ = deploy(
        make_args(values={"logLevel": "debug", "settings": {"featureGates": {"nodeRepair": True}}})
    )
    values = rec.one(T_RELEASE, "-controller").inputs["values"]
    assert values["logLevel"] == "debug"
    assert values["settings"]["featureGates"] == {"nodeRepair": True}
    assert values["settings"]["clusterName"] == CLUSTER


def test_names_are_prefixed_so_two_installs_do_not_collide() -> None:
    rec, _ = deploy(make_args(), name="k2")
    assert all(r.name.startswith("k2") for r in rec.resources)


# --- validation (pure) -----------------------------------------------------------------------------------


def test_defaults_are_valid() -> None:
    assert validate_karpenter_args(make_args()) == []


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"namespace": "Kube_System"}, "namespace"),
        ({"service_account": ""}, "service_account"),
        ({"values": {"serviceAccount": {"name": "other"}}}, "values"),
        ({"values": {"settings": {"interruptionQueue": "other"}}}, "values"),
        ({"tags": {"aws:cloudformation:stack-name": "x"}}, "tags"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], field_name: str) -> None:
    assert error_paths(validate_karpenter_args(make_args(**changes))) == [field_name]


def test_constructor_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        Karpenter("k", make_args(namespace="Bad", service_account="Bad"))
    assert "namespace" in str(raised.value) and "service_account" in str(raised.value)
