"""The requester: many calculations in flight (bounded), retried on no-responders and timeouts
with backoff for up to RETRY_SECONDS, each answer published to JetStream with a message id (so a
retried publish is deduplicated), then a summary that counts what could not be published.

Seed 001's requester sent one request at a time with a 2 s timeout and gave up on the first
error; this one keeps CONCURRENCY requests in flight and loses none to a transient failure.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from infra.identities import ANSWER_SUBJECTS
from services import logs, metrics
from services.calculator import OPERATIONS, subject
from services.settings import NatsSettings, RequesterSettings

SIGNIFICANT, THROWAWAY = ANSWER_SUBJECTS
# Failures worth retrying: nobody answering yet (no responders, or no stream reachable for a
# JetStream publish, e.g. while the link to the stream's region is down), JetStream's 503 while
# a stream or the meta group elects a leader, and timeouts.
RETRYABLE = (
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    TimeoutError,
)
# JetStream's 409 "duplicate message id is in process" (JSStreamDuplicateMessageConflict,
# nats-server v2.14.2 jetstream_batching.go): a retry of a publish whose first attempt is
# still being stored (seen when a partition delays it); the next retry gets its ack.
IN_PROCESS = 10158
# What a caller counts as failed once retrying is over: the retryable failures whose budget
# is spent, and JetStream's refusals.
FAILURES = (*RETRYABLE, nats.js.errors.APIError)
_FIRST_BACKOFF = 0.05
_MAX_BACKOFF = 2.0


def answer_subject(result: float) -> str:
    """Seed 001's rule: a result above 1 is significant."""
    return SIGNIFICANT if result > 1 else THROWAWAY


@dataclass(frozen=True)
class Planned:
    request_id: str
    operation: str
    a: float
    b: float

    def payload(self) -> bytes:
        return json.dumps({"a": self.a, "b": self.b}).encode()


def plan(count: int, seed: int) -> list[Planned]:
    """Deterministic work for a given seed; the ids make republishing idempotent."""
    rng = random.Random(seed)
    namespace = uuid.UUID(int=seed)
    return [
        Planned(
            request_id=str(uuid.uuid5(namespace, str(i))),
            operation=rng.choice(sorted(OPERATIONS)),
            a=float(rng.randint(0, 100)),
            b=float(rng.randint(1, 100)),
        )
        for i in range(count)
    ]


@dataclass
class Summary:
    requested: int = 0
    answered: int = 0
    refused: int = 0
    failed: int = 0
    published: int = 0
    # Answered but not taken by JetStream within the retry budget; each is logged whole
    # ("not published", with its record) so it can be published again.
    unpublished: int = 0
    duplicates: int = 0
    retries: int = 0
    seconds: float = 0.0
    served_by: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "requested": self.requested,
            "answered": self.answered,
            "refused": self.refused,
            "failed": self.failed,
            "published": self.published,
            "unpublished": self.unpublished,
            "duplicates": self.duplicates,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
            "served_by": dict(self.served_by),
            "latency_ms_p50": round(statistics.median(ordered), 2) if ordered else None,
            "latency_ms_p99": round(ordered[int(len(ordered) * 0.99) - 1], 2) if ordered else None,
        }


def retryable(error: BaseException) -> bool:
    return isinstance(error, RETRYABLE) or (
        isinstance(error, nats.js.errors.APIError) and error.err_code == IN_PROCESS
    )


async def with_retries(budget_seconds: float, summary: Summary, call: Any) -> Any:
    """`call()` until it succeeds, retrying RETRYABLE failures with jittered backoff for up to
    `budget_seconds`; the last failure is raised once the budget is spent."""
    deadline = time.monotonic() + budget_seconds
    delay = _FIRST_BACKOFF
    while True:
        try:
            return await call()
        except FAILURES as error:
            if not retryable(error):
                raise
            pause = delay * (0.5 + random.random())
            if time.monotonic() + pause > deadline:
                raise
            summary.retries += 1
            await asyncio.sleep(pause)
            delay = min(delay * 2, _MAX_BACKOFF)


async def run(client: Client, settings: NatsSettings, requester: RequesterSettings) -> Summary:
    js = client.jetstream()
    summary = Summary(requested=requester.requests)
    slots = asyncio.Semaphore(requester.concurrency)
    logger = logs.setup("requester", settings.region)
    region = settings.region
    metrics.requester_ready(region)

    async def one(work: Planned) -> None:
        async with slots:
            started = time.perf_counter()
            try:
                reply = await with_retries(
                    requester.retry_seconds,
                    summary,
                    lambda: client.request(
                        subject(work.operation), work.payload(), timeout=requester.timeout_seconds
                    ),
                )
            except FAILURES:
                summary.failed += 1
                metrics.REQUESTER_ERRORS.labels(region, work.operation, "failed").inc()
                return
            seconds = time.perf_counter() - started
            summary.latencies_ms.append(seconds * 1000)
            if reply.headers and "Nats-Service-Error-Code" in reply.headers:
                summary.refused += 1
                metrics.REQUESTER_ERRORS.labels(region, work.operation, "refused").inc()
                return
            answer = json.loads(reply.data)
            summary.answered += 1
            summary.served_by[answer["region"]] += 1
            metrics.REQUESTER_ANSWERS.labels(region, work.operation, answer["region"]).inc()
            locality = "in_region" if answer["region"] == region else "cross_region"
            metrics.REQUESTER_SECONDS.labels(region, work.operation, locality).observe(seconds)
            record = {
                "request_id": work.request_id,
                "op": work.operation,
                "a": work.a,
                "b": work.b,
                "result": answer["result"],
                "served_by": answer["region"],
                "requested_in": settings.region,
            }
            try:
                ack = await with_retries(
                    requester.retry_seconds,
                    summary,
                    lambda: js.publish(
                        answer_subject(answer["result"]),
                        json.dumps(record).encode(),
                        timeout=requester.timeout_seconds,
                        headers={"Nats-Msg-Id": work.request_id},
                    ),
                )
            except FAILURES as error:
                # Answered, but JetStream did not take it in time: counted and logged whole,
                # never dropped silently (the same Nats-Msg-Id keeps a later publish safe).
                summary.failed += 1
                summary.unpublished += 1
                metrics.REQUESTER_UNPUBLISHED.labels(region).inc()
                logger.error(
                    "not published",
                    extra={"fields": {"record": record, "error": repr(error)}},
                )
                return
            summary.published += 1
            summary.duplicates += int(bool(ack.duplicate))

    started = time.perf_counter()
    await asyncio.gather(*(one(w) for w in plan(requester.requests, requester.seed)))
    summary.seconds = time.perf_counter() - started
    logs.event(logger, "done", **summary.as_dict())
    return summary
