"""Connecting as one identity: its own certificate, its own reply inbox."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats.errors
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


# How long a service may take to stop gracefully (stop serving, drain). nats-py waits up to 10 s
# for the answer to each subscription's flush and up to 30 s (drain_timeout) for the drain: with
# its servers silent or gone (a frozen node, or every server stopping with it when the local demo
# is killed) a stop would outlast the kubelet's 30 s grace and the demo's wait. In-flight
# requests take milliseconds; what is not answered within this is redelivered or retried.
STOP_SECONDS = 5.0
# Closing a TLS connection waits for the server's close_notify (30 s in asyncio), which a silent
# server never sends; a healthy one answers within milliseconds.
CLOSE_SECONDS = 1.0


async def _within(work: Awaitable[None], seconds: float) -> tuple[bool, BaseException | None]:
    """(finished, its error) of `work` run as a task for at most `seconds`. Not a cancel-scoped
    await: nats-py's drain and close swallow a CancelledError and carry on (a flush, a TLS
    close), so an unfinished task is cancelled and left for the process's end
    (services/__main__.py)."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        return False, None
    return True, task.exception()


async def stop_within(
    client: Client,
    logger: logging.Logger,
    *steps: Callable[[], Awaitable[None]],
    seconds: float = STOP_SECONDS,
) -> None:
    """Run the graceful stop `steps` in order within `seconds`, then close the connection if they
    did not and can: the stop ends within `seconds` + CLOSE_SECONDS, also when no server answers
    or none is left."""

    async def graceful() -> None:
        for step in steps:
            await step()

    finished, error = await _within(graceful(), seconds)
    if not finished:
        logger.warning(
            "graceful stop took too long; leaving the connection",
            extra={"fields": {"seconds": seconds}},
        )
        return
    if error is not None and not isinstance(error, nats.errors.Error):
        raise error
    if error is not None:
        logger.warning(
            "graceful stop failed; closing",
            extra={"fields": {"error": str(error) or type(error).__name__}},
        )
    if client.is_closed:
        return
    finished, error = await _within(client.close(), CLOSE_SECONDS)
    if not finished or error is not None:
        # Closing while reconnecting can also fail inside nats-py (a write to a closed TLS
        # transport); the process ends either way.
        logger.warning(
            "the connection did not close; leaving it",
            extra={"fields": {"error": str(error) if error else "no answer"}},
        )


# Strong references to the services' background tasks (the loop keeps only weak ones).
_tasks: set[asyncio.Task[None]] = set()
