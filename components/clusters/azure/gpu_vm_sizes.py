"""Azure VM sizes with NVIDIA GPUs that an AKS GPU node pool may use: which GPU, how many, and the host.

Plain data with no Pulumi import, so the stack schema (stacks/config_azure.py) and the cost table can check
a size without loading the Azure SDK.

Sources (learn.microsoft.com, "Sizes in series" tables, Accelerators / Basics tabs; the same text is in
MicrosoftDocs/azure-compute-docs articles/virtual-machines/sizes/gpu-accelerated/):

- NCads_H100_v5: Standard_NC40ads_H100_v5 1 GPU, 94 GB, 40 vCPUs, 320 GB; Standard_NC80adis_H100_v5 2 GPUs,
  188 GB, 80 vCPUs, 640 GB (ncadsh100v5-series). The GPU is the H100 NVL (PCIe, 94 GB).
- NC_A100_v4: Standard_NC24ads/48ads/96ads_A100_v4 with 1/2/4 A100 80 GB PCIe, 24/48/96 vCPUs,
  220/440/880 GB (nca100v4-series).
- NVadsA10_v5: Standard_NV36ads_A10_v5 1 GPU 24 GB, 36 vCPUs, 440 GiB; Standard_NV36adms_A10_v5 (the same GPU, 880 GiB) is left out: no price in the table's source
  GPU with 880 GiB; Standard_NV72ads_A10_v5 2 GPUs 48 GB, 72 vCPUs, 880 GiB (nvadsa10v5-series).
- ND-H100-v5: Standard_ND96isr_H100_v5 8 H100 80 GB (SXM, NVLink), 96 vCPUs, 1900 GB (ndh100v5-series).
- Temp disk sizes: each page's Local Storage tab (GiB).
- Quota families: the vCPU quota names `az vm list-usage` reports for these series.

Left out on purpose: Standard_NV6ads/NV12ads/NV18ads_A10_v5. Their Accelerators column reads 1/6, 1/3 and
1/2: each is a time-sliced vGPU partition of one A10 (4, 8 or 12 GB of frame buffer) driven by the GRID
guest driver. The guest sees the partition as one whole device, so NVIDIA's device plugin would advertise
`nvidia.com/gpu: 1` for a sixth of a GPU: a pod asking for one GPU would get 4 GB and a shared core, and
the GPU-memory feasibility check (which assumes whole GPUs) would be wrong. Too small for serving anyway.

Driver: AKS installs the NVIDIA driver itself on the sizes in its GPU list (AKS "Use GPUs for
compute-intensive workloads": "While the NVIDIA drivers are installed by default on GPU capable nodes, you
need to install the device plugin"; "If a GPU VM size is not in our list of supported VM sizes, AKS does
not install the necessary GPU software components"). The list is AgentBaker's (Azure/AgentBaker
pkg/agent/datamodel gpu_components.go, NvidiaEnabledSKUs): every size below is on it; the NVads A10 v5
sizes are also on its ConvergedGPUDriverSizes list, i.e. AKS installs the GRID (converged) driver there
instead of the CUDA data-center driver, which serves CUDA workloads too.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.choices import GpuType

LEARN_SIZES = "https://learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/"


@dataclass(frozen=True)
class AzureGpuVmSize:
    """An Azure VM size with its GPUs attached."""

    gpu: GpuType  # the GPU model, as stack files name it
    gpus: int  # GPUs per VM (whole GPUs; partitioned sizes are not in the table)
    gpu_memory_gb: int  # memory per GPU, GB as the size page prints it
    vcpus: int
    memory_gib: int  # host memory per VM, as the size page prints it
    temp_disk_gib: int  # local temporary (resource) disk: the most an Ephemeral OS disk may take there
    family_quota: str  # the vCPU quota family a subscription needs headroom in (az vm list-usage)
    aks_installs_driver: bool  # AKS installs the NVIDIA driver on it (gpuProfile.driver Install)
    grid_driver: bool  # the driver AKS installs there is the GRID (converged) one, not the CUDA one
    source: str  # the learn.microsoft.com size page


def _sizes() -> dict[str, AzureGpuVmSize]:
    h100_nvl = LEARN_SIZES + "ncadsh100v5-series"
    a100 = LEARN_SIZES + "nca100v4-series"
    a10 = LEARN_SIZES + "nvadsa10v5-series"
    nd_h100 = LEARN_SIZES + "ndh100v5-series"
    return {
        "Standard_NC40ads_H100_v5": AzureGpuVmSize(
            GpuType.H100_NVL, 1, 94, 40, 320, 3576, "StandardNCadsH100v5Family", True, False, h100_nvl
        ),
        "Standard_NC80adis_H100_v5": AzureGpuVmSize(
            GpuType.H100_NVL, 2, 94, 80, 640, 7152, "StandardNCadsH100v5Family", True, False, h100_nvl
        ),
        "Standard_NC24ads_A100_v4": AzureGpuVmSize(
            GpuType.A100_80GB, 1, 80, 24, 220, 64, "StandardNCADSA100v4Family", True, False, a100
        ),
        "Standard_NC48ads_A100_v4": AzureGpuVmSize(
            GpuType.A100_80GB, 2, 80, 48, 440, 128, "StandardNCADSA100v4Family", True, False, a100
        ),
        "Standard_NC96ads_A100_v4": AzureGpuVmSize(
            GpuType.A100_80GB, 4, 80, 96, 880, 256, "StandardNCADSA100v4Family", True, False, a100
        ),
        "Standard_NV36ads_A10_v5": AzureGpuVmSize(
            GpuType.A10, 1, 24, 36, 440, 1440, "StandardNVADSA10v5Family", True, True, a10
        ),
        "Standard_NV72ads_A10_v5": AzureGpuVmSize(
            GpuType.A10, 2, 24, 72, 880, 2880, "StandardNVADSA10v5Family", True, True, a10
        ),
        "Standard_ND96isr_H100_v5": AzureGpuVmSize(
            GpuType.H100_80GB, 8, 80, 96, 1900, 1024, "standardNDSH100v5Family", True, False, nd_h100
        ),
    }


#: GPU VM sizes an AKS GPU node pool accepts, by the VM size name AKS takes as vmSize (case as Azure writes
#: it; AKS compares sizes case-insensitively, and so does `find_vm_size`).
AZURE_GPU_VM_SIZES: dict[str, AzureGpuVmSize] = _sizes()


def find_vm_size(name: str) -> tuple[str, AzureGpuVmSize] | None:
    """The table's spelling and entry for a VM size name in any case; None when it is not in the table."""
    for known, size in AZURE_GPU_VM_SIZES.items():
        if known.lower() == name.lower():
            return known, size
    return None
