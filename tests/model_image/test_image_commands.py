"""Engine command building and the serve-time checks: pure functions, plain tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir

from model_image.cache import verified_files
from model_image.errors import SettingsError
from model_image.fetch import fetch
from model_image.manifest import write_sha256sums
from model_image.serve import (
    EngineCommand,
    build_hub_cache,
    check_serve,
    has_chat_template,
    prepare,
    transformers_command,
    visible_gpus,
    vllm_command,
)
from model_image.settings import Engine, ServeSettings
from model_image.uri import parse_model_uri


def settings(**overrides: object) -> ServeSettings:
    values: dict[str, object] = {
        "model_uri": "s3://b/m/v1",
        "model_dir": "/models",
        "engine": "vllm",
        "served_model_name": "acme/chat",
        **overrides,
    }
    return ServeSettings.model_validate(values)


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_vllm_command_carries_every_setting() -> None:
    s = settings(
        max_model_len=8192,
        dtype="bfloat16",
        quantization="fp8",
        gpu_memory_utilization=0.85,
        port=8080,
        shutdown_timeout=45,
        extra_engine_args="--max-num-seqs 64 --enable-chunked-prefill",
    )
    cmd = vllm_command(s, Path("/models/m-abc"), gpus=4, api_key="sk-secret")
    argv = cmd.argv
    assert argv[:3] == ["vllm", "serve", "/models/m-abc"]
    assert flag(argv, "--served-model-name") == "acme/chat"
    assert flag(argv, "--tensor-parallel-size") == "4"
    assert flag(argv, "--max-model-len") == "8192"
    assert flag(argv, "--dtype") == "bfloat16"
    assert flag(argv, "--quantization") == "fp8"
    assert flag(argv, "--gpu-memory-utilization") == "0.85"
    assert flag(argv, "--port") == "8080"
    assert flag(argv, "--host") == "0.0.0.0"
    assert flag(argv, "--shutdown-timeout") == "45"
    assert "--enable-prefix-caching" in argv
    assert argv[-3:] == ["--max-num-seqs", "64", "--enable-chunked-prefill"], "extra args come last"
    # The key must not be visible in `ps`: it travels in the environment.
    assert "sk-secret" not in " ".join(argv) and "--api-key" not in argv
    assert cmd.env["VLLM_API_KEY"] == "sk-secret"
    assert cmd.env["HF_HUB_OFFLINE"] == "1"


def test_vllm_command_leaves_unset_options_to_the_engine() -> None:
    argv = vllm_command(settings(), Path("/m"), gpus=1, api_key=None).argv
    for absent in ("--max-model-len", "--dtype", "--quantization", "--gpu-memory-utilization"):
        assert absent not in argv
    assert "VLLM_API_KEY" not in vllm_command(settings(), Path("/m"), 1, None).env


def test_service_link_vllm_port_is_removed_from_the_engine_environment() -> None:
    cmd = vllm_command(settings(), Path("/m"), gpus=1, api_key=None)
    env = cmd.environ({"VLLM_PORT": "tcp://10.0.0.1:8000", "PATH": "/bin"})
    assert "VLLM_PORT" not in env and env["PATH"] == "/bin"


def test_transformers_command_drains_within_shutdown_timeout() -> None:
    s = settings(
        engine="transformers", dtype="float32", port=9000, shutdown_timeout=20, extra_engine_args="--compile"
    )
    cmd = transformers_command(s, Path("/home/u/.cache/inferstack/hub"), "/usr/bin/python3")
    assert cmd.argv[:5] == ["/usr/bin/python3", "-m", "model_image.drain", "--kill-after=20", "--"]
    assert cmd.argv[5:10] == ["/usr/bin/python3", "-m", "transformers.cli.transformers", "serve", "acme/chat"]
    assert flag(cmd.argv, "--port") == "9000"
    assert flag(cmd.argv, "--dtype") == "float32"
    assert cmd.argv[-1] == "--compile"
    assert cmd.env["HF_HUB_CACHE"] == "/home/u/.cache/inferstack/hub"
    assert cmd.env["HF_HUB_OFFLINE"] == "1"


def make_dev(tmp_path: Path, *names: str) -> Path:
    dev = tmp_path / "dev"
    dev.mkdir()
    for n in names:
        (dev / n).touch()
    return dev


@pytest.mark.parametrize(
    ("devices", "cuda_visible", "expected"),
    [
        ((), None, 0),
        (("nvidiactl", "nvidia-uvm", "nvidia-modeset"), None, 0),
        (("nvidia0", "nvidiactl"), None, 1),
        (("nvidia0", "nvidia1", "nvidia2", "nvidia3", "nvidiactl"), None, 4),
        (("nvidia0", "nvidia1", "nvidia2", "nvidia3"), "0,1", 2),
        (("nvidia0", "nvidia1"), "", 0),
        (("nvidia0", "nvidia1"), "-1", 0),
        (("nvidia0",), "0,1,2,3", 1),
        ((), "0,1", 0),
    ],
)
def test_visible_gpus(
    tmp_path: Path, devices: tuple[str, ...], cuda_visible: str | None, expected: int
) -> None:
    env = {} if cuda_visible is None else {"CUDA_VISIBLE_DEVICES": cuda_visible}
    assert visible_gpus(env, make_dev(tmp_path, *devices)) == expected


def test_check_serve_accepts_a_good_vllm_setup(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("sk-1\n")
    assert check_serve(settings(api_key_file=str(key), max_model_len=4096), gpus=2) == []


def test_check_serve_collects_every_problem() -> None:
    s = settings(api_key_file="/nonexistent", extra_engine_args="-tp 2 --served-model-name=x")
    problems = check_serve(s, gpus=0)
    assert len(problems) == 4
    assert any("needs a GPU" in p for p in problems)
    assert any("API_KEY_FILE=/nonexistent does not exist" in p for p in problems)
    assert any("sets -tp" in p for p in problems)
    assert any("sets --served-model-name" in p and "SERVED_MODEL_NAME" in p for p in problems)


def test_hub_cache_layout_lists_the_served_name(tmp_path: Path, tiny_model: Path) -> None:
    uri = parse_model_uri(f"file://{tiny_model}")
    result = fetch(uri, tmp_path / "models")
    hub = tmp_path / "hub"
    (hub / "models--stale--entry").mkdir(parents=True)  # from an earlier SERVED_MODEL_NAME
    files = verified_files(result.path)
    assert files is not None
    build_hub_cache(hub, "acme/tiny", result.path, files)
    info = scan_cache_dir(hub)
    assert [r.repo_id for r in info.repos] == ["acme/tiny"]
    (repo,) = info.repos
    (revision,) = repo.revisions
    assert revision.refs == frozenset({"main"})
    assert {f.file_name for f in revision.files} == {f.path for f in files}
    assert all(f.blob_path.is_relative_to(result.path) for f in revision.files), "symlinks, not copies"


def test_prepare_transformers_builds_the_layout_and_command(tmp_path: Path, tiny_model: Path) -> None:
    fetch(parse_model_uri(str(tiny_model)), tmp_path / "models")
    s = settings(engine="transformers", model_uri=str(tiny_model), model_dir=str(tmp_path / "models"))
    cmd = prepare(s, {"HOME": str(tmp_path / "home")}, dev=make_dev(tmp_path))
    hub = tmp_path / "home" / ".cache" / "inferstack" / "hub"
    assert isinstance(cmd, EngineCommand)
    assert cmd.env["HF_HUB_CACHE"] == str(hub)
    assert (hub / "models--acme--chat" / "refs" / "main").is_file()


def test_prepare_vllm_uses_the_cached_folder_and_every_gpu(tmp_path: Path, tiny_model: Path) -> None:
    result = fetch(parse_model_uri(str(tiny_model)), tmp_path / "models")
    key = tmp_path / "key"
    key.write_text("sk-2")
    s = settings(model_uri=str(tiny_model), model_dir=str(tmp_path / "models"), api_key_file=str(key))
    cmd = prepare(s, {}, dev=make_dev(tmp_path, "nvidia0", "nvidia1"))
    assert cmd.argv[2] == str(result.path)
    assert flag(cmd.argv, "--tensor-parallel-size") == "2"
    assert cmd.env["VLLM_API_KEY"] == "sk-2"


def test_chat_template_is_required_for_transformers(tmp_path: Path, tiny_model: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for p in tiny_model.iterdir():
        if p.name not in ("chat_template.jinja", "SHA256SUMS"):
            (plain / p.name).write_bytes(p.read_bytes())
    write_sha256sums(plain)
    fetch(parse_model_uri(str(plain)), tmp_path / "models")
    s = settings(engine=Engine.TRANSFORMERS, model_uri=str(plain), model_dir=str(tmp_path / "models"))
    with pytest.raises(SettingsError) as err:
        prepare(s, {"HOME": str(tmp_path / "home")}, dev=make_dev(tmp_path))
    assert "has no chat template" in str(err.value) and "MODEL_URI=" in str(err.value)


def test_has_chat_template_reads_tokenizer_config(tmp_path: Path) -> None:
    assert not has_chat_template(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text('{"chat_template": "{{ messages }}"}')
    assert has_chat_template(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text('{"chat_template": ""}')
    assert not has_chat_template(tmp_path)


# --- EXTRA_ENGINE_ARGS: managed flags however vLLM's parser would read them (issue 15 kind 4) ---------


@pytest.mark.parametrize(
    ("extra", "flag_name"),
    [
        ("--api-key sk-x", "--api-key"),
        ("--api_key sk-x", "--api-key"),  # FlexibleArgumentParser turns _ into - before the first "."
        ("--api_key=sk-x", "--api-key"),
        ("--api-k sk-x", "--api-key"),  # argparse allow_abbrev: a unique prefix is the flag
        ("--HOST_x=1 --host=::", "--host"),
        ("--config /tmp/flags.yaml", "--config"),  # a YAML file's flags would be spliced in unchecked
        ("--config=/tmp/flags.yaml", "--config"),
        ("--uds /tmp/s.sock", "--uds"),
        ("-qfp8", "-q"),  # a one-letter option with its value attached
        ("--tensor_parallel_size 2", "--tensor-parallel-size"),
        ("--hf_token hf_x", "--hf-token"),
        ("--served_model_name.x y", "--served-model-name"),
    ],
)
def test_managed_flags_are_refused_however_they_are_spelled(extra: str, flag_name: str) -> None:
    problems = check_serve(settings(extra_engine_args=extra), gpus=1)
    assert any(p.startswith(f"EXTRA_ENGINE_ARGS sets {flag_name}") for p in problems), problems


@pytest.mark.parametrize(
    "extra",
    [
        "--max-num-seqs 64",
        "--enable-chunked-prefill",
        "--config-format hf",
        "--compilation_config.level 3",
        "-O3",
    ],
)
def test_other_flags_pass(extra: str) -> None:
    assert check_serve(settings(extra_engine_args=extra), gpus=1) == []


def test_the_exec_log_line_carries_no_secret() -> None:
    from model_image.serve import shell_line

    cmd = vllm_command(
        settings(extra_engine_args="--ssl-keyfile /k.pem --some_token=abc --speculative-config.hf_token xyz"),
        Path("/models/m"),
        gpus=1,
        api_key="sk-secret",
    )
    line = shell_line(cmd)
    assert "sk-secret" not in line and "abc" not in line and "xyz" not in line and "/k.pem" not in line
    assert "--some_token=***" in line and "--served-model-name acme/chat" in line


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("import sys; sys.exit(3)", 3),  # an engine's own exit status passes through
        ("import os, signal; os.kill(os.getpid(), signal.SIGABRT)", 128 + 6),  # death by another signal
    ],
)
def test_drain_passes_other_endings_on(script: str, expected: int) -> None:
    import sys

    from model_image.drain import run

    assert run([sys.executable, "-c", script], kill_after=5) == expected
