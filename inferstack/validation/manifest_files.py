"""`inferstack validate`: Kubernetes manifests produced elsewhere through the validators of `inferstack check`.

Inputs are what GitOps applies: a `render_yaml_to_directory` folder, `inferstack plan`'s manifests.yaml, or a
team's overlay. Each file is multi-document YAML; a folder stands for every *.yaml / *.yml under it, sorted.
Pulumi's rendered layout (pulumi-kubernetes provider/pkg/provider/provider.go, `renderPathForResource`) is
one object per file, CRDs in `0-crd/` and everything else in `1-manifest/`, named
`<apiVersion with / and : as _>-<kind>-<namespace or default>-<name>.yaml`; sorted paths therefore put the
CRDs first, as the provider applies them.

What runs: core kinds (kubernetes-validate), custom resources against their CRDs (the CRD folder, plus any
CustomResourceDefinition among the inputs: a folder that carries its CRDs validates its custom resources
without a CRD folder), checkov, the scope rule (kinds of input CRDs by their `spec.scope`), the policy
pack's rules that read Kubernetes objects, and "duplicate": one object (API group, kind, namespace, name)
given twice, which `kubectl apply` would apply twice, the later overwriting the earlier.
What cannot run on manifests alone is listed under "Not validated": Helm values (a rendered chart is
objects, not values) and the plan-level rules that read the Pulumi program's resources.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inferstack.validation.check import checkov_skips_for
from inferstack.validation.common import CheckOutcome, Finding, resource_id, split_api_version
from inferstack.validation.engine import ValidationReport, find_checkov, validate_all
from inferstack.validation.policies import load_rules
from inferstack.validation.scopes import Scope, ScopeTable, load_scope_table, scope_outcome
from stacks.config import Tier

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SUFFIXES = (".yaml", ".yml")

#: Policies of the pack that read something a manifest does not carry, and what that is. Every other policy
#: reads Kubernetes objects and runs. tests/test_validate_manifests.py holds every policy to one of the two
#: sides, so a new policy is placed deliberately.
NOT_ON_MANIFESTS: dict[str, str] = {
    "cluster-endpoint-not-open": "reads the EKS / GKE / AKS cluster resource, not a Kubernetes object",
    "model-bucket-private-and-encrypted": "reads the S3 / GCS bucket and Azure storage resources, not Kubernetes objects",
    "aks-cluster-hardened": "reads the AKS cluster resource, not a Kubernetes object",
    "model-store-network-private": "reads the Azure storage account resource, not a Kubernetes object",
    "pod-monitors-selected": "reads the kube-prometheus-stack Helm release's values, which rendered objects do not carry",
}

#: What `inferstack check` runs and `validate` cannot, for the "Not validated" list.
PLAN_ONLY_NOTE = (
    "plan-level rules (dependencies, invoke providers, GCP APIs, cold start, rollout, deadline, metrics API) "
    "and Helm values were not applied: they read the Pulumi program's resources and chart values, which "
    "manifests do not carry; `inferstack check STACK` runs them"
)


class ManifestInputError(ValueError):
    """An input that is not a set of Kubernetes objects; the one-line message names the file and document."""


@dataclass(frozen=True)
class ManifestDocument:
    """One Kubernetes object and where it was read: `document` counts from 1 in its file (empty documents
    count too, as a reader counting `---` lines does); `item` is its index in a `kind: List`, else None."""

    path: Path
    document: int
    obj: dict[str, Any]
    item: int | None = None

    @property
    def where(self) -> str:
        item = f" item {self.item}" if self.item is not None else ""
        return f"{self.path} document {self.document}{item}"


def manifest_files(paths: Sequence[Path]) -> list[Path]:
    """Every file to read, in order: a file as given; a folder as every *.yaml / *.yml under it, sorted.

    Raises ManifestInputError for a path that does not exist or a folder without any YAML file.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if not found:
                raise ManifestInputError(f"{path}: the folder holds no *.yaml or *.yml file")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ManifestInputError(f"{path}: no such file or folder")
    return files


