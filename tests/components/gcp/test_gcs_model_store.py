"""GcsModelStore and Workload Identity: a private, versioned bucket (CMEK when asked, with Cloud Storage's
agent allowed on the key before the bucket exists), kept on destroy unless forced, and one read-only grant
to exactly the serving ServiceAccount's principal, conditioned on the model's prefix."""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

import pulumi
import pytest

from components.clusters.gcp.model_store import (
    GcsModelStore,
    GcsModelStoreArgs,
    bucket_name_problems,
    object_prefix_condition,
    validate_gcs_model_store_args,
)
from components.clusters.gcp.workload_identity import (
    WORKLOAD_IDENTITY_EGRESS,
    workload_identity_principal,
    workload_pool_for,
)
from inferstack.planning.fakes.gcp import FAKE_PROJECT_NUMBER, service_agent
from inferstack.planning.recording import Recording, run_program

T_BUCKET = "gcp:storage/bucket:Bucket"
T_BINDING = "gcp:storage/bucketIAMMember:BucketIAMMember"
T_RING = "gcp:kms/keyRing:KeyRing"
T_KEY = "gcp:kms/cryptoKey:CryptoKey"
T_KEY_GRANT = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"

BUCKET = "acme-llm-weights"
PREFIX = "models/llama-3.1-8b"
PROJECT = "acme-inference"
READER = (
    "principal://iam.googleapis.com/projects/614120385432/locations/global/workloadIdentityPools/"
    "acme-inference.svc.id.goog/subject/ns/inference/sa/llm-server"
)
EXISTING_KEY = "projects/acme-keys/locations/europe-west4/keyRings/models/cryptoKeys/weights"
STORAGE_AGENT = f"serviceAccount:{service_agent(FAKE_PROJECT_NUMBER, 'gs-project-accounts')}"


def store_args(**changes: Any) -> GcsModelStoreArgs:
    base = GcsModelStoreArgs(
        bucket_name=BUCKET,
        prefix=PREFIX,
        create_bucket=True,
        project=PROJECT,
        location="europe-west4",
        reader_member=READER,
        labels={"team": "ml-platform"},
    )
    return dataclasses.replace(base, **changes)


def deploy(args: GcsModelStoreArgs, name: str = "models") -> tuple[Recording, dict[str, Any]]:
    """Run one GcsModelStore; also return its outputs, resolved."""
    resolved: dict[str, Any] = {}

    def program() -> None:
        store = GcsModelStore(name, args)
        store.bucket_name.apply(functools.partial(resolved.__setitem__, "bucket_name"))
        store.uri.apply(functools.partial(resolved.__setitem__, "uri"))
        if store.kms_key_name is None:
            resolved["kms_key_name"] = None
        else:
            store.kms_key_name.apply(functools.partial(resolved.__setitem__, "kms_key_name"))

    return run_program(program), resolved


@functools.cache
def plain() -> tuple[Recording, dict[str, Any]]:
    return deploy(store_args())


@functools.cache
def with_new_key() -> tuple[Recording, dict[str, Any]]:
    return deploy(store_args(create_kms_key=True))


@functools.cache
def with_existing_key() -> tuple[Recording, dict[str, Any]]:
    return deploy(store_args(kms_key_name=EXISTING_KEY))


@functools.cache
def existing_bucket() -> tuple[Recording, dict[str, Any]]:
    return deploy(store_args(create_bucket=False, labels={}))


_CONDITION = re.compile(
    r'^resource\.name\.startsWith\("(?P<objects>[^"]*)"\) \|\| '
    r'api\.getAttribute\("storage\.googleapis\.com/objectListPrefix", ""\)\.startsWith\("(?P<listing>[^"]*)"\)$'
)


def condition_admits(
    expression: str, *, object_name: str | None = None, list_prefix: str | None = None
) -> bool:
    """Evaluate the recorded condition (the one shape it may have) for an object read or a listing."""
    match = _CONDITION.match(expression)
    assert match, f"unexpected condition shape: {expression}"
    if object_name is not None:
        return f"projects/_/buckets/{BUCKET}/objects/{object_name}".startswith(match["objects"])
    assert list_prefix is not None
    return list_prefix.startswith(match["listing"])


# --- the bucket we create ------------------------------------------------------------------------------


def test_bucket_has_the_exact_name_location_and_labels() -> None:
    rec, out = plain()
    bucket = rec.one(T_BUCKET).inputs
    assert bucket["name"] == BUCKET
    assert bucket["project"] == PROJECT
    assert bucket["location"].lower() == "europe-west4"
    assert bucket["labels"] == {"team": "ml-platform"}
    assert out["bucket_name"] == BUCKET
    assert out["uri"] == f"gs://{BUCKET}/{PREFIX}"


