"""TlsCertificates: the certificate the Gateway's HTTPS listener serves, kept fresh by cert-manager.

Per mode:

- `acme`: a ClusterIssuer for an ACME CA (Let's Encrypt by default), proving control of the hostname by
  HTTP-01 through the Gateway's `http` listener (cert-manager adds an HTTPRoute for the challenge) or by
  DNS-01 (RFC 2136 with a TSIG key, or Route53 / Cloud DNS / Azure DNS through the pod's cloud identity —
  no keys);
- `internal_ca`: a CA key and self-signed CA certificate made with pulumi-tls, stored as a
  kubernetes.io/tls Secret in cert-manager's namespace and used by a CA ClusterIssuer; clients trust
  `ca_certificate_pem`;
- `existing_secret`: nothing is issued; the Gateway uses the caller's kubernetes.io/tls Secret.

In the first two modes a Certificate in the Gateway's namespace writes the Secret `<name>-tls`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from components._common import CERT_MANAGER, child, helm_release, labels, reject_invalid_args
from components.choices import AcmeSolver, Dns01Provider, TlsMode

#: cert-manager's namespace, which is also its cluster resource namespace: ClusterIssuers read their
#: Secrets (CA key pair, ACME account key, TSIG key) from here.
CERT_MANAGER_NAMESPACE = "cert-manager"
LETS_ENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
#: Key inside the rfc2136 TSIG Secret (matches the stack file's documented layout).
TSIG_SECRET_KEY = "tsig-secret"
#: The Gateway listener HTTP-01 challenges arrive on (LoadBalancer's HTTP_LISTENER).
GATEWAY_HTTP_LISTENER = "http"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
#: Azure resource group names: 1-90 letters, digits, '_', '-', '.', '(' and ')', not ending in '.'.
_RESOURCE_GROUP = re.compile(r"^[-\w.()]{0,89}[-\w()]$")

#: The clouds cert-manager's azureDNS solver knows (ClusterIssuer CRD, acme.solvers.dns01.azureDNS.environment).
AZURE_ENVIRONMENTS = ("AzurePublicCloud", "AzureChinaCloud", "AzureGermanCloud", "AzureUSGovernmentCloud")
#: Azure Workload Identity (azure-workload-identity docs, "Quick start" / "Service Account Labels and
#: Annotations"): the mutating webhook projects a token into pods with this label, and the client id
#: annotation on their ServiceAccount names the managed identity the token is exchanged for.
AZURE_WORKLOAD_IDENTITY_USE_LABEL = "azure.workload.identity/use"
AZURE_WORKLOAD_IDENTITY_CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"


@dataclass(frozen=True, kw_only=True)
class TlsCertificatesArgs:
    """Where the certificate is needed and how it is obtained."""

    namespace: str  # the Gateway's namespace: the Certificate and its Secret live here
    hostname: str  # the DNS name the certificate is for
    gateway_name: str  # the Gateway (LoadBalancer component name) whose `http` listener serves HTTP-01
    mode: TlsMode  # acme | internal_ca | existing_secret
    acme_email: str | None = None  # acme: account email for expiry notices (required)
    acme_server: str = LETS_ENCRYPT_PRODUCTION  # acme: directory URL
    acme_solver: AcmeSolver = AcmeSolver.HTTP01  # acme: http01 through the Gateway, or dns01
    dns01_provider: Dns01Provider | None = None  # dns01: which DNS API proves control
    rfc2136_nameserver: str | None = None  # rfc2136: host:port of the authoritative server
    rfc2136_tsig_key_name: str | None = None  # rfc2136: TSIG key name
    rfc2136_tsig_secret: str | None = None  # rfc2136: Secret in cert-manager's namespace, key `tsig-secret`
    rfc2136_tsig_algorithm: str = "HMACSHA256"  # rfc2136: TSIG algorithm
    route53_region: str | None = None  # route53: AWS region (credentials: the pod's IRSA / Pod Identity)
    route53_hosted_zone_id: str | None = None  # route53: zone to write in (optional; found by name otherwise)
    clouddns_project: str | None = None  # clouddns: GCP project (credentials: GKE Workload Identity)
    clouddns_hosted_zone_name: str | None = (
        None  # clouddns: managed zone to write in (default: found by name)
    )
    # azuredns (cert-manager docs "AzureDNS", "Managed Identity Using AAD Workload Identity"): the zone's
    # subscription, resource group and name, and the client id of the user-assigned managed identity that
    # has "DNS Zone Contributor" on the zone and a federated credential for cert-manager's ServiceAccount
    # (cert_manager_service_account). The component labels cert-manager's controller pods and annotates
    # its ServiceAccount for Workload Identity itself; no secret is involved.
    azuredns_subscription_id: str | None = None  # azuredns: subscription GUID of the DNS zone
    azuredns_resource_group: str | None = None  # azuredns: resource group the zone is in
    azuredns_hosted_zone_name: str | None = None  # azuredns: the zone, e.g. example.com
    azuredns_managed_identity_client_id: pulumi.Input[str] | None = None  # azuredns: identity's client id
    azuredns_environment: str = "AzurePublicCloud"  # azuredns: the Azure cloud the zone is in
    internal_ca_common_name: str = "InferStack internal CA"  # internal_ca: the CA certificate's CN
    internal_ca_validity_hours: int = 24 * 365 * 5  # internal_ca: lifetime of the CA certificate
    existing_secret: str | None = None  # existing_secret: kubernetes.io/tls Secret in `namespace`
    certificate_duration_hours: int = 2160  # requested lifetime (ACME CAs may choose their own)
    install_cert_manager: bool = True  # install the pinned chart; False: cert-manager already runs
    cert_manager_namespace: str = CERT_MANAGER_NAMESPACE  # its namespace = cluster resource namespace
    cert_manager_service_account_annotations: dict[str, str] = field(
        default_factory=dict
    )  # controller SA: IRSA role / Workload Identity for route53 and clouddns
    cert_manager_values: dict[str, Any] = field(default_factory=dict)  # escape hatch, merged over ours
    # More DNS names on the same certificate (a front end's hostname on the same Gateway: load_balancer
    # ExtraHostname). Empty: the objects are exactly those without them.
    extra_hostnames: list[str] = field(default_factory=list)
    # acme http01: the Gateway's HTTP listeners those names' challenges arrive on (load_balancer
    # http_listener_name), besides `http`. cert-manager's solver route lists every parentRef; it attaches
    # to the listener whose hostname matches the challenge's name.
    extra_http01_listeners: list[str] = field(default_factory=list)
    # The chart's own PodMonitor over cert-manager's controller, webhook and cainjector (port `http-metrics`,
    # 9402: chart v1.20.2 templates/podmonitor.yaml, deployment.yaml), labelled `pod_monitor_labels` for the
    # Prometheus's podMonitorSelector. Serves certmanager_certificate_expiration_timestamp_seconds (the
    # certificate-expiry alert, components/alert_rules.py). Needs install_cert_manager. Off: the values are
    # exactly those without it (the chart's default prometheus.enabled stays, no PodMonitor).
    pod_monitor: bool = False
    pod_monitor_labels: dict[str, str] = field(default_factory=dict)
    # pod_monitor: what the release waits for: the resource that installs the PodMonitor CRD (the
    # Monitoring release where the stack installs it). Helm refuses a release whose kinds it cannot map.
    monitors_after: list[pulumi.Resource] = field(default_factory=list)


def validate_tls_args(args: TlsCertificatesArgs) -> list[str]:
    """Every problem with `args`, each starting with the field it is about; empty when they are usable."""
    problems: list[str] = []
    if not _DNS_LABEL.match(args.namespace):
        problems.append(f"namespace: {args.namespace!r} is not a Kubernetes namespace name")
    if not _DNS_LABEL.match(args.cert_manager_namespace):
        problems.append(f"cert_manager_namespace: {args.cert_manager_namespace!r} is not a namespace name")
    if not _DNS_NAME.match(args.hostname):
        problems.append(f"hostname: {args.hostname!r} is not a lowercase DNS name (e.g. llm.example.com)")
    if not args.gateway_name:
        problems.append("gateway_name: the Gateway's name is needed")
    if args.certificate_duration_hours < 24:
        problems.append("certificate_duration_hours: must be at least 24")
    for extra in args.extra_hostnames:
        if not _DNS_NAME.match(extra):
            problems.append(f"extra_hostnames: {extra!r} is not a lowercase DNS name (e.g. chat.example.com)")
        elif extra == args.hostname:
            problems.append(f"extra_hostnames: {extra!r} repeats hostname")
    if len(set(args.extra_hostnames)) != len(args.extra_hostnames):
        problems.append("extra_hostnames: a name is listed twice")
    if args.pod_monitor and not args.install_cert_manager:
        problems.append(
            "pod_monitor: cert-manager is not installed here (install_cert_manager false), so its chart's "
            "PodMonitor cannot be turned on; make a PodMonitor for the cert-manager you run, or drop pod_monitor"
        )
    for listener in args.extra_http01_listeners:
        if not _DNS_LABEL.match(listener):
            problems.append(f"extra_http01_listeners: {listener!r} is not a Gateway listener name")

    if args.mode is TlsMode.EXISTING_SECRET:
        if not args.existing_secret:
            problems.append(
                "existing_secret: mode existing_secret needs the name of a kubernetes.io/tls Secret"
            )
    elif args.existing_secret:
        problems.append(f"existing_secret: only used with mode existing_secret, not {args.mode.value}")

    if args.mode is TlsMode.ACME:
        problems.extend(_acme_problems(args))
    elif args.dns01_provider is not None:
        problems.append(f"dns01_provider: only used with mode acme, not {args.mode.value}")

    if args.mode is TlsMode.INTERNAL_CA:
        if not args.internal_ca_common_name.strip():
            problems.append("internal_ca_common_name: must not be empty")
        if args.internal_ca_validity_hours <= args.certificate_duration_hours:
            problems.append(
                f"internal_ca_validity_hours: {args.internal_ca_validity_hours} must exceed "
                f"certificate_duration_hours ({args.certificate_duration_hours}), or leaf certificates would "
                "outlive their CA"
            )
    return problems


def _acme_problems(args: TlsCertificatesArgs) -> list[str]:
    problems: list[str] = []
    if not args.acme_email:
        problems.append("acme_email: ACME needs an account email for expiry notices")
    elif not _EMAIL.match(args.acme_email):
        problems.append(f"acme_email: {args.acme_email!r} is not an email address")
    if not args.acme_server.startswith("https://"):
        problems.append(f"acme_server: {args.acme_server!r} must be an https:// ACME directory URL")

    if args.acme_solver is AcmeSolver.HTTP01:
        if args.hostname.startswith("*."):
            problems.append("hostname: a wildcard name can only be proven by dns01 (acme_solver)")
        if any(extra.startswith("*.") for extra in args.extra_hostnames):
            problems.append("extra_hostnames: a wildcard name can only be proven by dns01 (acme_solver)")
        if args.extra_hostnames and not args.extra_http01_listeners:
            problems.append(
                "extra_http01_listeners: http01 for extra_hostnames needs the Gateway listeners that answer "
                "them (load_balancer.http_listener_name); the `http` listener only answers hostname"
            )
        if args.dns01_provider is not None:
            problems.append("dns01_provider: only used with acme_solver dns01, not http01")
        return problems

    if args.dns01_provider is None:
        problems.append(
            "dns01_provider: acme_solver dns01 needs a provider (rfc2136, route53, clouddns or azuredns)"
        )
        return problems
    needed = {
        Dns01Provider.RFC2136: ("rfc2136_nameserver", "rfc2136_tsig_key_name", "rfc2136_tsig_secret"),
        Dns01Provider.ROUTE53: ("route53_region",),
        Dns01Provider.CLOUDDNS: ("clouddns_project",),
        Dns01Provider.AZUREDNS: (
            "azuredns_subscription_id",
            "azuredns_resource_group",
            "azuredns_hosted_zone_name",
            "azuredns_managed_identity_client_id",
        ),
    }[args.dns01_provider]
    for name in needed:
        if not getattr(args, name):
            problems.append(f"{name}: dns01 provider {args.dns01_provider.value} needs it")
    if args.rfc2136_tsig_secret and not _DNS_LABEL.match(args.rfc2136_tsig_secret):
        problems.append(f"rfc2136_tsig_secret: {args.rfc2136_tsig_secret!r} is not a Secret name")
    if args.dns01_provider is Dns01Provider.AZUREDNS:
        problems.extend(_azuredns_problems(args))
    return problems


def _azuredns_problems(args: TlsCertificatesArgs) -> list[str]:
    """Shapes of the azuredns fields that are set (missing ones are reported by _acme_problems)."""
    problems: list[str] = []
    if args.azuredns_subscription_id and not _GUID.match(args.azuredns_subscription_id):
        problems.append(
            f"azuredns_subscription_id: {args.azuredns_subscription_id!r} is not a subscription id (a GUID, "
            "e.g. 00000000-0000-0000-0000-000000000000; `az account show --query id`)"
        )
    if args.azuredns_resource_group and not _RESOURCE_GROUP.match(args.azuredns_resource_group):
        problems.append(
            f"azuredns_resource_group: {args.azuredns_resource_group!r} is not a resource group name "
            "(1-90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.')"
        )
    zone = args.azuredns_hosted_zone_name
    if zone and not _DNS_NAME.match(zone):
        problems.append(f"azuredns_hosted_zone_name: {zone!r} is not a lowercase DNS zone name")
    elif zone and not _in_zone(args.hostname, zone):
        problems.append(
            f"azuredns_hosted_zone_name: {zone!r} does not contain hostname {args.hostname!r}; cert-manager "
            "writes the _acme-challenge record in this zone, so it must be the hostname's zone or a parent"
        )
    elif zone:
        outside = [extra for extra in args.extra_hostnames if not _in_zone(extra, zone)]
        if outside:
            problems.append(
                f"azuredns_hosted_zone_name: {zone!r} does not contain extra_hostnames {', '.join(outside)}"
            )
    client_id = args.azuredns_managed_identity_client_id
    # An Output (the identity made in the same stack) is checked by Azure; a literal is checked here.
    if isinstance(client_id, str) and client_id and not _GUID.match(client_id):
        problems.append(
            f"azuredns_managed_identity_client_id: {client_id!r} is not a client id (a GUID: the managed "
            "identity's clientId, not its principalId or resource id)"
        )
    if args.azuredns_environment not in AZURE_ENVIRONMENTS:
        problems.append(
            f"azuredns_environment: {args.azuredns_environment!r} is not one of {', '.join(AZURE_ENVIRONMENTS)}"
        )
    return problems


def _in_zone(name: str, zone: str) -> bool:
    bare = name.removeprefix("*.")
    return bare == zone or bare.endswith("." + zone)


class TlsCertificates(pulumi.ComponentResource):
    """cert-manager plus an issuer and a Certificate for the Gateway's hostname."""

    secret_name: pulumi.Output[str]
    issuer_name: pulumi.Output[str | None]
    ca_certificate_pem: pulumi.Output[str | None]

    def __init__(self, name: str, args: TlsCertificatesArgs, opts: pulumi.ResourceOptions | None = None):
        reject_invalid_args("TlsCertificates", name, validate_tls_args(args))
        super().__init__("inferstack:tls:TlsCertificates", name, None, opts)

        cm_ns = args.cert_manager_namespace
        meta_labels = labels(name, "tls")

        release: k8s.helm.v3.Release | None = None
        if args.install_cert_manager:
            release = helm_release(
                cert_manager_release_name(name),
                CERT_MANAGER,
                namespace=cm_ns,
                values=cert_manager_values(args),
                extra_values=args.cert_manager_values,
                opts=child(self, depends_on=list(args.monitors_after) if args.pod_monitor else None),
            )
        # Issuers and Certificates need the CRDs and a running webhook: both come with the release.
        after_release: list[pulumi.Resource] = [release] if release is not None else []

        issuer: k8s.apiextensions.CustomResource | None = None
        issuer_name: str | None = None
        ca_pem: pulumi.Output[str] | None = None
        if args.mode is TlsMode.ACME:
            issuer_name = f"{name}-acme"
            issuer = k8s.apiextensions.CustomResource(
                f"{name}-issuer",
                api_version="cert-manager.io/v1",
                kind="ClusterIssuer",
                metadata={"name": issuer_name, "labels": meta_labels},
                spec={"acme": acme_issuer_spec(name, args)},
                opts=child(self, depends_on=after_release),
            )
        elif args.mode is TlsMode.INTERNAL_CA:
            issuer_name = f"{name}-ca"
            ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child(self))
            ca_cert = tls.SelfSignedCert(
                f"{name}-ca-cert",
                private_key_pem=ca_key.private_key_pem,
                is_ca_certificate=True,
                validity_period_hours=args.internal_ca_validity_hours,
                early_renewal_hours=24 * 30,
                allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
                subject=tls.SelfSignedCertSubjectArgs(
                    common_name=args.internal_ca_common_name, organization="InferStack"
                ),
                opts=child(self),
            )
            ca_pem = ca_cert.cert_pem
            ca_secret_name = f"{name}-ca"
            ca_secret = k8s.core.v1.Secret(
                f"{name}-ca-secret",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=ca_secret_name, namespace=cm_ns, labels=meta_labels),
                type="kubernetes.io/tls",
                string_data={"tls.crt": ca_cert.cert_pem, "tls.key": ca_key.private_key_pem},
                # The namespace is made by the release (create_namespace).
                opts=child(self, depends_on=after_release),
            )
            issuer = k8s.apiextensions.CustomResource(
                f"{name}-issuer",
                api_version="cert-manager.io/v1",
                kind="ClusterIssuer",
                metadata={"name": issuer_name, "labels": meta_labels},
                spec={"ca": {"secretName": ca_secret_name}},
                opts=child(self, depends_on=[*after_release, ca_secret]),
            )

        if issuer is not None and issuer_name is not None:
            secret_name = f"{name}-tls"
            k8s.apiextensions.CustomResource(
                f"{name}-certificate",
                api_version="cert-manager.io/v1",
                kind="Certificate",
                metadata={"name": name, "namespace": args.namespace, "labels": meta_labels},
                spec=certificate_spec(secret_name, issuer_name, args),
                opts=child(self, depends_on=[*after_release, issuer]),
            )
        else:
            secret_name = str(args.existing_secret)

        self.secret_name = pulumi.Output.from_input(secret_name)
        self.issuer_name = pulumi.Output.from_input(issuer_name)
        self.ca_certificate_pem = ca_pem if ca_pem is not None else pulumi.Output.from_input(None)
        self.register_outputs(
            {
                "secret_name": self.secret_name,
                "issuer_name": self.issuer_name,
                "ca_certificate_pem": self.ca_certificate_pem,
            }
        )


