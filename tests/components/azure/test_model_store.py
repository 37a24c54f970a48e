"""AzureBlobModelStore: a private account (no public or shared-key access, TLS 1.2, infrastructure
encryption, CMK when asked with the key grant before the account), kept on destroy unless forced, and one
read-only grant to the serving identity, on the container, conditioned on the model's prefix."""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any
from unittest import mock

import pytest

from components.clusters.azure.model_store import (
    AzureBlobModelStore,
    AzureBlobModelStoreArgs,
    CustomerManagedKey,
    StoreNetworkAccess,
    prefix_condition,
    validate_azure_blob_model_store_args,
)
from inferstack.planning import fakes
from inferstack.planning.recording import Recording, run_program

T_ACCOUNT = "azure-native:storage:StorageAccount"
T_CONTAINER = "azure-native:storage:BlobContainer"
T_BLOB_SERVICE = "azure-native:storage:BlobServiceProperties"
T_ROLE = "azure-native:authorization:RoleAssignment"
T_IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"

SUB = "00000000-1111-2222-3333-444444444444"
RG = "rg-llm-prod"
ACCOUNT = "acmellmweights"
CONTAINER = "models"
PREFIX = "llama-3.1-8b/rev-0e9e39f"
READER = "7d5b5a4e-3c1f-4a3b-9d2e-6f1a2b3c4d5e"
READER_ROLE = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
# Roles that can write, delete or grant: never for the reader.
WRITE_ROLES = {
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe",  # Storage Blob Data Contributor
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner
    "b24988ac-6180-42a0-ab88-20f7382dd24c",  # Contributor
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",  # Owner
}
VAULT_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/kv-llm-prod"
CMK = CustomerManagedKey(
    key_vault_id=VAULT_ID, key_vault_uri="https://kv-llm-prod.vault.azure.net/", key_name="weights"
)
ACCOUNT_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/{ACCOUNT}"


def store_args(**changes: Any) -> AzureBlobModelStoreArgs:
    base = AzureBlobModelStoreArgs(
        account_name=ACCOUNT,
        container_name=CONTAINER,
        prefix=PREFIX,
        create_account=True,
        subscription_id=SUB,
        resource_group_name=RG,
        location="westeurope",
        reader_principal_id=READER,
        tags={"team": "ml-platform"},
    )
    return dataclasses.replace(base, **changes)


def _arm_identity_outputs(type_token: str, name: str, inputs: dict[str, Any], *rest: Any) -> dict[str, Any]:
    """The generic fakes echo an account's `identity.userAssignedIdentities` input (a list of ids), but ARM
    returns a map of id to {principalId, clientId}; answer as ARM does until the Azure fakes do."""
    outputs = _generic_outputs(type_token, name, inputs, *rest)
    identity = outputs.get("identity")
    if type_token == T_ACCOUNT and isinstance(identity, dict):
        ids = identity.get("userAssignedIdentities") or []
        if isinstance(ids, list):
            identity["userAssignedIdentities"] = {i: {"principalId": READER, "clientId": READER} for i in ids}
    return outputs


_generic_outputs = fakes.outputs_for


def deploy(args: AzureBlobModelStoreArgs, name: str = "models") -> tuple[Recording, dict[str, Any]]:
    resolved: dict[str, Any] = {}

    def program() -> None:
        store = AzureBlobModelStore(name, args)
        for key in ("uri", "account_id", "blob_endpoint", "container_name"):
            getattr(store, key).apply(functools.partial(resolved.__setitem__, key))

    with mock.patch.object(fakes, "outputs_for", _arm_identity_outputs):
        return run_program(program), resolved


@functools.cache
def plain() -> tuple[Recording, dict[str, Any]]:
    return deploy(store_args())


@functools.cache
def with_cmk() -> tuple[Recording, dict[str, Any]]:
    return deploy(store_args(customer_managed_key=CMK))


@functools.cache
def existing() -> tuple[Recording, dict[str, Any]]:
    return deploy(store_args(create_account=False))


def reader_of(rec: Recording) -> dict[str, Any]:
    return dict(rec.one(T_ROLE, "-reader").inputs)


