"""What the control service exports about its region, from replies shaped as nats-server
v2.14.2 sends them (server/monitor.go: Varz 1224-1301 with `tls_cert_not_after` at 1300, 1324,
1342; MetaClusterInfo 3066-3076; server/stream.go ClusterInfo and PeerInfo 371-392)."""

from __future__ import annotations

from typing import Any

from infra.region_health import Sample, region_health, unix_time
from infra.runtime_status import Replies

EXPIRES = "2027-12-06T10:00:00Z"


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
            server("w0", "west", start="2026-12-06T10:00:03Z"),
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
    replicas = [{"name": "e1", "current": True}, {"name": "e2", "current": False}]
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
        east({"e0": ["west"], "e1": ["west"], "e2": []}), "east", ["east", "west", "central"]
    )
    assert values(samples, "supercluster_servers") == {(("region", "east"),): 3}
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
    starts = values(samples, "supercluster_server_start_time_seconds")
    assert starts[(("region", "east"), ("server", "e0"))] == unix_time("2026-12-06T10:00:00Z")
    assert len(starts) == 3  # west's server is west's business
    assert values(samples, "supercluster_tls_cert_not_after_seconds") == {
        (("listener", "client"), ("region", "east"), ("server", "e0")): 1828087200.0
    }


def test_jetstream_as_its_leaders_report_it() -> None:
    samples = region_health(east({"e0": ["west"]}), "east", ["west"])
    assert values(samples, "supercluster_jetstream_meta_leader") == {(("region", "east"),): 1}
    assert values(samples, "supercluster_jetstream_meta_peers_offline") == {
        (("region", "east"),): 1
    }
    # the leader's view (e2 behind); the follower's, without replicas, is not counted
    assert values(samples, "supercluster_stream_replicas_not_current") == {
        (("account", "APP"), ("region", "east"), ("stream", "answers")): 1
    }


def test_no_meta_leader_and_no_jetstream() -> None:
    leaderless = region_health(east({}, leader=""), "east", [])
    assert values(leaderless, "supercluster_jetstream_meta_leader") == {(("region", "east"),): 0}
    assert values(leaderless, "supercluster_jetstream_meta_peers_offline") == {}
    replies = Replies()
    replies.add("varz", [server("c0", "central")])
    replies.add("jsz", [reply("c0", {"config": None})])
    plain = region_health(replies, "central", ["east"])
    assert {s.name for s in plain} == {
        "supercluster_servers",
        "supercluster_gateway_servers",
        "supercluster_route_peers",
    }
    assert values(plain, "supercluster_gateway_servers") == {
        (("region", "central"), ("remote", "east")): 0
    }


def test_times_as_go_writes_them() -> None:
    assert unix_time("1970-01-01T00:00:01.999999999Z") == 1.0
    assert unix_time("2027-12-06T10:00:00+00:00") == 1828087200.0
