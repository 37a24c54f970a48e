"""`make up` / `make destroy` (scripts/up.py): prerequisites before any venv, then each step, with
stand-in commands on PATH that record their argv and answer as the real tools do."""

from __future__ import annotations

import ast
import datetime
import http.server
import importlib.util
import json
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")
IMAGE = "localhost/inferstack-model-cpu:0.1.0"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="stand-ins are POSIX shell and Python")


def load_up() -> ModuleType:
    spec = importlib.util.spec_from_file_location("up_script", ROOT / "scripts" / "up.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["up_script"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


up = load_up()

# One stand-in for every tool: logs {tool, args, env} as a JSON line, then answers from STANDIN_ANSWERS:
# {tool: [[argv prefix, stdout, exit status, {file: text} to write], ...]}, first match wins, else exit 0.
STANDIN = """#!{python} -S
import json, os, sys
tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
keys = (
    "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE_FILE", "KUBECONFIG", "DOCKER_BUILDKIT",
    "BUILDX_NO_DEFAULT_ATTESTATIONS",
)
env = {{k: os.environ.get(k) for k in keys}}
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps({{"tool": tool, "args": args, "env": env}}) + "\\n")
with open(os.environ["STANDIN_ANSWERS"]) as f:
    answers = json.load(f)
for prefix, out, code, *files in answers.get(tool, []):
    if args[: len(prefix)] == prefix:
        for path, text in (files[0] if files else {{}}).items():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)
        sys.stdout.write(out)
        sys.exit(code)
"""


class Bench:
    """A copy of the project, a bin folder of stand-ins, the call log, and the environment to run in."""

    def __init__(self, tmp_path: Path) -> None:
        # What make up reads before the venv: the Makefile, the script, the stack files, the kind config.
        self.repo = tmp_path / "repo"
        self.repo.mkdir()
        shutil.copy2(ROOT / "Makefile", self.repo / "Makefile")
        self.copy("scripts", "stacks", "deploy")
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.log = tmp_path / "calls.jsonl"
        self.log.touch()
        self.answers_file = tmp_path / "answers.json"
        self.answers: dict[str, list[list[Any]]] = {}
        self.home = tmp_path / "home"
        self.home.mkdir()

    def copy(self, *folders: str) -> None:
        for folder in folders:
            shutil.copytree(ROOT / folder, self.repo / folder, ignore=shutil.ignore_patterns("__pycache__"))

    def tool(self, name: str, *answers: list[Any]) -> Path:
        path = self.bin / name
        path.write_text(STANDIN.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        self.answers[name] = [list(a) for a in answers]
        return path

    def system(self, *tools: str) -> None:
        """Real tools the run may use (make, the system python3), and nothing else from the system."""
        for tool in tools:
            found = SYSTEM_PYTHON if tool == "python3" else shutil.which(tool)
            assert found, tool
            (self.bin / tool).symlink_to(found)

    def env(self, **extra: str) -> dict[str, str]:
        self.answers_file.write_text(json.dumps(self.answers))
        return {
            "PATH": str(self.bin),
            "HOME": str(self.home),
            "STANDIN_LOG": str(self.log),
            "STANDIN_ANSWERS": str(self.answers_file),
            **extra,
        }

    def calls(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def commands(self) -> list[str]:
        return [" ".join([c["tool"], *c["args"]]) for c in self.calls()]


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    return Bench(tmp_path)


# --- "Done when": refusals within seconds, before any venv --------------------------------------------


@pytest.mark.skipif(SYSTEM_PYTHON is None or shutil.which("make") is None, reason="needs make and python3")
def test_make_up_without_pulumi_exits_2_naming_it_within_5_s_and_builds_no_venv(bench: Bench) -> None:
    bench.system("make", "python3")
    started = time.monotonic()
    done = subprocess.run(
        ["make", "up", "STACK=local"],
        cwd=bench.repo,
        env=bench.env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert elapsed < 5, elapsed
    assert "`pulumi` is not on PATH" in done.stderr
    assert "get.pulumi.com" in done.stderr and "brew install pulumi/tap/pulumi" in done.stderr
    assert not (bench.repo / ".venv").exists()
    assert not (bench.repo / ".pulumi-state").exists()


@pytest.mark.skipif(SYSTEM_PYTHON is None or shutil.which("make") is None, reason="needs make and python3")
def test_with_a_fake_pulumi_and_no_cluster_tools_it_names_kind_and_docker(bench: Bench) -> None:
    bench.system("make", "python3")
    bench.tool("pulumi")
    bench.tool("kubectl", [["config", "current-context"], "", 1])
    done = subprocess.run(
        ["make", "up", "STACK=local"],
        cwd=bench.repo,
        env=bench.env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "`pulumi`" not in done.stderr
    assert "`docker` is not on PATH" in done.stderr and "`kind` is not on PATH" in done.stderr
    assert "brew install kind" in done.stderr and "kind.sigs.k8s.io/dl/v0.32.0/kind-linux-" in done.stderr
    assert not (bench.repo / ".venv").exists()
    assert all(c["tool"] != "pulumi" for c in bench.calls())


def test_an_unreachable_docker_daemon_is_named_with_the_fix(bench: Bench) -> None:
    bench.tool("pulumi")
    bench.tool("kind")
    bench.tool("kubectl", [["config", "current-context"], "", 1])
    bench.tool(
        "docker", [["info"], "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n", 1]
    )
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    problems = up.prerequisite_problems(up.scanned_facts(bench.repo / "stacks/Pulumi.local.yaml"), sh)
    assert len(problems) == 1 and "Docker daemon is not reachable" in problems[0]
    assert "Cannot connect to the Docker daemon" in problems[0]


def test_an_aws_stack_without_the_aws_cli_stops_before_the_venv(bench: Bench) -> None:
    bench.tool("pulumi")
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    with pytest.raises(up.Stop) as stop:
        up.up("dev-aws", sh)
    assert stop.value.code == 2
    assert "`aws` is not on PATH" in str(stop.value) and "get-token" in str(stop.value)
    assert bench.commands() == []  # neither make nor pulumi ran


def test_an_aws_stack_without_credentials_is_told_to_log_in(bench: Bench) -> None:
    bench.tool("pulumi")
    bench.tool("aws", [["sts", "get-caller-identity"], "", 255])
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    assert up.prerequisite_problems(up.scanned_facts(bench.repo / "stacks/Pulumi.dev-aws.yaml"), sh) == [
        "no usable AWS credentials: log in (aws sso login, or set AWS_PROFILE)"
    ]


def test_a_gcp_stack_needs_gcloud_its_auth_plugin_and_adc(bench: Bench) -> None:
    bench.tool("pulumi")
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    facts = up.scanned_facts(bench.repo / "stacks/Pulumi.dev-gcp.yaml")
    problems = up.prerequisite_problems(facts, sh)
    assert any("`gcloud` is not on PATH" in p for p in problems)
    assert any("gcloud components install gke-gcloud-auth-plugin" in p for p in problems)
    bench.tool("gcloud", [["auth", "application-default"], "", 1])
    bench.tool("gke-gcloud-auth-plugin")
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    assert up.prerequisite_problems(facts, sh) == [
        "no Application Default Credentials: run gcloud auth application-default login"
    ]


def test_an_azure_stack_needs_the_azure_cli_kubelogin_and_a_sign_in(bench: Bench) -> None:
    bench.tool("pulumi")
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    facts = up.scanned_facts(bench.repo / "stacks/Pulumi.dev-azure.yaml")
    assert up.venv_target(facts.platform) == "runtime"  # the cloud SDKs' venv
    problems = up.prerequisite_problems(facts, sh)
    assert any("`az` is not on PATH" in p for p in problems)
    assert any("`kubelogin` is not on PATH" in p and "az aks install-cli" in p for p in problems)
    bench.tool("az", [["account", "show"], "", 1])
    bench.tool("kubelogin")
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    assert up.prerequisite_problems(facts, sh) == [
        "no Azure CLI sign-in: run az login (and az account set --subscription <id>)"
    ]


def test_an_onprem_stack_with_a_registry_image_needs_its_named_context_not_docker(bench: Bench) -> None:
    bench.tool("pulumi")
    bench.tool("kubectl", [["config", "get-contexts", "onprem-gpu"], "", 1])
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    facts = up.scanned_facts(bench.repo / "stacks/Pulumi.onprem.yaml")
    assert not facts.side_loaded
    (problem,) = up.prerequisite_problems(facts, sh)
    assert "kube context 'onprem-gpu'" in problem and "cluster.kube_context" in problem


# --- pure parts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack_file", sorted((ROOT / "stacks").glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_the_pre_venv_scan_agrees_with_yaml_on_every_stack_file(stack_file: Path) -> None:
    config = yaml.safe_load(stack_file.read_text())["config"]
    facts = up.scanned_facts(stack_file)
    assert facts.platform == config.get("inferstack:platform", "onprem")
    assert facts.image == config["inferstack:serving"]["image"]
    assert facts.kube_context == (config.get("inferstack:cluster") or {}).get("kube_context")


def test_the_scan_reads_quoted_values_and_ignores_comments_and_lists() -> None:
    text = textwrap.dedent(
        """\
        # platform: gcp   (a comment)
        config:
          inferstack:platform: "aws"  # trailing comment
          inferstack:serving:
            extra_engine_args:
              - "--x: y"
            image: 'localhost/x:1'
          inferstack:cluster:
            kube_context: kind-a
        """
    )
    assert up.scan_stack_file(text) == {
        "config.inferstack:platform": "aws",
        "config.inferstack:serving.image": "localhost/x:1",
        "config.inferstack:cluster.kube_context": "kind-a",
    }


def test_the_kind_config_publishes_the_local_stacks_node_ports_on_loopback() -> None:
    text = (ROOT / up.KIND_CONFIG).read_text()
    config = yaml.safe_load(text)
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    (node,) = config["nodes"]
    mappings = {m["containerPort"]: m for m in node["extraPortMappings"]}
    assert up.kind_port_mappings(text) == {p: m["hostPort"] for p, m in mappings.items()}
    facts = up.validated_facts("local")
    for port in (facts.https_node_port, facts.http_node_port):
        assert mappings[port]["hostPort"] == port and mappings[port]["listenAddress"] == "127.0.0.1"
    assert "@sha256:" in node["image"]


def test_every_hint_that_creates_a_kind_cluster_gives_the_config_with_the_port_mapping() -> None:
    source = (ROOT / "scripts" / "up.py").read_text()
    hints = [line for line in source.splitlines() if "kind create cluster" in line]
    assert hints
    assert all("--config" in line for line in hints), hints


def test_on_prem_stacks_install_the_core_runtime_and_cloud_stacks_the_full_one() -> None:
    assert up.venv_target("onprem") == "runtime-core"
    assert up.venv_target("aws") == up.venv_target("gcp") == "runtime"


def test_an_existing_kind_cluster_without_the_port_mapping_is_refused_with_the_recreate_command(
    bench: Bench,
) -> None:
    bench.tool("kind", [["get", "clusters"], "inferstack\n", 0])
    bench.tool("docker", [["port", "inferstack-control-plane"], "6443/tcp -> 127.0.0.1:41234\n", 0])
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    facts = up.StackFacts(platform="onprem", image=IMAGE)
    with pytest.raises(up.Stop) as stop:
        up.choose_target(facts, sh)
    assert stop.value.code == 2
    assert "30443, 30080" in str(stop.value)
    assert "kind create cluster --name inferstack --config deploy/kind/cluster.yaml" in str(stop.value)


def test_an_existing_kind_cluster_with_the_mapping_is_used_and_not_created(bench: Bench) -> None:
    bench.tool("kind", [["get", "clusters"], "other\ninferstack\n", 0])
    ports = "30443/tcp -> 127.0.0.1:30443\n30080/tcp -> 127.0.0.1:30080\n"
    bench.tool("docker", [["port", "inferstack-control-plane"], ports, 0])
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    target = up.choose_target(up.StackFacts(platform="onprem", image=IMAGE), sh)
    assert target == up.Target("kind-inferstack", ["kind", "load", "docker-image", "--name", "inferstack"])


def test_a_k3d_current_context_is_used_with_k3d_image_import(bench: Bench) -> None:
    bench.tool("kind", [["get", "clusters"], "", 0])
    bench.tool("kubectl", [["config", "current-context"], "k3d-dev\n", 0])
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    target = up.choose_target(up.StackFacts(platform="onprem", image=IMAGE), sh)
    assert target == up.Target("k3d-dev", ["k3d", "image", "import", "--cluster", "dev"])


def test_no_suitable_context_means_a_new_kind_cluster(bench: Bench) -> None:
    bench.tool("kind", [["get", "clusters"], "No kind clusters found.\n", 0])
    bench.tool("kubectl", [["config", "current-context"], "prod-cluster\n", 0])
    sh = up.Shell(cwd=bench.repo, env=bench.env(KIND_CLUSTER_NAME="mine"))
    target = up.choose_target(up.StackFacts(platform="onprem", image=IMAGE), sh)
    assert target.create_kind == "mine" and target.context == "kind-mine"


def test_a_kind_older_than_the_pinned_node_image_is_refused_before_creating(bench: Bench) -> None:
    bench.tool("kind", [["version"], "kind v0.29.0 go1.24.2 linux/amd64\n", 0])
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    with pytest.raises(up.Stop) as stop:
        up.create_kind_cluster("inferstack", up.StackFacts(platform="onprem", image=IMAGE), sh, "local")
    assert stop.value.code == 2 and "kind 0.29.0 is older than 0.32.0" in str(stop.value)
    assert all(c["args"][:2] != ["create", "cluster"] for c in bench.calls())


def test_node_ports_the_kind_config_does_not_publish_are_refused(bench: Bench) -> None:
    bench.tool("kind", [["version"], "kind v0.32.0 go1.24.6 linux/amd64\n", 0])
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    facts = up.StackFacts(platform="onprem", image=IMAGE, https_node_port=31443)
    with pytest.raises(up.Stop) as stop:
        up.create_kind_cluster("inferstack", facts, sh, "local")
    assert "31443" in str(stop.value) and "deploy/kind/cluster.yaml" in str(stop.value)


def _endpoint(tmp_path: Path, key: str | None = "sk-1") -> Any:
    return up.Endpoint(
        "https://llm.localtest.me:30443", "m", "default" if key else None, key, tmp_path / "ca.pem"
    )


def test_the_endpoint_wait_is_bounded_and_says_what_it_saw_and_where_to_look(tmp_path: Path) -> None:
    now = [0.0]
    seen: list[float] = []

    def probe(_: Any) -> tuple[bool, str]:
        seen.append(now[0])
        return False, "HTTP 503 Service Unavailable"

    def sleep(s: float) -> None:
        now[0] += s

    with pytest.raises(up.Stop) as stop:
        up.wait_for_endpoint(
            _endpoint(tmp_path), "inferstack", 60, 5, probe, lambda: now[0], sleep, lambda h, p: True
        )
    assert len(seen) == 13  # t = 0, 5, ..., 60
    message = str(stop.value)
    assert "did not answer within 60 s (last: HTTP 503 Service Unavailable)" in message
    assert "kubectl -n inferstack get pods" in message and "UP_WAIT_SECONDS" in message
    assert "/etc/hosts" not in message  # the name resolves: no hosts-file hint


def test_a_hostname_that_does_not_resolve_stops_before_the_wait_with_the_hosts_file_hint(
    tmp_path: Path,
) -> None:
    asked: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> bool:
        asked.append((host, port))
        return False

    with pytest.raises(up.Stop) as stop:
        up.wait_for_endpoint(
            _endpoint(tmp_path),
            "inferstack",
            600,
            1,
            lambda _: pytest.fail("must not poll a name that does not resolve"),
            lambda: 0.0,
            lambda _: None,
            resolve,
        )
    assert asked == [("llm.localtest.me", 30443)]
    assert "add `127.0.0.1 llm.localtest.me` to /etc/hosts" in str(stop.value)


def test_resolution_is_decided_by_getaddrinfo_not_by_message_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert up.resolves("localhost", 443)

    def no_such_name(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "a resolver's own wording")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    assert not up.resolves("llm.localtest.me", 30443)
    ready, seen = up.probe_models(up.Endpoint("https://llm.localtest.me:30443", "m", "default", "k", None))
    assert not ready and seen.startswith("llm.localtest.me does not resolve")


def test_the_usage_text_holds_a_runnable_curl_line_and_openai_snippet(tmp_path: Path) -> None:
    text = up.usage_text(_endpoint(tmp_path, key="sk-abc"))
    assert "Endpoint:  https://llm.localtest.me:30443/v1" in text
    assert f"CA file:   {tmp_path / 'ca.pem'}" in text
    curl = next(line for line in text.splitlines() if line.strip().startswith("curl "))
    assert f"--cacert {tmp_path / 'ca.pem'}" in curl and "'Authorization: Bearer sk-abc'" in curl
    assert curl.rstrip().endswith("https://llm.localtest.me:30443/v1/chat/completions")
    snippet = textwrap.dedent(text.split("openai-python (pip install openai):\n", 1)[1])
    tree = ast.parse(snippet)
    call = next(
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "OpenAI"
    )
    kwargs = {k.arg: k.value for k in call.keywords}
    assert ast.literal_eval(kwargs["base_url"]) == "https://llm.localtest.me:30443/v1"
    assert ast.literal_eval(kwargs["api_key"]) == "sk-abc"
    assert str(tmp_path / "ca.pem") in ast.unparse(kwargs["http_client"])


def test_without_a_stack_key_a_401_from_the_gateway_counts_as_answering(tmp_path: Path) -> None:
    with HttpsServer(tmp_path, []) as (url, ca):
        endpoint = up.Endpoint(url, "m", None, None, ca)
        assert up.probe_models(endpoint) == (True, "HTTP 401 Unauthorized")
        keyed = up.Endpoint(url, "m", "default", "wrong", ca)
        assert up.probe_models(keyed) == (False, "HTTP 401 Unauthorized")


# --- a real HTTPS endpoint with its own CA, as the stack's internal CA would be ------------------------


def _ca_and_server_cert(tmp_path: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            ).add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
            ).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("test CA", ca_key, "test CA", ca_key, True)
    server_cert = cert("localhost", server_key, "test CA", ca_key, False)
    pem = serialization.Encoding.PEM
    paths = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(server_cert.public_bytes(pem))
    paths[2].write_bytes(
        server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class HttpsServer:
    """An HTTPS `/v1/models` behind a test CA: 503 for the first `fail_first` answers (the model still
    loading), then 200 for `Bearer sk-test` and 401 otherwise, as Envoy's apiKeyAuth would."""

    def __init__(self, tmp_path: Path, hits: list[str], fail_first: int = 0, log: Path | None = None) -> None:
        self.tmp_path, self.hits, self.fail_first, self.log = tmp_path, hits, fail_first, log

    def __enter__(self) -> tuple[str, Path]:
        ca, cert, key = _ca_and_server_cert(self.tmp_path)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(self.path)
                if outer.log:
                    with outer.log.open("a") as f:
                        f.write(
                            json.dumps({"tool": "endpoint", "args": ["GET", self.path], "env": {}}) + "\n"
                        )
                if len(outer.hits) <= outer.fail_first:
                    status = 503
                elif self.headers.get("Authorization") == "Bearer sk-test":
                    status = 200
                else:
                    status = 401
                body = b'{"object": "list", "data": []}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("localhost", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return f"https://localhost:{self.server.server_address[1]}", ca

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint(tmp_path: Path, bench: Bench) -> Iterator[tuple[str, Path, list[str]]]:
    hits: list[str] = []
    with HttpsServer(tmp_path, hits, fail_first=2, log=bench.log) as (url, ca):
        yield url, ca, hits


def _planned_deployment(
    name: str, memory: str, init_memory: str = "1Gi", cpu: str | None = None
) -> dict[str, Any]:
    """A model-server Deployment as it stands in a plan's resources.json (components/model_server.py)."""
    labels = {"app.kubernetes.io/component": "model-server", "app.kubernetes.io/name": name}
    return {
        "type": "kubernetes:apps/v1:Deployment",
        "name": f"{name}-deployment",
        "inputs": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "inferstack", "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "spec": {
                        "initContainers": [
                            {"name": "fetch", "resources": {"requests": {"memory": init_memory}}}
                        ],
                        "containers": [
                            {
                                "name": "server",
                                "resources": {
                                    "requests": {"memory": memory, **({"cpu": cpu} if cpu else {})}
                                },
                            }
                        ],
                    }
                },
            },
        },
    }


# --- the happy path, every step in order --------------------------------------------------------------


def test_the_happy_path_runs_every_step_in_order_and_prints_a_usable_snippet(
    bench: Bench, endpoint: tuple[str, Path, list[str]]
) -> None:
    url, ca, hits = endpoint
    bench.copy("components")  # `up.py facts` runs the real stack config under the stand-in venv
    venv_python = f'#!/bin/sh\nexec {sys.executable} "$@"\n'
    bench.tool(
        "make",
        [
            ["runtime-core"],
            "",
            0,
            {".venv/bin/python": venv_python, ".venv/bin/inferstack": STANDIN.format(python=sys.executable)},
        ],
    )
    # The offline plan writes resources.json; the memory check and the restart read it.
    plan = json.dumps([_planned_deployment("llm", "3Gi")])
    bench.answers["inferstack"] = [[["plan"], "", 0, {"build/plan/local/resources.json": plan}]]
    bench.tool(
        "docker",
        [["info", "--format", "{{.MemTotal}}"], f"{8 * 2**30}\n", 0],
        [["info", "--format", "{{.NCPU}}"], "4\n", 0],
        [["info"], "27.5.1\n", 0],
        [["image", "inspect"], "sha256:new\n", 0],
    )
    bench.tool(
        "kind",
        [["get", "clusters"], "No kind clusters found.\n", 0],
        [["version"], "kind v0.32.0 go1.24.6 linux/amd64\n", 0],
    )
    bench.tool(
        "kubectl",
        [["config", "current-context"], "", 1],
        [["config", "view"], "apiVersion: v1\nkind: Config\ncurrent-context: kind-inferstack\n", 0],
    )
    outputs = {
        "url": url,
        "model": "qwen2.5-0.5b-instruct",
        "namespace": "inferstack",
        "api_keys": {"default": "sk-test"},
        "ca_certificate_pem": ca.read_text(),
    }
    stack_text = (bench.repo / "stacks/Pulumi.local.yaml").read_text()
    bench.tool(
        "pulumi",
        [["stack", "output"], json.dumps(outputs), 0],
        # What `stack select --create --secrets-provider passphrase` does to the stack file.
        [["stack", "select"], "", 0, {"stacks/Pulumi.local.yaml": stack_text + "encryptionsalt: v1:x\n"}],
    )
    env = bench.env(MAKE=str(bench.bin / "make"), UP_POLL_SECONDS="0.05", UP_WAIT_SECONDS="20")

    done = subprocess.run(
        [sys.executable, "scripts/up.py", "up", "local"],
        cwd=bench.repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    state = bench.repo / ".pulumi-state"
    expected = [
        "docker info --format {{.ServerVersion}}",
        "docker buildx version",
        f"make runtime-core PYTHON={sys.executable}",
        "inferstack plan local --out build/plan/local",
        "kind get clusters",
        "docker info --format {{.MemTotal}}",  # before anything is created
        "docker info --format {{.NCPU}}",
        "kind version",
        "kind create cluster --name inferstack --config deploy/kind/cluster.yaml",
        "kubectl config view --minify --flatten --context kind-inferstack",
        f"docker buildx build --load -f model_image/Dockerfile.cpu -t {IMAGE} .",
        f"kind load docker-image --name inferstack {IMAGE}",
        f"docker image inspect --format {{{{.Id}}}} {IMAGE}",
        "pulumi stack select --create --secrets-provider passphrase local",
        "pulumi stack export --stack local",  # a new cluster: does the state still list resources?
        "pulumi up --stack local",
        "pulumi stack output --stack local --json --show-secrets",
        "endpoint GET /v1/models",
        "endpoint GET /v1/models",
        "endpoint GET /v1/models",
    ]
    steps = [c for c in bench.commands() if c.split()[:3] != ["kubectl", "config", "current-context"]]
    assert steps[steps.index("docker info --format {{.ServerVersion}}") :] == expected
    assert hits == ["/v1/models"] * 3  # two 503s while loading, then 200

    pulumi_up = next(c for c in bench.calls() if c["tool"] == "pulumi" and c["args"][0] == "up")
    assert pulumi_up["env"] == {
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE_FILE": str(state / "passphrase"),
        "KUBECONFIG": str(state / "local.kubeconfig"),
        "DOCKER_BUILDKIT": None,
        "BUILDX_NO_DEFAULT_ATTESTATIONS": None,
    }
    build = next(c for c in bench.calls() if c["args"][:2] == ["buildx", "build"])
    # BuildKit, and no provenance attestation (its timestamp would change the image ID of a cached build).
    assert build["env"]["DOCKER_BUILDKIT"] == "1" and build["env"]["BUILDX_NO_DEFAULT_ATTESTATIONS"] == "1"
    assert (state / "local.image-id").read_text() == "sha256:new\n"
    assert "memory: the stack requests about 4.0 GiB of Docker's 8.0 GiB" in done.stdout
    assert "pulumi added `encryptionsalt:` to stacks/Pulumi.local.yaml" in done.stdout
    assert "do not commit it" in done.stdout
    assert stat.S_IMODE((state / "passphrase").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "local.kubeconfig").stat().st_mode) == 0o600
    assert (state / "local.kind-cluster").read_text() == "inferstack\n"

    ca_file = bench.repo / "build" / "local-ca.pem"
    assert ca_file.read_text() == ca.read_text()
    assert f"Endpoint:  {url}/v1" in done.stdout and f"CA file:   {ca_file}" in done.stdout
    assert "Bearer sk-test" in done.stdout and "api_key='sk-test'" in done.stdout
    assert "creating it from deploy/kind/cluster.yaml" in done.stdout
    assert f"export PULUMI_BACKEND_URL=file://{state}" in done.stdout


def test_destroy_runs_pulumi_destroy_then_deletes_the_cluster_up_created_when_told(bench: Bench) -> None:
    bench.tool("pulumi")
    bench.tool("kind")
    state = deployed_state(bench.repo, "local")
    (state / "local.kind-cluster").write_text("inferstack\n")
    (state / "local.kubeconfig").write_text("apiVersion: v1\n")
    (bench.repo / ".venv" / "bin").mkdir(parents=True)
    (bench.repo / ".venv" / "bin" / "python").touch()
    sh = up.Shell(cwd=bench.repo, env=bench.env(DELETE_CLUSTER="yes", PULUMI_ARGS="--yes"))
    up.destroy("local", sh, ask=lambda _: pytest.fail("must not ask"))
    assert bench.commands() == ["pulumi destroy --stack local --yes", "kind delete cluster --name inferstack"]
    assert bench.calls()[0]["env"]["KUBECONFIG"] == str(state / "local.kubeconfig")
    assert not (state / "local.kind-cluster").exists()


def test_destroy_asks_before_deleting_the_cluster_and_keeps_it_on_no(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench.tool("pulumi")
    bench.tool("kind")
    state = deployed_state(bench.repo, "local")
    (state / "local.kind-cluster").write_text("inferstack\n")
    (bench.repo / ".venv" / "bin").mkdir(parents=True)
    (bench.repo / ".venv" / "bin" / "python").touch()
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    questions: list[str] = []

    def answer_no(question: str) -> str:
        questions.append(question)
        return "n"

    up.destroy("local", up.Shell(cwd=bench.repo, env=bench.env()), ask=answer_no)
    assert questions == ["Delete the kind cluster 'inferstack' that make up created? [y/N] "]
    assert bench.commands() == ["pulumi destroy --stack local"]
    assert (state / "local.kind-cluster").exists()


def deployed_state(repo: Path, stack: str) -> Path:
    """.pulumi-state as Pulumi's file backend leaves it once `pulumi up` ran (project-scoped stacks)."""
    state = repo / ".pulumi-state"
    stacks = state / ".pulumi" / "stacks" / "inferstack"
    stacks.mkdir(parents=True)
    (stacks / f"{stack}.json").write_text("{}")
    return state


def test_destroy_of_a_stack_never_deployed_from_here_changes_nothing(bench: Bench) -> None:
    bench.tool("pulumi")
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    up.destroy("local", sh, ask=lambda _: pytest.fail("must not ask"))
    assert bench.commands() == []
    assert not (bench.repo / ".pulumi-state").exists() and not (bench.repo / ".venv").exists()


def test_destroy_deletes_a_cluster_up_created_before_it_failed_with_no_state(bench: Bench) -> None:
    # make up created the kind cluster, then failed before `pulumi up` wrote any state: destroy still
    # offers the cluster (e2e.yml's "nothing is left" relies on it).
    bench.tool("pulumi")
    bench.tool("kind")
    state = bench.repo / ".pulumi-state"
    state.mkdir()
    (state / "local.kind-cluster").write_text("inferstack\n")
    sh = up.Shell(cwd=bench.repo, env=bench.env(DELETE_CLUSTER="yes"))
    up.destroy("local", sh, ask=lambda _: pytest.fail("must not ask"))
    assert bench.commands() == ["kind delete cluster --name inferstack"]
    assert not (state / "local.kind-cluster").exists()


def test_destroy_without_pulumi_exits_2_naming_it(bench: Bench) -> None:
    deployed_state(bench.repo, "local")
    with pytest.raises(up.Stop) as stop:
        up.destroy("local", up.Shell(cwd=bench.repo, env=bench.env()))
    assert stop.value.code == 2 and "`pulumi` is not on PATH" in str(stop.value)


def test_the_local_stack_validates_against_the_kubernetes_version_of_the_kind_node_it_runs_on() -> None:
    """deploy/kind/cluster.yaml pins the node image; the local stack's manifests are checked at its minor."""
    import re

    import yaml

    cluster = yaml.safe_load((ROOT / "deploy" / "kind" / "cluster.yaml").read_text(encoding="utf-8"))
    images = {node["image"] for node in cluster["nodes"]}
    assert len(images) == 1, images
    match = re.match(r"kindest/node:v(\d+\.\d+)\.\d+@sha256:[0-9a-f]{64}$", images.pop())
    assert match, "the kind node image must be pinned by tag and digest"
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text(encoding="utf-8"))
    assert stack["config"]["inferstack:cluster"]["kubernetes_version"] == match.group(1)


# --- Python, BuildKit, memory, refresh, rebuilt image ----------------------------------------------------


def test_a_python_older_than_3_11_is_passed_over_for_a_newer_one_on_path(bench: Bench) -> None:
    old = bench.tool("python3", [["-c"], "3 9\n", 0])
    newer = bench.tool("python3.12", [["-c"], "3 12\n", 0])
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    assert up.find_python(sh, running=str(old)) == (str(newer), None)
    assert up.find_python(sh, running=str(newer))[0] == str(newer)  # the running one first


def test_no_python_3_11_stops_before_the_venv_with_install_hints(bench: Bench) -> None:
    bench.tool("python3", [["-c"], "3 10\n", 0])
    bench.tool("pulumi")
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    python, problem = up.find_python(sh, running=None)
    assert python is None and problem
    assert f"{bench.bin / 'python3'} is 3.10" in problem
    assert "sudo apt-get install python3.11 python3.11-venv" in problem
    assert "dnf install python3.12" in problem and "brew install python@3.12" in problem


def test_a_python_without_ensurepip_is_named_with_its_venv_package(bench: Bench) -> None:
    bench.tool("python3.11", [["-c"], "3 11\nModuleNotFoundError: No module named 'ensurepip'\n", 1])
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    python, problem = up.find_python(sh, running=None)
    assert python is None and problem and "sudo apt-get install python3.11-venv" in problem


def test_up_refuses_without_a_usable_python_and_runs_no_make(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench.tool("python3", [["-c"], "3 9\n", 0])
    bench.tool("pulumi")
    bench.tool("kubectl", [["config", "current-context"], "kind-inferstack\n", 0])
    bench.tool("docker")
    bench.tool("kind")
    bench.tool("make")
    monkeypatch.setattr(up.sys, "executable", str(bench.bin / "python3"))
    with pytest.raises(up.Stop) as stop:
        up.up("local", up.Shell(cwd=bench.repo, env=bench.env()))
    assert stop.value.code == 2 and "no Python >= 3.11" in str(stop.value)
    assert all(c["tool"] not in ("make", "pulumi") for c in bench.calls())


def test_up_py_itself_parses_as_python_3_9_so_it_can_say_what_is_missing() -> None:
    ast.parse((ROOT / "scripts" / "up.py").read_text(), feature_version=(3, 9))


def test_docker_without_buildkit_is_named_with_docker_ce_or_docker_buildx(bench: Bench) -> None:
    bench.tool("pulumi")
    bench.tool("kind")
    bench.tool("kubectl", [["config", "current-context"], "", 1])
    bench.tool(
        "docker", [["info"], "20.10.24\n", 0], [["buildx"], "docker: 'buildx' is not a docker command.\n", 1]
    )
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    (problem,) = up.prerequisite_problems(up.scanned_facts(bench.repo / "stacks/Pulumi.local.yaml"), sh)
    assert "`docker buildx version` failed" in problem
    assert "docker-ce + docker-buildx-plugin" in problem and "docker.io + docker-buildx" in problem
    assert "apt-get install docker.io" not in up.INSTALL["docker"][1]


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("512Mi", 512 * 2**20), ("6Gi", 6 * 2**30), ("1G", 10**9), ("1073741824", 2**30), ("1.5Gi", 3 * 2**29)],
)
def test_memory_quantities_in_bytes(quantity: str, expected: int) -> None:
    assert up.quantity_bytes(quantity) == expected


