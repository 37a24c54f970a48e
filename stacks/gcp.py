"""Composition for GCP: a VPC and a GKE Standard cluster made by the stack, then the same workload as on-prem.

Order of concerns: the GCP provider (project, region, default labels); the project's APIs; network (VPC,
subnet with pod and Service ranges, Cloud NAT, firewall); GKE (KMS-encrypted Secrets, private nodes,
Workload Identity, Shielded Nodes, Dataplane V2, a system node pool); the GPU node pool (GKE installs the
driver and device plugin, autoscaling from 0); the model bucket and its read-only grant to the serving
ServiceAccount; cert-manager's Cloud DNS grant; the shared workload with a GKE L4 load balancer in front;
a Cloud DNS record for the hostname.

Identity is Workload Identity Federation for GKE with direct grants: IAM roles go to the Kubernetes
ServiceAccount's principal (principal://.../subject/ns/<ns>/sa/<name>), so there is no Google service
account to impersonate and no key anywhere.

Teardown follows the graph backwards: the gateway's LoadBalancer Service is deleted first, and GKE's
service controller removes the forwarding rule and its firewall rules while the cluster still runs; every
Kubernetes object goes before the cluster, the GPU pool before the cluster, the cluster before the subnet,
NAT and VPC. The project's APIs are left enabled (other things in the project may use them), and Cloud KMS
key rings cannot be deleted at all: they and their keys are forgotten, not destroyed.
"""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_gcp as gcp

from components._common import cluster_providers
from components.choices import Dns01Provider, LoadBalancerKind, TlsMode
from components.clusters.gcp.apis import RESOURCE_MANAGER, GcpFeature, apis_for
from components.clusters.gcp.gke import GkeCluster, GkeClusterArgs
from components.clusters.gcp.gpu_node_pool import GcpGpuNodePool, GcpGpuNodePoolArgs
from components.clusters.gcp.load_balancer import gke_service_exposure
from components.clusters.gcp.model_store import GcsModelStore, GcsModelStoreArgs
from components.clusters.gcp.network import Network, NetworkArgs
from components.clusters.gcp.workload_identity import WORKLOAD_IDENTITY_EGRESS, workload_identity_principal
from components.tls import CERT_MANAGER_NAMESPACE, cert_manager_service_account
from stacks.config import StackConfig
from stacks.config_gcp import GcpConfig
from stacks.egress import builds_private_path
from stacks.rules_gcp import gcp_max_gpu_nodes
from stacks.workload import NAME, ClusterContext, GatewayExposure, deploy_workload

#: cert-manager's Cloud DNS rights, granted on one managed zone only.
CLOUD_DNS_ROLE = "roles/dns.admin"


def cluster_name_for(project: str, stack: str) -> str:
    """One GKE cluster per stack, named after it (GKE: at most 40 characters, no trailing hyphen)."""
    return f"{project}-{stack}".lower()[:40].rstrip("-")


#: What every GCP stack makes: VPC and NAT, a GKE cluster with Cloud Logging and system metrics in Cloud
#: Monitoring (components/clusters/gcp/gke.py LOGGING_COMPONENTS / MONITORING_COMPONENTS), Secrets encrypted
#: with a Cloud KMS key, a node service account with project roles, a system node pool, and a lookup of the
#: project number.
BASE_FEATURES = (
    GcpFeature.NETWORK,
    GcpFeature.GKE_CLUSTER,
    GcpFeature.GKE_LOGGING,
    GcpFeature.GKE_MONITORING,
    GcpFeature.GKE_SECRETS_ENCRYPTION,
    GcpFeature.GKE_NODE_POOL,
    GcpFeature.KMS,
    GcpFeature.SERVICE_ACCOUNT,
    GcpFeature.PROJECT_IAM,
    GcpFeature.PROJECT_LOOKUP,
)

#: The APIs every GCP stack enables (the base features'); a stack adds Storage, Cloud DNS, Container File
#: System where it uses them.
REQUIRED_APIS = tuple(apis_for(BASE_FEATURES))


def required_features(cfg: StackConfig) -> list[GcpFeature]:
    """The GCP features this stack file's resources use (components/clusters/gcp/apis.py has their APIs)."""
    assert cfg.gcp is not None
    features = list(BASE_FEATURES)
    if cfg.uses_gpu:
        # The GPU pool streams images (gpu_node_pool.py node_config: gcfs_config.enabled).
        features.append(GcpFeature.GKE_IMAGE_STREAMING)
    if cfg.model.uri.startswith("gs://"):
        features.append(GcpFeature.STORAGE)
    # The private googleapis.com zone of a prod stack's model path is a Cloud DNS zone too.
    if cfg.gcp.dns_zone or _clouddns_zone(cfg) or builds_private_path(cfg):
        features.append(GcpFeature.CLOUD_DNS)
    return features


