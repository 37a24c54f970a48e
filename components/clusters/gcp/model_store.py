"""GcsModelStore: the model's Cloud Storage location and the serving pods' read-only, prefix-scoped grant.

The bucket (when the stack makes it) is private by construction: uniform bucket-level access (IAM only,
no object ACLs) and public access prevention enforced (no grant to allUsers or allAuthenticatedUsers can
take effect). It is versioned, so an overwritten or deleted shard can be restored, with a lifecycle rule
that deletes old versions after NONCURRENT_VERSION_DAYS and aborts abandoned multipart uploads. It is
encrypted with Google's keys by default, or with a customer-managed Cloud KMS key (CMEK): one made here (a
key ring and a key rotated every 90 days) or one that exists. Cloud Storage uses the key through the
project's Cloud Storage service agent, which is granted encrypt/decrypt on that key before the bucket is
made; readers need no KMS permission of their own.

The reader, the serving Kubernetes ServiceAccount (a Workload Identity principal, see
workload_identity.py), gets roles/storage.objectViewer on this bucket only, under an IAM condition that
admits objects below `<prefix>/` and listings whose prefix starts with `<prefix>/` (the launcher lists
`<prefix>/`), and nothing else in the bucket. IAM conditions on a bucket need uniform bucket-level access:
an existing bucket without it rejects the grant, which is the failure we want.

Unless force_destroy, `pulumi destroy` leaves the bucket, the weights, their key and the key's grant to
Cloud Storage in place (the stack forgets them): deleting the key or its grant under a bucket that stays
would make every weight unreadable. The reader's grant is the stack's either way.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp as gcp

from components._common import child, reject_invalid_args

#: Old versions of objects (a re-uploaded shard, a deleted file) are kept this long, then deleted.
NONCURRENT_VERSION_DAYS = 30
#: Parts of a multipart upload that never completed are removed after this many days.
ABORT_MULTIPART_DAYS = 7
#: A key we make is rotated this often (Cloud KMS makes a new primary version; old ones still decrypt).
KEY_ROTATION_PERIOD = "7776000s"  # 90 days
#: How long a destroyed key version can still be restored; the longest wait for a mistake to be noticed.
KEY_DESTROY_SCHEDULED_DURATION = "2592000s"  # 30 days

READER_ROLE = "roles/storage.objectViewer"
KEY_USER_ROLE = "roles/cloudkms.cryptoKeyEncrypterDecrypter"

# Cloud Storage's naming rules (cloud.google.com/storage/docs/buckets#naming).
_BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9._-]*[a-z0-9]$")
_BUCKET_GOOGLE = re.compile(r"g[o0][o0]gle")
# A Cloud KMS key, not a key version: the bucket's default key must name the key itself.
_KMS_KEY_NAME = re.compile(
    r"^projects/(?P<project>[a-z][-a-z0-9.:]*[a-z0-9])/locations/(?P<location>[a-z0-9-]+)/"
    r"keyRings/(?P<ring>[A-Za-z0-9_-]{1,63})/cryptoKeys/(?P<key>[A-Za-z0-9_-]{1,63})$"
)
# Characters that would break the CEL string literal of the IAM condition, or that IAM and Cloud Storage
# read as wildcards; a model's folder needs none of them.
_PREFIX_FORBIDDEN = set("\"'\\*?[]#")
# Cloud labels: lower-case keys starting with a letter, values of the same characters (may be empty).
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_MEMBER_PREFIXES = ("principal://", "principalSet://", "serviceAccount:", "group:", "user:")
# A region (us-central1), a multi-region (us, eu, asia) or a predefined dual-region (nam4, eur4).
_LOCATION = re.compile(r"^[a-z]+[0-9]*(-[a-z]+[0-9]+)?$")


@dataclass(frozen=True, kw_only=True)
class GcsModelStoreArgs:
    """A Cloud Storage location for model weights and the serving ServiceAccount that reads them."""

    bucket_name: str  # the <bucket> of the stack's gs://<bucket>/<prefix> model uri
    prefix: str  # the model's folder, no leading or trailing '/'; the reader may read only under it
    create_bucket: bool  # True: create and own the bucket; False: an existing bucket, only the grant is made
    project: str  # the project the bucket (and a key we make) belongs to
    location: str  # bucket location: the cluster's region, so reads stay in-region
    reader_member: pulumi.Input[str]  # IAM member of the serving Kubernetes ServiceAccount (principal://...)
    kms_key_name: str | None = None  # CMEK with an existing key (projects/.../cryptoKeys/<key>)
    create_kms_key: bool = False  # CMEK with a key ring and key made here, rotated every 90 days
    force_destroy: bool = False  # created bucket only: let `pulumi destroy` delete the bucket and its weights
    labels: dict[str, str] = field(default_factory=dict)  # Cloud labels for the bucket and the key


def bucket_name_problems(name: str) -> list[str]:
    """What breaks Cloud Storage's bucket naming rules, each message naming `bucket_name` and the rule."""
    problems: list[str] = []
    components = name.split(".")
    if "." in name:
        if not 3 <= len(name) <= 222:
            problems.append(f"bucket_name: {name!r} has {len(name)} characters; a dotted name has 3 to 222")
        if any(len(c) > 63 for c in components):
            problems.append(f"bucket_name: {name!r} has a dot-separated part longer than 63 characters")
        if any(c == "" for c in components):
            problems.append(
                f"bucket_name: {name!r} has an empty dot-separated part ('..', or a dot at an end)"
            )
    elif not 3 <= len(name) <= 63:
        problems.append(f"bucket_name: {name!r} has {len(name)} characters; bucket names have 3 to 63")
    if not _BUCKET_CHARS.match(name):
        problems.append(
            f"bucket_name: {name!r} may hold only lowercase letters, digits, '-', '_' and '.', and must begin "
            "and end with a letter or digit"
        )
    if name.startswith("goog"):
        problems.append(f"bucket_name: {name!r} starts with 'goog', which Cloud Storage reserves")
    if _BUCKET_GOOGLE.search(name):
        problems.append(
            f"bucket_name: {name!r} contains 'google' (or a look-alike), which Cloud Storage refuses"
        )
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        problems.append(f"bucket_name: {name!r} is an IP address, which Cloud Storage does not allow")
    return problems


