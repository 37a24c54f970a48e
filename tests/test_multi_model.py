"""Several models behind one endpoint (issue 16), stated as rules on the planned stacks.

The multi-model example (stacks/Pulumi.multi-onprem.yaml) and the single-model stack files are planned
offline; the assertions read the objects a real cluster would receive (AIGatewayRoute, InferencePool,
InterceptorRoute, ScaledObject, Deployments) and the stack-file rules (`inferstack check` exits 2 naming
the field).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cold_start_hold import HOLD_HEADER
from components.load_balancer import CLIENT_ID_HEADER
from components.model_routing import MODEL_HEADER, assign_variants
from inferstack.cli import EXIT_BAD_INPUT, main
from inferstack.planning.plan import Plan, plan_stack
from inferstack.reporting.summary import render_summary
from stacks.config import (
    ConfigError,
    StackConfig,
    cold_start_seconds,
    config_values_from_stack_yaml,
    load_stack_file,
    parse_stack_config,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "stacks" / "Pulumi.multi-onprem.yaml"
ROUTE = "kubernetes:aigateway.envoyproxy.io/v1beta1:AIGatewayRoute"
POOL = "kubernetes:inference.networking.k8s.io/v1:InferencePool"
INTERCEPTOR_ROUTE = "kubernetes:http.keda.sh/v1beta1:InterceptorRoute"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


@cache
def example() -> tuple[StackConfig, Plan]:
    cfg = load_stack_file(EXAMPLE)
    return cfg, plan_stack(cfg, "multi-onprem")


def objects(plan: Plan, type_token: str) -> list[dict[str, Any]]:
    return [r.inputs for r in plan.recording.resources if r.type == type_token]


def the_route(plan: Plan) -> dict[str, Any]:
    (route,) = objects(plan, ROUTE)
    return route


def header_values(rule: dict[str, Any], name: str, kind: str) -> list[str]:
    return [
        h["value"]
        for match in rule.get("matches", [])
        for h in match.get("headers", [])
        if h["name"] == name and h.get("type", "Exact") == kind
    ]


def example_values() -> dict[str, Any]:
    return config_values_from_stack_yaml(yaml.safe_load(EXAMPLE.read_text()), str(EXAMPLE))


# --- one endpoint, every model -------------------------------------------------------------------------


def test_v1_models_lists_every_model_once_including_the_one_at_zero() -> None:
    cfg, plan = example()
    # AI Gateway v1.1.0 answers GET /v1/models from the route's Exact matches of x-ai-eg-model, one entry per
    # match, with no de-duplication and no look at endpoints (components/model_routing.py route_rules).
    listed = [
        v for rule in the_route(plan)["spec"]["rules"] for v in header_values(rule, MODEL_HEADER, "Exact")
    ]
    assert listed == ["llama-3.1-8b-instruct", "qwen2.5-7b-instruct"] == cfg.model_names
    at_zero = [v.model_name for v in cfg.served if v.config.autoscaling.min_replicas == 0]
    assert at_zero == ["qwen2.5-7b-instruct"] and set(at_zero) <= set(listed)


def test_each_variant_serves_the_public_name_from_its_own_deployment() -> None:
    cfg, plan = example()
    deployments = {
        d["metadata"]["name"]: d for d in objects(plan, DEPLOYMENT) if "pool-epp" not in d["metadata"]["name"]
    }
    assert sorted(deployments) == sorted(v.resource_name for v in cfg.served)
    for variant in cfg.served:
        args = json.dumps(deployments[variant.resource_name]["spec"]["template"]["spec"])
        assert variant.model_name in args  # SERVED_MODEL_NAME: clients see the public name from every variant


def test_unknown_model_gets_the_openai_404_body() -> None:
    _, plan = example()
    (route_filter,) = objects(plan, "kubernetes:gateway.envoyproxy.io/v1alpha1:HTTPRouteFilter")
    response = route_filter["spec"]["directResponse"]
    body = json.loads(response["body"]["inline"])
    assert response["statusCode"] == 404 and response["contentType"] == "application/json"
    assert body["error"]["code"] == "model_not_found" and body["error"]["param"] == "model"


# --- variants ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights",
    [(90, 5), (90, 20), (50, 49)],
)
def test_weights_that_do_not_sum_to_100_exit_2_naming_the_field(
    weights: tuple[int, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    variants = document["config"]["inferstack:models"][0]["variants"]
    variants[0]["weight"], variants[1]["weight"] = weights
    stack_file = tmp_path / "Pulumi.bad-weights.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    monkeypatch.chdir(ROOT)
    code = main(["plan", "bad-weights", "--stack-file", str(stack_file), "--out", str(tmp_path / "plan")])
    out = capsys.readouterr()
    assert code == EXIT_BAD_INPUT
    assert f"models[0].variants: weights sum to {sum(weights)}" in out.out + out.err
    assert "make them sum to 100" in out.out + out.err


def test_stickiness_is_configured_on_the_client_id() -> None:
    cfg, plan = example()
    clients = cfg.serving.api_keys.clients
    model = cfg.models[0]  # type: ignore[index]
    expected = assign_variants(model.name, [(v.name, v.weight) for v in model.variants], clients)
    sticky = [
        r for r in the_route(plan)["spec"]["rules"] if header_values(r, CLIENT_ID_HEADER, "RegularExpression")
    ]
    assert sticky, "the variants' rules match the client id the API-key filter sets"
    seen: dict[str, str] = {}
    for rule in sticky:
        (pattern,) = header_values(rule, CLIENT_ID_HEADER, "RegularExpression")
        (model_pattern,) = header_values(rule, MODEL_HEADER, "RegularExpression")
        assert re.fullmatch(model_pattern, model.name)
        (backend,) = rule["backendRefs"]
        variant = next(v.name for v in model.variants if backend["name"] == f"llm-llama-8b-{v.name}-pool")
        for client in clients:
            if re.fullmatch(pattern, client):
                assert client not in seen, f"{client} is on two variants"
                seen[client] = variant
    assert seen == expected  # every API client sticks to exactly the variant its hash gives


def test_a_weight_step_only_moves_clients_onto_the_canary() -> None:
    clients = [f"client-{i}" for i in range(200)]
    before = assign_variants("m", [("v1", 90), ("v2", 10)], clients)
    after = assign_variants("m", [("v1", 70), ("v2", 30)], clients)
    moved = {c for c in clients if before[c] != after[c]}
    assert moved and all(before[c] == "v1" and after[c] == "v2" for c in moved)


# --- prefix-aware routing --------------------------------------------------------------------------------


def test_each_inference_pool_selects_exactly_its_variants_pods() -> None:
    cfg, plan = example()
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in objects(plan, DEPLOYMENT)
    }
    pools = objects(plan, POOL)
    pooled = [v for v in cfg.served if v.config.uses_inference_pool]
    assert sorted(p["metadata"]["name"] for p in pools) == sorted(f"{v.resource_name}-pool" for v in pooled)
    for pool in pools:
        selector = pool["spec"]["selector"]["matchLabels"]
        matched = [name for name, labels in pods.items() if selector.items() <= labels.items()]
        assert matched == [pool["metadata"]["name"].removesuffix("-pool")], (
            pool["metadata"]["name"],
            matched,
        )


def test_a_model_that_scales_to_zero_and_the_cpu_engine_get_no_pool() -> None:
    cfg, _ = example()
    assert [v.resource_name for v in cfg.served if not v.config.uses_inference_pool] == ["llm-qwen-7b"]


# --- scale from zero -----------------------------------------------------------------------------------


def test_every_model_at_zero_has_a_hold_whose_timeout_is_its_cold_start_budget() -> None:
    cfg, plan = example()
    holds = {r["metadata"]["name"]: r for r in objects(plan, INTERCEPTOR_ROUTE)}
    at_zero = [v for v in cfg.served if v.config.scales_to_zero]
    assert sorted(holds) == sorted(f"{v.resource_name}-hold" for v in at_zero) == ["llm-qwen-7b-hold"]
    for variant in at_zero:
        hold = holds[f"{variant.resource_name}-hold"]["spec"]
        assert hold["timeouts"]["readiness"] == f"{cold_start_seconds(variant.config)}s"
        assert hold["target"] == {"service": variant.resource_name, "port": 8000}
    # The route sends that model to the interceptor with the header that picks its InterceptorRoute.
    rules = the_route(plan)["spec"]["rules"]
    qwen = next(r for r in rules if header_values(r, MODEL_HEADER, "Exact") == ["qwen2.5-7b-instruct"])
    (ref,) = qwen["backendRefs"]
    assert {"name": HOLD_HEADER, "value": "llm-qwen-7b-hold"} in ref["headerMutation"]["set"]


def test_a_held_models_scaled_object_wakes_on_the_add_ons_signal() -> None:
    _, plan = example()
    scaled = {s["metadata"]["name"]: s["spec"] for s in objects(plan, SCALED_OBJECT)}
    triggers = {name: [t["type"] for t in spec["triggers"]] for name, spec in scaled.items()}
    assert "external-push" in triggers["llm-qwen-7b"]
    assert scaled["llm-qwen-7b"]["minReplicaCount"] == 0
    assert all("external-push" not in t for name, t in triggers.items() if name != "llm-qwen-7b")


def test_each_variant_scales_on_its_own_pods_queue() -> None:
    # The variants of one model share vLLM's model_name label; a queue summed over both would scale the
    # 10 % canary on the 90 % variant's load.
    _cfg, plan = example()
    scaled = {s["metadata"]["name"]: s["spec"] for s in objects(plan, SCALED_OBJECT)}
    pod_names = {
        "llm-llama-8b-v1": "llm-llama-8b-v1-6d4f8b7c9-x2k4p",
        "llm-llama-8b-v2": "llm-llama-8b-v2-55c9d-q9z8w",
    }
    for name, pod in pod_names.items():
        (queue,) = [t for t in scaled[name]["triggers"] if t["name"] == "queue-depth"]
        pattern = re.search(r'pod=~"([^"]+)"', queue["metadata"]["query"])
        assert pattern is not None, queue["metadata"]["query"]
        assert [p for p in pod_names.values() if re.fullmatch(pattern.group(1), p)] == [pod]


def test_the_route_outlasts_the_hold_and_a_generation() -> None:
    cfg, plan = example()
    qwen = next(v for v in cfg.served if v.config.scales_to_zero)
    timeout = the_route(plan)["spec"]["rules"][0]["timeouts"]["request"]
    assert int(timeout.removesuffix("s")) >= cold_start_seconds(qwen.config) + 600


# --- the stack file ----------------------------------------------------------------------------------


def test_a_model_entry_inherits_the_stacks_sections_and_overrides_them() -> None:
    cfg, _ = example()
    v1, v2, qwen = cfg.served
    assert v1.config.serving.image == v2.config.serving.image == qwen.config.serving.image  # shared default
    assert v2.config.model.quantization is not None and v1.config.model.quantization is None  # variant's own
    assert (
        qwen.config.autoscaling.min_replicas == 0 and v1.config.autoscaling.min_replicas == 1
    )  # model's own
    assert qwen.config.model.parameters_b == 7.6 and v1.config.model.parameters_b == 8


def test_a_variants_problem_is_located_at_the_key_that_set_it() -> None:
    values = example_values()
    values["models"][0]["variants"][1]["serving"] = {"gpus_per_replica": 3}
    with pytest.raises(ConfigError) as err:
        parse_stack_config(values)
    assert [p for p, _ in err.value.problems] == ["models[0].variants[1].serving.gpus_per_replica"]


def test_two_models_with_one_name_are_refused() -> None:
    values = example_values()
    values["models"][1]["name"] = values["models"][0]["name"]
    with pytest.raises(ConfigError) as err:
        parse_stack_config(values)
    assert (
        "models[1].name",
        "'llama-3.1-8b-instruct' is also models[0]: names are unique",
    ) in err.value.problems


def test_a_token_quota_names_a_known_client() -> None:
    values = example_values()
    values["gateway"]["token_quotas"][0]["client"] = "nobody"
    with pytest.raises(ConfigError) as err:
        parse_stack_config(values)
    assert [p for p, _ in err.value.problems] == ["gateway.token_quotas[0].client"]


# --- the single-model stack files ---------------------------------------------------------------------------

BASELINE = json.loads((ROOT / "tests" / "data" / "plans-before-multi-model.json").read_text())

#: What issue 16 changes in a single-model stack's plan, by resource name, and why. Anything else that
#: differs from the plans before it (tests/data/plans-before-multi-model.json) fails the test below.
NAMED_CHANGES = {
    # Routed stacks (a model at zero: onprem, dev-*; prefix-aware routing: prod-*) reach the model through
    # an AIGatewayRoute named llm-models, whose controller writes the HTTPRoute of that name.
    "llm-api-route": "removed: the API route is AI Gateway's HTTPRoute llm-models, written from the AIGatewayRoute",
    "llm-security-policy": "the API-key SecurityPolicy also targets llm-models (and keeps llm-api while it exists)",
    "llm-envoy-podmonitor": "removed: a model at zero wakes on the KEDA HTTP add-on's signal, not Envoy's 5xx",
    "llm-envoy-gateway": "Envoy Gateway values: AI Gateway's extension manager, InferencePool backends",
    "llm-rate-limit": "the API route's one BackendTrafficPolicy gains the hold's 503 response override",
    "llm-scaledobject": "a model at zero: the add-on's external-push trigger replaces the Envoy 5xx trigger",
    "llm-prometheus-stack": "kube-state-metrics on: a held model's queue trigger reads 0 only at 0 replicas",
    "llm-allow": "the endpoint picker may scrape the engine's /metrics on 8000",
    "llm-deployment": "its rollout deadlines follow the itemized cold-start budget (stacks/cold_start.py: the "
    "node per platform and capacity type, the image per engine)",
}
#: What issue 17 (operating the stack) changes in the same plans.
NAMED_CHANGES.update(
    {
        "llm-gpu-operator": "GPU telemetry: the GPU operator's own DCGM exporter and ServiceMonitor on",
        "llm-prometheus-stack": "kube-state-metrics on for the alerts and dashboards; Grafana and Alertmanager "
        "where the stack file asks",
        "llm-cert-manager": "its PodMonitor on (honorLabels): the certificate-expiry alert reads its series",
        "llm-podmonitor": "podTargetLabels app.kubernetes.io/name on every engine: the dashboards' variant picker",
    }
)


def _now(stack: str) -> dict[str, str]:
    plan = plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)
    # As resources.json writes them (secrets redacted), the form the baseline was taken from.
    return {
        row["urn"].split("::", 2)[2]: hashlib.sha256(
            json.dumps(row["inputs"], sort_keys=True).encode()
        ).hexdigest()[:16]
        for row in plan.resources()
    }


@pytest.mark.parametrize("stack", sorted(BASELINE["stacks"]))
def test_single_model_stacks_plan_as_before_apart_from_named_changes(stack: str) -> None:
    before, now = BASELINE["stacks"][stack], _now(stack)
    unnamed = sorted(
        key
        for key, digest in before.items()
        if now.get(key) != digest and key.rsplit("::", 1)[1] not in NAMED_CHANGES
    )
    assert unnamed == [], f"{stack}: changed or removed without a reason in NAMED_CHANGES"


def test_the_local_stack_keeps_its_plain_route() -> None:
    """A single CPU model with no quotas and no scale to zero: no AI Gateway, the same HTTPRoute."""
    cfg = load_stack_file(ROOT / "stacks" / "Pulumi.local.yaml")
    assert not cfg.routes_by_model
    # The Deployment's rollout deadlines follow the cold-start budget (NAMED_CHANGES), not the routing.
    deadlines = lambda key: key.rsplit("::", 1)[1] == "llm-deployment"  # noqa: E731
    values = {k: v for k, v in copy.deepcopy(BASELINE["stacks"]["local"]).items() if not deadlines(k)}
    assert values == {k: v for k, v in _now("local").items() if k in values}


# --- weights in diff and summary ---------------------------------------------------------------------------


def _with_weights(v1: int, v2: int) -> StackConfig:
    values = example_values()
    values["models"][0]["variants"][0]["weight"], values["models"][0]["variants"][1]["weight"] = v1, v2
    return parse_stack_config(values)


def test_a_weight_change_shows_in_diff_with_the_clients_it_moves() -> None:
    from inferstack.reporting.diff import Side, StackDiff, render_markdown, traffic_of

    def side(cfg: StackConfig) -> Side:
        return Side(gpus_min=0, gpus_max=0, traffic=traffic_of(cfg))

    d = StackDiff("multi-onprem", "main", [], side(_with_weights(90, 10)), side(_with_weights(60, 40)))
    text = render_markdown(d)
    assert (
        "- traffic of `llama-3.1-8b-instruct`: weights v1 90 % -> 60 %, v2 10 % -> 40 %; "
        "clients moved: intranet-assistant v1 -> v2"
    ) in text
    same = StackDiff("multi-onprem", "main", [], side(_with_weights(90, 10)), side(_with_weights(90, 10)))
    assert "traffic of" not in render_markdown(same)


def test_the_summary_names_each_variants_clients_and_warns_of_an_idle_canary() -> None:
    _, plan = example()
    summary = render_summary(plan)
    assert "| `llama-3.1-8b-instruct` | v2 | 10 % | batch-jobs |" in summary
    assert "No API client lands" not in summary
    idle = render_summary(plan_stack(_with_weights(95, 5), "multi-onprem"))
    assert "**No API client lands on llama-3.1-8b-instruct v2**" in idle


def test_the_model_route_is_not_named_like_the_plain_route() -> None:
    # The AI Gateway controller adopts an existing HTTPRoute of its AIGatewayRoute's name without an owner
    # reference (ai-gateway v1.1.0 internal/controller/ai_gateway_route.go): with one name, a stack moving
    # from the plain route would have Pulumi delete the adopted route at the end of `pulumi up` (found by the
    # second review). The policies name both while the old route may still exist.
    _, plan = example()
    assert the_route(plan)["metadata"]["name"] == "llm-models"
    plain = plan_stack(load_stack_file(ROOT / "stacks" / "Pulumi.local.yaml"), "local")
    assert [
        r["metadata"]["name"] for r in objects(plain, "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute")
    ] == [
        "llm-redirect",
        "llm-api",
    ]
    (security,) = objects(plan, "kubernetes:gateway.envoyproxy.io/v1alpha1:SecurityPolicy")
    assert [t["name"] for t in security["spec"]["targetRefs"]] == ["llm-models", "llm-api"]


def test_the_api_routes_one_traffic_policy_targets_the_route_once() -> None:
    # A targetRef listed twice makes Envoy Gateway v1.8.3 attach the policy twice and report it Conflicted
    # with itself (the review of this issue found it: two spec fragments joined).
    _, plan = example()
    (policy,) = objects(plan, "kubernetes:gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy")
    assert policy["spec"]["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "llm-models"},
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "llm-api"},
    ]
    assert {o["match"]["statusCodes"][0]["value"] for o in policy["spec"]["responseOverride"]} == {429, 504}
    assert policy["spec"]["rateLimit"]["global"]["rules"] and policy["spec"]["rateLimit"]["local"]["rules"]


def test_a_held_models_scaled_object_waits_for_its_hold() -> None:
    from tests.stack_graph import ancestors_and_dependencies, covers

    _, plan = example()
    scaled = next(
        r
        for r in plan.recording.resources
        if r.type == SCALED_OBJECT and r.name == "llm-qwen-7b-scaledobject"
    )
    waits_for = ancestors_and_dependencies(plan, scaled)
    assert covers(plan, waits_for, INTERCEPTOR_ROUTE, "llm-qwen-7b-hold-route")


def test_each_clients_token_budget_is_in_the_rate_limit_config() -> None:
    cfg, plan = example()
    (policy,) = objects(plan, "kubernetes:gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy")
    rules = policy["spec"]["rateLimit"]["global"]["rules"]

    def budget(client: str, unit: str) -> list[int]:
        return [
            r["limit"]["requests"]
            for r in rules
            if r["limit"]["unit"] == unit
            and r["clientSelectors"]
            == [{"headers": [{"name": CLIENT_ID_HEADER, "type": "Exact", "value": client}]}]
            and r["cost"]["response"]["metadata"]["key"] == "llm_total_token"
        ]

    for quota in cfg.gateway.token_quotas:
        assert budget(quota.client, "Minute") == [quota.tokens_per_minute]
        assert budget(quota.client, "Day") == [quota.tokens_per_day]
    assert budget("intranet-assistant", "Minute") == []  # no quota: requests are limited, tokens are not
    # AI Gateway writes each response's usage where those rules read it.
    assert the_route(plan)["spec"]["llmRequestCosts"] == [
        {"metadataKey": "llm_total_token", "type": "TotalToken"}
    ]


# --- several models on one cloud GPU pool -------------------------------------------------------------------


def _two_models_on_dev_aws() -> StackConfig:
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev-aws.yaml").read_text())
    values = config_values_from_stack_yaml(document, "dev-aws")
    values["models"] = [
        {"name": "llama-3.1-8b-instruct", "id": "llama"},  # the stack's own model, from its bucket
        {
            "name": "qwen2.5-7b-instruct",
            "id": "qwen",
            "model": {
                "uri": "hf://Qwen/Qwen2.5-7B-Instruct@a09a35458c702b33eeacc393d103063234e8bc28",
                "parameters_b": 7.6,
            },
            "autoscaling": {"min_replicas": 1, "max_replicas": 3},
        },
    ]
    return parse_stack_config(values)


def test_the_gpu_pool_holds_every_model_at_its_most_with_a_surge_each() -> None:
    cfg = _two_models_on_dev_aws()
    plan = plan_stack(cfg, "dev-aws")
    (pool,) = objects(plan, "kubernetes:karpenter.sh/v1:NodePool")
    # llama: (2 + 1) x 1 GPU, qwen: (3 + 1) x 1 GPU.
    assert pool["spec"]["limits"]["nvidia.com/gpu"] == 7
    strategies = {
        d["metadata"]["name"]: d["spec"]["strategy"]["rollingUpdate"]
        for d in objects(plan, DEPLOYMENT)
        if d["metadata"]["name"] in ("llm-llama", "llm-qwen")
    }
    assert strategies == {
        "llm-llama": {"maxSurge": 1, "maxUnavailable": 0},
        "llm-qwen": {"maxSurge": 1, "maxUnavailable": 0},
    }


def test_a_pool_capped_below_both_models_and_a_surge_replaces_one_at_a_time() -> None:
    cfg = _two_models_on_dev_aws()
    values = cfg.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    values["aws"]["gpu_nodes"]["gpu_limit"] = 5  # llama 2 + qwen 3 at their most: no room to surge
    plan = plan_stack(parse_stack_config(values), "dev-aws")
    rolling = {
        d["metadata"]["name"]: d["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
        for d in objects(plan, DEPLOYMENT)
        if d["metadata"]["name"] in ("llm-llama", "llm-qwen")
    }
    assert rolling == {"llm-llama": 0, "llm-qwen": 0}


def test_a_variant_at_zero_percent_that_still_runs_is_named_in_the_summary() -> None:
    values = example_values()
    values["models"][0]["variants"][0]["weight"], values["models"][0]["variants"][1]["weight"] = 100, 0
    summary = render_summary(plan_stack(parse_stack_config(values), "multi-onprem"))
    assert "**At 0 % but running**: llama-3.1-8b-instruct v2 (1 x 1 GPU)" in summary
    values["models"][0]["variants"][1]["autoscaling"] = {"min_replicas": 0}  # a variant sizes itself
    cfg = parse_stack_config(values)
    assert (
        cfg.served[1].config.autoscaling.min_replicas == 0
        and cfg.served[0].config.autoscaling.min_replicas == 1
    )
    assert "At 0 % but running" not in render_summary(plan_stack(cfg, "multi-onprem"))


def test_the_clusters_keda_and_http_add_on_follow_no_model() -> None:
    # Named after a model, the cluster's one KEDA (and add-on) release would be replaced when models are
    # reordered or a variant is removed (found by the newcomer review of this issue).
    def releases(values: dict[str, Any]) -> set[str]:
        plan = plan_stack(parse_stack_config(values), "multi-onprem")
        return {
            r.urn.split("::", 2)[2]
            for r in plan.recording.resources
            if r.type == "kubernetes:helm.sh/v3:Release" and "keda" in r.name
        }

    values = example_values()
    before = releases(values)
    values["models"].reverse()
    del values["models"][1]["variants"][0]  # and the A/B test ended: v2 alone at 100 %
    values["models"][1]["variants"][0]["weight"] = 100
    assert releases(values) == before and len(before) == 2


def test_a_second_model_from_the_stacks_bucket_is_refused_on_aws() -> None:
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev-aws.yaml").read_text())
    values = config_values_from_stack_yaml(document, "dev-aws")
    values["models"] = [
        {"name": "llama-3.1-8b-instruct", "id": "llama"},
        {
            "name": "qwen",
            "id": "qwen",
            "model": {"uri": "s3://example-inferstack-dev-models/qwen", "parameters_b": 7},
        },
    ]
    with pytest.raises(ConfigError) as err:
        parse_stack_config(values)
    assert [p for p, _ in err.value.problems] == ["models[1].model.uri"]
    assert "only the first may come from the stack's s3:// model store" in err.value.problems[0][1]


def test_ai_gateways_webhook_certificate_is_renewed_by_cert_manager() -> None:
    # The chart's own webhook certificate lasts 365 days and is never renewed (ai-gateway-helm v1.1.0
    # templates/admission_webhook.yaml); a year on, no new Envoy pod could start (found by the second review).
    from tests.stack_graph import ancestors_and_dependencies

    _, plan = example()
    (release,) = [
        r
        for r in plan.recording.resources
        if r.type == "kubernetes:helm.sh/v3:Release" and r.name == "llm-models-ai-gateway"
    ]
    assert release.inputs["values"]["controller"]["mutatingWebhook"]["certManager"] == {"enable": True}
    waits_for = ancestors_and_dependencies(plan, release)
    cert_manager = next(r for r in plan.recording.resources if r.name == "llm-cert-manager")
    assert cert_manager.urn in waits_for


def _two_models_on_prod_gcp(**gpu_nodes: Any) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod-gcp.yaml").read_text())
    values = config_values_from_stack_yaml(document, "prod-gcp")
    values["gcp"]["gpu_nodes"].update(gpu_nodes)
    values["network"] = {**values.get("network", {}), "allow_internet_egress": True}
    values["models"] = [
        {"name": "llama-3.1-8b-instruct", "id": "llama"},
        {
            "name": "qwen2.5-7b-instruct",
            "id": "qwen",
            "model": {
                "uri": "hf://Qwen/Qwen2.5-7B-Instruct@a09a35458c702b33eeacc393d103063234e8bc28",
                "parameters_b": 7.6,
            },
            "autoscaling": {"min_replicas": 1, "max_replicas": 3},
        },
    ]
    return values


def test_several_models_on_a_gke_pool_get_one_machine_per_replica() -> None:
    from stacks.config_gcp import GCP_GPU_MACHINES
    from stacks.rules_gcp import gcp_max_gpu_nodes

    values = _two_models_on_prod_gcp(gpu_limit=None)
    cfg = parse_stack_config(values)
    per_machine = GCP_GPU_MACHINES[cfg.gcp.gpu_nodes.machine_type].count  # type: ignore[union-attr]
    expected = sum(
        (v.config.autoscaling.max_replicas + 1) * -(-v.config.serving.gpus_per_replica // per_machine)
        for v in cfg.served
    )
    assert gcp_max_gpu_nodes(cfg) == expected


def test_a_gpu_limit_below_every_models_minimum_together_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_stack_config(_two_models_on_prod_gcp(gpu_limit=5))  # each fits alone, not both
    assert any(
        p == "gcp.gpu_nodes.gpu_limit" and "every model at its min_replicas" in m
        for p, m in err.value.problems
    )


def test_prefix_routing_asked_for_beside_a_held_variant_is_refused_for_that_model_only() -> None:
    # A model's variants share one route rule, which cannot mix InferencePools and the hold's Service.
    values = example_values()
    values["models"][0]["variants"][0]["serving"] = {"prefix_aware_routing": True}
    values["models"][0]["variants"][1]["autoscaling"] = {"min_replicas": 0}
    with pytest.raises(ConfigError) as err:
        parse_stack_config(values)
    assert [p for p, _ in err.value.problems] == ["models[0].variants"]
    # The first model asking for it says nothing about the second's variants.
    values = example_values()
    values["models"][0]["serving"] = {"prefix_aware_routing": True}
    values["models"][1]["variants"] = [
        {"name": "a", "weight": 50},
        {"name": "b", "weight": 50, "autoscaling": {"min_replicas": 0}},
    ]
    assert [v.variant for v in parse_stack_config(values).served][-2:] == ["a", "b"]
