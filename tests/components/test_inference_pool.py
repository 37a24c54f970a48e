"""InferencePoolRouting: the pool holds exactly its variant's pods, the picker runs restricted, and the
NetworkPolicies admit exactly Envoy -> picker and picker -> the variant's pods."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.choices import Engine
from components.inference_pool import (
    EPP_GRPC_PORT,
    EPP_HEALTH_PORT,
    EPP_IMAGE,
    EPP_IMAGE_TAG,
    EPP_PRE_STOP_SECONDS,
    EPP_TOKEN_SKIP_REASON,
    EPP_VLLM_METRICS,
    INFERENCE_POOL_CRD_FILE,
    INFERENCEPOOL_CHART_DEFAULTS,
    InferencePoolRouting,
    InferencePoolRoutingArgs,
    ai_gateway_backend_ref,
    envoy_gateway_values,
    epp_plugins_config,
    routing_enabled,
    selector_matches,
    validate_inference_pool_args,
)
from components.load_balancer import ENVOY_PROXY_NAMESPACE, ENVOY_PROXY_POD_LABELS
from components.model_server import SERVING_PORT
from inferstack.planning.recording import Recording, run_program
from inferstack.validation.policies import load_rules
from tests.components.schemas import (
    CHART_DIR,
    CRD_DIR,
    chart_value_errors,
    crd_errors,
    manifest_of,
    needs_charts,
    needs_crds,
)

T_POOL = "kubernetes:inference.networking.k8s.io/v1:InferencePool"
T_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
T_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
T_SERVICE = "kubernetes:core/v1:Service"
T_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
T_CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
T_PDB = "kubernetes:policy/v1:PodDisruptionBudget"
rules = load_rules()  # the project's policy pack (policy/rules.py), the rules `inferstack check` runs

NS = "inferstack"
# Two variants of one model as stacks/workload.py makes them: each its own ModelServer, whose pods differ in
# app.kubernetes.io/name (the variant's object name) only.
V1_PODS = {
    "app.kubernetes.io/name": "llama-v1",
    "app.kubernetes.io/component": "model-server",
    "app.kubernetes.io/managed-by": "inferstack",
    "app.kubernetes.io/part-of": "inferstack",
}
V2_PODS = {**V1_PODS, "app.kubernetes.io/name": "llama-v2"}
V1_SELECTOR = {"app.kubernetes.io/name": "llama-v1", "app.kubernetes.io/component": "model-server"}


def make_args(**overrides: Any) -> InferencePoolRoutingArgs:
    base: dict[str, Any] = {
        "namespace": NS,
        "pod_selector": V1_SELECTOR,
        "other_variant_pod_labels": [V2_PODS],
        "api_server_cidrs": ["10.0.0.1/32"],
    }
    base.update(overrides)
    return InferencePoolRoutingArgs(**base)


def deploy(name: str = "llama-v1", **overrides: Any) -> Recording:
    return run_program(lambda: InferencePoolRouting(name, make_args(**overrides)))


@functools.cache
def default_run() -> Recording:
    return deploy()


# --- validation (pure) -----------------------------------------------------------------------------


def test_valid_args_have_no_problems() -> None:
    assert validate_inference_pool_args("llama-v1", make_args()) == []


@pytest.mark.parametrize(
    ("name", "overrides", "field"),
    [
        ("llama-v1", {"pod_selector": {}}, "pod_selector"),
        # the model's shared labels only: v2's pods match too
        ("llama-v1", {"pod_selector": {"app.kubernetes.io/component": "model-server"}}, "pod_selector"),
        ("llama-v1", {"pod_selector": {"bad key!": "x"}}, "pod_selector"),
        ("llama-v1", {"engine": Engine.TRANSFORMERS}, "engine"),
        ("llama-v1", {"api_server_cidrs": []}, "api_server_cidrs"),
        ("llama-v1", {"api_server_cidrs": ["api.example.com"]}, "api_server_cidrs"),
        ("llama-v1", {"api_server_cidrs": ["10.0.0.1/8"]}, "api_server_cidrs"),
        ("llama-v1", {"api_server_ports": [0]}, "api_server_ports"),
        ("llama-v1", {"epp_replicas": 0}, "epp_replicas"),
        ("llama-v1", {"failure_mode": "Open"}, "failure_mode"),
        ("llama-v1", {"gateway_pod_labels": {}}, "gateway_pod_labels"),
        ("llama-v1", {"target_port": 70000}, "target_port"),
        ("llama-v1", {"epp_image": EPP_IMAGE_TAG}, "epp_image"),  # a tag can be re-pushed
        ("llama-v1", {"epp_image": EPP_IMAGE_TAG + "@sha256:abc"}, "epp_image"),
        ("Llama", {}, "name"),
        ("x" * 47, {}, "name"),  # <name>-epp-default-deny would pass 63
        ("llama-v1", {"namespace": "Bad_NS"}, "namespace"),
    ],
)
def test_each_invalid_input_is_named(name: str, overrides: dict[str, Any], field: str) -> None:
    problems = validate_inference_pool_args(name, make_args(**overrides))
    assert problems and all(p.startswith(f"{field}:") for p in problems), problems


def test_bad_args_fail_before_any_resource_with_every_problem() -> None:
    with pytest.raises(ValueError, match=r"2 problem\(s\)") as err:
        InferencePoolRouting("llama-v1", make_args(api_server_cidrs=[], engine=Engine.TRANSFORMERS))
    assert "api_server_cidrs:" in str(err.value) and "engine:" in str(err.value)


def test_routing_is_on_for_vllm_with_two_or_more_replicas_only() -> None:
    assert routing_enabled(Engine.VLLM, 2) and routing_enabled(Engine.VLLM, 8)
    assert not routing_enabled(Engine.VLLM, 1)
    assert not routing_enabled(Engine.TRANSFORMERS, 4)  # the CPU engine keeps a plain Service


# --- the pool selects exactly its variant's pods ---------------------------------------------------


def test_the_pool_selects_its_variants_pods_and_not_another_variants() -> None:
    pool = default_run().one(T_POOL).inputs
    selector = pool["spec"]["selector"]["matchLabels"]
    assert selector == V1_SELECTOR
    assert selector_matches(selector, V1_PODS)
    assert not selector_matches(selector, V2_PODS)


def test_the_pool_selects_what_model_server_puts_on_its_pods() -> None:
    """The selector built from ModelServer's own pod labels matches the pods it makes, and not a sibling's."""
    from components._common import labels

    v1, v2 = labels("llama-v1", "model-server"), labels("llama-v2", "model-server")
    selector = {k: v1[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/component")}
    assert (
        validate_inference_pool_args(
            "llama-v1", make_args(pod_selector=selector, other_variant_pod_labels=[v2])
        )
        == []
    )
    assert selector_matches(selector, v1) and not selector_matches(selector, v2)


def test_pool_ports_and_picker_reference() -> None:
    spec = default_run().one(T_POOL).inputs["spec"]
    assert spec["targetPorts"] == [{"number": SERVING_PORT}]
    assert spec["endpointPickerRef"] == {
        "kind": "Service",
        "name": "llama-v1-epp",
        "port": {"number": EPP_GRPC_PORT},
        "failureMode": "FailOpen",
    }
    service = default_run().one(T_SERVICE).inputs
    assert service["metadata"]["name"] == "llama-v1-epp"
    assert [p["port"] for p in service["spec"]["ports"]] == [EPP_GRPC_PORT]


def test_the_epp_watches_the_pool_this_component_makes() -> None:
    rec = default_run()
    args = rec.one(T_DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"][0]["args"]
    pool = rec.one(T_POOL).inputs["metadata"]
    assert args[args.index("--pool-name") + 1] == pool["name"]
    assert args[args.index("--pool-namespace") + 1] == pool["namespace"] == NS


@needs_crds
@pytest.mark.parametrize("overrides", [{}, {"epp_replicas": 2, "failure_mode": "FailClose"}])
def test_the_pool_validates_against_its_crd_and_cel(overrides: dict[str, Any]) -> None:
    assert crd_errors(manifest_of(deploy(**overrides).one(T_POOL))) == []


@needs_crds
def test_the_crd_check_catches_a_duplicate_target_port() -> None:
    """CEL: targetPorts must be unique; proves the check above runs the pool's rules."""
    pool = manifest_of(default_run().one(T_POOL))
    pool["spec"]["targetPorts"] = [{"number": 8000}, {"number": 8000}]
    assert any("unique" in e or "exists_one" in e for e in crd_errors(pool))