def prefix_problems(prefix: str) -> list[str]:
    """What makes `prefix` unusable as the one folder the reader may read."""
    if not prefix:
        return [
            "prefix: empty would let the reader read the whole bucket, which is too broad; give the model's "
            "folder, e.g. models/llama-3.1-8b"
        ]
    problems: list[str] = []
    if prefix.startswith("/") or prefix.endswith("/"):
        problems.append(f"prefix: {prefix!r}: drop the leading and trailing '/' (write models/name)")
    bad = sorted({c for c in prefix if c in _PREFIX_FORBIDDEN or ord(c) < 0x20 or ord(c) == 0x7F})
    if bad:
        problems.append(
            f"prefix: {prefix!r} holds {''.join(bad)!r}: quotes, backslashes, wildcards and control "
            "characters would change the IAM condition's meaning; name the model's folder literally"
        )
    segments = prefix.strip("/").split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        problems.append(f"prefix: {prefix!r} has an empty, '.' or '..' segment; the launcher refuses those")
    return problems


def kms_key_location(key_name: str) -> str | None:
    match = _KMS_KEY_NAME.match(key_name)
    return match.group("location") if match else None


def validate_gcs_model_store_args(args: GcsModelStoreArgs) -> list[str]:
    """Every problem with the args, each naming the field; empty when they are usable."""
    problems = bucket_name_problems(args.bucket_name) + prefix_problems(args.prefix)
    if not args.project:
        problems.append("project: the bucket's project id is required")
    if not _LOCATION.match(args.location.lower()):
        problems.append(f"location: {args.location!r} is not a Cloud Storage location (e.g. us-central1)")

    if args.kms_key_name is not None and args.create_kms_key:
        problems.append(
            "kms_key_name, create_kms_key: pick one way to get the bucket's key, an existing key "
            "(kms_key_name) or one made here (create_kms_key), not both"
        )
    if args.kms_key_name is not None:
        location = kms_key_location(args.kms_key_name)
        if location is None:
            problems.append(
                f"kms_key_name: {args.kms_key_name!r} is not a Cloud KMS key name "
                "(projects/<project>/locations/<location>/keyRings/<ring>/cryptoKeys/<key>; not a key version)"
            )
        elif location != args.location.lower():
            problems.append(
                f"kms_key_name: the key is in {location} but the bucket in {args.location}; Cloud Storage needs "
                "the key in the bucket's location"
            )
    if not args.create_bucket:
        for name in ("kms_key_name", "create_kms_key", "force_destroy"):
            if getattr(args, name):
                problems.append(
                    f"{name}: only for a bucket this stack creates (create_bucket True); an existing bucket "
                    "keeps its own encryption and is never deleted by this stack, so drop it"
                )

    if isinstance(args.reader_member, str) and not args.reader_member.startswith(_MEMBER_PREFIXES):
        problems.append(
            f"reader_member: {args.reader_member!r} is not a single identity; give the serving "
            "ServiceAccount's principal:// (workload_identity_principal)"
        )
    for key, value in args.labels.items():
        if not _LABEL_KEY.match(key):
            problems.append(
                f"labels: key {key!r} must start with a lower-case letter and hold only a-z, 0-9, '_', '-' "
                "(at most 63)"
            )
        if not _LABEL_VALUE.match(value):
            problems.append(
                f"labels: value {value!r} of {key!r} may hold only a-z, 0-9, '_', '-' (at most 63)"
            )
    return problems


