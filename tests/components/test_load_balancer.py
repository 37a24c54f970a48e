"""LoadBalancer: HTTPS only, API keys on the API route, per-client limits, and manifests the CRDs accept."""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import pulumi
import pytest

from components._common import ENVOY_GATEWAY
from components.choices import GcpLoadBalancerScheme, LoadBalancerKind
from components.clusters.aws.load_balancer_controller import (
    NLB_LOAD_BALANCER_CLASS,
    NLB_SCHEMES,
    nlb_service_annotations,
)
from components.clusters.gcp.load_balancer import gke_service_exposure
from components.load_balancer import (
    API_KEY_LENGTH,
    CLIENT_ID_HEADER,
    ENVOY_GATEWAY_CONTROLLER,
    ENVOY_PROXY_NAMESPACE,
    ENVOY_PROXY_POD_LABELS,
    HTTP_LISTENER,
    HTTPS_LISTENER,
    MAX_RATE_LIMITED_CLIENTS,
    Backend,
    LoadBalancer,
    LoadBalancerArgs,
    envoy_gateway_values,
    is_open,
    validate_load_balancer_args,
)
from inferstack.planning.recording import SECRET_PLACEHOLDER, Recording, run_program
from inferstack.validation.policies import load_rules
from tests.components.schemas import (
    chart_value_errors,
    crd_errors,
    error_paths,
    manifest_of,
    needs_charts,
    needs_crds,
)

T_GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
T_GATEWAY_CLASS = "kubernetes:gateway.networking.k8s.io/v1:GatewayClass"
T_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
T_ENVOY_PROXY = "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy"
T_SECURITY = "kubernetes:gateway.envoyproxy.io/v1alpha1:SecurityPolicy"
T_TRAFFIC = "kubernetes:gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy"
T_SECRET = "kubernetes:core/v1:Secret"
T_PASSWORD = "random:index/randomPassword:RandomPassword"
T_RELEASE = "kubernetes:helm.sh/v3:Release"


def make_args(**overrides: Any) -> LoadBalancerArgs:
    base: dict[str, Any] = {
        "namespace": "inferstack",
        "hostname": "llm.example.com",
        "backends": [Backend(service_name="llm-server", port=8000)],
        "tls_secret_name": "llm-tls",
        "api_key_clients": ["portal", "batch"],
        "kind": LoadBalancerKind.METALLB,
        "metallb_pool": "public-pool",
    }
    base.update(overrides)
    return LoadBalancerArgs(**base)


def deploy(name: str = "llm", **overrides: Any) -> tuple[Recording, dict[str, Any]]:
    """Run one LoadBalancer; also return its outputs, resolved (secrets included) for assertions."""
    resolved: dict[str, Any] = {}

    def program() -> None:
        lb = LoadBalancer(name, make_args(**overrides))
        pulumi.export("api_keys", lb.api_keys)
        for output in ("url", "gateway_name", "api_keys"):
            getattr(lb, output).apply(functools.partial(resolved.__setitem__, output))

    return run_program(program), resolved


@functools.cache
def default_run() -> tuple[Recording, dict[str, Any]]:
    return deploy()


def route(rec: Recording, suffix: str) -> dict[str, Any]:
    return rec.one(T_ROUTE, suffix).inputs["spec"]


# --- validation (pure) -----------------------------------------------------------------------------


