"""Stand-ins the recorder's tests share (tests/test_recorder_unit.py, tests/test_recorder_live.py):
a JetStream message that counts its acknowledgements, `parse` without its checks (a row only the
database can refuse), and the edge values both databases were seen to store unchanged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from services.recorder_rows import ANSWER_COLUMNS, Answer

GOOD_ANSWER = {
    "request_id": "r",
    "op": "add",
    "a": 1,
    "b": 2,
    "result": 3,
    "served_by": "east",
    "requested_in": "west",
}

# Each stored unchanged by MariaDB 10.11 (utf8mb4, strict) and SQLite 3.40, so kept as given.
STORABLE_TEXT = [
    "a\x00b",  # NUL
    "\x01\x1b\x7f",  # control characters
    "\uffff\ufffe\U0010ffff",  # noncharacters, the last code point
    "\U0001f600" * 64,  # 64 four-byte characters fill VARCHAR(64)
    "e\u0301" * 32,  # 64 code points, 32 graphemes
]
STORABLE_NUMBERS = [5e-324, 2.225073858507201e-308, 1.7976931348623157e308, -1e-300, 2.0**53]


def answer_payload(**changes: object) -> bytes:
    return json.dumps({**GOOD_ANSWER, **changes}).encode()


@dataclass
class FakeMsg:
    """What the recorder uses of a JetStream message, counting its acknowledgements."""

    seq: int
    data: bytes
    subject: str = "answers.throwaway"
    acks: int = 0
    naks: int = 0
    progress: int = 0

    @property
    def metadata(self) -> Any:
        return SimpleNamespace(
            sequence=SimpleNamespace(stream=self.seq), num_delivered=1, num_pending=0
        )

    @property
    def is_acked(self) -> bool:
        return self.acks > 0

    async def ack(self) -> None:
        self.acks += 1

    async def nak(self) -> None:
        self.naks += 1

    async def in_progress(self) -> None:
        self.progress += 1


def batch_of(first_seq: int, *request_ids: str) -> list[FakeMsg]:
    return [FakeMsg(first_seq + i, answer_payload(request_id=r)) for i, r in enumerate(request_ids)]


def unchecked_parse(stream_seq: int, subject: str, payload: bytes, _deliveries: int) -> Answer:
    """`parse` without its checks: a row only the database can refuse."""
    record = json.loads(payload)
    return Answer(stream_seq, subject, tuple(record[c.name] for c in ANSWER_COLUMNS))
