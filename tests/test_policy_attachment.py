"""The plan-level rule that one Envoy Gateway policy of a kind attaches per target (Envoy Gateway v1.8.3 marks a
second Conflicted and never applies it): the defect a review found in the guardrail's first plan."""

from __future__ import annotations

from typing import Any

from inferstack.validation.policy_attachment import policy_attachment_outcome


def policy(kind: str, name: str, target: str, section: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": target}
    if section:
        ref["sectionName"] = section
    return {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "inference"},
        "spec": {"targetRefs": [ref]},
    }


def test_two_extension_policies_on_one_route_are_a_finding() -> None:
    outcome = policy_attachment_outcome(
        [
            policy("EnvoyExtensionPolicy", "llm-models-variant-header", "llm-models"),
            policy("EnvoyExtensionPolicy", "llm-guardrail", "llm-models"),
        ]
    )
    assert [f.resource for f in outcome.findings] == ["EnvoyExtensionPolicy/inference/llm-guardrail"]
    assert "Conflicted" in outcome.findings[0].message and outcome.validated == 2


def test_policies_of_other_kinds_other_targets_or_sections_coexist() -> None:
    outcome = policy_attachment_outcome(
        [
            policy("EnvoyExtensionPolicy", "a", "llm-models"),
            policy("SecurityPolicy", "b", "llm-models"),
            policy("BackendTrafficPolicy", "c", "llm-models"),
            policy("EnvoyExtensionPolicy", "d", "llm-api"),
            policy("EnvoyExtensionPolicy", "e", "llm-models", section="rule-0"),
        ]
    )
    assert outcome.findings == []


def test_a_policy_that_selects_its_targets_by_label_is_noted_not_judged() -> None:
    selecting = policy("EnvoyExtensionPolicy", "by-label", "llm-models")
    selecting["spec"] = {"targetSelectors": [{"kind": "HTTPRoute", "matchLabels": {"app": "llm"}}]}
    outcome = policy_attachment_outcome([selecting, policy("EnvoyExtensionPolicy", "a", "llm-models")])
    assert outcome.findings == []
    assert [n.split(":")[0] for n in outcome.notes] == ["EnvoyExtensionPolicy/inference/by-label"]
