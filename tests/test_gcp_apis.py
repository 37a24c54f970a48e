"""Every GCP resource, feature and data source has its API enabled, and waits for it (issue 13, kind 4).

The table is components/clusters/gcp/apis.py; the rule is inferstack/validation/apis.py (`gcp-apis`).
"""

from __future__ import annotations

import dataclasses
import re
from functools import cache
from pathlib import Path

import pytest

from components.clusters.gcp.apis import (
    API_TABLE,
    CONTAINER_FILE_SYSTEM,
    RESOURCE_MANAGER,
    SERVICE_TYPE,
    GcpFeature,
    apis_for,
    features_of_resource,
)
from inferstack.planning.plan import Plan, plan_stack
from inferstack.planning.recording import RecordedResource
from inferstack.validation.apis import CHECK, gcp_api_outcome
from stacks.config import load_stack_file
from stacks.gcp import BASE_FEATURES

ROOT = Path(__file__).resolve().parents[1]
GCP_STACKS = ["dev-gcp", "prod-gcp"]


@cache
def planned(stack: str) -> Plan:
    return plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)


def enabled(plan: Plan) -> list[str]:
    return [str(s.inputs["service"]) for s in plan.recording.of_type(SERVICE_TYPE)]


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_the_stack_enables_exactly_what_its_resources_need(stack: str) -> None:
    plan = planned(stack)
    used = {
        f
        for r in plan.recording.resources
        if r.custom and r.type.startswith("gcp:")
        for f in features_of_resource(r.type, r.inputs)
    } | {f for i in plan.recording.invokes for f in features_of_resource(i.token, i.args)}
    assert sorted(enabled(plan)) == sorted(apis_for(used))
    assert gcp_api_outcome(plan.recording.resources, plan.recording.invokes).findings == []


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_the_instances_the_issue_names_are_enabled(stack: str) -> None:
    plan = planned(stack)
    [gpu_pool] = [
        p
        for p in plan.recording.of_type("gcp:container/nodePool:NodePool")
        if p.inputs["nodeConfig"].get("gcfsConfig")
    ]
    assert gpu_pool.inputs["nodeConfig"]["gcfsConfig"]["enabled"] is True
    assert {CONTAINER_FILE_SYSTEM, RESOURCE_MANAGER} <= set(enabled(plan))
    assert plan.recording.of_type("gcp:projects/iAMMember:IAMMember")  # what needs Resource Manager


def _without_service(plan: Plan, api: str) -> list[RecordedResource]:
    return [
        r for r in plan.recording.resources if not (r.type == SERVICE_TYPE and r.inputs["service"] == api)
    ]


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_the_check_fails_when_any_enabled_api_is_dropped(stack: str) -> None:
    plan = planned(stack)
    apis = enabled(plan)
    assert len(apis) >= 8
    for api in apis:
        outcome = gcp_api_outcome(_without_service(plan, api), plan.recording.invokes)
        assert outcome.findings, f"{stack}: dropping {api} went unnoticed"
        assert all(f.check == CHECK and api in f.message for f in outcome.findings)
        assert all("does not enable" in f.message for f in outcome.findings)


def test_dropping_image_streaming_names_the_gpu_pool_and_the_fix() -> None:
    plan = planned("dev-gcp")
    outcome = gcp_api_outcome(_without_service(plan, CONTAINER_FILE_SYSTEM), plan.recording.invokes)
    [finding] = outcome.findings
    assert finding.resource.startswith("gcp:container/nodePool:NodePool ")
    assert "GcpFeature.GKE_IMAGE_STREAMING" in finding.message and "Image streaming" in finding.message


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_the_check_fails_when_a_resource_does_not_wait_for_its_api(stack: str) -> None:
    plan = planned(stack)
    services = {r.urn for r in plan.recording.of_type(SERVICE_TYPE)}
    cut = [
        dataclasses.replace(r, dependencies=[d for d in r.dependencies if d not in services])
        for r in plan.recording.resources
    ]
    outcome = gcp_api_outcome(cut, plan.recording.invokes)
    names = {f.resource for f in outcome.findings}
    assert any(n.startswith("gcp:container/cluster:Cluster ") for n in names)
    assert any(n.startswith("gcp:compute/network:Network ") for n in names)
    assert all("does not wait" in f.message for f in outcome.findings)


def test_a_gcp_type_without_a_row_is_a_finding() -> None:
    plan = planned("dev-gcp")
    [bucket] = plan.recording.of_type("gcp:storage/bucket:Bucket")
    odd = dataclasses.replace(bucket, type="gcp:pubsub/topic:Topic", urn=bucket.urn + "-topic")
    outcome = gcp_api_outcome([*plan.recording.resources, odd], plan.recording.invokes)
    [finding] = outcome.findings
    assert "no row" in finding.message and "gcp:pubsub/topic:Topic" in finding.message


def test_a_plan_without_gcp_resources_validates_nothing() -> None:
    plan = plan_stack(load_stack_file(ROOT / "stacks" / "Pulumi.local.yaml"), "local")
    outcome = gcp_api_outcome(plan.recording.resources, plan.recording.invokes)
    assert (outcome.findings, outcome.validated) == ([], 0)


def test_every_row_cites_a_source_and_names_real_service_names() -> None:
    for row in API_TABLE:
        assert row.source and row.type_tokens and row.apis
        assert all(re.fullmatch(r"[a-z]+\.googleapis\.com", api) for api in row.apis)


def test_docs_list_exactly_the_apis_the_table_can_enable() -> None:
    text = (ROOT / "docs" / "gcp.md").read_text()
    section = text[text.index("## APIs") : text.index("## IAM needed")]
    rows = re.findall(r"^\| `([a-z]+\.googleapis\.com)` \|[^|]*\| ([^|]*) \|$", section, re.MULTILINE)
    assert {api for api, _ in rows} == set(apis_for(GcpFeature))
    assert {api for api, when in rows if when.strip() == "always"} == set(apis_for(BASE_FEATURES))
    command = re.search(r"gcloud services enable ([^`]*)```", section, re.DOTALL)
    assert command is not None
    assert set(re.findall(r"[a-z]+\.googleapis\.com", command.group(1))) == set(apis_for(GcpFeature))


def test_docs_bootstrap_resource_manager_and_service_usage_before_the_first_up() -> None:
    """Every Service reads back through Resource Manager and enabling goes through Service Usage, both billed
    to the caller's quota project: a fresh project needs them on by hand before `pulumi up` can enable any."""
    text = (ROOT / "docs" / "gcp.md").read_text()
    prerequisites = text[text.index("## Prerequisites") : text.index("## APIs")]
    command = re.search(r"gcloud services enable ([^\n`]*)--project", prerequisites)
    assert command is not None, "docs/gcp.md Prerequisites: the one-time gcloud services enable"
    assert set(command.group(1).split()) == {RESOURCE_MANAGER, "serviceusage.googleapis.com"}
    assert "quota project" in prerequisites
