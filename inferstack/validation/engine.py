"""The validation engine behind `inferstack check`: every planned manifest and Helm release, offline.

    report = validate_all(manifests, kubernetes_version="1.34", crd_dir=..., chart_dir=..., helm_releases=[...])
    print(report.render())
    sys.exit(0 if report.ok else 1)

Four checks, each in its own module and usable alone:

- kubernetes-validate (validate_core): built-in kinds against the strict OpenAPI schemas of the stack's
  Kubernetes version;
- crd-schema (validate_crds): custom resources against their CRD's openAPIV3Schema, from a folder;
- checkov (validate_checkov): checkov's Kubernetes checks, minus CHECKOV_SKIPS;
- helm-values (validate_helm): our values against each chart's values.schema.json and default values.

A fifth, "policy", is the policy pack's; its caller adds its findings with ValidationReport.add.
What could not be validated (no CRD folder, checkov missing, a kind with no CRD) is a note, never
silence, and does not fail the report: a caller that requires checkov asks find_checkov() first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferstack.validation.checkov import CHECKOV_SKIPS, find_checkov, run_checkov
from inferstack.validation.common import CheckOutcome, Finding, resource_id
from inferstack.validation.core import schema_version, validate_core
from inferstack.validation.crds import default_crd_dir, split_cel_summary, validate_custom_resources
from inferstack.validation.helm import HelmValues, default_chart_dir, validate_helm_values

__all__ = [
    "CHECKOV_SKIPS",
    "CheckOutcome",
    "Finding",
    "HelmValues",
    "ValidationReport",
    "default_chart_dir",
    "default_crd_dir",
    "find_checkov",
    "resource_id",
    "run_checkov",
    "schema_version",
    "validate_all",
    "validate_core",
    "validate_custom_resources",
    "validate_helm_values",
]

# Render order, and what each check counts.
#: The validators proper, whose count is shown even when it is zero; the other CHECKS are plan-level rules.
VALIDATORS = frozenset({"kubernetes-validate", "crd-schema", "helm-values", "checkov", "policy"})

CHECKS = {
    "kubernetes-validate": "built-in objects",
    "crd-schema": "custom resources",
    "helm-values": "Helm releases",
    "checkov": "resources scanned by checkov",
    "policy": "objects checked by the policy pack",
    "scope": "objects whose namespace was checked against their kind's scope",
    "invoke-provider": "data-source calls checked for the stack's provider",
    "gcp-apis": "GCP resources and data sources checked for their enabled API",
    "dependencies": "objects and releases checked to wait for their namespace and CRDs",
    "scale-to-zero-after-cold-start": "scale-to-zero autoscalers checked to outlive a cold start",
    "rollout-fits-capacity": "GPU Deployments whose rollout was checked against the pool's capacity",
    "rollout-deadline-covers-cold-start": "GPU Deployments whose rollout deadlines were checked against a cold start",
    "metrics-api": "CPU/memory scalers checked for a metrics.k8s.io source",
    "policy-attachment": "Envoy Gateway policies checked to be the only one of their kind on their target",
}


@dataclass
class ValidationReport:
    """Everything `inferstack check` found, what it could not check, and how much it checked."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not validated, and why
    counts: dict[str, int] = field(default_factory=dict)  # objects validated per check (0: none, see notes)

    @property
    def ok(self) -> bool:
        """No findings. Notes (what was not validated) do not fail a report; the caller decides about them."""
        return not self.findings

    def add(self, check: str, outcome: CheckOutcome) -> None:
        """Record one check's outcome (the policy pack's caller uses this for check "policy")."""
        self.findings.extend(outcome.findings)
        self.notes.extend(outcome.notes)
        self.counts[check] = self.counts.get(check, 0) + outcome.validated

    def render(self) -> str:
        """Readable text for a terminal: findings grouped by check, then notes, then a summary line."""
        lines: list[str] = []
        order = [*CHECKS, *sorted({f.check for f in self.findings} - set(CHECKS))]
        for check in order:
            found = [f for f in self.findings if f.check == check]
            if not found:
                continue
            lines.append(f"{check}: {len(found)} problem{'s' if len(found) != 1 else ''}")
            for finding in found:
                rule = f" [{finding.rule}]" if finding.rule else ""
                lines.append(f"  {finding.resource}: {finding.message}{rule}")
            lines.append("")
        # The per-kind count of CEL rules evaluated is information, not a gap.
        info, gaps = split_cel_summary(self.notes)
        if gaps:
            lines.append("Not validated:")
            lines.extend(f"  - {note}" for note in gaps)
            lines.append("")
        if info:
            lines.append("Validated:")
            lines.extend(f"  - {note}" for note in info)
            lines.append("")
        # A validator's zero matters ("0 custom resources": no CRD folder). A plan-level rule's zero only
        # says it had nothing to look at in this plan (a GCP rule on an AWS stack): leave it out.
        checked = ", ".join(
            f"{self.counts[c]} {CHECKS.get(c, c)}"
            for c in CHECKS
            if c in self.counts and (self.counts[c] or c in VALIDATORS)
        )
        verdict = (
            "OK"
            if self.ok
            else f"FAILED: {len(self.findings)} problem{'s' if len(self.findings) != 1 else ''}"
        )
        lines.append(f"{verdict} ({'validated: ' + checked if checked else 'nothing validated'})")
        return "\n".join(lines)


def validate_all(
    manifests: list[dict[str, Any]],
    kubernetes_version: str,
    *,
    crd_dir: Path | None = None,
    chart_dir: Path | None = None,
    helm_releases: Sequence[HelmValues] = (),
    checkov: bool = True,
    checkov_path: str | None = None,
    checkov_skips: dict[str, str] | None = None,
) -> ValidationReport:
    """Run every check over one plan.

    `crd_dir` / `chart_dir` None means not given: the custom resources / Helm values are then noted as not
    validated (the CLI resolves --crd-dir and $INFERSTACK_CRD_DIR before calling; default_crd_dir()
    reads the environment). `checkov=False` leaves checkov out (with a note); `checkov_skips` defaults to
    CHECKOV_SKIPS.
    """
    report = ValidationReport()
    report.add("kubernetes-validate", validate_core(manifests, kubernetes_version))
    report.add("crd-schema", validate_custom_resources(manifests, crd_dir))
    if helm_releases:
        report.add("helm-values", validate_helm_values(list(helm_releases), chart_dir))
    if checkov:
        report.add("checkov", run_checkov(manifests, checkov_skips, checkov_path))
    else:
        report.notes.append("checkov was not run: turned off by the caller")
    return report
