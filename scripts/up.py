#!/usr/bin/env python3
"""`make up STACK=<name>` and `make destroy STACK=<name>`: deploy a stack from a laptop, or remove it.

Runs on the system `python3` with the standard library only, because its first job is to check the
prerequisites *before* the project venv exists (building it takes minutes; a missing Pulumi CLI must not
be found out after that). Steps of `up`:

1. prerequisites, within seconds: a Python >= 3.11 that can make a venv (the one running this script,
   else python3.13, python3.12, python3.11, python3 on PATH), the Pulumi CLI always; an onprem-platform
   stack also kubectl, and, when its image is side-loaded (`serving.image: localhost/...`, in no
   registry), Docker with a reachable daemon and BuildKit (`docker buildx`), and kind (or k3d / minikube
   where such a context is already chosen); aws stacks the AWS CLI and credentials, gcp stacks gcloud,
   gke-gcloud-auth-plugin and Application Default Credentials, azure stacks the Azure CLI signed in and
   kubelogin. Every missing one is listed with a
   one-line install hint for Linux and macOS; exit 2.
2. the venv: `make runtime-core PYTHON=<that Python>` for onprem stacks (no cloud SDKs), `make runtime`
   for aws, gcp and azure.
3. the stack file, validated offline (`inferstack plan`, exit 2 with every problem).
4. side-loaded image only: the memory and CPU the plan requests against what Docker's VM has (exit 2
   before anything is created when it does not fit); the cluster (an existing kind cluster "inferstack" whose
   node publishes the gateway's node ports, a k3d or minikube current context, or a new kind cluster made
   from deploy/kind/cluster.yaml, remembered in .pulumi-state so `destroy` can offer to delete it); the
   image built from model_image/ with BuildKit and the stack's tag, and loaded into the cluster.
5. `pulumi up` with a local file backend (.pulumi-state) and a passphrase secrets provider (a random
   passphrase in .pulumi-state/passphrase, mode 600), so no Pulumi Cloud account is needed. After a new
   kind cluster replaced one the state still describes, `pulumi refresh` first; after a rebuilt image
   (its ID differs from the one loaded last time), the model server's pods started again on it.
6. the endpoint: its hostname must resolve, then `GET <url>/v1/models` with the generated key and the
   stack's CA until it answers 200 (bounded: UP_WAIT_SECONDS, default 600), then the URL, the CA file, a
   curl line and an openai-python snippet.

Environment (all optional):
  PULUMI_BACKEND_URL             default file://<project>/.pulumi-state
  PULUMI_CONFIG_PASSPHRASE[_FILE] default .pulumi-state/passphrase, created on first use
  PULUMI_ARGS                    extra flags for `pulumi up` / `pulumi destroy` (e.g. --yes)
  KIND_CLUSTER_NAME              the kind cluster to use or create (default inferstack)
  UP_WAIT_SECONDS                how long to wait for the endpoint (default 600)
  DELETE_CLUSTER=yes|no          `destroy`: delete the kind cluster `up` created, without asking
  MAKE                           the make to run for the venv targets (the Makefile passes its own)

Exit status: 0 done, 1 a step failed (its message says which and what to look at), 2 a prerequisite or
the stack file is wrong (nothing was changed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KIND_CONFIG = Path("deploy/kind/cluster.yaml")
#: The kind release deploy/kind/cluster.yaml's node image comes from (its default node image).
KIND_VERSION = (0, 32, 0)
#: Seconds a prerequisite probe (docker info, aws sts, ...) may take before it counts as failed.
PROBE_TIMEOUT_S = 20
STATE_DIR = Path(".pulumi-state")
#: The Pulumi project name (Pulumi.yaml `name:`), under which the file backend keeps its stacks.
PROJECT = "inferstack"
#: The oldest Python the project supports (pyproject's requires-python), and where to look for one, best
#: first, after the interpreter running this script.
MIN_PYTHON = (3, 11)
PYTHON_CANDIDATES = ("python3.13", "python3.12", "python3.11", "python3")


class Stop(Exception):
    """End the run with `message` on stderr and exit status `code` (never a traceback)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


# --- install hints ------------------------------------------------------------------------------------


def _kind_linux_hint() -> str:
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "amd64")
    version = ".".join(map(str, KIND_VERSION))
    # kind's quick start (site/content/docs/user/quick-start.md): release binaries from kind.sigs.k8s.io/dl.
    return (
        f"curl -Lo kind https://kind.sigs.k8s.io/dl/v{version}/kind-linux-{arch} && chmod +x kind "
        "&& sudo mv kind /usr/local/bin/"
    )


#: tool -> (what it is for, Linux install, macOS install)
INSTALL: dict[str, tuple[str, str, str]] = {
    "pulumi": (
        "the Pulumi CLI",
        "curl -fsSL https://get.pulumi.com | sh",
        "brew install pulumi/tap/pulumi",
    ),
    "docker": (
        "Docker with BuildKit (Docker 23+ or the docker-buildx plugin), to build the serving image",
        # Debian 12's docker.io is Docker 20.10 and Debian 12 packages no docker-buildx: docker-ce from
        # Docker's own repository brings docker-buildx-plugin.
        "Docker Engine from https://docs.docker.com/engine/install/ (docker-ce + docker-buildx-plugin), or "
        "the distro's docker.io + docker-buildx where it packages both (Ubuntu 22.04+, Debian 13)",
        "brew install --cask docker, then start Docker Desktop",
    ),
    "kind": ("kind, the local Kubernetes cluster", _kind_linux_hint(), "brew install kind"),
    "kubectl": (
        "kubectl",
        "https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/",
        "brew install kubectl",
    ),
    "k3d": (
        "k3d, for the k3d kube context",
        "curl -s https://raw.githubusercontent.com/k3d-io/k3d/main/install.sh | bash",
        "brew install k3d",
    ),
    "minikube": (
        "minikube, for the minikube kube context",
        "https://minikube.sigs.k8s.io/docs/start/",
        "brew install minikube",
    ),
    "aws": (
        "the AWS CLI v2 (the EKS kubeconfig runs `aws eks get-token`)",
        "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html",
        "brew install awscli",
    ),
    "gcloud": (
        "the gcloud CLI",
        "https://cloud.google.com/sdk/docs/install",
        "brew install --cask google-cloud-sdk",
    ),
    "az": (
        "the Azure CLI (`pulumi up` signs in with it, and kubelogin takes its tokens)",
        "https://learn.microsoft.com/cli/azure/install-azure-cli-linux",
        "brew install azure-cli",
    ),
    "kubelogin": (
        "kubelogin (the AKS kubeconfig runs `kubelogin get-token`; local accounts are off)",
        "az aks install-cli, or https://github.com/Azure/kubelogin/releases",
        "brew install Azure/kubelogin/kubelogin",
    ),
    "gke-gcloud-auth-plugin": (
        "gke-gcloud-auth-plugin (the GKE kubeconfig runs it)",
        "gcloud components install gke-gcloud-auth-plugin (apt: google-cloud-cli-gke-gcloud-auth-plugin)",
        "gcloud components install gke-gcloud-auth-plugin",
    ),
}


def missing(tool: str) -> str:
    what, linux, macos = INSTALL[tool]
    return f"`{tool}` is not on PATH: {what}. Install on Linux: {linux}; on macOS: {macos}"


# --- running commands ---------------------------------------------------------------------------------


