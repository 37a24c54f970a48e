"""The workload every platform runs once it has a cluster: namespace, Prometheus, the model server, its
HTTPS gateway with API keys, the certificate and the autoscaler.

A composition (`onprem.py`, `aws.py`) makes or connects to the cluster, then hands `deploy_workload` a
`ClusterContext`: the Kubernetes provider, where GPU pods land, how the gateway is exposed, and the
platform's extras (a model store identity, cluster pieces to wait for). Names are fixed per role
("llm"), so child names, and therefore URNs, stay stable across config changes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._common import KEDA, deep_merge, helm_release, labels
from components.autoscaler import KEDA_NAMESPACE, Autoscaler, AutoscalerArgs, ColdStartHoldRef, keda_values
from components.choices import AcmeSolver, Dns01Provider, Engine, LoadBalancerKind, ScalingSignal, TlsMode
from components.cold_start_hold import (
    ColdStartHold,
    ColdStartHoldArgs,
    KedaHttpAddOn,
    gateway_policy_fragment_for,
    scaler_address,
)
from components.gpu_node_pool import GpuPlacement
from components.guardrail import Guardrail, guardrail_ext_proc
from components.inference_pool import InferencePoolRouting, InferencePoolRoutingArgs, inference_pool_crd
from components.load_balancer import (
    ENVOY_PROXY_NAMESPACE,
    ENVOY_PROXY_POD_LABELS,
    MODEL_ROUTING_BUFFER_LIMIT,
    Backend,
    ExtraHostname,
    LoadBalancer,
    LoadBalancerArgs,
    http_listener_name,
    join_policy_specs,
)
from components.metrics_server import MetricsServer, MetricsServerArgs
from components.model_routing import (
    ModelRouting,
    ModelRoutingArgs,
    envoy_gateway_values_for_ai_gateway,
    route_rules,
)
from components.model_server import NODE_LOCAL_DNS_CIDRS, SERVING_PORT, ModelServer, ModelServerArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.network_policy import acme_http01_solver_allow, namespace_default_deny
from components.redis import Redis, RedisArgs, RedisPersistence, redis_url
from components.tls import TlsCertificates, TlsCertificatesArgs
from components.token_quota import (
    LLM_REQUEST_COSTS,
    ClientTokenQuota,
    TokenQuotaArgs,
    envoy_gateway_values_for_rate_limit,
    token_quota_policy_spec,
)
from guardrail.memory import max_body_bytes
from stacks.cold_start import progress_deadline_seconds, rollout_timeout_seconds
from stacks.config import Platform, StackConfig, cold_start_seconds, cooldown_seconds
from stacks.egress import ACCEPTING_FIELD, internet_egress_accepted, model_store_cidrs
from stacks.operations import (
    CHAT_LISTENER,
    GUARDRAIL_FILTER_ORDER,
    OperationsContext,
    chat_pod_cidrs,
    deploy_operations,
    guardrail_args,
    reads_gateway_series,
)
from stacks.rollout import most_replicas, stack_rollout_strategy
from stacks.routing import VariantRoute, plan_routes, route_timeout_seconds, routed_models

#: Component name shared by the server, its gateway, certificate and autoscaler (one model per stack).
NAME = "llm"
#: The AIGatewayRoute (and the HTTPRoute AI Gateway writes from it) where the stack routes by model. Not
#: the plain route's name (`llm-api`): see LoadBalancerArgs.model_route_name.
MODEL_ROUTE = f"{NAME}-models"


@dataclass(frozen=True)
class GatewayExposure:
    """How the gateway's Service reaches clients (LoadBalancerArgs' platform-specific part)."""

    kind: LoadBalancerKind
    metallb_pool: str | None = None
    address: str | None = None
    http_node_port: int = 30080
    https_node_port: int = 30443
    cloud_service_annotations: dict[str, str] = field(default_factory=dict)
    cloud_load_balancer_class: str | None = None


@dataclass(frozen=True)
class ClusterContext:
    """What a composition hands the workload."""

    provider: k8s.Provider  # the cluster's Kubernetes provider
    exposure: GatewayExposure  # how the gateway is reached
    placement: GpuPlacement | None = None  # where GPU replicas land (None: the CPU engine)
    cluster_ready: list[pulumi.Resource] = field(default_factory=list)  # every object waits for these
    server_after: list[pulumi.Resource] = field(default_factory=list)  # GPU capacity the server needs
    gateway_after: list[pulumi.Resource] = field(default_factory=list)  # e.g. the cloud LB controller
    tls_after: list[pulumi.Resource] = field(default_factory=list)  # e.g. cert-manager's DNS identity
    model_extra_env: dict[str, str] = field(default_factory=dict)  # storage SDK settings (AWS_REGION)
    model_extra_egress: list[tuple[str, int]] = field(default_factory=list)  # e.g. the credentials agent
    # Where the model store answers on private addresses, when the composition made such a path (the S3
    # interface endpoint's subnets, private.googleapis.com); stacks/egress.py decides what the pods get.
    model_store_private_cidrs: list[str] = field(default_factory=list)
    # The Kubernetes API server's addresses as pods reach them (post-DNAT), for the endpoint pickers'
    # egress: the VPC on EKS, the control plane and node ranges on GKE; on-prem network.api_server_cidrs.
    api_server_cidrs: list[str] = field(default_factory=list)
    # The provider CRD charts go through (components/_common.py crd_provider: adopts existing CRDs).
    crd_provider: k8s.Provider | None = None
    # The store-reading model server's identity where the platform federates one to its ServiceAccount
    # (AKS Workload ID: the SA annotation naming the identity, the pod label AKS's webhook acts on).
    model_service_account_annotations: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    model_pod_labels: dict[str, str] = field(default_factory=dict)
    # cert-manager's managed identity for Azure DNS (DNS-01 through Workload ID), when the stack uses it.
    cert_manager_client_id: pulumi.Input[str] | None = None


#: The kube-dns Service IP of the common self-managed distributions, for on-prem stacks that do not set
#: `network.dns_cidrs`. The upstream NodeLocal DNSCache (iptables kube-proxy) also binds the kube-dns
#: ClusterIP and NOTRACKs traffic to it, so the packet is never DNATed to a CoreDNS pod and the
#: NetworkPolicy sees the ClusterIP itself (kubernetes/kubernetes#70555; projectcalico/calico#3795).
#: - 10.96.0.10: kubeadm (serviceSubnet 10.96.0.0/12, clusterDNS its 10th address) and kind;
#: - 10.43.0.10: k3s and RKE2 (`--cluster-dns` default);
#: - 10.233.0.3: kubespray (kube_service_addresses 10.233.0.0/18, skydns_server its 3rd address).
#: Port 53 only; a cluster with another Services range lists its own in network.dns_cidrs.
ONPREM_KUBE_DNS_SERVICE_IPS = ("10.96.0.10/32", "10.43.0.10/32", "10.233.0.3/32")


def dns_cidrs(cfg: StackConfig) -> list[str]:
    """The resolvers off the pod network the model server may query: `network.dns_cidrs` when set, else
    NodeLocal DNSCache's link-local addresses, plus
    - on GKE the Services range: GKE's NodeLocal DNSCache (on by default from 1.34.1-gke.3720000) answers
      on the kube-dns Service IP, which the cluster picks inside that range;
    - on-prem the usual distributions' kube-dns Service IPs (ONPREM_KUBE_DNS_SERVICE_IPS).
    The rule is for port 53 only."""
    if cfg.network.dns_cidrs is not None:
        return list(cfg.network.dns_cidrs)
    cidrs = list(NODE_LOCAL_DNS_CIDRS)
    if cfg.platform is Platform.GCP and cfg.gcp is not None:
        cidrs.append(cfg.gcp.network.services_cidr)
    if cfg.platform is Platform.ONPREM:
        cidrs.extend(ONPREM_KUBE_DNS_SERVICE_IPS)
    return cidrs


def extra_egress(cfg: StackConfig, ctx: ClusterContext) -> list[tuple[str, int]]:
    """The platform's egress (e.g. the credentials agent), then the stack file's `network.extra_egress`."""
    from_file = [(rule.cidr, port) for rule in cfg.network.extra_egress for port in rule.ports]
    return [*ctx.model_extra_egress, *from_file]


def _azuredns_args(cfg: StackConfig, ctx: ClusterContext) -> dict[str, Any]:
    """TlsCertificatesArgs' azuredns_* fields: the stack's Azure DNS zone and cert-manager's identity
    (stacks/azure.py makes it), where DNS-01 goes through Azure DNS; {} otherwise."""
    dns01 = cfg.tls.acme.dns01
    if dns01 is None or dns01.provider is not Dns01Provider.AZUREDNS or cfg.azure is None:
        return {}
    zone = cfg.azure.dns_zone
    assert zone is not None  # stacks/rules_azure.py requires it for azuredns
    return {
        "azuredns_subscription_id": zone.subscription_id or cfg.azure.subscription_id,
        "azuredns_resource_group": zone.resource_group,
        "azuredns_hosted_zone_name": zone.name,
        "azuredns_managed_identity_client_id": ctx.cert_manager_client_id,
    }


def tls_secret_name(cfg: StackConfig) -> str:
    """The TLS Secret the Gateway serves: the existing one, or the one TlsCertificates NAME fills."""
    return cfg.tls.existing_secret or f"{NAME}-tls"


@dataclass(frozen=True)
class Workload:
    """What a composition may still need from the workload (e.g. the gateway's cloud hostname)."""

    server: ModelServer
    gateway: LoadBalancer
    tls: TlsCertificates


def deploy_workload(cfg: StackConfig, ctx: ClusterContext) -> Workload:
    ns = cfg.cluster.namespace
    provider = ctx.provider
    on_cluster = pulumi.ResourceOptions(provider=provider, depends_on=list(ctx.cluster_ready))

    namespace = k8s.core.v1.Namespace(
        "namespace",
        metadata={
            "name": ns,
            "labels": {
                # Pod Security "restricted" is enforced for everything in the serving namespace.
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
                "app.kubernetes.io/managed-by": "inferstack",
            },
        },
        opts=on_cluster,
    )

    in_namespace = pulumi.ResourceOptions(provider=provider, depends_on=[namespace])
    # Every pod in the namespace starts with no traffic either way; each allow is explicit.
    namespace_default_deny("namespace-default-deny", ns, in_namespace)
    if cfg.tls.mode is TlsMode.ACME and cfg.tls.acme.solver is AcmeSolver.HTTP01:
        acme_http01_solver_allow(
            "acme-http01-solver-allow", ns, ENVOY_PROXY_NAMESPACE, ENVOY_PROXY_POD_LABELS, in_namespace
        )

    routes = plan_routes(cfg)
    holds = [r for r in routes if r.hold_name is not None]
    monitoring = None
    if cfg.monitoring.install_prometheus or cfg.monitoring.prometheus_url:
        monitoring = Monitoring(
            NAME,
            MonitoringArgs(
                prometheus_url=None if cfg.monitoring.install_prometheus else cfg.monitoring.prometheus_url,
                namespace=cfg.monitoring.prometheus_namespace,
                # The gateway's PodMonitors come after its release (stacks/operations.py), which makes
                # their namespace.
                scrape_envoy=False,
                # A held model's queue trigger reads 0 only while its Deployment has no available
                # replica (kube-state-metrics), components/autoscaler.py; the alerts and the replicas panel
                # read it too. With an existing Prometheus nothing is installed (Monitoring refuses install
                # switches): that Prometheus must scrape kube-state-metrics itself (kube-prometheus-stack
                # does by default; docs/multi-model.md).
                kube_state_metrics=(bool(holds) or reads_gateway_series(cfg))
                and cfg.monitoring.install_prometheus,
                grafana=cfg.monitoring.dashboards.install_grafana,
                alertmanager=cfg.monitoring.alerts.enabled and cfg.monitoring.alerts.alertmanager,
                pod_monitor_labels=cfg.monitoring.pod_monitor_labels,
                crd_provider=ctx.crd_provider,
            ),
            opts=on_cluster,
        )
    after_monitoring: list[pulumi.Resource] = (
        [monitoring.release] if monitoring is not None and monitoring.release is not None else []
    )
    # The Prometheus operator's CRDs are there (installed with the stack's Prometheus, or the cluster's):
    # monitors and rules may be created.
    monitors_possible = monitoring is not None and (
        cfg.monitoring.install_prometheus or cfg.monitoring.pod_monitor
    )

    servers = [
        _model_server(
            cfg,
            route,
            ctx,
            monitoring is not None,
            # Series of variants that share a model_name are told apart by this label (promotion), and the
            # dashboards' variant picker and replicas panel read it (components/dashboards.py).
            ["app.kubernetes.io/name"],
            [namespace, *after_monitoring, *ctx.server_after],
        )
        for route in routes
    ]
    server = servers[0]

    # The InferencePool CRD (GIE v1.6.0) before Envoy Gateway, which watches InferencePools once its
    # extension manager lists them (components/inference_pool.py), and before any pool.
    pool_crd = (
        inference_pool_crd(
            "inference-pool-crd",
            pulumi.ResourceOptions(provider=ctx.crd_provider or provider, depends_on=list(ctx.cluster_ready)),
        )
        if any(r.pool_name for r in routes)
        else None
    )
    hold_args = {r.hold_name: _hold_args(r, ns) for r in holds if r.hold_name}
    routing_values: dict[str, Any] = {}
    traffic_policy: dict[str, Any] = {}
    if cfg.routes_by_model:
        routing_values = envoy_gateway_values_for_ai_gateway(inference_pool=pool_crd is not None)
    requests_per_minute: int | None = cfg.gateway.rate_limit.requests_per_minute
    quota_store: Redis | None = None
    if cfg.gateway.token_quotas:
        # Token budgets count in Envoy Gateway's global rate limit, whose counters live in this Redis.
        store = cfg.gateway.quota_store
        quota_store = Redis(
            f"{NAME}-quota",
            RedisArgs(
                namespace=ns,
                persistence=RedisPersistence.VOLUME if store.persistence else RedisPersistence.NONE,
                storage_size=store.size if store.persistence else None,
                storage_class=store.storage_class if store.persistence else None,
            ),
            opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespace]),
        )
        routing_values = deep_merge(
            routing_values, envoy_gateway_values_for_rate_limit(redis_url(f"{NAME}-quota-redis", ns))
        )
        # One BackendTrafficPolicy per route (Envoy Gateway v1.8.3): the request limit moves into the
        # token quota's spec, global and local rules side by side, with the OpenAI-shaped 429.
        traffic_policy = token_quota_policy_spec(
            TokenQuotaArgs(
                namespace=ns,
                route_name=MODEL_ROUTE,
                quotas=[
                    ClientTokenQuota(
                        client_id=q.client,
                        tokens_per_minute=q.tokens_per_minute,
                        tokens_per_day=q.tokens_per_day,
                    )
                    for q in cfg.gateway.token_quotas
                ],
                api_key_clients=list(cfg.serving.api_keys.clients),
                requests_per_minute=requests_per_minute,
            )
        )
        requests_per_minute = None
    if hold_args:
        traffic_policy = join_policy_specs(
            traffic_policy, gateway_policy_fragment_for(list(hold_args.values()))
        )

    guard = guardrail_args(cfg, ns, MODEL_ROUTE if cfg.routes_by_model else None, routes, dns_cidrs(cfg))
    exposure = ctx.exposure
    gateway = LoadBalancer(
        NAME,
        LoadBalancerArgs(
            namespace=ns,
            hostname=cfg.gateway.hostname,
            # With model routing the AIGatewayRoute (below) names the backends; else the one Service.
            backends=[]
            if cfg.routes_by_model
            else [Backend(service_name=server.service_name, port=SERVING_PORT, weight=1)],
            model_routing=cfg.routes_by_model,
            model_route_name=MODEL_ROUTE,
            model_routing_values=routing_values,
            api_traffic_policy=traffic_policy,
            # The Secret TlsCertificates fills (or the existing one); a Gateway waits for it by itself.
            tls_secret_name=tls_secret_name(cfg),
            api_key_clients=cfg.serving.api_keys.clients,
            existing_api_key_secret=cfg.serving.api_keys.existing_secret,
            kind=exposure.kind,
            metallb_pool=exposure.metallb_pool,
            address=exposure.address,
            http_node_port=exposure.http_node_port,
            https_node_port=exposure.https_node_port,
            cloud_service_annotations=exposure.cloud_service_annotations,
            cloud_load_balancer_class=exposure.cloud_load_balancer_class,
            allowed_source_cidrs=cfg.gateway.allowed_source_cidrs,
            rate_limit_requests_per_minute=requests_per_minute,
            envoy_replicas=cfg.gateway.envoy_replicas,
            request_timeout_seconds=route_timeout_seconds(cfg, routes),
            crd_provider=ctx.crd_provider,
            # The chat UI (stacks/operations.py): its own hostname on the same Gateway, and the in-cluster
            # Service it reaches the endpoint through, admitted by the API's address rules.
            extra_hostnames=[ExtraHostname(CHAT_LISTENER, cfg.chat_ui.hostname)]
            if cfg.chat_ui.enabled and cfg.chat_ui.hostname
            else [],
            internal_service=cfg.chat_ui.enabled,
            internal_source_cidrs=chat_pod_cidrs(cfg),
            # The guardrail's ext_proc after the address rules and the rate limits: a request they refuse
            # never costs a classifier call (stacks/operations.py GUARDRAIL_FILTER_ORDER).
            filter_order=list(GUARDRAIL_FILTER_ORDER) if guard is not None else [],
            # With the guardrail, Envoy refuses (413) a body larger than the processor reads: never buffered,
            # never sent to it (guardrail/memory.py max_body_bytes; the processor would refuse it anyway).
            request_buffer_limit=f"{math.ceil(max_body_bytes(guard.max_text_chars) / 2**20)}Mi"
            if guard is not None
            else MODEL_ROUTING_BUFFER_LIMIT,
        ),
        # On destroy the gateway (and a cloud balancer's Service) goes before what it waited for.
        opts=pulumi.ResourceOptions(
            provider=provider,
            depends_on=[
                namespace,
                *ctx.gateway_after,
                *([pool_crd] if pool_crd is not None else []),
                # The rate-limit service Envoy Gateway starts reads its counters there.
                *([quota_store] if quota_store is not None else []),
            ],
        ),
    )

    pools: list[pulumi.Resource] = []
    for route, variant_server in zip(routes, servers, strict=True):
        if route.pool_name is None:
            continue
        others = [labels(r.variant.resource_name, "model-server") for r in routes if r is not route]
        pools.append(
            InferencePoolRouting(
                route.pool_name,
                InferencePoolRoutingArgs(
                    namespace=ns,
                    pod_selector={
                        "app.kubernetes.io/name": route.variant.resource_name,
                        "app.kubernetes.io/component": "model-server",
                    },
                    other_variant_pod_labels=others,
                    api_server_cidrs=list(ctx.api_server_cidrs or cfg.network.api_server_cidrs or []),
                    # AI Gateway v1.1.0 calls the picker fail-closed: a second one keeps the model up
                    # through a node drain in prod (leader election: one active at a time).
                    epp_replicas=2 if cfg.tier.value == "prod" else 1,
                ),
                opts=pulumi.ResourceOptions(
                    provider=provider,
                    depends_on=[namespace, variant_server, *([pool_crd] if pool_crd is not None else [])],
                ),
            )
        )

    acme, dns01 = cfg.tls.acme, cfg.tls.acme.dns01
    tls = TlsCertificates(
        NAME,
        TlsCertificatesArgs(
            namespace=ns,
            hostname=cfg.gateway.hostname,
            gateway_name=NAME,
            mode=cfg.tls.mode,
            acme_email=acme.email,
            acme_server=acme.server,
            acme_solver=acme.solver,
            dns01_provider=dns01.provider if dns01 else None,
            rfc2136_nameserver=dns01.rfc2136_nameserver if dns01 else None,
            rfc2136_tsig_key_name=dns01.rfc2136_tsig_key_name if dns01 else None,
            rfc2136_tsig_secret=dns01.rfc2136_tsig_secret if dns01 else None,
            route53_region=dns01.route53_region if dns01 else None,
            route53_hosted_zone_id=dns01.route53_hosted_zone_id if dns01 else None,
            clouddns_project=dns01.clouddns_project if dns01 else None,
            # The zone cert-manager's grant is on (gcp.dns_zone unless named): naming it spares a list call.
            clouddns_hosted_zone_name=(dns01.clouddns_hosted_zone_name if dns01 else None)
            or (cfg.gcp.dns_zone if cfg.gcp and dns01 else None),
            **_azuredns_args(cfg, ctx),
            internal_ca_common_name=cfg.tls.internal_ca.common_name,
            internal_ca_validity_hours=cfg.tls.internal_ca.validity_hours,
            existing_secret=cfg.tls.existing_secret,
            certificate_duration_hours=cfg.tls.certificate_duration_hours,
            # cert-manager's own series (certificate expiry) for the alerts.
            pod_monitor=monitors_possible,
            pod_monitor_labels=dict(cfg.monitoring.pod_monitor_labels),
            monitors_after=after_monitoring,
            extra_hostnames=[cfg.chat_ui.hostname] if cfg.chat_ui.enabled and cfg.chat_ui.hostname else [],
            extra_http01_listeners=[http_listener_name(CHAT_LISTENER)]
            if cfg.chat_ui.enabled
            and cfg.tls.mode is TlsMode.ACME
            and cfg.tls.acme.solver is AcmeSolver.HTTP01
            else [],
        ),
        # cert-manager's Gateway API support needs the Gateway API CRDs, which the Envoy Gateway chart
        # installs: the certificate comes after the gateway.
        opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespace, gateway, *ctx.tls_after]),
    )

    metrics_api: list[pulumi.Resource] = []
    if cfg.metrics_api_provider == "stack":
        # The cpu trigger reads metrics.k8s.io, which EKS, kind and kubeadm clusters do not serve.
        metrics_api.append(
            MetricsServer(
                NAME,
                MetricsServerArgs(kubelet_insecure_tls=cfg.cluster.metrics_server.kubelet_insecure_tls),
                opts=pulumi.ResourceOptions(provider=provider),
            )
        )

    # KEDA, once per cluster: a single-model stack's autoscaler installs it (its release `llm-keda` as it
    # always was); with `models` a release of its own, named after no model, so that reordering or removing
    # models never replaces the cluster's KEDA. The KEDA HTTP add-on likewise, once, after KEDA (its chart
    # makes a ScaledObject). A held model's ScaledObject waits for its hold where KEDA is already there (its
    # external-push trigger names the hold's InterceptorRoute; before that KEDA only retries).
    installer: pulumi.Resource | None = None
    if cfg.models is not None and any(r.variant.config.autoscaling.enabled for r in routes):
        installer = helm_release(
            f"{NAME}-keda",
            KEDA,
            namespace=KEDA_NAMESPACE,
            values=keda_values(),
            opts=pulumi.ResourceOptions(
                provider=provider,
                depends_on=list(ctx.cluster_ready),
                # The same Helm release (`llm-keda`) a single-model stack's Autoscaler `llm` made: moving such
                # a stack to `models` moves the release instead of creating a second `llm-keda` beside it
                # (Helm refuses a name in use) and deleting the first (its CRDs, every ScaledObject).
                aliases=[
                    pulumi.Alias(
                        name=f"{NAME}-keda",
                        parent=pulumi.create_urn(NAME, "inferstack:autoscaler:Autoscaler"),
                    )
                ],
            ),
        )
    add_on: KedaHttpAddOn | None = None
    made_holds: dict[str, ColdStartHold] = {}

    def hold_for(name: str) -> ColdStartHold:
        nonlocal add_on
        if add_on is None:
            longest = max(hold_args.values(), key=lambda h: h.hold_timeout_seconds)
            add_on = KedaHttpAddOn(
                NAME,  # its release: llm-keda-http
                # The interceptor's own series (requests held while a model wakes) for the alerts.
                dataclasses.replace(
                    longest,
                    scrape_interceptor=monitors_possible,
                    prometheus_namespace=cfg.monitoring.prometheus_namespace,
                    prometheus_pod_labels=dict(cfg.monitoring.prometheus_pod_labels),
                    pod_monitor_labels=dict(cfg.monitoring.pod_monitor_labels),
                    monitors_after=after_monitoring,
                ),
                opts=pulumi.ResourceOptions(
                    provider=provider, depends_on=[namespace, *([installer] if installer else [])]
                ),
            )
        if name not in made_holds:
            made_holds[name] = ColdStartHold(
                name,
                hold_args[name],
                opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespace, add_on]),
            )
        return made_holds[name]

    previous: Autoscaler | None = None
    for route, variant_server in zip(routes, servers, strict=True):
        variant, vcfg = route.variant, route.variant.config
        if not vcfg.autoscaling.enabled:
            continue
        a = vcfg.autoscaling
        queue_scaling = vcfg.serving.engine is Engine.VLLM
        after_autoscaler: list[pulumi.Resource] = [
            namespace,
            *after_monitoring,
            *metrics_api,
            *([previous] if previous is not None else []),
            *([installer] if installer is not None else []),
        ]
        if route.hold_name is not None and installer is not None:
            after_autoscaler.append(hold_for(route.hold_name))
        previous = Autoscaler(
            variant.resource_name,
            AutoscalerArgs(
                namespace=ns,
                deployment_name=variant_server.deployment_name,
                served_model_name=vcfg.model.name,
                # Variants of one model share its model_name: each scales on its own pods' queue.
                pod_name_prefix=variant.resource_name if variant.variant is not None else None,
                signal=ScalingSignal.QUEUE_DEPTH if queue_scaling else ScalingSignal.CPU,
                min_replicas=a.min_replicas,
                max_replicas=a.max_replicas,
                target_queue_depth=a.target_queue_depth,
                cpu_target_percent=a.cpu_target_percent,
                polling_interval_seconds=a.polling_interval_seconds,
                cooldown_seconds=cooldown_seconds(vcfg),
                scale_down_stabilization_seconds=a.scale_down_stabilization_seconds,
                prometheus_url=monitoring.prometheus_url
                if monitoring is not None and queue_scaling
                else None,
                cold_start_hold=ColdStartHoldRef(route.hold_name, scaler_address())
                if route.hold_name is not None
                else None,
                install_keda=installer is None and previous is None,
            ),
            opts=pulumi.ResourceOptions(provider=provider, depends_on=after_autoscaler),
        )
        installer = installer or previous

    held: list[pulumi.Resource] = [hold_for(name) for name in hold_args]

    model_route_rules: list[dict[str, Any]] = []
    # The content-filter guardrail (stacks/operations.py): its processor first, then the route's one
    # EnvoyExtensionPolicy (ModelRouting's) names it.
    guardrail = (
        Guardrail(
            NAME,
            guard,
            opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespace, *servers]),
        )
        if guard is not None
        else None
    )
    if cfg.routes_by_model:
        routing_args = ModelRoutingArgs(
            namespace=ns,
            gateway_name=NAME,
            hostnames=[cfg.gateway.hostname],
            models=routed_models(routes),
            client_ids=list(cfg.serving.api_keys.clients),
            request_timeout_seconds=route_timeout_seconds(cfg, routes),
            # AI Gateway writes each response's usage where the token budgets' cost reads it.
            llm_request_costs=list(LLM_REQUEST_COSTS) if cfg.gateway.token_quotas else [],
            crd_provider=ctx.crd_provider,
            # The stack's cert-manager (TlsCertificates installs it) renews the webhook's certificate.
            webhook_cert_manager=True,
            depends_on=[namespace, gateway, tls, *pools, *held, *([guardrail] if guardrail else [])],
            ext_proc=guardrail_ext_proc(guard, NAME) if guard is not None else [],
        )
        # Its AIGatewayRoute (and the HTTPRoute AI Gateway writes from it) is the route the gateway's
        # SecurityPolicy and BackendTrafficPolicy target.
        ModelRouting(MODEL_ROUTE, routing_args, opts=pulumi.ResourceOptions(provider=provider))
        model_route_rules = route_rules(MODEL_ROUTE, routing_args)

    deploy_operations(
        cfg,
        OperationsContext(
            provider=provider,
            placement=ctx.placement,
            monitors_possible=monitors_possible,
            monitors_after=after_monitoring,
            monitoring=monitoring,
            gateway_release=gateway.envoy_gateway_release,
            namespace=ns,
            namespace_resource=namespace,
            routes=routes,
            model_route=MODEL_ROUTE if cfg.routes_by_model else None,
            model_route_rules=model_route_rules,
            api_route=f"{NAME}-api",
            dns_cidrs=dns_cidrs(cfg),
            gateway=gateway,
            tls=tls,
            api_key_secret=cfg.serving.api_keys.existing_secret or f"{NAME}-api-keys",
            https_port=exposure.https_node_port if exposure.kind is LoadBalancerKind.NODEPORT else 443,
        ),
    )

    pulumi.export("url", gateway.url)
    pulumi.export("model", cfg.model.name)
    if cfg.models is not None:
        pulumi.export("models", cfg.model_names)
    pulumi.export("namespace", ns)
    pulumi.export("api_keys", gateway.api_keys)
    pulumi.export("ca_certificate_pem", tls.ca_certificate_pem)
    pulumi.export("tls_secret", tls.secret_name)
    return Workload(server=server, gateway=gateway, tls=tls)


