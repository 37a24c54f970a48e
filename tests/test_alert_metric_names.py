"""Every series an alert or recording rule of a planned stack reads is one the pinned exporters export (the
metric catalogue, components/metrics/exported.yaml, with its sources) or one the rules record themselves: a
rule on a series nobody exports never fires, and reads as "all is well"."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

from components.metrics import load_catalogue
from inferstack.planning.plan import plan_stack
from stacks.config import load_stack_file
from tests.promql_names import metric_names

ROOT = Path(__file__).resolve().parents[1]
STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
)
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"


@cache
def rule_groups(stack: str) -> list[dict[str, Any]]:
    plan = plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)
    return [g for r in plan.recording.resources if r.type == RULE for g in r.inputs["spec"]["groups"]]


def unknown_series(groups: list[dict[str, Any]]) -> dict[str, set[str]]:
    recorded = {rule["record"] for g in groups for rule in g["rules"] if "record" in rule}
    known = set(load_catalogue()) | recorded
    unknown: dict[str, set[str]] = {}
    for group in groups:
        for rule in group["rules"]:
            missing = metric_names(rule["expr"]) - known
            if missing:
                unknown[rule.get("alert") or rule["record"]] = missing
    return unknown


@pytest.mark.parametrize("stack", STACKS)
def test_every_rule_reads_only_exported_or_recorded_series(stack: str) -> None:
    assert unknown_series(rule_groups(stack)) == {}


def test_a_rule_on_a_series_no_exporter_exports_is_caught() -> None:
    groups = [{"name": "g", "rules": [{"alert": "X", "expr": "vllm:gpu_cache_usage_perc > 0.9"}]}]
    assert unknown_series(groups) == {"X": {"vllm:gpu_cache_usage_perc"}}


def test_the_guarded_stack_has_rules_for_every_source() -> None:
    alerts = {r.get("alert") for g in rule_groups("guarded-onprem") for r in g["rules"]}
    assert {
        "InferStackGpuXidError",
        "InferStackCertificateExpiringSoon",
        "InferStackGateway5xxRate",
    } <= alerts
