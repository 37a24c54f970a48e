"""The Dockerfiles: hadolint finds no errors, and the properties the Deployment relies on hold
(pinned base, non-root numeric user, the launcher as entrypoint, caches under HOME, bake stage)."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib

import pytest
from image_helpers import BIN, REPO_ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

IMAGE_DIR = REPO_ROOT / "model_image"
DOCKERFILES = ["Dockerfile", "Dockerfile.cpu"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_reports_no_errors(name: str) -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--format", "json", "--no-fail", str(IMAGE_DIR / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)
    assert [f for f in findings if f["level"] == "error"] == []


def instructions(name: str) -> list[tuple[str, str]]:
    text = (IMAGE_DIR / name).read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("Dockerfile", r"vllm/vllm-openai:v\d+\.\d+\.\d+\$\{VLLM_DIGEST\}"),
        ("Dockerfile.cpu", r"python:3\.\d+-slim"),
    ],
)
def test_base_image_is_pinned_with_an_optional_digest(name: str, base: str) -> None:
    froms = [rest for word, rest in instructions(name) if word == "FROM"]
    assert re.match(base, froms[0]), froms[0]
    assert ":latest" not in froms[0]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runs_as_numeric_non_root_user_with_the_launcher(name: str) -> None:
    ins = instructions(name)
    args = dict(rest.split("=", 1) for word, rest in ins if word == "ARG" and "=" in rest)
    (user,) = [rest for word, rest in ins if word == "USER"]
    assert user == "${UID}:${GID}" and args["UID"] == "10001" and args["GID"] == "10001"
    (entry,) = [rest for word, rest in ins if word == "ENTRYPOINT"]
    assert json.loads(entry)[1:] == ["-m", "model_image"]
    env = " ".join(rest for word, rest in ins if word == "ENV")
    assert "HOME=/home/inferstack" in env and "XDG_CACHE_HOME=/home/inferstack/.cache" in env
    assert "HF_HOME=/home/inferstack/.cache/huggingface" in env


def test_gpu_image_keeps_every_engine_cache_under_home() -> None:
    env = " ".join(rest for word, rest in instructions("Dockerfile") if word == "ENV")
    for var in ("TRITON_CACHE_DIR", "VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "NUMBA_CACHE_DIR"):
        assert re.search(rf"{var}=/home/inferstack/\S+", env), var
    assert "VLLM_NO_USAGE_STATS=1" in env


@pytest.mark.parametrize("name", DOCKERFILES)
def test_bake_mode_verifies_what_it_copies(name: str) -> None:
    ins = instructions(name)
    stages = [rest for word, rest in ins if word == "FROM"]
    assert "runtime AS bake-true" in stages and "runtime AS bake-false" in stages
    assert stages[-1] == "bake-${BAKE}"
    bake = ins[next(i for i, (w, r) in enumerate(ins) if w == "FROM" and r == "runtime AS bake-true") :]
    assert any(w == "COPY" and "bake/" in r for w, r in bake)
    assert any(w == "RUN" and r.endswith("-m model_image verify") for w, r in bake)


def test_image_pins_satisfy_the_project_ranges() -> None:
    # The images' locks (`make lock`) against pyproject's `image` / `image-test` extras: every package the
    # extras name is in a lock, at a version inside the range (torch 2.13.0+cpu is inside ==2.13.0).
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    ranges = {
        canonicalize_name(Requirement(r).name): Requirement(r)
        for r in project["project"]["optional-dependencies"]["image"]
        + project["project"]["optional-dependencies"]["image-test"]
    }
    launcher = {
        canonicalize_name(Requirement(r).name) for r in project["project"]["optional-dependencies"]["image"]
    }
    engine = {"torch", "transformers", "tokenizers"}
    for lock, needed in (("requirements.txt", launcher), ("requirements-cpu.txt", launcher | engine)):
        text = re.sub(r"\\\n\s*", " ", (IMAGE_DIR / lock).read_text())
        pinned = {}
        for line in text.splitlines():
            spec = line.split("--hash=", 1)[0].split("#", 1)[0].strip()
            if spec and not spec.startswith("-"):
                req = Requirement(spec)
                (version,) = [s.version for s in req.specifier]
                pinned[canonicalize_name(req.name)] = version
        assert needed <= pinned.keys(), f"{lock} lacks {needed - pinned.keys()}"
        for name, version in pinned.items():
            if name in ranges:
                assert ranges[name].specifier.contains(version), (
                    f"{lock}: {name}=={version} is outside {ranges[name]}"
                )
