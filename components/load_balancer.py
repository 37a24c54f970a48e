"""LoadBalancer: the HTTPS front door — Envoy Gateway, a Gateway, routes, API keys and rate limits.

What it makes (Gateway API + Envoy Gateway extensions, all in `namespace` unless said otherwise):

- the Envoy Gateway Helm release (pinned; controller, Gateway API CRDs and its own CRDs), optional;
- an EnvoyProxy that shapes the Envoy Service (LoadBalancer for MetalLB or an existing balancer,
  NodePort on a laptop, ClusterIP behind a cloud balancer) and a Pod-Security-"restricted" Envoy
  Deployment, and a GatewayClass using it;
- kind `cloud` only: a LoadBalancer Service of our own in front of the Envoy pods, annotated for the
  cloud's controller (an NLB on AWS). Owning it is what makes `pulumi destroy` safe: Pulumi deletes it
  first and waits until the controller's finalizer is gone, i.e. until the cloud balancer and its
  security groups are deleted, before the controller, the cluster and the VPC go;
- a Gateway named after the component with an `http` (80) and an `https` (443, TLS terminated with
  `tls_secret_name`) listener;
- an HTTPRoute on `http` that only redirects to HTTPS (308), and one on `https` to the weighted backends
  with timeouts long enough for streamed answers;
- a SecurityPolicy on the API route: API keys (`apiKeyAuth`) and, when the endpoint is not open to
  everyone, a default-deny client-CIDR allow list;
- a BackendTrafficPolicy with a local rate limit per client id;
- one generated key per client (pulumi-random) in a Secret, unless an existing Secret is named.

API keys: the official `openai` client sends `Authorization: Bearer <key>`. Envoy's api_key_auth filter
reads the configured header and strips a leading "Bearer ", then looks the key up among the Secret's
values; the Secret's data keys are the client ids. So the Secret holds `<client id>: <raw key>` and
clients use `OpenAI(base_url=url + "/v1", api_key=<raw key>)`. `sanitize` removes the Authorization header
before the request reaches the engine, and `forwardClientIDHeader` tells the engine (and the rate
limiter) who called.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components._common import (
    ENVOY_GATEWAY,
    NONROOT_CONTAINER_SECURITY_VALUES,
    child,
    deep_merge,
    helm_release,
    labels,
    reject_invalid_args,
)
from components.address_space import covers_every_address
from components.choices import LoadBalancerKind

#: Where Envoy Gateway runs and, in its default ControllerNamespace deploy mode, where it runs the Envoy
#: proxy pods of every Gateway. The model server's NetworkPolicy lets traffic in from here.
ENVOY_PROXY_NAMESPACE = "envoy-gateway-system"
#: Labels Envoy Gateway puts on every Envoy proxy pod (internal/infrastructure/kubernetes/proxy).
ENVOY_PROXY_POD_LABELS: dict[str, str] = {
    "app.kubernetes.io/name": "envoy",
    "app.kubernetes.io/component": "proxy",
    "app.kubernetes.io/managed-by": "envoy-gateway",
}
#: Labels Envoy Gateway adds to one Gateway's proxy pods (internal/gatewayapi: OwningGateway*Label).
OWNING_GATEWAY_NAME_LABEL = "gateway.envoyproxy.io/owning-gateway-name"
OWNING_GATEWAY_NAMESPACE_LABEL = "gateway.envoyproxy.io/owning-gateway-namespace"
#: Envoy binds a listener port below 1024 at port + 10000, so it needs no NET_BIND_SERVICE
#: (internal/gatewayapi: wellKnownPortShift). Our cloud Service targets those container ports.
ENVOY_PRIVILEGED_PORT_SHIFT = 10000
#: Envoy Gateway's default controller name; the GatewayClass must name the controller that serves it.
ENVOY_GATEWAY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
#: Header the API-key filter sets to the authenticated client id (the rate limiter keys on it; the engine
#: may log it). Envoy's filter overwrites whatever a client sent in it.
CLIENT_ID_HEADER = "x-inferstack-client-id"
#: Request header the key is read from (the OpenAI clients' `Authorization: Bearer <key>`).
API_KEY_HEADER = "Authorization"
HTTP_LISTENER = "http"
#: The one path prefix routed to the model server (Gateway API prefixes match whole path segments).
PUBLIC_PATH_PREFIX = "/v1"
HTTPS_LISTENER = "https"
#: The HTTP->HTTPS redirect's status: Permanent Redirect, which keeps the method (see redirect_route_spec).
REDIRECT_STATUS_CODE = 308
#: externalTrafficPolicy of every Service this component puts in front of Envoy. The SecurityPolicy's
#: clientCIDRs match Envoy's idea of the client address, which with no ClientTrafficPolicy is the TCP peer
#: (Envoy Gateway release/v1.8 internal/xds/translator/listener.go: use_remote_address=true, no
#: original-IP detection). With `Cluster`, kube-proxy / GKE Dataplane V2 may forward a connection to a pod
#: on another node and SNAT it to that node's address, so the peer is a node: an allow-list then rejects
#: real clients (403) or admits everyone when it holds the node range. `Local` delivers only to pods on
#: the receiving node, without SNAT, keeping the client address (Kubernetes "Source IP for Services with
#: Type=LoadBalancer"; GKE "LoadBalancer Service concepts", effect of externalTrafficPolicy; GKE's
#: passthrough balancers then health-check healthCheckNodePort so only nodes with an Envoy pod get
#: traffic). On AWS the NLB targets the pods' own IPs with preserve_client_ip (no node hop), so the field
#: changes nothing there; it is set anyway so the guarantee is the Service's own, whatever the cloud.
#: loadBalancerSourceRanges does not depend on it: GKE enforces them as VPC firewall rules on the client
#: address before any node hop, kube-proxy (MetalLB, existing) before its SNAT.
CLIENT_IP_TRAFFIC_POLICY = "Local"
API_KEY_LENGTH = 48
#: The BackendTrafficPolicy CRD allows at most 16 local rate-limit rules, and we write one per client.
MAX_RATE_LIMITED_CLIENTS = 16
#: HTTPRoute CRD limits: backendRefs per rule.
MAX_BACKENDS = 16

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
_NODE_PORTS = range(30000, 32768)


@dataclass(frozen=True)
class Backend:
    """One weighted destination of the API route (several of them = an A/B split)."""

    service_name: pulumi.Input[str]  # a Service in the LoadBalancer's namespace
    port: int  # its port
    weight: int = 1  # share of requests, relative to the other backends' weights


#: Per-connection buffer for routed models. Envoy AI Gateway's filter reads the whole request body to find
#: `model`; Envoy Gateway's default buffer (32 KiB, ClientTrafficPolicy CRD `connection.bufferLimit`) would
#: refuse long prompts. 50Mi is what envoyproxy/ai-gateway v1.1.0 examples/basic/basic.yaml sets; it is a
#: ceiling per connection, not an allocation.
MODEL_ROUTING_BUFFER_LIMIT = "50Mi"


@dataclass(frozen=True)
class ExtraHostname:
    """One more DNS name served by the same Gateway and certificate, for a front end of its own (the chat UI).

    The Gateway gets an HTTP listener `http-<key>` (a redirect to HTTPS; cert-manager's HTTP-01 challenges for
    the name attach there) and an HTTPS listener `https-<key>` terminating TLS with the same Secret. The owner of
    the name attaches its own HTTPRoute to `https-<key>` (https_listener_name); the API route, and with it the
    API-key SecurityPolicy, stays on the `https` listener only.
    """

    key: str  # a short DNS label naming the listeners, e.g. "chat"
    hostname: str  # the DNS name, e.g. chat.example.com


def http_listener_name(key: str) -> str:
    """The Gateway's HTTP listener for ExtraHostname `key` (HTTP-01 challenges and the HTTPS redirect)."""
    return f"{HTTP_LISTENER}-{key}"


