"""ModelStore: where the model's weights live on AWS, and the one read-only identity that fetches them.

With `create_bucket` the component owns the bucket and makes it the way weights should be kept: private
(public access blocked, ACLs off), encrypted with our own KMS key (bucket key on, so a multi-gigabyte
download is not thousands of KMS calls), versioned (an overwritten or deleted shard can be recovered),
reachable over TLS only. Without it the bucket is someone else's and only the reader role is made.

Either way the serving pods get an EKS Pod Identity role that can do exactly what the launcher's `fetch`
does (model_image/sources.py: GetObject under the prefix, ListObjectsV2 with that prefix) and decrypt
with the bucket's key through S3 only: no writes, no other prefix, no other bucket.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components._common import child, reject_invalid_args
from components.clusters.aws.iam import PodIdentityRole, PodIdentityRoleArgs, policy_document, statement

# S3's naming rules (docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
_BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
_RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# A key ARN, not an alias ARN: IAM grants kms:Decrypt on keys, and an alias can be repointed. Commercial
# partition only, like the arn:aws:s3::: ARNs the reader policy writes.
_KMS_KEY_ARN = re.compile(r"^arn:aws:kms:[a-z]{2}-[a-z]+-\d{1,2}:\d{12}:key/[A-Za-z0-9-]+$")
# Characters that IAM reads as wildcards or policy variables inside a Resource or a condition value.
_IAM_SPECIAL = ("*", "?", "$")

#: Old versions of objects (a re-uploaded shard, a deleted file) are kept this long, then expire.
NONCURRENT_VERSION_DAYS = 30
#: Parts of an upload that never completed are removed after this many days (they are billed until then).
ABORT_MULTIPART_DAYS = 7


@dataclass(frozen=True, kw_only=True)
class ModelStoreArgs:
    """An S3 location for model weights and the serving ServiceAccount that reads them."""

    bucket_name: str  # exact S3 bucket name: the <bucket> of the stack's s3://<bucket>/<prefix> model uri
    prefix: str  # the model's key prefix, no leading or trailing '/'; the reader may read only under it
    create_bucket: bool  # True: create and own the bucket; False: an existing bucket, only the role is made
    cluster_name: pulumi.Input[str]  # EKS cluster whose Pod Identity agent hands the reader its credentials
    namespace: str  # namespace of the serving ServiceAccount
    service_account: str  # name of the serving ServiceAccount (it need not exist yet)
    existing_kms_key_arn: str | None = None  # existing bucket's customer KMS key, so the role may decrypt
    force_destroy: bool = False  # created bucket only: let `pulumi destroy` delete the weights too
    tags: dict[str, str] = field(default_factory=dict)  # AWS tags for the bucket and the key


def bucket_name_problems(name: str) -> list[str]:
    """What breaks S3's bucket naming rules, each message naming `bucket_name` and the rule."""
    problems: list[str] = []
    if not 3 <= len(name) <= 63:
        problems.append(f"bucket_name: {name!r} has {len(name)} characters; S3 bucket names have 3 to 63")
    if not _BUCKET_CHARS.match(name):
        problems.append(
            f"bucket_name: {name!r} may hold only lowercase letters, digits, '.' and '-', and must begin "
            "and end with a letter or digit"
        )
    if ".." in name:
        problems.append(f"bucket_name: {name!r} has two adjacent periods, which S3 does not allow")
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        problems.append(f"bucket_name: {name!r} is formatted as an IP address, which S3 does not allow")
    for reserved in _RESERVED_BUCKET_PREFIXES:
        if name.startswith(reserved):
            problems.append(f"bucket_name: {name!r} starts with {reserved!r}, a prefix S3 reserves")
    for reserved in _RESERVED_BUCKET_SUFFIXES:
        if name.endswith(reserved):
            problems.append(f"bucket_name: {name!r} ends with {reserved!r}, a suffix S3 reserves")
    return problems


def prefix_problems(prefix: str) -> list[str]:
    """What makes `prefix` unusable as the one folder the reader may read."""
    if not prefix:
        return [
            "prefix: empty would let the role read the whole bucket, which is too broad; give the model's "
            "folder, e.g. models/llama-3.1-8b"
        ]
    problems: list[str] = []
    if prefix.startswith("/") or prefix.endswith("/"):
        problems.append(f"prefix: {prefix!r}: drop the leading and trailing '/' (write models/name)")
    if any(c in prefix for c in _IAM_SPECIAL):
        problems.append(
            f"prefix: {prefix!r} holds '*', '?' or '$', which IAM reads as wildcards or variables; "
            "name the model's folder literally"
        )
    segments = prefix.strip("/").split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        problems.append(f"prefix: {prefix!r} has an empty, '.' or '..' segment; the launcher refuses those")
    return problems


