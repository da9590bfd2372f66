"""The recorder: drains the `answers` stream's durable consumer into MySQL.

Batch fetch, one transaction per batch, the stream sequence as primary key (a redelivered message
never makes a second row), ack only after commit. While the database is down the batch is held
(its ack deadline kept alive with in-progress acks) and retried with backoff, so an outage delays
records and never spends their deliveries. A message that cannot be parsed goes to the
`dead_letters` table in the same transaction and is acknowledged; a row the database refuses is
retried with the consumer's backoff and dead-lettered on its last delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from dataclasses import dataclass
from typing import Any, Protocol

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from infra.identities import ANSWERS_STREAM, RECORDER_CONSUMER
from services import logs
from services.settings import RecorderSettings

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS answers (
        stream_seq BIGINT UNSIGNED NOT NULL PRIMARY KEY,
        subject VARCHAR(64) NOT NULL,
        request_id VARCHAR(64) NOT NULL,
        op VARCHAR(16) NOT NULL,
        a DOUBLE NOT NULL,
        b DOUBLE NOT NULL,
        result DOUBLE NOT NULL,
        served_by VARCHAR(64) NOT NULL,
        requested_in VARCHAR(64) NOT NULL,
        recorded_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
    )""",
    """CREATE TABLE IF NOT EXISTS dead_letters (
        stream_seq BIGINT UNSIGNED NOT NULL PRIMARY KEY,
        subject VARCHAR(64) NOT NULL,
        payload BLOB NOT NULL,
        error TEXT NOT NULL,
        deliveries INT NOT NULL,
        recorded_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
    )""",
)
_FIELDS = ("request_id", "op", "a", "b", "result", "served_by", "requested_in")
_INSERT_ANSWER = (
    "INSERT IGNORE INTO answers (stream_seq, subject, request_id, op, a, b, result, served_by, "
    "requested_in) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_INSERT_DEAD = (
    "INSERT IGNORE INTO dead_letters (stream_seq, subject, payload, error, deliveries) "
    "VALUES (%s, %s, %s, %s, %s)"
)


@dataclass(frozen=True)
class Answer:
    stream_seq: int
    subject: str
    values: tuple[Any, ...]

    def row(self) -> tuple[Any, ...]:
        return (self.stream_seq, self.subject, *self.values)


@dataclass(frozen=True)
class Poison:
    stream_seq: int
    subject: str
    payload: bytes
    error: str
    deliveries: int

    def row(self) -> tuple[Any, ...]:
        return (self.stream_seq, self.subject, self.payload, self.error, self.deliveries)


def parse(stream_seq: int, subject: str, payload: bytes, deliveries: int) -> Answer | Poison:
    """An answer row, or the reason it cannot be one."""
    try:
        record = json.loads(payload)
        values = tuple(record[f] for f in _FIELDS)
        for number in values[2:5]:
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise TypeError(f"{number!r} is not a number")
        return Answer(stream_seq, subject, values)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        return Poison(stream_seq, subject, payload, f"{type(error).__name__}: {error}", deliveries)


class Database(Protocol):
    """What the recorder needs of its database."""

    def ensure_schema(self) -> None: ...

    def write(self, answers: list[Answer], dead: list[Poison]) -> None: ...

    def is_outage(self, error: BaseException) -> bool:
        """Connection trouble (hold and retry the batch), not a row the database refuses."""
        ...

    def close(self) -> None: ...


class MySql:
    """PyMySQL, one connection, reconnecting when the server went away."""

    def __init__(self, settings: RecorderSettings) -> None:
        self.settings = settings
        self._connection: Any = None

    def _connect(self) -> Any:
        import pymysql  # noqa: PLC0415 (only the recorder needs it)

        if self._connection is None or not self._connection.open:
            self._connection = pymysql.connect(
                host=self.settings.db_host,
                port=self.settings.db_port,
                user=self.settings.db_user,
                password=self.settings.db_password,
                database=self.settings.db_name,
                autocommit=False,
                connect_timeout=5,
                read_timeout=30,
                write_timeout=30,
            )
        return self._connection

    def ensure_schema(self) -> None:
        connection = self._connect()
        with connection.cursor() as cursor:
            for statement in SCHEMA:
                cursor.execute(statement)
        connection.commit()

    def write(self, answers: list[Answer], dead: list[Poison]) -> None:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                if answers:
                    cursor.executemany(_INSERT_ANSWER, [a.row() for a in answers])
                if dead:
                    cursor.executemany(_INSERT_DEAD, [d.row() for d in dead])
            connection.commit()
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self._connection.close()
            self._connection = None

    def is_outage(self, error: BaseException) -> bool:
        import pymysql  # noqa: PLC0415

        return isinstance(
            error, pymysql.err.OperationalError | pymysql.err.InterfaceError | OSError
        )


