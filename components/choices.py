"""Closed choices shared by the components and the stack schema (which re-exports them).

They live here, below both, so that components never import the stack configuration."""

from __future__ import annotations

from enum import StrEnum


class Engine(StrEnum):
    VLLM = "vllm"  # GPU: vLLM's OpenAI-compatible server
    TRANSFORMERS = "transformers"  # CPU: `transformers serve`


class LoadBalancerKind(StrEnum):
    METALLB = "metallb"  # MetalLB hands the Gateway's Service an address from a pool
    EXISTING = "existing"  # the cluster already has a LoadBalancer implementation
    NODEPORT = "nodeport"  # a laptop cluster: reach the Gateway on node ports
    # A cloud's load balancer controller (AWS NLB, GCP L4) serves a Service the stack owns; chosen by the
    # aws/gcp compositions, never written in a stack file.
    CLOUD = "cloud"


class TlsMode(StrEnum):
    ACME = "acme"
    INTERNAL_CA = "internal_ca"
    EXISTING_SECRET = "existing_secret"


class AcmeSolver(StrEnum):
    HTTP01 = "http01"
    DNS01 = "dns01"


class Dns01Provider(StrEnum):
    RFC2136 = "rfc2136"
    ROUTE53 = "route53"
    CLOUDDNS = "clouddns"
    AZUREDNS = "azuredns"


class GpuDriverStack(StrEnum):
    DEVICE_PLUGIN = "device_plugin"  # drivers on the host; install only NVIDIA's device plugin
    GPU_OPERATOR = "gpu_operator"  # NVIDIA GPU operator installs drivers, toolkit and plugin
    PREINSTALLED = "preinstalled"  # the cluster already advertises nvidia.com/gpu


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class ScalingSignal(StrEnum):
    QUEUE_DEPTH = "queue_depth"  # vllm:num_requests_waiting from Prometheus
    CPU = "cpu"  # the CPU engine exports no queue metric: average CPU utilisation instead


class GpuProvisioner(StrEnum):
    """AWS: where GPU nodes come from."""

    KARPENTER = "karpenter"  # Karpenter launches GPU instances on demand and removes them when empty
    MANAGED_NODE_GROUP = "managed_node_group"  # a fixed-size EKS managed node group


class GpuAmiFamily(StrEnum):
    """AWS: the NVIDIA node image."""

    AL2023 = "al2023"  # Amazon Linux 2023 NVIDIA: driver + toolkit; the device plugin is installed by us
    BOTTLEROCKET = "bottlerocket"  # Bottlerocket NVIDIA: driver, toolkit and device plugin built in


class CapacityType(StrEnum):
    """AWS and GCP: how GPU machines are bought."""

    ON_DEMAND = "on-demand"
    SPOT = "spot"


class AwsLoadBalancerScheme(StrEnum):
    """AWS: who can reach the gateway's NLB."""

    INTERNET_FACING = "internet-facing"
    INTERNAL = "internal"  # only from the VPC and networks connected to it


class GcpLoadBalancerScheme(StrEnum):
    """GCP: who can reach the gateway's passthrough Network Load Balancer."""

    EXTERNAL = "external"
    INTERNAL = "internal"  # only from the VPC and networks connected to it


class GkeReleaseChannel(StrEnum):
    """GCP: how GKE upgrades the control plane and nodes (cluster.kubernetes_version is the floor)."""

    RAPID = "RAPID"
    REGULAR = "REGULAR"
    STABLE = "STABLE"
    EXTENDED = "EXTENDED"  # the longest support window, at extra cost after standard support ends


class GpuDriverVersion(StrEnum):
    """GCP: which NVIDIA driver GKE installs on GPU nodes."""

    DEFAULT = "DEFAULT"  # the default driver of the node's GKE version
    LATEST = "LATEST"  # the newest driver the node's GKE version supports


class GpuType(StrEnum):
    """GPU models a replica can ask for. The value is the name used in stack files."""

    T4 = "nvidia-t4"
    L4 = "nvidia-l4"
    A10G = "nvidia-a10g"
    L40S = "nvidia-l40s"
    A100_40GB = "nvidia-a100-40gb"
    A100_80GB = "nvidia-a100-80gb"
    H100_80GB = "nvidia-h100-80gb"
    H200 = "nvidia-h200"
    B200 = "nvidia-b200"
    A10 = "nvidia-a10"  # Azure NVads A10 v5: the full-GPU A10 24 GB (not AWS's A10G)
    H100_NVL = "nvidia-h100-nvl"  # Azure NCads H100 v5: H100 NVL, 94 GB (PCIe, not the 80 GB SXM)


# --- Azure (AKS) ---------------------------------------------------------------------------------


class UpgradeChannel(StrEnum):
    """AKS cluster auto-upgrade channel (autoUpgradeProfile.upgradeChannel), as the API spells it.

    `patch` keeps the pinned minor (cluster.kubernetes_version) and takes its newest patch as AKS releases
    it: fixes without an unreviewed minor bump (AKS docs, "Automatically upgrade an Azure Kubernetes Service
    cluster"); components/clusters/azure/aks.py explains the choice."""

    PATCH = "patch"
    STABLE = "stable"
    RAPID = "rapid"
    NODE_IMAGE = "node-image"
    NONE = "none"


class NodeOsUpgradeChannel(StrEnum):
    """autoUpgradeProfile.nodeOSUpgradeChannel, as the API spells it."""

    NODE_IMAGE = "NodeImage"
    SECURITY_PATCH = "SecurityPatch"
    UNMANAGED = "Unmanaged"
    NONE = "None"


class AksSkuTier(StrEnum):
    """Free: no uptime SLA (dev). Standard: financially backed API server SLA (prod)."""

    FREE = "Free"
    STANDARD = "Standard"
    PREMIUM = "Premium"


class AzureOsDiskType(StrEnum):
    """An AKS node pool's OS disk (osDiskType)."""

    EPHEMERAL = "Ephemeral"  # on the VM's local disk: faster, no storage cost, reimaged with the node
    MANAGED = "Managed"  # a managed disk, for sizes without a large enough local disk