def cert_manager_values(args: TlsCertificatesArgs) -> dict[str, Any]:
    """The chart values we decide; each key is in the chart's values.schema.json."""
    values: dict[str, Any] = {
        # CRDs as chart templates (upgraded with the chart); kept if the release is ever uninstalled,
        # because deleting the CRDs would delete every Certificate with them.
        "crds": {"enabled": True, "keep": True},
        # The gatewayHTTPRoute HTTP-01 solver needs the controller's Gateway API support.
        "config": {
            "apiVersion": "controller.config.cert-manager.io/v1alpha1",
            "kind": "ControllerConfiguration",
            "enableGatewayAPI": True,
        },
    }
    if args.pod_monitor:
        # The chart renders the PodMonitor when both are true (templates/podmonitor.yaml; it refuses
        # podmonitor and servicemonitor together, and servicemonitor stays off). It scrapes the
        # `http-metrics` container port 9402 of the controller, webhook and cainjector; the webhook and
        # cainjector declare it only while prometheus.enabled. No NetworkPolicy selects cert-manager's pods
        # (none of ours in its namespace; the chart's webhook.networkPolicy is off by default), so
        # Prometheus reaches them.
        values["prometheus"] = {
            "enabled": True,
            # honorLabels: the certificate series carry the Certificate's own `namespace` and `name`; with
            # the chart's default (false) Prometheus renames them exported_namespace, and the expiry alert
            # would name cert-manager's namespace instead of the certificate's.
            "podmonitor": {"enabled": True, "labels": dict(args.pod_monitor_labels), "honorLabels": True},
        }
    annotations: dict[str, Any] = dict(args.cert_manager_service_account_annotations)
    if args.acme_solver is AcmeSolver.DNS01 and args.dns01_provider is Dns01Provider.AZUREDNS:
        # Workload Identity for the controller only (the webhook and cainjector call no Azure API): the
        # label makes the azure-workload-identity webhook project a token and set AZURE_CLIENT_ID,
        # AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE, which cert-manager's azureDNS solver reads
        # (cert-manager docs "AzureDNS", "Reconfigure cert-manager": podLabels and serviceAccount
        # annotations; chart values `podLabels`, `serviceAccount.annotations`).
        values["podLabels"] = {AZURE_WORKLOAD_IDENTITY_USE_LABEL: "true"}
        annotations[AZURE_WORKLOAD_IDENTITY_CLIENT_ID_ANNOTATION] = args.azuredns_managed_identity_client_id
    if annotations:
        values["serviceAccount"] = {"annotations": annotations}
    return values


