"""ModelServer: the serving pod is GPU-correct, restricted, drains in time and is fenced by policies."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from components.choices import Engine
from components.model_server import (
    HEALTH_PATH,
    SERVING_PORT,
    ModelServer,
    ModelServerArgs,
    validate_model_server_args,
)
from inferstack.planning.recording import Recording, run_program

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def gpu_args(**changes: Any) -> ModelServerArgs:
    base = ModelServerArgs(
        namespace="inferstack",
        engine=Engine.VLLM,
        image="registry.example/model:1.0",
        model_uri="hf://meta-llama/Llama-3.1-8B-Instruct@0e9e39f249a16976918f6564b8830bc894c89659",
        served_model_name="llama-3.1-8b-instruct",
        max_model_len=8192,
        replicas=2,
        cpu="8",
        memory="48Gi",
        progress_deadline_seconds=1900,
        rollout_timeout_seconds=3500,
        gpus=2,
        node_selector={"nvidia.com/gpu.present": "true"},
        tolerations=[GPU_TOLERATION],
        gateway_pod_labels={"app.kubernetes.io/name": "envoy"},
    )
    return dataclasses.replace(base, **changes)


def cpu_args(**changes: Any) -> ModelServerArgs:
    return gpu_args(engine=Engine.TRANSFORMERS, gpus=0, node_selector={}, tolerations=[], **changes)


def render(args: ModelServerArgs, name: str = "llm") -> Recording:
    return run_program(lambda: ModelServer(name, args))


def pod_spec(rec: Recording) -> dict[str, Any]:
    return rec.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]


def container(rec: Recording, name: str = "server") -> dict[str, Any]:
    spec = pod_spec(rec)
    return next(c for c in spec["containers"] + spec["initContainers"] if c["name"] == name)


def env_of(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c["env"]}


def test_gpu_replicas_request_exactly_their_gpus() -> None:
    server = container(render(gpu_args()))
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert server["resources"]["requests"] == server["resources"]["limits"]


def test_gpu_pods_tolerate_the_gpu_taint_and_select_gpu_nodes() -> None:
    spec = pod_spec(render(gpu_args()))
    assert GPU_TOLERATION in spec["tolerations"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def test_cpu_engine_asks_for_no_gpu() -> None:
    rec = render(cpu_args())
    server = container(rec)
    assert not any("gpu" in key for key in server["resources"]["limits"])
    assert "tolerations" not in pod_spec(rec)
    assert env_of(server)["ENGINE"] == "transformers"


def test_init_container_fetches_the_model_with_the_same_settings() -> None:
    rec = render(gpu_args())
    fetch, server = container(rec, "fetch-model"), container(rec)
    # The image's ENTRYPOINT runs (no command: the vLLM base has no `python`); the subcommand is the args.
    assert "command" not in fetch and "command" not in server
    assert fetch["args"] == ["fetch"] and server["args"] == ["serve"]
    # Kubernetes counts init containers in the QoS class: requests == limits there too (Guaranteed).
    assert fetch["resources"]["requests"] == fetch["resources"]["limits"]
    assert fetch["image"] == server["image"] == "registry.example/model:1.0"
    assert env_of(fetch) == env_of(server)
    env = env_of(server)
    assert env["MODEL_URI"].endswith("@0e9e39f249a16976918f6564b8830bc894c89659")
    assert env["SERVED_MODEL_NAME"] == "llama-3.1-8b-instruct"
    assert env["MAX_MODEL_LEN"] == "8192"
    cache_mounts = {m["mountPath"] for m in fetch["volumeMounts"]} & {
        m["mountPath"] for m in server["volumeMounts"]
    }
    assert env["MODEL_DIR"] in cache_mounts


def test_probes_cover_the_model_load() -> None:
    server = container(render(gpu_args(startup_timeout_seconds=900)))
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 900
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"]["path"] == HEALTH_PATH


def test_rollout_deadlines_are_the_ones_given() -> None:
    rec = render(gpu_args(progress_deadline_seconds=1900, rollout_timeout_seconds=3500))
    deployment = rec.one(DEPLOYMENT)
    # Kubernetes' own clock, restarted per pod; absent, the API server defaults it to 600 s.
    assert deployment.inputs["spec"]["progressDeadlineSeconds"] == 1900
    # How long `pulumi up` waits for the whole rollout, create and update alike.
    assert deployment.custom_timeouts["create"] == deployment.custom_timeouts["update"] == "3500s"


def test_drain_fits_the_grace_period() -> None:
    rec = render(gpu_args(pre_stop_seconds=20, drain_seconds=90, termination_grace_seconds=130))
    spec, server = pod_spec(rec), container(rec)
    assert server["lifecycle"]["preStop"]["sleep"]["seconds"] == 20
    assert env_of(server)["SHUTDOWN_TIMEOUT"] == "90"
    assert spec["terminationGracePeriodSeconds"] == 130


def test_pod_meets_pod_security_restricted() -> None:
    rec = render(gpu_args())
    spec = pod_spec(rec)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for c in spec["containers"] + spec["initContainers"]:
        ctx = c["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        assert ctx["readOnlyRootFilesystem"] is True
    assert not any("hostPath" in v for v in spec["volumes"])


def test_pod_defaults_that_keep_vllm_alive() -> None:
    rec = render(gpu_args())
    spec = pod_spec(rec)
    assert spec["enableServiceLinks"] is False
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container(rec)["volumeMounts"]


def test_no_kubernetes_api_token_in_the_pod() -> None:
    rec = render(gpu_args())
    assert rec.one("kubernetes:core/v1:ServiceAccount").inputs["automountServiceAccountToken"] is False
    assert pod_spec(rec)["automountServiceAccountToken"] is False


def test_service_and_pdb_select_the_pods() -> None:
    rec = render(gpu_args())
    pod_labels = rec.one(DEPLOYMENT).inputs["spec"]["template"]["metadata"]["labels"]
    service = rec.one("kubernetes:core/v1:Service").inputs["spec"]
    assert service["selector"].items() <= pod_labels.items()
    assert service["ports"][0]["port"] == SERVING_PORT
    pdb = rec.one("kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["maxUnavailable"] == 1


def test_network_policies_deny_by_default_and_allow_only_gateway_and_prometheus() -> None:
    rec = render(gpu_args())
    deny = rec.one(NETWORK_POLICY, "default-deny").inputs["spec"]
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    allow = rec.one(NETWORK_POLICY, "-allow").inputs["spec"]
    sources = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in allow["ingress"]
        for peer in rule["from"]
    ]
    assert sources == ["envoy-gateway-system", "monitoring"]
    assert all(port["port"] == SERVING_PORT for rule in allow["ingress"] for port in rule["ports"])
    egress_ports = sorted(p["port"] for rule in allow["egress"] for p in rule["ports"])
    assert egress_ports == [53, 53, 443]


def test_pod_monitor_scrapes_vllm_metrics_only() -> None:
    assert render(gpu_args()).of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")
    assert not render(gpu_args(pod_monitor=False)).of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")
    assert not render(cpu_args()).of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")


def test_private_hub_token_is_mounted_as_a_file() -> None:
    rec = render(gpu_args(hf_token_secret="hf-token"))
    spec = pod_spec(rec)
    assert {"name": "hf-token", "secret": {"secretName": "hf-token", "defaultMode": 0o440}} in spec["volumes"]
    env = env_of(container(rec, "fetch-model"))
    assert env["HF_TOKEN_PATH"].endswith("/token")
    assert not any("valueFrom" in e for e in container(rec, "fetch-model")["env"])


def test_hub_token_reaches_the_fetch_container_only() -> None:
    """Least privilege: the engine runs offline from the verified cache, so it gets neither the token's
    mount nor its path (issue 15 kind 6)."""
    rec = render(gpu_args(hf_token_secret="hf-token"))
    fetch, server = container(rec, "fetch-model"), container(rec, "server")
    assert "hf-token" in {m["name"] for m in fetch["volumeMounts"]}
    assert "hf-token" not in {m["name"] for m in server["volumeMounts"]}
    assert "HF_TOKEN_PATH" in env_of(fetch) and "HF_TOKEN_PATH" not in env_of(server)


def test_engine_flags_reach_the_server_container_only() -> None:
    rec = render(gpu_args(extra_engine_args=["--enable-chunked-prefill"]))
    fetch, server = container(rec, "fetch-model"), container(rec, "server")
    assert "EXTRA_ENGINE_ARGS" in env_of(server) and "EXTRA_ENGINE_ARGS" not in env_of(fetch)


def test_engine_ingress_names_the_gateway_pods() -> None:
    """Port 8000 has no API key: only the Envoy proxies (and Prometheus) may reach it, not their namespaces."""
    problems = validate_model_server_args(gpu_args(gateway_pod_labels={}))
    assert [p.split(":")[0] for p in problems] == ["gateway_pod_labels"]
    allow = render(gpu_args()).one(NETWORK_POLICY, "-allow")
    for rule in allow.inputs["spec"]["ingress"]:
        assert all(peer.get("podSelector", {}).get("matchLabels") for peer in rule["from"]), rule


def test_file_models_get_no_model_store_egress() -> None:
    rec = render(gpu_args(model_uri="file:///llama/8b", model_volume_claim="models"))
    allow = rec.one(NETWORK_POLICY, "-allow")
    blocks = [
        p["ipBlock"]["cidr"] for rule in allow.inputs["spec"]["egress"] for p in rule["to"] if "ipBlock" in p
    ]
    assert "0.0.0.0/0" not in blocks


def test_file_model_reads_from_a_read_only_claim() -> None:
    rec = render(gpu_args(model_uri="file:///llama/8b", model_volume_claim="models"))
    claim = next(v for v in pod_spec(rec)["volumes"] if v["name"] == "model-source")
    assert claim["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    assert env_of(container(rec))["MODEL_URI"] == "file:///model-source/llama/8b"


def test_two_servers_in_one_program_do_not_collide() -> None:
    def program() -> None:
        ModelServer("a", gpu_args())
        ModelServer("b", gpu_args())

    rec = run_program(program)
    names = [(r.type, r.inputs["metadata"]["name"]) for r in rec.kubernetes_objects()]
    assert len(names) == len(set(names))
    assert {r.name for r in rec.of_type(DEPLOYMENT)} == {"a-deployment", "b-deployment"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"gpus": 0}, "gpus"),
        ({"engine": Engine.TRANSFORMERS}, "gpus"),
        ({"replicas": -1}, "replicas"),
        ({"drain_seconds": 200}, "termination_grace_seconds"),
        ({"model_uri": "file:///x"}, "model_volume_claim"),
        ({"model_volume_claim": "models"}, "model_volume_claim"),
        # Kubernetes' default deadline under a 600 s startup window: a loading rollout would be "failed".
        ({"progress_deadline_seconds": 600}, "progress_deadline_seconds"),
        ({"rollout_timeout_seconds": 1800}, "rollout_timeout_seconds"),
    ],
)
def test_invalid_args_are_rejected_naming_the_field(changes: dict[str, Any], field: str) -> None:
    problems = validate_model_server_args(gpu_args(**changes))
    assert any(p.startswith(f"{field}:") for p in problems), problems
    with pytest.raises(ValueError, match=field):
        render(gpu_args(**changes))


def test_valid_args_have_no_problems() -> None:
    assert validate_model_server_args(gpu_args()) == []
    assert validate_model_server_args(cpu_args()) == []


def test_engine_only_reads_the_verified_model_and_writes_only_emptydirs() -> None:
    rec = render(gpu_args())
    fetch, server = container(rec, "fetch-model"), container(rec)
    cache = env_of(server)["MODEL_DIR"]
    assert {"name": "model-cache", "mountPath": cache, "readOnly": True} in server["volumeMounts"]
    assert {"name": "model-cache", "mountPath": cache} in fetch["volumeMounts"]
    empty_dirs = {v["name"] for v in pod_spec(rec)["volumes"] if "emptyDir" in v}
    writable = {
        m["mountPath"] for m in server["volumeMounts"] if not m.get("readOnly") and m["name"] in empty_dirs
    }
    assert writable == {"/home/inferstack", "/tmp", "/dev/shm"}


def test_extra_engine_args_reach_the_launcher_shell_quoted() -> None:
    import shlex

    args = ["--max-num-seqs", "64", "--chat-template", "/templates/my chat.jinja"]
    env = env_of(container(render(gpu_args(extra_engine_args=args))))
    assert shlex.split(env["EXTRA_ENGINE_ARGS"]) == args


@pytest.mark.parametrize(("engine", "visible_gpus"), [("vllm", 2), ("transformers", 0)])
def test_the_launcher_accepts_the_environment_the_deployment_sets(
    engine: str, visible_gpus: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pod's env, read by the model image's own settings and checks: no unknown or conflicting setting."""
    from model_image.serve import check_serve
    from model_image.settings import ServeSettings

    args = gpu_args() if engine == "vllm" else cpu_args()
    env = env_of(container(render(args)))
    settings_names = {name.upper() for name in ServeSettings.model_fields}
    assert set(env) - settings_names <= {"HF_TOKEN_PATH"}, "a variable the launcher does not read"
    for name in settings_names:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = ServeSettings()  # type: ignore[call-arg]  # every value comes from the environment
    assert settings.engine.value == engine
    assert check_serve(settings, visible_gpus) == []


