"""summary.md of a plan: what a stack creates, on one page a reviewer reads in a pull request."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from inferstack.planning.plan import is_placeholder_digest
from inferstack.reporting.cost import estimate_cost, estimate_stack_cost
from inferstack.reporting.diff import traffic_of
from stacks.cold_start import ColdStartBudget
from stacks.config import (
    StackConfig,
    alternative_budget,
    cold_start_budget_of,
    cold_start_seconds,
    cooldown_seconds,
)
from stacks.rollout import stack_rollout_strategy
from stacks.workload import NAME as WORKLOAD_NAME

if TYPE_CHECKING:
    from inferstack.planning.plan import Plan


def render_summary(plan: Plan) -> str:
    """The plan's summary.md: platform, model, replicas, GPUs, cost, endpoint, resources and releases."""
    cfg = plan.config
    if cfg.models is not None:
        return _multi_model_summary(plan)
    low, high = plan.gpus()
    replicas = (
        f"{cfg.autoscaling.min_replicas} to {cfg.autoscaling.max_replicas} (autoscaled)"
        if cfg.autoscaling.enabled
        else f"{cfg.serving.replicas} (fixed)"
    )
    lines = [
        f"# Plan: stack `{plan.stack}`",
        "",
        f"- platform: {cfg.platform.value}, tier: {cfg.tier.value}, Kubernetes {cfg.cluster.kubernetes_version}",
        f"- model: `{cfg.model.name}` from `{cfg.model.uri}`",
        f"- engine: {cfg.serving.engine.value}, image `{cfg.serving.image}`{_image_note(cfg.serving.image)}",
        f"- replicas: {replicas}",
    ]
    if cfg.uses_gpu:
        lines.append(
            f"- GPUs: {cfg.serving.gpus_per_replica} x {cfg.serving.gpu_type.value} per replica; "
            f"{low} to {high} in total (GPU-hours per day at max: {high * 24})"
        )
    else:
        lines.append("- GPUs: none (CPU engine)")
    lines.append(_updates_line(cfg))
    lines += _deadlines_line(plan)
    if cfg.autoscaling.enabled and cfg.autoscaling.min_replicas == 0:
        lines.append(
            f"- scale to zero: after {cooldown_seconds(cfg)} s without traffic (at least a cold start: "
            "autoscaling.cooldown_seconds)"
        )
    lines.append(_routing_line(cfg))
    lines.append(estimate_cost(cfg).summary_line())
    lines += _common_tail(plan)
    lines += _operating_section(cfg)
    lines += _cold_start_section(cfg)
    return "\n".join(lines)


def _operating_section(cfg: StackConfig) -> list[str]:
    """## Operating: what an operator looks at and who hears of an outage (docs/operating.md)."""
    m = cfg.monitoring
    monitors = m.install_prometheus or m.pod_monitor
    lines = [
        "## Operating",
        "",
        "docs/operating.md: dashboards, alerts and their runbooks, the guardrail, the chat UI.",
        "",
    ]
    if m.dashboards.enabled and (m.install_prometheus or m.dashboards.namespace):
        where = m.dashboards.namespace or m.prometheus_namespace
        grafana = (
            "Grafana installed with the stack (admin password in its Secret; port-forward to reach it)"
            if m.dashboards.install_grafana
            else "for your Grafana's dashboard sidecar (label "
            f"{m.dashboards.sidecar_label}={m.dashboards.sidecar_label_value})"
        )
        lines.append(f"- dashboards: Models, API clients, GPUs as ConfigMaps in `{where}`, {grafana}")
    else:
        lines.append(
            "- dashboards: none (no Prometheus of the stack's, and no monitoring.dashboards.namespace)"
        )
    if m.alerts.enabled and monitors:
        slos = "; ".join(
            f"`{v.model_name}` {v.config.slo.availability:.2%} available, {v.config.slo.ttft_target:.0%} within "
            f"{v.config.slo.ttft_seconds:g} s to first token"
            for v in {v.model_name: v for v in cfg.served}.values()
        )
        lines.append(f"- SLOs (burn-rate alerts over 30 days): {slos}")
        if m.install_prometheus and not m.alerts.alertmanager:
            lines.append(
                "- **alerts notify no one**: the stack's Prometheus evaluates them, and no Alertmanager receives "
                "them; set monitoring.alerts.alertmanager and create its receivers' Secret"
            )
        elif m.alerts.alertmanager:
            lines.append(
                f"- alerts: to the stack's Alertmanager; its receivers come from the Secret "
                f"`alertmanager-llm-alertmanager` (key alertmanager.yaml) in `{m.prometheus_namespace}`, yours to create"
            )
        else:
            lines.append("- alerts: evaluated by your Prometheus, sent to its Alertmanager")
    else:
        lines.append("- alerts: none (monitoring.alerts off, or no Prometheus operator to read the rules)")
    if any(v.config.uses_gpu for v in cfg.served) and m.gpu_telemetry.enabled and monitors:
        lines.append("- GPU telemetry: NVIDIA DCGM exporter, scraped by the stack's Prometheus")
    g = cfg.guardrail
    if g.enabled:
        own = ", ".join(sorted(g.clients)) or "none"
        lines.append(
            f"- guardrail: prompts to the models (and answers, where a client's policy asks) checked by "
            f"`{g.classifier_model}`; processor down or slow: fail-{g.failure_mode.value} for every client (a "
            f"client's own failure_mode covers the classifier only); clients with their own policy: {own}"
        )
    if cfg.chat_ui.enabled and cfg.chat_ui.hostname:
        sso = (
            f"single sign-on; the Secret `{cfg.chat_ui.oidc.client_secret_name}` with its client secret is yours to "
            "create"
            if cfg.chat_ui.oidc
            else "Open WebUI's own accounts"
        )
        lines.append(
            f"- chat UI: https://{cfg.chat_ui.hostname} ({sso}; calls the API as `{cfg.chat_ui.client}`)"
        )
    lines.append("")
    return lines


