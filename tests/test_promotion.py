"""SLO-gated promotion: the decision rules (pure), the stack-file edit, and the whole command against a
real Prometheus (Debian's `prometheus` package) serving synthetic vLLM series written with promtool."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferstack import promotion as p
from tests.cli_run import run
from tests.processes import wait_until_ready

OK = p.Objectives()


def healthy(requests: float = 1000.0) -> p.Measurement:
    return p.Measurement(requests=requests, errors=0.0, ttft_p95_seconds=0.4, itl_p95_seconds=0.03)


# --- decide ---------------------------------------------------------------------------------------


def test_healthy_canary_steps_by_step() -> None:
    verdict = p.decide(healthy(), OK, weight=10, step=10)
    assert (verdict.decision, verdict.next_weight) == (p.Decision.PROMOTE, 20)


def test_promotion_stops_at_100() -> None:
    assert p.decide(healthy(), OK, weight=95, step=10).next_weight == 100
    at_full = p.decide(healthy(), OK, weight=100, step=10)
    assert (at_full.decision, at_full.next_weight) == (p.Decision.PROMOTE, 100)
    assert "remove the old variant" in at_full.reason


def test_weight_zero_holds_without_traffic() -> None:
    verdict = p.decide(healthy(), OK, weight=0, step=10)
    assert (verdict.decision, verdict.next_weight) == (p.Decision.HOLD, 0)


def test_too_little_traffic_holds() -> None:
    verdict = p.decide(healthy(requests=OK.min_requests - 1), OK, weight=10, step=10)
    assert (verdict.decision, verdict.next_weight) == (p.Decision.HOLD, 10)
    assert "min_requests" in verdict.reason


def test_no_series_at_all_holds() -> None:
    verdict = p.decide(p.Measurement(None, None, None, None), OK, weight=10, step=10)
    assert verdict.decision is p.Decision.HOLD


def test_certain_error_breach_rolls_back_before_min_requests() -> None:
    # 2 errors in 20 requests: even if the next 80 of min_requests 100 succeed, 2 % > 1 %.
    few = p.Measurement(requests=20, errors=2, ttft_p95_seconds=None, itl_p95_seconds=None)
    verdict = p.decide(few, OK, weight=10, step=10)
    assert (verdict.decision, verdict.next_weight) == (p.Decision.ROLLBACK, 0)
    assert [b.slo for b in verdict.breaches] == ["max_error_ratio"]
    # 1 error in 20 could still end at 1 %: not yet certain.
    assert p.decide(few.__class__(20, 1, None, None), OK, weight=10, step=10).decision is p.Decision.HOLD


@pytest.mark.parametrize(
    ("measurement", "slo", "shown"),
    [
        (p.Measurement(1000, 20, 0.4, 0.03), "max_error_ratio", "error rate 2.00% > 1.00%"),
        (p.Measurement(1000, 0, 3.5, 0.03), "max_ttft_p95_seconds", "TTFT p95 3.500 s > 2.000 s"),
        (p.Measurement(1000, 0, 0.4, 0.25), "max_itl_p95_seconds", "inter-token latency p95 0.250 s"),
    ],
)
def test_each_breach_rolls_back_naming_slo_and_value(
    measurement: p.Measurement, slo: str, shown: str
) -> None:
    verdict = p.decide(measurement, OK, weight=30, step=10)
    assert (verdict.decision, verdict.next_weight) == (p.Decision.ROLLBACK, 0)
    assert [b.slo for b in verdict.breaches] == [slo]
    assert shown in verdict.reason and slo in verdict.reason


def test_missing_latency_with_traffic_holds() -> None:
    verdict = p.decide(p.Measurement(1000, 0, 0.4, None), OK, weight=30, step=10)
    assert verdict.decision is p.Decision.HOLD
    assert "max_itl_p95_seconds" in verdict.reason


@given(
    requests=st.floats(0, 1e6),
    error_share=st.floats(0, 1),
    ttft=st.one_of(st.none(), st.floats(0, 60)),
    itl=st.one_of(st.none(), st.floats(0, 5)),
    weight=st.integers(0, 100),
    step=st.integers(1, 100),
)
def test_decision_rules_hold_for_any_measurement(
    requests: float, error_share: float, ttft: float | None, itl: float | None, weight: int, step: int
) -> None:
    m = p.Measurement(requests, requests * error_share, ttft, itl)
    v = p.decide(m, OK, weight, step)
    assert 0 <= v.next_weight <= 100
    if v.decision is p.Decision.ROLLBACK:
        assert v.next_weight == 0 and v.breaches and weight > 0
    elif v.decision is p.Decision.HOLD:
        assert v.next_weight == weight and not v.breaches
    else:
        # promote only on enough traffic with every objective met and measured
        assert v.next_weight == min(100, weight + step)
        assert requests >= OK.min_requests and error_share <= OK.max_error_ratio
        assert ttft is not None and ttft <= OK.max_ttft_p95_seconds
        assert itl is not None and itl <= OK.max_itl_p95_seconds


@pytest.mark.parametrize(
    ("objectives", "field"),
    [
        (p.Objectives(max_error_ratio=1.5), "max_error_ratio"),
        (p.Objectives(max_ttft_p95_seconds=0), "max_ttft_p95_seconds"),
        (p.Objectives(max_itl_p95_seconds=float("nan")), "max_itl_p95_seconds"),
        (p.Objectives(min_requests=0), "min_requests"),
        (p.Objectives(window="10 minutes"), "window"),
        (p.Objectives(window="5m30s"), "window"),
    ],
)
def test_bad_objectives_name_the_field(objectives: p.Objectives, field: str) -> None:
    problems = p.validate_objectives(objectives)
    assert len(problems) == 1 and problems[0].startswith(f"{field}:")


def test_default_objectives_are_valid() -> None:
    assert p.validate_objectives(p.Objectives()) == []


def test_queries_use_the_engine_metric_names_and_select_the_variant() -> None:
    q = p.queries(p.VariantSeries("inferstack", "llama-v2"), "10m")
    assert "vllm:time_to_first_token_seconds_bucket" in q.ttft_p95
    assert "vllm:inter_token_latency_seconds_bucket" in q.itl_p95
    assert 'status="5xx"' in q.errors and 'status="5xx"' not in q.requests
    for promql in vars(q).values():
        assert 'namespace="inferstack",pod=~"llama-v2-[a-z0-9]+-[a-z0-9]+"' in promql
    by_label = p.queries(p.VariantSeries("inferstack", "llama-v2", p.SelectBy.LABEL), "5m")
    assert 'app_kubernetes_io_name="llama-v2"' in by_label.ttft_p95 and "[5m]" in by_label.ttft_p95


# --- the stack file -------------------------------------------------------------------------------

STACK = """\
# A two-model stack (the shape issue 16's schema gives; weights per variant).
config:
  inferstack:cluster:
    namespace: serving
  inferstack:models:
    - name: llama
      variants:
        - name: v1
          weight: 90   # the current fine-tune
        - name: v2
          weight: 10   # canary: promoted by `inferstack promote`
    - name: qwen
      variants:
        - name: base
          weight: 100
