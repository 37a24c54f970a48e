"""What a stack's GPU nodes cost: a price table (prices.yaml) and pure functions over a StackConfig.

Only GPU nodes are counted: one replica per node, priced at the on-demand rate of one region per cloud
(or that rate less a typical spot discount when spot is the first capacity type). The control plane,
system nodes, NAT, load balancers, disks and traffic are left out, and the summary line says so.
On-prem stacks get GPU-hours only; the CPU engine uses no GPUs.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from components.choices import CapacityType, Engine, GpuProvisioner, GpuType
from stacks.config import Platform, StackConfig
from stacks.config_base import quantity_bytes

HOURS_PER_MONTH = 730  # 365 x 24 / 12, the figure AWS's and Google's calculators use


# --- the table ------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceBasis(enum.StrEnum):
    """Whether a figure was read from a price list, or made some other way (its `note` says how)."""

    PRICE_LIST = "price-list"
    ESTIMATE = "estimate"


class _Sourced(_Strict):
    basis: PriceBasis
    source: str = Field(..., pattern=r"^https://", description="where the figure was read")
    date: datetime.date = Field(..., description="the day the figure was read from `source`")
    note: str | None = None

    @model_validator(mode="after")
    def _estimates_say_how(self) -> _Sourced:
        if self.basis is PriceBasis.ESTIMATE and not (self.note or "").strip():
            raise ValueError("basis is estimate: add a `note` saying how the figure was made")
        return self


class PricedMachine(_Sourced):
    """An instance / machine type with GPUs and its on-demand price in the table's region."""

    vcpus: int = Field(..., ge=1)
    memory_gib: float = Field(..., gt=0)
    gpus: int = Field(..., ge=1)
    gpu: GpuType
    on_demand_per_hour: float = Field(..., gt=0, description="USD per hour, Linux, on-demand")


class SpotDiscount(_Sourced):
    """A typical spot/preemptible saving for a family (spot prices move; this is a planning figure)."""

    discount: float = Field(..., gt=0, lt=1, description="share off the on-demand price")


class CloudPrices(_Strict):
    region: str = Field(..., min_length=1)
    machines: dict[str, PricedMachine]
    spot_discounts: dict[str, SpotDiscount] = Field(..., description="by family: g6, p5, g2, a3, ...")


class PriceTable(_Strict):
    aws: CloudPrices
    gcp: CloudPrices


class PriceTableError(ValueError):
    """The price table is malformed; the message names every bad entry."""


def aws_family(instance_type: str) -> str:
    """g6.xlarge -> g6; p6-b200.48xlarge -> p6-b200."""
    return instance_type.split(".", 1)[0]


def gcp_family(machine_type: str) -> str:
    """g2-standard-8 -> g2; a3-highgpu-8g -> a3."""
    return machine_type.split("-", 1)[0]


def parse_price_table(document: Any, source: str = "prices.yaml") -> PriceTable:
    """Validate a loaded price document; PriceTableError lists each problem with the entry it is in."""
    try:
        table = PriceTable.model_validate(document)
    except ValidationError as err:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in err.errors()
        ]
        raise PriceTableError(f"{source}: " + "; ".join(problems)) from None
    missing = [
        f"{cloud}.machines.{name}: no spot_discounts entry for family {family!r}"
        for cloud, prices, family_of in (
            ("aws", table.aws, aws_family),
            ("gcp", table.gcp, gcp_family),
        )
        for name in prices.machines
        if (family := family_of(name)) not in prices.spot_discounts
    ]
    if missing:
        raise PriceTableError(f"{source}: " + "; ".join(missing))
    return table


@cache
def load_price_table() -> PriceTable:
    """The table shipped with the package (inferstack/reporting/prices.yaml)."""
    text = resources.files("inferstack.reporting").joinpath("prices.yaml").read_text(encoding="utf-8")
    return parse_price_table(yaml.safe_load(text))


# --- the estimate ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostEstimate:
    """GPU-node cost of one stack at its fewest and most replicas. Money fields are None where unknown."""

    platform: Platform
    replicas_min: int
    replicas_max: int
    gpus_per_replica: int  # 0 for the CPU engine
    gpu_hours_per_day_min: int
    gpu_hours_per_day_max: int
    machine: str | None = None  # instance / machine type priced (one per replica)
    region: str | None = None  # the region the price is for (may differ from the stack's)
    capacity: CapacityType | None = None
    price_per_hour: float | None = None  # per node, after any spot discount
    source: str | None = None
    date: datetime.date | None = None
    estimated: bool = False  # a figure used has basis "estimate" in prices.yaml
    per_hour_min: float | None = None
    per_hour_max: float | None = None
    per_month_min: float | None = None
    per_month_max: float | None = None
    problem: str | None = None  # why there is no price, e.g. "no price for ..."

    def summary_line(self) -> str:
        """One markdown bullet for the plan summary."""
        gpu_hours = f"{self.gpu_hours_per_day_min}/day at min, {self.gpu_hours_per_day_max}/day at max"
        if self.gpus_per_replica == 0:
            return "- cost (GPU nodes): none (CPU engine, no GPUs)"
        if self.platform is Platform.ONPREM:
            return f"- cost: GPU-hours only (on-prem): {gpu_hours}"
        if self.per_hour_min is None or self.per_hour_max is None:
            return f"- cost (GPU nodes): {self.problem}; GPU-hours {gpu_hours}"
        assert self.per_month_min is not None and self.per_month_max is not None and self.capacity
        return (
            f"- cost (GPU nodes): ${self.per_hour_min:,.2f}/h (${self.per_month_min:,.0f}/month) at "
            f"min_replicas, ${self.per_hour_max:,.2f}/h (${self.per_month_max:,.0f}/month) at max_replicas "
            f"on {self.machine} ({self.capacity.value} price in {self.region}"
            f"{', an estimate' if self.estimated else ''}, inferstack/reporting/prices.yaml, read {self.date}; "
            "control plane, system nodes, networking and disks not included)"
        )


