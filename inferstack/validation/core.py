"""Built-in Kubernetes kinds against the OpenAPI schemas of the stack's Kubernetes version.

The schemas are the ones kubernetes-validate ships, in their strict flavour (unknown fields are errors,
as the API server's strict field validation makes them). We read its files and build the validators
ourselves rather than call `kubernetes_validate.validate` per object, for two reasons: that function
stops at the first error of an object (we list all of them, so one run shows everything to fix), and
it re-reads the 1.5 MB definitions file on every call (we read it once per version).
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

import jsonschema
import kubernetes_validate
import referencing
from kubernetes_validate import utils as kv_utils

from inferstack.validation.common import (
    CheckOutcome,
    Finding,
    resource_id,
    schema_findings,
    split_api_version,
)

CHECK = "kubernetes-validate"

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?$")


class UnsupportedKubernetesVersion(ValueError):
    """The stack asks for a Kubernetes version kubernetes-validate has no schemas for."""


def bundled_versions() -> list[tuple[int, int]]:
    """The minor versions kubernetes-validate ships schemas for, oldest first (1.25 ... 1.37 in 1.37.0)."""
    found = set()
    for version in kv_utils.all_versions():
        match = _VERSION.match(version)
        if match:
            found.add((int(match[1]), int(match[2])))
    return sorted(found)


def schema_version(kubernetes_version: str) -> tuple[str, str | None]:
    """Which bundled schema set validates a cluster of `kubernetes_version`, and a note when it is not exact.

    Accepts "1.34", "v1.34" and "1.34.2" (patch releases do not change the API). A version newer than
    the newest bundled one is checked against the newest, with a note: new minors add fields and kinds
    far more often than they remove them. A version older than the oldest bundled one is an error.
    """
    match = _VERSION.match(kubernetes_version.strip())
    if not match:
        raise UnsupportedKubernetesVersion(
            f"Kubernetes version {kubernetes_version!r} is not of the form 1.34 or 1.34.2"
        )
    wanted = (int(match[1]), int(match[2]))
    versions = bundled_versions()
    if wanted < versions[0]:
        raise UnsupportedKubernetesVersion(
            f"Kubernetes {wanted[0]}.{wanted[1]} is older than any schema kubernetes-validate "
            f"{kubernetes_validate.version.__version__} ships ({_span(versions)}); upgrade the stack's "
            "kubernetes_version"
        )
    if wanted > versions[-1]:
        newest = versions[-1]
        return f"{newest[0]}.{newest[1]}.0", (
            f"Kubernetes {wanted[0]}.{wanted[1]} is newer than the schemas kubernetes-validate "
            f"{kubernetes_validate.version.__version__} ships ({_span(versions)}): built-in kinds were "
            f"validated against {newest[0]}.{newest[1]}"
        )
    return f"{wanted[0]}.{wanted[1]}.0", None


def _span(versions: list[tuple[int, int]]) -> str:
    return f"{versions[0][0]}.{versions[0][1]} to {versions[-1][0]}.{versions[-1][1]}"


def _schema_dir(version: str) -> Any:
    return resources.files("kubernetes_validate").joinpath(
        "kubernetes-json-schema", f"v{version}-local-strict"
    )


@functools.lru_cache(maxsize=4)
def _definitions(version: str) -> tuple[referencing.Registry, frozenset[tuple[str, str]], frozenset[str]]:
    """The shared definitions of one version as a registry, its (apiVersion, kind) pairs, and its groups."""
    contents = json.loads(_schema_dir(version).joinpath("_definitions.json").read_text())
    registry: referencing.Registry = referencing.Resource.from_contents(contents) @ referencing.Registry()
    kinds = set()
    groups = set()
    for definition in contents["$defs"].values():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            kinds.add((api_version, gvk["kind"]))
            groups.add(gvk["group"])
    return registry, frozenset(kinds), frozenset(groups)


def builtin_groups() -> frozenset[str]:
    """The API groups Kubernetes itself defines ("" is the core group); anything else is a custom resource.

    Taken from the newest bundled schemas: groups are added over the releases, never taken away.
    """
    newest = bundled_versions()[-1]
    return _definitions(f"{newest[0]}.{newest[1]}.0")[2]


@functools.lru_cache(maxsize=256)
def _validator(version: str, api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    # kubernetes-validate's file naming: the group's first label, then the version (apps/v1 -> apps-v1,
    # rbac.authorization.k8s.io/v1 -> rbac-v1, v1 -> v1).
    group, api = split_api_version(api_version)
    suffix = f"{group.split('.')[0]}-{api}" if group else api
    schema = json.loads(_schema_dir(version).joinpath(f"{kind.lower()}-{suffix}.json").read_text())
    registry, _, _ = _definitions(version)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_core(manifests: list[dict[str, Any]], kubernetes_version: str) -> CheckOutcome:
    """Validate every built-in object at `kubernetes_version`, listing every error of each.

    Custom resources (API groups Kubernetes does not define) are left to validate_custom_resources.
    An apiVersion of a Kubernetes group that this version does not serve (autoscaling/v2beta2 on 1.26+)
    is an error, not a custom resource.
    """
    try:
        version, version_note = schema_version(kubernetes_version)
    except UnsupportedKubernetesVersion as exc:
        return CheckOutcome([Finding(CHECK, "(all built-in objects)", str(exc))], [], 0)
    _, kinds, _ = _definitions(version)
    groups = builtin_groups()
    findings: list[Finding] = []
    notes = [version_note] if version_note else []
    validated = 0
    for obj in manifests:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            findings.append(
                Finding(CHECK, resource_id(obj), "not a Kubernetes object: apiVersion or kind missing")
            )
            continue
        group, _ = split_api_version(api_version)
        if group not in groups:
            continue  # a custom resource: validate_custom_resources checks it
        if (api_version, kind) not in kinds:
            served = sorted(a for a, k in kinds if k == kind)
            hint = f"; this version serves {kind} as {', '.join(served)}" if served else ""
            findings.append(
                Finding(
                    CHECK,
                    resource_id(obj),
                    f"apiVersion: {api_version} {kind} does not exist in Kubernetes {version.rsplit('.', 1)[0]}{hint}",
                )
            )
            continue
        validated += 1
        findings.extend(
            schema_findings(CHECK, resource_id(obj), _validator(version, api_version, kind).iter_errors(obj))
        )
    return CheckOutcome(findings, notes, validated)
