"""The local two-region supercluster: the product on one machine, no cloud needed.

Two regions of three `nats-server` processes each, configured by the same functions as the
cloud release; gateway traffic between them through a proxy adding the round trip of
us-east-1 <-> westus; the JetStream objects made by the same provider; calculators in both
regions, a requester in each, the recorder into MySQL (if given) or an embedded database.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from localnet.app_processes import AppProcesses
from localnet.control import REGIONS_FILE
from localnet.links import GatewayLinks
from localnet.options import DemoOptions
from localnet.ports import use_ports_from
from localnet.processes import Record, stop_all
from localnet.prometheus import LocalPrometheus, Target
from localnet.region import LocalRegion
from localnet.reloader import ConfigMapReloader
from localnet.seed import create_seed_jetstream
from localnet.supercluster import plan_supercluster


@dataclass
class Supercluster(AppProcesses):
    options: DemoOptions
    say: Callable[[str], None] = print
    # The regions started, and all those planned.
    regions: dict[str, LocalRegion] = field(default_factory=dict)
    planned: dict[str, LocalRegion] = field(default_factory=dict)
    services: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Each service's metrics port and labels, kept across its restarts (Prometheus's targets).
    metrics: dict[str, Target] = field(default_factory=dict)
    links: GatewayLinks | None = None
    prometheus: LocalPrometheus | None = None
    reloaders: dict[str, ConfigMapReloader] = field(default_factory=dict)

    def up(self) -> None:
        options = self.options
        stop_leftovers(options.state_dir)
        if options.state_dir.exists():
            shutil.rmtree(options.state_dir)
        # Keys, logs and the database: the owner's alone.
        options.state_dir.mkdir(parents=True, mode=0o700)
        options.state_dir.chmod(0o700)
        use_ports_from(options.port_base)
        planned = plan_supercluster(
            options.state_dir, list(options.region_plans()), linked=options.linked
        )
        for region in planned:
            region.write()
            if options.server_binary:
                region.binaries = dict.fromkeys(range(region.spec.replicas), options.server_binary)
            self.planned[region.name] = region
        if options.linked:
            self.links = GatewayLinks(planned, one_way_delay_ms=options.rtt_ms / 2)
            self.links.start()
        for name in options.start or tuple(self.planned):
            self._start_servers(name)
        self._wait_for_mesh()
        self._write_regions()
        self.say(
            f"gateways meshed ({self._gateway_lists()}); "
            f"{options.rtt_ms:g} ms round trip between the regions"
        )
        self._create_jetstream()
        for name in self.regions:
            self._start_calculators(name)
            self.start_control(name)
        if options.recorder:
            self.start_recorder()
        self._wait_for_calculators()
        for name in self.regions:
            self._wait_for_control(name)
        self.say("calculators and control services serving; recorder draining answers")
        if options.prometheus:
            self.prometheus = LocalPrometheus(options.state_dir / "prometheus", self.metrics)
            self.prometheus.start()
            self._record_pids()
            self.say(f"prometheus at {self.prometheus.url} (alerts: {self.prometheus.url}/alerts)")

    def start_region(self, name: str) -> None:
        """A region joining a running supercluster (`pulumi up` of a new stack)."""
        self._start_servers(name)
        self._wait_for_mesh()
        self._start_calculators(name)
        self.start_control(name)
        self._wait_for_calculators()
        self._wait_for_control(name)

    def _start_servers(self, name: str) -> None:
        region = self.planned[name]
        self.say(
            f"starting region {name}: {region.spec.replicas} server(s), "
            f"load balancer {region.spec.endpoint}"
        )
        region.start()
        self.regions[name] = region
        if self.options.reloader:
            self.reloaders[name] = ConfigMapReloader(region).start()
        self._record_pids()

    def _write_regions(self) -> None:
        """Each region's load balancer and admin files, for `./dev control`."""
        regions = {}
        for name, region in self.planned.items():
            cert, key, ca = region.client_files("admin")
            regions[name] = {
                "url": f"tls://{region.lb_address}:{region.lb_client_port}",
                "tls_hostname": region.spec.endpoint,
                "cert": str(cert),
                "key": str(key),
                "ca": str(ca),
            }
        (self.options.state_dir / REGIONS_FILE).write_text(json.dumps(regions, indent=2))

    def stop_servers(self, name: str) -> None:
        """Every server of the region stopped, as when its pods are gone; its services stay."""
        region = self.regions[name]
        for ordinal in range(region.spec.replicas):
            region.stop_server(ordinal)
        self._record_pids()

    def restart_servers(self, name: str) -> None:
        """The region's servers started again on their own files, and meshed."""
        region = self.regions[name]
        for ordinal in range(region.spec.replicas):
            region.processes[ordinal] = region.start_server(ordinal)
        self._record_pids()
        for ordinal in range(region.spec.replicas):
            region.wait_healthy(ordinal)
        self._wait_for_mesh()

    def _gateway_lists(self) -> str:
        return "; ".join(
            f"{name} lists {', '.join(g.name for g in (*r.spec.peers,)) or 'only itself'}"
            for name, r in self.regions.items()
        )

    def _wait_for_mesh(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.gateways(name) for name in self.regions):
                return
            time.sleep(0.2)
        raise TimeoutError("gateways did not connect both ways")

    def gateways(self, name: str) -> bool:
        """Every server of the region has an outbound gateway to every other region, and every
        other region has connected in. (Each server dials one server of each other region, so
        a server of a region larger than another need not have an inbound from it.)"""
        others = set(self.regions) - {name}
        region = self.regions[name]
        inbound: set[str] = set()
        for ordinal, process in enumerate(region.processes):
            if process is None:
                continue
            gatewayz = region.monitor(ordinal, "gatewayz")
            if set(gatewayz.get("outbound_gateways") or {}) != others:
                return False
            inbound |= set(gatewayz.get("inbound_gateways") or {})
        return inbound == others

    def _create_jetstream(self) -> None:
        for description in create_seed_jetstream(self.first):
            self.say(f"JetStream {description} (the stack's default, through the same provider)")

    def meta_leader(self) -> tuple[str, int]:
        meta = self.first.monitor(0, "jsz")["meta_cluster"]
        return str(meta.get("leader")), int(meta.get("cluster_size", 0))

    @contextlib.contextmanager
    def running(self) -> Iterator[Supercluster]:
        """Up for the block, down after it, however it ends (a failed start included)."""
        try:
            self.up()
            yield self
        finally:
            self.down()

    # --- taking it down ------------------------------------------------------------------
    def down(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None
        for process in self.services.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.services.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.services.clear()
        for reloader in self.reloaders.values():
            reloader.stop()
        self.reloaders.clear()
        for region in self.regions.values():
            region.stop()
        if self.links is not None:
            self.links.stop()
            self.links = None
        self.pid_file.unlink(missing_ok=True)


def stop_leftovers(state_dir: Path) -> int:
    """End what an earlier run left running (its pids file), each process only if it is still
    the one recorded; returns how many were."""
    pid_file = state_dir / "pids.json"
    stopped = stop_all(Record.read(pid_file).processes)
    pid_file.unlink(missing_ok=True)
    return stopped
