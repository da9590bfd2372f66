"""The alert rules on real servers: Debian's Prometheus scrapes the local supercluster's
services (the control services, the calculators, a recorder) once a second and evaluates the
services' rules with their windows divided by 30 (localnet/prometheus.py). East cuts west off
its gateways through its control service: NatsGatewayDown fires for both sides and resolves
when the cut is lifted. The recorder is killed: RecorderDown fires and resolves when a new one
serves. On the clouds' reload path (the stand-in for the kubelet and the chart's reloader), a
server is given a file it cannot load: NatsServerConfigStale fires for it alone and resolves
once it restarts with good files. The exporter's own alerts cannot run here (no exporter on
this machine); their promtool cases are in tests/test_alert_rules.py."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from localnet.demo import Supercluster
from localnet.prometheus import LOCAL_SCALE, LocalPrometheus
from localnet.rehearsals.common import wait_until
from localnet.reloader import ConfigMapReloader
from tests.control_live import call, server_name, whole

pytestmark = pytest.mark.live

pytestmark = pytest.mark.live

# The cut: `for` 2 min / 30 = 4 s, behind a collection (up to 2 s) and a scrape (1 s).
FIRES_WITHIN = 30.0


@pytest.fixture(scope="module")
def watched(control_cluster: Supercluster) -> Iterator[tuple[Supercluster, LocalPrometheus]]:
    """The shared supercluster with a recorder of its own, and a Prometheus watching both."""
    cluster = control_cluster
    cluster.start_recorder()
    prometheus = LocalPrometheus(cluster.options.state_dir / "prometheus-live", cluster.metrics)
    try:
        prometheus.start()
        yield cluster, prometheus
    finally:
        prometheus.stop()
        cluster.stop_service(f"recorder-{cluster.first.name}")


def _running_up(cluster: Supercluster, prometheus: LocalPrometheus) -> bool:
    """Every running service's target scraped."""
    up = {s["metric"]["instance"]: s["value"][1] for s in prometheus.query("up")}
    running = [cluster.metrics[k] for k, p in cluster.services.items() if p.poll() is None]
    return all(up.get(f"127.0.0.1:{t.port}") == "1" for t in running)


def _quiet(prometheus: LocalPrometheus, *names: str) -> bool:
    return not any(prometheus.firing(name) for name in names)


def test_what_prometheus_scrapes_here(watched: tuple[Supercluster, LocalPrometheus]) -> None:
    """Every service is a target carrying the pod labels the rules use, and the control
    services report their regions whole."""
    cluster, prometheus = watched
    wait_until(lambda: _running_up(cluster, prometheus), 30, "every running service scraped")
    recorder = prometheus.query('up{app_kubernetes_io_name="recorder"}')
    assert [s["metric"]["nats_io_region"] for s in recorder] == ["east"]
    wait_until(
        lambda: len(prometheus.query("supercluster_gateway_servers == 3")) == 2,
        30,
        "each region's three servers gatewayed to the other",
    )
    servers = {
        s["metric"]["region"]: s["value"][1] for s in prometheus.query("supercluster_servers")
    }
    assert servers == {"east": "3", "west": "3"}
    leaders = prometheus.query("supercluster_jetstream_meta_leader")
    assert {s["metric"]["region"]: s["value"][1] for s in leaders} == {"east": "1", "west": "1"}
    expiry = prometheus.query("min(supercluster_tls_cert_not_after_seconds) - time() > 300 * 86400")
    assert expiry, "the local certificates last a year"
    assert _quiet(
        prometheus, "NatsGatewayDown", "NatsRouteMissing", "RecorderDown", "NatsRegionUnseen"
    )


def test_a_gateway_cut_fires_and_resolves(watched: tuple[Supercluster, LocalPrometheus]) -> None:
    cluster, prometheus = watched
    east = cluster.regions["east"]
    wait_until(lambda: whole(cluster), 30, "east and west gatewayed")
    try:
        ok, cut = call(east, "admin", "config.put", {"cut_gateways": ["west"], "force": True})
        assert ok, cut
        fired = wait_until(
            lambda: (
                prometheus.firing("NatsGatewayDown", region="east", remote="west")
                and prometheus.firing("NatsGatewayDown", region="west", remote="east")
            ),
            FIRES_WITHIN,
            "NatsGatewayDown for east -> west and west -> east",
        )
        (alert,) = [
            a
            for a in prometheus.alerts()
            if a["labels"]["alertname"] == "NatsGatewayDown" and a["labels"]["region"] == "east"
        ]
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["runbook_url"] == "docs/operations.md#troubleshooting"
    finally:
        ok, lifted = call(east, "admin", "config.put", {"cut_gateways": []}, wait=15)
    assert ok, lifted
    resolved = wait_until(
        lambda: not prometheus.firing("NatsGatewayDown"), FIRES_WITHIN, "NatsGatewayDown resolved"
    )
    print(
        f"gateway cut: NatsGatewayDown firing {fired:.1f} s after the put "
        f"(for: {2 * 60 * LOCAL_SCALE:g} s), resolved {resolved:.1f} s after the cut was lifted"
    )


