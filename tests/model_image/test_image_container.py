"""The images built from their Dockerfiles and the planned pods run in them under Docker (`make e2e`).

- The CPU image (model_image/Dockerfile.cpu) on a Debian base made here; the local stack planned with the
  tiny model as a file:// model on a PersistentVolumeClaim (a host folder here), and again with an
  s3:// model in moto; the planned Deployment's init container, then its server, run as the kubelet
  would (tests/pod_harness.py): pod security context, read-only root, emptyDirs, /dev/shm tmpfs, probes.
  The official openai client lists the model, completes a chat, streams; SIGTERM after preStop drains an
  open stream and the container exits 0.
- The GPU image's contract (model_image/Dockerfile's own layers on a stand-in base: Python 3.12 as
  python3, no `python`, uv): dev-aws's planned GPU pod's init container fetches the s3:// model from moto
  with the pod's security context; its server container starts the launcher, which refuses for want of a
  GPU with its own message (vLLM itself is not in the stand-in: unverified here).
- Broken variants fail with the container and the cause: a command the image lacks, a path the read-only
  root cannot write.

Runs when INFERSTACK_E2E=1 (`make e2e`, which .ci/run calls); then a missing engine or a failed build is
a failure, never a skip. With a registry at hand, E2E_CPU_BASE (e.g. the Dockerfile's default
python:3.11-slim-bookworm@sha256:...) and E2E_GPU_BASE (the vLLM image) replace the bases made here.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from image_helpers import REPO_ROOT, free_port, start_server, stop

from tests import endpoint_checks, image_build
from tests.pod_harness import PlannedPod, PodRunError, deployment_pod, load_manifests

pytestmark = pytest.mark.skipif(
    os.environ.get("INFERSTACK_E2E") != "1",
    reason="builds the images and runs the planned pods under Docker: `make e2e` (INFERSTACK_E2E=1)",
)

WORK = REPO_ROOT / "build" / "e2e"
SERVED = "acme/tiny-chat"
CLAIM = "e2e-model"
# Long enough to be open when SIGTERM arrives after preStop, short enough to drain in seconds. 200 was not:
# the tiny model (2 layers, 32 wide) streamed them all in the time `docker kill` took, so the drain was
# sometimes never exercised (1 fresh-clone CI run in 6). Within the model's 2048 positions and max_model_len.
DRAINED_TOKENS = 1500


@pytest.fixture(scope="module")
def engine() -> Iterator[None]:
    WORK.mkdir(parents=True, exist_ok=True)
    with image_build.docker_engine(WORK):
        yield


def plan(stack_file: Path, out: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "plan", "--stack-file", str(stack_file), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return load_manifests(out / "manifests.yaml")


def stack_variant(name: str, base: str, model: dict[str, Any], dest: Path) -> Path:
    """stacks/Pulumi.`base`.yaml with the model section replaced (the tiny model, never a download)."""
    doc = yaml.safe_load((REPO_ROOT / "stacks" / f"Pulumi.{base}.yaml").read_text())
    doc["config"]["inferstack:model"] = model
    path = dest / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def planned_image(manifests: list[dict[str, Any]]) -> str:
    pod, _ = deployment_pod(manifests, "model-server")
    return str(pod["containers"][0]["image"])


@pytest.fixture(scope="module")
def local_plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    dest = tmp_path_factory.mktemp("stacks")
    tiny = {"served_name": SERVED, "parameters_b": 0.001, "max_model_len": 2048}
    files = {
        "e2e-file": stack_variant(
            "e2e-file", "local", {"uri": "file:///tiny-chat", "volume_claim": CLAIM, **tiny}, dest
        ),
        "e2e-s3": stack_variant("e2e-s3", "local", {"uri": "s3://models/tiny-chat", **tiny}, dest),
    }
    return {name: plan(path, dest / "plan" / name) for name, path in files.items()}


@pytest.fixture(scope="module")
def cpu_image(engine: None, local_plans: dict[str, list[dict[str, Any]]]) -> str:
    """The CPU image built from model_image/Dockerfile.cpu, tagged as the local stack's pods name it."""
    tag = planned_image(local_plans["e2e-file"])
    base = image_build.cpu_base(WORK)
    wheels = image_build.wheelhouse(
        REPO_ROOT / "model_image" / f"requirements-cpu-{_arch()}.txt", WORK / "wheels-cpu"
    )
    with image_build.served(wheels) as url:
        image_build.build_image("Dockerfile.cpu", tag, base, url)
    return tag


def _arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}[os.uname().machine]


