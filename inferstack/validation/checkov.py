"""checkov's Kubernetes checks over the planned manifests.

checkov lives in its own tool environment (`.tools/checkov`, made by `make tools`): its pins would pull
openai, transformers and boto3 back to old releases if it shared the project's venv. So we run its
command line, offline (BC_SKIP_MAPPING=TRUE, --skip-download), and read its JSON report.

Two ways to skip a check, both with a reason:
- for the whole project, CHECKOV_SKIPS below (passed as --skip-check);
- for one object where a check cannot apply to it, checkov's own annotation on that object,
  `checkov.io/skip1: CKV_K8S_43=<reason>`. Each such skip is listed as a note; one without a reason
  is a finding.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from inferstack.validation.common import CheckOutcome, Finding, resource_id

CHECK = "checkov"
CHECKOV_ENV = "INFERSTACK_CHECKOV"
TOOL_PATH = Path(".tools/checkov/bin/checkov")  # under the project root, where `make tools` puts it
TIMEOUT_S = 300

# checkov check id -> why the project does not apply it, anywhere. Deliberately empty: measured with
# checkov 3.3.30, the hardened model server in tests/test_validate.py passes every Kubernetes check, and
# each check the planned stacks failed can be met in the manifest:
# - CKV_K8S_40 (UID >= 10000): runAsUser/runAsGroup 10001 (vLLM runs as any UID once HOME and its
#   caches are on emptyDir volumes);
# - CKV_K8S_43 (image by digest) and CKV_K8S_15 (pull policy Always, waived for digests): pin images
#   by digest, as the design asks for production. Where a digest cannot exist (an image built on the
#   laptop and loaded into a kind/k3d node), skip on that Deployment only, with the reason, through
#   checkov's annotation `checkov.io/skip1: CKV_K8S_43=<why>`; never here for every stack.
# Helm charts (cert-manager, KEDA, Envoy Gateway, GPU operator) are releases, not rendered manifests:
# checkov never sees their pods, so no skip is needed on their account.
CHECKOV_SKIPS: dict[str, str] = {}

_NO_REASON = "No comment provided"  # what checkov reports for an annotation skip with no `=reason`
_CHECK_ID = re.compile(r"^CKV2?_[A-Z0-9]+_\d+$")


def _project_roots() -> list[Path]:
    """The nearest folder with a Pulumi.yaml at or above the working directory, and this package's root."""
    roots = []
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "Pulumi.yaml").is_file():
            roots.append(folder)
            break
    package_root = Path(__file__).resolve().parents[2]
    if (package_root / "Pulumi.yaml").is_file() and package_root not in roots:
        roots.append(package_root)
    return roots


def find_checkov(checkov_path: str | None = None) -> str | None:
    """The checkov executable: `checkov_path`, else $INFERSTACK_CHECKOV, else the project's tool venv, else PATH.

    An explicit path (argument or environment) that is not an executable file gives None rather than
    falling back to another checkov: the caller asked for that one.
    """
    explicit = checkov_path or os.environ.get(CHECKOV_ENV)
    if explicit:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    for root in _project_roots():
        candidate = root / TOOL_PATH
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("checkov")


def _checkov_resource_names(manifests: list[dict[str, Any]]) -> dict[str, str]:
    """checkov's resource names (`Kind.namespace.name`) -> ours (`Kind/namespace/name`)."""
    names = {}
    for obj in manifests:
        metadata = obj.get("metadata") or {}
        names[f"{obj.get('kind')}.{metadata.get('namespace') or 'default'}.{metadata.get('name')}"] = (
            resource_id(obj)
        )
    return names


def _our_resource(checkov_resource: str, names: dict[str, str]) -> str:
    if checkov_resource in names:
        return names[checkov_resource]
    # Graph checks name the pod a workload makes: Pod.<namespace>.<workload>.<label>-<value>...
    if checkov_resource.startswith("Pod."):
        for theirs, ours in names.items():
            _, _, namespace_and_name = theirs.partition(".")
            if checkov_resource.startswith(f"Pod.{namespace_and_name}."):
                return f"{ours} (its pods)"
    return checkov_resource


