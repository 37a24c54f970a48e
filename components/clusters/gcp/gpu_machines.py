"""GCE machine types with NVIDIA GPUs: which GPU, how many, and what local SSDs come with them.

Plain data with no Pulumi import, so the stack schema (stacks/config_gcp.py) can check a machine type
without loading the GCP SDK.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.choices import GpuType


@dataclass(frozen=True)
class GpuMachine:
    """A GCE machine type with its GPUs attached."""

    gpu: GpuType  # the GPU model, as stack files name it
    accelerator: str  # GKE's accelerator type for it
    count: int  # GPUs per machine
    local_ssds: int  # 375 GiB local SSDs the machine type comes with (0: none bundled)
    boot_disk_type: str = "pd-balanced"  # a boot disk type the machine series supports


def _gpu_machines() -> dict[str, GpuMachine]:
    def shapes(
        prefix: str,
        gpu: GpuType,
        accelerator: str,
        sizes: dict[str, tuple[int, int]],
        disk: str = "pd-balanced",
    ) -> dict[str, GpuMachine]:
        return {
            f"{prefix}-{suffix}": GpuMachine(gpu, accelerator, count, ssds, disk)
            for suffix, (count, ssds) in sizes.items()
        }

    l4 = {"4": 1, "8": 1, "12": 1, "16": 1, "24": 2, "32": 1, "48": 4, "96": 8}
    return {
        **shapes("g2-standard", GpuType.L4, "nvidia-l4", {size: (gpus, 0) for size, gpus in l4.items()}),
        **shapes(
            "a2-highgpu",
            GpuType.A100_40GB,
            "nvidia-tesla-a100",
            {"1g": (1, 0), "2g": (2, 0), "4g": (4, 0), "8g": (8, 0)},
        ),
        "a2-megagpu-16g": GpuMachine(GpuType.A100_40GB, "nvidia-tesla-a100", 16, 0),
        **shapes(
            "a2-ultragpu",
            GpuType.A100_80GB,
            "nvidia-a100-80gb",
            {"1g": (1, 1), "2g": (2, 2), "4g": (4, 4), "8g": (8, 8)},
        ),
        **shapes(
            "a3-highgpu",
            GpuType.H100_80GB,
            "nvidia-h100-80gb",
            {"1g": (1, 2), "2g": (2, 4), "4g": (4, 8), "8g": (8, 16)},
        ),
        "a3-megagpu-8g": GpuMachine(GpuType.H100_80GB, "nvidia-h100-mega-80gb", 8, 16),
        "a3-ultragpu-8g": GpuMachine(GpuType.H200, "nvidia-h200-141gb", 8, 32, "hyperdisk-balanced"),
    }


#: Machine types with NVIDIA GPUs, by GCE machine type. GPU counts and accelerator names: Compute Engine's
#: "GPU machine types" page and Cluster Toolkit's gpu-definition module; bundled local SSDs: the same page's
#: "Attached Local SSD" column divided by 375 GiB (A3 High/Mega 16 and A3 Ultra 32 on the 8-GPU shapes also
#: match Cluster Toolkit's local-ssd table). G2 and A2 Standard only *support* optional local SSDs, so they
#: count 0. A3 Ultra boots from Hyperdisk Balanced (the boot disk Vertex AI defaults to on it, where every
#: other series defaults to Persistent Disk). Left out: N1 + T4 (GPUs are attached to a
#: chosen N1 shape, not implied by the machine type), A3 Edge (a few regions only), A4/A4X/G4 (no GpuType for their GPUs yet).
GCP_GPU_MACHINES: dict[str, GpuMachine] = _gpu_machines()
