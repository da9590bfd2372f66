"""The recorder: drains the `answers` stream's durable consumer into MySQL.

Batch fetch, one transaction per batch, the stream sequence as primary key (a redelivered message
never makes a second row), ack only after commit. What happens to a message is decided by what
went wrong, never by ignoring errors:

- a message that cannot be a row (not JSON, nested too deep, a field missing, too long, not a
  finite number) is written to `dead_letters` with the reason, in the batch's transaction;
- a row the database refuses (a constraint, a value its column cannot hold) makes the batch be
  written again message by message: every other row is stored, the refused one dead-lettered;
- while the database is unreachable, or fails in a way not known to be about one row, the batch
  is held (its ack deadline kept alive with in-progress acks) and retried with backoff, so an
  outage delays records and never spends their deliveries;
- SIGTERM ends the wait: a held batch is handed back (nak) for the next recorder, unacknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from infra.identities import ANSWERS_STREAM, RECORDER_CONSUMER
from services import logs, metrics
from services.settings import RecorderSettings


@dataclass(frozen=True)
class Column:
    """A column of the answers table; both the SQL and the check of a row come from here."""

    name: str
    kind: Literal["text", "number"]
    length: int = 0  # the longest text the column holds, in characters


# The message's fields, in table order, after stream_seq and subject.
ANSWER_COLUMNS = (
    Column("request_id", "text", 64),
    Column("op", "text", 16),
    Column("a", "number"),
    Column("b", "number"),
    Column("result", "number"),
    Column("served_by", "text", 64),
    Column("requested_in", "text", 64),
)
SUBJECT_LENGTH = 64
# Dead letters keep the reason; a reason longer than this is cut (it is a log line, not data).
ERROR_LENGTH = 2000


def _mysql_type(column: Column) -> str:
    return f"VARCHAR({column.length})" if column.kind == "text" else "DOUBLE"


def _sqlite_type(column: Column) -> str:
    if column.kind == "text":
        return f"TEXT NOT NULL CHECK (length({column.name}) <= {column.length})"
    return "REAL NOT NULL"


_NAMES = ", ".join(c.name for c in ANSWER_COLUMNS)
_MARKS = ", ".join(["%s"] * (len(ANSWER_COLUMNS) + 2))
MYSQL_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS answers (\n"
    "  stream_seq BIGINT UNSIGNED NOT NULL PRIMARY KEY,\n"
    f"  subject VARCHAR({SUBJECT_LENGTH}) NOT NULL,\n"
    + "".join(f"  {c.name} {_mysql_type(c)} NOT NULL,\n" for c in ANSWER_COLUMNS)
    + "  recorded_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)\n"
    ") DEFAULT CHARSET=utf8mb4",
    """CREATE TABLE IF NOT EXISTS dead_letters (
        stream_seq BIGINT UNSIGNED NOT NULL PRIMARY KEY,
        subject TEXT NOT NULL,
        payload MEDIUMBLOB NOT NULL,
        error TEXT NOT NULL,
        deliveries INT NOT NULL,
        recorded_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
    ) DEFAULT CHARSET=utf8mb4""",
)
SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS answers (\n"
    "  stream_seq INTEGER PRIMARY KEY,\n"
    f"  subject TEXT NOT NULL CHECK (length(subject) <= {SUBJECT_LENGTH}),\n"
    + "".join(f"  {c.name} {_sqlite_type(c)},\n" for c in ANSWER_COLUMNS)
    + "  recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    """CREATE TABLE IF NOT EXISTS dead_letters (
        stream_seq INTEGER PRIMARY KEY, subject TEXT NOT NULL, payload BLOB NOT NULL,
        error TEXT NOT NULL, deliveries INTEGER NOT NULL,
        recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
)
# Idempotency comes from the key alone: a second row for a stream sequence is skipped, while
# every other error (a value too long, a NULL) still reaches the recorder.
_INSERT_ANSWER = f"INSERT INTO answers (stream_seq, subject, {_NAMES}) VALUES ({_MARKS})"
_INSERT_DEAD = (
    "INSERT INTO dead_letters (stream_seq, subject, payload, error, deliveries) "
    "VALUES (%s, %s, %s, %s, %s)"
)
_MYSQL_ON_DUPLICATE = " ON DUPLICATE KEY UPDATE stream_seq = stream_seq"
_SQLITE_ON_DUPLICATE = " ON CONFLICT (stream_seq) DO NOTHING"


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


