"""az:// in particular: the URI's rules, the credential the launcher picks, and each Azure failure as one
message naming the blob and the fix (against Azurite on loopback where the emulator can produce it, with
the service's own error codes otherwise). The fetch itself is in test_image_fetch_storage.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from conftest import AZURITE_KEY
from image_helpers import Store, launcher_env, run_launcher

from model_image.errors import FetchError
from model_image.sources import AzureBlobSource, open_source
from model_image.uri import Scheme, parse_model_uri, redact


def test_az_uri_names_account_container_and_prefix() -> None:
    uri = parse_model_uri("az://acmemodels/weights/llama/v1/")
    assert (uri.scheme, uri.location, uri.path) == (Scheme.AZ, "acmemodels/weights", "llama/v1")
    assert uri.canonical == "az://acmemodels/weights/llama/v1"
    assert parse_model_uri("az://acmemodels/weights").canonical == "az://acmemodels/weights"
    # The account is part of the identity: the same container and prefix in two accounts are two models.
    other = parse_model_uri("az://othermodels/weights/llama/v1")
    assert uri.cache_key() != other.cache_key()
    source = open_source(uri, 1)
    assert isinstance(source, AzureBlobSource)
    assert (source.account, source.container, source.prefix) == ("acmemodels", "weights", "llama/v1/")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("az://acmemodels", "names no container; write az://<account>/<container>/<prefix>"),
        ("az://AcmeModels/weights/m", "'AcmeModels' is not an account name"),
        ("az://ab/weights/m", "'ab' is not an account name"),
        ("az://acmemodels:10000/weights/m", "is not an account name"),
        ("az://acmemodels/Weights/m", "'Weights' is not a container name"),
        ("az://acmemodels/we--ights/m", "is not a container name"),
        ("az://acmemodels/$web/m", "is not a container name"),
        ("az://acmemodels/weights/a/../b", "may not contain empty, '.' or '..' segments"),
        ("az://acmemodels/weights/m?sv=2024&sig=hunter2", "(a SAS token) are not supported"),
        ("az://user:hunter2@acmemodels/weights/m", "carries credentials"),
    ],
)
def test_bad_az_uris_are_refused_with_the_form_to_write(raw: str, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_model_uri(raw)
    assert expected in str(info.value)
    assert "hunter2" not in str(info.value), "a SAS signature or a password never reaches a message"


def test_redact_hides_a_sas_token() -> None:
    assert redact("az://acct/c/m?sv=1&sig=abc") == "az://acct/c/m?***"


def test_a_pod_uses_its_workload_identity_on_the_public_blob_endpoint(tmp_path: Path) -> None:
    from azure.identity import WorkloadIdentityCredential

    token = tmp_path / "azure-identity-token"
    token.write_text("header.payload.signature")
    env = {
        "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
        "AZURE_TENANT_ID": "00000000-0000-0000-0000-000000000002",
        "AZURE_FEDERATED_TOKEN_FILE": str(token),
    }
    source = AzureBlobSource("acmemodels", "weights", "llama/v1", env=env)
    container: Any = source._container()
    assert container.url == "https://acmemodels.blob.core.windows.net/weights"
    assert isinstance(source._credential, WorkloadIdentityCredential)


def test_without_workload_identity_the_node_identity_is_never_borrowed() -> None:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    source = AzureBlobSource("acmemodels", "weights", "m", env={})
    source._container()
    assert isinstance(source._credential, DefaultAzureCredential)
    chain = [type(c) for c in source._credential.credentials]
    assert ManagedIdentityCredential not in chain, "IMDS would hand a pod the node's kubelet identity"


def _storage_error(status: int, code: str, cls: type[HttpResponseError] = HttpResponseError) -> Exception:
    error = cls(message=f"Operation returned an invalid status\nErrorCode:{code}")
    error.status_code = status
    error.error_code = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            _storage_error(403, "AuthorizationPermissionMismatch"),
            "'Storage Blob Data Reader' role on the container",
        ),
        (_storage_error(403, "AuthorizationPermissionMismatch"), "admit reading blobs under 'llama/v1/'"),
        (_storage_error(403, "AuthorizationFailure"), "through its private endpoint"),
        (_storage_error(403, "KeyBasedAuthenticationNotPermitted"), "unset AZURE_STORAGE_CONNECTION_STRING"),
        (
            _storage_error(403, "AuthenticationFailed", ClientAuthenticationError),
            "refused the pod's Entra ID token",
        ),
        (_storage_error(404, "ContainerNotFound"), "has no container 'weights'"),
        (_storage_error(404, "BlobNotFound"), "check the prefix 'llama/v1/'"),
        (_storage_error(503, "ServerBusy"), "503 ServerBusy"),
        (
            ClientAuthenticationError(
                "WorkloadIdentityCredential authentication failed: AADSTS70021: No matching"
            ),
            "system:serviceaccount:<namespace>:<service account>",
        ),
        (
            ServiceRequestError("Failed to resolve 'acmemodels.blob.core.windows.net'"),
            "egress to the blob endpoint",
        ),
    ],
)
def test_each_azure_failure_names_the_blob_and_the_fix(error: Exception, expected: str) -> None:
    source = AzureBlobSource("acmemodels", "weights", "llama/v1", env={"AZURE_CLIENT_ID": "cid-1"})
    message = str(source._error(error, "llama/v1/SHA256SUMS"))
    assert message.startswith("SHA256SUMS: cannot read az://acmemodels/weights/llama/v1/SHA256SUMS: ")
    assert expected in message
    assert "\n" not in message


def test_permission_message_names_the_pods_client_id() -> None:
    source = AzureBlobSource("acmemodels", "weights", "m", env={"AZURE_CLIENT_ID": "cid-1"})
    assert "(client id cid-1)" in str(
        source._error(_storage_error(403, "AuthorizationPermissionMismatch"), "k")
    )


def _fetch_az(store: Store, uri: str, tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    settings = {**store.env, **env}
    return run_launcher(
        "fetch", env=launcher_env(MODEL_URI=uri, MODEL_DIR=str(tmp_path / "cache"), **settings)
    )


def test_a_missing_container_is_named(az_store: Store, tmp_path: Path) -> None:
    result = _fetch_az(az_store, "az://devstoreaccount1/nosuch/m/v1", tmp_path)
    assert result.returncode == 1
    assert "has no container 'nosuch'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_prefix_is_named(az_store: Store, tmp_path: Path) -> None:
    result = _fetch_az(az_store, "az://devstoreaccount1/models/not/uploaded", tmp_path)
    assert result.returncode == 1
    assert "check the prefix 'not/uploaded/'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_refused_key_is_a_clean_error(az_store: Store, tmp_path: Path) -> None:
    wrong = "A" * 86 + "=="
    conn = az_store.env["AZURE_STORAGE_CONNECTION_STRING"].replace(AZURITE_KEY, wrong)
    result = _fetch_az(
        az_store, "az://devstoreaccount1/models/x", tmp_path, AZURE_STORAGE_CONNECTION_STRING=conn
    )
    assert result.returncode == 1
    # Azurite answers a wrong key 403 AuthorizationFailure (Azure itself: AuthenticationFailed).
    assert "or the key in AZURE_STORAGE_CONNECTION_STRING is wrong" in result.stderr
    assert wrong not in result.stderr and "Traceback" not in result.stderr


def test_a_connection_string_for_another_account_is_refused(az_store: Store, tmp_path: Path) -> None:
    result = _fetch_az(az_store, "az://acmemodels/models/x", tmp_path)
    assert result.returncode == 1
    assert "is for the account 'devstoreaccount1', not 'acmemodels'" in result.stderr


def test_a_malformed_connection_string_is_named_but_never_shown(tmp_path: Path) -> None:
    source = AzureBlobSource(
        "acmemodels", "weights", "m", env={"AZURE_STORAGE_CONNECTION_STRING": "AccountKey=hunter2"}
    )
    with pytest.raises(FetchError) as info:
        source.plan()
    assert "AZURE_STORAGE_CONNECTION_STRING is not a storage connection string" in str(info.value)
    assert "hunter2" not in str(info.value)
