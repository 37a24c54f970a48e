"""The launcher against real faults on loopback: a full disk (a small tmpfs), symlinks out of a file://
model folder, a tampered verified record, a published folder written to, reserved names in SHA256SUMS,
credentials and moving revisions in MODEL_URI. Each ends in a clean FetchError (or a settings error)
that names the file or the setting, never a traceback."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from image_helpers import launcher_env, leftovers, make_model, run_launcher

from model_image import cache
from model_image import fetch as fetch_module
from model_image.errors import FetchError, SettingsError
from model_image.fetch import fetch, verify
from model_image.manifest import VERIFIED_NAME, check_files, check_tree, parse_sha256sums, write_sha256sums
from model_image.settings import FetchSettings, load
from model_image.sources import LocalSource
from model_image.uri import parse_model_uri

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- kind 5: a full disk ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a real file system that runs out of space (ENOSPC), mounted for this test only."""
    where = tmp_path / "small-disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> None:
    """Write a file into `folder` until its file system is full (the other writer on a shared volume)."""
    with open(folder / "filler", "ab") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_a_model_bigger_than_the_free_space_is_refused_before_any_download(
    small_disk: Path, tmp_path: Path
) -> None:
    src = make_model(tmp_path / "src", {"w.bin": os.urandom(3 * 1024 * 1024), "config.json": b"{}"})
    reads: list[str] = []

    class Counting(LocalSource):
        def read_range(self, path: str, start: int, end: int, sink: Any) -> None:
            reads.append(path)
            super().read_range(path, start, end, sink)

    with pytest.raises(FetchError, match=r"^MODEL_DIR .* has 2\.0 MiB free but the model is 3\.0 MiB") as err:
        fetch(parse_model_uri(str(src)), small_disk, source=Counting(src))
    assert f"({3 * 1024 * 1024 + 2} bytes in 2 files)" in str(err.value)
    assert "serving.model_cache_size" in str(err.value)
    assert reads == [], "nothing may be downloaded into a volume it cannot fit"
    assert leftovers(small_disk) == []


def test_a_full_disk_while_writing_a_file_fails_at_once_naming_it(small_disk: Path, tmp_path: Path) -> None:
    src = make_model(tmp_path / "src", {"w.bin": os.urandom(1024 * 1024), "config.json": b"{}"})
    reads: list[tuple[str, int]] = []

    class OtherWriter(LocalSource):
        """Another pod fills the shared volume between the free-space check and the download."""

        def read_range(self, path: str, start: int, end: int, sink: Any) -> None:
            if not reads:
                fill(small_disk)
            reads.append((path, start))
            super().read_range(path, start, end, sink)

    with pytest.raises(FetchError) as err:
        fetch(parse_model_uri(str(src)), small_disk, source=OtherWriter(src), workers=1, part_size=1 << 30)
    message = str(err.value)
    assert message.startswith(("w.bin: writing bytes", "config.json: writing bytes")), message
    assert "No space left on device" in message and "model cache volume is full" in message
    assert len(reads) == len(set(reads)), f"a full disk is not retried: {reads}"
    assert leftovers(small_disk) == ["filler"], "the half-written download is removed"


def test_a_full_disk_while_writing_the_verified_record_is_a_clean_error(
    small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_model(tmp_path / "src", {"w.bin": os.urandom(100_000)})
    real_download_all = fetch_module.download_all

    def download_then_fill(*args: Any, **kwargs: Any) -> None:
        real_download_all(*args, **kwargs)
        fill(small_disk)

    monkeypatch.setattr(fetch_module, "download_all", download_then_fill)
    with pytest.raises(FetchError, match=rf"^{VERIFIED_NAME}: writing the verified record .* No space left"):
        fetch(parse_model_uri(str(src)), small_disk)
    assert leftovers(small_disk) == ["filler"]


def test_the_launcher_reports_a_full_disk_without_a_traceback(small_disk: Path, tmp_path: Path) -> None:
    src = make_model(tmp_path / "src", {"w.bin": os.urandom(3 * 1024 * 1024)})
    result = run_launcher("fetch", env=launcher_env(MODEL_URI=str(src), MODEL_DIR=str(small_disk)))
    assert result.returncode == 1, result.stderr
    assert "model_image fetch failed: MODEL_DIR" in result.stderr and "MiB free" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_that_is_also_a_folder_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'a' is a file and also the folder of 'a/b'"):
        check_tree(["a", "a/b", "c"])
    with pytest.raises(ValueError, match=r"'x/y' is a file and also the folder of 'x/y/z/w'"):
        check_tree(["x/y/z/w", "x/y"])
    check_tree(["a/b", "a/c", "ab"])


# --- kind 7: the verified cache stays verified -----------------------------------------------------


@pytest.fixture
def fetched(tmp_path: Path) -> tuple[Path, Path]:
    src = make_model(tmp_path / "src", {"w.bin": os.urandom(200_000), "config.json": b'{"a": 1}'})
    result = fetch(parse_model_uri(str(src)), tmp_path / "models")
    return src, result.path


def rewrite_record(folder: Path, change: Any) -> None:
    record_path = folder / VERIFIED_NAME
    os.chmod(folder, 0o755)
    os.chmod(record_path, 0o644)
    record = json.loads(record_path.read_text())
    change(record)
    record_path.write_text(json.dumps(record))


def writable(path: Path) -> Path:
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)
    return path


