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

import dataclasses
import math

from model_image.settings import LoadMode

__all__ = ["LoadMode"]  # re-exported: the stack schema and the reports read it from here


@dataclasses.dataclass(frozen=True)
class BudgetItem:
    """One step of a cold start: its name, its seconds, and the assumption the seconds rest on."""

    name: str
    seconds: int
    assumption: str


@dataclasses.dataclass(frozen=True)
class ColdStartBudget:
    """One replica's cold start, item by item, from "the autoscaler asked for a replica" to "ready".

    items: node provisioning, image pull, weight fetch, engine load, warm-up, and the startup probe's
    allowance (what serving.startup_timeout_seconds grants beyond the engine's estimate). The first five
    add up to `expected_seconds`, the time to first token we expect; `total_seconds` adds the allowance,
    because the kubelet waits for a loading engine that long, so KEDA's cooldown, the gateway's hold and the
    rollout deadlines must wait as long (they are all "one cold start").
    """

    load_mode: LoadMode
    items: tuple[BudgetItem, ...]

    @property
    def total_seconds(self) -> int:
        """Every item's seconds added up: the stack's "one cold start" (cold_start_seconds)."""
        return sum(item.seconds for item in self.items)

    @property
    def expected_seconds(self) -> int:
        """The expected time from zero to first token: every item but the startup probe's allowance."""
        return sum(item.seconds for item in self.items if item.name != STARTUP_ALLOWANCE)

    def item(self, name: str) -> BudgetItem:
        """The item called `name` (KeyError if there is none)."""
        for item in self.items:
            if item.name == name:
                return item
        raise KeyError(name)

    def terms(self) -> str:
        """ "node provisioning 480 + image pull 354 + ...": the sum as one line, for messages."""
        return " + ".join(f"{item.name} {item.seconds}" for item in self.items if item.seconds)


NODE_PROVISIONING = "node provisioning"
IMAGE_PULL = "image pull"
WEIGHT_FETCH = "weight fetch"
ENGINE_LOAD = "engine load"
WARM_UP = "warm-up"
STARTUP_ALLOWANCE = "startup probe allowance"


# --- node provisioning: per platform and capacity type ------------------------------------------------

#: Seconds for a new GPU node on GKE, from the cluster autoscaler's scale-up to a schedulable
#: `nvidia.com/gpu` (VM create, boot, GKE's driver installer and device plugin). GKE's cluster autoscaler
#: provisions GPU nodes "in 3-8 minutes" (easecloud.io, "Auto-Scale GPU Workloads on GKE Clusters"); an AKS
#: report of A100 nodes sees 5-10 minutes end to end (learn.microsoft.com/en-us/answers/a/12767836). We take
#: the upper end of GKE's range.
GKE_NODE_SECONDS = 480

#: Seconds for a new GPU node on AKS, from the cluster autoscaler's scale-up of the GPU agent pool to a
#: schedulable `nvidia.com/gpu` (VM create, boot, AKS's NVIDIA driver install on the node image, the device
#: plugin). The AKS report above sees 5-10 minutes for A100 nodes end to end; we take the upper end, as for GKE.
AKS_NODE_SECONDS = 600

#: Seconds for a new GPU node on EKS through Karpenter (EC2 CreateFleet, boot of the EKS-optimized NVIDIA
#: AMI, which ships the driver and the device plugin, kubelet registration). A report of Karpenter-launched
#: nodes measures "~5 minutes" from pending pod to running pod including the node (news.ycombinator.com
#: item 44053826); Karpenter binds pods to the NodeClaim as soon as it launches, so there is no separate
#: autoscaler scan as with GKE. 300 s, an assumption resting on that one report.
EKS_NODE_SECONDS = 300

#: Seconds added for spot capacity. A spot launch is the same API call as on-demand, but GPU spot pools run
#: dry: Karpenter (karpenter-provider-aws, pkg/cache UnavailableOfferingsTTL, 3 minutes) marks an offering
#: that answered InsufficientInstanceCapacity unavailable and launches again with the next one; GKE retries
#: the spot node pool's scale-up. One failed attempt and a retry: 180 s, an assumption.
SPOT_EXTRA_SECONDS = 180

