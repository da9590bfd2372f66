"""What every rehearsal shares: a report of figures and of the promises that held, and the
probes it measures with."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infra.jetstream_ops import Connection, JetStreamAdmin, with_admin
from localnet.clients import admin_connection
from localnet.region import LocalRegion

Say = Callable[[str], None]


@dataclass
class Report:
    """Lines of figures, and each promise with whether it held; a rehearsal passes only when
    every promise did."""

    operation: str
    lines: list[str] = field(default_factory=list)
    promises: list[tuple[str, bool]] = field(default_factory=list)

    def figure(self, line: str) -> None:
        self.lines.append(line)

    def promise(self, what: str, held: bool) -> bool:
        self.promises.append((what, held))
        return held

    @property
    def held(self) -> bool:
        return all(ok for _, ok in self.promises)

    def render(self) -> str:
        out = ["", f"== rehearsal: {self.operation} =="]
        out += self.lines
        out += [f"[{'ok' if ok else 'BROKEN'}] {what}" for what, ok in self.promises]
        out.append(f"promise {'held' if self.held else 'BROKEN'}")
        return "\n".join(out)


def admin(region: LocalRegion, timeout: float = 30.0) -> Connection:
    return Connection.from_inputs({**admin_connection(region), "timeout_seconds": timeout})


def api(
    region: LocalRegion, subject: str, body: dict[str, Any] | None = None, timeout: float = 30.0
) -> Any:
    async def call(js: JetStreamAdmin) -> Any:
        return await js.api(subject, body)

    return asyncio.run(with_admin(admin(region, timeout), call))


def stream_messages(region: LocalRegion, stream: str = "answers") -> int:
    return int(api(region, f"STREAM.INFO.{stream}")["state"]["messages"])


def replicas_current(region: LocalRegion, stream: str = "answers") -> bool:
    """Every replica of the stream reports itself current (caught up with its leader)."""
    cluster = api(region, f"STREAM.INFO.{stream}")["cluster"]
    return bool(cluster.get("leader")) and all(
        r.get("current") for r in cluster.get("replicas", [])
    )


def meta(region: LocalRegion, ordinal: int = 0) -> dict[str, Any]:
    found: dict[str, Any] = region.monitor(ordinal, "jsz")["meta_cluster"]
    return found


def server_lives(regions: dict[str, LocalRegion]) -> dict[str, tuple[str, str]]:
    """Each running server's start time and last configuration load: a restart changes the
    first, a reload the second."""
    lives = {}
    for region in regions.values():
        for ordinal, process in enumerate(region.processes):
            if process is None:
                continue
            varz = region.monitor(ordinal, "varz")
            lives[varz["server_name"]] = (varz["start"], varz["config_load_time"])
    return lives


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds it took; raises TimeoutError naming `what`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} within {timeout:g} s")
        time.sleep(0.2)
    return time.monotonic() - started


def as_json(report: Report) -> str:
    return json.dumps(
        {"operation": report.operation, "lines": report.lines, "promises": report.promises}
    )
