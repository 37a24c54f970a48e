"""Deterministic, realistic outputs for the resource types InferStack creates, used by the recording mock.

The values look like what a provider would return (an IP from a documentation range, a PEM block, a
Helm release status) so that plans read like real ones; they are derived from the resource's type and
name only, so two runs of the same stack produce byte-identical plans.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import string
from dataclasses import dataclass
from typing import Any

from inferstack.planning.fakes import aws as fakes_aws
from inferstack.planning.fakes import azure as fakes_azure
from inferstack.planning.fakes import gcp as fakes_gcp
from inferstack.validation.scopes import Scope, load_scope_table

#: Address the fake LoadBalancer implementation hands out (TEST-NET-3, RFC 5737).
FAKE_LOAD_BALANCER_IP = "203.0.113.10"
#: What an internal GKE or AKS load balancer gets instead: an address from the cluster's subnet.
FAKE_INTERNAL_LOAD_BALANCER_IP = "10.0.0.100"

#: The Service annotations that make the cloud's controller build an internal load balancer: GKE's, and
#: cloud-provider-azure's (docs "Azure LoadBalancer annotations": azure-load-balancer-internal "true").
_INTERNAL_LOAD_BALANCER_ANNOTATIONS = (
    ("networking.gke.io/load-balancer-type", "Internal"),
    ("service.beta.kubernetes.io/azure-load-balancer-internal", "true"),
)

_NAMESPACED_DEFAULT = "default"


@dataclass(frozen=True)
class CloudDefaults:
    """The stack's cloud provider settings, seen when its provider registers; ARNs, ids and endpoints
    carry them."""

    aws_region: str | None = None
    gcp_project: str | None = None
    gcp_region: str | None = None
    #: The azure-native provider's `subscriptionId`, `location` and `tenantId` (azure-native:subscriptionId ...).
    azure_subscription_id: str | None = None
    azure_location: str | None = None
    azure_tenant_id: str | None = None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def kubernetes_name(resource_name: str, type_token: str) -> str:
    """The name Pulumi would auto-generate (name + random suffix), made deterministic."""
    return f"{resource_name}-{_digest(type_token, resource_name)[:7]}"


def _fake_pem(label: str, seed: str) -> str:
    body = base64.b64encode(hashlib.sha512(seed.encode()).digest() * 6).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])


def _random_string(seed: str, length: int, alphabet: str) -> str:
    out: list[str] = []
    counter = 0
    while len(out) < length:
        for byte in hashlib.sha256(f"{seed}:{counter}".encode()).digest():
            out.append(alphabet[byte % len(alphabet)])
        counter += 1
    return "".join(out[:length])


def _kubernetes_outputs(
    type_token: str, name: str, inputs: dict[str, Any], aws_region: str | None
) -> dict[str, Any]:
    outputs = copy.deepcopy(inputs)
    kind = type_token.rsplit(":", 1)[-1]
    metadata = outputs.setdefault("metadata", {})
    metadata.setdefault("name", kubernetes_name(name, type_token))
    # As pulumi-kubernetes does (clients.IsNamespacedKind, then NamespaceOrDefault): a namespaced kind
    # without a namespace gets "default", a cluster-scoped one never gets one. A kind of unknown scope
    # is taken as namespaced, as the provider's Check does; `inferstack check` notes it as not validated.
    group_version = type_token.split(":")[1]
    if load_scope_table().scope_of(group_version, kind) is not Scope.CLUSTER:
        metadata.setdefault("namespace", _NAMESPACED_DEFAULT)
    metadata.setdefault("uid", _digest("uid", type_token, name)[:32])
    spec = outputs.get("spec", {})
    if kind == "Service" and spec.get("type") == "LoadBalancer":
        if spec.get("loadBalancerClass") == "service.k8s.aws/nlb":
            # The AWS Load Balancer Controller's naming: k8s-<namespace>-<name>-<hash>.elb.<region>.amazonaws.com
            hostname = f"k8s-{metadata['namespace'][:8]}-{name[:8]}-{_digest('nlb', name)[:10]}.elb.{aws_region or fakes_aws.DEFAULT_REGION}.amazonaws.com"
            outputs["status"] = {"loadBalancer": {"ingress": [{"hostname": hostname}]}}
        else:
            annotations = metadata.get("annotations") or {}
            internal = any(
                annotations.get(key) == value for key, value in _INTERNAL_LOAD_BALANCER_ANNOTATIONS
            )
            ip = FAKE_INTERNAL_LOAD_BALANCER_IP if internal else FAKE_LOAD_BALANCER_IP
            outputs["status"] = {"loadBalancer": {"ingress": [{"ip": ip}]}}
    return outputs


def _helm_release_outputs(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs = copy.deepcopy(inputs)
    release_name = inputs.get("name") or kubernetes_name(name, "helm")
    outputs["name"] = release_name
    outputs["status"] = {
        "name": release_name,
        "namespace": inputs.get("namespace", _NAMESPACED_DEFAULT),
        "chart": inputs.get("chart", ""),
        "version": inputs.get("version", ""),
        "status": "deployed",
        "revision": 1,
    }
    return outputs


def resource_id(type_token: str, name: str, outputs: dict[str, Any]) -> str:
    """The id a provider would assign: the cloud's own (vpc-..., a role's name, a GKE cluster's path, an ARM id)."""
    if type_token.startswith(("aws:", "gcp:", "azure-native:")) and outputs.get("id"):
        return str(outputs["id"])
    return f"{name}-{hashlib.sha256(type_token.encode()).hexdigest()[:8]}"


