"""The cold-start budget: how long a replica woken from zero may take before it serves, and the
scale-to-zero cooldown that follows from it.

Why the cooldown must cover the whole cold start
-----------------------------------------------
KEDA (v2.20.2, pkg/scaling/executor/scale_scaledobjects.go, `RequestScale` and `scaleToZeroOrIdle`)
scales a ScaledObject with minReplicaCount 0 to zero when no trigger is active and
`status.lastActiveTime + cooldownPeriod` has passed. lastActiveTime is set when KEDA scales from zero
and on every poll while a trigger is active; it does not look at pod readiness. While a replica is
still loading, vLLM exports no `vllm:num_requests_waiting` series, and the queue trigger's query answers 0
while no endpoint behind the route is ready (components/autoscaler.py), so that trigger is inactive; only the gateway's wake-up trigger (a rate over WAKE_WINDOW) keeps
lastActiveTime fresh, and only while clients keep retrying. One request followed by silence therefore
leaves the replica `WAKE_WINDOW + cooldownPeriod` to become ready before KEDA removes it again, even if
it is half loaded. cooldownPeriod is used for nothing else: the HPA KEDA creates has
minReplicas = max(minReplicaCount, 1), so scaling between 1 and N is the HPA's (its scale-down
stabilization window), and the HPA never removes the last replica.

So the cooldown of a stack that scales to zero must be at least the time a replica may take from
"KEDA set replicas to 1" to "ready": a GPU node (where the platform provisions one), the image pull,
the weight download by the `fetch` init container (the model cache is an emptyDir, so a new pod
downloads every byte; the init container runs before the startup probe's clock starts), and the startup
probe's budget.
"""

from __future__ import annotations

import math

#: Seconds a GPU node may take from the autoscaler's request to a schedulable `nvidia.com/gpu`
#: (instance launch, boot, NVIDIA driver and device plugin). GKE's cluster autoscaler provisions GPU
#: nodes "in 3-8 minutes" (easecloud.io, "Auto-Scale GPU Workloads on GKE Clusters"); an AKS report of
#: A100 nodes sees 5-10 minutes end to end (learn.microsoft.com/en-us/answers/a/12767836). We take the
#: upper end of GKE's range. Only where the stack provisions nodes (aws, gcp); on-prem nodes exist.
NODE_PROVISIONING_SECONDS = 480

#: Seconds the serving image's pull may take on a fresh node. ai-on-gke's startup-latency guide measured
#: a 5.4 GB image at 191 s without image streaming (about 35 s/GB); vLLM's OpenAI image is about 10 GB
#: compressed, so about 360 s. A warm node (IfNotPresent) skips it, but the node woken from zero is new.
IMAGE_PULL_SECONDS = 360


#: Bytes per second the `fetch` init container is budgeted to download weights at. Amazon S3's
#: performance guidance ("Performance design patterns for Amazon S3": one concurrent request per
#: 85-90 MB/s of throughput wanted) puts one connection near 90 MB/s; `fetch` runs 8 ranged downloads in
#: parallel (model_image/fetch.py DEFAULT_WORKERS), so an in-region bucket is usually faster, but a hub
#: download through NAT may not be. 100 MB/s: Llama-3.1-8B (16 GB in bf16) in 160 s.
WEIGHT_DOWNLOAD_BYTES_PER_SECOND = 100 * 10**6


def weight_download_seconds(weight_bytes: float) -> int:
    """Seconds budgeted to download `weight_bytes` (the checkpoint's size) into a fresh model cache."""
    return math.ceil(weight_bytes / WEIGHT_DOWNLOAD_BYTES_PER_SECOND)


def minimum_cooldown_seconds(
    startup_timeout_seconds: int, provisions_nodes: bool, weight_bytes: float = 0
) -> int:
    """The shortest scale-to-zero cooldown (seconds) that lets a woken replica finish its cold start.

    startup_timeout_seconds: the startup probe's budget (serving.startup_timeout_seconds).
    provisions_nodes: True where GPU nodes are created on demand (Karpenter, GKE autoscaler).
    weight_bytes: the checkpoint's size in bytes, downloaded by `fetch` before the engine starts.
    """
    return (
        startup_timeout_seconds
        + IMAGE_PULL_SECONDS
        + (NODE_PROVISIONING_SECONDS if provisions_nodes else 0)
        + weight_download_seconds(weight_bytes)
    )


# --- Rollouts ---------------------------------------------------------------------------------------
# A rolling update of the model server replaces its replicas one after another (maxSurge 1 with
# maxUnavailable 0, or maxSurge 0 with maxUnavailable 1: stacks/rollout.py), and each new pod is a cold
# start: it may wait for a GPU node, pulls the image onto it, downloads the weights and loads them.
#
# Kubernetes' deadline is per step, not per rollout. The Deployment controller (kubernetes
# pkg/controller/deployment/progress.go, `syncRolloutStatus`) refreshes the Progressing condition's
# lastUpdateTime whenever `util.DeploymentProgressing` sees progress (pkg/controller/deployment/util/
# deployment_util.go: more updated replicas, fewer old replicas, more ready or more available replicas),
# and `util.DeploymentTimedOut` marks the rollout ProgressDeadlineExceeded only once that time is
# progressDeadlineSeconds old. So the longest quiet stretch is one new pod from creation to ready: one
# cold start. Left unset the deadline is 600 s, which a GPU cold start (1200 s and more) overruns;
# `kubectl rollout status`, Argo CD and Flux then report the rollout failed while the cluster would finish.
#
# Pulumi's deadline is per rollout. pulumi-kubernetes (provider/pkg/await/deployment.go, `Await`) waits
# until the new ReplicaSet is available (Progressing with reason NewReplicaSetAvailable, every replica of
# the new ReplicaSet ready) and fails with a timeout error after the resource's customTimeouts create/update
# (DefaultDeploymentTimeoutMins = 10 without them). So `pulumi up` must wait for every replica it replaces,
# one cold start each.

#: Seconds added to both deadlines for what the cold-start budget does not itemize: the scheduler and
#: Karpenter's batching of pending pods, the kubelet creating the sandbox and volumes, the serving container
#: starting after `fetch`, the readiness probe's first pass after the startup probe, and the Deployment
#: controller's and Pulumi's watches catching up.
ROLLOUT_MARGIN_SECONDS = 300


def progress_deadline_seconds(cold_start_seconds: int) -> int:
    """A Deployment's spec.progressDeadlineSeconds (seconds): one cold start plus ROLLOUT_MARGIN_SECONDS.

    cold_start_seconds: one replica's cold start (minimum_cooldown_seconds' sum). Kubernetes restarts the
    deadline whenever a new pod is created or becomes ready, so it covers one pod, not the rollout.
    """
    return cold_start_seconds + ROLLOUT_MARGIN_SECONDS


def rollout_timeout_seconds(cold_start_seconds: int, replicas: int) -> int:
    """Seconds `pulumi up` may wait for the Deployment's create or update (its customTimeouts).

    cold_start_seconds: one replica's cold start; replicas: the most replicas a rollout replaces
    (autoscaling.max_replicas, or serving.replicas without autoscaling), one after another; at least one.
    """
    return max(replicas, 1) * cold_start_seconds + ROLLOUT_MARGIN_SECONDS
