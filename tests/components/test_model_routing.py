"""ModelRouting: one /v1/models entry per model, sticky variants by client id, weights in the objects,
the OpenAI 404 for unknown models, and objects the CRDs (with CEL) accept."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components._common import AI_GATEWAY, AI_GATEWAY_CRDS, CRD_UPGRADES, deep_merge
from components.load_balancer import CLIENT_ID_HEADER, envoy_gateway_values
from components.model_routing import (
    AI_GATEWAY_NAMESPACE,
    MAX_RULES,
    MODEL_HEADER,
    ROUTE_NOT_FOUND_FILTER_PREFIX,
    VARIANT_HEADER,
    InferencePoolBackend,
    ModelRouting,
    ModelRoutingArgs,
    RoutedModel,
    ServiceBackend,
    Variant,
    ai_gateway_values,
    assign_variants,
    backend_object_name,
    envoy_gateway_values_for_ai_gateway,
    route_rules,
    validate_model_routing_args,
    variant_header_lua,
)
from inferstack.planning.recording import Recording, run_program
from tests.components.schemas import chart_value_errors, crd_errors, manifest_of, needs_charts, needs_crds

T_ROUTE = "kubernetes:aigateway.envoyproxy.io/v1beta1:AIGatewayRoute"
T_AI_BACKEND = "kubernetes:aigateway.envoyproxy.io/v1beta1:AIServiceBackend"
T_BACKEND = "kubernetes:gateway.envoyproxy.io/v1alpha1:Backend"
T_FILTER = "kubernetes:gateway.envoyproxy.io/v1alpha1:HTTPRouteFilter"
T_EEP = "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyExtensionPolicy"
T_RELEASE = "kubernetes:helm.sh/v3:Release"
T_CRD_CHART = "kubernetes:helm.sh/v4:Chart"

CLIENTS = [f"client-{i}" for i in range(12)]


def svc(name: str, port: int = 8000) -> ServiceBackend:
    return ServiceBackend(service_name=name, port=port)


def make_args(**overrides: Any) -> ModelRoutingArgs:
    base: dict[str, Any] = {
        "namespace": "inferstack",
        "gateway_name": "llm",
        "hostnames": ["llm.example.com"],
        "client_ids": CLIENTS,
        "models": [
            RoutedModel(
                name="llama-3.1-8b",
                variants=[
                    Variant(name="v1", weight=90, backend=svc("llama-v1")),
                    Variant(name="v2", weight=10, backend=svc("llama-v2")),
                ],
            ),
            RoutedModel(
                name="Qwen/Qwen2.5-0.5B-Instruct",
                variants=[Variant(name="main", weight=100, backend=svc("qwen"))],
                created_at="2026-11-01T00:00:00Z",
            ),
        ],
    }
    base.update(overrides)
    return ModelRoutingArgs(**base)


def deploy(name: str = "llm-models", **overrides: Any) -> Recording:
    return run_program(lambda: ModelRouting(name, make_args(**overrides)))


@functools.cache
def default_run() -> Recording:
    return deploy()


def declared_models(rules: list[dict[str, Any]]) -> list[str]:
    """What AI Gateway v1.1.0 lists at GET /v1/models for these rules: every x-ai-eg-model header match of
    type Exact (or no type), in order, without de-duplication (internal/controller/gateway.go)."""
    return [
        h["value"]
        for rule in rules
        for match in rule.get("matches", [])
        for h in match.get("headers", [])
        if h["name"] == MODEL_HEADER and h.get("type", "Exact") == "Exact"
    ]


def routed_variant(rules: list[dict[str, Any]], model: str, client: str | None) -> list[str]:
    """The backend names of the rule Envoy picks for (model, client): among matching rules, the one with
    most header matches (Gateway API precedence; Envoy Gateway internal/gatewayapi/sort.go)."""
    headers = {MODEL_HEADER: model, **({CLIENT_ID_HEADER: client} if client else {})}

    def matches(h: dict[str, Any]) -> bool:
        value = headers.get(h["name"])
        if value is None:
            return False
        if h.get("type", "Exact") == "Exact":
            return bool(value == h["value"])
        return re.fullmatch(h["value"], value) is not None

    best: tuple[int, list[str]] | None = None
    for rule in rules:
        for match in rule["matches"]:
            if all(matches(h) for h in match["headers"]):
                count = len(match["headers"])
                if best is None or count > best[0]:
                    best = (count, [ref["name"] for ref in rule["backendRefs"]])
    return best[1] if best else []


# --- assignment (pure) --------------------------------------------------------------------------------

weights_2 = st.integers(0, 100).map(lambda w: [("a", w), ("b", 100 - w)])
clients_st = st.lists(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True), min_size=1, max_size=40, unique=True
)


@given(weights=weights_2, clients=clients_st, model=st.text(min_size=1, max_size=30))
def test_every_client_gets_exactly_one_variant_of_nonzero_weight(
    weights: list[tuple[str, int]], clients: list[str], model: str
) -> None:
    assignment = assign_variants(model, weights, clients)
    assert set(assignment) == set(clients)
    positive = {v for v, w in weights if w > 0}
    assert set(assignment.values()) <= positive
    assert assignment == assign_variants(model, weights, list(reversed(clients)))  # order-free, deterministic


@st.composite
def adjacent_step(draw: st.DrawFn) -> tuple[list[tuple[str, int]], list[tuple[str, int]], str, str]:
    """Weights over 2-5 variants and a step moving some weight between two neighbours."""
    n = draw(st.integers(2, 5))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=n - 1, max_size=n - 1)))
    bounds = [0, *cuts, 100]
    before = [(f"v{i}", bounds[i + 1] - bounds[i]) for i in range(n)]
    i = draw(st.integers(0, n - 2))
    giver, taker = (i, i + 1) if draw(st.booleans()) else (i + 1, i)
    amount = draw(st.integers(0, before[giver][1]))
    after = list(before)
    after[giver] = (before[giver][0], before[giver][1] - amount)
    after[taker] = (before[taker][0], before[taker][1] + amount)
    return before, after, before[giver][0], before[taker][0]


@settings(max_examples=300)
@given(step=adjacent_step(), clients=clients_st)
def test_a_weight_step_only_moves_clients_from_the_giver_onto_the_taker(
    step: tuple[list[tuple[str, int]], list[tuple[str, int]], str, str], clients: list[str]
) -> None:
    before, after, giver, taker = step
    old = assign_variants("m", before, clients)
    new = assign_variants("m", after, clients)
    for client in clients:
        if old[client] != new[client]:
            assert (old[client], new[client]) == (giver, taker)


def test_raising_the_canary_moves_some_clients_and_never_back() -> None:
    many = [f"c{i}" for i in range(2000)]
    on_v2: set[str] = set()
    for w in range(0, 101, 10):
        now = {c for c, v in assign_variants("m", [("v1", 100 - w), ("v2", w)], many).items() if v == "v2"}
        assert on_v2 <= now  # nobody returns to v1 while v2 grows
        on_v2 = now
        assert abs(len(now) / len(many) - w / 100) < 0.05  # the share follows the weight
    assert len(on_v2) == len(many)


def test_weights_not_summing_to_100_are_refused() -> None:
    with pytest.raises(ValueError, match="sum to 100"):
        assign_variants("m", [("a", 50), ("b", 40)], ["c"])


# --- validation (pure) --------------------------------------------------------------------------------


def test_valid_args_have_no_problems() -> None:
    assert validate_model_routing_args(make_args()) == []


def _model(**overrides: Any) -> list[RoutedModel]:
    return [dataclasses.replace(make_args().models[0], **overrides)]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (
            {"models": _model(variants=[Variant(name="v1", weight=90, backend=svc("a"))])},
            "models[0].variants",
        ),
        ({"models": []}, "models"),
        ({"models": make_args().models * 2}, "models"),
        ({"client_ids": []}, "client_ids"),
        ({"client_ids": ["a", "a"]}, "client_ids"),
        ({"client_ids": ["Not Valid"]}, "client_ids"),
        ({"hostnames": ["LLM"]}, "hostnames"),
        ({"namespace": "Bad_NS"}, "namespace"),
        ({"request_timeout_seconds": 0}, "request_timeout_seconds"),
        ({"llm_request_costs": [{"metadataKey": "k", "type": "Tokens"}]}, "llm_request_costs[0].type"),
        ({"models": _model(name="has space")}, "models[0].name"),
        ({"models": _model(created_at="yesterday")}, "models[0].created_at"),
        (
            {"models": _model(variants=[Variant(name="V1", weight=100, backend=svc("a"))])},
            "models[0].variants[0].name",
        ),
        (
            {"models": _model(variants=[Variant(name="v1", weight=100, backend=svc("a", port=0))])},
            "models[0].variants[0].backend.port",
        ),
        (
            {
                "models": _model(
                    variants=[
                        Variant(name="v1", weight=50, backend=svc("a")),
                        Variant(name="v2", weight=50, backend=InferencePoolBackend(pool_name="p")),
                    ]
                )
            },
            "models[0].variants",
        ),
        (
            {
                "models": [
                    RoutedModel(name=f"m{i}", variants=[Variant(name="v", weight=100, backend=svc("s"))])
                    for i in range(MAX_RULES + 1)
                ]
            },
            "models",
        ),
    ],
)
def test_each_bad_field_is_named(overrides: dict[str, Any], field: str) -> None:
    problems = validate_model_routing_args(make_args(**overrides))
    assert problems, overrides
    assert any(p.startswith(f"{field}:") for p in problems), problems


def test_weights_that_do_not_sum_to_100_name_the_field_and_the_fix() -> None:
    (problem,) = validate_model_routing_args(
        make_args(
            models=_model(
                variants=[
                    Variant(name="v1", weight=80, backend=svc("a")),
                    Variant(name="v2", weight=10, backend=svc("b")),
                ]
            )
        )
    )
    assert problem.startswith("models[0].variants: weights sum to 90, not 100")


def test_invalid_args_fail_before_any_resource() -> None:
    with pytest.raises(ValueError, match=r"(?s)ModelRouting 'r': .*models\[0\]\.variants"):
        run_program(
            lambda: ModelRouting(
                "r", make_args(models=_model(variants=[Variant(name="v1", weight=1, backend=svc("a"))]))
            )
        )


# --- the rules -----------------------------------------------------------------------------------------


def test_v1_models_lists_each_model_once_even_with_sticky_rules() -> None:
    rules = route_rules("r", make_args())
    assert len(rules) > 2  # sticky rules exist, so one-entry-per-rule would show duplicates
    assert declared_models(rules) == ["llama-3.1-8b", "Qwen/Qwen2.5-0.5B-Instruct"]


def test_every_known_client_reaches_its_assigned_variant_and_unknown_ones_the_weighted_rule() -> None:
    args = make_args()
    rules = route_rules("r", args)
    llama = args.models[0]
    assignment = assign_variants(llama.name, [(v.name, v.weight) for v in llama.variants], CLIENTS)
    assert set(assignment.values()) == {"v1", "v2"}  # the fixture exercises both sticky rules
    for client, variant in assignment.items():
        assert routed_variant(rules, llama.name, client) == [backend_object_name("r", llama.name, variant)]
    assert routed_variant(rules, llama.name, None) == [
        backend_object_name("r", llama.name, "v1"),
        backend_object_name("r", llama.name, "v2"),
    ]
    # A client id of one model's sticky rule does not capture another model.
    assert routed_variant(rules, "Qwen/Qwen2.5-0.5B-Instruct", CLIENTS[0]) == [
        backend_object_name("r", "Qwen/Qwen2.5-0.5B-Instruct", "main")
    ]
    assert routed_variant(rules, "llama-3.1-8bX", CLIENTS[0]) == []  # anchored: no prefix match


def test_weights_reach_the_weighted_rule() -> None:
    rules = route_rules("r", make_args())
    weighted = next(r for r in rules if r["name"].startswith("llama-3-1-8b") and r["name"].endswith("-all"))
    assert [ref["weight"] for ref in weighted["backendRefs"]] == [90, 10]


def test_inference_pool_variants_use_one_pool_per_rule() -> None:
    pools = make_args(
        models=_model(
            variants=[
                Variant(name="v1", weight=70, backend=InferencePoolBackend(pool_name="llama-v1")),
                Variant(name="v2", weight=30, backend=InferencePoolBackend(pool_name="llama-v2")),
            ]
        )
    )
    assert validate_model_routing_args(pools) == []
    rules = route_rules("r", pools)
    for rule in rules:
        assert len(rule["backendRefs"]) == 1
        assert rule["backendRefs"][0]["kind"] == "InferencePool"
    assert rules[0]["backendRefs"][0]["name"] == "llama-v1"  # the highest weight takes id-less requests


def test_the_variant_header_script_maps_each_backend_to_its_variant() -> None:
    args = make_args()
    lua = variant_header_lua("inferstack", "r", args.models)
    assert f'"{VARIANT_HEADER}"' in lua
    for model in args.models:
        for v in model.variants:
            assert f'["inferstack/{backend_object_name("r", model.name, v.name)}"] = "{v.name}"' in lua


# --- the component (recording mock) -------------------------------------------------------------------


def test_one_route_attached_to_the_listener_with_timeouts_and_costs() -> None:
    costs = [{"metadataKey": "llm_total_token", "type": "TotalToken"}]
    rec = deploy(llm_request_costs=costs)
    spec = rec.one(T_ROUTE).inputs["spec"]
    assert spec["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "llm",
            "namespace": "inferstack",
            "sectionName": "https",
        }
    ]
    assert spec["hostnames"] == ["llm.example.com"]
    assert spec["llmRequestCosts"] == costs
    assert all(r["timeouts"] == {"request": "600s", "backendRequest": "600s"} for r in spec["rules"])


def test_each_service_variant_gets_a_backend_pair_pointing_at_its_service() -> None:
    rec = default_run()
    backends = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in rec.of_type(T_BACKEND)}
    ai_backends = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in rec.of_type(T_AI_BACKEND)}
    assert set(backends) == set(ai_backends) and len(backends) == 3
    name = backend_object_name("llm-models", "llama-3.1-8b", "v2")
    assert backends[name]["endpoints"] == [
        {"fqdn": {"hostname": "llama-v2.inferstack.svc.cluster.local", "port": 8000}}
    ]
    assert ai_backends[name]["backendRef"] == {
        "name": name,
        "kind": "Backend",
        "group": "gateway.envoyproxy.io",
    }


def test_unknown_models_get_the_openai_404_through_the_controllers_catch_all_filter() -> None:
    rec = default_run()
    flt = rec.one(T_FILTER)
    assert flt.inputs["metadata"]["name"] == f"{ROUTE_NOT_FOUND_FILTER_PREFIX}llm-models"
    response = flt.inputs["spec"]["directResponse"]
    assert response["statusCode"] == 404
    assert response["contentType"] == "application/json"
    error = json.loads(response["body"]["inline"])["error"]
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        "model",
        "model_not_found",
    )
    # Created before the route, so the controller finds ours and does not create its own.
    assert flt.urn in rec.one(T_ROUTE).dependencies


def test_the_variant_header_policy_targets_the_generated_httproute() -> None:
    eep = default_run().one(T_EEP).inputs["spec"]
    assert eep["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "llm-models"}
    ]


def test_ai_gateway_is_installed_after_its_crds_and_everything_waits_for_it() -> None:
    rec = default_run()
    release = rec.one(T_RELEASE)
    assert release.inputs["chart"] == AI_GATEWAY.chart and release.inputs["version"] == "v1.1.0"
    assert release.inputs["namespace"] == AI_GATEWAY_NAMESPACE
    crds = rec.one(T_CRD_CHART)
    assert crds.inputs["chart"] == AI_GATEWAY_CRDS.chart and crds.urn in release.dependencies
    for t in (T_ROUTE, T_AI_BACKEND, T_BACKEND, T_FILTER, T_EEP):
        for r in rec.of_type(t):
            assert release.urn in r.dependencies, r.name
    assert CRD_UPGRADES[AI_GATEWAY.chart].crd_chart is AI_GATEWAY_CRDS


def test_no_release_when_ai_gateway_already_runs() -> None:
    rec = deploy(install_ai_gateway=False)
    assert rec.of_type(T_RELEASE) == [] and rec.of_type(T_CRD_CHART) == []


# --- upstream schemas ----------------------------------------------------------------------------------


@needs_crds
def test_every_object_validates_against_its_crd_with_cel() -> None:
    rec = deploy(llm_request_costs=[{"metadataKey": "llm_total_token", "type": "TotalToken"}])
    objects = [r for t in (T_ROUTE, T_AI_BACKEND, T_BACKEND, T_FILTER, T_EEP) for r in rec.of_type(t)]
    assert len(objects) == 9  # 3 Backends, 3 AIServiceBackends, route, filter, policy
    for r in objects:
        assert crd_errors(manifest_of(r)) == [], r.name


@needs_crds
def test_the_crd_check_catches_a_mixed_rule() -> None:
    manifest = manifest_of(default_run().one(T_ROUTE))
    manifest["spec"]["rules"][0]["backendRefs"].append(
        {"name": "pool", "group": "inference.networking.k8s.io", "kind": "InferencePool"}
    )
    assert any("cannot mix InferencePool" in e for e in crd_errors(manifest))


@needs_crds
def test_inference_pool_route_validates() -> None:
    rec = deploy(
        models=_model(
            variants=[
                Variant(name="v1", weight=70, backend=InferencePoolBackend(pool_name="llama-v1")),
                Variant(name="v2", weight=30, backend=InferencePoolBackend(pool_name="llama-v2")),
            ]
        )
    )
    assert crd_errors(manifest_of(rec.one(T_ROUTE))) == []


@needs_charts
def test_ai_gateway_values_exist_in_the_chart() -> None:
    assert chart_value_errors("ai-gateway", ai_gateway_values(2)) == []


@needs_charts
def test_envoy_gateway_values_for_ai_gateway_exist_in_the_chart_and_merge() -> None:
    merged = deep_merge(envoy_gateway_values(), envoy_gateway_values_for_ai_gateway())
    # gateway-helm renders config.envoyGateway whole into the EnvoyGateway ConfigMap (v1.8.3
    # charts/gateway-helm/templates/envoy-gateway-config.yaml: `toYaml $mergedEnvoyGatewayConfig`), so keys
    # values.yaml does not list still take effect; the values check reads that map's keys against
    # EnvoyGatewaySpec's fields (api/v1alpha1/envoygateway_types.go), inferstack/validation/helm.py.
    assert chart_value_errors("envoy-gateway", merged) == []
    eg = merged["config"]["envoyGateway"]
    assert eg["gateway"]["controllerName"]  # load_balancer's keys survive the merge
    assert eg["extensionApis"]["enableBackend"] is True
    assert eg["extensionManager"]["service"]["fqdn"] == {
        "hostname": "ai-gateway-controller.envoy-ai-gateway-system.svc.cluster.local",
        "port": 1063,
    }
    assert eg["extensionManager"]["backendResources"][0]["kind"] == "InferencePool"
