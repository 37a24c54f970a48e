"""Where the model server's pods may connect to fetch the model: the stack-level rule.

A NetworkPolicy selects pods, not containers, so what `fetch` may reach the engine may reach too. A prod
stack therefore limits that egress to the model store's own addresses, per platform:

- aws + s3://: the VPC gets an S3 interface endpoint with private DNS in its private subnets
  (components/clusters/aws/network.py); egress = those subnets on 443. Credentials keep working: EKS Pod
  Identity hands them out from the node's agent (169.254.170.23:80, stacks/aws.py POD_IDENTITY_AGENT),
  which itself calls the EKS Auth API from the node's network, so the pod never talks to STS;
- gcp + gs://: a private googleapis.com zone sends Cloud Storage to private.googleapis.com
  (components/clusters/gcp/network.py); egress = 199.36.153.8/30 on 443. Workload Identity's tokens come
  from the GKE metadata server on the node (components/clusters/gcp/workload_identity.py
  WORKLOAD_IDENTITY_EGRESS), which is allowed apart;
- azure + az://: a private endpoint of the storage account in the VNet's endpoints subnet, with the
  privatelink.blob.core.windows.net zone linked to the VNet (components/clusters/azure/network.py); egress
  = that subnet on 443. Workload Identity's token exchange goes to Entra ID itself (no node-local broker on
  AKS), allowed apart on Entra ID's published login ranges (stacks/azure.py ENTRA_ID_LOGIN_EGRESS);
- file://: a mounted claim, no egress at all;
- hf://, or a bucket on another cloud, or on-prem s3:// / gs://: no narrow range exists (the Hub and its
  CDN, or a store the stack does not know). A prod stack names the store's network in
  `network.model_store_cidrs` (a mirror, a proxy, an on-site MinIO), or accepts internet egress on 443
  in so many words with `network.allow_internet_egress: true`; otherwise the schema refuses it. Refusing
  hf:// outright would leave on-prem sites without a bucket no way to serve a hub model; an explicit,
  reviewed field keeps the choice visible in the stack file and in the policy check (the NetworkPolicy
  carries INTERNET_EGRESS_ANNOTATION, which policy/rules.py `egress-not-open-to-internet` honours).

Dev stacks keep the internet on 443 unless `network.model_store_cidrs` says otherwise: the interface
endpoint costs an hourly fee per zone, and `egress-not-open-to-internet` is advisory in dev.
"""

from __future__ import annotations

from components.address_space import internet_exposure
from stacks.config import StackConfig, register_stack_rules
from stacks.rules_azure import store_private_endpoint

#: What "the internet on 443" is written as where no narrower range is known or wanted.
INTERNET = ("0.0.0.0/0",)
#: The stack field that accepts internet egress; the model server's allow NetworkPolicy then carries
#: components/model_server.py INTERNET_EGRESS_ANNOTATION with this value (policy/rules.py reads it).
ACCEPTING_FIELD = "network.allow_internet_egress"

#: (platform, model uri scheme) -> the private path a prod stack builds to that store.
PRIVATE_PATHS = {
    ("aws", "s3"): "an S3 interface endpoint in the private subnets",
    ("gcp", "gs"): "Private Google Access through private.googleapis.com (199.36.153.8/30)",
    ("azure", "az"): "a private endpoint of the storage account in azure.network.endpoints_subnet_cidr",
}


def builds_private_path(cfg: StackConfig) -> bool:
    """True where the stack makes the private path to its model store: a store it knows, in prod (on
    Azure: where azure.model_store.private_endpoint, prod's default, asks for the private endpoint)."""
    if (cfg.platform.value, cfg.model.scheme) not in PRIVATE_PATHS:
        return False
    if cfg.azure is not None:
        return store_private_endpoint(cfg)
    return cfg.tier.value == "prod"


