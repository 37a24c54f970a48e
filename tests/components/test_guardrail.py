"""The guardrail component: the EnvoyExtensionPolicy that puts the processor in front of the route (valid
against Envoy Gateway v1.8.3's CRD and CEL), the processor's pod (restricted, Guaranteed, gRPC probes), and
the NetworkPolicies that let exactly Envoy in and the processor out to the classifier and DNS."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from components.guardrail import (
    GUARDRAIL_PORT,
    HEALTH_PORT,
    Guardrail,
    GuardrailArgs,
    GuardrailFailureMode,
    message_timeout,
    quantity_bytes,
    validate_guardrail_args,
)
from components.load_balancer import ENVOY_PROXY_NAMESPACE, ENVOY_PROXY_POD_LABELS
from components.model_server import SERVING_PORT
from guardrail.policy import parse_policy
from guardrail.settings import Settings
from inferstack.planning.recording import Recording, run_program
from inferstack.validation.checkov import find_checkov, run_checkov
from inferstack.validation.core import validate_core
from inferstack.validation.policies import load_rules
from tests.components.schemas import crd_errors, manifest_of, needs_crds
from tests.guardrail import envoy_ext_proc

T_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
T_SERVICE = "kubernetes:core/v1:Service"
T_CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
T_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
T_PDB = "kubernetes:policy/v1:PodDisruptionBudget"
T_EXTENSION = "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyExtensionPolicy"
rules = load_rules()

IMAGE = "registry.example/inferstack-guardrail:0.1@sha256:" + "a" * 64
GUARD_PODS = {"app.kubernetes.io/name": "llama-guard", "app.kubernetes.io/component": "model-server"}
POLICY = {"default": {"block": ["S1", "S9"], "flag": ["S6"]}, "clients": {"ci": {"check_responses": True}}}


def make_args(**overrides: Any) -> GuardrailArgs:
    base: dict[str, Any] = {
        "namespace": "inferstack",
        "route_name": "llm-api",
        "classifier_model": "llama-guard",
        "classifier_service": "llama-guard",
        "classifier_pod_labels": dict(GUARD_PODS),
        "image": IMAGE,
        "policy": POLICY,
    }
    base.update(overrides)
    return GuardrailArgs(**base)


def deploy(name: str = "llm", **overrides: Any) -> Recording:
    return run_program(lambda: Guardrail(name, make_args(**overrides)))


@functools.cache
def default_run() -> Recording:
    return deploy()


def test_valid_args_have_no_problems() -> None:
    assert validate_guardrail_args(make_args()) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"namespace": "Bad_NS"}, "namespace:"),
        ({"route_name": ""}, "route_name:"),
        ({"classifier_model": ""}, "classifier_model:"),
        ({"classifier_pod_labels": {}}, "classifier_pod_labels:"),
        ({"gateway_pod_labels": {}}, "gateway_pod_labels:"),
        ({"image": "  "}, "image:"),
        ({"policy": {"default": {"block": ["S42"]}}}, "policy: default.block"),
        ({"classifier_timeout_s": 0}, "classifier_timeout_s:"),
        ({"replicas": 0}, "replicas:"),
        ({"drain_seconds": -1}, "drain_seconds:"),
        ({"max_text_chars": 10}, "max_text_chars:"),
        ({"cpu": "half"}, "cpu:"),
        ({"memory": "256Mi"}, "memory: 256Mi cannot hold"),
        ({"memory": "1Gi", "max_text_chars": 4_000_000}, "memory: 1Gi cannot hold"),
    ],
)
def test_each_invalid_input_is_named(overrides: dict[str, Any], field: str) -> None:
    problems = validate_guardrail_args(make_args(**overrides))
    assert len(problems) == 1 and problems[0].startswith(field), problems


def test_bad_args_fail_before_any_resource_with_every_problem() -> None:
    with pytest.raises(Exception, match=r"(?s)image:.*replicas: 0") as caught:
        deploy(image="", replicas=0)
    assert "image" in str(caught.value) and "replicas" in str(caught.value)


def test_the_extension_policy_targets_the_route_and_the_processor() -> None:
    spec = default_run().one(T_EXTENSION).inputs["spec"]
    assert spec["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "llm-api"}
    ]
    (ext_proc,) = spec["extProc"]
    service = default_run().one(T_SERVICE).inputs
    assert ext_proc["backendRefs"] == [
        {"group": "", "kind": "Service", "name": service["metadata"]["name"], "port": GUARDRAIL_PORT}
    ]
    assert service["spec"]["ports"][0]["port"] == GUARDRAIL_PORT
    assert service["spec"]["ports"][0]["appProtocol"] == "kubernetes.io/h2c"
    assert ext_proc["failOpen"] is False
    assert ext_proc["processingMode"]["request"] == {"body": "Buffered"}
    # One client checks answers: Envoy must stream response bodies to the processor, which may override.
    assert ext_proc["processingMode"]["response"] == {"body": "Streamed"}
    assert ext_proc["processingMode"]["allowModeOverride"] is True


def test_no_response_bodies_when_no_client_checks_answers() -> None:
    (ext_proc,) = deploy(policy={"default": {"block": ["S1"]}}).one(T_EXTENSION).inputs["spec"]["extProc"]
    assert ext_proc["processingMode"]["response"] == {}
    # Envoy still sends response headers (the flag header is set there), but no body.
    mode = envoy_ext_proc.processing_mode(ext_proc)
    assert (mode["response_header_mode"], mode["response_body_mode"]) == ("SEND", "NONE")


def test_fail_open_and_message_timeout_reach_envoy() -> None:
    (ext_proc,) = (
        deploy(failure_mode=GuardrailFailureMode.OPEN, classifier_timeout_s=2.5)
        .one(T_EXTENSION)
        .inputs["spec"]["extProc"]
    )
    assert ext_proc["failOpen"] is True
    assert ext_proc["messageTimeout"] == "3500ms"
    assert envoy_ext_proc.envoy_duration(ext_proc["messageTimeout"]) == "3.5s"


def test_message_timeout_leaves_the_processor_time_to_answer() -> None:
    for seconds in (0.2, 1, 2, 29.9):
        assert float(envoy_ext_proc.envoy_duration(message_timeout(seconds)).rstrip("s")) >= seconds + 1


@needs_crds
@pytest.mark.parametrize(
    "overrides",
    [{}, {"failure_mode": GuardrailFailureMode.OPEN}, {"policy": {}}],
    ids=["closed-responses", "open", "requests-only"],
)
def test_the_extension_policy_validates_against_its_crd_and_cel(overrides: dict[str, Any]) -> None:
    assert crd_errors(manifest_of(deploy(**overrides).one(T_EXTENSION))) == []


@needs_crds
def test_the_crd_check_catches_full_duplex_with_fail_open() -> None:
    """CEL: FullDuplexStreamed needs failOpen false; proves the check above runs the policy's rules."""
    manifest = manifest_of(deploy(failure_mode=GuardrailFailureMode.OPEN).one(T_EXTENSION))
    manifest["spec"]["extProc"][0]["processingMode"]["response"]["body"] = "FullDuplexStreamed"
    assert any("FailOpen must be false" in e for e in crd_errors(manifest))


