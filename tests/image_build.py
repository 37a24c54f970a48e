"""Build the serving images for `make e2e` on a machine with no image registry: a Docker engine, a Debian
base made here, the lock's wheels served on loopback, and the project's own Dockerfiles.

- The engine: the one DOCKER_HOST (or the default socket) answers; else, as root with Debian's
  `docker.io` installed (`make e2e-host`), a private dockerd with its own data-root, exec-root and socket
  under the work folder, stopped by its PID at the end.
- The base: `debootstrap --variant=minbase` of Debian bookworm with python3 and pip, imported with
  `docker import` (about a minute; cached as an image). It stands in for python:3.11-slim-bookworm:
  Debian's python3 is 3.11 too, and the Debian PEP 668 marker is removed, as the official image has none.
- The GPU image's stand-in base adds a Python 3.12 (the vLLM image's), registered as python3 only (no
  `python`, as in vllm/vllm-openai), and uv. The 9 GB vLLM base itself cannot be pulled here.
- The wheels: `pip download` of the image's lock, hash-checked, served over loopback and passed as the
  Dockerfiles' WHEELS build argument (`docker build --network host`).

Every failure raises BuildError with the step, the command and its output: never a silent skip.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.processes import LoopbackHTTPServer

REPO_ROOT = Path(__file__).resolve().parents[1]
DEBIAN_BASE = "inferstack-e2e/debian-python:bookworm"
GPU_STAND_IN = "inferstack-e2e/python3.12-uv:bookworm"


def debian_mirror() -> str:
    """E2E_DEBIAN_MIRROR, else the Debian archive this host's apt uses (its sources' first `debian` URI),
    else deb.debian.org."""
    if os.environ.get("E2E_DEBIAN_MIRROR"):
        return os.environ["E2E_DEBIAN_MIRROR"]
    sources = [*sorted(Path("/etc/apt/sources.list.d").glob("*.sources")), Path("/etc/apt/sources.list")]
    for path in sources:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for match in re.finditer(r"(?m)^(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s", text):
            return match.group(1)
    return "http://deb.debian.org/debian"


class BuildError(AssertionError):
    """A step of building or running the images failed; the message names the step and the cause."""


def run(argv: list[str], step: str, timeout: float = 1800, **kwargs: object) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError:
        raise BuildError(f"{step}: {argv[0]} is not installed (make e2e-host installs it, as root)") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{step}: `{' '.join(argv[:4])} ...` ran past {timeout:.0f} s") from None
    if result.returncode != 0:
        out = (result.stdout + result.stderr)[-4000:]
        raise BuildError(f"{step}: `{' '.join(argv[:4])} ...` exited {result.returncode}:\n{out}")
    return str(result.stdout)


def docker_client() -> str:
    return os.environ.get("DOCKER", "docker")


def building_client() -> str:
    """A Docker client that builds with BuildKit: DOCKER if set; `docker` when it has the buildx plugin
    (Docker 23+ needs it for BuildKit); else Debian's 20.10 client, which has BuildKit built in."""
    if os.environ.get("DOCKER"):
        return os.environ["DOCKER"]
    try:
        if subprocess.run(["docker", "buildx", "version"], capture_output=True, timeout=20).returncode == 0:
            return "docker"
    except (FileNotFoundError, subprocess.TimeoutExpired):
        pass
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    raise BuildError("no Docker client here builds with BuildKit: install the buildx plugin, or set DOCKER")


