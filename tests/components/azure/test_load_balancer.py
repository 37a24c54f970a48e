"""aks_service_exposure: the annotations that make AKS's cloud-provider-azure put the gateway on the
internal or the public Standard Load Balancer, and the Service fields that keep the client address."""

from __future__ import annotations

from typing import Any

import pytest

from components.choices import LoadBalancerKind
from components.clusters.azure.load_balancer import (
    INTERNAL_ANNOTATION,
    INTERNAL_SUBNET_ANNOTATION,
    aks_service_exposure,
)
from components.load_balancer import (
    Backend,
    LoadBalancerArgs,
    cloud_service_spec,
    validate_load_balancer_args,
)

PROBE_ANNOTATION_PREFIX = "service.beta.kubernetes.io/azure-load-balancer-health-probe"


def test_internal_asks_for_the_internal_balancer() -> None:
    annotations, load_balancer_class = aks_service_exposure(internal=True)
    assert annotations == {INTERNAL_ANNOTATION: "true"}
    assert load_balancer_class is None


def test_internal_with_a_subnet_takes_its_address_there() -> None:
    annotations, _ = aks_service_exposure(internal=True, internal_subnet="gateway-ilb")
    assert annotations == {INTERNAL_ANNOTATION: "true", INTERNAL_SUBNET_ANNOTATION: "gateway-ilb"}


def test_public_says_so_and_carries_nothing_internal() -> None:
    annotations, load_balancer_class = aks_service_exposure(internal=False)
    assert annotations == {INTERNAL_ANNOTATION: "false"}
    assert INTERNAL_SUBNET_ANNOTATION not in annotations
    assert load_balancer_class is None


@pytest.mark.parametrize("internal", [True, False])
def test_no_probe_annotation_claims_a_probe_the_local_policy_replaces(internal: bool) -> None:
    # With externalTrafficPolicy Local cloud-provider-azure probes healthCheckNodePort /healthz and ignores
    # the probe annotations; setting one would say something the balancer does not do.
    annotations, _ = aks_service_exposure(internal=internal)
    assert not [key for key in annotations if key.startswith(PROBE_ANNOTATION_PREFIX)]


def test_a_subnet_on_a_public_balancer_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="internal_subnet"):
        aks_service_exposure(internal=False, internal_subnet="gateway-ilb")


@pytest.mark.parametrize(
    "subnet",
    [
        "",
        "-starts-with-hyphen",
        "ends-with-dot.",
        "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s",
        "x" * 81,
    ],
)
def test_a_malformed_subnet_name_is_refused_naming_the_argument(subnet: str) -> None:
    with pytest.raises(ValueError, match="internal_subnet"):
        aks_service_exposure(internal=True, internal_subnet=subnet)


def test_a_string_for_internal_is_refused() -> None:
    with pytest.raises(ValueError, match="internal"):
        aks_service_exposure(internal="true")  # type: ignore[arg-type]


@pytest.mark.parametrize("internal", [True, False])
def test_each_call_returns_a_fresh_dict(internal: bool) -> None:
    first, _ = aks_service_exposure(internal=internal)
    first["mutated"] = "yes"
    second, _ = aks_service_exposure(internal=internal)
    assert "mutated" not in second


def aks_gateway_service(internal: bool, cidrs: list[str]) -> dict[str, Any]:
    annotations, load_balancer_class = aks_service_exposure(internal=internal)
    args = LoadBalancerArgs(
        namespace="inferstack",
        hostname="llm.example.com",
        backends=[Backend(service_name="llm-server", port=8000)],
        tls_secret_name="llm-tls",
        api_key_clients=["portal"],
        kind=LoadBalancerKind.CLOUD,
        allowed_source_cidrs=cidrs,
        cloud_service_annotations=annotations,
        cloud_load_balancer_class=load_balancer_class,
    )
    assert validate_load_balancer_args(args) == []
    return cloud_service_spec("llm", args)


@pytest.mark.parametrize("internal", [True, False])
def test_behind_an_allow_list_the_client_address_reaches_envoy(internal: bool) -> None:
    """Azure LB does not SNAT; only a Cluster policy would (node-to-node hop). The NSG rules come from
    loadBalancerSourceRanges, and no cloud class takes the Service from cloud-provider-azure."""
    spec = aks_gateway_service(internal, ["198.51.100.0/24"])
    assert spec["externalTrafficPolicy"] == "Local"
    assert spec["loadBalancerSourceRanges"] == ["198.51.100.0/24"]
    assert "loadBalancerClass" not in spec
    # Floating IP rules need no node port; the Local-policy probe uses healthCheckNodePort.
    assert spec["allocateLoadBalancerNodePorts"] is False
