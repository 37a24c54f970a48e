"""TlsCertificates: the right issuer per mode, a Certificate the Gateway can use, and valid manifests."""

from __future__ import annotations

import functools
import json
from typing import Any

import pulumi
import pytest

from components import load_balancer
from components._common import CERT_MANAGER
from components.choices import AcmeSolver, Dns01Provider, LoadBalancerKind, TlsMode
from components.tls import (
    CERT_MANAGER_NAMESPACE,
    TSIG_SECRET_KEY,
    TlsCertificates,
    TlsCertificatesArgs,
    cert_manager_values,
    validate_tls_args,
)
from inferstack.planning.recording import SECRET_PLACEHOLDER, Recording, run_program
from tests.components.schemas import (
    CHART_DIR,
    chart_value_errors,
    crd_errors,
    error_paths,
    manifest_of,
    needs_charts,
    needs_crds,
)

T_ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer"
T_CERT = "kubernetes:cert-manager.io/v1:Certificate"
T_SECRET = "kubernetes:core/v1:Secret"
T_RELEASE = "kubernetes:helm.sh/v3:Release"
T_KEY = "tls:index/privateKey:PrivateKey"
T_CA = "tls:index/selfSignedCert:SelfSignedCert"

RFC2136 = {
    "acme_solver": AcmeSolver.DNS01,
    "dns01_provider": Dns01Provider.RFC2136,
    "rfc2136_nameserver": "10.0.0.53:53",
    "rfc2136_tsig_key_name": "inferstack-acme",
    "rfc2136_tsig_secret": "acme-tsig",
}


SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
AZUREDNS = {
    "acme_solver": AcmeSolver.DNS01,
    "dns01_provider": Dns01Provider.AZUREDNS,
    "azuredns_subscription_id": SUBSCRIPTION,
    "azuredns_resource_group": "dns-rg",
    "azuredns_hosted_zone_name": "example.com",
    "azuredns_managed_identity_client_id": CLIENT_ID,
}
WI_LABEL = "azure.workload.identity/use"
WI_CLIENT_ID = "azure.workload.identity/client-id"


def make_args(mode: TlsMode = TlsMode.INTERNAL_CA, **overrides: Any) -> TlsCertificatesArgs:
    base: dict[str, Any] = {"namespace": "inferstack", "hostname": "llm.example.com", "gateway_name": "llm"}
    if mode is TlsMode.ACME:
        base["acme_email"] = "platform@example.com"
    if mode is TlsMode.EXISTING_SECRET:
        base["existing_secret"] = "site-cert"
    base.update(overrides)
    return TlsCertificatesArgs(mode=mode, **base)


def deploy(
    mode: TlsMode = TlsMode.INTERNAL_CA, name: str = "tls", **overrides: Any
) -> tuple[Recording, dict]:
    resolved: dict[str, Any] = {}

    def program() -> None:
        certs = TlsCertificates(name, make_args(mode, **overrides))
        pulumi.export("ca_certificate_pem", certs.ca_certificate_pem)
        for output in ("secret_name", "issuer_name", "ca_certificate_pem"):
            getattr(certs, output).apply(functools.partial(resolved.__setitem__, output))

    return run_program(program), resolved


# --- validation (pure) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        make_args(TlsMode.INTERNAL_CA),
        make_args(TlsMode.EXISTING_SECRET),
        make_args(TlsMode.ACME),
        make_args(TlsMode.ACME, **RFC2136),
        make_args(
            TlsMode.ACME,
            acme_solver=AcmeSolver.DNS01,
            dns01_provider=Dns01Provider.ROUTE53,
            route53_region="eu-west-1",
        ),
        make_args(
            TlsMode.ACME,
            acme_solver=AcmeSolver.DNS01,
            dns01_provider=Dns01Provider.CLOUDDNS,
            clouddns_project="p",
        ),
        make_args(TlsMode.ACME, hostname="*.example.com", **RFC2136),
        make_args(TlsMode.ACME, **AZUREDNS),
        make_args(TlsMode.ACME, **{**AZUREDNS, "azuredns_hosted_zone_name": "llm.example.com"}),
        make_args(TlsMode.ACME, hostname="*.example.com", **AZUREDNS),
    ],
)
def test_valid_args_have_no_problems(args: TlsCertificatesArgs) -> None:
    assert validate_tls_args(args) == []