def https_listener_name(key: str) -> str:
    """The Gateway's HTTPS listener for ExtraHostname `key`; attach the front end's HTTPRoute here."""
    return f"{HTTPS_LISTENER}-{key}"


@dataclass(frozen=True, kw_only=True)
class LoadBalancerArgs:
    """The public HTTPS endpoint in front of the model server."""

    namespace: str  # where the Gateway, routes, policies and key Secret live (the model server's)
    hostname: str  # DNS name clients use; the listeners and routes only answer for it
    backends: list[Backend]  # weighted Services behind the API route
    tls_secret_name: pulumi.Input[
        str
    ]  # kubernetes.io/tls Secret in `namespace` (TlsCertificates.secret_name)
    api_key_clients: list[str]  # client ids: each gets a key (or has one in the existing Secret) and a bucket
    kind: LoadBalancerKind = LoadBalancerKind.EXISTING  # how the Envoy Service is exposed
    metallb_pool: str | None = None  # kind metallb: the IPAddressPool the address comes from
    address: str | None = None  # a fixed IP for the Envoy Service (metallb or existing)
    http_node_port: int = 30080  # kind nodeport: node port for HTTP
    https_node_port: int = 30443  # kind nodeport: node port for HTTPS
    allowed_source_cidrs: list[str] = field(default_factory=lambda: ["0.0.0.0/0"])  # 0.0.0.0/0 = open
    existing_api_key_secret: str | None = None  # Secret in `namespace`: client id -> key; nothing generated
    rate_limit_requests_per_minute: int | None = 600  # per client id and Envoy replica; None: no limit
    request_timeout_seconds: int = 600  # whole-request ceiling; streamed answers stay open this long
    envoy_replicas: int = 2  # Envoy proxy pods (a PDB keeps one up when > 1)
    install_envoy_gateway: bool = True  # install the pinned chart; False: one already runs in the cluster
    envoy_gateway_values: dict[str, Any] = field(default_factory=dict)  # escape hatch, merged over ours
    # The provider CRD charts are applied with (components/_common.py crd_provider): adopts CRDs already on
    # the cluster. None: the inherited provider (a fresh cluster only).
    crd_provider: pulumi.ProviderResource | None = None
    # The API route is an Envoy AI Gateway AIGatewayRoute named `model_route_name` (components/
    # model_routing.py), whose controller writes the HTTPRoute of that name: this component then makes no
    # HTTPRoute of its own and `backends` stays empty; its policies target that route by name, and the
    # plain route's name `<name>-api` as well. The names differ on purpose: the AI Gateway controller adopts
    # an HTTPRoute of its route's name without an owner reference (envoyproxy/ai-gateway v1.1.0
    # internal/controller/ai_gateway_route.go), so a stack moving from the plain route would have Pulumi
    # delete the adopted route at the end of the update (and the way back fails with AlreadyExists); while
    # the old route exists until that delete, the policies keep covering it.
    model_routing: bool = False
    model_route_name: str = ""
    # Envoy Gateway values the model routing needs (model_routing.envoy_gateway_values_for_ai_gateway),
    # merged over ours and under `envoy_gateway_values`.
    model_routing_values: dict[str, Any] = field(default_factory=dict)
    # More BackendTrafficPolicy spec for the API route (camelCase), merged into its one policy: Envoy
    # Gateway attaches one BackendTrafficPolicy per route, a second is Conflicted
    # (internal/gatewayapi/backendtrafficpolicy.go at v1.8.3). Lists (responseOverride, rules) are joined.
    api_traffic_policy: dict[str, Any] = field(default_factory=dict)
    cloud_service_annotations: dict[str, str] = field(default_factory=dict)  # kind cloud: for its controller
    cloud_load_balancer_class: str | None = (
        None  # kind cloud: spec.loadBalancerClass (e.g. service.k8s.aws/nlb)
    )
    # More hostnames on this Gateway (same TLS Secret, which must cover them): listeners and a redirect route
    # each, no API route. Empty: the objects are exactly those of a stack without them.
    extra_hostnames: list[ExtraHostname] = field(default_factory=list)
    # A ClusterIP Service `<name>-internal` in ENVOY_PROXY_NAMESPACE in front of this Gateway's Envoy pods
    # (HTTPS only), so in-cluster clients (the chat UI) reach the endpoint without leaving the cluster:
    # `internal_address` is its ClusterIP. See internal_service_spec.
    internal_service: bool = False
    # In-cluster client networks (the pod CIDRs) the SecurityPolicy also admits when allowed_source_cidrs is
    # not open: a pod reaching Envoy through the internal Service is seen with its pod address. Never written
    # to a LoadBalancer's loadBalancerSourceRanges. Keys are still required.
    internal_source_cidrs: list[str] = field(default_factory=list)
    # EnvoyProxy spec.filterOrder (Envoy Gateway v1.8.3 api/v1alpha1/envoyproxy_types.go FilterPosition):
    # moves of filter types in the HTTP filter chain, e.g. ext_proc after the rate limits. Empty: the default
    # order (internal/xds/translator/httpfilters.go newOrderedHTTPFilter).
    filter_order: list[dict[str, str]] = field(default_factory=list)
    # The ClientTrafficPolicy's connection.bufferLimit where models are routed: the largest request body a
    # buffering filter (AI Gateway's, the guardrail's Buffered ext_proc) takes; Envoy answers 413 above it.
    request_buffer_limit: str = MODEL_ROUTING_BUFFER_LIMIT


