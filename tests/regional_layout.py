"""The per-region answers layout the facts test checks, built in the order an upgrade from
today's single `answers` stream would take (the two outages it is put through, a gateway cut
and a region killed whole, are in tests/regional_outages.py).

Layout: `answers` as the seed stack creates it, holding answers published before any mapping;
the APP account's `mappings` storing `answers.significant`, published through a server of
cluster C, as `answers.C.significant`; `answers-east` / `answers-west` (R3, Limits, placed by
`placement.cluster`); per region an aggregate sourcing both and `answers` (west's gets
`answers` by an update, once it holds data); a WorkQueue stream and, on the aggregate, a
durable consumer in each region.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.identities import ANSWER_SUBJECTS
from infra.jetstream import StreamSpec, stream_request
from localnet.seed import create_seed_jetstream
from tests.regional_kit import (
    Publisher,
    TwoRegions,
    api,
    connect,
    subject_counts,
    until_holds,
)
from tests.regional_model import cluster_mappings

REGIONS = ("east", "west")
ORIGINS = ("answers-east", "answers-west", "answers")
SUBJECT_OF = {
    "answers-east": "answers.east.significant",
    "answers-west": "answers.west.significant",
    "answers": "answers.significant",
}


def regional(name: str, cluster: str, subjects: list[str], **spec: Any) -> dict[str, Any]:
    """A stream's create request through the product's own StreamSpec, placed in `cluster`."""
    return stream_request(
        StreamSpec(name=name, subjects=subjects, placement={"cluster": cluster}, **spec), cluster, 3
    )


def aggregate(cluster: str, sources: tuple[str, ...]) -> dict[str, Any]:
    """No subjects of its own: allowed for a stream with sources (stream.go 2111-2114)."""
    return regional(f"aggregate-{cluster}", cluster, [], sources=[{"name": s} for s in sources])


@dataclass
class Layout:
    two: TwoRegions
    # Every Nats-Msg-Id acknowledged, and the stream that acknowledged it: each aggregate must
    # end with each of them exactly once.
    acked: dict[str, str] = field(default_factory=dict)
    # aggregate-west's subjects before `answers` was added as a source, and the update's answer.
    upgrade: dict[str, Any] = field(default_factory=dict)

    def take(self, *publishers: Publisher) -> None:
        for publisher in publishers:
            self.acked.update(publisher.acked)

    def expected(self) -> Counter[str]:
        """What an aggregate must hold per subject: each origin stores its own subjects."""
        return Counter(SUBJECT_OF[stream] for stream in self.acked.values())

    async def publish_for(self, seconds: float, tag: str) -> list[Publisher]:
        publishers = [Publisher(self.two[r], f"{tag}-{r}").start() for r in REGIONS]
        await asyncio.sleep(seconds)
        for publisher in publishers:
            await publisher.stop()
        self.take(*publishers)
        return publishers


@contextlib.contextmanager
def built(workdir: Path) -> Iterator[Layout]:
    with TwoRegions.running(workdir) as two:
        layout = Layout(two)
        create_seed_jetstream(two["east"])  # today's layout, by the provider `pulumi up` runs
        asyncio.run(_build(layout))
        yield layout


async def _build(layout: Layout) -> None:
    two = layout.two
    await layout.publish_for(1.5, "old")  # no mapping yet: into `answers`
    east, west = await connect(two["east"]), await connect(two["west"])
    try:
        for nc, request in (
            (east, regional("answers-east", "east", ["answers.east.>"])),
            (west, regional("answers-west", "west", ["answers.west.>"])),
            (east, regional("wq-east", "east", ["wq.east"], retention="workqueue")),
            (west, regional("wq-west", "west", ["wq.west"], retention="workqueue")),
            (east, aggregate("east", ORIGINS)),
            (west, aggregate("west", ORIGINS[:2])),
        ):
            answer = await api(nc, f"STREAM.CREATE.{request['name']}", request)
            assert "error" not in answer, answer
        assert two.set_mappings(cluster_mappings(ANSWER_SUBJECTS, REGIONS)) == [None] * 6
        await layout.publish_for(1.0, "new")
        await until_holds(west, "aggregate-west", Counter({SUBJECT_OF["answers-west"]: 1}), 20)
        before = await subject_counts(west, "aggregate-west")
        updated = await api(west, "STREAM.UPDATE.aggregate-west", aggregate("west", ORIGINS))
        layout.upgrade = {"before": before, "update": updated}
        consumer = {"durable_name": "reader", "ack_policy": "explicit", "deliver_policy": "all"}
        for nc, region in ((east, "east"), (west, "west")):
            request = {"stream_name": f"aggregate-{region}", "config": consumer}
            created = await api(nc, f"CONSUMER.CREATE.aggregate-{region}.reader", request)
            assert "error" not in created, created
    finally:
        await east.close()
        await west.close()
