"""Stack compositions: one validated StackConfig in, the components for its platform out.

Each platform's composition, and with it its cloud SDK, is imported only when a stack of that platform is
deployed: an onprem or local stack never imports pulumi_aws or pulumi_gcp, an AWS stack never pulumi_gcp
(tests/test_platform_imports.py), so a laptop install can leave the cloud SDKs out.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# The modules that register rules with the core schema (stacks/config.py register_platform_rules,
# register_stack_rules), imported here so that every StackConfig is validated by them however it is made:
# `import stacks.config` runs this file first. The core never imports them back.
from stacks import egress, rules_aws, rules_azure, rules_gcp  # noqa: F401
from stacks.config import Platform, StackConfig

# Thresholds for the cyclic garbage collector in a process that runs one stack and exits.
# Such a process builds some 300,000 long-lived objects (the providers' typed classes, imported on first
# use, then the resource graph) and frees few of them. With CPython's defaults (700, 10, 10) each full
# collection walks all of them again: for `inferstack plan prod-aws` the collector took 0.6 s of 3.1 s CPU
# time, 0.5 s of it in 5 full collections (measured with gc.callbacks, November 2026, Python 3.11). With
# these thresholds it takes 0.1 s with no full collection, and peak memory grows by 1-2 MB (167 -> 169 MB).
# mypy tunes its one-shot runs the same way for the same reason (mypy/build.py:
# `gc.set_threshold(200 * 1000, 30, 30)`).
ONE_SHOT_GC_THRESHOLDS = (50_000, 20, 20)


def collect_garbage_less_often() -> None:
    """Raise the garbage collector's thresholds for a one-stack process (the Pulumi program, the CLI).

    Process-wide and never undone, so call it only from an entry point. Scoped to `deploy()` alone it saves
    about half as much: the resource registrations that finish after the program returns still pay.
    """
    gc.set_threshold(*ONE_SHOT_GC_THRESHOLDS)


class PlatformSdkMissing(ValueError):
    """The stack's platform needs a cloud SDK this Python environment does not have (a core install).

    A ValueError, so the CLI and the Pulumi program show the message alone, as for other bad input.
    """


@contextmanager
def _platform_sdk(platform: Platform, module: str, distribution: str) -> Iterator[None]:
    """Turn the import of a missing cloud SDK into a message that names the platform and the fix."""
    try:
        yield
    except ModuleNotFoundError as err:
        if err.name != module:  # another module missing is a broken install, not this: keep its trace
            raise
        raise PlatformSdkMissing(
            f"platform: {platform.value} needs the {distribution} package, which this Python environment "
            f"({sys.prefix}) does not have (`make runtime-core` installs on-prem/local stacks' needs only): "
            f"run `make runtime` (every platform, from requirements/runtime.txt), or "
            f"`pip install 'inferstack[{platform.value}]'`. Onprem and local stacks need no cloud SDK."
        ) from None


#: Each cloud platform's composition: (module, function, its SDK's module, the distribution that has it).
CLOUD_COMPOSITIONS: dict[Platform, tuple[str, str, str, str]] = {
    Platform.AWS: ("stacks.aws", "deploy_aws", "pulumi_aws", "pulumi-aws"),
    Platform.GCP: ("stacks.gcp", "deploy_gcp", "pulumi_gcp", "pulumi-gcp"),
    Platform.AZURE: ("stacks.azure", "deploy_azure", "pulumi_azure_native", "pulumi-azure-native"),
}


def deploy(config: StackConfig) -> None:
    """Create every resource of the stack (inside a Pulumi program, or under the recording mock).

    Imports the platform's composition (and so its cloud SDK) here, not at module level: see the module
    docstring. Raises PlatformSdkMissing when that SDK is not installed, ValueError for bad component args.
    """
    if config.platform is Platform.ONPREM:
        from stacks.onprem import deploy_onprem

        deploy_onprem(config)
        return
    if (
        config.platform not in CLOUD_COMPOSITIONS
    ):  # pragma: no cover - the schema admits only composed platforms
        raise ValueError(f"platform: no composition for {config.platform.value}")
    module, function, sdk, distribution = CLOUD_COMPOSITIONS[config.platform]
    with _platform_sdk(config.platform, sdk, distribution):
        composition = importlib.import_module(module)
    getattr(composition, function)(config)
