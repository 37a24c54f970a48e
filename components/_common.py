"""Small pieces every component shares: child options, labels, and pinned Helm charts."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

MANAGED_BY = {"app.kubernetes.io/managed-by": "inferstack", "app.kubernetes.io/part-of": "inferstack"}


def child(parent: pulumi.Resource, **kwargs: Any) -> pulumi.ResourceOptions:
    """Options for a component's child: parented, so names nest, deletes cascade and the component's
    providers (the cluster's Kubernetes provider) are inherited."""
    return pulumi.ResourceOptions(parent=parent, **kwargs)


def reject_invalid_args(component: str, name: str, problems: list[str]) -> None:
    """Raise one ValueError listing every problem (each names its field), before any resource exists."""
    if problems:
        raise ValueError(f"{component} {name!r}: {len(problems)} problem(s)\n  " + "\n  ".join(problems))


def labels(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component, **MANAGED_BY}


#: The securityContext of a distroless "nonroot" container (uid/gid 65532) in chart values (camelCase):
#: what Envoy Gateway's and Envoy AI Gateway's charts default to, written out because setting the key
#: replaces the chart's default wholesale. No readOnlyRootFilesystem: Envoy writes files (upstream's choice).
NONROOT_CONTAINER_SECURITY_VALUES: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "privileged": False,
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True)
class HelmChart:
    """A chart pinned to an exact version. `values_dir` names its folder under the charts data directory
    (`--chart-dir` / $INFERSTACK_CHART_DIR) that `inferstack check` validates our values against."""

    chart: str
    version: str
    repo: str | None
    values_dir: str


# Versions seen released in August-November 2026 (see DESIGN.md); bump deliberately, one at a time.
# Envoy Gateway v1.8.3: the newest release/v1.8 tag in the upstream repository (envoyproxy/gateway tags,
# release/v1.8 VERSION and release-notes/v1.8.3.yaml); the code this project cites was read there. A v1.8.4
# appears only in third-party mirrors, with no upstream tag we could read, so it is not pinned.
ENVOY_GATEWAY = HelmChart("oci://docker.io/envoyproxy/gateway-helm", "v1.8.3", None, "envoy-gateway")
CERT_MANAGER = HelmChart("cert-manager", "v1.20.2", "https://charts.jetstack.io", "cert-manager")
KEDA = HelmChart("keda", "2.20.2", "https://kedacore.github.io/charts", "keda")
KUBE_PROMETHEUS_STACK = HelmChart(
    "kube-prometheus-stack",
    "88.5.3",
    "https://prometheus-community.github.io/helm-charts",
    "kube-prometheus-stack",
)
NVIDIA_DEVICE_PLUGIN = HelmChart(
    "nvidia-device-plugin", "0.20.0", "https://nvidia.github.io/k8s-device-plugin", "nvidia-device-plugin"
)
GPU_OPERATOR = HelmChart("gpu-operator", "v26.7.0", "https://helm.ngc.nvidia.com/nvidia", "gpu-operator")

# 1.14.1 is released: the chart on aws/karpenter-provider-aws's default branch says 1.14.1 with the
# controller image's digest (the release commit), and others pin 1.14.1 from the OCI registry since
# 2026-08. Its values.yaml is the one our values are checked against (../shared/charts/karpenter).
# Its CRDs come from KARPENTER_CRD (CRD_UPGRADES below), so a bump of this pin updates them.
KARPENTER = HelmChart("oci://public.ecr.aws/karpenter/karpenter", "1.14.1", None, "karpenter")

# aws/eks-charts PR #1354 "aws-load-balancer-controller: v3.5.0", merged 2026-08-03; chart 3.5.0 serves
# controller v3.5.0 (../shared/charts/aws-load-balancer-controller/Chart.yaml at that commit).
AWS_LOAD_BALANCER_CONTROLLER = HelmChart(
    "aws-load-balancer-controller",
    "3.5.0",
    "https://aws.github.io/eks-charts",
    "aws-load-balancer-controller",
)

