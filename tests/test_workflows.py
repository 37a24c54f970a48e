"""CI/CD workflows and the GitOps example: structure and the security rules they must keep.

The workflows cannot run here, so these tests hold them to what a reviewer would check by hand: every
action pinned to a full commit, fork PRs get no secrets and a read-only token, deployments are bound to
per-stack environments, and every `make` target a workflow or the README names exists.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.config import load_stack_file

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
OPERATOR_EXAMPLE = ROOT / "deploy" / "gitops" / "pulumi-operator-stack.yaml"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
CLOUD_PLATFORMS = {"aws", "gcp", "azure"}

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
    assert doc["permissions"] == {}
    (job,) = doc["jobs"].values()
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    pulumi = next(s for s in steps(job) if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview"
    # pulumi/actions v7.0.0 (src/libs/pr.ts) posts the PR code's output raw inside <pre> as the bot.
    assert pulumi["with"]["comment-on-pr"] is False
    assert pulumi["with"]["policyPacks"] == "policy"
    assert "matrix.stack" in pulumi["with"]["stack-name"]


def test_cloud_stacks_are_previewed_and_deployed_dev_before_prod() -> None:
    platforms = stack_platforms()
    cloud = {name for name, platform in platforms.items() if platform in CLOUD_PLATFORMS}
    assert {"dev-aws", "prod-aws", "dev-gcp", "prod-gcp", "dev-azure", "prod-azure"} <= cloud

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
    assert doc["permissions"] == {}
    for name, job in doc["jobs"].items():
        assert job["permissions"] == {"contents": "read", "id-token": "write", "actions": "read"}, name
        assert job.get("environment") == "${{ matrix.stack }}", f"job {name} has no per-stack environment"
        assert job["concurrency"] == {"group": "deploy-${{ matrix.stack }}", "cancel-in-progress": False}
        pulumi = next(s for s in steps(job) if s.get("uses", "").startswith("pulumi/actions@"))
        assert pulumi["with"]["command"] == "up"
        assert pulumi["with"]["policyPacks"] == "policy"


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_cloud_credentials_come_from_oidc_never_from_stored_keys(name: str) -> None:
    doc = workflow(name)
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    stored_keys = ["aws-access-key-id", "aws-secret-access-key", "credentials_json", "AWS_SECRET_ACCESS_KEY"]
    # azure/login's `creds` (a service principal's JSON with its secret) and client secrets for the SDKs.
    stored_keys += [
        "creds:",
        "client-secret",
        "AZURE_CLIENT_SECRET",
        "ARM_CLIENT_SECRET",
        "ARM_CLIENT_CERTIFICATE",
    ]
    for key in stored_keys:
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
        azure = next(s for s in steps(job) if s.get("uses", "").startswith("azure/login@"))
        assert set(azure["with"]) == {"client-id", "tenant-id", "subscription-id"}
        assert all(value.startswith("${{ vars.") for value in azure["with"].values())
        assert azure["if"] == "matrix.cloud == 'azure'"


#: Which identity each workflow signs in as: previews read-only, deployments the deploy identity.
IDENTITY_VARIABLES = {
    "preview.yml": {"AWS_PREVIEW_ROLE_ARN", "GCP_PREVIEW_SERVICE_ACCOUNT", "AZURE_PREVIEW_CLIENT_ID"},
    "deploy.yml": {"AWS_DEPLOY_ROLE_ARN", "GCP_DEPLOY_SERVICE_ACCOUNT", "AZURE_DEPLOY_CLIENT_ID"},
}


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_previews_sign_in_as_the_read_only_identities_and_deployments_as_the_deploy_ones(name: str) -> None:
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    (other,) = set(IDENTITY_VARIABLES) - {name}
    for variable in IDENTITY_VARIABLES[name]:
        assert f"vars.{variable} }}}}" in text, f"{name} does not sign in with {variable}"
    for variable in IDENTITY_VARIABLES[other]:
        assert not re.search(rf"\b{variable}\b", text), f"{name} names {other}'s identity {variable}"


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
    AKS: a private cluster's API server has only a private address in the VNet (and its peers); a public
    one admits `azure.api_server.authorized_ip_ranges` (plus the cluster's NAT address), and only an empty
    list would admit everyone, which stacks/rules_azure.py refuses.
    """
    cfg = load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    if cfg.aws is not None:
        return False
    if cfg.gcp is not None:
        return cfg.gcp.api_endpoint.dns_endpoint
    if cfg.azure is not None:
        api = cfg.azure.api_server
        return not api.private and not api.authorized_ip_ranges
    raise AssertionError(f"{stack}: not a cloud stack; the workflows deploy aws, gcp and azure stacks only")


