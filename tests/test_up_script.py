"""`make up` (scripts/up.sh) refuses early, with the fix, when a tool the stack needs is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_up(
    stack: str, tmp_path: Path, system_path: str = "/usr/bin:/bin"
) -> subprocess.CompletedProcess[str]:
    """scripts/up.sh with a stub `pulumi` and nothing else on PATH besides `system_path`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "pulumi"
    stub.write_text("#!/bin/sh\necho 'the stub pulumi must not be reached' >&2\nexit 99\n")
    stub.chmod(0o755)
    # The script calls .venv/bin/...; point it at the interpreter running the tests.
    env = {**os.environ, "STACK": stack, "PATH": f"{bin_dir}:{system_path}", "HOME": str(tmp_path)}
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
    # Only the tools the script needs before its gcloud check, so an installed gcloud stays out of reach.
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("bash", "dirname", "cat"):
        found = shutil.which(tool)
        assert found, tool
        (tools / tool).symlink_to(found)
    done = run_up("dev-gcp", tmp_path, system_path=str(tools))
    assert done.returncode == 2, done.stderr
    assert "gcloud CLI" in done.stderr
    assert "stub pulumi" not in done.stderr
