"""The fetch pipeline in-process: URIs and cache keys, SHA256SUMS, parts hashed in order, failure
cleanup, cache reuse and repair, and the hub source (with a fake hub: no downloads)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from image_helpers import leftovers, make_model

from model_image import cache
from model_image.errors import FetchError
from model_image.fetch import fetch, split_parts, verify
from model_image.manifest import VERIFIED_NAME, Digest, parse_sha256sums
from model_image.sources import HFSource, LocalSource, choose_hub_files
from model_image.uri import Scheme, parse_model_uri

# --- MODEL_URI and the cache key -------------------------------------------------------------------


def test_uris_parse() -> None:
    s3 = parse_model_uri("s3://bucket/models/llama/v3/")
    assert (s3.scheme, s3.location, s3.path, s3.canonical) == (
        Scheme.S3,
        "bucket",
        "models/llama/v3",
        "s3://bucket/models/llama/v3",
    )
    hf = parse_model_uri("hf://acme/chat@0123456789abcdef0123456789abcdef01234567")
    assert (hf.location, hf.revision) == ("acme/chat", "0123456789abcdef0123456789abcdef01234567")
    assert parse_model_uri("/mnt/model").canonical == parse_model_uri("file:///mnt/model/").canonical


def test_cache_key_is_stable_and_readable() -> None:
    key = parse_model_uri("s3://bucket/models/llama/v3").cache_key()
    assert key == parse_model_uri("s3://bucket/models/llama/v3/").cache_key()
    assert key.startswith("bucket-models-llama-v3-")
    assert key != parse_model_uri("gs://bucket/models/llama/v3").cache_key()


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["s3", "gs"]),
    st.from_regex(r"[a-z0-9][a-z0-9.-]{2,20}", fullmatch=True),
    st.lists(
        st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=30), max_size=5
    ),
)
def test_cache_keys_are_safe_folder_names_and_distinct(scheme: str, bucket: str, segments: list[str]) -> None:
    segments = [
        s for s in segments if s not in (".", "..") and s.strip() == s and "?" not in s and "#" not in s
    ]
    uri = f"{scheme}://{bucket}/{'/'.join(segments)}"
    try:
        parsed = parse_model_uri(uri)
    except ValueError:
        return
    key = parsed.cache_key()
    assert len(key) <= 80 and "/" not in key and not key.startswith(".")
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in key)
    other = parse_model_uri(f"{scheme}://{bucket}/{'/'.join([*segments, 'x'])}")
    assert other.cache_key() != key


# --- SHA256SUMS ------------------------------------------------------------------------------------


def test_sha256sums_parses_both_sha256sum_modes() -> None:
    text = f"{'a' * 64}  config.json\n{'B' * 64} *model/shard-1.safetensors\n# comment\n\n{'c' * 64}  ./tok.json\n"
    assert parse_sha256sums(text, "SUMS") == {
        "config.json": Digest("sha256", "a" * 64),
        "model/shard-1.safetensors": Digest("sha256", "b" * 64),
        "tok.json": Digest("sha256", "c" * 64),
    }


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (f"{'a' * 64}  ../../etc/passwd", "unsafe path"),
        (f"{'a' * 64}  /etc/passwd", "unsafe path"),
        (f"{'a' * 64}  .inferstack-verified.json", "unsafe path"),
        (f"{'a' * 63}  short.json", "expected '<64 hex>  <path>'"),
        ("", "lists no files"),
    ],
)
def test_sha256sums_rejects_bad_lines(line: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_sha256sums(line, "SUMS")


def test_git_blob_digest_matches_git() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    hasher = Digest("git-sha1", "").new_hasher(6)
    hasher.update(b"hello\n")
    assert hasher.hexdigest() == "ce013625030ba8dba906f756967f9e9ca394464a"


# --- the pipeline ----------------------------------------------------------------------------------


def test_split_parts_cover_the_file_exactly() -> None:
    assert split_parts(0, 10) == []
    assert split_parts(25, 10) == [(0, 10), (10, 20), (20, 25)]
    assert split_parts(20, 10) == [(0, 10), (10, 20)]


def test_many_small_parts_are_reassembled_and_verified(tmp_path: Path) -> None:
    files = {
        "big.bin": os.urandom(1_000_003),
        "sub/dir/a.json": b'{"a": 1}',
        "empty.txt": b"",
    }
    src = make_model(tmp_path / "src", files)
    result = fetch(
        parse_model_uri(str(src)), tmp_path / "models", workers=6, part_size=4096, progress_interval=0.01
    )
    assert not result.cached and result.bytes_downloaded == sum(len(v) for v in files.values())
    for rel, data in files.items():
        assert (result.path / rel).read_bytes() == data
    assert (result.path / VERIFIED_NAME).is_file()
    assert not (result.path / "SHA256SUMS").exists()
    assert [f.path for f in verify(result.path)] == sorted(files)


def test_corruption_in_a_middle_part_names_the_file_and_cleans_up(tmp_path: Path) -> None:
    data = os.urandom(100_000)
    src = make_model(tmp_path / "src", {"weights.bin": data, "config.json": b"{}"})
    corrupt = bytearray(data)
    corrupt[50_000] ^= 0xFF
    (src / "weights.bin").write_bytes(bytes(corrupt))
    model_dir = tmp_path / "models"
    with pytest.raises(FetchError, match=r"^weights\.bin: sha256 mismatch"):
        fetch(parse_model_uri(str(src)), model_dir, workers=4, part_size=8192)
    assert leftovers(model_dir) == []


def test_a_listed_file_missing_from_the_source_is_named(tmp_path: Path) -> None:
    src = make_model(tmp_path / "src", {"a.json": b"1", "b.json": b"2"})
    (src / "b.json").unlink()
    with pytest.raises(FetchError, match=r"^b\.json: listed in SHA256SUMS but not found"):
        fetch(parse_model_uri(str(src)), tmp_path / "models")


class FlakySource(LocalSource):
    """Fails the first read of each range once: the part is retried, and the bytes count only once."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.failed: set[tuple[str, int]] = set()

    def read_range(self, path: str, start: int, end: int, sink: Any) -> None:
        if (path, start) not in self.failed:
            self.failed.add((path, start))
            sink(b"\0" * min(10, end - start))
            raise ConnectionError("connection reset")
        super().read_range(path, start, end, sink)


