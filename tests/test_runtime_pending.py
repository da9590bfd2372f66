"""A change pending: what it records of the state before it, what a later put goes back to when
it was never confirmed, and how a restarted control service judges it from what the servers
run (VARZ `config_load_time`, routes and gateways, shaped as nats-server v2.14.2 reports them;
tests/test_control_outsider.py holds the same against real servers)."""

from __future__ import annotations

import json
from typing import Any

from infra.pending_change import loads_of, pending_entry, recorded_before, restored, resumed
from infra.put_request import Put, parse_put
from infra.runtime_checks import problems, region_of
from infra.runtime_config import (
    BEFORE,
    RuntimeState,
    applied,
    before_of,
    confirmed,
    rolled_back,
    with_outcome,
)

PREFIX = "aws-us-east-1-"
NAMES = [f"{PREFIX}east-{i}" for i in range(3)]
WEST_PIN = "a" * 64


def put(body: Any) -> Put:
    return parse_put(json.dumps(body).encode())


def test_a_pending_change_records_what_to_go_back_to_until_its_outcome() -> None:
    base = applied(RuntimeState(), put({"routes": ["tls://a:6222"]}), "CN=admin", "t0")
    loads = {NAMES[0]: "2026-12-07T10:00:00Z"}
    cut = applied(
        base,
        put({"cut_gateways": ["west"]}),
        "CN=admin",
        "t1",
        pinned=(WEST_PIN,),
        change="c1",
        loads=loads,
    )
    entry = cut.history[-1]
    assert entry[BEFORE] == {
        "routes": ["tls://a:6222"],
        "cut_gateways": [],
        "pinned": [],
        "loads": loads,
    }
    assert recorded_before(entry)
    assert loads_of(entry) == loads
    assert before_of(entry) == confirmed(cut) == RuntimeState(("tls://a:6222",))
    assert pending_entry(cut) == entry
    done = with_outcome(cut, "c1", "applied")
    assert BEFORE not in done.history[-1]  # only a pending change carries it
    assert pending_entry(done) is None
    assert confirmed(done) == RuntimeState(("tls://a:6222",), ("west",), (WEST_PIN,))
    assert RuntimeState.from_json(cut.to_json()) == cut


def test_a_later_put_goes_back_to_what_was_confirmed_not_to_a_change_never_confirmed() -> None:
    """Issue 24's landmine: a cut left pending (never loaded), then an unrelated routes put.
    The routes put carries the cut, but what it goes back to is the state before the cut."""
    cut = applied(
        RuntimeState(),
        put({"cut_gateways": ["west"]}),
        "CN=admin",
        "t1",
        pinned=(WEST_PIN,),
        change="c1",
    )
    routes = applied(cut, put({"routes": ["tls://b:6222"]}), "CN=admin", "t2", change="c2")
    assert [h["outcome"] for h in routes.history] == ["superseded by c2", "pending"]
    assert BEFORE not in routes.history[0]
    assert routes.cut_gateways == ("west",)  # carried, and verified with it
    assert confirmed(routes) == RuntimeState()  # not the cut
    back = rolled_back(routes, confirmed(routes), "c2", "east-1 has not loaded the change")
    assert (back.routes, back.cut_gateways, back.pinned) == (None, (), ())
    assert back.history[-1]["outcome"].startswith("rolled back: ")
    assert BEFORE not in back.history[-1]


def _varz(load: str, urls: list[str]) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "server_id": f"ID{i}",
            "config_load_time": load if i else "2026-12-07T10:00:09Z",
            "cluster": {"name": "east", "cluster_port": 6222, "urls": urls},
        }
        for i, name in enumerate(NAMES)
    }


WHOLE = {n: {"routes": [{"remote_name": p} for p in NAMES if p != n]} for n in NAMES}


def test_a_change_found_pending_holds_only_when_every_server_loaded_and_shows_it() -> None:
    """The restarted service judges the cut it found pending: east-0 loaded it (its load time
    moved), east-1 and east-2 did not, and they still have west's gateways."""
    loads = dict.fromkeys(NAMES, "2026-12-07T10:00:00Z")
    state = applied(
        RuntimeState(),
        put({"cut_gateways": ["west"]}),
        "CN=admin",
        "t1",
        pinned=(WEST_PIN,),
        change="c1",
        loads=loads,
    )
    entry = state.history[-1]
    varz = _varz("2026-12-07T10:00:00Z", [])
    servers = region_of(varz, "east")
    expectation = resumed(entry, state, servers, {"west", "central"})
    gateways = {NAMES[0]: {"central"}, NAMES[1]: {"west", "central"}, NAMES[2]: {"west"}}
    assert problems(expectation, varz, WHOLE, gateways) == [
        f"{NAMES[1]} has not loaded the change",
        f"{NAMES[2]} has not loaded the change",
        "still gatewayed to west",
    ]
    loaded = _varz("2026-12-07T10:00:05Z", [])  # each reloaded, or restarted, since
    cut_off = {n: {"central"} for n in NAMES}
    assert problems(expectation, loaded, WHOLE, cut_off) == []
    assert problems(expectation, loaded, WHOLE, {n: set[str]() for n in NAMES}) == [
        "no longer gatewayed to central, which the change kept"
    ]
    silent = {k: v for k, v in loaded.items() if k != NAMES[2]}
    assert problems(expectation, silent, WHOLE, cut_off) == [f"{NAMES[2]} did not answer"]


def test_a_change_rolled_back_at_start_holds_when_its_cut_regions_are_gatewayed_again() -> None:
    state = RuntimeState(("tls://b:6222",), ("west",), (WEST_PIN,))
    before = RuntimeState(("tls://a:6222",))
    servers = region_of(_varz("t", ["a:6222"]), "east")
    expectation = restored(state, before, servers)
    back = {n: {"west"} for n in NAMES}
    assert problems(expectation, _varz("t", ["a:6222"]), WHOLE, back) == []
    assert problems(expectation, _varz("t", ["a:6222"]), WHOLE, {n: set() for n in NAMES}) == [
        "no longer gatewayed to west, which the change kept"
    ]
    assert problems(expectation, _varz("t", ["b:6222"]), WHOLE, back)[0].endswith(
        "runs routes ['b:6222']"
    )
