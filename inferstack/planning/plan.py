"""Offline plan: run a stack's real program under the recording mock and write what it would create.

Outputs, in the plan directory:
- resources.json  every resource (type, name, parent, dependencies, inputs with secrets redacted)
- manifests.yaml  every Kubernetes object as it would be applied, in dependency order
- summary.md      resources by type, Helm releases, GPUs, endpoints
"""

from __future__ import annotations

import heapq
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inferstack.planning.recording import SECRET_PLACEHOLDER, RecordedResource, Recording, run_program
from stacks.config import StackConfig, gpu_range

HELM_RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
#: A chart rendered and applied object by object by Pulumi (the CRD charts; components/_common.py).
HELM_CHART_TYPE = "kubernetes:helm.sh/v4:Chart"

#: An image pinned by an all-zero digest: the example stack files' stand-in for "your image's digest". Its
#: form satisfies every digest rule, yet no registry serves it, so reports must call it a placeholder.
_PLACEHOLDER_DIGEST = re.compile(r"@sha256:0{64}$")


def is_placeholder_digest(image: str) -> bool:
    return bool(_PLACEHOLDER_DIGEST.search(image))


def pod_images(manifest: dict[str, Any]) -> list[str]:
    """Every container and init container image of a workload manifest (Deployment, Pod, Job, ...)."""
    spec = manifest.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or spec
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    return [str(c["image"]) for c in containers if isinstance(c, dict) and c.get("image")]


#: The first lines of manifests.yaml: what a reader (or a GitOps tool's operator) must know before applying.
MANIFESTS_HEADER = f"""\
# Planned offline by `inferstack plan` (the recording mock), in dependency order. Not applyable as is:
# every secret value is redacted as '{SECRET_PLACEHOLDER}', Helm releases are not rendered here (summary.md
# lists them), and on cloud stacks values the providers compute (addresses, ARNs, endpoints) are
# placeholders. For GitOps, render with cluster.render_yaml_to_directory instead (docs/gitops.md).
"""

# Apply order for objects that do not depend on each other (Helm's install order, trimmed).
_KIND_ORDER = [
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Deployment",
    "StatefulSet",
    "HorizontalPodAutoscaler",
]


def _kind_rank(kind: str) -> int:
    # Custom resources come after every built-in kind: their controllers and CRDs must exist first.
    return _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)


@dataclass
class HelmReleasePlan:
    """A Helm release the stack installs: what `check` validates against the chart's values."""

    release: str
    chart: str
    version: str
    namespace: str
    values: dict[str, Any]


@dataclass(frozen=True)
class ResourceCounts:
    """What a plan registers: resources a provider creates, and components that only group them.

    `pulumi preview` lists both (and the stack itself); the CLI and summary.md print this one text so
    they never disagree.
    """

    resources: int  # custom resources: cloud objects, Kubernetes objects, Helm releases, providers
    components: int  # ComponentResources (inferstack:*): nothing is created for them

    def __str__(self) -> str:
        return f"{self.resources} resources (+{self.components} components)"


@dataclass
class Plan:
    stack: str
    config: StackConfig
    recording: Recording

    def manifests(self) -> list[dict[str, Any]]:
        """Every Kubernetes object as applied (names filled in, secret values redacted), in dependency order."""
        return [_manifest(r) for r in _dependency_order(self.recording)]

    def helm_releases(self) -> list[HelmReleasePlan]:
        releases = []
        charts = [*self.recording.of_type(HELM_RELEASE_TYPE), *self.recording.of_type(HELM_CHART_TYPE)]
        for r in charts:
            releases.append(
                HelmReleasePlan(
                    release=str(r.outputs.get("name", r.name)),
                    chart=str(r.inputs.get("chart", "")),
                    version=str(r.inputs.get("version", "")),
                    namespace=str(r.inputs.get("namespace", "default")),
                    values=r.inputs.get("values") or {},
                )
            )
        return sorted(releases, key=lambda h: h.release)

    def resources(self) -> list[dict[str, Any]]:
        rows = []
        for r in sorted(self.recording.resources, key=lambda r: r.urn):
            rows.append(
                {
                    "urn": r.urn,
                    "type": r.type,
                    "name": r.name,
                    "parent": r.parent,
                    "custom": r.custom,
                    "dependencies": sorted(set(r.dependencies)),
                    "inputs": r.redacted_inputs,
                }
            )
        return rows

    def counts(self) -> ResourceCounts:
        custom = sum(1 for r in self.recording.resources if r.custom)
        return ResourceCounts(resources=custom, components=len(self.recording.resources) - custom)

    def client_base_url(self) -> str | None:
        """The OpenAI base URL a client uses: the stack's `url` output (node port included where the
        gateway is a NodePort; components/load_balancer.public_url builds it) plus `/v1`. None when the
        program exported no `url`."""
        url = self.recording.exports.get("url")
        return f"{str(url).rstrip('/')}/v1" if isinstance(url, str) and url else None

    def gpus(self) -> tuple[int, int]:
        """GPUs the model servers use at their fewest and most replicas, all models together."""
        return gpu_range(self.config)

    def write(self, out_dir: Path, summary: str) -> list[Path]:
        """resources.json, manifests.yaml and `summary` (inferstack.reporting.summary.render_summary) as
        summary.md in `out_dir` (made if missing); returns the paths written."""
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {
            "resources.json": json.dumps(self.resources(), indent=2, sort_keys=True) + "\n",
            "manifests.yaml": MANIFESTS_HEADER
            + yaml.safe_dump_all(self.manifests(), sort_keys=False, default_flow_style=False),
            "summary.md": summary,
        }
        written = []
        for filename, text in files.items():
            path = out_dir / filename
            path.write_text(text, encoding="utf-8")
            written.append(path)
        return written


