"""Which kinds are namespaced and which are cluster-scoped, from data, and the plan-level rule over it.

manifests.yaml is what GitOps users apply. A cluster-scoped object with `metadata.namespace` states
something false (Pulumi never sends one, see below) and misleads readers and tools that group objects by
namespace; a namespaced one without it lands in whatever namespace the applying context has. So the plan
writes a namespace exactly where the kind is namespaced, and `inferstack check` fails when it does not.

Where scope is stated (the data, not a list in code):
- Custom resources: the CRD's `spec.scope` ("Namespaced" or "Cluster").
- Built-in kinds: not in kubernetes-validate's JSON schemas (they carry `x-kubernetes-group-version-kind`
  but no scope), but in Kubernetes' OpenAPI paths: a namespaced kind is created under
  `/namespaces/{namespace}/`. The generator reads those paths from the official Kubernetes Python client,
  which is generated from that OpenAPI document (client 34.x = Kubernetes 1.34).

How Pulumi decides (pulumi-kubernetes provider/pkg/clients/clients.go `IsNamespacedKind`, read at the
snapshot of July 2026, 4.3x): a static table of built-in kinds, then the CRDs in the program, then the
API server's discovery; `ResourceClient` uses "default" for a namespaced kind with none
(`NamespaceOrDefault`) and no namespace for a cluster-scoped one. One transient exception: `Check` (in
provider.go) treats a kind it cannot resolve yet as namespaced and fills in the default namespace — on a
fresh cluster that is a cluster-scoped custom kind whose CRD arrives with a Helm release in the same
program (ClusterIssuer, GatewayClass); `Diff` and `ResourceClient` correct it once the CRD exists, so the
object the API server stores has none. The plan writes that end state, and the recording mock follows
this table.

The table ships as scopes.json (a fresh clone has no CRD folder); regenerate it with

    pip download --no-deps kubernetes==34.1.0 -d /tmp/k8s-client
    python -m inferstack.validation.scopes --crd-dir build/upstream/crds \\
        --kubernetes-client /tmp/k8s-client/kubernetes-34.1.0-py2.py3-none-any.whl

tests/test_scope.py checks it against the CRD folder when one is configured (`make fetch-schemas` writes
build/upstream/crds; CI points INFERSTACK_CRD_DIR at its copy).
"""

from __future__ import annotations

import argparse
import enum
import json
import re
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from inferstack.validation.common import CheckOutcome, Finding, resource_id

TABLE_FILE = "scopes.json"
KUBERNETES_CLIENT_VERSION = "34.1.0"  # the official client generated from Kubernetes 1.34's OpenAPI


class Scope(enum.StrEnum):
    """A kind's scope, in the CRD's own terms (`spec.scope`)."""

    NAMESPACED = "Namespaced"
    CLUSTER = "Cluster"


def kind_key(api_version: str, kind: str) -> str:
    """'rbac.authorization.k8s.io/v1', 'ClusterRole' -> 'rbac.authorization.k8s.io/ClusterRole';
    'v1', 'Namespace' -> 'core/Namespace'. Scope belongs to group and kind, not to a version."""
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else "core"
    return f"{group}/{kind}"


@dataclass(frozen=True)
class ScopeTable:
    """group/Kind -> scope and where that was read."""

    kinds: dict[str, tuple[Scope, str]]
    sources: dict[str, str]

    def scope_of(self, api_version: str, kind: str) -> Scope | None:
        """The kind's scope, or None when the table does not know it."""
        found = self.kinds.get(kind_key(api_version, kind))
        return found[0] if found else None


def parse_table(document: dict[str, Any]) -> ScopeTable:
    return ScopeTable(
        kinds={k: (Scope(v["scope"]), str(v["source"])) for k, v in document["kinds"].items()},
        sources=dict(document.get("sources", {})),
    )


@cache
def load_scope_table() -> ScopeTable:
    """The table shipped with the package (inferstack/validation/scopes.json)."""
    text = resources.files("inferstack.validation").joinpath(TABLE_FILE).read_text(encoding="utf-8")
    return parse_table(json.loads(text))


# --- the plan-level rule ------------------------------------------------------------------------------


def scope_outcome(manifests: Iterable[dict[str, Any]], table: ScopeTable | None = None) -> CheckOutcome:
    """Every namespaced object names its namespace; no cluster-scoped one does. Kinds the table lacks
    are notes (not validated), never guessed."""
    table = table or load_scope_table()
    findings: list[Finding] = []
    unknown: set[str] = set()
    validated = 0
    for obj in manifests:
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        scope = table.scope_of(api_version, kind)
        if scope is None:
            unknown.add(kind_key(api_version, kind))
            continue
        validated += 1
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
        if scope is Scope.CLUSTER and namespace:
            findings.append(
                Finding(
                    check="scope",
                    resource=resource_id(obj),
                    message=f"metadata.namespace: {kind} is cluster-scoped; remove namespace {namespace!r} "
                    "(Pulumi sends none for it; a GitOps reader of manifests.yaml is misled)",
                )
            )
        elif scope is Scope.NAMESPACED and not namespace:
            findings.append(
                Finding(
                    check="scope",
                    resource=resource_id(obj),
                    message=f"metadata.namespace: {kind} is namespaced; set it (without one, the object "
                    "lands in whatever namespace the applying context has)",
                )
            )
    notes = [
        f"scope of {key} not validated: not in inferstack/validation/scopes.json "
        "(regenerate it with python -m inferstack.validation.scopes; see its docstring)"
        for key in sorted(unknown)
    ]
    return CheckOutcome(findings=findings, notes=notes, validated=validated)


