"""What a model is made of: file names, sizes and expected digests (SHA256SUMS or the hub's own hashes)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

SUMS_NAME = "SHA256SUMS"
# Written inside a verified model folder; its presence is what "verified" means (see cache.py).
VERIFIED_NAME = ".inferstack-verified.json"

# huggingface_hub's bookkeeping folder under local_dir (its _local_folder.py `.cache/huggingface/`),
# removed by fetch before the folder is published: a model file there would be deleted after its check.
HUB_BOOKKEEPING = ".cache"
#: Files at most this big are re-hashed every time a cached model is used (serve, a cache hit): config,
#: tokenizer and chat-template files steer what the engine does and hash in milliseconds. Weight shards
#: (GBs; 140 GB for a 70B bf16 model at ~1-2 GB/s would outlast the startup probe) get the type and size
#: checks only; `verify` re-hashes everything.
SMALL_FILE_BYTES = 64 * 1024 * 1024
DIGEST_HEX_LENGTH = {"sha256": 64, "git-sha1": 40}

_SUMS_LINE = re.compile(r"^(?P<hex>[0-9a-fA-F]{64}) [ *](?P<path>.+)$")
_HEX = re.compile(r"^[0-9a-f]+$")


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
    """Return `name` as a normalised relative POSIX path, or raise ValueError if it could escape the folder
    or collide with a name the cache reserves (`.inferstack*` at any depth, `.cache/` at the top)."""
    p = PurePosixPath(name)
    if not name or p.is_absolute() or any(part in ("..", "") for part in p.parts) or "\\" in name:
        raise ValueError(f"unsafe path {name!r} (must be relative, without '..')")
    if p.parts[0] == "." or "\0" in name:
        raise ValueError(f"unsafe path {name!r}")
    if any(part.startswith(".inferstack") for part in p.parts):
        raise ValueError(f"unsafe path {name!r}: names starting with .inferstack are the cache's own")
    if p.parts[0] == HUB_BOOKKEEPING:
        raise ValueError(
            f"unsafe path {name!r}: {HUB_BOOKKEEPING}/ is reserved for huggingface_hub's download "
            "bookkeeping and removed before the model is published; move the file out of it"
        )
    return p.as_posix()


def check_tree(paths: list[str]) -> None:
    """Raise ValueError when one path is also a folder of another (`a` beside `a/b`, as S3 keys may be):
    no file system can hold both, so the download would fail half way with a bare OS error."""
    names = set(paths)
    if len(names) != len(paths):
        twice = sorted(p for p in names if paths.count(p) > 1)
        raise ValueError(f"{twice[0]!r} is listed twice")
    for path in sorted(names):
        parent = PurePosixPath(path).parent
        while parent != PurePosixPath("."):
            if parent.as_posix() in names:
                raise ValueError(
                    f"{parent.as_posix()!r} is a file and also the folder of {path!r}; a folder cannot hold "
                    "both: rename one of them in the source (and in SHA256SUMS)"
                )
            parent = parent.parent


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


@dataclass(frozen=True)
class VerifiedRecord:
    """What `fetch` wrote into a folder it verified: the canonical MODEL_URI and every file."""

    source: str
    files: list[FileSpec]


def read_verified(folder: Path) -> VerifiedRecord:
    """Read and validate `folder`'s record as untrusted input, or raise ValueError saying what is wrong.

    Whoever can write the cache can write the record, so it gets the checks a SHA256SUMS gets: a JSON
    object {"source": str, "files": [{"path", "size", "digest": {"algorithm", "hex"}}]}, safe relative
    paths (no '..', no reserved names, no file that is also a folder), sizes as non-negative integers and
    digests of a known algorithm with hex of its length. It says nothing about the files themselves
    (`check_files`) nor whether the source is the one wanted (the caller compares it).
    """
    try:
        text = (folder / VERIFIED_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{VERIFIED_NAME} is missing (the folder was never verified)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{VERIFIED_NAME} cannot be read: {getattr(e, 'strerror', None) or e}") from None
    try:
        record = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{VERIFIED_NAME} is not JSON: {e}") from None
    if not isinstance(record, dict) or not isinstance(record.get("source"), str):
        raise ValueError(f'{VERIFIED_NAME} has no "source" string')
    entries = record.get("files")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f'{VERIFIED_NAME} has no "files" list')
    files = [_record_entry(i, entry) for i, entry in enumerate(entries)]
    try:
        check_tree([f.path for f in files])
    except ValueError as e:
        raise ValueError(f"{VERIFIED_NAME}: {e}") from None
    return VerifiedRecord(record["source"], files)


def _record_entry(index: int, entry: Any) -> FileSpec:
    where = f"{VERIFIED_NAME} files[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("digest"), dict):
        raise ValueError(f"{where}: expected {{path, size, digest: {{algorithm, hex}}}}")
    path, size, digest = entry.get("path"), entry.get("size"), entry["digest"]
    algorithm, hex_ = digest.get("algorithm"), digest.get("hex")
    if not isinstance(path, str):
        raise ValueError(f"{where}: path is not a string")
    try:
        path = safe_relative_path(path)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if type(size) is not int or size < 0:
        raise ValueError(f"{where} ({path}): size {size!r} is not a byte count")
    if algorithm not in DIGEST_HEX_LENGTH:
        raise ValueError(f"{where} ({path}): unknown digest algorithm {algorithm!r}")
    if not isinstance(hex_, str) or len(hex_) != DIGEST_HEX_LENGTH[algorithm] or not _HEX.match(hex_):
        raise ValueError(f"{where} ({path}): {hex_!r} is not a lower-case {algorithm} hex digest")
    return FileSpec(path, size, Digest(algorithm, hex_))


def check_files(folder: Path, files: list[FileSpec], *, hash_up_to: int = SMALL_FILE_BYTES) -> str | None:
    """Check a cached model's folder against its record; the first problem, or None when it matches.

    Checked, all cheap (one lstat per file, one folder walk, small files hashed): every recorded file is
    a regular file (not a symlink, device or folder) of its recorded size, reached through no symlinked
    folder; no file is there that the record does not list (an extra *.safetensors would be loaded by the
    engine, an extra *.py run with trust_remote_code); files of at most `hash_up_to` bytes match their
    digests. Big files are only sized here: `verify` re-hashes them.
    """
    listed = {f.path for f in files}
    for f in files:
        path = folder / f.path
        try:
            st = os.lstat(path)
        except OSError as e:
            return f"{f.path}: {e.strerror or e}"
        if not stat.S_ISREG(st.st_mode):
            return f"{f.path}: not a regular file (a symlink, folder or device)"
        if st.st_size != f.size:
            return f"{f.path}: {st.st_size} bytes, recorded {f.size}"
        if os.path.realpath(path) != os.path.join(os.path.realpath(folder), f.path):
            return f"{f.path}: reached through a symlinked folder"
    for dirpath, dirnames, filenames in os.walk(folder):
        rel_dir = Path(dirpath).relative_to(folder)
        for name in [*filenames, *(d for d in dirnames if os.path.islink(os.path.join(dirpath, d)))]:
            rel = (rel_dir / name).as_posix()
            if rel not in listed and rel != VERIFIED_NAME:
                return f"{rel}: not in the verified record (added after the model was verified)"
    for f in files:
        if f.size <= hash_up_to:
            try:
                got = hash_file(folder / f.path, f.digest, f.size)
            except OSError as e:
                return f"{f.path}: {e.strerror or e}"
            if got != f.digest.hex:
                return f"{f.path}: {f.digest.algorithm} mismatch (expected {f.digest.hex}, got {got})"
    return None
