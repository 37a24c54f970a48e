"""ModelStore: a private, KMS-encrypted, versioned, TLS-only bucket, and a reader that can only read the model."""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import pytest

from components.clusters.aws.model_store import (
    ModelStore,
    ModelStoreArgs,
    bucket_name_problems,
    reader_policy,
    tls_only_bucket_policy,
    validate_model_store_args,
)
from inferstack.planning.recording import Recording, run_program

T_BUCKET = "aws:s3/bucket:Bucket"
T_KEY = "aws:kms/key:Key"
T_ALIAS = "aws:kms/alias:Alias"
T_ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
T_PUBLIC_ACCESS = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
T_OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
T_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
T_LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
T_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
T_ROLE = "aws:iam/role:Role"
T_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
T_ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"

BUCKET = "acme-llm-weights"
PREFIX = "models/llama-3.1-8b"
EXISTING_KEY = "arn:aws:kms:eu-west-1:210987654321:key/1234abcd-12ab-34cd-56ef-1234567890ab"
READ_ONLY_ACTIONS = {"s3:GetObject", "s3:ListBucket", "kms:Decrypt"}


def store_args(**changes: Any) -> ModelStoreArgs:
    base = ModelStoreArgs(
        bucket_name=BUCKET,
        prefix=PREFIX,
        create_bucket=True,
        cluster_name="prod-eks",
        namespace="inference",
        service_account="llm-server",
        tags={"team": "ml-platform"},
    )
    return dataclasses.replace(base, **changes)


def deploy(args: ModelStoreArgs, name: str = "models") -> tuple[Recording, dict[str, Any]]:
    """Run one ModelStore; also return its outputs, resolved."""
    resolved: dict[str, Any] = {}

    def program() -> None:
        store = ModelStore(name, args)
        for output in ("bucket_name", "bucket_arn", "reader_role_arn", "uri"):
            getattr(store, output).apply(functools.partial(resolved.__setitem__, output))
        if store.kms_key_arn is None:
            resolved["kms_key_arn"] = None
        else:
            store.kms_key_arn.apply(functools.partial(resolved.__setitem__, "kms_key_arn"))

    return run_program(program), resolved


@functools.cache
def created() -> tuple[Recording, dict[str, Any]]:
    return deploy(store_args())


@functools.cache
def existing_with_key() -> tuple[Recording, dict[str, Any]]:
    return deploy(store_args(create_bucket=False, existing_kms_key_arn=EXISTING_KEY, tags={}))


def recorded_policy(rec: Recording) -> dict[str, Any]:
    return json.loads(rec.one(T_ROLE_POLICY).inputs["policy"])


def allows(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in policy["Statement"] if s["Effect"] == "Allow"]


def assert_read_only_under_prefix(policy: dict[str, Any], bucket: str, prefix: str) -> None:
    """The reader may Get objects under prefix/, List only with that prefix, decrypt; nothing else."""
    bucket_arn = f"arn:aws:s3:::{bucket}"
    actions = [a for s in allows(policy) for a in s["Action"]]
    assert set(actions) <= READ_ONLY_ACTIONS, actions
    assert not any(word in a for a in actions for word in ("Put", "Delete", "*"))
    for stmt in allows(policy):
        assert "*" not in stmt["Resource"]
        if "s3:GetObject" in stmt["Action"]:
            assert stmt["Resource"] == [f"{bucket_arn}/{prefix}/*"]
        if "s3:ListBucket" in stmt["Action"]:
            assert stmt["Resource"] == [bucket_arn]
            assert stmt["Condition"] == {"StringLike": {"s3:prefix": [f"{prefix}/*", prefix]}}
    assert [s for s in policy["Statement"] if s["Effect"] != "Allow"] == []


# --- the bucket we create ----------------------------------------------------------------------------


def test_bucket_has_the_exact_name_and_keeps_weights_on_destroy() -> None:
    rec, out = created()
    bucket = rec.one(T_BUCKET).inputs
    assert bucket["bucket"] == BUCKET
    assert bucket.get("forceDestroy", False) is False
    assert bucket["tags"] == {"team": "ml-platform"}
    assert out["bucket_name"] == BUCKET
    assert out["bucket_arn"] == f"arn:aws:s3:::{BUCKET}"
    assert out["uri"] == f"s3://{BUCKET}/{PREFIX}"


def test_bucket_is_private() -> None:
    rec, _ = created()
    block = rec.one(T_PUBLIC_ACCESS).inputs
    assert block["bucket"] == BUCKET
    for setting in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert block[setting] is True, setting
    ownership = rec.one(T_OWNERSHIP).inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}  # ACLs disabled


