"""A `config.put` as a confirmed change: checked (grammar, route names, partition, every server
of the region answering, the pinned nats-server's own parser) before it is stored, stored only
over the version it was computed from, applied, verified from the servers' own reports (each
server asked by its name, services/server_asks.py), and rolled back when verification fails,
within the put's budget (infra/put_budget.py).

Locally the service reloads the servers itself and answers with the outcome. In the clouds the
files reach each pod when its kubelet next syncs it (within 90 s), and the chart's reloader
sends the server SIGHUP only when a file's content differs from what it last signalled for
(infra/reload_check.py has the sources): a put that leaves the servers' files as they are is
recorded applied at once (services/put_watch.py), any other answers that it is pending, and a
watch records what became of it (applied, or rolled back and why) in the history config.get
shows. Whether a server did load its files, whoever reloaded it, is for
services/reload_watch.py to tell."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client

from infra.put_budget import ASK_SECONDS, RELOAD_SECONDS, Budget, window
from infra.put_request import Put, PutError, pins_for
from infra.region_servers import RegionRelease
from infra.runtime_checks import (
    Expectation,
    RegionServer,
    expectation_of,
    expected,
    refuse_routes,
    region_of,
    reload_order,
    route_urls,
    silent,
)
from infra.runtime_config import (
    APPLIED,
    PENDING,
    ROLLED_BACK,
    SUPERSEDED,
    RuntimeState,
    applied,
    confirmed,
    rolled_back,
    with_outcome,
)
from infra.runtime_status import Replies, connected_regions
from services import logs, metrics
from services.config_check import ConfigChecker
from services.runtime_store import ConflictError, RuntimeStore
from services.server_asks import ByName
from services.server_links import ServerLinks

CONFLICT_TRIES = 10

Ping = Callable[[tuple[str, ...]], Awaitable[Replies]]


class ChangeFailed(Exception):  # noqa: N818 (an outcome the caller answers with, not a bug)
    """The change was applied, failed verification and was rolled back: what failed."""


@dataclass(frozen=True)
class Timing:
    """How long a change may take to show: after a reload by request (`verify`), and after a
    ConfigMap update, which the kubelet and the chart's reloader apply (`pending`)."""

    verify: float = 10.0
    pending: float = 300.0
    poll: float = 0.5
    ask: float = ASK_SECONDS  # one server's answer to a request


@dataclass(frozen=True)
class Written:
    """A change stored: the state the servers were last confirmed to run (what a rollback
    restores) and the state after it, and what the region must show."""

    change: str
    before: RuntimeState
    after: RuntimeState
    version: str
    servers: Mapping[str, RegionServer]
    expectation: Expectation

    @property
    def touches_servers(self) -> bool:
        return self.before.servers_see() != self.after.servers_see()