def outputs_for(
    type_token: str,
    name: str,
    inputs: dict[str, Any],
    stack: str,
    clouds: CloudDefaults = CloudDefaults(),
    lookup: fakes_azure.Lookup | None = None,
) -> dict[str, Any]:
    """Outputs for one registration: the inputs plus what the provider would compute.

    `lookup` (ARM id -> outputs of a resource registered earlier in the run) lets an Azure resource read what
    it refers to, as ARM does: a private endpoint's address comes from its subnet's prefix.
    """
    seed = _digest(stack, type_token, name)
    if type_token.startswith("aws:"):
        return fakes_aws.outputs_for(type_token, name, inputs, clouds.aws_region)
    if type_token.startswith("gcp:"):
        return fakes_gcp.outputs_for(type_token, name, inputs, clouds.gcp_project, clouds.gcp_region)
    if type_token.startswith("azure-native:"):
        return fakes_azure.outputs_for(
            type_token,
            name,
            inputs,
            clouds.azure_subscription_id,
            clouds.azure_location,
            clouds.azure_tenant_id,
            lookup,
        )
    if type_token.startswith("kubernetes:helm.sh/"):
        return _helm_release_outputs(name, inputs)
    if type_token.startswith("kubernetes:") and not type_token.startswith("pulumi:providers:"):
        return _kubernetes_outputs(type_token, name, inputs, clouds.aws_region)
    outputs = copy.deepcopy(inputs)
    if type_token == "random:index/randomPassword:RandomPassword":
        length = int(inputs.get("length", 32))
        alphabet = string.ascii_letters + string.digits
        outputs["result"] = _random_string(seed, length, alphabet)
    elif type_token == "tls:index/privateKey:PrivateKey":
        outputs["privateKeyPem"] = _fake_pem("PRIVATE KEY", seed)
        outputs["publicKeyPem"] = _fake_pem("PUBLIC KEY", seed)
    elif type_token in {
        "tls:index/selfSignedCert:SelfSignedCert",
        "tls:index/locallySignedCert:LocallySignedCert",
    }:
        outputs["certPem"] = _fake_pem("CERTIFICATE", seed)
        outputs["validityStartTime"] = "2026-01-01T00:00:00Z"
    return outputs


def invoke_result(
    token: str,
    args: dict[str, Any],
    clouds: CloudDefaults = CloudDefaults(),
    lookup: fakes_azure.Lookup | None = None,
) -> dict[str, Any]:
    """Data-source answers, per cloud; an unknown data source is a gap in the fakes, said loudly."""
    answer = None
    if token.startswith("aws:"):
        answer = fakes_aws.invoke_result(token, args, clouds.aws_region)
    elif token.startswith("gcp:"):
        answer = fakes_gcp.invoke_result(token, args, clouds.gcp_project, clouds.gcp_region)
    elif token.startswith("azure-native:"):
        answer = fakes_azure.invoke_result(
            token, args, clouds.azure_subscription_id, clouds.azure_location, clouds.azure_tenant_id, lookup
        )
    if answer is not None:
        return answer
    raise NotImplementedError(
        f"the recording mock has no fake answer for data source {token}: add one to inferstack/planning/fakes/"
    )
