"""The rules between the `inferstack:gcp` section (stacks/config_gcp.py) and the rest of the stack, and the
figures derived from both (the GPU pool's ceiling in GPUs and machines).

This module imports the core schema and registers its rules with it (stacks/config.py
register_platform_rules) when the `stacks` package loads; the core never imports it back.
"""

from __future__ import annotations

import ipaddress
import math

from components.address_space import internet_exposure
from components.choices import CapacityType, Dns01Provider, Engine, TlsMode
from components.clusters.gcp.gpu_machines import GCP_GPU_MACHINES
from stacks.config import Platform, StackConfig, Tier, register_platform_rules
from stacks.config_base import NODE_DISK_OVERHEAD_GIB, pool_gpus_with_surge, quantity_bytes
from stacks.config_gcp import GKE_SPOT_SHUTDOWN_SECONDS, LOCAL_SSD_GB


def gcp_gpu_limit(cfg: StackConfig) -> int:
    """The pool's GPU ceiling: the configured one, or max_replicas + 1 replicas' GPUs (of every model).

    The extra replica is room for a rolling update's surge pod at max_replicas (stacks/rollout.py); the
    autoscaler never asks for more than max_replicas, so only a rollout uses it, for as long as it runs.
    """
    assert cfg.gcp is not None
    return cfg.gcp.gpu_nodes.gpu_limit or pool_gpus_with_surge(cfg)


def gcp_max_gpu_nodes(cfg: StackConfig) -> int:
    """GPU machines the pool may grow to: the GPU ceiling in whole machines.

    With several models on the pool and no gpu_limit, one machine per replica (replicas of different
    models do not share a machine's CPU and memory reliably; the cost estimate assumes the same), each
    model at max_replicas plus one surge replica: sum of (max_replicas + 1) x ceil(gpus_per_replica /
    GPUs per machine)."""
    assert cfg.gcp is not None
    if len(cfg.served) > 1 and not cfg.gcp.gpu_nodes.gpu_limit:
        return max(
            1,
            sum(
                (v.config.autoscaling.max_replicas + 1) * machines_per_replica(cfg, v.config)
                for v in cfg.served
                if v.config.uses_gpu
            ),
        )
    per_machine = GCP_GPU_MACHINES[cfg.gcp.gpu_nodes.machine_type].count
    return max(1, math.ceil(gcp_gpu_limit(cfg) / per_machine))


def machines_per_replica(cfg: StackConfig, model: StackConfig) -> int:
    """Machines of the stack's GPU pool one replica of `model` (a model or variant of cfg.served) takes
    when each replica gets machines of its own: its GPUs over the machine type's, rounded up."""
    assert cfg.gcp is not None
    return math.ceil(model.serving.gpus_per_replica / GCP_GPU_MACHINES[cfg.gcp.gpu_nodes.machine_type].count)


