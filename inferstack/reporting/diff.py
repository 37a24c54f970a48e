"""`inferstack diff STACK --base REF`: what a change does to a stack, without credentials or a cluster.

Both sides are planned offline by the recording mock: the working tree in this process, and REF in a
temporary git worktree by REF's own code (`python -m inferstack.cli plan` there), so a change to a
component shows up as the resources it changes, exactly as a change to the stack file does. Resources
are matched by URN; a changed resource lists the input paths that differ. Inputs come from the plans'
redacted form, so a secret value never appears (a change to one shows as `[secret]` on both sides).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inferstack.planning.plan import Plan, plan_stack
from stacks.config import ConfigError, StackConfig, cold_start_budget_of, gpu_range, load_stack_file

#: Paths listed per changed resource before the rest are summarised (a chart's values can differ in many).
MAX_PATHS = 12


class DiffError(Exception):
    """The base side cannot be planned (not a git repository, unknown REF, REF's plan failed)."""


@dataclass
class ResourceChange:
    action: str  # add | change | delete
    urn: str
    type: str
    name: str
    paths: list[str] = field(default_factory=list)  # changed input paths (change only)


@dataclass
class Side:
    """One side of the comparison: GPUs and cost at min and max replicas."""

    gpus_min: int
    gpus_max: int
    cost: dict[str, Any] | None = None  # inferstack.reporting.cost's estimate, as plain data
    # Per public model with variants: {"weights": {variant: percent}, "clients": {client id: variant}}.
    traffic: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # Per served model (or "model variant"): {"load_mode", "total", "expected", "items": {item: seconds}}.
    cold_start: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class StackDiff:
    stack: str
    base: str
    changes: list[ResourceChange]
    before: Side | None  # None: the stack does not exist at the base
    after: Side | None  # None: the stack file was deleted
    findings: list[dict[str, Any]] = field(default_factory=list)  # policy findings on the working tree
    note: str | None = None  # how the sides were planned, where it is not the usual way

    def counts(self) -> dict[str, int]:
        return {a: sum(c.action == a for c in self.changes) for a in ("add", "change", "delete")}

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "counts": self.counts()}


def changed_paths(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Dotted paths (list items as [i]) where two input trees differ; a whole subtree counts once."""
    if isinstance(before, dict) and isinstance(after, dict):
        paths: list[str] = []
        for key in sorted(set(before) | set(after)):
            sub = f"{prefix}.{key}" if prefix else str(key)
            if key not in before or key not in after:
                paths.append(sub)
            else:
                paths.extend(changed_paths(before[key], after[key], sub))
        return paths
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            p
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for p in changed_paths(b, a, f"{prefix}[{i}]")
        ]
    return [] if before == after else [prefix or "(value)"]


def compare(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[ResourceChange]:
    """Resources added, changed (with their changed input paths) and deleted, matched by URN."""
    old = {r["urn"]: r for r in before}
    new = {r["urn"]: r for r in after}
    changes = [
        ResourceChange("add", u, new[u]["type"], new[u]["name"]) for u in sorted(new.keys() - old.keys())
    ]
    for urn in sorted(new.keys() & old.keys()):
        paths = changed_paths(old[urn]["inputs"], new[urn]["inputs"])
        if paths:
            changes.append(ResourceChange("change", urn, new[urn]["type"], new[urn]["name"], paths))
    changes += [
        ResourceChange("delete", u, old[u]["type"], old[u]["name"]) for u in sorted(old.keys() - new.keys())
    ]
    return changes


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)


def _side(config: StackConfig, plan: Plan | None = None) -> Side:
    gpus = plan.gpus() if plan is not None else _gpus(config)
    return Side(
        gpus_min=gpus[0],
        gpus_max=gpus[1],
        cost=_cost(config),
        traffic=traffic_of(config),
        cold_start=cold_start_of(config),
    )


def cold_start_of(config: StackConfig) -> dict[str, dict[str, Any]]:
    """Each served model's (or variant's) cold-start budget as plain data (stacks/cold_start.py), keyed by
    "model" or "model variant"."""
    budgets: dict[str, dict[str, Any]] = {}
    for variant in config.served:
        budget = cold_start_budget_of(variant.config)
        key = variant.model_name + (f" {variant.variant}" if variant.variant else "")
        budgets[key] = {
            "load_mode": budget.load_mode.value,
            "total": budget.total_seconds,
            "expected": budget.expected_seconds,
            "items": {item.name: item.seconds for item in budget.items},
        }
    return budgets


def traffic_of(config: StackConfig) -> dict[str, dict[str, dict[str, Any]]]:
    """Each model's variant weights and which API client each variant serves (the sticky assignment the
    AIGatewayRoute's rules encode, components/model_routing.py assign_variants): what a weight step moves."""
    from components.model_routing import assign_variants

    traffic: dict[str, dict[str, dict[str, Any]]] = {}
    for model in config.models or []:
        if not model.variants:
            continue
        weights = {v.name: v.weight for v in model.variants}
        clients = assign_variants(model.name, list(weights.items()), config.serving.api_keys.clients)
        traffic[model.name] = {"weights": weights, "clients": clients}
    return traffic