def _cold_start_section(cfg: StackConfig) -> list[str]:
    """## Cold start: per model (or variant), each item of the budget with its assumption, the total, and
    the same in the other load mode where it could work (stacks/cold_start.py)."""
    lines = [
        "## Cold start",
        "",
        "One new replica, from the autoscaler's request to ready (docs/operating.md#cold-start). The total "
        "sets the scale-to-zero cooldown, the gateway's hold and the rollout deadlines; the time to first "
        "token expected is the total less the startup probe's allowance.",
        "",
    ]
    for variant in cfg.served:
        v = variant.config
        chosen = cold_start_budget_of(v)
        other = alternative_budget(v)
        name = f"`{variant.model_name}`" + (f" {variant.variant}" if variant.variant else "")
        lines += [
            f"### {name}: {chosen.total_seconds} s (to first token {chosen.expected_seconds} s), "
            f"load_mode {chosen.load_mode.value}",
            "",
            *_budget_table(chosen, other),
            "",
        ]
        if other is not None:
            lines += [
                f"With load_mode {other.load_mode.value}: {other.total_seconds} s (to first token "
                f"{other.expected_seconds} s). "
                + (
                    "stream skips the sha256 check of the weights (docs/operating.md#cold-start)."
                    if other.load_mode.value == "stream"
                    else "copy checks every weight file's sha256 before the engine starts."
                ),
                "",
            ]
    return lines


def _budget_table(chosen: ColdStartBudget, other: ColdStartBudget | None) -> list[str]:
    alt = f" | {other.load_mode.value} (s)" if other is not None else ""
    rows = [
        f"| item | {chosen.load_mode.value} (s){alt} | assumption |",
        "|---|---|" + ("---|" if other is not None else "") + "---|",
    ]
    for item in chosen.items:
        also = f" | {other.item(item.name).seconds}" if other is not None else ""
        rows.append(f"| {item.name} | {item.seconds}{also} | {item.assumption} |")
    total = f" | **{other.total_seconds}**" if other is not None else ""
    rows.append(f"| **total** | **{chosen.total_seconds}**{total} | |")
    return rows


def _routing_line(cfg: StackConfig) -> str:
    """How requests reach the model (stacks/routing.py), and why prefix-aware routing is off where a user
    might expect it on."""
    most = cfg.autoscaling.max_replicas if cfg.autoscaling.enabled else cfg.serving.replicas
    hint = ""
    if (
        not cfg.uses_inference_pool
        and not cfg.scales_to_zero
        and cfg.uses_gpu
        and most >= 2
        and cfg.serving.prefix_aware_routing is None
    ):
        hint = " (prefix-cache-aware routing off: set network.api_server_cidrs to turn it on)"
    if not cfg.routes_by_model:
        return "- routing: one HTTPRoute to the model's Service" + hint
    ways = ["Envoy AI Gateway reads `model` (GET /v1/models answered by the gateway)"]
    if cfg.uses_inference_pool:
        ways.append("prefix-cache-aware: InferencePool + endpoint picker")
    if cfg.scales_to_zero:
        ways.append(f"held at zero by the KEDA HTTP add-on for up to {cold_start_seconds(cfg)} s, then 503")
    if cfg.gateway.token_quotas:
        ways.append("token quotas per API client")
    return "- routing: " + "; ".join(ways) + hint


