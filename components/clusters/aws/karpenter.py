"""Karpenter on EKS: the controller that launches (and removes) the GPU nodes a NodePool asks for.

What it needs from AWS, made here:

- a node IAM role for the instances it launches, admitted to the cluster by an EKS access entry of type
  EC2_LINUX (access entries, not the aws-auth ConfigMap);
- an SQS queue fed by EventBridge with spot interruption warnings, rebalance recommendations, instance
  state changes and AWS Health scheduled changes, so Karpenter drains a node *before* EC2 takes it away;
- the controller's own IAM role through EKS Pod Identity, with a policy written for this cluster only:
  it may launch and tag instances only with this cluster's ownership tags, terminate only instances that
  a Karpenter NodePool of this cluster launched, and pass only the node role.

The chart is installed after the role's Pod Identity association exists (a controller that starts without
credentials crash-loops until its pods are recreated) and after the node role may join the cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components._common import KARPENTER, child, helm_release, reject_invalid_args
from components.clusters.aws.iam import (
    PodIdentityRole,
    PodIdentityRoleArgs,
    policy_document,
    service_trust_policy,
    statement,
)

#: Managed policies every EKS node needs: join the cluster, run the VPC CNI, pull images, and be reachable
#: through SSM Session Manager instead of SSH. Registry *pull only* (not ReadOnly, which also lists and
#: describes repositories): the same choice Karpenter's own v1.14 node role makes.
NODE_MANAGED_POLICIES = {
    "worker": "AmazonEKSWorkerNodePolicy",
    "cni": "AmazonEKS_CNI_Policy",
    "ecr": "AmazonEC2ContainerRegistryPullOnly",
    "ssm": "AmazonSSMManagedInstanceCore",
}


@dataclass(frozen=True)
class InterruptionEvent:
    """One EventBridge rule feeding the interruption queue."""

    role: str  # suffix of the rule's resource name
    source: str  # event source, e.g. aws.ec2
    detail_type: str  # EventBridge detail-type
    detail: dict[str, list[str]] | None = None  # narrows the pattern to the events Karpenter acts on


#: What Karpenter's interruption controller reads. Health events are narrowed to EC2 scheduled changes
#: (instance retirement, maintenance): Karpenter ignores every other Health event, so they would only be
#: received and deleted.
INTERRUPTION_EVENTS = (
    InterruptionEvent("spot-interruption", "aws.ec2", "EC2 Spot Instance Interruption Warning"),
    InterruptionEvent("rebalance", "aws.ec2", "EC2 Instance Rebalance Recommendation"),
    InterruptionEvent("state-change", "aws.ec2", "EC2 Instance State-change Notification"),
    InterruptionEvent(
        "scheduled-change",
        "aws.health",
        "AWS Health Event",
        {"service": ["EC2"], "eventTypeCategory": ["scheduledChange"]},
    ),
)

#: Tags Karpenter puts on everything it creates; the controller policy keys its conditions on them.
NODEPOOL_TAG = "karpenter.sh/nodepool"
NODECLASS_TAG = "karpenter.k8s.aws/ec2nodeclass"

# Two controllers on different nodes (the chart's anti-affinity) elect a leader; the second takes over in
# seconds when the first node goes. Requests sized from Karpenter's guidance for small clusters.
CONTROLLER_REPLICAS = 2
CONTROLLER_RESOURCES = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

# Settings wired to resources made here; overriding them through `values` would silently break Karpenter.
_OWNED_VALUES = (
    ("serviceAccount", "name"),
    ("serviceAccount", "create"),
    ("settings", "clusterName"),
    ("settings", "clusterEndpoint"),
    ("settings", "interruptionQueue"),
)


@dataclass(frozen=True)
class KarpenterArgs:
    """The EKS cluster Karpenter runs in and how its controller is installed."""

    cluster_name: pulumi.Input[str]  # the EKS cluster's name (instances are tagged and scoped with it)
    cluster_endpoint: pulumi.Input[str]  # the API server URL the launched nodes join
    namespace: str = "kube-system"  # where the controller runs (Karpenter's documented default)
    service_account: str = "karpenter"  # the controller's ServiceAccount, bound to its IAM role
    volume_kms_key_arns: list[pulumi.Input[str]] = field(default_factory=list)  # CMKs of node volumes
    values: dict[str, Any] = field(default_factory=dict)  # escape hatch: chart values merged over ours
    # The provider CRD charts are applied with (components/_common.py crd_provider): adopts CRDs already on
    # the cluster. None: the inherited provider (a fresh cluster only).
    crd_provider: pulumi.ProviderResource | None = None
    tags: dict[str, str] = field(default_factory=dict)  # AWS tags for the roles, queue and rules


def validate_karpenter_args(args: KarpenterArgs) -> list[str]:
    """Every problem with the args, each naming the field; empty when they are usable."""
    problems: list[str] = []
    if not _DNS_LABEL.match(args.namespace):
        problems.append(
            f"namespace: {args.namespace!r} is not a Kubernetes namespace name (e.g. kube-system)"
        )
    if not _DNS_LABEL.match(args.service_account):
        problems.append(
            f"service_account: {args.service_account!r} is not a ServiceAccount name (e.g. karpenter)"
        )
    for path in _OWNED_VALUES:
        node: Any = args.values
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            problems.append(
                f"values: {'.'.join(path)} is set from this component's own args and resources; drop it "
                "from values (use service_account, cluster_name or cluster_endpoint instead)"
            )
    for key in args.tags:
        if not key or key.startswith("aws:"):
            problems.append(
                f"tags: {key!r} is not a tag key you may set (empty, or AWS's reserved aws: prefix)"
            )
    return problems


@dataclass(frozen=True)
class PolicyScope:
    """Where the controller policy applies: plain values, known once the cluster and account are."""

    partition: str  # aws, aws-cn, aws-us-gov
    region: str  # the cluster's region
    account_id: str  # the cluster's account
    cluster_name: str  # the EKS cluster


def _ec2_arns(scope: PolicyScope, *kinds: str) -> list[str]:
    return [f"arn:{scope.partition}:ec2:{scope.region}:*:{kind}/*" for kind in kinds]


def _ec2_principal(partition: str) -> str:
    return "ec2.amazonaws.com.cn" if partition == "aws-cn" else "ec2.amazonaws.com"


def _owned_by(scope: PolicyScope, tag_kind: str) -> dict[str, str]:
    """`tag_kind` is RequestTag (on create) or ResourceTag (on existing resources)."""
    return {f"aws:{tag_kind}/kubernetes.io/cluster/{scope.cluster_name}": "owned"}


def controller_ec2_statements(scope: PolicyScope) -> list[dict[str, Any]]:
    """EC2 for the controller: launch only what is tagged as this cluster's, delete only what it launched.

    Instances, volumes, ENIs, fleets, launch templates and spot requests must carry the cluster's ownership
    tags and a NodePool tag when created; the shared inputs of a launch (AMIs, subnets, security groups)
    are read-only to it. Terminating and deleting need the same tags on the resource, so the controller
    cannot touch nodes of managed node groups or anything else in the account.
    """
    created = _ec2_arns(
        scope, "fleet", "instance", "volume", "network-interface", "launch-template", "spot-instances-request"
    )
    create_tags = {
        "StringEquals": {
            **_owned_by(scope, "RequestTag"),
            "aws:RequestTag/eks:eks-cluster-name": scope.cluster_name,
        },
        "StringLike": {f"aws:RequestTag/{NODEPOOL_TAG}": "*"},
    }
    karpenter_owned = {
        "StringEquals": _owned_by(scope, "ResourceTag"),
        "StringLike": {f"aws:ResourceTag/{NODEPOOL_TAG}": "*"},
    }
    return [
        statement(
            ["ec2:RunInstances", "ec2:CreateFleet"],
            [
                f"arn:{scope.partition}:ec2:{scope.region}::image/*",
                f"arn:{scope.partition}:ec2:{scope.region}::snapshot/*",
                *_ec2_arns(scope, "security-group", "subnet", "capacity-reservation", "placement-group"),
            ],
            sid="LaunchFromSharedInputs",
        ),
        statement(
            ["ec2:RunInstances", "ec2:CreateFleet"],
            _ec2_arns(scope, "launch-template"),
            sid="LaunchFromOwnLaunchTemplates",
            condition=karpenter_owned,
        ),
        statement(
            ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
            created,
            sid="CreateOnlyClusterTagged",
            condition=create_tags,
        ),
        statement(
            ["ec2:CreateTags"],
            created,
            sid="TagOnlyWhileCreating",
            condition={
                **create_tags,
                "StringEquals": {
                    **create_tags["StringEquals"],
                    "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"],
                },
            },
        ),
        statement(
            ["ec2:CreateTags"],
            _ec2_arns(scope, "instance"),
            sid="NameOwnInstances",
            condition={
                **karpenter_owned,
                "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": scope.cluster_name},
                # Only the tags Karpenter adds after launch; never its ownership tags.
                "ForAllValues:StringEquals": {
                    "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
                },
            },
        ),
        statement(
            ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
            _ec2_arns(scope, "instance", "launch-template"),
            sid="DeleteOnlyWhatANodePoolLaunched",
            condition=karpenter_owned,
        ),
        statement(
            [
                "ec2:DescribeCapacityReservations",
                "ec2:DescribeImages",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceStatus",
                "ec2:DescribeInstanceTypeOfferings",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeLaunchTemplates",
                "ec2:DescribePlacementGroups",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSpotPriceHistory",
                "ec2:DescribeSubnets",
            ],
            ["*"],  # EC2's Describe calls have no resource-level permissions
            sid="DescribeInThisRegion",
            condition={"StringEquals": {"aws:RequestedRegion": scope.region}},
        ),
    ]


def controller_iam_statements(scope: PolicyScope, node_role_arn: str) -> list[dict[str, Any]]:
    """IAM for the controller: pass the node role to EC2 and manage the instance profiles it makes for it."""
    profiles = [f"arn:{scope.partition}:iam::{scope.account_id}:instance-profile/*"]
    profile_scope = {
        **_owned_by(scope, "ResourceTag"),
        "aws:ResourceTag/topology.kubernetes.io/region": scope.region,
    }
    profile_create_tags = {
        **_owned_by(scope, "RequestTag"),
        "aws:RequestTag/eks:eks-cluster-name": scope.cluster_name,
        "aws:RequestTag/topology.kubernetes.io/region": scope.region,
    }
    return [
        statement(
            ["iam:PassRole"],
            [node_role_arn],
            sid="PassOnlyTheNodeRoleToEC2",
            condition={"StringEquals": {"iam:PassedToService": _ec2_principal(scope.partition)}},
        ),
        statement(
            ["iam:CreateInstanceProfile"],
            profiles,
            sid="CreateClusterTaggedInstanceProfiles",
            condition={
                "StringEquals": profile_create_tags,
                "StringLike": {f"aws:RequestTag/{NODECLASS_TAG}": "*"},
            },
        ),
        statement(
            ["iam:TagInstanceProfile"],
            profiles,
            sid="TagOwnInstanceProfiles",
            condition={
                "StringEquals": {**profile_scope, **profile_create_tags},
                "StringLike": {
                    f"aws:ResourceTag/{NODECLASS_TAG}": "*",
                    f"aws:RequestTag/{NODECLASS_TAG}": "*",
                },
            },
        ),
        statement(
            [
                "iam:AddRoleToInstanceProfile",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:DeleteInstanceProfile",
            ],
            profiles,
            sid="ManageOwnInstanceProfiles",
            condition={
                "StringEquals": profile_scope,
                "StringLike": {f"aws:ResourceTag/{NODECLASS_TAG}": "*"},
            },
        ),
        statement(["iam:GetInstanceProfile"], profiles, sid="ReadInstanceProfiles"),
        statement(
            ["iam:ListInstanceProfiles"], ["*"], sid="ListInstanceProfiles"
        ),  # no resource scope exists
    ]


def controller_policy(
    scope: PolicyScope,
    *,
    node_role_arn: str,
    queue_arn: str,
    volume_kms_key_arns: list[str] | None = None,
) -> dict[str, Any]:
    """The controller's whole policy for one cluster, from plain values (a pure function, so tests read it)."""
    statements = [
        *controller_ec2_statements(scope),
        *controller_iam_statements(scope, node_role_arn),
        statement(
            ["eks:DescribeCluster"],
            [f"arn:{scope.partition}:eks:{scope.region}:{scope.account_id}:cluster/{scope.cluster_name}"],
            sid="DiscoverThisCluster",
        ),
        statement(
            ["ssm:GetParameter"],
            # The public parameters that name the EKS-optimized and Bottlerocket AMIs of an alias.
            [f"arn:{scope.partition}:ssm:{scope.region}::parameter/aws/service/*"],
            sid="ResolveAmiAliases",
        ),
        statement(["pricing:GetProducts"], ["*"], sid="ReadPrices"),  # the Pricing API has no resources
        statement(
            ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
            [queue_arn],
            sid="ReadInterruptionQueue",
        ),
    ]
    if volume_kms_key_arns:
        # EC2 encrypts a launched node's volumes with a customer-managed key on the *caller's* behalf, so
        # the controller needs the key, but only through EC2 and only for grants EC2 keeps for the volume.
        via_ec2 = {"kms:ViaService": f"ec2.{scope.region}.amazonaws.com"}
        statements += [
            statement(["kms:DescribeKey"], list(volume_kms_key_arns), sid="DescribeVolumeKeys"),
            statement(
                [
                    "kms:Decrypt",
                    "kms:GenerateDataKeyWithoutPlaintext",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                ],
                list(volume_kms_key_arns),
                sid="EncryptNodeVolumesThroughEC2",
                condition={"StringEquals": via_ec2},
            ),
            statement(
                ["kms:CreateGrant"],
                list(volume_kms_key_arns),
                sid="GrantEC2TheVolumeKeys",
                condition={"StringEquals": via_ec2, "Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
        ]
    return policy_document(*statements)


def queue_policy(queue_arn: str, rule_arns: list[str]) -> dict[str, Any]:
    """Who may write to the interruption queue: our EventBridge rules (and SQS itself), over TLS only."""
    return policy_document(
        {
            **statement(["sqs:SendMessage"], [queue_arn], sid="OurEventRulesDeliver"),
            "Principal": {"Service": "events.amazonaws.com"},
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arns}},
        },
        {  # kept as Karpenter's reference template has it
            **statement(["sqs:SendMessage"], [queue_arn], sid="SqsDelivers"),
            "Principal": {"Service": "sqs.amazonaws.com"},
        },
        {
            **statement(
                ["sqs:*"],
                [queue_arn],
                sid="DenyPlainHttp",
                effect="Deny",
                condition={"Bool": {"aws:SecureTransport": "false"}},
            ),
            "Principal": "*",
        },
    )


