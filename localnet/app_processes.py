"""The application's processes on the local supercluster, as its pods run in a cluster: the
calculators, control services and recorder (Deployments: kept as Prometheus targets while they
restart) and the requester (a Job: a target only while it runs, then gone), each with its own
identity's files and a log in the state directory; and the record of every process started."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nats.errors

from infra.identities import MATH_OPERATIONS
from infra.monitoring import REQUESTER_LINGER_SECONDS
from infra.region_servers import servers_setting
from localnet.clients import served_in_region, service_env
from localnet.database import count_records, database_env
from localnet.options import DemoOptions
from localnet.ports import LOOPBACK, free_port
from localnet.processes import Record, Started, stop_with_parent
from localnet.prometheus import LocalPrometheus, Target
from localnet.region import LocalRegion
from offline.stack_files import PROJECT_DIR


class AppProcesses:
    """What `Supercluster` (localnet/demo.py) starts on its regions besides the servers, and
    the record of every process it started (`./dev down` reads it)."""

    options: DemoOptions
    regions: dict[str, LocalRegion]
    services: dict[str, subprocess.Popen[bytes]]
    # Each service's metrics port and labels, kept across its restarts (Prometheus's targets).
    metrics: dict[str, Target]
    prometheus: LocalPrometheus | None

    @property
    def pid_file(self) -> Path:
        return self.options.state_dir / "pids.json"

    @property
    def first(self) -> LocalRegion:
        """The first region deployed: it owns the CA and declares the `answers` stream."""
        return next(iter(self.regions.values()))

    # --- bringing it up ------------------------------------------------------------------
    def _record_pids(self) -> None:
        pids = [p.pid for r in self.regions.values() for p in r.processes if p is not None]
        pids += [p.pid for p in self.services.values()]
        if self.prometheus is not None and self.prometheus.process is not None:
            pids.append(self.prometheus.process.pid)
        started = (Started.of(pid) for pid in pids)
        Record(Started.of(os.getpid()), tuple(p for p in started if p)).write(self.pid_file)

    def start_recorder(self) -> None:
        """The recorder, in the first region (where the stream and its consumer are)."""
        first = self.first
        self._start(f"recorder-{first.name}", "recorder", first, self._database_env())

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
                asyncio.run(served_in_region(self.regions[name])) for name in expected
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
        job = f"requester-{region}"
        if self.prometheus is not None:  # scraped as a Job is: while it runs and lingers
            self.metrics[job] = Target(free_port(), "requester", region)
            self.prometheus.sync()
            extra |= {
                "METRICS_PORT": str(self.metrics[job].port),
                "METRICS_ADDRESS": LOOPBACK,
                "METRICS_LINGER_SECONDS": str(
                    self.prometheus.linger_seconds(REQUESTER_LINGER_SECONDS)
                ),
            }
        try:
            result = subprocess.run(
                [*stop_with_parent(), sys.executable, "-m", "services", "requester"],
                cwd=PROJECT_DIR,
                env=service_env(self.regions[region], "requester", extra, self._health(job)),
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        finally:
            if self.metrics.pop(job, None) is not None and self.prometheus is not None:
                self.prometheus.sync()  # the Job's pod is gone, and its target with it
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
        """Answers stored so far (distinct request ids)."""
        return count_records(self.options.mysql, self.options.state_dir)

    def wait_for_records(self, expected: int, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while (seen := self.records()) < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        return seen
