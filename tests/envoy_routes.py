"""An Envoy bootstrap generated from a planned AIGatewayRoute, for running its route table in a real Envoy
on loopback (tests/model_image/test_two_models.py, `make e2e`).

What is translated as Envoy Gateway and Envoy AI Gateway would (envoyproxy/ai-gateway v1.1.0,
envoyproxy/gateway v1.8.3, the versions components/model_routing.py pins):
- AI Gateway's controller turns the AIGatewayRoute into an HTTPRoute of the same name: each rule keeps its
  header matches and gets the path prefix "/", its backendRefs become the AIServiceBackends' Backends with
  their weights, and a last rule `route-not-found` (prefix "/", no headers) points at the HTTPRouteFilter
  `ai-eg-route-not-found-response-<route>` (internal/controller/ai_gateway_route.go newHTTPRoute).
- Envoy Gateway orders the routes by Gateway API precedence: with equal paths, more header matches first,
  then more Exact header matches; ties keep their order (internal/gatewayapi/sort.go, a stable sort). A
  header match Exact is Envoy's `exact`, RegularExpression its RE2 `safe_regex`. The rule's timeout is
  `backendRequest` when set and no retry is configured, else `request` (internal/gatewayapi/route.go
  processRouteTimeout). An HTTPRouteFilter's directResponse is a direct_response with its contentType as
  the Content-Type header (internal/gatewayapi/filters.go).
- Each Backend's `fqdn` endpoint is a cluster whose address the caller gives (the planned pod's published
  port on this host: there is no cluster DNS here).

What is a stand-in, because AI Gateway's external processor (a Go binary) does not run here:
- `x-ai-eg-model`: AI Gateway's router-level ext_proc reads the JSON body's `model`, sets that header and
  clears the route cache so Envoy matches again (internal/extproc/processor_impl.go). Here a Lua filter
  does the same with a string pattern on the buffered body (STAND_IN_LUA): enough for the JSON the openai
  client sends, not a JSON parser.
- `GET /v1/models`: the processor answers it itself, from the models of the route's Exact `x-ai-eg-model`
  matches with the rule's modelsOwnedBy (default "Envoy AI Gateway") and modelsCreatedAt (default: the
  route's creation) (internal/controller/gateway.go, internal/extproc/models_processor.go). Here that list
  is built from the planned rules the same way (`models_list`) and served as a direct_response.
Left out (refused by name, never ignored): backendRef fields other than name and weight, InferencePool
backends, Backend endpoints other than fqdn, match kinds other than headers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

#: The header AI Gateway's processor sets from the body's `model` (internal/internalapi
#: ModelNameHeaderKeyDefault); the same value components/model_routing.py MODEL_HEADER matches on.
MODEL_HEADER = "x-ai-eg-model"
#: AIGatewayRouteRule modelsOwnedBy's default (api/v1beta1/ai_gateway_route.go, +kubebuilder:default).
DEFAULT_OWNED_BY = "Envoy AI Gateway"
ROUTE_NOT_FOUND_FILTER_PREFIX = "ai-eg-route-not-found-response-"
BACKEND_REF_FIELDS = frozenset({"name", "weight"})
RULE_FIELDS = frozenset({"name", "matches", "backendRefs", "timeouts", "modelsOwnedBy", "modelsCreatedAt"})

#: The stand-in for AI Gateway's body-to-header step: the body's first `"model": "<name>"` becomes the
#: MODEL_HEADER request header, and the route is matched again with it. A client's own MODEL_HEADER is
#: dropped first, as the processor overwrites it.
STAND_IN_LUA = f"""
function envoy_on_request(handle)
  handle:headers():remove("{MODEL_HEADER}")
  -- body() waits for the whole body; a headers object taken before it is out of scope after it.
  local body = handle:body()
  if body == nil then return end
  local model = string.match(body:getBytes(0, body:length()), '"model"%s*:%s*"([^"]*)"')
  if model ~= nil then
    handle:headers():replace("{MODEL_HEADER}", model)
    handle:clearRouteCache()
  end
