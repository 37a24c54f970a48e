"""Does the model fit the volume `fetch` writes it to? A pure rule the stack schema runs at plan time.

The model server's `fetch` init container copies every model — hf://, s3://, gs:// and file:// alike
(a file:// model is read from its read-only claim and copied) — into the `model-cache` emptyDir, whose
`sizeLimit` is serving.model_cache_size (components/model_server.py). The kubelet evicts a pod whose
emptyDir grows past its sizeLimit (Kubernetes docs, "Local ephemeral storage": the pod is evicted when
an emptyDir exceeds its limit), so a model larger than the cache never starts: the new pod fetches again
and is evicted again. The launcher also checks the real free space before downloading
(model_image/fetch.py check_free_space), but only this rule fails before anything is deployed.
"""

from __future__ import annotations

import math

from stacks.config_base import quantity_bytes
from stacks.gpus import GIB, weight_bytes_per_parameter

#: The cache must hold the weights plus this share: tokenizer, config and chat-template files (MBs),
#: the verified record, and parameter counts that model names round down (Llama 3.1 "70B" has 70.6 B
#: parameters, "8B" 8.03 B: up to 1%). 5% covers both with room for file-system block rounding.
CACHE_HEADROOM = 1.05


def model_cache_problem(
    *, name: str, parameters_b: float, dtype: str, quantization: str | None, model_cache_size: str
) -> str | None:
    """Why `model_cache_size` (a Kubernetes quantity, e.g. "100Gi") cannot hold the model, or None.

    The checkpoint's size is parameters x bytes per weight at the dtype, or at the quantization when one
    is set (stacks/gpus.py DTYPE_BYTES / QUANTIZATION_BYTES; `auto` counts as bf16). A checkpoint stored
    at a wider dtype than the engine loads (fp32 files served as bf16) is bigger than this: the launcher's
    free-space check catches that at fetch time.
    """
    per_weight = weight_bytes_per_parameter(dtype, quantization)
    weights = parameters_b * 1e9 * per_weight
    needed = weights * CACHE_HEADROOM
    try:
        size = quantity_bytes(model_cache_size)
    except ValueError:
        return None  # the field's own validator reports a malformed quantity
    if needed <= size:
        return None
    at = f"quantization {quantization}" if quantization else f"dtype {dtype}"
    ways = [f"raise serving.model_cache_size to at least {math.ceil(needed / GIB)}Gi"]
    if not quantization and per_weight > 1:
        ways.append("serve a quantized checkpoint (model.quantization: fp8 stores 1 byte per weight)")
    return (
        f"{name} does not fit the model cache: {parameters_b:g}B parameters x {per_weight:g} bytes ({at}) = "
        f"{weights / 1e9:.1f} GB ({weights / GIB:.1f} GiB) of weights, {needed / GIB:.1f} GiB with "
        f"{round((CACHE_HEADROOM - 1) * 100)}% for tokenizer and config files, but serving.model_cache_size "
        f"is {model_cache_size} ({size / GIB:.1f} GiB); fetch would fill the volume and the kubelet would "
        f"evict the pod, again on every retry: {', or '.join(ways)}"
    )