def test_published_files_and_folders_are_read_only(fetched: tuple[Path, Path]) -> None:
    _, folder = fetched
    for p in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        assert mode == (0o555 if p.is_dir() else 0o444), f"{p}: {oct(mode)}"


def test_a_record_with_a_path_out_of_the_folder_is_refused(fetched: tuple[Path, Path]) -> None:
    _, folder = fetched

    def escape(record: dict[str, Any]) -> None:
        record["files"].append(
            {"path": "../x", "size": 1, "digest": {"algorithm": "sha256", "hex": "0" * 64}}
        )

    rewrite_record(folder, escape)
    with pytest.raises(FetchError, match=r"files\[2\]: unsafe path '\.\./x'"):
        cache.check_verified(folder)
    assert cache.verified_files(folder) is None
    with pytest.raises(FetchError, match=r"unsafe path"):
        verify(folder)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda r: r.update(files="x"), 'has no "files" list'),
        (lambda r: r["files"][0].update(size=-1), "is not a byte count"),
        (lambda r: r["files"][0].update(size=True), "is not a byte count"),
        (lambda r: r["files"][0]["digest"].update(algorithm="md5"), "unknown digest algorithm 'md5'"),
        (lambda r: r["files"][0]["digest"].update(hex="ZZ"), "is not a lower-case sha256 hex digest"),
        (lambda r: r.pop("source"), 'has no "source" string'),
    ],
)
def test_a_malformed_record_is_refused(fetched: tuple[Path, Path], change: Any, why: str) -> None:
    _, folder = fetched
    rewrite_record(folder, change)
    with pytest.raises(FetchError, match=why):
        cache.check_verified(folder)


def test_a_record_of_another_source_is_refused(fetched: tuple[Path, Path]) -> None:
    src, folder = fetched
    rewrite_record(folder, lambda r: r.update(source=f"s3://elsewhere/model@{COMMIT}"))
    with pytest.raises(FetchError, match=r"record names another source"):
        cache.check_verified(folder)
    rewrite_record(folder, lambda r: r.update(source=f"file://{src}"))
    with pytest.raises(FetchError, match=r"recorded for .*, not 's3://b/m'"):
        cache.check_verified(folder, "s3://b/m")


def test_serve_refuses_an_added_file_a_symlink_and_a_changed_small_file(fetched: tuple[Path, Path]) -> None:
    _, folder = fetched
    assert cache.verified_files(folder) is not None
    os.chmod(folder, 0o755)

    (folder / "model-00002.safetensors").write_bytes(b"planted")
    with pytest.raises(FetchError, match=r"model-00002\.safetensors: not in the verified record"):
        cache.check_verified(folder)
    (folder / "model-00002.safetensors").unlink()

    config = writable(folder / "config.json")
    config.write_bytes(b'{"a": 2}')  # same size: the old size-only check let this through
    with pytest.raises(FetchError, match=r"config\.json: sha256 mismatch"):
        cache.check_verified(folder)

    config.unlink()
    config.symlink_to(folder.parent / "elsewhere.json")
    (folder.parent / "elsewhere.json").write_bytes(b'{"a": 1}')
    with pytest.raises(FetchError, match=r"config\.json: not a regular file"):
        cache.check_verified(folder)


def test_big_files_are_sized_at_serve_time_and_hashed_by_verify(fetched: tuple[Path, Path]) -> None:
    _, folder = fetched
    record = cache.check_verified(folder)
    weights = writable(folder / "w.bin")
    data = bytearray(weights.read_bytes())
    data[100_000] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert check_files(folder, record.files, hash_up_to=1000) is None, "big files: size only (cheap)"
    assert check_files(folder, record.files) is not None, "a 200 kB file is hashed by default"
    with pytest.raises(FetchError, match=r"w\.bin: sha256 mismatch"):
        verify(folder)


