"""Settings: every bad value gives a clear error (exit 2, the setting named, a fix offered, no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from image_helpers import SETTINGS_VARS, launcher_env, run_launcher

from model_image.cli import main
from model_image.errors import SettingsError
from model_image.settings import Dtype, Engine, FetchSettings, ServeSettings, load


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in SETTINGS_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # No GPU on a test machine, and none even if the machine has one.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


def _serve_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra: str) -> None:
    values = {
        "MODEL_URI": "s3://bucket/models/m/v1",
        "MODEL_DIR": str(tmp_path / "models"),
        "ENGINE": "transformers",
        "SERVED_MODEL_NAME": "acme/m",
        **extra,
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)


def _errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("hf://acme/model", "has no revision; pin one: hf://acme/model@"),
        ("hf://acme/model@", "has no revision"),
        ("ftp://host/model", "scheme 'ftp'; use one of file:///path"),
        ("models/llama", "no scheme; use one of"),
        ("s3:///prefix", "names no bucket"),
        ("file://server/share", "needs an absolute path"),
        ("hf://not a repo@abc", "is not a hub repository id"),
    ],
)
def test_bad_model_uri_is_named_with_the_fix(
    uri: str, expected: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = _errors(capsys, ["fetch", "--model-uri", uri, "--model-dir", str(tmp_path)])
    assert "MODEL_URI (--model-uri)" in err
    assert expected in err


def test_required_settings_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    err = _errors(capsys, ["serve"])
    for name, flag in [
        ("MODEL_URI", "--model-uri"),
        ("MODEL_DIR", "--model-dir"),
        ("ENGINE", "--engine"),
        ("SERVED_MODEL_NAME", "--served-model-name"),
    ]:
        assert f"{name} ({flag}) is required: set the environment variable {name} or pass {flag}" in err


def test_all_problems_are_reported_together(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _serve_env(monkeypatch, tmp_path, ENGINE="gpu", PORT="70000", SERVED_MODEL_NAME="a b", DTYPE="fp64")
    err = _errors(capsys, ["serve"])
    assert "ENGINE (--engine)='gpu': Input should be 'vllm' or 'transformers'" in err
    assert "PORT (--port)='70000'" in err
    assert "SERVED_MODEL_NAME (--served-model-name)" in err
    assert "DTYPE (--dtype)='fp64'" in err


def test_vllm_without_a_visible_gpu(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _serve_env(monkeypatch, tmp_path, ENGINE="vllm")
    err = _errors(capsys, ["serve"])
    assert "ENGINE=vllm needs a GPU, but none is visible" in err
    assert "request nvidia.com/gpu" in err and "ENGINE=transformers" in err


def test_missing_api_key_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _serve_env(monkeypatch, tmp_path, ENGINE="vllm", API_KEY_FILE=str(tmp_path / "secret" / "key"))
    err = _errors(capsys, ["serve"])
    assert f"API_KEY_FILE={tmp_path / 'secret' / 'key'} does not exist: mount the API-key Secret there" in err


def test_empty_api_key_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_text("\n")
    _serve_env(monkeypatch, tmp_path, ENGINE="vllm", API_KEY_FILE=str(key))
    assert f"API_KEY_FILE={key} is empty" in _errors(capsys, ["serve"])


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("MAX_MODEL_LEN", "4096"),
        ("GPU_MEMORY_UTILIZATION", "0.9"),
        ("QUANTIZATION", "fp8"),
        ("API_KEY_FILE", "/etc/key"),
    ],
)
def test_vllm_only_settings_conflict_with_the_transformers_engine(
    setting: str,
    value: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _serve_env(monkeypatch, tmp_path, **{setting: value})
    err = _errors(capsys, ["serve"])
    assert f"{setting} is a vLLM setting and conflicts with ENGINE=transformers" in err
    assert f"unset {setting}, or use ENGINE=vllm" in err


def test_extra_args_may_not_repeat_a_managed_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _serve_env(monkeypatch, tmp_path, EXTRA_ENGINE_ARGS="--port=9000 --continuous-batching")
    err = _errors(capsys, ["serve"])
    assert "EXTRA_ENGINE_ARGS sets --port, which conflicts with PORT" in err
    assert "continuous-batching" not in err


def test_extra_args_with_broken_quotes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _serve_env(monkeypatch, tmp_path, EXTRA_ENGINE_ARGS='--chat-template-kwargs \'{"a": 1}')
    assert "EXTRA_ENGINE_ARGS (--extra-engine-args): cannot be split" in _errors(capsys, ["serve"])


def test_serve_without_a_fetched_model_says_to_fetch(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _serve_env(monkeypatch, tmp_path)
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert "no verified model for MODEL_URI=s3://bucket/models/m/v1" in err
    assert "run `python -m model_image fetch` first" in err


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _serve_env(monkeypatch, tmp_path, PORT="8000", DTYPE="float16")
    s = load(ServeSettings, port="9001", served_model_name="acme/other")
    assert (s.port, s.served_model_name, s.dtype, s.engine) == (
        9001,
        "acme/other",
        Dtype.FLOAT16,
        Engine.TRANSFORMERS,
    )
    assert (s.host, s.shutdown_timeout, s.api_key_file) == ("0.0.0.0", 30, None)


def test_empty_environment_values_count_as_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A manifest that sets MAX_MODEL_LEN: "" must not break or conflict.
    _serve_env(monkeypatch, tmp_path, MAX_MODEL_LEN="", API_KEY_FILE="")
    s = load(ServeSettings)
    assert s.max_model_len is None and s.api_key_file is None


def test_fetch_ignores_serve_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The init container gets the same environment as the server; engine settings must not break fetch.
    _serve_env(monkeypatch, tmp_path, ENGINE="not-an-engine")
    assert load(FetchSettings).model_uri == "s3://bucket/models/m/v1"


def test_fetch_rejects_a_serve_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["fetch", "--engine", "vllm"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --engine" in capsys.readouterr().err


def test_settings_error_lists_every_problem() -> None:
    err = SettingsError(["A is wrong", "B is wrong"])
    assert str(err) == "  - A is wrong\n  - B is wrong"


def test_a_real_process_exits_2_without_traceback(tmp_path: Path) -> None:
    env = launcher_env(MODEL_URI="hf://org/model", MODEL_DIR=str(tmp_path))
    result = run_launcher("fetch", env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "MODEL_URI (--model-uri): 'hf://org/model' has no revision" in result.stderr


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "model_image" / "README.md").read_text()
    for name in ServeSettings.model_fields:
        assert f"| `{name.upper()}` | `--{name.replace('_', '-')}` |" in readme, name


def test_serve_names_why_a_cached_model_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A folder where the model belongs whose record is not one fetch wrote: serve says what is wrong with
    # it, not only that no verified model exists.
    from model_image import cache
    from model_image.uri import parse_model_uri

    _serve_env(monkeypatch, tmp_path)
    folder = cache.model_path(tmp_path / "models", parse_model_uri("s3://bucket/models/m/v1"))
    folder.mkdir(parents=True)
    (folder / ".inferstack-verified.json").write_text('{"files": "x"}')
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert "is not usable" in err and "run `python -m model_image fetch` again" in err
    assert "Traceback" not in err