def stack_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    """(workflow, job name, job) for every job that runs Pulumi against a cloud stack's cluster: a
    pulumi/actions step with a `command`. Without one the action only installs the CLI (its README,
    "Installation Only"), as e2e.yml uses it for the local stack on kind."""
    found = []
    for path in WORKFLOW_FILES:
        for job_name, job in load(path)["jobs"].items():
            if any(
                s.get("uses", "").startswith("pulumi/actions@") and "command" in s.get("with", {})
                for s in steps(job)
            ):
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


# --- issue 15: where secrets, OIDC tokens and pull-request code may go ----------------------------------

#: Every action release the workflows pin, by commit. Each SHA was read from the tag in the action's own
#: repository (issue 15's review checked them; configure-aws-credentials' e1253824…, once labelled v6.3.0,
#: is in no upstream snapshot: v6.2.3 is e6de0542… in aws-actions/configure-aws-credentials).
KNOWN_RELEASES = {
    "actions/checkout": ("9c091bb21b7c1c1d1991bb908d89e4e9dddfe3e0", "v7.0.0"),
    "actions/setup-python": ("ece7cb06caefa5fff74198d8649806c4678c61a1", "v6.3.0"),
    "actions/download-artifact": ("3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1"),
    "actions/upload-artifact": ("043fb46d1a93c77aae656e7c1c64a875d1fc6a0a", "v7.0.1"),
    # Azure/login: `git rev-parse v2.3.1^{commit}` in the upstream repository (its newest v2 tag; the
    # floating v2 tag points at the same commit).
    "azure/login": ("7184910d9eb2b1c5e48f7073824a90609bb9b6d6", "v2.3.1"),
    "aws-actions/configure-aws-credentials": ("e6de054238d6b7531b4efff3b6587d9aade6a06c", "v6.2.3"),
    "google-github-actions/auth": ("7c6bc770dae815cd3e89ee6cdf493a5fab2cc093", "v3.0.0"),
    "pulumi/actions": ("8e5e406f4007fca908480587cb9893c07090f58d", "v7.0.0"),
}
CREDENTIAL_ACTIONS = ("aws-actions/configure-aws-credentials@", "google-github-actions/auth@", "azure/login@")
#: Commands that install software; in a workflow only `make` targets may install (from the locks, with hashes).
UNLOCKED_INSTALL = re.compile(
    r"\b(apt-get|apt|yum|dnf|apk|brew|snap)\s+install\b|\bpip3?\s+install\b|\bnpm\s+(install|i|ci)\b"
    r"|\bgcloud\s+components\s+install\b|\b(curl|wget)\b[^\n|]*\|\s*(sudo\s+)?(ba)?sh\b"
)


def secret_references(node: Any, where: str) -> list[str]:
    """Where (a dotted path) each `secrets.` expression sits in a parsed workflow."""
    if isinstance(node, dict):
        return [ref for key, value in node.items() for ref in secret_references(value, f"{where}.{key}")]
    if isinstance(node, list):
        return [ref for i, value in enumerate(node) for ref in secret_references(value, f"{where}[{i}]")]
    return [where] if isinstance(node, str) and re.search(r"\bsecrets\.|secrets:\s*inherit", node) else []


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_secrets_reach_only_the_pulumi_step_of_a_job_in_an_environment(path: Path) -> None:
    doc = load(path)
    assert "secrets" not in str(doc.get("env", {})), (
        f"{path.name}: workflow-level env exposes secrets to every step"
    )
    for job_name, job in doc["jobs"].items():
        assert job.get("secrets") != "inherit", f"{path.name} {job_name}"
        allowed = {
            f"jobs.{job_name}.steps[{i}].env.{key}"
            for i, step in enumerate(steps(job))
            if step.get("uses", "").startswith("pulumi/actions@")
            for key in step.get("env", {})
        }
        found = secret_references(job, f"jobs.{job_name}")
        assert set(found) <= allowed, (
            f"{path.name}: secrets outside the Pulumi step's env: {set(found) - allowed}"
        )
        if found:
            # Repository secrets would reach any job a branch writes; environment secrets only its own.
            assert job.get("environment"), f"{path.name} {job_name}: secrets without a GitHub environment"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_oidc_tokens_only_for_jobs_bound_to_an_environment(path: Path) -> None:
    doc = load(path)
    assert "id-token" not in (doc.get("permissions") or {}), f"{path.name}: id-token for every job"
    for job_name, job in doc["jobs"].items():
        if (job.get("permissions") or {}).get("id-token") == "write":
            # The token's subject is then repo:<owner>/<repo>:environment:<name>, what deploy/bootstrap trusts.
            assert job.get("environment"), (
                f"{path.name} {job_name}: an OIDC token with no environment subject"
            )


