"""Every data-source call (invoke) runs on the stack's own provider, in every stack (issue 13, kind 3).

An invoke with no provider is answered by the default provider, configured from the environment
(AWS_REGION, GOOGLE_PROJECT), not from the stack file: see inferstack/validation/invokes.py. The recording
mock keeps the provider reference the SDK sent for each call, so these tests read what a real
`pulumi up` would send, not the program's source.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pytest
from pulumi.runtime.sync_await import _sync_await

from inferstack.planning.plan import Plan, plan_stack
from inferstack.planning.recording import run_program
from inferstack.validation.invokes import CHECK, invoke_provider_outcome
from stacks.config import load_stack_file

ROOT = Path(__file__).resolve().parents[1]
STACK_FILES = sorted(
    [*(ROOT / "stacks").glob("Pulumi.*.yaml"), *(ROOT / "docs" / "examples").glob("Pulumi.*.yaml")]
)


@cache
def plan_of(path: Path) -> Plan:
    return plan_stack(load_stack_file(path), path.name.removeprefix("Pulumi.").removesuffix(".yaml"))


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_invoke_runs_on_the_stacks_provider_of_its_package(path: Path) -> None:
    plan = plan_of(path)
    providers = {r.urn: r for r in plan.recording.resources if r.type.startswith("pulumi:providers:")}
    cloud = plan.config.platform.value
    if cloud in {"aws", "gcp"}:
        # Cloud stacks look up zones, accounts, projects: an empty list would make this test pass vacuously.
        assert plan.recording.invokes, f"{path.name}: no data-source call was recorded"
    for call in plan.recording.invokes:
        assert call.provider, f"{path.name}: {call.token} runs on the default {call.package} provider"
        provider = providers.get(call.provider_urn or "")
        assert provider is not None, (
            f"{path.name}: {call.token} runs on {call.provider}, not a provider of the plan"
        )
        assert provider.type == f"pulumi:providers:{call.package}", (call.token, provider.type)
        # The one provider of the package is the one the stack configured from its stack file.
        if cloud == "aws":
            assert provider.inputs.get("region") == plan.config.aws.region  # type: ignore[union-attr]
        if cloud == "gcp":
            assert provider.inputs.get("project") == plan.config.gcp.project  # type: ignore[union-attr]
    assert invoke_provider_outcome(plan.recording.invokes, plan.recording.resources).findings == []


def test_route53_alias_zone_is_looked_up_in_the_stacks_region() -> None:
    """The instance the issue names: the NLB's canonical hosted zone depends on the region that asks."""
    plan = plan_of(ROOT / "stacks" / "Pulumi.prod-aws.yaml")
    [lookup] = [i for i in plan.recording.invokes if i.token == "aws:lb/getHostedZoneId:getHostedZoneId"]
    assert lookup.provider_urn == plan.recording.one("pulumi:providers:aws").urn


def _defective_program() -> None:
    stack_provider = aws.Provider("aws", region="eu-west-1")
    aws.get_region_output(opts=pulumi.InvokeOutputOptions(provider=stack_provider))
    aws.lb.get_hosted_zone_id_output(load_balancer_type="network")  # the defect: the default provider


def test_the_check_names_an_invoke_on_the_default_provider() -> None:
    recording = run_program(_defective_program, stack="defective")
    outcome = invoke_provider_outcome(recording.invokes, recording.resources)
    assert outcome.validated == 2
    assert [(f.check, f.resource) for f in outcome.findings] == [
        (CHECK, "invoke aws:lb/getHostedZoneId:getHostedZoneId")
    ]
    assert "default aws provider" in outcome.findings[0].message
    assert "InvokeOutputOptions(provider=" in outcome.findings[0].message


def test_default_provider_calls_do_not_get_the_stacks_region_from_the_mock() -> None:
    """The mock answers a default-provider call without the stack's settings, as a real engine would."""
    answers: dict[str, pulumi.Output[str]] = {}

    def program() -> None:
        provider = aws.Provider("aws", region="eu-west-1")
        answers["stack"] = aws.get_region_output(opts=pulumi.InvokeOutputOptions(provider=provider)).region
        answers["default"] = aws.get_region_output().region

    recording = run_program(program, stack="regions")
    assert {i.provider == "" for i in recording.invokes} == {True, False}
    assert _sync_await(answers["stack"].future()) == "eu-west-1"
    assert _sync_await(answers["default"].future()) != "eu-west-1"