def model_store_egress_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """(field path, message with the fix) for each way the stack's model-store egress breaks the rule."""
    problems = _all_egress_problems(cfg)
    net, scheme, prod = cfg.network, cfg.model.scheme, cfg.tier.value == "prod"
    if scheme == "file":
        for field, set_ in (
            ("network.model_store_cidrs", net.model_store_cidrs is not None),
            (ACCEPTING_FIELD, net.allow_internet_egress),
        ):
            if set_:
                problems.append(
                    (field, "a file:// model is a mounted claim and `fetch` connects nowhere: remove it")
                )
        return problems
    if net.model_store_cidrs is not None:
        if not net.model_store_cidrs:
            problems.append(
                (
                    "network.model_store_cidrs",
                    "an empty list leaves `fetch` no way to the model store: list its network, or remove "
                    "the field for the platform's default",
                )
            )
        exposure = internet_exposure(net.model_store_cidrs)
        if prod and exposure and not net.allow_internet_egress:
            problems.append(
                (
                    "network.model_store_cidrs",
                    f"the list {exposure}: a prod model server may reach the model store only (the engine "
                    "shares the pod's network); list the store's, mirror's or proxy's own network, or accept "
                    f"internet egress on 443 explicitly with {ACCEPTING_FIELD}: true",
                )
            )
        return problems
    if prod and not builds_private_path(cfg) and not net.allow_internet_egress:
        where = {"aws": "s3://", "gcp": "gs://", "azure": "az://"}.get(cfg.platform.value)
        mirror = f"copy the model to a {where} bucket (the stack reaches it privately), " if where else ""
        problems.append(
            (
                "model.uri",
                f"a prod stack limits the model server's egress to the model store, and a {scheme}:// model "
                f"on {cfg.platform.value} has no private address range (a NetworkPolicy cannot name DNS "
                f"names): {mirror}serve it from a file:// claim, list your mirror's or proxy's network in "
                f"network.model_store_cidrs, or accept internet egress on 443 with {ACCEPTING_FIELD}: true",
            )
        )
    return problems


def _all_egress_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """A prod model server's ipBlock egress measured as one list: `network.extra_egress` and `dns_cidrs`
    land in the same NetworkPolicy as the model-store rule, and a pod may use every rule of it, so 221
    separate /8s are the internet as surely as one 0.0.0.0/0 (each alone passes the /8 bound)."""
    net = cfg.network
    if cfg.tier.value != "prod":
        return []
    # allow_internet_egress accepts the internet for the model store on 443, nothing more: then the other
    # rules are measured on their own.
    store = [] if net.allow_internet_egress else list(net.model_store_cidrs or [])
    cidrs = [*store, *(r.cidr for r in net.extra_egress), *(net.dns_cidrs or [])]
    exposure = internet_exposure(cidrs)
    if not exposure or internet_exposure(store):
        return []  # none, or model_store_cidrs alone is already refused below, with its own message
    return [
        (
            "network.extra_egress",
            f"together with network.model_store_cidrs and network.dns_cidrs, the list {exposure}: every "
            "egress rule of the model server's NetworkPolicy serves the whole pod, the engine included, so "
            "the rules count as one allow-list; list only the networks the pods need "
            f"({ACCEPTING_FIELD} accepts the internet for the model store on 443 only)",
        )
    ]


def model_store_cidrs(cfg: StackConfig, private_cidrs: list[str]) -> list[str]:
    """The model server's model-store egress: `network.model_store_cidrs` when set, else the private path
    the platform made (`private_cidrs`, e.g. the S3 endpoint's subnets), else the internet on 443 where
    the schema allows it (dev, or `network.allow_internet_egress`). [] for file:// models.

    [] too where none applies: fail closed (`fetch` cannot connect) rather than open. The schema
    (`model_store_egress_problems`) refuses such a stack file first, naming the fix; only a composition
    that promised a private path and made none lands here. Not an exception: raised inside a running
    Pulumi program after resources were registered, it leaves the offline plan waiting forever."""
    if cfg.model.scheme == "file":
        return []
    if cfg.network.model_store_cidrs is not None:
        return list(cfg.network.model_store_cidrs)
    if private_cidrs:
        return list(private_cidrs)
    if cfg.tier.value != "prod" or cfg.network.allow_internet_egress:
        return list(INTERNET)
    return []


def internet_egress_accepted(cfg: StackConfig, cidrs: list[str]) -> bool:
    """True when a prod stack's model-store egress admits the internet because the stack file says so."""
    return cfg.tier.value == "prod" and cfg.network.allow_internet_egress and bool(internet_exposure(cidrs))


# A rule of every stack: the core schema runs it (stacks/config.py), this module registers it (the core
# never imports it back); stacks/__init__.py imports this module.
register_stack_rules(model_store_egress_problems)
