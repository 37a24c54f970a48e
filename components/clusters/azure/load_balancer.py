"""How the gateway's LoadBalancer Service asks AKS for an Azure Standard Load Balancer.

AKS's cloud controller (cloud-provider-azure, the release of the cluster's Kubernetes minor: v1.34.x for
our pinned 1.34) turns a Service of type LoadBalancer into a frontend and rules on the cluster's Standard
Load Balancer: the public one (`kubernetes`) by default, the internal one (`kubernetes-internal`) when
the Service carries `service.beta.kubernetes.io/azure-load-balancer-internal: "true"`, optionally with
an address from a named subnet of the cluster's VNet
(`service.beta.kubernetes.io/azure-load-balancer-internal-subnet`). Sources: cloud-provider-azure docs,
"Azure LoadBalancer" (kubernetes-sigs.github.io/cloud-provider-azure/topics/loadbalancer), the
LoadBalancer annotations table; AKS docs "Use an internal load balancer with AKS". There is no
loadBalancerClass to ask for: cloud-provider-azure serves Services without one (a class would hand the
Service to another controller and leave it pending), so the class is always None.

Envoy terminates TLS; the balancer is pass-through L4 (Azure Load Balancer forwards TCP and does not
rewrite the source address). What the Service also carries, set by components/load_balancer.py's
cloud_service_spec, and what it means on AKS:

- `externalTrafficPolicy: Local`. With `Cluster`, a node that receives a flow for an Envoy pod on
  another node forwards it with the node's own address as source (SNAT; Kubernetes "Create an External
  Load Balancer", "Preserving the client source IP"; AKS docs "Use a public Standard Load Balancer in
  AKS": keep the client IP with externalTrafficPolicy Local), so Envoy's client-CIDR allow list would see
  node addresses. With `Local` the client address reaches Envoy, and cloud-provider-azure points the
  balancer's health probe at the Service's healthCheckNodePort over HTTP, path `/healthz` (kube-proxy's,
  or Cilium's replacement on an Azure CNI powered by Cilium cluster), so only nodes running an Envoy pod
  get traffic. The docs' probe annotations (`azure-load-balancer-health-probe-protocol`,
  `...-request-path`) apply to Cluster-policy Services only and are ignored for Local, so we set none: a
  path there would claim a probe the balancer does not run.
- `allocateLoadBalancerNodePorts: false`. cloud-provider-azure's default rules use floating IP (the
  packet arrives at the node addressed to the frontend IP and the Service port, which kube-proxy / Cilium
  match), so the data path needs no node port; the Local-policy probe uses healthCheckNodePort, which is
  still allocated. A Cluster-policy TCP probe would target the missing node port: one more reason the
  policy stays Local.
- `loadBalancerSourceRanges` (when allowed_source_cidrs is not open): cloud-provider-azure writes them
  as allow rules in the cluster's network security group, which sees the client's own address (the
  balancer does not SNAT inbound flows). Internal balancers get the same rules.
"""

from __future__ import annotations

import re

#: Ask cloud-provider-azure for a frontend on the cluster's internal Standard Load Balancer (an address
#: from the VNet) instead of a public IP.
INTERNAL_ANNOTATION = "service.beta.kubernetes.io/azure-load-balancer-internal"
#: The VNet subnet the internal frontend's address comes from (default: the nodes' subnet).
INTERNAL_SUBNET_ANNOTATION = "service.beta.kubernetes.io/azure-load-balancer-internal-subnet"
#: Azure subnet names: 1-80 characters, letters, digits, underscores, periods and hyphens, starting with
#: a letter or digit and ending with a letter, digit or underscore (Azure naming rules,
#: Microsoft.Network/virtualNetworks/subnets).
_SUBNET_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")


def aks_service_exposure(internal: bool, internal_subnet: str | None = None) -> tuple[dict[str, str], None]:
    """(Service annotations, loadBalancerClass) for the gateway's LoadBalancer Service on AKS.

    `internal`: a frontend on the cluster's internal Standard Load Balancer (True) or a public IP on its
    public one (False). `internal_subnet`: the subnet (name, not id) an internal frontend takes its
    address from; only for internal balancers. The class is always None (see the module docstring).
    Raises ValueError naming the argument for a subnet on a public balancer or a malformed subnet name.
    """
    if not isinstance(internal, bool):
        raise ValueError(f"internal: {internal!r} must be true (internal balancer) or false (public)")
    if not internal:
        if internal_subnet is not None:
            raise ValueError(
                "internal_subnet: only an internal load balancer takes its address from a subnet; a public "
                "one gets a public IP. Drop internal_subnet or set internal"
            )
        # An explicit "false" rather than no annotation: the public balancer is what the stack asked for,
        # and a later edit of the annotation shows up in a diff as a change of value.
        return {INTERNAL_ANNOTATION: "false"}, None
    annotations = {INTERNAL_ANNOTATION: "true"}
    if internal_subnet is not None:
        if not _SUBNET_NAME.match(internal_subnet):
            raise ValueError(
                f"internal_subnet: {internal_subnet!r} is not an Azure subnet name (1-80 letters, digits, "
                "'_', '.', '-'; give the name, not the resource id)"
            )
        annotations[INTERNAL_SUBNET_ANNOTATION] = internal_subnet
    return annotations, None
