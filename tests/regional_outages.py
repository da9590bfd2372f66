"""The two outages the per-region answers layout (tests/regional_layout.py) is put through, a
gateway cut and a region killed whole, each returning what it measured for the facts test
(tests/test_regional_answers_facts.py) to judge."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import nats.errors
from nats.aio.client import Client

from tests.regional_kit import (
    Publisher,
    TwoRegions,
    api,
    connect,
    err_code,
    restart,
    subject_counts,
    until_holds,
    wait_for,
    wait_meta,
)
from tests.regional_layout import REGIONS, SUBJECT_OF, Layout, regional

# A sourcing consumer as the aggregate's leader asks for one (stream.go 3939-3955).
SOURCING_CONSUMER = {
    "ack_policy": "none",
    "max_deliver": 1,
    "flow_control": True,
    "idle_heartbeat": 1_000_000_000,
    "direct": True,
    "sourcing": True,
    "inactive_threshold": 10_000_000_000,
}
OUTAGE_SECONDS = 12.0


async def publish_fails(nc: Client, subject: str) -> bool:
    try:
        await nc.jetstream(timeout=2).publish(subject, b"probe")
    except (nats.errors.Error, TimeoutError):
        return True
    return False


async def cut(layout: Layout) -> dict[str, Any]:
    """East and west cut apart under traffic from both, until the region without the meta
    leader (`alone`) knows it has none; what works there then; a kill of its aggregate's
    leader; the heal; then the aggregate of `alone` stepped down while the other's gets an
    update that leaves its sources as they are, and later its own stepdown."""
    two = layout.two
    wait_for(two.meta_agreed, 30, "a meta leader known to every server")
    (leader,) = two.meta_leaders()
    holder = two.region_of(leader)
    alone = next(r for r in REGIONS if r != holder)
    seen: dict[str, Any] = {"alone": alone}
    ncs = {r: await connect(two[r]) for r in REGIONS}
    await _lead_apart(two, ncs[alone], alone)
    publishers = {r: Publisher(two[r], f"cut-{r}").start() for r in REGIONS}
    try:
        await asyncio.sleep(1)
        started = time.monotonic()
        two.links.cut("east", "west")
        # A follower that grants a candidate its vote keeps naming the old leader (raft.go
        # 5087-5113), so the region's servers learn there is none one after the other.
        await wait_meta(two, lambda views: "" in views, 45, (alone,))
        seen["meta lost, first server"] = time.monotonic() - started
        acked_at_loss = publishers[alone].published
        seen.update(await _without_meta(ncs[alone], alone))
        # The transform's one stream is in east.
        seen["transform publish fails"] = await publish_fails(ncs["west"], "probe.answers")
        seen["resumed after leader kill"] = await _kill_aggregate_leader(
            layout, ncs[alone], alone, publishers[alone]
        )
        seen["stepdown"] = await _stepdown_without_meta(two, ncs[alone], alone)
        await asyncio.sleep(max(0.0, started + MIN_CUT_SECONDS - time.monotonic()))
        for publisher in publishers.values():
            await publisher.stop()
        layout.take(*publishers.values())
        for region, nc in ncs.items():
            mine = SUBJECT_OF[f"answers-{region}"]
            local = Counter({mine: layout.expected()[mine]})
            seen[f"{region} sourced locally"] = await until_holds(
                nc, f"aggregate-{region}", local, 20
            )
        seen["meta before"] = leader
        seen["meta at heal"] = {r: two.meta_views((r,)) for r in REGIONS}
        seen["acked without meta"] = publishers[alone].published - acked_at_loss
        seen["publishes"] = {r: p.summary() for r, p in publishers.items()}
        seen.update(await _heal(layout, ncs, alone, holder, started))
    finally:
        two.links.heal()
        for publisher in publishers.values():
            await publisher.stop()
        for nc in ncs.values():
            await nc.close()
    return seen


# The aggregates' first request across the cut must have gone out (and been lost) before the
# heal: regional_model.first_request_window() ends 20.2 s after the cut.
MIN_CUT_SECONDS = 21.0


async def _without_meta(nc: Client, region: str) -> dict[str, Any]:
    """What the region's admin can and cannot do once one of its servers knows it has no meta
    leader (that one answers 10008; the others, naming a leader beyond the cut, stay silent)."""
    seen: dict[str, Any] = {}
    late = regional("late", region, ["late"])
    seen["create"] = err_code(await api(nc, "STREAM.CREATE.late", late))
    for retention, origin in (("limits", f"answers-{region}"), ("workqueue", f"wq-{region}")):
        config = {**SOURCING_CONSUMER, "name": f"probe-{origin}",
                  "deliver_subject": f"probe.deliver.{origin}"}  # fmt: skip
        made = await api(nc, f"CONSUMER.CREATE.{origin}", {"stream_name": origin, "config": config})
        seen[f"sourcing from {retention}"] = err_code(made) or made["name"].startswith("probe-")
    reader = await nc.jetstream(timeout=5).pull_subscribe_bind("reader", f"aggregate-{region}")
    fetched = await reader.fetch(10, timeout=5)
    for message in fetched:
        await message.ack_sync(timeout=5)
    seen["fetched and acked"] = len(fetched)
    return seen


async def _stepdown_without_meta(two: TwoRegions, nc: Client, region: str) -> int | str:
    """The aggregate's stepdown once its leader knows it has no meta leader (it answers 10008,
    jetstream_api.go 2111-2115); a leader still naming one would grant it (2116-2153) and
    race the others' 10008. "leader not told" when its server has not learnt it in 20 s."""
    started = time.monotonic()
    while True:
        server = await _leader(nc, f"aggregate-{region}")
        if server and not two.meta_view(region, two.ordinal_of(region, server)):
            break
        if time.monotonic() - started > 20:
            return "leader not told"
        await asyncio.sleep(0.2)
    return err_code(await api(nc, f"STREAM.LEADER.STEPDOWN.aggregate-{region}")) or "granted"


