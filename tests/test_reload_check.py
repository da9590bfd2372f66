"""Whether a server runs the files it is given (infra/reload_check.py), without servers: which
files are watched, what content a server loaded given when it loaded, since when it is behind;
and the control service's view of real files (services/reload_watch.py)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable
from pathlib import Path

import pytest

from infra.reload_check import (
    Content,
    observed,
    stale_seconds,
    superseded,
    unix_seconds,
    watched_files,
    watched_for,
)
from infra.runtime_checks import Expectation, RegionServer
from infra.runtime_config import APPLIED, PENDING, RuntimeState
from services.control_put import Written
from services.put_watch import NOTHING_TO_LOAD, PendingWatches
from services.reload_watch import ReloadWatch

GRACE = 120.0
SPREAD = 90.0


def test_includes_are_relative_to_the_including_file_and_tls_files_are_found_quoted_or_not() -> (
    None
):
    files = {
        "/etc/nats-config/nats.conf": (
            '{\n  "cluster": {\n    "tls": {\n      "cert_file": "/c/tls.crt",\n'
            '      "key_file": "/c/tls.key"\n    },\n'
            "    include ../nats-runtime/routes.conf;\n  },\n"
            '  "ca_file": "/ca/ca.crt",\n  include "extra.conf";\n  include $NOT_A_FILE\n}\n'
        ),
        "/etc/nats-runtime/routes.conf": "routes: []\ninclude deeper/more.conf\n",
        "/etc/nats-runtime/deeper/more.conf": "cert_file: '/m/tls.crt'\n",
        "/etc/nats-config/extra.conf": "include nats.conf\n",  # a loop ends
    }
    found = watched_files("/etc/nats-config/nats.conf", files.__getitem__, keys=True)
    assert found == (
        "/c/tls.crt",
        "/c/tls.key",
        "/ca/ca.crt",
        "/etc/nats-config/extra.conf",
        "/etc/nats-config/nats.conf",
        "/etc/nats-runtime/deeper/more.conf",
        "/etc/nats-runtime/routes.conf",
        "/m/tls.crt",
    )
    without = watched_files("/etc/nats-config/nats.conf", files.__getitem__, keys=False)
    assert without == tuple(f for f in found if f != "/c/tls.key")


def test_a_missing_include_stops_the_discovery() -> None:
    with pytest.raises(KeyError):
        watched_files("/a.conf", {"/a.conf": "include gone.conf\n"}.__getitem__, keys=False)


def _timeline(*changes: tuple[str, float]) -> tuple[Content, ...]:
    timeline: tuple[Content, ...] = ()
    for digest, at in changes:
        timeline = observed(timeline, digest, at)
    return timeline


def test_the_content_found_at_start_counts_as_loaded_and_the_same_content_adds_nothing() -> None:
    timeline = _timeline(("a", 500.0), ("a", 900.0))
    assert timeline == (Content("a", -math.inf),)
    assert stale_seconds(timeline, 10.0, 1000.0, grace=GRACE, spread=SPREAD) == 0


def test_a_server_that_did_not_load_changed_files_is_behind_from_the_change_after_the_grace() -> (
    None
):
    timeline = _timeline(("a", 0.0), ("b", 1000.0))
    assert stale_seconds(timeline, 10.0, 1100.0, grace=GRACE, spread=SPREAD) == 0  # on its way
    assert stale_seconds(timeline, 10.0, 1200.0, grace=GRACE, spread=SPREAD) == 200
    assert stale_seconds(timeline, 1001.0, 1200.0, grace=GRACE, spread=SPREAD) == 0  # loaded


def test_a_server_whose_pod_had_the_files_before_the_service_did_is_current() -> None:
    """The server reloaded at 950; this service's kubelet copied the files only at 1000."""
    timeline = _timeline(("a", 0.0), ("b", 1000.0))
    assert stale_seconds(timeline, 950.0, 2000.0, grace=GRACE, spread=SPREAD) == 0
    assert stale_seconds(timeline, 950.0, 2000.0, grace=GRACE, spread=0) == 1000