def event_pattern(event: InterruptionEvent) -> dict[str, Any]:
    pattern: dict[str, Any] = {"source": [event.source], "detail-type": [event.detail_type]}
    if event.detail:
        pattern["detail"] = event.detail
    return pattern


def karpenter_values(
    *,
    cluster_name: pulumi.Input[str],
    cluster_endpoint: pulumi.Input[str],
    interruption_queue: pulumi.Input[str],
    service_account: str,
) -> dict[str, Any]:
    """Values for the karpenter chart (the inputs may be Outputs; the keys are checked in the tests)."""
    return {
        "settings": {
            "clusterName": cluster_name,
            "clusterEndpoint": cluster_endpoint,
            "interruptionQueue": interruption_queue,
        },
        "serviceAccount": {"create": True, "name": service_account},
        "replicas": CONTROLLER_REPLICAS,
        "controller": {"resources": CONTROLLER_RESOURCES},
        # The chart's default, restated so a chart change cannot drop it: the controller must never run on
        # a node it launched, or disrupting that node would take down the only thing that can replace it.
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": NODEPOOL_TAG, "operator": "DoesNotExist"}]}
                    ]
                }
            }
        },
    }


class Karpenter(pulumi.ComponentResource):
    """The Karpenter controller on EKS, with its node role, interruption queue and Pod Identity role."""

    node_role_name: pulumi.Output[str]
    node_role_arn: pulumi.Output[str]
    interruption_queue_name: pulumi.Output[str]
    controller_role_arn: pulumi.Output[str]
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args("Karpenter", name, validate_karpenter_args(args))
        super().__init__("inferstack:aws:Karpenter", name, None, opts)

        tags = dict(args.tags)
        # --- the nodes' identity ---------------------------------------------------------------------
        node_role = aws.iam.Role(
            f"{name}-node-role",
            description="Nodes launched by Karpenter",
            assume_role_policy=pulumi.Output.json_dumps(service_trust_policy("ec2.amazonaws.com")),
            tags=tags,
            opts=child(self),
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{short}",
                role=node_role.name,
                policy_arn=_aws_managed_policy(node_role.arn, policy),
                opts=child(self),
            )
            for short, policy in NODE_MANAGED_POLICIES.items()
        ]
        node_access = aws.eks.AccessEntry(
            f"{name}-node-access",
            cluster_name=args.cluster_name,
            principal_arn=node_role.arn,
            type="EC2_LINUX",  # EKS maps it to system:nodes; no aws-auth ConfigMap edit
            tags=tags,
            opts=child(self),
        )

        # --- interruption handling ---------------------------------------------------------------------
        queue = aws.sqs.Queue(
            f"{name}-interruption",
            # An interruption message is stale after minutes (a spot warning gives two); keep none longer.
            message_retention_seconds=300,
            sqs_managed_sse_enabled=True,
            tags=tags,
            opts=child(self),
        )
        rules = []
        for event in INTERRUPTION_EVENTS:
            rule = aws.cloudwatch.EventRule(
                f"{name}-{event.role}",
                description=f"Karpenter interruption handling: {event.detail_type}",
                event_pattern=pulumi.Output.json_dumps(event_pattern(event)),
                tags=tags,
                opts=child(self),
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{event.role}-target",
                rule=rule.name,
                arn=queue.arn,
                target_id="karpenter-interruption-queue",
                opts=child(self),
            )
            rules.append(rule)
        queue_access = aws.sqs.QueuePolicy(
            f"{name}-interruption",
            queue_url=queue.url,
            policy=pulumi.Output.json_dumps(
                pulumi.Output.all(queue.arn, *[r.arn for r in rules]).apply(
                    lambda arns: queue_policy(arns[0], list(arns[1:]))
                )
            ),
            opts=child(self),
        )

        # --- the controller ----------------------------------------------------------------------------
        kms_keys = list(args.volume_kms_key_arns)
        policy = pulumi.Output.all(queue.arn, args.cluster_name, node_role.arn, *kms_keys).apply(
            lambda v: controller_policy(
                _scope_of(queue_arn=v[0], cluster_name=v[1]),
                node_role_arn=v[2],
                queue_arn=v[0],
                volume_kms_key_arns=list(v[3:]),
            )
        )
        controller_role = PodIdentityRole(
            f"{name}-controller-identity",
            PodIdentityRoleArgs(
                cluster_name=args.cluster_name,
                namespace=args.namespace,
                service_account=args.service_account,
                policy=_with_late_resources(policy, len(kms_keys)),
                description=f"Karpenter controller ({args.namespace}/{args.service_account})",
            ),
            opts=child(self),
        )

        self.release = helm_release(
            f"{name}-controller",
            KARPENTER,
            namespace=args.namespace,
            values=karpenter_values(
                cluster_name=args.cluster_name,
                cluster_endpoint=args.cluster_endpoint,
                interruption_queue=queue.name,
                service_account=args.service_account,
            ),
            extra_values=args.values,
            crd_provider=args.crd_provider,
            # Depending on the PodIdentityRole waits for its association and policy: the controller starts
            # with credentials. The node role's access entry and policies come first so the first node joins.
            opts=child(self, depends_on=[controller_role, node_access, queue_access, *attachments]),
        )

        self.node_role_name = node_role.name
        self.node_role_arn = node_role.arn
        self.interruption_queue_name = queue.name
        self.controller_role_arn = controller_role.role_arn
        self.register_outputs(
            {
                "node_role_name": self.node_role_name,
                "node_role_arn": self.node_role_arn,
                "interruption_queue_name": self.interruption_queue_name,
                "controller_role_arn": self.controller_role_arn,
            }
        )


