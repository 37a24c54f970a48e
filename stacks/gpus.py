"""GPU types we know, and the arithmetic that says whether a model fits on them.

Pure functions only: the config schema calls them before any resource exists, and the tests call them
directly. All memory figures are GiB (2**30 bytes), the unit vLLM and PyTorch print, per GPU (one
tensor-parallel worker), because vLLM budgets and fails per worker.

The estimate follows vLLM's own accounting at the pinned image (vllm/vllm-openai:v0.31.0,
model_image/Dockerfile), read in vllm/v1/worker/gpu_worker.py (vllm-project/vllm, the newest stored
version of the v1 worker, commit 35d5cda; the 2026 `determine_available_memory` also subtracts
`cudagraph_memory_estimate_applied`):

* ``Worker.init_device``: ``requested_memory = init_snapshot.total_memory * gpu_memory_utilization``.
  ``total_memory`` is what ``cudaMemGetInfo`` reports, not the data-sheet size (see GPU_USABLE_MEMORY_GIB).
* ``Worker.determine_available_memory``: ``available_kv_cache_memory_bytes = requested_memory -
  profile_result.non_kv_cache_memory [- cudagraph_memory_estimate_applied]``, where
  ``non_kv_cache_memory = weights + torch_peak_increase (activation peak of the profile run, a dummy
  batch of max_num_batched_tokens) + non_torch_increase (CUDA context, cuBLAS/NCCL buffers)``.
* ``Worker.compile_or_warm_up_model``: CUDA graphs are captured after the KV cache is allocated (their
  memory is counted in the budget only with VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS, otherwise it comes
  out of the share left by gpu_memory_utilization). vLLM's 150 MiB ``redundancy_buffer_memory`` appears
  only in the ``--kv-cache-memory`` figure it suggests at debug level ("the memory profiling may slightly
  underestimate"), never in the budget; we reserve the same amount as part of our own margin.
* The engine then refuses to start when one max_model_len sequence of KV cache does not fit the
  available KV memory (vllm/v1/core/kv_cache_utils.py ``check_enough_kv_cache_memory``), which is the
  condition this module predicts.

We count CUDA graphs inside the budget (true with the estimate flag on, and conservative with it off),
and add a margin for what the profile run does not see.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection
from dataclasses import dataclass

from components.choices import GpuType

GIB = 1024**3

#: Memory per GPU as printed on NVIDIA's data sheets ("GB": decimal for the GDDR boards, e.g. L4 24 GB;
#: binary for the HBM ones, e.g. A100 40 GB = 40960 MiB). For display only: the engine never gets this
#: much (see GPU_USABLE_MEMORY_GIB).
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
    GpuType.A10: 24,  # 24 GB GDDR6 (NVIDIA A10 data sheet)
    GpuType.H100_NVL: 94,  # 94 GB HBM3 per GPU (NVIDIA H100 NVL data sheet; Azure NCads H100 v5)
}

#: Memory per GPU in GiB as CUDA reports it (``torch.cuda.get_device_properties().total_memory``, the
#: ``total`` of ``cudaMemGetInfo`` that vLLM multiplies by gpu_memory_utilization), which is below the
#: data sheet: ECC, the driver's reservation and GB-vs-GiB. Figures are the "GPU 0 has a total capacity
#: of X GiB" that PyTorch prints in out-of-memory reports on that GPU; where reports differ (PCIe vs SXM
#: boards, drivers) we take the lowest, so an accepted model also fits the smaller variant:
#: T4 14.74 (Colab T4 reports; 15360 MiB in nvidia-smi), L4 22.03 (L4 / g2-standard reports: 23.65 GB,
#: the "about 23.6 GB" of issue 13), A10G 21.98 (24 GB GA102 boards report 21.96-22.18), L40S 44.34
#: (L40/L40S boards report 44.34-44.52; QwenLM/Qwen3-VL#2097: 44.40 on an L40), A100-40GB 39.39 (SXM4; PCIe 39.49-39.56),
#: A100-80GB 79.15, H100-80GB 79.10 (79.10-79.19), H200 139.72 (139.72-139.81), B200 178.35,
#: H100 NVL 93.02 (PyTorch reports on H100 NVL / "H100 96GB" boards: 93.09-93.11 GiB, and 93.02 for
#: GPU 1 of a two-GPU vLLM host in a vLLM issue; the lowest taken).
#: A10: the A10G figure (21.98). No PyTorch report for the A10 was found; it is the same GA102 die with
#: the same 24 GB GDDR6 (the A10G is the A10's AWS variant, differing in clocks, not memory), so the
#: driver reserves the same share. A reported A10 figure should replace it.
GPU_USABLE_MEMORY_GIB: dict[GpuType, float] = {
    GpuType.T4: 14.74,
    GpuType.L4: 22.03,
    GpuType.A10G: 21.98,
    GpuType.L40S: 44.34,
    GpuType.A100_40GB: 39.39,
    GpuType.A100_80GB: 79.15,
    GpuType.H100_80GB: 79.10,
    GpuType.H200: 139.72,
    GpuType.B200: 178.35,
    GpuType.A10: 21.98,
    GpuType.H100_NVL: 93.02,
}

#: Bytes per weight for each dtype / quantization. "auto" loads the checkpoint's dtype: bf16 for the
#: models we target, so it is counted as 2 bytes.
DTYPE_BYTES: dict[str, float] = {"auto": 2, "bfloat16": 2, "float16": 2, "float32": 4}
QUANTIZATION_BYTES: dict[str, float] = {"fp8": 1, "int8": 1, "awq": 0.5, "gptq": 0.5}

# Per-worker figures besides weights and KV cache, from vLLM's own start-up line ("Actual usage is X GiB
# for weight, Y GiB for peak activation, Z GiB for non-torch memory, and W GiB for CUDAGraph memory",
# gpu_worker.py compile_or_warm_up_model). Reported for 8B-class bf16 models on one GPU: weight 14.08,
# peak activation 1.97, non-torch 0.07, CUDA graphs 0.67 GiB (H100, util 0.9); 15.26 (weights +
# non-torch), 1.44 activation, 0.23 CUDA graphs (H100, util 0.92). A TP=2 MoE worker reported 0.95 GiB
# non-torch (NCCL and custom all-reduce buffers). Each figure is rounded up.

#: Non-torch memory of one worker alone (CUDA context, cuBLAS workspace), GiB.
NON_TORCH_GIB = 0.25
#: Non-torch memory of one worker in a tensor-parallel group (adds NCCL and custom all-reduce buffers), GiB.
NON_TORCH_TP_GIB = 1.0
#: Activation peak of the profile run for an 8B-class worker, GiB. It grows with the hidden and MLP
#: sizes of the worker's shard, so it is scaled by sqrt(parameters per worker / 8B), never below this.
ACTIVATION_PEAK_8B_GIB = 2.0
#: CUDA graph pool of one worker, GiB.
CUDA_GRAPH_GIB = 0.75
#: Extra margin sized like the 150 MiB buffer vLLM adds to its suggested --kv-cache-memory (gpu_worker.py
#: ``redundancy_buffer_memory``; vLLM does not subtract it from the budget itself), GiB.
VLLM_REDUNDANCY_GIB = 150 / 1024
#: Our margin for what the profile run does not see (sampler buffers, fragmentation, a driver that
#: reserves more), GiB per worker.
MARGIN_GIB = 0.5


@dataclass(frozen=True)
class MemoryEstimate:
    """What one tensor-parallel worker of a replica needs against what vLLM lets it use, in GiB.

    Built by `estimate_memory`; `with_gpus` / `with_gpu_type` give the same model on other GPUs.
    """

    parameters_b: float
    bytes_per_weight: float
    kv_cache_bytes: float  # one full max_model_len sequence, whole model (all layers, all KV heads)
    gpu_type: GpuType
    gpus: int
    gpu_memory_utilization: float

    @property
    def weights_gib(self) -> float:
        return self.parameters_b * 1e9 * self.bytes_per_weight / self.gpus / GIB

    @property
    def kv_cache_gib(self) -> float:
        # Tensor parallelism splits the KV heads across workers.
        return self.kv_cache_bytes / self.gpus / GIB

    @property
    def non_torch_gib(self) -> float:
        return NON_TORCH_TP_GIB if self.gpus > 1 else NON_TORCH_GIB

    @property
    def activation_gib(self) -> float:
        return ACTIVATION_PEAK_8B_GIB * max(1.0, math.sqrt(self.parameters_b / self.gpus / 8))

    @property
    def cuda_graph_gib(self) -> float:
        return CUDA_GRAPH_GIB

    @property
    def margin_gib(self) -> float:
        return VLLM_REDUNDANCY_GIB + MARGIN_GIB

    @property
    def overhead_gib(self) -> float:
        """Everything besides weights and KV cache."""
        return self.non_torch_gib + self.activation_gib + self.cuda_graph_gib + self.margin_gib

    @property
    def needed_gib(self) -> float:
        return self.weights_gib + self.kv_cache_gib + self.overhead_gib

    @property
    def usable_gib(self) -> float:
        return GPU_USABLE_MEMORY_GIB[self.gpu_type]

    @property
    def budget_gib(self) -> float:
        """vLLM's ``requested_memory``: CUDA's total memory x gpu_memory_utilization."""
        return self.usable_gib * self.gpu_memory_utilization

    @property
    def spare_gib(self) -> float:
        return self.budget_gib - self.needed_gib

    @property
    def fits(self) -> bool:
        return self.needed_gib <= self.budget_gib

    def with_gpus(self, gpus: int) -> MemoryEstimate:
        return dataclasses.replace(self, gpus=gpus)

    def with_gpu_type(self, gpu_type: GpuType) -> MemoryEstimate:
        return dataclasses.replace(self, gpu_type=gpu_type)

    def with_bytes_per_weight(self, bytes_per_weight: float) -> MemoryEstimate:
        return dataclasses.replace(self, bytes_per_weight=bytes_per_weight)

    def breakdown(self) -> str:
        """The sum, term by term, per GPU: what the error message shows."""
        return (
            f"weights {gib(self.weights_gib)} + KV cache {gib(self.kv_cache_gib)} + activation peak "
            f"{gib(self.activation_gib)} + non-torch {gib(self.non_torch_gib)} + CUDA graphs "
            f"{gib(self.cuda_graph_gib)} + margin {gib(self.margin_gib)} = {gib(self.needed_gib)} per GPU, "
            f"but vLLM may use {self.usable_gib:g} GiB (what CUDA reports for one {self.gpu_type.value}, "
            f"data sheet {GPU_MEMORY_GB[self.gpu_type]:g} GB) x {self.gpu_memory_utilization:g} "
            f"gpu_memory_utilization = {gib_down(self.budget_gib)}"
        )


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
    """One worker's share of the weights at the chosen precision and of one full-length sequence of KV
    cache, plus vLLM's non-KV memory, against CUDA's total memory x gpu_memory_utilization."""
    per_token = kv_bytes_per_token or default_kv_bytes_per_token(parameters_b)
    return MemoryEstimate(
        parameters_b=parameters_b,
        bytes_per_weight=weight_bytes_per_parameter(dtype, quantization),
        kv_cache_bytes=per_token * max_model_len,
        gpu_type=gpu_type,
        gpus=gpus,
        gpu_memory_utilization=gpu_memory_utilization,
    )


def smallest_gpu_count_that_fits(estimate: MemoryEstimate) -> int | None:
    """The smallest tensor-parallel size (1, 2, 4, 8) on this GPU type that holds the model, if any."""
    return next((n for n in (1, 2, 4, 8) if estimate.with_gpus(n).fits), None)


def smallest_gpu_type_that_fits(
    estimate: MemoryEstimate, among: Collection[GpuType] | None = None
) -> GpuType | None:
    """The GPU type with the least memory that holds the model at the same tensor-parallel size, of
    `among` (the GPU types the stack's platform sells; None: every GpuType)."""
    candidates = [g for g in (among or GpuType) if estimate.with_gpu_type(g).fits]
    return min(candidates, key=lambda g: GPU_USABLE_MEMORY_GIB[g]) if candidates else None


def gib(value: float) -> str:
    """Round up to two decimals, so a reported need is never below the real one."""
    return f"{math.ceil(value * 100) / 100:.2f} GiB"


def gib_down(value: float) -> str:
    """Round down to two decimals, so a reported budget is never above the real one."""
    return f"{math.floor(value * 100) / 100:.2f} GiB"