async def _leader(nc: Client, stream: str) -> str:
    """The stream's leader, or '' while it has none (or its info does not come)."""
    info = await api(nc, f"STREAM.INFO.{stream}")
    return str(info.get("cluster", {}).get("leader") or "")


async def _lead_apart(two: TwoRegions, nc: Client, region: str) -> None:
    """The aggregate's leader on another server than its region's stream's leader, so that
    killing the first leaves the second in place. Killing both at once leaves the new
    aggregate leader asking a stream with no leader yet: that request is lost and the source
    waits 30 s and the back-off (stream.go 4176-4180, 3379-3392; seen here: over 30 s)."""
    origin = await _leader(nc, f"answers-{region}")
    if await _leader(nc, f"aggregate-{region}") != origin:
        return
    spec = two[region].spec
    other = next(
        name
        for name in (spec.server_name_prefix + spec.names.pod(i) for i in range(spec.replicas))
        if name != origin
    )
    request = {"placement": {"preferred": other}}
    moved = await _granted(nc, f"STREAM.LEADER.STEPDOWN.aggregate-{region}", request)
    assert moved.get("success"), moved
    started = time.monotonic()
    while await _leader(nc, f"aggregate-{region}") in (origin, ""):
        if time.monotonic() - started > GRANT_SECONDS:
            raise TimeoutError(f"aggregate-{region} still led with answers-{region}")
        await asyncio.sleep(0.2)


async def _kill_aggregate_leader(
    layout: Layout, nc: Client, region: str, publisher: Publisher
) -> float:
    """Seconds from the SIGKILL of the aggregate's leader until it holds five more of the
    region's answers than were acknowledged at the kill; the server is started again."""
    two = layout.two
    leader = await _leader(nc, f"aggregate-{region}")
    assert leader
    assert leader != await _leader(nc, f"answers-{region}"), "not led apart"
    killed = two.ordinal_of(region, leader)
    mine = SUBJECT_OF[f"answers-{region}"]
    wanted = layout.expected()[mine] + publisher.published + 5
    two.kill(region, killed)
    took = await until_holds(nc, f"aggregate-{region}", Counter({mine: wanted}), 30)
    await restart(two, region, [killed])
    return took


async def _heal(
    layout: Layout, ncs: dict[str, Client], alone: str, holder: str, cut_at: float
) -> dict[str, Any]:
    """Seconds after the heal until: the meta leader is back, the stepdown of aggregate-`alone`
    is granted and it holds everything; whether aggregate-`holder`, given only an update,
    held everything by then; and when it did after its own stepdown."""
    two = layout.two
    config = (await api(ncs[holder], f"STREAM.INFO.aggregate-{holder}"))["config"]
    two.links.heal()
    healed = time.monotonic()

    def since() -> float:
        return time.monotonic() - healed

    seen: dict[str, Any] = {"cut seconds": healed - cut_at}
    while not await asyncio.to_thread(two.meta_agreed):
        if since() > GRANT_SECONDS:
            raise TimeoutError(
                f"no meta leader known to every server {since():.0f} s after the heal"
            )
        await asyncio.sleep(0.2)
    seen["meta back"] = since()
    seen["update"] = await _update(ncs[holder], config)
    await _step_down(ncs[alone], alone)
    seen["stepdown granted"] = since()
    await until_holds(ncs[alone], f"aggregate-{alone}", layout.expected(), 30)
    seen["stepdown converged"] = since()
    counts = await subject_counts(ncs[holder], f"aggregate-{holder}")
    seen["update only converged by then"] = all(
        counts.get(s, 0) >= n for s, n in layout.expected().items()
    )
    await _step_down(ncs[holder], holder)
    seen["second stepdown granted"] = since()
    await until_holds(ncs[holder], f"aggregate-{holder}", layout.expected(), 30)
    seen["second stepdown converged"] = since()
    return seen


