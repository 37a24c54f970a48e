"""Where model files are read from: a folder, S3, GCS, Azure Blob Storage or the Hugging Face hub.

Each source answers two questions: which files make up the model (with their expected digests),
and the bytes of one file (a byte range where the store allows it, so big shards download in parts).
Credentials are never settings: boto3, google-cloud-storage, azure-identity and huggingface_hub find the
pod's own (IRSA / EKS Pod Identity, GKE Workload Identity, Azure Workload Identity, HF_TOKEN_PATH), and
emulators through their usual variables (AWS_ENDPOINT_URL, STORAGE_EMULATOR_HOST,
AZURE_STORAGE_CONNECTION_STRING).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from model_image.errors import FetchError
from model_image.manifest import SUMS_NAME, Digest, FileSpec, parse_sha256sums, safe_relative_path
from model_image.uri import ModelURI, Scheme

log = logging.getLogger("model_image.fetch")

Sink = Callable[[bytes], None]
CHUNK = 1 << 20


class Source(Protocol):
    description: str
    # True: read_range is used (parts in parallel, hashed while they land). False: download_file.
    ranged: bool

    def plan(self) -> list[FileSpec]: ...

    def read_range(self, path: str, start: int, end: int, sink: Sink) -> None:
        """Feed bytes [start, end) of `path` to `sink`, in order."""
        ...

    def download_file(self, path: str, root: Path) -> None:
        """Write `path` to `root / path` (sources with ranged=False)."""
        ...


def open_source(uri: ModelURI, workers: int) -> Source:
    if uri.scheme is Scheme.FILE:
        return LocalSource(Path(uri.path))
    if uri.scheme is Scheme.S3:
        return S3Source(uri.location, uri.path, workers)
    if uri.scheme is Scheme.GS:
        return GCSSource(uri.location, uri.path)
    if uri.scheme is Scheme.AZ:
        account, _, container = uri.location.partition("/")
        return AzureBlobSource(account, container, uri.path)
    assert uri.revision is not None
    return HFSource(uri.location, uri.revision)


def plan_from_listing(digests: dict[str, Digest], sizes: dict[str, int], origin: str) -> list[FileSpec]:
    """Join SHA256SUMS with the store's listing: every listed file must exist; unlisted ones are skipped."""
    missing = sorted(p for p in digests if p not in sizes)
    if missing:
        raise FetchError(f"{missing[0]}: listed in {SUMS_NAME} but not found under {origin}")
    extra = sorted(p for p in sizes if p not in digests and p != SUMS_NAME)
    if extra:
        log.warning("skipping %d file(s) not listed in %s: %s", len(extra), SUMS_NAME, ", ".join(extra[:5]))
    return [FileSpec(p, sizes[p], digests[p]) for p in sorted(digests)]


def _parse_sums(raw: bytes, origin: str) -> dict[str, Digest]:
    try:
        return parse_sha256sums(raw.decode("utf-8"), origin)
    except (UnicodeDecodeError, ValueError) as e:
        raise FetchError(f"{SUMS_NAME}: {e}") from None


