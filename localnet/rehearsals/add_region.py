"""Cut each region off in turn on 3 + 3, add a region at run time, then cut each off again on
3 + 3 + 1, and measure what keeps working.

East and west serve traffic; central (one JetStream server, no application, as
Pulumi.central.yaml configures it) joins listing both. Nothing in east or west is restarted or
reconfigured: implicit gateway discovery connects them back. The JetStream meta group grows to 7.
Per cut, the report gives where the meta leader is, which regions' writes to the R3 `answers`
stream (placed in east) are acknowledged, and where a stream can still be created.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nats

from infra.jetstream_ops import JetStreamApiError, JetStreamUnreachableError
from localnet.clients import connect_as
from localnet.demo import Supercluster
from localnet.options import DemoOptions
from localnet.region import LocalRegion
from localnet.rehearsals.common import (
    Report,
    Say,
    api,
    meta,
    server_lives,
    stream_messages,
    wait_until,
)
from localnet.supercluster import RegionPlan
from localnet.traffic import Traffic

EAST = RegionPlan("east", "east.lb.nats.test", "127.0.0.1", "aws-us-east-1-")
WEST = RegionPlan("west", "west.lb.nats.test", "127.0.0.2", "azure-westus-")
CENTRAL = RegionPlan("central", "central.lb.nats.test", "127.0.0.3", "azure-centralus-", replicas=1)


@dataclass(frozen=True)
class Cut:
    """What was measured while one region's gateway links were down."""

    isolated: str
    leader: str
    leader_side: str
    settled_seconds: float
    writes: dict[str, tuple[int, int]]  # region -> (acknowledged, attempted)
    creates: dict[str, bool]  # region -> a stream could be created from there

    def row(self) -> str:
        writes = ", ".join(f"{r} {ok}/{n}" for r, (ok, n) in self.writes.items())
        creates = ", ".join(f"{r} {'yes' if ok else 'no'}" for r, ok in self.creates.items())
        leader = f"{self.leader} ({self.leader_side})" if self.leader else "none"
        return (
            f"{self.isolated} cut off: meta leader {leader} after {self.settled_seconds:.1f} s; "
            f"answers writes acknowledged {writes}; stream create {creates}"
        )


def rehearse(
    workdir: Path,
    say: Say,
    *,
    writes: int = 10,
    rtt_ms: float = 20.0,
    two_region_cuts: tuple[str, ...] = ("west", "east"),
    three_region_cuts: tuple[str, ...] = ("west", "central", "east"),
) -> Report:
    report = Report("add a region at run time; partitions on 3 + 3 and 3 + 3 + 1")
    cluster = Supercluster(
        DemoOptions(
            state_dir=workdir / "regions",
            rtt_ms=rtt_ms,
            plans=(EAST, WEST, CENTRAL),
            linked=True,
            start=("east", "west"),
            app_regions=("east", "west"),
            recorder=False,
        ),
        say=say,
    )
    try:
        cluster.up()
        for region in two_region_cuts:
            cut = _measure_cut(cluster, region, writes, say)
            report.figure(f"3 + 3, {cut.row()}")
            report.promise(
                f"3 + 3, {region} cut off: no meta leader on either side (3 of 6 is no "
                "majority), and east still writes to its R3 stream",
                not cut.leader and cut.writes["east"][0] == cut.writes["east"][1],
            )
        _add_central(cluster, report, say)
        for region in three_region_cuts:
            cut = _measure_cut(cluster, region, writes, say)
            report.figure(f"3 + 3 + 1, {cut.row()}")
            _check_three(report, cut)
    finally:
        cluster.down()
    return report


def _add_central(cluster: Supercluster, report: Report, say: Say) -> None:
    before = server_lives(cluster.regions)
    messages_before = stream_messages(cluster.first)
    traffic = [Traffic(cluster.regions[r]).start() for r in ("east", "west")]
    time.sleep(1)
    started = time.monotonic()
    cluster.start_region("central")
    wait_until(
        lambda: (
            meta(cluster.regions["central"]).get("cluster_size") == 7
            and all(meta(r).get("leader") for r in cluster.regions.values())
        ),
        60,
        "central in the meta group of 7",
    )
    joined = time.monotonic() - started
    say(f"central joined; meta group of 7 after {joined:.1f} s")
    time.sleep(1)
    summaries = [t.stop() for t in traffic]
    after = server_lives({n: r for n, r in cluster.regions.items() if n != "central"})
    for summary in summaries:
        report.figure(summary.line())
    published = sum(s.published for s in summaries)
    stored = stream_messages(cluster.first) - messages_before
    report.figure(
        f"central started and joined in {joined:.1f} s (meta group of "
        f"{meta(cluster.first)['cluster_size']}); "
        f"east and west lists unchanged: {_lists(cluster)}"
    )
    report.promise(
        "east and west not restarted and not reloaded (server start and config load times "
        "unchanged)",
        after == before,
    )
    report.promise("the JetStream meta group has 7 peers", meta(cluster.first)["cluster_size"] == 7)
    report.promise(
        f"no request failed after retries, no answer lost ({published} published, {stored} stored)",
        all(s.failed == 0 for s in summaries) and stored == published,
    )


