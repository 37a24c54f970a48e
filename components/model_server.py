"""ModelServer: the serving Deployment and everything one replica set needs around it.

Deployment (an init container fetches and verifies the weights into a cache volume, then the engine
serves them), Service, ServiceAccount, PodDisruptionBudget, NetworkPolicies (default deny plus explicit
allows) and a PodMonitor for the engine's Prometheus metrics. The container image is the one built
from `model_image/`; its ENTRYPOINT (`python3 -m model_image`) runs in both containers, with `fetch` or
`serve` as args (see LAUNCHER_ARGS).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._common import RESTRICTED_CONTAINER_SECURITY, child, labels, reject_invalid_args
from components.choices import Engine
from components.monitoring import PROMETHEUS_POD_LABELS
from model_image.settings import LoadMode

SERVING_PORT = 8000
#: The model image's non-root user (model_image/Dockerfile*); 10000+ keeps it clear of host users.
IMAGE_UID = 10001
HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"
MODEL_DIR = "/models"
#: A file:// model is read from this read-only mount of `model_volume_claim`.
MODEL_SOURCE_MOUNT = "/model-source"
#: The image's HOME; every engine cache (HF, XDG, Triton, vLLM, torch) lives under it (model_image/README.md),
#: so it and /tmp are emptyDirs and the root filesystem stays read-only.
HOME_DIR = "/home/inferstack"
SCRATCH_DIR = "/tmp"
HF_TOKEN_MOUNT = "/var/run/secrets/inferstack/hf"

#: The containers' `args`, appended to the image's ENTRYPOINT; neither container sets `command`. A
#: `command` must name an executable the image has, and only the image knows which: the GPU image is FROM
#: vllm/vllm-openai, whose docker/Dockerfile (vllm-project/vllm, `vllm-base` stage, read at commit
#: dead20ba, CUDA 12.9.1; the v0.31.0 tag itself is not in the searchable snapshot) installs Python from
#: deadsnakes and registers only `python3` (`update-alternatives --install /usr/bin/python3 ...`), ending
#: in `ENTRYPOINT ["vllm", "serve"]`; there is no `python`, so `command: ["python", ...]` fails with
#: "exec: python: not found". model_image/Dockerfile* set ENTRYPOINT ["python3", "-m", "model_image"],
#: so args alone are enough and stay right whatever interpreter name a base image provides.
LAUNCHER_ARGS = {"fetch": ["fetch"], "serve": ["serve"]}

# --- DNS egress ------------------------------------------------------------------------------------
# A pod-label peer matches pods only; a resolver on the node (hostNetwork, or a link-local address) is
# matched by an ipBlock peer or not at all. So DNS egress goes to both:
#: The cluster DNS pods: kube-dns on GKE, CoreDNS labelled `k8s-app: kube-dns` on EKS (the coredns
#: add-on keeps kube-dns's label) and on kubeadm/kubespray clusters.
KUBE_DNS_PEER_NAMESPACE = "kube-system"
KUBE_DNS_POD_LABELS = {"k8s-app": "kube-dns"}
#: NodeLocal DNSCache's pods (kubernetes cluster/addons/dns/nodelocaldns/nodelocaldns.yaml labels its
#: DaemonSet pods `k8s-app: node-local-dns`); they are hostNetwork in the upstream addon, where only an
#: ipBlock matches, but not under every dataplane, so the pod peer is kept as well.
NODE_LOCAL_DNS_POD_LABELS = {"k8s-app": "node-local-dns"}
#: The link-local addresses NodeLocal DNSCache listens on (a dummy interface on the node):
#: - 169.254.20.10: the upstream addon's default (kubernetes/kubernetes cluster/addons/dns/nodelocaldns/
#:   README.md: "a link local ip(169.254.20.10/32 by default)"), also GKE's NodeLocal DNSCache, which GKE
#:   turns on by default from 1.34.1-gke.3720000 on Standard and always on Autopilot (GKE docs,
#:   "Set up NodeLocal DNSCache");
#: - 169.254.25.10: kubespray's `nodelocaldns_ip` (roles/kubespray-defaults/defaults/main/main.yml,
#:   `enable_nodelocaldns: true` by default), which kubespray also writes as kubelet's clusterDNS.
#: Both are link-local, so allowing port 53 there reaches nothing but the node's own cache.
NODE_LOCAL_DNS_CIDRS = ("169.254.20.10/32", "169.254.25.10/32")
DNS_PORT = 53

#: Launcher settings set only through typed fields, even when the current args leave them unset.
_LAUNCHER_SETTINGS = frozenset(
    {
        "MAX_MODEL_LEN",
        "GPU_MEMORY_UTILIZATION",
        "QUANTIZATION",
        "EXTRA_ENGINE_ARGS",
        "HF_TOKEN_PATH",
        "LOAD_MODE",
    }
)

#: Launcher settings only `fetch` reads; the serving container does not get them (least privilege).
FETCH_ONLY_SETTINGS = frozenset({"HF_TOKEN_PATH"})
#: And the other way: the engine's own flags mean nothing to `fetch` (model_image/settings.py
#: FetchSettings), so its container is not given them (nor does a policy on engine flags see them twice).
SERVE_ONLY_SETTINGS = frozenset({"EXTRA_ENGINE_ARGS", "LOAD_MODE"})

# Probe cadences. The startup probe alone covers the model load; after it passes, readiness reacts
# quickly and liveness tolerates a busy engine for 90 s before restarting it.
STARTUP_PERIOD_SECONDS = 10
READINESS_PERIOD_SECONDS = 5
LIVENESS_PERIOD_SECONDS = 15
LIVENESS_FAILURES = 6


@dataclass(frozen=True)
class ModelServerArgs:
    """Everything the serving Deployment needs; no defaults for what only the caller can know."""

    namespace: pulumi.Input[str]  # namespace of every object the component makes
    engine: Engine  # vllm on GPUs, transformers on CPU
    image: str  # the model image (tag, or @sha256 digest)
    model_uri: str  # hf://org/name@commit, s3://..., gs://..., file:///...
    served_model_name: str  # the model name clients send
    max_model_len: int  # context length the engine allows
    replicas: int  # initial replicas; the autoscaler owns the count when `autoscaled`
    cpu: str  # CPU request = limit
    memory: str  # memory request = limit
    # Rollout deadlines, in seconds, from the cold-start budget (stacks/cold_start.py): a new replica may
    # wait for a GPU node, pull the image, download the weights and use the whole startup window.
    # spec.progressDeadlineSeconds: one cold start and a margin (Kubernetes restarts it at every step of
    # a rollout; left unset it is 600 s, shorter than a GPU cold start).
    progress_deadline_seconds: int
    # Pulumi's create/update customTimeouts: every replica a rollout replaces, one cold start each, and a
    # margin (pulumi-kubernetes fails `pulumi up` after it, whatever the cluster is still doing).
    rollout_timeout_seconds: int
    autoscaled: bool = False  # leave spec.replicas to the autoscaler (Pulumi ignores drift there)
    dtype: str = "auto"  # engine dtype
    quantization: str | None = None  # engine quantization, if any
    gpus: int = 0  # GPUs per replica (tensor-parallel size); 0 for the CPU engine
    gpu_resource_name: str = "nvidia.com/gpu"  # extended resource the device plugin advertises
    gpu_memory_utilization: float = 0.9  # share of GPU memory vLLM may take
    extra_engine_args: list[str] = field(default_factory=list)  # engine flags passed through
    model_cache_size: str = "50Gi"  # size limit of the model cache emptyDir
    shm_size: str = "8Gi"  # /dev/shm (memory-backed) for tensor-parallel workers
    model_volume_claim: str | None = None  # file:// models: a PVC holding them, mounted read-only
    hf_token_secret: str | None = None  # private hf:// repos: a Secret with key `token`, mounted as a file
    node_selector: dict[str, str] = field(default_factory=dict)  # where replicas may run
    tolerations: list[dict[str, Any]] = field(default_factory=list)  # camelCase Kubernetes tolerations
    startup_timeout_seconds: int = 600  # how long loading may take before a restart
    # copy: the fetch init container downloads and sha256-checks the weights into the model cache; stream:
    # vLLM's Run:ai streamer reads s3:// or gs:// into GPU memory itself (no init container, no cache
    # volume, no sha256 check: docs/operating.md#cold-start).
    load_mode: LoadMode = LoadMode.COPY
    pre_stop_seconds: int = 15  # preStop sleep while the gateway stops routing here
    drain_seconds: int = 60  # engine drain after SIGTERM (SHUTDOWN_TIMEOUT)
    termination_grace_seconds: int = 120  # must cover pre_stop + drain
    # Rolling update, in pods. Surge only where the node pool has room for one more replica at the
    # replica ceiling, else the surge pod stays Pending (stacks/rollout.py derives these from capacity).
    max_surge: int = 1  # new pods started above the replica count during an update
    max_unavailable: int = 0  # old pods stopped before their replacements are ready
    gateway_namespace: str = "envoy-gateway-system"  # where the Envoy proxies run (allowed in)
    gateway_pod_labels: dict[str, str] = field(default_factory=dict)  # Envoy proxy pod labels
    monitoring_namespace: str = "monitoring"  # where Prometheus runs (allowed to scrape)
    # The Prometheus server pods' labels: the only pods there that may reach port 8000 (the engine has no
    # API key, so any pod let in here could call /v1). The Prometheus operator's labels by default.
    monitoring_pod_labels: dict[str, str] = field(default_factory=lambda: dict(PROMETHEUS_POD_LABELS))
    pod_monitor: bool = True  # create a PodMonitor (Prometheus operator CRDs must exist)
    # Labels added to the PodMonitor so that the Prometheus's podMonitorSelector picks it (an existing
    # kube-prometheus-stack selects `release: <its release name>` only; see components/monitoring.py).
    pod_monitor_labels: dict[str, str] = field(default_factory=dict)
    # Pod labels the PodMonitor copies onto every series (podTargetLabels; prometheus-operator writes
    # `app.kubernetes.io/name` as app_kubernetes_io_name): tells apart variants that share a model_name.
    pod_monitor_target_labels: list[str] = field(default_factory=list)
    # The endpoint picker of this server's InferencePool (components/inference_pool.py), in the same
    # namespace: it scrapes /metrics on port 8000 to score the replicas. None: no picker, no rule.
    endpoint_picker_pod_labels: dict[str, str] | None = None
    # Egress for `fetch` (and, since a NetworkPolicy selects pods, for the engine too). The default, the
    # internet on 443, is what a store without private addresses needs; stacks narrow it (stacks/egress.py).
    model_store_cidrs: list[str] = field(default_factory=lambda: ["0.0.0.0/0"])
    model_store_ports: list[int] = field(default_factory=lambda: [443])  # ports `fetch` may reach
    # The stack field that accepted internet egress, written on the allow NetworkPolicy as
    # INTERNET_EGRESS_ANNOTATION so that the prod policy `egress-not-open-to-internet` lets it pass.
    internet_egress_accepted_by: str | None = None
    # More (cidr, port) the pods may reach, e.g. the EKS Pod Identity agent (169.254.170.23/32, 80) that
    # hands out the model store's credentials.
    extra_egress: list[tuple[str, int]] = field(default_factory=list)
    # Resolvers off the pod network, reached on port 53 besides the kube-dns pods: NodeLocal DNSCache's
    # link-local addresses by default; add the kube-dns Service IP (/32) where a node cache intercepts it.
    dns_cidrs: list[str] = field(default_factory=lambda: list(NODE_LOCAL_DNS_CIDRS))
    # Environment for the storage SDKs, e.g. AWS_REGION; never a launcher setting (those are typed above).
    extra_env: dict[str, str] = field(default_factory=dict)
    # Annotations on the ServiceAccount the component makes, for a workload identity that is bound through
    # it: Azure Workload Identity's `azure.workload.identity/client-id` (the managed identity's client id,
    # which the webhook injects as AZURE_CLIENT_ID), GKE's `iam.gke.io/gcp-service-account`, IRSA's
    # `eks.amazonaws.com/role-arn`.
    # Values may be Outputs (an identity's client id known only once it exists); plain ones are checked.
    service_account_annotations: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    # Extra labels on the pod template only, e.g. Azure Workload Identity's `azure.workload.identity/use:
    # "true"` (the webhook mutates only pods that carry it). Never on the Deployment's selector, which is
    # immutable: a changed selector makes Pulumi replace the Deployment.
    pod_labels: dict[str, str] = field(default_factory=dict)


# Kubernetes' syntax for label and annotation keys and label values (k8s.io/apimachinery
# pkg/util/validation/validation.go: IsQualifiedName, IsDNS1123Subdomain, IsValidLabelValue).
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def is_qualified_name(key: str) -> bool:
    """Whether `key` is a valid label or annotation key: [prefix/]name, prefix a DNS subdomain <= 253
    characters, name <= 63 characters of alphanumerics, '-', '_', '.' starting and ending alphanumeric."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= 253 and _DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))