def _model_server(
    stack: StackConfig,
    route: VariantRoute,
    ctx: ClusterContext,
    monitored: bool,
    target_labels: list[str],
    after: list[pulumi.Resource],
) -> ModelServer:
    """The Deployment (and its Service, policies, monitor) of one model, or one variant of a model, from
    the stack as that variant sees it (`variant.config`: its model/serving/autoscaling merged over the
    stack's)."""
    variant = route.variant
    cfg = variant.config
    node_selector: dict[str, str] = {}
    tolerations: list[dict[str, str]] = []
    gpu_resource = "nvidia.com/gpu"
    if ctx.placement is not None:
        node_selector, tolerations, gpu_resource = (
            ctx.placement.node_selector,
            ctx.placement.tolerations,
            ctx.placement.gpu_resource_name,
        )
    rollout = stack_rollout_strategy(stack, cfg)
    cold_start = cold_start_seconds(cfg)
    store_cidrs = model_store_cidrs(cfg, ctx.model_store_private_cidrs)
    reads_store = cfg.model.scheme in ("s3", "gs", "az")
    return ModelServer(
        variant.resource_name,
        ModelServerArgs(
            namespace=cfg.cluster.namespace,
            engine=cfg.serving.engine,
            image=cfg.serving.image,
            model_uri=cfg.model.uri,
            served_model_name=cfg.model.name,
            max_model_len=cfg.model.max_model_len,
            replicas=cfg.autoscaling.min_replicas if cfg.autoscaling.enabled else cfg.serving.replicas,
            autoscaled=cfg.autoscaling.enabled,
            cpu=cfg.serving.cpu,
            memory=cfg.serving.memory,
            progress_deadline_seconds=progress_deadline_seconds(cold_start),
            # A rollout replaces every replica the autoscaler may have made, one after another.
            rollout_timeout_seconds=rollout_timeout_seconds(cold_start, most_replicas(cfg)),
            dtype=cfg.model.dtype.value,
            quantization=cfg.model.quantization.value if cfg.model.quantization else None,
            gpus=cfg.serving.gpus_per_replica if cfg.uses_gpu else 0,
            gpu_resource_name=gpu_resource,
            gpu_memory_utilization=cfg.serving.gpu_memory_utilization,
            extra_engine_args=cfg.serving.extra_engine_args,
            model_cache_size=cfg.serving.model_cache_size,
            # stream: the engine reads the bucket itself (no fetch init container); the store egress stays.
            load_mode=cfg.model.load_mode,
            shm_size=cfg.serving.shm_size,
            model_volume_claim=cfg.model.volume_claim,
            hf_token_secret=cfg.model.hf_token_secret,
            node_selector=node_selector,
            tolerations=tolerations,
            startup_timeout_seconds=cfg.serving.startup_timeout_seconds,
            pre_stop_seconds=cfg.serving.pre_stop_seconds,
            drain_seconds=cfg.serving.drain_seconds,
            termination_grace_seconds=cfg.serving.termination_grace_seconds,
            max_surge=rollout.max_surge,
            max_unavailable=rollout.max_unavailable,
            gateway_namespace=ENVOY_PROXY_NAMESPACE,
            gateway_pod_labels=ENVOY_PROXY_POD_LABELS,
            monitoring_namespace=cfg.monitoring.prometheus_namespace,
            monitoring_pod_labels=cfg.monitoring.prometheus_pod_labels,
            pod_monitor=cfg.monitoring.pod_monitor and monitored,
            pod_monitor_labels=cfg.monitoring.pod_monitor_labels,
            pod_monitor_target_labels=target_labels,
            endpoint_picker_pod_labels=route.epp_pod_labels,
            extra_env=ctx.model_extra_env,
            # The platform's identity for the store goes to the one model that reads it (az:// on Azure:
            # its federated credential trusts this model's ServiceAccount only).
            service_account_annotations=dict(ctx.model_service_account_annotations) if reads_store else {},
            pod_labels=dict(ctx.model_pod_labels) if reads_store else {},
            extra_egress=extra_egress(cfg, ctx),
            model_store_cidrs=store_cidrs,
            internet_egress_accepted_by=(
                ACCEPTING_FIELD if internet_egress_accepted(cfg, store_cidrs) else None
            ),
            dns_cidrs=dns_cidrs(cfg),
        ),
        opts=pulumi.ResourceOptions(provider=ctx.provider, depends_on=after),
    )


def _hold_args(route: VariantRoute, namespace: str) -> ColdStartHoldArgs:
    """The hold of one model that scales to zero (the stack installs the KEDA HTTP add-on itself)."""
    assert route.hold_timeout_seconds is not None
    variant = route.variant
    return ColdStartHoldArgs(
        namespace=namespace,
        served_model_name=variant.model_name,
        service_name=variant.resource_name,
        model_pod_labels={
            "app.kubernetes.io/name": variant.resource_name,
            "app.kubernetes.io/component": "model-server",
        },
        hold_timeout_seconds=route.hold_timeout_seconds,
        route_key=route.hold_name,
        gateway_namespace=ENVOY_PROXY_NAMESPACE,
        gateway_pod_labels=ENVOY_PROXY_POD_LABELS,
        # The stack installs the add-on once, named after no model (KedaHttpAddOn in deploy_workload).
        install_add_on=False,
        # The AIGatewayRoute reaches the interceptor by an Envoy Gateway Backend's FQDN (stacks/routing.py):
        # no cross-namespace backendRef, so no ReferenceGrant.
        reference_grant=False,
    )
