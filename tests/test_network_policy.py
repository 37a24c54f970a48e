"""NetworkPolicies on every stack's plan: namespace-wide default-deny, DNS egress that survives NodeLocal
DNSCache, scrapes from Prometheus pods only (issue 13 kinds 5, 6, 12), and the `network-policy` check
that fails on each defective form."""

from __future__ import annotations

import copy
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.address_space import internet_exposure
from components.choices import AcmeSolver
from components.clusters.aws.network import subnet_cidrs
from components.clusters.gcp.workload_identity import WORKLOAD_IDENTITY_EGRESS
from components.model_server import INTERNET_EGRESS_ANNOTATION, NODE_LOCAL_DNS_CIDRS, SERVING_PORT
from components.monitoring import PROMETHEUS_POD_LABELS
from components.network_policy import HTTP01_SOLVER_POD_LABELS, HTTP01_SOLVER_PORT
from inferstack.planning.plan import plan_stack
from inferstack.validation.policies import load_rules
from stacks.config import ConfigError, load_stack_file, parse_stack_config
from stacks.egress import internet_egress_accepted, model_store_cidrs
from stacks.workload import ONPREM_KUBE_DNS_SERVICE_IPS

ROOT = Path(__file__).resolve().parents[1]
RULES = load_rules()
NAMESPACE_DEFAULT_DENY = "namespace-default-deny"
DNS_EGRESS_NOT_POD_LABEL_ONLY = "dns-egress-not-pod-label-only"
INGRESS_PEER_SELECTS_PODS = "ingress-peer-selects-pods"
NETWORK_RULES = (NAMESPACE_DEFAULT_DENY, DNS_EGRESS_NOT_POD_LABEL_ONLY, INGRESS_PEER_SELECTS_PODS)
is_default_deny = RULES.is_default_deny
STACK_FILES = sorted([*ROOT.glob("stacks/Pulumi.*.yaml"), *ROOT.glob("docs/examples/Pulumi.*.yaml")])


@cache
def _manifests(path: Path, solver: AcmeSolver | None = None) -> list[dict[str, Any]]:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        cfg = load_stack_file(path)
        if solver is not None:
            cfg = cfg.model_copy(
                update={
                    "tls": cfg.tls.model_copy(
                        update={"acme": cfg.tls.acme.model_copy(update={"solver": solver, "dns01": None})}
                    )
                }
            )
        return plan_stack(cfg, path.stem.removeprefix("Pulumi.")).manifests()
    finally:
        os.chdir(cwd)


def manifests(path: Path) -> list[dict[str, Any]]:
    return copy.deepcopy(_manifests(path))


def policies(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == "NetworkPolicy"]


def server_allows(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The model servers' allow policies (one per model or variant), selected by the pods they apply to:
    an endpoint picker's allow (prefix-aware routing) is not a model server's."""
    found = [
        p
        for p in policies(objs)
        if p["metadata"]["name"].endswith("-allow")
        and "egress" in p["spec"]
        and p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component")
        == "model-server"
    ]
    assert found, "no model server allow policy"
    return found


def server_allow(objs: list[dict[str, Any]]) -> dict[str, Any]:
    """The first model server's allow policy (the only one in a single-model stack)."""
    return server_allows(objs)[0]


def network_findings(objs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(policy, message) from the pack's three NetworkPolicy rules over rendered manifests."""
    pairs = [(f"kubernetes:{o['apiVersion']}:{o['kind']}", o) for o in objs]
    return [
        (policy.name, message)
        for policy in RULES.POLICIES
        if policy.name in NETWORK_RULES
        for _, message in policy.run(pairs)
    ]


def rules(findings: list[tuple[str, str]]) -> set[str]:
    return {name for name, _ in findings}


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.stem)
def test_every_stack_passes_the_network_policy_check(path: Path) -> None:
    objs = manifests(path)
    assert network_findings(objs) == [] and len(policies(objs)) >= 3


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.stem)
def test_every_namespace_with_pods_has_a_default_deny(path: Path) -> None:
    objs = manifests(path)
    pod_namespaces = {o["metadata"]["namespace"] for o in objs if o["kind"] == "Deployment"}
    denied = {p["metadata"]["namespace"] for p in policies(objs) if is_default_deny(p)}
    assert pod_namespaces and pod_namespaces <= denied


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.stem)
def test_dns_egress_reaches_node_local_caches_and_scrapes_come_from_prometheus_pods(path: Path) -> None:
    onprem = load_stack_file(path).platform.value == "onprem"
    for allow in server_allows(manifests(path)):
        spec = allow["spec"]
        dns = next(r for r in spec["egress"] if {p["port"] for p in r["ports"]} == {53})
        assert {p["protocol"] for p in dns["ports"]} == {"UDP", "TCP"}
        cidrs = {peer["ipBlock"]["cidr"] for peer in dns["to"] if "ipBlock" in peer}
        assert set(NODE_LOCAL_DNS_CIDRS) <= cidrs
        if onprem:
            # The upstream node cache binds the kube-dns Service IP and skips the DNAT: the policy sees it.
            assert set(ONPREM_KUBE_DNS_SERVICE_IPS) <= cidrs
        assert any(
            peer.get("podSelector", {}).get("matchLabels") == {"k8s-app": "kube-dns"} for peer in dns["to"]
        )
        # Peers from another namespace (the gateway's proxies, Prometheus) name pods there too; a peer
        # without a namespaceSelector is a pod of the model's own namespace (its endpoint picker).
        scrape = [
            peer
            for r in spec["ingress"]
            for peer in r["from"]
            if peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            == "monitoring"
        ]
        assert scrape and all(peer["podSelector"]["matchLabels"] == PROMETHEUS_POD_LABELS for peer in scrape)
        assert all(p["port"] == SERVING_PORT for r in spec["ingress"] for p in r["ports"])


