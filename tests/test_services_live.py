"""The application against a real 3-server region and a real MariaDB: each service a process of
its own with only its own identity, as in the clusters."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client

from infra.identities import IdentityName
from infra.jetstream_ops import Connection, with_admin
from localnet.clients import connect_as
from localnet.demo import admin_connection, create_seed_jetstream
from localnet.demo import service_env as local_service_env
from localnet.mariadb import MariaDb, available
from localnet.proxy import TcpProxy
from localnet.region import LOOPBACK, LocalRegion, free_port
from localnet.supercluster import RegionPlan, plan_supercluster
from offline.stack_files import PROJECT_DIR
from services.calculator import OPERATIONS
from services.connect import CLOSE_SECONDS, STOP_SECONDS

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not available(), reason="needs Debian's mariadb-server"),
]


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegion]:
    (app,) = plan_supercluster(
        tmp_path_factory.mktemp("app"),
        [RegionPlan("east", "east.lb.nats.test", "127.0.0.1", "aws-us-east-1-")],
    )
    app.write()
    app.start()
    create_seed_jetstream(app)
    yield app
    app.stop()


def _admin(region: LocalRegion, subject: str, body: dict[str, Any] | None = None) -> Any:
    connection = Connection.from_inputs(admin_connection(region))
    return asyncio.run(with_admin(connection, lambda admin: admin.api(subject, body)))


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDb]:
    db = MariaDb(tmp_path_factory.mktemp("mariadb"))
    db.install()
    yield db
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


@pytest.fixture(scope="module")
def calculators(region: LocalRegion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    logs = tmp_path_factory.mktemp("calculator-logs")
    running = [
        Service("calculator", service_env(region, "calculator", OPERATION=op), logs / f"{op}.log")
        for op in OPERATIONS
    ]
    _wait_for_service(region, "math.numbers.divide")
    yield
    for service in running:
        service.stop()
        assert service.process.returncode == 0, service.log.read_text()[-2000:]


def _wait_for_service(region: LocalRegion, subject: str) -> None:
    async def probe() -> None:
        client = await _client(region, "requester")
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


async def _client(region: LocalRegion, identity: IdentityName) -> Client:
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


def start_recorder(region: LocalRegion, db: MariaDb, log: Path) -> Service:
    return Service(
        "recorder", service_env(region, "recorder", **db.environment(), BATCH_SIZE="50"), log
    )


@pytest.mark.usefixtures("calculators")
def test_end_to_end_requests_answers_and_rows(
    region: LocalRegion, database: MariaDb, tmp_path: Path
) -> None:
    recorder = start_recorder(region, database, tmp_path / "recorder.log")
    try:
        summary = run_requester(region, 500, seed=1, log=tmp_path / "requester.log")
        assert summary["answered"] == 500
        assert summary["published"] == 500
        assert summary["failed"] == 0
        assert summary["served_by"] == {"east": 500}
        assert wait_for_rows(database, 500) == (500, 500)
        significant = int(
            database.sql(
                "SELECT COUNT(*) FROM answers.answers WHERE subject='answers.significant' "
                "AND result <= 1"
            )
        )
        assert significant == 0
    finally:
        recorder.stop()
    assert recorder.process.returncode == 0


@pytest.mark.usefixtures("calculators")
def test_republished_answers_are_deduplicated(
    region: LocalRegion, database: MariaDb, tmp_path: Path
) -> None:
    before = rows(database)[0]
    first = run_requester(region, 50, seed=2, log=tmp_path / "r1.log")
    again = run_requester(region, 50, seed=2, log=tmp_path / "r2.log")  # same ids
    assert first["duplicates"] == 0
    assert again["duplicates"] == 50
    recorder = start_recorder(region, database, tmp_path / "recorder.log")
    try:
        assert wait_for_rows(database, before + 50) == (before + 50, before + 50)
        time.sleep(1)
        assert rows(database) == (before + 50, before + 50)
    finally:
        recorder.stop()


@pytest.mark.usefixtures("calculators")
def test_a_database_outage_delays_records_and_loses_none(
    region: LocalRegion, database: MariaDb, tmp_path: Path
) -> None:
    recorder = start_recorder(region, database, tmp_path / "recorder.log")
    wait_for_log(tmp_path / "recorder.log", '"message": "recording"')
    before = rows(database)[0]
    try:
        database.stop()
        summary = run_requester(region, 300, seed=3, log=tmp_path / "requester.log")
        assert summary["published"] == 300
        time.sleep(8)  # longer than the consumer's ack wait (5 s): held, not redelivered
        assert recorder.process.poll() is None
        held = _admin(region, "CONSUMER.INFO.answers.recorder")
        assert held["num_ack_pending"] > 0
        assert held["num_redelivered"] == 0  # in-progress acks kept every delivery unspent
        database.start()
        assert wait_for_rows(database, before + 300) == (before + 300, before + 300)
    finally:
        if database.process is None:
            database.start()  # later tests need it
        recorder.stop()
    info = _admin(region, "CONSUMER.INFO.answers.recorder")
    assert info["num_ack_pending"] == 0
    assert "database unavailable" in (tmp_path / "recorder.log").read_text()


@pytest.mark.usefixtures("calculators")
def test_a_recorder_killed_mid_batch_loses_and_duplicates_nothing(
    region: LocalRegion, database: MariaDb, tmp_path: Path
) -> None:
    before = rows(database)[0]
    summary = run_requester(region, 2000, seed=4, log=tmp_path / "requester.log")
    assert summary["published"] == 2000
    for round_ in range(3):  # kill it hard three times while it works through the backlog
        recorder = start_recorder(region, database, tmp_path / f"recorder-{round_}.log")
        wait_for_rows(database, before + 1 + 500 * round_, timeout=30)
        recorder.stop(signal.SIGKILL)
    recorder = start_recorder(region, database, tmp_path / "recorder-last.log")
    try:
        assert wait_for_rows(database, before + 2000, timeout=90) == (before + 2000, before + 2000)
    finally:
        recorder.stop()


def _answer_payload(request_id: str, **changes: object) -> bytes:
    record = {
        "request_id": request_id,
        "op": "add",
        "a": 1.0,
        "b": 2.0,
        "result": 3.0,
        "served_by": "east",
        "requested_in": "east",
    }
    return json.dumps({**record, **changes}).encode()


def _publish_answers(region: LocalRegion, payloads: list[bytes]) -> None:
    async def publish() -> None:
        client = await _client(region, "requester")
        js = client.jetstream()
        for payload in payloads:
            await js.publish("answers.throwaway", payload)
        await client.close()

    asyncio.run(publish())


def _dead_letters(db: MariaDb) -> int:
    try:
        return int(db.sql(f"SELECT COUNT(*) FROM {db.database}.dead_letters"))
    except subprocess.CalledProcessError:
        return 0  # no recorder has made the schema yet


def _wait_for_dead_letters(db: MariaDb, expected: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while (seen := _dead_letters(db)) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return seen


def test_poison_messages_are_dead_lettered(
    region: LocalRegion, database: MariaDb, tmp_path: Path
) -> None:
    async def publish() -> None:
        client = await _client(region, "requester")
        js = client.jetstream()
        await js.publish("answers.throwaway", b"{not json")
        await js.publish("answers.throwaway", json.dumps({"request_id": "x", "op": "add"}).encode())
        await client.close()

    asyncio.run(publish())
    dead_before = _dead_letters(database)
    recorder = start_recorder(region, database, tmp_path / "recorder.log")
    try:
        assert _wait_for_dead_letters(database, dead_before + 2) == dead_before + 2
    finally:
        recorder.stop()
    errors = database.sql("SELECT error FROM answers.dead_letters ORDER BY stream_seq")
    assert "JSONDecodeError" in errors
    assert "missing field 'a'" in errors


def test_poison_in_a_batch_is_dead_lettered_alone(
    region: LocalRegion, database: MariaDb, tmp_path: Path
) -> None:
    """One batch of 100: 96 good answers and four that can never be rows, among them JSON
    nested deeper than the parser's recursion limit. The poison goes to dead_letters, each with
    its reason; the good ones are stored; the recorder keeps running."""
    before, dead_before = rows(database)[0], _dead_letters(database)
    payloads = [_answer_payload(f"batch-good-{i}") for i in range(96)]
    payloads[10:10] = [b"[" * 100_000 + b"]" * 100_000]
    payloads[40:40] = [_answer_payload("batch-nan").replace(b'"result": 3.0', b'"result": NaN')]
    payloads[60:60] = [_answer_payload("x" * 65)]
    payloads[90:90] = [_answer_payload("batch-huge", a=10**400)]
    _publish_answers(region, payloads)
    env = service_env(region, "recorder", **database.environment(), BATCH_SIZE="100")
    recorder = Service("recorder", env, tmp_path / "recorder.log")
    try:
        assert wait_for_rows(database, before + 96) == (before + 96, before + 96), (
            recorder.log.read_text()[-3000:]
        )
        assert _wait_for_dead_letters(database, dead_before + 4) == dead_before + 4
        assert recorder.process.poll() is None, recorder.log.read_text()[-3000:]
    finally:
        recorder.stop()
    errors = database.sql("SELECT error FROM answers.dead_letters ORDER BY stream_seq DESC LIMIT 4")
    for reason in ("RecursionError", "not a finite number", "longer than 64", "OverflowError"):
        assert reason in errors
    assert recorder.process.returncode == 0
    info = _admin(region, "CONSUMER.INFO.answers.recorder")
    assert info["num_ack_pending"] == 0, info
    assert info["num_redelivered"] == 0, info  # nothing spent a delivery


def test_a_row_the_database_refuses_is_dead_lettered_and_the_rest_stored(
    region: LocalRegion, database: MariaDb, tmp_path: Path
) -> None:
    """A column narrower than the messages (a schema changed under the recorder): strict SQL
    refuses the one row that does not fit, instead of truncating it (INSERT IGNORE did), and
    the recorder stores every other row of its batch and dead-letters that one with the reason."""
    before, dead_before = rows(database)[0], _dead_letters(database)
    database.sql("ALTER TABLE answers.answers MODIFY served_by VARCHAR(5) NOT NULL")
    try:
        payloads = [_answer_payload(f"narrow-{i}") for i in range(30)]
        payloads[15:15] = [_answer_payload("narrow-too-long", served_by="central")]
        _publish_answers(region, payloads)
        env = service_env(region, "recorder", **database.environment(), BATCH_SIZE="50")
        recorder = Service("recorder", env, tmp_path / "recorder.log")
        try:
            assert wait_for_rows(database, before + 30) == (before + 30, before + 30)
            assert _wait_for_dead_letters(database, dead_before + 1) == dead_before + 1
        finally:
            recorder.stop()
        stored = database.sql(
            "SELECT COUNT(*) FROM answers.answers WHERE request_id = 'narrow-too-long'"
        )
        assert int(stored) == 0  # not stored truncated as 'centr'
        (error,) = database.sql(
            "SELECT error FROM answers.dead_letters ORDER BY stream_seq DESC LIMIT 1"
        ).splitlines()
        assert "Data too long for column 'served_by'" in error
    finally:
        database.sql("ALTER TABLE answers.answers MODIFY served_by VARCHAR(64) NOT NULL")


def test_sigterm_stops_a_recorder_waiting_for_its_database(
    region: LocalRegion, database: MariaDb, tmp_path: Path
) -> None:
    """While the database is down the recorder holds its batch; SIGTERM must still stop it at
    once, handing the batch back unacknowledged, and a new recorder stores it later."""
    before = rows(database)[0]
    recorder = start_recorder(region, database, tmp_path / "recorder.log")
    wait_for_log(tmp_path / "recorder.log", '"message": "recording"')
    try:
        database.stop()
        _publish_answers(region, [_answer_payload(f"held-{i}") for i in range(20)])
        wait_for_log(tmp_path / "recorder.log", "database unavailable")
        started = time.monotonic()
        recorder.stop()
        assert time.monotonic() - started < 10
        assert recorder.process.returncode == 0
    finally:
        if database.process is None:
            database.start()
    again = start_recorder(region, database, tmp_path / "recorder-2.log")
    try:
        assert wait_for_rows(database, before + 20) == (before + 20, before + 20)
    finally:
        again.stop()


class FuzzClient:
    """One connection on a loop of its own, so hypothesis can drive it synchronously."""

    def __init__(self, region: LocalRegion) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = self.call(_client(region, "requester"))

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def close(self) -> None:
        self.call(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


_numbers = st.floats(allow_nan=False, allow_infinity=False, width=64)
_bad_values = st.one_of(
    st.text(max_size=5),
    st.none(),
    st.booleans(),
    st.lists(_numbers),
    st.floats(min_value=1e16, max_value=1e300),
)
BAD_REQUESTS = st.one_of(
    st.binary(max_size=64).filter(lambda b: not b.strip().startswith(b"{")),
    st.just(b"NaN"),
    st.just(b'{"a": NaN, "b": 1}'),
    st.just(b'{"a": Infinity, "b": 1}'),
    st.builds(lambda v: json.dumps(v).encode(), st.one_of(st.lists(_numbers), st.text())),
    st.builds(lambda a: json.dumps({"a": a}).encode(), _numbers),
    st.builds(lambda a, b: json.dumps({"a": a, "b": b}).encode(), _bad_values, _numbers),
    st.builds(lambda a, b: json.dumps({"a": a, "b": b}).encode(), _numbers, _bad_values),
    st.builds(lambda a: json.dumps({"a": a, "b": 0}).encode(), _numbers),  # for divide
    st.binary(min_size=4097, max_size=5000),
    st.integers(min_value=1000, max_value=2040).map(lambda n: b"[" * n + b"]" * n),
)


@pytest.mark.usefixtures("calculators")
def test_bad_requests_get_error_replies_and_the_services_keep_serving(region: LocalRegion) -> None:
    fuzz = FuzzClient(region)
    seen = {"count": 0}

    @settings(
        max_examples=1000, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(payload=BAD_REQUESTS)
    def bad_request_is_refused(payload: bytes) -> None:
        is_division = payload.endswith(b', "b": 0}')
        subject = "math.numbers.divide" if is_division else "math.numbers.add"
        reply = fuzz.call(fuzz.client.request(subject, payload, timeout=5))
        assert reply.headers is not None, (payload, reply.data)
        assert reply.headers.get("Nats-Service-Error-Code") in {"400", "413", "422"}
        assert reply.headers.get("Nats-Service-Error")
        seen["count"] += 1

    try:
        bad_request_is_refused()
        assert seen["count"] >= 1000
        for op in OPERATIONS:
            good = fuzz.call(
                fuzz.client.request(f"math.numbers.{op}", b'{"a": 6, "b": 3}', timeout=5)
            )
            assert json.loads(good.data)["region"] == "east"
    finally:
        fuzz.close()


def test_requests_without_a_reply_neither_flood_the_log_nor_stop_the_service(
    region: LocalRegion, tmp_path: Path
) -> None:
    log = tmp_path / "add.log"
    calculator = Service("calculator", service_env(region, "calculator", OPERATION="add"), log)
    try:
        wait_for_log(log, '"message": "serving"')

        async def flood() -> bytes:
            client = await _client(region, "requester")
            try:
                for _ in range(2000):
                    await client.publish("math.numbers.add", b'{"a": 1, "b": 2}')
                await client.flush()
                reply = await client.request("math.numbers.add", b'{"a": 1, "b": 2}', timeout=5)
                return bytes(reply.data)
            finally:
                await client.close()

        assert json.loads(asyncio.run(flood()))["result"] == 3.0
    finally:
        calculator.stop()
    lines = log.read_text().splitlines()
    assert sum("without a reply subject" in line for line in lines) == 1
    assert len(lines) < 10, lines  # no line per message, no error per message


def test_a_service_with_another_identity_cannot_serve(region: LocalRegion, tmp_path: Path) -> None:
    env = service_env(region, "requester", OPERATION="multiply")  # wrong identity's cert
    env["NATS_CERT_FILE"], env["NATS_KEY_FILE"] = (
        str(p) for p in region.client_files("requester")[:2]
    )
    impostor = Service("calculator", env, tmp_path / "impostor.log")
    try:
        time.sleep(2)

        async def ask() -> bool:
            client = await _client(region, "admin")
            try:
                reply = await client.request(
                    "math.numbers.multiply", b'{"a": 2, "b": 3}', timeout=2
                )
                return bool(json.loads(reply.data)["region"] != "impostor")
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                return True
            finally:
                await client.close()

        assert asyncio.run(ask())
    finally:
        impostor.stop()
    assert "permissions violation" in (tmp_path / "impostor.log").read_text().lower()


def test_missing_configuration_is_named() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services", "recorder"],
        check=False,
        cwd=PROJECT_DIR,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "NATS_URL is required" in result.stderr


class StallingProxy(TcpProxy):
    """The region's load balancer, able to stop forwarding while every connection stays open:
    servers that went silent without closing (a frozen node), so a flush is never answered."""

    def __init__(self, region: LocalRegion) -> None:
        super().__init__((LOOPBACK, free_port()), [(LOOPBACK, p.client) for p in region.ports])
        self.flowing = threading.Event()
        self.flowing.set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                while not self.flowing.is_set():
                    await asyncio.sleep(0.05)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


@pytest.mark.parametrize("servers", ["silent", "gone"])
def test_sigterm_stops_a_calculator_whose_servers_went_away(
    region: LocalRegion, tmp_path: Path, servers: str
) -> None:
    """Silent (connections open, nothing answers): the drain waits for flushes (nats-py: 10 s
    each, then a 30 s drain timeout) and the close for a TLS close_notify (30 s). Gone (every
    connection reset, as when the killed demo's servers stop with it): the client reconnects,
    and closing it then can fail inside nats-py. Either way the stop ends in time, cleanly."""
    proxy = StallingProxy(region)
    proxy.start()
    log = tmp_path / "calculator.log"
    env = service_env(region, "calculator", OPERATION="add")
    env["NATS_URL"] = f"tls://{proxy.listen[0]}:{proxy.listen[1]}"
    calculator = Service("calculator", env, log)
    try:
        wait_for_log(log, '"message": "serving"')
        if servers == "silent":
            proxy.flowing.clear()
        else:
            proxy.stop()
            wait_for_log(log, "disconnected from nats")
        started = time.monotonic()
        calculator.stop()
        took = time.monotonic() - started
    finally:
        calculator.stop(signal.SIGKILL)
        proxy.stop()  # once more for "gone": stopping a stopped proxy does nothing
    text = log.read_text()
    assert calculator.process.returncode == 0, text[-2000:]
    assert '"message": "stopped"' in text
    assert "Traceback" not in text
    if servers == "silent":
        assert "graceful stop took too long; leaving the connection" in text
        assert STOP_SECONDS <= took < STOP_SECONDS + CLOSE_SECONDS + 3, took
    else:
        assert took < STOP_SECONDS + CLOSE_SECONDS + 3, took
