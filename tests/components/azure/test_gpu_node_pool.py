"""AzureGpuNodePool: an AKS user pool of a GPU size we accept, with AKS's driver and NVIDIA's device plugin,
that scales from zero, admits only GPU workloads, buys spot only when asked (with AKS's spot taint
tolerated), and places the model server on exactly its nodes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from components.choices import CapacityType, GpuType, TaintEffect
from components.clusters.azure.gpu_node_pool import (
    AzureGpuNodePool,
    AzureGpuNodePoolArgs,
    AzureOsDiskType,
    validate_azure_gpu_node_pool_args,
    validate_pool_name,
)
from components.clusters.azure.gpu_vm_sizes import AZURE_GPU_VM_SIZES, find_vm_size
from components.gpu_node_pool import POOL_LABEL, GpuPlacement, Taint
from inferstack.planning.recording import Recording, run_program
from tests.components.test_gpu_node_pool import selects, tolerates_all

T_AGENT_POOL = "azure-native:containerservice:AgentPool"
T_RELEASE = "kubernetes:helm.sh/v3:Release"
RG = "rg-llm-prod"
CLUSTER = "aks-llm-prod"
SPOT_TAINT = Taint("kubernetes.azure.com/scalesetpriority", "spot", TaintEffect.NO_SCHEDULE)


def pool_args(**changes: Any) -> AzureGpuNodePoolArgs:
    base = AzureGpuNodePoolArgs(
        resource_group_name=RG,
        cluster_name=CLUSTER,
        vm_size="Standard_NC24ads_A100_v4",
        max_nodes=4,
        zones=["1", "2"],
    )
    return dataclasses.replace(base, **changes)


def render(args: AzureGpuNodePoolArgs, name: str = "gpu") -> tuple[Recording, AzureGpuNodePool]:
    made: list[AzureGpuNodePool] = []
    rec = run_program(lambda: made.append(AzureGpuNodePool(name, args)))
    return rec, made[0]


def pool_of(rec: Recording) -> dict[str, Any]:
    return dict(rec.one(T_AGENT_POOL).inputs)


def parse_aks_taint(text: str) -> Taint:
    """AKS's key=value:Effect, read back the way the kubelet registers it."""
    key_value, effect = text.rsplit(":", 1)
    key, value = key_value.split("=", 1)
    return Taint(key, value, TaintEffect(effect))


# --- the VM size table ---------------------------------------------------------------------------------


def test_the_table_holds_the_full_gpu_sizes_asked_for_and_no_partition() -> None:
    assert set(AZURE_GPU_VM_SIZES) == {
        "Standard_NC40ads_H100_v5",
        "Standard_NC80adis_H100_v5",
        "Standard_NC24ads_A100_v4",
        "Standard_NC48ads_A100_v4",
        "Standard_NC96ads_A100_v4",
        "Standard_NV36ads_A10_v5",
        "Standard_NV72ads_A10_v5",
        "Standard_ND96isr_H100_v5",
    }
    # The 1/6, 1/3 and 1/2 A10 vGPU partitions are not whole GPUs.
    assert not {"Standard_NV6ads_A10_v5", "Standard_NV12ads_A10_v5", "Standard_NV18ads_A10_v5"} & set(
        AZURE_GPU_VM_SIZES
    )


@pytest.mark.parametrize(
    ("size", "gpu", "gpus", "gb"),
    [
        ("Standard_NC40ads_H100_v5", GpuType.H100_NVL, 1, 94),
        ("Standard_NC80adis_H100_v5", GpuType.H100_NVL, 2, 94),
        ("Standard_NC24ads_A100_v4", GpuType.A100_80GB, 1, 80),
        ("Standard_NC48ads_A100_v4", GpuType.A100_80GB, 2, 80),
        ("Standard_NC96ads_A100_v4", GpuType.A100_80GB, 4, 80),
        ("Standard_NV36ads_A10_v5", GpuType.A10, 1, 24),
        ("Standard_NV72ads_A10_v5", GpuType.A10, 2, 24),
        ("Standard_ND96isr_H100_v5", GpuType.H100_80GB, 8, 80),
    ],
)
def test_gpus_match_the_published_sizes(size: str, gpu: GpuType, gpus: int, gb: int) -> None:
    spec = AZURE_GPU_VM_SIZES[size]
    assert (spec.gpu, spec.gpus, spec.gpu_memory_gb) == (gpu, gpus, gb)
    assert spec.source.startswith("https://learn.microsoft.com/")


def test_aks_installs_the_driver_on_every_size_and_grid_only_on_the_a10s() -> None:
    assert all(s.aks_installs_driver for s in AZURE_GPU_VM_SIZES.values())
    assert {n for n, s in AZURE_GPU_VM_SIZES.items() if s.grid_driver} == {
        "Standard_NV36ads_A10_v5",
        "Standard_NV72ads_A10_v5",
    }