# --- the check fails on each defective form, on every stack ---------------------------------------


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.stem)
def test_a_namespace_without_default_deny_fails(path: Path) -> None:
    objs = [o for o in manifests(path) if not (o["kind"] == "NetworkPolicy" and is_default_deny(o))]
    assert NAMESPACE_DEFAULT_DENY in rules(network_findings(objs))


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.stem)
def test_dns_egress_by_pod_labels_only_fails(path: Path) -> None:
    # In each model server's policy in turn: every one of them is checked, not only the first.
    for i in range(len(server_allows(manifests(path)))):
        objs = manifests(path)
        allow = server_allows(objs)[i]
        dns = next(r for r in allow["spec"]["egress"] if {p["port"] for p in r["ports"]} == {53})
        dns["to"] = [peer for peer in dns["to"] if "ipBlock" not in peer]
        assert DNS_EGRESS_NOT_POD_LABEL_ONLY in rules(network_findings(objs)), allow["metadata"]["name"]


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.stem)
def test_a_whole_monitoring_namespace_peer_fails(path: Path) -> None:
    objs = manifests(path)
    for rule in server_allow(objs)["spec"]["ingress"]:
        for peer in rule["from"]:
            peer.pop("podSelector", None)
    assert INGRESS_PEER_SELECTS_PODS in rules(network_findings(objs))


# --- HTTP-01 solver --------------------------------------------------------------------------------


def test_http01_stacks_let_the_envoy_proxies_reach_the_solver_pods_only_on_8089() -> None:
    objs = copy.deepcopy(_manifests(ROOT / "stacks" / "Pulumi.prod-aws.yaml", AcmeSolver.HTTP01))
    solver = [
        p for p in policies(objs) if p["spec"]["podSelector"].get("matchLabels") == HTTP01_SOLVER_POD_LABELS
    ]
    assert len(solver) == 1
    spec = solver[0]["spec"]
    assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"port": HTTP01_SOLVER_PORT, "protocol": "TCP"}]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "envoy-gateway-system"}
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "proxy"
    assert network_findings(objs) == []


def test_dns01_stacks_make_no_solver_allow() -> None:
    objs = manifests(ROOT / "stacks" / "Pulumi.prod-aws.yaml")
    assert not [
        p for p in policies(objs) if p["spec"]["podSelector"].get("matchLabels") == HTTP01_SOLVER_POD_LABELS
    ]


# --- stack file: network section -------------------------------------------------------------------


def _local_values(**network: Any) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text())
    values = {k.removeprefix("inferstack:"): v for k, v in document["config"].items()}
    values["network"] = network
    return values


def test_network_settings_reach_the_policy() -> None:
    cfg = parse_stack_config(
        _local_values(
            dns_cidrs=["10.96.0.10/32"], extra_egress=[{"cidr": "10.1.2.0/24", "ports": [3128, 8443]}]
        )
    )
    assert cfg.network.dns_cidrs == ["10.96.0.10/32"]
    assert [(r.cidr, r.ports) for r in cfg.network.extra_egress] == [("10.1.2.0/24", [3128, 8443])]


