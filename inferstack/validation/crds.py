"""Custom resources against the openAPIV3Schema of their CustomResourceDefinition.

The CRDs come from a folder the user points at (upstream data, never copied into this repository).
A CRD schema is OpenAPI v3 with Kubernetes extensions; we turn it into plain JSON Schema the way the
API server reads it:

- `x-kubernetes-preserve-unknown-fields: true` allows fields the schema does not list; everywhere else
  an object's unlisted fields are errors (the API server prunes them, and with strict field validation
  rejects them; either way the setting we wrote would not take effect);
- `x-kubernetes-int-or-string: true` accepts an integer or a string;
- `x-kubernetes-embedded-resource: true` objects are left open (they hold a whole object);
- `nullable: true` also accepts null;
- `x-kubernetes-validations` (CEL rules) are evaluated by inferstack.validation.cel as on create; a rule
  that gives false is a finding, one that cannot be evaluated a note, and a note counts both per kind;
- `metadata` is the API server's ObjectMeta, not part of the CRD's schema: only its type is checked.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from inferstack.validation.cel import apply_defaults, evaluate_rules
from inferstack.validation.common import (
    CheckOutcome,
    Finding,
    resource_id,
    schema_findings,
    split_api_version,
)
from inferstack.validation.core import builtin_groups

CHECK = "crd-schema"
CRD_DIR_ENV = "INFERSTACK_CRD_DIR"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~20x faster on the 4 MB of CRDs


@dataclass(frozen=True)
class CrdVersion:
    """One version of one CRD, as found in the folder."""

    group: str
    version: str
    kind: str
    served: bool
    schema: dict[str, Any] | None
    source: str  # file name, for messages


@dataclass(frozen=True)
class CrdIndex:
    versions: dict[tuple[str, str, str], CrdVersion]  # (group, version, kind) -> CRD version
    kinds: dict[tuple[str, str], list[str]]  # (group, kind) -> the versions the folder has
    problems: tuple[str, ...]  # files that could not be read, as notes


def _crd_documents(doc: Any) -> list[dict[str, Any]]:
    if not isinstance(doc, dict):
        return []
    if doc.get("kind") == "CustomResourceDefinition":
        return [doc]
    if doc.get("kind") == "List":  # `kubectl get crd -o yaml`
        return [
            item
            for item in doc.get("items") or []
            if isinstance(item, dict) and item.get("kind") == "CustomResourceDefinition"
        ]
    return []


@functools.lru_cache(maxsize=8)
def load_crd_index(crd_dir: str) -> CrdIndex:
    """Every CRD in `crd_dir` and below (*.yaml, *.yml, *.json), read once per folder and process."""
    versions: dict[tuple[str, str, str], CrdVersion] = {}
    kinds: dict[tuple[str, str], list[str]] = {}
    problems: list[str] = []
    root = Path(crd_dir)
    files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file())
    for path in files:
        try:
            docs = list(yaml.load_all(path.read_text(), Loader=_LOADER))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problems.append(f"CRD file {path} could not be read: {str(exc).splitlines()[0]}")
            continue
        for doc in docs:
            for crd in _crd_documents(doc):
                spec = crd.get("spec") or {}
                group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
                if not group or not kind:
                    continue
                for entry in spec.get("versions") or []:
                    schema = (entry.get("schema") or {}).get("openAPIV3Schema")
                    key = (group, entry["name"], kind)
                    versions[key] = CrdVersion(
                        group, entry["name"], kind, bool(entry.get("served", True)), schema, path.name
                    )
                    kinds.setdefault((group, kind), []).append(entry["name"])
    return CrdIndex(versions, kinds, tuple(problems))


def to_json_schema(node: Any) -> Any:
    """An OpenAPI v3 structural schema as draft-4 JSON Schema with the API server's meaning (module doc)."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key in ("properties", "patternProperties", "definitions") and isinstance(value, dict):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = (
                [to_json_schema(s) for s in value] if isinstance(value, list) else to_json_schema(value)
            )
        elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
            out[key] = [to_json_schema(s) for s in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    open_object = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
        "x-kubernetes-embedded-resource"
    )
    if out.get("type") == "object" and "additionalProperties" not in out and not open_object:
        out["additionalProperties"] = False
    return out


def count_cel_rules(node: Any) -> int:
    if isinstance(node, dict):
        own = len(node.get("x-kubernetes-validations") or [])
        return own + sum(count_cel_rules(v) for k, v in node.items() if k != "x-kubernetes-validations")
    if isinstance(node, list):
        return sum(count_cel_rules(v) for v in node)
    return 0


@functools.lru_cache(maxsize=128)
def _validator(crd_dir: str, group: str, version: str, kind: str) -> tuple[jsonschema.Draft4Validator, int]:
    """The validator for one CRD version (built once) and how many CEL rules it cannot evaluate."""
    schema = load_crd_index(crd_dir).versions[(group, version, kind)].schema or {}
    converted = to_json_schema(schema)
    properties = converted.setdefault("properties", {})
    properties["metadata"] = {"type": "object"}
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    return jsonschema.Draft4Validator(converted), count_cel_rules(schema)


def default_crd_dir() -> Path | None:
    """The folder named by $INFERSTACK_CRD_DIR, if set."""
    value = os.environ.get(CRD_DIR_ENV)
    return Path(value) if value else None


