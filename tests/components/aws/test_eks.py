"""EksCluster: secrets under our rotating key, a private (or allow-listed) endpoint, every control-plane log,
access entries instead of aws-auth, pinned add-ons in the right order, and system nodes with IMDSv2 only."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from pulumi.runtime.sync_await import _sync_await

from components.clusters.aws.eks import (
    ADDONS_AFTER_NODES,
    ADDONS_BEFORE_NODES,
    CLUSTER_ADMIN_POLICY_ARN,
    DEFAULT_ADDON_VERSIONS,
    EksCluster,
    EksClusterArgs,
    addon_versions_for,
    kubeconfig,
    validate_eks_cluster_args,
)
from inferstack.planning import recording
from inferstack.planning.recording import RecordedResource, Recording, run_program

CLUSTER = "aws:eks/cluster:Cluster"
KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ADDON = "aws:eks/addon:Addon"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
ACCESS_POLICY = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
NAME = "inferstack-prod"
ADMINS = ["arn:aws:iam::123456789012:role/platform-admin", "arn:aws:iam::123456789012:user/oncall"]
SUBNETS = ["subnet-0aaa", "subnet-0bbb", "subnet-0ccc"]


def cluster_args(**changes: Any) -> EksClusterArgs:
    base = EksClusterArgs(
        cluster_name=NAME,
        kubernetes_version="1.34",
        vpc_id="vpc-0123456789abcdef0",
        private_subnet_ids=list(SUBNETS),
        admin_principal_arns=list(ADMINS),
        tags={"team": "ml-platform"},
    )
    return dataclasses.replace(base, **changes)


def render(args: EksClusterArgs, name: str = "eks") -> tuple[Recording, EksCluster]:
    made: list[EksCluster] = []
    rec = run_program(lambda: made.append(EksCluster(name, args)))
    return rec, made[0]


@pytest.fixture(scope="module")
def default() -> tuple[Recording, EksCluster]:
    """One rendering shared by the tests that only read it (keeps the file fast)."""
    mp = pytest.MonkeyPatch()
    original = recording._RecordingMocks.call
    mp.setattr(recording._RecordingMocks, "call", lambda self, a: (original(self, a)[0], []))
    try:
        return render(cluster_args())
    finally:
        mp.undo()


def addons(rec: Recording) -> dict[str, RecordedResource]:
    return {a.inputs["addonName"]: a for a in rec.of_type(ADDON)}


def resolve(output: Any) -> Any:
    return _sync_await(output.future())


# --- encryption and logs -----------------------------------------------------------------------------


def test_secrets_are_encrypted_with_our_rotating_key(default: tuple[Recording, EksCluster]) -> None:
    rec, eks = default
    key = rec.one(KEY)
    assert key.inputs["enableKeyRotation"] is True
    assert key.inputs["deletionWindowInDays"] == 30
    (encryption,) = [rec.one(CLUSTER).inputs["encryptionConfig"]]
    assert encryption["resources"] == ["secrets"]
    assert encryption["provider"]["keyArn"] == key.outputs["arn"]
    assert resolve(eks.kms_key_arn) == key.outputs["arn"]


def test_key_policy_lets_the_account_administer_and_logs_use_it_for_this_cluster_only(
    default: tuple[Recording, EksCluster],
) -> None:
    rec, _ = default
    policy = json.loads(rec.one(KEY).inputs["policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    admin = by_sid["AccountAdministers"]
    assert admin["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    logs = by_sid["CloudWatchLogsForTheClusterLogGroup"]
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"] == (
        f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/eks/{NAME}/cluster"
    )
    assert "kms:*" not in logs["Action"]
    for sid in ("AutoScalingForNodeVolumes", "AutoScalingGrantsForNodeVolumes"):
        condition = by_sid[sid]["Condition"]["StringEquals"]
        assert condition["aws:PrincipalArn"].endswith("/AWSServiceRoleForAutoScaling")
        assert condition["kms:CallerAccount"] == "123456789012"
    assert by_sid["AutoScalingGrantsForNodeVolumes"]["Condition"]["Bool"] == {
        "kms:GrantIsForAWSResource": "true"
    }


def test_cluster_role_may_use_the_key_for_envelope_encryption(default: tuple[Recording, EksCluster]) -> None:
    rec, _ = default
    policy = json.loads(rec.one("aws:iam/rolePolicy:RolePolicy", "-cluster-kms").inputs["policy"])
    (stmt,) = policy["Statement"]
    assert stmt["Resource"] == [rec.one(KEY).outputs["arn"]]
    assert {"kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"} <= set(stmt["Action"])


def test_all_five_log_types_go_to_our_log_group_made_first(default: tuple[Recording, EksCluster]) -> None:
    rec, _ = default
    cluster = rec.one(CLUSTER)
    assert sorted(cluster.inputs["enabledClusterLogTypes"]) == sorted(
        ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    )
    logs = rec.one(LOG_GROUP)
    assert logs.inputs["name"] == f"/aws/eks/{NAME}/cluster"
    assert logs.inputs["retentionInDays"] == 90
    assert logs.inputs["kmsKeyId"] == rec.one(KEY).outputs["arn"]
    assert logs.urn in cluster.dependencies


# --- endpoint ----------------------------------------------------------------------------------------


def test_no_public_cidrs_means_a_private_only_endpoint(default: tuple[Recording, EksCluster]) -> None:
    rec, _ = default
    vpc = rec.one(CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False
    assert not vpc.get("publicAccessCidrs")
    assert vpc["subnetIds"] == SUBNETS


def test_public_endpoint_only_for_the_listed_networks() -> None:
    rec, _ = render(cluster_args(public_access_cidrs=["203.0.113.0/24"]))
    vpc = rec.one(CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert vpc["endpointPrivateAccess"] is True


@pytest.mark.parametrize(
    "open_cidrs", [["0.0.0.0/0"], ["0.0.0.0/1", "128.0.0.0/1"], ["0.0.0.0/2", "64.0.0.0/2"]]
)
def test_an_endpoint_open_to_the_internet_is_refused(open_cidrs: list[str]) -> None:
    problems = validate_eks_cluster_args(cluster_args(public_access_cidrs=["203.0.113.0/24", *open_cidrs]))
    assert len(problems) == 1
    assert problems[0].startswith("public_access_cidrs: open to the internet"), problems
    with pytest.raises(ValueError, match="public_access_cidrs"):
        EksCluster("eks", cluster_args(public_access_cidrs=open_cidrs))


def test_private_access_networks_reach_443_on_the_control_plane_only() -> None:
    rec, _ = render(cluster_args(private_access_cidrs=["10.50.0.0/16", "192.168.8.0/24"]))
    group = rec.one(SECURITY_GROUP, "-api-access")
    rules = rec.of_type(INGRESS)
    assert sorted(r.inputs["cidrIpv4"] for r in rules) == ["10.50.0.0/16", "192.168.8.0/24"]
    for rule in rules:
        assert rule.inputs["securityGroupId"] == group.id
        assert (rule.inputs["ipProtocol"], rule.inputs["fromPort"], rule.inputs["toPort"]) == (
            "tcp",
            443,
            443,
        )
    # On the control plane's ENIs, and not on the nodes (whose launch template names no groups, so they get
    # EKS's cluster security group, not this one).
    assert rec.one(CLUSTER).inputs["vpcConfig"]["securityGroupIds"] == [group.id]
    assert rec.one(SECURITY_GROUP, "-api-access").inputs["vpcId"] == "vpc-0123456789abcdef0"
    lt = rec.one(LAUNCH_TEMPLATE).inputs
    assert not lt.get("vpcSecurityGroupIds") and not lt.get("networkInterfaces")


def test_no_private_access_networks_no_rules(default: tuple[Recording, EksCluster]) -> None:
    rec, _ = default
    assert rec.of_type(INGRESS) == []


# --- access ------------------------------------------------------------------------------------------


def test_access_entries_only_no_aws_auth_configmap(default: tuple[Recording, EksCluster]) -> None:
    rec, _ = default
    access = rec.one(CLUSTER).inputs["accessConfig"]
    assert access["authenticationMode"] == "API"
    assert access["bootstrapClusterCreatorAdminPermissions"] is True
    assert not [r for r in rec.resources if r.type.startswith("kubernetes:")]
    assert not [r for r in rec.resources if "aws-auth" in json.dumps(r.inputs)]


def test_each_admin_principal_gets_an_entry_and_cluster_wide_admin(
    default: tuple[Recording, EksCluster],
) -> None:
    rec, _ = default
    entries = {e.inputs["principalArn"]: e for e in rec.of_type(ACCESS_ENTRY)}
    assert sorted(entries) == sorted(ADMINS)
    assert all(e.inputs["clusterName"] == NAME for e in entries.values())
    policies = {p.inputs["principalArn"]: p for p in rec.of_type(ACCESS_POLICY)}
    assert sorted(policies) == sorted(ADMINS)
    for arn, association in policies.items():
        assert association.inputs["policyArn"] == CLUSTER_ADMIN_POLICY_ARN
        assert association.inputs["accessScope"] == {"type": "cluster"}
        assert association.inputs["clusterName"] == NAME
        assert entries[arn].urn in association.dependencies  # the entry exists before its policy


def test_dropping_an_admin_leaves_the_others_entries_alone(default: tuple[Recording, EksCluster]) -> None:
    rec, _ = default
    before = {e.inputs["principalArn"]: e.name for e in rec.of_type(ACCESS_ENTRY)}
    after_rec, _ = render(cluster_args(admin_principal_arns=[ADMINS[1]]))
    (entry,) = after_rec.of_type(ACCESS_ENTRY)
    assert entry.name == before[ADMINS[1]]
    assert after_rec.one(ACCESS_POLICY).name == f"{entry.name}-policy"


def test_no_admins_no_entries() -> None:
    rec, _ = render(cluster_args(admin_principal_arns=[]))
    assert rec.of_type(ACCESS_ENTRY) == [] and rec.of_type(ACCESS_POLICY) == []


# --- add-ons -----------------------------------------------------------------------------------------


def test_every_addon_is_managed_and_pinned(default: tuple[Recording, EksCluster]) -> None:
    rec, _ = default
    found = addons(rec)
    assert (
        sorted(found) == sorted([*ADDONS_BEFORE_NODES, *ADDONS_AFTER_NODES]) == sorted(DEFAULT_ADDON_VERSIONS)
    )
    for addon_name, addon in found.items():
        assert addon.inputs["addonVersion"] == DEFAULT_ADDON_VERSIONS[addon_name]
        assert addon.inputs["addonVersion"].startswith("v") and "-eksbuild." in addon.inputs["addonVersion"]
        assert addon.inputs["clusterName"] == NAME
        assert (
            addon.inputs["resolveConflictsOnCreate"]
            == addon.inputs["resolveConflictsOnUpdate"]
            == "OVERWRITE"
        )
    assert rec.one(CLUSTER).inputs["bootstrapSelfManagedAddons"] is False


def test_vpc_cni_enforces_network_policies(default: tuple[Recording, EksCluster]) -> None:
    rec, _ = default
    assert json.loads(addons(rec)["vpc-cni"].inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}


def test_ebs_csi_controller_has_its_own_pod_identity_role(default: tuple[Recording, EksCluster]) -> None:
    rec, _ = default
    (association,) = addons(rec)["aws-ebs-csi-driver"].inputs["podIdentityAssociations"]
    assert association["serviceAccount"] == "ebs-csi-controller-sa"
    (role,) = [r for r in rec.of_type(ROLE) if r.outputs["arn"] == association["roleArn"]]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(trust["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
    attached = [
        a.inputs["policyArn"] for a in rec.of_type(ATTACHMENT) if a.inputs["role"] == role.outputs["name"]
    ]
    assert attached == ["arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"]


def test_node_daemonsets_come_before_nodes_and_deployments_after(
    default: tuple[Recording, EksCluster],
) -> None:
    rec, _ = default
    found = addons(rec)
    nodes = rec.one(NODE_GROUP)
    for early in ADDONS_BEFORE_NODES:
        assert found[early].urn in nodes.dependencies, early
    for late in ADDONS_AFTER_NODES:
        assert nodes.urn in found[late].dependencies, late


def test_addon_versions_can_be_overridden_one_at_a_time() -> None:
    args = cluster_args(kubernetes_version="1.35", addon_versions={"kube-proxy": "v1.35.2-eksbuild.4"})
    assert validate_eks_cluster_args(args) == []
    versions = addon_versions_for(args)
    assert versions["kube-proxy"] == "v1.35.2-eksbuild.4"
    assert versions["coredns"] == DEFAULT_ADDON_VERSIONS["coredns"]


# --- system nodes ------------------------------------------------------------------------------------


def test_launch_template_requires_imdsv2_with_hop_limit_one(default: tuple[Recording, EksCluster]) -> None:
    rec, _ = default
    metadata = rec.one(LAUNCH_TEMPLATE).inputs["metadataOptions"]
    assert metadata["httpTokens"] == "required"
    assert metadata["httpPutResponseHopLimit"] == 1
    assert metadata["httpEndpoint"] == "enabled"


def test_root_volume_is_encrypted_gp3_with_our_key(default: tuple[Recording, EksCluster]) -> None:
    rec, _ = default
    (mapping,) = rec.one(LAUNCH_TEMPLATE).inputs["blockDeviceMappings"]
    assert mapping["deviceName"] == "/dev/xvda"
    ebs = mapping["ebs"]
    assert ebs["encrypted"] == "true"
    assert ebs["kmsKeyId"] == rec.one(KEY).outputs["arn"]
    assert ebs["volumeType"] == "gp3"
    assert ebs["volumeSize"] == 50


def test_system_node_group_uses_the_template_in_private_subnets(
    default: tuple[Recording, EksCluster],
) -> None:
    rec, eks = default
    lt = rec.one(LAUNCH_TEMPLATE)
    nodes = rec.one(NODE_GROUP).inputs
    assert nodes["launchTemplate"] == {"id": lt.id, "version": "1"}
    assert nodes["subnetIds"] == SUBNETS
    assert nodes["capacityType"] == "ON_DEMAND"
    assert nodes["amiType"] == "AL2023_x86_64_STANDARD"
    assert nodes["instanceTypes"] == ["m7i.large"]
    assert nodes["scalingConfig"] == {"minSize": 2, "desiredSize": 2, "maxSize": 3}
    assert nodes["updateConfig"] == {"maxUnavailable": 1}
    assert nodes["labels"] == {"inferstack.io/node-role": "system"}
    assert nodes["version"] == "1.34"
    assert "diskSize" not in nodes  # the template owns the disk; EKS refuses both
    assert eks.system_node_group is not None


def test_node_role_has_the_worker_policies_and_only_ec2_may_assume_it(
    default: tuple[Recording, EksCluster],
) -> None:
    rec, eks = default
    nodes = rec.one(NODE_GROUP).inputs
    (role,) = [r for r in rec.of_type(ROLE) if r.outputs["arn"] == nodes["nodeRoleArn"]]
    assert resolve(eks.node_role_arn) == role.outputs["arn"]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": ["sts:AssumeRole"]}
    ]
    attached = sorted(
        a.inputs["policyArn"] for a in rec.of_type(ATTACHMENT) if a.inputs["role"] == role.outputs["name"]
    )
    assert attached == sorted(
        [
            "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
            "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
            "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
        ]
    )


def test_cluster_role_trusts_eks_with_the_cluster_policy(default: tuple[Recording, EksCluster]) -> None:
    rec, _ = default
    cluster = rec.one(CLUSTER).inputs
    (role,) = [r for r in rec.of_type(ROLE) if r.outputs["arn"] == cluster["roleArn"]]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust[0]["Principal"] == {"Service": "eks.amazonaws.com"}
    attached = [
        a.inputs["policyArn"] for a in rec.of_type(ATTACHMENT) if a.inputs["role"] == role.outputs["name"]
    ]
    assert attached == ["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"]
    assert cluster["name"] == NAME and cluster["version"] == "1.34"


# --- outputs and names -------------------------------------------------------------------------------


def test_outputs_come_from_the_cluster(default: tuple[Recording, EksCluster]) -> None:
    rec, eks = default
    out = rec.one(CLUSTER).outputs
    assert resolve(eks.cluster_name) == NAME
    assert resolve(eks.endpoint) == out["endpoint"]
    assert resolve(eks.certificate_authority_data) == out["certificateAuthority"]["data"]
    assert resolve(eks.oidc_issuer_url) == out["identities"][0]["oidcs"][0]["issuer"]
    assert resolve(eks.cluster_security_group_id) == out["vpcConfig"]["clusterSecurityGroupId"]


def test_kubeconfig_output_is_secret_and_points_at_the_cluster(default: tuple[Recording, EksCluster]) -> None:
    rec, eks = default
    assert _sync_await(eks.kubeconfig.is_secret()) is True
    config = json.loads(resolve(eks.kubeconfig))
    out = rec.one(CLUSTER).outputs
    assert config["clusters"][0]["cluster"]["server"] == out["endpoint"]
    assert (
        config["clusters"][0]["cluster"]["certificate-authority-data"] == out["certificateAuthority"]["data"]
    )
    assert config["users"][0]["user"]["exec"]["args"][3] == NAME


def test_kubeconfig_runs_aws_eks_get_token_for_the_cluster() -> None:
    config = json.loads(kubeconfig("c1", "https://ABC.gr7.eu-west-1.eks.amazonaws.com", "Q0E=", "eu-west-1"))
    (cluster,) = config["clusters"]
    (user,) = config["users"]
    (context,) = config["contexts"]
    assert cluster["cluster"] == {
        "server": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
        "certificate-authority-data": "Q0E=",
    }
    exec_ = user["user"]["exec"]
    assert exec_["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert exec_["command"] == "aws"
    assert exec_["args"] == [
        "eks",
        "get-token",
        "--cluster-name",
        "c1",
        "--region",
        "eu-west-1",
        "--output",
        "json",
    ]
    assert context["context"] == {"cluster": cluster["name"], "user": user["name"]}
    assert config["current-context"] == context["name"]
    assert "token" not in json.dumps(user["user"]).replace("get-token", "")  # no static credential


def test_children_are_named_after_the_component_and_parented(default: tuple[Recording, EksCluster]) -> None:
    rec, _ = default
    for r in rec.resources:
        if r.custom:
            assert r.name.startswith("eks-"), r.name
            assert (r.parent or "").endswith("inferstack:aws:EksCluster::eks"), r.name


# --- validation --------------------------------------------------------------------------------------


def test_default_args_have_no_problems() -> None:
    assert validate_eks_cluster_args(cluster_args()) == []


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"cluster_name": "has space"}, "cluster_name"),
        ({"cluster_name": "x" * 101}, "cluster_name"),
        ({"kubernetes_version": "1.34.1"}, "kubernetes_version"),
        ({"kubernetes_version": "v1.34"}, "kubernetes_version"),
        ({"public_access_cidrs": ["not-a-cidr"]}, "public_access_cidrs[0]"),
        ({"public_access_cidrs": ["203.0.113.7/24"]}, "public_access_cidrs[0]"),
        ({"public_access_cidrs": ["2001:db8::/32"]}, "public_access_cidrs[0]"),
        ({"public_access_cidrs": ["203.0.113.0/24", "203.0.113.0/24"]}, "public_access_cidrs"),
        ({"private_access_cidrs": ["0.0.0.0/0"]}, "private_access_cidrs"),
        ({"private_access_cidrs": ["10.0.0.0/33"]}, "private_access_cidrs[0]"),
        (
            {"admin_principal_arns": ["arn:aws:sts::123456789012:assumed-role/admin/me"]},
            "admin_principal_arns[0]",
        ),
        ({"admin_principal_arns": [ADMINS[0], ADMINS[0]]}, "admin_principal_arns"),
        ({"system_node_instance_types": []}, "system_node_instance_types"),
        ({"system_node_instance_types": ["m7g.large"]}, "system_node_instance_types[0]"),
        ({"system_node_min": 0, "system_node_desired": 0}, "system_node_min"),
        (
            {"system_node_min": 3, "system_node_desired": 2},
            "system_node_min/system_node_desired/system_node_max",
        ),
        ({"system_node_desired": 4}, "system_node_min/system_node_desired/system_node_max"),
        ({"system_node_disk_gib": 10}, "system_node_disk_gib"),
        ({"log_retention_days": 45}, "log_retention_days"),
        ({"addon_versions": {"metrics-server": "v0.8.1-eksbuild.4"}}, "addon_versions"),
        ({"addon_versions": {"coredns": "latest"}}, "addon_versions"),
        ({"kubernetes_version": "1.35"}, "addon_versions"),  # kube-proxy pinned for 1.34
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], field_name: str) -> None:
    problems = validate_eks_cluster_args(cluster_args(**changes))
    assert [p.split(": ")[0] for p in problems] == [field_name]


def test_messages_say_the_fix() -> None:
    (host_bits,) = validate_eks_cluster_args(cluster_args(public_access_cidrs=["203.0.113.7/24"]))
    assert "did you mean 203.0.113.0/24" in host_bits
    (kube_proxy,) = validate_eks_cluster_args(cluster_args(kubernetes_version="1.35"))
    assert "kube-proxy" in kube_proxy and "v1.35" in kube_proxy


@pytest.mark.parametrize("old", ["v1.21.1-eksbuild.5", "v1.20.4-eksbuild.1"])
def test_a_vpc_cni_with_the_deny_all_agent_is_refused(old: str) -> None:
    # vpc-cni v1.21.1 builds ship network-policy agent v1.3.1/v1.3.2 (aws/aws-network-policy-agent#553).
    (problem,) = validate_eks_cluster_args(cluster_args(addon_versions={"vpc-cni": old}))
    assert problem.startswith("addon_versions: vpc-cni") and "v1.21.2" in problem
    assert validate_eks_cluster_args(cluster_args(addon_versions={"vpc-cni": "v1.22.1-eksbuild.1"})) == []


def test_constructor_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        EksCluster("eks", cluster_args(public_access_cidrs=["0.0.0.0/0"], system_node_disk_gib=1))
    assert "public_access_cidrs" in str(raised.value) and "system_node_disk_gib" in str(raised.value)
