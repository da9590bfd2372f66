"""The recorder's rows: the answers table's columns, what a message must be to become a row
(`parse`), and the dead letter a message that cannot be one becomes, with its reason.

`parse` refuses what the databases were seen to refuse or to change, each class checked on
MariaDB 10.11 (utf8mb4, strict SQL mode, PyMySQL 1.2.4) and SQLite 3.40 (Python's sqlite3):

- text that is not Unicode scalar values: a lone surrogate (`"\\ud800"` is valid JSON) cannot
  be encoded as UTF-8, and both drivers raise UnicodeEncodeError before anything reaches the
  database; in the subject too. NUL, control characters, noncharacters (U+FFFF) and 4-byte
  characters are stored unchanged by both, so they are kept;
- text longer than its column, in characters (VARCHAR(64) utf8mb4 holds 64 characters of four
  bytes each; SQLite's CHECK counts characters too);
- numbers: not a number (JSON `true`, a string), not finite (NaN, Infinity, a literal such as
  1e400 that parses to infinity), an integer beyond a double (OverflowError) or with more
  digits than Python parses (4,300, ValueError). Every number is stored as a double: both
  databases store subnormals (5e-324) and the largest double as given; both store -0.0 as 0,
  so the row says 0.0 (the calculators answer -0.0 for -1 * 0, a real answer);
- JSON that is not one object: not JSON, not UTF-8/16/32, nested deeper than the parser's
  recursion limit, a field missing, a field given twice (JSON allows it and Python keeps the
  last one, so the row would depend on the parser). JSON keys are always strings.

Whatever else a row may hit is caught by the recorder (services/recorder.py), which writes
what the database refuses row by row and dead-letters it alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal


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
# A dead letter's subject is kept as text for the same reason: at most this many characters.
DEAD_SUBJECT_LENGTH = 1000
# The dead letter's payload column is a MEDIUMBLOB (2**24 - 1 bytes). nats-server takes
# messages of at most max_payload, 1 MiB unless configured (v2.14.2 server/const.go:94), and
# warns above 8 MiB (server/server.go:2328); the chart's rendered configuration sets none
# (tests/golden/*.json). A larger payload is cut, and its reason says so.
DEAD_PAYLOAD_BYTES = 2**24 - 1


@dataclass(frozen=True)
class Answer:
    stream_seq: int
    subject: str
    values: tuple[Any, ...]

    def row(self) -> tuple[Any, ...]:
        return (self.stream_seq, self.subject, *self.values)


@dataclass(frozen=True)
class Poison:
    """A dead letter: the payload as it came, the subject and reason as encodable text."""

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
        _text("subject", subject, SUBJECT_LENGTH)
        record = json.loads(payload, object_pairs_hook=_object)
        if not isinstance(record, dict):
            raise UnstorableFieldError(f"not a JSON object but {type(record).__name__}")
        values = tuple(_value(record, column) for column in ANSWER_COLUMNS)
        return Answer(stream_seq, subject, values)
    except Exception as error:  # every failure is a reason to dead-letter
        return dead_letter(stream_seq, subject, payload, reason(error), deliveries)


def dead_letter(
    stream_seq: int, subject: str, payload: bytes, error: str, deliveries: int
) -> Poison:
    """A dead letter any database can hold: its text encodable, its payload within the column."""
    if len(payload) > DEAD_PAYLOAD_BYTES:
        error = f"{error} (payload of {len(payload)} bytes cut to {DEAD_PAYLOAD_BYTES})"
        payload = payload[:DEAD_PAYLOAD_BYTES]
    return Poison(
        stream_seq,
        encodable(subject, DEAD_SUBJECT_LENGTH),
        payload,
        encodable(error, ERROR_LENGTH),
        deliveries,
    )


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in pairs:
        if key in record:
            raise UnstorableFieldError(f"field {encodable(key, 64)!r} given more than once")
        record[key] = value
    return record


def _text(name: str, value: str, length: int) -> str:
    if len(value) > length:
        raise UnstorableFieldError(f"{name} is longer than {length} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = value[error.start]
        raise UnstorableFieldError(
            f"{name} holds {bad!r} at {error.start}, which is not a Unicode character "
            "(a lone surrogate) and cannot be stored as UTF-8"
        ) from None
    return value


def _value(record: dict[str, Any], column: Column) -> Any:
    if column.name not in record:
        raise UnstorableFieldError(f"missing field {column.name!r}")
    value = record[column.name]
    if column.kind == "text":
        if not isinstance(value, str):
            raise UnstorableFieldError(f"{column.name} is not a string: {type(value).__name__}")
        return _text(column.name, value, column.length)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnstorableFieldError(f"{column.name} is not a number: {type(value).__name__}")
    number = float(value)  # an integer beyond a double's range raises OverflowError
    if not math.isfinite(number):
        raise UnstorableFieldError(f"{column.name} is not a finite number: {value!r}")
    return number + 0.0  # -0.0 becomes 0.0, as both databases would store it


def stand_in(stream_seq: int) -> Answer:
    """A plain row with this key, which any working answers table stores: the recorder's proof
    that the database takes rows now, so that what it refuses is the row's own content."""
    values = tuple("-" if c.kind == "text" else 0.0 for c in ANSWER_COLUMNS)
    return Answer(stream_seq, "-", values)


def encodable(text: str, length: int) -> str:
    """`text` cut to `length` characters, a lone surrogate written as its escape (\\ud800)."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= length else safe[: length - 3] + "..."


def reason(error: BaseException) -> str:
    return encodable(f"{type(error).__name__}: {error}", ERROR_LENGTH)
