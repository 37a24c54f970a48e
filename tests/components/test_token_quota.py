"""TokenQuota: per-client minute and day token budgets on the global rate limit, the request limit kept, and
Envoy's 429 in the OpenAI error shape; manifests the CRDs (and their CEL rules) accept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.load_balancer import CLIENT_ID_HEADER, rate_limit_spec
from components.token_quota import (
    LLM_REQUEST_COSTS,
    MAX_GLOBAL_RULES,
    TOKEN_METADATA_NAMESPACE,
    TOTAL_TOKENS_METADATA_KEY,
    ClientTokenQuota,
    TokenQuota,
    TokenQuotaArgs,
    envoy_gateway_values_for_rate_limit,
    rate_limited_body,
    token_quota_policy_spec,
    validate_token_quota_args,
)
from inferstack.planning.recording import Recording, run_program
from tests.components.schemas import chart_value_errors, crd_errors, manifest_of, needs_charts, needs_crds

T_TRAFFIC = "kubernetes:gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy"

QUOTAS = [
    ClientTokenQuota("portal", tokens_per_minute=20_000, tokens_per_day=1_000_000),
    ClientTokenQuota("batch", tokens_per_minute=5_000, tokens_per_day=200_000),
]


def make_args(**overrides: Any) -> TokenQuotaArgs:
    base: dict[str, Any] = {
        "namespace": "inferstack",
        "route_name": "llm-models",
        "quotas": QUOTAS,
        "api_key_clients": ["portal", "batch", "ops"],
    }
    base.update(overrides)
    return TokenQuotaArgs(**base)


def render(name: str = "llm", **overrides: Any) -> Recording:
    return run_program(lambda: TokenQuota(name, make_args(**overrides)))


def policy(rec: Recording) -> dict[str, Any]:
    return rec.one(T_TRAFFIC).inputs


def budgets(spec: dict[str, Any]) -> dict[tuple[str, str], int]:
    """(client id, unit) -> tokens, read back from the global rules' header selectors."""
    found: dict[tuple[str, str], int] = {}
    for rule in spec["rateLimit"]["global"]["rules"]:
        (selector,) = rule["clientSelectors"]
        (header,) = selector["headers"]
        assert header["name"] == CLIENT_ID_HEADER and header["type"] == "Exact"
        key = (header["value"], rule["limit"]["unit"])
        assert key not in found, f"two rules for {key}"
        found[key] = rule["limit"]["requests"]
    return found


# --- validation (pure) -----------------------------------------------------------------------------


def test_valid_args_have_no_problems() -> None:
    assert validate_token_quota_args(make_args()) == []
    assert validate_token_quota_args(make_args(quotas=[], requests_per_minute=None)) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"namespace": "Bad_NS"}, "namespace"),
        ({"route_name": "Not A Name"}, "route_name"),
        ({"quotas": [ClientTokenQuota("stranger", 10)]}, "quotas[0].client_id"),
        ({"quotas": [ClientTokenQuota("portal", 10), ClientTokenQuota("portal", 20)]}, "quotas[1].client_id"),
        ({"quotas": [ClientTokenQuota("portal")]}, "quotas[0]"),
        ({"quotas": [ClientTokenQuota("portal", tokens_per_minute=0)]}, "quotas[0].tokens_per_minute"),
        ({"quotas": [ClientTokenQuota("portal", tokens_per_day=2**32)]}, "quotas[0].tokens_per_day"),
        ({"quotas": [ClientTokenQuota("portal", 1000, 999)]}, "quotas[0].tokens_per_day"),
        ({"api_key_clients": []}, "api_key_clients"),
        ({"api_key_clients": ["portal", "portal", "batch"]}, "api_key_clients"),
        ({"api_key_clients": [f"c{i}" for i in range(17)], "quotas": []}, "api_key_clients"),
        ({"requests_per_minute": 0}, "requests_per_minute"),
        ({"retry_after_seconds": 0}, "retry_after_seconds"),
    ],
)
def test_invalid_args_are_rejected_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    problems = validate_token_quota_args(make_args(**overrides))
    assert any(p.startswith(f"{field}:") or p.startswith(f"{field}.") for p in problems), problems


