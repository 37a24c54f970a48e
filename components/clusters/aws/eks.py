"""EksCluster: the EKS control plane, its managed add-ons and a small on-demand node group for system pods.

Security defaults (see DESIGN.md): Kubernetes secrets envelope-encrypted with a customer KMS key that
rotates; all five control-plane log types kept in a KMS-encrypted log group with a retention; the API
endpoint private, or public only for listed networks; access through EKS access entries (authentication
mode API: no aws-auth ConfigMap); nodes with IMDSv2 only and a hop limit of 1, so pods cannot borrow the
node role; the EBS CSI driver gets its own role through EKS Pod Identity.

ARNs are written for the commercial partition (`arn:aws:`); GovCloud and China would need their own.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components._common import child, reject_invalid_args
from components.clusters.api_access import api_cidr_problems
from components.clusters.aws.iam import (
    POD_IDENTITY_PRINCIPAL,
    policy_document,
    service_trust_policy,
    statement,
)
from components.clusters.aws.node_templates import encrypted_gp3, imdsv2_only

# Managed add-on versions for Kubernetes 1.34, pinned from public sources seen while writing this (not
# from the AWS API, which this machine cannot reach): `eksctl get addon` output from 1.34 clusters shows
# kube-proxy v1.34.5-eksbuild.2 and vpc-cni v1.21.1-eksbuild.5; a CDK (aws-eks-v2) version map keyed by
# Kubernetes version gives the same two for 1.34 plus coredns v1.13.2-eksbuild.4, eks-pod-identity-agent
# v1.3.10-eksbuild.2 and aws-ebs-csi-driver v1.57.1-eksbuild.1, which Terraform modules pin as well.
# vpc-cni is newer than those: with enableNetworkPolicy, vpc-cni v1.21.1 builds ship network-policy-agent
# v1.3.1/v1.3.2, whose agent denies every pod's traffic when its ClusterPolicyEndpoint CRD check fails at
# start (aws/aws-network-policy-agent#553, fresh EKS 1.34 on AL2023: CoreDNS crash-loops; #570), fixed by
# PR #551 in agent v1.3.5, which vpc-cni v1.21.2 ships (amazon-vpc-cni-k8s charts/aws-vpc-cni/values.yaml
# nodeAgent tag at v1.21.2). v1.21.2-eksbuild.2 is listed for 1.34 and 1.35 in a public upgrade runbook.
# Check before bumping: aws eks describe-addon-versions --kubernetes-version 1.34 --addon-name <name>
DEFAULT_ADDON_VERSIONS: dict[str, str] = {
    "vpc-cni": "v1.21.2-eksbuild.2",
    "kube-proxy": "v1.34.5-eksbuild.2",
    "eks-pod-identity-agent": "v1.3.10-eksbuild.2",
    "coredns": "v1.13.2-eksbuild.4",
    "aws-ebs-csi-driver": "v1.57.1-eksbuild.1",
}
# DaemonSets a node needs before it turns Ready (pod networking, service routing, pod credentials).
ADDONS_BEFORE_NODES = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
# Deployments that stay DEGRADED until nodes exist to run them.
ADDONS_AFTER_NODES = ("coredns", "aws-ebs-csi-driver")
# The VPC CNI enforces Kubernetes NetworkPolicy with its node agent when this is on; the model server's
# default-deny policies depend on it.
VPC_CNI_CONFIGURATION = {"enableNetworkPolicy": "true"}
#: The oldest vpc-cni whose network-policy agent has the deny-all-at-start fix (agent v1.3.5, PR #551; see
#: DEFAULT_ADDON_VERSIONS): with enableNetworkPolicy on, an older pin can leave every pod without traffic.
VPC_CNI_MINIMUM = (1, 21, 2)
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"

CLUSTER_LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
CLUSTER_ADMIN_POLICY_ARN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
CLUSTER_POLICY_ARNS = ["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"]
NODE_POLICY_ARNS = [
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    # The VPC CNI (aws-node, host network) assigns pod IPs with the node's credentials.
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
]
EBS_CSI_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
SYSTEM_AMI_TYPE = "AL2023_x86_64_STANDARD"
SYSTEM_NODE_LABELS = {"inferstack.io/node-role": "system"}
ROOT_DEVICE = "/dev/xvda"  # the AL2023 EKS AMI's root volume

# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)  # fmt: skip

_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")  # EKS CreateCluster's rule
_KUBERNETES_VERSION = re.compile(r"^1\.(\d{2})$")
_ADDON_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)-eksbuild\.\d+$")
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")
# Graviton types carry a "g" after the generation digit (m7g, c7gn, r8gd, t4g); the x86 AMI cannot boot them.
_ARM_INSTANCE = re.compile(r"^[a-z]+\d+[a-z]*g[a-z]*\.")


@dataclass(frozen=True)
class EksClusterArgs:
    """An EKS cluster in existing private subnets."""

    cluster_name: str  # the exact EKS cluster name (subnet tags and kubeconfig use it)
    kubernetes_version: str  # control plane and node version, "1.34"
    vpc_id: pulumi.Input[str]  # the VPC of private_subnet_ids; the control-plane access group lives there
    private_subnet_ids: pulumi.Input[list[str]]  # control-plane ENIs and system nodes, two zones or more
    public_access_cidrs: list[str] = field(default_factory=list)  # empty: private endpoint only
    private_access_cidrs: list[str] = field(
        default_factory=list
    )  # VPN / CI networks allowed to 443 privately
    # IAM roles/users given cluster admin; not the identity running `pulumi up`, which EKS already admits
    admin_principal_arns: list[str] = field(default_factory=list)
    system_node_instance_types: list[str] = field(default_factory=lambda: ["m7i.large"])  # x86, on-demand
    system_node_min: int = 2  # at least two, so coredns survives a node replacement
    system_node_desired: int = 2  # node count at creation; stays managed (no autoscaler on system nodes)
    system_node_max: int = 3  # room for one surge node during updates
    system_node_disk_gib: int = 50  # encrypted gp3 root volume: images and logs
    log_retention_days: int = 90  # control-plane logs; a CloudWatch Logs retention value
    addon_versions: dict[str, str] = field(default_factory=dict)  # overrides of DEFAULT_ADDON_VERSIONS
    tags: dict[str, str] = field(default_factory=dict)  # added to every resource that takes tags


def cluster_name_problems(cluster_name: str) -> list[str]:
    if not _CLUSTER_NAME.match(cluster_name or ""):
        return [
            f"cluster_name: {cluster_name!r} is not an EKS cluster name; use 1-100 letters, digits, - and _, "
            "starting with a letter or digit"
        ]
    return []


def addon_versions_for(args: EksClusterArgs) -> dict[str, str]:
    """The pinned version of every add-on: the module defaults with the caller's overrides."""
    return {**DEFAULT_ADDON_VERSIONS, **args.addon_versions}


