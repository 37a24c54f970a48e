"""ModelRouting: one OpenAI endpoint for several models, routed by the request's `model` through Envoy AI Gateway.

Upstream read for every decision below: envoyproxy/ai-gateway at tag v1.1.0 and envoyproxy/gateway at
v1.8.3 (paths cited where used). What it makes, all in `namespace` unless said otherwise:

- the Envoy AI Gateway Helm release (ai-gateway-helm v1.1.0, namespace `envoy-ai-gateway-system`), its CRDs
  first from ai-gateway-crds-helm (components/_common.py CRD_UPGRADES), optional;
- one AIGatewayRoute attached to the Gateway's listener: per model one rule that matches
  `x-ai-eg-model: <model>` exactly and splits by weight, and per variant one *sticky* rule for the API
  clients assigned to it (`assign_variants`);
- per Service-backed variant an AIServiceBackend and the Envoy Gateway Backend it must point at;
- the HTTPRouteFilter that answers an unknown model with the OpenAI 404 error body;
- an EnvoyExtensionPolicy (Lua) on the generated HTTPRoute that sets `x-inferstack-variant` on responses.

How a request is routed (AI Gateway v1.1.0): the router-level ext_proc reads the JSON body, sets the
`x-ai-eg-model` request header and clears the route cache, so Envoy matches the route again with it
(api/v1beta1/ai_gateway_route.go, AIGatewayRouteSpec.Rules). Envoy Gateway runs the API-key filter (which
writes the client-id header) before every ext_proc filter (internal/xds/translator/httpfilters.go
newOrderedHTTPFilter: api_key_auth order 6, ext_proc 100+; AI Gateway inserts its filter "as the first
extproc filter", internal/extensionserver/post_translate_modify.go insertRouterLevelAIGatewayExtProc), so
that second match sees both headers. The controller turns the AIGatewayRoute into an HTTPRoute of the same
name (internal/controller/ai_gateway_route.go newHTTPRoute), whose rules Envoy Gateway orders by the
Gateway API precedence: equal paths, then more header matches first (internal/gatewayapi/sort.go). A sticky
rule (model + client id) therefore wins over its model's weighted rule (model only).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._common import (
    AI_GATEWAY,
    NONROOT_CONTAINER_SECURITY_VALUES,
    child,
    helm_release,
    labels,
    reject_invalid_args,
)
from components.load_balancer import CLIENT_ID_HEADER, HTTPS_LISTENER, gateway_api_ref

#: Where the AI Gateway controller runs (the namespace of the upstream install guide and of
#: manifests/envoy-gateway-values.yaml's extension-manager address).
AI_GATEWAY_NAMESPACE = "envoy-ai-gateway-system"
#: The chart's controller Service name (values.yaml controller.fullnameOverride "ai-gateway-controller") and
#: its extension-server port (controller.service.ports "grpc" 1063): Envoy Gateway calls it for every xDS
#: translation (manifests/envoy-gateway-values.yaml extensionManager.service).
AI_GATEWAY_CONTROLLER_SERVICE = "ai-gateway-controller"
AI_GATEWAY_EXTENSION_PORT = 1063
#: The header the AI Gateway filter sets from the body's `model` (internal/internalapi
#: ModelNameHeaderKeyDefault); rules match on it.
MODEL_HEADER = "x-ai-eg-model"
#: Response header naming the variant that served the request.
VARIANT_HEADER = "x-inferstack-variant"
#: Dynamic-metadata namespace and key where the AI Gateway filter records the backend it chose, during
#: decode "so that it is readable on the response path" (internal/extproc/processor_impl.go
#: buildBackendDynamicMetadata; api/v1beta1/shared_types.go AIGatewayFilterMetadataNamespace). Its value is
#: "<namespace>/<backend name>/route/<route>/rule/<i>/ref/<j>" (internal/internalapi PerRouteRuleRefBackendName);
#: the upstream access-log examples read the same key (examples/access-log/basic.yaml).
AI_GATEWAY_METADATA_NAMESPACE = "io.envoy.ai_gateway"
AI_GATEWAY_BACKEND_NAME_KEY = "backend_name"
#: AIGatewayRoute CRD: at most 15 rules (one HTTPRoute slot is the controller's catch-all).
MAX_RULES = 15
#: The catch-all rule the controller appends, and the HTTPRouteFilter it points at, named
#: `ai-eg-route-not-found-response-<route>` (internal/controller/ai_gateway_route.go).
ROUTE_NOT_FOUND_FILTER_PREFIX = "ai-eg-route-not-found-response-"
#: What clients get for a model the stack does not serve: OpenAI's own error shape and status for an
#: unknown model (the API answers 404 with code "model_not_found").
UNKNOWN_MODEL_STATUS = 404
UNKNOWN_MODEL_BODY: dict[str, Any] = {
    "error": {
        "message": "The model requested does not exist on this endpoint; GET /v1/models lists the models served.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
}
#: Resolution of the stable per-client bucket: 10,000 buckets, so a weight step of 1 % moves 100 buckets.
BUCKETS = 10_000
INFERENCE_POOL_GROUP = "inference.networking.k8s.io"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
#: Model names as OpenAI clients send them: printable, no whitespace (e.g. "meta-llama/Llama-3.1-8B").
_MODEL_NAME = re.compile(r"^[\x21-\x7e]{1,253}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_LLM_COST_TYPES = frozenset(
    {"InputToken", "CachedInputToken", "CacheCreationInputToken", "OutputToken", "TotalToken", "CEL"}
)


@dataclass(frozen=True, kw_only=True)
class ServiceBackend:
    """A variant served by a Kubernetes Service in the route's namespace (the CPU engine, or one replica)."""

    service_name: str  # the model server's Service (components/model_server.py)
    port: int  # its HTTP port
    # The Service's namespace when it is not the route's: the KEDA HTTP add-on's interceptor, which holds a
    # model's requests while it scales from zero (components/cold_start_hold.py hold_backend).
    namespace: str | None = None
    # Request headers set on the way to this backend (AIGatewayRoute backendRef headerMutation.set), e.g.
    # the header that selects the model's InterceptorRoute. Not applied to InferencePool backends.
    set_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class InferencePoolBackend:
    """A variant served through an InferencePool (inference.networking.k8s.io/v1) in the route's namespace."""

    pool_name: str


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One version of a model and its share of traffic."""

    name: str  # DNS label, e.g. "v1"; also the value of the x-inferstack-variant response header
    weight: int  # percent of the model's traffic, 0-100; a model's variants sum to 100
    backend: ServiceBackend | InferencePoolBackend
    # The name the engine serves this variant under, when it differs from the public model name
    # (AIGatewayRoute backendRef modelNameOverride; ignored by AI Gateway for InferencePool backends).
    model_name_override: str | None = None


@dataclass(frozen=True, kw_only=True)
class RoutedModel:
    """A public model name and the variants behind it."""

    name: str  # what clients send as `model` and what GET /v1/models lists
    variants: list[Variant]
    owned_by: str = "inferstack"  # /v1/models `owned_by` (AIGatewayRoute rule modelsOwnedBy)
    created_at: str | None = (
        None  # RFC 3339; /v1/models `created` (modelsCreatedAt); None: the route's creation
    )


@dataclass(frozen=True, kw_only=True)
class ModelRoutingArgs:
    """Route by the OpenAI `model` field behind an existing Gateway (components/load_balancer.py)."""

    namespace: str  # the Gateway's and model servers' namespace; every object here lives in it
    gateway_name: str  # the Gateway to attach to (LoadBalancer.gateway_name)
    hostnames: list[str]  # the hostnames the route answers for (the Gateway listener's)
    models: list[RoutedModel]
    client_ids: list[str]  # the API clients the key filter knows (LoadBalancerArgs.api_key_clients)
    listener_name: str = HTTPS_LISTENER  # the Gateway listener (sectionName) to attach to
    client_id_header: str = CLIENT_ID_HEADER  # header carrying the authenticated client id
    request_timeout_seconds: int = 600  # whole-request ceiling; streamed answers stay open this long
    # AIGatewayRoute spec.llmRequestCosts, as given: [{"metadataKey": ..., "type": "InputToken"|...}]; the
    # token-quota part passes the keys its rate-limit rules read.
    llm_request_costs: list[dict[str, Any]] = field(default_factory=list)
    install_ai_gateway: bool = True  # install the pinned chart; False: one already runs in the cluster
    controller_replicas: int = 2  # AI Gateway controller pods (extension server + webhook in each)
    # cert-manager issues and renews the controller's webhook certificate (it must run in the cluster, and
    # the release wait for it: put it in depends_on); False: the chart's own 365-day certificate.
    webhook_cert_manager: bool = False
    ai_gateway_values: dict[str, Any] = field(default_factory=dict)  # escape hatch, merged over ours
    crd_provider: pulumi.ProviderResource | None = (
        None  # the "cluster-crds" provider (_common.cluster_providers)
    )
    # Resources the routed objects must wait for (the Gateway, the Envoy Gateway release).
    # spec.extProc entries for the route's one EnvoyExtensionPolicy (Envoy Gateway v1.8.3 attaches one per
    # route), e.g. the content-filter guardrail's (components/guardrail.py guardrail_ext_proc).
    ext_proc: list[dict[str, Any]] = field(default_factory=list)
    depends_on: list[pulumi.Resource] = field(default_factory=list)


# --- pure functions -----------------------------------------------------------------------------------


def client_bucket(model: str, client: str) -> int:
    """A client's stable position for one model, in [0, BUCKETS): sha256 of "model NUL client".

    Independent of the variants and their weights, so it never changes for a (model, client) pair; a
    different model shuffles clients independently. sha256, not Python's hash(), which is salted per
    process.
    """
    digest = hashlib.sha256(f"{model}\0{client}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign_variants(model: str, weights: Sequence[tuple[str, int]], clients: Sequence[str]) -> dict[str, str]:
    """Each client -> the variant that serves it, for one model: client_bucket on cumulative weights.

    `weights` is [(variant, percent)] in declared order, summing to 100. Variant i owns the buckets
    [100 * (w_0 + ... + w_{i-1}), 100 * (w_0 + ... + w_i)). Properties (tests/components/test_model_routing.py):
    deterministic; every client gets exactly one variant, never one of weight 0; when weight moves from
    one variant to a variant next to it in the declared order, only clients of the one that lost move, and
    only onto the one that gained (with two variants, every step is such a move). Raises ValueError when
    the weights do not sum to 100.
    """
    total = sum(w for _, w in weights)
    if total != 100 or any(w < 0 for _, w in weights):
        raise ValueError(f"weights of model {model!r} must be >= 0 and sum to 100, not {total}")
    bounds: list[tuple[int, str]] = []
    cumulative = 0
    for variant, weight in weights:
        cumulative += weight
        bounds.append((cumulative * (BUCKETS // 100), variant))
    assignment: dict[str, str] = {}
    for client in clients:
        bucket = client_bucket(model, client)
        assignment[client] = next(variant for upper, variant in bounds if bucket < upper)
    return assignment


def slug(text: str) -> str:
    """A DNS-label fragment for `text`: lowercase, runs of other characters as '-', plus an 8-hex hash of
    `text` when anything was changed (so "Llama-3.1" and "llama-3-1" stay apart)."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"
    if cleaned == text:
        return cleaned
    return f"{cleaned[:40].rstrip('-')}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def backend_object_name(route_name: str, model: str, variant: str) -> str:
    """The AIServiceBackend / Backend name of one Service-backed variant: stable, unique per model and
    variant, at most 63 characters (a hash keeps long names apart)."""
    name = f"{route_name}-{slug(model)}-{variant}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[:52].rstrip('-')}-{digest}"


