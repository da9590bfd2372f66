"""The stacks' resource graphs acting on a running local supercluster, as the engine would on the
clouds: the program's own dynamic providers create and delete against the local servers, and
local stand-ins do what deleting the application, the control service, the NATS release, its
load balancer Service and its namespace does; everything else exists only in the clouds.

Used by the destroy rehearsal (localnet/rehearsals/destroy.py).
"""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dill  # type: ignore[import-untyped]  # what Pulumi serialises dynamic providers with

from localnet.clients import admin_connection
from localnet.demo import Supercluster
from localnet.region import LocalRegion
from localnet.traffic import Traffic, TrafficSummary
from offline.evaluate import Evaluation, evaluate_in_order
from offline.graph import create_order, delete_order
from offline.mocks_common import plain
from offline.monitor import Registration
from offline.stack_files import load_stack_config, stack_names

DYNAMIC = "pulumi-python:dynamic:Resource"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
RELEASE = "kubernetes:helm.sh/v3:Release"
SERVICE = "kubernetes:core/v1:Service"
NAMESPACE = "kubernetes:core/v1:Namespace"


@dataclass
class Step:
    resource: str
    seconds: float
    outcome: str


@dataclass
class Teardown:
    """One stack's destroy: the local steps in engine order, and what failed."""

    stack: str
    steps: list[Step] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cloud_only: int = 0

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    def lines(self) -> list[str]:
        out = [
            f"destroy {self.stack}: {len(self.steps)} local steps in {self.seconds:.1f} s, "
            f"{self.cloud_only} cloud-only resources, errors {len(self.errors)}"
        ]
        out += [f"  {s.resource}: {s.outcome} ({s.seconds:.1f} s)" for s in self.steps]
        out += [f"  ERROR {e}" for e in self.errors]
        return out


def program_graphs() -> dict[str, Evaluation]:
    stacks = stack_names()
    return evaluate_in_order(stacks, {s: load_stack_config(s) for s in stacks})


def is_nats_dynamic(resource: Registration) -> bool:
    """The program's dynamic resources that talk to NATS (the volume wait talks to the
    Kubernetes API, which has no local stand-in)."""
    return resource.type == DYNAMIC and "connection" in resource.inputs


def provider_of(resource: Registration) -> Any:
    """The dynamic provider exactly as the program serialised it for the engine."""
    return dill.loads(base64.b64decode(plain(resource.inputs["__provider"])))


def local_props(
    resource: Registration, region: LocalRegion, unreachable_seconds: float | None
) -> dict[str, Any]:
    """The resource's inputs, with the connection pointing at the local region: the control
    identity for the meta group, the admin for JetStream objects (as in the program)."""
    props = {k: plain(v) for k, v in resource.inputs.items() if k != "__provider"}
    theirs = props["connection"]
    connection = {
        **admin_connection(region),
        "timeout_seconds": theirs["timeout_seconds"],
        "unreachable_seconds": unreachable_seconds or theirs["unreachable_seconds"],
    }
    if "serverNamePrefix" in props:
        if props["serverNamePrefix"] != region.spec.server_name_prefix:
            raise ValueError(f"{resource.name}: the local region's servers are named otherwise")
        cert, key, _ = region.client_files("control")
        connection.update(
            cert_pem=cert.read_text(), key_pem=key.read_text(), inbox_prefix="_INBOX.control"
        )
    props["connection"] = connection
    return props


