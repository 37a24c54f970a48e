"""The policy pack's rules (policy/rules.py), run offline over a plan's recorded resources.

`pulumi preview --policy-pack policy` runs the same functions against the engine's view of a stack; here
they see each custom resource's recorded inputs (Kubernetes objects as applied), and a finding is mandatory
or advisory by the stack's tier, as policy/prod.json and policy/dev.json set it for the pack.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from inferstack.planning.plan import Plan
from inferstack.planning.recording import RecordedResource

RULES_PATH = Path(__file__).resolve().parents[2] / "policy" / "rules.py"
_MODULE = "inferstack_policy_rules"


@cache
def load_rules() -> ModuleType:
    """policy/rules.py as a module. Loaded by path: policy/ is the pack's folder, not an installed package."""
    if not RULES_PATH.is_file():
        raise FileNotFoundError(f"{RULES_PATH}: the policy pack's rules are missing from this checkout")
    spec = importlib.util.spec_from_file_location(_MODULE, RULES_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class PolicyFinding:
    policy: str
    resource: str  # "Deployment/inferstack/llm", "aws:eks/cluster:Cluster eks-cluster", or "(stack)"
    message: str
    mandatory: bool


def _resource_label(resource: RecordedResource) -> str:
    if resource.is_kubernetes_object:
        metadata = resource.inputs.get("metadata") or {}
        namespace, name = metadata.get("namespace"), metadata.get("name") or resource.name
        return f"{resource.kind}/{namespace}/{name}" if namespace else f"{resource.kind}/{name}"
    return f"{resource.type} {resource.name}"


def policy_inputs(plan: Plan) -> list[RecordedResource]:
    """What the policies see: custom resources, in URN order so findings come out the same every run."""
    return sorted((r for r in plan.recording.resources if r.custom), key=lambda r: r.urn)


def check_policies(plan: Plan) -> list[PolicyFinding]:
    """Every policy over the plan's resources; `mandatory` by the stack's tier."""
    rules = load_rules()
    resources = policy_inputs(plan)
    pairs: list[tuple[str, dict[str, Any]]] = [(r.type, r.inputs) for r in resources]
    tier = str(plan.config.tier.value)
    findings = []
    for policy in rules.POLICIES:
        for index, message in policy.run(pairs):
            label = "(stack)" if index is None else _resource_label(resources[index])
            findings.append(PolicyFinding(policy.name, label, message, policy.mandatory(tier)))
    return findings


def finding_text(finding: PolicyFinding) -> str:
    """The message without the resource name when the message starts with it (the report prints it first)."""
    if finding.message.startswith(finding.resource):
        return finding.message[len(finding.resource) :].lstrip(": ") or finding.message
    return finding.message


def render_policies(findings: list[PolicyFinding], tier: str) -> str:
    """The "Policies:" section of `inferstack check`: every policy with its level for this tier and its result.

    Mandatory findings are also report findings (check "policy") and fail the check; advisory ones are
    listed here only.
    """
    rules = load_rules()
    lines = [f"Policies ({tier} tier; policy/{tier}.json sets the same levels for `pulumi preview`):"]
    for policy in rules.POLICIES:
        mine = [f for f in findings if f.policy == policy.name]
        level = "mandatory" if policy.mandatory(tier) else "advisory"
        verdict = "ok" if not mine else f"{len(mine)} finding{'s' if len(mine) != 1 else ''}"
        lines.append(f"  {policy.name} ({level}): {verdict}")
        if level == "advisory":
            lines.extend(f"    {f.resource}: {finding_text(f)}" for f in mine)
    return "\n".join(lines) + "\n"
