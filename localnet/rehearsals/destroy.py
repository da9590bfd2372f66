"""Destroy every region, as `pulumi destroy -s <stack>` would, on three local regions.

Each stack file is evaluated under the mocks for its resource graph; its resources are then
taken in the order the engine deletes them (offline.graph.delete_order). The program's own
dynamic providers, loaded from what the program serialised, delete the JetStream objects and
take the servers out of the meta group against the local servers; where the graph deletes the
application, the control service, the NATS release, its load balancer Service and its
namespace, the local stand-ins stop (the release's pods in lame duck mode, as the chart's
preStop hook does) and the volumes go. Everything else exists only in the clouds. The stacks
acting on the local regions are localnet/rehearsals/local_stacks.py.

Twice, each time on a fresh deploy made by the same providers in creation order:
1. in reverse deploy order, central, west, then east last and alone, under traffic;
2. with east's endpoint already gone (its servers and load balancer killed out of band):
   central, west, then east, whose every dynamic resource must give up in bounded time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from localnet.demo import Supercluster
from localnet.options import DemoOptions
from localnet.region import LocalRegion
from localnet.rehearsals.add_region import CENTRAL, EAST, WEST
from localnet.rehearsals.common import Report, Say, wait_until
from localnet.rehearsals.local_stacks import LocalStacks, Teardown, program_graphs
from localnet.rehearsals.scale import meta_group_of
from localnet.traffic import Traffic
from offline.evaluate import Evaluation

DEPLOY_ORDER = ("east", "west", "central")
# Well under the 30 s a resource may take; the default is the stack's own (20 s).
UNREACHABLE_LIMIT_SECONDS = 30.0


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
