"""The part of a region's server configuration that changes at run time, through the control
service rather than a deploy (seed 003's `config.put`): the state a put leaves, its history,
and the files the servers include. What a put may say: infra/put_request.py.

The release includes two runtime files: one inside its `cluster` block (nats.conf: `include
../nats-runtime/routes.conf`), empty unless an operator overrides the region's routes, and one
inside the `gateway` block's `tls` (`gateways.conf`), empty unless an operator cuts regions off.
The servers reload them like the rest of their configuration (the chart's reloader watches
them). They live in a ConfigMap the program creates once and then leaves alone (locally, a
directory), so a runtime change survives restarts and the next `pulumi up`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from infra.put_request import Put, PutError
from infra.runtime_files import GATEWAYS_FILE, ROUTES_FILE

STATE_FILE = "state.json"
HISTORY_KEPT = 20
HISTORY_BYTES = 64 * 1024  # the history's JSON, oldest changes dropped first
# A ConfigMap holds at most 1 MiB (Kubernetes: "The data stored in a ConfigMap cannot exceed
# 1 MiB"); the runtime files stay far below it, so config.get always fits a NATS message.
MAX_STATE_BYTES = 256 * 1024

# What a history entry says became of its put.
PENDING = "pending"
APPLIED = "applied"
ROLLED_BACK = "rolled back"
SUPERSEDED = "superseded"
# What a pending change records of the state before it, until its outcome is recorded.
BEFORE = "before"


@dataclass(frozen=True)
class RuntimeState:
    """Routes overriding the release's own (None: the release's); the regions cut off and the
    server keys pinned on the gateways meanwhile; who changed what, and what became of it."""

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

    def servers_see(self) -> dict[str, str]:
        """The files the servers include, without the state: what a reload applies."""
        return {k: v for k, v in runtime_files(self).items() if k != STATE_FILE}


def applied(
    state: RuntimeState,
    put: Put,
    who: str,
    when: str,
    *,
    pinned: tuple[str, ...] = (),
    change: str = "",
    loads: Mapping[str, str] | None = None,
) -> RuntimeState:
    """The state after `put` (`pinned`: what pins_for gave for it), its change recorded as
    pending under the id `change` with what to go back to should it not be confirmed (see
    `confirmed`) and when each server last loaded its configuration (`loads`, from VARZ
    `config_load_time`), so a later run can tell whether they loaded it; refused (PutError)
    when it would not fit a ConfigMap."""
    entry: dict[str, Any] = {"who": who, "when": when}
    if change:
        entry["change"] = change
    routes, cut = state.routes, state.cut_gateways
    if put.sets_routes:
        routes = put.routes
        entry["routes"] = list(routes) if routes is not None else None
    if put.sets_cut:
        cut, pinned = put.cut_gateways, pinned if put.cut_gateways else ()
        entry["cut_gateways"] = list(cut)
    else:
        pinned = state.pinned
    history = state.history
    if change:
        base = confirmed(state)
        entry["outcome"] = PENDING
        entry[BEFORE] = {
            "routes": list(base.routes) if base.routes is not None else None,
            "cut_gateways": list(base.cut_gateways),
            "pinned": list(base.pinned),
            "loads": dict(sorted((loads or {}).items())),
        }
        history = tuple(  # a change still pending is superseded by this one, which carries it
            _settled(e, f"{SUPERSEDED} by {change}") if e.get("outcome") == PENDING else e
            for e in history
        )
    after = RuntimeState(routes, cut, pinned, bounded_history((*history, entry)))
    size = sum(len(text.encode()) for text in runtime_files(after).values())
    if size > MAX_STATE_BYTES:
        raise PutError(
            "body",
            f"the runtime configuration would take {size} bytes; at most {MAX_STATE_BYTES} "
            "(a ConfigMap holds at most 1 MiB)",
        )
    return after


def bounded_history(history: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    """The last HISTORY_KEPT changes, fewer where they would take more than HISTORY_BYTES."""
    kept = list(history[-HISTORY_KEPT:])
    while len(kept) > 1 and len(json.dumps(kept)) > HISTORY_BYTES:
        kept.pop(0)
    return tuple(kept)


def with_outcome(state: RuntimeState, change: str, outcome: str) -> RuntimeState:
    """The state with the history entry of `change` saying what became of it."""
    history = tuple(
        _settled(entry, outcome) if entry.get("change") == change else entry
        for entry in state.history
    )
    return replace(state, history=bounded_history(history))


def _settled(entry: Mapping[str, Any], outcome: str) -> dict[str, Any]:
    """A history entry with its outcome, without what only a pending change needs."""
    return {**{k: v for k, v in entry.items() if k != BEFORE}, "outcome": outcome}


def confirmed(state: RuntimeState) -> RuntimeState:
    """What the servers were last confirmed to run, without the history: the state of before
    the pending change (as that change recorded it), or the state itself when none is pending.
    A put computes its change over the state, but goes back to this, so a change that was
    never confirmed is never kept by a later one that fails."""
    for entry in reversed(state.history):
        if entry.get("outcome") == PENDING and isinstance(entry.get(BEFORE), Mapping):
            return before_of(entry)
    return RuntimeState(state.routes, state.cut_gateways, state.pinned)


def before_of(entry: Mapping[str, Any]) -> RuntimeState:
    """The state a pending change recorded it came from."""
    before = entry.get(BEFORE) or {}
    routes = before.get("routes")
    return RuntimeState(
        tuple(routes) if routes is not None else None,
        tuple(before.get("cut_gateways") or ()),
        tuple(before.get("pinned") or ()),
    )


def rolled_back(current: RuntimeState, before: RuntimeState, change: str, why: str) -> RuntimeState:
    """`before`'s routes and cut restored, the history kept, the change marked rolled back."""
    restored = replace(
        current, routes=before.routes, cut_gateways=before.cut_gateways, pinned=before.pinned
    )
    return with_outcome(restored, change, f"{ROLLED_BACK}: {why}")


def runtime_files(state: RuntimeState) -> dict[str, str]:
    """The runtime directory (ConfigMap data): the state, and the files the servers include
    (NATS configuration syntax), each empty unless an operator changed it. Every value in
    them passed the grammar (printable ASCII, no quote or backslash), so json.dumps writes
    exactly the string nats-server reads."""
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