def is_label_value(value: str) -> bool:
    """Whether `value` is a valid label value: empty, or a name as above of at most 63 characters."""
    if not isinstance(value, str):  # a YAML `true` unquoted arrives as a bool
        return False
    return value == "" or (len(value) <= 63 and bool(_QUALIFIED_NAME.match(value)))


def validate_model_server_args(args: ModelServerArgs) -> list[str]:
    """Every problem with the args, each naming the field; empty when they are usable."""
    problems: list[str] = []
    problems += [
        f"service_account_annotations: {key!r} is not an annotation key ([prefix/]name, e.g. "
        "azure.workload.identity/client-id)"
        for key in args.service_account_annotations
        if not is_qualified_name(key)
    ]
    problems += [
        f'service_account_annotations: {key}: the value must be a string (quote it: {key}: "{value}")'
        for key, value in args.service_account_annotations.items()
        if not isinstance(value, (str, pulumi.Output))
    ]
    own = labels("x", "model-server")
    for key, value in args.pod_labels.items():
        if key in own:
            problems.append(
                f"pod_labels: {key!r} is the component's own label (the Service, PDB and NetworkPolicies "
                "select on it); use another key"
            )
        elif not is_qualified_name(key) or not is_label_value(value):
            problems.append(
                f"pod_labels: {key}={value!r} is not a label (key [prefix/]name, value at most 63 "
                "alphanumerics, '-', '_', '.'; e.g. azure.workload.identity/use=true)"
            )
    if args.engine is Engine.VLLM and args.gpus < 1:
        problems.append(
            "gpus: the vllm engine needs at least one GPU per replica (or use engine transformers)"
        )
    if args.engine is Engine.TRANSFORMERS and args.gpus:
        problems.append("gpus: the transformers engine runs on CPU; set gpus to 0")
    if args.replicas < 0:
        problems.append("replicas: must be 0 or more")
    if args.pre_stop_seconds + args.drain_seconds > args.termination_grace_seconds:
        problems.append(
            "termination_grace_seconds: must be at least pre_stop_seconds + drain_seconds "
            f"({args.pre_stop_seconds} + {args.drain_seconds}), or streams are cut off"
        )
    if args.max_surge < 0 or args.max_unavailable < 0:
        problems.append("max_surge and max_unavailable: must be 0 or more")
    elif args.max_surge == 0 and args.max_unavailable == 0:
        # The API server rejects this too: "may not be 0 when `maxSurge` is 0"
        # (kubernetes pkg/apis/apps/validation/validation.go, ValidateRollingUpdateDeployment).
        problems.append(
            "max_surge and max_unavailable: both 0 would never update a pod; allow a surge (room for one "
            "more replica) or max_unavailable 1"
        )
    if args.startup_timeout_seconds < STARTUP_PERIOD_SECONDS:
        problems.append(f"startup_timeout_seconds: at least {STARTUP_PERIOD_SECONDS}")
    if args.progress_deadline_seconds <= args.startup_timeout_seconds:
        # A new pod may use the whole startup window before it is ready, after its image pull (and a node).
        problems.append(
            f"progress_deadline_seconds: {args.progress_deadline_seconds} s must exceed startup_timeout_seconds "
            f"({args.startup_timeout_seconds} s) by the image pull, weight download and any node "
            "provisioning, or Kubernetes marks a loading rollout ProgressDeadlineExceeded; use "
            "stacks.cold_start.progress_deadline_seconds"
        )
    if args.rollout_timeout_seconds < args.progress_deadline_seconds:
        problems.append(
            f"rollout_timeout_seconds: {args.rollout_timeout_seconds} s is shorter than one replica's "
            f"progress_deadline_seconds ({args.progress_deadline_seconds} s), so `pulumi up` would fail a "
            "rollout Kubernetes still counts as progressing; use stacks.cold_start.rollout_timeout_seconds"
        )
    if args.model_uri.startswith("file://") and not args.model_volume_claim:
        problems.append("model_volume_claim: a file:// model needs the PersistentVolumeClaim that holds it")
    if args.model_volume_claim and not args.model_uri.startswith("file://"):
        problems.append("model_volume_claim: only used with a file:// model_uri")
    if args.load_mode is LoadMode.STREAM:
        if args.engine is not Engine.VLLM:
            problems.append("load_mode: stream needs the vllm engine (the Run:ai model streamer); use copy")
        if args.model_uri.partition("://")[0] not in ("s3", "gs"):
            problems.append(
                "load_mode: stream reads s3:// and gs:// model_uri only (the Run:ai model streamer); use copy"
            )
    launcher_keys = {e["name"] for e in engine_environment(dataclasses.replace(args, extra_env={}))}
    clashes = sorted(set(args.extra_env) & (launcher_keys | _LAUNCHER_SETTINGS))
    if clashes:
        problems.append(
            f"extra_env: {', '.join(clashes)} are the launcher's own settings; set them through their fields"
        )
    problems += [
        f"model_store_cidrs: {cidr!r} is not a network in CIDR form (e.g. 10.0.0.0/19)"
        for cidr in args.model_store_cidrs
        if not is_cidr(cidr)
    ]
    for cidr, port in args.extra_egress:
        if not is_cidr(cidr):
            problems.append(f"extra_egress: {cidr!r} is not a network in CIDR form (e.g. 10.0.0.0/8)")
        if not 1 <= port <= 65535:
            problems.append(f"extra_egress: {port} is not a port (1-65535)")
    problems += [
        f"dns_cidrs: {cidr!r} is not a network in CIDR form (e.g. 169.254.20.10/32)"
        for cidr in args.dns_cidrs
        if not is_cidr(cidr)
    ]
    if not args.gateway_pod_labels:
        problems.append(
            "gateway_pod_labels: name the Envoy proxy pods' labels; empty lets every pod in "
            f"{args.gateway_namespace} reach port {SERVING_PORT}, where the engine checks no API key"
        )
    if not args.monitoring_pod_labels:
        problems.append(
            "monitoring_pod_labels: name the Prometheus pods' labels; empty lets every pod in "
            f"{args.monitoring_namespace!r} call the engine's unauthenticated /v1"
        )
    return problems


