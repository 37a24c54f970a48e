"""GcpGpuNodePool: a GKE node pool whose machines carry the right GPUs with GKE's driver, that scales from
zero, admits only GPU workloads, buys spot only when asked, caches on local SSDs where the machine has them,
and places the model server on exactly its nodes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.choices import CapacityType, GpuDriverVersion, TaintEffect
from components.clusters.gcp.gpu_node_pool import (
    GCP_GPU_MACHINES,
    POOL_LABEL,
    GcpGpuNodePool,
    GcpGpuNodePoolArgs,
    node_config,
    region_of,
    validate_gcp_gpu_node_pool_args,
)
from components.gpu_node_pool import GpuPlacement, Taint
from inferstack.planning.recording import Recording, run_program
from stacks.gpus import GpuType
from tests.components.test_gpu_node_pool import tolerates, tolerates_all

T_NODE_POOL = "gcp:container/nodePool:NodePool"
NODE_SA = "gke-nodes@acme-inference.iam.gserviceaccount.com"
CLUSTER = "projects/acme-inference/locations/europe-west4/clusters/prod-llm"

# GKE's accelerator names per GPU model, written out here rather than read from the table.
ACCELERATORS = {
    GpuType.L4: {"nvidia-l4"},
    GpuType.A100_40GB: {"nvidia-tesla-a100"},
    GpuType.A100_80GB: {"nvidia-a100-80gb"},
    GpuType.H100_80GB: {"nvidia-h100-80gb", "nvidia-h100-mega-80gb"},
    GpuType.H200: {"nvidia-h200-141gb"},
}
EFFECTS = {"NO_SCHEDULE": TaintEffect.NO_SCHEDULE, "PREFER_NO_SCHEDULE": TaintEffect.PREFER_NO_SCHEDULE,
           "NO_EXECUTE": TaintEffect.NO_EXECUTE}  # fmt: skip


def pool_args(**changes: Any) -> GcpGpuNodePoolArgs:
    base = GcpGpuNodePoolArgs(
        cluster=CLUSTER,
        project="acme-inference",
        location="europe-west4",
        node_zones=["europe-west4-a", "europe-west4-b"],
        machine_type="g2-standard-8",
        capacity_type=CapacityType.ON_DEMAND,
        max_nodes=4,
        service_account_email=NODE_SA,
    )
    return dataclasses.replace(base, **changes)


def render(args: GcpGpuNodePoolArgs, name: str = "gpu") -> tuple[Recording, GcpGpuNodePool]:
    made: list[GcpGpuNodePool] = []
    rec = run_program(lambda: made.append(GcpGpuNodePool(name, args)))
    return rec, made[0]


def pool_of(rec: Recording) -> dict[str, Any]:
    return dict(rec.one(T_NODE_POOL).inputs)


def node_taints(pool: dict[str, Any]) -> list[Taint]:
    """The recorded GKE taints as Kubernetes would put them on the node."""
    return [Taint(t["key"], t["value"], EFFECTS[t["effect"]]) for t in pool["nodeConfig"]["taints"]]


# --- the machine table ---------------------------------------------------------------------------------


def test_the_table_covers_the_families_asked_for() -> None:
    expected = (
        {f"g2-standard-{n}" for n in (4, 8, 12, 16, 24, 32, 48, 96)}
        | {f"a2-highgpu-{n}g" for n in (1, 2, 4, 8)}
        | {"a2-megagpu-16g"}
        | {f"a2-ultragpu-{n}g" for n in (1, 2, 4, 8)}
        | {f"a3-highgpu-{n}g" for n in (1, 2, 4, 8)}
        | {"a3-megagpu-8g", "a3-ultragpu-8g"}
    )
    assert set(GCP_GPU_MACHINES) == expected


@pytest.mark.parametrize(("machine", "spec"), sorted(GCP_GPU_MACHINES.items()))
def test_each_machine_names_its_gpus_accelerator(machine: str, spec: Any) -> None:
    assert spec.accelerator in ACCELERATORS[spec.gpu], machine
    assert spec.count >= 1
    # The shape's suffix says how many GPUs it has on the A series (1g, 2g, ..., 16g).
    if machine.startswith(("a2-", "a3-")):
        assert machine.rsplit("-", 1)[1] == f"{spec.count}g"


@pytest.mark.parametrize(
    ("machine", "gpus", "ssds"),
    [
        ("g2-standard-4", 1, 0),
        ("g2-standard-24", 2, 0),
        ("g2-standard-32", 1, 0),
        ("g2-standard-48", 4, 0),
        ("g2-standard-96", 8, 0),
        ("a2-highgpu-8g", 8, 0),
        ("a2-megagpu-16g", 16, 0),
        ("a2-ultragpu-1g", 1, 1),
        ("a2-ultragpu-8g", 8, 8),
        ("a3-highgpu-1g", 1, 2),
        ("a3-highgpu-8g", 8, 16),
        ("a3-megagpu-8g", 8, 16),
        ("a3-ultragpu-8g", 8, 32),
    ],
)
def test_gpu_counts_and_bundled_local_ssds_match_the_published_shapes(
    machine: str, gpus: int, ssds: int
) -> None:
    spec = GCP_GPU_MACHINES[machine]
    assert (spec.count, spec.local_ssds) == (gpus, ssds)


def test_every_machine_type_gpu_is_one_a_stack_file_can_name() -> None:
    assert {spec.gpu for spec in GCP_GPU_MACHINES.values()} <= set(GpuType)
    assert all(isinstance(spec.gpu, GpuType) for spec in GCP_GPU_MACHINES.values())


# --- the node pool -------------------------------------------------------------------------------------


@pytest.mark.parametrize("machine", ["g2-standard-24", "a2-ultragpu-4g", "a3-highgpu-8g", "a3-ultragpu-8g"])
def test_accelerators_have_the_machines_type_and_count_and_gke_installs_the_driver(machine: str) -> None:
    rec, _ = render(pool_args(machine_type=machine, node_zones=[]))
    config = pool_of(rec)["nodeConfig"]
    spec = GCP_GPU_MACHINES[machine]
    assert config["machineType"] == machine
    assert config["guestAccelerators"] == [
        {
            "type": spec.accelerator,
            "count": spec.count,
            "gpuDriverInstallationConfig": {"gpuDriverVersion": "LATEST"},
        }
    ]


def test_driver_version_is_passed_through() -> None:
    rec, _ = render(pool_args(driver_version=GpuDriverVersion.DEFAULT))
    (accelerator,) = pool_of(rec)["nodeConfig"]["guestAccelerators"]
    assert accelerator["gpuDriverInstallationConfig"] == {"gpuDriverVersion": "DEFAULT"}


def test_pool_scales_from_zero_to_the_total_maximum() -> None:
    rec, _ = render(pool_args(max_nodes=6))
    pool = pool_of(rec)
    assert pool["autoscaling"]["totalMinNodeCount"] == 0
    assert pool["autoscaling"]["totalMaxNodeCount"] == 6
    # Total limits only: per-zone ones would multiply the cap by the number of zones.
    assert "minNodeCount" not in pool["autoscaling"] and "maxNodeCount" not in pool["autoscaling"]
    # The autoscaler owns the size: no fixed or initial count that would fight it.
    assert "nodeCount" not in pool and "initialNodeCount" not in pool


def test_a_minimum_is_kept_when_asked() -> None:
    rec, _ = render(pool_args(min_nodes=1, max_nodes=3))
    assert pool_of(rec)["autoscaling"]["totalMinNodeCount"] == 1


@pytest.mark.parametrize(
    ("capacity", "spot", "policy"),
    [(CapacityType.ON_DEMAND, False, "BALANCED"), (CapacityType.SPOT, True, "ANY")],
)
def test_spot_only_when_asked(capacity: CapacityType, spot: bool, policy: str) -> None:
    rec, _ = render(pool_args(capacity_type=capacity))
    pool = pool_of(rec)
    assert pool["nodeConfig"]["spot"] is spot
    assert pool["nodeConfig"].get("preemptible", False) is False  # the legacy 24-hour kind, never
    assert pool["autoscaling"]["locationPolicy"] == policy


def test_nodes_carry_the_gpu_taint_by_default() -> None:
    rec, _ = render(pool_args())
    assert pool_of(rec)["nodeConfig"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}
    ]


@pytest.mark.parametrize("machine", sorted(GCP_GPU_MACHINES))
def test_local_ssds_back_ephemeral_storage_exactly_where_the_machine_has_them(machine: str) -> None:
    config = node_config("gpu", pool_args(machine_type=machine))
    ssds = GCP_GPU_MACHINES[machine].local_ssds
    if ssds:
        assert config["ephemeral_storage_local_ssd_config"] == {"local_ssd_count": ssds}
    else:
        assert "ephemeral_storage_local_ssd_config" not in config
    assert "local_ssd_count" not in config  # never extra raw disks besides the bundled ones
    without = node_config("gpu", pool_args(machine_type=machine, local_ssd_cache=False))
    assert "ephemeral_storage_local_ssd_config" not in without


def test_local_ssd_config_reaches_the_recorded_pool() -> None:
    rec, _ = render(pool_args(machine_type="a3-highgpu-2g", node_zones=[]))
    assert pool_of(rec)["nodeConfig"]["ephemeralStorageLocalSsdConfig"] == {"localSsdCount": 4}


def test_upgrades_never_add_a_surge_gpu_node() -> None:
    rec, _ = render(pool_args())
    assert pool_of(rec)["upgradeSettings"] == {"strategy": "SURGE", "maxSurge": 0, "maxUnavailable": 1}
    assert pool_of(rec)["management"] == {"autoRepair": True, "autoUpgrade": True}


def test_nodes_are_hardened_and_use_the_gke_metadata_server() -> None:
    rec, _ = render(pool_args(disk_gib=300))
    config = pool_of(rec)["nodeConfig"]
    assert config["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert config["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
    assert config["imageType"] == "COS_CONTAINERD"
    assert config["metadata"]["disable-legacy-endpoints"] == "true"
    assert config["gcfsConfig"] == {"enabled": True}  # image streaming
    assert config["serviceAccount"] == NODE_SA
    assert config["oauthScopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert config["diskSizeGb"] == 300
    assert config["diskType"] in {"pd-balanced", "pd-ssd"}


def test_a3_ultra_boots_from_hyperdisk() -> None:
    assert node_config("gpu", pool_args(machine_type="a3-ultragpu-8g"))["disk_type"] == "hyperdisk-balanced"


def test_pool_goes_where_it_is_told() -> None:
    rec, _ = render(pool_args())
    pool = pool_of(rec)
    assert pool["cluster"] == CLUSTER
    assert pool["project"] == "acme-inference"
    assert pool["location"] == "europe-west4"
    assert pool["nodeLocations"] == ["europe-west4-a", "europe-west4-b"]
    rec, _ = render(pool_args(node_zones=[]))
    assert "nodeLocations" not in pool_of(rec)  # the cluster's zones


def test_pool_is_a_child_named_after_the_component_and_auto_named() -> None:
    rec, component = render(pool_args(), name="llm")
    pool = rec.one(T_NODE_POOL)
    assert pool.name == "llm-pool"
    assert "name" not in pool.inputs  # auto-named, so a replacement is created before the old one goes
    parent = next(r for r in rec.resources if r.type == "inferstack:gcp:GcpGpuNodePool")
    assert pool.parent == parent.urn
    assert component.node_pool is not None


# --- what the model server reads ----------------------------------------------------------------------


TAINTS = [
    Taint("nvidia.com/gpu", None, TaintEffect.NO_SCHEDULE),
    Taint("example.com/dedicated", "inference", TaintEffect.NO_EXECUTE),
]


def test_placement_lands_pods_on_the_pools_nodes_only() -> None:
    rec, pool = render(pool_args(taints=TAINTS, labels={"example.com/tier": "premium"}))
    placement: GpuPlacement = pool
    recorded = pool_of(rec)
    labels = recorded["nodeConfig"]["labels"]
    assert labels == {"example.com/tier": "premium", POOL_LABEL: "gpu"}
    assert placement.node_selector == {POOL_LABEL: "gpu"}
    assert placement.node_selector.items() <= labels.items()
    assert placement.gpu_resource_name == "nvidia.com/gpu"
    # Every taint GKE puts on the nodes is tolerated, and nothing more.
    assert tolerates_all(placement.tolerations, node_taints(recorded))
    assert recorded["nodeConfig"]["taints"][1] == {
        "key": "example.com/dedicated",
        "value": "inference",
        "effect": "NO_EXECUTE",
    }
    assert not any(
        tolerates(t, Taint("other.example/x", "y", TaintEffect.NO_SCHEDULE)) for t in placement.tolerations
    )


def test_two_pools_select_different_nodes() -> None:
    _, first = render(pool_args(), name="gpu-a")
    _, second = render(pool_args(), name="gpu-b")
    assert first.node_selector != second.node_selector


# --- validation ---------------------------------------------------------------------------------------


def test_good_args_have_no_problems() -> None:
    assert validate_gcp_gpu_node_pool_args(pool_args()) == []
    assert validate_gcp_gpu_node_pool_args(pool_args(location="europe-west4-a", node_zones=[])) == []


def fields_of(problems: list[str]) -> set[str]:
    return {p.split(":", 1)[0] for p in problems}


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"machine_type": "n1-standard-8"}, "machine_type"),
        ({"machine_type": "g2-standard-2"}, "machine_type"),
        ({"max_nodes": 0}, "max_nodes"),
        ({"min_nodes": -1}, "min_nodes"),
        ({"min_nodes": 5, "max_nodes": 4}, "max_nodes"),
        ({"node_zones": ["us-central1-a"]}, "node_zones"),
        ({"node_zones": ["europe-west4"]}, "node_zones"),
        ({"node_zones": ["europe-west4-a", "europe-west4-a"]}, "node_zones"),
        ({"location": "europe"}, "location"),
        ({"disk_gib": 50}, "disk_gib"),
        ({"labels": {POOL_LABEL: "other"}}, "labels"),
        ({"labels": {"kubernetes.io/hostname": "x"}}, "labels"),
        ({"labels": {"cloud.google.com/gke-nodepool": "x"}}, "labels"),
        ({"labels": {"bad key!": "x"}}, "labels"),
        ({"taints": [Taint("bad key!", None, TaintEffect.NO_SCHEDULE)]}, "taints[0].key"),
        ({"project": ""}, "project"),
    ],
)
def test_each_problem_names_its_field(changes: dict[str, Any], field_name: str) -> None:
    assert fields_of(validate_gcp_gpu_node_pool_args(pool_args(**changes))) == {field_name}


def test_zones_of_a_zonal_cluster_must_share_its_region() -> None:
    args = pool_args(location="europe-west4-a", node_zones=["europe-west4-b", "us-east1-b"])
    problems = validate_gcp_gpu_node_pool_args(args)
    assert len(problems) == 1 and "us-east1-b" in problems[0] and "europe-west4" in problems[0]


def test_allowed_label_domains_pass() -> None:
    labels = {"node.kubernetes.io/role": "gpu", "example.com/team": "ml", "tier": "a"}
    assert validate_gcp_gpu_node_pool_args(pool_args(labels=labels)) == []


def test_every_problem_is_reported_at_once() -> None:
    args = pool_args(machine_type="x1", max_nodes=0, disk_gib=10, node_zones=["us-east1-b"])
    assert fields_of(validate_gcp_gpu_node_pool_args(args)) == {
        "machine_type",
        "max_nodes",
        "disk_gib",
        "node_zones",
    }
    with pytest.raises(ValueError) as raised:
        GcpGpuNodePool("gpu", args)
    assert "4 problem(s)" in str(raised.value)


def test_the_components_name_must_be_a_label_value() -> None:
    with pytest.raises(ValueError, match="name: 'GPU_pool'"):
        GcpGpuNodePool("GPU_pool", pool_args())


@pytest.mark.parametrize(
    ("location", "region"),
    [("us-central1", "us-central1"), ("us-central1-f", "us-central1"), ("northamerica-northeast2-b",
     "northamerica-northeast2"), ("us", None), ("us-central1-f-x", None)],
)  # fmt: skip
def test_region_of(location: str, region: str | None) -> None:
    assert region_of(location) == region


@settings(max_examples=60, deadline=None)
@given(
    machine=st.sampled_from(sorted(GCP_GPU_MACHINES)),
    capacity=st.sampled_from(list(CapacityType)),
    bounds=st.tuples(st.integers(0, 50), st.integers(0, 50)).map(sorted),
    zones=st.sets(st.sampled_from("abcd"), max_size=3),
)
def test_any_valid_choice_is_accepted_and_shapes_the_nodes(
    machine: str, capacity: CapacityType, bounds: list[int], zones: set[str]
) -> None:
    low, high = bounds[0], max(bounds[1], 1)
    args = pool_args(
        machine_type=machine,
        capacity_type=capacity,
        min_nodes=low,
        max_nodes=high,
        node_zones=[f"europe-west4-{z}" for z in sorted(zones)],
    )
    assert validate_gcp_gpu_node_pool_args(args) == []
    config = node_config("gpu", args)
    assert config["spot"] is (capacity is CapacityType.SPOT)
    (accelerator,) = config["guest_accelerators"]
    assert accelerator["count"] == GCP_GPU_MACHINES[machine].count
