"""Who may assume the deploy and preview identities: GitHub environments, AWS trust policies, GCP conditions,
Azure federated identity credentials.

Pure functions, no cloud calls: `program.py` turns them into resources, `github_environments.py` into GitHub
API calls, and tests/test_bootstrap.py checks the rendered documents.

The model. Every cloud stack file (`stacks/Pulumi.<stack>.yaml` with `inferstack:platform` aws, gcp or
azure) gets two GitHub environments, and one cloud identity for each:

- `<stack>`: deploy.yml's `pulumi up`. Admits the `main` branch only; with `inferstack:tier: prod`, also a
  required reviewer (who may not approve their own run).
- `preview-<stack>`: preview.yml's `pulumi preview` of a pull request. Admits any branch (a PR's), with a
  required reviewer on prod tiers, because a prod preview reads prod state. Its identity is read-only.

GitHub puts the environment in the OIDC token's subject, `repo:<owner>/<repo>:environment:<name>` (GitHub
docs, "OpenID Connect reference", subject claim; the default template, without customisation). Each
identity trusts exactly one such subject, so a job can act as `prod-aws` only by running in the `prod-aws`
environment, which GitHub admits only from `main` after a review. A job without an environment gets
`repo:<owner>/<repo>:pull_request` or `…:ref:refs/heads/<branch>`, which nothing trusts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

GITHUB_OIDC_ISSUER = "https://token.actions.githubusercontent.com"
#: The audience configure-aws-credentials asks for (its README, "OIDC"): what the AWS trust policy requires.
AWS_AUDIENCE = "sts.amazonaws.com"
#: The AWS condition keys of GitHub's OIDC provider (IAM docs, "Available keys for OIDC federation").
AWS_SUB_KEY = "token.actions.githubusercontent.com:sub"
AWS_AUD_KEY = "token.actions.githubusercontent.com:aud"
#: google.subject must be at most 127 bytes (GCP docs, "Workload identity federation", attribute mappings).
GCP_SUBJECT_MAX_BYTES = 127
#: GitHub's claims mapped to Google attributes; google.subject is what principal:// bindings match.
GCP_ATTRIBUTE_MAPPING = {
    "google.subject": "assertion.sub",
    "attribute.repository": "assertion.repository",
    "attribute.repository_owner": "assertion.repository_owner",
    "attribute.environment": "assertion.environment",
}
# GitHub's own rules: an owner is 1-39 alphanumerics or single hyphens; a repository 1-100 of [A-Za-z0-9_.-].
# They are interpolated into a CEL expression and into subjects, so nothing else may pass.
_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_NUMERIC_ID = re.compile(r"^[0-9]{1,20}$")
_GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
CLOUDS = ("aws", "gcp", "azure")

#: The audience Entra ID accepts in a federated identity credential, and the one azure/login, azure-native
#: (ARM_USE_OIDC) and kubelogin ask GitHub for (Entra docs, "Workload identity federation", and
#: components/clusters/azure/workload_identity.TOKEN_EXCHANGE_AUDIENCE).
AZURE_AUDIENCE = "api://AzureADTokenExchange"
#: A federated credential's subject holds at most 600 characters (Entra docs, "Important considerations and
#: restrictions for federated identity credentials").
AZURE_SUBJECT_MAX_CHARS = 600
# Built-in role definition GUIDs, the same in every tenant (learn.microsoft.com/azure/role-based-access-
# control/built-in-roles, "General" and "Containers": each role's JSON `name`).
#: Contributor: manage every resource, assign no roles.
AZURE_CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
#: User Access Administrator: manage role assignments (the stack assigns roles to its identities).
AZURE_USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
#: Reader: `*/read` on the control plane; no data actions (blob contents, Key Vault keys and secrets).
AZURE_READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
#: Azure Kubernetes Service Cluster User Role: listClusterUserCredential only, which the stack's kubeconfig
#: output needs and Reader lacks. With local accounts off it returns an exec (kubelogin) config, no secret.
AZURE_AKS_CLUSTER_USER = "4abbcc35-e782-43d8-92c5-2d3f1bd2253f"
#: Roles that write or hand out rights: never on a preview identity, which a branch pusher runs unreviewed.
#: Owner and Role Based Access Control Administrator besides the two deploy roles.
AZURE_WRITE_ROLES = frozenset(
    {
        AZURE_CONTRIBUTOR,
        AZURE_USER_ACCESS_ADMINISTRATOR,
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",  # Owner
        "f58310d9-a9f6-439a-9e8d-f62e7b41a168",  # Role Based Access Control Administrator
    }
)


class BootstrapConfigError(ValueError):
    """The bootstrap settings are wrong; the message names each field and the fix."""


class Kind(StrEnum):
    DEPLOY = "deploy"
    PREVIEW = "preview"


class GitHubRepository(BaseModel):
    """The repository whose workflows may assume the identities."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: str = Field(description="user or organisation login, e.g. acme")
    name: str = Field(description="repository name, e.g. inferstack")
    owner_id: str | None = Field(
        None,
        description="numeric owner id (gh api users/<owner> --jq .id): survives a renamed or re-registered login",
    )
    repository_id: str | None = Field(
        None, description="numeric repository id (gh api repos/<owner>/<name> --jq .id)"
    )

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        if not _OWNER.match(value):
            raise ValueError(f"{value!r} is not a GitHub login (letters, digits, single hyphens, at most 39)")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _REPOSITORY.match(value) or value in (".", ".."):
            raise ValueError(f"{value!r} is not a GitHub repository name ([A-Za-z0-9_.-], at most 100)")
        return value

    @field_validator("owner_id", "repository_id")
    @classmethod
    def _numeric(cls, value: str | None) -> str | None:
        if value is not None and not _NUMERIC_ID.match(value):
            raise ValueError(
                f"{value!r} is not a numeric GitHub id; quote the number in YAML, e.g. '1234567'"
            )
        return value

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass(frozen=True)
class Environment:
    """One GitHub environment and the cloud identity bound to it."""

    stack: str
    cloud: str  # "aws" | "gcp" | "azure"
    tier: str  # the stack file's inferstack:tier
    kind: Kind

    @property
    def name(self) -> str:
        return self.stack if self.kind is Kind.DEPLOY else f"preview-{self.stack}"

    @property
    def main_only(self) -> bool:
        """Deployments come from main alone; previews from any branch of a pull request."""
        return self.kind is Kind.DEPLOY

    @property
    def needs_reviewer(self) -> bool:
        return self.tier == "prod"

    @property
    def variable(self) -> str:
        """The environment variable deploy.yml / preview.yml read the identity from."""
        if self.cloud == "aws":
            return "AWS_DEPLOY_ROLE_ARN" if self.kind is Kind.DEPLOY else "AWS_PREVIEW_ROLE_ARN"
        if self.cloud == "gcp":
            return "GCP_DEPLOY_SERVICE_ACCOUNT" if self.kind is Kind.DEPLOY else "GCP_PREVIEW_SERVICE_ACCOUNT"
        return "AZURE_DEPLOY_CLIENT_ID" if self.kind is Kind.DEPLOY else "AZURE_PREVIEW_CLIENT_ID"