def gcp_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Rules between the gcp section and the rest of the stack. (field path, message with the fix)."""
    problems: list[tuple[str, str]] = []
    # Registered for platform gcp only; the core has checked that the section is there.
    assert cfg.gcp is not None
    gcp, prod = cfg.gcp, cfg.tier is Tier.PROD
    nodes = gcp.gpu_nodes
    if prod and not gcp.regional:
        problems.append(
            (
                "gcp.regional",
                "a prod stack runs a regional cluster, so a zone outage or a control-plane upgrade keeps the "
                "endpoint up: remove regional: false",
            )
        )
    foreign = [z for z in [*gcp.zones, *nodes.zones] if not z.startswith(gcp.region + "-")]
    if foreign:
        problems.append(("gcp.zones", f"{', '.join(foreign)} not in region {gcp.region}: use its zones"))
    net = gcp.network
    ranges = {
        "subnet_cidr": net.subnet_cidr,
        "pods_cidr": net.pods_cidr,
        "services_cidr": net.services_cidr,
        "control_plane_cidr": net.control_plane_cidr,
    }
    problems.extend(_overlaps(ranges))
    if not net.control_plane_cidr.endswith("/28"):
        problems.append(("gcp.network.control_plane_cidr", "GKE's control plane range is a /28"))
    # Measured, not compared with "0.0.0.0/0": [0.0.0.0/1, 128.0.0.0/1] is the same internet.
    for field_name in ("public_access_cidrs", "private_access_cidrs"):
        exposure = internet_exposure(getattr(gcp.api_endpoint, field_name))
        if exposure:
            problems.append(
                (
                    f"gcp.api_endpoint.{field_name}",
                    f"opens the Kubernetes API to the internet: the list {exposure}; list your own networks"
                    + (
                        ", or leave it empty (the DNS endpoint still lets `pulumi up` in, through IAM)"
                        if field_name.startswith("public")
                        else ""
                    ),
                )
            )
    endpoint = gcp.api_endpoint
    if not (endpoint.public_access_cidrs or endpoint.dns_endpoint or endpoint.private_access_cidrs):
        problems.append(
            (
                "gcp.api_endpoint.dns_endpoint",
                "with no public IP endpoint, no DNS endpoint and no private_access_cidrs nothing outside the "
                "cluster reaches the API, `pulumi up` included: keep dns_endpoint: true or list your VPN",
            )
        )
    if gcp.system_nodes.min_per_zone > gcp.system_nodes.max_per_zone:
        problems.append(("gcp.system_nodes.min_per_zone", "is above max_per_zone: lower it or raise max"))

    problems.extend(_model_store_problems(cfg))

    if "kind" in cfg.gateway.load_balancer.model_fields_set:
        problems.append(
            (
                "gateway.load_balancer.kind",
                "on GCP the gateway is a GKE passthrough Network Load Balancer: remove kind "
                "(gcp.load_balancer_scheme picks internal or external)",
            )
        )
    dns01 = cfg.tls.acme.dns01
    if cfg.tls.mode is TlsMode.ACME and dns01 is not None:
        if dns01.provider is Dns01Provider.ROUTE53:
            problems.append(("tls.acme.dns01.provider", "route53 is AWS's: use clouddns on GCP"))
        if dns01.provider is Dns01Provider.CLOUDDNS and not (dns01.clouddns_hosted_zone_name or gcp.dns_zone):
            problems.append(
                (
                    "tls.acme.dns01.clouddns_hosted_zone_name",
                    "name the managed zone (or set gcp.dns_zone): cert-manager may change records in that "
                    "zone only",
                )
            )

    if cfg.serving.engine is Engine.VLLM:
        machine = GCP_GPU_MACHINES[nodes.machine_type]
        if machine.gpu is not cfg.serving.gpu_type:
            wanted = sorted(m for m, spec in GCP_GPU_MACHINES.items() if spec.gpu is cfg.serving.gpu_type)
            problems.append(
                (
                    "gcp.gpu_nodes.machine_type",
                    f"serving.gpu_type is {cfg.serving.gpu_type.value} (the memory check assumes it), but "
                    f"{nodes.machine_type} carries {machine.gpu.value}: use "
                    f"{', '.join(wanted[:4]) or 'another gpu_type'}",
                )
            )
        if machine.count < cfg.serving.gpus_per_replica:
            problems.append(
                (
                    "gcp.gpu_nodes.machine_type",
                    f"{nodes.machine_type} has {machine.count} GPU(s) but a replica needs "
                    f"serving.gpus_per_replica = {cfg.serving.gpus_per_replica} on one machine: pick a larger shape",
                )
            )
        limit, per_replica = gcp_gpu_limit(cfg), cfg.serving.gpus_per_replica
        if limit < per_replica * max(1, cfg.autoscaling.min_replicas):
            problems.append(
                (
                    "gcp.gpu_nodes.gpu_limit",
                    f"{limit} GPUs cannot hold min_replicas x gpus_per_replica = "
                    f"{max(1, cfg.autoscaling.min_replicas)} x {per_replica}: raise it",
                )
            )
        cache_gb = quantity_bytes(cfg.serving.model_cache_size) / 1e9
        on_ssd = nodes.local_ssd_cache and machine.local_ssds > 0
        if on_ssd and cache_gb > machine.local_ssds * LOCAL_SSD_GB * 0.9:
            problems.append(
                (
                    "serving.model_cache_size",
                    f"{cfg.serving.model_cache_size} does not fit the {machine.local_ssds} x {LOCAL_SSD_GB} GB "
                    f"local SSDs of {nodes.machine_type}: lower it, or set gcp.gpu_nodes.local_ssd_cache: false",
                )
            )
        needed_gib = quantity_bytes(cfg.serving.model_cache_size) / 2**30 + NODE_DISK_OVERHEAD_GIB
        if not on_ssd and nodes.disk_gib < needed_gib:
            problems.append(
                (
                    "gcp.gpu_nodes.disk_gib",
                    f"{nodes.disk_gib} GiB cannot hold the model cache ({cfg.serving.model_cache_size}) plus image "
                    f"and OS (~{NODE_DISK_OVERHEAD_GIB} GiB): use at least {math.ceil(needed_gib)}",
                )
            )
        if prod and nodes.capacity_type is CapacityType.SPOT and cfg.autoscaling.min_replicas < 2:
            problems.append(
                (
                    "gcp.gpu_nodes.capacity_type",
                    f"GKE Spot nodes give pods about {GKE_SPOT_SHUTDOWN_SECONDS} s to stop, too short to drain "
                    "streaming answers: a prod stack on spot needs autoscaling.min_replicas >= 2, or on-demand",
                )
            )
    return problems


def _overlaps(ranges: dict[str, str]) -> list[tuple[str, str]]:
    problems = []
    items = [(field, ipaddress.ip_network(cidr)) for field, cidr in ranges.items()]
    for i, (field, net) in enumerate(items):
        for other, other_net in items[i + 1 :]:
            if net.overlaps(other_net):
                problems.append(
                    (f"gcp.network.{other}", f"{other_net} overlaps {field} {net}: pick a disjoint range")
                )
    return problems


def _model_store_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    assert cfg.gcp is not None
    store = cfg.gcp.model_store
    problems: list[tuple[str, str]] = []
    scheme = cfg.model.scheme
    if scheme == "s3":
        problems.append(("model.uri", "an s3:// model on GCP: copy the weights to a gs:// bucket"))
    if scheme == "file":
        problems.append(
            ("model.uri", "file:// models need a volume the cluster already has; on GCP use a gs:// uri")
        )
    if scheme != "gs" and "model_store" in cfg.gcp.model_fields_set:
        problems.append(("gcp.model_store", "only used with a gs:// model.uri: remove it"))
    if scheme == "gs" and not cfg.model.bucket_and_prefix[1]:
        problems.append(
            (
                "model.uri",
                "give the model's prefix (gs://bucket/models/name): the serving identity may read only under it",
            )
        )
    if store.cmek and store.kms_key_name:
        problems.append(
            (
                "gcp.model_store.kms_key_name",
                "cmek makes a key of its own: set cmek or kms_key_name, not both",
            )
        )
    if not store.create_bucket and (store.cmek or store.kms_key_name):
        field = "cmek" if store.cmek else "kms_key_name"
        problems.append(
            (
                f"gcp.model_store.{field}",
                "an existing bucket keeps its own encryption: remove it, or set create_bucket: true",
            )
        )
    return problems


register_platform_rules(Platform.GCP, gcp_problems)
