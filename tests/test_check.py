"""`inferstack check` over the real stacks: zero schema errors, zero unskipped checkov failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferstack.cli import EXIT_FINDINGS, EXIT_OK, main
from inferstack.planning.plan import Plan, plan_stack
from inferstack.validation.check import DEV_TIER_CHECKOV_SKIPS, check_plan, checkov_skips_for
from inferstack.validation.engine import find_checkov
from stacks.config import Tier, load_stack_file
from tests.upstream_data import data_dir, missing_reason

ROOT = Path(__file__).resolve().parents[1]
STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
)
CRD_DIR = data_dir("crds")
CHART_DIR = data_dir("charts")

_MISSING = [reason for reason in (missing_reason("crds"), missing_reason("charts")) if reason]
needs_data = pytest.mark.skipif(bool(_MISSING), reason="; ".join(_MISSING))
needs_checkov = pytest.mark.skipif(
    find_checkov() is None, reason="checkov not installed: `make tools` puts it in .tools/checkov"
)


def plan_of(stack: str) -> Plan:
    return plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)


@needs_data
@needs_checkov
@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_check(
    stack: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    code = main(
        ["check", stack, "--crd-dir", str(CRD_DIR), "--chart-dir", str(CHART_DIR), "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    assert "custom resources" in out and "scanned by checkov" in out


def _deployment(plan: Plan) -> dict[str, Any]:
    return next(
        r for r in plan.recording.resources if r.type == "kubernetes:apps/v1:Deployment"
    ).redacted_inputs


@needs_data
def test_schema_errors_are_findings_naming_the_object_and_field() -> None:
    plan = plan_of("onprem")
    _deployment(plan)["spec"]["replicas"] = "two"
    scaled = next(r for r in plan.recording.resources if r.type.endswith(":ScaledObject"))
    scaled.redacted_inputs["spec"]["maxReplicaCount"] = "many"
    report = check_plan(plan, crd_dir=CRD_DIR, chart_dir=CHART_DIR, run_checkov=False)
    assert not report.ok
    rendered = report.render()
    assert "Deployment" in rendered and "replicas" in rendered
    assert "ScaledObject" in rendered and "maxReplicaCount" in rendered
    # The plan-level rules that read those values step aside with a note instead of a traceback.
    assert any(
        n.startswith("rollout-fits-capacity was not applied: the plan has a value the findings")
        for n in report.notes
    )


@needs_data
def test_unknown_helm_value_is_a_finding() -> None:
    plan = plan_of("onprem")
    keda = next(
        r
        for r in plan.recording.resources
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs["chart"] == "keda"
    )
    keda.inputs["values"]["podSecurityContxt"] = {}
    report = check_plan(plan, crd_dir=CRD_DIR, chart_dir=CHART_DIR, run_checkov=False)
    assert any(f.check == "helm-values" and "podSecurityContxt" in f.message for f in report.findings)


@needs_checkov
def test_an_insecure_pod_fails_checkov_with_the_rule() -> None:
    plan = plan_of("onprem")
    server = _deployment(plan)["spec"]["template"]["spec"]["containers"][0]
    server["securityContext"] = {"privileged": True, "allowPrivilegeEscalation": True}
    report = check_plan(plan, crd_dir=None, chart_dir=None)
    rules = {f.rule for f in report.findings if f.check == "checkov"}
    assert "CKV_K8S_16" in rules  # privileged container


def test_dev_tier_skips_are_scoped_and_explained() -> None:
    assert checkov_skips_for(Tier.PROD).keys().isdisjoint(DEV_TIER_CHECKOV_SKIPS)
    assert all(reason.strip() for reason in checkov_skips_for(Tier.DEV).values())


def test_without_data_dirs_check_says_what_it_did_not_validate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("INFERSTACK_CRD_DIR", raising=False)
    monkeypatch.delenv("INFERSTACK_CHART_DIR", raising=False)
    assert main(["check", "local", "--skip-checkov", "--out", str(tmp_path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "custom resources were not validated" in out
    assert "Helm values were not checked" in out


def test_missing_checkov_is_a_finding_unless_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)
    code = main(["check", "local", "--checkov", str(tmp_path / "no-checkov"), "--out", str(tmp_path)])
    assert code == EXIT_FINDINGS
    assert "checkov was not found" in capsys.readouterr().out


@pytest.mark.parametrize(("stack", "placeholder"), [("onprem", True), ("local", False)])
def test_an_all_zero_image_digest_is_listed_as_not_validated(stack: str, placeholder: bool) -> None:
    """The digest rules pass on an all-zero digest's form; check must still say no registry serves it."""
    plan = plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)
    report = check_plan(plan, crd_dir=None, chart_dir=None, run_checkov=False, require_checkov=False)
    notes = [n for n in report.notes if "all-zero placeholder" in n]
    assert bool(notes) is placeholder, report.notes
    assert all("@sha256:" + "0" * 64 in n and "serving.image" in n for n in notes)
