"""ChatUi: Open WebUI, a browser chat front end, on its own hostname in front of the stack's own endpoint.

What it makes, in `namespace` (the Gateway's, the model server's):
- the open-webui Helm release (components/_common.py OPEN_WEBUI, chart 16.0.0 = Open WebUI 0.11.0) with
  every extra off (ollama, pipelines, tika, terminals, the websocket Redis), telemetry and update checks off,
  one replica, a Pod-Security-"restricted" pod, persistence on a claim or none;
- a Secret with the session-signing key (WEBUI_SECRET_KEY; otherwise start.sh writes one into the image's
  own directory, which a read-only root refuses);
- an HTTPRoute for `hostname` on the Gateway's `https-<listener_key>` listener (load_balancer ExtraHostname)
  to the chart's Service. No SecurityPolicy covers it: the API-key policy targets the API route(s) only
  (load_balancer security_policy_spec); Open WebUI has its own login (form and/or OIDC);
- with `trusted_ca_pem` (tls mode internal_ca): a ConfigMap with that CA, and an init container that writes
  the image's CA bundle plus that CA into an emptyDir, which SSL_CERT_FILE / REQUESTS_CA_BUNDLE name;
- NetworkPolicies: Envoy's proxy pods -> Open WebUI's port; Open WebUI -> the Envoy pods (HTTPS), DNS, and
  the OIDC issuer's networks on 443.

How Open WebUI reaches the endpoint: the public URL `https://<api hostname>/v1`, with the API hostname
mapped (hostAliases) to the ClusterIP of the LoadBalancer's internal Service (load_balancer
internal_service_spec) on the same Envoy pods. SNI, Host and certificate are the public ones, so the
Gateway's HTTPS listener, route, API-key check, rate limit and guardrail apply as to any client, and the
connection never leaves the cluster. Not the public address: AWS NLBs with client IP preservation drop
hairpinned connections (a target connecting to its own balancer, "NAT loopback"), an internet-facing
balancer sees the NAT gateway's address (which the allow list must then hold), and kube-proxy short-cuts
pod traffic to a Service's LoadBalancer IP straight to the endpoints, where loadBalancerSourceRanges then
filters pod addresses. Envoy sees the Open WebUI pod's own address (pod -> ClusterIP -> pod, no SNAT), so
with an allow list the LoadBalancer needs the pod CIDRs in internal_source_cidrs.

Open WebUI's key: the stack's API-key Secret holds one key per client id (load_balancer.py); the chart reads
`api_key_secret` / `api_key_client_id` through openaiApiKeyExistingSecret into OPENAI_API_KEY (a
secretKeyRef, never a value).

Open WebUI 0.11.0 reads its settings from environment variables (docs.openwebui.com "Environment Variable
Configuration"); many are "PersistentConfig": read on first start, then kept in its database, so changing
one later in the stack file does not change a running instance with persistence (the docs' note).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components._common import OPEN_WEBUI, child, helm_release, labels, reject_invalid_args
from components.load_balancer import (
    ENVOY_PRIVILEGED_PORT_SHIFT,
    ENVOY_PROXY_NAMESPACE,
    ENVOY_PROXY_POD_LABELS,
    OWNING_GATEWAY_NAME_LABEL,
    OWNING_GATEWAY_NAMESPACE_LABEL,
    gateway_api_ref,
    https_listener_name,
)
from components.model_server import NODE_LOCAL_DNS_CIDRS, dns_egress_rule, is_cidr
from components.network_policy import in_namespace

#: Open WebUI's container port (chart values service.containerPort; the image's PORT=8080).
OPEN_WEBUI_PORT = 8080
#: The chart's Service port (service.port), which targets the container's `http` port.
OPEN_WEBUI_SERVICE_PORT = 80
#: The image tag: the chart's appVersion (open-webui 16.0.0 Chart.yaml), which is also what the chart uses
#: when image.tag is empty (templates/_helpers.tpl "open-webui.tag"). Written out so a chart bump does not
#: move the image silently; a digest can be appended by the caller (image_tag "0.11.0@sha256:...").
OPEN_WEBUI_IMAGE_TAG = "0.11.0"
#: The pod's uid/gid: clear of host users (checkov CKV_K8S_40 asks for >= 10000). The image's files are
#: root-owned (its Dockerfile's UID/GID build args default to 0) and world-readable, so a non-root uid can
#: write only world-writable places (/tmp) and volumes: the data volume (fsGroup) and /tmp (an emptyDir).
OPEN_WEBUI_UID = 10001
OPEN_WEBUI_GID = 10001
#: Where the chart mounts the data volume (templates/workload-manager.yaml): SQLite database, uploads, and
#: the image's bundled model caches, which its copy-app-data init container copies there first.
DATA_DIR = "/app/backend/data"
TMP_DIR = "/tmp"
#: The chart's Chart.Name, its `app.kubernetes.io/component` on the Open WebUI pods.
CHART_COMPONENT = "open-webui"
#: The image repository the chart pulls (values.yaml image.repository); the bundle-merging init container
#: runs the very same image, so it adds no image to pull, pin or scan.
OPEN_WEBUI_IMAGE_REPOSITORY = "ghcr.io/open-webui/open-webui"
#: The chart's image.pullPolicy default (values.yaml), used for our init container too.
OPEN_WEBUI_PULL_POLICY = "IfNotPresent"
#: The image's own CA bundle. Open WebUI's Dockerfile builds its backend stage `FROM
#: python:3.11-slim-bookworm` (open-webui/open-webui Dockerfile, "WebUI backend" stage); that Debian image
#: installs the ca-certificates package, whose update-ca-certificates writes every trusted root into this
#: one PEM file (Debian's ca-certificates: /etc/ssl/certs/ca-certificates.crt).
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
#: Where the internal CA (trusted_ca_pem) is mounted, in the init container only.
CA_MOUNT_DIR = "/etc/inferstack/ca"
CA_FILE = "ca.crt"
#: The merged bundle (image roots + internal CA): an emptyDir the init container writes and the app reads.
MERGED_CA_DIR = "/etc/inferstack/trust"
MERGED_CA_FILE = "ca-bundle.crt"
MERGED_CA_PATH = f"{MERGED_CA_DIR}/{MERGED_CA_FILE}"
MERGE_CA_CONTAINER = "merge-ca-bundle"
#: The init container's program: the image's bundle, a newline (a PEM file may lack its last one), then the
#: internal CA, into the merged file. Paths are positional arguments ($1 $2 $3), not spliced into the script;
#: `-e` fails the pod start when either input is missing instead of leaving a bundle without it.
MERGE_CA_SCRIPT = '{ cat -- "$1"; echo; cat -- "$2"; } > "$3"'
WEBUI_SECRET_KEY_KEY = "webui-secret-key"
HTTPS_PORT = 443

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
#: OIDC discovery documents live here (OpenID Connect Discovery 1.0, section 4); Open WebUI's
#: OPENID_PROVIDER_URL is that document's URL.
WELL_KNOWN_SUFFIX = "/.well-known/openid-configuration"


class ChatPersistence(StrEnum):
    """Where Open WebUI keeps users, chats and settings (its SQLite database under DATA_DIR)."""

    NONE = "none"  # emptyDir: a restart loses every account and chat (a demo)
    VOLUME = "volume"  # a PersistentVolumeClaim (the chart then makes a StatefulSet)


@dataclass(frozen=True, kw_only=True)
class ChatOidc:
    """OpenID Connect single sign-on (Open WebUI's OAUTH_* / OPENID_PROVIDER_URL)."""

    provider_url: str  # the issuer's discovery URL, https://.../.well-known/openid-configuration
    client_id: (
        str  # the client registered at the issuer (redirect URI https://<hostname>/oauth/oidc/callback)
    )
    client_secret_name: str  # Secret in `namespace` holding the client secret
    client_secret_key: str = "client-secret"  # its key in that Secret
    # Networks the issuer's discovery, token and JWKS endpoints answer from (NetworkPolicy cannot name a DNS
    # name); the pod may reach them on 443 only.
    issuer_cidrs: list[str] = field(default_factory=list)
    provider_name: str = "SSO"  # the login button's label
    scopes: str = "openid email profile"  # space-separated
    allow_signup: bool = True  # ENABLE_OAUTH_SIGNUP: first SSO login creates the account
    login_form: bool = False  # ENABLE_LOGIN_FORM: also show the e-mail/password form (the admin's way in)


@dataclass(frozen=True, kw_only=True)
class ChatUiArgs:
    """Open WebUI on its own hostname, using the stack's endpoint with an API key of its own."""

    namespace: str  # the Gateway's namespace (the chart's Service must be there for the HTTPRoute)
    hostname: str  # the chat's DNS name (a LoadBalancer ExtraHostname)
    listener_key: str  # that ExtraHostname's key: the route attaches to listener `https-<key>`
    gateway_name: str  # the LoadBalancer component's name (its Gateway)
    api_hostname: str  # the endpoint's public hostname (LoadBalancerArgs.hostname)
    endpoint_address: pulumi.Input[str]  # the LoadBalancer's internal_address (ClusterIP of `<lb>-internal`)
    api_key_secret: pulumi.Input[str]  # the stack's API-key Secret in `namespace` (client id -> key)
    api_key_client_id: str = "open-webui"  # this UI's client id, a key of that Secret
    https_port: int = HTTPS_PORT  # where browsers reach HTTPS (the node port with kind nodeport)
    oidc: ChatOidc | None = None  # None: Open WebUI's own accounts (the first sign-up becomes admin)
    persistence: ChatPersistence = ChatPersistence.VOLUME
    storage_size: str | None = "2Gi"  # persistence volume: the claim's size (chart default 2Gi)
    storage_class: str | None = None  # persistence volume: StorageClass; None = the cluster's default
    cpu: str = "500m"  # request
    memory: str = "2Gi"  # request = limit (the bundled embedding model is loaded in process)
    cpu_limit: str = "2"
    request_timeout_seconds: int = 600  # the chat route's request timeout (streamed answers, websockets)
    image_tag: str = (
        OPEN_WEBUI_IMAGE_TAG  # ghcr.io/open-webui/open-webui:<tag>; append @sha256 to pin a digest
    )
    # PEM the pod trusts for the endpoint besides the image's roots (the internal CA's certificate with tls
    # mode internal_ca): an init container appends it to the image's CA bundle, and SSL_CERT_FILE /
    # REQUESTS_CA_BUNDLE name the merged file, so publicly signed hosts (an OIDC issuer) still verify.
    # None: the image's CA bundle alone (public ACME certificates).
    trusted_ca_pem: pulumi.Input[str] | None = None
    dns_cidrs: list[str] = field(default_factory=lambda: list(NODE_LOCAL_DNS_CIDRS))  # resolvers by address
    envoy_namespace: str = ENVOY_PROXY_NAMESPACE  # where the Gateway's Envoy pods run
    # Done before the release (the LoadBalancer, for the listener and internal Service).
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # escape hatch, merged over ours


def validate_chat_ui_args(args: ChatUiArgs) -> list[str]:
    """Every problem with `args`, each starting with the field it is about; empty when usable."""
    problems: list[str] = []
    if not _DNS_LABEL.match(args.namespace) or len(args.namespace) > 63:
        problems.append(f"namespace: {args.namespace!r} is not a Kubernetes namespace name")
    for field_name in ("hostname", "api_hostname"):
        value = getattr(args, field_name)
        if not _DNS_NAME.match(value):
            problems.append(f"{field_name}: {value!r} is not a lowercase DNS name with a domain")
    if args.hostname == args.api_hostname:
        problems.append("hostname: the chat needs a name of its own, not the API hostname")
    if not _DNS_LABEL.match(args.listener_key):
        problems.append(f"listener_key: {args.listener_key!r} must be the ExtraHostname key (a DNS label)")
    if not _DNS_LABEL.match(args.gateway_name):
        problems.append(f"gateway_name: {args.gateway_name!r} is not a Gateway name")
    if not _DNS_LABEL.match(args.api_key_client_id) or len(args.api_key_client_id) > 63:
        problems.append(
            f"api_key_client_id: {args.api_key_client_id!r} must be one of the stack's API client ids "
            "(a DNS label)"
        )
    if not 1 <= args.https_port <= 65535:
        problems.append(f"https_port: {args.https_port} is not a port")
    if args.persistence is ChatPersistence.VOLUME:
        if not args.storage_size:
            problems.append("storage_size: persistence 'volume' needs a claim size, e.g. '2Gi'")
    elif args.storage_class is not None:
        problems.append("storage_class: only used with persistence 'volume'")
    if args.storage_size is not None and not _QUANTITY.match(args.storage_size):
        problems.append(f"storage_size: {args.storage_size!r} is not a Kubernetes quantity such as '2Gi'")
    for field_name in ("cpu", "memory", "cpu_limit"):
        if not _QUANTITY.match(getattr(args, field_name)):
            problems.append(f"{field_name}: {getattr(args, field_name)!r} is not a Kubernetes quantity")
    if not 1 <= args.request_timeout_seconds <= 99999:
        problems.append("request_timeout_seconds: must be between 1 and 99999")
    if not re.match(r"^[\w][\w.-]{0,127}(@sha256:[0-9a-f]{64})?$", args.image_tag):
        problems.append(f"image_tag: {args.image_tag!r} is not an image tag (optionally @sha256:<64 hex>)")
    for cidr in args.dns_cidrs:
        if not is_cidr(cidr):
            problems.append(f"dns_cidrs: {cidr!r} is not a network in CIDR form")
    if args.oidc is not None:
        problems.extend(_oidc_problems(args.oidc))
    return problems


def _oidc_problems(oidc: ChatOidc) -> list[str]:
    problems: list[str] = []
    url = urlparse(oidc.provider_url)
    if url.scheme != "https" or not url.hostname or not oidc.provider_url.endswith(WELL_KNOWN_SUFFIX):
        problems.append(
            f"oidc.provider_url: {oidc.provider_url!r} must be the issuer's https discovery URL ending in "
            f"{WELL_KNOWN_SUFFIX}"
        )
    if not oidc.client_id.strip():
        problems.append("oidc.client_id: the client id registered at the issuer is needed")
    if not _DNS_LABEL.match(oidc.client_secret_name):
        problems.append(f"oidc.client_secret_name: {oidc.client_secret_name!r} is not a Secret name")
    if not _SECRET_KEY.match(oidc.client_secret_key):
        problems.append(f"oidc.client_secret_key: {oidc.client_secret_key!r} is not a Secret key")
    if not oidc.issuer_cidrs:
        problems.append(
            "oidc.issuer_cidrs: list the networks the issuer answers from (its addresses /32, or its "
            "provider's published ranges); the pod's egress is denied everywhere else"
        )
    for cidr in oidc.issuer_cidrs:
        if not is_cidr(cidr):
            problems.append(f"oidc.issuer_cidrs: {cidr!r} is not a network in CIDR form")
        elif ipaddress.ip_network(cidr).prefixlen == 0:
            problems.append(
                f"oidc.issuer_cidrs: {cidr!r} opens egress to everything; name the issuer's networks"
            )
    if not oidc.scopes.split() or "openid" not in oidc.scopes.split():
        problems.append(f"oidc.scopes: {oidc.scopes!r} must include 'openid'")
    if not oidc.allow_signup and not oidc.login_form:
        problems.append(
            "oidc.allow_signup, oidc.login_form: with both off nobody can get an account; allow SSO sign-up "
            "or keep the login form"
        )
    return problems


def release_name(component_name: str) -> str:
    """The Helm release, `<name>-open-webui`. It contains the chart name, so the chart's fullname (its
    Service, workload and claim names) is the release name itself (templates/_helpers.tpl
    "open-webui.fullname")."""
    return f"{component_name}-open-webui"


def open_webui_pod_labels(component_name: str) -> dict[str, str]:
    """The chart's selector labels on the Open WebUI pods (_helpers.tpl "open-webui.selectorLabels":
    instance = the release name, component = Chart.Name)."""
    return {
        "app.kubernetes.io/instance": release_name(component_name),
        "app.kubernetes.io/component": CHART_COMPONENT,
    }


def endpoint_url(api_hostname: str) -> str:
    """The OpenAI base URL Open WebUI calls: the public one (hostAliases resolve it in-cluster)."""
    return f"https://{api_hostname}/v1"


def public_url(args: ChatUiArgs) -> str:
    port = "" if args.https_port == HTTPS_PORT else f":{args.https_port}"
    return f"https://{args.hostname}{port}"


def open_webui_environment(args: ChatUiArgs, secret_key_secret: pulumi.Input[str]) -> list[dict[str, Any]]:
    """extraEnvVars (Kubernetes env entries, camelCase) beyond what the chart writes from its own values.
    Names and meanings: Open WebUI's environment variable reference (docs.openwebui.com)."""
    env: list[dict[str, Any]] = [
        # The OAuth redirect URI and links in e-mails are built from it; the chart sets it only with its
        # own Ingress.
        {"name": "WEBUI_URL", "value": public_url(args)},
        # Signs sessions; from a Secret, so start.sh does not write .webui_secret_key into the image's dir.
        {
            "name": "WEBUI_SECRET_KEY",
            "valueFrom": {"secretKeyRef": {"name": secret_key_secret, "key": WEBUI_SECRET_KEY_KEY}},
        },
        {"name": "WEBUI_SESSION_COOKIE_SECURE", "value": "True"},  # served over HTTPS only
        # The stack owns this configuration: without it Open WebUI keeps the API key, base URL and OAuth
        # settings of its first start in its database (PersistentConfig), and a rotated key or a changed
        # issuer would never reach it (every request then 401s).
        {"name": "ENABLE_PERSISTENT_CONFIG", "value": "False"},
        # No calls home: no model downloads from Hugging Face, no version check, no telemetry.
        {"name": "OFFLINE_MODE", "value": "True"},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "ENABLE_VERSION_UPDATE_CHECK", "value": "False"},
        {"name": "ENABLE_COMMUNITY_SHARING", "value": "False"},
        {"name": "ANONYMIZED_TELEMETRY", "value": "False"},
        {"name": "DO_NOT_TRACK", "value": "True"},
        {"name": "SCARF_NO_ANALYTICS", "value": "True"},
        # No self-service sign-up on the form: SSO sign-up (ENABLE_OAUTH_SIGNUP) or an admin adds users.
        # The first account on an empty database is still created (it becomes the admin).
        {"name": "ENABLE_SIGNUP", "value": "False"},
        {
            "name": "ENABLE_LOGIN_FORM",
            "value": "True" if args.oidc is None or args.oidc.login_form else "False",
        },
        # The image's HOME (/root) is not the pod user's and the root filesystem is read-only.
        {"name": "HOME", "value": TMP_DIR},
    ]
    if args.oidc is not None:
        # The callback the provider redirects to, written out rather than rebuilt from forwarded headers.
        env.append({"name": "OPENID_REDIRECT_URI", "value": f"{public_url(args)}/oauth/oidc/callback"})
    if args.trusted_ca_pem is not None:
        # Each REPLACES its library's default roots with the file it names (OpenSSL's default verify file,
        # which Python's ssl module loads; requests' certifi bundle), hence the merged file, never the
        # internal CA alone: with that, every publicly signed host (the OIDC issuer) fails verification.
        env += [
            {"name": "SSL_CERT_FILE", "value": MERGED_CA_PATH},
            {"name": "REQUESTS_CA_BUNDLE", "value": MERGED_CA_PATH},
        ]
    return env


