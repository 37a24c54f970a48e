"""The schema of a stack file: every `inferstack:*` key, its type, its default, and the cross-field rules.

A stack file (`stacks/Pulumi.<env>.yaml`) holds only what differs from the defaults defined here.
`load_stack_file` / `parse_stack_config` turn it into a validated `StackConfig`, or raise
`ConfigError` listing every problem with its field path and how to fix it.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import re
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, Optional

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    create_model,
    field_validator,
    model_validator,
)

from components.address_space import covers_every_address
from components.choices import (
    AcmeSolver,
    Dns01Provider,
    Engine,
    GpuDriverStack,
    LoadBalancerKind,
    TaintEffect,
    TlsMode,
)
from components.clusters.azure.gpu_vm_sizes import AZURE_GPU_VM_SIZES
from components.clusters.gcp.gpu_machines import GCP_GPU_MACHINES
from components.monitoring import PROMETHEUS_POD_LABELS
from guardrail.memory import DEFAULT_MAX_STREAMS, large_body_slots
from model_image.engine_flags import (
    TRANSFORMERS_MANAGED,
    VLLM_MANAGED,
    managed_flag_problems,
    unreviewed_flags,
    weakening_flags,
)
from stacks.cold_start import (
    ColdStartBudget,
    LoadMode,
    cold_start_budget,
    engine_seconds,
    stream_problem,
)
from stacks.config_aws import AWS_GPU_FAMILIES, AwsConfig
from stacks.config_azure import AzureConfig
from stacks.config_base import (
    DNS_NAME,
    K8sName,
    Platform,
    Quantity,
    Section,
    Tier,
    parse_cidrs,
    quantity_bytes,
)
from stacks.config_errors import ConfigError, CrossFieldErrors, field_path, problems_from, unknown_key_message
from stacks.config_gcp import GcpConfig
from stacks.config_operations import (
    AlertsConfig,
    ChatUiConfig,
    DashboardsConfig,
    GpuTelemetryConfig,
    GuardrailConfig,
    SloConfig,
)
from stacks.gpus import (
    DTYPE_BYTES,
    GIB,
    QUANTIZATION_BYTES,
    GpuType,
    estimate_memory,
    gib,
    smallest_gpu_count_that_fits,
    smallest_gpu_type_that_fits,
    weight_bytes_per_parameter,
)
from stacks.model_cache import model_cache_problem
from stacks.stack_yaml import YamlError, load_yaml

CONFIG_NAMESPACE = "inferstack"

_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
# Kubernetes label syntax (apimachinery validation.IsQualifiedName / IsValidLabelValue).
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")


# --- closed choices -------------------------------------------------------------------------------


class Dtype(StrEnum):
    AUTO = "auto"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    FLOAT32 = "float32"


class Quantization(StrEnum):
    FP8 = "fp8"
    INT8 = "int8"
    AWQ = "awq"
    GPTQ = "gptq"


# --- sections ---------------------------------------------------------------------------------------


#: Platforms whose clusters run metrics-server themselves, in kube-system: GKE ("metrics-server is
#: deployed in all GKE clusters") and AKS ("Metrics Server is by default deployed in AKS clusters", AKS docs
#: "Metrics Server VPA throttling").
MANAGED_METRICS_SERVER = {Platform.GCP: "GKE", Platform.AZURE: "AKS"}

#: The oldest Kubernetes minor a stack may target (see ClusterConfig._supported_kubernetes_version).
MIN_KUBERNETES_VERSION = (1, 30)


class MetricsServerConfig(Section):
    """The resource metrics API (metrics.k8s.io) that the CPU engine's `cpu` scaling trigger reads
    (components/metrics_server.py says who already runs one)."""

    install: bool | None = Field(
        None,
        description="install metrics-server (kubernetes-sigs chart) for the cpu trigger; default: yes on aws "
        "and onprem, no on gcp (GKE runs its own); false where the cluster already has one (k3s, k3d, "
        "kubespray with metrics_server_enabled)",
    )
    kubelet_insecure_tls: bool = Field(
        False,
        description="onprem: pass --kubelet-insecure-tls, for kubelets that serve self-signed certificates "
        "(kind, kubeadm without serverTLSBootstrap); metrics-server then does not verify them",
    )


class ClusterConfig(Section):
    kubernetes_version: str = Field(
        "1.34",
        pattern=r"^1\.[0-9]{2}$",
        description="Kubernetes minor version manifests are validated against",
    )

    @field_validator("kubernetes_version")
    @classmethod
    def _supported_kubernetes_version(cls, version: str) -> str:
        # The model server's preStop hook is the `sleep` action (no shell in the engine images needed):
        # PodLifecycleSleepAction is beta and on by default from Kubernetes 1.30 (KEP-3960), so an older API
        # server refuses the Deployment with "unknown field lifecycle.preStop.sleep".
        if tuple(int(part) for part in version.split(".")) < MIN_KUBERNETES_VERSION:
            raise ValueError(
                f"Kubernetes {version} is older than {'.'.join(map(str, MIN_KUBERNETES_VERSION))}, the oldest "
                "release whose API server accepts the model server's preStop `sleep` hook (KEP-3960): "
                "upgrade the cluster, or set the minor version it runs if it is newer"
            )
        return version

    kube_context: str | None = Field(None, description="kubeconfig context to deploy to (default: current)")
    kubeconfig: str | None = Field(None, description="path to a kubeconfig file (default: ~/.kube/config)")
    namespace: K8sName = Field("inferstack", description="namespace for the model server and its routes")
    render_yaml_to_directory: str | None = Field(
        None,
        min_length=1,
        description="onprem: write manifests to this directory instead of applying them (Argo CD / Flux); "
        "Secrets land there in plain text",
    )
    metrics_server: MetricsServerConfig = Field(
        default_factory=MetricsServerConfig,  # type: ignore[arg-type]
        description="metrics-server for the CPU engine's cpu scaling trigger",
    )


class ModelConfig(Section):
    uri: str = Field(
        ...,
        description="where the weights live: hf://org/name@<40-hex commit>, s3://bucket/prefix, "
        "gs://bucket/prefix or file:///path",
    )
    served_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$",
        description="model name clients send; default: the last path part of the uri",
    )
    parameters_b: float = Field(
        ..., gt=0, le=2000, description="parameter count in billions (sizes GPU memory)"
    )
    dtype: Dtype = Field(Dtype.AUTO, description="weight dtype the engine loads")
    quantization: Quantization | None = Field(None, description="weight quantization, if any")
    max_model_len: int = Field(8192, ge=128, le=1_048_576, description="max context length in tokens")
    kv_cache_bytes_per_token: int | None = Field(
        None,
        gt=0,
        description="KV cache per token (2 x layers x kv_heads x head_dim x bytes); default: an upper estimate",
    )

    hf_token_secret: K8sName | None = Field(
        None,
        description="gated or private hf:// repos: a Secret in the namespace with key `token`, mounted as a file "
        "in the fetch-model init container only (the engine never sees it)",
    )
    volume_claim: K8sName | None = Field(
        None, description="file:// models: the PersistentVolumeClaim holding them (mounted read-only)"
    )
    load_mode: LoadMode = Field(
        LoadMode.COPY,
        description="copy: the fetch init container downloads the weights, checks every file's sha256 and the "
        "engine loads the verified copy; stream: vLLM's Run:ai model streamer reads s3:// or gs:// straight "
        "into GPU memory (faster cold start, no sha256 check; vllm engine, dev tier only): "
        "docs/operating.md#cold-start",
    )

    @field_validator("uri")
    @classmethod
    def _uri_is_pinned(cls, uri: str) -> str:
        scheme, sep, rest = uri.partition("://")
        blob = re.match(r"^https://([a-z0-9]{3,24})\.blob\.core\.windows\.net/(.+)$", uri)
        if blob:
            raise ValueError(
                f"an Azure Blob URL: write it as az://{blob.group(1)}/{blob.group(2).strip('/')} "
                "(az://<account>/<container>/<prefix>)"
            )
        if not sep or scheme not in {"hf", "s3", "gs", "az", "file"}:
            raise ValueError(
                f"unsupported model uri {uri!r}: use hf://org/name@<commit>, s3://bucket/prefix, "
                "gs://bucket/prefix, az://account/container/prefix or file:///path"
            )
        hf_credentials = scheme == "hf" and (":" in rest or rest.count("@") > 1)
        if hf_credentials or (scheme != "hf" and "@" in rest.partition("/")[0]):
            # Never echo the uri: what precedes the @ is a secret (as model_image/uri.py refuses it).
            raise ValueError(
                f"the {scheme}:// uri carries credentials (user:secret@): remove them; the model server "
                "reads the bucket with the pod's own identity (IRSA / Pod Identity / Workload Identity) "
                "and a gated hub repository with model.hf_token_secret"
            )
        if scheme == "hf":
            repo, at, revision = rest.partition("@")
            if not at or not revision:
                raise ValueError(
                    f"{uri!r} has no revision: pin it, e.g. hf://{repo}@<40-hex commit sha> "
                    "(a branch like 'main' moves under you)"
                )
            if not _COMMIT_SHA.match(revision):
                raise ValueError(
                    f"revision {revision!r} is not a commit: pin the 40-hex commit sha from the hub's "
                    "'Files and versions' history"
                )
            if repo.count("/") != 1:
                raise ValueError(f"{uri!r}: the repository must be org/name")
        elif not rest.strip("/"):
            raise ValueError(f"{uri!r} names no bucket or path")
        return uri

    @property
    def scheme(self) -> str:
        """The uri's scheme: hf, s3, gs, az or file."""
        return self.uri.partition("://")[0]

    @property
    def bucket_and_prefix(self) -> tuple[str, str]:
        """For s3:// and gs:// uris: the bucket and the key prefix under it ("" when there is none). For
        az:// uris the "bucket" is the storage account (az://<account>/<container>/<prefix>):
        `azure_blob_location` splits the rest."""
        bucket, _, prefix = self.uri.partition("://")[2].strip("/").partition("/")
        return bucket, prefix

    @property
    def azure_blob_location(self) -> tuple[str, str, str]:
        """For az:// uris: (storage account, container, blob name prefix); "" for a missing part."""
        account, rest = self.bucket_and_prefix
        container, _, prefix = rest.partition("/")
        return account, container, prefix

    @model_validator(mode="after")
    def _source_fields(self) -> ModelConfig:
        scheme = self.scheme
        if scheme == "file" and not self.volume_claim:
            raise ValueError(
                "a file:// model needs model.volume_claim: the PersistentVolumeClaim that holds it"
            )
        if self.volume_claim and scheme != "file":
            raise ValueError("model.volume_claim is only used with a file:// uri: remove it")
        if self.hf_token_secret and scheme != "hf":
            raise ValueError("model.hf_token_secret is only used with an hf:// uri: remove it")
        if self.load_mode is LoadMode.STREAM and scheme not in ("s3", "gs"):
            # The engine and tier rules need the serving section: stacks/config.py _load_mode_problems.
            raise ValueError(f"model.load_mode stream: {stream_problem('vllm', scheme)}")
        return self

    @property
    def name(self) -> str:
        """The served model name clients send."""
        if self.served_name:
            return self.served_name
        path = self.uri.partition("://")[2].partition("@")[0].rstrip("/")
        return path.rsplit("/", 1)[-1]