@pytest.mark.parametrize(
    ("mode", "overrides", "field"),
    [
        (TlsMode.ACME, {"acme_email": None}, "acme_email"),
        (TlsMode.ACME, {"acme_email": "not-an-email"}, "acme_email"),
        (TlsMode.ACME, {"acme_server": "http://insecure.example/dir"}, "acme_server"),
        (TlsMode.ACME, {"acme_solver": AcmeSolver.DNS01}, "dns01_provider"),
        (TlsMode.ACME, {**RFC2136, "rfc2136_nameserver": None}, "rfc2136_nameserver"),
        (TlsMode.ACME, {**RFC2136, "rfc2136_tsig_key_name": None}, "rfc2136_tsig_key_name"),
        (TlsMode.ACME, {**RFC2136, "rfc2136_tsig_secret": None}, "rfc2136_tsig_secret"),
        (
            TlsMode.ACME,
            {"acme_solver": AcmeSolver.DNS01, "dns01_provider": Dns01Provider.ROUTE53},
            "route53_region",
        ),
        (
            TlsMode.ACME,
            {"acme_solver": AcmeSolver.DNS01, "dns01_provider": Dns01Provider.CLOUDDNS},
            "clouddns_project",
        ),
        *[
            (TlsMode.ACME, {**AZUREDNS, field: None}, field)
            for field in (
                "azuredns_subscription_id",
                "azuredns_resource_group",
                "azuredns_hosted_zone_name",
                "azuredns_managed_identity_client_id",
            )
        ],
        (TlsMode.ACME, {**AZUREDNS, "azuredns_subscription_id": "my-sub"}, "azuredns_subscription_id"),
        (TlsMode.ACME, {**AZUREDNS, "azuredns_resource_group": "rg."}, "azuredns_resource_group"),
        (TlsMode.ACME, {**AZUREDNS, "azuredns_hosted_zone_name": "other.org"}, "azuredns_hosted_zone_name"),
        (TlsMode.ACME, {**AZUREDNS, "azuredns_hosted_zone_name": "Example.COM"}, "azuredns_hosted_zone_name"),
        (
            TlsMode.ACME,
            {**AZUREDNS, "extra_hostnames": ["chat.other.org"]},
            "azuredns_hosted_zone_name",
        ),
        (
            TlsMode.ACME,
            {**AZUREDNS, "azuredns_managed_identity_client_id": "/subscriptions/x/resourceGroups/y"},
            "azuredns_managed_identity_client_id",
        ),
        (TlsMode.ACME, {**AZUREDNS, "azuredns_environment": "AzureCloud"}, "azuredns_environment"),
        (TlsMode.ACME, {"dns01_provider": Dns01Provider.ROUTE53}, "dns01_provider"),  # with http01
        (TlsMode.ACME, {"hostname": "*.example.com"}, "hostname"),  # wildcard needs dns01
        (TlsMode.EXISTING_SECRET, {"existing_secret": None}, "existing_secret"),
        (TlsMode.INTERNAL_CA, {"existing_secret": "x"}, "existing_secret"),
        (TlsMode.INTERNAL_CA, {"dns01_provider": Dns01Provider.ROUTE53}, "dns01_provider"),
        (TlsMode.INTERNAL_CA, {"internal_ca_validity_hours": 100}, "internal_ca_validity_hours"),
        (TlsMode.INTERNAL_CA, {"internal_ca_common_name": " "}, "internal_ca_common_name"),
        (TlsMode.INTERNAL_CA, {"certificate_duration_hours": 1}, "certificate_duration_hours"),
        (TlsMode.INTERNAL_CA, {"hostname": "Not A Host"}, "hostname"),
        (TlsMode.INTERNAL_CA, {"namespace": "Bad_NS"}, "namespace"),
        (TlsMode.INTERNAL_CA, {"gateway_name": ""}, "gateway_name"),
    ],
)
def test_each_invalid_input_is_named(mode: TlsMode, overrides: dict[str, Any], field: str) -> None:
    problems = validate_tls_args(make_args(mode, **overrides))
    assert any(p.startswith(f"{field}:") for p in problems), problems