def test_transient_errors_are_retried(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    src = make_model(tmp_path / "src", {"w.bin": data})
    uri = parse_model_uri(str(src))
    result = fetch(uri, tmp_path / "models", source=FlakySource(src), part_size=16384)
    assert (result.path / "w.bin").read_bytes() == data
    assert result.bytes_downloaded == len(data)


def test_interrupted_downloads_are_removed_and_a_damaged_cache_is_fetched_again(tmp_path: Path) -> None:
    src = make_model(tmp_path / "src", {"w.bin": os.urandom(3000), "c.json": b"{}"})
    uri = parse_model_uri(str(src))
    model_dir = tmp_path / "models"
    key = uri.cache_key()
    stale = model_dir / f"{cache.tmp_prefix(key)}killed"
    stale.mkdir(parents=True)
    (stale / "w.bin").write_bytes(b"half")

    first = fetch(uri, model_dir)
    assert leftovers(model_dir) == [key]
    assert fetch(uri, model_dir).cached

    (first.path / "w.bin").write_bytes(b"truncated")  # wrong size: the cache is not trusted
    again = fetch(uri, model_dir)
    assert not again.cached
    assert (again.path / "w.bin").read_bytes() == (src / "w.bin").read_bytes()
    assert leftovers(model_dir) == [key]


def test_verify_catches_same_size_corruption(tmp_path: Path) -> None:
    src = make_model(tmp_path / "src", {"w.bin": b"abcdef"})
    result = fetch(parse_model_uri(str(src)), tmp_path / "models")
    (result.path / "w.bin").write_bytes(b"abcdeF")
    with pytest.raises(FetchError, match=r"w\.bin: sha256 mismatch"):
        verify(result.path)


# --- the hub source, with a fake hub ---------------------------------------------------------------


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class FakeHub:
    commit = "0123456789abcdef0123456789abcdef01234567"

    def __init__(
        self, files: dict[str, bytes], lfs: set[str], served: dict[str, bytes] | None = None
    ) -> None:
        self.files, self.lfs = files, lfs
        self.served = served or files
        self.downloaded: list[str] = []

    def model_info(self, repo: str, revision: str, files_metadata: bool) -> Any:
        assert files_metadata
        siblings = []
        for name, data in self.files.items():
            lfs = (
                SimpleNamespace(size=len(data), sha256=hashlib.sha256(data).hexdigest())
                if name in self.lfs
                else None
            )
            siblings.append(
                SimpleNamespace(rfilename=name, size=len(data), blob_id=git_blob_sha1(data), lfs=lfs)
            )
        return SimpleNamespace(sha=self.commit, siblings=siblings)

    def download(self, repo_id: str, filename: str, revision: str, local_dir: Path) -> str:
        assert revision == self.commit, "files are fetched at the resolved commit"
        self.downloaded.append(filename)
        dest = Path(local_dir) / filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.served[filename])
        (Path(local_dir) / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
        return str(dest)


HUB_FILES = {
    "config.json": b'{"model_type": "gpt2"}',
    "model.safetensors": b"\x00" * 2048,
    "pytorch_model.bin": b"\x01" * 2048,
    "original/consolidated.pth": b"\x02" * 64,
}


def test_hub_fetch_verifies_lfs_and_git_hashes(tmp_path: Path) -> None:
    hub = FakeHub(HUB_FILES, lfs={"model.safetensors", "pytorch_model.bin", "original/consolidated.pth"})
    uri = parse_model_uri(f"hf://acme/tiny@{FakeHub.commit}")
    source = HFSource("acme/tiny", FakeHub.commit, api=hub, download=hub.download)
    result = fetch(uri, tmp_path / "models", source=source)
    assert sorted(hub.downloaded) == ["config.json", "model.safetensors"], "duplicate weight formats skipped"
    assert (result.path / "config.json").read_bytes() == HUB_FILES["config.json"]
    assert not (result.path / ".cache").exists()


def test_hub_file_that_does_not_match_its_hash_fails(tmp_path: Path) -> None:
    served = {**HUB_FILES, "config.json": b'{"model_type": "llama"}'}
    hub = FakeHub(HUB_FILES, lfs={"model.safetensors"}, served=served)
    uri = parse_model_uri(f"hf://acme/tiny@{FakeHub.commit}")
    source = HFSource("acme/tiny", FakeHub.commit, api=hub, download=hub.download)
    with pytest.raises(FetchError, match=r"^config\.json: git-sha1 mismatch"):
        fetch(uri, tmp_path / "models", source=source)
    assert leftovers(tmp_path / "models") == []


def test_choose_hub_files_keeps_other_formats_without_safetensors() -> None:
    assert choose_hub_files(["config.json", "pytorch_model.bin"]) == ["config.json", "pytorch_model.bin"]
    assert choose_hub_files(["a.safetensors", "b.bin", "original/x.pth", "tokenizer.json"]) == [
        "a.safetensors",
        "tokenizer.json",
    ]
