"""`fetch`: download the model into MODEL_DIR, verify every file, publish it with one rename.

Big files are split into parts downloaded in parallel (like boto3's transfer manager); each file is
hashed as its parts land, in order, so verification overlaps the download instead of following it.

The disk is checked before anything is downloaded (free space against the model's size), and every
OS error on the way — a full disk while writing a shard or the verified record, a path that is a file
in one place and a folder in another — ends as one FetchError naming the file, never a traceback. Errors
of the local disk are not retried: writing again does not free space.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from model_image import cache
from model_image.errors import FetchError
from model_image.manifest import (
    SUMS_NAME,
    VERIFIED_NAME,
    FileSpec,
    Hasher,
    check_tree,
    hash_file,
    parse_sha256sums,
    write_verified,
)
from model_image.sources import Source, open_source
from model_image.uri import ModelURI, parse_model_uri

log = logging.getLogger("model_image.fetch")

DEFAULT_WORKERS = 8
PART_SIZE = 16 * 1024 * 1024
ATTEMPTS = 3


@dataclass(frozen=True)
class FetchResult:
    path: Path
    cached: bool
    files: int
    bytes_downloaded: int
    seconds: float


class _Cancelled(Exception):
    pass


class _DiskError(Exception):
    """Writing to the cache volume failed: not retried (the source is fine, the disk is not)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def disk_error(path: str, doing: str, error: OSError) -> FetchError:
    """A FetchError for an OS error on the cache volume: names the file, and says what to do when full."""
    why = error.strerror or str(error)
    hint = ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = (
            "; the model cache volume is full: give it room for the whole model "
            "(serving.model_cache_size, or the volume behind MODEL_DIR)"
        )
    elif error.errno == errno.EROFS:
        hint = "; MODEL_DIR is mounted read-only"
    return FetchError(f"{path}: {doing} failed: {why}{hint}")