def _cidr_problems(field_name: str, cidrs: list[str]) -> list[str]:
    return api_cidr_problems(
        field_name,
        cidrs,
        open_fix="list your networks, or leave it empty for a private endpoint",
        ipv6_refusal="EKS takes IPv4 CIDRs here",
    )


def validate_eks_cluster_args(args: EksClusterArgs) -> list[str]:
    """Every problem with the args, each naming its field; empty when they are usable."""
    problems = cluster_name_problems(args.cluster_name)
    version = _KUBERNETES_VERSION.match(args.kubernetes_version or "")
    if not version:
        problems.append(f"kubernetes_version: {args.kubernetes_version!r} is not a minor version like '1.34'")
    problems += _cidr_problems("public_access_cidrs", args.public_access_cidrs)
    problems += _cidr_problems("private_access_cidrs", args.private_access_cidrs)
    for i, arn in enumerate(args.admin_principal_arns):
        if not _PRINCIPAL_ARN.match(arn):
            problems.append(
                f"admin_principal_arns[{i}]: {arn!r} is not an IAM role or user ARN "
                "(arn:aws:iam::<account>:role/<name>); for an assumed role give the role's ARN"
            )
    if len(set(args.admin_principal_arns)) != len(args.admin_principal_arns):
        problems.append("admin_principal_arns: lists a principal twice; drop the repeat")
    if not args.system_node_instance_types:
        problems.append("system_node_instance_types: give at least one instance type, e.g. m7i.large")
    for i, instance_type in enumerate(args.system_node_instance_types):
        if _ARM_INSTANCE.match(instance_type):
            problems.append(
                f"system_node_instance_types[{i}]: {instance_type} is a Graviton (arm64) type but system "
                f"nodes run {SYSTEM_AMI_TYPE}; pick an x86 type such as m7i.large"
            )
    if args.system_node_min < 1:
        problems.append("system_node_min: coredns and the EBS CSI controller need nodes; use 1 or more")
    if not args.system_node_min <= args.system_node_desired <= args.system_node_max:
        problems.append(
            f"system_node_min/system_node_desired/system_node_max: need min <= desired <= max, got "
            f"{args.system_node_min}/{args.system_node_desired}/{args.system_node_max}"
        )
    if not 20 <= args.system_node_disk_gib <= 16384:
        problems.append(
            f"system_node_disk_gib: {args.system_node_disk_gib} is outside 20..16384 (the AL2023 AMI's "
            "snapshot is 20 GiB)"
        )
    if args.log_retention_days not in LOG_RETENTION_DAYS:
        problems.append(
            f"log_retention_days: {args.log_retention_days} is not a CloudWatch Logs retention; use one of "
            f"{', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    for addon, pinned in args.addon_versions.items():
        if addon not in DEFAULT_ADDON_VERSIONS:
            problems.append(
                f"addon_versions: {addon!r} is not an add-on this cluster installs; use one of "
                f"{', '.join(DEFAULT_ADDON_VERSIONS)}"
            )
        elif not _ADDON_VERSION.match(pinned or ""):
            problems.append(
                f"addon_versions: {addon} {pinned!r} is not an add-on version like v1.21.2-eksbuild.2"
            )
    cni = _ADDON_VERSION.match(addon_versions_for(args)["vpc-cni"])
    if cni and tuple(int(cni.group(i)) for i in (1, 2, 3)) < VPC_CNI_MINIMUM:
        problems.append(
            f"addon_versions: vpc-cni {cni.group(0)} predates v{'.'.join(map(str, VPC_CNI_MINIMUM))}, whose "
            "network-policy agent no longer denies every pod's traffic when it starts before its CRD is "
            "ready (aws/aws-network-policy-agent#553); NetworkPolicy enforcement is on here, so pin "
            "v1.21.2-eksbuild.2 or newer"
        )
    # kube-proxy is built per Kubernetes minor version: a mismatch fails at create time, far into `up`.
    kube_proxy = _ADDON_VERSION.match(addon_versions_for(args)["kube-proxy"])
    if version and kube_proxy and kube_proxy.group(2) != version.group(1):
        problems.append(
            f"addon_versions: kube-proxy {kube_proxy.group(0)} is for Kubernetes 1.{kube_proxy.group(2)} but "
            f"kubernetes_version is {args.kubernetes_version}; pin kube-proxy to a "
            f"v{args.kubernetes_version}.x-eksbuild.N build (aws eks describe-addon-versions)"
        )
    return problems


def kubeconfig(cluster_name: str, endpoint: str, certificate_authority_data: str, region: str) -> str:
    """A kubeconfig (JSON, which is YAML) whose user gets a token from `aws eks get-token` with the
    caller's AWS credentials, so it holds no secret of its own and never expires."""
    context = f"aws-eks-{region}-{cluster_name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {"server": endpoint, "certificate-authority-data": certificate_authority_data},
            }
        ],
        "users": [
            {
                "name": context,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": [
                            "eks",
                            "get-token",
                            "--cluster-name",
                            cluster_name,
                            "--region",
                            region,
                            "--output",
                            "json",
                        ],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }
    return json.dumps(config, indent=2)