def test_valid_args_have_no_problems() -> None:
    assert validate_load_balancer_args(make_args()) == []
    nodeport = make_args(kind=LoadBalancerKind.NODEPORT, metallb_pool=None)
    assert validate_load_balancer_args(nodeport) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"metallb_pool": None}, "metallb_pool"),
        ({"kind": LoadBalancerKind.EXISTING}, "metallb_pool"),  # pool given for another kind
        ({"allowed_source_cidrs": ["10.0.0.1/8"]}, "allowed_source_cidrs"),  # host bits set
        ({"allowed_source_cidrs": ["not-a-cidr"]}, "allowed_source_cidrs"),
        ({"allowed_source_cidrs": []}, "allowed_source_cidrs"),
        ({"api_key_clients": []}, "api_key_clients"),
        ({"api_key_clients": ["a", "a"]}, "api_key_clients"),
        ({"api_key_clients": ["Has Space"]}, "api_key_clients"),
        ({"api_key_clients": [f"c{i}" for i in range(MAX_RATE_LIMITED_CLIENTS + 1)]}, "api_key_clients"),
        ({"backends": []}, "backends"),
        ({"backends": [Backend(service_name="s", port=8000, weight=0)]}, "backends"),
        ({"backends": [Backend(service_name="s", port=0)]}, "backends[0].port"),
        ({"hostname": "LLM"}, "hostname"),
        ({"namespace": "Bad_NS"}, "namespace"),
        ({"address": "not-an-ip"}, "address"),
        ({"address": "2001:db8::1"}, "address"),
        ({"rate_limit_requests_per_minute": 0}, "rate_limit_requests_per_minute"),
        ({"request_timeout_seconds": 0}, "request_timeout_seconds"),
        ({"envoy_replicas": 0}, "envoy_replicas"),
        ({"existing_api_key_secret": "Not/A/Name"}, "existing_api_key_secret"),
        (
            {"kind": LoadBalancerKind.NODEPORT, "metallb_pool": None, "https_node_port": 30080},
            "http_node_port, https_node_port",
        ),
        ({"kind": LoadBalancerKind.NODEPORT, "metallb_pool": None, "http_node_port": 80}, "http_node_port"),
        (
            {"kind": LoadBalancerKind.NODEPORT, "metallb_pool": None, "address": "192.0.2.1"},
            "address",
        ),
    ],
)
def test_each_invalid_input_is_named(overrides: dict[str, Any], field: str) -> None:
    problems = validate_load_balancer_args(make_args(**overrides))
    assert problems, overrides
    assert any(p.startswith(f"{field}:") for p in problems), problems


def test_more_clients_are_allowed_without_a_rate_limit() -> None:
    many = [f"c{i}" for i in range(MAX_RATE_LIMITED_CLIENTS + 1)]
    assert (
        validate_load_balancer_args(make_args(api_key_clients=many, rate_limit_requests_per_minute=None))
        == []
    )


def test_every_problem_is_reported_at_once_and_construction_refuses() -> None:
    bad = make_args(metallb_pool=None, api_key_clients=[], allowed_source_cidrs=["x"])
    problems = validate_load_balancer_args(bad)
    assert {p.split(":")[0] for p in problems} >= {"metallb_pool", "api_key_clients", "allowed_source_cidrs"}
    with pytest.raises(ValueError, match="metallb_pool") as err:
        run_program(lambda: LoadBalancer("llm", bad))
    assert "api_key_clients" in str(err.value)


def test_proxy_constants_match_envoy_gateway_labels() -> None:
    assert ENVOY_PROXY_NAMESPACE == "envoy-gateway-system"
    assert ENVOY_PROXY_POD_LABELS["app.kubernetes.io/name"] == "envoy"
    assert ENVOY_PROXY_POD_LABELS["app.kubernetes.io/component"] == "proxy"


# --- the Gateway ----------------------------------------------------------------------------------


def test_https_listener_terminates_with_the_certificate_secret() -> None:
    rec, out = default_run()
    gateway = rec.one(T_GATEWAY)
    assert gateway.inputs["metadata"]["name"] == "llm" == out["gateway_name"]
    listeners = {listener["name"]: listener for listener in gateway.inputs["spec"]["listeners"]}
    https = listeners[HTTPS_LISTENER]
    assert (https["protocol"], https["port"], https["hostname"]) == ("HTTPS", 443, "llm.example.com")
    assert https["tls"]["mode"] == "Terminate"
    assert [ref["name"] for ref in https["tls"]["certificateRefs"]] == ["llm-tls"]
    assert https["tls"]["certificateRefs"][0]["kind"] == "Secret"
    assert "tls" not in listeners[HTTP_LISTENER] and listeners[HTTP_LISTENER]["port"] == 80
    assert out["url"] == "https://llm.example.com"


