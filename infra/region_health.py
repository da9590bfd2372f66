"""What the control service exports about its region, from the servers' own system-account
replies (infra/runtime_status.Replies): the facts the chart's exporter cannot give.

prometheus-nats-exporter v0.20.1 turns the monitoring JSON into metrics key by key and skips
arrays and strings it does not know (collector/collector.go:350-404), so the route list, the
JetStream meta group's peers, each stream replica's lag and every listener's
`tls_cert_not_after` (nats-server v2.14.2 server/monitor.go:1300,1324,1342) never become
series; and a gateway that is not connected has no series at all (collector/gatewayz.go:68-75
walks the connections there are). The control service knows which regions there should be
(its GATEWAY_PINS, the regions of the release), so it can say 0 for a region its servers have
no gateway to. Certificates are exported for every server that answers, whatever its region:
a region without a control service of its own (`central`) has its certificates watched by the
others'. Standard library only: the services image runs it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infra.runtime_status import Replies, runs_jetstream

# A stream replica counts as behind (supercluster_stream_replicas_behind) past these. The
# leader's own `current` is false at any lag (nats-server v2.14.2 server/raft.go:2127-2135:
# lag = the leader's commit index minus what the replica persisted), so under steady writes a
# healthy replica is "not current" now and then: on 2026-12-07, three runs of 2,967-4,616
# publishes/s to a 3-replica stream (tests/test_region_health_live.py) had 1-5 of 74 of the
# leader's reports call a replica not current, never more than 22 operations behind; 1,000 is
# 45 times that. Silence: raft.go:287, lostQuorumInterval, after which the leader itself no
# longer counts a peer current (jetstream_cluster.go:10743-10746); `active` is in nanoseconds
# (a Go Duration, stream.go:387).
REPLICA_LAG_LIMIT = 1000
REPLICA_SILENCE_NS = 10 * 10**9

# name -> (help, label names); every sample carries `region`, the region observed (for a
# certificate, the region of the server that presents it).
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "supercluster_servers": ("Servers of the region answering the system account", ("region",)),
    "supercluster_health_gathered_time_seconds": (
        "When the control service last gathered the servers' replies (Unix time; its start "
        "until the first gathering)",
        ("region",),
    ),
    "supercluster_gateway_servers": (
        "Servers of the region with an outbound gateway to each known region",
        ("region", "remote"),
    ),
    "supercluster_route_peers": (
        "Route peers each server of the region is connected to",
        ("region", "server"),
    ),
    "supercluster_jetstream_meta_leader": (
        "1 when the region's JetStream servers know a meta leader, else 0",
        ("region",),
    ),
    "supercluster_jetstream_meta_peers_offline": (
        "JetStream meta group peers the meta leader reports offline",
        ("region",),
    ),
    "supercluster_stream_replicas_behind": (
        "Replicas of a stream placed in the region that its leader reports offline, unheard "
        f"for over {REPLICA_SILENCE_NS // 10**9} s, or more than {REPLICA_LAG_LIMIT} "
        "operations behind",
        ("region", "account", "stream"),
    ),
    "supercluster_tls_cert_not_after_seconds": (
        "When the certificate a server's listener presents expires (Unix time)",
        ("region", "server", "listener"),
    ),
}
# varz blocks whose `tls_cert_not_after` is a listener's certificate; None: the client port.
_LISTENERS = {"client": None, "cluster": "cluster", "gateway": "gateway"}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


def _cluster(varz: Mapping[str, Any]) -> str:
    return str((varz.get("cluster") or {}).get("name") or "")


def unix_time(text: str) -> float:
    """An RFC 3339 time as nats-server writes it (Go, fractions of up to nine digits)."""
    return datetime.fromisoformat(re.sub(r"\.\d+", "", text).replace("Z", "+00:00")).timestamp()


def _sample(name: str, region: str, value: float, **labels: str) -> Sample:
    return Sample(name, (("region", region), *sorted(labels.items())), float(value))


def gathered(region: str, when: float) -> Sample:
    """When the replies were gathered: a view that stops moving is a view gone stale."""
    return _sample("supercluster_health_gathered_time_seconds", region, when)


def region_health(
    replies: Replies, region: str, known_regions: Iterable[str], when: float
) -> list[Sample]:
    """The samples for `region`, as its servers and the JetStream leaders report it at
    `when` (Unix time), and the certificates of every server that answered."""
    own = {n: v for n, v in replies.varz.items() if _cluster(v) == region}
    samples = [_sample("supercluster_servers", region, len(own)), gathered(region, when)]
    outbound = {n: set(replies.gatewayz.get(n, {}).get("outbound_gateways") or {}) for n in own}
    seen = set().union(*outbound.values()) if outbound else set()
    for remote in sorted((set(known_regions) | seen) - {region}):
        connected = sum(remote in o for o in outbound.values())
        samples.append(_sample("supercluster_gateway_servers", region, connected, remote=remote))
    for name in sorted(own):
        routes = replies.routez.get(name, {}).get("routes") or []
        peers = len({str(r.get("remote_name")) for r in routes})
        samples.append(_sample("supercluster_route_peers", region, peers, server=name))
    return samples + _certificates(replies) + _jetstream(replies, region, own)


def _certificates(replies: Replies) -> list[Sample]:
    found = []
    for name, varz in sorted(replies.varz.items()):
        for listener, block in _LISTENERS.items():
            source = varz if block is None else varz.get(block) or {}
            if source.get("tls_cert_not_after"):
                expiry = unix_time(source["tls_cert_not_after"])
                found.append(
                    _sample(
                        "supercluster_tls_cert_not_after_seconds",
                        _cluster(varz),
                        expiry,
                        server=name,
                        listener=listener,
                    )
                )
    return found


def replica_behind(replica: Mapping[str, Any]) -> bool:
    """A stream replica as its leader reports it (nats-server v2.14.2 server/stream.go:383-392,
    PeerInfo): offline, not heard from for REPLICA_SILENCE_NS or not at all since this leader
    took over (`active` 0 and not current: jetstream_cluster.go:10739-10742), or more than
    REPLICA_LAG_LIMIT operations behind."""
    active = int(replica.get("active") or 0)
    return (
        bool(replica.get("offline"))
        or active > REPLICA_SILENCE_NS
        or (active == 0 and not replica.get("current"))
        or int(replica.get("lag") or 0) > REPLICA_LAG_LIMIT
    )


def _jetstream(replies: Replies, region: str, own: Mapping[str, Any]) -> list[Sample]:
    jetstream = {
        n: replies.jsz[n]
        for n in own
        if replies.jsz.get(n) and runs_jetstream(own[n], replies.jsz[n])
    }
    if not jetstream:
        return []  # the region runs no JetStream, or none of its servers said
    leaders = {str((j.get("meta_cluster") or {}).get("leader") or "") for j in jetstream.values()}
    found = [_sample("supercluster_jetstream_meta_leader", region, bool(leaders - {""}))]
    for name, jsz in replies.jsz.items():  # the meta leader's own report, wherever it runs
        meta = jsz.get("meta_cluster") or {}
        if meta.get("leader") == name:
            offline = sum(bool(p.get("offline")) for p in meta.get("replicas") or [])
            found.append(_sample("supercluster_jetstream_meta_peers_offline", region, offline))
            break
    for name, jsz in sorted(replies.jsz.items()):
        for account in jsz.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                cluster = stream.get("cluster") or {}
                if cluster.get("name") != region or cluster.get("leader") != name:
                    continue  # only the leader's view of a replica is current (runtime_status)
                behind = sum(replica_behind(r) for r in cluster.get("replicas") or [])
                found.append(
                    _sample(
                        "supercluster_stream_replicas_behind",
                        region,
                        behind,
                        account=str(account.get("name")),
                        stream=str(stream.get("name")),
                    )
                )
    return found
