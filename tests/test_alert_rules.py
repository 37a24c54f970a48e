"""The alert rules: argument checks (pure), and the rules run for real by promtool - `check rules` on the
file, and `test rules` with synthetic series proving every alert fires when it should and stays quiet when
it should not.

promtool is Debian's `prometheus` package (2.42; `make e2e-host` installs it, .ci/run does that before
`make test`). Missing: a failure under CI (env CI set), a skip with the reason elsewhere.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.alert_rules import (
    LONG_WINDOW_INTERVAL,
    TTFT_BUCKETS,
    AlertRulesArgs,
    GuardrailProcessor,
    ModelObjectives,
    SeriesSources,
    ServedVariant,
    Thresholds,
    _le_matcher,
    ai_gateway_cluster_pattern,
    alert_rule_groups,
    route_cluster_pattern,
    validate_alert_rules_args,
)

PROMTOOL = shutil.which("promtool")
_MISSING = "promtool not installed: `apt-get install prometheus` (Debian; `make e2e-host` does it) gives /usr/bin/promtool"


def promtool() -> str:
    if PROMTOOL:
        return PROMTOOL
    if os.environ.get("CI"):
        pytest.fail(_MISSING)
    pytest.skip(_MISSING)


NS = "serving"
POD_V1 = "llama-v1-5d4f8b9c7-abcde"
POD_V2 = "llama-v2-7f6d5c4b3-fghij"
CLUSTER = "httproute/serving/llm/rule/0"
GATEWAY = {"gateway_envoyproxy_io_owning_gateway_name": "eg"}


def make_args(**overrides: Any) -> AlertRulesArgs:
    base: dict[str, Any] = {
        "namespace": "monitoring",
        "variants": (
            ServedVariant(model="llama", variant="v1", deployment="llama-v1", namespace=NS),
            ServedVariant(model="llama", variant="v2", deployment="llama-v2", namespace=NS),
        ),
        "objectives": (
            ModelObjectives(
                model="llama",
                gateway_clusters=route_cluster_pattern(NS, "llm", [0, 2]),
                interceptor_route=(NS, "llama"),
            ),
        ),
        "sources": SeriesSources(
            gateway=True, dcgm=True, kube_state_metrics=True, cert_manager=True, keda_http=True
        ),
        "rule_labels": {"release": "kps"},
        "guardrail": GuardrailProcessor(deployment="llm-guardrail", namespace=NS, fail_open=True),
    }
    base.update(overrides)
    return AlertRulesArgs(**base)


# --- pure -------------------------------------------------------------------------------------------


def test_valid_args_have_no_problems() -> None:
    assert validate_alert_rules_args(make_args()) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"namespace": "Bad_NS"}, "namespace"),
        ({"variants": ()}, "variants"),
        ({"objectives": (ModelObjectives(model="llama", ttft_seconds=3.0),)}, "objectives[0].ttft_seconds"),
        ({"objectives": (ModelObjectives(model="llama", availability=1.0),)}, "objectives[0].availability"),
        # A budget so large that 14.4x burn is over 100% errors: the fast alert could never fire.
        ({"objectives": (ModelObjectives(model="llama", ttft_target=0.9),)}, "objectives[0].ttft_target"),
        ({"objectives": (ModelObjectives(model="mistral"),)}, "objectives[0].model"),
        ({"rule_labels": {"bad key!": "x"}}, "rule_labels"),
        (
            {"guardrail": GuardrailProcessor(deployment="LLM_guardrail", namespace=NS, fail_open=True)},
            "guardrail.deployment",
        ),
        (
            {"guardrail": GuardrailProcessor(deployment="llama-v1", namespace=NS, fail_open=True)},
            "guardrail.deployment",
        ),
        (
            {"guardrail": GuardrailProcessor(deployment="g", namespace="Bad_NS", fail_open=True)},
            "guardrail.namespace",
        ),
        ({"thresholds": Thresholds(guardrail_down_for="2 minutes")}, "thresholds.guardrail_down_for"),
    ],
)
def test_each_problem_names_its_field(overrides: dict[str, Any], field: str) -> None:
    problems = validate_alert_rules_args(make_args(**overrides))
    assert any(p.startswith(field) for p in problems), problems


def test_bad_args_raise_one_error_listing_every_problem() -> None:
    args = make_args(namespace="Bad", objectives=(ModelObjectives(model="llama", ttft_seconds=3.0),))
    with pytest.raises(ValueError, match=r"2 problem\(s\)") as err:
        alert_rule_groups(args)
    assert "ttft_seconds" in str(err.value) and "namespace" in str(err.value)


def test_le_matcher_matches_the_bucket_as_both_prometheus_versions_store_it() -> None:
    assert _le_matcher(2.5) == 'le="2.5"'
    # prometheus_client writes "1.0" and Prometheus 3 normalises to "1.0" on ingestion; other clients (and
    # Prometheus 2 keeping what they scraped) give "1".
    assert _le_matcher(1.0) == 'le=~"1|1\\\\.0"'
    assert 2.5 in TTFT_BUCKETS


def test_ai_gateway_cluster_pattern_finds_the_models_rules_by_header() -> None:
    rules = [
        {
            "name": "llama-all",
            "matches": [{"headers": [{"type": "Exact", "name": "x-ai-eg-model", "value": "llama"}]}],
        },
        {
            "name": "qwen-all",
            "matches": [{"headers": [{"type": "Exact", "name": "x-ai-eg-model", "value": "qwen"}]}],
        },
        {
            "name": "llama-v2-clients",
            "matches": [
                {"headers": [{"type": "RegularExpression", "name": "x-ai-eg-model", "value": "^llama$"}]}
            ],
        },
    ]
    pattern = ai_gateway_cluster_pattern(NS, "llm", rules, "llama")
    assert pattern == r"httproute/serving/llm/rule/(0|2)(/backend/[0-9]+)?"
    with pytest.raises(ValueError, match="mistral"):
        ai_gateway_cluster_pattern(NS, "llm", rules, "mistral")


def _alerts(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for g in groups for r in g["rules"] if "alert" in r]


def test_every_alert_has_summary_description_runbook_severity_and_for() -> None:
    for rule in _alerts(alert_rule_groups(make_args())):
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["for"], rule["alert"]
        ann = rule["annotations"]
        assert ann["summary"] and ann["description"], rule["alert"]
        assert ann["runbook_url"] == f"docs/operating.md#{rule['alert'].lower()}"


def test_every_alert_has_a_runbook_heading_in_the_operating_guide() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "operating.md").read_text()
    headings = {line.removeprefix("#### ").strip() for line in guide.splitlines() if line.startswith("#### ")}
    names = {r["alert"] for r in _alerts(alert_rule_groups(make_args()))}
    assert names - headings == set(), "alerts whose runbook_url anchor has no heading"


def test_only_groups_whose_series_are_scraped_are_emitted() -> None:
    names = {g["name"] for g in alert_rule_groups(make_args(sources=SeriesSources(gateway=False)))}
    assert names == {
        "inferstack-slo-recording",
        "inferstack-slo-long-windows",
        "inferstack-slo-alerts",
        "inferstack-engine",
    }
    # Without the gateway the availability SLI falls back to the engine's counter.
    groups = alert_rule_groups(make_args(sources=SeriesSources(gateway=False)))
    exprs = " ".join(r["expr"] for r in groups[0]["rules"])
    assert "envoy_" not in exprs and "http_requests_total" in exprs


def test_long_windows_are_recorded_slowly_beside_the_ticket_alerts_that_read_them() -> None:
    """promtool evaluates every group at every step of its own evaluation_interval whatever the group's
    `interval` (cmd/promtool/unittest.go), so the intervals are held here."""
    groups = {g["name"]: g for g in alert_rule_groups(make_args())}
    short, long_, pages = (
        groups["inferstack-slo-recording"],
        groups["inferstack-slo-long-windows"],
        groups["inferstack-slo-alerts"],
    )
    assert short["interval"] == "30s" and long_["interval"] == LONG_WINDOW_INTERVAL == "5m"
    assert "interval" not in pages
    windows = {w for w in ("1d", "3d")}
    long_records = [r["record"] for r in long_["rules"] if "record" in r]
    assert long_records and all(rec.endswith(tuple(windows)) for rec in long_records)
    assert not any(r["record"].endswith(tuple(windows)) for r in short["rules"])
    # The tickets come after the ratios they read, in the same group (rules of a group run in order).
    kinds = ["record" if "record" in r else "alert" for r in long_["rules"]]
    assert kinds == sorted(kinds, key=lambda k: k == "alert") and "alert" in kinds
    assert {r["labels"]["severity"] for r in long_["rules"] if "alert" in r} == {"ticket"}
    assert {r["labels"]["severity"] for r in pages["rules"]} == {"page"}
    # No page reads a long window (they would see a ratio up to 5 minutes old).
    assert not any(f"ratio_rate{w}" in r["expr"] for r in pages["rules"] for w in windows)


def test_pages_need_traffic_and_the_guard_can_be_turned_off() -> None:
    fast = next(
        r
        for r in _alerts(alert_rule_groups(make_args()))
        if r["alert"] == "InferStackAvailabilityBudgetBurnFast"
    )
    assert fast["expr"].count(">= 100") == 2  # both page pairs (1h/5m and 6h/30m)
    off = make_args(thresholds=Thresholds(page_min_requests=0))
    fast = next(
        r for r in _alerts(alert_rule_groups(off)) if r["alert"] == "InferStackAvailabilityBudgetBurnFast"
    )
    assert "requests" not in fast["expr"]
    problems = validate_alert_rules_args(make_args(thresholds=Thresholds(page_min_requests=-1)))
    assert any(p.startswith("thresholds.page_min_requests") for p in problems), problems


def _guardrail_alerts(args: AlertRulesArgs) -> list[dict[str, Any]]:
    return [r for r in _alerts(alert_rule_groups(args)) if r["labels"].get("component") == "guardrail"]


def test_the_guardrail_down_page_says_what_its_fail_mode_does_to_traffic() -> None:
    def down(fail_open: bool) -> dict[str, Any]:
        g = GuardrailProcessor(deployment="llm-guardrail", namespace=NS, fail_open=fail_open)
        (rule,) = [
            r for r in _guardrail_alerts(make_args(guardrail=g)) if r["alert"] == "InferStackGuardrailDown"
        ]
        return rule

    opened, closed = down(True), down(False)
    assert opened["labels"]["severity"] == "page" and opened["for"] == "2m"
    assert "UNCHECKED" in opened["annotations"]["description"]
    assert (
        "5xx" in closed["annotations"]["description"]
        and "UNCHECKED" not in closed["annotations"]["description"]
    )
    assert 'deployment="llm-guardrail"' in opened["expr"] and 'namespace="serving"' in opened["expr"]


def test_guardrail_alerts_only_with_a_guardrail_and_kube_state_metrics() -> None:
    names = sorted(r["alert"] for r in _guardrail_alerts(make_args()))
    assert names == ["InferStackGuardrailDown", "InferStackPodNotReady", "InferStackPodRestarting"]
    not_ready = next(r for r in _guardrail_alerts(make_args()) if r["alert"] == "InferStackPodNotReady")
    assert not_ready["for"] == "5m" and "model" not in not_ready["labels"]
    assert _guardrail_alerts(make_args(guardrail=None)) == []
    no_ksm = SeriesSources(gateway=True, kube_state_metrics=False)
    assert _guardrail_alerts(make_args(sources=no_ksm)) == []


# --- promtool ---------------------------------------------------------------------------------------


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _case(
    series: list[dict[str, str]], eval_time: str, alertname: str, fired: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {
                "eval_time": eval_time,
                "alertname": alertname,
                "exp_alerts": [{"exp_labels": lab} for lab in fired],
            }
        ],
    }


def _availability(total_per_min: int, errors_per_min: int) -> list[dict[str, str]]:
    cl = {"envoy_cluster_name": CLUSTER, **GATEWAY}
    return [
        _series("envoy_cluster_upstream_rq_total", cl, f"0+{total_per_min}x300"),
        _series(
            "envoy_cluster_upstream_rq_xx",
            {**cl, "envoy_response_code_class": "5"},
            f"0+{errors_per_min}x300",
        ),
        _series(
            "envoy_cluster_upstream_rq_xx", {**cl, "envoy_response_code_class": "2"}, f"0+{total_per_min}x300"
        ),
        # Another route's errors are not this model's.
        _series(
            "envoy_cluster_upstream_rq_xx",
            {
                "envoy_cluster_name": "httproute/serving/llm/rule/1",
                "envoy_response_code_class": "5",
                **GATEWAY,
            },
            "0+1000x300",
        ),
    ]


def _ttft(total_per_min: int, fast_per_min: int) -> list[dict[str, str]]:
    base = {"namespace": NS, "pod": POD_V1, "model_name": "llama", "engine": "0"}
    return [
        _series("vllm:time_to_first_token_seconds_bucket", {**base, "le": "2.5"}, f"0+{fast_per_min}x300"),
        _series("vllm:time_to_first_token_seconds_bucket", {**base, "le": "+Inf"}, f"0+{total_per_min}x300"),
        _series("vllm:time_to_first_token_seconds_count", base, f"0+{total_per_min}x300"),
    ]


def _slo(slo: str, severity: str) -> dict[str, str]:
    return {"model": "llama", "slo": slo, "severity": severity}


VARIANT_V1 = {"model": "llama", "variant": "v1", "deployment": "llama-v1"}
POD = {"namespace": NS, "pod": POD_V1}
GUARD_POD = {"namespace": NS, "pod": "llm-guardrail-6b7c9d8f5-k2m4p"}
GUARD = {"component": "guardrail", "deployment": "llm-guardrail"}
GPU = {"gpu": "0", "UUID": "GPU-1", "Hostname": "node-a", "modelName": "NVIDIA L4"}


def promtool_cases() -> list[dict[str, Any]]:
    """(firing and quiet) cases for every alert."""
    fb = "DCGM_FI_DEV_FB_"
    q = "vllm:num_requests_waiting"
    kv = "vllm:kv_cache_usage_perc"
    ready = "kube_pod_status_ready"
    phase = "kube_pod_status_phase"
    unsched = "kube_pod_status_unschedulable"
    xid = "DCGM_FI_DEV_XID_ERRORS"
    local = "envoy_http_local_rate_limit_rate_limited"
    local_l = {"envoy_local_http_ratelimit_prefix": "http_local_rate_limiter", **GATEWAY}
    restarts = "kube_pod_container_status_restarts_total"
    dsx = "envoy_http_downstream_rq_xx"
    dst = "envoy_http_downstream_rq_total"
    hcm = {"envoy_http_conn_manager_prefix": "https-443", **GATEWAY}
    stats = {"envoy_http_conn_manager_prefix": "eg-stats-http", **GATEWAY}
    rl = "envoy_cluster_ratelimit_over_limit"
    up = "envoy_cluster_upstream_rq_total"
    cl = {"envoy_cluster_name": CLUSTER, **GATEWAY}
    cert = "certmanager_certificate_expiration_timestamp_seconds"
    icc = "interceptor_request_concurrency"
    route = {"route_name": "llama", "route_namespace": NS}
    avail = "kube_deployment_status_replicas_available"
    d1 = {"namespace": NS, "deployment": "llama-v1"}
    d2 = {"namespace": NS, "deployment": "llama-v2"}
    dg = {"namespace": NS, "deployment": "llm-guardrail"}
    spec = "kube_deployment_spec_replicas"
    fast, slow = "InferStackAvailabilityBudgetBurnFast", "InferStackAvailabilityBudgetBurnSlow"
    lfast, lslow = "InferStackLatencyBudgetBurnFast", "InferStackLatencyBudgetBurnSlow"
    return [
        # 10% errors against a 0.5% budget: 20x burn pages; 0.2% is within budget.
        _case(_availability(100, 10), "1h", fast, [_slo("availability", "page")]),
        _case(_availability(1000, 2), "1h", fast, []),
        # Every request failing, but 60 an hour: under the 100-request guard, no page at night for it.
        _case(_availability(1, 1), "1h", fast, []),
        # 2% errors: 4x burn - a ticket (over 3x), not a page (under 6x).
        _case(_availability(1000, 20), "3h", slow, [_slo("availability", "ticket")]),
        _case(_availability(1000, 20), "3h", fast, []),
        _case(_availability(1000, 2), "3h", slow, []),
        # 80% of requests over 2.5 s against a 5% budget pages; 20% is a ticket only; 2% is fine.
        _case(_ttft(100, 20), "1h", lfast, [_slo("ttft", "page")]),
        _case(_ttft(100, 80), "3h", lfast, []),
        _case(_ttft(1, 0), "1h", lfast, []),
        _case(_ttft(100, 80), "3h", lslow, [_slo("ttft", "ticket")]),
        _case(_ttft(100, 98), "3h", lslow, []),
        _case(
            [_series(q, POD, "20x30"), _series(q, {"namespace": NS, "pod": POD_V2}, "20x30")],
            "20m",
            "InferStackQueueSaturated",
            [{**VARIANT_V1, "namespace": NS, "severity": "ticket"}, {"model": "llama", "variant": "v2", "deployment": "llama-v2", "namespace": NS, "severity": "ticket"}],
        ),
        # A pod of another Deployment (same name prefix) is not this variant's.
        _case(
            [_series(q, POD, "2x30"), _series(q, {"namespace": NS, "pod": "llama-v1-canary-7c-zz-yy"}, "50x30")],
            "20m",
            "InferStackQueueSaturated",
            [],
        ),
        _case([_series(kv, POD, "0.99x30")], "20m", "InferStackKvCacheNearFull", [{**VARIANT_V1, **POD, "severity": "ticket"}]),
        _case([_series(kv, POD, "0.5x30")], "20m", "InferStackKvCacheNearFull", []),
        _case(
            [_series(fb + "USED", GPU, "79000x30"), _series(fb + "FREE", GPU, "1000x30")],
            "20m",
            "InferStackGpuMemoryNearFull",
            [{**GPU, "severity": "ticket"}],
        ),
        # vLLM's own 90% claim is healthy.
        _case(
            [_series(fb + "USED", GPU, "72000x30"), _series(fb + "FREE", GPU, "8000x30")],
            "20m",
            "InferStackGpuMemoryNearFull",
            [],
        ),
        _case([_series(xid, GPU, "0 0 79 79 79")], "3m", "InferStackGpuXidError", [{**GPU, "severity": "ticket"}]),
        _case([_series(xid, GPU, "0x10")], "5m", "InferStackGpuXidError", []),
        # The same 79, held by the exporter 20 minutes on: old news, the alert has resolved.
        _case([_series(xid, GPU, "0 0 79x40")], "25m", "InferStackGpuXidError", []),
        # An application's XID (43: a vLLM pod stopped on scale-down) is not the GPU's fault.
        _case([_series(xid, GPU, "0 0 43 43 43")], "3m", "InferStackGpuXidError", []),
        # A new hardware XID after an application's one is news again.
        _case([_series(xid, GPU, "0 0 43x20 48x5")], "24m", "InferStackGpuXidError", [{**GPU, "severity": "ticket"}]),
        _case(
            [_series(ready, {**POD, "condition": "false"}, "1x40"), _series(phase, {**POD, "phase": "Running"}, "1x40")],
            "30m",
            "InferStackPodNotReady",
            [{**VARIANT_V1, **POD, "severity": "ticket"}],
        ),
        # Scheduled but never started (image pull, init container): Pending and not ready.
        _case(
            [_series(ready, {**POD, "condition": "false"}, "1x40"), _series(phase, {**POD, "phase": "Pending"}, "1x40")],
            "30m",
            "InferStackPodNotReady",
            [{**VARIANT_V1, **POD, "severity": "ticket"}],
        ),
        # No node can take it: no Ready condition at all, only unschedulable.
        _case(
            [_series(unsched, POD, "1x40"), _series(phase, {**POD, "phase": "Pending"}, "1x40")],
            "30m",
            "InferStackPodNotReady",
            [{**VARIANT_V1, **POD, "severity": "ticket"}],
        ),
        # Not ready for 10 minutes (a model loading), then ready.
        _case(
            [_series(ready, {**POD, "condition": "false"}, "1x10 0x30"), _series(phase, {**POD, "phase": "Running"}, "1x40")],
            "30m",
            "InferStackPodNotReady",
            [],
        ),
        # Evicted (phase Failed) and waiting for garbage collection: Ready=false, but it is over, not stuck.
        _case(
            [
                _series(ready, {**POD, "condition": "false"}, "1x40"),
                _series(phase, {**POD, "phase": "Failed"}, "1x40"),
                _series(phase, {**POD, "phase": "Running"}, "0x40"),
            ],
            "30m",
            "InferStackPodNotReady",
            [],
        ),
        _case([_series(restarts, {**POD, "container": "vllm"}, "0+1x40")], "30m", "InferStackPodRestarting", [{**VARIANT_V1, **POD, "severity": "ticket"}]),
        _case([_series(restarts, {**POD, "container": "vllm"}, "3x40")], "30m", "InferStackPodRestarting", []),
        # The guardrail processor: not ready past its short start (5m), labelled as the guardrail, no model.
        _case(
            [_series(ready, {**GUARD_POD, "condition": "false"}, "1x10"), _series(phase, {**GUARD_POD, "phase": "Running"}, "1x10")],
            "6m",
            "InferStackPodNotReady",
            [{**GUARD, **GUARD_POD, "severity": "ticket"}],
        ),
        # ... not ready for 3 minutes, then ready: quiet (a model's 20 minutes would hide a real one).
        _case(
            [_series(ready, {**GUARD_POD, "condition": "false"}, "1x3 0x10"), _series(phase, {**GUARD_POD, "phase": "Running"}, "1x13")],
            "10m",
            "InferStackPodNotReady",
            [],
        ),
        # A crash-looping processor (a restart every 5 minutes).
        _case(
            [_series(restarts, {**GUARD_POD, "container": "guardrail"}, "0 0 0 0 0 1 1 1 1 1 2 2 2 2 2 3 3 3 3 3 4x20")],
            "20m",
            "InferStackPodRestarting",
            [{**GUARD, **GUARD_POD, "severity": "ticket"}],
        ),
        _case([_series(restarts, {**GUARD_POD, "container": "guardrail"}, "1x40")], "30m", "InferStackPodRestarting", []),
        # No processor replica available for 2 minutes: a page; the value is the spec's count.
        _case(
            [_series(spec, dg, "2x10"), _series(avail, dg, "2 2 0x8")],
            "5m",
            "InferStackGuardrailDown",
            [{**dg, "component": "guardrail", "severity": "page"}],
        ),
        # The available series missing while the Deployment exists is down too.
        _case([_series(spec, dg, "2x10")], "5m", "InferStackGuardrailDown", [{**dg, "component": "guardrail", "severity": "page"}]),
        # Scaled to 0 by hand: the route's ext_proc is still there, so still down.
        _case([_series(spec, dg, "0x10"), _series(avail, dg, "0x10")], "5m", "InferStackGuardrailDown", [{**dg, "component": "guardrail", "severity": "page"}]),
        # One of two available (a rolling restart): quiet; and down for one minute only: quiet.
        _case([_series(spec, dg, "2x10"), _series(avail, dg, "1x10")], "5m", "InferStackGuardrailDown", []),
        _case([_series(spec, dg, "2x10"), _series(avail, dg, "2 2 2 0 2x6")], "5m", "InferStackGuardrailDown", []),
        # A model's Deployment at zero is not the guardrail's (that is InferStackModelStuckAtZero's business).
        _case([_series(spec, d1, "1x10"), _series(avail, d1, "0x10"), _series(spec, dg, "2x10"), _series(avail, dg, "2x10")], "5m", "InferStackGuardrailDown", []),
        # No Deployment at all (no guardrail series): quiet.
        _case([_series(avail, d1, "1x10")], "5m", "InferStackGuardrailDown", []),
        _case(
            [_series(dst, hcm, "0+100x40"), _series(dsx, {**hcm, "envoy_response_code_class": "5"}, "0+10x40")],
            "20m",
            "InferStackGateway5xxRate",
            [{**GATEWAY, "severity": "ticket"}],
        ),
        # The proxy's own stats listener's 5xx are not client traffic.
        _case(
            [
                _series(dst, hcm, "0+100x40"),
                _series(dsx, {**hcm, "envoy_response_code_class": "5"}, "0+1x40"),
                _series(dsx, {**stats, "envoy_response_code_class": "5"}, "0+100x40"),
            ],
            "20m",
            "InferStackGateway5xxRate",
            [],
        ),
        # 20% refused by the local limit alone: the global counter does not exist yet and must not blank the sum.
        _case(
            [_series(dst, hcm, "0+100x40"), _series(local, local_l, "0+20x40")],
            "20m",
            "InferStackGateway429Rate",
            [{**GATEWAY, "severity": "ticket"}],
        ),
        # 20% refused by the token quota alone (no local limit configured).
        _case(
            [_series(dst, hcm, "0+100x40"), _series(rl, cl, "0+20x40"), _series(up, cl, "0+80x40")],
            "20m",
            "InferStackGateway429Rate",
            [{**GATEWAY, "severity": "ticket"}],
        ),
        # 6% and 2%: each under, and together (8%) still under the 10% threshold.
        _case(
            [_series(dst, hcm, "0+100x40"), _series(local, local_l, "0+6x40"), _series(rl, cl, "0+2x40")],
            "20m",
            "InferStackGateway429Rate",
            [],
        ),
        # 6% and 6%: neither alone, both together are over.
        _case(
            [_series(dst, hcm, "0+100x40"), _series(local, local_l, "0+6x40"), _series(rl, cl, "0+6x40")],
            "20m",
            "InferStackGateway429Rate",
            [{**GATEWAY, "severity": "ticket"}],
        ),
        _case(
            [_series(cert, {"namespace": NS, "name": "api-tls"}, f"{10 * 86400}x200")],
            "2h",
            "InferStackCertificateExpiringSoon",
            [{"namespace": NS, "name": "api-tls", "severity": "ticket"}],
        ),
        _case([_series(cert, {"namespace": NS, "name": "api-tls"}, f"{60 * 86400}x200")], "2h", "InferStackCertificateExpiringSoon", []),
        _case(
            [_series(icc, route, "3x40"), _series(avail, d1, "0x40"), _series(avail, d2, "0x40")],
            "20m",
            "InferStackModelStuckAtZero",
            [{"model": "llama", "severity": "page"}],
        ),
        # One variant is up: requests are served, not stuck.
        _case(
            [_series(icc, route, "3x40"), _series(avail, d1, "1x40"), _series(avail, d2, "0x40")],
            "20m",
            "InferStackModelStuckAtZero",
            [],
        ),
    ]  # fmt: skip


def _write_rules(tmp_path: Path, groups: list[dict[str, Any]], annotations: bool = True) -> Path:
    groups = copy.deepcopy(groups)
    if not annotations:
        # promtool compares annotations exactly; their templates are checked by `check rules` on the real file
        # and their presence by test_every_alert_has_summary_description_runbook_severity_and_for.
        for g in groups:
            for r in g["rules"]:
                r.pop("annotations", None)
    path = tmp_path / ("rules.yaml" if annotations else "rules-bare.yaml")
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)


def test_promtool_accepts_the_rule_file(tmp_path: Path) -> None:
    rules = _write_rules(tmp_path, alert_rule_groups(make_args()))
    out = _run([promtool(), "check", "rules", str(rules)])
    assert out.returncode == 0, out.stdout + out.stderr
    # And the lean variant (no optional exporter).
    (tmp_path / "lean").mkdir()
    lean = _write_rules(tmp_path / "lean", alert_rule_groups(make_args(sources=SeriesSources(gateway=False))))
    out = _run([promtool(), "check", "rules", str(lean)])
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    names = {r["alert"] for r in _alerts(alert_rule_groups(make_args()))}
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in promtool_cases():
        for t in case["alert_rule_test"]:
            (firing if t["exp_alerts"] else quiet).add(t["alertname"])
    assert names - firing == set(), "alerts with no firing case"
    assert names - quiet == set(), "alerts with no quiet case"


def test_promtool_proves_each_alert_fires_and_stays_quiet(tmp_path: Path) -> None:
    rules = _write_rules(tmp_path, alert_rule_groups(make_args()), annotations=False)
    tests = tmp_path / "tests.yaml"
    tests.write_text(
        yaml.safe_dump(
            {"rule_files": [rules.name], "evaluation_interval": "1m", "tests": promtool_cases()},
            sort_keys=False,
        )
    )
    out = _run([promtool(), "test", "rules", str(tests)])
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
