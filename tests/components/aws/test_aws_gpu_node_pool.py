"""AwsGpuNodePool: Karpenter EC2NodeClass + NodePool (or a fixed managed node group) that only GPU workloads
land on, that scale to zero, launch with IMDSv2 hop 1 and encrypted volumes, and place the model server."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components._common import NVIDIA_DEVICE_PLUGIN
from components.choices import TaintEffect
from components.clusters.aws.gpu_node_pool import (
    GPU_INSTANCE_FAMILIES,
    POOL_LABEL,
    AwsGpuNodePool,
    AwsGpuNodePoolArgs,
    CapacityType,
    GpuAmiFamily,
    GpuProvisioner,
    node_pool_spec,
    validate_aws_gpu_node_pool_args,
)
from components.clusters.aws.karpenter import Karpenter, KarpenterArgs
from components.gpu_node_pool import GpuPlacement, Taint
from inferstack.planning.recording import RecordedResource, Recording, run_program
from tests.components.schemas import (
    chart_value_errors,
    crd_errors,
    error_paths,
    manifest_of,
    needs_charts,
    needs_crds,
)
from tests.components.test_gpu_node_pool import tolerates, tolerates_all

T_NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
T_NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
T_RELEASE = "kubernetes:helm.sh/v3:Release"
T_LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
T_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"

SUBNETS = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"]
SECURITY_GROUPS = ["sg-0a1b2c3d4e5f60003"]
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NODE_ROLE_ARN = "arn:aws:iam::123456789012:role/gpu-nodes"


def karpenter_args(**changes: Any) -> AwsGpuNodePoolArgs:
    base = AwsGpuNodePoolArgs(
        cluster_name="prod-llm",
        subnet_ids=list(SUBNETS),
        security_group_ids=list(SECURITY_GROUPS),
        instance_families=["g6", "g6e", "p5"],
        capacity_types=[CapacityType.SPOT, CapacityType.ON_DEMAND],
        gpu_limit=8,
        volume_size_gib=300,
        kms_key_arn=KMS_KEY,
        karpenter_node_role_name="karpenter-node-role",
    )
    return dataclasses.replace(base, **changes)


def managed_args(**changes: Any) -> AwsGpuNodePoolArgs:
    managed: dict[str, Any] = {
        "provisioner": GpuProvisioner.MANAGED_NODE_GROUP,
        "karpenter_node_role_name": None,
        "managed_instance_types": ["g6.xlarge", "g6.2xlarge"],
        "managed_node_count": 2,
        "node_role_arn": NODE_ROLE_ARN,
        "capacity_types": [CapacityType.ON_DEMAND],
    }
    return karpenter_args(**{**managed, **changes})


def render(args: AwsGpuNodePoolArgs, name: str = "gpu") -> tuple[Recording, AwsGpuNodePool]:
    made: list[AwsGpuNodePool] = []
    rec = run_program(lambda: made.append(AwsGpuNodePool(name, args)))
    return rec, made[0]


def render_with_karpenter(**changes: Any) -> tuple[Recording, AwsGpuNodePool]:
    """The composition a stack makes: Karpenter first, its node role and release handed to the pool."""
    made: list[AwsGpuNodePool] = []

    def program() -> None:
        karpenter = Karpenter(
            "karpenter", KarpenterArgs(cluster_name="prod-llm", cluster_endpoint="https://x")
        )
        args = karpenter_args(
            karpenter_node_role_name=karpenter.node_role_name,
            depends_on_karpenter=karpenter.release,
            **changes,
        )
        made.append(AwsGpuNodePool("gpu", args))

    return run_program(program), made[0]


def spec(resource: RecordedResource) -> dict[str, Any]:
    return dict(resource.inputs["spec"])


# --- Karpenter: NodePool -------------------------------------------------------------------------------


def test_node_pool_admits_only_gpu_workloads_and_caps_gpus() -> None:
    rec, _ = render(karpenter_args())
    pool = spec(rec.one(T_NODE_POOL))
    assert pool["template"]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    assert pool["limits"] == {"nvidia.com/gpu": 8}


def test_empty_nodes_are_released_after_the_configured_delay_one_at_a_time() -> None:
    rec, _ = render(karpenter_args(consolidate_after_seconds=900))
    disruption = spec(rec.one(T_NODE_POOL))["disruption"]
    assert disruption["consolidationPolicy"] == "WhenEmpty"
    assert disruption["consolidateAfter"] == "900s"
    assert disruption["budgets"] == [{"nodes": "1"}]
    rec, _ = render(karpenter_args())
    assert spec(rec.one(T_NODE_POOL))["disruption"]["consolidateAfter"] == "600s"  # the default


def test_requirements_restrict_to_the_configured_families_and_capacity_on_nvidia_x86() -> None:
    rec, _ = render(karpenter_args())
    requirements = {
        r["key"]: (r["operator"], r["values"])
        for r in spec(rec.one(T_NODE_POOL))["template"]["spec"]["requirements"]
    }
    assert requirements["karpenter.k8s.aws/instance-family"] == ("In", ["g6", "g6e", "p5"])
    assert requirements["karpenter.sh/capacity-type"] == ("In", ["spot", "on-demand"])
    assert requirements["kubernetes.io/arch"] == ("In", ["amd64"])
    assert requirements["karpenter.k8s.aws/instance-gpu-manufacturer"] == ("In", ["nvidia"])


@settings(max_examples=60, deadline=None)
@given(
    families=st.lists(st.sampled_from(sorted(GPU_INSTANCE_FAMILIES)), min_size=1, unique=True),
    capacity=st.lists(st.sampled_from(list(CapacityType)), min_size=1, unique=True),
    gpu_limit=st.integers(min_value=1, max_value=1000),
)
def test_any_valid_choice_reaches_the_node_pool_unchanged(
    families: list[str], capacity: list[CapacityType], gpu_limit: int
) -> None:
    args = karpenter_args(instance_families=families, capacity_types=capacity, gpu_limit=gpu_limit)
    assert validate_aws_gpu_node_pool_args(args) == []
    pool = node_pool_spec("gpu", args, node_class_name="gpu")
    requirements = {r["key"]: r["values"] for r in pool["template"]["spec"]["requirements"]}
    assert requirements["karpenter.k8s.aws/instance-family"] == families
    assert requirements["karpenter.sh/capacity-type"] == [c.value for c in capacity]
    assert pool["limits"]["nvidia.com/gpu"] == gpu_limit


def test_node_pool_uses_the_node_class_and_waits_for_karpenter() -> None:
    rec, _ = render_with_karpenter()
    pool, node_class = rec.one(T_NODE_POOL), rec.one(T_NODE_CLASS)
    ref = spec(pool)["template"]["spec"]["nodeClassRef"]
    assert ref == {
        "group": "karpenter.k8s.aws",
        "kind": "EC2NodeClass",
        "name": node_class.inputs["metadata"]["name"],
    }
    karpenter_release = rec.one(T_RELEASE, "karpenter-controller")
    # Deleted in reverse: NodePool, then EC2NodeClass (its finalizer waits for the instances), then Karpenter.
    assert node_class.urn in pool.dependencies
    assert karpenter_release.urn in pool.dependencies
    assert karpenter_release.urn in node_class.dependencies
    # The nodes run as Karpenter's node role, the one with the EC2_LINUX access entry.
    assert spec(node_class)["role"] == rec.one("aws:iam/role:Role", "karpenter-node-role").outputs["name"]


# --- Karpenter: EC2NodeClass ---------------------------------------------------------------------------


def test_node_class_requires_imdsv2_with_one_hop() -> None:
    rec, _ = render(karpenter_args())
    options = spec(rec.one(T_NODE_CLASS))["metadataOptions"]
    assert options["httpTokens"] == "required"
    assert options["httpPutResponseHopLimit"] == 1
    assert options["httpEndpoint"] == "enabled"


def test_al2023_has_one_encrypted_root_volume_of_the_given_size_with_the_key() -> None:
    rec, _ = render(karpenter_args())
    node_class = spec(rec.one(T_NODE_CLASS))
    assert node_class["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
    (volume,) = node_class["blockDeviceMappings"]
    assert volume["deviceName"] == "/dev/xvda" and volume["rootVolume"] is True
    assert volume["ebs"] == {
        "volumeSize": "300Gi",
        "volumeType": "gp3",
        "encrypted": True,
        "deleteOnTermination": True,
        "kmsKeyID": KMS_KEY,
    }


def test_bottlerocket_sizes_its_data_volume_and_encrypts_both() -> None:
    rec, _ = render(karpenter_args(ami_family=GpuAmiFamily.BOTTLEROCKET, ami_version="v1.50.0"))
    node_class = spec(rec.one(T_NODE_CLASS))
    assert node_class["amiSelectorTerms"] == [{"alias": "bottlerocket@v1.50.0"}]
    volumes = {v["deviceName"]: v for v in node_class["blockDeviceMappings"]}
    assert set(volumes) == {"/dev/xvda", "/dev/xvdb"}
    assert volumes["/dev/xvdb"]["ebs"]["volumeSize"] == "300Gi"
    assert volumes["/dev/xvdb"].get("rootVolume") is True  # images and the kubelet's files live there
    assert "rootVolume" not in volumes["/dev/xvda"]
    for volume in volumes.values():
        assert volume["ebs"]["encrypted"] is True and volume["ebs"]["kmsKeyID"] == KMS_KEY


def test_without_a_key_volumes_are_still_encrypted() -> None:
    rec, _ = render(karpenter_args(kms_key_arn=None))
    (volume,) = spec(rec.one(T_NODE_CLASS))["blockDeviceMappings"]
    assert volume["ebs"]["encrypted"] is True and "kmsKeyID" not in volume["ebs"]


def test_node_class_selects_subnets_and_security_groups_by_id() -> None:
    rec, _ = render(karpenter_args(tags={"team": "ml"}))
    node_class = spec(rec.one(T_NODE_CLASS))
    assert node_class["subnetSelectorTerms"] == [{"id": s} for s in SUBNETS]
    assert node_class["securityGroupSelectorTerms"] == [{"id": s} for s in SECURITY_GROUPS]
    assert node_class["role"] == "karpenter-node-role"
    assert node_class["tags"] == {"team": "ml"}


@needs_crds
@pytest.mark.parametrize("family", list(GpuAmiFamily))
def test_custom_resources_match_their_crds(family: GpuAmiFamily) -> None:
    rec, _ = render(karpenter_args(ami_family=family, tags={"team": "ml"}, labels={"example.com/tier": "a"}))
    for resource in (rec.one(T_NODE_POOL), rec.one(T_NODE_CLASS)):
        assert crd_errors(manifest_of(resource)) == [], resource.type


# --- what the model server reads ----------------------------------------------------------------------


TAINTS = [
    Taint("nvidia.com/gpu", None, TaintEffect.NO_SCHEDULE),
    Taint("example.com/dedicated", "inference", TaintEffect.NO_EXECUTE),
]


@pytest.mark.parametrize(
    "args", [karpenter_args(taints=TAINTS), managed_args(taints=TAINTS)], ids=["karpenter", "managed"]
)
def test_placement_lands_pods_on_the_pools_nodes(args: AwsGpuNodePoolArgs) -> None:
    rec, pool = render(args)
    placement: GpuPlacement = pool
    assert placement.gpu_resource_name == "nvidia.com/gpu"
    assert placement.node_selector == {POOL_LABEL: "gpu"}
    assert tolerates_all(placement.tolerations, TAINTS)
    assert not any(
        tolerates(t, Taint("other.example/x", "y", TaintEffect.NO_SCHEDULE)) for t in placement.tolerations
    )
    if args.provisioner is GpuProvisioner.KARPENTER:
        template = spec(rec.one(T_NODE_POOL))["template"]
        node_labels = template["metadata"]["labels"]
        node_taints = template["spec"]["taints"]
        assert node_taints[1] == {"key": "example.com/dedicated", "value": "inference", "effect": "NoExecute"}
    else:
        node_labels = rec.one(T_NODE_GROUP).inputs["labels"]
    assert placement.node_selector.items() <= node_labels.items()


def test_extra_labels_reach_the_nodes_next_to_the_pool_label() -> None:
    rec, _ = render(karpenter_args(labels={"example.com/tier": "premium"}))
    labels = spec(rec.one(T_NODE_POOL))["template"]["metadata"]["labels"]
    assert labels == {"example.com/tier": "premium", POOL_LABEL: "gpu"}


# --- device plugin --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "installs"),
    [
        (karpenter_args(), True),
        (managed_args(), True),
        (karpenter_args(ami_family=GpuAmiFamily.BOTTLEROCKET), False),
        (managed_args(ami_family=GpuAmiFamily.BOTTLEROCKET), False),
    ],
    ids=["al2023-karpenter", "al2023-managed", "bottlerocket-karpenter", "bottlerocket-managed"],
)
def test_device_plugin_only_where_the_ami_lacks_it(args: AwsGpuNodePoolArgs, installs: bool) -> None:
    rec, _ = render(args)
    releases = rec.of_type(T_RELEASE)
    assert [r.name for r in releases] == (["gpu-device-plugin"] if installs else [])


def test_device_plugin_runs_on_this_pools_nodes_tolerating_their_taints() -> None:
    rec, _ = render(karpenter_args(taints=TAINTS, values={"migStrategy": "single"}))
    release = rec.one(T_RELEASE)
    assert release.inputs["version"] == NVIDIA_DEVICE_PLUGIN.version
    assert release.inputs["namespace"] == "nvidia-device-plugin"
    values = release.inputs["values"]
    assert values["nodeSelector"] == {POOL_LABEL: "gpu"}
    (term,) = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term["matchExpressions"] == [{"key": POOL_LABEL, "operator": "In", "values": ["gpu"]}]
    assert tolerates_all(values["tolerations"], TAINTS)
    assert values["migStrategy"] == "single"  # the escape hatch


@needs_charts
def test_device_plugin_values_exist_in_the_chart() -> None:
    _, pool = render(karpenter_args(taints=TAINTS))
    assert (
        chart_value_errors(
            NVIDIA_DEVICE_PLUGIN.values_dir, pool.device_plugin_values(karpenter_args(taints=TAINTS))
        )
        == []
    )


# --- managed node group --------------------------------------------------------------------------------


def test_managed_group_is_fixed_size_with_imdsv2_and_no_karpenter_resources() -> None:
    rec, _ = render(managed_args(capacity_types=[CapacityType.SPOT]))
    assert rec.of_type(T_NODE_POOL) == [] and rec.of_type(T_NODE_CLASS) == []
    template = rec.one(T_LAUNCH_TEMPLATE).inputs
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1
    (volume,) = template["blockDeviceMappings"]
    assert volume["deviceName"] == "/dev/xvda"
    assert volume["ebs"] == {
        "volumeSize": 300,
        "volumeType": "gp3",
        "encrypted": "true",
        "deleteOnTermination": "true",
        "kmsKeyId": KMS_KEY,
    }
    group = rec.one(T_NODE_GROUP).inputs
    assert group["scalingConfig"] == {"minSize": 2, "maxSize": 2, "desiredSize": 2}
    assert group["capacityType"] == "SPOT"
    assert group["amiType"] == "AL2023_x86_64_NVIDIA"
    assert group["instanceTypes"] == ["g6.xlarge", "g6.2xlarge"]
    assert group["nodeRoleArn"] == NODE_ROLE_ARN
    assert group["subnetIds"] == SUBNETS
    assert group["launchTemplate"]["id"] == rec.one(T_LAUNCH_TEMPLATE).id
    assert group["taints"] == [{"key": "nvidia.com/gpu", "effect": "NO_SCHEDULE"}]


def test_managed_bottlerocket_encrypts_both_volumes_and_sizes_the_data_one() -> None:
    rec, _ = render(managed_args(ami_family=GpuAmiFamily.BOTTLEROCKET))
    assert rec.one(T_NODE_GROUP).inputs["amiType"] == "BOTTLEROCKET_x86_64_NVIDIA"
    volumes = {v["deviceName"]: v["ebs"] for v in rec.one(T_LAUNCH_TEMPLATE).inputs["blockDeviceMappings"]}
    assert volumes["/dev/xvdb"]["volumeSize"] == 300
    assert all(v["encrypted"] == "true" for v in volumes.values())


def test_two_pools_have_distinct_names() -> None:
    rec, _ = render(karpenter_args(), name="l4")
    assert {r.name for r in rec.resources if r.custom} == {
        "l4-node-class",
        "l4-node-pool",
        "l4-device-plugin",
    }
    assert spec(rec.one(T_NODE_POOL))["template"]["metadata"]["labels"][POOL_LABEL] == "l4"


# --- validation (pure) ---------------------------------------------------------------------------------


def test_valid_args_have_no_problems() -> None:
    assert validate_aws_gpu_node_pool_args(karpenter_args()) == []
    assert validate_aws_gpu_node_pool_args(managed_args()) == []


@pytest.mark.parametrize(
    ("args", "field_names"),
    [
        (karpenter_args(instance_families=[]), ["instance_families"]),
        (karpenter_args(instance_families=["m5"]), ["instance_families"]),
        (karpenter_args(instance_families=["g5g"]), ["instance_families"]),  # Arm host
        (karpenter_args(instance_families=["g6", "g6"]), ["instance_families"]),
        (karpenter_args(capacity_types=[]), ["capacity_types"]),
        (karpenter_args(capacity_types=[CapacityType.SPOT, CapacityType.SPOT]), ["capacity_types"]),
        (karpenter_args(gpu_limit=0), ["gpu_limit"]),
        (karpenter_args(volume_size_gib=50), ["volume_size_gib"]),
        (karpenter_args(consolidate_after_seconds=-1), ["consolidate_after_seconds"]),
        (karpenter_args(karpenter_node_role_name=None), ["karpenter_node_role_name"]),
        (karpenter_args(node_role_arn=NODE_ROLE_ARN), ["node_role_arn"]),
        (karpenter_args(ami_version="2026-11-01"), ["ami_version"]),
        (karpenter_args(ami_version="v1.50.0"), ["ami_version"]),  # a Bottlerocket release on AL2023
        (karpenter_args(ami_family=GpuAmiFamily.BOTTLEROCKET, ami_version="v20261101"), ["ami_version"]),
        (karpenter_args(labels={"bad key!": "x"}), ["labels"]),
        (karpenter_args(labels={"karpenter.sh/nodepool": "x"}), ["labels"]),
        (karpenter_args(labels={POOL_LABEL: "other"}), ["labels"]),
        (karpenter_args(taints=[Taint("-bad", None, TaintEffect.NO_SCHEDULE)]), ["taints[0].key"]),
        (karpenter_args(tags={"karpenter.sh/nodepool": "x"}), ["tags"]),
        (managed_args(managed_instance_types=[]), ["managed_instance_types"]),
        (managed_args(managed_instance_types=["m5.large"]), ["managed_instance_types"]),
        (managed_args(node_role_arn=None), ["node_role_arn"]),
        (managed_args(managed_node_count=0), ["managed_node_count"]),
        (managed_args(capacity_types=[CapacityType.SPOT, CapacityType.ON_DEMAND]), ["capacity_types"]),
        (managed_args(capacity_types=[]), ["capacity_types"]),
        (managed_args(karpenter_node_role_name="r"), ["karpenter_node_role_name"]),
        (managed_args(ami_version="v20261101"), ["ami_version"]),
    ],
)
def test_each_problem_names_its_field(args: AwsGpuNodePoolArgs, field_names: list[str]) -> None:
    assert error_paths(validate_aws_gpu_node_pool_args(args)) == field_names


def test_unknown_family_is_named_and_the_known_ones_listed() -> None:
    (problem,) = validate_aws_gpu_node_pool_args(karpenter_args(instance_families=["g6", "x9"]))
    assert "'x9'" in problem and all(family in problem for family in GPU_INSTANCE_FAMILIES)


def test_node_labels_allow_the_kubernetes_exception_domains() -> None:
    args = karpenter_args(labels={"node.kubernetes.io/role": "gpu", "example.com/kubernetes.io": "x"})
    assert validate_aws_gpu_node_pool_args(args) == []


def test_constructor_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        AwsGpuNodePool("GPU_pool", karpenter_args(gpu_limit=0, volume_size_gib=10))
    message = str(raised.value)
    assert "name:" in message and "gpu_limit" in message and "volume_size_gib" in message
