"""MODEL_URI: where the model comes from, and the stable cache key derived from it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from urllib.parse import urlsplit

SCHEMES_HELP = (
    "file:///path (or /path), s3://bucket/prefix, gs://bucket/prefix, az://account/container/prefix, "
    "hf://org/name@<40-hex commit>"
)

_HF_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Azure's naming rules (learn.microsoft.com, "Naming and referencing containers, blobs, and metadata" and
# "Storage account overview: Storage account name"): an account is 3-24 lowercase letters and digits; a
# container 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit.
_AZ_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_AZ_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")


class Scheme(StrEnum):
    FILE = "file"
    S3 = "s3"
    GS = "gs"
    #: Azure Blob Storage: az://<account>/<container>/<prefix> (model_image/README.md, "Azure Blob").
    AZ = "az"
    HF = "hf"


@dataclass(frozen=True)
class ModelURI:
    """A parsed MODEL_URI. `location` is a bucket, `<account>/<container>` for az://, a hub repository,
    or empty for files."""

    scheme: Scheme
    location: str
    path: str
    revision: str | None = None

    @property
    def canonical(self) -> str:
        if self.scheme is Scheme.FILE:
            return f"file://{self.path}"
        if self.scheme is Scheme.HF:
            return f"hf://{self.location}@{self.revision}"
        return f"{self.scheme.value}://{self.location}/{self.path}".rstrip("/")

    def cache_key(self) -> str:
        """`<readable slug>-<12 hex of sha256(canonical URI)>`: stable, unique, safe as a folder name.

        The slug is only for people reading `ls`; the hash is what makes two URIs two entries.
        """
        digest = hashlib.sha256(self.canonical.encode()).hexdigest()[:12]
        tail = "-".join(p for p in [self.location, *self.path.split("/")] if p)
        if self.revision:
            tail = f"{tail}-{self.revision[:12]}"
        slug = _SLUG_UNSAFE.sub("-", tail).strip("-.")[-60:].lstrip("-.") or "model"
        return f"{slug}-{digest}"


def redact(raw: str) -> str:
    """`raw` fit for a message or a log line: any userinfo (`user:secret@`) replaced by `***@`, and any
    query or fragment by `***`.

    Only s3://, gs://, az:// and file:// have an authority that can carry one; an hf:// URI with a ':' or a
    second '@' in it is hidden whole, since its one '@' separates the revision and a token could sit
    anywhere before it.
    """
    scheme, sep, rest = raw.partition("://")
    if not sep:
        return raw
    # A query or fragment can carry a presigned URL's credentials (?AWSAccessKeyId=...&Signature=...):
    # never shown.
    for mark in ("?", "#"):
        if mark in rest:
            rest = rest.partition(mark)[0] + mark + "***"
    raw = f"{scheme}{sep}{rest}"
    if scheme.lower() == "hf":
        return f"{scheme}://***" if ":" in rest or rest.count("@") > 1 else raw
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        return f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{path}"
    return raw


def parse_model_uri(raw: str) -> ModelURI:
    """Parse MODEL_URI, or raise ValueError saying what is wrong and how to write it.

    The launcher refuses what the stack schema refuses (stacks/config.py ModelConfig.uri): an hf://
    revision that is not a 40-hex commit (a branch or tag moves, and every node would cache whatever it
    pointed at under one key) and credentials written into the URI (they would land in the cache folder's
    name, the lock file's and every message; the pod's identity or HF_TOKEN_PATH carries them instead).
    Messages never repeat a URI's userinfo.
    """
    raw = raw.strip()
    if not raw:
        raise ValueError(f"is empty; use one of {SCHEMES_HELP}")
    if raw.startswith("/"):
        return _file_uri(raw)
    shown = redact(raw)
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme in ("file", "s3", "gs", "az") and "@" in parts.netloc:
        raise ValueError(
            f"{shown!r} carries credentials (user:secret@) in the URI: remove them; the launcher reads "
            "the pod's own identity (IRSA / EKS Pod Identity, GKE or Azure Workload Identity), never URI "
            "credentials"
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"{shown!r}: a file:// URI needs an absolute path, e.g. file:///models/llama")
        return _file_uri(parts.path)
    if scheme in ("s3", "gs"):
        if not parts.netloc:
            raise ValueError(f"{shown!r} names no bucket; write {scheme}://bucket/prefix")
        if parts.query or parts.fragment:
            raise ValueError(f"{shown!r}: query strings and fragments are not supported in {scheme}:// URIs")
        prefix = parts.path.strip("/")
        if any(seg in ("", ".", "..") for seg in prefix.split("/")) and prefix:
            raise ValueError(f"{shown!r}: the prefix may not contain empty, '.' or '..' segments")
        return ModelURI(Scheme(scheme), parts.netloc, prefix)
    if scheme == "az":
        return _az_uri(raw, shown)
    if scheme == "hf":
        return _hf_uri(raw)
    named = f"scheme {scheme!r}" if scheme else "no scheme"
    raise ValueError(f"{shown!r} has {named}; use one of {SCHEMES_HELP}")


def _file_uri(path: str) -> ModelURI:
    p = PurePosixPath(path)
    if not p.is_absolute() or ".." in p.parts:
        raise ValueError(f"{path!r}: a local model folder must be an absolute path without '..'")
    return ModelURI(Scheme.FILE, "", str(p))


def _az_uri(raw: str, shown: str) -> ModelURI:
    """az://<account>/<container>/<prefix>: the account first, so that the URI alone names the blob
    endpoint (https://<account>.blob.core.windows.net) and two accounts' models never share a cache key.

    Not the az:// of adlfs and vLLM's Run:ai streamer (az://<container>/<path>, the account given apart
    as AZURE_STORAGE_ACCOUNT_NAME): model_image/README.md says why.
    """
    parts = urlsplit(raw)
    if parts.query or parts.fragment:
        raise ValueError(
            f"{shown!r}: query strings and fragments (a SAS token) are not supported in az:// URIs"
        )
    account = parts.netloc
    container, _, prefix = parts.path.strip("/").partition("/")
    problems = []
    if not _AZ_ACCOUNT.match(account):
        problems.append(
            f"the storage account {account!r} is not an account name (3-24 lowercase letters and digits)"
        )
    if not container:
        problems.append("it names no container")
    elif not _AZ_CONTAINER.match(container):
        problems.append(
            f"the container {container!r} is not a container name (3-63 lowercase letters, digits and "
            "single hyphens)"
        )
    if problems:
        raise ValueError(f"{shown!r}: {'; '.join(problems)}; write az://<account>/<container>/<prefix>")
    prefix = prefix.strip("/")
    if prefix and any(seg in ("", ".", "..") for seg in prefix.split("/")):
        raise ValueError(f"{shown!r}: the prefix may not contain empty, '.' or '..' segments")
    return ModelURI(Scheme.AZ, f"{account}/{container}", prefix)


def _hf_uri(raw: str) -> ModelURI:
    body = raw[len("hf://") :]
    if ":" in body or body.count("@") > 1:
        raise ValueError(
            f"{redact(raw)!r}: an hf:// URI carries no credentials or ports: write hf://org/name@<commit> "
            "and give a gated repository's token as HF_TOKEN_PATH (model.hf_token_secret)"
        )
    repo, sep, revision = body.partition("@")
    repo = repo.strip("/")
    if not sep or not revision:
        raise ValueError(
            f"{raw!r} has no revision; pin one: hf://{repo or 'org/name'}@<40-hex commit sha> "
            "(a moving branch would change the model under a running deployment)"
        )
    if not _HF_REPO.match(repo) or "--" in repo:
        raise ValueError(f"{raw!r}: {repo!r} is not a hub repository id like org/name")
    if not _COMMIT.match(revision):
        raise ValueError(
            f"{raw!r}: revision {revision!r} is not a commit: pin the 40-hex commit sha (the hub's "
            "'Files and versions' history, or `git ls-remote`); a branch or tag moves, so two nodes could "
            "serve different weights under one cache key"
        )
    return ModelURI(Scheme.HF, repo, "", revision)
