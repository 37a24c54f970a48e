"""metrics-server: the resource metrics API (`metrics.k8s.io`) that KEDA's `cpu` trigger reads.

Why the stack installs it: KEDA's cpu scaler docs (keda.sh/docs/2.20/scalers/cpu, "Prerequisites", the
same text since 2.0) say "KEDA uses standard cpu and memory metrics from the Kubernetes Metrics Server,
which is not installed by default on certain Kubernetes deployments such as EKS on AWS"; without it the
HPA KEDA makes reports `FailedGetResourceMetric` and never scales. Who runs one already:

- GKE: yes, GKE deploys metrics-server in kube-system on every cluster (it owns the
  `v1beta1.metrics.k8s.io` APIService; a second install would take it over).
- EKS: no ("it isn't deployed by default in Amazon EKS clusters", EKS user guide, "View resource usage
  with the Kubernetes Metrics Server"; an EKS community add-on `metrics-server` exists, not enabled here).
- k3s / k3d: yes, bundled (`--disable=metrics-server` turns it off). kind, kubeadm: no. kubespray: only
  with `metrics_server_enabled: true`. So on-prem the stack installs it unless told the cluster has one.

The chart: kubernetes-sigs/metrics-server, charts/metrics-server at tag metrics-server-helm-chart-3.13.1
(2026-06-11; appVersion 0.8.1), the newest chart tag of the repository snapshot of 2026-08-04. Its
values.yaml already runs the container as uid 1000, non-root, read-only root, no privilege escalation,
ALL capabilities dropped, seccomp RuntimeDefault; `podSecurityContext` is empty there, so the pod-level
settings below make the pod meet Pod Security "restricted" on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from components._common import METRICS_SERVER, child, helm_release

#: Where every distribution that bundles it runs it, and where `kubectl top` users look for it.
METRICS_SERVER_NAMESPACE = "kube-system"
#: metrics-server's flag to accept kubelet serving certificates it cannot verify (README, "Requirements":
#: kubelet certificates must be signed by the cluster CA, "or disable certificate validation by passing
#: --kubelet-insecure-tls"). kind and kubeadm clusters without `serverTLSBootstrap` serve self-signed
#: kubelet certificates, so metrics-server cannot scrape them without it.
KUBELET_INSECURE_TLS = "--kubelet-insecure-tls"


@dataclass(frozen=True)
class MetricsServerArgs:
    kubelet_insecure_tls: bool = False  # kind / kubeadm without serverTLSBootstrap: self-signed kubelet certs
    extra_values: dict[str, Any] = field(default_factory=dict)  # chart values we do not type, merged last


def metrics_server_values(args: MetricsServerArgs) -> dict[str, Any]:
    """Chart values: the pod-level half of Pod Security "restricted" (the chart sets the container half),
    and `--kubelet-insecure-tls` only when asked for."""
    values: dict[str, Any] = {
        "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    if args.kubelet_insecure_tls:
        # `args` is appended to the chart's defaultArgs (templates/deployment.yaml), which stay as they are.
        values["args"] = [KUBELET_INSECURE_TLS]
    return values


class MetricsServer(pulumi.ComponentResource):
    """The pinned metrics-server chart in kube-system, serving `metrics.k8s.io` to the HPA that KEDA owns."""

    release_name: pulumi.Output[str | None]

    def __init__(
        self, name: str, args: MetricsServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("inferstack:metrics:MetricsServer", name, None, opts)
        self.release = helm_release(
            f"{name}-metrics-server",
            METRICS_SERVER,
            namespace=METRICS_SERVER_NAMESPACE,
            values=metrics_server_values(args),
            extra_values=args.extra_values,
            opts=child(self),
        )
        self.release_name = self.release.name
        self.register_outputs({"release_name": self.release_name})
