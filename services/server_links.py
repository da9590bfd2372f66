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

import contextlib
import json
import logging
from typing import Any

import nats.errors
from nats.aio.client import Client

from infra.runtime_checks import ServerUrl
from services.settings import NatsSettings
from services.tls_files import TlsFiles


class ServerLinks:
    def __init__(self, settings: NatsSettings, urls: ServerUrl, logger: logging.Logger) -> None:
        self.settings = settings
        self.urls = urls
        self.logger = logger
        self._clients: dict[str, Client] = {}

    async def _client(self, pod: str) -> Client | None:
        url = self.urls(pod)
        if url is None:
            return None
        client = self._clients.get(pod)
        if client is not None and client.is_connected:
            return client
        settings = self.settings
        tls = TlsFiles(settings.cert_file, settings.key_file, settings.ca_file)
        try:
            client = await nats.connect(
                servers=[url],
                tls=tls.context,
                tls_hostname=settings.tls_hostname,
                inbox_prefix=f"_INBOX.{settings.identity}".encode(),
                name=f"{settings.identity}@{settings.region}->{pod}",
                allow_reconnect=False,
                connect_timeout=2,
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

    async def request(self, pod: str, subject: str, timeout: float) -> dict[str, Any] | None:
        """The server's reply over a direct connection; None when there is none or it did
        not answer."""
        client = await self._client(pod)
        if client is None:
            return None
        try:
            msg = await client.request(subject, b"", timeout=timeout)
        except (nats.errors.Error, TimeoutError, OSError):
            self._clients.pop(pod, None)
            await _quietly_close(client)
            return None
        found: dict[str, Any] = json.loads(msg.data)
        return found

    async def close(self) -> None:
        for client in self._clients.values():
            await _quietly_close(client)
        self._clients.clear()


async def _quietly_close(client: Client) -> None:
    with contextlib.suppress(nats.errors.Error, OSError):
        await client.close()
