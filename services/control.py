"""The control service of one region (seed 003's runtime control, in this product's way): a
NATS Services Framework service on the system account, as the `control` identity, answering

- `supercluster.<cluster>.status`: servers and versions, routes, inbound and outbound gateways,
  the JetStream meta leader and peers, stream placement, the quorum verdict and each server's
  health, all from the servers' own system-account replies;
- `supercluster.<cluster>.config.get`: the region's routes and gateways as its servers run them,
  the runtime override and who changed it;
- `supercluster.<cluster>.config.put`: new routes for the region (or null: the release's own)
  and/or the regions to cut off its gateways (or []: none), validated (a bad request changes
  nothing and names the field), stored where the servers include them (a file, or the region's
  ConfigMap) and applied by reload, with an audit record.

The admin reaches it from APP through a service import, the system identity (read-only) reaches
status and config.get directly; it answers only into those callers' inboxes, never to another
reply subject (one naming an API would make it a deputy).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import nats.errors
import nats.micro
from nats.aio.client import Client
from nats.micro.request import Request

from infra.identities import CONTROL_PREFIX, IMPORT_REPLIES
from infra.runtime_config import (
    PutError,
    Replies,
    applied,
    caller,
    connected_regions,
    effective,
    parse_put,
    pins_for,
    region_servers,
    reply_allowed,
    status,
)
from infra.sys_ping import gather
from services import logs
from services.connect import connect
from services.runtime_store import RuntimeStore, store_from
from services.settings import ControlSettings, NatsSettings

VERSION = "1.0.0"
REPLY_PREFIXES = ("_INBOX.system.", IMPORT_REPLIES.removesuffix(">"))
PINGS = ("varz", "routez", "gatewayz", "jsz", "healthz")


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


class Control:
    def __init__(
        self,
        client: Client,
        cluster: str,
        store: RuntimeStore,
        *,
        reload_by_request: bool,
        logger: logging.Logger,
        gateway_pins: Mapping[str, Sequence[str]] | None = None,
        wait: float = 1.0,
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.store = store
        self.reload_by_request = reload_by_request
        self.logger = logger
        self.gateway_pins = dict(gateway_pins or {})
        self.wait = wait
        self.refused_replies = 0

    def subject(self, endpoint: str) -> str:
        return f"{CONTROL_PREFIX}.{self.cluster}.{endpoint}"

    async def answer(self, request: Request, *, work: Any) -> None:
        reply = request._msg.reply  # the framework's Request does not expose the reply subject
        if not reply_allowed(reply, REPLY_PREFIXES):
            self.refused_replies += 1
            self.logger.warning(
                "request with a reply subject outside the callers' inboxes ignored",
                extra={"fields": {"reply": reply[:80], "refused": self.refused_replies}},
            )
            return
        try:
            answer = await work(request)
        except PutError as error:
            await request.respond_error("400", str(error))
            return
        await request.respond(json.dumps(answer).encode())

    async def status(self, _request: Request) -> dict[str, Any]:
        return status(self.cluster, await ping(self.client, self.wait))

    async def config_get(self, _request: Request) -> dict[str, Any]:
        replies = await ping(self.client, self.wait, ("varz",))
        return effective(replies, self.cluster, self.store.read())

    async def config_put(self, request: Request) -> dict[str, Any]:
        put = parse_put(request.data)
        pinned: tuple[str, ...] = ()
        if put.cut_gateways:
            replies = await ping(self.client, self.wait, ("varz", "gatewayz"))
            pinned = pins_for(
                put, self.cluster, self.gateway_pins, connected_regions(replies, self.cluster)
            )
        who = caller(request.headers)
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        after = applied(self.store.read(), put, who, when, pinned)
        self.store.write(after)
        reloads = await self._reload() if self.reload_by_request else {}
        record = {**after.history[-1], "reloads": reloads}
        logs.event(self.logger, "runtime configuration changed", **record)
        return {
            "applied": record,
            "runtime_routes": list(after.routes) if after.routes is not None else None,
            "cut_gateways": list(after.cut_gateways),
            "reload": "by request" if self.reload_by_request else "by the chart's reloader",
        }

    async def _reload(self) -> dict[str, str]:
        """Each of the region's servers reloads its configuration (the system account's
        `$SYS.REQ.SERVER.<id>.RELOAD`); returns each one's outcome. A reload that removes a
        running server's route closes connections the next request may need, so a server
        that does not answer is asked again while the routes re-form."""
        servers = region_servers(await ping(self.client, self.wait, ("varz",)), self.cluster)
        outcomes = {}
        for name, server_id in sorted(servers.items()):
            outcomes[name] = await self._reload_one(server_id)
        return outcomes

    async def _reload_one(self, server_id: str, tries: int = 5) -> str:
        for attempt in range(1, tries + 1):
            try:
                reply = await self.client.request(
                    f"$SYS.REQ.SERVER.{server_id}.RELOAD", b"", timeout=self.wait * 2
                )
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                if attempt < tries:
                    await asyncio.sleep(self.wait / 2)
                continue
            error = json.loads(reply.data).get("error")
            return f"failed: {error.get('description')}" if error else "reloaded"
        return (
            f"no answer after {tries} tries: the change is stored and takes effect at this "
            "server's next reload or restart"
        )


async def serve(settings: NatsSettings, control: ControlSettings) -> None:
    logger = logs.setup(f"control-{control.cluster}", settings.region)
    client = await connect(settings, logger)
    service = Control(
        client,
        control.cluster,
        store_from(control.store),
        reload_by_request=control.reload == "request",
        logger=logger,
        gateway_pins=control.gateway_pins,
    )
    micro = await nats.micro.add_service(
        client,
        name=f"control-{control.cluster}",
        version=VERSION,
        description=f"status and runtime configuration of region {control.cluster}",
        metadata={"region": settings.region, "cluster": control.cluster},
    )
    for name, subject, work in (
        ("status", "status", service.status),
        ("config-get", "config.get", service.config_get),
        ("config-put", "config.put", service.config_put),
    ):
        await micro.add_endpoint(
            name=name,
            subject=service.subject(subject),
            handler=partial(service.answer, work=work),
        )
    logs.event(logger, "serving", subjects=service.subject(">"), store=control.store)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await micro.stop()
    await client.drain()
    logs.event(logger, "stopped")