def test_verify_compares_with_the_sources_manifest_not_the_record(fetched: tuple[Path, Path]) -> None:
    src, folder = fetched
    tampered = b'{"a": 9}'
    writable(folder / "config.json").write_bytes(tampered)
    # The tamperer rewrites the record to agree with the files: the folder agrees with itself...
    rewrite_record(folder, lambda r: r["files"][0]["digest"].update(hex=sha256(tampered)))
    assert cache.check_verified(folder).files[0].path == "config.json"
    # ...but not with the source's SHA256SUMS.
    with pytest.raises(FetchError, match=r"config\.json: recorded as sha256 .* but the manifest of file://"):
        verify(folder)
    # Offline (a bake build): the same comparison against a SHA256SUMS obtained from the source.
    with pytest.raises(FetchError, match=r"config\.json: recorded as sha256 .*/SHA256SUMS says"):
        verify(folder, sums=src / "SHA256SUMS")
    assert parse_sha256sums((src / "SHA256SUMS").read_text(), "s")["config.json"].hex != sha256(tampered)


def test_verify_passes_an_intact_model_online_and_offline(fetched: tuple[Path, Path]) -> None:
    src, folder = fetched
    assert [f.path for f in verify(folder)] == ["config.json", "w.bin"]
    assert [f.path for f in verify(folder, sums=src / "SHA256SUMS")] == ["config.json", "w.bin"]


def test_a_read_only_damaged_cache_is_removed_and_fetched_again(fetched: tuple[Path, Path]) -> None:
    src, folder = fetched
    os.chmod(folder, 0o755)
    (folder / "extra.txt").write_bytes(b"x")
    os.chmod(folder, 0o555)
    again = fetch(parse_model_uri(str(src)), folder.parent)
    assert not again.cached and not (again.path / "extra.txt").exists()
    assert leftovers(folder.parent) == [folder.name]


# --- kind 8: inputs that escape or mislead the launcher --------------------------------------------


def test_a_file_symlink_out_of_the_model_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"token")
    src = make_model(tmp_path / "src", {"config.json": b"{}"})
    (src / "leak.txt").symlink_to(secret)
    (src / "SHA256SUMS").write_text(f"{sha256(b'{}')}  config.json\n{sha256(b'token')}  leak.txt\n")
    with pytest.raises(FetchError, match=r"^leak\.txt: a symlink leads out of the model folder"):
        fetch(parse_model_uri(str(src)), tmp_path / "models")
    assert leftovers(tmp_path / "models") == []


def test_a_folder_symlink_out_of_the_model_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "key.pem").write_bytes(b"pem")
    src = make_model(tmp_path / "src", {"config.json": b"{}"})
    (src / "sub").symlink_to(outside, target_is_directory=True)
    (src / "SHA256SUMS").write_text(f"{sha256(b'{}')}  config.json\n{sha256(b'pem')}  sub/key.pem\n")
    with pytest.raises(FetchError, match=r"^sub/key\.pem: a symlink leads out"):
        fetch(parse_model_uri(str(src)), tmp_path / "models")


def test_a_symlink_inside_the_model_folder_is_followed(tmp_path: Path) -> None:
    src = make_model(tmp_path / "src", {"blobs/abc": b"weights"})
    (src / "w.bin").symlink_to(src / "blobs" / "abc")
    write_sha256sums(src)
    result = fetch(parse_model_uri(str(src)), tmp_path / "models")
    assert (result.path / "w.bin").read_bytes() == b"weights"
    assert not (result.path / "w.bin").is_symlink()


@pytest.mark.parametrize("revision", ["main", "v1.0", "0123456", COMMIT.upper()])
def test_hf_revisions_must_be_commits(revision: str) -> None:
    with pytest.raises(ValueError, match="is not a commit: pin the 40-hex commit sha"):
        parse_model_uri(f"hf://acme/chat@{revision}")
    assert parse_model_uri(f"hf://acme/chat@{COMMIT}").revision == COMMIT


