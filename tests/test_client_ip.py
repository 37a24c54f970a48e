"""Client-address rules keep the client's address, and redirects keep the method, in every stack.

Two policy rules that `inferstack check` runs (policy/rules.py):

- `client-address-rules-keep-client-ip`: an Envoy SecurityPolicy `clientCIDRs` (or a rate limit's
  `sourceCIDR`) is reached only through Services that keep the client address (externalTrafficPolicy
  Local; an AWS NLB with IP targets and preserve_client_ip). The GKE gateway Service used to have no
  externalTrafficPolicy (Kubernetes' default `Cluster`): nodes SNAT, so dev-gcp's allow-list rejected
  clients and prod-gcp's 10.0.0.0/8 admitted everyone through a node address.
- `redirects-keep-method`: the HTTP->HTTPS redirect answers 308 (a 301 lets clients resend POST as GET).

Each rule: every stack in stacks/ and docs/examples/ passes, and the defective form of every stack fails.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest

import components.load_balancer
from inferstack.planning.plan import Plan, plan_stack
from inferstack.validation.policies import check_policies, load_rules, policy_inputs
from stacks.config import load_stack_file

ROOT = Path(__file__).resolve().parents[1]
STACK_FILES = {
    p.name.removeprefix("Pulumi.").removesuffix(".yaml"): p
    for p in [*(ROOT / "stacks").glob("Pulumi.*.yaml"), *(ROOT / "docs" / "examples").glob("Pulumi.*.yaml")]
}
STACKS = sorted(STACK_FILES)
rules = load_rules()
CLIENT_IP_RULE = "client-address-rules-keep-client-ip"
REDIRECT_RULE = "redirects-keep-method"
Pairs = list[tuple[str, dict[str, Any]]]


@functools.cache
def plan_of(stack: str) -> Plan:
    return plan_stack(load_stack_file(STACK_FILES[stack]), stack)


def pairs_of(stack: str) -> Pairs:
    """What the policy pack sees for a stack: (type token, inputs) of every custom resource, a copy."""
    return copy.deepcopy([(r.type, r.inputs) for r in policy_inputs(plan_of(stack))])


def kind_of(type_token: str) -> str | None:
    """The Kubernetes kind of a resource (None for cloud resources such as gcp:...:Service)."""
    return type_token.rsplit(":", 1)[-1] if type_token.startswith("kubernetes:") else None


def has_allow_list(pairs: Pairs) -> bool:
    return any(
        kind_of(t) == "SecurityPolicy" and p["spec"].get("authorization", {}).get("rules") for t, p in pairs
    )


def losing_the_client_address(pairs: Pairs) -> Pairs:
    """The defective form: every Service in front of Envoy lets nodes / the NLB rewrite the source."""
    for type_token, props in pairs:
        if kind_of(type_token) == "Service":
            props["spec"]["externalTrafficPolicy"] = "Cluster"
            annotations = props["metadata"].get("annotations") or {}
            for key, value in list(annotations.items()):
                if key.endswith("target-group-attributes"):
                    annotations[key] = value.replace("preserve_client_ip.enabled=true", "")
        elif kind_of(type_token) == "EnvoyProxy":
            props["spec"]["provider"]["kubernetes"]["envoyService"]["externalTrafficPolicy"] = "Cluster"
    return pairs


def test_most_stacks_have_an_allow_list() -> None:
    """Otherwise the stack-wide tests below would prove little."""
    with_list = [s for s in STACKS if has_allow_list(pairs_of(s))]
    assert {"dev-aws", "dev-gcp", "prod-aws", "prod-gcp", "onprem"} <= set(with_list)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_keeps_the_client_address_and_the_method(stack: str) -> None:
    findings = [f for f in check_policies(plan_of(stack)) if f.policy in (CLIENT_IP_RULE, REDIRECT_RULE)]
    assert findings == []
    # Both rules are mandatory in every tier: `inferstack check` fails on them.
    policies = {p.name: p for p in rules.POLICIES}
    assert policies[CLIENT_IP_RULE].mandatory("dev") and policies[REDIRECT_RULE].mandatory("dev")


@pytest.mark.parametrize("stack", STACKS)
def test_a_service_that_loses_the_client_address_fails_every_stack_with_an_allow_list(stack: str) -> None:
    pairs = losing_the_client_address(pairs_of(stack))
    problems = rules.client_address_rules_keep_client_ip(pairs)
    if has_allow_list(pairs):
        assert problems, f"{stack}: the rule missed a gateway Service that loses the client address"
        assert all("clientCIDRs" in p and "externalTrafficPolicy" in p for p in problems)
    else:
        assert problems == []  # nothing matches on the address, so nothing needs it


@pytest.mark.parametrize("stack", ["dev-gcp", "prod-gcp"])
def test_the_old_gke_service_fails_inferstack_checks_policy(
    stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped defect: the cloud Service without externalTrafficPolicy (Kubernetes' default Cluster)."""
    real = components.load_balancer.cloud_service_spec

    def without_policy(*args: Any) -> dict[str, Any]:
        spec = real(*args)
        del spec["externalTrafficPolicy"]
        return spec

    monkeypatch.setattr(components.load_balancer, "cloud_service_spec", without_policy)
    plan = plan_stack(load_stack_file(STACK_FILES[stack]), stack)
    findings = [f for f in check_policies(plan) if f.policy == CLIENT_IP_RULE]
    assert findings and all(f.mandatory for f in findings)
    assert "Service/envoy-gateway-system/llm-lb" in findings[0].message
    assert "externalTrafficPolicy is Cluster" in findings[0].message


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("status", [301, 302, 303, None])
def test_a_redirect_that_may_turn_post_into_get_fails_every_stack(stack: str, status: int | None) -> None:
    pairs = pairs_of(stack)
    redirects = 0
    for type_token, props in pairs:
        for rule in props["spec"].get("rules", []) if kind_of(type_token) == "HTTPRoute" else []:
            for f in rule.get("filters", []):
                if f["type"] == "RequestRedirect":
                    redirects += 1
                    assert f["requestRedirect"]["statusCode"] == 308
                    if status is None:
                        del f["requestRedirect"]["statusCode"]  # the CRD's default is 302
                    else:
                        f["requestRedirect"]["statusCode"] = status
    assert redirects, f"{stack}: no HTTP->HTTPS redirect found"
    problems = [m for t, p in pairs for m in rules.redirects_keep_method(t, p)]
    assert len(problems) == redirects
    assert f"statusCode is {status or 302}" in problems[0]


