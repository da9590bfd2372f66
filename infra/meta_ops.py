"""The JetStream meta group's membership: after a region scales down, the servers that left stay
in the group as offline peers until removed, and the quorum counts them; these functions find
this region's departed peers and remove them, as the `control` identity through the system
account.

On destroy the whole region leaves (`departure_plan`): its peers go, the meta leader last,
and each removal is checked in the group before the next; when no other region's server is
online in the group, nothing is removed, since the group ends with these servers (and the
leader would refuse to remove the last peer). When removing this region would leave the other
regions' servers without a majority because of offline peers of a region already gone, those
go first: otherwise the survivors lose JetStream for good (removal needs a leader).

Facts (nats-server v2.14.2): `$JS.API.SERVER.REMOVE` is answered by the meta leader to the
system account only (jetstream_api.go:2447), body `{"peer": "<server name>"}`; the reply comes
after the removal is applied and only from a server still leader (jetstream_cluster.go
2617-2649), so a leader removing itself may not answer; the last peer is never removed
(raft.go errRemoveLastNode); a shutdown, lame duck included, never leaves the group. The
removed server disables JetStream. `$SYS.REQ.SERVER.PING.JSZ` is answered by every server
with its `meta_cluster` (leader, size and the other peers with `offline` and `current`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import nats.errors
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
    # Only the leader tracks which peers are online: a follower's view is not to act on.
    from_leader: bool = True


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
        from_leader=meta.get("leader") == best["server"]["name"],
    )


def departed_peers(group: MetaGroup, server_name_prefix: str, keep: Iterable[str]) -> list[str]:
    """This region's peers (its server-name prefix) that are no longer among its servers."""
    wanted = set(keep)
    return sorted(p for p in group.peers if p.startswith(server_name_prefix) and p not in wanted)


async def read_meta_group(client: Client, wait: float = 1.0) -> MetaGroup:
    """Every server answers the ping; collect for `wait` seconds."""
    return meta_group(await gather(client, PING_JSZ, b"", wait))


# JSClusterServerNotMemberErr and JSClusterServerMemberChangeInflightErr (server/errors.json).
NOT_A_MEMBER = 10044
CHANGE_IN_FLIGHT = 10202


class PeerRemovalError(RuntimeError):
    def __init__(self, name: str, error: dict[str, Any]) -> None:
        self.err_code = int(error.get("err_code", 0))
        super().__init__(f"removing JetStream peer {name}: {error}")


async def remove_peer(client: Client, name: str) -> None:
    reply = await client.request(REMOVE_PEER, json.dumps({"peer": name}).encode(), timeout=10)
    answer = json.loads(reply.data)
    if answer.get("error"):
        raise PeerRemovalError(name, answer["error"])


async def remove_departed(
    client: Client, server_name_prefix: str, keep: Iterable[str]
) -> list[str]:
    """Remove this region's departed peers from the meta group; returns their names."""
    departed = departed_peers(await read_meta_group(client), server_name_prefix, keep)
    for name in departed:
        await _remove_checked(client, name, settle_seconds=30.0)
    return departed


@dataclass(frozen=True)
class Departure:
    """What a region's leaving does to the meta group: peers removed in this order (offline
    peers of gone regions first where the survivors need it, this region's followers, then its
    leader), or none with the reason."""

    remove: tuple[str, ...]
    reason: str


def departure_plan(group: MetaGroup, server_name_prefix: str) -> Departure:
    ours = {p for p in group.peers if p.startswith(server_name_prefix)}
    others = group.peers - ours
    # Online: neither offline nor behind (the leader has not heard from it for 10 s).
    online_others = others - group.offline - group.behind
    if not ours:
        return Departure((), "none of this region's servers is in the group")
    if not online_others:
        return Departure(
            (), "no other region's server is online in the group: it ends with these servers"
        )
    ghosts = sorted(others - online_others)
    # After this region leaves, the rest must hold a majority of what remains.
    first = tuple(ghosts) if len(online_others) <= len(others) // 2 else ()
    leader_last = sorted(ours - {group.leader}) + sorted(ours & {group.leader})
    reason = (
        f"peers not online {', '.join(first)} first, or the other regions lose their majority"
        if first
        else "this region's peers, the meta leader last"
    )
    return Departure((*first, *leader_last), reason)


async def leave(client: Client, server_name_prefix: str, settle_seconds: float = 30.0) -> Departure:
    """Take this region's servers out of the meta group (see `departure_plan`), each removal
    checked in the group as its leader reports it; raises if one does not take effect within
    `settle_seconds`."""
    group = await _leaders_view(client, settle_seconds)
    if group is None:
        return Departure(
            (),
            f"no meta leader answered within {settle_seconds:g} s, so nothing can be removed: "
            "if another region still runs, remove these servers there by hand",
        )
    plan = departure_plan(group, server_name_prefix)
    for name in plan.remove:
        await _remove_checked(client, name, settle_seconds)
    return plan


async def _leaders_view(
    client: Client,
    settle_seconds: float,
    wanted: Callable[[MetaGroup], bool] = lambda _group: True,
) -> MetaGroup | None:
    """The group as its leader sees it, once it is `wanted`, waiting out an election for up to
    `settle_seconds`; None if no leader reported such a group by then."""
    deadline = time.monotonic() + settle_seconds
    while True:
        try:
            group = await read_meta_group(client, wait=0.5)
            if group.leader and group.from_leader and wanted(group):
                return group
        except ValueError:
            pass  # no server answered with a meta group yet
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.5)


async def _remove_checked(client: Client, name: str, settle_seconds: float) -> None:
    deadline = time.monotonic() + settle_seconds
    while True:
        try:
            await remove_peer(client, name)
            break
        except (TimeoutError, nats.errors.TimeoutError, nats.errors.NoRespondersError):
            break  # a leader removing itself may step down before it answers: check below
        except PeerRemovalError as error:
            if error.err_code == NOT_A_MEMBER:
                break  # removed already (a retried destroy)
            if error.err_code != CHANGE_IN_FLIGHT or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    await _until_removed(client, name, max(1.0, deadline - time.monotonic()))


async def _until_removed(client: Client, name: str, settle_seconds: float) -> None:
    def gone(group: MetaGroup) -> bool:
        return group.leader != name and name not in group.peers

    if await _leaders_view(client, settle_seconds, gone) is None:
        raise RuntimeError(
            f"JetStream peer {name} was not removed within {settle_seconds:g} s: no meta "
            "leader reported a group without it"
        )
