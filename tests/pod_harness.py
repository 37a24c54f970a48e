"""Run a planned pod under Docker the way the kubelet runs it: the pod template of a Deployment from
`inferstack plan`'s manifests.yaml, its init containers to completion in order, then its containers, each
with the pod's security context, volumes, environment, resources and probes.

Used by `make e2e` (tests/model_image/test_image_container.py); the translation (`container_args`) is
pure and tested without Docker (tests/test_pod_harness.py).

What the kubelet does and this harness does the same way (Kubernetes 1.36 sources, pkg/kubelet):
- command/args: `command` replaces the image's ENTRYPOINT and `args` its CMD; `args` alone keeps the
  ENTRYPOINT (kuberuntime_container.go, expand.go). `$(VAR)` in command, args and env values expands to
  an env var defined earlier in the list, `$$` to `$` (third_party/forked/golang/expansion).
- securityContext: container fields win over the pod's (securitycontext/util.go); runAsUser/runAsGroup
  -> --user; fsGroup and supplementalGroups -> --group-add; readOnlyRootFilesystem -> --read-only;
  capabilities drop/add -> --cap-drop/--cap-add; allowPrivilegeEscalation false -> no-new-privileges;
  seccomp RuntimeDefault -> Docker's default profile; runAsNonRoot -> the user must be non-zero (numeric
  in the image when runAsUser is unset: kuberuntime_container.go verifyRunAsNonRoot).
- emptyDir: one volume shared by every container of the pod, created 0777 and, with fsGroup, owned by
  that group with the setgid bit (volume/emptydir/empty_dir.go, volume_linux.go SetVolumeOwnership);
  medium Memory is a tmpfs whose size is the sizeLimit (empty_dir.go, SizeMemoryBackedVolumes). A disk
  emptyDir's sizeLimit is enforced by eviction, not by the filesystem: the harness measures the folder
  when the pod stops and reports a volume the kubelet would have evicted the pod for.
- Probes: httpGet to the pod's port (a named port resolves to the container's containerPort), success
  is a status in [200, 400) (probe/http/http.go); a startupProbe gates the others; failureThreshold x
  periodSeconds is the budget.
- Stopping: the preStop hook first (sleep / exec / httpGet), then SIGTERM, then SIGKILL when
  terminationGracePeriodSeconds (counted from the start of preStop) runs out (kuberuntime_container.go
  killContainer).
- Networking: the containers share one network namespace (a sandbox container that holds the published
  ports, like the pod's pause container).

What it does not do: admission (PodSecurity), scheduling, Services, NetworkPolicies, service account
tokens, image pulls (the image must be local: imagePullPolicy IfNotPresent / Never), restarts (a failed
liveness probe is reported, not acted on), the Service environment variables (the planned pods set
enableServiceLinks: false; KUBERNETES_SERVICE_* are not injected), and a claim's ownership (its folder is
used as given; fsGroup on a PersistentVolume depends on its driver and fsGroupChangePolicy). Every field of
the pod outside what it reproduces (POD_FIELDS, CONTAINER_FIELDS, ...: sysctls, postStart, native
sidecars, host namespaces, projected volumes, ...) is refused with PodRunError naming the field, never
ignored. Linux only (it binds host folders and chowns them to fsGroup: run it as root).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from inferstack.validation.policies import load_rules

# The Docker client: `make e2e` names Debian's (/usr/bin/docker, which builds with BuildKit without the
# buildx plugin) when it started Debian's engine itself (tests/image_build.py).
DOCKER = os.environ.get("DOCKER", "docker")


class PodRunError(AssertionError):
    """The planned pod cannot run as the kubelet would run it: names the container and the cause."""


# --- quantities ------------------------------------------------------------------------------------


_parse_quantity = load_rules().parse_quantity


def _quantity(value: str | int, what: str) -> Decimal:
    """A Kubernetes quantity in base units, read by the policy pack's parser (policy/rules.py
    parse_quantity: the whole grammar, "500m", "4Gi", "1e3"); PodRunError naming `what` when malformed."""
    parsed = _parse_quantity(value)
    if parsed is None:
        raise PodRunError(f"{what}: {value!r} is not a Kubernetes quantity (e.g. 4Gi, 512M, 2, 500m)")
    return Decimal(parsed)


def quantity_bytes(value: str | int, what: str) -> int:
    """A Kubernetes memory/storage quantity ("4Gi", "512M", "1000") in bytes."""
    return int(_quantity(value, what))


def quantity_cpus(value: str | int, what: str) -> str:
    """A CPU quantity ("2", "500m") as Docker's --cpus decimal."""
    return f"{float(_quantity(value, what)):g}"


