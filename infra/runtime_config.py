"""The part of a region's server configuration that changes at run time, through the control
service rather than a deploy (seed 003's `config.put`): what a put may say, the state it leaves
and the files the servers include.

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
from dataclasses import dataclass, replace
from typing import Any

from infra.route_grammar import GrammarError, check_region, parse_route
from infra.runtime_files import GATEWAYS_FILE, ROUTES_FILE

STATE_FILE = "state.json"
HISTORY_KEPT = 20
HISTORY_BYTES = 64 * 1024  # the history's JSON, oldest changes dropped first
MAX_ROUTES = 32
MAX_CUTS = 16
MAX_BODY = 16 * 1024  # a put at its largest (32 routes of 266 characters) is about 9 KB
# A ConfigMap holds at most 1 MiB (Kubernetes: "The data stored in a ConfigMap cannot exceed
# 1 MiB"); the runtime files stay far below it, so config.get always fits a NATS message.
MAX_STATE_BYTES = 256 * 1024
_PIN = re.compile(r"[0-9a-f]{64}", re.ASCII)

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
    """A config.put request, validated on its own; raises PutError naming the field and
    what is allowed."""
    if len(body) > MAX_BODY:
        raise PutError("body", f"{len(body)} bytes; a put has at most {MAX_BODY}")
    request = _json_object(body)
    unknown = sorted(set(request) - {*_FIELDS, "gateways"})
    if unknown:
        raise PutError(unknown[0][:40], f"unknown field; known: {', '.join(_FIELDS)}")
    if "gateways" in request:
        raise PutError(
            "gateways",
            "nats-server 2.14 cannot reload a gateway list, and an unreloadable change makes "
            "every later reload of the region fail until its servers restart; change the "
            "stack's `peers` and `pulumi up` instead, or cut a region off with cut_gateways",
        )
    force = request.get("force", False)
    if not isinstance(force, bool):
        raise PutError("force", f"must be true or false, got {_kind(force)}")
    if "routes" not in request and "cut_gateways" not in request:
        raise PutError(
            "routes",
            "nothing to change: give routes (a list, or null for the release's own) "
            "and/or cut_gateways (a list of regions, or [] to reconnect them)",
        )
    routes = _routes(request["routes"], force) if "routes" in request else None
    cut = _cut(request["cut_gateways"]) if "cut_gateways" in request else ()
    return Put(
        routes,
        cut,
        sets_routes="routes" in request,
        sets_cut="cut_gateways" in request,
        force=force,
    )


def _json_object(body: bytes) -> dict[str, Any]:
    def no_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"field {twice[0][:40]!r} given twice")
        return dict(pairs)

    def no_constant(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        request = json.loads(body, object_pairs_hook=no_twice, parse_constant=no_constant)
    except RecursionError:
        raise PutError("body", "not JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise PutError("body", f"not JSON: {error}") from None
    if not isinstance(request, dict):
        raise PutError("body", 'must be a JSON object like {"routes": ["tls://host:6222"]}')
    return request


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _routes(routes: object, force: bool) -> tuple[str, ...] | None:
    if routes is None:
        return None
    if not isinstance(routes, list):
        raise PutError("routes", f"must be a list of route URLs, or null; got {_kind(routes)}")
    if len(routes) > MAX_ROUTES:
        raise PutError("routes", f"{len(routes)} routes; at most {MAX_ROUTES}")
    parsed = []
    for index, route in enumerate(routes):
        if not isinstance(route, str):
            raise PutError(f"routes[{index}]", f"must be a route URL string, got {_kind(route)}")
        try:
            parsed.append(parse_route(route).url)
        except GrammarError as error:
            raise PutError(f"routes[{index}]", str(error)) from None
    if len(set(parsed)) != len(parsed):
        raise PutError("routes", "lists a route twice")
    if not parsed and not force:
        raise PutError(
            "routes",
            "an empty list would leave the region's servers without routes to one another; "
            'send "force": true to do it anyway',
        )
    return tuple(parsed)


def _cut(cut: object) -> tuple[str, ...]:
    if not isinstance(cut, list):
        raise PutError(
            "cut_gateways",
            f"must be a list of region names (their NATS clusters), or [] to reconnect them; "
            f"got {_kind(cut)}",
        )
    if len(cut) > MAX_CUTS:
        raise PutError("cut_gateways", f"{len(cut)} regions; at most {MAX_CUTS}")
    for index, region in enumerate(cut):
        if not isinstance(region, str):
            raise PutError(f"cut_gateways[{index}]", f"must be a region name, got {_kind(region)}")
        try:
            check_region(region)
        except GrammarError as error:
            raise PutError(f"cut_gateways[{index}]", str(error)) from None
    if len(set(cut)) != len(cut):
        raise PutError("cut_gateways", "names a region twice")
    return tuple(cut)


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
