"""What the control service exports about its region, from replies shaped as nats-server
v2.14.2 sends them (server/monitor.go: Varz 1224-1301 with `tls_cert_not_after` at 1300, 1324,
1342; MetaClusterInfo 3066-3076; JSInfo 3079-3095; server/stream.go ClusterInfo and PeerInfo
371-392). tests/test_region_health_live.py holds these shapes to real servers."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from nats.aio.client import Client

from infra.region_health import (
    REPLICA_LAG_LIMIT,
    Sample,
    gathered,
    region_health,
    replica_behind,
    unix_time,
)
from infra.runtime_status import Replies, status
from services import control, metrics
from services.config_check import ConfigChecker
from services.runtime_store import FileStore

EXPIRES = "2027-12-06T10:00:00Z"
NOW = 1_796_000_000.0
SECOND_NS = 10**9
# A server with JetStream off answers JSZ like this (nats-server 2.14.2, captured by
# tests/test_region_health_live.py; server/monitor.go:3260-3265).
JETSTREAM_OFF = {
    "memory": 0,
    "storage": 0,
    "api": {"level": 0, "total": 0, "errors": 0},
    "disabled": True,
    "config": {"max_memory": 0, "max_storage": 0},
    "streams": 0,
    "consumers": 0,
    "total": 0,
}


def server(name: str, cluster: str, **varz: Any) -> dict[str, Any]:
    return {"server": {"name": name}, "data": {"cluster": {"name": cluster}, **varz}}


def reply(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"server": {"name": name}, "data": data}


def values(samples: list[Sample], family: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The family's samples by their labels, in name order."""
    return {tuple(sorted(s.labels)): s.value for s in samples if s.name == family}