def test_sizes_are_found_in_any_case() -> None:
    assert find_vm_size("standard_nc24ads_a100_v4") == (
        "Standard_NC24ads_A100_v4",
        AZURE_GPU_VM_SIZES["Standard_NC24ads_A100_v4"],
    )
    assert find_vm_size("Standard_NV6ads_A10_v5") is None


# --- the agent pool ------------------------------------------------------------------------------------


def test_a_user_pool_of_the_size_on_this_cluster() -> None:
    rec, _ = render(pool_args(vm_size="standard_nc40ads_h100_v5"))
    pool = pool_of(rec)
    assert pool["resourceGroupName"] == RG
    assert pool["resourceName"] == CLUSTER
    assert pool["agentPoolName"] == "gpu"
    assert pool["mode"] == "User"
    assert pool["type"] == "VirtualMachineScaleSets"
    assert pool["vmSize"] == "Standard_NC40ads_H100_v5"  # the table's spelling
    assert pool["osType"] == "Linux" and pool["osSKU"] == "Ubuntu"
    assert pool["availabilityZones"] == ["1", "2"]


def test_pool_scales_from_zero_to_the_maximum() -> None:
    rec, _ = render(pool_args(max_nodes=6))
    pool = pool_of(rec)
    assert pool["enableAutoScaling"] is True
    assert (pool["minCount"], pool["maxCount"], pool["count"]) == (0, 6, 0)
    assert pool["scaleDownMode"] == "Delete"


def test_aks_installs_the_driver_and_the_device_plugin_chart_runs_on_the_pool() -> None:
    rec, placement = render(pool_args())
    assert pool_of(rec)["gpuProfile"] == {"driver": "Install"}
    release = rec.one(T_RELEASE, "-device-plugin")
    assert release.inputs["chart"] == "nvidia-device-plugin"
    values = release.inputs["values"]
    labels = pool_of(rec)["nodeLabels"]
    assert values["nodeSelector"] == {POOL_LABEL: "gpu"}
    assert selects(values["affinity"], labels)
    taints = [parse_aks_taint(t) for t in pool_of(rec)["nodeTaints"]]
    assert tolerates_all(values["tolerations"], taints)
    assert placement.gpu_resource_name == "nvidia.com/gpu"


def test_nodes_carry_the_gpu_taint_and_the_pool_label() -> None:
    rec, _ = render(pool_args(labels={"example.com/team": "ml"}))
    pool = pool_of(rec)
    assert pool["nodeTaints"] == ["nvidia.com/gpu=present:NoSchedule"]
    assert pool["nodeLabels"] == {"example.com/team": "ml", POOL_LABEL: "gpu"}


def test_on_demand_is_regular_priority_without_spot_settings() -> None:
    rec, placement = render(pool_args())
    pool = pool_of(rec)
    assert pool["scaleSetPriority"] == "Regular"
    assert "scaleSetEvictionPolicy" not in pool and "spotMaxPrice" not in pool
    assert not any(t["key"] == SPOT_TAINT.key for t in placement.tolerations)


def test_spot_deletes_on_eviction_pays_up_to_on_demand_and_is_tolerated() -> None:
    rec, placement = render(pool_args(capacity_type=CapacityType.SPOT))
    pool = pool_of(rec)
    assert pool["scaleSetPriority"] == "Spot"
    assert pool["scaleSetEvictionPolicy"] == "Delete"
    assert pool["spotMaxPrice"] == -1
    taints = [parse_aks_taint(t) for t in pool["nodeTaints"]]
    assert SPOT_TAINT in taints  # as AKS reads it back, so no drift
    assert pool["nodeLabels"]["kubernetes.azure.com/scalesetpriority"] == "spot"
    # The model server and the device plugin both land on spot nodes.
    assert tolerates_all(placement.tolerations, taints)
    values = rec.one(T_RELEASE, "-device-plugin").inputs["values"]
    assert tolerates_all(values["tolerations"], taints)


def test_the_model_server_lands_on_exactly_this_pool() -> None:
    rec, pool_component = render(pool_args(), name="llm-gpu")
    placement: GpuPlacement = pool_component  # mypy checks the protocol
    pool = pool_of(rec)
    assert placement.node_selector == {POOL_LABEL: "llm-gpu"}
    assert pool["nodeLabels"][POOL_LABEL] == "llm-gpu"
    assert tolerates_all(placement.tolerations, [parse_aks_taint(t) for t in pool["nodeTaints"]])


