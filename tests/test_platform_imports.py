"""A stack imports only its own platform's cloud SDK.

An onprem or local stack, planned or deployed, imports no cloud SDK (pulumi_aws, pulumi_gcp,
pulumi_azure_native); an AWS, GCP or Azure stack only its own. This is what lets a laptop install (`make up STACK=local`) leave
the cloud SDKs out, and it keeps `inferstack plan` of a small stack from paying for their import.

Each case runs in a fresh interpreter: in this one, other tests have long since imported every SDK.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.config import Platform, load_stack_file

ROOT = Path(__file__).resolve().parents[1]
CLOUD_SDKS = frozenset({"pulumi_aws", "pulumi_gcp", "pulumi_azure_native"})
# The one cloud SDK each platform's composition may import.
PLATFORM_SDKS: dict[Platform, frozenset[str]] = {
    Platform.ONPREM: frozenset(),
    Platform.AWS: frozenset({"pulumi_aws"}),
    Platform.GCP: frozenset({"pulumi_gcp"}),
    Platform.AZURE: frozenset({"pulumi_azure_native"}),
}

# Run in the child: plan through the CLI, as a user does, then report which cloud SDKs got imported.
PLAN = """
import json, sys
from inferstack.cli import main
code = main(["plan", sys.argv[1], "--out", sys.argv[2]])
print(json.dumps({"exit": code, "modules": sorted(sys.modules)}))
"""

# Run in the child: the Pulumi program (__main__.py) as the engine runs it for `pulumi up`, with the
# engine's config, under the recording mock in place of the engine.
DEPLOY = """
import json, runpy, sys
import yaml
from pulumi.runtime.config import set_all_config
from inferstack.planning.recording import run_program
stack = sys.argv[1]
document = yaml.safe_load(open(f"stacks/Pulumi.{stack}.yaml").read())
set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in document["config"].items()})
recording = run_program(lambda: runpy.run_path("__main__.py"), stack=stack)
assert recording.resources, "the program created nothing"
print(json.dumps({"exit": 0, "modules": sorted(sys.modules)}))
"""


def run_python(probe: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`probe` in a fresh interpreter (nothing imported yet) on this checkout."""
    return subprocess.run(
        [sys.executable, "-c", probe, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def cloud_sdks_imported(probe: str, stack: str, out: Path) -> frozenset[str]:
    """Run `probe` for `stack` in a fresh interpreter; the cloud SDK packages it left in sys.modules."""
    done = run_python(probe, stack, str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["exit"] == 0, done.stdout + done.stderr
    return frozenset(m.partition(".")[0] for m in report["modules"]) & CLOUD_SDKS


def test_every_platform_names_its_sdks() -> None:
    # A new platform (Azure) must say which SDK it may import before these tests can pass.
    assert set(PLATFORM_SDKS) == set(Platform)


@pytest.mark.parametrize(
    ("stack", "probe"),
    [
        pytest.param("onprem", PLAN, id="plan-onprem"),
        pytest.param("local", DEPLOY, id="deploy-local"),
        pytest.param("prod-aws", PLAN, id="plan-prod-aws"),
        pytest.param("prod-gcp", PLAN, id="plan-prod-gcp"),
        pytest.param("prod-azure", PLAN, id="plan-prod-azure"),
    ],
)
def test_a_stack_imports_only_its_platforms_cloud_sdk(stack: str, probe: str, tmp_path: Path) -> None:
    platform = load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml").platform
    # Equality, not a subset: an AWS stack that imported no pulumi_aws would mean the probe saw nothing.
    assert cloud_sdks_imported(probe, stack, tmp_path) == PLATFORM_SDKS[platform]


def test_the_config_layer_imports_no_cloud_sdk(tmp_path: Path) -> None:
    # `inferstack schema` reads every platform's config section (config_aws, config_gcp: pydantic only).
    probe = """
import json, sys
from inferstack.cli import main
code = main(["schema"])
print(json.dumps({"exit": code, "modules": sorted(sys.modules)}))
"""
    assert cloud_sdks_imported(probe, "unused", tmp_path) == frozenset()


@pytest.mark.parametrize(
    ("stack", "platform", "sdk", "distribution"),
    [("dev-aws", "aws", "pulumi_aws", "pulumi-aws"), ("dev-gcp", "gcp", "pulumi_gcp", "pulumi-gcp")],
)
def test_a_core_install_names_the_missing_sdk_instead_of_a_trace(
    stack: str, platform: str, sdk: str, distribution: str, tmp_path: Path
) -> None:
    # None in sys.modules makes `import pulumi_aws` fail as it does where the package is not installed.
    probe = f"""
import sys
sys.modules[{sdk!r}] = None
from inferstack.cli import main
sys.exit(main(["plan", {stack!r}, "--out", {str(tmp_path)!r}]))
"""
    done = run_python(probe)
    assert done.returncode == 2, done.stderr
    assert f"platform: {platform} needs the {distribution} package" in done.stderr
    assert "make runtime" in done.stderr and f"inferstack[{platform}]" in done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr


def test_another_missing_module_is_not_blamed_on_the_platform() -> None:
    from stacks import PlatformSdkMissing, _platform_sdk

    with (
        pytest.raises(ModuleNotFoundError) as caught,
        _platform_sdk(Platform.AWS, "pulumi_aws", "pulumi-aws"),
    ):
        raise ModuleNotFoundError("No module named 'yaml'", name="yaml")
    assert not isinstance(caught.value, PlatformSdkMissing)


@pytest.mark.parametrize(
    "probe",
    [
        pytest.param('from inferstack.cli import main\nmain(["schema"])', id="cli"),
        # An empty config fails validation right away; the program tuned the collector before that.
        pytest.param(
            "import runpy, pulumi\nfrom pulumi.runtime.config import set_all_config\n"
            "from inferstack.planning.recording import run_program\n"
            "set_all_config({'inferstack:platform': 'nowhere'})\n"
            "try:\n    run_program(lambda: runpy.run_path('__main__.py'))\nexcept pulumi.RunError:\n    pass",
            id="pulumi-program",
        ),
    ],
)
def test_entry_points_collect_garbage_less_often(probe: str) -> None:
    # The other half of plan speed (see stacks.ONE_SHOT_GC_THRESHOLDS); timings live in bench/plan_bench.py.
    from stacks import ONE_SHOT_GC_THRESHOLDS

    done = subprocess.run(
        [sys.executable, "-c", f"{probe}\nimport gc, json\nprint(json.dumps(gc.get_threshold()))"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert tuple(json.loads(done.stdout.strip().splitlines()[-1])) == ONE_SHOT_GC_THRESHOLDS