def east(outbound: dict[str, list[str]], *, leader: str = "e0") -> Replies:
    """East's three servers (e0..e2) and one west server (w0) answering."""
    replies = Replies()
    replies.add(
        "varz",
        [
            server("e0", "east", start="2026-12-06T10:00:00.5Z", tls_cert_not_after=EXPIRES),
            server("e1", "east", start="2026-12-06T10:00:01Z"),
            server("e2", "east", start="2026-12-06T10:00:02Z"),
            server("w0", "west", start="2026-12-06T10:00:03Z", tls_cert_not_after=EXPIRES),
        ],
    )
    replies.add(
        "gatewayz",
        [
            reply(n, {"outbound_gateways": {remote: {} for remote in r}})
            for n, r in outbound.items()
        ],
    )
    replies.add(
        "routez",
        [
            reply("e0", {"routes": [{"remote_name": "e1"}, {"remote_name": "e2"}]}),
            # a route pool: several connections to one peer count once
            reply("e1", {"routes": [{"remote_name": "e0"}, {"remote_name": "e0"}]}),
            reply("e2", {"routes": [{"remote_name": "e0"}, {"remote_name": "e1"}]}),
        ],
    )
    meta = {"leader": leader, "replicas": [{"name": "w0", "offline": True}, {"name": "e1"}]}
    replicas = [
        {"name": "e1", "current": True, "active": SECOND_NS // 4},
        {"name": "e2", "current": False, "offline": True, "active": 0, "lag": 12},
    ]
    stream = {"name": "answers", "cluster": {"name": "east", "leader": "e0", "replicas": replicas}}
    follower_view = {"name": "answers", "cluster": {"name": "east", "leader": "e0"}}
    jsz = [
        reply(
            "e0",
            {
                "config": {},
                "meta_cluster": meta,
                "account_details": [{"name": "APP", "stream_detail": [stream]}],
            },
        ),
        reply(
            "e1",
            {
                "config": {},
                "meta_cluster": {"leader": leader},
                "account_details": [{"name": "APP", "stream_detail": [follower_view]}],
            },
        ),
        reply("w0", {"config": {}, "meta_cluster": {"leader": leader}}),
    ]
    # "config" is empty on these replies; a JetStream server's has its limits
    for item in jsz:
        item["data"]["config"] = {"max_memory": 1}
    replies.add("jsz", jsz)
    return replies


def test_servers_gateways_and_routes_of_the_region() -> None:
    samples = region_health(
        east({"e0": ["west"], "e1": ["west"], "e2": []}), "east", ["east", "west", "central"], NOW
    )
    assert values(samples, "supercluster_servers") == {(("region", "east"),): 3}
    assert values(samples, "supercluster_health_gathered_time_seconds") == {
        (("region", "east"),): NOW
    }
    # a known region no server reaches has a 0, not a missing series
    assert values(samples, "supercluster_gateway_servers") == {
        (("region", "east"), ("remote", "central")): 0,
        (("region", "east"), ("remote", "west")): 2,
    }
    assert values(samples, "supercluster_route_peers") == {
        (("region", "east"), ("server", "e0")): 2,
        (("region", "east"), ("server", "e1")): 1,
        (("region", "east"), ("server", "e2")): 2,
    }
    # every server's certificates, under the server's own region: a region without a control
    # service of its own (central) is watched by the others'
    assert values(samples, "supercluster_tls_cert_not_after_seconds") == {
        (("listener", "client"), ("region", "east"), ("server", "e0")): 1828087200.0,
        (("listener", "client"), ("region", "west"), ("server", "w0")): 1828087200.0,
    }


def test_jetstream_as_its_leaders_report_it() -> None:
    samples = region_health(east({"e0": ["west"]}), "east", ["west"], NOW)
    assert values(samples, "supercluster_jetstream_meta_leader") == {(("region", "east"),): 1}
    assert values(samples, "supercluster_jetstream_meta_peers_offline") == {
        (("region", "east"),): 1
    }
    # the leader's view (e2 offline); the follower's, without replicas, is not counted
    assert values(samples, "supercluster_stream_replicas_behind") == {
        (("account", "APP"), ("region", "east"), ("stream", "answers")): 1
    }


def test_no_meta_leader_and_no_jetstream() -> None:
    leaderless = region_health(east({}, leader=""), "east", [], NOW)
    assert values(leaderless, "supercluster_jetstream_meta_leader") == {(("region", "east"),): 0}
    assert values(leaderless, "supercluster_jetstream_meta_peers_offline") == {}
    replies = Replies()
    replies.add("varz", [server("c0", "central")])
    replies.add("jsz", [reply("c0", JETSTREAM_OFF)])
    plain = region_health(replies, "central", ["east"], NOW)
    assert {s.name for s in plain} == {
        "supercluster_servers",
        "supercluster_health_gathered_time_seconds",
        "supercluster_gateway_servers",
        "supercluster_route_peers",
    }
    assert values(plain, "supercluster_gateway_servers") == {
        (("region", "central"), ("remote", "east")): 0
    }


def test_times_as_go_writes_them() -> None:
    assert unix_time("1970-01-01T00:00:01.999999999Z") == 1.0
    assert unix_time("2027-12-06T10:00:00+00:00") == 1828087200.0


def test_a_region_with_jetstream_off_has_no_meta_leader_to_miss_and_no_quorum_vote() -> None:
    """Its servers answer JSZ with `disabled` and a zeroed `config`: no meta-leader series
    (NatsJetStreamMetaLeaderMissing has nothing to fire on), and status's quorum verdict
    counts only JetStream servers, so the layout infra/quorum.py recommends (two regions, one
    without JetStream) is not called fragile."""
    replies = east({"e0": ["west"]})
    for n in ("w0", "w1", "w2"):
        replies.varz[n] = {"cluster": {"name": "west"}, "jetstream": {}}
        replies.jsz[n] = dict(JETSTREAM_OFF)
    for n in ("e0", "e1", "e2"):
        replies.varz[n] = {**replies.varz[n], "jetstream": {"config": {"max_memory": 1}}}
    replies.jsz["e2"] = {"config": {"max_storage": 1}, "meta_cluster": {"leader": "e0"}}
    del replies.jsz["w0"]  # a server that missed the JSZ gathering counts by its VARZ
    west = region_health(replies, "west", ["east"], NOW)
    assert values(west, "supercluster_jetstream_meta_leader") == {}
    assert values(west, "supercluster_stream_replicas_behind") == {}
    assert "no partition between the known regions" in status("west", replies)["quorum"]
    # the same servers with JetStream on: 3 + 3, neither side keeps a majority
    for n in ("w0", "w1", "w2"):
        replies.varz[n] = {"cluster": {"name": "west"}, "jetstream": {"config": {"max_memory": 1}}}
        replies.jsz[n] = {"config": {"max_memory": 1}, "meta_cluster": {"leader": ""}}
    assert "neither side keeps a majority" in status("west", replies)["quorum"]
    assert values(
        region_health(replies, "west", ["east"], NOW), "supercluster_jetstream_meta_leader"
    ) == {(("region", "west"),): 0}


def test_a_replica_is_behind_only_when_offline_silent_or_far_behind() -> None:
    """Shaped as the stream leader reports its replicas (PeerInfo: `active` in nanoseconds,
    `lag` left out at 0). Under steady writes a healthy replica is now and then a few
    operations behind and so not `current` (raft.go:2127-2135): that is not behind."""

    def peer(**fields: object) -> dict[str, object]:
        return {"name": "e1", "peer": "abc", "current": True, "active": SECOND_NS // 5, **fields}

    assert not replica_behind(peer())
    assert not replica_behind(peer(current=False, lag=3))
    assert not replica_behind(peer(current=False, lag=REPLICA_LAG_LIMIT))
    assert replica_behind(peer(current=False, lag=REPLICA_LAG_LIMIT + 1))
    assert replica_behind(peer(current=False, offline=True))
    assert replica_behind(peer(current=False, active=11 * SECOND_NS))
    assert not replica_behind(peer(current=False, active=9 * SECOND_NS, lag=2))
    # not heard from at all since this leader took over (its last-seen time is zero)
    assert replica_behind(peer(current=False, active=0))
    assert not replica_behind(peer(active=0))  # this leader's own entry is always current


def test_the_time_of_the_gathering_is_a_sample_of_its_own() -> None:
    assert gathered("east", NOW) == Sample(
        "supercluster_health_gathered_time_seconds", (("region", "east"),), NOW
    )


def test_the_collect_loop_keeps_its_last_view_and_lets_its_time_go_stale(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """services/control.Control.collect over gatherings that fail, succeed, fail: before the
    first success the gathering time is the service's start, after a failure the last view
    stays with its time, so NatsRegionUnseen sees it stop moving."""
    script: list[Replies | Exception] = [
        nats.errors.ConnectionClosedError(),
        east({"e0": ["west"]}),
        nats.errors.ConnectionClosedError(),
    ]
    views: list[dict[str, float]] = []

    def view() -> dict[str, float]:
        return {
            s.name: s.value
            for s in metrics.REGION_HEALTH.samples
            if s.labels == (("region", "east"),)
        }

    async def gathering(_client: Client, _wait: float) -> Replies:
        views.append(view())
        if not script:
            await asyncio.Event().wait()  # until cancelled
        step = script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    async def run() -> None:
        monkeypatch.setattr(control, "ping", gathering)
        service = control.Control(
            Client(),
            "east",
            FileStore(tmp_path),
            reload_by_request=True,
            logger=logging.getLogger("control-collect"),
            checker=ConfigChecker("east"),
        )
        service.spawn(service.collect(0.01))
        while len(views) < 4:
            await asyncio.sleep(0.01)
        await service.stop()

    started = time.time()
    asyncio.run(run())
    never = views[1]
    assert list(never) == ["supercluster_health_gathered_time_seconds"]
    assert started <= never["supercluster_health_gathered_time_seconds"] <= time.time()
    fresh = views[2]
    assert fresh["supercluster_servers"] == 3
    assert (
        fresh["supercluster_health_gathered_time_seconds"]
        > never["supercluster_health_gathered_time_seconds"]
    )
    assert views[3] == fresh  # the failure kept the view and its time
