"""The API-access CIDR rules EKS and GKE share: one rule set, each cloud's own advice."""

from __future__ import annotations

import pytest

from components.clusters.api_access import api_cidr_problems


def test_each_problem_names_the_entry_and_the_fix() -> None:
    problems = api_cidr_problems(
        "public_access_cidrs",
        ["0.0.0.0/0", "nope", "203.0.113.7/24", "2001:db8::/32", "198.51.100.0/24", "198.51.100.0/24"],
        open_fix="OPEN-FIX",
        ipv6_refusal="NO-IPV6",
    )
    assert problems == [
        "public_access_cidrs[1]: 'nope' is not a CIDR; write it like 203.0.113.0/24",
        "public_access_cidrs[2]: '203.0.113.7/24' has host bits set; did you mean 203.0.113.0/24?",
        "public_access_cidrs[3]: 2001:db8::/32 is IPv6; NO-IPV6",
        "public_access_cidrs: open to the internet, the list admits 3,702,258,688 public IPv4 addresses "
        "(100% of the internet); an allow-list admits at most a /8 (16,777,216); OPEN-FIX",
        "public_access_cidrs: lists a CIDR twice; drop the repeat",
    ]


def test_ipv6_networks_pass_where_the_cloud_takes_them_but_never_an_open_one() -> None:
    assert api_cidr_problems("x", ["2001:db8::/32"], open_fix="F", ipv6_refusal=None) == []
    (problem,) = api_cidr_problems("x", ["::/0"], open_fix="F", ipv6_refusal=None)
    assert problem.startswith("x: open to the internet, the list admits 8,192 /16s of public IPv6")


@pytest.mark.parametrize(
    "cidrs",
    [
        ["0.0.0.0/1", "128.0.0.0/1"],  # the whole internet without writing 0.0.0.0/0
        ["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2"],  # most of it
        ["16.0.0.0/7"],  # two /8s: more than any organisation holds
        ["2000::/3"],  # all of the IPv6 internet
        ["2a00::/12"],  # a whole RIR block
        ["::ffff:0.0.0.0/96"],  # IPv4-mapped: the IPv4 internet in IPv6 notation
        ["64:ff9b::/96"],  # NAT64: the IPv4 internet from a DNS64 cluster
        ["64:ff9b::/97", "64:ff9b::8000:0/97"],  # the same in two halves
    ],
)
def test_lists_covering_the_internet_are_refused_however_they_are_written(cidrs: list[str]) -> None:
    problems = api_cidr_problems("x", cidrs, open_fix="F", ipv6_refusal=None)
    assert [p for p in problems if p.startswith("x: open to the internet")], problems


@pytest.mark.parametrize(
    "cidrs",
    [
        ["17.0.0.0/8"],  # one organisation's /8: the limit itself
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"],  # private space is not counted
        ["fc00::/7", "2001:db8::/32"],  # ULA and documentation space neither
        ["2a00:1450::/32", "203.0.113.0/24"],
        ["64:ff9b::808:808/128", "::ffff:a00:0/104"],  # one mapped host, mapped private space
    ],
)
def test_allow_lists_of_real_networks_pass(cidrs: list[str]) -> None:
    assert api_cidr_problems("x", cidrs, open_fix="F", ipv6_refusal=None) == []