def _check_object(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ManifestInputError(
            f"{where}: not a Kubernetes object (a YAML {type(obj).__name__}, not a mapping)"
        )
    missing = [key for key in ("apiVersion", "kind") if not isinstance(obj.get(key), str) or not obj[key]]
    if missing:
        raise ManifestInputError(f"{where}: not a Kubernetes object: {' and '.join(missing)} missing")
    return obj


def read_file(path: Path) -> list[ManifestDocument]:
    """The objects of one multi-document YAML file. Empty documents are skipped (kubectl does too); a
    `kind: List` (`kubectl get -o yaml`) stands for its items.

    Raises ManifestInputError naming the file, the document and its line for unreadable YAML or a
    document that is not an object with apiVersion and kind.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestInputError(f"{path}: cannot be read ({err})") from None
    documents: list[ManifestDocument] = []
    index = reading = 0
    loader = _LOADER(text)
    try:
        # Document by document, so a syntax error is pinned to the document it is in: once a document's
        # node is read, the parser has passed its end, so an error met before the next one is the next one's.
        while True:
            reading = index + 1  # the document a YAML error from here on is in
            if not loader.check_node():
                break
            index += 1
            doc = loader.construct_document(loader.get_node())
            if doc is None:
                continue
            where = f"{path} document {index}"
            obj = _check_object(doc, where)
            if obj["kind"] == "List" and obj["apiVersion"] == "v1":
                items = obj.get("items") or []
                for item, entry in enumerate(items if isinstance(items, list) else []):
                    checked = _check_object(entry, f"{where} item {item}")
                    documents.append(ManifestDocument(path, index, checked, item))
            else:
                documents.append(ManifestDocument(path, index, obj))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
        if context and context_mark is not None:
            # An unclosed bracket is noticed where the file ends; the context says where it opened.
            problem += f" ({context} at line {context_mark.line + 1})"
        raise ManifestInputError(f"{path} document {reading}{line}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    return documents


def read_manifests(paths: Sequence[Path]) -> list[ManifestDocument]:
    """Every object in `paths` (files and folders, see manifest_files), in reading order."""
    return [doc for path in manifest_files(paths) for doc in read_file(path)]


def type_token(obj: dict[str, Any]) -> str:
    """The Pulumi type token of a Kubernetes object, as the policy pack sees it:
    `kubernetes:apps/v1:Deployment`; the core group is `core` (`kubernetes:core/v1:Service`)."""
    api_version = obj["apiVersion"]
    return f"kubernetes:{api_version if '/' in api_version else 'core/' + api_version}:{obj['kind']}"


@dataclass(frozen=True)
class PolicyResult:
    policy: str
    mandatory: bool
    applies: bool
    findings: list[tuple[str, str]]  # (object id or "(stack)", message)


def run_policies(manifests: Sequence[dict[str, Any]], tier: Tier) -> list[PolicyResult]:
    """The policy pack over the objects as Pulumi resources (type token, props), in the pack's order."""
    rules = load_rules()
    pairs = [(type_token(obj), obj) for obj in manifests]
    results = []
    for policy in rules.POLICIES:
        applies = policy.name not in NOT_ON_MANIFESTS
        found = []
        if applies:
            for index, message in policy.run(pairs):
                label = "(stack)" if index is None else resource_id(manifests[index])
                if message.startswith(label):
                    message = message[len(label) :].lstrip(": ") or message
                found.append((label, message))
        results.append(PolicyResult(policy.name, policy.mandatory(str(tier.value)), applies, found))
    return results


def render_policy_results(results: Sequence[PolicyResult], tier: Tier) -> str:
    """The "Policies:" section: each policy with its level for the tier and its result; advisory findings
    are listed here (mandatory ones are report findings under "policy")."""
    lines = [f"Policies ({tier.value} tier, --tier):"]
    for result in results:
        level = "mandatory" if result.mandatory else "advisory"
        if not result.applies:
            lines.append(f"  {result.policy} ({level}): not applicable: {NOT_ON_MANIFESTS[result.policy]}")
            continue
        count = len(result.findings)
        verdict = "ok" if not count else f"{count} finding{'s' if count != 1 else ''}"
        lines.append(f"  {result.policy} ({level}): {verdict}")
        if not result.mandatory:
            lines.extend(f"    {label}: {message}" for label, message in result.findings)
    return "\n".join(lines) + "\n"


def _is_crd(obj: dict[str, Any]) -> bool:
    return obj.get("kind") == "CustomResourceDefinition" and str(obj.get("apiVersion", "")).startswith(
        "apiextensions.k8s.io/"
    )


@contextmanager
def crd_folder(crd_dir: Path | None, documents: Sequence[ManifestDocument]) -> Iterator[Path | None]:
    """The CRD folder to validate against: `crd_dir`, plus the CRDs among the inputs.

    With input CRDs, a temporary folder links every file of `crd_dir` under `1-given/` and writes the
    input CRDs to `2-inputs/`: the CRD index reads files in sorted order and a later definition of the same
    group, version and kind wins, so the CRDs that are applied with the objects win over the folder's.
    """
    crds = [doc.obj for doc in documents if _is_crd(doc.obj)]
    if not crds:
        yield crd_dir
        return
    with tempfile.TemporaryDirectory(prefix="inferstack-crds-") as tmp:
        root = Path(tmp)
        if crd_dir is not None:
            for source in sorted(p for p in crd_dir.rglob("*") if p.is_file()):
                target = root / "1-given" / source.relative_to(crd_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(source.resolve(), target)
        (root / "2-inputs").mkdir()
        (root / "2-inputs" / "crds.yaml").write_text(yaml.safe_dump_all(crds), encoding="utf-8")
        yield root


def validate_manifests(
    documents: Sequence[ManifestDocument],
    kubernetes_version: str,
    *,
    tier: Tier,
    crd_dir: Path | None,
    checkov_path: str | None = None,
    run_checkov: bool = True,
) -> tuple[ValidationReport, list[PolicyResult]]:
    """Validate objects read by read_manifests; the report fails on any finding, mandatory policy findings
    (by `tier`) included. A checkov that was asked for and is not found is a finding, as in check."""
    manifests = [doc.obj for doc in documents]
    skips = checkov_skips_for(tier)
    with crd_folder(crd_dir, documents) as crds:
        report = validate_all(
            manifests,
            kubernetes_version,
            crd_dir=crds,
            checkov=run_checkov,
            checkov_path=checkov_path,
            checkov_skips=skips,
        )
    if crds is not None and crds != crd_dir:
        # The temporary folder's name means nothing to a reader.
        named = (
            f"{crd_dir} and the input CRDs" if crd_dir is not None else "the input CRDs (no CRD folder given)"
        )
        report.notes = [n.replace(str(crds), named) for n in report.notes]
    if run_checkov:
        report.notes += [f"checkov {check} skipped: {reason}" for check, reason in sorted(skips.items())]
        if find_checkov(checkov_path) is None:
            report.findings.append(
                Finding(
                    check="checkov",
                    resource="(all manifests)",
                    message="checkov was not found: `make tools` installs it into .tools/checkov, or pass "
                    "--checkov PATH (--skip-checkov to go without)",
                )
            )
    report.add("duplicate", duplicate_outcome(documents))
    try:
        report.add("scope", scope_outcome(manifests, scope_table(documents)))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        report.notes.append(f"scope was not applied: a value it could not read ({error})")
    results = run_policies(manifests, tier)
    report.add(
        "policy",
        CheckOutcome(
            findings=[
                Finding(check="policy", resource=label, message=message, rule=result.policy)
                for result in results
                if result.mandatory
                for label, message in result.findings
            ],
            notes=[],
            validated=len(manifests),
        ),
    )
    report.notes.append(PLAN_ONLY_NOTE)
    return report, results


def _identity(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    """What names one object on the API server: API group (not version: apps/v1 and apps/v1beta1 name the
    same Deployment), kind, namespace ("" when none is given) and name."""
    metadata: dict[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
    group = split_api_version(str(obj.get("apiVersion", "")))[0]
    return (
        group,
        str(obj.get("kind", "")),
        str(metadata.get("namespace") or ""),
        str(metadata.get("name") or ""),
    )


def duplicate_outcome(documents: Sequence[ManifestDocument]) -> CheckOutcome:
    """A finding for every object that an earlier input already holds (same group, kind, namespace and
    name), naming both places: `kubectl apply` applies both and the later one overwrites the earlier, so
    what the cluster holds depends on reading order. Objects without a name (generateName) are skipped."""
    first: dict[tuple[str, str, str, str], ManifestDocument] = {}
    findings: list[Finding] = []
    for doc in documents:
        key = _identity(doc.obj)
        if not key[3]:
            continue
        earlier = first.setdefault(key, doc)
        if earlier is not doc:
            findings.append(
                Finding(
                    check="duplicate",
                    resource=resource_id(doc.obj),
                    message=f"{doc.where} repeats the object of {earlier.where} (same API group, kind, "
                    "namespace and name); `kubectl apply` would make the later overwrite the earlier: keep one",
                )
            )
    return CheckOutcome(findings=findings, notes=[], validated=len(documents))


def scope_table(documents: Sequence[ManifestDocument]) -> ScopeTable:
    """The shipped scope table plus the `spec.scope` of every CRD among the inputs, so that a kind defined
    only there gets the same namespaced / cluster-scoped check as the kinds the table has from the CRD
    folder. An input CRD whose scope is missing or not Namespaced/Cluster adds nothing (its kind is then
    noted as not validated; the CRD itself is checked by kubernetes-validate)."""
    table = load_scope_table()
    kinds = dict(table.kinds)
    for doc in documents:
        if not _is_crd(doc.obj):
            continue
        spec: dict[str, Any] = doc.obj["spec"] if isinstance(doc.obj.get("spec"), dict) else {}
        names: dict[str, Any] = spec["names"] if isinstance(spec.get("names"), dict) else {}
        group, kind, scope = spec.get("group"), names.get("kind"), spec.get("scope")
        if isinstance(group, str) and isinstance(kind, str) and scope in {s.value for s in Scope}:
            kinds[f"{group}/{kind}"] = (Scope(scope), f"input CRD {doc.where}")
    return ScopeTable(kinds=kinds, sources=table.sources)


def locations(report: ValidationReport, documents: Sequence[ManifestDocument]) -> list[str]:
    """`Kind/ns/name: file document N` for every object with a finding, so a reader finds it in a folder."""
    named = {f.resource for f in report.findings}
    return [f"{resource_id(d.obj)}: {d.where}" for d in documents if resource_id(d.obj) in named]
