"""Helm values we pass to charts, against each chart's values schema and default values.

Helm enforces a chart's values.schema.json at install time, so a value that breaks it fails a real
`pulumi up`; we check it offline first, on the values as Helm sees them (the chart's defaults with ours
merged over them). Helm silently ignores keys the chart does not read, so a misspelt key is a setting
that never takes effect: every key path we set must be one the chart knows.

A key is known when the chart's values.yaml has it, its values.schema.json declares it, or values.yaml
documents it in a commented-out line (`# podAnnotations: {}`, a common chart convention).
Below a free-form map anything goes. A map is free-form when:
- its default is an empty map `{}` or null (the chart leaves its content to us), or
- its name is one charts pass straight into a Kubernetes field: names ending in annotations, labels,
  nodeSelector or securityContext (any case), and affinity, resources, env, extraEnv, extraArgs; or
- it is `global` or the name of one of the chart's dependencies (subchart values we have no defaults for).
Lists are leaves: a list we set replaces the default whole.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from inferstack.validation.common import CheckOutcome, Finding, format_path, schema_findings

CHECK = "helm-values"
CHART_DIR_ENV = "INFERSTACK_CHART_DIR"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_FREE_FORM_SUFFIXES = ("annotations", "labels", "nodeselector", "securitycontext")
_FREE_FORM_NAMES = frozenset({"affinity", "resources", "env", "extraenv", "extraargs"})

#: Maps a chart passes whole into a configuration object of its own rather than into Kubernetes fields,
#: by chart folder: their defaults list only what the chart sets, so their keys are checked against the
#: object's own fields instead, and anything below those goes.
_PASSED_THROUGH: dict[str, dict[tuple[str, ...], frozenset[str]]] = {
    # gateway-helm v1.8.3 templates/envoy-gateway-config.yaml merges .Values.config.envoyGateway over its
    # defaults and writes it whole as the EnvoyGateway configuration; its keys are EnvoyGatewaySpec's json
    # fields (api/v1alpha1/envoygateway_types.go at v1.8.3).
    "envoy-gateway": {
        ("config", "envoyGateway"): frozenset(
            {
                "gateway",
                "provider",
                "logging",
                "admin",
                "telemetry",
                "xdsServer",
                "rateLimit",
                "extensionManager",
                "extensionManagers",
                "extensionApis",
                "gatewayAPI",
                "runtimeFlags",
                "envoyProxy",
            }
        )
    },
}


@dataclass(frozen=True)
class HelmValues:
    """The values one Helm release passes to its chart."""

    release: str  # the release name, used to name findings
    values_dir: str  # the chart's folder under the chart directory, e.g. "cert-manager"
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChartData:
    defaults: dict[str, Any]
    documented: frozenset[tuple[str, ...]]  # key paths found only in commented-out lines
    schema: dict[str, Any] | None
    validator: jsonschema.protocols.Validator | None
    subcharts: frozenset[str]


_REAL_KEY = re.compile(r"^(\s*)([A-Za-z_][\w.-]*)\s*:(?:\s|$)")
_COMMENTED_KEY = re.compile(r"^(\s*)#\s*([A-Za-z_][\w.-]*):(?:\s|$)")


def documented_keys(text: str) -> frozenset[tuple[str, ...]]:
    """Key paths that values.yaml shows only as comments, such as `  # podAnnotations: {}` under `webhook:`.

    A commented key sits at the indentation of its `#`, below the real keys above it with less
    indentation. Imprecise for commented-out examples several levels deep; it can only make us accept
    a key, never reject one.
    """
    stack: list[tuple[int, str]] = []  # (indent, key) of the real mapping keys enclosing this line
    found: set[tuple[str, ...]] = set()
    for line in text.splitlines():
        commented = _COMMENTED_KEY.match(line)
        if commented:
            indent = len(commented[1])
            parents = tuple(key for level, key in stack if level < indent)
            found.add((*parents, commented[2]))
            continue
        real = _REAL_KEY.match(line)
        if real:
            indent = len(real[1])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, real[2]))
    return frozenset(found)


@functools.lru_cache(maxsize=32)
def load_chart(chart_path: str) -> ChartData:
    """A chart folder's default values, documented keys, values schema and dependencies, read once."""
    folder = Path(chart_path)
    text = (folder / "values.yaml").read_text() if (folder / "values.yaml").is_file() else ""
    defaults = yaml.load(text, Loader=_LOADER) or {}
    schema = None
    validator = None
    if (folder / "values.schema.json").is_file():
        schema = json.loads((folder / "values.schema.json").read_text())
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        validator = cls(schema)
    subcharts: set[str] = set()
    if (folder / "Chart.yaml").is_file():
        chart = yaml.load((folder / "Chart.yaml").read_text(), Loader=_LOADER) or {}
        for dependency in chart.get("dependencies") or []:
            subcharts.add(dependency.get("alias") or dependency.get("name"))
    return ChartData(defaults, documented_keys(text), schema, validator, frozenset(subcharts))