GRANT_SECONDS = 30.0


async def _granted(nc: Client, subject: str, body: Any = None) -> dict[str, Any]:
    """The request again until it is granted (these need the meta leader), at most
    GRANT_SECONDS; the last answer."""
    started = time.monotonic()
    while "error" in (answer := await api(nc, subject, body)) or not answer:
        if time.monotonic() - started > GRANT_SECONDS:
            break
        await asyncio.sleep(0.2)
    return answer


async def _update(nc: Client, config: dict[str, Any]) -> dict[str, Any]:
    """The same configuration again: sources as they are."""
    return await _granted(nc, f"STREAM.UPDATE.{config['name']}", config)


async def _step_down(nc: Client, region: str) -> None:
    answer = await _granted(nc, f"STREAM.LEADER.STEPDOWN.aggregate-{region}")
    assert answer.get("success"), answer


async def kill(layout: Layout) -> dict[str, Any]:
    """The region holding the meta leader SIGKILLed whole for OUTAGE_SECONDS under traffic
    from the other, then restarted on its own stores."""
    two = layout.two
    wait_for(two.meta_agreed, 30, "a meta leader known to every server")
    (leader,) = two.meta_leaders()
    lost = two.region_of(leader)
    alive = next(r for r in REGIONS if r != lost)
    seen: dict[str, Any] = {"killed": lost}
    nc = await connect(two[alive])
    publisher = Publisher(two[alive], f"kill-{alive}").start()
    try:
        await asyncio.sleep(1)
        killed = time.monotonic()
        for ordinal in two.running_servers(lost):
            two.kill(lost, ordinal)
        acked_at_loss = None
        await asyncio.sleep(3)
        late = regional("late", alive, ["late"])
        answer = await api(nc, "STREAM.CREATE.late", late, 3)
        seen["create during outage"] = err_code(answer) or ("created" if answer else "no answer")
        while time.monotonic() - killed < OUTAGE_SECONDS:
            if acked_at_loss is None and not any(await asyncio.to_thread(two.meta_views)):
                seen["meta lost"] = time.monotonic() - killed
                acked_at_loss = publisher.published
            await asyncio.sleep(0.3)
        await publisher.stop()
        layout.take(publisher)
        seen["meta at the end"] = two.meta_leaders()
        seen["acked without meta"] = publisher.published - (acked_at_loss or publisher.published)
        seen["publishes"] = publisher.summary()
        mine = SUBJECT_OF[f"answers-{alive}"]
        seen["sourced locally"] = await until_holds(
            nc, f"aggregate-{alive}", Counter({mine: layout.expected()[mine]}), 20
        )
        await restart(two, lost, list(range(two[lost].spec.replicas)))
        back = time.monotonic()
        seen["outage seconds"] = back - killed
        returned = await connect(two[lost])
        try:
            await until_holds(returned, f"aggregate-{lost}", layout.expected(), 60)
            seen["converged"] = time.monotonic() - back
            seen.update(await _comeback(layout, {alive: nc, lost: returned}, lost))
        finally:
            await returned.close()
    finally:
        await publisher.stop()
        await nc.close()
    return seen


async def _comeback(layout: Layout, ncs: dict[str, Client], lost: str) -> dict[str, Any]:
    """What the returned region takes now can wait on the source's retry in both aggregates:
    the survivors' (its requests to the killed region were lost during the outage) and the
    returned one's own (it may have asked its region's stream for a consumer before that
    stream had a leader again). Whether each held the returned region's new answers a second
    after them, and how long it took once stepped down."""
    comeback = Publisher(layout.two[lost], f"back-{lost}").start()
    await asyncio.sleep(1)
    await comeback.stop()
    layout.take(comeback)
    await asyncio.sleep(1)
    seen: dict[str, Any] = {}
    for region, nc in ncs.items():
        counts = await subject_counts(nc, f"aggregate-{region}")
        held = all(counts.get(s, 0) >= n for s, n in layout.expected().items())
        seen[f"{region} had the comeback"] = held
        if not held:
            stepped = time.monotonic()
            await _step_down(nc, region)
            await until_holds(nc, f"aggregate-{region}", layout.expected(), 30)
            seen[f"{region} after its stepdown"] = time.monotonic() - stepped
    return seen