#: The generic figure older callers read (inferstack/validation/capacity.py): GKE's on-demand node, the
#: longest on-demand figure above.
NODE_PROVISIONING_SECONDS = GKE_NODE_SECONDS


def node_provisioning(platform: str, spot: bool, provisions_nodes: bool = True) -> BudgetItem:
    """The node item for a platform (`aws`, `gcp`, `azure`, `onprem`) and capacity type (spot or on-demand).

    provisions_nodes: False where the node already exists (on-prem fixed pools): 0 s.
    """
    if platform == "onprem" or not provisions_nodes:
        return BudgetItem(
            NODE_PROVISIONING, 0, "on-prem: the GPU nodes already exist (the stack provisions none)"
        )
    base, who = {
        "aws": (
            EKS_NODE_SECONDS,
            "EKS with Karpenter: EC2 launch, NVIDIA AMI boot, kubelet registration (~5 min "
            "reported for a Karpenter node)",
        ),
        "azure": (
            AKS_NODE_SECONDS,
            "AKS cluster autoscaler: GPU VM create, boot, AKS's driver install (5-10 min reported for "
            "A100 nodes; upper end taken)",
        ),
    }.get(platform, (GKE_NODE_SECONDS, "GKE cluster autoscaler: GPU nodes in 3-8 min (upper end taken)"))
    if not spot:
        return BudgetItem(NODE_PROVISIONING, base, who + ", on-demand")
    return BudgetItem(
        NODE_PROVISIONING,
        base + SPOT_EXTRA_SECONDS,
        who + f", spot: +{SPOT_EXTRA_SECONDS} s for one launch refused for lack of spot capacity and a retry",
    )


# --- image pull: image size / bandwidth --------------------------------------------------------------

#: Bytes per second a fresh node pulls (and unpacks) an image at. ai-on-gke's startup-latency guide
#: measured a 5.4 GB image at 191 s without image streaming: 28 MB/s, unpacking included.
IMAGE_PULL_BYTES_PER_SECOND = 5.4e9 / 191

#: The GPU image's compressed size: vLLM's OpenAI image (vllm/vllm-openai, CUDA and PyTorch inside) is
#: about 10 GB compressed on Docker Hub; our launcher layer adds a few MB (model_image/Dockerfile).
VLLM_IMAGE_BYTES = 10e9

#: The CPU image's compressed size (model_image/Dockerfile.cpu: Debian slim, CPU-only PyTorch and
#: transformers). An assumption, not measured here: `docker manifest inspect` / `crane manifest` on the
#: built image gives the real figure.
CPU_IMAGE_BYTES = 1.5e9


def image_pull(engine: str) -> BudgetItem:
    """The image item for an engine (`vllm` or `transformers`): image size / IMAGE_PULL_BYTES_PER_SECOND."""
    size, what = (VLLM_IMAGE_BYTES, "vLLM image") if engine == "vllm" else (CPU_IMAGE_BYTES, "CPU image")
    return BudgetItem(
        IMAGE_PULL,
        math.ceil(size / IMAGE_PULL_BYTES_PER_SECOND),
        f"{what} {size / 1e9:g} GB compressed at {IMAGE_PULL_BYTES_PER_SECOND / 1e6:.0f} MB/s (ai-on-gke: "
        "5.4 GB in 191 s on a fresh node); a node that already holds the image skips it",
    )


#: Seconds the GPU image's pull takes (the generic figure older callers read).
IMAGE_PULL_SECONDS = math.ceil(VLLM_IMAGE_BYTES / IMAGE_PULL_BYTES_PER_SECOND)


# --- weight fetch: model size / the store's bandwidth ------------------------------------------------

