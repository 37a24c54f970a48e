"""The validation engine of `inferstack check` (inferstack/validation/).

CRD and chart data are upstream files, not part of the repository: wherever INFERSTACK_CRD_DIR /
INFERSTACK_CHART_DIR point, else what `make fetch-schemas` wrote (tests/upstream_data.py); tests that
need them skip, naming `make fetch-schemas`, when they are absent. checkov runs
at most once here (a module fixture); the rest of the checkov wrapper is tested with a fake executable.
"""

from __future__ import annotations

import copy
import json
import re
import stat
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferstack.validation.common import CheckOutcome, Finding, format_path
from inferstack.validation.core import UnsupportedKubernetesVersion
from inferstack.validation.crds import to_json_schema
from inferstack.validation.engine import (
    CHECKOV_SKIPS,
    HelmValues,
    ValidationReport,
    find_checkov,
    run_checkov,
    schema_version,
    validate_all,
    validate_core,
    validate_custom_resources,
    validate_helm_values,
)
from inferstack.validation.helm import documented_keys, merge_values
from tests.upstream_data import data_dir, missing_reason

REPO = Path(__file__).resolve().parents[1]


def _data_dir(kind: str) -> Path:
    reason = missing_reason(kind)
    if reason:
        pytest.skip(reason)
    return data_dir(kind)


@pytest.fixture(scope="module")
def crd_dir() -> Path:
    return _data_dir("crds")


@pytest.fixture(scope="module")
def chart_dir() -> Path:
    return _data_dir("charts")


# A model server hardened the way the ModelServer component is meant to render it: Pod Security
# "restricted", requests == limits, three probes, no service-account token, images by digest,
# read-only root filesystem with writable emptyDirs, a default-deny NetworkPolicy plus an allow.
HARDENED = """
apiVersion: v1
kind: Namespace
metadata: {name: inferstack, labels: {pod-security.kubernetes.io/enforce: restricted}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: llm-server, namespace: inferstack}
automountServiceAccountToken: false
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: llm-server, namespace: inferstack, labels: {app.kubernetes.io/name: llm-server}}
spec:
  replicas: 2
  selector: {matchLabels: {app.kubernetes.io/name: llm-server}}
  template:
    metadata: {labels: {app.kubernetes.io/name: llm-server}}
    spec:
      serviceAccountName: llm-server
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: 120
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile: {type: RuntimeDefault}
      initContainers:
      - name: fetch-model
        image: ghcr.io/example/inferstack-model@sha256:0000000000000000000000000000000000000000000000000000000000000000
        args: [fetch, --into, /models]
        securityContext: &restricted
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          runAsNonRoot: true
          runAsUser: 10001
          capabilities: {drop: [ALL]}
          seccompProfile: {type: RuntimeDefault}
        resources:
          requests: {cpu: "1", memory: 2Gi}
          limits: {cpu: "1", memory: 2Gi}
        volumeMounts: [{name: model-cache, mountPath: /models}, {name: tmp, mountPath: /tmp}]
      containers:
      - name: server
        image: vllm/vllm-openai@sha256:1111111111111111111111111111111111111111111111111111111111111111
        args: [--model, /models/model, --port, "8000"]
        env:
        - {name: HOME, value: /tmp/home}
        - {name: HF_TOKEN_PATH, value: /secrets/hf/token}
        ports: [{name: http, containerPort: 8000}]
        securityContext: *restricted
        resources:
          requests: {cpu: "8", memory: 32Gi, nvidia.com/gpu: "1"}
          limits: {cpu: "8", memory: 32Gi, nvidia.com/gpu: "1"}
        startupProbe: {httpGet: {path: /health, port: http}, periodSeconds: 10, failureThreshold: 60}
        readinessProbe: {httpGet: {path: /health, port: http}, periodSeconds: 5}
        livenessProbe: {httpGet: {path: /health, port: http}, periodSeconds: 10, failureThreshold: 6}
        lifecycle: {preStop: {sleep: {seconds: 20}}}
        volumeMounts:
        - {name: model-cache, mountPath: /models, readOnly: true}
        - {name: dshm, mountPath: /dev/shm}
        - {name: tmp, mountPath: /tmp}
        - {name: hf-token, mountPath: /secrets/hf, readOnly: true}
      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
      volumes:
      - {name: model-cache, emptyDir: {}}
      - {name: dshm, emptyDir: {medium: Memory, sizeLimit: 8Gi}}
      - {name: tmp, emptyDir: {}}
      - {name: hf-token, secret: {secretName: hf-token}}
---
apiVersion: v1
kind: Service
metadata: {name: llm-server, namespace: inferstack}
spec:
  selector: {app.kubernetes.io/name: llm-server}
  ports: [{name: http, port: 8000, targetPort: http}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: llm-server, namespace: inferstack}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app.kubernetes.io/name: llm-server}}
---
apiVersion: v1
kind: Secret
metadata: {name: hf-token, namespace: inferstack}
type: Opaque
stringData: {token: "[secret]"}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: inferstack}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: llm-server-from-gateway, namespace: inferstack}
spec:
  podSelector: {matchLabels: {app.kubernetes.io/name: llm-server}}
  policyTypes: [Ingress]
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: envoy-gateway-system}}}]
    ports: [{port: 8000, protocol: TCP}]
"""