def is_cidr(cidr: str) -> bool:
    """Whether `cidr` is a network in CIDR form with its host bits zero (ipaddress, strict)."""
    try:
        ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        return False
    return True


def dns_egress_rule(dns_cidrs: list[str]) -> dict[str, Any]:
    """The NetworkPolicy egress rule (snake_case, as pulumi_kubernetes takes it) for DNS on port 53:
    the cluster DNS pods and NodeLocal DNSCache's pods by label, and `dns_cidrs` (resolvers on the node,
    which no pod label matches) by ipBlock."""
    in_kube_system = {"match_labels": {"kubernetes.io/metadata.name": KUBE_DNS_PEER_NAMESPACE}}
    return {
        "to": [
            {"namespace_selector": in_kube_system, "pod_selector": {"match_labels": dict(labels)}}
            for labels in (KUBE_DNS_POD_LABELS, NODE_LOCAL_DNS_POD_LABELS)
        ]
        + [{"ip_block": {"cidr": cidr}} for cidr in dns_cidrs],
        "ports": [{"port": DNS_PORT, "protocol": "UDP"}, {"port": DNS_PORT, "protocol": "TCP"}],
    }


def engine_environment(args: ModelServerArgs) -> list[dict[str, Any]]:
    """The model image's settings (model_image's environment variables), shared by fetch and serve."""
    model_uri = args.model_uri
    if model_uri.startswith("file://"):
        # The claim is mounted at a fixed place; the uri's path is taken relative to the claim's root.
        model_uri = "file://" + MODEL_SOURCE_MOUNT + "/" + model_uri.removeprefix("file://").lstrip("/")
    env: dict[str, str] = {
        "MODEL_URI": model_uri,
        "MODEL_DIR": MODEL_DIR,
        "ENGINE": args.engine.value,
        "SERVED_MODEL_NAME": args.served_model_name,
        "HOST": "0.0.0.0",
        "PORT": str(SERVING_PORT),
        "DTYPE": args.dtype,
        "SHUTDOWN_TIMEOUT": str(args.drain_seconds),
    }
    if args.engine is Engine.VLLM:
        # vLLM-only settings: the launcher refuses them with the transformers engine rather than ignore them.
        env["MAX_MODEL_LEN"] = str(args.max_model_len)
        env["GPU_MEMORY_UTILIZATION"] = f"{args.gpu_memory_utilization:g}"
    if args.quantization:
        env["QUANTIZATION"] = args.quantization
    if args.extra_engine_args:
        env["EXTRA_ENGINE_ARGS"] = shlex.join(args.extra_engine_args)  # the launcher shell-splits it
    if args.hf_token_secret:
        env["HF_TOKEN_PATH"] = f"{HF_TOKEN_MOUNT}/token"
    if args.load_mode is LoadMode.STREAM:
        # Only where it differs from the launcher's default, so copy plans stay as they were.
        env["LOAD_MODE"] = args.load_mode.value
    env.update({k: v for k, v in args.extra_env.items() if k not in env})
    return [{"name": k, "value": v} for k, v in env.items()]


