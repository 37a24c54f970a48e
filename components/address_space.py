"""How much of the internet an address allow-list lets in, measured with `ipaddress`, not read off strings.

Security decisions ("the API is not open to the internet", "the gateway is restricted", "the engine's
egress is narrow") must not compare CIDR strings with `0.0.0.0/0`: `[0.0.0.0/1, 128.0.0.0/1]` or
`[0.0.0.0/0]` written as `0.0.0.0/0` + `::/0` + `10.0.0.0/8` cover the same space. Every guard here
collapses the list (overlaps merged, IPv4 and IPv6 apart), takes away the address blocks that are not
routed on the public internet, and counts what is left.

Where "nearly all" starts: a list that admits more public addresses than one /8 (16,777,216 IPv4
addresses) or, for IPv6, more than one /16, is treated as open to the internet. No organisation's own
network is larger (the largest single IPv4 holdings are one /8, e.g. 17.0.0.0/8; RIRs allocate IPv6 to
the largest ISPs as /19 to /32), so such a list is no allow-list. Private ranges (10/8, 172.16/12,
192.168/16, 100.64/10, fc00::/7, ...) are not counted, so a VPN or VPC range of any size passes.

Standard library only: the policy pack (policy/rules.py) keeps a copy of these rules, since the pack's
own environment holds nothing of InferStack (tests/test_policy.py checks that both agree).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: IPv4 blocks not routed on the public internet: IANA IPv4 Special-Purpose Address Registry
#: (RFC 6890 and updates) entries with Globally Reachable = False, plus multicast (RFC 5771) and the
#: reserved 240.0.0.0/4 (RFC 1112), neither of which is a unicast source on the internet.
NON_PUBLIC_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network" (RFC 791)
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # shared address space, carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (RFC 3927)
        "172.16.0.0/12",  # private (RFC 1918)
        "192.0.0.0/24",  # IETF protocol assignments (RFC 6890)
        "192.0.2.0/24",  # TEST-NET-1 (RFC 5737)
        "192.168.0.0/16",  # private (RFC 1918)
        "198.18.0.0/15",  # benchmarking (RFC 2544)
        "198.51.100.0/24",  # TEST-NET-2 (RFC 5737)
        "203.0.113.0/24",  # TEST-NET-3 (RFC 5737)
        "224.0.0.0/4",  # multicast (RFC 5771)
        "240.0.0.0/4",  # reserved, and 255.255.255.255 (RFC 1112, RFC 919)
    )
)
#: The IPv6 internet: global unicast, 2000::/3 (IANA IPv6 Address Space registry); everything else
#: (ULA fc00::/7, link-local fe80::/10, multicast ff00::/8, IPv4-mapped ::ffff:0:0/96, ...) is not
#: routed there. Only the part of 2000::/3 that is documentation (RFC 3849) is taken away.
PUBLIC_V6 = ipaddress.IPv6Network("2000::/3")
NON_PUBLIC_V6 = (ipaddress.IPv6Network("2001:db8::/32"),)

#: More public addresses than this is "the internet, or nearly all of it" (see the module docstring).
MAX_PUBLIC_V4 = 2**24  # one /8
MAX_PUBLIC_V6 = 2 ** (128 - 16)  # one /16
PUBLIC_V4_TOTAL = 2**32 - sum(n.num_addresses for n in NON_PUBLIC_V4)
PUBLIC_V6_TOTAL = PUBLIC_V6.num_addresses - sum(n.num_addresses for n in NON_PUBLIC_V6)


def networks(cidrs: Iterable[str]) -> list[IPNetwork]:
    """The entries that parse as networks (host bits ignored); others are left to the field's own check."""
    found: list[IPNetwork] = []
    for cidr in cidrs:
        try:
            found.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError:
            continue
    return found


def _overlap(a: IPNetwork, b: IPNetwork) -> int:
    """Addresses two networks of one family share (CIDR blocks either nest or are disjoint)."""
    if a.version != b.version or not a.overlaps(b):
        return 0
    return min(a.num_addresses, b.num_addresses)