def variant_backend_name(route_name: str, model: RoutedModel, variant: Variant) -> str:
    """The name the AIGatewayRoute's backendRef carries for a variant (AIServiceBackend or InferencePool)."""
    if isinstance(variant.backend, InferencePoolBackend):
        return variant.backend.pool_name
    return backend_object_name(route_name, model.name, variant.name)


def _rule_name(model: RoutedModel, variant: Variant | None) -> str:
    return f"{slug(model.name)}-{variant.name}-clients" if variant is not None else f"{slug(model.name)}-all"


def _regex_literal(text: str) -> str:
    """`text` as an RE2 pattern that matches only itself (Envoy Gateway compiles header regexes with RE2)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$-])", r"\\\1", text)


def sticky_rule_count(model: RoutedModel, clients: Sequence[str]) -> int:
    if len(model.variants) < 2:
        return 0
    assignment = assign_variants(model.name, [(v.name, v.weight) for v in model.variants], clients)
    return len(set(assignment.values()))


def validate_model_routing_args(args: ModelRoutingArgs) -> list[str]:
    """Every problem with `args`, each starting with the field it is about; empty when they are usable."""
    problems: list[str] = []
    if not _DNS_LABEL.match(args.namespace):
        problems.append(f"namespace: {args.namespace!r} is not a Kubernetes namespace name")
    if not _DNS_LABEL.match(args.gateway_name):
        problems.append(f"gateway_name: {args.gateway_name!r} is not a Gateway name (a DNS label)")
    if not _DNS_LABEL.match(args.listener_name):
        problems.append(f"listener_name: {args.listener_name!r} is not a listener name (a DNS label)")
    if not args.hostnames or len(args.hostnames) > 16:
        problems.append("hostnames: give 1 to 16 hostnames (AIGatewayRoute limit)")
    for host in args.hostnames:
        if not _DNS_NAME.match(host):
            problems.append(f"hostnames: {host!r} is not a lowercase DNS name (e.g. llm.example.com)")
    if not 1 <= args.request_timeout_seconds <= 99999:
        problems.append("request_timeout_seconds: must be between 1 and 99999")
    if args.controller_replicas < 1:
        problems.append("controller_replicas: at least one controller is needed (Envoy Gateway calls it)")
    if not args.client_ids:
        problems.append("client_ids: at least one API client id is needed (variants are assigned per client)")
    for client in args.client_ids:
        if not _DNS_LABEL.match(client) or len(client) > 63:
            problems.append(f"client_ids: {client!r} must be a lowercase DNS label (letters, digits, '-')")
    if len(set(args.client_ids)) != len(args.client_ids):
        problems.append(
            f"client_ids: duplicate ids {sorted({c for c in args.client_ids if args.client_ids.count(c) > 1})}"
        )
    for i, cost in enumerate(args.llm_request_costs):
        where = f"llm_request_costs[{i}]"
        if not isinstance(cost.get("metadataKey"), str) or not cost.get("metadataKey"):
            problems.append(f"{where}.metadataKey: a non-empty metadata key is required")
        if cost.get("type") not in _LLM_COST_TYPES:
            problems.append(f"{where}.type: {cost.get('type')!r} is not one of {sorted(_LLM_COST_TYPES)}")
        if cost.get("type") == "CEL" and not cost.get("cel"):
            problems.append(f"{where}.cel: type CEL needs a cel expression")
    if len(args.llm_request_costs) > 36:
        problems.append("llm_request_costs: at most 36 entries (AIGatewayRoute limit)")

    if not args.models:
        problems.append("models: at least one model is needed")
    names = [m.name for m in args.models]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"models: {dup!r} is listed twice; each public model name routes once")
    backend_names: dict[str, str] = {}
    for i, model in enumerate(args.models):
        where = f"models[{i}]"
        if not _MODEL_NAME.match(model.name):
            problems.append(f"{where}.name: {model.name!r} must be 1-253 printable characters without spaces")
        if model.created_at is not None and not _RFC3339.match(model.created_at):
            problems.append(
                f"{where}.created_at: {model.created_at!r} is not RFC 3339 (2024-05-21T10:00:00Z)"
            )
        if not model.variants:
            problems.append(f"{where}.variants: at least one variant is needed")
            continue
        variant_names = [v.name for v in model.variants]
        for dup in sorted({n for n in variant_names if variant_names.count(n) > 1}):
            problems.append(f"{where}.variants: variant name {dup!r} is used twice")
        total = sum(v.weight for v in model.variants)
        if total != 100:
            problems.append(
                f"{where}.variants: weights sum to {total}, not 100 "
                f"({', '.join(f'{v.name}={v.weight}' for v in model.variants)}); make them add up to 100"
            )
        kinds = {type(v.backend) for v in model.variants}
        for j, variant in enumerate(model.variants):
            vwhere = f"{where}.variants[{j}]"
            if not _DNS_LABEL.match(variant.name) or len(variant.name) > 20:
                problems.append(
                    f"{vwhere}.name: {variant.name!r} must be a lowercase DNS label of <= 20 characters"
                )
            if not 0 <= variant.weight <= 100:
                problems.append(f"{vwhere}.weight: {variant.weight} must be between 0 and 100 (percent)")
            backend = variant.backend
            if isinstance(backend, ServiceBackend):
                if not _DNS_LABEL.match(backend.service_name):
                    problems.append(
                        f"{vwhere}.backend.service_name: {backend.service_name!r} is not a Service name"
                    )
                if not 1 <= backend.port <= 65535:
                    problems.append(f"{vwhere}.backend.port: {backend.port} is not a port (1-65535)")
            elif not _DNS_LABEL.match(backend.pool_name):
                problems.append(
                    f"{vwhere}.backend.pool_name: {backend.pool_name!r} is not an InferencePool name"
                )
            if isinstance(backend, InferencePoolBackend) and variant.model_name_override:
                problems.append(
                    f"{vwhere}.model_name_override: AI Gateway ignores it for InferencePool backends "
                    "(api/v1beta1 AIGatewayRouteRuleBackendRef); serve the public name from the engine instead"
                )
            if isinstance(backend, InferencePoolBackend):
                key = backend.pool_name
                owner = backend_names.setdefault(key, f"{model.name}/{variant.name}")
                if owner != f"{model.name}/{variant.name}":
                    problems.append(
                        f"{vwhere}.backend.pool_name: {key!r} already serves {owner}; each variant needs its own "
                        "pool so the response header can name it"
                    )
        if len(kinds) > 1:
            problems.append(
                f"{where}.variants: mixes Service and InferencePool backends; AI Gateway cannot mix them in "
                "one rule (AIGatewayRouteRule CEL 'cannot mix InferencePool and AIServiceBackend references')"
            )
    if not problems:
        rules = len(args.models) + sum(sticky_rule_count(m, args.client_ids) for m in args.models)
        if rules > MAX_RULES:
            problems.append(
                f"models: {rules} route rules needed (one per model, one per variant that has clients), but an "
                f"AIGatewayRoute holds at most {MAX_RULES}; use fewer variants or split the models over two "
                "ModelRouting components"
            )
        rule_names = [_rule_name(m, None) for m in args.models] + [
            _rule_name(m, v) for m in args.models if len(m.variants) > 1 for v in m.variants
        ]
        for dup in sorted({n for n in rule_names if rule_names.count(n) > 1}):
            problems.append(
                f"models: two models map to the same rule name {dup!r}; rename a model or variant"
            )
    return problems


def _backend_ref(route_name: str, model: RoutedModel, variant: Variant, weight: int) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": variant_backend_name(route_name, model, variant), "weight": weight}
    if isinstance(variant.backend, InferencePoolBackend):
        ref.update({"group": INFERENCE_POOL_GROUP, "kind": "InferencePool"})
        return ref
    if variant.model_name_override:
        ref["modelNameOverride"] = variant.model_name_override
    if variant.backend.set_headers:
        ref["headerMutation"] = {
            "set": [{"name": k, "value": v} for k, v in sorted(variant.backend.set_headers.items())]
        }
    return ref


def route_rules(route_name: str, args: ModelRoutingArgs) -> list[dict[str, Any]]:
    """The AIGatewayRoute rules: per model one `<model>-all` rule, then one `<model>-<variant>-clients` rule
    per variant that has clients (models with two or more variants only).

    /v1/models: the controller lists one model per header match of `x-ai-eg-model` whose type is Exact
    (or unset) in any rule, with no de-duplication (internal/controller/gateway.go, the loop that fills
    ec.Models; the list is served as is by internal/extproc/models_processor.go, which is why
    envoyproxy/ai-gateway#1485 shows a model twice). It is read from the route, not from endpoints, so a
    model scaled to zero is listed too. Hence only the `-all` rule matches the model Exactly; the sticky
    rules match it with an anchored RegularExpression, which routes the same requests but declares nothing.

    The `-all` rule carries every request of the model that no sticky rule took (no or unknown client id):
    a weighted split over Service variants. AI Gateway allows only one InferencePool per rule (AIGatewayRouteRule
    CEL), so for pool-backed variants it goes to the variant of the highest weight; the stickiness rules
    carry the split, and every request through the stack's API-key filter has a known client id.
    """
    timeout = f"{args.request_timeout_seconds}s"
    timeouts = {"request": timeout, "backendRequest": timeout}
    rules: list[dict[str, Any]] = []
    sticky: list[dict[str, Any]] = []
    for model in args.models:
        pools = isinstance(model.variants[0].backend, InferencePoolBackend)
        if pools:
            top = max(model.variants, key=lambda v: v.weight)
            refs = [_backend_ref(route_name, model, top, 1)]
        else:
            refs = [_backend_ref(route_name, model, v, v.weight) for v in model.variants if v.weight > 0]
        rule: dict[str, Any] = {
            "name": _rule_name(model, None),
            "matches": [{"headers": [{"type": "Exact", "name": MODEL_HEADER, "value": model.name}]}],
            "backendRefs": refs,
            "timeouts": timeouts,
            "modelsOwnedBy": model.owned_by,
        }
        if model.created_at is not None:
            rule["modelsCreatedAt"] = model.created_at
        rules.append(rule)
        if len(model.variants) < 2:
            continue
        assignment = assign_variants(
            model.name, [(v.name, v.weight) for v in model.variants], args.client_ids
        )
        for variant in model.variants:
            clients = [c for c in args.client_ids if assignment[c] == variant.name]
            if not clients:
                continue
            sticky.append(
                {
                    "name": _rule_name(model, variant),
                    "matches": [
                        {
                            "headers": [
                                {
                                    "type": "RegularExpression",
                                    "name": MODEL_HEADER,
                                    "value": f"^{_regex_literal(model.name)}$",
                                },
                                {
                                    "type": "RegularExpression",
                                    "name": args.client_id_header,
                                    "value": "^(" + "|".join(_regex_literal(c) for c in clients) + ")$",
                                },
                            ]
                        }
                    ],
                    "backendRefs": [_backend_ref(route_name, model, variant, 1)],
                    "timeouts": timeouts,
                }
            )
    return rules + sticky


def ai_gateway_route_spec(route_name: str, args: ModelRoutingArgs) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "parentRefs": [
            {
                **gateway_api_ref("Gateway", args.gateway_name, args.namespace),
                "sectionName": args.listener_name,
            }
        ],
        "hostnames": list(args.hostnames),
        "rules": route_rules(route_name, args),
    }
    if args.llm_request_costs:
        spec["llmRequestCosts"] = [dict(c) for c in args.llm_request_costs]
    return spec


def envoy_backend_spec(namespace: str, backend: ServiceBackend) -> dict[str, Any]:
    """The Envoy Gateway Backend an AIServiceBackend must name: AIServiceBackend.spec.backendRef accepts
    only gateway.envoyproxy.io Backend in v1.1.0 (CEL on the field; a Service "will be supported in the
    future", envoyproxy/ai-gateway#902), so the in-cluster Service is reached by its cluster DNS name, as
    examples/basic/basic.yaml does. Needs Envoy Gateway's extensionApis.enableBackend."""
    return {
        "endpoints": [
            {
                "fqdn": {
                    "hostname": f"{backend.service_name}.{backend.namespace or namespace}.svc.cluster.local",
                    "port": backend.port,
                }
            }
        ]
    }


def ai_service_backend_spec(backend_name: str) -> dict[str, Any]:
    return {
        "schema": {"name": "OpenAI"},  # vLLM and transformers serve the OpenAI API
        "backendRef": {"name": backend_name, "kind": "Backend", "group": "gateway.envoyproxy.io"},
    }


def unknown_model_filter_spec() -> dict[str, Any]:
    """The HTTPRouteFilter the AIGatewayRoute's catch-all rule uses, with the OpenAI error body.

    AI Gateway v1.1.0 appends a rule `route-not-found` (path prefix only, no header: the lowest precedence)
    pointing at the HTTPRouteFilter `ai-eg-route-not-found-response-<route>`, and creates that filter only
    when it does not exist: it Gets it, Creates it on NotFound and never updates it
    (internal/controller/ai_gateway_route.go syncAIGatewayRoute). Its own body is the plain text "No
    matching route found. It is likely because the model specified in your request is not configured in
    the Gateway." with status 404. Creating the filter ourselves, before the AIGatewayRoute, gives the
    catch-all our body; a second route of our own could not, since it would tie with that rule on
    precedence (same path, no headers) and the older route would win.
    """
    return {
        "directResponse": {
            "statusCode": UNKNOWN_MODEL_STATUS,
            "contentType": "application/json",
            "body": {"type": "Inline", "inline": json.dumps(UNKNOWN_MODEL_BODY, separators=(",", ":"))},
        }
    }


def variant_header_lua(namespace: str, route_name: str, models: list[RoutedModel]) -> str:
    """Lua for the response path: read the backend AI Gateway chose from its dynamic metadata and set
    VARIANT_HEADER to that backend's variant name. AI Gateway inserts its router filter before the first
    lua filter (ai-gateway v1.1.0 post_translate_modify.go, afterExtProcFilterPrefixes), so on responses
    this runs before it; the metadata is there all the same: the upstream filter writes it in the request
    headers phase into the downstream stream info (processor_impl.go), which every filter reads."""
    table = {
        f"{namespace}/{variant_backend_name(route_name, m, v)}": v.name for m in models for v in m.variants
    }
    entries = ", ".join(f'["{key}"] = "{value}"' for key, value in sorted(table.items()))
    return (
        f"local variants = {{{entries}}}\n"
        "function envoy_on_response(response_handle)\n"
        f'  local md = response_handle:streamInfo():dynamicMetadata():get("{AI_GATEWAY_METADATA_NAMESPACE}")\n'
        '  if type(md) ~= "table" then return end\n'
        f'  local backend = md["{AI_GATEWAY_BACKEND_NAME_KEY}"]\n'
        '  if type(backend) ~= "string" then return end\n'
        '  local variant = variants[string.match(backend, "^[^/]+/[^/]+")]\n'
        f'  if variant ~= nil then response_handle:headers():replace("{VARIANT_HEADER}", variant) end\n'
        "end\n"
    )


#: ai-gateway-helm v1.1.0 values.yaml `controller.metricsRequestHeaderAttributes` ("header:attribute"): the
#: client id header becomes the metric attribute `inferstack.client_id`, which the OTel Prometheus exporter
#: writes as the label `inferstack_client_id` (dots to underscores).
CLIENT_ID_METRICS_HEADER_ATTRIBUTES = f"{CLIENT_ID_HEADER}:inferstack.client_id"


def ai_gateway_values(controller_replicas: int, webhook_cert_manager: bool = False) -> dict[str, Any]:
    """The ai-gateway-helm v1.1.0 values we decide; every key exists in its values.yaml."""
    # The chart's default, written out (setting it replaces the default wholesale).
    container_security = copy.deepcopy(NONROOT_CONTAINER_SECURITY_VALUES)
    values: dict[str, Any] = {
        # Every replica serves the extension server and the webhook (cmd/controller/main.go starts the gRPC
        # extension server outside leader election; reconcilers are leader-elected), so two keep xDS
        # translation answering through a node drain.
        "controller": {
            "replicaCount": controller_replicas,
            "podSecurityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "securityContext": container_security,
            # The chart sets none; a controller without requests is the first evicted under pressure.
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
            # The API client's id (set by the gateway's API-key filter, which Envoy Gateway runs before any
            # ext_proc) as an attribute of AI Gateway's GenAI metrics: the per-client request and token
            # panels (components/dashboards.py) read it as the label `inferstack_client_id`.
            "metricsRequestHeaderAttributes": CLIENT_ID_METRICS_HEADER_ATTRIBUTES,
        },
    }
    if controller_replicas > 1:
        values["controller"]["podDisruptionBudget"] = {"enabled": True, "minAvailable": 1}
    if webhook_cert_manager:
        # Without it the chart signs the pod-mutating webhook's certificate itself for 365 days and reuses
        # that Secret on every upgrade (templates/admission_webhook.yaml: genSignedCert ... 365, lookup): a
        # year on, the webhook (failurePolicy Fail, on every Envoy Gateway-managed pod) refuses every new
        # Envoy proxy pod. With cert-manager the chart makes an Issuer and a Certificate that cert-manager
        # renews, and the controller reloads the rotated certificate (cmd/controller/main.go cert watcher).
        values["controller"].setdefault("mutatingWebhook", {})["certManager"] = {"enable": True}
    return values


def envoy_gateway_values_for_ai_gateway(inference_pool: bool = True) -> dict[str, Any]:
    """Envoy Gateway Helm values AI Gateway v1.1.0 needs, to merge into components/load_balancer.py's
    envoy_gateway_values() (keys under config.envoyGateway, which gateway-helm passes through as the
    EnvoyGateway configuration; api/v1alpha1/envoygateway_types.go at v1.8.3).

    From envoyproxy/ai-gateway v1.1.0 manifests/envoy-gateway-values.yaml ("the minimal configuration that
    all AI Gateway deployments need") and, with `inference_pool`, examples/inference-pool/
    envoy-gateway-values-addon.yaml. Left out: `enableEnvoyPatchPolicy` ("not strictly required"), which
    would let any namespace patch raw xDS; logging and provider (Envoy Gateway's defaults already).
    """
    extension_manager: dict[str, Any] = {
        # AI Gateway rewrites listeners, routes and clusters (ext_proc, per-backend metadata, InferencePool
        # clusters) in these xDS hooks.
        "hooks": {
            "xdsTranslator": {
                "translation": {
                    "listener": {"includeAll": True},
                    "route": {"includeAll": True},
                    "cluster": {"includeAll": True},
                    "secret": {"includeAll": True},
                },
                "post": ["Translation", "Cluster", "Route"],
            }
        },
        "service": {
            "fqdn": {
                "hostname": f"{AI_GATEWAY_CONTROLLER_SERVICE}.{AI_GATEWAY_NAMESPACE}.svc.cluster.local",
                "port": AI_GATEWAY_EXTENSION_PORT,
            }
        },
    }
    if inference_pool:
        extension_manager["backendResources"] = [
            {"group": INFERENCE_POOL_GROUP, "kind": "InferencePool", "version": "v1"}
        ]
    return {
        "config": {
            "envoyGateway": {
                # AIServiceBackend must point at an Envoy Gateway Backend (envoy_backend_spec).
                "extensionApis": {"enableBackend": True},
                "extensionManager": extension_manager,
            }
        }
    }


# --- the component ------------------------------------------------------------------------------------


class ModelRouting(pulumi.ComponentResource):
    """One AIGatewayRoute for every model of the stack, sticky A/B variants, OpenAI 404 for unknown models."""

    route_name: pulumi.Output[str]
    assignments: pulumi.Output[dict[str, dict[str, str]]]

    def __init__(self, name: str, args: ModelRoutingArgs, opts: pulumi.ResourceOptions | None = None):
        reject_invalid_args("ModelRouting", name, validate_model_routing_args(args))
        super().__init__("inferstack:model_routing:ModelRouting", name, None, opts)
        ns = args.namespace
        meta_labels = labels(name, "model-routing")

        def meta(object_name: str) -> dict[str, Any]:
            return {"name": object_name, "namespace": ns, "labels": meta_labels}

        after: list[pulumi.Resource] = list(args.depends_on)
        if args.install_ai_gateway:
            release = helm_release(
                f"{name}-ai-gateway",
                AI_GATEWAY,
                namespace=AI_GATEWAY_NAMESPACE,
                values=ai_gateway_values(args.controller_replicas, args.webhook_cert_manager),
                extra_values=args.ai_gateway_values,
                crd_provider=args.crd_provider,
                opts=child(self, depends_on=list(args.depends_on)),
            )
            after.append(release)

        backends: list[pulumi.Resource] = []
        for model in args.models:
            for variant in model.variants:
                if not isinstance(variant.backend, ServiceBackend):
                    continue
                object_name = backend_object_name(name, model.name, variant.name)
                role = f"{slug(model.name)}-{variant.name}"
                eg_backend = k8s.apiextensions.CustomResource(
                    f"{name}-backend-{role}",
                    api_version="gateway.envoyproxy.io/v1alpha1",
                    kind="Backend",
                    metadata=meta(object_name),
                    spec=envoy_backend_spec(ns, variant.backend),
                    opts=child(self, depends_on=after),
                )
                backends.append(
                    k8s.apiextensions.CustomResource(
                        f"{name}-ai-backend-{role}",
                        api_version="aigateway.envoyproxy.io/v1beta1",
                        kind="AIServiceBackend",
                        metadata=meta(object_name),
                        spec=ai_service_backend_spec(object_name),
                        opts=child(self, depends_on=[*after, eg_backend]),
                    )
                )

        # Before the route: the controller then finds it and keeps it (unknown_model_filter_spec).
        not_found = k8s.apiextensions.CustomResource(
            f"{name}-unknown-model",
            api_version="gateway.envoyproxy.io/v1alpha1",
            kind="HTTPRouteFilter",
            metadata=meta(f"{ROUTE_NOT_FOUND_FILTER_PREFIX}{name}"),
            spec=unknown_model_filter_spec(),
            opts=child(self, depends_on=after),
        )
        route = k8s.apiextensions.CustomResource(
            f"{name}-route",
            api_version="aigateway.envoyproxy.io/v1beta1",
            kind="AIGatewayRoute",
            metadata=meta(name),
            spec=ai_gateway_route_spec(name, args),
            opts=child(self, depends_on=[*after, *backends, not_found]),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-variant-header",
            api_version="gateway.envoyproxy.io/v1alpha1",
            kind="EnvoyExtensionPolicy",
            metadata=meta(f"{name}-variant-header"),
            spec={
                # The HTTPRoute the controller generates carries the AIGatewayRoute's name. The route's only
                # EnvoyExtensionPolicy (Envoy Gateway v1.8.3 attaches one per route, a second is Conflicted):
                # the variant header's Lua and any extProc (the guardrail) together.
                "targetRefs": [gateway_api_ref("HTTPRoute", name)],
                "lua": [{"type": "Inline", "inline": variant_header_lua(ns, name, args.models)}],
                **({"extProc": list(args.ext_proc)} if args.ext_proc else {}),
            },
            opts=child(self, depends_on=[*after, route]),
        )

        assignments = {
            m.name: assign_variants(m.name, [(v.name, v.weight) for v in m.variants], args.client_ids)
            for m in args.models
        }
        self.route_name = pulumi.Output.from_input(name)
        self.assignments = pulumi.Output.from_input(assignments)
        self.register_outputs({"route_name": self.route_name, "assignments": self.assignments})
