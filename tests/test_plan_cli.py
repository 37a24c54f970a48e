"""`inferstack plan` / `schema` end to end: real stacks, deterministic output, redaction, exit codes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferstack.cli import EXIT_BAD_INPUT, EXIT_OK, main
from inferstack.planning.plan import plan_stack
from inferstack.reporting.summary import render_summary
from stacks.config import load_stack_file

ROOT = Path(__file__).resolve().parents[1]
STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
)


@pytest.fixture(autouse=True)
def _in_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_plans_and_writes_three_files(stack: str, tmp_path: Path) -> None:
    assert main(["plan", stack, "--out", str(tmp_path)]) == EXIT_OK
    resources = json.loads((tmp_path / "resources.json").read_text())
    manifests = list(yaml.safe_load_all((tmp_path / "manifests.yaml").read_text()))
    summary = (tmp_path / "summary.md").read_text()
    assert {r["type"] for r in resources} >= {
        "kubernetes:apps/v1:Deployment",
        "kubernetes:helm.sh/v3:Release",
    }
    assert all(m["metadata"]["name"] for m in manifests)
    assert {"Deployment", "Gateway", "HTTPRoute", "SecurityPolicy", "Certificate"} <= {
        m["kind"] for m in manifests
    }
    assert "https://" in summary and "Resources by type" in summary


def test_plan_is_deterministic(tmp_path: Path) -> None:
    for run in ("a", "b"):
        assert main(["plan", "onprem", "--out", str(tmp_path / run)]) == EXIT_OK
    for name in ("resources.json", "manifests.yaml", "summary.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_generated_api_keys_never_reach_the_plan_files(tmp_path: Path) -> None:
    config = load_stack_file(ROOT / "stacks" / "Pulumi.onprem.yaml")
    plan = plan_stack(config, "onprem")
    keys = [r.outputs["result"] for r in plan.recording.of_type("random:index/randomPassword:RandomPassword")]
    assert len(keys) == len(config.serving.api_keys.clients)
    plan.write(tmp_path, render_summary(plan))
    written = "".join(p.read_text() for p in tmp_path.iterdir())
    for key in keys:
        assert key not in written
    secret = next(m for m in plan.manifests() if m["kind"] == "Secret")
    assert set(secret.get("stringData") or secret.get("data")) == set(config.serving.api_keys.clients)
    assert plan.recording.exports["api_keys"] == "[secret]"


def test_manifests_come_in_dependency_order() -> None:
    plan = plan_stack(load_stack_file(ROOT / "stacks" / "Pulumi.onprem.yaml"), "onprem")
    kinds = [m["kind"] for m in plan.manifests()]
    assert kinds[0] == "Namespace"
    assert kinds.index("ServiceAccount") < kinds.index("Deployment")
    assert kinds.index("Secret") < kinds.index("SecurityPolicy")
    assert kinds.index("Gateway") < kinds.index("HTTPRoute")


def test_gpu_stack_requests_gpus_and_cpu_stack_does_not() -> None:
    for stack, gpus in (("onprem", "1"), ("local", None)):
        plan = plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)
        deployment = next(m for m in plan.manifests() if m["kind"] == "Deployment")
        limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits.get("nvidia.com/gpu") == gpus


def test_no_public_endpoint_without_tls_and_api_keys() -> None:
    for stack in STACKS:
        manifests = plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack).manifests()
        gateway = next(m for m in manifests if m["kind"] == "Gateway")
        https = [listener for listener in gateway["spec"]["listeners"] if listener["protocol"] == "HTTPS"]
        assert https and all(listener["tls"]["certificateRefs"] for listener in https)
        # A stack that routes by model has an AIGatewayRoute instead of its own API HTTPRoute: Envoy AI
        # Gateway's controller writes an HTTPRoute of the same name from it (policy/rules.py AI_GATEWAY_ROUTE),
        # which the SecurityPolicy targets by that name. Either way the API route must be HTTPS-only and
        # guarded by API keys.
        routes = [
            m
            for m in manifests
            if m["kind"] in ("HTTPRoute", "AIGatewayRoute")
            and any("backendRefs" in rule for rule in m["spec"]["rules"])
        ]
        # The chat UI (components/chat_ui.py) signs its users in itself: HTTPS on its own listener, no API key.
        chat = [
            m
            for m in routes
            if m["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "chat-ui"
        ]
        for route in chat:
            assert [ref.get("sectionName") for ref in route["spec"]["parentRefs"]] == ["https-chat"]
        api_routes = [m for m in routes if m not in chat]
        assert api_routes, f"{stack}: no API route"
        for route in api_routes:
            assert all(ref.get("sectionName") == "https" for ref in route["spec"]["parentRefs"])
            guarded = [
                p
                for p in manifests
                if p["kind"] == "SecurityPolicy"
                and "apiKeyAuth" in p["spec"]
                and any(t["name"] == route["metadata"]["name"] for t in p["spec"].get("targetRefs", []))
            ]
            assert guarded, f"{stack}: route {route['metadata']['name']} has no API-key SecurityPolicy"


def test_stack_file_option_and_default_out_dir(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.mine.yaml"
    stack_file.write_text((ROOT / "stacks" / "Pulumi.local.yaml").read_text())
    out = tmp_path / "out"
    assert main(["plan", "--stack-file", str(stack_file), "--out", str(out)]) == EXIT_OK
    assert "stack `mine`" in (out / "summary.md").read_text()


def test_unknown_stack_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "nope"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "known stacks are" in err and "local" in err


def test_outside_a_project_says_how_to_proceed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "local"]) == EXIT_BAD_INPUT
    assert "--stack-file" in capsys.readouterr().err


def _write_stack(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(yaml.safe_dump({"config": {f"inferstack:{k}": v for k, v in config.items()}}))
    return path


def _local_values() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text())
    return {k.removeprefix("inferstack:"): v for k, v in document["config"].items()}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {
                "serving": {"engine": "vllm", "image": "a/b:1", "gpu_type": "nvidia-t4"},
                "model": {"uri": "hf://m/l@" + "a" * 40, "parameters_b": 70},
            },
            "serving.gpus_per_replica",
        ),
        ({"gateway": {"hostname": "llm.localtest.me", "colour": "blue"}}, "gateway.colour"),
        ({"autoscaling": {"enabled": True, "min_replicas": "two"}}, "autoscaling.min_replicas"),
        (
            {"autoscaling": {"enabled": True, "min_replicas": 3, "max_replicas": 2}},
            "autoscaling.min_replicas",
        ),
        ({"tls": {"mode": "acme"}, "gateway": {"hostname": "llm.example.com"}}, "tls.acme.email"),
    ],
)
def test_bad_stack_files_exit_2_naming_the_field(
    change: dict[str, Any], field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = _local_values()
    values.update(change)
    code = main(["plan", "--stack-file", str(_write_stack(tmp_path, values)), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert f"  {field}:" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists(), "nothing is written for an invalid stack"


def test_schema_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--sections"]) == EXIT_OK
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    # `model` is required unless the stack lists `models` (then `model` holds the entries' shared defaults).
    assert schema["if"] == {"required": ["models"]} and "model" in schema["else"]["required"]
    validator = jsonschema.Draft202012Validator(schema)
    values = _local_values()
    assert not list(validator.iter_errors(values))
    without_model = {k: v for k, v in values.items() if k != "model"}
    assert any("'model' is a required property" in e.message for e in validator.iter_errors(without_model))


_MUTATIONS = st.sampled_from(
    [
        ("autoscaling", "enabled", st.booleans()),
        ("autoscaling", "min_replicas", st.integers(-1, 6)),
        ("autoscaling", "max_replicas", st.integers(0, 6)),
        ("serving", "engine", st.sampled_from(["vllm", "transformers", "tgi"])),
        ("serving", "gpus_per_replica", st.sampled_from([1, 2, 3, 8])),
        ("serving", "gpu_type", st.sampled_from(["nvidia-l4", "nvidia-h100-80gb", "nvidia-t4", "tpu"])),
        ("serving", "drain_seconds", st.integers(0, 400)),
        ("model", "parameters_b", st.sampled_from([0.5, 8, 70, 405, -1])),
        ("model", "quantization", st.sampled_from([None, "fp8", "awq", "q4"])),
        ("gateway", "hostname", st.sampled_from(["llm.example.com", "x", "LLM.example.com"])),
        ("gateway", "allowed_source_cidrs", st.sampled_from([["10.0.0.0/8"], ["300.0.0.0/8"], []])),
        ("tls", "mode", st.sampled_from(["acme", "internal_ca", "existing_secret", "self"])),
        ("monitoring", "install_prometheus", st.booleans()),
        ("monitoring", "pod_monitor", st.booleans()),
        ("gpu_pool", "driver_stack", st.sampled_from(["device_plugin", "gpu_operator", "preinstalled"])),
    ]
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_stack_file_gives_a_plan_or_a_clean_error(
    data: st.DataObject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = copy.deepcopy(_local_values())
    for _ in range(data.draw(st.integers(1, 4))):
        section, key, strategy = data.draw(_MUTATIONS)
        values.setdefault(section, {})[key] = data.draw(strategy)
    out = tmp_path / "fuzz"
    code = main(["plan", "--stack-file", str(_write_stack(tmp_path, values)), "--out", str(out)])
    err = capsys.readouterr().err
    assert code in (EXIT_OK, EXIT_BAD_INPUT), err
    assert "Traceback" not in err and "internal error" not in err
    if code == EXIT_OK:
        assert (out / "manifests.yaml").is_file()
    else:
        assert "problem" in err or "inferstack:" in err


@pytest.mark.parametrize("stack", STACKS)
def test_gateway_serves_the_secret_the_certificate_fills(stack: str) -> None:
    plan = plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)
    manifests = plan.manifests()
    gateway = next(m for m in manifests if m["kind"] == "Gateway")
    https = next(listener for listener in gateway["spec"]["listeners"] if listener["protocol"] == "HTTPS")
    served = https["tls"]["certificateRefs"][0]["name"]
    assert served == plan.recording.exports["tls_secret"]
    certificate = next(m for m in manifests if m["kind"] == "Certificate")
    assert certificate["spec"]["secretName"] == served
    kinds = [m["kind"] for m in manifests]
    assert kinds.index("Certificate") > kinds.index("Gateway"), "certificate waits for the gateway (CRDs)"