def test_gateway_class_uses_the_envoy_proxy_and_the_installed_controller() -> None:
    rec, _ = default_run()
    gateway_class = rec.one(T_GATEWAY_CLASS).inputs
    proxy = rec.one(T_ENVOY_PROXY).inputs["metadata"]
    assert rec.one(T_GATEWAY).inputs["spec"]["gatewayClassName"] == gateway_class["metadata"]["name"]
    ref = gateway_class["spec"]["parametersRef"]
    assert (ref["group"], ref["kind"]) == ("gateway.envoyproxy.io", "EnvoyProxy")
    assert (ref["name"], ref["namespace"]) == (proxy["name"], proxy["namespace"])
    assert gateway_class["spec"]["controllerName"] == ENVOY_GATEWAY_CONTROLLER
    assert (
        envoy_gateway_values()["config"]["envoyGateway"]["gateway"]["controllerName"]
        == ENVOY_GATEWAY_CONTROLLER
    )


def test_plain_http_only_redirects_to_https() -> None:
    rec, _ = default_run()
    routes = rec.of_type(T_ROUTE)
    on_http = [
        r
        for r in routes
        if any(p.get("sectionName") == HTTP_LISTENER for p in r.inputs["spec"]["parentRefs"])
    ]
    assert [r.name for r in on_http] == ["llm-redirect-route"]
    for rule in on_http[0].inputs["spec"]["rules"]:
        assert not rule.get("backendRefs"), "nothing on plain HTTP may reach the model"
        redirect = [f["requestRedirect"] for f in rule["filters"] if f["type"] == "RequestRedirect"]
        # 308 keeps POST a POST (a 301 lets clients resend it as a GET).
        assert redirect == [{"scheme": "https", "statusCode": 308}]
    # Every route that does reach a backend is bound to the HTTPS listener only.
    for r in routes:
        if any(rule.get("backendRefs") for rule in r.inputs["spec"]["rules"]):
            assert {p["sectionName"] for p in r.inputs["spec"]["parentRefs"]} == {HTTPS_LISTENER}


def test_api_route_splits_weighted_backends_with_streaming_timeouts() -> None:
    rec, _ = deploy(
        backends=[
            Backend(service_name="model-a", port=8000, weight=90),
            Backend(service_name="model-b", port=8000, weight=10),
        ],
        request_timeout_seconds=900,
    )
    spec = route(rec, "api-route")
    assert spec["hostnames"] == ["llm.example.com"]
    [rule] = spec["rules"]  # one rule: the split is per request, not per path
    assert [(b["name"], b["port"], b["weight"]) for b in rule["backendRefs"]] == [
        ("model-a", 8000, 90),
        ("model-b", 8000, 10),
    ]
    assert rule["timeouts"]["request"] == "900s"


# --- API keys -------------------------------------------------------------------------------------


def test_api_route_is_protected_by_api_keys_read_from_authorization() -> None:
    rec, _ = default_run()
    policy = rec.one(T_SECURITY).inputs["spec"]
    api_route = rec.one(T_ROUTE, "api-route").inputs["metadata"]["name"]
    assert policy["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": api_route}
    ]
    auth = policy["apiKeyAuth"]
    assert auth["extractFrom"] == [{"headers": ["Authorization"]}]
    assert auth["sanitize"] is True, "the key must not be forwarded to the engine"
    assert auth["forwardClientIDHeader"] == CLIENT_ID_HEADER
    assert [ref["name"] for ref in auth["credentialRefs"]] == [rec.one(T_SECRET).inputs["metadata"]["name"]]