def test_previews_run_in_preview_environments_and_never_on_a_deploy_runner() -> None:
    (preview,) = workflow("preview.yml")["jobs"].values()
    assert preview["environment"] == "preview-${{ matrix.stack }}"
    deploy_runners = {
        e["runner_variable"]
        for job in workflow("deploy.yml")["jobs"].values()
        for e in job["strategy"]["matrix"]["include"]
        if "runner_variable" in e
    }
    assert deploy_runners, "deploy.yml names no self-hosted runner: this test would prove nothing"
    for path in WORKFLOW_FILES:
        doc = load(path)
        if "pull_request" not in triggers(doc):
            continue
        text = path.read_text(encoding="utf-8")
        for variable in deploy_runners:
            assert not re.search(rf"\b{variable}\b", text), f"{path.name} runs PR code on {variable}"
        for job_name, job in doc["jobs"].items():
            for entry in (job.get("strategy") or {}).get("matrix", {}).get("include", []):
                if "runner_variable" in entry:
                    assert entry["runner_variable"].endswith("_PREVIEW_RUNNER"), f"{path.name} {job_name}"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflows_install_nothing_outside_the_locks(path: Path) -> None:
    for script in run_scripts(load(path)):
        assert not UNLOCKED_INSTALL.search(script), f"{path.name}: an install outside a lock:\n{script}"


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_cloud_credentials_are_obtained_after_every_install_and_check(name: str) -> None:
    for job_name, job in workflow(name)["jobs"].items():
        job_steps = steps(job)
        first_credential = min(
            i for i, s in enumerate(job_steps) if s.get("uses", "").startswith(CREDENTIAL_ACTIONS)
        )
        installs = [i for i, s in enumerate(job_steps) if re.search(r"\b(make|curl)\b", s.get("run", ""))]
        assert installs and max(installs) < first_credential, f"{name} {job_name}"


def test_every_action_pin_is_a_release_seen_upstream() -> None:
    for path in WORKFLOW_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not (match := USES_LINE.match(line)):
                continue
            action, sha = match.group(1).split("@")
            assert action in KNOWN_RELEASES, f"{path.name}: {action} is not a release checked upstream"
            known_sha, tag = KNOWN_RELEASES[action]
            assert (sha, (match.group(2) or "").lstrip("# ").split()[0]) == (known_sha, tag), (
                f"{path.name}: {action}@{sha} {match.group(2)} is not {known_sha} # {tag}"
            )


# The environment check deploy.yml runs before any credential, run here against a fake `gh`.

FAKE_GH = """#!/bin/sh
# gh api <path> [--jq FILTER]: the fixture for <path>, filtered by jq as gh would.
path="$2"; shift 2
case "$path" in
  */deployment-branch-policies) file="$FIXTURES/policies.json" ;;
  *) file="$FIXTURES/environment.json" ;;
esac
[ -f "$file" ] || { echo "HTTP 404: Not Found" >&2; exit 1; }
if [ "$1" = "--jq" ]; then jq -r "$2" "$file"; else cat "$file"; fi
"""


def environment_check(job_name: str) -> dict[str, Any]:
    (step,) = [
        s
        for s in steps(workflow("deploy.yml")["jobs"][job_name])
        if "deployment-branch-policies" in s.get("run", "")
    ]
    return step


def run_environment_check(
    tmp_path: Path, tier: str, environment: dict[str, Any] | None, policies: list[dict[str, str]]
) -> subprocess.CompletedProcess[str]:
    import json
    import shutil

    if shutil.which("jq") is None:
        pytest.skip("jq is not installed: deploy.yml's environment check reads the API's JSON with it")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(FAKE_GH)
    (bin_dir / "gh").chmod(0o755)
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    if environment is not None:
        (fixtures / "environment.json").write_text(json.dumps(environment))
        (fixtures / "policies.json").write_text(json.dumps({"branch_policies": policies}))
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FIXTURES": str(fixtures),
        "REPO": "acme/inferstack",
        "ENVIRONMENT": f"{tier}-aws",
        "TIER": tier,
    }
    script = environment_check("prod" if tier == "prod" else "dev")["run"]
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30)


PROTECTED = {
    "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True},
    "protection_rules": [{"type": "required_reviewers", "reviewers": [{"type": "Team"}]}],
}
MAIN_ONLY = [{"name": "main", "type": "branch"}]