def test_too_many_budgets_for_one_policy_are_rejected() -> None:
    clients = [f"c{i}" for i in range(MAX_GLOBAL_RULES // 2 + 1)]
    quotas = [ClientTokenQuota(c, 10, 100) for c in clients]
    problems = validate_token_quota_args(
        make_args(quotas=quotas, api_key_clients=clients, requests_per_minute=None)
    )
    assert any(p.startswith("quotas:") and str(MAX_GLOBAL_RULES) in p for p in problems), problems


def test_the_component_refuses_bad_args_before_making_anything() -> None:
    with pytest.raises(ValueError, match=r"quotas\[0\]\.client_id"):
        render(quotas=[ClientTokenQuota("stranger", 10)])


# --- the policy -----------------------------------------------------------------------------------


def test_each_clients_minute_and_day_budget_is_in_the_rate_limit_config() -> None:
    spec = policy(render())["spec"]
    assert budgets(spec) == {
        ("portal", "Minute"): 20_000,
        ("portal", "Day"): 1_000_000,
        ("batch", "Minute"): 5_000,
        ("batch", "Day"): 200_000,
    }


def test_a_client_with_only_a_day_budget_gets_only_a_day_rule() -> None:
    spec = token_quota_policy_spec(make_args(quotas=[ClientTokenQuota("ops", tokens_per_day=50_000)]))
    assert budgets(spec) == {("ops", "Day"): 50_000}


def test_budgets_charge_response_tokens_and_only_check_on_the_request() -> None:
    for rule in policy(render())["spec"]["rateLimit"]["global"]["rules"]:
        assert rule["cost"]["request"] == {"from": "Number", "number": 0}
        assert rule["cost"]["response"] == {
            "from": "Metadata",
            "metadata": {"namespace": TOKEN_METADATA_NAMESPACE, "key": TOTAL_TOKENS_METADATA_KEY},
        }
        # One counter per client across the route's per-model rules.
        assert rule["shared"] is True


def test_the_route_asks_ai_gateway_for_the_metadata_the_budgets_read() -> None:
    assert {"metadataKey": TOTAL_TOKENS_METADATA_KEY, "type": "TotalToken"} in LLM_REQUEST_COSTS


def test_policy_targets_the_route_ai_gateway_generates() -> None:
    obj = policy(render(route_name="team-a-models"))
    assert obj["spec"]["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "team-a-models"}
    ]
    assert obj["metadata"]["namespace"] == "inferstack"
    assert obj["metadata"]["name"] == "llm-quota"


def test_request_limits_stay_as_the_load_balancer_writes_them() -> None:
    spec = policy(render(requests_per_minute=120))["spec"]
    expected = rate_limit_spec("llm-models", ["portal", "batch", "ops"], 120)["rateLimit"]["local"]
    assert spec["rateLimit"]["local"] == expected
    # No deprecated `type`: it would select only one of global and local (buildRateLimit, EG v1.8.3).
    assert "type" not in spec["rateLimit"]


def test_no_request_limit_leaves_only_the_token_budgets() -> None:
    spec = policy(render(requests_per_minute=None))["spec"]
    assert "local" not in spec["rateLimit"] and spec["rateLimit"]["global"]["rules"]


def test_429_is_the_openai_error_shape_with_retry_after() -> None:
    (override,) = policy(render(retry_after_seconds=30))["spec"]["responseOverride"]
    assert override["match"]["statusCodes"] == [{"type": "Value", "value": 429}]
    assert override["source"] == "Local"  # a backend's own 429 passes unchanged
    response = override["response"]
    assert response["statusCode"] == 429
    assert response["contentType"] == "application/json"
    assert response["header"]["set"] == [{"name": "Retry-After", "value": "30"}]
    error = json.loads(response["body"]["inline"])["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "rate_limit_exceeded" and error["message"]


def test_the_body_has_no_envoy_format_operator() -> None:
    # Envoy reads the body as a format string: a `%` would be taken as a command operator.
    assert "%" not in rate_limited_body()


def test_two_quota_components_do_not_collide() -> None:
    def program() -> None:
        TokenQuota("a", make_args(route_name="a-models"))
        TokenQuota("b", make_args(route_name="b-models"))

    rec = run_program(program)
    names = sorted(r.inputs["metadata"]["name"] for r in rec.of_type(T_TRAFFIC))
    assert names == ["a-quota", "b-quota"]


# --- Envoy Gateway values -------------------------------------------------------------------------


def test_envoy_gateway_values_point_the_rate_limit_at_redis() -> None:
    values = envoy_gateway_values_for_rate_limit("llm-redis.inferstack.svc:6379")
    assert values == {
        "config": {
            "envoyGateway": {
                "rateLimit": {
                    "backend": {"type": "Redis", "redis": {"url": "llm-redis.inferstack.svc:6379"}},
                    "failClosed": False,
                }
            }
        }
    }


@pytest.mark.parametrize("url", ["redis://x:6379", "llm-redis.inferstack.svc", ""])
def test_a_redis_url_that_is_not_host_port_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="redis_url"):
        envoy_gateway_values_for_rate_limit(url)


@needs_charts
def test_envoy_gateway_values_pass_the_chart_check() -> None:
    values = envoy_gateway_values_for_rate_limit("llm-redis.inferstack.svc:6379")
    assert chart_value_errors("envoy-gateway", values) == []


# --- schemas --------------------------------------------------------------------------------------


@needs_crds
@pytest.mark.parametrize(
    "overrides",
    [{}, {"requests_per_minute": None}, {"quotas": []}],
    ids=["budgets-and-requests", "budgets-only", "requests-only"],
)
def test_policy_validates_against_its_crd_and_cel_rules(overrides: dict[str, Any]) -> None:
    assert crd_errors(manifest_of(rec_one(render(**overrides)))) == []


def rec_one(rec: Recording) -> Any:
    return rec.one(T_TRAFFIC)


@needs_crds
def test_the_crd_check_catches_a_response_cost_on_a_local_rule() -> None:
    # CEL on LocalRateLimit.rules: "response cost is not supported for Local Rate Limits".
    manifest = manifest_of(rec_one(render()))
    rule = dict(manifest["spec"]["rateLimit"]["local"]["rules"][0])
    rule["cost"] = {"response": {"from": "Number", "number": 1}}
    manifest["spec"]["rateLimit"]["local"]["rules"][0] = rule
    assert any("response cost" in e for e in crd_errors(manifest))


@needs_crds
def test_llm_request_costs_validate_on_an_ai_gateway_route() -> None:
    route = {
        "apiVersion": "aigateway.envoyproxy.io/v1beta1",
        "kind": "AIGatewayRoute",
        "metadata": {"name": "llm-models", "namespace": "inferstack"},
        "spec": {
            "parentRefs": [{"name": "llm", "kind": "Gateway", "group": "gateway.networking.k8s.io"}],
            "rules": [
                {
                    "matches": [{"headers": [{"type": "Exact", "name": "x-ai-eg-model", "value": "m"}]}],
                    "backendRefs": [{"name": "m"}],
                }
            ],
            "llmRequestCosts": LLM_REQUEST_COSTS,
        },
    }
    assert crd_errors(route) == []
    route["spec"]["llmRequestCosts"] = [{"metadataKey": TOTAL_TOKENS_METADATA_KEY, "type": "Tokens"}]
    assert crd_errors(route) != []
