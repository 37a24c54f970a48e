"""The Dockerfiles: hadolint finds no errors, and the properties the Deployment relies on hold
(pinned base, non-root numeric user, the launcher as entrypoint, caches under HOME, bake stage)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from image_helpers import BIN, REPO_ROOT, base_image_default, dockerfile_instructions
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


@pytest.mark.parametrize(
    ("name", "repository"),
    [("Dockerfile", r"vllm/vllm-openai:v\d+\.\d+\.\d+"), ("Dockerfile.cpu", r"python:3\.11-slim-bookworm")],
)
def test_base_image_is_a_build_argument_pinned_by_digest(name: str, repository: str) -> None:
    froms = [rest for word, rest in dockerfile_instructions(name) if word == "FROM"]
    assert froms[0] == "${BASE_IMAGE} AS runtime", froms[0]
    # The default: the official image by the digest of its multi-platform index, so a rebuild of the tag
    # upstream never changes what is built; `make e2e` passes a base made on the machine instead.
    assert re.fullmatch(repository + r"@sha256:[0-9a-f]{64}", base_image_default(name)), base_image_default(
        name
    )


def test_the_vllm_base_tag_is_the_vllm_the_launcher_lock_was_resolved_under() -> None:
    tag = base_image_default("Dockerfile").split("@")[0].rsplit(":v", 1)[1]
    pinned = re.search(r"^vllm==(\S+)$", (REPO_ROOT / "requirements" / "vllm-image.in").read_text(), re.M)
    assert pinned is not None and pinned.group(1) == tag


@pytest.mark.parametrize("name", DOCKERFILES)
def test_no_remote_dockerfile_frontend(name: str) -> None:
    # A `# syntax=` line makes BuildKit pull a frontend image from Docker Hub at every build: air-gapped
    # builders and `make e2e` (no registry) cannot.
    first = (REPO_ROOT / "model_image" / name).read_text().splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first, re.I), first


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runs_as_numeric_non_root_user_with_the_launcher(name: str) -> None:
    ins = dockerfile_instructions(name)
    args = dict(rest.split("=", 1) for word, rest in ins if word == "ARG" and "=" in rest)
    (user,) = [rest for word, rest in ins if word == "USER"]
    assert user == "${UID}:${GID}" and args["UID"] == "10001" and args["GID"] == "10001"
    (entry,) = [rest for word, rest in ins if word == "ENTRYPOINT"]
    assert json.loads(entry)[1:] == ["-m", "model_image"]
    env = " ".join(rest for word, rest in ins if word == "ENV")
    assert "HOME=/home/inferstack" in env and "XDG_CACHE_HOME=/home/inferstack/.cache" in env
    assert "HF_HOME=/home/inferstack/.cache/huggingface" in env


def test_gpu_image_keeps_every_engine_cache_under_home() -> None:
    env = " ".join(rest for word, rest in dockerfile_instructions("Dockerfile") if word == "ENV")
    for var in ("TRITON_CACHE_DIR", "VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "NUMBA_CACHE_DIR"):
        assert re.search(rf"{var}=/home/inferstack/\S+", env), var
    assert "VLLM_NO_USAGE_STATS=1" in env


@pytest.mark.parametrize("name", DOCKERFILES)
def test_bake_mode_verifies_what_it_copies(name: str) -> None:
    ins = dockerfile_instructions(name)
    stages = [rest for word, rest in ins if word == "FROM"]
    assert "runtime AS bake-true" in stages and "runtime AS bake-false" in stages
    assert stages[-1] == "bake-${BAKE}"
    bake = ins[next(i for i, (w, r) in enumerate(ins) if w == "FROM" and r == "runtime AS bake-true") :]
    assert any(w == "COPY" and "bake/" in r for w, r in bake)
    # verify against the source's SHA256SUMS when the build names it (SOURCE_SUMS): a bucket is not
    # reachable from the build, and the record alone only proves the folder agrees with itself.
    assert any(
        w == "RUN" and r.startswith("python3 -m model_image verify ${SOURCE_SUMS:+--sums ") for w, r in bake
    )
    assert any(w == "ARG" and r == 'SOURCE_SUMS=""' for w, r in bake)


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
    for lock, needed in (
        ("requirements.txt", launcher),
        ("requirements-cpu-amd64.txt", launcher | engine),
        ("requirements-cpu-arm64.txt", launcher | engine),
    ):
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


# --- the build context: .dockerignore (Docker's rules, as moby/patternmatcher applies them) ------------


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (without its `!`) as a regex over a context-relative path: Go's
    filepath.Match (`*` and `?` stay within one path segment, `[...]` a class) plus `**`, any number of
    segments; leading and trailing slashes dropped, as Docker's filepath.Clean does."""
    pattern = pattern.strip().strip("/")
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore_excludes(path: str, lines: list[str]) -> bool:
    """Whether Docker leaves `path` (relative to the context root) out of the build context: the last
    pattern that matches the path or one of its parent folders decides; `!` brings a path back."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        regex = _dockerignore_regex(line[1:] if negated else line)
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


DOCKERIGNORE = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()


def test_the_dockerignore_reader_follows_dockers_rules() -> None:
    rules = ["*", "!keep/", "keep/**/*.pyc", "!keep/special.pyc"]
    assert dockerignore_excludes("secret.txt", rules) and dockerignore_excludes("deep/er/file", rules)
    assert not dockerignore_excludes("keep/a/b.py", rules)
    assert dockerignore_excludes("keep/a/b.pyc", rules) and dockerignore_excludes("keep/b.pyc", rules)
    assert not dockerignore_excludes("keep/special.pyc", rules)
    assert not dockerignore_excludes("anything", ["# only a comment", ""])


def _copy_sources(name: str) -> list[str]:
    sources = []
    for word, rest in dockerfile_instructions(name):
        args = rest.split()
        if word != "COPY" or any(arg.startswith("--from") for arg in args):
            continue
        sources += [arg for arg in args[:-1] if not arg.startswith("--")]
    return sources


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_build_context_keeps_every_file_the_dockerfile_copies(name: str) -> None:
    sources = _copy_sources(name)
    assert any(source.startswith("model_image/") for source in sources) and "bake/" in sources
    for source in sources:
        if source == "bake/":  # made by `python -m model_image fetch` before a BAKE=true build
            files = ["bake/manifest.json", "bake/config.json", "bake/weights/model-00001.safetensors"]
        elif (REPO_ROOT / source).is_dir():
            files = [
                str(Path(root, f).relative_to(REPO_ROOT))
                for root, dirs, names in os.walk(REPO_ROOT / source)
                if "__pycache__" not in root
                for f in names
                if not f.endswith(".pyc")
            ]
        else:
            files = [source]
        assert files, f"{name}: COPY {source} names nothing in the repository"
        left_out = [f for f in files if dockerignore_excludes(f, DOCKERIGNORE)]
        assert not left_out, f"{name}: COPY {source} needs {left_out}, which .dockerignore leaves out"


@pytest.mark.parametrize(
    "path",
    [
        ".pulumi-state/.pulumi/stacks/inferstack/local.json",  # the local backend's state and secrets
        ".pulumi-state/passphrase",
        ".venv/bin/python",
        ".tools/checkov/bin/checkov",
        ".tools/uv/bin/uv",
        "policy/venv/bin/python",
        "build/plan/local/manifests.yaml",
        ".git/config",
        ".mypy_cache/3.11/x.json",
        ".pytest_cache/v/cache/nodeids",
        "model_image/__pycache__/serve.cpython-311.pyc",
        "stacks/Pulumi.local.yaml",
        "tests/conftest.py",
    ],
)
def test_the_build_context_leaves_out_state_venvs_and_everything_else(path: str) -> None:
    assert dockerignore_excludes(path, DOCKERIGNORE), f".dockerignore lets {path} into the build context"


def _install_guard(tmp_path: Path, arch: str) -> subprocess.CompletedProcess[str]:
    """Dockerfile.cpu's install RUN up to `pip install`, run by sh with TARGETARCH=arch, its locks in
    tmp_path (for /opt/inferstack)."""
    text = (IMAGE_DIR / "Dockerfile.cpu").read_text().replace("\\\n", " ")
    (run,) = [
        rest
        for word, rest in dockerfile_instructions("Dockerfile.cpu")
        if word == "RUN" and "pip install" in rest
    ]
    guard = run.split("&& pip install", 1)[0].replace("/opt/inferstack/", f"{tmp_path}/")
    for lock in ("requirements-cpu-amd64.txt", "requirements-cpu-arm64.txt"):
        assert f"model_image/{lock}" in text
        (tmp_path / lock).write_text("")
    env = {"PATH": os.environ["PATH"], "TARGETARCH": arch}
    return subprocess.run(["sh", "-c", guard], capture_output=True, text=True, env=env, timeout=30)


def test_the_cpu_image_refuses_the_legacy_builder_before_installing(tmp_path: Path) -> None:
    result = _install_guard(tmp_path, "")  # the legacy builder sets no TARGETARCH
    assert result.returncode == 1
    assert "BuildKit" in result.stderr and "DOCKER_BUILDKIT=1" in result.stderr and "buildx" in result.stderr


@pytest.mark.parametrize(
    ("arch", "ok"), [("amd64", True), ("arm64", True), ("riscv64", False), ("386", False)]
)
def test_the_cpu_image_installs_the_lock_of_its_target_architecture(
    tmp_path: Path, arch: str, ok: bool
) -> None:
    result = _install_guard(tmp_path, arch)
    assert (result.returncode == 0) == ok, result.stderr
    if not ok:
        assert f"not {arch}" in result.stderr and "linux/amd64 and linux/arm64" in result.stderr
