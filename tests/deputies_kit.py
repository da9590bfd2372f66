"""What the confused-deputy tests share (tests/test_deputies.py, the attacks, and
tests/test_deputies_control.py, the control): the targets in APP, the KV bucket holding the key
they aim at, and the admin's probes."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from nats.aio.client import Client
from nats.aio.msg import Msg

from infra.identities import ANSWERS_STREAM, RECORDER_CONSUMER, IdentityName, identity
from infra.jetstream import KvSpec, kv_request, kv_stream_name
from infra.jetstream_ops import JetStreamAdmin, JetStreamApiError
from localnet.clients import connect_as
from localnet.demo import Supercluster
from localnet.region import LocalRegion

T = TypeVar("T")

BUCKET = "deputies"
KEY = "target"
NEXT = f"$JS.API.CONSUMER.MSG.NEXT.{ANSWERS_STREAM}.{RECORDER_CONSUMER}"
# A pull request answered only by a status: 409 when the next message is larger than one byte
# (it is not delivered), 404 when nothing is pending.
STATUS_ONLY = b'{"batch": 1, "max_bytes": 1, "no_wait": true}'
ONE_MESSAGE = b'{"batch": 1, "expires": 2000000000}'
TARGETS = {
    "STREAM.DELETE": f"$JS.API.STREAM.DELETE.{ANSWERS_STREAM}",
    "STREAM.PURGE": f"$JS.API.STREAM.PURGE.{ANSWERS_STREAM}",
    "CONSUMER.DELETE": f"$JS.API.CONSUMER.DELETE.{ANSWERS_STREAM}.{RECORDER_CONSUMER}",
    "KV key": f"$KV.{BUCKET}.{KEY}",
}
EVIDENCE_SECONDS = 5.0


@contextmanager
def deputies_bucket(east: LocalRegion) -> Iterator[str]:
    """A KV bucket in east (the demo declares none) holding the key the attacks aim at."""

    async def create(js: JetStreamAdmin) -> None:
        request = kv_request(KvSpec(bucket=BUCKET, replicas=1), east.name, east.spec.replicas)
        await js.api(f"STREAM.CREATE.{kv_stream_name(BUCKET)}", request)
        put = await js.client.request(TARGETS["KV key"], b"original", timeout=5)
        assert json.loads(put.data)["stream"] == kv_stream_name(BUCKET), put.data

    async def delete(js: JetStreamAdmin) -> None:
        await js.api(f"STREAM.DELETE.{kv_stream_name(BUCKET)}")

    asyncio.run(as_admin(east, create))
    try:
        yield BUCKET
    finally:
        asyncio.run(as_admin(east, delete))


async def as_admin(region: LocalRegion, work: Callable[[JetStreamAdmin], Awaitable[T]]) -> T:
    client = await connect_as(region, "admin")
    try:
        return await work(JetStreamAdmin(client, timeout_seconds=20))
    finally:
        await client.close()


async def exists(js: JetStreamAdmin, info_subject: str) -> bool:
    try:
        await js.api(info_subject)
    except JetStreamApiError as error:
        if error.code == 404:
            return False
        raise
    return True


async def last_message(js: JetStreamAdmin, stream: str, subject: str) -> dict[str, Any]:
    """The stream's last message on `subject` (sequence, time, data)."""
    found = await js.api(f"STREAM.MSG.GET.{stream}", {"last_by_subj": subject})
    message: dict[str, Any] = found["message"]
    return message


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + EVIDENCE_SECONDS
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {EVIDENCE_SECONDS:g} s: {what}")
        await asyncio.sleep(0.02)


async def pull(client: Client, who: IdentityName, next_subject: str) -> Msg:
    """One message, pulled as a client pulls it into its own inbox. JetStream delivers it under
    the stream's subject, which a request's reply matching would not recognise, so the inbox
    is subscribed for it."""
    inbox = f"{identity(who).inbox_prefix}.deputies.{uuid.uuid4().hex}"
    delivered: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()

    async def on_message(msg: Msg) -> None:
        if not delivered.done():
            delivered.set_result(msg)

    subscription = await client.subscribe(inbox, cb=on_message)
    try:
        await client.publish(next_subject, ONE_MESSAGE, reply=inbox)
        msg = await asyncio.wait_for(delivered, EVIDENCE_SECONDS)
    finally:
        await subscription.unsubscribe()
    assert msg.reply.startswith("$JS.ACK."), (msg.headers, msg.data)
    return msg


def decoded(message: dict[str, Any], part: Literal["data", "hdrs"]) -> bytes:
    return base64.b64decode(message.get(part) or "")


class ServerLogs:
    """What every server of the supercluster logs from the last mark on."""

    def __init__(self, cluster: Supercluster) -> None:
        self.paths = [
            region.workdir / region.spec.names.pod(ordinal) / "server.log"
            for region in cluster.regions.values()
            for ordinal in range(region.spec.replicas)
        ]
        self.offsets = dict.fromkeys(self.paths, 0)
        self.mark()

    def mark(self) -> None:
        self.offsets = {path: path.stat().st_size for path in self.paths}

    def lines(self) -> list[str]:
        lines = []
        for path in self.paths:
            with path.open("rb") as handle:
                handle.seek(self.offsets[path])
                lines += handle.read().decode(errors="replace").splitlines()
        return lines