# IPv6 ranges that carry IPv4 addresses: IPv4-mapped (RFC 4291, ::ffff:a.b.c.d), the NAT64 well-known prefix
# (RFC 6052, 64:ff9b::a.b.c.d: DNS64 clusters reach the IPv4 internet through it) and 6to4 (RFC 3056,
# 2002:AABB:CCDD::/48). An allow-list entry in them admits the IPv4 addresses it embeds.
_V4_IN_V6 = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), 0),
    (ipaddress.IPv6Network("64:ff9b::/96"), 0),
    (ipaddress.IPv6Network("2002::/16"), 80),
)


def _embedded_v4(net: ipaddress.IPv6Network) -> list[ipaddress.IPv4Network]:
    """The IPv4 networks an IPv6 network admits through the ranges above."""
    found = []
    for block, shift in _V4_IN_V6:
        if not net.overlaps(block):
            continue
        if net.prefixlen <= block.prefixlen:  # the whole block: every IPv4 address
            found.append(ipaddress.IPv4Network("0.0.0.0/0"))
            continue
        bits = min(net.prefixlen - block.prefixlen, 32)
        address = (int(net.network_address) >> shift) & 0xFFFFFFFF
        found.append(ipaddress.IPv4Network((address, bits), strict=False))
    return found


def public_addresses(cidrs: Iterable[str]) -> tuple[int, int]:
    """(public IPv4, public IPv6) addresses the list admits, overlaps merged; unparsable entries skipped."""
    parsed = networks(cidrs)
    parsed += [m for n in parsed if isinstance(n, ipaddress.IPv6Network) for m in _embedded_v4(n)]
    v4 = list(ipaddress.collapse_addresses(n for n in parsed if isinstance(n, ipaddress.IPv4Network)))
    v6 = list(ipaddress.collapse_addresses(n for n in parsed if isinstance(n, ipaddress.IPv6Network)))
    # The collapsed networks are disjoint and so are the blocks taken away, so overlaps simply add up.
    public_v4 = sum(n.num_addresses - sum(_overlap(n, x) for x in NON_PUBLIC_V4) for n in v4)
    public_v6 = sum(_overlap(n, PUBLIC_V6) - sum(_overlap(n, x) for x in NON_PUBLIC_V6) for n in v6)
    return public_v4, public_v6


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.3g}%"


def internet_exposure(cidrs: Iterable[str]) -> str | None:
    """Why the list counts as open to the internet (a phrase to put after "the list"), or None.

    E.g. `["0.0.0.0/1", "128.0.0.0/1"]` -> "admits 3,702,258,432 public IPv4 addresses (100% of the
    internet); an allow-list admits at most a /8 (16,777,216)".
    """
    v4, v6 = public_addresses(cidrs)
    # IPv6 first: an IPv6 list that also carries IPv4 (::/0 holds ::ffff:0:0/96) is named by its own family.
    if v6 > MAX_PUBLIC_V6:
        return (
            f"admits {v6 / MAX_PUBLIC_V6:,.0f} /16s of public IPv6 space ({_percent(v6, PUBLIC_V6_TOTAL)} of "
            "2000::/3); an allow-list admits at most one /16"
        )
    if v4 > MAX_PUBLIC_V4:
        return (
            f"admits {v4:,} public IPv4 addresses ({_percent(v4, PUBLIC_V4_TOTAL)} of the internet); "
            f"an allow-list admits at most a /8 ({MAX_PUBLIC_V4:,})"
        )
    return None


def covers_every_address(cidrs: Iterable[str], version: int = 4) -> bool:
    """True when the list admits every address of that IP version (0.0.0.0/0 however it is written)."""
    parsed = networks(cidrs)
    if version == 4:
        v4 = ipaddress.collapse_addresses(n for n in parsed if isinstance(n, ipaddress.IPv4Network))
        return list(v4) == [ipaddress.IPv4Network("0.0.0.0/0")]
    v6 = ipaddress.collapse_addresses(n for n in parsed if isinstance(n, ipaddress.IPv6Network))
    return list(v6) == [ipaddress.IPv6Network("::/0")]
