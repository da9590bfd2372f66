"""The part of a region's server configuration that changes at run time, through the control
service rather than a deploy (seed 003's `config.put`), and what the control service reports.

The release includes two runtime files: one inside its `cluster` block (nats.conf: `include
../nats-runtime/routes.conf`), empty unless an operator overrides the region's routes, and one
inside the `gateway` block's `tls` (`gateways.conf`), empty unless an operator cuts regions off.
The servers reload them like the rest of their configuration (the chart's reloader watches
them). They live in a ConfigMap the program creates once and then leaves alone (locally, a
directory), so a runtime change survives restarts and the next `pulumi up`.

A gateway list cannot change by reload: nats-server 2.14 refuses it ("config reload not
supported for Gateway", reload.go), and one unreloadable change makes every later reload of the
region fail, certificate renewals included, until each server restarts. What it does reload is
the gateway TLS `pinned_certs` (reload.go recheckPinnedCerts closes the gateways in and out whose
key is no longer pinned; gateway.go checks the pins on every handshake, both directions). So a
cut pins the server keys of every known region but the ones cut off; lifting it empties the
file. A region's peers themselves change by `pulumi up` (`peers`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra.quorum import quorum_warning
from infra.runtime_files import GATEWAYS_FILE, ROUTES_FILE, ROUTES_INCLUDE, RUNTIME_DIR

__all__ = ["GATEWAYS_FILE", "ROUTES_FILE", "ROUTES_INCLUDE", "RUNTIME_DIR", "STATE_FILE"]

STATE_FILE = "state.json"
HISTORY_KEPT = 20
MAX_ROUTES = 32
_PIN = re.compile(r"[0-9a-f]{64}")
_ROUTE = re.compile(r"(nats|tls)://(?P<host>[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})")


@dataclass(frozen=True)
class RuntimeState:
    """Routes overriding the release's own (None: the release's); the regions cut off and the
    server keys pinned on the gateways meanwhile; who changed what."""

    routes: tuple[str, ...] | None = None
    cut_gateways: tuple[str, ...] = ()
    pinned: tuple[str, ...] = ()
    history: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "routes": list(self.routes) if self.routes is not None else None,
                "cut_gateways": list(self.cut_gateways),
                "pinned": list(self.pinned),
                "history": list(self.history),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> RuntimeState:
        if not text.strip():
            return cls()
        raw = json.loads(text)
        routes = raw.get("routes")
        return cls(
            tuple(routes) if routes is not None else None,
            tuple(raw.get("cut_gateways") or ()),
            tuple(raw.get("pinned") or ()),
            tuple(raw.get("history") or ()),
        )


class PutError(ValueError):
    """A `config.put` that changes nothing: the field and what is wrong with it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class Put:
    """What a put sets: the routes (None: back to the release's) and/or the regions cut off
    (empty: none); a field not given stays as it is."""

    routes: tuple[str, ...] | None = None
    cut_gateways: tuple[str, ...] = ()
    sets_routes: bool = False
    sets_cut: bool = False
    force: bool = False


_FIELDS = ("routes", "cut_gateways", "force")


