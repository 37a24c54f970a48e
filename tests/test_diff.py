"""`inferstack diff`: a stack file edited in a temporary git repository shows exactly the resources it
changes and the GPU/cost delta; the comparison functions on their own."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from inferstack.cli import EXIT_BAD_INPUT, EXIT_OK, main
from inferstack.reporting.diff import changed_paths, compare

ROOT = Path(__file__).resolve().parents[1]
#: What the REF side needs to plan a stack with its own code.
PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "pyproject.toml", "components", "inferstack", "stacks")


def test_changed_paths_name_the_leaves_that_differ() -> None:
    before = {"spec": {"replicas": 1, "ports": [{"port": 80}, {"port": 443}], "gone": 1}, "same": "x"}
    after = {"spec": {"replicas": 2, "ports": [{"port": 80}, {"port": 8443}], "new": 1}, "same": "x"}
    assert changed_paths(before, after) == ["spec.gone", "spec.new", "spec.ports[1].port", "spec.replicas"]
    assert changed_paths({"a": [1, 2]}, {"a": [1, 2, 3]}) == ["a"]  # a list of another length: whole
    assert changed_paths({"k": "[secret]"}, {"k": "[secret]"}) == []


def test_compare_matches_by_urn() -> None:
    row = {"urn": "u1", "type": "t", "name": "a", "inputs": {"x": 1}}
    changes = compare(
        [row, {"urn": "u2", "type": "t", "name": "b", "inputs": {}}],
        [{**row, "inputs": {"x": 2}}, {"urn": "u3", "type": "t", "name": "c", "inputs": {}}],
    )
    assert [(c.action, c.name, c.paths) for c in changes] == [
        ("add", "c", []),
        ("change", "a", ["x"]),
        ("delete", "b", []),
    ]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository holding this project's code and stack files, committed as `base`."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, repo / name)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    _git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "base")
    _git(repo, "tag", "base")
    monkeypatch.chdir(repo)
    return repo


def test_an_edited_stack_file_reports_exactly_the_changed_resources_and_the_cost_delta(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_file = repo / "stacks" / "Pulumi.dev-gcp.yaml"
    text = stack_file.read_text()
    assert "    max_replicas: 2\n" in text
    stack_file.write_text(text.replace("    max_replicas: 2\n", "    max_replicas: 4\n"))

    assert main(["diff", "dev-gcp", "--base", "base", "--format", "json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    [stack] = report["stacks"]
    changed = {(c["action"], c["name"]): c["paths"] for c in stack["changes"]}
    # The ceiling moves in two places: KEDA's maxReplicaCount and the GPU pool's node ceiling.
    assert changed == {
        ("change", "llm-scaledobject"): ["spec.maxReplicaCount"],
        ("change", "llm-pool"): ["autoscaling.totalMaxNodeCount"],
    }
    assert stack["counts"] == {"add": 0, "change": 2, "delete": 0}
    before, after = stack["before"], stack["after"]
    assert (before["gpus_max"], after["gpus_max"]) == (2, 4)
    assert after["cost"]["per_hour_max"] == pytest.approx(2 * before["cost"]["per_hour_max"])
    assert after["cost"]["per_hour_min"] == before["cost"]["per_hour_min"] == 0

    assert main(["diff", "dev-gcp", "--base", "base"]) == EXIT_OK
    markdown = capsys.readouterr().out
    assert "0 to add, 2 to change, 0 to delete" in markdown
    assert "`llm-pool`" in markdown and "`autoscaling.totalMaxNodeCount`" in markdown
    assert "GPUs (min-max replicas): 0 to 2 -> 0 to 4" in markdown
    assert "estimated GPU cost: $0.00 to $" in markdown
    assert "/month; g2-standard-8) -> $0.00 to $" in markdown  # the machine priced, from a listed price


def test_a_new_stack_file_is_all_additions(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy2(repo / "stacks" / "Pulumi.local.yaml", repo / "stacks" / "Pulumi.extra.yaml")
    assert main(["diff", "extra", "--base", "base", "--format", "json"]) == EXIT_OK
    [stack] = json.loads(capsys.readouterr().out)["stacks"]
    assert stack["before"] is None and stack["counts"]["change"] == stack["counts"]["delete"] == 0
    assert stack["counts"]["add"] > 10


def test_an_unknown_base_is_a_clear_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "local", "--base", "no-such-ref"]) == EXIT_BAD_INPUT
    assert "--base no-such-ref: no such commit" in capsys.readouterr().err


def test_an_edited_azure_stack_shows_the_gpu_pool_and_its_cost(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_file = repo / "stacks" / "Pulumi.dev-azure.yaml"
    text = stack_file.read_text()
    assert "    max_replicas: 2\n" in text
    stack_file.write_text(text.replace("    max_replicas: 2\n", "    max_replicas: 4\n"))

    assert main(["diff", "dev-azure", "--base", "base", "--format", "json"]) == EXIT_OK
    [stack] = json.loads(capsys.readouterr().out)["stacks"]
    changed = {(c["action"], c["name"]): c["paths"] for c in stack["changes"]}
    # KEDA's ceiling and the AKS GPU pool's cluster-autoscaler ceiling (maxCount) move together.
    assert changed == {
        ("change", "llm-scaledobject"): ["spec.maxReplicaCount"],
        ("change", "llm-pool"): ["maxCount"],
    }
    before, after = stack["before"], stack["after"]
    assert (before["gpus_max"], after["gpus_max"]) == (2, 4)
    assert before["cost"]["machine"] == "Standard_NV36ads_A10_v5"
    assert after["cost"]["per_hour_max"] == pytest.approx(2 * before["cost"]["per_hour_max"])


def test_moving_a_stack_from_aws_to_azure_prices_both_sides(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """dev-aws's stack file given dev-azure's platform sections: the diff prices the EKS side and the AKS
    side alike (GPU machine, $/hour), so a team sees what moving clouds costs before it moves."""
    aws_file = repo / "stacks" / "Pulumi.dev-aws.yaml"
    aws = yaml.safe_load(aws_file.read_text())
    azure = yaml.safe_load((repo / "stacks" / "Pulumi.dev-azure.yaml").read_text())["config"]
    config = {k: v for k, v in aws["config"].items() if k not in ("inferstack:aws", "inferstack:platform")}
    config.update({k: azure[k] for k in ("inferstack:platform", "inferstack:azure")})
    config["inferstack:model"] = {**config["inferstack:model"], "uri": azure["inferstack:model"]["uri"]}
    config["inferstack:serving"] = {**config["inferstack:serving"], "gpu_type": "nvidia-a10"}
    aws_file.write_text(yaml.safe_dump({**aws, "config": config}, sort_keys=False))

    assert main(["diff", "dev-aws", "--base", "base", "--format", "json"]) == EXIT_OK
    [stack] = json.loads(capsys.readouterr().out)["stacks"]
    before, after = stack["before"], stack["after"]
    assert before["cost"]["platform"] == "aws" and after["cost"]["platform"] == "azure"
    assert after["cost"]["machine"] == "Standard_NV36ads_A10_v5"
    assert after["cost"]["per_hour_max"] > 0 and before["cost"]["per_hour_max"] > 0
    kinds = {(c["action"], c["type"]) for c in stack["changes"]}
    assert ("add", "azure-native:containerservice:ManagedCluster") in kinds
    assert ("delete", "aws:eks/cluster:Cluster") in kinds

    assert main(["diff", "dev-aws", "--base", "base"]) == EXIT_OK
    assert "Standard_NV36ads_A10_v5" in capsys.readouterr().out