# --- load_mode stream: no fetch, no cache, the streamer's settings --------------------------------------


def stream_args(**changes: Any) -> ModelServerArgs:
    from model_image.settings import LoadMode

    return gpu_args(model_uri="s3://models/llama-3.1-8b", load_mode=LoadMode.STREAM, **changes)


def test_stream_mode_has_no_fetch_container_and_no_model_cache() -> None:
    copy_spec = pod_spec(render(gpu_args(model_uri="s3://models/llama-3.1-8b")))
    assert [c["name"] for c in copy_spec["initContainers"]] == ["fetch-model"]
    spec = pod_spec(render(stream_args()))
    assert not spec.get("initContainers")
    assert "model-cache" not in [v["name"] for v in spec["volumes"]]
    server = spec["containers"][0]
    assert "model-cache" not in [m["name"] for m in server["volumeMounts"]]
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["LOAD_MODE"] == "stream" and env["MODEL_URI"] == "s3://models/llama-3.1-8b"
    # Copy plans carry no LOAD_MODE (the launcher's default), so they do not change.
    assert "LOAD_MODE" not in {e["name"] for c in copy_spec["containers"] for e in c["env"]}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"engine": Engine.TRANSFORMERS, "gpus": 0}, "needs the vllm engine"),
        ({"model_uri": "hf://acme/chat@" + "a" * 40}, "reads s3:// and gs://"),
    ],
)
def test_stream_mode_is_refused_where_the_streamer_cannot_read(changes: dict[str, Any], words: str) -> None:
    from model_image.settings import LoadMode

    args = gpu_args(load_mode=LoadMode.STREAM, **changes)
    assert any(words in p for p in validate_model_server_args(args))


