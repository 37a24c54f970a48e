"""AzureNetwork: a VNet whose subnets hold nodes, private endpoints and the API server, with pods and Services
outside it (CNI Overlay), NAT gateway egress for the node subnet, NSGs that admit node/pod traffic and the
gateway and deny the internet explicitly, privatelink DNS zones linked to the VNet, and private endpoints
with their DNS zone groups."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pulumi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.clusters.azure.network import (
    API_SERVER_DELEGATION,
    PRIVATE_DNS_ZONES,
    AzureNetwork,
    AzureNetworkArgs,
    PrivateLinkGroup,
    address_plan_problems,
    component_name_problems,
    validate_azure_network_args,
)
from inferstack.planning.recording import Recording, run_program

VNET = "azure-native:network:VirtualNetwork"
SUBNET = "azure-native:network:Subnet"
NSG = "azure-native:network:NetworkSecurityGroup"
NAT = "azure-native:network:NatGateway"
PUBLIC_IP = "azure-native:network:PublicIPAddress"
ZONE = "azure-native:privatedns:PrivateZone"
LINK = "azure-native:privatedns:VirtualNetworkLink"
ENDPOINT = "azure-native:network:PrivateEndpoint"
ZONE_GROUP = "azure-native:network:PrivateDnsZoneGroup"
STORAGE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
    "Microsoft.Storage/storageAccounts/models"
)


def network_args(**changes: Any) -> AzureNetworkArgs:
    base = AzureNetworkArgs(
        resource_group_name="rg-inferstack",
        location="westeurope",
        vnet_cidr="10.40.0.0/16",
        node_subnet_cidr="10.40.0.0/22",
        private_endpoint_subnet_cidr="10.40.4.0/24",
        api_server_subnet_cidr="10.40.5.0/28",
        pod_cidr="192.168.0.0/16",
        service_cidr="172.16.0.0/16",
        dns_service_ip="172.16.0.10",
        tags={"team": "ml-platform"},
    )
    return dataclasses.replace(base, **changes)


def render(args: AzureNetworkArgs, *, with_endpoint: bool = False) -> tuple[Recording, AzureNetwork]:
    made: list[AzureNetwork] = []

    def program() -> None:
        net = AzureNetwork("net", args)
        made.append(net)
        if with_endpoint:
            owner = pulumi.ComponentResource("test:index:Owner", "store")
            net.private_endpoint("store", resource_id=STORAGE_ID, group=PrivateLinkGroup.BLOB, parent=owner)

    rec = run_program(program)
    return rec, made[0]


@pytest.fixture(scope="module")
def internal() -> Recording:
    return render(network_args(), with_endpoint=True)[0]


@pytest.fixture(scope="module")
def public() -> Recording:
    return render(network_args(public_ingress=True, ingress_source_cidrs=["198.51.100.0/24"]))[0]


def rules(rec: Recording, suffix: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in rec.one(NSG, suffix).inputs["securityRules"]}


def subnet(rec: Recording, suffix: str) -> dict[str, Any]:
    return rec.one(SUBNET, suffix).inputs


# --- address plan ------------------------------------------------------------------------------------


def test_vnet_holds_the_three_subnets_and_not_the_pod_or_service_ranges(internal: Recording) -> None:
    vnet = ipaddress.IPv4Network(internal.one(VNET).inputs["addressSpace"]["addressPrefixes"][0])
    prefixes = {s.name: ipaddress.IPv4Network(s.inputs["addressPrefix"]) for s in internal.of_type(SUBNET)}
    assert set(prefixes) == {"net-nodes", "net-endpoints", "net-apiserver"}
    assert all(p.subnet_of(vnet) for p in prefixes.values())
    for outside in ("192.168.0.0/16", "172.16.0.0/16"):
        assert not ipaddress.ip_network(outside).overlaps(vnet)


def test_only_the_node_subnet_egresses_through_the_nat_gateway(internal: Recording) -> None:
    nat = internal.one(NAT)
    assert subnet(internal, "-nodes")["natGateway"] == {"id": nat.id}
    assert "natGateway" not in subnet(internal, "-endpoints")
    assert "natGateway" not in subnet(internal, "-apiserver")
    assert nat.inputs["sku"] == {"name": "Standard"}
    assert nat.inputs["publicIpAddresses"] == [{"id": internal.one(PUBLIC_IP).id}]
    ip = internal.one(PUBLIC_IP).inputs
    assert ip["sku"]["name"] == "Standard" and ip["publicIPAllocationMethod"] == "Static"
    # No subnet gets Azure's implicit default outbound address.
    assert all(s.inputs["defaultOutboundAccess"] is False for s in internal.of_type(SUBNET))


def test_api_server_subnet_is_delegated_to_aks(internal: Recording) -> None:
    delegations = subnet(internal, "-apiserver")["delegations"]
    assert [d["serviceName"] for d in delegations] == [API_SERVER_DELEGATION]


def test_every_subnet_has_its_own_nsg(internal: Recording) -> None:
    nsg_ids = {s.name: s.inputs["networkSecurityGroup"]["id"] for s in internal.of_type(SUBNET)}
    assert len(set(nsg_ids.values())) == 3
    assert nsg_ids["net-nodes"] == internal.one(NSG, "-nodes-nsg").id
    assert subnet(internal, "-endpoints")["privateEndpointNetworkPolicies"] == "Enabled"


# --- NSGs --------------------------------------------------------------------------------------------


def test_node_nsg_admits_overlay_traffic_the_vnet_tag_does_not_cover(internal: Recording) -> None:
    node = rules(internal, "-nodes-nsg")
    flows = {
        (r["sourceAddressPrefix"], r["destinationAddressPrefix"])
        for r in node.values()
        if r["access"] == "Allow"
    }
    assert ("10.40.0.0/22", "192.168.0.0/16") in flows  # node -> pod
    assert ("192.168.0.0/16", "192.168.0.0/16") in flows  # pod -> pod
    assert ("10.40.0.0/22", "10.40.0.0/22") in flows  # node -> node


@pytest.mark.parametrize("suffix", ["-nodes-nsg", "-endpoints-nsg", "-apiserver-nsg"])
def test_internet_inbound_is_denied_explicitly_and_last(internal: Recording, suffix: str) -> None:
    found = rules(internal, suffix)
    deny = found["deny-internet-inbound"]
    assert (deny["access"], deny["direction"], deny["sourceAddressPrefix"]) == ("Deny", "Inbound", "Internet")
    assert deny["priority"] == max(r["priority"] for r in found.values())


def test_internal_gateway_gets_no_internet_allow(internal: Recording) -> None:
    for suffix in ("-nodes-nsg", "-endpoints-nsg", "-apiserver-nsg"):
        allows = [r for r in rules(internal, suffix).values() if r["access"] == "Allow"]
        assert not any(
            r.get("sourceAddressPrefix") == "Internet" or r.get("sourceAddressPrefixes") for r in allows
        )


def test_public_gateway_admits_only_the_listed_sources_on_its_ports(public: Recording) -> None:
    gateway = rules(public, "-nodes-nsg")["allow-gateway-inbound"]
    assert gateway["sourceAddressPrefixes"] == ["198.51.100.0/24"]
    assert "sourceAddressPrefix" not in gateway
    assert gateway["destinationPortRange"] == "443" and gateway["protocol"] == "Tcp"
    assert gateway["priority"] < rules(public, "-nodes-nsg")["deny-internet-inbound"]["priority"]


def test_public_gateway_without_sources_is_open_deliberately() -> None:
    rec, _ = render(network_args(public_ingress=True, ingress_ports=[80, 443]))
    gateway = rules(rec, "-nodes-nsg")["allow-gateway-inbound"]
    assert gateway["sourceAddressPrefix"] == "Internet"
    assert gateway["destinationPortRanges"] == ["80", "443"]


def test_private_endpoint_subnet_admits_https_from_the_vnet_only(internal: Recording) -> None:
    allows = [r for r in rules(internal, "-endpoints-nsg").values() if r["access"] == "Allow"]
    assert [(r["sourceAddressPrefix"], r["destinationPortRange"]) for r in allows] == [
        ("VirtualNetwork", "443")
    ]


# --- private DNS and endpoints -----------------------------------------------------------------------


def test_privatelink_zones_are_linked_to_the_vnet_without_registration(internal: Recording) -> None:
    zones = {z.inputs["privateZoneName"] for z in internal.of_type(ZONE)}
    assert zones == {"privatelink.blob.core.windows.net", "privatelink.vaultcore.azure.net"}
    assert all(z.inputs["location"] == "global" for z in internal.of_type(ZONE))
    links = internal.of_type(LINK)
    assert len(links) == 2
    vnet_id = internal.one(VNET).id
    assert all(link.inputs["virtualNetwork"] == {"id": vnet_id} for link in links)
    assert all(link.inputs["registrationEnabled"] is False for link in links)


def test_private_endpoint_targets_the_resource_group_id_and_its_zone(internal: Recording) -> None:
    endpoint = internal.one(ENDPOINT)
    assert endpoint.name == "store-pe"
    assert endpoint.inputs["subnet"]["id"] == internal.one(SUBNET, "-endpoints").id
    (connection,) = endpoint.inputs["privateLinkServiceConnections"]
    assert connection["privateLinkServiceId"] == STORAGE_ID and connection["groupIds"] == ["blob"]
    (config,) = internal.one(ZONE_GROUP).inputs["privateDnsZoneConfigs"]
    blob_zone = next(
        z
        for z in internal.of_type(ZONE)
        if z.inputs["privateZoneName"] == PRIVATE_DNS_ZONES[PrivateLinkGroup.BLOB]
    )
    assert config["privateDnsZoneId"] == blob_zone.id
    # Parented to the caller, so it goes with what it serves.
    assert endpoint.parent is not None and endpoint.parent.endswith("::store")


def test_outputs_and_tags(internal: Recording) -> None:
    _, net = render(network_args())
    assert set(net.private_dns_zone_ids) == set(PrivateLinkGroup)
    assert (net.pod_cidr, net.service_cidr, net.dns_service_ip) == (
        "192.168.0.0/16",
        "172.16.0.0/16",
        "172.16.0.10",
    )
    tagged = [r for r in internal.resources if r.custom and r.type in {VNET, NSG, NAT, PUBLIC_IP, ZONE, LINK}]
    assert tagged and all(r.inputs["tags"] == {"team": "ml-platform"} for r in tagged)


# --- validation (pure) -------------------------------------------------------------------------------


def test_valid_args_have_no_problems() -> None:
    assert validate_azure_network_args(network_args()) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"pod_cidr": "10.40.128.0/17"}, "pod_cidr: 10.40.128.0/17 overlaps vnet_cidr"),
        (
            {"service_cidr": "10.40.0.0/16", "dns_service_ip": "10.40.0.10"},
            "service_cidr: 10.40.0.0/16 overlaps",
        ),
        ({"pod_cidr": "192.168.0.0/25"}, "pod_cidr: 192.168.0.0/25 cannot hold one node"),
        ({"service_cidr": "192.168.0.0/20", "dns_service_ip": "192.168.0.10"}, "pod_cidr/service_cidr"),
        ({"dns_service_ip": "172.17.0.10"}, "dns_service_ip: 172.17.0.10 must be inside service_cidr"),
        ({"dns_service_ip": "172.16.0.1"}, "dns_service_ip: 172.16.0.1 must be inside"),
        ({"dns_service_ip": "dns"}, "dns_service_ip: 'dns' is not an IP address"),
        ({"node_subnet_cidr": "10.41.0.0/22"}, "node_subnet_cidr: 10.41.0.0/22 is not inside vnet_cidr"),
        ({"private_endpoint_subnet_cidr": "10.40.3.0/24"}, "node_subnet_cidr/private_endpoint_subnet_cidr"),
        ({"api_server_subnet_cidr": "10.40.5.0/29"}, "api_server_subnet_cidr: 10.40.5.0/29 is smaller"),
        ({"node_subnet_cidr": "10.40.0.0/29"}, "node_subnet_cidr: 10.40.0.0/29 is too small"),
        (
            {"vnet_cidr": "10.40.0.1/16"},
            "vnet_cidr: '10.40.0.1/16' has host bits set; did you mean 10.40.0.0/16",
        ),
        ({"vnet_cidr": "fd00::/48"}, "vnet_cidr: fd00::/48 is IPv6"),
        ({"location": "West Europe"}, "location: 'West Europe' is not an Azure region name"),
        ({"ingress_source_cidrs": ["198.51.100.0/24"]}, "public_ingress/ingress_source_cidrs"),
        (
            {"public_ingress": True, "ingress_source_cidrs": ["0.0.0.0/0"]},
            "ingress_source_cidrs: open to the internet",
        ),
        ({"ingress_ports": [443, 443]}, "ingress_ports: lists a port twice"),
        ({"ingress_ports": [0]}, "ingress_ports[0]: 0 is not a TCP port"),
        ({"nat_idle_timeout_minutes": 200}, "nat_idle_timeout_minutes: 200 is outside 4..120"),
    ],
)
def test_each_bad_arg_is_named(changes: dict[str, Any], expected: str) -> None:
    problems = validate_azure_network_args(network_args(**changes))
    assert any(expected in p for p in problems), problems


def test_all_problems_are_reported_at_once_and_nothing_is_created() -> None:
    bad = network_args(pod_cidr="10.40.0.0/16", location="x y", nat_idle_timeout_minutes=1)
    assert len(validate_azure_network_args(bad)) >= 3
    with pytest.raises(ValueError, match="AzureNetwork 'net': 3 problem"):
        AzureNetwork("net", bad)


def test_component_name_is_checked() -> None:
    assert component_name_problems("net") == []
    assert component_name_problems("Net_1")


@settings(max_examples=60, deadline=None)
@given(
    pod=st.integers(min_value=0, max_value=255),
    prefix=st.integers(min_value=8, max_value=24),
)
def test_a_pod_range_is_accepted_exactly_when_it_misses_the_vnet_and_services(pod: int, prefix: int) -> None:
    pod_cidr = str(ipaddress.ip_network(f"{pod}.0.0.0/{prefix}", strict=False))
    problems = address_plan_problems(
        vnet_cidr="10.40.0.0/16",
        subnets={"node_subnet_cidr": "10.40.0.0/22"},
        pod_cidr=pod_cidr,
        service_cidr="172.16.0.0/16",
        dns_service_ip="172.16.0.10",
    )
    network = ipaddress.ip_network(pod_cidr)
    clashes = network.overlaps(ipaddress.ip_network("10.40.0.0/16")) or network.overlaps(
        ipaddress.ip_network("172.16.0.0/16")
    )
    assert bool(problems) == clashes
