"""Whether each server runs the files it is given: which files the chart's reloader watches,
what content a server loaded, and since when it has been behind. Standard library only: the
control service in the services image uses it, and so does the local stand-in for the
reloader (localnet/reloader.py).

How files become a reload in the clouds (sources in tests/test_reloader_facts.py):
- The kubelet projects a changed ConfigMap or Secret into a pod at its next sync of that pod:
  every `syncFrequency` (1 min by default) stretched by up to half (jitter factor 0.5), so up
  to 90 s after the update (`PROJECTION_SECONDS`), each pod on its own clock.
- The chart (nats 2.14.2) runs the reloader natsio/nats-server-config-reloader 0.23.0 beside
  each server, passing it nats.conf and every `cert_file`, `key_file`, `ca_file` and `$include`
  of the configuration; the reloader adds each file those `.conf` files include, once, at its
  start. It keeps each file's SHA-256 and sends SIGHUP only when a file's digest differs from
  the one it last signalled for: the same content written again signals nothing. It does not
  learn whether the reload worked.
- nats-server v2.14.2 reloads on SIGHUP and, when the reload fails, only logs it
  (server/signal.go:71-75); `config_load_time` in /varz moves only on a reload that worked
  (server/reload.go:1481) and at start (server/server.go:765).

So the servers themselves say whether they took a change: the control service keeps, like the
reloader, the digest of the files it sees (never a private key) and the earliest that content
may have been there; a server whose `config_load_time` is older than content it has not
loaded, past a grace for the kubelet and the reloader, did not reload. What it cannot tell: a
change within `SPREAD_SECONDS` (plus one collection) after a server's previous reload counts
as loaded, and so does the content found when the service started.
"""

from __future__ import annotations

import bisect
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from infra.runtime_checks import Expectation, RegionServer
from infra.runtime_config import SUPERSEDED

# kubelet: syncFrequency 1 min (pkg/kubelet/apis/config/v1beta1/defaults.go), each pod's resync
# jittered by up to half of it (pkg/kubelet/pod_workers.go workerResyncIntervalJitterFactor).
KUBELET_SYNC_SECONDS = 60
KUBELET_SYNC_JITTER = 0.5
PROJECTION_SECONDS = round(KUBELET_SYNC_SECONDS * (1 + KUBELET_SYNC_JITTER))  # 90
# The reloader re-adds a file the kubelet's symlink swap removed on a 1 s ticker, then signals.
RELOADER_READD_SECONDS = 1
# How long after the control service saw new content a server may still not have loaded it:
# its own copy may come up to PROJECTION_SECONDS later, then the reloader and the reload.
GRACE_SECONDS = 120
# How much earlier a server's pod may have had content than the control service's pod (each
# kubelet syncs on its own clock).
SPREAD_SECONDS = PROJECTION_SECONDS

STALE_FAMILY = "supercluster_server_config_stale_seconds"
STALE_HELP = (
    "Seconds since the files a server is given changed to content it has not loaded (0 when "
    "it runs them, or while they may still be on their way)"
)
STALE_LABELS = ("region", "server")
KEPT = 64  # contents remembered; older ones count as loaded

# nack pkg/natsreloader/natsreloader.go:626 (includes) and :666 (certificates), made to match
# the chart's JSON rendering too, whose keys are quoted.
_INCLUDE = re.compile(r"""(?m)^\s*include\s+(['"]?[^'";\n]*)""")
_TLS_FILE = re.compile(
    r"""(?m)^\s*["']?(cert_file|key_file|ca_file)["']?\s*:\s*["']?([^'";,\n]*)"""
)


