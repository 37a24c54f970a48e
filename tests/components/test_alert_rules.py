"""AlertRules under the recording mock: one PrometheusRule in the given namespace, carrying the labels the
Prometheus's ruleSelector matches, that its CRD (with CEL) accepts."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from components.alert_rules import AlertRules, AlertRulesArgs, alert_rule_groups
from inferstack.planning.recording import Recording, run_program
from tests.components.schemas import crd_errors, manifest_of, needs_crds
from tests.test_alert_rules import make_args

T_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"


def render(name: str = "llm", **overrides: Any) -> Recording:
    return run_program(lambda: AlertRules(name, make_args(**overrides)))


@functools.cache
def recorded() -> Recording:
    return render()


def the_rule(rec: Recording) -> dict[str, Any]:
    (rule,) = rec.of_type(T_RULE)
    return manifest_of(rule)


def test_one_prometheus_rule_in_the_namespace_with_the_selector_labels() -> None:
    rule = the_rule(recorded())
    assert rule["metadata"]["namespace"] == "monitoring"
    assert rule["metadata"]["name"] == "llm-alerts"
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["spec"]["groups"] == alert_rule_groups(make_args())


def test_child_names_follow_the_component_name() -> None:
    rule = the_rule(render("other"))
    assert rule["metadata"]["name"] == "other-alerts"


def test_bad_args_fail_before_any_resource() -> None:
    with pytest.raises(ValueError, match="namespace"):
        AlertRules("llm", AlertRulesArgs(namespace="Bad", variants=make_args().variants))


@needs_crds
def test_prometheus_rule_validates_against_the_crd() -> None:
    assert crd_errors(the_rule(recorded())) == []
