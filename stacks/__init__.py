"""Stack compositions: one validated StackConfig in, the components for its platform out."""

from __future__ import annotations

from stacks.config import Platform, StackConfig


def deploy(config: StackConfig) -> None:
    """Create every resource of the stack (inside a Pulumi program, or under the recording mock)."""
    if config.platform is Platform.ONPREM:
        from stacks.onprem import deploy_onprem

        deploy_onprem(config)
    elif config.platform is Platform.AWS:
        from stacks.aws import deploy_aws

        deploy_aws(config)
    elif config.platform is Platform.GCP:
        from stacks.gcp import deploy_gcp

        deploy_gcp(config)
    else:  # pragma: no cover - the schema admits only platforms that have a composition
        raise ValueError(f"platform: no composition for {config.platform.value}")