def image_reference(args: ChatUiArgs) -> str:
    """`repository:tag` exactly as the chart writes its containers' image (workload-manager.yaml
    `{{ .repository }}:{{ include "open-webui.tag" $ }}`, the tag being image.tag when set)."""
    return f"{OPEN_WEBUI_IMAGE_REPOSITORY}:{args.image_tag}"


def merge_ca_init_container(args: ChatUiArgs, security_context: dict[str, Any]) -> dict[str, Any]:
    """The init container (a Kubernetes Container, camelCase) that writes MERGED_CA_PATH: the image's
    SYSTEM_CA_BUNDLE followed by the internal CA. Same image and pull policy as the app, the same restricted
    securityContext (read-only root; it writes only the `ca-bundle` emptyDir)."""
    return {
        "name": MERGE_CA_CONTAINER,
        "image": image_reference(args),
        "imagePullPolicy": OPEN_WEBUI_PULL_POLICY,
        # sh -ec SCRIPT NAME ARGS...: NAME becomes $0, the paths $1..$3.
        "command": ["sh", "-ec", MERGE_CA_SCRIPT, MERGE_CA_CONTAINER],
        "args": [SYSTEM_CA_BUNDLE, f"{CA_MOUNT_DIR}/{CA_FILE}", MERGED_CA_PATH],
        "securityContext": security_context,
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "volumeMounts": [
            {"name": "trusted-ca", "mountPath": CA_MOUNT_DIR, "readOnly": True},
            {"name": "ca-bundle", "mountPath": MERGED_CA_DIR},
        ],
    }