def human_bytes(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still use on `folder`'s file system (statvfs f_bavail x f_frsize).

    An emptyDir's sizeLimit is not visible here (the kubelet enforces it by eviction, on the node's disk),
    which is why the stack schema also checks the model's size against serving.model_cache_size.
    """
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def check_free_space(model_dir: Path, files: list[FileSpec]) -> None:
    """Refuse to start a download that cannot fit: better now than after an hour at 99%."""
    needed = sum(f.size for f in files)
    try:
        free = free_bytes(model_dir)
    except OSError as e:
        raise disk_error(str(model_dir), "reading the free space of MODEL_DIR", e) from None
    if needed > free:
        raise FetchError(
            f"MODEL_DIR {model_dir} has {human_bytes(free)} free but the model is {human_bytes(needed)} "
            f"({needed} bytes in {len(files)} files): give the model cache volume room for the whole model "
            "(serving.model_cache_size, or the volume behind MODEL_DIR), or remove other models from it"
        )


class Progress:
    """Bytes done, logged every `interval` seconds and at the end (bytes, percent, rate)."""

    def __init__(self, total: int, files: int, interval: float) -> None:
        self.total, self.files, self.interval = total, files, interval
        self.done = 0
        self.files_done = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fetch-progress", daemon=True)

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n

    def file_done(self) -> None:
        with self._lock:
            self.files_done += 1

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"{self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB ({pct:.0f}%), "
            f"{self.files_done}/{self.files} files, {self.done / 1e6 / elapsed:.1f} MB/s"
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            log.info("fetching: %s", self.line())

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class _FileState:
    """One file being downloaded in parts: hashes the parts in order as they complete."""

    def __init__(self, spec: FileSpec, dest: Path, parts: list[tuple[int, int]]) -> None:
        self.spec, self.dest, self.parts = spec, dest, parts
        self.hasher: Hasher = spec.digest.new_hasher(spec.size)
        self._lock = threading.Lock()
        self._landed: set[int] = set()
        self._next = 0
        self._hashing = False

    def part_landed(self, index: int, cancel: threading.Event) -> bool:
        """Record a landed part; hash what is contiguous. True once the whole file is hashed."""
        with self._lock:
            self._landed.add(index)
            if self._hashing:
                return False
            self._hashing = True
        with open(self.dest, "rb") as f:
            while True:
                with self._lock:
                    if self._next not in self._landed:
                        self._hashing = False
                        return self._next == len(self.parts)
                    start, end = self.parts[self._next]
                if cancel.is_set():
                    raise _Cancelled()
                f.seek(start)
                left = end - start
                while left > 0:
                    block = f.read(min(4 << 20, left))
                    if not block:
                        raise FetchError(f"{self.spec.path}: file shorter than expected while verifying")
                    self.hasher.update(block)
                    left -= len(block)
                with self._lock:
                    self._next += 1


def split_parts(size: int, part_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + part_size, size)) for start in range(0, size, part_size)]


def _check_digest(state: _FileState) -> None:
    got = state.hasher.hexdigest()
    if got != state.spec.digest.hex:
        raise FetchError(
            f"{state.spec.path}: {state.spec.digest.algorithm} mismatch "
            f"(expected {state.spec.digest.hex}, got {got}); the file is corrupt or SHA256SUMS is stale"
        )


def _download_part(
    source: Source, state: _FileState, index: int, progress: Progress, cancel: threading.Event
) -> None:
    start, end = state.parts[index]
    for attempt in range(1, ATTEMPTS + 1):
        written = 0
        try:
            fd = os.open(state.dest, os.O_WRONLY)
        except OSError as e:
            raise disk_error(state.spec.path, f"opening {state.dest}", e) from None
        try:

            def sink(block: bytes, fd: int = fd) -> None:
                nonlocal written
                if cancel.is_set():
                    raise _Cancelled()
                if start + written + len(block) > end:
                    raise OSError("more bytes than the object's listed size (changed while fetching?)")
                view = memoryview(block)
                while view:
                    try:
                        n = os.pwrite(fd, view, start + written)
                    except OSError as e:
                        raise _DiskError(e) from e
                    view = view[n:]
                    written += n
                progress.add(len(block))

            source.read_range(state.spec.path, start, end, sink)
            if written != end - start:
                raise OSError(f"got {written} of {end - start} bytes (object changed or connection cut)")
            break
        except (_Cancelled, FetchError):
            raise
        except _DiskError as e:
            raise disk_error(
                state.spec.path, f"writing bytes {start}-{end} to {state.dest}", e.error
            ) from None
        except Exception as e:
            progress.add(-written)
            if attempt == ATTEMPTS:
                raise FetchError(f"{state.spec.path}: download failed after {ATTEMPTS} attempts: {e}") from e
            log.warning("%s: bytes %d-%d failed (%s); retrying", state.spec.path, start, end, e)
            time.sleep(0.5 * attempt)
        finally:
            os.close(fd)
    try:
        whole = state.part_landed(index, cancel)
    except OSError as e:
        raise disk_error(state.spec.path, f"reading {state.dest} back to hash it", e) from None
    if whole:
        _finish_file(state, progress)


def _finish_file(state: _FileState, progress: Progress) -> None:
    _check_digest(state)
    progress.file_done()


def _download_whole(source: Source, spec: FileSpec, root: Path, progress: Progress) -> None:
    try:
        source.download_file(spec.path, root)
    except FetchError:
        raise
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise disk_error(spec.path, f"writing {root / spec.path}", e) from None
        raise FetchError(f"{spec.path}: download failed: {e}") from e
    except Exception as e:
        raise FetchError(f"{spec.path}: download failed: {e}") from e
    dest = root / spec.path
    try:
        got = hash_file(dest, spec.digest, spec.size) if dest.is_file() else "(missing)"
    except OSError as e:
        raise disk_error(spec.path, f"reading {dest} to hash it", e) from None
    if got != spec.digest.hex:
        raise FetchError(
            f"{spec.path}: {spec.digest.algorithm} mismatch (expected {spec.digest.hex}, got {got})"
        )
    progress.add(spec.size)
    progress.file_done()


def download_all(
    source: Source, files: list[FileSpec], root: Path, *, workers: int, part_size: int, interval: float
) -> None:
    """Download and verify `files` into `root`; raise FetchError naming the first file that failed."""
    cancel = threading.Event()
    total = sum(f.size for f in files)
    with Progress(total, len(files), interval) as progress, ThreadPoolExecutor(workers) as pool:
        futures: dict[Future[None], str] = {}
        for spec in files:
            dest = root / spec.path
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                if source.ranged:
                    with open(dest, "wb") as out:
                        out.truncate(spec.size)
            except OSError as e:
                cancel.set()
                for f in futures:
                    f.cancel()
                raise disk_error(spec.path, f"creating {dest}", e) from None
            if not source.ranged:
                futures[pool.submit(_download_whole, source, spec, root, progress)] = spec.path
                continue
            parts = split_parts(spec.size, part_size)
            state = _FileState(spec, dest, parts)
            if not parts:  # an empty file: nothing to download, still checked
                futures[pool.submit(_finish_file, state, progress)] = spec.path
            for i in range(len(parts)):
                futures[pool.submit(_download_part, source, state, i, progress, cancel)] = spec.path
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            cancel.set()
            for f in pending:
                f.cancel()
            wait(pending)
            errors = [f.exception() for f in failed]
            first = next((e for e in errors if isinstance(e, FetchError)), errors[0])
            if isinstance(first, FetchError):
                raise first
            raise FetchError(f"{futures[failed[0]]}: {first}") from first
        log.info("fetched %s", progress.line())


def fetch(
    uri: ModelURI,
    model_dir: Path,
    *,
    source: Source | None = None,
    workers: int = DEFAULT_WORKERS,
    part_size: int = PART_SIZE,
    progress_interval: float = 5.0,
) -> FetchResult:
    """Make `model_dir/<key>` a verified copy of the model at `uri`; reuse it if it already is one."""
    started = time.monotonic()
    key = uri.cache_key()
    final = cache.model_path(model_dir, uri)
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FetchError(f"MODEL_DIR {model_dir} cannot be created: {e.strerror}") from None

    # A verified folder is immutable once renamed into place, so a hit needs no lock (and no write:
    # a baked image's MODEL_DIR may be read-only).
    cached = cache.verified_files(final, uri.canonical)
    if cached is not None:
        log.info("cache hit: %s is verified (%d files); nothing to download", final, len(cached))
        return FetchResult(final, True, len(cached), 0, time.monotonic() - started)
    if not os.access(model_dir, os.W_OK):
        raise FetchError(f"MODEL_DIR {model_dir} is not writable by uid {os.getuid()}")

    with cache.fetch_lock(model_dir, key):
        cached = cache.verified_files(final, uri.canonical)
        if cached is not None:  # another pod fetched it while we waited for the lock
            log.info("cache hit: %s is verified (%d files); nothing to download", final, len(cached))
            return FetchResult(final, True, len(cached), 0, time.monotonic() - started)
        for stale in cache.remove_stale_tmp(model_dir, key):
            log.info("removed an interrupted download: %s", stale)
        if final.exists():
            log.warning("%s is incomplete or unverified; fetching it again", final)
            cache.remove_tree(final)

        src = source or open_source(uri, workers)
        files = src.plan()
        try:
            check_tree([f.path for f in files])
        except ValueError as e:
            raise FetchError(f"{src.description}: {e}") from None
        total = sum(f.size for f in files)
        check_free_space(model_dir, files)
        log.info("fetching %s: %d files, %.1f MB, into %s", src.description, len(files), total / 1e6, final)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=cache.tmp_prefix(key), dir=model_dir))
        except OSError as e:
            raise disk_error(str(model_dir), "creating a download folder in MODEL_DIR", e) from None
        try:
            download_all(src, files, tmp, workers=workers, part_size=part_size, interval=progress_interval)
            _publish(tmp, final, model_dir, uri, files)
        except BaseException:
            cache.rmtree(tmp)
            raise
    seconds = time.monotonic() - started
    log.info("verified and published %s in %.1f s", final, seconds)
    return FetchResult(final, False, len(files), total, seconds)


def _publish(tmp: Path, final: Path, model_dir: Path, uri: ModelURI, files: list[FileSpec]) -> None:
    """Record what was verified, make it read-only and rename it into place; OS errors name the file."""
    # Leftovers of huggingface_hub's local_dir bookkeeping are not part of the model (nor can a model
    # file live there: manifest.safe_relative_path refuses the name).
    shutil.rmtree(tmp / ".cache", ignore_errors=True)
    try:
        write_verified(tmp, uri.canonical, files)
    except OSError as e:
        raise disk_error(VERIFIED_NAME, f"writing the verified record {tmp / VERIFIED_NAME}", e) from None
    try:
        cache.publish_read_only(tmp)
        cache.fsync_dir(tmp)
        os.rename(tmp, final)
        cache.fsync_dir(model_dir)
    except OSError as e:
        raise disk_error(str(final), "publishing the verified model", e) from None


def verify(folder: Path, *, source: Source | None = None, sums: Path | None = None) -> list[FileSpec]:
    """Re-hash every file of a cached model against the source's own manifest, not only the record.

    The record (what fetch wrote) is checked first as untrusted input (cache.check_verified). Then the
    list of files and their digests must equal what the source says now: `sums`, a SHA256SUMS file
    obtained from the source out of band (for a build that cannot reach it), else the source of the
    record's MODEL_URI itself (its SHA256SUMS, or the hub's hashes at the pinned commit). A record
    rewritten to agree with tampered files therefore fails here. Raises FetchError naming the file.
    """
    record = cache.check_verified(folder)
    if sums is not None:
        try:
            expected = parse_sha256sums(sums.read_text(encoding="utf-8"), str(sums))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise FetchError(f"{SUMS_NAME}: cannot use {sums}: {getattr(e, 'strerror', None) or e}") from None
        origin = str(sums)
    else:
        src = source or open_source(parse_model_uri(record.source), 1)
        planned = src.plan()
        expected = {f.path: f.digest for f in planned}
        sizes = {f.path: f.size for f in planned}
        origin = f"the manifest of {src.description}"
        for f in record.files:
            if f.path in sizes and sizes[f.path] != f.size:
                raise FetchError(f"{f.path}: {f.size} bytes in {folder}, {sizes[f.path]} in {origin}")
    recorded = {f.path: f.digest for f in record.files}
    for path in sorted(set(expected) | set(recorded)):
        if path not in recorded:
            raise FetchError(f"{path}: listed in {origin} but not in {folder}")
        if path not in expected:
            raise FetchError(f"{path}: in {folder} but not listed in {origin}")
        if (expected[path].algorithm, expected[path].hex) != (recorded[path].algorithm, recorded[path].hex):
            raise FetchError(
                f"{path}: recorded as {recorded[path].algorithm} {recorded[path].hex} in {folder}, but "
                f"{origin} says {expected[path].algorithm} {expected[path].hex}"
            )
    for spec in record.files:
        digest = expected[spec.path]
        try:
            got = hash_file(folder / spec.path, digest, spec.size)
        except OSError as e:
            raise FetchError(f"{spec.path}: cannot read it in {folder}: {e.strerror or e}") from None
        if got != digest.hex:
            raise FetchError(f"{spec.path}: {digest.algorithm} mismatch in {folder} (expected {digest.hex})")
    return record.files
