"""GkeCluster: a private GKE Standard cluster and a small autoscaled node pool for system pods.

Security defaults (see DESIGN.md): Kubernetes Secrets envelope-encrypted in etcd with a Cloud KMS key of
ours that rotates; private nodes (no external IPs) and a control plane that is private, or public only
for listed networks, plus the IAM-authenticated DNS endpoint; Workload Identity, so pods never borrow
the node's identity (nodes run the GKE metadata server); nodes under a least-privilege service account
of their own instead of the Compute Engine default one; Shielded nodes with secure boot; Dataplane V2,
which enforces the NetworkPolicies the model server ships; no client certificates, no legacy ABAC.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from components._common import child, reject_invalid_args
from components.choices import GkeReleaseChannel
from components.clusters.api_access import api_cidr_problems
from components.clusters.gcp.network import CONTROL_PLANE_PREFIX, REGION, ZONE, ipv4_network_problems

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# GKE's least-privilege role for node service accounts (logs, metrics, autoscaling signals), plus
# pulling images from the project's Artifact Registry. Workloads get their own identities through
# Workload Identity, never the node's.
NODE_SERVICE_ACCOUNT_ROLES = {
    "default-node": "roles/container.defaultNodeServiceAccount",
    "registry-reader": "roles/artifactregistry.reader",
}
KMS_ENCRYPTER_DECRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
SECRETS_KEY_ROTATION = "7776000s"  # 90 days; GKE keeps decrypting with older versions after a rotation
SYSTEM_NODE_LABELS = {"inferstack.io/node-role": "system"}
SYSTEM_IMAGE_TYPE = "COS_CONTAINERD"
SYSTEM_DISK_TYPE = "pd-balanced"
LOGGING_COMPONENTS = ["SYSTEM_COMPONENTS", "WORKLOADS"]
# Only system metrics go to Cloud Monitoring; workload metrics (vLLM's queue depth) go to the stack's own
# Prometheus, which KEDA reads, so Google Cloud Managed Service for Prometheus stays off.
MONITORING_COMPONENTS = ["SYSTEM_COMPONENTS"]
MAX_AUTHORIZED_NETWORKS = 100  # GKE's limit on master authorized networks
GCLOUD_AUTH_PLUGIN = "gke-gcloud-auth-plugin"

_CLUSTER_NAME = re.compile(r"^[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?$")  # GKE: 1-40 chars
_PROJECT_ID = re.compile(r"^(?:[a-z][-a-z0-9.]*[a-z0-9]:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$")
_PROJECT_NUMBER = re.compile(r"^[1-9][0-9]{5,18}$")
_KUBERNETES_VERSION = re.compile(r"^1\.\d{2}$")
_RANGE_NAME = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9]*-[a-z0-9-]+$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_COMPONENT_NAME = re.compile(r"^[a-z](?:[-a-z0-9]*[a-z0-9])?$")
# The system pool is auto-named "<name>-system-xxxxxxx" (so a change that replaces it can create the new
# pool before deleting the old one), and GKE node pool names are at most 40 characters.
_NODE_POOL_NAME_MAX = 40
_POOL_ROLE = "-system"
_AUTONAME_SUFFIX = 8
_SERVICE_ACCOUNT_SUFFIX = "-nodes"
_SERVICE_ACCOUNT_ID_MAX = 30


@dataclass(frozen=True, kw_only=True)
class GkeClusterArgs:
    """A private GKE Standard cluster in an existing VPC-native subnet."""

    cluster_name: str  # GKE cluster name (<= 40 chars, lowercase, starts with a letter)
    project: str  # project id
    project_number: pulumi.Input[str]  # for GKE's service agent (KMS grant)
    location: str  # a region -> regional cluster; a zone (region-x) -> zonal
    release_channel: GkeReleaseChannel  # RAPID / REGULAR / STABLE / EXTENDED
    kubernetes_version: str  # minor version floor, e.g. "1.34" -> min_master_version
    network_id: pulumi.Input[str]  # the VPC (projects/<p>/global/networks/<n>)
    subnetwork_id: pulumi.Input[str]  # the nodes' subnet, in the location's region
    pods_range_name: str  # the subnet's secondary range for pods
    services_range_name: str  # the subnet's secondary range for Services
    control_plane_cidr: str  # the control plane's /28
    public_access_cidrs: list[str]  # empty -> no public IP endpoint (private endpoint only)
    private_access_cidrs: list[str]  # networks (VPN, CI) allowed to the private endpoint
    dns_endpoint: bool = True  # the IAM-authenticated DNS endpoint (allow_external_traffic)
    node_zones: list[str] = field(default_factory=list)  # node_locations; empty = GKE's default
    system_machine_type: str = "e2-standard-4"  # system pool machine type (x86)
    system_nodes_min: int = 1  # per zone
    system_nodes_max: int = 3  # per zone
    system_disk_gib: int = 50  # pd-balanced boot disk: images and logs
    deletion_protection: bool = True  # GKE refuses to delete the cluster while true
    labels: dict[str, str] = field(default_factory=dict)  # GCP labels on the cluster and nodes


def region_of(location: str) -> str:
    """The region of a region or zone (europe-west4-a -> europe-west4)."""
    zone = ZONE.match(location)
    return zone.group(1) if zone else location


def _authorized_cidr_problems(field_name: str, cidrs: list[str]) -> list[str]:
    return api_cidr_problems(
        field_name,
        cidrs,
        open_fix="list your networks, or use the IAM-authenticated DNS endpoint (dns_endpoint) instead",
        ipv6_refusal=None,
    )


def _node_zone_problems(args: GkeClusterArgs) -> list[str]:
    problems: list[str] = []
    region = region_of(args.location)
    for i, zone in enumerate(args.node_zones):
        match = ZONE.match(zone)
        if not match:
            problems.append(f"node_zones[{i}]: {zone!r} is not a zone; write it like {region}-a")
        elif match.group(1) != region:
            problems.append(
                f"node_zones[{i}]: {zone} is not in {region}, the region of location {args.location}"
            )
        elif zone == args.location:
            # GKE's API takes a zonal cluster's own zone implicitly; listing it is refused.
            problems.append(
                f"node_zones[{i}]: {zone} is the zonal cluster's own zone; list only the extra zones"
            )
    if len(set(args.node_zones)) != len(args.node_zones):
        problems.append("node_zones: lists a zone twice; drop the repeat")
    return problems


def validate_gke_cluster_args(args: GkeClusterArgs) -> list[str]:
    """Every problem with the args, each naming its field; empty when they are usable."""
    problems: list[str] = []
    if not _CLUSTER_NAME.match(args.cluster_name or ""):
        problems.append(
            f"cluster_name: {args.cluster_name!r} is not a GKE cluster name; use 1-40 lowercase letters, "
            "digits and -, starting with a letter and not ending with -"
        )
    if not _PROJECT_ID.match(args.project or ""):
        problems.append(
            f"project: {args.project!r} is not a project id (6-30 lowercase letters, digits and -, "
            "starting with a letter); give the id, not the display name or number"
        )
    if isinstance(args.project_number, str) and not _PROJECT_NUMBER.match(args.project_number):
        problems.append(
            f"project_number: {args.project_number!r} is not a project number (digits only); "
            "gcloud projects describe <project> --format='value(projectNumber)'"
        )
    if not (REGION.match(args.location or "") or ZONE.match(args.location or "")):
        problems.append(
            f"location: {args.location!r} is neither a region (europe-west4, a regional cluster) nor a "
            "zone (europe-west4-a, a zonal cluster)"
        )
    else:
        problems += _node_zone_problems(args)
    if not _KUBERNETES_VERSION.match(args.kubernetes_version or ""):
        problems.append(f"kubernetes_version: {args.kubernetes_version!r} is not a minor version like '1.34'")
    for field_name in ("pods_range_name", "services_range_name"):
        value = getattr(args, field_name)
        if not _RANGE_NAME.match(value or ""):
            problems.append(f"{field_name}: {value!r} is not a secondary range name (lowercase, 1-63 chars)")
    if args.pods_range_name == args.services_range_name:
        problems.append(
            "pods_range_name/services_range_name: pods and Services need two different secondary ranges"
        )
    control_plane, found = ipv4_network_problems("control_plane_cidr", args.control_plane_cidr)
    problems += found
    if control_plane is not None and control_plane.prefixlen != CONTROL_PLANE_PREFIX:
        problems.append(
            f"control_plane_cidr: {control_plane} is a /{control_plane.prefixlen}; GKE needs a "
            f"/{CONTROL_PLANE_PREFIX} such as 172.16.0.0/28"
        )
    problems += _authorized_cidr_problems("public_access_cidrs", args.public_access_cidrs)
    problems += _authorized_cidr_problems("private_access_cidrs", args.private_access_cidrs)
    both = sorted(set(args.public_access_cidrs) & set(args.private_access_cidrs))
    if both:
        problems.append(
            f"public_access_cidrs/private_access_cidrs: {', '.join(both)} listed in both; keep each network "
            "in one list"
        )
    if len(args.public_access_cidrs) + len(args.private_access_cidrs) > MAX_AUTHORIZED_NETWORKS:
        problems.append(
            f"public_access_cidrs/private_access_cidrs: GKE allows at most {MAX_AUTHORIZED_NETWORKS} "
            "authorized networks; merge adjacent ranges"
        )
    if not _MACHINE_TYPE.match(args.system_machine_type or ""):
        problems.append(
            f"system_machine_type: {args.system_machine_type!r} is not a machine type like e2-standard-4"
        )
    if args.system_nodes_min < 1:
        problems.append(
            "system_nodes_min: kube-dns, metrics and the gateway's controllers need a node; use 1 or more"
        )
    if args.system_nodes_min > args.system_nodes_max:
        problems.append(
            f"system_nodes_min/system_nodes_max: need min <= max (per zone), got "
            f"{args.system_nodes_min}/{args.system_nodes_max}"
        )
    if not 10 <= args.system_disk_gib <= 65536:
        problems.append(
            f"system_disk_gib: {args.system_disk_gib} is outside 10..65536 (GKE's smallest boot disk is "
            "10 GB; images and logs want 50 or more)"
        )
    problems += label_problems(args.labels)
    return problems


def label_problems(labels: dict[str, str]) -> list[str]:
    """GCP label rules: keys start with a lowercase letter; keys and values lowercase, digits, _ and -."""
    problems: list[str] = []
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            problems.append(
                f"labels: key {key!r} must start with a lowercase letter and hold only lowercase letters, "
                "digits, _ and - (at most 63)"
            )
        if not _LABEL_VALUE.match(value):
            problems.append(
                f"labels: value {value!r} of {key!r} may hold only lowercase letters, digits, _ and - "
                "(at most 63)"
            )
    if len(labels) > 64:
        problems.append("labels: GCP allows at most 64 labels on a resource")
    return problems


def component_name_problems(name: str) -> list[str]:
    """The system node pool is auto-named after the component and GKE caps pool names at 40 characters."""
    longest = len(name) + len(_POOL_ROLE) + _AUTONAME_SUFFIX
    if not _COMPONENT_NAME.match(name or "") or longest > _NODE_POOL_NAME_MAX:
        return [
            f"name: {name!r} must be lowercase letters, digits and -, start with a letter and be at most "
            f"{_NODE_POOL_NAME_MAX - len(_POOL_ROLE) - _AUTONAME_SUFFIX} characters (GKE node pool names)"
        ]
    return []


def node_service_account_id(cluster_name: str) -> str:
    """A service account id (6-30 chars) for the cluster's nodes, stable for a given cluster name; a long
    name is cut and given a short hash so two long names sharing a prefix still differ."""
    room = _SERVICE_ACCOUNT_ID_MAX - len(_SERVICE_ACCOUNT_SUFFIX)
    if len(cluster_name) <= room:
        return f"{cluster_name}{_SERVICE_ACCOUNT_SUFFIX}"
    digest = hashlib.sha256(cluster_name.encode()).hexdigest()[:6]
    return f"{cluster_name[: room - 7].rstrip('-')}-{digest}{_SERVICE_ACCOUNT_SUFFIX}"


def gke_service_agent(project_number: pulumi.Input[str]) -> pulumi.Output[str]:
    """GKE's service agent, which calls Cloud KMS on the control plane's behalf."""
    return pulumi.Output.concat(
        "serviceAccount:service-", project_number, "@container-engine-robot.iam.gserviceaccount.com"
    )


def kubeconfig(context: str, server: str, ca_certificate: str | None) -> str:
    """A kubeconfig (JSON, which is YAML) whose user gets a Google access token from gke-gcloud-auth-plugin
    with the caller's gcloud or application-default credentials, so it holds no secret of its own.
    `ca_certificate` is the base64 PEM GKE reports; None for the DNS endpoint, whose certificate is
    publicly trusted."""
    cluster: dict[str, str] = {"server": server}
    if ca_certificate:
        cluster["certificate-authority-data"] = ca_certificate
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [
            {
                "name": context,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": GCLOUD_AUTH_PLUGIN,
                        "provideClusterInfo": True,
                        "installHint": (
                            "Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin "
                            "(or the google-cloud-cli-gke-gcloud-auth-plugin OS package)"
                        ),
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }
    return json.dumps(config, indent=2)


def api_server_url(
    *, dns_endpoint: bool, public: bool, dns_name: str, public_ip: str, private_ip: str
) -> tuple[str, bool]:
    """The server a kubeconfig should use, and whether it needs the cluster CA: the DNS endpoint when it
    is on (it works from anywhere IAM allows, through a publicly trusted certificate), else the public IP
    endpoint when there is one, else the private endpoint (reachable from the VPC and the networks
    connected to it)."""
    if dns_endpoint:
        return f"https://{dns_name}", False
    return f"https://{public_ip if public else private_ip}", True


class GkeCluster(pulumi.ComponentResource):
    """KMS key for Secrets, node service account, private GKE cluster and an autoscaled system pool."""

    cluster: gcp.container.Cluster
    cluster_name: pulumi.Output[str]
    location: str
    workload_pool: str
    kubeconfig: pulumi.Output[str]
    node_service_account_email: pulumi.Output[str]
    secrets_key_id: pulumi.Output[str]
    system_node_pool: gcp.container.NodePool

    def __init__(self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args(
            "GkeCluster", name, component_name_problems(name) + validate_gke_cluster_args(args)
        )
        super().__init__("inferstack:gcp:GkeCluster", name, None, opts)

        self.location = args.location
        self.workload_pool = f"{args.project}.svc.id.goog"
        labels = dict(args.labels)

        # Key rings and keys cannot be deleted in GCP (the provider only forgets a ring, and "deleting" a
        # key destroys its versions). retain_on_delete keeps both on `pulumi destroy`, so nothing
        # encrypted under them (etcd, its backups) is made unreadable by a teardown or replacement, and a
        # later stack gets new auto-named ones instead of colliding with the old names. GKE wants the
        # key in the cluster's own location: a zonal cluster's key lives in the zone's region.
        key_ring = gcp.kms.KeyRing(
            f"{name}-keyring",
            project=args.project,
            location=region_of(args.location),
            opts=child(self, retain_on_delete=True),
        )
        key = gcp.kms.CryptoKey(
            f"{name}-secrets-key",
            key_ring=key_ring.id,
            purpose="ENCRYPT_DECRYPT",
            rotation_period=SECRETS_KEY_ROTATION,
            labels=labels,
            opts=child(self, retain_on_delete=True),
        )
        key_grant = gcp.kms.CryptoKeyIAMMember(
            f"{name}-secrets-key-gke",
            crypto_key_id=key.id,
            role=KMS_ENCRYPTER_DECRYPTER,
            member=gke_service_agent(args.project_number),
            opts=child(self),
        )

        node_account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            project=args.project,
            account_id=node_service_account_id(args.cluster_name),
            display_name=f"GKE nodes of {args.cluster_name}",
            description="InferStack: least-privilege identity of the cluster's nodes (not of its pods)",
            opts=child(self),
        )
        node_roles: list[pulumi.Resource] = [
            gcp.projects.IAMMember(
                f"{name}-nodes-{role_name}",
                project=args.project,
                role=role,
                member=node_account.member,
                opts=child(self),
            )
            for role_name, role in NODE_SERVICE_ACCOUNT_ROLES.items()
        ]

        authorized = [
            gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                cidr_block=cidr, display_name=f"public-{i}"
            )
            for i, cidr in enumerate(args.public_access_cidrs)
        ] + [
            gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                cidr_block=cidr, display_name=f"private-{i}"
            )
            for i, cidr in enumerate(args.private_access_cidrs)
        ]

        self.cluster = gcp.container.Cluster(
            f"{name}-cluster",
            name=args.cluster_name,
            project=args.project,
            location=args.location,
            node_locations=list(args.node_zones) or None,
            network=args.network_id,
            subnetwork=args.subnetwork_id,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name=args.pods_range_name,
                services_secondary_range_name=args.services_range_name,
                stack_type="IPV4",
            ),
            # Node pools are separate resources (this one and the GPU pools), so they can change or be
            # replaced without touching the cluster. GKE still creates a default pool first; it runs as
            # our node account (projects often disable the Compute Engine default one) and is removed
            # at once, so later reads of node_config are ignored.
            remove_default_node_pool=True,
            initial_node_count=1,
            node_config=gcp.container.ClusterNodeConfigArgs(
                service_account=node_account.email,
                oauth_scopes=[CLOUD_PLATFORM_SCOPE],
                shielded_instance_config=gcp.container.ClusterNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True
                ),
                workload_metadata_config=gcp.container.ClusterNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
            ),
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True,
                enable_private_endpoint=not args.public_access_cidrs,
                master_ipv4_cidr_block=args.control_plane_cidr,
                # VPN and CI networks in other regions reach the private endpoint too.
                master_global_access_config=gcp.container.ClusterPrivateClusterConfigMasterGlobalAccessConfigArgs(
                    enabled=True
                ),
            ),
            master_authorized_networks_config=gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=authorized,
                # Otherwise any VM in any Google Cloud project passes the IP check.
                gcp_public_cidrs_access_enabled=False,
            ),
            control_plane_endpoints_config=gcp.container.ClusterControlPlaneEndpointsConfigArgs(
                dns_endpoint_config=gcp.container.ClusterControlPlaneEndpointsConfigDnsEndpointConfigArgs(
                    allow_external_traffic=args.dns_endpoint
                )
            ),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=self.workload_pool
            ),
            enable_shielded_nodes=True,
            # Dataplane V2 (eBPF) enforces Kubernetes NetworkPolicy; no Calico add-on needed.
            datapath_provider="ADVANCED_DATAPATH",
            database_encryption=gcp.container.ClusterDatabaseEncryptionArgs(
                state="ENCRYPTED", key_name=key.id
            ),
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=args.release_channel.value),
            min_master_version=args.kubernetes_version,
            enable_legacy_abac=False,
            master_auth=gcp.container.ClusterMasterAuthArgs(
                client_certificate_config=gcp.container.ClusterMasterAuthClientCertificateConfigArgs(
                    issue_client_certificate=False
                )
            ),
            logging_config=gcp.container.ClusterLoggingConfigArgs(enable_components=LOGGING_COMPONENTS),
            monitoring_config=gcp.container.ClusterMonitoringConfigArgs(
                enable_components=MONITORING_COMPONENTS,
                managed_prometheus=gcp.container.ClusterMonitoringConfigManagedPrometheusArgs(enabled=False),
            ),
            # Configuration auditing stays on; vulnerability scanning's basic tier is retired, and the
            # enterprise tier is a paid product a platform team turns on deliberately.
            security_posture_config=gcp.container.ClusterSecurityPostureConfigArgs(
                mode="BASIC", vulnerability_mode="VULNERABILITY_DISABLED"
            ),
            # Envoy Gateway brings and owns the Gateway API CRDs; with GKE's Gateway controller on, GKE
            # would install and reconcile its own copy of the same CRDs.
            gateway_api_config=gcp.container.ClusterGatewayApiConfigArgs(channel="CHANNEL_DISABLED"),
            # Binary Authorization is left to the project's policy: enforcing it needs a policy that
            # admits vLLM's and the charts' images, which is the platform team's to write.
            deletion_protection=args.deletion_protection,
            resource_labels=labels,
            opts=child(
                self,
                # Secrets are encrypted from the first write, so GKE's agent must be able to use the key.
                depends_on=[key_grant, *node_roles],
                ignore_changes=["nodeConfig", "initialNodeCount"],
            ),
        )

        self.system_node_pool = gcp.container.NodePool(
            f"{name}-system",
            project=args.project,
            location=args.location,
            cluster=self.cluster.name,
            initial_node_count=args.system_nodes_min,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                min_node_count=args.system_nodes_min, max_node_count=args.system_nodes_max
            ),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            upgrade_settings=gcp.container.NodePoolUpgradeSettingsArgs(
                strategy="SURGE", max_surge=1, max_unavailable=0
            ),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=args.system_machine_type,
                image_type=SYSTEM_IMAGE_TYPE,
                disk_type=SYSTEM_DISK_TYPE,
                disk_size_gb=args.system_disk_gib,
                service_account=node_account.email,
                # Access is decided by the account's IAM roles, not by legacy scopes.
                oauth_scopes=[CLOUD_PLATFORM_SCOPE],
                shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True
                ),
                # Pods see the GKE metadata server, which hands out Workload Identity tokens and hides
                # the node's own credentials and kube-env.
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
                metadata={"disable-legacy-endpoints": "true"},
                labels=SYSTEM_NODE_LABELS,
                resource_labels=labels,
            ),
            # initial_node_count only matters at creation and replaces the pool when changed; the
            # autoscaler owns the size afterwards.
            opts=child(self, depends_on=node_roles, ignore_changes=["initialNodeCount"]),
        )

        endpoints = self.cluster.control_plane_endpoints_config.apply(
            lambda c: (c.dns_endpoint_config.endpoint if c and c.dns_endpoint_config else None) or ""
        )
        private_ip = self.cluster.private_cluster_config.apply(
            lambda p: (p.private_endpoint if p else None) or ""
        )
        ca = self.cluster.master_auth.apply(lambda m: m.cluster_ca_certificate or "")
        context = f"gke_{args.project}_{args.location}_{args.cluster_name}"

        def render(parts: list[str]) -> str:
            dns_name, public_ip, private, ca_certificate = parts
            server, needs_ca = api_server_url(
                dns_endpoint=args.dns_endpoint,
                public=bool(args.public_access_cidrs),
                dns_name=dns_name,
                public_ip=public_ip,
                private_ip=private,
            )
            return kubeconfig(context, server, ca_certificate if needs_ca else None)

        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(endpoints, self.cluster.endpoint, private_ip, ca).apply(render)
        )
        self.cluster_name = self.cluster.name
        self.node_service_account_email = node_account.email
        self.secrets_key_id = key.id
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "location": self.location,
                "workload_pool": self.workload_pool,
                "kubeconfig": self.kubeconfig,
                "node_service_account_email": self.node_service_account_email,
                "secrets_key_id": self.secrets_key_id,
            }
        )