@pytest.fixture(scope="module")
def model_claim(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PersistentVolumeClaim's contents: tiny-chat/ with its SHA256SUMS, world-readable as a volume
    provisioned for a model would be (the harness uses a claim's folder as given)."""
    root = tmp_path_factory.mktemp("claim")
    shutil.copytree(tiny_model, root / "tiny-chat")
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


@pytest.fixture(scope="module")
def moto(tiny_model: Path) -> Iterator[dict[str, str]]:
    """moto's S3 on the Docker bridge's side of this host, with the tiny model in two buckets; returns the
    environment that points a container at it (what IRSA or a credentials Secret gives a real pod)."""
    import boto3

    port = free_port()
    proc = start_server([str(Path(sys.executable).parent / "moto_server"), "-H", "0.0.0.0", "-p", str(port)],
                        f"http://127.0.0.1:{port}/")  # fmt: skip
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for bucket, prefix in (
        ("models", "tiny-chat"),
        ("example-inferstack-dev-models", "llama-3.1-8b-instruct"),
    ):
        s3.create_bucket(Bucket=bucket)
        for p in sorted(tiny_model.rglob("*")):
            if p.is_file():
                s3.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(tiny_model).as_posix()}")
    try:
        yield {
            "AWS_ENDPOINT_URL": f"http://host.docker.internal:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    finally:
        stop(proc)


def run_pod(manifests: list[dict[str, Any]], work: Path, **kwargs: Any) -> PlannedPod:
    pod_spec, namespace = deployment_pod(manifests, "model-server")
    return PlannedPod(
        copy.deepcopy(pod_spec),
        manifests,
        namespace,
        work,
        sandbox_image=image_build.cpu_base(WORK),
        **kwargs,
    )


def test_cpu_pod_serves_the_file_model_and_drains_on_sigterm(
    cpu_image: str, local_plans: dict[str, list[dict[str, Any]]], model_claim: Path, tmp_path: Path
) -> None:
    import openai

    with run_pod(local_plans["e2e-file"], tmp_path, claims={CLAIM: model_claim}) as pod:
        pod.start()
        assert pod.exit_codes == {"fetch-model": 0}
        pod.wait_started("server")
        server = pod.pod_spec["containers"][0]
        assert pod.probe(server, "livenessProbe").ok
        client = openai.OpenAI(
            base_url=f"{pod.base_url(8000)}/v1", api_key="unused", max_retries=0, timeout=60
        )
        endpoint_checks.assert_models_list(client, SERVED)
        endpoint_checks.assert_chat_completion(client, SERVED)
        endpoint_checks.assert_streaming_chat(client, SERVED)
        endpoint_checks.assert_unknown_model_rejected(client)

        streams: list[Any] = []
        code, _ = pod.stop(
            "server",
            before_sigterm=lambda: streams.append(
                endpoint_checks.open_stream(client, SERVED, DRAINED_TOKENS)
            ),
        )
        endpoint_checks.assert_drained(streams[0], DRAINED_TOKENS)
        log = pod.logs("server")
        # 0: uvicorn 0.54 re-raises the SIGTERM it handled once its graceful shutdown is done
        # (uvicorn/server.py capture_signals); model_image/drain.py, the container's PID 1, turns a death by
        # the signal it forwarded into exit 0 (under GNU timeout it was 143, reason Error). 137 would be the
        # SIGKILL at the end of the grace period; "Finished server process" is uvicorn's last line.
        assert code == 0, f"the server exited {code} after SIGTERM:\n{log[-3000:]}"
        assert "Waiting for connections to close" in log, "the stream was not open when SIGTERM arrived"
        assert "Finished server process" in log, log[-3000:]
        assert pod.over_size_limit() == []


def test_cpu_pod_fetches_the_s3_model(
    cpu_image: str, local_plans: dict[str, list[dict[str, Any]]], moto: dict[str, str], tmp_path: Path
) -> None:
    import openai

    with run_pod(local_plans["e2e-s3"], tmp_path, extra_env=moto) as pod:
        pod.start()
        assert pod.exit_codes == {"fetch-model": 0}
        pod.wait_started("server")
        client = openai.OpenAI(
            base_url=f"{pod.base_url(8000)}/v1", api_key="unused", max_retries=0, timeout=60
        )
        endpoint_checks.assert_models_list(client, SERVED)
        endpoint_checks.assert_chat_completion(client, SERVED)


@pytest.fixture(scope="module")
def gpu_image(engine: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, Any]]]:
    """model_image/Dockerfile's layers on the stand-in base, tagged as dev-aws's planned image."""
    manifests = plan(REPO_ROOT / "stacks" / "Pulumi.dev-aws.yaml", tmp_path_factory.mktemp("plan-dev-aws"))
    tag = planned_image(manifests)
    base = os.environ.get("E2E_GPU_BASE") or image_build.gpu_stand_in(WORK)
    wheels = image_build.wheelhouse(
        REPO_ROOT / "model_image" / "requirements.txt", WORK / "wheels-gpu", python_version="3.12"
    )
    with image_build.served(wheels) as url:
        image_build.build_image("Dockerfile", tag, base, url)
    return tag, manifests