# kubernetes-sigs/metrics-server tag metrics-server-helm-chart-3.13.1 (app 0.8.1); see components/metrics_server.py.
METRICS_SERVER = HelmChart(
    "metrics-server", "3.13.1", "https://kubernetes-sigs.github.io/metrics-server/", "metrics-server"
)

# kedacore/charts c4b92e9 "feat(http-add-on): release v0.15.0 (#878)", 2026-06-15: chart keda-add-ons-http
# 0.15.0 serving the interceptor, scaler and operator of kedacore/http-add-on v0.15.0 (tag commit 4ea8a863).
# ../shared/charts/keda-http-add-on is kedacore/charts main at 1444d00 (2026-08-13), still labelled 0.15.0
# but with keys the released chart and the v0.15.0 interceptor do not have (interceptor.directPodRouting,
# interceptor.coldStart.maxPendingRequests, extraVolumes): components/cold_start_hold.py sets none of them.
KEDA_HTTP_ADD_ON = HelmChart(
    "keda-add-ons-http", "0.15.0", "https://kedacore.github.io/charts", "keda-http-add-on"
)

# envoyproxy/ai-gateway tag v1.1.0: manifests/charts/ai-gateway-helm, published with the release tag as its
# version (Chart.yaml: "we ... use the release tag for both"); the docs' install step is
# `helm upgrade -i aieg oci://docker.io/envoyproxy/ai-gateway-helm --version v1.1.0 -n envoy-ai-gateway-system`.
# site/docs/compatibility.md at v1.1.0: Envoy Gateway v1.8.1+ (ENVOY_GATEWAY above is v1.8.3).
AI_GATEWAY = HelmChart("oci://docker.io/envoyproxy/ai-gateway-helm", "v1.1.0", None, "ai-gateway")

# NVIDIA/dcgm-exporter tag 4.5.3-4.8.2 (commit 691c927, "DCGM-Exporter 4.5.3-4.8.2 (#656)"): deployment/
# Chart.yaml version and appVersion 4.8.2, image nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless
# (DCGM 4.5.3 paired with exporter 4.8.2); published at https://nvidia.github.io/dcgm-exporter/helm-charts
# (the repository's README install step). Used where the GPU operator does not run its own exporter
# (components/gpu_telemetry.py).
DCGM_EXPORTER = HelmChart(
    "dcgm-exporter", "4.8.2", "https://nvidia.github.io/dcgm-exporter/helm-charts", "dcgm-exporter"
)


# --- CRDs that follow a pin bump ----------------------------------------------------------------------
# Helm installs a chart's crds/ folder on first install and never again: "There is no support at this time
# for upgrading or deleting CRDs using Helm" (Helm docs, Chart Best Practices > Custom Resource Definitions,
# helm.sh/docs/chart_best_practices/custom_resource_definitions/, method 1). A chart that keeps its CRDs in
# crds/ therefore leaves the old CRDs behind on every `helm upgrade`, and a controller of the new version
# then reads objects through a stale schema. CRDs rendered from templates/ are ordinary release objects and
# are upgraded with the release. So each pinned chart below is either a chart whose CRDs are templates, or
# one whose crds/ folder is skipped (`skip_crds`) and whose CRDs come from a separate CRD chart installed as
# its own release, at the version that matches, before it; or it has a documented reason (CRD_UPGRADES).

# aws/karpenter-provider-aws charts/karpenter-crd: the same CRDs as charts/karpenter/crds/, as templates
# (templates/karpenter.sh_nodepools.yaml, karpenter.k8s.aws_ec2nodeclasses.yaml, ...), released with the same
# version; Karpenter's upgrade guide (karpenter.sh/docs/upgrading/upgrade-guide, "CRD Upgrades") installs it
# with `helm upgrade --install karpenter-crd oci://public.ecr.aws/karpenter/karpenter-crd --version X`
# before the main chart. Its only values (webhook.*, default off) stay at their defaults.
KARPENTER_CRD = HelmChart("oci://public.ecr.aws/karpenter/karpenter-crd", "1.14.1", None, "karpenter-crd")

