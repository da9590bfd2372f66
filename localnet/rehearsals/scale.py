"""Scale a region from 3 to 5 servers and back to 3 while requests and JetStream publishes flow.

As `pulumi up` with `nats.replicas` changed does: the chart's ConfigMap gets the new route list,
which the running servers reload (no restart), the StatefulSet adds or removes pods (removed
ones go through lame duck mode, the chart's preStop hook); then the program removes the
departed servers from the JetStream meta group (components/meta_peers.py, the same
infra.meta_ops code as here), so the quorum does not count ghosts.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from nats.aio.client import Client

from infra.meta_ops import MetaGroup, read_meta_group, remove_departed
from infra.nats_conf import render_nats_conf
from infra.nats_values import chart_values
from localnet.clients import connect_as
from localnet.demo import Supercluster
from localnet.options import DemoOptions
from localnet.ports import LOOPBACK
from localnet.region import LocalRegion, ServerPorts
from localnet.rehearsals.common import (
    Report,
    Say,
    replicas_current,
    server_lives,
    stream_messages,
    wait_until,
)
from localnet.traffic import Traffic


async def as_control(region: LocalRegion) -> Client:
    """The `control` identity (system account), through the region's load balancer."""
    return await connect_as(region, "control")


def meta_group_of(region: LocalRegion) -> MetaGroup:
    async def read() -> MetaGroup:
        client = await as_control(region)
        try:
            return await read_meta_group(client)
        finally:
            await client.close()

    return asyncio.run(read())


def remove_departed_peers(region: LocalRegion) -> list[str]:
    async def remove() -> list[str]:
        client = await as_control(region)
        try:
            return await remove_departed(
                client, region.spec.server_name_prefix, server_names(region)
            )
        finally:
            await client.close()

    return asyncio.run(remove())


def server_names(region: LocalRegion) -> list[str]:
    return [
        region.spec.server_name_prefix + region.spec.names.pod(i)
        for i in range(region.spec.replicas)
    ]


def scale(region: LocalRegion, replicas: int) -> list[str | None]:
    """The region at `replicas` servers the way the chart gets there; returns each remaining
    pre-existing server's reload error (None when it reloaded)."""
    before = region.spec.replicas
    if replicas < before:
        region.lame_duck(list(range(replicas, before)))
        del region.processes[replicas:]
        del region.ports[replicas:]
    region.spec = dataclasses.replace(region.spec, replicas=replicas)
    names = region.spec.names
    while len(region.ports) < replicas:
        region.ports.append(ServerPorts.allocate())
    region.add_hosts([f"{names.pod(i)}.{names.headless_service}" for i in range(replicas)])
    region.write_conf(render_nats_conf(chart_values(region.spec)))
    reloads = [region.reload(i) for i in range(min(before, replicas))]
    for ordinal in range(before, replicas):
        region.processes.append(region.start_server(ordinal))
    for ordinal in range(before, replicas):
        region.wait_healthy(ordinal, timeout=60)
    client_lb, *gateway_lb = region.proxies
    client_lb.retarget([(LOOPBACK, p.client) for p in region.ports])
    for proxy in gateway_lb:
        proxy.retarget([(LOOPBACK, p.gateway) for p in region.ports])
    return reloads


def rehearse(workdir: Path, say: Say, *, rtt_ms: float = 10.0) -> Report:
    report = Report("scale a region 3 -> 5 -> 3 servers")
    cluster = Supercluster(
        DemoOptions(state_dir=workdir / "supercluster", rtt_ms=rtt_ms, recorder=False), say=say
    )
    try:
        cluster.up()
        east = cluster.regions["east"]
        group_before = meta_group_of(east)
        messages_before = stream_messages(east)
        lives_before = server_lives({"east": east})
        traffic = [Traffic(region).start() for region in cluster.regions.values()]

        say("scaling east to 5 servers: routes reloaded, two servers started")
        up_reloads = scale(east, 5)
        wait_until(lambda: len(meta_group_of(east).peers) == 8, 60, "8 peers in the meta group")
        grown = meta_group_of(east)
        routes = [
            len({r["remote_name"] for r in east.monitor(i, "routez")["routes"]}) for i in range(5)
        ]
        report.figure(
            f"3 -> 5: reloads {up_reloads}; route peers per server {routes}; meta group "
            f"{len(group_before.peers)} -> {len(grown.peers)} peers"
        )
        kept = {n: (start, _) for n, (start, _) in lives_before.items()}
        started_after = {
            n: (s, _) for n, (s, _) in server_lives({"east": east}).items() if n in kept
        }
        report.promise(
            "3 -> 5: the three servers reloaded their routes and were not restarted",
            up_reloads == [None] * 3
            and {n: s for n, (s, _) in started_after.items()}
            == {n: s for n, (s, _) in kept.items()}
            and routes == [4] * 5,
        )

        say("scaling east back to 3 servers: two lame ducks, routes reloaded, peers removed")
        down_reloads = scale(east, 3)
        removed = remove_departed_peers(east)
        wait_until(lambda: meta_group_of(east).peers == group_before.peers, 60, "the old group")
        wait_until(lambda: replicas_current(east), 60, "the stream's replicas current")
        summaries = [t.stop() for t in traffic]
        group_after = meta_group_of(east)
        report.figure(
            f"5 -> 3: reloads {down_reloads}; peers removed from the meta group: {removed}; "
            f"meta group {len(group_after.peers)} peers, offline {sorted(group_after.offline)}"
        )
        for summary in summaries:
            report.figure(summary.line())
        published = sum(s.published for s in summaries)
        stored = stream_messages(east) - messages_before
        report.promise(
            "5 -> 3: the departed servers were removed from the meta group, which has the "
            "peers it had before",
            down_reloads == [None] * 3
            and sorted(removed) == sorted(grown.peers - group_before.peers)
            and group_after.peers == group_before.peers
            and not group_after.offline,
        )
        report.promise(
            f"no request failed after retries, no answer lost ({published} published, "
            f"{stored} stored), the stream's replicas current",
            all(s.failed == 0 for s in summaries)
            and stored == published
            and replicas_current(east),
        )
    finally:
        cluster.down()
    return report
