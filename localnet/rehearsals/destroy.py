"""Destroy every region, as `pulumi destroy -s <stack>` would, on three local regions.

Each stack file is evaluated under the mocks for its resource graph; its resources are then
taken in the order the engine deletes them (offline.graph.delete_order). The program's own
dynamic providers, loaded from what the program serialised, delete the JetStream objects and
take the servers out of the meta group against the local servers; where the graph deletes the
application, the control service, the NATS release, its load balancer Service and its
namespace, the local stand-ins stop (the release's pods in lame duck mode, as the chart's
preStop hook does) and the volumes go. Everything else exists only in the clouds.

Twice, each time on a fresh deploy made by the same providers in creation order:
1. in reverse deploy order, central, west, then east last and alone, under traffic;
2. with east's endpoint already gone (its servers and load balancer killed out of band):
   central, west, then east, whose every dynamic resource must give up in bounded time.
"""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dill  # type: ignore[import-untyped]  # what Pulumi serialises dynamic providers with

from localnet.demo import DemoOptions, Supercluster, admin_connection
from localnet.region import LocalRegion
from localnet.rehearsals.add_region import CENTRAL, EAST, WEST
from localnet.rehearsals.common import Report, Say, wait_until
from localnet.rehearsals.scale import meta_group_of
from localnet.traffic import Traffic, TrafficSummary
from offline.evaluate import Evaluation, evaluate_in_order
from offline.graph import create_order, delete_order
from offline.mocks import plain
from offline.monitor import Registration
from offline.stack_files import load_stack_config, stack_names

DYNAMIC = "pulumi-python:dynamic:Resource"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
RELEASE = "kubernetes:helm.sh/v3:Release"
SERVICE = "kubernetes:core/v1:Service"
NAMESPACE = "kubernetes:core/v1:Namespace"
DEPLOY_ORDER = ("east", "west", "central")
# Well under the 30 s a resource may take; the default is the stack's own (20 s).
UNREACHABLE_LIMIT_SECONDS = 30.0


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


def lose_region(region: LocalRegion) -> None:
    """The region disappears out of band: load balancer and servers killed, nothing leaves."""
    for proxy in region.proxies:
        proxy.stop()
    region.proxies = []
    for ordinal, process in enumerate(region.processes):
        if process is not None:
            process.kill()
            process.wait(timeout=10)
            region.processes[ordinal] = None


def _still_running(supercluster: Supercluster) -> list[str]:
    servers = [
        f"{r.name}-{i}"
        for r in supercluster.planned.values()
        for i, p in enumerate(r.processes)
        if p is not None and p.poll() is None
    ]
    services = [k for k, p in supercluster.services.items() if p.poll() is None]
    return servers + services