# --- the rule's edges ----------------------------------------------------------------------------------

T_SERVICE = "kubernetes:core/v1:Service"
T_GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
T_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
T_SECURITY = "kubernetes:gateway.envoyproxy.io/v1alpha1:SecurityPolicy"
T_CLIENT_TRAFFIC = "kubernetes:gateway.envoyproxy.io/v1alpha1:ClientTrafficPolicy"
T_BACKEND_TRAFFIC = "kubernetes:gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy"
GW_REF = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}


def gateway_setup(service_spec: dict[str, Any], annotations: dict[str, str] | None = None) -> Pairs:
    """A Gateway (Envoy Gateway's default Service: LoadBalancer, Local), a route, an allow-list on it, and
    one Service of our own in front of the Gateway's pods."""
    meta = {"namespace": "ns"}
    return [
        (T_GATEWAY, {"metadata": {**meta, "name": "gw"}, "spec": {"gatewayClassName": "eg"}}),
        (T_ROUTE, {"metadata": {**meta, "name": "api"}, "spec": {"parentRefs": [{"name": "gw"}]}}),
        (
            T_SECURITY,
            {
                "metadata": {**meta, "name": "api"},
                "spec": {
                    "targetRefs": [
                        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "api"}
                    ],
                    "authorization": {
                        "defaultAction": "Deny",
                        "rules": [{"action": "Allow", "principal": {"clientCIDRs": ["10.0.0.0/8"]}}],
                    },
                },
            },
        ),
        (
            T_SERVICE,
            {
                "metadata": {
                    "namespace": "envoy-gateway-system",
                    "name": "lb",
                    "annotations": annotations or {},
                },
                "spec": {
                    "type": "LoadBalancer",
                    "selector": {
                        "gateway.envoyproxy.io/owning-gateway-name": "gw",
                        "gateway.envoyproxy.io/owning-gateway-namespace": "ns",
                    },
                    **service_spec,
                },
            },
        ),
    ]


