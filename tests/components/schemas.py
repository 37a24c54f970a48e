"""Schema checks shared by the component tests, built on the product's own validators.

- `crd_errors(manifest)`: a custom resource against its CRD, via inferstack.validation.engine.validate_custom_resources
  (the check behind `inferstack check`). Anything the product would only note as "not validated" (a kind
  with no CRD, a version with no schema, an object that is not a custom resource) is an error here: a test
  that asks for a CRD check must never pass because nothing was checked.
- `chart_value_errors(values_dir, values)`: Helm values against a chart, via
  inferstack.validation.engine.validate_helm_values (values.schema.json on the merged values, plus its unknown-key
  check), plus one stricter rule the tests had before and the product does not apply (see
  `_keys_not_in_defaults`).

The CRDs and charts are upstream data read in place, never copied into this repository: the folders
INFERSTACK_CRD_DIR / INFERSTACK_CHART_DIR name, else what `make fetch-schemas` wrote (tests/upstream_data.py).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from inferstack.planning.recording import RecordedResource
from inferstack.validation.common import format_path
from inferstack.validation.engine import (
    HelmValues,
    resource_id,
    validate_custom_resources,
    validate_helm_values,
)
from inferstack.validation.helm import _PASSED_THROUGH, load_chart
from tests.upstream_data import data_dir, missing_reason

CRD_DIR = data_dir("crds")
CHART_DIR = data_dir("charts")

needs_crds = pytest.mark.skipif(missing_reason("crds") is not None, reason=missing_reason("crds") or "")
needs_charts = pytest.mark.skipif(missing_reason("charts") is not None, reason=missing_reason("charts") or "")

# The product evaluates CEL rules (a false one is a finding, kept); its CEL notes are the per-kind counts
# and any "not evaluated on" rule, which are not errors of the object.
_CEL_NOTE = "CEL rules (x-kubernetes-validations)"


def manifest_of(resource: RecordedResource) -> dict[str, Any]:
    """A recorded Kubernetes object as a manifest (a deep copy of its inputs: apiVersion, kind, metadata, spec)."""
    return copy.deepcopy(resource.inputs)


def crd_errors(manifest: dict[str, Any]) -> list[str]:
    """Every problem with one custom resource against its CRD in CRD_DIR; [] only when it was validated."""
    outcome = validate_custom_resources([manifest], CRD_DIR)
    errors = [finding.message for finding in outcome.findings]
    errors += [f"not validated: {note}" for note in outcome.notes if not note.startswith(_CEL_NOTE)]
    if outcome.validated != 1 and not errors:
        errors.append(
            f"{resource_id(manifest)} was not validated: apiVersion {manifest.get('apiVersion')!r} "
            "is not a custom resource group (or apiVersion/kind is missing)"
        )
    return errors


def _keys_not_in_defaults(values: Any, defaults: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Key paths we set that the chart's values.yaml does not have, checked all the way down.

    Stricter than the product's check, which also accepts keys that values.yaml documents only in a
    comment or that values.schema.json declares, and stops at free-form names (securityContext,
    annotations, ...), `global` and subchart values. Below a default that is an empty map anything goes;
    a map we set where the default is not a map (null included) is reported.
    """
    if not isinstance(values, dict):
        return []
    if not isinstance(defaults, dict):
        return [path]
    if not defaults:
        return []
    missing: list[tuple[str, ...]] = []
    for key, value in values.items():
        key_path = (*path, str(key))
        if key not in defaults:
            missing.append(key_path)
        else:
            missing.extend(_keys_not_in_defaults(value, defaults[key], key_path))
    return missing


def chart_value_errors(values_dir: str, values: dict[str, Any]) -> list[str]:
    """Every problem with values for the chart in CHART_DIR/values_dir, each starting with its key path.

    The product's findings (values schema, unknown keys), then keys that are not in the chart's
    values.yaml (`_keys_not_in_defaults`) that the product did not already report. A chart that is
    not there is an error, not a skip.
    """
    outcome = validate_helm_values([HelmValues(values_dir, values_dir, values)], CHART_DIR)
    errors = [finding.message for finding in outcome.findings]
    errors += [f"not validated: {note}" for note in outcome.notes]
    if outcome.validated != 1:
        return errors or [f"chart {values_dir} was not validated"]
    reported = {error.split(":", 1)[0] for error in errors}
    defaults = load_chart(str((CHART_DIR / values_dir).resolve())).defaults
    # Maps the chart writes whole into an object of its own: the product checks their keys against that
    # object's fields (inferstack/validation/helm.py _PASSED_THROUGH), not against values.yaml.
    passed = _PASSED_THROUGH.get(values_dir, {})
    for key_path in _keys_not_in_defaults(values, defaults):
        if any(key_path[: len(prefix)] == prefix for prefix in passed):
            continue
        where = format_path(key_path)
        if where not in reported:
            errors.append(f"{where}: not in the values.yaml of chart {values_dir}")
    return errors


def error_paths(errors: list[str]) -> list[str]:
    """The key or field path each error starts with."""
    return [error.split(":", 1)[0] for error in errors]