"""


def test_default_workload_follows_the_stack_object_names() -> None:
    # llm-<id>-<variant>; id from the entry, else the name as a DNS label (stacks/config.py object_id).
    assert p.default_workload(STACK, "llama", "v2") == "llm-llama-v2"
    with_id = STACK.replace("    - name: llama\n", "    - name: llama\n      id: llama-8b\n")
    assert p.default_workload(with_id, "llama", "v2") == "llm-llama-8b-v2"
    assert p.default_workload("", "Llama-3.1-8B-Instruct", "v2") == "llm-llama-3-1-8b-instruct-v2"


def test_reads_weights_and_namespace() -> None:
    found = p.read_variant_weights(STACK, "llama", "v2")
    assert found.weights == {"v1": 90, "v2": 10}
    assert STACK[found.start : found.end] == "10" and found.line == 11
    assert p.namespace_of(STACK) == "serving"
    assert p.namespace_of("config: {}\n") == p.DEFAULT_NAMESPACE


def test_writing_keeps_every_other_character() -> None:
    weights = p.new_weights({"v1": 90, "v2": 10}, "v2", 20)
    assert weights == {"v1": 80, "v2": 20}
    written = p.write_weights(STACK, "llama", weights)
    expected = STACK.replace("weight: 90   #", "weight: 80   #").replace("weight: 10   #", "weight: 20   #")
    assert written == expected
    assert p.read_variant_weights(written, "llama", "v2").weights == {"v1": 80, "v2": 20}


def test_rollback_gives_the_canary_weight_back() -> None:
    assert p.new_weights({"v1": 70, "v2": 30}, "v2", 0) == {"v1": 100, "v2": 0}


def test_three_variants_are_not_guessed() -> None:
    with pytest.raises(p.StackEditError, match="3 variants"):
        p.new_weights({"a": 80, "b": 10, "c": 10}, "c", 20)


@pytest.mark.parametrize(
    ("model", "variant", "message"),
    [
        ("mistral", "v2", "no model 'mistral' (models: llama, qwen)"),
        ("llama", "v3", "no variant 'v3' (variants: v1, v2)"),
    ],
)
def test_unknown_names_list_the_known_ones(model: str, variant: str, message: str) -> None:
    with pytest.raises(p.StackEditError, match=re.escape(message)):
        p.read_variant_weights(STACK, model, variant)


def test_non_numeric_weight_is_named() -> None:
    with pytest.raises(p.StackEditError, match=r"\[v2\]\.weight: expected a whole number"):
        p.read_variant_weights(STACK.replace("weight: 10", "weight: ten"), "llama", "v2")


def test_single_model_stack_says_what_is_missing() -> None:
    with pytest.raises(p.StackEditError, match=r"config\.inferstack:models: not in the stack file"):
        p.read_variant_weights("config:\n  inferstack:model:\n    served_name: x\n", "x", "v2")


# --- against a real Prometheus --------------------------------------------------------------------

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    not (PROMETHEUS and PROMTOOL),
    reason="Prometheus not installed: `apt-get install prometheus` (Debian; `make e2e-host` does it) gives "
    "/usr/bin/prometheus and promtool",
)

STEP_SECONDS = 15
SPAN_SECONDS = 30 * 60
TTFT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5)


@dataclass(frozen=True)
class Traffic:
    """One variant's synthetic load, per 15 s scrape: requests, of which 5xx, and where its latencies fall."""

    pod: str
    requests: int
    errors: int
    ttft_seconds: float  # every request's TTFT (lands in the first bucket at or above it)
    itl_seconds: float


