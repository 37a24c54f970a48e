"""The API-access CIDR rules EKS and GKE share: one rule set, each cloud's own advice."""

from __future__ import annotations

from components.clusters.api_access import api_cidr_problems


def test_each_problem_names_the_entry_and_the_fix() -> None:
    problems = api_cidr_problems(
        "public_access_cidrs",
        ["0.0.0.0/0", "nope", "203.0.113.7/24", "2001:db8::/32", "198.51.100.0/24", "198.51.100.0/24"],
        open_fix="OPEN-FIX",
        ipv6_refusal="NO-IPV6",
    )
    assert problems == [
        "public_access_cidrs[0]: 0.0.0.0/0 is open to the whole internet; OPEN-FIX",
        "public_access_cidrs[1]: 'nope' is not a CIDR; write it like 203.0.113.0/24",
        "public_access_cidrs[2]: '203.0.113.7/24' has host bits set; did you mean 203.0.113.0/24?",
        "public_access_cidrs[3]: 2001:db8::/32 is IPv6; NO-IPV6",
        "public_access_cidrs: lists a CIDR twice; drop the repeat",
    ]


def test_ipv6_networks_pass_where_the_cloud_takes_them_but_never_an_open_one() -> None:
    assert api_cidr_problems("x", ["2001:db8::/32"], open_fix="F", ipv6_refusal=None) == []
    assert api_cidr_problems("x", ["::/0"], open_fix="F", ipv6_refusal=None) == [
        "x[0]: ::/0 is open to the whole internet; F"
    ]
