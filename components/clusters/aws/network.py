"""Network: the VPC an EKS cluster lives in, built from plain pulumi_aws resources.

Per availability zone: a large private subnet for nodes and pods (the VPC CNI gives every pod a VPC
address, so pod density is bounded by subnet size) and a small public subnet for NAT gateways and
internet-facing load balancers. Private subnets leave through a NAT gateway (one per zone for
production, one shared for dev) and reach S3 through a gateway endpoint, so model downloads and image
layers pulled from S3-backed registries do not pay NAT data charges.

With `s3_interface_endpoint` (prod stacks whose model is in S3) the VPC also gets an S3 *interface*
endpoint in the private subnets with private DNS, so `s3.<region>.amazonaws.com` and
`*.s3.<region>.amazonaws.com` resolve to addresses inside the private subnets and the model server's
NetworkPolicy can limit its egress to those subnets on 443 (a NetworkPolicy has no prefix-list or DNS-name
peer, so the gateway endpoint, which routes S3's public addresses, cannot be expressed in one). Sources
(AWS, Amazon S3 user guide, "AWS PrivateLink for Amazon S3", section "Private DNS"; EC2 API reference,
DnsOptionsSpecification):
- private DNS for an S3 interface endpoint does not need the gateway endpoint; only the option
  `PrivateDnsOnlyForInboundResolverEndpoint` does, which "routes traffic that originates from the VPC to
  the gateway endpoint and traffic that originates from on-premises to the interface endpoint". We set it
  to false (pulumi-aws 7 VpcEndpointDnsOptionsArgs: "A gateway endpoint for the same service must be
  created before an interface endpoint is created" applies to that option only; false is its default, set
  here so that no provider default can flip it): traffic from the VPC must reach the interface endpoint, or
  S3 names resolve to public addresses again and the pod's narrowed egress drops every download;
- with private DNS on for all resolvers, every S3 request in the VPC (nodes' ECR layer pulls too) goes
  through the interface endpoint, billed per GB processed, where the gateway endpoint is free. The gateway
  endpoint stays for dev stacks and so that turning the option off never breaks S3 for the nodes.

Subnets carry the tags the AWS Load Balancer Controller and Karpenter discover them by.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components._common import child, reject_invalid_args
from components.clusters.aws.eks import cluster_name_problems

MIN_ZONES = 2  # EKS wants control-plane subnets in at least two zones
MAX_ZONES = 6

# The VPC is cut into 2**PRIVATE_SPLIT_BITS equal blocks: one per zone for the private subnets, the last
# one cut again (2**PUBLIC_SPLIT_BITS ways) for the public subnets; the block before it stays free for
# later tiers. From a /16: private /19 (8,190 addresses) and public /22 (1,022) per zone.
PRIVATE_SPLIT_BITS = 3
PUBLIC_SPLIT_BITS = 3
# AWS accepts VPC CIDRs from /16 to /28; below /20 a zone's private subnet (/23, 510 addresses) runs out
# of pod IPs after a handful of nodes, so we refuse smaller VPCs.
LARGEST_VPC_PREFIX = 16
SMALLEST_VPC_PREFIX = 20

ELB_ROLE_TAG = "kubernetes.io/role/elb"
INTERNAL_ELB_ROLE_TAG = "kubernetes.io/role/internal-elb"
KARPENTER_DISCOVERY_TAG = "karpenter.sh/discovery"


@dataclass(frozen=True)
class NetworkArgs:
    """A VPC for one EKS cluster."""

    cidr: str  # the VPC's IPv4 range, /16 to /20, e.g. 10.0.0.0/16
    availability_zone_count: int  # zones to spread subnets over, 2 to 6
    nat_gateway_per_zone: bool  # one NAT per zone (survives a zone outage) or one shared NAT (cheaper)
    cluster_name: str  # the exact EKS cluster name; subnet discovery tags carry it
    tags: dict[str, str] = field(default_factory=dict)  # added to every resource that takes tags
    # An S3 interface endpoint with private DNS in the private subnets (see the module docstring), so pods
    # reach S3 on private addresses only; costs an hourly fee per zone and a per-GB fee.
    s3_interface_endpoint: bool = False


@dataclass(frozen=True)
class SubnetPlan:
    """CIDRs per zone, in zone order."""

    private: list[str]
    public: list[str]


def cidr_problems(cidr: str, zone_count: int) -> list[str]:
    """Problems with a VPC CIDR for `zone_count` zones, each starting with `cidr:`."""
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return [f"cidr: {cidr!r} is not an IPv4 network; write it like 10.0.0.0/16"]
        return [f"cidr: {cidr!r} has host bits set; did you mean {loose}?"]
    if network.version != 4:
        return [f"cidr: {cidr!r} is IPv6; the VPC needs an IPv4 range such as 10.0.0.0/16"]
    if network.prefixlen < LARGEST_VPC_PREFIX:
        return [f"cidr: /{network.prefixlen} is larger than AWS allows for a VPC; use /16 to /20"]
    if network.prefixlen > SMALLEST_VPC_PREFIX:
        smallest = network.prefixlen + PRIVATE_SPLIT_BITS
        return [
            f"cidr: /{network.prefixlen} is too small: each zone's private subnet would be /{smallest} and "
            f"the VPC CNI gives every pod a VPC address; use /{SMALLEST_VPC_PREFIX} or larger (e.g. 10.0.0.0/16)"
        ]
    # One private block per zone, plus the block cut up for the public subnets.
    if zone_count + 1 > 2**PRIVATE_SPLIT_BITS or zone_count > 2**PUBLIC_SPLIT_BITS:
        return [f"cidr: {cidr} cannot hold subnets for {zone_count} zones; use at most {MAX_ZONES} zones"]
    return []


def subnet_cidrs(cidr: str, zone_count: int) -> SubnetPlan:
    """Private and public subnet CIDRs for `zone_count` zones (see PRIVATE_SPLIT_BITS); the layout only
    depends on the zone's index, so adding a zone later never moves an existing subnet."""
    problems = cidr_problems(cidr, zone_count)
    if problems:
        raise ValueError("; ".join(problems))
    blocks = list(ipaddress.IPv4Network(cidr).subnets(prefixlen_diff=PRIVATE_SPLIT_BITS))
    public_blocks = list(blocks[-1].subnets(prefixlen_diff=PUBLIC_SPLIT_BITS))
    return SubnetPlan(
        private=[str(b) for b in blocks[:zone_count]],
        public=[str(b) for b in public_blocks[:zone_count]],
    )