def parse_put(body: bytes) -> Put:
    """A config.put request, validated on its own; raises PutError naming the field."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise PutError("body", f"not JSON: {error}") from None
    if not isinstance(request, dict):
        raise PutError("body", 'must be a JSON object like {"routes": ["tls://host:6222"]}')
    unknown = sorted(set(request) - {*_FIELDS, "gateways"})
    if unknown:
        raise PutError(unknown[0], f"unknown field; known: {', '.join(_FIELDS)}")
    if "gateways" in request:
        raise PutError(
            "gateways",
            "nats-server 2.14 cannot reload a gateway list, and an unreloadable change makes "
            "every later reload of the region fail until its servers restart; change the "
            "stack's `peers` and `pulumi up` instead, or cut a region off with cut_gateways",
        )
    force = request.get("force", False)
    if not isinstance(force, bool):
        raise PutError("force", "must be true or false")
    if "routes" not in request and "cut_gateways" not in request:
        raise PutError(
            "routes",
            "nothing to change: give routes (a list, or null for the release's own) "
            "and/or cut_gateways (a list of regions, or [] to reconnect them)",
        )
    routes = request.get("routes")
    if routes is not None:
        _check_routes(routes)
        if not routes and not force:
            raise PutError(
                "routes",
                "an empty list would leave the region's servers without routes to one "
                'another; send "force": true to do it anyway',
            )
    cut = request.get("cut_gateways") or []
    if not isinstance(cut, list) or not all(isinstance(c, str) for c in cut):
        raise PutError("cut_gateways", "must be a list of region names (their NATS clusters)")
    if len(set(cut)) != len(cut):
        raise PutError("cut_gateways", "names a region twice")
    return Put(
        tuple(routes) if routes is not None else None,
        tuple(cut),
        sets_routes="routes" in request,
        sets_cut="cut_gateways" in request,
        force=force,
    )


def parse_pins(text: str) -> dict[str, tuple[str, ...]]:
    """GATEWAY_PINS: `{"<region>": ["<sha256 of a server key's SubjectPublicKeyInfo>", ...]}`,
    the known regions' server keys as the release read them."""
    try:
        raw = json.loads(text or "{}")
    except ValueError as error:
        raise ValueError(f"GATEWAY_PINS is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise ValueError('GATEWAY_PINS must map each region to its pins: {"east": ["<hex>"]}')
    pins: dict[str, tuple[str, ...]] = {}
    for region, found in raw.items():
        if not isinstance(found, list) or not all(
            isinstance(p, str) and _PIN.fullmatch(p) for p in found
        ):
            raise ValueError(f"GATEWAY_PINS[{region!r}]: a list of 64-digit lowercase hex pins")
        pins[str(region)] = tuple(found)
    return pins


def pins_for(
    put: Put, own: str, pins: Mapping[str, Sequence[str]], connected: Iterable[str]
) -> tuple[str, ...]:
    """The keys the region's gateways accept while `put.cut_gateways` are cut off: every known
    region's but theirs. Refused (PutError) when a name is not a known peer, when the cut would
    leave no gateway at all or would also cut a connected region whose key the release does not
    know, unless forced."""
    if not put.cut_gateways:
        return ()
    known = sorted(set(pins) - {own})
    if own not in pins:
        raise PutError(
            "cut_gateways",
            f"this control service has no server key of its own region {own!r} (GATEWAY_PINS); "
            "redeploy it with the release's gateway pins",
        )
    for index, region in enumerate(put.cut_gateways):
        if region not in known:
            raise PutError(
                f"cut_gateways[{index}]",
                f"{region!r} is not a peer region whose key this release knows; "
                f"known: {', '.join(known) or 'none'}",
            )
    kept = [r for r in known if r not in put.cut_gateways]
    if not kept and not put.force:
        raise PutError(
            "cut_gateways",
            f"would cut every gateway of {own} ({', '.join(known)}); "
            'send "force": true to do it anyway',
        )
    strangers = sorted(set(connected) - set(pins))
    if strangers and not put.force:
        raise PutError(
            "cut_gateways",
            f"{', '.join(strangers)} connected, but this release has no key for it, so the cut "
            "would cut it off too; deploy this region with it among its peers first, or send "
            '"force": true',
        )
    return tuple(sorted({p for r in (own, *kept) for p in pins[r]}))


def _check_routes(routes: object) -> None:
    if not isinstance(routes, list) or not all(isinstance(r, str) for r in routes):
        raise PutError("routes", "must be a list of route URLs, or null")
    if len(routes) > MAX_ROUTES:
        raise PutError("routes", f"at most {MAX_ROUTES} routes")
    for index, route in enumerate(routes):
        match = _ROUTE.fullmatch(route)
        if match is None or not 1 <= int(match.group("port")) <= 65535:
            raise PutError(
                f"routes[{index}]",
                f"{route!r} is not a route URL like tls://east-3.east-headless:6222",
            )
    if len(set(routes)) != len(routes):
        raise PutError("routes", "lists a route twice")


def applied(
    state: RuntimeState, put: Put, who: str, when: str, pinned: tuple[str, ...] = ()
) -> RuntimeState:
    """The state after `put` (`pinned`: what pins_for gave for it), its change recorded."""
    entry: dict[str, Any] = {"who": who, "when": when}
    routes, cut = state.routes, state.cut_gateways
    if put.sets_routes:
        routes = put.routes
        entry["routes"] = list(routes) if routes is not None else None
    if put.sets_cut:
        cut, pinned = put.cut_gateways, pinned if put.cut_gateways else ()
        entry["cut_gateways"] = list(cut)
    else:
        pinned = state.pinned
    return RuntimeState(routes, cut, pinned, (*state.history, entry)[-HISTORY_KEPT:])


def runtime_files(state: RuntimeState) -> dict[str, str]:
    """The runtime directory (ConfigMap data): the state, and the files the servers include
    (NATS configuration syntax), each empty unless an operator changed it."""
    routes = (
        "routes: [" + ", ".join(json.dumps(r) for r in state.routes) + "]\n"
        if state.routes is not None
        else ""
    )
    gateways = (
        "pinned_certs: [" + ", ".join(json.dumps(p) for p in state.pinned) + "]\n"
        if state.cut_gateways
        else ""
    )
    return {STATE_FILE: state.to_json(), ROUTES_FILE: routes, GATEWAYS_FILE: gateways}


def caller(headers: Mapping[str, str] | None) -> str:
    """Who made a request that came through a service import: the server adds the requester's
    account and user (the certificate's subject) in `Nats-Request-Info`."""
    raw = (headers or {}).get("Nats-Request-Info")
    if not raw:
        return "unknown (no Nats-Request-Info header)"
    try:
        info = json.loads(raw)
    except ValueError:
        return "unknown (unreadable Nats-Request-Info header)"
    return f"{info.get('user') or '?'} in account {info.get('acc') or '?'}"


# --- status ----------------------------------------------------------------------------------


@dataclass
class Replies:
    """What the servers answered to the system account's monitoring pings, by server name."""

    varz: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    routez: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    gatewayz: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    jsz: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    healthz: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def add(self, kind: str, replies: Iterable[Mapping[str, Any]]) -> None:
        found: dict[str, Mapping[str, Any]] = getattr(self, kind)
        for reply in replies:
            found[str(reply["server"]["name"])] = reply.get("data") or {}


def status(region: str, replies: Replies) -> dict[str, Any]:
    """The supercluster as the servers report it, from one region."""
    servers = []
    js_servers: dict[str, int] = {}
    for name, varz in sorted(replies.varz.items()):
        cluster = str((varz.get("cluster") or {}).get("name") or "")
        gatewayz = replies.gatewayz.get(name, {})
        jsz = replies.jsz.get(name, {})
        health = replies.healthz.get(name, {})
        if varz.get("jetstream", {}).get("config") or jsz.get("config"):
            js_servers[cluster] = js_servers.get(cluster, 0) + 1
        servers.append(
            {
                "name": name,
                "cluster": cluster,
                "version": varz.get("version"),
                "healthy": health.get("status") == "ok",
                "routes": sorted(
                    {
                        str(r.get("remote_name"))
                        for r in replies.routez.get(name, {}).get("routes") or []
                    }
                ),
                "gateways": {
                    "outbound": sorted(gatewayz.get("outbound_gateways") or {}),
                    "inbound": sorted(gatewayz.get("inbound_gateways") or {}),
                },
            }
        )
    meta = _meta(replies)
    return {
        "region": region,
        "servers": servers,
        "jetstream": {**meta, "streams": _streams(replies)},
        "quorum": quorum_warning(js_servers)
        or "no partition between the known regions can stall JetStream",
    }


def _meta(replies: Replies) -> dict[str, Any]:
    for name, jsz in replies.jsz.items():
        meta = jsz.get("meta_cluster") or {}
        if meta.get("leader") == name:
            others = meta.get("replicas") or []
            return {
                "meta_leader": name,
                "meta_peers": sorted({name, *(p["name"] for p in others)}),
                "meta_offline": sorted(p["name"] for p in others if p.get("offline")),
            }
    return {"meta_leader": None, "meta_peers": [], "meta_offline": []}


def _streams(replies: Replies) -> list[dict[str, Any]]:
    """Each stream once, as its leader reports it: a follower lists its peers but never itself
    (nats-server v2.14.2 jetstream_cluster.go clusterInfo), so only the leader's view is whole."""
    streams: dict[str, dict[str, Any]] = {}
    for server, jsz in sorted(replies.jsz.items()):
        for account in jsz.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                cluster = stream.get("cluster") or {}
                key = f"{account.get('name')}/{stream['name']}"
                if key in streams and cluster.get("leader") != server:
                    continue
                members = [
                    cluster.get("leader"),
                    *(r["name"] for r in cluster.get("replicas") or []),
                ]
                streams[key] = {
                    "account": account.get("name"),
                    "name": stream["name"],
                    "cluster": cluster.get("name"),
                    "leader": cluster.get("leader"),
                    "replicas": sorted({m for m in members if m}),
                }
    return [streams[k] for k in sorted(streams)]


def region_servers(replies: Replies, region: str) -> dict[str, str]:
    """This region's servers: name -> server id (what a RELOAD request addresses)."""
    return {
        name: str(varz.get("server_id"))
        for name, varz in replies.varz.items()
        if (varz.get("cluster") or {}).get("name") == region
    }


def connected_regions(replies: Replies, region: str) -> set[str]:
    """The regions whose gateways this region's servers have, in or out."""
    found: set[str] = set()
    for name, gatewayz in replies.gatewayz.items():
        if (replies.varz.get(name, {}).get("cluster") or {}).get("name") == region:
            found |= set(gatewayz.get("outbound_gateways") or {})
            found |= set(gatewayz.get("inbound_gateways") or {})
    return found - {region}


def effective(replies: Replies, region: str, state: RuntimeState) -> dict[str, Any]:
    """config.get: the region's routes and gateways as its servers run them, and the runtime
    override with its history."""
    routes = {}
    gateways = {}
    for name, varz in sorted(replies.varz.items()):
        if (varz.get("cluster") or {}).get("name") != region:
            continue
        routes[name] = list((varz.get("cluster") or {}).get("urls") or [])
        gateways[name] = [
            {"name": g.get("name"), "urls": list(g.get("urls") or [])}
            for g in (varz.get("gateway") or {}).get("gateways") or []
        ]
    return {
        "region": region,
        "routes": routes,
        "gateways": gateways,
        "runtime_routes": list(state.routes) if state.routes is not None else None,
        "cut_gateways": list(state.cut_gateways),
        "history": list(state.history),
    }


def reply_allowed(reply: str, prefixes: Sequence[str]) -> bool:
    """The control service answers only into its callers' inboxes: a reply subject naming
    anything else (an API) would make it a deputy."""
    return bool(reply) and any(reply.startswith(p) for p in prefixes)