def request_limit_problems(clients: list[str], requests_per_minute: int | None, field_name: str) -> list[str]:
    """The per-client request limit (rate_limit_spec), each problem naming `field_name` or api_key_clients."""
    if requests_per_minute is None:
        return []
    problems = []
    if requests_per_minute < 1:
        problems.append(f"{field_name}: must be >= 1, or None for no limit")
    if len(clients) > MAX_RATE_LIMITED_CLIENTS:
        problems.append(
            f"api_key_clients: {len(clients)} clients, but a local rate limit holds at most "
            f"{MAX_RATE_LIMITED_CLIENTS} per-client rules: use fewer client ids or {field_name}=None"
        )
    return problems


def is_open(cidrs: list[str]) -> bool:
    """True when the allow list lets every IPv4 or every IPv6 address in (then no CIDR restriction is
    written): measured, so `[0.0.0.0/1, 128.0.0.0/1]` is as open as `[0.0.0.0/0]`."""
    return covers_every_address(cidrs, 4) or covers_every_address(cidrs, 6)


def validate_load_balancer_args(args: LoadBalancerArgs) -> list[str]:
    """Every problem with `args`, each starting with the field it is about; empty when they are usable."""
    problems: list[str] = []
    if not _DNS_LABEL.match(args.namespace):
        problems.append(f"namespace: {args.namespace!r} is not a Kubernetes namespace name")
    if not _DNS_NAME.match(args.hostname):
        problems.append(
            f"hostname: {args.hostname!r} is not a lowercase DNS name with a domain (e.g. llm.example.com)"
        )

    if args.model_routing and not _is_k8s_name(args.model_route_name):
        problems.append(
            f"model_route_name: {args.model_route_name!r} must name the AIGatewayRoute (a Kubernetes name) "
            "when model_routing is on"
        )
    if args.model_routing and args.backends:
        problems.append(
            "backends: with model_routing the AIGatewayRoute names the backends (components/model_routing.py); "
            "leave backends empty"
        )
    if not args.backends and not args.model_routing:
        problems.append("backends: at least one backend Service is needed")
    if len(args.backends) > MAX_BACKENDS:
        problems.append(f"backends: at most {MAX_BACKENDS} backends per route (HTTPRoute limit)")
    for i, backend in enumerate(args.backends):
        if not 1 <= backend.port <= 65535:
            problems.append(f"backends[{i}].port: {backend.port} is not a port (1-65535)")
        if not 0 <= backend.weight <= 1_000_000:
            problems.append(f"backends[{i}].weight: {backend.weight} must be between 0 and 1000000")
    if args.backends and sum(b.weight for b in args.backends) == 0:
        problems.append("backends: every weight is 0, so no request would be served; give one a weight > 0")

    if not args.api_key_clients:
        problems.append("api_key_clients: at least one client id is needed (keys are always required)")
    for client in args.api_key_clients:
        if not _DNS_LABEL.match(client) or len(client) > 63:
            problems.append(
                f"api_key_clients: {client!r} must be a lowercase DNS label (letters, digits, '-'; <= 63)"
            )
    duplicates = sorted({c for c in args.api_key_clients if args.api_key_clients.count(c) > 1})
    if duplicates:
        problems.append(f"api_key_clients: duplicate client ids {duplicates}")
    if args.existing_api_key_secret is not None and not _is_k8s_name(args.existing_api_key_secret):
        problems.append(
            f"existing_api_key_secret: {args.existing_api_key_secret!r} is not a Kubernetes Secret name"
        )

    problems.extend(
        request_limit_problems(
            args.api_key_clients, args.rate_limit_requests_per_minute, "rate_limit_requests_per_minute"
        )
    )
    if args.request_timeout_seconds < 1 or args.request_timeout_seconds > 99999:
        problems.append("request_timeout_seconds: must be between 1 and 99999")
    if args.envoy_replicas < 1:
        problems.append("envoy_replicas: at least one Envoy proxy is needed")

    if not args.allowed_source_cidrs:
        problems.append(
            "allowed_source_cidrs: empty; list the client networks, or ['0.0.0.0/0'] for everyone"
        )
    for cidr in args.allowed_source_cidrs:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as err:
            problems.append(f"allowed_source_cidrs: {cidr!r} is not a network in CIDR form: {err}")

    if args.kind is LoadBalancerKind.METALLB and not args.metallb_pool:
        problems.append("metallb_pool: kind metallb needs the MetalLB IPAddressPool name")
    if args.kind is not LoadBalancerKind.METALLB and args.metallb_pool:
        problems.append(f"metallb_pool: only used with kind metallb, not {args.kind.value}")
    if args.kind is not LoadBalancerKind.CLOUD and (
        args.cloud_service_annotations or args.cloud_load_balancer_class
    ):
        problems.append(
            f"cloud_service_annotations, cloud_load_balancer_class: only used with kind cloud, not {args.kind.value}"
        )
    if args.kind is LoadBalancerKind.CLOUD and args.address is not None:
        problems.append("address: a cloud balancer's address is the cloud's to give; remove it")
    if args.address is not None:
        try:
            if ipaddress.ip_address(args.address).version != 4:
                problems.append(f"address: {args.address!r} must be an IPv4 address (EnvoyProxy limit)")
        except ValueError:
            problems.append(f"address: {args.address!r} is not an IP address")
        if args.kind is LoadBalancerKind.NODEPORT:
            problems.append("address: a NodePort gateway has no address of its own; remove it or change kind")
    problems.extend(_extra_hostname_problems(args))
    if args.kind is LoadBalancerKind.NODEPORT:
        for field_name in ("http_node_port", "https_node_port"):
            port = getattr(args, field_name)
            if port not in _NODE_PORTS:
                problems.append(f"{field_name}: {port} is outside the node port range 30000-32767")
        if args.http_node_port == args.https_node_port:
            problems.append("http_node_port, https_node_port: must differ")
    return problems