def test_a_pods_request_is_the_larger_of_its_containers_and_its_largest_init_container() -> None:
    def c(memory: str, **extra: Any) -> dict[str, Any]:
        return {"resources": {"requests": {"memory": memory}}, **extra}

    assert up.pod_request({"initContainers": [c("4Gi")], "containers": [c("1Gi"), c("1Gi")]}) == 4 * 2**30
    assert up.pod_request({"initContainers": [c("1Gi")], "containers": [c("3Gi")]}) == 3 * 2**30
    sidecar = c("1Gi", restartPolicy="Always")
    assert up.pod_request({"initContainers": [sidecar], "containers": [c("3Gi")]}) == 4 * 2**30


def _planned_local(out: Path) -> list[dict[str, Any]]:
    """The local stack's plan (resources.json), as make up plans it."""
    done = subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "plan", "local", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    resources: list[dict[str, Any]] = json.loads((out / "resources.json").read_text())
    return resources


def test_the_local_stack_fits_docker_desktops_default_vm_on_a_16_gb_mac(tmp_path: Path) -> None:
    """Docker Desktop gives its VM half the Mac's memory by default: 8 GB of a 16 GB Mac, of which the
    VM's kernel reports a little less. The local stack, as planned, with the kind node, fits 7.5 GiB."""
    resources = _planned_local(tmp_path)
    items = dict(up.planned(resources))
    stack = yaml.safe_load((ROOT / "stacks/Pulumi.local.yaml").read_text())["config"]
    model = next(b for what, b in items.items() if what.startswith("Deployment "))
    assert model == up.quantity_bytes(stack["inferstack:serving"]["memory"])
    envoy = next(b for what, b in items.items() if what.startswith("Envoy proxy pods"))
    assert envoy >= up.ENVOY_PROXY_MEMORY  # the controller's default, not in the plan, is counted
    assert "Envoy Gateway controller" in items
    assert sum(items.values()) + up.KIND_NODE_MEMORY <= 7.5 * 2**30


