"""Cold-start hold: requests to a model scaled to zero wait in the KEDA HTTP add-on's interceptor until a
replica is ready, instead of failing.

Why the KEDA HTTP add-on (v0.15.0) and not the endpoint picker's flow control
-----------------------------------------------------------------------------
What the interceptor does, read in kedacore/http-add-on at tag v0.15.0 (commit 4ea8a863):

* Hold. interceptor/middleware/endpoint_resolver.go `ServeHTTP` calls
  `ReadyEndpointsCache.WaitForReady` (pkg/k8s/ready_endpoints_cache.go), which blocks on an
  EndpointSlice-driven broadcast until the target Service has one ready endpoint, bounded by the
  InterceptorRoute's `timeouts.readiness` (per route; else KEDA_HTTP_READINESS_TIMEOUT, default 0 =
  unbounded). Then the request is proxied; nothing is failed while the model loads.
* Timeout answer. When the readiness deadline passes without a fallback the interceptor answers
  `http.Error(w, "Gateway Timeout", 504)` (handler/static.go `NewStatic`), a text/plain body. We turn
  that 504 into the OpenAI-shaped 503 with `Retry-After` at the gateway (`gateway_policy_fragment`).
  The add-on's own alternatives do not fit: `coldStart.placeholder` answers *immediately* while no
  endpoint is ready (middleware/placeholder.go runs before the resolver, CRD text "Static response to
  return immediately"), i.e. no hold; `coldStart.fallback` needs a second Service to answer.
* Streaming. handler/upstream.go proxies with Go's `httputil.ReverseProxy`, which flushes every write
  at once when the response is `text/event-stream` or has no Content-Length (net/http/httputil
  reverseproxy.go `flushInterval`), so SSE tokens are not buffered. No bytes flow *during* the hold:
  kedacore/http-add-on#1592 (SSE keep-alive chunks while cold starting) is an open PR, not in v0.15.0,
  so Envoy's stream idle timeout must exceed the hold (`gateway_policy_fragment` sets it).
* Wake-up. Held requests count as in-flight concurrency for the route (middleware/counting.go); the
  add-on's scaler serves it to KEDA as an `external-push` trigger (scaler/handlers.go: metadata
  `interceptorRoute` = the InterceptorRoute's name, read in the ScaledObject's namespace), and
  `IsActive` turns true with the first held request. The ScaledObject stays ours (components/
  autoscaler.py): one per Deployment, our queue-depth trigger plus this one.
* Regressions. #1492 (0.12.2: first request answered 503 in under a second, never held): v0.12.2's
  proxy chain has no 503 path of its own (the only one is the readiness probe, handler/probe.go), and
  the cold-start wait was rewritten after it: 154b4fa5 (#1472, 2026-02-26, event-driven
  ReadyEndpointsCache) and 2a5f637e (#1533); both are in v0.13.0 and later, so in v0.15.0. We read the
  issue's report, not its closing comment, so which commit its reporter confirmed is not known here.
  #1692 (opened 2026-06-19, closed): on 0.15.0 *itself*, the first request after 30-45 min of idle was
  held for the whole readiness timeout and answered 504 without a scale-up, an immediate retry worked.
  No release after v0.15.0 exists in the upstream history we hold (main up to 2026-06-28 has no fix
  commit naming it), so v0.15.0 carries it: such a request gets our 503 + Retry-After and its retry
  is served. This is why the 503 is retryable and the docs say so.

The endpoint picker's flow control (llm-d-router v0.10.0) queues requests in the picker while the
InferencePool's pods are saturated; it sits behind an InferencePool whose pods exist. It was not
chosen: it is the prefix-routing part's component, and holding at zero replicas would also need the
picker to survive a pool with no endpoints and a separate wake-up signal to KEDA, which the interceptor
gives us built in (external-push). Not measured here: the interceptor is a Go binary with no package on
this machine, so nothing above was run; it is read from source at the pinned tag.

How a request reaches the interceptor
-------------------------------------
The gateway's rule for this model (an AIGatewayRoute backend with `headerMutation`, or an HTTPRoute rule
with a RequestHeaderModifier) sends it to the interceptor's proxy Service in the add-on's namespace and
*sets* HOLD_HEADER to this model's route key (set overwrites a value a client sent, so a client cannot
pick another model's route). The InterceptorRoute matches that header on /v1, with no host (the add-on's
routing table files a rule without hosts under its catch-all host, pkg/routing/key.go), and proxies to
the model server's Service, keeping the Host header. `hold_backend()` gives a plain HTTPRoute that
backend. A plain HTTPRoute naming that Service across namespaces needs the ReferenceGrant this component
makes (`reference_grant`); the stacks' AIGatewayRoute reaches it by an Envoy Gateway Backend's FQDN, which
needs none, so they turn it off.

Timeouts (seconds) end to end
-----------------------------
* interceptor readiness = `hold_timeout_seconds` (the model's cold-start budget, stacks/cold_start.py);
* interceptor responseHeader and request = "0s" (disabled): a non-streamed completion sends its headers
  only when the whole answer is generated, so the interceptor must not cut it; Envoy's route timeout is
  the one ceiling, and a 504 *from the interceptor* then means only "not ready in time";
* Envoy route timeout (components/load_balancer.py request_timeout_seconds) must be at least
  `required_route_timeout_seconds(hold, generation)` = hold + generation + ROUTE_TIMEOUT_MARGIN_SECONDS;
* Envoy stream idle timeout (default 5 min at the listener; EG v1.8.3 api/v1alpha1/timeout_types.go)
  is raised per route to hold + margin, or a hold longer than 5 min is cut with no byte sent.

Metrics (scrape_interceptor)
----------------------------
The interceptor's OTel Prometheus exporter serves /metrics on 2223 by default (pkg/observability/
config.go, interceptor/main.go). Its instruments (interceptor/metrics/instruments.go) come out as the OTel
Prometheus exporter v0.66.0 (go.mod at v0.15.0) names them, with its default translation strategy
UnderscoreEscapingWithSuffixes (exporters/prometheus/config.go; prometheus/otlptranslator v1.0.0
metric_namer.go): dots become underscores, a monotonic Sum gets `_total`, unit "s" becomes `_seconds`, a
non-monotonic Sum (UpDownCounter) is a gauge (exporter.go addSumMetric) with no suffix; WithoutScopeInfo
drops otel_scope_* labels. So: `interceptor_request_concurrency{route_name, route_namespace}` (gauge,
held requests included: middleware/counting.go), `interceptor_request_count_total{code, method,
route_name, route_namespace}`, `interceptor_request_duration_seconds_{bucket,sum,count}` - the names the
add-on's own tests expect (interceptor/metrics/prometheus_test.go, test/helpers/constants.go). The
chart declares no container port 2223 for the interceptor, so it is scraped through a Service of ours
(numeric targetPort) and a ServiceMonitor, with a NetworkPolicy admitting Prometheus.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._common import KEDA_HTTP_ADD_ON, child, helm_release, labels, reject_invalid_args
from components.model_server import SERVING_PORT
from components.monitoring import DEFAULT_NAMESPACE as PROMETHEUS_NAMESPACE
from components.monitoring import PROMETHEUS_POD_LABELS
from components.network_policy import in_namespace

#: Namespace of the KEDA HTTP add-on (next to KEDA, components/autoscaler.py KEDA_NAMESPACE).
ADD_ON_NAMESPACE = "keda"
#: Object names the chart renders ("{{ .Chart.Name }}-..."; chart keda-add-ons-http 0.15.0,
#: kedacore/charts c4b92e9 http-add-on/templates/interceptor/service-proxy.yaml, scaler/service.yaml).
INTERCEPTOR_PROXY_SERVICE = "keda-add-ons-http-interceptor-proxy"
INTERCEPTOR_PROXY_PORT = 8080  # values.yaml interceptor.proxy.port
INTERCEPTOR_ADMIN_PORT = 9090  # values.yaml interceptor.admin.port (the scaler polls queue counts here)
SCALER_SERVICE = "keda-add-ons-http-external-scaler"
SCALER_GRPC_PORT = 9090  # values.yaml scaler.grpcPort (KEDA's external-push stream)
#: Pod labels of the chart's Deployments (templates/interceptor/deployment.yaml, scaler/deployment.yaml).
INTERCEPTOR_POD_LABELS = {
    "app.kubernetes.io/component": "interceptor",
    "app.kubernetes.io/name": "http-add-on",
}
SCALER_POD_LABELS = {"app.kubernetes.io/component": "scaler", "app.kubernetes.io/name": "http-add-on"}
#: The interceptor's OTel Prometheus exporter: on by default, serving /metrics on 2223 (http-add-on v0.15.0
#: pkg/observability/config.go OTEL_PROM_EXPORTER_ENABLED=true, OTEL_PROM_EXPORTER_PORT=2223;
#: interceptor/main.go mounts promhttp.Handler() at /metrics). The chart 0.15.0 sets neither variable for
#: the interceptor and declares no container port for it (templates/interceptor/deployment.yaml: `admin`
#: and `proxy` only), so a PodMonitor, whose targets are declared ports, cannot reach it: a Service of ours
#: with a numeric targetPort (which needs no declared port) and a ServiceMonitor do.
INTERCEPTOR_METRICS_PORT = 2223
INTERCEPTOR_METRICS_PORT_NAME = "metrics"
INTERCEPTOR_METRICS_PATH = "/metrics"
#: KEDA's operator pods (kedacore/charts keda 2.20.2 templates/manager/deployment.yaml, operator.name
#: default "keda-operator"): the client of the add-on scaler's gRPC stream.
KEDA_OPERATOR_POD_LABELS = {"app": "keda-operator"}

#: Request header the gateway sets per model so that the interceptor picks this model's route.
HOLD_HEADER = "x-inferstack-hold-route"
#: Path prefix of the OpenAI API the route holds.
API_PATH_PREFIX = "/v1"
#: The model server's port (components/model_server.py SERVING_PORT).
MODEL_SERVER_PORT = SERVING_PORT
#: What the interceptor answers when the readiness timeout passes (middleware/endpoint_resolver.go).
INTERCEPTOR_NOT_READY_STATUS = 504
#: Seconds added to hold (+ generation) for Envoy's timeouts, so the interceptor's answer arrives first.
ROUTE_TIMEOUT_MARGIN_SECONDS = 30
#: OpenAI error code in the 503 body (the `code` field of OpenAI's error object).
NOT_READY_CODE = "model_not_ready"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class ColdStartHoldArgs:
    """One model (or variant) that may scale to zero: hold its requests while it wakes."""

    namespace: str  # serving namespace: the model's Service, pods and ScaledObject
    served_model_name: str  # the OpenAI `model` name, for the 503 message
    service_name: str  # the model server's Service (the interceptor proxies to it)
    model_pod_labels: dict[str, str]  # the model server pods' labels (app.kubernetes.io/name, /instance)
    hold_timeout_seconds: int  # how long a request waits for a ready replica; the cold-start budget
    retry_after_seconds: int = 30  # Retry-After on the 503 after the hold timed out
    service_port: int = MODEL_SERVER_PORT  # the Service port the model server answers on
    route_key: str | None = None  # HOLD_HEADER value; default: the component's name (unique per model)
    concurrency_target: int = 256  # in-flight requests per replica the add-on reports (vLLM max_num_seqs)
    gateway_namespace: str = "envoy-gateway-system"  # where the Envoy proxies run
    gateway_pod_labels: dict[str, str] = field(default_factory=dict)  # Envoy proxy pod labels
    add_on_namespace: str = ADD_ON_NAMESPACE  # namespace of the KEDA HTTP add-on
    install_add_on: bool = False  # install the add-on (+ its namespace's policies): once per cluster
    interceptor_replicas: int = 2  # add-on: minimum interceptor replicas (>= 2 survives one node loss)
    add_on_values: dict[str, Any] = field(default_factory=dict)  # escape hatch: add-on chart values
    # A ReferenceGrant in the add-on's namespace letting the serving namespace's HTTPRoutes name the
    # interceptor Service (a plain HTTPRoute backendRef across namespaces). Off where the route reaches the
    # interceptor by an Envoy Gateway Backend's FQDN (AIGatewayRoute, components/model_routing.py), which
    # needs no grant: then none is made.
    reference_grant: bool = True
    # Scraping of the interceptor's metrics (interceptor_request_concurrency{route_name, route_namespace}:
    # requests waiting at a model at zero, which the stuck-at-zero alert reads; components/alert_rules.py).
    # Made where the add-on is installed (KedaHttpAddOn, or install_add_on): a Service on port 2223, a
    # ServiceMonitor for it and a NetworkPolicy admitting the Prometheus pods, all in add_on_namespace.
    # Off: none of them, and every other object is as before. The Prometheus operator's CRDs must exist.
    scrape_interceptor: bool = False
    prometheus_namespace: str = PROMETHEUS_NAMESPACE  # scrape: where the scraping Prometheus pods run
    prometheus_pod_labels: dict[str, str] = field(default_factory=lambda: dict(PROMETHEUS_POD_LABELS))
    # scrape: labels on the ServiceMonitor, what the Prometheus's serviceMonitorSelector matches (an
    # existing kube-prometheus-stack: `release: <its release>`; monitoring.pod_monitor_labels).
    pod_monitor_labels: dict[str, str] = field(default_factory=dict)
    # scrape: what the ServiceMonitor waits for: the release that installs the Prometheus operator's CRDs
    # (Monitoring.release) where the stack installs it.
    monitors_after: list[pulumi.Resource] = field(default_factory=list)
    scrape_interval: str = "15s"  # scrape: the ServiceMonitor's interval (Prometheus duration)


def route_key(name: str, args: ColdStartHoldArgs) -> str:
    return args.route_key or name


def validate_cold_start_hold_args(
    args: ColdStartHoldArgs, name: str = "hold", installs: bool | None = None
) -> list[str]:
    """Every problem with the args, each naming the field; empty when they are usable. `installs`: whether
    the component these args go to installs the add-on (KedaHttpAddOn always does); default
    `args.install_add_on` (ColdStartHold)."""
    installs = args.install_add_on if installs is None else installs
    problems: list[str] = []
    for attr in (
        "namespace",
        "service_name",
        "gateway_namespace",
        "add_on_namespace",
        "prometheus_namespace",
    ):
        value = getattr(args, attr)
        if not _DNS_LABEL.match(value or ""):
            problems.append(f"{attr}: {value!r} is not a valid Kubernetes name (lowercase, digits, '-')")
    if not args.served_model_name:
        problems.append("served_model_name: must not be empty (the 503 message names the model)")
    if not args.model_pod_labels:
        problems.append(
            "model_pod_labels: give the model server pods' labels; an empty selector would let the "
            "interceptor reach every pod of the namespace"
        )
    if args.hold_timeout_seconds < 1:
        problems.append(
            f"hold_timeout_seconds: {args.hold_timeout_seconds} must be at least 1 (0 would hold forever "
            "in the interceptor); derive it from the cold-start budget"
        )
    if args.retry_after_seconds < 1:
        problems.append(f"retry_after_seconds: {args.retry_after_seconds} must be at least 1")
    if not 1 <= args.service_port <= 65535:
        problems.append(f"service_port: {args.service_port} must be between 1 and 65535")
    if args.concurrency_target < 1:
        problems.append(f"concurrency_target: {args.concurrency_target} must be at least 1")
    key = route_key(name, args)
    # Sent as a header value and matched exactly; keep it a plain token.
    if not _LABEL_VALUE.match(key) or not key or len(key) > 63:
        problems.append(f"route_key: {key!r} must be 1-63 letters, digits, '-', '_' or '.'")
    if installs and args.interceptor_replicas < 1:
        problems.append("interceptor_replicas: must be at least 1")
    if not installs and args.add_on_values:
        problems.append(
            "install_add_on and add_on_values: the add-on is not installed here, so add_on_values would be "
            "ignored; drop add_on_values or set install_add_on"
        )
    if args.scrape_interceptor:
        if not installs:
            problems.append(
                "install_add_on and scrape_interceptor: the add-on is not installed here, so nothing would "
                "scrape its interceptor; set scrape_interceptor where the add-on is installed (KedaHttpAddOn, "
                "or install_add_on)"
            )
        if not args.prometheus_pod_labels:
            problems.append(
                "prometheus_pod_labels: must not be empty with scrape_interceptor (they pick the pods allowed "
                "to scrape the interceptor); the default is the Prometheus operator's pod labels"
            )
        if not _DURATION.match(args.scrape_interval):
            problems.append(
                f"scrape_interval: {args.scrape_interval!r} is not a Prometheus duration like 15s"
            )
    return problems


# --- pure builders -------------------------------------------------------------------------------------


def interceptor_route_spec(name: str, args: ColdStartHoldArgs) -> dict[str, Any]:
    """The InterceptorRoute (http.keda.sh/v1beta1) spec: match HOLD_HEADER on /v1, proxy to the model."""
    return {
        "target": {"service": args.service_name, "port": args.service_port},
        "rules": [
            {
                "headers": [{"name": HOLD_HEADER, "value": route_key(name, args)}],
                "paths": [{"value": API_PATH_PREFIX}],
            }
        ],
        # In-flight requests (held ones included) are what wakes the model; see the module docstring.
        "scalingMetric": {"concurrency": {"targetValue": args.concurrency_target}},
        "timeouts": {
            "readiness": f"{args.hold_timeout_seconds}s",
            # Disabled: Envoy's route timeout bounds the generation, and a 504 from the interceptor then
            # means "not ready within the hold" only (the gateway rewrites exactly that one).
            "responseHeader": "0s",
            "request": "0s",
        },
    }


def scaler_address(add_on_namespace: str = ADD_ON_NAMESPACE) -> str:
    """host:port of the add-on's external scaler, as the external-push trigger's `scalerAddress`."""
    return f"{SCALER_SERVICE}.{add_on_namespace}:{SCALER_GRPC_PORT}"


def not_ready_body(served_model_name: str | None, hold_timeout_seconds: int) -> str:
    """The OpenAI-shaped error body of the 503 (OpenAI API reference, "Error codes": an `error` object
    with message, type, param, code). `served_model_name` None: one body for several held models (one
    route, one override), naming none of them."""
    model = f"The model '{served_model_name}'" if served_model_name else "The requested model"
    return json.dumps(
        {
            "error": {
                "message": (
                    f"{model} is starting from zero and was not ready within "
                    f"{hold_timeout_seconds} s; retry after the Retry-After delay."
                ),
                "type": "service_unavailable",
                "param": None,
                "code": NOT_READY_CODE,
            }
        },
        separators=(",", ":"),
    )


def gateway_policy_fragment(args: ColdStartHoldArgs) -> dict[str, Any]:
    """The BackendTrafficPolicy spec fields (camelCase, Envoy Gateway v1.8.3) for the route that carries
    the hold backend, to be merged into that route's one BackendTrafficPolicy.

    Not a policy of its own: Envoy Gateway attaches one BackendTrafficPolicy per HTTPRoute (or rule);
    a second targeting the same one is Conflicted (internal/gatewayapi/backendtrafficpolicy.go), and the
    route already has one for rate limits (components/load_balancer.py).

    - responseOverride: the interceptor's 504 (source Backend: not Envoy's own 504 of a route timeout)
      becomes 503 + Retry-After + the OpenAI error JSON (api/v1alpha1/shared_types.go ResponseOverride,
      CustomResponse.header is a Gateway API HTTPHeaderFilter; `remove` is refused there, `set` is not).
      Only the interceptor answers 504 among this route's backends (vLLM never does).
    - timeout.http.streamIdleTimeout: above the hold, since no byte flows while a request is held.
    """
    return {
        "responseOverride": [
            {
                "match": {"statusCodes": [{"type": "Value", "value": INTERCEPTOR_NOT_READY_STATUS}]},
                "source": "Backend",
                "response": {
                    "statusCode": 503,
                    "contentType": "application/json",
                    "body": {
                        "type": "Inline",
                        "inline": not_ready_body(args.served_model_name, args.hold_timeout_seconds),
                    },
                    "header": {"set": [{"name": "Retry-After", "value": str(args.retry_after_seconds)}]},
                },
            }
        ],
        "timeout": {
            "http": {"streamIdleTimeout": f"{args.hold_timeout_seconds + ROUTE_TIMEOUT_MARGIN_SECONDS}s"}
        },
    }


def gateway_policy_fragment_for(holds: list[ColdStartHoldArgs]) -> dict[str, Any]:
    """gateway_policy_fragment for the one route that carries several held models: Envoy Gateway applies
    the first responseOverride that matches, so one override whose body names no model and gives the
    longest hold, and a stream idle timeout above the longest hold."""
    if len(holds) == 1:
        return gateway_policy_fragment(holds[0])
    longest = max(holds, key=lambda h: h.hold_timeout_seconds)
    fragment = gateway_policy_fragment(longest)
    response = fragment["responseOverride"][0]["response"]
    response["body"]["inline"] = not_ready_body(None, longest.hold_timeout_seconds)
    response["header"]["set"][0]["value"] = str(max(h.retry_after_seconds for h in holds))
    return fragment


def required_route_timeout_seconds(hold_timeout_seconds: int, generation_seconds: int) -> int:
    """The least Envoy route timeout (load_balancer request_timeout_seconds) for a held model: the hold,
    then the longest generation, then a margin so the interceptor's own answer is the one sent."""
    return hold_timeout_seconds + generation_seconds + ROUTE_TIMEOUT_MARGIN_SECONDS


