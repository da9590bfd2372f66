"""The recorder without servers: what `parse` makes of every class of message, the embedded
database's schema, and the loop's decisions (row by row, dead letter, hold) against a real SQLite
file with stand-in messages. The edge values come from what MariaDB 10.11 and SQLite 3.40 were
seen to refuse or change (services/recorder_rows.py; the MariaDB side is
tests/test_recorder_live.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

from services import recorder as recorder_module
from services.recorder import Recorder
from services.recorder_db import Sqlite
from services.recorder_rows import (
    ANSWER_COLUMNS,
    DEAD_PAYLOAD_BYTES,
    Answer,
    Poison,
    dead_letter,
    parse,
)
from services.settings import RecorderSettings
from tests.recorder_fakes import (
    STORABLE_NUMBERS,
    STORABLE_TEXT,
    answer_payload,
    batch_of,
    unchecked_parse,
)


def _answer(**changes: object) -> bytes:
    return answer_payload(**changes)


def test_recorder_parses_answers() -> None:
    parsed = parse(7, "answers.significant", _answer(), 1)
    assert isinstance(parsed, Answer)
    assert parsed.row() == (7, "answers.significant", "r", "add", 1.0, 2.0, 3.0, "east", "west")


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"{", "JSONDecodeError"),
        (b"[1]", "not a JSON object but list"),
        (b"[" * 100_000 + b"]" * 100_000, "RecursionError"),
        (b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, "RecursionError"),
        (b'{"a": "\xc3\x28"}', "UnicodeDecodeError"),
        (json.dumps({"op": "add"}).encode(), "missing field 'request_id'"),
        (_answer(result="3"), "result is not a number: str"),
        (_answer(a=True), "a is not a number: bool"),
        (_answer(b=None), "b is not a number: NoneType"),
        (_answer().replace(b'"result": 3', b'"result": NaN'), "not a finite number"),
        (_answer().replace(b'"a": 1', b'"a": -Infinity'), "not a finite number"),
        (_answer().replace(b'"a": 1', b'"a": 1' + b"0" * 400), "OverflowError"),
        (_answer(request_id="x" * 65), "request_id is longer than 64"),
        (_answer(op=["add"]), "op is not a string: list"),
        (_answer(served_by="é" * 65), "served_by is longer than 64"),
    ],
)
def test_recorder_names_every_message_it_cannot_store(payload: bytes, says: str) -> None:
    poison = parse(8, "answers.throwaway", payload, 2)
    assert isinstance(poison, Poison)
    assert says in poison.error
    assert (poison.stream_seq, poison.deliveries, poison.payload) == (8, 2, payload)


def test_recorder_refuses_a_subject_its_column_cannot_hold() -> None:
    poison = parse(9, "answers." + "x" * 60, _answer(), 1)
    assert isinstance(poison, Poison)
    assert "subject is longer than 64" in poison.error


TEXT_FIELDS = [c.name for c in ANSWER_COLUMNS if c.kind == "text"]


@pytest.mark.parametrize("field_name", TEXT_FIELDS)
@pytest.mark.parametrize("surrogate", ["\\ud800", "\\udbff", "\\udc80", "\\udfff"])
def test_a_lone_surrogate_in_any_text_field_is_refused(field_name: str, surrogate: str) -> None:
    """Valid JSON that decodes to text no UTF-8 encoder takes: PyMySQL and sqlite3 both raise
    UnicodeEncodeError (before anything reaches the database), and the recorder used to wait
    that out for ever. Low surrogates too: PyMySQL 1.2.4 encodes strictly."""
    payload = _answer(**{field_name: "id-"}).replace(b'"id-"', f'"id-{surrogate}"'.encode())
    poison = parse(10, "answers.throwaway", payload, 1)
    assert isinstance(poison, Poison)
    assert f"{field_name} holds '{surrogate}' at 3" in poison.error
    assert "lone surrogate" in poison.error
    poison.error.encode("utf-8")  # the reason itself is storable


def test_a_surrogate_pair_is_one_character_and_stored() -> None:
    parsed = parse(11, "answers.throwaway", _answer().replace(b'"r"', b'"\\ud83d\\ude00"'), 1)
    assert isinstance(parsed, Answer)
    assert parsed.values[0] == "\U0001f600"


def test_a_subject_that_is_not_utf8_is_refused_and_its_dead_letter_is_storable() -> None:
    """nats-py decodes subjects strictly (client.py:2140), so this cannot come from the
    servers; `parse` is total anyway, and the dead letter's subject must encode."""
    poison = parse(12, "answers.\ud800", _answer(), 1)
    assert isinstance(poison, Poison)
    assert "subject holds '\\ud800'" in poison.error
    assert poison.subject == "answers.\\ud800"


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (_answer() + b"", None),
        (_answer().replace(b"{", b'{"request_id": "first", ', 1), "'request_id' given more"),
        (_answer(extra={"k": 1}).replace(b'{"k": 1}', b'{"k": 1, "k": 2}'), "'k' given more"),
        (b'{1: "a"}', "JSONDecodeError"),  # JSON keys are strings
        (_answer().replace(b'"a": 1', b'"a": ' + b"1" * 4301), "ValueError"),  # digits limit
        (_answer().replace(b'"a": 1', b'"a": 1e400'), "not a finite number: inf"),
        (_answer().replace(b'"a": 1', b'"a": -1e99999'), "not a finite number: -inf"),
    ],
)
def test_duplicate_fields_and_numbers_python_cannot_hold_are_refused(
    payload: bytes, says: str | None
) -> None:
    outcome = parse(13, "answers.throwaway", payload, 1)
    if says is None:
        assert isinstance(outcome, Answer)
    else:
        assert isinstance(outcome, Poison)
        assert says in outcome.error