def test_a_killed_recorder_fires_and_resolves(
    watched: tuple[Supercluster, LocalPrometheus],
) -> None:
    cluster, prometheus = watched
    key = f"recorder-{cluster.first.name}"
    wait_until(
        lambda: prometheus.query('up{app_kubernetes_io_name="recorder"} == 1') != [], 30, "up"
    )
    cluster.services[key].send_signal(signal.SIGKILL)
    cluster.services[key].wait(timeout=10)
    fired = wait_until(
        lambda: prometheus.firing("RecorderDown", nats_io_region="east"),
        FIRES_WITHIN,
        "RecorderDown for east",
    )
    cluster.start_recorder()  # on the same metrics port, as a restarted pod keeps its target
    resolved = wait_until(
        lambda: not prometheus.firing("RecorderDown"), FIRES_WITHIN, "RecorderDown resolved"
    )
    print(
        f"recorder killed: RecorderDown firing {fired:.1f} s after SIGKILL "
        f"(for: {60 * LOCAL_SCALE:g} s), resolved {resolved:.1f} s after a new recorder started"
    )


def test_a_server_that_cannot_load_its_files_fires_and_resolves(
    watched: tuple[Supercluster, LocalPrometheus],
) -> None:
    """east-0's own nats.conf made unparseable under the reloader stand-in: the reloader
    signals, the reload fails (nats-server only logs it), and the control service, comparing
    the files with each server's `config_load_time`, reports east-0 behind, growing, and no
    other server; restarted with good files, it is current again."""
    cluster, prometheus = watched
    east = cluster.regions["east"]
    conf = east.workdir / east.spec.names.pod(0) / "nats.conf"
    good = conf.read_text()
    server = server_name(east, 0)
    gauge = f'supercluster_server_config_stale_seconds{{region="east",server="{server}"}}'

    def behind() -> float:
        found = prometheus.query(gauge)
        return float(found[0]["value"][1]) if found else -1.0

    # after the puts of the tests before (request path: written, reloaded, the outcome
    # written again), every server is current
    every = 'supercluster_server_config_stale_seconds{region="east"} == 0'
    wait_until(lambda: len(prometheus.query(every)) == 3, 30, "east's servers reported current")
    try:
        with ConfigMapReloader(east, delay=1.0) as reloader:
            began = time.monotonic()
            conf.write_text(good + "this is not a configuration\n")
            wait_until(lambda: reloader.signalled(0) != [], 10, "east-0 signalled")
            (signal_,) = reloader.signalled(0)
            assert "Parse error" in str(signal_.outcome)
            wait_until(
                lambda: prometheus.firing("NatsServerConfigStale", region="east", server=server),
                FIRES_WITHIN,
                "NatsServerConfigStale for east-0",
            )
            fired = time.monotonic() - began
            first = behind()
            time.sleep(2.5)
            assert behind() > first > 0
            others = prometheus.query('supercluster_server_config_stale_seconds{region="east"} > 0')
            assert [s["metric"]["server"] for s in others] == [server]
    finally:
        conf.write_text(good)
        east.restart_server(0)
    restarted = time.monotonic()
    resolved = wait_until(
        lambda: behind() == 0 and not prometheus.firing("NatsServerConfigStale"),
        FIRES_WITHIN,
        "NatsServerConfigStale resolved",
    )
    print(
        f"east-0 given a file it cannot load: NatsServerConfigStale firing {fired:.1f} s after "
        f"the write (grace 5 s, for: {2 * 60 * LOCAL_SCALE:g} s), resolved "
        f"{time.monotonic() - restarted:.1f} s after the restart ({resolved:.1f} s of waiting)"
    )