def _manifest(resource: RecordedResource) -> dict[str, Any]:
    """The object as the provider would apply it: the redacted inputs, with the name the provider filled in."""
    body = json.loads(json.dumps(resource.redacted_inputs))  # deep copy
    metadata = body.setdefault("metadata", {})
    filled = resource.outputs.get("metadata", {})
    if metadata == SECRET_PLACEHOLDER:
        metadata = body["metadata"] = {}
    metadata.setdefault("name", filled.get("name"))
    if "namespace" in filled and "namespace" not in metadata:
        metadata["namespace"] = filled["namespace"]
    if resource.kind == "Secret":
        # Keep the shape (which keys exist) so validators still see a well-formed Secret.
        for section in ("data", "stringData"):
            if body.get(section) == SECRET_PLACEHOLDER:
                body[section] = {k: SECRET_PLACEHOLDER for k in resource.inputs.get(section, {})}
    ordered = {
        "apiVersion": body.pop("apiVersion"),
        "kind": body.pop("kind"),
        "metadata": body.pop("metadata"),
    }
    ordered.update(body)
    return ordered


def _dependency_order(recording: Recording) -> list[RecordedResource]:
    """Kubernetes objects sorted so each comes after what it depends on; ties broken by kind, then by
    URN, so the output is stable however the registrations interleaved."""
    objects = sorted(recording.kubernetes_objects(), key=lambda r: r.urn)
    index = {r.urn: i for i, r in enumerate(objects)}
    children: dict[str, list[str]] = {}
    for r in recording.resources:
        if r.parent:
            children.setdefault(r.parent, []).append(r.urn)

    def expand(urn: str) -> set[str]:
        """A dependency on a component means one on every Kubernetes object beneath it."""
        if urn in index:
            return {urn}
        found: set[str] = set()
        for c in children.get(urn, []):
            found |= expand(c)
        return found

    after: dict[str, set[str]] = {r.urn: set() for r in objects}
    for r in objects:
        for dep in r.dependencies:
            after[r.urn] |= expand(dep) - {r.urn}
    waiting = {urn: len(deps) for urn, deps in after.items()}
    dependents: dict[str, list[str]] = {urn: [] for urn in after}
    for urn, deps in after.items():
        for dep in deps:
            dependents[dep].append(urn)
    ready = [(_kind_rank(objects[index[u]].kind), index[u], u) for u, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    ordered: list[RecordedResource] = []
    while ready:
        _, _, urn = heapq.heappop(ready)
        ordered.append(objects[index[urn]])
        for d in dependents[urn]:
            waiting[d] -= 1
            if waiting[d] == 0:
                heapq.heappush(ready, (_kind_rank(objects[index[d]].kind), index[d], d))
    if len(ordered) != len(objects):  # a cycle cannot come out of Pulumi, but never drop objects silently
        ordered += [r for r in objects if r not in ordered]
    return ordered


def plan_stack(config: StackConfig, stack: str) -> Plan:
    """Run the stack's program offline. Raises what the program raises (ValueError for bad component args)."""
    from stacks import deploy

    recording = run_program(lambda: deploy(config), stack=stack)
    return Plan(stack=stack, config=config, recording=recording)
