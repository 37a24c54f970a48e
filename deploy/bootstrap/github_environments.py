"""Create the GitHub environments of every cloud stack, protected, before the first deployment.

A workflow file cannot create an environment's protection rules, and GitHub creates a missing environment
on first use with none: the first `pulumi up` of prod would run unprotected. pulumi_github is in none of
our locks, so this is a `gh api` script (GitHub REST API, "Deployment environments" and "Deployment branch
policies"), run by a repository administrator:

    python -m deploy.bootstrap.github_environments --repo acme/inferstack --reviewer team:platform
    pulumi -C deploy/bootstrap stack output variables --json > build/variables.json
    python -m deploy.bootstrap.github_environments --repo acme/inferstack --reviewer team:platform \
        --variables build/variables.json

`--deploy-runner-group NAME` also puts the self-hosted deploy runners' organisation runner group under
the rule that only deploy.yml on main may use it (see runner_group_body). `--dry-run` prints the calls
instead. Every call is idempotent (PUT, or created only when missing), and a
branch policy other than `main` on a deploy environment is deleted. Exit status 2 on bad input, with a
message naming the option; 1 when a `gh` call fails.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.bootstrap.trust import BootstrapConfigError, Environment, environments

ROOT = Path(__file__).resolve().parents[2]
_REVIEWER = re.compile(r"^(team|user):([A-Za-z0-9][A-Za-z0-9._-]{0,99})$")
_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9_.-]{1,100}$")
_VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class ApiCall:
    method: str
    path: str
    body: dict[str, Any] | None = field(default=None)


@dataclass(frozen=True)
class Reviewer:
    type: str  # "User" | "Team", as the environments API names them
    id: int


def environment_calls(repo: str, env: Environment, reviewers: list[Reviewer]) -> list[ApiCall]:
    """PUT the environment with its rules; for a deploy environment, the `main` branch policy after it.

    Deploy environments admit the branches matching their custom policies (`main` alone); preview ones
    every branch (a pull request's), so `deployment_branch_policy` is null. Prod tiers need one reviewer
    of the list, and `prevent_self_review` keeps whoever triggered the run from approving it.
    """
    if env.needs_reviewer and not reviewers:
        raise BootstrapConfigError(
            f"--reviewer: {env.name} is a prod environment and needs a required reviewer"
        )
    body: dict[str, Any] = {
        "wait_timer": 0,
        "prevent_self_review": env.needs_reviewer,
        "reviewers": [{"type": r.type, "id": r.id} for r in reviewers] if env.needs_reviewer else [],
        "deployment_branch_policy": (
            {"protected_branches": False, "custom_branch_policies": True} if env.main_only else None
        ),
    }
    calls = [ApiCall("PUT", f"repos/{repo}/environments/{env.name}", body)]
    if env.main_only:
        calls.append(
            ApiCall(
                "POST",
                f"repos/{repo}/environments/{env.name}/deployment-branch-policies",
                {"name": "main", "type": "branch"},
            )
        )
    return calls


#: The one workflow, at the one ref, that may run on the deploy runners.
DEPLOY_WORKFLOW = ".github/workflows/deploy.yml@refs/heads/main"
_RUNNER_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


def runner_group_body(repo: str, name: str) -> dict[str, Any]:
    """The organisation runner group the deploy runners belong to: this repository only, and only
    deploy.yml on main (GitHub REST API "Self-hosted runner groups": restricted_to_workflows,
    selected_workflows as OWNER/REPO/PATH@REF). A workflow a branch pusher writes (`runs-on:` the deploy
    runner's label, no environment needed) is then not given these runners, so it cannot leave anything
    on them for the next prod deploy. Runners registered to one repository cannot be restricted this way:
    register them in the group, ephemeral (just-in-time)."""
    if not _RUNNER_GROUP.match(name):
        raise BootstrapConfigError(
            f"--deploy-runner-group {name!r}: letters, digits, space, . _ - (64 at most)"
        )
    return {
        "name": name,
        "visibility": "selected",
        "allows_public_repositories": False,
        "restricted_to_workflows": True,
        "selected_workflows": [f"{repo}/{DEPLOY_WORKFLOW}"],
    }


def _apply_runner_group(gh: _Gh, repo: str, name: str) -> None:
    """Create or update the deploy runner group, and admit this repository alone to it."""
    org = repo.split("/")[0]
    body = runner_group_body(repo, name)
    repo_id = int(gh("api", f"repos/{repo}", "--jq", ".id").strip() or "0")
    listing = "" if gh.dry_run else gh("api", f"orgs/{org}/actions/runner-groups", "--jq", ".runner_groups")
    groups = json.loads(listing) if listing.strip() else []
    found = [g for g in groups if g.get("name") == name]
    if found:
        group_id = int(found[0]["id"])
        gh.api(ApiCall("PATCH", f"orgs/{org}/actions/runner-groups/{group_id}", body))
    else:
        created = gh.api(ApiCall("POST", f"orgs/{org}/actions/runner-groups", body))
        group_id = int(json.loads(created)["id"]) if created.strip() else 0
    gh.api(
        ApiCall(
            "PUT",
            f"orgs/{org}/actions/runner-groups/{group_id}/repositories",
            {"selected_repository_ids": [repo_id]},
        )
    )
    if gh.dry_run:
        return
    # Read it back: an enterprise policy can make the workflow restriction read-only
    # (workflow_restrictions_read_only), and a group that still admits every workflow protects nothing.
    got = json.loads(gh("api", f"orgs/{org}/actions/runner-groups/{group_id}"))
    wanted = (True, body["selected_workflows"], "selected")
    actual = (got.get("restricted_to_workflows"), got.get("selected_workflows"), got.get("visibility"))
    if actual != wanted:
        raise RuntimeError(
            f"runner group {name!r} reads back as restricted_to_workflows={actual[0]}, selected_workflows="
            f"{actual[1]}, visibility={actual[2]}, not deploy.yml on main of {repo} only: fix it in the "
            "organisation's Actions settings (Runner groups) before registering deploy runners in it"
        )


def parse_reviewer(value: str) -> tuple[str, str]:
    match = _REVIEWER.match(value)
    if not match:
        raise BootstrapConfigError(f"--reviewer {value!r}: write team:<slug> or user:<login>")
    return match.group(1), match.group(2)


def load_variables(path: Path, envs: list[Environment]) -> dict[str, dict[str, str]]:
    """`pulumi stack output variables --json` of the bootstrap: {environment: {NAME: value}}."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BootstrapConfigError(f"--variables {path}: {error}") from None
    known = {e.name for e in envs}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise BootstrapConfigError(f"--variables {path}: expected {{environment: {{NAME: value}}}}")
    for env_name, values in raw.items():
        if env_name not in known:
            raise BootstrapConfigError(f"--variables {path}: {env_name!r} is not an environment of stacks/")
        for name, value in values.items():
            if not _VARIABLE.match(name) or not isinstance(value, str):
                raise BootstrapConfigError(f"--variables {path}: {env_name}.{name} is not NAME: string")
    return raw


class _Gh:
    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        if self.dry_run:
            print("gh " + " ".join(args) + (f" <<< '{stdin}'" if stdin else ""))
            return ""
        result = subprocess.run(["gh", *args], input=stdin, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"gh {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def api(self, call: ApiCall) -> str:
        args = ["api", "--method", call.method, call.path]
        if call.body is None:
            return self(*args)
        return self(*args, "--input", "-", stdin=json.dumps(call.body))


def _reviewer_ids(gh: _Gh, owner: str, specs: list[str]) -> list[Reviewer]:
    reviewers = []
    for kind, name in (parse_reviewer(s) for s in specs):
        path = f"orgs/{owner}/teams/{name}" if kind == "team" else f"users/{name}"
        found = gh("api", path, "--jq", ".id").strip() or "0"  # dry run: a placeholder id
        reviewers.append(Reviewer("Team" if kind == "team" else "User", int(found)))
    return reviewers


def _apply_branch_policy(gh: _Gh, call: ApiCall) -> None:
    """Create `main` when missing and delete every other branch or tag policy."""
    listing = "" if gh.dry_run else gh("api", call.path, "--jq", ".branch_policies")
    policies = json.loads(listing) if listing.strip() else []
    if not any(p.get("name") == "main" and p.get("type", "branch") == "branch" for p in policies):
        gh.api(call)
    for policy in policies:
        if not (policy.get("name") == "main" and policy.get("type", "branch") == "branch"):
            gh.api(ApiCall("DELETE", f"{call.path}/{int(policy['id'])}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, help="owner/name")
    parser.add_argument(
        "--reviewer", action="append", default=[], help="team:<slug> or user:<login>; repeatable"
    )
    parser.add_argument("--variables", type=Path, help="the bootstrap's `variables` output (JSON)")
    parser.add_argument("--stacks", type=Path, default=ROOT / "stacks")
    parser.add_argument(
        "--deploy-runner-group",
        help="an organisation runner group for the self-hosted deploy runners (DEV_AWS_RUNNER, PROD_AWS_RUNNER): "
        "created or updated so that only deploy.yml on main, of this repository, may use it",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the gh calls, change nothing")
    args = parser.parse_args(argv)
    try:
        if not _REPO.match(args.repo):
            raise BootstrapConfigError(f"--repo {args.repo!r}: write owner/name")
        envs = environments(args.stacks)
        if not envs:
            raise BootstrapConfigError(f"--stacks {args.stacks}: no aws, gcp or azure stack file")
        for spec in args.reviewer:
            parse_reviewer(spec)
        if any(e.needs_reviewer for e in envs) and not args.reviewer:
            names = ", ".join(e.name for e in envs if e.needs_reviewer)
            raise BootstrapConfigError(
                f"--reviewer: {names} need a required reviewer (team:<slug> or user:<login>)"
            )
        variables = load_variables(args.variables, envs) if args.variables else {}
        if args.deploy_runner_group is not None:
            runner_group_body(args.repo, args.deploy_runner_group)
    except BootstrapConfigError as error:
        print(f"github_environments: {error}", file=sys.stderr)
        return 2
    if not args.dry_run and shutil.which("gh") is None:
        print(
            "github_environments: the GitHub CLI `gh` is not on PATH (https://cli.github.com)",
            file=sys.stderr,
        )
        return 2
    gh = _Gh(args.dry_run)
    try:
        reviewers = _reviewer_ids(gh, args.repo.split("/")[0], args.reviewer)
        for env in envs:
            put, *branch = environment_calls(args.repo, env, reviewers)
            gh.api(put)
            for call in branch:
                _apply_branch_policy(gh, call)
            for name, value in sorted(variables.get(env.name, {}).items()):
                gh("variable", "set", name, "--repo", args.repo, "--env", env.name, "--body", value)
            print(
                f"{env.name}: {'main only' if env.main_only else 'any branch'}"
                f"{', required reviewer' if env.needs_reviewer else ''}",
                file=sys.stderr,
            )
        if args.deploy_runner_group is not None:
            _apply_runner_group(gh, args.repo, args.deploy_runner_group)
            print(f"runner group {args.deploy_runner_group!r}: deploy.yml on main only", file=sys.stderr)
    except RuntimeError as error:
        print(f"github_environments: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
