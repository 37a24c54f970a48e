"""Composition for AWS: a VPC and an EKS cluster made by the stack, then the same workload as on-prem.

Order of concerns: the AWS provider (region, default tags); network; EKS (KMS, logs, access entries,
pinned add-ons, system nodes); the AWS Load Balancer Controller; GPU capacity (Karpenter + a GPU NodePool,
or a managed GPU node group); the model bucket and its read-only pod identity; cert-manager's Route53
identity; the shared workload with a cloud NLB in front; a Route53 alias for the hostname.

Teardown follows the same graph backwards, which is what keeps `pulumi destroy` from hanging on an NLB or
an ENI: the gateway's LoadBalancer Service is deleted first and Pulumi waits for the controller's finalizer
(the NLB and its security groups are gone) before the controller goes; the GPU NodePool/EC2NodeClass are
deleted before Karpenter and wait for its finalizer (the GPU instances are terminated); every Kubernetes
object goes before the cluster, and the cluster before the VPC.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components._common import cluster_providers
from components.choices import CapacityType, Dns01Provider, GpuProvisioner, LoadBalancerKind, TlsMode
from components.clusters.aws.eks import EksCluster, EksClusterArgs
from components.clusters.aws.gpu_node_pool import AwsGpuNodePool, AwsGpuNodePoolArgs
from components.clusters.aws.iam import PodIdentityRole, PodIdentityRoleArgs, policy_document, statement
from components.clusters.aws.karpenter import Karpenter, KarpenterArgs
from components.clusters.aws.load_balancer_controller import (
    NLB_LOAD_BALANCER_CLASS,
    AwsLoadBalancerController,
    AwsLoadBalancerControllerArgs,
    nlb_service_annotations,
)
from components.clusters.aws.model_store import ModelStore, ModelStoreArgs
from components.clusters.aws.network import Network, NetworkArgs
from components.tls import CERT_MANAGER_NAMESPACE, cert_manager_service_account
from stacks.config import StackConfig
from stacks.config_aws import AwsConfig
from stacks.egress import builds_private_path
from stacks.rules_aws import gpu_limit
from stacks.workload import NAME, ClusterContext, GatewayExposure, deploy_workload

#: The EKS Pod Identity agent: pods fetch their role's credentials from it (port 80, link-local).
POD_IDENTITY_AGENT = ("169.254.170.23/32", 80)


def cluster_name_for(project: str, stack: str) -> str:
    """One EKS cluster per stack, named after it (subnet tags and IAM scopes need the exact name)."""
    return f"{project}-{stack}"[:100]


def deploy_aws(cfg: StackConfig) -> None:
    assert cfg.aws is not None  # the schema requires the section for platform aws
    a = cfg.aws
    cluster_name = cluster_name_for(pulumi.get_project(), pulumi.get_stack())
    tags = {"inferstack:stack": pulumi.get_stack(), "inferstack:cluster": cluster_name}
    aws_provider = aws.Provider("aws", region=a.region, default_tags=aws.ProviderDefaultTagsArgs(tags=tags))
    on_aws = pulumi.ResourceOptions(providers=[aws_provider])

    network = Network(
        "network",
        NetworkArgs(
            cidr=a.network.vpc_cidr,
            availability_zone_count=a.network.availability_zones,
            nat_gateway_per_zone=a.network.nat_gateway_per_zone,
            cluster_name=cluster_name,
            s3_interface_endpoint=builds_private_path(cfg),
        ),
        opts=on_aws,
    )
    eks = EksCluster(
        "eks",
        EksClusterArgs(
            cluster_name=cluster_name,
            kubernetes_version=cfg.cluster.kubernetes_version,
            vpc_id=network.vpc_id,
            private_subnet_ids=network.private_subnet_ids,
            public_access_cidrs=a.api_endpoint.public_access_cidrs,
            private_access_cidrs=a.api_endpoint.private_access_cidrs,
            admin_principal_arns=a.api_endpoint.admin_principal_arns,
            system_node_instance_types=a.system_nodes.instance_types,
            system_node_min=a.system_nodes.min_size,
            system_node_desired=a.system_nodes.desired_size,
            system_node_max=a.system_nodes.max_size,
            system_node_disk_gib=a.system_nodes.disk_gib,
        ),
        # Nodes and add-ons need the NAT routes to pull images; without them a node group never joins.
        opts=pulumi.ResourceOptions(providers=[aws_provider], depends_on=network.nat_gateways),
    )
    kubernetes, crds = cluster_providers(kubeconfig=eks.kubeconfig, namespace=cfg.cluster.namespace)
    # Controllers need nodes to run on and their add-ons (DNS, CNI) in place.
    on_cluster = pulumi.ResourceOptions(
        providers=[aws_provider, kubernetes], depends_on=[eks.system_node_group, *eks.addons]
    )

    lb_controller = AwsLoadBalancerController(
        "aws-lb-controller",
        AwsLoadBalancerControllerArgs(cluster_name=eks.cluster_name, vpc_id=network.vpc_id, region=a.region),
        opts=on_cluster,
    )

    pool: AwsGpuNodePool | None = None
    if cfg.uses_gpu:
        pool = _gpu_capacity(cfg, a, eks, network, on_cluster, aws_provider, crds)

    server_after: list[pulumi.Resource] = [pool] if pool is not None else []
    if cfg.model.scheme == "s3":
        bucket, prefix = cfg.model.bucket_and_prefix
        server_after.append(
            ModelStore(
                "model-store",
                ModelStoreArgs(
                    bucket_name=bucket,
                    prefix=prefix,
                    create_bucket=a.model_store.create_bucket,
                    existing_kms_key_arn=a.model_store.existing_kms_key_arn,
                    force_destroy=a.model_store.force_destroy,
                    cluster_name=eks.cluster_name,
                    namespace=cfg.cluster.namespace,
                    # ModelServer names its ServiceAccount after the component: the first model's (the
                    # stack's own model; the schema keeps every other model off the store).
                    service_account=cfg.served[0].resource_name,
                ),
                opts=on_aws,
            )
        )

    tls_after: list[pulumi.Resource] = []
    dns01 = cfg.tls.acme.dns01
    zone_id = (dns01.route53_hosted_zone_id if dns01 else None) or a.route53_zone_id
    if cfg.tls.mode is TlsMode.ACME and dns01 is not None and dns01.provider is Dns01Provider.ROUTE53:
        assert zone_id is not None  # the schema requires a zone for route53 on AWS
        tls_after.append(
            PodIdentityRole(
                "cert-manager-dns",
                PodIdentityRoleArgs(
                    cluster_name=eks.cluster_name,
                    namespace=CERT_MANAGER_NAMESPACE,
                    service_account=cert_manager_service_account(NAME),
                    policy=route53_dns01_policy(zone_id),
                    description="cert-manager: DNS-01 TXT records in one hosted zone",
                ),
                opts=on_aws,
            )
        )

    workload = deploy_workload(
        cfg,
        ClusterContext(
            provider=kubernetes,
            crd_provider=crds,
            placement=pool,
            exposure=GatewayExposure(
                kind=LoadBalancerKind.CLOUD,
                cloud_service_annotations=nlb_service_annotations(
                    a.load_balancer_scheme.value, cfg.gateway.allowed_source_cidrs
                ),
                cloud_load_balancer_class=NLB_LOAD_BALANCER_CLASS,
            ),
            cluster_ready=[eks.system_node_group, *eks.addons],
            server_after=server_after,
            gateway_after=[lb_controller],
            tls_after=tls_after,
            model_extra_env={"AWS_REGION": a.region, "AWS_DEFAULT_REGION": a.region},
            # Pod Identity: the pod asks the node's agent only; the agent calls EKS Auth from the node.
            model_extra_egress=[POD_IDENTITY_AGENT],
            model_store_private_cidrs=network.s3_private_cidrs,
            # The API server as pods reach it: the `kubernetes` Service's endpoints are the cluster's
            # cross-account ENIs, which EKS places in the subnets it was given, inside the VPC (EKS user
            # guide, "Amazon EKS networking": "EKS creates up to 4 cross-account elastic network interfaces
            # in the subnets that you specify"); and the Service's ClusterIP itself, for a network policy
            # agent that matches before DNAT. The stack sets no service range, so EKS picks 10.100.0.0/16
            # or 172.20.0.0/16 (EKS API KubernetesNetworkConfigRequest.serviceIpv4Cidr) and the Service is
            # the range's first address: both /32s, port 443 only.
            api_server_cidrs=[a.network.vpc_cidr, "10.100.0.1/32", "172.20.0.1/32"],
        ),
    )

    hostname = workload.gateway.load_balancer_hostname
    if a.route53_zone_id and hostname is not None:
        # An NLB's canonical hosted zone is per region: terraform-provider-aws
        # internal/service/elbv2/hosted_zone_id_data_source.go (v6, bundled by pulumi-aws 7.51.1) reads it
        # from a region table keyed by `meta.(*conns.AWSClient).Region(ctx)`, the answering provider's
        # region. Without `provider=` the default provider answers, whose region is AWS_REGION, and Route53
        # rejects the alias when that differs from aws.region. `inferstack check` rule: invoke-provider.
        nlb_zone = aws.lb.get_hosted_zone_id_output(
            load_balancer_type="network", opts=pulumi.InvokeOutputOptions(provider=aws_provider)
        )
        aws.route53.Record(
            "hostname",
            zone_id=a.route53_zone_id,
            name=cfg.gateway.hostname,
            type="A",
            aliases=[
                aws.route53.RecordAliasArgs(
                    name=hostname,
                    zone_id=nlb_zone.id,
                    evaluate_target_health=True,
                )
            ],
            opts=pulumi.ResourceOptions(provider=aws_provider),
        )

    pulumi.export("region", a.region)
    pulumi.export("cluster_name", eks.cluster_name)
    pulumi.export("kubeconfig", eks.kubeconfig)
    pulumi.export("load_balancer_hostname", hostname)


#: The EC2 Spot service-linked role (AWSServiceRoleForEC2Spot). Karpenter's getting-started guide
#: (aws/karpenter-provider-aws website/content/en/docs/getting-started/getting-started-with-karpenter/
#: _index.md, step06-add-spot-role.sh) says: unless the account has already used EC2 Spot, create it with
#: `aws iam create-service-linked-role --aws-service-name spot.amazonaws.com`, or launches fail with
#: ServiceLinkedRoleCreationNotPermitted.
SPOT_SERVICE = "spot.amazonaws.com"
#: IAM puts a service-linked role under /aws-service-role/<service>/ (IAM user guide, "Using service-linked
#: roles"); the account's Spot role, if any, is the one role under this path.
SPOT_ROLE_PATH = f"/aws-service-role/{SPOT_SERVICE}/"


def account_has_spot_role(aws_provider: aws.Provider) -> bool:
    """Whether the stack's account already has the EC2 Spot service-linked role.

    IAM ListRoles under SPOT_ROLE_PATH, on the stack's provider (its account and credentials; `inferstack
    check` rule invoke-provider). The plain invoke, not the `_output` form: the program decides from the
    answer whether to declare a resource, and resources are never declared inside `apply()`. The deployer
    needs `iam:ListRoles`.
    """
    roles = aws.iam.get_roles(path_prefix=SPOT_ROLE_PATH, opts=pulumi.InvokeOptions(provider=aws_provider))
    return bool(roles.names)


def spot_service_linked_role(
    cfg: StackConfig, a: AwsConfig, aws_provider: aws.Provider
) -> aws.iam.ServiceLinkedRole | None:
    """The account's EC2 Spot service-linked role, where Karpenter may buy spot and the account has none yet.

    There is one per account, and IAM refuses to create it twice ("Service role name AWSServiceRoleForEC2Spot
    has been taken in this account"), so the program looks it up first (account_has_spot_role) and declares
    it only when the lookup finds none: a first `pulumi up` in a fresh account creates it; an account that
    ever launched spot, a second stack, or this stack after a destroy leaves it alone. Retained on delete:
    other stacks and tools in the account may launch spot with it, and the next `pulumi up` of the stack
    that created it finds it and stops declaring it, which Pulumi carries out by forgetting it, not deleting
    it (the preview lists it as a delete).

    `aws.create_spot_service_linked_role` is an override, not the decision: true (the default) = create when
    the lookup finds none; false = never create and never look up (for a deployer without `iam:ListRoles`,
    or an account where someone else owns the role). Only for Karpenter with spot in
    `aws.gpu_nodes.capacity_types`: a managed node group launches through EC2 Auto Scaling and its own
    service-linked role (not verified here). Returns None when nothing is declared.
    """
    nodes = a.gpu_nodes
    if not (
        cfg.uses_gpu
        and nodes.provisioner is GpuProvisioner.KARPENTER
        and CapacityType.SPOT in nodes.capacity_types
        and a.create_spot_service_linked_role
    ):
        return None
    if account_has_spot_role(aws_provider):
        return None
    return aws.iam.ServiceLinkedRole(
        "spot-service-linked-role",
        aws_service_name=SPOT_SERVICE,
        description="EC2 Spot: lets Karpenter launch spot instances (created by InferStack)",
        opts=pulumi.ResourceOptions(provider=aws_provider, retain_on_delete=True),
    )


def _gpu_capacity(
    cfg: StackConfig,
    a: AwsConfig,
    eks: EksCluster,
    network: Network,
    on_cluster: pulumi.ResourceOptions,
    aws_provider: aws.Provider,
    crds: k8s.Provider,
) -> AwsGpuNodePool:
    nodes = a.gpu_nodes
    karpenter = None
    if nodes.provisioner is GpuProvisioner.KARPENTER:
        karpenter = Karpenter(
            "karpenter",
            KarpenterArgs(
                cluster_name=eks.cluster_name,
                cluster_endpoint=eks.endpoint,
                volume_kms_key_arns=[eks.kms_key_arn],
                crd_provider=crds,
            ),
            opts=on_cluster,
        )
    return AwsGpuNodePool(
        NAME,
        AwsGpuNodePoolArgs(
            provisioner=nodes.provisioner,
            ami_family=nodes.ami_family,
            ami_version=nodes.ami_version,
            instance_families=nodes.instance_families,
            capacity_types=nodes.capacity_types,
            gpu_limit=gpu_limit(cfg),
            consolidate_after_seconds=nodes.consolidate_after_seconds,
            volume_size_gib=nodes.volume_size_gib,
            kms_key_arn=eks.kms_key_arn,
            cluster_name=eks.cluster_name,
            subnet_ids=network.private_subnet_ids,
            security_group_ids=eks.cluster_security_group_id.apply(lambda sg: [sg]),
            karpenter_node_role_name=karpenter.node_role_name if karpenter else None,
            depends_on_karpenter=karpenter.release if karpenter else None,
            spot_service_linked_role=spot_service_linked_role(cfg, a, aws_provider),
            managed_instance_types=nodes.managed_instance_types,
            managed_node_count=nodes.managed_node_count,
            # A managed GPU node group joins with the system nodes' role (EKS adds its access entry).
            node_role_arn=eks.node_role_arn if karpenter is None else None,
        ),
        opts=on_cluster,
    )


def route53_dns01_policy(zone_id: str) -> dict[str, object]:
    """cert-manager's DNS-01 rights: TXT changes in one zone, reading change status, finding the zone."""
    return policy_document(
        statement(
            ["route53:ChangeResourceRecordSets"],
            [f"arn:aws:route53:::hostedzone/{zone_id}"],
            sid="TxtRecordsInOneZone",
            condition={"ForAllValues:StringEquals": {"route53:ChangeResourceRecordSetsRecordTypes": ["TXT"]}},
        ),
        statement(["route53:GetChange"], ["arn:aws:route53:::change/*"], sid="ChangeStatus"),
        statement(["route53:ListHostedZonesByName"], ["*"], sid="FindZone"),
    )