@pytest.mark.parametrize("text", STORABLE_TEXT)
def test_text_the_databases_store_unchanged_is_accepted(text: str, tmp_path: Path) -> None:
    parsed = parse(14, "answers.throwaway", _answer(request_id=text), 1)
    assert isinstance(parsed, Answer)
    assert _stored_in_sqlite(tmp_path, parsed)[2] == text


@pytest.mark.parametrize("number", STORABLE_NUMBERS)
def test_numbers_the_databases_store_unchanged_are_accepted(number: float, tmp_path: Path) -> None:
    parsed = parse(15, "answers.throwaway", _answer(a=number), 1)
    assert isinstance(parsed, Answer)
    assert _stored_in_sqlite(tmp_path, parsed)[4] == number


def test_minus_zero_is_recorded_as_zero_as_both_databases_store_it(tmp_path: Path) -> None:
    """-1 * 0 answers -0.0 (services/calculator.py), a real answer; SQLite's REAL (here) and
    MariaDB's DOUBLE (tests/test_recorder_live.py) both give +0 back, so the row says 0.0
    whichever database holds it."""
    raw = Answer(16, "answers.throwaway", ("r", "add", -1.0, 0.0, -0.0, "east", "east"))
    assert math.copysign(1, _stored_in_sqlite(tmp_path, raw)[6]) == 1.0
    parsed = parse(17, "answers.throwaway", _answer(result=-0.0), 1)
    assert isinstance(parsed, Answer)
    assert math.copysign(1, parsed.values[4]) == 1.0


def test_integers_beyond_a_double_s_precision_are_rounded_as_json_floats_are() -> None:
    parsed = parse(17, "answers.throwaway", _answer(a=2**53 + 1), 1)
    assert isinstance(parsed, Answer)
    assert parsed.values[2] == 2.0**53


def test_a_dead_letter_holds_any_message_the_servers_take(tmp_path: Path) -> None:
    """max_payload is 1 MiB unless configured (nats-server v2.14.2 server/const.go:94) and the
    chart's rendered configurations set none: a MEDIUMBLOB holds it whole. A payload past the
    column would be cut, and its reason says so."""
    for golden in (Path(__file__).parent / "golden").glob("*.json"):
        assert "max_payload" not in golden.read_text(), golden
    whole = dead_letter(18, "answers.throwaway", b"x" * 2**20, "why", 1)
    assert len(whole.payload) == 2**20
    assert whole.error == "why"
    cut = dead_letter(19, "answers.throwaway", b"x" * (DEAD_PAYLOAD_BYTES + 5), "why", 1)
    assert len(cut.payload) == DEAD_PAYLOAD_BYTES
    assert f"payload of {DEAD_PAYLOAD_BYTES + 5} bytes cut" in cut.error
    db = Sqlite(str(tmp_path / "answers.db"))
    db.ensure_schema()
    db.write([], [whole, dead_letter(20, "answers.\udc80", b"{", "bad \ud800" * 2000, 1)])
    stored = sqlite3.connect(tmp_path / "answers.db").execute(
        "SELECT subject, length(payload), length(error) FROM dead_letters ORDER BY stream_seq"
    )
    assert stored.fetchall() == [("answers.throwaway", 2**20, 3), ("answers.\\udc80", 1, 2000)]
    db.close()