@pytest.mark.parametrize(
    ("network", "field", "text"),
    [
        ({"dns_cidrs": ["169.254.20.10"]}, "network.dns_cidrs", "169.254.20.10/32"),
        ({"dns_cidrs": ["10.0.0.1/8"]}, "network.dns_cidrs", "CIDR"),
        ({"extra_egress": [{"cidr": "nope", "ports": [443]}]}, "network.extra_egress[0].cidr", "CIDR"),
        (
            {"extra_egress": [{"cidr": "10.0.0.0/8", "ports": [0]}]},
            "network.extra_egress[0].ports",
            "1-65535",
        ),
        ({"extra_egress": [{"cidr": "10.0.0.0/8", "ports": []}]}, "network.extra_egress[0].ports", ""),
        ({"extra_egress": [{"cidr": "10.0.0.0/8", "port": 443}]}, "network.extra_egress[0].port", ""),
    ],
)
def test_bad_network_settings_name_the_field(network: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_stack_config(_local_values(**network))
    message = str(err.value)
    assert field in message and text in message


# --- egress limited to what `fetch` needs (issue 15 kind 6) ----------------------------------------------

EGRESS_NOT_OPEN = "egress-not-open-to-internet"
PROD_STACKS = [
    p for p in STACK_FILES if yaml.safe_load(p.read_text())["config"].get("inferstack:tier") == "prod"
]


def store_rule(allow: dict[str, Any]) -> dict[str, Any]:
    """The model server's egress rule on 443 (the model store's)."""
    (rule,) = [r for r in allow["spec"]["egress"] if {p["port"] for p in r["ports"]} == {443}]
    return rule


def egress_findings(objs: list[dict[str, Any]]) -> list[str]:
    (policy,) = [p for p in RULES.POLICIES if p.name == EGRESS_NOT_OPEN]
    return [m for _, m in policy.run([(f"kubernetes:{o['apiVersion']}:{o['kind']}", o) for o in objs])]


@pytest.mark.parametrize("path", PROD_STACKS, ids=lambda p: p.stem)
def test_prod_stacks_pass_the_egress_policy(path: Path) -> None:
    assert egress_findings(manifests(path)) == []


def test_prod_aws_pods_reach_s3_through_the_private_subnets_only() -> None:
    cfg = load_stack_file(ROOT / "stacks" / "Pulumi.prod-aws.yaml")
    assert cfg.aws is not None
    private = subnet_cidrs(cfg.aws.network.vpc_cidr, cfg.aws.network.availability_zones).private
    rule = store_rule(server_allow(manifests(ROOT / "stacks" / "Pulumi.prod-aws.yaml")))
    cidrs = [peer["ipBlock"]["cidr"] for peer in rule["to"]]
    assert cidrs == private and internet_exposure(cidrs) is None


def test_prod_gcp_pods_reach_storage_through_private_googleapis_only() -> None:
    allow = server_allow(manifests(ROOT / "stacks" / "Pulumi.prod-gcp.yaml"))
    assert store_rule(allow)["to"] == [{"ipBlock": {"cidr": "199.36.153.8/30"}}]
    # Workload Identity's metadata server stays reachable (the token path of the storage client).
    peers = {
        peer["ipBlock"]["cidr"] for r in allow["spec"]["egress"] for peer in r["to"] if "ipBlock" in peer
    }
    assert {cidr for cidr, _ in WORKLOAD_IDENTITY_EGRESS} <= peers


def test_onprem_hub_model_carries_its_acceptance_and_dev_stacks_keep_the_internet() -> None:
    onprem = server_allow(manifests(ROOT / "stacks" / "Pulumi.onprem.yaml"))
    assert onprem["metadata"]["annotations"] == {INTERNET_EGRESS_ANNOTATION: "network.allow_internet_egress"}
    dev = server_allow(manifests(ROOT / "stacks" / "Pulumi.dev-aws.yaml"))
    assert "annotations" not in dev["metadata"] and egress_findings([dev])  # advisory in dev, still reported


@pytest.mark.parametrize(
    ("to", "open_"),
    [
        ([{"ipBlock": {"cidr": "0.0.0.0/1"}}, {"ipBlock": {"cidr": "128.0.0.0/1"}}], True),
        (None, True),  # no `to`: every destination
        ([], True),
        ([{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["0.0.0.0/1"]}}], True),  # still half the internet
        ([{"ipBlock": {"cidr": "::/0"}}], True),
        ([{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["0.0.0.0/0"]}}], False),
        ([{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"ipBlock": {"cidr": "199.36.153.8/30"}}], False),
        ([{"namespaceSelector": {}}], False),  # pods of the cluster, not the internet
    ],
)
def test_internet_wide_egress_fails_the_policy(to: list[dict[str, Any]] | None, open_: bool) -> None:
    allow = server_allow(manifests(ROOT / "stacks" / "Pulumi.prod-aws.yaml"))
    rule = store_rule(allow)
    if to is None:
        del rule["to"]
    else:
        rule["to"] = to
    findings = egress_findings([allow])
    assert bool(findings) is open_
    assert all("network.model_store_cidrs" in f and "allow_internet_egress" in f for f in findings)
    allow["metadata"]["annotations"] = {INTERNET_EGRESS_ANNOTATION: "network.allow_internet_egress"}
    assert egress_findings([allow]) == []


def _values(stack: str, **sections: Any) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    values = {k.removeprefix("inferstack:"): v for k, v in document["config"].items()}
    for key, section in sections.items():
        values[key] = section if not isinstance(values.get(key), dict) else {**values[key], **section}
    return values


