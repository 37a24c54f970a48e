"""AzureNetwork: the VNet an AKS cluster with Azure CNI Overlay lives in, built from azure-native resources.

Address plan. The VNet holds three subnets: nodes (and internal load balancers), private endpoints (the
model store's Blob endpoint, Key Vault), and a small one delegated to AKS for API Server VNet Integration
(every cluster puts its API server's internal load balancer there). Pods and Services are NOT in the
VNet: with Azure CNI Overlay "pods are assigned IP addresses from a private CIDR logically different from
the VNet hosting the nodes", each node takes a /24 of it, and pod traffic leaving the cluster is NATed to
the node's IP (learn.microsoft.com, "Azure CNI Overlay networking in AKS", Overview). The Service CIDR
and the DNS service IP must not overlap any subnet either (AKS network profile `serviceCidr`: "It must not
overlap with any Subnet IP ranges"). `validate_azure_network_args` checks all of this before anything is
created.

Egress. A Standard NAT gateway with one Standard static public IP serves the node subnet; the cluster uses
outboundType `userAssignedNATGateway`, so AKS creates no outbound rules of its own and every node and pod
leaves from the one address a model hub or registry can allow-list. Subnets set `defaultOutboundAccess:
false`: nothing in them gets Azure's implicit (retiring) default outbound address.

Network security groups. AKS with a bring-your-own subnet "doesn't apply NSGs to its subnet and doesn't
modify any NSGs associated with that subnet"; it manages its own NSG on the node NICs (in the node
resource group), where cloud-provider-azure adds the rules for each LoadBalancer Service. Both NSGs are
evaluated, so our subnet NSG must itself admit what the gateway's load balancer forwards. We choose an
explicit subnet NSG rather than none: the Azure default rules (AllowVnetInBound, AllowAzureLoadBalancer-
InBound, DenyAllInBound) stay, and we add, by priority:
  - node <-> pod CIDR traffic, which the VirtualNetwork service tag does not cover because the overlay
    pod CIDR is outside the VNet (the AKS overlay docs list node->node, node->pod and pod->pod as the
    flows a subnet NSG must allow, since pod-to-pod traffic is not encapsulated);
  - for a public gateway (`public_ingress`), its ports (`ingress_ports`) from `ingress_source_cidrs`, or
    from the Internet service tag when none are listed; an internal gateway gets no internet rule at all;
  - an explicit DenyInternetInbound at the lowest custom priority, so the "no internet inbound" rule is
    written down and does not depend on Azure's default rule set.
The private-endpoint subnet NSG admits 443 from the VNet only; `privateEndpointNetworkPolicies: Enabled`
makes Azure apply NSGs to private endpoints at all (they bypass them otherwise).

Private DNS. privatelink.blob.core.windows.net and privatelink.vaultcore.azure.net are linked to the VNet
(the zone names from learn.microsoft.com "Azure Private Endpoint private DNS zone values": Storage blob
-> privatelink.blob.core.windows.net, Key Vault vault -> privatelink.vaultcore.azure.net), so the public
names of the storage account and the vault resolve to their private endpoints from nodes and pods.
`AzureNetwork.private_endpoint` makes one endpoint and its DNS zone group for a resource id.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum

import pulumi
import pulumi_azure_native.network as network
import pulumi_azure_native.privatedns as privatedns

from components._common import child, reject_invalid_args
from components.clusters.api_access import api_cidr_problems


class PrivateLinkGroup(StrEnum):
    """A private endpoint's target sub-resource (groupId), as the Private Link API spells it."""

    BLOB = "blob"
    VAULT = "vault"


#: Private DNS zone per group id (learn.microsoft.com, "Azure Private Endpoint private DNS zone values",
#: Azure public cloud: Storage account / blob and Key Vault / vault).
PRIVATE_DNS_ZONES: dict[PrivateLinkGroup, str] = {
    PrivateLinkGroup.BLOB: "privatelink.blob.core.windows.net",
    PrivateLinkGroup.VAULT: "privatelink.vaultcore.azure.net",
}