class UnstorableFieldError(ValueError):
    """A message field that the answers table cannot hold as it is."""


def parse(stream_seq: int, subject: str, payload: bytes, deliveries: int) -> Answer | Poison:
    """An answer row, or the reason it cannot be one. Whatever the payload holds (deep nesting
    included), this returns: a message the recorder cannot store must never stop it."""
    try:
        if len(subject) > SUBJECT_LENGTH:
            raise UnstorableFieldError(f"subject longer than {SUBJECT_LENGTH} characters")
        record = json.loads(payload)
        if not isinstance(record, dict):
            raise UnstorableFieldError(f"not a JSON object but {type(record).__name__}")
        values = tuple(_value(record, column) for column in ANSWER_COLUMNS)
        return Answer(stream_seq, subject, values)
    except Exception as error:  # every failure is a reason to dead-letter
        return Poison(stream_seq, subject, payload, reason(error), deliveries)


def _value(record: dict[str, Any], column: Column) -> Any:
    if column.name not in record:
        raise UnstorableFieldError(f"missing field {column.name!r}")
    value = record[column.name]
    if column.kind == "text":
        if not isinstance(value, str):
            raise UnstorableFieldError(f"{column.name} is not a string: {type(value).__name__}")
        if len(value) > column.length:
            raise UnstorableFieldError(f"{column.name} is longer than {column.length} characters")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnstorableFieldError(f"{column.name} is not a number: {type(value).__name__}")
    number = float(value)  # an integer beyond a double's range raises OverflowError
    if not math.isfinite(number):
        raise UnstorableFieldError(f"{column.name} is not a finite number: {value!r}")
    return number


def reason(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= ERROR_LENGTH else text[: ERROR_LENGTH - 3] + "..."


Failure = Literal["refused", "outage"]


class Database(Protocol):
    """What the recorder needs of its database."""

    def ensure_schema(self) -> None: ...

    def write(self, answers: list[Answer], dead: list[Poison]) -> None:
        """All of them in one transaction, or none."""
        ...

    def classify(self, error: BaseException) -> Failure:
        """'refused': the database refused a row for its content, and will again. 'outage':
        anything else (unreachable, locked, unknown), which the recorder waits out."""
        ...

    def close(self) -> None: ...


# MySQL/MariaDB errors about a value, which PyMySQL does not all raise as DataError or
# IntegrityError (1366 and 1292 come as OperationalError); see the server error reference.
MYSQL_VALUE_ERRORS = frozenset(
    {
        1048,  # column cannot be null
        1062,  # duplicate entry (another unique key than stream_seq)
        1264,  # out of range value
        1265,  # data truncated
        1292,  # incorrect value
        1366,  # incorrect string/decimal value
        1406,  # data too long
        3819,  # check constraint violated
        4025,  # check constraint violated (MariaDB)
    }
)


class MySql:
    """PyMySQL, one connection, reconnecting when the server went away. Strict SQL mode, so a
    value that does not fit is refused, never truncated."""

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
                charset="utf8mb4",
                autocommit=False,
                connect_timeout=5,
                read_timeout=30,
                write_timeout=30,
                init_command="SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
            )
        return self._connection

    def ensure_schema(self) -> None:
        connection = self._connect()
        with connection.cursor() as cursor:
            for statement in MYSQL_SCHEMA:
                cursor.execute(statement)
        connection.commit()

    def write(self, answers: list[Answer], dead: list[Poison]) -> None:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                if answers:
                    cursor.executemany(
                        _INSERT_ANSWER + _MYSQL_ON_DUPLICATE, [a.row() for a in answers]
                    )
                if dead:
                    cursor.executemany(_INSERT_DEAD + _MYSQL_ON_DUPLICATE, [d.row() for d in dead])
            connection.commit()
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self._connection.close()
            self._connection = None

    def classify(self, error: BaseException) -> Failure:
        import pymysql  # noqa: PLC0415

        if isinstance(error, pymysql.err.DataError | pymysql.err.IntegrityError):
            return "refused"
        if isinstance(error, pymysql.err.MySQLError) and error.args:
            code = error.args[0]
            if isinstance(code, int) and code in MYSQL_VALUE_ERRORS:
                return "refused"
        return "outage"


