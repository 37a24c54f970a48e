"""`inferstack` — offline plan, check and schema for InferStack stack files; validate for manifests made elsewhere.

Exit codes: 0 fine; 1 `check` or `validate` found problems; 2 the stack file, a manifest file given to
`validate` (the message names the file and document) or the command line is wrong, and a bare
`inferstack` with no command (it prints the help: nothing was done, so a script calling it must not
carry on as if it had); 3 a bug in InferStack (INFERSTACK_DEBUG=1 shows the trace). `promote` adds two:
4 the canary breached an SLO (roll back), 5 Prometheus could not be queried (nothing decided).
Bad input never produces a traceback: every problem is listed with its field path and the fix.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from stacks.config import (
    ClusterConfig,
    ConfigError,
    StackConfig,
    Tier,
    json_schema,
    load_stack_file,
    stack_file_json_schema,
)

if TYPE_CHECKING:
    from inferstack.promotion import Measurement, Queries, Verdict

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
        if path.is_dir():
            found = sorted(p.name for p in path.glob("Pulumi.*.yaml"))
            example = path / (found[0] if found else "Pulumi.<stack>.yaml")
            holds = f" (it holds {', '.join(found)})" if found else ""
            raise UsageError(
                f"--stack-file {stack_file}: is a folder, not a stack file{holds}; pass the file, "
                f"e.g. --stack-file {example}"
            )
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
        raise UsageError(
            f"no stack file {path}: known stacks are {', '.join(known) or 'none'}; "
            "for a stack file elsewhere pass --stack-file PATH"
        )
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
    from inferstack.reporting.summary import render_summary

    started = time.perf_counter()
    name, config = _load(args)
    plan = plan_stack(config, name)
    out = Path(args.out) if args.out else _default_out(name)
    written = plan.write(out, render_summary(plan))
    elapsed = time.perf_counter() - started
    print(f"planned stack {name}: {plan.counts()} in {elapsed:.2f}s")
    for path in written:
        print(f"  wrote {path}")
    return EXIT_OK


def _env_dir(flag: str | None, variable: str) -> Path | None:
    """The folder named by the flag (INFERSTACK_CRD_DIR's is --crd-dir), else by the environment variable;
    None when neither names one.

    Nothing is assumed: with neither, check lists what it did not validate (and names `make fetch-schemas`).
    A folder named explicitly that is not there is a UsageError naming where it came from.
    """
    option = "--" + variable.removeprefix("INFERSTACK_").lower().replace("_", "-")
    source, value = (option, flag) if flag else (variable, os.environ.get(variable))
    if not value:
        return None
    path = Path(value)
    if not path.is_dir():
        raise UsageError(
            f"{source}={value}: not a directory. Name an existing folder, run `make fetch-schemas` "
            f"to fetch one into build/upstream, or name none (neither {option} nor {variable}) to list it under Not validated"
        )
    if not any(path.iterdir()):
        # An empty folder would make every custom resource or chart read as "no schema found" (a finding
        # per object) when the truth is that no data was fetched.
        raise UsageError(
            f"{source}={value}: the folder is empty (left by an interrupted fetch?). Run `make fetch-schemas` "
            f"again, or remove the folder to list what it would validate under Not validated"
        )
    return path


def cmd_check(args: argparse.Namespace) -> int:
    from inferstack.planning.plan import plan_stack
    from inferstack.reporting.summary import render_summary
    from inferstack.validation.check import check_plan
    from inferstack.validation.policies import check_policies, render_policies

    name, config = _load(args)
    plan = plan_stack(config, name)
    out = Path(args.out) if args.out else _default_out(name)
    plan.write(out, render_summary(plan))
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


def cmd_validate(args: argparse.Namespace) -> int:
    from inferstack.validation.core import UnsupportedKubernetesVersion, schema_version
    from inferstack.validation.crds import split_cel_summary
    from inferstack.validation.manifest_files import (
        ManifestInputError,
        locations,
        read_manifests,
        render_policy_results,
        validate_manifests,
    )

    try:
        schema_version(args.kubernetes_version)
    except UnsupportedKubernetesVersion as err:
        raise UsageError(f"--kubernetes-version {args.kubernetes_version}: {err}") from None
    try:
        documents = read_manifests([Path(p) for p in args.paths])
    except ManifestInputError as err:
        raise UsageError(str(err)) from None
    tier = Tier(args.tier)
    report, policies = validate_manifests(
        documents,
        args.kubernetes_version,
        tier=tier,
        crd_dir=_env_dir(args.crd_dir, "INFERSTACK_CRD_DIR"),
        checkov_path=args.checkov,
        run_checkov=not args.skip_checkov,
    )
    files = len({d.path for d in documents})
    print(
        f"read {len(documents)} object{'s' if len(documents) != 1 else ''} from {files} "
        f"file{'s' if files != 1 else ''}; Kubernetes {args.kubernetes_version}"
    )
    print(render_policy_results(policies, tier))
    # The per-kind CEL counts say what was validated: they go above the verdict, not under "Not validated".
    cel_counts, report.notes = split_cel_summary(report.notes)
    *body, verdict = report.render().split("\n")
    if cel_counts:
        body += ["Validated:", *(f"  - {line}" for line in cel_counts), ""]
    print("\n".join([*body, verdict]))
    found_in = locations(report, documents)
    if found_in:
        print("\nFound in:")
        print("\n".join(f"  {line}" for line in found_in))
    return EXIT_OK if report.ok else EXIT_FINDINGS


def cmd_diff(args: argparse.Namespace) -> int:
    from inferstack.reporting.diff import DiffError, diff_stack, render_markdown

    name, path = resolve_stack(args.stack, args.stack_file)
    # The project whose git history is compared: the one holding the stack file; for a file kept outside
    # any project, the one we are run in (its code at --base then plans this same file).
    try:
        root = find_project_root(path.resolve().parent)
    except UsageError:
        try:
            root = find_project_root(Path.cwd())
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


def cmd_promote(args: argparse.Namespace) -> int:
    from inferstack import promotion as p

    _, path = resolve_stack(args.stack, args.stack_file)
    objectives = p.Objectives(
        max_error_ratio=args.max_error_ratio,
        max_ttft_p95_seconds=args.max_ttft_p95,
        max_itl_p95_seconds=args.max_itl_p95,
        min_requests=args.min_requests,
        window=args.window,
    )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: cannot read the stack file: {err}") from None
    series = p.VariantSeries(
        namespace=args.namespace or p.namespace_of(text),
        workload=args.workload or p.default_workload(text, args.model, args.variant),
        select_by=p.SelectBy(args.select_by),
    )
    problems = [
        *p.validate_objectives(objectives),
        *p.validate_series(series),
        *p.validate_prometheus_url(args.prometheus),
    ]
    if not 1 <= args.step <= 100:
        problems.append(f"--step {args.step}: a weight step from 1 to 100")
    if problems:
        raise UsageError("; ".join(problems))
    try:
        found = p.read_variant_weights(text, args.model, args.variant)
    except p.YamlError as err:
        raise UsageError(err.located(str(path))) from None
    except p.StackEditError as err:
        raise UsageError(f"{path}: {err}") from None
    weight = found.weights[args.variant]
    client = p.PrometheusClient(args.prometheus, at=args.at)
    try:
        measurement = p.measure(client, series, objectives.window)
    except p.PrometheusError as err:
        print(f"inferstack promote: {err}; nothing decided, the weight stays {weight}", file=sys.stderr)
        return p.EXIT_UNMEASURED
    verdict = p.decide(measurement, objectives, weight, args.step)
    try:
        weights = p.new_weights(found.weights, args.variant, verdict.next_weight)
    except p.StackEditError as err:
        raise UsageError(f"{path}: {args.model}: {err}") from None
    queries = p.queries(series, objectives.window)
    if args.format == "json":
        print(
            json.dumps(_verdict_json(args, verdict, measurement, queries, weights, found.weights), indent=2)
        )
    else:
        print(
            f"{args.model}/{args.variant}: {verdict.decision.value} "
            f"(weight {verdict.weight} -> {verdict.next_weight})\n  {verdict.reason}"
        )
        print(f"  measured in {args.prometheus} over {objectives.window}:")
        for name, promql in vars(queries).items():
            print(f"    {name}: {promql}")
    if args.write and weights != found.weights:
        path.write_text(p.write_weights(text, args.model, weights), encoding="utf-8")
        changes = ", ".join(
            f"{v} {found.weights[v]} -> {w}" for v, w in weights.items() if w != found.weights[v]
        )
        print(f"wrote {path}: {args.model}: {changes}", file=sys.stderr)
    return p.EXIT_ROLLBACK if verdict.decision is p.Decision.ROLLBACK else EXIT_OK


def _verdict_json(
    args: argparse.Namespace,
    verdict: Verdict,
    measurement: Measurement,
    queries: Queries,
    weights: dict[str, int],
    before: dict[str, int],
) -> dict[str, object]:
    from dataclasses import asdict

    return {
        "model": args.model,
        "variant": args.variant,
        "verdict": asdict(verdict),
        "measurement": asdict(measurement),
        "queries": asdict(queries),
        "weights_before": before,
        "weights_after": weights,
        "written": bool(args.write and weights != before),
    }


def cmd_schema(args: argparse.Namespace) -> int:
    if args.markdown:
        from inferstack.reporting.reference import markdown_table

        print(markdown_table())
    elif args.sections:
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
    else:
        print(json.dumps(stack_file_json_schema(), indent=2, sort_keys=True))
    return EXIT_OK


def version() -> str:
    """The installed distribution's version (pyproject.toml's, as pip recorded it)."""
    try:
        return metadata.version("inferstack")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: run `pip install -e .` in the project)"


# Raw: examples keep one command per line; descriptions are wrapped here instead.
_FORMATTER = argparse.RawDescriptionHelpFormatter


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=100)


_EXAMPLES = """\
examples:
  inferstack plan local                        plan stacks/Pulumi.local.yaml into build/plan/local/
  inferstack check onprem                      plan, then validate manifests, chart values and policies
  inferstack diff prod-aws --base origin/main  what this change does to a stack (offline, no credentials)
  inferstack validate rendered/                validate manifests made elsewhere (GitOps folders, overlays)
  inferstack schema > stack-file.schema.json   JSON Schema of a stack file, for an editor
  inferstack promote multi-onprem --model llama-3.1-8b-instruct --variant v2 --write
                                               one SLO-gated step of a canary's weight (Prometheus)

