"""The recorder's rows and driver on a real MariaDB, in process: every class `parse` decides
on (services/recorder_rows.py) against what the server stores, changes or refuses, and the
loop's safety net under `parse` (services/recorder.py) with a row the driver cannot encode and
one the server refuses in the same batch. The recorder as a process is tested in
tests/test_recorder_live.py."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
from collections.abc import Iterator
from typing import Any, cast

import pymysql
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from localnet.mariadb import MariaDb, available
from services import recorder as recorder_module
from services.recorder import Recorder
from services.recorder_db import MySql
from services.recorder_rows import Answer, Poison, dead_letter, parse
from services.settings import RecorderSettings
from tests.recorder_fakes import (
    STORABLE_NUMBERS,
    STORABLE_TEXT,
    answer_payload,
    batch_of,
    unchecked_parse,
)
from tests.services_live import private_mariadb

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not available(), reason="needs Debian's mariadb-server"),
]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDb]:
    yield from private_mariadb(tmp_path_factory)


@pytest.fixture(scope="module")
def mysql(database: MariaDb) -> Iterator[MySql]:
    """The recorder's driver, strict SQL mode and all, on the private server."""
    db = MySql(RecorderSettings.from_env(database.environment()))
    db.ensure_schema()
    yield db
    db.close()


def _stored(db: MySql, table: str, stream_seq: int) -> tuple[Any, ...] | None:
    settings = db.settings
    connection = pymysql.connect(
        host=settings.db_host,
        port=settings.db_port,
        user=settings.db_user,
        password=settings.db_password,
        database=settings.db_name,
        charset="utf8mb4",
    )
    with connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE stream_seq = %s", (stream_seq,))
        row: tuple[Any, ...] | None = cursor.fetchone()
    return row


def test_mariadb_stores_what_parse_accepts_unchanged_and_fails_what_it_refuses(
    mysql: MySql,
) -> None:
    """The classes `parse` decides on, against the real server (services/recorder_rows.py):
    NUL, control characters, noncharacters and 64 four-byte characters stored unchanged;
    subnormals and the largest double too; -0.0 comes back +0; a lone surrogate, high or low,
    raises UnicodeEncodeError in PyMySQL, which the driver does not file as an outage, while
    the server takes the stand-in row (rolled back); 65 characters are refused (1406)."""
    seq = itertools.count(1)
    for text in STORABLE_TEXT:
        parsed = parse(next(seq), "answers.throwaway", answer_payload(request_id=text), 1)
        assert isinstance(parsed, Answer)
        mysql.write([parsed], [])
        assert (_stored(mysql, "answers", parsed.stream_seq) or ())[2] == text
    for number in STORABLE_NUMBERS:
        parsed = parse(next(seq), "answers.throwaway", answer_payload(a=number), 1)
        assert isinstance(parsed, Answer)
        mysql.write([parsed], [])
        assert (_stored(mysql, "answers", parsed.stream_seq) or ())[4] == number
    minus_zero = Answer(next(seq), "answers.throwaway", ("r", "add", 0.0, 0.0, -0.0, "e", "w"))
    mysql.write([minus_zero], [])
    assert math.copysign(1, (_stored(mysql, "answers", minus_zero.stream_seq) or ())[6]) == 1
    for surrogate in ("\ud800", "\udc80"):
        bad = Answer(next(seq), "answers.throwaway", (surrogate, "add", 1.0, 2.0, 3.0, "e", "w"))
        with pytest.raises(UnicodeEncodeError) as raised:
            mysql.write([bad], [])
        assert mysql.classify(raised.value) == "unknown"
        mysql.probe(bad.stream_seq)
        assert _stored(mysql, "answers", bad.stream_seq) is None  # the stand-in rolled back
        payload = answer_payload(request_id="X").replace(b'"X"', json.dumps(surrogate).encode())
        assert isinstance(parse(bad.stream_seq, "answers.throwaway", payload, 1), Poison)
    too_long = Answer(next(seq), "answers.throwaway", ("\U0001f600" * 65, "add", 1, 2, 3, "e", "w"))
    with pytest.raises(pymysql.err.DataError, match="1406") as refused:
        mysql.write([too_long], [])
    assert mysql.classify(refused.value) == "refused"


def test_on_mariadb_a_row_the_driver_cannot_encode_is_dead_lettered_and_the_rest_stored(
    mysql: MySql, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net under `parse`, on the real server: with `parse`'s checks removed, one
    batch holds a row PyMySQL cannot encode and one the server refuses. Each is dead-lettered
    alone with its reason; the others are stored and every message acknowledged."""
    monkeypatch.setattr(recorder_module, "parse", unchecked_parse)
    settings = mysql.settings
    recorder = Recorder(cast(Client, None), mysql, settings, logging.getLogger("net"), "net")
    batch = batch_of(1000, "net-0", "net-\ud800", "net-" + "x" * 64, "net-1")
    asyncio.run(asyncio.wait_for(recorder.record(cast(list[Msg], batch)), 20))
    assert [(_stored(mysql, "answers", m.seq) or ("",) * 3)[2] for m in batch] == [
        "net-0",
        "",
        "",
        "net-1",
    ]
    unencodable = _stored(mysql, "dead_letters", 1001) or ()
    assert unencodable[3].startswith("UnicodeEncodeError: 'utf-8' codec can't encode")
    assert "while the database took a plain row with the same key" in unencodable[3]
    refused = _stored(mysql, "dead_letters", 1002) or ()
    assert refused[3].startswith('refused by the database: DataError: (1406, "Data too long')
    assert bytes(refused[2]) == batch[2].data
    assert [m.acks for m in batch] == [1, 1, 1, 1]


def test_a_dead_letter_of_the_largest_message_the_servers_take_is_stored_whole(
    mysql: MySql,
) -> None:
    """nats-server takes payloads up to max_payload, 1 MiB here and in the clusters
    (services/recorder_rows.py): such a dead letter, with a subject and a reason holding lone
    surrogates, is one statement of over 2 MiB (PyMySQL sends bytes as hex) that MariaDB's
    default max_allowed_packet (16 MiB) and the MEDIUMBLOB take whole."""
    payload = bytes(range(256)) * 4096
    poison = dead_letter(5000, "answers.\udc80", payload, "why \ud800", 2)
    mysql.write([], [poison])
    stored = _stored(mysql, "dead_letters", 5000) or ()
    assert (stored[1], bytes(stored[2]), stored[3], stored[4]) == (
        "answers.\\udc80",
        payload,
        "why \\ud800",
        2,
    )