@dataclass
class LocalStacks:
    """The three stacks' graphs acting on one running local supercluster."""

    supercluster: Supercluster
    graphs: dict[str, Evaluation]
    traffic: dict[str, Traffic] = field(default_factory=dict)
    summaries: dict[str, TrafficSummary] = field(default_factory=dict)
    # None: each resource's own `unreachable_seconds` (the stack's default).
    unreachable_seconds: float | None = None

    def dynamic(self, stack: str) -> set[str]:
        return {short(r) for r in self.graphs[stack].resources if is_nats_dynamic(r)}

    def deploy(self, stack: str) -> list[str]:
        """The stack's dynamic resources, created by their providers in creation order."""
        region = self.supercluster.planned[stack]
        done = []
        for resource in create_order(self.graphs[stack]):
            if not is_nats_dynamic(resource):
                continue
            outs = provider_of(resource).create(local_props(resource, region, None)).outs or {}
            what = outs.get("action") or f"removed {outs.get('removed')}"
            done.append(f"{short(resource)} {what}")
        return done

    def destroy(self, stack: str) -> Teardown:
        region = self.supercluster.planned[stack]
        teardown = Teardown(stack)
        # What the local stand-in runs beyond the stack (a control service where the stack has
        # none) is not the stack's to delete: it goes first.
        ours = {f"control-{stack}"} if self._has_control(stack) else set()
        extra = [k for k in self.supercluster.services if k.endswith(f"-{stack}")]
        for key in (k for k in extra if k.startswith("control-") and k not in ours):
            self.supercluster.stop_service(key)
            teardown.steps.append(Step(key, 0.0, "not in the stack: stopped first"))
        for resource in delete_order(self.graphs[stack]):
            action = self._local_action(resource, region)
            if action is None:
                teardown.cloud_only += 1
                continue
            started = time.monotonic()
            try:
                outcome = action()
            except Exception as error:  # every failure is reported, the destroy goes on
                outcome = "failed"
                teardown.errors.append(f"{short(resource)}: {type(error).__name__}: {error}")
            teardown.steps.append(Step(short(resource), time.monotonic() - started, outcome))
        return teardown

    def _has_control(self, stack: str) -> bool:
        return any(r.name.endswith("-control-service") for r in self.graphs[stack].resources)

    def _local_action(
        self, resource: Registration, region: LocalRegion
    ) -> Callable[[], str] | None:
        if is_nats_dynamic(resource):
            return lambda: self._delete_dynamic(resource, region)
        stand_ins: dict[tuple[str, str], Callable[[], str]] = {
            (DEPLOYMENT, "-app-calculator-add"): lambda: self._stop_application(region),
            (DEPLOYMENT, "-app-recorder"): lambda: self._stop_service(f"recorder-{region.name}"),
            (DEPLOYMENT, "-control-service"): lambda: self._stop_service(f"control-{region.name}"),
            (RELEASE, "-nats-release"): lambda: self._uninstall(region),
            (SERVICE, "-nats-endpoint-lb"): lambda: self._delete_load_balancer(region),
            (NAMESPACE, "-nats-ns"): lambda: self._delete_volumes(region),
        }
        return next(
            (
                act
                for (kind, suffix), act in stand_ins.items()
                if resource.type == kind and resource.name.endswith(suffix)
            ),
            None,
        )

    def _delete_dynamic(self, resource: Registration, region: LocalRegion) -> str:
        props = local_props(resource, region, self.unreachable_seconds)
        provider_of(resource).delete(resource.name, props)
        return "deleted by its provider"

    def _stop_application(self, region: LocalRegion) -> str:
        traffic = self.traffic.pop(region.name, None)
        if traffic is not None:
            self.summaries[region.name] = traffic.stop()
        self.supercluster.stop_calculators(region.name)
        return "calculators and their traffic stopped"

    def _stop_service(self, key: str) -> str:
        if key not in self.supercluster.services:
            return "not running"
        self.supercluster.stop_service(key)
        return "stopped"

    def _uninstall(self, region: LocalRegion) -> str:
        running = [i for i, p in enumerate(region.processes) if p is not None]
        region.lame_duck(running)
        return f"{len(running)} server(s) stopped in lame duck mode"

    def _delete_load_balancer(self, region: LocalRegion) -> str:
        for proxy in region.proxies:
            proxy.stop()
        region.proxies = []
        self.supercluster.regions.pop(region.name, None)
        return "load balancer gone"

    def _delete_volumes(self, region: LocalRegion) -> str:
        stores = [
            region.workdir / region.spec.names.pod(i) / "jetstream"
            for i in range(region.spec.replicas)
        ]
        for store in stores:
            shutil.rmtree(store, ignore_errors=True)
        return f"{len(stores)} volume(s) deleted"


def short(resource: Registration) -> str:
    return resource.name.removeprefix("nats-supercluster-")
