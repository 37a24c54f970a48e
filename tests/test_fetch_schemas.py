"""scripts/fetch_schemas.py against a stand-in `helm` on PATH (no helm, no registry here).

The stand-in records every call and answers `pull` with a minimal chart and `template` with a Deployment
plus one CRD per API group it is told the chart renders. What is checked is our side: the pinned
versions and repositories are asked for, the charts' CRD switches are passed, the output is the layout
`inferstack check` reads, every custom API group our stacks create is covered, and each failure is one
line naming the chart with exit 2.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from inferstack.planning.plan import plan_stack
from inferstack.validation.common import split_api_version
from inferstack.validation.core import builtin_groups
from inferstack.validation.crds import load_crd_index
from stacks.config import load_stack_file

ROOT = Path(__file__).resolve().parents[1]

STUB = r'''#!PYTHON
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
groups = json.loads(os.environ.get("STUB_GROUPS", "{}"))
if os.environ.get("STUB_FAIL") == args[0]:
    print("Error: failed to fetch chart: 404 Not Found", file=sys.stderr)
    sys.exit(1)
if args[0] == "pull":
    name = args[1].rstrip("/").split("/")[-1]
    folder = Path(args[args.index("--untardir") + 1]) / name
    (folder / "templates").mkdir(parents=True)
    version = args[args.index("--version") + 1]
    (folder / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: {version}\n")
    (folder / "values.yaml").write_text("replicaCount: 1\n")
    (folder / "values.schema.json").write_text('{"type": "object"}')
elif args[0] == "template":
    name = Path(args[2]).name
    print("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n---")
    for group in groups.get(name, []):
        kind = group.split(".")[0].capitalize() + "Thing"
        print(f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: things.{group}}}
spec:
  group: {group}
  names: {{kind: {kind}, plural: things}}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {{openAPIV3Schema: {{type: object}}}}
---""")
'''


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fetch_schemas", ROOT / "scripts" / "fetch_schemas.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


fetch_schemas = load_script()


def chart_name(chart: object) -> str:
    return str(chart.chart).rstrip("/").split("/")[-1]  # type: ignore[attr-defined]


def all_groups() -> dict[str, list[str]]:
    """What each pinned chart's template renders in the happy path: the groups CRD_SOURCES asks for."""
    return {
        chart_name(c): sorted(fetch_schemas.CRD_SOURCES.get(c.values_dir, fetch_schemas.CrdSource()).groups)
        for c in fetch_schemas.pinned_charts()
    }


@pytest.fixture
def helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in helm first on PATH; returns the log file of its calls (one JSON argv per line)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "helm"
    stub.write_text(STUB.replace("PYTHON", sys.executable, 1))
    stub.chmod(0o755)
    log = tmp_path / "helm.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("STUB_LOG", str(log))
    monkeypatch.setenv("STUB_GROUPS", json.dumps(all_groups()))
    return log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_every_pinned_chart_is_pulled_at_its_version_into_the_check_layout(
    helm: Path, tmp_path: Path
) -> None:
    out = tmp_path / "schemas"
    assert fetch_schemas.main([str(out)]) == 0
    charts = fetch_schemas.pinned_charts()
    assert len(charts) >= 8
    pulls = [c for c in calls(helm) if c[0] == "pull"]
    assert len(pulls) == len(charts)
    for chart, argv in zip(charts, pulls, strict=True):
        assert argv[1] == chart.chart
        assert argv[argv.index("--version") + 1] == chart.version
        if chart.repo:
            assert argv[argv.index("--repo") + 1] == chart.repo
        else:
            assert chart.chart.startswith("oci://") and "--repo" not in argv
        folder = out / "charts" / chart.values_dir
        assert {p.name for p in folder.iterdir()} == {"Chart.yaml", "values.yaml", "values.schema.json"}
        assert yaml.safe_load((folder / "Chart.yaml").read_text())["version"] == chart.version


def test_crds_are_rendered_with_their_switches_on_and_readable_by_check(helm: Path, tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    assert fetch_schemas.main([str(out)]) == 0
    templates = {Path(c[2]).name: c for c in calls(helm) if c[0] == "template"}
    by_dir = {c.values_dir: c for c in fetch_schemas.pinned_charts()}
    assert set(templates) == {chart_name(by_dir[d]) for d in fetch_schemas.CRD_SOURCES}
    cert_manager = templates[chart_name(by_dir["cert-manager"])]
    assert "--include-crds" in cert_manager
    # cert-manager keeps its CRDs behind crds.enabled (default false): without it nothing is validated.
    assert shlex.join(cert_manager).count("--set crds.enabled=true") == 1
    assert cert_manager[cert_manager.index("--kube-version") + 1] == "1.34"

    index = load_crd_index(str(out / "crds"))
    assert not index.problems
    groups = {group for group, _kind in index.kinds}
    # The charts' CRDs, and the ones Pulumi applies from components/crds/ (the InferencePool CRD).
    assert "inference.networking.k8s.io" in fetch_schemas.vendored_crd_groups()
    assert groups == fetch_schemas.covered_groups()
    assert sorted(p.name for p in (out / "crds").iterdir()) == sorted(
        [f"{d}.yaml" for d in fetch_schemas.CRD_SOURCES]
        + [p.name for p in fetch_schemas.vendored_crd_files()]
    )
    # Copied as they are: check validates against exactly what `pulumi up` applies.
    for vendored in fetch_schemas.vendored_crd_files():
        assert (out / "crds" / vendored.name).read_bytes() == vendored.read_bytes()


STACK_FILES = sorted(
    [*(ROOT / "stacks").glob("Pulumi.*.yaml"), *(ROOT / "docs" / "examples").glob("Pulumi.*.yaml")]
)
STACKS = {p.name.removeprefix("Pulumi.").removesuffix(".yaml"): p for p in STACK_FILES}


@cache
def custom_groups_of(stack: str) -> set[str]:
    plan = plan_stack(load_stack_file(STACKS[stack]), stack)
    builtin = builtin_groups()
    return {
        group
        for obj in plan.manifests()
        if (group := split_api_version(str(obj.get("apiVersion", "")))[0]) not in builtin
    }


# Every stack: the ones that scale a model to zero create http.keda.sh InterceptorRoutes, the ones with
# prefix-aware routing inference.networking.k8s.io InferencePools, the multi-model ones aigateway objects.
@pytest.mark.parametrize("stack", sorted(STACKS))
def test_every_custom_api_group_a_stack_creates_has_a_crd_source(stack: str) -> None:
    wanted = custom_groups_of(stack)
    assert wanted, "a stack with no custom resources: the test would prove nothing"
    covered = fetch_schemas.covered_groups()
    assert wanted <= covered, f"no CRD_SOURCES entry or vendored CRD renders {sorted(wanted - covered)}"


def test_crd_sources_name_pinned_charts() -> None:
    assert set(fetch_schemas.CRD_SOURCES) <= {c.values_dir for c in fetch_schemas.pinned_charts()}


def test_a_chart_that_renders_none_of_its_crds_stops_the_fetch(
    helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    groups = all_groups()
    keda = next(c for c in fetch_schemas.pinned_charts() if c.values_dir == "keda")
    groups[chart_name(keda)] = []
    monkeypatch.setenv("STUB_GROUPS", json.dumps(groups))
    assert fetch_schemas.main([str(tmp_path / "schemas")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"fetch_schemas: chart keda {keda.version}: rendered no CRDs of keda.sh; "
        "update CRD_SOURCES in scripts/fetch_schemas.py for this chart version"
    )


def test_a_failed_pull_is_one_line_naming_the_chart(
    helm: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STUB_FAIL", "pull")
    assert fetch_schemas.main([str(tmp_path / "schemas")]) == 2
    first = fetch_schemas.pinned_charts()[0]
    err = capsys.readouterr().err
    assert err == (
        f"fetch_schemas: chart {first.chart} {first.version}: helm pull failed: "
        "Error: failed to fetch chart: 404 Not Found\n"
    )


def test_without_helm_it_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert fetch_schemas.main([str(tmp_path / "schemas")]) == 2
    assert "the helm CLI is not on PATH: install Helm 3.8 or later" in capsys.readouterr().err
    # No empty folders left behind: check and the tests would take them for (empty) upstream data.
    assert not (tmp_path / "schemas" / "crds").exists() and not (tmp_path / "schemas" / "charts").exists()


def test_a_failed_fetch_keeps_the_last_complete_one_and_leaves_nothing_partial(
    helm: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "schemas"
    assert fetch_schemas.main([str(out)]) == 0
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    monkeypatch.setenv("STUB_FAIL", "pull")
    assert fetch_schemas.main([str(out)]) == 2
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
