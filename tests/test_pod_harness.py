"""The pod-to-Docker translation of tests/pod_harness.py, without Docker: what `make e2e` runs must be
the planned pod's security context, volumes, environment and resources, field for field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from inferstack.cli import main
from tests.pod_harness import (
    PodRunError,
    PodVolume,
    container_args,
    container_env,
    deployment_pod,
    expand,
    load_manifests,
    unsupported_fields,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_pod(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("plan")
    assert main(["plan", "local", "--out", str(out)]) == 0
    manifests = load_manifests(out / "manifests.yaml")
    pod, _ = deployment_pod(manifests, "model-server")
    return pod, manifests


VOLUMES = {
    "home": PodVolume("home", "bind", "/host/home"),
    "scratch": PodVolume("scratch", "bind", "/host/scratch"),
    "model-cache": PodVolume("model-cache", "bind", "/host/cache"),
    "dshm": PodVolume("dshm", "volume", "pod-dshm"),
}


def args_for(pod: dict[str, Any], container: dict[str, Any], **kw: Any) -> list[str]:
    env = {"A": "1"}
    return container_args(
        pod, container, env, VOLUMES, "sandbox", "pod-server", image_user="10001:10001", **kw
    )


def pairs(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def test_the_planned_server_runs_with_the_pods_security_context(
    local_pod: tuple[dict[str, Any], Any],
) -> None:
    pod, _ = local_pod
    server = pod["containers"][0]
    args = args_for(pod, server)
    assert pairs(args, "--user") == ["10001:10001"]
    assert pairs(args, "--group-add") == ["10001"]  # fsGroup
    assert "--read-only" in args
    assert pairs(args, "--cap-drop") == ["ALL"]
    assert pairs(args, "--security-opt") == ["no-new-privileges"]
    assert pairs(args, "--memory") == [str(4 * 2**30)]
    assert pairs(args, "--network") == ["container:sandbox"]
    mounts = pairs(args, "--mount")
    assert "type=bind,source=/host/cache,target=/models,readonly" in mounts  # read-only in the server
    assert "type=volume,source=pod-dshm,target=/dev/shm" in mounts
    assert "type=bind,source=/host/home,target=/home/inferstack" in mounts
    # No command in the pod: the image's ENTRYPOINT stays, the args follow the image name.
    assert "--entrypoint" not in args
    assert args[-2:] == [server["image"], "serve"]


def test_a_command_replaces_the_entrypoint_and_expands_vars(local_pod: tuple[dict[str, Any], Any]) -> None:
    pod, _ = local_pod
    server = copy.deepcopy(pod["containers"][0])
    server["command"] = ["python3", "-m", "x"]
    server["args"] = ["--a=$(A)", "$$(A)", "$(UNSET)"]
    args = args_for(pod, server)
    assert pairs(args, "--entrypoint") == ["python3"]
    assert args[-6:] == [server["image"], "-m", "x", "--a=1", "$(A)", "$(UNSET)"]


def test_env_is_built_in_order_with_expansion(local_pod: tuple[dict[str, Any], Any]) -> None:
    _, manifests = local_pod
    container = {"name": "c", "env": [{"name": "X", "value": "a"}, {"name": "Y", "value": "$(X)-b"}]}
    assert container_env(container, manifests, "inferstack", "p") == {"X": "a", "Y": "a-b"}
    assert expand("$(Y)", {}) == "$(Y)"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda c, p: c.update(imagePullPolicy="Always"), "imagePullPolicy Always"),
        (lambda c, p: c["securityContext"].update(runAsUser=0), "would run as root"),
        (lambda c, p: c["resources"]["limits"].update({"nvidia.com/gpu": "1"}), "device plugin"),
        (lambda c, p: c["volumeMounts"].append({"name": "nope", "mountPath": "/x"}), "names no pod volume"),
        (lambda c, p: c["securityContext"].update(privileged=True), "privileged"),
        (lambda c, p: c["securityContext"].update(seccompProfile={"type": "Localhost"}), "seccompProfile"),
    ],
)
def test_what_the_harness_cannot_honour_is_refused_by_name(
    local_pod: tuple[dict[str, Any], Any], change: Any, error: str
) -> None:
    pod, _ = local_pod
    pod = copy.deepcopy(pod)
    server = pod["containers"][0]
    change(server, pod)
    with pytest.raises(PodRunError, match=error) as err:
        args_for(pod, server)
    assert "container server" in str(err.value)


def test_a_non_numeric_image_user_fails_run_as_non_root(local_pod: tuple[dict[str, Any], Any]) -> None:
    pod, _ = local_pod
    pod = copy.deepcopy(pod)
    del pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]
    with pytest.raises(PodRunError, match="non-numeric"):
        container_args(pod, pod["containers"][0], {}, VOLUMES, "s", "n", image_user="inferstack")


def test_gpu_limits_are_dropped_only_when_asked_and_noted(local_pod: tuple[dict[str, Any], Any]) -> None:
    pod, _ = local_pod
    pod = copy.deepcopy(pod)
    server = pod["containers"][0]
    server["resources"]["limits"]["nvidia.com/gpu"] = "1"
    server["resources"]["limits"]["cpu"] = "64"
    notes: list[str] = []
    args = args_for(pod, server, notes=notes, without_devices=True)
    assert float(pairs(args, "--cpus")[0]) <= 64
    assert any("nvidia.com/gpu" in n for n in notes)
    assert any("capped" in n for n in notes)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda p: p["securityContext"].update(sysctls=[{"name": "net.core.somaxconn", "value": "1024"}]),
            "sysctls",
        ),
        (
            lambda p: p["containers"][0].update(lifecycle={"postStart": {"exec": {"command": ["true"]}}}),
            "postStart",
        ),
        (lambda p: p["initContainers"][0].update(restartPolicy="Always"), "native sidecar"),
        (lambda p: p.update(hostNetwork=True), "hostNetwork"),
        (lambda p: p["containers"][0]["volumeMounts"][0].update(subPathExpr="$(POD)"), "subPathExpr"),
        (lambda p: p["containers"][0]["readinessProbe"].update(successThreshold=2), "successThreshold"),
    ],
)
def test_fields_the_harness_does_not_reproduce_are_named(
    local_pod: tuple[dict[str, Any], Any], change: Any, named: str
) -> None:
    pod, _ = local_pod
    pod = copy.deepcopy(pod)
    assert unsupported_fields(pod) == []  # the planned pod: everything in it is reproduced
    change(pod)
    assert any(named in field for field in unsupported_fields(pod)), unsupported_fields(pod)
