"""deploy/bootstrap: who may assume each deploy and preview identity, rendered and checked.

The trust documents are evaluated here the way AWS STS, GCP's token exchange and Entra ID's federated
credentials match them (exact string conditions on the token's claims), so a test fails when a preview
token could act as a deploy identity, or any other repository's token could act at all.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.bootstrap import github_environments as gh_envs
from deploy.bootstrap.program import build
from deploy.bootstrap.trust import (
    AWS_AUD_KEY,
    AWS_SUB_KEY,
    AZURE_AKS_CLUSTER_USER,
    AZURE_CONTRIBUTOR,
    AZURE_READER,
    AZURE_USER_ACCESS_ADMINISTRATOR,
    AZURE_WRITE_ROLES,
    CLOUDS,
    BootstrapConfigError,
    Environment,
    GitHubRepository,
    Kind,
    aws_trust_policy,
    azure_federated_credential,
    environments,
    gcp_attribute_condition,
    gcp_principal,
    load_settings,
    subject,
)
from inferstack.planning.recording import run_program

ROOT = Path(__file__).resolve().parents[1]
REPO = GitHubRepository(owner="acme", name="inferstack", owner_id="1234567", repository_id="987654321")
ENVS = environments(ROOT / "stacks")
PROVIDER_ARN = "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com"
POOL = "projects/123456789012/locations/global/workloadIdentityPools/github"


def token(env_name: str | None, repo: str = "acme/inferstack", owner_id: str = "1234567") -> dict[str, str]:
    """The claims of a GitHub Actions OIDC token; a job without an environment gets a ref or PR subject."""
    sub = f"repo:{repo}:environment:{env_name}" if env_name else f"repo:{repo}:pull_request"
    return {
        "sub": sub,
        "aud": "sts.amazonaws.com",
        "repository": repo,
        "repository_owner": repo.split("/")[0],
        "repository_id": "987654321" if repo == "acme/inferstack" else "555",
        "repository_owner_id": owner_id,
    }


def sts_admits(policy: dict[str, Any], claims: dict[str, str]) -> bool:
    """AssumeRoleWithWebIdentity's check of a trust policy's StringEquals / StringLike conditions."""
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow" or statement["Action"] != "sts:AssumeRoleWithWebIdentity":
            continue
        ok = True
        for operator, conditions in statement.get("Condition", {}).items():
            for key, expected in conditions.items():
                actual = {AWS_SUB_KEY: claims["sub"], AWS_AUD_KEY: claims["aud"]}[key]
                values = expected if isinstance(expected, list) else [expected]
                if operator == "StringEquals":
                    ok &= actual in values
                elif operator == "StringLike":
                    ok &= any(fnmatch.fnmatchcase(actual, v) for v in values)
                else:
                    raise AssertionError(f"unexpected condition operator {operator}")
        if ok:
            return True
    return False


def cel_admits(condition: str, claims: dict[str, str]) -> bool:
    """The attribute condition, a conjunction of `assertion.<claim> == '<value>'` clauses."""
    clauses = condition.split(" && ")
    for clause in clauses:
        match = re.fullmatch(r"assertion\.([a-z_]+) == '([^'\\]*)'", clause)
        assert match, f"not a plain equality: {clause}"
        if claims.get(match.group(1)) != match.group(2):
            return False
    return True


def entra_admits(credential: dict[str, Any], claims: dict[str, str]) -> bool:
    """Entra ID's check of a federated identity credential: issuer and subject equal the token's `iss` and
    `sub` exactly, and the token's `aud` is one of the audiences (no wildcards exist)."""
    return (
        credential["issuer"] == claims["iss"]
        and credential["subject"] == claims["sub"]
        and claims["aud"] in credential["audiences"]
    )


def azure_token(env_name: str | None, repo: str = "acme/inferstack") -> dict[str, str]:
    """A GitHub token as azure/login, azure-native and kubelogin ask for it (api://AzureADTokenExchange)."""
    return {
        **token(env_name, repo),
        "iss": "https://token.actions.githubusercontent.com",
        "aud": "api://AzureADTokenExchange",
    }


