"""What the control service makes of the servers' own reports (the system account's
`$SYS.REQ.SERVER.PING.<KIND>` replies, by server name): the supercluster's status, a region's
servers, routes and gateways, and config.get's view of the runtime override. Standard library
only: the control service in the services image uses it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.quorum import quorum_warning
from infra.runtime_config import RuntimeState


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


def runs_jetstream(varz: Mapping[str, Any], jsz: Mapping[str, Any]) -> bool:
    """Whether a server runs JetStream. A server with JetStream off still answers JSZ, with
    `disabled` (nats-server v2.14.2 server/monitor.go:3083, set at 3260-3265) beside a zeroed
    `config` (3084: a struct, which `omitempty` never leaves out), so only `disabled` tells.
    Without a JSZ reply: VARZ's `jetstream.config`, which only a running JetStream fills
    (monitor.go:2004-2012)."""
    if jsz:
        return not jsz.get("disabled")
    return bool((varz.get("jetstream") or {}).get("config"))


def status(region: str, replies: Replies) -> dict[str, Any]:
    """The supercluster as the servers report it, from one region."""
    servers = []
    js_servers: dict[str, int] = {}
    for name, varz in sorted(replies.varz.items()):
        cluster = str((varz.get("cluster") or {}).get("name") or "")
        gatewayz = replies.gatewayz.get(name, {})
        jsz = replies.jsz.get(name, {})
        health = replies.healthz.get(name, {})
        if runs_jetstream(varz, jsz):
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
