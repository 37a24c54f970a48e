"""What every validation step shares: the Finding type, object names, and readable schema errors."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import jsonschema

# At most this many schema errors are listed per object; a badly broken object would drown the rest.
MAX_ERRORS_PER_OBJECT = 20


@dataclass(frozen=True)
class Finding:
    """One problem that makes `inferstack check` fail."""

    check: str  # "kubernetes-validate" | "crd-schema" | "checkov" | "helm-values" | "policy"
    resource: str  # "Deployment/inferstack/llm-server", "ClusterIssuer/letsencrypt", or a Helm release name
    message: str  # readable; starts with the field path when there is one
    rule: str | None = None  # the rule's own id where it has one, e.g. checkov's CKV_K8S_8


class CheckOutcome(NamedTuple):
    """What one validation step returns."""

    findings: list[Finding]
    notes: list[str]  # what was not validated, and why (and the CEL rule counts: crds.split_cel_summary)
    validated: int  # how many objects (or Helm releases) the step validated


def resource_id(obj: dict[str, Any]) -> str:
    """`Kind/namespace/name` for namespaced objects, `Kind/name` for the rest."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    kind = obj.get("kind") or "?"
    name = metadata.get("name") or "?"
    namespace = metadata.get("namespace")
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def split_api_version(api_version: str) -> tuple[str, str]:
    """`apps/v1` -> ("apps", "v1"); the core group `v1` -> ("", "v1")."""
    group, _, version = api_version.rpartition("/")
    return group, version


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(path: Iterable[Any]) -> str:
    """A field path as a reader writes it: `spec.containers[0].ports[0].containerPort`.

    Keys that are not plain identifiers (annotation keys, `nvidia.com/gpu`) are quoted in brackets.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f'["{part}"]'
    return out or "(top level)"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _expected_types(schema_type: Any) -> str:
    types = [schema_type] if isinstance(schema_type, str) else list(schema_type)
    return " or ".join(t for t in types if t != "null") or "null"


def _undeclared_keys(schema: dict[str, Any], instance: dict[str, Any]) -> list[str]:
    """The keys of `instance` that `additionalProperties: false` rejects."""
    declared = set(schema.get("properties", {}))
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    return sorted(k for k in instance if k not in declared and not any(p.search(k) for p in patterns))


def describe_errors(error: jsonschema.ValidationError, prefix: Sequence[Any] = ()) -> list[str]:
    """One or more readable lines for a jsonschema error, each starting with the field path."""
    path = [*prefix, *error.absolute_path]
    where = format_path(path)
    validator = error.validator
    if validator == "additionalProperties" and isinstance(error.instance, dict):
        extras = _undeclared_keys(error.schema, error.instance)
        if extras:
            return [f"{format_path([*path, key])}: unknown field" for key in extras]
    if validator == "type":
        return [
            f"{where}: expected {_expected_types(error.validator_value)}, got {_json_type(error.instance)} "
            f"{_short(error.instance)}"
        ]
    if validator == "enum":
        allowed = ", ".join(repr(v) for v in error.validator_value if v is not None)
        return [f"{where}: {_short(error.instance)} is not one of {allowed}"]
    if validator == "required":
        return [f"{where}: {error.message}"]
    if validator in ("anyOf", "oneOf") and error.context:
        # Alternatives that differ only in type (int-or-string) read best as one line; otherwise the
        # error from the branch that got furthest says what is wrong.
        if all(list(sub.absolute_path) == list(error.absolute_path) for sub in error.context):
            kinds = sorted(
                {_expected_types(s.validator_value) for s in error.context if s.validator == "type"}
            )
            if kinds and len(kinds) == len(error.context):
                return [
                    f"{where}: expected {' or '.join(kinds)}, got {_json_type(error.instance)} "
                    f"{_short(error.instance)}"
                ]
            return [f"{where}: {_short(error.instance)} matches none of the allowed forms"]
        best = jsonschema.exceptions.best_match(error.context)
        return describe_errors(best, prefix)
    message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return [f"{where}: {message}"]


def schema_findings(
    check: str, resource: str, errors: Iterable[jsonschema.ValidationError], prefix: Sequence[Any] = ()
) -> list[Finding]:
    """Findings for every schema error of one object, in path order, capped at MAX_ERRORS_PER_OBJECT."""
    lines: list[str] = []
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        for line in describe_errors(error, prefix):
            if line not in lines:
                lines.append(line)
    findings = [Finding(check, resource, line) for line in lines[:MAX_ERRORS_PER_OBJECT]]
    if len(lines) > MAX_ERRORS_PER_OBJECT:
        findings.append(Finding(check, resource, f"... and {len(lines) - MAX_ERRORS_PER_OBJECT} more errors"))
    return findings