def _scope_of(*, queue_arn: str, cluster_name: str) -> PolicyScope:
    """Partition, region and account read from the queue's ARN (arn:PARTITION:sqs:REGION:ACCOUNT:NAME): made
    by this component's provider, so it names the cluster's region without a data-source call."""
    _, partition, _, region, account_id, _ = queue_arn.split(":", 5)
    return PolicyScope(partition=partition, region=region, account_id=account_id, cluster_name=cluster_name)


def _aws_managed_policy(role_arn: pulumi.Output[str], policy: str) -> pulumi.Output[str]:
    """The ARN of an AWS managed policy in the role's partition (arn:PARTITION:iam::ACCOUNT:role/NAME)."""
    return role_arn.apply(lambda arn: f"arn:{arn.split(':', 2)[1]}:iam::aws:policy/{policy}")


#: Stands in for the cluster's values when only the policy's shape is wanted.
_SHAPE_SCOPE = PolicyScope("aws", "region", "account", "cluster")


def _with_late_resources(policy: pulumi.Output[dict[str, Any]], kms_key_count: int) -> dict[str, Any]:
    """`policy` as a document whose Effect, Action and Sid are plain now and whose Resource and Condition
    resolve later. PodIdentityRole checks the actions before anything exists (it refuses Action "*"),
    which an Output of the whole document would hide from it. The shape comes from the same function
    with stand-in values, so the two cannot disagree."""
    shape = controller_policy(
        _SHAPE_SCOPE, node_role_arn="", queue_arn="", volume_kms_key_arns=[""] * kms_key_count
    )

    def part(i: int, key: str) -> pulumi.Output[Any]:
        return policy.apply(lambda p: p["Statement"][i][key])

    statements = []
    for i, stmt in enumerate(shape["Statement"]):
        late = {key: value for key, value in stmt.items() if key not in ("Resource", "Condition")}
        late.update({key: part(i, key) for key in ("Resource", "Condition") if key in stmt})
        statements.append(late)
    return policy_document(*statements)
