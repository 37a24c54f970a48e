"""TokenQuota: tokens per minute and per day per API client, on Envoy Gateway's global rate limit.

What it makes: one BackendTrafficPolicy `<name>-quota` on the HTTPRoute that Envoy AI Gateway generates
from the AIGatewayRoute. That HTTPRoute has the AIGatewayRoute's own name and namespace (envoyproxy/
ai-gateway v1.1.0 internal/controller/ai_gateway_route.go syncAIGatewayRoute: `Name: aiGatewayRoute.Name`),
so the caller passes the AIGatewayRoute's name as `route_name`. The policy holds:

- `rateLimit.global`: two rules per client with a budget, keyed on the client-id header the API-key filter
  sets (components/load_balancer.py CLIENT_ID_HEADER): one with unit Minute, one with unit Day. Each rule
  checks on the request (cost 0) and charges the response's `usage.total_tokens` when the stream ends
  (cost from the dynamic metadata `io.envoy.ai_gateway` / `llm_total_token` that AI Gateway's filter writes
  when the AIGatewayRoute lists LLM_REQUEST_COSTS);
- `rateLimit.local`: the per-client request limit the LoadBalancer component writes today (its
  rate_limit_spec rules, unchanged), because Envoy Gateway v1.8.3 applies only ONE BackendTrafficPolicy per
  route: a second one targeting the same HTTPRoute is rejected as Conflicted ("another
  BackendTrafficPolicy has already attached to it", internal/gatewayapi/backendtrafficpolicy.go). Global
  and local limits may share one policy since `rateLimit.type` was deprecated ("Both can be specified
  simultaneously", api/v1alpha1/ratelimit_types.go; buildBothRateLimit);
- `responseOverride`: every 429 Envoy itself sends on this route becomes the OpenAI error body with a
  `Retry-After` header.

Why AND holds: one request matches both of its client's rules, and "the rate limit service will return a
logical OR of the individual rate limit decisions of all matching rules" (GlobalRateLimit.Rules doc,
ratelimit_types.go v1.8.3): a request is refused when either budget is spent. AI Gateway's QuotaPolicy
(v1.1.0) was not chosen: its only mode, Shared, "allowed only if quota is available in at least one
matching bucket" (site/docs/capabilities/traffic/quota-policy.md), so a per-minute and a per-day bucket
would be OR-ed and the day budget would not bind while the minute bucket has room; it also binds to an
AIServiceBackend and a model name (`modelNameOverride`), not to a client.

Why `shared: true`: without it each rule's counter is keyed on the xDS route name (EG v1.8.3
internal/xds/translator/ratelimit.go buildRouteRateLimits: `descriptorKey = getRouteDescriptor(route.Name)`),
and AI Gateway's HTTPRoute has one rule per model, so a client would get a separate budget per model.
A shared rule's descriptor is the rule's own name, one counter per client across the route.

Streaming: AI Gateway v1.1.0 adds `stream_options.include_usage: true` to a streamed
`/v1/chat/completions` request when costs are configured on its route (internal/endpointspec/
endpointspec.go ChatCompletionsEndpointSpec.ParseBody, `costConfigured`), and reads the usage from the last
SSE chunk (internal/translator/openai_openai.go extractUsageFromBufferEvent). It does NOT add it for
`/v1/completions` (CompletionsEndpointSpec.ParseBody ignores costConfigured): a streamed legacy completion
is charged only if the client asked for include_usage itself. Usage is charged when the response ends
(EG: `ApplyOnStreamDone: true` for the response cost), so an admitted request may overshoot a budget; the
next request is refused ("Token Usage Behavior", site/docs/capabilities/traffic/usage-based-ratelimiting.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._common import child, labels, reject_invalid_args
from components.load_balancer import (
    CLIENT_ID_HEADER,
    gateway_api_ref,
    rate_limit_spec,
    request_limit_problems,
)

#: Where AI Gateway's filter writes the token counts (aigateway.envoyproxy.io v1beta1
#: AIGatewayFilterMetadataNamespace, api/v1beta1/shared_types.go at v1.1.0).
TOKEN_METADATA_NAMESPACE = "io.envoy.ai_gateway"
#: The metadata key our AIGatewayRoute asks AI Gateway to fill with `usage.total_tokens`.
TOTAL_TOKENS_METADATA_KEY = "llm_total_token"
#: What the routing part puts in AIGatewayRoute `spec.llmRequestCosts` (schema: aigateway.envoyproxy.io
#: v1beta1 AIGatewayRoute, `metadataKey` + `type`; TotalToken = prompt + completion tokens).
LLM_REQUEST_COSTS: list[dict[str, str]] = [{"metadataKey": TOTAL_TOKENS_METADATA_KEY, "type": "TotalToken"}]
#: BackendTrafficPolicy limits: at most 256 global rules (v1.8.3 GlobalRateLimit.Rules MaxItems) and two per
#: client; a limit is a uint32 (RateLimitValue.Requests, CRD maximum 4294967295).
MAX_GLOBAL_RULES = 256
MAX_LIMIT = 4_294_967_295
RATE_LIMITED = 429
#: Seconds in Retry-After. The header is static (Envoy Gateway's responseOverride sets fixed header values),
#: and a minute window restarts within 60 s; after a spent day budget the client is refused again until the
#: day window restarts (envoyproxy/ratelimit fixed windows: the next UTC day). `x-ratelimit-reset`, which
#: Envoy adds for global limits (EG v1.8.3 sets enable_x_ratelimit_headers DRAFT_VERSION_03 unless a
#: ClientTrafficPolicy turns rate-limit headers off), carries the exact seconds where it reaches the
#: client; that it survives the response override replacing the 429's body is not confirmed (not run here).
DEFAULT_RETRY_AFTER_SECONDS = 60

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class ClientTokenQuota:
    """One API client's token budgets (tokens = usage.total_tokens of its responses); None = no limit."""

    client_id: str  # as in LoadBalancerArgs.api_key_clients (the API-key Secret's data key)
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None


