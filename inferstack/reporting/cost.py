"""What a stack's GPU nodes cost: a price table (prices.yaml) and pure functions over a StackConfig.

Only GPU nodes are counted: one replica per node, priced at the on-demand rate of the table's one region
per cloud (or that rate less a typical spot discount when spot is the first capacity type). The control
plane, system nodes, NAT, load balancers, disks and traffic are left out, and the summary line says so.
On-prem stacks get GPU-hours only; the CPU engine uses no GPUs.

One replica per node because the model server spreads replicas over `kubernetes.io/hostname` (maxSkew 1,
components/model_server.py) and Karpenter's scheduling simulation treats such preferences as required
before relaxing them (kubernetes-sigs/karpenter discussion #2849), so it launches a node per replica.
Where the machine has more GPUs than a replica asks for, the line says how many sit idle: they are paid for.
What the line must not leave out — another region's price, the prices' own date, an entry's `caveat` —
it carries; `note`s (how a figure was made) stay in prices.yaml.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import re
from collections.abc import Iterable, Mapping
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
    note: str | None = Field(None, description="how the figure was made (stays in the table)")
    caveat: str | None = Field(
        None,
        min_length=1,
        description="a known way the figure misleads (e.g. a later price cut); the cost line carries it",
    )

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


class PricesAsOf(_Strict):
    """When a cloud's prices were taken (not when they were read): a day, a day they predate, or unknown."""

    date: datetime.date | None = Field(None, description="the day the prices were taken, when known")
    before: datetime.date | None = Field(None, description="a day the prices are known to predate")
    how_known: str = Field(..., min_length=1, description="why the date is what it says (or unknown)")

    @model_validator(mode="after")
    def _one_date(self) -> PricesAsOf:
        if self.date is not None and self.before is not None:
            raise ValueError("give `date` (the prices' own day) or `before` (a day they predate), not both")
        return self

    def describe(self) -> str:
        """'prices from before June 2025 (their exact date is unknown)', 'prices of 2025-05-01', ..."""
        if self.date is not None:
            return f"prices of {self.date.isoformat()}"
        if self.before is not None:
            return f"prices from before {self.before:%B %Y} (their exact date is unknown)"
        return "prices of an unknown date"


class CloudPrices(_Strict):
    region: str = Field(..., min_length=1, description="the one region every figure below is for")
    prices_as_of: PricesAsOf
    machines: dict[str, PricedMachine]
    spot_discounts: dict[str, SpotDiscount] = Field(..., description="by family: g6, p5, g2, a3, ...")


class PricedSystemMachine(_Sourced):
    """A VM size without GPUs (an AKS system pool) and its on-demand price in the table's region."""

    vcpus: int = Field(..., ge=1)
    memory_gib: float = Field(..., gt=0)
    on_demand_per_hour: float = Field(..., gt=0, description="USD per hour, Linux, on-demand")


class PricedService(_Sourced):
    """An hourly charge for one unit of a managed service (a cluster's tier, a NAT gateway, an address)."""

    per_hour: float = Field(..., ge=0, description="USD per hour per unit")
    unit: str = Field(..., min_length=1, description="what one unit is: cluster, gateway, address, ...")


class AzurePrices(CloudPrices):
    """Azure: GPU sizes as for the other clouds (spot only where the source had a real spot price), plus
    the system pool's sizes and the hourly services an Azure stack makes."""

    system_machines: dict[str, PricedSystemMachine]
    services: dict[str, PricedService]


#: The `services` entries the Azure plan reader needs (azure_plan_cost).
AZURE_SERVICES = (
    "aks_free_tier",
    "aks_standard_tier",
    "aks_premium_tier",
    "nat_gateway",
    "public_ip_standard",
    "load_balancer_standard",
)


class PriceTable(_Strict):
    aws: CloudPrices
    gcp: CloudPrices
    azure: AzurePrices


class PriceTableError(ValueError):
    """The price table is malformed; the message names every bad entry."""