def merge_values(defaults: Any, overrides: Any) -> Any:
    """Helm's coalescing: maps merge key by key, a null removes the default, anything else replaces it."""
    if not (isinstance(defaults, dict) and isinstance(overrides, dict)):
        return overrides
    merged = dict(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_values(defaults.get(key), value)
    return merged


def _is_free_form_name(key: str) -> bool:
    lowered = key.lower()
    return lowered in _FREE_FORM_NAMES or lowered.endswith(_FREE_FORM_SUFFIXES)


def _schema_at(schema: Any, root: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The sub-schemas that a schema node declares for `key` (following local $refs and *Of branches)."""
    if not isinstance(schema, dict):
        return []
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _schema_at(target, root, key)
    found = []
    if key in (schema.get("properties") or {}):
        found.append(schema["properties"][key])
    for combinator in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(combinator) or []:
            found.extend(_schema_at(branch, root, key))
    return found


def _unknown_keys(
    values: dict[str, Any],
    defaults: Any,
    schemas: list[dict[str, Any]],
    chart: ChartData,
    path: tuple[str, ...],
    passed_through: dict[tuple[str, ...], frozenset[str]] | None = None,
) -> list[tuple[tuple[str, ...], str]]:
    """(key path, problem) for every key we set that the chart does not know, or sets with another shape."""
    problems: list[tuple[tuple[str, ...], str]] = []
    passed_through = passed_through or {}
    if path in passed_through:
        return [
            (
                (*path, str(key)),
                f"is not a field of the object the chart writes this map into (it takes "
                f"{', '.join(sorted(passed_through[path]))})",
            )
            for key in values
            if key not in passed_through[path]
        ]
    for key, value in values.items():
        key_path = (*path, str(key))
        has_default = isinstance(defaults, dict) and key in defaults
        default = defaults.get(key) if isinstance(defaults, dict) else None
        sub_schemas = [s for parent in schemas for s in _schema_at(parent, chart.schema or {}, str(key))]
        if not has_default and not sub_schemas and key_path not in chart.documented:
            problems.append(
                (
                    key_path,
                    "is not a key of this chart (not in its values.yaml or values schema); Helm would ignore it",
                )
            )
            continue
        if not isinstance(value, dict):
            if has_default and isinstance(default, dict) and default and value is not None:
                problems.append(
                    (key_path, f"is a map in the chart's values.yaml, not a {type(value).__name__}")
                )
            continue
        free_form = (
            _is_free_form_name(str(key))
            or (not path and (key == "global" or key in chart.subcharts))
            or (has_default and (default is None or default == {}))
            or not has_default  # only documented or declared: no defaults to compare below it
        )
        if free_form:
            continue
        if not isinstance(default, dict):
            problems.append(
                (key_path, f"is a {type(default).__name__} in the chart's values.yaml, not a map")
            )
            continue
        problems.extend(_unknown_keys(value, default, sub_schemas, chart, key_path, passed_through))
    return problems


def validate_helm_values(releases: list[HelmValues], chart_dir: Path | None) -> CheckOutcome:
    """Check each release's values against its chart's values schema and default values (module doc)."""
    if not releases:
        return CheckOutcome([], [], 0)
    if chart_dir is None:
        names = ", ".join(r.release for r in releases)
        return CheckOutcome(
            [],
            [
                f"Helm values were not checked ({names}): no chart folder given. `make fetch-schemas` "
                "fetches the pinned charts' values into build/upstream/charts, which `make check` then uses; "
                f"or pass --chart-dir or set {CHART_DIR_ENV} to a folder of charts"
            ],
            0,
        )
    findings: list[Finding] = []
    notes: list[str] = []
    validated = 0
    for release in releases:
        folder = chart_dir / release.values_dir
        if not (folder / "values.yaml").is_file():
            # A note, not a finding: a chart data folder may lack a chart (../shared/charts has no CRD
            # charts); `make fetch-schemas` fetches every pinned chart, CRD charts included.
            notes.append(
                f"Helm values of release {release.release} were not checked: no values schema for "
                f"chart {release.values_dir} (no {folder}/values.yaml); `make fetch-schemas` fetches it"
            )
            continue
        chart = load_chart(str(folder.resolve()))
        validated += 1
        schema_problems: set[str] = set()
        if chart.validator is not None:
            merged = merge_values(chart.defaults, release.values)
            errors = list(chart.validator.iter_errors(merged))
            for finding in schema_findings(CHECK, release.release, errors):
                findings.append(
                    Finding(
                        CHECK,
                        finding.resource,
                        f"{finding.message} (values.schema.json of {release.values_dir})",
                    )
                )
                schema_problems.add(finding.message.split(":", 1)[0])
        roots = [chart.schema] if chart.schema is not None else []
        passed = _PASSED_THROUGH.get(release.values_dir)
        for key_path, problem in _unknown_keys(release.values, chart.defaults, roots, chart, (), passed):
            where = format_path(key_path)
            if where not in schema_problems:
                findings.append(
                    Finding(CHECK, release.release, f"{where}: {problem} (chart {release.values_dir})")
                )
    return CheckOutcome(findings, notes, validated)


def default_chart_dir() -> Path | None:
    """The folder named by $INFERSTACK_CHART_DIR, if set."""
    value = os.environ.get(CHART_DIR_ENV)
    return Path(value) if value else None
