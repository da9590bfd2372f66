"""The JetStream meta group's membership: after a region scales down, the servers that left stay
in the group as offline peers until removed, and the quorum counts them; these functions find
this region's departed peers and remove them, as the `control` identity through the system
account.

Facts (nats-server v2.14.2): `$JS.API.SERVER.REMOVE` is answered by the meta leader to the
system account only (jetstream_api.go:2447), body `{"peer": "<server name>"}`; the removed
server disables JetStream. `$SYS.REQ.SERVER.PING.JSZ` is answered by every server with its
`meta_cluster` (leader, size and the other peers with `offline` and `current`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client

from infra.sys_ping import gather

REMOVE_PEER = "$JS.API.SERVER.REMOVE"
PING_JSZ = "$SYS.REQ.SERVER.PING.JSZ"


@dataclass(frozen=True)
class MetaGroup:
    leader: str
    peers: frozenset[str]
    offline: frozenset[str]
    # Peers the leader does not see as caught up with its log.
    behind: frozenset[str] = frozenset()


def meta_group(replies: Iterable[dict[str, Any]]) -> MetaGroup:
    """The group as its leader reports it (every server's reply names the others); from any
    reply if no leader answered."""
    found = [r for r in replies if r.get("data", {}).get("meta_cluster")]
    if not found:
        raise ValueError("no server reported a JetStream meta group")
    best = next(
        (r for r in found if r["data"]["meta_cluster"].get("leader") == r["server"]["name"]),
        found[0],
    )
    meta = best["data"]["meta_cluster"]
    others = meta.get("replicas") or []
    return MetaGroup(
        leader=str(meta.get("leader") or ""),
        peers=frozenset({best["server"]["name"], *(p["name"] for p in others)}),
        offline=frozenset(p["name"] for p in others if p.get("offline")),
        behind=frozenset(p["name"] for p in others if not p.get("current")),
    )


def departed_peers(group: MetaGroup, server_name_prefix: str, keep: Iterable[str]) -> list[str]:
    """This region's peers (its server-name prefix) that are no longer among its servers."""
    wanted = set(keep)
    return sorted(p for p in group.peers if p.startswith(server_name_prefix) and p not in wanted)


async def read_meta_group(client: Client, wait: float = 1.0) -> MetaGroup:
    """Every server answers the ping; collect for `wait` seconds."""
    return meta_group(await gather(client, PING_JSZ, b"", wait))


async def remove_peer(client: Client, name: str) -> None:
    reply = await client.request(REMOVE_PEER, json.dumps({"peer": name}).encode(), timeout=10)
    answer = json.loads(reply.data)
    if answer.get("error"):
        raise RuntimeError(f"removing JetStream peer {name}: {answer['error']}")


async def remove_departed(
    client: Client, server_name_prefix: str, keep: Iterable[str]
) -> list[str]:
    """Remove this region's departed peers from the meta group; returns their names."""
    departed = departed_peers(await read_meta_group(client), server_name_prefix, keep)
    for name in departed:
        await remove_peer(client, name)
    return departed
