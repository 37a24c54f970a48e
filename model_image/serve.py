"""`serve`: check the settings against the machine, build the engine's command line, exec it.

The launcher replaces itself with the engine (os.execvpe), so Kubernetes' SIGTERM reaches the engine
directly. Building the command is pure (settings in, argv + environment out) and tested as such.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from model_image import cache
from model_image.engine_flags import TRANSFORMERS_MANAGED, VLLM_MANAGED, managed_flag_problems, redacted
from model_image.errors import FetchError, LauncherError, SettingsError
from model_image.manifest import FileSpec
from model_image.settings import Engine, LoadMode, ServeSettings

log = logging.getLogger("model_image.serve")

_NVIDIA_DEVICE = re.compile(r"^nvidia\d+$")

# Settings only vLLM honours; with the transformers engine they would be silently ignored.
VLLM_ONLY = ("max_model_len", "gpu_memory_utilization", "quantization", "api_key_file")


@dataclass(frozen=True)
class EngineCommand:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to the launcher's environment
    unset: tuple[str, ...] = ()  # removed from it

    def environ(self, base: Mapping[str, str]) -> dict[str, str]:
        env = {k: v for k, v in base.items() if k not in self.unset}
        env.update(self.env)
        return env


def visible_gpus(env: Mapping[str, str], dev: Path = Path("/dev")) -> int:
    """GPUs this container can use: /dev/nvidiaN devices, narrowed by CUDA_VISIBLE_DEVICES if set."""
    try:
        devices = sum(1 for p in dev.iterdir() if _NVIDIA_DEVICE.match(p.name))
    except OSError:
        devices = 0
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if cvd is None:
        return devices
    listed = [d for d in (x.strip() for x in cvd.split(",")) if d]
    if any(d.startswith("-") for d in listed):  # "-1" hides every GPU
        return 0
    return min(len(listed), devices)


def check_serve(s: ServeSettings, gpus: int) -> list[str]:
    """Every problem with these settings on this machine (empty when `serve` can go ahead)."""
    problems: list[str] = []
    if s.engine is Engine.VLLM and gpus == 0:
        problems.append(
            "ENGINE=vllm needs a GPU, but none is visible (no /dev/nvidiaN device, or CUDA_VISIBLE_DEVICES "
            "hides them): request nvidia.com/gpu for the pod, or set ENGINE=transformers to serve on CPU"
        )
    if s.engine is Engine.TRANSFORMERS:
        for name in VLLM_ONLY:
            if getattr(s, name) is not None:
                why = (
                    "transformers serve checks no API keys; let the gateway check them"
                    if name == "api_key_file"
                    else "transformers serve has no such option"
                )
                problems.append(
                    f"{name.upper()} is a vLLM setting and conflicts with ENGINE=transformers ({why}): "
                    f"unset {name.upper()}, or use ENGINE=vllm"
                )
    if s.api_key_file is not None and s.engine is Engine.VLLM:
        try:
            key = s.api_key_file.read_text().strip()
        except FileNotFoundError:
            problems.append(
                f"API_KEY_FILE={s.api_key_file} does not exist: mount the API-key Secret there, "
                "or unset API_KEY_FILE"
            )
        except OSError as e:
            problems.append(
                f"API_KEY_FILE={s.api_key_file} cannot be read ({e.strerror}): check the mount and "
                "its permissions"
            )
        else:
            if not key:
                problems.append(f"API_KEY_FILE={s.api_key_file} is empty: put the key in the Secret")
    if s.load_mode is LoadMode.STREAM:
        if s.engine is not Engine.VLLM:
            problems.append(
                "LOAD_MODE=stream needs ENGINE=vllm (the Run:ai model streamer is vLLM's): use LOAD_MODE=copy"
            )
        if s.uri.scheme.value not in STREAM_SCHEMES:
            problems.append(
                f"LOAD_MODE=stream reads s3:// and gs:// only, and MODEL_URI is {s.uri.scheme.value}://: use "
                "LOAD_MODE=copy (fetch downloads and verifies it)"
            )
    # Normalised as vLLM's parser reads flags (model_image/engine_flags.py): --api_key, abbreviations, --config.
    managed = VLLM_MANAGED if s.engine is Engine.VLLM else TRANSFORMERS_MANAGED
    problems += managed_flag_problems(s.extra_args, managed, "EXTRA_ENGINE_ARGS")
    return problems


#: Object stores vLLM's Run:ai streamer loader reads (vllm/transformers_utils/runai_utils.py
#: is_runai_obj_uri: s3://, gs://, az://; we offer the two our platforms grant workload identities for).
STREAM_SCHEMES = ("s3", "gs")

#: What `--load-format` LOAD_MODE=stream passes: vLLM's RunaiModelStreamerLoader
#: (vllm/model_executor/model_loader/runai_streamer_loader.py).
RUNAI_STREAMER = "runai_streamer"


def vllm_command(s: ServeSettings, model_path: Path | str, gpus: int, api_key: str | None) -> EngineCommand:
    """`vllm serve` on the verified model folder, or (LOAD_MODE=stream) on the s3:// or gs:// uri with
    `--load-format runai_streamer`. The API key goes in the environment, not argv (ps)."""
    argv = [
        "vllm", "serve", str(model_path),
        "--served-model-name", s.served_model_name,
        "--host", s.host,
        "--port", str(s.port),
        "--tensor-parallel-size", str(gpus),
        "--enable-prefix-caching",
        "--shutdown-timeout", str(s.shutdown_timeout),
    ]  # fmt: skip
    if s.max_model_len is not None:
        argv += ["--max-model-len", str(s.max_model_len)]
    if s.dtype is not None:
        argv += ["--dtype", s.dtype.value]
    if s.quantization is not None:
        argv += ["--quantization", s.quantization]
    if s.gpu_memory_utilization is not None:
        argv += ["--gpu-memory-utilization", str(s.gpu_memory_utilization)]
    if s.load_mode is LoadMode.STREAM:
        argv += ["--load-format", RUNAI_STREAMER]
    argv += s.extra_args
    env = {
        "HF_HUB_OFFLINE": "1",  # the weights are local; never reach for the hub at start
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    if api_key is not None:
        env["VLLM_API_KEY"] = api_key
    # A Service named `vllm` injects VLLM_PORT=tcp://...; vLLM reads VLLM_PORT as an int and crash-loops.
    return EngineCommand(argv, env, unset=("VLLM_PORT",))


def transformers_command(s: ServeSettings, hub_cache: Path, python: str) -> EngineCommand:
    """`transformers serve` pinned to the served model, found in a hub-cache layout made for it.

    uvicorn drains open requests on SIGTERM but without a deadline; model_image.drain forwards SIGTERM,
    sends SIGKILL SHUTDOWN_TIMEOUT seconds later, and exits 0 after a drain that ended on the SIGTERM
    (uvicorn re-raises it once done; GNU timeout, used before, turned that into exit 143).
    """
    argv = [
        python, "-m", "model_image.drain", f"--kill-after={s.shutdown_timeout}", "--",
        python, "-m", "transformers.cli.transformers", "serve", s.served_model_name,
        "--host", s.host,
        "--port", str(s.port),
        "--log-level", "info",
    ]  # fmt: skip
    if s.dtype is not None:
        argv += ["--dtype", s.dtype.value]
    argv += s.extra_args
    env = {
        "HF_HUB_CACHE": str(hub_cache),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    return EngineCommand(argv, env)


def has_chat_template(model_path: Path) -> bool:
    if (model_path / "chat_template.jinja").is_file() or (model_path / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((model_path / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(config.get("chat_template"))


def snapshot_id(model_path: Path) -> str:
    """A stable 40-hex "commit" for the hub-cache entry, derived from the cache key."""
    return hashlib.sha1(model_path.name.encode(), usedforsecurity=False).hexdigest()


def build_hub_cache(hub_cache: Path, served_name: str, model_path: Path, files: list[FileSpec]) -> Path:
    """Lay the verified model out as the hub cache entry `served_name` (symlinks, no copies).

    `transformers serve` lists /v1/models from the hub cache and loads `served_name@main` from it.
    The folder is ours alone and rebuilt on every start, so only the served model is listed.
    """
    if hub_cache.exists():
        shutil.rmtree(hub_cache)
    repo = hub_cache / ("models--" + served_name.replace("/", "--"))
    commit = snapshot_id(model_path)
    snapshot = repo / "snapshots" / commit
    for spec in files:
        link = snapshot / spec.path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to((model_path / spec.path).resolve())
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return repo


def default_hub_cache(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "/tmp")) / ".cache")
    return Path(base) / "inferstack" / "hub"


def prepare(s: ServeSettings, env: Mapping[str, str], dev: Path = Path("/dev")) -> EngineCommand:
    """Everything `serve` does short of exec: checks, the model folder, the command."""
    gpus = visible_gpus(env, dev)
    problems = check_serve(s, gpus)
    if problems:
        raise SettingsError(problems)
    if s.load_mode is LoadMode.STREAM:
        # No verified folder: the streamer reads the bucket itself (the uri without a trailing slash, as
        # vLLM's docs write it), with the pod's own identity.
        api_key = s.api_key_file.read_text().strip() if s.api_key_file is not None else None
        return vllm_command(s, s.uri.canonical.rstrip("/"), gpus, api_key)
    model_path = cache.model_path(s.model_dir, s.uri)
    if not model_path.exists() and not model_path.is_symlink():
        raise LauncherError(
            f"no verified model for MODEL_URI={s.model_uri} at {model_path}: "
            "run `python -m model_image fetch` first (the init container) with the same MODEL_URI and MODEL_DIR"
        )
    try:
        # The record validated, its source MODEL_URI, the folder matching it (cache.check_verified): the
        # operator sees why a model was refused, not only that it was.
        files = cache.check_verified(model_path, s.uri.canonical).files
    except FetchError as e:
        raise LauncherError(
            f"the cached model for MODEL_URI={s.model_uri} at {model_path} is not usable: {e}; "
            "run `python -m model_image fetch` again (it replaces a damaged cache)"
        ) from None
    if s.engine is Engine.VLLM:
        api_key = s.api_key_file.read_text().strip() if s.api_key_file is not None else None
        return vllm_command(s, model_path, gpus, api_key)
    if not has_chat_template(model_path):
        raise SettingsError(
            [
                f"MODEL_URI={s.model_uri}: the model has no chat template (no chat_template.jinja, and no "
                "chat_template in tokenizer_config.json); the transformers engine needs one to answer "
                "/v1/chat/completions: add it to the model files and SHA256SUMS"
            ]
        )
    hub_cache = default_hub_cache(env)
    try:
        build_hub_cache(hub_cache, s.served_model_name, model_path, files)
    except OSError as e:
        raise LauncherError(
            f"cannot write the hub-cache layout at {hub_cache}: {e}; is HOME writable?"
        ) from None
    return transformers_command(s, hub_cache, sys.executable)


def shell_line(cmd: EngineCommand) -> str:
    """The command for the log: argv only (the environment, which holds VLLM_API_KEY, is never logged),
    with the value of any flag named like a secret replaced by *** (engine_flags.redacted)."""
    return redacted(cmd.argv)


def exec_engine(cmd: EngineCommand) -> None:  # pragma: no cover - replaces the process
    log.info("exec: %s", shell_line(cmd))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(cmd.argv[0], cmd.argv, cmd.environ(os.environ))
    except OSError as e:
        raise LauncherError(f"cannot start {cmd.argv[0]}: {e.strerror}") from None
