"""Driving a region's control service from outside, for the outsider's attacks
(tests/test_control_outsider.py): a put through one chosen server, a server paused, and a put's
steps run in the test process as the service runs them, to stop or disturb it between steps."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from infra.runtime_checks import server_urls
from localnet.clients import connect_as
from localnet.demo import Supercluster
from localnet.ports import LOOPBACK
from localnet.region import LocalRegion
from services.config_check import ConfigChecker
from services.control import ping
from services.control_put import PutTransaction, Timing
from services.runtime_store import FileStore
from services.server_links import ServerLinks
from services.settings import NatsSettings


def state_of(region: LocalRegion) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((region.runtime_dir / "state.json").read_text())
    return found


async def put_at(region: LocalRegion, body: Any, server: int = 0) -> tuple[bool, Any]:
    """A put as the admin, through one server (not the load balancer, which may pick a paused
    one); (True, answer) or (False, the service's error)."""
    client = await connect_as(region, "admin", server=server)
    try:
        message = await client.request(
            f"supercluster.{region.name}.config.put", json.dumps(body).encode(), timeout=90
        )
    finally:
        await client.close()
    headers = message.headers or {}
    if headers.get("Nats-Service-Error-Code"):
        return False, headers.get("Nats-Service-Error")
    return True, json.loads(message.data)


def service_server(region: LocalRegion) -> int | None:
    """The server the region's control service is connected to (its own connection, not its
    links to each server)."""
    for ordinal in range(region.spec.replicas):
        connz = region.monitor(ordinal, "connz")
        if any(c.get("name") == f"control@{region.name}" for c in connz.get("connections") or []):
            return ordinal
    return None


def bystander(region: LocalRegion) -> int:
    """A server neither this test's clients (on server 0) nor the control service use."""
    return 1 if service_server(region) == 2 else 2


@contextmanager
def paused(region: LocalRegion, ordinal: int) -> Iterator[None]:
    """The server stopped (SIGSTOP): it holds its connections and answers nothing."""
    process = region.processes[ordinal]
    assert process is not None
    os.killpg(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGCONT)


@asynccontextmanager
async def transaction(
    cluster: Supercluster, region: LocalRegion, timing: Timing
) -> AsyncIterator[PutTransaction]:
    """A put's steps in this process, as the region's control service runs them (its identity,
    its store, its connection straight to each server), to stop or disturb it between steps."""
    client = await connect_as(region, "control", server=0, allow_reconnect=True)
    cert, key, ca = region.client_files("control")
    settings = NatsSettings(
        url=f"tls://{LOOPBACK}:{region.ports[0].client}",
        ca_file=ca,
        cert_file=cert,
        key_file=key,
        tls_hostname=region.spec.endpoint,
        identity="control",
        region=region.name,
        health_file=Path(os.devnull),
    )
    urls = {
        region.spec.names.pod(i): f"tls://{LOOPBACK}:{p.client}" for i, p in enumerate(region.ports)
    }
    logger = logging.getLogger("control-outsider-test")
    links = ServerLinks(settings, server_urls(json.dumps(urls)), logger)
    found = PutTransaction(
        client,
        region.name,
        store=FileStore(region.runtime_dir),
        checker=ConfigChecker(region.name),
        ping=lambda kinds: ping(client, 1.0, kinds),
        logger=logger,
        gateway_pins={n: [r.gateway_pin()] for n, r in cluster.regions.items()},
        timing=timing,
        links=links,
    )
    try:
        yield found
    finally:
        await links.close()
        await client.close()


def outcome_of(region: LocalRegion, change: str) -> str:
    (entry,) = [h for h in state_of(region)["history"] if h.get("change") == change]
    return str(entry["outcome"])
