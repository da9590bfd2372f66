"""Traffic that keeps flowing while a rehearsal operates on the supercluster: calculations
requested from a region's calculators and each answer published to JetStream, on the
requester's own code path (its retry budget, its deduplicating message ids), until stopped."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client

from localnet.region import LocalRegion
from services.calculator import subject
from services.requester import FAILURES, Summary, answer_subject, plan, with_retries
from services.tls_files import TlsFiles


@dataclass
class TrafficSummary:
    region: str
    requested: int = 0
    answered: int = 0
    failed_requests: int = 0
    published: int = 0
    unpublished: int = 0
    retries: int = 0
    disconnects: int = 0
    seconds: float = 0.0
    slowest_ms: float = 0.0
    published_ids: set[str] = field(default_factory=set)

    @property
    def failed(self) -> int:
        return self.failed_requests + self.unpublished

    def line(self) -> str:
        return (
            f"traffic from {self.region}: {self.requested} requested, {self.answered} answered, "
            f"{self.published} published, {self.failed} failed after retries, "
            f"{self.retries} retries, {self.disconnects} client disconnects, slowest "
            f"{self.slowest_ms:.0f} ms, over {self.seconds:.1f} s"
        )


class Traffic:
    """`concurrency` workers in a thread of their own, each requesting and publishing in turn."""

    def __init__(
        self, region: LocalRegion, *, concurrency: int = 4, retry_seconds: float = 60.0
    ) -> None:
        self.region = region
        self.concurrency = concurrency
        self.retry_seconds = retry_seconds
        self.summary = TrafficSummary(region.name)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._error: BaseException | None = None
        self._follow: asyncio.Task[None] | None = None

    def start(self) -> Traffic:
        self._thread.start()
        if not self._ready.wait(timeout=30) or self._error is not None:
            raise RuntimeError(f"traffic from {self.region.name} did not start: {self._error}")
        return self

    def stop(self) -> TrafficSummary:
        self._stop.set()
        self._thread.join(timeout=self.retry_seconds + 60)
        if self._error is not None:
            raise RuntimeError(f"traffic from {self.region.name} failed") from self._error
        return self.summary

    async def _connect(self) -> Client:
        """As the requester connects (services.connect): its files followed, so a rotation's
        new certificate or CA bundle reaches this client without a new connection."""
        cert, key, ca = self.region.client_files("requester")
        tls = TlsFiles(cert, key, ca)
        self._follow = asyncio.get_running_loop().create_task(
            tls.follow(logging.getLogger("traffic"), every=0.5)
        )
        context = tls.context
        client = Client()

        async def disconnected() -> None:
            if not self._stop.is_set():  # closing at the end is not a disconnect
                self.summary.disconnects += 1

        await client.connect(
            servers=[f"tls://{self.region.lb_address}:{self.region.lb_client_port}"],
            tls=context,
            tls_hostname=self.region.spec.endpoint,
            inbox_prefix=b"_INBOX.requester",
            disconnected_cb=disconnected,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
        )
        return client

    async def _run(self) -> None:
        try:
            client = await self._connect()
        except BaseException as error:
            self._error = error
            self._ready.set()
            return
        counter = itertools.count()
        started = time.monotonic()
        self._ready.set()
        try:
            await asyncio.gather(*(self._worker(client, counter) for _ in range(self.concurrency)))
        except BaseException as error:  # reported by stop()
            self._error = error
        finally:
            self.summary.seconds = time.monotonic() - started
            if self._follow is not None:
                self._follow.cancel()
            await client.close()

    async def _worker(self, client: Client, counter: itertools.count[int]) -> None:
        js = client.jetstream()
        retries = Summary()
        run = uuid.uuid4().hex[:8]
        while not self._stop.is_set():
            work = plan(1, next(counter))[0]
            request_id = f"{self.region.name}-{run}-{work.request_id}"
            self.summary.requested += 1
            began = time.perf_counter()
            try:
                reply = await with_retries(
                    self.retry_seconds,
                    retries,
                    lambda w=work: client.request(subject(w.operation), w.payload(), timeout=2),
                )
            except FAILURES:
                self.summary.failed_requests += 1
                continue
            answer: dict[str, Any] = json.loads(reply.data)
            self.summary.answered += 1
            record = {
                "request_id": request_id,
                "op": work.operation,
                "a": work.a,
                "b": work.b,
                "result": answer["result"],
                "served_by": answer["region"],
                "requested_in": self.region.name,
            }
            try:
                await with_retries(
                    self.retry_seconds,
                    retries,
                    lambda r=record: js.publish(
                        answer_subject(r["result"]),
                        json.dumps(r).encode(),
                        timeout=2,
                        headers={"Nats-Msg-Id": r["request_id"]},
                    ),
                )
            except FAILURES:
                self.summary.unpublished += 1
                continue
            self.summary.published += 1
            self.summary.published_ids.add(request_id)
            self.summary.retries = retries.retries
            self.summary.slowest_ms = max(
                self.summary.slowest_ms, (time.perf_counter() - began) * 1000
            )