def validate_network_args(args: NetworkArgs) -> list[str]:
    """Every problem with the args, each naming its field; empty when they are usable."""
    problems: list[str] = []
    count_ok = MIN_ZONES <= args.availability_zone_count <= MAX_ZONES
    if not count_ok:
        problems.append(
            f"availability_zone_count: {args.availability_zone_count} is outside {MIN_ZONES}..{MAX_ZONES}; "
            f"EKS needs subnets in at least {MIN_ZONES} zones"
        )
    problems += cidr_problems(args.cidr, args.availability_zone_count if count_ok else MIN_ZONES)
    problems += cluster_name_problems(args.cluster_name)
    for key in args.tags:
        if key.lower().startswith("aws:"):
            problems.append(f"tags: {key!r} uses the reserved aws: prefix; rename the tag")
    return problems


def subnet_tags(tier: str, cluster_name: str, zone: str, tags: dict[str, str]) -> dict[str, str]:
    """Tags for one subnet: the load balancer controller picks public subnets for internet-facing NLBs
    and private ones for internal NLBs; Karpenter launches nodes into subnets tagged for its cluster."""
    discovery = {f"kubernetes.io/cluster/{cluster_name}": "shared"}
    if tier == "public":
        role = {ELB_ROLE_TAG: "1"}
    else:
        role = {INTERNAL_ELB_ROLE_TAG: "1", KARPENTER_DISCOVERY_TAG: cluster_name}
    return {**tags, "Name": f"{cluster_name}-{tier}-{zone}", **discovery, **role}


#: The port S3's interface endpoint is reached on (HTTPS; the launcher's boto3 client uses TLS).
S3_HTTPS_PORT = 443