# envoyproxy/gateway charts/gateway-crds-helm (published since v1.5 beside gateway-helm, same version):
# Gateway API and Envoy Gateway CRDs as templates/ behind `crds.gatewayAPI.enabled` and
# `crds.envoyGateway.enabled`, both false by default, and `crds.gatewayAPI.channel` (default
# "experimental", the channel gateway-helm's crds/gatewayapi-crds.yaml carries)
# (charts/gateway-crds-helm/values.yaml and README.md; gateway.envoyproxy.io/v1.5/install/gateway-crds-helm-api).
# Its README: "make sure that you don't install the CRDs again when installing the Envoy Gateway Helm chart,
# by using `--skip-crds` flag."
ENVOY_GATEWAY_CRDS = HelmChart(
    "oci://docker.io/envoyproxy/gateway-crds-helm", "v1.8.3", None, "gateway-crds-helm"
)
ENVOY_GATEWAY_CRDS_VALUES: dict[str, Any] = {
    "crds": {"gatewayAPI": {"enabled": True, "channel": "experimental"}, "envoyGateway": {"enabled": True}}
}

# prometheus-community/helm-charts: kube-prometheus-stack 88.5.3 has appVersion v0.93.1 (the Prometheus
# operator it runs) and keeps that operator's CRDs in charts/crds/crds/ (condition crds.enabled);
# prometheus-operator-crds 31.0.1 is the chart release of the same operator version ("Update dependency
# prometheus-operator/prometheus-operator to v0.93.1", #7180, 2026-08-10; charts/prometheus-operator-crds/
# Chart.yaml version 31.0.1, appVersion v0.93.1), with the CRDs as templates. Bump the two together: the
# CRD chart's appVersion must equal kube-prometheus-stack's appVersion (tests/test_crd_upgrades.py).
# kube-prometheus-stack's README ("Upgrading Chart"): "With Helm v3, CRDs created by this chart are not
# updated by default and should be manually updated." Its own crds.upgradeJob (a pre-upgrade hook job) is
# "in preview, off by default and may change" (values.yaml), so the separate CRD chart is used instead.
PROMETHEUS_OPERATOR_CRDS = HelmChart(
    "prometheus-operator-crds",
    "31.0.1",
    "https://prometheus-community.github.io/helm-charts",
    "prometheus-operator-crds",
)
#: The Prometheus operator version each of the two charts above carries (their Chart.yaml appVersion).
PROMETHEUS_OPERATOR_VERSION = "v0.93.1"

# envoyproxy/ai-gateway v1.1.0 manifests/charts/ai-gateway-crds-helm: the AI Gateway CRDs as templates/
# (aigateway.envoyproxy.io_*.yaml), no values (values.yaml is a licence header only). ai-gateway-helm v1.1.0
# itself ships no CRDs (no crds/ folder, none in templates/), so this chart is the only source.
AI_GATEWAY_CRDS = HelmChart(
    "oci://docker.io/envoyproxy/ai-gateway-crds-helm", "v1.1.0", None, "ai-gateway-crds"
)

# open-webui/helm-charts tag open-webui-16.0.0 (commit a6305e705ee1, "feat: release v0.11.0", 2026-07-30):
# chart open-webui 16.0.0, appVersion 0.11.0, published at https://helm.openwebui.com (the repository its
# Chart.yaml names for its own pipelines/terminals subcharts). No CRDs (templates/ holds workload, service,
# pvc, route, ingress, service account, websocket redis, extra resources; no crds/ folder); the subcharts
# that could bring any (ollama, pipelines, tika, terminals) are off in components/chat_ui.py.
OPEN_WEBUI = HelmChart("open-webui", "16.0.0", "https://helm.openwebui.com", "open-webui")


class CrdLocation(StrEnum):
    """Where a chart keeps its CRDs at the pinned version."""

    TEMPLATES = "templates"  # rendered like any object: `helm upgrade` updates them
    CRDS_FOLDER = "crds/"  # installed once, never upgraded by Helm
    NONE = "none"  # the chart (with our values) installs no CRDs


