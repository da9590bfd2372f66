"""The services' decisions without I/O: calculation and refusals, routing, parsing, settings."""

from __future__ import annotations

import json
import logging
import os
import ssl
import time
from pathlib import Path

import nats.errors
import nats.js.errors
import pytest

from infra.identities import identity
from infra.pki import ca_spec, client_spec
from localnet.pki import issue, issue_ca
from services.calculator import Refusal, Unanswerable, calculate, reply
from services.health import fresh
from services.requester import Summary, answer_subject, plan, with_retries
from services.settings import NatsSettings, RecorderSettings, RequesterSettings, SettingsError
from services.tls_files import TlsFiles


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
        ("add", b"[" * 2000 + b"]" * 2000, "400", "nested too deeply"),
        ("add", b'{"a":[' * 500 + b"1" + b"]}" * 500, "400", "nested too deeply"),
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


def test_the_recorder_database_driver_is_validated() -> None:
    assert RecorderSettings.from_env({"DB_DRIVER": "sqlite", "DB_PATH": "/x.db"}).db_path == "/x.db"
    with pytest.raises(SettingsError, match="DB_DRIVER must be mysql or sqlite"):
        RecorderSettings.from_env({"DB_DRIVER": "postgres"})


def test_requests_without_a_reply_are_counted_and_logged_once_per_interval() -> None:
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("test-unanswerable")
    logger.addHandler(_Collect(records))
    logger.setLevel(logging.INFO)
    unanswerable = Unanswerable(logger, interval_seconds=60)
    for second in range(0, 150):  # a flood: ten a second for 150 s
        for _ in range(10):
            unanswerable.count(now=float(second))
    assert unanswerable.total == 1500
    assert len(records) == 3  # at 0 s, 60 s, 120 s
    assert [r.fields["since_last_log"] for r in records] == [1, 600, 600]  # type: ignore[attr-defined]


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@pytest.mark.asyncio
async def test_retries_are_a_budget_in_time_not_a_number_of_attempts() -> None:
    recovers_at = time.monotonic() + 0.6  # e.g. a JetStream leader elected after 0.6 s

    async def publish() -> str:
        if time.monotonic() < recovers_at:
            raise nats.errors.NoRespondersError
        return "acked"

    summary = Summary()
    assert await with_retries(5, summary, publish) == "acked"
    assert summary.retries >= 4  # more than the old five-attempt limit would have allowed
    recovers_at = time.monotonic() + 10
    started = time.monotonic()
    with pytest.raises(nats.errors.NoRespondersError):
        await with_retries(0.5, Summary(), publish)
    assert time.monotonic() - started < 1.5


@pytest.mark.asyncio
async def test_other_failures_are_not_retried() -> None:
    calls = []

    async def refused() -> None:
        calls.append(1)
        raise nats.js.errors.BadRequestError

    with pytest.raises(nats.js.errors.BadRequestError):
        await with_retries(5, Summary(), refused)
    assert calls == [1]


def test_tls_files_are_taken_in_when_they_change(tmp_path: Path) -> None:
    ca = issue_ca(ca_spec("test"))
    who = identity("requester")
    cert, key, bundle = tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.crt"
    first = issue(client_spec(who), ca)
    bundle.write_bytes(ca.cert_pem)
    cert.write_bytes(first.cert_pem)
    key.write_bytes(first.key_pem)
    files = TlsFiles(cert, key, bundle)
    assert files.refresh() is False  # nothing changed
    second = issue(client_spec(who), ca)
    key.write_bytes(second.key_pem)  # a half-done swap: the key is new, the cert not yet
    os.utime(key, (time.time() + 5, time.time() + 5))
    with pytest.raises(ssl.SSLError):
        files.refresh()
    cert.write_bytes(second.cert_pem)
    os.utime(cert, (time.time() + 10, time.time() + 10))
    assert files.refresh() is True  # retried once both are there
    assert files.reloads == 1
    assert files.refresh() is False


@pytest.mark.asyncio
async def test_a_publish_still_in_process_is_retried_until_acked() -> None:
    """nats-server answers a retried publish whose first attempt it is still storing with
    409 / 10158 (JSStreamDuplicateMessageConflict); the first attempt commits, and the next
    retry is acked as a duplicate."""
    calls = []

    async def publish() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise nats.js.errors.APIError(
                code=409, err_code=10158, description="duplicate message id is in process"
            )
        return "acked"

    summary = Summary()
    assert await with_retries(5, summary, publish) == "acked"
    assert summary.retries == 2

    async def other() -> None:
        raise nats.js.errors.APIError(code=409, err_code=10071, description="wrong last seq")

    with pytest.raises(nats.js.errors.APIError):  # another conflict is not retried
        await with_retries(5, Summary(), other)