class LocalSource:
    """A folder: `file:///models/x` or a mounted volume. Files are copied into the cache and verified.

    Reads stay inside the folder: a listed file that is (or sits below) a symlink resolving outside it is
    refused, so a link to /etc or to the pod's token cannot be fetched as a model file. Links that stay
    inside are followed. The folder named in MODEL_URI may itself be a link (the operator chose it).
    """

    ranged = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"file://{root}"

    def _inside(self, rel: str) -> Path:
        """The real path of `root/rel`, or FetchError when it leaves the root or is not a regular file."""
        real_root = self.root.resolve()
        real = (self.root / rel).resolve()
        if not real.is_relative_to(real_root):
            raise FetchError(
                f"{rel}: a symlink leads out of the model folder {self.root} (to {real}); copy the file "
                "into the folder (cp -L) instead of linking it"
            )
        return real

    def plan(self) -> list[FileSpec]:
        sums = self.root / SUMS_NAME
        try:
            raw = self._inside(SUMS_NAME).read_bytes()
        except OSError as e:
            raise FetchError(f"{SUMS_NAME}: cannot read {sums}: {e.strerror}") from None
        digests = _parse_sums(raw, str(sums))
        sizes = {}
        for rel in digests:
            real = self._inside(rel)
            with contextlib.suppress(OSError):
                st = real.stat()
                if not stat.S_ISREG(st.st_mode):
                    raise FetchError(f"{rel}: not a regular file in {self.root}")
                sizes[rel] = st.st_size
        return plan_from_listing(digests, sizes, str(self.root))

    def read_range(self, path: str, start: int, end: int, sink: Sink) -> None:
        # Checked again at read time (a link could be swapped after plan); O_NOFOLLOW on the resolved
        # path refuses a link put in its place since.
        real = self._inside(path)
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            f.seek(start)
            left = end - start
            while left > 0:
                block = f.read(min(CHUNK, left))
                if not block:
                    raise OSError(f"{path} ended early")
                sink(block)
                left -= len(block)

    def download_file(self, path: str, root: Path) -> None:  # pragma: no cover - ranged source
        raise NotImplementedError


class S3Source:
    """s3://bucket/prefix through boto3 (the pod's role; AWS_ENDPOINT_URL for S3-compatible stores)."""

    ranged = True

    def __init__(self, bucket: str, prefix: str, workers: int) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.description = f"s3://{bucket}/{self.prefix}"
        self.client: Any = boto3.client(
            "s3",
            config=Config(
                max_pool_connections=workers + 4,
                retries={"mode": "standard", "max_attempts": 5},
                # In us-east-1 botocore addresses bucket.s3.amazonaws.com (the global name) unless told
                # otherwise; an S3 interface endpoint's private DNS answers only s3.<region>.amazonaws.com
                # and *.s3.<region>.amazonaws.com (AWS PrivateLink for Amazon S3, "Private DNS"), so a prod
                # pod whose egress is the endpoint's subnets would reach for S3's public addresses.
                s3={"us_east_1_regional_endpoint": "regional"},
            ),
        )

    def plan(self) -> list[FileSpec]:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.prefix + SUMS_NAME
        try:
            raw = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            sizes: dict[str, int] = {}
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            ):
                for obj in page.get("Contents", []):
                    sizes[obj["Key"][len(self.prefix) :]] = int(obj["Size"])
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            raise FetchError(f"{SUMS_NAME}: cannot read s3://{self.bucket}/{key}: {code or e}") from None
        except BotoCoreError as e:
            raise FetchError(f"{SUMS_NAME}: cannot reach S3 for s3://{self.bucket}/{key}: {e}") from None
        return plan_from_listing(_parse_sums(raw, f"s3://{self.bucket}/{key}"), sizes, self.description)

    def read_range(self, path: str, start: int, end: int, sink: Sink) -> None:
        resp = self.client.get_object(
            Bucket=self.bucket, Key=self.prefix + path, Range=f"bytes={start}-{end - 1}"
        )
        body = resp["Body"]
        try:
            while block := body.read(CHUNK):
                sink(block)
        finally:
            body.close()

    def download_file(self, path: str, root: Path) -> None:  # pragma: no cover - ranged source
        raise NotImplementedError


