"""InferencePoolRouting: prefix-cache-aware routing across the replicas of one vLLM model variant.

The Gateway API Inference Extension (GIE) puts an *endpoint picker* (EPP) between the gateway and a set
of model-server pods. The gateway (here Envoy, configured by Envoy AI Gateway's extension server) asks
the EPP over gRPC ext_proc which pod should serve each request; the EPP scores every pod of the
InferencePool on the engine's own metrics (queue depth, KV-cache use, scraped from vLLM's /metrics)
and on which pod most likely still holds the request's prompt prefix in its KV cache, and Envoy then
sends the request straight to that pod's IP:8000. The win is prefix reuse (shared system prompts,
multi-turn chats) and less queueing than round-robin; the figures upstream publishes are in
docs/multi-model.md ("Prefix-cache-aware routing"); this project has not measured them.

What it makes, all in `namespace` (the model server's), per model variant:

- an InferencePool (inference.networking.k8s.io/v1) selecting exactly that variant's pods on port 8000;
- the EPP: ServiceAccount, Role + RoleBinding (what the chart grants), ConfigMap with the plugin
  config, Deployment (Pod Security "restricted", Guaranteed QoS, image by digest, startupProbe and a
  preStop sleep), a PodDisruptionBudget when it runs more than one replica, Service (gRPC 9002);
- NetworkPolicies: EPP default deny; Envoy proxy pods -> EPP gRPC; EPP -> the variant's pods on 8000
  (metrics) and -> the Kubernetes API server (watches pods and the pool).

Why not the upstream Helm chart. Two charts install "an InferencePool and its EPP" with no gateway of
their own: GIE's `inferencepool` v1.5.0 (config/charts/inferencepool; the last release that has it,
removed from main in #2967; `experimentalHttpRoute.enabled: false` and `provider.name: none` by default)
and its successor llm-d-router's `llm-d-router-gateway` v0.10.0 (`httpRoute.create: false`,
`router.proxy.enabled: false`). Neither can run in a namespace that enforces Pod Security "restricted":
the EPP container of both has no securityContext and no value sets one (GIE v1.5.0
config/charts/epplib/templates/_deployment.yaml; llm-d-router v0.10.0
config/charts/routerlib/templates/_deployment.yaml sets one only on the optional proxy sidecar), so the
API server rejects the pods (runAsNonRoot, allowPrivilegeEscalation, capabilities, seccompProfile
unset) and the `atomic` release rolls back. A helm.v3.Release cannot be patched without a post-render
binary. So the objects are written here, following the GIE v1.5.0 chart's rendering with its default
values (INFERENCEPOOL_CHART_DEFAULTS; tests check them against the chart's values.yaml), plus the
security context. llm-d-router-gateway v0.10.0's default EPP image is `ghcr.io/llm-d/
llm-d-router-endpoint-picker:main` with pullPolicy Always: not a release, so it is not the pin.

Neither chart ships the InferencePool CRD (no crds/ folder, no CRD template); GIE publishes it as the
release asset manifests.yaml (`kustomize build config/crd`, Makefile target at v1.6.0). It is vendored
here from the v1.6.0 tag (components/crds/, the same schema as ../shared/crds) and applied once per
cluster by `inference_pool_crd`, retained on delete like every CRD of the stack.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components._common import (
    RESTRICTED_CONTAINER_SECURITY,
    child,
    keep_crds,
    labels,
    reject_invalid_args,
)
from components.choices import Engine
from components.load_balancer import ENVOY_PROXY_NAMESPACE, ENVOY_PROXY_POD_LABELS
from components.model_server import SERVING_PORT

# --- pins and upstream constants ---------------------------------------------------------------------

#: The EPP image the GIE v1.5.0 inferencepool chart runs (values.yaml inferenceExtension.image:
#: registry.k8s.io / gateway-api-inference-extension/epp / v1.5.0). GIE v1.6.0 ships no EPP any more
#: (its tree has only the CRDs and cmd/lwepp); llm-d-router carries it on.
EPP_IMAGE_TAG = "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0"
#: The digest of that tag, so a re-pushed tag cannot change what runs (policy images-pinned-by-digest,
#: checkov CKV_K8S_43; with a digest CKV_K8S_15 accepts IfNotPresent). registry.k8s.io images are
#: promoted as multi-arch indexes (kubernetes/k8s.io registry.k8s.io/images/
#: k8s-staging-gateway-api-inference-extension/images.yaml; v1.5.0 promoted in kubernetes/k8s.io#9361).
#: That manifest's v1.5.0 entry is not in the snapshot we could search, so this value is read second-hand:
#: ckodex-labs/ckodex-kserve-llm internal/scheduler/epp_manager.go (EPPImage, "v1.5.0") and its
#: docs/evidence/local-kind-2026-08-26.md ("EPP | v1.5.0 digest-pinned image", pulled and run on a
#: linux/arm64 kind node, so it resolves for arm64 as well). Re-check before a release:
#: `crane digest registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0` must print it.
EPP_IMAGE_DIGEST = "sha256:86c679b057298e68c6e65ff5603e92066d432e77b11f1f81f0a06399694810bc"
#: Tag for people, digest for the kubelet (containerd resolves by the digest and ignores the tag).
EPP_IMAGE = f"{EPP_IMAGE_TAG}@{EPP_IMAGE_DIGEST}"
#: The image's user: distroless/static:nonroot (GIE v1.5.0 Dockerfile BASE_IMAGE), uid/gid 65532.
EPP_UID = 65532
#: ext_proc gRPC port Envoy calls (chart inferenceExtension.extProcPort; EPP --grpc-port default 9002;
#: Envoy AI Gateway v1.1.0 internal/extensionserver/inferencepool.go defaultEndpointPickerPort = 9002).
EPP_GRPC_PORT = 9002
#: gRPC health port the kubelet probes (EPP --grpc-health-port default 9003).
EPP_HEALTH_PORT = 9003
#: Prometheus metrics port (EPP --metrics-port default 9090; bearer-token auth on by default).
EPP_METRICS_PORT = 9090
#: startupProbe: the kubelet asks the gRPC health service every 2 s, up to 30 times (60 s), before the
#: liveness probe (10 s period, 3 failures) may restart the picker. Start-up is loading the plugin config,
#: making its self-signed certificate and syncing the pod and InferencePool informers through the API
#: server: seconds normally, longer when the API server is slow; 60 s covers that without hiding a picker
#: that never comes up for long (a model server's probe allows minutes: it loads weights, this does not).
EPP_STARTUP_PERIOD_SECONDS = 2
EPP_STARTUP_FAILURE_THRESHOLD = 30
#: preStop sleep before the kubelet sends SIGTERM. On SIGTERM the EPP's manager cancels its context and
#: the ext_proc server calls grpc.Server.GracefulStop (GIE internal/runnable/grpc.go GRPCServer): no new
#: connections, GOAWAY on open ones, in-flight streams finish. Envoy reconnects through the Service's
#: ClusterIP, so the new connection must not land on this pod again: the sleep lets the EndpointSlice
#: change (this pod terminating, not ready) reach kube-proxy on every node running an Envoy proxy before
#: the GOAWAY. 15 s, as for the model server (components/model_server.py pre_stop_seconds), well over
#: the usual propagation of a second or two; with one replica (and the Recreate strategy) there is no
#: other picker to move to, and the sleep only delays the stop.
EPP_PRE_STOP_SECONDS = 15
#: termination grace: the chart's 130 s ("this timeout should mirror the longest grace period of the pods
#: within the pool"; the model server's default is 120 s): an ext_proc stream lives as long as the
#: request it routes, and GracefulStop waits for it. The preStop sleep counts against it (15 + 115 left).
EPP_TERMINATION_GRACE_SECONDS = 130
#: Why the picker keeps its ServiceAccount token (checkov CKV_K8S_38, skipped on its Deployment only).
#: No '=' in it: checkov splits the annotation value on '=' into (check id, reason).
EPP_TOKEN_SKIP_REASON = (
    "the endpoint picker is a Kubernetes client - it watches pods and its InferencePool (and takes a "
    "leader lease when replicated) with this token, limited by its namespaced Role"
)
#: The Envoy AI Gateway's ext_proc cluster to the EPP uses TLS without verification
#: (inferencepool.go buildExtProcClusterForInferencePoolEndpointPicker: UpstreamTlsContext with an empty
#: validation context); the EPP serves TLS with a self-signed certificate made in memory
#: (pkg/epp/server/options.go SecureServing: true by default; runserver.go CreateSelfSignedTLSCertificate).
#: Nothing to configure on either side, and no Secret.
INFERENCE_POOL_API_VERSION = "inference.networking.k8s.io/v1"
INFERENCE_POOL_GROUP = "inference.networking.k8s.io"
CONFIG_FILE = "default-plugins.yaml"
CONFIG_MOUNT = "/config"

#: The GIE v1.5.0 inferencepool chart's defaults this component follows (../shared/charts/inferencepool;
#: tests/components/test_inference_pool.py compares them with the chart's values.yaml).
INFERENCEPOOL_CHART_DEFAULTS: dict[str, Any] = {
    "inferenceExtension": {
        "replicas": 1,
        "image": {
            "registry": "registry.k8s.io",
            "repository": "gateway-api-inference-extension/epp",
            "tag": "v1.5.0",
        },
        "extProcPort": EPP_GRPC_PORT,
        "failureMode": "FailOpen",
        "pluginsConfigFile": CONFIG_FILE,
        "flags": {"v": 1},
        "resources": {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"memory": "16Gi"}},
        "metricsDataSource": {"scheme": "http", "path": "/metrics", "insecureSkipVerify": True},
    },
    "inferencePool": {"targetPorts": [{"number": SERVING_PORT}], "modelServerType": "vllm"},
}

#: The metric names the EPP v1.5.0 reads from a vLLM pod (pkg/epp/server/options.go NewOptions and
#: pkg/epp/framework/plugins/datalayer/extractor/metrics/factories.go, the vllm engine's specs). vLLM
#: exports the first three from vllm/v1/metrics/loggers.py PrometheusStatLogger (gauges
#: vllm:num_requests_waiting, vllm:num_requests_running, vllm:kv_cache_usage_perc; read on vLLM's main
#: branch, as the v0.31.0 tag is not in the searchable snapshot); the deprecated
#: vllm:gpu_cache_usage_perc is not what the EPP reads.
EPP_VLLM_METRICS: dict[str, str] = {
    "queued_requests": "vllm:num_requests_waiting",
    "running_requests": "vllm:num_requests_running",
    "kv_cache_usage": "vllm:kv_cache_usage_perc",
    "lora_info": "vllm:lora_requests_info",
    "cache_info": "vllm:cache_config_info",
}

#: The vendored CRD (GIE tag v1.6.0, commit 992e5c29, config/crd/bases/).
INFERENCE_POOL_CRD_FILE = Path(__file__).parent / "crds" / "inference.networking.k8s.io_inferencepools.yaml"

#: Envoy AI Gateway v1.1.0's Envoy Gateway values addon for InferencePool backends
#: (examples/inference-pool/envoy-gateway-values-addon.yaml): Envoy Gateway hands InferencePool
#: backendRefs to the AI Gateway's extension server, which builds the ext_proc filter and the cluster.
ENVOY_GATEWAY_INFERENCE_POOL_VALUES: dict[str, Any] = {
    "config": {
        "envoyGateway": {
            "extensionManager": {
                "backendResources": [
                    {"group": INFERENCE_POOL_GROUP, "kind": "InferencePool", "version": "v1"}
                ]
            }
        }
    }
}

#: Object names: the EPP Service is a DNS-1035 label (<= 63) named f"{name}-epp", as the chart names it.
_MAX_NAME = 63 - len("-epp-default-deny")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")  # as policy/rules.py images-pinned-by-digest reads it
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def routing_enabled(engine: Engine, max_replicas: int) -> bool:
    """Whether a model variant gets an InferencePool: on by default for vLLM when it may run two or more
    replicas (a picker has nothing to choose between with one); the CPU engine (transformers serve)
    exports none of the metrics the EPP scores on, so it keeps its plain Service."""
    return engine is Engine.VLLM and max_replicas >= 2


def envoy_gateway_values() -> dict[str, Any]:
    """Envoy Gateway Helm values InferencePool backends need (a copy of ENVOY_GATEWAY_INFERENCE_POOL_VALUES),
    to be merged over components/load_balancer.py's. Besides these, Envoy AI Gateway's base values
    (manifests/envoy-gateway-values.yaml: extensionManager hooks and service) must be set; the AI Gateway
    chart itself grants Envoy Gateway read access to InferencePools
    (templates/envoy_gateway_cluster_role_for_inference_pool.yaml)."""
    return copy.deepcopy(ENVOY_GATEWAY_INFERENCE_POOL_VALUES)


def ai_gateway_backend_ref(pool_name: str) -> dict[str, Any]:
    """An AIGatewayRoute rule's backendRef to an InferencePool (Envoy AI Gateway v1.1.0
    site/docs/capabilities/inference/aigatewayroute-inferencepool.md and examples/inference-pool/
    aigwroute.yaml): group + kind + name, no port (the pool's targetPorts) and no weight beside it
    (the AIGatewayRoute CRD admits one InferencePool backendRef per rule)."""
    return {"group": INFERENCE_POOL_GROUP, "kind": "InferencePool", "name": pool_name}


def selector_matches(selector: dict[str, str], pod_labels: dict[str, str]) -> bool:
    """Kubernetes matchLabels semantics: every selector pair is on the pod (an empty selector matches all)."""
    return all(pod_labels.get(key) == value for key, value in selector.items())


@dataclass(frozen=True, kw_only=True)
class InferencePoolRoutingArgs:
    """One model variant's InferencePool and endpoint picker."""

    namespace: str  # the model server's namespace: a pool selects pods in its own namespace only
    # The variant's pod labels to select, exactly as its Deployment's pod template carries them (e.g.
    # ModelServer(name).pod_labels' app.kubernetes.io/name + component, plus the per-variant label).
    pod_selector: dict[str, str]
    # The pod labels of every *other* model variant's pods in the namespace: the selector must match none.
    other_variant_pod_labels: list[dict[str, str]] = field(default_factory=list)
    # The Kubernetes API server's endpoint addresses (`kubectl get endpoints kubernetes -n default`), which
    # the EPP watches pods and the pool through; a NetworkPolicy sees the address after the Service's DNAT.
    api_server_cidrs: list[str]
    api_server_ports: list[int] = field(default_factory=lambda: [443, 6443])  # managed: 443, kubeadm: 6443
    engine: Engine = Engine.VLLM  # the pool scores vLLM metrics; transformers keeps a plain Service
    target_port: int = SERVING_PORT  # the engine's port on each pod
    epp_image: str = EPP_IMAGE
    # The chart's default; >1 runs leader election (one active picker, the others warm standbys) and adds
    # a PodDisruptionBudget (maxUnavailable 1), so a node drain never takes every picker at once.
    epp_replicas: int = 1
    # CPU and memory, each both request and limit, so the pod is Guaranteed like every serving pod here
    # (policy serving-pods-guaranteed). The GIE v1.5.0 chart requests cpu 4 / memory 8Gi, "validated with
    # scale testing at high QPS, achieving p90 scheduler latency within 100ms", and sets no CPU limit "to
    # allow bursting to all available node CPUs during scheduling spikes" and a 16Gi memory limit "to
    # avoid putting the node under memory pressure in case of a memory leak" (values.yaml
    # inferenceExtension.resources). We keep the validated requests as the limits: 4 whole CPUs are the
    # picker's own (exclusive cores under the static CPU manager) instead of a burst that depends on the
    # neighbours, and memory stops at the sized 8Gi - a leak restarts the picker sooner than upstream's
    # 16Gi would, rather than eating the node. Raise both together for heavier plugins (the chart: profile
    # with pprof).
    epp_cpu: str = "4"
    epp_memory: str = "8Gi"
    # Written on the pool as the chart does (FailOpen). Envoy AI Gateway v1.1.0 does not read it: its
    # ext_proc filter to the picker always has failure_mode_allow false (internal/extensionserver/
    # inferencepool.go), so while no picker is ready requests to the pool fail; run 2 replicas for that.
    failure_mode: str = "FailOpen"
    gateway_namespace: str = ENVOY_PROXY_NAMESPACE  # where the Envoy proxies run
    gateway_pod_labels: dict[str, str] = field(default_factory=lambda: dict(ENVOY_PROXY_POD_LABELS))
    node_selector: dict[str, str] = field(default_factory=dict)  # where the EPP may run (not GPU nodes)
    tolerations: list[dict[str, Any]] = field(default_factory=list)


def validate_inference_pool_args(name: str, args: InferencePoolRoutingArgs) -> list[str]:
    """Every problem with `name` and `args`, each naming its field and the fix; empty when usable."""
    problems: list[str] = []
    if not _DNS_LABEL.match(name) or len(name) > _MAX_NAME:
        problems.append(
            f"name: {name!r} must be a DNS label of at most {_MAX_NAME} characters (lowercase letters, "
            "digits, '-'; starting with a letter): the EPP Service is named '<name>-epp'"
        )
    if not _DNS_LABEL.match(args.namespace):
        problems.append(f"namespace: {args.namespace!r} is not a Kubernetes namespace name")
    if args.engine is not Engine.VLLM:
        problems.append(
            f"engine: {args.engine.value} exports none of the metrics the endpoint picker scores on "
            "(vllm:num_requests_waiting, vllm:kv_cache_usage_perc); route it to its plain Service"
        )
    if not args.pod_selector:
        problems.append(
            "pod_selector: empty would select every pod of the namespace; give the variant's pod labels"
        )
    for key, value in args.pod_selector.items():
        if not _LABEL_NAME.match(key) or not _LABEL_VALUE.match(value):
            problems.append(f"pod_selector: {key}={value!r} is not a valid label key and value")
    for i, other in enumerate(args.other_variant_pod_labels):
        if selector_matches(args.pod_selector, other):
            problems.append(
                f"pod_selector: {args.pod_selector} also matches other_variant_pod_labels[{i}] ({other}); "
                "add the per-variant label so the pool holds this variant's pods only"
            )
    if not 1 <= args.target_port <= 65535:
        problems.append(f"target_port: {args.target_port} is not a port (1-65535)")
    if not args.api_server_cidrs:
        problems.append(
            "api_server_cidrs: the endpoint picker watches pods and its pool through the Kubernetes API; "
            "list the API server's addresses (kubectl get endpoints kubernetes -n default -o wide), as /32s"
        )
    for cidr in args.api_server_cidrs:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            problems.append(f"api_server_cidrs: {cidr!r} is not a network in CIDR form (e.g. 10.0.0.1/32)")
    if not args.api_server_ports or any(not 1 <= p <= 65535 for p in args.api_server_ports):
        problems.append("api_server_ports: one or more ports (1-65535), e.g. [443, 6443]")
    if not _DIGEST.search(args.epp_image):
        problems.append(
            f"epp_image: {args.epp_image!r} is not pinned; append its digest (image:tag@sha256:<64 hex>, "
            "from `crane digest <image:tag>`), as EPP_IMAGE does"
        )
    if args.epp_replicas < 1:
        problems.append("epp_replicas: at least 1 (requests to the pool need a picker)")
    if args.failure_mode not in ("FailOpen", "FailClose"):
        problems.append(f"failure_mode: {args.failure_mode!r} must be FailOpen or FailClose")
    if not args.gateway_pod_labels:
        problems.append(
            f"gateway_pod_labels: name the Envoy proxy pods' labels; empty lets every pod in "
            f"{args.gateway_namespace} call the endpoint picker"
        )
    return problems


def epp_plugins_config() -> str:
    """The EndpointPickerConfig the GIE v1.5.0 chart writes for vLLM over HTTP with the latency predictor
    off (config/charts/epplib/templates/_config.yaml): queue, KV-cache-utilization and prefix-cache
    scorers weighted 2 : 2 : 3 in the default profile, metrics scraped over HTTP from /metrics."""
    config = {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha1",
        "kind": "EndpointPickerConfig",
        "plugins": [
            {"type": "queue-scorer"},
            {"type": "kv-cache-utilization-scorer"},
            {"type": "prefix-cache-scorer"},
            {
                "type": "metrics-data-source",
                "parameters": {"scheme": "http", "path": "/metrics", "insecureSkipVerify": True},
            },
            # No parameters: defaultEngine is vllm unless modelServerType says otherwise.
            {"type": "core-metrics-extractor"},
        ],
        "schedulingProfiles": [
            {
                "name": "default",
                "plugins": [
                    {"pluginRef": "queue-scorer", "weight": 2},
                    {"pluginRef": "kv-cache-utilization-scorer", "weight": 2},
                    {"pluginRef": "prefix-cache-scorer", "weight": 3},
                ],
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def epp_args(pool_name: str, namespace: str, replicas: int) -> list[str]:
    """The EPP container's args as the chart renders them for a vLLM pool (no legacy metric flags: the
    vLLM names are the EPP's defaults, EPP_VLLM_METRICS)."""
    args = [
        "--pool-name",
        pool_name,
        "--pool-namespace",
        namespace,
        "--pool-group",
        INFERENCE_POOL_GROUP,
        "--zap-encoder",
        "json",
        "--config-file",
        f"{CONFIG_MOUNT}/{CONFIG_FILE}",
    ]
    if replicas > 1:
        args.append("--ha-enable-leader-election")
    # flags.v: 1 (chart default), tracing off (no collector is reachable: egress is closed).
    return [*args, "--v", "1", "--tracing=false"]


def inference_pool_spec(name: str, args: InferencePoolRoutingArgs) -> dict[str, Any]:
    return {
        "targetPorts": [{"number": args.target_port}],
        "appProtocol": "http",
        "selector": {"matchLabels": dict(args.pod_selector)},
        "endpointPickerRef": {
            "kind": "Service",
            "name": f"{name}-epp",
            "port": {"number": EPP_GRPC_PORT},
            "failureMode": args.failure_mode,
        },
    }


def _untyped(value: Any) -> Any:
    """Plain snake_case dicts for the SDK's typed arguments (its TypedDicts do not accept dict[str, Any])."""
    return value


def inference_pool_crd(
    name: str, opts: pulumi.ResourceOptions
) -> k8s.apiextensions.v1.CustomResourceDefinition:
    """The InferencePool CRD (GIE v1.6.0), once per cluster, before any InferencePool: retained on delete
    (deleting a CRD deletes every pool in the cluster) and waiting until Established, as keep_crds does for
    the CRD charts. Pass the "cluster-crds" provider (components/_common.py cluster_providers) in `opts`
    so a CRD already on the cluster (Envoy AI Gateway's guide applies it by hand) is adopted."""
    crd = yaml.safe_load(INFERENCE_POOL_CRD_FILE.read_text(encoding="utf-8"))
    transformed = keep_crds(
        pulumi.ResourceTransformArgs(
            custom=True,
            type_="kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
            name=name,
            props={"metadata": crd["metadata"]},
            opts=opts,
        )
    )
    assert transformed is not None and transformed.opts is not None
    return k8s.apiextensions.v1.CustomResourceDefinition(
        name,
        metadata=transformed.props["metadata"],
        spec=crd["spec"],
        opts=transformed.opts,
    )


class InferencePoolRouting(pulumi.ComponentResource):
    """An InferencePool over one model variant's pods and the endpoint picker that routes within it.

    Outputs: `pool_name` (the InferencePool, for an AIGatewayRoute backendRef: ai_gateway_backend_ref)
    and `epp_pod_labels` (the picker's pods, which the model server's ingress must admit on 8000).
    """

    pool_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: InferencePoolRoutingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        reject_invalid_args("InferencePoolRouting", name, validate_inference_pool_args(name, args))
        super().__init__("inferstack:inference_pool:InferencePoolRouting", name, None, opts)

        epp = f"{name}-epp"
        ns = args.namespace
        self.epp_pod_labels = labels(epp, "endpoint-picker")
        epp_selector = {"app.kubernetes.io/name": epp, "app.kubernetes.io/component": "endpoint-picker"}

        def meta(object_name: str) -> Any:
            return {"name": object_name, "namespace": ns, "labels": self.epp_pod_labels}

        account = k8s.core.v1.ServiceAccount(f"{name}-epp-sa", metadata=meta(epp), opts=child(self))
        # What the chart grants (GIE v1.5.0 config/charts/inferencepool/templates/rbac.yaml and
        # epplib/templates/_rbac.yaml): read pods, the pool, and the optional objectives/rewrites.
        # No ClusterRole: that one is only for authenticating scrapes of the EPP's own metrics
        # (monitoring.prometheus.enabled, off here).
        rules: list[dict[str, Any]] = [
            {"api_groups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]},
            {
                "api_groups": [INFERENCE_POOL_GROUP],
                "resources": ["inferencepools"],
                "verbs": ["get", "watch", "list"],
            },
            {
                "api_groups": ["inference.networking.x-k8s.io"],
                "resources": ["inferenceobjectives", "inferencemodelrewrites"],
                "verbs": ["get", "watch", "list"],
            },
        ]
        if args.epp_replicas > 1:
            # epplib/templates/_leader-election-rbac.yaml, rendered when replicas > 1.
            rules += [
                {
                    "api_groups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                },
                {"api_groups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            ]
        role = k8s.rbac.v1.Role(
            f"{name}-epp-role", metadata=meta(epp), rules=_untyped(rules), opts=child(self)
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-epp-rolebinding",
            metadata=meta(epp),
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": role.metadata.name},
            subjects=[{"kind": "ServiceAccount", "name": account.metadata.name, "namespace": ns}],
            opts=child(self),
        )
        config = k8s.core.v1.ConfigMap(
            f"{name}-epp-config",
            metadata=meta(epp),
            data={CONFIG_FILE: epp_plugins_config()},
            opts=child(self),
        )
        self._network_policies(name, args, epp_selector)
        k8s.apps.v1.Deployment(
            f"{name}-epp-deployment",
            metadata={
                **meta(epp),
                # The pod needs its token (automount_service_account_token below); checkov's skip
                # annotation, on this object only, with the reason (inferstack/validation/checkov.py).
                "annotations": {"checkov.io/skip1": f"CKV_K8S_38={EPP_TOKEN_SKIP_REASON}"},
            },
            spec=_untyped(self._deployment_spec(name, args, epp_selector, account, config)),
            opts=child(self),
        )
        if args.epp_replicas > 1:
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-epp-pdb",
                metadata=meta(epp),
                spec=_untyped(
                    {
                        # One picker at a time may go in node drains and upgrades: the standby takes the
                        # lease; a crash-looping picker never blocks a drain.
                        "max_unavailable": 1,
                        "selector": {"match_labels": epp_selector},
                        "unhealthy_pod_eviction_policy": "AlwaysAllow",
                    }
                ),
                opts=child(self),
            )
        k8s.core.v1.Service(
            f"{name}-epp-service",
            metadata=meta(epp),
            spec=_untyped(
                {
                    "type": "ClusterIP",
                    "selector": epp_selector,
                    "ports": [
                        {
                            "name": "grpc-ext-proc",
                            "port": EPP_GRPC_PORT,
                            "target_port": EPP_GRPC_PORT,
                            "protocol": "TCP",
                            # Envoy speaks HTTP/2 (gRPC) over TLS to it.
                            "app_protocol": "http2",
                        }
                    ],
                }
            ),
            opts=child(self),
        )
        pool = k8s.apiextensions.CustomResource(
            f"{name}-pool",
            api_version=INFERENCE_POOL_API_VERSION,
            kind="InferencePool",
            metadata={"name": name, "namespace": ns, "labels": labels(name, "inference-pool")},
            spec=inference_pool_spec(name, args),
            opts=child(self),
        )
        # The name is ours (known at plan time); depending on `pool` orders whoever routes to it after it.
        self.pool_name = pulumi.Output.from_input(name)
        self.pool = pool
        self.register_outputs({"pool_name": self.pool_name})

    def _deployment_spec(
        self,
        name: str,
        args: InferencePoolRoutingArgs,
        selector: dict[str, str],
        account: k8s.core.v1.ServiceAccount,
        config: k8s.core.v1.ConfigMap,
    ) -> dict[str, Any]:
        resources = {
            "requests": {"cpu": args.epp_cpu, "memory": args.epp_memory},
            "limits": {"cpu": args.epp_cpu, "memory": args.epp_memory},
        }
        health = "inference-extension" if args.epp_replicas == 1 else None
        container = {
            "name": "epp",
            "image": args.epp_image,
            "image_pull_policy": "IfNotPresent",
            "args": epp_args(name, args.namespace, args.epp_replicas),
            "ports": [
                {"name": "grpc", "container_port": EPP_GRPC_PORT, "protocol": "TCP"},
                {"name": "grpc-health", "container_port": EPP_HEALTH_PORT, "protocol": "TCP"},
                {"name": "metrics", "container_port": EPP_METRICS_PORT, "protocol": "TCP"},
            ],
            # With leader election, liveness and readiness are separate gRPC services (the chart's choice):
            # only the leader is ready, so Envoy's DNS cluster reaches the active picker. The startupProbe
            # asks the liveness service: a standby is never ready, yet it has started.
            "startup_probe": {
                "grpc": {"port": EPP_HEALTH_PORT, "service": health or "liveness"},
                "period_seconds": EPP_STARTUP_PERIOD_SECONDS,
                "failure_threshold": EPP_STARTUP_FAILURE_THRESHOLD,
            },
            "liveness_probe": {
                "grpc": {"port": EPP_HEALTH_PORT, "service": health or "liveness"},
                "initial_delay_seconds": 5,
                "period_seconds": 10,
            },
            "readiness_probe": {
                "grpc": {"port": EPP_HEALTH_PORT, "service": health or "readiness"},
                "period_seconds": 2,
            },
            "env": [
                {"name": "NAMESPACE", "value_from": {"field_ref": {"field_path": "metadata.namespace"}}},
                {"name": "POD_NAME", "value_from": {"field_ref": {"field_path": "metadata.name"}}},
            ],
            # Envoy must stop calling a terminating picker: see EPP_PRE_STOP_SECONDS. The kubelet's sleep
            # action, as the model server uses: the image is distroless, with no shell to run `sleep`.
            "lifecycle": {"pre_stop": {"sleep": {"seconds": EPP_PRE_STOP_SECONDS}}},
            "resources": resources,
            "volume_mounts": [
                {"name": "plugins-config", "mount_path": CONFIG_MOUNT, "read_only": True},
                # Read-only root: Go's os.TempDir for anything a library writes.
                {"name": "tmp", "mount_path": "/tmp"},
            ],
            "security_context": RESTRICTED_CONTAINER_SECURITY,
        }
        return {
            "replicas": args.epp_replicas,
            # The chart's strategy: the prefix-cache index lives in the picker's memory, and with leader
            # election a rolling update could never stop the old leader.
            "strategy": {"type": "Recreate"},
            "selector": {"match_labels": selector},
            "template": {
                "metadata": {"labels": self.epp_pod_labels},
                "spec": {
                    "service_account_name": account.metadata.name,
                    # The picker is a Kubernetes client (watches pods and the pool).
                    "automount_service_account_token": True,
                    "enable_service_links": False,
                    "termination_grace_period_seconds": EPP_TERMINATION_GRACE_SECONDS,
                    "security_context": {
                        "run_as_non_root": True,
                        "run_as_user": EPP_UID,
                        "run_as_group": EPP_UID,
                        "seccomp_profile": {"type": "RuntimeDefault"},
                    },
                    "node_selector": args.node_selector or None,
                    "tolerations": args.tolerations or None,
                    "containers": [container],
                    "volumes": [
                        {"name": "plugins-config", "config_map": {"name": config.metadata.name}},
                        {"name": "tmp", "empty_dir": {"size_limit": "64Mi"}},
                    ],
                },
            },
        }

    def _network_policies(
        self, name: str, args: InferencePoolRoutingArgs, epp_selector: dict[str, str]
    ) -> None:
        epp_pods = {"match_labels": epp_selector}

        def meta(suffix: str) -> Any:
            return {"name": f"{name}-epp{suffix}", "namespace": args.namespace, "labels": self.epp_pod_labels}

        k8s.networking.v1.NetworkPolicy(
            f"{name}-epp-default-deny",
            metadata=meta("-default-deny"),
            spec=_untyped({"pod_selector": epp_pods, "policy_types": ["Ingress", "Egress"]}),
            opts=child(self),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-epp-allow",
            metadata=meta("-allow"),
            spec=_untyped(
                {
                    "pod_selector": epp_pods,
                    "policy_types": ["Ingress", "Egress"],
                    "ingress": [
                        {
                            # Envoy's ext_proc call per request (Envoy Gateway runs the proxies in its own
                            # namespace, ControllerNamespace mode; components/load_balancer.py).
                            "from": [
                                {
                                    "namespace_selector": {
                                        "match_labels": {
                                            "kubernetes.io/metadata.name": args.gateway_namespace
                                        }
                                    },
                                    "pod_selector": {"match_labels": dict(args.gateway_pod_labels)},
                                }
                            ],
                            "ports": [{"port": EPP_GRPC_PORT, "protocol": "TCP"}],
                        }
                    ],
                    "egress": [
                        # Scrapes vLLM's /metrics on each pod of the pool (metrics-data-source plugin).
                        {
                            "to": [{"pod_selector": {"match_labels": dict(args.pod_selector)}}],
                            "ports": [{"port": args.target_port, "protocol": "TCP"}],
                        },
                        # Watches pods and the InferencePool (in-cluster config: the API server's Service
                        # IP from the environment, no DNS lookup).
                        {
                            "to": [{"ip_block": {"cidr": cidr}} for cidr in args.api_server_cidrs],
                            "ports": [{"port": port, "protocol": "TCP"} for port in args.api_server_ports],
                        },
                    ],
                }
            ),
            opts=child(self),
        )
