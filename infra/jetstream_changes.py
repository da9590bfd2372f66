"""How a JetStream object on the server differs from what the program requests, and which of
the differences the server updates in place; the rest need a replacement.

The replace rules are the server's (nats-server 2.14, checked in tests/test_jetstream_live.py):
an update that the server refuses must be a replacement, and the plan says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_ABSENT_MEANS = {
    "subjects": [],
    "sources": [],
    "backoff": [],
    "description": "",
    "compression": "none",
    "filter_subjects": [],
}


def managed_view(requested: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any]:
    """The server's config restricted to the fields the request manages, in the request's
    shape, so the two compare equal exactly when nothing this program owns has drifted."""
    view: dict[str, Any] = {}
    for key, want in requested.items():
        have = actual.get(key, _ABSENT_MEANS.get(key))
        if key == "placement" and isinstance(have, Mapping):
            have = {k: v for k, v in have.items() if k in want}
        if key in ("sources", "mirror") and have:
            have = _trim_sources(have, want)
        view[key] = have
    return view


def _trim_sources(have: Any, want: Any) -> Any:
    if isinstance(have, Mapping):
        return {k: v for k, v in have.items() if k in (want or {}) or k == "name"}
    wanted = {s["name"]: s for s in want or []}
    return [_trim_sources(s, wanted.get(s.get("name"), {})) for s in have]


@dataclass(frozen=True)
class Changes:
    """Fields that differ, split by whether the server can update them in place."""

    update: tuple[str, ...]
    replace: tuple[str, ...]

    @property
    def any(self) -> bool:
        return bool(self.update or self.replace)


def stream_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> Changes:
    differing = _differing(old, new)
    replace = [k for k in differing if k in ("name", "storage", "mirror")]
    if "retention" in differing and "workqueue" in (old.get("retention"), new.get("retention")):
        replace.append("retention")
    for flag in ("deny_delete", "deny_purge"):
        if flag in differing and old.get(flag) and not new.get(flag):
            replace.append(flag)
    return Changes(tuple(k for k in differing if k not in replace), tuple(replace))


def consumer_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> Changes:
    differing = _differing(old, new)
    immutable = ("name", "durable_name", "deliver_policy", "ack_policy", "replay_policy")
    replace = [k for k in differing if k in immutable]
    return Changes(tuple(k for k in differing if k not in replace), tuple(replace))


def _differing(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