def object_prefix_condition(
    bucket_name: pulumi.Input[str], prefix: str
) -> gcp.storage.BucketIAMMemberConditionArgs:
    """The IAM condition that keeps a bucket-level grant to `prefix/`: objects whose name starts with it
    (resource.name is projects/_/buckets/<bucket>/objects/<object> for object reads) and listings whose
    prefix starts with it (a listing's resource is the bucket, so only the list-prefix attribute can
    scope it)."""
    expression = pulumi.Output.concat(
        'resource.name.startsWith("projects/_/buckets/',
        bucket_name,
        f'/objects/{prefix}/") || ',
        f'api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith("{prefix}/")',
    )
    return gcp.storage.BucketIAMMemberConditionArgs(
        title="model-prefix-only",
        description=f"Read and list objects under {prefix}/ only",
        expression=expression,
    )


def lifecycle_rules() -> list[gcp.storage.BucketLifecycleRuleArgs]:
    rule = gcp.storage.BucketLifecycleRuleArgs
    action = gcp.storage.BucketLifecycleRuleActionArgs
    condition = gcp.storage.BucketLifecycleRuleConditionArgs
    return [
        # Versioning keeps every overwritten shard; old copies of many-GB files add up.
        rule(
            action=action(type="Delete"),
            condition=condition(days_since_noncurrent_time=NONCURRENT_VERSION_DAYS, with_state="ARCHIVED"),
        ),
        rule(
            action=action(type="AbortIncompleteMultipartUpload"),
            condition=condition(age=ABORT_MULTIPART_DAYS),
        ),
    ]


class GcsModelStore(pulumi.ComponentResource):
    """The model's Cloud Storage location (made here or existing) and the serving pods' read-only grant."""

    bucket_name: pulumi.Output[str]
    uri: pulumi.Output[str]
    kms_key_name: pulumi.Output[str] | None
    reader_binding: gcp.storage.BucketIAMMember

    def __init__(
        self, name: str, args: GcsModelStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        reject_invalid_args("GcsModelStore", name, validate_gcs_model_store_args(args))
        super().__init__("inferstack:gcp:GcsModelStore", name, None, opts)

        self.kms_key_name = None
        if args.create_bucket:

            def kept(**extra: Any) -> pulumi.ResourceOptions:
                return child(self, retain_on_delete=not args.force_destroy, **extra)

            key_name: pulumi.Input[str] | None = args.kms_key_name
            bucket_after: list[pulumi.Resource] = []
            if args.create_kms_key:
                # Cloud KMS never deletes key rings, and "deleting" a key only destroys its versions after
                # the scheduled wait; both sit in the bucket's location, as Cloud Storage requires.
                ring = gcp.kms.KeyRing(
                    f"{name}-keyring", project=args.project, location=args.location.lower(), opts=kept()
                )
                key = gcp.kms.CryptoKey(
                    f"{name}-key",
                    key_ring=ring.id,
                    purpose="ENCRYPT_DECRYPT",
                    rotation_period=KEY_ROTATION_PERIOD,
                    destroy_scheduled_duration=KEY_DESTROY_SCHEDULED_DURATION,
                    labels=args.labels,
                    opts=kept(),
                )
                key_name = key.id
            if key_name is not None:
                # Cloud Storage encrypts and decrypts as the project's service agent, which needs the key
                # before the bucket can name it as its default.
                agent = gcp.storage.get_project_service_account_output(
                    project=args.project, opts=pulumi.InvokeOutputOptions(parent=self)
                )
                grant = gcp.kms.CryptoKeyIAMMember(
                    f"{name}-key-storage-agent",
                    crypto_key_id=key_name,
                    role=KEY_USER_ROLE,
                    member=agent.member,
                    opts=kept(),
                )
                bucket_after.append(grant)
                self.kms_key_name = pulumi.Output.from_input(key_name)

            bucket = gcp.storage.Bucket(
                f"{name}-bucket",
                name=args.bucket_name,
                project=args.project,
                location=args.location.upper(),
                uniform_bucket_level_access=True,
                public_access_prevention="enforced",
                versioning=gcp.storage.BucketVersioningArgs(enabled=True),
                lifecycle_rules=lifecycle_rules(),
                encryption=(
                    gcp.storage.BucketEncryptionArgs(default_kms_key_name=key_name)
                    if key_name is not None
                    else None
                ),
                force_destroy=args.force_destroy,
                labels=args.labels,
                opts=kept(depends_on=bucket_after),
            )
            self.bucket_name = bucket.name
        else:
            self.bucket_name = pulumi.Output.from_input(args.bucket_name)

        self.reader_binding = gcp.storage.BucketIAMMember(
            f"{name}-reader",
            bucket=self.bucket_name,
            role=READER_ROLE,
            member=args.reader_member,
            condition=object_prefix_condition(self.bucket_name, args.prefix),
            opts=child(self),
        )
        # An Output, so whatever reads the model through it also waits for the bucket.
        self.uri = pulumi.Output.concat("gs://", self.bucket_name, "/", args.prefix)

        self.register_outputs(
            {"bucket_name": self.bucket_name, "uri": self.uri, "kms_key_name": self.kms_key_name}
        )
