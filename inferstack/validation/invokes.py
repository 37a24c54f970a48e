"""The plan-level rule `invoke-provider`: every data-source call runs on the stack's own provider.

A data source (an invoke: `aws.lb.get_hosted_zone_id_output`, `gcp.organizations.get_project_output`,
`azure_native.authorization.get_client_config_output`) called without
`opts=pulumi.InvokeOutputOptions(provider=...)`, and without a `parent` that carries a provider, is answered
by the package's default provider. That provider is configured from the environment (AWS_REGION /
AWS_PROFILE, GOOGLE_PROJECT / CLOUDSDK_CORE_PROJECT, ARM_SUBSCRIPTION_ID or the Azure CLI's active
subscription) or from `aws:region` style stack config that InferStack never writes, not from the stack
file's `aws.region` / `gcp.project` / Azure subscription. The answer then belongs to another region, project
or subscription, or the call fails for lack of one; for the NLB hosted-zone id, Route53 rejects the alias
record at the last step of `pulumi up` when AWS_REGION differs from `aws.region`. The package of a token is
its first part ("aws", "gcp", "azure-native"); its provider's type is `pulumi:providers:<package>`.

How the SDK picks the provider (pulumi 3.272.0, sdk/python/lib/pulumi/runtime/invoke.py `_invoke`): an
explicit `opts.provider` wins; else, with `opts.parent`, the parent's provider for the token's package
(`opts.parent.get_provider(tok)`); else the provider reference sent to the engine is "" and the engine
uses the default provider. The recording mock keeps that reference for every call
(`Recording.invokes`), so the rule reads what the SDK really sent, not the program's source.

A Pulumi policy pack cannot state this rule: policies see resources, not invokes.
"""

from __future__ import annotations

from collections.abc import Iterable

from inferstack.planning.recording import RecordedInvoke, RecordedResource
from inferstack.validation.common import CheckOutcome, Finding

CHECK = "invoke-provider"


def invoke_provider_outcome(
    invokes: Iterable[RecordedInvoke], resources: Iterable[RecordedResource]
) -> CheckOutcome:
    """One finding per data-source call answered by a default provider, or by a provider of another package.

    `invokes` and `resources` are a recording's (`Plan.recording.invokes` / `.resources`). The finding's
    resource is "invoke <token>"; its message names the fix. Calls are listed once per token and provider.
    """
    calls = sorted({(i.token, i.provider): i for i in invokes}.values(), key=lambda i: (i.token, i.provider))
    providers = {r.urn: r.type for r in resources if r.type.startswith("pulumi:providers:")}
    findings: list[Finding] = []
    for call in calls:
        urn = call.provider_urn
        if urn is None:
            findings.append(
                Finding(
                    check=CHECK,
                    resource=f"invoke {call.token}",
                    message=f"runs on the default {call.package} provider, whose region/project/credentials "
                    "come from the environment, not the stack file: pass the stack's provider "
                    "(opts=pulumi.InvokeOutputOptions(provider=...)) or a parent component that has one",
                )
            )
            continue
        provider_type = providers.get(urn)
        if provider_type is not None and provider_type != f"pulumi:providers:{call.package}":
            findings.append(
                Finding(
                    check=CHECK,
                    resource=f"invoke {call.token}",
                    message=f"runs on a {provider_type} provider ({urn}); a {call.package} data source needs "
                    f"the stack's {call.package} provider",
                )
            )
    return CheckOutcome(findings=findings, notes=[], validated=len(calls))
