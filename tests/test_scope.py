"""Cluster scope from data: the shipped kind -> scope table, the mock that follows it, the check rule."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from inferstack.planning import fakes
from inferstack.planning.plan import plan_stack
from inferstack.validation.scopes import (
    Scope,
    ScopeTable,
    builtin_scopes,
    crd_scopes,
    generate,
    kind_key,
    load_scope_table,
    scope_outcome,
)
from stacks.config import load_stack_file

ROOT = Path(__file__).resolve().parents[1]
CRD_DIR = Path(os.environ.get("INFERSTACK_CRD_DIR") or ROOT.parent / "shared" / "crds")
TABLE = load_scope_table()


def manifest(api_version: str, kind: str, namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "x"}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


# --- the table ----------------------------------------------------------------------------------------


@pytest.mark.skipif(
    not CRD_DIR.is_dir(), reason=f"{CRD_DIR}: no CRD folder (`make fetch-schemas` gets the CRDs)"
)
def test_the_shipped_table_matches_the_crds_spec_scope() -> None:
    from_crds = crd_scopes(CRD_DIR)
    assert from_crds, f"no CRDs in {CRD_DIR}"
    shipped = {k: v for k, v in TABLE.kinds.items() if v[1].startswith("crd ")}
    assert shipped == from_crds


@pytest.mark.parametrize(
    ("api_version", "kind", "scope"),
    [
        ("v1", "Namespace", Scope.CLUSTER),
        ("v1", "ConfigMap", Scope.NAMESPACED),
        ("v1", "PersistentVolume", Scope.CLUSTER),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", Scope.CLUSTER),
        ("rbac.authorization.k8s.io/v1", "Role", Scope.NAMESPACED),
        ("apps/v1", "Deployment", Scope.NAMESPACED),
        ("storage.k8s.io/v1", "StorageClass", Scope.CLUSTER),
        ("karpenter.sh/v1", "NodePool", Scope.CLUSTER),
        ("karpenter.k8s.aws/v1", "EC2NodeClass", Scope.CLUSTER),
        ("cert-manager.io/v1", "ClusterIssuer", Scope.CLUSTER),
        ("cert-manager.io/v1", "Certificate", Scope.NAMESPACED),
        ("gateway.networking.k8s.io/v1", "GatewayClass", Scope.CLUSTER),
        ("keda.sh/v1alpha1", "ScaledObject", Scope.NAMESPACED),
    ],
)
def test_known_kinds_have_their_real_scope(api_version: str, kind: str, scope: Scope) -> None:
    assert TABLE.scope_of(api_version, kind) is scope


def test_every_built_in_kind_in_the_table_is_one_kubernetes_validate_knows() -> None:
    """The built-in half names real kinds: each is in kubernetes-validate's 1.34 schemas (which carry
    group/version/kind but not scope)."""
    data = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / "v1.34.0-local"
    definitions = json.loads((data / "_definitions.json").read_text())["$defs"]
    known = {
        f"{gvk['group'] or 'core'}/{gvk['kind']}"
        for d in definitions.values()
        for gvk in d.get("x-kubernetes-group-version-kind", [])
    }
    built_in = {k for k, (_, source) in TABLE.kinds.items() if not source.startswith("crd ")}
    assert len(built_in) > 60 and built_in <= known, sorted(built_in - known)


def test_kind_keys_drop_the_version() -> None:
    assert kind_key("v1", "Secret") == "core/Secret"
    assert kind_key("karpenter.sh/v1beta1", "NodePool") == kind_key("karpenter.sh/v1", "NodePool")


def test_the_generator_reads_crds_and_the_clients_create_paths(tmp_path: Path) -> None:
    crds = tmp_path / "crds"
    crds.mkdir()
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "spec": {"group": "example.io", "names": {"kind": "Widget"}, "scope": "Cluster"},
    }
    (crds / "example.io_widgets.yaml").write_text(yaml.safe_dump(crd))
    api = tmp_path / "kubernetes" / "client" / "api"
    api.mkdir(parents=True)
    (api / "core_v1_api.py").write_text(
        "return self.api_client.call_api(\n    '/api/v1/namespaces', 'POST',\n    response_type='V1Namespace')\n"
        "return self.api_client.call_api(\n    '/api/v1/namespaces/{namespace}/pods/{name}/attach', 'POST',\n"
        "    response_type='str')\n"
        "return self.api_client.call_api(\n    '/api/v1/namespaces/{namespace}/pods/{name}/eviction', 'POST',\n"
        "    response_type='V1Eviction')\n"
        "return self.api_client.call_api(\n    '/apis/apps/v1/namespaces/{namespace}/deployments', 'POST',\n"
        "    response_type='V1Deployment')\n"
    )
    assert builtin_scopes(tmp_path, "src") == {
        "core/Namespace": (Scope.CLUSTER, "src"),
        "apps/Deployment": (Scope.NAMESPACED, "src"),
    }
    document = generate(crds, tmp_path)
    assert document["kinds"]["example.io/Widget"] == {
        "scope": "Cluster",
        "source": "crd example.io_widgets.yaml",
    }


# --- the rule -----------------------------------------------------------------------------------------


def test_a_cluster_scoped_object_with_a_namespace_is_a_finding() -> None:
    outcome = scope_outcome([manifest("karpenter.sh/v1", "NodePool", "default")])
    assert [(f.check, f.resource) for f in outcome.findings] == [("scope", "NodePool/default/x")]
    assert outcome.findings[0].message.startswith("metadata.namespace: NodePool is cluster-scoped; remove")


def test_a_namespaced_object_without_a_namespace_is_a_finding() -> None:
    outcome = scope_outcome([manifest("v1", "ConfigMap")])
    assert len(outcome.findings) == 1
    assert outcome.findings[0].message.startswith("metadata.namespace: ConfigMap is namespaced; set it")


def test_right_scopes_pass_and_unknown_kinds_are_notes_not_guesses() -> None:
    outcome = scope_outcome(
        [
            manifest("v1", "Namespace"),
            manifest("v1", "Secret", "inferstack"),
            manifest("metallb.io/v1beta1", "IPAddressPool", "metallb-system"),
        ]
    )
    assert outcome.findings == [] and outcome.validated == 2
    assert outcome.notes == [
        "scope of metallb.io/IPAddressPool not validated: not in inferstack/validation/scopes.json "
        "(regenerate it with python -m inferstack.validation.scopes; see its docstring)"
    ]
    empty = ScopeTable(kinds={}, sources={})
    assert scope_outcome([manifest("v1", "Namespace")], empty).validated == 0


# --- the mock and the plan ----------------------------------------------------------------------------


def test_the_mock_gives_a_namespace_only_to_namespaced_kinds() -> None:
    def namespace(token: str) -> str | None:
        return fakes.outputs_for(token, "n", {"metadata": {}}, "s")["metadata"].get("namespace")

    assert namespace("kubernetes:karpenter.sh/v1:NodePool") is None
    assert namespace("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass") is None
    assert namespace("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding") is None
    assert namespace("kubernetes:core/v1:ConfigMap") == "default"


def test_the_aws_plan_writes_cluster_scoped_kinds_without_a_namespace() -> None:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        plan = plan_stack(load_stack_file(ROOT / "stacks" / "Pulumi.dev-aws.yaml"), "dev-aws")
    finally:
        os.chdir(cwd)
    manifests = plan.manifests()
    karpenter = [m for m in manifests if m["kind"] in {"NodePool", "EC2NodeClass"}]
    assert len(karpenter) == 2 and all("namespace" not in m["metadata"] for m in karpenter)
    outcome = scope_outcome(manifests)
    assert outcome.findings == [] and outcome.notes == [] and outcome.validated == len(manifests)
