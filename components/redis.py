"""Redis: the counter store behind Envoy Gateway's global rate limit (token quotas per API key).

What it makes, in `namespace`:
- one Redis pod: a Deployment with `/data` on an emptyDir (persistence `none`), or a StatefulSet with a
  PersistentVolumeClaim of `storage_size` / `storage_class` (persistence `volume`), official image pinned
  by digest, Pod Security "restricted" (uid 10001, read-only root, drop ALL, seccomp RuntimeDefault), no
  Kubernetes API token;
- a ClusterIP Service `<name>-redis` on 6379;
- a NetworkPolicy: only Envoy Gateway's rate-limit pods may reach 6379, and Redis has no egress at all.

Why Redis at all: Envoy Gateway's global rate limit runs envoyproxy/ratelimit, which keeps its counters in
Redis (EnvoyGateway `rateLimit.backend.type: Redis`, the only backend type at v1.8.3: api/v1alpha1/
envoygateway_types.go RateLimitDatabaseBackendType). The token budgets per minute and per day are such
counters (components/token_quota.py).

What persistence buys: envoyproxy/ratelimit writes one key per descriptor and window with an expiry (a day
key lives up to a day). With `none` a Redis restart forgets every counter, so every client gets a fresh
per-day budget; with `volume` Redis appends every write to /data (appendonly) and reloads it on restart.

Who connects: Envoy Gateway runs the rate-limit Deployment `envoy-ratelimit` in its controller namespace
(the namespace the gateway-helm release is installed in: ResourceRender is built with ControllerNamespace,
internal/infrastructure/kubernetes/ratelimit_infra.go at v1.8.3) with the pod labels of
`rateLimitLabels()` (internal/infrastructure/kubernetes/ratelimit/resource.go): those are
RATE_LIMIT_NAMESPACE / RATE_LIMIT_POD_LABELS below. The connection is plain TCP with no password: Envoy
Gateway v1.8.3 passes only REDIS_URL and, optionally, REDIS_TLS with a client certificate (resource.go
expectedRateLimitContainerEnv), and no CA to verify a server certificate with; the NetworkPolicy is
the access control.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._common import RESTRICTED_CONTAINER_SECURITY, child, labels, reject_invalid_args
from components.load_balancer import ENVOY_PROXY_NAMESPACE
from components.network_policy import in_namespace

#: Official Docker Hub image (docker-library), pinned by the digest of its multi-platform image index.
#: Source: docker-library/repo-info repos/redis/remote/8.10.2-alpine3.23.md at commit e0c83c42c94b
#: (`docker pull redis@sha256:3811787313eb...`, index of 16 platforms, built 2026-09-21). 8.10.2 was the
#: newest 8.x release tag listed there. The image runs as any uid: its entrypoint only drops privileges
#: when started as root (docker-library/redis docker-entrypoint.sh), and its `redis` user is uid 999.
REDIS_IMAGE = (
    "docker.io/library/redis:8.10.2-alpine3.23"
    "@sha256:3811787313eba226a2ef38658c6ccb91cd5e110edc89c37767de373120a0e5a0"
)
#: The uid/gid Redis runs as. Not the image's own `redis` user (uid 999): the policy pack's checkov asks for a
#: uid of 10000 or more, clear of host users (CKV_K8S_40). The image runs as any uid: its entrypoint only
#: drops privileges when started as root, and Redis writes nothing outside --dir (/data, a volume that
#: fsGroup makes group-writable, or an emptyDir).
REDIS_UID = 10001
REDIS_GID = 10001
REDIS_PORT = 6379
DATA_DIR = "/data"
#: Where Envoy Gateway runs its rate-limit pods: its controller namespace, which is where the LoadBalancer
#: component installs the gateway-helm release.
RATE_LIMIT_NAMESPACE = ENVOY_PROXY_NAMESPACE
#: Labels Envoy Gateway v1.8.3 puts on the rate-limit pods (ratelimit/resource.go rateLimitLabels();
#: resource_provider.go re-applies them over any user pod labels, so they are always there).
RATE_LIMIT_POD_LABELS: dict[str, str] = {
    "app.kubernetes.io/name": "envoy-ratelimit",
    "app.kubernetes.io/component": "ratelimit",
    "app.kubernetes.io/managed-by": "envoy-gateway",
}

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Kubernetes quantity for a size: digits with an optional binary or decimal suffix.
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


class RedisPersistence(StrEnum):
    """Where Redis keeps its counters."""

    NONE = "none"  # emptyDir: a restart resets every counter (every client gets a fresh day budget)
    VOLUME = "volume"  # a PersistentVolumeClaim and appendonly: counters survive restarts


@dataclass(frozen=True, kw_only=True)
class RedisArgs:
    """One Redis for the global rate limit."""

    namespace: str  # where the Redis pod, Service and NetworkPolicy live
    persistence: RedisPersistence = RedisPersistence.NONE  # emptyDir or a PersistentVolumeClaim
    storage_size: str | None = None  # persistence volume: the claim's size, a Kubernetes quantity ("1Gi")
    storage_class: str | None = None  # persistence volume: StorageClass; None = the cluster's default
    memory: str = "256Mi"  # memory request = limit of the Redis container (Kubernetes quantity)
    # CPU request = limit: a Guaranteed pod (the policy pack's serving-pods-guaranteed, and the rate limiter
    # waits on every call) that the kubelet evicts last; counters of a few hundred keys need little.
    cpu: str = "250m"
    cpu_limit: str = "250m"
    image: str = REDIS_IMAGE  # pinned by digest; a mirror of the same digest for air-gapped sites
    client_namespace: str = RATE_LIMIT_NAMESPACE  # where the pods that may connect run
    client_pod_labels: dict[str, str] = field(default_factory=lambda: dict(RATE_LIMIT_POD_LABELS))


def validate_redis_args(args: RedisArgs) -> list[str]:
    """Every problem with `args`, each starting with the field it is about; empty when usable."""
    problems: list[str] = []
    for field_name in ("namespace", "client_namespace"):
        value = getattr(args, field_name)
        if not _DNS_LABEL.match(value) or len(value) > 63:
            problems.append(f"{field_name}: {value!r} is not a Kubernetes namespace name")
    if args.persistence is RedisPersistence.VOLUME:
        if args.storage_size is None:
            problems.append("storage_size: persistence 'volume' needs a claim size, e.g. '1Gi'")
    else:
        if args.storage_size is not None or args.storage_class is not None:
            problems.append(
                "storage_size, storage_class: only used with persistence 'volume'; remove them or set "
                "persistence: volume"
            )
    if args.storage_size is not None and not _QUANTITY.match(args.storage_size):
        problems.append(f"storage_size: {args.storage_size!r} is not a Kubernetes quantity such as '1Gi'")
    if args.storage_class is not None and (
        not _DNS_NAME.match(args.storage_class) or len(args.storage_class) > 253
    ):
        problems.append(f"storage_class: {args.storage_class!r} is not a StorageClass name")
    for field_name in ("memory", "cpu", "cpu_limit"):
        value = getattr(args, field_name)
        if not (_QUANTITY.match(value) or re.match(r"^[0-9]+m$", value)):
            problems.append(f"{field_name}: {value!r} is not a Kubernetes quantity")
    if "@sha256:" not in args.image:
        problems.append(f"image: {args.image!r} must be pinned by digest (…@sha256:<64 hex>)")
    if not args.client_pod_labels:
        problems.append("client_pod_labels: empty would admit every pod of client_namespace; name the pods")
    return problems


def redis_url(service_name: str, namespace: str) -> str:
    """`host:port` of the Service, as envoyproxy/ratelimit's REDIS_URL takes it (no scheme). `<svc>.<ns>.svc`
    resolves through the pod's DNS search path whatever the cluster domain is."""
    return f"{service_name}.{namespace}.svc:{REDIS_PORT}"


