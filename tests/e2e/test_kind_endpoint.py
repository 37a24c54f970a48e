"""A deployed stack through its gateway, on a real cluster: what `.github/workflows/e2e.yml` runs after
`make up STACK=local` on a kind cluster, and what a user runs against their own `make up`.

Every request goes through Envoy Gateway at the stack's public URL, with the official `openai` client where
the check is about the API: the model list, a chat, a stream (tests/endpoint_checks.py, `exact=False`: a
real model stops when it likes); 401 without a key and with a wrong one; the HTTP listener's redirect to
HTTPS; TLS that verifies against the stack's internal CA and only against it; a scale-out to two model
servers and back (`kubectl scale`: the local stack runs without an autoscaler, `autoscaling.enabled:
false`); and, last because it empties the client's bucket for up to a minute, 429 past the per-client
rate limit.

Environment (all set, or none: then the module skips):
  INFERSTACK_E2E_BASE_URL    the OpenAI base URL, https://<host>:<port>/v1 (stack output `url` + "/v1")
  INFERSTACK_E2E_API_KEY     one client's key (stack output `api_keys`)
  INFERSTACK_E2E_CA_FILE     the internal CA, PEM (scripts/up.py writes build/<stack>-ca.pem)
  INFERSTACK_E2E_MODEL       the served model name (stack output `model`)
  INFERSTACK_E2E_STACK       the stack name; its file stacks/Pulumi.<stack>.yaml gives the hostname, node
                             ports, namespace, rate limit and timeouts the checks expect
  INFERSTACK_E2E_KUBECONFIG  a kubeconfig for the cluster (scripts/up.py: .pulumi-state/<stack>.kubeconfig)
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from components.choices import LoadBalancerKind
from components.load_balancer import REDIRECT_STATUS_CODE
from stacks.config import StackConfig, load_stack_file
from tests import endpoint_checks

ROOT = Path(__file__).resolve().parents[2]

ENV_BASE_URL = "INFERSTACK_E2E_BASE_URL"
ENV_API_KEY = "INFERSTACK_E2E_API_KEY"
ENV_CA_FILE = "INFERSTACK_E2E_CA_FILE"
ENV_MODEL = "INFERSTACK_E2E_MODEL"
ENV_STACK = "INFERSTACK_E2E_STACK"
ENV_KUBECONFIG = "INFERSTACK_E2E_KUBECONFIG"
ENV_VARS = (ENV_BASE_URL, ENV_API_KEY, ENV_CA_FILE, ENV_MODEL, ENV_STACK, ENV_KUBECONFIG)

if not any(name in os.environ for name in ENV_VARS):
    pytest.skip(
        "needs a deployed stack: .github/workflows/e2e.yml runs this after `make up STACK=local` on a kind "
        f"cluster and sets {', '.join(ENV_VARS)} (docs/gitops.md, 'End-to-end on kind')",
        allow_module_level=True,
    )

#: components/model_server.py labels the model server's Deployment with this.
MODEL_SERVER_SELECTOR = "app.kubernetes.io/component=model-server"
#: Seconds one plain request may take through the gateway (a CPU model answering a few tokens).
REQUEST_TIMEOUT_S = 120


@dataclass(frozen=True)
class Deployed:
    """The endpoint under test and the stack it came from."""

    base_url: str  # https://host:port/v1
    api_key: str
    ca_file: Path
    model: str
    stack: str
    cfg: StackConfig
    kubeconfig: Path

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).hostname or ""

    @property
    def port(self) -> int:
        return urllib.parse.urlsplit(self.base_url).port or 443

    def tls_context(self) -> ssl.SSLContext:
        """Trusts the stack's internal CA and nothing else."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self, api_key: str | None = None) -> openai.OpenAI:
        # No retries: a 401 or a 429 must reach the test as it came, not be retried into another answer.
        return openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or self.api_key,
            http_client=openai.DefaultHttpxClient(verify=self.tls_context()),
            max_retries=0,
            timeout=REQUEST_TIMEOUT_S,
        )


@pytest.fixture(scope="module")
def deployed() -> Deployed:
    values = {name: os.environ.get(name, "") for name in ENV_VARS}
    unset = [name for name, value in values.items() if not value]
    if unset:
        # Some set, some not: a broken workflow step, never a reason to skip.
        pytest.fail(
            f"set every one of {', '.join(ENV_VARS)} or none; empty or unset: {', '.join(unset)}",
            pytrace=False,
        )
    ca_file, kubeconfig = Path(values[ENV_CA_FILE]), Path(values[ENV_KUBECONFIG])
    for name, path in ((ENV_CA_FILE, ca_file), (ENV_KUBECONFIG, kubeconfig)):
        if not path.is_file():
            pytest.fail(f"{name}={path}: no such file", pytrace=False)
    stack = values[ENV_STACK]
    return Deployed(
        base_url=values[ENV_BASE_URL].rstrip("/"),
        api_key=values[ENV_API_KEY],
        ca_file=ca_file,
        model=values[ENV_MODEL],
        stack=stack,
        cfg=load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"),
        kubeconfig=kubeconfig,
    )


