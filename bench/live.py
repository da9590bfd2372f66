"""Benchmarks on the local supercluster, each measured beside its baseline in the same run:
geo-affinity and latency, requester throughput against seed 001's sequential loop, and recorder
ingest against a commit per message."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra.jetstream import JetStreamConfig, consumer_request
from infra.jetstream_ops import Connection, JetStreamAdmin, with_admin
from localnet.clients import admin_connection, service_env
from localnet.demo import Supercluster
from localnet.mariadb import MariaDb, available
from localnet.options import DemoOptions
from offline.stack_files import PROJECT_DIR


@dataclass(frozen=True)
class Ingest:
    database: str
    batch_size: int
    messages: int
    rows: int
    distinct: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def geo_and_throughput(cluster: Supercluster, requests: int) -> list[str]:
    lines = []
    ours = cluster.request("east", requests, seed=101, concurrency=64)
    sequential = cluster.request("east", max(50, requests // 10), seed=102, concurrency=1)
    ours_rate = ours["answered"] / ours["seconds"]
    seq_rate = sequential["answered"] / sequential["seconds"]
    lines.append(
        f"requester throughput (east, request + JetStream publish): concurrency 64: "
        f"{ours_rate:.0f} req/s ({ours['answered']} in {ours['seconds']:.2f} s); "
        f"seed 001's sequential loop (concurrency 1): {seq_rate:.0f} req/s "
        f"({sequential['answered']} in {sequential['seconds']:.2f} s); "
        f"x{ours_rate / seq_rate:.1f}"
    )
    for region, seed in (("east", 103), ("west", 104)):
        summary = cluster.request(region, requests, seed=seed, concurrency=16)
        share = 100 * summary["served_by"].get(region, 0) / max(1, summary["answered"])
        lines.append(
            f"geo-affinity {region}: {share:.1f}% of {summary['answered']} served "
            f"in-region; latency p50 {summary['latency_ms_p50']} ms, "
            f"p99 {summary['latency_ms_p99']} ms"
        )
    cluster.stop_calculators("east")
    crossing = cluster.request("east", max(100, requests // 4), seed=105, concurrency=16)
    lines.append(
        f"cross-region (east calculators stopped, served by {crossing['served_by']}, "
        f"{crossing['failed']} failed): latency p50 {crossing['latency_ms_p50']} ms, "
        f"p99 {crossing['latency_ms_p99']} ms"
    )
    return lines


async def _refill(admin: JetStreamAdmin, messages: int, tag: str) -> None:
    """An empty stream and a fresh recorder consumer, then `messages` answers."""
    await admin.api("STREAM.PURGE.answers", {})
    await admin.api("CONSUMER.DELETE.answers.recorder")
    consumer = consumer_request(JetStreamConfig().consumers[0])
    await admin.api(
        "CONSUMER.CREATE.answers.recorder",
        {"stream_name": "answers", "config": consumer, "action": "create"},
    )
    js = admin.client.jetstream()
    pending = []
    for i in range(messages):
        record = {
            "request_id": f"{tag}-{i}",
            "op": "add",
            "a": 1,
            "b": 1,
            "result": 2,
            "served_by": "east",
            "requested_in": "east",
        }
        pending.append(js.publish("answers.significant", json.dumps(record).encode()))
        if len(pending) == 500:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


def recorder_ingest(
    cluster: Supercluster,
    *,
    messages: int,
    batch_size: int,
    db_env: dict[str, str],
    count_rows: Callable[[], tuple[int, int]],
    workdir: Path,
) -> Ingest:
    east = cluster.regions["east"]
    connection = Connection.from_inputs(admin_connection(east))
    tag = f"ingest-{batch_size}-{time.monotonic_ns()}"
    asyncio.run(with_admin(connection, lambda admin: _refill(admin, messages, tag)))
    env = service_env(
        east,
        "recorder",
        {**db_env, "BATCH_SIZE": str(batch_size)},
        workdir / f"recorder-{batch_size}.healthy",
    )
    started = time.perf_counter()
    with (workdir / f"recorder-{batch_size}.log").open("ab") as log:
        recorder = subprocess.Popen(
            [sys.executable, "-m", "services", "recorder"],
            cwd=PROJECT_DIR,
            env=env,
            stderr=log,
            stdout=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 600
        rows, distinct = count_rows()
        while rows < messages and time.monotonic() < deadline:
            time.sleep(0.05)
            rows, distinct = count_rows()
        seconds = time.perf_counter() - started
    finally:
        recorder.terminate()
        recorder.wait(timeout=30)
    return Ingest(db_env["DB_DRIVER"], batch_size, messages, rows, distinct, seconds)


def _mariadb_rows(database: MariaDb) -> Callable[[], tuple[int, int]]:
    def count() -> tuple[int, int]:
        try:
            out = database.sql(
                "SELECT COUNT(*), COUNT(DISTINCT request_id) FROM answers.answers"
            ).split()
        except subprocess.CalledProcessError:
            return (0, 0)
        return int(out[0]), int(out[1])

    return count


def _sqlite_rows(path: Path) -> Callable[[], tuple[int, int]]:
    def count() -> tuple[int, int]:
        if not path.exists():
            return (0, 0)
        try:
            with sqlite3.connect(path, timeout=30) as embedded:
                row = embedded.execute(
                    "SELECT COUNT(*), COUNT(DISTINCT request_id) FROM answers"
                ).fetchone()
        except sqlite3.OperationalError:
            return (0, 0)
        return int(row[0]), int(row[1])

    return count


def ingest_lines(cluster: Supercluster, messages: int, workdir: Path) -> list[str]:
    """The stack's recorder (batches of 100) against one commit per message, into MariaDB
    when Debian's mariadb-server is installed, else into the embedded database."""
    cluster.stop_service("recorder-east")
    results = []
    database: MariaDb | None = None
    try:
        if available():
            database = MariaDb(workdir / "mariadb")
            database.install()
        for batch_size in (100, 1):
            if database is not None:
                database.sql(
                    "DROP TABLE IF EXISTS answers.answers; DROP TABLE IF EXISTS "
                    "answers.dead_letters;"
                )
                env = {"DB_DRIVER": "mysql", **database.environment()}
                count = _mariadb_rows(database)
            else:
                path = workdir / f"ingest-{batch_size}.db"
                env = {"DB_DRIVER": "sqlite", "DB_PATH": str(path)}
                count = _sqlite_rows(path)
            results.append(
                recorder_ingest(
                    cluster,
                    messages=messages,
                    batch_size=batch_size,
                    db_env=env,
                    count_rows=count,
                    workdir=workdir,
                )
            )
    finally:
        if database is not None:
            database.stop()
    lines = []
    for result in results:
        label = (
            "batches of 100 (the recorder)"
            if result.batch_size > 1
            else "commit per message (baseline)"
        )
        lines.append(
            f"recorder ingest into {result.database}, {label}: {result.rate:.0f} rows/s "
            f"({result.rows} of {result.messages} in {result.seconds:.2f} s; lost "
            f"{result.messages - result.rows}, duplicated {result.rows - result.distinct})"
        )
    return lines


def run(requests: int, messages: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="nats-bench-") as scratch:
        workdir = Path(scratch)
        cluster = Supercluster(
            DemoOptions(state_dir=workdir / "state", rtt_ms=70), say=lambda _line: None
        )
        try:
            cluster.up()
            lines = geo_and_throughput(cluster, requests)
            lines += ingest_lines(cluster, messages, workdir)
        finally:
            cluster.down()
        os.sync()
    return lines
