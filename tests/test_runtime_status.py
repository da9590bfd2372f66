"""What status and config.get make of the servers' replies (infra/runtime_status.py), shaped as
nats-server v2.14.2 sends them; the live test checks the same against real servers."""

from __future__ import annotations

import json
from typing import Any

from infra.put_request import parse_put
from infra.runtime_config import RuntimeState, applied
from infra.runtime_status import Replies, connected_regions, effective, region_servers, status


def test_the_connected_regions_are_this_regions_gateways_in_and_out() -> None:
    replies = Replies()
    replies.add("varz", [_reply("e0", {"cluster": {"name": "east"}}), _reply("w0", _west())])
    replies.add(
        "gatewayz",
        [
            _reply("e0", {"outbound_gateways": {"west": {}}, "inbound_gateways": {"north": []}}),
            _reply("w0", {"outbound_gateways": {"south": {}}}),  # not east's
        ],
    )
    assert connected_regions(replies, "east") == {"west", "north"}


def _west() -> dict[str, Any]:
    return {"cluster": {"name": "west"}}


def _reply(server: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"server": {"name": server}, "data": data}


def _server(name: str, cluster: str) -> dict[str, Any]:
    return {"name": name, "cluster": cluster, "id": f"ID-{name}"}


def _replies() -> Replies:
    """Three servers in east, two in west. The stream `answers` is R3 in east, led by e1:
    its leader lists the two others; each follower lists the others but itself, the leader
    included (nats-server v2.14.2, jetstream_cluster.go clusterInfo: peers other than
    the reporting node's own ID)."""
    replies = Replies()
    east, west = ["e0", "e1", "e2"], ["w0", "w1"]
    servers = [*(_server(n, "east") for n in east), *(_server(n, "west") for n in west)]
    replies.add(
        "varz",
        (
            {
                "server": s,
                "data": {
                    "server_id": s["id"],
                    "version": "2.14.2",
                    "cluster": {"name": s["cluster"], "urls": [f"{s['name']}:6222"]},
                    "gateway": {"gateways": [{"name": "west", "urls": ["w:7222"]}]},
                    "jetstream": {"config": {"max_memory": 1}},
                },
            }
            for s in servers
        ),
    )
    replies.add("healthz", ({"server": s, "data": {"status": "ok"}} for s in servers))

    def stream_view(name: str) -> dict[str, Any]:
        others = [n for n in east if n != name]
        return {
            "name": "answers",
            "cluster": {"name": "east", "leader": "e1", "replicas": [{"name": n} for n in others]},
        }

    def jsz(name: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "meta_cluster": {
                "leader": "w0",
                "replicas": [{"name": n, "offline": n == "e2"} for n in [*east, "w1"]],
            }
        }
        if name in east:
            data["account_details"] = [{"name": "APP", "stream_detail": [stream_view(name)]}]
        return data

    replies.add("jsz", ({"server": s, "data": jsz(s["name"])} for s in servers))
    return replies


def test_status_takes_each_stream_from_its_leader_and_the_meta_group_from_its_leader() -> None:
    report = status("east", _replies())
    assert [s["name"] for s in report["servers"]] == ["e0", "e1", "e2", "w0", "w1"]
    assert all(s["healthy"] and s["version"] == "2.14.2" for s in report["servers"])
    (answers,) = report["jetstream"]["streams"]
    assert answers == {
        "account": "APP",
        "name": "answers",
        "cluster": "east",
        "leader": "e1",
        "replicas": ["e0", "e1", "e2"],
    }
    assert report["jetstream"]["meta_leader"] == "w0"
    assert report["jetstream"]["meta_peers"] == ["e0", "e1", "e2", "w0", "w1"]
    assert report["jetstream"]["meta_offline"] == ["e2"]
    assert "neither side keeps a majority" not in report["quorum"]  # 3 + 2: east holds one


def test_status_without_a_meta_leader_says_so_and_two_equal_regions_are_fragile() -> None:
    replies = _replies()
    for name in list(replies.varz):
        if name == "e2":
            del replies.varz[name]
    for name in replies.jsz:
        replies.jsz[name] = {}
    report = status("east", replies)
    assert report["jetstream"] == {
        "meta_leader": None,
        "meta_peers": [],
        "meta_offline": [],
        "streams": [],
    }
    assert "neither side keeps a majority" in report["quorum"]  # 2 + 2


def test_a_region_reloads_only_its_own_servers() -> None:
    assert region_servers(_replies(), "west") == {"w0": "ID-w0", "w1": "ID-w1"}
    assert region_servers(_replies(), "central") == {}


def test_config_get_shows_the_regions_routes_as_run_and_the_override() -> None:
    body = json.dumps({"routes": ["tls://e0:6222"]}).encode()
    state = applied(RuntimeState(), parse_put(body), "CN=admin", "now")
    got = effective(_replies(), "east", state)
    assert got["routes"] == {"e0": ["e0:6222"], "e1": ["e1:6222"], "e2": ["e2:6222"]}
    assert got["gateways"]["e0"] == [{"name": "west", "urls": ["w:7222"]}]
    assert got["runtime_routes"] == ["tls://e0:6222"]
    assert got["history"] == [{"who": "CN=admin", "when": "now", "routes": ["tls://e0:6222"]}]