class _RangeWriter:
    """The file-like object google-cloud-storage writes a download into."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def write(self, data: bytes) -> int:
        self.sink(bytes(data))
        return len(data)


class GCSSource:
    """gs://bucket/prefix through google-cloud-storage (Workload Identity; STORAGE_EMULATOR_HOST for tests)."""

    ranged = True

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket_name = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.description = f"gs://{bucket}/{self.prefix}"
        self._local = threading.local()

    def _bucket(self) -> Any:
        # One client per thread: the client's HTTP session is not documented as thread-safe.
        if not hasattr(self._local, "bucket"):
            from google.cloud import storage

            client = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT") or "<none>")
            self._local.bucket = client.bucket(self.bucket_name)
        return self._local.bucket

    def plan(self) -> list[FileSpec]:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as aexc

        key = self.prefix + SUMS_NAME
        try:
            bucket = self._bucket()
            raw = bucket.blob(key).download_as_bytes()
            sizes = {
                b.name[len(self.prefix) :]: int(b.size)
                for b in bucket.client.list_blobs(bucket, prefix=self.prefix)
            }
        except (gexc.GoogleAPIError, aexc.GoogleAuthError) as e:
            raise FetchError(f"{SUMS_NAME}: cannot read gs://{self.bucket_name}/{key}: {e}") from None
        return plan_from_listing(_parse_sums(raw, f"gs://{self.bucket_name}/{key}"), sizes, self.description)

    def read_range(self, path: str, start: int, end: int, sink: Sink) -> None:
        blob = self._bucket().blob(self.prefix + path)
        # We verify sha256 ourselves; raw_download keeps the stored bytes (no transcoding) for ranges.
        blob.download_to_file(_RangeWriter(sink), start=start, end=end - 1, checksum=None, raw_download=True)

    def download_file(self, path: str, root: Path) -> None:  # pragma: no cover - ranged source
        raise NotImplementedError


#: Where `fetch` reads an az:// model: the account's blob endpoint in Azure's public cloud (learn.microsoft.com,
#: "Storage account overview", standard endpoints: https://<account>.blob.core.windows.net). A private
#: endpoint keeps this name (it resolves through privatelink.blob.core.windows.net), so the pod needs no
#: other setting to use one.
AZURE_BLOB_ENDPOINT = "https://{account}.blob.core.windows.net"
#: The emulator override, as the Azure CLI and Azurite's docs name it. A connection string carries the
#: endpoint and a shared key together: Azurite accepts OAuth tokens over HTTPS only, and the SDK refuses to
#: send a bearer token over plain HTTP, so an emulator on loopback is reached with its documented dev key.
#: A production store has shared-key access off (the key is refused: KeyBasedAuthenticationNotPermitted).
AZURE_CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
#: What Azure Workload Identity's mutating webhook sets in every container of a pod labelled
#: azure.workload.identity/use: "true" whose ServiceAccount is annotated azure.workload.identity/client-id
#: (azure-workload-identity docs, "Mutating Admission Webhook"; AZURE_AUTHORITY_HOST too).
WORKLOAD_IDENTITY_ENV = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE")
# Each GET at most 4 MiB: a 16 MiB part streams in 4 MiB responses rather than one body held whole in
# memory per worker (the SDK's first GET is 32 MiB by default: BlobClient's max_single_get_size).
AZURE_GET_SIZE = 4 * 1024 * 1024


def _azure_code(e: BaseException) -> str:
    """The storage service's x-ms-error-code (AuthorizationPermissionMismatch, BlobNotFound...), or ""."""
    code = getattr(e, "error_code", None)
    return str(getattr(code, "value", code) or "")


def _first_line(e: BaseException, limit: int = 400) -> str:
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return text if len(text) <= limit else text[:limit] + "..."