class ApiKeysConfig(Section):
    clients: list[K8sName] = Field(
        default_factory=lambda: ["default"],
        min_length=1,
        max_length=16,  # Envoy Gateway allows 16 local rate-limit rules, one per client
        description="client ids (1 to 16); each gets its own key and its own rate-limit bucket",
    )
    existing_secret: K8sName | None = Field(
        None,
        description="a Secret in the namespace holding one key per client id (key = client id, value = API key); "
        "default: keys are generated and exported as a secret stack output",
    )


class ServingConfig(Section):
    engine: Engine = Field(Engine.VLLM, description="vllm (GPU) or transformers (CPU)")
    image: str = Field(
        ...,
        min_length=1,
        description="the model image built from model_image/ (tag, or @sha256 digest in prod)",
    )
    replicas: int = Field(1, ge=0, le=100, description="fixed replica count when autoscaling is disabled")
    gpu_type: GpuType = Field(GpuType.L4, description="GPU model each replica runs on (vllm)")
    gpus_per_replica: int = Field(1, description="GPUs per replica = tensor-parallel size (1, 2, 4 or 8)")
    gpu_memory_utilization: float = Field(
        0.9, gt=0.1, le=0.98, description="share of GPU memory vLLM may use"
    )
    cpu: Quantity = Field("4", description="CPU request = limit per replica")
    memory: Quantity = Field("32Gi", description="memory request = limit per replica")
    model_cache_size: Quantity = Field("50Gi", description="size limit of the model cache volume")
    shm_size: Quantity = Field(
        "8Gi", description="size of /dev/shm (tensor-parallel workers share memory there)"
    )
    api_keys: ApiKeysConfig = Field(default_factory=ApiKeysConfig)  # type: ignore[arg-type]
    extra_engine_args: list[str] = Field(
        default_factory=list,
        description="more engine flags, one word per entry (e.g. ['--max-num-seqs', '64']); never a flag the "
        "launcher sets (--host, --port, --api-key, --served-model-name, ..., in any spelling vLLM accepts) "
        "nor --config; in prod, no flag that weakens the endpoint (--trust-remote-code, ...: policy "
        "engine-flags-not-weakened), and only flags of the reviewed list (model_image/engine_flags.py "
        "PROD_REVIEWED: scheduling and memory knobs) or of serving.reviewed_engine_flags",
    )
    reviewed_engine_flags: list[str] = Field(
        default_factory=list,
        description="prod stacks: engine flags beyond the reviewed list that this stack's owners have checked "
        "(reads no file, reaches no address, imports no code, logs no request), written out in full "
        "(e.g. ['--max-seq-len-to-capture']); a weakening flag cannot be listed",
    )
    prefix_aware_routing: bool | None = Field(
        None,
        description="route each request to the replica most likely to hold its prompt's prefix in KV cache "
        "(Gateway API Inference Extension: InferencePool + endpoint picker); default: on for vllm when the "
        "model may run 2 or more replicas and never scales to zero (held models go through the KEDA HTTP "
        "add-on's interceptor instead); on-prem only once network.api_server_cidrs is set",
    )
    startup_timeout_seconds: int = Field(
        600, ge=60, le=3600, description="how long a model may take to load before the pod is restarted"
    )
    pre_stop_seconds: int = Field(
        15, ge=0, le=120, description="preStop sleep: time for the gateway to stop sending new requests"
    )
    drain_seconds: int = Field(
        60, ge=0, le=600, description="time the engine gets to finish streaming answers after SIGTERM"
    )
    termination_grace_seconds: int = Field(
        120, ge=1, le=3600, description="terminationGracePeriodSeconds; must cover pre_stop + drain"
    )

    @field_validator("gpus_per_replica")
    @classmethod
    def _tensor_parallel_size(cls, gpus: int) -> int:
        if gpus not in (1, 2, 4, 8):
            raise ValueError(f"{gpus} GPUs cannot be split evenly by tensor parallelism: use 1, 2, 4 or 8")
        return gpus

    @field_validator("image")
    @classmethod
    def _image_has_tag(cls, image: str) -> str:
        last = image.rsplit("/", 1)[-1]
        if "@sha256:" not in image and ":" not in last:
            raise ValueError(f"image {image!r} has no tag: pin a tag or an @sha256 digest (never :latest)")
        if image.endswith(":latest"):
            raise ValueError(f"image {image!r} uses :latest: pin a version tag or an @sha256 digest")
        return image


class AutoscalingConfig(Section):
    enabled: bool = Field(True, description="KEDA scales replicas; off: serving.replicas is fixed")
    min_replicas: int = Field(1, ge=0, le=100, description="0 lets GPU replicas (and nodes) scale to zero")
    max_replicas: int = Field(
        4, ge=1, le=100, description="upper bound on replicas (and GPUs: x gpus_per_replica)"
    )
    target_queue_depth: int = Field(
        5,
        ge=1,
        le=1000,
        description="waiting requests per replica (vllm:num_requests_waiting) before scaling out",
    )
    cpu_target_percent: int = Field(
        70, ge=10, le=95, description="CPU engine fallback: average CPU utilisation target (no queue metric)"
    )
    polling_interval_seconds: int = Field(15, ge=5, le=300, description="how often KEDA reads the metric")
    cooldown_seconds: int | None = Field(
        None,
        ge=0,
        le=86400,
        description="with min_replicas 0: idle seconds before scaling to zero; at least the cold-start budget "
        "(serving.startup_timeout_seconds + image pull + GPU node provisioning), which is the default",
    )
    scale_down_stabilization_seconds: int = Field(
        300,
        ge=0,
        le=3600,
        description="a lower replica count must hold this long before replicas are removed",
    )


class MonitoringConfig(Section):
    install_prometheus: bool = Field(
        True, description="install kube-prometheus-stack (Prometheus + operator); off: use prometheus_url"
    )
    prometheus_url: str | None = Field(
        None, pattern=r"^https?://", description="an existing Prometheus the autoscaler queries"
    )
    pod_monitor: bool = Field(True, description="create a PodMonitor (needs the Prometheus operator's CRDs)")
    pod_monitor_labels: dict[str, str] = Field(
        default_factory=dict,
        description="labels put on every PodMonitor so the Prometheus selects it; an existing "
        "kube-prometheus-stack with default values selects release: <its Helm release name>",
    )
    prometheus_namespace: K8sName = Field(
        "monitoring", description="namespace the Prometheus runs in (installed there; allowed to scrape)"
    )
    prometheus_pod_labels: dict[str, str] = Field(
        default_factory=lambda: dict(PROMETHEUS_POD_LABELS),
        description="labels of the Prometheus server pods, the only pods allowed to scrape the model server",
    )
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)  # type: ignore[arg-type]
    dashboards: DashboardsConfig = Field(default_factory=DashboardsConfig)  # type: ignore[arg-type]
    gpu_telemetry: GpuTelemetryConfig = Field(default_factory=GpuTelemetryConfig)  # type: ignore[arg-type]

    @field_validator("pod_monitor_labels", "prometheus_pod_labels")
    @classmethod
    def _are_labels(cls, found: dict[str, str]) -> dict[str, str]:
        bad = [f"{k}={v}" for k, v in found.items() if not _LABEL_KEY.match(k) or not _LABEL_VALUE.match(v)]
        if bad:
            raise ValueError(
                f"not Kubernetes labels: {', '.join(bad)} (key: [prefix/]name of letters, digits, '-', '_', "
                "'.'; value: up to 63 of the same, starting and ending alphanumeric)"
            )
        return found


# --- network (NetworkPolicy egress; owned apart from monitoring/autoscaling) ----------------------------


class EgressRuleConfig(Section):
    """One extra egress allow for the model server's pods: a network and the TCP ports on it."""

    cidr: str = Field(..., description="destination network in CIDR form, e.g. 10.1.2.0/24 or 1.2.3.4/32")
    ports: list[int] = Field(..., min_length=1, description="TCP ports on that network (1-65535)")

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, cidr: str) -> str:
        return parse_cidrs([cidr])[0]

    @field_validator("ports")
    @classmethod
    def _ports(cls, ports: list[int]) -> list[int]:
        for port in ports:
            if not 1 <= port <= 65535:
                raise ValueError(f"{port} is not a TCP port: use 1-65535")
        return ports


class NetworkConfig(Section):
    dns_cidrs: list[str] | None = Field(
        None,
        description="resolvers on the node that no pod label matches, reached on port 53 besides the "
        "kube-dns pods (ipBlock peers); default: NodeLocal DNSCache's link-local addresses "
        "169.254.20.10/32 and 169.254.25.10/32, plus on gcp the Services range (GKE's node cache answers "
        "on the kube-dns Service IP) and on onprem the kube-dns Service IPs of kubeadm/kind (10.96.0.10), "
        "k3s/RKE2 (10.43.0.10) and kubespray (10.233.0.3). Setting it replaces the default: list your "
        "node cache's address and your kube-dns Service IP (kubectl -n kube-system get svc kube-dns) as /32",
    )
    extra_egress: list[EgressRuleConfig] = Field(
        default_factory=list,
        description="more destinations the model server's pods may reach (e.g. an internal model mirror "
        "or HTTPS proxy): a list of {cidr, ports}",
    )
    model_store_cidrs: list[str] | None = Field(
        None,
        description="networks the model server's pods may reach on 443 to fetch the model (ipBlock peers; the "
        "engine shares the pod's network). Default: prod aws with s3:// - the private subnets, where the "
        "stack's S3 interface endpoint answers; prod gcp with gs:// - 199.36.153.8/30 (private.googleapis.com, "
        "through the stack's private googleapis.com zone); dev stacks - 0.0.0.0/0. A prod stack with any other "
        "store (hf://, on-prem buckets) sets this to its mirror's or proxy's network, or sets "
        "allow_internet_egress. A list that admits the internet is refused in prod",
    )
    allow_internet_egress: bool = Field(
        False,
        description="prod stacks: accept that the model server's pods reach the internet on 443 where the model "
        "store has no private range (hf://, a bucket on another cloud). The engine can then reach the "
        "internet too; mirror the model to the stack's bucket instead where you can",
    )

    api_server_cidrs: list[str] | None = Field(
        None,
        description="the Kubernetes API server's addresses (`kubectl get endpoints kubernetes -n default`), "
        "which the endpoint pickers of prefix-aware routing watch; needed on-prem where a model uses it "
        "(aws: the VPC; gcp: the control plane and node ranges)",
    )

    @field_validator("dns_cidrs", "model_store_cidrs", "api_server_cidrs")
    @classmethod
    def _cidr_lists(cls, cidrs: list[str] | None) -> list[str] | None:
        return None if cidrs is None else parse_cidrs(cidrs)