@pytest.mark.parametrize(
    ("tier", "environment", "policies", "refusal"),
    [
        ("prod", None, [], "cannot read it"),  # never created: GitHub would create it unprotected
        ("prod", {"deployment_branch_policy": None, "protection_rules": []}, [], "admits every branch"),
        ("prod", PROTECTED, [*MAIN_ONLY, {"name": "feature/*", "type": "branch"}], "not main alone"),
        ("prod", PROTECTED, [{"name": "main", "type": "tag"}], "not main alone"),
        (
            "prod",
            {**PROTECTED, "protection_rules": [{"type": "wait_timer"}]},
            MAIN_ONLY,
            "required reviewers",
        ),
        ("prod", PROTECTED, MAIN_ONLY, None),
        ("dev", {**PROTECTED, "protection_rules": []}, MAIN_ONLY, None),
    ],
)
def test_deploy_stops_before_credentials_when_its_environment_is_unprotected(
    tmp_path: Path,
    tier: str,
    environment: dict[str, Any] | None,
    policies: list[dict[str, str]],
    refusal: str | None,
) -> None:
    result = run_environment_check(tmp_path, tier, environment, policies)
    if refusal is None:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "main only" in result.stdout
    else:
        assert result.returncode != 0
        assert "::error title=environment" in result.stdout and refusal in result.stdout, result.stdout
        assert "deploy/bootstrap" in result.stdout


def test_dev_and_prod_deploys_run_the_same_environment_check() -> None:
    # The cases above run the prod job's step; the dev job must hold the same one (TIER tells them apart).
    assert environment_check("dev") == environment_check("prod")
    assert environment_check("prod")["env"]["TIER"] == "${{ matrix.tier }}"


@pytest.mark.parametrize("job_name", ["dev", "prod"])
def test_the_environment_check_runs_before_checkout_and_credentials(job_name: str) -> None:
    job_steps = steps(workflow("deploy.yml")["jobs"][job_name])
    check = job_steps.index(environment_check(job_name))
    assert check < min(
        i
        for i, s in enumerate(job_steps)
        if s.get("uses", "").startswith(("actions/checkout@", *CREDENTIAL_ACTIONS))
    )


# The PR comment: the PR's own report, posted as github-actions[bot], must stay inert text.


def comment_renderer() -> str:
    """The Python program pr-comment.yml runs (its `python3 - ... <<'PY'` heredoc)."""
    script = " ".join(run_scripts(workflow("pr-comment.yml")))
    match = re.search(r"<<'PY'\n(.*?)\nPY\n", script, re.DOTALL)
    assert match, "pr-comment.yml renders the comment with an inline python3 heredoc"
    return match.group(1)


def render_comment(tmp_path: Path, report: str) -> str:
    source, target = tmp_path / "report.md", tmp_path / "comment.md"
    source.write_text(report, encoding="utf-8")
    marker, sha = "<!-- inferstack-plan-diff -->", "0123456789abcdef0123456789abcdef01234567"
    subprocess.run(
        [sys.executable, "-c", comment_renderer(), str(source), str(target), marker, sha],
        check=True,
        timeout=30,
    )
    return target.read_text(encoding="utf-8")


HOSTILE_REPORTS = {
    "mentions": "@acme/platform-team @octocat please merge\n",
    "approval": "## Approved by platform-team\n\n:white_check_mark: **LGTM** — security review passed\n",
    "image": '![ok](https://evil.example/pixel.png) <img src="https://evil.example/x.png">\n',
    "unclosed html": "<details open><summary>x</summary>\n<table><tr><td>\n",
    "breaks a 3-backtick fence": "```\n@acme/admins\n```\n<b>out</b>\n",
    "longer backtick runs": "``````````\n`````` nested\n",
    "carriage return": "line\r```\r@acme/admins\r\n<img src=x>",
    "control and bidi": "a\x00b\x1b[31mred\u202eevil\u2066x\n",
    "link": "[click](javascript:alert(1)) https://evil.example\n",
}


@pytest.mark.parametrize("report", list(HOSTILE_REPORTS.values()), ids=list(HOSTILE_REPORTS))
def test_the_pr_comment_renders_the_report_as_one_inert_code_block(tmp_path: Path, report: str) -> None:
    from markdown_it import MarkdownIt

    body = render_comment(tmp_path, report)
    assert body.startswith("<!-- inferstack-plan-diff -->\n"), "the marker the update looks for comes first"
    tokens = MarkdownIt("commonmark").enable("table").parse(body)
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) == 1, [t.type for t in tokens]
    # Everything the PR wrote is inside that one fence; what is outside is ours alone.
    outside = "".join(t.content for t in tokens if t is not fences[0])
    for needle in ("@acme", "@octocat", "Approved", "evil", "<img", "<details", "<b>", "javascript"):
        assert needle not in outside, needle
    assert [t.content for t in tokens if t.type == "html_block"] == ["<!-- inferstack-plan-diff -->\n"]
    inline_children = [c for t in tokens if t.children for c in t.children]
    assert not any(c.type in ("image", "html_inline", "link_open") for c in inline_children)
    assert "produced by this pull request's own code" in outside
    # The report survives as text, less only control and bidi characters.
    assert "@acme" in fences[0].content or "@acme" not in report
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]", body)


