"""A real Prometheus (Debian's `prometheus` package) beside the local supercluster: it scrapes
every service's metrics and evaluates the alert rules that need only those (infra/alerts.py,
source "services"), with their windows and `for` scaled down so an alert that waits two minutes
in the clouds waits seconds here. Started and stopped like every other local process: in a
session of its own, stopped with its parent (localnet/processes.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.alerts import rule_groups, rules_text
from localnet.ports import LOOPBACK, free_port
from localnet.processes import stop_with_parent

PROMETHEUS = "/usr/bin/prometheus"
# Windows and `for` here are the clusters' divided by 30: 2 minutes become 4 s.
LOCAL_SCALE = 1 / 30
TARGETS_FILE = "targets.json"
# Prometheus hands discovered targets to its scrapers at most every 5 s, on every clock
# (v2.42.0, Debian's: discovery/manager.go:119 and 344): a target that lives less than that
# and two scrapes may never be scraped.
DISCOVERY_SECONDS = 5


@dataclass(frozen=True)
class Target:
    """A service's metrics port and the pod labels it would carry in a cluster."""

    port: int
    name: str  # app.kubernetes.io/name
    region: str  # nats.io/region


class LocalPrometheus:
    def __init__(
        self,
        directory: Path,
        targets: Mapping[str, Target],  # read again at each sync
        *,
        scale: float = LOCAL_SCALE,
        interval_seconds: int = 1,
    ) -> None:
        self.directory = directory
        self.targets = targets
        self.scale = scale
        self.interval = interval_seconds
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def linger_seconds(self, cloud_seconds: float) -> int:
        """How long a Job's metrics must stay up here for what `cloud_seconds` gives it in the
        clouds: scaled down, but never below the discovery delay and two scrapes."""
        return max(round(cloud_seconds * self.scale), DISCOVERY_SECONDS + 2 * self.interval)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def config(self) -> dict[str, Any]:
        """Scrape every target and evaluate every `interval`. The targets come from a file
        rewritten as they come and go (`sync`), as a cluster's pod discovery has them: a Job's
        pod is a target while it runs and none once it is done (prometheus-operator v0.86.1
        pkg/prometheus/promcfg.go:1402-1403 and 2121-2127: a PodMonitor drops pods in phase
        Succeeded or Failed). Their labels are the ones a PodMonitor copies from the pods
        (app_kubernetes_io_name, nats_io_region)."""
        return {
            "global": {
                "scrape_interval": f"{self.interval}s",
                "scrape_timeout": f"{self.interval}s",
                "evaluation_interval": f"{self.interval}s",
            },
            "rule_files": ["rules.yml"],
            "scrape_configs": [
                {
                    "job_name": "services",
                    "file_sd_configs": [
                        {"files": [TARGETS_FILE], "refresh_interval": f"{self.interval}s"}
                    ],
                }
            ],
        }

    def target_groups(self) -> list[dict[str, Any]]:
        return [
            {
                "targets": [f"{LOOPBACK}:{t.port}"],
                "labels": {"app_kubernetes_io_name": t.name, "nats_io_region": t.region},
            }
            for t in self.targets.values()
        ]

    def sync(self) -> None:
        """Write the targets as they are now (replaced whole, so Prometheus never reads half a
        file); it notices within a second."""
        path = self.directory / TARGETS_FILE
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(self.target_groups()))
        partial.replace(path)

    def start(self, timeout: float = 30) -> None:
        if not Path(PROMETHEUS).exists():
            raise RuntimeError(
                "prometheus is missing: apt-get install prometheus (./dev test does)"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "prometheus.yml").write_text(yaml.safe_dump(self.config()))
        self.sync()
        rules = rule_groups(scale=self.scale, sources=("services",))
        (self.directory / "rules.yml").write_text(rules_text(rules))
        with (self.directory / "prometheus.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *stop_with_parent(),
                    shutil.which("prometheus") or PROMETHEUS,
                    f"--config.file={self.directory / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address={LOOPBACK}:{self.port}",
                    "--storage.tsdb.retention.time=1d",
                ],
                cwd=self.directory,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log_text = (self.directory / "prometheus.log").read_text()[-2000:]
                raise RuntimeError(f"prometheus did not start:\n{log_text}")
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def _api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as answer:
            body = json.loads(answer.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._api("query", query=expr)["result"]
        return found

    def alerts(self, state: str = "firing") -> list[dict[str, Any]]:
        """The alerts in `state` (pending or firing), with their labels."""
        return [a for a in self._api("alerts")["alerts"] if a["state"] == state]

    def firing(self, name: str, **labels: str) -> bool:
        return any(
            a["labels"].get("alertname") == name
            and all(a["labels"].get(k) == v for k, v in labels.items())
            for a in self.alerts()
        )