@dataclass
class Rehearsal:
    workdir: Path
    say: Say
    graphs: dict[str, Evaluation]
    report: Report
    unreachable_seconds: float | None
    traffic_seconds: float

    def supercluster(self, name: str) -> Supercluster:
        return Supercluster(
            DemoOptions(
                state_dir=self.workdir / name,
                rtt_ms=10.0,
                plans=(EAST, WEST, CENTRAL),
                app_regions=("east", "west"),
                recorder=False,
            ),
            say=self.say,
        )

    def deploy(self, stacks: LocalStacks, label: str) -> None:
        for stack in DEPLOY_ORDER:
            self.report.figure(f"{label}: deploy {stack}: " + "; ".join(stacks.deploy(stack)))
        peers = meta_group_of(stacks.supercluster.planned["east"]).peers
        self.report.promise(f"{label}: the meta group holds all 7 servers", len(peers) == 7)

    def teardown(self, stacks: LocalStacks, stack: str) -> Teardown:
        teardown = stacks.destroy(stack)
        for line in teardown.lines():
            self.report.figure(line)
        return teardown

    def in_order(self) -> None:
        """Central, west, then east last and alone, under traffic from east and west."""
        report = self.report
        supercluster = self.supercluster("in-order")
        with supercluster.running():
            stacks = LocalStacks(supercluster, self.graphs)
            self.deploy(stacks, "in order")
            for name in ("east", "west"):
                stacks.traffic[name] = Traffic(supercluster.planned[name], concurrency=2).start()
            time.sleep(self.traffic_seconds)
            errors = 0
            for stack in ("central", "west", "east"):
                errors += len(self.teardown(stacks, stack).errors)
                left = [supercluster.planned[n] for n in DEPLOY_ORDER[: DEPLOY_ORDER.index(stack)]]
                if left:
                    group = meta_group_of(left[0])
                    report.promise(
                        f"in order: after {stack}, the meta group is exactly the servers left, "
                        "with a leader",
                        group.peers == server_names(*left)
                        and bool(group.leader)
                        and not group.offline,
                    )
            for name, summary in stacks.summaries.items():
                report.figure(summary.line())
                report.promise(
                    f"in order: traffic from {name} lost nothing until its own destroy",
                    summary.failed == 0 and summary.published > 0,
                )
            report.promise("in order: errors 0", errors == 0)
            report.promise("in order: nothing left running", not _still_running(supercluster))

    def endpoint_gone(self) -> None:
        """A fresh deploy that serves; then east lost out of band; then central, west, east."""
        report = self.report
        supercluster = self.supercluster("endpoint-gone")
        with supercluster.running():
            stacks = LocalStacks(
                supercluster, self.graphs, unreachable_seconds=self.unreachable_seconds
            )
            self.deploy(stacks, "fresh deploy")
            traffic = [
                Traffic(supercluster.planned[n], concurrency=2).start() for n in DEPLOY_ORDER[:2]
            ]
            time.sleep(self.traffic_seconds)
            for running in traffic:
                summary = running.stop()
                report.figure(f"fresh deploy: {summary.line()}")
                report.promise(
                    f"fresh deploy: traffic from {summary.region} served and stored",
                    summary.failed == 0 and summary.published > 0,
                )
            supercluster.stop_calculators("east")
            supercluster.stop_service("control-east")
            lose_region(supercluster.planned["east"])
            east_servers = server_names(supercluster.planned["east"])
            seconds = wait_until(
                lambda: _leader_sees_behind(supercluster.planned["west"], east_servers),
                60,
                "the meta leader seeing east's servers as not current",
            )
            report.figure(
                "east lost out of band: its servers and load balancer killed; the meta leader "
                f"saw them gone after {seconds:.1f} s"
            )
            errors = 0
            for stack in ("central", "west", "east"):
                teardown = self.teardown(stacks, stack)
                errors += len(teardown.errors)
                if stack == "central":
                    west = supercluster.planned["west"]
                    group = meta_group_of(west)
                    report.promise(
                        "east gone: central's departure removed east's offline peers first, so "
                        "west keeps a meta leader",
                        bool(group.leader) and group.peers == server_names(west),
                    )
                if stack == "east":
                    dynamic = [s for s in teardown.steps if s.resource in stacks.dynamic("east")]
                    slowest = max((s.seconds for s in dynamic), default=0.0)
                    report.promise(
                        f"east gone: each of its {len(dynamic)} dynamic resources finished in "
                        f"under {UNREACHABLE_LIMIT_SECONDS:g} s (slowest {slowest:.1f} s)",
                        len(dynamic) >= 3 and slowest < UNREACHABLE_LIMIT_SECONDS,
                    )
            report.promise("endpoint gone: errors 0", errors == 0)
            report.promise("endpoint gone: nothing left running", not _still_running(supercluster))


def _leader_sees_behind(via: LocalRegion, servers: frozenset[str]) -> bool:
    try:
        group = meta_group_of(via)
    except ValueError:  # no server reported a meta group yet
        return False
    return group.from_leader and servers <= group.behind


def server_names(*regions: LocalRegion) -> frozenset[str]:
    return frozenset(
        r.spec.server_name_prefix + r.spec.names.pod(i)
        for r in regions
        for i in range(r.spec.replicas)
    )


def rehearse(
    workdir: Path,
    say: Say,
    *,
    unreachable_seconds: float | None = None,
    traffic_seconds: float = 3.0,
) -> Report:
    report = Report("destroy every region: in reverse deploy order, then with east already gone")
    started = time.monotonic()
    graphs = program_graphs()
    report.figure(
        "resources per stack: "
        + ", ".join(f"{s} {len(e.resources)}" for s, e in graphs.items())
        + f" (evaluated in {time.monotonic() - started:.1f} s)"
    )
    rehearsal = Rehearsal(workdir, say, graphs, report, unreachable_seconds, traffic_seconds)
    rehearsal.in_order()
    rehearsal.endpoint_gone()
    return report
