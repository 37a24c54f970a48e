"""AwsGpuNodePool: GPU nodes on EKS, elastic through Karpenter or a fixed managed node group.

Like the on-prem flavour (components/gpu_node_pool.py) it hands the model server the three `GpuPlacement`
attributes; unlike it, it makes the nodes, so it also decides their labels and taints:

- every node carries the pool label `inferstack.io/gpu-pool: <name>` (the `node_selector`) and, by
  default, the taint `nvidia.com/gpu:NoSchedule`, so nothing but GPU workloads lands on a GPU node;
- `karpenter` (the default): an EC2NodeClass + NodePool. Nodes appear when a GPU pod is pending and go
  when they have been empty for `consolidate_after_seconds`: the pool scales to zero, capped at `gpu_limit`
  GPUs in all;
- `managed_node_group`: an EKS managed node group of a fixed size (no cluster autoscaler runs on AWS:
  Karpenter is the elastic path).

AMIs: AL2023 NVIDIA ships the driver and container toolkit but not the device plugin, so NVIDIA's chart is
installed here, pinned to the pool's nodes; Bottlerocket's NVIDIA variant runs the device plugin itself.
Either way nodes launch with IMDSv2 only and a hop limit of 1 (pods cannot reach the node's role) and an
encrypted gp3 volume sized for the serving image plus the model cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components._common import NVIDIA_DEVICE_PLUGIN, child, helm_release, reject_invalid_args
from components.choices import CapacityType, GpuAmiFamily, GpuDriverStack, GpuProvisioner, TaintEffect
from components.clusters.aws.node_templates import encrypted_gp3, imdsv2_only
from components.gpu_node_pool import (
    DEFAULT_GPU_RESOURCE,
    DEFAULT_TAINTS,
    DEVICE_PLUGIN_NAMESPACE,
    POOL_LABEL,
    GpuNodePoolArgs,
    Taint,
    cloud_pool_label_problems,
    device_plugin_values,
    tolerations_for,
)

#: x86_64 EC2 families with NVIDIA GPUs, by Karpenter's instance-family label. Left out on purpose: g5g
#: and p6e-gb200 (Arm hosts), g4ad (AMD GPUs), p3 (Volta, which CUDA 13 no longer builds for).
GPU_INSTANCE_FAMILIES = {
    "g4dn": "NVIDIA T4 16 GB",
    "g5": "NVIDIA A10G 24 GB",
    "g6": "NVIDIA L4 24 GB",
    "g6e": "NVIDIA L40S 48 GB",
    "gr6": "NVIDIA L4 24 GB, more memory per vCPU",
    "g7e": "NVIDIA RTX PRO 6000 Blackwell 96 GB",
    "p4d": "NVIDIA A100 40 GB",
    "p4de": "NVIDIA A100 80 GB",
    "p5": "NVIDIA H100 80 GB",
    "p5e": "NVIDIA H200 141 GB",
    "p5en": "NVIDIA H200 141 GB, faster networking",
    "p6-b200": "NVIDIA B200",
    "p6-b300": "NVIDIA B300",
}

#: EKS managed node group AMI types with the NVIDIA driver, per family.
MANAGED_AMI_TYPES = {
    GpuAmiFamily.AL2023: "AL2023_x86_64_NVIDIA",
    GpuAmiFamily.BOTTLEROCKET: "BOTTLEROCKET_x86_64_NVIDIA",
}

# The version part of a Karpenter AMI alias: AL2023 releases are dated, Bottlerocket's are semantic.
_AMI_VERSION = {
    GpuAmiFamily.AL2023: (re.compile(r"^(latest|v\d{8})$"), "'latest' or a release like v20261101"),
    GpuAmiFamily.BOTTLEROCKET: (
        re.compile(r"^(latest|v\d+\.\d+\.\d+)$"),
        "'latest' or a release like v1.50.0",
    ),
}

#: Bottlerocket keeps its OS on a small volume and images, logs and the kubelet's files on a second one.
BOTTLEROCKET_OS_VOLUME_GIB = 4
MIN_VOLUME_GIB = 100  # the vLLM image is many GB compressed and more unpacked; the model cache comes on top

# Label domains Kubernetes, EKS and Karpenter keep for themselves (Karpenter refuses NodePools using them);
# node.kubernetes.io and node-restriction.kubernetes.io are the documented exceptions.
_RESERVED_LABEL_DOMAINS = ("kubernetes.io", "k8s.io", "karpenter.sh", "karpenter.k8s.aws")
# Tags Karpenter sets on what it launches and refuses to take from an EC2NodeClass.
_RESERVED_TAGS = (
    "eks:eks-cluster-name",
    "karpenter.sh/nodepool",
    "karpenter.sh/nodeclaim",
    "karpenter.k8s.aws/ec2nodeclass",
)
# A pool's name is a Kubernetes object name (NodePool, EC2NodeClass) and the value of POOL_LABEL.
_POOL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_INSTANCE_TYPE = re.compile(r"^([a-z0-9-]+)\.[a-z0-9]+$")

_NODE_GROUP_TAINT_EFFECT = {
    TaintEffect.NO_SCHEDULE: "NO_SCHEDULE",
    TaintEffect.PREFER_NO_SCHEDULE: "PREFER_NO_SCHEDULE",
    TaintEffect.NO_EXECUTE: "NO_EXECUTE",
}
_NODE_GROUP_CAPACITY = {CapacityType.ON_DEMAND: "ON_DEMAND", CapacityType.SPOT: "SPOT"}


@dataclass(frozen=True)
class AwsGpuNodePoolArgs:
    """GPU nodes for one EKS cluster and how they are provisioned."""

    cluster_name: pulumi.Input[str]  # the EKS cluster the nodes join
    subnet_ids: pulumi.Input[list[str]]  # private subnets the nodes are launched in
    security_group_ids: pulumi.Input[list[str]]  # security groups of the nodes: the cluster security group
    provisioner: GpuProvisioner = GpuProvisioner.KARPENTER  # elastic (Karpenter) or a fixed node group
    ami_family: GpuAmiFamily = GpuAmiFamily.AL2023  # decides whether we install the device plugin
    ami_version: str = "latest"  # AMI release; pin it in production ('latest' drifts nodes on each release)
    instance_families: list[str] = field(default_factory=lambda: ["g6", "g6e"])  # Karpenter picks among these
    capacity_types: list[CapacityType] = field(default_factory=lambda: [CapacityType.ON_DEMAND])  # may buy
    gpu_limit: int = 4  # total nvidia.com/gpu the Karpenter pool may hold at once (the spend cap)
    consolidate_after_seconds: int = 600  # how long a node stays empty before Karpenter removes it
    volume_size_gib: int = 200  # node (Bottlerocket: data) volume, encrypted gp3: image + model cache
    kms_key_arn: pulumi.Input[str] | None = None  # customer-managed key for the volumes; None: AWS's key
    karpenter_node_role_name: pulumi.Input[str] | None = None  # Karpenter.node_role_name (karpenter only)
    depends_on_karpenter: pulumi.Resource | None = None  # Karpenter.release: its CRDs must exist first
    spot_service_linked_role: pulumi.Resource | None = None  # the NodePool waits for it (spot only)
    managed_instance_types: list[str] = field(default_factory=list)  # node group only, e.g. ["g6.xlarge"]
    managed_node_count: int = 1  # node group only: its fixed size
    node_role_arn: pulumi.Input[str] | None = None  # node group only: the IAM role its nodes run as
    taints: list[Taint] = field(default_factory=lambda: list(DEFAULT_TAINTS))  # put on every node
    labels: dict[str, str] = field(default_factory=dict)  # extra node labels (POOL_LABEL is always set)
    tags: dict[str, str] = field(default_factory=dict)  # AWS tags for instances, volumes and the node group
    values: dict[str, Any] = field(default_factory=dict)  # escape hatch: device plugin chart values


def _family_of_instance_type(instance_type: str) -> str | None:
    match = _INSTANCE_TYPE.match(instance_type)
    return match.group(1) if match else None


def validate_aws_gpu_node_pool_args(args: AwsGpuNodePoolArgs) -> list[str]:
    """Every problem with the args, each naming the field; empty when they are usable."""
    problems: list[str] = []
    known = ", ".join(GPU_INSTANCE_FAMILIES)
    karpenter = args.provisioner is GpuProvisioner.KARPENTER

    if not isinstance(args.provisioner, GpuProvisioner):
        problems.append(f"provisioner: {args.provisioner!r} is not one of {', '.join(GpuProvisioner)}")
    if not isinstance(args.ami_family, GpuAmiFamily):
        problems.append(f"ami_family: {args.ami_family!r} is not one of {', '.join(GpuAmiFamily)}")
    else:
        pattern, example = _AMI_VERSION[args.ami_family]
        if not pattern.match(args.ami_version):
            problems.append(
                f"ami_version: {args.ami_version!r} is not a {args.ami_family} release; use {example}"
            )
        elif not karpenter and args.ami_version != "latest":
            problems.append(
                "ami_version: a managed node group takes the newest EKS AMI release when it is created (EKS "
                "release versions carry the Kubernetes version); use 'latest', or provisioner karpenter to pin"
            )

    if karpenter:
        if not args.instance_families:
            problems.append(f"instance_families: give at least one GPU instance family (known: {known})")
        for family in args.instance_families:
            if family not in GPU_INSTANCE_FAMILIES:
                problems.append(
                    f"instance_families: {family!r} is not an x86_64 NVIDIA GPU instance family; use one of {known}"
                )
        if len(set(args.instance_families)) != len(args.instance_families):
            problems.append("instance_families: a family is listed twice; list each once")
        if args.gpu_limit < 1:
            problems.append(f"gpu_limit: {args.gpu_limit} would let the pool hold no GPU; give 1 or more")
        if args.consolidate_after_seconds < 0:
            problems.append(
                f"consolidate_after_seconds: {args.consolidate_after_seconds} is negative; give 0 or more seconds"
            )
        if args.karpenter_node_role_name is None:
            problems.append(
                "karpenter_node_role_name: the karpenter provisioner launches nodes with Karpenter's node role; "
                "pass Karpenter(...).node_role_name"
            )
        for name in ("managed_instance_types", "node_role_arn"):
            if getattr(args, name):
                problems.append(
                    f"{name}: only the managed_node_group provisioner uses it; drop it or set provisioner "
                    "managed_node_group"
                )
    else:
        if not args.managed_instance_types:
            problems.append(
                "managed_instance_types: a managed node group needs instance types, e.g. ['g6.xlarge']"
            )
        for instance_type in args.managed_instance_types:
            if _family_of_instance_type(instance_type) not in GPU_INSTANCE_FAMILIES:
                problems.append(
                    f"managed_instance_types: {instance_type!r} is not an instance type of an x86_64 NVIDIA GPU "
                    f"family ({known}), e.g. g6.xlarge"
                )
        if args.node_role_arn is None:
            problems.append(
                "node_role_arn: a managed node group needs the IAM role its nodes run as; pass its ARN"
            )
        if args.managed_node_count < 1:
            problems.append(
                f"managed_node_count: {args.managed_node_count} nodes; a node group holds 1 or more"
            )
        if len(args.capacity_types) > 1:
            problems.append(
                "capacity_types: a managed node group buys one capacity type; give exactly one of "
                f"{', '.join(CapacityType)} (or use provisioner karpenter to mix them)"
            )
        if args.karpenter_node_role_name is not None:
            problems.append(
                "karpenter_node_role_name: only the karpenter provisioner uses it; drop it or set provisioner "
                "karpenter"
            )

    if not args.capacity_types:
        problems.append(f"capacity_types: give at least one of {', '.join(CapacityType)}")
    for capacity in args.capacity_types:
        if not isinstance(capacity, CapacityType):
            problems.append(f"capacity_types: {capacity!r} is not one of {', '.join(CapacityType)}")
    if len(set(args.capacity_types)) != len(args.capacity_types):
        problems.append("capacity_types: a capacity type is listed twice; list each once")

    if args.volume_size_gib < MIN_VOLUME_GIB:
        problems.append(
            f"volume_size_gib: {args.volume_size_gib} GiB cannot hold the serving image and a model cache; "
            f"give {MIN_VOLUME_GIB} or more"
        )

    problems.extend(
        cloud_pool_label_problems(
            args.labels, args.taints, _RESERVED_LABEL_DOMAINS, "Kubernetes, EKS or Karpenter"
        )
    )
    for key in args.tags:
        if key in _RESERVED_TAGS or key.startswith(("kubernetes.io/cluster", "aws:")):
            problems.append(f"tags: {key!r} is set by EKS or Karpenter (or reserved by AWS); drop it")
    return problems


def validate_pool_name(name: str) -> list[str]:
    """The pool's name becomes Kubernetes object names and the pool label's value."""
    if _POOL_NAME.match(name):
        return []
    return [
        f"name: {name!r} must be a DNS label (lower-case letters, digits, '-', at most 63) for the pool label"
    ]


def ami_alias(args: AwsGpuNodePoolArgs) -> str:
    """Karpenter v1's AMI alias: the EKS-optimized (or Bottlerocket) AMI of that release, with the NVIDIA
    variant picked per instance type."""
    return f"{args.ami_family.value}@{args.ami_version}"


def _ebs(size_gib: int, kms_key_arn: pulumi.Input[str] | None) -> dict[str, Any]:
    ebs: dict[str, Any] = {
        "volumeSize": f"{size_gib}Gi",
        "volumeType": "gp3",
        "encrypted": True,
        "deleteOnTermination": True,
    }
    if kms_key_arn is not None:
        ebs["kmsKeyID"] = kms_key_arn
    return ebs


def block_device_mappings(args: AwsGpuNodePoolArgs) -> list[dict[str, Any]]:
    """EC2NodeClass volumes. `rootVolume` marks the one holding the kubelet's root dir, which Karpenter
    sizes ephemeral storage from: /dev/xvda on AL2023; Bottlerocket's data volume /dev/xvdb, next to a
    small (still encrypted) OS volume."""
    if args.ami_family is GpuAmiFamily.BOTTLEROCKET:
        return [
            {"deviceName": "/dev/xvda", "ebs": _ebs(BOTTLEROCKET_OS_VOLUME_GIB, args.kms_key_arn)},
            {
                "deviceName": "/dev/xvdb",
                "rootVolume": True,
                "ebs": _ebs(args.volume_size_gib, args.kms_key_arn),
            },
        ]
    return [
        {"deviceName": "/dev/xvda", "rootVolume": True, "ebs": _ebs(args.volume_size_gib, args.kms_key_arn)}
    ]


#: IMDSv2 only, one hop: the node itself reaches instance metadata, a pod (one more hop) does not, so pods
#: cannot borrow the node role's credentials; they get their own through EKS Pod Identity.
METADATA_OPTIONS = {
    "httpEndpoint": "enabled",
    "httpTokens": "required",
    "httpPutResponseHopLimit": 1,
    "httpProtocolIPv6": "disabled",
}


def node_class_spec(
    args: AwsGpuNodePoolArgs,
    *,
    role: pulumi.Input[str],
    subnet_ids: pulumi.Input[list[str]],
    security_group_ids: pulumi.Input[list[str]],
) -> dict[str, Any]:
    """The EC2NodeClass spec; the inputs may be Outputs (selector terms are built when the ids are known)."""
    return {
        "amiSelectorTerms": [{"alias": ami_alias(args)}],
        "role": role,
        "subnetSelectorTerms": pulumi.Output.from_input(subnet_ids).apply(
            lambda ids: [{"id": i} for i in ids]
        ),
        "securityGroupSelectorTerms": pulumi.Output.from_input(security_group_ids).apply(
            lambda ids: [{"id": i} for i in ids]
        ),
        "metadataOptions": dict(METADATA_OPTIONS),
        "blockDeviceMappings": block_device_mappings(args),
        "tags": dict(args.tags),
    }


def node_labels(name: str, args: AwsGpuNodePoolArgs) -> dict[str, str]:
    return {**args.labels, POOL_LABEL: name}


def node_pool_spec(name: str, args: AwsGpuNodePoolArgs, node_class_name: str) -> dict[str, Any]:
    """The NodePool spec: which instances, with what labels and taints, how many GPUs, and when to let go."""
    taints = []
    for taint in args.taints:
        t = {"key": taint.key, "effect": taint.effect.value}
        if taint.value is not None:
            t["value"] = taint.value
        taints.append(t)
    return {
        "template": {
            "metadata": {"labels": node_labels(name, args)},
            "spec": {
                "nodeClassRef": {
                    "group": "karpenter.k8s.aws",
                    "kind": "EC2NodeClass",
                    "name": node_class_name,
                },
                "requirements": [
                    {
                        "key": "karpenter.k8s.aws/instance-family",
                        "operator": "In",
                        "values": list(args.instance_families),
                    },
                    {
                        "key": "karpenter.sh/capacity-type",
                        "operator": "In",
                        "values": [c.value for c in args.capacity_types],
                    },
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                    {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                    {
                        "key": "karpenter.k8s.aws/instance-gpu-manufacturer",
                        "operator": "In",
                        "values": ["nvidia"],
                    },
                ],
                "taints": taints,
            },
        },
        "disruption": {
            # Only empty nodes are removed: a GPU node serving a model is never drained to pack pods
            # tighter (a reload costs minutes). The delay keeps a short lull from discarding a warm node.
            "consolidationPolicy": "WhenEmpty",
            "consolidateAfter": f"{args.consolidate_after_seconds}s",
            # One node at a time for voluntary disruption (emptiness, drift after an AMI release, expiry),
            # so capacity never drops by more than one node's model replicas at once.
            "budgets": [{"nodes": "1"}],
        },
        "limits": {DEFAULT_GPU_RESOURCE: args.gpu_limit},
    }


def node_group_taints(taints: list[Taint]) -> list[aws.eks.NodeGroupTaintArgs]:
    return [
        aws.eks.NodeGroupTaintArgs(key=t.key, value=t.value, effect=_NODE_GROUP_TAINT_EFFECT[t.effect])
        for t in taints
    ]


class AwsGpuNodePool(pulumi.ComponentResource):
    """GPU nodes on EKS (Karpenter NodePool or managed node group), satisfying GpuPlacement."""

    node_selector: dict[str, str]
    tolerations: list[dict[str, str]]
    gpu_resource_name: str

    def __init__(
        self, name: str, args: AwsGpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        reject_invalid_args(
            "AwsGpuNodePool", name, validate_pool_name(name) + validate_aws_gpu_node_pool_args(args)
        )
        super().__init__("inferstack:aws:AwsGpuNodePool", name, None, opts)

        self.node_selector = {POOL_LABEL: name}
        self.tolerations = tolerations_for(args.taints)
        self.gpu_resource_name = DEFAULT_GPU_RESOURCE

        if args.provisioner is GpuProvisioner.KARPENTER:
            self._karpenter(name, args)
        else:
            self._managed_node_group(name, args)

        if args.ami_family is GpuAmiFamily.AL2023:
            helm_release(
                f"{name}-device-plugin",
                NVIDIA_DEVICE_PLUGIN,
                namespace=DEVICE_PLUGIN_NAMESPACE,
                values=self.device_plugin_values(args),
                extra_values=args.values,
                opts=child(self),
            )
        # Bottlerocket's NVIDIA variant runs the device plugin as a host service: nothing to install.

        self.register_outputs(
            {
                "node_selector": self.node_selector,
                "provisioner": args.provisioner.value,
                "ami": ami_alias(args),
            }
        )

    def device_plugin_values(self, args: AwsGpuNodePoolArgs) -> dict[str, Any]:
        """The on-prem flavour's device plugin values, pinned to this pool's label and taints."""
        return device_plugin_values(
            GpuNodePoolArgs(
                driver_stack=GpuDriverStack.DEVICE_PLUGIN,
                node_selector=self.node_selector,
                taints=list(args.taints),
            )
        )

    def _karpenter(self, name: str, args: AwsGpuNodePoolArgs) -> None:
        assert args.karpenter_node_role_name is not None  # validated
        after_karpenter = [args.depends_on_karpenter] if args.depends_on_karpenter is not None else []
        spot_role = [args.spot_service_linked_role] if args.spot_service_linked_role is not None else []
        # Teardown order matters here. The NodePool depends on the EC2NodeClass and both on the Karpenter
        # release, so `pulumi destroy` deletes the NodePool first (Karpenter drains and terminates its
        # nodes), then the EC2NodeClass, whose finalizer holds until every instance launched from it is gone,
        # and only then the controller. Pulumi waits for each deletion, so the cluster, subnets and VPC (which
        # these depend on through their inputs) are never deleted under live GPU instances.
        node_class = k8s.apiextensions.CustomResource(
            f"{name}-node-class",
            api_version="karpenter.k8s.aws/v1",
            kind="EC2NodeClass",
            metadata={"name": name},
            spec=node_class_spec(
                args,
                role=args.karpenter_node_role_name,
                subnet_ids=args.subnet_ids,
                security_group_ids=args.security_group_ids,
            ),
            opts=child(self, depends_on=after_karpenter),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-node-pool",
            api_version="karpenter.sh/v1",
            kind="NodePool",
            metadata={"name": name},
            spec=node_pool_spec(name, args, node_class_name=name),
            # Karpenter launches spot through CreateFleet, which needs the account's EC2 Spot service-linked
            # role; its controller may not create it (ServiceLinkedRoleCreationNotPermitted), so the role
            # must exist before the NodePool can launch a spot node.
            opts=child(self, depends_on=[*after_karpenter, node_class, *spot_role]),
        )

    def _managed_node_group(self, name: str, args: AwsGpuNodePoolArgs) -> None:
        assert args.node_role_arn is not None  # validated

        if args.ami_family is GpuAmiFamily.BOTTLEROCKET:
            volumes = [
                encrypted_gp3("/dev/xvda", BOTTLEROCKET_OS_VOLUME_GIB, args.kms_key_arn),
                encrypted_gp3("/dev/xvdb", args.volume_size_gib, args.kms_key_arn),
            ]
        else:
            volumes = [encrypted_gp3("/dev/xvda", args.volume_size_gib, args.kms_key_arn)]
        tags = dict(args.tags)
        launch_template = aws.ec2.LaunchTemplate(
            f"{name}-launch-template",
            description=f"GPU nodes of pool {name}: IMDSv2 with hop limit 1, encrypted gp3",
            metadata_options=imdsv2_only(),
            block_device_mappings=volumes,
            vpc_security_group_ids=args.security_group_ids,
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=tags)
                for kind in ("instance", "volume", "network-interface")
            ]
            if tags
            else None,
            tags=tags,
            opts=child(self),
        )
        # EKS creates the node role's access entry for a managed node group itself.
        aws.eks.NodeGroup(
            f"{name}-node-group",
            cluster_name=args.cluster_name,
            node_role_arn=args.node_role_arn,
            subnet_ids=args.subnet_ids,
            ami_type=MANAGED_AMI_TYPES[args.ami_family],
            instance_types=list(args.managed_instance_types),
            capacity_type=_NODE_GROUP_CAPACITY[args.capacity_types[0]],
            # A fixed pool: nothing scales it, so min = max = desired.
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=args.managed_node_count,
                max_size=args.managed_node_count,
                desired_size=args.managed_node_count,
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=launch_template.id, version=launch_template.latest_version.apply(str)
            ),
            labels=node_labels(name, args),
            taints=node_group_taints(args.taints),
            tags=tags,
            opts=child(self),
        )