class LoadBalancerConfig(Section):
    kind: LoadBalancerKind = Field(LoadBalancerKind.EXISTING, description="how the gateway gets its address")
    metallb_pool: K8sName | None = Field(None, description="MetalLB IPAddressPool the address comes from")
    address: str | None = Field(
        None, description="a fixed IP for the Gateway's Service, if the pool allows it"
    )
    http_node_port: int = Field(30080, ge=30000, le=32767, description="nodeport kind: port for HTTP")
    https_node_port: int = Field(30443, ge=30000, le=32767, description="nodeport kind: port for HTTPS")

    @field_validator("address")
    @classmethod
    def _is_ip(cls, address: str | None) -> str | None:
        if address is not None:
            ipaddress.ip_address(address)
        return address


class RateLimitConfig(Section):
    requests_per_minute: int = Field(
        600, ge=1, le=1_000_000, description="per client id, per gateway replica"
    )


class TokenQuotaConfig(Section):
    """One API client's token budget, counted from the responses' `usage` (components/token_quota.py)."""

    client: K8sName = Field(..., description="the API client id (one of serving.api_keys.clients)")
    tokens_per_minute: int | None = Field(
        None, ge=1, le=10**12, description="prompt + completion tokens per minute, all models together"
    )
    tokens_per_day: int | None = Field(
        None, ge=1, le=10**15, description="prompt + completion tokens per day, all models together"
    )

    @model_validator(mode="after")
    def _some_budget(self) -> TokenQuotaConfig:
        if self.tokens_per_minute is None and self.tokens_per_day is None:
            raise ValueError(
                f"token quota for {self.client!r} sets no budget: give tokens_per_minute, tokens_per_day or both"
            )
        if self.tokens_per_minute and self.tokens_per_day and self.tokens_per_minute > self.tokens_per_day:
            raise ValueError(
                f"token quota for {self.client!r}: tokens_per_minute ({self.tokens_per_minute:,}) is more than "
                f"tokens_per_day ({self.tokens_per_day:,}), so the minute budget can never bind: lower it, or "
                "check the two numbers are not swapped"
            )
        return self


class QuotaStoreConfig(Section):
    """The Redis the gateway's global rate limit counts tokens in (only with gateway.token_quotas)."""

    persistence: bool = Field(
        False,
        description="keep the counters on a PersistentVolumeClaim across Redis restarts; off: a restart "
        "forgets the minute's and the day's counts (clients get their full budget back)",
    )
    size: Quantity = Field("1Gi", description="size of the claim when persistence is on")
    storage_class: K8sName | None = Field(
        None, description="StorageClass of the claim (default: the cluster's default class)"
    )


class GatewayConfig(Section):
    hostname: str = Field(..., description="DNS name clients use; the certificate is issued for it")
    load_balancer: LoadBalancerConfig = Field(default_factory=LoadBalancerConfig)  # type: ignore[arg-type]
    allowed_source_cidrs: list[str] = Field(
        default_factory=lambda: ["0.0.0.0/0"], min_length=1, description="client networks let through"
    )
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)  # type: ignore[arg-type]
    token_quotas: list[TokenQuotaConfig] = Field(
        default_factory=list,
        description="token budgets per API client (per minute and/or per day), enforced by the gateway from "
        "each response's usage, streamed ones included; 429 with Retry-After when spent",
    )
    quota_store: QuotaStoreConfig = Field(default_factory=QuotaStoreConfig)  # type: ignore[arg-type]
    envoy_replicas: int = Field(
        2,
        ge=1,
        description="Envoy proxy pods behind the gateway (with 2 or more, a PDB keeps one serving during "
        "node drains); 1 on a laptop saves about 0.5 GiB",
    )

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, hostname: str) -> str:
        if not DNS_NAME.match(hostname):
            raise ValueError(
                f"{hostname!r} is not a lowercase DNS name with a domain (e.g. llm.example.com; "
                "for a laptop use llm.127.0.0.1.nip.io or llm.localtest.me)"
            )
        return hostname

    @field_validator("allowed_source_cidrs")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        return parse_cidrs(cidrs)


class Dns01Config(Section):
    provider: Dns01Provider = Field(..., description="DNS service that answers the DNS-01 challenge")
    rfc2136_nameserver: str | None = Field(None, description="rfc2136: host:port of the authoritative server")
    rfc2136_tsig_key_name: str | None = Field(None, description="rfc2136: TSIG key name the server knows")
    rfc2136_tsig_secret: K8sName | None = Field(None, description="rfc2136: Secret holding the TSIG key")
    route53_region: str | None = Field(
        None, description="route53: AWS region (credentials from the pod identity)"
    )
    route53_hosted_zone_id: str | None = Field(
        None, description="route53: hosted zone id (default: looked up)"
    )
    clouddns_project: str | None = Field(
        None, description="clouddns: GCP project of the zone (Workload Identity)"
    )
    clouddns_hosted_zone_name: str | None = Field(
        None,
        pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="clouddns: managed zone name (default: gcp.dns_zone; cert-manager may write only there)",
    )

    @model_validator(mode="after")
    def _provider_fields(self) -> Dns01Config:
        needed = {
            Dns01Provider.RFC2136: ("rfc2136_nameserver", "rfc2136_tsig_key_name", "rfc2136_tsig_secret"),
            Dns01Provider.ROUTE53: ("route53_region",),
            Dns01Provider.CLOUDDNS: ("clouddns_project",),
            Dns01Provider.AZUREDNS: (),  # the zone is azure.dns_zone (stacks/rules_azure.py)
        }[self.provider]
        missing = [f for f in needed if getattr(self, f) is None]
        if missing:
            raise ValueError(f"dns01 provider {self.provider.value} needs {', '.join(missing)}")
        return self


class AcmeConfig(Section):
    email: str | None = Field(None, description="account email; required for ACME (expiry notices)")
    server: str = Field(
        "https://acme-v02.api.letsencrypt.org/directory",
        pattern=r"^https://",
        description="ACME directory (Let's Encrypt staging: https://acme-staging-v02.api.letsencrypt.org/directory)",
    )
    solver: AcmeSolver = Field(AcmeSolver.HTTP01, description="how the ACME CA checks the domain")
    dns01: Dns01Config | None = None


class InternalCaConfig(Section):
    common_name: str = Field(
        "InferStack internal CA", min_length=1, description="subject of the CA certificate"
    )
    validity_hours: int = Field(24 * 365 * 5, ge=24, description="lifetime of the CA certificate")


class TlsConfig(Section):
    mode: TlsMode = Field(TlsMode.INTERNAL_CA, description="where the certificate comes from")
    acme: AcmeConfig = Field(default_factory=AcmeConfig)  # type: ignore[arg-type]
    internal_ca: InternalCaConfig = Field(default_factory=InternalCaConfig)  # type: ignore[arg-type]
    existing_secret: K8sName | None = Field(
        None, description="existing_secret mode: a kubernetes.io/tls Secret in the gateway's namespace"
    )
    certificate_duration_hours: int = Field(2160, ge=24, description="requested certificate lifetime")


class Taint(Section):
    key: str = Field(..., min_length=1)
    value: str | None = None
    effect: TaintEffect = TaintEffect.NO_SCHEDULE


class GpuPoolConfig(Section):
    driver_stack: GpuDriverStack = Field(
        GpuDriverStack.DEVICE_PLUGIN, description="what makes nvidia.com/gpu schedulable on the GPU nodes"
    )
    node_selector: dict[str, str] = Field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"},
        description="labels that pick the GPU nodes",
    )
    taints: list[Taint] = Field(
        default_factory=lambda: [Taint(key="nvidia.com/gpu", effect=TaintEffect.NO_SCHEDULE)],
        description="taints on the GPU nodes; the model server tolerates them",
    )


# --- several models ---------------------------------------------------------------------------------

#: The sections a model (or a variant) may override; everything else is the stack's, shared by all models.
PER_MODEL_SECTIONS = ("model", "serving", "autoscaling", "slo")
#: Per-variant: a variant is the same public model served another way (other weights, image, flags), and
#: sized on its own (a 10 % canary needs fewer replicas).
PER_VARIANT_SECTIONS = ("model", "serving", "autoscaling")
#: Fields a model may not override: the public name is the entry's `name`; API keys are the stack's.
_NOT_PER_MODEL = {"model": {"served_name"}, "serving": {"api_keys"}, "autoscaling": set(), "slo": set()}
#: Sections that only make sense for the whole stack, never in one model's view of it.
STACK_WIDE_SECTIONS = ("guardrail", "chat_ui")
#: The component name of the single-model form (stacks/workload.py NAME): its objects keep their names.
SINGLE_MODEL_RESOURCE_NAME = "llm"
#: Longest `id`: object names are `llm-<id>[-<variant>]` plus suffixes such as `-fetch-model-egress`,
#: and Service names are DNS labels (63 characters).
_MAX_ID = 24
_ID = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def _override_of(section: type[Section], per: str) -> type[Section]:
    """`section` with every field optional and no default: what a model or variant sets over the stack's
    section. Validators run on the merged section (the real class), so an override is checked exactly as
    the same keys would be at the top level."""
    fields: dict[str, Any] = {
        name: (Optional[info.annotation], Field(None, description=info.description))  # noqa: UP045
        for name, info in section.model_fields.items()
        if name not in _NOT_PER_MODEL[section.__name__.removesuffix("Config").lower()]
    }
    return create_model(
        f"{per}{section.__name__.removesuffix('Config')}Override",
        __base__=Section,
        __doc__=f"Keys of `{section.__name__.removesuffix('Config').lower()}` this {per.lower()} sets "
        "differently from the stack's section.",
        **fields,
    )


ModelModelOverride = _override_of(ModelConfig, "Model")
ModelServingOverride = _override_of(ServingConfig, "Model")
ModelAutoscalingOverride = _override_of(AutoscalingConfig, "Model")
ModelSloOverride = _override_of(SloConfig, "Model")
VariantModelOverride = _override_of(ModelConfig, "Variant")
VariantServingOverride = _override_of(ServingConfig, "Variant")
VariantAutoscalingOverride = _override_of(AutoscalingConfig, "Variant")


class VariantEntry(Section):
    """One version of a model behind the same public name (A/B, canary)."""

    name: str = Field(
        ...,
        pattern=r"^[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?$",
        description="label, e.g. v1 or canary (12 chars)",
    )
    weight: int = Field(
        ...,
        ge=0,
        le=100,
        description="percent of the model's API clients sent to this variant (each client sticks to one); "
        "a model's weights sum to 100",
    )
    model: VariantModelOverride | None = Field(None, description="model keys that differ for this variant")  # type: ignore[valid-type]
    serving: VariantServingOverride | None = Field(  # type: ignore[valid-type]
        None, description="serving keys that differ for this variant"
    )
    autoscaling: VariantAutoscalingOverride | None = Field(  # type: ignore[valid-type]
        None, description="autoscaling keys that differ for this variant (e.g. fewer replicas for a canary)"
    )

    @field_validator("name", mode="before")
    @classmethod
    def _short_label(cls, name: Any) -> Any:
        if isinstance(name, str) and len(name) > 12:
            raise ValueError(
                f"variant name {name!r} has {len(name)} characters, at most 12 (it is part of the objects' "
                "names): lowercase letters, digits and '-', e.g. v2 or canary"
            )
        return name