@dataclass
class Shell:
    """Runs the external tools; `cwd` is the project root. Kept in one place so tests see every call."""

    cwd: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def which(self, tool: str) -> bool:
        return shutil.which(tool, path=self.env.get("PATH")) is not None

    def probe(self, argv: Sequence[str], timeout: float = PROBE_TIMEOUT_S) -> tuple[int, str]:
        """Run quietly; (exit status, stdout + stderr). A timeout or a missing tool is a failure, not a crash."""
        try:
            done = subprocess.run(
                list(argv), cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return 127, str(err)
        return done.returncode, (done.stdout or "") + (done.stderr or "")

    def query(self, argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, str]:
        """Run quietly; (exit status, stdout alone, for JSON). A missing tool is a failure, not a crash."""
        try:
            done = subprocess.run(
                list(argv), cwd=self.cwd, env=env or self.env, capture_output=True, text=True
            )
        except OSError as err:
            return 127, str(err)
        return done.returncode, done.stdout or ""

    def output(self, argv: Sequence[str], what: str, env: dict[str, str] | None = None) -> str:
        """Run and return stdout; stderr passes through. Raises Stop naming `what` on failure."""
        try:
            done = subprocess.run(
                list(argv), cwd=self.cwd, env=env or self.env, stdout=subprocess.PIPE, text=True
            )
        except OSError as err:
            raise Stop(f"{what}: could not run {argv[0]}: {err}") from None
        if done.returncode != 0:
            raise Stop(f"{what} failed (exit {done.returncode}): {shlex.join(argv)}", done.returncode)
        return done.stdout

    def step(
        self, argv: Sequence[str], what: str, env: dict[str, str] | None = None, quiet: bool = False
    ) -> None:
        """Run with the terminal attached (progress shows; `quiet`: stderr only); raises Stop naming
        `what` on failure, exit 2 kept (a refusal with its reasons already printed)."""
        stdout = subprocess.DEVNULL if quiet else None
        try:
            code = subprocess.run(list(argv), cwd=self.cwd, env=env or self.env, stdout=stdout).returncode
        except OSError as err:
            raise Stop(f"{what}: could not run {argv[0]}: {err}") from None
        if code != 0:
            raise Stop(f"{what} failed (exit {code}): {shlex.join(argv)}", 2 if code == 2 else 1)


# --- the stack file before the venv exists ------------------------------------------------------------


def scan_stack_file(text: str) -> dict[str, str]:
    """Scalars of a block-style stack file as {"config.inferstack:serving.image": "...", ...}.

    Only for choosing the prerequisites before the venv (and PyYAML) exists: block mappings of plain or
    quoted scalars, which is what stack files use. List items and block scalars are skipped. The file is
    validated properly (`inferstack plan`) once the venv is there, and the values used after that come
    from the validated config.
    """
    values: dict[str, str] = {}
    path: list[tuple[int, str]] = []
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        match = re.match(r"^(\s*)([^\s#'\"-][^#]*?):(?:\s+(.*))?$", line)
        if not match:
            continue
        indent, key, value = len(match[1]), match[2], match[3]
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, key))
        if value is not None and value not in ("|", ">", "|-", ">-"):
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[".".join(k for _, k in path)] = value
    return values


@dataclass(frozen=True)
class StackFacts:
    """What `up` needs to know about a stack: from the scan first, then from the validated config."""

    platform: str  # onprem | aws | gcp | azure
    image: str  # serving.image
    kube_context: str | None = None  # cluster.kube_context
    engine: str = "vllm"  # serving.engine
    load_balancer: str = "metallb"  # gateway.load_balancer.kind
    https_node_port: int = 30443
    http_node_port: int = 30080
    namespace: str = "inferstack"

    @property
    def side_loaded(self) -> bool:
        """The image is built here and loaded into the cluster: `localhost/` names no registry."""
        return self.platform == "onprem" and self.image.startswith("localhost/")

    @property
    def dockerfile(self) -> str:
        return "model_image/Dockerfile.cpu" if self.engine == "transformers" else "model_image/Dockerfile"


def scanned_facts(stack_file: Path) -> StackFacts:
    try:
        values = scan_stack_file(stack_file.read_text(encoding="utf-8"))
    except OSError as err:
        raise Stop(f"cannot read {stack_file}: {err.strerror or err}", 2) from None
    return StackFacts(
        platform=values.get("config.inferstack:platform", "onprem"),
        image=values.get("config.inferstack:serving.image", ""),
        kube_context=values.get("config.inferstack:cluster.kube_context") or None,
    )


def validated_facts(stack: str) -> StackFacts:
    """The facts from the validated stack config; runs under the project venv (`up.py facts STACK`)."""
    sys.path.insert(0, str(ROOT))
    from stacks.config import ConfigError, load_stack_file

    try:
        cfg = load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    except ConfigError as err:
        raise Stop(err.render(), 2) from None
    lb = cfg.gateway.load_balancer
    return StackFacts(
        platform=cfg.platform.value,
        image=cfg.serving.image,
        kube_context=cfg.cluster.kube_context,
        engine=cfg.serving.engine.value,
        load_balancer=lb.kind.value,
        https_node_port=lb.https_node_port,
        http_node_port=lb.http_node_port,
        namespace=cfg.cluster.namespace,
    )


# --- step 1: prerequisites ----------------------------------------------------------------------------


def kind_cluster_name(env: dict[str, str]) -> str:
    return env.get("KIND_CLUSTER_NAME") or "inferstack"


def current_context(sh: Shell) -> str | None:
    code, out = sh.probe(["kubectl", "config", "current-context"])
    return out.strip() if code == 0 and out.strip() else None


def kind_clusters(sh: Shell) -> list[str]:
    code, out = sh.probe(["kind", "get", "clusters"])
    return out.split() if code == 0 else []


def side_load_tool(context: str) -> str | None:
    """The tool that loads a local image into the cluster behind a kube context, by the context's name."""
    if context.startswith("kind-"):
        return "kind"
    if context.startswith("k3d-"):
        return "k3d"
    if context == "minikube":
        return "minikube"
    return None


