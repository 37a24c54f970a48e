"""The model server Deployments of a planned stack, among the other Deployments it may plan.

A stack runs one model server Deployment per model (or variant of a model), and with prefix-aware routing
also an endpoint picker Deployment per pool (components/inference_pool.py). The model server is the one
labelled `app.kubernetes.io/component: model-server` (components/model_server.py; policy/rules.py
MODEL_SERVER_COMPONENT uses the same label), so tests about "the serving pod" select by that label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inferstack.planning.recording import RecordedResource, Recording

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
COMPONENT = "app.kubernetes.io/component"
MODEL_SERVER = "model-server"


def is_model_server(obj: Mapping[str, Any]) -> bool:
    """Whether a Kubernetes object (a manifest, or a recorded resource's inputs) is a model server's."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(COMPONENT) == MODEL_SERVER)


def model_server_deployments(recording: Recording) -> list[RecordedResource]:
    """The recorded model server Deployments (at least one: every stack serves a model)."""
    found = [r for r in recording.of_type(DEPLOYMENT) if is_model_server(r.inputs)]
    assert found, f"no model server Deployment among {[r.name for r in recording.of_type(DEPLOYMENT)]}"
    return found


def model_server_manifests(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The model server Deployments among a plan's manifests (at least one)."""
    found = [m for m in manifests if m["kind"] == "Deployment" and is_model_server(m)]
    assert found, "no model server Deployment in the plan"
    return found


def model_server_allow(recording: Recording, deployment: RecordedResource) -> dict[str, Any]:
    """The spec of a model server's own allow NetworkPolicy (`<deployment>-allow`), not another workload's."""
    name = deployment.inputs["metadata"]["name"]
    [allow] = [
        p.inputs["spec"]
        for p in recording.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if p.inputs["metadata"]["name"] == f"{name}-allow"
    ]
    return dict(allow)
