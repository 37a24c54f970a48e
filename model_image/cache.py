"""The model cache (MODEL_DIR) layout.

    MODEL_DIR/
      <key>/                    a verified model; exists only after every file matched its digest
        .inferstack-verified.json   what was verified: source URI, files, sizes, digests
        config.json, *.safetensors, tokenizer files, ...
      .<key>.lock               serialises fetches of the same model (flock)
      .<key>.tmp-XXXXXXXX/      a download in progress; renamed to <key>/ when verified, else removed

`<key>` is ModelURI.cache_key(): a readable slug plus 12 hex of sha256(canonical MODEL_URI), so
`fetch` and `serve` agree on the folder from MODEL_URI alone (`python -m model_image path` prints it).

A published `<key>/` is read-only (files 0444, folders 0555): the serving container mounts the volume
read-only too, and nothing in the launcher writes to a verified model. Removing one (a damaged cache
fetched again) makes its folders writable first.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from model_image.errors import FetchError
from model_image.manifest import FileSpec, VerifiedRecord, check_files, read_verified
from model_image.uri import ModelURI, parse_model_uri

log = logging.getLogger("model_image.cache")

READ_ONLY_FILE = 0o444
READ_ONLY_DIR = 0o555


def model_path(model_dir: Path, uri: ModelURI) -> Path:
    return model_dir / uri.cache_key()


def tmp_prefix(key: str) -> str:
    return f".{key}.tmp-"


@contextlib.contextmanager
def fetch_lock(model_dir: Path, key: str) -> Iterator[None]:
    """Hold an exclusive lock on one model's cache entry (two pods sharing a volume take turns)."""
    fd = os.open(model_dir / f".{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def check_verified(folder: Path, source: str | None = None) -> VerifiedRecord:
    """The record of a usable cached model, or FetchError saying why `folder` is not one.

    The record is validated as untrusted input (manifest.read_verified), its source must be `source`
    (the canonical MODEL_URI) — or, when the caller passes none, the URI whose cache key is the folder's
    name, which is how `fetch` named it — and the folder must match it (manifest.check_files: file types,
    sizes, nothing extra, small files re-hashed).
    """
    if folder.is_symlink():
        raise FetchError(f"{folder}: is a symlink; fetch publishes a folder (remove it and fetch again)")
    try:
        record = read_verified(folder)
    except ValueError as e:
        raise FetchError(f"{folder}: {e}") from None
    if source is not None and record.source != source:
        raise FetchError(
            f"{folder}: recorded for {record.source!r}, not {source!r} (a folder of another model)"
        )
    try:
        key = parse_model_uri(record.source).cache_key()
    except ValueError:
        key = None
    if key != folder.name:
        raise FetchError(
            f"{folder}: its record names another source; the folder of {record.source!r} is {key}"
        )
    problem = check_files(folder, record.files)
    if problem is not None:
        raise FetchError(f"{folder}: {problem}")
    return record


def verified_files(folder: Path, source: str | None = None) -> list[FileSpec] | None:
    """The files of a usable cached model, or None (absent, never verified, tampered with: the reason is
    logged). `check_verified` raises the reason instead."""
    if not folder.exists() and not folder.is_symlink():
        return None
    try:
        return check_verified(folder, source).files
    except FetchError as e:
        log.warning("not a usable verified model: %s", e)
        return None


def publish_read_only(folder: Path) -> None:
    """Make every file below `folder` 0444 and every folder 0555 (bottom-up, so each stays reachable)."""
    for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), READ_ONLY_FILE, follow_symlinks=False)
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), READ_ONLY_DIR)
    os.chmod(folder, READ_ONLY_DIR)


def rmtree(path: Path) -> None:
    """Delete a folder, also one published read-only (its folders are made writable first; unlinking
    needs write permission on the folder, not the file). Best effort, like shutil's ignore_errors."""
    if path.is_dir() and not path.is_symlink():
        for dirpath, _, _ in os.walk(path):  # never follows symlinks
            with contextlib.suppress(OSError):
                os.chmod(dirpath, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def remove_tree(path: Path) -> None:
    """Remove a folder so that no half of it is ever visible under its name: rename first, then delete."""
    if not path.exists() and not path.is_symlink():
        return
    doomed = path.with_name(f"{path.name}.removing-{os.getpid()}")
    os.rename(path, doomed)
    if doomed.is_symlink():
        doomed.unlink()
        return
    rmtree(doomed)


def remove_stale_tmp(model_dir: Path, key: str) -> list[Path]:
    """Remove leftovers of killed fetches of this model (call with the lock held)."""
    stale = [p for p in model_dir.glob(f"{tmp_prefix(key)}*") if p.is_dir()]
    stale += [p for p in model_dir.glob(f"{key}.removing-*") if p.is_dir()]
    for p in stale:
        rmtree(p)
    return stale


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