def required_apis(cfg: StackConfig) -> list[str]:
    """The project APIs this stack enables: exactly those its features need, in a stable order."""
    return apis_for(required_features(cfg))


def enable_apis(apis: list[str], gcp_provider: gcp.Provider) -> list[gcp.projects.Service]:
    """One `gcp.projects.Service` per API ("compute.googleapis.com"), Cloud Resource Manager's first.

    Each Service, once enabled, reads itself back, and that read begins with Cloud Resource Manager's
    projects.get on the project (terraform-provider-google, google/services/resourcemanager/
    resource_google_project_service.go `resourceGoogleProjectServiceRead`: "Verify project for services still
    exists"). Enabled all at once in a fresh project, every other Service's read fails with 403
    SERVICE_DISABLED until cloudresourcemanager is on, so they all wait for it. That call is billed to the
    caller's quota project (no user_project_override), which is why docs/gcp.md has Cloud Resource Manager
    and Service Usage enabled by hand once, there and in the stack's project, before the first `pulumi up`.
    Left enabled on destroy: other workloads in the project may rely on them. Returns every Service, the
    Cloud Resource Manager one first; it is enabled even where `apis` leaves it out.
    """

    def service(api: str, opts: pulumi.ResourceOptions) -> gcp.projects.Service:
        return gcp.projects.Service(
            f"api-{api.split('.', 1)[0]}", service=api, disable_on_destroy=False, opts=opts
        )

    resource_manager = service(RESOURCE_MANAGER, pulumi.ResourceOptions(provider=gcp_provider))
    after_resource_manager = pulumi.ResourceOptions(provider=gcp_provider, depends_on=[resource_manager])
    return [
        resource_manager,
        *(service(api, after_resource_manager) for api in apis if api != RESOURCE_MANAGER),
    ]


