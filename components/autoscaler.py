"""Autoscaler: KEDA (pinned Helm release) and a ScaledObject for the model server's Deployment.

Signals
-------
QUEUE_DEPTH (vLLM): a prometheus trigger on the engine's own queue,
`sum(vllm:num_requests_waiting{namespace=..., model_name=...})`, scaled so that each replica has about
`target_queue_depth` waiting requests. The EKS and GKE inference guides both prefer this server signal
over CPU or GPU utilisation, which saturate long before latency does.

CPU (`transformers serve`): that engine exports no queue metric, so a `cpu` trigger on average
utilisation. A CPU trigger cannot wake a Deployment from zero (there is no pod to measure), so
min_replicas 0 is rejected with it.

Scale from zero: held, not failed (cold_start_hold)
---------------------------------------------------
With min_replicas 0 and `cold_start_hold` (components/cold_start_hold.py), requests to the model go
through the KEDA HTTP add-on's interceptor (v0.15.0), which holds each one until the model's Service has
a ready endpoint or the hold timeout passes (then the gateway answers a retryable 503 with Retry-After in
the OpenAI error shape). The ScaledObject stays this one - KEDA refuses a second ScaledObject for the same
Deployment - and gets two triggers:

* queue-depth, as below, but with kube-state-metrics as the witness that zero is real (the gateway's
  route now ends at the interceptor, whose endpoints are always ready);
* wake-from-zero: the add-on's `external-push` trigger (metadata `scalerAddress`, `interceptorRoute`).
  Its scaler pushes "active" as soon as a request is in flight or held for the route, so the first
  request wakes the Deployment (no scrape interval, no polling interval), and keeps it active while
  requests wait, so the cooldown does not remove a replica that is still loading under held clients.

Without a hold (legacy; `envoy_route_hint`)
-------------------------------------------
The stacks always pass cold_start_hold. A caller without the KEDA HTTP add-on may instead give
`envoy_route_hint` with min_replicas 0: a second
prometheus trigger watches the gateway (Envoy's stats, scraped by the Monitoring component's PodMonitor):

* 5xx answers from the Gateway's proxies. While the Service has no endpoints Envoy Gateway answers
  the route with a 500 of its own (a direct response; envoyproxy/gateway#8288) and never touches an
  upstream cluster, so these are counted per Gateway (`envoy_http_downstream_rq_xx`), not per route.
  Requests refused by API-key auth or the rate limit are 4xx and do not wake anything.
* requests the route's cluster served (`envoy_cluster_upstream_rq_total` for the HTTPRoute's clusters
  `httproute/<ns>/<name>/rule/<n>`), so that a replica busy with running but not waiting requests is
  not scaled to zero under its clients.

Both are rates over WAKE_WINDOW, clamped to 1 with a target of 1. The price: the requests that arrive
while the model is at zero are not held - they get an error and clients must retry until a replica is
ready (scrape interval + polling interval to notice, then node, image, weights and model load).

A missing metric is an error, never a silent 0
----------------------------------------------
Every prometheus trigger sets `ignoreNullValues: "false"`. KEDA v2.20.2's prometheus scaler
(pkg/scalers/prometheus_scaler.go, ExecutePromQuery) defaults it to true and then answers an empty
result, an empty value list or NaN/Inf with 0 and no error - so a metric that is never scraped (a
PodMonitor the Prometheus does not select, a NetworkPolicy that blocks the scrape) reads as "no queue,
no traffic": nothing scales out, a deployment at zero never wakes, and nothing says why. With false the
query fails ("prometheus metrics 'prometheus' target may be lost, the result is empty").

What KEDA v2.20.2 then does (pkg/scaling/scale_handler.go, pkg/fallback/fallback.go,
pkg/scaling/executor/scale_scaledobjects.go): each failed poll emits a Warning event KEDAScalerFailed on
the ScaledObject; once a trigger has failed more than `failureThreshold` times in a row `fallback`
answers for it, and a trigger in fallback counts as *active*, so even at zero replicas the deployment
is scaled to `fallback.replicas` (max(min_replicas, 1)) and the ScaledObject's Fallback condition turns
True. A blind autoscaler therefore fails open - one replica serves, visibly - instead of failing closed
and silent.

That only works if every *legitimate* absence is answered explicitly, or a deployment scaled to zero
would be woken by its own missing vLLM series. So the queries say 0 themselves where the absence is
real, and use the gateway's own series as the witness that scraping works:

* queue depth, min_replicas >= 1: a replica always runs, so no vLLM series means it is not scraped:
  the bare query, which fails when empty (also while the first replica is still loading; the fallback
  then holds the current count, which is what a loading replica needs).
* queue depth, min_replicas 0 with a hold: 0 while kube-state-metrics reports no available replica of
  the Deployment (`kube_deployment_status_replicas_available`); empty - an error - when replicas are
  available but no vLLM series exists, or when kube-state-metrics is not scraped (then the fallback
  wakes one replica: a stack with a hold needs kube-state-metrics, or it never stays at zero).
* wake-up with a hold: the add-on scaler answers or the trigger fails; a failing external-push
  trigger is in fallback like any other, so an unreachable scaler wakes one replica, visibly.
* queue depth, min_replicas 0 without a hold: 0 when the route has no ready endpoint in Envoy
  (`envoy_cluster_membership_healthy` of the HTTPRoute's clusters is 0 or the cluster is absent) and
  Envoy itself is scraped (`envoy_server_live` of the Gateway's proxies); empty - an error - when the
  route has ready endpoints but no vLLM series, or when the gateway is not scraped either.
* wake-up without a hold: each counter falls back to 0 only while the Gateway's proxies are scraped, so an unscraped
  gateway is an error (and the fallback wakes one replica) rather than a gateway that never saw a request.

Prometheus outages are the same case: `fallback` holds at least max(min_replicas, 1) replicas after
more than three failed queries in a row and never scales a larger deployment down while blind (behavior
currentReplicasIfHigher). KEDA supports fallback only for AverageValue triggers, so the CPU signal has
none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._common import KEDA, child, helm_release, labels, reject_invalid_args
from components.choices import ScalingSignal

KEDA_NAMESPACE = "keda"
#: How far back the wake-up trigger looks at the gateway's counters.
WAKE_WINDOW = "2m"
#: Consecutive failed metric queries before KEDA applies the fallback replica count.
FALLBACK_FAILURE_THRESHOLD = 3

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

# KEDA's chart defaults are already restricted; we set them anyway so that a chart upgrade that relaxed
# them would show up in the diff rather than pass silently.
_RESTRICTED_CONTAINER = {
    "capabilities": {"drop": ["ALL"]},
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_KEDA_PARTS = ("operator", "metricServer", "webhooks")


@dataclass(frozen=True)
class EnvoyRouteHint:
    """Which Gateway and HTTPRoute carry the model's traffic, so the wake-up trigger counts only them."""

    gateway_namespace: str  # namespace of the Gateway resource
    gateway_name: str  # name of the Gateway resource
    route_namespace: str  # namespace of the HTTPRoute to the model server
    route_name: str  # name of the HTTPRoute to the model server


