"""JetStream operations over nats-py: connect through a region's endpoint with the admin
certificate (retrying until the load balancer answers), and create, read, update and delete
streams (KV buckets are streams) and consumers through the JetStream API.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import nats
from nats.aio.client import Client

from infra.jetstream_changes import Changes, consumer_changes, managed_view, stream_changes

STREAM_NOT_FOUND = 10059
CONSUMER_NOT_FOUND = 10014
_RETRY_FIRST_DELAY = 0.5
_RETRY_MAX_DELAY = 15.0
_ATTEMPT_SECONDS = 10.0


@dataclass(frozen=True)
class Connection:
    """Where and as whom to reach JetStream. The PEMs arrive as (secret) resource inputs."""

    url: str
    ca_pem: str
    cert_pem: str
    key_pem: str
    tls_hostname: str | None = None
    timeout_seconds: float = 600.0
    # The identity's own reply inbox, where its permissions allow only that (control).
    inbox_prefix: str = "_INBOX"
    # Refresh and delete: how long an endpoint may stay silent before its region counts as
    # unreachable (create and update wait `timeout_seconds` for a new load balancer).
    unreachable_seconds: float = 20.0

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, Any]) -> Connection:
        return cls(
            url=str(inputs["url"]),
            ca_pem=str(inputs["ca_pem"]),
            cert_pem=str(inputs["cert_pem"]),
            key_pem=str(inputs["key_pem"]),
            tls_hostname=inputs.get("tls_hostname") or None,
            timeout_seconds=float(inputs.get("timeout_seconds") or 600),
            inbox_prefix=str(inputs.get("inbox_prefix") or "_INBOX"),
            unreachable_seconds=float(inputs.get("unreachable_seconds") or 20),
        )

    def for_teardown(self) -> Connection:
        """For refresh and delete, which must not wait minutes on a region that is gone."""
        return dataclasses.replace(self, timeout_seconds=self.unreachable_seconds)


class JetStreamUnreachableError(RuntimeError):
    """The endpoint did not answer within the connection's time limit."""


class JetStreamApiError(RuntimeError):
    def __init__(self, subject: str, error: Mapping[str, Any]) -> None:
        self.code = int(error.get("code", 0))
        self.err_code = int(error.get("err_code", 0))
        self.description = str(error.get("description", "unknown error"))
        super().__init__(f"{subject}: {self.description} (code {self.code}/{self.err_code})")


class ObjectDiffersError(RuntimeError):
    """An object of that name exists with another configuration and adoption was not asked for."""