#: Azure CNI Overlay gives each node a /24 of the pod CIDR, so a smaller CIDR cannot hold one node.
SMALLEST_POD_PREFIX = 24
#: API Server VNet Integration: "the subnet must be at least a /28" and delegated to AKS
#: (learn.microsoft.com, "API Server VNet Integration", Prerequisites / bring your own VNet).
LARGEST_API_SERVER_PREFIX = 28
API_SERVER_DELEGATION = "Microsoft.ContainerService/managedClusters"
#: Azure reserves 5 addresses per subnet; a node subnet smaller than a /28 holds too few nodes to surge.
LARGEST_NODE_PREFIX = 28
NAT_IDLE_TIMEOUT_MINUTES = (4, 120)  # Azure NAT gateway's allowed range

# NSG priorities (100-4096; lower wins). Allows first, our explicit deny last of the custom ones.
PRIORITY_NODE_TO_NODE = 100
PRIORITY_NODE_TO_POD = 110
PRIORITY_POD_TO_POD = 120
PRIORITY_API_SERVER_TO_POD = 130
PRIORITY_GATEWAY = 200
PRIORITY_PRIVATE_ENDPOINT_HTTPS = 100
PRIORITY_LOAD_BALANCER_PROBES = 4000
PRIORITY_DENY_INTERNET = 4096