class AzureBlobSource:
    """az://<account>/<container>/<prefix> through azure-storage-blob.

    Credentials: the pod's Azure Workload Identity (WorkloadIdentityCredential, from the variables the
    webhook injects); elsewhere (a build machine baking an image) DefaultAzureCredential without managed
    identity: from a pod, IMDS would hand out the node's kubelet identity, which must never be what reads
    the model. AZURE_STORAGE_CONNECTION_STRING (endpoint and key) is for emulators such as Azurite.
    """

    ranged = True

    def __init__(
        self, account: str, container: str, prefix: str, env: Mapping[str, str] | None = None
    ) -> None:
        self.account = account
        self.container = container
        self.prefix = f"{prefix}/" if prefix else ""
        self.description = f"az://{account}/{container}/{self.prefix}"
        self.env = os.environ if env is None else env
        self.endpoint = AZURE_BLOB_ENDPOINT.format(account=account)
        self._credential: Any = None
        self._lock = threading.Lock()
        self._local = threading.local()

    def _container(self) -> Any:
        # One client per thread, as for GCS, over one credential (it caches the token for all of them).
        if not hasattr(self._local, "container"):
            from azure.storage.blob import BlobServiceClient

            sizes: dict[str, Any] = {
                "max_single_get_size": AZURE_GET_SIZE,
                "max_chunk_get_size": AZURE_GET_SIZE,
            }
            connection = self.env.get(AZURE_CONNECTION_STRING_ENV)
            if connection:
                try:
                    service = BlobServiceClient.from_connection_string(connection, **sizes)
                except ValueError:
                    # Never the string itself: it holds the key.
                    raise FetchError(
                        f"{AZURE_CONNECTION_STRING_ENV} is not a storage connection string; unset it (the pod "
                        "reads with its workload identity) or write AccountName=...;AccountKey=...;BlobEndpoint=..."
                    ) from None
                if service.account_name != self.account:
                    raise FetchError(
                        f"{self.description}: {AZURE_CONNECTION_STRING_ENV} is for the account "
                        f"{service.account_name!r}, not {self.account!r}; name the same account in both"
                    )
                self.endpoint = service.url.rstrip("/")
            else:
                service = BlobServiceClient(self.endpoint, credential=self._token_credential(), **sizes)
            self._local.container = service.get_container_client(self.container)
        return self._local.container

    def _token_credential(self) -> Any:
        with self._lock:
            if self._credential is None:
                if self.env.get("AZURE_FEDERATED_TOKEN_FILE"):
                    from azure.identity import WorkloadIdentityCredential

                    try:
                        # From our environment mapping, which is os.environ in the pod (read here rather than
                        # by the SDK so that a test can hand one in).
                        self._credential = WorkloadIdentityCredential(
                            tenant_id=self.env.get("AZURE_TENANT_ID"),
                            client_id=self.env.get("AZURE_CLIENT_ID"),
                            token_file_path=self.env.get("AZURE_FEDERATED_TOKEN_FILE"),
                        )
                    except ValueError as e:
                        raise FetchError(
                            f"{self.description}: Azure Workload Identity is half set up ({e}); the webhook "
                            f"sets {', '.join(WORKLOAD_IDENTITY_ENV)} together"
                        ) from None
                else:
                    from azure.identity import DefaultAzureCredential

                    try:
                        self._credential = DefaultAzureCredential(exclude_managed_identity_credential=True)
                    except ValueError as e:  # e.g. an AZURE_TOKEN_CREDENTIALS value it does not know
                        raise FetchError(
                            f"{self.description}: no Azure credential can be made ({e})"
                        ) from None
            return self._credential

    def _error(self, e: Exception, key: str) -> FetchError:
        """One line naming the blob and what to change, for an azure-core error while planning."""
        from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

        where = f"{SUMS_NAME}: cannot read az://{self.account}/{self.container}/{key}"
        status = getattr(e, "status_code", None)
        code = _azure_code(e)
        if status == 404 and code == "ContainerNotFound":
            return FetchError(
                f"{where}: the storage account {self.account!r} has no container {self.container!r}; "
                "check the container in MODEL_URI"
            )
        if status == 404:
            return FetchError(
                f"{where}: no such blob ({code or 'not found'}); check the prefix {self.prefix!r} in MODEL_URI "
                f"and that the model was uploaded there with its {SUMS_NAME}"
            )
        if status == 403 and code == "AuthorizationPermissionMismatch":
            who = self.env.get("AZURE_CLIENT_ID")
            return FetchError(
                f"{where}: the pod's identity{f' (client id {who})' if who else ''} may not read it "
                f"({code}): give it the 'Storage Blob Data Reader' role on the container, and make the "
                f"role assignment's condition, if any, admit reading blobs under {self.prefix!r} and listing "
                "with that prefix"
            )
        if status == 403 and code == "KeyBasedAuthenticationNotPermitted":
            return FetchError(
                f"{where}: the account refuses shared keys ({code}): unset {AZURE_CONNECTION_STRING_ENV}; "
                "the launcher then reads with the pod's workload identity"
            )
        if status == 403 and code == "AuthorizationFailure":
            # What Azure answers a caller its network rules refuse; Azurite answers a wrong key so too.
            key = (
                f", or the key in {AZURE_CONNECTION_STRING_ENV} is wrong"
                if self.env.get(AZURE_CONNECTION_STRING_ENV)
                else ""
            )
            return FetchError(
                f"{where}: the account refused the request ({code}): its network rules refuse this caller "
                "(with public network access off, reach it through its private endpoint: the pod must "
                f"resolve {self.account}.blob.core.windows.net to the endpoint's private address){key}"
            )
        if status == 403 and code == "AuthenticationFailed":
            refused = (
                f"the key in {AZURE_CONNECTION_STRING_ENV}"
                if self.env.get(AZURE_CONNECTION_STRING_ENV)
                else "the pod's Entra ID token (issued for another tenant than the account's?)"
            )
            return FetchError(f"{where}: the account refused {refused} ({code})")
        if status == 401:
            # A bearer token the service refuses (InvalidAuthenticationInfo: issuer or audience): most often
            # a token from another tenant than the account's.
            return FetchError(
                f"{where}: the account refused the pod's Entra ID token ({code or 'unauthorized'}): the token's "
                f"tenant (AZURE_TENANT_ID={self.env.get('AZURE_TENANT_ID', 'unset')}) must be the storage "
                "account's tenant"
            )
        if status is not None:
            return FetchError(f"{where}: {status} {code or _first_line(e)}")
        if isinstance(e, ClientAuthenticationError) and "tenant" in str(e).lower():
            return FetchError(
                f"{where}: no Entra ID token for the account's tenant ({_first_line(e)}): the pod's identity "
                f"is in tenant {self.env.get('AZURE_TENANT_ID', '(unset)')}; the account must be in the same "
                "tenant"
            )
        if isinstance(e, ClientAuthenticationError):
            return FetchError(
                f"{where}: no Entra ID token for the pod ({_first_line(e)}); check its workload identity: the "
                "ServiceAccount's annotation azure.workload.identity/client-id, the pod label "
                'azure.workload.identity/use: "true", and a federated credential on that identity whose '
                "issuer is the cluster's OIDC issuer and whose subject is "
                "system:serviceaccount:<namespace>:<service account>"
            )
        if isinstance(e, ServiceRequestError):
            return FetchError(
                f"{where}: cannot reach {self.endpoint} ({_first_line(e)}); check the pod's DNS and its egress "
                "to the blob endpoint on port 443"
            )
        return FetchError(f"{where}: {_first_line(e)}")

    def plan(self) -> list[FileSpec]:
        from azure.core.exceptions import AzureError

        key = self.prefix + SUMS_NAME
        try:
            container = self._container()
            raw = container.download_blob(key, decompress=False).readall()
            sizes: dict[str, int] = {}
            for blob in container.list_blobs(name_starts_with=self.prefix, include=["metadata"]):
                # An account with a hierarchical namespace (Data Lake Storage) lists each folder as an
                # empty blob marked hdi_isfolder=true: a folder, not a file of the model.
                if (blob.metadata or {}).get("hdi_isfolder") == "true":
                    continue
                sizes[blob.name[len(self.prefix) :]] = int(blob.size)
        except AzureError as e:
            raise self._error(e, key) from None
        origin = f"az://{self.account}/{self.container}/{key}"
        return plan_from_listing(_parse_sums(raw, origin), sizes, self.description)

    def read_range(self, path: str, start: int, end: int, sink: Sink) -> None:
        from azure.core.exceptions import AzureError

        try:
            # decompress=False: the stored bytes, whatever Content-Encoding says (sha256 is over those).
            # The SDK pins later GETs of one download to the first response's ETag, so a blob replaced
            # meanwhile fails the part (412) instead of mixing two versions.
            stream = self._container().download_blob(
                self.prefix + path, offset=start, length=end - start, max_concurrency=1, decompress=False
            )
            for block in stream.chunks():
                sink(block)
        except AzureError as e:
            # An OSError is retried by fetch (a dropped connection); the status and code say why it failed.
            status = getattr(e, "status_code", None)
            raise OSError(f"{status or ''} {_azure_code(e) or _first_line(e)}".strip()) from None

    def download_file(self, path: str, root: Path) -> None:  # pragma: no cover - ranged source
        raise NotImplementedError