def open_webui_values(
    name: str,
    args: ChatUiArgs,
    secret_key_secret: pulumi.Input[str],
    ca_config_map: pulumi.Input[str] | None,
) -> dict[str, Any]:
    """The chart values we decide; every key is in open-webui 16.0.0's values.yaml."""
    container_security = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": OPEN_WEBUI_UID,
        "runAsGroup": OPEN_WEBUI_GID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": TMP_DIR}]
    init_containers: list[dict[str, Any]] = []
    if ca_config_map is not None:
        volumes += [
            {"name": "trusted-ca", "configMap": {"name": ca_config_map}},
            # Debian's bundle is about 220 KiB; the limit only bounds a runaway write.
            {"name": "ca-bundle", "emptyDir": {"sizeLimit": "8Mi"}},
        ]
        mounts.append({"name": "ca-bundle", "mountPath": MERGED_CA_DIR, "readOnly": True})
        init_containers.append(merge_ca_init_container(args, container_security))
    persistence: dict[str, Any] = {"enabled": args.persistence is ChatPersistence.VOLUME, "provider": "local"}
    if args.persistence is ChatPersistence.VOLUME:
        persistence["size"] = args.storage_size
        persistence["accessModes"] = ["ReadWriteOnce"]
        if args.storage_class:
            persistence["storageClass"] = args.storage_class
    values: dict[str, Any] = {
        # Extras that pull models, images or code, or phone home: off.
        "ollama": {"enabled": False},
        "pipelines": {"enabled": False},
        "tika": {"enabled": False},
        "terminals": {"enabled": False},
        # Websockets with the in-memory manager (one replica), no bundled Redis (values.yaml websocket.manager).
        "websocket": {"enabled": True, "manager": "", "redis": {"enabled": False}},
        "replicaCount": 1,
        "image": {
            "repository": OPEN_WEBUI_IMAGE_REPOSITORY,
            "tag": args.image_tag,
            "pullPolicy": OPEN_WEBUI_PULL_POLICY,
            "useSlim": False,
        },
        "ollamaUrls": [],
        # The stack's endpoint, with this UI's own key from the stack's API-key Secret (a secretKeyRef).
        "enableOpenaiApi": True,
        "openaiBaseApiUrl": endpoint_url(args.api_hostname),
        "openaiBaseApiUrls": [],
        "openaiApiKey": "",
        "openaiApiKeyExistingSecret": args.api_key_secret,
        "openaiApiKeyExistingSecretKey": args.api_key_client_id,
        # The public API hostname resolves to the internal Service on the Envoy pods (module docstring).
        "hostAliases": [{"ip": args.endpoint_address, "hostnames": [args.api_hostname]}],
        "service": {"type": "ClusterIP", "port": OPEN_WEBUI_SERVICE_PORT, "containerPort": OPEN_WEBUI_PORT},
        # Our HTTPRoute, not the chart's Ingress/route: one Gateway, one certificate, validated objects.
        "ingress": {"enabled": False},
        "route": {"enabled": False},
        "managedCertificate": {"enabled": False},
        "persistence": persistence,
        "serviceAccount": {"enable": True, "create": True, "automountServiceAccountToken": False},
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": OPEN_WEBUI_UID,
            "runAsGroup": OPEN_WEBUI_GID,
            "fsGroup": OPEN_WEBUI_GID,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # Applied by the chart to both the app and its copy-app-data init container.
        "containerSecurityContext": container_security,
        "resources": {
            "requests": {"cpu": args.cpu, "memory": args.memory},
            "limits": {"cpu": args.cpu_limit, "memory": args.memory},
        },
        "copyAppData": {
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
        },
        # /health answers once the app is up; the first start migrates the database and loads models.
        "startupProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 60,
        },
        "readinessProbe": {"httpGet": {"path": "/health/db", "port": "http"}, "periodSeconds": 10},
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 20,
            "failureThreshold": 3,
        },
        "volumes": volumes,
        # volumeMounts.initContainer is the chart's copy-app-data; ours carries its own (extraInitContainers,
        # written after copy-app-data in workload-manager.yaml).
        "volumeMounts": {"initContainer": [{"name": "tmp", "mountPath": TMP_DIR}], "container": mounts},
        "extraInitContainers": init_containers,
        "extraEnvVars": open_webui_environment(args, secret_key_secret),
    }
    if args.oidc is not None:
        oidc = args.oidc
        values["sso"] = {
            "enabled": True,
            "enableSignup": oidc.allow_signup,
            "oidc": {
                "enabled": True,
                "clientId": oidc.client_id,
                "clientSecret": "",
                "clientExistingSecret": oidc.client_secret_name,
                "clientExistingSecretKey": oidc.client_secret_key,
                "providerUrl": oidc.provider_url,
                "providerName": oidc.provider_name,
                "scopes": oidc.scopes,
            },
        }
    return values


