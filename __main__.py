"""Pulumi entry point: validate this stack's `inferstack:*` config and hand it to the composition."""

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env

from stacks import collect_garbage_less_often, deploy
from stacks.config import ConfigError, decode_pulumi_config, parse_stack_config

# This process runs one stack and exits; see stacks.ONE_SHOT_GC_THRESHOLDS for what it saves.
collect_garbage_less_often()

raw = {**(get_config_env() or {}), **CONFIG.get()}
try:
    config = parse_stack_config(decode_pulumi_config(raw), source=f"stack {pulumi.get_stack()}")
except ConfigError as err:
    # RunError ends the program with the message alone: no stack trace for a configuration mistake.
    raise pulumi.RunError(err.render()) from None
try:
    deploy(config)
except ValueError as err:  # a component's argument validation: every problem, already explained
    raise pulumi.RunError(str(err)) from None