SERVED_NAME = "llama-3.1-8b"
NAMESPACE = "serving"
TRAFFIC = (
    Traffic("llm-llama-v2-7d9f8c6b5-x2k4q", requests=5, errors=0, ttft_seconds=0.3, itl_seconds=0.02),
    # A Deployment named llm-llama-v2-big: its pods must not count as llm-llama-v2's (two segments after the name).
    Traffic("llm-llama-v2-big-6c8d7b9f4-p9s7t", requests=50, errors=25, ttft_seconds=9.0, itl_seconds=0.4),
    Traffic("llm-llama-v3-5b7c9d8f6-m3n8r", requests=5, errors=0, ttft_seconds=4.0, itl_seconds=0.02),
    Traffic("llm-llama-v4-8f6d5c7b9-q4w2e", requests=5, errors=1, ttft_seconds=0.3, itl_seconds=0.02),
    Traffic("llm-llama-v5-9d7f6b8c5-r5t6y", requests=5, errors=0, ttft_seconds=0.3, itl_seconds=0.3),
    Traffic("llm-llama-v6-4c6b8d9f7-z8x7c", requests=0, errors=0, ttft_seconds=0.3, itl_seconds=0.02),
)


def openmetrics(end: int) -> str:
    """The series vLLM v0.31.0's server exports, as the PodMonitor scrapes them (namespace, pod), for
    SPAN_SECONDS up to `end`, one sample per STEP_SECONDS."""
    times = range(end - SPAN_SECONDS, end + 1, STEP_SECONDS)
    lines = ["# TYPE http_requests counter"]
    for t in TRAFFIC:
        target = f'namespace="{NAMESPACE}",pod="{t.pod}",handler="/v1/chat/completions",method="POST"'
        for i, ts in enumerate(times):
            ok, bad = (t.requests - t.errors) * i, t.errors * i
            lines.append(f'http_requests_total{{{target},status="2xx"}} {ok} {ts}')
            lines.append(f'http_requests_total{{{target},status="5xx"}} {bad} {ts}')
        # Health checks are not client traffic: many, never counted.
        health = f'namespace="{NAMESPACE}",pod="{t.pod}",handler="/health",method="GET",status="2xx"'
        lines.extend(f"http_requests_total{{{health}}} {100 * i} {ts}" for i, ts in enumerate(times))
    for family, buckets, attr in (
        ("vllm:time_to_first_token_seconds", TTFT_BUCKETS, "ttft_seconds"),
        ("vllm:inter_token_latency_seconds", ITL_BUCKETS, "itl_seconds"),
    ):
        lines.append(f"# TYPE {family} histogram")
        for t in TRAFFIC:
            value = getattr(t, attr)
            target = f'namespace="{NAMESPACE}",pod="{t.pod}",model_name="{SERVED_NAME}",engine="0"'
            per_step = t.requests * (20 if attr == "itl_seconds" else 1)  # ~20 tokens a request
            for i, ts in enumerate(times):
                n = per_step * i
                for le in (*buckets, float("inf")):
                    count = n if value <= le else 0
                    le_text = "+Inf" if le == float("inf") else repr(le)
                    lines.append(f'{family}_bucket{{{target},le="{le_text}"}} {count} {ts}')
                lines.append(f"{family}_count{{{target}}} {n} {ts}")
                lines.append(f"{family}_sum{{{target}}} {n * value} {ts}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RunningPrometheus:
    url: str
    at: float  # the last sample's time: queries are evaluated there


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPrometheus]:
    assert PROMETHEUS and PROMTOOL
    root = tmp_path_factory.mktemp("prometheus")
    end = int(time.time()) // 60 * 60 - 60
    (root / "series.om").write_text(openmetrics(end), encoding="utf-8")
    data = root / "data"
    subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(root / "series.om"), str(data)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (root / "prometheus.yml").write_text("global: {}\nscrape_configs: []\n", encoding="utf-8")
    port = _free_port()
    log = (root / "prometheus.log").open("w")
    server = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=3650d",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_ready(f"{url}/-/ready", server, 60):
            pytest.fail(f"Prometheus did not start: {(root / 'prometheus.log').read_text()[-2000:]}")
        yield RunningPrometheus(url, float(end))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _measure(prom: RunningPrometheus, workload: str) -> p.Measurement:
    client = p.PrometheusClient(prom.url, at=prom.at)
    return p.measure(client, p.VariantSeries(NAMESPACE, workload), "10m")