exit codes: 0 fine, 1 `check` or `validate` found problems, 2 bad stack file, manifest file or command line,
3 internal error; promote: 4 roll back (an SLO breached), 5 Prometheus could not be queried
"""

_PLAN_EXAMPLES = """\
examples:
  inferstack plan local
      reads stacks/Pulumi.local.yaml; writes build/plan/local/{resources.json,manifests.yaml,summary.md}
  inferstack plan --stack-file ~/lab/Pulumi.lab.yaml --out /tmp/lab
      a stack file kept anywhere; the stack is named after the file (lab)
"""

_CHECK_EXAMPLES = """\
examples:
  inferstack check onprem
  inferstack check prod-aws --crd-dir ../shared/crds --chart-dir ../shared/charts
  inferstack check local --skip-checkov          checkov is reported as not run
"""

_VALIDATE_EXAMPLES = """\
examples:
  inferstack validate build/plan/local/manifests.yaml
      what `inferstack plan local` wrote
  inferstack validate rendered/dev --crd-dir build/upstream/crds --tier dev
      a cluster.render_yaml_to_directory folder (0-crd/, 1-manifest/): every *.yaml and *.yml under it
  inferstack validate base/ overlays/prod/ --kubernetes-version 1.33 --skip-checkov
"""

_DIFF_EXAMPLES = """\
examples:
  inferstack diff prod-aws --base origin/main
  inferstack diff dev-gcp --base HEAD~1 --format json
  inferstack diff --stack-file ~/lab/Pulumi.lab.yaml --base origin/main
      a file outside the repository: both sides plan this same file, so the report shows what the
      code change does to it