def _envoy_key_lookup(authorization: str, secret_data: dict[str, str]) -> str | None:
    """Envoy's api_key_auth: take the header, drop a leading 'Bearer ', find the client whose value it is."""
    key = authorization.removeprefix("Bearer ")
    return next((client for client, value in secret_data.items() if value == key), None)


def test_generated_keys_exist_per_client_and_are_exported_secret() -> None:
    rec, out = default_run()
    passwords = {r.name: r.inputs for r in rec.of_type(T_PASSWORD)}
    assert set(passwords) == {"llm-api-key-portal", "llm-api-key-batch"}
    for inputs in passwords.values():
        assert inputs["length"] >= 40 and inputs["special"] is False
    secret = rec.one(T_SECRET)
    assert secret.inputs["type"] == "Opaque"
    data = secret.inputs["stringData"]
    assert set(data) == {"portal", "batch"}
    assert all(len(v) == API_KEY_LENGTH for v in data.values())
    # Nothing written out (plans, previews) carries a key.
    redacted = json.dumps([r.redacted_inputs for r in rec.resources])
    assert not any(key in redacted for key in data.values())
    assert rec.exports["api_keys"] == SECRET_PLACEHOLDER
    assert out["api_keys"] == data
    # What the openai client sends authenticates as the right client; a wrong key does not.
    for client, key in out["api_keys"].items():
        assert _envoy_key_lookup(f"Bearer {key}", data) == client
    assert _envoy_key_lookup("Bearer wrong", data) is None


def test_existing_key_secret_is_referenced_and_nothing_generated() -> None:
    rec, out = deploy(existing_api_key_secret="site-api-keys")
    assert rec.of_type(T_PASSWORD) == [] and rec.of_type(T_SECRET) == []
    creds = rec.one(T_SECURITY).inputs["spec"]["apiKeyAuth"]["credentialRefs"]
    assert [c["name"] for c in creds] == ["site-api-keys"]
    assert out["api_keys"] == {}


# --- source networks, exposure ---------------------------------------------------------------------


def envoy_service(rec: Recording) -> dict[str, Any]:
    return rec.one(T_ENVOY_PROXY).inputs["spec"]["provider"]["kubernetes"]["envoyService"]


def test_cidr_restriction_appears_only_when_not_open() -> None:
    restricted, _ = deploy(allowed_source_cidrs=["10.0.0.0/8", "192.0.2.0/24"])
    authz = restricted.one(T_SECURITY).inputs["spec"]["authorization"]
    assert authz["defaultAction"] == "Deny"
    assert [r["principal"]["clientCIDRs"] for r in authz["rules"] if r["action"] == "Allow"] == [
        ["10.0.0.0/8", "192.0.2.0/24"]
    ]
    assert envoy_service(restricted)["loadBalancerSourceRanges"] == ["10.0.0.0/8", "192.0.2.0/24"]
    assert envoy_service(restricted)["externalTrafficPolicy"] == "Local"  # keeps the client address

    open_, _ = default_run()
    assert "authorization" not in open_.one(T_SECURITY).inputs["spec"]
    assert "loadBalancerSourceRanges" not in envoy_service(open_)


@pytest.mark.parametrize(
    ("cidrs", "open_"),
    [
        (["0.0.0.0/0"], True),
        (["0.0.0.0/1", "128.0.0.0/1"], True),  # every address, not written as 0.0.0.0/0
        (["::/0"], True),
        (["0.0.0.0/1"], False),
        (["10.0.0.0/8", "0.0.0.0/2"], False),
    ],
)
def test_open_is_measured_not_read_off_the_string(cidrs: list[str], open_: bool) -> None:
    assert is_open(cidrs) is open_


ALLOW_LIST = ["10.0.0.0/8", "192.0.2.0/24"]


