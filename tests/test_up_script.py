"""`make up` (scripts/up.sh) refuses early, with the fix, when a tool the stack needs is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_up(stack: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """scripts/up.sh with a stub `pulumi` and nothing else on PATH besides the system's basics."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "pulumi"
    stub.write_text("#!/bin/sh\necho 'the stub pulumi must not be reached' >&2\nexit 99\n")
    stub.chmod(0o755)
    # The script calls .venv/bin/...; point it at the interpreter running the tests.
    env = {**os.environ, "STACK": stack, "PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(
        ["bash", "scripts/up.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "inferstack").exists(), reason="needs the project venv")
@pytest.mark.skipif(sys.platform != "linux", reason="bash script, checked on Linux")
def test_an_aws_stack_without_the_aws_cli_stops_before_pulumi(tmp_path: Path) -> None:
    if any((Path(d) / "aws").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("the AWS CLI is installed here")
    done = run_up("dev-aws", tmp_path)
    assert done.returncode == 2, done.stderr
    assert "AWS CLI v2" in done.stderr and "get-token" in done.stderr
    assert "stub pulumi" not in done.stderr


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "inferstack").exists(), reason="needs the project venv")
@pytest.mark.skipif(sys.platform != "linux", reason="bash script, checked on Linux")
def test_a_gcp_stack_without_gcloud_stops_before_pulumi(tmp_path: Path) -> None:
    if any((Path(d) / "gcloud").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("gcloud is installed here")
    done = run_up("dev-gcp", tmp_path)
    assert done.returncode == 2, done.stderr
    assert "gcloud CLI" in done.stderr
    assert "stub pulumi" not in done.stderr
