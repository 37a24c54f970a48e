"""__main__.py, the program `pulumi up` runs: engine config in, the same resources as `inferstack plan` out."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pulumi
import pytest
import yaml
from pulumi.runtime.config import set_all_config

from inferstack.planning.recording import run_program

ROOT = Path(__file__).resolve().parents[1]


def engine_config(stack: str) -> dict[str, str]:
    """What the Pulumi engine hands the program: every key a string, objects as JSON."""
    document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in document["config"].items()}


@pytest.fixture(autouse=True)
def _reset_config() -> object:
    yield
    set_all_config({})


def test_main_deploys_what_the_offline_plan_shows() -> None:
    from inferstack.planning.plan import plan_stack
    from stacks.config import load_stack_file

    set_all_config({**engine_config("onprem"), "kubernetes:context": "ignored-by-us"})
    recording = run_program(lambda: runpy.run_path(str(ROOT / "__main__.py")), stack="onprem")
    planned = plan_stack(load_stack_file(ROOT / "stacks" / "Pulumi.onprem.yaml"), "onprem").recording
    assert sorted((r.type, r.name) for r in recording.resources) == sorted(
        (r.type, r.name) for r in planned.resources
    )


def test_bad_config_ends_the_program_with_the_problems_and_no_trace() -> None:
    config = engine_config("local")
    config["inferstack:autoscaling"] = json.dumps({"min_replicas": 3, "max_replicas": 1})
    set_all_config(config)
    with pytest.raises(pulumi.RunError) as caught:
        run_program(lambda: runpy.run_path(str(ROOT / "__main__.py")), stack="local")
    assert "autoscaling.min_replicas" in str(caught.value)
