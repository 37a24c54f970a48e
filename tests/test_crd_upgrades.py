"""CRDs follow chart upgrades: a chart that keeps CRDs in crds/ gets them from a CRD chart's release.

Helm never upgrades files in a chart's crds/ folder (Helm docs, "Custom Resource Definitions"), so every
pinned chart says where its CRDs live and how they follow a pin bump (components/_common.py CRD_UPGRADES),
and in every stack a release of such a chart runs with skip_crds after its CRD chart's release.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

import pulumi
import pytest

from components import _common
from components._common import (
    CRD_UPGRADES,
    KUBE_PROMETHEUS_STACK,
    PROMETHEUS_OPERATOR_VERSION,
    CrdLocation,
    HelmChart,
)
from inferstack.planning.plan import Plan, plan_stack
from inferstack.planning.recording import RecordedResource
from inferstack.validation.dependencies import HELM_CHART, HELM_RELEASE
from stacks.config import load_stack_file
from tests.upstream_data import data_dir, missing_reason

ROOT = Path(__file__).resolve().parents[1]
STACK_FILES = sorted((ROOT / "stacks").glob("Pulumi.*.yaml")) + sorted(
    (ROOT / "docs" / "examples").glob("Pulumi.*.yaml")
)
STACKS = [p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACK_FILES]
CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
CRD_CHARTS = {u.crd_chart.chart: u.crd_chart for u in CRD_UPGRADES.values() if u.crd_chart is not None}


@cache
def plan_of(stack: str) -> Plan:
    path = next(p for p in STACK_FILES if p.name == f"Pulumi.{stack}.yaml")
    return plan_stack(load_stack_file(path), stack)


def crd_upgrade_problems(resources: list[RecordedResource]) -> list[str]:
    """Releases of a crds/-folder chart that would leave stale CRDs behind on an upgrade."""
    releases = [r for r in resources if r.type == HELM_RELEASE]
    # CRD charts are applied by Pulumi object by object (helm.v4.Chart), never as a Helm release: the
    # Gateway API + Envoy Gateway CRDs overflow a release's 1 MiB Secret (envoyproxy/gateway#6105).
    crd_charts = [r for r in resources if r.type == HELM_CHART]
    by_urn = {r.urn: r for r in crd_charts}
    problems = [
        f"{r.inputs.get('name')}: a CRD chart installed as a Helm release (its release Secret may pass 1 MiB)"
        for r in releases
        if r.inputs.get("chart") in CRD_CHARTS
    ]
    for r in releases:
        upgrade = CRD_UPGRADES.get(str(r.inputs.get("chart")))
        if upgrade is None or upgrade.crd_chart is None:
            continue
        name = r.inputs.get("name")
        if not r.inputs.get("skipCrds"):
            problems.append(
                f"{name}: installs its crds/ folder (no skip_crds), which helm upgrade never updates"
            )
        crd_releases = [
            by_urn[u]
            for u in r.dependencies
            if u in by_urn and by_urn[u].inputs.get("chart") == upgrade.crd_chart.chart
        ]
        if not crd_releases:
            problems.append(f"{name}: does not depend on the CRD chart {upgrade.crd_chart.chart}")
        for crd in crd_releases:
            if crd.inputs.get("version") != upgrade.crd_chart.version:
                problems.append(f"{name}: {crd.name} is not at {upgrade.crd_chart.version}")
    return problems


def test_every_pinned_chart_says_how_its_crds_follow_an_upgrade() -> None:
    pinned = [v for v in vars(_common).values() if isinstance(v, HelmChart) and v.chart not in CRD_CHARTS]
    assert {c.chart for c in pinned} == set(CRD_UPGRADES)
    for chart, upgrade in CRD_UPGRADES.items():
        assert upgrade.reason, chart
        if upgrade.location is CrdLocation.CRDS_FOLDER and upgrade.crd_chart is None:
            # Without a CRD chart the reason must name the chart's own mechanism or the manual step.
            assert "hook" in upgrade.reason or "by hand" in upgrade.reason, chart


def test_crd_charts_match_the_version_of_their_main_chart() -> None:
    for chart, upgrade in CRD_UPGRADES.items():
        if upgrade.crd_chart is None or upgrade.crd_chart is _common.PROMETHEUS_OPERATOR_CRDS:
            continue
        main = next(v for v in vars(_common).values() if isinstance(v, HelmChart) and v.chart == chart)
        assert upgrade.crd_chart.version == main.version, chart


def test_prometheus_operator_crds_carry_the_operator_kube_prometheus_stack_runs() -> None:
    if reason := missing_reason("charts"):
        pytest.skip(reason)
    chart_dir = data_dir("charts")
    text = (chart_dir / KUBE_PROMETHEUS_STACK.values_dir / "Chart.yaml").read_text()
    assert f"version: {KUBE_PROMETHEUS_STACK.version}" in text
    assert f"appVersion: {PROMETHEUS_OPERATOR_VERSION}" in text


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_installs_crds_from_an_upgrading_source(stack: str) -> None:
    resources = plan_of(stack).recording.resources
    assert crd_upgrade_problems(resources) == []
    # Every stack installs Envoy Gateway, so the rule is never vacuous.
    assert any(str(r.inputs.get("chart")).endswith("/gateway-crds-helm") for r in resources)


@pytest.mark.parametrize("stack", STACKS)
def test_a_main_release_without_skip_crds_or_crd_release_fails(stack: str) -> None:
    resources = plan_of(stack).recording.resources
    mains = [r for r in resources if r.type == HELM_RELEASE and r.inputs.get("skipCrds")]
    assert mains
    for main in mains:
        no_skip = [
            dataclasses.replace(r, inputs={**r.inputs, "skipCrds": None}) if r.urn == main.urn else r
            for r in resources
        ]
        assert any("no skip_crds" in p for p in crd_upgrade_problems(no_skip))
        no_dep = [dataclasses.replace(r, dependencies=[]) if r.urn == main.urn else r for r in resources]
        assert any("does not depend" in p for p in crd_upgrade_problems(no_dep))


@pytest.mark.parametrize("stack", STACKS)
def test_a_crd_chart_installed_as_a_helm_release_fails(stack: str) -> None:
    resources = plan_of(stack).recording.resources
    as_release = [
        dataclasses.replace(r, type=HELM_RELEASE, inputs={**r.inputs, "name": r.name})
        if r.type == HELM_CHART
        else r
        for r in resources
    ]
    assert any("installed as a Helm release" in p for p in crd_upgrade_problems(as_release))


def _provider_inputs(resources: list[RecordedResource], reference: str) -> dict[str, object]:
    urn = reference.rsplit("::", 1)[0]
    (provider,) = [r for r in resources if r.urn == urn]
    return dict(provider.inputs)


@pytest.mark.parametrize("stack", STACKS)
def test_crd_charts_adopt_existing_crds_and_nothing_else_does(stack: str) -> None:
    # pulumi-kubernetes creates a new object with a plain create (AlreadyExists on a cluster that holds
    # the CRD) unless its provider upserts; only the CRDs' provider does, so no other object of the
    # stack silently takes over a namesake. CRDs come from the CRD charts and, for a CRD no chart of ours
    # ships (the InferencePool CRD, components/inference_pool.py inference_pool_crd), from a
    # CustomResourceDefinition resource applied by Pulumi: it is adopted and kept like the charts' CRDs
    # (retained on destroy, waiting until Established: components/_common.py keep_crds).
    resources = plan_of(stack).recording.resources
    charts = [r for r in resources if r.type == HELM_CHART]
    crds = [r for r in resources if r.type == CRD]
    assert charts
    for chart in [*charts, *crds]:
        inputs = _provider_inputs(resources, chart.provider)
        assert inputs.get("upsertExistingObjects") == "true", chart.name
        assert inputs.get("enablePatchForce") == "true", chart.name
    for crd in crds:
        assert crd.retain_on_delete, crd.name
        assert crd.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Established"
    others = {
        r.provider
        for r in resources
        if r.provider and r.type not in (HELM_CHART, CRD) and r.type.startswith("kubernetes:")
    }
    assert all(_provider_inputs(resources, p).get("upsertExistingObjects") != "true" for p in others)


def test_crds_from_crd_charts_survive_destroy_and_wait_until_established() -> None:
    crd = pulumi.ResourceTransformArgs(
        custom=True,
        type_="kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
        name="gateways.gateway.networking.k8s.io",
        props={"metadata": {"name": "gateways.gateway.networking.k8s.io", "annotations": {"a": "b"}}},
        opts=pulumi.ResourceOptions(),
    )
    result = _common.keep_crds(crd)
    assert result is not None and result.opts.retain_on_delete is True
    assert result.props["metadata"]["annotations"] == {
        "a": "b",
        "pulumi.com/waitFor": "condition=Established",
    }
    policy = pulumi.ResourceTransformArgs(
        custom=True,
        type_="kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy",
        name="safe-upgrades.gateway.networking.k8s.io",
        props={},
        opts=pulumi.ResourceOptions(),
    )
    assert _common.keep_crds(policy) is None


def test_every_crd_chart_carries_the_keep_crds_transform(monkeypatch: pytest.MonkeyPatch) -> None:
    # The recording mock sees the remote chart but not its children, so check what crd_objects hands it.
    seen: list[pulumi.ResourceOptions] = []
    monkeypatch.setattr(_common.k8s.helm.v4, "Chart", lambda name, **kwargs: seen.append(kwargs["opts"]))
    for upgrade in CRD_UPGRADES.values():
        if upgrade.crd_chart is not None:
            _common.crd_objects(
                "x-crds", upgrade.crd_chart, namespace="ns", values={}, opts=pulumi.ResourceOptions()
            )
    assert seen and all(_common.keep_crds in (opts.transforms or []) for opts in seen)