"""

_PROMOTE_EXAMPLES = """\
examples:
  inferstack promote multi-onprem --model llama-3.1-8b-instruct --variant v2 --prometheus http://127.0.0.1:9090
      measure v2 over 10 minutes and print promote / hold / rollback with the queries used
  inferstack promote multi-onprem --model llama-3.1-8b-instruct --variant v2 --step 20 --write
      and write the next weights into stacks/Pulumi.multi-onprem.yaml (comments kept): review them with
      `inferstack diff multi-onprem --base origin/main`, commit, open a pull request

exit codes: 0 promote or hold, 4 rollback (an SLO breached; with --write the variant's weight is now 0),
5 Prometheus could not be queried (nothing decided, nothing written), 2 bad input, 3 internal error
"""

_SCHEMA_EXAMPLES = """\
examples:
  inferstack schema > stack-file.schema.json
      then VS Code (YAML extension) settings.json: "yaml.schemas": {"./stack-file.schema.json": "stacks/Pulumi.*.yaml"}
      or the first line of a stack file: # yaml-language-server: $schema=../stack-file.schema.json
  inferstack schema --sections     the inferstack: values alone, keyed by section (model, serving, ...)
  inferstack schema --markdown     the configuration reference table
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferstack",
        description=_wrap("Offline plan, check and schema for InferStack stack files."),
        epilog=_EXAMPLES,
        formatter_class=_FORMATTER,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def stack_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("stack", nargs="?", help="stack name: reads stacks/Pulumi.STACK.yaml in the project")
        p.add_argument("--stack-file", help="plan this stack file instead")
        p.add_argument("--out", help="plan directory (default: build/plan/STACK)")

    plan = sub.add_parser(
        "plan",
        help="run the stack offline and write resources.json, manifests.yaml, summary.md",
        description=_wrap(
            "Run the stack offline under a recording mock and write resources.json, "
            "manifests.yaml and summary.md."
        ),
        epilog=_PLAN_EXAMPLES,
        formatter_class=_FORMATTER,
    )
    stack_args(plan)
    plan.set_defaults(func=cmd_plan)

    check = sub.add_parser(
        "check",
        help="plan, then validate every manifest, chart values and policies",
        description=_wrap(
            "Plan the stack, then validate every manifest (core kinds, CRDs with their CEL rules, "
            "checkov), chart values and the policy pack. Exit 1 when something fails."
        ),
        epilog=_CHECK_EXAMPLES,
        formatter_class=_FORMATTER,
    )
    stack_args(check)
    check.add_argument("--crd-dir", help="folder of upstream CRD YAML files (default: $INFERSTACK_CRD_DIR)")
    check.add_argument("--chart-dir", help="folder of chart default values (default: $INFERSTACK_CHART_DIR)")
    check.add_argument(
        "--checkov", help="checkov executable (default: $INFERSTACK_CHECKOV, .tools/checkov, PATH)"
    )
    check.add_argument("--skip-checkov", action="store_true", help="do not run checkov (reported as not run)")
    check.set_defaults(func=cmd_check)

    validate = sub.add_parser(
        "validate",
        help="validate Kubernetes manifests made elsewhere (rendered folders, manifests.yaml, overlays)",
        description=_wrap(
            "Validate Kubernetes manifests produced elsewhere (a render_yaml_to_directory folder, "
            "`inferstack plan`'s manifests.yaml, a team's overlay) with check's validators: core kinds, "
            "CRDs (the CRD folder and any CRDs among the inputs), checkov, the scope rule and the policy "
            "pack's rules over Kubernetes objects. Each PATH is a multi-document YAML file or a folder "
            "(every *.yaml and *.yml under it, sorted). Exit 1 when something fails, 2 when an input is "
            "not Kubernetes YAML (the message names the file and document)."
        ),
        epilog=_VALIDATE_EXAMPLES,
        formatter_class=_FORMATTER,
    )
    validate.add_argument("paths", nargs="+", metavar="PATH", help="a YAML file or a folder of them")
    validate.add_argument(
        "--kubernetes-version",
        default=ClusterConfig.model_fields["kubernetes_version"].default,
        help="Kubernetes minor version to validate built-in kinds against (default: %(default)s, the "
        "stack files' default cluster.kubernetes_version)",
    )
    validate.add_argument(
        "--tier",
        choices=[t.value for t in Tier],
        default=Tier.PROD.value,
        help="policy levels of this tier: which policies are mandatory (default: %(default)s)",
    )
    validate.add_argument(
        "--crd-dir", help="folder of upstream CRD YAML files (default: $INFERSTACK_CRD_DIR)"
    )
    validate.add_argument(
        "--checkov", help="checkov executable (default: $INFERSTACK_CHECKOV, .tools/checkov, PATH)"
    )
    validate.add_argument(
        "--skip-checkov", action="store_true", help="do not run checkov (reported as not run)"
    )
    validate.set_defaults(func=cmd_validate)

    diff = sub.add_parser(
        "diff",
        help="plan the stack at a git ref and in the working tree; report added/changed/removed resources, "
        "GPUs, cost and policy findings (offline, no credentials)",
        description=_wrap(
            "Plan the stack at a git ref (by that ref's own code) and in the working tree, and "
            "report the resources added, changed and removed, the GPUs and cost at min and max replicas, and "
            "policy findings. Offline: no credentials, no cluster."
        ),
        epilog=_DIFF_EXAMPLES,
        formatter_class=_FORMATTER,
    )
    diff.add_argument("stack", nargs="?", help="stack name: reads stacks/Pulumi.STACK.yaml in the project")
    diff.add_argument(
        "--stack-file",
        help="compare this stack file (at the base: the same path in the repository; a file outside it is "
        "planned as it is on both sides)",
    )
    diff.add_argument("--base", required=True, help="git ref to compare against, e.g. origin/main")
    diff.add_argument("--format", choices=["markdown", "json"], default="markdown", help="report format")
    diff.set_defaults(func=cmd_diff)

    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of a whole stack file (stacks/Pulumi.<stack>.yaml)",
        description=_wrap(
            "Print the JSON Schema of a whole Pulumi stack file: the top-level keys Pulumi writes, "
            "and under config: every inferstack:<section> key, while other namespaces (kubernetes:, aws:) are "
            "left to their providers. Point an editor's YAML language server at it."
        ),
        epilog=_SCHEMA_EXAMPLES,
        formatter_class=_FORMATTER,
    )
    form = schema.add_mutually_exclusive_group()
    form.add_argument(
        "--sections",
        action="store_true",
        help="only the inferstack: values, keyed by section without the namespace (what the program validates)",
    )
    form.add_argument(
        "--markdown",
        action="store_true",
        help="the configuration reference table (docs/configuration.md) instead",
    )
    schema.set_defaults(func=cmd_schema)

    promote = sub.add_parser(
        "promote",
        help="one SLO-gated step of a canary variant's weight: measure it in Prometheus, then promote, hold or "
        "roll back (--write edits the stack file)",
        description=_wrap(
            "Query Prometheus for a model variant's error rate (5xx share of its /v1 responses), time to "
            "first token p95 and inter-token latency p95 over a window, compare them with the objectives and "
            "print the decision: promote (weight + step, at most 100), hold (not enough traffic) or roll back "
            "(weight 0), naming the breached SLO and the value measured. With --write the weights in the stack "
            "file change (the other variant takes the difference; comments and layout are kept), so "
            "`inferstack diff` shows the step and a pull request carries it. A GitOps step, not a controller: "
            "run it on a schedule (docs/multi-model.md, Promotion)."
        ),
        epilog=_PROMOTE_EXAMPLES,
        formatter_class=_FORMATTER,
    )
    promote.add_argument("stack", nargs="?", help="stack name: reads stacks/Pulumi.STACK.yaml in the project")
    promote.add_argument("--stack-file", help="use this stack file instead")
    promote.add_argument("--model", required=True, help="the model's name in the stack file's models list")
    promote.add_argument("--variant", required=True, help="the canary variant to step")
    promote.add_argument(
        "--step", type=int, default=10, help="weight added on promote (default: %(default)s)"
    )
    promote.add_argument(
        "--prometheus",
        default="http://127.0.0.1:9090",
        help="Prometheus base URL (default: %(default)s, i.e. a `kubectl port-forward` to it)",
    )
    promote.add_argument(
        "--at",
        type=float,
        help="evaluate the window ending at this time, Unix seconds (default: now): replays a past decision",
    )
    promote.add_argument("--write", action="store_true", help="write the new weights into the stack file")
    promote.add_argument("--format", choices=["text", "json"], default="text", help="report format")
    from inferstack.promotion import Objectives  # light: PyYAML and the stack-file reader

    defaults = Objectives()
    slo = promote.add_argument_group("objectives")
    slo.add_argument("--window", default=defaults.window, help="PromQL range measured (default: %(default)s)")
    slo.add_argument(
        "--max-error-ratio",
        type=float,
        default=defaults.max_error_ratio,
        help="largest share of 5xx among the variant's /v1 responses, 0-1 (default: %(default)s)",
    )
    slo.add_argument(
        "--max-ttft-p95",
        type=float,
        default=defaults.max_ttft_p95_seconds,
        help="largest time-to-first-token p95, seconds (default: %(default)s)",
    )
    slo.add_argument(
        "--max-itl-p95",
        type=float,
        default=defaults.max_itl_p95_seconds,
        help="largest inter-token latency p95, seconds (default: %(default)s)",
    )
    slo.add_argument(
        "--min-requests",
        type=int,
        default=defaults.min_requests,
        help="fewer /v1 requests in the window: hold (default: %(default)s)",
    )
    where = promote.add_argument_group("which series are the variant's")
    where.add_argument(
        "--namespace", help="the model servers' namespace (default: the stack file's cluster.namespace)"
    )
    where.add_argument(
        "--workload",
        help="the variant's model-server Deployment name (default: llm-<the model's id>-VARIANT, as the stack "
        "names it)",
    )
    where.add_argument(
        "--select-by",
        choices=["pod", "label"],
        default="pod",
        help="pod: match its pods' names (works with the PodMonitor as it is); label: match "
        "app_kubernetes_io_name (the PodMonitor of a stack with `models` copies it; podTargetLabels) "
        "(default: %(default)s)",
    )
    promote.set_defaults(func=cmd_promote)
    return parser


def _internal_error(err: BaseException) -> str:
    return f"inferstack: internal error ({type(err).__name__}: {err}); rerun with INFERSTACK_DEBUG=1 for the trace"


def main(argv: list[str] | None = None) -> int:
    from stacks import collect_garbage_less_often

    collect_garbage_less_often()  # one command, one process: see stacks.ONE_SHOT_GC_THRESHOLDS
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
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
    except BrokenPipeError:
        # The reader went away (`inferstack plan ... | head -1`): stop quietly, as cat and grep do. Point
        # stdout at devnull so the interpreter's final flush does not raise again (Python docs, "Note on
        # SIGPIPE" in the signal module).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:  # a bug, not bad input: say so briefly, show the trace only on request
        if debug:
            raise
        print(_internal_error(err), file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