class Sqlite:
    """An embedded database for the local supercluster, so the demo needs no MySQL. The same
    columns, with their lengths as CHECK constraints (SQLite does not enforce VARCHAR sizes)."""

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
            for statement in SQLITE_SCHEMA:
                connection.execute(statement)

    def write(self, answers: list[Answer], dead: list[Poison]) -> None:
        connection = self._connect()
        with connection:  # one transaction
            connection.executemany(
                (_INSERT_ANSWER + _SQLITE_ON_DUPLICATE).replace("%s", "?"),
                [a.row() for a in answers],
            )
            connection.executemany(
                (_INSERT_DEAD + _SQLITE_ON_DUPLICATE).replace("%s", "?"),
                [d.row() for d in dead],
            )

    def classify(self, error: BaseException) -> Failure:
        import sqlite3  # noqa: PLC0415

        if isinstance(error, sqlite3.IntegrityError | sqlite3.DataError):
            return "refused"
        return "outage"

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


_FETCH_FIRST_PAUSE = 0.2
_FETCH_MAX_PAUSE = 5.0
# Well under any ack wait the consumer may have (the default stream's is 5 s).
_KEEP_ALIVE_SECONDS = 1.0


class Refused(Exception):  # noqa: N818 (names what the database did)
    """The database refused a row of the work; the message says which constraint."""


class Stopping(Exception):  # noqa: N818
    """SIGTERM arrived while the recorder waited for its database."""