def _extra_hostname_problems(args: LoadBalancerArgs) -> list[str]:
    """extra_hostnames and internal_source_cidrs, each problem naming its field."""
    problems: list[str] = []
    keys = [extra.key for extra in args.extra_hostnames]
    for i, extra in enumerate(args.extra_hostnames):
        # The listener name `https-<key>` must stay a Gateway API SectionName (a DNS label, <= 253).
        if not _DNS_LABEL.match(extra.key) or len(extra.key) > 40:
            problems.append(f"extra_hostnames[{i}].key: {extra.key!r} must be a short DNS label (<= 40)")
        if not _DNS_NAME.match(extra.hostname):
            problems.append(
                f"extra_hostnames[{i}].hostname: {extra.hostname!r} is not a lowercase DNS name with a domain"
            )
        elif extra.hostname == args.hostname:
            problems.append(
                f"extra_hostnames[{i}].hostname: {extra.hostname!r} is the API hostname; a front end needs "
                "a name of its own (listeners on one port must differ by hostname)"
            )
    duplicate_keys = sorted({k for k in keys if keys.count(k) > 1})
    if duplicate_keys:
        problems.append(f"extra_hostnames: duplicate keys {duplicate_keys}")
    names = [extra.hostname for extra in args.extra_hostnames]
    duplicate_names = sorted({n for n in names if names.count(n) > 1})
    if duplicate_names:
        problems.append(f"extra_hostnames: duplicate hostnames {duplicate_names}")
    for cidr in args.internal_source_cidrs:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as err:
            problems.append(f"internal_source_cidrs: {cidr!r} is not a network in CIDR form: {err}")
    return problems


def _is_k8s_name(name: str) -> bool:
    return bool(_DNS_LABEL.match(name) or _DNS_NAME.match(name)) and len(name) <= 253


def _untyped(value: dict[str, Any]) -> Any:
    """Plain dicts for the SDK's typed arguments (its TypedDicts do not accept dict[str, Any])."""
    return value