def test_nodes_are_hardened() -> None:
    rec, _ = render(pool_args(encryption_at_host=True))
    pool = pool_of(rec)
    assert pool["enableNodePublicIP"] is False
    assert pool["securityProfile"] == {"sshAccess": "Disabled"}
    assert pool["enableEncryptionAtHost"] is True
    assert pool_of(render(pool_args())[0])["enableEncryptionAtHost"] is False  # explicit either way


def test_upgrades_never_add_a_surge_gpu_node() -> None:
    rec, _ = render(pool_args())
    assert pool_of(rec)["upgradeSettings"] == {"maxSurge": "0", "maxUnavailable": "1"}


def test_os_disk_and_pods() -> None:
    rec, _ = render(pool_args(os_disk_gib=512, max_pods=40))
    pool = pool_of(rec)
    assert (pool["osDiskType"], pool["osDiskSizeGB"], pool["maxPods"]) == ("Managed", 512, 40)
    assert pool["kubeletDiskType"] == "OS"


def test_a_replacement_deletes_the_old_pool_first_and_names_are_prefixed() -> None:
    rec, _ = render(pool_args(), name="llm-gpu")
    names = sorted(r.name for r in rec.resources if r.custom)
    assert names == ["llm-gpu-device-plugin", "llm-gpu-pool"]


def test_subnet_and_version_are_passed_only_when_given() -> None:
    pool = pool_of(render(pool_args())[0])
    assert "vnetSubnetID" not in pool and "orchestratorVersion" not in pool
    subnet = (
        f"/subscriptions/0000/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/v/subnets/gpu"
    )
    pool = pool_of(render(pool_args(vnet_subnet_id=subnet, orchestrator_version="1.34.2"))[0])
    assert pool["vnetSubnetID"] == subnet
    assert pool["orchestratorVersion"] == "1.34.2"


# --- validation --------------------------------------------------------------------------------------


def fields_of(problems: list[str]) -> list[str]:
    return [p.split(":", 1)[0] for p in problems]


def test_good_args_have_no_problems() -> None:
    assert validate_azure_gpu_node_pool_args(pool_args()) == []
    assert validate_azure_gpu_node_pool_args(pool_args(capacity_type=CapacityType.SPOT, zones=[])) == []
    ephemeral = pool_args(vm_size="Standard_NC40ads_H100_v5", os_disk_type=AzureOsDiskType.EPHEMERAL)
    assert validate_azure_gpu_node_pool_args(ephemeral) == []


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"vm_size": "Standard_D8s_v5"}, "vm_size"),
        ({"vm_size": "Standard_NV6ads_A10_v5"}, "vm_size"),  # a sixth of an A10
        ({"max_nodes": 0}, "max_nodes"),
        ({"max_nodes": 1001}, "max_nodes"),
        ({"agent_pool_name": "GPU"}, "agent_pool_name"),
        ({"agent_pool_name": "gpu-pool"}, "agent_pool_name"),
        ({"agent_pool_name": "gpupoolforllms"}, "agent_pool_name"),  # 14 characters
        ({"zones": ["4"]}, "zones"),
        ({"zones": ["westeurope-1"]}, "zones"),
        ({"zones": ["1", "1"]}, "zones"),
        ({"os_disk_gib": 64}, "os_disk_gib"),
        ({"os_disk_gib": 4096}, "os_disk_gib"),
        ({"max_pods": 5}, "max_pods"),
        ({"max_pods": 251}, "max_pods"),
        ({"labels": {"kubernetes.azure.com/mode": "user"}}, "labels"),
        ({"labels": {POOL_LABEL: "x"}}, "labels"),
        ({"taints": [SPOT_TAINT]}, "taints[0]"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], field_name: str) -> None:
    assert fields_of(validate_azure_gpu_node_pool_args(pool_args(**changes))) == [field_name]


def test_an_ephemeral_os_disk_must_fit_the_temp_disk() -> None:
    # NC24ads A100 v4 has a 64 GiB temp disk: a 256 GiB ephemeral OS disk cannot live there.
    (problem,) = validate_azure_gpu_node_pool_args(pool_args(os_disk_type=AzureOsDiskType.EPHEMERAL))
    assert problem.startswith("os_disk_gib:") and "64 GiB" in problem and "Managed" in problem


@pytest.mark.parametrize("name", ["GPU", "gpu_pool", "-gpu", "x" * 64])
def test_component_name_must_be_a_label_value(name: str) -> None:
    assert fields_of(validate_pool_name(name)) == ["name"]


def test_constructor_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        AzureGpuNodePool("gpu", pool_args(vm_size="Standard_D8s_v5", max_nodes=0, zones=["9"]))
    message = str(raised.value)
    assert "vm_size" in message and "max_nodes" in message and "zones" in message
