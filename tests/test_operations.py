"""The operating sections of a stack file (stacks/config_operations.py) as the stacks compose them
(stacks/operations.py): alerts per model, dashboards, GPU telemetry per platform, the guardrail in front of the
model route with the stack's own classifier, and the chat UI on its own hostname."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.alert_rules import TTFT_BUCKETS
from components.gpu_telemetry import GpuTelemetrySource
from inferstack.planning.plan import Plan, plan_stack
from inferstack.reporting.summary import render_summary
from stacks.config import ConfigError, config_values_from_stack_yaml, load_stack_file, parse_stack_config
from stacks.operations import chat_pod_cidrs, gpu_operator_values, gpu_telemetry_args, telemetry_source

ROOT = Path(__file__).resolve().parents[1]
GUARDED = ROOT / "stacks" / "Pulumi.guarded-onprem.yaml"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
EXTENSION = "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyExtensionPolicy"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
RELEASE = "kubernetes:helm.sh/v3:Release"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"


@cache
def planned(stack: str) -> Plan:
    return plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)


def objects(plan: Plan, type_token: str) -> list[dict[str, Any]]:
    return [r.inputs for r in plan.recording.resources if r.type == type_token]


def guarded_values() -> dict[str, Any]:
    return config_values_from_stack_yaml(yaml.safe_load(GUARDED.read_text()), str(GUARDED))


def problems_of(values: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_stack_config(values)
    return [path for path, _ in err.value.problems]


# --- alerts ------------------------------------------------------------------------------------------------


def test_each_model_burns_against_its_own_latency_objective() -> None:
    (rule,) = objects(planned("guarded-onprem"), RULE)
    text = json.dumps(rule["spec"])
    # llama: ttft 1 s; the guard model: 0.25 s (models[].slo in the stack file); each a bucket bound.
    assert 'model_name=\\"llama-guard-3-1b\\"' in text
    ratios = [
        r["expr"]
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if r.get("record", "").startswith("inferstack:slo_ttft_errors") and "llama-guard-3-1b" in r["expr"]
    ]
    assert ratios and all('le=~"0.25|0.25' in e or 'le="0.25"' in e or "0.25" in e for e in ratios)
    assert 1.0 in TTFT_BUCKETS and 0.25 in TTFT_BUCKETS


def test_no_rule_where_no_prometheus_reads_it() -> None:
    # The local stack installs no Prometheus and says the cluster has no operator CRDs.
    assert objects(planned("local"), RULE) == []


def test_the_gateway_is_scraped_for_the_alerts_after_its_release() -> None:
    plan = planned("guarded-onprem")
    monitors = {
        r.name: r
        for r in plan.recording.resources
        if r.type == POD_MONITOR and "envoy" in r.inputs["metadata"]["namespace"]
    }
    assert set(monitors) == {"llm-envoy-podmonitor", "llm-ai-gateway-extproc-podmonitor"}
    (rule,) = objects(plan, RULE)
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {"InferStackGateway5xxRate", "InferStackGateway429Rate", "InferStackPodNotReady"} <= alerts


def test_an_objective_the_fastest_burn_cannot_spend_is_refused() -> None:
    values = guarded_values()
    values["slo"] = {"availability": 0.9}
    assert problems_of(values) == ["slo.availability"]


def test_a_latency_threshold_off_the_histograms_buckets_is_refused_where_it_is_written() -> None:
    values = guarded_values()
    values["models"][0]["slo"] = {"ttft_seconds": 3}
    assert problems_of(values) == ["models[0].slo.ttft_seconds"]


# --- dashboards and GPU telemetry ----------------------------------------------------------------------------


def test_dashboards_are_configmaps_for_the_grafana_sidecar() -> None:
    maps = [
        m
        for m in objects(planned("guarded-onprem"), CONFIG_MAP)
        if "grafana_dashboard" in m["metadata"]["labels"]
    ]
    assert {m["metadata"]["name"] for m in maps} == {"llm-models", "llm-clients", "llm-gpus"}
    assert all(m["metadata"]["labels"]["grafana_dashboard"] == "1" for m in maps)
    assert {m["metadata"]["namespace"] for m in maps} == {"monitoring"}
    (stack,) = [r for r in objects(planned("guarded-onprem"), RELEASE) if r["name"] == "llm-prometheus-stack"]
    assert stack["values"]["grafana"]["enabled"] is True


def test_grafana_needs_the_stacks_prometheus() -> None:
    values = guarded_values()
    values["monitoring"] = {
        "install_prometheus": False,
        "prometheus_url": "http://prometheus.monitoring:9090",
        "dashboards": {"install_grafana": True},
    }
    assert "monitoring.dashboards.install_grafana" in problems_of(values)


@pytest.mark.parametrize(
    ("stack", "source"),
    [
        ("prod-aws", GpuTelemetrySource.NVIDIA_RUNTIME),
        ("prod-gcp", GpuTelemetrySource.GKE),
        ("guarded-onprem", GpuTelemetrySource.GPU_OPERATOR),
    ],
)
def test_gpu_telemetry_comes_the_way_each_platform_prescribes(stack: str, source: GpuTelemetrySource) -> None:
    cfg = load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    assert telemetry_source(cfg) is source
    releases = {r["name"]: r for r in objects(planned(stack), RELEASE)}
    if source is GpuTelemetrySource.GPU_OPERATOR:
        # The operator's own exporter: a second DCGM on the same GPUs would fight it.
        assert "llm-dcgm-exporter" not in releases
        assert releases["llm-gpu-operator"]["values"]["dcgmExporter"]["enabled"] is True
        assert gpu_operator_values(cfg)["dcgmExporter"]["serviceMonitor"]["enabled"] is True
    else:
        exporter = releases["llm-dcgm-exporter"]["values"]
        args = gpu_telemetry_args(cfg, None)
        assert args is None  # no placement, no chart: it must land on the pool's GPU nodes
        assert any(t.get("key") == "nvidia.com/gpu" for t in exporter["tolerations"])
        assert exporter["nodeSelector"]


def test_no_gpu_telemetry_on_a_cpu_stack() -> None:
    releases = {r["name"] for r in objects(planned("local"), RELEASE)}
    assert "llm-dcgm-exporter" not in releases


# --- the guardrail --------------------------------------------------------------------------------------------


def guardrail_policy(plan: Plan) -> dict[str, Any]:
    (cm,) = [m for m in objects(plan, CONFIG_MAP) if m["metadata"]["name"] == "llm-guardrail-policy"]
    (text,) = cm["data"].values()
    return json.loads(text)


def test_the_guardrail_guards_the_model_route() -> None:
    plan = planned("guarded-onprem")
    policies = [p for p in objects(plan, EXTENSION) if "extProc" in p["spec"]]
    (policy,) = policies
    assert policy["spec"]["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "llm-models"}
    ]
    (backend,) = policy["spec"]["extProc"][0]["backendRefs"]
    assert backend["name"] == "llm-guardrail"
    # Fail-closed when the processor is down (guardrail.failure_mode closed).
    assert policy["spec"]["extProc"][0].get("failOpen", False) is False


def test_each_clients_policy_is_the_default_with_its_own_keys_over_it() -> None:
    policy = guardrail_policy(planned("guarded-onprem"))
    default = policy["default"]
    assert default["flag"] == ["S6"] and "S6" not in default["block"] and len(default["block"]) == 13
    assistant, portal = policy["clients"]["intranet-assistant"], policy["clients"]["support-portal"]
    assert assistant["check_responses"] is True and assistant["flag"] == ["S6"]
    assert portal["failure_mode"] == "open" and portal.get("check_responses") in (None, False)


def test_the_classifier_is_one_of_the_stacks_models() -> None:
    values = guarded_values()
    values["guardrail"]["classifier_model"] = "llama-guard-4"
    assert problems_of(values) == ["guardrail.classifier_model"]


def test_a_category_both_blocked_and_flagged_is_refused() -> None:
    values = guarded_values()
    values["guardrail"]["default"] = {"block": ["S1", "S6"], "flag": ["S6"]}
    assert problems_of(values) == ["guardrail"]


def test_an_unknown_category_is_refused_at_its_key() -> None:
    values = guarded_values()
    values["guardrail"]["clients"]["support-portal"]["block"] = ["S15"]
    assert problems_of(values) == ["guardrail.clients.support-portal.block"]


def test_a_guardrail_names_known_clients() -> None:
    values = guarded_values()
    values["guardrail"]["clients"]["nobody"] = {"failure_mode": "open"}
    assert problems_of(values) == ["guardrail.clients.nobody"]


def test_a_single_model_cannot_classify_itself() -> None:
    values = config_values_from_stack_yaml(
        yaml.safe_load((ROOT / "stacks" / "Pulumi.onprem.yaml").read_text()), "onprem"
    )
    values["guardrail"] = {
        "enabled": True,
        "classifier_model": values["model"].get("name") or "x",
        "image": "registry.example.internal/guardrail:1",
    }
    assert "guardrail.classifier_model" in problems_of(values)


# --- the chat UI ------------------------------------------------------------------------------------------------


def test_the_chat_ui_has_its_own_listener_and_certificate_name() -> None:
    plan = planned("guarded-onprem")
    (gateway,) = objects(plan, GATEWAY)
    hostnames = {listener.get("hostname") for listener in gateway["spec"]["listeners"]}
    assert {"llm.example.com", "chat.example.com"} <= hostnames
    certificates = objects(plan, "kubernetes:cert-manager.io/v1:Certificate")
    assert any("chat.example.com" in c["spec"]["dnsNames"] for c in certificates)
    releases = {r["name"] for r in objects(plan, RELEASE)}
    assert "llm-open-webui" in releases


def test_the_chat_client_is_an_api_client() -> None:
    values = guarded_values()
    values["serving"]["api_keys"]["clients"] = ["support-portal", "intranet-assistant"]
    paths = problems_of(values)
    assert "chat_ui.client" in paths


def test_the_chat_ui_calls_from_the_pod_network_which_an_allow_list_must_admit() -> None:
    values = guarded_values()
    del values["chat_ui"]["pod_cidrs"]
    assert problems_of(values) == ["chat_ui.pod_cidrs"]
    cfg = load_stack_file(GUARDED)
    assert chat_pod_cidrs(cfg) == ["10.244.0.0/16"]


def test_chat_ui_off_changes_no_gateway_listener() -> None:
    (gateway,) = objects(planned("multi-onprem"), GATEWAY)
    assert all(
        listener.get("hostname") in (None, "llm.example.com") for listener in gateway["spec"]["listeners"]
    )


def test_the_classifier_stays_up_and_reads_the_longest_input() -> None:
    values = guarded_values()
    values["models"][1]["autoscaling"] = {"min_replicas": 0}
    values["models"][1]["model"]["max_model_len"] = 8192
    assert problems_of(values) == ["models[1].autoscaling.min_replicas", "models[1].model.max_model_len"]


def test_alerts_reach_an_alertmanager_only_where_the_stack_file_installs_one() -> None:
    stacks = {r["name"]: r for r in objects(planned("guarded-onprem"), RELEASE)}
    alertmanager = stacks["llm-prometheus-stack"]["values"]["alertmanager"]
    # The receivers are the operator's Secret: the chart writes no configuration of its own.
    assert alertmanager == {"enabled": True, "alertmanagerSpec": {"useExistingSecret": True}}
    local = load_stack_file(ROOT / "stacks" / "Pulumi.onprem.yaml")
    assert not local.monitoring.alerts.alertmanager
    onprem = {r["name"]: r for r in objects(planned("onprem"), RELEASE)}
    assert onprem["llm-prometheus-stack"]["values"]["alertmanager"] == {"enabled": False}
    assert "alerts notify no one" in render_summary(planned("onprem"))


def test_the_guardrail_and_the_variant_header_share_the_routes_one_extension_policy() -> None:
    policies = objects(planned("guarded-onprem"), EXTENSION)
    targets = [tuple(sorted(r["name"] for r in p["spec"]["targetRefs"])) for p in policies]
    assert len(targets) == len(set(targets)), targets


def test_the_guardrail_runs_after_the_address_rules_and_rate_limits() -> None:
    (proxy,) = objects(planned("guarded-onprem"), "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy")
    order = proxy["spec"]["filterOrder"]
    assert [p["after"] for p in order] == [
        "envoy.filters.http.rbac",
        "envoy.filters.http.local_ratelimit",
        "envoy.filters.http.ratelimit",
    ]
    assert {p["name"] for p in order} == {"envoy.filters.http.ext_proc"}
    (unguarded,) = objects(planned("multi-onprem"), "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy")
    assert "filterOrder" not in unguarded["spec"]


def test_envoy_refuses_a_body_larger_than_the_guardrail_reads() -> None:
    from guardrail.memory import max_body_bytes

    (policy,) = objects(
        planned("guarded-onprem"), "kubernetes:gateway.envoyproxy.io/v1alpha1:ClientTrafficPolicy"
    )
    limit = policy["spec"]["connection"]["bufferLimit"]
    # The classifier's context (16384 tokens) at 8 characters a token, as JSON bytes, rounded up to MiB.
    assert limit == "2Mi" and max_body_bytes(8 * 16384) <= 2 * 2**20
    (unguarded,) = objects(
        planned("multi-onprem"), "kubernetes:gateway.envoyproxy.io/v1alpha1:ClientTrafficPolicy"
    )
    assert unguarded["spec"]["connection"]["bufferLimit"] == "50Mi"


def test_a_guardrail_that_cannot_hold_one_long_prompt_is_refused_at_its_memory() -> None:
    values = guarded_values()
    values["guardrail"]["memory"] = "128Mi"
    assert problems_of(values) == ["guardrail.memory"]


def test_an_issuer_network_open_to_everything_is_refused() -> None:
    values = guarded_values()
    values["chat_ui"]["oidc"]["issuer_cidrs"] = ["0.0.0.0/0"]
    assert problems_of(values) == ["chat_ui.oidc.issuer_cidrs"]


def test_the_classifiers_availability_is_counted_where_its_callers_reach_it() -> None:
    (rule,) = objects(planned("guarded-onprem"), RULE)
    ratios = {
        r["labels"]["model"]: r["expr"]
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if r.get("record") == "inferstack:slo_availability_errors:ratio_rate5m"
    }
    # The processor calls the classifier's Service, never the gateway: the engine's own count sees it.
    assert "http_requests_total" in ratios["llama-guard-3-1b"]
    assert "envoy_cluster_upstream_rq_xx" in ratios["llama-3.1-8b-instruct"]


DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def _guardrail_rules(stack: str) -> list[dict[str, Any]]:
    return [
        r
        for rule in objects(planned(stack), RULE)
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if r.get("labels", {}).get("component") == "guardrail"
    ]


def test_the_guardrail_processor_is_alerted_on_by_the_deployment_the_stack_makes() -> None:
    rules = {r["alert"]: r for r in _guardrail_rules("guarded-onprem")}
    assert set(rules) == {"InferStackGuardrailDown", "InferStackPodNotReady", "InferStackPodRestarting"}
    (processor,) = [
        d["metadata"]
        for d in objects(planned("guarded-onprem"), DEPLOYMENT)
        if d["metadata"]["name"].endswith("-guardrail")
    ]
    down = rules["InferStackGuardrailDown"]
    assert f'deployment="{processor["name"]}"' in down["expr"]
    assert f'namespace="{processor["namespace"]}"' in down["expr"]
    assert down["labels"]["severity"] == "page"
    # guardrail.failure_mode closed: down, the processor costs every guarded request a 5xx.
    assert "5xx" in down["annotations"]["description"]
    assert "UNCHECKED" not in down["annotations"]["description"]
    # It starts in seconds, not a model's cold start.
    assert rules["InferStackPodNotReady"]["for"] == "5m"


def test_no_guardrail_alert_without_a_guardrail() -> None:
    assert objects(planned("multi-onprem"), RULE) != []
    assert _guardrail_rules("multi-onprem") == []