def gateway_api_ref(kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": kind, "name": name}
    if namespace is not None:
        ref["namespace"] = namespace
    return ref


class LoadBalancer(pulumi.ComponentResource):
    """Envoy Gateway in front of the model server: HTTPS only, API keys, per-client rate limits."""

    url: pulumi.Output[str]
    gateway_name: pulumi.Output[str]
    api_keys: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None):
        reject_invalid_args("LoadBalancer", name, validate_load_balancer_args(args))
        super().__init__("inferstack:load_balancer:LoadBalancer", name, None, opts)

        ns = args.namespace
        meta_labels = labels(name, "gateway")

        def meta(object_name: str, namespaced: bool = True) -> dict[str, Any]:
            m: dict[str, Any] = {"name": object_name, "labels": meta_labels}
            if namespaced:
                m["namespace"] = ns
            return m

        release: k8s.helm.v3.Release | None = None
        if args.install_envoy_gateway:
            release = helm_release(
                f"{name}-envoy-gateway",
                ENVOY_GATEWAY,
                namespace=ENVOY_PROXY_NAMESPACE,
                values=deep_merge(envoy_gateway_values(), args.model_routing_values),
                extra_values=args.envoy_gateway_values,
                crd_provider=args.crd_provider,
                opts=child(self),
            )
        #: The Envoy Gateway release (None when one already runs): it creates ENVOY_PROXY_NAMESPACE, so
        #: anything else put there (the proxies' PodMonitor) depends on it.
        self.envoy_gateway_release = release
        # Everything below is a custom resource whose CRD the chart installs.
        after_crds = [release] if release is not None else []

        envoy_proxy = k8s.apiextensions.CustomResource(
            f"{name}-envoy-proxy",
            api_version="gateway.envoyproxy.io/v1alpha1",
            kind="EnvoyProxy",
            metadata=meta(name),
            spec=envoy_proxy_spec(args),
            opts=child(self, depends_on=after_crds),
        )
        gateway_class = k8s.apiextensions.CustomResource(
            f"{name}-gateway-class",
            api_version="gateway.networking.k8s.io/v1",
            kind="GatewayClass",
            metadata=meta(name, namespaced=False),
            spec={
                "controllerName": ENVOY_GATEWAY_CONTROLLER,
                "description": "InferStack: Envoy configured by the referenced EnvoyProxy",
                "parametersRef": {
                    "group": "gateway.envoyproxy.io",
                    "kind": "EnvoyProxy",
                    "name": name,
                    "namespace": ns,
                },
            },
            opts=child(self, depends_on=[*after_crds, envoy_proxy]),
        )
        gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version="gateway.networking.k8s.io/v1",
            kind="Gateway",
            metadata=meta(name),
            spec={
                "gatewayClassName": name,
                "listeners": [
                    {
                        "name": HTTP_LISTENER,
                        "protocol": "HTTP",
                        "port": 80,
                        "hostname": args.hostname,
                    },
                    {
                        "name": HTTPS_LISTENER,
                        "protocol": "HTTPS",
                        "port": 443,
                        "hostname": args.hostname,
                        "tls": {
                            "mode": "Terminate",
                            "certificateRefs": [
                                {"group": "", "kind": "Secret", "name": args.tls_secret_name}
                            ],
                        },
                    },
                    *extra_listeners(args),
                ],
            },
            opts=child(self, depends_on=[*after_crds, gateway_class]),
        )

        self.load_balancer_hostname: pulumi.Output[str] | None = None
        if args.kind is LoadBalancerKind.CLOUD:
            cloud_service = k8s.core.v1.Service(
                f"{name}-lb",
                metadata=_untyped(
                    {
                        "name": f"{name}-lb",
                        "namespace": ENVOY_PROXY_NAMESPACE,
                        "labels": meta_labels,
                        "annotations": dict(args.cloud_service_annotations),
                    }
                ),
                spec=_untyped(cloud_service_spec(name, args)),
                # Created after the Gateway, so Envoy Gateway's proxy pods exist to be selected; deleted
                # before it, waiting for the controller to remove the cloud balancer.
                opts=child(
                    self,
                    depends_on=[gateway],
                    custom_timeouts=pulumi.CustomTimeouts(create="15m", delete="20m"),
                ),
            )
            self.load_balancer_hostname = cloud_service.status.apply(_first_ingress_address)

        k8s.apiextensions.CustomResource(
            f"{name}-redirect-route",
            api_version="gateway.networking.k8s.io/v1",
            kind="HTTPRoute",
            metadata=meta(f"{name}-redirect"),
            spec=redirect_route_spec(name, args),
            opts=child(self, depends_on=[*after_crds, gateway]),
        )
        for extra in args.extra_hostnames:
            k8s.apiextensions.CustomResource(
                f"{name}-redirect-route-{extra.key}",
                api_version="gateway.networking.k8s.io/v1",
                kind="HTTPRoute",
                metadata=meta(f"{name}-redirect-{extra.key}"),
                spec=extra_redirect_route_spec(name, args, extra),
                opts=child(self, depends_on=[*after_crds, gateway]),
            )
        #: The ClusterIP of `<name>-internal` (internal_service), None without it.
        self.internal_address: pulumi.Output[str] | None = None
        if args.internal_service:
            internal = k8s.core.v1.Service(
                f"{name}-internal",
                metadata=_untyped(
                    {"name": f"{name}-internal", "namespace": ENVOY_PROXY_NAMESPACE, "labels": meta_labels}
                ),
                spec=_untyped(internal_service_spec(name, args.namespace)),
                # The namespace is the release's; the proxy pods it selects exist once the Gateway does.
                opts=child(self, depends_on=[*after_crds, gateway]),
            )
            self.internal_address = internal.spec.apply(lambda spec: str(spec.cluster_ip or ""))
        api_route_name = f"{name}-api"
        route_names = [args.model_route_name, api_route_name] if args.model_routing else [api_route_name]
        route_refs = [gateway_api_ref("HTTPRoute", route) for route in route_names]
        route_deps: list[pulumi.Resource] = [gateway]
        if not args.model_routing:
            route_deps.append(
                k8s.apiextensions.CustomResource(
                    f"{name}-api-route",
                    api_version="gateway.networking.k8s.io/v1",
                    kind="HTTPRoute",
                    metadata=meta(api_route_name),
                    spec=api_route_spec(name, args),
                    opts=child(self, depends_on=[*after_crds, gateway]),
                )
            )
        else:
            k8s.apiextensions.CustomResource(
                f"{name}-client-traffic",
                api_version="gateway.envoyproxy.io/v1alpha1",
                kind="ClientTrafficPolicy",
                metadata=meta(name),
                spec=client_traffic_spec(name, args.request_buffer_limit),
                opts=child(self, depends_on=[*after_crds, gateway]),
            )

        # Keys: generated one per client unless the caller owns a Secret already.
        keys: dict[str, pulumi.Output[str]] = {}
        if args.existing_api_key_secret is not None:
            key_secret_name: str = args.existing_api_key_secret
            key_secret_deps: list[pulumi.Resource] = []
        else:
            key_secret_name = f"{name}-api-keys"
            for client in args.api_key_clients:
                password = random.RandomPassword(
                    f"{name}-api-key-{client}",
                    length=API_KEY_LENGTH,
                    special=False,
                    opts=child(self),
                )
                keys[client] = password.result
            key_secret = k8s.core.v1.Secret(
                f"{name}-api-keys",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=key_secret_name, namespace=ns, labels=meta_labels),
                type="Opaque",
                string_data=keys,
                opts=child(self),
            )
            key_secret_deps = [key_secret]

        security_policy = k8s.apiextensions.CustomResource(
            f"{name}-security-policy",
            api_version="gateway.envoyproxy.io/v1alpha1",
            kind="SecurityPolicy",
            metadata=meta(f"{name}-api"),
            spec={
                **security_policy_spec(
                    api_route_name, key_secret_name, args.allowed_source_cidrs, args.internal_source_cidrs
                ),
                "targetRefs": route_refs,
            },
            opts=child(self, depends_on=[*after_crds, *route_deps, *key_secret_deps]),
        )
        traffic_policy: dict[str, Any] = {}
        if args.rate_limit_requests_per_minute is not None:
            traffic_policy = rate_limit_spec(
                api_route_name, args.api_key_clients, args.rate_limit_requests_per_minute
            )
        if args.api_traffic_policy:
            more = {k: v for k, v in args.api_traffic_policy.items() if k != "targetRefs"}
            traffic_policy = join_policy_specs(traffic_policy, more)
        if traffic_policy:
            traffic_policy["targetRefs"] = route_refs
            k8s.apiextensions.CustomResource(
                f"{name}-rate-limit",
                api_version="gateway.envoyproxy.io/v1alpha1",
                kind="BackendTrafficPolicy",
                metadata=meta(f"{name}-api"),
                spec=traffic_policy,
                # The limit keys on the header the API-key filter sets: no policy, no header.
                opts=child(self, depends_on=[*after_crds, *route_deps, security_policy]),
            )

        self.url = pulumi.Output.from_input(public_url(args))
        self.gateway_name = pulumi.Output.from_input(name)
        self.api_keys = pulumi.Output.secret(pulumi.Output.all(**keys) if keys else {})
        self.register_outputs({"url": self.url, "gateway_name": self.gateway_name, "api_keys": self.api_keys})