def prerequisite_problems(facts: StackFacts, sh: Shell) -> list[str]:
    """Every missing tool or credential for this stack, each with its fix. Fast: no venv, no network
    beyond the credential probes of the cloud CLIs."""
    problems: list[str] = []
    if not sh.which("pulumi"):
        problems.append(missing("pulumi"))
    if facts.platform == "aws":
        if not sh.which("aws"):
            problems.append(missing("aws"))
        elif sh.probe(["aws", "sts", "get-caller-identity"])[0] != 0:
            problems.append("no usable AWS credentials: log in (aws sso login, or set AWS_PROFILE)")
        return problems
    if facts.platform == "gcp":
        for tool in ("gcloud", "gke-gcloud-auth-plugin"):
            if not sh.which(tool):
                problems.append(missing(tool))
        if (
            sh.which("gcloud")
            and sh.probe(["gcloud", "auth", "application-default", "print-access-token"])[0]
        ):
            problems.append("no Application Default Credentials: run gcloud auth application-default login")
        return problems

    if facts.platform == "azure":
        for tool in ("az", "kubelogin"):
            if not sh.which(tool):
                problems.append(missing(tool))
        if sh.which("az") and sh.probe(["az", "account", "show", "--output", "none"])[0] != 0:
            problems.append("no Azure CLI sign-in: run az login (and az account set --subscription <id>)")
        return problems

    # onprem: the cluster is reached through a kube context
    has_kubectl = sh.which("kubectl")
    if not has_kubectl:
        problems.append(missing("kubectl"))
    if not facts.side_loaded:
        if has_kubectl and facts.kube_context:
            if sh.probe(["kubectl", "config", "get-contexts", facts.kube_context])[0] != 0:
                problems.append(
                    f"kube context '{facts.kube_context}' (cluster.kube_context) is not in your kubeconfig; "
                    "list them: kubectl config get-contexts"
                )
        elif has_kubectl and current_context(sh) is None:
            problems.append(
                "no current kube context: pick one (kubectl config use-context NAME) or set "
                "cluster.kube_context in the stack file"
            )
        return problems

    # A side-loaded image: Docker builds it, and kind (or k3d / minikube) loads it into the cluster.
    if not sh.which("docker"):
        problems.append(missing("docker"))
    else:
        code, out = sh.probe(["docker", "info", "--format", "{{.ServerVersion}}"])
        if code != 0:
            problems.append(
                "the Docker daemon is not reachable (`docker info` failed): start Docker Desktop, or "
                "`sudo systemctl start docker` and add yourself to the docker group; "
                f"docker said: {out.strip().splitlines()[-1] if out.strip() else 'nothing'}"
            )
        # model_image's Dockerfiles use BuildKit's automatic platform args (TARGETARCH). From Docker 23
        # `docker build` is buildx and, without the plugin, fails ("BuildKit is enabled but the buildx
        # component is missing or broken"); docs.docker.com/build/buildkit/ names buildx as the client.
        elif sh.probe(["docker", "buildx", "version"])[0] != 0:
            _, linux, macos = INSTALL["docker"]
            problems.append(
                "Docker has no BuildKit client (`docker buildx version` failed); the serving image needs it. "
                f"Install on Linux: {linux}; on macOS: Docker Desktop includes it ({macos})"
            )
    if facts.kube_context:
        loader = side_load_tool(facts.kube_context)
        if loader is None:
            problems.append(
                f"serving.image {facts.image} is side-loaded, but kube context '{facts.kube_context}' is "
                "not a kind-*, k3d-* or minikube context: push the image to a registry the cluster pulls "
                "from and name it in serving.image"
            )
        elif not sh.which(loader):
            problems.append(missing(loader))
        return problems
    context = current_context(sh) if has_kubectl else None
    loader = side_load_tool(context) if context else None
    if loader in ("k3d", "minikube") and kind_cluster_name(sh.env) not in kind_clusters(sh):
        if not sh.which(loader):
            problems.append(missing(loader))
    elif not sh.which("kind"):
        problems.append(missing("kind"))
    return problems


#: Prints "MAJOR MINOR", then fails where the interpreter cannot make a venv with pip in it: Debian and
#: Ubuntu split ensurepip into pythonX.Y-venv, without which `python -m venv` stops half-way.
_PYTHON_PROBE = "import sys; print(*sys.version_info[:2], flush=True); import ensurepip, venv"

PYTHON_INSTALL = (
    "Install on Linux: sudo apt-get install python3.11 python3.11-venv (Debian 12, Ubuntu 22.04+) or "
    "sudo dnf install python3.12 (Fedora, RHEL 9); on macOS: brew install python@3.12"
)


def _python_version(text: str) -> tuple[int, int] | None:
    match = re.match(r"\s*(\d+) (\d+)\s*$", text.splitlines()[0] if text.strip() else "")
    return (int(match[1]), int(match[2])) if match else None


def find_python(sh: Shell, running: str | None) -> tuple[str | None, str | None]:
    """(an interpreter >= MIN_PYTHON that can make a venv, None) or (None, the problem with its fix).

    Tried in order: the one running this script (the Makefile's $(PYTHON)), then PYTHON_CANDIDATES on PATH.
    Found before any venv, because `make runtime-core` on 3.9 or 3.10 fails late and unclearly."""
    wanted = ".".join(map(str, MIN_PYTHON))
    seen: list[str] = []
    unusable: list[str] = []
    paths = [running] if running else []
    paths += [found for name in PYTHON_CANDIDATES if (found := shutil.which(name, path=sh.env.get("PATH")))]
    for path in dict.fromkeys(paths):  # each once, in order
        code, out = sh.probe([path, "-c", _PYTHON_PROBE])
        version = _python_version(out)
        if version is None:
            continue
        seen.append(f"{path} is {version[0]}.{version[1]}")
        if version < MIN_PYTHON:
            continue
        if code != 0:
            unusable.append(
                f"{path} ({version[0]}.{version[1]}) cannot make a venv (no ensurepip): "
                f"sudo apt-get install python{version[0]}.{version[1]}-venv"
            )
            continue
        return path, None
    if unusable:
        return None, "; ".join(unusable)
    found = f" ({'; '.join(seen)})" if seen else ""
    return None, f"no Python >= {wanted} found{found}: the project needs {wanted}+. {PYTHON_INSTALL}"


def check_prerequisites(facts: StackFacts, sh: Shell, stack: str) -> str:
    """Every prerequisite of `up` for this stack, or Stop(2) listing each with its fix. Returns the Python
    to build the venv with."""
    python, python_problem = find_python(sh, sys.executable)
    problems = ([python_problem] if python_problem else []) + prerequisite_problems(facts, sh)
    if problems or python is None:
        raise Stop(
            f"make up STACK={stack} cannot start; nothing was installed or changed:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\n`make plan` and `make check` need none of these.",
            2,
        )
    return python


# --- step 2 and 3: the venv and the validated stack ---------------------------------------------------


def venv_target(platform_name: str) -> str:
    """On-prem and local stacks need no cloud SDK (the lock's runtime-core)."""
    return "runtime" if platform_name in ("aws", "gcp", "azure") else "runtime-core"


def build_venv(platform_name: str, sh: Shell, python: str) -> None:
    """`make runtime[-core] PYTHON=<python>`: the Makefile makes the venv with that interpreter."""
    target = venv_target(platform_name)
    say(f"installing the project venv (.venv) from the lock with {python}: make {target}")
    sh.step([sh.env.get("MAKE") or "make", target, f"PYTHON={python}"], f"make {target}")


def validate_stack(stack: str, sh: Shell) -> StackFacts:
    say(f"validating stacks/Pulumi.{stack}.yaml offline (inferstack plan)")
    sh.step(
        [".venv/bin/inferstack", "plan", stack, "--out", f"build/plan/{stack}"],
        "the offline plan",
        quiet=True,
    )
    raw = sh.output([".venv/bin/python", "scripts/up.py", "facts", stack], "reading the stack config")
    try:
        return StackFacts(**json.loads(raw))
    except (ValueError, TypeError) as err:
        raise Stop(f"reading the stack config: unexpected answer {raw!r} ({err})") from None


# --- step 4: memory, cluster and image -----------------------------------------------------------------

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_FACTOR = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}
GIB = 2**30

