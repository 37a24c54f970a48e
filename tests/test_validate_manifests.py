"""`inferstack validate`: manifests made elsewhere through check's validators, with exit codes 0 / 1 / 2.

The inputs are real: the local stack planned with `inferstack plan --out`, and the same objects laid out as
Pulumi's render_yaml_to_directory writes them (see inferstack/validation/manifest_files.py).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferstack.cli import EXIT_BAD_INPUT, EXIT_FINDINGS, EXIT_OK, main
from inferstack.validation.engine import find_checkov
from inferstack.validation.manifest_files import NOT_ON_MANIFESTS, read_file, type_token
from inferstack.validation.policies import load_rules
from tests.cli_run import run
from tests.upstream_data import data_dir, missing_reason

needs_checkov = pytest.mark.skipif(
    find_checkov() is None, reason="checkov not installed: `make tools` puts it in .tools/checkov"
)


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """manifests.yaml of the local stack, written by `inferstack plan local --out DIR`."""
    out = tmp_path_factory.mktemp("plan")
    assert main(["plan", "local", "--out", str(out)]) == EXIT_OK
    return out / "manifests.yaml"


def objects(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def crd_args() -> list[str]:
    return [] if missing_reason("crds") else ["--crd-dir", str(data_dir("crds"))]


def render_like_pulumi(manifests: list[dict[str, Any]], root: Path) -> None:
    """The render_yaml_to_directory layout (pulumi-kubernetes provider.go renderPathForResource): one object
    per file, CRDs in 0-crd/, the rest in 1-manifest/, `<apiVersion>-<kind>-<namespace|default>-<name>.yaml`."""
    for obj in manifests:
        api = obj["apiVersion"].replace("/", "_").replace(":", "_")
        meta = obj["metadata"]
        name = f"{api}-{obj['kind'].lower()}-{meta.get('namespace') or 'default'}-{meta['name']}.yaml"
        folder = root / ("0-crd" if obj["kind"] == "CustomResourceDefinition" else "1-manifest")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(yaml.safe_dump(obj, sort_keys=False))


# --- exit 0: what plan wrote validates ----------------------------------------------------------------


@needs_checkov
def test_the_planned_local_stack_validates(planned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", str(planned), "--tier", "dev", *crd_args())
    assert code == EXIT_OK, out + err
    assert out.splitlines()[0].startswith(f"read {len(objects(planned))} objects from 1 file")
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("OK (validated:")
    # every validator ran on something: core kinds, checkov, the scope rule, the policy pack
    for counted in ("built-in objects", "scanned by checkov", "namespace was checked", "policy pack"):
        assert counted in summary and f" 0 {counted}" not in summary


def test_the_prod_tier_makes_the_local_images_tag_a_finding(
    planned: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The local stack side-loads a tag-pinned image: advisory in dev, mandatory (exit 1) in prod.
    code, out, _ = run(capsys, "validate", str(planned), "--skip-checkov", *crd_args())
    assert code == EXIT_FINDINGS
    assert "images-pinned-by-digest (mandatory): 2 findings" in out
    assert "Deployment/inferstack/llm: container server: image" in out


# --- exit 1: a broken object is named -----------------------------------------------------------------


def test_a_broken_object_fails_naming_the_object_field_and_file(
    planned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = objects(planned)
    deployment = next(o for o in manifests if o["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "two"
    broken = tmp_path / "overlay.yaml"
    broken.write_text(yaml.safe_dump_all(manifests, sort_keys=False))
    index = manifests.index(deployment) + 1
    code, out, _ = run(capsys, "validate", str(broken), "--tier", "dev", "--skip-checkov", *crd_args())
    assert code == EXIT_FINDINGS
    assert "Deployment/inferstack/llm: spec.replicas: expected integer, got string 'two'" in out
    assert f"Deployment/inferstack/llm: {broken} document {index}" in out.split("Found in:")[1]


def test_a_cluster_scoped_kind_with_a_namespace_is_a_scope_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ns.yaml"
    path.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a, namespace: b}\n")
    code, out, _ = run(capsys, "validate", str(path), "--skip-checkov")
    assert code == EXIT_FINDINGS
    assert (
        "scope: 1 problem" in out and "Namespace/b/a: metadata.namespace: Namespace is cluster-scoped" in out
    )


# --- exit 2: input that is not Kubernetes YAML -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b\n",
            "document 2, line 8: not valid YAML: did not find expected ',' or '}' (while parsing a flow "
            "mapping at line 7)",
        ),
        ("apiVersion: v1\nkind: Namespace\n...\n%BAD\n---\na: 1\n", "document 2, line 4: not valid YAML"),
        (
            "---\n---\napiVersion: v1\nmetadata: {name: a}\n",
            "document 2: not a Kubernetes object: kind missing",
        ),
        ("- a\n- b\n", "document 1: not a Kubernetes object (a YAML list, not a mapping)"),
        (
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace}\n- {kind: Namespace}\n",
            "document 1 item 1: not a Kubernetes object: apiVersion missing",
        ),
    ],
)
def test_bad_input_exits_2_naming_file_and_document(
    text: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = run(capsys, "validate", str(path), "--skip-checkov")
    assert code == EXIT_BAD_INPUT
    assert err.strip() == err.strip().splitlines()[0]  # one line, no traceback
    assert err.startswith(f"inferstack: {path} {expected}")
    assert out == ""


def test_a_missing_path_or_a_folder_without_yaml_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "nope"))
    assert code == EXIT_BAD_INPUT and f"{tmp_path / 'nope'}: no such file or folder" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "validate", str(tmp_path / "empty"))
    assert code == EXIT_BAD_INPUT and "holds no *.yaml or *.yml file" in err


def test_an_unknown_kubernetes_version_exits_2(planned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "validate", str(planned), "--kubernetes-version", "1.2")
    assert code == EXIT_BAD_INPUT and err.startswith("inferstack: --kubernetes-version 1.2:")


# --- folders: Pulumi's rendered layout -----------------------------------------------------------------

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Widget", "listKind": "WidgetList", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                        },
                    }
                },
            }
        ],
    },
}


def test_a_rendered_folder_validates_its_objects_and_its_own_crds(
    planned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = objects(planned)
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "inferstack"},
        "spec": {"size": "big"},
    }
    render_like_pulumi([*manifests, WIDGET_CRD, widget], tmp_path / "rendered")
    assert len(list((tmp_path / "rendered" / "1-manifest").glob("*.yaml"))) == len(manifests) + 1
    code, out, _ = run(
        capsys, "validate", str(tmp_path / "rendered"), "--tier", "dev", "--skip-checkov", *crd_args()
    )
    assert out.splitlines()[0].startswith(
        f"read {len(manifests) + 2} objects from {len(manifests) + 2} files"
    )
    # The Widget CRD came with the folder, so its schema applies even where no CRD folder names it.
    assert code == EXIT_FINDINGS
    assert "crd-schema: 1 problem" in out
    assert "Widget/inferstack/w: spec.size: expected integer, got string 'big'" in out
    rendered = tmp_path / "rendered" / "1-manifest" / "example.com_v1-widget-inferstack-w.yaml"
    assert f"Widget/inferstack/w: {rendered} document 1" in out
    # Fixed, the folder validates.
    widget["spec"]["size"] = 3
    render_like_pulumi([widget], tmp_path / "rendered")
    code, out, _ = run(
        capsys, "validate", str(tmp_path / "rendered"), "--tier", "dev", "--skip-checkov", *crd_args()
    )
    assert code == EXIT_OK, out


def test_files_and_folders_are_read_in_order(tmp_path: Path) -> None:
    from inferstack.validation.manifest_files import read_manifests

    render_like_pulumi(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in ("b", "a")],
        tmp_path / "r",
    )
    render_like_pulumi([copy.deepcopy(WIDGET_CRD)], tmp_path / "r")
    (tmp_path / "r" / "notes.txt").write_text("not yaml: {")  # other files are not read
    names = [d.obj["metadata"]["name"] for d in read_manifests([tmp_path / "r"])]
    assert names == ["widgets.example.com", "a", "b"]  # 0-crd/ first, then sorted


# --- the policy adapter ------------------------------------------------------------------------------


def test_every_policy_either_runs_on_manifests_or_says_why_not() -> None:
    names = {p.name for p in load_rules().POLICIES}
    assert set(NOT_ON_MANIFESTS) <= names  # no stale entry
    # Policies reading cloud resources or Helm values: each named here on purpose. A new policy runs on
    # manifests unless it is added to NOT_ON_MANIFESTS with its reason.
    assert set(NOT_ON_MANIFESTS) == {
        "cluster-endpoint-not-open",
        "model-bucket-private-and-encrypted",
        "pod-monitors-selected",
        "aks-cluster-hardened",
        "model-store-network-private",
    }


@pytest.mark.parametrize(
    ("api_version", "kind", "token"),
    [
        ("v1", "Service", "kubernetes:core/v1:Service"),
        ("apps/v1", "Deployment", "kubernetes:apps/v1:Deployment"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute", "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"),
    ],
)
def test_type_tokens_are_pulumis(api_version: str, kind: str, token: str) -> None:
    assert type_token({"apiVersion": api_version, "kind": kind}) == token


def test_a_kind_list_stands_for_its_items(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in "xy"],
            }
        )
    )
    read = read_file(path)
    assert [(d.obj["metadata"]["name"], d.where) for d in read] == [
        ("x", f"{path} document 1 item 0"),
        ("y", f"{path} document 1 item 1"),
    ]


def test_a_required_field_with_a_default_is_no_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The API server defaults before it validates: BackendTrafficPolicy's response body `type` is
    # required and defaulted (Inline), so leaving it out is fine there and must be here.
    if (reason := missing_reason("crds")) is not None:
        pytest.skip(reason)
    path = tmp_path / "btp.yaml"
    path.write_text(
        """apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: p, namespace: app}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]
  responseOverride:
  - match: {statusCodes: [{value: 500}]}
    response:
      contentType: text/plain
      body: {inline: "oops"}