def test_every_cloud_stack_has_a_deploy_and_a_preview_environment_as_the_workflows_name_them() -> None:
    names = {e.name for e in ENVS}
    workflows = ROOT / ".github" / "workflows"
    for workflow, template in (("preview.yml", "preview-{}"), ("deploy.yml", "{}")):
        doc = yaml.safe_load((workflows / workflow).read_text(encoding="utf-8"))
        for job in doc["jobs"].values():
            assert job["environment"] == template.format("${{ matrix.stack }}")
            for entry in job["strategy"]["matrix"]["include"]:
                assert template.format(entry["stack"]) in names, (workflow, entry["stack"])
    by_name = {e.name: e for e in ENVS}
    assert by_name["prod-aws"].main_only and by_name["prod-aws"].needs_reviewer
    assert by_name["dev-gcp"].main_only and not by_name["dev-gcp"].needs_reviewer
    assert not by_name["preview-prod-gcp"].main_only and by_name["preview-prod-gcp"].needs_reviewer
    assert not by_name["preview-dev-aws"].main_only and not by_name["preview-dev-aws"].needs_reviewer
    assert by_name["prod-azure"].main_only and by_name["prod-azure"].needs_reviewer
    assert by_name["prod-azure"].variable == "AZURE_DEPLOY_CLIENT_ID"
    assert by_name["preview-dev-azure"].variable == "AZURE_PREVIEW_CLIENT_ID"


@pytest.mark.parametrize("env", [e for e in ENVS if e.cloud == "aws"], ids=lambda e: e.name)
def test_each_aws_role_admits_its_own_environment_and_nothing_else(env: Environment) -> None:
    policy = aws_trust_policy(PROVIDER_ARN, REPO, env)
    assert policy["Statement"][0]["Principal"] == {"Federated": PROVIDER_ARN}
    assert sts_admits(policy, token(env.name))
    for other in ENVS:
        if other.name != env.name:
            assert not sts_admits(policy, token(other.name)), f"{other.name} could act as {env.name}"
    assert not sts_admits(policy, token(None)), "a job outside any environment (a pull request)"
    assert not sts_admits(policy, token(env.name, repo="acme/inferstack-fork"))
    assert not sts_admits(policy, {**token(env.name), "aud": "sigstore"})


def test_the_gcp_provider_admits_this_repository_and_owner_only() -> None:
    condition = gcp_attribute_condition(REPO)
    assert cel_admits(condition, token("prod-gcp"))
    assert not cel_admits(condition, token("prod-gcp", repo="evil/inferstack"))
    assert not cel_admits(condition, token("prod-gcp", repo="acme/other"))
    # A re-registered owner name with another id.
    assert not cel_admits(condition, token("prod-gcp", owner_id="999"))
    # Without ids the names still bind it.
    assert "repository_id" not in gcp_attribute_condition(REPO.model_copy(update={"repository_id": None}))


@pytest.mark.parametrize("env", [e for e in ENVS if e.cloud == "gcp"], ids=lambda e: e.name)
def test_each_gcp_service_account_is_bound_to_one_environment_subject(env: Environment) -> None:
    member = gcp_principal(POOL, REPO, env)
    assert (
        member == f"principal://iam.googleapis.com/{POOL}/subject/repo:acme/inferstack:environment:{env.name}"
    )
    assert "principalSet" not in member and "attribute." not in member


@pytest.mark.parametrize("env", [e for e in ENVS if e.cloud == "azure"], ids=lambda e: e.name)
def test_each_azure_identity_trusts_its_own_environment_and_nothing_else(env: Environment) -> None:
    credential = azure_federated_credential(REPO, env)
    assert entra_admits(credential, azure_token(env.name))
    for other in ENVS:
        if other.name != env.name:
            assert not entra_admits(credential, azure_token(other.name)), (
                f"{other.name} could act as {env.name}"
            )
    assert not entra_admits(credential, azure_token(None)), "a job outside any environment (a pull request)"
    assert not entra_admits(credential, azure_token(env.name, repo="acme/inferstack-fork"))
    assert not entra_admits(credential, {**azure_token(env.name), "aud": "sts.amazonaws.com"})
    assert not entra_admits(credential, {**azure_token(env.name), "iss": "https://evil.example"})


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ([AZURE_READER, AZURE_CONTRIBUTOR], "read roles only"),
        (["8E3AF657-A8FF-443C-A75C-2FE8C4BCB635"], "read roles only"),  # Owner, in capitals
        (["Reader"], "not role definition GUIDs"),
        ([AZURE_READER, AZURE_READER], "twice"),
    ],
)
def test_azure_preview_roles_must_be_read_role_guids(roles: list[str], message: str) -> None:
    azure = {
        "subscription_id": "00000000-0000-0000-0000-000000000000",
        "tenant_id": "00000000-0000-0000-0000-000000000000",
        "location": "swedencentral",
        "preview_roles": roles,
    }
    with pytest.raises(BootstrapConfigError, match=rf"settings\.azure\.preview_roles: .*{message}"):
        load_settings({"github": {"owner": "acme", "name": "inferstack"}, "azure": azure})


