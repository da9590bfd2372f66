"""Whether a region's routes keep its servers whole, before a change (would it strand a server?)
and after it (did every server load it, is every pair routed, did a cut cut what it named and
nothing else?), from the servers' own reports. Standard library only: the control service in
the services image uses it.

Routes are whom a server dials. Every server of a region includes the same runtime routes and
skips the route that names itself, and a route connection, once up, carries both ways; so on
paper a list that leaves out one running server still keeps the region whole (that server dials
the others). nats-server 2.14.2 does not hold to that: a reload that removes a server's route
closes every route connection with it, the ones it dialled included (reload.go routesOption.Apply
closes each connection whose route URL matches, and handleDuplicateRoute in route.go gives an
accepted connection the URL of the duplicate it replaced), and the server left out does not
always dial again. Measured on this project's local supercluster under traffic: a list leaving
out a running server kept the region whole 3 times in 12 once a server had restarted, 12 in 12
before. So a list must name every server of the region, unless forced; and the servers' gossip
of routes is not counted on either. The region's servers are the release's (infra/
region_servers.py), whether they answer or not, and any other that answers: a server that is
paused or restarting would otherwise be neither counted nor expected to load the change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra.put_request import Put, PutError
from infra.region_servers import RegionRelease, foreign, names_server, pod_of, route_hosts
from infra.runtime_config import RuntimeState


@dataclass(frozen=True)
class RegionServer:
    """A running server of the region as its VARZ reports it."""

    name: str
    server_id: str
    cluster_port: int
    # When the server last loaded its configuration: set by every successful reload, left
    # by a failed one (nats-server v2.14.2 varz `config_load_time`).
    config_load_time: str = ""
    # The configuration it runs, includes counted: equal for equal configurations (varz
    # `config_digest`), so a server that never took a change still shows its old one.
    config_digest: str = ""
    route_urls: tuple[str, ...] = ()

    @classmethod
    def from_varz(cls, name: str, varz: Mapping[str, Any]) -> RegionServer:
        cluster = varz.get("cluster") or {}
        return cls(
            name,
            str(varz.get("server_id") or ""),
            int(cluster.get("cluster_port") or 0),
            str(varz.get("config_load_time") or ""),
            str(varz.get("config_digest") or ""),
            tuple(str(u) for u in cluster.get("urls") or ()),
        )


def region_of(varz: Mapping[str, Mapping[str, Any]], region: str) -> dict[str, RegionServer]:
    """The region's servers among the VARZ replies of the whole supercluster, by name."""
    return {
        name: RegionServer.from_varz(name, data)
        for name, data in sorted(varz.items())
        if (data.get("cluster") or {}).get("name") == region
    }


def expected(
    release: RegionRelease, answering: Mapping[str, RegionServer]
) -> dict[str, RegionServer]:
    """The servers a put must reach: the release's, whether they answered or not (a silent one
    as the release has it), and any other server of the region that answered (one a scale-up
    added before this service was told of it)."""
    found = dict(answering)
    for name, port in release.servers.items():
        found.setdefault(name, RegionServer(name, "", port))
    return dict(sorted(found.items()))


def silent(release: RegionRelease, answering: Mapping[str, RegionServer]) -> list[str]:
    """The release's servers that did not answer."""
    return sorted(set(release.servers) - set(answering))


ServerUrl = Callable[[str], str | None]  # a pod -> how to reach its server


def server_urls(spec: str) -> ServerUrl:
    """SERVER_URLS: a template with `{pod}`, or a JSON object of pod -> URL; "" for none."""
    if not spec:
        return lambda _pod: None
    if spec.lstrip().startswith("{") and "{pod}" not in spec:
        try:
            table = json.loads(spec)
        except ValueError as error:
            raise ValueError(f"SERVER_URLS is not JSON: {error}") from None
        if not isinstance(table, dict) or not all(
            isinstance(v, str) and v.startswith("tls://") for v in table.values()
        ):
            raise ValueError('SERVER_URLS must map pods to tls:// URLs: {"east-0": "tls://..."}')
        return table.get
    if "{pod}" not in spec or not spec.startswith("tls://"):
        raise ValueError(
            "SERVER_URLS must be a tls:// URL template with {pod} "
            f"(tls://{{pod}}.east-headless.nats.svc:4222) or a JSON object, got {spec!r}"
        )
    return lambda pod: spec.replace("{pod}", pod)


def unnamed(
    routes: Sequence[str], servers: Mapping[str, RegionServer], release: RegionRelease
) -> list[str]:
    """The servers no route of `routes` dials."""
    return sorted(
        name
        for name, server in servers.items()
        if not any(names_server(route, name, server.cluster_port, release) for route in routes)
    )


def stranded(
    routes: Sequence[str], servers: Mapping[str, RegionServer], release: RegionRelease
) -> list[str]:
    """The servers `routes` leaves out, each of which may be left with no route to the others
    (see above): none of them unless the region has at least two."""
    left_out = unnamed(routes, servers, release)
    return left_out if len(servers) > 1 else []


def reload_order(
    routes: Sequence[str] | None, servers: Mapping[str, RegionServer], release: RegionRelease
) -> list[str]:
    """The order to reload the servers in: those the new routes leave out first, while the
    others still dial them (so a reload request still reaches them), then the rest."""
    left_out = unnamed(routes, servers, release) if routes is not None else []
    return [*left_out, *sorted(set(servers) - set(left_out))]