""",
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "validate", str(path), "--tier", "dev", "--skip-checkov", *crd_args())
    assert code == EXIT_OK, out


# --- review of issue 14: duplicates, scope of input CRDs, CEL counts among what was validated -------------


def test_the_same_object_twice_is_a_finding_naming_both_places(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n"
    first.write_text(namespace)
    second.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n---\n" + namespace)
    code, out, _ = run(capsys, "validate", str(first), str(second), "--tier", "dev", "--skip-checkov")
    assert code == EXIT_FINDINGS
    assert "duplicate: 1 problem" in out
    assert (
        f"Namespace/team: {second} document 2 repeats the object of {first} document 1 (same API group, "
        "kind, namespace and name); `kubectl apply` would make the later overwrite the earlier" in out
    )
    # the same name in another namespace, or another kind, is another object
    second.write_text(
        namespace.replace("Namespace", "ServiceAccount").replace("{name: team}", "{name: team, namespace: x}")
    )
    code, out, _ = run(capsys, "validate", str(first), str(second), "--tier", "dev", "--skip-checkov")
    assert "duplicate:" not in out


def test_a_kind_defined_only_by_an_input_crd_gets_the_scope_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crd = copy.deepcopy(WIDGET_CRD)
    crd["spec"]["scope"] = "Cluster"
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "team"},
    }
    path = tmp_path / "widgets.yaml"
    path.write_text(yaml.safe_dump_all([crd, widget]))
    code, out, _ = run(capsys, "validate", str(path), "--tier", "dev", "--skip-checkov")
    assert code == EXIT_FINDINGS
    assert "Widget/team/w: metadata.namespace: Widget is cluster-scoped" in out
    assert "scope of example.com/Widget not validated" not in out
    del widget["metadata"]["namespace"]
    path.write_text(yaml.safe_dump_all([crd, widget]))
    code, out, _ = run(capsys, "validate", str(path), "--tier", "dev", "--skip-checkov")
    assert code == EXIT_OK, out


def test_cel_counts_are_listed_as_validated_and_unevaluated_rules_as_not_validated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crd = copy.deepcopy(WIDGET_CRD)
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec_schema["x-kubernetes-validations"] = [
        {"rule": "self.size < 10", "message": "size must be below 10"},
        {"rule": "isURL('x')", "message": "not implemented here"},
    ]
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "team"},
    }
    widget["spec"] = {"size": 3}
    path = tmp_path / "widgets.yaml"
    path.write_text(yaml.safe_dump_all([crd, widget]))
    code, out, _ = run(capsys, "validate", str(path), "--tier", "dev", "--skip-checkov")
    assert code == EXIT_OK, out
    validated = out.split("\nValidated:\n")[1].split("\n\n")[0]
    assert (
        "evaluated per kind" in validated
        and "Widget 1/2 rules ran (1 evaluations), 1 not evaluated" in validated
    )
    not_validated = out.split("Not validated:\n")[1].split("\n\n")[0]
    assert "evaluated per kind" not in not_validated
    assert "not evaluated on Widget/team/w at spec: isURL('x')" in not_validated
    assert out.index("Validated:") > out.index("Not validated:")  # right above the verdict line
