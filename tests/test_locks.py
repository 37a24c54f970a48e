"""Locked environments: every install comes from a lock with hashes, and the tests run the engine the
CPU image ships.

The locks are written by `make lock` (uv pip compile --generate-hashes); the Makefile and the Dockerfiles
install them with hash checking and no dependency resolution, so an upstream release cannot change what
CI or an image runs. The engine-parity test compares the packages installed here with
model_image/requirements-cpu-amd64.txt: a test environment that drifts from the image (transformers 5.24.0
against the image's 5.23.0 broke the SIGTERM test once) fails here, naming each package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
# The CPU image's lock per architecture Dockerfile.cpu builds for (BuildKit's TARGETARCH). The test
# environment is Linux x86_64, so the engine-parity test compares it with the amd64 lock; the arm64 lock is
# held to the amd64 one package by package.
CPU_IMAGE_LOCKS = {arch: ROOT / "model_image" / f"requirements-cpu-{arch}.txt" for arch in ("amd64", "arm64")}
CPU_IMAGE_LOCK = CPU_IMAGE_LOCKS["amd64"]
GPU_IMAGE_LOCK = ROOT / "model_image" / "requirements.txt"
LOCKS = [
    ROOT / "requirements" / "runtime.txt",
    ROOT / "requirements" / "runtime-core.txt",
    ROOT / "requirements" / "dev.txt",
    ROOT / "requirements" / "checkov.txt",
    ROOT / "requirements" / "uv.txt",
    ROOT / "policy" / "requirements.txt",
    *CPU_IMAGE_LOCKS.values(),
    GPU_IMAGE_LOCK,
]
CLOUD_SDKS = {"pulumi-aws", "pulumi-gcp", "pulumi-azure-native"}


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503)
    version: str
    requirement: Requirement
    hashes: tuple[str, ...]

    def applies(self) -> bool:
        """Whether this line is for the running interpreter and platform (its environment marker)."""
        return self.requirement.marker is None or self.requirement.marker.evaluate()


def read_lock(path: Path) -> list[Pin]:
    """The pins of a `uv pip compile --generate-hashes` file: one `name==version [; marker]` per entry."""
    entries = re.sub(r"\\\n\s*", " ", path.read_text(encoding="utf-8"))
    pins = []
    for line in entries.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        spec, *hashes = (part.strip() for part in line.split("--hash="))
        req = Requirement(spec)
        (version,) = [s.version for s in req.specifier if s.operator == "=="]
        pins.append(Pin(canonicalize_name(req.name), version, req, tuple(hashes)))
    return pins


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def test_the_test_environment_runs_the_engine_the_cpu_image_ships() -> None:
    # Every package of the CPU image (the engine: torch, transformers, tokenizers, accelerate, safetensors,
    # huggingface-hub, the serving stack; and the launcher's) at the image's exact version.
    drift = []
    for pin in read_lock(CPU_IMAGE_LOCK):
        if not pin.applies():
            continue
        have = installed(pin.name)
        if have is None or Version(have) != Version(pin.version):
            drift.append(f"{pin.name}: tests have {have or 'nothing'}, the CPU image ships {pin.version}")
    assert not drift, (
        f"the test environment differs from {CPU_IMAGE_LOCK.relative_to(ROOT)}: "
        + "; ".join(drift)
        + ". Run `make venv` (it installs requirements/dev.txt); if the lock itself moved, `make lock`."
    )


@pytest.mark.parametrize("arch", sorted(CPU_IMAGE_LOCKS))
def test_the_engine_is_in_the_cpu_image_lock(arch: str) -> None:
    names = {pin.name for pin in read_lock(CPU_IMAGE_LOCKS[arch])}
    assert {"torch", "transformers", "tokenizers", "huggingface-hub", "safetensors"} <= names
    (torch,) = [pin for pin in read_lock(CPU_IMAGE_LOCKS[arch]) if pin.name == "torch"]
    # PyPI's Linux torch 2.13.0 is a CUDA build on aarch64 too (its METADATA requires cuda-toolkit,
    # nvidia-cudnn-cu13, triton on Linux): both architectures take PyTorch's CPU index build.
    assert torch.version.endswith("+cpu"), (
        f"the {arch} CPU image takes PyTorch's CPU build, not PyPI's CUDA one"
    )
    gpu = sorted(name for name in names if name.startswith(("nvidia-", "cuda-")) or name == "triton")
    assert not gpu, f"{CPU_IMAGE_LOCKS[arch].relative_to(ROOT)} pins GPU libraries: {gpu}"


def test_the_cpu_image_locks_pin_the_same_versions_on_every_architecture() -> None:
    # One image, two platforms: `docker buildx build --platform linux/amd64,linux/arm64` must give the same
    # engine on both, so a package differs only where a wheel's files do (its hashes), never its version.
    amd64, arm64 = ({pin.name: pin for pin in read_lock(lock)} for lock in CPU_IMAGE_LOCKS.values())
    assert amd64.keys() == arm64.keys(), (
        f"only amd64: {sorted(amd64.keys() - arm64.keys())}, only arm64: {sorted(arm64.keys() - amd64.keys())}"
    )
    differ = {
        name: (pin.version, arm64[name].version)
        for name, pin in amd64.items()
        if pin.version != arm64[name].version
    }
    assert not differ, f"amd64 vs arm64 versions: {differ}. Run `make lock`."
    for name, pin in arm64.items():
        assert pin.hashes, f"requirements-cpu-arm64.txt: {name} has no hash"


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_lock_pins_every_package_with_hashes(lock: Path) -> None:
    pins = read_lock(lock)
    assert pins, f"{lock} pins nothing"
    unhashed = [
        pin.name for pin in pins if not pin.hashes or not all(h.startswith("sha256:") for h in pin.hashes)
    ]
    assert not unhashed, f"{lock.relative_to(ROOT)}: no sha256 for {unhashed}"
    assert "make lock" in lock.read_text(encoding="utf-8").split("\n", 3)[1], "written by `make lock`"


def _versions(lock: str) -> dict[str, str]:
    return {pin.name: pin.version for pin in read_lock(ROOT / lock) if pin.applies()}


@pytest.mark.parametrize(
    "lock",
    [
        "requirements/runtime.txt",
        "model_image/requirements-cpu-amd64.txt",
        "model_image/requirements-cpu-arm64.txt",
        "policy/requirements.txt",
    ],
)
def test_locks_that_share_packages_with_the_tests_pin_the_versions_the_tests_run(lock: str) -> None:
    dev = _versions("requirements/dev.txt")
    other = _versions(lock)
    differ = {name: (v, dev.get(name)) for name, v in other.items() if dev.get(name) != v}
    assert not differ, f"{lock} vs requirements/dev.txt: {differ}"


def test_the_core_runtime_is_the_full_runtime_less_the_cloud_sdks() -> None:
    full = _versions("requirements/runtime.txt")
    core = _versions("requirements/runtime-core.txt")
    assert full.keys() >= CLOUD_SDKS
    assert not CLOUD_SDKS & core.keys(), "runtime-core must not carry the cloud SDKs"
    assert {name: v for name, v in core.items() if full.get(name) != v} == {}
    assert {"pulumi", "pulumi-kubernetes", "setuptools"} <= core.keys()


def test_dev_lock_pins_the_cpu_torch_from_the_wheel_pytorch_publishes() -> None:
    (torch,) = [pin for pin in read_lock(ROOT / "requirements" / "dev.txt") if pin.name == "torch"]
    assert torch.version == "2.13.0+cpu"
    assert len(torch.hashes) == 1, "one file: the CPU wheel for CPython 3.11 on Linux x86_64"


def _recipe_lines(makefile: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", makefile)
    return [line.strip() for line in joined.splitlines() if line.startswith("\t")]


def test_every_install_in_the_makefile_comes_from_a_lock_without_resolving() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    variables = dict(re.findall(r"^([A-Z_]+)\s*:?=\s*(.*)$", makefile, re.MULTILINE))
    locked = variables["PIP_LOCKED"]
    for flag in ("--require-hashes", "--no-deps", "--only-binary :all:"):
        assert flag in locked
    project = variables["INSTALL_PROJECT"]
    assert "--no-deps" in project and "--no-build-isolation" in project
    lines = _recipe_lines(makefile)
    installs = [line for line in lines if "pip install" in line]
    assert installs
    for line in installs:
        assert "$(PIP_LOCKED)" in line, f"not from a lock: {line}"
        (lock,) = re.findall(r"-r (\S+)", line)
        assert (ROOT / lock).is_file(), f"{line}: no {lock}"
    assert all("--upgrade" not in line for line in lines), "pip's own upgrade resolves a range"
    editable = [line for line in lines if "$(INSTALL_PROJECT)" in line]
    assert len(editable) == 2  # runtime-core and runtime


@pytest.mark.parametrize(
    ("dockerfile", "lock"),
    [("Dockerfile", "requirements.txt"), ("Dockerfile.cpu", "requirements-cpu-${TARGETARCH}.txt")],
)
def test_the_images_install_only_their_lock_with_hashes(dockerfile: str, lock: str) -> None:
    text = re.sub(r"\\\n", " ", (ROOT / "model_image" / dockerfile).read_text(encoding="utf-8"))
    installs = re.findall(r"pip install[^&\n]*", text)
    assert installs, f"{dockerfile} installs nothing"
    for install in installs:
        assert "--require-hashes" in install and "--no-deps" in install, install
        assert re.search(rf"-r \"?\S*/{re.escape(lock)}\b", install), install


def test_the_cpu_image_copies_a_lock_for_every_architecture_it_builds() -> None:
    text = (ROOT / "model_image" / "Dockerfile.cpu").read_text(encoding="utf-8")
    copied = set(re.findall(r"^COPY (?:--\S+ )*(.*) /opt/inferstack/$", text, re.MULTILINE)[0].split())
    assert copied == {str(lock.relative_to(ROOT)) for lock in CPU_IMAGE_LOCKS.values()}