def cert_manager_service_account(component_name: str) -> str:
    """The controller's ServiceAccount: the chart names it after the release (Helm's fullname rule: a
    release name that contains the chart name is used as is), and the release is `<name>-cert-manager`.
    A cloud identity (EKS Pod Identity association, Workload Identity binding) names it before it exists."""
    return cert_manager_release_name(component_name)


def cert_manager_release_name(component_name: str) -> str:
    return f"{component_name}-cert-manager"


def acme_issuer_spec(name: str, args: TlsCertificatesArgs) -> dict[str, Any]:
    if args.acme_solver is AcmeSolver.HTTP01:
        solver: dict[str, Any] = {
            "http01": {
                "gatewayHTTPRoute": {
                    "parentRefs": [
                        {
                            "group": "gateway.networking.k8s.io",
                            "kind": "Gateway",
                            "name": args.gateway_name,
                            "namespace": args.namespace,
                            "sectionName": listener,
                        }
                        for listener in [GATEWAY_HTTP_LISTENER, *args.extra_http01_listeners]
                    ]
                }
            }
        }
    else:
        solver = {"dns01": dns01_solver(args)}
    return {
        "email": args.acme_email,
        "server": args.acme_server,
        # cert-manager creates the account key in its cluster resource namespace.
        "privateKeySecretRef": {"name": f"{name}-acme-account"},
        "solvers": [solver],
    }