def test_bucket_is_private() -> None:
    rec, _ = plain()
    bucket = rec.one(T_BUCKET).inputs
    assert bucket["uniformBucketLevelAccess"] is True  # IAM only, no object ACLs
    assert bucket["publicAccessPrevention"] == "enforced"  # allUsers grants cannot take effect
    assert "website" not in bucket and "cors" not in bucket


def test_bucket_is_versioned_and_old_versions_and_abandoned_uploads_go() -> None:
    rec, _ = plain()
    bucket = rec.one(T_BUCKET).inputs
    assert bucket["versioning"] == {"enabled": True}
    rules = {r["action"]["type"]: r["condition"] for r in bucket["lifecycleRules"]}
    assert set(rules) == {"Delete", "AbortIncompleteMultipartUpload"}
    assert rules["Delete"]["daysSinceNoncurrentTime"] > 0
    assert rules["Delete"].get("withState") == "ARCHIVED"  # current weights never expire
    assert "age" not in rules["Delete"]
    assert rules["AbortIncompleteMultipartUpload"]["age"] > 0


def test_without_cmek_there_is_no_key_and_google_encrypts() -> None:
    rec, out = plain()
    assert rec.of_type(T_RING) == [] and rec.of_type(T_KEY) == [] and rec.of_type(T_KEY_GRANT) == []
    assert "encryption" not in rec.one(T_BUCKET).inputs
    assert out["kms_key_name"] is None


def test_a_new_key_rotates_and_encrypts_the_bucket_after_the_agent_may_use_it() -> None:
    rec, out = with_new_key()
    ring, key, grant, bucket = rec.one(T_RING), rec.one(T_KEY), rec.one(T_KEY_GRANT), rec.one(T_BUCKET)
    assert ring.inputs["location"] == "europe-west4"  # Cloud Storage needs the key in the bucket's location
    assert key.inputs["keyRing"] == ring.id
    assert key.inputs["rotationPeriod"] == "7776000s"
    assert key.inputs["purpose"] == "ENCRYPT_DECRYPT"
    assert grant.inputs == {
        "cryptoKeyId": key.id,
        "role": "roles/cloudkms.cryptoKeyEncrypterDecrypter",
        "member": STORAGE_AGENT,
    }
    assert bucket.inputs["encryption"] == {"defaultKmsKeyName": key.id}
    assert grant.urn in bucket.dependencies  # the agent can use the key before the bucket names it
    assert out["kms_key_name"] == key.id


def test_an_existing_key_is_granted_to_the_agent_and_used_without_making_one() -> None:
    rec, out = with_existing_key()
    assert rec.of_type(T_RING) == [] and rec.of_type(T_KEY) == []
    grant, bucket = rec.one(T_KEY_GRANT), rec.one(T_BUCKET)
    assert grant.inputs["cryptoKeyId"] == EXISTING_KEY
    assert grant.inputs["member"] == STORAGE_AGENT
    assert grant.inputs["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert bucket.inputs["encryption"] == {"defaultKmsKeyName": EXISTING_KEY}
    assert grant.urn in bucket.dependencies
    assert out["kms_key_name"] == EXISTING_KEY


@pytest.mark.parametrize("force_destroy", [False, True])
def test_destroy_keeps_the_weights_and_their_key_unless_forced(force_destroy: bool) -> None:
    rec, _ = deploy(store_args(create_kms_key=True, force_destroy=force_destroy))
    kept = {r.type for r in rec.resources if r.custom and r.retain_on_delete}
    bucket_side = {T_BUCKET, T_RING, T_KEY, T_KEY_GRANT}
    assert {r.type for r in rec.resources if r.custom} == bucket_side | {T_BINDING}
    assert kept == (set() if force_destroy else bucket_side)
    assert rec.one(T_BUCKET).inputs["forceDestroy"] is force_destroy
    assert rec.one(T_BINDING).retain_on_delete is False  # the reader's grant is the stack's either way


def test_child_names_are_stable_and_prefixed() -> None:
    rec, _ = deploy(store_args(create_kms_key=True), name="weights")
    names = sorted(r.name for r in rec.resources if r.custom)
    assert names == [
        "weights-bucket",
        "weights-key",
        "weights-key-storage-agent",
        "weights-keyring",
        "weights-reader",
    ]


# --- the reader ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant", [plain, with_new_key, existing_bucket], ids=["created", "cmek", "existing"]
)
def test_reader_gets_one_read_only_grant_on_exactly_this_bucket(variant: Any) -> None:
    rec, _ = variant()
    (binding,) = rec.of_type(T_BINDING)
    assert binding.inputs["role"] == "roles/storage.objectViewer"
    assert binding.inputs["bucket"] == BUCKET
    assert binding.inputs["member"] == READER
    # Nothing else anywhere grants the reader anything.
    others = [r for r in rec.resources if r.custom and r is not binding and r.inputs.get("member") == READER]
    assert others == []