def tls_context(connection: Connection) -> ssl.SSLContext:
    """Verifies the server against the supercluster CA and presents the admin certificate.
    The key touches disk only inside a private temporary directory, for as long as loading
    takes, because Python's ssl module loads certificate chains from files only."""
    context = ssl.create_default_context(cadata=connection.ca_pem)
    with tempfile.TemporaryDirectory() as directory:
        cert, key = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
        for path, pem in ((cert, connection.cert_pem), (key, connection.key_pem)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                handle.write(pem)
        context.load_cert_chain(cert, key)
    return context


async def connect(
    connection: Connection,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Client:
    """Connect, retrying with exponential backoff until `timeout_seconds` have passed: right
    after a deploy the load balancer can take minutes to route traffic."""
    deadline = clock() + connection.timeout_seconds
    delay, attempts = _RETRY_FIRST_DELAY, 0
    context = tls_context(connection)
    seen: list[Exception] = []

    async def remember(error: Exception) -> None:  # instead of nats-py's traceback on stderr
        seen.append(error)

    while True:
        attempts += 1
        client = Client()
        try:
            # nats-py 2.x keeps retrying a refused first connect even without reconnects;
            # each attempt is bounded here.
            await asyncio.wait_for(
                client.connect(
                    servers=[connection.url],
                    tls=context,
                    tls_hostname=connection.tls_hostname,
                    inbox_prefix=connection.inbox_prefix.encode(),
                    allow_reconnect=False,
                    max_reconnect_attempts=0,
                    connect_timeout=5,
                    error_cb=remember,
                ),
                timeout=max(1.0, min(_ATTEMPT_SECONDS, deadline - clock())),
            )
            return client
        except Exception as caught:
            error = seen[-1] if isinstance(caught, TimeoutError) and seen else caught
            await _discard(client)
            remaining = deadline - clock()
            if remaining <= 0:
                raise JetStreamUnreachableError(
                    f"could not reach NATS at {connection.url} within "
                    f"{connection.timeout_seconds:g} s ({attempts} attempts); last error: "
                    f"{type(error).__name__}: {error}"
                ) from error
            await sleep(min(delay, remaining))
            delay = min(delay * 2, _RETRY_MAX_DELAY)


async def _discard(client: Client) -> None:
    """A failed connect can leave the transport open (the load balancer accepted, the server
    behind it did not answer); close what there is."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), timeout=2)
    transport = getattr(client, "_transport", None)
    for name in ("_io_writer", "_bare_io_writer"):
        writer = getattr(transport, name, None)
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()


class JetStreamAdmin:
    """The JetStream API as JSON requests; waits out a JetStream still electing its leader."""

    def __init__(self, client: Client, timeout_seconds: float = 60.0) -> None:
        self.client = client
        self.timeout_seconds = timeout_seconds

    async def api(self, subject: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        payload = json.dumps(body).encode() if body is not None else b""
        deadline = time.monotonic() + self.timeout_seconds
        delay = _RETRY_FIRST_DELAY
        while True:
            try:
                reply = await self.client.request(f"$JS.API.{subject}", payload, timeout=5)
                answer: dict[str, Any] = json.loads(reply.data)
                error = answer.get("error")
                if error and int(error.get("code", 0)) == 503:
                    raise TimeoutError(error.get("description"))
                if error:
                    raise JetStreamApiError(subject, error)
                return answer
            except (TimeoutError, nats.errors.TimeoutError, nats.errors.NoRespondersError):
                if time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_DELAY)

    async def stream_config(self, name: str) -> dict[str, Any] | None:
        try:
            info = await self.api(f"STREAM.INFO.{name}")
        except JetStreamApiError as error:
            if error.err_code == STREAM_NOT_FOUND:
                return None
            raise
        config: dict[str, Any] = info["config"]
        return config

    async def consumer_config(self, stream: str, name: str) -> dict[str, Any] | None:
        try:
            info = await self.api(f"CONSUMER.INFO.{stream}.{name}")
        except JetStreamApiError as error:
            if error.err_code in (CONSUMER_NOT_FOUND, STREAM_NOT_FOUND):
                return None
            raise
        config: dict[str, Any] = info["config"]
        return config

    async def stream_info(self, name: str) -> dict[str, Any]:
        return await self.api(f"STREAM.INFO.{name}")


Kind = Literal["stream", "consumer"]


@dataclass(frozen=True)
class Target:
    """What one resource manages: a stream (KV buckets are streams) or a consumer."""

    kind: Kind
    request: dict[str, Any]
    stream: str = ""

    @property
    def name(self) -> str:
        return str(self.request["name"])

    def changes(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> Changes:
        return stream_changes(old, new) if self.kind == "stream" else consumer_changes(old, new)

    async def read(self, admin: JetStreamAdmin) -> dict[str, Any] | None:
        actual = (
            await admin.stream_config(self.name)
            if self.kind == "stream"
            else await admin.consumer_config(self.stream, self.name)
        )
        return None if actual is None else managed_view(self.request, actual)

    async def write(self, admin: JetStreamAdmin, *, update: bool) -> None:
        if self.kind == "stream":
            verb = "UPDATE" if update else "CREATE"
            await admin.api(f"STREAM.{verb}.{self.name}", self.request)
        else:
            await admin.api(
                f"CONSUMER.CREATE.{self.stream}.{self.name}",
                {
                    "stream_name": self.stream,
                    "config": self.request,
                    "action": "update" if update else "create",
                },
            )

    async def delete(self, admin: JetStreamAdmin) -> None:
        subject = (
            f"STREAM.DELETE.{self.name}"
            if self.kind == "stream"
            else f"CONSUMER.DELETE.{self.stream}.{self.name}"
        )
        try:
            await admin.api(subject)
        except JetStreamApiError as error:
            if error.err_code not in (STREAM_NOT_FOUND, CONSUMER_NOT_FOUND):
                raise


async def ensure(admin: JetStreamAdmin, target: Target, *, adopt: bool) -> str:
    """Create the object, or adopt an identical existing one. A different existing one is an
    error unless `adopt` is set; then it is updated (or refused, if only a replacement could
    make it match). Returns what was done: created, adopted or updated."""
    existing = await target.read(admin)
    if existing is None:
        await target.write(admin, update=False)
        return "created"
    changes = target.changes(existing, target.request)
    if not changes.any:
        return "adopted"
    if not adopt:
        raise ObjectDiffersError(
            f"{target.kind} {target.name!r} already exists with other settings "
            f"({', '.join(changes.update + changes.replace)}); set adopt: true to take it over"
        )
    if changes.replace:
        raise ObjectDiffersError(
            f"{target.kind} {target.name!r} exists and differs in what the server cannot "
            f"update ({', '.join(changes.replace)}); delete it first or match its settings"
        )
    await target.write(admin, update=True)
    return "updated"


async def with_admin(
    connection: Connection, work: Callable[[JetStreamAdmin], Awaitable[Any]]
) -> Any:
    client = await connect(connection)
    try:
        return await work(JetStreamAdmin(client, timeout_seconds=connection.timeout_seconds))
    finally:
        await client.close()
