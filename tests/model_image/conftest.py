"""Fixtures for the model image tests: the tiny chat model, a multi-part model, and storage emulators
(moto for S3, gcp-storage-emulator for GCS) as subprocesses on loopback ports."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from image_helpers import BIN, Store, build_tiny_chat_model, free_port, start_server, stop

from model_image.manifest import write_sha256sums


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat"))


@pytest.fixture(scope="session")
def model_files(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model plus a 20 MB shard in a subfolder: big enough to be fetched in two parts."""
    root = tmp_path_factory.mktemp("model-files")
    shutil.copytree(tiny_model, root, dirs_exist_ok=True)
    (root / "extra").mkdir()
    (root / "extra" / "shard-00001.bin").write_bytes(os.urandom(20 * 1024 * 1024))
    write_sha256sums(root)
    return root


@pytest.fixture(scope="session")
def s3_store() -> Iterator[Store]:
    import boto3

    port = free_port()
    proc = start_server(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], f"http://127.0.0.1:{port}/"
    )
    creds = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env = {**creds, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="models")
    try:
        yield Store(
            "s3",
            "models",
            env,
            {**creds, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"},
            lambda key, path: client.upload_file(str(path), "models", key),
        )
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def gcs_store() -> Iterator[Store]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    port = free_port()
    proc = start_server(
        [
            str(BIN / "gcp-storage-emulator"),
            "start",
            "--host=127.0.0.1",
            f"--port={port}",
            "--in-memory",
            "--default-bucket=models",
            "--quiet",
        ],
        f"http://127.0.0.1:{port}/storage/v1/b",
    )
    endpoint = f"http://127.0.0.1:{port}"
    client = storage.Client(
        project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )
    bucket = client.bucket("models")
    try:
        yield Store(
            "gs",
            "models",
            {"STORAGE_EMULATOR_HOST": endpoint},
            {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{free_port()}"},
            lambda key, path: bucket.blob(key).upload_from_filename(str(path)),
        )
    finally:
        stop(proc)


@pytest.fixture(params=["s3", "gs"])
def store(request: pytest.FixtureRequest) -> Store:
    return request.getfixturevalue("s3_store" if request.param == "s3" else "gcs_store")