class ModelEntry(Section):
    """One model the stack serves, under its public name. Unset keys come from the stack's sections."""

    name: str = Field(
        ...,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$",
        description="the public model name clients send as `model` (and /v1/models lists)",
    )
    id: str | None = Field(
        None,
        pattern=_ID,
        max_length=_MAX_ID,
        description="short name for the model's Kubernetes objects (llm-<id>); default: from name",
    )
    model: ModelModelOverride | None = Field(None, description="model keys that differ for this model")  # type: ignore[valid-type]
    serving: ModelServingOverride | None = Field(None, description="serving keys that differ for this model")  # type: ignore[valid-type]
    autoscaling: ModelAutoscalingOverride | None = Field(  # type: ignore[valid-type]
        None, description="autoscaling keys that differ for this model (min_replicas 0: scale to zero)"
    )
    slo: ModelSloOverride | None = Field(  # type: ignore[valid-type]
        None, description="service-level objectives that differ for this model (alerts burn against them)"
    )
    variants: list[VariantEntry] = Field(
        default_factory=list,
        description="weighted versions of this model (A/B, canary); none: one version",
    )

    @property
    def object_id(self) -> str:
        """`id`, or the name made into a DNS label: lowercase, other characters as '-'."""
        if self.id:
            return self.id
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")
        return slug[:_MAX_ID].rstrip("-")