def test_too_little_docker_memory_stops_before_anything_is_created_saying_how_to_raise_it(
    bench: Bench,
) -> None:
    plan = bench.repo / "build/plan/local/resources.json"
    plan.parent.mkdir(parents=True)
    envoy = {
        "type": "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy",
        "inputs": {
            "kind": "EnvoyProxy",
            "metadata": {"name": "llm"},
            "spec": {"provider": {"kubernetes": {"envoyDeployment": {"replicas": 2}}}},
        },
    }
    plan.write_text(json.dumps([_planned_deployment("llm", "6Gi"), envoy]))
    bench.tool("docker", [["info", "--format", "{{.MemTotal}}"], f"{int(7.7 * 2**30)}\n", 0])
    with pytest.raises(up.Stop) as stop:
        up.check_memory("local", up.Shell(cwd=bench.repo, env=bench.env()))
    message = str(stop.value)
    assert stop.value.code == 2
    assert "Docker has 7.7 GiB of memory; stacks/Pulumi.local.yaml needs about 8.1 GiB" in message
    assert "Deployment llm: 1 x 6.00 GiB" in message and "Envoy proxy pods (llm): 2 x 0.53 GiB" in message
    assert "Docker Desktop → Settings → Resources" in message and "Give Docker at least 10 GB" in message
    assert bench.commands() == ["docker info --format {{.MemTotal}}"]


