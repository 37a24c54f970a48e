"""AwsLoadBalancerController: turns the gateway's LoadBalancer Service into a Network Load Balancer.

The controller is installed from AWS's chart with an EKS Pod Identity role whose policy is ours, written
for an NLB-only controller rather than copied from upstream's iam_policy.json (which also covers ALBs,
WAF, Shield and Cognito): reads where AWS offers no resource-level permission; everything that changes a
load balancer, target group or security group limited to NLB ARNs, to the cluster's VPC, and to
resources tagged `elbv2.k8s.aws/cluster=<this cluster>` (the tag the controller puts on everything it
makes), so one cluster's controller cannot touch another's load balancers.

It only takes Services that ask for it (`spec.loadBalancerClass: service.k8s.aws/nlb`, see
`nlb_service_annotations`); its Service mutating webhook, which would claim every LoadBalancer Service in
the cluster, is off.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._common import (
    AWS_LOAD_BALANCER_CONTROLLER,
    child,
    helm_release,
    reject_invalid_args,
)
from components.clusters.aws.iam import PodIdentityRole, PodIdentityRoleArgs, policy_document, statement

#: spec.loadBalancerClass that hands a Service to this controller (and keeps EKS's in-tree one away).
NLB_LOAD_BALANCER_CLASS = "service.k8s.aws/nlb"
#: The tag the controller puts on every load balancer, target group, listener and security group it makes.
CLUSTER_TAG = "elbv2.k8s.aws/cluster"
#: NLB schemes the controller accepts.
NLB_SCHEMES = ("internet-facing", "internal")

# Tag prefixes the controller owns: it refuses to start when default tags use them.
_CONTROLLER_TAG_PREFIXES = ("elbv2.k8s.aws/", "service.k8s.aws/", "ingress.k8s.aws/", "aws:")
# Commercial-partition regions only: the policy writes arn:aws:... ARNs (China and GovCloud use others).
_REGION = re.compile(r"^[a-z]{2}-[a-z]+-\d{1,2}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

# Calls that only read. AWS offers no resource-level permission for Describe*, so these take "*".
_READ_ACTIONS = [
    "ec2:DescribeAccountAttributes",
    "ec2:DescribeAddresses",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeInstances",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeTags",
    "ec2:DescribeVpcs",
    "ec2:GetSecurityGroupsForVpc",
    "elasticloadbalancing:DescribeCapacityReservation",
    "elasticloadbalancing:DescribeListenerAttributes",
    "elasticloadbalancing:DescribeListenerCertificates",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeSSLPolicies",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    # A TLS listener on the NLB may name an ACM certificate.
    "acm:DescribeCertificate",
    "acm:ListCertificates",
]

# What the controller changes on its own NLBs and target groups after creating them.
_TAGGED_ELB_WRITES = [
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:DeregisterTargets",
    "elasticloadbalancing:ModifyCapacityReservation",
    "elasticloadbalancing:ModifyListenerAttributes",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:RegisterTargets",
    "elasticloadbalancing:SetIpAddressType",
    "elasticloadbalancing:SetSecurityGroups",
    "elasticloadbalancing:SetSubnets",
]


@dataclass(frozen=True, kw_only=True)
class AwsLoadBalancerControllerArgs:
    """The cluster the controller serves and how it runs."""

    cluster_name: pulumi.Input[str]  # EKS cluster name; also the value of the elbv2.k8s.aws/cluster tag
    vpc_id: pulumi.Input[str]  # the cluster's VPC: given, because the pods cannot ask instance metadata
    region: str  # the cluster's AWS region, e.g. us-east-1
    namespace: str = "kube-system"  # where the controller runs
    service_account: str = "aws-load-balancer-controller"  # its ServiceAccount, bound to the IAM role
    replicas: int = 2  # one leader, the rest standby and webhook capacity; 2+ gets a PodDisruptionBudget
    values: dict[str, Any] = field(default_factory=dict)  # escape hatch: chart values merged over ours
    tags: dict[str, str] = field(default_factory=dict)  # AWS tags for every NLB, target group and SG it makes


def validate_aws_load_balancer_controller_args(args: AwsLoadBalancerControllerArgs) -> list[str]:
    """Every problem with the args, each naming the field; empty when they are usable."""
    problems: list[str] = []
    if not _REGION.match(args.region) or args.region.startswith("cn-"):
        problems.append(
            f"region: {args.region!r} is not a region of AWS's commercial partition (e.g. us-east-1); "
            "China and GovCloud regions use other ARN partitions, which this policy does not write"
        )
    if not _DNS_LABEL.match(args.namespace):
        problems.append(f"namespace: {args.namespace!r} is not a Kubernetes namespace name")
    if not _DNS_LABEL.match(args.service_account):
        problems.append(f"service_account: {args.service_account!r} is not a ServiceAccount name")
    if args.replicas < 1:
        problems.append(f"replicas: {args.replicas} runs no controller; give 1 or more (2 for a PDB)")
    for key in args.tags:
        if key.startswith(_CONTROLLER_TAG_PREFIXES):
            problems.append(
                f"tags: {key!r} uses a prefix the controller or AWS reserves "
                f"({', '.join(_CONTROLLER_TAG_PREFIXES)}); rename the tag"
            )
    # Values that would silently break the IAM binding or the policy's tag conditions.
    service_account_values = args.values.get("serviceAccount") or {}
    if isinstance(service_account_values, dict) and "name" in service_account_values:
        problems.append(
            "values.serviceAccount.name: set service_account instead; the Pod Identity association binds "
            "that name"
        )
    for key, field_name in (("clusterName", "cluster_name"), ("region", "region"), ("vpcId", "vpc_id")):
        if key in args.values:
            problems.append(f"values.{key}: set {field_name} instead; the IAM policy is written for it")
    return problems


def _elb_arn(region: str, resource: str) -> str:
    return f"arn:aws:elasticloadbalancing:{region}:*:{resource}"


def controller_policy(
    cluster_name: pulumi.Input[str], vpc_id: pulumi.Input[str], region: str
) -> dict[str, Any]:
    """The controller's IAM policy: what an NLB-only controller for one cluster in one VPC needs.

    Conditions follow upstream's policy where it has them, tightened from "carries the cluster tag" to
    "carries this cluster's name in it"; security group rule changes are limited to the cluster's VPC
    (the controller opens the node and pod security groups, which it does not tag, to its NLBs).
    """
    vpc_arn: pulumi.Input[str] = (
        f"arn:aws:ec2:{region}:*:vpc/{vpc_id}"
        if isinstance(vpc_id, str)
        else pulumi.Output.concat(f"arn:aws:ec2:{region}:*:vpc/", vpc_id)
    )
    security_groups = f"arn:aws:ec2:{region}:*:security-group/*"
    load_balancers = _elb_arn(region, "loadbalancer/net/*/*")
    target_groups = _elb_arn(region, "targetgroup/*/*")
    listeners = _elb_arn(region, "listener/net/*/*/*")
    request_tag = f"aws:RequestTag/{CLUSTER_TAG}"
    resource_tag = f"aws:ResourceTag/{CLUSTER_TAG}"
    tagged_with_cluster = {"StringEquals": {resource_tag: cluster_name}}
    return policy_document(
        statement(
            ["iam:CreateServiceLinkedRole"],
            [
                "arn:aws:iam::*:role/aws-service-role/elasticloadbalancing.amazonaws.com/"
                "AWSServiceRoleForElasticLoadBalancing"
            ],
            sid="ElbServiceLinkedRoleOnly",
            condition={"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}},
        ),
        statement(_READ_ACTIONS, ["*"], sid="Read"),
        # Security groups: created only in our VPC and only carrying our cluster tag.
        statement(["ec2:CreateSecurityGroup"], [vpc_arn], sid="CreateSecurityGroupInClusterVpc"),
        statement(
            ["ec2:CreateSecurityGroup"],
            [security_groups],
            sid="CreateSecurityGroupTaggedForCluster",
            condition={"StringEquals": {request_tag: cluster_name}},
        ),
        statement(
            ["ec2:CreateTags"],
            [security_groups],
            sid="TagSecurityGroupOnCreate",
            condition={
                "StringEquals": {"ec2:CreateAction": "CreateSecurityGroup", request_tag: cluster_name}
            },
        ),
        statement(
            ["ec2:CreateTags", "ec2:DeleteTags"],
            [security_groups],
            sid="RetagOwnSecurityGroups",
            # Other tags only; the cluster tag itself can neither be added nor moved.
            condition={"Null": {request_tag: "true"}, **tagged_with_cluster},
        ),
        statement(
            ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
            [security_groups],
            sid="SecurityGroupRulesInClusterVpc",
            condition={"ArnEquals": {"ec2:Vpc": vpc_arn}},
        ),
        statement(
            ["ec2:DeleteSecurityGroup"],
            [security_groups],
            sid="DeleteOwnSecurityGroups",
            condition=tagged_with_cluster,
        ),
        # Load balancers and target groups: NLBs only, born with our cluster tag.
        statement(
            ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"],
            [load_balancers, target_groups],
            sid="CreateNlbTaggedForCluster",
            condition={"StringEquals": {request_tag: cluster_name}},
        ),
        statement(
            ["elasticloadbalancing:AddTags"],
            [load_balancers, target_groups],
            sid="TagNlbOnCreate",
            condition={
                "StringEquals": {
                    "elasticloadbalancing:CreateAction": ["CreateLoadBalancer", "CreateTargetGroup"],
                    request_tag: cluster_name,
                }
            },
        ),
        statement(
            ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
            [load_balancers, target_groups],
            sid="RetagOwnNlbs",
            condition={"Null": {request_tag: "true"}, **tagged_with_cluster},
        ),
        statement(
            _TAGGED_ELB_WRITES,
            [load_balancers, target_groups, listeners],
            sid="ChangeOwnNlbs",
            condition=tagged_with_cluster,
        ),
        # Listeners: upstream's policy grants these without a tag condition (a new listener's only
        # resource is its load balancer); here they are at least limited to NLBs.
        statement(
            [
                "elasticloadbalancing:AddListenerCertificates",
                "elasticloadbalancing:CreateListener",
                "elasticloadbalancing:DeleteListener",
                "elasticloadbalancing:ModifyListener",
                "elasticloadbalancing:RemoveListenerCertificates",
            ],
            [load_balancers, listeners],
            sid="NlbListeners",
        ),
        statement(
            ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
            [listeners],
            sid="TagNlbListeners",
        ),
    )


def controller_values(args: AwsLoadBalancerControllerArgs) -> dict[str, Any]:
    """Chart values (aws-load-balancer-controller 3.5.0) for an NLB-only controller in one cluster."""
    values: dict[str, Any] = {
        "clusterName": args.cluster_name,
        # Given rather than discovered: nodes run with IMDSv2 and a hop limit of 1, so a pod cannot reach
        # instance metadata to learn its region and VPC.
        "region": args.region,
        "vpcId": args.vpc_id,
        "serviceAccount": {"create": True, "name": args.service_account},
        "replicaCount": args.replicas,
        # Off: the webhook would make this controller take every new LoadBalancer Service in the cluster.
        # Services opt in with spec.loadBalancerClass service.k8s.aws/nlb.
        "enableServiceMutatorWebhook": False,
        "loadBalancerClass": NLB_LOAD_BALANCER_CLASS,
        # NLB only: no ALB Ingress class, and no WAF or Shield calls (ALB add-ons the policy does not grant).
        "createIngressClassResource": False,
        "ingressClassParams": {"create": False},
        "enableShield": False,
        "enableWaf": False,
        "enableWafv2": False,
        # Pods get VPC addresses (VPC CNI), so targets are pods, not node ports.
        "defaultTargetType": "ip",
        "defaultTags": dict(args.tags),
        # Reuse the webhook's serving certificate on upgrade rather than minting a new CA each time.
        "keepTLSSecret": True,
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        },
    }
    if args.replicas > 1:
        # The chart makes the PDB only with more than one replica; keep the webhook answering in drains.
        values["podDisruptionBudget"] = {"maxUnavailable": 1}
    return values


def nlb_service_annotations(scheme: str, allowed_cidrs: list[str]) -> dict[str, str]:
    """Service annotations for an NLB in front of the Envoy gateway (with spec.loadBalancerClass
    NLB_LOAD_BALANCER_CLASS; the caller puts `allowed_cidrs` in spec.loadBalancerSourceRanges).

    Targets are the Envoy pods' own addresses, with the client's address preserved: the NLB's security
    group applies loadBalancerSourceRanges only then, and Envoy's CIDR allow list and per-client logs need
    it too. Raises ValueError naming every bad argument.
    """
    problems: list[str] = []
    if scheme not in NLB_SCHEMES:
        problems.append(f"scheme: {scheme!r} is not one of {', '.join(NLB_SCHEMES)}")
    if not allowed_cidrs:
        problems.append("allowed_cidrs: empty; list the client networks, or ['0.0.0.0/0'] for everyone")
    for cidr in allowed_cidrs:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as err:
            problems.append(f"allowed_cidrs: {cidr!r} is not a network in CIDR form: {err}")
    if problems:
        raise ValueError("; ".join(problems))
    prefix = "service.beta.kubernetes.io/aws-load-balancer-"
    return {
        f"{prefix}scheme": scheme,
        f"{prefix}nlb-target-type": "ip",
        f"{prefix}target-group-attributes": "preserve_client_ip.enabled=true",
        # Every zone's NLB node may send to every Envoy pod, so a zone with fewer pods is not overloaded.
        f"{prefix}attributes": "load_balancing.cross_zone.enabled=true",
        # TCP on the pod's own port; two checks either way (default three) to drop a dead Envoy sooner.
        f"{prefix}healthcheck-protocol": "tcp",
        f"{prefix}healthcheck-port": "traffic-port",
        f"{prefix}healthcheck-interval": "10",
        f"{prefix}healthcheck-healthy-threshold": "2",
        f"{prefix}healthcheck-unhealthy-threshold": "2",
    }


class AwsLoadBalancerController(pulumi.ComponentResource):
    """AWS Load Balancer Controller with a least-privilege Pod Identity role, NLBs on request only."""

    release: k8s.helm.v3.Release
    role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: AwsLoadBalancerControllerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        reject_invalid_args(
            "AwsLoadBalancerController", name, validate_aws_load_balancer_controller_args(args)
        )
        super().__init__("inferstack:aws:AwsLoadBalancerController", name, None, opts)

        role = PodIdentityRole(
            f"{name}-role",
            PodIdentityRoleArgs(
                cluster_name=args.cluster_name,
                namespace=args.namespace,
                service_account=args.service_account,
                policy=controller_policy(args.cluster_name, args.vpc_id, args.region),
                description=f"AWS Load Balancer Controller ({args.namespace}/{args.service_account}), NLBs only",
            ),
            opts=child(self),
        )
        # Pod Identity hands credentials to pods created after the association exists: the controller's
        # pods must not start before it.
        self.release = helm_release(
            f"{name}-controller",
            AWS_LOAD_BALANCER_CONTROLLER,
            namespace=args.namespace,
            values=controller_values(args),
            extra_values=args.values,
            opts=child(self, depends_on=[role]),
        )
        self.role_arn = role.role_arn
        self.register_outputs({"role_arn": self.role_arn, "release_name": self.release.name})