@pytest.mark.parametrize(
    ("stack", "sections", "field", "text"),
    [
        # A hub model in prod without a narrow range or an explicit acceptance.
        ("onprem", {"network": {"allow_internet_egress": False}}, "model.uri", "network.model_store_cidrs"),
        # A bucket the stack has no private path to (gs:// from AWS).
        ("prod-aws", {"model": {"uri": "gs://other-cloud/models/x"}}, "model.uri", "allow_internet_egress"),
        # The internet, however it is written, is no model-store range in prod.
        ("prod-aws", {"network": {"model_store_cidrs": ["0.0.0.0/1", "128.0.0.0/1"]}}, "network.model_store_cidrs", "allow_internet_egress"),
        ("prod-gcp", {"network": {"model_store_cidrs": ["0.0.0.0/0"]}}, "network.model_store_cidrs", "public IPv4"),
        ("prod-aws", {"network": {"model_store_cidrs": []}}, "network.model_store_cidrs", "empty"),
        ("prod-aws", {"network": {"model_store_cidrs": ["10.0.0.1/8"]}}, "network.model_store_cidrs", "CIDR"),
    ],
)  # fmt: skip
def test_prod_egress_the_schema_refuses_names_the_field_and_the_fix(
    stack: str, sections: dict[str, Any], field: str, text: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_stack_config(_values(stack, **sections))
    message = str(err.value)
    assert field in message and text in message


def test_model_store_cidrs_reach_the_policy_and_dev_may_keep_the_internet() -> None:
    cfg = parse_stack_config(_values("prod-aws", network={"model_store_cidrs": ["10.99.0.0/24"]}))
    assert model_store_cidrs(cfg, ["10.40.0.0/19"]) == ["10.99.0.0/24"]  # the stack file wins
    assert model_store_cidrs(parse_stack_config(_values("prod-aws")), ["10.40.0.0/19"]) == ["10.40.0.0/19"]
    dev = parse_stack_config(_values("dev-aws", network={"model_store_cidrs": ["0.0.0.0/0"]}))
    assert model_store_cidrs(dev, []) == ["0.0.0.0/0"]
    hub = parse_stack_config(_values("onprem"))
    assert model_store_cidrs(hub, []) == ["0.0.0.0/0"] and internet_egress_accepted(hub, ["0.0.0.0/0"])


# 221 separate /8s (every public first octet but 10 and 127): each narrower than the bound, together the
# whole IPv4 internet (the second security review's bypass through network.extra_egress).
EIGHTS = [f"{n}.0.0.0/8" for n in range(1, 224) if n not in (10, 127)]


def test_egress_rules_that_together_admit_the_internet_fail_the_policy() -> None:
    allow = server_allow(manifests(ROOT / "stacks" / "Pulumi.prod-aws.yaml"))
    rules = allow["spec"]["egress"]
    rules.extend(
        {"to": [{"ipBlock": {"cidr": c}}], "ports": [{"port": 443, "protocol": "TCP"}]} for c in EIGHTS
    )
    findings = egress_findings([allow])
    assert findings and "together admit the internet" in findings[0]


def test_extra_egress_that_together_admits_the_internet_is_refused_in_prod() -> None:
    extra = [{"cidr": c, "ports": [443]} for c in EIGHTS]
    for stack in ("prod-aws", "prod-gcp"):
        with pytest.raises(ConfigError) as err:
            parse_stack_config(_values(stack, network={"extra_egress": extra}))
        assert "network.extra_egress" in str(err.value) and "allow_internet_egress" in str(err.value)
    # One /8 is a network, not the internet; dev may list what it wants.
    parse_stack_config(_values("prod-aws", network={"extra_egress": extra[:1]}))
    parse_stack_config(_values("dev-aws", network={"extra_egress": extra}))


def test_accepting_internet_egress_covers_the_model_store_on_443_only() -> None:
    # network.allow_internet_egress (the onprem prod stack's hf:// model) is not a licence for every port.
    wide = [{"cidr": "0.0.0.0/0", "ports": [22, 25, 80]}]
    with pytest.raises(ConfigError) as err:
        parse_stack_config(_values("onprem", network={"extra_egress": wide}))
    assert "network.extra_egress" in str(err.value)
    allow = server_allow(manifests(ROOT / "stacks" / "Pulumi.onprem.yaml"))
    assert allow["metadata"]["annotations"][INTERNET_EGRESS_ANNOTATION] == "network.allow_internet_egress"
    assert egress_findings([allow]) == []  # the store's 443 rule: accepted
    allow["spec"]["egress"].append(
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 22, "protocol": "TCP"}]}
    )
    assert egress_findings([allow]), "another port to the internet is not what the stack accepted"