@pytest.fixture(scope="module")
def client(deployed: Deployed) -> openai.OpenAI:
    return deployed.client()


# --- the API through the gateway --------------------------------------------------------------------------


def test_models_lists_the_served_model(client: openai.OpenAI, deployed: Deployed) -> None:
    endpoint_checks.assert_models_list(client, deployed.model)


def test_chat_completion(client: openai.OpenAI, deployed: Deployed) -> None:
    endpoint_checks.assert_chat_completion(client, deployed.model, max_tokens=16, exact=False)


def test_streaming_chat(client: openai.OpenAI, deployed: Deployed) -> None:
    endpoint_checks.assert_streaming_chat(client, deployed.model, max_tokens=16, exact=False)


def test_unknown_model_is_a_client_error(client: openai.OpenAI) -> None:
    endpoint_checks.assert_unknown_model_rejected(client)


# --- API keys ----------------------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises the 3xx as an HTTPError, Location header included


def http_get(url: str, headers: dict[str, str], context: ssl.SSLContext | None = None) -> tuple[int, Any]:
    """(status, headers) of one GET, redirects not followed. The standard library, not the openai client:
    the client always sends an Authorization header and follows redirects."""
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirects)
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=REQUEST_TIMEOUT_S) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as err:
        return err.code, err.headers


@pytest.mark.parametrize(("key", "expected"), [("none", 401), ("wrong", 401), ("valid", 200)])
def test_the_gateway_admits_only_a_valid_key(deployed: Deployed, key: str, expected: int) -> None:
    sent = {"none": None, "wrong": "not-a-key-of-this-stack", "valid": deployed.api_key}[key]
    headers = {"Authorization": f"Bearer {sent}"} if sent else {}
    status, _ = http_get(f"{deployed.base_url}/models", headers, deployed.tls_context())
    assert status == expected, f"GET /v1/models with {key} key: {status}, expected {expected}"


def test_the_openai_client_reports_a_wrong_key_as_authentication_error(deployed: Deployed) -> None:
    with pytest.raises(openai.AuthenticationError):
        deployed.client(api_key="not-a-key-of-this-stack").models.list()


# --- HTTP and TLS ------------------------------------------------------------------------------------------


def test_http_redirects_to_https(deployed: Deployed) -> None:
    lb = deployed.cfg.gateway.load_balancer
    nodeport = lb.kind == LoadBalancerKind.NODEPORT
    host = deployed.cfg.gateway.hostname
    http_url = f"http://{host}:{lb.http_node_port}/v1/models" if nodeport else f"http://{host}/v1/models"
    # components/load_balancer.py redirect_route_spec: scheme https, the HTTPS node port on a node-port
    # gateway, the path kept.
    expected = f"https://{host}:{lb.https_node_port}/v1/models" if nodeport else f"https://{host}/v1/models"
    status, headers = http_get(http_url, {})
    assert status == REDIRECT_STATUS_CODE, f"{http_url}: {status}, expected {REDIRECT_STATUS_CODE}"
    assert headers.get("Location") == expected


def test_tls_verifies_against_the_internal_ca(deployed: Deployed) -> None:
    with (
        socket.create_connection((deployed.host, deployed.port), timeout=30) as raw,
        deployed.tls_context().wrap_socket(raw, server_hostname=deployed.host) as tls,
    ):
        cert = tls.getpeercert() or {}
    # The handshake already checked the name; say which names the certificate carries if it ever fails.
    alt_names = cert.get("subjectAltName", ())
    names = [pair[1] for pair in alt_names if isinstance(pair, tuple) and pair[0] == "DNS"]
    assert deployed.host in names, f"certificate names {names}, not {deployed.host}"


def test_tls_fails_verification_without_the_internal_ca(deployed: Deployed) -> None:
    # The system's trust store only: the internal CA is in none, so the handshake must fail.
    with (
        socket.create_connection((deployed.host, deployed.port), timeout=30) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname=deployed.host).close()


# --- scale out and back ------------------------------------------------------------------------------------


def kubectl(deployed: Deployed, *args: str, timeout: float = 60) -> str:
    argv = ["kubectl", "--kubeconfig", str(deployed.kubeconfig), "-n", deployed.cfg.cluster.namespace, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr[-2000:]}"
    return done.stdout


def kubectl_json(deployed: Deployed, *args: str) -> Any:
    return json.loads(kubectl(deployed, *args, "-o", "json"))


def model_server(deployed: Deployed) -> tuple[str, dict[str, str]]:
    """(name, pod selector labels) of the stack's one model-server Deployment."""
    items = kubectl_json(deployed, "get", "deployments", "-l", MODEL_SERVER_SELECTOR)["items"]
    names = [d["metadata"]["name"] for d in items]
    assert len(items) == 1, f"model-server Deployments in {deployed.cfg.cluster.namespace}: {names}"
    return items[0]["metadata"]["name"], items[0]["spec"]["selector"]["matchLabels"]