@dataclasses.dataclass(frozen=True)
class ServedVariant:
    """One Deployment the stack runs: a model, or one variant of it, with the stack as it sees it.

    `config` is the whole stack validated with this variant's model/serving/autoscaling merged over the
    stack's sections (variant over model over stack), so every single-model rule (memory, cache size,
    GPU family, egress) holds per variant. `resource_name` names its objects: `llm` in the single-model
    form (unchanged from before models existed), `llm-<id>` or `llm-<id>-<variant>` otherwise.
    """

    model_name: str
    variant: str | None
    weight: int
    # Not compared or shown: the single-model form's variant is the stack itself (a cycle).
    config: StackConfig = dataclasses.field(compare=False, repr=False)
    resource_name: str = ""
    path: str = ""  # where in the stack file it is defined, for messages: "" or "models[1].variants[0]"


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over`'s keys over `base`'s, recursing into mappings; None in `over` means unset."""
    merged = dict(base)
    for key, value in over.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _variant_values(
    data: dict[str, Any], entry: dict[str, Any], variant: dict[str, Any] | None
) -> dict[str, Any]:
    """The stack's values as one model variant sees them (no `models` key)."""
    # The guardrail and the chat UI are the whole stack's (their rules name the stack's models and
    # clients): a variant's view, validated as a stack of one model, leaves them out.
    values = {k: v for k, v in data.items() if k not in ("models", *STACK_WIDE_SECTIONS)}
    for section in PER_MODEL_SECTIONS:
        merged = _deep_merge(_as_dict(data.get(section)), _as_dict(entry.get(section)))
        if variant is not None and section in PER_VARIANT_SECTIONS:
            merged = _deep_merge(merged, _as_dict(variant.get(section)))
        if section == "model" and entry.get("name") is not None:
            merged["served_name"] = entry["name"]
        values[section] = merged
    return values


def _shared_pool_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Several models on one cloud GPU pool: a gpu_limit the stack file sets must hold every model at its
    min_replicas together (each model alone is checked against it as a stack of its own)."""
    section = cfg.platform_section
    limit = section.gpu_nodes.gpu_limit if section is not None else None  # type: ignore[attr-defined]
    if not limit:
        return []
    needed = sum(
        v.config.autoscaling.min_replicas * v.config.serving.gpus_per_replica
        for v in cfg.served
        if v.config.uses_gpu
    )
    if needed <= limit:
        return []
    return [
        (
            f"{cfg.platform.value}.gpu_nodes.gpu_limit",
            f"{limit} GPUs cannot hold every model at its min_replicas together ({needed} GPUs): raise it to "
            f"at least {needed}, or lower a model's autoscaling.min_replicas",
        )
    ]


def _without_model_store(values: dict[str, Any]) -> dict[str, Any]:
    """A later model's view of the stack: the platform's `model_store` (the bucket the stack makes, read
    by the first model's ServiceAccount) is the first model's, so its rules (e.g. "only used with a gs://
    model") are not asked of the others."""
    trimmed = dict(values)
    for platform in ("aws", "gcp"):
        section = trimmed.get(platform)
        if isinstance(section, dict) and "model_store" in section:
            trimmed[platform] = {k: v for k, v in section.items() if k != "model_store"}
    return trimmed


def _located(
    problems: list[tuple[str, str]],
    entry: dict[str, Any],
    variant: dict[str, Any] | None,
    i: int,
    j: int | None,
) -> list[tuple[str, str]]:
    """Problems of a variant's merged stack, located at the key that set the value: the variant's, the
    model's, or the stack's own section (then said to be for this model). Problems already located in
    `models` (an override's own type errors) stay as they are, and a relocated problem is dropped where
    one is already reported at the same place."""
    located: list[tuple[str, str]] = []
    for path, message in problems:
        section, _, rest = path.partition(".")
        key = rest.partition(".")[0].partition("[")[0]
        if path.startswith("models["):
            where = path
        elif section not in PER_MODEL_SECTIONS:
            where = path  # a shared section: the same for every model
        elif variant is not None and key and key in _as_dict(variant.get(section)):
            where = f"models[{i}].variants[{j}].{path}"
        elif message.startswith("required"):
            # Set nowhere: ask for it where this model (or variant) is written, not in the shared section.
            where = f"models[{i}]" + (f".variants[{j}]" if variant is not None else "") + f".{path}"
        elif key and key in _as_dict(entry.get(section)):
            where = f"models[{i}].{path}"
        else:
            label = entry.get("name", f"models[{i}]")
            suffix = f" variant {variant.get('name')}" if variant is not None else ""
            where = path
            message = f"for model {label}{suffix}: {message}"
        if not any(w == where for w, _ in located):
            located.append((where, message))
    return located


# --- the whole file -----------------------------------------------------------------------------------


class StackConfig(Section):
    """One stack file. Keys are `inferstack:<field>` in Pulumi.<env>.yaml."""

    platform: Platform = Field(
        Platform.ONPREM,
        description="where the cluster is: onprem = any existing cluster; aws = VPC + EKS, gcp = VPC + GKE, "
        "made by the stack",
    )
    tier: Tier = Field(Tier.DEV, description="prod turns advisory policies into mandatory ones")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)  # type: ignore[arg-type]
    model: ModelConfig
    serving: ServingConfig
    autoscaling: AutoscalingConfig = Field(default_factory=AutoscalingConfig)  # type: ignore[arg-type]
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)  # type: ignore[arg-type]
    gateway: GatewayConfig
    tls: TlsConfig = Field(default_factory=TlsConfig)  # type: ignore[arg-type]
    gpu_pool: GpuPoolConfig = Field(default_factory=GpuPoolConfig)  # type: ignore[arg-type]
    network: NetworkConfig = Field(default_factory=NetworkConfig)  # type: ignore[arg-type]
    slo: SloConfig = Field(
        default_factory=SloConfig,  # type: ignore[arg-type]
        description="what each model promises (availability, time to first token); models[].slo overrides",
    )
    guardrail: GuardrailConfig = Field(default_factory=GuardrailConfig)  # type: ignore[arg-type]
    chat_ui: ChatUiConfig = Field(default_factory=ChatUiConfig)  # type: ignore[arg-type]
    aws: AwsConfig | None = Field(
        None, description="platform aws: region, network, EKS, GPU nodes, model bucket"
    )
    gcp: GcpConfig | None = Field(
        None, description="platform gcp: project, region, network, GKE, GPU nodes, model bucket"
    )
    azure: AzureConfig | None = Field(
        None,
        description="platform azure: subscription, location, VNet, AKS, GPU nodes, Blob model store",
    )
    models: list[ModelEntry] | None = Field(
        None,
        min_length=1,
        max_length=16,
        description="several models behind one hostname and one set of API keys: each entry's unset keys "
        "come from the stack's model/serving/autoscaling sections (shared defaults, written once); "
        "absent: the stack serves the one model of those sections",
    )

    _served: list[ServedVariant] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _resolve_models(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> StackConfig:
        """With `models`, the stack-level model/serving/autoscaling are the first model's (so every
        single-model rule runs on it), and every other model and variant is validated as a stack of its
        own; its problems are located at the key that set the value."""
        entries = data.get("models") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            cfg = _validated(handler, data)
            if cfg.models is None:
                cfg._served = [ServedVariant(cfg.model.name, None, 100, cfg, SINGLE_MODEL_RESOURCE_NAME, "")]
                if problems := _operations_problems(cfg):
                    raise CrossFieldErrors(problems)
            return cfg
        plan: list[tuple[int, dict[str, Any], int | None, dict[str, Any] | None]] = []
        for i, entry in enumerate(entries):
            variants = entry.get("variants") or []
            if isinstance(variants, list) and variants and all(isinstance(v, dict) for v in variants):
                plan.extend((i, entry, j, variant) for j, variant in enumerate(variants))
            else:
                plan.append((i, entry, None, None))
        first_i, first_entry, first_j, first_variant = plan[0]
        try:
            cfg = _validated(handler, {**data, **_variant_values(data, first_entry, first_variant)})
        except ValidationError as err:
            problems = problems_from(err, StackConfig)
            raise CrossFieldErrors(_located(problems, first_entry, first_variant, first_i, first_j)) from None
        served: list[ServedVariant] = []
        problems = []
        assert cfg.models is not None
        for i, entry, j, variant in plan:
            model = cfg.models[i]
            name = f"{SINGLE_MODEL_RESOURCE_NAME}-{model.object_id}"
            path = f"models[{i}]" + (f".variants[{j}]" if j is not None else "")
            if variant is not None:
                name = f"{name}-{variant['name']}"
            if (i, j) == (first_i, first_j):
                variant_cfg = cfg
            else:
                try:
                    variant_cfg = StackConfig.model_validate(
                        _without_model_store(_variant_values(data, entry, variant))
                    )
                except ValidationError as err:
                    problems.extend(_located(problems_from(err, StackConfig), entry, variant, i, j))
                    continue
            weight = model.variants[j].weight if j is not None else 100
            served.append(
                ServedVariant(
                    model.name,
                    model.variants[j].name if j is not None else None,
                    weight,
                    variant_cfg,
                    name,
                    path,
                )
            )
        # The rules across models read cfg.served: resolved first (a failure below discards cfg anyway).
        cfg._served = served
        problems.extend(_models_problems(cfg))
        problems.extend(_operations_problems(cfg))
        if problems:
            raise CrossFieldErrors(list(dict.fromkeys(problems)))
        return cfg

    @property
    def served(self) -> list[ServedVariant]:
        """Every Deployment the stack runs, in file order: one per model, or per variant of a model."""
        return list(self._served)

    @property
    def model_names(self) -> list[str]:
        """The public model names, in file order (what /v1/models lists)."""
        return list(dict.fromkeys(v.model_name for v in self._served))

    @property
    def routes_by_model(self) -> bool:
        """Whether the gateway reads the `model` field (Envoy AI Gateway): several models or variants,
        token quotas, or a model that scales to zero (its requests are held and /v1/models answered by
        the gateway), or prefix-aware routing (an InferencePool backend). A single model without these keeps
        the plain HTTPRoute to its Service."""
        return (
            (
                self.models is not None
                and (len(self._served) > 1 or any(v.variant is not None for v in self._served))
            )
            or bool(self.gateway.token_quotas)
            or any(v.config.scales_to_zero or v.config.uses_inference_pool for v in self._served)
        )

    @property
    def uses_inference_pool(self) -> bool:
        """Prefix-cache-aware routing (InferencePool + endpoint picker) for this stack's model:
        serving.prefix_aware_routing, by default on for vLLM that may run 2 or more replicas and never
        scales to zero (a held model is reached through the KEDA HTTP add-on's interceptor, which proxies
        to the Service; AI Gateway does not apply header mutations to InferencePool backends)."""
        if self.serving.engine is not Engine.VLLM or self.scales_to_zero:
            return False
        if self.serving.prefix_aware_routing is not None:
            return self.serving.prefix_aware_routing
        if self.platform is Platform.ONPREM and self.network.api_server_cidrs is None:
            # The endpoint picker's egress to the API server needs its addresses, which only the site
            # knows; without them the default is off (the summary says how to turn it on).
            return False
        most = self.autoscaling.max_replicas if self.autoscaling.enabled else self.serving.replicas
        return most >= 2

    @property
    def scales_to_zero(self) -> bool:
        """Queue-depth autoscaling that may reach zero replicas (the vLLM engine only)."""
        a = self.autoscaling
        return a.enabled and a.min_replicas == 0 and self.serving.engine is Engine.VLLM

    @property
    def uses_gpu(self) -> bool:
        return self.serving.engine is Engine.VLLM

    @property
    def uses_cpu_trigger(self) -> bool:
        """KEDA scales some model on CPU utilisation (the CPU engine exports no queue metric), through
        metrics.k8s.io: this stack's own sections, or any model or variant it serves (with `models`, the
        stack's sections are the first model's, and a later model may be the CPU one)."""
        if self.autoscaling.enabled and self.serving.engine is Engine.TRANSFORMERS:
            return True
        # The single-model form's one variant is the stack itself (no recursion there).
        return any(v.config is not self and v.config.uses_cpu_trigger for v in self._served)

    @property
    def platform_section(self) -> Section | None:
        """The cloud platform's own section (`aws`, `gcp`), or None on-prem (PLATFORM_SECTIONS)."""
        return getattr(self, self.platform.value) if self.platform in PLATFORM_SECTIONS else None

    @property
    def metrics_api_provider(self) -> str | None:
        """Who serves metrics.k8s.io to the cpu trigger: "stack" (the stack installs metrics-server),
        "platform" (GKE and AKS run their own: MANAGED_METRICS_SERVER), "cluster" (the stack file says the
        cluster has one), or None when nothing reads it."""
        if not self.uses_cpu_trigger:
            return None
        install = self.cluster.metrics_server.install
        if install is None:
            return "platform" if self.platform in MANAGED_METRICS_SERVER else "stack"
        return "stack" if install else "cluster"


def _validated(handler: ValidatorFunctionWrapHandler, data: Any) -> StackConfig:
    """The fields validated by pydantic, then the cross-field rules (raised as one ValidationError so a
    caller may locate them)."""
    cfg = handler(data)
    problems = _cross_field_problems(cfg)
    if problems:
        raise ValidationError.from_exception_data(
            "StackConfig",
            [{"type": "value_error", "loc": (), "input": data, "ctx": {"error": CrossFieldErrors(problems)}}],
        )
    return cfg


#: The most characters the guardrail reads of one request (components/guardrail.py GuardrailArgs' default,
#: about Llama Guard 3's 128K-token context).
GUARDRAIL_MAX_TEXT_CHARS = 500_000
#: Tokens Llama Guard 3's chat template adds around the conversation it classifies (the instructions and the
#: fourteen category definitions: about 300 to 400 with the Llama 3 tokenizer), rounded up.
CLASSIFIER_TEMPLATE_TOKENS = 512


def _operations_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Rules between the operating sections (stacks/config_operations.py) and the rest of the stack: the
    guardrail's classifier is one of the stack's models, and the clients named are the stack's API
    clients."""
    problems: list[tuple[str, str]] = []
    clients = list(cfg.serving.api_keys.clients)
    g = cfg.guardrail
    if g.enabled and g.classifier_model is not None:
        # From the file, not from the resolved variants: a model whose own view failed is still a model.
        names = [m.name for m in cfg.models] if cfg.models is not None else cfg.model_names
        if g.classifier_model not in names:
            problems.append(
                (
                    "guardrail.classifier_model",
                    f"{g.classifier_model!r} is not one of the stack's models ({', '.join(names)}): add the "
                    "moderation model to models (e.g. {name: llama-guard-3-1b, ...}) and name it here",
                )
            )
        elif any(m.name == g.classifier_model and m.variants for m in cfg.models or []):
            problems.append(
                (
                    "guardrail.classifier_model",
                    f"{g.classifier_model!r} has variants: the guardrail calls one Deployment; serve the "
                    "classifier as a model without variants",
                )
            )
        elif len(names) < 2:
            problems.append(
                (
                    "guardrail.classifier_model",
                    "the classifier would classify its own requests: serve it beside the model it guards "
                    "(a models: list of two or more)",
                )
            )
    classifier = next((v for v in cfg.served if v.model_name == g.classifier_model), None)
    if g.enabled and classifier is not None and cfg.models is not None:
        i = next(i for i, m in enumerate(cfg.models) if m.name == g.classifier_model)
        c = classifier.config
        if c.autoscaling.enabled and c.autoscaling.min_replicas == 0:
            problems.append(
                (
                    f"models[{i}].autoscaling.min_replicas",
                    "the guardrail's classifier may not scale to zero: the processor calls its Service directly "
                    "(no gateway hold wakes it), so every guarded request would fail or pass unchecked; use 1",
                )
            )
        longest = max(
            (v.config.model.max_model_len for v in cfg.served if v.model_name != g.classifier_model),
            default=0,
        )
        if c.model.max_model_len < longest + CLASSIFIER_TEMPLATE_TOKENS:
            problems.append(
                (
                    f"models[{i}].model.max_model_len",
                    f"{c.model.max_model_len} tokens cannot hold a guarded model's longest input ({longest}) "
                    f"plus Llama Guard's prompt template (~{CLASSIFIER_TEMPLATE_TOKENS}): the classifier would "
                    f"refuse those requests as too long; use at least {longest + CLASSIFIER_TEMPLATE_TOKENS}",
                )
            )
    if g.enabled and classifier is not None:
        # The processor's memory bounds how many large prompts it checks at once (guardrail/memory.py): it must
        # hold at least one of the longest the classifier reads (stacks/operations.py guardrail_args).
        chars = min(8 * classifier.config.model.max_model_len, GUARDRAIL_MAX_TEXT_CHARS)
        if large_body_slots(int(quantity_bytes(g.memory)), chars, DEFAULT_MAX_STREAMS) < 1:
            problems.append(
                (
                    "guardrail.memory",
                    f"{g.memory} cannot hold one check of the longest prompt the classifier reads ({chars} "
                    f"characters) beside {DEFAULT_MAX_STREAMS} small ones (guardrail/memory.py): raise it, "
                    "e.g. to 1Gi",
                )
            )
    for client in g.clients:
        if client not in clients:
            problems.append(
                (
                    f"guardrail.clients.{client}",
                    f"{client!r} is not an API client (serving.api_keys.clients: {', '.join(clients)})",
                )
            )
    chat = cfg.chat_ui
    if chat.enabled:
        if chat.client not in clients:
            problems.append(
                (
                    "chat_ui.client",
                    f"{chat.client!r} is not an API client: add it to serving.api_keys.clients (the chat UI "
                    "calls the endpoint with its own key)",
                )
            )
        if (
            cfg.platform is Platform.ONPREM
            and chat.pod_cidrs is None
            and "0.0.0.0/0" not in cfg.gateway.allowed_source_cidrs
        ):
            problems.append(
                (
                    "chat_ui.pod_cidrs",
                    "gateway.allowed_source_cidrs is an allow-list, and the chat UI calls the endpoint from "
                    "the pod network: name the cluster's pod CIDRs here (e.g. 10.244.0.0/16)",
                )
            )
        if chat.hostname == cfg.gateway.hostname:
            problems.append(
                (
                    "chat_ui.hostname",
                    f"{chat.hostname} is the API's hostname (gateway.hostname): give the chat UI its own, "
                    "e.g. chat.<your domain>",
                )
            )
    return problems


def _models_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Rules across the models of one stack: unique names and ids, weights that sum to 100."""
    problems: list[tuple[str, str]] = []
    seen_names: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    for i, model in enumerate(cfg.models or []):
        if model.name in seen_names:
            problems.append(
                (
                    f"models[{i}].name",
                    f"{model.name!r} is also models[{seen_names[model.name]}]: names are unique",
                )
            )
        seen_names.setdefault(model.name, i)
        if not model.object_id:
            problems.append(
                (f"models[{i}].id", f"{model.name!r} makes no object name: set id, e.g. llama-8b")
            )
        elif model.object_id in seen_ids:
            problems.append(
                (
                    f"models[{i}].id",
                    f"objects of {model.name!r} would be named like models[{seen_ids[model.object_id]}]'s "
                    f"(llm-{model.object_id}): set a distinct id",
                )
            )
        seen_ids.setdefault(model.object_id, i)
        if model.variants:
            total = sum(v.weight for v in model.variants)
            if total != 100:
                weights = " + ".join(f"{v.name} {v.weight}" for v in model.variants)
                problems.append(
                    (f"models[{i}].variants", f"weights sum to {total} ({weights}): make them sum to 100")
                )
            mine = [s for s in cfg.served if s.model_name == model.name]
            # Asked for by the stack, the model or a variant: each lands in the variant's resolved config.
            asked = any(s.config.serving.prefix_aware_routing for s in mine)
            held = [s.variant for s in mine if s.config.scales_to_zero and s.variant is not None]
            if asked and held:
                problems.append(
                    (
                        f"models[{i}].variants",
                        f"variant(s) {', '.join(held)} scale to zero (their requests go through the KEDA HTTP "
                        "add-on to a Service), and the variants of one model share one route rule, which "
                        "cannot mix Services and InferencePools: drop prefix_aware_routing for this model, or "
                        "keep every variant at min_replicas 1 or more",
                    )
                )
            names = [v.name for v in model.variants]
            for dup in sorted({n for n in names if names.count(n) > 1}):
                problems.append((f"models[{i}].variants", f"variant {dup!r} appears twice: names are unique"))
    if len(cfg.served) > 1:
        problems.extend(_shared_pool_problems(cfg))
        for variant in cfg.served[1:]:
            v = variant.config
            if v.model.scheme in {"s3", "gs", "az"} and v.platform is not Platform.ONPREM:
                problems.append(
                    (
                        f"{variant.path}.model.uri",
                        f"{v.model.uri}: with several models on {v.platform.value}, only the first may come "
                        f"from the stack's {v.model.scheme}:// model store (its reader role is granted to one "
                        "ServiceAccount in this version); serve the others from hf:// or file://, or run them "
                        "as stacks of their own",
                    )
                )
                break
    return problems


def _prefix_routing_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """An explicit prefix_aware_routing that cannot be built, and a picker with nowhere to watch from."""
    problems: list[tuple[str, str]] = []
    wanted = cfg.serving.prefix_aware_routing
    if wanted and cfg.serving.engine is not Engine.VLLM:
        problems.append(
            (
                "serving.prefix_aware_routing",
                "the transformers engine exports none of the metrics the endpoint picker scores on: remove it",
            )
        )
    elif wanted and cfg.scales_to_zero:
        problems.append(
            (
                "serving.prefix_aware_routing",
                "a model that scales to zero is reached through the KEDA HTTP add-on's interceptor while "
                "it wakes, which proxies to its Service: set autoscaling.min_replicas to 1 or more, or "
                "remove prefix_aware_routing",
            )
        )
    if cfg.uses_inference_pool and cfg.platform is Platform.ONPREM and cfg.network.api_server_cidrs is None:
        problems.append(
            (
                "network.api_server_cidrs",
                f"model {cfg.model.name} uses prefix-aware routing, whose endpoint picker watches the "
                "Kubernetes API, and the namespace's NetworkPolicies must let it reach the API server: list "
                "its addresses (`kubectl get endpoints kubernetes -n default`), or set "
                "serving.prefix_aware_routing: false",
            )
        )
    return problems


def _token_quota_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Every quota names a known API client, once."""
    clients = cfg.serving.api_keys.clients
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, quota in enumerate(cfg.gateway.token_quotas):
        if quota.client not in clients:
            problems.append(
                (
                    f"gateway.token_quotas[{i}].client",
                    f"{quota.client!r} is not an API client: use one of serving.api_keys.clients ({', '.join(clients)})",
                )
            )
        if quota.client in seen:
            problems.append(
                (f"gateway.token_quotas[{i}].client", f"{quota.client!r} has two quotas: merge them")
            )
        seen.add(quota.client)
    return problems


def _metrics_server_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    ms = cfg.cluster.metrics_server
    problems: list[tuple[str, str]] = []
    if cfg.platform in MANAGED_METRICS_SERVER and ms.install:
        problems.append(
            (
                "cluster.metrics_server.install",
                f"{MANAGED_METRICS_SERVER[cfg.platform]} runs metrics-server itself (kube-system) and owns the "
                "v1beta1.metrics.k8s.io APIService; a second one would take it over: remove install",
            )
        )
    if cfg.platform is not Platform.ONPREM and ms.kubelet_insecure_tls:
        problems.append(
            (
                "cluster.metrics_server.kubelet_insecure_tls",
                f"{cfg.platform.value} kubelets serve certificates signed by the cluster CA, which metrics-server "
                "verifies: remove kubelet_insecure_tls",
            )
        )
    return problems


def _reviewed_flag_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Prod stacks pass the engine only reviewed flags (model_image/engine_flags.py PROD_REVIEWED, or
    serving.reviewed_engine_flags), and no weakening flag can be declared reviewed."""
    s = cfg.serving
    problems = [
        (
            "serving.reviewed_engine_flags",
            f"{flag} weakens the endpoint ({why}): it cannot be reviewed in; remove it",
        )
        for flag, why in weakening_flags(s.reviewed_engine_flags)
    ]
    if cfg.tier.value != "prod" or s.engine is not Engine.VLLM:
        return problems
    weakening = weakening_flags(s.extra_engine_args)
    problems.extend(
        ("serving.extra_engine_args", f"{flag} weakens the endpoint ({why}): a prod stack may not pass it")
        for flag, why in weakening
    )
    unreviewed = [
        f
        for f in unreviewed_flags(s.extra_engine_args, s.reviewed_engine_flags)
        if f not in {w for w, _ in weakening}
    ]
    if unreviewed:
        problems.append(
            (
                "serving.extra_engine_args",
                f"a prod stack passes the engine only reviewed flags, and {', '.join(unreviewed)} "
                f"{'is' if len(unreviewed) == 1 else 'are'} not on the list (model_image/engine_flags.py "
                "PROD_REVIEWED: scheduling and memory knobs): check in vLLM's docs that each reads no file, "
                "reaches no address, imports no code and logs no request, then add it, written out in full, "
                "to serving.reviewed_engine_flags",
            )
        )
    return problems


#: Rules that read the whole stack: (field path, message with the fix) for each violation.
StackRules = Callable[["StackConfig"], list[tuple[str, str]]]
#: Each cloud platform's section, by the platform that reads it; the StackConfig field is named after the
#: platform's value. The section modules import only stacks/config_base.py.
PLATFORM_SECTIONS: dict[Platform, type[Section]] = {
    Platform.AWS: AwsConfig,
    Platform.GCP: GcpConfig,
    Platform.AZURE: AzureConfig,
}
# Rules between a platform's section and the rest of the stack, and rules of other concerns that read the
# whole stack, registered by the modules that hold them (stacks/rules_aws.py, stacks/rules_gcp.py,
# stacks/egress.py) when the `stacks` package loads (stacks/__init__.py imports them). They import this
# module; this module never imports them back, so a platform plugs in without touching the core schema.
_PLATFORM_RULES: dict[Platform, StackRules] = {}
_STACK_RULES: list[StackRules] = []


def register_platform_rules(platform: Platform, rules: StackRules) -> None:
    """Run `rules` on every stack of `platform` (after its section is known to be there). Once per platform."""
    if platform in _PLATFORM_RULES and _PLATFORM_RULES[platform] is not rules:
        raise RuntimeError(f"platform {platform.value} already has rules: {_PLATFORM_RULES[platform]}")
    _PLATFORM_RULES[platform] = rules


def register_stack_rules(rules: StackRules) -> None:
    """Run `rules` on every stack, in registration order."""
    if rules not in _STACK_RULES:
        _STACK_RULES.append(rules)


def _cross_field_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Rules that span sections. Returns (field path, message with the fix) for each violation."""
    problems: list[tuple[str, str]] = []
    s, a, t = cfg.serving, cfg.autoscaling, cfg.tls

    problems.extend(_metrics_server_problems(cfg))
    m = cfg.monitoring
    if m.alerts.alertmanager and not m.install_prometheus:
        problems.append(
            (
                "monitoring.alerts.alertmanager",
                "Alertmanager is installed with the stack's kube-prometheus-stack, which install_prometheus false "
                "leaves out: your Prometheus sends the alerts to its own Alertmanager; drop this",
            )
        )
    if m.dashboards.install_grafana and not m.install_prometheus:
        problems.append(
            (
                "monitoring.dashboards.install_grafana",
                "Grafana is installed with the stack's kube-prometheus-stack, which install_prometheus false "
                "leaves out: turn install_prometheus on, or point an existing Grafana's dashboard sidecar at "
                "monitoring.dashboards.namespace",
            )
        )
    # The launcher's own check (model_image/engine_flags.py), run at plan time: a flag the launcher sets,
    # however vLLM's parser would read it (--api_key, --api-k, --config FILE), crash-loops the pods.
    managed = VLLM_MANAGED if s.engine is Engine.VLLM else TRANSFORMERS_MANAGED
    problems.extend(
        ("serving.extra_engine_args", message)
        for message in managed_flag_problems(s.extra_engine_args, managed, "serving.extra_engine_args")
    )
    problems.extend(_reviewed_flag_problems(cfg))
    if a.min_replicas > a.max_replicas:
        problems.append(
            (
                "autoscaling.min_replicas",
                f"min_replicas {a.min_replicas} is above max_replicas {a.max_replicas}: lower it or raise max",
            )
        )
    if s.engine is Engine.TRANSFORMERS and a.enabled and a.min_replicas == 0:
        problems.append(
            (
                "autoscaling.min_replicas",
                "the transformers engine scales on CPU, which cannot wake a replica from zero: use min_replicas >= 1 "
                "or the vllm engine",
            )
        )
    if s.pre_stop_seconds + s.drain_seconds > s.termination_grace_seconds:
        problems.append(
            (
                "serving.termination_grace_seconds",
                f"pre_stop_seconds ({s.pre_stop_seconds}) + drain_seconds ({s.drain_seconds}) = "
                f"{s.pre_stop_seconds + s.drain_seconds} exceeds termination_grace_seconds "
                f"({s.termination_grace_seconds}); streams would be cut: raise the grace period or shorten the drain",
            )
        )
    if a.enabled and a.min_replicas == 0 and a.cooldown_seconds is not None:
        least = cold_start_seconds(cfg)
        if a.cooldown_seconds < least:
            problems.append(
                (
                    "autoscaling.cooldown_seconds",
                    f"{a.cooldown_seconds} s is shorter than a cold start ({least} s = "
                    f"{cold_start_budget_of(cfg).terms()}): KEDA would scale a still-loading replica back to "
                    f"zero; raise it to at least {least} or remove it to use that minimum",
                )
            )
    problems.extend(_load_mode_problems(cfg))
    if s.engine is Engine.TRANSFORMERS and s.gpus_per_replica != 1:
        problems.append(
            ("serving.gpus_per_replica", "the transformers engine runs on CPU: remove gpus_per_replica")
        )
    if s.engine is Engine.TRANSFORMERS and cfg.model.quantization is not None:
        problems.append(("model.quantization", "quantized checkpoints need the vllm engine on GPUs"))

    if t.mode is TlsMode.ACME:
        if not t.acme.email:
            problems.append(
                ("tls.acme.email", "ACME needs an account email for expiry notices: set tls.acme.email")
            )
        if t.acme.solver is AcmeSolver.DNS01 and t.acme.dns01 is None:
            problems.append(
                ("tls.acme.dns01", "solver dns01 needs a dns01 section (provider and its settings)")
            )
        if t.acme.solver is AcmeSolver.HTTP01 and not covers_every_address(cfg.gateway.allowed_source_cidrs):
            problems.append(
                (
                    "tls.acme.solver",
                    "HTTP-01 needs the CA to reach the gateway from the internet, but gateway.allowed_source_cidrs "
                    "restricts clients: use solver dns01 or tls.mode internal_ca",
                )
            )
        if t.acme.solver is AcmeSolver.HTTP01 and cfg.gateway.load_balancer.kind is LoadBalancerKind.NODEPORT:
            problems.append(
                (
                    "tls.acme.solver",
                    "HTTP-01 needs the CA to reach port 80 of the hostname, which a NodePort gateway does not "
                    "serve: use dns01, tls.mode internal_ca, or a LoadBalancer kind",
                )
            )
    if t.mode is TlsMode.EXISTING_SECRET and not t.existing_secret:
        problems.append(
            ("tls.existing_secret", "mode existing_secret needs the name of a kubernetes.io/tls Secret")
        )

    lb = cfg.gateway.load_balancer
    if lb.kind is LoadBalancerKind.CLOUD and cfg.platform is Platform.ONPREM:
        problems.append(
            (
                "gateway.load_balancer.kind",
                "cloud is what the aws and gcp platforms use; on-prem pick metallb, existing or nodeport",
            )
        )
    if lb.kind is LoadBalancerKind.METALLB and not lb.metallb_pool:
        problems.append(("gateway.load_balancer.metallb_pool", "kind metallb needs the IPAddressPool name"))
    if lb.kind is not LoadBalancerKind.METALLB and lb.metallb_pool:
        problems.append(
            ("gateway.load_balancer.metallb_pool", f"only used with kind metallb, not {lb.kind.value}")
        )
    if lb.http_node_port == lb.https_node_port:
        problems.append(("gateway.load_balancer.https_node_port", "must differ from http_node_port"))

    m = cfg.monitoring
    if (
        not m.install_prometheus
        and not m.prometheus_url
        and cfg.autoscaling.enabled
        and s.engine is Engine.VLLM
    ):
        problems.append(
            (
                "monitoring.prometheus_url",
                "queue-depth autoscaling needs Prometheus: set prometheus_url or install_prometheus: true",
            )
        )
    if (
        not m.install_prometheus
        and m.prometheus_url
        and m.pod_monitor
        and not m.pod_monitor_labels
        and cfg.autoscaling.enabled
        and s.engine is Engine.VLLM
    ):
        problems.append(
            (
                "monitoring.pod_monitor_labels",
                "an existing Prometheus scrapes only the PodMonitors its podMonitorSelector matches "
                "(kube-prometheus-stack's default: release: <its Helm release name>); without them the "
                "queue and gateway metrics never exist and the autoscaler's triggers fail. Set the labels "
                "it selects, e.g. pod_monitor_labels: {release: kube-prometheus-stack} (kubectl get "
                "prometheus -A -o jsonpath='{..podMonitorSelector}' shows them), or pod_monitor: false "
                "if you scrape the model server yourself",
            )
        )

    for rules in _STACK_RULES:
        problems.extend(rules(cfg))
    problems.extend(_memory_problems(cfg))
    problems.extend(_token_quota_problems(cfg))
    problems.extend(_prefix_routing_problems(cfg))
    problems.extend(_model_cache_problems(cfg))
    problems.extend(_managed_cluster_problems(cfg))
    problems.extend(_platform_section_problems(cfg))
    return problems


def _platform_section_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """The platform's own section is there and no other platform's is; then the platform's registered
    rules (register_platform_rules)."""
    problems: list[tuple[str, str]] = []
    for platform, section_type in PLATFORM_SECTIONS.items():
        section = getattr(cfg, platform.value)
        if platform is cfg.platform and section is None:
            required = [name for name, f in section_type.model_fields.items() if f.is_required()]
            return [
                (
                    platform.value,
                    f"platform {platform.value} needs {'an' if platform.value[0] in 'aeiou' else 'a'} "
                    f"{platform.value} section with at least "
                    f"{' and '.join(required)}",
                )
            ]
        if platform is not cfg.platform and section is not None:
            problems.append(
                (
                    platform.value,
                    f"only used with platform {platform.value} (this stack is {cfg.platform.value}): remove it",
                )
            )
    if cfg.platform in PLATFORM_SECTIONS:
        if (
            cfg.platform not in _PLATFORM_RULES
        ):  # pragma: no cover - stacks/__init__.py imports every rules module
            raise RuntimeError(
                f"no rules registered for platform {cfg.platform.value}: stacks/__init__.py imports its rules module"
            )
        problems.extend(_PLATFORM_RULES[cfg.platform](cfg))
    return problems


def _provisions_nodes(cfg: StackConfig) -> bool:
    """Whether a replica woken from zero may wait for a new node (aws and gcp make GPU nodes on demand)."""
    return cfg.platform is not Platform.ONPREM


def _weight_bytes(cfg: StackConfig) -> float:
    """The checkpoint's size in bytes: parameters x bytes per weight for its dtype and quantization."""
    m = cfg.model
    quant = m.quantization.value if m.quantization else None
    return m.parameters_b * 1e9 * weight_bytes_per_parameter(m.dtype.value, quant)


def gpu_range(cfg: StackConfig) -> tuple[int, int]:
    """GPUs the stack's model servers use at their fewest and most replicas, summed over every model and
    variant (each: GPUs per replica x min/max replicas, or x the fixed count; 0 for the CPU engine)."""
    low = high = 0
    for variant in cfg.served:
        v = variant.config
        if not v.uses_gpu:
            continue
        per, a = v.serving.gpus_per_replica, v.autoscaling
        fewest, most = (
            (a.min_replicas, a.max_replicas) if a.enabled else (v.serving.replicas, v.serving.replicas)
        )
        low, high = low + per * fewest, high + per * most
    return low, high


def platform_gpu_types(platform: Platform) -> frozenset[GpuType] | None:
    """The GPU types a cloud platform's GPU machines carry (its machine tables), or None on-prem (any)."""
    if platform is Platform.AWS:
        return frozenset(AWS_GPU_FAMILIES.values())
    if platform is Platform.GCP:
        return frozenset(m.gpu for m in GCP_GPU_MACHINES.values())
    if platform is Platform.AZURE:
        return frozenset(size.gpu for size in AZURE_GPU_VM_SIZES.values())
    return None


def _spot_nodes(cfg: StackConfig) -> bool:
    """Whether the GPU nodes are spot capacity (Karpenter launches spot first where both are allowed:
    karpenter.sh docs, NodePools, "capacity-type")."""
    if cfg.aws is not None:
        return any(t.value == "spot" for t in cfg.aws.gpu_nodes.capacity_types)
    if cfg.gcp is not None:
        return cfg.gcp.gpu_nodes.capacity_type.value == "spot"
    if cfg.azure is not None:
        return cfg.azure.gpu_nodes.capacity_type.value == "spot"
    return False


def cold_start_budget_of(cfg: StackConfig, load_mode: LoadMode | None = None) -> ColdStartBudget:
    """One replica's itemized cold start for this stack's model (stacks/cold_start.py cold_start_budget),
    in the model's load_mode or the `load_mode` given."""
    return cold_start_budget(
        platform=cfg.platform.value,
        spot=_spot_nodes(cfg),
        engine=cfg.serving.engine.value,
        store=cfg.model.scheme,
        weight_bytes=_weight_bytes(cfg),
        startup_timeout_seconds=cfg.serving.startup_timeout_seconds,
        load_mode=load_mode or cfg.model.load_mode,
        provisions_nodes=_provisions_nodes(cfg),
    )


def alternative_budget(cfg: StackConfig) -> ColdStartBudget | None:
    """The budget in the other load mode, where that mode could work for this engine and store (the summary
    shows both); None where only copy can work."""
    other = LoadMode.COPY if cfg.model.load_mode is LoadMode.STREAM else LoadMode.STREAM
    if other is LoadMode.STREAM and stream_problem(cfg.serving.engine.value, cfg.model.scheme):
        return None
    return cold_start_budget_of(cfg, other)


def cold_start_seconds(cfg: StackConfig) -> int:
    """One replica's cold start for this stack (seconds): the itemized budget's total (node, image pull,
    weight fetch, engine load, warm-up and the startup probe's allowance: stacks/cold_start.py). The
    scale-to-zero cooldown's floor, the gateway's hold timeout, and the unit of the model server's rollout
    deadlines."""
    return cold_start_budget_of(cfg).total_seconds


def _load_mode_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """model.load_mode stream where it cannot work, and a startup probe shorter than the engine's budget."""
    problems: list[tuple[str, str]] = []
    m, s = cfg.model, cfg.serving
    if m.load_mode is LoadMode.STREAM:
        problem = stream_problem(s.engine.value, m.scheme)
        if problem:
            problems.append(("model.load_mode", f"stream: {problem}"))
        elif cfg.tier is Tier.PROD:
            problems.append(
                (
                    "model.load_mode",
                    "stream skips the sha256 check of every weight file, and a prod stack serves verified "
                    "weights only (the policy pack refuses --load-format in prod: engine-flags-not-weakened): "
                    "use load_mode copy (the default), or tier dev",
                )
            )
    if problems:
        return problems
    budget = cold_start_budget_of(cfg)
    needed = engine_seconds(budget)
    if s.startup_timeout_seconds < needed:
        problems.append(
            (
                "serving.startup_timeout_seconds",
                f"{s.startup_timeout_seconds} s is shorter than the engine's own budget ({needed} s: "
                f"{budget.terms()}, docs/operating.md#cold-start): the kubelet would restart a replica "
                f"still loading; raise it to at least {needed}",
            )
        )
    return problems


def cooldown_seconds(cfg: StackConfig) -> int:
    """The scale-to-zero cooldown (seconds): autoscaling.cooldown_seconds, or the cold-start budget.

    KEDA uses cooldownPeriod only for the step to zero (stacks/cold_start.py), so with min_replicas >= 1
    the value is inert and the same default keeps plans stable when min_replicas changes.
    """
    configured = cfg.autoscaling.cooldown_seconds
    return configured if configured is not None else cold_start_seconds(cfg)


def _model_cache_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """The weights at the model's dtype (or quantization) fit serving.model_cache_size (stacks/model_cache.py)."""
    m = cfg.model
    problem = model_cache_problem(
        name=m.name,
        parameters_b=m.parameters_b,
        dtype=m.dtype.value,
        quantization=m.quantization.value if m.quantization else None,
        model_cache_size=cfg.serving.model_cache_size,
    )
    return [("serving.model_cache_size", problem)] if problem else []


def _managed_cluster_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Keys that describe an existing cluster mean nothing where the stack makes the cluster itself."""
    if cfg.platform is Platform.ONPREM:
        return []
    problems = [
        (
            f"cluster.{key}",
            f"platform {cfg.platform.value} makes its own cluster and connects to it: remove it",
        )
        for key in ("kube_context", "kubeconfig", "render_yaml_to_directory")
        if key in cfg.cluster.model_fields_set
    ]
    if "gpu_pool" in cfg.model_fields_set:
        problems.append(
            (
                "gpu_pool",
                f"describes an existing cluster's GPU nodes; on {cfg.platform.value} use {cfg.platform.value}.gpu_nodes",
            )
        )
    return problems


def _memory_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Reject a model that cannot fit the GPUs of one replica, with vLLM's own sum and the ways out.

    The sum is per tensor-parallel worker, as vLLM budgets it (stacks/gpus.py cites the source): a model
    this accepts leaves at least the margin free at engine start."""
    s, m = cfg.serving, cfg.model
    if s.engine is not Engine.VLLM:
        return []
    quant = m.quantization.value if m.quantization else None
    est = estimate_memory(
        parameters_b=m.parameters_b,
        dtype=m.dtype.value,
        quantization=quant,
        max_model_len=m.max_model_len,
        kv_bytes_per_token=m.kv_cache_bytes_per_token,
        gpu_type=s.gpu_type,
        gpus=s.gpus_per_replica,
        gpu_memory_utilization=s.gpu_memory_utilization,
    )
    if est.fits:
        return []
    ways = []
    more = smallest_gpu_count_that_fits(est)
    if more and more != s.gpus_per_replica:
        ways.append(f"gpus_per_replica: {more} (tensor parallel)")
    bigger = smallest_gpu_type_that_fits(est, platform_gpu_types(cfg.platform))
    if bigger:
        ways.append(f"gpu_type: {bigger.value}")
    if not quant:
        for q in ("fp8", "awq"):
            if est.with_bytes_per_weight(QUANTIZATION_BYTES[q]).fits:
                ways.append(f"model.quantization: {q} (a {q} checkpoint)")
                break
    if s.gpu_memory_utilization < 0.95 and dataclasses.replace(est, gpu_memory_utilization=0.95).fits:
        ways.append("serving.gpu_memory_utilization: 0.95 (if nothing else runs on the GPU)")
    kv_room = est.budget_gib - (est.needed_gib - est.kv_cache_gib)
    if kv_room > 0:
        longest = int(kv_room * GIB * est.gpus / (est.kv_cache_bytes / m.max_model_len)) // 1024 * 1024
        if longest >= 128:
            ways.append(f"model.max_model_len: {longest} or less")
    weight_bytes = DTYPE_BYTES.get(m.dtype.value) if not quant else QUANTIZATION_BYTES[quant]
    return [
        (
            "serving.gpus_per_replica",
            f"{m.name} does not fit: {m.parameters_b:g}B params x {weight_bytes:g} bytes and "
            f"{m.max_model_len} tokens of KV cache on {s.gpus_per_replica} x {s.gpu_type.value} need "
            f"{est.breakdown()} ({gib(-est.spare_gib)} short). "
            f"Ways out: {'; '.join(ways) or 'a smaller model'}",
        )
    ]


# --- loading and errors -------------------------------------------------------------------------------

#: Top-level keys of a Pulumi stack settings file besides `config` (Pulumi's "Stack settings file
#: reference": secretsprovider, encryptedkey, encryptionsalt, config, environment).
PULUMI_STACK_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")


def parse_stack_config(values: dict[str, Any], source: str = "stack config") -> StackConfig:
    """Validate `inferstack:*` values (namespace already stripped) into a StackConfig, or raise ConfigError."""
    try:
        return StackConfig.model_validate(values)
    except ValidationError as err:
        raise ConfigError(source, problems_from(err, StackConfig)) from None


def config_values_from_stack_yaml(document: Any, source: str) -> dict[str, Any]:
    """Pick the `inferstack:` keys out of a Pulumi stack file's `config:` block; other namespaces
    (kubernetes:, pulumi:, ...) belong to providers and are left alone."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(source, [("(top level)", "a stack file is a YAML mapping with a `config:` key")])
    problems: list[tuple[str, str]] = []
    for key in sorted(set(map(str, document)) - set(PULUMI_STACK_KEYS)):
        message = unknown_key_message(key, list(PULUMI_STACK_KEYS), "Pulumi stack file key")
        if ":" in key:
            message = "not a Pulumi stack file key: nest it under config: (as `  " + key + ": ...`)"
        problems.append((key, message))
    config = document.get("config") or {}
    if not isinstance(config, dict):
        problems.append(("config", "expected a mapping of namespace:key to value, e.g. inferstack:model"))
        config = {}
    values: dict[str, Any] = {}
    for key, value in config.items():
        namespace, sep, name = str(key).partition(":")
        if not sep:
            problems.append((str(key), f"config keys are namespaced: write {CONFIG_NAMESPACE}:{key}"))
        elif namespace == CONFIG_NAMESPACE:
            if isinstance(value, dict) and "secure" in value and len(value) == 1:
                problems.append((name, "encrypted (secure:) values are not used by any inferstack key"))
            values[name] = value
        elif difflib.get_close_matches(namespace, [CONFIG_NAMESPACE], cutoff=0.8):
            # Another namespace is a provider's (kubernetes:, aws:); one this close to ours is a typo that
            # would otherwise drop the whole section without a word.
            problems.append(
                (str(key), f"unknown namespace {namespace!r}: did you mean {CONFIG_NAMESPACE}:{name}?")
            )
    if problems:
        raise ConfigError(source, problems)
    return values


def load_stack_file(path: Path) -> StackConfig:
    """Read and validate one Pulumi.<env>.yaml. Raises ConfigError (never a traceback) on bad input.

    Problems name the file as given (relative to the working directory when it is under it) and, for
    keys the file has, the line and column of the key.
    """
    source = _display(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("Pulumi.*.yaml"))
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise ConfigError(
            source, [("(file)", f"is a folder, not a stack file: pass a Pulumi.<stack>.yaml file{hint}")]
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            source, [("(file)", f"not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})")]
        ) from None
    except OSError as err:
        raise ConfigError(
            source, [("(file)", f"cannot read the stack file: {err.strerror or err}")]
        ) from None
    try:
        loaded = load_yaml(text)
    except YamlError as err:
        raise StackFileSyntaxError(source, err) from None
    positions = _field_positions(loaded.positions)
    try:
        return parse_stack_config(config_values_from_stack_yaml(loaded.document, source), source)
    except ConfigError as err:
        raise ConfigError(source, err.problems, positions) from None


class StackFileSyntaxError(ConfigError):
    """The file is not YAML we accept (syntax, a repeated key): one problem, shown as PATH:LINE:COLUMN."""

    def __init__(self, source: str, err: YamlError):
        self.yaml_error = err
        super().__init__(source, [("(file)", err.message)])

    def render(self) -> str:
        return self.yaml_error.located(self.source)


def _display(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _field_positions(positions: dict[tuple[str | int, ...], tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """Key positions in the file, re-keyed by the field paths problems use (`inferstack:model` -> `model`)."""
    by_field: dict[str, tuple[int, int]] = {}
    later: dict[str, tuple[int, int]] = {}
    for path, position in positions.items():
        if path[:1] != ("config",) or len(path) == 1:
            later[field_path(path)] = position  # a top-level key: config, secretsprovider, a stray one
            continue
        namespace, _, name = str(path[1]).partition(":")
        if namespace == CONFIG_NAMESPACE and name:
            by_field[field_path((name, *path[2:]))] = position
        else:
            later[field_path((str(path[1]), *path[2:]))] = position
    return {**later, **by_field}


def decode_pulumi_config(raw: dict[str, str]) -> dict[str, Any]:
    """Turn what the Pulumi engine hands a program (`inferstack:key` -> string, objects as JSON) into the
    same values `load_stack_file` reads from YAML, so `pulumi up` and `inferstack plan` validate alike."""
    values: dict[str, Any] = {}
    for key, text in raw.items():
        namespace, _, name = key.partition(":")
        if namespace != CONFIG_NAMESPACE:
            continue
        if text[:1] in "{[":
            try:
                values[name] = json.loads(text)
                continue
            except json.JSONDecodeError:
                pass
        values[name] = text
    return values


#: The stack's `model` section when `models` is set: shared defaults, so no key is required.
StackModelDefaults = _override_of(ModelConfig, "Stack")


def _sections_schema(prefix: str = "") -> dict[str, Any]:
    """StackConfig's JSON Schema, with `model` required only when `models` is absent (then it holds
    defaults: every key optional). `prefix` is put before the section names in the conditional."""
    schema = StackConfig.model_json_schema(ref_template="#/$defs/{model}")
    defaults = StackModelDefaults.model_json_schema(ref_template="#/$defs/{model}")
    schema.setdefault("$defs", {}).update(defaults.pop("$defs", {}))
    schema["$defs"][StackModelDefaults.__name__] = defaults
    schema["required"] = [r for r in schema.get("required", []) if r != "model"]
    full = schema["properties"]["model"]
    schema["properties"]["model"] = {
        "description": "the model (without `models`), or the defaults every entry of `models` starts from"
    }
    schema["if"] = {"required": [f"{prefix}models"]}
    schema["then"] = {"properties": {f"{prefix}model": {"$ref": f"#/$defs/{StackModelDefaults.__name__}"}}}
    schema["else"] = {"required": [f"{prefix}model"], "properties": {f"{prefix}model": full}}
    return schema


def json_schema() -> dict[str, Any]:
    """JSON Schema of the `inferstack:*` values alone, keyed by section without the namespace (`model`,
    `serving`, ...): what `parse_stack_config` and the Pulumi program validate."""
    schema = _sections_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "InferStack stack configuration (the inferstack: keys of Pulumi.<env>.yaml)"
    return schema


def stack_file_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a whole Pulumi stack file, `stacks/Pulumi.<env>.yaml`.

    Top level: the keys of Pulumi's stack settings file reference (secretsprovider, encryptedkey,
    encryptionsalt, config, environment) and nothing else. Under `config:` every `inferstack:<section>` key
    with its section's schema (required sections required, unknown `inferstack:` keys refused); keys of
    other namespaces (`kubernetes:context`, `aws:region`, `pulumi:tags`) are allowed with any value,
    since they belong to their providers. An editor's YAML language server validates stack files with it.
    """
    sections = _sections_schema(prefix=f"{CONFIG_NAMESPACE}:")
    definitions = sections.pop("$defs", {})
    config = {
        "type": "object",
        "description": "Stack configuration: namespace:key to value. The inferstack: keys are InferStack's "
        "sections; other namespaces belong to their providers.",
        "properties": {
            f"{CONFIG_NAMESPACE}:{name}": prop for name, prop in sections.get("properties", {}).items()
        },
        "required": [f"{CONFIG_NAMESPACE}:{name}" for name in sections.get("required", [])],
        # Any other namespace's keys, as Pulumi writes them (namespace:key); an unknown inferstack: key
        # matches neither this nor `properties`, so additionalProperties refuses it.
        "patternProperties": {f"^(?!{CONFIG_NAMESPACE}:)[^:\\s]+:.+$": {}},
        "additionalProperties": False,
        "if": sections["if"],
        "then": sections["then"],
        "else": sections["else"],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "InferStack stack file (Pulumi.<env>.yaml)",
        "description": "A Pulumi stack settings file for the inferstack project; `inferstack schema` prints it.",
        "type": "object",
        "properties": {
            "config": config,
            "secretsprovider": {"type": "string", "description": "secrets provider for secure: values"},
            "encryptedkey": {
                "type": "string",
                "description": "KMS-encrypted data key (cloud secrets providers)",
            },
            "encryptionsalt": {
                "type": "string",
                "description": "encryption salt (passphrase secrets provider)",
            },
            "environment": {
                "description": "Pulumi ESC environments this stack imports",
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}],
            },
        },
        "required": ["config"],
        "additionalProperties": False,
        "$defs": definitions,
    }


__all__ = [
    "ConfigError",
    "Engine",
    "GpuType",
    "StackConfig",
    "StackFileSyntaxError",
    "load_stack_file",
    "parse_stack_config",
    "stack_file_json_schema",
]