# The condition language's shape we emit; evaluated below for a request the way ABAC does (a clause
# "!(action matches) OR (attribute check)" holds when the request is not that action or passes the check).
_CLAUSE = re.compile(
    r"\( !\(ActionMatches\{'(?P<action>[^']+)'\} AND (?P<not>NOT )?SubOperationMatches\{'(?P<sub>[^']+)'\}\) \)"
    r" OR \( @Resource\[[^\]]+containers:name\] StringEquals '(?P<container>[^']*)' AND"
    r" @(?P<source>Resource|Request)\[[^\]]+blobs:(?P<attr>path|prefix)\] StringStartsWith '(?P<start>[^']*)' \)"
)


def condition_admits(
    condition: str, *, container: str, blob: str | None = None, list_prefix: str | None = None
) -> bool:
    """Evaluate the recorded condition for a blob read (`blob`) or a listing (`list_prefix`) in `container`."""
    clauses = list(_CLAUSE.finditer(condition))
    assert len(clauses) == 2, condition
    listing = list_prefix is not None
    for clause in clauses:
        applies = (clause["sub"] == "Blob.List") != bool(clause["not"])
        if applies != listing:
            continue  # the request is not this clause's action: the clause holds
        value = list_prefix if listing else blob
        assert value is not None
        if not (clause["container"] == container and value.startswith(clause["start"])):
            return False
    return True


# --- the account we create ---------------------------------------------------------------------------------