def test_the_pr_comment_caps_a_long_report_under_githubs_limit_and_says_so(tmp_path: Path) -> None:
    body = render_comment(tmp_path, ("| a | @team |\n" + "`" * 40 + "\n") * 20_000)
    assert len(body) < 65_536
    assert "Truncated" in body.splitlines()[-1]
    short = render_comment(tmp_path, "| stack | change |\n|---|---|\n| prod-aws | 2 to update |\n")
    assert "Truncated" not in short and "prod-aws | 2 to update" in short


def test_the_pr_comment_is_written_by_the_renderer_and_matched_by_its_marker() -> None:
    script = " ".join(run_scripts(workflow("pr-comment.yml")))
    assert 'python3 - "$DIR/report.md" "$body" "$marker" "$HEAD_SHA" <<\'PY\'' in script
    assert script.index("<<'PY'") < script.index('-F "body=@$body"')
    assert "^[0-9a-f]{40}$" in script, "the head SHA is printed in the comment: it must be a SHA"


# --- Azure: kubelogin, and OIDC that outlives azure/login's one GitHub token -------------------------------

#: What only an Azure job may run or set: the login action, kubelogin, and the variables that the azure-native
#: provider (ARM_*) and kubelogin (AZURE_*, AAD_LOGIN_METHOD) read.
AZURE_ONLY = re.compile(r"azure/login@|kubelogin|\bARM_[A-Z_]+|\bAZURE_[A-Z_]+|\bAAD_LOGIN_METHOD\b")
AZURE_IF = "matrix.cloud == 'azure'"
GUIDS = {
    "CLIENT_ID": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "TENANT_ID": "11111111-2222-3333-4444-555555555555",
    "SUBSCRIPTION_ID": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
}


def azure_oidc_step(job: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in steps(job) if "AAD_LOGIN_METHOD" in s.get("run", "")]
    return step


