"""Calling a region's control service as an identity, and reading what the region's servers
themselves say about their routes and gateways: the helpers of the control service's live
tests (tests/test_control_live.py, tests/test_control_attacks.py), which share one running
supercluster (the `control_cluster` fixture in conftest.py)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import permutations
from typing import Any

import nats

from infra.identities import IdentityName
from infra.put_budget import CLI_SECONDS
from localnet.clients import connect_as
from localnet.demo import Supercluster
from localnet.ports import free_port
from localnet.region import LocalRegion
from localnet.rehearsals.common import wait_until
from localnet.traffic import Traffic

ADMIN_DN = "CN=admin,O=nats-supercluster in account APP"


async def call_async(
    region: LocalRegion,
    who: IdentityName,
    endpoint: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    reply: str | None = None,
    seconds: float = CLI_SECONDS,
) -> tuple[bool, Any]:
    """(True, answer) or (False, the service's error description, or the client's error)."""
    errors: list[str] = []
    refused = asyncio.Event()

    async def on_error(error: Exception) -> None:
        errors.append(str(error))
        if "permissions violation" in str(error).lower():
            refused.set()  # the server said no: no answer will come

    client = await connect_as(region, who, error_cb=on_error)
    payload = raw if raw is not None else json.dumps(body).encode() if body is not None else b""
    subject = f"supercluster.{region.name}.{endpoint}"
    try:
        if reply is not None:
            await client.publish(subject, payload, reply=reply)
            await client.flush()
            return True, None
        asked = asyncio.ensure_future(client.request(subject, payload, timeout=seconds))
        said_no = asyncio.ensure_future(refused.wait())
        await asyncio.wait([asked, said_no], return_when=asyncio.FIRST_COMPLETED)
        said_no.cancel()
        if not asked.done():
            asked.cancel()
            return False, f"refused {errors}"
        message = asked.result()
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError) as error:
        return False, f"{type(error).__name__} {errors}"
    finally:
        await client.close()
    if message.headers and message.headers.get("Nats-Service-Error-Code"):
        return False, message.headers.get("Nats-Service-Error")
    return True, json.loads(message.data)


def call(
    region: LocalRegion, who: IdentityName, endpoint: str, body: Any = None, *, wait: float = 0
) -> tuple[bool, Any]:
    """`wait`: seconds to keep asking while nobody answers (the service reconnecting)."""
    deadline = time.monotonic() + wait
    while True:
        ok, answer = asyncio.run(call_async(region, who, endpoint, body))
        if ok or "NoResponders" not in str(answer) or time.monotonic() > deadline:
            return ok, answer
        time.sleep(0.2)


def base_routes(region: LocalRegion) -> list[str]:
    """The region's own routes, as the release gives them (with this machine's ports)."""
    names = region.spec.names
    return [
        f"tls://{names.pod(i)}.{names.headless_service}:{region.ports[i].cluster}"
        for i in range(region.spec.replicas)
    ]


def server_name(region: LocalRegion, ordinal: int) -> str:
    return region.spec.server_name_prefix + region.spec.names.pod(ordinal)


def routed_to(region: LocalRegion, ordinal: int) -> set[str]:
    return {r["remote_name"] for r in region.monitor(ordinal, "routez")["routes"]}


def route_connections(region: LocalRegion) -> dict[int, dict[str, int]]:
    """Per server, how many route connections it holds to each other server (a whole pair has
    the pool's 3; an account's messages take one of them)."""
    counts: dict[int, dict[str, int]] = {}
    for i in range(region.spec.replicas):
        names = [r["remote_name"] for r in region.monitor(i, "routez")["routes"]]
        counts[i] = {name: names.count(name) for name in sorted(set(names))}
    return counts


def meshed(region: LocalRegion) -> bool:
    """Every server of the region routed to every other (ROUTEZ of each)."""
    names = {server_name(region, i) for i in range(region.spec.replicas)}
    return all(
        routed_to(region, i) >= names - {server_name(region, i)}
        for i in range(region.spec.replicas)
    )


def gateways(region: LocalRegion, ordinal: int) -> set[str]:
    gatewayz = region.monitor(ordinal, "gatewayz")
    return set(gatewayz.get("outbound_gateways") or {}) | set(
        gatewayz.get("inbound_gateways") or {}
    )


def gatewayed(a: LocalRegion, b: LocalRegion) -> bool:
    """Any gateway connection, either way, between the two regions."""
    return any(b.name in gateways(a, i) for i in range(a.spec.replicas)) or any(
        a.name in gateways(b, i) for i in range(b.spec.replicas)
    )


def whole(cluster: Supercluster) -> bool:
    return all(cluster.gateways(name) for name in cluster.regions)


async def _undelivered(region: LocalRegion, seconds: float) -> list[tuple[int, int]]:
    clients = [await connect_as(region, "admin", server=i) for i in range(region.spec.replicas)]
    tag = uuid.uuid4().hex[:8]
    received: set[tuple[int, int]] = set()
    try:
        for to, client in enumerate(clients):

            async def got(msg: Any, to: int = to) -> None:
                received.add((int(msg.data), to))

            await client.subscribe(f"pairs.{tag}.{to}", cb=got)
            await client.flush()
        await asyncio.sleep(0.5)  # the interest reaches every server of the region
        pairs = list(permutations(range(region.spec.replicas), 2))
        for sender, to in pairs:
            await clients[sender].publish(f"pairs.{tag}.{to}", str(sender).encode())
            await clients[sender].flush()
        deadline = time.monotonic() + seconds
        while len(received) < len(pairs) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        for client in clients:
            await client.close()
    return sorted(set(pairs) - received)


def undelivered(region: LocalRegion, seconds: float = 3.0) -> list[tuple[int, int]]:
    """The ordered pairs of the region's servers (from, to) across which a message published
    by a client of one did not reach a subscriber on the other."""
    return asyncio.run(_undelivered(region, seconds))


RUNTIME_FILES = ("routes.conf", "gateways.conf", "state.json")


@contextmanager
def under_traffic(cluster: Supercluster) -> Iterator[None]:
    """Traffic in every region for the block; afterwards each of east's six ordered server
    pairs delivers, and no request failed after retries."""
    traffic = [Traffic(region).start() for region in cluster.regions.values()]
    try:
        yield
    finally:
        summaries = [t.stop() for t in traffic]
    east = cluster.regions["east"]
    wait_until(lambda: meshed(east), 20, "east's servers routed to one another")
    # ROUTEZ lists a pair as routed once one of its pooled route connections is up (nats-server
    # v2.14.2 keeps DEFAULT_ROUTE_POOL_SIZE = 3 per pair, server/const.go:159, and an account's
    # messages take one of them): delivery between every pair follows within seconds.
    missing: list[tuple[int, int]] = []

    def delivering() -> bool:
        missing[:] = undelivered(east)
        return not missing

    try:
        wait_until(delivering, 20, "every pair of east's servers delivering")
    except TimeoutError as error:
        raise AssertionError(f"{error}: {missing} undelivered, {route_connections(east)}") from None
    for summary in summaries:
        print(summary.line())
        assert summary.failed == 0, summary.line()


def region_files(region: LocalRegion) -> dict[str, str]:
    return {name: (region.runtime_dir / name).read_text() for name in RUNTIME_FILES}


def put_base(region: LocalRegion) -> None:
    ok, answer = call(region, "admin", "config.put", {"routes": base_routes(region)}, wait=15)
    assert ok, answer


def settled_config(region: LocalRegion, deadline: float) -> dict[str, Any]:
    """config.get once the last put has an outcome (by the put's own budget at the latest);
    while routes re-form a read may reach no server routed to the service, so it asks again."""
    while True:
        ok, config = call(region, "admin", "config.get", wait=10)
        assert ok, config
        if config["history"][-1]["outcome"] != "pending" or time.monotonic() > deadline:
            assert config["history"][-1]["outcome"] != "pending", config["history"][-1]
            return dict(config)
        time.sleep(0.5)


def spare_route(region: LocalRegion) -> str:
    """A route to a server the region may get later (none runs there now): it names no server
    of the region, so a put naming it is forced."""
    names = region.spec.names
    return f"tls://{names.pod(7)}.{names.headless_service}:{free_port()}"
