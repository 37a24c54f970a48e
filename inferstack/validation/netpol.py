"""Plan-level NetworkPolicy rules a schema cannot state (issue 13 kinds 5, 6 and 12).

- `namespace-default-deny`: every namespace the plan puts a pod-making object in (Deployment,
  StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod) has a NetworkPolicy that selects every pod
  (`podSelector: {}`), lists both Ingress and Egress in policyTypes and allows nothing. Without it a pod
  the other policies do not select (an HTTP-01 solver, anything added later) is open both ways.
- `dns-egress-not-pod-label-only`: an egress rule for port 53 must not reach resolvers by pod labels
  only. NodeLocal DNSCache listens on the node (hostNetwork, a link-local address such as
  169.254.20.10, see components/model_server.py NODE_LOCAL_DNS_CIDRS), where no pod peer matches, so
  such a rule drops every lookup on clusters that run it (kubespray's default, GKE's from 1.34).
- `ingress-peer-selects-pods`: an ingress peer that names namespaces must also name pods. A bare
  namespaceSelector admits every pod of those namespaces; for the model server that is every pod of the
  monitoring namespace calling the keyless engine's /v1 on port 8000 past the gateway.

Manifests are the plan's rendered objects (camelCase keys).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from inferstack.validation.common import CheckOutcome, Finding, resource_id

CHECK = "network-policy"
NAMESPACE_DEFAULT_DENY = "namespace-default-deny"
DNS_EGRESS_NOT_POD_LABEL_ONLY = "dns-egress-not-pod-label-only"
INGRESS_PEER_SELECTS_PODS = "ingress-peer-selects-pods"

POD_MAKING_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
)
DNS_PORT = 53


def _is_empty_selector(selector: Any) -> bool:
    return (
        isinstance(selector, dict)
        and not selector.get("matchLabels")
        and not selector.get("matchExpressions")
    )


def is_default_deny(policy: dict[str, Any]) -> bool:
    """A NetworkPolicy that selects every pod of its namespace and allows no traffic either way."""
    spec = policy.get("spec") or {}
    return (
        _is_empty_selector(spec.get("podSelector", {}))
        and {"Ingress", "Egress"} <= set(spec.get("policyTypes") or [])
        and not spec.get("ingress")
        and not spec.get("egress")
    )


def _ports(rule: dict[str, Any]) -> set[Any]:
    return {p.get("port") for p in rule.get("ports") or []}


def _finding(rule: str, obj: dict[str, Any], message: str) -> Finding:
    return Finding(check=CHECK, resource=resource_id(obj), message=message, rule=rule)


def network_policy_outcome(manifests: Iterable[dict[str, Any]]) -> CheckOutcome:
    """The three rules above over one plan's manifests; `validated` counts NetworkPolicies."""
    objects = list(manifests)
    policies = [o for o in objects if o.get("kind") == "NetworkPolicy"]
    findings: list[Finding] = []

    denied = {(p.get("metadata") or {}).get("namespace") for p in policies if is_default_deny(p)}
    with_pods: dict[str, dict[str, Any]] = {}
    for obj in objects:
        namespace = (obj.get("metadata") or {}).get("namespace")
        if obj.get("kind") in POD_MAKING_KINDS and namespace:
            with_pods.setdefault(namespace, obj)
    for namespace, example in sorted(with_pods.items()):
        if namespace not in denied:
            findings.append(
                _finding(
                    NAMESPACE_DEFAULT_DENY,
                    example,
                    f"namespace {namespace!r} runs pods but has no default-deny NetworkPolicy (podSelector {{}}, "
                    "policyTypes [Ingress, Egress], no rules): pods no other policy selects are open both ways; "
                    "add one and allow each flow explicitly",
                )
            )

    for policy in policies:
        spec = policy.get("spec") or {}
        for i, rule in enumerate(spec.get("egress") or []):
            peers = rule.get("to") or []
            if DNS_PORT in _ports(rule) and peers and not any("ipBlock" in peer for peer in peers):
                findings.append(
                    _finding(
                        DNS_EGRESS_NOT_POD_LABEL_ONLY,
                        policy,
                        f"spec.egress[{i}]: DNS (port 53) is allowed to pods by label only; a node-local "
                        "resolver (NodeLocal DNSCache on 169.254.20.10 or kubespray's 169.254.25.10, hostNetwork) "
                        "matches no pod peer and every lookup is dropped: add ipBlock peers for it "
                        "(stack file: network.dns_cidrs)",
                    )
                )
        for i, rule in enumerate(spec.get("ingress") or []):
            for j, peer in enumerate(rule.get("from") or []):
                if "namespaceSelector" in peer and "podSelector" not in peer:
                    findings.append(
                        _finding(
                            INGRESS_PEER_SELECTS_PODS,
                            policy,
                            f"spec.ingress[{i}].from[{j}]: a namespaceSelector without a podSelector admits "
                            "every pod of those namespaces; name the pods that need the port (e.g. Prometheus: "
                            "app.kubernetes.io/name: prometheus)",
                        )
                    )
    return CheckOutcome(findings=findings, notes=[], validated=len(policies))
