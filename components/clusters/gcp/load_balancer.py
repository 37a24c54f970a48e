"""How the gateway's LoadBalancer Service asks GKE for a passthrough Network Load Balancer.

GKE's own service controller turns a Service of type LoadBalancer into a regional passthrough Network Load
Balancer (Envoy keeps terminating TLS; the balancer only forwards TCP). Two ways to ask for one exist:

- `spec.loadBalancerClass: networking.gke.io/l4-regional-internal | l4-regional-external`, which GKE
  documents for 1.33.1-gke.1779000 and later; the internal class also needs GKE subsetting enabled on the
  cluster (it is on by default from 1.36);
- the annotations `networking.gke.io/load-balancer-type: "Internal"` (internal) and
  `cloud.google.com/l4-rbs: "enabled"` (external, backend-service based), which work on every supported
  GKE version and need no cluster setting.

We use the annotations and no loadBalancerClass: they build the same balancers, and they do not tie the
stack to a GKE minor version or to subsetting being on (a cluster created without it would leave an
internal Service pending forever). A Service's loadBalancerClass is also immutable, so choosing it later
is a replacement either way. The backend-service based external balancer is what GKE recommends over the
older target-pool one, and what it creates by default from 1.37.

What the Service also carries, set by components/load_balancer.py's cloud_service_spec:
`spec.loadBalancerSourceRanges`, which GKE turns into the VPC firewall rules of the balancer (only those
sources reach the gateway; the firewall sees the client's own address, as the balancer is passthrough), and
`externalTrafficPolicy: Local`. The latter is what keeps the client address inside the cluster: with
GKE's default `Cluster`, a node that receives a packet for a pod elsewhere forwards it with the node's
address as source (GKE "LoadBalancer Service concepts", effect of externalTrafficPolicy: use Local "if you
need to preserve the original client IP address"), and Envoy's client-CIDR allow list would then match
node addresses: dev-gcp's 198.51.100.0/24 would answer clients 403, prod-gcp's 10.0.0.0/8 would admit
everyone through a node. With Local, GKE's health check (healthCheckNodePort) sends traffic only to nodes
running an Envoy pod, for both the internal and the backend-service based external balancer.
"""

from __future__ import annotations

from components.choices import GcpLoadBalancerScheme

#: Ask GKE for an internal passthrough Network Load Balancer (an address from the cluster's subnet).
INTERNAL_ANNOTATION = {"networking.gke.io/load-balancer-type": "Internal"}
#: Ask GKE for the backend-service based external passthrough Network Load Balancer.
EXTERNAL_ANNOTATION = {"cloud.google.com/l4-rbs": "enabled"}
#: Let clients in other regions of the VPC (and networks connected to it) reach an internal balancer;
#: without it only clients in the balancer's region can.
GLOBAL_ACCESS_ANNOTATION = {"networking.gke.io/internal-load-balancer-allow-global-access": "true"}


def gke_service_exposure(
    scheme: GcpLoadBalancerScheme, allow_global_access: bool = False
) -> tuple[dict[str, str], str | None]:
    """(Service annotations, loadBalancerClass) for the gateway's LoadBalancer Service on GKE.

    The class is always None (see the module docstring). `allow_global_access` is for internal balancers
    only; asking for it on an external one is a mistake and raises ValueError.
    """
    if not isinstance(scheme, GcpLoadBalancerScheme):
        raise ValueError(
            f"scheme: {scheme!r} is not one of {', '.join(s.value for s in GcpLoadBalancerScheme)}"
        )
    if scheme is GcpLoadBalancerScheme.INTERNAL:
        annotations = dict(INTERNAL_ANNOTATION)
        if allow_global_access:
            annotations.update(GLOBAL_ACCESS_ANNOTATION)
        return annotations, None
    if allow_global_access:
        raise ValueError(
            "allow_global_access: only internal load balancers have regional access to widen; an external "
            "one is reachable from anywhere its source ranges allow. Drop allow_global_access or use internal"
        )
    return dict(EXTERNAL_ANNOTATION), None
