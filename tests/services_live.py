"""The application's live tests' common ground (tests/test_services_live.py,
tests/test_recorder_live.py): a real 3-server region, a private MariaDB, each service a process
of its own with only its own identity, as in the clusters; and the waits the tests share."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from infra.identities import IdentityName
from infra.jetstream_ops import Connection, JetStreamApiError, with_admin
from localnet.clients import admin_connection, connect_as
from localnet.clients import service_env as local_service_env
from localnet.mariadb import MariaDb
from localnet.region import LocalRegion
from localnet.seed import create_seed_jetstream
from localnet.supercluster import RegionPlan, plan_supercluster
from offline.stack_files import PROJECT_DIR
from services.calculator import OPERATIONS

# JSClusterNoPeersErrF: no set of online peers can hold the stream (nats-server v2.14.2
# server/errors.json:82-88).
NO_PEERS_FOR_PLACEMENT = 10005


def app_region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegion]:
    """A module's region (a fixture's body: `yield from`)."""
    (app,) = plan_supercluster(
        tmp_path_factory.mktemp("app"),
        [RegionPlan("east", "east.lb.nats.test", "127.0.0.1", "aws-us-east-1-")],
    )
    app.write()
    app.start()
    try:  # stopped even when the seed objects cannot be made
        _seed_jetstream(app)
        yield app
    finally:
        app.stop()


def _seed_jetstream(region: LocalRegion, patience: float = 30) -> None:
    """The seed stream and consumer. A server answers /healthz before the meta leader has heard
    from every peer, and placing the 3-replica stream then fails with 10005 "peer offline" for
    a moment (seen twice in a row with the machine's load at 7 on 2 cores): wait for that."""
    deadline = time.monotonic() + patience
    while True:
        try:
            create_seed_jetstream(region)
            return
        except JetStreamApiError as error:
            if error.err_code != NO_PEERS_FOR_PLACEMENT or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def admin_api(region: LocalRegion, subject: str, body: dict[str, Any] | None = None) -> Any:
    connection = Connection.from_inputs(admin_connection(region))
    return asyncio.run(with_admin(connection, lambda admin: admin.api(subject, body)))


def private_mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDb]:
    """A module's MariaDB (a fixture's body: `yield from`)."""
    db = MariaDb(tmp_path_factory.mktemp("mariadb"))
    try:
        db.install()
        yield db
    finally:
        db.stop()


def service_env(region: LocalRegion, identity: str, **extra: str) -> dict[str, str]:
    health = region.workdir / f"{identity}-{extra.get('OPERATION', '')}.healthy"
    return local_service_env(region, identity, extra, health)


class Service:
    def __init__(self, program: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as stderr:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services", program],
                cwd=PROJECT_DIR,
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()  # never leave a process behind
                self.process.wait(timeout=10)
                raise
        assert self.process.stdout is not None
        self.process.stdout.close()


def running_calculators(
    region: LocalRegion, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """The four calculators (a fixture's body: `yield from`)."""
    logs = tmp_path_factory.mktemp("calculator-logs")
    running = [
        Service("calculator", service_env(region, "calculator", OPERATION=op), logs / f"{op}.log")
        for op in OPERATIONS
    ]
    for op in OPERATIONS:  # each its own process: one serving says nothing of the others
        wait_for_service(region, f"math.numbers.{op}")
    yield
    for service in running:
        service.stop()
        assert service.process.returncode == 0, service.log.read_text()[-2000:]


def wait_for_service(region: LocalRegion, subject: str) -> None:
    async def probe() -> None:
        client = await client_as(region, "requester")
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    await client.request(subject, b'{"a": 1, "b": 1}', timeout=1)
                    return
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
        finally:
            await client.close()

    asyncio.run(probe())


async def client_as(region: LocalRegion, identity: IdentityName) -> Client:
    return await connect_as(region, identity, allow_reconnect=True)


def run_requester(region: LocalRegion, count: int, seed: int, log: Path) -> dict[str, Any]:
    env = service_env(region, "requester", REQUESTS=str(count), CONCURRENCY="50", SEED=str(seed))
    result = subprocess.run(
        [sys.executable, "-m", "services", "requester"],
        check=False,
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log.write_text(result.stderr)
    assert result.returncode == 0, result.stderr[-2000:]
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


def rows(db: MariaDb) -> tuple[int, int]:
    try:
        count, distinct = db.sql(
            f"SELECT COUNT(*), COUNT(DISTINCT request_id) FROM {db.database}.answers"
        ).split()
    except subprocess.CalledProcessError:
        return 0, 0  # no recorder has made the schema yet
    return int(count), int(distinct)


def wait_for_rows(db: MariaDb, expected: int, timeout: float = 60) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        seen = rows(db)
        if seen[0] >= expected or time.monotonic() > deadline:
            return seen
        time.sleep(0.25)


def wait_for_log(log: Path, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not (log.exists() and text in log.read_text()):
        assert time.monotonic() < deadline, f"{text!r} not in {log}"
        time.sleep(0.1)


def start_recorder(region: LocalRegion, db: MariaDb, log: Path, **extra: str) -> Service:
    env = service_env(region, "recorder", **db.environment(), BATCH_SIZE="50", **extra)
    return Service("recorder", env, log)
