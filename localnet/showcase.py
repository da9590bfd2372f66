"""What `./dev demo` shows on the running supercluster, and its report: requests from each
region served there, east's calculators failed over to west, every answer recorded; and in the
cloud variant with Prometheus (`--cloud --prometheus`), the clouds' ways where they differ from
the local defaults, each checked against what the alert rules see."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from localnet.control import call, connection_of
from localnet.demo import Supercluster
from localnet.options import DemoOptions
from localnet.prometheus import DISCOVERY_SECONDS, LocalPrometheus

# How long the cloud variant waits for an alert to fire or resolve (its windows are scaled to
# seconds: NatsRegionUnseen's 3-minute staleness and 2-minute `for` become 6 s and 4 s).
ALERT_PATIENCE_SECONDS = 90.0


def demonstrate(cluster: Supercluster, options: DemoOptions) -> int:
    """Start it, show it, print the report; the exit code (0: every promise held)."""
    cluster.up()
    requests: dict[str, Any] = {}
    for seed, region in enumerate(cluster.regions, start=1):
        print(f"-- {options.requests} requests from {region} ...", flush=True)
        requests[region] = cluster.request(region, options.requests, seed)
    print("-- stopping the east calculators; east's requests now cross to west", flush=True)
    cluster.stop_calculators("east")
    failover = cluster.request("east", max(1, options.requests // 2), seed=99)
    published = sum(s["published"] for s in (*requests.values(), failover))
    print(f"-- waiting for the recorder to store {published} answers ...", flush=True)
    recorded = cluster.wait_for_records(published)
    servers = ", ".join(
        f"{n} {r.spec.replicas}/{r.spec.replicas}" for n, r in cluster.regions.items()
    )
    report: dict[str, Any] = {
        "servers": servers,
        "gateways": all(cluster.gateways(n) for n in cluster.regions),
        "meta": cluster.meta_leader(),
        "requests": requests,
        "failover": failover,
        "published": published,
        "recorded": recorded,
    }
    held = recorded == published and failover["failed"] == 0
    if cluster.prometheus is not None:
        report["alerts"] = sorted(
            {
                f"{a['labels']['alertname']}"
                + (f" ({a['labels']['region']})" if "region" in a["labels"] else "")
                for a in cluster.prometheus.alerts()
            }
        )
        if options.reloader:
            answered = {r: s["answered"] for r, s in requests.items()}
            answered["east"] = answered.get("east", 0) + failover["answered"]
            report["cloud"] = cloud_checks(cluster, cluster.prometheus, answered)
            held = held and all(ok for ok, _ in report["cloud"])
    print(render_report(report), flush=True)
    return 0 if held else 1


def render_report(report: dict[str, Any]) -> str:
    lines = ["", "== local supercluster report =="]
    lines.append(
        f"servers: {report['servers']}; gateways connected both ways: "
        f"{'yes' if report['gateways'] else 'NO'}"
    )
    leader, size = report["meta"]
    lines.append(f"JetStream: meta leader {leader} over {size} servers")
    for region, summary in report["requests"].items():
        served = summary["served_by"]
        local = served.get(region, 0)
        share = 100 * local / max(1, summary["answered"])
        lines.append(
            f"requests from {region}: {summary['answered']}/{summary['requested']} answered, "
            f"{summary['failed']} failed, {share:.0f}% served in {region} {served}; "
            f"in-region latency p50 {summary['latency_ms_p50']} ms, "
            f"p99 {summary['latency_ms_p99']} ms"
        )
    failover = report["failover"]
    lines.append(
        f"failover (east calculators stopped): {failover['answered']}/{failover['requested']} "
        f"answered, {failover['failed']} failed, served by {failover['served_by']}; "
        f"cross-region latency p50 {failover['latency_ms_p50']} ms, "
        f"p99 {failover['latency_ms_p99']} ms"
    )
    lines.append(
        f"records stored: {report['recorded']} of {report['published']} published "
        f"({report['published'] - report['recorded']} missing)"
    )
    if "alerts" in report:
        lines.append(f"alerts firing: {', '.join(report['alerts']) or 'none'}")
        if "InRegionShareFalling (east)" in report["alerts"]:
            lines.append(
                "  (InRegionShareFalling for east is the failover above: east's calculators "
                "were stopped, so its requests crossed to west)"
            )
    for ok, line in report.get("cloud", ()):
        lines.append(f"cloud variant: {line}{'' if ok else ' -- NOT AS PROMISED'}")
    return "\n".join(lines)


Check = tuple[bool, str]


def cloud_checks(
    cluster: Supercluster, prometheus: LocalPrometheus, answered: dict[str, int]
) -> list[Check]:
    """The clouds' ways, each with what the alert rules make of it."""
    return [
        _jetstream_off(prometheus),
        _put_with_nothing_to_load(cluster),
        _requester_jobs(prometheus, answered),
        _region_unseen(cluster, prometheus, "west"),
    ]


