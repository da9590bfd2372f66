"""A change found pending when the control service starts: its last run ended between storing it
and recording what became of it (killed, or rolled out while it watched). What the servers must
show for it to be recorded applied, judged from what the change recorded when it was stored
(when each server last loaded its configuration, and the state it came from), and what they
must show once it is rolled back. Standard library only: the control service in the services
image uses it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.runtime_checks import Expectation, RegionServer, route_urls
from infra.runtime_config import BEFORE, PENDING, RuntimeState


def pending_entry(state: RuntimeState) -> Mapping[str, Any] | None:
    """The newest change whose outcome nobody recorded, if any."""
    found = [e for e in state.history if e.get("outcome") == PENDING and e.get("change")]
    return found[-1] if found else None


def recorded_before(entry: Mapping[str, Any]) -> bool:
    """Whether the change recorded what it came from (every change this version stores)."""
    return isinstance(entry.get(BEFORE), Mapping)


def loads_of(entry: Mapping[str, Any]) -> dict[str, str]:
    """When each server last loaded its configuration as the change was stored."""
    loads = (entry.get(BEFORE) or {}).get("loads") or {}
    return {str(k): str(v) for k, v in loads.items()}


def resumed(
    entry: Mapping[str, Any],
    state: RuntimeState,
    servers: Mapping[str, RegionServer],
    connected: set[str],
) -> Expectation:
    """What `servers` show when they run `state`, the change `entry` left: each loaded its
    configuration since the change was stored (a server that restarted since did, at its
    start), runs its routes, and has no gateway to a region cut off while it keeps the others
    (`connected`: the regions gatewayed now)."""
    loads = loads_of(entry)
    before = {
        name: RegionServer(name, "", server.cluster_port, config_load_time=loads[name])
        for name, server in servers.items()
        if name in loads
    }
    cut = frozenset(state.cut_gateways)
    return Expectation(
        frozenset(servers),
        before,
        route_urls=route_urls(state.routes) if state.routes is not None else None,
        cut=cut,
        kept=frozenset(connected - cut) if cut else frozenset(),
    )


def restored(
    state: RuntimeState, before: RuntimeState, servers: Mapping[str, RegionServer]
) -> Expectation:
    """What `servers` show once `before` is back: its routes, and the regions `state` cut off
    and `before` did not gatewayed again."""
    return Expectation(
        frozenset(servers),
        back=True,
        route_urls=route_urls(before.routes) if before.routes is not None else None,
        cut=frozenset(before.cut_gateways),
        kept=frozenset(state.cut_gateways) - frozenset(before.cut_gateways),
    )