#: What the Envoy Gateway controller makes for each Gateway, per Envoy pod, when the EnvoyProxy sets no
#: resources: the envoy container requests 512Mi (DefaultDeploymentMemoryResourceRequests) and the
#: shutdown-manager 32Mi (DefaultShutdownManagerMemoryResourceRequests); one replica by default
#: (DefaultDeploymentReplicas). envoyproxy/gateway api/v1alpha1/shared_types.go, v1.8.
ENVOY_PROXY_MEMORY = 512 * 2**20
ENVOY_SHUTDOWN_MANAGER_MEMORY = 32 * 2**20
#: The gateway-helm chart's controller request (deployment.envoyGateway.resources.requests.memory).
ENVOY_GATEWAY_CONTROLLER_MEMORY = 256 * 2**20
#: What the kind node runs besides the stack's pods, as an estimate (not measured here): its requests are
#: ~0.3 GiB (etcd 100Mi from kubeadm's manifest, CoreDNS 2 x 70Mi, kindnet 50Mi) but the API server,
#: controller manager, kubelet, containerd and cert-manager's three pods (its chart sets no requests) use
#: memory too; 1 GiB covers them.
KIND_NODE_MEMORY = 1 * GIB
#: The same three in CPU (millicores): the envoy container's DefaultDeploymentCPUResourceRequests 100m and
#: the shutdown-manager's DefaultShutdownManagerCPUResourceRequests 10m (shared_types.go, v1.8); the
#: gateway-helm chart's controller request 100m (values.yaml deployment.envoyGateway.resources).
ENVOY_PROXY_MILLICPU = 100
ENVOY_SHUTDOWN_MANAGER_MILLICPU = 10
ENVOY_GATEWAY_CONTROLLER_MILLICPU = 100
#: The kind node's own CPU requests: kube-apiserver 250m, kube-controller-manager 200m, kube-scheduler 100m,
#: etcd 100m (kubeadm's static pod manifests), CoreDNS 2 x 100m (its Deployment), kindnet 100m (kind's
#: manifest): 950m; cert-manager's chart sets none. Requests, not use: the scheduler counts these.
KIND_NODE_MILLICPU = 950


def quantity_bytes(value: object) -> int | None:
    """A Kubernetes memory quantity ("512Mi", "6Gi", "1G", "1073741824") in bytes; None if it is not one."""
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    return int(float(match[1]) * _FACTOR.get(match[2] or "", 1))


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def millicpu(value: object) -> int | None:
    """A Kubernetes CPU quantity ("2", "500m", "1.5") in millicores; None if it is not one."""
    match = re.match(r"^([0-9]+(?:\.[0-9]+)?)(m?)$", str(value).strip())
    if not match:
        return None
    return int(float(match[1]) * (1 if match[2] else 1000))


@dataclass(frozen=True)
class Requested:
    """One resource the scheduler counts (memory in bytes, cpu in millicores): how to read it, what the
    controllers' pods request when the plan does not say, and how to show an amount."""

    key: str  # "memory" | "cpu"
    parse: Callable[[object], int | None]
    envoy: int  # an Envoy proxy pod's envoy container
    shutdown_manager: int  # and its shutdown-manager
    controller: int  # the Envoy Gateway controller
    show: Callable[[int], str]

    def of(self, container: Any) -> int:
        """A container's request; the API server defaults a missing request to the limit (core/v1
        defaults.go SetDefaults_ResourceList)."""
        resources = _dig(container, "resources") or {}
        value = _dig(resources, "requests", self.key) or _dig(resources, "limits", self.key) or 0
        return self.parse(value) or 0


MEMORY = Requested("memory", quantity_bytes, ENVOY_PROXY_MEMORY, ENVOY_SHUTDOWN_MANAGER_MEMORY,
                   ENVOY_GATEWAY_CONTROLLER_MEMORY, lambda b: f"{b / GIB:.2f} GiB")  # fmt: skip
CPU = Requested("cpu", millicpu, ENVOY_PROXY_MILLICPU, ENVOY_SHUTDOWN_MANAGER_MILLICPU,
                ENVOY_GATEWAY_CONTROLLER_MILLICPU, lambda m: f"{m / 1000:g} CPU")  # fmt: skip


def pod_request(pod_spec: dict[str, Any], what: Requested = MEMORY) -> int:
    """What the scheduler reserves for a pod: the larger of its containers' sum and its largest init
    container (sidecar init containers, restartPolicy Always, run beside the containers: added)."""
    inits = pod_spec.get("initContainers") or []
    sidecars = sum(what.of(c) for c in inits if c.get("restartPolicy") == "Always")
    running = sum(what.of(c) for c in pod_spec.get("containers") or []) + sidecars
    one_at_a_time = max((what.of(c) for c in inits if c.get("restartPolicy") != "Always"), default=0)
    return max(running, one_at_a_time + sidecars)


def planned(resources: list[dict[str, Any]], what: Requested = MEMORY) -> list[tuple[str, int]]:
    """[(what, amount requested)] from a plan's resources.json: the workloads it declares, and the pods
    its EnvoyProxy and the Envoy Gateway chart make the controllers create (not in the plan)."""
    items: list[tuple[str, int]] = []
    for resource in resources:
        inputs = resource.get("inputs") or {}
        kind = inputs.get("kind")
        name = _dig(inputs, "metadata", "name") or resource.get("name")
        if kind in ("Deployment", "StatefulSet", "DaemonSet"):
            replicas = 1 if kind == "DaemonSet" else _dig(inputs, "spec", "replicas")
            replicas = replicas if isinstance(replicas, int) else 1
            pod = pod_request(_dig(inputs, "spec", "template", "spec") or {}, what)
            items.append((f"{kind} {name}: {replicas} x {what.show(pod)}", replicas * pod))
        elif kind == "EnvoyProxy":
            deployment = _dig(inputs, "spec", "provider", "kubernetes", "envoyDeployment") or {}
            replicas = deployment["replicas"] if isinstance(deployment.get("replicas"), int) else 1
            pod = (what.of(deployment.get("container")) or what.envoy) + what.shutdown_manager
            items.append((f"Envoy proxy pods ({name}): {replicas} x {what.show(pod)}", replicas * pod))
        elif resource.get("type", "").endswith("helm.sh/v3:Release") and "gateway-helm" in str(
            inputs.get("chart")
        ):
            value = _dig(inputs, "values", "deployment", "envoyGateway", "resources", "requests", what.key)
            items.append(
                ("Envoy Gateway controller", (what.parse(value) if value else None) or what.controller)
            )
    return items


def docker_memory(sh: Shell) -> int | None:
    """Bytes of memory Docker's engine has (Docker Desktop and colima: their VM's), None if unknown."""
    code, out = sh.probe(["docker", "info", "--format", "{{.MemTotal}}"])
    return int(out.strip()) if code == 0 and out.strip().isdigit() else None


def check_memory(stack: str, sh: Shell) -> None:
    """Stop(2) before anything is created when the stack's pods cannot fit in Docker's memory: the model
    pod would stay Pending while `pulumi up` waits for it (up to its startup timeout)."""
    plan = sh.cwd / "build" / "plan" / stack / "resources.json"
    try:
        items = planned(json.loads(plan.read_text(encoding="utf-8")), MEMORY)
    except (OSError, ValueError) as err:
        say(f"cannot read {plan} ({err}); skipping the memory check")
        return
    items.append(
        ("the kind node: control plane, CoreDNS, kindnet, cert-manager (estimate)", KIND_NODE_MEMORY)
    )
    need = sum(b for _, b in items)
    have = docker_memory(sh)
    if have is None:
        say(f"could not read Docker's memory (docker info); the stack needs about {need / GIB:.1f} GiB")
        return
    if need > have:
        lines = "\n".join(f"    {what}: {b / GIB:.2f} GiB" for what, b in items)
        raise Stop(
            f"Docker has {have / GIB:.1f} GiB of memory; stacks/Pulumi.{stack}.yaml needs about "
            f"{need / GIB:.1f} GiB, so the model pod would stay Pending:\n{lines}\n"
            f"  Give Docker at least {-(-need // GIB) + 1} GB: Docker Desktop → Settings → Resources → "
            "Memory limit, then Apply & restart (colima: colima stop && colima start --memory N); or lower "
            f"serving.memory in stacks/Pulumi.{stack}.yaml. Nothing was created.",
            2,
        )
    say(f"memory: the stack requests about {need / GIB:.1f} GiB of Docker's {have / GIB:.1f} GiB")


