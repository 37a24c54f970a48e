"""Fetch what `inferstack check` validates against, for the chart versions this project pins.

    .venv/bin/python scripts/fetch_schemas.py build/upstream      (or: make fetch-schemas)

writes, in the layout of the ../shared data folders:

    build/upstream/charts/<values_dir>/{Chart.yaml,values.yaml,values.schema.json}
    build/upstream/crds/<values_dir>.yaml      every CustomResourceDefinition the chart installs
    build/upstream/crds/<file>.yaml            the CRDs Pulumi applies itself (components/crds/, copied)

then point INFERSTACK_CHART_DIR / INFERSTACK_CRD_DIR at the two folders. Used where ../shared is not
beside the checkout: a CI runner (.github/workflows/pr.yml), a laptop. It needs the `helm` CLI (3.8 or
later, for the OCI charts) and the charts' registries; the released chart of the pinned version is what
a real `pulumi up` installs, so these are the files to check against.

A chart's CRDs are taken from `helm template --include-crds` with the values that make the chart emit
them (cert-manager keeps its CRDs behind `crds.enabled`), so CRDs in a chart's crds/ folder and in its
templates are both found. Any failure (helm missing, a pull or render failing, a chart that should ship
CRDs shipping none) stops with exit 2 and one line naming the chart: CI must not pass with validation
silently skipped.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components import _common  # noqa: E402  (the project root must be importable first)
from components._common import HelmChart  # noqa: E402
from stacks.config import ClusterConfig  # noqa: E402

# Charts gate templates on the cluster version (Chart.yaml kubeVersion, .Capabilities): render for the
# version stacks default to, not whatever Kubernetes release the local helm binary was built against.
KUBE_VERSION = str(ClusterConfig.model_fields["kubernetes_version"].default)

CHART_FILES = ("Chart.yaml", "values.yaml", "values.schema.json")


@dataclass(frozen=True)
class CrdSource:
    """How a chart emits the CRDs our resources use: the `--set` values that switch them on, and the
    API groups that must be among them (a chart that renders none of them fails the fetch)."""

    sets: tuple[str, ...] = ()
    groups: frozenset[str] = field(default_factory=frozenset)


# Charts whose CRDs InferStack creates resources of; the other pinned charts contribute values only.
CRD_SOURCES: dict[str, CrdSource] = {
    "envoy-gateway": CrdSource(
        ("crds.enabled=true",), frozenset({"gateway.networking.k8s.io", "gateway.envoyproxy.io"})
    ),
    "cert-manager": CrdSource(("crds.enabled=true",), frozenset({"cert-manager.io"})),
    "keda": CrdSource(("crds.install=true",), frozenset({"keda.sh"})),
    "kube-prometheus-stack": CrdSource(("crds.enabled=true",), frozenset({"monitoring.coreos.com"})),
    "karpenter": CrdSource((), frozenset({"karpenter.sh", "karpenter.k8s.aws"})),
    # The CRD charts the main charts above are installed with (components/_common.py CRD_UPGRADES): the
    # CRDs a real `pulumi up` applies; rendered with the same values the stacks pass.
    "gateway-crds-helm": CrdSource(
        ("crds.gatewayAPI.enabled=true", "crds.envoyGateway.enabled=true"),
        frozenset({"gateway.networking.k8s.io", "gateway.envoyproxy.io"}),
    ),
    "prometheus-operator-crds": CrdSource((), frozenset({"monitoring.coreos.com"})),
    "karpenter-crd": CrdSource((), frozenset({"karpenter.sh", "karpenter.k8s.aws"})),
    # envoyproxy/ai-gateway v1.1.0 ai-gateway-crds-helm: templates/, no switches (components/_common.py).
    "ai-gateway-crds": CrdSource((), frozenset({"aigateway.envoyproxy.io"})),
    # kedacore/charts keda-add-ons-http 0.15.0: HTTPScaledObject and InterceptorRoute from templates/crds/
    # while crds.install is true (values.yaml default; components/_common.py CRD_UPGRADES). InferStack
    # creates InterceptorRoutes for every model that scales to zero (components/cold_start_hold.py).
    "keda-http-add-on": CrdSource(("crds.install=true",), frozenset({"http.keda.sh"})),
}

#: CRDs no pinned chart installs: Pulumi applies these files itself (the InferencePool CRD of the Gateway
#: API Inference Extension v1.6.0, components/inference_pool.py inference_pool_crd), so they are copied
#: into the CRD folder as they are: `inferstack check` validates against exactly what `pulumi up` applies.
VENDORED_CRD_DIR = ROOT / "components" / "crds"


def vendored_crd_files() -> list[Path]:
    """The CRD files Pulumi applies from VENDORED_CRD_DIR, sorted by name."""
    return sorted(VENDORED_CRD_DIR.glob("*.yaml"))


def vendored_crd_groups() -> frozenset[str]:
    """The API groups of the vendored CRD files."""
    return frozenset(
        str(doc["spec"]["group"])
        for path in vendored_crd_files()
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
    )


def covered_groups() -> frozenset[str]:
    """Every API group the fetched CRD folder holds CRDs of: the charts' (CRD_SOURCES) and the vendored."""
    return frozenset().union(*(s.groups for s in CRD_SOURCES.values()), vendored_crd_groups())