@dataclass(frozen=True)
class ColdStartHoldRef:
    """The KEDA HTTP add-on route that holds this model's requests at zero (components/cold_start_hold.py)."""

    interceptor_route_name: str  # the InterceptorRoute, in the ScaledObject's namespace
    scaler_address: str  # host:port of the add-on's external scaler (cold_start_hold.scaler_address())


@dataclass(frozen=True)
class AutoscalerArgs:
    """How the model server's Deployment scales; tuning fields default to the stack schema's values."""

    namespace: str  # namespace of the Deployment (the ScaledObject goes next to it)
    deployment_name: pulumi.Input[str]  # the model server's Deployment
    served_model_name: str  # vLLM's model_name label (the name clients send)
    # The Deployment's pods' name prefix (the Deployment name) when another Deployment serves the same
    # model_name (A/B variants): the queue is then this variant's alone, `pod=~"<prefix>-<hash>-<id>"`
    # (pods of a Deployment are named <deployment>-<pod-template-hash>-<suffix>; PromQL anchors regexes).
    pod_name_prefix: str | None = None
    signal: ScalingSignal = ScalingSignal.QUEUE_DEPTH  # queue depth (vLLM) or CPU (transformers)
    min_replicas: int = 1  # 0 scales to zero (queue-depth signal only)
    max_replicas: int = 4  # upper bound on replicas
    target_queue_depth: int = 5  # waiting requests per replica before scaling out
    cpu_target_percent: int = 70  # CPU signal: average utilisation target
    polling_interval_seconds: int = 15  # how often KEDA evaluates the triggers
    cooldown_seconds: int = 300  # idle time before scaling to zero
    scale_down_stabilization_seconds: int = 300  # HPA looks this far back before removing a replica
    prometheus_url: pulumi.Input[str] | None = None  # Prometheus the queue-depth triggers query
    envoy_route_hint: EnvoyRouteHint | None = None  # min 0 without a hold: gateway + route woken by 5xx
    cold_start_hold: ColdStartHoldRef | None = None  # min 0 with a hold: the add-on's route wakes it
    install_keda: bool = True  # install KEDA; off when the cluster already runs it
    keda_values: dict[str, Any] = field(default_factory=dict)  # escape hatch: KEDA chart values