def test_reader_grant_waits_for_the_bucket() -> None:
    rec, _ = plain()
    assert rec.one(T_BUCKET).urn in rec.one(T_BINDING).dependencies


def test_reader_may_read_and_list_only_under_the_prefix() -> None:
    rec, _ = plain()
    condition = rec.one(T_BINDING).inputs["condition"]
    assert condition["title"]
    expression = condition["expression"]
    admitted = [f"{PREFIX}/config.json", f"{PREFIX}/SHA256SUMS", f"{PREFIX}/sub/model-00001.safetensors"]
    refused = ["models/other/config.json", f"{PREFIX}-evil/config.json", "config.json", PREFIX]
    assert all(condition_admits(expression, object_name=o) for o in admitted)
    assert not any(condition_admits(expression, object_name=o) for o in refused)
    assert condition_admits(expression, list_prefix=f"{PREFIX}/")
    assert condition_admits(expression, list_prefix=f"{PREFIX}/sub/")
    assert not condition_admits(expression, list_prefix="")  # listing the whole bucket
    assert not condition_admits(expression, list_prefix="models/")
    assert not condition_admits(expression, list_prefix=f"{PREFIX}-evil/")


def test_existing_bucket_makes_only_the_grant() -> None:
    rec, out = existing_bucket()
    assert {r.type for r in rec.resources if r.custom} == {T_BINDING}
    assert out == {"bucket_name": BUCKET, "uri": f"gs://{BUCKET}/{PREFIX}", "kms_key_name": None}


def test_condition_is_a_pure_function_of_bucket_and_prefix() -> None:
    resolved: dict[str, Any] = {}

    def program() -> None:
        condition = object_prefix_condition("b-1", "m/x")
        pulumi.Output.from_input(condition.expression).apply(
            functools.partial(resolved.__setitem__, "expression")
        )

    run_program(program)
    assert resolved["expression"] == (
        'resource.name.startsWith("projects/_/buckets/b-1/objects/m/x/") || '
        'api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith("m/x/")'
    )


# --- validation --------------------------------------------------------------------------------------


def fields_of(problems: list[str]) -> list[str]:
    return [p.split(":", 1)[0] for p in problems]


def test_good_args_have_no_problems() -> None:
    assert validate_gcs_model_store_args(store_args()) == []
    assert validate_gcs_model_store_args(store_args(create_kms_key=True)) == []
    assert validate_gcs_model_store_args(store_args(kms_key_name=EXISTING_KEY)) == []
    assert validate_gcs_model_store_args(store_args(create_bucket=False)) == []


@pytest.mark.parametrize(
    "name",
    [
        "ab",  # too short
        "a" * 64,  # too long without dots
        "Acme-Models",  # uppercase
        "acme models",  # a space
        "-acme",  # starts with a hyphen
        "acme_",  # ends with an underscore
        "acme..models",  # an empty dotted part
        "a" * 64 + ".example.com",  # a dotted part over 63
        "192.168.5.4",  # an IP address
        "goog-models",  # reserved prefix
        "my-google-models",  # contains google
        "my-g00gle-models",  # a look-alike
    ],
)
def test_bad_bucket_names_are_refused_naming_the_field(name: str) -> None:
    problems = validate_gcs_model_store_args(store_args(bucket_name=name))
    assert problems, name
    assert set(fields_of(problems)) == {"bucket_name"}


@pytest.mark.parametrize("name", ["abc", "acme_llm-weights", "a" * 63, "123-models", "models.example.com"])
def test_good_bucket_names_pass(name: str) -> None:
    assert bucket_name_problems(name) == []


@pytest.mark.parametrize(
    ("prefix", "says"),
    [
        ("", "whole bucket"),
        ("/models/x", "leading"),
        ("models/x/", "trailing"),
        ("models/*", "wildcards"),
        ('models/x") || true || ("', "quotes"),
        ("models/x\\y", "quotes"),
        ("models/x\ny", "control"),
        ("models//x", "segment"),
        ("models/../secrets", "segment"),
    ],
)
def test_bad_prefixes_are_refused_naming_the_field(prefix: str, says: str) -> None:
    problems = validate_gcs_model_store_args(store_args(prefix=prefix))
    assert problems and set(fields_of(problems)) == {"prefix"}
    assert any(says in p for p in problems), problems


