"""InferStack's policies as pure functions: the CrossGuard pack (`__main__.py`) and `inferstack check` share them.

Every validate function takes what pulumi-policy hands a policy: a resource's type token and its props
(camelCase Pulumi inputs, the same shape as a recorded resource's inputs), or, for stack policies, the list
of (type, props) of every resource. It returns violation messages, each naming the resource and the fix.

This module imports nothing outside the standard library: the pack's own virtualenv holds only pulumi and
pulumi-policy.

Enforcement by tier: prod makes every policy mandatory. Dev keeps the security and correctness policies
mandatory (`mandatory_in_dev`) and makes the reliability and reproducibility ones advisory: a dev stack
may run a tag-pinned image, one replica without a PDB, or a short drain.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, cast

Props = Mapping[str, Any]
ResourceValidate = Callable[[str, Props], list[str]]
StackValidate = Callable[[Sequence[tuple[str, Props]]], list[str]]

GPU = "nvidia.com/gpu"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
DEFAULT_GRACE_SECONDS = 30  # Kubernetes' default terminationGracePeriodSeconds
KEDA_DEFAULT_MAX_REPLICAS = 100

WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"})
SERVING_KINDS = frozenset({"Deployment", "StatefulSet"})


# --- helpers -------------------------------------------------------------------------------------------


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


# --- address space: how much of the internet a CIDR list admits -----------------------------------------
# A copy of components/address_space.py (this module imports nothing of InferStack; tests/test_policy.py
# checks that both agree). Measured with ipaddress, never compared with "0.0.0.0/0": [0.0.0.0/1,
# 128.0.0.0/1] is the same internet. More public addresses than a /8 (IPv4) or a /16 (IPv6) is open.

_NON_PUBLIC_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    )
)  # fmt: skip
_PUBLIC_V6 = ipaddress.IPv6Network("2000::/3")
_NON_PUBLIC_V6 = (ipaddress.IPv6Network("2001:db8::/32"),)
MAX_PUBLIC_V4 = 2**24
MAX_PUBLIC_V6 = 2 ** (128 - 16)


def _networks(cidrs: Any) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    found = []
    for cidr in _list(cidrs):
        try:
            found.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError:
            continue
    return found


def _overlap(
    a: ipaddress.IPv4Network | ipaddress.IPv6Network, b: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> int:
    if a.version != b.version or not a.overlaps(b):
        return 0
    return min(a.num_addresses, b.num_addresses)


# IPv6 ranges that carry IPv4 addresses: IPv4-mapped (RFC 4291, ::ffff:a.b.c.d), the NAT64 well-known prefix
# (RFC 6052, 64:ff9b::a.b.c.d: DNS64 clusters reach the IPv4 internet through it) and 6to4 (RFC 3056,
# 2002:AABB:CCDD::/48). An allow-list entry in them admits the IPv4 addresses it embeds.
_V4_IN_V6 = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), 0),
    (ipaddress.IPv6Network("64:ff9b::/96"), 0),
    (ipaddress.IPv6Network("2002::/16"), 80),
)


def _embedded_v4(net: ipaddress.IPv6Network) -> list[ipaddress.IPv4Network]:
    """The IPv4 networks an IPv6 network admits through the ranges above."""
    found = []
    for block, shift in _V4_IN_V6:
        if not net.overlaps(block):
            continue
        if net.prefixlen <= block.prefixlen:  # the whole block: every IPv4 address
            found.append(ipaddress.IPv4Network("0.0.0.0/0"))
            continue
        bits = min(net.prefixlen - block.prefixlen, 32)
        address = (int(net.network_address) >> shift) & 0xFFFFFFFF
        found.append(ipaddress.IPv4Network((address, bits), strict=False))
    return found


def public_addresses(cidrs: Any) -> tuple[int, int]:
    """(public IPv4, public IPv6) addresses a CIDR list admits, overlaps merged; unparsable entries skipped."""
    parsed = _networks(cidrs)
    parsed += [m for n in parsed if isinstance(n, ipaddress.IPv6Network) for m in _embedded_v4(n)]
    v4 = list(ipaddress.collapse_addresses(n for n in parsed if isinstance(n, ipaddress.IPv4Network)))
    v6 = list(ipaddress.collapse_addresses(n for n in parsed if isinstance(n, ipaddress.IPv6Network)))
    public_v4 = sum(n.num_addresses - sum(_overlap(n, x) for x in _NON_PUBLIC_V4) for n in v4)
    public_v6 = sum(_overlap(n, _PUBLIC_V6) - sum(_overlap(n, x) for x in _NON_PUBLIC_V6) for n in v6)
    return public_v4, public_v6


def covers_internet(cidrs: Any) -> bool:
    """True when the list admits the internet or nearly all of it (see above)."""
    v4, v6 = public_addresses(cidrs)
    return v4 > MAX_PUBLIC_V4 or v6 > MAX_PUBLIC_V6


def k8s_kind(type_token: str, props: Props) -> str | None:
    """The Kubernetes kind of a resource that is one Kubernetes object; None for anything else."""
    if not type_token.startswith("kubernetes:") or type_token.startswith("kubernetes:helm.sh/"):
        return None
    return str(props.get("kind") or type_token.rsplit(":", 1)[-1])


def object_id(type_token: str, props: Props) -> str:
    """`Kind/namespace/name` of a Kubernetes object, as `inferstack check` names it."""
    metadata = _dict(props.get("metadata"))
    kind = k8s_kind(type_token, props) or type_token
    name = metadata.get("name") or "?"
    namespace = metadata.get("namespace")
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def _namespace(props: Props) -> str | None:
    return _dict(props.get("metadata")).get("namespace")


def _name(props: Props) -> str | None:
    return _dict(props.get("metadata")).get("name")


def pod_spec(kind: str | None, props: Props) -> Mapping[str, Any] | None:
    """The pod spec inside a workload object, or None when the object holds none."""
    if kind not in WORKLOAD_KINDS:
        return None
    spec = _dict(props.get("spec"))
    if kind == "CronJob":
        spec = _dict(_dict(spec.get("jobTemplate")).get("spec"))
    return _dict(_dict(spec.get("template")).get("spec"))


def _containers(spec: Mapping[str, Any], *, init: bool = True) -> list[Mapping[str, Any]]:
    keys = ("initContainers", "containers") if init else ("containers",)
    return [_dict(c) for key in keys for c in _list(spec.get(key))]


def _labels_match(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """A label selector (matchLabels and matchExpressions) against a label set; an empty selector matches none."""
    match_labels = _dict(selector.get("matchLabels"))
    expressions = [_dict(e) for e in _list(selector.get("matchExpressions"))]
    if not match_labels and not expressions:
        return False
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for expr in expressions:
        key, op, values = str(expr.get("key", "")), expr.get("operator"), _list(expr.get("values"))
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _as_int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


# --- resource policies ---------------------------------------------------------------------------------


def serving_pods_restricted(type_token: str, props: Props) -> list[str]:
    """Pod Security "restricted": non-root, no privilege escalation, drop ALL, seccomp RuntimeDefault."""
    kind = k8s_kind(type_token, props)
    spec = pod_spec(kind, props)
    if spec is None:
        return []
    who = object_id(type_token, props)
    pod_sc = _dict(spec.get("securityContext"))
    problems: list[str] = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag) is True:
            problems.append(
                f"{who}: {flag} is true; remove it (Pod Security restricted forbids host namespaces)"
            )
    for c in _containers(spec):
        name = c.get("name") or "?"
        sc = _dict(c.get("securityContext"))
        where = f"{who} container {name}"
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{where}: set securityContext.runAsNonRoot: true (pod or container)")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{where}: runAsUser is 0 (root); run as a non-zero uid")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: set securityContext.allowPrivilegeEscalation: false")
        if sc.get("privileged") is True:
            problems.append(f"{where}: securityContext.privileged is true; remove it")
        drop = [str(d) for d in _list(_dict(sc.get("capabilities")).get("drop"))]
        if "ALL" not in drop:
            problems.append(f"{where}: set securityContext.capabilities.drop: [ALL]")
        seccomp = _dict(sc.get("seccompProfile")) or _dict(pod_sc.get("seccompProfile"))
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(
                f"{where}: set securityContext.seccompProfile.type: RuntimeDefault (pod or container)"
            )
    return problems


def gpu_requests_equal_limits(type_token: str, props: Props) -> list[str]:
    """nvidia.com/gpu: the request equals the limit wherever either is set (GPUs cannot be overcommitted)."""
    spec = pod_spec(k8s_kind(type_token, props), props)
    if spec is None:
        return []
    problems = []
    for c in _containers(spec):
        resources = _dict(c.get("resources"))
        request = _dict(resources.get("requests")).get(GPU)
        limit = _dict(resources.get("limits")).get(GPU)
        if request is None and limit is None:
            continue
        where = f"{object_id(type_token, props)} container {c.get('name') or '?'}"
        if limit is None:
            problems.append(f"{where}: requests {GPU}={request} without a limit; set limits.{GPU}: {request}")
        elif request is not None and str(request) != str(limit):
            problems.append(
                f"{where}: requests {GPU}={request} but limits {GPU}={limit}; make them equal (GPUs are whole devices)"
            )
    return problems


def images_pinned_by_digest(type_token: str, props: Props) -> list[str]:
    """Every container image names an immutable digest (image@sha256:...)."""
    spec = pod_spec(k8s_kind(type_token, props), props)
    if spec is None:
        return []
    return [
        f"{object_id(type_token, props)} container {c.get('name') or '?'}: image {c.get('image')!r} is not pinned; "
        + _how_to_pin(str(c.get("image") or ""))
        for c in _containers(spec)
        if not DIGEST.search(str(c.get("image") or ""))
    ]


def _how_to_pin(image: str) -> str:
    # An image built on the laptop and side-loaded into kind/k3d (`kind load docker-image`) has never been
    # pushed, so it has no registry digest to pin: say so instead of giving advice that cannot be followed.
    if image.startswith("localhost/"):
        return (
            "a side-loaded local image has no registry digest, so this is expected on a laptop (advisory in "
            "the dev tier); for a shared cluster push it to a registry and pin image:tag@sha256:<64 hex>"
        )
    return "append its digest (image:tag@sha256:<64 hex>, from `docker buildx imagetools inspect`)"


def _pre_stop_seconds(container: Mapping[str, Any]) -> int | None:
    lifecycle = _dict(container.get("lifecycle"))
    pre_stop = _dict(lifecycle.get("preStop") or lifecycle.get("pre_stop"))
    if not pre_stop:
        return None
    sleep = _dict(pre_stop.get("sleep"))
    if sleep:
        return _as_int(sleep.get("seconds"))
    command = " ".join(str(part) for part in _list(_dict(pre_stop.get("exec")).get("command")))
    found = re.search(r"\bsleep\s+(\d+)", command)
    return int(found.group(1)) if found else 0


def _drain_seconds(container: Mapping[str, Any]) -> int:
    """The engine's drain after SIGTERM: the launcher's SHUTDOWN_TIMEOUT (components/model_server.py)."""
    for env in _list(container.get("env")):
        env = _dict(env)
        if env.get("name") == "SHUTDOWN_TIMEOUT":
            return _as_int(env.get("value")) or 0
    return 0


def startup_probe_and_drain(type_token: str, props: Props) -> list[str]:
    """Serving containers (those exposing a port) have a startupProbe and a preStop sleep, and
    preStop + drain (SHUTDOWN_TIMEOUT) fit in terminationGracePeriodSeconds, so streams finish."""
    kind = k8s_kind(type_token, props)
    spec = pod_spec(kind, props)
    if spec is None or kind not in SERVING_KINDS:
        return []
    grace = _as_int(spec.get("terminationGracePeriodSeconds"))
    grace = DEFAULT_GRACE_SECONDS if grace is None else grace
    problems = []
    for c in _containers(spec, init=False):
        if not _list(c.get("ports")):
            continue  # not serving
        where = f"{object_id(type_token, props)} container {c.get('name') or '?'}"
        if not c.get("startupProbe"):
            problems.append(
                f"{where}: no startupProbe; add one on /health long enough for the model load "
                "(failureThreshold x periodSeconds, e.g. 60 x 10 s)"
            )
        pre_stop = _pre_stop_seconds(c)
        drain = _drain_seconds(c)
        if pre_stop is None:
            problems.append(
                f"{where}: no preStop hook; add lifecycle.preStop.sleep (15-30 s) so the gateway stops routing "
                "here before the engine drains"
            )
            pre_stop = 0
        if pre_stop + drain > grace:
            problems.append(
                f"{where}: preStop {pre_stop} s + drain {drain} s (SHUTDOWN_TIMEOUT) exceed "
                f"terminationGracePeriodSeconds {grace}; raise the grace period to at least {pre_stop + drain}"
            )
    return problems


AKS_CLUSTER = "azure-native:containerservice:ManagedCluster"


def cluster_endpoint_not_open(type_token: str, props: Props) -> list[str]:
    """The Kubernetes API endpoint is private or allow-listed, never open to 0.0.0.0/0."""
    if type_token == "aws:eks/cluster:Cluster":
        who = f"EKS cluster {props.get('name') or '?'}"
        vpc = _dict(props.get("vpcConfig"))
        if vpc.get("endpointPublicAccess") is False:  # AWS's default is public access on
            return []
        cidrs = _list(vpc.get("publicAccessCidrs"))
        if not cidrs:
            return [
                f"{who}: the public API endpoint is on with no publicAccessCidrs (AWS opens it to 0.0.0.0/0); "
                "set vpcConfig.endpointPublicAccess false, or list your networks in publicAccessCidrs"
            ]
        if covers_internet(cidrs):
            return [
                f"{who}: vpcConfig.publicAccessCidrs {cidrs} admit the internet (more public addresses than "
                "a /8); list your networks instead, or turn endpointPublicAccess off"
            ]
        return []
    if type_token == "gcp:container/cluster:Cluster":
        who = f"GKE cluster {props.get('name') or '?'}"
        if _dict(props.get("privateClusterConfig")).get("enablePrivateEndpoint") is True:
            return []
        authorized = props.get("masterAuthorizedNetworksConfig")
        if not isinstance(authorized, Mapping):
            return [
                f"{who}: public control-plane endpoint with no masterAuthorizedNetworksConfig (open to everyone); "
                "add authorized networks, or set privateClusterConfig.enablePrivateEndpoint true"
            ]
        blocks = [str(_dict(b).get("cidrBlock")) for b in _list(authorized.get("cidrBlocks"))]
        if covers_internet(blocks):
            return [
                f"{who}: masterAuthorizedNetworksConfig.cidrBlocks {blocks} admit the internet (more public "
                "addresses than a /8); list your networks instead, or set "
                "privateClusterConfig.enablePrivateEndpoint true"
            ]
    if type_token == AKS_CLUSTER:
        who = f"AKS cluster {props.get('resourceName') or '?'}"
        access = _dict(props.get("apiServerAccessProfile"))
        if access.get("enablePrivateCluster") is True:
            return []
        # AKS gives the API server a public address unless the cluster is private, and with no
        # authorizedIPRanges every address may reach it (AKS docs, "Secure access to the API server using
        # authorized IP address ranges": "By default, the API server is assigned a public IP address").
        ranges = _list(access.get("authorizedIPRanges"))
        if not ranges:
            return [
                f"{who}: public API server with no apiServerAccessProfile.authorizedIPRanges (open to everyone); "
                "set apiServerAccessProfile.enablePrivateCluster true, or list your networks in "
                "authorizedIPRanges (stack file: azure.api_server)"
            ]
        if covers_internet(ranges):
            return [
                f"{who}: apiServerAccessProfile.authorizedIPRanges {ranges} admit the internet (more public "
                "addresses than a /8); list your networks instead, or set "
                "apiServerAccessProfile.enablePrivateCluster true"
            ]
    return []


# --- AKS cluster hardening -------------------------------------------------------------------------------
# Field names are pulumi-azure-native 3.29.0's inputs for ManagedCluster (ARM API 2025-09-01), camelCase as
# the engine hands them to a policy. Each setting must be explicit: where the API's default is the weak
# value (local accounts on, no network policy, KMS off) a missing field fails like a wrong one.


def aks_cluster_hardened(type_token: str, props: Props) -> list[str]:
    """An AKS cluster: local accounts off with Microsoft Entra ID and Azure RBAC for Kubernetes (so every
    caller is an Entra identity and every grant an Azure role assignment), the OIDC issuer and Workload
    Identity on (pods get Entra tokens, no stored secret), etcd secrets encrypted with a Key Vault key (KMS),
    and a network policy engine, without which NetworkPolicies are stored but never enforced."""
    if type_token != AKS_CLUSTER:
        return []
    who = f"AKS cluster {props.get('resourceName') or '?'}"
    problems = []
    if props.get("disableLocalAccounts") is not True:
        # Local accounts (the static cluster-admin kubeconfig of `az aks get-credentials --admin`) bypass
        # Entra ID and Azure RBAC; the API's default keeps them.
        problems.append(
            f"{who}: set disableLocalAccounts true: local accounts give a static admin credential that "
            "bypasses Entra ID and Azure RBAC"
        )
    aad = _dict(props.get("aadProfile"))
    missing_aad = [f"aadProfile.{f}" for f in ("managed", "enableAzureRBAC") if aad.get(f) is not True]
    if missing_aad:
        problems.append(
            f"{who}: set {' and '.join(missing_aad)} true: Microsoft Entra ID sign-in with Azure RBAC for "
            "Kubernetes authorization (AKS refuses disableLocalAccounts without managed Entra integration)"
        )
    security = _dict(props.get("securityProfile"))
    missing_wi = [
        field
        for field, on in (
            ("oidcIssuerProfile.enabled", _dict(props.get("oidcIssuerProfile")).get("enabled")),
            (
                "securityProfile.workloadIdentity.enabled",
                _dict(security.get("workloadIdentity")).get("enabled"),
            ),
        )
        if on is not True
    ]
    if missing_wi:
        problems.append(
            f"{who}: set {' and '.join(missing_wi)} true: Workload Identity (on the OIDC issuer) lets the "
            "serving pod read the model store with a federated Entra token instead of a stored key"
        )
    kms = _dict(security.get("azureKeyVaultKms"))
    if kms.get("enabled") is not True:
        # AzureKeyVaultKms.enabled: "The default is false": etcd then holds Secrets under the platform's key
        # only, not one the stack controls and can revoke.
        problems.append(
            f"{who}: set securityProfile.azureKeyVaultKms.enabled true with keyId (a Key Vault key's versioned "
            "URI): Kubernetes Secrets in etcd are then encrypted with a key the stack controls (KMS)"
        )
    elif not kms.get("keyId"):
        problems.append(
            f"{who}: securityProfile.azureKeyVaultKms is enabled without keyId; set it to the Key Vault key's "
            "versioned URI (AKS requires it when KMS is on)"
        )
    policy = _dict(props.get("networkProfile")).get("networkPolicy")
    if not policy or str(policy).lower() == "none":
        # ContainerServiceNetworkProfile.networkPolicy: "none" is "the default value when NetworkPolicy is
        # not specified": the stack's NetworkPolicies (default deny, model-store egress) would do nothing.
        problems.append(
            f"{who}: networkProfile.networkPolicy is {repr(policy) if policy else 'unset'}, so NetworkPolicies are not "
            'enforced; set it to "cilium" (with networkDataplane "cilium"), "calico" or "azure"'
        )
    return problems


# --- engine flags (issue 15 kind 4) ----------------------------------------------------------------------
# A copy of model_image/engine_flags.py's `normalise` and WEAKENING (the pack imports nothing of InferStack;
# tests/test_policy.py checks that both agree): flags read as vLLM v0.31.0's FlexibleArgumentParser reads
# them (underscores become dashes before the first ".", unique prefixes are taken by argparse).

WEAKENING_ENGINE_FLAGS: Mapping[str, str] = {
    "--trust-remote-code": "runs Python code shipped with the model, so whoever can write the model "
    "store runs code in the serving pod",
    "--trust-request-chat-template": "renders chat templates sent by clients on the server",
    "--allowed-local-media-path": "lets any client read files of the serving pod through file:// media URLs",
    "--middleware": "imports extra ASGI middleware into the request path",
    "--tool-server": "connects the engine to tool servers (`demo` runs model-written Python)",
    # Both import a Python file named by path (vLLM's ToolParserManager / ReasoningParserManager
    # import_*_plugin): a .py in the model cache, which whoever writes the model store chooses, would run.
    "--tool-parser-plugin": "imports a Python file as a tool-call parser, so whoever can write that path "
    "(the model store, for a file in the cache) runs code in the serving pod",
    "--reasoning-parser-plugin": "imports a Python file as a reasoning parser, so whoever can write that path "
    "runs code in the serving pod",
    "--enable-prompt-embeds": "makes the engine deserialise tensors sent by clients (the class of "
    "CVE-2025-62164)",
    "--otlp-traces-endpoint": "sends request traces to an address of the stack file's choosing",
    # Flags whose JSON or names reach outside the pod or import code: prompts (KV-cache events carry the
    # prompt's token ids, vLLM ZmqEventPublisher connects out to a non-wildcard endpoint), the KV cache
    # itself, or modules chosen by name.
    "--kv-events-config": "publishes KV-cache events, with the prompts' token ids, to an endpoint of its JSON",
    "--kv-transfer-config": "sends the KV cache to peers named in its JSON and imports kv_connector_module_path",
    "--logits-processors": "imports logits processor classes by name into the engine",
    "--worker-extension-cls": "imports a worker extension class by name into every GPU worker",
    "--worker-cls": "replaces the GPU worker with a class imported by name",
    "--uvicorn-log-level": "at trace, writes every request's headers (the API key among them) to the logs",
    # Flags a stack could otherwise declare reviewed (the fourth security review): each reads a file, names
    # something imported, fetches a model, or changes who may call the engine.
    "--chat-template": "reads a template file of its choosing (put the template in the model's files: "
    "chat_template.jinja, fetched and verified)",
    "--compilation-config": "its JSON names a compile backend imported by qualified name",
    "-O": "sets the compilation config, whose JSON names a backend imported by qualified name",
    "--scheduler-cls": "imports the scheduler class by name",
    "--distributed-executor-backend": "imports an executor class by qualified name",
    "--ec-transfer-config": "sends encoder caches to peers named in its JSON and imports its connector",
    "--speculative-config": "loads a draft model that fetch neither downloads nor verifies",
    "--tokenizer": "loads a tokenizer from a path or repository that fetch neither downloads nor verifies",
    "--hf-config-path": "reads the model config from another path or repository",
    "--generation-config": "reads generation defaults from another path",
    "--hf-overrides": "rewrites the model's config (auto_map among it)",
    "--lora-modules": "loads adapter weights that fetch neither downloads nor verifies",
    "--load-format": "changes how weights are read, past the verified cache",
    "--model-loader-extra-config": "passes loader options past the verified cache",
    "--download-dir": "points the engine at another weights folder",
    "--allowed-origins": "lets browsers on other origins call the engine (CORS)",
    "--allow-credentials": "lets browsers send credentials cross-origin (CORS)",
    "--ssl-keyfile": "serves TLS from a key file of its choosing (the gateway terminates TLS)",
    "--ssl-certfile": "serves TLS from a certificate file of its choosing (the gateway terminates TLS)",
    "--ssl-ca-certs": "changes which clients the engine trusts (the gateway terminates TLS)",
    "--enable-log-requests": "writes clients' prompts to the logs",
    "--enable-log-outputs": "writes the model's answers to the logs",
}


def normalise_engine_flag(arg: str) -> str | None:
    """The flag an engine argument names (`--trust_remote_code=1` -> `--trust-remote-code`), None for a value."""
    if not arg.startswith("-") or arg in ("-", "--"):
        return None
    if arg.startswith("--"):
        name = arg[2:].split("=", 1)[0].split(".", 1)[0]
        return "--" + name.replace("_", "-")
    short = arg.split("=", 1)[0]
    if len(short) > 2 and short[:2] in ("-q", "-O"):
        return short[:2]
    return short


def weakening_engine_flags(args: Sequence[str]) -> list[tuple[str, str]]:
    """(canonical flag, why) for each argument that sets a weakening flag, abbreviations included."""
    found: list[tuple[str, str]] = []
    for arg in args:
        flag = normalise_engine_flag(arg)
        if not flag:
            continue
        if flag in WEAKENING_ENGINE_FLAGS:
            found.append((flag, WEAKENING_ENGINE_FLAGS[flag]))
        elif flag.startswith("--") and len(flag) > 3:
            matches = sorted(w for w in WEAKENING_ENGINE_FLAGS if w.startswith(flag))
            if matches:
                found.append((matches[0], WEAKENING_ENGINE_FLAGS[matches[0]]))
    return found


def engine_flags_not_weakened(type_token: str, props: Props) -> list[str]:
    """No container is given EXTRA_ENGINE_ARGS (the model image's engine flags) that weaken the endpoint."""
    spec = pod_spec(k8s_kind(type_token, props), props)
    if spec is None:
        return []
    who = object_id(type_token, props)
    problems: list[str] = []
    for c in _containers(spec):
        for env in _list(c.get("env")):
            if _dict(env).get("name") != "EXTRA_ENGINE_ARGS":
                continue
            try:
                args = shlex.split(str(_dict(env).get("value") or ""))
            except ValueError:
                args = str(_dict(env).get("value") or "").split()
            for flag, why in weakening_engine_flags(args):
                problems.append(
                    f"{who} container {c.get('name') or '?'}: EXTRA_ENGINE_ARGS sets {flag}, which {why}; "
                    "remove it from serving.extra_engine_args"
                )
    return problems


# --- stack policies ------------------------------------------------------------------------------------

_INTERNAL_LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-scheme": {"internal"},
    "service.beta.kubernetes.io/aws-load-balancer-internal": {"true", "0.0.0.0/0"},
    "networking.gke.io/load-balancer-type": {"internal"},
    "cloud.google.com/load-balancer-type": {"internal"},
    "service.beta.kubernetes.io/azure-load-balancer-internal": {"true"},
}


