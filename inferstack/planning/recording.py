"""Run a Pulumi program offline and record every resource it registers.

The same recording mock backs the unit tests and `inferstack plan`: it answers each registration with
deterministic, realistic outputs (see `fakes/`), and keeps type, name, parent, dependencies and inputs
with secret values marked, so a plan can be written out with those values redacted.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.settings import get_root_resource
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from inferstack.planning import fakes

SECRET_PLACEHOLDER = "[secret]"


@dataclass
class RecordedResource:
    """One registration: a custom resource (managed by a provider) or a component."""

    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]  # secret values unwrapped, for assertions in tests
    redacted_inputs: dict[str, Any]  # secret values replaced by SECRET_PLACEHOLDER, for anything written out
    dependencies: list[str] = field(default_factory=list)
    id: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    retain_on_delete: bool = False  # `pulumi destroy` forgets it but leaves it in the cloud
    #: The provider reference the SDK sent, "<provider URN>::<provider id>"; "" for a component or a custom
    #: resource on the package's default provider. The engine creates that provider (and so waits for
    #: what its inputs came from, e.g. the cluster behind a kubeconfig) before this resource.
    provider: str = ""
    #: Output values the mock made up (not echoed from the inputs): output path ("status.loadBalancer...")
    #: -> value. A real deploy gets the provider's own value there; anything showing one must say so.
    made_up: dict[str, str] = field(default_factory=dict)
    #: The resource's customTimeouts as the SDK sent them ("create"/"update"/"delete" -> "1500s"); only the
    #: ones set. How long `pulumi up` waits for it before failing.
    custom_timeouts: dict[str, str] = field(default_factory=dict)

    @property
    def is_kubernetes_object(self) -> bool:
        """A resource that is one Kubernetes object (as opposed to a Helm release, a provider, ...)."""
        return (
            self.custom
            and self.type.startswith("kubernetes:")
            and not self.type.startswith("kubernetes:helm.sh/")
        )

    @property
    def kind(self) -> str:
        return self.type.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class RecordedInvoke:
    """One data-source call (an invoke: `aws.get_region_output`, `gcp.organizations.get_project_output`).

    `provider` is the reference the SDK sent to the engine, "<provider URN>::<provider id>", or "" when the
    call named no provider and inherited none from its `parent`: the engine then answers it with the
    package's *default* provider, configured from the environment (AWS_REGION, AWS_PROFILE,
    GOOGLE_PROJECT, ...) rather than from the stack file. pulumi 3.272.0,
    sdk/python/lib/pulumi/runtime/invoke.py `_invoke`: "If a parent was provided, but no provider was
    provided, use the parent's provider" (`opts.parent.get_provider(tok)`), then
    `provider_ref = f"{provider_urn}::{provider_id}"` only when `opts.provider` is set; the mock monitor
    passes that string on as `MockCallArgs.provider`.
    """

    token: str  # "aws:lb/getHostedZoneId:getHostedZoneId"
    provider: str  # "urn:pulumi:...::pulumi:providers:aws::aws::<id>", or "" for the default provider
    args: dict[str, Any]  # secret values replaced by SECRET_PLACEHOLDER

    @property
    def package(self) -> str:
        """The provider package the data source belongs to: "aws", "gcp", "kubernetes"."""
        return self.token.split(":", 1)[0]

    @property
    def provider_urn(self) -> str | None:
        """The URN of the explicit provider the call ran on; None for the default provider."""
        if not self.provider:
            return None
        return self.provider.rsplit("::", 1)[0]


class Recording:
    """What one program run registered. Registrations run concurrently: sort by URN where order matters."""

    def __init__(self) -> None:
        self.resources: list[RecordedResource] = []
        self.exports: dict[str, Any] = {}
        #: Every data-source call, in call order; each says which provider answered it.
        self.invokes: list[RecordedInvoke] = []

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name_suffix: str = "") -> RecordedResource:
        """The single resource of this type (whose name ends with name_suffix); fails loudly otherwise."""
        found = [r for r in self.of_type(type_token) if r.name.endswith(name_suffix)]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_token)]
            raise AssertionError(f"expected one {type_token} named *{name_suffix}, found {names}")
        return found[0]

    def kubernetes_objects(self) -> list[RecordedResource]:
        return [r for r in self.resources if r.is_kubernetes_object]

    def placeholder_source(self, value: Any) -> str | None:
        """Where a value the program exported came from, when the mock made it up (or part of it).

        Returns "<type token> `<output path>`" of the first made-up output found in `value` (a string, or
        any leaf string of a list/dict), or None when the value holds no made-up output. A made-up output
        counts when the value equals it or, for outputs of 10 characters or more (an IP, a hostname, an
        ARN, a PEM body), contains it: a URL built around a fake load balancer hostname is a stand-in too.
        """
        texts = [s for s in _leaf_strings(value) if s]
        # A provider's settings (region, project, default tags) are the stack's own: an output that
        # repeats one (a bucket's `region`, a key's `project`) was computed, but it is not made up.
        configured = {
            s
            for r in self.resources
            if r.type.startswith("pulumi:providers:")
            for s in _leaf_strings(r.inputs)
        }
        for r in sorted(self.resources, key=lambda r: r.urn):
            for path, made_up in sorted(r.made_up.items()):
                if made_up in configured:
                    continue
                if any(s == made_up or (len(made_up) >= 10 and made_up in s) for s in texts):
                    return f"{r.type} `{path}`"
        return None


def _leaf_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _leaf_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _leaf_strings(v)]
    return []


def made_up_outputs(inputs: Any, outputs: Any, path: str = "") -> dict[str, str]:
    """String outputs that are not the input at the same path: what the mock computed, by output path."""
    if isinstance(outputs, dict):
        found: dict[str, str] = {}
        for key, value in outputs.items():
            echoed = inputs.get(key) if isinstance(inputs, dict) else None
            found.update(made_up_outputs(echoed, value, f"{path}.{key}" if path else str(key)))
        return found
    if isinstance(outputs, list):
        found = {}
        for i, value in enumerate(outputs):
            echoed = inputs[i] if isinstance(inputs, list) and i < len(inputs) else None
            found.update(made_up_outputs(echoed, value, f"{path}[{i}]"))
        return found
    if isinstance(outputs, str) and outputs != inputs:
        return {path: outputs}
    return {}


def _unwrap_secrets(value: Any) -> tuple[Any, Any]:
    """Split a deserialized input into (plain value, redacted value)."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            plain, _ = _unwrap_secrets(value.get("value"))
            return plain, SECRET_PLACEHOLDER
        pairs = {k: _unwrap_secrets(v) for k, v in value.items()}
        return {k: p for k, (p, _) in pairs.items()}, {k: r for k, (_, r) in pairs.items()}
    if isinstance(value, list):
        pairs_list = [_unwrap_secrets(v) for v in value]
        return [p for p, _ in pairs_list], [r for _, r in pairs_list]
    if isinstance(value, float) and value.is_integer():
        # The wire protocol carries every number as a double; manifests want the integers back.
        return int(value), int(value)
    return value, value


