"""The metric catalogue: the series names the pinned exporters export (exported.yaml, next to this file).

Dashboards (components/dashboards.py) and alerts name metrics only from this list; tests parse every
PromQL expression and check each name against it, so a renamed metric in an exporter bump fails a test
instead of leaving an empty panel.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CATALOGUE_PATH = Path(__file__).with_name("exported.yaml")

METRIC_TYPES = ("counter", "gauge", "histogram")

#: Labels the scrape itself puts on every series (prometheus-operator's PodMonitor/ServiceMonitor
#: relabelling: instance, job, namespace, pod, container, endpoint, service) plus the podTargetLabels
#: InferStack's monitors copy (components/model_server.py pod_monitor_target_labels: app.kubernetes.io/name;
#: components/monitoring.py ENVOY_GATEWAY_POD_LABELS), as Prometheus spells them.
SCRAPE_TARGET_LABELS = frozenset(
    {
        "instance",
        "job",
        "namespace",
        "pod",
        "container",
        "endpoint",
        "service",
        "app_kubernetes_io_name",
        "gateway_envoyproxy_io_owning_gateway_name",
        "gateway_envoyproxy_io_owning_gateway_namespace",
    }
)


@dataclass(frozen=True)
class MetricSource:
    """Where a metric is defined: repository (owner/name), tag or version, and file(s) there."""

    repo: str
    ref: str
    file: str


@dataclass(frozen=True)
class Metric:
    """One series name as Prometheus stores it, with the exporter's own labels."""

    name: str
    type: str  # counter | gauge | histogram (a histogram's _bucket, _sum and _count are each an entry)
    exporter: str  # short exporter id: vllm, envoy, ai-gateway, keda, keda-http-add-on, dcgm-exporter, ...
    labels: frozenset[str]
    source: MetricSource
    note: str | None = None


def catalogue_problems(raw: Any) -> list[str]:
    """Every way `raw` (the parsed YAML) is not a well-formed catalogue, each naming the entry and field;
    empty when it is usable."""
    if not isinstance(raw, dict) or not isinstance(raw.get("metrics"), list):
        return ["the file must be a mapping with a list under `metrics`"]
    problems: list[str] = []
    names: list[str] = []
    for i, entry in enumerate(raw["metrics"]):
        where = f"metrics[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        unknown = set(entry) - {"name", "type", "exporter", "labels", "source", "note"}
        if unknown:
            problems.append(f"{where}: unknown key(s) {sorted(unknown)}")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}.name: must be a non-empty string")
            continue
        where = f"metrics[{i}] ({name})"
        names.append(name)
        if entry.get("type") not in METRIC_TYPES:
            problems.append(f"{where}.type: {entry.get('type')!r} is not one of {', '.join(METRIC_TYPES)}")
        if entry.get("type") == "histogram" and not name.endswith(("_bucket", "_sum", "_count")):
            problems.append(f"{where}.name: a histogram series ends in _bucket, _sum or _count")
        if (
            entry.get("type") == "histogram"
            and name.endswith("_bucket")
            and "le" not in (entry.get("labels") or [])
        ):
            problems.append(f"{where}.labels: a _bucket series carries `le`")
        if not isinstance(entry.get("exporter"), str) or not entry["exporter"]:
            problems.append(f"{where}.exporter: must be a non-empty string")
        labels = entry.get("labels")
        if not isinstance(labels, list) or not all(isinstance(label, str) and label for label in labels):
            problems.append(f"{where}.labels: must be a list of label names")
        elif labels != sorted(set(labels)):
            problems.append(f"{where}.labels: keep them sorted and unique")
        source = entry.get("source")
        if not isinstance(source, dict) or not all(
            isinstance(source.get(key), str) and source[key] for key in ("repo", "ref", "file")
        ):
            problems.append(f"{where}.source: needs repo, ref and file (where the metric is defined)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(f"metrics: one entry per name; repeated: {', '.join(duplicates)}")
    if names != sorted(names):
        problems.append("metrics: keep the entries sorted by name")
    return problems


@functools.cache
def load_catalogue(path: Path = CATALOGUE_PATH) -> dict[str, Metric]:
    """The catalogue by series name. Raises ValueError listing every problem when the file is malformed."""
    raw = yaml.safe_load(path.read_text())
    problems = catalogue_problems(raw)
    if problems:
        raise ValueError(f"metric catalogue {path}: {len(problems)} problem(s)\n  " + "\n  ".join(problems))
    return {
        entry["name"]: Metric(
            name=entry["name"],
            type=entry["type"],
            exporter=entry["exporter"],
            labels=frozenset(entry["labels"]),
            source=MetricSource(**entry["source"]),
            note=entry.get("note"),
        )
        for entry in raw["metrics"]
    }