def dns01_solver(args: TlsCertificatesArgs) -> dict[str, Any]:
    if args.dns01_provider is Dns01Provider.RFC2136:
        return {
            "rfc2136": {
                "nameserver": args.rfc2136_nameserver,
                "tsigKeyName": args.rfc2136_tsig_key_name,
                "tsigAlgorithm": args.rfc2136_tsig_algorithm,
                "tsigSecretSecretRef": {"name": args.rfc2136_tsig_secret, "key": TSIG_SECRET_KEY},
            }
        }
    if args.dns01_provider is Dns01Provider.ROUTE53:
        # No access keys: cert-manager's ServiceAccount carries the IAM role (IRSA / EKS Pod Identity).
        route53: dict[str, Any] = {"region": args.route53_region}
        if args.route53_hosted_zone_id:
            route53["hostedZoneID"] = args.route53_hosted_zone_id
        return {"route53": route53}
    if args.dns01_provider is Dns01Provider.CLOUDDNS:
        # No key file: GKE Workload Identity gives cert-manager's ServiceAccount its grant. Naming the zone
        # spares cert-manager listing the project's zones, so its grant can be on that one zone.
        cloud_dns: dict[str, Any] = {"project": args.clouddns_project}
        if args.clouddns_hosted_zone_name:
            cloud_dns["hostedZoneName"] = args.clouddns_hosted_zone_name
        return {"cloudDNS": cloud_dns}
    if args.dns01_provider is Dns01Provider.AZUREDNS:
        # managedIdentity.clientID with no secret: cert-manager uses the Workload Identity token when the
        # controller pod has one (cert-manager docs "AzureDNS", "Managed Identity Using AAD Workload
        # Identity"). The CRD requires subscriptionID and resourceGroupName; naming the zone spares a
        # list call, so the identity's role can be on that one zone.
        return {
            "azureDNS": {
                "subscriptionID": args.azuredns_subscription_id,
                "resourceGroupName": args.azuredns_resource_group,
                "hostedZoneName": args.azuredns_hosted_zone_name,
                "environment": args.azuredns_environment,
                "managedIdentity": {"clientID": args.azuredns_managed_identity_client_id},
            }
        }
    raise AssertionError(f"unhandled dns01 provider {args.dns01_provider!r}")  # validation prevents this


def certificate_spec(secret_name: str, issuer_name: str, args: TlsCertificatesArgs) -> dict[str, Any]:
    return {
        "secretName": secret_name,
        "dnsNames": [args.hostname, *args.extra_hostnames],
        "duration": f"{args.certificate_duration_hours}h",
        "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": issuer_name},
        # A fresh key on every renewal: a leaked key dies with its certificate.
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "usages": ["digital signature", "server auth"],
    }
