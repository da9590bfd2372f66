"""Confused deputies inside APP, the control of tests/test_deputies.py, on the real
supercluster (the `control_cluster` fixture, from east): the targets the attacks aim at are live.

The control, `test_deputies_inside_app_delete_purge_and_write`: the same deputies inside APP
(the admin's ack confirmation, publish ack, pull status and `+NXT` status), aimed at a scratch
stream, its consumer and another key of the bucket, purge, write, delete and delete: the targets
are live, and an empty status or confirmation passes as the empty body of a delete or purge.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from infra.jetstream import (
    ConsumerSpec,
    StreamSpec,
    consumer_request,
    kv_stream_name,
    stream_request,
)
from infra.jetstream_ops import JetStreamAdmin, JetStreamApiError
from localnet.demo import Supercluster
from localnet.region import LocalRegion
from tests.deputies_kit import (
    STATUS_ONLY,
    as_admin,
    decoded,
    deputies_bucket,
    exists,
    last_message,
    pull,
    until,
)

pytestmark = pytest.mark.live

CONTROL_KEY = "control"
SCRATCH = "DEPUTIES_SCRATCH"


@pytest.fixture(scope="module")
def east(control_cluster: Supercluster) -> LocalRegion:
    return control_cluster.regions["east"]


@pytest.fixture(scope="module")
def bucket(east: LocalRegion) -> Iterator[str]:
    with deputies_bucket(east) as name:
        yield name


def test_deputies_inside_app_delete_purge_and_write(east: LocalRegion, bucket: str) -> None:
    """The admin, JetStream's one direct client, aims JetStream's own answers at a scratch
    stream: an ack confirmation purges it, a publish ack is written as a key's value, a pull's
    status deletes a consumer, `+NXT`'s status deletes the stream."""

    async def control(js: JetStreamAdmin) -> None:
        admin = js.client
        subject = "deputies.scratch.x"
        spec = StreamSpec(name=SCRATCH, subjects=["deputies.scratch.>"], replicas=1)
        await js.api(f"STREAM.CREATE.{SCRATCH}", stream_request(spec, east.name, 1))
        try:
            for name in ("c", "d"):
                config = consumer_request(ConsumerSpec(stream=SCRATCH, name=name))
                await js.api(
                    f"CONSUMER.CREATE.{SCRATCH}.{name}", {"stream_name": SCRATCH, "config": config}
                )
            for n in range(2):
                ack = await admin.request(subject, b"scratch %d" % n, timeout=5)
                assert json.loads(ack.data)["seq"] == n + 1, ack.data

            async def messages() -> int:
                return int((await js.stream_info(SCRATCH))["state"]["messages"])

            pulled = await pull(admin, "admin", f"$JS.API.CONSUMER.MSG.NEXT.{SCRATCH}.c")
            await admin.publish(pulled.reply, b"+ACK", reply=f"$JS.API.STREAM.PURGE.{SCRATCH}")

            async def purged() -> bool:
                return await messages() == 0

            await until(purged, "the ack confirmation purged the scratch stream")

            control_key = f"$KV.{bucket}.{CONTROL_KEY}"
            await admin.publish(subject, b"scratch 2", reply=control_key)

            async def written() -> bool:
                try:
                    value = await last_message(js, kv_stream_name(bucket), control_key)
                except JetStreamApiError:
                    return False
                return bool(json.loads(decoded(value, "data")) == {"stream": SCRATCH, "seq": 3})

            await until(written, "the publish ack written as the control key's value")

            # 409: the one pending message is larger than max_bytes.
            await admin.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{SCRATCH}.d",
                STATUS_ONLY,
                reply=f"$JS.API.CONSUMER.DELETE.{SCRATCH}.c",
            )

            async def consumer_deleted() -> bool:
                return not await exists(js, f"CONSUMER.INFO.{SCRATCH}.c")

            await until(consumer_deleted, "the pull status deleted consumer c")

            # 404: nothing is pending after the one pulled.
            pulled = await pull(admin, "admin", f"$JS.API.CONSUMER.MSG.NEXT.{SCRATCH}.d")
            await admin.publish(
                pulled.reply, b"+NXT " + STATUS_ONLY, reply=f"$JS.API.STREAM.DELETE.{SCRATCH}"
            )

            async def stream_deleted() -> bool:
                return not await exists(js, f"STREAM.INFO.{SCRATCH}")

            await until(stream_deleted, "the +NXT status deleted the scratch stream")
        finally:
            if await exists(js, f"STREAM.INFO.{SCRATCH}"):
                await js.api(f"STREAM.DELETE.{SCRATCH}")

    asyncio.run(as_admin(east, control))