def test_every_problem_is_reported_at_once_and_construction_refuses() -> None:
    bad = make_args(TlsMode.ACME, acme_email=None, acme_solver=AcmeSolver.DNS01, namespace="Bad_NS")
    problems = validate_tls_args(bad)
    assert {p.split(":")[0] for p in problems} >= {"acme_email", "dns01_provider", "namespace"}
    with pytest.raises(ValueError, match="acme_email") as err:
        run_program(lambda: TlsCertificates("tls", bad))
    assert "dns01_provider" in str(err.value)


# --- internal CA ----------------------------------------------------------------------------------


def test_internal_ca_makes_a_ca_secret_and_issuer_that_the_certificate_uses() -> None:
    rec, out = deploy(TlsMode.INTERNAL_CA)
    key = rec.one(T_KEY).inputs
    assert (key["algorithm"], key["ecdsaCurve"]) == ("ECDSA", "P256")
    ca = rec.one(T_CA).inputs
    assert ca["isCaCertificate"] is True
    assert set(ca["allowedUses"]) == {"cert_signing", "crl_signing", "digital_signature"}

    secret = rec.one(T_SECRET)
    assert secret.inputs["type"] == "kubernetes.io/tls"
    assert secret.inputs["metadata"]["namespace"] == CERT_MANAGER_NAMESPACE  # the cluster resource namespace
    assert set(secret.inputs["stringData"]) == {"tls.crt", "tls.key"}
    assert secret.inputs["stringData"]["tls.key"] == rec.one(T_KEY).outputs["privateKeyPem"]
    assert rec.one(T_KEY).outputs["privateKeyPem"] not in json.dumps(secret.redacted_inputs)

    issuer = rec.one(T_ISSUER).inputs
    assert issuer["spec"] == {"ca": {"secretName": secret.inputs["metadata"]["name"]}}
    cert = rec.one(T_CERT).inputs
    assert cert["spec"]["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "ClusterIssuer",
        "name": issuer["metadata"]["name"],
    }
    assert out["issuer_name"] == issuer["metadata"]["name"]
    # Clients trust the CA certificate: it is an output, and not a secret one.
    assert out["ca_certificate_pem"] == rec.one(T_CA).outputs["certPem"]
    assert rec.exports["ca_certificate_pem"] == rec.one(T_CA).outputs["certPem"] != SECRET_PLACEHOLDER


def test_certificate_is_for_the_hostname_in_the_gateway_namespace() -> None:
    rec, out = deploy(TlsMode.INTERNAL_CA, certificate_duration_hours=720)
    cert = rec.one(T_CERT).inputs
    assert cert["metadata"]["namespace"] == "inferstack"
    spec = cert["spec"]
    assert spec["dnsNames"] == ["llm.example.com"]
    assert spec["secretName"] == "tls-tls" == out["secret_name"]
    assert spec["privateKey"] == {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}
    assert spec["duration"] == "720h"


def test_everything_waits_for_what_it_needs() -> None:
    rec, _ = deploy(TlsMode.INTERNAL_CA)
    release, secret, issuer = rec.one(T_RELEASE), rec.one(T_SECRET), rec.one(T_ISSUER)
    assert release.urn in issuer.dependencies and secret.urn in issuer.dependencies
    assert release.urn in secret.dependencies  # the release creates the cert-manager namespace
    assert issuer.urn in rec.one(T_CERT).dependencies


# --- ACME -----------------------------------------------------------------------------------------


def test_acme_http01_answers_through_the_gateway_http_listener() -> None:
    rec, out = deploy(TlsMode.ACME, acme_server="https://acme-staging-v02.api.letsencrypt.org/directory")
    acme = rec.one(T_ISSUER).inputs["spec"]["acme"]
    assert acme["email"] == "platform@example.com"
    assert acme["server"] == "https://acme-staging-v02.api.letsencrypt.org/directory"
    [solver] = acme["solvers"]
    [parent] = solver["http01"]["gatewayHTTPRoute"]["parentRefs"]
    assert (parent["kind"], parent["name"], parent["namespace"]) == ("Gateway", "llm", "inferstack")
    assert parent["sectionName"] == load_balancer.HTTP_LISTENER
    assert rec.one(T_CERT).inputs["spec"]["issuerRef"]["name"] == out["issuer_name"]
    assert rec.of_type(T_KEY) == [] and out["ca_certificate_pem"] is None


