"""Karpenter spot needs the account's EC2 Spot service-linked role before its NodePool (issue 13, kind 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.choices import CapacityType
from inferstack.planning.plan import Plan, plan_stack
from stacks.aws import SPOT_SERVICE
from stacks.config import StackConfig, load_stack_file
from tests.stack_graph import ancestors_and_dependencies

ROOT = Path(__file__).resolve().parents[1]
ROLE = "aws:iam/serviceLinkedRole:ServiceLinkedRole"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
AWS_STACKS = ["dev-aws", "prod-aws"]


def config(stack: str) -> StackConfig:
    return load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")


def with_aws(cfg: StackConfig, **update: object) -> StackConfig:
    assert cfg.aws is not None
    return cfg.model_copy(update={"aws": cfg.aws.model_copy(update=update)})


def roles(plan: Plan) -> list:
    return plan.recording.of_type(ROLE)


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_a_stack_that_allows_spot_creates_the_role_before_the_node_pool(stack: str) -> None:
    cfg = config(stack)
    assert cfg.aws is not None
    plan = plan_stack(cfg, stack)
    spot = CapacityType.SPOT in cfg.aws.gpu_nodes.capacity_types
    if not spot:  # prod-aws buys on-demand only: no account-wide role for it to own
        assert roles(plan) == []
        return
    [role] = roles(plan)
    assert role.inputs["awsServiceName"] == SPOT_SERVICE == "spot.amazonaws.com"
    assert role.retain_on_delete  # the account's role outlives the stack
    [pool] = plan.recording.of_type(NODE_POOL)
    assert role.urn in ancestors_and_dependencies(plan, pool)


def test_dev_aws_is_the_stack_with_spot() -> None:
    plan = plan_stack(config("dev-aws"), "dev-aws")
    assert len(roles(plan)) == 1  # guards the parametrized test against passing vacuously


def test_the_flag_leaves_an_existing_role_alone() -> None:
    plan = plan_stack(with_aws(config("dev-aws"), create_spot_service_linked_role=False), "dev-aws")
    assert roles(plan) == []
    assert plan.recording.of_type(NODE_POOL)  # Karpenter spot still planned


def test_spot_added_to_an_on_demand_stack_brings_the_role() -> None:
    cfg = config("prod-aws")
    assert cfg.aws is not None
    nodes = cfg.aws.gpu_nodes.model_copy(
        update={"capacity_types": [*cfg.aws.gpu_nodes.capacity_types, CapacityType.SPOT]}
    )
    plan = plan_stack(
        cfg.model_copy(update={"aws": cfg.aws.model_copy(update={"gpu_nodes": nodes})}), "prod-aws"
    )
    [role] = roles(plan)
    [pool] = plan.recording.of_type(NODE_POOL)
    assert role.urn in ancestors_and_dependencies(plan, pool)