def test_kubernetes_default_cluster_policy_is_a_violation_and_local_is_not() -> None:
    assert rules.client_address_rules_keep_client_ip(gateway_setup({"externalTrafficPolicy": "Local"})) == []
    (problem,) = rules.client_address_rules_keep_client_ip(gateway_setup({}))
    assert problem.startswith("SecurityPolicy/ns/api:")
    assert "Service/envoy-gateway-system/lb" in problem and "externalTrafficPolicy is Cluster" in problem


def test_a_service_for_another_gateway_is_not_counted() -> None:
    pairs = gateway_setup({})
    pairs[3][1]["spec"]["selector"]["gateway.envoyproxy.io/owning-gateway-name"] = "other"
    assert rules.client_address_rules_keep_client_ip(pairs) == []


def test_aws_ip_targets_need_preserve_client_ip_whatever_the_traffic_policy() -> None:
    prefix = "service.beta.kubernetes.io/aws-load-balancer-"
    kept = {
        f"{prefix}nlb-target-type": "ip",
        f"{prefix}target-group-attributes": "preserve_client_ip.enabled=true",
    }
    assert rules.client_address_rules_keep_client_ip(gateway_setup({}, kept)) == []
    lost = {f"{prefix}nlb-target-type": "ip"}
    (problem,) = rules.client_address_rules_keep_client_ip(
        gateway_setup({"externalTrafficPolicy": "Local"}, lost)
    )
    assert "preserve_client_ip.enabled=true" in problem


def test_an_envoy_service_set_to_cluster_is_a_violation() -> None:
    pairs = gateway_setup({"externalTrafficPolicy": "Local"})
    pairs[0][1]["spec"]["infrastructure"] = {
        "parametersRef": {"group": "gateway.envoyproxy.io", "kind": "EnvoyProxy", "name": "proxy"}
    }
    pairs.append(
        (
            "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy",
            {
                "metadata": {"namespace": "ns", "name": "proxy"},
                "spec": {"provider": {"kubernetes": {"envoyService": {"externalTrafficPolicy": "Cluster"}}}},
            },
        )
    )
    (problem,) = rules.client_address_rules_keep_client_ip(pairs)
    assert "the Envoy Service of Gateway ns/gw" in problem


def test_a_declared_client_ip_source_satisfies_the_rule() -> None:
    pairs = gateway_setup({})
    pairs.append(
        (
            T_CLIENT_TRAFFIC,
            {
                "metadata": {"namespace": "ns", "name": "xff"},
                "spec": {
                    "targetRefs": [GW_REF],
                    "clientIPDetection": {"xForwardedFor": {"numTrustedHops": 1}},
                },
            },
        )
    )
    assert rules.client_address_rules_keep_client_ip(pairs) == []


def test_a_rate_limit_on_source_cidrs_is_a_client_address_rule_too() -> None:
    pairs = [p for p in gateway_setup({}) if kind_of(p[0]) != "SecurityPolicy"]
    assert rules.client_address_rules_keep_client_ip(pairs) == []
    limit = {"requests": 10, "unit": "Minute"}
    selector = {"sourceCIDR": {"type": "Distinct", "value": "0.0.0.0/0"}}
    pairs.append(
        (
            T_BACKEND_TRAFFIC,
            {
                "metadata": {"namespace": "ns", "name": "limit"},
                "spec": {
                    "targetRefs": [GW_REF],
                    "rateLimit": {"local": {"rules": [{"clientSelectors": [selector], "limit": limit}]}},
                },
            },
        )
    )
    (problem,) = rules.client_address_rules_keep_client_ip(pairs)
    assert "rate-limit sourceCIDR 0.0.0.0/0" in problem
