"""CI/CD workflows and the GitOps example: structure and the security rules they must keep.

The workflows cannot run here, so these tests hold them to what a reviewer would check by hand: every
action pinned to a full commit, fork PRs get no secrets and a read-only token, deployments are bound to
per-stack environments, and every `make` target a workflow or the README names exists.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.config import load_stack_file

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
OPERATOR_EXAMPLE = ROOT / "deploy" / "gitops" / "pulumi-operator-stack.yaml"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
CLOUD_PLATFORMS = {"aws", "gcp"}

PINNED_USES = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[A-Za-z0-9_./-]+)?@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s*)?uses:\s*(\S+)\s*(#.*)?$")
RELEASE_COMMENT = re.compile(r"#\s*v\d+(\.\d+)*\b")
MAKE_CALL = re.compile(r"\bmake\s+([A-Za-z][\w-]*)")


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{path.name}: not a mapping"
    return doc


def triggers(doc: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    on = doc.get("on", doc.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict), "workflow without triggers"
    return on


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def uses_of(doc: dict[str, Any]) -> list[str]:
    return [step["uses"] for job in doc["jobs"].values() for step in steps(job) if "uses" in step]


def run_scripts(doc: dict[str, Any]) -> list[str]:
    return [step["run"] for job in doc["jobs"].values() for step in steps(job) if "run" in step]


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.MULTILINE)}


def stack_platforms() -> dict[str, str]:
    platforms = {}
    for path in sorted((ROOT / "stacks").glob("Pulumi.*.yaml")):
        name = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        platforms[name] = str(load(path)["config"].get("inferstack:platform", "onprem"))
    return platforms


def matrix_stacks(job: dict[str, Any]) -> list[str]:
    return [entry["stack"] for entry in job["strategy"]["matrix"]["include"]]


def workflow(name: str) -> dict[str, Any]:
    return load(WORKFLOWS / name)


def test_the_workflows_of_issue_6_exist() -> None:
    names = {p.name for p in WORKFLOW_FILES}
    assert {"pr.yml", "pr-comment.yml", "preview.yml", "deploy.yml"} <= names


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflow_parses_with_triggers_and_jobs(path: Path) -> None:
    doc = load(path)
    assert triggers(doc)
    assert doc["jobs"], f"{path.name}: no jobs"
    for name, job in doc["jobs"].items():
        assert "runs-on" in job, f"{path.name}: job {name} has no runs-on"
        assert steps(job), f"{path.name}: job {name} has no steps"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_full_commit_with_its_release_in_a_comment(path: Path) -> None:
    lines = [m for line in path.read_text(encoding="utf-8").splitlines() if (m := USES_LINE.match(line))]
    assert len(lines) == len(uses_of(load(path)))
    for match in lines:
        ref, comment = match.group(1), match.group(2) or ""
        assert PINNED_USES.match(ref), f"{path.name}: {ref} is not owner/repo[/path]@<40-hex commit>"
        assert RELEASE_COMMENT.search(comment), f"{path.name}: {ref} needs its release tag in a comment"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_no_workflow_uses_pull_request_target(path: Path) -> None:
    assert "pull_request_target" not in triggers(load(path))


def test_pr_workflow_is_safe_for_forks() -> None:
    doc = workflow("pr.yml")
    text = (WORKFLOWS / "pr.yml").read_text(encoding="utf-8")
    assert set(triggers(doc)) == {"pull_request"}
    assert doc["permissions"] == {"contents": "read"}
    assert re.search(r"\bsecrets\.", text) is None, "pr.yml runs fork code: it must not see secrets"
    assert "id-token" not in text
    for name, job in doc["jobs"].items():
        assert job.get("permissions") in (None, {"contents": "read"}), f"job {name} widens permissions"
        for step in steps(job):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_pr_workflow_tests_checks_every_stack_and_uploads_one_diff_report() -> None:
    jobs = workflow("pr.yml")["jobs"]
    assert any("make test" in script for script in run_scripts({"jobs": {"t": jobs["test"]}}))

    check = jobs["check"]
    assert check["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.stacks) }}"
    assert check["strategy"]["fail-fast"] is False
    assert any('make check STACK="$STACK"' in s for s in run_scripts({"jobs": {"c": check}}))
    listing = " ".join(run_scripts({"jobs": {"s": jobs["stacks"]}}))
    assert "stacks/Pulumi.*.yaml" in listing

    diff = jobs["diff"]
    diff_script = " ".join(run_scripts({"jobs": {"d": diff}}))
    assert '.venv/bin/inferstack diff "$stack" --base "$base" --format markdown' in diff_script
    assert 'base="origin/${BASE_REF}"' in diff_script
    for code_path in ("components/", "inferstack/", r"stacks/[^/]*\.py$"):
        assert code_path in diff_script
    checkout = next(s for s in steps(diff) if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    upload = next(s for s in steps(diff) if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["name"] == "plan-diff"
    assert upload["if"] == "always()"


def test_comment_workflow_is_privileged_but_never_runs_pr_code() -> None:
    doc = workflow("pr-comment.yml")
    assert triggers(doc) == {"workflow_run": {"workflows": ["pr"], "types": ["completed"]}}
    assert workflow("pr.yml")["name"] == "pr"
    assert doc["permissions"] == {}
    (job,) = doc["jobs"].values()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
    uses = uses_of(doc)
    assert not any(u.startswith("actions/checkout@") for u in uses), "must not check out PR code"
    download = next(s for s in steps(job) if s.get("uses", "").startswith("actions/download-artifact@"))
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    script = " ".join(run_scripts(doc))
    # The PR number comes from the artifact (untrusted): it must be numeric and match the run's head commit.
    assert "^[0-9]+$" in script
    assert '"$pr_head" != "$HEAD_SHA"' in script
    assert "inferstack-plan-diff" in script
    for forbidden in ("pip install", "make ", ".venv/bin", "head_branch"):
        assert forbidden not in script


def test_preview_runs_only_for_same_repository_prs_with_oidc_and_the_policy_pack() -> None:
    doc = workflow("preview.yml")
    assert set(triggers(doc)) == {"pull_request"}
    assert doc["permissions"]["id-token"] == "write"
    assert doc["permissions"]["contents"] == "read"
    (job,) = doc["jobs"].values()
    assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    pulumi = next(s for s in steps(job) if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["comment-on-pr"] is True
    assert pulumi["with"]["policyPacks"] == "policy"
    assert "matrix.stack" in pulumi["with"]["stack-name"]


def test_cloud_stacks_are_previewed_and_deployed_dev_before_prod() -> None:
    platforms = stack_platforms()
    cloud = {name for name, platform in platforms.items() if platform in CLOUD_PLATFORMS}
    assert {"dev-aws", "prod-aws", "dev-gcp", "prod-gcp"} <= cloud

    (preview,) = workflow("preview.yml")["jobs"].values()
    assert set(matrix_stacks(preview)) == cloud

    jobs = workflow("deploy.yml")["jobs"]
    assert set(matrix_stacks(jobs["dev"])) | set(matrix_stacks(jobs["prod"])) == cloud
    assert all(s.startswith("dev-") for s in matrix_stacks(jobs["dev"]))
    assert all(s.startswith("prod-") for s in matrix_stacks(jobs["prod"]))
    assert jobs["prod"]["needs"] == "dev"
    for job in (preview, jobs["dev"], jobs["prod"]):
        for entry in job["strategy"]["matrix"]["include"]:
            assert entry["cloud"] == platforms[entry["stack"]]


def test_deploy_binds_every_job_to_its_stack_environment_one_at_a_time() -> None:
    doc = workflow("deploy.yml")
    assert triggers(doc) == {"push": {"branches": ["main"]}}
    assert doc["permissions"] == {"contents": "read", "id-token": "write"}
    for name, job in doc["jobs"].items():
        assert job.get("environment") == "${{ matrix.stack }}", f"job {name} has no per-stack environment"
        assert job["concurrency"] == {"group": "deploy-${{ matrix.stack }}", "cancel-in-progress": False}
        pulumi = next(s for s in steps(job) if s.get("uses", "").startswith("pulumi/actions@"))
        assert pulumi["with"]["command"] == "up"
        assert pulumi["with"]["policyPacks"] == "policy"


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_cloud_credentials_come_from_oidc_never_from_stored_keys(name: str) -> None:
    doc = workflow(name)
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    for key in ("aws-access-key-id", "aws-secret-access-key", "credentials_json", "AWS_SECRET_ACCESS_KEY"):
        assert key not in text
    for job in doc["jobs"].values():
        aws = next(
            s for s in steps(job) if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
        )
        assert aws["with"]["role-to-assume"].startswith("${{ vars.")
        assert aws["if"] == "matrix.cloud == 'aws'"
        gcp = next(s for s in steps(job) if s.get("uses", "").startswith("google-github-actions/auth@"))
        assert gcp["with"]["workload_identity_provider"].startswith("${{ vars.")
        assert gcp["with"]["service_account"].startswith("${{ vars.")
        assert gcp["if"] == "matrix.cloud == 'gcp'"


def test_every_make_target_used_by_workflows_and_the_readme_exists() -> None:
    targets = makefile_targets()
    assert {"test", "check", "plan", "runtime"} <= targets
    for path in WORKFLOW_FILES:
        for script in run_scripts(load(path)):
            for target in MAKE_CALL.findall(script):
                assert target in targets, f"{path.name}: make {target} is not a Makefile target"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for shown in ("make test", "make check", "make plan"):
        assert shown in readme
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in MAKE_CALL.findall(page.read_text(encoding="utf-8")):
            assert target in targets, f"{page.relative_to(ROOT)}: make {target} is not a Makefile target"


def test_gitops_page_documents_the_operator_and_rendered_manifests() -> None:
    section = (ROOT / "docs" / "gitops.md").read_text(encoding="utf-8")
    for needle in (
        "deploy/gitops/pulumi-operator-stack.yaml",
        "render_yaml_to_directory",
        "manifests.yaml",
        "summary.md",
        "PULUMI_ACCESS_TOKEN",
    ):
        assert needle in section


def test_operator_example_is_a_pulumi_stack_tracking_main() -> None:
    docs = [d for d in yaml.safe_load_all(OPERATOR_EXAMPLE.read_text(encoding="utf-8")) if d]
    (stack,) = [d for d in docs if d.get("kind") == "Stack"]
    assert stack["apiVersion"] == "pulumi.com/v1"
    spec = stack["spec"]
    assert spec["branch"] == "main"
    assert spec["projectRepo"].startswith("https://")
    assert spec["refresh"] is True
    assert spec["destroyOnFinalize"] is False
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", spec["stack"])
    assert spec["stack"].split("/")[1] in stack_platforms()
    token = spec["envRefs"]["PULUMI_ACCESS_TOKEN"]
    assert token["type"] == "Secret"
    assert set(token["secret"]) == {"name", "key"}
    accounts = {
        (d["metadata"]["name"], d["metadata"]["namespace"]) for d in docs if d.get("kind") == "ServiceAccount"
    }
    assert (spec["serviceAccountName"], stack["metadata"]["namespace"]) in accounts


def stack_tiers() -> dict[str, str]:
    return {
        path.name.removeprefix("Pulumi.").removesuffix(".yaml"): str(load(path)["config"]["inferstack:tier"])
        for path in sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))
    }


def pyproject_pin(package: str) -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(rf'"{re.escape(package)}==([^"]+)"', text)
    assert match, f"pyproject.toml does not pin {package}"
    return match.group(1)


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_pulumi_runs_the_policy_pack_at_the_stacks_tier_with_the_pinned_cli(name: str) -> None:
    tiers = stack_tiers()
    for job_name, job in workflow(name)["jobs"].items():
        for entry in job["strategy"]["matrix"]["include"]:
            # Without the tier's config every policy is mandatory: a dev preview would fail on digests.
            assert entry["tier"] == tiers[entry["stack"]], f"{name} {job_name}: {entry['stack']}"
            assert (ROOT / "policy" / f"{entry['tier']}.json").is_file()
        pulumi_step = next(s for s in steps(job) if s.get("uses", "").startswith("pulumi/actions@"))
        assert pulumi_step["with"]["policyPackConfigs"] == "policy/${{ matrix.tier }}.json"
        assert pulumi_step["with"]["pulumi-version"] == pyproject_pin("pulumi")
        setup = [s["run"] for s in steps(job)[: steps(job).index(pulumi_step)] if "run" in s]
        assert any(re.search(r"\bmake runtime policy-pack\b", script) for script in setup), job_name


def test_make_policy_pack_builds_the_virtualenv_the_pack_names() -> None:
    pack = load(ROOT / "policy" / "PulumiPolicy.yaml")
    assert pack["runtime"]["options"]["virtualenv"] == "venv"
    assert re.search(r"^POLICY_VENV := policy/venv$", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_pr_checks_validate_against_fetched_upstream_schemas() -> None:
    jobs = workflow("pr.yml")["jobs"]
    check_steps = [s for s in steps(jobs["check"]) if "run" in s]
    runs = [s["run"] for s in check_steps]
    assert runs.index("make fetch-schemas") < runs.index('make check STACK="$STACK"')
    env = next(s for s in check_steps if s["run"].startswith("make check"))["env"]
    upstream = re.search(r"^UPSTREAM_DIR \?= (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert upstream
    assert env["INFERSTACK_CRD_DIR"] == f"${{{{ github.workspace }}}}/{upstream.group(1)}/crds"
    assert env["INFERSTACK_CHART_DIR"] == f"${{{{ github.workspace }}}}/{upstream.group(1)}/charts"


def test_pr_tests_take_the_cpu_torch_build() -> None:
    (test_step,) = [s for s in steps(workflow("pr.yml")["jobs"]["test"]) if s.get("run") == "make test"]
    assert test_step["env"]["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
    # An extra index: torch+cpu comes from it, pinned by its hash in requirements/dev.txt; the rest from PyPI.
    assert (
        "TORCH_FROM = $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))"
        in (ROOT / "Makefile").read_text()
    )


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflows_run_the_python_the_locks_are_compiled_for(path: Path) -> None:
    # requirements/dev.txt targets CPython 3.11 (its torch wheel is cp311); the universal locks start there.
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "LINUX_311 = --python-platform x86_64-manylinux_2_28 --python-version 3.11" in makefile
    for job in load(path)["jobs"].values():
        for step in steps(job):
            if step.get("uses", "").startswith("actions/setup-python@"):
                assert str(step["with"]["python-version"]) == "3.11", path.name


# --- who can reach each stack's Kubernetes API ------------------------------------------------------------

#: What a job must say to land on a self-hosted runner when its stack asks for one, and to fail at once
#: (not after creating the cluster) when it lands on a GitHub-hosted one. `runner.environment` is
#: "github-hosted" or "self-hosted" (GitHub docs, contexts: runner context; RUNNER_ENVIRONMENT).
RUNS_ON_BY_STACK = "${{ matrix.runner_variable && vars[matrix.runner_variable] || 'ubuntu-latest' }}"
FAIL_FAST_IF = "matrix.runner_variable && runner.environment != 'self-hosted'"
RUNNER_VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*_RUNNER$")


def api_reachable_from_github_hosted_runners(stack: str) -> bool:
    """Whether `pulumi preview`/`up` on a GitHub-hosted runner can reach the stack's Kubernetes API.

    GitHub-hosted runners egress from thousands of cloud ranges that change weekly, and the stack schema
    refuses 0.0.0.0/0 for either cloud's API, so a network allow-list never covers them. EKS: the API is
    a private endpoint (VPC + private_access_cidrs) plus, when public_access_cidrs is set, a public one
    limited to those networks: never reachable. GKE: the kubeconfig uses the DNS endpoint whenever it is
    on (components/clusters/gcp/gke.py api_server_url), which takes calls from anywhere and checks IAM;
    without it, the IP endpoints are limited to listed networks. On-prem stacks are not in the workflows.
    """
    cfg = load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    if cfg.aws is not None:
        return False
    if cfg.gcp is not None:
        return cfg.gcp.api_endpoint.dns_endpoint
    raise AssertionError(f"{stack}: not a cloud stack; the workflows deploy aws and gcp stacks only")


def stack_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    """(workflow, job name, job) for every job that runs Pulumi against a cluster."""
    found = []
    for path in WORKFLOW_FILES:
        for job_name, job in load(path)["jobs"].items():
            if any(s.get("uses", "").startswith("pulumi/actions@") for s in steps(job)):
                found.append((path.name, job_name, job))
    return found


def test_stack_jobs_include_every_preview_and_deploy() -> None:
    assert {(w, j) for w, j, _ in stack_jobs()} == {
        ("preview.yml", "preview"),
        ("deploy.yml", "dev"),
        ("deploy.yml", "prod"),
    }


@pytest.mark.parametrize("stack", sorted(s for s, p in stack_platforms().items() if p in CLOUD_PLATFORMS))
def test_every_job_runs_its_stack_on_a_runner_that_reaches_the_stacks_api(stack: str) -> None:
    reachable = api_reachable_from_github_hosted_runners(stack)
    for workflow_name, job_name, job in stack_jobs():
        entries = [e for e in job["strategy"]["matrix"]["include"] if e["stack"] == stack]
        for entry in entries:
            where = f"{workflow_name} {job_name} {stack}"
            variable = entry.get("runner_variable")
            if reachable:
                assert variable is None, f"{where}: its API is reachable from GitHub-hosted runners"
                continue
            assert variable, (
                f"{where}: GitHub-hosted runners cannot reach this stack's Kubernetes API; give its matrix "
                "entry runner_variable: <NAME>_RUNNER (a self-hosted runner inside the allowed networks)"
            )
            assert RUNNER_VARIABLE.match(variable), where
            assert job["runs-on"] == RUNS_ON_BY_STACK, where
            first = steps(job)[0]
            assert first.get("if") == FAIL_FAST_IF, f"{where}: the first step must stop a GitHub-hosted run"
            assert "exit 1" in first["run"] and "::error" in first["run"]
            assert first["env"]["RUNNER_VARIABLE"] == "${{ matrix.runner_variable }}"


def test_runner_variables_are_documented() -> None:
    page = (ROOT / "docs" / "gitops.md").read_text(encoding="utf-8")
    for _, _, job in stack_jobs():
        for entry in job["strategy"]["matrix"]["include"]:
            if "runner_variable" in entry:
                assert f"`{entry['runner_variable']}`" in page, entry["runner_variable"]


#: What a deploy job needs besides the model server's rollout: the cluster, its add-ons and controllers
#: (an estimate: an EKS control plane alone takes 9-20 minutes), plus 15 minutes to spare.
CLUSTER_BUDGET_SECONDS = 3600 + 900


def _rollout_timeout_seconds(stack: str) -> int:
    from inferstack.planning.plan import plan_stack
    from stacks.config import load_stack_file

    plan = plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)
    (server,) = [
        r
        for r in plan.recording.of_type("kubernetes:apps/v1:Deployment")
        if r.inputs["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "model-server"
    ]
    return int(str(server.custom_timeouts["update"]).removesuffix("s"))


@pytest.mark.parametrize("job_name", ["dev", "prod"])
def test_deploy_jobs_and_aws_sessions_outlast_the_stacks_rollout(job_name: str) -> None:
    # A job killed (or AWS credentials expiring) mid-rollout leaves the update locked with pending
    # operations; each stack's limits are checked against its planned Deployment's Pulumi timeout.
    job = workflow("deploy.yml")["jobs"][job_name]
    assert job["timeout-minutes"] == "${{ matrix.timeout_minutes }}"
    aws_steps = [
        s for s in steps(job) if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
    ]
    assert [s["with"]["role-duration-seconds"] for s in aws_steps] == ["${{ matrix.role_duration_seconds }}"]
    for entry in job["strategy"]["matrix"]["include"]:
        needed = _rollout_timeout_seconds(entry["stack"]) + CLUSTER_BUDGET_SECONDS
        assert entry["timeout_minutes"] * 60 >= needed, entry["stack"]
        # GitHub-hosted jobs stop at 6 hours whatever the setting.
        assert entry["timeout_minutes"] <= 360, entry["stack"]
        if entry["cloud"] == "aws":
            # AssumeRoleWithWebIdentity allows up to the role's MaxSessionDuration, at most 12 hours.
            assert entry["timeout_minutes"] * 60 <= entry["role_duration_seconds"] <= 43200, entry["stack"]
