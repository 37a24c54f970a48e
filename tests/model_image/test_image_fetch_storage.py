"""`python -m model_image fetch` against S3 (a moto server) and GCS (gcp-storage-emulator) on loopback."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from image_helpers import Store, launcher_env, run_launcher

from model_image.manifest import VERIFIED_NAME


def _fetch(store: Store, uri: str, model_dir: Path, dead: bool = False):  # type: ignore[no-untyped-def]
    env = launcher_env(MODEL_URI=uri, MODEL_DIR=str(model_dir), **(store.dead_env if dead else store.env))
    return run_launcher("fetch", env=env, timeout=120)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _leftovers(model_dir: Path) -> list[str]:
    """What a failed fetch left in MODEL_DIR, lock files aside (they hold no model data)."""
    return sorted(p.name for p in model_dir.iterdir() if not p.name.endswith(".lock"))


def test_fetch_downloads_and_verifies_then_reuses_the_cache(
    store: Store, model_files: Path, tmp_path: Path
) -> None:
    uri = store.upload("good/v1", model_files)
    model_dir = tmp_path / "cache"

    first = _fetch(store, uri, model_dir)
    assert first.returncode == 0, first.stderr
    path = Path(first.stdout.strip())
    where = run_launcher("path", env=launcher_env(MODEL_URI=uri, MODEL_DIR=str(model_dir)))
    assert Path(where.stdout.strip()) == path, "serve must find the folder fetch wrote"
    assert path.parent == model_dir
    expected = {k: v for k, v in _tree(model_files).items() if k != "SHA256SUMS"}
    got = _tree(path)
    record = json.loads(got.pop(VERIFIED_NAME))
    assert got == expected
    assert {f["path"] for f in record["files"]} == set(expected)
    assert _leftovers(model_dir) == [path.name], "no temporary folder may remain"
    assert "MB/s" in first.stderr, "progress is logged with a rate"

    # Warm cache: the store is unreachable now, so any download attempt would fail the command.
    before = {p: os.stat(p).st_mtime_ns for p in path.rglob("*")}
    second = _fetch(store, uri, model_dir, dead=True)
    assert second.returncode == 0, second.stderr
    assert Path(second.stdout.strip()) == path
    assert "cache hit" in second.stderr
    assert {p: os.stat(p).st_mtime_ns for p in path.rglob("*")} == before


def test_corrupt_file_fails_naming_it_and_leaves_no_model(
    store: Store, model_files: Path, tmp_path: Path
) -> None:
    # One bit flipped in the second 16 MiB part of the big shard: caught by the in-order part hashing.
    shard = bytearray((model_files / "extra" / "shard-00001.bin").read_bytes())
    shard[17 * 1024 * 1024] ^= 0x01
    uri = store.upload("corrupt/v1", model_files, replace={"extra/shard-00001.bin": bytes(shard)})
    model_dir = tmp_path / "cache"

    result = _fetch(store, uri, model_dir)

    assert result.returncode == 1
    assert "extra/shard-00001.bin" in result.stderr and "mismatch" in result.stderr
    assert "Traceback" not in result.stderr
    assert _leftovers(model_dir) == []


def test_small_corrupt_file_is_named_too(store: Store, model_files: Path, tmp_path: Path) -> None:
    config = (model_files / "config.json").read_bytes().replace(b'"n_layer": 2', b'"n_layer": 3')
    uri = store.upload("corrupt-config/v1", model_files, replace={"config.json": config})
    model_dir = tmp_path / "cache"

    result = _fetch(store, uri, model_dir)

    assert result.returncode == 1
    assert "config.json: sha256 mismatch" in result.stderr
    assert _leftovers(model_dir) == []


def test_missing_sha256sums_is_an_error(store: Store, tiny_model: Path, tmp_path: Path) -> None:
    store.upload_file("nosums/v1/config.json", tiny_model / "config.json")
    model_dir = tmp_path / "cache"

    result = _fetch(store, f"{store.scheme}://{store.bucket}/nosums/v1", model_dir)

    assert result.returncode == 1
    assert "SHA256SUMS" in result.stderr
    assert _leftovers(model_dir) == []


def test_a_key_that_is_also_a_folder_is_a_clean_error(store: Store, tmp_path: Path) -> None:
    # S3 and GCS hold `a` and `a/b` side by side; no file system can. Refused before any download.
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "b").write_bytes(b"inner")
    (src / "a.file").write_bytes(b"outer")
    sums = hashlib.sha256(b"outer").hexdigest() + "  a\n" + hashlib.sha256(b"inner").hexdigest() + "  a/b\n"
    (src / "SHA256SUMS").write_text(sums)
    store.upload_file("clash/v1/a", src / "a.file")
    store.upload_file("clash/v1/a/b", src / "a" / "b")
    store.upload_file("clash/v1/SHA256SUMS", src / "SHA256SUMS")
    model_dir = tmp_path / "cache"

    result = _fetch(store, f"{store.scheme}://{store.bucket}/clash/v1", model_dir)

    assert result.returncode == 1, result.stderr
    assert "'a' is a file and also the folder of 'a/b'" in result.stderr
    assert "Traceback" not in result.stderr
    assert _leftovers(model_dir) == []


def test_s3_requests_name_the_regional_endpoint_in_us_east_1(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the S3 interface endpoint's private DNS answers: s3.<region>.amazonaws.com, never the global
    # s3.amazonaws.com (which resolves to public addresses the prod pod's egress does not admit).
    from model_image.sources import S3Source

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    source = S3Source("mybucket", "models/x", workers=1)
    url = source.client.generate_presigned_url("get_object", Params={"Bucket": "mybucket", "Key": "k"})
    assert url.startswith("https://mybucket.s3.us-east-1.amazonaws.com/") or url.startswith(
        "https://s3.us-east-1.amazonaws.com/mybucket/"
    ), url