def public_url(args: LoadBalancerArgs) -> str:
    if args.kind is LoadBalancerKind.NODEPORT:
        return f"https://{args.hostname}:{args.https_node_port}"
    return f"https://{args.hostname}"


def envoy_gateway_values() -> dict[str, Any]:
    """The chart values we decide; every key exists in the chart's values.yaml."""
    return {
        # gateway-helm keeps the Gateway API and Envoy Gateway CRDs in its `crds` subchart's crds/ folder,
        # which `helm upgrade` never updates; helm_release therefore applies them from gateway-crds-helm (same
        # version, components/_common.py crd_objects) and runs this chart with skip_crds. The subchart is
        # off too: its one template, the Gateway API safe-upgrade ValidatingAdmissionPolicy (and binding),
        # is rendered by gateway-crds-helm as well, and in the subchart it hides behind a `lookup` that a
        # dry run cannot answer (charts/gateway-helm/charts/crds/templates/gatewayapi-safe-upgrade-policy.yaml
        # at v1.8.3).
        "crds": {"enabled": False},
        # Spelled out so the GatewayClass's controllerName and the controller agree by construction.
        "config": {"envoyGateway": {"gateway": {"controllerName": ENVOY_GATEWAY_CONTROLLER}}},
    }


#: Envoy Gateway's own default, written out: setting it replaces the default wholesale.
_RESTRICTED_ENVOY_CONTAINER = NONROOT_CONTAINER_SECURITY_VALUES


#: The Service annotation prefixes MetalLB's controller reads, newest first. metallb/metallb
#: controller/service.go: v0.13.12 and v0.14.8 read `metallb.universe.tf/...` only; v0.14.9 (#2495)
#: made `metallb.io` the prefix and keeps `metallb.universe.tf` as `DeprecatedAnnotationPrefix`, read
#: only when the `metallb.io` key is absent (`valueForAnnotation`, unchanged through v0.16.1); release
#: notes 0.14.9: "Future versions might remove this backwards compatibility". Writing both, with the
#: same value, picks the pool on every MetalLB that has CRD configuration (0.13 and later) and on the
#: ones that drop the old prefix; the stack need not know which release the site runs.
METALLB_ANNOTATION_PREFIXES = ("metallb.io", "metallb.universe.tf")


def metallb_annotations(pool: str, address: str | None) -> dict[str, str]:
    """The Envoy Service's MetalLB annotations: `<prefix>/address-pool: pool` and, with `address`,
    `<prefix>/loadBalancerIPs: address`, for each prefix in METALLB_ANNOTATION_PREFIXES."""
    annotations: dict[str, str] = {}
    for prefix in METALLB_ANNOTATION_PREFIXES:
        annotations[f"{prefix}/address-pool"] = pool
        if address:
            annotations[f"{prefix}/loadBalancerIPs"] = address
    return annotations


def envoy_proxy_spec(args: LoadBalancerArgs) -> dict[str, Any]:
    service: dict[str, Any] = {}
    if args.kind is not LoadBalancerKind.CLOUD:
        # Envoy Gateway's default is Local too (EnvoyProxy CRD, envoyService.externalTrafficPolicy), but a
        # user's envoy_gateway_values or a newer default must not silently lose the client address.
        service["externalTrafficPolicy"] = CLIENT_IP_TRAFFIC_POLICY
    annotations: dict[str, str] = {}
    if args.kind is LoadBalancerKind.NODEPORT:
        service["type"] = "NodePort"
        # Envoy Gateway names the Service ports itself; a strategic merge keyed on `port` pins the node ports.
        service["patch"] = {
            "type": "StrategicMerge",
            "value": {
                "spec": {
                    "ports": [
                        {"port": 80, "nodePort": args.http_node_port},
                        {"port": 443, "nodePort": args.https_node_port},
                    ]
                }
            },
        }
    elif args.kind is LoadBalancerKind.CLOUD:
        # Reached only through the Service of our own (cloud_service_spec); no second balancer.
        service["type"] = "ClusterIP"
    else:
        service["type"] = "LoadBalancer"
        if args.kind is LoadBalancerKind.METALLB:
            annotations.update(metallb_annotations(str(args.metallb_pool), args.address))
        elif args.address:
            service["loadBalancerIP"] = args.address
        if not is_open(args.allowed_source_cidrs):
            service["loadBalancerSourceRanges"] = list(args.allowed_source_cidrs)
    if annotations:
        service["annotations"] = annotations

    kubernetes: dict[str, Any] = {
        "envoyDeployment": {
            "replicas": args.envoy_replicas,
            "pod": {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}},
            "container": {"securityContext": _RESTRICTED_ENVOY_CONTAINER},
        },
        "envoyService": service,
    }
    if args.envoy_replicas > 1:
        kubernetes["envoyPDB"] = {"minAvailable": 1}
    spec: dict[str, Any] = {"provider": {"type": "Kubernetes", "kubernetes": kubernetes}}
    if args.filter_order:
        spec["filterOrder"] = [dict(position) for position in args.filter_order]
    return spec