class Sqlite:
    """An embedded database for the local supercluster, so the demo needs no MySQL."""

    SCHEMA = (
        """CREATE TABLE IF NOT EXISTS answers (
            stream_seq INTEGER PRIMARY KEY, subject TEXT NOT NULL, request_id TEXT NOT NULL,
            op TEXT NOT NULL, a REAL NOT NULL, b REAL NOT NULL, result REAL NOT NULL,
            served_by TEXT NOT NULL, requested_in TEXT NOT NULL,
            recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
        """CREATE TABLE IF NOT EXISTS dead_letters (
            stream_seq INTEGER PRIMARY KEY, subject TEXT NOT NULL, payload BLOB NOT NULL,
            error TEXT NOT NULL, deliveries INTEGER NOT NULL,
            recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
    )

    def __init__(self, path: str) -> None:
        self.path = path
        self._connection: Any = None

    def _connect(self) -> Any:
        import sqlite3  # noqa: PLC0415

        if self._connection is None:
            self._connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        return self._connection

    def ensure_schema(self) -> None:
        connection = self._connect()
        with connection:
            for statement in self.SCHEMA:
                connection.execute(statement)

    def write(self, answers: list[Answer], dead: list[Poison]) -> None:
        connection = self._connect()
        with connection:  # one transaction
            connection.executemany(
                _INSERT_ANSWER.replace("INSERT IGNORE", "INSERT OR IGNORE").replace("%s", "?"),
                [a.row() for a in answers],
            )
            connection.executemany(
                _INSERT_DEAD.replace("INSERT IGNORE", "INSERT OR IGNORE").replace("%s", "?"),
                [d.row() for d in dead],
            )

    def is_outage(self, error: BaseException) -> bool:
        import sqlite3  # noqa: PLC0415

        return isinstance(error, sqlite3.OperationalError)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class Recorder:
    def __init__(
        self, client: Client, db: Database, settings: RecorderSettings, logger: logging.Logger
    ) -> None:
        self.client = client
        self.db = db
        self.settings = settings
        self.logger = logger
        self.stopping = asyncio.Event()
        self.recorded = 0
        self.dead_lettered = 0

    async def run(self) -> None:
        await self._until_database(self.db.ensure_schema)
        subscription = await self.client.jetstream().pull_subscribe_bind(
            durable=RECORDER_CONSUMER,
            stream=ANSWERS_STREAM,
            inbox_prefix=bytes(self.client._inbox_prefix) + b".",
        )
        logs.event(self.logger, "recording", stream=ANSWERS_STREAM, consumer=RECORDER_CONSUMER)
        while not self.stopping.is_set():
            try:
                batch = await subscription.fetch(self.settings.batch_size, timeout=2)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            await self.record(batch)
        logs.event(self.logger, "stopped", recorded=self.recorded, dead_lettered=self.dead_lettered)

    async def record(self, batch: list[Msg]) -> None:
        answers: list[Answer] = []
        dead: list[Poison] = []
        for msg in batch:
            meta = msg.metadata
            outcome = parse(meta.sequence.stream, msg.subject, msg.data, meta.num_delivered)
            (answers if isinstance(outcome, Answer) else dead).append(outcome)  # type: ignore[arg-type]
        try:
            await self._until_database(lambda: self.db.write(answers, dead), batch)
        except Exception as error:
            await self._one_by_one(batch, answers, dead, error)
            return
        for msg in batch:
            await msg.ack()
        self.recorded += len(answers)
        self.dead_lettered += len(dead)

    async def _until_database(self, work: Any, holding: list[Msg] | None = None) -> None:
        """Retry `work` while the database is unreachable, keeping held messages alive."""
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(work)
                return
            except Exception as error:
                if not self.db.is_outage(error):
                    raise
                self.logger.warning(
                    "database unavailable; holding the batch",
                    extra={"fields": {"error": str(error), "held": len(holding or [])}},
                )
            for msg in holding or []:
                await msg.in_progress()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _one_by_one(
        self, batch: list[Msg], answers: list[Answer], dead: list[Poison], error: Exception
    ) -> None:
        by_seq = {m.metadata.sequence.stream: m for m in batch}
        for poison in dead:
            await self._until_database(
                lambda p=poison: self.db.write([], [p]), [by_seq[poison.stream_seq]]
            )
            await by_seq[poison.stream_seq].ack()
            self.dead_lettered += 1
        for answer in answers:
            msg = by_seq[answer.stream_seq]
            try:
                await self._until_database(lambda a=answer: self.db.write([a], []), [msg])
            except Exception as refused:
                if msg.metadata.num_delivered >= self.settings.max_deliveries:
                    poison = Poison(
                        answer.stream_seq,
                        answer.subject,
                        msg.data,
                        f"refused by the database: {refused}",
                        msg.metadata.num_delivered,
                    )
                    await self._until_database(lambda p=poison: self.db.write([], [p]), [msg])
                    await msg.ack()
                    self.dead_lettered += 1
                else:
                    await msg.nak(delay=2**msg.metadata.num_delivered)
                continue
            await msg.ack()
            self.recorded += 1
        self.logger.warning(
            "batch settled message by message", extra={"fields": {"error": str(error)}}
        )


async def serve(
    client: Client, db: Database, settings: RecorderSettings, logger: logging.Logger
) -> Recorder:
    recorder = Recorder(client, db, settings, logger)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, recorder.stopping.set)
    await recorder.run()
    return recorder
