"""Bring-your-own monitoring must not inherit the bundled stack's assumptions (issue 13, kind 5).

Across every stack (stacks/ and docs/examples/): each KEDA prometheus trigger fails on a missing metric
instead of reading it as 0, every PodMonitor is selected by the Prometheus the plan installs, and the same
stack switched to an existing Prometheus is refused without the labels that Prometheus selects and, with
them, puts those labels on every PodMonitor and admits scrapes from the Prometheus's namespace. The
policies that state the rules on any plan fail on the defective forms in every stack.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.autoscaler import EnvoyRouteHint, queue_depth_query, wake_up_query
from inferstack.planning.plan import Plan, plan_stack
from inferstack.validation.policies import check_policies
from stacks.config import (
    ConfigError,
    StackConfig,
    config_values_from_stack_yaml,
    load_stack_file,
    parse_stack_config,
)
from stacks.operations import reads_gateway_series

ROOT = Path(__file__).resolve().parents[1]
STACK_FILES = sorted(
    [*(ROOT / "stacks").glob("Pulumi.*.yaml"), *(ROOT / "docs" / "examples").glob("Pulumi.*.yaml")]
)
BYO_URL = "http://kube-prometheus-stack-prometheus.observability.svc:9090"
BYO_LABELS = {"release": "kube-prometheus-stack"}

_PLANS: dict[tuple[Path, bool], Plan] = {}


def stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


def values_of(path: Path) -> dict[str, Any]:
    return config_values_from_stack_yaml(yaml.safe_load(path.read_text()), path.name)


def byo_values(path: Path, **monitoring: Any) -> dict[str, Any]:
    """The stack's values switched to an existing kube-prometheus-stack in namespace `observability`."""
    values = copy.deepcopy(values_of(path))
    values["monitoring"] = {
        "install_prometheus": False,
        "prometheus_url": BYO_URL,
        "prometheus_namespace": "observability",
        **monitoring,
    }
    return values


def plan_of(path: Path, byo: bool = False) -> Plan:
    if (path, byo) not in _PLANS:
        config = (
            parse_stack_config(byo_values(path, pod_monitor_labels=BYO_LABELS))
            if byo
            else load_stack_file(path)
        )
        _PLANS[path, byo] = plan_stack(config, stack_name(path))
    return copy.deepcopy(_PLANS[path, byo])


def queue_scaled(c: StackConfig) -> bool:
    """Whether the stack reads the vLLM queue from Prometheus (autoscaling on, vllm engine)."""
    return c.autoscaling.enabled and c.serving.engine.value == "vllm"


def recorded(plan: Plan, kind: str) -> list[dict[str, Any]]:
    return [
        r.inputs for r in plan.recording.resources if r.inputs.get("kind") == kind or r.type.endswith(kind)
    ]


def _mandatory(plan: Plan, policy: str) -> list[str]:
    return [f.message for f in check_policies(plan) if f.policy == policy and f.mandatory]


# --- a missing metric fails the trigger -----------------------------------------------------------------


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_prometheus_trigger_fails_on_a_missing_metric(path: Path) -> None:
    plan = plan_of(path)
    triggers = [
        t
        for m in plan.manifests()
        if m["kind"] == "ScaledObject"
        for t in m["spec"]["triggers"]
        if t["type"] == "prometheus"
    ]
    assert bool(triggers) == queue_scaled(plan.config)
    for t in triggers:
        assert t["metadata"]["ignoreNullValues"] == "false", (path.name, t["name"])
    assert _mandatory(plan, "prometheus-triggers-fail-loudly") == []


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_a_null_tolerant_trigger_fails_the_policy_in_every_stack(path: Path) -> None:
    plan = plan_of(path)
    scaled = recorded(plan, "ScaledObject")
    if not queue_scaled(plan.config):
        pytest.skip(f"{path.name} has no prometheus trigger")
    # The form issue 13 found: KEDA's default, which turns "no series" into 0, on every prometheus trigger
    # of every ScaledObject (one per model or variant). A held model's wake-up trigger is the KEDA HTTP
    # add-on's external-push, which has no such setting: only the prometheus triggers are the rule's.
    prometheus = [t for so in scaled for t in so["spec"]["triggers"] if t["type"] == "prometheus"]
    assert prometheus
    for t in prometheus:
        t["metadata"]["ignoreNullValues"] = "true"
    messages = _mandatory(plan, "prometheus-triggers-fail-loudly")
    assert len(messages) == len(prometheus) and all('ignoreNullValues: "false"' in m for m in messages), (
        messages
    )