def cloud_service_spec(gateway_name: str, args: LoadBalancerArgs) -> dict[str, Any]:
    """The LoadBalancer Service in front of one Gateway's Envoy pods, for a cloud's controller."""
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "selector": {
            **ENVOY_PROXY_POD_LABELS,
            OWNING_GATEWAY_NAME_LABEL: gateway_name,
            OWNING_GATEWAY_NAMESPACE_LABEL: args.namespace,
        },
        "ports": [
            {"name": "http", "port": 80, "targetPort": 80 + ENVOY_PRIVILEGED_PORT_SHIFT, "protocol": "TCP"},
            {
                "name": "https",
                "port": 443,
                "targetPort": 443 + ENVOY_PRIVILEGED_PORT_SHIFT,
                "protocol": "TCP",
            },
        ],
        # No node ports: an AWS NLB with IP targets sends to pod IPs, and a GKE passthrough balancer delivers
        # to the node VMs' own address for the balancer IP (the node dataplane forwards it; with Local, only
        # to nodes running Envoy, health-checked on healthCheckNodePort, which is still allocated).
        "allocateLoadBalancerNodePorts": False,
    }
    if args.cloud_load_balancer_class:
        spec["loadBalancerClass"] = args.cloud_load_balancer_class
    if not is_open(args.allowed_source_cidrs):
        spec["loadBalancerSourceRanges"] = list(args.allowed_source_cidrs)
    spec["externalTrafficPolicy"] = CLIENT_IP_TRAFFIC_POLICY
    return spec


def _first_ingress_address(status: Any) -> str:
    """The cloud balancer's DNS name (AWS) or IP (GCP) from a Service's status (the SDK's output type)."""
    balancer = getattr(status, "load_balancer", None)
    ingress = list(getattr(balancer, "ingress", None) or [])
    if not ingress:
        return ""
    return str(getattr(ingress[0], "hostname", None) or getattr(ingress[0], "ip", None) or "")


def redirect_route_spec(gateway_name: str, args: LoadBalancerArgs) -> dict[str, Any]:
    # 308, not 301: on a 301 clients may (and curl -L, requests and httpx, the openai client's transport,
    # do) resend a POST as a GET (RFC 9110 15.4.2), so `POST http://.../v1/chat/completions` would arrive as
    # a GET the API does not serve; 308 keeps the method and body (RFC 9110 15.4.9). Gateway API's
    # HTTPRoute CRD allows 301, 302, 303, 307 and 308 (301/302 Core, the rest Extended; the standard-channel
    # CRD of kubernetes-sigs/gateway-api at 4564255ac, the one `inferstack check` validates against), and
    # Envoy Gateway v1.8 supports all five
    # (internal/utils/http/http.go SupportedRedirectCodes; internal/xds/translator/route.go maps 308 to
    # RedirectAction PERMANENT_REDIRECT; read at release/v1.8 = v1.8.3+11 (the pinned v1.8.3 plus 11 commits), in our
    # mirror).
    redirect: dict[str, Any] = {"scheme": "https", "statusCode": REDIRECT_STATUS_CODE}
    if args.kind is LoadBalancerKind.NODEPORT:
        redirect["port"] = args.https_node_port  # the client reaches HTTPS on the node port, not 443
    return {
        "parentRefs": [
            {**gateway_api_ref("Gateway", gateway_name, args.namespace), "sectionName": HTTP_LISTENER}
        ],
        "hostnames": [args.hostname],
        # No backendRefs: plain HTTP never reaches the model. cert-manager's HTTP-01 solver adds its own
        # route with an Exact path match, which wins over this prefix match.
        "rules": [
            {
                # Only the OpenAI API is published: the engines' other endpoints (transformers'
                # POST /load_model and /reset, vLLM's /metrics, /tokenize, ...) stay in-cluster.
                "matches": [{"path": {"type": "PathPrefix", "value": PUBLIC_PATH_PREFIX}}],
                "filters": [{"type": "RequestRedirect", "requestRedirect": redirect}],
            }
        ],
    }


def extra_listeners(args: LoadBalancerArgs) -> list[dict[str, Any]]:
    """The HTTP and HTTPS listeners of every ExtraHostname (same ports and TLS Secret as the API's: Envoy
    Gateway serves listeners of one port that differ by hostname from one Envoy listener, picking the
    certificate by SNI and the route by Host)."""
    listeners: list[dict[str, Any]] = []
    for extra in args.extra_hostnames:
        listeners.append(
            {
                "name": http_listener_name(extra.key),
                "protocol": "HTTP",
                "port": 80,
                "hostname": extra.hostname,
            }
        )
        listeners.append(
            {
                "name": https_listener_name(extra.key),
                "protocol": "HTTPS",
                "port": 443,
                "hostname": extra.hostname,
                "tls": {
                    "mode": "Terminate",
                    "certificateRefs": [{"group": "", "kind": "Secret", "name": args.tls_secret_name}],
                },
            }
        )
    return listeners


def extra_redirect_route_spec(
    gateway_name: str, args: LoadBalancerArgs, extra: ExtraHostname
) -> dict[str, Any]:
    """Plain HTTP on an extra hostname: every path redirects to HTTPS (308, as redirect_route_spec says why).
    A browser front end is reached at `/`, so the whole name redirects, not only /v1."""
    redirect: dict[str, Any] = {"scheme": "https", "statusCode": REDIRECT_STATUS_CODE}
    if args.kind is LoadBalancerKind.NODEPORT:
        redirect["port"] = args.https_node_port
    return {
        "parentRefs": [
            {
                **gateway_api_ref("Gateway", gateway_name, args.namespace),
                "sectionName": http_listener_name(extra.key),
            }
        ],
        "hostnames": [extra.hostname],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "filters": [{"type": "RequestRedirect", "requestRedirect": redirect}],
            }
        ],
    }