class Network(pulumi.ComponentResource):
    """VPC, per-zone private and public subnets, NAT, routes, an S3 gateway endpoint and, optionally, an
    S3 interface endpoint with private DNS."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    public_subnet_ids: pulumi.Output[list[str]]
    availability_zones: list[str]
    private_route_table_ids: pulumi.Output[list[str]]
    nat_gateways: list[aws.ec2.NatGateway]
    #: Where S3 answers on private addresses: the private subnets' CIDRs when the interface endpoint is
    #: made (its network interfaces live there), else [] (S3 is reached on its public addresses).
    s3_private_cidrs: list[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args("Network", name, validate_network_args(args))
        super().__init__("inferstack:aws:Network", name, None, opts)

        # A plain list is needed to lay out subnets, so this data source is read synchronously. Parented,
        # so it asks the same provider (account, region) as the resources. Opted-in Local and Wavelength
        # Zones are left out: the EKS control plane cannot use their subnets.
        zones = aws.get_availability_zones(
            state="available",
            filters=[
                aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])
            ],
            opts=pulumi.InvokeOptions(parent=self),
        ).names
        if len(zones) < args.availability_zone_count:
            raise ValueError(
                f"Network {name!r}: availability_zone_count: {args.availability_zone_count} zones asked for "
                f"but the region has {len(zones)} available; lower availability_zone_count"
            )
        self.availability_zones = list(zones[: args.availability_zone_count])
        plan = subnet_cidrs(args.cidr, args.availability_zone_count)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region

        def tagged(role: str) -> dict[str, str]:
            return {**args.tags, "Name": f"{args.cluster_name}-{role}"}

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            # Both are needed for the EKS private endpoint and for nodes to resolve it.
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tagged("vpc"),
            opts=child(self),
        )
        # Adopting the default security group strips its rules: nothing may use a group that lets every
        # member talk to every other (CIS AWS 5.4).
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=vpc.id, tags=tagged("default-deny"), opts=child(self)
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tagged("igw"), opts=child(self))

        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        for i, zone in enumerate(self.availability_zones):
            public_subnets.append(
                aws.ec2.Subnet(
                    f"{name}-public-{i}",
                    vpc_id=vpc.id,
                    cidr_block=plan.public[i],
                    availability_zone=zone,
                    # Only NAT gateways and load balancers live here; nothing gets a public IP by itself.
                    map_public_ip_on_launch=False,
                    tags=subnet_tags("public", args.cluster_name, zone, args.tags),
                    opts=child(self),
                )
            )
            private_subnets.append(
                aws.ec2.Subnet(
                    f"{name}-private-{i}",
                    vpc_id=vpc.id,
                    cidr_block=plan.private[i],
                    availability_zone=zone,
                    tags=subnet_tags("private", args.cluster_name, zone, args.tags),
                    opts=child(self),
                )
            )

        public_routes = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags=tagged("public"),
            opts=child(self),
        )
        for i, subnet in enumerate(public_subnets):
            aws.ec2.RouteTableAssociation(
                f"{name}-public-rta-{i}",
                subnet_id=subnet.id,
                route_table_id=public_routes.id,
                opts=child(self),
            )

        nat_zones = range(len(self.availability_zones)) if args.nat_gateway_per_zone else range(1)
        self.nat_gateways = []
        for i in nat_zones:
            zone = self.availability_zones[i]
            eip = aws.ec2.Eip(
                f"{name}-nat-eip-{i}", domain="vpc", tags=tagged(f"nat-{zone}"), opts=child(self)
            )
            self.nat_gateways.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{i}",
                    allocation_id=eip.id,
                    subnet_id=public_subnets[i].id,
                    connectivity_type="public",
                    tags=tagged(f"nat-{zone}"),
                    # A NAT gateway only passes traffic once the VPC has its internet gateway.
                    opts=child(self, depends_on=[igw]),
                )
            )

        # One private route table per zone even with a shared NAT, so switching to per-zone NAT only
        # changes routes, never subnet associations.
        private_tables: list[aws.ec2.RouteTable] = []
        for i, subnet in enumerate(private_subnets):
            nat = self.nat_gateways[i] if args.nat_gateway_per_zone else self.nat_gateways[0]
            table = aws.ec2.RouteTable(
                f"{name}-private-rt-{i}",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
                tags=tagged(f"private-{self.availability_zones[i]}"),
                opts=child(self),
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-rta-{i}", subnet_id=subnet.id, route_table_id=table.id, opts=child(self)
            )
            private_tables.append(table)

        # Gateway endpoints are free and keep S3 traffic (model weights, ECR layers) off the NAT.
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=region.apply(lambda r: f"com.amazonaws.{r}.s3"),
            vpc_endpoint_type="Gateway",
            route_table_ids=[t.id for t in private_tables],
            tags=tagged("s3"),
            opts=child(self),
        )

        self.s3_private_cidrs = []
        if args.s3_interface_endpoint:
            # The endpoint's network interfaces accept HTTPS from inside the VPC only.
            endpoint_sg = aws.ec2.SecurityGroup(
                f"{name}-s3-endpoint",
                description="S3 interface endpoint: HTTPS from inside the VPC",
                vpc_id=vpc.id,
                ingress=[
                    aws.ec2.SecurityGroupIngressArgs(
                        description="HTTPS to S3 from the VPC (pods and nodes)",
                        protocol="tcp",
                        from_port=S3_HTTPS_PORT,
                        to_port=S3_HTTPS_PORT,
                        cidr_blocks=[args.cidr],
                    )
                ],
                # No egress: an endpoint's interfaces only answer; they open no connection.
                egress=[],
                tags=tagged("s3-endpoint"),
                opts=child(self),
            )
            aws.ec2.VpcEndpoint(
                f"{name}-s3-interface",
                vpc_id=vpc.id,
                service_name=region.apply(lambda r: f"com.amazonaws.{r}.s3"),
                vpc_endpoint_type="Interface",
                subnet_ids=[s.id for s in private_subnets],
                security_group_ids=[endpoint_sg.id],
                private_dns_enabled=True,
                # False: requests from the VPC resolve to this endpoint, not to the gateway endpoint's
                # public addresses (see the module docstring).
                dns_options=aws.ec2.VpcEndpointDnsOptionsArgs(
                    dns_record_ip_type="ipv4", private_dns_only_for_inbound_resolver_endpoint=False
                ),
                tags=tagged("s3-interface"),
                opts=child(self),
            )
            self.s3_private_cidrs = list(plan.private)

        self.vpc_id = vpc.id
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets])
        self.private_route_table_ids = pulumi.Output.all(*[t.id for t in private_tables])
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
                "availability_zones": self.availability_zones,
                "private_route_table_ids": self.private_route_table_ids,
                "s3_private_cidrs": self.s3_private_cidrs,
            }
        )