def _reports(output: str) -> list[dict[str, Any]]:
    """checkov's JSON: one report, a list of reports (several frameworks), or a bare summary (nothing scanned)."""
    data = json.loads(output)
    reports = data if isinstance(data, list) else [data]
    return [r for r in reports if isinstance(r, dict)]


def run_checkov(
    manifests: list[dict[str, Any]], skips: dict[str, str] | None = None, checkov_path: str | None = None
) -> CheckOutcome:
    """Run checkov's Kubernetes checks on `manifests`; each failed check is a Finding.

    `skips` maps a check id to the reason it does not apply (default CHECKOV_SKIPS); a skip without a
    reason is refused with ValueError. checkov not found is a note: the caller decides whether that fails.
    """
    skips = CHECKOV_SKIPS if skips is None else skips
    for check_id, reason in skips.items():
        if not _CHECK_ID.match(check_id):
            raise ValueError(f"checkov skip {check_id!r} is not a check id such as CKV_K8S_8")
        if not reason or not reason.strip():
            raise ValueError(f"checkov skip {check_id} has no reason: every skip says why")
    executable = find_checkov(checkov_path)
    if executable is None:
        where = checkov_path or os.environ.get(CHECKOV_ENV)
        hint = f"not at {where}" if where else f"not in {TOOL_PATH} nor on PATH; `make tools` installs it"
        return CheckOutcome([], [f"checkov was not run: {hint}"], 0)
    if not manifests:
        return CheckOutcome([], [], 0)
    with tempfile.TemporaryDirectory(prefix="inferstack-checkov-") as tmp:
        (Path(tmp) / "manifests.yaml").write_text(yaml.safe_dump_all(manifests, sort_keys=False))
        command = [
            executable,
            "-d",
            tmp,
            "--framework",
            "kubernetes",
            "-o",
            "json",
            "--compact",
            "--skip-download",
        ]
        if skips:
            command += ["--skip-check", ",".join(sorted(skips))]
        env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return CheckOutcome([Finding(CHECK, "(checkov)", f"checkov could not run: {exc}")], [], 0)
    try:
        reports = _reports(done.stdout)
    except json.JSONDecodeError:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return CheckOutcome(
            [
                Finding(
                    CHECK,
                    "(checkov)",
                    f"checkov exited {done.returncode} without a JSON report: {' | '.join(tail)}",
                )
            ],
            [],
            0,
        )
    names = _checkov_resource_names(manifests)
    findings: list[Finding] = []
    notes: list[str] = []
    scanned = 0
    for report in reports:
        summary = report.get("summary", report)
        scanned += int(summary.get("resource_count", 0))
        if summary.get("parsing_errors"):
            findings.append(
                Finding(
                    CHECK,
                    "(checkov)",
                    f"checkov could not parse {summary['parsing_errors']} manifest file(s)",
                )
            )
        results = report.get("results") or {}
        for failed in results.get("failed_checks", []):
            findings.append(
                Finding(
                    CHECK,
                    _our_resource(failed.get("resource", "?"), names),
                    failed.get("check_name", "?"),
                    failed.get("check_id"),
                )
            )
        for skipped in results.get("skipped_checks", []):
            resource = _our_resource(skipped.get("resource", "?"), names)
            check_id = skipped.get("check_id", "?")
            reason = ((skipped.get("check_result") or {}).get("suppress_comment") or "").strip()
            if not reason or reason == _NO_REASON:
                findings.append(
                    Finding(
                        CHECK,
                        resource,
                        f"skips {check_id} without a reason: write the annotation as {check_id}=<why>",
                        check_id,
                    )
                )
            else:
                notes.append(f"checkov {check_id} skipped on {resource}: {reason}")
    findings.sort(
        key=lambda f: (f.resource, [int(n) if n.isdigit() else n for n in re.split(r"(\d+)", f.rule or "")])
    )
    return CheckOutcome(findings, notes, scanned)