class _RecordingMocks(pulumi_mocks.Mocks):
    def __init__(self, recording: Recording, stack: str) -> None:
        self.recording = recording
        self.stack = stack
        # The monitor sees parent, dependencies and URN; new_resource sees inputs. Registrations run on
        # worker threads, so the monitor hands its half over keyed by (type, name), under a lock.
        self._pending: dict[
            tuple[str, str], tuple[str, str | None, list[str], bool, str, dict[str, str]]
        ] = {}
        self._lock = threading.Lock()
        # ARNs, ids and endpoints carry the stack's cloud provider settings, seen when the provider registers.
        self._clouds = fakes.CloudDefaults()

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict]:
        inputs, redacted = _unwrap_secrets(args.inputs)
        with self._lock:
            urn, parent, deps, retain, provider, timeouts = self._pending.pop(
                (args.typ, args.name), ("", None, [], False, "", {})
            )
        if args.typ == "pulumi:providers:aws" and inputs.get("region"):
            self._clouds = dataclasses.replace(self._clouds, aws_region=str(inputs["region"]))
        if args.typ == "pulumi:providers:gcp":
            self._clouds = dataclasses.replace(
                self._clouds,
                gcp_project=str(inputs.get("project") or "") or None,
                gcp_region=str(inputs.get("region") or "") or None,
            )
        if args.typ == "pulumi:providers:azure-native" and self._clouds.azure_subscription_id is None:
            # The stack's first Azure provider sets the defaults; a second one (an Azure DNS zone in another
            # subscription) answers for its own resources only, below.
            self._clouds = dataclasses.replace(self._clouds, **_azure_settings(inputs))
        clouds = self._clouds
        own = self._clouds_of(provider) if args.typ.startswith("azure-native:") and provider else None
        if own is not None and own.azure_subscription_id is not None:
            # An Azure resource's ids carry its own provider's subscription and location.
            clouds = dataclasses.replace(
                clouds,
                azure_subscription_id=own.azure_subscription_id,
                azure_location=own.azure_location or clouds.azure_location,
                azure_tenant_id=own.azure_tenant_id or clouds.azure_tenant_id,
            )
        outputs = fakes.outputs_for(args.typ, args.name, inputs, self.stack, clouds, self._outputs_by_id)
        resource_id = fakes.resource_id(args.typ, args.name, outputs) if args.custom else None
        record = RecordedResource(
            urn=urn,
            type=args.typ,
            name=args.name,
            parent=parent,
            custom=bool(args.custom),
            inputs=inputs,
            redacted_inputs=redacted,
            dependencies=deps,
            id=resource_id,
            outputs=outputs,
            retain_on_delete=retain,
            provider=provider,
            custom_timeouts=timeouts,
            # An output repeating one of the resource's own inputs elsewhere (a record's `fqdn` = its
            # `name`) is the program's value, not the mock's.
            made_up={
                k: v
                for k, v in made_up_outputs(inputs, outputs).items()
                if v not in set(_leaf_strings(inputs))
            },
        )
        with self._lock:
            self.recording.resources.append(record)
        return resource_id, outputs

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict, list[tuple[str, str]]]:
        plain, redacted = _unwrap_secrets(args.args)
        with self._lock:
            self.recording.invokes.append(
                RecordedInvoke(token=args.token, provider=str(args.provider or ""), args=redacted)
            )
        clouds = self._clouds_of(str(args.provider or ""))
        return fakes.invoke_result(args.token, plain, clouds, self._outputs_by_id), []

    def _outputs_by_id(self, resource_id: str) -> dict[str, Any] | None:
        """The outputs of the custom resource registered so far with this id (ARM ids compare without case,
        as ARM does), or None. Fakes read what a resource refers to through it (a subnet's prefix)."""
        key = resource_id.lower()
        with self._lock:
            for r in self.recording.resources:
                if r.custom and r.id is not None and r.id.lower() == key:
                    return r.outputs
        return None

    def _clouds_of(self, provider: str) -> fakes.CloudDefaults:
        """The settings of the provider that answers a call: the explicit provider's own inputs, or, for the
        default provider, none of the stack's (a real one reads the environment), so the fakes' defaults."""
        urn = provider.rsplit("::", 1)[0] if provider else ""
        with self._lock:
            found = [r for r in self.recording.resources if urn and r.urn == urn]
        if not found:
            return fakes.CloudDefaults()
        region = str(found[0].inputs.get("region") or "") or None
        if found[0].type == "pulumi:providers:aws":
            return fakes.CloudDefaults(aws_region=region)
        if found[0].type == "pulumi:providers:gcp":
            project = str(found[0].inputs.get("project") or "") or None
            return fakes.CloudDefaults(gcp_project=project, gcp_region=region)
        if found[0].type == "pulumi:providers:azure-native":
            return fakes.CloudDefaults(**_azure_settings(found[0].inputs))
        return fakes.CloudDefaults()