def docker_cpus(sh: Shell) -> int | None:
    """CPUs Docker's engine has (Docker Desktop and colima: their VM's), None if unknown."""
    code, out = sh.probe(["docker", "info", "--format", "{{.NCPU}}"])
    return int(out.strip()) if code == 0 and out.strip().isdigit() else None


def check_cpu(stack: str, sh: Shell) -> None:
    """Stop(2) before anything is created when the stack's pods' CPU requests exceed Docker's CPUs: the
    kind node's allocatable CPU is the machine's (kind reserves none), and a pod whose request does not
    fit stays Pending while `pulumi up` waits for it (colima's default VM has 2 CPUs)."""
    plan = sh.cwd / "build" / "plan" / stack / "resources.json"
    try:
        items = planned(json.loads(plan.read_text(encoding="utf-8")), CPU)
    except (OSError, ValueError) as err:
        say(f"cannot read {plan} ({err}); skipping the CPU check")
        return
    items.append(("the kind node: control plane, CoreDNS, kindnet (their requests)", KIND_NODE_MILLICPU))
    need = sum(m for _, m in items)
    have = docker_cpus(sh)
    if have is None:
        say(f"could not read Docker's CPUs (docker info); the stack requests about {need / 1000:g} CPU")
        return
    if need > have * 1000:
        lines = "\n".join(f"    {what}: {m / 1000:g} CPU" for what, m in items)
        raise Stop(
            f"Docker has {have} CPUs; the pods of stacks/Pulumi.{stack}.yaml request {need / 1000:g}, so the "
            f"model pod would stay Pending (Insufficient cpu):\n{lines}\n"
            f"  Give Docker at least {-(-need // 1000)} CPUs: Docker Desktop → Settings → Resources → CPU limit "
            "(colima: colima stop && colima start --cpu N); or lower serving.cpu in "
            f"stacks/Pulumi.{stack}.yaml. Nothing was created.",
            2,
        )
    say(f"CPU: the stack requests {need / 1000:g} of Docker's {have} CPUs")


def kind_port_mappings(config_text: str) -> dict[int, int]:
    """{containerPort: hostPort} of deploy/kind/cluster.yaml's extraPortMappings."""
    pairs = re.findall(r"containerPort:\s*(\d+)\s*\n\s*hostPort:\s*(\d+)", config_text)
    return {int(c): int(h) for c, h in pairs}


def node_ports(facts: StackFacts) -> list[int]:
    return [facts.https_node_port, facts.http_node_port]


@dataclass(frozen=True)
class Target:
    """The cluster a side-loaded stack deploys to."""

    context: str
    load: list[str]  # the command that loads an image into it, image appended
    create_kind: str | None = None  # a kind cluster to create first (its name)


def choose_target(facts: StackFacts, sh: Shell) -> Target:
    """An explicit context, an existing kind cluster, a k3d/minikube current context, or a new kind cluster."""
    kind_name = kind_cluster_name(sh.env)
    if facts.kube_context:
        context = facts.kube_context
    elif kind_name in kind_clusters(sh):
        context = f"kind-{kind_name}"
        ports = published_ports(f"{kind_name}-control-plane", sh)
        lacking = [p for p in node_ports(facts) if ports.get(p) != p]
        if lacking:
            raise Stop(
                f"kind cluster '{kind_name}' does not publish node port(s) {', '.join(map(str, lacking))} "
                f"on the host, so https://<hostname>:{facts.https_node_port} cannot reach the gateway. "
                f"Recreate it: kind delete cluster --name {kind_name} && "
                f"kind create cluster --name {kind_name} --config {KIND_CONFIG}",
                2,
            )
    else:
        current = current_context(sh)
        if current and side_load_tool(current) in ("k3d", "minikube"):
            context = current
            say(
                f"using the current kube context {current}: it must publish node port "
                f"{facts.https_node_port} on 127.0.0.1 (k3d: cluster create -p "
                f"'{facts.https_node_port}:{facts.https_node_port}@server:0')"
            )
        else:
            return Target(
                context=f"kind-{kind_name}",
                load=["kind", "load", "docker-image", "--name", kind_name],
                create_kind=kind_name,
            )
    tool = side_load_tool(context)
    if tool == "kind":
        return Target(context, ["kind", "load", "docker-image", "--name", context.removeprefix("kind-")])
    if tool == "k3d":
        return Target(context, ["k3d", "image", "import", "--cluster", context.removeprefix("k3d-")])
    if tool == "minikube":
        return Target(context, ["minikube", "image", "load"])
    raise Stop(f"cannot load a local image into kube context '{context}' (not kind, k3d or minikube)", 2)


def published_ports(container: str, sh: Shell) -> dict[int, int]:
    """{container port: host port} Docker publishes for a kind node (`docker port` lines
    `30443/tcp -> 127.0.0.1:30443`)."""
    code, out = sh.probe(["docker", "port", container])
    found: dict[int, int] = {}
    if code == 0:
        for c, h in re.findall(r"^(\d+)/tcp -> \S*:(\d+)$", out, flags=re.MULTILINE):
            found[int(c)] = int(h)
    return found


def kind_version(sh: Shell) -> tuple[int, ...] | None:
    """`kind version` prints e.g. `kind v0.32.0 go1.24.6 linux/amd64`."""
    code, out = sh.probe(["kind", "version"])
    match = re.search(r"\bv(\d+)\.(\d+)\.(\d+)", out) if code == 0 else None
    return tuple(int(part) for part in match.groups()) if match else None


def create_kind_cluster(name: str, facts: StackFacts, sh: Shell, stack: str) -> None:
    config_text = (sh.cwd / KIND_CONFIG).read_text(encoding="utf-8")
    mappings = kind_port_mappings(config_text)
    lacking = [p for p in node_ports(facts) if mappings.get(p) != p]
    if lacking:
        raise Stop(
            f"{KIND_CONFIG} does not publish node port(s) {', '.join(map(str, lacking))} that "
            f"stacks/Pulumi.{stack}.yaml's gateway.load_balancer uses: keep the defaults "
            "(https_node_port 30443, http_node_port 30080) or add the ports to the kind config",
            2,
        )
    version = kind_version(sh)
    wanted = ".".join(map(str, KIND_VERSION))
    if version is None or version < KIND_VERSION:
        found = ".".join(map(str, version)) if version else "an unknown version"
        raise Stop(
            f"kind {found} is older than {wanted}, whose node image {KIND_CONFIG} pins. "
            f"Upgrade — Linux: {_kind_linux_hint()} | macOS: brew upgrade kind",
            2,
        )
    say(
        f"no kind cluster '{name}' yet: creating it from {KIND_CONFIG} (one node, Kubernetes 1.36; node "
        f"ports {facts.https_node_port} and {facts.http_node_port} published on 127.0.0.1)"
    )
    sh.step(
        ["kind", "create", "cluster", "--name", name, "--config", str(KIND_CONFIG)],
        "creating the kind cluster",
    )
    state = sh.cwd / STATE_DIR
    state.mkdir(exist_ok=True)
    # `destroy` offers to delete only what `up` created.
    (state / f"{stack}.kind-cluster").write_text(name + "\n", encoding="utf-8")