def _common_tail(plan: Plan) -> list[str]:
    """Endpoint, TLS, resources, releases and outputs: the same for one model or several."""
    cfg = plan.config
    by_type = Counter(r.type for r in plan.recording.resources if r.custom)
    lines = [
        f"- endpoint: {_endpoint(plan)} (OpenAI-compatible base URL, API keys required)",
        f"- TLS: {cfg.tls.mode.value}; load balancer: {_load_balancer(cfg)}",
        "",
        "## Resources by type",
        "",
        "| type | count |",
        "|---|---|",
        *[f"| `{t}` | {n} |" for t, n in sorted(by_type.items())],
        "",
        f"{plan.counts()}, {len(plan.manifests())} Kubernetes objects in manifests.yaml.",
        "",
        "## Helm releases (installed by Pulumi; not rendered into manifests.yaml)",
        "",
        "| release | chart | version | namespace |",
        "|---|---|---|---|",
        *[f"| {h.release} | {h.chart} | {h.version} | {h.namespace} |" for h in plan.helm_releases()],
        "",
    ]
    if plan.recording.exports:
        lines += ["## Stack outputs", ""]
        lines += [_output_line(plan, k, v) for k, v in sorted(plan.recording.exports.items())]
        lines.append("")
        if any(plan.recording.placeholder_source(v) for v in plan.recording.exports.values()):
            lines += [
                f"{PLACEHOLDER_LABEL}: made up by the offline plan's recording mock in the provider's real "
                "format (inferstack/planning/fakes/); `pulumi up` gets the real value from the provider.",
                "",
            ]
    return lines


