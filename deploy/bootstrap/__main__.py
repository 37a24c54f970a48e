"""The bootstrap Pulumi program (deploy/bootstrap/Pulumi.yaml): read the settings, build the identities."""

import sys
from pathlib import Path

import pulumi

ROOT = Path(__file__).resolve().parents[2]
# Pulumi runs this file with deploy/bootstrap as the working directory; the package lives at the root.
sys.path.insert(0, str(ROOT))

from deploy.bootstrap.program import build  # noqa: E402
from deploy.bootstrap.trust import BootstrapConfigError, environments, load_settings  # noqa: E402

try:
    build(load_settings(pulumi.Config().get_object("settings")), environments(ROOT / "stacks"))
except BootstrapConfigError as error:
    raise pulumi.RunError(str(error)) from None
