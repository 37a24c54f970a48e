"""The pod's command must be one the image provides (issue 13, kind 1), and the serving pod is Guaranteed.

Read across both Dockerfiles and every stack's plan (stacks/ and docs/examples/): each image's ENTRYPOINT
names an executable its base image has, no container sets `command` (the image's ENTRYPOINT runs), the
`args` are a subcommand the launcher parses, and the pod's QoS class, init container included, is
Guaranteed. The policies that state the same rules on any plan fail on the defective forms in every stack.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from inferstack.planning.plan import Plan, plan_stack
from inferstack.validation.policies import check_policies, load_rules
from model_image.cli import build_parser
from stacks.config import load_stack_file
from tests.model_image.image_helpers import base_image_default, dockerfile_instructions
from tests.model_servers import model_server_deployments, model_server_manifests

ROOT = Path(__file__).resolve().parents[1]
STACK_FILES = sorted(
    [*(ROOT / "stacks").glob("Pulumi.*.yaml"), *(ROOT / "docs" / "examples").glob("Pulumi.*.yaml")]
)
rules = load_rules()

#: Executables on PATH in each base image, read from its Dockerfile:
#: - vllm/vllm-openai: vllm-project/vllm docker/Dockerfile, stage `vllm-base` (FROM nvidia/cuda devel, no
#:   Python of its own): deadsnakes python${PYTHON_VERSION} registered as `python3` only
#:   (`update-alternatives --install /usr/bin/python3 python3 ...`); the vllm wheel adds `vllm` (the image's
#:   own ENTRYPOINT ["vllm", "serve"]). No `python`. Read at commit dead20ba (CUDA 12.9.1); the v0.31.0 tag
#:   we pin is not in the searchable snapshot.
#: - python:3.11-slim-bookworm: docker-library/python 3.11/slim-bookworm/Dockerfile: `make install` puts
#:   python3 in /usr/local/bin and "make some useful symlinks" links python -> python3.
BASE_EXECUTABLES: dict[str, frozenset[str]] = {
    "vllm/vllm-openai": frozenset({"python3", "vllm"}),
    "python": frozenset({"python", "python3"}),
}
DOCKERFILES = ["Dockerfile", "Dockerfile.cpu"]


def base_image(name: str) -> str:
    """The repository of the first FROM (the runtime stage): 'vllm/vllm-openai', 'python'."""
    return base_image_default(name).split("@")[0].split(":")[0]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_entrypoint_names_an_executable_the_base_image_has(name: str) -> None:
    executables = BASE_EXECUTABLES[base_image(name)]
    (entry,) = [json.loads(rest) for word, rest in dockerfile_instructions(name) if word == "ENTRYPOINT"]
    assert entry[0] in executables, (
        f"{name}: ENTRYPOINT runs {entry[0]!r}; {base_image(name)} has {executables}"
    )
    assert entry[1:] == ["-m", "model_image"]
    # Build-time RUNs of the launcher use an interpreter the base has too (bake mode's verify).
    for word, rest in dockerfile_instructions(name):
        if word == "RUN" and rest.split()[0].startswith("python"):
            assert rest.split()[0] in executables, f"{name}: RUN {rest}"


def test_both_images_share_one_entrypoint() -> None:
    entries = {
        rest for name in DOCKERFILES for word, rest in dockerfile_instructions(name) if word == "ENTRYPOINT"
    }
    assert len(entries) == 1, entries


_PLANS: dict[Path, Plan] = {}


def plan_of(path: Path) -> Plan:
    if path not in _PLANS:
        _PLANS[path] = plan_stack(
            load_stack_file(path), path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        )
    return copy.deepcopy(_PLANS[path])


def serving_deployments(plan: Plan) -> list[dict[str, Any]]:
    """Every Deployment: the model servers and, with prefix-aware routing, the endpoint pickers."""
    deployments = [m for m in plan.manifests() if m["kind"] == "Deployment"]
    assert deployments, "every stack serves a model"
    return deployments


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_stack_runs_the_image_entrypoint_with_launcher_args(path: Path) -> None:
    parser = build_parser()
    # The model image's launcher runs in the model servers; an endpoint picker runs upstream's image.
    for deployment in model_server_manifests(plan_of(path).manifests()):
        pod = deployment["spec"]["template"]["spec"]
        expected = {"fetch-model": "fetch", "server": "serve"}
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            assert "command" not in c, (
                f"{path.name} {c['name']}: command {c['command']} overrides the ENTRYPOINT"
            )
            parsed = parser.parse_args(c["args"])  # exits (fails the test) on args the launcher refuses
            assert parsed.command == expected[c["name"]]


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_stack_serving_pod_is_guaranteed(path: Path) -> None:
    for deployment in serving_deployments(plan_of(path)):
        assert rules.pod_qos_class(deployment["spec"]["template"]["spec"]) == "Guaranteed"


# --- the policies fail on the defective forms, in every stack ------------------------------------------


def _recorded_pods(plan: Plan) -> list[dict[str, Any]]:
    """The pod templates of the model servers (one per model or variant), as recorded: editable in place."""
    return [d.inputs["spec"]["template"]["spec"] for d in model_server_deployments(plan.recording)]


def _mandatory(plan: Plan, policy: str) -> list[str]:
    return [f.message for f in check_policies(plan) if f.policy == policy and f.mandatory]


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_a_python_command_fails_the_policy_in_every_stack(path: Path) -> None:
    plan = plan_of(path)
    assert _mandatory(plan, "containers-run-image-entrypoint") == []
    pods = _recorded_pods(plan)
    # The form issue 13 found: `command` naming an interpreter the vLLM image does not have, in every
    # model server; each of its two containers is reported.
    for pod in pods:
        for c, sub in ((pod["initContainers"][0], "fetch"), (pod["containers"][0], "serve")):
            c["command"] = ["python", "-m", "model_image", sub]
    messages = _mandatory(plan, "containers-run-image-entrypoint")
    assert len(messages) == 2 * len(pods) and all("remove command" in m for m in messages), messages


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_a_burstable_init_container_fails_the_qos_policy_in_every_stack(path: Path) -> None:
    plan = plan_of(path)
    findings = [f for f in check_policies(plan) if f.policy == "serving-pods-guaranteed"]
    assert findings == []
    # The form issue 13 found: the fetch init container with requests below its limits, in each model
    # server in turn (every one of them is checked, not only the first).
    for pod in _recorded_pods(plan):
        saved = pod["initContainers"][0]["resources"]
        pod["initContainers"][0]["resources"] = {
            "requests": {"cpu": "1", "memory": "2Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        }
        (finding,) = [f for f in check_policies(plan) if f.policy == "serving-pods-guaranteed"]
        assert "Burstable" in finding.message and "fetch-model cpu" in finding.message
        assert finding.mandatory == (plan.config.tier.value == "prod")
        pod["initContainers"][0]["resources"] = saved


# --- the rules on their own ----------------------------------------------------------------------------


def container(name: str, requests: dict[str, str] | None, limits: dict[str, str] | None) -> dict[str, Any]:
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v is not None}
    return {"name": name, "image": "i", "resources": resources}


GUARANTEED = {"cpu": "2", "memory": "4Gi"}


@pytest.mark.parametrize(
    ("init", "main", "qos"),
    [
        (None, container("s", GUARANTEED, GUARANTEED), "Guaranteed"),
        # Equal quantities written differently are equal (qos.go compares with Quantity.Cmp).
        (None, container("s", {"cpu": "2000m", "memory": "4096Mi"}, GUARANTEED), "Guaranteed"),
        # Requests default to limits (API server defaulting runs before the QoS class is computed).
        (container("i", None, GUARANTEED), container("s", GUARANTEED, GUARANTEED), "Guaranteed"),
        # Init containers count (qos.go: allContainers = Containers + InitContainers).
        (
            container("i", {"cpu": "1", "memory": "2Gi"}, GUARANTEED),
            container("s", GUARANTEED, GUARANTEED),
            "Burstable",
        ),
        (container("i", None, None), container("s", GUARANTEED, GUARANTEED), "Burstable"),
        (None, container("s", {"cpu": "1"}, None), "Burstable"),
        (None, container("s", None, None), "BestEffort"),
    ],
)
def test_pod_qos_class_follows_kubernetes(
    init: dict[str, Any] | None, main: dict[str, Any], qos: str
) -> None:
    spec = {"containers": [main], **({"initContainers": [init]} if init else {})}
    assert rules.pod_qos_class(spec) == qos


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", "0.5"), ("4Gi", str(4 * 2**30)), ("2", "2"), ("1e3", "1000"), ("1.5G", "1500000000"), (3, "3")],
)
def test_parse_quantity(text: Any, value: str) -> None:
    assert rules.parse_quantity(text) == rules.Decimal(value)


@pytest.mark.parametrize("text", ["", "two", "4GB", "1..0", True, None])
def test_parse_quantity_refuses_what_is_not_a_quantity(text: Any) -> None:
    assert rules.parse_quantity(text) is None


def test_command_policy_names_the_container_and_the_fix() -> None:
    props = {
        "kind": "Deployment",
        "metadata": {"name": "llm", "namespace": "inferstack"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/component": "model-server"}},
                "spec": {"containers": [{"name": "server", "image": "i", "command": ["python"]}]},
            }
        },
    }
    (message,) = rules.containers_run_image_entrypoint("kubernetes:apps/v1:Deployment", props)
    assert message.startswith("Deployment/inferstack/llm container server: sets command ['python']")
    assert "args" in message
    del props["spec"]["template"]["spec"]["containers"][0]["command"]  # type: ignore[index]
    assert rules.containers_run_image_entrypoint("kubernetes:apps/v1:Deployment", props) == []


def test_command_policy_leaves_other_workloads_alone() -> None:
    """A Job or DaemonSet beside the model server may run a command its own image has (busybox, kubectl)."""
    job = {
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": "inferstack"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "m", "image": "busybox", "command": ["sh"]}]}}
        },
    }
    assert rules.containers_run_image_entrypoint("kubernetes:batch/v1:Job", job) == []