@pytest.mark.parametrize(
    "key",
    [
        "weights",  # a bare name
        "projects/acme/locations/europe-west4/keyRings/models",  # a key ring
        EXISTING_KEY + "/cryptoKeyVersions/1",  # a key version
        "projects/acme/locations/europe-west4/keyRings/models/cryptoKeys/bad key",
    ],
)
def test_kms_key_name_must_name_a_key(key: str) -> None:
    assert fields_of(validate_gcs_model_store_args(store_args(kms_key_name=key))) == ["kms_key_name"]


def test_kms_key_must_be_in_the_buckets_location() -> None:
    key = "projects/acme-keys/locations/us-central1/keyRings/models/cryptoKeys/weights"
    (problem,) = validate_gcs_model_store_args(store_args(kms_key_name=key))
    assert problem.startswith("kms_key_name:") and "us-central1" in problem and "europe-west4" in problem


def test_existing_and_new_key_are_mutually_exclusive_and_named_together() -> None:
    (problem,) = validate_gcs_model_store_args(store_args(kms_key_name=EXISTING_KEY, create_kms_key=True))
    assert problem.startswith("kms_key_name, create_kms_key:")


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"kms_key_name": EXISTING_KEY}, "kms_key_name"),
        ({"create_kms_key": True}, "create_kms_key"),
        ({"force_destroy": True}, "force_destroy"),
    ],
)
def test_bucket_options_only_for_a_bucket_we_create(changes: dict[str, Any], field_name: str) -> None:
    problems = validate_gcs_model_store_args(store_args(create_bucket=False, **changes))
    assert fields_of(problems) == [field_name]
    assert "create_bucket" in problems[0]


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"reader_member": "allUsers"}, "reader_member"),
        ({"reader_member": "allAuthenticatedUsers"}, "reader_member"),
        ({"project": ""}, "project"),
        ({"location": "Europe West"}, "location"),
        ({"labels": {"Team": "ml"}}, "labels"),
        ({"labels": {"team": "ML Platform"}}, "labels"),
    ],
)
def test_other_fields_are_named(changes: dict[str, Any], field_name: str) -> None:
    assert fields_of(validate_gcs_model_store_args(store_args(**changes))) == [field_name]


def test_constructor_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        GcsModelStore(
            "bad", store_args(bucket_name="Bad Name", prefix="", create_bucket=False, force_destroy=True)
        )
    message = str(raised.value)
    assert "bucket_name" in message and "prefix" in message and "force_destroy" in message


# --- Workload Identity ---------------------------------------------------------------------------------


def test_principal_names_the_kubernetes_service_account_in_the_pool() -> None:
    resolved: list[str] = []
    run_program(
        lambda: workload_identity_principal(
            "614120385432", workload_pool_for(PROJECT), "inference", "llm-server"
        ).apply(resolved.append)
    )
    assert resolved == [READER]


def test_principal_takes_the_project_number_as_an_output() -> None:
    resolved: list[str] = []

    def program() -> None:
        number = pulumi.Output.from_input("123456789012")
        pool = pulumi.Output.from_input("p-proj.svc.id.goog")
        workload_identity_principal(number, pool, "cert-manager", "cert-manager").apply(resolved.append)

    run_program(program)
    assert resolved == [
        "principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/"
        "p-proj.svc.id.goog/subject/ns/cert-manager/sa/cert-manager"
    ]


@pytest.mark.parametrize(
    ("parts", "says"),
    [
        (("acme-inference", "acme-inference.svc.id.goog", "ns", "sa"), "project_number"),
        (("614120385432", "acme-inference", "ns", "sa"), "workload_pool"),
        (("614120385432", "acme-inference.svc.id.goog", "Inference", "sa"), "namespace"),
        (("614120385432", "acme-inference.svc.id.goog", "ns", "llm_server"), "service_account"),
    ],
)
def test_bad_principal_parts_are_refused_naming_them(parts: tuple[str, str, str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        workload_identity_principal(*parts)


def test_metadata_server_egress_covers_both_gke_dataplanes() -> None:
    assert ("169.254.169.252/32", 988) in WORKLOAD_IDENTITY_EGRESS  # network policy with Calico
    assert ("169.254.169.254/32", 80) in WORKLOAD_IDENTITY_EGRESS  # Dataplane V2
    # Link-local single addresses only: the policy must not open anything wider.
    assert all(
        cidr.startswith("169.254.169.") and cidr.endswith("/32") for cidr, _ in WORKLOAD_IDENTITY_EGRESS
    )
