"""Where the tests find upstream data (CRD schemas, chart values), and the skip message when there is none.

The data is not part of the repository. In order: the folder INFERSTACK_CRD_DIR / INFERSTACK_CHART_DIR
names (`.ci/run` sets them to ../shared when that is beside the checkout), then what `make fetch-schemas`
wrote under build/upstream. A test that needs a folder that is not there skips, saying how to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

from inferstack.validation.crds import CRD_DIR_ENV
from inferstack.validation.helm import CHART_DIR_ENV

REPO = Path(__file__).resolve().parents[1]
#: `make fetch-schemas` writes here (the Makefile's UPSTREAM_DIR).
FETCHED = REPO / "build" / "upstream"

_ENV = {"crds": CRD_DIR_ENV, "charts": CHART_DIR_ENV}
_WHAT = {"crds": "CRD schemas", "charts": "chart values"}


def data_dir(kind: str) -> Path:
    """The folder of upstream `kind` ("crds" or "charts") the tests use; it may not exist."""
    named = os.environ.get(_ENV[kind])
    return Path(named) if named else FETCHED / kind


def missing_reason(kind: str) -> str | None:
    """None when data_dir(kind) is a folder with something in it; else why not and how to get one."""
    folder = data_dir(kind)
    if folder.is_dir() and any(folder.iterdir()):
        return None
    env = _ENV[kind]
    if folder.is_dir():
        where = f"{folder} is empty"
    else:
        where = f"{env}={folder} is not a folder" if os.environ.get(env) else f"{env} is not set"
    return (
        f"upstream {_WHAT[kind]} not found ({where}): run `make fetch-schemas` (needs helm), "
        f"or set {env} to a folder of them"
    )
