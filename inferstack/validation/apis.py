"""The plan-level rule `gcp-apis`: every GCP resource, feature and data source has its API enabled in the plan.

A GCP project starts with its APIs off. A resource whose API is off fails at create with SERVICE_DISABLED;
a feature whose API is off (GKE image streaming without containerfilesystem.googleapis.com) may be
accepted and then not work. The table of which type/feature calls which API, with the document that says
so per row, is components/clusters/gcp/apis.py; this rule applies it to what the recording mock recorded:

- each GCP resource or invoke's features (by type and recorded inputs) need APIs that a
  `gcp:projects/service:Service` of the same plan enables;
- each such resource waits for those Services (its dependencies, its parents' dependencies, transitively),
  since Pulumi otherwise creates it in parallel with the API it needs;
- a GCP resource or invoke type with no row in the table is a finding: someone must decide its API.

A resource in another project (its `project` input names a project other than the one the Services are
enabled in) is not judged: that project's APIs are its owner's. It is listed in the notes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from components.clusters.gcp.apis import (
    NO_API_TYPES,
    SERVICE_TYPE,
    features_of_resource,
    requirement_of,
    table_types,
)
from inferstack.planning.recording import RecordedInvoke, RecordedResource
from inferstack.validation.common import CheckOutcome, Finding

CHECK = "gcp-apis"
_STACK = "::pulumi:pulumi:Stack::"


def _waits_for(resource: RecordedResource, index: Mapping[str, RecordedResource]) -> set[str]:
    """URNs `resource` waits for on create: its dependencies and its parents', transitively."""
    seen: set[str] = set()
    todo = [resource.urn]
    while todo:
        r = index.get(todo.pop())
        if r is None:
            continue
        for nxt in [*r.dependencies, *([r.parent] if r.parent else [])]:
            if nxt not in seen and _STACK not in nxt:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def gcp_api_outcome(resources: Iterable[RecordedResource], invokes: Iterable[RecordedInvoke]) -> CheckOutcome:
    """Findings for GCP resources/invokes whose API is not enabled in the plan, or not waited for.

    `resources` / `invokes` are a recording's (`Plan.recording.resources` / `.invokes`). A finding's resource
    is "<type> <name>" (or "invoke <token>"); its message names the API, the feature and the fix. A plan
    with no GCP resource validates nothing and finds nothing.
    """
    resources = list(resources)
    invokes = list(invokes)
    index = {r.urn: r for r in resources}
    gcp_custom = [r for r in resources if r.custom and r.type.startswith("gcp:")]
    services = {str(r.inputs.get("service")): r for r in gcp_custom if r.type == SERVICE_TYPE}
    providers = [r for r in resources if r.type == "pulumi:providers:gcp"]
    projects = {str(p.inputs["project"]) for p in providers if p.inputs.get("project")}
    known = table_types()
    findings: list[Finding] = []
    notes: list[str] = []
    validated = 0

    def judge(label: str, type_token: str, inputs: Mapping[str, object], waits: set[str] | None) -> None:
        nonlocal validated
        if type_token in NO_API_TYPES:
            return
        validated += 1
        if type_token not in known:
            findings.append(
                Finding(
                    check=CHECK,
                    resource=label,
                    message=f"{type_token} has no row in components/clusters/gcp/apis.py API_TABLE: add one "
                    "naming the API(s) it calls and the document that says so",
                )
            )
            return
        project = inputs.get("project")
        if isinstance(project, str) and projects and project not in projects:
            notes.append(f"{label}: in project {project}, whose APIs this plan does not manage; not checked")
            return
        for feature in features_of_resource(type_token, inputs):
            row = requirement_of(feature)
            for api in row.apis:
                service = services.get(api)
                if service is None:
                    findings.append(
                        Finding(
                            check=CHECK,
                            resource=label,
                            message=f"{feature.value} needs {api}, which the plan does not enable: add "
                            f"GcpFeature.{feature.name} to stacks/gcp.py required_features (source: {row.source})",
                        )
                    )
                elif waits is not None and service.urn not in waits:
                    findings.append(
                        Finding(
                            check=CHECK,
                            resource=label,
                            message=f"{feature.value} needs {api}, but does not wait for the Service that "
                            f"enables it ({service.name}): pass it in depends_on, or Pulumi creates both at once",
                        )
                    )

    for r in gcp_custom:
        judge(f"{r.type} {r.name}", r.type, r.inputs, _waits_for(r, index))
    # The recording does not keep an invoke's depends_on, so for data sources only enablement is judged.
    for token in sorted({i.token for i in invokes if i.package == "gcp"}):
        args = next(i.args for i in invokes if i.token == token)
        judge(f"invoke {token}", token, args, None)
    return CheckOutcome(findings=findings, notes=notes, validated=validated)
