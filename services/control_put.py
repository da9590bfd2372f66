"""A `config.put` as a confirmed change: checked (grammar, partition, the pinned nats-server's
own parser) before it is stored, stored only over the version it was computed from, applied,
verified from the servers' own reports, and rolled back when verification fails.

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
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client

from infra.runtime_checks import (
    Expectation,
    RegionServer,
    gateways_of,
    pod_of,
    problems,
    refuse_partition,
    region_of,
    reload_order,
    route_urls,
)
from infra.runtime_config import (
    APPLIED,
    PENDING,
    ROLLED_BACK,
    SUPERSEDED,
    Put,
    PutError,
    RuntimeState,
    applied,
    pins_for,
    rolled_back,
    with_outcome,
)
from infra.runtime_status import Replies, connected_regions
from services import logs, metrics
from services.config_check import ConfigChecker
from services.runtime_store import ConflictError, RuntimeStore
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
    ask: float = 1.0  # one server's answer to a direct request


@dataclass(frozen=True)
class Written:
    """A change stored: the state before and after it, and what the region must show."""

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
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.store = store
        self.checker = checker
        self.ping = ping
        self.logger = logger
        self.gateway_pins = gateway_pins
        self.timing = timing
        self.links = links

    async def store_checked(self, put: Put, who: str) -> Written:
        """Check the change against the servers, then read, check against the state and
        write over the version read; on a conflict (another writer came first) read and
        check again. PutError when refused."""
        change = uuid.uuid4().hex[:12]
        replies = await self.ping(("varz", "gatewayz"))
        servers = region_of(replies.varz, self.cluster)
        if not servers:
            raise PutError(
                "body", f"no server of {self.cluster} answered; nothing changed, try again"
            )
        refuse_partition(put, servers, self.cluster)
        connected = connected_regions(replies, self.cluster)
        pinned = pins_for(put, self.cluster, self.gateway_pins, connected)
        for attempt in range(CONFLICT_TRIES):
            snapshot = await asyncio.to_thread(self.store.read)
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            after = applied(snapshot.state, put, who, when, pinned=pinned, change=change)
            refusal = await self.checker.refusal(after.servers_see())
            if refusal:
                field_name = "routes" if "routes.conf" in refusal else "cut_gateways"
                raise PutError(field_name, f"nats-server refuses the configuration: {refusal}")
            try:
                version = await asyncio.to_thread(self.store.write, after, snapshot.version)
            except ConflictError:
                await asyncio.sleep(random.uniform(0, 0.05 * (attempt + 1)))
                continue
            cut = frozenset(after.cut_gateways) if put.sets_cut else frozenset()
            expectation = Expectation(
                frozenset(servers),
                servers,
                route_urls=route_urls(after.routes) if after.routes is not None else None,
                cut=cut,
                kept=frozenset(connected - cut) if put.cut_gateways else frozenset(),
            )
            return Written(change, snapshot.state, after, version, servers, expectation)
        raise PutError(
            "body",
            f"the runtime configuration changed {CONFLICT_TRIES} times while this put was "
            "checked (other control services writing); nothing stored, try again",
        )

    # --- applying and verifying ----------------------------------------------------------

    async def ask(self, name: str, server_id: str, kind: str) -> dict[str, Any] | None:
        """One server's reply to `$SYS.REQ.SERVER.<id>.<KIND>`: over a connection straight
        to it where there is one (services/server_links.py), else over the service's own."""
        subject = f"$SYS.REQ.SERVER.{server_id}.{kind}"
        pod = pod_of(name, self.cluster)
        if self.links is not None and pod is not None:
            reply = await self.links.request(pod, subject, self.timing.ask * 2)
            if reply is not None:
                return reply
        try:
            msg = await self.client.request(subject, b"", timeout=self.timing.ask)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            return None
        found: dict[str, Any] = json.loads(msg.data)
        return found

    async def reload(self, written: Written, state: RuntimeState) -> dict[str, str]:
        """Each server reloads into `state`; each one's outcome. The servers `state`'s routes
        leave out go first, while the others still dial them (should a server be reachable
        only over routes). A server that does not answer is asked again."""
        outcomes = {}
        for name in reload_order(state.routes, written.servers, self.cluster):
            outcomes[name] = await self._reload_one(name, written.servers[name].server_id)
            if outcomes[name].startswith("failed"):
                metrics.CONTROL_RELOAD_FAILURES.labels(self.cluster).inc()
        return outcomes

    async def _reload_one(self, name: str, server_id: str, tries: int = 5) -> str:
        for attempt in range(1, tries + 1):
            reply = await self.ask(name, server_id, "RELOAD")
            if reply is None:
                if attempt < tries:
                    await asyncio.sleep(0.5)
                continue
            error = reply.get("error")
            return f"failed: {error.get('description')}" if error else "reloaded"
        return f"no answer after {tries} tries"

    async def verified(
        self, expectation: Expectation, servers: Mapping[str, RegionServer], seconds: float
    ) -> list[str]:
        """Until the region shows `expectation` (then []), or what is still wrong when
        `seconds` have passed. Each server is asked itself, so a round takes as long as the
        slowest answer."""
        ids = {name: s.server_id for name, s in servers.items()}
        deadline = time.monotonic() + seconds
        while True:
            found = await self._problems(expectation, ids)
            if not found or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(self.timing.poll)

    async def _problems(self, expectation: Expectation, ids: Mapping[str, str]) -> list[str]:
        kinds = ("varz", "routez", "gatewayz")
        asked = [(kind, name) for kind in kinds for name in ids]
        answers = await asyncio.gather(
            *(self.ask(name, ids[name], kind.upper()) for kind, name in asked)
        )
        replies = Replies()
        for (kind, _), answer in zip(asked, answers, strict=True):
            if answer is not None:
                replies.add(kind, [answer])
        return problems(
            expectation, replies.varz, replies.routez, gateways_of(replies.gatewayz, ids)
        )

    async def apply_by_request(self, written: Written) -> dict[str, Any]:
        """Reload, verify, and roll back when it does not hold; what became of the change.
        A reload the server refused fails the change at once; a reload nobody answered (its
        reply crossed a route the reload closed) is judged by what the server runs."""
        if not written.touches_servers:
            await self.record(written.change, APPLIED + ": nothing for the servers to load")
            return {"outcome": APPLIED, "reloads": {}}
        reloads = await self.reload(written, written.after)
        failed = [f"{n}: reload {o}" for n, o in reloads.items() if o.startswith("failed")]
        found = failed or await self.verified(
            written.expectation, written.servers, self.timing.verify
        )
        if not found:
            await self.record(written.change, APPLIED)
            return {"outcome": APPLIED, "reloads": reloads}
        why = "; ".join(found)
        if not await self.roll_back(written, why):
            return {"outcome": SUPERSEDED, "reloads": reloads, "why": why}
        again = await self.reload(written, written.before)
        still = await self.verified(self._restored(written), written.servers, self.timing.verify)
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


def pending_changes(state: RuntimeState) -> list[str]:
    """Changes whose outcome nobody recorded (a service restarted while watching)."""
    return [str(e["change"]) for e in state.history if e.get("outcome") == PENDING]
