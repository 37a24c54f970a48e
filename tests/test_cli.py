"""The command line a newcomer drives: version, help with examples, the stack-file schema an editor uses,
and what a mistaken stack file is told (file:line, did you mean, expected forms, no internal names)."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from inferstack.cli import EXIT_BAD_INPUT, EXIT_OK, main
from stacks.config import ConfigError, StackConfig, load_stack_file, parse_stack_config
from stacks.config_base import QUANTITY_PATTERN
from stacks.config_errors import model_class_names
from stacks.stack_yaml import YamlError, load_yaml
from tests.cli_run import run

ROOT = Path(__file__).resolve().parents[1]
STACK_FILES = sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))
QWEN = "hf://Qwen/Qwen2.5-0.5B-Instruct@7ae557604adf67be50417f59c2c2f167def9a775"
CLASS_NAMES = model_class_names(StackConfig)


def minimal(**sections: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "model": {"uri": QWEN, "parameters_b": 0.5},
        "serving": {"image": "registry.example/model:1.0"},
        "gateway": {"hostname": "llm.example.com"},
    }
    values.update(sections)
    return values


def problems_of(values: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(values)
    return dict(caught.value.problems)


# --- version and help ----------------------------------------------------------------------------------


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == EXIT_OK
    assert out.strip() == f"inferstack {metadata.version('inferstack')}"


def test_bare_inferstack_prints_the_help_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    # 2: nothing was done, so a script that calls `inferstack` with no command must not carry on.
    assert code == EXIT_BAD_INPUT
    assert out.startswith("usage: inferstack")
    assert all(command in out for command in ("plan", "check", "validate", "diff", "schema"))
    assert "examples:" in out
    assert "error" not in err and err == ""


@pytest.mark.parametrize("command", ["", "plan", "check", "validate", "diff", "schema"])
def test_every_help_shows_examples_line_by_line(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [command, "--help"] if command else ["--help"]
    code, out, _ = run(capsys, *argv)
    assert code == EXIT_OK
    examples = out.split("examples:\n", 1)[1].splitlines()
    # RawDescriptionHelpFormatter keeps one example per line instead of refilling them into a paragraph.
    commands = [line.strip() for line in examples if line.startswith("  inferstack ")]
    assert len(commands) >= 2
    assert all(line.startswith(f"inferstack {command}".strip()) for line in commands)


# --- the stack-file schema -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack_file_schema() -> dict[str, Any]:
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(["schema"]) == EXIT_OK
    schema: dict[str, Any] = json.loads(buffer.getvalue())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _schema_errors(schema: dict[str, Any], document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_stack_file_validates_against_the_stack_file_schema(
    path: Path, stack_file_schema: dict[str, Any]
) -> None:
    document = yaml.safe_load(path.read_text())
    assert _schema_errors(stack_file_schema, document) == []


def test_the_stack_file_schema_refuses_what_the_loader_refuses(stack_file_schema: dict[str, Any]) -> None:
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text())
    config = document["config"]

    misspelt_section = {**config, "inferstack:modle": config["inferstack:model"]}
    del misspelt_section["inferstack:model"]
    errors = _schema_errors(stack_file_schema, {"config": misspelt_section})
    assert any("inferstack:modle" in e for e in errors), errors
    assert any("inferstack:model" in e and "required" in e for e in errors), errors

    misspelt_key = {**config, "inferstack:autoscaling": {"max_replica": 3}}
    assert any("max_replica" in e for e in _schema_errors(stack_file_schema, {"config": misspelt_key}))
    assert _schema_errors(stack_file_schema, {**document, "confg": {}})
    bad_memory = {**config, "inferstack:serving": {**config["inferstack:serving"], "memory": 64}}
    assert _schema_errors(stack_file_schema, {"config": bad_memory})

    # What Pulumi writes beside our keys stays valid: other namespaces and the stack settings keys.
    other = {
        **document,
        "config": {**config, "kubernetes:context": "kind-inferstack", "aws:region": "eu-west-1"},
        "secretsprovider": "passphrase",
        "encryptionsalt": "v1:abc",
        "environment": ["team/dev"],
    }
    assert _schema_errors(stack_file_schema, other) == []


def test_schema_sections_flag_prints_the_values_form(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema", "--sections")
    assert code == EXIT_OK
    schema = json.loads(out)
    assert {"serving", "gateway"} <= set(schema["required"])
    # `model` is required unless `models` lists the models (then it holds their shared defaults).
    assert schema["if"] == {"required": ["models"]} and schema["else"]["required"] == ["model"]
    assert schema["additionalProperties"] is False


# --- YAML: file, line and column; repeated keys ---------------------------------------------------------


def test_yaml_errors_name_the_file_line_and_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("Pulumi.bad.yaml").write_text("config:\n  inferstack:model:\n    uri: x\n   parameters_b: 1\n")
    code, _, err = run(capsys, "plan", "--stack-file", "Pulumi.bad.yaml")
    assert code == EXIT_BAD_INPUT
    assert err.startswith("Pulumi.bad.yaml:4:"), err
    assert "not valid YAML" in err
    assert "<unicode string>" not in err and "Traceback" not in err


def test_a_repeated_key_is_refused_naming_the_key_and_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.dup.yaml"
    path.write_text(
        "config:\n"
        "  inferstack:model:\n"
        f"    uri: {QWEN}\n"
        "    parameters_b: 0.5\n"
        "    uri: hf://Qwen/Other@" + "b" * 40 + "\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_stack_file(path)
    rendered = caught.value.render()
    assert rendered.startswith(f"{path}:5:5: duplicate key 'uri'"), rendered
    assert "line 3" in rendered


def test_repeats_are_found_at_any_depth_but_a_merge_override_is_not_one() -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml("a:\n  - k: 1\n    v: 2\n    k: 3\n")
    assert (caught.value.line, caught.value.column) == (4, 5)
    merged = load_yaml("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n")
    assert merged.document["d"] == {"x": 3, "y": 2}
    assert merged.positions[("d", "x")] == (4, 3)  # the override's own line, not the anchor's


def test_problems_point_at_the_key_or_its_nearest_enclosing_one(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.at.yaml"
    path.write_text(
        "config:\n"
        "  inferstack:model:\n"
        f"    uri: {QWEN}\n"
        "    parameters_b: 0.5\n"
        "  inferstack:serving:\n"
        "    memory: 64Gi\n"
        "  inferstack:autoscaling:\n"
        "    max_replica: 3\n"
        "  inferstack:gateway:\n"
        "    hostname: llm.example.com\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_stack_file(path)
    lines = caught.value.render().splitlines()
    assert any(
        line.startswith("  autoscaling.max_replica:") and line.endswith(f"({path}:8:5)") for line in lines
    )
    # serving.image is missing: it is shown at the serving section's key.
    assert any(line.startswith("  serving.image:") and line.endswith(f"({path}:5:3)") for line in lines)


# --- the words of each problem -------------------------------------------------------------------------


def test_typos_get_did_you_mean() -> None:
    found = problems_of(minimal(autoscaling={"max_replica": 3}))
    assert "did you mean `max_replicas`" in found["autoscaling.max_replica"]
    found = problems_of({**minimal(), "autoscalling": {}})
    assert "did you mean `inferstack:autoscaling`" in found["autoscalling"]
    found = problems_of(minimal(serving={"image": "a/b:1", "engine": "vlm"}))
    assert "did you mean `vllm`" in found["serving.engine"]


def test_a_key_in_the_wrong_section_says_where_it_belongs() -> None:
    found = problems_of(minimal(serving={"image": "a/b:1", "cooldown_seconds": 60}))
    assert "`cooldown_seconds` is a key of autoscaling" in found["serving.cooldown_seconds"]


def test_typos_in_pulumi_keys_and_our_namespace_are_caught(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.ns.yaml"
    path.write_text(yaml.safe_dump({"confg": {}, "config": {"inferstak:model": {"uri": QWEN}}}))
    with pytest.raises(ConfigError) as caught:
        load_stack_file(path)
    found = dict(caught.value.problems)
    assert "did you mean `config`" in found["confg"]
    assert "did you mean inferstack:model" in found["inferstak:model"]


def _quantity_fields(model: type[Any] = StackConfig, prefix: str = "") -> dict[str, Any]:
    """Every field declared as a Kubernetes quantity, found by its pattern, in every section."""
    from stacks.config_errors import _sections

    fields = {}
    for path, section in [("", model), *_sections(model)]:
        for name, field in section.model_fields.items():
            if any(getattr(m, "pattern", None) == QUANTITY_PATTERN for m in field.metadata):
                fields[f"{path}.{name}".lstrip(".")] = field
    return fields


def test_every_quantity_field_says_the_expected_form() -> None:
    fields = _quantity_fields()
    assert {"serving.cpu", "serving.memory", "serving.model_cache_size", "serving.shm_size"} <= set(fields)
    for path, field in fields.items():
        section, key = path.rsplit(".", 1)
        for bad in (64, "64 GB"):
            values = minimal()
            target = values
            for part in section.split("."):  # nested sections, e.g. gateway.quota_store
                target = target.setdefault(part, {})
            target[key] = bad
            message = problems_of(values)[path]
            assert f'a Kubernetes quantity string such as "{field.default}"' in message, message
            assert "Input should" not in message and "pattern" not in message
    memory = problems_of(minimal(serving={"image": "a/b:1", "memory": 64}))["serving.memory"]
    assert 'write "64Gi"' in memory and "64 bytes" in memory
    cpu = problems_of(minimal(serving={"image": "a/b:1", "cpu": 4}))["serving.cpu"]
    assert 'put it in quotes, "4"' in cpu


@pytest.mark.parametrize("value", [None, "x", [1]])
@pytest.mark.parametrize("section", ["model", "serving", "gateway", "tls", "autoscaling", "gpu_pool"])
def test_a_section_of_the_wrong_shape_says_what_it_holds_not_a_class_name(section: str, value: Any) -> None:
    message = problems_of(minimal(**{section: value}))[section]
    assert not any(name in message for name in CLASS_NAMES), message
    assert "mapping" in message
    if value is None:
        assert message.startswith("is empty")
    # The keys it should hold, with the required ones named as such.
    field_names = list(getattr(StackConfig.model_fields[section].annotation, "model_fields", {}))
    assert field_names[0] in message


def test_a_list_item_of_the_wrong_shape_names_its_keys() -> None:
    found = problems_of(minimal(gpu_pool={"taints": ["nvidia.com/gpu"]}))
    assert "with key (required)" in found["gpu_pool.taints[0]"]
    assert "Taint" not in found["gpu_pool.taints[0]"]


def test_a_folder_given_as_the_stack_file_is_named_as_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "--stack-file", str(ROOT / "stacks"))
    assert code == EXIT_BAD_INPUT
    assert "is a folder, not a stack file" in err
    assert "Pulumi.local.yaml" in err and "no such file" not in err
    with pytest.raises(ConfigError, match="is a folder"):
        load_stack_file(ROOT / "stacks")


# --- diff with a stack file outside the repository ------------------------------------------------------

PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "pyproject.toml", "components", "inferstack", "stacks")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
    )


def _repository(at: Path, project: Path) -> None:
    """A git repository at `at` with this project's code in `project` (at or under it), committed as base."""
    project.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, project / name)
    _git(at, "init", "-q", "-b", "main")
    _git(at, "add", "-A")
    _git(at, "commit", "-q", "-m", "base")
    _git(at, "tag", "base")