# --- workload identity hooks (Azure Workload Identity: the SA annotation and the pod label) -----------

WI_CLIENT_ID = "00000000-0000-0000-0000-0000000000c1"


def wi_args(**changes: Any) -> ModelServerArgs:
    return gpu_args(
        model_uri="az://acmemodels/weights/llama/v1",
        service_account_annotations={"azure.workload.identity/client-id": WI_CLIENT_ID},
        pod_labels={"azure.workload.identity/use": "true"},
        **changes,
    )


def test_workload_identity_annotation_lands_on_the_pods_service_account() -> None:
    rec = render(wi_args())
    account = rec.one("kubernetes:core/v1:ServiceAccount").inputs
    assert account["metadata"]["annotations"] == {"azure.workload.identity/client-id": WI_CLIENT_ID}
    # The webhook finds the SA by the pod's serviceAccountName: it must be this one.
    assert pod_spec(rec)["serviceAccountName"] == account["metadata"]["name"]
    # The webhook projects its own token volume; the Kubernetes API token stays unmounted.
    assert account["automountServiceAccountToken"] is False
    assert pod_spec(rec)["automountServiceAccountToken"] is False


def test_pod_labels_reach_the_pod_template_but_never_the_selector() -> None:
    rec = render(wi_args())
    deployment = rec.one(DEPLOYMENT).inputs
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert template_labels["azure.workload.identity/use"] == "true"
    assert "azure.workload.identity/use" not in deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= template_labels.items()
    # Only the pods: the Deployment, Service, PDB and the ServiceAccount keep the component's labels.
    for r in rec.kubernetes_objects():
        assert "azure.workload.identity/use" not in r.inputs["metadata"].get("labels", {}), r.type


