"""The recorder's loop: drains the `answers` stream's durable consumer into MySQL.

Batch fetch, one transaction per batch, the stream sequence as primary key (a redelivered message
never makes a second row), ack only after commit. What happens to a message is decided by what
went wrong, never by ignoring errors:

- a message that cannot be a row (services/recorder_rows.py: not JSON, a field missing or given
  twice, text too long or not encodable, not a finite number) is written to `dead_letters` with
  the reason, in the batch's transaction;
- a batch whose write fails for its rows is written again message by message: every other row is
  stored, the failing one dead-lettered alone with its reason. A failure is the rows' when the
  database refused a value, or when the database takes a plain stand-in row with the same key
  right after the failure (`Database.probe`): at once for an error the driver does not know (an
  exception raised while a row was encoded, before anything reached the server), after
  `STRIKES` failures in a row for one it files as an outage. A probe that writes (and rolls
  back) proves more than `SELECT 1`: a locked or read-only table fails it too, and is waited out;
- otherwise the database is out: the batch is held (its ack deadline kept alive with
  in-progress acks) and retried with backoff, so an outage delays records and never spends their
  deliveries. A dead letter is held the same way whatever fails it, since it has nowhere else to
  go; `supercluster_recorder_held_seconds` says how long the batch now held has been held;
- SIGTERM ends the wait: a held batch is handed back (nak) for the next recorder, unacknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from functools import partial

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from infra.identities import ANSWERS_STREAM, RECORDER_CONSUMER
from services import logs, metrics
from services.recorder_db import Database
from services.recorder_rows import Answer, Poison, dead_letter, parse, reason
from services.settings import RecorderSettings

_FETCH_FIRST_PAUSE = 0.2
_FETCH_MAX_PAUSE = 5.0
# Well under any ack wait the consumer may have (the default stream's is 5 s).
_KEEP_ALIVE_SECONDS = 1.0
_FIRST_RETRY_SECONDS = 0.5
_MAX_RETRY_SECONDS = 10.0
# Failures the driver files as an outage, each followed by a probe the database passed, before
# they are put on the rows: a lost connection or a deadlock passes on the next try, a row that
# fails three times while the database takes a plain row with its key is the row's fault.
STRIKES = 3


class Refused(Exception):  # noqa: N818 (names what the database did)
    """The write failed for its rows; the message says why."""


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
        self.held_since: float | None = None
        metrics.recorder_ready(region)
        metrics.RECORDER_HELD.labels(region).set_function(self.held_seconds)

    def held_seconds(self) -> float:
        """How long the batch now held has been held; 0 when none is."""
        return 0.0 if self.held_since is None else time.monotonic() - self.held_since

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
        finally:
            self.held_since = None
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
        if not batch:
            return
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
            await self._until_stored(
                lambda: self.db.write(answers, dead), batch, key=batch[0].metadata.sequence.stream
            )
        except Refused as error:
            self.logger.warning(
                "the batch failed for its rows; storing it message by message",
                extra={"fields": {"error": str(error), "batch": len(batch)}},
            )
            await self._one_by_one(batch, answers, dead)
            return
        finally:
            self.held_since = None
        for msg in batch:
            await msg.ack()
        self._counted(len(answers), len(dead))

    async def _one_by_one(
        self, batch: list[Msg], answers: list[Answer], dead: list[Poison]
    ) -> None:
        """Each row in a transaction of its own, so a row that fails costs only its own message.
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
                await self._until_stored(
                    partial(self.db.write, [answer], []), pending, key=answer.stream_seq
                )
            except Refused as refused:
                meta = msg.metadata
                poison = dead_letter(
                    answer.stream_seq, msg.subject, msg.data, str(refused), meta.num_delivered
                )
                dead.append(poison)
                continue
            self._counted(1, 0)
            await settle(msg)
        for poison in dead:
            msg = by_seq[poison.stream_seq]
            await self._until_stored(partial(self.db.write, [], [poison]), pending)
            self._counted(0, 1)
            logs.event(
                self.logger, "dead-lettered", stream_seq=poison.stream_seq, error=poison.error
            )
            await settle(msg)

    async def _until_stored(
        self, work: Callable[[], None], holding: list[Msg] | None = None, key: int | None = None
    ) -> None:
        """Run `work` until it succeeds, keeping held messages alive while the database is out.
        With `key` (rows of answers), raises Refused when the failure is the rows' (see the
        module's docstring); without (the schema, a dead letter), every failure is waited out.
        Raises Stopping on SIGTERM."""
        delay = _FIRST_RETRY_SECONDS
        strikes = 0
        while True:
            if self.stopping.is_set():
                raise Stopping
            try:
                await asyncio.to_thread(work)
                return
            except Exception as error:  # classified below, nothing swallowed
                failure = self.db.classify(error)
                if key is not None and failure == "refused":
                    raise Refused(f"refused by the database: {reason(error)}") from error
                takes_rows = key is not None and await self._takes_rows(key)
                strikes = strikes + 1 if takes_rows else 0
                if takes_rows and (failure == "unknown" or strikes >= STRIKES):
                    raise Refused(
                        f"{reason(error)} (failed {strikes} time(s) while the database took a "
                        "plain row with the same key)"
                    ) from error
                if self.held_since is None:
                    self.held_since = time.monotonic()
                self.logger.warning(
                    "write failed while the database takes rows; trying again"
                    if takes_rows
                    else "database unavailable; holding the batch",
                    extra={
                        "fields": {
                            "error": reason(error),
                            "held": len(holding or []),
                            "held_seconds": round(self.held_seconds(), 1),
                        }
                    },
                )
            for msg in holding or []:
                await msg.in_progress()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=delay)
            delay = min(delay * 2, _MAX_RETRY_SECONDS)

    async def _takes_rows(self, key: int) -> bool:
        """Whether the database takes a stand-in row with this key now (rolled back)."""
        try:
            await asyncio.to_thread(self.db.probe, key)
        except Exception:  # the database is out: the caller holds the batch
            return False
        return True


async def serve(
    client: Client, db: Database, settings: RecorderSettings, logger: logging.Logger, region: str
) -> Recorder:
    recorder = Recorder(client, db, settings, logger, region)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, recorder.stopping.set)
    await recorder.run()
    return recorder