@needs_crds
def test_the_vendored_crd_is_the_schema_check_uses() -> None:
    ours = yaml.safe_load(INFERENCE_POOL_CRD_FILE.read_text())
    shared = yaml.safe_load((CRD_DIR / INFERENCE_POOL_CRD_FILE.name).read_text())
    assert ours["spec"] == shared["spec"]
    assert ours["metadata"]["annotations"]["inference.networking.k8s.io/bundle-version"] == "v1.6.0"


def test_the_crd_is_kept_on_delete_and_awaited() -> None:
    import pulumi

    from components.inference_pool import inference_pool_crd

    rec = run_program(lambda: inference_pool_crd("inference-pool-crd", pulumi.ResourceOptions()))
    crd = rec.one(T_CRD)
    assert crd.inputs["spec"]["group"] == "inference.networking.k8s.io"
    assert crd.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Established"


# --- the picker runs under Pod Security "restricted" -----------------------------------------------


def test_the_picker_pod_meets_restricted() -> None:
    pod = default_run().one(T_DEPLOYMENT).inputs["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] is True
        assert container["image"] == EPP_IMAGE


def test_leader_election_comes_with_its_rbac() -> None:
    one, two = default_run(), deploy(epp_replicas=2)

    def groups(rec: Recording) -> set[str]:
        return {g for rule in rec.one(T_ROLE).inputs["rules"] for g in rule["apiGroups"]}

    assert "coordination.k8s.io" not in groups(one) and "coordination.k8s.io" in groups(two)
    args = two.one(T_DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--ha-enable-leader-election" in args


# --- the picker passes the project's policy pack like every serving Deployment ----------------------


def _deployment(rec: Recording) -> dict[str, Any]:
    return rec.one(T_DEPLOYMENT).inputs


def _epp_container(rec: Recording) -> dict[str, Any]:
    return _deployment(rec)["spec"]["template"]["spec"]["containers"][0]


def test_the_picker_image_is_the_charts_tag_pinned_by_digest() -> None:
    image = _epp_container(default_run())["image"]
    tag, digest = image.split("@")
    assert tag == EPP_IMAGE_TAG  # still v1.5.0, the chart's tag (checked against values.yaml below)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest
    assert rules.images_pinned_by_digest(T_DEPLOYMENT, _deployment(default_run())) == []


@pytest.mark.parametrize("replicas", [1, 2])
def test_the_picker_has_a_startup_probe_on_its_grpc_health_port(replicas: int) -> None:
    container = _epp_container(deploy(epp_replicas=replicas))
    startup, liveness = container["startupProbe"], container["livenessProbe"]
    assert startup["grpc"]["port"] == EPP_HEALTH_PORT
    # The liveness service, not readiness: a leader-election standby is never ready, yet it has started.
    assert startup["grpc"]["service"] == liveness["grpc"]["service"]
    if replicas > 1:
        assert (startup["grpc"]["service"], container["readinessProbe"]["grpc"]["service"]) == (
            "liveness",
            "readiness",
        )
    # Long enough for informer sync, short enough that a picker which never starts is restarted.
    assert 30 <= startup["periodSeconds"] * startup["failureThreshold"] <= 120


def test_the_picker_sleeps_before_sigterm_within_its_grace_period() -> None:
    rec = default_run()
    pod = _deployment(rec)["spec"]["template"]["spec"]
    sleep = _epp_container(rec)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep == EPP_PRE_STOP_SECONDS
    # Long enough for the EndpointSlice change to reach kube-proxy; leaves most of the grace period for
    # GracefulStop to finish in-flight ext_proc streams.
    assert 5 <= sleep <= pod["terminationGracePeriodSeconds"] // 2
    assert rules.startup_probe_and_drain(T_DEPLOYMENT, _deployment(rec)) == []


@pytest.mark.parametrize("overrides", [{}, {"epp_cpu": "2", "epp_memory": "4Gi"}])
def test_the_picker_pod_is_guaranteed(overrides: dict[str, Any]) -> None:
    rec = deploy(**overrides)
    resources = _epp_container(rec)["resources"]
    assert resources["requests"] == resources["limits"]
    assert set(resources["limits"]) == {"cpu", "memory"}
    assert rules.pod_qos_class(_deployment(rec)["spec"]["template"]["spec"]) == "Guaranteed"
    assert rules.serving_pods_guaranteed(T_DEPLOYMENT, _deployment(rec)) == []


def test_the_default_size_is_the_charts_validated_request() -> None:
    limits = _epp_container(default_run())["resources"]["limits"]
    chart = INFERENCEPOOL_CHART_DEFAULTS["inferenceExtension"]["resources"]["requests"]
    assert limits == chart == {"cpu": "4", "memory": "8Gi"}


def test_a_replicated_picker_has_a_pdb_selecting_its_pods() -> None:
    rec = deploy(epp_replicas=2)
    pdb = rec.one(T_PDB).inputs
    pod_labels = _deployment(rec)["spec"]["template"]["metadata"]["labels"]
    assert pdb["metadata"]["namespace"] == NS
    assert pdb["spec"]["maxUnavailable"] == 1
    assert selector_matches(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    assert not selector_matches(pdb["spec"]["selector"]["matchLabels"], V1_PODS)  # not the model's pods
    resources = [(r.type, r.inputs) for r in rec.resources]
    assert rules.pdb_when_replicas_gt_1(resources) == []


def test_a_single_picker_has_no_pdb() -> None:
    """maxUnavailable 1 over one pod protects nothing; the rule asks for a PDB only above one replica."""
    rec = default_run()
    assert rec.of_type(T_PDB) == []
    assert rules.pdb_when_replicas_gt_1([(r.type, r.inputs) for r in rec.resources]) == []


def test_the_token_skip_is_on_the_picker_only_with_a_reason_checkov_reads() -> None:
    rec = default_run()
    deployment = _deployment(rec)
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
    skip = deployment["metadata"]["annotations"]["checkov.io/skip1"]
    check, reason = skip.split("=")  # checkov's own parsing: exactly one '=' or it fails on the object
    assert check == "CKV_K8S_38" and reason == EPP_TOKEN_SKIP_REASON and "InferencePool" in reason
    # Only CKV_K8S_38 is waived: the digest, CPU limit and the rest are met, not skipped.
    assert [k for k in deployment["metadata"]["annotations"] if k.startswith("checkov.io/")] == [
        "checkov.io/skip1"
    ]
    for other in rec.kubernetes_objects():
        if other is not rec.one(T_DEPLOYMENT):
            assert "checkov.io/skip1" not in ((other.inputs.get("metadata") or {}).get("annotations") or {})


# --- NetworkPolicies: exactly Envoy -> picker, picker -> the variant's pods (and the API server) -----


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    return selector_matches((selector or {}).get("matchLabels") or {}, labels)


def _peer_admits(
    peer: dict[str, Any], own_ns: str, ns: str, pod_labels: dict[str, str], ip: str | None
) -> bool:
    if "ipBlock" in peer:
        import ipaddress

        return ip is not None and ipaddress.ip_address(ip) in ipaddress.ip_network(peer["ipBlock"]["cidr"])
    if ip is not None:
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": ns}):
            return False
    elif ns != own_ns:
        return False
    return _selects(peer.get("podSelector"), pod_labels)


def admits(
    policies: list[dict[str, Any]],
    direction: str,
    pod: dict[str, str],
    peer_ns: str,
    peer_labels: dict[str, str],
    port: int,
    ip: str | None = None,
) -> bool:
    """NetworkPolicy semantics for one pod of NS: isolated in `direction` by any policy selecting it, then
    allowed only if some rule's peers and ports admit the peer (pods by namespace + labels, or an IP)."""
    selecting = [p for p in policies if _selects(p["spec"]["podSelector"], pod)]
    kind = "Ingress" if direction == "ingress" else "Egress"
    if not any(kind in p["spec"]["policyTypes"] for p in selecting):
        return True
    key = "from" if direction == "ingress" else "to"
    for p in selecting:
        for rule in p["spec"].get(direction, []):
            if rule.get("ports") and not any(r["port"] == port for r in rule["ports"]):
                continue
            if any(_peer_admits(peer, NS, peer_ns, peer_labels, ip) for peer in rule.get(key, [])):
                return True
    return False


@functools.cache
def epp_policies() -> tuple[list[dict[str, Any]], dict[str, str]]:
    rec = default_run()
    policies = [r.inputs for r in rec.of_type(T_POLICY)]
    epp_labels = rec.one(T_DEPLOYMENT).inputs["spec"]["template"]["metadata"]["labels"]
    return policies, epp_labels


ENVOY = (ENVOY_PROXY_NAMESPACE, ENVOY_PROXY_POD_LABELS)


@pytest.mark.parametrize(
    ("peer", "port", "allowed"),
    [
        (ENVOY, EPP_GRPC_PORT, True),
        (ENVOY, 9090, False),  # the picker's metrics port is not Envoy's business
        (ENVOY, 9003, False),
        ((ENVOY_PROXY_NAMESPACE, {"app": "something-else"}), EPP_GRPC_PORT, False),
        ((NS, ENVOY_PROXY_POD_LABELS), EPP_GRPC_PORT, False),  # Envoy's labels in another namespace
        ((NS, V1_PODS), EPP_GRPC_PORT, False),  # the model pods never call the picker
        (("monitoring", {"app.kubernetes.io/name": "prometheus"}), EPP_GRPC_PORT, False),
    ],
)
def test_ingress_to_the_picker_is_envoy_on_grpc_only(
    peer: tuple[str, dict[str, str]], port: int, allowed: bool
) -> None:
    policies, epp = epp_policies()
    assert admits(policies, "ingress", epp, peer[0], peer[1], port) is allowed


@pytest.mark.parametrize(
    ("peer", "port", "ip", "allowed"),
    [
        ((NS, V1_PODS), SERVING_PORT, None, True),  # scrapes its variant's /metrics
        ((NS, V2_PODS), SERVING_PORT, None, False),  # never another variant's
        ((NS, V1_PODS), 9090, None, False),
        (("other", V1_PODS), SERVING_PORT, None, False),  # same labels elsewhere
        ((None, {}), 443, "10.0.0.1", True),  # the API server
        ((None, {}), 6443, "10.0.0.1", True),
        ((None, {}), 443, "10.0.0.2", False),
        ((None, {}), 53, "169.254.20.10", False),  # no DNS: in-cluster config uses the Service IP
    ],
)
def test_egress_from_the_picker_is_its_variants_pods_and_the_api_server(
    peer: tuple[str | None, dict[str, str]], port: int, ip: str | None, allowed: bool
) -> None:
    policies, epp = epp_policies()
    assert admits(policies, "egress", epp, peer[0] or "", peer[1], port, ip) is allowed


def test_the_picker_policies_select_only_the_picker() -> None:
    policies, _ = epp_policies()
    for policy in policies:
        assert not _selects(policy["spec"]["podSelector"], V1_PODS)
        assert policy["spec"]["podSelector"]["matchLabels"]  # never podSelector: {} (the whole namespace)


# --- chart values, upstream defaults, Envoy Gateway and AI Gateway wiring --------------------------


@needs_charts
def test_what_we_follow_is_the_inferencepool_charts_defaults() -> None:
    """Our constants are the GIE v1.5.0 chart's values.yaml defaults (image, ports, scorers' inputs)."""
    assert chart_value_errors("inferencepool", INFERENCEPOOL_CHART_DEFAULTS) == []
    chart = yaml.safe_load((CHART_DIR / "inferencepool" / "values.yaml").read_text())

    def same(ours: Any, theirs: Any, path: str = "") -> list[str]:
        if isinstance(ours, dict):
            return [d for k, v in ours.items() for d in same(v, theirs.get(k), f"{path}.{k}")]
        return [] if ours == theirs else [f"{path}: ours {ours!r}, chart {theirs!r}"]

    assert same(INFERENCEPOOL_CHART_DEFAULTS, chart) == []
    image = chart["inferenceExtension"]["image"]
    assert f"{image['registry']}/{image['repository']}:{image['tag']}" == EPP_IMAGE_TAG
    assert EPP_IMAGE.startswith(EPP_IMAGE_TAG + "@sha256:")


def test_the_picker_config_scores_prefix_queue_and_kv_cache() -> None:
    config = yaml.safe_load(epp_plugins_config())
    weights = {p["pluginRef"]: p["weight"] for p in config["schedulingProfiles"][0]["plugins"]}
    assert weights == {"queue-scorer": 2, "kv-cache-utilization-scorer": 2, "prefix-cache-scorer": 3}
    rec = default_run()
    data = rec.one("kubernetes:core/v1:ConfigMap").inputs["data"]
    assert yaml.safe_load(data["default-plugins.yaml"]) == config


def test_the_picker_reads_the_vllm_metrics_the_autoscaler_and_docs_name() -> None:
    assert EPP_VLLM_METRICS["queued_requests"] == "vllm:num_requests_waiting"
    assert EPP_VLLM_METRICS["kv_cache_usage"] == "vllm:kv_cache_usage_perc"


@needs_charts
def test_envoy_gateway_values_exist_in_its_chart() -> None:
    # gateway-helm v1.8.3 templates/envoy-gateway-config.yaml merges `config.envoyGateway` whole into the
    # EnvoyGateway API object (values.yaml: "Visit .../extension_types/#envoygateway to view all options"),
    # so extensionManager is a real setting although values.yaml does not list it. The values check takes
    # that map's keys from EnvoyGatewaySpec's fields (inferstack/validation/helm.py _PASSED_THROUGH), so
    # every value we set is known, and a misspelt EnvoyGateway field is still caught.
    errors = chart_value_errors("envoy-gateway", envoy_gateway_values())
    assert errors == []
    misspelt = copy.deepcopy(envoy_gateway_values())
    eg = misspelt["config"]["envoyGateway"]
    eg["extensionManger"] = eg.pop("extensionManager")
    errors = chart_value_errors("envoy-gateway", misspelt)
    assert [e.split(":", 1)[0] for e in errors] == ["config.envoyGateway.extensionManger"], errors
    resources = envoy_gateway_values()["config"]["envoyGateway"]["extensionManager"]["backendResources"]
    assert resources == [{"group": "inference.networking.k8s.io", "kind": "InferencePool", "version": "v1"}]


@needs_crds
def test_an_ai_gateway_route_to_the_pool_validates() -> None:
    route: dict[str, Any] = {
        "apiVersion": "aigateway.envoyproxy.io/v1beta1",
        "kind": "AIGatewayRoute",
        "metadata": {"name": "llm", "namespace": NS},
        "spec": {
            "parentRefs": [{"name": "llm", "kind": "Gateway", "group": "gateway.networking.k8s.io"}],
            "rules": [
                {
                    "matches": [{"headers": [{"type": "Exact", "name": "x-ai-eg-model", "value": "llama"}]}],
                    "backendRefs": [ai_gateway_backend_ref("llama-v1")],
                }
            ],
        },
    }
    assert crd_errors(route) == []
    # Upstream's CEL: one InferencePool per rule, so two weighted variants cannot share a rule.
    route["spec"]["rules"][0]["backendRefs"].append(ai_gateway_backend_ref("llama-v2"))
    assert any("only one InferencePool" in e for e in crd_errors(route))


def test_the_vendored_crd_file_is_in_the_package() -> None:
    assert INFERENCE_POOL_CRD_FILE.is_file()
    assert Path(INFERENCE_POOL_CRD_FILE).parent.name == "crds"
