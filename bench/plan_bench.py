"""Benchmark: `inferstack plan` of every stack file, median of N fresh processes each.

Each run is a new process (`python -m inferstack.cli plan STACK`), so importing the Pulumi SDKs counts, as
it does for a user. For every stack it prints the median wall time and the median CPU time (user + system
of the child process): on a shared machine the wall time follows the other users' load, the CPU time much
less. Target (issue #12): the largest stack's median wall time under 3 s on the 2-core build machine.
For scale, a real `pulumi preview` of a 23-resource Kubernetes stack is reported at 42 s
(pulumi/pulumi#13757).

    .venv/bin/python bench/plan_bench.py [--runs 5] [--stack prod-aws ...]

To compare two versions fairly on a noisy machine, give a second tree (a `git worktree` of the older
commit): the runs alternate between the trees (this, other, this, other, ...) so both see the same load,
and the table adds each tree's medians and the ratio this ÷ other (below 1: this tree is faster).

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/plan_bench.py --runs 7 --against /tmp/before

Exit status: 0 when the largest stack's median wall time in this tree meets the target, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 3.0


@dataclass
class Timings:
    """One tree's timed runs of one stack, in seconds."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def wall_median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


def plan_once(tree: Path, stack: str, out: Path) -> tuple[float, float]:
    """Run `inferstack plan` of `stack` from `tree` in a fresh process: (wall seconds, CPU seconds).

    `python -m` puts the working directory first on sys.path, so the tree's own packages are the ones
    imported, not the editable install's. Raises SystemExit with the plan's stderr if it fails.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "plan", stack, "--out", str(out)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"inferstack plan {stack} in {tree} failed ({done.returncode}):\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def stack_names(tree: Path) -> list[str]:
    return sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (tree / "stacks").glob("Pulumi.*.yaml")
    )


def resource_count(out: Path) -> int:
    return len(json.loads((out / "resources.json").read_text()))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per stack and tree (default 5)")
    parser.add_argument(
        "--stack", action="append", help="only this stack (repeatable); default: every stacks/Pulumi.*.yaml"
    )
    parser.add_argument(
        "--against", type=Path, help="another tree of this repository to compare with, runs interleaved"
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs: give 1 or more")
    if args.against is not None and not (args.against / "inferstack" / "cli.py").is_file():
        parser.error(f"--against {args.against}: not a tree of this repository (no inferstack/cli.py)")
    trees = [ROOT] if args.against is None else [ROOT, args.against.resolve()]
    stacks = args.stack or stack_names(ROOT)
    unknown = sorted(set(stacks) - set(stack_names(ROOT)))
    if unknown:
        parser.error(f"--stack {', '.join(unknown)}: no such stack file in {ROOT / 'stacks'}")

    timings = {(tree, stack): Timings() for tree in trees for stack in stacks}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stack in stacks:
            for i, tree in enumerate(trees):
                out = Path(tmp) / f"{i}-{stack}"
                plan_once(tree, stack, out)  # untimed: warms the page cache and writes the .pyc files
                if tree == ROOT:
                    sizes[stack] = resource_count(out)
            for _ in range(args.runs):
                for i, tree in enumerate(trees):
                    wall, cpu = plan_once(tree, stack, Path(tmp) / f"{i}-{stack}")
                    timings[tree, stack].wall.append(wall)
                    timings[tree, stack].cpu.append(cpu)

    print(f"inferstack plan, median of {args.runs} fresh processes per stack; wall and CPU (user + system)")
    if args.against is None:
        print(f"{'stack':<10} {'resources':>9} {'wall':>8} {'cpu':>8}")
        for stack in stacks:
            t = timings[ROOT, stack]
            print(f"{stack:<10} {sizes[stack]:>9} {t.wall_median:>7.2f}s {t.cpu_median:>7.2f}s")
    else:
        print(f"this tree: {ROOT}\nother:     {trees[1]}   (runs alternate between them)")
        print(
            f"{'stack':<10} {'resources':>9} {'wall this':>10} {'other':>7} {'ratio':>6}"
            f" {'cpu this':>9} {'other':>7} {'ratio':>6}"
        )
        for stack in stacks:
            a, b = timings[ROOT, stack], timings[trees[1], stack]
            print(
                f"{stack:<10} {sizes[stack]:>9} {a.wall_median:>9.2f}s {b.wall_median:>6.2f}s"
                f" {a.wall_median / b.wall_median:>6.2f} {a.cpu_median:>8.2f}s {b.cpu_median:>6.2f}s"
                f" {a.cpu_median / b.cpu_median:>6.2f}"
            )
    largest = max(stacks, key=lambda s: sizes[s])
    t = timings[ROOT, largest]
    print(f"runs of {largest} (this tree): {', '.join(f'{w:.2f}s' for w in t.wall)}")
    met = t.wall_median < TARGET_S
    print(
        f"largest stack {largest} ({sizes[largest]} resources): median {t.wall_median:.2f}s,"
        f" target < {TARGET_S:.2f}s {'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
