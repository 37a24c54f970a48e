"""gke_service_exposure: the annotations that make GKE build an internal or an external passthrough
Network Load Balancer for the gateway's Service, and nothing that would make it the other kind."""

from __future__ import annotations

import pytest

from components.choices import GcpLoadBalancerScheme
from components.clusters.gcp.load_balancer import gke_service_exposure

INTERNAL_KEY = "networking.gke.io/load-balancer-type"
RBS_KEY = "cloud.google.com/l4-rbs"
GLOBAL_ACCESS_KEY = "networking.gke.io/internal-load-balancer-allow-global-access"


def test_internal_asks_for_an_internal_balancer_in_its_region() -> None:
    annotations, load_balancer_class = gke_service_exposure(GcpLoadBalancerScheme.INTERNAL)
    assert annotations == {INTERNAL_KEY: "Internal"}
    assert load_balancer_class is None


def test_internal_with_global_access_opens_it_to_other_regions_of_the_vpc() -> None:
    annotations, load_balancer_class = gke_service_exposure(
        GcpLoadBalancerScheme.INTERNAL, allow_global_access=True
    )
    assert annotations == {INTERNAL_KEY: "Internal", GLOBAL_ACCESS_KEY: "true"}
    assert load_balancer_class is None


def test_external_asks_for_the_backend_service_based_balancer_and_nothing_internal() -> None:
    annotations, load_balancer_class = gke_service_exposure(GcpLoadBalancerScheme.EXTERNAL)
    assert annotations == {RBS_KEY: "enabled"}
    assert INTERNAL_KEY not in annotations and GLOBAL_ACCESS_KEY not in annotations
    assert load_balancer_class is None


def test_global_access_on_an_external_balancer_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="allow_global_access"):
        gke_service_exposure(GcpLoadBalancerScheme.EXTERNAL, allow_global_access=True)


def test_a_plain_string_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="scheme"):
        gke_service_exposure("internet-facing")  # type: ignore[arg-type]


@pytest.mark.parametrize("scheme", list(GcpLoadBalancerScheme))
def test_each_call_returns_a_fresh_dict(scheme: GcpLoadBalancerScheme) -> None:
    first, _ = gke_service_exposure(scheme)
    first["mutated"] = "yes"
    second, _ = gke_service_exposure(scheme)
    assert "mutated" not in second  # callers may add their own annotations without leaking them
