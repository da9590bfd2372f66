"""The control service of one region (seed 003's runtime control, in this product's way): a
NATS Services Framework service on the system account, as the `control` identity, answering

- `supercluster.<cluster>.status`: servers and versions, routes, inbound and outbound gateways,
  the JetStream meta leader and peers, stream placement, the quorum verdict and each server's
  health, all from the servers' own system-account replies;
- `supercluster.<cluster>.config.get`: the region's routes and gateways as its servers run them,
  the runtime override and the history of changes with what became of each;
- `supercluster.<cluster>.config.put`: new routes for the region (or null: the release's own)
  and/or the regions to cut off its gateways (or []: none), as a confirmed change
  (services/control_put.py): checked before it is stored, verified after it is applied, rolled
  back when verification fails.

The admin reaches it from APP through a service import, the system identity (read-only) reaches
status and config.get directly. Which requests it takes, and how it turns the others away (only
into those callers' inboxes, a bounded number waiting, refusals logged by kind):
services/control_admission.py. Reads are served concurrently from one shared gathering of the
servers' replies. Puts are applied one at a time, each answered within the put's budget
(infra/put_budget.py): one that waits too long behind another is answered busy, nothing
changed. A change a killed run left pending is resolved before any put (services/
control_resume.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from functools import partial
from typing import Any

import nats.errors
import nats.micro
from nats.aio.client import Client
from nats.micro.request import Request

from infra.callers import caller
from infra.put_budget import QUEUE_SECONDS, Budget
from infra.put_request import parse_put
from infra.region_health import gathered, region_health
from infra.region_servers import RegionRelease
from infra.runtime_checks import server_urls
from infra.runtime_config import APPLIED, PENDING
from infra.runtime_status import Replies, effective, status
from infra.sys_ping import gather
from services import logs, metrics
from services.config_check import ConfigChecker
from services.connect import connect, stop_within
from services.control_admission import MAX_WAITING_READS, Admission, Busy
from services.control_put import PutTransaction, Timing
from services.control_resume import resume
from services.put_watch import NOTHING_TO_LOAD, PendingWatches
from services.reload_watch import ReloadWatch
from services.runtime_store import RuntimeStore, store_from
from services.server_links import ServerLinks
from services.settings import ControlSettings, NatsSettings

VERSION = "1.1.0"
PINGS = ("varz", "routez", "gatewayz", "jsz", "healthz")
PENDING_NOTE = (
    "stored in the ConfigMap; the kubelet copies it into the servers' pods at its next sync "
    "(within 90 s) and the chart's reloader, seeing the files' content changed, has each server "
    "reload. This service watches the servers and records the outcome (applied, or rolled back "
    "and why) in config.get's history under this change; a later put before then takes the "
    "watch over."
)


async def ping(client: Client, wait: float, kinds: tuple[str, ...] = PINGS) -> Replies:
    replies = Replies()
    bodies = {"jsz": json.dumps({"accounts": True, "streams": True}).encode()}
    gathered = await asyncio.gather(
        *(
            gather(client, f"$SYS.REQ.SERVER.PING.{k.upper()}", bodies.get(k, b""), wait)
            for k in kinds
        )
    )
    for kind, found in zip(kinds, gathered, strict=True):
        replies.add(kind, found)
    return replies


class Control(Admission):
    """One region's control service: status, config.get and config.put, the region's health
    for the metrics, and a change an earlier run left pending."""

    def __init__(
        self,
        client: Client,
        cluster: str,
        store: RuntimeStore,
        *,
        reload_by_request: bool,
        logger: logging.Logger,
        checker: ConfigChecker,
        gateway_pins: Mapping[str, Sequence[str]] | None = None,
        wait: float = 1.0,
        timing: Timing | None = None,
        max_waiting_reads: int = MAX_WAITING_READS,
        links: ServerLinks | None = None,
        reloads: ReloadWatch | None = None,
        release: RegionRelease | None = None,
    ) -> None:
        super().__init__(cluster, logger, max_waiting_reads=max_waiting_reads)
        self.client = client
        self.store = store
        self.reload_by_request = reload_by_request
        self.wait = wait
        self.transaction = PutTransaction(
            client,
            cluster,
            store=store,
            checker=checker,
            ping=self._replies,
            logger=logger,
            gateway_pins=dict(gateway_pins or {}),
            timing=timing or Timing(),
            links=links,
            release=release,
        )
        self.watches = PendingWatches(self.transaction, self.spawn)
        self.reloads = reloads
        self.known_regions = tuple(gateway_pins or {})
        metrics.control_ready(cluster)
        # Set while no change an earlier run left pending stands in a put's way (resume).
        self.resumed = asyncio.Event()
        self.resumed.set()
        self._put_lock = asyncio.Lock()
        self._flights: dict[tuple[str, ...], asyncio.Future[Replies]] = {}

    async def _replies(self, kinds: tuple[str, ...]) -> Replies:
        """The servers' replies to `kinds`, one gathering shared by every request that asks
        while it runs."""
        flight = self._flights.get(kinds)
        if flight is None:
            flight = asyncio.ensure_future(ping(self.client, self.wait, kinds))
            self._flights[kinds] = flight
            flight.add_done_callback(lambda _: self._flights.pop(kinds, None))
        return await asyncio.shield(flight)

    async def status(self, _request: Request) -> dict[str, Any]:
        return status(self.cluster, await self._replies(PINGS))

    async def config_get(self, _request: Request) -> dict[str, Any]:
        replies = await self._replies(("varz",))
        snapshot = await asyncio.to_thread(self.store.read)
        return effective(replies, self.cluster, snapshot.state)

    async def config_put(self, request: Request) -> dict[str, Any]:
        put = parse_put(request.data)
        who = caller(request.headers)
        async with self._turn():
            budget = Budget.starting()
            written = await self.transaction.store_checked(put, who)
            entry = dict(written.after.history[-1])
            entry.pop("before", None)
            logs.event(self.logger, "runtime configuration stored", **entry)
            answer: dict[str, Any] = {
                "runtime_routes": list(written.after.routes)
                if written.after.routes is not None
                else None,
                "cut_gateways": list(written.after.cut_gateways),
                "reload": "by request" if self.reload_by_request else "by the chart's reloader",
            }
            if not self.reload_by_request:
                if await self.watches.start(written) == APPLIED:
                    return {
                        **answer,
                        "outcome": APPLIED,
                        "applied": {**entry, "outcome": NOTHING_TO_LOAD},
                    }
                return {**answer, "outcome": PENDING, "applied": entry, "pending": PENDING_NOTE}
            result = await self.transaction.apply_by_request(written, budget)
        logs.event(self.logger, "runtime change applied", change=written.change, **result)
        return {**answer, "outcome": result["outcome"], "applied": {**entry, **result}}

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """This put's turn: once no change of an earlier run is pending and the put before it
        is done, or Busy after QUEUE_SECONDS (then it changed nothing)."""
        try:
            async with asyncio.timeout(QUEUE_SECONDS):
                await self.resumed.wait()
                await self._put_lock.acquire()
        except TimeoutError:
            raise Busy(
                f"busy: another change is being applied (or one an earlier run left pending "
                f"is being resolved) and this put waited {QUEUE_SECONDS:g} s; nothing changed, "
                "try again"
            ) from None
        try:
            yield
        finally:
            self._put_lock.release()

    async def collect(self, every: float) -> None:
        """The region's health for the metrics (infra/region_health.py), every `every`
        seconds, from a gathering of its own: a read joins only a gathering that began
        while it waited, never one that began before (and may predate a change). A gathering
        that fails keeps the last view, whose time then stops moving (NatsRegionUnseen); before
        the first, that time is the start."""
        gathered_once = False
        started = time.time()
        while True:
            try:
                replies = await ping(self.client, self.wait)
                health = region_health(replies, self.cluster, self.known_regions, time.time())
            except Exception as error:  # reconnecting, or a reply it cannot read: keep going
                self.logger.warning("health not gathered", extra={"fields": {"error": str(error)}})
                if not gathered_once:
                    metrics.REGION_HEALTH.update([gathered(self.cluster, started)])
            else:
                metrics.REGION_HEALTH.update(health)
                gathered_once = True
                if self.reloads is not None:
                    stale = await asyncio.to_thread(self.reloads.stale, replies.varz)
                    metrics.CONFIG_STALE.update(self.cluster, stale)
            await asyncio.sleep(every)

    async def resume(self) -> None:
        """A change an earlier run left pending (services/control_resume.py): locally resolved
        before any put, since this service would apply it with the next; in the clouds the
        stored state is what the reloader applies anyway, so puts go on meanwhile."""
        try:
            if not self.reload_by_request:
                self.resumed.set()
            await resume(self.transaction, by_request=self.reload_by_request)
        except Exception:
            self.logger.exception("resolving a pending change failed")
        finally:
            self.resumed.set()

    async def stop(self) -> None:
        await super().stop()
        if self.transaction.links is not None:
            await self.transaction.links.close()


async def serve(settings: NatsSettings, control: ControlSettings) -> None:
    logger = logs.setup(f"control-{control.cluster}", settings.region)
    checker = ConfigChecker(control.cluster)  # refuses to start without the pinned server
    client = await connect(settings, logger)
    service = Control(
        client,
        control.cluster,
        store_from(control.store),
        reload_by_request=control.reload == "request",
        logger=logger,
        checker=checker,
        gateway_pins=control.gateway_pins,
        timing=Timing(verify=control.verify_seconds, pending=control.pending_seconds),
        links=ServerLinks(settings, server_urls(control.server_urls), logger),
        reloads=ReloadWatch(
            control.cluster,
            control.watch_config,
            grace=control.reload_grace_seconds,
            spread=control.reload_spread_seconds,
            logger=logger,
        )
        if control.watch_config
        else None,
        release=RegionRelease(control.cluster, control.namespace, control.servers),
    )
    service.resumed.clear()  # no put before the resume below has run
    micro = await nats.micro.add_service(
        client,
        name=f"control-{control.cluster}",
        version=VERSION,
        description=f"status and runtime configuration of region {control.cluster}",
        metadata={"region": settings.region, "cluster": control.cluster},
    )
    for name, subject, work, read in (
        ("status", "status", service.status, True),
        ("config-get", "config.get", service.config_get, True),
        ("config-put", "config.put", service.config_put, False),
    ):
        await micro.add_endpoint(
            name=name,
            subject=service.subject(subject),
            handler=partial(service.answer, work=work, read=read),
        )
    logs.event(logger, "serving", subjects=service.subject(">"), store=control.store)
    service.spawn(service.resume())
    service.spawn(service.collect(control.collect_seconds))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await stop_within(client, logger, micro.stop, service.stop, client.drain)
    logs.event(logger, "stopped")