def deploy_gcp(cfg: StackConfig) -> None:
    assert cfg.gcp is not None  # the schema requires the section for platform gcp
    g = cfg.gcp
    stack = pulumi.get_stack()
    cluster_name = cluster_name_for(pulumi.get_project(), stack)
    labels = {"inferstack-stack": stack.lower(), "inferstack-cluster": cluster_name}
    gcp_provider = gcp.Provider("gcp", project=g.project, region=g.region, default_labels=labels)

    apis = enable_apis(required_apis(cfg), gcp_provider)
    after_apis = pulumi.ResourceOptions(provider=gcp_provider, depends_on=apis)
    project_number = gcp.organizations.get_project_output(
        project_id=g.project, opts=pulumi.InvokeOutputOptions(provider=gcp_provider, depends_on=apis)
    ).number

    network = Network(
        "network",
        NetworkArgs(
            region=g.region,
            subnet_cidr=g.network.subnet_cidr,
            pods_cidr=g.network.pods_cidr,
            services_cidr=g.network.services_cidr,
            control_plane_cidr=g.network.control_plane_cidr,
            private_google_apis_dns=builds_private_path(cfg),
        ),
        opts=after_apis,
    )
    gke = GkeCluster(
        "gke",
        GkeClusterArgs(
            cluster_name=cluster_name,
            project=g.project,
            project_number=project_number,
            location=g.location,
            release_channel=g.release_channel,
            kubernetes_version=cfg.cluster.kubernetes_version,
            network_id=network.network_id,
            subnetwork_id=network.subnetwork_id,
            pods_range_name=network.pods_range_name,
            services_range_name=network.services_range_name,
            control_plane_cidr=g.network.control_plane_cidr,
            public_access_cidrs=g.api_endpoint.public_access_cidrs,
            private_access_cidrs=g.api_endpoint.private_access_cidrs,
            dns_endpoint=g.api_endpoint.dns_endpoint,
            node_zones=g.zones if g.regional else [],
            system_machine_type=g.system_nodes.machine_type,
            system_nodes_min=g.system_nodes.min_per_zone,
            system_nodes_max=g.system_nodes.max_per_zone,
            system_disk_gib=g.system_nodes.disk_gib,
            deletion_protection=g.deletion_protection,
            labels=labels,
        ),
        # Private nodes pull images through Cloud NAT; without it the system pool never becomes ready.
        opts=pulumi.ResourceOptions(provider=gcp_provider, depends_on=[*apis, network.nat]),
    )
    kubernetes, crds = cluster_providers(kubeconfig=gke.kubeconfig, namespace=cfg.cluster.namespace)

    pool: GcpGpuNodePool | None = None
    if cfg.uses_gpu:
        pool = GcpGpuNodePool(
            NAME,
            GcpGpuNodePoolArgs(
                cluster=gke.cluster_name,
                project=g.project,
                location=gke.location,
                node_zones=g.gpu_nodes.zones,
                machine_type=g.gpu_nodes.machine_type,
                capacity_type=g.gpu_nodes.capacity_type,
                max_nodes=gcp_max_gpu_nodes(cfg),
                service_account_email=gke.node_service_account_email,
                disk_gib=g.gpu_nodes.disk_gib,
                driver_version=g.gpu_nodes.driver_version,
                local_ssd_cache=g.gpu_nodes.local_ssd_cache,
            ),
            opts=pulumi.ResourceOptions(provider=gcp_provider, depends_on=[gke.system_node_pool]),
        )

    server_after: list[pulumi.Resource] = [pool] if pool is not None else []
    if cfg.model.scheme == "gs":
        bucket, prefix = cfg.model.bucket_and_prefix
        server_after.append(
            GcsModelStore(
                "model-store",
                GcsModelStoreArgs(
                    bucket_name=bucket,
                    prefix=prefix,
                    create_bucket=g.model_store.create_bucket,
                    project=g.project,
                    location=g.region,
                    # ModelServer names its ServiceAccount after the component: the first model's (the
                    # stack's own model; the schema keeps every other model off the store).
                    reader_member=workload_identity_principal(
                        project_number, gke.workload_pool, cfg.cluster.namespace, cfg.served[0].resource_name
                    ),
                    kms_key_name=g.model_store.kms_key_name,
                    create_kms_key=g.model_store.cmek,
                    force_destroy=g.model_store.force_destroy,
                    labels=labels,
                ),
                # The Workload Identity pool exists once the cluster does.
                opts=pulumi.ResourceOptions(provider=gcp_provider, depends_on=[*apis, gke.cluster]),
            )
        )

    tls_after: list[pulumi.Resource] = []
    zone = _clouddns_zone(cfg)
    if zone is not None:
        dns01 = cfg.tls.acme.dns01
        assert dns01 is not None and dns01.clouddns_project is not None
        tls_after.append(
            gcp.dns.DnsManagedZoneIamMember(
                "cert-manager-dns",
                project=dns01.clouddns_project,
                managed_zone=zone,
                role=CLOUD_DNS_ROLE,
                member=workload_identity_principal(
                    project_number,
                    gke.workload_pool,
                    CERT_MANAGER_NAMESPACE,
                    cert_manager_service_account(NAME),
                ),
                opts=pulumi.ResourceOptions(provider=gcp_provider, depends_on=[*apis, gke.cluster]),
            )
        )

    annotations, load_balancer_class = gke_service_exposure(g.load_balancer_scheme)
    workload = deploy_workload(
        cfg,
        ClusterContext(
            provider=kubernetes,
            crd_provider=crds,
            placement=pool,
            exposure=GatewayExposure(
                kind=LoadBalancerKind.CLOUD,
                cloud_service_annotations=annotations,
                cloud_load_balancer_class=load_balancer_class,
            ),
            cluster_ready=[gke.system_node_pool],
            server_after=server_after,
            tls_after=tls_after,
            model_extra_env={"GOOGLE_CLOUD_PROJECT": g.project},
            model_extra_egress=list(WORKLOAD_IDENTITY_EGRESS),
            model_store_private_cidrs=network.google_apis_cidrs,
            # The API server as pods reach it: the control plane's private endpoint in its /28 (VPC
            # peering clusters), or an address of the node subnet (Private Service Connect clusters, GKE's
            # default since 1.29); GKE docs "About network isolation in GKE".
            # And the `kubernetes` Service's ClusterIP (the first address of the Services range) for a
            # dataplane that matches before DNAT.
            api_server_cidrs=[
                g.network.control_plane_cidr,
                g.network.subnet_cidr,
                f"{ipaddress.ip_network(g.network.services_cidr)[1]}/32",
            ],
        ),
    )

    address = workload.gateway.load_balancer_hostname  # an IP on GKE
    if g.dns_zone and address is not None:
        gcp.dns.RecordSet(
            "hostname",
            managed_zone=g.dns_zone,
            name=f"{cfg.gateway.hostname}.",
            type="A",
            ttl=300,
            rrdatas=[address],
            opts=after_apis,
        )

    pulumi.export("project", g.project)
    pulumi.export("region", g.region)
    pulumi.export("cluster_name", gke.cluster_name)
    pulumi.export("kubeconfig", gke.kubeconfig)
    pulumi.export("load_balancer_ip", address)


def _clouddns_zone(cfg: StackConfig) -> str | None:
    """The managed zone cert-manager answers DNS-01 in, when the stack uses Cloud DNS for it."""
    dns01 = cfg.tls.acme.dns01
    if cfg.tls.mode is not TlsMode.ACME or dns01 is None or dns01.provider is not Dns01Provider.CLOUDDNS:
        return None
    g: GcpConfig | None = cfg.gcp
    return dns01.clouddns_hosted_zone_name or (g.dns_zone if g else None)