def test_diff_of_a_stack_file_outside_the_repository_plans_it_on_both_sides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    _repository(repo, repo)
    outside = tmp_path / "elsewhere" / "Pulumi.lab.yaml"
    outside.parent.mkdir()
    shutil.copy2(ROOT / "stacks" / "Pulumi.local.yaml", outside)
    monkeypatch.chdir(repo)
    code, out, err = run(capsys, "diff", "--stack-file", str(outside), "--base", "base", "--format", "json")
    assert code == EXIT_OK, err
    [stack] = json.loads(out)["stacks"]
    assert stack["stack"] == "lab"
    assert stack["counts"] == {"add": 0, "change": 0, "delete": 0}, "same file, same code: no change"
    assert "outside the repository" in stack["note"]
    assert stack["before"] is not None and stack["after"] is not None


def test_diff_works_for_a_project_in_a_subfolder_of_its_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    project = repo / "deploy" / "llm"
    _repository(repo, project)
    stack_file = project / "stacks" / "Pulumi.local.yaml"
    stack_file.write_text(stack_file.read_text().replace("memory: 4Gi", "memory: 5Gi"))
    monkeypatch.chdir(project)
    code, out, err = run(capsys, "diff", "local", "--base", "base", "--format", "json")
    assert code == EXIT_OK, err
    [stack] = json.loads(out)["stacks"]
    # The base read the file from deploy/llm/stacks/ at REF: only the edited memory differs (the fetch init
    # container takes the server's memory too, so the pod stays Guaranteed).
    memory = "spec.template.spec.{}[0].resources.{}.memory"
    assert [(c["action"], c["name"], c["paths"]) for c in stack["changes"]] == [
        (
            "change",
            "llm-deployment",
            [
                memory.format(c, field)
                for c in ("containers", "initContainers")
                for field in ("limits", "requests")
            ],
        )
    ]
    assert stack["note"] is None