def engine_answers(docker: str) -> bool:
    try:
        return subprocess.run([docker, "info"], capture_output=True, timeout=20).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def docker_engine(work: Path) -> Iterator[None]:
    """A Docker engine for the session: the one that answers, or a private dockerd started here.

    Sets DOCKER (the client) and DOCKER_HOST in os.environ while it runs. Raises BuildError when there is
    neither, naming how to get one."""
    if engine_answers(docker_client()):
        saved_client = os.environ.get("DOCKER")
        os.environ["DOCKER"] = building_client()
        try:
            yield
        finally:
            if saved_client is None:
                os.environ.pop("DOCKER", None)
            else:
                os.environ["DOCKER"] = saved_client
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        raise BuildError(
            "no Docker engine answers (`docker info` failed) and none can be started here: run "
            "`make e2e-host` as root (installs Debian's docker.io and debootstrap), or start Docker"
        )
    root = work / "docker"
    root.mkdir(parents=True, exist_ok=True)
    sock = root / "docker.sock"
    log = open(root / "dockerd.log", "ab")  # noqa: SIM115 - closed in finally
    # No iptables rules and no IP forwarding: the engine leaves the host's firewall as it found it. Nothing
    # here needs them: ports are published on loopback by docker-proxy, containers reach this host (moto) on
    # the bridge's own address, and builds use the host's network.
    proc = subprocess.Popen(
        [dockerd, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
         "--host", f"unix://{sock}", "--pidfile", str(root / "dockerd.pid"),
         "--iptables=false", "--ip-forward=false"],
        stdout=log, stderr=log,
    )  # fmt: skip
    saved = {k: os.environ.get(k) for k in ("DOCKER", "DOCKER_HOST")}
    # Debian's client (20.10) builds with BuildKit by itself; a newer client on PATH wants the buildx plugin.
    os.environ["DOCKER"] = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
    os.environ["DOCKER_HOST"] = f"unix://{sock}"
    try:
        deadline = time.monotonic() + 60
        while not engine_answers(os.environ["DOCKER"]):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (root / "dockerd.log").read_text(errors="replace")[-3000:]
                raise BuildError(f"dockerd did not start (exit {proc.poll()}):\n{tail}")
            time.sleep(0.5)
        yield
    finally:
        # This engine is ours: drop the images a rebuild left untagged, so repeated runs do not fill the disk
        # (the bases, the built images and BuildKit's cache stay for the next run).
        subprocess.run([os.environ["DOCKER"], "image", "prune", "--force"], capture_output=True, timeout=300)
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def image_exists(tag: str) -> bool:
    return subprocess.run([docker_client(), "image", "inspect", tag], capture_output=True).returncode == 0


