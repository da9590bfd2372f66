"""What a control `config.put` may say (seed 003's runtime control): the request checked on its
own, within its limits, and the server keys a cut pins on the region's gateways. The state a put
leaves and the files the servers include: infra/runtime_config.py.

A gateway list cannot change by reload: nats-server 2.14 refuses it ("config reload not
supported for Gateway", reload.go), and one unreloadable change makes every later reload of the
region fail, certificate renewals included, until each server restarts. What it does reload is
the gateway TLS `pinned_certs` (reload.go recheckPinnedCerts closes the gateways in and out whose
key is no longer pinned; gateway.go checks the pins on every handshake, both directions). So a
cut pins the server keys of every known region but the ones cut off; lifting it empties the
file (`gateways.conf`). A region's peers themselves change by `pulumi up` (`peers`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.route_grammar import GrammarError, check_region, parse_route

MAX_ROUTES = 32
MAX_CUTS = 16
MAX_BODY = 16 * 1024  # a put at its largest (32 routes of 266 characters) is about 9 KB
_PIN = re.compile(r"[0-9a-f]{64}", re.ASCII)


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