def aws_family(instance_type: str) -> str:
    """g6.xlarge -> g6; p6-b200.48xlarge -> p6-b200."""
    return instance_type.split(".", 1)[0]


def gcp_family(machine_type: str) -> str:
    """g2-standard-8 -> g2; a3-highgpu-8g -> a3."""
    return machine_type.split("-", 1)[0]


_AZURE_SIZE = re.compile(r"^Standard_([A-Z]+)\d+(?:-\d+)?[a-z]*_(.+)$")


def azure_family(vm_size: str) -> str:
    """Standard_NC24ads_A100_v4 -> NC_A100_v4; Standard_NV72ads_A10_v5 -> NV_A10_v5 (the series)."""
    match = _AZURE_SIZE.match(vm_size)
    return f"{match.group(1)}_{match.group(2)}" if match else vm_size


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
    missing += [
        f"azure.services: no {name!r} entry (the Azure plan reader prices it)"
        for name in AZURE_SERVICES
        if name not in table.azure.services
    ]
    # Azure spot entries are optional (a size with no real spot price gets none; see prices.yaml), but one
    # that names no listed series is a typo.
    azure_series = {azure_family(name) for name in table.azure.machines}
    missing += [
        f"azure.spot_discounts.{family}: no machine of this series is listed"
        for family in table.azure.spot_discounts
        if family not in azure_series
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
    gpus_per_node: int | None = None  # GPUs on that machine: more than gpus_per_replica means idle GPUs
    stack_region: str | None = None  # the region the stack deploys to
    region: str | None = None  # the region the price is for (the table's; may differ from the stack's)
    capacity: CapacityType | None = None
    price_per_hour: float | None = None  # per node, after any spot discount
    source: str | None = None
    date: datetime.date | None = None  # the day the figure was read, not the price's own date
    prices_as_of: str | None = None  # when the prices were taken, as prices.yaml states it
    estimated: bool = False  # a figure used has basis "estimate" in prices.yaml
    caveats: tuple[str, ...] = ()  # `caveat`s of the entries used, word for word
    per_hour_min: float | None = None
    per_hour_max: float | None = None
    per_month_min: float | None = None
    per_month_max: float | None = None
    problem: str | None = None  # why there is no price, e.g. "no price for ..."

    @property
    def priced_elsewhere(self) -> bool:
        """The figure is another region's: the table has no price for the stack's own region."""
        return self.region is not None and self.stack_region is not None and self.region != self.stack_region

    def _price_basis(self) -> str:
        """What the hourly figure is: a listed on-demand price, or that less a typical spot discount."""
        assert self.capacity is not None
        if self.capacity is CapacityType.ON_DEMAND:
            return "on-demand price"
        # Spot prices move by the hour and zone; the table holds a per-family median discount, not a price.
        return "typical spot price: on-demand less the family's median spot discount"

    def summary_line(self) -> str:
        """A markdown bullet for the plan summary; what a reader must weigh comes as sub-bullets."""
        gpu_hours = (
            f"{self.gpu_hours_per_day_min} GPU-hours/day at min_replicas, "
            f"{self.gpu_hours_per_day_max} GPU-hours/day at max_replicas"
        )
        if self.gpus_per_replica == 0:
            return "- cost (GPU nodes): none (CPU engine, no GPUs)"
        if self.platform is Platform.ONPREM:
            return f"- cost (GPU nodes): not priced on-prem; {gpu_hours}"
        if self.per_hour_min is None or self.per_hour_max is None:
            return f"- cost (GPU nodes): {self.problem}; GPU-hours {gpu_hours}"
        assert self.per_month_min is not None and self.per_month_max is not None and self.capacity
        lines = [
            f"- cost (GPU nodes): ${self.per_hour_min:,.2f}/h (${self.per_month_min:,.0f}/month) at "
            f"min_replicas, ${self.per_hour_max:,.2f}/h (${self.per_month_max:,.0f}/month) at max_replicas "
            f"on {self.machine}, one replica per node ({self._price_basis()} in {self.region}"
            f"{', an estimate' if self.estimated else ''}, inferstack/reporting/prices.yaml: "
            f"{self.prices_as_of}, read {self.date}; "
            "control plane, system nodes, networking and disks not included)"
        ]
        if self.priced_elsewhere:
            lines.append(
                f"  - another region's price: the table has no {self.stack_region} prices, so this is "
                f"{self.region}'s figure, not {self.stack_region}'s"
            )
        if self.gpus_per_node is not None and self.gpus_per_node > self.gpus_per_replica:
            lines.append(
                f"  - idle GPUs: {self.gpus_per_replica} of {self.gpus_per_node} GPUs per node used; "
                f"you pay for {self.gpus_per_node}"
            )
        lines += [f"  - caveat: {c}" for c in self.caveats]
        return "\n".join(lines)


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
        prices, capacity, stack_region = table.aws, cfg.aws.gpu_nodes.capacity_types[0], cfg.aws.region
        chosen = cheapest_aws_instance(cfg, table)
        if isinstance(chosen, str):
            return CostEstimate(**base, problem=chosen)
        name, machine = chosen
        family = aws_family(name)
    elif cfg.platform is Platform.AZURE:
        assert cfg.azure is not None
        prices, capacity, stack_region = table.azure, cfg.azure.gpu_nodes.capacity_type, cfg.azure.location
        name = cfg.azure.gpu_nodes.vm_size
        if name not in prices.machines:
            return CostEstimate(**base, problem=f"no price for VM size {name} in the price table")
        machine, family = prices.machines[name], azure_family(name)
    else:
        assert cfg.gcp is not None
        prices, capacity, stack_region = table.gcp, cfg.gcp.gpu_nodes.capacity_type, cfg.gcp.region
        name = cfg.gcp.gpu_nodes.machine_type
        if name not in prices.machines:
            return CostEstimate(**base, problem=f"no price for machine type {name} in the price table")
        machine, family = prices.machines[name], gcp_family(name)

    price, used = machine.on_demand_per_hour, list[_Sourced]([machine])
    if capacity is CapacityType.SPOT:
        if family not in prices.spot_discounts:
            # The Azure table lists spot only where its source had a real spot price (not for H100).
            return CostEstimate(
                **base,
                machine=name,
                problem=f"no spot price for {name} ({family}) in the price table: use on-demand, or add one",
            )
        spot = prices.spot_discounts[family]
        price *= 1 - spot.discount
        used.append(spot)
    return CostEstimate(
        **base,
        machine=name,
        gpus_per_node=machine.gpus,
        stack_region=stack_region,
        region=prices.region,
        capacity=capacity,
        price_per_hour=price,
        source=machine.source,
        date=machine.date,
        prices_as_of=prices.prices_as_of.describe(),
        estimated=any(entry.basis is PriceBasis.ESTIMATE for entry in used),
        caveats=tuple(dict.fromkeys(entry.caveat for entry in used if entry.caveat)),
        per_hour_min=price * low,
        per_hour_max=price * high,
        per_month_min=price * low * HOURS_PER_MONTH,
        per_month_max=price * high * HOURS_PER_MONTH,
    )


def estimate_stack_cost(cfg: StackConfig, table: PriceTable | None = None) -> CostEstimate:
    """GPU-node cost of every model and variant of the stack together (`estimate_cost` of each, summed).

    One model: exactly its estimate. Several: replicas, GPU-hours and money summed (a money figure only
    where every model has one; otherwise the models' problems, joined); the machine named once when all
    models use the same one, else every one of them, and `gpus_per_replica` the largest (0 only when no
    model uses a GPU).
    """
    table = table or load_price_table()
    estimates = [estimate_cost(variant.config, table) for variant in cfg.served]
    if len(estimates) == 1:
        return estimates[0]
    first = estimates[0]
    gpu_priced = [e for e in estimates if e.gpus_per_replica]
    money = all(e.per_hour_min is not None for e in gpu_priced) and bool(gpu_priced)

    def total(name: str) -> Any:
        return sum(getattr(e, name) for e in gpu_priced) if money else None

    machines = list(dict.fromkeys(e.machine for e in estimates if e.machine))
    problems = list(dict.fromkeys(e.problem for e in estimates if e.problem))
    return dataclasses.replace(
        first,
        replicas_min=sum(e.replicas_min for e in estimates),
        replicas_max=sum(e.replicas_max for e in estimates),
        gpus_per_replica=max(e.gpus_per_replica for e in estimates),
        gpu_hours_per_day_min=sum(e.gpu_hours_per_day_min for e in estimates),
        gpu_hours_per_day_max=sum(e.gpu_hours_per_day_max for e in estimates),
        machine=", ".join(machines) or None,
        gpus_per_node=first.gpus_per_node if len(machines) == 1 else None,
        price_per_hour=first.price_per_hour if len(machines) == 1 else None,
        estimated=any(e.estimated for e in estimates),
        caveats=tuple(dict.fromkeys(c for e in estimates for c in e.caveats)),
        per_hour_min=total("per_hour_min"),
        per_hour_max=total("per_hour_max"),
        per_month_min=total("per_month_min"),
        per_month_max=total("per_month_max"),
        problem="; ".join(problems) or None,
    )


# --- Azure, from the plan -------------------------------------------------------------------------

T_AGENT_POOL = "azure-native:containerservice:AgentPool"
T_MANAGED_CLUSTER = "azure-native:containerservice:ManagedCluster"
T_NAT_GATEWAY = "azure-native:network:NatGateway"
T_PUBLIC_IP = "azure-native:network:PublicIPAddress"
T_LOAD_BALANCER = "azure-native:network:LoadBalancer"


@dataclass(frozen=True)
class AzurePoolCost:
    """One AKS node pool priced at its fewest and most nodes (minCount / maxCount, or count twice)."""

    name: str  # the pool's name input (agentPoolName), or the resource name
    vm_size: str
    nodes_min: int
    nodes_max: int
    spot: bool
    gpus_per_node: int  # 0 for a system pool
    per_hour: float | None  # per node, after any spot discount; None when the table has no price
    estimated: bool = False
    problem: str | None = None


@dataclass(frozen=True)
class AzurePlanCost:
    """What an Azure plan costs per hour: node pools at min and max, plus the hourly services."""

    pools: tuple[AzurePoolCost, ...]
    services_per_hour: float  # control plane tier, NAT gateways, public IPs, load balancers
    services: tuple[str, ...]  # "nat_gateway x1", ... what services_per_hour is made of
    estimated: bool
    problems: tuple[str, ...]

    @property
    def per_hour_min(self) -> float | None:
        return self._total("nodes_min")

    @property
    def per_hour_max(self) -> float | None:
        return self._total("nodes_max")

    def _total(self, nodes: str) -> float | None:
        if any(pool.per_hour is None for pool in self.pools):
            return None
        return self.services_per_hour + sum(
            pool.per_hour * getattr(pool, nodes) for pool in self.pools if pool.per_hour is not None
        )


def _pool_counts(inputs: Mapping[str, Any]) -> tuple[int, int]:
    """(fewest, most) nodes of an AgentPool or a ManagedCluster agentPoolProfiles entry."""
    if inputs.get("enableAutoScaling"):
        return int(inputs.get("minCount") or 0), int(inputs.get("maxCount") or 0)
    count = int(inputs.get("count") or 0)
    return count, count


def _price_pool(name: str, inputs: Mapping[str, Any], prices: AzurePrices) -> AzurePoolCost:
    size = str(inputs.get("vmSize") or "")
    low, high = _pool_counts(inputs)
    # scaleSetPriority is the ARM enum "Spot" | "Regular" (containerservice ScaleSetPriority).
    spot = inputs.get("scaleSetPriority") == "Spot"
    common: dict[str, Any] = {
        "name": name,
        "vm_size": size,
        "nodes_min": low,
        "nodes_max": high,
        "spot": spot,
    }
    if size in prices.machines:
        machine = prices.machines[size]
        price, estimated = machine.on_demand_per_hour, machine.basis is PriceBasis.ESTIMATE
        if spot:
            family = azure_family(size)
            if family not in prices.spot_discounts:
                return AzurePoolCost(
                    **common,
                    gpus_per_node=machine.gpus,
                    per_hour=None,
                    problem=f"no spot price for {size} (series {family}) in the price table",
                )
            entry = prices.spot_discounts[family]
            price *= 1 - entry.discount
            estimated = estimated or entry.basis is PriceBasis.ESTIMATE
        return AzurePoolCost(**common, gpus_per_node=machine.gpus, per_hour=price, estimated=estimated)
    if size in prices.system_machines:
        system = prices.system_machines[size]
        problem = f"no spot price for {size} in the price table" if spot else None
        return AzurePoolCost(
            **common,
            gpus_per_node=0,
            per_hour=None if spot else system.on_demand_per_hour,
            estimated=system.basis is PriceBasis.ESTIMATE,
            problem=problem,
        )
    return AzurePoolCost(
        **common,
        gpus_per_node=0,
        per_hour=None,
        problem=f"no price for VM size {size or '(none)'} in the price table",
    )


def azure_plan_cost(
    resources: Iterable[tuple[str, Mapping[str, Any]]], table: PriceTable | None = None
) -> AzurePlanCost:
    """Price an Azure plan from its resources' (type token, inputs), as the recording mock has them.

    Reads: AgentPool `vmSize`, `count` or `enableAutoScaling` + `minCount`/`maxCount`, `scaleSetPriority`
    (and the same fields in a ManagedCluster's `agentPoolProfiles`, the system pool made with the
    cluster); ManagedCluster `sku.tier` ("Free" | "Standard" | "Premium"; ARM's default is Free);
    one unit per NatGateway, PublicIPAddress (Standard SKU assumed) and LoadBalancer. Never raises for a
    plan: what it cannot price is in `problems`.
    """
    prices = (table or load_price_table()).azure
    pools: list[AzurePoolCost] = []
    units: dict[str, int] = {}
    for type_token, inputs in resources:
        if type_token == T_AGENT_POOL:
            pools.append(_price_pool(str(inputs.get("agentPoolName") or "agent pool"), inputs, prices))
        elif type_token == T_MANAGED_CLUSTER:
            tier = str((inputs.get("sku") or {}).get("tier") or "Free").lower()
            key = f"aks_{tier}_tier"
            units[key] = units.get(key, 0) + 1
            for profile in inputs.get("agentPoolProfiles") or []:
                pools.append(_price_pool(str(profile.get("name") or "system"), profile, prices))
        elif type_token == T_NAT_GATEWAY:
            units["nat_gateway"] = units.get("nat_gateway", 0) + 1
        elif type_token == T_PUBLIC_IP:
            units["public_ip_standard"] = units.get("public_ip_standard", 0) + 1
        elif type_token == T_LOAD_BALANCER:
            units["load_balancer_standard"] = units.get("load_balancer_standard", 0) + 1
    problems = [pool.problem for pool in pools if pool.problem]
    per_hour, estimated, described = 0.0, any(pool.estimated for pool in pools), []
    for key, count in sorted(units.items()):
        service = prices.services.get(key)
        if service is None:
            problems.append(f"no price for {key} in the price table")
            continue
        per_hour += service.per_hour * count
        estimated = estimated or service.basis is PriceBasis.ESTIMATE
        described.append(f"{key} x{count}")
    return AzurePlanCost(
        pools=tuple(pools),
        services_per_hour=per_hour,
        services=tuple(described),
        estimated=estimated,
        problems=tuple(problems),
    )
