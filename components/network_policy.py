"""Namespace-wide NetworkPolicies: deny everything by default, then allow what must work.

The model server's own policies (components/model_server.py) select its pods only; any other pod in the
serving namespace would otherwise be open both ways. `namespace_default_deny` selects every pod
(`podSelector: {}`) with no rules, so a pod is cut off unless some policy allows its traffic.

What else runs in the serving namespace (from the plans of every stack): the model server's Deployment
and, with ACME HTTP-01, cert-manager's solver pods. Envoy Gateway runs the proxies in its own namespace
(ControllerNamespace mode, components/load_balancer.py), KEDA's ScaledObject makes an HPA, no pod.

The HTTP-01 solver (cert-manager v1.20, pkg/issuer/acme/http/pod.go `buildPod`): a Pod created in the
Challenge's namespace, which is the Certificate's (ours: the serving namespace), labelled
`acme.cert-manager.io/http01-solver: "true"` (pkg/apis/acme/v1/types.go `SolverIdentificationLabelKey`),
listening on port 8089 (pkg/issuer/acme/http/http.go `acmeSolverListenPort`). With the gatewayHTTPRoute
solver the ACME server's request reaches it through the Gateway: an HTTPRoute cert-manager makes sends
`/.well-known/acme-challenge/<token>` to the solver's Service, so the Envoy proxy pods are the peer
(cert-manager's own self-check also goes to the public hostname, hence through Envoy). The solver makes
no outbound connection, so it gets no egress.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

#: Label cert-manager puts on every HTTP-01 solver pod (see the module docstring).
HTTP01_SOLVER_POD_LABELS = {"acme.cert-manager.io/http01-solver": "true"}
#: Port the solver listens on.
HTTP01_SOLVER_PORT = 8089
DEFAULT_DENY_NAME = "default-deny"
HTTP01_SOLVER_POLICY_NAME = "allow-acme-http01-solver"


def _untyped(spec: dict[str, Any]) -> Any:
    """Specs are plain snake_case dicts (the SDK converts them); its TypedDicts cannot type `from`."""
    return spec


def in_namespace(namespace: str) -> dict[str, Any]:
    """A namespaceSelector for one namespace by its immutable `kubernetes.io/metadata.name` label."""
    return {"match_labels": {"kubernetes.io/metadata.name": namespace}}


def namespace_default_deny(
    resource_name: str, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> k8s.networking.v1.NetworkPolicy:
    """Deny all ingress and egress for every pod in `namespace` (empty podSelector, no rules)."""
    return k8s.networking.v1.NetworkPolicy(
        resource_name,
        metadata={"name": DEFAULT_DENY_NAME, "namespace": namespace},
        spec=_untyped({"pod_selector": {}, "policy_types": ["Ingress", "Egress"]}),
        opts=opts,
    )


def acme_http01_solver_allow(
    resource_name: str,
    namespace: pulumi.Input[str],
    gateway_namespace: str,
    gateway_pod_labels: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.networking.v1.NetworkPolicy:
    """Let the Envoy proxy pods (in `gateway_namespace`, with `gateway_pod_labels`) reach cert-manager's
    HTTP-01 solver pods in `namespace` on TCP 8089; nothing else, and no egress."""
    return k8s.networking.v1.NetworkPolicy(
        resource_name,
        metadata={"name": HTTP01_SOLVER_POLICY_NAME, "namespace": namespace},
        spec=_untyped(
            {
                "pod_selector": {"match_labels": dict(HTTP01_SOLVER_POD_LABELS)},
                "policy_types": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespace_selector": in_namespace(gateway_namespace),
                                "pod_selector": {"match_labels": dict(gateway_pod_labels)},
                            }
                        ],
                        "ports": [{"port": HTTP01_SOLVER_PORT, "protocol": "TCP"}],
                    }
                ],
            }
        ),
        opts=opts,
    )