def chat_route_spec(name: str, args: ChatUiArgs) -> dict[str, Any]:
    """The HTTPRoute: every path of the chat hostname, on the `https-<key>` listener, to the chart's Service."""
    timeout = f"{args.request_timeout_seconds}s"
    return {
        "parentRefs": [
            {
                **gateway_api_ref("Gateway", args.gateway_name, args.namespace),
                "sectionName": https_listener_name(args.listener_key),
            }
        ],
        "hostnames": [args.hostname],
        "rules": [
            {
                # Open WebUI serves only at the root (the chart's route.matches note, open-webui discussion 3431).
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {
                        "group": "",
                        "kind": "Service",
                        "name": release_name(name),
                        "port": OPEN_WEBUI_SERVICE_PORT,
                        "weight": 1,
                    }
                ],
                # Envoy's default route timeout is 15 s; Open WebUI streams answers for minutes. Websocket
                # upgrades are on by default in Envoy Gateway v1.8.3 (internal/xds/translator/route.go
                # defaultUpgradeConfig).
                "timeouts": {"request": timeout, "backendRequest": timeout},
            }
        ],
    }


def envoy_peer(args: ChatUiArgs) -> dict[str, Any]:
    """The Gateway's Envoy proxy pods as a NetworkPolicy peer (snake_case)."""
    return {
        "namespace_selector": in_namespace(args.envoy_namespace),
        "pod_selector": {
            "match_labels": {
                **ENVOY_PROXY_POD_LABELS,
                OWNING_GATEWAY_NAME_LABEL: args.gateway_name,
                OWNING_GATEWAY_NAMESPACE_LABEL: args.namespace,
            }
        },
    }