def _is_public_load_balancer(service_spec: Mapping[str, Any], annotations: Mapping[str, Any]) -> bool:
    """A LoadBalancer Service reachable from the internet: not internal, and no source ranges or ranges that
    admit the internet or nearly all of it (measured: [0.0.0.0/1, 128.0.0.0/1] is as open as 0.0.0.0/0)."""
    if service_spec.get("type", "ClusterIP") != "LoadBalancer":
        return False
    for key, internal in _INTERNAL_LB_ANNOTATIONS.items():
        if str(annotations.get(key, "")).lower() in internal:
            return False
    ranges = _list(service_spec.get("loadBalancerSourceRanges"))
    return not ranges or covers_internet(ranges)


def _objects(resources: Sequence[tuple[str, Props]], kind: str) -> list[tuple[str, Props]]:
    return [(t, p) for t, p in resources if k8s_kind(t, p) == kind]


#: Envoy AI Gateway's route kind: its controller writes an HTTPRoute of the same name and namespace, with
#: the same parentRefs and hostnames, from it (envoyproxy/ai-gateway v1.1.0 internal/controller/
#: ai_gateway_route.go), and policies target that HTTPRoute by name. So for these rules it is an HTTPRoute.
AI_GATEWAY_ROUTE = "AIGatewayRoute"