def test_bucket_is_encrypted_with_our_rotating_key_and_a_bucket_key() -> None:
    rec, out = created()
    key = rec.one(T_KEY)
    assert key.inputs["enableKeyRotation"] is True
    rules = rec.one(T_ENCRYPTION).inputs["rules"]
    assert len(rules) == 1
    default = rules[0]["applyServerSideEncryptionByDefault"]
    assert default["sseAlgorithm"] == "aws:kms"
    assert default["kmsMasterKeyId"] == key.outputs["arn"] == out["kms_key_arn"]
    assert rules[0]["bucketKeyEnabled"] is True
    alias = rec.one(T_ALIAS).inputs
    assert alias["targetKeyId"] == key.outputs["keyId"]
    assert alias["name"].startswith("alias/") and "." not in alias["name"]


def test_bucket_is_versioned_and_old_versions_expire() -> None:
    rec, _ = created()
    assert rec.one(T_VERSIONING).inputs["versioningConfiguration"]["status"] == "Enabled"
    (rule,) = rec.one(T_LIFECYCLE).inputs["rules"]
    assert rule["status"] == "Enabled"
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] > 0
    assert rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"] > 0
    assert "expiration" not in rule  # current weights never expire


def test_bucket_policy_denies_everything_without_tls() -> None:
    rec, _ = created()
    recorded = rec.one(T_BUCKET_POLICY)
    policy = json.loads(recorded.inputs["policy"])
    assert allows(policy) == []  # a deny-only policy can never make the bucket public
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert deny["Action"] == ["s3:*"]
    assert set(deny["Resource"]) == {f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"}
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # Written after the public access block, so no policy ever lands on an unguarded bucket.
    assert rec.one(T_PUBLIC_ACCESS).urn in recorded.dependencies


def test_tls_only_policy_is_a_pure_function_of_the_name() -> None:
    assert tls_only_bucket_policy(BUCKET) == tls_only_bucket_policy(BUCKET)
    (deny,) = tls_only_bucket_policy("other-bucket")["Statement"]
    assert deny["Resource"] == ["arn:aws:s3:::other-bucket", "arn:aws:s3:::other-bucket/*"]


def test_force_destroy_is_passed_when_asked() -> None:
    rec, _ = deploy(store_args(force_destroy=True))
    assert rec.one(T_BUCKET).inputs["forceDestroy"] is True


# --- the reader ---------------------------------------------------------------------------------------


def test_reader_can_only_read_the_model_prefix() -> None:
    rec, _ = created()
    assert_read_only_under_prefix(recorded_policy(rec), BUCKET, PREFIX)


def test_reader_decrypts_only_with_our_key_and_only_through_s3() -> None:
    rec, _ = created()
    key_arn = rec.one(T_KEY).outputs["arn"]
    (decrypt,) = [s for s in recorded_policy(rec)["Statement"] if "kms:Decrypt" in s["Action"]]
    assert decrypt["Action"] == ["kms:Decrypt"]
    assert decrypt["Resource"] == [key_arn]
    region = key_arn.split(":")[3]
    assert decrypt["Condition"]["StringEquals"] == {"kms:ViaService": f"s3.{region}.amazonaws.com"}
    context = decrypt["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"]
    assert all(c.startswith(f"arn:aws:s3:::{BUCKET}") for c in context)


def test_pod_identity_binds_the_serving_service_account() -> None:
    rec, out = created()
    association = rec.one(T_ASSOCIATION).inputs
    assert association["clusterName"] == "prod-eks"
    assert association["namespace"] == "inference"
    assert association["serviceAccount"] == "llm-server"
    role = rec.one(T_ROLE)
    assert association["roleArn"] == role.outputs["arn"] == out["reader_role_arn"]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}


def test_child_names_are_stable_and_prefixed() -> None:
    rec, _ = deploy(store_args(), name="weights")
    names = sorted(r.name for r in rec.resources if r.custom)
    assert all(n.startswith("weights-") for n in names)
    assert names == [
        "weights-bucket",
        "weights-encryption",
        "weights-key",
        "weights-key-alias",
        "weights-lifecycle",
        "weights-ownership",
        "weights-public-access",
        "weights-reader-association",
        "weights-reader-policy",
        "weights-reader-role",
        "weights-tls-only",
        "weights-versioning",
    ]


# --- an existing bucket -------------------------------------------------------------------------------


def test_existing_bucket_makes_only_the_reader() -> None:
    rec, out = existing_with_key()
    custom_types = {r.type for r in rec.resources if r.custom}
    assert custom_types == {T_ROLE, T_ROLE_POLICY, T_ASSOCIATION}
    assert out["bucket_name"] == BUCKET
    assert out["uri"] == f"s3://{BUCKET}/{PREFIX}"
    assert out["kms_key_arn"] == EXISTING_KEY


def test_existing_bucket_reader_decrypts_with_the_given_key_in_its_region() -> None:
    rec, _ = existing_with_key()
    policy = recorded_policy(rec)
    assert_read_only_under_prefix(policy, BUCKET, PREFIX)
    (decrypt,) = [s for s in policy["Statement"] if "kms:Decrypt" in s["Action"]]
    assert decrypt["Resource"] == [EXISTING_KEY]
    assert decrypt["Condition"]["StringEquals"] == {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}