@dataclass(frozen=True)
class CrdUpgrade:
    """How a pinned chart's CRDs follow a bump of its pin.

    `crd_chart` (with `crd_values`) is installed as its own release `<release>-crds` before the main
    release, which then runs with skip_crds. Without one, `reason` says why the CRDs still follow upgrades
    or what the operator does by hand, citing the chart at its pinned version.
    """

    location: CrdLocation
    reason: str
    crd_chart: HelmChart | None = None
    crd_values: dict[str, Any] = field(default_factory=dict)
    #: Helm's `--disable-openapi-validation`, for charts whose own pre-upgrade hook updates the CRDs.
    disable_openapi_validation: bool = False


#: Every pinned main chart (by chart reference) -> how its CRDs follow an upgrade.
CRD_UPGRADES: dict[str, CrdUpgrade] = {
    ENVOY_GATEWAY.chart: CrdUpgrade(
        CrdLocation.CRDS_FOLDER,
        "gateway-helm v1.8.3 ships Gateway API and Envoy Gateway CRDs in crds/ (the `crds` subchart's "
        "crds/ folder); they come from gateway-crds-helm at the same version",
        ENVOY_GATEWAY_CRDS,
        ENVOY_GATEWAY_CRDS_VALUES,
    ),
    CERT_MANAGER.chart: CrdUpgrade(
        CrdLocation.TEMPLATES,
        "cert-manager v1.20 renders its CRDs from templates/crd-*.yaml when crds.enabled (we set it, with "
        "crds.keep so an uninstall keeps them): upgrades update them (deploy/charts/cert-manager/values.yaml)",
    ),
    KEDA.chart: CrdUpgrade(
        CrdLocation.TEMPLATES,
        "kedacore/charts keda 2.20.2 renders its CRDs from templates/crds/ while crds.install is true (the "
        "default): upgrades update them",
    ),
    KUBE_PROMETHEUS_STACK.chart: CrdUpgrade(
        CrdLocation.CRDS_FOLDER,
        "kube-prometheus-stack 88.5.3 keeps the operator's CRDs in charts/crds/crds/; they come from "
        f"prometheus-operator-crds {PROMETHEUS_OPERATOR_CRDS.version} (operator {PROMETHEUS_OPERATOR_VERSION})",
        PROMETHEUS_OPERATOR_CRDS,
    ),
    METRICS_SERVER.chart: CrdUpgrade(
        CrdLocation.NONE,
        "metrics-server serves metrics.k8s.io through an APIService and defines no CRDs",
    ),
    NVIDIA_DEVICE_PLUGIN.chart: CrdUpgrade(
        CrdLocation.NONE,
        "nvidia-device-plugin 0.20.0 installs CRDs only through its node-feature-discovery subchart "
        "(condition nfd.enabled,gfd.enabled, both off in our values)",
    ),
    GPU_OPERATOR.chart: CrdUpgrade(
        CrdLocation.CRDS_FOLDER,
        "gpu-operator keeps ClusterPolicy and NVIDIADriver CRDs in crds/, and its own pre-upgrade hook "
        "(templates/upgrade_crd.yaml, on while operator.upgradeCRD is true, the default) applies the new "
        "version's CRDs before the upgrade; values.yaml: it 'requires --disable-openapi-validation flag to be "
        "passed during helm upgrade', so the release sets disable_openapi_validation",
        disable_openapi_validation=True,
    ),
    KARPENTER.chart: CrdUpgrade(
        CrdLocation.CRDS_FOLDER,
        "karpenter 1.14.1 keeps its CRDs in crds/; they come from karpenter-crd at the same version, as "
        "Karpenter's upgrade guide prescribes",
        KARPENTER_CRD,
    ),
    AWS_LOAD_BALANCER_CONTROLLER.chart: CrdUpgrade(
        CrdLocation.CRDS_FOLDER,
        "aws-load-balancer-controller 3.5.0 keeps TargetGroupBinding/IngressClassParams CRDs in "
        "crds/crds.yaml and eks-charts publishes no CRD chart; its README ('Upgrade') says to apply them "
        "by hand before `helm upgrade`: kubectl apply -k "
        '"github.com/aws/eks-charts/stable/aws-load-balancer-controller/crds?ref=master". InferStack creates '
        "none of these objects; docs/aws.md gives the step for a pin bump",
    ),
    KEDA_HTTP_ADD_ON.chart: CrdUpgrade(
        CrdLocation.TEMPLATES,
        "kedacore/charts keda-add-ons-http 0.15.0 renders HTTPScaledObject and InterceptorRoute CRDs from "
        "templates/crds/ while crds.install is true (the default): upgrades update them",
    ),
    AI_GATEWAY.chart: CrdUpgrade(
        CrdLocation.NONE,
        "ai-gateway-helm v1.1.0 has no crds/ folder and renders no CRD; the aigateway.envoyproxy.io CRDs come "
        "from ai-gateway-crds-helm at the same version (templates/, so a bump of the pin updates them)",
        AI_GATEWAY_CRDS,
    ),
    DCGM_EXPORTER.chart: CrdUpgrade(
        CrdLocation.NONE,
        "dcgm-exporter 4.8.2 has no crds/ folder and renders no CRD (deployment/templates at tag 4.5.3-4.8.2); "
        "its ServiceMonitor template needs the Prometheus operator's CRDs, which we turn off for our own PodMonitor",
    ),
    OPEN_WEBUI.chart: CrdUpgrade(
        CrdLocation.NONE,
        "open-webui 16.0.0 has no crds/ folder and renders no CRD; its subcharts (ollama, pipelines, tika, "
        "terminals) are disabled by components/chat_ui.py",
    ),
}