def environments(stacks_dir: Path) -> list[Environment]:
    """Both environments of every cloud stack file in `stacks_dir`, sorted by name.

    Raises BootstrapConfigError naming the file when a cloud stack has no `inferstack:tier`.
    """
    found = []
    for path in sorted(stacks_dir.glob("Pulumi.*.yaml")):
        stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        config = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("config") or {}
        cloud = str(config.get("inferstack:platform", "onprem"))
        if cloud not in CLOUDS:
            continue
        tier = config.get("inferstack:tier")
        if tier is None:
            raise BootstrapConfigError(f"{path}: inferstack:tier is missing; set it to dev or prod")
        found += [Environment(stack, cloud, str(tier), kind) for kind in Kind]
    return sorted(found, key=lambda e: e.name)


def subject(repo: GitHubRepository, environment: Environment) -> str:
    """The `sub` claim of a job running in `environment` (GitHub's default subject template)."""
    return f"repo:{repo.full_name}:environment:{environment.name}"


def aws_trust_policy(provider_arn: str, repo: GitHubRepository, environment: Environment) -> dict[str, Any]:
    """The IAM role trust policy (JSON document) admitting exactly the jobs of one GitHub environment.

    StringEquals on both claims, never StringLike: a wildcard on `sub` (`repo:o/r:*`) admits every branch,
    pull request and environment of the repository.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {AWS_AUD_KEY: AWS_AUDIENCE, AWS_SUB_KEY: subject(repo, environment)},
                },
            }
        ],
    }


def gcp_attribute_condition(repo: GitHubRepository) -> str:
    """The provider's CEL attribute condition: tokens of this repository and owner only (by id when given).

    Without a condition the provider accepts any GitHub repository's token, and the bindings are then the
    only guard. The numeric ids (GitHub's `repository_id` / `repository_owner_id` claims) also hold when a
    deleted name is registered again by someone else.
    """
    clauses = [f"assertion.repository == '{repo.full_name}'", f"assertion.repository_owner == '{repo.owner}'"]
    if repo.repository_id:
        clauses.append(f"assertion.repository_id == '{repo.repository_id}'")
    if repo.owner_id:
        clauses.append(f"assertion.repository_owner_id == '{repo.owner_id}'")
    return " && ".join(clauses)


def gcp_account_id(environment: Environment) -> str:
    """The service account id of one environment: 6-30 of [a-z0-9-] (IAM's rule for account ids)."""
    account_id = f"inferstack-{environment.name}"
    if len(account_id) > 30 or not re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", account_id):
        raise BootstrapConfigError(
            f"stacks/Pulumi.{environment.stack}.yaml: the service account id {account_id!r} must be at most "
            "30 lowercase letters, digits and hyphens; use a shorter, lowercase stack name"
        )
    return account_id


def gcp_principal(pool_name: str, repo: GitHubRepository, environment: Environment) -> str:
    """The IAM member for one environment's jobs: `principal://iam.googleapis.com/<pool>/subject/<sub>`.

    `pool_name` is the pool's resource name, `projects/<number>/locations/global/workloadIdentityPools/<id>`.
    Raises BootstrapConfigError when the subject exceeds google.subject's 127 bytes.
    """
    sub = subject(repo, environment)
    if len(sub.encode()) > GCP_SUBJECT_MAX_BYTES:
        raise BootstrapConfigError(
            f"github: the subject {sub!r} is {len(sub.encode())} bytes, over google.subject's "
            f"{GCP_SUBJECT_MAX_BYTES}; use a shorter repository or stack name"
        )
    return f"principal://iam.googleapis.com/{pool_name}/subject/{sub}"


def azure_identity_name(environment: Environment) -> str:
    """The user-assigned managed identity's name: `inferstack-<environment>`, 3-128 of [A-Za-z0-9_-] starting
    with a letter or digit (Microsoft.ManagedIdentity naming rules). Raises BootstrapConfigError otherwise."""
    name = f"inferstack-{environment.name}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{2,127}", name):
        raise BootstrapConfigError(
            f"stacks/Pulumi.{environment.stack}.yaml: the managed identity name {name!r} must be at most 128 "
            "letters, digits, hyphens and underscores; rename the stack"
        )
    return name


def azure_federated_credential(repo: GitHubRepository, environment: Environment) -> dict[str, Any]:
    """The federated identity credential of one environment's managed identity: {issuer, subject, audiences}.

    Entra ID matches issuer and subject exactly (no wildcards) against the GitHub token's `iss` and `sub`, and
    the token's `aud` against audiences, so only jobs of this environment of this repository get a token.
    Raises BootstrapConfigError when the subject exceeds Entra's 600 characters.
    """
    sub = subject(repo, environment)
    if len(sub) > AZURE_SUBJECT_MAX_CHARS:
        raise BootstrapConfigError(
            f"github: the subject {sub!r} is over Entra ID's {AZURE_SUBJECT_MAX_CHARS} characters; "
            "use a shorter repository or stack name"
        )
    return {"issuer": GITHUB_OIDC_ISSUER, "subject": sub, "audiences": [AZURE_AUDIENCE]}


#: What a preview identity may not read, though its read-only policy would allow it: the data, not the
#: configuration. A branch pusher runs preview jobs without a reviewer; where prod shares the account, the
#: managed ReadOnlyAccess alone would let that job read prod's model weights (s3:Get*), logs (which can hold
#: prompts) and decrypt with KMS keys it can describe. An explicit Deny wins over any Allow (IAM policy
#: evaluation logic). `pulumi preview` reads resources' configuration and the state (through Pulumi, not
#: these), never object contents.
AWS_PREVIEW_DENIED_OBJECT_READS = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectAttributes",
    "s3:GetObjectVersionAttributes",
    "s3:GetObjectTorrent",
)
AWS_PREVIEW_DENIED_ACTIONS = (
    *AWS_PREVIEW_DENIED_OBJECT_READS,
    "logs:GetLogEvents",
    "logs:FilterLogEvents",
    "logs:StartQuery",
    "logs:GetQueryResults",
    "logs:StartLiveTail",
    "kms:Decrypt",
    "secretsmanager:GetSecretValue",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "ssm:GetParameterHistory",
    # Images (a bake-mode image carries the weights) and function code.
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage",
    "lambda:GetFunction",
)
#: The same for GCP preview service accounts, as an IAM deny policy (roles/viewer lists and reads object
#: metadata; the deny keeps object contents out of reach). Permissions in deny policies are written
#: <service>/<resource>.<verb> (IAM "Permissions supported in deny policies").
GCP_PREVIEW_DENIED_PERMISSIONS = ("storage.googleapis.com/objects.get",)