def _pulumi_with_state(bench: Bench, types: list[str]) -> up.Shell:
    state = {"version": 3, "deployment": {"resources": [{"type": t, "urn": f"urn:{t}"} for t in types]}}
    bench.tool(
        "pulumi",
        [["stack", "export"], json.dumps(state), 0],
        [["stack", "output"], json.dumps({"url": "https://llm.localtest.me:30443"}), 0],
    )
    return up.Shell(cwd=bench.repo, env=bench.env())


def test_a_new_cluster_with_resources_still_in_the_state_is_refreshed_before_up(bench: Bench) -> None:
    sh = _pulumi_with_state(bench, ["pulumi:pulumi:Stack", "kubernetes:apps/v1:Deployment"])
    up.pulumi_up("local", sh, up.pulumi_env(sh, "local"), new_cluster=True)
    assert bench.commands()[1:4] == [
        "pulumi stack export --stack local",
        "pulumi refresh --stack local --yes",
        "pulumi up --stack local",
    ]


def test_a_new_cluster_with_an_empty_state_and_an_existing_cluster_get_no_refresh(bench: Bench) -> None:
    sh = _pulumi_with_state(bench, ["pulumi:pulumi:Stack", "pulumi:providers:kubernetes"])
    up.pulumi_up("local", sh, up.pulumi_env(sh, "local"), new_cluster=True)
    sh = _pulumi_with_state(bench, ["kubernetes:apps/v1:Deployment"])
    up.pulumi_up("local", sh, up.pulumi_env(sh, "local"), new_cluster=False)
    assert not any(c.startswith("pulumi refresh") for c in bench.commands())
    assert bench.commands().count("pulumi stack export --stack local") == 1