def internal_service_spec(gateway_name: str, gateway_namespace: str) -> dict[str, Any]:
    """A ClusterIP Service on one Gateway's Envoy pods, HTTPS only (443 -> 10443, the container port Envoy
    Gateway binds for a 443 listener). Envoy Gateway's own Service for the Gateway cannot be named in advance:
    v1.8.3 names it "envoy-" + a hash-suffixed name of the Gateway's infra (ControllerNamespace mode:
    internal/infrastructure/kubernetes/proxy resource_provider.go ResourceRender.Name ->
    resource.go ExpectedResourceHashedName), and with the kinds other than `cloud` it is the public
    LoadBalancer / NodePort itself. In-cluster clients reach the public hostname
    here by mapping it to this address (hostAliases), so SNI, Host and the certificate stay the public ones."""
    return {
        "type": "ClusterIP",
        "selector": {
            **ENVOY_PROXY_POD_LABELS,
            OWNING_GATEWAY_NAME_LABEL: gateway_name,
            OWNING_GATEWAY_NAMESPACE_LABEL: gateway_namespace,
        },
        "ports": [
            {"name": "https", "port": 443, "targetPort": 443 + ENVOY_PRIVILEGED_PORT_SHIFT, "protocol": "TCP"}
        ],
    }


def api_route_spec(gateway_name: str, args: LoadBalancerArgs) -> dict[str, Any]:
    timeout = f"{args.request_timeout_seconds}s"
    return {
        "parentRefs": [
            {**gateway_api_ref("Gateway", gateway_name, args.namespace), "sectionName": HTTPS_LISTENER}
        ],
        "hostnames": [args.hostname],
        "rules": [
            {
                # Only the OpenAI API is published: the engines' other endpoints (transformers'
                # POST /load_model and /reset, vLLM's /metrics, /tokenize, ...) stay in-cluster.
                "matches": [{"path": {"type": "PathPrefix", "value": PUBLIC_PATH_PREFIX}}],
                # One rule, several weighted backends: the A/B split happens per request.
                "backendRefs": [
                    {
                        "group": "",
                        "kind": "Service",
                        "name": b.service_name,
                        "port": b.port,
                        "weight": b.weight,
                    }
                    for b in args.backends
                ],
                # Envoy's default route timeout is 15 s; a streamed answer needs minutes.
                "timeouts": {"request": timeout, "backendRequest": timeout},
            }
        ],
    }


def security_policy_spec(
    route_name: str,
    key_secret_name: str,
    allowed_source_cidrs: list[str],
    internal_source_cidrs: list[str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "targetRefs": [gateway_api_ref("HTTPRoute", route_name)],
        "apiKeyAuth": {
            # Secret data: <client id>: <key>. The filter strips "Bearer " from the header value.
            "credentialRefs": [{"group": "", "kind": "Secret", "name": key_secret_name}],
            "extractFrom": [{"headers": [API_KEY_HEADER]}],
            "forwardClientIDHeader": CLIENT_ID_HEADER,
            "sanitize": True,  # the key never reaches the engine (or its logs)
        },
    }
    if not is_open(allowed_source_cidrs):
        spec["authorization"] = {
            "defaultAction": "Deny",
            "rules": [
                {
                    "name": "allowed-source-networks",
                    "action": "Allow",
                    "principal": {"clientCIDRs": list(allowed_source_cidrs)},
                }
            ],
        }
        if internal_source_cidrs:
            # Pods reaching Envoy through the internal Service keep their pod address (no SNAT from a pod to
            # a ClusterIP whose endpoint is another pod); they still need a key.
            spec["authorization"]["rules"].append(
                {
                    "name": "in-cluster-clients",
                    "action": "Allow",
                    "principal": {"clientCIDRs": list(internal_source_cidrs)},
                }
            )
    return spec


def join_policy_specs(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """`more` merged into `base` (policy specs, camelCase): mappings recursively, lists joined (base's
    items first, an item equal to one already there dropped), scalars from `more`. Neither argument is
    changed."""
    joined = dict(base)
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(joined.get(key), dict):
            joined[key] = join_policy_specs(joined[key], value)
        elif isinstance(value, list) and isinstance(joined.get(key), list):
            # Joined without repeats: a targetRef listed twice makes Envoy Gateway v1.8.3 attach the
            # policy twice and report it Conflicted with itself (getPolicyTargetRefs dedupes only
            # targetSelectors, internal/gatewayapi/helpers.go).
            joined[key] = [*joined[key], *(item for item in value if item not in joined[key])]
        else:
            joined[key] = value
    return joined


def client_traffic_spec(gateway_name: str, buffer_limit: str = MODEL_ROUTING_BUFFER_LIMIT) -> dict[str, Any]:
    """The ClientTrafficPolicy on the Gateway when models are routed: the request buffer only (no client
    IP detection: the address rules keep reading the TCP peer, see EXTERNAL_TRAFFIC_POLICY)."""
    return {
        "targetRefs": [gateway_api_ref("Gateway", gateway_name)],
        "connection": {"bufferLimit": buffer_limit},
    }


def rate_limit_spec(route_name: str, clients: list[str], requests_per_minute: int) -> dict[str, Any]:
    rules = [
        {
            "clientSelectors": [{"headers": [{"name": CLIENT_ID_HEADER, "type": "Exact", "value": client}]}],
            "limit": {"requests": requests_per_minute, "unit": "Minute"},
        }
        for client in clients
    ]
    return {
        "targetRefs": [gateway_api_ref("HTTPRoute", route_name)],
        # `type` is deprecated in newer CRDs (which read `local` directly) but required by older ones.
        "rateLimit": {"type": "Local", "local": {"rules": rules}},
    }
