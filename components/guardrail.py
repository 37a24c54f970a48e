"""Guardrail: a content filter in front of the engines, through Envoy Gateway's external processing.

What it makes, in `namespace` (the serving namespace, where the Gateway, its routes and policies live):
- the processor (the `guardrail/` package, its own image): ConfigMap with the per-client policy (JSON,
  guardrail/policy.py), Deployment (Pod Security "restricted", read-only root, Guaranteed QoS, gRPC
  probes on a health server of its own, port 9003, so a pod at its stream limit still answers them),
  PodDisruptionBudget (more than one replica), Service (gRPC 9002, appProtocol kubernetes.io/h2c);
- an EnvoyExtensionPolicy (gateway.envoyproxy.io/v1alpha1, Envoy Gateway v1.8.3) on the API's HTTPRoute
  with one extProc to that Service;
- NetworkPolicies: Envoy's proxy pods -> the processor's port; the processor -> the classifier model's pods
  on 8000 and DNS, nothing else; and on the classifier's pods, ingress from the processor on 8000 (policies
  add up: the model server's own allow admits only the gateway). The kubelet's probes to port 9003 need no
  rule: NetworkPolicy does not restrict traffic from the pod's own node on most CNIs (Kubernetes' Network
  Policies page, "What you can't do with network policies": pods cannot block access from their resident
  node; Calico, Cilium and the VPC CNI's policy agent admit host traffic), so 9003 is not opened to anyone else.

The EnvoyExtensionPolicy, field by field (api/v1alpha1/ext_proc_types.go and internal/xds/translator/
extproc.go at v1.8.3):
- processingMode.request.body Buffered: Envoy sends the headers, then the whole body in one message; a body
  over the listener's buffer limit gets 413 from Envoy (32 KiB unless a ClientTrafficPolicy raises
  connection.bufferLimit: components/load_balancer.py sets 50Mi when models are routed);
- processingMode.response: present, so response headers are sent (the flag header is added there); body
  Streamed when some client has check_responses (each chunk goes to the processor and is forwarded only
  after its answer), absent otherwise; allowModeOverride true, so the processor picks per exchange:
  Buffered for a checked JSON answer, Streamed for a checked event stream, None for the rest;
- failOpen: Envoy's failure_mode_allow, for the processor being unreachable, erroring or slower than
  messageTimeout: true serves the request unchecked, false answers 5xx. The classifier's own failures are
  the processor's, per client (guardrail/policy.py failure_mode);
- messageTimeout: the classifier's timeout plus a second for the processor's own work (Envoy's default,
  200 ms, is shorter than a moderation model's answer).

Where it runs in Envoy's filter chain (multi-model stacks): AI Gateway v1.1.0's extension server inserts
its router-level ext_proc ahead of the first Envoy Gateway ext_proc filter (internal/extensionserver/
post_translate_modify.go insertAIGatewayExtProcFilter), so it runs first on a request; its router-level
processor sets headers only (x-ai-eg-model, the original path) and clears the route cache, with no body
mutation (internal/extproc/processor_impl.go routerProcessor.ProcessRequestBody): the body the guardrail
sees is the client's. The per-backend rewrite (upstream ext_proc) happens after routing, after this one.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._common import RESTRICTED_CONTAINER_SECURITY, child, labels, reject_invalid_args
from components.load_balancer import ENVOY_PROXY_NAMESPACE, ENVOY_PROXY_POD_LABELS
from components.model_server import NODE_LOCAL_DNS_CIDRS, SERVING_PORT, dns_egress_rule
from components.network_policy import in_namespace
from guardrail.memory import DEFAULT_MAX_STREAMS, large_body_slots
from guardrail.policy import PolicyError, parse_policy

#: The processor's gRPC port (ExternalProcessor): guardrail/settings.py `port` default.
GUARDRAIL_PORT = 9002
#: grpc.health.v1.Health's port, its own grpc.aio server (guardrail/__main__.py): the probes' port.
HEALTH_PORT = 9003
#: The service name the gRPC probes ask about (guardrail/__main__.py SERVICE).
HEALTH_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
POLICY_DIR = "/etc/guardrail"
POLICY_FILE = "policy.json"
GUARDRAIL_UID = 10001
COMPONENT = "guardrail"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|k|M|G)?$")


class GuardrailFailureMode(StrEnum):
    """What Envoy does when the processor cannot answer (EnvoyExtensionPolicy failOpen)."""

    OPEN = "open"  # serve the request unchecked
    CLOSED = "closed"  # refuse it with a 5xx


@dataclass(frozen=True, kw_only=True)
class GuardrailArgs:
    """One guardrail in front of one API route."""

    namespace: str  # the serving namespace: the route's, the classifier's, and this processor's
    route_name: (
        str  # the HTTPRoute to guard: single model `<gateway>-api`; routed models the AIGatewayRoute's name
    )
    classifier_model: str  # the moderation model's served name (one of the stack's models)
    classifier_service: str  # its model server Service in `namespace` (port 8000)
    classifier_pod_labels: dict[str, str]  # its model server pods' selector labels
    image: str  # the guardrail image (guardrail/Dockerfile), pinned by digest
    policy: dict[str, Any] = field(default_factory=dict)  # guardrail/policy.py's JSON shape; {} = block all
    failure_mode: GuardrailFailureMode = GuardrailFailureMode.CLOSED  # processor down: Envoy's failOpen
    classifier_timeout_s: float = 2.0  # one classifier call's limit, seconds
    stream_check_interval_chars: int = 400  # streamed answers: classify every this many new characters
    log_prompts: bool = False  # audit lines carry the checked text (off: privacy)
    replicas: int = 2  # processor pods; more than one gets a PodDisruptionBudget
    # request = limit (Guaranteed QoS: every API request waits on this pod). One core: the event loop and
    # the parse worker that takes bodies over 64 KiB off it (guardrail/memory.py OFF_LOOP_BYTES); a 4 MiB
    # body's json.loads is ~0.15 s of a core, so 500m was saturated by a few large requests a second.
    cpu: str = "1"
    # request = limit. Bodies over max_body_bytes(max_text_chars) are refused before parsing, and the
    # processor sizes how many large bodies it checks at once to this limit (guardrail/memory.py
    # large_body_slots: 4 at 512Mi and the default max_text_chars); validation refuses a limit that
    # leaves no slot. An OOM-killed processor is failOpen's case for every exchange it held.
    memory: str = "512Mi"
    # The longest text checked (prompt, plus answer for an answer check), characters; longer is refused
    # with 413 content_too_large (guardrail/settings.py max_text_chars). About 4 characters a token: set it
    # near 4 x the classifier's max_model_len to refuse early what the classifier would refuse anyway.
    max_text_chars: int = 500_000
    # On a rollout or a drain, how long the processor lets open exchanges finish, seconds. Pass the route's
    # request timeout: Envoy holds an exchange's ext_proc stream until its response headers (to the last
    # chunk for a checked stream), and a stream cut by the processor's exit fails its exchange (failOpen's
    # case). terminationGracePeriodSeconds is this plus PRE_STOP_SECONDS plus DRAIN_MARGIN_SECONDS.
    drain_seconds: int = 600
    gateway_namespace: str = ENVOY_PROXY_NAMESPACE  # where Envoy's proxy pods run
    gateway_pod_labels: dict[str, str] = field(default_factory=lambda: dict(ENVOY_PROXY_POD_LABELS))
    dns_cidrs: list[str] = field(default_factory=lambda: list(NODE_LOCAL_DNS_CIDRS))  # node-local resolvers
    # Whether this component writes the route's EnvoyExtensionPolicy. Envoy Gateway v1.8.3 attaches ONE
    # EnvoyExtensionPolicy per route (internal/gatewayapi/envoyextensionpolicy.go,
    # resolveEnvoyExtensionPolicyRouteTargetRef: a second is Conflicted and never translated), so where the
    # route already has one (AI Gateway routing's Lua policy, components/model_routing.py) the caller puts
    # guardrail_ext_proc(args) into that policy instead and passes False.
    attach_policy: bool = True


#: The preStop sleep: the pod leaves the Service's endpoints (and Envoy's load assignment) before SIGTERM.
PRE_STOP_SECONDS = 5
#: After the drain: the processor's exit and the kubelet's SIGKILL timing.
DRAIN_MARGIN_SECONDS = 5


def termination_grace_seconds(args: GuardrailArgs) -> int:
    """The pod's terminationGracePeriodSeconds: the preStop sleep, then the processor's drain (the grace
    period counts from the preStop hook's start, Kubernetes pod lifecycle "Termination of Pods"), then a
    margin."""
    return PRE_STOP_SECONDS + args.drain_seconds + DRAIN_MARGIN_SECONDS


def validate_guardrail_args(args: GuardrailArgs) -> list[str]:
    """Every problem with `args`, each starting with the field it is about; empty when usable."""
    problems: list[str] = []
    for name in ("namespace", "route_name", "classifier_service", "gateway_namespace"):
        value = getattr(args, name)
        if not _DNS_LABEL.match(value) or len(value) > 63:
            problems.append(f"{name}: {value!r} is not a Kubernetes name (lowercase letters, digits, '-')")
    if not args.classifier_model:
        problems.append("classifier_model: name the moderation model, one of the stack's models")
    if not args.classifier_pod_labels:
        problems.append(
            "classifier_pod_labels: empty would admit the processor to every pod; name the classifier's"
        )
    if not args.gateway_pod_labels:
        problems.append("gateway_pod_labels: empty would admit every pod of gateway_namespace; name Envoy's")
    # A tag is allowed, as for every image of the stack: the policy pack's images-pinned-by-digest is mandatory
    # in prod and advisory in dev, where a side-loaded image (kind) has no digest to pin.
    if not args.image.strip():
        problems.append("image: name the guardrail image (docker build -f guardrail/Dockerfile)")
    try:
        parse_policy(json.dumps(args.policy), "policy")
    except PolicyError as err:
        problems.append(str(err))
    if not 0 < args.classifier_timeout_s <= 30:
        problems.append(
            f"classifier_timeout_s: {args.classifier_timeout_s} must be in (0, 30]: every request waits on it"
        )
    if args.stream_check_interval_chars < 1:
        problems.append("stream_check_interval_chars: must be at least 1")
    if args.max_text_chars < 1000:
        problems.append(
            f"max_text_chars: {args.max_text_chars} must be at least 1000 (a short conversation's length)"
        )
    if args.replicas < 1:
        problems.append(f"replicas: {args.replicas} must be at least 1")
    if args.drain_seconds < 0:
        problems.append(
            f"drain_seconds: {args.drain_seconds} must be 0 or more (pass the route's request timeout)"
        )
    for name in ("cpu", "memory"):
        if not _QUANTITY.match(getattr(args, name)):
            problems.append(f"{name}: {getattr(args, name)!r} is not a Kubernetes quantity")
    if _QUANTITY.match(args.memory) and args.max_text_chars >= 1000:
        streams = DEFAULT_MAX_STREAMS
        if large_body_slots(quantity_bytes(args.memory), args.max_text_chars, streams) < 1:
            problems.append(
                f"memory: {args.memory} cannot hold a {args.max_text_chars}-character check besides "
                f"{streams} small ones (guardrail/memory.py large_body_slots); raise memory or lower "
                "max_text_chars"
            )
    return problems


_SUFFIX_BYTES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "m": 0.001}


def quantity_bytes(quantity: str) -> int:
    """A memory quantity matching _QUANTITY ("512Mi", "1G", "1.5Gi") in bytes, rounded down."""
    number, suffix = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", quantity).groups()  # type: ignore[union-attr]
    return int(float(number) * _SUFFIX_BYTES[suffix])


def message_timeout(classifier_timeout_s: float) -> str:
    """Envoy's per-message limit (a Gateway API Duration in ms): the classifier's limit plus 1 s, so the
    processor answers first and the client's failure_mode, not failOpen, decides a classifier timeout."""
    return f"{math.ceil((classifier_timeout_s + 1.0) * 1000)}ms"


def ext_proc_spec(
    service_name: str,
    namespace: str | None,
    failure_mode: GuardrailFailureMode,
    check_responses: bool,
    message_timeout: str,
) -> dict[str, Any]:
    """One spec.extProc entry of the EnvoyExtensionPolicy (camelCase, as the CRD); see the module doc."""
    ref: dict[str, Any] = {"group": "", "kind": "Service", "name": service_name, "port": GUARDRAIL_PORT}
    if namespace is not None:
        ref["namespace"] = namespace
    return {
        "backendRefs": [ref],
        "failOpen": failure_mode is GuardrailFailureMode.OPEN,
        "messageTimeout": message_timeout,
        "processingMode": {
            "request": {"body": "Buffered"},
            "response": {"body": "Streamed"} if check_responses else {},
            "allowModeOverride": True,
        },
    }


def extension_policy_spec(args: GuardrailArgs, service_name: str) -> dict[str, Any]:
    """The EnvoyExtensionPolicy's spec: the route as target, the processor as its one extProc. The Service
    is in the route's namespace, so the backendRef needs no namespace and no ReferenceGrant."""
    policy = parse_policy(json.dumps(args.policy))
    return {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": args.route_name}],
        "extProc": [
            ext_proc_spec(
                service_name,
                None,
                args.failure_mode,
                policy.any_checks_responses,
                message_timeout(args.classifier_timeout_s),
            )
        ],
    }


def guardrail_ext_proc(args: GuardrailArgs, name: str) -> list[dict[str, Any]]:
    """The spec.extProc entries that put the processor of Guardrail `name` in front of the route, for a
    route's one EnvoyExtensionPolicy written elsewhere (attach_policy False)."""
    return list(extension_policy_spec(args, f"{name}-guardrail")["extProc"])


def processor_environment(args: GuardrailArgs) -> list[dict[str, Any]]:
    """The processor's GUARDRAIL_* settings (guardrail/settings.py)."""
    return [
        {
            "name": "GUARDRAIL_CLASSIFIER_URL",
            # <svc>.<ns>.svc resolves through the pod's search path whatever the cluster domain is.
            "value": f"http://{args.classifier_service}.{args.namespace}.svc:{SERVING_PORT}/v1",
        },
        {"name": "GUARDRAIL_CLASSIFIER_MODEL", "value": args.classifier_model},
        {"name": "GUARDRAIL_POLICY_FILE", "value": f"{POLICY_DIR}/{POLICY_FILE}"},
        {"name": "GUARDRAIL_CLASSIFIER_TIMEOUT_S", "value": f"{args.classifier_timeout_s:g}"},
        {"name": "GUARDRAIL_PORT", "value": str(GUARDRAIL_PORT)},
        {"name": "GUARDRAIL_HEALTH_PORT", "value": str(HEALTH_PORT)},
        # The container's own limit, in bytes (the Downward API's default divisor 1): the processor sizes
        # how many large bodies it checks at once to it.
        {
            "name": "GUARDRAIL_MEMORY_LIMIT_BYTES",
            "value_from": {
                "resource_field_ref": {"container_name": "guardrail", "resource": "limits.memory"}
            },
        },
        {"name": "GUARDRAIL_STREAM_CHECK_INTERVAL_CHARS", "value": str(args.stream_check_interval_chars)},
        {"name": "GUARDRAIL_LOG_PROMPTS", "value": "true" if args.log_prompts else "false"},
        {"name": "GUARDRAIL_MAX_TEXT_CHARS", "value": str(args.max_text_chars)},
        {"name": "GUARDRAIL_DRAIN_SECONDS", "value": str(args.drain_seconds)},
        # No bytecode cache on a read-only root; Python would try and fail quietly on every start.
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
    ]


def processor_network_policy_spec(args: GuardrailArgs, selector: dict[str, str]) -> dict[str, Any]:
    """Ingress: Envoy's proxy pods on the gRPC port. Egress: the classifier's pods on 8000, and DNS."""
    return {
        "pod_selector": {"match_labels": dict(selector)},
        "policy_types": ["Ingress", "Egress"],
        "ingress": [
            {
                "from": [
                    {
                        "namespace_selector": in_namespace(args.gateway_namespace),
                        "pod_selector": {"match_labels": dict(args.gateway_pod_labels)},
                    }
                ],
                "ports": [{"port": GUARDRAIL_PORT, "protocol": "TCP"}],
            }
        ],
        "egress": [
            {
                "to": [{"pod_selector": {"match_labels": dict(args.classifier_pod_labels)}}],
                "ports": [{"port": SERVING_PORT, "protocol": "TCP"}],
            },
            dns_egress_rule(args.dns_cidrs),
        ],
    }


def classifier_ingress_spec(args: GuardrailArgs, processor_selector: dict[str, str]) -> dict[str, Any]:
    """On the classifier's pods: ingress from the processor on 8000 (added to the model server's own)."""
    return {
        "pod_selector": {"match_labels": dict(args.classifier_pod_labels)},
        "policy_types": ["Ingress"],
        "ingress": [
            {
                "from": [{"pod_selector": {"match_labels": dict(processor_selector)}}],
                "ports": [{"port": SERVING_PORT, "protocol": "TCP"}],
            }
        ],
    }


class Guardrail(pulumi.ComponentResource):
    """The content-filter processor and the EnvoyExtensionPolicy that puts it in front of one route."""

    def __init__(self, name: str, args: GuardrailArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("inferstack:guardrail:Guardrail", name, None, opts)
        reject_invalid_args("Guardrail", name, validate_guardrail_args(args))

        ns = args.namespace
        workload = f"{name}-guardrail"
        pod_labels = labels(workload, COMPONENT)
        selector = {"app.kubernetes.io/name": workload, "app.kubernetes.io/component": COMPONENT}
        policy_text = json.dumps(args.policy, indent=1, sort_keys=True)

        config_map = k8s.core.v1.ConfigMap(
            f"{name}-policy",
            metadata={"name": f"{workload}-policy", "namespace": ns, "labels": pod_labels},
            data={POLICY_FILE: policy_text},
            opts=child(self),
        )
        container: dict[str, Any] = {
            "name": "guardrail",
            "image": args.image,
            "image_pull_policy": "IfNotPresent",
            # No command: the image's ENTRYPOINT (guardrail/Dockerfile: python3 -m guardrail) runs the processor.
            "env": processor_environment(args),
            "ports": [
                {"name": "grpc", "container_port": GUARDRAIL_PORT, "protocol": "TCP"},
                {"name": "health", "container_port": HEALTH_PORT, "protocol": "TCP"},
            ],
            "resources": {
                "requests": {"cpu": args.cpu, "memory": args.memory},
                "limits": {"cpu": args.cpu, "memory": args.memory},
            },
            "security_context": dict(RESTRICTED_CONTAINER_SECURITY),
            "volume_mounts": [
                {"name": "policy", "mount_path": POLICY_DIR, "read_only": True},
                {"name": "tmp", "mount_path": "/tmp"},
            ],
            # Kubernetes' own gRPC probe (GA in 1.27) asks grpc.health.v1.Health on the processor's health
            # server: not the ext_proc server, whose maximum_concurrent_rpcs would refuse the probes of a pod
            # at its stream limit (and the liveness probe would then restart a pod that is only busy).
            "startup_probe": {
                "grpc": {"port": HEALTH_PORT, "service": HEALTH_SERVICE},
                "period_seconds": 2,
                "failure_threshold": 30,
            },
            "readiness_probe": {
                "grpc": {"port": HEALTH_PORT, "service": HEALTH_SERVICE},
                "period_seconds": 5,
            },
            "liveness_probe": {
                "grpc": {"port": HEALTH_PORT, "service": HEALTH_SERVICE},
                "period_seconds": 20,
                "failure_threshold": 3,
            },
            # Out of the Service's endpoints before SIGTERM, so Envoy opens no new streams to a closing pod;
            # the processor then gives open streams drain_seconds (guardrail/__main__.py serve).
            "lifecycle": {"pre_stop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        }
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={"name": workload, "namespace": ns, "labels": pod_labels},
            spec=_untyped(
                {
                    "replicas": args.replicas,
                    "selector": {"match_labels": selector},
                    "strategy": {
                        "type": "RollingUpdate",
                        "rolling_update": {"max_unavailable": 0, "max_surge": 1},
                    },
                    "template": {
                        "metadata": {
                            "labels": pod_labels,
                            # The policy is read at start: a changed policy rolls the pods.
                            "annotations": {
                                "inferstack.io/policy-sha256": hashlib.sha256(
                                    policy_text.encode()
                                ).hexdigest()
                            },
                        },
                        "spec": {
                            "automount_service_account_token": False,
                            "enable_service_links": False,
                            "termination_grace_period_seconds": termination_grace_seconds(args),
                            "security_context": {
                                "run_as_non_root": True,
                                "run_as_user": GUARDRAIL_UID,
                                "run_as_group": GUARDRAIL_UID,
                                "seccomp_profile": {"type": "RuntimeDefault"},
                            },
                            "topology_spread_constraints": [
                                {
                                    "max_skew": 1,
                                    "topology_key": "topology.kubernetes.io/zone",
                                    "when_unsatisfiable": "ScheduleAnyway",
                                    "label_selector": {"match_labels": selector},
                                }
                            ],
                            "containers": [container],
                            "volumes": [
                                {"name": "policy", "config_map": {"name": f"{workload}-policy"}},
                                {"name": "tmp", "empty_dir": {"size_limit": "16Mi"}},
                            ],
                        },
                    },
                }
            ),
            opts=child(self, depends_on=[config_map]),
        )
        if args.replicas > 1:
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb",
                metadata={"name": workload, "namespace": ns, "labels": pod_labels},
                spec={"max_unavailable": 1, "selector": {"match_labels": selector}},
                opts=child(self),
            )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": workload, "namespace": ns, "labels": pod_labels},
            spec=_untyped(
                {
                    "type": "ClusterIP",
                    "selector": selector,
                    "ports": [
                        {
                            "name": "grpc",
                            "port": GUARDRAIL_PORT,
                            "target_port": "grpc",
                            "protocol": "TCP",
                            # HTTP/2 without TLS (KEP-3726's standard value); Envoy Gateway reads it as HTTP/2
                            # (internal/gatewayapi/route.go serviceAppProtocolToIRAppProtocol).
                            "app_protocol": "kubernetes.io/h2c",
                        }
                    ],
                }
            ),
            opts=child(self),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata={"name": f"{workload}-allow", "namespace": ns, "labels": pod_labels},
            spec=_untyped(processor_network_policy_spec(args, selector)),
            opts=child(self),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-classifier-ingress",
            metadata={"name": f"{workload}-to-classifier", "namespace": ns, "labels": pod_labels},
            spec=_untyped(classifier_ingress_spec(args, selector)),
            opts=child(self),
        )
        if args.attach_policy:
            k8s.apiextensions.CustomResource(
                f"{name}-extension-policy",
                api_version="gateway.envoyproxy.io/v1alpha1",
                kind="EnvoyExtensionPolicy",
                metadata={"name": workload, "namespace": ns, "labels": pod_labels},
                spec=extension_policy_spec(args, workload),
                opts=child(self, depends_on=[service]),
            )

        self.service_name = pulumi.Output.from_input(workload)
        self.register_outputs({"service_name": self.service_name})


def _untyped(spec: dict[str, Any]) -> Any:
    """Plain snake_case dicts for the SDK's typed arguments (its TypedDicts cannot type `from`)."""
    return spec