def test_files_changed_and_changed_back_need_no_reload() -> None:
    """The reloader signals on a digest that differs from what it last signalled for: back to
    the content the server runs, nothing is signalled, and the server is current."""
    timeline = _timeline(("a", 0.0), ("b", 1000.0), ("a", 1010.0))
    assert stale_seconds(timeline, 10.0, 5000.0, grace=GRACE, spread=SPREAD) == 0


def test_behind_counts_from_the_first_change_the_server_missed() -> None:
    timeline = _timeline(("a", 0.0), ("b", 1000.0), ("c", 3000.0))
    assert stale_seconds(timeline, 10.0, 3010.0, grace=GRACE, spread=SPREAD) == 2010
    # loaded b, then c failed
    assert stale_seconds(timeline, 1005.0, 3200.0, grace=GRACE, spread=SPREAD) == 200


def test_a_change_is_never_dated_before_the_one_it_follows() -> None:
    timeline = _timeline(("a", 0.0), ("b", 1000.0), ("c", 400.0))
    assert [c.since for c in timeline][1:] == [1000.0, 1000.0]


def test_load_times_keep_their_fraction() -> None:
    assert unix_seconds("2026-12-07T10:00:00.123456789Z") == pytest.approx(1796637600.123456)
    assert unix_seconds("2026-12-07T10:00:00Z") == 1796637600.0


def test_a_later_put_takes_over_only_what_it_superseded() -> None:
    history = [
        {"change": "a", "outcome": "superseded by b"},
        {"change": "b", "outcome": "pending"},
    ]
    assert superseded(history, "a", "b")
    assert not superseded(history, "a", "c")
    assert not superseded([{"change": "a", "outcome": "applied"}], "a", "b")


def test_what_a_watch_waits_for() -> None:
    servers = {"s0": RegionServer("s0", "id0", 6222, "t0", "d0")}
    later = {"s0": RegionServer("s0", "id1", 6222, "t1", "d1")}
    expectation = Expectation(frozenset(later), later, route_urls=frozenset({"h:1"}))
    changed = watched_for(expectation, servers, files_changed=True)
    assert (changed.before, changed.back) == (servers, False)
    assert changed.route_urls == frozenset({"h:1"})
    back = watched_for(expectation, servers, files_changed=False)
    assert (back.before, back.back) == (servers, True)


def _varz(name: str, cluster: str, loaded: str) -> dict[str, object]:
    return {"server_name": name, "cluster": {"name": cluster}, "config_load_time": loaded}


def test_the_service_sees_the_files_each_server_loads_and_never_reads_a_key(
    tmp_path: Path,
) -> None:
    """Per-server nats.conf (`{pod}`), shared includes and certificates; the key is named but
    absent, as from the control pod: reading it would leave every server out. New content
    dates from the service's previous look, not from the files' times (rewritten files keep
    no trace of when their content changed)."""
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / "routes.conf").write_text("")
    (tmp_path / "server.crt").write_text("cert 1")
    for pod in ("east-0", "east-1"):
        (tmp_path / pod).mkdir()
        (tmp_path / pod / "nats.conf").write_text(
            f'{{\n  "cert_file": "{tmp_path}/server.crt",\n  "key_file": "{tmp_path}/server.key",'
            "\n  include ../runtime/routes.conf;\n}\n"
        )
    now = [10_000.0]
    watch = ReloadWatch(
        "east",
        f"{tmp_path}/{{pod}}/nats.conf",
        grace=5,
        spread=0,
        logger=logging.getLogger("reload-watch-test"),
        clock=lambda: now[0],
    )
    varz = {
        "p-east-0": _varz("p-east-0", "east", "1970-01-01T02:30:00Z"),  # 9000
        "p-east-1": _varz("p-east-1", "east", "1970-01-01T02:30:00Z"),
        "p-west-0": _varz("p-west-0", "west", "1970-01-01T02:30:00Z"),
    }
    assert watch.stale(varz) == {"p-east-0": 0, "p-east-1": 0}
    (tmp_path / "server.crt").write_text("cert 2")  # a renewal
    (tmp_path / "runtime" / "routes.conf").write_text("")  # rewritten, the same
    now[0] = 10_600.0
    assert watch.stale(varz) == {"p-east-0": 600, "p-east-1": 600}
    varz["p-east-0"] = _varz("p-east-0", "east", "1970-01-01T02:48:20.5Z")  # 10100.5
    (tmp_path / "east-1" / "nats.conf").write_text("{}\n")  # only east-1's own file
    now[0] = 10_700.0
    assert watch.stale(varz) == {"p-east-0": 0, "p-east-1": 700}
    (tmp_path / "east-1" / "nats.conf").unlink()
    assert watch.stale(varz) == {"p-east-0": 0}  # unreadable: no series, logged once


