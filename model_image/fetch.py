"""`fetch`: download the model into MODEL_DIR, verify every file, publish it with one rename.

Big files are split into parts downloaded in parallel (like boto3's transfer manager); each file is
hashed as its parts land, in order, so verification overlaps the download instead of following it.
"""

from __future__ import annotations

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
from model_image.manifest import FileSpec, Hasher, hash_file, write_verified
from model_image.sources import Source, open_source
from model_image.uri import ModelURI

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
        fd = os.open(state.dest, os.O_WRONLY)
        try:

            def sink(block: bytes, fd: int = fd) -> None:
                nonlocal written
                if cancel.is_set():
                    raise _Cancelled()
                if start + written + len(block) > end:
                    raise OSError("more bytes than the object's listed size (changed while fetching?)")
                view = memoryview(block)
                while view:
                    n = os.pwrite(fd, view, start + written)
                    view = view[n:]
                    written += n
                progress.add(len(block))

            source.read_range(state.spec.path, start, end, sink)
            if written != end - start:
                raise OSError(f"got {written} of {end - start} bytes (object changed or connection cut)")
            break
        except (_Cancelled, FetchError):
            raise
        except Exception as e:
            progress.add(-written)
            if attempt == ATTEMPTS:
                raise FetchError(f"{state.spec.path}: download failed after {ATTEMPTS} attempts: {e}") from e
            log.warning("%s: bytes %d-%d failed (%s); retrying", state.spec.path, start, end, e)
            time.sleep(0.5 * attempt)
        finally:
            os.close(fd)
    if state.part_landed(index, cancel):
        _finish_file(state, progress)


def _finish_file(state: _FileState, progress: Progress) -> None:
    _check_digest(state)
    progress.file_done()


def _download_whole(source: Source, spec: FileSpec, root: Path, progress: Progress) -> None:
    try:
        source.download_file(spec.path, root)
    except FetchError:
        raise
    except Exception as e:
        raise FetchError(f"{spec.path}: download failed: {e}") from e
    dest = root / spec.path
    got = hash_file(dest, spec.digest, spec.size) if dest.is_file() else "(missing)"
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
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not source.ranged:
                futures[pool.submit(_download_whole, source, spec, root, progress)] = spec.path
                continue
            parts = split_parts(spec.size, part_size)
            with open(dest, "wb") as out:
                out.truncate(spec.size)
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
    cached = cache.verified_files(final)
    if cached is not None:
        log.info("cache hit: %s is verified (%d files); nothing to download", final, len(cached))
        return FetchResult(final, True, len(cached), 0, time.monotonic() - started)
    if not os.access(model_dir, os.W_OK):
        raise FetchError(f"MODEL_DIR {model_dir} is not writable by uid {os.getuid()}")

    with cache.fetch_lock(model_dir, key):
        cached = cache.verified_files(final)
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
        total = sum(f.size for f in files)
        log.info("fetching %s: %d files, %.1f MB, into %s", src.description, len(files), total / 1e6, final)
        tmp = Path(tempfile.mkdtemp(prefix=cache.tmp_prefix(key), dir=model_dir))
        try:
            download_all(src, files, tmp, workers=workers, part_size=part_size, interval=progress_interval)
            # Leftovers of huggingface_hub's local_dir bookkeeping are not part of the model.
            shutil.rmtree(tmp / ".cache", ignore_errors=True)
            write_verified(tmp, uri.canonical, files)
            os.chmod(tmp, 0o755)
            cache.fsync_dir(tmp)
            os.rename(tmp, final)
            cache.fsync_dir(model_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    seconds = time.monotonic() - started
    log.info("verified and published %s in %.1f s", final, seconds)
    return FetchResult(final, False, len(files), total, seconds)


def verify(folder: Path) -> list[FileSpec]:
    """Re-hash every file of a cached model against what was recorded when it was fetched."""
    files = cache.verified_files(folder)
    if files is None:
        raise FetchError(f"{folder} is not a verified model (run fetch)")
    for spec in files:
        got = hash_file(folder / spec.path, spec.digest, spec.size)
        if got != spec.digest.hex:
            raise FetchError(
                f"{spec.path}: {spec.digest.algorithm} mismatch in {folder} (expected {spec.digest.hex})"
            )
    return files
