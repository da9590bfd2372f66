"""The calculators: add, subtract, multiply and divide as NATS Services Framework services.

One program, four deployments (OPERATION). Each answers `math.numbers.<op>` in the queue group of
the framework, so replicas share the work and a region's requests stay in that region while it
has members. Bad input gets a framework error reply (`Nats-Service-Error`,
`Nats-Service-Error-Code`); nothing a client sends can stop the service.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import operator
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.micro
from nats.micro.request import Request

from infra.identities import MATH_OPERATIONS
from services import logs, metrics
from services.connect import connect, stop_within
from services.settings import CalculatorSettings, NatsSettings

VERSION = "1.0.0"
MAX_OPERAND = 1e15  # integers up to here are exact in a double
MAX_PAYLOAD = 4096

_FUNCTIONS: dict[str, Callable[[float, float], float]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": operator.truediv,
}
OPERATIONS = {name: _FUNCTIONS[name] for name in MATH_OPERATIONS}

REQUEST_SCHEMA = {
    "type": "object",
    "required": ["a", "b"],
    "properties": {
        "a": {"type": "number", "minimum": -MAX_OPERAND, "maximum": MAX_OPERAND},
        "b": {"type": "number", "minimum": -MAX_OPERAND, "maximum": MAX_OPERAND},
    },
}
RESPONSE_SCHEMA = {
    "type": "object",
    "required": ["result", "op", "region"],
    "properties": {
        "result": {"type": "number"},
        "op": {"type": "string"},
        "region": {"type": "string"},
    },
}


def subject(operation: str) -> str:
    return f"math.numbers.{operation}"


@dataclass(frozen=True)
class Refusal:
    """A request the service answers with an error: the framework's code and description."""

    code: str
    description: str


class _Refused(Exception):  # noqa: N818 (control flow inside calculate, never escapes)
    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.refusal = Refusal(code, description)


def calculate(operation: str, payload: bytes) -> float | Refusal:
    """The whole decision, with no I/O: parse, validate, compute."""
    try:
        request = _parse(payload)
        a, b = _operand(request, "a"), _operand(request, "b")
        if operation == "divide" and b == 0:
            raise _Refused("422", "division by zero")
        result = OPERATIONS[operation](a, b)
        if not math.isfinite(result):
            raise _Refused("422", "result is not a finite number")
    except _Refused as refused:
        return refused.refusal
    return result


def _parse(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise _Refused("413", f"request larger than {MAX_PAYLOAD} bytes")
    try:
        request: Any = json.loads(payload, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as error:
        raise _Refused("400", f"request is not JSON: {error}") from None
    except RecursionError:
        raise _Refused("400", "request is nested too deeply") from None
    if not isinstance(request, dict):
        raise _Refused("400", 'request must be a JSON object like {"a": 1, "b": 2}')
    return request


def _operand(request: dict[str, Any], name: str) -> float:
    if name not in request:
        raise _Refused("400", f"missing field {name!r}")
    value = request[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Refused("400", f"field {name!r} must be a number, got {type(value).__name__}")
    if not -MAX_OPERAND <= value <= MAX_OPERAND:
        raise _Refused("422", f"field {name!r} is outside [-{MAX_OPERAND:g}, {MAX_OPERAND:g}]")
    return float(value)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number this service accepts")


def reply(operation: str, result: float, region: str) -> bytes:
    return json.dumps({"result": result, "op": operation, "region": region}).encode()


class Unanswerable:
    """Counts requests that came without a reply subject (nothing to answer to) and logs them
    at most once per interval, so a client sending many cannot flood the logs."""

    def __init__(self, logger: logging.Logger, interval_seconds: float = 60.0) -> None:
        self.throttle = logs.Throttle(logger, interval_seconds)

    @property
    def total(self) -> int:
        return self.throttle.total

    def count(self, now: float | None = None) -> None:
        self.throttle.event("no reply", "requests without a reply subject ignored", now=now)


async def serve(settings: NatsSettings, calculator: CalculatorSettings) -> None:
    logger = logs.setup(f"calculator-{calculator.operation}", settings.region)
    client = await connect(settings, logger)
    operation = calculator.operation
    unanswerable = Unanswerable(logger)
    region = settings.region
    metrics.calculator_ready(region, operation)

    async def handle(request: Request) -> None:
        started = time.perf_counter()
        metrics.CALCULATOR_REQUESTS.labels(region, operation).inc()
        if not request._msg.reply:  # the framework's Request does not expose the reply subject
            unanswerable.count()
            metrics.CALCULATOR_ERRORS.labels(region, operation, "no_reply").inc()
            return
        outcome = calculate(operation, request.data)
        if isinstance(outcome, Refusal):
            await request.respond_error(outcome.code, outcome.description)
            metrics.CALCULATOR_ERRORS.labels(region, operation, outcome.code).inc()
        else:
            await request.respond(reply(operation, outcome, region))
        metrics.CALCULATOR_SECONDS.labels(region, operation).observe(time.perf_counter() - started)

    service = await nats.micro.add_service(
        client,
        name=f"calculator-{operation}",
        version=VERSION,
        description=f"{operation} two numbers",
        metadata={"region": settings.region, "operation": operation},
    )
    await service.add_endpoint(
        name=operation,
        subject=subject(operation),
        handler=handle,
        metadata={
            "request_schema": json.dumps(REQUEST_SCHEMA),
            "response_schema": json.dumps(RESPONSE_SCHEMA),
        },
    )
    logs.event(logger, "serving", subject=subject(operation), version=VERSION)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await stop_within(client, logger, service.stop, client.drain)
    logs.event(logger, "stopped")
