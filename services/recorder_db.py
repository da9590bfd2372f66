"""The recorder's databases: what it needs of one (`Database`), the schemas, and the two
drivers, MySQL/MariaDB (PyMySQL) and the embedded SQLite the local supercluster uses.

Each driver sorts a failed write into three kinds (`Failure`), from what raised it:
- "refused": the server refused a value or a constraint; it will again;
- "outage": the driver's own class for the server being unreachable, gone, locked or busy;
- "unknown": anything else, such as an exception raised on the client while a row was encoded,
  before anything reached the server. The recorder does not wait such an error out: it tries
  the rows one by one (services/recorder.py).
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal, Protocol

from services.recorder_rows import ANSWER_COLUMNS, SUBJECT_LENGTH, Answer, Column, Poison, stand_in
from services.settings import RecorderSettings


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

Failure = Literal["refused", "outage", "unknown"]


class Database(Protocol):
    """What the recorder needs of its database."""

    def ensure_schema(self) -> None: ...

    def write(self, answers: list[Answer], dead: list[Poison]) -> None:
        """All of them in one transaction, or none."""
        ...

    def probe(self, stream_seq: int) -> None:
        """Write a stand-in answer with this key and roll it back; raises unless the database
        takes a plain row in that table now (reachable, writable, not locked)."""
        ...

    def classify(self, error: BaseException) -> Failure:
        """What kind of failure `error` is (see the module's docstring)."""
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

    def probe(self, stream_seq: int) -> None:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(_INSERT_ANSWER + _MYSQL_ON_DUPLICATE, stand_in(stream_seq).row())
            connection.rollback()
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
        # PyMySQL raises OperationalError for the server's errors from 1000 on that it does not
        # map to another class (lost connection 2013, gone away 2006, lock wait 1205), and
        # InterfaceError on a closed connection; a socket error may come through unwrapped.
        if isinstance(error, pymysql.err.OperationalError | pymysql.err.InterfaceError | OSError):
            return "outage"
        return "unknown"


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

    def probe(self, stream_seq: int) -> None:
        connection = self._connect()
        try:  # sqlite3 opens the transaction before the INSERT
            connection.execute(
                (_INSERT_ANSWER + _SQLITE_ON_DUPLICATE).replace("%s", "?"),
                stand_in(stream_seq).row(),
            )
        finally:
            connection.rollback()

    def classify(self, error: BaseException) -> Failure:
        import sqlite3  # noqa: PLC0415

        if isinstance(error, sqlite3.IntegrityError | sqlite3.DataError):
            return "refused"
        if isinstance(error, sqlite3.OperationalError | OSError):  # locked, I/O, no file
            return "outage"
        return "unknown"

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