def refuse_routes(put: Put, servers: Mapping[str, RegionServer], release: RegionRelease) -> None:
    """PutError, unless forced, when one of `put`'s routes names none of the region's servers
    (by a name their certificates carry, at their cluster port), or when the routes would
    strand one of them."""
    if not put.sets_routes or put.routes is None or put.force:
        return
    region = release.region
    ports = {name: s.cluster_port for name, s in servers.items()}
    ns = release.namespace
    for index in foreign(put.routes, ports, release):
        raise PutError(
            f"routes[{index}]",
            f"{put.routes[index]!r} names no server of {region}: name each server by its pod "
            f"in the headless Service, as {_example(servers, release)} (or with .{ns}, .{ns}.svc "
            f"or .{ns}.svc.cluster.local after it), at its cluster port; a name that reaches no "
            'server splits the region. Send "force": true to dial it anyway (the change is '
            "verified and rolled back if it splits the region)",
        )
    lost = stranded(put.routes, servers, release)
    if lost:
        listed = ", ".join(
            f"{pod_of(name, region) or name}.{region}-headless:{s.cluster_port}"
            for name, s in sorted(servers.items())
        )
        raise PutError(
            "routes",
            f"would leave {', '.join(lost)} out: when a server's route is removed, the others "
            "close every route connection with it and nats-server 2.14 does not always dial "
            "them again, which leaves it without a route to them; name every server of the "
            f"region, running or not ({listed}), remove a server from the release (pulumi up) "
            'before removing its route, or send "force": true (the change is verified and '
            "rolled back if it splits the region)",
        )


def _example(servers: Mapping[str, RegionServer], release: RegionRelease) -> str:
    for name, server in sorted(servers.items()):
        pod = pod_of(name, release.region)
        if pod is not None:
            return f"{route_hosts(pod, release)[0]}:{server.cluster_port}"
    return f"<pod>.{release.region}-headless:<cluster port>"


@dataclass(frozen=True)
class Expectation:
    """What a change must show once applied: each server reloaded since `before` (or, for a
    rollback, running the configuration it ran then again), the routes each runs (None:
    whatever the release gives), the regions cut off, and the regions that were connected
    before and must still be."""

    servers: frozenset[str]
    before: Mapping[str, RegionServer] = field(default_factory=dict)
    back: bool = False
    route_urls: frozenset[str] | None = None
    cut: frozenset[str] = frozenset()
    kept: frozenset[str] = frozenset()


def expectation_of(
    servers: Mapping[str, RegionServer], after: RuntimeState, connected: set[str]
) -> Expectation:
    """What `servers` must show once `after` is applied, all of it (not only what the put
    named, so a change a later put carries is verified with it): each reloaded since the check
    (`servers` as they answered it), its routes, the regions cut off gone and, while some are,
    the others that were connected (`connected`) kept."""
    cut = frozenset(after.cut_gateways)
    return Expectation(
        frozenset(servers),
        servers,
        route_urls=route_urls(after.routes) if after.routes is not None else None,
        cut=cut,
        kept=frozenset(connected - cut) if cut else frozenset(),
    )


def route_urls(routes: Iterable[str] | None) -> frozenset[str] | None:
    """Route URLs as VARZ lists them: host and port, no scheme."""
    if routes is None:
        return None
    return frozenset(r.split("://", 1)[1] for r in routes)


def problems(
    expected: Expectation,
    varz: Mapping[str, Mapping[str, Any]],
    routez: Mapping[str, Mapping[str, Any]],
    gateways: Mapping[str, set[str]],
) -> list[str]:
    """What is still wrong with the region after a change; [] when it took effect whole."""
    found = []
    names = sorted(expected.servers)
    for name in names:
        data = varz.get(name)
        if data is None:
            found.append(f"{name} did not answer")
            continue
        server = RegionServer.from_varz(name, data)
        before = expected.before.get(name)
        if before is not None and expected.back and server.config_digest != before.config_digest:
            found.append(f"{name} has not gone back to its configuration of before")
            continue
        if (
            before is not None
            and not expected.back
            and server.config_load_time == before.config_load_time
        ):
            found.append(f"{name} has not loaded the change")
            continue
        if expected.route_urls is not None and set(server.route_urls) != expected.route_urls:
            found.append(f"{name} runs routes {sorted(server.route_urls)}")
    for name in names:
        if name not in routez:
            continue
        peers = {str(r.get("remote_name")) for r in routez[name].get("routes") or []}
        missing = sorted(set(names) - {name} - peers)
        if missing:
            found.append(f"{name} has no route to {', '.join(missing)}")
    connected = set().union(*gateways.values()) if gateways else set()
    still_cut = sorted(expected.cut & connected)
    if still_cut:
        found.append(f"still gatewayed to {', '.join(still_cut)}")
    lost = sorted(expected.kept - connected)
    if lost:
        found.append(f"no longer gatewayed to {', '.join(lost)}, which the change kept")
    return found


def gateways_of(
    gatewayz: Mapping[str, Mapping[str, Any]], servers: Iterable[str]
) -> dict[str, set[str]]:
    """The regions each of `servers` has a gateway with, in or out."""
    found = {}
    for name in servers:
        data = gatewayz.get(name) or {}
        found[name] = set(data.get("outbound_gateways") or {}) | set(
            data.get("inbound_gateways") or {}
        )
    return found