# Privileged, image by tag, nothing else set; one skip annotation with a reason, one without.
INSECURE = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: insecure
  namespace: scratch
  annotations:
    checkov.io/skip1: CKV_K8S_14=scratch image, rebuilt on every run
    checkov.io/skip2: CKV_K8S_43
spec:
  selector: {matchLabels: {app: insecure}}
  template:
    metadata: {labels: {app: insecure}}
    spec:
      containers:
      - name: c
        image: nginx:latest
        securityContext: {privileged: true}
"""

CUSTOM_RESOURCES = """
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: llm-server, namespace: inferstack}
spec:
  scaleTargetRef: {name: llm-server}
  minReplicaCount: 0
  maxReplicaCount: 4
  cooldownPeriod: 300
  triggers:
  - type: prometheus
    metadata: {serverAddress: "http://prometheus:9090", query: "sum(vllm:num_requests_waiting)", threshold: "5"}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: llm-tls, namespace: inferstack}
spec:
  secretName: llm-tls
  dnsNames: [llm.example.com]
  issuerRef: {name: letsencrypt, kind: ClusterIssuer, group: cert-manager.io}
  privateKey: {algorithm: ECDSA, size: 256, rotationPolicy: Always}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: letsencrypt}
spec:
  acme:
    email: ops@example.com
    server: https://acme-v02.api.letsencrypt.org/directory
    privateKeySecretRef: {name: letsencrypt-account}
    solvers:
    - http01:
        gatewayHTTPRoute:
          parentRefs: [{name: llm-gateway, namespace: inferstack, kind: Gateway}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: llm-gateway, namespace: inferstack}
spec:
  gatewayClassName: envoy
  listeners:
  - {name: http, protocol: HTTP, port: 80}
  - name: https
    protocol: HTTPS
    port: 443
    hostname: llm.example.com
    tls: {mode: Terminate, certificateRefs: [{kind: Secret, name: llm-tls}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: llm, namespace: inferstack}
spec:
  parentRefs: [{name: llm-gateway, sectionName: https}]
  hostnames: [llm.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    backendRefs: [{name: llm-server, port: 8000, weight: 100}]
    timeouts: {request: 600s}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {name: api-keys, namespace: inferstack}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: llm}]
  apiKeyAuth:
    credentialRefs: [{name: api-keys}]
    extractFrom: [{headers: [Authorization]}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: rate-limit, namespace: inferstack}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: llm}]
  rateLimit:
    type: Local
    local:
      rules:
      - clientSelectors: [{headers: [{name: Authorization, type: Distinct}]}]
        limit: {requests: 60, unit: Minute}
---
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata: {name: llm-server, namespace: inferstack}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: llm-server}}
  podMetricsEndpoints: [{port: http, path: /metrics, interval: 15s}]