def test_a_rebuilt_image_restarts_the_model_server_with_the_frozen_kubeconfig(bench: Bench) -> None:
    plan = bench.repo / "build/plan/local/resources.json"
    plan.parent.mkdir(parents=True)
    plan.write_text(json.dumps([_planned_deployment("llm", "3Gi")]))
    labels = {"app.kubernetes.io/component": "model-server", "app.kubernetes.io/name": "llm"}
    bench.tool("kubectl", [["--kubeconfig"], json.dumps(labels), 0])
    sh = up.Shell(cwd=bench.repo, env=bench.env())
    last = up.image_id_file(sh, "local")
    last.parent.mkdir(exist_ok=True)

    up.roll_out_image("local", sh, "sha256:a", new_cluster=False, wait_s=600)  # the first load
    assert bench.commands() == [] and last.read_text() == "sha256:a\n"
    up.roll_out_image("local", sh, "sha256:a", new_cluster=False, wait_s=600)  # unchanged
    up.roll_out_image("local", sh, "sha256:b", new_cluster=True, wait_s=600)  # fresh pods anyway
    assert bench.commands() == []
    up.roll_out_image("local", sh, "sha256:c", new_cluster=False, wait_s=600)
    kubectl = f"kubectl --kubeconfig {bench.repo / '.pulumi-state/local.kubeconfig'} -n inferstack"
    assert bench.commands() == [
        f"{kubectl} get deployment llm -o jsonpath={{.spec.selector.matchLabels}}",
        f"{kubectl} delete pods -l app.kubernetes.io/component=model-server,app.kubernetes.io/name=llm",
        f"{kubectl} rollout status deployment/llm --timeout=600s",
    ]
    assert last.read_text() == "sha256:c\n"