def test_azure_defaults_are_the_documented_built_in_roles() -> None:
    settings = load_settings(
        {
            "github": {"owner": "acme", "name": "inferstack"},
            "azure": {
                "subscription_id": "00000000-0000-0000-0000-000000000000",
                "tenant_id": "00000000-0000-0000-0000-000000000000",
                "location": "swedencentral",
            },
        }
    )
    assert settings.azure is not None
    assert settings.azure.deploy_roles == [AZURE_CONTRIBUTOR, AZURE_USER_ACCESS_ADMINISTRATOR]
    assert settings.azure.preview_roles == [AZURE_READER, AZURE_AKS_CLUSTER_USER]
    with pytest.raises(BootstrapConfigError, match=r"settings\.azure\.tenant_id"):
        load_settings(
            {**settings.model_dump(), "azure": {**settings.azure.model_dump(), "tenant_id": "acme"}}
        )


@pytest.mark.parametrize("owner", ["acme'", "ac me", "-acme", "a" * 40, "acme/x"])
def test_names_that_could_escape_the_condition_or_subject_are_refused(owner: str) -> None:
    with pytest.raises(BootstrapConfigError, match=r"settings\.github\.owner"):
        load_settings({"github": {"owner": owner, "name": "inferstack"}})


def test_a_subject_over_googles_127_bytes_is_refused_naming_the_fix() -> None:
    env = Environment("prod-gcp", "gcp", "prod", Kind.DEPLOY)
    long_repo = GitHubRepository(owner="acme", name="x" * 100, owner_id=None, repository_id=None)
    with pytest.raises(BootstrapConfigError, match=r"127.*shorter"):
        gcp_principal(POOL, long_repo, env)


def test_settings_errors_name_every_field_and_the_fix() -> None:
    with pytest.raises(BootstrapConfigError) as error:
        load_settings({"github": {"owner": "acme", "name": "inferstack", "owner_id": "12a"}, "aws": {}})
    message = str(error.value)
    assert "settings.github.owner_id" in message and "numeric" in message
    assert "settings.aws.deploy_policy_arns" in message
    with pytest.raises(BootstrapConfigError, match=r"not set.*Pulumi\.example\.yaml"):
        load_settings(None)


def test_the_example_config_is_valid_and_covers_every_cloud_in_stacks() -> None:
    example = yaml.safe_load((ROOT / "deploy" / "bootstrap" / "Pulumi.example.yaml").read_text())
    settings = load_settings(example["config"]["inferstack-bootstrap:settings"])
    assert {e.cloud for e in ENVS} <= {c for c in CLOUDS if getattr(settings, c) is not None}


def settings_for_program() -> Any:
    example = yaml.safe_load((ROOT / "deploy" / "bootstrap" / "Pulumi.example.yaml").read_text())
    return load_settings(example["config"]["inferstack-bootstrap:settings"])


def test_the_program_makes_one_identity_per_environment_trusting_only_it() -> None:
    recording = run_program(lambda: build(settings_for_program(), ENVS), project="inferstack-bootstrap")
    roles = {r.name.removesuffix("-role"): r for r in recording.of_type("aws:iam/role:Role")}
    assert set(roles) == {e.name for e in ENVS if e.cloud == "aws"}
    for name, role in roles.items():
        statement = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert (
            statement[0]["Condition"]["StringEquals"][AWS_SUB_KEY]
            == f"repo:acme/inferstack:environment:{name}"
        )
    attachments = {
        r.name: r.inputs["policyArn"]
        for r in recording.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    }
    assert attachments["preview-prod-aws-policy-0"] == "arn:aws:iam::aws:policy/ReadOnlyAccess"
    assert not any(n.startswith("preview-") and "ReadOnly" not in arn for n, arn in attachments.items())
    (provider,) = recording.of_type("gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider")
    assert provider.inputs["attributeCondition"] == gcp_attribute_condition(settings_for_program().github)
    members = {
        r.name.removesuffix("-wif"): r.inputs["member"]
        for r in recording.of_type("gcp:serviceaccount/iAMMember:IAMMember")
    }
    assert set(members) == {e.name for e in ENVS if e.cloud == "gcp"}
    for name, member in members.items():
        # The pool's resource name (projects/<number>/...) is an output the recording mock leaves unset.
        assert member.startswith("principal://iam.googleapis.com/")
        assert member.endswith(f"/subject/repo:acme/inferstack:environment:{name}")
    variables = recording.exports["variables"]
    assert set(variables["prod-aws"]) == {"AWS_DEPLOY_ROLE_ARN"}
    assert set(variables["preview-prod-gcp"]) == {
        "GCP_WORKLOAD_IDENTITY_PROVIDER",
        "GCP_PREVIEW_SERVICE_ACCOUNT",
    }


