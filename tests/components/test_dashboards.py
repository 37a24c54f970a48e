"""Dashboards as code: every panel's PromQL parses (promql-parser, the Rust PromQL parser's Python binding)
and names only series in the metric catalogue; the ConfigMaps are labelled for Grafana's sidecar."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import dashboards as dash
from components.dashboards import (
    CLIENT_ID_LABEL,
    SIDECAR_LABEL,
    SIDECAR_LABEL_VALUE,
    Dashboards,
    DashboardsArgs,
    dashboard_expressions,
    dashboards,
    validate_dashboards_args,
)
from components.metrics import catalogue_problems, load_catalogue
from inferstack.planning.recording import Recording, run_program
from tests.promql_names import metric_names

T_CONFIGMAP = "kubernetes:core/v1:ConfigMap"
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\)$")


def promql_of(expr: str) -> str:
    """The expression as Prometheus would receive it: Grafana's macro replaced, label_values() unwrapped."""
    expr = expr.replace(dash.RATE, "5m")
    match = _LABEL_VALUES.match(expr)
    return match.group("selector") if match else expr


@functools.cache
def all_expressions() -> list[tuple[str, str]]:
    return [found for model in dashboards().values() for found in dashboard_expressions(model)]


# --- the catalogue ---------------------------------------------------------------------------------


def test_the_catalogue_is_well_formed_and_loads() -> None:
    catalogue = load_catalogue()
    assert "vllm:num_requests_waiting" in catalogue
    assert catalogue["vllm:time_to_first_token_seconds_bucket"].labels >= {"le", "model_name"}
    assert catalogue["DCGM_FI_DEV_XID_ERRORS"].source.repo == "NVIDIA/dcgm-exporter"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m: m.append(dict(m[0])), "repeated"),
        (lambda m: m.reverse(), "sorted by name"),
        (lambda m: m[0].update(type="summary"), ".type"),
        (lambda m: m[0].pop("source"), ".source"),
        (lambda m: m[0].update(labels=["z", "a"]), ".labels"),
    ],
)
def test_a_malformed_catalogue_is_refused_naming_the_entry(mutate: Any, expected: str) -> None:
    raw = yaml.safe_load(Path("components/metrics/exported.yaml").read_text())
    assert catalogue_problems(raw) == []
    mutate(raw["metrics"])
    assert any(expected in problem for problem in catalogue_problems(raw))


# --- the PromQL --------------------------------------------------------------------------------------


def test_every_dashboard_has_panels_with_queries() -> None:
    models = dashboards()
    assert set(models) == {"inferstack-models.json", "inferstack-clients.json", "inferstack-gpus.json"}
    for model in models.values():
        assert model["panels"] and all(panel["targets"] for panel in model["panels"])
    assert len(all_expressions()) >= 30


@pytest.mark.parametrize(("where", "expr"), all_expressions(), ids=[w for w, _ in all_expressions()])
def test_every_query_parses_and_names_only_catalogued_metrics(where: str, expr: str) -> None:
    names = metric_names(promql_of(expr))
    assert names, f"{where}: selects no metric"
    unknown = names - set(load_catalogue())
    assert not unknown, f"{where}: {sorted(unknown)} not in components/metrics/exported.yaml"


def test_an_unknown_metric_in_a_panel_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = dash.Panel("broken", "x", "short", (("rate(vllm:request_sucess_total[5m])", "x"),))
    monkeypatch.setattr(dash, "DASHBOARDS", (dash.DashboardSpec("broken", "b", "b", (), (broken,)),))
    ((_, expr),) = dashboard_expressions(dashboards()["broken.json"])
    assert metric_names(promql_of(expr)) - set(load_catalogue()) == {"vllm:request_sucess_total"}


def test_a_query_that_does_not_parse_is_caught() -> None:
    with pytest.raises(ValueError):
        metric_names("sum by (le (rate(vllm:num_requests_running[5m]))")


def test_every_label_a_query_filters_or_groups_on_exists_on_its_metric() -> None:
    """Matchers and by() labels are the exporter's own, a scrape target label, or the client-id label the
    AI Gateway setting adds; a misspelt label gives an empty panel without any error."""
    from components.metrics import SCRAPE_TARGET_LABELS

    catalogue = load_catalogue()
    allowed_extra = SCRAPE_TARGET_LABELS | {CLIENT_ID_LABEL, "deployment", "__name__"}
    for where, expr in all_expressions():
        text = promql_of(expr)
        known = set().union(*(catalogue[n].labels for n in metric_names(text))) | allowed_extra
        used = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!=|!~|=)\s*\"", text))
        for group in re.findall(r"\bby \(([^)]*)\)", text):
            used |= {label.strip() for label in group.split(",")}
        assert used <= known, f"{where}: labels {sorted(used - known)} not on its metrics"


def test_panels_query_through_the_datasource_variable() -> None:
    for model in dashboards().values():
        assert model["templating"]["list"][0]["type"] == "datasource"
        for panel in model["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}"
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


# --- the component -----------------------------------------------------------------------------------


def test_valid_args_have_no_problems() -> None:
    assert validate_dashboards_args(DashboardsArgs()) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"namespace": "Monitoring"}, "namespace"),
        ({"sidecar_label": ""}, "sidecar_label"),
        ({"sidecar_label": "bad label"}, "sidecar_label"),
        ({"sidecar_label_value": "not valid!"}, "sidecar_label_value"),
        ({"folder": " "}, "folder"),
    ],
)
def test_invalid_args_are_rejected_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    problems = validate_dashboards_args(DashboardsArgs(**overrides))
    assert any(p.startswith(f"{field}:") for p in problems), problems


def render(**overrides: Any) -> Recording:
    return run_program(lambda: Dashboards("obs", DashboardsArgs(**overrides)))


@functools.cache
def default_recording() -> Recording:
    return render()


def test_one_configmap_per_dashboard_labelled_for_the_sidecar() -> None:
    maps = default_recording().of_type(T_CONFIGMAP)
    assert len(maps) == len(dashboards())
    for cm in maps:
        meta = cm.inputs["metadata"]
        assert meta["namespace"] == "monitoring"
        assert meta["labels"][SIDECAR_LABEL] == SIDECAR_LABEL_VALUE
        ((key, text),) = cm.inputs["data"].items()
        model = json.loads(text)
        assert key == f"{model['uid']}.json"
        assert model == dashboards()[key]


def test_an_existing_grafanas_label_value_and_namespace_are_used() -> None:
    rec = render(namespace="grafana", sidecar_label="dash", sidecar_label_value="yes", folder="LLM")
    for cm in rec.of_type(T_CONFIGMAP):
        meta = cm.inputs["metadata"]
        assert meta["namespace"] == "grafana"
        assert meta["labels"]["dash"] == "yes" and SIDECAR_LABEL not in meta["labels"]
        assert meta["annotations"] == {"grafana_folder": "LLM"}


def test_uids_and_json_are_stable() -> None:
    first, second = render(), render()
    texts = [
        sorted((c.name, json.dumps(c.inputs["data"])) for c in r.of_type(T_CONFIGMAP))
        for r in (first, second)
    ]
    assert texts[0] == texts[1]
    assert sorted(
        json.loads(next(iter(c.inputs["data"].values())))["uid"] for c in first.of_type(T_CONFIGMAP)
    ) == [
        "inferstack-clients",
        "inferstack-gpus",
        "inferstack-models",
    ]


def test_bad_args_fail_before_anything_is_made() -> None:
    with pytest.raises(ValueError, match="namespace"):
        render(namespace="Not_OK")
