"""ChatUi (Open WebUI) and the Gateway/TLS pieces it needs: values the pinned chart knows, its own hostname on
the same Gateway and certificate only when asked, no API-key policy on its route, NetworkPolicies that select
the chart's real pods, and plans without it unchanged."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components._common import CRD_UPGRADES, OPEN_WEBUI, CrdLocation
from components.chat_ui import (
    CA_FILE,
    CA_MOUNT_DIR,
    CHART_COMPONENT,
    MERGE_CA_CONTAINER,
    MERGED_CA_DIR,
    MERGED_CA_PATH,
    OPEN_WEBUI_IMAGE_TAG,
    OPEN_WEBUI_PORT,
    OPEN_WEBUI_UID,
    SYSTEM_CA_BUNDLE,
    ChatOidc,
    ChatPersistence,
    ChatUi,
    ChatUiArgs,
    open_webui_pod_labels,
    open_webui_values,
    release_name,
    validate_chat_ui_args,
)
from components.choices import LoadBalancerKind, TlsMode
from components.load_balancer import (
    ENVOY_PRIVILEGED_PORT_SHIFT,
    ENVOY_PROXY_NAMESPACE,
    ENVOY_PROXY_POD_LABELS,
    OWNING_GATEWAY_NAME_LABEL,
    Backend,
    ExtraHostname,
    LoadBalancer,
    LoadBalancerArgs,
    https_listener_name,
    validate_load_balancer_args,
)
from components.tls import TlsCertificates, TlsCertificatesArgs, validate_tls_args
from inferstack.planning.recording import Recording, run_program
from inferstack.validation.core import validate_core
from tests.components.schemas import (
    CHART_DIR,
    chart_value_errors,
    crd_errors,
    manifest_of,
    needs_charts,
    needs_crds,
)

T_GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
T_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
T_SECURITY = "kubernetes:gateway.envoyproxy.io/v1alpha1:SecurityPolicy"
T_CERT = "kubernetes:cert-manager.io/v1:Certificate"
T_ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer"
T_RELEASE = "kubernetes:helm.sh/v3:Release"
T_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
T_SERVICE = "kubernetes:core/v1:Service"

NS = "inferstack"
API_HOST = "llm.example.com"
CHAT_HOST = "chat.example.com"
OIDC = ChatOidc(
    provider_url="https://id.example.com/realms/main/.well-known/openid-configuration",
    client_id="open-webui",
    client_secret_name="chat-oidc",
    issuer_cidrs=["203.0.113.10/32"],
)


def lb_args(**overrides: Any) -> LoadBalancerArgs:
    base: dict[str, Any] = {
        "namespace": NS,
        "hostname": API_HOST,
        "backends": [Backend(service_name="llm-server", port=8000)],
        "tls_secret_name": "llm-tls",
        "api_key_clients": ["portal", "open-webui"],
        "kind": LoadBalancerKind.METALLB,
        "metallb_pool": "public-pool",
    }
    base.update(overrides)
    return LoadBalancerArgs(**base)


def tls_args(**overrides: Any) -> TlsCertificatesArgs:
    base: dict[str, Any] = {
        "namespace": NS,
        "hostname": API_HOST,
        "gateway_name": "llm",
        "mode": TlsMode.ACME,
        "acme_email": "ops@example.com",
    }
    base.update(overrides)
    return TlsCertificatesArgs(**base)


def chat_args(**overrides: Any) -> ChatUiArgs:
    base: dict[str, Any] = {
        "namespace": NS,
        "hostname": CHAT_HOST,
        "listener_key": "chat",
        "gateway_name": "llm",
        "api_hostname": API_HOST,
        "endpoint_address": "10.96.12.34",
        "api_key_secret": "llm-api-keys",
    }
    base.update(overrides)
    return ChatUiArgs(**base)


def stack(chat: bool, **chat_overrides: Any) -> Recording:
    """The Gateway, its certificate and (with `chat`) Open WebUI, wired as the stack would wire them."""

    def program() -> None:
        extra = [ExtraHostname("chat", CHAT_HOST)] if chat else []
        lb = LoadBalancer("llm", lb_args(extra_hostnames=extra, internal_service=chat))
        TlsCertificates(
            "llm",
            tls_args(
                extra_hostnames=[CHAT_HOST] if chat else [],
                extra_http01_listeners=["http-chat"] if chat else [],
            ),
        )
        if chat:
            assert lb.internal_address is not None
            ChatUi("llm", chat_args(endpoint_address=lb.internal_address, depends_on=[lb], **chat_overrides))

    return run_program(program)


@functools.cache
def with_chat() -> Recording:
    return stack(True, oidc=OIDC)


@functools.cache
def without_chat() -> Recording:
    return stack(False)


def release_values(rec: Recording) -> dict[str, Any]:
    return rec.one(T_RELEASE, "open-webui").inputs["values"]


# --- validation (pure) -----------------------------------------------------------------------------


def test_valid_args_have_no_problems() -> None:
    assert validate_chat_ui_args(chat_args()) == []
    assert (
        validate_chat_ui_args(chat_args(oidc=OIDC, persistence=ChatPersistence.NONE, storage_size=None)) == []
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"hostname": API_HOST}, "hostname"),
        ({"hostname": "Chat"}, "hostname"),
        ({"api_key_client_id": "Open WebUI"}, "api_key_client_id"),
        ({"storage_size": None}, "storage_size"),
        (
            {"persistence": ChatPersistence.NONE, "storage_size": None, "storage_class": "fast"},
            "storage_class",
        ),
        ({"memory": "lots"}, "memory"),
        ({"image_tag": "latest please"}, "image_tag"),
        ({"oidc": dataclasses.replace(OIDC, provider_url="https://id.example.com")}, "oidc.provider_url"),
        (
            {
                "oidc": dataclasses.replace(
                    OIDC, provider_url="http://id.example.com" + "/.well-known/openid-configuration"
                )
            },
            "oidc.provider_url",
        ),
        ({"oidc": dataclasses.replace(OIDC, issuer_cidrs=[])}, "oidc.issuer_cidrs"),
        ({"oidc": dataclasses.replace(OIDC, issuer_cidrs=["0.0.0.0/0"])}, "oidc.issuer_cidrs"),
        ({"oidc": dataclasses.replace(OIDC, scopes="email")}, "oidc.scopes"),
        ({"oidc": dataclasses.replace(OIDC, allow_signup=False)}, "oidc.allow_signup, oidc.login_form"),
        ({"oidc": dataclasses.replace(OIDC, client_secret_name="Not_A_Secret")}, "oidc.client_secret_name"),
    ],
)
def test_invalid_args_are_rejected_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    problems = validate_chat_ui_args(chat_args(**overrides))
    assert any(p.startswith(f"{field}:") for p in problems), problems


def test_the_component_refuses_bad_args_before_making_anything() -> None:
    with pytest.raises(ValueError, match=r"oidc\.issuer_cidrs"):
        run_program(lambda: ChatUi("llm", chat_args(oidc=dataclasses.replace(OIDC, issuer_cidrs=[]))))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"extra_hostnames": [ExtraHostname("chat", API_HOST)]}, "extra_hostnames[0].hostname"),
        ({"extra_hostnames": [ExtraHostname("Chat!", CHAT_HOST)]}, "extra_hostnames[0].key"),
        (
            {"extra_hostnames": [ExtraHostname("a", CHAT_HOST), ExtraHostname("a", "b.example.com")]},
            "extra_hostnames",
        ),
        ({"internal_source_cidrs": ["10.0.0.1/8"]}, "internal_source_cidrs"),
    ],
)
def test_load_balancer_rejects_bad_extra_hostnames(overrides: dict[str, Any], field: str) -> None:
    problems = validate_load_balancer_args(lb_args(**overrides))
    assert any(p.startswith(f"{field}:") for p in problems), problems


def test_tls_http01_for_an_extra_name_needs_its_listener() -> None:
    problems = validate_tls_args(tls_args(extra_hostnames=[CHAT_HOST]))
    assert any(p.startswith("extra_http01_listeners:") for p in problems), problems
    assert (
        validate_tls_args(tls_args(extra_hostnames=[CHAT_HOST], extra_http01_listeners=["http-chat"])) == []
    )


# --- chart values ----------------------------------------------------------------------------------


@needs_charts
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"oidc": OIDC},
        {"persistence": ChatPersistence.NONE, "storage_size": None},
        {"trusted_ca_pem": "PEM"},
    ],
    ids=["local-accounts", "oidc", "no-persistence", "trusted-ca"],
)
def test_values_are_known_to_the_pinned_chart(overrides: dict[str, Any]) -> None:
    args = chat_args(**overrides)
    values = open_webui_values(
        "llm", args, "llm-webui-secret-key", "llm-trusted-ca" if args.trusted_ca_pem else None
    )
    assert chart_value_errors(OPEN_WEBUI.values_dir, values) == []


def test_the_pin_is_the_chart_data_version_and_has_no_crds() -> None:
    assert OPEN_WEBUI.version == "16.0.0"
    assert CRD_UPGRADES[OPEN_WEBUI.chart].location is CrdLocation.NONE


def test_extras_that_pull_or_phone_home_are_off() -> None:
    values = release_values(with_chat())
    for subchart in ("ollama", "pipelines", "tika", "terminals"):
        assert values[subchart]["enabled"] is False, subchart
    assert values["websocket"]["redis"]["enabled"] is False and values["websocket"]["manager"] == ""
    assert values["replicaCount"] == 1  # the in-memory websocket manager holds one replica only
    env = {e["name"]: e.get("value") for e in values["extraEnvVars"]}
    assert env["OFFLINE_MODE"] == "True" and env["ENABLE_VERSION_UPDATE_CHECK"] == "False"
    assert env["ANONYMIZED_TELEMETRY"] == "False" and env["HF_HUB_OFFLINE"] == "1"


def test_endpoint_is_the_public_url_resolved_to_the_internal_envoy_service() -> None:
    rec = with_chat()
    values = release_values(rec)
    assert values["openaiBaseApiUrl"] == f"https://{API_HOST}/v1"
    # Pipelines off is what makes the chart write OPENAI_API_BASE_URL/OPENAI_API_KEY (workload-manager.yaml).
    assert values["pipelines"]["enabled"] is False and values["openaiBaseApiUrls"] == []
    (alias,) = values["hostAliases"]
    assert alias["hostnames"] == [API_HOST]
    internal = rec.one(T_SERVICE, "llm-internal").inputs
    assert alias["ip"] == internal["spec"].get("clusterIP", "")  # the Service's own ClusterIP output
    assert internal["metadata"]["namespace"] == ENVOY_PROXY_NAMESPACE
    assert internal["spec"]["type"] == "ClusterIP"
    assert internal["spec"]["selector"][OWNING_GATEWAY_NAME_LABEL] == "llm"
    assert internal["spec"]["selector"].items() >= ENVOY_PROXY_POD_LABELS.items()
    assert internal["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": 443 + ENVOY_PRIVILEGED_PORT_SHIFT, "protocol": "TCP"}
    ]


def test_api_key_comes_from_the_stacks_secret_by_reference_never_inline() -> None:
    values = release_values(with_chat())
    assert values["openaiApiKeyExistingSecret"] == "llm-api-keys"
    assert values["openaiApiKeyExistingSecretKey"] == "open-webui"
    assert values["openaiApiKey"] == ""  # the chart's default "0p3n-w3bu!" would otherwise be sent
    secret_key = next(e for e in values["extraEnvVars"] if e["name"] == "WEBUI_SECRET_KEY")
    assert (
        "value" not in secret_key
        and secret_key["valueFrom"]["secretKeyRef"]["name"] == "llm-webui-secret-key"
    )


def test_oidc_settings_pass_through_with_the_client_secret_from_a_secret() -> None:
    values = release_values(with_chat())
    sso = values["sso"]
    assert sso["enabled"] is True and sso["enableSignup"] is True
    assert sso["oidc"]["providerUrl"] == OIDC.provider_url and sso["oidc"]["clientId"] == "open-webui"
    assert sso["oidc"]["clientSecret"] == ""
    assert (sso["oidc"]["clientExistingSecret"], sso["oidc"]["clientExistingSecretKey"]) == (
        "chat-oidc",
        "client-secret",
    )
    env = {e["name"]: e.get("value") for e in values["extraEnvVars"]}
    assert env["ENABLE_LOGIN_FORM"] == "False" and env["WEBUI_URL"] == f"https://{CHAT_HOST}"


def test_pod_is_restricted_with_writable_paths_on_volumes_only() -> None:
    values = release_values(with_chat())
    pod = values["podSecurityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == OPEN_WEBUI_UID >= 10000
    assert pod["fsGroup"] == OPEN_WEBUI_UID and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    container = values["containerSecurityContext"]
    assert container["readOnlyRootFilesystem"] is True and container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in values["volumeMounts"]["container"]
    assert values["serviceAccount"]["automountServiceAccountToken"] is False
    assert values["resources"]["limits"]["memory"] == values["resources"]["requests"]["memory"]


def test_persistence_choice_reaches_the_chart() -> None:
    persistent = open_webui_values("llm", chat_args(storage_size="5Gi", storage_class="fast"), "k", None)
    assert persistent["persistence"] == {
        "enabled": True,
        "provider": "local",
        "size": "5Gi",
        "accessModes": ["ReadWriteOnce"],
        "storageClass": "fast",
    }
    none = open_webui_values("llm", chat_args(persistence=ChatPersistence.NONE, storage_size=None), "k", None)
    assert none["persistence"] == {"enabled": False, "provider": "local"}


# --- Gateway, certificate, route --------------------------------------------------------------------


def listeners(rec: Recording) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in rec.one(T_GATEWAY).inputs["spec"]["listeners"]}


def test_chat_listeners_certificate_and_route_exist_only_when_on() -> None:
    on, off = with_chat(), without_chat()
    assert set(listeners(off)) == {"http", "https"}
    assert set(listeners(on)) == {"http", "https", "http-chat", "https-chat"}
    https_chat = listeners(on)["https-chat"]
    assert https_chat["hostname"] == CHAT_HOST and https_chat["port"] == 443
    assert https_chat["tls"] == listeners(on)["https"]["tls"]  # the same certificate Secret
    assert on.one(T_CERT).inputs["spec"]["dnsNames"] == [API_HOST, CHAT_HOST]
    assert off.one(T_CERT).inputs["spec"]["dnsNames"] == [API_HOST]
    solver_parents = on.one(T_ISSUER).inputs["spec"]["acme"]["solvers"][0]["http01"]["gatewayHTTPRoute"][
        "parentRefs"
    ]
    assert [p["sectionName"] for p in solver_parents] == ["http", "http-chat"]
    assert [r for r in off.of_type(T_ROUTE) if CHAT_HOST in r.inputs["spec"]["hostnames"]] == []
    chat = on.one(T_ROUTE, "llm-route").inputs["spec"]
    assert chat["parentRefs"][0]["sectionName"] == https_listener_name("chat")
    assert chat["hostnames"] == [CHAT_HOST]
    (backend,) = chat["rules"][0]["backendRefs"]
    assert backend["name"] == release_name("llm")  # the chart's Service is named after the release
    redirect = on.one(T_ROUTE, "redirect-route-chat").inputs["spec"]
    assert redirect["parentRefs"][0]["sectionName"] == "http-chat"
    assert redirect["rules"][0]["filters"][0]["requestRedirect"]["scheme"] == "https"


def test_api_key_policy_does_not_cover_the_chat_route() -> None:
    rec = with_chat()
    chat_route = rec.one(T_ROUTE, "llm-route").inputs["metadata"]["name"]
    for policy in rec.of_type(T_SECURITY):
        targets = policy.inputs["spec"]["targetRefs"]
        assert all(t["kind"] == "HTTPRoute" for t in targets), "a Gateway-wide policy would cover the chat"
        assert chat_route not in {t["name"] for t in targets}


def test_in_cluster_client_cidrs_join_the_allow_list_but_not_the_balancer() -> None:
    rec = run_program(
        lambda: LoadBalancer(
            "llm", lb_args(allowed_source_cidrs=["192.0.2.0/24"], internal_source_cidrs=["10.244.0.0/16"])
        )
    )
    rules = rec.one(T_SECURITY).inputs["spec"]["authorization"]["rules"]
    assert [r["principal"]["clientCIDRs"] for r in rules] == [["192.0.2.0/24"], ["10.244.0.0/16"]]
    envoy_proxy = rec.one("kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy").inputs["spec"]
    service = envoy_proxy["provider"]["kubernetes"]["envoyService"]
    assert service["loadBalancerSourceRanges"] == ["192.0.2.0/24"]


@needs_crds
def test_gateway_routes_and_certificate_validate_against_their_crds() -> None:
    rec = with_chat()
    objects = [*rec.of_type(T_GATEWAY), *rec.of_type(T_ROUTE), *rec.of_type(T_CERT), *rec.of_type(T_ISSUER)]
    for obj in objects:
        assert crd_errors(manifest_of(obj)) == [], obj.name


# --- network policies --------------------------------------------------------------------------------


def test_network_policy_selects_the_charts_pods_and_allows_only_its_paths() -> None:
    rec = with_chat()
    policy = rec.one(T_POLICY, "llm-network-policy").inputs["spec"]
    # The chart's pod labels: selectorLabels = instance (release name) + component (Chart.Name).
    assert (
        policy["podSelector"]["matchLabels"]
        == {
            "app.kubernetes.io/instance": "llm-open-webui",
            "app.kubernetes.io/component": CHART_COMPONENT,
        }
        == open_webui_pod_labels("llm")
    )
    assert rec.one(T_RELEASE, "open-webui").inputs["name"] == "llm-open-webui"
    envoy = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ENVOY_PROXY_NAMESPACE}},
        "podSelector": {
            "matchLabels": {
                **ENVOY_PROXY_POD_LABELS,
                OWNING_GATEWAY_NAME_LABEL: "llm",
                "gateway.envoyproxy.io/owning-gateway-namespace": NS,
            }
        },
    }
    (ingress,) = policy["ingress"]
    assert ingress == {"from": [envoy], "ports": [{"port": OPEN_WEBUI_PORT, "protocol": "TCP"}]}
    to_envoy, dns, issuer = policy["egress"]
    assert to_envoy == {"to": [envoy], "ports": [{"port": 10443, "protocol": "TCP"}]}
    assert {p["port"] for p in dns["ports"]} == {53}
    assert issuer == {
        "to": [{"ipBlock": {"cidr": "203.0.113.10/32"}}],
        "ports": [{"port": 443, "protocol": "TCP"}],
    }


def test_without_oidc_there_is_no_issuer_egress() -> None:
    rec = stack(True)
    assert len(rec.one(T_POLICY, "llm-network-policy").inputs["spec"]["egress"]) == 2


def test_core_objects_are_valid_kubernetes() -> None:
    rec = with_chat()
    manifests = [manifest_of(r) for r in rec.kubernetes_objects() if r.type in (T_POLICY, T_SERVICE)]
    outcome = validate_core(manifests, "1.34")
    assert outcome.findings == []


# --- chat off: plans unchanged -------------------------------------------------------------------------


def _objects(rec: Recording) -> list[tuple[str, str, Any]]:
    return sorted((r.type, r.name, r.inputs) for r in rec.resources if r.type.startswith("kubernetes:"))


def test_plans_without_chat_are_unchanged() -> None:
    plain = run_program(lambda: (LoadBalancer("llm", lb_args()), TlsCertificates("llm", tls_args())))
    explicit = run_program(
        lambda: (
            LoadBalancer(
                "llm", lb_args(extra_hostnames=[], internal_service=False, internal_source_cidrs=[])
            ),
            TlsCertificates("llm", tls_args(extra_hostnames=[], extra_http01_listeners=[])),
        )
    )
    assert _objects(plain) == _objects(explicit)
    assert [r.name for r in plain.of_type(T_SERVICE)] == []  # no internal Service
    assert {r.inputs["metadata"]["name"] for r in plain.of_type(T_ROUTE)} == {"llm-redirect", "llm-api"}
    assert set(listeners(plain)) == {"http", "https"}


def test_two_chat_uis_do_not_collide() -> None:
    def program() -> None:
        ChatUi("a", chat_args())
        ChatUi("b", chat_args(hostname="chat2.example.com"))

    rec = run_program(program)
    names = [(r.type, r.name) for r in rec.resources]
    assert len(names) == len(set(names))


@needs_charts
def test_pod_label_constants_are_the_charts_own() -> None:
    # _helpers.tpl: component = .Chart.Name; the pinned chart data's Chart.yaml names the chart.
    chart = yaml.safe_load((CHART_DIR / OPEN_WEBUI.values_dir / "Chart.yaml").read_text())
    assert chart["name"] == CHART_COMPONENT
    assert (chart["version"], chart["appVersion"]) == (OPEN_WEBUI.version, OPEN_WEBUI_IMAGE_TAG)


# --- trust: the internal CA joins the image's roots ------------------------------------------------------


def _ca_values(**overrides: Any) -> dict[str, Any]:
    return open_webui_values("llm", chat_args(trusted_ca_pem="PEM", **overrides), "k", "llm-trusted-ca")


def test_internal_ca_is_merged_with_the_images_roots_not_in_place_of_them() -> None:
    values = _ca_values(image_tag="0.11.0@sha256:" + "a" * 64)
    env = {e["name"]: e.get("value") for e in values["extraEnvVars"]}
    # Both variables name the merged file, never the internal CA alone (which drops every public root).
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == MERGED_CA_PATH
    assert MERGED_CA_PATH.startswith(MERGED_CA_DIR + "/")
    volumes = {v["name"]: v for v in values["volumes"]}
    assert volumes["trusted-ca"] == {"name": "trusted-ca", "configMap": {"name": "llm-trusted-ca"}}
    assert "emptyDir" in volumes["ca-bundle"]
    app_mounts = {m["name"]: m for m in values["volumeMounts"]["container"]}
    assert app_mounts["ca-bundle"] == {"name": "ca-bundle", "mountPath": MERGED_CA_DIR, "readOnly": True}
    assert "trusted-ca" not in app_mounts  # the app reads the merged file only
    (init,) = values["extraInitContainers"]
    assert init["name"] == MERGE_CA_CONTAINER
    # The app's own image as the chart writes it (repository:tag), digest included, and its pull policy.
    image = values["image"]
    assert init["image"] == f"{image['repository']}:{image['tag']}"
    assert init["image"].endswith("@sha256:" + "a" * 64)
    assert init["imagePullPolicy"] == image["pullPolicy"]
    # Restricted like the app: read-only root, non-root, nothing added; it writes the emptyDir only.
    assert init["securityContext"] == values["containerSecurityContext"]
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    init_mounts = {m["name"]: m for m in init["volumeMounts"]}
    assert init_mounts["trusted-ca"] == {"name": "trusted-ca", "mountPath": CA_MOUNT_DIR, "readOnly": True}
    assert init_mounts["ca-bundle"]["mountPath"] == MERGED_CA_DIR and not init_mounts["ca-bundle"].get(
        "readOnly"
    )
    assert init["args"] == [SYSTEM_CA_BUNDLE, f"{CA_MOUNT_DIR}/{CA_FILE}", MERGED_CA_PATH]


def test_without_an_internal_ca_the_image_trust_store_is_left_alone() -> None:
    values = open_webui_values("llm", chat_args(), "k", None)
    names = {e["name"] for e in values["extraEnvVars"]}
    assert not names & {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"}
    assert values["extraInitContainers"] == []
    assert {v["name"] for v in values["volumes"]} == {"tmp"}


def test_the_pod_with_the_merge_init_container_is_valid_kubernetes() -> None:
    """The pod as workload-manager.yaml assembles it from these values (copy-app-data, then
    extraInitContainers; the app with volumeMounts.container; volumes after the chart's `data`)."""
    values = _ca_values()
    security = values["containerSecurityContext"]
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "llm-open-webui-0", "namespace": NS},
        "spec": {
            "securityContext": values["podSecurityContext"],
            "initContainers": [
                {
                    "name": "copy-app-data",
                    "image": f"{values['image']['repository']}:{values['image']['tag']}",
                    "securityContext": security,
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/tmp/app-data"},
                        *values["volumeMounts"]["initContainer"],
                    ],
                },
                *values["extraInitContainers"],
            ],
            "containers": [
                {
                    "name": CHART_COMPONENT,
                    "image": f"{values['image']['repository']}:{values['image']['tag']}",
                    "env": values["extraEnvVars"],
                    "securityContext": security,
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/app/backend/data"},
                        *values["volumeMounts"]["container"],
                    ],
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}, *values["volumes"]],
        },
    }
    assert validate_core([pod], "1.34").findings == []
    declared = {v["name"] for v in pod["spec"]["volumes"]}
    for container in [*pod["spec"]["initContainers"], *pod["spec"]["containers"]]:
        assert {m["name"] for m in container["volumeMounts"]} <= declared, container["name"]