def freeze_kubeconfig(context: str, sh: Shell, stack: str) -> Path:
    """A kubeconfig holding only `context`, for pulumi up and destroy: the stack goes to the cluster
    chosen here even if the current context points elsewhere (a production cluster) now or later.
    The stack's provider names no kubeconfig, so pulumi-kubernetes reads $KUBECONFIG, like kubectl
    (pulumi.com/registry/packages/kubernetes/installation-configuration, "Setup")."""
    text = sh.output(
        ["kubectl", "config", "view", "--minify", "--flatten", "--context", context],
        f"reading kube context {context}",
    )
    path = sh.cwd / STATE_DIR / f"{stack}.kubeconfig"
    path.parent.mkdir(exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(text, encoding="utf-8")
    return path


def build_and_load_image(facts: StackFacts, target: Target, sh: Shell) -> str:
    """Build with BuildKit (the Dockerfiles read TARGETARCH, which only BuildKit sets), load the image
    into the cluster; returns its image ID."""
    say(f"building {facts.image} from {facts.dockerfile} (the first build takes several minutes)")
    # `buildx build --load`: a builder the user selected with `docker buildx create --use` (the
    # docker-container driver) keeps results in its cache unless told to load them into the image store,
    # and `kind load` reads that store (buildx docs, "Drivers"). No default attestations: with the
    # containerd image store (Docker Desktop, Engine 29) BuildKit's provenance carries a timestamp and an
    # invocation id, so an unchanged cached build would get a new ID each time (docker/compose#14111) and
    # every `make up` would restart the model server.
    env = {**sh.env, "DOCKER_BUILDKIT": "1", "BUILDX_NO_DEFAULT_ATTESTATIONS": "1"}
    build = ["docker", "buildx", "build", "--load", "-f", facts.dockerfile, "-t", facts.image, "."]
    sh.step(build, "docker buildx build", env)
    say(f"loading {facts.image} into {target.context}")
    try:
        sh.step([*target.load, facts.image], "loading the image into the cluster")
    except Stop as stop:
        if target.load[0] != "kind":
            raise
        # kind#3795 (open): with the containerd image store, `kind load docker-image` can fail with "ctr:
        # content digest ... not found"; kind's docs give loading a single-platform archive instead.
        raise Stop(
            f"{stop}\n  If it said 'content digest ... not found' (kind#3795), load an archive instead:\n"
            f"    docker image save --platform linux/$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/') "
            f"{facts.image} -o build/image.tar && {shlex.join([*target.load[:2], 'image-archive', *target.load[3:]])} "
            "build/image.tar\n  then run make up again.",
            stop.code,
        ) from None
    return sh.output(
        ["docker", "image", "inspect", "--format", "{{.Id}}", facts.image], "reading the image ID"
    ).strip()


def image_id_file(sh: Shell, stack: str) -> Path:
    """The ID of the image the stack's pods were last started on (written after a successful up)."""
    return sh.cwd / STATE_DIR / f"{stack}.image-id"


def model_server_deployments(stack: str, sh: Shell) -> list[tuple[str, str]]:
    """[(namespace, name)] of the plan's model-server Deployments (components/model_server.py labels
    them app.kubernetes.io/component=model-server)."""
    plan = sh.cwd / "build" / "plan" / stack / "resources.json"
    try:
        resources = json.loads(plan.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    found = []
    for resource in resources:
        inputs = resource.get("inputs") or {}
        labels = _dig(inputs, "metadata", "labels") or {}
        if inputs.get("kind") == "Deployment" and labels.get("app.kubernetes.io/component") == "model-server":
            found.append((str(_dig(inputs, "metadata", "namespace")), str(_dig(inputs, "metadata", "name"))))
    return found


def restart_model_server(stack: str, sh: Shell, kubeconfig: Path, wait_s: float) -> None:
    """Start the model server's pods again on a rebuilt image. The tag is fixed and the pull policy
    IfNotPresent, so `pulumi up` sees no change and the running pods keep the old image.

    The pods are deleted rather than `kubectl rollout restart`ed: a rollout surges a second model pod
    first (the Deployment's maxSurge 1, maxUnavailable 0), which a laptop's Docker memory rarely holds;
    the ReplicaSet makes new pods as the old ones go, on the image now in the node."""
    for namespace, name in model_server_deployments(stack, sh):
        kubectl = ["kubectl", "--kubeconfig", str(kubeconfig), "-n", namespace]
        selector = sh.output(
            [*kubectl, "get", "deployment", name, "-o", "jsonpath={.spec.selector.matchLabels}"],
            f"reading deployment {name}",
        )
        try:
            labels = json.loads(selector or "{}")
        except ValueError:
            raise Stop(f"deployment {name}: unexpected selector {selector!r}") from None
        say(f"the image changed since the last make up: restarting the pods of deployment {name}")
        sh.step(
            [*kubectl, "delete", "pods", "-l", ",".join(f"{k}={v}" for k, v in sorted(labels.items()))],
            f"restarting deployment {name}",
        )
        sh.step(
            [*kubectl, "rollout", "status", f"deployment/{name}", f"--timeout={wait_s:.0f}s"],
            f"waiting for deployment {name} (kubectl -n {namespace} describe pods says why)",
        )


# --- step 5: pulumi -----------------------------------------------------------------------------------


def pulumi_env(sh: Shell, stack: str) -> dict[str, str]:
    """The environment for pulumi: local file backend, passphrase secrets, the frozen kubeconfig."""
    state = sh.cwd / STATE_DIR
    state.mkdir(exist_ok=True)
    env = dict(sh.env)
    env.setdefault("PULUMI_BACKEND_URL", f"file://{state}")
    if "PULUMI_CONFIG_PASSPHRASE" not in env and not env.get("PULUMI_CONFIG_PASSPHRASE_FILE"):
        passphrase = state / "passphrase"
        if not passphrase.exists():
            passphrase.touch(mode=0o600)
            passphrase.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
            say(f"created a secrets passphrase in {passphrase}: keep it, it decrypts this stack's secrets")
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(passphrase)
    kubeconfig = state / f"{stack}.kubeconfig"
    if kubeconfig.exists():
        env["KUBECONFIG"] = str(kubeconfig)
    return env


def roll_out_image(stack: str, sh: Shell, image_id: str, new_cluster: bool, wait_s: float) -> None:
    """After `pulumi up`: restart the model server when the image loaded now differs from the one its pods
    were started on (remembered in .pulumi-state); a new cluster's pods start on it anyway."""
    last = image_id_file(sh, stack)
    previous = last.read_text(encoding="utf-8").strip() if last.exists() else None
    if previous and previous != image_id and not new_cluster:
        restart_model_server(stack, sh, sh.cwd / STATE_DIR / f"{stack}.kubeconfig", wait_s)
    # Written once the pods run on it, so a failed run restarts them next time.
    last.write_text(image_id + "\n", encoding="utf-8")


def state_has_resources(stack: str, sh: Shell, env: dict[str, str]) -> bool:
    """Whether the stack's state lists resources beyond the stack itself and its providers."""
    code, raw = sh.query(["pulumi", "stack", "export", "--stack", stack], env)
    try:
        resources = _dig(json.loads(raw), "deployment", "resources") if code == 0 else None
    except ValueError:
        return False
    return any(
        isinstance(r, dict)
        and r.get("type") != "pulumi:pulumi:Stack"
        and not str(r.get("type", "")).startswith("pulumi:providers:")
        for r in resources or []
    )


def pulumi_up(stack: str, sh: Shell, env: dict[str, str], new_cluster: bool = False) -> dict[str, Any]:
    sh.step(
        ["pulumi", "stack", "select", "--create", "--secrets-provider", "passphrase", stack],
        "pulumi stack select",
        env,
    )
    if new_cluster and state_has_resources(stack, sh, env):
        # The state still lists what ran on a cluster deleted outside `make destroy`. `pulumi up` does not
        # refresh by default, so it would report no changes and create nothing on the new cluster.
        say("a new cluster, but the stack's state lists resources: pulumi refresh first, to forget them")
        sh.step(["pulumi", "refresh", "--stack", stack, "--yes"], "pulumi refresh", env)
    say(f"pulumi up --stack {stack} (state in {env['PULUMI_BACKEND_URL']})")
    extra = shlex.split(sh.env.get("PULUMI_ARGS", ""))
    sh.step(["pulumi", "up", "--stack", stack, *extra], "pulumi up", env)
    raw = sh.output(
        ["pulumi", "stack", "output", "--stack", stack, "--json", "--show-secrets"],
        "pulumi stack output",
        env,
    )
    try:
        outputs = json.loads(raw)
    except ValueError:
        raise Stop(f"pulumi stack output --json printed no JSON: {raw[:200]!r}") from None
    if not isinstance(outputs, dict) or not outputs.get("url"):
        raise Stop(
            "the stack exported no `url` (stacks/workload.py exports it): is this an InferStack stack?"
        )
    return outputs


# --- step 6: the endpoint -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """What a client needs, from the stack outputs (stacks/workload.py: url, model, api_keys,
    ca_certificate_pem)."""

    url: str  # https://host[:port], no path
    model: str
    client: str | None  # the client id whose key is shown
    api_key: str | None  # None: the keys live in an existing Secret, not in the stack
    ca_file: Path | None  # None: a publicly trusted certificate (ACME) or the user's own Secret

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/") + "/v1"

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).hostname or self.url

    @property
    def port(self) -> int:
        return urllib.parse.urlsplit(self.url).port or 443


def resolves(host: str, port: int) -> bool:
    """Whether `host` resolves here. Some home routers' DNS rebinding protection (dnsmasq's
    stop-dns-rebind, e.g.) drops answers that point at 127.0.0.1, which is what localtest.me gives."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return True


