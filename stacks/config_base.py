"""Building blocks every section of the stack schema shares: the strict base model and common field types.

Kept apart from `stacks/config.py` so that per-platform sections (`config_aws.py`, ...) can use them
without importing the whole schema.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+$"
)

_QUANTITY_FACTORS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


class Platform(StrEnum):
    ONPREM = "onprem"  # any existing cluster reached through a kubeconfig: on-prem, kind, k3d, minikube
    AWS = "aws"  # a VPC and an EKS cluster made by the stack (the `aws` section)
    GCP = "gcp"  # a VPC and a GKE cluster made by the stack (the `gcp` section)
    AZURE = "azure"  # a VNet and an AKS cluster made by the stack (the `azure` section)


class Tier(StrEnum):
    DEV = "dev"
    PROD = "prod"


class Section(BaseModel):
    """Every section rejects unknown keys: a typo must fail, not be silently ignored."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False, validate_default=True)


Quantity = Annotated[
    str, Field(pattern=QUANTITY_PATTERN, description="A Kubernetes quantity, e.g. '4', '500m', '16Gi'")
]
K8sName = Annotated[
    str, Field(pattern=K8S_NAME_PATTERN, description="A Kubernetes object name (RFC 1123 label)")
]


def parse_cidrs(cidrs: list[str]) -> list[str]:
    """Field validator body: every entry is a network in CIDR form, host bits zero and a prefix length.

    Python reads a bare address as a /32, but none of the places these go does: a NetworkPolicy
    ipBlock.cidr, Envoy Gateway's CIDR type (SecurityPolicy clientCIDRs: its pattern ends in `/` and digits), and
    the clouds' authorized-network and VPC ranges all want the prefix written out.
    """
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as err:
            raise ValueError(f"{cidr!r} is not a network in CIDR form (e.g. 10.0.0.0/8): {err}") from None
        if "/" not in cidr:
            raise ValueError(f"{cidr!r} has no prefix length: write {cidr}/32 (one address) or a network")
    return cidrs


def quantity_bytes(quantity: str) -> float:
    """Bytes in a memory/storage quantity such as '50Gi' (the schema has already checked its form)."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)", quantity)
    if not match or match.group(2) not in _QUANTITY_FACTORS:
        raise ValueError(f"{quantity!r} is not a storage quantity")
    return float(match.group(1)) * _QUANTITY_FACTORS[match.group(2)]


#: What a GPU node's disk holds besides the model cache: the vLLM image (compressed layers + unpacked
#: snapshot, ~20 GiB each) and the OS.
NODE_DISK_OVERHEAD_GIB = 60


def pool_gpus_with_surge(cfg: Any) -> int:
    """GPUs the stack's GPU pool must hold for every model server at max_replicas plus one surge replica
    each (a rolling update's extra pod; Pulumi may update several Deployments at once): the default pool
    ceiling (stacks/rules_aws.gpu_limit, stacks/rules_gcp.gcp_gpu_limit; stacks/rollout.py).

    `cfg` is a StackConfig (typed Any: this module is imported by the schema). One model:
    (max_replicas + 1) x gpus_per_replica. Several models (`cfg.served`, resolved once the whole stack is
    validated): the sum of that over the models and variants on GPUs.
    """
    served = [v.config for v in getattr(cfg, "served", [])]
    variants = [v for v in served if v.uses_gpu] if len(served) > 1 else [cfg]
    return sum((v.autoscaling.max_replicas + 1) * v.serving.gpus_per_replica for v in variants)
