"""The GPU price table and the per-stack cost estimate."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.choices import CapacityType, GpuType
from components.clusters.azure.gpu_vm_sizes import AZURE_GPU_VM_SIZES
from components.clusters.gcp.gpu_machines import GCP_GPU_MACHINES
from inferstack.planning.plan import plan_stack
from inferstack.reporting.cost import (
    HOURS_PER_MONTH,
    PriceBasis,
    PriceTable,
    PriceTableError,
    aws_family,
    azure_family,
    azure_plan_cost,
    cpu_cores,
    estimate_cost,
    gcp_family,
    load_price_table,
    parse_price_table,
)
from inferstack.reporting.summary import render_summary
from stacks.config import Platform, StackConfig, load_stack_file, parse_stack_config
from stacks.config_aws import AWS_GPU_FAMILIES
from tests.test_config import minimal
from tests.test_config_aws import aws_stack
from tests.test_config_gcp import gcp_stack

ROOT = Path(__file__).resolve().parents[1]
STACK_FILES = sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))
TABLE = load_price_table()


def raw_table() -> dict[str, Any]:
    text = (ROOT / "inferstack" / "reporting" / "prices.yaml").read_text(encoding="utf-8")
    return copy.deepcopy(yaml.safe_load(text))


def aws_price(instance_type: str) -> float:
    return TABLE.aws.machines[instance_type].on_demand_per_hour


# --- the table ------------------------------------------------------------------------------------


def test_every_gcp_machine_type_has_a_price_for_its_gpu() -> None:
    missing = sorted(set(GCP_GPU_MACHINES) - set(TABLE.gcp.machines))
    assert not missing, f"no price for GCP machine types: {', '.join(missing)}"
    for name, spec in GCP_GPU_MACHINES.items():
        priced = TABLE.gcp.machines[name]
        assert (priced.gpu, priced.gpus) == (spec.gpu, spec.count), name


def test_every_azure_gpu_vm_size_has_a_price_for_its_gpus() -> None:
    table = load_price_table()
    for size, spec in AZURE_GPU_VM_SIZES.items():
        assert size in table.azure.machines, f"{size} is accepted (gpu_vm_sizes.py) but has no price"
        assert table.azure.machines[size].gpus == spec.gpus, size


def test_every_aws_family_has_a_priced_instance_with_its_gpu() -> None:
    priced_families = {aws_family(t) for t in TABLE.aws.machines}
    missing = sorted(set(AWS_GPU_FAMILIES) - priced_families)
    assert not missing, f"no price for AWS instance families: {', '.join(missing)}"
    for name, machine in TABLE.aws.machines.items():
        assert aws_family(name) in AWS_GPU_FAMILIES, f"{name}: not a family the stack schema knows"
        assert machine.gpu is AWS_GPU_FAMILIES[aws_family(name)], name


def test_every_price_and_discount_names_its_source_and_date() -> None:
    for prices in (TABLE.aws, TABLE.gcp):
        sources = [(m.source, m.date) for m in prices.machines.values()]
        sources += [(d.source, d.date) for d in prices.spot_discounts.values()]
        for source, date in sources:
            assert source.startswith("https://")
            assert date.year >= 2025
    raw = raw_table()
    for cloud in ("aws", "gcp"):
        for section in ("machines", "spot_discounts"):
            for name, fields in raw[cloud][section].items():
                assert {"source", "date"} <= set(fields), f"{cloud}.{section}.{name}"


def test_every_family_in_the_table_has_a_spot_discount() -> None:
    assert {aws_family(t) for t in TABLE.aws.machines} <= set(TABLE.aws.spot_discounts)
    assert {gcp_family(m) for m in TABLE.gcp.machines} <= set(TABLE.gcp.spot_discounts)


def test_a_missing_source_is_an_error_naming_the_entry() -> None:
    raw = raw_table()
    del raw["aws"]["machines"]["g6.xlarge"]["source"]
    with pytest.raises(PriceTableError, match=r"aws\.machines\.g6\.xlarge\.source"):
        parse_price_table(raw)


def test_an_unknown_key_or_a_bad_gpu_is_rejected() -> None:
    raw = raw_table()
    raw["gcp"]["machines"]["g2-standard-8"]["spot"] = 0.3
    raw["aws"]["machines"]["g5.xlarge"]["gpu"] = "nvidia-a100"  # neither a100-40gb nor a100-80gb
    with pytest.raises(PriceTableError) as caught:
        parse_price_table(raw)
    assert "gcp.machines.g2-standard-8.spot" in str(caught.value)
    assert "aws.machines.g5.xlarge.gpu" in str(caught.value)


def test_a_family_without_spot_discount_is_an_error() -> None:
    raw = raw_table()
    del raw["gcp"]["spot_discounts"]["a3"]
    with pytest.raises(PriceTableError, match=r"gcp\.machines\.a3-highgpu-8g: no spot_discounts entry"):
        parse_price_table(raw)


def test_an_estimate_must_say_how_it_was_made() -> None:
    raw = raw_table()
    entry = raw["aws"]["machines"]["g6.xlarge"]
    entry["basis"] = "estimate"
    entry.pop("note", None)
    with pytest.raises(PriceTableError, match=r"aws\.machines\.g6\.xlarge: .*add a `note` saying how"):
        parse_price_table(raw)
    del raw["aws"]["machines"]["g6.xlarge"]["basis"]
    with pytest.raises(PriceTableError, match=r"aws\.machines\.g6\.xlarge\.basis"):
        parse_price_table(raw)


def test_price_list_figures_point_at_a_snapshot_pinned_by_commit() -> None:
    # "price-list" claims the figure can be found again: at a fixed commit, not a page that changes.
    for cloud in (TABLE.aws, TABLE.gcp):
        for name, entry in [*cloud.machines.items(), *cloud.spot_discounts.items()]:
            if entry.basis is PriceBasis.PRICE_LIST:
                assert re.search(r"/blob/[0-9a-f]{40}/", entry.source), name


def test_gcp_machine_prices_are_their_two_listed_parts() -> None:
    # GCP lists a machine's vCPU+memory and its GPUs as separate SKUs; the note keeps both figures.
    parts = re.compile(r"^vCPU\+memory ([0-9.]+) \+ GPUs \((\d+) x [\w-]+\) ([0-9.]+)$")
    listed = {n: m for n, m in TABLE.gcp.machines.items() if m.basis is PriceBasis.PRICE_LIST}
    assert len(listed) >= 15
    for name, machine in listed.items():
        match = parts.match(machine.note or "")
        assert match, f"{name}: note does not show the two SKUs"
        assert int(match.group(2)) == machine.gpus, name
        assert machine.on_demand_per_hour == pytest.approx(
            float(match.group(1)) + float(match.group(3)), abs=1e-5
        )


def with_basis(path: tuple[str, str, str]) -> PriceTable:
    raw = raw_table()
    cloud, section, name = path
    raw[cloud][section][name].update(basis="estimate", note="made up for the test")
    return parse_price_table(raw)


def test_a_cost_from_an_estimated_price_says_so() -> None:
    cfg = config(gcp_stack())
    listed = estimate_cost(cfg)
    assert listed.machine == "g2-standard-8" and not listed.estimated
    assert "an estimate" not in listed.summary_line()
    estimated = estimate_cost(cfg, with_basis(("gcp", "machines", "g2-standard-8")))
    assert (
        estimated.estimated
        and "(on-demand price in us-central1, an estimate, inferstack/reporting/prices.yaml: "
        in estimated.summary_line()
    )
    assert estimated.per_hour_max == listed.per_hour_max


def test_an_estimated_spot_discount_marks_only_spot_costs() -> None:
    table = with_basis(("gcp", "spot_discounts", "g2"))
    on_demand = estimate_cost(config(gcp_stack()), table)
    spot_cfg = config(gcp_stack(gcp={"project": "acme-inference", "gpu_nodes": {"capacity_type": "spot"}}))
    assert not on_demand.estimated
    assert estimate_cost(spot_cfg, table).estimated
    assert not estimate_cost(spot_cfg).estimated


@pytest.mark.parametrize(("quantity", "cores"), [("4", 4.0), ("500m", 0.5), ("1.5", 1.5), ("7", 7.0)])
def test_cpu_quantities(quantity: str, cores: float) -> None:
    assert cpu_cores(quantity) == cores


# --- the estimate ---------------------------------------------------------------------------------


SMALL = {"gpu_type": "nvidia-l4", "cpu": "3", "memory": "12Gi"}  # fits g6.xlarge (4 vCPU, 16 GiB)


def config(values: dict[str, Any]) -> StackConfig:
    return parse_stack_config(values)


def test_aws_on_demand_picks_the_cheapest_fitting_g6_and_multiplies_by_replicas() -> None:
    cost = estimate_cost(config(aws_stack(serving=SMALL, autoscaling={"min_replicas": 1, "max_replicas": 3})))
    assert cost.machine == "g6.xlarge"
    assert cost.capacity is CapacityType.ON_DEMAND
    price = aws_price("g6.xlarge")
    assert cost.per_hour_min == pytest.approx(price)
    assert cost.per_hour_max == pytest.approx(3 * price)
    assert cost.per_month_max == pytest.approx(3 * price * HOURS_PER_MONTH)
    assert (cost.gpu_hours_per_day_min, cost.gpu_hours_per_day_max) == (24, 72)
    assert cost.source == TABLE.aws.machines["g6.xlarge"].source
    assert cost.date == TABLE.aws.machines["g6.xlarge"].date


def test_spot_first_is_cheaper_than_on_demand_and_uses_the_family_discount() -> None:
    spot = estimate_cost(
        config(aws_stack(aws={"region": "eu-west-1", "gpu_nodes": {"capacity_types": ["spot", "on-demand"]}}))
    )
    on_demand = estimate_cost(
        config(aws_stack(aws={"region": "eu-west-1", "gpu_nodes": {"capacity_types": ["on-demand", "spot"]}}))
    )
    assert spot.capacity is CapacityType.SPOT and on_demand.capacity is CapacityType.ON_DEMAND
    assert spot.per_hour_max is not None and on_demand.per_hour_max is not None
    assert spot.per_hour_max < on_demand.per_hour_max
    discount = TABLE.aws.spot_discounts["g6"].discount
    assert spot.per_hour_max == pytest.approx(on_demand.per_hour_max * (1 - discount))


def test_gcp_spot_is_cheaper_than_on_demand() -> None:
    on_demand = estimate_cost(config(gcp_stack()))
    spot = estimate_cost(
        config(
            gcp_stack(
                gcp={
                    "project": "acme-inference",
                    "region": "europe-west4",
                    "gpu_nodes": {"capacity_type": "spot"},
                }
            )
        )
    )
    assert on_demand.per_hour_max is not None and spot.per_hour_max is not None
    assert spot.per_hour_max < on_demand.per_hour_max
    assert on_demand.machine == spot.machine == "g2-standard-8"


def test_gcp_uses_the_configured_machine_type() -> None:
    cost = estimate_cost(config(gcp_stack(autoscaling={"min_replicas": 2, "max_replicas": 5})))
    price = TABLE.gcp.machines["g2-standard-8"].on_demand_per_hour
    assert (cost.machine, cost.region) == ("g2-standard-8", TABLE.gcp.region)
    assert cost.per_hour_min == pytest.approx(2 * price)
    assert cost.per_month_max == pytest.approx(5 * price * HOURS_PER_MONTH)


def test_min_replicas_zero_costs_nothing_at_min() -> None:
    cost = estimate_cost(config(aws_stack(autoscaling={"min_replicas": 0, "max_replicas": 2})))
    assert (cost.per_hour_min, cost.per_month_min, cost.gpu_hours_per_day_min) == (0, 0, 0)
    assert cost.per_hour_max is not None and cost.per_hour_max > 0


def test_fixed_replicas_give_the_same_cost_at_min_and_max() -> None:
    cost = estimate_cost(config(aws_stack(autoscaling={"enabled": False}, serving={**SMALL, "replicas": 3})))
    assert cost.per_hour_min == cost.per_hour_max == pytest.approx(3 * aws_price("g6.xlarge"))


def test_the_chooser_needs_enough_gpus_per_replica() -> None:
    cost = estimate_cost(config(aws_stack(serving={"gpu_type": "nvidia-l4", "gpus_per_replica": 2})))
    assert cost.machine == "g6.12xlarge"  # the cheapest g6 with >= 2 GPUs (4 x L4)
    assert cost.gpu_hours_per_day_max == 2 * 4 * 24


def test_the_chooser_needs_enough_cpu_and_memory() -> None:
    more_cpu = estimate_cost(
        config(aws_stack(serving={"gpu_type": "nvidia-l4", "cpu": "6", "memory": "16Gi"}))
    )
    assert more_cpu.machine == "g6.2xlarge"  # 8 vCPU; g6.xlarge has 4
    more_ram = estimate_cost(config(aws_stack(serving={**SMALL, "memory": "20Gi"})))
    assert more_ram.machine == "g6.2xlarge"  # 32 GiB; g6.xlarge has 16
    more_memory = estimate_cost(
        config(
            aws_stack(
                aws={"region": "eu-west-1", "gpu_nodes": {"instance_families": ["g6", "gr6"]}},
                serving={"gpu_type": "nvidia-l4", "cpu": "8", "memory": "100Gi"},
            )
        )
    )
    # 100 GiB: g6.8xlarge (128 GiB) or gr6.4xlarge (128 GiB, fewer vCPUs, cheaper)
    assert more_memory.machine == "gr6.4xlarge"
    assert aws_price("gr6.4xlarge") < aws_price("g6.8xlarge")


def test_a_replica_that_fits_no_priced_instance_gets_a_message_not_a_traceback() -> None:
    cost = estimate_cost(config(aws_stack(serving={"gpu_type": "nvidia-l4", "cpu": "500"})))
    assert cost.per_hour_min is None and cost.per_hour_max is None
    assert cost.problem is not None and cost.problem.startswith("no price for instance families g6")
    assert "no price for" in cost.summary_line()


def test_families_without_any_price_get_a_message() -> None:
    table = PriceTable.model_validate(
        {
            "aws": {
                **TABLE.aws.model_dump(),
                "machines": {
                    t: m for t, m in TABLE.aws.model_dump()["machines"].items() if aws_family(t) != "g6"
                },
            },
            "gcp": TABLE.gcp.model_dump(),
            "azure": TABLE.azure.model_dump(),
        }
    )
    cost = estimate_cost(config(aws_stack()), table)
    assert cost.problem == "no price for instance families g6 in the price table"
    assert cost.per_month_max is None


def test_managed_node_groups_are_priced_from_their_instance_types() -> None:
    cost = estimate_cost(
        config(
            aws_stack(
                aws={
                    "region": "eu-west-1",
                    "gpu_nodes": {
                        "provisioner": "managed_node_group",
                        "managed_instance_types": ["g6.2xlarge", "g6.4xlarge"],
                    },
                }
            )
        )
    )
    assert cost.machine == "g6.2xlarge"


def test_on_prem_gets_gpu_hours_and_no_money() -> None:
    cost = estimate_cost(config(minimal(autoscaling={"min_replicas": 1, "max_replicas": 4})))
    assert cost.platform is Platform.ONPREM
    assert (cost.gpu_hours_per_day_min, cost.gpu_hours_per_day_max) == (24, 96)
    assert cost.per_hour_min is None and cost.per_month_max is None and cost.machine is None
    assert cost.summary_line() == (
        "- cost (GPU nodes): not priced on-prem; 24 GPU-hours/day at min_replicas, "
        "96 GPU-hours/day at max_replicas"
    )


def test_the_cpu_engine_uses_no_gpus() -> None:
    cost = estimate_cost(
        config(minimal(serving={"image": "registry.example/model-cpu:1.0", "engine": "transformers"}))
    )
    assert (cost.gpus_per_replica, cost.gpu_hours_per_day_max) == (0, 0)
    assert cost.per_hour_max is None
    assert "CPU engine" in cost.summary_line()


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_repository_stack_gets_an_estimate(path: Path) -> None:
    cfg = load_stack_file(path)
    cost = estimate_cost(cfg)
    assert cost.problem is None, cost.problem
    if cfg.platform is not Platform.ONPREM and cfg.uses_gpu:
        assert cost.machine and cost.per_hour_max is not None and cost.per_hour_max > 0
        assert cost.per_month_max == pytest.approx(cost.per_hour_max * HOURS_PER_MONTH)


def test_the_dev_aws_plan_summary_has_the_cost_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    cfg = load_stack_file(ROOT / "stacks" / "Pulumi.dev-aws.yaml")
    summary = render_summary(plan_stack(cfg, "dev-aws"))
    line = next(line for line in summary.splitlines() if line.startswith("- cost (GPU nodes): $"))
    assert "at min_replicas" in line and "at max_replicas" in line
    assert "on g6." in line and "typical spot price: on-demand less the family's median spot discount" in line


# --- what the cost line must say (issue 12, item 5) -------------------------------------------------


H100_X4 = {"gpu_type": "nvidia-h100-80gb", "gpus_per_replica": 4, "cpu": "16", "memory": "200Gi"}
P5_ONLY = {"region": "us-east-1", "gpu_nodes": {"instance_families": ["p5"]}}


def test_a_stack_in_a_region_the_table_lacks_is_told_the_price_is_another_regions() -> None:
    cost = estimate_cost(config(aws_stack()))  # eu-west-1; the table prices us-east-1 only
    assert (cost.stack_region, cost.region) == ("eu-west-1", "us-east-1") and cost.priced_elsewhere
    line = cost.summary_line()
    assert "the table has no eu-west-1 prices" in line and "us-east-1's figure, not eu-west-1's" in line
    gcp = estimate_cost(config(gcp_stack(gcp={"project": "acme-inference", "region": "europe-west4"})))
    assert "the table has no europe-west4 prices" in gcp.summary_line()


def test_a_stack_in_the_tables_region_gets_no_other_region_warning() -> None:
    cost = estimate_cost(config(aws_stack(aws={"region": "us-east-1"})))
    assert not cost.priced_elsewhere
    assert "another region" not in cost.summary_line()


def test_the_line_says_when_the_prices_are_from_not_only_when_they_were_read() -> None:
    line = estimate_cost(config(aws_stack())).summary_line()
    # the AWS snapshot's own date is unknown; its types and prices place it before mid-2025
    assert "prices from before June 2025 (their exact date is unknown), read 2026-11-22" in line
    gcp_line = estimate_cost(config(gcp_stack())).summary_line()
    assert "prices of an unknown date, read 2026-11-22" in gcp_line


def test_prices_as_of_takes_a_date_or_a_day_they_predate_not_both() -> None:
    raw = raw_table()
    raw["aws"]["prices_as_of"] = {"date": "2025-01-01", "before": "2025-06-01", "how_known": "x"}
    with pytest.raises(PriceTableError, match=r"aws\.prices_as_of: .*not both"):
        parse_price_table(raw)
    del raw["aws"]["prices_as_of"]
    with pytest.raises(PriceTableError, match=r"aws\.prices_as_of: Field required"):
        parse_price_table(raw)


def test_an_entrys_caveat_is_carried_word_for_word() -> None:
    cost = estimate_cost(config(aws_stack(aws=P5_ONLY, serving=H100_X4)))
    caveat = TABLE.aws.machines["p5.48xlarge"].caveat
    assert cost.machine == "p5.48xlarge" and caveat and "overstate" in caveat
    assert cost.caveats == (caveat,)
    assert f"  - caveat: {caveat}" in cost.summary_line().splitlines()


def test_the_table_states_the_p4_p5_price_cut_as_a_caveat_not_only_a_note() -> None:
    for name, machine in TABLE.aws.machines.items():
        if aws_family(name) in {"p4d", "p4de", "p5", "p5e", "p5en"}:
            assert machine.caveat and "June 2025" in machine.caveat, name


def test_a_spot_discounts_caveat_is_carried_too_and_an_empty_caveat_is_rejected() -> None:
    raw = raw_table()
    raw["aws"]["spot_discounts"]["g6"]["caveat"] = "spot capacity for g6 is scarce in the test"
    spot = estimate_cost(
        config(aws_stack(serving=SMALL, aws={"gpu_nodes": {"capacity_types": ["spot"]}})),
        parse_price_table(raw),
    )
    assert spot.caveats == ("spot capacity for g6 is scarce in the test",)
    raw["aws"]["spot_discounts"]["g6"]["caveat"] = ""
    with pytest.raises(PriceTableError, match=r"aws\.spot_discounts\.g6\.caveat"):
        parse_price_table(raw)


def test_idle_gpus_on_a_bigger_machine_are_said_and_paid_for() -> None:
    cost = estimate_cost(config(aws_stack(aws=P5_ONLY, serving=H100_X4)))
    # p5 comes in 1 and 8 GPUs: a 4-GPU replica gets the 8-GPU node, priced whole
    assert (cost.gpus_per_replica, cost.gpus_per_node) == (4, 8)
    assert cost.price_per_hour == pytest.approx(aws_price("p5.48xlarge"))
    assert "  - idle GPUs: 4 of 8 GPUs per node used; you pay for 8" in cost.summary_line().splitlines()


def test_a_replica_that_fills_its_node_gets_no_idle_gpu_line() -> None:
    cost = estimate_cost(config(aws_stack(serving=SMALL)))
    assert (cost.gpus_per_replica, cost.gpus_per_node) == (1, 1)
    assert "idle GPUs" not in cost.summary_line()


# --- Azure ------------------------------------------------------------------------------------------

AZURE_GPU_SIZES = {
    "Standard_NC40ads_H100_v5": (1, GpuType.H100_NVL),
    "Standard_NC80adis_H100_v5": (2, GpuType.H100_NVL),
    "Standard_NC24ads_A100_v4": (1, GpuType.A100_80GB),
    "Standard_NC48ads_A100_v4": (2, GpuType.A100_80GB),
    "Standard_NC96ads_A100_v4": (4, GpuType.A100_80GB),
    "Standard_NV36ads_A10_v5": (1, GpuType.A10),
    "Standard_NV72ads_A10_v5": (2, GpuType.A10),
    "Standard_ND96isr_H100_v5": (8, GpuType.H100_80GB),
}


def test_azure_table_prices_every_accepted_gpu_size_with_its_gpus() -> None:
    machines = load_price_table().azure.machines
    assert {name: (m.gpus, m.gpu) for name, m in machines.items()} == AZURE_GPU_SIZES
    # Per-GPU prices of a series agree (Azure prices these sizes linearly), so no row was misread.
    # (NVads A10 v5 is not linear: 3.20 vs 3.26 per GPU in the snapshot.)
    for series in ("NC_A100_v4", "NC_H100_v5"):
        per_gpu = {
            round(m.on_demand_per_hour / m.gpus, 2) for n, m in machines.items() if azure_family(n) == series
        }
        assert len(per_gpu) == 1, series


def test_azure_services_and_system_pool_are_priced() -> None:
    azure = load_price_table().azure
    assert azure.services["aks_free_tier"].per_hour == 0
    assert azure.services["aks_standard_tier"].per_hour == pytest.approx(0.10)
    assert "Standard_D4ds_v5" in azure.system_machines


@pytest.mark.parametrize(
    ("size", "family"),
    [
        ("Standard_NC24ads_A100_v4", "NC_A100_v4"),
        ("Standard_NC80adis_H100_v5", "NC_H100_v5"),
        ("Standard_ND96isr_H100_v5", "ND_H100_v5"),
        ("Standard_NV36ads_A10_v5", "NV_A10_v5"),
        ("Standard_D4ds_v5", "D_v5"),
    ],
)
def test_azure_family_is_the_series(size: str, family: str) -> None:
    assert azure_family(size) == family


def test_an_azure_spot_entry_for_no_listed_series_is_refused() -> None:
    document = raw_table()
    document["azure"]["spot_discounts"]["NC_A100_v9"] = document["azure"]["spot_discounts"]["NC_A100_v4"]
    with pytest.raises(PriceTableError, match=r"azure\.spot_discounts\.NC_A100_v9"):
        parse_price_table(document)


def test_an_azure_table_without_a_service_the_reader_needs_is_refused() -> None:
    document = raw_table()
    del document["azure"]["services"]["nat_gateway"]
    with pytest.raises(PriceTableError, match="nat_gateway"):
        parse_price_table(document)


def azure_plan(gpu_pool: dict[str, Any], tier: str = "Standard") -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "azure-native:containerservice:ManagedCluster",
            {
                "sku": {"name": "Base", "tier": tier},
                "agentPoolProfiles": [
                    {"name": "system", "mode": "System", "vmSize": "Standard_D4ds_v5", "count": 2}
                ],
            },
        ),
        ("azure-native:containerservice:AgentPool", {"agentPoolName": "gpu", **gpu_pool}),
        ("azure-native:network:NatGateway", {"sku": {"name": "Standard"}}),
        ("azure-native:network:PublicIPAddress", {"sku": {"name": "Standard"}}),
    ]


def test_azure_plan_prices_pools_from_min_to_max_plus_services() -> None:
    table = load_price_table()
    cost = azure_plan_cost(
        azure_plan(
            {"vmSize": "Standard_NC24ads_A100_v4", "enableAutoScaling": True, "minCount": 0, "maxCount": 3}
        ),
        table,
    )
    services = 0.10 + 0.045 + 0.005
    system = 2 * table.azure.system_machines["Standard_D4ds_v5"].on_demand_per_hour
    gpu = table.azure.machines["Standard_NC24ads_A100_v4"].on_demand_per_hour
    assert cost.problems == ()
    assert cost.services_per_hour == pytest.approx(services)
    assert cost.per_hour_min == pytest.approx(services + system)  # the GPU pool at 0 costs nothing
    assert cost.per_hour_max == pytest.approx(services + system + 3 * gpu)
    assert cost.estimated  # the system size and the services are estimates


def test_azure_free_tier_has_no_control_plane_fee() -> None:
    standard = azure_plan_cost(azure_plan({"vmSize": "Standard_NV36ads_A10_v5", "count": 1}))
    free = azure_plan_cost(azure_plan({"vmSize": "Standard_NV36ads_A10_v5", "count": 1}, tier="Free"))
    assert standard.services_per_hour - free.services_per_hour == pytest.approx(0.10)


def test_azure_spot_pool_gets_the_series_discount() -> None:
    table = load_price_table()
    pool = {"vmSize": "Standard_NV36ads_A10_v5", "count": 1}
    regular = azure_plan_cost(azure_plan({**pool, "scaleSetPriority": "Regular"}), table).pools[1]
    spot = azure_plan_cost(azure_plan({**pool, "scaleSetPriority": "Spot"}), table).pools[1]
    assert regular.per_hour is not None and spot.per_hour is not None
    assert spot.per_hour == pytest.approx(
        regular.per_hour * (1 - table.azure.spot_discounts["NV_A10_v5"].discount)
    )


def test_azure_spot_without_a_spot_price_says_so_instead_of_guessing() -> None:
    cost = azure_plan_cost(
        azure_plan({"vmSize": "Standard_NC40ads_H100_v5", "count": 1, "scaleSetPriority": "Spot"})
    )
    assert cost.per_hour_max is None
    assert cost.problems == (
        "no spot price for Standard_NC40ads_H100_v5 (series NC_H100_v5) in the price table",
    )


def test_azure_unknown_size_is_a_problem_not_an_error() -> None:
    cost = azure_plan_cost(azure_plan({"vmSize": "Standard_NC6", "count": 1}))
    assert cost.per_hour_min is None
    assert cost.problems == ("no price for VM size Standard_NC6 in the price table",)