def hosts_hint(host: str) -> str:
    return (
        f"{host} does not resolve here (a DNS resolver that drops answers pointing at 127.0.0.1?): "
        f"add `127.0.0.1 {host}` to /etc/hosts."
    )


def endpoint_from_outputs(outputs: dict[str, Any], stack: str, root: Path) -> Endpoint:
    keys = outputs.get("api_keys") or {}
    client = "default" if "default" in keys else next(iter(keys), None)
    ca_pem = outputs.get("ca_certificate_pem")
    ca_file = None
    if ca_pem:
        ca_file = root / "build" / f"{stack}-ca.pem"
        ca_file.parent.mkdir(exist_ok=True)
        ca_file.write_text(ca_pem if ca_pem.endswith("\n") else ca_pem + "\n", encoding="utf-8")
    return Endpoint(
        url=str(outputs["url"]),
        model=str(outputs.get("model") or ""),
        client=client,
        api_key=keys[client] if client else None,
        ca_file=ca_file,
    )


def probe_models(endpoint: Endpoint, timeout_s: float = 10) -> tuple[bool, str]:
    """One `GET /v1/models`: (ready, what was seen). Without a key, a 401 from the gateway counts as
    ready: Envoy answers and enforces the keys, which live in a Secret this script cannot read."""
    context = ssl.create_default_context(cafile=str(endpoint.ca_file) if endpoint.ca_file else None)
    headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
    request = urllib.request.Request(endpoint.base_url + "/models", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            return response.status == 200, f"HTTP {response.status}"
    except urllib.error.HTTPError as err:
        return (err.code == 401 and endpoint.api_key is None), f"HTTP {err.code} {err.reason}"
    except urllib.error.URLError as err:
        if isinstance(err.reason, socket.gaierror):
            return False, f"{endpoint.host} does not resolve ({err.reason})"
        return False, str(err.reason)
    except OSError as err:  # timeouts, resets
        return False, str(err) or type(err).__name__


def wait_for_endpoint(
    endpoint: Endpoint,
    namespace: str,
    wait_s: float,
    poll_s: float,
    probe: Callable[[Endpoint], tuple[bool, str]] = probe_models,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    resolve: Callable[[str, int], bool] = resolves,
) -> None:
    """Poll until the endpoint answers or `wait_s` seconds pass; Stop with what was seen and where to look.
    A hostname that does not resolve stops at once: waiting would not change it."""
    if not resolve(endpoint.host, endpoint.port):
        raise Stop(f"{endpoint.base_url}: {hosts_hint(endpoint.host)} Then run make up again.")
    say(f"waiting for {endpoint.base_url}/models to answer (up to {wait_s:.0f} s)")
    start = clock()
    last_report = start
    while True:
        ready, seen = probe(endpoint)
        if ready:
            return
        now = clock()
        if now - start >= wait_s:
            hint = "" if resolve(endpoint.host, endpoint.port) else f"\n  {hosts_hint(endpoint.host)}"
            raise Stop(
                f"{endpoint.base_url}/models did not answer within {wait_s:.0f} s (last: {seen}).{hint}\n"
                f"  Look at: kubectl -n {namespace} get pods,gateway,certificate; "
                f"kubectl -n {namespace} describe pods\n"
                "  The first start downloads the model; wait longer with UP_WAIT_SECONDS=1200 make up ...",
            )
        if now - last_report >= 30:
            say(f"still waiting ({now - start:.0f} s; last: {seen})")
            last_report = now
        sleep(poll_s)


def usage_text(endpoint: Endpoint) -> str:
    """The closing message: URL, CA file, a curl line and an openai-python snippet."""
    ca = str(endpoint.ca_file) if endpoint.ca_file else None
    key = endpoint.api_key or "<a key from your API-key Secret>"
    body = json.dumps({"model": endpoint.model, "messages": [{"role": "user", "content": "Say hello."}]})
    curl = ["curl"]
    if ca:
        curl += ["--cacert", ca]
    curl += [
        "-H",
        f"Authorization: Bearer {key}",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        endpoint.base_url + "/chat/completions",
    ]
    http_client = (
        f"    http_client=DefaultHttpxClient(verify=ssl.create_default_context(cafile={ca!r})),\n"
        if ca
        else ""
    )
    python = (
        ("import ssl\n\n" if ca else "")
        + f"from openai import {'DefaultHttpxClient, ' if ca else ''}OpenAI\n\n"
        + "client = OpenAI(\n"
        + f"    base_url={endpoint.base_url!r},\n"
        + f"    api_key={key!r},\n"
        + http_client
        + ")\n"
        + "reply = client.chat.completions.create(\n"
        + f"    model={endpoint.model!r}, messages=[{{'role': 'user', 'content': 'Say hello.'}}]\n"
        + ")\n"
        + "print(reply.choices[0].message.content)\n"
    )
    lines = [
        "",
        f"Endpoint:  {endpoint.base_url}   (model {endpoint.model})",
        f"CA file:   {ca or 'none needed: the certificate is publicly trusted or your own'}",
        f"API key:   client {endpoint.client!r} (all keys: pulumi stack output api_keys --show-secrets)"
        if endpoint.client
        else "API key:   from the Secret named in serving.api_keys.existing_secret",
        "",
        "curl:",
        "  " + shlex.join(curl),
        "",
        "openai-python (pip install openai):",
        *("  " + line if line else "" for line in python.splitlines()),
        "",
    ]
    return "\n".join(lines)


# --- the two commands ---------------------------------------------------------------------------------


def stack_file(stack: str, root: Path) -> Path:
    path = root / "stacks" / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(
            p.name.removeprefix("Pulumi.").removesuffix(".yaml")
            for p in (root / "stacks").glob("Pulumi.*.yaml")
        )
        raise Stop(f"no stack file stacks/Pulumi.{stack}.yaml; stacks here: {', '.join(known)}", 2)
    return path


def seconds(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise Stop(f"{name}={raw!r}: give a number of seconds, e.g. {name}={default:.0f}", 2) from None
    if value <= 0:
        raise Stop(f"{name}={raw!r}: must be more than 0 seconds", 2)
    return value


def up(stack: str, sh: Shell) -> None:
    scanned = scanned_facts(stack_file(stack, sh.cwd))
    python = check_prerequisites(scanned, sh, stack)
    wait_s = seconds(sh.env, "UP_WAIT_SECONDS", 600)
    poll_s = seconds(sh.env, "UP_POLL_SECONDS", 5)
    build_venv(scanned.platform, sh, python)
    facts = validate_stack(stack, sh)
    needs = (facts.platform, facts.side_loaded, facts.kube_context)
    if needs != (scanned.platform, scanned.side_loaded, scanned.kube_context):
        check_prerequisites(facts, sh, stack)  # the validated file can differ from the quick scan
        if facts.platform != scanned.platform:
            build_venv(facts.platform, sh, python)
    new_cluster = False
    image_id = None
    if facts.side_loaded:
        target = choose_target(facts, sh)
        if target.load[0] in ("kind", "k3d"):  # their nodes are containers sharing Docker's memory
            check_memory(stack, sh)
            check_cpu(stack, sh)
        if target.create_kind:
            create_kind_cluster(target.create_kind, facts, sh, stack)
            new_cluster = True
        freeze_kubeconfig(target.context, sh, stack)
        image_id = build_and_load_image(facts, target, sh)
    env = pulumi_env(sh, stack)
    salted_before = "encryptionsalt:" in stack_file(stack, sh.cwd).read_text(encoding="utf-8")
    outputs = pulumi_up(stack, sh, env, new_cluster)
    if image_id:
        roll_out_image(stack, sh, image_id, new_cluster, wait_s)
    endpoint = endpoint_from_outputs(outputs, stack, sh.cwd)
    wait_for_endpoint(endpoint, facts.namespace, wait_s, poll_s)
    print(usage_text(endpoint), flush=True)
    names = ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE_FILE", "KUBECONFIG")
    exports = " ".join(
        f"{k}={shlex.quote(env[k])}" for k in names if env.get(k) and env.get(k) != sh.env.get(k)
    )
    if exports:
        print(f"pulumi and kubectl commands for this stack need:  export {exports}", flush=True)
    if not salted_before and "encryptionsalt:" in stack_file(stack, sh.cwd).read_text(encoding="utf-8"):
        # `pulumi stack select --create --secrets-provider passphrase` stores the salt in the stack file.
        print(
            f"pulumi added `encryptionsalt:` to stacks/Pulumi.{stack}.yaml: keep it here but do not commit "
            f"it; it matches only this machine's {env.get('PULUMI_CONFIG_PASSPHRASE_FILE') or 'passphrase'}.",
            flush=True,
        )


def _has_local_state(state: Path, stack: str) -> bool:
    """Whether Pulumi's file backend in `state` holds the stack: .pulumi/stacks/<project>/<stack>.json since
    Pulumi 3.61 (project-scoped stacks), .pulumi/stacks/<stack>.json before; gzip-compressed as .json.gz."""
    stacks = state / ".pulumi" / "stacks"
    names = (f"{stack}.json", f"{stack}.json.gz")
    return any((stacks / PROJECT / n).exists() or (stacks / n).exists() for n in names)


def destroy(stack: str, sh: Shell, ask: Callable[[str], str] = input) -> None:
    stack_file(stack, sh.cwd)
    if "PULUMI_BACKEND_URL" not in sh.env and not _has_local_state(sh.cwd / STATE_DIR, stack):
        # Nothing was deployed from here: say so, and create no passphrase or venv for a stack with no state.
        # A kind cluster make up created before it failed (no state yet) is still offered for deletion.
        print(
            f"nothing to destroy: stack {stack} has no state in {STATE_DIR}/ (make up STACK={stack} makes it)"
        )
        delete_created_cluster(stack, sh, ask)
        return
    if not sh.which("pulumi"):
        raise Stop(f"make destroy needs {missing('pulumi')}", 2)
    if not (sh.cwd / ".venv" / "bin" / "python").exists():
        python, problem = find_python(sh, sys.executable)
        if python is None:
            raise Stop(f"make destroy needs the project venv, and {problem}", 2)
        build_venv(scanned_facts(stack_file(stack, sh.cwd)).platform, sh, python)
    env = pulumi_env(sh, stack)
    extra = shlex.split(sh.env.get("PULUMI_ARGS", ""))
    say(f"pulumi destroy --stack {stack}")
    sh.step(["pulumi", "destroy", "--stack", stack, *extra], "pulumi destroy", env)
    delete_created_cluster(stack, sh, ask)


def delete_created_cluster(stack: str, sh: Shell, ask: Callable[[str], str]) -> None:
    """Offer to delete the kind cluster `make up` created for `stack` (DELETE_CLUSTER=yes|no answers)."""
    marker = sh.cwd / STATE_DIR / f"{stack}.kind-cluster"
    if not marker.exists():
        return
    name = marker.read_text(encoding="utf-8").strip()
    choice = sh.env.get("DELETE_CLUSTER", "").strip().lower()
    if choice not in ("yes", "no"):
        if not sys.stdin.isatty():
            print(
                f"Kept the kind cluster '{name}' that make up created. Delete it: kind delete cluster --name "
                f"{name}   (or: make destroy STACK={stack} DELETE_CLUSTER=yes)"
            )
            return
        choice = (
            "yes"
            if ask(f"Delete the kind cluster '{name}' that make up created? [y/N] ").strip().lower()
            in ("y", "yes")
            else "no"
        )
    if choice == "yes":
        say(f"deleting the kind cluster {name}")
        sh.step(["kind", "delete", "cluster", "--name", name], "kind delete cluster")
        marker.unlink()
        (sh.cwd / STATE_DIR / f"{stack}.kubeconfig").unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/up.py",
        description="Deploy a stack from a laptop (make up STACK=...) or remove it (make destroy STACK=...).",
    )
    parser.add_argument(
        "command",
        choices=["up", "destroy", "facts", "runtime"],
        help="facts: internal, under the venv; runtime: the make target of the venv the stack needs",
    )
    parser.add_argument("stack", help="stack name: stacks/Pulumi.STACK.yaml")
    args = parser.parse_args(argv)
    sh = Shell(cwd=root)
    try:
        if args.command == "up":
            up(args.stack, sh)
        elif args.command == "destroy":
            destroy(args.stack, sh)
        elif args.command == "runtime":
            # For `make plan/check`: read before any venv exists, like `up`'s own choice.
            print(venv_target(scanned_facts(root / "stacks" / f"Pulumi.{args.stack}.yaml").platform))
        else:
            facts = validated_facts(args.stack)
            print(json.dumps(dataclasses.asdict(facts)))
    except Stop as stop:
        print(stop, file=sys.stderr)
        return stop.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