# --- the pod in the plan ---------------------------------------------------------------------------


def load_manifests(path: Path) -> list[dict[str, Any]]:
    import yaml

    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]


def deployment_pod(manifests: Iterable[Mapping[str, Any]], component: str) -> tuple[dict[str, Any], str]:
    """The pod template spec of the one Deployment labelled app.kubernetes.io/component=`component`, and
    its namespace."""
    found = [
        d
        for d in manifests
        if d.get("kind") == "Deployment"
        and d.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component") == component
    ]
    if len(found) != 1:
        raise PodRunError(
            f"expected one Deployment with component {component!r} in the plan, found {len(found)}"
        )
    return found[0]["spec"]["template"]["spec"], found[0]["metadata"].get("namespace", "default")


def secret_data(manifests: Iterable[Mapping[str, Any]], namespace: str, name: str) -> dict[str, bytes]:
    for d in manifests:
        meta = d.get("metadata", {})
        if (
            d.get("kind") == "Secret"
            and meta.get("name") == name
            and meta.get("namespace", namespace) == namespace
        ):
            data = {k: base64.b64decode(v) for k, v in (d.get("data") or {}).items()}
            data.update({k: str(v).encode() for k, v in (d.get("stringData") or {}).items()})
            return data
    raise PodRunError(f"Secret {namespace}/{name} is not in the plan")


# --- translation -----------------------------------------------------------------------------------

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: a defined var is replaced, an undefined reference stays as written,
    `$$` is a literal `$`."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(sub, text)


