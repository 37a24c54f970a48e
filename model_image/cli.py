"""`python -m model_image fetch|serve|verify|path|sums`; every setting is an environment variable or a flag."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pydantic_settings import BaseSettings

from model_image import cache
from model_image.errors import LauncherError
from model_image.fetch import fetch, verify
from model_image.manifest import write_sha256sums
from model_image.serve import exec_engine, prepare, shell_line
from model_image.settings import FetchSettings, ServeSettings, env_name, flag_name, load

log = logging.getLogger("model_image")

COMMANDS: dict[str, tuple[type[BaseSettings], str]] = {
    "fetch": (FetchSettings, "download MODEL_URI into MODEL_DIR, verify it, publish it atomically"),
    "serve": (ServeSettings, "exec the engine (vLLM or transformers serve) on the fetched model"),
    "verify": (FetchSettings, "re-hash the cached model against the source's manifest (or --sums)"),
    "path": (FetchSettings, "print the folder where fetch puts MODEL_URI (what serve reads)"),
}


def _add_setting_flags(parser: argparse.ArgumentParser, cls: type[BaseSettings]) -> None:
    for name, info in cls.model_fields.items():
        default = "" if info.is_required() else f" (default: {info.default})"
        parser.add_argument(
            flag_name(name),
            dest=name,
            default=None,
            metavar=env_name(name),
            help=f"{info.description}; env {env_name(name)}{default}",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model_image", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command, (cls, help_text) in COMMANDS.items():
        p = sub.add_parser(command, help=help_text, description=help_text)
        _add_setting_flags(p, cls)
        if command == "serve":
            p.add_argument(
                "--dry-run", action="store_true", help="print the engine command instead of running it"
            )
        if command == "verify":
            p.add_argument(
                "--sums",
                type=Path,
                default=None,
                metavar="PATH",
                help="compare with this SHA256SUMS, copied from the source out of band (a build that cannot "
                "reach the bucket); default: read the source's own manifest",
            )
    sums = sub.add_parser("sums", help="write DIR/SHA256SUMS for the files in DIR (before uploading a model)")
    sums.add_argument("folder", type=Path)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.command == "sums":
        print(write_sha256sums(args.folder))
        return 0
    cls, _ = COMMANDS[args.command]
    values = {name: getattr(args, name) for name in cls.model_fields}
    settings = load(cls, **values)
    assert isinstance(settings, FetchSettings)
    if args.command == "fetch":
        result = fetch(settings.uri, settings.model_dir)
        print(result.path)
        return 0
    if args.command == "path":
        print(cache.model_path(settings.model_dir, settings.uri))
        return 0
    if args.command == "verify":
        folder = cache.model_path(settings.model_dir, settings.uri)
        files = verify(folder, sums=args.sums)
        log.info("%s: %d files match their digests", folder, len(files))
        return 0
    assert isinstance(settings, ServeSettings)
    cmd = prepare(settings, os.environ)
    if args.dry_run:
        print(shell_line(cmd))
        return 0
    exec_engine(cmd)
    return 1  # pragma: no cover - exec does not return


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # azure-core logs every request and response at INFO (azure.core.pipeline.policies.http_logging_policy).
    for noisy in ("botocore", "boto3", "urllib3", "google", "azure", "huggingface_hub", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except LauncherError as e:
        kind = "invalid settings" if e.exit_code == 2 else "failed"
        sep = ":\n" if e.exit_code == 2 else ": "
        print(f"model_image {args.command} {kind}{sep}{e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