@needs_prometheus
def test_measures_the_variant_pods_only(prometheus: RunningPrometheus) -> None:
    m = _measure(prometheus, "llm-llama-v2")
    # 5 requests every 15 s for 10 minutes; increase() extrapolates at the window's edges, so a little slack.
    assert m.requests == pytest.approx(200, rel=0.05)
    assert m.errors == 0
    # Every request in the (0.25, 0.5] bucket: the p95 is interpolated inside it, never the decoy's 9 s.
    assert m.ttft_p95_seconds is not None and 0.25 < m.ttft_p95_seconds <= 0.5
    assert m.itl_p95_seconds is not None and 0.01 < m.itl_p95_seconds <= 0.025


@needs_prometheus
@pytest.mark.parametrize(
    ("workload", "decision", "slo"),
    [
        ("llm-llama-v2", p.Decision.PROMOTE, None),
        ("llm-llama-v3", p.Decision.ROLLBACK, "max_ttft_p95_seconds"),
        ("llm-llama-v4", p.Decision.ROLLBACK, "max_error_ratio"),
        ("llm-llama-v5", p.Decision.ROLLBACK, "max_itl_p95_seconds"),
        ("llm-llama-v6", p.Decision.HOLD, None),  # scraped, no traffic
        ("llm-llama-v9", p.Decision.HOLD, None),  # no series at all
    ],
)
def test_decisions_against_prometheus(
    prometheus: RunningPrometheus, workload: str, decision: p.Decision, slo: str | None
) -> None:
    verdict = p.decide(_measure(prometheus, workload), OK, weight=10, step=10)
    assert verdict.decision is decision, verdict.reason
    assert [b.slo for b in verdict.breaches] == ([slo] if slo else [])