def validate_autoscaler_args(args: AutoscalerArgs) -> list[str]:
    """Every problem with the args, each naming the field(s); empty when they are usable."""
    problems: list[str] = []
    if not _DNS_LABEL.match(args.namespace or ""):
        problems.append(f"namespace: {args.namespace!r} is not a valid namespace name")
    if not args.served_model_name:
        problems.append("served_model_name: must not be empty (it filters the queue metric)")
    if args.min_replicas < 0:
        problems.append(f"min_replicas: {args.min_replicas} is negative; use 0 or more")
    if args.max_replicas < 1:
        problems.append(f"max_replicas: {args.max_replicas} must be at least 1")
    if args.min_replicas > args.max_replicas:
        problems.append(
            f"min_replicas ({args.min_replicas}) and max_replicas ({args.max_replicas}): min_replicas "
            "must not exceed max_replicas; lower min_replicas or raise max_replicas"
        )
    if args.polling_interval_seconds < 1:
        problems.append("polling_interval_seconds: must be at least 1")
    if args.cooldown_seconds < 0:
        problems.append("cooldown_seconds: must be 0 or more")
    if not 0 <= args.scale_down_stabilization_seconds <= 3600:
        problems.append("scale_down_stabilization_seconds: must be between 0 and 3600 (the HPA's limit)")

    if args.signal is ScalingSignal.QUEUE_DEPTH:
        if args.target_queue_depth < 1:
            problems.append(f"target_queue_depth: {args.target_queue_depth} must be at least 1")
        if args.prometheus_url is None:
            problems.append("prometheus_url: the queue-depth signal is read from Prometheus; give its URL")
        elif isinstance(args.prometheus_url, str) and not args.prometheus_url.startswith(
            ("http://", "https://")
        ):
            problems.append(f"prometheus_url: {args.prometheus_url!r} must start with http:// or https://")
        if args.min_replicas == 0:
            if args.cold_start_hold is not None and args.envoy_route_hint is not None:
                problems.append(
                    "cold_start_hold and envoy_route_hint: give one wake-up signal; with a cold-start hold "
                    "the add-on's route wakes the model, so drop envoy_route_hint"
                )
            elif args.cold_start_hold is not None:
                hold = args.cold_start_hold
                if not _DNS_LABEL.match(hold.interceptor_route_name or ""):
                    problems.append(
                        f"cold_start_hold.interceptor_route_name: {hold.interceptor_route_name!r} is not a "
                        "valid object name"
                    )
                if not re.match(r"^[a-z0-9.-]+:[0-9]{1,5}$", hold.scaler_address or ""):
                    problems.append(
                        f"cold_start_hold.scaler_address: {hold.scaler_address!r} must be host:port, e.g. "
                        "keda-add-ons-http-external-scaler.keda:9090"
                    )
            elif args.envoy_route_hint is None:
                problems.append(
                    "cold_start_hold and min_replicas: scaling from zero needs a wake-up signal (no vLLM "
                    "metric exists while no replica runs); give cold_start_hold (the ColdStartHold "
                    "component's route) or set min_replicas to 1"
                )
            else:
                hint = args.envoy_route_hint
                for attr in ("gateway_namespace", "gateway_name", "route_namespace", "route_name"):
                    value = getattr(hint, attr)
                    # Envoy splits stat names on dots, so a dotted name would not survive as a label.
                    if not _DNS_LABEL.match(value or ""):
                        problems.append(
                            f"envoy_route_hint.{attr}: {value!r} must be a DNS label (lowercase letters, "
                            "digits, '-'; no dots)"
                        )
        if args.min_replicas > 0 and args.cold_start_hold is not None:
            problems.append(
                "cold_start_hold and min_replicas: a hold only matters for a model that scales to zero; "
                "drop cold_start_hold or set min_replicas to 0"
            )
    elif args.signal is ScalingSignal.CPU:
        if args.min_replicas == 0:
            problems.append(
                "signal and min_replicas: the cpu signal cannot wake a deployment from zero (no pod, no "
                "CPU to measure); use min_replicas >= 1 or the queue_depth signal"
            )
        if not 1 <= args.cpu_target_percent <= 100:
            problems.append(f"cpu_target_percent: {args.cpu_target_percent} must be between 1 and 100")
    else:
        problems.append(f"signal: {args.signal!r} is not one of {', '.join(s.value for s in ScalingSignal)}")

    if not args.install_keda and args.keda_values:
        problems.append(
            "install_keda and keda_values: KEDA is not installed, so keda_values would be ignored; drop "
            "keda_values or set install_keda"
        )
    return problems