def helm_release(
    name: str,
    chart: HelmChart,
    *,
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
    extra_values: dict[str, Any] | None = None,
    crd_provider: pulumi.ProviderResource | None = None,
) -> k8s.helm.v3.Release:
    """Install a pinned chart into its own namespace; `extra_values` is the escape hatch for settings we
    do not type, merged over ours.

    Where CRD_UPGRADES gives the chart a CRD chart, that chart is applied first as `<name>-crds`
    (crd_objects, on `crd_provider` when given: the second of cluster_providers()), and this release runs with skip_crds
    and depends on it: a bump of the pins upgrades the CRDs before the controller. Depending on the
    returned release therefore also waits for the CRDs.
    """
    crds = CRD_UPGRADES.get(chart.chart)
    skip_crds = False
    if crds is not None and crds.crd_chart is not None:
        crd_opts = (
            opts
            if crd_provider is None
            else pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(provider=crd_provider))
        )
        crd_chart = crd_objects(
            f"{name}-crds", crds.crd_chart, namespace=namespace, values=dict(crds.crd_values), opts=crd_opts
        )
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[crd_chart]))
        skip_crds = True
    return _release(
        name,
        chart,
        namespace=namespace,
        values=deep_merge(values, extra_values or {}),
        opts=opts,
        skip_crds=skip_crds,
        disable_openapi_validation=crds.disable_openapi_validation if crds is not None else False,
    )