_LOCATION = re.compile(r"^[a-z]+[a-z0-9]*$")  # westeurope, eastus2, swedencentral
_COMPONENT_NAME = re.compile(r"^[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class AzureNetworkArgs:
    """A VNet for one AKS cluster using Azure CNI Overlay (pods and Services outside the VNet)."""

    resource_group_name: pulumi.Input[str]  # the stack's resource group (made by the composition)
    location: str  # Azure region name, e.g. westeurope
    vnet_cidr: str  # the VNet's address space, e.g. 10.40.0.0/16
    node_subnet_cidr: str  # nodes and internal load balancers, e.g. 10.40.0.0/22
    private_endpoint_subnet_cidr: str  # private endpoints (Blob, Key Vault), e.g. 10.40.4.0/24
    api_server_subnet_cidr: (
        str  # API Server VNet Integration, a /28 or larger (a /27 advised), e.g. 10.40.5.0/27
    )
    pod_cidr: str  # overlay pod CIDR, outside the VNet, e.g. 192.168.0.0/16 (a /24 per node)
    service_cidr: str  # Kubernetes Services, outside the VNet and the pod CIDR, e.g. 172.16.0.0/16
    dns_service_ip: str  # kube-dns ClusterIP, inside service_cidr, e.g. 172.16.0.10
    # The gateway's Service is a public load balancer: its ports are admitted from the internet through the
    # node subnet NSG (from ingress_source_cidrs only, when listed). False: an internal load balancer, which
    # VNet traffic reaches under Azure's AllowVnetInBound rule.
    public_ingress: bool = False
    ingress_source_cidrs: list[str] = field(default_factory=list)  # [] with public_ingress: everyone
    ingress_ports: list[int] = field(default_factory=lambda: [443])  # the gateway's listener ports
    nat_idle_timeout_minutes: int = 4  # outbound flow idle timeout, 4..120 (Azure's default is 4)
    # A public API server (API Server VNet Integration on a public cluster): HTTPS into its subnet.
    public_api_server: bool = False
    # A Microsoft.Storage service endpoint on the node subnet: nodes then reach storage accounts in the
    # region over the Azure backbone with the subnet's identity, which a storage firewall can admit
    # (virtualNetworkRules) where the account keeps its public endpoint (a dev model store).
    storage_service_endpoint: bool = False
    tags: dict[str, str] = field(default_factory=dict)  # Azure tags on every resource


def _network(field_name: str, cidr: str) -> tuple[ipaddress.IPv4Network | None, list[str]]:
    try:
        parsed = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None, [f"{field_name}: {cidr!r} is not an IPv4 CIDR; write it like 10.40.0.0/16"]
        return None, [f"{field_name}: {cidr!r} has host bits set; did you mean {loose}?"]
    if not isinstance(parsed, ipaddress.IPv4Network):
        return None, [f"{field_name}: {cidr} is IPv6; this network is single-stack IPv4"]
    return parsed, []


def address_plan_problems(
    *, vnet_cidr: str, subnets: dict[str, str], pod_cidr: str, service_cidr: str, dns_service_ip: str
) -> list[str]:
    """Problems with an Azure CNI Overlay address plan, each naming its field.

    `subnets` maps field name -> CIDR (each must lie inside the VNet, disjoint from the others); the pod and
    Service CIDRs must lie outside the VNet and apart from each other; the DNS service IP inside the
    Service CIDR, not its first address (Kubernetes gives .1 to the `kubernetes` Service).
    """
    problems: list[str] = []
    vnet, found = _network("vnet_cidr", vnet_cidr)
    problems += found
    inside: dict[str, ipaddress.IPv4Network] = {}
    for field_name, cidr in subnets.items():
        subnet, found = _network(field_name, cidr)
        problems += found
        if subnet is None:
            continue
        inside[field_name] = subnet
        if vnet is not None and not subnet.subnet_of(vnet):
            problems.append(f"{field_name}: {subnet} is not inside vnet_cidr {vnet}; pick a range within it")
    named = list(inside.items())
    for i, (a_name, a) in enumerate(named):
        for b_name, b in named[i + 1 :]:
            if a.overlaps(b):
                problems.append(f"{a_name}/{b_name}: {a} and {b} overlap; subnets of one VNet are disjoint")
    problems += overlay_ranges_problems(
        pod_cidr=pod_cidr, service_cidr=service_cidr, dns_service_ip=dns_service_ip, vnet=vnet
    )
    return problems


def overlay_ranges_problems(
    *, pod_cidr: str, service_cidr: str, dns_service_ip: str, vnet: ipaddress.IPv4Network | None = None
) -> list[str]:
    """Problems with the overlay pod CIDR, the Service CIDR and the DNS service IP (and, when `vnet` is
    given, their overlap with it), each naming its field."""
    problems: list[str] = []
    outside: dict[str, ipaddress.IPv4Network] = {}
    for field_name, cidr in (("pod_cidr", pod_cidr), ("service_cidr", service_cidr)):
        parsed, found = _network(field_name, cidr)
        problems += found
        if parsed is None:
            continue
        outside[field_name] = parsed
        if vnet is not None and parsed.overlaps(vnet):
            problems.append(
                f"{field_name}: {parsed} overlaps vnet_cidr {vnet}; with Azure CNI Overlay pods and Services "
                "use ranges outside the VNet (e.g. 192.168.0.0/16 for pods, 172.16.0.0/16 for Services)"
            )
    pods, services = outside.get("pod_cidr"), outside.get("service_cidr")
    if pods is not None and pods.prefixlen > SMALLEST_POD_PREFIX:
        problems.append(
            f"pod_cidr: {pods} cannot hold one node (Azure CNI Overlay gives each node a /24); use "
            f"/{SMALLEST_POD_PREFIX} or larger, e.g. a /16 for up to 256 nodes"
        )
    if pods is not None and services is not None and pods.overlaps(services):
        problems.append(f"pod_cidr/service_cidr: {pods} and {services} overlap; give them disjoint ranges")
    try:
        dns = ipaddress.ip_address(dns_service_ip)
    except ValueError:
        problems.append(f"dns_service_ip: {dns_service_ip!r} is not an IP address; e.g. 172.16.0.10")
    else:
        if services is not None and (dns not in services or dns in (services[0], services[1])):
            problems.append(
                f"dns_service_ip: {dns} must be inside service_cidr {services} and not its first two "
                f"addresses (network address, the kubernetes Service); e.g. {services[min(10, services.num_addresses - 2)]}"
            )
    return problems


def validate_azure_network_args(args: AzureNetworkArgs) -> list[str]:
    """Every problem with the args, each naming its field; empty when they are usable."""
    problems: list[str] = []
    if not _LOCATION.match(args.location or ""):
        problems.append(
            f"location: {args.location!r} is not an Azure region name; write it like westeurope or eastus2 "
            "(az account list-locations -o table, the Name column)"
        )
    problems += address_plan_problems(
        vnet_cidr=args.vnet_cidr,
        subnets={
            "node_subnet_cidr": args.node_subnet_cidr,
            "private_endpoint_subnet_cidr": args.private_endpoint_subnet_cidr,
            "api_server_subnet_cidr": args.api_server_subnet_cidr,
        },
        pod_cidr=args.pod_cidr,
        service_cidr=args.service_cidr,
        dns_service_ip=args.dns_service_ip,
    )
    nodes, _ = _network("node_subnet_cidr", args.node_subnet_cidr)
    if nodes is not None and nodes.prefixlen > LARGEST_NODE_PREFIX:
        problems.append(
            f"node_subnet_cidr: {nodes} is too small for a node pool and its upgrade surge; use a "
            f"/{LARGEST_NODE_PREFIX} or larger (a /22 holds ~1,000 nodes)"
        )
    api, _ = _network("api_server_subnet_cidr", args.api_server_subnet_cidr)
    if api is not None and api.prefixlen > LARGEST_API_SERVER_PREFIX:
        problems.append(
            f"api_server_subnet_cidr: {api} is smaller than the /{LARGEST_API_SERVER_PREFIX} API Server VNet "
            "Integration needs"
        )
    if args.ingress_source_cidrs and not args.public_ingress:
        problems.append(
            "public_ingress/ingress_source_cidrs: source CIDRs only apply to a public gateway; set "
            "public_ingress or drop the list (an internal load balancer is reached from the VNet)"
        )
    problems += api_cidr_problems(
        "ingress_source_cidrs",
        args.ingress_source_cidrs,
        open_fix="leave the list empty to open a public gateway to everyone deliberately",
        ipv6_refusal="this VNet is IPv4-only",
    )
    for i, port in enumerate(args.ingress_ports):
        if not 1 <= port <= 65535:
            problems.append(f"ingress_ports[{i}]: {port} is not a TCP port (1..65535)")
    if len(set(args.ingress_ports)) != len(args.ingress_ports):
        problems.append("ingress_ports: lists a port twice; drop the repeat")
    low, high = NAT_IDLE_TIMEOUT_MINUTES
    if not low <= args.nat_idle_timeout_minutes <= high:
        problems.append(
            f"nat_idle_timeout_minutes: {args.nat_idle_timeout_minutes} is outside {low}..{high} "
            "(Azure NAT gateway's range)"
        )
    return problems


def component_name_problems(name: str) -> list[str]:
    if not _COMPONENT_NAME.match(name or ""):
        return [
            f"name: {name!r} must be 1-40 lowercase letters, digits and -, start with a letter and not end "
            "with - (children are named after it)"
        ]
    return []


def _rule(
    name: str,
    *,
    priority: int,
    access: str,
    source: str | list[str],
    destination: str,
    ports: list[str] | None = None,
    protocol: str = "*",
) -> network.SecurityRuleArgs:
    """One inbound NSG rule; `source` is a CIDR, a service tag, or a list of CIDRs."""
    port_list = ports or ["*"]
    return network.SecurityRuleArgs(
        name=name,
        priority=priority,
        direction="Inbound",
        access=access,
        protocol=protocol,
        source_port_range="*",
        source_address_prefix=source if isinstance(source, str) else None,
        source_address_prefixes=source if isinstance(source, list) else None,
        destination_address_prefix=destination,
        destination_port_range=port_list[0] if len(port_list) == 1 else None,
        destination_port_ranges=port_list if len(port_list) > 1 else None,
    )


def node_subnet_rules(args: AzureNetworkArgs) -> list[network.SecurityRuleArgs]:
    """The node subnet NSG's custom rules (see the module docstring for why each one exists)."""
    rules = [
        _rule(
            "allow-node-to-node",
            priority=PRIORITY_NODE_TO_NODE,
            access="Allow",
            source=args.node_subnet_cidr,
            destination=args.node_subnet_cidr,
        ),
        _rule(
            "allow-node-to-pod",
            priority=PRIORITY_NODE_TO_POD,
            access="Allow",
            source=args.node_subnet_cidr,
            destination=args.pod_cidr,
        ),
        _rule(
            "allow-pod-to-pod",
            priority=PRIORITY_POD_TO_POD,
            access="Allow",
            source=args.pod_cidr,
            destination=args.pod_cidr,
        ),
        # The VNet-integrated API server calls webhooks and aggregated APIs on pod addresses (the KEDA
        # metrics server, cert-manager's webhook) from its delegated subnet.
        _rule(
            "allow-api-server-to-pod",
            priority=PRIORITY_API_SERVER_TO_POD,
            access="Allow",
            source=args.api_server_subnet_cidr,
            destination=args.pod_cidr,
        ),
    ]
    if args.public_ingress:
        # Destination "*": a public load balancer keeps its frontend IP as the destination (floating IP),
        # which is not in the VNet, and the frontend IP is only known once cloud-provider-azure makes it.
        rules.append(
            _rule(
                "allow-gateway-inbound",
                priority=PRIORITY_GATEWAY,
                access="Allow",
                source=list(args.ingress_source_cidrs) or "Internet",
                destination="*",
                ports=[str(p) for p in args.ingress_ports],
                protocol="Tcp",
            )
        )
    # The load balancer's health probes come from 168.63.129.16 (the AzureLoadBalancer tag). Azure's default
    # AllowAzureLoadBalancerInBound (65001) admits them, but only if no rule before it denies them: allowed
    # here, ahead of the internet deny, so a probe is never caught by whatever "Internet" covers.
    rules.append(
        _rule(
            "allow-azure-load-balancer",
            priority=PRIORITY_LOAD_BALANCER_PROBES,
            access="Allow",
            source="AzureLoadBalancer",
            destination="*",
        )
    )
    rules.append(
        _rule(
            "deny-internet-inbound",
            priority=PRIORITY_DENY_INTERNET,
            access="Deny",
            source="Internet",
            destination="*",
        )
    )
    return rules


class AzureNetwork(pulumi.ComponentResource):
    """VNet, node / private-endpoint / API-server subnets with NSGs, a NAT gateway, private DNS zones."""

    vnet_id: pulumi.Output[str]
    vnet_name: pulumi.Output[str]
    node_subnet_id: pulumi.Output[str]
    private_endpoint_subnet_id: pulumi.Output[str]
    api_server_subnet_id: pulumi.Output[str]
    nat_public_ip: pulumi.Output[str]
    #: group id -> the private DNS zone's resource id
    private_dns_zone_ids: dict[PrivateLinkGroup, pulumi.Output[str]]
    pod_cidr: str
    service_cidr: str
    dns_service_ip: str

    def __init__(self, name: str, args: AzureNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args(
            "AzureNetwork", name, component_name_problems(name) + validate_azure_network_args(args)
        )
        super().__init__("inferstack:azure:Network", name, None, opts)
        self._args = args
        self._name = name
        tags = dict(args.tags)
        rg = args.resource_group_name

        public_ip = network.PublicIPAddress(
            f"{name}-nat-ip",
            resource_group_name=rg,
            location=args.location,
            sku=network.PublicIPAddressSkuArgs(name="Standard", tier="Regional"),
            public_ip_allocation_method="Static",
            public_ip_address_version="IPv4",
            tags=tags,
            opts=child(self),
        )
        nat = network.NatGateway(
            f"{name}-nat",
            resource_group_name=rg,
            location=args.location,
            sku=network.NatGatewaySkuArgs(name="Standard"),
            idle_timeout_in_minutes=args.nat_idle_timeout_minutes,
            public_ip_addresses=[network.SubResourceArgs(id=public_ip.id)],
            tags=tags,
            opts=child(self),
        )
        node_nsg = network.NetworkSecurityGroup(
            f"{name}-nodes-nsg",
            resource_group_name=rg,
            location=args.location,
            security_rules=node_subnet_rules(args),
            tags=tags,
            opts=child(self),
        )
        endpoint_nsg = network.NetworkSecurityGroup(
            f"{name}-endpoints-nsg",
            resource_group_name=rg,
            location=args.location,
            security_rules=[
                _rule(
                    "allow-vnet-https",
                    priority=PRIORITY_PRIVATE_ENDPOINT_HTTPS,
                    access="Allow",
                    source="VirtualNetwork",
                    destination=args.private_endpoint_subnet_cidr,
                    ports=["443"],
                    protocol="Tcp",
                ),
                _rule(
                    "deny-internet-inbound",
                    priority=PRIORITY_DENY_INTERNET,
                    access="Deny",
                    source="Internet",
                    destination="*",
                ),
            ],
            tags=tags,
            opts=child(self),
        )
        # The API server subnet keeps Azure's default rules (node subnet -> 443/4443 is VirtualNetwork
        # traffic) plus the explicit internet deny, with the internal load balancer's probes (TCP 9988,
        # from AzureLoadBalancer: AKS docs, "API Server VNet Integration", network security groups) allowed
        # ahead of it; and, for a public API server, HTTPS from anywhere: AKS's authorizedIPRanges decide
        # who gets in, and they follow the stack file where an NSG rule here would have to be kept in step.
        api_rules = [
            _rule(
                "allow-azure-load-balancer",
                priority=PRIORITY_LOAD_BALANCER_PROBES,
                access="Allow",
                source="AzureLoadBalancer",
                destination="*",
            ),
            _rule(
                "deny-internet-inbound",
                priority=PRIORITY_DENY_INTERNET,
                access="Deny",
                source="Internet",
                destination="*",
            ),
        ]
        if args.public_api_server:
            api_rules.insert(
                0,
                _rule(
                    "allow-api-server-https",
                    priority=PRIORITY_GATEWAY,
                    access="Allow",
                    source="Internet",
                    destination="*",
                    ports=["443"],
                    protocol="Tcp",
                ),
            )
        api_nsg = network.NetworkSecurityGroup(
            f"{name}-apiserver-nsg",
            resource_group_name=rg,
            location=args.location,
            security_rules=api_rules,
            tags=tags,
            opts=child(self),
        )
        vnet = network.VirtualNetwork(
            f"{name}-vnet",
            resource_group_name=rg,
            location=args.location,
            address_space=network.AddressSpaceArgs(address_prefixes=[args.vnet_cidr]),
            tags=tags,
            # Subnets are separate resources below; the VNet must not plan to remove them on a refresh.
            opts=child(self, ignore_changes=["subnets"]),
        )
        # Subnets of one VNet are created one after another: Azure refuses concurrent subnet writes on a
        # VNet ("AnotherOperationInProgress"), so each waits for the previous.
        node_subnet = network.Subnet(
            f"{name}-nodes",
            resource_group_name=rg,
            virtual_network_name=vnet.name,
            address_prefix=args.node_subnet_cidr,
            network_security_group=network.NetworkSecurityGroupArgs(id=node_nsg.id),
            nat_gateway=network.SubResourceArgs(id=nat.id),
            default_outbound_access=False,
            service_endpoints=(
                [network.ServiceEndpointPropertiesFormatArgs(service="Microsoft.Storage")]
                if args.storage_service_endpoint
                else None
            ),
            opts=child(self),
        )
        endpoint_subnet = network.Subnet(
            f"{name}-endpoints",
            resource_group_name=rg,
            virtual_network_name=vnet.name,
            address_prefix=args.private_endpoint_subnet_cidr,
            network_security_group=network.NetworkSecurityGroupArgs(id=endpoint_nsg.id),
            # NSGs apply to private endpoints only with network policies on.
            private_endpoint_network_policies="Enabled",
            default_outbound_access=False,
            opts=child(self, depends_on=[node_subnet]),
        )
        api_subnet = network.Subnet(
            f"{name}-apiserver",
            resource_group_name=rg,
            virtual_network_name=vnet.name,
            address_prefix=args.api_server_subnet_cidr,
            network_security_group=network.NetworkSecurityGroupArgs(id=api_nsg.id),
            delegations=[network.DelegationArgs(name="aks-apiserver", service_name=API_SERVER_DELEGATION)],
            default_outbound_access=False,
            opts=child(self, depends_on=[endpoint_subnet]),
        )

        self.private_dns_zone_ids = {}
        for group, zone_name in PRIVATE_DNS_ZONES.items():
            zone = privatedns.PrivateZone(
                f"{name}-{group.value}-dns",
                resource_group_name=rg,
                private_zone_name=zone_name,
                location="global",  # private DNS zones are global resources
                tags=tags,
                opts=child(self),
            )
            privatedns.VirtualNetworkLink(
                f"{name}-{group.value}-dns-link",
                resource_group_name=rg,
                private_zone_name=zone.name,
                location="global",
                virtual_network=privatedns.SubResourceArgs(id=vnet.id),
                # Resolution only: VMs must not register their own names in a privatelink zone.
                registration_enabled=False,
                tags=tags,
                opts=child(self),
            )
            self.private_dns_zone_ids[group] = zone.id

        self.vnet_id = vnet.id
        self.vnet_name = vnet.name
        self.node_subnet_id = node_subnet.id
        self.private_endpoint_subnet_id = endpoint_subnet.id
        self.api_server_subnet_id = api_subnet.id
        self.nat_public_ip = public_ip.ip_address.apply(lambda ip: ip or "")
        self.pod_cidr = args.pod_cidr
        self.service_cidr = args.service_cidr
        self.dns_service_ip = args.dns_service_ip
        self.register_outputs(
            {
                "vnet_id": self.vnet_id,
                "node_subnet_id": self.node_subnet_id,
                "private_endpoint_subnet_id": self.private_endpoint_subnet_id,
                "api_server_subnet_id": self.api_server_subnet_id,
                "nat_public_ip": self.nat_public_ip,
                "private_dns_zone_ids": {g.value: z for g, z in self.private_dns_zone_ids.items()},
            }
        )

    def private_endpoint(
        self,
        role: str,
        *,
        resource_id: pulumi.Input[str],
        group: PrivateLinkGroup,
        parent: pulumi.Resource,
        depends_on: list[pulumi.Resource] | None = None,
    ) -> network.PrivateEndpoint:
        """A private endpoint for `resource_id`'s `group` sub-resource in the private-endpoint subnet, and
        the DNS zone group that writes its A record into the matching privatelink zone.

        `role` names the children (f"{role}-pe", f"{role}-pe-dns"); `parent` is the calling component, so
        the endpoint is destroyed with what it serves. Raises ValueError for an unknown group.
        """
        if group not in PRIVATE_DNS_ZONES:
            raise ValueError(
                f"group: {group!r} has no private DNS zone here; use one of {list(PRIVATE_DNS_ZONES)}"
            )
        endpoint = network.PrivateEndpoint(
            f"{role}-pe",
            resource_group_name=self._args.resource_group_name,
            location=self._args.location,
            subnet=network.SubnetArgs(id=self.private_endpoint_subnet_id),
            private_link_service_connections=[
                network.PrivateLinkServiceConnectionArgs(
                    name=f"{role}-{group.value}",
                    private_link_service_id=resource_id,
                    group_ids=[group.value],
                )
            ],
            tags=dict(self._args.tags),
            opts=child(parent, depends_on=depends_on or []),
        )
        network.PrivateDnsZoneGroup(
            f"{role}-pe-dns",
            resource_group_name=self._args.resource_group_name,
            private_endpoint_name=endpoint.name,
            private_dns_zone_group_name="default",
            private_dns_zone_configs=[
                network.PrivateDnsZoneConfigArgs(
                    name=PRIVATE_DNS_ZONES[group].replace(".", "-"),
                    private_dns_zone_id=self.private_dns_zone_ids[group],
                )
            ],
            opts=child(parent),
        )
        return endpoint