#: Bytes per second the `fetch` init container is budgeted to download weights at, per store.
#: s3: Amazon S3's performance guidance ("Performance design patterns for Amazon S3": one concurrent
#: request per 85-90 MB/s of throughput wanted) puts one connection near 90 MB/s; `fetch` runs 8 ranged
#: downloads in parallel (model_image/fetch.py DEFAULT_WORKERS), but hashing every byte and the node's disk
#: bound it: 100 MB/s (Llama-3.1-8B, 16 GB in bf16, in 160 s).
#: gs: Cloud Storage documents no per-connection figure; the same 100 MB/s, an assumption.
#: az: Azure Blob Storage's scalability targets are per account (Gbps of egress), not per connection; the
#: same 100 MB/s, an assumption.
#: hf: the Hugging Face hub over the internet through a NAT gateway: 50 MB/s, an assumption (the hub's CDN
#: serves more; the NAT, the hub's rate limits and the path do not promise it).
#: file: an on-prem PersistentVolumeClaim (NFS or a network block device) read by `fetch`: 100 MB/s, an
#: assumption (a 1 Gbit/s NFS link gives about 110 MB/s).
STORE_BYTES_PER_SECOND: dict[str, float] = {"s3": 100e6, "gs": 100e6, "az": 100e6, "hf": 50e6, "file": 100e6}
_STORE_NAMES = {
    "s3": "Amazon S3",
    "gs": "Cloud Storage",
    "az": "Azure Blob Storage",
    "hf": "the Hugging Face hub",
    "file": "the claim",
}

#: The s3 figure, kept for callers that take one rate for every store.
WEIGHT_DOWNLOAD_BYTES_PER_SECOND = STORE_BYTES_PER_SECOND["s3"]


def weight_download_seconds(weight_bytes: float, store: str = "s3") -> int:
    """Seconds budgeted to download `weight_bytes` (the checkpoint's size) from `store` (s3, gs, hf,
    file) into a fresh model cache."""
    return math.ceil(weight_bytes / STORE_BYTES_PER_SECOND[store])


# --- engine load and warm-up -------------------------------------------------------------------------

#: Bytes per second vLLM's default safetensors loader moves weights from the node's disk into GPU memory.
#: NVIDIA's Run:ai streamer benchmark ("Reducing Cold Start Latency for LLM Inference with NVIDIA Run:ai
#: Model Streamer", developer.nvidia.com, g5.12xlarge, Llama-3-8B) measured the default loader at 47.99 s
#: from a gp3 volume: about 16 GB / 48 s = 333 MB/s. The model cache is an emptyDir on the node's (gp3 or
#: pd-balanced) root volume, so that is the rate we budget.
LOCAL_LOAD_BYTES_PER_SECOND = 16e9 / 48

#: Bytes per second the Run:ai streamer reads from S3 or Cloud Storage into GPU memory. The streamer reads
#: object stores with 8 concurrent readers by default (runai-model-streamer docs/src/env-vars.md,
#: RUNAI_STREAMER_CONCURRENCY) and S3 gives about 85 MB/s per connection (S3 performance guidance):
#: ~680 MB/s; we budget 500 MB/s, an assumption below that (NVIDIA's benchmark above saw the streamer
#: beat the default loader from every store it tried).
STREAM_BYTES_PER_SECOND = 500e6

#: Seconds vLLM spends after loading and before it serves: torch.compile of the model (the compile cache
#: lives in HOME, an emptyDir, so every new pod compiles afresh: vLLM docs, design/torch_compile.md,
#: "Compilation Cache"), CUDA graph capture for each batch size, and the KV cache's profiling run. vLLM's
#: docs give no typical total; its startup benchmark (vllm/benchmarks/startup.py) measures it per model.
#: 120 s is an assumption for a dense model up to ~70B on one node; `--enforce-eager` skips compile and
#: capture (slower decoding).
VLLM_WARM_UP_SECONDS = 120

#: The CPU engine (transformers serve) compiles nothing and captures no graphs: it loads on the first
#: request. 30 s for that first request's load, an assumption.
CPU_WARM_UP_SECONDS = 30


def stream_problem(engine: str, store: str) -> str | None:
    """Why `load_mode: stream` cannot work for this engine and store, or None where it can."""
    if engine != "vllm":
        return "the transformers (CPU) engine has no Run:ai model streamer: use load_mode copy, or the vllm engine"
    if store not in ("s3", "gs"):
        return (
            f"the Run:ai model streamer reads s3:// and gs:// only, not {store}:// "
            "(vLLM runai_streamer_loader: other paths are downloaded from the hub or read from disk, "
            "with no sha256 check): use load_mode copy, or put the model in a bucket"
        )
    return None