@needs_prometheus
def test_min_requests_holds_a_healthy_canary(prometheus: RunningPrometheus) -> None:
    strict = p.Objectives(min_requests=1000)
    assert p.decide(_measure(prometheus, "llm-llama-v2"), strict, 10, 10).decision is p.Decision.HOLD


def _stack(tmp_path: Path, canary: str) -> Path:
    path = tmp_path / "Pulumi.multi.yaml"
    path.write_text(STACK.replace("name: v2", f"name: {canary}"), encoding="utf-8")
    return path


@needs_prometheus
def test_cli_promotes_and_writes_the_stack_file(
    prometheus: RunningPrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _stack(tmp_path, "v2")
    code, out, err = run(
        capsys, "promote", "--stack-file", str(path), "--model", "llama", "--variant", "v2",
        "--prometheus", prometheus.url, "--at", str(prometheus.at), "--step", "15", "--write",
    )  # fmt: skip
    assert code == 0, err
    assert "llama/v2: promote (weight 10 -> 25)" in out
    assert "vllm:time_to_first_token_seconds_bucket" in out  # the queries are shown
    text = path.read_text(encoding="utf-8")
    assert "weight: 75   # the current fine-tune" in text and "weight: 25   # canary" in text
    assert text.startswith("# A two-model stack")
    assert "llama: v1 90 -> 75, v2 10 -> 25" in err


@needs_prometheus
def test_cli_rollback_exits_4_and_zeroes_the_canary(
    prometheus: RunningPrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _stack(tmp_path, "v3")
    code, out, _ = run(
        capsys, "promote", "--stack-file", str(path), "--model", "llama", "--variant", "v3",
        "--prometheus", prometheus.url, "--at", str(prometheus.at), "--write", "--format", "json",
    )  # fmt: skip
    assert code == p.EXIT_ROLLBACK == 4
    report = json.loads(out)
    assert report["verdict"]["decision"] == "rollback"
    assert report["verdict"]["breaches"][0]["slo"] == "max_ttft_p95_seconds"
    assert report["verdict"]["breaches"][0]["measured"] > 2.0
    assert report["weights_after"] == {"v1": 100, "v3": 0} and report["written"]
    assert p.read_variant_weights(path.read_text(encoding="utf-8"), "llama", "v3").weights["v3"] == 0


@needs_prometheus
def test_cli_hold_leaves_the_file_alone(
    prometheus: RunningPrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _stack(tmp_path, "v6")
    before = path.read_text(encoding="utf-8")
    code, out, _ = run(
        capsys, "promote", "--stack-file", str(path), "--model", "llama", "--variant", "v6",
        "--prometheus", prometheus.url, "--at", str(prometheus.at), "--write",
    )  # fmt: skip
    assert code == 0 and "hold (weight 10 -> 10)" in out
    assert path.read_text(encoding="utf-8") == before


def test_cli_unreachable_prometheus_exits_5_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _stack(tmp_path, "v2")
    before = path.read_text(encoding="utf-8")
    code, _, err = run(
        capsys, "promote", "--stack-file", str(path), "--model", "llama", "--variant", "v2",
        "--prometheus", f"http://127.0.0.1:{_free_port()}", "--write",
    )  # fmt: skip
    assert code == p.EXIT_UNMEASURED == 5
    assert "cannot reach Prometheus" in err and "the weight stays 10" in err
    assert path.read_text(encoding="utf-8") == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--variant", "v9"], "no variant 'v9' (variants: v1, v2)"),
        (["--variant", "v2", "--window", "ten"], "window: 'ten' is not a Prometheus duration"),
        (["--variant", "v2", "--step", "0"], "--step 0: a weight step from 1 to 100"),
        (["--variant", "v2", "--prometheus", "localhost:9090"], "--prometheus 'localhost:9090'"),
        (["--variant", "v2", "--workload", "Llama_V2"], "workload: 'Llama_V2' is not a Kubernetes name"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    path = _stack(tmp_path, "v2")
    code, _, err = run(capsys, "promote", "--stack-file", str(path), "--model", "llama", *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