def _http_routes(resources: Sequence[tuple[str, Props]]) -> list[tuple[str, Props]]:
    """HTTPRoutes, and the AIGatewayRoutes that become HTTPRoutes of their name on the cluster."""
    return [(t, p) for t, p in resources if k8s_kind(t, p) in ("HTTPRoute", AI_GATEWAY_ROUTE)]


def _targets(policy: Props) -> list[Mapping[str, Any]]:
    spec = _dict(policy.get("spec"))
    return [_dict(t) for t in [*_list(spec.get("targetRefs")), spec.get("targetRef")] if t]


def public_endpoint_needs_tls_and_api_keys(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """A Gateway reachable from 0.0.0.0/0 (through a public LoadBalancer) terminates TLS with a certificate,
    serves nothing over plain HTTP but redirects, and every route it serves has an Envoy SecurityPolicy with
    apiKeyAuth targeting the route or the Gateway. A public LoadBalancer Service that bypasses the gateway
    (selects other pods) is a violation by itself: it has neither TLS nor keys."""
    problems: list[str] = []
    gateways = _objects(resources, "Gateway")
    exposed: dict[tuple[str | None, str | None], str] = {}  # gateway -> how it is exposed

    for type_token, svc in _objects(resources, "Service"):
        spec = _dict(svc.get("spec"))
        if not _is_public_load_balancer(spec, _dict(_dict(svc.get("metadata")).get("annotations"))):
            continue
        selector = _dict(spec.get("selector"))
        who = object_id(type_token, svc)
        owner = selector.get("gateway.envoyproxy.io/owning-gateway-name")
        if owner is not None:
            owner_ns = selector.get("gateway.envoyproxy.io/owning-gateway-namespace")
            exposed[(owner_ns, owner)] = who
        elif selector.get("app.kubernetes.io/name") == "envoy":
            for _, gw in gateways:
                exposed[(_namespace(gw), _name(gw))] = who
        else:
            problems.append(
                f"{who}: a LoadBalancer Service open to 0.0.0.0/0 that bypasses the Gateway (no TLS, no API keys); "
                "make it internal or ClusterIP, restrict loadBalancerSourceRanges, or route through the Gateway"
            )

    for _, gw in gateways:
        proxy_key, proxy = _envoy_proxy_of(gw, resources)
        # Envoy Gateway's default is a LoadBalancer Service with no source ranges.
        service = _envoy_service(proxy)
        service_spec = {"type": service.get("type", "LoadBalancer"), **service}
        if _is_public_load_balancer(service_spec, _dict(service.get("annotations"))):
            exposed.setdefault(
                (_namespace(gw), _name(gw)),
                f"EnvoyProxy {proxy_key[1] if proxy is not None and proxy_key else '(Envoy Gateway default)'}",
            )

    routes = _http_routes(resources)
    security = [p for _, p in _objects(resources, "SecurityPolicy") if _api_key_auth(p)]
    for type_token, gw in gateways:
        key = (_namespace(gw), _name(gw))
        if key not in exposed:
            continue
        who = object_id(type_token, gw)
        via = exposed[key]
        listeners = [_dict(lst) for lst in _list(_dict(gw.get("spec")).get("listeners"))]
        https = [
            lst
            for lst in listeners
            if lst.get("protocol") == "HTTPS" and _list(_dict(lst.get("tls")).get("certificateRefs"))
        ]
        if not https:
            problems.append(
                f"{who}: reachable from 0.0.0.0/0 (via {via}) without an HTTPS listener holding a certificate; "
                "add a listener with protocol HTTPS and tls.certificateRefs (cert-manager Certificate's Secret)"
            )
        plain = {lst.get("name") for lst in listeners if lst.get("protocol") in ("HTTP", "TCP")}
        for route_type, route in routes:
            attached = [
                _dict(r)
                for r in _list(_dict(route.get("spec")).get("parentRefs"))
                if _dict(r).get("name") == key[1]
                and (_dict(r).get("namespace") or _namespace(route)) == key[0]
            ]
            if not attached or not _serves_backends(route):
                continue
            rid = object_id(route_type, route)
            sections = {r.get("sectionName") for r in attached}
            if (None in sections and plain) or sections & plain:
                problems.append(
                    f"{rid}: serves backends over plain HTTP on public {who}; attach it to the HTTPS listener "
                    "(parentRefs.sectionName) and leave HTTP to a redirect"
                )
            if not any(_covers(p, route, gw) for p in security):
                problems.append(
                    f"{rid}: served on {who}, reachable from 0.0.0.0/0 (via {via}), with no SecurityPolicy "
                    "apiKeyAuth targeting it or the Gateway; add one (serving.api_keys), or make the load "
                    "balancer internal / restrict gateway.allowed_source_cidrs"
                )
    return problems


def _api_key_auth(policy: Props) -> bool:
    auth = _dict(_dict(policy.get("spec")).get("apiKeyAuth"))
    return bool(_list(auth.get("credentialRefs")))


def _serves_backends(route: Props) -> bool:
    return any(_list(_dict(rule).get("backendRefs")) for rule in _list(_dict(route.get("spec")).get("rules")))


def _covers(policy: Props, route: Props, gateway: Props) -> bool:
    namespace = _namespace(policy)
    for target in _targets(policy):
        if (
            target.get("kind") == "HTTPRoute"
            and target.get("name") == _name(route)
            and namespace == _namespace(route)
        ):
            return True
        if (
            target.get("kind") == "Gateway"
            and target.get("name") == _name(gateway)
            and namespace == _namespace(gateway)
        ):
            return True
    return False


def pdb_when_replicas_gt_1(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """A Deployment or StatefulSet that can run more than one replica (spec.replicas, or a KEDA ScaledObject /
    HPA maximum) has a PodDisruptionBudget in its namespace selecting its pods."""
    max_by_target: dict[tuple[str | None, str, str | None], int] = {}
    for _, obj in [*_objects(resources, "ScaledObject"), *_objects(resources, "HorizontalPodAutoscaler")]:
        spec = _dict(obj.get("spec"))
        target = _dict(spec.get("scaleTargetRef"))
        maximum = _as_int(spec.get("maxReplicaCount", spec.get("maxReplicas", KEDA_DEFAULT_MAX_REPLICAS)))
        key = (_namespace(obj), str(target.get("kind") or "Deployment"), target.get("name"))
        max_by_target[key] = max(max_by_target.get(key, 0), maximum or 0)
    pdbs = [p for _, p in _objects(resources, "PodDisruptionBudget")]
    problems = []
    for type_token, obj in resources:
        kind = k8s_kind(type_token, obj)
        if kind not in SERVING_KINDS:
            continue
        spec = _dict(obj.get("spec"))
        replicas = _as_int(spec.get("replicas"))
        replicas = 1 if replicas is None else replicas
        most = max(replicas, max_by_target.get((_namespace(obj), str(kind), _name(obj)), 0))
        if most <= 1:
            continue
        labels = _dict(_dict(_dict(spec.get("template")).get("metadata")).get("labels"))
        if not any(
            _namespace(pdb) == _namespace(obj)
            and _labels_match(_dict(_dict(pdb.get("spec")).get("selector")), labels)
            for pdb in pdbs
        ):
            problems.append(
                f"{object_id(type_token, obj)}: runs up to {most} replicas with no PodDisruptionBudget selecting "
                "its pods; add one (maxUnavailable: 1) so node drains and upgrades keep capacity"
            )
    return problems


_S3_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
_S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
_S3_ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
_PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _sse_rules_set(props: Props) -> bool:
    rules = _list(props.get("rules") or _dict(props.get("serverSideEncryptionConfiguration")).get("rule"))
    if isinstance(_dict(props.get("serverSideEncryptionConfiguration")).get("rule"), Mapping):
        rules = [_dict(props.get("serverSideEncryptionConfiguration")).get("rule")]
    return any(_dict(_dict(r).get("applyServerSideEncryptionByDefault")).get("sseAlgorithm") for r in rules)


def model_bucket_private_and_encrypted(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """S3: a public access block with all four flags on, and a server-side encryption configuration.
    GCS: uniform bucket-level access and public access prevention enforced.
    Azure: storage accounts as `_storage_account_problems` says; blob containers with publicAccess "None"
    (or unset: the API's default is no anonymous access)."""
    problems = []
    blocks = [p for t, p in resources if t == _S3_PUBLIC_ACCESS_BLOCK]
    encryption = [p for t, p in resources if t in _S3_ENCRYPTION]
    for type_token, bucket in resources:
        if type_token in _S3_BUCKETS:
            name = bucket.get("bucket") or bucket.get("bucketPrefix") or "?"
            who = f"S3 bucket {name}"
            mine = [b for b in blocks if b.get("bucket") == name]
            if not any(all(b.get(flag) is True for flag in _PUBLIC_ACCESS_FLAGS) for b in mine):
                problems.append(
                    f"{who}: no BucketPublicAccessBlock with {', '.join(_PUBLIC_ACCESS_FLAGS)} all true; add one"
                )
            if not _sse_rules_set(bucket) and not any(
                e.get("bucket") == name and _sse_rules_set(e) for e in encryption
            ):
                problems.append(
                    f"{who}: no server-side encryption configuration; add a "
                    "BucketServerSideEncryptionConfiguration (aws:kms with the stack's key)"
                )
        elif type_token == "gcp:storage/bucket:Bucket":
            who = f"GCS bucket {bucket.get('name') or '?'}"
            if bucket.get("uniformBucketLevelAccess") is not True:
                problems.append(f"{who}: set uniformBucketLevelAccess true (no per-object ACLs)")
            if bucket.get("publicAccessPrevention") != "enforced":
                problems.append(f'{who}: set publicAccessPrevention "enforced"')
        elif type_token == AZURE_STORAGE_ACCOUNT:
            problems += _storage_account_problems(bucket)
        elif type_token == AZURE_BLOB_CONTAINER:
            access = bucket.get("publicAccess")
            if access is not None and access != "None":
                who = (
                    f"Blob container {bucket.get('accountName') or '?'}/{bucket.get('containerName') or '?'}"
                )
                problems.append(
                    f'{who}: publicAccess is {access!r}, so anyone may read its blobs without signing in; set "None"'
                )
    return problems


# --- Azure Storage: the model store ----------------------------------------------------------------------
# pulumi-azure-native 3.29.0 storage (ARM API 2024-01-01) input names; the defaults quoted are the SDK's
# (the API's) own field docs. Azure encrypts every account at rest (256-bit AES, "Azure Storage encryption
# cannot be disabled": learn.microsoft.com, "Azure Storage encryption for data at rest"), so what is left to
# demand is anonymous access off, Entra ID only, TLS 1.2+ and HTTPS, set explicitly, and the network.

AZURE_STORAGE_ACCOUNT = "azure-native:storage:StorageAccount"
AZURE_BLOB_CONTAINER = "azure-native:storage:BlobContainer"
#: minimumTlsVersion values at TLS 1.2 or newer (MinimumTlsVersion: TLS1_0 is the API's default; TLS1_3 is
#: in the enum though the field's doc says the service does not take it yet).
AZURE_TLS_1_2_OR_NEWER = frozenset({"TLS1_2", "TLS1_3"})


def _storage_account_name(props: Props) -> str:
    return f"Storage account {props.get('accountName') or '?'}"


def _storage_public_rules(props: Props) -> tuple[str, list[str]]:
    """The account's firewall when its public endpoint is on: (defaultAction, ipRules' iPAddressOrRange)."""
    rules = _dict(props.get("networkRuleSet"))
    ips = [str(_dict(r).get("iPAddressOrRange")) for r in _list(rules.get("ipRules"))]
    # NetworkRuleSet.defaultAction is required inside a networkRuleSet; with none at all the account takes
    # traffic from every network (the API's "Allow").
    return str(rules.get("defaultAction") or "Allow"), ips


def _storage_account_problems(props: Props) -> list[str]:
    """A model store account: no anonymous blob access, no shared keys (so no SAS either), HTTPS and TLS 1.2+,
    each set explicitly, and a public endpoint, if any, closed to all but an allow-list."""
    who = _storage_account_name(props)
    problems = []
    if props.get("allowBlobPublicAccess") is not False:
        problems.append(
            f"{who}: set allowBlobPublicAccess false, so no container can be made readable without signing in"
        )
    if props.get("allowSharedKeyAccess") is not False:
        # "The default value is null, which is equivalent to true": account keys and the SAS tokens signed
        # with them keep working beside Entra ID.
        problems.append(
            f"{who}: set allowSharedKeyAccess false: otherwise the account keys, and every SAS signed with them, "
            "read the weights past Entra ID and the reader role"
        )
    if props.get("enableHttpsTrafficOnly") is not True:
        # ARM's supportsHttpsTrafficOnly, named enableHttpsTrafficOnly by pulumi-azure-native. True is the
        # API's default since 2019-04-01, but a default is not a decision: set it.
        problems.append(
            f"{who}: set enableHttpsTrafficOnly true (ARM supportsHttpsTrafficOnly), so plain HTTP is refused"
        )
    tls = props.get("minimumTlsVersion")
    if tls not in AZURE_TLS_1_2_OR_NEWER:
        problems.append(
            f'{who}: minimumTlsVersion is {repr(tls) if tls else "unset (the API takes TLS 1.0)"}; set "TLS1_2"'
        )
    if props.get("publicNetworkAccess") != "Disabled":
        default_action, ips = _storage_public_rules(props)
        if default_action != "Deny":
            problems.append(
                f'{who}: its public endpoint admits every network (networkRuleSet.defaultAction "{default_action}"); '
                'set publicNetworkAccess "Disabled" and reach it through a private endpoint, or set '
                'networkRuleSet.defaultAction "Deny" and list your networks in ipRules'
            )
        elif covers_internet(ips):
            problems.append(
                f"{who}: networkRuleSet.ipRules {ips} admit the internet (more public addresses than a /8); "
                'list your networks instead, or set publicNetworkAccess "Disabled"'
            )
    return problems


def model_store_network_private(type_token: str, props: Props) -> list[str]:
    """A model store's storage account takes no traffic from public networks (publicNetworkAccess "Disabled"):
    the serving pods reach it through a private endpoint in the VNet. Advisory in dev, where the deployer
    uploads weights over an allow-listed public endpoint; the allow-list itself is checked, in every tier, by
    model-bucket-private-and-encrypted."""
    if type_token != AZURE_STORAGE_ACCOUNT:
        return []
    access = props.get("publicNetworkAccess")
    if access == "Disabled":
        return []
    return [
        f"{_storage_account_name(props)}: publicNetworkAccess is {repr(access) if access else 'unset (Enabled)'}; "
        'set "Disabled" and reach the account through a private endpoint in the VNet (stack file: '
        "azure.model_store.private_endpoint: true, the prod default)"
    ]


# --- client-address rules need the client's address ----------------------------------------------------
#
# Envoy matches a SecurityPolicy's `principal.clientCIDRs` (and a rate limit's `sourceCIDR`) against what
# it takes for the client address. With no ClientTrafficPolicy that is the TCP peer (Envoy Gateway
# release/v1.8 internal/xds/translator/listener.go: use_remote_address=true, no original-IP detection; the
# SecurityPolicy CRD's clientCIDRs text: "inferred from the X-Forwarded-For header, a custom header, or the
# proxy protocol" as configured by ClientTrafficPolicy). The peer is the client only when nothing on the
# way rewrites the source: a Service with externalTrafficPolicy `Cluster` (Kubernetes' default; Envoy
# Gateway's own Service defaults to `Local`, EnvoyProxy CRD) lets a node forward to a pod elsewhere with
# its own address as source (Kubernetes "Source IP for Services with Type=LoadBalancer"; GKE "LoadBalancer
# Service concepts"), and an AWS NLB with IP targets rewrites it unless the target group has
# preserve_client_ip.enabled=true (ELB target group attributes; off by default for IP targets over TCP).

_AWS_LB_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-"
_ENVOY_DEFAULT_TRAFFIC_POLICY = "Local"  # EnvoyProxy CRD: envoyService.externalTrafficPolicy default
_EXTERNAL_SERVICE_TYPES = frozenset({"LoadBalancer", "NodePort"})


def _client_address_matches(kind: str | None, props: Props) -> list[str]:
    """What a SecurityPolicy or BackendTrafficPolicy matches on the client address, in words; [] for none."""
    spec = _dict(props.get("spec"))
    found: list[str] = []
    if kind == "SecurityPolicy":
        for rule in _list(_dict(spec.get("authorization")).get("rules")):
            cidrs = _list(_dict(_dict(rule).get("principal")).get("clientCIDRs"))
            if cidrs:
                found.append(f"authorization clientCIDRs {cidrs}")
    elif kind == "BackendTrafficPolicy":
        limit = _dict(spec.get("rateLimit"))
        for scope in ("local", "global"):
            for rule in _list(_dict(limit.get(scope)).get("rules")):
                for selector in _list(_dict(rule).get("clientSelectors")):
                    cidr = _dict(_dict(selector).get("sourceCIDR")).get("value")
                    if cidr:
                        found.append(f"rate-limit sourceCIDR {cidr}")
    return found


def _gateways_of(policy: Props, resources: Sequence[tuple[str, Props]]) -> set[tuple[str | None, str | None]]:
    """(namespace, name) of every Gateway a policy applies to, directly or through the routes it targets."""
    namespace = _namespace(policy)
    routes = {
        # An AIGatewayRoute is found as the HTTPRoute its controller writes (AI_GATEWAY_ROUTE).
        ("HTTPRoute" if k8s_kind(t, p) == AI_GATEWAY_ROUTE else k8s_kind(t, p), _namespace(p), _name(p)): p
        for t, p in resources
        if k8s_kind(t, p) in ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute", "UDPRoute", AI_GATEWAY_ROUTE)
    }
    gateways: set[tuple[str | None, str | None]] = set()
    for target in _targets(policy):
        if target.get("kind") == "Gateway":
            gateways.add((namespace, target.get("name")))
            continue
        route = routes.get((target.get("kind"), namespace, target.get("name")))
        for ref in _list(_dict(_dict(route).get("spec")).get("parentRefs")):
            ref = _dict(ref)
            if ref.get("kind", "Gateway") == "Gateway":
                gateways.add((ref.get("namespace") or namespace, ref.get("name")))
    return gateways


def _envoy_proxy_of(
    gateway: Props, resources: Sequence[tuple[str, Props]]
) -> tuple[tuple[str | None, str | None] | None, Props | None]:
    """The EnvoyProxy a Gateway's infrastructure names, directly or through its GatewayClass: its
    (namespace, name), and the object when it is among `resources` (None: Envoy Gateway's defaults)."""
    spec = _dict(gateway.get("spec"))
    ref = _dict(_dict(spec.get("infrastructure")).get("parametersRef"))
    key: tuple[str | None, str | None] | None = None
    if ref.get("kind") == "EnvoyProxy":
        key = (_namespace(gateway), ref.get("name"))
    else:
        classes = {_name(c): c for _, c in _objects(resources, "GatewayClass")}
        class_ref = _dict(
            _dict(_dict(classes.get(spec.get("gatewayClassName"))).get("spec")).get("parametersRef")
        )
        if class_ref.get("kind") == "EnvoyProxy":
            key = (class_ref.get("namespace"), class_ref.get("name"))
    proxies = {(_namespace(p), _name(p)): p for _, p in _objects(resources, "EnvoyProxy")}
    return key, (proxies.get(key) if key else None)


def _envoy_service(proxy: Props | None) -> Mapping[str, Any]:
    """An EnvoyProxy's `envoyService` settings ({} for Envoy Gateway's defaults, also without an EnvoyProxy)."""
    if proxy is None:
        return {}
    return _dict(_dict(_dict(_dict(proxy.get("spec")).get("provider")).get("kubernetes")).get("envoyService"))


def _selects_gateway_pods(selector: Mapping[str, Any], gateway: tuple[str | None, str | None]) -> bool:
    """A Service selector that picks the Envoy proxy pods of `gateway` (Envoy Gateway's pod labels)."""
    owner = selector.get("gateway.envoyproxy.io/owning-gateway-name")
    if owner is not None:
        owner_namespace = selector.get("gateway.envoyproxy.io/owning-gateway-namespace")
        return owner == gateway[1] and owner_namespace in (None, gateway[0])
    return selector.get("app.kubernetes.io/name") == "envoy"


def _source_rewritten(
    spec: Mapping[str, Any], annotations: Mapping[str, Any], default_policy: str
) -> str | None:
    """Why a LoadBalancer/NodePort Service hands Envoy another address than the client's; None if it keeps it."""
    attributes = str(annotations.get(f"{_AWS_LB_ANNOTATION}target-group-attributes", "")).replace(" ", "")
    if str(annotations.get(f"{_AWS_LB_ANNOTATION}nlb-target-type", "")).lower() == "ip":
        # The NLB sends to pod IPs (no node hop): only the target group attribute decides.
        if "preserve_client_ip.enabled=true" not in attributes:
            return "its AWS NLB IP targets lack preserve_client_ip.enabled=true (target-group-attributes)"
        return None
    if "preserve_client_ip.enabled=false" in attributes:
        return "its AWS target group sets preserve_client_ip.enabled=false"
    policy = spec.get("externalTrafficPolicy") or default_policy
    if policy != "Local":
        return f"externalTrafficPolicy is {policy}, so a node may forward with its own address as source"
    return None


def client_address_rules_keep_client_ip(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """An Envoy policy that matches client addresses (SecurityPolicy clientCIDRs, rate-limit sourceCIDR)
    is reached only through Services that keep the client's address: externalTrafficPolicy Local, or on an
    AWS NLB with IP targets preserve_client_ip.enabled=true. A ClientTrafficPolicy on the Gateway with
    clientIPDetection or the PROXY protocol states the address's source explicitly and satisfies it."""
    problems: list[str] = []
    gateways = {(_namespace(p), _name(p)): p for t, p in resources if k8s_kind(t, p) == "Gateway"}
    detected: set[tuple[str | None, str | None]] = set()
    for t, ctp in resources:
        if k8s_kind(t, ctp) != "ClientTrafficPolicy":
            continue
        spec = _dict(ctp.get("spec"))
        if spec.get("clientIPDetection") or spec.get("proxyProtocol") or spec.get("enableProxyProtocol"):
            detected |= _gateways_of(ctp, resources)

    for type_token, policy in resources:
        matches = _client_address_matches(k8s_kind(type_token, policy), policy)
        if not matches:
            continue
        who = object_id(type_token, policy)
        for key in sorted(_gateways_of(policy, resources), key=str):
            if key in detected or key not in gateways:
                continue
            paths: list[tuple[str, str]] = []  # (the Service, why it loses the client address)
            envoy_service = _envoy_service(_envoy_proxy_of(gateways[key], resources)[1])
            if envoy_service.get("type", "LoadBalancer") in _EXTERNAL_SERVICE_TYPES:
                why = _source_rewritten(
                    envoy_service, _dict(envoy_service.get("annotations")), _ENVOY_DEFAULT_TRAFFIC_POLICY
                )
                if why:
                    paths.append(
                        (f"the Envoy Service of Gateway {key[0]}/{key[1]} (EnvoyProxy envoyService)", why)
                    )
            for svc_type, svc in resources:
                spec = _dict(svc.get("spec"))
                if (
                    k8s_kind(svc_type, svc) != "Service"
                    or spec.get("type") not in _EXTERNAL_SERVICE_TYPES
                    or not _selects_gateway_pods(_dict(spec.get("selector")), key)
                ):
                    continue
                why = _source_rewritten(spec, _dict(_dict(svc.get("metadata")).get("annotations")), "Cluster")
                if why:
                    paths.append((object_id(svc_type, svc), why))
            for service, why in paths:
                problems.append(
                    f"{who}: matches client addresses ({'; '.join(matches)}), but {service} does not keep them: "
                    f"{why}. Envoy would see other addresses and allow or deny the wrong clients; set "
                    "externalTrafficPolicy: Local (AWS NLB IP targets: target-group-attributes "
                    "preserve_client_ip.enabled=true), or declare the source with a ClientTrafficPolicy "
                    "(clientIPDetection / proxyProtocol) on the Gateway"
                )
    return problems


# --- redirects keep the request method ----------------------------------------------------------------
#
# On a 301 or 302 a client may resend a POST as a GET, and common ones do (curl -L, requests, httpx, which
# the openai client uses); 303 always becomes a GET (RFC 9110 15.4.2-15.4.4). 307 and 308 keep the method
# and body (15.4.8, 15.4.9). Gateway API's HTTPRoute RequestRedirect allows 301, 302, 303, 307, 308 and
# defaults to 302 (standard-channel CRD, kubernetes-sigs/gateway-api 4564255ac).

REDIRECT_DEFAULT_STATUS = 302  # HTTPRoute CRD: requestRedirect.statusCode default
METHOD_KEEPING_REDIRECTS = frozenset({307, 308})


def redirects_keep_method(type_token: str, props: Props) -> list[str]:
    """Every HTTPRoute RequestRedirect (rule or backendRef filter) answers 307 or 308, so an API client's
    POST stays a POST after the redirect."""
    if k8s_kind(type_token, props) != "HTTPRoute":
        return []
    problems: list[str] = []
    for i, rule in enumerate(_list(_dict(props.get("spec")).get("rules"))):
        filters = [(f"rules[{i}].filters[{j}]", f) for j, f in enumerate(_list(_dict(rule).get("filters")))]
        for k, backend in enumerate(_list(_dict(rule).get("backendRefs"))):
            filters += [
                (f"rules[{i}].backendRefs[{k}].filters[{j}]", f)
                for j, f in enumerate(_list(_dict(backend).get("filters")))
            ]
        for where, f in filters:
            if _dict(f).get("type") != "RequestRedirect":
                continue
            code = _as_int(_dict(_dict(f).get("requestRedirect")).get("statusCode"))
            code = REDIRECT_DEFAULT_STATUS if code is None else code
            if code not in METHOD_KEEPING_REDIRECTS:
                problems.append(
                    f"{object_id(type_token, props)}: {where}.requestRedirect.statusCode is {code}; clients "
                    "may turn a POST into a GET on it, so API calls sent to the old address fail. Use 308 "
                    "(permanent) or 307"
                )
    return problems


# --- registry ------------------------------------------------------------------------------------------


# --- container commands and QoS (issue 13) -------------------------------------------------------------


#: The label components/model_server.py puts on the model server's Deployment and pods.
MODEL_SERVER_COMPONENT = ("app.kubernetes.io/component", "model-server")


def _runs_the_model_image(props: Props) -> bool:
    """Whether a workload is the model server: its own or its pod template's labels carry the component."""
    key, value = MODEL_SERVER_COMPONENT
    own = _dict(_dict(props.get("metadata")).get("labels"))
    template = _dict(_dict(_dict(_dict(props.get("spec")).get("template")).get("metadata")).get("labels"))
    return own.get(key) == value or template.get(key) == value


def containers_run_image_entrypoint(type_token: str, props: Props) -> list[str]:
    """No container or init container sets `command`: the image's own ENTRYPOINT runs, given `args`.

    Which executables an image holds is known only from its Dockerfile, never from the plan: the model
    image's base, vllm/vllm-openai, registers `python3` only (vllm-project/vllm docker/Dockerfile,
    `vllm-base` stage), so a `command: ["python", ...]` fails at container start with "exec: python: not
    found" and the rollout times out. The model images' ENTRYPOINT is the launcher (model_image/Dockerfile*),
    so its subcommand belongs in `args`. Only the model server's pods are held to this (the label
    components/model_server.py sets): another workload in the same program may well run a `command` its own
    image has (busybox, kubectl).
    """
    spec = pod_spec(k8s_kind(type_token, props), props)
    if spec is None or not _runs_the_model_image(props):
        return []
    who = object_id(type_token, props)
    return [
        f"{who} container {c.get('name') or '?'}: sets command {_list(c.get('command'))!r}, which replaces the "
        "image's ENTRYPOINT and must name an executable the image has (vllm/vllm-openai has python3, no "
        'python); remove command and pass the launcher\'s subcommand as args (e.g. args: ["serve"])'
        for c in _containers(spec)
        if c.get("command")
    ]


#: Kubernetes quantity suffixes (k8s.io/apimachinery pkg/api/resource/suffix.go): binary, then decimal SI.
_QUANTITY_SUFFIXES: dict[str, Decimal] = {
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity ("500m", "4Gi", "2", 1.5, "1e3") as a number of base units; None if malformed."""
    if isinstance(value, bool):
        return None
    found = _QUANTITY.match(str(value).strip())
    if not found:
        return None
    try:
        return Decimal(found.group(1)) * _QUANTITY_SUFFIXES[found.group(2) or ""]
    except InvalidOperation:
        return None


_QOS_RESOURCES = ("cpu", "memory")


def _requests_and_limits(container: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """A container's (requests, limits), a missing request defaulted to its limit as the API server does."""
    resources = _dict(container.get("resources"))
    limits = _dict(resources.get("limits"))
    return {**limits, **_dict(resources.get("requests"))}, limits


def pod_qos_class(spec: Mapping[str, Any]) -> str:
    """ "Guaranteed" | "Burstable" | "BestEffort", computed as Kubernetes does.

    Follows pkg/apis/core/v1/helper/qos/qos.go `GetPodQOS` (kubernetes/kubernetes): init containers count
    like containers; only cpu and memory count; a pod is Guaranteed only when every container has cpu and
    memory limits and, summed over all containers, requests equal limits. As the API server's defaulting
    does before that runs, a container's missing request defaults to its limit.
    """
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for c in _containers(spec):
        own_requests, own_limits = _requests_and_limits(c)
        for name in _QOS_RESOURCES:
            request, limit = parse_quantity(own_requests.get(name)), parse_quantity(own_limits.get(name))
            if request is not None and request > 0:
                requests[name] = requests.get(name, Decimal(0)) + request
            if limit is not None and limit > 0:
                limits[name] = limits.get(name, Decimal(0)) + limit
            else:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"


def serving_pods_guaranteed(type_token: str, props: Props) -> list[str]:
    """A serving workload's pod (Deployment, StatefulSet) is in the Guaranteed QoS class, init containers counted.

    Guaranteed pods are evicted last under node memory pressure and get exclusive CPUs under the kubelet's
    static CPU manager; one init container with requests below limits silently makes the pod Burstable.
    """
    kind = k8s_kind(type_token, props)
    spec = pod_spec(kind, props) if kind in SERVING_KINDS else None
    if spec is None or pod_qos_class(spec) == "Guaranteed":
        return []
    offenders = []
    for c in _containers(spec):
        own_requests, own_limits = _requests_and_limits(c)
        for name in _QOS_RESOURCES:
            request, limit = parse_quantity(own_requests.get(name)), parse_quantity(own_limits.get(name))
            if limit is None or limit <= 0 or request != limit:
                offenders.append(
                    f"{c.get('name') or '?'} {name} (requests {own_requests.get(name)!r}, "
                    f"limits {own_limits.get(name)!r})"
                )
    return [
        f"{object_id(type_token, props)}: the pod is {pod_qos_class(spec)}, not Guaranteed; Kubernetes counts "
        "init containers too, so give every container and init container cpu and memory limits equal to "
        f"its requests: {'; '.join(offenders)}"
    ]


# --- monitoring: a missing metric is loud, and every PodMonitor is selected (issue 13 kind 5) ---


def prometheus_triggers_fail_loudly(type_token: str, props: Props) -> list[str]:
    """KEDA prometheus triggers set ignoreNullValues "false".

    KEDA v2.20.2 pkg/scalers/prometheus_scaler.go: `ignoreNullValues` defaults to true, and then an empty
    result (no series: a target never scraped) is read as 0 with no error, so nothing scales out or wakes
    and nothing says why. With false the trigger fails, KEDA emits KEDAScalerFailed events and its
    `fallback` takes over."""
    if k8s_kind(type_token, props) != "ScaledObject":
        return []
    found = []
    for trigger in _list(_dict(props.get("spec")).get("triggers")):
        trigger = _dict(trigger)
        if trigger.get("type") != "prometheus":
            continue
        value = str(_dict(trigger.get("metadata")).get("ignoreNullValues", "true")).strip().lower()
        if value not in ("false", "f", "0"):
            found.append(
                f"{object_id(type_token, props)}: trigger {trigger.get('name') or '?'} reads a missing metric "
                f'as 0 (ignoreNullValues {value}); set ignoreNullValues: "false" and answer a legitimate '
                "absence in the query itself, so an unscraped metric fails the trigger instead"
            )
    return found


KUBE_PROMETHEUS_STACK_CHART = "kube-prometheus-stack"


def _pod_monitor_selector(values: Mapping[str, Any], release: str) -> Mapping[str, Any] | None:
    """The podMonitorSelector kube-prometheus-stack renders for these values; None selects every PodMonitor.

    templates/prometheus/prometheus.yaml: a non-empty prometheusSpec.podMonitorSelector is used as is;
    otherwise podMonitorSelectorNilUsesHelmValues (default true) gives {matchLabels: {release: <release>}},
    and false gives {} (every PodMonitor)."""
    spec = _dict(_dict(values.get("prometheus")).get("prometheusSpec"))
    selector = _dict(spec.get("podMonitorSelector"))
    if selector:
        return selector
    if spec.get("podMonitorSelectorNilUsesHelmValues", True):
        return {"matchLabels": {"release": release}}
    return None


def pod_monitors_selected(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """Every PodMonitor matches the podMonitorSelector of each kube-prometheus-stack the plan installs.

    Without an installed Prometheus in the plan there is nothing to compare with (an existing one's
    selector is the stack file's `monitoring.pod_monitor_labels`, checked when the file is read)."""
    selectors = []
    for type_token, props in resources:
        if type_token.startswith("kubernetes:helm.sh/") and KUBE_PROMETHEUS_STACK_CHART in str(
            props.get("chart", "")
        ):
            release = str(props.get("name") or "?")
            selectors.append((release, _pod_monitor_selector(_dict(props.get("values")), release)))
    found = []
    for type_token, props in _objects(resources, "PodMonitor"):
        pod_monitor_labels = _dict(_dict(props.get("metadata")).get("labels"))
        for release, selector in selectors:
            if selector is not None and not _labels_match(selector, pod_monitor_labels):
                found.append(
                    f"{object_id(type_token, props)}: the Prometheus of release {release} selects PodMonitors "
                    f"by {dict(selector)}, which its labels {dict(pod_monitor_labels)} do not match, so it is "
                    "never scraped; add the labels (monitoring.pod_monitor_labels) or widen the selector"
                )
    return found


# --- NetworkPolicies (issue 13 kinds 5, 6, 12) ----------------------------------------------------------
POD_MAKING_KINDS = frozenset({*WORKLOAD_KINDS, "Pod"})
DNS_PORT = 53


def _is_empty_selector(selector: Any) -> bool:
    return (
        isinstance(selector, Mapping)
        and not selector.get("matchLabels")
        and not selector.get("matchExpressions")
    )


def is_default_deny(props: Props) -> bool:
    """A NetworkPolicy that selects every pod of its namespace and allows no traffic either way."""
    spec = _dict(props.get("spec"))
    return (
        _is_empty_selector(spec.get("podSelector", {}))
        and {"Ingress", "Egress"} <= set(_list(spec.get("policyTypes")))
        and not spec.get("ingress")
        and not spec.get("egress")
    )


def namespace_default_deny(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """Every namespace the stack runs pods in has a NetworkPolicy selecting every pod (podSelector {}),
    with policyTypes Ingress and Egress and no rules. Without it a pod no other policy selects (an ACME
    HTTP-01 solver, anything added later) is open both ways (Kubernetes: a pod is isolated for a direction
    only when some policy that selects it lists that direction)."""
    denied = {_namespace(p) for _, p in _objects(resources, "NetworkPolicy") if is_default_deny(p)}
    first: dict[str, str] = {}
    for type_token, props in resources:
        namespace = _namespace(props)
        if k8s_kind(type_token, props) in POD_MAKING_KINDS and namespace:
            first.setdefault(namespace, object_id(type_token, props))
    return [
        f"{example}: namespace {namespace!r} runs pods but has no default-deny NetworkPolicy (podSelector {{}}, "
        "policyTypes [Ingress, Egress], no rules): pods no other policy selects are open both ways; add one and "
        "allow each flow explicitly"
        for namespace, example in sorted(first.items())
        if namespace not in denied
    ]


def _ports(rule: Mapping[str, Any]) -> set[Any]:
    return {_dict(p).get("port") for p in _list(rule.get("ports"))}


def dns_egress_not_pod_label_only(type_token: str, props: Props) -> list[str]:
    """An egress rule for port 53 also reaches resolvers by ipBlock. NodeLocal DNSCache runs on the node
    (hostNetwork) on a link-local address (169.254.20.10 in kubernetes/kubernetes
    cluster/addons/dns/nodelocaldns/README.md and GKE; kubespray's nodelocaldns_ip 169.254.25.10), where no pod
    peer matches, so a pod-label-only rule drops every lookup on clusters that run it."""
    if k8s_kind(type_token, props) != "NetworkPolicy":
        return []
    problems = []
    for i, rule in enumerate(_list(_dict(props.get("spec")).get("egress"))):
        peers = _list(_dict(rule).get("to"))
        if DNS_PORT in _ports(_dict(rule)) and peers and not any("ipBlock" in _dict(peer) for peer in peers):
            problems.append(
                f"{object_id(type_token, props)}: spec.egress[{i}]: DNS (port 53) is allowed to pods by label only; "
                "a node-local resolver (NodeLocal DNSCache on 169.254.20.10 or kubespray's 169.254.25.10, "
                "hostNetwork) matches no pod peer and every lookup is dropped: add ipBlock peers for it (stack "
                "file: network.dns_cidrs)"
            )
    return problems


def ingress_peer_selects_pods(type_token: str, props: Props) -> list[str]:
    """An ingress peer that names namespaces also names pods: a bare namespaceSelector admits every pod of
    those namespaces (for the model server: every pod of the monitoring namespace calling the keyless
    engine's /v1 past the gateway)."""
    if k8s_kind(type_token, props) != "NetworkPolicy":
        return []
    problems = []
    for i, rule in enumerate(_list(_dict(props.get("spec")).get("ingress"))):
        for j, peer in enumerate(_list(_dict(rule).get("from"))):
            if "namespaceSelector" in _dict(peer) and "podSelector" not in _dict(peer):
                problems.append(
                    f"{object_id(type_token, props)}: spec.ingress[{i}].from[{j}]: a namespaceSelector without a "
                    "podSelector admits every pod of those namespaces; name the pods that need the port (e.g. "
                    "Prometheus: app.kubernetes.io/name: prometheus)"
                )
    return problems


#: Annotation on a NetworkPolicy naming the stack field that accepted internet egress for its pods
#: (components/model_server.py INTERNET_EGRESS_ANNOTATION; set from network.allow_internet_egress).
INTERNET_EGRESS_ANNOTATION = "inferstack.dev/internet-egress-accepted"


def _ip_block_networks(block: Mapping[str, Any]) -> list[str]:
    """The networks an ipBlock admits: its `cidr` less its `except` entries (Kubernetes requires each to lie
    inside `cidr`; one that does not takes nothing away, one that holds `cidr` takes it all)."""
    admitted = _networks([block.get("cidr")])
    for hole in _networks(block.get("except")):
        kept: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for network in admitted:
            if network.version != hole.version or not network.overlaps(hole):
                kept.append(network)
            elif network.num_addresses > hole.num_addresses:
                kept.extend(network.address_exclude(hole))  # type: ignore[arg-type]
        admitted = kept
    return [str(n) for n in admitted]


def egress_not_open_to_internet(type_token: str, props: Props) -> list[str]:
    """No NetworkPolicy egress rule admits the internet (or nearly all of it, measured with ipaddress): a rule
    with no `to` admits every destination, ipBlock peers are counted less their `except`. The model server's
    egress serves `fetch`, but the engine shares the pod's network, so a wide rule lets a compromised engine
    send prompts or weights anywhere. A policy carrying INTERNET_EGRESS_ANNOTATION (the stack file's
    network.allow_internet_egress: true) passes: the stack accepted it in so many words."""
    if k8s_kind(type_token, props) != "NetworkPolicy":
        return []
    # The stack's acceptance (network.allow_internet_egress) covers the model store's rule, TCP 443 and
    # nothing else: the other rules are still measured.
    accepted = (
        str(_dict(_dict(props.get("metadata")).get("annotations")).get(INTERNET_EGRESS_ANNOTATION) or "")
        == "network.allow_internet_egress"
    )
    fix = (
        "limit it to the model store's network (stack file: network.model_store_cidrs; prod aws and gcp stacks "
        "reach s3:// and gs:// privately by default), or accept internet egress with "
        "network.allow_internet_egress: true"
    )
    problems = []
    every: list[str] = []  # ipBlocks of every rule: a pod may use them all, so they count as one list
    for i, rule in enumerate(_list(_dict(props.get("spec")).get("egress"))):
        peers = _list(_dict(rule).get("to"))
        ports = [
            (_dict(p).get("port"), _dict(p).get("protocol", "TCP")) for p in _list(_dict(rule).get("ports"))
        ]
        if accepted and ports == [(443, "TCP")]:
            continue
        if not peers:
            problems.append(
                f"{object_id(type_token, props)}: spec.egress[{i}] has no `to`, so it admits every destination, "
                f"the internet included: {fix}"
            )
            continue
        cidrs = [c for peer in peers for c in _ip_block_networks(_dict(_dict(peer).get("ipBlock")))]
        every.extend(cidrs)
        if covers_internet(cidrs):
            v4, v6 = public_addresses(cidrs)
            problems.append(
                f"{object_id(type_token, props)}: spec.egress[{i}] admits the internet ({v4:,} public IPv4 "
                f"addresses, {v6:,} public IPv6; an allow-list admits at most a /8 or a /16): {fix}"
            )
    if not problems and covers_internet(every):
        v4, v6 = public_addresses(every)
        problems.append(
            f"{object_id(type_token, props)}: its egress rules together admit the internet ({v4:,} public IPv4 "
            f"addresses, {v6:,} public IPv6, in rules each narrower than a /8 or a /16): {fix}"
        )
    return problems


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    kind: Literal["resource", "stack"]
    validate: ResourceValidate | StackValidate
    mandatory_in_dev: bool  # every policy is mandatory in prod; these stay mandatory in dev too

    def mandatory(self, tier: str) -> bool:
        """Mandatory for a stack of this tier ("prod" or "dev")."""
        return tier != "dev" or self.mandatory_in_dev

    def run(self, resources: Sequence[tuple[str, Props]]) -> list[tuple[int | None, str]]:
        """(index of the resource or None for a stack-level message, message) over every resource."""
        if self.kind == "stack":
            return [(None, m) for m in cast(StackValidate, self.validate)(resources)]
        found: list[tuple[int | None, str]] = []
        for index, (type_token, props) in enumerate(resources):
            found += [(index, m) for m in cast(ResourceValidate, self.validate)(type_token, props)]
        return found


POLICIES: tuple[Policy, ...] = (
    Policy(
        "public-endpoint-needs-tls-and-api-keys",
        "A gateway reachable from 0.0.0.0/0 terminates TLS with a certificate and checks API keys on every route.",
        "stack",
        public_endpoint_needs_tls_and_api_keys,
        mandatory_in_dev=True,
    ),
    Policy(
        "serving-pods-restricted",
        'Pods meet Pod Security "restricted": runAsNonRoot, no privilege escalation, drop ALL, seccomp RuntimeDefault.',
        "resource",
        serving_pods_restricted,
        mandatory_in_dev=True,
    ),
    Policy(
        "gpu-requests-equal-limits",
        "nvidia.com/gpu requests equal limits.",
        "resource",
        gpu_requests_equal_limits,
        mandatory_in_dev=True,
    ),
    Policy(
        "images-pinned-by-digest",
        "Every container image is pinned by @sha256 digest.",
        "resource",
        images_pinned_by_digest,
        mandatory_in_dev=False,
    ),
    Policy(
        "startup-probe-and-drain",
        "Serving containers have a startupProbe and a preStop sleep; preStop + drain fit the grace period.",
        "resource",
        startup_probe_and_drain,
        mandatory_in_dev=False,
    ),
    Policy(
        "pdb-when-replicas-gt-1",
        "A workload that can run more than one replica has a PodDisruptionBudget selecting it.",
        "stack",
        pdb_when_replicas_gt_1,
        mandatory_in_dev=False,
    ),
    Policy(
        "cluster-endpoint-not-open",
        "The EKS / GKE / AKS API endpoint is private or allow-listed, never open to 0.0.0.0/0.",
        "resource",
        cluster_endpoint_not_open,
        mandatory_in_dev=True,
    ),
    Policy(
        "aks-cluster-hardened",
        "AKS clusters: local accounts off, Entra ID with Azure RBAC, OIDC issuer and Workload Identity on, "
        "etcd encrypted with a Key Vault key (KMS), a network policy engine.",
        "resource",
        aks_cluster_hardened,
        mandatory_in_dev=True,
    ),
    Policy(
        "model-bucket-private-and-encrypted",
        "Model buckets block public access and are encrypted (S3) / uniform access and public access prevention "
        "(GCS) / Azure Storage: no anonymous access, no shared keys, HTTPS with TLS 1.2+, a public endpoint "
        "closed or allow-listed, containers not public.",
        "stack",
        model_bucket_private_and_encrypted,
        mandatory_in_dev=True,
    ),
    Policy(
        "model-store-network-private",
        'Azure model store accounts set publicNetworkAccess "Disabled" and are reached through a private endpoint.',
        "resource",
        model_store_network_private,
        mandatory_in_dev=False,
    ),
    Policy(
        "containers-run-image-entrypoint",
        "Containers set no command: the image's own ENTRYPOINT runs, with the subcommand in args.",
        "resource",
        containers_run_image_entrypoint,
        mandatory_in_dev=True,
    ),
    Policy(
        "serving-pods-guaranteed",
        "Serving pods are in the Guaranteed QoS class: every container, init containers too, has cpu and memory limits equal to requests.",
        "resource",
        serving_pods_guaranteed,
        mandatory_in_dev=False,
    ),
    Policy(
        "engine-flags-not-weakened",
        "The engine gets no flag that weakens the endpoint (--trust-remote-code, --allowed-local-media-path, "
        "prompt logging, ...), in any spelling vLLM's parser accepts.",
        "resource",
        engine_flags_not_weakened,
        mandatory_in_dev=False,
    ),
    # --- client addresses and redirects (issue 13 kinds 2 and 12) ---
    Policy(
        "client-address-rules-keep-client-ip",
        "Client-CIDR rules (SecurityPolicy clientCIDRs, rate-limit sourceCIDR) are reached only through "
        "Services that keep the client address (externalTrafficPolicy Local / NLB preserve_client_ip).",
        "stack",
        client_address_rules_keep_client_ip,
        mandatory_in_dev=True,
    ),
    Policy(
        "redirects-keep-method",
        "HTTPRoute redirects answer 307 or 308, so a redirected POST stays a POST.",
        "resource",
        redirects_keep_method,
        mandatory_in_dev=True,
    ),
    # --- monitoring (issue 13 kind 5) ---
    Policy(
        "prometheus-triggers-fail-loudly",
        'KEDA prometheus triggers set ignoreNullValues "false": a metric that does not exist fails the '
        "trigger (events, fallback) instead of reading as 0.",
        "resource",
        prometheus_triggers_fail_loudly,
        mandatory_in_dev=True,
    ),
    Policy(
        "pod-monitors-selected",
        "Every PodMonitor carries the labels the podMonitorSelector of the plan's kube-prometheus-stack matches.",
        "stack",
        pod_monitors_selected,
        mandatory_in_dev=True,
    ),
    # --- NetworkPolicies (issue 13 kinds 5, 6, 12) ---
    Policy(
        "namespace-default-deny",
        "Every namespace that runs pods has a NetworkPolicy denying all ingress and egress to every pod; flows are allowed explicitly.",
        "stack",
        namespace_default_deny,
        mandatory_in_dev=True,
    ),
    Policy(
        "dns-egress-not-pod-label-only",
        "DNS egress also reaches node-local resolvers by ipBlock (NodeLocal DNSCache matches no pod label).",
        "resource",
        dns_egress_not_pod_label_only,
        mandatory_in_dev=True,
    ),
    Policy(
        "ingress-peer-selects-pods",
        "NetworkPolicy ingress peers that name namespaces also name pods (no whole-namespace allows).",
        "resource",
        ingress_peer_selects_pods,
        mandatory_in_dev=True,
    ),
    Policy(
        "egress-not-open-to-internet",
        "NetworkPolicy egress admits no internet-wide destination (no rule without `to`, no ipBlock covering the "
        "internet) unless the stack accepted it with network.allow_internet_egress.",
        "resource",
        egress_not_open_to_internet,
        mandatory_in_dev=False,
    ),
)


def enforcement_config(tier: str) -> dict[str, str]:
    """The `--policy-pack-config` JSON for a tier: policy name -> "mandatory" | "advisory"."""
    return {p.name: "mandatory" if p.mandatory(tier) else "advisory" for p in POLICIES}
