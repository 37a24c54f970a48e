"""Fixtures for the model image tests: the tiny chat model, a multi-part model, and storage emulators
(moto for S3, gcp-storage-emulator for GCS, Azurite for Azure Blob Storage) as subprocesses on loopback
ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from image_helpers import BIN, REPO_ROOT, Store, build_tiny_chat_model, free_port, start_server, stop

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


#: `make azurite` installs it here from tools/azurite/package-lock.json.
AZURITE_BLOB = REPO_ROOT / "tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
#: Azurite's well-known development account and its published key (Azurite README, "Default Storage
#: Account"; the same for every Azurite). Tests only: a production store refuses shared keys, and the
#: launcher reads it with the pod's workload identity.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_connection_string(port: int) -> str:
    """The emulator's connection string (path-style: the account is the first segment of the path)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    # Every Azurite request without a signature is answered 403, so readiness is the open port.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"azurite-blob exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"azurite-blob did not listen on 127.0.0.1:{port} within {timeout} s")


@pytest.fixture(scope="session")
def az_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    from azure.storage.blob import ContainerClient

    if not AZURITE_BLOB.exists():
        # A failure, not a skip: the az:// fetch is tested only here (as `make test` installs it).
        pytest.fail(f"Azurite is not installed at {AZURITE_BLOB.relative_to(REPO_ROOT)}: run `make azurite`")
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    if not node.startswith("v") or int(node[1:].split(".")[0]) < 20:
        pytest.fail(f"Azurite's blob service needs Node.js 20 or newer (this machine: {node or 'no node'})")
    port = free_port()
    proc = subprocess.Popen(
        [
            str(AZURITE_BLOB),
            "--blobHost=127.0.0.1",
            f"--blobPort={port}",
            f"--location={tmp_path_factory.mktemp('azurite')}",
            # azure-storage-blob 12.31.1 sends x-ms-version 2026-10-06; Azurite 3.37.0 knows versions up to
            # 2026-06-06 and refuses newer ones unless told to skip the check.
            "--skipApiVersionCheck",
            # No telemetry (Azurite collects it by default; the tests have no network), no access log.
            "--disableTelemetry",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc)
        container = ContainerClient.from_connection_string(azurite_connection_string(port), "models")
        container.create_container()

        def upload(key: str, path: Path) -> None:
            with open(path, "rb") as f:
                container.upload_blob(key, f, overwrite=True)

        yield Store(
            "az",
            f"{AZURITE_ACCOUNT}/models",
            {"AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string(port)},
            {"AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string(free_port())},
            upload,
        )
    finally:
        stop(proc)


@pytest.fixture(params=["s3", "gs", "az"])
def store(request: pytest.FixtureRequest) -> Store:
    return request.getfixturevalue({"s3": "s3_store", "gs": "gcs_store", "az": "az_store"}[request.param])