def probes(args: ModelServerArgs) -> dict[str, Any]:
    """startupProbe covers the whole model load; readiness and liveness only start after it."""
    http = {"path": HEALTH_PATH, "port": "http"}
    return {
        "startup_probe": {
            "http_get": http,
            "period_seconds": STARTUP_PERIOD_SECONDS,
            "timeout_seconds": 5,
            "failure_threshold": math.ceil(args.startup_timeout_seconds / STARTUP_PERIOD_SECONDS),
        },
        "readiness_probe": {
            "http_get": http,
            "period_seconds": READINESS_PERIOD_SECONDS,
            "timeout_seconds": 5,
            "failure_threshold": 3,
        },
        "liveness_probe": {
            "http_get": http,
            "period_seconds": LIVENESS_PERIOD_SECONDS,
            "timeout_seconds": 10,
            "failure_threshold": LIVENESS_FAILURES,
        },
    }


#: Annotation naming the stack field that accepted internet egress for these pods (policy/rules.py reads it).
INTERNET_EGRESS_ANNOTATION = "inferstack.dev/internet-egress-accepted"


def model_store_egress(args: ModelServerArgs) -> list[dict[str, Any]]:
    """The egress rule `fetch` needs to reach the model store; none for a file:// model (a mounted claim).

    A NetworkPolicy selects pods, not containers, so what `fetch` may reach the engine may reach too; the
    narrower this rule, the less the engine can talk to. What each platform can express in it:
    - on-prem, file://: nothing at all (the claim is a volume) - no rule;
    - s3:// or gs://: the stores answer on public addresses that a NetworkPolicy cannot name (S3's and
      Google's ranges are hundreds of prefixes that change, published in ip-ranges.json / goog.json; a
      NetworkPolicy has no DNS-name or AWS prefix-list peer), so `model_store_cidrs` is the internet on
      443 unless the cluster reaches the store on private addresses: an S3 interface VPC endpoint (its
      subnets' CIDRs) or Private Google Access through private.googleapis.com (199.36.153.8/30). Prod
      stacks on AWS and GCP build exactly these (stacks/egress.py);
    - hf://: the Hub and its CDN likewise; use a mirror or proxy in `model_store_cidrs` / extra_egress.
    """
    if args.model_uri.startswith("file://") or not args.model_store_cidrs:
        return []
    return [
        {
            "to": [{"ip_block": {"cidr": cidr}} for cidr in args.model_store_cidrs],
            "ports": [{"port": port, "protocol": "TCP"} for port in args.model_store_ports],
        }
    ]