class PutTransaction:
    """The steps of one put, for one region; the control service runs one at a time."""

    def __init__(
        self,
        client: Client,
        cluster: str,
        *,
        store: RuntimeStore,
        checker: ConfigChecker,
        ping: Ping,
        logger: logging.Logger,
        gateway_pins: Mapping[str, Sequence[str]],
        timing: Timing,
        links: ServerLinks | None = None,
        release: RegionRelease | None = None,
    ) -> None:
        """`release`: the region's servers as the release has them (infra/region_servers.py);
        None only where a test drives the steps alone: then the servers that answer."""
        self.client = client
        self.cluster = cluster
        self.store = store
        self.checker = checker
        self.ping = ping
        self.logger = logger
        self.gateway_pins = gateway_pins
        self.timing = timing
        self.links = links
        self.release = release or RegionRelease(cluster, "nats")
        self.servers = ByName(client, cluster, links, timing.ask)

    async def region(self) -> tuple[Replies, dict[str, RegionServer], list[str]]:
        """The region's servers' VARZ and GATEWAYZ replies, the servers a put must reach
        (infra/runtime_checks.py expected), and those of the release that did not answer,
        each first pinged over the service's connection, then asked itself by name (a server
        routed to no other answers only there)."""
        replies = await self.ping(("varz", "gatewayz"))
        answering = region_of(replies.varz, self.cluster)
        for name in silent(self.release, answering):
            varz = await self.servers.ask(name, "VARZ")
            if varz is None:
                continue
            replies.add("varz", [varz])
            gatewayz = await self.servers.ask(name, "GATEWAYZ")
            if gatewayz is not None:
                replies.add("gatewayz", [gatewayz])
        answering = region_of(replies.varz, self.cluster)
        return replies, expected(self.release, answering), silent(self.release, answering)

    async def store_checked(self, put: Put, who: str) -> Written:
        """Check the change against the servers, then read, check against the state and
        write over the version read; on a conflict (another writer came first) read and
        check again. PutError when refused: among others when a server of the release does
        not answer (paused, restarting or gone), since it could not load the change."""
        change = uuid.uuid4().hex[:12]
        replies, servers, missing = await self.region()
        if not servers:
            raise PutError(
                "body", f"no server of {self.cluster} answered; nothing changed, try again"
            )
        refuse_routes(put, servers, self.release)
        if missing:
            raise PutError(
                "servers",
                f"{', '.join(f'{n} did not answer' for n in missing)} (paused, restarting or "
                f"gone?): a change must reach every server of {self.cluster}, or that server "
                "would go on running without it; nothing changed, try again once it runs",
            )
        connected = connected_regions(replies, self.cluster)
        pinned = pins_for(put, self.cluster, self.gateway_pins, connected)
        loads = {name: s.config_load_time for name, s in servers.items()}
        for attempt in range(CONFLICT_TRIES):
            snapshot = await asyncio.to_thread(self.store.read)
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            after = applied(
                snapshot.state, put, who, when, pinned=pinned, change=change, loads=loads
            )
            refusal = await self.checker.refusal(after.servers_see())
            if refusal:
                field_name = "routes" if "routes.conf" in refusal else "cut_gateways"
                raise PutError(field_name, f"nats-server refuses the configuration: {refusal}")
            try:
                version = await asyncio.to_thread(self.store.write, after, snapshot.version)
            except ConflictError:
                await asyncio.sleep(random.uniform(0, 0.05 * (attempt + 1)))
                continue
            base = confirmed(snapshot.state)
            return Written(
                change, base, after, version, servers, expectation_of(servers, after, connected)
            )
        raise PutError(
            "body",
            f"the runtime configuration changed {CONFLICT_TRIES} times while this put was "
            "checked (other control services writing); nothing stored, try again",
        )

    # --- applying and verifying ----------------------------------------------------------

    async def reload(
        self, written: Written, state: RuntimeState, until: float | None = None
    ) -> dict[str, str]:
        """Each server reloads into `state`, by `until` (a monotonic time; default: the time
        one server's reload may take, from now); each one's outcome. The servers `state`'s
        routes leave out go first, while the others still dial them (should a server be
        reachable only over routes)."""
        outcomes = {}
        for name in reload_order(state.routes, written.servers, self.release):
            by = time.monotonic() + RELOAD_SECONDS
            outcomes[name] = await self.servers.reload(
                name, by if until is None else min(by, until)
            )
            if outcomes[name].startswith("failed"):
                metrics.CONTROL_RELOAD_FAILURES.labels(self.cluster).inc()
        return outcomes

    async def verified(
        self, expectation: Expectation, servers: Mapping[str, RegionServer], seconds: float
    ) -> list[str]:
        """Until the region shows `expectation` (then []), or what is still wrong after the
        last whole round that fits `seconds` (the first round is always made). Each of
        `servers` is asked by its name every round, so one that restarted meanwhile (with a
        new id) is still asked."""
        deadline = time.monotonic() + seconds
        while True:
            found = await self.servers.problems(expectation, servers)
            next_round = time.monotonic() + self.timing.poll + self.servers.round_seconds
            if not found or next_round > deadline:
                return found
            await asyncio.sleep(self.timing.poll)

    async def apply_by_request(
        self, written: Written, budget: Budget | None = None
    ) -> dict[str, Any]:
        """Reload, verify, and roll back when it does not hold, within `budget` (default: one
        starting now); what became of the change. A reload the server refused fails the change
        at once; a reload nobody answered is judged by what the server runs, and a server that
        answers nothing fails the change."""
        budget = budget or Budget.starting()
        if not written.touches_servers:
            await self.record(written.change, APPLIED + ": nothing for the servers to load")
            return {"outcome": APPLIED, "reloads": {}}
        reloads = await self.reload(written, written.after, budget.applied)
        failed = [f"{n}: reload {o}" for n, o in reloads.items() if o.startswith("failed")]
        found = failed or await self.verified(
            written.expectation, written.servers, window(self.timing.verify, budget.applied)
        )
        if not found:
            await self.record(written.change, APPLIED)
            return {"outcome": APPLIED, "reloads": reloads}
        why = "; ".join(found)
        if not await self.roll_back(written, why):
            return {"outcome": SUPERSEDED, "reloads": reloads, "why": why}
        again = await self.reload(written, written.before, budget.restored)
        still = await self.verified(
            self._restored(written), written.servers, window(self.timing.verify, budget.restored)
        )
        refused = {n: o for n, o in again.items() if o != "reloaded"}
        raise ChangeFailed(
            f"rolled back: {why}"
            + (f". After the rollback still: {'; '.join(still)}" if still else "")
            + (f" (reloads of the rollback: {refused})" if refused else "")
        )

    def _restored(self, written: Written) -> Expectation:
        before = written.before
        return Expectation(
            written.expectation.servers,
            written.servers,
            back=True,
            route_urls=route_urls(before.routes) if before.routes is not None else None,
        )

    async def watch(self, written: Written) -> str:
        """The clouds (services/put_watch.py decides what to watch): until the servers load
        the ConfigMap and show the change, then record it applied; or roll it back and record
        why. What became of it: applied, rolled back, superseded or not confirmed. A watch
        that fails (the API server gone) is logged and, where the store still answers,
        recorded as not confirmed."""
        try:
            return await self._watch(written)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.logger.exception(
                "watching a change failed", extra={"fields": {"change": written.change}}
            )
            with contextlib.suppress(Exception):
                await self.record(
                    written.change, f"not confirmed: watching it failed ({type(error).__name__})"
                )
            return "not confirmed"

    async def _watch(self, written: Written) -> str:
        found = await self.verified(written.expectation, written.servers, self.timing.pending)
        if not found:
            await self.record(written.change, APPLIED)
            logs.event(self.logger, "runtime change applied", change=written.change)
            return APPLIED
        why = "; ".join(found)
        if not await self.roll_back(written, f"{why} within {self.timing.pending:g} s"):
            logs.event(self.logger, "runtime change superseded", change=written.change, why=why)
            return SUPERSEDED
        logs.event(self.logger, "runtime change rolled back", change=written.change, why=why)
        still = await self.verified(self._restored(written), written.servers, self.timing.pending)
        if still:
            self.logger.error(
                "the rollback has not taken effect",
                extra={"fields": {"change": written.change, "problems": still}},
            )
        return ROLLED_BACK

    async def roll_back(self, written: Written, why: str) -> bool:
        """Restore the routes and cut of before the change, over the store's current version.
        False when a later change already replaced this one (then only the outcome is
        recorded)."""
        ours = False

        def restored(current: RuntimeState) -> RuntimeState:
            nonlocal ours
            # Still the region's latest change: nobody has changed it since.
            ours = bool(current.history) and current.history[-1].get("change") == written.change
            if ours:
                return rolled_back(current, written.before, written.change, why)
            return with_outcome(
                current, written.change, f"{SUPERSEDED} before it was verified ({why})"
            )

        if not await self._update(restored, f"roll back {written.change}"):
            return False
        if ours:
            metrics.CONTROL_ROLLBACKS.labels(self.cluster).inc()
        return ours

    async def settle(self, change: str, outcome: str) -> None:
        """Write what became of `change`, unless something else was recorded meanwhile (a
        later put superseded it)."""

        def settled(state: RuntimeState) -> RuntimeState:
            pending = any(
                e.get("change") == change and e.get("outcome") == PENDING for e in state.history
            )
            return with_outcome(state, change, outcome) if pending else state

        await self._update(settled, f"settle {change} {outcome}")

    async def record(self, change: str, outcome: str) -> None:
        """Write what became of `change` into its history entry."""
        await self._update(
            lambda state: with_outcome(state, change, outcome), f"record {change} {outcome}"
        )

    async def _update(self, change: Callable[[RuntimeState], RuntimeState], what: str) -> bool:
        """`change` applied to the stored state, over the version it was read at; read and
        applied again on a conflict. False (and logged) when the store kept changing."""
        for _ in range(CONFLICT_TRIES):
            snapshot = await asyncio.to_thread(self.store.read)
            try:
                await asyncio.to_thread(self.store.write, change(snapshot.state), snapshot.version)
            except ConflictError:
                continue
            return True
        self.logger.error(
            "could not write the runtime state: the store kept changing",
            extra={"fields": {"what": what}},
        )
        return False
