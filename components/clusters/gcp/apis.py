"""Which Google Cloud API each GCP resource (or feature of one) calls: the one table the stack and the check share.

A project starts with almost every API off; a resource whose API is off fails at create time with
`SERVICE_DISABLED` ("... API has not been used in project N before or it is disabled"), and a *feature* of
a resource whose API is off can fail later and more quietly: GKE accepts `gcfsConfig.enabled` on a node
pool, but image streaming needs the Container File System API (containerfilesystem.googleapis.com), which
enabling the GKE API does not turn on.

`stacks/gcp.py` enables `apis_for(features)` for the features its stack file uses, and makes every GCP
resource wait for those `gcp.projects.Service`s; `inferstack.validation.apis` reads a plan's recorded
resources and invokes, finds the features they use with the same table (`features_of_resource`), and
names any whose API the plan does not enable, or does not wait for. Pure data and functions: no cloud SDK
is imported, so `inferstack check` of an on-prem stack does not import pulumi_gcp.

Service Usage (serviceusage.googleapis.com) itself is not in the table: enabling APIs calls it, so it
must already be on (it is in every project made by the console or `gcloud projects create`), in the project
and in the caller's quota project. So must Cloud Resource Manager before the first `pulumi up`: every
`gcp.projects.Service` reads back through it (docs/gcp.md, Prerequisites); the stack still enables it and
makes every other API wait for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

COMPUTE = "compute.googleapis.com"
CONTAINER = "container.googleapis.com"
CONTAINER_FILE_SYSTEM = "containerfilesystem.googleapis.com"
CLOUD_KMS = "cloudkms.googleapis.com"
IAM = "iam.googleapis.com"
RESOURCE_MANAGER = "cloudresourcemanager.googleapis.com"
LOGGING = "logging.googleapis.com"
MONITORING = "monitoring.googleapis.com"
STORAGE = "storage.googleapis.com"
DNS = "dns.googleapis.com"

SERVICE_TYPE = "gcp:projects/service:Service"


class GcpFeature(StrEnum):
    """A GCP resource kind, or a setting of one, that calls an API of its own."""

    NETWORK = "network"  # VPC, subnet, router, Cloud NAT, firewall rules
    GKE_CLUSTER = "gke-cluster"
    GKE_LOGGING = "gke-logging"  # cluster logging_config / logging_service
    GKE_MONITORING = "gke-monitoring"  # cluster monitoring_config / monitoring_service
    GKE_SECRETS_ENCRYPTION = "gke-secrets-encryption"  # database_encryption with a Cloud KMS key
    GKE_NODE_POOL = "gke-node-pool"
    GKE_IMAGE_STREAMING = "gke-image-streaming"  # node_config.gcfs_config.enabled
    KMS = "kms"  # key rings, keys and their IAM
    SERVICE_ACCOUNT = "service-account"
    PROJECT_IAM = "project-iam"  # gcp.projects.IAMMember: the project's IAM policy
    PROJECT_LOOKUP = "project-lookup"  # gcp.organizations.get_project (the project number)
    STORAGE = "storage"  # buckets, their IAM, the Cloud Storage service agent lookup
    CLOUD_DNS = "cloud-dns"  # managed zones, record sets and managed-zone IAM


Predicate = Callable[[Mapping[str, Any]], bool]


def _always(_inputs: Mapping[str, Any]) -> bool:
    return True


def _path(inputs: Mapping[str, Any], *keys: str) -> Any:
    value: Any = inputs
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _image_streaming(inputs: Mapping[str, Any]) -> bool:
    # Both the cluster's default node config and a node pool's node config carry gcfsConfig; the
    # cluster-wide default is node_pool_defaults.node_config_defaults.gcfs_config.
    return any(
        _path(inputs, *keys) is True
        for keys in (
            ("nodeConfig", "gcfsConfig", "enabled"),
            ("nodePoolDefaults", "nodeConfigDefaults", "gcfsConfig", "enabled"),
        )
    )


def _cluster_logging(inputs: Mapping[str, Any]) -> bool:
    # GKE's default, with neither set, is Cloud Logging on (SYSTEM_COMPONENTS and WORKLOADS).
    service = inputs.get("loggingService")
    components = _path(inputs, "loggingConfig", "enableComponents")
    return service != "none" and components != []


def _cluster_monitoring(inputs: Mapping[str, Any]) -> bool:
    service = inputs.get("monitoringService")
    components = _path(inputs, "monitoringConfig", "enableComponents")
    return service != "none" and components != []


def _secrets_encryption(inputs: Mapping[str, Any]) -> bool:
    return _path(inputs, "databaseEncryption", "state") == "ENCRYPTED"


@dataclass(frozen=True)
class ApiRequirement:
    """One row: a resource type (or invoke token) with a feature, the APIs it calls, and where that is written."""

    feature: GcpFeature
    type_tokens: tuple[str, ...]  # Pulumi resource types or invoke tokens ("gcp:container/cluster:Cluster")
    apis: tuple[str, ...]  # service names, "<name>.googleapis.com"
    source: str  # the document that says so
    applies: Predicate = _always  # on the recorded (camelCase) inputs or invoke args


#: Resource feature -> required APIs. A type with no row is a defect the check reports ("no row"), so a new
#: resource type cannot slip in without someone deciding which API it needs.
API_TABLE: tuple[ApiRequirement, ...] = (
    ApiRequirement(
        GcpFeature.NETWORK,
        (
            "gcp:compute/network:Network",
            "gcp:compute/subnetwork:Subnetwork",
            "gcp:compute/router:Router",
            "gcp:compute/routerNat:RouterNat",
            "gcp:compute/firewall:Firewall",
        ),
        (COMPUTE,),
        "Compute Engine API reference: networks, subnetworks, routers, firewalls are compute.googleapis.com "
        "(cloud.google.com/compute/docs/reference/rest/v1)",
    ),
    ApiRequirement(
        GcpFeature.GKE_CLUSTER,
        ("gcp:container/cluster:Cluster",),
        (CONTAINER, COMPUTE),
        "GKE docs 'Create a zonal/regional cluster', Before you begin: enable the Google Kubernetes Engine API; "
        "its nodes are Compute Engine VMs",
    ),
    ApiRequirement(
        GcpFeature.GKE_LOGGING,
        ("gcp:container/cluster:Cluster",),
        (LOGGING,),
        "GKE docs 'About GKE logs': system and workload logs are written to Cloud Logging "
        "(logging.googleapis.com), which must be enabled in the project",
        _cluster_logging,
    ),
    ApiRequirement(
        GcpFeature.GKE_MONITORING,
        ("gcp:container/cluster:Cluster",),
        (MONITORING,),
        "GKE docs 'Observability for GKE': system metrics go to Cloud Monitoring (monitoring.googleapis.com)",
        _cluster_monitoring,
    ),
    ApiRequirement(
        GcpFeature.GKE_SECRETS_ENCRYPTION,
        ("gcp:container/cluster:Cluster",),
        (CLOUD_KMS,),
        "GKE docs 'Encrypt Secrets at the application layer', Before you begin: enable the Cloud KMS API",
        _secrets_encryption,
    ),
    ApiRequirement(
        GcpFeature.GKE_NODE_POOL,
        ("gcp:container/nodePool:NodePool",),
        (CONTAINER, COMPUTE),
        "GKE API reference projects.locations.clusters.nodePools (container.googleapis.com); nodes are "
        "Compute Engine VMs",
    ),
    ApiRequirement(
        GcpFeature.GKE_IMAGE_STREAMING,
        ("gcp:container/nodePool:NodePool", "gcp:container/cluster:Cluster"),
        (CONTAINER_FILE_SYSTEM,),
        "GKE docs 'Use Image streaming to pull container images', Requirements: 'You must enable the "
        "Container File System API' (containerfilesystem.googleapis.com)",
        _image_streaming,
    ),
    ApiRequirement(
        GcpFeature.KMS,
        (
            "gcp:kms/keyRing:KeyRing",
            "gcp:kms/cryptoKey:CryptoKey",
            "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
        ),
        (CLOUD_KMS,),
        "Cloud KMS docs 'Create a key ring', Before you begin: enable the Cloud KMS API",
    ),
    ApiRequirement(
        GcpFeature.SERVICE_ACCOUNT,
        ("gcp:serviceaccount/account:Account",),
        (IAM,),
        "IAM docs 'Create service accounts', Before you begin: enable the IAM API",
    ),
    ApiRequirement(
        GcpFeature.PROJECT_IAM,
        ("gcp:projects/iAMMember:IAMMember",),
        (RESOURCE_MANAGER,),
        "Resource Manager API reference projects.getIamPolicy/setIamPolicy (cloudresourcemanager.googleapis.com): "
        "the provider's google_project_iam_member reads and writes the project's policy through it",
    ),
    ApiRequirement(
        GcpFeature.PROJECT_LOOKUP,
        ("gcp:organizations/getProject:getProject",),
        (RESOURCE_MANAGER,),
        "Resource Manager API reference projects.get (cloudresourcemanager.googleapis.com): the provider's "
        "google_project data source",
    ),
    ApiRequirement(
        GcpFeature.STORAGE,
        (
            "gcp:storage/bucket:Bucket",
            "gcp:storage/bucketIAMMember:BucketIAMMember",
            "gcp:storage/getProjectServiceAccount:getProjectServiceAccount",
        ),
        (STORAGE,),
        "Cloud Storage JSON API reference: buckets, bucket IAM and projects.serviceAccount.get "
        "(storage.googleapis.com)",
    ),
    ApiRequirement(
        GcpFeature.CLOUD_DNS,
        (
            "gcp:dns/recordSet:RecordSet",
            "gcp:dns/dnsManagedZoneIamMember:DnsManagedZoneIamMember",
            "gcp:dns/managedZone:ManagedZone",
        ),
        (DNS,),
        "Cloud DNS docs 'Quickstart', Before you begin: enable the Cloud DNS API",
    ),
)

#: Types the table deliberately has no row for: enabling an API is Service Usage's own call.
NO_API_TYPES = frozenset({SERVICE_TYPE})


def table_types() -> frozenset[str]:
    """Every resource type and invoke token the table has a row for."""
    return frozenset(t for row in API_TABLE for t in row.type_tokens)


def features_of_resource(type_token: str, inputs: Mapping[str, Any]) -> list[GcpFeature]:
    """The features one recorded resource (or invoke) uses: rows whose type matches and whose predicate holds."""
    return [row.feature for row in API_TABLE if type_token in row.type_tokens and row.applies(inputs)]


def apis_for(features: Iterable[GcpFeature]) -> list[str]:
    """The APIs `features` need, each once, in the table's order (a stable order keeps resource names stable)."""
    wanted = set(features)
    apis: list[str] = []
    for row in API_TABLE:
        if row.feature in wanted:
            apis += [api for api in row.apis if api not in apis]
    return apis


def requirement_of(feature: GcpFeature) -> ApiRequirement:
    """The row of `feature`. Raises KeyError for a feature with no row (a defect of this module)."""
    for row in API_TABLE:
        if row.feature is feature:
            return row
    raise KeyError(feature)