def debian_base(work: Path) -> str:
    """DEBIAN_BASE, made by debootstrap and docker import unless the engine has it already."""
    if image_exists(DEBIAN_BASE):
        return DEBIAN_BASE
    rootfs = work / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    run(["debootstrap", "--variant=minbase", "--include=python3,python3-pip", "bookworm", str(rootfs),
         debian_mirror()], "debootstrap of Debian bookworm")  # fmt: skip
    # python:3.11-slim has no PEP 668 marker (its Python is not Debian's): pip installs system-wide there.
    (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    run([docker_client(), "import", "--change", "CMD [\"python3\"]", "--change",
         "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "-", DEBIAN_BASE],
        "docker import of the Debian base", stdin=tar.stdout)  # fmt: skip
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    return DEBIAN_BASE


def cpu_base(work: Path) -> str:
    """The CPU image's base: E2E_CPU_BASE (any image the engine has or can pull), else DEBIAN_BASE."""
    return os.environ.get("E2E_CPU_BASE") or debian_base(work)


def python312_prefix() -> Path:
    """A CPython 3.12 installation on this machine (E2E_PYTHON312, or python3.12 on PATH, or pyenv's)."""
    candidates = [os.environ.get("E2E_PYTHON312", ""), shutil.which("python3.12") or ""]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12.*/bin/python3.12"))
    for exe in filter(None, candidates):
        out = subprocess.run(
            [exe, "-c", "import sys; print(sys.version_info[:2] == (3, 12), sys.base_prefix)"],
            capture_output=True, text=True,
        )  # fmt: skip
        ok, _, prefix = out.stdout.strip().partition(" ")
        if out.returncode == 0 and ok == "True":
            return Path(prefix)
    raise BuildError(
        "the GPU image's stand-in base needs a CPython 3.12 (the vLLM image's Python): set E2E_PYTHON312 "
        "to its python3.12"
    )


def gpu_stand_in(work: Path) -> str:
    """GPU_STAND_IN: the Debian base plus a relocated CPython 3.12 as `python3` (no `python`) and uv."""
    if image_exists(GPU_STAND_IN):
        return GPU_STAND_IN
    ctx = work / "gpu-stand-in"
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)
    # Without the host's site-packages: the image gets what the lock installs, nothing the host had.
    shutil.copytree(
        python312_prefix(),
        ctx / "python3.12",
        symlinks=True,
        ignore=lambda folder, names: names if folder.endswith("/lib/python3.12/site-packages") else [],
    )
    uv = shutil.which("uv") or str(REPO_ROOT / ".tools/uv/bin/uv")
    if not Path(uv).exists():
        raise BuildError("the GPU stand-in needs uv (make tools installs .tools/uv from the lock)")
    shutil.copy2(uv, ctx / "uv")
    (ctx / "Dockerfile").write_text(
        f"FROM {debian_base(work)}\n"
        "COPY python3.12/ /opt/python3.12/\n"
        "COPY uv /usr/local/bin/uv\n"
        # The prefix moved: its libpython is found through the loader path, its stdlib relative to the binary.
        "ENV LD_LIBRARY_PATH=/opt/python3.12/lib\n"
        "RUN ln -s /opt/python3.12/bin/python3.12 /usr/local/bin/python3 \\\n"
        "    && python3 -c 'import sys, ssl; assert sys.version_info[:2] == (3, 12)' \\\n"
        "    && ! command -v python\n"
    )
    run([docker_client(), "build", "-t", GPU_STAND_IN, str(ctx)], "the GPU stand-in base",
        env={**os.environ, "DOCKER_BUILDKIT": "1"})  # fmt: skip
    return GPU_STAND_IN


def wheelhouse(lock: Path, dest: Path, python_version: str | None = None) -> Path:
    """Every wheel of `lock`, hash-checked, in `dest` (pip download; PyPI, or TORCH_INDEX for torch's CPU
    build). `python_version` ("3.12") downloads for another interpreter than this one."""
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
            "--only-binary", ":all:", "--dest", str(dest), "-r", str(lock)]  # fmt: skip
    if python_version:
        # pip takes a --platform literally (no older manylinux implied): name every glibc the base has
        # (Debian bookworm: 2.36) down to manylinux2014's 2.17.
        arch = os.uname().machine
        argv += ["--python-version", python_version, "--implementation", "cp"]
        argv += [a for minor in range(17, 37) for a in ("--platform", f"manylinux_2_{minor}_{arch}")]
        argv += ["--platform", f"manylinux2014_{arch}"]
    if os.environ.get("TORCH_INDEX"):
        argv += ["--extra-index-url", os.environ["TORCH_INDEX"]]
    run(argv, f"pip download of {lock.relative_to(REPO_ROOT)}")
    return dest


@contextlib.contextmanager
def served(folder: Path) -> Iterator[str]:
    """`folder` over HTTP on a loopback port (a directory listing pip and uv read as --find-links)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = LoopbackHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def build_image(
    dockerfile: str, tag: str, base: str, wheels_url: str, build_args: list[str] | None = None
) -> None:
    """docker build of model_image/`dockerfile` from the repository root, on `base`, with the wheels and
    any other `NAME=value` build arguments."""
    extra = [a for arg in build_args or [] for a in ("--build-arg", arg)]
    run([docker_client(), "build", "--network", "host", "--file", f"model_image/{dockerfile}",
         "--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"WHEELS={wheels_url}", *extra, "--tag", tag, "."],
        f"docker build of model_image/{dockerfile}", cwd=REPO_ROOT,
        env={**os.environ, "DOCKER_BUILDKIT": "1"})  # fmt: skip