def watched_files(config: str, read: Callable[[str], str], *, keys: bool) -> tuple[str, ...]:
    """The files the reloader watches for a server started with `config`: the file, what it
    includes (relative to the including file, recursively), and the TLS files named in any of
    them; the private keys only when `keys` (the control service never reads one). `read`
    gives a file's text; a missing include raises, as it stops the reloader's start."""
    found: list[str] = []
    pending = [os.path.normpath(config)]
    while pending:
        path = pending.pop()
        if path in found:
            continue
        found.append(path)
        text = read(path)
        for match in _INCLUDE.finditer(text):
            name = match.group(1).strip().lstrip("'\"")
            if name and not name.startswith("$"):
                pending.append(os.path.normpath(os.path.join(os.path.dirname(path), name)))
    tls = []
    for path in found:
        for match in _TLS_FILE.finditer(read(path)):
            kind, name = match.group(1), match.group(2).strip()
            if name and not name.startswith("$") and (keys or kind != "key_file"):
                tls.append(os.path.normpath(os.path.join(os.path.dirname(path), name)))
    return tuple(sorted({*found, *tls}))


@dataclass(frozen=True)
class Content:
    """One content of a server's files (`digest`), and the earliest the control service's
    copy of them may have had it (-inf: it was there when the service started)."""

    digest: str
    since: float


Timeline = tuple[Content, ...]


def observed(timeline: Timeline, digest: str, changed_at: float, keep: int = KEPT) -> Timeline:
    """`timeline` with `digest` added when it differs from the last content; `changed_at`:
    the earliest it may have appeared (when the previous content was last seen), never
    before the content it follows."""
    if not timeline:
        return (Content(digest, -math.inf),)
    if timeline[-1].digest == digest:
        return timeline
    return (*timeline, Content(digest, max(changed_at, timeline[-1].since)))[-keep:]


def stale_seconds(
    timeline: Timeline, loaded_at: float, now: float, *, grace: float, spread: float
) -> float:
    """0 when the server, which last loaded its configuration at `loaded_at`, runs the files'
    current content, or when the content it lacks is younger than `grace`; else the seconds
    since the files changed to content it has not loaded. It may have loaded any content the
    service saw within `spread` after `loaded_at` (its pod may have had it earlier)."""
    if not timeline:
        return 0.0
    starts = [c.since for c in timeline]
    first = max(0, bisect.bisect_right(starts, loaded_at) - 1)
    last = max(first, bisect.bisect_right(starts, loaded_at + spread) - 1)
    loaded = {c.digest for c in timeline[first : last + 1]}
    if timeline[-1].digest in loaded:
        return 0.0
    latest = max(i for i, c in enumerate(timeline) if c.digest in loaded)
    behind = now - timeline[latest + 1].since
    return behind if behind >= grace else 0.0


def unix_seconds(text: str) -> float:
    """An RFC 3339 time as nats-server writes it (Go: up to nine fraction digits), to the
    microsecond: a reload a moment after a file changed must not look older than the change."""
    whole, dot, rest = text.replace("Z", "+00:00").partition(".")
    if dot:
        digits = re.match(r"\d*", rest)
        fraction = digits.group(0) if digits else ""
        whole = f"{whole}.{(fraction + '000000')[:6]}{rest[len(fraction) :]}"
    return datetime.fromisoformat(whole).timestamp()


# --- a put in the clouds -------------------------------------------------------------------


def superseded(history: Iterable[Mapping[str, Any]], earlier: str, change: str) -> bool:
    """Whether storing `change` superseded `earlier` while it was still pending."""
    said = f"{SUPERSEDED} by {change}"
    return any(e.get("change") == earlier and e.get("outcome") == said for e in history)


def watched_for(
    expectation: Expectation, baseline: Mapping[str, RegionServer], *, files_changed: bool
) -> Expectation:
    """What a pending change must show, from the servers as they were before it (`baseline`):
    files that changed since then must be loaded (each `config_load_time` moves); files back
    to what the servers ran then need no reload, only that each runs that configuration again
    (its `config_digest`). Routes and cuts are checked either way."""
    return replace(expectation, before=dict(baseline), back=not files_changed)
