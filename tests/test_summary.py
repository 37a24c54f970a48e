"""summary.md tells the truth: the endpoint a client uses, one resource count, placeholders labelled."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferstack.planning.plan import Plan, plan_stack
from inferstack.planning.recording import RecordedResource, Recording, made_up_outputs
from inferstack.reporting.summary import PLACEHOLDER_LABEL, render_summary
from stacks.cold_start import progress_deadline_seconds, rollout_timeout_seconds
from stacks.config import cold_start_seconds, load_stack_file
from stacks.rollout import most_replicas

ROOT = Path(__file__).resolve().parents[1]


def planned(stack: str) -> Plan:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def local() -> Iterator[tuple[Plan, str]]:
    plan = planned("local")
    yield plan, render_summary(plan)


@pytest.fixture(scope="module")
def dev_aws() -> Iterator[tuple[Plan, str]]:
    plan = planned("dev-aws")
    yield plan, render_summary(plan)


def bullet(summary: str, start: str) -> str:
    return next(line for line in summary.splitlines() if line.startswith(start))


# --- the endpoint -----------------------------------------------------------------------------------


def test_the_local_endpoint_is_the_url_output_with_its_node_port(local: tuple[Plan, str]) -> None:
    plan, summary = local
    url = plan.recording.exports["url"]
    assert url == "https://llm.localtest.me:30443"  # the gateway is a NodePort on 30443
    assert bullet(summary, "- endpoint: ").startswith(f"- endpoint: {url}/v1 ")


def test_a_load_balancer_endpoint_has_no_port(dev_aws: tuple[Plan, str]) -> None:
    plan, summary = dev_aws
    assert plan.client_base_url() == "https://llm.dev.example.com/v1"
    assert bullet(summary, "- endpoint: ").startswith("- endpoint: https://llm.dev.example.com/v1 ")


# --- one count --------------------------------------------------------------------------------------


def test_the_summary_counts_resources_and_components_apart(local: tuple[Plan, str]) -> None:
    plan, summary = local
    counts = plan.counts()
    custom = [r for r in plan.recording.resources if r.custom]
    assert counts.resources == len(custom) and counts.components > 0
    assert counts.resources + counts.components == len(plan.recording.resources)
    assert re.search(rf"^{counts.resources} resources \(\+{counts.components} components\), ", summary, re.M)
    # the table above the count sums to the same number
    rows = [int(n) for n in re.findall(r"^\| `[^`]+` \| (\d+) \|$", summary, re.M)]
    assert sum(rows) == counts.resources


# --- placeholders -----------------------------------------------------------------------------------


def test_a_fake_certificate_is_labelled_a_placeholder(local: tuple[Plan, str]) -> None:
    _, summary = local
    line = bullet(summary, "- `ca_certificate_pem`: ")
    assert f"**{PLACEHOLDER_LABEL}** for tls:index/selfSignedCert:SelfSignedCert `certPem`" in line
    assert "\n" not in line and "BEGIN CERTIFICATE" in line
    assert f"{PLACEHOLDER_LABEL}: made up by the offline plan" in summary


def test_a_fake_load_balancer_hostname_is_a_placeholder_and_real_values_are_not(
    dev_aws: tuple[Plan, str],
) -> None:
    _, summary = dev_aws
    assert PLACEHOLDER_LABEL in bullet(summary, "- `load_balancer_hostname`: ")
    # values the stack file decides are shown plainly, though the mock echoed some as outputs
    for name in ("region", "cluster_name", "model", "namespace", "url", "tls_secret"):
        assert PLACEHOLDER_LABEL not in bullet(summary, f"- `{name}`: "), name


def test_made_up_outputs_are_those_not_echoed_from_the_inputs() -> None:
    inputs = {"metadata": {"name": "a"}, "spec": {"ports": [{"port": 443}]}}
    outputs = {
        "metadata": {"name": "a", "uid": "u-1"},
        "spec": {"ports": [{"port": 443}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}},
    }
    assert made_up_outputs(inputs, outputs) == {
        "metadata.uid": "u-1",
        "status.loadBalancer.ingress[0].ip": "203.0.113.10",
    }


def test_a_value_built_around_a_made_up_output_is_a_placeholder_too() -> None:
    recording = Recording()
    recording.resources.append(
        RecordedResource(
            urn="urn:svc",
            type="kubernetes:core/v1:Service",
            name="lb",
            parent=None,
            custom=True,
            inputs={},
            redacted_inputs={},
            made_up={"status.loadBalancer.ingress[0].ip": "203.0.113.10", "status.phase": "Ready"},
        )
    )
    source = "kubernetes:core/v1:Service `status.loadBalancer.ingress[0].ip`"
    assert recording.placeholder_source("https://203.0.113.10/v1") == source
    assert recording.placeholder_source({"addresses": ["203.0.113.10"]}) == source
    assert recording.placeholder_source("Ready") is not None  # equal to a short made-up value
    assert recording.placeholder_source("Not Ready yet") is None  # short ones count only when equal
    assert recording.placeholder_source("https://llm.example.com") is None


def test_an_all_zero_image_digest_is_a_placeholder_and_a_real_one_is_not() -> None:
    from inferstack.reporting.summary import _image_note

    assert PLACEHOLDER_LABEL in _image_note("registry.example/model:0.1.0@sha256:" + "0" * 64)
    assert _image_note("registry.example/model:0.1.0@sha256:" + "0" * 63 + "1") == ""
    assert _image_note("localhost/inferstack-model-cpu:0.1.0") == ""


def test_the_local_summary_shows_its_image_plainly(local: tuple[Plan, str]) -> None:
    _, summary = local
    assert (
        bullet(summary, "- engine: ")
        == "- engine: transformers, image `localhost/inferstack-model-cpu:0.1.0`"
    )


def test_gateway_envoy_replicas_reaches_the_envoy_proxy_and_its_pdb() -> None:
    """gateway.envoy_replicas: 1 (the local stack) makes one Envoy pod and no PodDisruptionBudget for it."""
    from pathlib import Path

    from inferstack.planning.plan import plan_stack
    from stacks.config import load_stack_file

    root = Path(__file__).resolve().parents[1]
    for stack, replicas in (("local", 1), ("onprem", 2)):
        plan = plan_stack(load_stack_file(root / "stacks" / f"Pulumi.{stack}.yaml"), stack)
        [proxy] = [m for m in plan.manifests() if m["kind"] == "EnvoyProxy"]
        kubernetes = proxy["spec"]["provider"]["kubernetes"]
        assert kubernetes["envoyDeployment"]["replicas"] == replicas
        assert ("envoyPDB" in kubernetes) == (
            replicas > 1
        )  # a PDB of minAvailable 1 on one pod blocks drains


# --- rollout deadlines ----------------------------------------------------------------------------------


def test_the_summary_shows_the_rollout_deadlines_the_plan_sets(dev_aws: tuple[Plan, str]) -> None:
    plan, summary = dev_aws
    cold_start = cold_start_seconds(plan.config)
    line = bullet(summary, "- rollout deadlines:")
    assert f"each new replica {progress_deadline_seconds(cold_start)} s to become ready" in line
    assert f"waits up to {rollout_timeout_seconds(cold_start, most_replicas(plan.config))} s" in line
    # Neither is the Kubernetes or Pulumi default a GPU cold start overruns.
    assert " 600 s " not in line