def test_gpu_pod_fetch_runs_in_the_gpu_image(
    gpu_image: tuple[str, list[dict[str, Any]]], moto: dict[str, str], tmp_path: Path
) -> None:
    _, manifests = gpu_image
    with run_pod(manifests, tmp_path, extra_env=moto, without_devices=True) as pod:
        with pytest.raises(PodRunError) as err:
            pod.start()
            pod.wait_started("server")
        # The init container ran the launcher (python3 -m model_image fetch) and fetched the model.
        assert pod.exit_codes.get("fetch-model") == 0, str(err.value)
        fetched = sorted(p.name for p in (tmp_path / "volumes" / "model-cache").rglob("*") if p.is_file())
        assert {"config.json", "model.safetensors", ".inferstack-verified.json"} <= set(fetched), fetched
        # The server container ran the launcher too, which refused for want of a GPU: its own message,
        # not an exec failure of the image's entrypoint.
        message = str(err.value)
        assert "container server exited" in message
        assert "ENGINE=vllm needs a GPU, but none is visible" in message, message


def test_a_command_the_image_lacks_fails_naming_the_container(
    cpu_image: str, local_plans: dict[str, list[dict[str, Any]]], model_claim: Path, tmp_path: Path
) -> None:
    manifests = copy.deepcopy(local_plans["e2e-file"])
    pod_spec, _ = deployment_pod(manifests, "model-server")
    pod_spec["containers"][0]["command"] = ["python"]  # the Debian base, like vLLM's, has only python3
    with run_pod(manifests, tmp_path, claims={CLAIM: model_claim}) as pod, pytest.raises(PodRunError) as err:
        pod.start()
    message = str(err.value)
    assert "container server did not start" in message and '"python"' in message, message


def test_a_write_outside_the_volumes_fails_naming_the_container(
    cpu_image: str, local_plans: dict[str, list[dict[str, Any]]], model_claim: Path, tmp_path: Path
) -> None:
    manifests = copy.deepcopy(local_plans["e2e-file"])
    pod_spec, _ = deployment_pod(manifests, "model-server")
    init = pod_spec["initContainers"][0]
    # Without its emptyDir, /models is the image's own folder: owned by the pod's user (Dockerfile.cpu),
    # but on the read-only root filesystem.
    init["volumeMounts"] = [m for m in init["volumeMounts"] if m["mountPath"] != "/models"]
    with run_pod(manifests, tmp_path, claims={CLAIM: model_claim}) as pod, pytest.raises(PodRunError) as err:
        pod.start()
    message = str(err.value)
    assert "init container fetch-model exited 1" in message and "/models is not writable" in message, message


def test_bake_mode_builds_only_a_model_that_matches_the_sources_sums(
    cpu_image: str, tiny_model: Path, tmp_path: Path
) -> None:
    """Dockerfile.cpu with BAKE=true: the model fetched into bake/, the source's SHA256SUMS beside it, and
    `verify --sums` in the build. A record rewritten to agree with a tampered file fails the build."""
    bake = REPO_ROOT / "bake"
    assert not bake.exists(), f"{bake} exists: move it away, make e2e builds its own"
    uri = f"file://{tiny_model}"
    env = {**os.environ, "MODEL_URI": uri, "MODEL_DIR": str(bake), "PYTHONPATH": str(REPO_ROOT)}
    try:
        fetched = subprocess.run([sys.executable, "-m", "model_image", "fetch"], env=env, capture_output=True,
                                 text=True, timeout=120, cwd=REPO_ROOT)  # fmt: skip
        assert fetched.returncode == 0, fetched.stderr
        shutil.copy(tiny_model / "SHA256SUMS", bake / "source.SHA256SUMS")
        base = image_build.cpu_base(WORK)
        wheels = WORK / "wheels-cpu"
        with image_build.served(wheels) as url:
            image_build.build_image("Dockerfile.cpu", "inferstack-e2e/baked:test", base, url,
                                    ["BAKE=true", f"MODEL_URI={uri}", "SOURCE_SUMS=source.SHA256SUMS"])  # fmt: skip
            folder = Path(fetched.stdout.strip().splitlines()[-1])
            config = folder / "config.json"
            folder.chmod(0o755)
            config.chmod(0o644)
            config.write_text(config.read_text().replace("2", "3", 1))
            record = folder / ".inferstack-verified.json"
            record.chmod(0o644)
            data = json.loads(record.read_text())
            for f in data["files"]:
                if f["path"] == "config.json":
                    f["digest"]["hex"] = hashlib.sha256(config.read_bytes()).hexdigest()
            record.write_text(json.dumps(data))
            with pytest.raises(image_build.BuildError, match=r"config\.json: recorded as sha256"):
                image_build.build_image("Dockerfile.cpu", "inferstack-e2e/baked:tampered", base, url,
                                        ["BAKE=true", f"MODEL_URI={uri}", "SOURCE_SUMS=source.SHA256SUMS"])  # fmt: skip
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(bake)], check=False)
        shutil.rmtree(bake, ignore_errors=True)