def hold_backend(name: str, args: ColdStartHoldArgs) -> dict[str, Any]:
    """What a plain HTTPRoute's rule for this model carries (stacks/routing.py does the same on the
    AIGatewayRoute with an Envoy Gateway Backend): the interceptor Service as the
    backend and the header that selects this model's InterceptorRoute (camelCase Gateway API fields)."""
    return {
        "backendRef": {
            "group": "",
            "kind": "Service",
            "name": INTERCEPTOR_PROXY_SERVICE,
            "namespace": args.add_on_namespace,
            "port": INTERCEPTOR_PROXY_PORT,
        },
        "headerMutation": {"set": [{"name": HOLD_HEADER, "value": route_key(name, args)}]},
    }


def add_on_values(args: ColdStartHoldArgs) -> dict[str, Any]:
    """Chart values (keda-add-ons-http 0.15.0), only keys the released chart has (see _common.py)."""
    return {
        "interceptor": {
            # The chart's ScaledObject keeps at least `min` interceptors; 2 survives one node's loss.
            "replicas": {"min": args.interceptor_replicas},
            # Per-route timeouts (InterceptorRoute.timeouts) decide; these are the global fallbacks, set
            # so that a route without its own never holds forever.
            "readinessTimeout": f"{args.hold_timeout_seconds}s",
        },
        # Applied to every container of the chart (templates/*/deployment.yaml: `toYaml
        # .Values.securityContext` unless a per-component key is set). The chart's defaults lack
        # runAsNonRoot and seccompProfile, which Pod Security "restricted" needs; the images are built
        # with ko (kedacore/http-add-on #1465) on a non-root base.
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def _untyped(spec: dict[str, Any]) -> Any:
    return spec


def model_ingress_policy_spec(args: ColdStartHoldArgs) -> dict[str, Any]:
    """NetworkPolicy (serving namespace): the interceptor pods may reach the model pods on the serving
    port. Additive to the model server's own allow policy (policies are a union), so model_server.py is
    unchanged. The interceptor dials the Service (v0.15.0 has no direct-pod routing), which kube-proxy
    rewrites to a pod IP: the policy sees the pod port."""
    return {
        "pod_selector": {"match_labels": dict(args.model_pod_labels)},
        "policy_types": ["Ingress"],
        "ingress": [
            {
                "from": [
                    {
                        "namespace_selector": in_namespace(args.add_on_namespace),
                        "pod_selector": {"match_labels": dict(INTERCEPTOR_POD_LABELS)},
                    }
                ],
                "ports": [{"port": MODEL_SERVER_PORT, "protocol": "TCP"}],
            }
        ],
    }


def interceptor_policy_spec(args: ColdStartHoldArgs) -> dict[str, Any]:
    """NetworkPolicy (add-on namespace): the interceptor takes requests from the Envoy proxies only, and
    the add-on scaler's polls of its admin port (queue counts)."""
    gateway_peer: dict[str, Any] = {"namespace_selector": in_namespace(args.gateway_namespace)}
    if args.gateway_pod_labels:
        gateway_peer["pod_selector"] = {"match_labels": dict(args.gateway_pod_labels)}
    return {
        "pod_selector": {"match_labels": dict(INTERCEPTOR_POD_LABELS)},
        "policy_types": ["Ingress"],
        "ingress": [
            {"from": [gateway_peer], "ports": [{"port": INTERCEPTOR_PROXY_PORT, "protocol": "TCP"}]},
            {
                "from": [{"pod_selector": {"match_labels": dict(SCALER_POD_LABELS)}}],
                "ports": [{"port": INTERCEPTOR_ADMIN_PORT, "protocol": "TCP"}],
            },
        ],
    }


def scaler_policy_spec() -> dict[str, Any]:
    """NetworkPolicy (add-on namespace): KEDA's operator reaches the add-on scaler's gRPC port."""
    return {
        "pod_selector": {"match_labels": dict(SCALER_POD_LABELS)},
        "policy_types": ["Ingress"],
        "ingress": [
            {
                "from": [{"pod_selector": {"match_labels": dict(KEDA_OPERATOR_POD_LABELS)}}],
                "ports": [{"port": SCALER_GRPC_PORT, "protocol": "TCP"}],
            }
        ],
    }


def interceptor_metrics_service_name(name: str) -> str:
    """The metrics Service's name (and its `app.kubernetes.io/name`): after the installing component, so
    the ServiceMonitor selects this Service alone, not the chart's admin and proxy Services, which carry
    the interceptor's labels."""
    return f"{name}-interceptor-metrics"


def interceptor_metrics_service_labels(name: str) -> dict[str, str]:
    return labels(interceptor_metrics_service_name(name), "cold-start-hold")


def interceptor_metrics_service_spec(name: str) -> dict[str, Any]:
    """Service (add-on namespace) over the interceptor pods' metrics port. Headless: only its
    EndpointSlices matter (the ServiceMonitor's targets), nothing dials it. The targetPort is the number:
    the chart declares no container port to name (see INTERCEPTOR_METRICS_PORT)."""
    return {
        "cluster_ip": "None",
        "selector": dict(INTERCEPTOR_POD_LABELS),
        "ports": [
            {
                "name": INTERCEPTOR_METRICS_PORT_NAME,
                "port": INTERCEPTOR_METRICS_PORT,
                "target_port": INTERCEPTOR_METRICS_PORT,
                "protocol": "TCP",
            }
        ],
    }


def interceptor_service_monitor_spec(name: str, args: ColdStartHoldArgs) -> dict[str, Any]:
    """ServiceMonitor (monitoring.coreos.com/v1) spec: the metrics Service's `metrics` port, in its own
    namespace. Series come out as the OTel Prometheus exporter writes them (exporters/prometheus v0.66.0,
    the version http-add-on v0.15.0's go.mod pins): `interceptor_request_concurrency` (gauge),
    `interceptor_request_count_total`, `interceptor_request_duration_seconds_*`; the scrape adds
    namespace=<add-on namespace>, so the model's namespace is `route_namespace`."""
    return {
        "selector": {"matchLabels": interceptor_metrics_service_labels(name)},
        "endpoints": [
            {
                "port": INTERCEPTOR_METRICS_PORT_NAME,
                "path": INTERCEPTOR_METRICS_PATH,
                "interval": args.scrape_interval,
            }
        ],
    }


def interceptor_scrape_policy_spec(args: ColdStartHoldArgs) -> dict[str, Any]:
    """NetworkPolicy (add-on namespace): the Prometheus pods reach the interceptor's metrics port. A policy
    of its own: interceptor_policy_spec already isolates the interceptor pods for ingress (8080 from Envoy,
    9090 from the scaler), so without this the scrape is dropped; policies are a union, so that one stays
    as it is."""
    return {
        "pod_selector": {"match_labels": dict(INTERCEPTOR_POD_LABELS)},
        "policy_types": ["Ingress"],
        "ingress": [
            {
                "from": [
                    {
                        "namespace_selector": in_namespace(args.prometheus_namespace),
                        "pod_selector": {"match_labels": dict(args.prometheus_pod_labels)},
                    }
                ],
                "ports": [{"port": INTERCEPTOR_METRICS_PORT, "protocol": "TCP"}],
            }
        ],
    }


def reference_grant_spec(args: ColdStartHoldArgs) -> dict[str, Any]:
    """ReferenceGrant (add-on namespace): HTTPRoutes of the serving namespace may name the interceptor's
    proxy Service (Gateway API: a cross-namespace backendRef needs one in the referent's namespace).
    Envoy AI Gateway v1.1.0 renders each AIGatewayRoute as an HTTPRoute in the route's namespace, so the
    same grant covers it."""
    return {
        "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": args.namespace}],
        "to": [{"group": "", "kind": "Service", "name": INTERCEPTOR_PROXY_SERVICE}],
    }


