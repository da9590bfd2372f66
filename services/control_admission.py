"""The control service's door: which requests it takes, and how it turns the others away.

It answers only into its callers' inboxes, never to another reply subject (one naming an API
would make it a deputy). A bounded number of reads and of puts may wait ("busy" beyond it), so
no reader can delay a put. Refusals are logged at most once a minute for each kind of refusal
and at most LOG_LINES lines a minute in all, each line counting those not logged: keyed by
nothing a caller chooses (infra/callers.py: the `system` identity writes its own
Nats-Request-Info). What it serves: services/control.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.micro.request import Request

from infra.callers import caller, reply_allowed
from infra.identities import CONTROL_PREFIX, IMPORT_REPLIES
from infra.put_request import PutError
from services import logs, metrics
from services.control_put import ChangeFailed

REPLY_PREFIXES = ("_INBOX.system.", IMPORT_REPLIES.removesuffix(">"))
MAX_WAITING_READS = 64
MAX_WAITING_PUTS = 16
# Refusals logged in all, per THROTTLE_SECONDS, whatever their kind.
LOG_LINES = 6
THROTTLE_SECONDS = 60.0

Work = Callable[[Request], Awaitable[dict[str, Any]]]


class Busy(Exception):  # noqa: N818 (an answer, not a bug)
    """A put turned away before anything changed: others are ahead of it."""


class Admission:
    """Which of one region's control requests are served, each in a task stopped with the
    service; what serving one means is Control's (services/control.py)."""

    def __init__(
        self, cluster: str, logger: logging.Logger, *, max_waiting_reads: int = MAX_WAITING_READS
    ) -> None:
        self.cluster = cluster
        self.logger = logger
        self.max_waiting_reads = max_waiting_reads
        self.refusals = logs.Throttle(logger, THROTTLE_SECONDS, lines=LOG_LINES)
        self.refused_replies = 0
        self.waiting_reads = 0
        self.waiting_puts = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def subject(self, endpoint: str) -> str:
        return f"{CONTROL_PREFIX}.{self.cluster}.{endpoint}"

    async def answer(self, request: Request, *, work: Work, read: bool) -> None:
        reply = request._msg.reply  # the framework's Request does not expose the reply subject
        who = caller(request.headers)
        endpoint = request.subject.removeprefix(self.subject(""))
        if not reply_allowed(reply, REPLY_PREFIXES):
            self.refused_replies += 1
            self.refusals.event(
                f"reply {endpoint}",
                "request with a reply subject outside the callers' inboxes ignored",
                level=logging.WARNING,
                reply=reply[:80],
                claimed_caller=who,
            )
            return
        waiting = self.waiting_reads if read else self.waiting_puts
        if waiting >= (self.max_waiting_reads if read else MAX_WAITING_PUTS):
            if not read:
                metrics.CONTROL_PUTS.labels(self.cluster, "refused").inc()
            self.refusals.event(f"busy {endpoint}", "refused: busy", claimed_caller=who)
            await request.respond_error(
                "503", f"busy: {waiting} requests waiting; nothing changed, try again in a second"
            )
            return
        self.spawn(self._serve(request, work, who, read=read), read=read)

    def spawn(self, work: Awaitable[None], *, read: bool | None = None) -> asyncio.Task[None]:
        """`work` as a task the service stops with it; `read`: a read (True) or a put (False)
        waiting, counted while it runs."""
        if read is not None:
            self._count(read, 1)

        async def run() -> None:
            try:
                await work
            finally:
                if read is not None:
                    self._count(read, -1)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _count(self, read: bool, step: int) -> None:
        if read:
            self.waiting_reads += step
        else:
            self.waiting_puts += step

    async def _serve(self, request: Request, work: Work, who: str, *, read: bool = True) -> None:
        try:
            answer = await work(request)
        except PutError as error:
            if not read:
                metrics.CONTROL_PUTS.labels(self.cluster, "refused").inc()
            self.refusals.event(
                f"refused {'read' if read else 'put'}",
                "request refused",
                level=logging.WARNING,
                caller=who,
                error=str(error)[:300],
            )
            await request.respond_error("400", str(error))
            return
        except Busy as busy:
            metrics.CONTROL_PUTS.labels(self.cluster, "refused").inc()
            self.refusals.event("busy put", "put refused: busy", caller=who)
            await request.respond_error("503", str(busy))
            return
        except ChangeFailed as failed:
            metrics.CONTROL_PUTS.labels(self.cluster, "rolled_back").inc()
            self.logger.warning(
                "runtime change rolled back", extra={"fields": {"caller": who, "why": str(failed)}}
            )
            await request.respond_error("500", str(failed))
            return
        except Exception as error:  # the store or the servers failed: say so, keep serving
            self.logger.exception("request failed", extra={"fields": {"caller": who}})
            await request.respond_error(
                "500",
                f"failed: {type(error).__name__}: {str(error)[:200]}; nothing was changed"
                if read
                else f"failed: {type(error).__name__}: {str(error)[:200]}; config.get shows "
                "whether the change was stored",
            )
            return
        if not read:
            metrics.CONTROL_PUTS.labels(self.cluster, str(answer["outcome"]).split(":")[0]).inc()
        await request.respond(json.dumps(answer).encode())

    async def stop(self) -> None:
        """Every task it spawned cancelled, and waited for."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