def run_azure_oidc_step(
    tmp_path: Path, step: dict[str, Any], **values: str
) -> tuple[int, str, dict[str, str]]:
    github_env = tmp_path / "github_env"
    github_env.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "GITHUB_ENV": str(github_env),
        "AZURE_CLIENT_ID_VARIABLE": step["env"]["AZURE_CLIENT_ID_VARIABLE"],
        **GUIDS,
        **values,
    }
    result = subprocess.run(["bash", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=30)
    written = dict(line.split("=", 1) for line in github_env.read_text().splitlines())
    return result.returncode, result.stdout, written


@pytest.mark.parametrize(("workflow_name", "job_name"), [(w, j) for w, j, _ in stack_jobs()])
def test_azure_steps_run_only_for_azure_stacks(workflow_name: str, job_name: str) -> None:
    job = workflow(workflow_name)["jobs"][job_name]
    assert any(e["cloud"] == "azure" for e in job["strategy"]["matrix"]["include"]), "no azure stack"
    azure = [s for s in steps(job) if AZURE_ONLY.search(yaml.safe_dump(s))]
    assert len(azure) == 3, [s.get("name", s.get("uses")) for s in azure]  # kubelogin, login, OIDC env
    for step in azure:
        assert step.get("if") == AZURE_IF, step.get("name", step.get("uses"))


@pytest.mark.parametrize(("workflow_name", "job_name"), [(w, j) for w, j, _ in stack_jobs()])
def test_azure_native_and_kubelogin_get_the_oidc_environment_they_read(
    tmp_path: Path, workflow_name: str, job_name: str
) -> None:
    job = workflow(workflow_name)["jobs"][job_name]
    job_steps = steps(job)
    step = azure_oidc_step(job)
    (login,) = [s for s in job_steps if s.get("uses", "").startswith("azure/login@")]
    pulumi = next(s for s in job_steps if s.get("uses", "").startswith("pulumi/actions@"))
    assert job_steps.index(login) < job_steps.index(step) < job_steps.index(pulumi)
    # The same identity as azure/login, named by the variable the error message gives.
    assert step["env"]["CLIENT_ID"] == login["with"]["client-id"]
    assert step["env"]["CLIENT_ID"] == f"${{{{ vars.{step['env']['AZURE_CLIENT_ID_VARIABLE']} }}}}"
    assert step["env"]["TENANT_ID"] == login["with"]["tenant-id"]
    assert step["env"]["SUBSCRIPTION_ID"] == login["with"]["subscription-id"]

    rc, _, written = run_azure_oidc_step(tmp_path, step)
    assert rc == 0
    # pulumi-azure-native (provider/pkg/provider/auth_azidentity.go readAuthConfig): ARM_USE_OIDC and the ids,
    # the GitHub token fetched from ACTIONS_ID_TOKEN_REQUEST_URL for each Entra token. kubelogin v0.2.13
    # (pkg/internal/token/options.go UpdateFromEnv): AAD_LOGIN_METHOD overrides the kubeconfig's --login.
    assert written == {
        "ARM_USE_OIDC": "true",
        "ARM_CLIENT_ID": GUIDS["CLIENT_ID"],
        "ARM_TENANT_ID": GUIDS["TENANT_ID"],
        "ARM_SUBSCRIPTION_ID": GUIDS["SUBSCRIPTION_ID"],
        "AAD_LOGIN_METHOD": "workloadidentity",
        "AZURE_CLIENT_ID": GUIDS["CLIENT_ID"],
        "AZURE_TENANT_ID": GUIDS["TENANT_ID"],
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [("CLIENT_ID", ""), ("TENANT_ID", "contoso.onmicrosoft.com"), ("SUBSCRIPTION_ID", "x\nARM_USE_MSI=true")],
)
def test_the_azure_oidc_step_refuses_a_missing_or_malformed_variable_naming_it(
    tmp_path: Path, field: str, value: str
) -> None:
    for workflow_name, job_name, job in stack_jobs():
        step = azure_oidc_step(job)
        rc, stdout, written = run_azure_oidc_step(tmp_path, step, **{field: value})
        variable = {"CLIENT_ID": step["env"]["AZURE_CLIENT_ID_VARIABLE"]}.get(field, f"AZURE_{field}")
        assert rc != 0, f"{workflow_name} {job_name}"
        assert f"::error title={variable} is not set::" in stdout, stdout
        assert written == {}, "nothing reaches GITHUB_ENV from a refused variable"


def test_the_azure_identity_variables_are_the_preview_and_deploy_ones() -> None:
    for workflow_name, job_name, job in stack_jobs():
        variable = azure_oidc_step(job)["env"]["AZURE_CLIENT_ID_VARIABLE"]
        kind = "PREVIEW" if workflow_name == "preview.yml" else "DEPLOY"
        assert variable == f"AZURE_{kind}_CLIENT_ID", f"{workflow_name} {job_name}"


def kubelogin_steps() -> list[dict[str, Any]]:
    return [s for _, _, job in stack_jobs() for s in steps(job) if "kubelogin.zip" in s.get("run", "")]


def test_kubelogin_is_pinned_verified_before_it_is_made_executable_and_the_same_everywhere() -> None:
    from components.clusters.azure.aks import KUBELOGIN

    found = kubelogin_steps()
    assert len(found) == len(stack_jobs())
    assert all(s == found[0] for s in found), "every job installs the same kubelogin"
    step = found[0]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", step["env"]["KUBELOGIN_VERSION"])
    assert SHA256.match(step["env"]["KUBELOGIN_SHA256"])
    script = step["run"]
    assert "set -euo pipefail" in script
    url = (
        "https://github.com/Azure/kubelogin/releases/download/${KUBELOGIN_VERSION}/kubelogin-linux-amd64.zip"
    )
    download = script.index(f'-o "$RUNNER_TEMP/kubelogin.zip" "{url}"')
    check = script.index(
        'echo "${KUBELOGIN_SHA256}  $RUNNER_TEMP/kubelogin.zip" | sha256sum --check --strict'
    )
    extract = script.index('"$bin/' + KUBELOGIN + '"')
    assert download < check < extract < script.index("chmod +x") < script.index('>> "$GITHUB_PATH"')


# --- e2e.yml: the local stack on a kind cluster -----------------------------------------------------------

E2E = WORKFLOWS / "e2e.yml"
E2E_TESTS = ROOT / "tests" / "e2e"
KIND_CONFIG = ROOT / "deploy" / "kind" / "cluster.yaml"
#: What a change must touch to run the kind end-to-end on its pull request.
E2E_PATHS = [
    "components/**",
    "model_image/**",
    "stacks/**",
    "scripts/up.py",
    "deploy/kind/**",
    "tests/e2e/**",
    "tests/endpoint_checks.py",
    ".github/workflows/e2e.yml",
]
E2E_ENV = re.compile(r"\bINFERSTACK_E2E_[A-Z0-9_]+\b")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def e2e_job() -> dict[str, Any]:
    (job,) = workflow("e2e.yml")["jobs"].values()
    return job


def e2e_step(predicate: str) -> dict[str, Any]:
    """The one step of the e2e job whose `run` or `uses` contains `predicate`."""
    found = [s for s in steps(e2e_job()) if predicate in s.get("run", s.get("uses", ""))]
    assert len(found) == 1, f"e2e.yml: {len(found)} steps contain {predicate!r}"
    return found[0]


def e2e_step_index(step: dict[str, Any]) -> int:
    return steps(e2e_job()).index(step)


def test_e2e_runs_manually_nightly_and_on_pull_requests_that_touch_what_it_deploys() -> None:
    on = triggers(workflow("e2e.yml"))
    assert set(on) == {"workflow_dispatch", "schedule", "pull_request"}
    assert sorted(on["pull_request"]["paths"]) == sorted(E2E_PATHS)
    assert set(on["pull_request"]) == {"paths"}, "no branch filter: fork PRs run it too"
    (cron,) = on["schedule"]
    assert len(cron["cron"].split()) == 5
    for path in E2E_PATHS:  # every path names something that exists
        assert any(ROOT.glob(path.removesuffix("/**"))), path


def test_e2e_has_a_read_only_token_no_secrets_a_time_limit_and_one_run_per_ref() -> None:
    doc = workflow("e2e.yml")
    text = E2E.read_text(encoding="utf-8")
    assert doc["permissions"] == {"contents": "read"}
    assert re.search(r"\bsecrets\.", text) is None, "fork PRs get no secrets; the local stack needs none"
    assert "id-token" not in text
    assert doc["concurrency"] == {"group": "e2e-${{ github.ref }}", "cancel-in-progress": True}
    job = e2e_job()
    assert job.get("permissions") is None
    assert job["runs-on"] == "ubuntu-24.04"
    assert isinstance(job["timeout-minutes"], int) and 30 <= job["timeout-minutes"] <= 360
    checkout = e2e_step("actions/checkout@")
    assert checkout["with"]["persist-credentials"] is False


def test_e2e_installs_the_kind_release_of_the_pinned_node_image_verified_by_sha256() -> None:
    env = workflow("e2e.yml")["env"]
    up_py = (ROOT / "scripts" / "up.py").read_text(encoding="utf-8")
    version = re.search(r"^KIND_VERSION = \((\d+), (\d+), (\d+)\)$", up_py, re.MULTILINE)
    assert version
    assert env["KIND_VERSION"] == "v" + ".".join(version.groups())
    # deploy/kind/cluster.yaml pins the node image by tag and digest; kubectl matches its Kubernetes release.
    node = re.search(
        r"image: kindest/node:(v[\d.]+)@sha256:[0-9a-f]{64}$", KIND_CONFIG.read_text(), re.MULTILINE
    )
    assert node
    assert env["KUBECTL_VERSION"] == node.group(1)
    assert SHA256.match(env["KIND_SHA256"]) and SHA256.match(env["KUBECTL_SHA256"])
    script = e2e_step("kind-linux-amd64")["run"]
    assert "set -euo pipefail" in script
    for tool, url in (
        ("kind", "https://kind.sigs.k8s.io/dl/${KIND_VERSION}/kind-linux-amd64"),
        ("kubectl", "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/amd64/kubectl"),
    ):
        download = script.index(f'-o "$bin/{tool}" "{url}"')
        check = script.index(f'echo "${{{tool.upper()}_SHA256}}  $bin/{tool}" | sha256sum --check --strict')
        assert download < check < script.index("chmod +x"), f"{tool}: verified before it is made executable"


def test_e2e_installs_the_pinned_pulumi_cli_with_deploys_action() -> None:
    pulumi = e2e_step("pulumi/actions@")
    assert "command" not in pulumi["with"], "install only: make up runs pulumi itself"
    assert pulumi["with"]["pulumi-version"] == pyproject_pin("pulumi")
    deploy_refs = {u for u in uses_of(workflow("deploy.yml")) if u.startswith("pulumi/actions@")}
    assert deploy_refs == {pulumi["uses"]}
    assert e2e_step_index(pulumi) < e2e_step_index(e2e_step('make up STACK="$STACK"'))


def test_e2e_runs_make_up_then_the_tests_then_always_destroys_and_checks_nothing_is_left() -> None:
    doc = workflow("e2e.yml")
    assert doc["env"]["STACK"] == "local"
    assert "--yes" in doc["env"]["PULUMI_ARGS"].split(), "pulumi up/destroy have no terminal to confirm on"
    assert "PULUMI_CONFIG_PASSPHRASE" not in doc["env"], "scripts/up.py generates the passphrase"
    up = e2e_step('make up STACK="$STACK"')
    endpoint = e2e_step("pulumi stack output")
    tests = e2e_step("pytest")
    destroy = e2e_step('make destroy STACK="$STACK"')
    left = e2e_step("kind get clusters")
    order = [e2e_step_index(s) for s in (up, endpoint, tests, destroy, left)]
    assert order == sorted(order)
    assert tests["run"].split()[-1] == "tests/e2e"
    for step in (up, endpoint, tests):
        assert "if" not in step
    assert destroy["if"] == "always()"
    assert destroy["env"]["DELETE_CLUSTER"] == "yes"
    assert left["if"] == "always()"
    for needle in ("kind get clusters", "io.x-k8s.kind.cluster", "pulumi stack export", 'exit "$left"'):
        assert needle in left["run"]


def test_e2e_uploads_cluster_state_and_logs_on_failure_with_the_pr_workflows_action() -> None:
    collect = e2e_step("logs")
    upload = e2e_step("actions/upload-artifact@")
    assert collect["if"] == upload["if"] == "failure()"
    assert e2e_step_index(collect) < e2e_step_index(upload) < e2e_step_index(e2e_step("make destroy"))
    assert upload["with"]["path"] in collect["run"]
    pr_refs = {u for u in uses_of(workflow("pr.yml")) if u.startswith("actions/upload-artifact@")}
    assert pr_refs == {upload["uses"]}
    # The namespaces the local stack deploys into: its own and its Helm releases'.
    namespaces = {load_stack_file(ROOT / "stacks" / "Pulumi.local.yaml").cluster.namespace}
    namespaces |= {"envoy-gateway-system", "cert-manager"}
    assert f"for ns in {' '.join(sorted(namespaces, key=collect['run'].find))}; do" in collect["run"]


def test_e2e_sets_exactly_the_environment_tests_e2e_reads() -> None:
    tests = e2e_step("pytest")
    set_by_workflow = {name for name in tests["env"] if E2E_ENV.fullmatch(name)}
    read_by_tests = {
        name for path in sorted(E2E_TESTS.rglob("*.py")) for name in E2E_ENV.findall(path.read_text())
    }
    assert set_by_workflow and set_by_workflow == read_by_tests
    # Every value comes from an output the endpoint step writes (or the workflow's STACK).
    endpoint = e2e_step("pulumi stack output")
    assert endpoint["id"] == "endpoint"
    for name in set_by_workflow:
        value = tests["env"][name]
        output = re.fullmatch(r"\$\{\{ steps\.endpoint\.outputs\.([a-z_]+) \}\}", value)
        if output is None:
            assert value == "${{ env.STACK }}", name
            continue
        assert f'echo "{output.group(1)}=' in endpoint["run"], f"{name}: the endpoint step writes no {value}"
    assert "::add-mask::$key" in endpoint["run"]


def test_e2e_lowers_serving_cpu_to_a_value_the_stack_file_accepts(tmp_path: Path) -> None:
    # The workflow's sed rewrites the one `    cpu: "N"` line of the stack file (serving.cpu). Done here the
    # same way, the result must still be that stack, with the new value, and validate.
    env = workflow("e2e.yml")["env"]
    script = e2e_step("sed -i")["run"]
    assert 's/^    cpu: \\"[0-9.]+\\"\\$/    cpu: \\"${E2E_SERVING_CPU}\\"/' in script
    original = ROOT / "stacks" / f"Pulumi.{env['STACK']}.yaml"
    text = original.read_text(encoding="utf-8")
    line = re.compile(r'^    cpu: "[0-9.]+"$', re.MULTILINE)
    assert len(line.findall(text)) == 1, "exactly one line for the workflow's sed to change"
    edited = tmp_path / original.name
    edited.write_text(line.sub(f'    cpu: "{env["E2E_SERVING_CPU"]}"', text), encoding="utf-8")
    before, after = load_stack_file(original), load_stack_file(edited)
    assert str(after.serving.cpu) == env["E2E_SERVING_CPU"] != str(before.serving.cpu)
    assert after.model_dump(exclude={"serving"}) == before.model_dump(exclude={"serving"})


def test_the_e2e_tests_skip_naming_the_workflow_and_their_environment() -> None:
    source = (E2E_TESTS / "test_kind_endpoint.py").read_text(encoding="utf-8")
    skip = source[source.index("pytest.skip(") :]
    assert ".github/workflows/e2e.yml" in skip[:400] and "ENV_VARS" in skip[:400]