"""


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_name(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(m for m in manifests if m["kind"] == kind)


def messages(findings: list[Finding]) -> list[str]:
    return [f.message for f in findings]


# --- kubernetes-validate: built-in kinds ---------------------------------------------------------------


def test_hardened_model_server_passes_core_validation() -> None:
    manifests = docs(HARDENED)
    outcome = validate_core(manifests, "1.34")
    assert outcome.findings == []
    assert outcome.validated == len(manifests)


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][0].update(gpus=1),
            "spec.template.spec.containers[0].gpus: unknown field",
        ),
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(containerPort="8000"),
            "spec.template.spec.containers[0].ports[0].containerPort: expected integer, got string '8000'",
        ),
        (
            lambda d: d["spec"].update(replicas="two"),
            "spec.replicas: expected integer, got string 'two'",
        ),
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].update(
                {"nvidia.com/gpu": [1]}
            ),
            'spec.template.spec.containers[0].resources.limits["nvidia.com/gpu"]: expected number or string',
        ),
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
            "spec.template.spec.containers[0]: 'name' is a required property",
        ),
    ],
    ids=["unknown-field", "port-as-string", "replicas-as-string", "quantity-as-list", "missing-name"],
)
def test_broken_deployment_fails_naming_the_field(break_it: Any, expected: str) -> None:
    manifests = docs(HARDENED)
    deployment = by_name(manifests, "Deployment")
    break_it(deployment)
    findings = validate_core(manifests, "1.34").findings
    assert [f.resource for f in findings] == ["Deployment/inferstack/llm-server"]
    assert findings[0].check == "kubernetes-validate"
    assert findings[0].message.startswith(expected)


def test_every_error_of_an_object_is_listed() -> None:
    manifests = docs(HARDENED)
    container = by_name(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    container["gpus"] = 1
    container["ports"][0]["containerPort"] = "8000"
    assert len(validate_core(manifests, "1.34").findings) == 2


def test_fields_are_checked_at_the_stacks_kubernetes_version() -> None:
    # preStop.sleep arrived in Kubernetes 1.29: a 1.28 cluster would reject the hardened Deployment.
    manifests = docs(HARDENED)
    old = validate_core(manifests, "1.28").findings
    assert messages(old) == ["spec.template.spec.containers[0].lifecycle.preStop.sleep: unknown field"]
    assert validate_core(manifests, "1.29").findings == []


def test_an_api_version_kubernetes_no_longer_serves_is_an_error() -> None:
    hpa = {
        "apiVersion": "autoscaling/v2beta2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "llm", "namespace": "inferstack"},
        "spec": {},
    }
    findings = validate_core([hpa], "1.34").findings
    assert len(findings) == 1
    assert (
        "autoscaling/v2beta2 HorizontalPodAutoscaler does not exist in Kubernetes 1.34" in findings[0].message
    )
    assert "autoscaling/v2" in findings[0].message


def test_custom_resources_are_left_to_the_crd_check() -> None:
    outcome = validate_core(docs(CUSTOM_RESOURCES), "1.34")
    assert outcome == CheckOutcome([], [], 0)


@pytest.mark.parametrize(
    ("asked", "schemas", "noted"),
    [
        ("1.34", "1.34.0", False),
        ("v1.30.2", "1.30.0", False),
        ("1.25", "1.25.0", False),
        ("1.40", "1.37.0", True),
    ],
)
def test_kubernetes_version_maps_to_a_bundled_schema_set(asked: str, schemas: str, noted: bool) -> None:
    version, note = schema_version(asked)
    assert version == schemas
    assert (note is not None) == noted


@pytest.mark.parametrize("asked", ["1.24", "one.thirty", "1"])
def test_unsupported_kubernetes_versions_are_refused(asked: str) -> None:
    with pytest.raises(UnsupportedKubernetesVersion):
        schema_version(asked)
    findings = validate_core(docs(HARDENED), asked).findings
    assert len(findings) == 1 and findings[0].check == "kubernetes-validate"


def test_format_path_quotes_keys_that_are_not_identifiers() -> None:
    assert format_path(["metadata", "annotations", "prometheus.io/scrape"]) == (
        'metadata.annotations["prometheus.io/scrape"]'
    )
    assert format_path(["spec", "containers", 0, "name"]) == "spec.containers[0].name"


# --- crd-schema: custom resources ------------------------------------------------------------------------


def test_valid_custom_resources_pass(crd_dir: Path) -> None:
    manifests = docs(CUSTOM_RESOURCES)
    outcome = validate_custom_resources(manifests, crd_dir)
    assert outcome.findings == []
    assert outcome.validated == len(manifests)
    # The CRDs' CEL rules ran, and a note counts them per kind; none was left unevaluated.
    (cel_note,) = [note for note in outcome.notes if note.startswith("CEL rules (x-kubernetes-validations)")]
    assert re.search(r"HTTPRoute [1-9]\d*/89 rules ran \([1-9]\d* evaluations\), 0 not evaluated", cel_note)
    assert "not evaluated on" not in " ".join(outcome.notes)


def test_a_custom_resource_only_a_cel_rule_rejects_is_a_finding(crd_dir: Path) -> None:
    # The schema leaves backendRefs[].port optional; the HTTPRoute CRD's rule
    # `(size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true` requires it for a Service.
    manifests = _broken("HTTPRoute", lambda o: o["spec"]["rules"][0]["backendRefs"][0].pop("port"))
    findings = validate_custom_resources(manifests, crd_dir).findings
    assert len(findings) == 1, findings
    assert findings[0].check == "crd-schema"
    assert findings[0].resource.startswith("HTTPRoute/inferstack/")
    assert findings[0].message.startswith(
        "spec.rules[0].backendRefs[0]: Must have port for Service reference"
    )
    assert "has(self.port)" in findings[0].message


def _broken(kind: str, change: Any) -> list[dict[str, Any]]:
    manifests = docs(CUSTOM_RESOURCES)
    change(by_name(manifests, kind))
    return manifests


@pytest.mark.parametrize(
    ("kind", "change", "expected"),
    [
        (
            "ScaledObject",
            lambda o: o["spec"].update(minReplicaCount="zero"),
            "spec.minReplicaCount: expected integer",
        ),
        ("ScaledObject", lambda o: o["spec"].update(cooldown=300), "spec.cooldown: unknown field"),
        (
            "Certificate",
            lambda o: o["spec"].update(dnsNames="llm.example.com"),
            "spec.dnsNames: expected array",
        ),
        (
            "Certificate",
            lambda o: o["spec"]["issuerRef"].pop("name"),
            "spec.issuerRef: 'name' is a required property",
        ),
        (
            "HTTPRoute",
            lambda o: o["spec"]["rules"][0]["matches"][0]["path"].update(type="Prefix"),
            "spec.rules[0].matches[0].path.type: 'Prefix' is not one of",
        ),
        (
            "HTTPRoute",
            lambda o: o["spec"]["rules"][0]["backendRefs"][0].update(port="8000"),
            "spec.rules[0].backendRefs[0].port: expected integer, got string '8000'",
        ),
        (
            "PodMonitor",
            lambda o: o["spec"]["podMetricsEndpoints"][0].update(targetPort=[8000]),
            "spec.podMetricsEndpoints[0].targetPort: expected integer or string",
        ),
    ],
    ids=[
        "scaledobject-type",
        "scaledobject-unknown",
        "certificate-type",
        "certificate-required",
        "httproute-enum",
        "httproute-type",
        "int-or-string",
    ],
)
def test_broken_custom_resource_fails_with_its_json_path(
    crd_dir: Path, kind: str, change: Any, expected: str
) -> None:
    findings = validate_custom_resources(_broken(kind, change), crd_dir).findings
    # A CEL rule may refuse the same value too (HTTPRoute's path type rule does): that finding comes after.
    findings = [f for f in findings if "(CEL rule: " not in f.message]
    assert len(findings) == 1, findings
    assert findings[0].check == "crd-schema"
    assert findings[0].resource.startswith(f"{kind}/inferstack/")
    assert findings[0].message.startswith(expected)


def test_int_or_string_accepts_both(crd_dir: Path) -> None:
    for port in (8000, "http"):
        manifests = _broken(
            "PodMonitor", lambda o, p=port: o["spec"]["podMetricsEndpoints"][0].update(targetPort=p)
        )
        assert validate_custom_resources(manifests, crd_dir).findings == []


def test_preserve_unknown_fields_allows_free_content(crd_dir: Path) -> None:
    webhook = {"groupName": "acme.example.com", "solverName": "dns", "config": {"anything": {"goes": [1, 2]}}}
    manifests = _broken(
        "ClusterIssuer", lambda o: o["spec"]["acme"]["solvers"].append({"dns01": {"webhook": webhook}})
    )
    assert validate_custom_resources(manifests, crd_dir).findings == []


def test_a_version_the_crd_does_not_have_is_an_error(crd_dir: Path) -> None:
    manifests = _broken("Gateway", lambda o: o.update(apiVersion="gateway.networking.k8s.io/v1alpha2"))
    findings = validate_custom_resources(manifests, crd_dir).findings
    assert messages(findings) == [
        "apiVersion: gateway.networking.k8s.io/v1alpha2 is not a version of Gateway; "
        "the CRD (gateway.networking.k8s.io_gateways.yaml) has v1, v1beta1"
    ]


def test_a_version_the_crd_no_longer_serves_is_an_error(crd_dir: Path) -> None:
    policy = {
        "apiVersion": "gateway.networking.k8s.io/v1alpha3",
        "kind": "BackendTLSPolicy",
        "metadata": {"name": "tls", "namespace": "inferstack"},
        "spec": {},
    }
    findings = validate_custom_resources([policy], crd_dir).findings
    assert len(findings) == 1 and "no longer served" in findings[0].message


def test_a_kind_with_no_crd_is_a_note(crd_dir: Path) -> None:
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "pool", "namespace": "metallb-system"},
        "spec": {"addresses": ["10.0.0.100-10.0.0.110"]},
    }
    outcome = validate_custom_resources([pool], crd_dir)
    assert outcome.findings == []
    assert outcome.validated == 0
    assert len(outcome.notes) == 1
    assert (
        "IPAddressPool.metallb.io" in outcome.notes[0]
        and "IPAddressPool/metallb-system/pool" in outcome.notes[0]
    )


def test_no_crd_dir_is_a_note() -> None:
    outcome = validate_custom_resources(docs(CUSTOM_RESOURCES), None)
    assert outcome.findings == [] and outcome.validated == 0
    (note,) = outcome.notes
    assert note.startswith("8 custom resources were not validated: no CRD folder given")
    assert "`make fetch-schemas`" in note and "--crd-dir" in note and "INFERSTACK_CRD_DIR" in note


def test_structural_schema_becomes_strict_json_schema() -> None:
    crd_schema = {
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "maybe": {"type": "string", "nullable": True},
            "rules": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
        },
        "x-kubernetes-validations": [{"rule": "self.port != 0"}],
    }
    assert to_json_schema(crd_schema) == {
        "type": "object",
        "properties": {
            "port": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "free": {"type": "object"},
            "maybe": {"type": ["string", "null"]},
            "rules": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}},
                    "additionalProperties": False,
                },
            },
        },
        "additionalProperties": False,
    }


# --- helm-values -------------------------------------------------------------------------------------------


def test_known_helm_values_pass(chart_dir: Path) -> None:
    releases = [
        HelmValues(
            "cert-manager",
            "cert-manager",
            {
                "crds": {"enabled": True},
                "replicaCount": 2,
                "podAnnotations": {"example.com/team": "ml"},  # commented out in values.yaml, in the schema
                "extraArgs": ["--enable-gateway-api"],
                "securityContext": {"runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},  # free-form
                "webhook": {"resources": {"requests": {"cpu": "10m"}}},
            },
        ),
        HelmValues("keda", "keda", {"podAnnotations": {"keda": {"example.com/team": "ml"}}}),
        HelmValues(
            "device-plugin",
            "nvidia-device-plugin",
            {"nodeSelector": {"nvidia.com/gpu.present": "true"}, "tolerations": [{"operator": "Exists"}]},
        ),
    ]
    outcome = validate_helm_values(releases, chart_dir)
    assert outcome.findings == []
    assert outcome.validated == 3


def test_unknown_helm_key_fails_naming_the_key_path(chart_dir: Path) -> None:
    # keda has no values schema: only the default-values check can catch a misspelt key.
    releases = [
        HelmValues("keda", "keda", {"operator": {"replicaCount": 2, "replicaCont": 2}, "prometheus": {}})
    ]
    findings = validate_helm_values(releases, chart_dir).findings
    assert [(f.resource, f.message.split(":")[0]) for f in findings] == [("keda", "operator.replicaCont")]
    assert "Helm would ignore it" in findings[0].message


def test_envoy_gateway_config_is_read_against_the_envoy_gateway_spec(chart_dir: Path) -> None:
    # gateway-helm writes config.envoyGateway whole as the EnvoyGateway configuration: fields its
    # values.yaml does not list (extensionManager, rateLimit) are real, a misspelt one is still caught.
    values = {
        "config": {
            "envoyGateway": {
                "extensionManager": {"service": {"fqdn": {"hostname": "x.y.svc", "port": 1063}}},
                "rateLimit": {"backend": {"type": "Redis", "redis": {"url": "r.ns.svc:6379"}}},
                "ratelimit": {},
            }
        }
    }
    findings = validate_helm_values([HelmValues("eg", "envoy-gateway", values)], chart_dir).findings
    assert [f.message.split(":")[0] for f in findings] == ["config.envoyGateway.ratelimit"]
    assert "rateLimit" in findings[0].message  # the fields it takes are named


def test_a_map_set_as_a_scalar_fails(chart_dir: Path) -> None:
    findings = validate_helm_values([HelmValues("keda", "keda", {"operator": True})], chart_dir).findings
    assert messages(findings) == ["operator: is a map in the chart's values.yaml, not a bool (chart keda)"]


@pytest.mark.parametrize(
    ("chart", "values", "expected"),
    [
        ("cert-manager", {"replicaCount": "two"}, "replicaCount: expected number, got string 'two'"),
        ("cert-manager", {"installCRD": True}, "installCRD: unknown field"),
        ("metallb", {"controller": {"logLevel": "verbose"}}, "controller.logLevel: 'verbose' is not one of"),
    ],
)
def test_values_schema_violation_fails(
    chart_dir: Path, chart: str, values: dict[str, Any], expected: str
) -> None:
    findings = validate_helm_values([HelmValues(chart, chart, values)], chart_dir).findings
    assert len(findings) == 1, findings  # the schema's finding, not a second one for the same key
    assert findings[0].message.startswith(expected)
    assert "values.schema.json" in findings[0].message


def test_missing_chart_data_is_a_note(chart_dir: Path) -> None:
    outcome = validate_helm_values([HelmValues("mine", "no-such-chart", {"a": 1})], chart_dir)
    assert outcome.findings == [] and outcome.validated == 0
    assert len(outcome.notes) == 1 and "release mine" in outcome.notes[0]
    assert (
        validate_helm_values([HelmValues("mine", "keda", {})], None)
        .notes[0]
        .startswith("Helm values were not checked")
    )


def test_merge_values_is_helms_coalescing() -> None:
    defaults = {"a": {"b": 1, "c": 2}, "d": [1], "e": 5}
    assert merge_values(defaults, {"a": {"b": 9}, "d": [2], "e": None}) == {"a": {"b": 9, "c": 2}, "d": [2]}


def test_commented_out_keys_are_documented_at_their_indentation() -> None:
    text = textwrap.dedent(
        """\
        # podAnnotations: {}
        webhook:
          replicaCount: 1
          # podLabels: {}
        """
    )
    assert documented_keys(text) == {("podAnnotations",), ("webhook", "podLabels")}


# --- checkov -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkov_outcome() -> CheckOutcome:
    """The one real checkov run of this file: the hardened model server and an insecure Deployment."""
    if find_checkov() is None:
        pytest.skip("checkov not found (make tools installs it in .tools/checkov; or set INFERSTACK_CHECKOV)")
    return run_checkov(docs(HARDENED) + docs(INSECURE), CHECKOV_SKIPS)


def test_checkov_finds_a_privileged_container(checkov_outcome: CheckOutcome) -> None:
    insecure = {f.rule for f in checkov_outcome.findings if f.resource == "Deployment/scratch/insecure"}
    assert {"CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_22"} <= insecure  # privileged, escalation, writable root


def test_checkov_skip_annotations_need_a_reason(checkov_outcome: CheckOutcome) -> None:
    insecure = [f for f in checkov_outcome.findings if f.resource == "Deployment/scratch/insecure"]
    assert "CKV_K8S_14" not in {f.rule for f in insecure}
    assert (
        "checkov CKV_K8S_14 skipped on Deployment/scratch/insecure: scratch image, rebuilt on every run"
        in (checkov_outcome.notes)
    )
    unexplained = [f for f in insecure if f.rule == "CKV_K8S_43"]
    assert len(unexplained) == 1 and "without a reason" in unexplained[0].message


def test_hardened_model_server_passes_checkov(checkov_outcome: CheckOutcome) -> None:
    assert checkov_outcome.validated > len(docs(HARDENED))  # it scanned the objects, not nothing
    others = [f for f in checkov_outcome.findings if not f.resource.startswith("Deployment/scratch/insecure")]
    assert others == []


def _fake_checkov(tmp_path: Path, stdout: str) -> str:
    """An executable that records its arguments and prints `stdout`, like checkov -o json."""
    script = tmp_path / "checkov"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {tmp_path}/args\n'
        f'printf "%s\\n" "$BC_SKIP_MAPPING" > {tmp_path}/env\n'
        f"cat <<'EOF'\n{stdout}\nEOF\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


FAKE_REPORT = {
    "check_type": "kubernetes",
    "results": {
        "failed_checks": [
            {
                "check_id": "CKV_K8S_8",
                "check_name": "Liveness Probe Should be Configured",
                "resource": "Deployment.scratch.insecure",
            },
            {
                "check_id": "CKV2_K8S_6",
                "check_name": "Minimize ... NetworkPolicy",
                "resource": "Pod.scratch.insecure.app-insecure",
            },
        ],
        "skipped_checks": [
            {
                "check_id": "CKV_K8S_14",
                "resource": "Deployment.scratch.insecure",
                "check_result": {"result": "SKIPPED", "suppress_comment": "scratch image"},
            }
        ],
    },
    "summary": {"passed": 3, "failed": 2, "skipped": 1, "parsing_errors": 0, "resource_count": 2},
}


def test_checkov_failures_become_findings_and_skips_reach_checkov(tmp_path: Path) -> None:
    fake = _fake_checkov(tmp_path, json.dumps(FAKE_REPORT))
    outcome = run_checkov(docs(INSECURE), {"CKV_K8S_43": "why", "CKV_K8S_15": "why"}, fake)
    assert outcome.findings == [
        Finding("checkov", "Deployment/scratch/insecure", "Liveness Probe Should be Configured", "CKV_K8S_8"),
        Finding(
            "checkov", "Deployment/scratch/insecure (its pods)", "Minimize ... NetworkPolicy", "CKV2_K8S_6"
        ),
    ]
    assert outcome.validated == 2
    assert outcome.notes == ["checkov CKV_K8S_14 skipped on Deployment/scratch/insecure: scratch image"]
    args = (tmp_path / "args").read_text().split()
    assert args[args.index("--framework") + 1] == "kubernetes"
    assert args[args.index("--skip-check") + 1] == "CKV_K8S_15,CKV_K8S_43"
    assert (tmp_path / "env").read_text().strip() == "TRUE"


def test_checkov_without_a_report_is_a_finding(tmp_path: Path) -> None:
    outcome = run_checkov(docs(INSECURE), {}, _fake_checkov(tmp_path, "Traceback: boom"))
    assert len(outcome.findings) == 1 and "without a JSON report" in outcome.findings[0].message


def test_checkov_missing_is_a_note(tmp_path: Path) -> None:
    outcome = run_checkov(docs(HARDENED), {}, str(tmp_path / "no-checkov"))
    assert outcome.findings == [] and outcome.validated == 0
    assert outcome.notes == [f"checkov was not run: not at {tmp_path / 'no-checkov'}"]


def test_a_skip_without_a_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="every skip says why"):
        run_checkov(docs(HARDENED), {"CKV_K8S_43": " "}, "/nonexistent")


def test_find_checkov_prefers_the_argument_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _fake_checkov(tmp_path, "{}")
    other = tmp_path / "other"
    other.mkdir()
    second = _fake_checkov(other, "{}")
    monkeypatch.setenv("INFERSTACK_CHECKOV", second)
    assert find_checkov(first) == first
    assert find_checkov() == second
    monkeypatch.setenv("INFERSTACK_CHECKOV", str(tmp_path / "missing"))
    assert find_checkov() is None  # an explicit choice that is wrong is not silently replaced


# --- validate_all and the report ---------------------------------------------------------------------------


def test_validate_all_collects_every_check(crd_dir: Path, chart_dir: Path, tmp_path: Path) -> None:
    manifests = docs(HARDENED) + docs(CUSTOM_RESOURCES)
    by_name(manifests, "Deployment")["spec"]["replicas"] = "two"
    by_name(manifests, "ScaledObject")["spec"]["maxReplicaCount"] = "four"
    report = validate_all(
        manifests,
        "1.34",
        crd_dir=crd_dir,
        chart_dir=chart_dir,
        helm_releases=[HelmValues("keda", "keda", {"operatr": {}})],
        checkov_path=_fake_checkov(tmp_path, json.dumps(FAKE_REPORT)),
    )
    assert not report.ok
    assert sorted({f.check for f in report.findings}) == [
        "checkov",
        "crd-schema",
        "helm-values",
        "kubernetes-validate",
    ]
    assert report.counts == {"kubernetes-validate": 8, "crd-schema": 8, "helm-values": 1, "checkov": 2}
    text = report.render()
    assert text.index("kubernetes-validate: 1 problem") < text.index("crd-schema: 1 problem")
    assert "  Deployment/inferstack/llm-server: spec.replicas: expected integer, got string 'two'" in text
    assert "  ScaledObject/inferstack/llm-server: spec.maxReplicaCount: expected integer" in text
    assert "[CKV_K8S_8]" in text
    assert text.splitlines()[-1].startswith("FAILED: 5 problems")


def test_a_clean_plan_is_ok_and_says_what_was_not_validated() -> None:
    report = validate_all(docs(HARDENED) + docs(CUSTOM_RESOURCES), "1.34", checkov=False)
    assert report.ok
    assert report.counts == {"kubernetes-validate": 8, "crd-schema": 0}
    text = report.render()
    assert "Not validated:" in text and "INFERSTACK_CRD_DIR" in text and "checkov was not run" in text
    assert text.splitlines()[-1] == "OK (validated: 8 built-in objects, 0 custom resources)"


def test_policy_findings_can_be_added_to_a_report() -> None:
    report = ValidationReport()
    report.add(
        "policy",
        CheckOutcome([Finding("policy", "Service/x/y", "public without TLS", "no-plain-http")], [], 3),
    )
    assert not report.ok and report.counts == {"policy": 3}
    assert "policy: 1 problem\n  Service/x/y: public without TLS [no-plain-http]" in report.render()


def test_manifests_are_not_modified() -> None:
    manifests = docs(HARDENED) + docs(CUSTOM_RESOURCES)
    before = copy.deepcopy(manifests)
    validate_all(manifests, "1.34", checkov=False)
    assert manifests == before


def test_the_cel_rule_counts_are_reported_as_validated_not_as_a_gap() -> None:
    from inferstack.validation.crds import CEL_SUMMARY

    report = ValidationReport()
    report.add(
        "crd-schema",
        CheckOutcome(
            findings=[],
            notes=[f"{CEL_SUMMARY}: HTTPRoute 41/89 rules ran", "checkov was not run"],
            validated=1,
        ),
    )
    text = report.render()
    gaps, _, validated = text.partition("Validated:")
    assert "checkov was not run" in gaps and CEL_SUMMARY not in gaps
    assert f"{CEL_SUMMARY}: HTTPRoute 41/89 rules ran" in validated
