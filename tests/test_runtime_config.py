"""The control service's decisions without a server: what a config.put may say, what the
runtime file says, who asked, and what status makes of the servers' replies (shaped as
nats-server v2.14.2 sends them; the live test checks the same against real servers)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.runtime_config import (
    HISTORY_KEPT,
    MAX_ROUTES,
    Put,
    PutError,
    Replies,
    RuntimeState,
    applied,
    caller,
    effective,
    parse_put,
    region_servers,
    reply_allowed,
    routes_file,
    status,
)


def put(body: Any) -> Put:
    return parse_put(json.dumps(body).encode())


def test_a_put_sets_routes_clears_them_or_empties_them_when_forced() -> None:
    assert put({"routes": ["tls://east-3.east-headless:6222", "nats://[fd00::1]:6222"]}) == Put(
        ("tls://east-3.east-headless:6222", "nats://[fd00::1]:6222")
    )
    assert put({"routes": None}) == Put(None)
    assert put({"routes": [], "force": True}) == Put((), True)


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (b"\xff\xfe", "body", "not JSON"),
        (b"[" * 100_000, "body", "not JSON"),
        (b'["routes"]', "body", "JSON object"),
        (b'{"routes": ["tls://a:1"], "routez": []}', "routez", "known: routes, force"),
        (b'{"gateways": []}', "gateways", "cannot reload a gateway list"),
        (b'{"routes": [], "force": 1}', "force", "true or false"),
        (b'{"force": true}', "routes", "nothing to change"),
        (b'{"routes": []}', "routes", '"force": true'),
        (b'{"routes": "tls://a:6222"}', "routes", "list of route URLs"),
        (b'{"routes": [6222]}', "routes", "list of route URLs"),
        (b'{"routes": ["tls://a:0"]}', "routes[0]", "not a route URL"),
        (b'{"routes": ["tls://a:6222", "tls://b:65536"]}', "routes[1]", "not a route URL"),
        (b'{"routes": ["tls://a:6222/path"]}', "routes[0]", "not a route URL"),
        (b'{"routes": ["tls://user:pw@a:6222"]}', "routes[0]", "not a route URL"),
        (b'{"routes": ["tls://a:6222\\n}"]}', "routes[0]", "not a route URL"),
        (b'{"routes": ["tls://a:6222\\n"]}', "routes[0]", "not a route URL"),
        (b'{"routes": ["tls://a:6222", "tls://a:6222"]}', "routes", "twice"),
    ],
)
def test_a_bad_put_names_its_field(body: bytes, field: str, says: str) -> None:
    with pytest.raises(PutError) as raised:
        parse_put(body)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")
    assert says in str(raised.value)


def test_a_put_is_bounded() -> None:
    many = [f"tls://east-{i}.east-headless:6222" for i in range(MAX_ROUTES + 1)]
    with pytest.raises(PutError, match=f"at most {MAX_ROUTES}"):
        put({"routes": many})
    assert put({"routes": many[:MAX_ROUTES]}).routes == tuple(many[:MAX_ROUTES])


def test_the_runtime_file_is_empty_until_routes_are_overridden() -> None:
    assert routes_file(RuntimeState()) == ""
    state = RuntimeState(("tls://a:6222", "tls://b:6222"))
    assert routes_file(state) == 'routes: ["tls://a:6222", "tls://b:6222"]\n'
    assert routes_file(RuntimeState(())) == "routes: []\n"


def test_state_survives_its_file_and_keeps_the_last_changes() -> None:
    state = RuntimeState()
    for n in range(HISTORY_KEPT + 5):
        state = applied(state, Put((f"tls://h{n}:6222",)), "CN=admin", f"t{n}")
    assert len(state.history) == HISTORY_KEPT
    assert state.history[-1] == {
        "who": "CN=admin",
        "when": f"t{HISTORY_KEPT + 4}",
        "routes": [f"tls://h{HISTORY_KEPT + 4}:6222"],
    }
    assert RuntimeState.from_json(state.to_json()) == state
    assert RuntimeState.from_json("") == RuntimeState()
    back = applied(state, Put(None), "CN=admin", "later")
    assert back.routes is None
    assert back.history[-1]["routes"] is None


def test_the_caller_is_what_the_server_says_about_the_importer() -> None:
    info = json.dumps({"acc": "APP", "user": "CN=admin,O=nats-supercluster", "rtt": "1ms"})
    assert caller({"Nats-Request-Info": info}) == "CN=admin,O=nats-supercluster in account APP"
    assert caller(None).startswith("unknown")
    assert caller({"Nats-Request-Info": "{not json"}).startswith("unknown")


@pytest.mark.parametrize(
    ("reply", "allowed"),
    [
        ("_INBOX.system.abc.1", True),
        ("_R_.xyz.abc", True),
        ("_INBOX.systemx.1", False),
        ("_INBOX.admin.1", False),  # the admin's replies come back through the import (_R_)
        ("$JS.API.SERVER.REMOVE", False),
        ("$SYS.REQ.SERVER.X.RELOAD", False),
        ("", False),
    ],
)
def test_answers_go_only_into_callers_inboxes(reply: str, allowed: bool) -> None:
    assert reply_allowed(reply, ("_INBOX.system.", "_R_.")) is allowed


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
    state = applied(RuntimeState(), Put(("tls://e0:6222",)), "CN=admin", "now")
    got = effective(_replies(), "east", state)
    assert got["routes"] == {"e0": ["e0:6222"], "e1": ["e1:6222"], "e2": ["e2:6222"]}
    assert got["gateways"]["e0"] == [{"name": "west", "urls": ["w:7222"]}]
    assert got["runtime_routes"] == ["tls://e0:6222"]
    assert got["history"] == [{"who": "CN=admin", "when": "now", "routes": ["tls://e0:6222"]}]