def ready_endpoints(deployed: Deployed, pod_labels: dict[str, str]) -> int:
    """Ready addresses behind the Service(s) that select the model server's pods: what the gateway
    balances over (Envoy Gateway routes to EndpointSlice addresses)."""
    services = [
        s["metadata"]["name"]
        for s in kubectl_json(deployed, "get", "services")["items"]
        if s["spec"].get("selector") and s["spec"]["selector"].items() <= pod_labels.items()
    ]
    assert services, f"no Service selects {pod_labels}"
    ready = 0
    for service in services:
        slices = kubectl_json(
            deployed, "get", "endpointslices", "-l", f"kubernetes.io/service-name={service}"
        )
        for endpoint in (e for s in slices["items"] for e in s.get("endpoints") or []):
            if (endpoint.get("conditions") or {}).get("ready"):
                ready += 1
    return ready


def wait_for(what: str, seen: Callable[[], int], wanted: int, timeout_s: float, poll_s: float = 5) -> None:
    """Poll `seen()` until it returns `wanted`; AssertionError naming `what` and the last value if not."""
    deadline = time.monotonic() + timeout_s
    while (last := seen()) != wanted:
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: {last}, not {wanted}, after {timeout_s:.0f} s")
        time.sleep(poll_s)


def pods(deployed: Deployed, pod_labels: dict[str, str]) -> int:
    """Pods of the model server, terminating ones included."""
    selector = ",".join(f"{k}={v}" for k, v in sorted(pod_labels.items()))
    return len(kubectl_json(deployed, "get", "pods", "-l", selector)["items"])


@pytest.fixture
def scaled_out(deployed: Deployed) -> Iterator[tuple[str, dict[str, str]]]:
    """The model server at 2 replicas for the test; back at 1 afterwards, whatever the test did."""
    name, labels = model_server(deployed)
    kubectl(deployed, "scale", f"deployment/{name}", "--replicas=2")
    try:
        yield name, labels
    finally:
        kubectl(deployed, "scale", f"deployment/{name}", "--replicas=1")


def test_scale_out_to_two_replicas_and_back(
    deployed: Deployed, client: openai.OpenAI, scaled_out: tuple[str, dict[str, str]]
) -> None:
    name, labels = scaled_out
    serving = deployed.cfg.serving
    # The new pod fetches the model into its own cache and loads it: one cold start, bounded by its
    # startupProbe (serving.startup_timeout_seconds), plus scheduling and the fetch init container.
    kubectl(
        deployed,
        "rollout",
        "status",
        f"deployment/{name}",
        f"--timeout={serving.startup_timeout_seconds + 300}s",
        timeout=serving.startup_timeout_seconds + 360,
    )
    wait_for("ready model-server endpoints", lambda: ready_endpoints(deployed, labels), 2, 120)
    for _ in range(6):  # the gateway balances over both; every request must succeed meanwhile
        endpoint_checks.assert_chat_completion(client, deployed.model, max_tokens=4, exact=False)

    kubectl(deployed, "scale", f"deployment/{name}", "--replicas=1")
    # The removed pod drains (preStop + engine drain) within terminationGracePeriodSeconds.
    grace = serving.termination_grace_seconds
    wait_for("model-server pods", lambda: pods(deployed, labels), 1, grace + 120)
    wait_for("ready model-server endpoints", lambda: ready_endpoints(deployed, labels), 1, 60)
    endpoint_checks.assert_models_list(client, deployed.model)
    endpoint_checks.assert_chat_completion(client, deployed.model, max_tokens=4, exact=False)


# --- last: it empties this client's bucket ------------------------------------------------------------------


def test_requests_past_the_per_client_limit_get_429(deployed: Deployed, client: openai.OpenAI) -> None:
    """The BackendTrafficPolicy's local rate limit (components/load_balancer.py rate_limit_spec): per client
    id and per Envoy replica, `gateway.rate_limit.requests_per_minute`. Envoy's local rate limit is a token
    bucket that starts full and refills by the limit once a minute (envoy/type/v3/token_bucket.proto:
    max_tokens, tokens_per_fill, fill_interval), so a burst sees 429 after at most the limit per replica,
    or twice that when a refill falls inside the burst."""
    gateway = deployed.cfg.gateway
    per_minute = gateway.rate_limit.requests_per_minute * gateway.envoy_replicas
    budget = 2 * per_minute + 10
    admitted = 0
    for _ in range(budget):
        try:
            client.models.list()
        except openai.RateLimitError as err:
            assert err.status_code == 429
            break
        admitted += 1
    else:
        raise AssertionError(
            f"{budget} requests of one client, none refused: expected 429 past {per_minute} a minute "
            f"(gateway.rate_limit.requests_per_minute x envoy_replicas)"
        )
    assert admitted >= 1, "the first request was refused: the bucket was empty before the burst"
