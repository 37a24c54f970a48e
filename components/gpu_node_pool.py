"""GpuNodePool: make a cluster's GPU nodes schedulable for the model server.

Every flavour (on-prem here; AWS Karpenter and GKE node pools later) offers the same three plain
attributes, described by the `GpuPlacement` protocol, which the model server copies into its pod spec:
`node_selector`, `tolerations` and `gpu_resource_name`.

The on-prem flavour works with nodes that already exist. It installs what makes them advertise
`nvidia.com/gpu` (NVIDIA's device plugin, or the GPU operator, or nothing when the cluster already does)
but it never labels or taints nodes: that is the cluster owner's decision, made once per node, e.g.

    kubectl label nodes gpu-node-1 nvidia.com/gpu.present=true
    kubectl taint nodes gpu-node-1 nvidia.com/gpu=present:NoSchedule

`node_selector` and `taints` must describe what was done there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import pulumi

from components._common import GPU_OPERATOR, NVIDIA_DEVICE_PLUGIN, child, helm_release, reject_invalid_args
from components.choices import GpuDriverStack, TaintEffect

DEVICE_PLUGIN_NAMESPACE = "nvidia-device-plugin"
GPU_OPERATOR_NAMESPACE = "gpu-operator"
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"

# The charts' own default tolerations, kept when ours are added (a list in Helm values replaces the
# default list rather than extending it).
_GPU_TAINT_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
_CONTROL_PLANE_TOLERATION = {
    "key": "node-role.kubernetes.io/control-plane",
    "operator": "Equal",
    "value": "",
    "effect": "NoSchedule",
}

# Kubernetes label syntax: an optional DNS-subdomain prefix and a name of up to 63 characters.
_LABEL_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_DNS_SUBDOMAIN = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)"
_QUALIFIED_NAME = re.compile(rf"^({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$")
_PREFIXED_NAME = re.compile(rf"^{_DNS_SUBDOMAIN}/{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")


class GpuPlacement(Protocol):
    """What every GPU node pool flavour gives the model server to land its pods on GPU nodes."""

    node_selector: dict[str, str]
    tolerations: list[dict[str, str]]
    gpu_resource_name: str


@dataclass(frozen=True)
class Taint:
    """A taint the cluster owner put on the GPU nodes."""

    key: str  # taint key, e.g. nvidia.com/gpu
    value: str | None  # taint value; None tolerates any value (operator Exists)
    effect: TaintEffect  # NoSchedule, PreferNoSchedule or NoExecute


#: Cloud flavours make their GPU nodes, so they label them: every node of a pool carries this label valued
#: with the pool's name, and it is the model server's node selector.
POOL_LABEL = "inferstack.io/gpu-pool"
#: The taint cloud flavours put on every GPU node, so nothing but GPU workloads lands there.
DEFAULT_TAINTS = (Taint("nvidia.com/gpu", None, TaintEffect.NO_SCHEDULE),)


@dataclass(frozen=True)
class GpuNodePoolArgs:
    """The GPU nodes of an existing cluster and how their driver stack gets there."""

    driver_stack: GpuDriverStack  # device plugin only, full GPU operator, or already installed
    node_selector: dict[str, str]  # labels that pick the GPU nodes (already on them)
    taints: list[Taint] = field(default_factory=list)  # taints already on the GPU nodes
    gpu_resource_name: str = DEFAULT_GPU_RESOURCE  # extended resource the nodes advertise
    values: dict[str, Any] = field(default_factory=dict)  # escape hatch: chart values merged over ours


def validate_gpu_node_pool_args(args: GpuNodePoolArgs) -> list[str]:
    """Every problem with the args, each naming the field; empty when they are usable."""
    problems: list[str] = []
    if args.driver_stack is GpuDriverStack.DEVICE_PLUGIN and not args.node_selector:
        problems.append(
            "node_selector: the device plugin must be pinned to the GPU nodes; give the labels that pick "
            "them (e.g. nvidia.com/gpu.present: 'true')"
        )
    for key, value in args.node_selector.items():
        if not _QUALIFIED_NAME.match(key):
            problems.append(f"node_selector: {key!r} is not a valid label key")
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            problems.append(f"node_selector: value {value!r} of {key!r} is not a valid label value")
    seen: set[tuple[str, TaintEffect]] = set()
    for i, taint in enumerate(args.taints):
        if not _QUALIFIED_NAME.match(taint.key):
            problems.append(f"taints[{i}].key: {taint.key!r} is not a valid taint key")
        if taint.value is not None and not _LABEL_VALUE.match(taint.value):
            problems.append(f"taints[{i}].value: {taint.value!r} is not a valid taint value")
        if not isinstance(taint.effect, TaintEffect):
            problems.append(
                f"taints[{i}].effect: {taint.effect!r} is not one of {', '.join(e.value for e in TaintEffect)}"
            )
        if (taint.key, taint.effect) in seen:
            problems.append(
                f"taints[{i}]: a node holds one taint per key and effect; {taint.key}:{taint.effect} repeats"
            )
        seen.add((taint.key, taint.effect))
    if not _PREFIXED_NAME.match(args.gpu_resource_name):
        problems.append(
            f"gpu_resource_name: {args.gpu_resource_name!r} is not an extended resource name "
            "(domain/name, e.g. nvidia.com/gpu)"
        )
    if args.driver_stack is GpuDriverStack.PREINSTALLED and args.values:
        problems.append(
            "values: driver_stack preinstalled installs no chart, so values would be ignored; drop values "
            "or pick device_plugin / gpu_operator"
        )
    return problems


# Node-label domains the kubelet may set on itself, so they are open to users although under kubernetes.io.
_OPEN_LABEL_DOMAINS = ("node.kubernetes.io", "node-restriction.kubernetes.io")


def _in_domain(domain: str, domains: tuple[str, ...]) -> bool:
    return any(domain == d or domain.endswith("." + d) for d in domains)


def _reserved_label(key: str, reserved_domains: tuple[str, ...]) -> bool:
    domain = key.split("/", 1)[0] if "/" in key else ""
    return _in_domain(domain, reserved_domains) and not _in_domain(domain, _OPEN_LABEL_DOMAINS)


def cloud_pool_label_problems(
    labels: dict[str, str], taints: list[Taint], reserved_domains: tuple[str, ...], reserved_by: str
) -> list[str]:
    """Labels and taints a cloud flavour puts on the nodes it makes: the on-prem flavour's syntax checks
    (labels play its node_selector's part), the pool label left to the component, and no label in
    `reserved_domains` (or a subdomain), which `reserved_by` (e.g. "Kubernetes or GKE") owns."""
    placement = GpuNodePoolArgs(
        driver_stack=GpuDriverStack.PREINSTALLED, node_selector=dict(labels), taints=list(taints)
    )
    problems = [
        "labels" + p.removeprefix("node_selector") if p.startswith("node_selector") else p
        for p in validate_gpu_node_pool_args(placement)
    ]
    for key in labels:
        if key == POOL_LABEL:
            problems.append(f"labels: {POOL_LABEL} is set to the pool's name by the component; drop it")
        elif _reserved_label(key, reserved_domains):
            problems.append(
                f"labels: {key!r} is in a domain {reserved_by} reserves; use your own prefix "
                "(e.g. example.com/team)"
            )
    return problems


def tolerations_for(taints: list[Taint]) -> list[dict[str, str]]:
    """Kubernetes tolerations (camelCase) that let a pod onto nodes carrying `taints`."""
    tolerations: list[dict[str, str]] = []
    for taint in taints:
        if taint.value is None:
            tolerations.append({"key": taint.key, "operator": "Exists", "effect": taint.effect.value})
        else:
            tolerations.append(
                {"key": taint.key, "operator": "Equal", "value": taint.value, "effect": taint.effect.value}
            )
    return tolerations


def _node_affinity(node_selector: dict[str, str]) -> dict[str, Any]:
    """Required node affinity equal to `node_selector`; replaces the device plugin chart's default
    affinity, which needs node-feature-discovery labels that an on-prem cluster may not have."""
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": key, "operator": "In", "values": [value]}
                            for key, value in sorted(node_selector.items())
                        ]
                    }
                ]
            }
        }
    }


def _with(defaults: list[dict[str, str]], ours: list[dict[str, str]]) -> list[dict[str, str]]:
    return [*defaults, *(t for t in ours if t not in defaults)]


def device_plugin_values(args: GpuNodePoolArgs) -> dict[str, Any]:
    """Values for the nvidia-device-plugin chart: run only on the GPU nodes, tolerating their taints."""
    return {
        "nodeSelector": dict(args.node_selector),
        "affinity": _node_affinity(args.node_selector),
        "tolerations": _with([_GPU_TAINT_TOLERATION], tolerations_for(args.taints)),
    }


def gpu_operator_values(args: GpuNodePoolArgs) -> dict[str, Any]:
    """Values for the gpu-operator chart: driver, container toolkit and device plugin, with every
    operand (and node-feature-discovery's worker, which finds the GPU nodes) tolerating our taints."""
    ours = tolerations_for(args.taints)
    return {
        "driver": {"enabled": True},
        "toolkit": {"enabled": True},
        "devicePlugin": {"enabled": True},
        "daemonsets": {"tolerations": _with([_GPU_TAINT_TOLERATION], ours)},
        "node-feature-discovery": {
            "worker": {"tolerations": _with([_CONTROL_PLANE_TOLERATION, _GPU_TAINT_TOLERATION], ours)}
        },
    }


class GpuNodePool(pulumi.ComponentResource):
    """On-prem GPU nodes: installs the chosen driver stack and says how to schedule onto the nodes."""

    node_selector: dict[str, str]
    tolerations: list[dict[str, str]]
    gpu_resource_name: str

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args("GpuNodePool", name, validate_gpu_node_pool_args(args))
        super().__init__("inferstack:gpu_node_pool:GpuNodePool", name, None, opts)

        self.node_selector = dict(args.node_selector)
        self.tolerations = tolerations_for(args.taints)
        self.gpu_resource_name = args.gpu_resource_name

        if args.driver_stack is GpuDriverStack.DEVICE_PLUGIN:
            helm_release(
                f"{name}-device-plugin",
                NVIDIA_DEVICE_PLUGIN,
                namespace=DEVICE_PLUGIN_NAMESPACE,
                values=device_plugin_values(args),
                extra_values=args.values,
                opts=child(self),
            )
        elif args.driver_stack is GpuDriverStack.GPU_OPERATOR:
            helm_release(
                f"{name}-gpu-operator",
                GPU_OPERATOR,
                namespace=GPU_OPERATOR_NAMESPACE,
                values=gpu_operator_values(args),
                extra_values=args.values,
                opts=child(self),
            )
        # PREINSTALLED: the nodes already advertise the GPU resource; nothing to install.

        self.register_outputs({"driver_stack": args.driver_stack.value})
