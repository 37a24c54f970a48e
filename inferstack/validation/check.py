"""`inferstack check`: a plan's manifests and Helm values through every offline validator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from components import _common
from components._common import HelmChart
from inferstack.planning.plan import Plan, is_placeholder_digest, pod_images
from inferstack.validation.apis import CHECK as GCP_APIS_CHECK
from inferstack.validation.apis import gcp_api_outcome
from inferstack.validation.capacity import (
    COLD_START_CHECK,
    DEADLINE_CHECK,
    ROLLOUT_CHECK,
    cold_start_outcome,
    deadline_outcome,
    rollout_outcome,
)
from inferstack.validation.dependencies import CHECK as DEPENDENCIES_CHECK
from inferstack.validation.dependencies import dependency_outcome
from inferstack.validation.engine import (
    CHECKOV_SKIPS,
    CheckOutcome,
    Finding,
    HelmValues,
    ValidationReport,
    find_checkov,
    validate_all,
)
from inferstack.validation.invokes import CHECK as INVOKE_PROVIDER_CHECK
from inferstack.validation.invokes import invoke_provider_outcome
from inferstack.validation.metrics_api import CHECK as METRICS_API_CHECK
from inferstack.validation.metrics_api import metrics_api_outcome
from inferstack.validation.policies import PolicyFinding, check_policies, finding_text, policy_inputs
from inferstack.validation.policy_attachment import CHECK as POLICY_ATTACHMENT_CHECK
from inferstack.validation.policy_attachment import policy_attachment_outcome
from inferstack.validation.scopes import scope_outcome
from stacks.config import Tier

#: Chart reference (as given to Helm) -> its folder in the chart data directory.
PINNED_CHARTS: dict[str, HelmChart] = {c.chart: c for c in vars(_common).values() if isinstance(c, HelmChart)}

#: Skips that apply to dev-tier stacks only. Prod stacks keep these checks (and pin images by digest).
DEV_TIER_CHECKOV_SKIPS: dict[str, str] = {
    "CKV_K8S_43": "dev tier: images built locally and side-loaded into kind/k3d have no registry digest",
    "CKV_K8S_15": "dev tier: side-loaded images must not be pulled (imagePullPolicy IfNotPresent)",
}


def checkov_skips_for(tier: Tier) -> dict[str, str]:
    return {**CHECKOV_SKIPS, **(DEV_TIER_CHECKOV_SKIPS if tier is Tier.DEV else {})}


def check_plan(
    plan: Plan,
    *,
    crd_dir: Path | None,
    chart_dir: Path | None,
    checkov_path: str | None = None,
    run_checkov: bool = True,
    require_checkov: bool = True,
    policy_findings: list[PolicyFinding] | None = None,
) -> ValidationReport:
    """Validate one plan. With `require_checkov`, a missing checkov is a finding, not just a note.

    The policy pack's rules run too (or `policy_findings`, when the caller already ran them): mandatory
    findings for the stack's tier fail the check under "policy"; advisory ones are not report findings.
    """
    releases = []
    for release in plan.helm_releases():
        chart = PINNED_CHARTS.get(release.chart)
        values_dir = chart.values_dir if chart else release.chart.rsplit("/", 1)[-1]
        releases.append(HelmValues(release=release.release, values_dir=values_dir, values=release.values))
    manifests = plan.manifests()  # built once: each call orders and copies every object again
    report = validate_all(
        manifests,
        plan.config.cluster.kubernetes_version,
        crd_dir=crd_dir,
        chart_dir=chart_dir,
        helm_releases=releases,
        checkov=run_checkov,
        checkov_path=checkov_path,
        checkov_skips=checkov_skips_for(plan.config.tier),
    )
    skips = checkov_skips_for(plan.config.tier)
    if run_checkov and skips:
        report.notes += [f"checkov {check} skipped: {reason}" for check, reason in sorted(skips.items())]
    if run_checkov and require_checkov and find_checkov(checkov_path) is None:
        report.findings.append(
            Finding(
                check="checkov",
                resource="(all manifests)",
                message="checkov was not found: `make tools` installs it into .tools/checkov, or pass --checkov PATH "
                "(--skip-checkov to go without)",
            )
        )
    # A digest rule passes on an all-zero digest (right form), but the image cannot be pulled: say so.
    placeholders = sorted({i for m in manifests for i in pod_images(m) if is_placeholder_digest(i)})
    report.notes += [
        f"image {image}: its digest is the all-zero placeholder of the example stack files, so the digest "
        "checks pass on its form but no registry serves it; put the real digest in serving.image "
        "(docker buildx imagetools inspect IMAGE:TAG) before deploying"
        for image in placeholders
    ]
    # Plan-level rules a schema cannot state. Each reads values the schema validators above may already
    # have rejected (replicas: "two"); such a rule is skipped with a note instead of a traceback.
    invokes, resources = plan.recording.invokes, plan.recording.resources
    plan_rules: list[tuple[str, Callable[[], CheckOutcome]]] = [
        # namespace set exactly where the kind is namespaced
        ("scope", lambda: scope_outcome(manifests)),
        # every data source runs on the stack's provider, not the environment's default one
        (INVOKE_PROVIDER_CHECK, lambda: invoke_provider_outcome(invokes, resources)),
        # every GCP resource, feature and data source has its API enabled by the plan, and waits for it
        (GCP_APIS_CHECK, lambda: gcp_api_outcome(resources, invokes)),
        # each object waits for its namespace, its CRD and the CRDs its controller needs at start
        (DEPENDENCIES_CHECK, lambda: dependency_outcome(resources)),
        # a woken replica outlives its cold start; a rollout's surge pod has a GPU to land on
        (COLD_START_CHECK, lambda: cold_start_outcome(manifests, resources)),
        (ROLLOUT_CHECK, lambda: rollout_outcome(manifests, resources)),
        # neither Kubernetes nor `pulumi up` gives up on a rollout that is still doing its cold starts
        (DEADLINE_CHECK, lambda: deadline_outcome(manifests, resources)),
        # one Envoy Gateway policy of a kind per Gateway, listener, route or rule: a second is never applied
        (POLICY_ATTACHMENT_CHECK, lambda: policy_attachment_outcome(manifests)),
        # a CPU/memory scaler has something serving metrics.k8s.io
        (
            METRICS_API_CHECK,
            lambda: metrics_api_outcome(
                manifests, [r.chart for r in plan.helm_releases()], plan.config.metrics_api_provider
            ),
        ),
    ]
    for check, rule in plan_rules:
        report.add(check, _run_plan_rule(check, rule, has_findings=bool(report.findings)))
    if policy_findings is None:
        policy_findings = check_policies(plan)
    report.add(
        "policy",
        CheckOutcome(
            findings=[
                Finding(check="policy", resource=f.resource, message=finding_text(f), rule=f.policy)
                for f in policy_findings
                if f.mandatory
            ],
            notes=[],
            validated=len(policy_inputs(plan)),
        ),
    )
    return report


def _run_plan_rule(check: str, rule: Callable[[], CheckOutcome], *, has_findings: bool) -> CheckOutcome:
    """Run one plan-level rule; a value it cannot read becomes a note naming the rule, not a traceback."""
    try:
        return rule()
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        where = "a value the findings above reject" if has_findings else "a value it could not read"
        return CheckOutcome(
            findings=[], notes=[f"{check} was not applied: the plan has {where} ({error})"], validated=0
        )
