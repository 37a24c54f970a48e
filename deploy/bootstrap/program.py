"""The bootstrap's resources: one cloud identity per GitHub environment, trusting only that environment.

Run once, by an administrator, before the first push that runs deploy.yml (docs/gitops.md, "Identities and
environments"). `build` is the whole program; `__main__.py` only reads the config. Outputs:
`variables` = {environment name: {variable name: value}}, what github_environments.py sets on each
environment (AWS_DEPLOY_ROLE_ARN, GCP_PREVIEW_SERVICE_ACCOUNT, GCP_WORKLOAD_IDENTITY_PROVIDER, ...).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

from deploy.bootstrap.trust import (
    AWS_AUDIENCE,
    GCP_ATTRIBUTE_MAPPING,
    GCP_PREVIEW_DENIED_PERMISSIONS,
    GITHUB_OIDC_ISSUER,
    AwsSettings,
    Environment,
    GcpSettings,
    GitHubRepository,
    Kind,
    Settings,
    aws_preview_deny_policy,
    aws_trust_policy,
    check_clouds,
    gcp_account_id,
    gcp_attribute_condition,
    gcp_deny_principal,
    gcp_principal,
)


def build(settings: Settings, envs: list[Environment]) -> None:
    """Create the identities of `envs` and export `variables`. Raises BootstrapConfigError first on bad input."""
    check_clouds(settings, envs)
    for env in envs:  # every name problem before the first resource
        if env.cloud == "gcp":
            gcp_account_id(env)
            gcp_principal("projects/0/locations/global/workloadIdentityPools/p", settings.github, env)
    variables: dict[str, dict[str, pulumi.Input[str]]] = {e.name: {} for e in envs}
    aws_envs = [e for e in envs if e.cloud == "aws"]
    gcp_envs = [e for e in envs if e.cloud == "gcp"]
    if aws_envs and settings.aws is not None:
        arns = _aws(settings.github, settings.aws, aws_envs)
        for env in aws_envs:
            variables[env.name][env.variable] = arns[env.name]
    if gcp_envs and settings.gcp is not None:
        provider, accounts = _gcp(settings.github, settings.gcp, gcp_envs)
        for env in gcp_envs:
            variables[env.name]["GCP_WORKLOAD_IDENTITY_PROVIDER"] = provider
            variables[env.name][env.variable] = accounts[env.name]
    pulumi.export("variables", variables)


def _trust_json(repo: GitHubRepository, env: Environment) -> Callable[[str], str]:
    return lambda provider_arn: json.dumps(aws_trust_policy(provider_arn, repo, env))


def _principal(repo: GitHubRepository, env: Environment) -> Callable[[str], str]:
    return lambda pool_name: gcp_principal(pool_name, repo, env)


def _aws(
    repo: GitHubRepository, settings: AwsSettings, envs: list[Environment]
) -> dict[str, pulumi.Output[str]]:
    if settings.oidc_provider_arn:
        provider_arn: pulumi.Input[str] = settings.oidc_provider_arn
    else:
        # No thumbprint: IAM verifies GitHub's certificate against its own trusted CAs (IAM docs, "Create an
        # OpenID Connect (OIDC) identity provider in IAM"); AWS provider v6+ accepts the list empty.
        provider_arn = aws.iam.OpenIdConnectProvider(
            "github-actions", url=GITHUB_OIDC_ISSUER, client_id_lists=[AWS_AUDIENCE]
        ).arn
    arns = {}
    for env in envs:
        role = aws.iam.Role(
            f"{env.name}-role",
            name=f"inferstack-{env.name}",
            description=f"GitHub Actions, {repo.full_name} environment {env.name} ({env.kind.value})",
            assume_role_policy=pulumi.Output.from_input(provider_arn).apply(_trust_json(repo, env)),
            max_session_duration=settings.max_session_seconds if env.kind is Kind.DEPLOY else 3600,
        )
        policies = settings.deploy_policy_arns if env.kind is Kind.DEPLOY else settings.preview_policy_arns
        for i, policy_arn in enumerate(policies):
            aws.iam.RolePolicyAttachment(f"{env.name}-policy-{i}", role=role.name, policy_arn=policy_arn)
        if env.kind is not Kind.DEPLOY:
            deny = aws_preview_deny_policy(settings.state_bucket, settings.state_kms_key_arn)
            aws.iam.RolePolicy(f"{env.name}-no-data", role=role.id, policy=json.dumps(deny))
        arns[env.name] = role.arn
    return arns


def _gcp(
    repo: GitHubRepository, settings: GcpSettings, envs: list[Environment]
) -> tuple[pulumi.Output[str], dict[str, pulumi.Output[str]]]:
    pool = gcp.iam.WorkloadIdentityPool(
        "github",
        project=settings.project,
        workload_identity_pool_id=settings.pool_id,
        display_name="GitHub Actions",
    )
    provider = gcp.iam.WorkloadIdentityPoolProvider(
        "github",
        project=settings.project,
        workload_identity_pool_id=pool.workload_identity_pool_id,
        workload_identity_pool_provider_id=settings.provider_id,
        attribute_mapping=GCP_ATTRIBUTE_MAPPING,
        attribute_condition=gcp_attribute_condition(repo),
        oidc={"issuer_uri": GITHUB_OIDC_ISSUER},
    )
    accounts = {}
    for env in envs:
        account = gcp.serviceaccount.Account(
            f"{env.name}-sa",
            project=settings.project,
            account_id=gcp_account_id(env),
            display_name=f"GitHub Actions {repo.full_name} {env.name}",
        )
        # One principal (this environment's subject), not a principalSet on attribute.repository: a set
        # would let preview jobs impersonate the deploy account.
        gcp.serviceaccount.IAMMember(
            f"{env.name}-wif",
            service_account_id=account.name,
            role="roles/iam.workloadIdentityUser",
            member=pool.name.apply(_principal(repo, env)),
        )
        roles = settings.deploy_roles if env.kind is Kind.DEPLOY else settings.preview_roles
        for role in roles:
            gcp.projects.IAMMember(
                f"{env.name}-{role.removeprefix('roles/').replace('.', '-')}",
                project=settings.project,
                role=role,
                member=account.email.apply(lambda email: f"serviceAccount:{email}"),
            )
        accounts[env.name] = account.email
    previews = [accounts[e.name] for e in envs if e.kind is not Kind.DEPLOY]
    if previews and settings.deny_preview_object_reads:
        # Preview accounts read configuration, not object contents (trust.GCP_PREVIEW_DENIED_PERMISSIONS).
        gcp.iam.DenyPolicy(
            "preview-no-data",
            name="inferstack-preview-no-data",
            parent=urllib.parse.quote(
                f"cloudresourcemanager.googleapis.com/projects/{settings.project}", safe=""
            ),
            display_name="InferStack preview identities read no data",
            rules=[
                {
                    "description": "GitHub preview jobs (no reviewer) may not read objects",
                    "deny_rule": {
                        "denied_principals": [e.apply(gcp_deny_principal) for e in previews],
                        "denied_permissions": list(GCP_PREVIEW_DENIED_PERMISSIONS),
                    },
                }
            ],
        )
    return provider.name, accounts
