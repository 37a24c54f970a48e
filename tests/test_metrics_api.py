"""The CPU engine's cpu trigger needs metrics.k8s.io: every stack either installs metrics-server or says
who serves it, and `inferstack check` (rule `metrics-api`) fails a plan that does neither (issue 13, kind 12).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components.metrics_server import KUBELET_INSECURE_TLS, MetricsServerArgs, metrics_server_values
from inferstack.validation.metrics_api import CHECK, metrics_api_outcome, resource_metric_readers
from stacks.config import StackConfig, config_values_from_stack_yaml, parse_stack_config
from stacks.config_errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
STACK_FILES = sorted(
    [*(ROOT / "stacks").glob("Pulumi.*.yaml"), *(ROOT / "docs" / "examples").glob("Pulumi.*.yaml")]
)


def scaled_object(*trigger_types: str) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "llm", "namespace": "inferstack"},
        "spec": {"triggers": [{"type": t, "metadata": {}} for t in trigger_types]},
    }


def cpu_engine_form(path: Path, **cluster: Any) -> StackConfig:
    """The stack file with the CPU engine scaling on CPU: the form that puts a `cpu` trigger in the plan."""
    values = config_values_from_stack_yaml(yaml.safe_load(path.read_text(encoding="utf-8")), path.name)
    # The model must still fit its cache (stacks/model_cache.py), and the API clients stay the stack's
    # (token quotas name them).
    cache = {k: v for k, v in values.get("serving", {}).items() if k in ("model_cache_size", "api_keys")}
    values["serving"] = {
        "engine": "transformers",
        "image": "registry.example.com/inferstack/model-cpu:0.1.0",
        "cpu": "2",
        "memory": "4Gi",
        **cache,
    }
    values["autoscaling"] = {"min_replicas": 1, "max_replicas": 2}
    values["model"].pop("quantization", None)
    # Every model of a multi-model stack (and each variant) in the same form: the stack's CPU serving and
    # autoscaling (a CPU-scaled model cannot scale to zero), no quantized checkpoint.
    for entry in values.get("models") or []:
        entry.pop("serving", None)
        entry.pop("autoscaling", None)
        for where in [entry, *entry.get("variants", [])]:
            where.pop("serving", None)
            (where.get("model") or {}).pop("quantization", None)
    if cluster:
        values.setdefault("cluster", {})["metrics_server"] = cluster
    return parse_stack_config(values, path.name)


def test_only_resource_metric_scalers_read_the_metrics_api() -> None:
    hpa = {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "x", "namespace": "n"}}
    manifests = [
        scaled_object("prometheus"),
        scaled_object("prometheus", "cpu"),
        {**hpa, "spec": {"metrics": [{"type": "Resource"}]}},
        {**hpa, "spec": {"metrics": [{"type": "External"}]}},
    ]
    assert resource_metric_readers(manifests) == [
        "ScaledObject/inferstack/llm",
        "HorizontalPodAutoscaler/n/x",
    ]


@pytest.mark.parametrize(
    ("charts", "provider", "fails"),
    [
        ([], None, True),  # the defective form: nothing serves metrics.k8s.io
        (["keda"], "stack", True),  # the stack meant to install it, and the plan does not
        (["metrics-server"], "stack", False),
        (["oci://registry.example.com/charts/metrics-server"], None, False),
        ([], "platform", False),
        ([], "cluster", False),
    ],
)
def test_a_cpu_trigger_needs_a_metrics_api_source(
    charts: list[str], provider: str | None, fails: bool
) -> None:
    outcome = metrics_api_outcome([scaled_object("cpu")], charts, provider)
    assert bool(outcome.findings) is fails
    assert all(f.check == CHECK and "cluster.metrics_server.install" in f.message for f in outcome.findings)
    assert metrics_api_outcome([scaled_object("prometheus")], [], None).findings == []


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_stack_in_cpu_form_installs_metrics_server_unless_its_platform_runs_one(path: Path) -> None:
    cfg = cpu_engine_form(path)
    # GKE and AKS run metrics-server themselves.
    expected = "platform" if cfg.platform.value in ("gcp", "azure") else "stack"
    assert cfg.metrics_api_provider == expected
    # As written (vLLM, or autoscaling off), nothing reads the metrics API and nothing is installed.
    values = config_values_from_stack_yaml(yaml.safe_load(path.read_text(encoding="utf-8")), path.name)
    assert parse_stack_config(values, path.name).metrics_api_provider is None
    if cfg.platform.value not in ("gcp", "azure"):
        assert cpu_engine_form(path, install=False).metrics_api_provider == "cluster"


def test_gke_refuses_a_second_metrics_server_and_only_onprem_skips_kubelet_tls() -> None:
    with pytest.raises(ConfigError, match=r"cluster\.metrics_server\.install"):
        cpu_engine_form(ROOT / "stacks" / "Pulumi.dev-gcp.yaml", install=True)
    with pytest.raises(ConfigError, match=r"cluster\.metrics_server\.kubelet_insecure_tls"):
        cpu_engine_form(ROOT / "stacks" / "Pulumi.dev-aws.yaml", kubelet_insecure_tls=True)
    onprem = cpu_engine_form(ROOT / "stacks" / "Pulumi.local.yaml", kubelet_insecure_tls=True)
    assert onprem.cluster.metrics_server.kubelet_insecure_tls


def test_metrics_server_values_are_restricted_and_skip_tls_only_when_asked() -> None:
    plain = metrics_server_values(MetricsServerArgs())
    assert plain["podSecurityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert "args" not in plain
    assert metrics_server_values(MetricsServerArgs(kubelet_insecure_tls=True))["args"] == [
        KUBELET_INSECURE_TLS
    ]


@pytest.mark.parametrize("stack", ["dev-aws", "onprem", "dev-gcp"])
def test_the_cpu_form_plan_installs_metrics_server_before_the_scaled_object(stack: str) -> None:
    from inferstack.planning.plan import plan_stack

    plan = plan_stack(cpu_engine_form(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)
    manifests = plan.manifests()
    assert resource_metric_readers(manifests) == ["ScaledObject/inferstack/llm"]
    charts = [r.chart for r in plan.helm_releases()]
    assert ("metrics-server" in charts) is (stack != "dev-gcp")
    assert metrics_api_outcome(manifests, charts, plan.config.metrics_api_provider).findings == []
    if stack != "dev-gcp":
        (release,) = [r for r in plan.helm_releases() if r.chart == "metrics-server"]
        assert release.namespace == "kube-system"
        # The ScaledObject's component waits for metrics-server.
        autoscaler = next(r for r in plan.recording.resources if r.type == "inferstack:autoscaler:Autoscaler")
        # Pulumi expands a component in depends_on into its children: the release itself is listed.
        ms = next(r for r in plan.recording.resources if r.name == "llm-metrics-server")
        assert ms.urn in autoscaler.dependencies


def test_a_later_cpu_model_of_a_multi_model_stack_gets_metrics_server() -> None:
    # With `models` the stack's own sections are the first model's (vLLM here); a later model on the CPU
    # engine still puts a cpu trigger in the plan, so the stack must install metrics-server for it.
    from inferstack.planning.plan import plan_stack

    path = ROOT / "stacks" / "Pulumi.multi-onprem.yaml"
    values = config_values_from_stack_yaml(yaml.safe_load(path.read_text(encoding="utf-8")), path.name)
    qwen = values["models"][1]
    qwen["serving"] = {
        "engine": "transformers",
        "image": "registry.example.internal/inferstack/model-cpu:0.1.0@sha256:" + "0" * 64,
        "cpu": "4",
        "memory": "32Gi",
    }
    qwen["autoscaling"] = {"min_replicas": 1, "max_replicas": 2}
    cfg = parse_stack_config(values, path.name)
    assert cfg.serving.engine.value == "vllm" and cfg.metrics_api_provider == "stack"
    plan = plan_stack(cfg, "multi-onprem")
    manifests = plan.manifests()
    assert resource_metric_readers(manifests) == ["ScaledObject/inference/llm-qwen-7b"]
    charts = [r.chart for r in plan.helm_releases()]
    assert "metrics-server" in charts
    assert metrics_api_outcome(manifests, charts, plan.config.metrics_api_provider).findings == []
