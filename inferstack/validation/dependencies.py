"""The plan-level rule `dependencies`: everything an object needs on the cluster is created before it.

Pulumi creates resources in parallel and orders only what the program links. An object whose namespace,
CRD or required controller arrives with another resource in the same program must say so, or a fresh
`pulumi up` races: "namespaces "envoy-gateway-system" not found", "no matches for kind PodMonitor", or
cert-manager crash-looping until the Gateway API CRDs exist. A schema cannot see this; the plan can.

What a resource waits for on create (its *dependency closure*), as the Python SDK orders it (pulumi
3.272.0, sdk/python/lib/pulumi/runtime/resource.py `prepare_resource`): it awaits the URNs of its
`depends_on` resources, the resources its inputs came from, and its `parent`'s URN; a custom resource's URN
resolves only once the engine has created it, and a component's only once its own `depends_on` has (so a
component's `depends_on` holds back every child); the engine creates a resource's `provider` first. The
closure is those edges, transitively, as the recording mock keeps them (`RecordedResource.dependencies`,
`.parent`, `.provider`).

Three rules, each a finding naming the object and the fix:

1. A namespaced object's closure holds what creates its namespace: a `Namespace` resource, or a Helm
   release with `createNamespace` in that namespace. `PREEXISTING_NAMESPACES` exist on every cluster.
2. A custom resource's closure holds what installs its CRD: a `CustomResourceDefinition` resource, or a
   release of a chart that ships it (`CRD_SOURCES`, read from each chart at the version we pin).
3. A release that needs another chart's CRDs at start (`CRD_NEEDS`) has the release that installs them in
   its closure.

A custom resource of a group no entry names, in a plan with no CRD resource for it, is a note: the rule
cannot tell who installs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from inferstack.planning.recording import RecordedResource
from inferstack.validation.common import CheckOutcome, Finding

CHECK = "dependencies"

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
#: A chart whose objects Pulumi applies itself (components/_common.py `crd_objects`): CRD charts.
HELM_CHART = "kubernetes:helm.sh/v4:Chart"
NAMESPACE = "kubernetes:core/v1:Namespace"
CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"

#: Namespaces the API server creates itself (kube-apiserver's system namespaces controller).
PREEXISTING_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})

#: Built-in API groups: their kinds need no CRD. "" is the core group.
_BUILT_IN_GROUP_SUFFIXES = (".k8s.io",)
_BUILT_IN_GROUPS = frozenset({"", "apps", "batch", "policy", "autoscaling"})
# Groups under k8s.io that are *not* built in: projects of Kubernetes SIGs served by CRDs.
_CRD_GROUPS_UNDER_K8S_IO = frozenset(
    {"gateway.networking.k8s.io", "inference.networking.k8s.io", "inference.networking.x-k8s.io"}
)


def _values(release: RecordedResource) -> dict[str, Any]:
    values = release.inputs.get("values")
    return values if isinstance(values, dict) else {}


def _get(values: dict[str, Any], *path: str) -> Any:
    node: Any = values
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _skips_crds(release: RecordedResource) -> bool:
    return bool(release.inputs.get("skipCrds"))


@dataclass(frozen=True)
class CrdSource:
    """A chart that installs the CRDs of `groups`, when `installs(release)` holds for a release of it.

    `chart` is the chart's name as the last segment of the chart reference ("gateway-helm" for
    oci://docker.io/envoyproxy/gateway-helm). `crds_folder` says the CRDs sit in the chart's `crds/`
    folder: Helm installs those on first install only, and not at all with `skipCrds`.
    """

    chart: str
    groups: frozenset[str]
    installs: Callable[[RecordedResource], bool]
    source: str


CRD_SOURCES: tuple[CrdSource, ...] = (
    CrdSource(
        "gateway-helm",
        frozenset({"gateway.networking.k8s.io", "gateway.envoyproxy.io"}),
        lambda r: not _skips_crds(r) and _get(_values(r), "crds", "enabled") is not False,
        # gateway-helm keeps them in its `crds` subchart's crds/ folder (condition crds.enabled); skipCrds
        # skips every crds/ folder, subcharts' included.
        "envoyproxy/gateway v1.8.3 charts/gateway-helm (crds subchart, crds/ folder)",
    ),
    # gateway-crds-helm v1.8.3 (charts/gateway-crds-helm/values.yaml; components/_common.py
    # ENVOY_GATEWAY_CRDS): templates/ gated per group, both switches default false.
    CrdSource(
        "gateway-crds-helm",
        frozenset({"gateway.networking.k8s.io"}),
        lambda r: bool(_get(_values(r), "crds", "gatewayAPI", "enabled")),
        "envoyproxy/gateway v1.8.3 charts/gateway-crds-helm values.yaml `crds.gatewayAPI.enabled`",
    ),
    CrdSource(
        "gateway-crds-helm",
        frozenset({"gateway.envoyproxy.io"}),
        lambda r: bool(_get(_values(r), "crds", "envoyGateway", "enabled")),
        "envoyproxy/gateway v1.8.3 charts/gateway-crds-helm values.yaml `crds.envoyGateway.enabled`",
    ),
    CrdSource(
        "cert-manager",
        frozenset({"cert-manager.io", "acme.cert-manager.io"}),
        # CRDs are templates/crd-*.yaml rendered when crds.enabled (or the deprecated installCRDs) is true
        lambda r: bool(_get(_values(r), "crds", "enabled") or _get(_values(r), "installCRDs")),
        "cert-manager v1.20 deploy/charts/cert-manager/values.yaml `crds.enabled`",
    ),
    CrdSource(
        "keda",
        frozenset({"keda.sh", "eventing.keda.sh"}),
        # templates/crds/ rendered unless crds.install is false (default true)
        lambda r: _get(_values(r), "crds", "install") is not False,
        "kedacore/charts keda 2.20.2 values.yaml `crds.install`",
    ),
    CrdSource(
        "kube-prometheus-stack",
        frozenset({"monitoring.coreos.com"}),
        # The crds subchart (condition crds.enabled, default true) keeps them in its crds/ folder.
        lambda r: _get(_values(r), "crds", "enabled") is not False and not _skips_crds(r),
        "prometheus-community/helm-charts kube-prometheus-stack 88.5.3 charts/crds/crds/",
    ),
    CrdSource(
        "prometheus-operator-crds",
        frozenset({"monitoring.coreos.com"}),
        # 31.0.1 = operator v0.93.1, what kube-prometheus-stack 88.5.3 runs (components/_common.py);
        # Per-CRD switches crds.<plural>.enabled, all true by default; any of them installs the group.
        lambda r: True,
        "prometheus-community/helm-charts prometheus-operator-crds 31.0.1 charts/crds/templates/",
    ),
    CrdSource(
        "karpenter",
        frozenset({"karpenter.sh", "karpenter.k8s.aws"}),
        lambda r: not _skips_crds(r),
        "aws/karpenter-provider-aws 1.14.1 charts/karpenter/crds/",
    ),
    CrdSource(
        "karpenter-crd",
        frozenset({"karpenter.sh", "karpenter.k8s.aws"}),
        lambda r: True,
        "aws/karpenter-provider-aws 1.14.1 charts/karpenter-crd/templates/",
    ),
    CrdSource(
        "keda-add-ons-http",
        frozenset({"http.keda.sh"}),
        # templates/crds/crd-interceptorroutes.yaml and crd-httpscaledobjects.yaml, each wrapped in
        # `if .Values.crds.install` (default true).
        lambda r: _get(_values(r), "crds", "install") is not False,
        "kedacore/charts keda-add-ons-http 0.15.0 (c4b92e9) http-add-on/templates/crds/, `crds.install`",
    ),
    # envoyproxy/ai-gateway v1.1.0 manifests/charts/ai-gateway-crds-helm/templates/aigateway.envoyproxy.io_*.yaml:
    # rendered unconditionally (the chart has no values); ai-gateway-helm itself ships none.
    CrdSource(
        "ai-gateway-crds-helm",
        frozenset({"aigateway.envoyproxy.io"}),
        lambda r: True,
        "envoyproxy/ai-gateway v1.1.0 manifests/charts/ai-gateway-crds-helm/templates/",
    ),
)


@dataclass(frozen=True)
class CrdNeed:
    """A release of `chart` that, when `needs(release)` holds, fails to start without `group`'s CRDs."""

    chart: str
    group: str
    needs: Callable[[RecordedResource], bool]
    why: str