@pytest.mark.parametrize(
    ("stack", "target"),
    [("local", "runtime-core"), ("onprem", "runtime-core"), ("dev-aws", "runtime"), ("prod-gcp", "runtime")],
)
def test_make_plan_installs_the_venv_the_stacks_platform_needs(stack: str, target: str) -> None:
    """`make plan/check` ask `up.py runtime STACK` (no venv needed) which make target to build."""
    done = subprocess.run(
        [sys.executable, "scripts/up.py", "runtime", stack],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == target
    dry = subprocess.run(
        ["make", "-p", "-n", "plan", f"STACK={stack}"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    # The venv's stamp is a prerequisite of plan (`make -j plan check` then builds it once).
    assert f"plan: .venv/bin/.{target}" in dry.stdout.splitlines()


def test_a_failed_kind_load_names_the_image_archive_workaround(bench: Bench) -> None:
    """kind#3795: `kind load docker-image` can fail on the containerd image store; say how to load an archive."""
    bench.tool("docker")
    bench.tool("kind", [["load"], "ctr: content digest sha256:abc: not found", 1])
    target = up.Target("kind-inferstack", ["kind", "load", "docker-image", "--name", "inferstack"])
    facts = up.StackFacts(platform="onprem", image=IMAGE, engine="transformers")
    with pytest.raises(up.Stop) as stop:
        up.build_and_load_image(facts, target, up.Shell(cwd=bench.repo, env=bench.env()))
    assert "loading the image into the cluster failed" in str(stop.value)
    assert f"{IMAGE} -o build/image.tar && kind load image-archive --name inferstack build/image.tar" in str(
        stop.value
    )


def test_the_local_stack_fits_four_cpus(tmp_path: Path) -> None:
    """The local stack's CPU requests, with the kind node's own, fit a 4-CPU Docker (Docker Desktop on
    most laptops); they do not fit colima's default 2-CPU VM, which check_cpu refuses before anything."""
    resources = _planned_local(tmp_path)
    items = dict(up.planned(resources, up.CPU))
    stack = yaml.safe_load((ROOT / "stacks/Pulumi.local.yaml").read_text())["config"]
    model = next(m for what, m in items.items() if what.startswith("Deployment "))
    assert model == up.millicpu(stack["inferstack:serving"]["cpu"])
    assert sum(items.values()) + up.KIND_NODE_MILLICPU <= 4000
    assert sum(items.values()) + up.KIND_NODE_MILLICPU > 2000


def test_too_few_docker_cpus_stop_before_anything_is_created_saying_how_to_raise_them(bench: Bench) -> None:
    plan = bench.repo / "build/plan/local/resources.json"
    plan.parent.mkdir(parents=True)
    plan.write_text(json.dumps([_planned_deployment("llm", "4Gi", cpu="2")]))
    bench.tool("docker", [["info", "--format", "{{.NCPU}}"], "2\n", 0])
    with pytest.raises(up.Stop) as stop:
        up.check_cpu("local", up.Shell(cwd=bench.repo, env=bench.env()))
    message = str(stop.value)
    assert stop.value.code == 2
    assert "Docker has 2 CPUs; the pods of stacks/Pulumi.local.yaml request 2.95" in message
    assert "Deployment llm: 1 x 2 CPU" in message and "Insufficient cpu" in message
    assert "colima start --cpu N" in message and "Give Docker at least 3 CPUs" in message
    assert bench.commands() == ["docker info --format {{.NCPU}}"]


def test_cpu_quantities_and_the_request_defaulted_to_the_limit() -> None:
    assert up.millicpu("2") == 2000 and up.millicpu("500m") == 500 and up.millicpu("1.5") == 1500
    assert up.millicpu("two") is None
    only_limit = {"name": "c", "resources": {"limits": {"cpu": "3"}}}
    init = {"name": "i", "resources": {"requests": {"cpu": "4"}}}
    assert up.pod_request({"containers": [only_limit]}, up.CPU) == 3000
    assert up.pod_request({"initContainers": [init], "containers": [only_limit]}, up.CPU) == 4000
