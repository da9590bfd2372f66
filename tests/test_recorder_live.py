"""The recorder against a real 3-server region and a real MariaDB, as a process of its own with
only its own identity: end to end, deduplication, an outage, kills, SIGTERM while it waits, and
every kind of message that cannot be a row dead-lettered alone while the rest are stored."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from localnet.mariadb import MariaDb, available
from localnet.ports import LOOPBACK, free_port
from localnet.region import LocalRegion
from localnet.rehearsals.common import wait_until
from tests.services_live import (
    Service,
    admin_api,
    app_region,
    client_as,
    private_mariadb,
    rows,
    run_requester,
    running_calculators,
    service_env,
    start_recorder,
    wait_for_log,
    wait_for_rows,
)

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not available(), reason="needs Debian's mariadb-server"),
]


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegion]:
    yield from app_region(tmp_path_factory)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDb]:
    yield from private_mariadb(tmp_path_factory)


LOOPBACK_METRICS = {"METRICS_ADDRESS": LOOPBACK}


def held_seconds(port: int) -> float:
    """The recorder's `supercluster_recorder_held_seconds`, scraped."""
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "supercluster_recorder_held_seconds":
                return float(sample.value)
    raise AssertionError("the recorder serves no supercluster_recorder_held_seconds")


@pytest.fixture(scope="module")
def calculators(region: LocalRegion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from running_calculators(region, tmp_path_factory)


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
    """MariaDB stopped while 300 answers arrive: the batch is held past the ack wait without
    spending a delivery, `supercluster_recorder_held_seconds` grows with the outage, and once
    MariaDB is back every answer is stored once and the gauge is 0 again."""
    port = free_port()
    recorder = start_recorder(
        region, database, tmp_path / "recorder.log", METRICS_PORT=str(port), **LOOPBACK_METRICS
    )
    wait_for_log(tmp_path / "recorder.log", '"message": "recording"')
    assert held_seconds(port) == 0
    before = rows(database)[0]
    try:
        database.stop()
        stopped = time.monotonic()
        summary = run_requester(region, 300, seed=3, log=tmp_path / "requester.log")
        assert summary["published"] == 300
        time.sleep(8)  # longer than the consumer's ack wait (5 s): held, not redelivered
        assert recorder.process.poll() is None
        held = admin_api(region, "CONSUMER.INFO.answers.recorder")
        assert held["num_ack_pending"] > 0
        assert held["num_redelivered"] == 0  # in-progress acks kept every delivery unspent
        first = held_seconds(port)
        time.sleep(2)
        second = held_seconds(port)
        assert 5 < first < time.monotonic() - stopped, first
        assert 1.5 < second - first < 3, (first, second)  # a clock, read at each scrape
        database.start()
        started = time.monotonic()
        assert wait_for_rows(database, before + 300) == (before + 300, before + 300)
        # The retry backoff is capped at 10 s: the batch waits at most that after the restart.
        assert time.monotonic() - started < 10 + 5
        wait_until(lambda: held_seconds(port) == 0, 5, "the held gauge back to 0")
    finally:
        if database.process is None:
            database.start()  # later tests need it
        recorder.stop()
    info = admin_api(region, "CONSUMER.INFO.answers.recorder")
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
        client = await client_as(region, "requester")
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
        client = await client_as(region, "requester")
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
    info = admin_api(region, "CONSUMER.INFO.answers.recorder")
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


def test_an_answer_with_a_lone_surrogate_is_dead_lettered_alone_and_the_rest_stored(
    region: LocalRegion, database: MariaDb, tmp_path: Path
) -> None:
    """The outsider's attack (issue 24): the requester identity publishes, between good answers,
    one whose request_id is a lone surrogate, valid JSON that no UTF-8 encoder takes. The
    recorder filed PyMySQL's UnicodeEncodeError as an outage and held the batch for ever: no
    answer after it stored, no dead letter. Now it is dead-lettered alone with its reason,
    within seconds, and so are a low surrogate in another field and a field given twice."""
    before, dead_before = rows(database)[0], _dead_letters(database)
    payloads = [_answer_payload(f"around-{i}") for i in range(20)]
    lone = _answer_payload("LONE").replace(b'"LONE"', b'"\\ud800"')
    low = _answer_payload("low", served_by="LOW").replace(b'"LOW"', b'"east\\udc80"')
    twice = _answer_payload("twice").replace(b"{", b'{"request_id": "first", ', 1)
    payloads[10:10] = [lone, low, twice]
    _publish_answers(region, payloads)
    started = time.monotonic()
    recorder = start_recorder(region, database, tmp_path / "recorder.log")
    try:
        assert wait_for_rows(database, before + 20, timeout=20) == (before + 20, before + 20), (
            recorder.log.read_text()[-3000:]
        )
        assert _wait_for_dead_letters(database, dead_before + 3, 10) == dead_before + 3
        took = time.monotonic() - started
    finally:
        recorder.stop()
    assert took < 10, took
    dead = database.sql(
        "SELECT HEX(payload), error FROM answers.dead_letters ORDER BY stream_seq DESC LIMIT 3"
    ).splitlines()
    (twice_row, low_row, lone_row) = (line.split("\t") for line in dead)
    assert lone_row == [lone.hex().upper(), _surrogate_reason("request_id", "\\ud800", 0)]
    assert low_row == [low.hex().upper(), _surrogate_reason("served_by", "\\udc80", 4)]
    assert twice_row[1] == "UnstorableFieldError: field 'request_id' given more than once"
    info = admin_api(region, "CONSUMER.INFO.answers.recorder")
    assert (info["num_ack_pending"], info["num_redelivered"]) == (0, 0), info


def _surrogate_reason(field: str, escaped: str, at: int) -> str:
    # The mariadb client's --batch output writes a backslash as two.
    return (
        f"UnstorableFieldError: {field} holds '{escaped}' at {at}, which is not a Unicode "
        "character (a lone surrogate) and cannot be stored as UTF-8"
    ).replace("\\", "\\\\")
