"""What a Blob model store's prefix and firewall ranges may be: plain checks with no Pulumi import, so the
stack schema (stacks/rules_azure.py) refuses a bad stack file before the component (model_store.py) would.
"""

from __future__ import annotations

import ipaddress

#: Characters that would change an ABAC condition's meaning (its string literals are single-quoted, and
#: StringStartsWith has no escape) or a blob name's: refused in the prefix.
_PREFIX_FORBIDDEN = set("'\"\\*?[]#%")
_RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def prefix_problems(prefix: str) -> list[str]:
    """What makes `prefix` unusable as the one folder the reader may read."""
    if not prefix:
        return [
            "prefix: empty would let the reader read the whole container, which is too broad; give the "
            "model's folder, e.g. models/llama-3.1-8b"
        ]
    problems: list[str] = []
    if prefix.startswith("/") or prefix.endswith("/"):
        problems.append(f"prefix: {prefix!r}: drop the leading and trailing '/' (write models/name)")
    bad = sorted({c for c in prefix if c in _PREFIX_FORBIDDEN or ord(c) < 0x20 or ord(c) == 0x7F})
    if bad:
        problems.append(
            f"prefix: {prefix!r} holds {''.join(bad)!r}: quotes, backslashes, wildcards, '%' and control "
            "characters would change the role assignment condition's meaning; name the folder literally"
        )
    if any(seg in ("", ".", "..") for seg in prefix.strip("/").split("/")):
        problems.append(f"prefix: {prefix!r} has an empty, '.' or '..' segment; the launcher refuses those")
    if len(prefix) > 1000:
        problems.append(f"prefix: {len(prefix)} characters; a blob name has at most 1024")
    return problems


def ip_range_problems(ranges: list[str]) -> list[str]:
    """Azure Storage IP rules take public IPv4 addresses or ranges, but no /31 or /32 range and no RFC 1918
    range ("Configure Azure Storage firewalls and virtual networks"). A /32 is written as its address."""
    problems: list[str] = []
    for value in ranges:
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError:
            problems.append(f"allowed_ip_ranges: {value!r} is not an IP address or CIDR range")
            continue
        if not isinstance(network, ipaddress.IPv4Network):
            problems.append(f"allowed_ip_ranges: {value} is IPv6; Storage IP rules take IPv4 only")
        elif any(network.subnet_of(private) for private in _RFC1918):
            problems.append(
                f"allowed_ip_ranges: {value} is not a public range; reach the account from private networks "
                "through allowed_subnet_ids or a private endpoint"
            )
        elif network.prefixlen == 31:
            problems.append(
                f"allowed_ip_ranges: {value}: Storage rejects /31 ranges; list the two addresses themselves"
            )
    return problems
