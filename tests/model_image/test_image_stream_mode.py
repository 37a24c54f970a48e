"""LOAD_MODE=stream: `serve` hands vLLM the bucket uri with the Run:ai streamer's load format, needs no
verified folder, and refuses what the streamer cannot read."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_image.engine_flags import VLLM_MANAGED, managed_flag_problems
from model_image.errors import SettingsError
from model_image.serve import RUNAI_STREAMER, prepare, vllm_command
from model_image.settings import LoadMode, ServeSettings


def settings(**overrides: object) -> ServeSettings:
    values: dict[str, object] = {
        "model_uri": "s3://b/m/v1",
        "model_dir": "/models",
        "engine": "vllm",
        "served_model_name": "acme/chat",
        **overrides,
    }
    return ServeSettings.model_validate(values)


def gpu_dev(tmp_path: Path) -> Path:
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "nvidia0").touch()
    return dev


def test_copy_is_the_default_and_passes_no_load_format() -> None:
    s = settings()
    assert s.load_mode is LoadMode.COPY
    assert "--load-format" not in vllm_command(s, Path("/models/m"), 1, None).argv


@pytest.mark.parametrize("uri", ["s3://b/m/v1", "gs://b/m/v1/"])
def test_stream_serves_the_bucket_with_the_runai_streamer(tmp_path: Path, uri: str) -> None:
    # No fetch ran: MODEL_DIR is empty, and serve does not ask for a verified folder.
    s = settings(model_uri=uri, model_dir=str(tmp_path / "empty"), load_mode="stream")
    cmd = prepare(s, {}, dev=gpu_dev(tmp_path))
    assert cmd.argv[:3] == ["vllm", "serve", uri.rstrip("/")]
    assert cmd.argv[cmd.argv.index("--load-format") + 1] == RUNAI_STREAMER
    assert cmd.argv.count("--load-format") == 1


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"model_uri": "hf://acme/chat@" + "a" * 40}, "reads s3:// and gs:// only"),
        ({"engine": "transformers"}, "needs ENGINE=vllm"),
    ],
)
def test_stream_is_refused_where_the_streamer_cannot_read(
    tmp_path: Path, overrides: dict[str, object], words: str
) -> None:
    s = settings(load_mode="stream", **overrides)
    with pytest.raises(SettingsError, match=words):
        prepare(s, {}, dev=gpu_dev(tmp_path))


def test_the_load_format_is_the_launchers_to_set() -> None:
    problems = managed_flag_problems(["--load-format", "dummy"], VLLM_MANAGED, "EXTRA_ENGINE_ARGS")
    assert problems and "LOAD_MODE" in problems[0]