def container_env(
    container: Mapping[str, Any], manifests: list[dict[str, Any]], namespace: str, pod_name: str
) -> dict[str, str]:
    """The container's environment as the kubelet builds it (envFrom, then env in order, with $(VAR)
    expansion against what came before)."""
    name = container["name"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "secretRef" in source:
            prefix = source.get("prefix", "")
            for k, v in secret_data(manifests, namespace, source["secretRef"]["name"]).items():
                env[prefix + k] = v.decode()
        else:
            raise PodRunError(f"container {name}: envFrom {sorted(source)} is not supported by the harness")
    for item in container.get("env") or []:
        key = item["name"]
        if "value" in item:
            env[key] = expand(str(item["value"]), env)
            continue
        ref = item.get("valueFrom") or {}
        if "secretKeyRef" in ref:
            sk = ref["secretKeyRef"]
            data = secret_data(manifests, namespace, sk["name"])
            if sk["key"] not in data:
                raise PodRunError(
                    f"container {name}: env {key}: Secret {sk['name']} has no key {sk['key']!r}"
                )
            env[key] = data[sk["key"]].decode()
        elif "fieldRef" in ref:
            path = ref["fieldRef"]["fieldPath"]
            values = {"metadata.name": pod_name, "metadata.namespace": namespace}
            if path not in values:
                raise PodRunError(
                    f"container {name}: env {key}: fieldRef {path} is not supported by the harness"
                )
            env[key] = values[path]
        else:
            raise PodRunError(f"container {name}: env {key}: valueFrom {sorted(ref)} is not supported")
    return env


@dataclass
class PodVolume:
    """How one pod volume exists on the Docker host."""

    name: str
    kind: str  # "bind" (a host folder) or "volume" (a named Docker volume, e.g. a tmpfs)
    source: str
    read_only: bool = False
    size_limit: int | None = None  # bytes, disk emptyDirs: checked when the pod stops


# Every field the harness reproduces (or that has no effect on one pod's containers: scheduling, service
# account, topology). Any other field in the planned pod is refused by name: the harness never runs a pod
# while silently leaving out something the kubelet would do (a sysctl, a postStart hook, a native sidecar).
POD_FIELDS = frozenset({
    "containers", "initContainers", "volumes", "securityContext", "terminationGracePeriodSeconds",
    "enableServiceLinks", "automountServiceAccountToken", "serviceAccountName", "topologySpreadConstraints",
    "nodeSelector", "tolerations", "affinity", "priorityClassName", "restartPolicy", "dnsPolicy",
    "schedulerName", "runtimeClassName",
})  # fmt: skip
POD_SECURITY_FIELDS = frozenset({"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups",
                                 "seccompProfile", "fsGroupChangePolicy"})  # fmt: skip
CONTAINER_FIELDS = frozenset({
    "name", "image", "imagePullPolicy", "command", "args", "env", "envFrom", "workingDir", "ports",
    "resources", "securityContext", "volumeMounts", "startupProbe", "readinessProbe", "livenessProbe",
    "lifecycle", "terminationMessagePath", "terminationMessagePolicy",
})  # fmt: skip
CONTAINER_SECURITY_FIELDS = frozenset({"runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem",
                                       "capabilities", "allowPrivilegeEscalation", "privileged",
                                       "seccompProfile"})  # fmt: skip
MOUNT_FIELDS = frozenset({"name", "mountPath", "readOnly", "subPath"})
PORT_FIELDS = frozenset({"name", "containerPort", "protocol"})
PROBE_FIELDS = frozenset({"httpGet", "initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold",
                          "successThreshold", "terminationGracePeriodSeconds"})  # fmt: skip
LIFECYCLE_FIELDS = frozenset({"preStop"})


def unsupported_fields(pod_spec: Mapping[str, Any]) -> list[str]:
    """Every field of the pod spec the harness does not reproduce, as `where: field` strings."""
    found: list[str] = []

    def extra(where: str, value: Mapping[str, Any] | None, allowed: frozenset[str]) -> None:
        found.extend(f"{where}: {key}" for key in sorted(set(value or {}) - allowed))

    extra("pod", pod_spec, POD_FIELDS)
    extra("pod securityContext", pod_spec.get("securityContext"), POD_SECURITY_FIELDS)
    if pod_spec.get("restartPolicy", "Always") != "Always":
        found.append(f"pod: restartPolicy {pod_spec['restartPolicy']}")
    for kind in ("initContainers", "containers"):
        for c in pod_spec.get(kind) or []:
            where = f"container {c.get('name')}"
            extra(where, c, CONTAINER_FIELDS)
            extra(f"{where} securityContext", c.get("securityContext"), CONTAINER_SECURITY_FIELDS)
            extra(f"{where} lifecycle", c.get("lifecycle"), LIFECYCLE_FIELDS)
            for m in c.get("volumeMounts") or []:
                extra(f"{where} volumeMount {m.get('name')}", m, MOUNT_FIELDS)
            for port in c.get("ports") or []:
                extra(f"{where} port {port.get('containerPort')}", port, PORT_FIELDS)
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if c.get(probe):
                    extra(f"{where} {probe}", c[probe], PROBE_FIELDS)
                    if c[probe].get("successThreshold", 1) != 1:
                        found.append(f"{where} {probe}: successThreshold {c[probe]['successThreshold']}")
            if kind == "initContainers" and c.get("restartPolicy"):
                found.append(f"{where}: restartPolicy (a native sidecar)")
    return found


def security(container: Mapping[str, Any], pod_spec: Mapping[str, Any]) -> dict[str, Any]:
    """The container's effective security context: its own fields over the pod's."""
    pod_sc = pod_spec.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    merged = {
        k: pod_sc[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile") if k in pod_sc
    }
    merged.update(sc)
    return merged


def container_args(
    pod_spec: Mapping[str, Any],
    container: Mapping[str, Any],
    env: Mapping[str, str],
    volumes: Mapping[str, PodVolume],
    network: str,
    name: str,
    image_user: str = "",
    notes: list[str] | None = None,
    without_devices: bool = False,
) -> list[str]:
    """`docker create` arguments that run `container` of `pod_spec` as the kubelet would.

    `volumes` maps each pod volume name to how it exists on the host; `network` is the sandbox container
    whose network namespace the pod's containers share; `image_user` is the image's USER (for
    runAsNonRoot without runAsUser). What it had to adapt (a CPU limit above this machine's, devices left
    out with `without_devices`) is appended to `notes`. Raises PodRunError naming the container and the
    field it cannot honour.
    """
    notes = notes if notes is not None else []
    cname = container["name"]
    sc = security(container, pod_spec)
    pod_sc = pod_spec.get("securityContext") or {}
    args = ["create", "--name", name, "--network", f"container:{network}", "--pull", "never"]

    if container.get("imagePullPolicy") == "Always":
        raise PodRunError(f"container {cname}: imagePullPolicy Always needs a registry; the harness has none")

    user = sc.get("runAsUser")
    group = sc.get("runAsGroup")
    if user is not None:
        args += ["--user", f"{user}:{group}" if group is not None else str(user)]
    elif group is not None:
        raise PodRunError(f"container {cname}: runAsGroup without runAsUser is not supported by the harness")
    if sc.get("runAsNonRoot"):
        effective = str(user) if user is not None else image_user.split(":")[0]
        if not effective.isdigit():
            raise PodRunError(
                f"container {cname}: runAsNonRoot with image USER {image_user!r}: the kubelet refuses a "
                "non-numeric user it cannot verify (set runAsUser or a numeric USER)"
            )
        if int(effective) == 0:
            raise PodRunError(f"container {cname}: runAsNonRoot, but it would run as root (uid 0)")
    for gid in [pod_sc.get("fsGroup"), *(pod_sc.get("supplementalGroups") or [])]:
        if gid is not None:
            args += ["--group-add", str(gid)]
    if sc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    caps = sc.get("capabilities") or {}
    for cap in caps.get("drop") or []:
        args += ["--cap-drop", str(cap)]
    for cap in caps.get("add") or []:
        args += ["--cap-add", str(cap)]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if sc.get("privileged"):
        raise PodRunError(f"container {cname}: privileged containers are not run by the harness")
    seccomp = (sc.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":
        raise PodRunError(f"container {cname}: seccompProfile {seccomp} is not supported by the harness")

    limits = (container.get("resources") or {}).get("limits") or {}
    if "memory" in limits:
        memory = str(quantity_bytes(limits["memory"], f"container {cname}: limits.memory"))
        # --memory-swap equal to --memory: no swap, as the kubelet gives containers none by default (NoSwap).
        args += ["--memory", memory, "--memory-swap", memory]
    if "cpu" in limits:
        cpus = quantity_cpus(limits["cpu"], f"container {cname}: limits.cpu")
        machine = os.cpu_count() or 1
        if float(cpus) > machine:  # Docker refuses more than the machine has; the kubelet's node would fit it
            notes.append(
                f"container {cname}: limits.cpu {limits['cpu']} capped at this machine's {machine} CPUs"
            )
            cpus = str(machine)
        args += ["--cpus", cpus]
    extended = sorted(k for k in limits if k not in ("cpu", "memory", "ephemeral-storage"))
    if extended and not without_devices:
        raise PodRunError(
            f"container {cname}: limits {extended} need a device plugin the harness does not have "
            "(run it with without_devices=True to start it without them, knowing it will lack them)"
        )
    if extended:
        notes.append(f"container {cname}: started without {extended}")

    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    if container.get("workingDir"):
        args += ["--workdir", container["workingDir"]]

    for mount in container.get("volumeMounts") or []:
        vol = volumes.get(mount["name"])
        if vol is None:
            raise PodRunError(f"container {cname}: volumeMount {mount['name']} names no pod volume")
        read_only = bool(mount.get("readOnly")) or vol.read_only
        source = vol.source
        if mount.get("subPath"):
            if vol.kind != "bind":
                raise PodRunError(f"container {cname}: subPath on volume {vol.name} is not supported")
            source = str(Path(source) / mount["subPath"])
        spec = f"type={vol.kind},source={source},target={mount['mountPath']}"
        if read_only:
            spec += ",readonly"
        args += ["--mount", spec]

    command = [expand(str(c), env) for c in container.get("command") or []]
    run_args = [expand(str(a), env) for a in container.get("args") or []]
    if command:
        args += ["--entrypoint", command[0]]
    args.append(container["image"])
    args += command[1:] + run_args
    return args


# --- running ---------------------------------------------------------------------------------------


def docker(*argv: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([DOCKER, *argv], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise PodRunError(
            f"docker {' '.join(argv[:3])} ...: {result.stderr.strip() or result.stdout.strip()}"
        )
    return result


def _fix_ownership(path: Path, fs_group: int | None) -> None:
    # empty_dir.go: 0777; with fsGroup, SetVolumeOwnership gives the group and the setgid bit.
    path.mkdir(parents=True, exist_ok=True)
    if fs_group is not None:
        if os.geteuid() != 0:
            raise PodRunError(
                f"pod securityContext.fsGroup {fs_group}: giving a volume to that group needs root, as the "
                "kubelet has; run make e2e as root"
            )
        os.chown(path, 0, fs_group)
        path.chmod(0o2777)
    else:
        path.chmod(0o777)


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@dataclass
class ProbeResult:
    ok: bool
    detail: str


@dataclass
class PlannedPod:
    """One planned pod, run under Docker. Use as a context manager; `start()` runs the init containers
    and starts the containers; `wait_started()` applies the probes; `stop()` runs the kubelet's stop."""

    pod_spec: dict[str, Any]
    manifests: list[dict[str, Any]]
    namespace: str
    work: Path
    claims: Mapping[str, Path] = field(default_factory=dict)  # PersistentVolumeClaim name -> host folder
    extra_env: Mapping[str, str] = field(default_factory=dict)  # added to every container (e.g. S3 endpoint)
    sandbox_image: str = ""
    log: Callable[[str], None] = print
    pod_name: str = field(default_factory=lambda: f"llm-{uuid.uuid4().hex[:8]}")
    created: list[str] = field(default_factory=list)
    docker_volumes: list[str] = field(default_factory=list)
    volumes: dict[str, PodVolume] = field(default_factory=dict)
    host_ports: dict[int, int] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)
    without_devices: bool = (
        False  # start containers whose limits ask for devices (nvidia.com/gpu) without them
    )
    notes: list[str] = field(default_factory=list)  # what the harness adapted, for the test's report

    def __enter__(self) -> PlannedPod:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # volumes
    def _make_volumes(self) -> None:
        fs_group = (self.pod_spec.get("securityContext") or {}).get("fsGroup")
        for vol in self.pod_spec.get("volumes") or []:
            name = vol["name"]
            if "emptyDir" in vol:
                ed = vol["emptyDir"] or {}
                limit = (
                    quantity_bytes(ed["sizeLimit"], f"volume {name}: sizeLimit")
                    if "sizeLimit" in ed
                    else None
                )
                if ed.get("medium") == "Memory":
                    docker_name = f"{self.pod_name}-{name}"
                    # empty_dir.go setupTmpfs: size = the smallest of sizeLimit, the pod's memory limit
                    # (calculateEmptyDirMemorySize; node allocatable is this machine's); the tmpfs root is
                    # 1777, and fsGroup's ownership change adds the group and setgid: 3777.
                    sizes = [b for b in (limit, self._pod_memory_limit()) if b]
                    opts = f"mode={'3777' if fs_group is not None else '1777'}"
                    if sizes:
                        opts += f",size={min(sizes)}"
                    docker("volume", "create", "--driver", "local", "--opt", "type=tmpfs", "--opt",
                           "device=tmpfs", "--opt", f"o={opts}", docker_name)  # fmt: skip
                    self.docker_volumes.append(docker_name)
                    self.volumes[name] = PodVolume(name, "volume", docker_name)
                else:
                    folder = self.work / "volumes" / name
                    _fix_ownership(folder, fs_group)
                    self.volumes[name] = PodVolume(name, "bind", str(folder), size_limit=limit)
            elif "persistentVolumeClaim" in vol:
                claim = vol["persistentVolumeClaim"]["claimName"]
                if claim not in self.claims:
                    raise PodRunError(
                        f"volume {name}: PersistentVolumeClaim {claim} has no host folder in the harness"
                    )
                read_only = bool(vol["persistentVolumeClaim"].get("readOnly"))
                self.volumes[name] = PodVolume(name, "bind", str(self.claims[claim]), read_only=read_only)
            elif "secret" in vol:
                sv = vol["secret"]
                folder = self.work / "volumes" / name
                folder.mkdir(parents=True, exist_ok=True)
                mode = sv.get("defaultMode", 0o644)
                items = secret_data(self.manifests, self.namespace, sv["secretName"])
                for item in sv.get("items") or [{"key": k, "path": k} for k in items]:
                    target = folder / item["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(items[item["key"]])
                    file_mode = item.get("mode", mode)
                    if fs_group is not None:
                        # volume_linux.go SetVolumeOwnership on a read-only volume: group, plus 0440.
                        os.chown(target, 0, fs_group)
                        file_mode |= 0o440
                    target.chmod(file_mode)
                self.volumes[name] = PodVolume(name, "bind", str(folder), read_only=True)
            else:
                kinds = sorted(k for k in vol if k != "name")
                raise PodRunError(f"volume {name}: {kinds} is not supported by the harness")

    def _pod_memory_limit(self) -> int | None:
        """The pod's memory limit: its containers' sum, or its largest init container's, when every
        container has one (resource.PodLimits); None otherwise."""

        def limit(c: Mapping[str, Any]) -> int | None:
            value = ((c.get("resources") or {}).get("limits") or {}).get("memory")
            return quantity_bytes(value, f"container {c['name']}: limits.memory") if value else None

        running = [limit(c) for c in self.pod_spec.get("containers") or []]
        inits = [limit(c) for c in self.pod_spec.get("initContainers") or []]
        if None in running or None in inits:
            return None
        return max(sum(b for b in running if b), max((b for b in inits if b), default=0))

    def _image_user(self, image: str) -> str:
        out = docker("image", "inspect", "--format", "{{json .Config.User}}", image).stdout
        return str(json.loads(out) or "")

    def _ports(self) -> dict[str, int]:
        named: dict[str, int] = {}
        for c in self.pod_spec.get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name"):
                    named[p["name"]] = int(p["containerPort"])
        return named

    def start(self) -> None:
        """Create the volumes and the sandbox, run every init container to completion (in order), then
        start the containers. Raises PodRunError naming the init container that failed and its log, or
        every field of the pod the harness does not reproduce."""
        unsupported = unsupported_fields(self.pod_spec)
        if unsupported:
            raise PodRunError("the harness does not reproduce: " + "; ".join(unsupported))
        self._make_volumes()
        ports = sorted(
            {
                int(p["containerPort"])
                for c in self.pod_spec.get("containers") or []
                for p in c.get("ports") or []
            }
        )
        sandbox = f"{self.pod_name}-sandbox"
        publish = [a for port in ports for a in ("--publish", f"127.0.0.1::{port}")]
        sandbox_image = self.sandbox_image or self.pod_spec["containers"][0]["image"]
        docker("run", "--detach", "--name", sandbox, "--read-only", "--cap-drop", "ALL", "--user", "65534:65534",
               "--add-host", "host.docker.internal:host-gateway", *publish,
               "--entrypoint", "sleep", sandbox_image, "infinity")  # fmt: skip
        self.created.append(sandbox)
        for port in ports:
            out = docker("port", sandbox, f"{port}/tcp").stdout.strip().splitlines()[0]
            self.host_ports[port] = int(out.rsplit(":", 1)[1])

        for init in self.pod_spec.get("initContainers") or []:
            name = self._create(init, sandbox)
            result = docker("start", "--attach", name, check=False, timeout=1800)
            code = self._exit_code(name)
            self.exit_codes[init["name"]] = code
            if code != 0:
                raise PodRunError(
                    f"init container {init['name']} exited {code}: {self._why(name)}\n"
                    f"{(result.stdout + result.stderr)[-3000:]}"
                )
            self.log(f"init container {init['name']}: exited 0")
        for c in self.pod_spec.get("containers") or []:
            name = self._create(c, sandbox)
            started = docker("start", name, check=False)
            if started.returncode != 0:
                raise PodRunError(f"container {c['name']} did not start: {started.stderr.strip()}")
            self.log(f"container {c['name']}: started")

    def _create(self, container: Mapping[str, Any], sandbox: str) -> str:
        name = f"{self.pod_name}-{container['name']}"
        env = container_env(container, self.manifests, self.namespace, self.pod_name)
        env.update(self.extra_env)
        args = container_args(
            self.pod_spec,
            container,
            env,
            self.volumes,
            sandbox,
            name,
            image_user=self._image_user(container["image"]),
            notes=self.notes,
            without_devices=self.without_devices,
        )
        result = docker(*args, check=False)
        if result.returncode != 0:
            raise PodRunError(f"container {container['name']}: docker create failed: {result.stderr.strip()}")
        self.created.append(name)
        return name

    def _exit_code(self, name: str) -> int:
        return int(docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip())

    def _why(self, name: str) -> str:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
        if state.get("OOMKilled"):
            return "OOMKilled (the memory limit)"
        return str(state.get("Error") or "see its log below")

    def logs(self, container: str, tail: int = 200) -> str:
        r = docker("logs", "--tail", str(tail), f"{self.pod_name}-{container}", check=False)
        return r.stdout + r.stderr

    def running(self, container: str) -> bool:
        out = docker("inspect", "--format", "{{.State.Running}}", f"{self.pod_name}-{container}", check=False)
        return out.stdout.strip() == "true"

    # probes
    def probe(self, container: Mapping[str, Any], kind: str) -> ProbeResult:
        spec = container.get(kind) or {}
        http = spec.get("httpGet")
        if http is None:
            raise PodRunError(f"container {container['name']}: {kind} is not an httpGet probe")
        port = http["port"]
        if isinstance(port, str):
            named = self._ports()
            if port not in named:
                raise PodRunError(
                    f"container {container['name']}: {kind} names port {port!r}, which no container declares"
                )
            port = named[port]
        scheme = str(http.get("scheme", "HTTP")).lower()
        url = f"{scheme}://127.0.0.1:{self.host_ports[int(port)]}{http.get('path', '/')}"
        headers = {h["name"]: h["value"] for h in http.get("httpHeaders") or []}
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=headers), timeout=spec.get("timeoutSeconds", 1)
            ) as resp:
                status = resp.status
        except urllib.error.HTTPError as err:
            status = err.code
        except OSError as err:
            return ProbeResult(False, f"{url}: {err}")
        return ProbeResult(200 <= status < 400, f"{url}: {status}")

    def wait_started(self, container_name: str) -> float:
        """Apply the container's startupProbe, then its readinessProbe, as the kubelet would; returns the
        seconds until Ready. Raises PodRunError when the container exits or a probe runs out of tries."""
        container = next(c for c in self.pod_spec["containers"] if c["name"] == container_name)
        began = time.monotonic()
        for kind in ("startupProbe", "readinessProbe"):
            spec = container.get(kind)
            if not spec:
                continue
            time.sleep(spec.get("initialDelaySeconds", 0))
            failures = 0
            while True:
                if not self.running(container_name):
                    code = self._exit_code(f"{self.pod_name}-{container_name}")
                    raise PodRunError(
                        f"container {container_name} exited {code} before its {kind} passed: "
                        f"{self._why(f'{self.pod_name}-{container_name}')}\n{self.logs(container_name)[-3000:]}"
                    )
                result = self.probe(container, kind)
                if result.ok:
                    break
                failures += 1
                if failures >= spec.get("failureThreshold", 3):
                    raise PodRunError(
                        f"container {container_name}: {kind} failed {failures} times ({result.detail})\n"
                        f"{self.logs(container_name)[-3000:]}"
                    )
                time.sleep(spec.get("periodSeconds", 10))
        return time.monotonic() - began

    def base_url(self, port: int) -> str:
        return f"http://127.0.0.1:{self.host_ports[port]}"

    def stop(
        self, container_name: str, before_sigterm: Callable[[], None] | None = None
    ) -> tuple[int, float]:
        """The kubelet's stop of one container: preStop, then SIGTERM, then SIGKILL at the end of the
        grace period. `before_sigterm` runs after preStop, just before the signal. Returns the exit code and
        the seconds from SIGTERM to exit; raises PodRunError when the grace period ran out."""
        container = next(c for c in self.pod_spec["containers"] if c["name"] == container_name)
        name = f"{self.pod_name}-{container_name}"
        grace = float(self.pod_spec.get("terminationGracePeriodSeconds", 30))
        began = time.monotonic()
        pre_stop = ((container.get("lifecycle") or {}).get("preStop")) or {}
        if "sleep" in pre_stop:
            time.sleep(min(float(pre_stop["sleep"]["seconds"]), grace))
        elif "exec" in pre_stop:
            docker("exec", name, *pre_stop["exec"]["command"], check=False, timeout=grace)
        elif pre_stop:
            raise PodRunError(f"container {container_name}: preStop {sorted(pre_stop)} is not supported")
        if before_sigterm is not None:
            before_sigterm()
        left = max(grace - (time.monotonic() - began), 2.0)  # the kubelet's minimum grace is 2 s
        sent = time.monotonic()
        docker("kill", "--signal", "TERM", name)
        waited = subprocess.run(
            [DOCKER, "wait", name], capture_output=True, text=True, timeout=left + 5, check=False
        )
        took = time.monotonic() - sent
        if took > left:
            docker("kill", name, check=False)
            raise PodRunError(
                f"container {container_name} did not exit within the grace period ({left:.0f} s)"
            )
        code = int(waited.stdout.strip() or self._exit_code(name))
        self.exit_codes[container_name] = code
        return code, took

    def over_size_limit(self) -> list[str]:
        """Disk emptyDirs that hold more than their sizeLimit: the kubelet would evict the pod."""
        over = []
        for vol in self.volumes.values():
            if vol.kind == "bind" and vol.size_limit is not None:
                used = folder_bytes(Path(vol.source))
                if used > vol.size_limit:
                    over.append(f"emptyDir {vol.name}: {used} bytes > sizeLimit {vol.size_limit}")
        return over

    def remove(self) -> None:
        for name in reversed(self.created):
            docker("rm", "--force", "--volumes", name, check=False)
        for name in self.docker_volumes:
            docker("volume", "rm", "--force", name, check=False)
        self.created.clear()
        self.docker_volumes.clear()
        shutil.rmtree(self.work / "volumes", ignore_errors=True)