def _untyped(spec: dict[str, Any]) -> Any:
    """Specs are written as plain snake_case dicts (the SDK converts them); its TypedDicts cannot type them."""
    return spec


class ModelServer(pulumi.ComponentResource):
    """The engine serving one model, reachable in-cluster at `service_name`:`SERVING_PORT`."""

    service_name: pulumi.Output[str]
    deployment_name: pulumi.Output[str]

    def __init__(self, name: str, args: ModelServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args("ModelServer", name, validate_model_server_args(args))
        super().__init__("inferstack:model_server:ModelServer", name, None, opts)

        self.pod_labels = labels(name, "model-server")
        selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "model-server"}

        def metadata(suffix: str = "") -> Any:
            """One shape for every child's metadata (Any: the SDK's TypedDicts do not take plain dicts)."""
            return {"name": f"{name}{suffix}", "namespace": args.namespace, "labels": self.pod_labels}

        account_metadata = metadata()
        if args.service_account_annotations:
            # Only when given, so that a stack without them plans exactly as before.
            account_metadata["annotations"] = dict(args.service_account_annotations)
        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=account_metadata,
            # The engine never talks to the Kubernetes API.
            automount_service_account_token=False,
            opts=child(self),
        )

        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata(),
            spec=self._deployment_spec(name, args, selector, account.metadata.name),
            opts=child(
                self,
                ignore_changes=["spec.replicas"] if args.autoscaled else None,
                # pulumi-kubernetes waits for every new replica to be ready and fails after these
                # (provider/pkg/await/deployment.go; 10 minutes without them): a rollout replaces its
                # replicas one cold start after another (stacks/cold_start.py).
                custom_timeouts=pulumi.CustomTimeouts(
                    create=f"{args.rollout_timeout_seconds}s",
                    update=f"{args.rollout_timeout_seconds}s",
                ),
            ),
        )

        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata(),
            spec=_untyped(
                {
                    "type": "ClusterIP",
                    "selector": selector,
                    "ports": [
                        {"name": "http", "port": SERVING_PORT, "target_port": "http", "protocol": "TCP"}
                    ],
                }
            ),
            opts=child(self),
        )

        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=metadata(),
            spec=_untyped(
                {
                    # One replica at a time may go during node drains and upgrades; a crash-looping pod
                    # never blocks a drain.
                    "max_unavailable": 1,
                    "selector": {"match_labels": selector},
                    "unhealthy_pod_eviction_policy": "AlwaysAllow",
                }
            ),
            opts=child(self),
        )

        self._network_policies(name, args, selector, metadata)

        if args.pod_monitor and args.engine is Engine.VLLM:
            k8s.apiextensions.CustomResource(
                f"{name}-podmonitor",
                api_version="monitoring.coreos.com/v1",
                kind="PodMonitor",
                metadata={**metadata(), "labels": {**self.pod_labels, **args.pod_monitor_labels}},
                spec={
                    "selector": {"matchLabels": selector},
                    "podMetricsEndpoints": [{"port": "http", "path": METRICS_PATH, "interval": "15s"}],
                    **(
                        {"podTargetLabels": list(args.pod_monitor_target_labels)}
                        if args.pod_monitor_target_labels
                        else {}
                    ),
                },
                opts=child(self),
            )

        self.service_name = service.metadata.name
        self.deployment_name = deployment.metadata.name
        self.register_outputs({"service_name": self.service_name, "deployment_name": self.deployment_name})

    def _deployment_spec(
        self, name: str, args: ModelServerArgs, selector: dict[str, str], account: pulumi.Input[str]
    ) -> Any:
        env = engine_environment(args)
        scratch_mounts = [
            {"name": "home", "mount_path": HOME_DIR},
            {"name": "scratch", "mount_path": SCRATCH_DIR},
        ]
        streams = args.load_mode is LoadMode.STREAM
        volumes: list[dict[str, Any]] = [
            # stream: the engine reads the bucket into GPU memory, so no cache volume holds the weights.
            *(
                []
                if streams
                else [{"name": "model-cache", "empty_dir": {"size_limit": args.model_cache_size}}]
            ),
            {"name": "home", "empty_dir": {"size_limit": "10Gi"}},
            {"name": "scratch", "empty_dir": {"size_limit": "2Gi"}},
            {"name": "dshm", "empty_dir": {"medium": "Memory", "size_limit": args.shm_size}},
        ]
        source_mounts: list[dict[str, Any]] = []
        # Secrets only where they are used: the hub token is read by `fetch` alone (the engine runs offline
        # from the verified cache, HF_HUB_OFFLINE=1), so the serving container neither mounts it nor is
        # told where it is. Whatever runs in the engine (a model's code, a request exploit) cannot read it.
        fetch_only_mounts: list[dict[str, Any]] = []
        if args.model_volume_claim:
            volumes.append(
                {
                    "name": "model-source",
                    "persistent_volume_claim": {"claim_name": args.model_volume_claim, "read_only": True},
                }
            )
            source_mounts.append(
                {"name": "model-source", "mount_path": MODEL_SOURCE_MOUNT, "read_only": True}
            )
        if args.hf_token_secret:
            volumes.append(
                {
                    "name": "hf-token",
                    "secret": {"secret_name": args.hf_token_secret, "default_mode": 0o440},
                }
            )
            fetch_only_mounts.append({"name": "hf-token", "mount_path": HF_TOKEN_MOUNT, "read_only": True})

        compute: dict[str, Any] = {"cpu": args.cpu, "memory": args.memory}
        resources: dict[str, Any] = dict(compute)
        if args.gpus:
            resources[args.gpu_resource_name] = str(args.gpus)

        fetch = {
            "name": "fetch-model",
            "image": args.image,
            "image_pull_policy": "IfNotPresent",
            "args": LAUNCHER_ARGS["fetch"],
            "env": [e for e in env if e["name"] not in SERVE_ONLY_SETTINGS],
            "volume_mounts": [
                *scratch_mounts,
                {"name": "model-cache", "mount_path": MODEL_DIR},
                *source_mounts,
                *fetch_only_mounts,
            ],
            # requests == limits here too: Kubernetes computes a pod's QoS class over its init containers as
            # well (pkg/apis/core/v1/helper/qos/qos.go GetPodQOS: `allContainers = Containers +
            # InitContainers`, Guaranteed only when every one has cpu and memory limits equal to its
            # requests), so an init container with requests < limits makes the pod Burstable. The
            # server's cpu and memory: the pod reserves max(init, sum of containers) anyway, so this
            # adds nothing to the reservation and gives fetch (download and hashing) the most it can have.
            # No GPU: fetch does not use one.
            "resources": {"requests": compute, "limits": compute},
            "security_context": RESTRICTED_CONTAINER_SECURITY,
        }
        server = {
            "name": "server",
            "image": args.image,
            "image_pull_policy": "IfNotPresent",
            "args": LAUNCHER_ARGS["serve"],
            "env": [e for e in env if e["name"] not in FETCH_ONLY_SETTINGS],
            "ports": [{"name": "http", "container_port": SERVING_PORT, "protocol": "TCP"}],
            "volume_mounts": [
                *scratch_mounts,
                # fetch wrote and verified the model; the engine only reads it.
                *([] if streams else [{"name": "model-cache", "mount_path": MODEL_DIR, "read_only": True}]),
                *source_mounts,
                {"name": "dshm", "mount_path": "/dev/shm"},
            ],
            # requests == limits (and the same in the init container): Guaranteed QoS, and GPUs must be
            # requested exactly so.
            "resources": {"requests": resources, "limits": resources},
            "security_context": RESTRICTED_CONTAINER_SECURITY,
            # The gateway needs a moment to stop routing here before the engine starts draining.
            "lifecycle": {"pre_stop": {"sleep": {"seconds": args.pre_stop_seconds}}},
            **probes(args),
        }
        return {
            "replicas": args.replicas,
            "revision_history_limit": 5,
            # One new pod's cold start and a margin: the controller restarts this clock whenever a pod of
            # the rollout is created or becomes ready (stacks/cold_start.py), and 600 s by default would
            # report a GPU rollout as failed (ProgressDeadlineExceeded) while it still loads.
            "progress_deadline_seconds": args.progress_deadline_seconds,
            "selector": {"match_labels": selector},
            # Surge (never below the current capacity) where the pool has room for one more replica;
            # otherwise one replica at a time, which always fits (stacks/rollout.py).
            "strategy": {
                "type": "RollingUpdate",
                "rolling_update": {"max_surge": args.max_surge, "max_unavailable": args.max_unavailable},
            },
            "template": {
                # The extra labels after the component's own, which validate_model_server_args keeps them
                # from overriding: the selector above must still match.
                "metadata": {"labels": {**self.pod_labels, **args.pod_labels}},
                "spec": {
                    "service_account_name": account,
                    "automount_service_account_token": False,
                    # A Service named like the engine would inject *_PORT variables that vLLM misreads.
                    "enable_service_links": False,
                    "termination_grace_period_seconds": args.termination_grace_seconds,
                    "security_context": {
                        "run_as_non_root": True,
                        "run_as_user": IMAGE_UID,
                        "run_as_group": IMAGE_UID,
                        "fs_group": IMAGE_UID,
                        "seccomp_profile": {"type": "RuntimeDefault"},
                    },
                    "node_selector": args.node_selector or None,
                    "tolerations": args.tolerations or None,
                    "topology_spread_constraints": [
                        {
                            "max_skew": 1,
                            "topology_key": key,
                            "when_unsatisfiable": "ScheduleAnyway",
                            "label_selector": {"match_labels": selector},
                        }
                        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
                    ],
                    # stream: no fetch; vLLM reads the bucket with the pod's own identity (IRSA / Pod
                    # Identity through boto3's credential chain, Workload Identity through the metadata
                    # server: runai-model-streamer docs/src/usage.md).
                    "init_containers": None if streams else [fetch],
                    "containers": [server],
                    "volumes": volumes,
                },
            },
        }

    def _network_policies(
        self, name: str, args: ModelServerArgs, selector: dict[str, str], metadata: Any
    ) -> None:
        pods = {"match_labels": selector}
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata=metadata("-default-deny"),
            spec=_untyped({"pod_selector": pods, "policy_types": ["Ingress", "Egress"]}),
            opts=child(self),
        )
        in_namespace = lambda ns: {"kubernetes.io/metadata.name": ns}  # noqa: E731
        gateway_peer: dict[str, Any] = {
            "namespace_selector": {"match_labels": in_namespace(args.gateway_namespace)}
        }
        if args.gateway_pod_labels:
            gateway_peer["pod_selector"] = {"match_labels": args.gateway_pod_labels}
        allow_metadata = metadata("-allow")
        if args.internet_egress_accepted_by:
            allow_metadata["annotations"] = {INTERNET_EGRESS_ANNOTATION: args.internet_egress_accepted_by}
        k8s.networking.v1.NetworkPolicy(
            f"{name}-allow",
            metadata=allow_metadata,
            spec=_untyped(
                {
                    "pod_selector": pods,
                    "policy_types": ["Ingress", "Egress"],
                    "ingress": [
                        {"from": [gateway_peer], "ports": [{"port": SERVING_PORT, "protocol": "TCP"}]},
                        {
                            # Prometheus only, not every pod of its namespace: the engine has no API
                            # key, so whatever reaches port 8000 can call /v1 without the gateway.
                            "from": [
                                {
                                    "namespace_selector": {
                                        "match_labels": in_namespace(args.monitoring_namespace)
                                    },
                                    "pod_selector": {"match_labels": dict(args.monitoring_pod_labels)},
                                }
                            ],
                            "ports": [{"port": SERVING_PORT, "protocol": "TCP"}],
                        },
                        *(
                            [
                                {
                                    # The endpoint picker reads vLLM's /metrics (queue, KV cache) to pick
                                    # a replica; it also holds no API key, so only its own pods.
                                    "from": [
                                        {
                                            "pod_selector": {
                                                "match_labels": dict(args.endpoint_picker_pod_labels)
                                            }
                                        }
                                    ],
                                    "ports": [{"port": SERVING_PORT, "protocol": "TCP"}],
                                }
                            ]
                            if args.endpoint_picker_pod_labels
                            else []
                        ),
                    ],
                    "egress": [
                        dns_egress_rule(args.dns_cidrs),
                        *model_store_egress(args),
                        *(
                            {
                                "to": [{"ip_block": {"cidr": cidr}}],
                                "ports": [{"port": port, "protocol": "TCP"}],
                            }
                            for cidr, port in args.extra_egress
                        ),
                    ],
                }
            ),
            opts=child(self),
        )
