"""The local two-region supercluster: the product on one machine, no cloud needed.

Two regions of three `nats-server` processes each, configured by the same functions as the
cloud release; gateway traffic between them through a proxy adding the round trip of
us-east-1 <-> westus; the JetStream objects made by the same provider; calculators in both
regions, a requester in each, the recorder into MySQL (if given) or an embedded database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.errors

from components.jetstream import JetStreamProvider
from infra.identities import MATH_OPERATIONS
from infra.jetstream import JetStreamConfig, declared_objects
from infra.region_servers import servers_setting
from localnet.clients import connect_as
from localnet.control import REGIONS_FILE
from localnet.database import database_env
from localnet.links import GatewayLinks
from localnet.processes import Record, Started, stop_all, stop_with_parent
from localnet.prometheus import LocalPrometheus, Target
from localnet.region import LOOPBACK, LocalRegion, free_port, use_ports_from
from localnet.reloader import ConfigMapReloader
from localnet.supercluster import RegionPlan, plan_supercluster
from offline.stack_files import PROJECT_DIR
from services.calculator import subject as calculator_subject

DEFAULT_STATE_DIR = PROJECT_DIR / ".local" / "supercluster"
REGIONS = (
    # (cluster, load balancer name or address, where it listens, server name prefix)
    ("east", "east.lb.nats.test", "127.0.0.1", "aws-us-east-1-"),
    ("west", "127.0.0.2", "127.0.0.2", "azure-westus-"),
)


@dataclass(frozen=True)
class DemoOptions:
    state_dir: Path = DEFAULT_STATE_DIR
    rtt_ms: float = 70.0
    requests: int = 500
    concurrency: int = 32
    # `mysql://user:password@host:port/database`, or None for the embedded database.
    mysql: str | None = None
    # First port to hand out (load balancers, then servers), or None for kernel-chosen ports.
    port_base: int | None = None
    # The regions, in deploy order; None: the demo's east and west.
    plans: tuple[RegionPlan, ...] | None = None
    # Each pair of regions joined by a link of its own (localnet.links), so pairs can be cut.
    linked: bool = False
    # Regions `up` starts; the others wait for `start_region`. None: all of them.
    start: tuple[str, ...] | None = None
    # Regions that run the calculators; None: all. The recorder runs in the first region.
    app_regions: tuple[str, ...] | None = None
    recorder: bool = True
    # Every server runs this nats-server instead of the pinned one (a rolling upgrade's start).
    server_binary: str | None = None
    # A real Prometheus scraping the services and evaluating the alert rules (scaled down).
    prometheus: bool = False
    # The clouds' reload path: the control services only write the files and watch, and a
    # stand-in for the kubelet and the chart's reloader (localnet/reloader.py) reloads.
    reloader: bool = False

    def region_plans(self) -> tuple[RegionPlan, ...]:
        if self.plans is not None:
            return self.plans
        return tuple(
            RegionPlan(name, endpoint, address, prefix, gateway_delay_ms=self.rtt_ms / 2)
            for name, endpoint, address, prefix in REGIONS
        )


@dataclass
class Supercluster:
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

    @property
    def pid_file(self) -> Path:
        return self.options.state_dir / "pids.json"

    @property
    def first(self) -> LocalRegion:
        """The first region deployed: it owns the CA and declares the `answers` stream."""
        return next(iter(self.regions.values()))

    # --- bringing it up ------------------------------------------------------------------
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

    def start_recorder(self) -> None:
        """The recorder, in the first region (where the stream and its consumer are)."""
        first = self.first
        self._start(f"recorder-{first.name}", "recorder", first, self._database_env())

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

    def _start_calculators(self, name: str) -> None:
        if self.options.app_regions is not None and name not in self.options.app_regions:
            return
        for operation in MATH_OPERATIONS:
            self._start(
                f"calculator-{operation}-{name}",
                "calculator",
                self.regions[name],
                {"OPERATION": operation},
            )

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

    def start_control(self, name: str, key: str | None = None) -> None:
        """The region's control service, on the region's runtime directory (the ConfigMap in
        the clouds); it asks the servers to reload (with `reloader`, it leaves that to the
        stand-in, as in the clouds). `key`: a second instance's own name (two overlap in a
        rollout)."""
        region = self.regions[name]
        self._start(
            key or f"control-{name}",
            "control",
            region,
            {
                "CLUSTER": name,
                "RUNTIME_STORE": f"file:{region.runtime_dir}",
                "RELOAD": "reloader" if self.options.reloader else "request",
                # The regions running now, as the cloud's release reads its peers' `gatewayPin`.
                "GATEWAY_PINS": json.dumps({n: [r.gateway_pin()] for n, r in self.regions.items()}),
                # Each server itself (in the clouds its pod's name in the headless Service).
                "SERVER_URLS": json.dumps(
                    {
                        region.spec.names.pod(i): f"tls://{LOOPBACK}:{ports.client}"
                        for i, ports in enumerate(region.ports)
                    }
                ),
                # The release's servers (by name, each at its own cluster port here) and
                # namespace, as the cloud's release gives them.
                "SERVERS": servers_setting(
                    [
                        region.spec.server_name_prefix + region.spec.names.pod(i)
                        for i in range(region.spec.replicas)
                    ],
                    [ports.cluster for ports in region.ports[: region.spec.replicas]],
                ),
                "NAMESPACE": region.spec.names.namespace,
                "COLLECT_SECONDS": "1",
                # The files each server loads, to tell whether it loaded them: locally its
                # own nats.conf; seen as they are written (no kubelet between), so a server
                # is behind once it missed a change for 5 s.
                "WATCH_CONFIG": f"{region.workdir}/{{pod}}/nats.conf",
                "RELOAD_GRACE_SECONDS": "5",
                "RELOAD_SPREAD_SECONDS": "0",
            },
            app_name=f"{name}-control",
        )

    def _wait_for_control(self, name: str, timeout: float = 30) -> None:
        """Until the region's control service answers the admin (through the import)."""
        from localnet.control import call, connection_of  # noqa: PLC0415

        deadline = time.monotonic() + timeout
        while True:
            try:
                ok, _ = asyncio.run(
                    call(connection_of(self.options.state_dir, name), name, "get", None)
                )
                if ok:
                    return
            except nats.errors.NoRespondersError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the control service of {name} did not answer")
            time.sleep(0.2)

    def _gateway_lists(self) -> str:
        return "; ".join(
            f"{name} lists {', '.join(g.name for g in (*r.spec.peers,)) or 'only itself'}"
            for name, r in self.regions.items()
        )

    def _start(
        self,
        key: str,
        program: str,
        region: LocalRegion,
        extra: dict[str, str],
        app_name: str | None = None,
    ) -> None:
        """`app_name`: its app.kubernetes.io/name in a cluster (default the key's program)."""
        log = self.options.state_dir / "logs" / f"{key}.log"
        log.parent.mkdir(exist_ok=True)
        if key not in self.metrics:
            name = app_name or key.removesuffix(f"-{region.name}")
            self.metrics[key] = Target(free_port(), name, region.name)
        served = {"METRICS_PORT": str(self.metrics[key].port), "METRICS_ADDRESS": LOOPBACK}
        with log.open("ab") as stderr:
            self.services[key] = subprocess.Popen(
                [*stop_with_parent(), sys.executable, "-m", "services", program],
                cwd=PROJECT_DIR,
                env=service_env(region, program, {**served, **extra}, self._health(key)),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        self._record_pids()

    def _health(self, key: str) -> Path:
        directory = self.options.state_dir / "health"
        directory.mkdir(exist_ok=True)
        return directory / key

    def _record_pids(self) -> None:
        pids = [p.pid for r in self.regions.values() for p in r.processes if p is not None]
        pids += [p.pid for p in self.services.values()]
        if self.prometheus is not None and self.prometheus.process is not None:
            pids.append(self.prometheus.process.pid)
        started = (Started.of(pid) for pid in pids)
        Record(Started.of(os.getpid()), tuple(p for p in started if p)).write(self.pid_file)

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

    def _database_env(self) -> dict[str, str]:
        return database_env(self.options.mysql, self.options.state_dir)

    def _wait_for_calculators(self, timeout: float = 30) -> None:
        """Until every calculator runs and each region's queue interest is known on every one
        of its servers: a request entering any of them is then served in the region (a server
        that has not yet heard of its own region's calculators sends it over a gateway)."""
        deadline = time.monotonic() + timeout
        expected = {
            name: len(MATH_OPERATIONS)
            for name in self.regions
            if self.options.app_regions is None or name in self.options.app_regions
        }
        while time.monotonic() < deadline:
            if {k: v for k, v in self.responders().items() if v} == expected and all(
                asyncio.run(_served_in_region(self.regions[name])) for name in expected
            ):
                return
            time.sleep(0.2)
        raise TimeoutError("calculators did not start serving in their regions")

    def responders(self) -> dict[str, int]:
        counts = dict.fromkeys(self.regions, 0)
        for key, process in self.services.items():
            if key.startswith("calculator-") and process.poll() is None:
                counts[key.rsplit("-", 1)[1]] += 1
        return counts

    # --- using it ----------------------------------------------------------------------------
    def request(
        self,
        region: str,
        count: int,
        seed: int,
        concurrency: int | None = None,
        retry_seconds: int | None = None,
    ) -> dict[str, Any]:
        extra = {
            "REQUESTS": str(count),
            "CONCURRENCY": str(concurrency or self.options.concurrency),
            "SEED": str(seed),
        }
        if retry_seconds is not None:
            extra["RETRY_SECONDS"] = str(retry_seconds)
        result = subprocess.run(
            [*stop_with_parent(), sys.executable, "-m", "services", "requester"],
            cwd=PROJECT_DIR,
            env=service_env(
                self.regions[region], "requester", extra, self._health(f"requester-{region}")
            ),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode not in (0, 1) or not result.stdout.strip():
            raise RuntimeError(f"requester in {region} failed:\n{result.stderr[-2000:]}")
        summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        return summary

    def stop_calculators(self, region: str) -> None:
        for key in [
            k for k in self.services if k.startswith("calculator-") and k.endswith(f"-{region}")
        ]:
            self.stop_service(key)

    def stop_service(self, key: str) -> None:
        process = self.services.pop(key)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        self._record_pids()

    def records(self) -> int:
        if self.options.mysql is not None:
            import pymysql  # noqa: PLC0415

            env = self._database_env()
            with (
                pymysql.connect(
                    host=env["DB_HOST"],
                    port=int(env["DB_PORT"]),
                    user=env["DB_USER"],
                    password=env["DB_PASSWORD"],
                    database=env["DB_NAME"],
                ) as connection,
                connection.cursor() as cursor,
            ):
                cursor.execute("SELECT COUNT(DISTINCT request_id) FROM answers")
                found = cursor.fetchone()
                return int(found[0]) if found else 0
        path = self.options.state_dir / "answers.db"
        if not path.exists():
            return 0
        with sqlite3.connect(path, timeout=30) as embedded:
            try:
                row = embedded.execute("SELECT COUNT(DISTINCT request_id) FROM answers")
            except sqlite3.OperationalError:
                return 0
            return int(row.fetchone()[0])

    def wait_for_records(self, expected: int, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while (seen := self.records()) < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        return seen

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


def create_seed_jetstream(region: LocalRegion) -> list[str]:
    """The stack's default JetStream objects, made by the dynamic provider `pulumi up` uses;
    returns what was done to each."""
    provider = JetStreamProvider()
    done = []
    for declared in declared_objects(JetStreamConfig(), region.name, region.spec.replicas):
        props: dict[str, Any] = {
            "connection": admin_connection(region),
            "kind": declared.kind,
            "adopt": declared.adopt,
            **declared.request,
        }
        if declared.kind == "consumer":
            props["stream"] = declared.stream
        outs = provider.create(props).outs or {}
        done.append(f"{declared.kind} {declared.key}: {outs.get('action')}")
    return done


def service_env(
    region: LocalRegion, identity: str, extra: dict[str, str], health_file: Path
) -> dict[str, str]:
    """A service's environment: the region's load balancer, the identity's own files."""
    cert, key, ca = region.client_files(identity)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NATS_URL": f"tls://{region.lb_address}:{region.lb_client_port}",
        "NATS_TLS_HOSTNAME": region.spec.endpoint,
        "NATS_CA_FILE": str(ca),
        "NATS_CERT_FILE": str(cert),
        "NATS_KEY_FILE": str(key),
        "REGION": region.name,
        "HEALTH_FILE": str(health_file),
        **extra,
    }


def admin_connection(region: LocalRegion) -> dict[str, Any]:
    cert, key, ca = region.client_files("admin")
    return {
        "url": f"tls://{region.lb_address}:{region.lb_client_port}",
        "tls_hostname": region.spec.endpoint,
        "ca_pem": ca.read_text(),
        "cert_pem": cert.read_text(),
        "key_pem": key.read_text(),
        "timeout_seconds": 60,
    }


def stop_leftovers(state_dir: Path) -> int:
    """End what an earlier run left running (its pids file), each process only if it is still
    the one recorded; returns how many were."""
    pid_file = state_dir / "pids.json"
    stopped = stop_all(Record.read(pid_file).processes)
    pid_file.unlink(missing_ok=True)
    return stopped


async def _served_in_region(region: LocalRegion) -> bool:
    """A request for each operation, entering at each server of the region as the requester,
    answered from the region itself."""
    probe = json.dumps({"a": 1, "b": 1}).encode()
    for ordinal, process in enumerate(region.processes):
        if process is None:
            continue
        client = await connect_as(region, "requester", server=ordinal, dont_randomize=True)
        try:
            for operation in MATH_OPERATIONS:
                try:
                    reply = await client.request(calculator_subject(operation), probe, timeout=2)
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    return False
                if json.loads(reply.data).get("region") != region.name:
                    return False
        finally:
            await client.close()
    return True