def test_without_the_hooks_the_plan_is_unchanged() -> None:
    # What the component emitted before the two arguments existed: no annotations on the ServiceAccount,
    # the component's own labels alone on the pods.
    plain, empty = render(gpu_args()), render(gpu_args(service_account_annotations={}, pod_labels={}))
    assert [(r.type, r.name, r.inputs) for r in plain.resources] == [
        (r.type, r.name, r.inputs) for r in empty.resources
    ]
    assert "annotations" not in plain.one("kubernetes:core/v1:ServiceAccount").inputs["metadata"]
    deployment = plain.one(DEPLOYMENT).inputs
    assert deployment["spec"]["template"]["metadata"]["labels"] == deployment["metadata"]["labels"]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        (
            {"pod_labels": {"app.kubernetes.io/name": "other"}},
            "pod_labels: 'app.kubernetes.io/name' is the component's own",
        ),
        ({"pod_labels": {"azure.workload.identity/use": True}}, "is not a label"),
        ({"pod_labels": {"bad key!": "x"}}, "is not a label"),
        ({"pod_labels": {"ok": "x" * 64}}, "is not a label"),
        ({"service_account_annotations": {"Not_A.Prefix/client-id": "x"}}, "is not an annotation key"),
    ],
)
def test_bad_hooks_are_refused_naming_the_field(changes: dict[str, Any], words: str) -> None:
    problems = validate_model_server_args(gpu_args(**changes))

    assert any(words in p for p in problems), problems


def test_a_non_string_annotation_value_is_refused() -> None:
    problems = validate_model_server_args(gpu_args(service_account_annotations={"a.b/c": 1}))
    assert any("service_account_annotations: a.b/c: the value must be a string" in p for p in problems)
