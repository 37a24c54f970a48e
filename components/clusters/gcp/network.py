"""Network: the VPC a private GKE cluster lives in, built from plain pulumi_gcp resources.

One custom-mode VPC with one regional subnet. The subnet's primary range holds the nodes (and internal
load balancers); two secondary ranges hold pod and Service IPs (a VPC-native cluster gives every pod an
alias IP from the pods range). Nodes have no external IPs: they reach Google APIs (Artifact Registry,
Cloud Storage) through Private Google Access, and everything else (public registries, model hubs)
through Cloud NAT, which serves this subnet only.

A custom-mode VPC has no firewall rules of its own (the implied rules deny all ingress). GKE adds the
rules a cluster needs, including control plane -> nodes on 443 and 10250 only; we add the one rule GKE
does not: the control plane reaching the admission webhooks and aggregated APIs our charts serve on
other ports (see WEBHOOK_PORTS).

With `private_google_apis_dns` (prod stacks whose model is in Cloud Storage) the VPC also gets a private
Cloud DNS zone for googleapis.com: `*.googleapis.com` is a CNAME to `private.googleapis.com`, whose A
records are 199.36.153.8/30. Storage (storage.googleapis.com) then resolves to those four addresses from
every node and pod, so the model server's NetworkPolicy can limit its egress to 199.36.153.8/30 on 443; a
NetworkPolicy has no DNS-name peer, and Google's public API ranges (goog.json) are hundreds of prefixes.
Sources: Google Cloud VPC docs, "Configure Private Google Access", sections "Domain options"
(private.googleapis.com = 199.36.153.8/30, "most Google APIs and services", Cloud Storage included) and
"DNS configuration" (the private zone, the A records and the wildcard CNAME); the subnet already has
Private Google Access, and the route there is the VPC's default route to the default internet gateway,
which this VPC keeps (`delete_default_routes_on_create=False`): the docs' routing requirement for
199.36.153.8/30. Every googleapis.com name in the VPC changes with the zone (GKE's own calls to
container.googleapis.com, logging, monitoring too); all of them are served on private.googleapis.com.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components._common import child, reject_invalid_args

PODS_RANGE_NAME = "pods"
SERVICES_RANGE_NAME = "services"

# GKE's own firewall rule for a private cluster lets the control plane reach nodes on 443 (webhooks
# served there) and 10250 (kubelet) only. Webhooks and API services on other ports time out with
# "failed calling webhook ... context deadline exceeded" unless a rule opens them:
#   6443  KEDA's metrics API server (container port of the external.metrics.k8s.io APIService the HPA
#         reads; the chart's service.portHttpsTarget)
#   9443  KEDA's admission webhooks (the chart's webhooks.port) and controller-runtime's default
#   8443  the other conventional webhook / API-service port, so a chart added later that serves there
#         works without a network change
# cert-manager's webhook already listens on 10250 for this reason (its chart's webhook.securePort).
WEBHOOK_PORTS = ("6443", "8443", "9443")

# VPC flow logs: half the flows, 5-second aggregation, with metadata (the GKE pod and service names on
# each flow), which is what an investigation needs and about half the volume of sampling every flow.
FLOW_LOG_SAMPLING = 0.5
FLOW_LOG_INTERVAL = "INTERVAL_5_SEC"
FLOW_LOG_METADATA = "INCLUDE_ALL_METADATA"

CONTROL_PLANE_PREFIX = 28  # GKE requires a /28 for master_ipv4_cidr_block
# A node takes a /24 of the pods range at GKE's default of 110 pods per node, so a smaller range cannot
# hold even one node.
SMALLEST_PODS_PREFIX = 24

REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")  # europe-west4, us-central1, northamerica-northeast2
ZONE = re.compile(r"^([a-z]+-[a-z]+[0-9]+)-[a-z]$")  # europe-west4-a; group 1 is the region
# Compute Engine resource names (RFC 1035): auto-names add "-" and 7 characters to ours.
_RESOURCE_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LONGEST_CHILD_ROLE = "-control-plane-webhooks"

#: private.googleapis.com: the Private Google Access range for "most Google APIs and services" (Google
#: Cloud VPC docs, "Configure Private Google Access", Domain options), and its four A records.
PRIVATE_GOOGLE_APIS_CIDR = "199.36.153.8/30"
PRIVATE_GOOGLE_APIS_ADDRESSES = tuple(
    str(a) for a in ipaddress.IPv4Network(PRIVATE_GOOGLE_APIS_CIDR)
)  # 199.36.153.8 .. 199.36.153.11
GOOGLE_APIS_DOMAIN = "googleapis.com."
PRIVATE_GOOGLE_APIS_NAME = "private.googleapis.com."
_AUTONAME_SUFFIX = 8
_MAX_RESOURCE_NAME = 63


@dataclass(frozen=True, kw_only=True)
class NetworkArgs:
    """A VPC for one private GKE cluster."""

    region: str  # the subnet's, router's and NAT's region, e.g. europe-west4
    subnet_cidr: str  # primary range: nodes and internal load balancers, e.g. 10.0.0.0/20
    pods_cidr: str  # secondary range for pods, e.g. 10.16.0.0/14
    services_cidr: str  # secondary range for Services, e.g. 10.20.0.0/20
    control_plane_cidr: str  # the GKE control plane's /28, e.g. 172.16.0.0/28
    # A private googleapis.com zone sending Google APIs to private.googleapis.com (see the module docstring).
    private_google_apis_dns: bool = False


def region_problems(field_name: str, region: str) -> list[str]:
    if REGION.match(region or ""):
        return []
    zone = ZONE.match(region or "")
    if zone:
        return [f"{field_name}: {region!r} is a zone; give its region, {zone.group(1)}"]
    return [f"{field_name}: {region!r} is not a GCP region; write it like europe-west4 or us-central1"]


def ipv4_network_problems(field_name: str, cidr: str) -> tuple[ipaddress.IPv4Network | None, list[str]]:
    """The parsed network, or None and the problem (naming field_name)."""
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None, [f"{field_name}: {cidr!r} is not an IPv4 CIDR; write it like 10.0.0.0/20"]
        return None, [f"{field_name}: {cidr!r} has host bits set; did you mean {loose}?"]
    if not isinstance(network, ipaddress.IPv4Network):
        return None, [f"{field_name}: {cidr} is IPv6; GKE's node, pod and Service ranges are IPv4"]
    return network, []


def validate_network_args(args: NetworkArgs) -> list[str]:
    """Every problem with the args, each naming its field; empty when they are usable."""
    problems = region_problems("region", args.region)
    ranges: dict[str, ipaddress.IPv4Network] = {}
    for field_name in ("subnet_cidr", "pods_cidr", "services_cidr", "control_plane_cidr"):
        network, found = ipv4_network_problems(field_name, getattr(args, field_name))
        problems += found
        if network is not None:
            ranges[field_name] = network
    control_plane = ranges.get("control_plane_cidr")
    if control_plane is not None and control_plane.prefixlen != CONTROL_PLANE_PREFIX:
        problems.append(
            f"control_plane_cidr: {control_plane} is a /{control_plane.prefixlen}; GKE needs a "
            f"/{CONTROL_PLANE_PREFIX} such as 172.16.0.0/28"
        )
    pods = ranges.get("pods_cidr")
    if pods is not None and pods.prefixlen > SMALLEST_PODS_PREFIX:
        problems.append(
            f"pods_cidr: {pods} cannot hold one node's pod range (a /24 at 110 pods per node); use "
            f"/{SMALLEST_PODS_PREFIX} or larger, e.g. a /14 for up to 1,024 nodes"
        )
    named = list(ranges.items())
    for i, (a_name, a) in enumerate(named):
        for b_name, b in named[i + 1 :]:
            if a.overlaps(b):
                problems.append(
                    f"{a_name}/{b_name}: {a} and {b} overlap; GKE needs the node, pod, Service and "
                    "control-plane ranges disjoint"
                )
    return problems


def component_name_problems(name: str) -> list[str]:
    """Children are auto-named after the component, and Compute Engine names are RFC 1035 labels."""
    longest = len(name) + len(_LONGEST_CHILD_ROLE) + _AUTONAME_SUFFIX
    if not _RESOURCE_NAME.match(name or "") or longest > _MAX_RESOURCE_NAME:
        return [
            f"name: {name!r} must be lowercase letters, digits and -, start with a letter and be at most "
            f"{_MAX_RESOURCE_NAME - len(_LONGEST_CHILD_ROLE) - _AUTONAME_SUFFIX} characters (GCP resource names)"
        ]
    return []


class Network(pulumi.ComponentResource):
    """Custom-mode VPC, one subnet with pod and Service ranges, Cloud NAT, and the webhook firewall rule."""

    network_id: pulumi.Output[str]
    network_name: pulumi.Output[str]
    subnetwork_id: pulumi.Output[str]
    subnetwork_name: pulumi.Output[str]
    pods_range_name: str
    services_range_name: str
    nat: gcp.compute.RouterNat
    #: Where Google APIs answer for this VPC: [PRIVATE_GOOGLE_APIS_CIDR] with the private zone, else [].
    google_apis_cidrs: list[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args("Network", name, component_name_problems(name) + validate_network_args(args))
        super().__init__("inferstack:gcp:Network", name, None, opts)

        vpc = gcp.compute.Network(
            f"{name}-vpc",
            description="InferStack: VPC of one private GKE cluster",
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            # The default route to the internet gateway is how Cloud NAT egresses; keep it.
            delete_default_routes_on_create=False,
            opts=child(self),
        )
        self.pods_range_name = PODS_RANGE_NAME
        self.services_range_name = SERVICES_RANGE_NAME
        subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            description="InferStack: GKE nodes (primary), pods and Services (secondary ranges)",
            network=vpc.id,
            region=args.region,
            ip_cidr_range=args.subnet_cidr,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=PODS_RANGE_NAME, ip_cidr_range=args.pods_cidr
                ),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=SERVICES_RANGE_NAME, ip_cidr_range=args.services_cidr
                ),
            ],
            stack_type="IPV4_ONLY",
            # Nodes have no external IPs: Google APIs (image layers, model buckets) without the NAT.
            private_ip_google_access=True,
            log_config=gcp.compute.SubnetworkLogConfigArgs(
                aggregation_interval=FLOW_LOG_INTERVAL,
                flow_sampling=FLOW_LOG_SAMPLING,
                metadata=FLOW_LOG_METADATA,
            ),
            opts=child(self),
        )
        router = gcp.compute.Router(
            f"{name}-router",
            description="InferStack: Cloud NAT for the GKE subnet",
            network=vpc.id,
            region=args.region,
            opts=child(self),
        )
        self.nat = gcp.compute.RouterNat(
            f"{name}-nat",
            router=router.name,
            region=args.region,
            nat_ip_allocate_option="AUTO_ONLY",
            # Only this subnet, all of its ranges (nodes and pod alias IPs); any other subnet added to
            # the VPC later gets no internet egress unless someone decides it should.
            source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
            subnetworks=[
                gcp.compute.RouterNatSubnetworkArgs(
                    name=subnet.id, source_ip_ranges_to_nats=["ALL_IP_RANGES"]
                )
            ],
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=child(self),
        )
        # No target tags: the VPC holds this cluster's nodes only, and the source is the control plane's
        # /28, so the rule opens these ports to the Kubernetes API server and nothing else. Alias IPs
        # (pods) are covered by rules on their node, which is where webhook pods answer.
        gcp.compute.Firewall(
            f"{name}-control-plane-webhooks",
            description=(
                "InferStack: GKE control plane to admission webhooks and aggregated APIs on ports GKE's "
                "own rule does not open (KEDA metrics 6443, webhooks 8443 and 9443)"
            ),
            network=vpc.id,
            direction="INGRESS",
            priority=1000,
            source_ranges=[args.control_plane_cidr],
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=list(WEBHOOK_PORTS))],
            opts=child(self),
        )

        self.google_apis_cidrs = []
        if args.private_google_apis_dns:
            zone = gcp.dns.ManagedZone(
                f"{name}-googleapis",
                description="InferStack: Google APIs through private.googleapis.com (Private Google Access)",
                dns_name=GOOGLE_APIS_DOMAIN,
                visibility="private",
                private_visibility_config=gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
                    networks=[gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=vpc.id)]
                ),
                opts=child(self),
            )
            gcp.dns.RecordSet(
                f"{name}-googleapis-private",
                managed_zone=zone.name,
                name=PRIVATE_GOOGLE_APIS_NAME,
                type="A",
                ttl=300,
                rrdatas=list(PRIVATE_GOOGLE_APIS_ADDRESSES),
                opts=child(self),
            )
            gcp.dns.RecordSet(
                f"{name}-googleapis-wildcard",
                managed_zone=zone.name,
                name=f"*.{GOOGLE_APIS_DOMAIN}",
                type="CNAME",
                ttl=300,
                rrdatas=[PRIVATE_GOOGLE_APIS_NAME],
                opts=child(self),
            )
            self.google_apis_cidrs = [PRIVATE_GOOGLE_APIS_CIDR]

        self.network_id = vpc.id
        self.network_name = vpc.name
        self.subnetwork_id = subnet.id
        self.subnetwork_name = subnet.name
        self.register_outputs(
            {
                "network_id": self.network_id,
                "network_name": self.network_name,
                "subnetwork_id": self.subnetwork_id,
                "subnetwork_name": self.subnetwork_name,
                "pods_range_name": self.pods_range_name,
                "services_range_name": self.services_range_name,
                "google_apis_cidrs": self.google_apis_cidrs,
            }
        )
