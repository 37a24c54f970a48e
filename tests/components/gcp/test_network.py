"""Network: a custom-mode VPC with one subnet holding the pod and Service ranges, Private Google Access and
flow logs, Cloud NAT for that subnet only, and one firewall rule letting the control plane reach webhooks
on the ports GKE's own rule leaves shut."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pulumi.runtime.sync_await import _sync_await

from components.clusters.gcp.network import (
    WEBHOOK_PORTS,
    Network,
    NetworkArgs,
    component_name_problems,
    validate_network_args,
)
from inferstack.planning.recording import Recording, run_program

VPC = "gcp:compute/network:Network"
SUBNET = "gcp:compute/subnetwork:Subnetwork"
ROUTER = "gcp:compute/router:Router"
NAT = "gcp:compute/routerNat:RouterNat"
FIREWALL = "gcp:compute/firewall:Firewall"
CONTROL_PLANE = "172.16.0.0/28"


def network_args(**changes: Any) -> NetworkArgs:
    base = NetworkArgs(
        region="europe-west4",
        subnet_cidr="10.0.0.0/20",
        pods_cidr="10.16.0.0/14",
        services_cidr="10.20.0.0/20",
        control_plane_cidr=CONTROL_PLANE,
    )
    return dataclasses.replace(base, **changes)


def render(args: NetworkArgs, name: str = "net") -> tuple[Recording, Network]:
    made: list[Network] = []
    rec = run_program(lambda: made.append(Network(name, args)))
    return rec, made[0]


@pytest.fixture(scope="module")
def default() -> tuple[Recording, Network]:
    """One rendering shared by the tests that only read it (keeps the file fast)."""
    return render(network_args())


def resolve(output: Any) -> Any:
    return _sync_await(output.future())


# --- VPC and subnet ----------------------------------------------------------------------------------


def test_vpc_is_custom_mode_and_regional(default: tuple[Recording, Network]) -> None:
    rec, _ = default
    vpc = rec.one(VPC).inputs
    assert vpc["autoCreateSubnetworks"] is False  # no subnet in every region
    assert vpc["routingMode"] == "REGIONAL"
    assert vpc["deleteDefaultRoutesOnCreate"] is False  # Cloud NAT egresses through the default route
    assert len(rec.of_type(VPC)) == 1 and len(rec.of_type(SUBNET)) == 1


def test_one_subnet_with_the_pod_and_service_ranges(default: tuple[Recording, Network]) -> None:
    rec, net = default
    subnet = rec.one(SUBNET).inputs
    assert subnet["network"] == rec.one(VPC).id
    assert subnet["region"] == "europe-west4"
    assert subnet["ipCidrRange"] == "10.0.0.0/20"
    ranges = {r["rangeName"]: r["ipCidrRange"] for r in subnet["secondaryIpRanges"]}
    assert ranges == {net.pods_range_name: "10.16.0.0/14", net.services_range_name: "10.20.0.0/20"}
    assert net.pods_range_name != net.services_range_name


def test_nodes_reach_google_apis_privately_and_flows_are_logged(default: tuple[Recording, Network]) -> None:
    rec, _ = default
    subnet = rec.one(SUBNET).inputs
    assert subnet["privateIpGoogleAccess"] is True
    logs = subnet["logConfig"]
    assert 0 < logs["flowSampling"] <= 1
    assert logs["aggregationInterval"] == "INTERVAL_5_SEC"
    assert logs["metadata"] == "INCLUDE_ALL_METADATA"


# --- egress ------------------------------------------------------------------------------------------


def test_nat_serves_only_this_subnet_with_google_allocated_ips(default: tuple[Recording, Network]) -> None:
    rec, _ = default
    nat = rec.one(NAT).inputs
    subnet = rec.one(SUBNET)
    assert nat["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS"  # not ALL_SUBNETWORKS_*
    assert nat["subnetworks"] == [{"name": subnet.id, "sourceIpRangesToNats": ["ALL_IP_RANGES"]}]
    assert nat["natIpAllocateOption"] == "AUTO_ONLY"
    assert not nat.get("natIps")
    assert nat["logConfig"] == {"enable": True, "filter": "ERRORS_ONLY"}


def test_nat_lives_on_a_router_in_the_vpc_and_region(default: tuple[Recording, Network]) -> None:
    rec, net = default
    router = rec.one(ROUTER)
    nat = rec.one(NAT)
    assert nat.inputs["router"] == router.outputs["name"]
    assert nat.inputs["region"] == router.inputs["region"] == "europe-west4"
    assert router.inputs["network"] == rec.one(VPC).id
    assert resolve(net.nat.id) == nat.id


# --- firewall ----------------------------------------------------------------------------------------


def test_control_plane_reaches_webhook_ports_and_nothing_else(default: tuple[Recording, Network]) -> None:
    rec, _ = default
    (rule,) = rec.of_type(FIREWALL)  # the only rule we add; GKE adds its own
    inputs = rule.inputs
    assert inputs["network"] == rec.one(VPC).id
    assert inputs["direction"] == "INGRESS"
    assert inputs["sourceRanges"] == [CONTROL_PLANE]
    assert inputs["allows"] == [{"protocol": "tcp", "ports": ["6443", "8443", "9443"]}]
    assert not inputs.get("denies")
    assert not inputs.get("sourceTags") and not inputs.get("sourceServiceAccounts")
    # GKE's own rule already opens these two; opening them again would hide a drift in GKE's.
    assert not {"443", "10250"} & set(WEBHOOK_PORTS)


def test_firewall_source_follows_the_control_plane_cidr() -> None:
    rec, _ = render(network_args(control_plane_cidr="192.168.100.16/28"))
    assert rec.one(FIREWALL).inputs["sourceRanges"] == ["192.168.100.16/28"]


# --- outputs and names -------------------------------------------------------------------------------


def test_outputs_are_the_recorded_resources(default: tuple[Recording, Network]) -> None:
    rec, net = default
    vpc, subnet = rec.one(VPC), rec.one(SUBNET)
    assert resolve(net.network_id) == vpc.id
    assert resolve(net.network_name) == vpc.outputs["name"]
    assert resolve(net.subnetwork_id) == subnet.id
    assert resolve(net.subnetwork_name) == subnet.outputs["name"]
    assert (vpc.id or "").startswith("projects/") and "/global/networks/" in (vpc.id or "")


def test_children_have_stable_names_and_are_parented() -> None:
    rec, _ = render(network_args(), name="edge")
    custom = sorted(r.name for r in rec.resources if r.custom)
    assert custom == [
        "edge-control-plane-webhooks",
        "edge-nat",
        "edge-router",
        "edge-subnet",
        "edge-vpc",
    ]
    for r in rec.resources:
        if r.custom:
            assert (r.parent or "").endswith("inferstack:gcp:Network::edge"), r.name


# --- validation --------------------------------------------------------------------------------------


def test_good_args_have_no_problems() -> None:
    assert validate_network_args(network_args()) == []
    assert (
        validate_network_args(
            network_args(
                region="northamerica-northeast2",
                subnet_cidr="192.168.0.0/22",
                pods_cidr="100.64.0.0/16",
                services_cidr="192.168.8.0/24",
                control_plane_cidr="192.168.12.0/28",
            )
        )
        == []
    )


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"region": "europe-west4-a"}, "region"),
        ({"region": "Europe West 4"}, "region"),
        ({"region": ""}, "region"),
        ({"subnet_cidr": "10.0.0.1/20"}, "subnet_cidr"),
        ({"subnet_cidr": "10.0.0.0/33"}, "subnet_cidr"),
        ({"subnet_cidr": "fd00::/64"}, "subnet_cidr"),
        ({"pods_cidr": "pods"}, "pods_cidr"),
        ({"pods_cidr": "10.16.0.0/25"}, "pods_cidr"),
        ({"services_cidr": "10.20.0.5/20"}, "services_cidr"),
        ({"control_plane_cidr": "172.16.0.0/27"}, "control_plane_cidr"),
        ({"control_plane_cidr": "172.16.0.0/29"}, "control_plane_cidr"),
        ({"control_plane_cidr": "172.16.0.8/28"}, "control_plane_cidr"),  # host bits: /28s start at 16s
        ({"pods_cidr": "10.0.0.0/14"}, "subnet_cidr/pods_cidr"),
        ({"services_cidr": "10.0.8.0/24"}, "subnet_cidr/services_cidr"),
        ({"services_cidr": "10.17.0.0/20"}, "pods_cidr/services_cidr"),
        ({"control_plane_cidr": "10.0.0.16/28"}, "subnet_cidr/control_plane_cidr"),
        ({"control_plane_cidr": "10.20.0.0/28"}, "services_cidr/control_plane_cidr"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], field_name: str) -> None:
    problems = validate_network_args(network_args(**changes))
    assert [p.split(": ")[0] for p in problems] == [field_name]


def test_messages_say_the_fix() -> None:
    (zone,) = validate_network_args(network_args(region="europe-west4-b"))
    assert "europe-west4" in zone and "zone" in zone
    (host_bits,) = validate_network_args(network_args(subnet_cidr="10.0.3.0/20"))
    assert "did you mean 10.0.0.0/20" in host_bits
    (small,) = validate_network_args(network_args(control_plane_cidr="172.16.0.0/24"))
    assert "/28" in small


def test_every_problem_is_reported_at_once() -> None:
    problems = validate_network_args(
        network_args(
            region="x", subnet_cidr="nope", pods_cidr="10.16.0.0/26", control_plane_cidr="10.20.0.0/24"
        )
    )
    fields = {p.split(": ")[0] for p in problems}
    assert {
        "region",
        "subnet_cidr",
        "pods_cidr",
        "control_plane_cidr",
        "services_cidr/control_plane_cidr",
    } <= fields


def test_constructor_rejects_bad_args_before_any_resource() -> None:
    with pytest.raises(ValueError) as raised:
        Network("net", network_args(region="europe-west4-a", control_plane_cidr="172.16.0.0/24"))
    assert "region" in str(raised.value) and "control_plane_cidr" in str(raised.value)


@pytest.mark.parametrize("name", ["Net", "net_1", "1net", "net-", "n" * 40])
def test_component_names_must_make_valid_gcp_resource_names(name: str) -> None:
    assert [p.split(": ")[0] for p in component_name_problems(name)] == ["name"]
    with pytest.raises(ValueError, match="name"):
        Network(name, network_args())


def test_ordinary_component_names_are_fine() -> None:
    assert component_name_problems("net") == component_name_problems("prod-gcp-net") == []


@settings(max_examples=80, deadline=None)
@given(
    a=st.integers(min_value=0, max_value=2**8 - 1),
    b=st.integers(min_value=0, max_value=2**8 - 1),
)
def test_overlap_is_reported_exactly_when_ranges_overlap(a: int, b: int) -> None:
    # Services /20 and control plane /28 anywhere in 10.64.0.0/12: they overlap only when the /28 lies in
    # the /20, and validation must agree with ipaddress on every placement.
    services = ipaddress.IPv4Network(("10.64.0.0", 12)).network_address + a * 4096
    control = ipaddress.IPv4Network(("10.64.0.0", 12)).network_address + b * 4096 + (a % 256) * 16
    services_cidr = ipaddress.IPv4Network((services, 20))
    control_cidr = ipaddress.IPv4Network((control, 28))
    problems = validate_network_args(
        network_args(services_cidr=str(services_cidr), control_plane_cidr=str(control_cidr))
    )
    overlapping = services_cidr.overlaps(control_cidr)
    assert any(p.startswith("services_cidr/control_plane_cidr:") for p in problems) == overlapping
    assert len(problems) == int(overlapping)


# --- private googleapis.com zone: the private path for prod model downloads (stacks/egress.py) ---------

ZONE = "gcp:dns/managedZone:ManagedZone"
RECORD = "gcp:dns/recordSet:RecordSet"


def test_no_google_apis_zone_unless_asked(default: tuple[Recording, Network]) -> None:
    rec, network = default
    assert rec.of_type(ZONE) == [] and rec.of_type(RECORD) == [] and network.google_apis_cidrs == []


def test_google_apis_resolve_to_private_googleapis_inside_the_vpc() -> None:
    rec, network = render(network_args(private_google_apis_dns=True))
    zone = rec.one(ZONE)
    assert zone.inputs["dnsName"] == "googleapis.com."
    # Private, and seen from this VPC only: a public zone for googleapis.com would not be used at all.
    assert zone.inputs["visibility"] == "private"
    assert [n["networkUrl"] for n in zone.inputs["privateVisibilityConfig"]["networks"]] == [rec.one(VPC).id]
    records = {(r.inputs["name"], r.inputs["type"]): r.inputs for r in rec.of_type(RECORD)}
    assert set(records) == {("private.googleapis.com.", "A"), ("*.googleapis.com.", "CNAME")}
    assert all(r["managedZone"] == zone.outputs["name"] for r in records.values())
    assert records[("*.googleapis.com.", "CNAME")]["rrdatas"] == ["private.googleapis.com."]
    # Exactly the addresses the pods' egress admits: the A records fill the /30 and leave it nowhere.
    addresses = records[("private.googleapis.com.", "A")]["rrdatas"]
    (cidr,) = network.google_apis_cidrs
    assert cidr == "199.36.153.8/30"
    assert set(addresses) == {str(a) for a in ipaddress.ip_network(cidr)} and len(addresses) == 4


def test_the_subnet_keeps_private_google_access_and_the_vpc_its_default_route() -> None:
    # Private Google Access needs both: the subnet flag and a route to 199.36.153.8/30 through the default
    # internet gateway, which the VPC's default route is.
    rec, _ = render(network_args(private_google_apis_dns=True))
    assert rec.one(SUBNET).inputs["privateIpGoogleAccess"] is True
    assert rec.one(VPC).inputs.get("deleteDefaultRoutesOnCreate") is False