def validate_custom_resources(manifests: list[dict[str, Any]], crd_dir: Path | None) -> CheckOutcome:
    """Validate every custom resource (an object whose API group Kubernetes does not define).

    A kind with no CRD in the folder, or no folder at all, is a note: it was not validated.
    """
    builtin = builtin_groups()
    custom = [
        obj
        for obj in manifests
        if isinstance(obj.get("apiVersion"), str)
        and isinstance(obj.get("kind"), str)
        and split_api_version(obj["apiVersion"])[0] not in builtin
    ]
    if not custom:
        return CheckOutcome([], [], 0)
    if crd_dir is None:
        return CheckOutcome(
            [],
            [
                f"{len(custom)} custom resources were not validated: no CRD folder given. `make fetch-schemas` "
                "fetches the pinned charts' CRDs into build/upstream/crds, which `make check` then uses; "
                f"or pass --crd-dir or set {CRD_DIR_ENV} to a folder of CRD files"
            ],
            0,
        )
    if not crd_dir.is_dir():
        return CheckOutcome(
            [], [f"{len(custom)} custom resources were not validated: CRD folder {crd_dir} does not exist"], 0
        )
    key = str(crd_dir.resolve())
    index = load_crd_index(key)
    findings: list[Finding] = []
    notes = list(index.problems)
    missing: dict[str, list[str]] = {}
    cel: dict[str, _CelCounts] = {}
    validated = 0
    for obj in custom:
        group, version = split_api_version(obj["apiVersion"])
        kind, name = obj["kind"], resource_id(obj)
        crd = index.versions.get((group, version, kind))
        if crd is None:
            known = index.kinds.get((group, kind))
            if known:
                findings.append(
                    Finding(
                        CHECK,
                        name,
                        f"apiVersion: {obj['apiVersion']} is not a version of {kind}; the CRD ({crd_source(index, group, kind)}) has {', '.join(known)}",
                    )
                )
            else:
                missing.setdefault(f"{kind}.{group}", []).append(name)
            continue
        if not crd.served:
            served = [v for v in index.kinds[(group, kind)] if index.versions[(group, v, kind)].served]
            findings.append(
                Finding(
                    CHECK,
                    name,
                    f"apiVersion: {obj['apiVersion']} is no longer served by the {kind} CRD ({crd.source}); use {', '.join(served) or 'another version'}",
                )
            )
            continue
        if crd.schema is None:
            notes.append(f"{name}: the {kind} CRD ({crd.source}) has no schema for {version}; not validated")
            continue
        validator, rules = _validator(key, group, version, kind)
        validated += 1
        # The API server defaults first, then validates the schema and the rules (a required field
        # with a default, or a non-nullable null, is no error there).
        defaulted = apply_defaults(crd.schema, obj)
        findings.extend(schema_findings(CHECK, name, validator.iter_errors(defaulted)))
        if rules:
            counts = cel.setdefault(kind, _CelCounts(rules))
            result = evaluate_rules(crd.schema, defaulted)
            counts.evaluated += result.evaluated
            counts.transition += result.transition
            counts.rules_run |= result.rules_run
            counts.not_evaluated += len(result.not_evaluated)
            for path, message, rule in result.failures:
                findings.append(Finding(CHECK, name, f"{path}: {message} (CEL rule: {rule})"))
            for path, rule, why in result.not_evaluated:
                notes.append(f"{CEL_NOTE} not evaluated on {name} at {path or '(top level)'}: {rule} — {why}")
    for kind_group, names in sorted(missing.items()):
        notes.append(f"no CRD for {kind_group} in {crd_dir}: {', '.join(names)} not validated")
    if cel:
        listed = "; ".join(f"{kind} {counts}" for kind, counts in sorted(cel.items()))
        notes.append(
            f"{CEL_SUMMARY}, rules that ran of the CRD's (a rule on a field a resource leaves out does "
            f"not run; one on a list item runs per item; oldSelf transition rules do not run on create): {listed}"
        )
    return CheckOutcome(findings, notes, validated)


# Every CEL note starts so (tests/components/schemas.py tells these notes from "not validated" ones by it).
CEL_NOTE = "CEL rules (x-kubernetes-validations)"
#: The per-kind count of evaluated rules: information about what was validated, not a gap. CheckOutcome
#: carries it among the notes; split_cel_summary takes it out for the validated summary.
CEL_SUMMARY = f"{CEL_NOTE} evaluated per kind"


def split_cel_summary(notes: list[str]) -> tuple[list[str], list[str]]:
    """(the per-kind CEL counts, every other note): the counts belong with what was validated; rules that
    were not evaluated stay among the notes ("Not validated"), each with its reason."""
    summary = [note for note in notes if note.startswith(CEL_SUMMARY)]
    return summary, [note for note in notes if not note.startswith(CEL_SUMMARY)]


@dataclass
class _CelCounts:
    """CEL rule counts for one kind over every resource of it."""

    in_crd: int  # rules in the CRD version's schema
    evaluated: int = 0  # evaluations (a rule on a list item runs once per item)
    not_evaluated: int = 0  # evaluations that could not run (each one is also a note)
    transition: int = 0  # oldSelf rules, skipped on create as the API server does
    rules_run: set[str] = field(default_factory=set)

    def __str__(self) -> str:
        text = f"{len(self.rules_run)}/{self.in_crd} rules ran ({self.evaluated} evaluations), {self.not_evaluated} not evaluated"
        return text + (f", {self.transition} transition rules skipped" if self.transition else "")


def crd_source(index: CrdIndex, group: str, kind: str) -> str:
    for (g, _, k), crd in index.versions.items():
        if (g, k) == (group, kind):
            return crd.source
    return "?"