@pytest.mark.parametrize(
    "uri",
    [
        "s3://AKIAEXAMPLE:s3cr3t-value@bucket/models/x",
        "gs://user:s3cr3t-value@bucket/x",
        "s3://s3cr3t-value@bucket/x",
        "file://admin:s3cr3t-value@localhost/models/x",
        "hf://user:s3cr3t-value@acme/chat@" + COMMIT,
        "hf://s3cr3t-value@acme/chat@" + COMMIT,
    ],
)
def test_credentials_in_model_uri_are_refused_and_never_echoed(uri: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        parse_model_uri(uri)
    assert "s3cr3t-value" not in str(err.value)
    assert "credentials" in str(err.value)
    with pytest.raises(SettingsError) as settings_err:
        load(FetchSettings, model_uri=uri, model_dir=str(tmp_path))
    assert "MODEL_URI" in str(settings_err.value) and "s3cr3t-value" not in str(settings_err.value)


@pytest.mark.parametrize(
    "uri", ["s3://bucket/x?AWSAccessKeyId=AKIA&Signature=s3cr3t-value", "gs://bucket/x#s3cr3t-value"]
)
def test_a_query_or_fragment_is_refused_and_never_echoed(uri: str, tmp_path: Path) -> None:
    # A presigned URL pasted as MODEL_URI carries its credentials in the query string.
    with pytest.raises(ValueError) as err:
        parse_model_uri(uri)
    assert "s3cr3t-value" not in str(err.value) and "not supported" in str(err.value)
    result = run_launcher("fetch", env=launcher_env(MODEL_URI=uri, MODEL_DIR=str(tmp_path / "m")))
    assert result.returncode == 2 and "s3cr3t-value" not in result.stderr + result.stdout


def test_the_launcher_never_prints_uri_credentials(tmp_path: Path) -> None:
    uri = "s3://AKIAEXAMPLE:s3cr3t-value@bucket/models/x"
    result = run_launcher("fetch", env=launcher_env(MODEL_URI=uri, MODEL_DIR=str(tmp_path / "m")))
    assert result.returncode == 2
    assert "carries credentials" in result.stderr
    assert "s3cr3t-value" not in result.stderr + result.stdout
    assert not (tmp_path / "m").exists(), "no cache folder or lock file is named after it"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        (".cache/huggingface/x.json", r"\.cache/ is reserved"),
        ("sub/.inferstack-verified.json", r"names starting with \.inferstack"),
        (".inferstack-verified.json", r"names starting with \.inferstack"),
    ],
)
def test_reserved_names_in_sha256sums_are_refused_at_fetch(tmp_path: Path, name: str, why: str) -> None:
    src = make_model(tmp_path / "src", {"config.json": b"{}"})
    (src / name).parent.mkdir(parents=True, exist_ok=True)
    (src / name).write_bytes(b"{}")
    (src / "SHA256SUMS").write_text(f"{sha256(b'{}')}  config.json\n{sha256(b'{}')}  {name}\n")
    with pytest.raises(FetchError, match=rf"SHA256SUMS: .* line 2: unsafe path .*{why}"):
        fetch(parse_model_uri(str(src)), tmp_path / "models")
    assert leftovers(tmp_path / "models") == []


def test_other_dot_files_are_still_model_files(tmp_path: Path) -> None:
    src = make_model(tmp_path / "src", {"config.json": b"{}"})
    (src / ".gitattributes").write_bytes(b"*.bin lfs")
    (src / "SHA256SUMS").write_text(f"{sha256(b'{}')}  config.json\n{sha256(b'*.bin lfs')}  .gitattributes\n")
    result = fetch(parse_model_uri(str(src)), tmp_path / "models")
    assert (result.path / ".gitattributes").read_bytes() == b"*.bin lfs"


def test_the_verify_command_takes_the_sources_sums_offline(
    fetched: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # What the bake stage runs: `python3 -m model_image verify --sums <the source's SHA256SUMS>`.
    from model_image.cli import main

    src, folder = fetched
    monkeypatch.setenv("MODEL_URI", str(src))
    monkeypatch.setenv("MODEL_DIR", str(folder.parent))
    sums = folder.parent.parent / "source.SHA256SUMS"
    sums.write_bytes((src / "SHA256SUMS").read_bytes())
    monkeypatch.setattr(
        "model_image.fetch.open_source", lambda *a: pytest.fail("--sums: the source is not read")
    )
    assert main(["verify", "--sums", str(sums)]) == 0
    tampered = b'{"a": 9}'
    writable(folder / "config.json").write_bytes(tampered)
    rewrite_record(folder, lambda r: r["files"][0]["digest"].update(hex=sha256(tampered)))
    assert main(["verify", "--sums", str(sums)]) != 0
    err = capsys.readouterr().err
    assert "config.json: recorded as sha256" in err and "Traceback" not in err
