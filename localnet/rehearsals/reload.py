"""Reload, not restart: each kind of configuration change applied to a running region under
traffic, the way the chart's config reloader applies it (SIGHUP after the ConfigMap changed),
against the program's decision (infra.nats_conf.restart_fingerprint): a change the servers
reload must not move the fingerprint (the pods must not roll), a change they cannot reload must
(else it would never take effect)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.nats_conf import restart_fingerprint
from localnet.demo import Supercluster
from localnet.options import DemoOptions
from localnet.region import LocalRegion
from localnet.rehearsals.common import Report, Say, server_lives, stream_messages
from localnet.traffic import Traffic

Change = Callable[[dict[str, Any]], None]


def _grant(conf: dict[str, Any]) -> None:
    requester = next(
        u for u in conf["accounts"]["SERVICES"]["users"] if u["user"].startswith("CN=requester")
    )
    requester["permissions"]["publish"]["allow"].append("math.extra.>")


def _route(conf: dict[str, Any]) -> None:
    conf["cluster"]["routes"].append("tls://east-3.east-headless:6222")


def _peer(conf: dict[str, Any]) -> None:
    conf["gateway"]["gateways"].append({"name": "central", "urls": ["tls://central.test:7222"]})


def _advertise(conf: dict[str, Any]) -> None:
    conf["gateway"]["advertise"] = "a-new-load-balancer.test:7222"


def _lame_duck(conf: dict[str, Any]) -> None:
    conf["lame_duck_duration"] = "45s"


# Each change, and whether nats-server can apply it by reload (nats-server v2.14.2 reload.go).
CHANGES: dict[str, tuple[Change, bool]] = {
    "a user's permissions": (_grant, True),
    "a route to a new server (scaling)": (_route, True),
    "a gateway peer listed": (_peer, False),
    "the advertised gateway address (a new load balancer)": (_advertise, False),
    "the lame duck duration": (_lame_duck, False),
}


def apply(region: LocalRegion, change: Change) -> tuple[bool, bool, list[str | None]]:
    """Apply the change to every server of the region, then put the applied configuration
    back; returns (fingerprint moved, every reload applied, each server's reload error)."""
    applied = region.conf
    changed = copy.deepcopy(applied)
    change(changed)
    region.write_conf(changed)
    errors = [region.reload(i) for i in range(region.spec.replicas)]
    region.write_conf(applied)
    restored = [region.reload(i) for i in range(region.spec.replicas)]
    if any(restored):
        raise RuntimeError(f"the region did not take its configuration back: {restored}")
    moved = restart_fingerprint(changed) != restart_fingerprint(applied)
    return moved, not any(errors), errors


def rehearse(workdir: Path, say: Say, *, rtt_ms: float = 10.0) -> Report:
    report = Report("reload, not restart: which changes the servers apply live")
    cluster = Supercluster(
        DemoOptions(state_dir=workdir / "supercluster", rtt_ms=rtt_ms, recorder=False), say=say
    )
    try:
        cluster.up()
        east = cluster.regions["east"]
        lives = server_lives(cluster.regions)
        messages_before = stream_messages(east)
        traffic = [Traffic(region).start() for region in cluster.regions.values()]
        agreed = True
        for what, (change, reloadable) in CHANGES.items():
            moved, reloaded, errors = apply(east, change)
            refusal = str(errors[0]).split(": old=", 1)[0]
            verdict = "reloaded live" if reloaded else f"refused by reload ({refusal})"
            report.figure(
                f"{what}: {verdict}; restart fingerprint {'changed' if moved else 'unchanged'}"
            )
            agreed = agreed and reloaded is reloadable and moved is not reloaded
        summaries = [t.stop() for t in traffic]
        for summary in summaries:
            report.figure(summary.line())
        started = {name: start for name, (start, _) in lives.items()}
        still = {name: start for name, (start, _) in server_lives(cluster.regions).items()}
        published = sum(s.published for s in summaries)
        stored = stream_messages(east) - messages_before
        report.promise(
            "the fingerprint moves exactly for the changes a reload cannot apply",
            agreed,
        )
        report.promise(
            "no server restarted, no client disconnected, no request failed, no answer lost "
            f"({published} published, {stored} stored)",
            started == still
            and all(s.disconnects == 0 and s.failed == 0 for s in summaries)
            and stored == published,
        )
    finally:
        cluster.down()
    return report
