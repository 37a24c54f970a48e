"""Redis for the rate limiter: pinned, non-root, the chosen persistence, reachable only from Envoy Gateway's
rate-limit pods, and core objects Kubernetes accepts."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from components.redis import (
    RATE_LIMIT_NAMESPACE,
    RATE_LIMIT_POD_LABELS,
    REDIS_GID,
    REDIS_IMAGE,
    REDIS_PORT,
    REDIS_UID,
    Redis,
    RedisArgs,
    RedisPersistence,
    redis_url,
    validate_redis_args,
)
from inferstack.planning.recording import Recording, run_program
from inferstack.validation.checkov import find_checkov, run_checkov
from inferstack.validation.core import validate_core
from tests.components.schemas import manifest_of

T_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
T_STATEFULSET = "kubernetes:apps/v1:StatefulSet"
T_SERVICE = "kubernetes:core/v1:Service"
T_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
T_CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"


def make_args(**overrides: Any) -> RedisArgs:
    base: dict[str, Any] = {"namespace": "inferstack"}
    base.update(overrides)
    return RedisArgs(**base)


def render(name: str = "llm", **overrides: Any) -> tuple[Recording, dict[str, Any]]:
    resolved: dict[str, Any] = {}

    def program() -> None:
        redis = Redis(name, make_args(**overrides))
        redis.url.apply(lambda url: resolved.__setitem__("url", url))

    return run_program(program), resolved


@functools.cache
def ephemeral() -> Recording:
    return render()[0]


@functools.cache
def persistent() -> Recording:
    return render(persistence=RedisPersistence.VOLUME, storage_size="2Gi", storage_class="fast-ssd")[0]


def workload(rec: Recording) -> dict[str, Any]:
    (obj,) = rec.of_type(T_DEPLOYMENT) + rec.of_type(T_STATEFULSET)
    return obj.inputs


# --- validation (pure) -----------------------------------------------------------------------------


def test_valid_args_have_no_problems() -> None:
    assert validate_redis_args(make_args()) == []
    assert validate_redis_args(make_args(persistence=RedisPersistence.VOLUME, storage_size="1Gi")) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"namespace": "Bad_NS"}, "namespace"),
        ({"persistence": RedisPersistence.VOLUME}, "storage_size"),
        ({"storage_size": "1Gi"}, "storage_size, storage_class"),
        ({"storage_class": "fast"}, "storage_size, storage_class"),
        ({"persistence": RedisPersistence.VOLUME, "storage_size": "lots"}, "storage_size"),
        (
            {"persistence": RedisPersistence.VOLUME, "storage_size": "1Gi", "storage_class": "Fast_SSD"},
            "storage_class",
        ),
        ({"memory": "a lot"}, "memory"),
        ({"image": "redis:8"}, "image"),
        ({"client_pod_labels": {}}, "client_pod_labels"),
        ({"client_namespace": "Not A Namespace"}, "client_namespace"),
    ],
)
def test_invalid_args_are_rejected_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    problems = validate_redis_args(make_args(**overrides))
    assert any(p.startswith(f"{field}:") for p in problems), problems


def test_the_component_refuses_bad_args_before_making_anything() -> None:
    with pytest.raises(ValueError, match="storage_size"):
        render(persistence=RedisPersistence.VOLUME)


# --- the pod ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rec", [ephemeral, persistent], ids=["none", "volume"])
def test_redis_runs_non_root_read_only_with_no_capabilities(rec: Any) -> None:
    spec = workload(rec())["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == REDIS_UID != 0
    assert spec["securityContext"]["runAsGroup"] == REDIS_GID
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["image"] == REDIS_IMAGE and "@sha256:" in container["image"]
    assert container["resources"]["limits"]["memory"] == container["resources"]["requests"]["memory"]


def test_no_persistence_is_one_deployment_on_an_emptydir_without_appendonly() -> None:
    rec = ephemeral()
    assert rec.of_type(T_STATEFULSET) == [] and rec.of_type(T_CLAIM) == []
    spec = workload(rec)["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    (volume,) = spec["template"]["spec"]["volumes"]
    assert "emptyDir" in volume
    command = spec["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--appendonly") + 1] == "no"


def test_volume_persistence_is_a_statefulset_with_the_chosen_claim() -> None:
    rec = persistent()
    assert rec.of_type(T_DEPLOYMENT) == []
    spec = workload(rec)["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    container = spec["template"]["spec"]["containers"][0]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]
    assert container["command"][container["command"].index("--appendonly") + 1] == "yes"
    # The claim is writable by the redis group.
    assert spec["template"]["spec"]["securityContext"]["fsGroup"] == REDIS_GID


def test_volume_without_a_storage_class_uses_the_cluster_default() -> None:
    rec, _ = render(persistence=RedisPersistence.VOLUME, storage_size="1Gi")
    (claim,) = workload(rec)["spec"]["volumeClaimTemplates"]
    assert "storageClassName" not in claim["spec"]


# --- service and network ----------------------------------------------------------------------------


def test_service_selects_the_redis_pod_and_url_names_it() -> None:
    rec, resolved = render()
    service = rec.one(T_SERVICE).inputs
    pod_labels = workload(rec)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["port"] == REDIS_PORT
    assert (
        resolved["url"]
        == redis_url(service["metadata"]["name"], "inferstack")
        == "llm-redis.inferstack.svc:6379"
    )


def test_network_policy_admits_exactly_the_rate_limit_pods_and_no_egress() -> None:
    rec = ephemeral()
    policy = rec.one(T_POLICY).inputs["spec"]
    pod_labels = workload(rec)["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    assert policy.get("egress", []) == []
    (rule,) = policy["ingress"]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": RATE_LIMIT_NAMESPACE}},
            "podSelector": {"matchLabels": RATE_LIMIT_POD_LABELS},
        }
    ]
    assert rule["ports"] == [{"port": REDIS_PORT, "protocol": "TCP"}]


def test_rate_limit_peer_is_envoy_gateways_ratelimit_deployment() -> None:
    # Envoy Gateway v1.8.3 ratelimit/resource.go rateLimitLabels(), run in its controller namespace.
    assert RATE_LIMIT_POD_LABELS == {
        "app.kubernetes.io/name": "envoy-ratelimit",
        "app.kubernetes.io/component": "ratelimit",
        "app.kubernetes.io/managed-by": "envoy-gateway",
    }
    assert RATE_LIMIT_NAMESPACE == "envoy-gateway-system"


def test_two_redis_in_one_program_do_not_collide() -> None:
    def program() -> None:
        Redis("a", make_args())
        Redis("b", make_args(persistence=RedisPersistence.VOLUME, storage_size="1Gi"))

    rec = run_program(program)
    kinds_names = [(r.kind, r.inputs["metadata"]["name"]) for r in rec.kubernetes_objects()]
    assert len(kinds_names) == len(set(kinds_names)) == 6


@pytest.mark.parametrize("rec", [ephemeral, persistent], ids=["none", "volume"])
def test_core_objects_validate_against_kubernetes(rec: Any) -> None:
    manifests = [manifest_of(r) for r in rec().kubernetes_objects()]
    assert {m["kind"] for m in manifests} >= {"Service", "NetworkPolicy"}
    outcome = validate_core(manifests, "1.34")
    assert outcome.findings == [] and outcome.validated == len(manifests)


@pytest.mark.skipif(
    find_checkov() is None, reason="checkov not installed: `make tools` puts it in .tools/checkov"
)
def test_checkov_finds_nothing_in_either_persistence() -> None:
    manifests = [manifest_of(r) for rec in (ephemeral(), persistent()) for r in rec.kubernetes_objects()]
    outcome = run_checkov(manifests)
    assert outcome.findings == []