def _ca_pem(common_name: str) -> bytes:
    """A self-signed CA certificate (PEM) named `common_name`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _common_names(certs: list[Any]) -> set[str]:
    """The subject common names of ssl's get_ca_certs() entries (subject: tuple of RDNs of (key, value))."""
    return {value for cert in certs for rdn in cert["subject"] for key, value in rdn if key == "commonName"}


def _run_merge(system_bundle: Path, internal_ca: Path, merged: Path) -> subprocess.CompletedProcess[str]:
    """The init container's own command, with its three paths pointed at `tmp_path` files."""
    (init,) = _ca_values()["extraInitContainers"]
    return subprocess.run(
        [*init["command"], str(system_bundle), str(internal_ca), str(merged)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def _default_context_roots(cert_file: Path) -> set[str]:
    """The CA common names a Python started with SSL_CERT_FILE=`cert_file` loads as its default roots
    (ssl.create_default_context; get_ca_certs lists what was loaded from the file)."""
    probe = (
        "import ssl, json; print(json.dumps([dict(x[0] for x in c['subject']).get('commonName') "
        "for c in ssl.create_default_context().get_ca_certs()]))"
    )
    env = {**os.environ, "SSL_CERT_FILE": str(cert_file)}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env, timeout=60
    )
    return set(yaml.safe_load(out.stdout))


def test_the_merge_command_keeps_the_public_roots_and_adds_the_internal_ca(tmp_path: Path) -> None:
    system = tmp_path / "system.crt"
    # Two "public" roots, the last without its final newline: the internal CA must still parse after it.
    system.write_bytes(_ca_pem("Public Root A") + _ca_pem("Public Root B").rstrip(b"\n"))
    internal = tmp_path / "ca.crt"
    internal.write_bytes(_ca_pem("InferStack Internal CA"))
    merged = tmp_path / "merged" / "ca-bundle.crt"
    merged.parent.mkdir()
    result = _run_merge(system, internal, merged)
    assert result.returncode == 0, result.stderr
    context = ssl.create_default_context(cafile=str(merged))
    names = _common_names(context.get_ca_certs())
    assert names == {"Public Root A", "Public Root B", "InferStack Internal CA"}
    # What SSL_CERT_FILE loads: all three from the merged file; from the internal CA alone (the old
    # setting) no public root at all.
    assert _default_context_roots(merged) == names
    assert _default_context_roots(internal) == {"InferStack Internal CA"}


def test_the_merge_fails_the_pod_start_when_an_input_is_missing(tmp_path: Path) -> None:
    internal = tmp_path / "ca.crt"
    internal.write_bytes(_ca_pem("InferStack Internal CA"))
    result = _run_merge(tmp_path / "absent.crt", internal, tmp_path / "merged.crt")
    assert result.returncode != 0
    result = _run_merge(internal, tmp_path / "absent.crt", tmp_path / "merged.crt")
    assert result.returncode != 0


@pytest.mark.skipif(not Path(SYSTEM_CA_BUNDLE).is_file(), reason="no Debian CA bundle on this machine")
def test_the_merge_against_a_real_debian_bundle(tmp_path: Path) -> None:
    """This machine's ca-certificates bundle stands in for the image's (both Debian's package)."""
    internal = tmp_path / "ca.crt"
    internal.write_bytes(_ca_pem("InferStack Internal CA"))
    merged = tmp_path / "ca-bundle.crt"
    assert _run_merge(Path(SYSTEM_CA_BUNDLE), internal, merged).returncode == 0
    public = ssl.create_default_context(cafile=SYSTEM_CA_BUNDLE).get_ca_certs()
    both = ssl.create_default_context(cafile=str(merged)).get_ca_certs()
    assert len(public) > 50 and len(both) == len(public) + 1