def validate_model_store_args(args: ModelStoreArgs) -> list[str]:
    """Every problem with the args, each naming the field; empty when they are usable."""
    problems = bucket_name_problems(args.bucket_name) + prefix_problems(args.prefix)
    if args.existing_kms_key_arn is not None:
        if args.create_bucket:
            problems.append(
                "existing_kms_key_arn: only for an existing bucket (create_bucket False); a bucket we create "
                "is encrypted with its own new key, so drop existing_kms_key_arn or set create_bucket False"
            )
        if not _KMS_KEY_ARN.match(args.existing_kms_key_arn):
            problems.append(
                f"existing_kms_key_arn: {args.existing_kms_key_arn!r} is not a KMS key ARN "
                "(arn:aws:kms:<region>:<account>:key/<key-id>; an alias ARN will not do)"
            )
    if args.force_destroy and not args.create_bucket:
        problems.append(
            "force_destroy: only applies to a bucket we create (create_bucket True); an existing bucket is "
            "never deleted by this stack, so drop force_destroy"
        )
    if not args.namespace:
        problems.append("namespace: the serving ServiceAccount's namespace is required")
    if not args.service_account:
        problems.append("service_account: the serving ServiceAccount's name is required")
    for key in args.tags:
        if key.lower().startswith("aws:"):
            problems.append(f"tags: {key!r} uses the 'aws:' prefix, which AWS reserves; rename the tag")
    return problems


def bucket_arn(bucket_name: str) -> str:
    return f"arn:aws:s3:::{bucket_name}"


def kms_key_region(key_arn: str) -> str:
    """The region in a KMS key ARN: SSE-KMS needs the key in the bucket's region, so it is the bucket's."""
    return key_arn.split(":")[3]


def s3_via_service(kms_key_arn: pulumi.Input[str]) -> pulumi.Input[str]:
    """The kms:ViaService value for S3 in the key's region; plain when the ARN is plain."""
    if isinstance(kms_key_arn, str):
        return f"s3.{kms_key_region(kms_key_arn)}.amazonaws.com"
    return pulumi.Output.all(kms_key_arn).apply(lambda arns: f"s3.{kms_key_region(arns[0])}.amazonaws.com")


def reader_policy(
    bucket_name: str, prefix: str, kms_key_arn: pulumi.Input[str] | None = None
) -> dict[str, Any]:
    """Read-only access to s3://bucket_name/prefix/ and nothing else.

    GetObject only on keys under the prefix; ListBucket only for listings whose prefix is the model's own
    (the launcher lists `prefix/`); with a customer key, kms:Decrypt only when S3 asks on the pod's behalf
    and only for this bucket's objects (the encryption context is the bucket's ARN with a bucket key, the
    object's ARN without).
    """
    arn = bucket_arn(bucket_name)
    statements = [
        statement(["s3:GetObject"], [f"{arn}/{prefix}/*"], sid="ReadModelObjects"),
        statement(
            ["s3:ListBucket"],
            [arn],
            sid="ListModelPrefixOnly",
            condition={"StringLike": {"s3:prefix": [f"{prefix}/*", prefix]}},
        ),
    ]
    if kms_key_arn is not None:
        statements.append(
            statement(
                ["kms:Decrypt"],
                [kms_key_arn],
                sid="DecryptThroughS3Only",
                condition={
                    "StringEquals": {"kms:ViaService": s3_via_service(kms_key_arn)},
                    "StringLike": {"kms:EncryptionContext:aws:s3:arn": [arn, f"{arn}/{prefix}/*"]},
                },
            )
        )
    return policy_document(*statements)


def tls_only_bucket_policy(bucket_name: str) -> dict[str, Any]:
    """Bucket policy refusing every request, from anyone, that does not come over TLS."""
    arn = bucket_arn(bucket_name)
    deny = statement(
        ["s3:*"],
        [arn, f"{arn}/*"],
        sid="DenyInsecureTransport",
        effect="Deny",
        condition={"Bool": {"aws:SecureTransport": "false"}},
    )
    return policy_document({**deny, "Principal": "*"})


def _alias_name(bucket_name: str) -> str:
    # KMS alias names allow letters, digits, '/', '_' and '-': a bucket name's dots become dashes.
    return "alias/inferstack/" + bucket_name.replace(".", "-")


