"""A put in the clouds: what to wait for once the ConfigMap is written.

The chart's reloader signals a server only when a file's content changed (infra/reload_check.py),
so a put that leaves the servers' files as they are gets no reload: it is recorded applied at
once, as on the request path, instead of waiting for a reload that never comes and being rolled
back. A put that changes them is watched for what the files change: each server reloads and
shows the routes and cuts stored.

A put made while an earlier one is still pending supersedes it and takes over its watch, from
the servers as they were before the earlier one: the servers may have loaded the earlier files,
or never seen them (the kubelet copies only what is there at its sync), so only that baseline
says what they still have to load, and a rollback goes back to it. Back at the baseline's files,
nothing has to load, but each server has to run the baseline's configuration again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

from infra.reload_check import superseded, watched_for
from infra.runtime_config import APPLIED, PENDING
from services.control_put import PutTransaction, Written

NOTHING_TO_LOAD = f"{APPLIED}: nothing for the servers to load"
Spawn = Callable[[Awaitable[None]], "asyncio.Task[None]"]


class PendingWatches:
    """The region's puts of the reloader path; the control service makes one at a time."""

    def __init__(self, transaction: PutTransaction, spawn: Spawn) -> None:
        self.transaction = transaction
        self.spawn = spawn
        self.watching: tuple[Written, asyncio.Task[None]] | None = None
        self.confirmed: str | None = None  # the last change a watch recorded applied

    def baseline(self, written: Written) -> Written:
        """The change whose servers `written` is judged from: an earlier one it superseded
        before the servers were seen to run it, else itself. That earlier watch stops."""
        if self.watching is None:
            return written
        earlier, task = self.watching
        if earlier.change == self.confirmed or not superseded(
            written.after.history, earlier.change, written.change
        ):
            return written
        task.cancel()
        return earlier

    async def start(self, written: Written) -> str:
        """APPLIED when the servers have nothing to load (recorded so), else PENDING with a
        watch under way."""
        baseline = self.baseline(written)
        files_changed = baseline.before.servers_see() != written.after.servers_see()
        if baseline is written and not files_changed:
            await self.transaction.record(written.change, NOTHING_TO_LOAD)
            return APPLIED
        watched = replace(
            written,
            before=baseline.before,
            servers=baseline.servers,
            expectation=watched_for(
                written.expectation, baseline.servers, files_changed=files_changed
            ),
        )
        self.watching = (watched, self.spawn(self._watch(watched)))
        return PENDING

    async def _watch(self, written: Written) -> None:
        if await self.transaction.watch(written) == APPLIED:
            self.confirmed = written.change