def aws_preview_deny_policy(
    state_bucket: str | None = None, state_kms_key_arn: str | None = None
) -> dict[str, Any]:
    """The inline policy every AWS preview role carries: AWS_PREVIEW_DENIED_ACTIONS everywhere, except, for a
    self-managed state backend (`PULUMI_BACKEND_URL=s3://state_bucket`), reading the state objects and
    decrypting with the state's KMS key: a preview must read its stack's state."""
    exempt = {
        **{a: f"arn:aws:s3:::{state_bucket}/*" for a in AWS_PREVIEW_DENIED_OBJECT_READS if state_bucket},
        **({"kms:Decrypt": state_kms_key_arn} if state_kms_key_arn else {}),
    }
    statements: list[dict[str, Any]] = [
        {
            "Sid": "PreviewReadsConfigurationNotData",
            "Effect": "Deny",
            "Action": [a for a in AWS_PREVIEW_DENIED_ACTIONS if a not in exempt],
            "Resource": "*",
        }
    ]
    for resource in sorted(set(exempt.values())):
        statements.append(
            {
                "Sid": "PreviewReadsOnlyItsStateHere"
                if resource.endswith("/*")
                else "PreviewDecryptsOnlyItsState",
                "Effect": "Deny",
                "Action": sorted(a for a, r in exempt.items() if r == resource),
                "NotResource": resource,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def gcp_deny_principal(email: str) -> str:
    """A service account as a deny policy names it (pulumi_gcp iam.DenyPolicy's example)."""
    return f"principal://iam.googleapis.com/projects/-/serviceAccounts/{email}"


class AwsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    oidc_provider_arn: str | None = Field(
        None,
        description="an existing IAM OIDC provider for token.actions.githubusercontent.com; else one is made",
    )
    deploy_policy_arns: list[str] = Field(
        min_length=1,
        description="managed policies of the deploy roles (docs/aws.md, IAM needed to run pulumi up)",
    )
    preview_policy_arns: list[str] = Field(
        default_factory=lambda: ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
        description="managed policies of the read-only preview roles",
    )
    max_session_seconds: int = Field(
        43200, ge=3600, le=43200, description="deploy.yml asks for sessions as long as a job (up to 18000 s)"
    )
    state_bucket: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="a self-managed Pulumi state bucket (PULUMI_BACKEND_URL=s3://...): the one bucket whose "
        "objects preview roles may read",
    )
    state_kms_key_arn: str | None = Field(
        None,
        description="the KMS key that encrypts that bucket's objects, the one preview roles may decrypt with",
    )


class GcpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(description="the project holding the pool and the service accounts")
    pool_id: str = Field("github", pattern=r"^[a-z0-9-]{4,32}$")
    provider_id: str = Field("inferstack", pattern=r"^[a-z0-9-]{4,32}$")
    deploy_roles: list[str] = Field(min_length=1, description="project roles of the deploy service accounts")
    preview_roles: list[str] = Field(default_factory=lambda: ["roles/viewer"])
    deny_preview_object_reads: bool = Field(
        True,
        description="an IAM deny policy on the project against preview accounts reading objects; a deny policy "
        "cannot exempt one bucket (its conditions match tags only), so a Pulumi state bucket (gs://) must live "
        "in another project, or set this false",
    )


class AzureSettings(BaseModel):
    """One subscription for every azure stack: the identities live there and get their roles on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subscription_id: str = Field(
        pattern=_GUID,
        description="the subscription the identities are made in and given roles on: the azure stacks' "
        "azure.subscription_id (az account show --query id)",
    )
    tenant_id: str = Field(
        pattern=_GUID, description="the Entra tenant: the azure stacks' azure.tenant_id (az account show)"
    )
    location: str = Field(
        pattern=r"^[a-z0-9]{2,40}$",
        description="region of the resource group and identities, e.g. swedencentral",
    )
    resource_group: str = Field(
        "inferstack-github",
        pattern=r"^[-\w._()]{0,89}[-\w_()]$",
        description="resource group the bootstrap creates for the identities (1-90 characters, no final .)",
    )
    deploy_roles: list[str] = Field(
        default_factory=lambda: [AZURE_CONTRIBUTOR, AZURE_USER_ACCESS_ADMINISTRATOR],
        min_length=1,
        description="built-in role GUIDs of the deploy identities on the subscription (docs/azure.md, "
        "Roles and the admin group)",
    )
    preview_roles: list[str] = Field(
        default_factory=lambda: [AZURE_READER, AZURE_AKS_CLUSTER_USER],
        description="built-in role GUIDs of the read-only preview identities on the subscription",
    )

    @field_validator("deploy_roles", "preview_roles")
    @classmethod
    def _guids(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not re.match(_GUID, v)]
        if bad:
            raise ValueError(
                f"{bad} are not role definition GUIDs; give the role's name GUID, e.g. "
                "az role definition list --name Reader --query [].name"
            )
        lowered = [v.lower() for v in value]  # ARM writes role GUIDs in lowercase
        if len(set(lowered)) != len(lowered):
            raise ValueError("a role is listed twice; list each role once")
        return lowered

    @field_validator("preview_roles")
    @classmethod
    def _read_only(cls, value: list[str]) -> list[str]:
        writes = sorted(set(value) & AZURE_WRITE_ROLES)
        if writes:
            raise ValueError(
                f"{writes} write or grant access; preview jobs run a branch's code without a reviewer, so "
                "give them read roles only (Reader, Azure Kubernetes Service Cluster User Role)"
            )
        return value


class Settings(BaseModel):
    """The bootstrap stack's one config key, `inferstack-bootstrap:settings`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    github: GitHubRepository
    aws: AwsSettings | None = None
    gcp: GcpSettings | None = None
    azure: AzureSettings | None = None


def load_settings(raw: Any) -> Settings:
    """Validate the config object; every problem in one BootstrapConfigError naming its field."""
    if raw is None:
        raise BootstrapConfigError(
            "inferstack-bootstrap:settings is not set; see deploy/bootstrap/Pulumi.example.yaml"
        )
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        problems = [
            f"settings.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in error.errors(include_url=False)
        ]
        raise BootstrapConfigError("; ".join(problems)) from None


def check_clouds(settings: Settings, envs: list[Environment]) -> None:
    """Every cloud that a stack file uses needs its settings section."""
    missing = sorted({e.cloud for e in envs} - {c for c in CLOUDS if getattr(settings, c) is not None})
    if missing:
        raise BootstrapConfigError(
            "; ".join(
                f"settings.{c}: stacks/ has {c} stacks, so the {c} section is required" for c in missing
            )
        )