class ModelStore(pulumi.ComponentResource):
    """The model's S3 location (made here or existing) and the serving pods' read-only role."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str] | None
    reader_role_arn: pulumi.Output[str]
    reader_role: PodIdentityRole
    uri: pulumi.Output[str]

    def __init__(self, name: str, args: ModelStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args("ModelStore", name, validate_model_store_args(args))
        super().__init__("inferstack:aws:ModelStore", name, None, opts)

        kms_key_arn: pulumi.Input[str] | None
        if args.create_bucket:
            # Unless force_destroy, `pulumi destroy` leaves the weights, their key and the bucket's
            # protections in place (only forgotten by the stack): deleting a key or a public access block
            # under a bucket that stays would make it unreadable or exposed.
            def kept(**extra: Any) -> pulumi.ResourceOptions:
                return child(self, retain_on_delete=not args.force_destroy, **extra)

            key = aws.kms.Key(
                f"{name}-key",
                description=f"Model weights in s3://{args.bucket_name}",
                enable_key_rotation=True,
                # The longest wait KMS allows: a key deleted by mistake makes every weight unreadable.
                deletion_window_in_days=30,
                tags=args.tags,
                opts=kept(),
            )
            aws.kms.Alias(
                f"{name}-key-alias",
                name=_alias_name(args.bucket_name),
                target_key_id=key.key_id,
                opts=kept(),
            )
            bucket = aws.s3.Bucket(
                f"{name}-bucket",
                bucket=args.bucket_name,
                force_destroy=args.force_destroy,
                tags=args.tags,
                opts=kept(),
            )
            # S3 rejects concurrent changes to one bucket's configuration (OperationAborted), so each
            # setting below waits for the one before it.
            public_access = aws.s3.BucketPublicAccessBlock(
                f"{name}-public-access",
                bucket=bucket.id,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
                opts=kept(),
            )
            ownership = aws.s3.BucketOwnershipControls(
                f"{name}-ownership",
                bucket=bucket.id,
                # ACLs off: access is decided by IAM and the bucket policy alone.
                rule={"object_ownership": "BucketOwnerEnforced"},
                opts=kept(depends_on=[public_access]),
            )
            encryption = aws.s3.BucketServerSideEncryptionConfiguration(
                f"{name}-encryption",
                bucket=bucket.id,
                rules=[
                    {
                        "apply_server_side_encryption_by_default": {
                            "sse_algorithm": "aws:kms",
                            "kms_master_key_id": key.arn,
                        },
                        # One data key per bucket instead of a KMS call per object part.
                        "bucket_key_enabled": True,
                    }
                ],
                opts=kept(depends_on=[ownership]),
            )
            versioning = aws.s3.BucketVersioning(
                f"{name}-versioning",
                bucket=bucket.id,
                versioning_configuration={"status": "Enabled"},
                opts=kept(depends_on=[encryption]),
            )
            lifecycle = aws.s3.BucketLifecycleConfiguration(
                f"{name}-lifecycle",
                bucket=bucket.id,
                rules=[
                    {
                        # Versioning keeps every overwritten shard; old copies of many-GB files add up.
                        "id": "expire-old-versions-and-abandoned-uploads",
                        "status": "Enabled",
                        "filter": {},
                        "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_VERSION_DAYS},
                        "abort_incomplete_multipart_upload": {"days_after_initiation": ABORT_MULTIPART_DAYS},
                    }
                ],
                opts=kept(depends_on=[versioning]),
            )
            aws.s3.BucketPolicy(
                f"{name}-tls-only",
                bucket=bucket.id,
                policy=pulumi.Output.json_dumps(tls_only_bucket_policy(args.bucket_name)),
                # With the public access block in place first, no policy can make the bucket public.
                opts=kept(depends_on=[public_access, lifecycle]),
            )
            self.bucket_name = bucket.bucket
            self.bucket_arn = bucket.arn
            self.kms_key_arn = key.arn
            kms_key_arn = key.arn
        else:
            self.bucket_name = pulumi.Output.from_input(args.bucket_name)
            self.bucket_arn = pulumi.Output.from_input(bucket_arn(args.bucket_name))
            self.kms_key_arn = (
                pulumi.Output.from_input(args.existing_kms_key_arn) if args.existing_kms_key_arn else None
            )
            kms_key_arn = args.existing_kms_key_arn

        self.reader_role = PodIdentityRole(
            f"{name}-reader",
            PodIdentityRoleArgs(
                cluster_name=args.cluster_name,
                namespace=args.namespace,
                service_account=args.service_account,
                policy=reader_policy(args.bucket_name, args.prefix, kms_key_arn),
                description=(
                    f"Reads s3://{args.bucket_name}/{args.prefix}/ for "
                    f"{args.namespace}/{args.service_account} (EKS Pod Identity)"
                ),
            ),
            opts=child(self),
        )
        self.reader_role_arn = self.reader_role.role_arn
        # An Output, so whatever reads the model through it also waits for the bucket.
        self.uri = pulumi.Output.concat("s3://", self.bucket_name, "/", args.prefix)

        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "kms_key_arn": self.kms_key_arn,
                "reader_role_arn": self.reader_role_arn,
                "uri": self.uri,
            }
        )
