"""The model cache (MODEL_DIR) layout.

    MODEL_DIR/
      <key>/                    a verified model; exists only after every file matched its digest
        .inferstack-verified.json   what was verified: source URI, files, sizes, digests
        config.json, *.safetensors, tokenizer files, ...
      .<key>.lock               serialises fetches of the same model (flock)
      .<key>.tmp-XXXXXXXX/      a download in progress; renamed to <key>/ when verified, else removed

`<key>` is ModelURI.cache_key(): a readable slug plus 12 hex of sha256(canonical MODEL_URI), so
`fetch` and `serve` agree on the folder from MODEL_URI alone (`python -m model_image path` prints it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from model_image.manifest import FileSpec, read_verified, sizes_match
from model_image.uri import ModelURI


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


def verified_files(folder: Path) -> list[FileSpec] | None:
    """The files of a usable cached model, or None (absent, never verified, or a file gone/resized)."""
    files = read_verified(folder)
    if files is None or sizes_match(folder, files) is not None:
        return None
    return files


def remove_tree(path: Path) -> None:
    """Remove a folder so that no half of it is ever visible under its name: rename first, then delete."""
    if not path.exists():
        return
    doomed = path.with_name(f"{path.name}.removing-{os.getpid()}")
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def remove_stale_tmp(model_dir: Path, key: str) -> list[Path]:
    """Remove leftovers of killed fetches of this model (call with the lock held)."""
    stale = [p for p in model_dir.glob(f"{tmp_prefix(key)}*") if p.is_dir()]
    stale += [p for p in model_dir.glob(f"{key}.removing-*") if p.is_dir()]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