def _gke(scheme: GcpLoadBalancerScheme) -> dict[str, Any]:
    annotations, load_balancer_class = gke_service_exposure(scheme)
    return {"cloud_service_annotations": annotations, "cloud_load_balancer_class": load_balancer_class}


def _aws(scheme: str) -> dict[str, Any]:
    return {
        "cloud_service_annotations": nlb_service_annotations(scheme, ALLOW_LIST),
        "cloud_load_balancer_class": NLB_LOAD_BALANCER_CLASS,
    }


#: Every platform x load-balancer kind x scheme the stacks can produce.
EXPOSURES: dict[str, dict[str, Any]] = {
    "existing": {"kind": LoadBalancerKind.EXISTING, "metallb_pool": None},
    "existing-with-address": {
        "kind": LoadBalancerKind.EXISTING,
        "metallb_pool": None,
        "address": "192.0.2.10",
    },
    "metallb": {"kind": LoadBalancerKind.METALLB, "metallb_pool": "pool"},
    "nodeport": {"kind": LoadBalancerKind.NODEPORT, "metallb_pool": None},
    **{
        f"gke-{s.value}": {"kind": LoadBalancerKind.CLOUD, "metallb_pool": None, **_gke(s)}
        for s in GcpLoadBalancerScheme
    },
    **{f"aws-{s}": {"kind": LoadBalancerKind.CLOUD, "metallb_pool": None, **_aws(s)} for s in NLB_SCHEMES},
}


@pytest.mark.parametrize("exposure", sorted(EXPOSURES))
def test_every_exposure_keeps_the_client_address_its_allow_list_matches(exposure: str) -> None:
    rec, _ = deploy(allowed_source_cidrs=ALLOW_LIST, **EXPOSURES[exposure])
    # Every Service in front of Envoy (EnvoyProxy's, or our own for a cloud) is Local: no node SNAT.
    services = [envoy_service(rec)] + [r.inputs["spec"] for r in rec.of_type("kubernetes:core/v1:Service")]
    outside = [s for s in services if s.get("type") in ("LoadBalancer", "NodePort")]
    assert outside, "some Service must reach the gateway from outside"
    assert {s.get("externalTrafficPolicy") for s in outside} == {"Local"}
    # ... and the policy rule that `inferstack check` runs agrees.
    pairs = [(r.type, r.inputs) for r in rec.resources if r.custom]
    assert load_rules().client_address_rules_keep_client_ip(pairs) == []


def test_nodeport_pins_the_given_node_ports() -> None:
    rec, out = deploy(
        kind=LoadBalancerKind.NODEPORT,
        metallb_pool=None,
        http_node_port=31080,
        https_node_port=31443,
        allowed_source_cidrs=["10.0.0.0/8"],
    )
    service = envoy_service(rec)
    assert service["type"] == "NodePort"
    ports = {p["port"]: p["nodePort"] for p in service["patch"]["value"]["spec"]["ports"]}
    assert ports == {80: 31080, 443: 31443}
    # The CRD allows source ranges only on LoadBalancer Services; the policy still restricts.
    assert "loadBalancerSourceRanges" not in service
    assert "authorization" in rec.one(T_SECURITY).inputs["spec"]
    redirect = route(rec, "redirect-route")["rules"][0]["filters"][0]["requestRedirect"]
    assert redirect["port"] == 31443
    assert out["url"] == "https://llm.example.com:31443"


#: The annotation prefix each MetalLB release's controller reads (metallb/metallb controller/service.go
#: at the tag: AnnotationPrefix, and DeprecatedAnnotationPrefix from v0.14.9 on).
METALLB_PREFIXES_READ = {
    "v0.13.12": {"metallb.universe.tf"},
    "v0.14.8": {"metallb.universe.tf"},
    "v0.14.9": {"metallb.io", "metallb.universe.tf"},
    "v0.16.1": {"metallb.io", "metallb.universe.tf"},
    "a future release without the old prefix": {"metallb.io"},
}


