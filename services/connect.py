"""Connecting as one identity: its own certificate, its own reply inbox."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client

from services.health import heartbeat
from services.settings import NatsSettings
from services.tls_files import TlsFiles


async def connect(settings: NatsSettings, logger: logging.Logger) -> Client:
    """Reconnects forever: a service outlives server restarts and gateway blips. While
    connected it keeps its liveness file fresh for the Kubernetes probe (services.health)."""
    client = Client()
    tls = TlsFiles(settings.cert_file, settings.key_file, settings.ca_file)

    async def on_error(error: Exception) -> None:
        logger.warning("nats error", extra={"fields": {"error": str(error)}})

    async def on_disconnect() -> None:
        logger.warning("disconnected from nats")

    async def on_reconnect() -> None:
        logger.info("reconnected", extra={"fields": {"server": str(client.connected_url)}})

    await client.connect(
        servers=[settings.url],
        tls=tls.context,
        tls_hostname=settings.tls_hostname,
        inbox_prefix=f"_INBOX.{settings.identity}".encode(),
        name=f"{settings.identity}@{settings.region}",
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
    )
    loop = asyncio.get_running_loop()
    _tasks.add(loop.create_task(heartbeat(client, settings.health_file)))
    _tasks.add(loop.create_task(tls.follow(logger)))
    return client


# Strong references to the services' background tasks (the loop keeps only weak ones).
_tasks: set[asyncio.Task[None]] = set()
