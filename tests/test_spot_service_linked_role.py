"""Karpenter spot needs the account's EC2 Spot service-linked role before its NodePool (issue 13, kind 12).

IAM allows one per account, so the stack looks it up (aws.iam.get_roles on the stack's provider) and
creates it only where the account has none. The fake account (inferstack/planning/fakes/aws.py
ACCOUNT_ROLES) has no Spot role by default; tests that need one monkeypatch it in.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from components.choices import CapacityType
from inferstack.planning.fakes import aws as fakes_aws
from inferstack.planning.plan import Plan, plan_stack
from inferstack.validation.invokes import invoke_provider_outcome
from stacks.aws import SPOT_ROLE_PATH, SPOT_SERVICE
from stacks.config import StackConfig, load_stack_file
from tests.stack_graph import ancestors_and_dependencies

ROOT = Path(__file__).resolve().parents[1]
ROLE = "aws:iam/serviceLinkedRole:ServiceLinkedRole"
GET_ROLES = "aws:iam/getRoles:getRoles"
SPOT_ROLE = ("/aws-service-role/spot.amazonaws.com/", "AWSServiceRoleForEC2Spot")
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


def lookups(plan: Plan) -> list:
    return [i for i in plan.recording.invokes if i.token == GET_ROLES]


def test_the_lookup_asks_the_spot_path_on_the_stacks_provider() -> None:
    plan = plan_stack(config("dev-aws"), "dev-aws")
    [lookup] = lookups(plan)
    assert lookup.args["pathPrefix"] == SPOT_ROLE_PATH == "/aws-service-role/spot.amazonaws.com/"
    assert lookup.provider_urn == plan.recording.one("pulumi:providers:aws").urn
    assert invoke_provider_outcome(plan.recording.invokes, plan.recording.resources).findings == []


def test_an_account_that_has_the_role_gets_no_second_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """IAM refuses a second AWSServiceRoleForEC2Spot: declaring one would fail `pulumi up`."""
    monkeypatch.setattr(fakes_aws, "ACCOUNT_ROLES", (*fakes_aws.ACCOUNT_ROLES, SPOT_ROLE))
    plan = plan_stack(config("dev-aws"), "dev-aws")
    assert len(lookups(plan)) == 1
    assert roles(plan) == []
    assert plan.recording.of_type(NODE_POOL)  # Karpenter spot still planned, on the account's role


def test_other_service_linked_roles_do_not_count_as_the_spot_role(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every account has Support's and Trusted Advisor's; the lookup's path must exclude them.
    monkeypatch.setattr(
        fakes_aws,
        "ACCOUNT_ROLES",
        (
            *fakes_aws.ACCOUNT_ROLES,
            ("/aws-service-role/autoscaling.amazonaws.com/", "AWSServiceRoleForAutoScaling"),
        ),
    )
    plan = plan_stack(config("dev-aws"), "dev-aws")
    [role] = roles(plan)
    [pool] = plan.recording.of_type(NODE_POOL)
    assert role.urn in ancestors_and_dependencies(plan, pool)


def test_the_flag_false_never_creates_nor_looks_up() -> None:
    plan = plan_stack(with_aws(config("dev-aws"), create_spot_service_linked_role=False), "dev-aws")
    assert roles(plan) == []
    assert lookups(plan) == []  # a deployer without iam:ListRoles can still deploy
    assert plan.recording.of_type(NODE_POOL)  # Karpenter spot still planned


def test_an_on_demand_stack_does_not_look_up() -> None:
    assert lookups(plan_stack(config("prod-aws"), "prod-aws")) == []


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