def test_account_is_private_and_entra_only() -> None:
    rec, _ = plain()
    account = rec.one(T_ACCOUNT).inputs
    assert account["accountName"] == ACCOUNT
    assert account["kind"] == "StorageV2"
    assert account["allowBlobPublicAccess"] is False
    assert account["allowSharedKeyAccess"] is False
    assert account["defaultToOAuthAuthentication"] is True
    assert account["enableHttpsTrafficOnly"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowCrossTenantReplication"] is False
    assert account["isLocalUserEnabled"] is False and account["isSftpEnabled"] is False
    assert rec.one(T_CONTAINER).inputs["publicAccess"] == "None"


def test_private_endpoint_mode_disables_the_public_endpoint() -> None:
    rec, _ = plain()
    account = rec.one(T_ACCOUNT).inputs
    assert account["publicNetworkAccess"] == "Disabled"
    assert account["networkRuleSet"]["defaultAction"] == "Deny"
    assert account["networkRuleSet"]["bypass"] == "None"
    assert account["networkRuleSet"].get("ipRules", []) == []


def test_allow_listed_mode_denies_all_but_the_listed() -> None:
    subnet = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/v/subnets/nodes"
    rec, _ = deploy(
        store_args(
            network_access=StoreNetworkAccess.ALLOW_LISTED,
            allowed_ip_ranges=["198.51.100.7/32", "203.0.113.0/24"],
            allowed_subnet_ids=[subnet],
        )
    )
    rules = rec.one(T_ACCOUNT).inputs["networkRuleSet"]
    assert rec.one(T_ACCOUNT).inputs["publicNetworkAccess"] == "Enabled"
    assert rules["defaultAction"] == "Deny" and rules["bypass"] == "None"
    assert [r["iPAddressOrRange"] for r in rules["ipRules"]] == ["198.51.100.7", "203.0.113.0/24"]
    assert [r["virtualNetworkResourceId"] for r in rules["virtualNetworkRules"]] == [subnet]


def test_microsoft_managed_keys_with_infrastructure_encryption_by_default() -> None:
    rec, _ = plain()
    encryption = rec.one(T_ACCOUNT).inputs["encryption"]
    assert encryption["requireInfrastructureEncryption"] is True
    assert encryption["keySource"] == "Microsoft.Storage"
    assert "keyVaultProperties" not in encryption
    assert rec.of_type(T_IDENTITY) == []


def test_cmk_uses_the_key_through_an_identity_granted_before_the_account() -> None:
    rec, _ = with_cmk()
    account = rec.one(T_ACCOUNT)
    identity = rec.one(T_IDENTITY)
    grant = rec.one(T_ROLE, "-cmk-key-user")
    encryption = account.inputs["encryption"]
    assert encryption["keySource"] == "Microsoft.Keyvault"
    assert encryption["keyVaultProperties"] == {
        "keyName": "weights",
        "keyVaultUri": "https://kv-llm-prod.vault.azure.net/",
    }  # versionless: rotation is followed
    assert encryption["encryptionIdentity"]["encryptionUserAssignedIdentity"] == identity.id
    assert account.inputs["identity"]["type"] == "UserAssigned"
    assert grant.inputs["scope"] == f"{VAULT_ID}/keys/weights"
    assert grant.inputs["roleDefinitionId"].endswith("/e147488a-f6f5-4113-8e2d-b22465e65bf6")
    assert grant.inputs["principalType"] == "ServicePrincipal"
    assert grant.urn in account.dependencies


def test_versions_and_soft_delete_keep_overwritten_shards() -> None:
    rec, _ = plain()
    service = rec.one(T_BLOB_SERVICE).inputs
    assert service["isVersioningEnabled"] is True
    assert service["deleteRetentionPolicy"] == {"enabled": True, "days": 30}
    assert service["containerDeleteRetentionPolicy"] == {"enabled": True, "days": 30}


@pytest.mark.parametrize("force_destroy", [False, True])
def test_destroy_keeps_the_weights_and_their_key_grant_unless_forced(force_destroy: bool) -> None:
    rec, _ = deploy(store_args(customer_managed_key=CMK, force_destroy=force_destroy))
    custom = [r for r in rec.resources if r.custom]
    kept = {r.name for r in custom if r.retain_on_delete}
    store_side = {
        "models-account",
        "models-container",
        "models-blob-service",
        "models-cmk-identity",
        "models-cmk-key-user",
    }
    assert {r.name for r in custom} == store_side | {"models-reader"}
    assert kept == (set() if force_destroy else store_side)


# --- the reader --------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [plain, with_cmk, existing], ids=["created", "cmk", "existing"])
def test_reader_gets_only_storage_blob_data_reader_on_exactly_this_container(variant: Any) -> None:
    rec, _ = variant()
    reader = reader_of(rec)
    role_guid = reader["roleDefinitionId"].rsplit("/", 1)[1]
    assert role_guid == READER_ROLE and role_guid not in WRITE_ROLES
    assert (
        reader["roleDefinitionId"]
        == f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{READER_ROLE}"
    )
    assert reader["scope"] == f"{ACCOUNT_ID}/blobServices/default/containers/{CONTAINER}"
    assert reader["principalId"] == READER
    assert reader["principalType"] == "ServicePrincipal"
    # Nothing else grants the reader anything.
    others = [r for r in rec.of_type(T_ROLE) if r.inputs.get("principalId") == READER]
    assert len(others) == 1


def test_reader_may_read_and_list_only_under_the_prefix() -> None:
    rec, _ = plain()
    reader = reader_of(rec)
    assert reader["conditionVersion"] == "2.0"
    condition = reader["condition"]
    assert f"'{PREFIX}/'" in condition
    admitted = [f"{PREFIX}/config.json", f"{PREFIX}/SHA256SUMS", f"{PREFIX}/sub/model-00001.safetensors"]
    refused = ["other/config.json", f"{PREFIX}-evil/config.json", "config.json", PREFIX]
    assert all(condition_admits(condition, container=CONTAINER, blob=b) for b in admitted)
    assert not any(condition_admits(condition, container=CONTAINER, blob=b) for b in refused)
    assert not condition_admits(condition, container="other", blob=f"{PREFIX}/config.json")
    assert condition_admits(condition, container=CONTAINER, list_prefix=f"{PREFIX}/")
    assert condition_admits(condition, container=CONTAINER, list_prefix=f"{PREFIX}/sub/")
    assert not condition_admits(condition, container=CONTAINER, list_prefix="")
    assert not condition_admits(condition, container=CONTAINER, list_prefix=f"{PREFIX}-evil/")


def test_reader_grant_waits_for_the_container() -> None:
    rec, _ = plain()
    assert rec.one(T_CONTAINER).urn in rec.one(T_ROLE, "-reader").dependencies


def test_existing_account_makes_only_the_grant() -> None:
    rec, out = existing()
    assert {r.type for r in rec.resources if r.custom} == {T_ROLE}
    assert out["uri"] == f"az://{ACCOUNT}/{CONTAINER}/{PREFIX}"
    assert out["account_id"] == ACCOUNT_ID


def test_outputs_name_the_model() -> None:
    _, out = plain()
    assert out["uri"] == f"az://{ACCOUNT}/{CONTAINER}/{PREFIX}"
    assert out["blob_endpoint"] == f"https://{ACCOUNT}.blob.core.windows.net/"
    assert out["account_id"] == ACCOUNT_ID


def test_condition_is_a_pure_function_of_container_and_prefix() -> None:
    condition = prefix_condition("c1", "m/x")
    assert condition.count("StringStartsWith 'm/x/'") == 2
    assert condition.count("StringEquals 'c1'") == 2
    assert "blobs:path]" in condition and "blobs:prefix]" in condition


# --- validation --------------------------------------------------------------------------------------


def fields_of(problems: list[str]) -> list[str]:
    return [p.split(":", 1)[0] for p in problems]


def test_good_args_have_no_problems() -> None:
    assert validate_azure_blob_model_store_args(store_args()) == []
    assert validate_azure_blob_model_store_args(store_args(customer_managed_key=CMK)) == []
    assert validate_azure_blob_model_store_args(store_args(create_account=False)) == []


@pytest.mark.parametrize(
    ("prefix", "says"),
    [
        ("", "whole container"),
        ("/models/x", "leading"),
        ("models/x/", "trailing"),
        ("models/*", "wildcards"),
        ("models/x' OR true OR '", "quotes"),
        ("models/x\ny", "control"),
        ("models//x", "segment"),
        ("models/../secrets", "segment"),
    ],
)
def test_bad_prefixes_are_refused_naming_the_field(prefix: str, says: str) -> None:
    problems = validate_azure_blob_model_store_args(store_args(prefix=prefix))
    assert problems and set(fields_of(problems)) == {"prefix"}
    assert any(says in p for p in problems), problems


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"account_name": "Acme-Weights"}, "account_name"),
        ({"account_name": "ab"}, "account_name"),
        ({"account_name": "a" * 25}, "account_name"),
        ({"container_name": "Models"}, "container_name"),
        ({"container_name": "my--models"}, "container_name"),
        ({"container_name": "-models"}, "container_name"),
        ({"sku": "Premium_LRS"}, "sku"),
        ({"allowed_ip_ranges": ["203.0.113.0/24"]}, "allowed_ip_ranges"),  # private endpoint mode
        ({"network_access": StoreNetworkAccess.ALLOW_LISTED}, "allowed_ip_ranges, allowed_subnet_ids"),
        (
            {"network_access": StoreNetworkAccess.ALLOW_LISTED, "allowed_ip_ranges": ["10.0.0.0/8"]},
            "allowed_ip_ranges",
        ),
        (
            {"network_access": StoreNetworkAccess.ALLOW_LISTED, "allowed_ip_ranges": ["198.51.100.0/31"]},
            "allowed_ip_ranges",
        ),
        (
            {"network_access": StoreNetworkAccess.ALLOW_LISTED, "allowed_ip_ranges": ["not-an-ip"]},
            "allowed_ip_ranges",
        ),
        (
            {"customer_managed_key": dataclasses.replace(CMK, key_vault_uri="https://kv.example.com/")},
            "customer_managed_key.key_vault_uri",
        ),
        (
            {"customer_managed_key": dataclasses.replace(CMK, key_name="weights/0123abcd")},
            "customer_managed_key.key_name",
        ),
        ({"create_account": False, "customer_managed_key": CMK}, "customer_managed_key"),
        ({"create_account": False, "force_destroy": True}, "force_destroy"),
        ({"tags": {"a/b": "x"}}, "tags"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], field_name: str) -> None:
    assert fields_of(validate_azure_blob_model_store_args(store_args(**changes))) == [field_name]


def test_constructor_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        AzureBlobModelStore("bad", store_args(account_name="Bad Name", prefix="", sku="x"))
    message = str(raised.value)
    assert "account_name" in message and "prefix" in message and "sku" in message
