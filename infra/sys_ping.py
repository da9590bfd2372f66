"""Asking every server at once through the system account: a `$SYS.REQ.SERVER.PING.*` request
is answered by each server that hears it, so the replies are collected for a while rather than
awaited once. Standard library and nats-py only: the control service in the services image and
the program's meta-peer removal both use it."""

from __future__ import annotations

import json
import time
from typing import Any

from nats.aio.client import Client


async def gather(client: Client, subject: str, body: bytes, wait: float) -> list[dict[str, Any]]:
    """Every server's reply to `subject`, collected for `wait` seconds."""
    inbox = client.new_inbox()
    subscription = await client.subscribe(inbox)
    await client.publish(subject, body, reply=inbox)
    replies = []
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await subscription.next_msg(timeout=left)
        except TimeoutError:
            break
        replies.append(json.loads(msg.data))
    await subscription.unsubscribe()
    return replies