def test_the_program_gives_each_azure_environment_one_identity_trusting_only_it() -> None:
    settings = settings_for_program()
    assert settings.azure is not None
    recording = run_program(lambda: build(settings, ENVS), project="inferstack-bootstrap")
    azure_envs = {e.name: e for e in ENVS if e.cloud == "azure"}
    identities = {
        r.name.removesuffix("-identity"): r
        for r in recording.of_type("azure-native:managedidentity:UserAssignedIdentity")
    }
    assert set(identities) == set(azure_envs)
    credentials = recording.of_type("azure-native:managedidentity:FederatedIdentityCredential")
    assert len(credentials) == len(azure_envs)  # one each: a second would widen who may act as it
    for credential in credentials:
        name = credential.name.removesuffix("-github")
        assert credential.inputs["resourceName"] == identities[name].outputs["name"]
        assert credential.inputs["issuer"] == "https://token.actions.githubusercontent.com"
        assert credential.inputs["subject"] == f"repo:acme/inferstack:environment:{name}"
        assert credential.inputs["audiences"] == ["api://AzureADTokenExchange"]
    by_principal = {r.outputs["principalId"]: name for name, r in identities.items()}
    granted: dict[str, set[str]] = {name: set() for name in azure_envs}
    for assignment in recording.of_type("azure-native:authorization:RoleAssignment"):
        subscription = f"/subscriptions/{settings.azure.subscription_id}"
        assert assignment.inputs["scope"] == subscription
        assert assignment.inputs["principalType"] == "ServicePrincipal"
        role = assignment.inputs["roleDefinitionId"]
        assert role.startswith(f"{subscription}/providers/Microsoft.Authorization/roleDefinitions/")
        granted[by_principal[assignment.inputs["principalId"]]].add(role.rsplit("/", 1)[-1])
    for name, env in azure_envs.items():
        if env.kind is Kind.DEPLOY:
            assert granted[name] == {AZURE_CONTRIBUTOR, AZURE_USER_ACCESS_ADMINISTRATOR}, name
        else:  # a branch pusher runs previews unreviewed: read roles only
            assert granted[name] == {AZURE_READER, AZURE_AKS_CLUSTER_USER}, name
            assert not granted[name] & AZURE_WRITE_ROLES
    variables = recording.exports["variables"]
    for name, env in azure_envs.items():
        assert variables[name] == {
            env.variable: identities[name].outputs["clientId"],
            "AZURE_TENANT_ID": settings.azure.tenant_id,
            "AZURE_SUBSCRIPTION_ID": settings.azure.subscription_id,
        }
    assert recording.exports["azure_principal_ids"] == {
        name: identities[name].outputs["principalId"] for name in azure_envs
    }


def test_the_program_refuses_a_missing_cloud_section_before_any_resource() -> None:
    settings = load_settings({"github": {"owner": "acme", "name": "inferstack"}})
    with pytest.raises(BootstrapConfigError, match=r"settings\.aws: .*aws stacks.*settings\.gcp"):
        run_program(lambda: build(settings, ENVS), project="inferstack-bootstrap")


# --- the GitHub environments ------------------------------------------------------------------------------

TEAM = [gh_envs.Reviewer("Team", 42)]


