"""IAM for pods: one shape for every in-cluster workload that calls AWS (EKS Pod Identity, never keys).

`PodIdentityRole` makes an IAM role that only the EKS Pod Identity agent may assume, gives it one inline
policy, and associates it with one ServiceAccount of one cluster. The workload needs no annotation and no
OIDC trust: the association is the only link, and deleting it revokes access.

Policy documents are plain dicts built by pure functions (`statement`, `policy_document`), so tests read
the exact JSON a role gets; `pulumi.Output.json_dumps` serialises them with ARNs still unresolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components._common import child, reject_invalid_args

#: The service principal of the EKS Pod Identity agent.
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
POLICY_VERSION = "2012-10-17"


def statement(
    actions: list[str],
    resources: list[Any],
    *,
    sid: str | None = None,
    effect: str = "Allow",
    condition: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One IAM policy statement; `resources` may hold Outputs (ARNs of resources made in this stack)."""
    stmt: dict[str, Any] = {"Effect": effect, "Action": sorted(actions), "Resource": resources}
    if sid:
        stmt["Sid"] = sid
    if condition:
        stmt["Condition"] = condition
    return stmt


def policy_document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": list(statements)}


def service_trust_policy(service: str, *, tag_session: bool = False) -> dict[str, Any]:
    """Trust policy letting one AWS service principal assume a role."""
    actions = ["sts:AssumeRole", "sts:TagSession"] if tag_session else ["sts:AssumeRole"]
    return {
        "Version": POLICY_VERSION,
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}],
    }


@dataclass(frozen=True)
class PodIdentityRoleArgs:
    """An IAM role for one ServiceAccount of one EKS cluster."""

    cluster_name: pulumi.Input[str]  # the EKS cluster whose Pod Identity agent hands out the credentials
    namespace: str  # namespace of the ServiceAccount
    service_account: str  # name of the ServiceAccount (it need not exist yet)
    policy: dict[str, Any]  # the role's inline policy (policy_document(...)); may hold Outputs
    description: str = ""  # shown in the IAM console: who uses the role and why


def validate_pod_identity_role_args(args: PodIdentityRoleArgs) -> list[str]:
    problems: list[str] = []
    if not args.namespace:
        problems.append("namespace: the ServiceAccount's namespace is required")
    if not args.service_account:
        problems.append("service_account: the ServiceAccount's name is required")
    statements = args.policy.get("Statement") if isinstance(args.policy, dict) else None
    if not statements:
        problems.append("policy: give at least one statement (policy_document(statement(...)))")
    else:
        for i, stmt in enumerate(statements):
            if stmt.get("Effect") == "Allow" and "*" in (stmt.get("Action") or []):
                problems.append(f"policy.Statement[{i}]: Action '*' grants everything; list the actions")
    return problems


class PodIdentityRole(pulumi.ComponentResource):
    """IAM role + inline policy + EKS Pod Identity association for one ServiceAccount."""

    role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: PodIdentityRoleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        reject_invalid_args("PodIdentityRole", name, validate_pod_identity_role_args(args))
        super().__init__("inferstack:aws:PodIdentityRole", name, None, opts)

        role = aws.iam.Role(
            f"{name}-role",
            description=args.description or f"{args.namespace}/{args.service_account} via EKS Pod Identity",
            # Pod Identity passes session tags (cluster, namespace, service account): TagSession is required.
            assume_role_policy=pulumi.Output.json_dumps(
                service_trust_policy(POD_IDENTITY_PRINCIPAL, tag_session=True)
            ),
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=pulumi.Output.json_dumps(args.policy),
            opts=child(self),
        )
        association = aws.eks.PodIdentityAssociation(
            f"{name}-association",
            cluster_name=args.cluster_name,
            namespace=args.namespace,
            service_account=args.service_account,
            role_arn=role.arn,
            opts=child(self),
        )
        self.role_arn = role.arn
        self.association_id = association.association_id
        self.register_outputs({"role_arn": self.role_arn})