def _pod(rec: Recording) -> dict[str, Any]:
    return dict(rec.one(T_DEPLOYMENT).inputs["spec"]["template"]["spec"])


def test_the_processor_pod_meets_restricted_and_is_guaranteed() -> None:
    deployment = default_run().one(T_DEPLOYMENT).inputs
    pod = _pod(default_run())
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert container["image"] == IMAGE
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert rules.pod_qos_class(pod) == "Guaranteed"
    assert rules.images_pinned_by_digest(T_DEPLOYMENT, deployment) == []
    # The probes ask the health server on its own port, not the ext_proc server and its stream limit.
    assert HEALTH_PORT != GUARDRAIL_PORT
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {
            "port": HEALTH_PORT,
            "service": "envoy.service.ext_proc.v3.ExternalProcessor",
        }
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "grpc": GUARDRAIL_PORT,
        "health": HEALTH_PORT,
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["GUARDRAIL_HEALTH_PORT"]["value"] == str(HEALTH_PORT)
    assert env["GUARDRAIL_PORT"]["value"] == str(GUARDRAIL_PORT)
    # The limit the processor sizes its large-body slots to is the container's own.
    assert env["GUARDRAIL_MEMORY_LIMIT_BYTES"]["valueFrom"] == {
        "resourceFieldRef": {"containerName": "guardrail", "resource": "limits.memory"}
    }


def test_a_rollout_lets_the_longest_exchange_finish() -> None:
    # The processor drains for the route's request timeout; the pod's grace period covers the preStop sleep
    # before it and a margin after (a 30 s grace killed 600 s exchanges mid-answer).
    pod = _pod(deploy(drain_seconds=900))
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GUARDRAIL_DRAIN_SECONDS"] == "900"
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + 900
    assert pod["terminationGracePeriodSeconds"] <= pre_stop + 900 + 30
    assert container["resources"]["limits"]["cpu"] == "1"


