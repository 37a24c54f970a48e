"""How requests reach each model of a stack: the pieces between the Gateway and the model servers.

For every model or variant (`StackConfig.served`) the stack decides one way in:
- its Service, plainly (the CPU engine, one replica, or a stack without model routing);
- an InferencePool with an endpoint picker (prefix-cache-aware routing, `uses_inference_pool`);
- the KEDA HTTP add-on's interceptor, which holds requests while the model scales from zero
  (`scales_to_zero`; components/cold_start_hold.py).
`plan_routes` makes those choices as data (pure, tested without mocks); stacks/workload.py creates the
components from it. The AIGatewayRoute that reads the OpenAI `model` field and picks among them is
components/model_routing.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from components._common import labels
from components.cold_start_hold import (
    ADD_ON_NAMESPACE,
    HOLD_HEADER,
    INTERCEPTOR_PROXY_PORT,
    INTERCEPTOR_PROXY_SERVICE,
    required_route_timeout_seconds,
)
from components.model_routing import InferencePoolBackend, RoutedModel, ServiceBackend, Variant
from components.model_server import SERVING_PORT
from stacks.config import ServedVariant, StackConfig, cold_start_seconds

#: Envoy's route timeout for a model that is not held: streamed answers stay open this long (seconds).
GENERATION_SECONDS = 600


@dataclass(frozen=True)
class VariantRoute:
    """How one model or variant is reached, by name only (no resources)."""

    variant: ServedVariant
    pool_name: str | None  # its InferencePool, when prefix-aware routing is on
    hold_name: str | None  # its ColdStartHold (InterceptorRoute), when it scales to zero
    hold_timeout_seconds: int | None  # how long a request waits for the first replica: the cold start

    @property
    def epp_pod_labels(self) -> dict[str, str] | None:
        """The endpoint picker's pod labels (components/inference_pool.py labels its pods so), which the
        model server's ingress admits to scrape /metrics."""
        if self.pool_name is None:
            return None
        return labels(f"{self.pool_name}-epp", "endpoint-picker")


def plan_routes(cfg: StackConfig) -> list[VariantRoute]:
    """One VariantRoute per served model/variant, in file order. The hold timeout is the variant's cold-
    start budget (stacks/config.py cold_start_seconds: GPU node, image pull, weight download, startup
    window): a request waits as long as a replica may take to appear, and no longer."""
    # AI Gateway allows one kind of backend per rule (InferencePools or Services, AIGatewayRouteRule CEL),
    # and a model's variants share its rule: a model is pooled only where every variant of it is.
    pooled = {
        name
        for name in cfg.model_names
        if all(v.config.uses_inference_pool for v in cfg.served if v.model_name == name)
    }
    routes = []
    for variant in cfg.served:
        v = variant.config
        held = v.scales_to_zero
        routes.append(
            VariantRoute(
                variant=variant,
                pool_name=f"{variant.resource_name}-pool" if variant.model_name in pooled else None,
                hold_name=f"{variant.resource_name}-hold" if held else None,
                hold_timeout_seconds=cold_start_seconds(v) if held else None,
            )
        )
    return routes


def route_timeout_seconds(cfg: StackConfig, routes: list[VariantRoute]) -> int:
    """Envoy's whole-request timeout for the API route (seconds): a streamed answer's ceiling, and for a
    held model the hold before it (cold_start_hold.required_route_timeout_seconds); the engine's drain
    never outlasts it."""
    needed = [max(GENERATION_SECONDS, cfg.serving.drain_seconds)]
    needed += [
        required_route_timeout_seconds(r.hold_timeout_seconds, GENERATION_SECONDS)
        for r in routes
        if r.hold_timeout_seconds is not None
    ]
    return max(needed)


def routed_models(routes: list[VariantRoute]) -> list[RoutedModel]:
    """The AIGatewayRoute's models: each public name with its variants, weights and backends."""
    by_model: dict[str, list[Variant]] = {}
    for route in routes:
        variant = route.variant
        backend: ServiceBackend | InferencePoolBackend
        if route.pool_name is not None:
            backend = InferencePoolBackend(pool_name=route.pool_name)
        elif route.hold_name is not None:
            # The interceptor holds the request until the Service has a ready endpoint, then proxies to
            # it; the header picks this model's InterceptorRoute (components/cold_start_hold.py).
            backend = ServiceBackend(
                service_name=INTERCEPTOR_PROXY_SERVICE,
                port=INTERCEPTOR_PROXY_PORT,
                namespace=ADD_ON_NAMESPACE,
                set_headers={HOLD_HEADER: route.hold_name},
            )
        else:
            backend = ServiceBackend(service_name=variant.resource_name, port=SERVING_PORT)
        by_model.setdefault(variant.model_name, []).append(
            Variant(name=variant.variant or "default", weight=variant.weight, backend=backend)
        )
    return [RoutedModel(name=name, variants=variants) for name, variants in by_model.items()]
