"""GPU types we know, and the arithmetic that says whether a model fits on them.

Pure functions only: the config schema calls them before any resource exists, and the tests call them
directly. Figures are the vendors' published memory sizes (decimal GB, as printed on the data sheets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.choices import GpuType

#: Memory per GPU in GB (1e9 bytes), from NVIDIA's data sheets.
GPU_MEMORY_GB: dict[GpuType, float] = {
    GpuType.T4: 16,
    GpuType.L4: 24,
    GpuType.A10G: 24,
    GpuType.L40S: 48,
    GpuType.A100_40GB: 40,
    GpuType.A100_80GB: 80,
    GpuType.H100_80GB: 80,
    GpuType.H200: 141,
    GpuType.B200: 180,
}

#: Bytes per weight for each dtype / quantization. "auto" loads the checkpoint's dtype: bf16 for the
#: models we target, so it is counted as 2 bytes.
DTYPE_BYTES: dict[str, float] = {"auto": 2, "bfloat16": 2, "float16": 2, "float32": 4}
QUANTIZATION_BYTES: dict[str, float] = {"fp8": 1, "int8": 1, "awq": 0.5, "gptq": 0.5}

#: Per-GPU memory the engine needs besides weights and KV cache (CUDA context, activations, CUDA graphs).
ENGINE_OVERHEAD_GB_PER_GPU = 1.5


@dataclass(frozen=True)
class MemoryEstimate:
    """What one replica needs against what its GPUs offer, all in GB."""

    weights_gb: float
    kv_cache_gb: float
    overhead_gb: float
    available_gb: float

    @property
    def needed_gb(self) -> float:
        return self.weights_gb + self.kv_cache_gb + self.overhead_gb

    @property
    def fits(self) -> bool:
        return self.needed_gb <= self.available_gb


def default_kv_bytes_per_token(parameters_b: float) -> int:
    """A conservative KV-cache size per token when the stack file does not give one.

    Fitted to grouped-query-attention models in bf16 (Qwen2.5-0.5B ≈ 12 KiB, Llama-3.1-8B = 128 KiB,
    Llama-3.1-70B = 320 KiB per token) and rounded up, so that a model we accept does load.
    """
    return int(32 * 1024 * max(parameters_b, 0.1) ** 0.75)


def weight_bytes_per_parameter(dtype: str, quantization: str | None) -> float:
    if quantization:
        return QUANTIZATION_BYTES[quantization]
    return DTYPE_BYTES[dtype]


def estimate_memory(
    *,
    parameters_b: float,
    dtype: str,
    quantization: str | None,
    max_model_len: int,
    kv_bytes_per_token: int | None,
    gpu_type: GpuType,
    gpus: int,
    gpu_memory_utilization: float,
) -> MemoryEstimate:
    """Weights at the chosen precision, plus one full-length sequence of KV cache, plus engine overhead,
    against the share of GPU memory the engine is allowed to use."""
    per_token = kv_bytes_per_token or default_kv_bytes_per_token(parameters_b)
    return MemoryEstimate(
        weights_gb=parameters_b * weight_bytes_per_parameter(dtype, quantization),
        kv_cache_gb=per_token * max_model_len / 1e9,
        overhead_gb=ENGINE_OVERHEAD_GB_PER_GPU * gpus,
        available_gb=GPU_MEMORY_GB[gpu_type] * gpus * gpu_memory_utilization,
    )


def smallest_gpu_count_that_fits(
    estimate: MemoryEstimate, gpu_type: GpuType, utilization: float
) -> int | None:
    """The smallest tensor-parallel size (1, 2, 4, 8) on this GPU type that holds the model, if any."""
    fixed = estimate.weights_gb + estimate.kv_cache_gb
    for gpus in (1, 2, 4, 8):
        if fixed + ENGINE_OVERHEAD_GB_PER_GPU * gpus <= GPU_MEMORY_GB[gpu_type] * gpus * utilization:
            return gpus
    return None


def smallest_gpu_type_that_fits(estimate: MemoryEstimate, gpus: int, utilization: float) -> GpuType | None:
    fixed = estimate.weights_gb + estimate.kv_cache_gb + ENGINE_OVERHEAD_GB_PER_GPU * gpus
    candidates = [g for g in GpuType if fixed <= GPU_MEMORY_GB[g] * gpus * utilization]
    return min(candidates, key=lambda g: GPU_MEMORY_GB[g]) if candidates else None


def gb(value: float) -> str:
    """Round up to one decimal, so a reported need is never below the real one."""
    return f"{math.ceil(value * 10) / 10:.1f} GB"
