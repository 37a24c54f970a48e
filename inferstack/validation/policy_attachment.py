"""The plan-level rule `policy-attachment`: one Envoy Gateway policy of a kind per target.

Envoy Gateway v1.8.3 attaches at most one BackendTrafficPolicy, ClientTrafficPolicy, EnvoyExtensionPolicy or
SecurityPolicy to a Gateway, a listener (sectionName), a route or a route rule (sectionName). The policy
processed first wins; policies are sorted by creation time, then namespace/name
(internal/gatewayapi/resource/resource.go), and each later one gets `Accepted=False`, "Unable to target ...,
another <Kind> has already attached to it" (internal/gatewayapi/backendtrafficpolicy.go:727-799,
clienttrafficpolicy.go:124/240, envoyextensionpolicy.go:424-494, securitypolicy.go:752-825), and is never
translated into Envoy's configuration. Nothing fails: a filter (a guardrail, an API-key check, a rate limit)
silently does not run, or runs in place of another. A schema cannot see that two objects name one target; the
plan can. Two policies of one kind for one target must be written as one policy holding both settings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from inferstack.validation.common import CheckOutcome, Finding, resource_id

CHECK = "policy-attachment"
#: The policy kinds Envoy Gateway attaches one per target (group gateway.envoyproxy.io).
ONE_PER_TARGET = frozenset(
    {"BackendTrafficPolicy", "ClientTrafficPolicy", "EnvoyExtensionPolicy", "SecurityPolicy"}
)


def policy_attachment_outcome(manifests: Iterable[dict[str, Any]]) -> CheckOutcome:
    """One finding per policy that targets what an earlier policy of its kind already targets (same
    namespace, target kind, name and sectionName)."""
    claimed: dict[tuple[str, str, str, str, str], list[str]] = defaultdict(list)
    checked = 0
    selected: list[str] = []
    for obj in manifests:
        kind = obj.get("kind")
        if kind not in ONE_PER_TARGET or not str(obj.get("apiVersion", "")).startswith(
            "gateway.envoyproxy.io/"
        ):
            continue
        checked += 1
        namespace = str((obj.get("metadata") or {}).get("namespace", ""))
        spec = obj.get("spec") or {}
        refs = list(spec.get("targetRefs") or []) + ([spec["targetRef"]] if spec.get("targetRef") else [])
        if spec.get("targetSelectors"):
            selected.append(resource_id(obj))
        for ref in refs:
            if not isinstance(ref, dict):
                continue
            key = (
                str(kind),
                namespace,
                str(ref.get("kind")),
                str(ref.get("name")),
                str(ref.get("sectionName", "")),
            )
            claimed[key].append(resource_id(obj))
    findings = []
    for (kind, namespace, target_kind, target, section), owners in sorted(claimed.items()):
        if len(owners) < 2:
            continue
        where = f"{target_kind} {namespace}/{target}" + (f" section {section}" if section else "")
        for owner in owners[1:]:
            findings.append(
                Finding(
                    check=CHECK,
                    resource=owner,
                    message=f"spec.targetRefs: {where} is also the target of {owners[0]}; Envoy Gateway attaches "
                    f"one {kind} per target and marks the other Conflicted, never applying it: put both "
                    "settings in one policy",
                )
            )
    # A selector picks routes by their labels at run time (internal/gatewayapi/helpers.go resolvePolicyTargets):
    # the plan does not know every route it will match, so those attachments are not checked.
    notes = [
        f"{owner}: spec.targetSelectors picks its targets by label on the cluster; its attachments were not "
        "checked for a second policy of its kind"
        for owner in selected
    ]
    return CheckOutcome(findings=findings, notes=notes, validated=checked)
