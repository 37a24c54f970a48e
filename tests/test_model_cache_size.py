"""Plan-time rule: the model's weights (at its dtype or quantization) fit serving.model_cache_size, and
the stack schema refuses credentials written into model.uri — `inferstack check` exits 2 naming both."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inferstack.cli import EXIT_BAD_INPUT, main
from stacks.config import ConfigError, load_stack_file
from stacks.model_cache import model_cache_problem

ROOT = Path(__file__).resolve().parents[1]


def stack_with(tmp_path: Path, model: dict[str, object], serving: dict[str, object]) -> Path:
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod-aws.yaml").read_text())
    stack["config"]["inferstack:model"].update(model)
    stack["config"]["inferstack:serving"].update(serving)
    path = tmp_path / "Pulumi.big.yaml"
    path.write_text(yaml.safe_dump(stack))
    return path


def test_a_70b_bf16_model_on_a_100gi_cache_fails_check_with_the_sizes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = stack_with(
        tmp_path,
        {"parameters_b": 70, "dtype": "bfloat16"},
        {"model_cache_size": "100Gi", "gpus_per_replica": 4},
    )
    code = main(["check", "--stack-file", str(path), "--skip-checkov", "--out", str(tmp_path / "plan")])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == EXIT_BAD_INPUT, text
    assert "serving.model_cache_size" in text
    assert "70B parameters x 2 bytes (dtype bfloat16) = 140.0 GB (130.4 GiB)" in text
    assert "is 100Gi (100.0 GiB)" in text and "at least 137Gi" in text


@pytest.mark.parametrize(
    ("parameters_b", "dtype", "quantization", "size", "fits"),
    [
        (70, "bfloat16", None, "100Gi", False),
        (70, "bfloat16", None, "137Gi", True),  # 130.4 GiB x 1.05 = 136.9 GiB
        (70, "bfloat16", None, "136Gi", False),
        (70, "auto", "fp8", "100Gi", True),  # 65.2 GiB x 1.05
        (8, "float32", None, "32Gi", True),  # 29.8 GiB x 1.05 = 31.3 GiB
        (8, "float32", None, "31Gi", False),
        (8, "bfloat16", None, "50Gi", True),
        (405, "auto", "awq", "200Gi", True),  # 188.6 GiB x 1.05 = 198.0
    ],
)
def test_the_rule_counts_bytes_per_weight_and_headroom(
    parameters_b: float, dtype: str, quantization: str | None, size: str, fits: bool
) -> None:
    problem = model_cache_problem(
        name="m", parameters_b=parameters_b, dtype=dtype, quantization=quantization, model_cache_size=size
    )
    assert (problem is None) == fits, problem


def test_the_quantized_way_out_is_offered_only_when_it_helps() -> None:
    bf16 = model_cache_problem(
        name="m", parameters_b=70, dtype="bfloat16", quantization=None, model_cache_size="1Gi"
    )
    fp8 = model_cache_problem(
        name="m", parameters_b=70, dtype="auto", quantization="fp8", model_cache_size="1Gi"
    )
    assert bf16 is not None and "model.quantization: fp8" in bf16
    assert fp8 is not None and "model.quantization" not in fp8 and "quantization fp8" in fp8


@pytest.mark.parametrize(
    "uri",
    [
        "s3://AKIAEXAMPLE:s3cr3t-value@models/llama",
        "gs://s3cr3t-value@models/llama",
        "hf://user:s3cr3t-value@acme/chat@0123456789abcdef0123456789abcdef01234567",
    ],
)
def test_the_schema_refuses_credentials_in_the_model_uri_without_echoing_them(
    tmp_path: Path, uri: str
) -> None:
    path = stack_with(tmp_path, {"uri": uri}, {})
    with pytest.raises(ConfigError) as err:
        load_stack_file(path)
    rendered = err.value.render()
    assert "model.uri" in rendered and "carries credentials" in rendered
    assert "s3cr3t-value" not in rendered