def cold_start_budget(
    *,
    platform: str,
    spot: bool,
    engine: str,
    store: str,
    weight_bytes: float,
    startup_timeout_seconds: int,
    load_mode: LoadMode = LoadMode.COPY,
    provisions_nodes: bool = True,
) -> ColdStartBudget:
    """One replica's cold-start budget (a pure function of the validated config's values).

    platform: aws, gcp or onprem; spot: the GPU nodes are spot capacity; engine: vllm or transformers;
    store: the model uri's scheme (s3, gs, hf, file); weight_bytes: the checkpoint's size in bytes;
    startup_timeout_seconds: serving.startup_timeout_seconds (the startup probe's budget); load_mode: copy
    or stream (ValueError where stream cannot work: stream_problem); provisions_nodes: False where the
    nodes already exist.
    """
    gb = weight_bytes / 1e9
    items = [node_provisioning(platform, spot, provisions_nodes), image_pull(engine)]
    if load_mode is LoadMode.STREAM:
        problem = stream_problem(engine, store)
        if problem:
            raise ValueError(problem)
        items += [
            BudgetItem(WEIGHT_FETCH, 0, "stream: no init container; the engine reads the bucket itself"),
            BudgetItem(
                ENGINE_LOAD,
                math.ceil(weight_bytes / STREAM_BYTES_PER_SECOND),
                f"{gb:.1f} GB streamed from {_STORE_NAMES[store]} into GPU memory at "
                f"{STREAM_BYTES_PER_SECOND / 1e6:.0f} MB/s (Run:ai streamer, 8 readers; an assumption)",
            ),
        ]
    else:
        rate = STORE_BYTES_PER_SECOND[store]
        items += [
            BudgetItem(
                WEIGHT_FETCH,
                weight_download_seconds(weight_bytes, store),
                f"{gb:.1f} GB from {_STORE_NAMES[store]} at {rate / 1e6:.0f} MB/s by the fetch init container "
                "(every file hashed; the cache is an emptyDir, so a new pod downloads it all)",
            ),
            BudgetItem(
                ENGINE_LOAD,
                math.ceil(weight_bytes / LOCAL_LOAD_BYTES_PER_SECOND),
                f"{gb:.1f} GB from the node's disk into {'GPU' if engine == 'vllm' else 'CPU'} memory at "
                f"{LOCAL_LOAD_BYTES_PER_SECOND / 1e6:.0f} MB/s (vLLM's default loader from gp3: 16 GB in 48 s)",
            ),
        ]
    if engine == "vllm":
        items.append(
            BudgetItem(
                WARM_UP,
                VLLM_WARM_UP_SECONDS,
                "torch.compile with an empty compile cache, CUDA graph capture, KV-cache profiling "
                f"({VLLM_WARM_UP_SECONDS} s, an assumption; --enforce-eager skips compile and capture)",
            )
        )
    else:
        items.append(
            BudgetItem(WARM_UP, CPU_WARM_UP_SECONDS, "transformers serve compiles nothing (an assumption)")
        )
    in_container = sum(i.seconds for i in items[3:])  # what the startup probe's clock covers
    items.append(
        BudgetItem(
            STARTUP_ALLOWANCE,
            max(startup_timeout_seconds - in_container, 0),
            f"serving.startup_timeout_seconds {startup_timeout_seconds} s less the engine's "
            f"{in_container} s above: the kubelet waits that long for a slow load, so the cooldown, the "
            "hold and the rollout deadlines wait as long",
        )
    )
    return ColdStartBudget(load_mode, tuple(items))


def engine_seconds(budget: ColdStartBudget) -> int:
    """Seconds of the budget the startup probe's clock covers (engine load and warm-up; the init
    container's fetch runs before the probe starts): serving.startup_timeout_seconds must be at least this."""
    return budget.item(ENGINE_LOAD).seconds + budget.item(WARM_UP).seconds


def minimum_cooldown_seconds(
    startup_timeout_seconds: int, provisions_nodes: bool, weight_bytes: float = 0
) -> int:
    """The cold start of a vLLM replica copying from S3 on GKE-like on-demand nodes (seconds): the figure
    before budgets were itemized per platform. Prefer cold_start_budget(...).total_seconds."""
    return cold_start_budget(
        platform="gcp" if provisions_nodes else "onprem",
        spot=False,
        engine="vllm",
        store="s3",
        weight_bytes=weight_bytes,
        startup_timeout_seconds=startup_timeout_seconds,
    ).total_seconds


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
