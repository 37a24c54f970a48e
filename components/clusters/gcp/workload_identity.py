"""Workload Identity Federation for GKE, direct resource access: the IAM principal of a Kubernetes
ServiceAccount, and the egress a NetworkPolicy must leave open for it to work.

With direct resource access an IAM role is granted straight to the Kubernetes ServiceAccount's principal,

    principal://iam.googleapis.com/projects/<project number>/locations/global/workloadIdentityPools/
        <project id>.svc.id.goog/subject/ns/<namespace>/sa/<service account>

so there is no Google service account to impersonate, no `iam.gke.io/gcp-service-account` annotation on
the Kubernetes ServiceAccount, and no key anywhere. The pod asks the GKE metadata server on its node for a
token (node pools run with `workload_metadata_config: GKE_METADATA`); a default-deny egress NetworkPolicy
must allow that address, or every Google client library in the pod fails with a timeout that never
mentions the network.
"""

from __future__ import annotations

import re

import pulumi

#: (CIDR, TCP port) pairs a NetworkPolicy must allow so pods reach the GKE metadata server. GKE's
#: Workload Identity docs: 169.254.169.252/32 on 988 where network policy is enforced (Calico); on
#: Dataplane V2 the metadata server is reached at 169.254.169.254/32 on 80. Both are listed so the same
#: policy works on either dataplane; each is link-local and answered by the node itself.
WORKLOAD_IDENTITY_EGRESS: list[tuple[str, int]] = [
    ("169.254.169.252/32", 988),
    ("169.254.169.254/32", 80),
]

# A Kubernetes namespace is a DNS label; a ServiceAccount name a DNS subdomain (RFC 1123).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# GKE's pool is always <project id>.svc.id.goog; project ids are 6-30 characters (some legacy ones carry
# a domain prefix, "example.com:my-project").
_WORKLOAD_POOL = re.compile(r"^([a-z][-a-z0-9.]*:)?[a-z][-a-z0-9]{4,28}[a-z0-9]\.svc\.id\.goog$")
_PROJECT_NUMBER = re.compile(r"^[1-9][0-9]{5,18}$")


def workload_pool_for(project: str) -> str:
    """The Workload Identity pool GKE makes for a project's clusters."""
    return f"{project}.svc.id.goog"


def workload_identity_problems(
    project_number: pulumi.Input[str], workload_pool: pulumi.Input[str], namespace: str, service_account: str
) -> list[str]:
    """Every problem with the parts of a principal, each naming its argument; empty when usable."""
    problems: list[str] = []
    if isinstance(project_number, str) and not _PROJECT_NUMBER.match(project_number):
        problems.append(
            f"project_number: {project_number!r} is not a project number (digits, e.g. 123456789012); the "
            "principal needs the number, not the project id"
        )
    if isinstance(workload_pool, str) and not _WORKLOAD_POOL.match(workload_pool):
        problems.append(
            f"workload_pool: {workload_pool!r} is not a GKE workload pool (<project id>.svc.id.goog)"
        )
    if not _DNS_LABEL.match(namespace):
        problems.append(f"namespace: {namespace!r} is not a Kubernetes namespace name (a DNS label)")
    if not _DNS_SUBDOMAIN.match(service_account):
        problems.append(
            f"service_account: {service_account!r} is not a Kubernetes ServiceAccount name (a DNS subdomain)"
        )
    return problems


def workload_identity_principal(
    project_number: pulumi.Input[str], workload_pool: pulumi.Input[str], namespace: str, service_account: str
) -> pulumi.Output[str]:
    """The IAM principal of one Kubernetes ServiceAccount in a GKE cluster with Workload Identity.

    `project_number` is the number of the project that owns the workload pool (the cluster's project);
    it and `workload_pool` may be Outputs (get_project_output(...).number, the cluster's pool), checked
    only when they are plain strings. Raises ValueError listing every
    problem when the parts cannot form a principal.
    """
    problems = workload_identity_problems(project_number, workload_pool, namespace, service_account)
    if problems:
        raise ValueError("workload identity principal: " + "; ".join(problems))
    return pulumi.Output.concat(
        "principal://iam.googleapis.com/projects/",
        project_number,
        "/locations/global/workloadIdentityPools/",
        workload_pool,
        f"/subject/ns/{namespace}/sa/{service_account}",
    )