def _stored_in_sqlite(tmp_path: Path, answer: Answer) -> tuple[Any, ...]:
    db = Sqlite(str(tmp_path / "answers.db"))
    db.ensure_schema()
    db.write([answer], [])
    db.close()
    query = "SELECT * FROM answers WHERE stream_seq = ?"
    row: tuple[Any, ...] = (
        sqlite3.connect(tmp_path / "answers.db").execute(query, (answer.stream_seq,)).fetchone()
    )
    return row


def test_the_embedded_database_is_idempotent_per_stream_sequence(tmp_path: Path) -> None:
    db = Sqlite(str(tmp_path / "answers.db"))
    db.ensure_schema()
    answer = Answer(1, "answers.significant", ("r", "add", 1.0, 2.0, 3.0, "east", "east"))
    db.write([answer], [Poison(2, "answers.throwaway", b"{", "JSONDecodeError", 1)])
    db.write([answer], [])  # a redelivery
    connection = sqlite3.connect(tmp_path / "answers.db")
    assert connection.execute("SELECT COUNT(*) FROM answers").fetchone() == (1,)
    assert connection.execute("SELECT COUNT(*) FROM dead_letters").fetchone() == (1,)
    assert db.classify(sqlite3.OperationalError("database is locked")) == "outage"
    # not known: probed, and held unless the database takes a plain row (services/recorder.py)
    assert db.classify(ValueError("something unknown")) == "unknown"
    db.close()


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        (("r", "add", float("nan"), 2.0, 3.0, "east", "east"), "NOT NULL"),
        (("r" * 65, "add", 1.0, 2.0, 3.0, "east", "east"), "CHECK"),
    ],
)
def test_the_embedded_database_refuses_what_its_columns_cannot_hold(
    tmp_path: Path, values: tuple[object, ...], constraint: str
) -> None:
    """Only the key makes a write idempotent: any other error reaches the recorder, which
    dead-letters the row (INSERT OR IGNORE used to drop such a row without a trace)."""
    db = Sqlite(str(tmp_path / "answers.db"))
    db.ensure_schema()
    with pytest.raises(sqlite3.IntegrityError, match=constraint) as refused:
        db.write([Answer(1, "answers.significant", values)], [])
    assert db.classify(refused.value) == "refused"
    db.close()


class Flaky(Sqlite):
    """A real SQLite file whose writes and probes fail while the test says so."""

    def __init__(
        self,
        path: str,
        write_fails: Callable[[list[Answer]], Exception | None] = lambda _answers: None,
        probe_fails: Callable[[], Exception | None] = lambda: None,
    ) -> None:
        super().__init__(path)
        self.write_fails, self.probe_fails = write_fails, probe_fails
        self.writes: list[list[int]] = []

    def write(self, answers: list[Answer], dead: list[Poison]) -> None:
        self.writes.append([a.stream_seq for a in answers])
        if (error := self.write_fails(answers)) is not None:
            raise error
        super().write(answers, dead)

    def probe(self, stream_seq: int) -> None:
        if (error := self.probe_fails()) is not None:
            raise error
        super().probe(stream_seq)


def _recorder(db: Sqlite, region: str) -> Recorder:
    settings = RecorderSettings(driver="sqlite", batch_size=100, db_path=db.path)
    db.ensure_schema()
    return Recorder(cast(Client, None), db, settings, logging.getLogger("test-recorder"), region)


def _tables(path: str) -> tuple[list[str], list[tuple[int, str]]]:
    connection = sqlite3.connect(path)
    stored = [r for (r,) in connection.execute("SELECT request_id FROM answers ORDER BY 1")]
    dead = connection.execute("SELECT stream_seq, error FROM dead_letters").fetchall()
    connection.close()
    return stored, dead