def _lists(cluster: Supercluster) -> str:
    return "; ".join(
        f"{name} lists {', '.join(g.name for g in region.spec.peers) or 'no peer'}"
        for name, region in cluster.regions.items()
    )


def _check_three(report: Report, cut: Cut) -> None:
    majority = {"west": "east+central", "central": "east+west", "east": "west+central"}
    report.promise(
        f"3 + 3 + 1, {cut.isolated} cut off: the meta leader is on the majority side "
        f"({majority[cut.isolated]}) and the R3 stream in east keeps accepting east's writes",
        bool(cut.leader)
        and cut.leader_side != cut.isolated
        and cut.writes["east"][0] == cut.writes["east"][1],
    )


def _measure_cut(cluster: Supercluster, isolated: str, writes: int, say: Say) -> Cut:
    assert cluster.links is not None
    say(f"cutting {isolated} off from the other regions")
    cluster.links.isolate(isolated)
    try:
        started = time.monotonic()
        leader, side = _settled_leader(cluster, isolated)
        settled = time.monotonic() - started
        results = asyncio.run(_writes_from(cluster.regions.values(), writes))
        creates = {name: _can_create(region) for name, region in cluster.regions.items()}
    finally:
        cluster.links.heal()
    wait_until(
        lambda: (
            all(cluster.gateways(n) for n in cluster.regions)
            and all(meta(r).get("leader") for r in cluster.regions.values())
        ),
        90,
        "the supercluster healed",
    )
    for stream in api(cluster.first, "STREAM.NAMES").get("streams") or []:
        if stream.startswith("probe-"):  # made by _can_create
            with contextlib.suppress(JetStreamApiError):  # gone already
                api(cluster.first, f"STREAM.DELETE.{stream}")
    return Cut(isolated, leader, side, settled, results, creates)


def _settled_leader(cluster: Supercluster, isolated: str, timeout: float = 90) -> tuple[str, str]:
    """The meta leader once the partition has settled: the side holding a majority of the
    JetStream servers reports a leader of its own, and the other side none of its own (a
    leader that lost its quorum keeps the title until it notices, about 10 s in nats-server's
    raft). ("", "") when neither side holds a majority and neither reports a leader."""
    servers = {n: r.spec.replicas for n, r in cluster.regions.items() if r.spec.jetstream}
    total = sum(servers.values())
    alone = servers.get(isolated, 0)
    majority_side = (
        "isolated" if alone > total / 2 else "rest" if total - alone > total / 2 else None
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {n: meta(r).get("leader") or "" for n, r in cluster.regions.items()}
        own = {n: leader for n, leader in seen.items() if _on_side(cluster, leader, n, isolated)}
        rest = {leader for n, leader in own.items() if n != isolated}
        if majority_side == "rest" and isolated not in own and len(rest) == 1:
            leader = rest.pop()
            return leader, _region_of(cluster, leader)
        if majority_side == "isolated" and not rest and isolated in own:
            return own[isolated], isolated
        if majority_side is None and not own:
            return "", ""
        time.sleep(0.5)
    raise TimeoutError(f"the meta group did not settle within {timeout:g} s of cutting {isolated}")


def _on_side(cluster: Supercluster, leader: str, seen_from: str, isolated: str) -> bool:
    """Whether `leader`, as region `seen_from` reports it, is on `seen_from`'s side of the cut."""
    if not leader:
        return False
    where = _region_of(cluster, leader)
    return (where == isolated) == (seen_from == isolated)


def _region_of(cluster: Supercluster, server: str) -> str:
    return next(
        (n for n, r in cluster.regions.items() if server.startswith(r.spec.server_name_prefix)),
        "?",
    )


async def _writes_from(regions: Iterable[LocalRegion], count: int) -> dict[str, tuple[int, int]]:
    names = [r.name for r in regions]
    results = await asyncio.gather(*(_publish(r, count) for r in regions))
    return dict(zip(names, results, strict=True))


async def _publish(region: LocalRegion, count: int, budget: float = 5.0) -> tuple[int, int]:
    client = await connect_as(region, "requester")
    js = client.jetstream()
    stamp = time.time_ns()

    async def one(i: int) -> bool:
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            try:
                record = {"request_id": f"cut-{region.name}-{stamp}-{i}", "probe": True}
                await js.publish(
                    "answers.throwaway",
                    json.dumps(record).encode(),
                    timeout=1,
                    headers={"Nats-Msg-Id": str(record["request_id"])},
                )
                return True
            except (nats.errors.Error, TimeoutError):
                await asyncio.sleep(0.2)
        return False

    try:
        acked = await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await client.close()
    return sum(acked), count


def _can_create(region: LocalRegion) -> bool:
    """A JetStream API call that needs the meta leader: create a stream in this region."""
    name = f"probe-{region.name}-{time.time_ns()}"
    try:
        api(
            region,
            f"STREAM.CREATE.{name}",
            {
                "name": name,
                "subjects": [f"probe.{region.name}.{time.time_ns()}"],
                "storage": "memory",
            },
            timeout=5,
        )
    except (JetStreamApiError, JetStreamUnreachableError, TimeoutError, nats.errors.Error):
        return False
    return True
