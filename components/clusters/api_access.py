"""Who may reach a managed cluster's API: the CIDR checks EKS and GKE share.

Each cloud differs only in what to do instead of opening the API to everyone (`open_fix`) and whether
it takes IPv6 networks here, so the messages stay specific while the rules stay in one place.
"""

from __future__ import annotations

import ipaddress

from components.address_space import internet_exposure


def api_cidr_problems(
    field_name: str, cidrs: list[str], *, open_fix: str, ipv6_refusal: str | None
) -> list[str]:
    """Problems with a list of networks allowed to the API, each naming `field_name[i]` and the fix.

    `open_fix` finishes the sentence refusing a list open to the internet; `ipv6_refusal`, when set, is why
    an IPv6 network is refused (None where the cloud accepts them). "Open to the internet" is measured over
    the whole list (components/address_space.py), so `[0.0.0.0/1, 128.0.0.0/1]` is refused like 0.0.0.0/0.
    """
    problems: list[str] = []
    for i, cidr in enumerate(cidrs):
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            problems.append(f"{field_name}[{i}]: {cidr!r} is not a CIDR; write it like 203.0.113.0/24")
            continue
        if network.version != 4 and ipv6_refusal:
            problems.append(f"{field_name}[{i}]: {cidr} is IPv6; {ipv6_refusal}")
        elif str(network) != cidr:
            problems.append(f"{field_name}[{i}]: {cidr!r} has host bits set; did you mean {network}?")
    exposure = internet_exposure(cidrs)
    if exposure:
        problems.append(f"{field_name}: open to the internet, the list {exposure}; {open_fix}")
    if len(set(cidrs)) != len(cidrs):
        problems.append(f"{field_name}: lists a CIDR twice; drop the repeat")
    return problems