def test_deploy_environments_admit_main_only_and_prod_needs_a_reviewer_who_did_not_trigger_it() -> None:
    by_name = {e.name: e for e in ENVS}
    put, branch = gh_envs.environment_calls("acme/inferstack", by_name["prod-aws"], TEAM)
    assert (put.method, put.path) == ("PUT", "repos/acme/inferstack/environments/prod-aws")
    assert put.body == {
        "wait_timer": 0,
        "prevent_self_review": True,
        "reviewers": [{"type": "Team", "id": 42}],
        "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True},
    }
    assert (branch.method, branch.body) == ("POST", {"name": "main", "type": "branch"})
    (dev,) = gh_envs.environment_calls("acme/inferstack", by_name["dev-gcp"], TEAM)[:1]
    assert dev.body is not None and dev.body["reviewers"] == [] and dev.body["deployment_branch_policy"]
    (preview,) = gh_envs.environment_calls("acme/inferstack", by_name["preview-prod-gcp"], TEAM)
    assert preview.body is not None
    assert preview.body["reviewers"] == [{"type": "Team", "id": 42}]
    assert preview.body["deployment_branch_policy"] is None  # a pull request's branch


def test_a_prod_environment_without_a_reviewer_is_refused() -> None:
    by_name = {e.name: e for e in ENVS}
    with pytest.raises(BootstrapConfigError, match="--reviewer"):
        gh_envs.environment_calls("acme/inferstack", by_name["preview-prod-aws"], [])


def test_the_script_exits_2_naming_the_option_on_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert gh_envs.main(["--repo", "acme/inferstack", "--dry-run"]) == 2
    assert "--reviewer" in capsys.readouterr().err
    assert gh_envs.main(["--repo", "acme", "--reviewer", "team:x", "--dry-run"]) == 2
    assert "owner/name" in capsys.readouterr().err
    assert gh_envs.main(["--repo", "acme/inferstack", "--reviewer", "group:x", "--dry-run"]) == 2
    assert "team:<slug>" in capsys.readouterr().err


def test_variables_are_checked_against_the_environments(tmp_path: Path) -> None:
    good = tmp_path / "v.json"
    good.write_text(json.dumps({"prod-aws": {"AWS_DEPLOY_ROLE_ARN": "arn:aws:iam::1:role/x"}}))
    assert gh_envs.load_variables(good, ENVS)["prod-aws"]["AWS_DEPLOY_ROLE_ARN"].endswith("role/x")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"prod": {"X": "y"}}))
    with pytest.raises(BootstrapConfigError, match="'prod' is not an environment"):
        gh_envs.load_variables(bad, ENVS)


class RecordingGh(gh_envs._Gh):
    def __init__(self, policies: list[dict[str, Any]]) -> None:
        super().__init__(dry_run=False)
        self.policies = policies
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        self.calls.append(args)
        return json.dumps(self.policies) if "--jq" in args else ""


def test_branch_policies_other_than_main_are_deleted_and_main_made_once() -> None:
    call = gh_envs.ApiCall(
        "POST", "repos/acme/inferstack/environments/prod-aws/deployment-branch-policies", {}
    )
    gh = RecordingGh(
        [{"id": 7, "name": "main", "type": "branch"}, {"id": 8, "name": "feature/*", "type": "branch"}]
    )
    gh_envs._apply_branch_policy(gh, call)
    methods = [(c[2], c[3]) for c in gh.calls if c[:2] == ("api", "--method")]
    assert methods == [("DELETE", f"{call.path}/8")]
    gh = RecordingGh([{"id": 9, "name": "main", "type": "tag"}])
    gh_envs._apply_branch_policy(gh, call)
    methods = [(c[2], c[3]) for c in gh.calls if c[:2] == ("api", "--method")]
    assert methods == [("POST", call.path), ("DELETE", f"{call.path}/9")]


def test_subjects_use_githubs_environment_template() -> None:
    env = Environment("dev-aws", "aws", "dev", Kind.PREVIEW)
    assert subject(REPO, env) == "repo:acme/inferstack:environment:preview-dev-aws"