class FetchError(Exception):
    """One chart could not be fetched; the message names it and what to do."""


def pinned_charts() -> list[HelmChart]:
    """Every chart components/_common.py pins, in the order they are defined there."""
    return [value for value in vars(_common).values() if isinstance(value, HelmChart)]


def _helm(args: list[str], chart: HelmChart, what: str) -> str:
    try:
        done = subprocess.run(["helm", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise FetchError("the helm CLI is not on PATH: install Helm 3.8 or later (https://helm.sh)") from exc
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}").splitlines()[-1]
        raise FetchError(f"chart {chart.chart} {chart.version}: {what} failed: {detail}")
    return done.stdout


def pull(chart: HelmChart, into: Path) -> Path:
    """`helm pull --untar` the pinned version; the chart's folder inside `into`."""
    args = ["pull", chart.chart, "--version", chart.version, "--untar", "--untardir", str(into)]
    if chart.repo:
        args += ["--repo", chart.repo]
    _helm(args, chart, "helm pull")
    folders = [p for p in into.iterdir() if p.is_dir()]
    if len(folders) != 1 or not (folders[0] / "Chart.yaml").is_file():
        raise FetchError(f"chart {chart.chart} {chart.version}: helm pull did not leave one chart folder")
    return folders[0]


def copy_chart_files(chart: HelmChart, chart_folder: Path, charts_out: Path) -> None:
    target = charts_out / chart.values_dir
    target.mkdir(parents=True, exist_ok=True)
    if not (chart_folder / "values.yaml").is_file():
        raise FetchError(f"chart {chart.chart} {chart.version}: it has no values.yaml")
    for name in CHART_FILES:
        if (chart_folder / name).is_file():
            shutil.copyfile(chart_folder / name, target / name)


def rendered_crds(chart: HelmChart, chart_folder: Path, source: CrdSource) -> list[dict]:
    """The CRDs `helm template --include-crds` renders, checked to cover the groups we need."""
    args = [
        "template",
        "inferstack-schemas",
        str(chart_folder),
        "--include-crds",
        "--kube-version",
        KUBE_VERSION,
    ]
    for value in source.sets:
        args += ["--set", value]
    rendered = _helm(args, chart, "helm template")
    try:
        docs = [d for d in yaml.safe_load_all(rendered) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        raise FetchError(f"chart {chart.chart} {chart.version}: helm template output is not YAML") from exc
    crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    found = {str((d.get("spec") or {}).get("group")) for d in crds}
    missing = sorted(source.groups - found)
    if missing:
        raise FetchError(
            f"chart {chart.chart} {chart.version}: rendered no CRDs of {', '.join(missing)}; "
            f"update CRD_SOURCES in scripts/fetch_schemas.py for this chart version"
        )
    return crds


def fetch(out: Path, charts: list[HelmChart]) -> list[str]:
    """Fetch every chart into `out`/charts and `out`/crds; one summary line per chart.

    All or nothing: the files are written to a staging folder beside `out` and moved into place only when
    every chart succeeded, so a failed run (no helm, a failed pull) leaves no empty or partial folder that
    `inferstack check` and the tests would take for upstream data, and keeps an earlier complete fetch.
    """
    if shutil.which("helm") is None:
        raise FetchError("the helm CLI is not on PATH: install Helm 3.8 or later (https://helm.sh)")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=out) as staging_name:
        staging = Path(staging_name)
        charts_out, crds_out = staging / "charts", staging / "crds"
        charts_out.mkdir()
        crds_out.mkdir()
        lines = []
        for chart in charts:
            with tempfile.TemporaryDirectory(prefix="inferstack-chart-") as tmp:
                folder = pull(chart, Path(tmp))
                copy_chart_files(chart, folder, charts_out)
                line = f"{chart.values_dir} {chart.version}: values"
                source = CRD_SOURCES.get(chart.values_dir)
                if source is not None:
                    crds = rendered_crds(chart, folder, source)
                    (crds_out / f"{chart.values_dir}.yaml").write_text(
                        yaml.safe_dump_all(crds, sort_keys=False), encoding="utf-8"
                    )
                    line += f", {len(crds)} CRDs"
                lines.append(line)
        for path in vendored_crd_files():
            shutil.copyfile(path, crds_out / path.name)
            lines.append(f"{path.name}: vendored CRD (components/crds)")
        for name in ("charts", "crds"):
            shutil.rmtree(out / name, ignore_errors=True)
            (staging / name).rename(out / name)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write charts/ and crds/ into (e.g. build/upstream)")
    args = parser.parse_args(argv)
    try:
        lines = fetch(args.out, pinned_charts())
    except FetchError as exc:
        print(f"fetch_schemas: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    print(f"INFERSTACK_CHART_DIR={args.out / 'charts'}\nINFERSTACK_CRD_DIR={args.out / 'crds'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