class Recorder:
    def __init__(
        self,
        client: Client,
        db: Database,
        settings: RecorderSettings,
        logger: logging.Logger,
        region: str,
    ) -> None:
        self.client = client
        self.db = db
        self.settings = settings
        self.logger = logger
        self.region = region
        self.stopping = asyncio.Event()
        self.recorded = 0
        self.dead_lettered = 0
        metrics.recorder_ready(region)

    def _counted(self, stored: int, dead: int) -> None:
        self.recorded += stored
        self.dead_lettered += dead
        metrics.RECORDER_STORED.labels(self.region).inc(stored)
        metrics.RECORDER_DEAD_LETTERS.labels(self.region).inc(dead)

    async def run(self) -> None:
        try:
            await self._until_stored(self.db.ensure_schema)
        except Stopping:
            logs.event(self.logger, "stopped before the database was reachable")
            return
        subscription = await self.client.jetstream().pull_subscribe_bind(
            durable=RECORDER_CONSUMER,
            stream=ANSWERS_STREAM,
            inbox_prefix=bytes(self.client._inbox_prefix) + b".",
        )
        logs.event(self.logger, "recording", stream=ANSWERS_STREAM, consumer=RECORDER_CONSUMER)
        pause = _FETCH_FIRST_PAUSE
        while not self.stopping.is_set():
            try:
                batch = await subscription.fetch(self.settings.batch_size, timeout=2)
            except (nats.errors.TimeoutError, TimeoutError):
                metrics.RECORDER_PENDING.labels(self.region).set(0)  # nothing left to deliver
                continue
            except nats.errors.Error as error:
                # JetStream electing a stream or consumer leader (503, no responders), a
                # reconnect: the messages wait in the stream; fetch again after a pause.
                self.logger.warning(
                    "fetch failed; retrying",
                    extra={"fields": {"error": reason(error), "retry_in": pause}},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), timeout=pause)
                pause = min(pause * 2, _FETCH_MAX_PAUSE)
                continue
            pause = _FETCH_FIRST_PAUSE
            # Each message says how many the consumer held back after it: the last one, the lag.
            # (A fetch may also end with no message at all: JetStream's 408 or 409 status.)
            if batch:
                metrics.RECORDER_PENDING.labels(self.region).set(batch[-1].metadata.num_pending)
            try:
                await self.record(batch)
            except Stopping:
                for msg in batch:  # not stored: the next recorder gets them at once
                    if not msg.is_acked:
                        await msg.nak()
        logs.event(self.logger, "stopped", recorded=self.recorded, dead_lettered=self.dead_lettered)

    async def record(self, batch: list[Msg]) -> None:
        answers: list[Answer] = []
        dead: list[Poison] = []
        for msg in batch:
            meta = msg.metadata
            outcome = parse(meta.sequence.stream, msg.subject, msg.data, meta.num_delivered)
            if isinstance(outcome, Answer):
                answers.append(outcome)
            else:
                dead.append(outcome)
        try:
            await self._until_stored(lambda: self.db.write(answers, dead), batch)
        except Refused as error:
            self.logger.warning(
                "a row was refused; storing the batch message by message",
                extra={"fields": {"error": str(error), "batch": len(batch)}},
            )
            await self._one_by_one(batch, answers, dead)
            return
        for msg in batch:
            await msg.ack()
        self._counted(len(answers), len(dead))

    async def _one_by_one(
        self, batch: list[Msg], answers: list[Answer], dead: list[Poison]
    ) -> None:
        """Each row in a transaction of its own, so one refusal costs only its own message.
        The batch's other messages are kept alive meanwhile (one write at a time can outlast
        the consumer's ack wait), and all of them are held through an outage."""
        by_seq = {m.metadata.sequence.stream: m for m in batch}
        pending = list(batch)
        alive_since = time.monotonic()

        async def settle(msg: Msg) -> None:
            nonlocal alive_since
            await msg.ack()
            pending.remove(msg)
            if time.monotonic() - alive_since > _KEEP_ALIVE_SECONDS:
                for held in pending:
                    await held.in_progress()
                alive_since = time.monotonic()

        for answer in answers:
            msg = by_seq[answer.stream_seq]
            try:
                await self._until_stored(partial(self.db.write, [answer], []), pending)
            except Refused as refused:
                dead.append(
                    Poison(
                        answer.stream_seq,
                        answer.subject,
                        msg.data,
                        reason(refused),
                        msg.metadata.num_delivered,
                    )
                )
                continue
            self._counted(1, 0)
            await settle(msg)
        for poison in dead:
            msg = by_seq[poison.stream_seq]
            # A dead letter is text and bytes in columns sized for any message; if even that is
            # refused, it is held like an outage rather than acknowledged unstored.
            await self._until_stored(
                partial(self.db.write, [], [poison]), pending, refusal_is_outage=True
            )
            self._counted(0, 1)
            logs.event(
                self.logger, "dead-lettered", stream_seq=poison.stream_seq, error=poison.error
            )
            await settle(msg)

    async def _until_stored(
        self,
        work: Callable[[], None],
        holding: list[Msg] | None = None,
        *,
        refusal_is_outage: bool = False,
    ) -> None:
        """Run `work` until it succeeds, keeping held messages alive while the database is out.
        Raises Refused when the database refuses the content, Stopping on SIGTERM."""
        delay = 0.5
        while True:
            if self.stopping.is_set():
                raise Stopping
            try:
                await asyncio.to_thread(work)
                return
            except Exception as error:  # classified below, nothing swallowed
                failure = self.db.classify(error)
                if failure == "refused" and not refusal_is_outage:
                    raise Refused(reason(error)) from error
                self.logger.warning(
                    "database unavailable; holding the batch",
                    extra={"fields": {"error": reason(error), "held": len(holding or [])}},
                )
            for msg in holding or []:
                await msg.in_progress()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=delay)
            delay = min(delay * 2, 10.0)


async def serve(
    client: Client, db: Database, settings: RecorderSettings, logger: logging.Logger, region: str
) -> Recorder:
    recorder = Recorder(client, db, settings, logger, region)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, recorder.stopping.set)
    await recorder.run()
    return recorder