def test_preview_identities_read_configuration_not_data() -> None:
    # A preview job runs a branch's code with no reviewer: its identity may not read objects, logs or
    # secrets, even where prod shares the account or project (an explicit deny beats ReadOnlyAccess).
    recording = run_program(lambda: build(settings_for_program(), ENVS), project="inferstack-bootstrap")
    inline = {
        r.name: json.loads(r.inputs["policy"]) for r in recording.of_type("aws:iam/rolePolicy:RolePolicy")
    }
    previews = {e.name for e in ENVS if e.cloud == "aws" and e.kind is not Kind.DEPLOY}
    assert set(inline) == {f"{name}-no-data" for name in previews}
    for policy in inline.values():
        (statement,) = policy["Statement"]
        assert statement["Effect"] == "Deny" and statement["Resource"] == "*"
        assert {"s3:GetObject", "logs:GetLogEvents", "kms:Decrypt"} <= set(statement["Action"])
    (deny,) = recording.of_type("gcp:iam/denyPolicy:DenyPolicy")
    assert (
        deny.inputs["parent"]
        == "cloudresourcemanager.googleapis.com%2Fprojects%2F" + settings_for_program().gcp.project
    )
    (rule,) = deny.inputs["rules"]
    principals = rule["denyRule"]["deniedPrincipals"]
    gcp_previews = [e for e in ENVS if e.cloud == "gcp" and e.kind is not Kind.DEPLOY]
    assert len(principals) == len(gcp_previews)
    assert all(p.startswith("principal://iam.googleapis.com/projects/-/serviceAccounts/") for p in principals)
    assert rule["denyRule"]["deniedPermissions"] == ["storage.googleapis.com/objects.get"]


def test_the_deploy_runner_group_admits_deploy_yml_on_main_of_this_repository_only() -> None:
    from deploy.bootstrap.github_environments import runner_group_body

    body = runner_group_body("acme/inferstack", "inferstack-deploy")
    assert body["restricted_to_workflows"] is True
    assert body["selected_workflows"] == ["acme/inferstack/.github/workflows/deploy.yml@refs/heads/main"]
    assert body["visibility"] == "selected" and body["allows_public_repositories"] is False
    with pytest.raises(BootstrapConfigError, match="--deploy-runner-group"):
        runner_group_body("acme/inferstack", "bad/name")


def test_the_script_creates_the_runner_group_and_admits_the_repository(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from deploy.bootstrap.github_environments import main

    code = main(
        [
            "--repo",
            "acme/inferstack",
            "--reviewer",
            "team:platform",
            "--deploy-runner-group",
            "deploy",
            "--dry-run",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "gh api --method POST orgs/acme/actions/runner-groups --input -" in out
    assert "deploy.yml@refs/heads/main" in out
    assert "orgs/acme/actions/runner-groups/0/repositories" in out


def test_a_self_managed_state_bucket_stays_readable_by_previews() -> None:
    from deploy.bootstrap.trust import aws_preview_deny_policy

    policy = aws_preview_deny_policy("acme-pulumi-state", "arn:aws:kms:us-east-1:111122223333:key/k")
    everywhere, *exempted = policy["Statement"]
    assert "s3:GetObject" not in everywhere["Action"] and "kms:Decrypt" not in everywhere["Action"]
    assert "logs:GetLogEvents" in everywhere["Action"] and "ecr:BatchGetImage" in everywhere["Action"]
    by_resource = {st["NotResource"]: st["Action"] for st in exempted}
    assert "s3:GetObject" in by_resource["arn:aws:s3:::acme-pulumi-state/*"]  # denied on every other object
    assert by_resource["arn:aws:kms:us-east-1:111122223333:key/k"] == ["kms:Decrypt"]
    assert all(st["Effect"] == "Deny" for st in policy["Statement"])


def test_a_runner_group_that_reads_back_unrestricted_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # An enterprise policy can keep the workflow restriction from applying: the script must not report
    # success for a group that still admits every workflow.
    import deploy.bootstrap.github_environments as ge

    answers = {
        "repos/acme/inferstack": "42",
        "orgs/acme/actions/runner-groups": "[]",
        "orgs/acme/actions/runner-groups/7": json.dumps(
            {"restricted_to_workflows": False, "selected_workflows": [], "visibility": "selected"}
        ),
    }

    def fake_call(self: ge._Gh, *args: str, stdin: str | None = None) -> str:
        if args[:2] == ("api", "--method"):
            return json.dumps({"id": 7}) if args[2] == "POST" else ""
        return answers[args[1]]

    monkeypatch.setattr(ge._Gh, "__call__", fake_call)
    with pytest.raises(RuntimeError, match="reads back as restricted_to_workflows=False"):
        ge._apply_runner_group(ge._Gh(dry_run=False), "acme/inferstack", "deploy")
    answers["orgs/acme/actions/runner-groups/7"] = json.dumps(
        {
            "restricted_to_workflows": True,
            "selected_workflows": ["acme/inferstack/.github/workflows/deploy.yml@refs/heads/main"],
            "visibility": "selected",
        }
    )
    ge._apply_runner_group(ge._Gh(dry_run=False), "acme/inferstack", "deploy")
