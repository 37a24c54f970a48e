"""What a model is made of: file names, sizes and expected digests (SHA256SUMS or the hub's own hashes)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

SUMS_NAME = "SHA256SUMS"
# Written inside a verified model folder; its presence is what "verified" means (see cache.py).
VERIFIED_NAME = ".inferstack-verified.json"

_SUMS_LINE = re.compile(r"^(?P<hex>[0-9a-fA-F]{64}) [ *](?P<path>.+)$")


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


@dataclass(frozen=True)
class Digest:
    """An expected digest. `git-sha1` is the hub's blob id for small (non-LFS) files."""

    algorithm: str  # "sha256" | "git-sha1"
    hex: str

    def new_hasher(self, size: int) -> Hasher:
        if self.algorithm == "sha256":
            return hashlib.sha256()
        if self.algorithm == "git-sha1":
            h = hashlib.sha1(usedforsecurity=False)
            h.update(b"blob %d\0" % size)
            return h
        raise ValueError(f"unknown digest algorithm {self.algorithm!r}")


@dataclass(frozen=True)
class FileSpec:
    """One file of the model: path relative to the model root, size in bytes, expected digest."""

    path: str
    size: int
    digest: Digest


def safe_relative_path(name: str) -> str:
    """Return `name` as a normalised relative POSIX path, or raise ValueError if it could escape the folder."""
    p = PurePosixPath(name)
    if not name or p.is_absolute() or any(part in ("..", "") for part in p.parts) or "\\" in name:
        raise ValueError(f"unsafe path {name!r} (must be relative, without '..')")
    if p.parts[0] == "." or p.name.startswith(".inferstack"):
        raise ValueError(f"unsafe path {name!r}")
    return p.as_posix()


def parse_sha256sums(text: str, origin: str) -> dict[str, Digest]:
    """Parse `sha256sum` output (`<hex>  <path>` or `<hex> *<path>`), one file per line."""
    digests: dict[str, Digest] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _SUMS_LINE.match(line.rstrip("\r"))
        if not m:
            raise ValueError(f"{origin} line {lineno}: expected '<64 hex>  <path>', got {line[:80]!r}")
        path = m.group("path")
        path = path[2:] if path.startswith("./") else path
        try:
            path = safe_relative_path(path)
        except ValueError as e:
            raise ValueError(f"{origin} line {lineno}: {e}") from None
        if path in digests:
            raise ValueError(f"{origin} line {lineno}: {path!r} is listed twice")
        digests[path] = Digest("sha256", m.group("hex").lower())
    if not digests:
        raise ValueError(f"{origin} lists no files")
    return digests


def hash_file(path: Path, digest: Digest, size: int, chunk: int = 1 << 20) -> str:
    hasher = digest.new_hasher(size)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            hasher.update(block)
    return hasher.hexdigest()


def write_sha256sums(folder: Path) -> Path:
    """Write `folder/SHA256SUMS` for every regular file below `folder` (what `fetch` checks against)."""
    lines = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if not p.is_file() or rel == SUMS_NAME or p.name.startswith("."):
            continue
        lines.append(f"{hash_file(p, Digest('sha256', ''), p.stat().st_size)}  {rel}\n")
    out = folder / SUMS_NAME
    out.write_text("".join(lines))
    return out


def write_verified(folder: Path, source: str, files: list[FileSpec]) -> None:
    record: dict[str, Any] = {"source": source, "files": [asdict(f) for f in files]}
    (folder / VERIFIED_NAME).write_text(json.dumps(record, indent=1, sort_keys=True))


def read_verified(folder: Path) -> list[FileSpec] | None:
    """The file list recorded when `folder` was verified, or None if it is not a verified model."""
    try:
        record = json.loads((folder / VERIFIED_NAME).read_text())
        return [
            FileSpec(f["path"], int(f["size"]), Digest(f["digest"]["algorithm"], f["digest"]["hex"]))
            for f in record["files"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def sizes_match(folder: Path, files: list[FileSpec]) -> str | None:
    """Cheap check of a cached model: the first file that is missing or has the wrong size, else None."""
    for f in files:
        try:
            if os.stat(folder / f.path).st_size != f.size:
                return f.path
        except OSError:
            return f.path
    return None
