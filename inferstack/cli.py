"""`inferstack` — offline plan, check and schema for InferStack stack files.

Exit codes: 0 fine; 1 `check` found problems; 2 the stack file (or the command line) is wrong.
Bad input never produces a traceback: every problem is listed with its field path and the fix.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from stacks.config import ConfigError, StackConfig, json_schema, load_stack_file

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    """A command line that cannot be carried out; the message says what to do instead."""


def find_project_root(start: Path) -> Path:
    """The nearest directory at or above `start` holding Pulumi.yaml."""
    for directory in (start, *start.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory
    raise UsageError(
        f"no Pulumi.yaml in {start} or above: run inside an InferStack project, or pass --stack-file PATH"
    )


def resolve_stack(stack: str | None, stack_file: str | None) -> tuple[str, Path]:
    """(stack name, stack file path) from the positional STACK and/or --stack-file."""
    if stack_file:
        path = Path(stack_file)
        if not path.is_file():
            raise UsageError(f"--stack-file {stack_file}: no such file")
        name = stack or path.name.removeprefix("Pulumi.").removesuffix(".yaml").removesuffix(".yml")
        return name, path
    if not stack:
        raise UsageError("name a stack (e.g. `inferstack plan local`) or pass --stack-file PATH")
    root = find_project_root(Path.cwd())
    path = root / "stacks" / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(
            p.name.removeprefix("Pulumi.").removesuffix(".yaml")
            for p in (root / "stacks").glob("Pulumi.*.yaml")
        )
        raise UsageError(f"no stack file {path}: known stacks are {', '.join(known) or 'none'}")
    return stack, path


def _default_out(stack: str) -> Path:
    try:
        return find_project_root(Path.cwd()) / "build" / "plan" / stack
    except UsageError:
        return Path.cwd() / "build" / "plan" / stack


def _load(args: argparse.Namespace) -> tuple[str, StackConfig]:
    name, path = resolve_stack(args.stack, args.stack_file)
    return name, load_stack_file(path)


def cmd_plan(args: argparse.Namespace) -> int:
    from inferstack.planning.plan import plan_stack

    started = time.perf_counter()
    name, config = _load(args)
    plan = plan_stack(config, name)
    out = Path(args.out) if args.out else _default_out(name)
    written = plan.write(out)
    elapsed = time.perf_counter() - started
    print(f"planned stack {name}: {len(plan.recording.resources)} resources in {elapsed:.2f}s")
    for path in written:
        print(f"  wrote {path}")
    return EXIT_OK


def _env_dir(flag: str | None, variable: str) -> Path | None:
    value = flag or os.environ.get(variable)
    if not value:
        return None
    path = Path(value)
    if not path.is_dir():
        raise UsageError(f"{variable or 'directory'} {value}: not a directory")
    return path


def cmd_check(args: argparse.Namespace) -> int:
    from inferstack.planning.plan import plan_stack
    from inferstack.validation.check import check_plan
    from inferstack.validation.policies import check_policies, render_policies

    name, config = _load(args)
    plan = plan_stack(config, name)
    out = Path(args.out) if args.out else _default_out(name)
    plan.write(out)
    policy_findings = check_policies(plan)
    report = check_plan(
        plan,
        crd_dir=_env_dir(args.crd_dir, "INFERSTACK_CRD_DIR"),
        chart_dir=_env_dir(args.chart_dir, "INFERSTACK_CHART_DIR"),
        checkov_path=args.checkov,
        require_checkov=not args.skip_checkov,
        run_checkov=not args.skip_checkov,
        policy_findings=policy_findings,
    )
    print(render_policies(policy_findings, str(config.tier.value)))
    print(report.render())
    return EXIT_OK if report.ok else EXIT_FINDINGS


def cmd_diff(args: argparse.Namespace) -> int:
    from inferstack.reporting.diff import DiffError, diff_stack, render_markdown

    name, path = resolve_stack(args.stack, args.stack_file)
    try:
        root = find_project_root(path.resolve().parent)
    except UsageError:
        root = Path.cwd()
    try:
        result = diff_stack(root, name, path, args.base)
    except DiffError as err:
        raise UsageError(str(err)) from None
    if args.format == "json":
        print(json.dumps({"stacks": [result.to_json()]}, indent=2, sort_keys=True, default=str))
    else:
        print(render_markdown(result), end="")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    if args.markdown:
        from inferstack.reporting.reference import markdown_table

        print(markdown_table())
    else:
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferstack", description="Offline plan, check and schema for InferStack stack files."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def stack_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("stack", nargs="?", help="stack name: reads stacks/Pulumi.STACK.yaml in the project")
        p.add_argument("--stack-file", help="plan this stack file instead")
        p.add_argument("--out", help="plan directory (default: build/plan/STACK)")

    plan = sub.add_parser(
        "plan", help="run the stack offline and write resources.json, manifests.yaml, summary.md"
    )
    stack_args(plan)
    plan.set_defaults(func=cmd_plan)

    check = sub.add_parser("check", help="plan, then validate every manifest, chart values and policies")
    stack_args(check)
    check.add_argument("--crd-dir", help="folder of upstream CRD YAML files (default: $INFERSTACK_CRD_DIR)")
    check.add_argument("--chart-dir", help="folder of chart default values (default: $INFERSTACK_CHART_DIR)")
    check.add_argument(
        "--checkov", help="checkov executable (default: $INFERSTACK_CHECKOV, .tools/checkov, PATH)"
    )
    check.add_argument("--skip-checkov", action="store_true", help="do not run checkov (reported as not run)")
    check.set_defaults(func=cmd_check)

    diff = sub.add_parser(
        "diff",
        help="plan the stack at a git ref and in the working tree; report added/changed/removed resources, "
        "GPUs, cost and policy findings (offline, no credentials)",
    )
    diff.add_argument("stack", nargs="?", help="stack name: reads stacks/Pulumi.STACK.yaml in the project")
    diff.add_argument("--stack-file", help="compare this stack file (its path at the base is the same)")
    diff.add_argument("--base", required=True, help="git ref to compare against, e.g. origin/main")
    diff.add_argument("--format", choices=["markdown", "json"], default="markdown", help="report format")
    diff.set_defaults(func=cmd_diff)

    schema = sub.add_parser("schema", help="print the JSON Schema of a stack file's inferstack: keys")
    schema.add_argument(
        "--markdown", action="store_true", help="the README's configuration reference table instead"
    )
    schema.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    from stacks import collect_garbage_less_often

    collect_garbage_less_often()  # one command, one process: see stacks.ONE_SHOT_GC_THRESHOLDS
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(os.environ.get("INFERSTACK_DEBUG"))
    try:
        return int(args.func(args))
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_BAD_INPUT
    except (UsageError, ValueError) as err:
        # Component argument validation raises ValueError listing every problem.
        print(f"inferstack: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a bug, not bad input: say so briefly, show the trace only on request
        if debug:
            raise
        print(
            f"inferstack: internal error ({type(err).__name__}: {err}); rerun with INFERSTACK_DEBUG=1 for the trace",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
