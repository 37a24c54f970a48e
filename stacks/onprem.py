"""Composition for a cluster that already exists: on-prem GPU clusters and laptop clusters.

The cluster is reached through a kubeconfig; GPU nodes are already there, so the GPU node pool only
installs what makes them schedulable. Everything else is the shared workload (`stacks/workload.py`).
"""

from __future__ import annotations

import pulumi

from components._common import cluster_providers
from components.gpu_node_pool import GpuNodePool, GpuNodePoolArgs, Taint
from stacks.config import StackConfig
from stacks.operations import gpu_operator_values
from stacks.workload import NAME, ClusterContext, GatewayExposure, deploy_workload


def deploy_onprem(cfg: StackConfig) -> None:
    provider, crds = cluster_providers(
        context=cfg.cluster.kube_context,
        kubeconfig=cfg.cluster.kubeconfig,
        # Every object is created by this program; a stray default namespace is a mistake, not a default.
        namespace=cfg.cluster.namespace,
        # GitOps: the provider writes manifests for Argo CD / Flux instead of talking to a cluster.
        render_yaml_to_directory=cfg.cluster.render_yaml_to_directory,
    )
    pool = None
    if cfg.uses_gpu:
        pool = GpuNodePool(
            NAME,
            GpuNodePoolArgs(
                driver_stack=cfg.gpu_pool.driver_stack,
                node_selector=cfg.gpu_pool.node_selector,
                taints=[Taint(key=t.key, value=t.value, effect=t.effect) for t in cfg.gpu_pool.taints],
                # With the GPU operator, its own DCGM exporter is the GPU telemetry (stacks/operations.py).
                values=gpu_operator_values(cfg),
            ),
            opts=pulumi.ResourceOptions(provider=provider),
        )
    lb = cfg.gateway.load_balancer
    deploy_workload(
        cfg,
        ClusterContext(
            provider=provider,
            crd_provider=crds,
            placement=pool,
            exposure=GatewayExposure(
                kind=lb.kind,
                metallb_pool=lb.metallb_pool,
                address=lb.address,
                http_node_port=lb.http_node_port,
                https_node_port=lb.https_node_port,
            ),
        ),
    )