# --- generating the table -----------------------------------------------------------------------------


def crd_scopes(crd_dir: Path) -> dict[str, tuple[Scope, str]]:
    """group/Kind -> (spec.scope, "crd <file>") for every CustomResourceDefinition in the folder."""
    found: dict[str, tuple[Scope, str]] = {}
    for path in sorted(crd_dir.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            found[f"{spec['group']}/{spec['names']['kind']}"] = (Scope(spec["scope"]), f"crd {path.name}")
    return found


# A create operation in the generated client: the path it POSTs to and the object it returns.
_CREATE = re.compile(
    r"call_api\(\s*'(?P<path>/apis?/[^']+)',\s*'POST',(?:(?!call_api\().)*?response_type='(?P<type>\w+)'",
    re.DOTALL,
)
# /api/v1/[namespaces/{namespace}/]plural  or  /apis/group/version/[namespaces/{namespace}/]plural
_COLLECTION = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))/"
    r"(?P<ns>namespaces/\{namespace\}/)?(?P<plural>[a-z0-9]+)$"
)
_VERSION_PREFIX = re.compile(r"^V\d+(?:alpha\d+|beta\d+)?")


def _client_sources(client: Path) -> Iterator[str]:
    """The generated API modules (kubernetes/client/api/*_api.py) from a wheel or an unpacked package."""
    if client.is_file():
        with zipfile.ZipFile(client) as wheel:
            for name in sorted(wheel.namelist()):
                if name.startswith("kubernetes/client/api/") and name.endswith("_api.py"):
                    yield wheel.read(name).decode("utf-8")
        return
    api_dir = client / "kubernetes" / "client" / "api" if (client / "kubernetes").is_dir() else client
    for path in sorted(api_dir.glob("*_api.py")):
        yield path.read_text(encoding="utf-8")


def builtin_scopes(client: Path, source: str) -> dict[str, tuple[Scope, str]]:
    """group/Kind -> scope for every built-in kind the client can create: created under
    /namespaces/{namespace}/ means namespaced, otherwise cluster-scoped."""
    found: dict[str, tuple[Scope, str]] = {}
    for text in _client_sources(client):
        for match in _CREATE.finditer(text):
            collection = _COLLECTION.match(match["path"])
            if collection is None or not _VERSION_PREFIX.match(match["type"]):
                continue  # a subresource (pods/{name}/eviction, ...): not a kind of its own
            group = "core" if collection["core"] else collection["group"]
            kind = _VERSION_PREFIX.sub("", match["type"])
            scope = Scope.NAMESPACED if collection["ns"] else Scope.CLUSTER
            found[f"{group}/{kind}"] = (scope, source)
    return found


def generate(crd_dir: Path, client: Path) -> dict[str, Any]:
    """The scopes.json document: built-in kinds from the client, custom kinds from the CRDs."""
    builtin_source = f"kubernetes openapi via python client {client.name}"
    builtins = builtin_scopes(client, builtin_source)
    if not builtins:
        raise SystemExit(f"{client}: no create operations found (expected the kubernetes Python client)")
    custom = crd_scopes(crd_dir)
    if not custom:
        raise SystemExit(f"{crd_dir}: no CustomResourceDefinition found (run `make fetch-schemas`)")
    kinds = {**builtins, **custom}
    return {
        "about": "group/Kind -> scope; generated by `python -m inferstack.validation.scopes` (see its "
        "docstring): do not edit by hand",
        "sources": {
            "kubernetes": f"the official Kubernetes Python client ({client.name}), generated from "
            "Kubernetes' OpenAPI: a kind created under /namespaces/{namespace}/ is namespaced",
            "crds": f"spec.scope of the CRDs in {crd_dir.name}/ (project and commit of each file: its README.md)",
        },
        "kinds": {k: {"scope": s.value, "source": src} for k, (s, src) in sorted(kinds.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m inferstack.validation.scopes",
        description="Regenerate inferstack/validation/scopes.json.",
    )
    parser.add_argument(
        "--crd-dir", type=Path, required=True, help="folder of CRD YAML files (../shared/crds)"
    )
    parser.add_argument(
        "--kubernetes-client",
        type=Path,
        required=True,
        help=f"the kubernetes Python client wheel ({KUBERNETES_CLIENT_VERSION}) or its unpacked folder",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name(TABLE_FILE))
    args = parser.parse_args(argv)
    for path, what in ((args.crd_dir, "--crd-dir"), (args.kubernetes_client, "--kubernetes-client")):
        if not path.exists():
            print(f"{what} {path}: no such file or folder", file=sys.stderr)
            return 2
    document = generate(args.crd_dir, args.kubernetes_client)
    args.out.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(document['kinds'])} kinds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