def test_the_processor_reads_the_mounted_policy_and_the_classifier() -> None:
    rec = default_run()
    (container,) = _pod(rec)["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GUARDRAIL_CLASSIFIER_URL"] == f"http://llama-guard.inferstack.svc:{SERVING_PORT}/v1"
    assert env["GUARDRAIL_CLASSIFIER_MODEL"] == "llama-guard"
    assert env["GUARDRAIL_LOG_PROMPTS"] == "false"
    assert env["GUARDRAIL_MAX_TEXT_CHARS"] == "500000"
    # Every GUARDRAIL_* variable is a setting the processor reads: pydantic-settings ignores unknown ones.
    read = {f"GUARDRAIL_{name.upper()}" for name in Settings.model_fields}
    assert {name for name in env if name.startswith("GUARDRAIL_")} <= read
    assert env["GUARDRAIL_POLICY_FILE"] is not None
    mount = next(m for m in container["volumeMounts"] if m["name"] == "policy")
    assert env["GUARDRAIL_POLICY_FILE"].startswith(mount["mountPath"] + "/")
    volume = next(v for v in _pod(rec)["volumes"] if v["name"] == "policy")
    config_map = rec.one(T_CONFIG_MAP).inputs
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    file_name = env["GUARDRAIL_POLICY_FILE"].rsplit("/", 1)[1]
    # What the pod will read parses as the processor parses it, and is the policy given.
    assert parse_policy(config_map["data"][file_name]) == parse_policy(json.dumps(POLICY))


def test_a_policy_change_rolls_the_pods() -> None:
    def digest(rec: Recording) -> str:
        return str(rec.one(T_DEPLOYMENT).inputs["spec"]["template"]["metadata"]["annotations"])

    assert digest(default_run()) != digest(deploy(policy={"default": {"block": ["S1"]}}))


def test_pdb_only_with_more_than_one_replica() -> None:
    assert default_run().of_type(T_PDB)[0].inputs["spec"]["maxUnavailable"] == 1
    assert deploy(replicas=1).of_type(T_PDB) == []


def _policy(rec: Recording, suffix: str) -> dict[str, Any]:
    (found,) = [
        p.inputs["spec"] for p in rec.of_type(T_POLICY) if p.inputs["metadata"]["name"].endswith(suffix)
    ]
    return dict(found)


def test_only_envoy_reaches_the_processor() -> None:
    spec = _policy(default_run(), "-guardrail-allow")
    selector = default_run().one(T_DEPLOYMENT).inputs["spec"]["selector"]["matchLabels"]
    assert spec["podSelector"]["matchLabels"] == selector
    (ingress,) = spec["ingress"]
    assert ingress["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ENVOY_PROXY_NAMESPACE}},
            "podSelector": {"matchLabels": ENVOY_PROXY_POD_LABELS},
        }
    ]
    assert ingress["ports"] == [{"port": GUARDRAIL_PORT, "protocol": "TCP"}]


def test_the_processor_reaches_only_the_classifier_and_dns() -> None:
    spec = _policy(default_run(), "-guardrail-allow")
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    classifier, dns = spec["egress"]
    assert classifier == {
        "to": [{"podSelector": {"matchLabels": GUARD_PODS}}],
        "ports": [{"port": SERVING_PORT, "protocol": "TCP"}],
    }
    assert {p["port"] for p in dns["ports"]} == {53}


def test_the_classifier_admits_the_processor() -> None:
    spec = _policy(default_run(), "-guardrail-to-classifier")
    processor_labels = default_run().one(T_DEPLOYMENT).inputs["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"] == GUARD_PODS
    (ingress,) = spec["ingress"]
    (peer,) = ingress["from"]
    assert set(peer["podSelector"]["matchLabels"].items()) <= set(processor_labels.items())
    assert "namespaceSelector" not in peer  # the processor runs in the classifier's namespace
    assert ingress["ports"] == [{"port": SERVING_PORT, "protocol": "TCP"}]


def test_two_guardrails_do_not_collide() -> None:
    def program() -> None:
        Guardrail("a", make_args())
        Guardrail("b", make_args(route_name="llm-models"))

    rec = run_program(program)
    kinds_names = [(r.kind, r.inputs["metadata"]["name"]) for r in rec.kubernetes_objects()]
    assert len(kinds_names) == len(set(kinds_names))


def test_core_objects_validate_against_kubernetes() -> None:
    manifests = [
        manifest_of(r) for r in default_run().kubernetes_objects() if r.kind != "EnvoyExtensionPolicy"
    ]
    outcome = validate_core(manifests, "1.34")
    assert outcome.findings == [] and outcome.validated == len(manifests)


@pytest.mark.skipif(
    find_checkov() is None, reason="checkov not installed: `make tools` puts it in .tools/checkov"
)
def test_checkov_finds_nothing() -> None:
    manifests = [manifest_of(r) for r in default_run().kubernetes_objects()]
    assert run_checkov(manifests).findings == []


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("512Mi", 512 * 2**20), ("1Gi", 2**30), ("1.5Gi", 3 * 2**29), ("2G", 2 * 10**9), ("1000", 1000)],
)
def test_memory_quantities_in_bytes(quantity: str, expected: int) -> None:
    assert quantity_bytes(quantity) == expected