def test_existing_bucket_without_a_customer_key_gets_no_kms_permission() -> None:
    rec, out = deploy(store_args(create_bucket=False, tags={}))
    policy = recorded_policy(rec)
    assert_read_only_under_prefix(policy, BUCKET, PREFIX)
    assert not any(a.startswith("kms:") for s in policy["Statement"] for a in s["Action"])
    assert out["kms_key_arn"] is None


# --- the policy as a pure function ----------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["m", "models/a", "org/team/model-v2.1"])
def test_reader_policy_is_read_only_for_any_prefix(prefix: str) -> None:
    policy = reader_policy("bucket-x", prefix, EXISTING_KEY)
    assert_read_only_under_prefix(policy, "bucket-x", prefix)


def test_reader_policy_without_key_has_two_statements() -> None:
    policy = reader_policy("bucket-x", "m")
    assert [s["Action"] for s in policy["Statement"]] == [["s3:GetObject"], ["s3:ListBucket"]]


# --- validation --------------------------------------------------------------------------------------


def test_good_args_have_no_problems() -> None:
    assert validate_model_store_args(store_args()) == []
    assert validate_model_store_args(store_args(create_bucket=False, existing_kms_key_arn=EXISTING_KEY)) == []


@pytest.mark.parametrize(
    "name",
    [
        "ab",  # too short
        "a" * 64,  # too long
        "Acme-Models",  # uppercase
        "acme_models",  # underscore
        "-acme",  # starts with a hyphen
        "acme.",  # ends with a period
        "acme..models",  # adjacent periods
        "192.168.5.4",  # an IP address
        "xn--acme",  # reserved prefix
        "acme-s3alias",  # reserved suffix
    ],
)
def test_bad_bucket_names_are_refused_naming_the_field(name: str) -> None:
    problems = validate_model_store_args(store_args(bucket_name=name))
    assert problems, name
    assert {p.split(":")[0] for p in problems} == {"bucket_name"}


@pytest.mark.parametrize("name", ["abc", "my.models.bucket", "a" * 63, "123-models", "models-2026"])
def test_good_bucket_names_pass(name: str) -> None:
    assert bucket_name_problems(name) == []


@pytest.mark.parametrize(
    ("prefix", "says"),
    [
        ("", "whole bucket"),
        ("/models/x", "leading"),
        ("models/x/", "trailing"),
        ("models/*", "wildcard"),
        ("models/${aws:username}", "wildcard"),
        ("models//x", "segment"),
        ("models/../secrets", "segment"),
    ],
)
def test_bad_prefixes_are_refused_naming_the_field(prefix: str, says: str) -> None:
    problems = validate_model_store_args(store_args(prefix=prefix))
    assert problems and all(p.startswith("prefix:") for p in problems)
    assert any(says in p for p in problems), problems


def test_existing_key_only_with_an_existing_bucket() -> None:
    problems = validate_model_store_args(store_args(existing_kms_key_arn=EXISTING_KEY))
    assert len(problems) == 1
    assert problems[0].startswith("existing_kms_key_arn:") and "create_bucket" in problems[0]


@pytest.mark.parametrize(
    "arn",
    [
        "alias/models",
        "arn:aws:kms:eu-west-1:210987654321:alias/models",  # an alias, not a key
        "arn:aws:s3:::acme-llm-weights",
        "1234abcd-12ab-34cd-56ef-1234567890ab",  # a bare key id
    ],
)
def test_existing_key_must_be_a_key_arn(arn: str) -> None:
    problems = validate_model_store_args(store_args(create_bucket=False, existing_kms_key_arn=arn))
    assert [p.split(":")[0] for p in problems] == ["existing_kms_key_arn"]


def test_force_destroy_only_for_a_bucket_we_create() -> None:
    problems = validate_model_store_args(store_args(create_bucket=False, force_destroy=True))
    assert [p.split(":")[0] for p in problems] == ["force_destroy"]


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"namespace": ""}, "namespace"),
        ({"service_account": ""}, "service_account"),
        ({"tags": {"aws:cost": "x"}}, "tags"),
    ],
)
def test_other_fields_are_named(changes: dict[str, Any], field_name: str) -> None:
    assert [p.split(":")[0] for p in validate_model_store_args(store_args(**changes))] == [field_name]


def test_constructor_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        ModelStore("bad", store_args(bucket_name="Bad_Name", prefix=""))
    message = str(raised.value)
    assert "bucket_name" in message and "prefix" in message


@pytest.mark.parametrize("force_destroy", [False, True])
def test_destroy_keeps_the_weights_and_their_protections_unless_forced(force_destroy: bool) -> None:
    rec, _ = deploy(store_args(force_destroy=force_destroy))
    kept = {r.type for r in rec.resources if r.custom and r.retain_on_delete}
    bucket_side = {r.type for r in rec.resources if r.type.startswith(("aws:s3/", "aws:kms/"))}
    assert bucket_side  # bucket, its settings, the key
    assert kept == (set() if force_destroy else bucket_side)
    # The reader's role is the stack's either way.
    assert not any(r.retain_on_delete for r in rec.resources if r.type.startswith("aws:iam/"))
