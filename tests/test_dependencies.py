"""The `dependencies` rule: every object waits for its namespace, its CRD and the CRDs its controller needs."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

import pytest

from inferstack.planning.plan import Plan, plan_stack
from inferstack.planning.recording import RecordedResource
from inferstack.validation.dependencies import (
    CHECK,
    HELM_RELEASE,
    PREEXISTING_NAMESPACES,
    dependency_outcome,
    is_custom_group,
)
from stacks.config import load_stack_file

ROOT = Path(__file__).resolve().parents[1]
STACK_FILES = sorted((ROOT / "stacks").glob("Pulumi.*.yaml")) + sorted(
    (ROOT / "docs" / "examples").glob("Pulumi.*.yaml")
)
STACKS = [p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACK_FILES]


@cache
def plan_of(stack: str) -> Plan:
    path = next(p for p in STACK_FILES if p.name == f"Pulumi.{stack}.yaml")
    return plan_stack(load_stack_file(path), stack)


def _cut_loose(resources: list[RecordedResource], urn: str) -> list[RecordedResource]:
    """The defective form: `urn` as if created with no depends_on, no inputs from others and no parent."""
    return [
        dataclasses.replace(r, dependencies=[], parent=None, provider="") if r.urn == urn else r
        for r in resources
    ]


def _needs_something(r: RecordedResource) -> bool:
    md = r.inputs.get("metadata") or {}
    ns = md.get("namespace") if isinstance(md, dict) else None
    api_group = str(r.inputs.get("apiVersion", "")).rpartition("/")[0]
    return bool(ns and ns not in PREEXISTING_NAMESPACES) or is_custom_group(api_group)


def _where(r: RecordedResource) -> str:
    md = {**(r.outputs.get("metadata") or {}), **(r.inputs.get("metadata") or {})}
    return f"{md['namespace']}/{md['name']}" if md.get("namespace") else str(md["name"])


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_orders_namespaces_and_crds(stack: str) -> None:
    outcome = dependency_outcome(plan_of(stack).recording.resources)
    assert outcome.findings == []
    assert outcome.notes == []  # every custom resource's CRD comes from the stack itself
    assert outcome.validated > 0


@pytest.mark.parametrize("stack", STACKS)
def test_an_object_that_waits_for_nothing_is_a_finding(stack: str) -> None:
    resources = plan_of(stack).recording.resources
    targets = [
        r for r in resources if r.is_kubernetes_object and _needs_something(r) and r.kind != "Namespace"
    ]
    assert targets, "every stack has namespaced objects and custom resources"
    for target in targets:
        findings = dependency_outcome(_cut_loose(resources, target.urn)).findings
        # One finding per missing edge (its namespace, its CRD); objects that waited only through this one
        # (the gateway's Service through the Gateway) are named too.
        own = [f for f in findings if f.resource.endswith(f"{target.kind}/" + _where(target))]
        assert own and {f.check for f in findings} == {CHECK}, (target.name, findings)
        assert all("depends_on" in f.message for f in own)


@pytest.mark.parametrize("stack", STACKS)
def test_cert_manager_with_gateway_api_waits_for_the_gateway_api_crds(stack: str) -> None:
    resources = plan_of(stack).recording.resources
    cert_manager = [
        r for r in resources if r.type == HELM_RELEASE and r.inputs.get("chart") == "cert-manager"
    ]
    assert len(cert_manager) == 1
    findings = dependency_outcome(_cut_loose(resources, cert_manager[0].urn)).findings
    assert len(findings) == 1 and "Gateway API CRDs" in findings[0].message, findings
    assert "llm-envoy-gateway" in findings[0].message


def test_a_custom_resource_of_an_unknown_group_is_a_note_not_a_finding() -> None:
    resources = plan_of("local").recording.resources
    some = next(r for r in resources if r.kind == "Deployment")
    odd = dataclasses.replace(
        some,
        urn=some.urn + "-odd",
        type="kubernetes:example.com/v1:Widget",
        inputs={**some.inputs, "apiVersion": "example.com/v1", "kind": "Widget"},
    )
    outcome = dependency_outcome([*resources, odd])
    assert outcome.findings == []
    assert any("example.com" in n for n in outcome.notes)