def _promql_string(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _route_clusters(hint: EnvoyRouteHint) -> str:
    """The envoy_cluster_name matcher of the HTTPRoute's rules (`httproute/<ns>/<name>/rule/<n>`)."""
    return (
        f"envoy_cluster_name=~{_promql_string(f'httproute/{hint.route_namespace}/{hint.route_name}/rule/.+')}"
    )


def _gateway_scraped(hint: EnvoyRouteHint) -> str:
    """A one-element 0 that exists only while the Gateway's proxies are scraped (Envoy's `server.live`
    gauge is always exported), and is empty otherwise: the witness that an absent counter means
    "nothing happened" rather than "never scraped"."""
    return (
        "(sum(envoy_server_live{"
        f"gateway_envoyproxy_io_owning_gateway_namespace={_promql_string(hint.gateway_namespace)}, "
        f"gateway_envoyproxy_io_owning_gateway_name={_promql_string(hint.gateway_name)}"
        "}) * 0)"
    )


def _waiting(namespace: str, served_model_name: str, pod_name_prefix: str | None) -> str:
    """`sum(vllm:num_requests_waiting{...})` of this model's (or, with a prefix, this Deployment's) pods."""
    selector = f"namespace={_promql_string(namespace)}, model_name={_promql_string(served_model_name)}"
    if pod_name_prefix is not None:
        # A Deployment name is a DNS label: no regex metacharacter to escape.
        selector += f", pod=~{_promql_string(pod_name_prefix + '-[a-z0-9]+-[a-z0-9]+')}"
    return "sum(vllm:num_requests_waiting{" + selector + "})"


def queue_depth_query(
    namespace: str,
    served_model_name: str,
    hint: EnvoyRouteHint | None = None,
    pod_name_prefix: str | None = None,
) -> str:
    """Waiting requests of this model, summed over replicas; an empty result (a KEDA error) when the vLLM
    series is missing though it should exist.

    Without `hint` (min_replicas >= 1) the bare sum: a replica always runs. With `hint` (min_replicas 0)
    also 0 while Envoy sees no ready endpoint behind the route and the gateway is scraped - a deployment
    at zero is not "missing" - but still empty when the route has ready endpoints and no vLLM series."""
    waiting = _waiting(namespace, served_model_name, pod_name_prefix)
    if hint is None:
        return waiting
    ready = f"sum(envoy_cluster_membership_healthy{{{_route_clusters(hint)}}})"
    # `ready == 0` keeps a 0; `unless on() (ready)` drops the gateway witness whenever the route's cluster
    # exists at all, so a route with ready endpoints and no vLLM series stays empty.
    return f"{waiting} or ({ready} == 0) or ({_gateway_scraped(hint)} unless on() ({ready}))"


def held_queue_depth_query(
    namespace: str, served_model_name: str, deployment_name: str, pod_name_prefix: str | None = None
) -> str:
    """Waiting requests of a model behind a cold-start hold (min_replicas 0): the vLLM sum, or 0 while
    kube-state-metrics says the Deployment has no available replica; empty (a KEDA error, so the
    fallback wakes one replica) when replicas are available but no vLLM series exists, or when
    kube-state-metrics is not scraped either.

    The Envoy witness of queue_depth_query cannot serve here: the route's Envoy cluster is the
    interceptor's Service, whose endpoints are always ready. `kube_deployment_status_replicas_available`
    is kube-state-metrics' per-Deployment gauge (labels namespace, deployment), present whenever the
    Deployment exists and kube-state-metrics is scraped."""
    waiting = _waiting(namespace, served_model_name, pod_name_prefix)
    available = (
        "sum(kube_deployment_status_replicas_available{"
        f"namespace={_promql_string(namespace)}, deployment={_promql_string(deployment_name)}"
        "})"
    )
    return f"{waiting} or ({available} == 0)"


def external_push_trigger(hold: ColdStartHoldRef) -> dict[str, Any]:
    """The KEDA HTTP add-on's trigger (kedacore/http-add-on v0.15.0 scaler/handlers.go): its scaler reads
    the InterceptorRoute named here in the ScaledObject's namespace and pushes IsActive = "a request is
    in flight or held" over a stream, so the first held request wakes the Deployment within the
    scaler's streamInterval (200 ms by default). Its metric (in-flight requests per replica against the
    route's concurrency target) joins the queue-depth one; the HPA follows the larger."""
    return {
        "type": "external-push",
        "name": "wake-from-zero",
        "metadata": {
            "scalerAddress": hold.scaler_address,
            "interceptorRoute": hold.interceptor_route_name,
        },
    }


def wake_up_query(hint: EnvoyRouteHint) -> str:
    """0 when the gateway has seen nothing for this model in WAKE_WINDOW, otherwise a value in (0, 1];
    empty (a KEDA error, so the fallback wakes one replica) when the Gateway's proxies are not scraped."""
    served = f"sum(rate(envoy_cluster_upstream_rq_total{{{_route_clusters(hint)}}}[{WAKE_WINDOW}]))"
    refused = (
        "sum(rate(envoy_http_downstream_rq_xx{"
        'envoy_response_code_class="5", '
        f"gateway_envoyproxy_io_owning_gateway_namespace={_promql_string(hint.gateway_namespace)}, "
        f"gateway_envoyproxy_io_owning_gateway_name={_promql_string(hint.gateway_name)}"
        f"}}[{WAKE_WINDOW}]))"
    )
    scraped = _gateway_scraped(hint)
    return f"clamp_max(({served} or {scraped}) + ({refused} or {scraped}), 1)"


def _prometheus_trigger(name: str, server: str, query: str, threshold: str) -> dict[str, Any]:
    return {
        "type": "prometheus",
        "name": name,
        "metadata": {
            "serverAddress": server,
            "query": query,
            "threshold": threshold,
            "activationThreshold": "0",
            # No series is an error, not 0 (see "A missing metric is an error" above): the queries
            # answer 0 themselves where the absence is legitimate.
            "ignoreNullValues": "false",
        },
    }


def triggers(
    args: AutoscalerArgs, prometheus_url: str | None, deployment_name: str | None = None
) -> list[dict[str, Any]]:
    """The ScaledObject's triggers for these args (prometheus_url and deployment_name resolved)."""
    if args.signal is ScalingSignal.CPU:
        return [
            {
                "type": "cpu",
                "name": "cpu",
                "metricType": "Utilization",
                "metadata": {"value": str(args.cpu_target_percent)},
            }
        ]
    assert prometheus_url is not None
    if args.min_replicas == 0 and args.cold_start_hold is not None:
        assert deployment_name is not None
        return [
            _prometheus_trigger(
                "queue-depth",
                prometheus_url,
                held_queue_depth_query(
                    args.namespace, args.served_model_name, deployment_name, args.pod_name_prefix
                ),
                str(args.target_queue_depth),
            ),
            external_push_trigger(args.cold_start_hold),
        ]
    found = [
        _prometheus_trigger(
            "queue-depth",
            prometheus_url,
            queue_depth_query(
                args.namespace,
                args.served_model_name,
                args.envoy_route_hint if args.min_replicas == 0 else None,
                args.pod_name_prefix,
            ),
            str(args.target_queue_depth),
        )
    ]
    if args.min_replicas == 0:
        assert args.envoy_route_hint is not None
        found.append(
            _prometheus_trigger("wake-from-zero", prometheus_url, wake_up_query(args.envoy_route_hint), "1")
        )
    return found


def scaled_object_spec(
    args: AutoscalerArgs, deployment_name: str, prometheus_url: str | None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name},
        "minReplicaCount": args.min_replicas,
        "maxReplicaCount": args.max_replicas,
        "pollingInterval": args.polling_interval_seconds,
        "cooldownPeriod": args.cooldown_seconds,
        "advanced": {
            "horizontalPodAutoscalerConfig": {
                "behavior": {
                    # Scale out at once: a queue means clients are already waiting.
                    "scaleUp": {
                        "stabilizationWindowSeconds": 0,
                        "selectPolicy": "Max",
                        "policies": [
                            {"type": "Percent", "value": 100, "periodSeconds": 15},
                            {"type": "Pods", "value": 2, "periodSeconds": 15},
                        ],
                    },
                    # Scale in slowly, one replica a minute: a replica is expensive to bring back.
                    "scaleDown": {
                        "stabilizationWindowSeconds": args.scale_down_stabilization_seconds,
                        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                    },
                }
            }
        },
        "triggers": triggers(args, prometheus_url, deployment_name),
    }
    if args.signal is ScalingSignal.QUEUE_DEPTH:
        spec["fallback"] = {
            "failureThreshold": FALLBACK_FAILURE_THRESHOLD,
            "replicas": max(args.min_replicas, 1),
            "behavior": "currentReplicasIfHigher",
        }
    return spec


