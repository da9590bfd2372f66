"""What the control service makes of real servers' replies: a region with JetStream off (east
3 servers with JetStream, west 3 without, the layout infra/quorum.py recommends for two
regions) and a three-replica stream under steady writes. The replies are gathered as the
control service gathers them (services/control.ping, the `control` identity on the system
account) from the pinned nats-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from infra.region_health import region_health
from infra.runtime_status import Replies, status
from localnet.clients import connect_as
from localnet.region import LocalRegion
from localnet.rehearsals.common import wait_until
from localnet.supercluster import RegionPlan, running_supercluster
from services.control import ping

pytestmark = pytest.mark.live

WRITERS = 100
WRITE_SECONDS = 12.0


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LocalRegion]]:
    with running_supercluster(
        tmp_path_factory.mktemp("health"),
        [
            RegionPlan("east", "east.lb.nats.test", "127.0.0.1", "aws-us-east-1-"),
            RegionPlan("west", "west.lb.nats.test", "127.0.0.2", "azure-westus-", jetstream=False),
        ],
    ) as regions:
        yield regions


def gather(region: LocalRegion, wait: float = 1.0) -> Replies:
    async def run() -> Replies:
        client = await connect_as(region, "control")
        try:
            return await ping(client, wait)
        finally:
            await client.close()

    return asyncio.run(run())


def values(replies: Replies, region: str, family: str) -> list[float]:
    return [
        s.value for s in region_health(replies, region, ["east", "west"], 0.0) if s.name == family
    ]


def test_a_region_with_jetstream_off_reports_no_meta_leader_and_takes_no_quorum_vote(
    regions: dict[str, LocalRegion],
) -> None:
    found: list[Replies] = []

    def whole() -> bool:
        replies = gather(regions["west"])
        found[:] = [replies]
        return len(replies.jsz) == 6 and values(
            replies, "east", "supercluster_jetstream_meta_leader"
        ) == [1.0]

    wait_until(whole, 60, "six servers answering and east's meta leader known")
    (replies,) = found
    west = sorted(n for n, v in replies.varz.items() if v["cluster"]["name"] == "west")
    assert len(west) == 3
    for name in west:  # what the pinned server says with JetStream off
        assert replies.jsz[name]["disabled"] is True
        assert "config" in replies.jsz[name]
        assert not replies.varz[name].get("jetstream", {}).get("config")
    assert values(replies, "west", "supercluster_servers") == [3.0]
    assert values(replies, "west", "supercluster_jetstream_meta_leader") == []
    assert values(replies, "west", "supercluster_jetstream_meta_peers_offline") == []
    report = status("west", replies)
    assert report["quorum"] == "no partition between the known regions can stall JetStream"
    assert report["jetstream"]["meta_peers"] == sorted(
        n for n, v in replies.varz.items() if v["cluster"]["name"] == "east"
    )


async def _write_and_watch(east: LocalRegion) -> tuple[int, list[Replies]]:
    """WRITERS publishers into an R3 stream for WRITE_SECONDS, the servers' replies gathered
    meanwhile; returns the acknowledged writes and the gatherings."""
    admin = await connect_as(east, "admin")
    watcher = await connect_as(east, "control")
    try:
        js = admin.jetstream()
        await js.add_stream(name="steady", subjects=["steady.>"], num_replicas=3)
        stop = asyncio.Event()
        written = [0]

        async def write(i: int) -> None:
            while not stop.is_set():
                await js.publish(f"steady.{i}", b"x" * 100)
                written[0] += 1

        writers = [asyncio.create_task(write(i)) for i in range(WRITERS)]
        gatherings = []
        deadline = time.monotonic() + WRITE_SECONDS
        while time.monotonic() < deadline:
            gatherings.append(await ping(watcher, 0.3, ("varz", "jsz")))
        stop.set()
        await asyncio.gather(*writers)
        return written[0], gatherings
    finally:
        await watcher.close()
        await admin.close()


def _replicas(replies: Replies) -> list[dict[str, Any]]:
    """The stream's replicas as its leader reports them."""
    for name, jsz in replies.jsz.items():
        for account in jsz.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                cluster = stream.get("cluster") or {}
                if stream["name"] == "steady" and cluster.get("leader") == name:
                    return list(cluster.get("replicas") or [])
    return []


def test_steady_writes_leave_no_replica_behind(regions: dict[str, LocalRegion]) -> None:
    """The leader calls a replica current only at zero lag (raft.go:2127-2135), so under
    steady writes it reports healthy replicas not current now and then; none of them is
    behind (infra/region_health.replica_behind)."""
    east = regions["east"]
    wait_until(
        lambda: values(gather(east), "east", "supercluster_jetstream_meta_leader") == [1.0],
        60,
        "east's meta leader",
    )
    written, gatherings = asyncio.run(_write_and_watch(east))
    reports = [r for g in gatherings for r in _replicas(g)]
    not_current = [r for r in reports if not r["current"]]
    print(
        f"{written} writes in {WRITE_SECONDS:g} s ({written / WRITE_SECONDS:.0f}/s) from "
        f"{WRITERS} publishers; {len(not_current)} of {len(reports)} replica reports not "
        f"current, lag at most {max((r.get('lag', 0) for r in reports), default=0)}, "
        f"active at most {max((r['active'] for r in reports), default=0) / 1e6:.0f} ms"
    )
    assert written > 1000
    assert len(reports) >= 2 * 10  # two replicas in at least ten of the leader's reports
    behind = [values(g, "east", "supercluster_stream_replicas_behind") for g in gatherings]
    assert all(b in ([0.0], []) for b in behind), behind
    assert sum(b == [0.0] for b in behind) >= 10