def test_acme_dns01_rfc2136_reads_the_tsig_key_from_a_secret() -> None:
    rec, _ = deploy(TlsMode.ACME, **RFC2136)
    [solver] = rec.one(T_ISSUER).inputs["spec"]["acme"]["solvers"]
    rfc = solver["dns01"]["rfc2136"]
    assert rfc["nameserver"] == "10.0.0.53:53" and rfc["tsigKeyName"] == "inferstack-acme"
    assert rfc["tsigSecretSecretRef"] == {"name": "acme-tsig", "key": TSIG_SECRET_KEY}


@pytest.mark.parametrize(
    ("provider", "fields", "solver_key", "static_keys"),
    [
        (
            Dns01Provider.ROUTE53,
            {"route53_region": "eu-west-1", "route53_hosted_zone_id": "Z123"},
            "route53",
            {"accessKeyID", "accessKeyIDSecretRef", "secretAccessKeySecretRef"},
        ),
        (Dns01Provider.CLOUDDNS, {"clouddns_project": "proj-1"}, "cloudDNS", {"serviceAccountSecretRef"}),
        (
            Dns01Provider.CLOUDDNS,
            {"clouddns_project": "proj-1", "clouddns_hosted_zone_name": "example-com"},
            "cloudDNS",
            {"serviceAccountSecretRef"},
        ),
    ],
)
def test_cloud_dns01_uses_ambient_identity_not_static_keys(
    provider: Dns01Provider, fields: dict[str, str], solver_key: str, static_keys: set[str]
) -> None:
    annotations = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/cert-manager"}
    rec, _ = deploy(
        TlsMode.ACME,
        acme_solver=AcmeSolver.DNS01,
        dns01_provider=provider,
        cert_manager_service_account_annotations=annotations,
        **fields,
    )
    [solver] = rec.one(T_ISSUER).inputs["spec"]["acme"]["solvers"]
    config = solver["dns01"][solver_key]
    assert not static_keys & set(config)
    assert set(config.values()) >= set(fields.values())
    assert rec.one(T_RELEASE).inputs["values"]["serviceAccount"]["annotations"] == annotations


def test_azure_dns01_uses_workload_identity_for_the_controller_only() -> None:
    rec, _ = deploy(TlsMode.ACME, **AZUREDNS)
    [solver] = rec.one(T_ISSUER).inputs["spec"]["acme"]["solvers"]
    assert solver["dns01"] == {
        "azureDNS": {
            "subscriptionID": SUBSCRIPTION,
            "resourceGroupName": "dns-rg",
            "hostedZoneName": "example.com",
            "environment": "AzurePublicCloud",
            "managedIdentity": {"clientID": CLIENT_ID},
        }
    }
    values = rec.one(T_RELEASE).inputs["values"]
    # The controller (top-level chart values) gets the label and its ServiceAccount the client id; the
    # webhook and cainjector call no Azure API and get no token.
    assert values["podLabels"] == {WI_LABEL: "true"}
    assert values["serviceAccount"]["annotations"] == {WI_CLIENT_ID: CLIENT_ID}
    assert "podLabels" not in values.get("webhook", {}) and "podLabels" not in values.get("cainjector", {})


def test_azure_client_id_from_the_stack_flows_into_issuer_and_service_account() -> None:
    def program() -> None:
        identity_client_id = pulumi.Output.from_input("99999999-8888-7777-6666-555555555555")
        TlsCertificates(
            "tls",
            make_args(
                TlsMode.ACME, **{**AZUREDNS, "azuredns_managed_identity_client_id": identity_client_id}
            ),
        )

    rec = run_program(program)
    [solver] = rec.one(T_ISSUER).inputs["spec"]["acme"]["solvers"]
    assert solver["dns01"]["azureDNS"]["managedIdentity"] == {
        "clientID": "99999999-8888-7777-6666-555555555555"
    }
    annotations = rec.one(T_RELEASE).inputs["values"]["serviceAccount"]["annotations"]
    assert annotations == {WI_CLIENT_ID: "99999999-8888-7777-6666-555555555555"}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        RFC2136,
        {"acme_solver": AcmeSolver.DNS01, "dns01_provider": Dns01Provider.CLOUDDNS, "clouddns_project": "p"},
    ],
    ids=["http01", "rfc2136", "clouddns"],
)
def test_other_solvers_get_no_workload_identity_values(overrides: dict[str, Any]) -> None:
    values = cert_manager_values(make_args(TlsMode.ACME, **overrides))
    assert "podLabels" not in values and "serviceAccount" not in values


