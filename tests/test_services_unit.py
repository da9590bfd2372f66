"""The services' decisions without I/O: calculation and refusals, routing, parsing, settings."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from services.calculator import Refusal, calculate, reply
from services.health import fresh
from services.recorder import Answer, Poison, Sqlite, parse
from services.requester import answer_subject, plan
from services.settings import NatsSettings, RecorderSettings, RequesterSettings, SettingsError


@pytest.mark.parametrize(
    ("operation", "payload", "expected"),
    [
        ("add", b'{"a": 2, "b": 3}', 5.0),
        ("subtract", b'{"a": 2, "b": 3}', -1.0),
        ("multiply", b'{"a": 2.5, "b": 4}', 10.0),
        ("divide", b'{"a": 1, "b": 4}', 0.25),
    ],
)
def test_calculations(operation: str, payload: bytes, expected: float) -> None:
    assert calculate(operation, payload) == expected


@pytest.mark.parametrize(
    ("operation", "payload", "code", "says"),
    [
        ("add", b"not json", "400", "not JSON"),
        ("add", b"[1, 2]", "400", "JSON object"),
        ("add", b'{"a": 1}', "400", "missing field 'b'"),
        ("add", b'{"a": "1", "b": 2}', "400", "must be a number, got str"),
        ("add", b'{"a": true, "b": 2}', "400", "got bool"),
        ("add", b'{"a": NaN, "b": 2}', "400", "NaN"),
        ("add", b'{"a": 1e16, "b": 2}', "422", "outside"),
        ("divide", b'{"a": 1, "b": 0}', "422", "division by zero"),
        ("add", b"{" + b" " * 5000 + b"}", "413", "larger than"),
    ],
)
def test_refusals_say_why(operation: str, payload: bytes, code: str, says: str) -> None:
    outcome = calculate(operation, payload)
    assert isinstance(outcome, Refusal)
    assert outcome.code == code
    assert says in outcome.description


def test_replies_name_the_region() -> None:
    assert json.loads(reply("add", 5.0, "east")) == {"result": 5.0, "op": "add", "region": "east"}


def test_answers_above_one_are_significant() -> None:
    assert answer_subject(1.5) == "answers.significant"
    assert answer_subject(1.0) == "answers.throwaway"
    assert answer_subject(-3) == "answers.throwaway"


def test_the_plan_is_deterministic_with_unique_ids() -> None:
    first, again, other = plan(100, 7), plan(100, 7), plan(100, 8)
    assert first == again
    assert len({p.request_id for p in first}) == 100
    assert {p.request_id for p in first}.isdisjoint({p.request_id for p in other})
    assert all(p.b != 0 for p in first)


def test_recorder_parses_answers_and_names_poison() -> None:
    good = json.dumps(
        {
            "request_id": "r",
            "op": "add",
            "a": 1,
            "b": 2,
            "result": 3,
            "served_by": "east",
            "requested_in": "west",
        }
    ).encode()
    parsed = parse(7, "answers.significant", good, 1)
    assert isinstance(parsed, Answer)
    assert parsed.row() == (7, "answers.significant", "r", "add", 1, 2, 3, "east", "west")
    for bad, error in (
        (b"{", "JSONDecodeError"),
        (b'{"op": "add"}', "KeyError"),
        (good.replace(b'"result": 3', b'"result": "3"'), "TypeError"),
    ):
        poison = parse(8, "answers.throwaway", bad, 2)
        assert isinstance(poison, Poison)
        assert error in poison.error
        assert poison.deliveries == 2


def test_settings_errors_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="NATS_URL is required"):
        NatsSettings.from_env("requester", {})
    with pytest.raises(SettingsError, match="NATS_URL must be a tls:// URL"):
        NatsSettings.from_env("requester", {"NATS_URL": "nats://x:4222"})
    base = {"NATS_URL": "tls://x:4222", "REGION": "east"}
    with pytest.raises(SettingsError, match=r"NATS_CA_FILE points to .*missing"):
        NatsSettings.from_env("requester", {**base, "NATS_CA_FILE": str(tmp_path / "missing")})
    with pytest.raises(SettingsError, match="CONCURRENCY must be an integer, got 'many'"):
        RequesterSettings.from_env({"CONCURRENCY": "many"})
    with pytest.raises(SettingsError, match="BATCH_SIZE must be between 1 and 10000"):
        RecorderSettings.from_env(
            {"DB_HOST": "h", "DB_USER": "u", "DB_PASSWORD": "p", "BATCH_SIZE": "0"}
        )
    with pytest.raises(SettingsError, match="DB_PASSWORD is required"):
        RecorderSettings.from_env({"DB_HOST": "h", "DB_USER": "u"})


def test_liveness_follows_the_heartbeat_file(tmp_path: Path) -> None:
    beat = tmp_path / "healthy"
    assert not fresh(beat, 30)
    beat.touch()
    assert fresh(beat, 30)
    assert not fresh(beat, 30, now=beat.stat().st_mtime + 31)


def test_the_embedded_database_is_idempotent_per_stream_sequence(tmp_path: Path) -> None:
    db = Sqlite(str(tmp_path / "answers.db"))
    db.ensure_schema()
    answer = Answer(1, "answers.significant", ("r", "add", 1.0, 2.0, 3.0, "east", "east"))
    db.write([answer], [Poison(2, "answers.throwaway", b"{", "JSONDecodeError", 1)])
    db.write([answer], [])  # a redelivery
    connection = sqlite3.connect(tmp_path / "answers.db")
    assert connection.execute("SELECT COUNT(*) FROM answers").fetchone() == (1,)
    assert connection.execute("SELECT COUNT(*) FROM dead_letters").fetchone() == (1,)
    assert db.is_outage(sqlite3.OperationalError("database is locked"))
    assert not db.is_outage(ValueError("a row"))
    db.close()


def test_the_recorder_database_driver_is_validated() -> None:
    assert RecorderSettings.from_env({"DB_DRIVER": "sqlite", "DB_PATH": "/x.db"}).db_path == "/x.db"
    with pytest.raises(SettingsError, match="DB_DRIVER must be mysql or sqlite"):
        RecorderSettings.from_env({"DB_DRIVER": "postgres"})