def cpu_cores(quantity: str) -> float:
    """Cores in a Kubernetes CPU quantity: '4' -> 4.0, '500m' -> 0.5."""
    if quantity.endswith("m"):
        return float(quantity[:-1]) / 1000
    return float(quantity)


def replica_range(cfg: StackConfig) -> tuple[int, int]:
    """Replicas at the fewest and most: the autoscaler's bounds, or the fixed count twice."""
    if cfg.autoscaling.enabled:
        return cfg.autoscaling.min_replicas, cfg.autoscaling.max_replicas
    return cfg.serving.replicas, cfg.serving.replicas


def fits(machine: PricedMachine, gpus: int, cpu: str, memory: str) -> bool:
    """Whether one replica (gpus, cpu and memory requests) fits on the machine's raw capacity."""
    return (
        machine.gpus >= gpus
        and machine.vcpus >= cpu_cores(cpu)
        and machine.memory_gib * 2**30 >= quantity_bytes(memory)
    )


def cheapest_aws_instance(cfg: StackConfig, table: PriceTable) -> tuple[str, PricedMachine] | str:
    """The cheapest priced instance type the stack may launch that holds a replica, or why there is none."""
    assert cfg.aws is not None
    nodes, serving = cfg.aws.gpu_nodes, cfg.serving
    if nodes.provisioner is GpuProvisioner.MANAGED_NODE_GROUP:
        allowed = set(nodes.managed_instance_types)
        described = ", ".join(nodes.managed_instance_types)
        candidates = {t: m for t, m in table.aws.machines.items() if t in allowed}
    else:
        families = set(nodes.instance_families)
        described = f"instance families {', '.join(nodes.instance_families)}"
        candidates = {t: m for t, m in table.aws.machines.items() if aws_family(t) in families}
    if not candidates:
        return f"no price for {described} in the price table"
    fitting = {
        t: m for t, m in candidates.items() if fits(m, serving.gpus_per_replica, serving.cpu, serving.memory)
    }
    if not fitting:
        return (
            f"no price for {described} with {serving.gpus_per_replica} GPU(s), {serving.cpu} CPU and "
            f"{serving.memory} memory per replica (priced: {', '.join(sorted(candidates))})"
        )
    name = min(fitting, key=lambda t: (fitting[t].on_demand_per_hour, t))
    return name, fitting[name]


def estimate_cost(cfg: StackConfig, table: PriceTable | None = None) -> CostEstimate:
    """GPU-node cost of the stack at min and max replicas (never raises for a valid StackConfig)."""
    table = table or load_price_table()
    low, high = replica_range(cfg)
    per = cfg.serving.gpus_per_replica if cfg.serving.engine is Engine.VLLM else 0
    base: dict[str, Any] = {
        "platform": cfg.platform,
        "replicas_min": low,
        "replicas_max": high,
        "gpus_per_replica": per,
        "gpu_hours_per_day_min": low * per * 24,
        "gpu_hours_per_day_max": high * per * 24,
    }
    if per == 0 or cfg.platform is Platform.ONPREM:
        return CostEstimate(**base)

    if cfg.platform is Platform.AWS:
        assert cfg.aws is not None
        prices, capacity = table.aws, cfg.aws.gpu_nodes.capacity_types[0]
        chosen = cheapest_aws_instance(cfg, table)
        if isinstance(chosen, str):
            return CostEstimate(**base, problem=chosen)
        name, machine = chosen
        family = aws_family(name)
    else:
        assert cfg.gcp is not None
        prices, capacity = table.gcp, cfg.gcp.gpu_nodes.capacity_type
        name = cfg.gcp.gpu_nodes.machine_type
        if name not in prices.machines:
            return CostEstimate(**base, problem=f"no price for machine type {name} in the price table")
        machine, family = prices.machines[name], gcp_family(name)

    price, bases = machine.on_demand_per_hour, {machine.basis}
    if capacity is CapacityType.SPOT:
        spot = prices.spot_discounts[family]
        price *= 1 - spot.discount
        bases.add(spot.basis)
    return CostEstimate(
        **base,
        machine=name,
        region=prices.region,
        capacity=capacity,
        price_per_hour=price,
        source=machine.source,
        date=machine.date,
        estimated=PriceBasis.ESTIMATE in bases,
        per_hour_min=price * low,
        per_hour_max=price * high,
        per_month_min=price * low * HOURS_PER_MONTH,
        per_month_max=price * high * HOURS_PER_MONTH,
    )