def test_the_shipped_stack_file_schema_is_what_inferstack_schema_prints(
    stack_file_schema: dict[str, Any],
) -> None:
    shipped = json.loads((ROOT / "stack-file.schema.json").read_text(encoding="utf-8"))
    assert shipped == stack_file_schema, (
        "stack-file.schema.json is stale: run `inferstack schema > stack-file.schema.json`"
    )


@pytest.mark.parametrize("path", [*STACK_FILES, *sorted((ROOT / "docs" / "examples").glob("Pulumi.*.yaml"))])
def test_every_stack_file_names_the_shipped_schema_for_editors(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    target = first.removeprefix("# yaml-language-server: $schema=")
    assert target != first, f"{path.name}: first line must be `# yaml-language-server: $schema=<path>`"
    assert (path.parent / target).resolve() == (ROOT / "stack-file.schema.json").resolve()


def test_a_closed_output_pipe_is_not_an_internal_error() -> None:
    """`inferstack schema | head -1`: the reader leaves early; the CLI stops quietly, as cat and grep do."""
    import os
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: every write fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "inferstack.cli", "schema"],
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 141  # 128 + SIGPIPE, what a shell reports for a writer killed by the pipe


def test_a_tab_used_for_indentation_says_to_use_spaces() -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml("config:\n  inferstack:model:\n\turi: x\n")
    assert (caught.value.line, caught.value.column) == (3, 1)
    assert "indents with spaces only" in str(caught.value) and "'\\t'" not in str(caught.value)