CRD_NEEDS: tuple[CrdNeed, ...] = (
    CrdNeed(
        "cert-manager",
        "gateway.networking.k8s.io",
        lambda r: (
            bool(_get(_values(r), "config", "enableGatewayAPI"))
            or "--enable-gateway-api" in (_get(_values(r), "extraArgs") or [])
        ),
        # cert-manager v1.20 pkg/controller/context.go (NewContextFactory): with Gateway API support on,
        # the controller asks discovery for gateway.networking.k8s.io/v1 and returns "the Gateway API CRDs
        # do not seem to be present, but ExperimentalGatewayAPISupport is set to true. Please install the
        # gateway-api CRDs." -- an error that exits the controller ("which will cause cert-manager to
        # crashloopbackoff"); with `atomic` the release times out and rolls back.
        "cert-manager with Gateway API support (config.enableGatewayAPI) exits at start when the Gateway "
        "API CRDs are absent",
    ),
)


def chart_name(chart_ref: str) -> str:
    """'oci://docker.io/envoyproxy/gateway-helm' -> 'gateway-helm'; 'cert-manager' -> 'cert-manager'."""
    return chart_ref.rstrip("/").rsplit("/", 1)[-1]


def _group(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def is_custom_group(group: str) -> bool:
    """Whether kinds of this API group are served by CRDs rather than by the API server itself."""
    if group in _CRD_GROUPS_UNDER_K8S_IO:
        return True
    return not (group in _BUILT_IN_GROUPS or group.endswith(_BUILT_IN_GROUP_SUFFIXES))


def _metadata(r: RecordedResource) -> dict[str, Any]:
    md = r.inputs.get("metadata")
    out = r.outputs.get("metadata")
    merged: dict[str, Any] = dict(out) if isinstance(out, dict) else {}
    if isinstance(md, dict):
        merged.update({k: v for k, v in md.items() if v is not None})
    return merged


def _label(r: RecordedResource) -> str:
    if r.type == HELM_RELEASE:
        return f"Helm release {r.inputs.get('name') or r.name}"
    if r.type == HELM_CHART:
        return f"Helm chart {r.name}"
    md = _metadata(r)
    ns = md.get("namespace")
    name = md.get("name") or r.name
    return f"{r.kind}/{ns}/{name}" if ns else f"{r.kind}/{name}"


class _Graph:
    def __init__(self, resources: Iterable[RecordedResource]) -> None:
        self.resources = sorted(resources, key=lambda r: r.urn)
        self.by_urn = {r.urn: r for r in self.resources}
        self._closures: dict[str, frozenset[str]] = {}

    def closure(self, r: RecordedResource) -> frozenset[str]:
        """Every URN `r` waits for on create: dependencies, parent and provider, transitively."""
        if r.urn in self._closures:
            return self._closures[r.urn]
        seen: set[str] = set()
        todo = [r.urn]
        while todo:
            node = self.by_urn.get(todo.pop())
            if node is None:
                continue
            edges = [*node.dependencies, node.parent or "", node.provider.rsplit("::", 1)[0]]
            for nxt in edges:
                if nxt and nxt not in seen and "::pulumi:pulumi:Stack::" not in nxt:
                    seen.add(nxt)
                    todo.append(nxt)
        self._closures[r.urn] = frozenset(seen)
        return self._closures[r.urn]


def dependency_outcome(resources: Iterable[RecordedResource]) -> CheckOutcome:
    """Findings for objects whose namespace, CRD or needed CRDs are not in their dependency closure.

    `resources` is a recording's (`Plan.recording.resources`). The finding's resource is the object
    ("PodMonitor/envoy-gateway-system/llm-envoy") or "Helm release NAME"; its message names what is
    missing and the fix (a `depends_on`). `validated` counts the Kubernetes objects and releases checked.
    """
    graph = _Graph(resources)
    releases = [r for r in graph.resources if r.type == HELM_RELEASE]
    objects = [r for r in graph.resources if r.is_kubernetes_object]

    ns_creators: dict[str, list[RecordedResource]] = {}
    for r in objects:
        if r.type == NAMESPACE and _metadata(r).get("name"):
            ns_creators.setdefault(str(_metadata(r)["name"]), []).append(r)
    for r in releases:
        if r.inputs.get("createNamespace") and r.inputs.get("namespace"):
            ns_creators.setdefault(str(r.inputs["namespace"]), []).append(r)

    crd_installers: dict[str, list[RecordedResource]] = {}
    for r in objects:
        if r.type == CRD:
            spec = r.inputs.get("spec") or {}
            crd_installers.setdefault(str(spec.get("group", "")), []).append(r)
    for r in [*releases, *(c for c in graph.resources if c.type == HELM_CHART)]:
        name = chart_name(str(r.inputs.get("chart", "")))
        for source in CRD_SOURCES:
            if source.chart == name and source.installs(r):
                for group in source.groups:
                    crd_installers.setdefault(group, []).append(r)

    findings: list[Finding] = []
    notes: list[str] = []

    def missing(r: RecordedResource, candidates: list[RecordedResource]) -> bool:
        closure = graph.closure(r)
        return not any(c.urn in closure for c in candidates if c.urn != r.urn)

    for r in [*objects, *releases]:
        closure_label = _label(r)
        namespace = (
            str(r.inputs.get("namespace") or "default")
            if r.type == HELM_RELEASE
            else _metadata(r).get("namespace")
        )
        self_creates = r.type == HELM_RELEASE and bool(r.inputs.get("createNamespace"))
        if namespace and namespace not in PREEXISTING_NAMESPACES and not self_creates:
            creators = ns_creators.get(str(namespace), [])
            if not creators:
                findings.append(
                    Finding(
                        check=CHECK,
                        resource=closure_label,
                        message=f"metadata.namespace: nothing in the stack creates namespace {namespace!r}: "
                        "add a Namespace resource (or a Helm release with create_namespace) and depend on it",
                    )
                )
            elif missing(r, creators):
                findings.append(
                    Finding(
                        check=CHECK,
                        resource=closure_label,
                        message=f"metadata.namespace: namespace {namespace!r} is created by "
                        f"{', '.join(sorted(_label(c) for c in creators))}, which this object does not wait "
                        "for: add it to depends_on (on a fresh cluster the create fails with "
                        f"'namespaces \"{namespace}\" not found')",
                    )
                )

        api_version = str(r.inputs.get("apiVersion") or "")
        group = _group(api_version)
        if r.is_kubernetes_object and is_custom_group(group) and r.type != CRD:
            installers = crd_installers.get(group, [])
            if not installers:
                notes.append(
                    f"{closure_label}: no CustomResourceDefinition resource or known chart in the stack "
                    f"installs API group {group!r}; the dependency check assumes it exists on the cluster"
                )
            elif missing(r, installers):
                findings.append(
                    Finding(
                        check=CHECK,
                        resource=closure_label,
                        message=f"apiVersion: the CRD of {r.kind} ({group}) comes with "
                        f"{', '.join(sorted(_label(c) for c in installers))}, which this object does not "
                        "wait for: add it to depends_on (on a fresh cluster the create fails with "
                        f"'no matches for kind \"{r.kind}\"')",
                    )
                )

        if r.type == HELM_RELEASE:
            name = chart_name(str(r.inputs.get("chart", "")))
            for need in CRD_NEEDS:
                if need.chart != name or not need.needs(r):
                    continue
                installers = crd_installers.get(need.group, [])
                if not installers:
                    notes.append(
                        f"{closure_label}: needs the {need.group} CRDs ({need.why}); nothing in the stack "
                        "installs them, so they must exist on the cluster already"
                    )
                elif missing(r, installers):
                    findings.append(
                        Finding(
                            check=CHECK,
                            resource=closure_label,
                            message=f"depends_on: {need.why}; they come with "
                            f"{', '.join(sorted(_label(c) for c in installers))}: add that release to "
                            "this release's depends_on",
                        )
                    )
    return CheckOutcome(findings=findings, notes=sorted(set(notes)), validated=len(objects) + len(releases))