def _held(region: str) -> float | None:
    return REGISTRY.get_sample_value("supercluster_recorder_held_seconds", {"region": region})


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder_module, "_FIRST_RETRY_SECONDS", 0.01)
    monkeypatch.setattr(recorder_module, "_MAX_RETRY_SECONDS", 0.05)


@pytest.mark.asyncio
async def test_a_row_the_driver_cannot_encode_is_dead_lettered_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net under `parse`: a row that raises on the client (not a refusal, not an
    outage) while the database takes a plain row with its key. It used to be filed as an
    outage and held for ever, stopping all recording."""
    monkeypatch.setattr(recorder_module, "parse", unchecked_parse)
    db = Sqlite(str(tmp_path / "answers.db"))
    recorder = _recorder(db, "unit-encode")
    batch = batch_of(100, "good-0", "good-1", "bad-\ud800", "good-2")
    await asyncio.wait_for(recorder.record(cast(list[Msg], batch)), 10)
    stored, dead = _tables(db.path)
    assert stored == ["good-0", "good-1", "good-2"]
    ((seq, error),) = dead
    assert seq == 102
    assert error.startswith("UnicodeEncodeError: 'utf-8' codec can't encode character '\\ud800'")
    assert "failed 1 time(s) while the database took a plain row" in error
    assert [m.acks for m in batch] == [1, 1, 1, 1]
    assert (recorder.recorded, recorder.dead_lettered) == (3, 1)
    assert _held("unit-encode") == 0


@pytest.mark.asyncio
@pytest.mark.usefixtures("quick_retries")
@pytest.mark.parametrize(
    "error", [sqlite3.OperationalError("disk I/O error"), ValueError("not known to the driver")]
)
async def test_an_outage_holds_the_batch_and_the_gauge_counts_it(
    tmp_path: Path, error: Exception
) -> None:
    """Writes fail and so does the probe: whatever the error, the database is out. The batch is
    held (kept alive, nothing acknowledged, nothing dead-lettered), the gauge grows, and once
    the database is back all of it is stored and the gauge is 0."""
    out = True
    db = Flaky(
        str(tmp_path / "answers.db"),
        write_fails=lambda _answers: error if out else None,
        probe_fails=lambda: sqlite3.OperationalError("unable to open") if out else None,
    )
    region = f"unit-outage-{type(error).__name__}"
    recorder = _recorder(db, region)
    batch = batch_of(100, "held-0", "held-1", "held-2")
    task = asyncio.create_task(recorder.record(cast(list[Msg], batch)))
    await asyncio.sleep(0.6)
    first = _held(region)
    await asyncio.sleep(0.3)
    assert first is not None
    assert 0.3 < first < (_held(region) or 0)
    assert [m.acks for m in batch] == [0, 0, 0]
    assert all(m.progress > 3 for m in batch)
    out = False
    await asyncio.wait_for(task, 10)
    assert _tables(db.path) == (["held-0", "held-1", "held-2"], [])
    assert [m.acks for m in batch] == [1, 1, 1]
    assert _held(region) == 0


@pytest.mark.asyncio
@pytest.mark.usefixtures("quick_retries")
async def test_a_row_failing_like_an_outage_while_the_database_takes_rows_is_dead_lettered(
    tmp_path: Path,
) -> None:
    """An error the driver files as an outage, for one row only, while the probe passes: after
    STRIKES tries the batch goes row by row, and after STRIKES more the row is dead-lettered."""

    def cursed(answers: list[Answer]) -> Exception | None:
        if any(a.values[0] == "cursed" for a in answers):
            return sqlite3.OperationalError("a row-specific error filed as an outage")
        return None

    db = Flaky(str(tmp_path / "answers.db"), write_fails=cursed)
    recorder = _recorder(db, "unit-strikes")
    batch = batch_of(100, "fine-0", "cursed", "fine-1")
    await asyncio.wait_for(recorder.record(cast(list[Msg], batch)), 10)
    stored, dead = _tables(db.path)
    assert stored == ["fine-0", "fine-1"]
    ((seq, error),) = dead
    assert seq == 101
    assert "a row-specific error filed as an outage (failed 3 time(s)" in error
    assert db.writes.count([100, 101, 102]) == recorder_module.STRIKES
    assert db.writes.count([101]) == recorder_module.STRIKES
    assert [m.acks for m in batch] == [1, 1, 1]
