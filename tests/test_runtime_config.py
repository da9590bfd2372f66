"""The state a put leaves (infra/runtime_config.py): the files the servers include, empty until
an operator changes them; the last changes kept across the state file; a change pending until
its outcome is recorded, superseded by a later one, or rolled back."""

from __future__ import annotations

import json
from typing import Any

from infra.put_request import Put, parse_put
from infra.runtime_config import (
    HISTORY_KEPT,
    RuntimeState,
    applied,
    rolled_back,
    runtime_files,
    with_outcome,
)

EAST, CENTRAL = "e" * 64, "c" * 64


def put(body: Any) -> Put:
    return parse_put(json.dumps(body).encode())


def test_the_runtime_files_are_empty_until_an_operator_changes_them() -> None:
    empty = runtime_files(RuntimeState())
    assert (empty["routes.conf"], empty["gateways.conf"]) == ("", "")
    files = runtime_files(RuntimeState(("tls://a:6222", "tls://b:6222")))
    assert files["routes.conf"] == 'routes: ["tls://a:6222", "tls://b:6222"]\n'
    assert runtime_files(RuntimeState(()))["routes.conf"] == "routes: []\n"
    cut = runtime_files(RuntimeState(None, ("west",), (CENTRAL, EAST)))
    assert cut["gateways.conf"] == f'pinned_certs: ["{CENTRAL}", "{EAST}"]\n'
    assert cut["routes.conf"] == ""


def test_state_survives_its_file_and_keeps_the_last_changes() -> None:
    state = RuntimeState()
    for n in range(HISTORY_KEPT + 5):
        state = applied(state, put({"routes": [f"tls://h{n}:6222"]}), "CN=admin", f"t{n}")
    assert len(state.history) == HISTORY_KEPT
    assert state.history[-1] == {
        "who": "CN=admin",
        "when": f"t{HISTORY_KEPT + 4}",
        "routes": [f"tls://h{HISTORY_KEPT + 4}:6222"],
    }
    assert RuntimeState.from_json(state.to_json()) == state
    assert RuntimeState.from_json("") == RuntimeState()
    back = applied(state, put({"routes": None}), "CN=admin", "later")
    assert back.routes is None
    assert back.history[-1]["routes"] is None
    cut = applied(back, put({"cut_gateways": ["west"]}), "CN=admin", "cut", pinned=(EAST,))
    assert (cut.cut_gateways, cut.pinned, cut.history[-1]["cut_gateways"]) == (
        ("west",),
        (EAST,),
        ["west"],
    )
    assert "routes" not in cut.history[-1]  # a put changes what it names, nothing else
    routed = applied(cut, put({"routes": ["tls://a:6222"]}), "CN=admin", "routes")
    assert (routed.cut_gateways, routed.pinned) == (("west",), (EAST,))
    lifted = applied(routed, put({"cut_gateways": []}), "CN=admin", "lift")
    assert (lifted.cut_gateways, lifted.pinned, lifted.routes) == ((), (), ("tls://a:6222",))
    assert RuntimeState.from_json(lifted.to_json()) == lifted


def test_a_change_is_pending_until_its_outcome_is_recorded_and_a_later_one_supersedes_it() -> None:
    first = applied(
        RuntimeState(), put({"routes": ["tls://a:6222"]}), "CN=admin", "t1", change="c1"
    )
    assert first.history[-1]["outcome"] == "pending"
    second = applied(first, put({"routes": ["tls://b:6222"]}), "CN=admin", "t2", change="c2")
    assert [h["outcome"] for h in second.history] == ["superseded by c2", "pending"]
    done = with_outcome(second, "c2", "applied")
    assert [h["outcome"] for h in done.history] == ["superseded by c2", "applied"]
    back = rolled_back(done, first, "c2", "east-1 has no route to east-2")
    assert back.routes == ("tls://a:6222",)
    assert back.history[-1]["outcome"] == "rolled back: east-1 has no route to east-2"
    assert back.history[-1]["routes"] == ["tls://b:6222"]  # what was tried stays on record