def _jetstream_off(prometheus: LocalPrometheus) -> Check:
    leaders = {
        s["metric"]["region"]: s["value"][1]
        for s in prometheus.query("supercluster_jetstream_meta_leader")
    }
    missing = _alerting(prometheus, "NatsJetStreamMetaLeaderMissing")
    ok = leaders == {"east": "1"} and not missing
    return ok, (
        f"west runs no JetStream: meta leader series {leaders or 'none'}, "
        f"NatsJetStreamMetaLeaderMissing {'firing or pending' if missing else 'quiet'}"
    )


def _put_with_nothing_to_load(cluster: Supercluster) -> Check:
    """A put whose files are the servers' already: the reloader would send no signal, so it is
    applied at once, and nothing rolls it back later."""
    connection = connection_of(cluster.options.state_dir, "east")
    started = time.monotonic()
    ok, answer = asyncio.run(call(connection, "east", "put", {"cut_gateways": []}))
    took = time.monotonic() - started
    if not ok:
        return False, f"a put that changes nothing was refused: {answer}"
    change = answer["applied"]["change"]
    time.sleep(3)  # a watch, had one started, would be waiting now
    _, config = asyncio.run(call(connection, "east", "get", None))
    later: dict[str, Any] = next((e for e in config["history"] if e.get("change") == change), {})
    outcome = str(later.get("outcome", ""))
    held = answer["outcome"] == "applied" and outcome.startswith("applied")
    return held, (
        f"a put that changes nothing (reloader path): {answer['outcome']} in {took:.1f} s, "
        f"3 s later {outcome or 'not in the history'}"
    )


def _requester_jobs(prometheus: LocalPrometheus, answered: dict[str, int]) -> Check:
    """The requester runs are Jobs, gone now: their totals are still in Prometheus for the
    panels and rules that read them with max_over_time (infra/dashboards.py)."""
    seen = {
        s["metric"]["region"]: round(float(s["value"][1]))
        for s in prometheus.query(
            "sum by (region) (max_over_time(supercluster_requester_answers_total[15m]))"
        )
    }
    # A target leaves with the next handing over of discovered targets (DISCOVERY_SECONDS).
    gone = _wait(
        lambda: not prometheus.query('up{app_kubernetes_io_name="requester"}'),
        DISCOVERY_SECONDS + 10,
    )
    ok = seen == answered and gone
    return ok, (
        f"requester Jobs ended (no requester target left: {gone}); their answers as "
        f"Prometheus holds them {seen}, as they reported {answered}"
    )


def _region_unseen(cluster: Supercluster, prometheus: LocalPrometheus, region: str) -> Check:
    """A region's servers all gone: its control service sees none; NatsRegionUnseen fires,
    and resolves once they are back."""
    cluster.stop_servers(region)
    started = time.monotonic()
    fired = _wait(lambda: prometheus.firing("NatsRegionUnseen", region=region))
    fired_after = time.monotonic() - started
    cluster.restart_servers(region)
    back = time.monotonic()
    resolved = fired and _wait(lambda: not _alerting(prometheus, "NatsRegionUnseen"))
    resolved_after = time.monotonic() - back
    return fired and resolved, (
        f"{region}'s servers stopped: NatsRegionUnseen "
        + (f"fired after {fired_after:.1f} s" if fired else "did not fire")
        + "; servers back: "
        + (f"resolved after {resolved_after:.1f} s" if resolved else "not resolved")
    )


def _alerting(prometheus: LocalPrometheus, name: str) -> bool:
    return any(
        a["labels"].get("alertname") == name
        for state in ("pending", "firing")
        for a in prometheus.alerts(state)
    )


def _wait(condition: Callable[[], bool], timeout: float = ALERT_PATIENCE_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False