# Other serialisations of the same weights: skipped when the repository has safetensors.
_ALT_WEIGHTS = re.compile(r"\.(bin|pt|pth|ckpt|h5|msgpack|onnx|gguf|ot)$")


def choose_hub_files(names: Iterable[str]) -> list[str]:
    """Files of a hub repository worth fetching: all, except duplicate weights when safetensors exist."""
    names = list(names)
    if not any(n.endswith(".safetensors") for n in names):
        return sorted(names)
    return sorted(n for n in names if not _ALT_WEIGHTS.search(n) and not n.startswith("original/"))


class HFSource:
    """hf://org/name@revision through huggingface_hub; verified against the hub's own hashes
    (sha256 for LFS files, the git blob sha1 for small files)."""

    ranged = False

    def __init__(self, repo: str, revision: str, api: Any = None, download: Any = None) -> None:
        self.repo = repo
        self.revision = revision
        self.description = f"hf://{repo}@{revision}"
        self._api = api
        self._download = download
        self.commit: str | None = None
        # Our own progress log replaces huggingface_hub's per-file bars (read when it is imported).
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    def plan(self) -> list[FileSpec]:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        api = self._api or HfApi()
        try:
            info = api.model_info(self.repo, revision=self.revision, files_metadata=True)
        except (HfHubHTTPError, OSError) as e:
            raise FetchError(f"cannot read {self.description} from the hub: {e}") from None
        self.commit = info.sha
        if self.commit != self.revision:
            # MODEL_URI pins a commit (uri.py), so the hub answering with another one means the
            # revision was not what it looked like; files fetched now would not be the pinned ones.
            raise FetchError(
                f"{self.description}: the hub resolved the revision to commit {info.sha}; pin that "
                "40-hex commit in MODEL_URI"
            )
        siblings = {s.rfilename: s for s in info.siblings or []}
        specs = []
        for name in choose_hub_files(siblings):
            s = siblings[name]
            try:
                path = safe_relative_path(name)
            except ValueError as e:
                raise FetchError(f"{name}: {e}") from None
            if s.lfs is not None:
                specs.append(FileSpec(path, int(s.lfs.size), Digest("sha256", s.lfs.sha256)))
            elif s.blob_id and s.size is not None:
                specs.append(FileSpec(path, int(s.size), Digest("git-sha1", s.blob_id)))
            else:
                raise FetchError(f"{name}: the hub gave no hash for it; cannot verify")
        if not specs:
            raise FetchError(f"{self.description} has no files")
        return specs

    def read_range(self, path: str, start: int, end: int, sink: Sink) -> None:  # pragma: no cover
        raise NotImplementedError

    def download_file(self, path: str, root: Path) -> None:
        from huggingface_hub import hf_hub_download

        download = self._download or hf_hub_download
        download(repo_id=self.repo, filename=path, revision=self.commit or self.revision, local_dir=root)