end
"""


class RouteConfigError(AssertionError):
    """The plan holds something this translation does not reproduce; names the object and field."""


def _one(manifests: Sequence[Mapping[str, Any]], kind: str, name: str | None = None) -> Mapping[str, Any]:
    found = [d for d in manifests if d.get("kind") == kind and name in (None, d["metadata"]["name"])]
    if len(found) != 1:
        raise RouteConfigError(
            f"expected one {kind}{f' {name}' if name else ''} in the plan, found {len(found)}"
        )
    return found[0]


def backend_endpoints(manifests: Sequence[Mapping[str, Any]], backend_ref: str) -> list[str]:
    """The `host:port` endpoints behind an AIGatewayRoute backendRef: AIServiceBackend -> Backend fqdn."""
    ai_backend = _one(manifests, "AIServiceBackend", backend_ref)
    ref = ai_backend["spec"]["backendRef"]
    if ref.get("kind") != "Backend":
        raise RouteConfigError(
            f"AIServiceBackend {backend_ref}: backendRef kind {ref.get('kind')} is not translated"
        )
    endpoints = []
    for ep in _one(manifests, "Backend", ref["name"])["spec"]["endpoints"]:
        if set(ep) != {"fqdn"}:
            raise RouteConfigError(
                f"Backend {ref['name']}: endpoint {sorted(ep)} is not translated (fqdn only)"
            )
        endpoints.append(f"{ep['fqdn']['hostname']}:{ep['fqdn']['port']}")
    return endpoints


def models_list(rules: Sequence[Mapping[str, Any]], created: int) -> dict[str, Any]:
    """The body AI Gateway's processor answers GET /v1/models with: one entry per Exact MODEL_HEADER match,
    in rule order. `created` (Unix seconds) stands for the route's creation where a rule has no
    modelsCreatedAt."""
    data = []
    for rule in rules:
        for match in rule.get("matches") or []:
            for header in match.get("headers") or []:
                if header["name"] != MODEL_HEADER or header.get("type", "Exact") != "Exact":
                    continue
                at = rule.get("modelsCreatedAt")
                data.append(
                    {
                        "id": header["value"],
                        "object": "model",
                        "created": int(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp())
                        if at
                        else created,
                        "owned_by": rule.get("modelsOwnedBy", DEFAULT_OWNED_BY),
                    }
                )
    return {"object": "list", "data": data}


def _header_matcher(header: Mapping[str, Any], where: str) -> dict[str, Any]:
    kind = header.get("type", "Exact")
    if kind == "Exact":
        matcher: dict[str, Any] = {"exact": header["value"]}
    elif kind == "RegularExpression":
        matcher = {"safe_regex": {"regex": header["value"]}}
    else:
        raise RouteConfigError(f"{where}: header match type {kind} is not translated")
    # Gateway API header names are case-insensitive; Envoy's HTTP/1 codec lowercases them.
    return {"name": header["name"].lower(), "string_match": matcher}


def _direct(status: int, body: str, content_type: str) -> dict[str, Any]:
    return {
        "direct_response": {"status": status, "body": {"inline_string": body}},
        "response_headers_to_add": [
            {
                "header": {"key": "content-type", "value": content_type},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
    }


def envoy_bootstrap(
    manifests: Sequence[Mapping[str, Any]],
    upstreams: Mapping[str, tuple[str, int]],
    listen_port: int,
    admin_port: int,
    created: int | None = None,
) -> dict[str, Any]:
    """An Envoy v3 bootstrap (listener on 127.0.0.1:`listen_port`, admin on `admin_port`) that routes like
    the plan's one AIGatewayRoute. `upstreams` maps each Backend endpoint "fqdn:port" to the (address,
    port) that reaches it from here. Raises RouteConfigError naming what it cannot translate or resolve."""
    route = _one(manifests, "AIGatewayRoute")
    route_name = route["metadata"]["name"]
    rules = route["spec"]["rules"]
    not_found = _one(manifests, "HTTPRouteFilter", ROUTE_NOT_FOUND_FILTER_PREFIX + route_name)
    clusters: dict[str, dict[str, Any]] = {}
    translated: list[tuple[int, int, dict[str, Any]]] = []
    for i, rule in enumerate(rules):
        where = f"AIGatewayRoute {route_name} rule {rule.get('name', i)}"
        extra = sorted(set(rule) - RULE_FIELDS)
        if extra:
            raise RouteConfigError(f"{where}: {extra} not translated")
        weighted = []
        for ref in rule["backendRefs"]:
            if set(ref) - BACKEND_REF_FIELDS:
                raise RouteConfigError(
                    f"{where}: backendRef {sorted(set(ref) - BACKEND_REF_FIELDS)} not translated"
                )
            if ref.get("weight", 1) == 0:
                continue
            endpoints = []
            for ep in backend_endpoints(manifests, ref["name"]):
                if ep not in upstreams:
                    raise RouteConfigError(
                        f"{where}: backend {ref['name']} reaches {ep}, which has no upstream here"
                    )
                address, port = upstreams[ep]
                endpoints.append(
                    {"endpoint": {"address": {"socket_address": {"address": address, "port_value": port}}}}
                )
            clusters[ref["name"]] = {
                "name": ref["name"],
                "type": "STATIC",
                "connect_timeout": "5s",
                "load_assignment": {"cluster_name": ref["name"], "endpoints": [{"lb_endpoints": endpoints}]},
            }
            weighted.append({"name": ref["name"], "weight": ref.get("weight", 1)})
        timeouts = rule.get("timeouts") or {}
        action: dict[str, Any] = (
            {"cluster": weighted[0]["name"]}
            if len(weighted) == 1
            else {"weighted_clusters": {"clusters": weighted}}
        )
        if timeouts.get("backendRequest") or timeouts.get("request"):
            action["timeout"] = timeouts.get("backendRequest") or timeouts["request"]
        for match in rule["matches"]:
            if set(match) != {"headers"}:
                raise RouteConfigError(f"{where}: match {sorted(match)} is not translated (headers only)")
            headers = [_header_matcher(h, where) for h in match["headers"]]
            exact = sum(1 for h in match["headers"] if h.get("type", "Exact") == "Exact")
            envoy_route = {
                "name": rule.get("name", str(i)),
                "match": {"prefix": "/", "headers": headers},
                "route": action,
            }
            translated.append((len(headers), exact, envoy_route))
    # sort.Stable(sort.Reverse(...)): more header matches first, then more Exact ones, ties in rule order.
    ordered = [r for _, _, r in sorted(translated, key=lambda t: (-t[0], -t[1]))]
    direct = not_found["spec"]["directResponse"]
    if direct.get("body", {}).get("type", "Inline") != "Inline":
        raise RouteConfigError(
            f"HTTPRouteFilter {not_found['metadata']['name']}: only an Inline body is translated"
        )
    models = models_list(rules, int(time.time()) if created is None else created)
    routes = [
        # Stand-in: AI Gateway's processor answers /v1/models before any route is matched.
        {
            "name": "stand-in-v1-models",
            "match": {"path": "/v1/models"},
            **_direct(200, json.dumps(models), "application/json"),
        },
        *ordered,
        {
            "name": "route-not-found",
            "match": {"prefix": "/"},
            **_direct(
                direct["statusCode"], direct["body"]["inline"], direct.get("contentType", "text/plain")
            ),
        },
    ]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": route_name,
        "route_config": {
            "name": route_name,
            "virtual_hosts": [
                {"name": route_name, "domains": list(route["spec"]["hostnames"]), "routes": routes}
            ],
        },
        "http_filters": [
            {
                "name": "ai-gateway-stand-in",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                    "default_source_code": {"inline_string": STAND_IN_LUA},
                },
            },
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [
                {
                    "name": route_name,
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                            ]
                        }
                    ],
                }
            ],
            "clusters": list(clusters.values()),
        },
    }