def _gpus(config: StackConfig) -> tuple[int, int]:
    return gpu_range(config)


def _cost(config: StackConfig) -> dict[str, Any] | None:
    try:
        from inferstack.reporting.cost import estimate_stack_cost
    except ImportError:  # pragma: no cover - the price table ships with the package
        return None
    estimate = estimate_stack_cost(config)
    return asdict(estimate) if estimate is not None else None


def _findings(plan: Plan) -> list[dict[str, Any]]:
    try:
        from inferstack.validation.policies import check_policies
    except ImportError:  # pragma: no cover - the policy pack ships with the package
        return []
    return [asdict(f) for f in check_policies(plan)]


def base_resources(
    root: Path, ref: str, stack: str, stack_file: Path
) -> tuple[list[dict[str, Any]], StackConfig | None] | None:
    """The stack planned by REF's own code in a temporary worktree; None when REF has no such stack file.

    A stack file inside the repository is read as it is at REF (the same path). One outside the
    repository has no past in its history: REF's code plans this same file, so the comparison shows what
    the code change does to it.
    """
    top = _git(root, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise DiffError(
            f"{root} is not in a git repository: run `inferstack diff` inside the project's repository, "
            "whose history --base refers to"
        )
    toplevel = Path(top.stdout.strip()).resolve()
    if _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode != 0:
        raise DiffError(
            f"--base {ref}: no such commit, branch or tag (fetch it first: git fetch origin {ref})"
        )
    # The project may sit in a subfolder of the repository; git paths are relative to the top.
    project = root.resolve().relative_to(toplevel)
    rel = _inside(stack_file, toplevel)
    if rel is not None and _git(root, "cat-file", "-e", f"{ref}:{rel}").returncode != 0:
        return None
    with tempfile.TemporaryDirectory(prefix="inferstack-diff-") as tmp:
        tree, out = Path(tmp) / "tree", Path(tmp) / "plan"
        added = _git(root, "worktree", "add", "--detach", "--quiet", str(tree), ref)
        if added.returncode != 0:
            raise DiffError(f"cannot check out {ref}: {added.stderr.strip()}")
        base_file = tree / rel if rel is not None else stack_file.resolve()
        base_project = tree / project
        try:
            env = {**os.environ, "PYTHONPATH": str(base_project)}
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "inferstack.cli",
                    "plan",
                    stack,
                    "--stack-file",
                    str(base_file),
                    "--out",
                    str(out),
                ],
                cwd=base_project,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise DiffError(f"planning {stack} at {ref} failed:\n{done.stderr.strip()}")
            resources = json.loads((out / "resources.json").read_text(encoding="utf-8"))
            try:
                config: StackConfig | None = load_stack_file(base_file)
            except ConfigError:
                config = None  # the base's stack file predates today's schema: no GPU/cost comparison
        finally:
            _git(root, "worktree", "remove", "--force", str(tree))
    return resources, config


def _inside(path: Path, directory: Path) -> str | None:
    """`path` relative to `directory` (posix), or None when it lies outside."""
    try:
        return path.resolve().relative_to(directory).as_posix()
    except ValueError:
        return None


def outside_note(root: Path, stack_file: Path) -> str | None:
    """Why both sides planned the same file, when the stack file is outside the repository."""
    top = _git(root, "rev-parse", "--show-toplevel")
    if top.returncode != 0 or _inside(stack_file, Path(top.stdout.strip()).resolve()) is not None:
        return None
    return (
        f"{stack_file} is outside the repository, so both sides plan this same file: "
        "the changes below come from the code alone"
    )


def diff_stack(root: Path, stack: str, stack_file: Path, base: str) -> StackDiff:
    """Plan the stack in the working tree and at `base`, and compare."""
    based = base_resources(root, base, stack, stack_file)
    after_plan = plan_stack(load_stack_file(stack_file), stack) if stack_file.is_file() else None
    before_rows, before_config = based if based is not None else ([], None)
    after_rows = after_plan.resources() if after_plan is not None else []
    return StackDiff(
        stack=stack,
        base=base,
        changes=compare(before_rows, after_rows),
        before=_side(before_config) if before_config is not None else None,
        after=_side(after_plan.config, after_plan) if after_plan is not None else None,
        findings=_findings(after_plan) if after_plan is not None else [],
        note=outside_note(root, stack_file),
    )