# --- the reloader path's put (services/put_watch.py) ----------------------------------------


class _Transaction:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []
        self.watched: list[Written] = []

    async def record(self, change: str, outcome: str) -> None:
        self.recorded.append((change, outcome))

    async def watch(self, written: Written) -> str:
        self.watched.append(written)
        await asyncio.sleep(3600)
        return "applied"


def _written(change: str, before: RuntimeState, after: RuntimeState, load: str) -> Written:
    servers = {"s0": RegionServer("s0", "id", 6222, load, f"digest-{load}")}
    return Written(change, before, after, "v", servers, Expectation(frozenset(servers), servers))


def _state(routes: tuple[str, ...] | None, *history: dict[str, str]) -> RuntimeState:
    return RuntimeState(routes=routes, history=tuple(history))


def test_a_put_with_nothing_to_load_is_applied_at_once_and_one_with_files_is_watched() -> None:
    async def run() -> None:
        transaction = _Transaction()
        tasks: list[asyncio.Task[None]] = []

        def spawn(work: Awaitable[None]) -> asyncio.Task[None]:
            tasks.append(asyncio.ensure_future(work))
            return tasks[-1]

        watches = PendingWatches(transaction, spawn)  # type: ignore[arg-type]
        same = _written("a", _state(("tls://x:1",)), _state(("tls://x:1",)), "t0")
        assert await watches.start(same) == APPLIED
        assert transaction.recorded == [("a", NOTHING_TO_LOAD)]
        assert tasks == []
        changed = _written("b", _state(None), _state(("tls://x:1",)), "t0")
        assert await watches.start(changed) == PENDING
        await asyncio.sleep(0)
        (watched,) = transaction.watched
        assert (watched.expectation.before, watched.expectation.back) == (changed.servers, False)
        # the same put again before the servers were seen to run it: it takes the watch over
        # from the servers as they were before the first, whose watch stops
        again = _written(
            "c",
            changed.after,
            _state(("tls://x:1",), {"change": "b", "outcome": "superseded by c"}),
            "t1",
        )
        assert await watches.start(again) == PENDING
        await asyncio.sleep(0)
        assert tasks[0].cancelled()
        taken = transaction.watched[-1]
        assert (taken.change, taken.before, taken.servers) == ("c", changed.before, changed.servers)
        assert taken.expectation.before == changed.servers
        assert not taken.expectation.back  # the files still differ from the first's baseline
        # a put back to that baseline: nothing to load, but each server must run it again
        back = _written(
            "d",
            again.after,
            _state(None, {"change": "c", "outcome": "superseded by d"}),
            "t2",
        )
        assert await watches.start(back) == PENDING
        await asyncio.sleep(0)
        assert transaction.watched[-1].expectation.back
        assert transaction.watched[-1].before == changed.before
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())