def crd_objects(
    name: str,
    chart: HelmChart,
    *,
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v4.Chart:
    """A CRD chart's objects, rendered at its pinned version and applied by Pulumi one by one.

    Not a Helm release: Helm keeps each release (chart, values and rendered manifest, gzipped) in one
    Secret, and Kubernetes caps a Secret at 1 MiB. gateway-crds-helm's Gateway API + Envoy Gateway CRDs
    exceed it ("Secret sh.helm.release.v1.eg-crds.v1 is invalid: data: Too long: must have at most
    1048576 bytes", envoyproxy/gateway#6105; Envoy Gateway's install docs therefore render the chart with
    `helm template` and `kubectl apply --server-side`). helm.v4.Chart is the Pulumi form of that: the
    provider renders the chart and registers every CRD as its own resource; an update is a server-side
    apply, so a bump of the pin updates each CRD (and an unchanged CRD is not touched). Used for every CRD
    chart, small ones too: CRDs need no Helm release bookkeeping, and one way keeps the dependency check's
    rule simple.

    Two things a Helm release of crds/ did implicitly are restored by `keep_crds` on every child: a
    CRD survives `pulumi destroy` (deleting it deletes every object of its kinds in the whole cluster,
    other teams' too; Helm never deletes crds/), and its create waits until the API server serves it.
    A CRD already on the cluster (from the main chart's crds/ before, or another install) is adopted
    only when `opts` carries the "cluster-crds" provider of cluster_providers(): pulumi-kubernetes creates new objects
    with a plain create, which fails with AlreadyExists otherwise.
    """
    return k8s.helm.v4.Chart(
        name,
        chart=chart.chart,
        version=chart.version,
        repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=chart.repo) if chart.repo else None,
        namespace=namespace,
        values=values,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(transforms=[keep_crds])),
    )


#: Waits on create until the API server serves the CRD (pulumi-kubernetes' generic await,
#: `pulumi.com/waitFor`, kubectl-wait syntax); a custom resource created right after would otherwise
#: race "no matches for kind".
CRD_WAIT_FOR = "condition=Established"


def keep_crds(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """Transform for a CRD chart's children: each CustomResourceDefinition is retained on delete and
    waits until Established; anything else the chart renders is left as it is."""
    if args.type_ != "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition":
        return None
    props: dict[str, Any] = dict(args.props)
    metadata: dict[str, Any] = dict(cast(dict[str, Any], props.get("metadata") or {}))
    metadata["annotations"] = {**(metadata.get("annotations") or {}), "pulumi.com/waitFor": CRD_WAIT_FOR}
    props["metadata"] = metadata
    return pulumi.ResourceTransformResult(
        props=props,
        opts=pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(retain_on_delete=True)),
    )


def cluster_providers(**cluster: Any) -> tuple[k8s.Provider, k8s.Provider]:
    """The stack's two Kubernetes providers on one cluster, from the same settings (`cluster`: k8s.Provider
    keyword arguments such as kubeconfig, context, namespace, render_yaml_to_directory), both with
    server-side apply:
    - "cluster", for every object of the stack;
    - "cluster-crds", for the CRD charts only (crd_objects), which adds
      - upsert_existing_objects: a CRD that already exists is updated (server-side apply) instead of the
        create failing with AlreadyExists; clusters deployed before the CRD charts, and clusters whose
        Gateway API or prometheus-operator CRDs came from elsewhere, hold them already;
      - enable_patch_force: that apply takes the fields over from their previous manager (Helm, which
        created the crds/ objects), where a plain apply would stop on a field-manager conflict.
      Kept apart from the main provider, so no other object of the stack silently adopts a namesake.
    """
    settings = {**cluster, "enable_server_side_apply": True}
    return (
        k8s.Provider("cluster", **settings),
        k8s.Provider("cluster-crds", **settings, upsert_existing_objects=True, enable_patch_force=True),
    )


def _release(
    name: str,
    chart: HelmChart,
    *,
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
    skip_crds: bool = False,
    disable_openapi_validation: bool = False,
) -> k8s.helm.v3.Release:
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=chart.chart,
        version=chart.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo) if chart.repo else None,
        namespace=namespace,
        create_namespace=True,
        atomic=True,
        cleanup_on_fail=True,
        timeout=600,
        values=values,
        # Only set when true, so the recorded inputs of charts without CRD handling stay as they were.
        skip_crds=True if skip_crds else None,
        disable_openapi_validation=True if disable_openapi_validation else None,
        opts=opts,
    )


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


RESTRICTED_CONTAINER_SECURITY: dict[str, Any] = {
    "allow_privilege_escalation": False,
    "capabilities": {"drop": ["ALL"]},
    "run_as_non_root": True,
    "read_only_root_filesystem": True,
    "seccomp_profile": {"type": "RuntimeDefault"},
}