@dataclass(frozen=True, kw_only=True)
class TokenQuotaArgs:
    """Token budgets (and the request limit) of one AI Gateway route."""

    namespace: str  # the route's (and the policy's) namespace
    route_name: str  # the AIGatewayRoute's name = the HTTPRoute AI Gateway generates from it
    quotas: list[ClientTokenQuota]  # clients with a token budget; others are only request-limited
    # Every API client id: each gets the local request limit, as LoadBalancerArgs.api_key_clients does.
    api_key_clients: list[str]
    # Per client id and Envoy replica (local limit); None: none. The LoadBalancer must then write no
    # BackendTrafficPolicy of its own on this route (rate_limit_requests_per_minute=None there).
    requests_per_minute: int | None = 600
    retry_after_seconds: int = DEFAULT_RETRY_AFTER_SECONDS  # the 429's Retry-After


def validate_token_quota_args(args: TokenQuotaArgs) -> list[str]:
    """Every problem with `args`, each starting with the field it is about; empty when usable."""
    problems: list[str] = []
    if not _DNS_LABEL.match(args.namespace) or len(args.namespace) > 63:
        problems.append(f"namespace: {args.namespace!r} is not a Kubernetes namespace name")
    if not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", args.route_name) or len(args.route_name) > 253:
        problems.append(f"route_name: {args.route_name!r} is not a Kubernetes object name")

    known = set(args.api_key_clients)
    seen: set[str] = set()
    for i, quota in enumerate(args.quotas):
        where = f"quotas[{i}]"
        if quota.client_id in seen:
            problems.append(f"{where}.client_id: {quota.client_id!r} has two quota entries; merge them")
        seen.add(quota.client_id)
        if quota.client_id not in known:
            problems.append(
                f"{where}.client_id: {quota.client_id!r} is not an API client (api_key_clients: "
                f"{sorted(known)}); a budget for a key that does not exist never applies"
            )
        if quota.tokens_per_minute is None and quota.tokens_per_day is None:
            problems.append(f"{where}: set tokens_per_minute, tokens_per_day or both (or drop the entry)")
        for field_name in ("tokens_per_minute", "tokens_per_day"):
            value = getattr(quota, field_name)
            if value is not None and not 1 <= value <= MAX_LIMIT:
                problems.append(f"{where}.{field_name}: {value} must be between 1 and {MAX_LIMIT}")
        if (
            quota.tokens_per_minute is not None
            and quota.tokens_per_day is not None
            and quota.tokens_per_day < quota.tokens_per_minute
        ):
            problems.append(
                f"{where}.tokens_per_day: {quota.tokens_per_day} is below tokens_per_minute "
                f"{quota.tokens_per_minute}, so the minute budget can never be used; raise the day budget"
            )
    rules = sum((q.tokens_per_minute is not None) + (q.tokens_per_day is not None) for q in args.quotas)
    if rules > MAX_GLOBAL_RULES:
        problems.append(
            f"quotas: {rules} budgets, but a BackendTrafficPolicy holds at most {MAX_GLOBAL_RULES} global rules"
        )

    if not args.api_key_clients:
        problems.append("api_key_clients: list every API client id (at least one)")
    duplicates = sorted({c for c in args.api_key_clients if args.api_key_clients.count(c) > 1})
    if duplicates:
        problems.append(f"api_key_clients: duplicate client ids {duplicates}")
    problems.extend(
        request_limit_problems(args.api_key_clients, args.requests_per_minute, "requests_per_minute")
    )
    if not 1 <= args.retry_after_seconds <= 86_400:
        problems.append("retry_after_seconds: must be between 1 and 86400")
    return problems