def render_markdown(d: StackDiff) -> str:
    n = d.counts()
    lines = [
        f"### `{d.stack}` against `{d.base}`: {n['add']} to add, {n['change']} to change, {n['delete']} to delete",
        "",
    ]
    if d.note:
        lines += [f"_{d.note}._", ""]
    lines += _capacity_lines(d)
    if d.changes:
        lines += ["", "| | resource | type | changed inputs |", "|---|---|---|---|"]
        mark = {"add": "+", "change": "~", "delete": "-"}
        for c in d.changes:
            shown = ", ".join(f"`{p}`" for p in c.paths[:MAX_PATHS])
            if len(c.paths) > MAX_PATHS:
                shown += f" and {len(c.paths) - MAX_PATHS} more"
            lines.append(f"| {mark[c.action]} | `{c.name}` | `{c.type}` | {shown} |")
    else:
        lines += ["", "No resource changes."]
    if d.findings:
        lines += ["", "Policy findings (working tree):", ""]
        for f in d.findings:
            level = "mandatory" if f.get("mandatory") else "advisory"
            lines.append(f"- **{f.get('policy')}** ({level}) `{f.get('resource')}`: {f.get('message')}")
    return "\n".join(lines) + "\n"


def _capacity_lines(d: StackDiff) -> list[str]:
    def gpus(s: Side | None) -> str:
        return "none" if s is None else f"{s.gpus_min} to {s.gpus_max}"

    def cost(s: Side | None) -> str:
        if s is None or not s.cost:
            return "n/a"
        c = s.cost
        if c.get("per_hour_max") is None:
            return f"{c['gpu_hours_per_day_min']} to {c['gpu_hours_per_day_max']} GPU-hours/day"
        # The machine priced, and whether prices.yaml had only an estimate for it (not a listed price).
        basis = ", estimated price" if c.get("estimated") else ""
        return (
            f"${c['per_hour_min']:.2f} to ${c['per_hour_max']:.2f}/h "
            f"(${c['per_month_min']:,.0f} to ${c['per_month_max']:,.0f}/month; {c['machine']}{basis})"
        )

    return [
        f"- GPUs (min-max replicas): {gpus(d.before)} -> {gpus(d.after)}",
        f"- estimated GPU cost: {cost(d.before)} -> {cost(d.after)}",
        *_traffic_lines(d),
        *_cold_start_lines(d),
    ]


def _cold_start_lines(d: StackDiff) -> list[str]:
    """One line per model whose cold-start budget changed: the total (the cooldown, hold and rollout
    deadlines follow it), the expected time to first token, and each item that moved."""
    before = d.before.cold_start if d.before is not None else {}
    after = d.after.cold_start if d.after is not None else {}
    lines = []
    for model in list(dict.fromkeys([*after, *before])):
        old, new = before.get(model), after.get(model)
        if old == new:
            continue
        if old is None or new is None:
            was = f"{old['total']} s" if old else "none"
            now = f"{new['total']} s" if new else "none"
            lines.append(f"- cold start of `{model}`: {was} -> {now}")
            continue
        moved = [
            f"{name} {old['items'].get(name, 0)} -> {new['items'].get(name, 0)}"
            for name in dict.fromkeys([*new["items"], *old["items"]])
            if old["items"].get(name, 0) != new["items"].get(name, 0)
        ]
        mode = (
            f"; load_mode {old['load_mode']} -> {new['load_mode']}"
            if old["load_mode"] != new["load_mode"]
            else ""
        )
        lines.append(
            f"- cold start of `{model}`: {old['total']} s -> {new['total']} s (to first token "
            f"{old['expected']} s -> {new['expected']} s{mode}; {', '.join(moved) or 'same items'})"
        )
    return lines


def _traffic_lines(d: StackDiff) -> list[str]:
    """One line per model whose variant weights or client assignment changed: the weights, then the API
    clients that move (each client sticks to one variant; a step moves whole clients)."""
    before = d.before.traffic if d.before is not None else {}
    after = d.after.traffic if d.after is not None else {}
    lines = []
    for model in sorted(set(before) | set(after)):
        old, new = before.get(model, {}), after.get(model, {})
        if old == new:
            continue
        old_w, new_w = old.get("weights", {}), new.get("weights", {})
        weights = ", ".join(
            f"{v} {old_w.get(v, 0)} % -> {new_w.get(v, 0)} %"
            for v in list(dict.fromkeys([*old_w, *new_w]))
            if old_w.get(v) != new_w.get(v)
        )
        old_c, new_c = old.get("clients", {}), new.get("clients", {})
        moved = ", ".join(
            f"{c} {old_c.get(c, '(none)')} -> {new_c.get(c, '(none)')}"
            for c in sorted(set(old_c) | set(new_c))
            if old_c.get(c) != new_c.get(c)
        )
        parts = [p for p in (weights and f"weights {weights}", f"clients moved: {moved or 'none'}") if p]
        lines.append(f"- traffic of `{model}`: {'; '.join(parts) or 'unchanged'}")
    return lines
