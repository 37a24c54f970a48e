"""Workload ID: one managed identity, one federated credential bound to exactly the serving ServiceAccount
of exactly this cluster's issuer with Entra's token-exchange audience, and built-in role grants by GUID to
the identity as a service principal."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components.address_space import internet_exposure
from components.clusters.azure.workload_identity import (
    CLIENT_ID_ANNOTATION,
    DNS_ZONE_CONTRIBUTOR,
    ENTRA_ID_LOGIN_EGRESS,
    ENTRA_LOGIN_HOST,
    KEY_VAULT_CRYPTO_USER,
    POD_LABEL,
    STORAGE_BLOB_DATA_READER,
    federated_identity,
    federated_identity_problems,
    role_assignment,
    service_account_annotations,
    subject_for,
)
from inferstack.planning.recording import Recording, run_program

T_IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
T_CREDENTIAL = "azure-native:managedidentity:FederatedIdentityCredential"
T_ROLE = "azure-native:authorization:RoleAssignment"
ISSUER = "https://westeurope.oic.prod-aks.azure.com/00000000-0000-0000-0000-000000000000/11111111-2222/"
SUB = "00000000-1111-2222-3333-444444444444"
ZONE = f"/subscriptions/{SUB}/resourceGroups/rg-dns/providers/Microsoft.Network/dnszones/llm.example.com"


def bind(**changes: Any) -> Recording:
    kwargs: dict[str, Any] = {
        "resource_group_name": "rg-llm-prod",
        "location": "westeurope",
        "issuer_url": ISSUER,
        "namespace": "inference",
        "service_account": "llm-server",
        "tags": {"team": "ml-platform"},
        **changes,
    }
    return run_program(lambda: federated_identity("llm-reader", **kwargs))


def test_the_credential_trusts_exactly_the_serving_service_account_of_this_issuer() -> None:
    rec = bind()
    credential = rec.one(T_CREDENTIAL).inputs
    assert credential["subject"] == "system:serviceaccount:inference:llm-server"
    assert credential["issuer"] == ISSUER
    assert credential["audiences"] == ["api://AzureADTokenExchange"]
    assert credential["resourceGroupName"] == "rg-llm-prod"
    # ...on this identity and no other: its resourceName is the identity's `name` output (which the generic
    # fakes leave unknown, so the input is unset here), hence the dependency.
    (identity,) = rec.of_type(T_IDENTITY)
    assert credential.get("resourceName") in (None, identity.outputs.get("name"))
    assert identity.urn in rec.one(T_CREDENTIAL).dependencies
    assert identity.inputs["location"] == "westeurope"
    assert identity.inputs["tags"] == {"team": "ml-platform"}


def test_names_are_prefixed() -> None:
    assert sorted(r.name for r in bind().resources if r.custom) == ["llm-reader", "llm-reader-federated"]


def test_subject_is_kubernetes_own_format() -> None:
    assert subject_for("ns", "sa") == "system:serviceaccount:ns:sa"


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"issuer_url": "http://issuer.example.com/"}, "issuer_url"),
        ({"namespace": "Inference"}, "namespace"),
        ({"namespace": "a" * 64}, "namespace"),
        ({"service_account": "llm_server"}, "service_account"),
    ],
)
def test_bad_parts_are_refused_naming_them(changes: dict[str, Any], field_name: str) -> None:
    parts = {"issuer_url": ISSUER, "namespace": "inference", "service_account": "llm-server", **changes}
    problems = federated_identity_problems(**parts)
    assert [p.split(":", 1)[0] for p in problems] == [field_name]
    with pytest.raises(ValueError, match=field_name):
        bind(**changes)


def test_an_issuer_output_is_taken_unchecked() -> None:
    rec = bind(issuer_url=pulumi.Output.from_input(ISSUER))
    assert rec.one(T_CREDENTIAL).inputs["issuer"] == ISSUER


def test_pod_and_service_account_carry_what_the_webhook_reads() -> None:
    assert POD_LABEL == {"azure.workload.identity/use": "true"}
    assert CLIENT_ID_ANNOTATION == "azure.workload.identity/client-id"
    assert service_account_annotations("abc") == {"azure.workload.identity/client-id": "abc"}


def test_the_token_exchange_egress_is_https_to_entra_ids_sign_in_ranges_only() -> None:
    assert ENTRA_LOGIN_HOST == "login.microsoftonline.com"
    # Entra ID's sign-in ranges only, on 443: never the internet.
    assert {port for _, port in ENTRA_ID_LOGIN_EGRESS} == {443}
    assert not internet_exposure([cidr for cidr, _ in ENTRA_ID_LOGIN_EGRESS])
    assert ("20.190.128.0/18", 443) in ENTRA_ID_LOGIN_EGRESS


# --- role assignments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "guid"),
    [
        (STORAGE_BLOB_DATA_READER, "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"),
        (KEY_VAULT_CRYPTO_USER, "12338af0-0e69-4776-bea7-57ae8d297424"),
        (DNS_ZONE_CONTRIBUTOR, "befefa01-2a29-4197-83a8-272ff33ce314"),
    ],
)
def test_built_in_roles_are_their_published_guids(role: str, guid: str) -> None:
    assert role == guid


def test_a_role_assignment_names_the_role_the_scope_and_a_service_principal() -> None:
    rec = run_program(
        lambda: role_assignment(
            "dns",
            subscription_id=SUB,
            scope=ZONE,
            role_guid=DNS_ZONE_CONTRIBUTOR,
            principal_id="7d5b5a4e-3c1f-4a3b-9d2e-6f1a2b3c4d5e",
        )
    )
    grant = rec.one(T_ROLE).inputs
    assert grant["roleDefinitionId"] == (
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{DNS_ZONE_CONTRIBUTOR}"
    )
    assert grant["scope"] == ZONE
    assert grant["principalId"] == "7d5b5a4e-3c1f-4a3b-9d2e-6f1a2b3c4d5e"
    assert grant["principalType"] == "ServicePrincipal"
    assert "condition" not in grant and "conditionVersion" not in grant


def test_a_condition_comes_with_version_2() -> None:
    rec = run_program(
        lambda: role_assignment(
            "r",
            subscription_id=SUB,
            scope=ZONE,
            role_guid=STORAGE_BLOB_DATA_READER,
            principal_id="p",
            condition="(x)",
        )
    )
    grant = rec.one(T_ROLE).inputs
    assert (grant["condition"], grant["conditionVersion"]) == ("(x)", "2.0")


def test_a_role_name_instead_of_a_guid_is_refused() -> None:
    with pytest.raises(ValueError, match="role_guid"):
        role_assignment(
            "r", subscription_id=SUB, scope=ZONE, role_guid="Storage Blob Data Reader", principal_id="p"
        )