def keda_values() -> dict[str, Any]:
    """KEDA chart values: Pod Security "restricted" for the operator, metrics server and webhooks."""
    return {
        "securityContext": {part: dict(_RESTRICTED_CONTAINER) for part in _KEDA_PARTS},
        "podSecurityContext": {part: {"runAsNonRoot": True} for part in _KEDA_PARTS},
    }


class Autoscaler(pulumi.ComponentResource):
    """KEDA and one ScaledObject that owns the model server Deployment's replica count."""

    scaled_object_name: pulumi.Output[str]

    def __init__(self, name: str, args: AutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args("Autoscaler", name, validate_autoscaler_args(args))
        super().__init__("inferstack:autoscaler:Autoscaler", name, None, opts)

        depends_on: list[pulumi.Resource] = []
        if args.install_keda:
            # One KEDA per cluster: it registers the cluster's external metrics API.
            depends_on.append(
                helm_release(
                    f"{name}-keda",
                    KEDA,
                    namespace=KEDA_NAMESPACE,
                    values=keda_values(),
                    extra_values=args.keda_values,
                    # A multi-model stack installs the same release at the stack's top level
                    # (stacks/workload.py); going back to one model moves it here instead of installing a
                    # second one of that name (Helm refuses a name in use).
                    opts=child(self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]),
                )
            )

        url = (
            pulumi.Output.from_input(args.prometheus_url)
            if args.prometheus_url is not None
            else pulumi.Output.from_input(None)
        )
        spec = pulumi.Output.all(pulumi.Output.from_input(args.deployment_name), url).apply(
            lambda resolved: scaled_object_spec(args, resolved[0], resolved[1])
        )
        scaled_object = k8s.apiextensions.CustomResource(
            f"{name}-scaledobject",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata={"name": name, "namespace": args.namespace, "labels": labels(name, "autoscaler")},
            spec=spec,
            opts=child(self, depends_on=depends_on or None),
        )

        # The name is ours (the component's); resolving it through the resource orders readers after it.
        self.scaled_object_name = scaled_object.id.apply(lambda _: name)
        self.register_outputs({"scaled_object_name": self.scaled_object_name})