def _azure_settings(inputs: dict[str, Any]) -> dict[str, str | None]:
    """The azure-native provider's settings that ids and endpoints carry (its `subscriptionId`, `location`,
    `tenantId` inputs: the stack's azure-native:subscriptionId / azure-native:location config)."""
    return {
        "azure_subscription_id": str(inputs.get("subscriptionId") or "") or None,
        "azure_location": str(inputs.get("location") or "") or None,
        "azure_tenant_id": str(inputs.get("tenantId") or "") or None,
    }


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The stock mock monitor drops parent, dependencies, provider and URN; a plan needs all four."""

    mocks: _RecordingMocks

    def RegisterResource(self, request: Any) -> Any:
        if request.type != "pulumi:pulumi:Stack":
            urn = self.make_urn(request.parent, request.type, request.name)
            with self.mocks._lock:
                self.mocks._pending[(request.type, request.name)] = (
                    urn,
                    request.parent or None,
                    list(request.dependencies),
                    bool(getattr(request, "retainOnDelete", False)),
                    str(getattr(request, "provider", "") or ""),
                    _custom_timeouts(request),
                )
        return super().RegisterResource(request)


def _custom_timeouts(request: Any) -> dict[str, str]:
    timeouts = getattr(request, "customTimeouts", None)
    if timeouts is None:
        return {}
    return {key: value for key in ("create", "update", "delete") if (value := getattr(timeouts, key, ""))}


def run_program(program: Callable[[], Any], *, project: str = "inferstack", stack: str = "plan") -> Recording:
    """Run `program` (which creates resources) under the recording mock and wait for every registration.

    Exceptions raised by the program, or inside an apply, propagate unchanged.
    """
    recording = Recording()
    mocks = _RecordingMocks(recording, stack)
    pulumi_mocks.set_mocks(
        mocks, project=project, stack=stack, preview=False, monitor=_RecordingMonitor(mocks)
    )
    try:
        program()
    finally:
        _sync_await(wait_for_rpcs())
    recording.exports = _resolve_exports()
    return recording


def _resolve_exports() -> dict[str, Any]:
    """The stack outputs the program exported, with secret ones redacted."""
    stack = get_root_resource()
    exports: dict[str, Any] = {}
    for name, value in getattr(stack, "outputs", {}).items():
        output = pulumi.Output.from_input(value)
        is_secret = _sync_await(output.is_secret())
        exports[name] = SECRET_PLACEHOLDER if is_secret else _unwrap_secrets(_sync_await(output.future()))[0]
    return exports
