"""InferStack's CrossGuard policy pack: the rules in rules.py, wired to pulumi-policy.

    pulumi preview -s prod-aws --policy-pack policy --policy-pack-config policy/prod.json
    pulumi preview -s dev-aws  --policy-pack policy --policy-pack-config policy/dev.json

Without a config file every policy is mandatory (the prod levels): a forgotten flag fails closed.
policy/dev.json lowers the reliability and reproducibility policies to advisory; prod.json keeps all
mandatory. Both are generated from rules.enforcement_config and a test keeps them in step.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

# The runtime may run this file as a script or as a module: either way rules.py sits beside it.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rules import POLICIES, Policy


def _resource_policy(policy: Policy) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in policy.validate(args.resource_type, args.props):  # type: ignore[call-arg,arg-type]
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=policy.name,
        description=policy.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def _stack_policy(policy: Policy) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [(r.resource_type, r.props) for r in args.resources]
        for message in policy.validate(resources):  # type: ignore[call-arg,arg-type]
            report_violation(message, None)

    return StackValidationPolicy(
        name=policy.name,
        description=policy.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


PolicyPack(
    name="inferstack",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[_resource_policy(p) if p.kind == "resource" else _stack_policy(p) for p in POLICIES],
)