def redis_command(persistence: RedisPersistence) -> list[str]:
    """redis-server arguments. Counters only: no RDB snapshots; appendonly when there is a volume to keep."""
    args = ["redis-server", "--port", str(REDIS_PORT), "--dir", DATA_DIR, "--save", ""]
    # protected-mode is already off in the official image (its Dockerfile patches config.c), which is
    # what lets a password-less Redis accept connections from other pods; the NetworkPolicy limits who.
    args += ["--appendonly", "yes" if persistence is RedisPersistence.VOLUME else "no"]
    return args


class Redis(pulumi.ComponentResource):
    """A single Redis for the rate limiter's counters; reachable only from Envoy Gateway's rate-limit pods."""

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("inferstack:redis:Redis", name, None, opts)
        reject_invalid_args("Redis", name, validate_redis_args(args))

        ns = args.namespace
        workload_name = f"{name}-redis"
        pod_labels = labels(workload_name, "rate-limit-store")
        selector = {
            "app.kubernetes.io/name": workload_name,
            "app.kubernetes.io/component": "rate-limit-store",
        }
        meta: Any = {"name": workload_name, "namespace": ns, "labels": pod_labels}

        container: dict[str, Any] = {
            "name": "redis",
            "image": args.image,
            "command": redis_command(args.persistence),
            "ports": [{"name": "redis", "container_port": REDIS_PORT, "protocol": "TCP"}],
            "resources": {
                "requests": {"cpu": args.cpu, "memory": args.memory},
                "limits": {"cpu": args.cpu_limit, "memory": args.memory},
            },
            "security_context": dict(RESTRICTED_CONTAINER_SECURITY),
            "volume_mounts": [{"name": "data", "mount_path": DATA_DIR}],
            # Loading an appendonly file takes a moment; until the port answers the pod is starting, not dead.
            "startup_probe": {
                "tcp_socket": {"port": REDIS_PORT},
                "period_seconds": 2,
                "failure_threshold": 30,
            },
            "readiness_probe": {"tcp_socket": {"port": REDIS_PORT}, "period_seconds": 5},
            # The Service drops the pod's endpoint before Redis stops, so the rate-limit service's pool
            # moves on (5 s: a few of kube-proxy's sync periods) rather than meeting a closing socket.
            "lifecycle": {"pre_stop": {"sleep": {"seconds": 5}}},
            "liveness_probe": {
                "tcp_socket": {"port": REDIS_PORT},
                "period_seconds": 20,
                "failure_threshold": 6,
            },
        }
        pod_spec: dict[str, Any] = {
            "automount_service_account_token": False,
            "enable_service_links": False,
            "security_context": {
                "run_as_non_root": True,
                "run_as_user": REDIS_UID,
                "run_as_group": REDIS_GID,
                # The claim's files become group-writable by the redis group on mount.
                "fs_group": REDIS_GID,
                "seccomp_profile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
        }
        template = {"metadata": {"labels": pod_labels}, "spec": pod_spec}

        if args.persistence is RedisPersistence.VOLUME:
            claim_spec: dict[str, Any] = {
                "access_modes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": args.storage_size}},
            }
            if args.storage_class is not None:
                claim_spec["storage_class_name"] = args.storage_class
            k8s.apps.v1.StatefulSet(
                f"{name}-statefulset",
                metadata=meta,
                spec=_untyped(
                    {
                        "service_name": workload_name,
                        "replicas": 1,
                        "selector": {"match_labels": selector},
                        "template": template,
                        "volume_claim_templates": [{"metadata": {"name": "data"}, "spec": claim_spec}],
                        # Keep the claim when the StatefulSet goes: the counters are the point of it.
                        "persistent_volume_claim_retention_policy": {
                            "when_deleted": "Retain",
                            "when_scaled": "Retain",
                        },
                    }
                ),
                opts=child(self),
            )
        else:
            # Nothing is written here (no snapshots, no appendonly); Redis only needs its --dir to exist and
            # be writable, and the root filesystem is read-only.
            pod_spec["volumes"] = [{"name": "data", "empty_dir": {"size_limit": "64Mi"}}]
            k8s.apps.v1.Deployment(
                f"{name}-deployment",
                metadata=meta,
                spec=_untyped(
                    {
                        "replicas": 1,
                        # One Redis at a time: two would split the counters between them.
                        "strategy": {"type": "Recreate"},
                        "selector": {"match_labels": selector},
                        "template": template,
                    }
                ),
                opts=child(self),
            )

        k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta,
            spec=_untyped(
                {
                    "type": "ClusterIP",
                    "selector": selector,
                    "ports": [
                        {"name": "redis", "port": REDIS_PORT, "target_port": "redis", "protocol": "TCP"}
                    ],
                }
            ),
            opts=child(self),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata={"name": f"{workload_name}-rate-limit-only", "namespace": ns, "labels": pod_labels},
            spec=_untyped(redis_network_policy_spec(selector, args.client_namespace, args.client_pod_labels)),
            opts=child(self),
        )

        self.service_name = pulumi.Output.from_input(workload_name)
        self.url = pulumi.Output.from_input(redis_url(workload_name, ns))
        self.register_outputs({"service_name": self.service_name, "url": self.url})


def redis_network_policy_spec(
    redis_pod_labels: dict[str, str], client_namespace: str, client_pod_labels: dict[str, str]
) -> dict[str, Any]:
    """Ingress to Redis on 6379 from the rate-limit pods only; no egress (Redis starts no connection)."""
    return {
        "pod_selector": {"match_labels": dict(redis_pod_labels)},
        "policy_types": ["Ingress", "Egress"],
        "ingress": [
            {
                "from": [
                    {
                        "namespace_selector": in_namespace(client_namespace),
                        "pod_selector": {"match_labels": dict(client_pod_labels)},
                    }
                ],
                "ports": [{"port": REDIS_PORT, "protocol": "TCP"}],
            }
        ],
        "egress": [],
    }


def _untyped(spec: dict[str, Any]) -> Any:
    """Plain snake_case dicts for the SDK's typed arguments (its TypedDicts cannot type `from`)."""
    return spec
