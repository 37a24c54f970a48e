"""GPU-memory feasibility: CUDA's usable memory, vLLM's own accounting, a margin, and the numbers shown.

Issue 13 kind 10: the check used data-sheet GB and a fixed 1.5 GB overhead, so Llama-3.1-8B on one L4 at
max_model_len 30000 was accepted with 0.17 GB to spare and would fail at engine start.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from components.choices import Engine
from stacks.config import ConfigError, config_values_from_stack_yaml, load_stack_file, parse_stack_config
from stacks.gpus import (
    GIB,
    GPU_MEMORY_GB,
    GPU_USABLE_MEMORY_GIB,
    GpuType,
    MemoryEstimate,
    estimate_memory,
)

ROOT = Path(__file__).resolve().parents[1]
ALL_STACK_FILES = sorted((ROOT / "stacks").glob("Pulumi.*.yaml")) + sorted(
    (ROOT / "docs" / "examples").glob("Pulumi.*.yaml")
)
LLAMA_8B = "hf://meta-llama/Llama-3.1-8B-Instruct@0e9e39f249a16976918f6564b8830bc894c89659"
LLAMA_8B_KV = 131072  # 2 x 32 layers x 8 KV heads x 128 head_dim x 2 bytes


def gpu_stack(model: dict[str, Any], serving: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": model,
        "serving": {"image": "registry.example/model:1.0", **serving},
        "gateway": {"hostname": "llm.example.com"},
    }


def memory_problem(values: dict[str, Any]) -> str | None:
    try:
        parse_stack_config(values)
    except ConfigError as err:
        return dict(err.problems).get("serving.gpus_per_replica")
    return None


def estimate_of(path: Path) -> MemoryEstimate | None:
    cfg = load_stack_file(path)
    s, m = cfg.serving, cfg.model
    if s.engine is not Engine.VLLM:
        return None
    return estimate_memory(
        parameters_b=m.parameters_b,
        dtype=m.dtype.value,
        quantization=m.quantization.value if m.quantization else None,
        max_model_len=m.max_model_len,
        kv_bytes_per_token=m.kv_cache_bytes_per_token,
        gpu_type=s.gpu_type,
        gpus=s.gpus_per_replica,
        gpu_memory_utilization=s.gpu_memory_utilization,
    )


def test_llama_8b_on_one_l4_at_30000_tokens_is_refused_with_the_sum() -> None:
    message = memory_problem(
        gpu_stack(
            {
                "uri": LLAMA_8B,
                "parameters_b": 8,
                "max_model_len": 30000,
                "kv_cache_bytes_per_token": LLAMA_8B_KV,
            },
            {"gpu_type": "nvidia-l4"},
        )
    )
    assert message is not None, "accepted, but vLLM cannot start it (issue 13 kind 10)"
    # Each term of vLLM's accounting is shown, per GPU, in GiB, against CUDA's figure, not the data sheet.
    for term in (
        "weights 14.91 GiB",
        "KV cache 3.67 GiB",
        "activation peak",
        "non-torch",
        "CUDA graphs",
        "margin",
    ):
        assert term in message
    assert "22.03 GiB" in message and "x 0.9 gpu_memory_utilization = 19.82 GiB" in message
    assert re.search(r"\(\d+\.\d\d GiB short\)", message)


def test_the_same_model_at_8192_tokens_fits_one_l4() -> None:
    assert (
        memory_problem(
            gpu_stack(
                {
                    "uri": LLAMA_8B,
                    "parameters_b": 8,
                    "max_model_len": 8192,
                    "kv_cache_bytes_per_token": LLAMA_8B_KV,
                },
                {"gpu_type": "nvidia-l4"},
            )
        )
        is None
    )


@pytest.mark.parametrize("path", ALL_STACK_FILES, ids=lambda p: p.name)
def test_every_stack_and_example_fits_with_the_margin(path: Path) -> None:
    estimate = estimate_of(path)
    if estimate is not None:
        assert estimate.fits and estimate.spare_gib >= 0, estimate.breakdown()


@pytest.mark.parametrize("gpu", list(GpuType))
def test_the_budget_is_what_cuda_reports_not_the_data_sheet(gpu: GpuType) -> None:
    # Data sheets print "GB": decimal for the GDDR boards (L4 24 GB), binary for HBM ones (A100 40 GB =
    # 40960 MiB). CUDA reports less than either reading, and more than 90% of the decimal one.
    usable = GPU_USABLE_MEMORY_GIB[gpu]
    assert usable < GPU_MEMORY_GB[gpu]
    assert usable * GIB > 0.9 * GPU_MEMORY_GB[gpu] * 1e9


def test_the_overhead_is_at_least_vllms_reported_non_weight_peak() -> None:
    # vLLM's start-up line for 8B-class models: 1.4-2.0 GiB activation peak + 0.07-0.25 non-torch +
    # 0.2-0.7 CUDA graphs; the "2 GiB or more".
    for gpus in (1, 2, 4, 8):
        small = estimate_memory(
            parameters_b=0.5, dtype="auto", quantization=None, max_model_len=128,
            kv_bytes_per_token=None, gpu_type=GpuType.L4, gpus=gpus, gpu_memory_utilization=0.9,
        )  # fmt: skip
        assert small.overhead_gib >= 3.0


MODELS = st.fixed_dictionaries(
    {
        "parameters_b": st.sampled_from([0.5, 1.5, 3, 7, 8, 14, 32, 70, 123, 405]),
        "max_model_len": st.integers(min_value=128, max_value=131072),
        "kv_cache_bytes_per_token": st.sampled_from([None, 12288, 131072, 262144, 327680]),
    }
)
SERVING = st.fixed_dictionaries(
    {
        "gpu_type": st.sampled_from([g.value for g in GpuType]),
        "gpus_per_replica": st.sampled_from([1, 2, 4, 8]),
        "gpu_memory_utilization": st.sampled_from([0.8, 0.85, 0.9, 0.95]),
    }
)


def _ways_out(message: str) -> list[str]:
    return message.split("Ways out: ", 1)[1].split("; ")


@settings(max_examples=150, deadline=None)
@given(model=MODELS, serving=SERVING)
def test_every_suggested_way_out_is_accepted(model: dict[str, Any], serving: dict[str, Any]) -> None:
    model = {"uri": LLAMA_8B, **{k: v for k, v in model.items() if v is not None}}
    message = memory_problem(gpu_stack(model, serving))
    if message is None:
        return
    for way in _ways_out(message):
        fixed_model, fixed_serving = dict(model), dict(serving)
        if way.startswith("gpus_per_replica: "):
            fixed_serving["gpus_per_replica"] = int(way.split()[1])
        elif way.startswith("gpu_type: "):
            fixed_serving["gpu_type"] = way.split()[1]
        elif way.startswith("model.quantization: "):
            fixed_model["quantization"] = way.split()[1]
        elif way.startswith("serving.gpu_memory_utilization: "):
            fixed_serving["gpu_memory_utilization"] = float(way.split()[1])
        elif way.startswith("model.max_model_len: "):
            fixed_model["max_model_len"] = int(way.split()[1])
        else:
            assert way == "a smaller model", way
            continue
        assert memory_problem(gpu_stack(fixed_model, fixed_serving)) is None, (way, message)


@settings(max_examples=200, deadline=None)
@given(model=MODELS, serving=SERVING, longer=st.integers(min_value=1, max_value=65536))
def test_a_longer_context_or_less_memory_never_turns_a_misfit_into_a_fit(
    model: dict[str, Any], serving: dict[str, Any], longer: int
) -> None:
    def est(max_model_len: int, utilization: float) -> MemoryEstimate:
        return estimate_memory(
            parameters_b=model["parameters_b"], dtype="auto", quantization=None, max_model_len=max_model_len,
            kv_bytes_per_token=model["kv_cache_bytes_per_token"], gpu_type=GpuType(serving["gpu_type"]),
            gpus=serving["gpus_per_replica"], gpu_memory_utilization=utilization,
        )  # fmt: skip

    base = est(model["max_model_len"], serving["gpu_memory_utilization"])
    if not base.fits:
        assert not est(model["max_model_len"] + longer, serving["gpu_memory_utilization"]).fits
        assert not est(model["max_model_len"], serving["gpu_memory_utilization"] - 0.05).fits
    # What the check accepts leaves vLLM's KV budget at least one full sequence: the engine's own test.
    kv_available = base.budget_gib - (
        base.weights_gib + base.activation_gib + base.non_torch_gib + base.cuda_graph_gib
    )
    if base.fits:
        assert kv_available - base.kv_cache_gib >= base.margin_gib - 1e-9


def test_stack_files_read_here_are_the_ones_check_reads() -> None:
    # Guard for the parametrised test above: every GPU stack is really read and really uses vLLM.
    names = {p.name for p in ALL_STACK_FILES}
    assert {"Pulumi.dev-aws.yaml", "Pulumi.prod-gcp.yaml", "Pulumi.onprem-site.yaml"} <= names
    for path in ALL_STACK_FILES:
        values = config_values_from_stack_yaml(yaml.safe_load(path.read_text()), str(path))
        assert "model" in values


def test_azure_gpus_are_sized_from_their_own_boards() -> None:
    # A10: same GA102 and 24 GB GDDR6 as the A10G, so the same CUDA total; H100 NVL: 94 GB HBM3 boards
    # report about 93 GiB, more than the 80 GB H100 and less than the H200.
    assert (
        GPU_MEMORY_GB[GpuType.A10] == 24
        and GPU_USABLE_MEMORY_GIB[GpuType.A10] == GPU_USABLE_MEMORY_GIB[GpuType.A10G]
    )
    assert GPU_MEMORY_GB[GpuType.H100_NVL] == 94
    assert (
        GPU_USABLE_MEMORY_GIB[GpuType.H100_80GB]
        < GPU_USABLE_MEMORY_GIB[GpuType.H100_NVL]
        < GPU_USABLE_MEMORY_GIB[GpuType.H200]
    )