def test_existing_secret_issues_nothing() -> None:
    rec, out = deploy(TlsMode.EXISTING_SECRET, install_cert_manager=False)
    assert rec.of_type(T_ISSUER) == [] and rec.of_type(T_CERT) == [] and rec.of_type(T_RELEASE) == []
    assert out == {"secret_name": "site-cert", "issuer_name": None, "ca_certificate_pem": None}


def test_two_components_do_not_collide() -> None:
    def program() -> None:
        TlsCertificates("tls-a", make_args())
        TlsCertificates("tls-b", make_args(TlsMode.ACME, hostname="b.example.com"), None)

    rec = run_program(program)
    names = [(r.type, r.name) for r in rec.resources]
    assert len(names) == len(set(names))
    objects = [
        (r.kind, r.inputs["metadata"].get("namespace"), r.inputs["metadata"]["name"])
        for r in rec.kubernetes_objects()
    ]
    assert len(objects) == len(set(objects))


def test_gateway_serves_the_certificate_and_hosts_the_challenge() -> None:
    """Composed as the stacks do: the Gateway's HTTPS listener uses this component's Secret, and the
    HTTP-01 solver attaches to a listener that Gateway really has."""

    def program() -> None:
        certs = TlsCertificates("llm-tls", make_args(TlsMode.ACME, gateway_name="llm"))
        load_balancer.LoadBalancer(
            "llm",
            load_balancer.LoadBalancerArgs(
                namespace="inferstack",
                hostname="llm.example.com",
                backends=[load_balancer.Backend(service_name="llm-server", port=8000)],
                tls_secret_name=certs.secret_name,
                api_key_clients=["portal"],
                kind=LoadBalancerKind.EXISTING,
            ),
        )

    rec = run_program(program)
    gateway = rec.one("kubernetes:gateway.networking.k8s.io/v1:Gateway").inputs
    listeners = {listener["name"]: listener for listener in gateway["spec"]["listeners"]}
    cert = rec.one(T_CERT).inputs
    assert listeners["https"]["tls"]["certificateRefs"][0]["name"] == cert["spec"]["secretName"]
    assert cert["metadata"]["namespace"] == gateway["metadata"]["namespace"]
    [solver] = rec.one(T_ISSUER).inputs["spec"]["acme"]["solvers"]
    [parent] = solver["http01"]["gatewayHTTPRoute"]["parentRefs"]
    assert (parent["name"], parent["namespace"]) == (
        gateway["metadata"]["name"],
        gateway["metadata"]["namespace"],
    )
    assert listeners[parent["sectionName"]]["protocol"] == "HTTP"
    assert listeners[parent["sectionName"]]["hostname"] == cert["spec"]["dnsNames"][0]


# --- schemas ---------------------------------------------------------------------------------------


@needs_crds
@pytest.mark.parametrize(
    ("mode", "overrides"),
    [
        (TlsMode.INTERNAL_CA, {}),
        (TlsMode.ACME, {}),
        (TlsMode.ACME, RFC2136),
        (
            TlsMode.ACME,
            {"acme_solver": AcmeSolver.DNS01, "dns01_provider": Dns01Provider.ROUTE53, "route53_region": "r"},
        ),
        (
            TlsMode.ACME,
            {
                "acme_solver": AcmeSolver.DNS01,
                "dns01_provider": Dns01Provider.CLOUDDNS,
                "clouddns_project": "p",
            },
        ),
        (TlsMode.ACME, AZUREDNS),
    ],
    ids=["internal-ca", "acme-http01", "acme-rfc2136", "acme-route53", "acme-clouddns", "acme-azuredns"],
)
def test_every_custom_resource_validates_against_its_crd(mode: TlsMode, overrides: dict[str, Any]) -> None:
    rec, _ = deploy(mode, **overrides)
    custom = [r for r in rec.kubernetes_objects() if r.type.startswith("kubernetes:cert-manager.io/")]
    assert {r.kind for r in custom} == {"ClusterIssuer", "Certificate"}
    for resource in custom:
        assert crd_errors(manifest_of(resource)) == [], resource.name


