"""`inferstack check` and the upstream schema folders: nothing outside the repository is assumed.

No folder named: custom resources and Helm values are listed under "Not validated" with the way to get
them (`make fetch-schemas`). A folder named by flag or environment that is not there: exit 2, naming the
flag or the variable. The Makefile sets no default that points outside the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inferstack.cli import EXIT_BAD_INPUT, EXIT_OK, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_schema_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("INFERSTACK_CRD_DIR", raising=False)
    monkeypatch.delenv("INFERSTACK_CHART_DIR", raising=False)


@pytest.mark.usefixtures("no_schema_env")
def test_without_folders_check_passes_and_names_make_fetch_schemas(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["check", "onprem", "--skip-checkov", "--out", str(tmp_path)]) == EXIT_OK
    out = capsys.readouterr().out
    not_validated = out[out.index("Not validated:") :]
    crd_note = next(
        line for line in not_validated.splitlines() if "custom resources were not validated" in line
    )
    helm_note = next(line for line in not_validated.splitlines() if "Helm values were not checked" in line)
    for note, variable in ((crd_note, "INFERSTACK_CRD_DIR"), (helm_note, "INFERSTACK_CHART_DIR")):
        assert "`make fetch-schemas`" in note, note
        assert variable in note, note


@pytest.mark.usefixtures("no_schema_env")
@pytest.mark.parametrize(("flag", "named"), [("--crd-dir", "--crd-dir"), ("--chart-dir", "--chart-dir")])
def test_a_flag_naming_a_missing_folder_is_an_error_naming_the_flag(
    flag: str, named: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-folder"
    code = main(["check", "onprem", "--skip-checkov", flag, str(missing), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert f"{named}={missing}: not a directory" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("no_schema_env")
@pytest.mark.parametrize("variable", ["INFERSTACK_CRD_DIR", "INFERSTACK_CHART_DIR"])
def test_a_variable_naming_a_missing_folder_is_an_error_naming_the_variable(
    variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv(variable, str(missing))
    code = main(["check", "onprem", "--skip-checkov", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert f"{variable}={missing}: not a directory" in err
    assert "make fetch-schemas" in err


@pytest.mark.usefixtures("no_schema_env")
@pytest.mark.parametrize("variable", ["INFERSTACK_CRD_DIR", "INFERSTACK_CHART_DIR"])
def test_an_empty_schema_folder_is_an_error_not_a_finding_per_object(
    variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(variable, str(empty))
    code = main(["check", "onprem", "--skip-checkov", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert f"{variable}={empty}: the folder is empty" in err and "make fetch-schemas" in err


def test_the_makefile_defaults_no_schema_folder_outside_the_repository() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    defaults = re.findall(r"^\s*(?:export\s+)?(INFERSTACK_\w+_DIR)\s*\??=\s*(.+)$", makefile, re.MULTILINE)
    assert defaults, "the Makefile should still use build/upstream when `make fetch-schemas` filled it"
    for variable, value in defaults:
        assert ".." not in value and "shared" not in value, (
            f"{variable} defaults outside the repository: {value}"
        )
        assert "UPSTREAM_DIR" in value, f"{variable} should default only to what make fetch-schemas wrote"


def test_ci_points_at_shared_only_where_it_exists() -> None:
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for variable, folder in (("INFERSTACK_CRD_DIR", "crds"), ("INFERSTACK_CHART_DIR", "charts")):
        guard = re.search(rf"if .*\[ -d \.\./shared/{folder} \]; then\n\s+{variable}=", run)
        assert guard, f".ci/run must set {variable} only when ../shared/{folder} exists"