class ColdStartHold(pulumi.ComponentResource):
    """An InterceptorRoute that holds one model's requests while it has no ready replica, the
    NetworkPolicy letting the interceptor reach the model, and (install_add_on) the add-on itself."""

    interceptor_route_name: pulumi.Output[str]
    scaler_address: pulumi.Output[str]

    def __init__(
        self, name: str, args: ColdStartHoldArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        reject_invalid_args("ColdStartHold", name, validate_cold_start_hold_args(args, name))
        super().__init__("inferstack:cold_start_hold:ColdStartHold", name, None, opts)

        depends_on: list[pulumi.Resource] = []
        if args.install_add_on:
            depends_on.append(_install_add_on(self, name, args))

        route = k8s.apiextensions.CustomResource(
            f"{name}-route",
            api_version="http.keda.sh/v1beta1",
            kind="InterceptorRoute",
            metadata={"name": name, "namespace": args.namespace, "labels": labels(name, "cold-start-hold")},
            spec=interceptor_route_spec(name, args),
            opts=child(self, depends_on=depends_on or None),
        )
        if args.reference_grant:
            k8s.apiextensions.CustomResource(
                f"{name}-grant",
                api_version="gateway.networking.k8s.io/v1beta1",
                kind="ReferenceGrant",
                metadata={
                    "name": f"{name}-to-interceptor",
                    "namespace": args.add_on_namespace,
                    "labels": labels(name, "cold-start-hold"),
                },
                spec=reference_grant_spec(args),
                opts=child(self, depends_on=depends_on or None),
            )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-from-interceptor",
            metadata={
                "name": f"{name}-allow-from-interceptor",
                "namespace": args.namespace,
                "labels": labels(name, "cold-start-hold"),
            },
            spec=_untyped(model_ingress_policy_spec(args)),
            opts=child(self),
        )

        self.interceptor_route_name = route.id.apply(lambda _: name)
        self.scaler_address = pulumi.Output.from_input(scaler_address(args.add_on_namespace))
        self.register_outputs(
            {"interceptor_route_name": self.interceptor_route_name, "scaler_address": self.scaler_address}
        )


