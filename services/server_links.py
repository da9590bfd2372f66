"""A connection straight to each server of the region, for what the control service asks one
server: reload, and report its configuration, routes and gateways. A request over the service's
own connection reaches another server only over a route between the two, and a change of
routes is exactly what may close that route; asked directly, every running server answers
whatever its routes, so a reload, its verification and a rollback never depend on the routes
they change. In the clouds a server is its pod's name in the headless Service
(`tls://{pod}.<cluster>-headless.<namespace>.svc:4222`, a name every server certificate
carries); locally, its own port. A server with no known address is asked over the service's
own connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import nats.errors
from nats.aio.client import Client

from infra.runtime_checks import ServerUrl
from services.connect import CLOSE_SECONDS
from services.settings import NatsSettings
from services.tls_files import TlsFiles


class ServerLinks:
    def __init__(self, settings: NatsSettings, urls: ServerUrl, logger: logging.Logger) -> None:
        self.settings = settings
        self.urls = urls
        self.logger = logger
        self._clients: dict[str, Client] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._connecting: dict[str, asyncio.Lock] = {}

    async def _client(self, pod: str, seconds: float) -> Client | None:
        """The connection to `pod`'s server, made once for the requests that ask at once
        (within `seconds`, or 2 if less)."""
        if self.urls(pod) is None:
            return None
        async with self._connecting.setdefault(pod, asyncio.Lock()):
            client = self._clients.get(pod)
            if client is not None and client.is_connected:
                return client
            if client is not None:
                del self._clients[pod]
                self._retire(client)
            return await self._connect(pod, min(2.0, seconds))

    async def _connect(self, pod: str, seconds: float) -> Client | None:
        url = self.urls(pod)
        settings = self.settings
        tls = TlsFiles(settings.cert_file, settings.key_file, settings.ca_file)
        try:
            client = await nats.connect(
                servers=[str(url)],
                tls=tls.context,
                tls_hostname=settings.tls_hostname,
                inbox_prefix=f"_INBOX.{settings.identity}".encode(),
                name=f"{settings.identity}@{settings.region}->{pod}",
                allow_reconnect=False,
                connect_timeout=seconds,
                max_reconnect_attempts=0,
            )
        except (OSError, nats.errors.Error, TimeoutError) as error:
            self.logger.warning(
                "no direct connection to a server",
                extra={"fields": {"pod": pod, "error": str(error)}},
            )
            return None
        self._clients[pod] = client
        return client

    async def request(
        self, pod: str, subject: str, timeout: float, body: bytes = b""
    ) -> dict[str, Any] | None:
        """The server's reply over a direct connection; None when there is none or it did
        not answer within `timeout`."""
        if timeout <= 0:
            return None
        began = time.monotonic()
        client = await self._client(pod, timeout)
        left = timeout - (time.monotonic() - began)
        if client is None or left <= 0:
            return None
        try:
            msg = await client.request(subject, body, timeout=left)
        except (nats.errors.Error, TimeoutError, OSError):
            if self._clients.get(pod) is client:
                del self._clients[pod]
            self._retire(client)
            return None
        found: dict[str, Any] = json.loads(msg.data)
        return found

    def _retire(self, client: Client) -> None:
        """Close a connection that failed, in the background: closing one to a silent server
        waits for it (nats-py's flush, then the TLS close_notify asyncio waits 30 s for), which
        the request that found it silent must not."""
        task = asyncio.ensure_future(_close_within(client))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(_close_within(c) for c in clients), *self._closing)


async def _close_within(client: Client, seconds: float = CLOSE_SECONDS) -> None:
    """Closed, or given up on after `seconds` (a silent server never answers the close)."""

    async def close() -> None:
        with contextlib.suppress(nats.errors.Error, OSError):
            await client.close()

    task = asyncio.ensure_future(close())
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
