"""Network: per-zone private/public subnets that do not overlap, tagged for discovery, private egress
through NAT (per zone or shared), S3 through a gateway endpoint, and a default security group with no rules."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.clusters.aws.network import (
    Network,
    NetworkArgs,
    cidr_problems,
    subnet_cidrs,
    subnet_tags,
    validate_network_args,
)
from inferstack.planning.recording import RecordedResource, Recording, run_program

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
NAT = "aws:ec2/natGateway:NatGateway"
EIP = "aws:ec2/eip:Eip"
IGW = "aws:ec2/internetGateway:InternetGateway"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
CLUSTER = "inferstack-prod"


def network_args(**changes: Any) -> NetworkArgs:
    base = NetworkArgs(
        cidr="10.0.0.0/16",
        availability_zone_count=3,
        nat_gateway_per_zone=True,
        cluster_name=CLUSTER,
        tags={"team": "ml-platform"},
    )
    return dataclasses.replace(base, **changes)


def render(args: NetworkArgs, name: str = "net") -> tuple[Recording, Network]:
    made: list[Network] = []
    rec = run_program(lambda: made.append(Network(name, args)))
    return rec, made[0]


def subnets(rec: Recording, tier: str) -> list[RecordedResource]:
    return sorted((s for s in rec.of_type(SUBNET) if f"-{tier}-" in s.name), key=lambda s: s.name)


def by_id(rec: Recording, type_token: str) -> dict[str, RecordedResource]:
    return {r.id or "": r for r in rec.of_type(type_token)}


def route_table_of(rec: Recording, subnet: RecordedResource) -> RecordedResource:
    (assoc,) = [a for a in rec.of_type(ASSOCIATION) if a.inputs["subnetId"] == subnet.id]
    return by_id(rec, ROUTE_TABLE)[assoc.inputs["routeTableId"]]


def default_route(table: RecordedResource) -> dict[str, Any]:
    (route,) = [r for r in table.inputs["routes"] if r["cidrBlock"] == "0.0.0.0/0"]
    return route


# --- layout ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("zones", [2, 3, 6])
def test_one_private_and_one_public_subnet_per_zone_in_distinct_zones(zones: int) -> None:
    rec, net = render(network_args(availability_zone_count=zones))
    private, public = subnets(rec, "private"), subnets(rec, "public")
    assert len(private) == len(public) == zones
    assert net.availability_zones == [f"us-east-1{x}" for x in "abcdef"[:zones]]
    assert [s.inputs["availabilityZone"] for s in private] == net.availability_zones
    assert [s.inputs["availabilityZone"] for s in public] == net.availability_zones


def test_subnets_lie_inside_the_vpc_and_do_not_overlap() -> None:
    rec, _ = render(network_args(availability_zone_count=6))
    vpc = ipaddress.ip_network(rec.one(VPC).inputs["cidrBlock"])
    assert str(vpc) == "10.0.0.0/16"
    nets = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in rec.of_type(SUBNET)]
    assert len(nets) == 12
    for i, a in enumerate(nets):
        assert a.subnet_of(vpc)  # type: ignore[arg-type]
        for b in nets[i + 1 :]:
            assert not a.overlaps(b), (a, b)


def test_private_subnets_are_large_enough_for_pod_ips() -> None:
    rec, _ = render(network_args())
    for s in subnets(rec, "private"):
        assert ipaddress.ip_network(s.inputs["cidrBlock"]).prefixlen == 19  # 8,190 addresses from a /16
    for s in subnets(rec, "public"):
        assert ipaddress.ip_network(s.inputs["cidrBlock"]).prefixlen == 22
        assert s.inputs.get("mapPublicIpOnLaunch") is False


def test_vpc_has_dns_for_the_private_endpoint() -> None:
    rec, _ = render(network_args())
    vpc = rec.one(VPC).inputs
    assert vpc["enableDnsHostnames"] is True and vpc["enableDnsSupport"] is True
    assert vpc["tags"]["team"] == "ml-platform"


@settings(max_examples=60, deadline=None)
@given(
    base=st.integers(min_value=0, max_value=2**32 - 1),
    prefix=st.integers(min_value=16, max_value=20),
    zones=st.integers(min_value=2, max_value=6),
)
def test_subnet_plan_is_disjoint_inside_the_vpc_and_stable(base: int, prefix: int, zones: int) -> None:
    vpc = ipaddress.IPv4Network((base, prefix), strict=False)
    plan = subnet_cidrs(str(vpc), zones)
    nets = [ipaddress.IPv4Network(c) for c in plan.private + plan.public]
    assert len(plan.private) == len(plan.public) == zones
    assert all(n.subnet_of(vpc) for n in nets)
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    # Adding a zone never moves the subnets of the zones already there.
    if zones < 6:
        more = subnet_cidrs(str(vpc), zones + 1)
        assert more.private[:zones] == plan.private and more.public[:zones] == plan.public


def test_subnet_plan_for_a_slash_16() -> None:
    plan = subnet_cidrs("10.0.0.0/16", 3)
    assert plan.private == ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"]
    assert plan.public == ["10.0.224.0/22", "10.0.228.0/22", "10.0.232.0/22"]


# --- tags --------------------------------------------------------------------------------------------


def test_subnet_tags_per_tier() -> None:
    rec, _ = render(network_args())
    for s in subnets(rec, "public"):
        tags = s.inputs["tags"]
        assert tags["kubernetes.io/role/elb"] == "1"
        assert "kubernetes.io/role/internal-elb" not in tags
        assert "karpenter.sh/discovery" not in tags  # Karpenter must never launch nodes into public subnets
        assert tags[f"kubernetes.io/cluster/{CLUSTER}"] == "shared"
        assert tags["team"] == "ml-platform"
    for s in subnets(rec, "private"):
        tags = s.inputs["tags"]
        assert tags["kubernetes.io/role/internal-elb"] == "1"
        assert "kubernetes.io/role/elb" not in tags
        assert tags["karpenter.sh/discovery"] == CLUSTER
        assert tags[f"kubernetes.io/cluster/{CLUSTER}"] == "shared"


def test_caller_tags_cannot_override_discovery_tags() -> None:
    tags = subnet_tags("public", CLUSTER, "us-east-1a", {"kubernetes.io/role/elb": "0"})
    assert tags["kubernetes.io/role/elb"] == "1"


# --- routing -----------------------------------------------------------------------------------------


def test_per_zone_nat_private_subnets_leave_through_the_nat_in_their_own_zone() -> None:
    rec, net = render(network_args(nat_gateway_per_zone=True))
    nats = by_id(rec, NAT)
    subnets_by_id = by_id(rec, SUBNET)
    assert len(nats) == len(rec.of_type(EIP)) == 3 == len(net.nat_gateways)
    for private in subnets(rec, "private"):
        nat = nats[default_route(route_table_of(rec, private))["natGatewayId"]]
        nat_subnet = subnets_by_id[nat.inputs["subnetId"]]
        assert "-public-" in nat_subnet.name
        assert nat_subnet.inputs["availabilityZone"] == private.inputs["availabilityZone"]
    eips = by_id(rec, EIP)
    assert {n.inputs["allocationId"] for n in nats.values()} == set(eips)
    assert all(e.inputs["domain"] == "vpc" for e in eips.values())


def test_shared_nat_one_gateway_for_every_zone() -> None:
    rec, net = render(network_args(nat_gateway_per_zone=False))
    (nat,) = rec.of_type(NAT)
    assert len(rec.of_type(EIP)) == 1 and len(net.nat_gateways) == 1
    for private in subnets(rec, "private"):
        assert default_route(route_table_of(rec, private))["natGatewayId"] == nat.id
    # Still one private route table per zone, so turning per-zone NAT on later only changes routes.
    assert len({route_table_of(rec, p).id for p in subnets(rec, "private")}) == 3


def test_nat_waits_for_the_internet_gateway() -> None:
    rec, _ = render(network_args())
    igw = rec.one(IGW)
    assert all(igw.urn in nat.dependencies for nat in rec.of_type(NAT))


def test_public_subnets_route_to_the_internet_gateway_and_private_ones_never_do() -> None:
    rec, _ = render(network_args())
    igw = rec.one(IGW)
    for public in subnets(rec, "public"):
        assert default_route(route_table_of(rec, public))["gatewayId"] == igw.id
    for private in subnets(rec, "private"):
        route = default_route(route_table_of(rec, private))
        assert not route.get("gatewayId")
        assert route["natGatewayId"]


def test_s3_gateway_endpoint_on_every_private_route_table() -> None:
    rec, _ = render(network_args())
    endpoint = rec.one(ENDPOINT).inputs
    assert endpoint["vpcEndpointType"] == "Gateway"
    assert endpoint["serviceName"] == "com.amazonaws.us-east-1.s3"
    private_tables = {route_table_of(rec, p).id for p in subnets(rec, "private")}
    assert set(endpoint["routeTableIds"]) == private_tables
    assert endpoint["vpcId"] == rec.one(VPC).id


def test_default_security_group_is_adopted_with_no_rules() -> None:
    rec, _ = render(network_args())
    sg = rec.one(DEFAULT_SG).inputs
    assert sg["vpcId"] == rec.one(VPC).id
    assert not sg.get("ingress") and not sg.get("egress")


def test_children_are_named_after_the_component_and_parented() -> None:
    rec, _ = render(network_args(), name="edge")
    for r in rec.resources:
        if r.custom:
            assert r.name.startswith("edge-"), r.name
            assert (r.parent or "").endswith("inferstack:aws:Network::edge"), r.name


def test_outputs_list_the_subnets_in_zone_order() -> None:
    from pulumi.runtime.sync_await import _sync_await

    rec, net = render(network_args())
    assert _sync_await(net.private_subnet_ids.future()) == [s.id for s in subnets(rec, "private")]
    assert _sync_await(net.public_subnet_ids.future()) == [s.id for s in subnets(rec, "public")]
    assert _sync_await(net.vpc_id.future()) == rec.one(VPC).id
    tables = _sync_await(net.private_route_table_ids.future())
    assert tables == [route_table_of(rec, p).id for p in subnets(rec, "private")]


# --- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"cidr": "10.0.0.0/24"}, "cidr"),  # too small for pod IPs
        ({"cidr": "10.0.0.0/12"}, "cidr"),  # larger than a VPC may be
        ({"cidr": "10.0.1.0/16"}, "cidr"),  # host bits set
        ({"cidr": "ten-net"}, "cidr"),
        ({"cidr": "fd00::/56"}, "cidr"),
        ({"availability_zone_count": 1}, "availability_zone_count"),
        ({"availability_zone_count": 7}, "availability_zone_count"),
        ({"cluster_name": "-bad"}, "cluster_name"),
        ({"cluster_name": ""}, "cluster_name"),
        ({"tags": {"aws:owner": "me"}}, "tags"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], field_name: str) -> None:
    problems = validate_network_args(network_args(**changes))
    assert [p.split(":")[0] for p in problems] == [field_name]


def test_good_args_have_no_problems() -> None:
    assert validate_network_args(network_args()) == []
    assert validate_network_args(network_args(cidr="172.16.0.0/20", availability_zone_count=2)) == []


def test_cidr_messages_say_the_fix() -> None:
    assert "did you mean 10.0.0.0/16" in cidr_problems("10.0.1.0/16", 3)[0]
    assert "/20 or larger" in cidr_problems("10.0.0.0/22", 3)[0]


def test_constructor_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        Network("net", network_args(cidr="10.0.0.0/24", availability_zone_count=9))
    assert "cidr" in str(raised.value) and "availability_zone_count" in str(raised.value)


# --- S3 interface endpoint: the private path for prod model downloads (stacks/egress.py) ---------------

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"


def test_no_interface_endpoint_unless_asked() -> None:
    rec, network = render(network_args())
    assert [e.inputs["vpcEndpointType"] for e in rec.of_type(ENDPOINT)] == ["Gateway"]
    assert rec.of_type(SECURITY_GROUP) == [] and network.s3_private_cidrs == []


def test_s3_interface_endpoint_resolves_s3_inside_the_private_subnets() -> None:
    rec, network = render(network_args(s3_interface_endpoint=True))
    (interface,) = [e for e in rec.of_type(ENDPOINT) if e.inputs["vpcEndpointType"] == "Interface"]
    endpoint = interface.inputs
    assert endpoint["serviceName"] == "com.amazonaws.us-east-1.s3"
    assert sorted(endpoint["subnetIds"]) == sorted(s.id for s in subnets(rec, "private"))
    # Private DNS for every resolver in the VPC: with the inbound-only option S3 would resolve to the
    # gateway endpoint's public addresses from inside the VPC, which the pods' egress does not admit.
    assert endpoint["privateDnsEnabled"] is True
    assert endpoint["dnsOptions"]["privateDnsOnlyForInboundResolverEndpoint"] is False
    # What the pods get: the subnets holding the endpoint's interfaces, nothing public.
    assert network.s3_private_cidrs == [s.inputs["cidrBlock"] for s in subnets(rec, "private")]
    assert all(ipaddress.ip_network(c).is_private for c in network.s3_private_cidrs)


def test_s3_interface_endpoint_takes_https_from_the_vpc_only_and_opens_nothing() -> None:
    rec, _ = render(network_args(s3_interface_endpoint=True))
    (interface,) = [e for e in rec.of_type(ENDPOINT) if e.inputs["vpcEndpointType"] == "Interface"]
    (group,) = rec.of_type(SECURITY_GROUP)
    assert interface.inputs["securityGroupIds"] == [group.id]
    assert [
        (r["protocol"], r["fromPort"], r["toPort"], r["cidrBlocks"]) for r in group.inputs["ingress"]
    ] == [("tcp", 443, 443, ["10.0.0.0/16"])]
    assert not group.inputs.get("egress")