def _install_add_on(owner: pulumi.ComponentResource, name: str, args: ColdStartHoldArgs) -> pulumi.Resource:
    """The add-on's release (`<name>-keda-http`) and the NetworkPolicies of its namespace, as children of
    `owner`; returns the release (its CRDs come with it)."""
    release = helm_release(
        f"{name}-keda-http",
        KEDA_HTTP_ADD_ON,
        namespace=args.add_on_namespace,
        values=add_on_values(args),
        extra_values=args.add_on_values,
        opts=child(owner),
    )
    for role, spec in (
        ("interceptor", interceptor_policy_spec(args)),
        ("scaler", scaler_policy_spec()),
    ):
        k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-to-{role}",
            metadata={
                "name": f"{name}-allow-to-{role}",
                "namespace": args.add_on_namespace,
                "labels": labels(name, "cold-start-hold"),
            },
            spec=_untyped(spec),
            opts=child(owner, depends_on=[release]),
        )
    if args.scrape_interceptor:
        _scrape_interceptor(owner, name, args, release)
    return release


def _scrape_interceptor(
    owner: pulumi.ComponentResource, name: str, args: ColdStartHoldArgs, release: pulumi.Resource
) -> None:
    """The metrics Service, its ServiceMonitor and the NetworkPolicy admitting Prometheus, in the add-on's
    namespace (made by the release)."""
    service_name = interceptor_metrics_service_name(name)
    k8s.core.v1.Service(
        service_name,
        metadata={
            "name": service_name,
            "namespace": args.add_on_namespace,
            "labels": interceptor_metrics_service_labels(name),
        },
        spec=_untyped(interceptor_metrics_service_spec(name)),
        opts=child(owner, depends_on=[release]),
    )
    k8s.apiextensions.CustomResource(
        f"{name}-interceptor-servicemonitor",
        api_version="monitoring.coreos.com/v1",
        kind="ServiceMonitor",
        metadata={
            "name": f"{name}-interceptor",
            "namespace": args.add_on_namespace,
            "labels": {**labels(f"{name}-interceptor", "monitoring"), **args.pod_monitor_labels},
        },
        spec=interceptor_service_monitor_spec(name, args),
        opts=child(owner, depends_on=[release, *args.monitors_after]),
    )
    k8s.networking.v1.NetworkPolicy(
        f"{name}-allow-interceptor-scrape",
        metadata={
            "name": f"{name}-allow-interceptor-scrape",
            "namespace": args.add_on_namespace,
            "labels": labels(name, "cold-start-hold"),
        },
        spec=_untyped(interceptor_scrape_policy_spec(args)),
        opts=child(owner, depends_on=[release]),
    )


class KedaHttpAddOn(pulumi.ComponentResource):
    """The KEDA HTTP add-on alone, once per cluster, for a stack whose holds do not install it: its name
    does not follow any one model, so reordering or removing models does not replace the cluster's add-on.
    `args` gives the add-on's settings (add_on_namespace, gateway pods, interceptor replicas, the global
    readiness fallback from hold_timeout_seconds, add_on_values, the interceptor's scrape: scrape_interceptor
    and the prometheus_* / pod_monitor_labels / monitors_after fields); its per-model fields are unused, and
    so is install_add_on (this component always installs)."""

    def __init__(
        self, name: str, args: ColdStartHoldArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        problems = validate_cold_start_hold_args(args, name, installs=True)
        reject_invalid_args("KedaHttpAddOn", name, problems)
        super().__init__("inferstack:cold_start_hold:KedaHttpAddOn", name, None, opts)
        self.release = _install_add_on(self, name, args)
        self.register_outputs({"release": self.release})