@pytest.mark.parametrize("release", METALLB_PREFIXES_READ)
def test_metallb_gets_its_pool_and_address_on_every_release(release: str) -> None:
    rec, _ = deploy(address="192.0.2.10")
    service = envoy_service(rec)
    assert service["type"] == "LoadBalancer"
    read = {
        key.split("/")[1]: value
        for key, value in service["annotations"].items()
        if key.split("/")[0] in METALLB_PREFIXES_READ[release]
    }
    assert read == {"address-pool": "public-pool", "loadBalancerIPs": "192.0.2.10"}, release
    # Where MetalLB reads two prefixes, the new one wins (valueForAnnotation): they must agree.
    by_suffix: dict[str, set[str]] = {}
    for key, value in service["annotations"].items():
        by_suffix.setdefault(key.split("/")[1], set()).add(value)
    assert all(len(values) == 1 for values in by_suffix.values())
    no_address, _ = deploy()
    assert not any(k.endswith("/loadBalancerIPs") for k in envoy_service(no_address)["annotations"])


def test_metallb_service_has_no_other_annotations() -> None:
    rec, _ = default_run()
    assert set(envoy_service(rec)["annotations"]) == {
        "metallb.io/address-pool",
        "metallb.universe.tf/address-pool",
    }
    existing, _ = deploy(kind=LoadBalancerKind.EXISTING, metallb_pool=None, address="192.0.2.11")
    assert envoy_service(existing)["loadBalancerIP"] == "192.0.2.11"
    assert "annotations" not in envoy_service(existing)


def test_envoy_pods_meet_restricted_pod_security() -> None:
    rec, _ = default_run()
    deployment = rec.one(T_ENVOY_PROXY).inputs["spec"]["provider"]["kubernetes"]["envoyDeployment"]
    pod = deployment["pod"]["securityContext"]
    container = deployment["container"]["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["runAsNonRoot"] is True and container["runAsUser"] > 0


# --- rate limit -----------------------------------------------------------------------------------


def test_rate_limit_is_one_bucket_per_client_on_the_authenticated_id() -> None:
    rec, _ = deploy(rate_limit_requests_per_minute=120)
    policy = rec.one(T_TRAFFIC).inputs["spec"]
    assert policy["targetRefs"] == rec.one(T_SECURITY).inputs["spec"]["targetRefs"]
    rules = policy["rateLimit"]["local"]["rules"]
    selected = {}
    for rule in rules:
        [selector] = rule["clientSelectors"]
        [header] = selector["headers"]
        # The header the API-key filter writes, so a client cannot pick someone else's bucket.
        assert header["name"] == rec.one(T_SECURITY).inputs["spec"]["apiKeyAuth"]["forwardClientIDHeader"]
        assert header["type"] == "Exact"
        selected[header["value"]] = rule["limit"]
    assert selected == {c: {"requests": 120, "unit": "Minute"} for c in ("portal", "batch")}


def test_no_rate_limit_policy_when_disabled() -> None:
    rec, _ = deploy(rate_limit_requests_per_minute=None)
    assert rec.of_type(T_TRAFFIC) == []


# --- composition ----------------------------------------------------------------------------------


def test_two_load_balancers_do_not_collide() -> None:
    def program() -> None:
        LoadBalancer("llm-a", make_args())
        LoadBalancer("llm-b", make_args(install_envoy_gateway=False, hostname="b.example.com"))

    rec = run_program(program)
    pulumi_names = [(r.type, r.name) for r in rec.resources]
    assert len(pulumi_names) == len(set(pulumi_names))
    objects = [
        (r.kind, r.inputs["metadata"].get("namespace"), r.inputs["metadata"]["name"])
        for r in rec.kubernetes_objects()
    ]
    assert len(objects) == len(set(objects)), objects
    assert {r.inputs["metadata"]["name"] for r in rec.of_type(T_GATEWAY)} == {"llm-a", "llm-b"}
    # One Envoy Gateway: the controller's release and its CRD chart (applied by Pulumi, not a release), once.
    assert [r.inputs["chart"].rsplit("/", 1)[-1] for r in rec.of_type(T_RELEASE)] == ["gateway-helm"]
    crd_charts = [r.inputs["chart"].rsplit("/", 1)[-1] for r in rec.of_type("kubernetes:helm.sh/v4:Chart")]
    assert crd_charts == ["gateway-crds-helm"]


def test_custom_resources_wait_for_the_chart_that_defines_them() -> None:
    rec, _ = default_run()
    release = rec.one(T_RELEASE, "-envoy-gateway")
    for resource in rec.kubernetes_objects():
        if resource.type.startswith("kubernetes:gateway."):
            assert release.urn in resource.dependencies, resource.name
    assert all(r.parent == rec.one("inferstack:load_balancer:LoadBalancer").urn for r in rec.resources[1:])


def test_without_the_chart_nothing_depends_on_it() -> None:
    rec, _ = deploy(install_envoy_gateway=False)
    assert rec.of_type(T_RELEASE) == []
    assert rec.one(T_GATEWAY)


# --- schemas ---------------------------------------------------------------------------------------


@needs_crds
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"allowed_source_cidrs": ["10.0.0.0/8"], "address": "192.0.2.10"},
        {"kind": LoadBalancerKind.NODEPORT, "metallb_pool": None, "allowed_source_cidrs": ["10.0.0.0/8"]},
        {
            "kind": LoadBalancerKind.EXISTING,
            "metallb_pool": None,
            "existing_api_key_secret": "k",
            "envoy_replicas": 1,
        },
    ],
    ids=["metallb-open", "metallb-restricted", "nodeport-restricted", "existing-lb-existing-keys"],
)
def test_every_custom_resource_validates_against_its_crd(overrides: dict[str, Any]) -> None:
    rec, _ = deploy(**overrides)
    custom = [r for r in rec.kubernetes_objects() if "spec" in r.inputs and r.kind not in {"Secret"}]
    assert {r.kind for r in custom} >= {
        "EnvoyProxy",
        "GatewayClass",
        "Gateway",
        "HTTPRoute",
        "SecurityPolicy",
    }
    for resource in custom:
        assert crd_errors(manifest_of(resource)) == [], resource.name