def _multi_model_summary(plan: Plan) -> str:
    """summary.md of a stack with `models`: one row per model (or variant), then the totals."""
    cfg = plan.config
    low, high = plan.gpus()
    lines = [
        f"# Plan: stack `{plan.stack}`",
        "",
        f"- platform: {cfg.platform.value}, tier: {cfg.tier.value}, Kubernetes {cfg.cluster.kubernetes_version}",
        f"- models: {', '.join(f'`{name}`' for name in cfg.model_names)} behind one hostname and one set of "
        "API keys; clients choose with the OpenAI `model` field, GET /v1/models lists them all",
        f"- GPUs: {low} to {high} in total, all models (GPU-hours per day at max: {high * 24})",
        estimate_stack_cost(cfg)
        .summary_line()
        .replace("- cost (GPU nodes)", "- cost (GPU nodes, all models)", 1),
    ]
    if cfg.gateway.token_quotas:
        quotas = ", ".join(
            f"{q.client} {_budget(q.tokens_per_minute, 'min')}{' / ' if q.tokens_per_minute and q.tokens_per_day else ''}"
            f"{_budget(q.tokens_per_day, 'day')}"
            for q in cfg.gateway.token_quotas
        )
        lines.append(f"- token quotas (per API client, all models): {quotas}")
    lines += [
        "",
        "## Models",
        "",
        "| model | variant | weight | API clients | weights from | engine | replicas | GPUs per replica | at zero "
        "| cost |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    traffic = traffic_of(cfg)
    idle: list[str] = []
    parked: list[str] = []
    for variant in cfg.served:
        v = variant.config
        replicas = (
            f"{v.autoscaling.min_replicas}-{v.autoscaling.max_replicas}"
            if v.autoscaling.enabled
            else f"{v.serving.replicas} (fixed)"
        )
        gpus = f"{v.serving.gpus_per_replica} x {v.serving.gpu_type.value}" if v.uses_gpu else "none (CPU)"
        at_zero = (
            f"held up to {cold_start_seconds(v)} s, idle {cooldown_seconds(v)} s to zero"
            if v.scales_to_zero
            else "—"
        )
        cost = estimate_cost(v).summary_line().removeprefix("- cost (GPU nodes): ").split("\n")[0]
        clients = "all"
        if variant.variant is not None:
            assigned = [
                c for c, name in traffic[variant.model_name]["clients"].items() if name == variant.variant
            ]
            clients = ", ".join(assigned) or "none"
            if not assigned and variant.weight > 0:
                idle.append(f"{variant.model_name} {variant.variant}")
            if variant.weight == 0 and v.autoscaling.min_replicas > 0 and v.uses_gpu:
                parked.append(
                    f"{variant.model_name} {variant.variant} ({v.autoscaling.min_replicas} x "
                    f"{v.serving.gpus_per_replica} GPU)"
                )
        lines.append(
            f"| `{variant.model_name}` | {variant.variant or '—'} | {variant.weight} % | {clients} | "
            f"`{v.model.uri}` | {v.serving.engine.value} | {replicas} | {gpus} | {at_zero} | {cost} |"
        )
    lines += [""]
    if idle:
        lines += [
            f"**No API client lands on {', '.join(idle)}**: each client sticks to one variant, and with "
            f"{len(cfg.serving.api_keys.clients)} clients these weights assign none to it, so it gets no "
            "traffic (and `inferstack promote` can only hold). Raise its weight or add API clients.",
            "",
        ]
    if parked:
        lines += [
            f"**At 0 % but running**: {', '.join(parked)} gets no traffic and still holds its min_replicas "
            "(`inferstack promote` rolls back to 0 % and leaves it so): remove the variant, or give it "
            "`autoscaling: {min_replicas: 0}` to scale it to zero.",
            "",
        ]
    lines += _common_tail(plan)
    lines += _operating_section(cfg)
    lines += _cold_start_section(cfg)
    return "\n".join(lines)


def _budget(tokens: int | None, per: str) -> str:
    return f"{tokens:,} tokens/{per}" if tokens else ""


#: How summary.md marks a value the offline plan made up (a fake certificate, IP, hostname, ARN, id).
PLACEHOLDER_LABEL = "placeholder"


def _updates_line(cfg: StackConfig) -> str:
    if stack_rollout_strategy(cfg).surges:
        return "- updates: one extra replica at a time (the GPU pool has room for max_replicas + 1)"
    return (
        "- updates: one replica taken down at a time (no room for an extra replica: the stack cannot see "
        "spare capacity, or the pool is capped at max_replicas); the endpoint runs one replica short meanwhile"
    )


def _deadlines_line(plan: Plan) -> list[str]:
    """How long a rollout of the model server may take, as the plan gives it to Kubernetes and to Pulumi."""
    servers = [
        r
        for r in plan.recording.resources
        if r.type == "kubernetes:apps/v1:Deployment" and r.name == f"{WORKLOAD_NAME}-deployment"
    ]
    if not servers:
        return []
    server = servers[0]
    deadline = (server.inputs.get("spec") or {}).get("progressDeadlineSeconds", 600)
    given = server.custom_timeouts.get("update")
    waits = (
        given.removesuffix("s") + " s"
        if given and given.removesuffix("s").isdigit()
        else given or "600 s (pulumi-kubernetes' default)"
    )
    return [
        f"- rollout deadlines: each new replica {deadline} s to become ready (progressDeadlineSeconds, one "
        f"cold start and a margin); `pulumi up` waits up to {waits} for a whole rollout"
    ]


def _image_note(image: str) -> str:
    if is_placeholder_digest(image):
        return f" (**{PLACEHOLDER_LABEL}** digest: all zeros, from the stack file; no registry serves it)"
    return ""


def _endpoint(plan: Plan) -> str:
    url = plan.client_base_url()
    if url is None:
        return "none exported (the stack has no `url` output)"
    source = plan.recording.placeholder_source(url)
    return f"{url} ({PLACEHOLDER_LABEL}, from {source})" if source else url


def _output_line(plan: Plan, name: str, value: Any) -> str:
    source = plan.recording.placeholder_source(value)
    shown = f"`{_short(value)}`" if value is not None else "none"
    if source:
        return f"- `{name}`: **{PLACEHOLDER_LABEL}** for {source}: {shown}"
    return f"- `{name}`: {shown}"


def _short(value: Any) -> str:
    """One line for a markdown bullet: multi-line values (a PEM) are cut at their first line."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    first, _, rest = text.strip().partition("\n")
    if rest:
        first += " ..."
    return first if len(first) <= 120 else first[:117] + "..."


def _load_balancer(cfg: StackConfig) -> str:
    if cfg.aws is not None:
        return f"AWS NLB ({cfg.aws.load_balancer_scheme.value}) in {cfg.aws.region}, EKS {cfg.cluster.kubernetes_version}"
    if cfg.gcp is not None:
        return (
            f"GCP L4 load balancer ({cfg.gcp.load_balancer_scheme.value}) in {cfg.gcp.region}, "
            f"GKE {cfg.cluster.kubernetes_version}+ ({cfg.gcp.release_channel.value} channel)"
        )
    if cfg.azure is not None:
        return (
            f"Azure Standard load balancer ({cfg.azure.load_balancer_scheme.value}) in {cfg.azure.location}, "
            f"AKS {cfg.cluster.kubernetes_version} ({cfg.azure.upgrade_channel.value} upgrades)"
        )
    return cfg.gateway.load_balancer.kind.value