def network_policy_spec(name: str, args: ChatUiArgs) -> dict[str, Any]:
    """In: the Gateway's Envoy pods on 8080. Out: those Envoy pods on their HTTPS container port (the
    internal Service's target: a policy sees the destination after the Service's DNAT), DNS, and the
    OIDC issuer's networks on 443."""
    egress: list[dict[str, Any]] = [
        {
            "to": [envoy_peer(args)],
            "ports": [{"port": HTTPS_PORT + ENVOY_PRIVILEGED_PORT_SHIFT, "protocol": "TCP"}],
        },
        dns_egress_rule(list(args.dns_cidrs)),
    ]
    if args.oidc is not None:
        egress.append(
            {
                "to": [{"ip_block": {"cidr": cidr}} for cidr in args.oidc.issuer_cidrs],
                "ports": [{"port": HTTPS_PORT, "protocol": "TCP"}],
            }
        )
    return {
        "pod_selector": {"match_labels": open_webui_pod_labels(name)},
        "policy_types": ["Ingress", "Egress"],
        "ingress": [{"from": [envoy_peer(args)], "ports": [{"port": OPEN_WEBUI_PORT, "protocol": "TCP"}]}],
        "egress": egress,
    }


class ChatUi(pulumi.ComponentResource):
    """Open WebUI behind the stack's Gateway, calling the stack's endpoint with its own API key."""

    url: pulumi.Output[str]
    service_name: pulumi.Output[str]

    def __init__(self, name: str, args: ChatUiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reject_invalid_args("ChatUi", name, validate_chat_ui_args(args))
        super().__init__("inferstack:chat_ui:ChatUi", name, None, opts)
        ns = args.namespace
        meta_labels = labels(name, "chat-ui")

        secret_key = random.RandomPassword(
            f"{name}-webui-secret-key", length=48, special=False, opts=child(self)
        )
        secret_key_name = f"{name}-webui-secret-key"
        secret = k8s.core.v1.Secret(
            f"{name}-webui-secret-key",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=secret_key_name, namespace=ns, labels=meta_labels),
            type="Opaque",
            string_data={WEBUI_SECRET_KEY_KEY: secret_key.result},
            # Every namespaced object waits for what makes its namespace (args.depends_on).
            opts=child(self, depends_on=list(args.depends_on)),
        )
        deps: list[pulumi.Resource] = [secret, *args.depends_on]
        ca_name: str | None = None
        if args.trusted_ca_pem is not None:
            ca_name = f"{name}-trusted-ca"
            deps.append(
                k8s.core.v1.ConfigMap(
                    f"{name}-trusted-ca",
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=ca_name, namespace=ns, labels=meta_labels),
                    data={CA_FILE: args.trusted_ca_pem},
                    opts=child(self, depends_on=list(args.depends_on)),
                )
            )

        policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata={"name": f"{release_name(name)}-allow", "namespace": ns, "labels": meta_labels},
            spec=_untyped(network_policy_spec(name, args)),
            opts=child(self, depends_on=list(args.depends_on)),
        )
        release = helm_release(
            release_name(name),
            OPEN_WEBUI,
            namespace=ns,
            values=open_webui_values(name, args, secret_key_name, ca_name),
            extra_values=args.values,
            # The policy first: the pod starts with its paths open and nothing else.
            opts=child(self, depends_on=[*deps, policy]),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-route",
            api_version="gateway.networking.k8s.io/v1",
            kind="HTTPRoute",
            metadata={"name": f"{name}-chat", "namespace": ns, "labels": meta_labels},
            spec=chat_route_spec(name, args),
            opts=child(self, depends_on=[release, *args.depends_on]),
        )

        self.url = pulumi.Output.from_input(public_url(args))
        self.service_name = pulumi.Output.from_input(release_name(name))
        self.register_outputs({"url": self.url, "service_name": self.service_name})


def _untyped(spec: dict[str, Any]) -> Any:
    """Plain snake_case dicts for the SDK's typed arguments (its TypedDicts cannot type `from`)."""
    return spec