@needs_crds
def test_the_strict_crd_check_catches_a_misspelt_field() -> None:
    rec, _ = default_run()
    policy = manifest_of(rec.one(T_SECURITY))
    policy["spec"]["apiKeyAuth"]["extractFrom"] = [{"header": ["Authorization"]}]
    assert any("header" in e for e in crd_errors(policy))


@needs_charts
def test_helm_values_only_use_keys_the_chart_defines() -> None:
    rec, _ = deploy(envoy_gateway_values={"deployment": {"replicas": 2}})
    release = rec.one(T_RELEASE, "-envoy-gateway").inputs
    assert release["namespace"] == ENVOY_PROXY_NAMESPACE
    assert release["version"] == "v1.8.3"
    values = release["values"]
    assert values["deployment"]["replicas"] == 2  # the escape hatch merges over ours
    assert values["crds"]["enabled"] is False
    assert chart_value_errors(ENVOY_GATEWAY.values_dir, values) == []
    errors = chart_value_errors(ENVOY_GATEWAY.values_dir, {"config": {"envoyGatway": {}}})
    assert error_paths(errors) == ["config.envoyGatway"]


def test_args_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_args().hostname = "x"  # type: ignore[misc]


def test_only_the_openai_api_is_routed_to_the_engine() -> None:
    rec, _ = deploy()
    api = rec.one(T_ROUTE, "-api-route").inputs["spec"]
    matches = [m for rule in api["rules"] for m in rule["matches"]]
    assert matches == [{"path": {"type": "PathPrefix", "value": "/v1"}}]