def test_the_queue_query_is_empty_when_vllm_is_absent_unless_no_replica_runs() -> None:
    hint = EnvoyRouteHint("llm", "llm", "llm", "llm-api")
    # min_replicas >= 1: the bare sum; an empty result (no vLLM series) is an error.
    bare = queue_depth_query("llm", "qwen")
    assert " or " not in bare and bare.startswith("sum(vllm:num_requests_waiting{")
    # min_replicas 0: a 0 only while Envoy has no ready endpoint behind the route, witnessed by the gateway's
    # own series, never an unconditional `or vector(0)`.
    at_zero = queue_depth_query("llm", "qwen", hint)
    assert at_zero.startswith(bare + " or ")
    assert "vector(0)" not in at_zero
    assert "envoy_cluster_membership_healthy" in at_zero and "== 0" in at_zero
    assert "unless on()" in at_zero and "envoy_server_live" in at_zero
    wake = wake_up_query(hint)
    assert "vector(0)" not in wake and wake.count("envoy_server_live") == 2


# --- every PodMonitor is selected ------------------------------------------------------------------------


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_pod_monitor_is_selected_by_the_installed_prometheus(path: Path) -> None:
    plan = plan_of(path)
    assert _mandatory(plan, "pod-monitors-selected") == []
    releases = [r for r in recorded(plan, "Release") if "kube-prometheus-stack" in str(r.get("chart"))]
    if not releases:
        pytest.skip(f"{path.name} installs no Prometheus")
    # The form issue 13 found: the chart's default selector (release: <name>), which our PodMonitors
    # do not carry; every PodMonitor must then fail.
    spec = releases[0]["values"]["prometheus"]["prometheusSpec"]
    spec.pop("podMonitorSelector")
    spec["podMonitorSelectorNilUsesHelmValues"] = True
    monitors = recorded(plan, "PodMonitor")
    messages = _mandatory(plan, "pod-monitors-selected")
    assert monitors and len(messages) == len(monitors), messages
    assert all("release" in m and "monitoring.pod_monitor_labels" in m for m in messages)


# --- an existing Prometheus ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_an_existing_prometheus_without_pod_monitor_labels_is_refused(path: Path) -> None:
    values = byo_values(path)
    if not queue_scaled(load_stack_file(path)):
        parse_stack_config(values)  # nothing reads the metrics: no labels needed
        return
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(values)
    problems = dict(caught.value.problems)
    assert "monitoring.pod_monitor_labels" in problems, problems
    assert "release" in problems["monitoring.pod_monitor_labels"]


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_an_existing_prometheus_gets_labelled_pod_monitors_and_may_scrape(path: Path) -> None:
    plan = plan_of(path, byo=True)
    assert not [r for r in recorded(plan, "Release") if "kube-prometheus-stack" in str(r.get("chart"))]
    monitors = [m for m in plan.manifests() if m["kind"] == "PodMonitor"]
    # The engine's PodMonitor where the autoscaler reads the queue; the gateway's where alerts or dashboards
    # read its series (stacks/operations.py).
    assert bool(monitors) == (queue_scaled(plan.config) or reads_gateway_series(plan.config))
    for m in monitors:
        assert m["metadata"]["labels"].items() >= BYO_LABELS.items(), m["metadata"]
    # The engine's NetworkPolicy admits scrapes from the Prometheus's namespace, not a fixed `monitoring`.
    policies = [m for m in plan.manifests() if m["kind"] == "NetworkPolicy"]
    scrape_namespaces = {
        peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        for p in policies
        for rule in p["spec"].get("ingress", [])
        for peer in rule.get("from", [])
    }
    assert "monitoring" not in scrape_namespaces
    if monitors:
        assert "observability" in scrape_namespaces
    for t in (
        t
        for m in plan.manifests()
        if m["kind"] == "ScaledObject"
        for t in m["spec"]["triggers"]
        if t["type"] == "prometheus"
    ):
        assert t["metadata"]["serverAddress"] == BYO_URL


@pytest.mark.parametrize(
    ("labels", "bad"),
    [({"release": "has space"}, "has space"), ({"-bad": "x"}, "-bad"), ({"a": "x" * 64}, "a=")],
)
def test_bad_labels_are_named(labels: dict[str, str], bad: str) -> None:
    values = byo_values(ROOT / "stacks" / "Pulumi.onprem.yaml", pod_monitor_labels=labels)
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(values)
    problems = dict(caught.value.problems)
    assert bad in problems["monitoring.pod_monitor_labels"], problems
