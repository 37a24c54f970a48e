"""The bootstrap's resources: one cloud identity per GitHub environment, trusting only that environment.

Run once, by an administrator, before the first push that runs deploy.yml (docs/gitops.md, "Identities and
environments"). `build` is the whole program; `__main__.py` only reads the config. Outputs:
`variables` = {environment name: {variable name: value}}, what github_environments.py sets on each
environment (AWS_DEPLOY_ROLE_ARN, GCP_PREVIEW_SERVICE_ACCOUNT, GCP_WORKLOAD_IDENTITY_PROVIDER,
AZURE_DEPLOY_CLIENT_ID, AZURE_TENANT_ID, AZURE_SUBSCRIPTION_ID, ...); `azure_principal_ids` = {environment
name: object id of its managed identity's service principal}, for the Entra group membership that Microsoft
Graph, not azure-native, manages (docs/gitops.md: `az ad group member add`).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

from deploy.bootstrap.trust import (
    AWS_AUDIENCE,
    GCP_ATTRIBUTE_MAPPING,
    GCP_PREVIEW_DENIED_PERMISSIONS,
    GITHUB_OIDC_ISSUER,
    AwsSettings,
    AzureSettings,
    Environment,
    GcpSettings,
    GitHubRepository,
    Kind,
    Settings,
    aws_preview_deny_policy,
    aws_trust_policy,
    azure_federated_credential,
    azure_identity_name,
    check_clouds,
    gcp_account_id,
    gcp_attribute_condition,
    gcp_deny_principal,
    gcp_principal,
)

if TYPE_CHECKING:
    from pulumi_azure_native.managedidentity import UserAssignedIdentity


def build(settings: Settings, envs: list[Environment]) -> None:
    """Create the identities of `envs` and export `variables`. Raises BootstrapConfigError first on bad input."""
    check_clouds(settings, envs)
    for env in envs:  # every name problem before the first resource
        if env.cloud == "gcp":
            gcp_account_id(env)
            gcp_principal("projects/0/locations/global/workloadIdentityPools/p", settings.github, env)
        if env.cloud == "azure":
            azure_identity_name(env)
            azure_federated_credential(settings.github, env)
    variables: dict[str, dict[str, pulumi.Input[str]]] = {e.name: {} for e in envs}
    aws_envs = [e for e in envs if e.cloud == "aws"]
    gcp_envs = [e for e in envs if e.cloud == "gcp"]
    azure_envs = [e for e in envs if e.cloud == "azure"]
    if aws_envs and settings.aws is not None:
        arns = _aws(settings.github, settings.aws, aws_envs)
        for env in aws_envs:
            variables[env.name][env.variable] = arns[env.name]
    if gcp_envs and settings.gcp is not None:
        provider, accounts = _gcp(settings.github, settings.gcp, gcp_envs)
        for env in gcp_envs:
            variables[env.name]["GCP_WORKLOAD_IDENTITY_PROVIDER"] = provider
            variables[env.name][env.variable] = accounts[env.name]
    if azure_envs and settings.azure is not None:
        identities = _azure(settings.github, settings.azure, azure_envs)
        for env in azure_envs:
            variables[env.name][env.variable] = identities[env.name].client_id
            variables[env.name]["AZURE_TENANT_ID"] = settings.azure.tenant_id
            variables[env.name]["AZURE_SUBSCRIPTION_ID"] = settings.azure.subscription_id
        pulumi.export("azure_principal_ids", {n: i.principal_id for n, i in identities.items()})
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


def _azure(
    repo: GitHubRepository, settings: AzureSettings, envs: list[Environment]
) -> dict[str, UserAssignedIdentity]:
    """One user-assigned managed identity per environment ({name: UserAssignedIdentity}), each with one
    federated credential (trust.azure_federated_credential) and its tier's roles on the subscription.

    A managed identity rather than an Entra app registration: azure-native manages it through ARM, with no
    Microsoft Graph rights, and it can carry no secret or certificate that someone could add later.
    """
    # Submodules only, and only here: the top-level pulumi_azure_native package loads every module.
    import pulumi_azure_native.authorization as authorization
    import pulumi_azure_native.managedidentity as managedidentity
    import pulumi_azure_native.resources as resources

    group = resources.ResourceGroup(
        "github-identities", resource_group_name=settings.resource_group, location=settings.location
    )
    subscription = f"/subscriptions/{settings.subscription_id}"
    identities = {}
    for env in envs:
        identity = managedidentity.UserAssignedIdentity(
            f"{env.name}-identity",
            resource_name_=azure_identity_name(env),
            resource_group_name=group.name,
            location=settings.location,
            tags={"github-repository": repo.full_name, "github-environment": env.name},
        )
        credential = azure_federated_credential(repo, env)
        managedidentity.FederatedIdentityCredential(
            f"{env.name}-github",
            federated_identity_credential_resource_name=f"github-{env.name}",
            resource_group_name=group.name,
            resource_name_=identity.name,
            issuer=credential["issuer"],
            subject=credential["subject"],
            audiences=credential["audiences"],
        )
        roles = settings.deploy_roles if env.kind is Kind.DEPLOY else settings.preview_roles
        for role in roles:
            authorization.RoleAssignment(
                f"{env.name}-{role}",
                scope=subscription,
                # The subscription-scoped form, the one ARM reads back (the tenant-level
                # /providers/... form would show a diff on every refresh).
                role_definition_id=f"{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}",
                principal_id=identity.principal_id,
                # Lets ARM accept the assignment before Entra ID has replicated the new identity
                # (PrincipalNotFound otherwise); a managed identity is a service principal.
                principal_type="ServicePrincipal",
                description=f"GitHub Actions, {repo.full_name} environment {env.name} ({env.kind.value})",
            )
        identities[env.name] = identity
    return identities
