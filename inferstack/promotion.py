"""SLO-gated promotion of a canary variant: measure it in Prometheus, decide, and step its weight in the stack file.

`inferstack promote STACK --model M --variant V` is one step of a GitOps loop, not a controller: it reads
the variant's SLOs over a window from Prometheus, decides, and (with --write) edits the variant's
`weight` in the stack YAML, so the change is a commit that `inferstack diff` shows and a reviewer merges.
A scheduled workflow runs it and opens the pull request (docs/multi-model.md, "Promotion").

Why not Flagger or Argo Rollouts: Envoy AI Gateway v1.1.0 generates the HTTPRoute from the
AIGatewayRoute and rewrites its rules on every reconcile (internal/controller/ai_gateway_route.go:
`dst.Spec.Rules = rules`, then `c.client.Update`; controller.go `Owns(&gwapiv1.HTTPRoute{})` re-runs it
whenever the HTTPRoute changes), so a controller that patches backendRef weights there is undone at
once, and one that writes its own HTTPRoute (Flagger) bypasses the model routing. The weights belong in
the AIGatewayRoute, which Pulumi writes from the stack file, so the stack file is where they change.

The decision (`decide`) is a pure function of a `Measurement`, the `Objectives` and the current weight:

* hold     - the variant has weight 0, or served fewer than `min_requests` in the window, or a latency
             histogram has no observations: not enough evidence either way; the weight stays;
* rollback - an objective is breached (weight -> 0); the verdict names the SLO and the measured value.
             An error-rate breach counts before `min_requests` is reached when it is already certain:
             more errors than the objective allows even if the rest of `min_requests` all succeeded;
* promote  - every objective met on enough traffic: weight -> min(100, weight + step).

Sources of the series (the serving image pins vllm/vllm-openai v0.31.0; the vLLM sources read are the
search index's copy of vllm/v1/metrics/loggers.py and vllm/entrypoints/serve/instrumentator/metrics.py,
not a checkout of that tag: the repository is too large to mirror here):

* `vllm:time_to_first_token_seconds` and `vllm:inter_token_latency_seconds` - histograms the engine's
  PrometheusStatLogger registers with labels `model_name` (the served model name) and `engine`;
* `http_requests_total{handler, method, status}` - prometheus-fastapi-instrumentator's counter on the
  engine's API server (status grouped as 2xx/4xx/5xx by default); the 5xx share is the error rate.
  `vllm:request_success_total{finished_reason}` counts finished requests only, so a request that failed
  before the engine saw it never appears there.

Which variant a series belongs to: `model_name` is the same for every variant of a model (each serves
the public name clients send), so it cannot tell them apart. The PodMonitor (components/model_server.py)
keeps the operator's default target labels `namespace`, `pod`, `container` (prometheus-operator
promcfg.go) and no pod labels, so today the variant is found by its pod names: a Deployment's pods are
named `<deployment>-<pod-template-hash>-<suffix>`. With `podTargetLabels: [app.kubernetes.io/name]` on
the PodMonitor the series carry `app_kubernetes_io_name` (the operator replaces `.` and `/` with `_`),
and `SelectBy.LABEL` selects on it instead.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from stacks.stack_yaml import YamlError, load_yaml

#: Exit status of `inferstack promote` per decision. 3 already means "a bug in InferStack" for every
#: command (inferstack/cli.py), so a rollback gets its own code: a script must not read a crash as a
#: breached SLO, or the reverse.
EXIT_ROLLBACK = 4
#: Prometheus could not be asked or its answer was unusable: nothing was decided, nothing written.
EXIT_UNMEASURED = 5

# The metric names, as the pinned engine exports them (see the module docstring).
TTFT_HISTOGRAM = "vllm:time_to_first_token_seconds"
ITL_HISTOGRAM = "vllm:inter_token_latency_seconds"
HTTP_REQUESTS = "http_requests_total"
#: The OpenAI API routes; /health, /metrics and /ping are not client traffic.
API_HANDLERS = "/v1/.+"
#: The label prometheus-operator makes of the pod label `app.kubernetes.io/name` (podTargetLabels).
WORKLOAD_TARGET_LABEL = "app_kubernetes_io_name"

#: A Prometheus duration, as PromQL range selectors take it (one unit; e.g. 5m, 1h, 30s).
_DURATION = re.compile(r"^[1-9][0-9]*(ms|s|m|h|d|w)$")
#: A Kubernetes object name (RFC 1123 label; a Deployment's name becomes its pods' prefix).
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Decision(StrEnum):
    PROMOTE = "promote"
    HOLD = "hold"
    ROLLBACK = "rollback"


class SelectBy(StrEnum):
    """How the variant's series are found: by pod name (works with the PodMonitor as it is), or by the
    `app_kubernetes_io_name` target label (needs podTargetLabels on the PodMonitor)."""

    POD = "pod"
    LABEL = "label"


@dataclass(frozen=True)
class Objectives:
    """What a canary must meet over `window` to take the next step. Defaults suit an interactive chat
    endpoint on a GPU; set them per model from its own baseline."""

    max_error_ratio: float = 0.01  # share of the variant's /v1 responses that are 5xx, 0-1
    max_ttft_p95_seconds: float = 2.0  # 95th percentile time to first token, seconds
    max_itl_p95_seconds: float = 0.1  # 95th percentile inter-token latency, seconds
    min_requests: int = 100  # fewer /v1 requests than this in the window: hold
    window: str = "10m"  # PromQL range the rates and quantiles are taken over


def validate_objectives(objectives: Objectives) -> list[str]:
    """Every problem with the objectives, each naming its field; empty when usable."""
    problems: list[str] = []
    if not 0 <= objectives.max_error_ratio < 1:
        problems.append(
            f"max_error_ratio: {objectives.max_error_ratio} must be a share from 0 to below 1 (0.01 is 1 %)"
        )
    for name in ("max_ttft_p95_seconds", "max_itl_p95_seconds"):
        value = getattr(objectives, name)
        if not (math.isfinite(value) and value > 0):
            problems.append(f"{name}: {value} must be a positive number of seconds")
    if objectives.min_requests < 1:
        problems.append(f"min_requests: {objectives.min_requests} must be 1 or more")
    if not _DURATION.match(objectives.window):
        problems.append(
            f"window: {objectives.window!r} is not a Prometheus duration; write one number and unit, e.g. 10m or 1h"
        )
    return problems


@dataclass(frozen=True)
class VariantSeries:
    """Which series are the variant's: its model server's namespace and workload name (the Deployment's
    name, which is also its pods' `app.kubernetes.io/name`)."""

    namespace: str
    workload: str
    select_by: SelectBy = SelectBy.POD

    def matchers(self) -> str:
        """PromQL label matchers, without braces. Values are checked names, so they need no escaping."""
        if self.select_by is SelectBy.LABEL:
            return f'namespace="{self.namespace}",{WORKLOAD_TARGET_LABEL}="{self.workload}"'
        # A ReplicaSet's pods are <deployment>-<pod-template-hash>-<5 random>, both lowercase
        # alphanumeric. Prometheus anchors the regex, so exactly two segments must follow the name: a
        # Deployment `<workload>-x` (pods `<workload>-x-<hash>-<random>`) does not match.
        return f'namespace="{self.namespace}",pod=~"{self.workload}-[a-z0-9]+-[a-z0-9]+"'


def validate_series(series: VariantSeries) -> list[str]:
    problems: list[str] = []
    for name in ("namespace", "workload"):
        value = getattr(series, name)
        if not _K8S_NAME.match(value) or len(value) > 63:
            problems.append(
                f"{name}: {value!r} is not a Kubernetes name (lowercase letters, digits and '-', at most 63)"
            )
    return problems


@dataclass(frozen=True)
class Queries:
    """The PromQL the decision rests on, printed with the verdict so anyone can rerun it."""

    requests: str
    errors: str
    ttft_p95: str
    itl_p95: str


def queries(series: VariantSeries, window: str) -> Queries:
    sel = series.matchers()
    api = f'{sel},handler=~"{API_HANDLERS}"'
    return Queries(
        # increase() over the window: a count of requests, comparable with min_requests.
        requests=f"sum(increase({HTTP_REQUESTS}{{{api}}}[{window}]))",
        errors=f'sum(increase({HTTP_REQUESTS}{{{api},status="5xx"}}[{window}]))',
        ttft_p95=f"histogram_quantile(0.95, sum by (le) (rate({TTFT_HISTOGRAM}_bucket{{{sel}}}[{window}])))",
        itl_p95=f"histogram_quantile(0.95, sum by (le) (rate({ITL_HISTOGRAM}_bucket{{{sel}}}[{window}])))",
    )


@dataclass(frozen=True)
class Measurement:
    """The variant's SLIs over the window. None: Prometheus had no series (no traffic, or not scraped);
    a latency is also None when its histogram saw no observations (histogram_quantile gives NaN)."""

    requests: float | None
    errors: float | None
    ttft_p95_seconds: float | None
    itl_p95_seconds: float | None

    @property
    def error_ratio(self) -> float | None:
        if not self.requests:
            return None
        return (self.errors or 0.0) / self.requests


@dataclass(frozen=True)
class Breach:
    slo: str  # the Objectives field breached
    measured: float
    objective: float

    def __str__(self) -> str:
        if self.slo == "max_error_ratio":
            return f"error rate {self.measured:.2%} > {self.objective:.2%} ({self.slo})"
        what = "TTFT p95" if self.slo == "max_ttft_p95_seconds" else "inter-token latency p95"
        return f"{what} {self.measured:.3f} s > {self.objective:.3f} s ({self.slo})"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    weight: int  # the variant's weight now, 0-100
    next_weight: int  # what it should be; equal to `weight` on hold
    reason: str
    breaches: tuple[Breach, ...] = field(default=())


def decide(measurement: Measurement, objectives: Objectives, weight: int, step: int) -> Verdict:
    """The next step for a variant at `weight` (0-100) given its measurement. Pure; see the module doc."""
    if weight == 0:
        return Verdict(
            Decision.HOLD,
            0,
            0,
            "weight 0: the variant gets no traffic to measure; give it a first weight (e.g. 5) by hand",
        )
    requests = measurement.requests or 0.0
    errors = measurement.errors or 0.0
    # An error-rate breach is certain once the errors exceed what the objective allows of the larger of
    # the traffic seen and min_requests: more traffic can only dilute it down to that.
    error_breach_certain = errors > objectives.max_error_ratio * max(requests, objectives.min_requests)
    if requests < objectives.min_requests and not error_breach_certain:
        return Verdict(
            Decision.HOLD,
            weight,
            weight,
            f"{requests:.0f} requests in {objectives.window}, fewer than min_requests {objectives.min_requests}: "
            "not enough traffic to judge",
        )
    breaches: list[Breach] = []
    ratio = errors / requests if requests else 1.0
    if ratio > objectives.max_error_ratio:
        breaches.append(Breach("max_error_ratio", ratio, objectives.max_error_ratio))
    latencies = (
        ("max_ttft_p95_seconds", measurement.ttft_p95_seconds),
        ("max_itl_p95_seconds", measurement.itl_p95_seconds),
    )
    for slo, measured in latencies:
        if measured is not None and measured > getattr(objectives, slo):
            breaches.append(Breach(slo, measured, getattr(objectives, slo)))
    if breaches:
        return Verdict(
            Decision.ROLLBACK,
            weight,
            0,
            "SLO breached: " + "; ".join(str(b) for b in breaches),
            tuple(breaches),
        )
    unmeasured = [slo for slo, measured in latencies if measured is None]
    if unmeasured:
        return Verdict(
            Decision.HOLD,
            weight,
            weight,
            f"no observations for {', '.join(unmeasured)} in {objectives.window}: is the variant scraped "
            "(PodMonitor) and are its requests reaching the engine?",
        )
    next_weight = min(100, weight + step)
    met = (
        f"error rate {ratio:.2%} <= {objectives.max_error_ratio:.2%}, "
        f"TTFT p95 {measurement.ttft_p95_seconds:.3f} s <= {objectives.max_ttft_p95_seconds:.3f} s, "
        f"inter-token latency p95 {measurement.itl_p95_seconds:.3f} s <= {objectives.max_itl_p95_seconds:.3f} s "
        f"over {requests:.0f} requests"
    )
    if weight == 100:
        return Verdict(Decision.PROMOTE, 100, 100, f"already at 100; {met}: remove the old variant to finish")
    return Verdict(Decision.PROMOTE, weight, next_weight, met)


# --- Prometheus -------------------------------------------------------------------------------------


class PrometheusError(Exception):
    """Prometheus could not be reached, or answered something other than one instant vector."""


@dataclass(frozen=True)
class PrometheusClient:
    """A minimal client of Prometheus's HTTP API (`GET /api/v1/query`, an instant query).

    urllib, not a client library: the project's locks hold none for querying Prometheus
    (prometheus-client is the exporter side), and one GET needs none.
    """

    base_url: str
    timeout_seconds: float = 10.0
    at: float | None = None  # evaluation time, Unix seconds; None: Prometheus's now

    def query(self, promql: str) -> float | None:
        """The single value of an instant query; None when the result is empty. A NaN (histogram_quantile
        without observations) is returned as None too. Raises PrometheusError."""
        params = {"query": promql, **({"time": f"{self.at:.3f}"} if self.at is not None else {})}
        url = f"{self.base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(
                url, timeout=self.timeout_seconds
            ) as response:  # http(s) only: validate_prometheus_url
                body = json.load(response)
        except urllib.error.HTTPError as err:
            # Prometheus answers a bad query with 400 and {"status":"error","error":...}.
            detail = _error_detail(err)
            raise PrometheusError(f"{self.base_url} answered {err.code} to `{promql}`: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise PrometheusError(f"cannot reach Prometheus at {self.base_url}: {reason}") from None
        except ValueError as err:
            raise PrometheusError(f"{self.base_url} did not answer JSON: {err}") from None
        return _single_value(body, promql, self.base_url)


def _error_detail(err: urllib.error.HTTPError) -> str:
    try:
        return str(json.load(err).get("error", err.reason))
    except (ValueError, AttributeError):
        return str(err.reason)


def _single_value(body: Any, promql: str, source: str) -> float | None:
    if not isinstance(body, dict) or body.get("status") != "success":
        raise PrometheusError(f"{source}: query `{promql}` failed: {body!r:.200}")
    data = body.get("data", {})
    if data.get("resultType") != "vector":
        raise PrometheusError(f"{source}: query `{promql}` gave a {data.get('resultType')}, not a vector")
    result = data.get("result", [])
    if not result:
        return None
    if len(result) > 1:
        raise PrometheusError(f"{source}: query `{promql}` gave {len(result)} series; expected one (sum)")
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def validate_prometheus_url(url: str) -> list[str]:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return [
            f"--prometheus {url!r}: give Prometheus's base URL, e.g. http://prometheus-operated.monitoring:9090 "
            "(port-forwarded: http://127.0.0.1:9090)"
        ]
    return []


def measure(client: PrometheusClient, series: VariantSeries, window: str) -> Measurement:
    q = queries(series, window)
    return Measurement(
        requests=client.query(q.requests),
        errors=client.query(q.errors),
        ttft_p95_seconds=client.query(q.ttft_p95),
        itl_p95_seconds=client.query(q.itl_p95),
    )


# --- The stack file ---------------------------------------------------------------------------------

#: Where a variant's weight lives in a stack file: config -> MODELS_KEY -> the model (a list item whose
#: name key is the model, or a mapping keyed by it) -> VARIANTS_KEY -> the variant (likewise) -> WEIGHT_KEY.
#: The stack-file schema of issue 16 names these; change them here if it does otherwise.
MODELS_KEY = "inferstack:models"
MODEL_NAME_KEYS = ("name", "served_name")
VARIANTS_KEY = "variants"
VARIANT_NAME_KEYS = ("name",)
WEIGHT_KEY = "weight"


class StackEditError(Exception):
    """The stack file has no weight for that model and variant, or it is not a number; the message says
    where it looked."""


@dataclass(frozen=True)
class VariantWeights:
    """The weights of one model's variants as written, and where the named variant's value sits."""

    weights: dict[str, int]  # variant name -> weight, in file order
    start: int  # character offset of the named variant's weight scalar in the text
    end: int
    line: int  # 1-based, for messages


def read_variant_weights(text: str, model: str, variant: str) -> VariantWeights:
    """The model's variant weights from the stack file's text. Raises StackEditError or YamlError."""
    load_yaml(text)  # the project's strict reading first: repeated keys and syntax errors, located
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    where = f"config.{MODELS_KEY}"
    models = _child(_child(root, "config"), MODELS_KEY)
    if models is None:
        raise StackEditError(
            f"{where}: not in the stack file; promote works on a stack with a models list whose variants "
            "carry weights"
        )
    model_node = _named(models, model, MODEL_NAME_KEYS)
    if model_node is None:
        known = ", ".join(_names(models, MODEL_NAME_KEYS)) or "none"
        raise StackEditError(f"{where}: no model {model!r} (models: {known}); pass --model with one of them")
    where += f"[{model}].{VARIANTS_KEY}"
    variants = _child(model_node, VARIANTS_KEY)
    if variants is None:
        raise StackEditError(f"{where}: model {model!r} has no variants; there is nothing to promote")
    weights: dict[str, int] = {}
    target: ScalarNode | None = None
    for name, node in _entries(variants, VARIANT_NAME_KEYS):
        weight_node = _child(node, WEIGHT_KEY)
        if not isinstance(weight_node, ScalarNode) or not re.fullmatch(r"[0-9]+", weight_node.value):
            raise StackEditError(
                f"{where}[{name}].{WEIGHT_KEY}: expected a whole number 0-100"
                + (f", found {weight_node.value!r}" if isinstance(weight_node, ScalarNode) else "")
            )
        weights[name] = int(weight_node.value)
        if name == variant:
            target = weight_node
    if target is None:
        raise StackEditError(
            f"{where}: no variant {variant!r} (variants: {', '.join(weights) or 'none'}); pass --variant with one"
        )
    return VariantWeights(weights, target.start_mark.index, target.end_mark.index, target.start_mark.line + 1)


def _child(node: Node | None, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return value_node
    return None


def _entries(node: Node, name_keys: tuple[str, ...]) -> list[tuple[str, Node]]:
    """(name, node) of each entry: list items named by one of name_keys, or a mapping's key/value pairs."""
    if isinstance(node, SequenceNode):
        named: list[tuple[str, Node]] = []
        for item in node.value:
            for key in name_keys:
                name_node = _child(item, key)
                if isinstance(name_node, ScalarNode):
                    named.append((name_node.value, item))
                    break
        return named
    if isinstance(node, MappingNode):
        return [(k.value, v) for k, v in node.value if isinstance(k, ScalarNode)]
    return []


def _named(node: Node, name: str, name_keys: tuple[str, ...]) -> Node | None:
    return next((n for entry, n in _entries(node, name_keys) if entry == name), None)


def _names(node: Node, name_keys: tuple[str, ...]) -> list[str]:
    return [entry for entry, _ in _entries(node, name_keys)]


def new_weights(weights: dict[str, int], variant: str, target: int) -> dict[str, int]:
    """Set `variant` to `target` and give the difference to (or take it from) the other variant, so the
    weights still sum to 100. With more than two variants the change is ambiguous: StackEditError."""
    others = [name for name in weights if name != variant]
    if target == weights[variant]:
        return dict(weights)
    if len(others) != 1:
        raise StackEditError(
            f"model has {len(weights)} variants ({', '.join(weights)}): promote steps a canary against one "
            "other variant; edit the weights by hand"
        )
    (other,) = others
    result = dict(weights)
    result[other] = weights[other] - (target - weights[variant])
    result[variant] = target
    if result[other] < 0:
        raise StackEditError(
            f"weights {weights} do not sum to 100: fix them in the stack file before promoting"
        )
    return result


def write_weights(text: str, model: str, weights: dict[str, int]) -> str:
    """The stack file's text with each named variant's weight replaced, every other character kept
    (comments, quoting, indentation, key order): only the weight scalars are spliced."""
    spans = []
    for variant, weight in weights.items():
        found = read_variant_weights(text, model, variant)
        if found.weights[variant] != weight:
            spans.append((found.start, found.end, str(weight)))
    for start, end, value in sorted(spans, reverse=True):
        text = text[:start] + value + text[end:]
    return text


def namespace_of(text: str) -> str:
    """The model servers' namespace as the stack file sets it (config.inferstack:cluster.namespace), or the
    schema's default."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return DEFAULT_NAMESPACE
    node = _child(_child(_child(root, "config"), "inferstack:cluster"), "namespace")
    return node.value if isinstance(node, ScalarNode) and node.value else DEFAULT_NAMESPACE


#: stacks/config.py ClusterConfig.namespace's default.
DEFAULT_NAMESPACE = "inferstack"


#: The object-name prefix and id rules of stacks/config.py (ModelEntry.object_id, ServedVariant.resource_name
#: on main at 3b787c4): a variant's objects are `llm-<id>-<variant>`, `id` defaulting to the model's name
#: made a DNS label of at most 24 characters.
RESOURCE_PREFIX = "llm"
MODEL_ID_KEY = "id"
_MAX_ID = 24


def default_workload(text: str, model: str, variant: str) -> str:
    """The variant's model-server name (its Deployment, and its pods' `app.kubernetes.io/name`) as the stack
    composition names it: `llm-<id>-<variant>`, with the model entry's `id` or its name made a DNS label."""
    object_id = ""
    try:
        models = _child(_child(yaml.compose(text, Loader=yaml.SafeLoader), "config"), MODELS_KEY)
    except yaml.YAMLError:
        models = None
    entry = _named(models, model, MODEL_NAME_KEYS) if models is not None else None
    id_node = _child(entry, MODEL_ID_KEY)
    if isinstance(id_node, ScalarNode) and id_node.value:
        object_id = id_node.value
    else:
        object_id = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:_MAX_ID].rstrip("-")
    return f"{RESOURCE_PREFIX}-{object_id}-{variant}"


__all__ = [
    "EXIT_ROLLBACK",
    "EXIT_UNMEASURED",
    "Breach",
    "Decision",
    "Measurement",
    "Objectives",
    "PrometheusClient",
    "PrometheusError",
    "Queries",
    "SelectBy",
    "StackEditError",
    "VariantSeries",
    "VariantWeights",
    "Verdict",
    "YamlError",
    "decide",
    "default_workload",
    "measure",
    "namespace_of",
    "new_weights",
    "queries",
    "read_variant_weights",
    "validate_objectives",
    "validate_prometheus_url",
    "validate_series",
    "write_weights",
]