@needs_charts
def test_helm_values_pass_the_chart_schema_and_enable_gateway_api() -> None:
    rec, _ = deploy(cert_manager_values={"replicaCount": 2})
    release = rec.one(T_RELEASE).inputs
    assert (release["namespace"], release["version"]) == (CERT_MANAGER_NAMESPACE, "v1.20.2")
    values = release["values"]
    assert values["replicaCount"] == 2  # the escape hatch merges over ours
    assert values["crds"] == {"enabled": True, "keep": True}
    assert values["config"]["enableGatewayAPI"] is True
    # values.schema.json on the values as Helm merges them, and every key we set is in values.yaml.
    assert chart_value_errors(CERT_MANAGER.values_dir, values) == []
    # The schema is strict: a misspelt key fails (so the check above can fail).
    errors = chart_value_errors(
        CERT_MANAGER.values_dir, {**cert_manager_values(make_args()), "crd": {"enabled": True}}
    )
    assert error_paths(errors) == ["crd"]
    assert "values.schema.json" in errors[0]


@needs_charts
def test_azure_workload_identity_values_pass_the_chart_schema() -> None:
    rec, _ = deploy(TlsMode.ACME, **AZUREDNS)
    errors = chart_value_errors(CERT_MANAGER.values_dir, rec.one(T_RELEASE).inputs["values"])
    # serviceAccount.annotations is a documented chart value (values.yaml lists it commented out as a
    # `+docs:property`, and values.schema.json defines it), so only the "not in values.yaml" note may
    # appear for it; the schema itself (which would catch a misspelt key or a non-string value) passes.
    assert errors in ([], ["serviceAccount.annotations: not in the values.yaml of chart cert-manager"])
    schema = json.loads((CHART_DIR / CERT_MANAGER.values_dir / "values.schema.json").read_text())
    assert "annotations" in schema["$defs"]["helm-values.serviceAccount"]["properties"]
    assert "podLabels" in schema["$defs"]["helm-values"]["properties"]


# --- cert-manager's own PodMonitor (pod_monitor) ---------------------------------------------------------


def deploy_with_crd_source(**overrides: Any) -> tuple[Recording, str]:
    """deploy() with a stand-in for the release that installs the PodMonitor CRD, passed as
    monitors_after; returns its URN too."""
    urns: dict[str, str] = {}

    def program() -> None:
        crds = pulumi.CustomResource("test:index:CrdSource", "prometheus-operator-crds", {})
        crds.urn.apply(lambda urn: urns.__setitem__("crds", urn))
        TlsCertificates("tls", make_args(monitors_after=[crds], **overrides))

    rec = run_program(program)
    return rec, urns["crds"]


@needs_charts
def test_pod_monitor_turns_on_the_charts_podmonitor_labelled_for_prometheus() -> None:
    rec, crds = deploy_with_crd_source(pod_monitor=True, pod_monitor_labels={"release": "kps"})
    release = rec.one(T_RELEASE)
    prometheus = release.inputs["values"]["prometheus"]
    # templates/podmonitor.yaml renders when prometheus.enabled and prometheus.podmonitor.enabled, and
    # fails the install when servicemonitor is on too.
    assert prometheus["enabled"] is True and prometheus["podmonitor"]["enabled"] is True
    assert prometheus["podmonitor"]["labels"] == {"release": "kps"}
    assert prometheus.get("servicemonitor", {}).get("enabled", False) is False
    assert chart_value_errors(CERT_MANAGER.values_dir, release.inputs["values"]) == []
    # Helm cannot map a PodMonitor before its CRD exists: the release waits for it.
    assert crds in release.dependencies


def test_pod_monitor_off_leaves_the_release_as_it_was() -> None:
    rec, crds = deploy_with_crd_source()
    release = rec.one(T_RELEASE)
    assert "prometheus" not in release.inputs["values"]
    assert release.inputs["values"] == cert_manager_values(make_args())
    assert crds not in release.dependencies
    # With it on, only the `prometheus` key is added.
    on = deploy_with_crd_source(pod_monitor=True)[0].one(T_RELEASE).inputs["values"]
    rec_values = {k: v for k, v in on.items() if k != "prometheus"}
    assert rec_values == release.inputs["values"]


def test_pod_monitor_needs_cert_manager_installed_here() -> None:
    problems = validate_tls_args(make_args(pod_monitor=True, install_cert_manager=False))
    assert [p.split(":")[0] for p in problems] == ["pod_monitor"]