def key_policy(account_id: pulumi.Input[str], region: pulumi.Input[str], cluster_name: str) -> dict:
    """The cluster key's policy: the account administers it through IAM; CloudWatch Logs may use it for
    this cluster's log group only; EC2 Auto Scaling (which launches managed nodes) may use it for the
    encrypted root volumes."""
    account_root = pulumi.Output.concat("arn:aws:iam::", account_id, ":root")
    log_group_arn = pulumi.Output.concat(
        "arn:aws:logs:", region, ":", account_id, ":log-group:", log_group_name(cluster_name)
    )
    # Named by condition rather than as Principal: a key policy naming a role that does not exist yet is
    # rejected, and the Auto Scaling service-linked role appears only with an account's first group.
    autoscaling_role = pulumi.Output.concat(
        "arn:aws:iam::",
        account_id,
        ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
    )
    volume_actions = [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:DescribeKey",
    ]
    return policy_document(
        {**statement(["kms:*"], ["*"], sid="AccountAdministers"), "Principal": {"AWS": account_root}},
        {
            **statement(
                volume_actions,
                ["*"],
                sid="CloudWatchLogsForTheClusterLogGroup",
                condition={"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_group_arn}},
            ),
            "Principal": {"Service": pulumi.Output.concat("logs.", region, ".amazonaws.com")},
        },
        {
            **statement(
                volume_actions,
                ["*"],
                sid="AutoScalingForNodeVolumes",
                condition={
                    "StringEquals": {"aws:PrincipalArn": autoscaling_role, "kms:CallerAccount": account_id}
                },
            ),
            "Principal": {"AWS": "*"},
        },
        {
            **statement(
                ["kms:CreateGrant"],
                ["*"],
                sid="AutoScalingGrantsForNodeVolumes",
                condition={
                    "StringEquals": {"aws:PrincipalArn": autoscaling_role, "kms:CallerAccount": account_id},
                    "Bool": {"kms:GrantIsForAWSResource": "true"},
                },
            ),
            "Principal": {"AWS": "*"},
        },
    )


def log_group_name(cluster_name: str) -> str:
    """The log group EKS writes control-plane logs to; made by us first, so it has our retention and key."""
    return f"/aws/eks/{cluster_name}/cluster"


def _oidc_issuer(identities: Sequence[aws.eks.outputs.ClusterIdentity] | None) -> str:
    for identity in identities or []:
        for oidc in identity.oidcs or []:
            if oidc.issuer:
                return oidc.issuer
    return ""


class EksCluster(pulumi.ComponentResource):
    """EKS control plane, access entries, managed add-ons and the system node group."""

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    certificate_authority_data: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    system_node_group: aws.eks.NodeGroup
    node_role_arn: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args("EksCluster", name, validate_eks_cluster_args(args))
        super().__init__("inferstack:aws:EksCluster", name, None, opts)

        tags = {**args.tags, "inferstack.io/cluster": args.cluster_name}
        invoke = pulumi.InvokeOutputOptions(parent=self)  # the component's provider: account and region
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region

        key = aws.kms.Key(
            f"{name}-key",
            description=f"EKS {args.cluster_name}: Kubernetes secrets, control-plane logs, node volumes",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.json_dumps(key_policy(account_id, region, args.cluster_name)),
            tags=tags,
            opts=child(self),
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/eks/{args.cluster_name}",
            target_key_id=key.key_id,
            opts=child(self),
        )
        logs = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=log_group_name(args.cluster_name),
            retention_in_days=args.log_retention_days,
            kms_key_id=key.arn,
            tags=tags,
            opts=child(self),
        )

        cluster_role = aws.iam.Role(
            f"{name}-cluster-role",
            description=f"EKS control plane of {args.cluster_name}",
            assume_role_policy=json.dumps(service_trust_policy("eks.amazonaws.com")),
            tags=tags,
            opts=child(self),
        )
        cluster_role_ready: list[pulumi.Resource] = [
            aws.iam.RolePolicyAttachment(
                f"{name}-cluster-policy-{i}", role=cluster_role.name, policy_arn=arn, opts=child(self)
            )
            for i, arn in enumerate(CLUSTER_POLICY_ARNS)
        ]
        # The managed policy does not cover a customer key: EKS needs these to envelope-encrypt secrets.
        cluster_role_ready.append(
            aws.iam.RolePolicy(
                f"{name}-cluster-kms",
                role=cluster_role.id,
                policy=pulumi.Output.json_dumps(
                    policy_document(
                        statement(
                            ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
                            [key.arn],
                            sid="SecretsEnvelopeEncryption",
                        )
                    )
                ),
                opts=child(self),
            )
        )

        # Networks allowed to the private endpoint get a group of their own on the control-plane ENIs.
        # The EKS-made cluster security group is also on every managed node (and so on every pod ENI):
        # opening 443 there would open it on the nodes and pods too.
        access_group = aws.ec2.SecurityGroup(
            f"{name}-api-access",
            vpc_id=args.vpc_id,
            description=f"Private access to the {args.cluster_name} Kubernetes API",
            tags={**tags, "Name": f"{args.cluster_name}-api-access"},
            opts=child(self),
        )
        for cidr in args.private_access_cidrs:
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-api-access-{cidr.replace('/', '-')}",
                security_group_id=access_group.id,
                cidr_ipv4=cidr,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                description=f"Kubernetes API from {cidr}",
                opts=child(self),
            )

        cluster = aws.eks.Cluster(
            f"{name}-cluster",
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.private_subnet_ids,
                security_group_ids=[access_group.id],
                endpoint_private_access=True,
                endpoint_public_access=bool(args.public_access_cidrs),
                public_access_cidrs=list(args.public_access_cidrs) or None,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                resources=["secrets"], provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=key.arn)
            ),
            enabled_cluster_log_types=CLUSTER_LOG_TYPES,
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                # The identity running `pulumi up` must reach the new cluster to deploy the Kubernetes
                # objects of the same stack; EKS gives it an access entry of its own at creation.
                bootstrap_cluster_creator_admin_permissions=True,
            ),
            # No unmanaged vpc-cni/coredns/kube-proxy: the managed add-ons below are the only copies.
            bootstrap_self_managed_addons=False,
            tags=tags,
            opts=child(self, depends_on=[logs, *cluster_role_ready]),
        )

        for principal in args.admin_principal_arns:
            # Named by the principal, not its place in the list: dropping one admin must not rename (and so
            # replace) the others' entries, and EKS refuses a second entry for a principal during a replace.
            admin = f"{name}-admin-{hashlib.sha256(principal.encode()).hexdigest()[:8]}"
            entry = aws.eks.AccessEntry(
                admin,
                cluster_name=cluster.name,
                principal_arn=principal,
                type="STANDARD",
                tags=tags,
                opts=child(self),
            )
            aws.eks.AccessPolicyAssociation(
                f"{admin}-policy",
                cluster_name=cluster.name,
                principal_arn=entry.principal_arn,
                policy_arn=CLUSTER_ADMIN_POLICY_ARN,
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=child(self),
            )

        versions = addon_versions_for(args)

        def addon(
            addon_name: str,
            depends_on: list[pulumi.Resource],
            configuration_values: str | None = None,
            pod_identity_associations: list[aws.eks.AddonPodIdentityAssociationArgs] | None = None,
        ) -> aws.eks.Addon:
            return aws.eks.Addon(
                f"{name}-addon-{addon_name}",
                cluster_name=cluster.name,
                addon_name=addon_name,
                addon_version=versions[addon_name],
                configuration_values=configuration_values,
                pod_identity_associations=pod_identity_associations,
                # The managed add-on owns its objects: edits made in the cluster are put back.
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                tags=tags,
                opts=child(self, depends_on=depends_on),
            )

        early_addons: list[pulumi.Resource] = [
            addon("vpc-cni", [], configuration_values=json.dumps(VPC_CNI_CONFIGURATION)),
            addon("kube-proxy", []),
            addon("eks-pod-identity-agent", []),
        ]

        node_role = aws.iam.Role(
            f"{name}-node-role",
            description=f"System nodes of EKS {args.cluster_name}",
            assume_role_policy=json.dumps(service_trust_policy("ec2.amazonaws.com")),
            tags=tags,
            opts=child(self),
        )
        node_role_ready = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-policy-{i}", role=node_role.name, policy_arn=arn, opts=child(self)
            )
            for i, arn in enumerate(NODE_POLICY_ARNS)
        ]
        node_tags = {**tags, "Name": f"{args.cluster_name}-system"}
        launch_template = aws.ec2.LaunchTemplate(
            f"{name}-system-lt",
            description=f"System nodes of EKS {args.cluster_name}: IMDSv2 only, encrypted root volume",
            metadata_options=imdsv2_only(),
            block_device_mappings=[encrypted_gp3(ROOT_DEVICE, args.system_node_disk_gib, key.arn)],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=node_tags)
                for kind in ("instance", "volume", "network-interface")
            ],
            tags=tags,
            opts=child(self),
        )
        self.system_node_group = aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=cluster.name,
            # Follows the control plane on upgrades (the AMI comes from ami_type, not the template).
            version=cluster.version,
            node_role_arn=node_role.arn,
            subnet_ids=args.private_subnet_ids,
            capacity_type="ON_DEMAND",
            ami_type=SYSTEM_AMI_TYPE,
            instance_types=list(args.system_node_instance_types),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=launch_template.id, version=launch_template.latest_version.apply(str)
            ),
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=args.system_node_min,
                desired_size=args.system_node_desired,
                max_size=args.system_node_max,
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels=SYSTEM_NODE_LABELS,
            tags=tags,
            opts=child(self, depends_on=[*node_role_ready, *early_addons]),
        )

        ebs_csi_role = aws.iam.Role(
            f"{name}-ebs-csi-role",
            description=f"EBS CSI controller of EKS {args.cluster_name}, via EKS Pod Identity",
            # Pod Identity passes session tags: TagSession is required.
            assume_role_policy=json.dumps(service_trust_policy(POD_IDENTITY_PRINCIPAL, tag_session=True)),
            tags=tags,
            opts=child(self),
        )
        ebs_csi_policy = aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi-policy", role=ebs_csi_role.name, policy_arn=EBS_CSI_POLICY_ARN, opts=child(self)
        )
        coredns = addon("coredns", [self.system_node_group])
        ebs_csi = addon(
            "aws-ebs-csi-driver",
            [self.system_node_group, ebs_csi_policy],
            pod_identity_associations=[
                aws.eks.AddonPodIdentityAssociationArgs(
                    role_arn=ebs_csi_role.arn, service_account=EBS_CSI_SERVICE_ACCOUNT
                )
            ],
        )

        # Every managed add-on: workloads wait for them (cluster DNS, the CNI, pod identity).
        self.addons: list[pulumi.Resource] = [*early_addons, coredns, ebs_csi]
        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.certificate_authority_data = cluster.certificate_authority.apply(lambda ca: ca.data or "")
        self.oidc_issuer_url = cluster.identities.apply(_oidc_issuer)
        self.cluster_security_group_id = cluster.vpc_config.apply(
            lambda vpc: vpc.cluster_security_group_id or ""
        )
        self.kms_key_arn = key.arn
        self.node_role_arn = node_role.arn
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, cluster.endpoint, self.certificate_authority_data, region).apply(
                lambda parts: kubeconfig(*parts)
            )
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "endpoint": self.endpoint,
                "certificate_authority_data": self.certificate_authority_data,
                "oidc_issuer_url": self.oidc_issuer_url,
                "cluster_security_group_id": self.cluster_security_group_id,
                "kms_key_arn": self.kms_key_arn,
                "node_role_arn": self.node_role_arn,
                "kubeconfig": self.kubeconfig,
            }
        )