def _rule(client_id: str, limit: int, unit: str) -> dict[str, Any]:
    return {
        "clientSelectors": [{"headers": [{"name": CLIENT_ID_HEADER, "type": "Exact", "value": client_id}]}],
        "limit": {"requests": limit, "unit": unit},
        "cost": {
            # 0 on the request: check the budget without spending it; the tokens are charged at stream end.
            "request": {"from": "Number", "number": 0},
            "response": {
                "from": "Metadata",
                "metadata": {"namespace": TOKEN_METADATA_NAMESPACE, "key": TOTAL_TOKENS_METADATA_KEY},
            },
        },
        "shared": True,  # one counter per client across the route's rules (one per model); module doc
    }


def token_rules(quotas: list[ClientTokenQuota]) -> list[dict[str, Any]]:
    """The global rate-limit rules: per client, a Minute rule and/or a Day rule, in `quotas` order."""
    rules: list[dict[str, Any]] = []
    for quota in quotas:
        if quota.tokens_per_minute is not None:
            rules.append(_rule(quota.client_id, quota.tokens_per_minute, "Minute"))
        if quota.tokens_per_day is not None:
            rules.append(_rule(quota.client_id, quota.tokens_per_day, "Day"))
    return rules


def rate_limited_body() -> str:
    """The 429 body in the OpenAI error shape (`error.message/type/param/code`, code `rate_limit_exceeded`
    as OpenAI's API sends it). One body serves the request limit and both token budgets: Envoy Gateway's
    responseOverride is per policy, not per rule. It must hold no `%`: the body is an Envoy format string."""
    return json.dumps(
        {
            "error": {
                "message": (
                    "Rate limit reached for this API key (requests per minute, tokens per minute or tokens "
                    "per day). Retry after the number of seconds in the Retry-After header; "
                    "x-ratelimit-reset, when present, gives the exact wait."
                ),
                "type": "rate_limit_exceeded",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
        separators=(",", ":"),
    )


def rate_limited_override(retry_after_seconds: int) -> dict[str, Any]:
    """responseOverride entry: Envoy's own 429s (source Local: not a backend's) -> OpenAI body + Retry-After.
    EG v1.8.3 CustomResponse has `header` (set/add, no remove) and ResponseOverride `source`
    (api/v1alpha1/shared_types.go); the custom_response filter is first in the chain (order 0,
    internal/xds/translator/httpfilters.go) so it sees the rate-limit filters' local replies (302, 303)."""
    return {
        "match": {"statusCodes": [{"type": "Value", "value": RATE_LIMITED}]},
        "source": "Local",
        "response": {
            "statusCode": RATE_LIMITED,
            "contentType": "application/json",
            "body": {"type": "Inline", "inline": rate_limited_body()},
            "header": {"set": [{"name": "Retry-After", "value": str(retry_after_seconds)}]},
        },
    }


def token_quota_policy_spec(args: TokenQuotaArgs) -> dict[str, Any]:
    """The BackendTrafficPolicy spec (module doc)."""
    rate_limit: dict[str, Any] = {}
    rules = token_rules(args.quotas)
    if rules:
        rate_limit["global"] = {"rules": rules}
    if args.requests_per_minute is not None:
        # The LoadBalancer's own rules, so both components limit requests identically.
        local = rate_limit_spec(args.route_name, args.api_key_clients, args.requests_per_minute)
        rate_limit["local"] = local["rateLimit"]["local"]
    spec: dict[str, Any] = {"targetRefs": [gateway_api_ref("HTTPRoute", args.route_name)]}
    if rate_limit:
        spec["rateLimit"] = rate_limit
    spec["responseOverride"] = [rate_limited_override(args.retry_after_seconds)]
    return spec


def envoy_gateway_values_for_rate_limit(redis_url: str, *, fail_closed: bool = False) -> dict[str, Any]:
    """gateway-helm values that turn the global rate limit on, with `redis_url` (`host:port`) as its store.

    The chart writes `config.envoyGateway` verbatim, merged over its defaults, into the EnvoyGateway
    config file (charts/gateway-helm/templates/envoy-gateway-config.yaml at v1.8.3); the fields are
    EnvoyGateway.rateLimit (api/v1alpha1/envoygateway_types.go: backend.type Redis, backend.redis.url,
    failClosed). Envoy Gateway then runs the `envoy-ratelimit` Deployment (image
    docker.io/envoyproxy/ratelimit:1e50889b, the chart's global.images.ratelimit.image) in its own namespace.
    fail_closed False: while the rate-limit service cannot answer, requests pass unmetered rather than
    failing with 500 (EG's default); True refuses them.
    """
    if not re.match(r"^[a-z0-9.-]+:[0-9]{1,5}$", redis_url):
        raise ValueError(f"redis_url: {redis_url!r} must be host:port (e.g. llm-redis.inferstack.svc:6379)")
    return {
        "config": {
            "envoyGateway": {
                "rateLimit": {
                    "backend": {"type": "Redis", "redis": {"url": redis_url}},
                    "failClosed": fail_closed,
                }
            }
        }
    }


class TokenQuota(pulumi.ComponentResource):
    """Per-client token budgets (minute and day) and request limits on one AI Gateway route."""

    def __init__(self, name: str, args: TokenQuotaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("inferstack:token_quota:TokenQuota", name, None, opts)
        reject_invalid_args("TokenQuota", name, validate_token_quota_args(args))
        policy_name = f"{name}-quota"
        k8s.apiextensions.CustomResource(
            f"{name}-traffic-policy",
            api_version="gateway.envoyproxy.io/v1alpha1",
            kind="BackendTrafficPolicy",
            metadata={
                "name": policy_name,
                "namespace": args.namespace,
                "labels": labels(name, "token-quota"),
            },
            spec=token_quota_policy_spec(args),
            opts=child(self),
        )
        self.policy_name = pulumi.Output.from_input(policy_name)
        self.register_outputs({"policy_name": self.policy_name})
