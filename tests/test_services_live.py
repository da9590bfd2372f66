"""The calculators and the services' shell against a real 3-server region: bad requests,
requests without a reply, an impostor's certificate, missing configuration, and a stop whose
servers went away. Each service is a process of its own with only its own identity; the
recorder's live tests are in tests/test_recorder_live.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localnet.ports import LOOPBACK, free_port
from localnet.proxy import TcpProxy
from localnet.region import LocalRegion
from offline.stack_files import PROJECT_DIR
from services.calculator import OPERATIONS
from services.connect import CLOSE_SECONDS, STOP_SECONDS
from tests.services_live import (
    Service,
    app_region,
    client_as,
    running_calculators,
    service_env,
    wait_for_log,
)

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegion]:
    yield from app_region(tmp_path_factory)


@pytest.fixture(scope="module")
def calculators(region: LocalRegion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from running_calculators(region, tmp_path_factory)


class FuzzClient:
    """One connection on a loop of its own, so hypothesis can drive it synchronously."""

    def __init__(self, region: LocalRegion) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = self.call(client_as(region, "requester"))

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def close(self) -> None:
        self.call(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


_numbers = st.floats(allow_nan=False, allow_infinity=False, width=64)
_bad_values = st.one_of(
    st.text(max_size=5),
    st.none(),
    st.booleans(),
    st.lists(_numbers),
    st.floats(min_value=1e16, max_value=1e300),
)
BAD_REQUESTS = st.one_of(
    st.binary(max_size=64).filter(lambda b: not b.strip().startswith(b"{")),
    st.just(b"NaN"),
    st.just(b'{"a": NaN, "b": 1}'),
    st.just(b'{"a": Infinity, "b": 1}'),
    st.builds(lambda v: json.dumps(v).encode(), st.one_of(st.lists(_numbers), st.text())),
    st.builds(lambda a: json.dumps({"a": a}).encode(), _numbers),
    st.builds(lambda a, b: json.dumps({"a": a, "b": b}).encode(), _bad_values, _numbers),
    st.builds(lambda a, b: json.dumps({"a": a, "b": b}).encode(), _numbers, _bad_values),
    st.builds(lambda a: json.dumps({"a": a, "b": 0}).encode(), _numbers),  # for divide
    st.binary(min_size=4097, max_size=5000),
    st.integers(min_value=1000, max_value=2040).map(lambda n: b"[" * n + b"]" * n),
)


@pytest.mark.usefixtures("calculators")
def test_bad_requests_get_error_replies_and_the_services_keep_serving(region: LocalRegion) -> None:
    fuzz = FuzzClient(region)
    seen = {"count": 0}

    @settings(
        max_examples=1000, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(payload=BAD_REQUESTS)
    def bad_request_is_refused(payload: bytes) -> None:
        is_division = payload.endswith(b', "b": 0}')
        subject = "math.numbers.divide" if is_division else "math.numbers.add"
        reply = fuzz.call(fuzz.client.request(subject, payload, timeout=5))
        assert reply.headers is not None, (payload, reply.data)
        assert reply.headers.get("Nats-Service-Error-Code") in {"400", "413", "422"}
        assert reply.headers.get("Nats-Service-Error")
        seen["count"] += 1

    try:
        bad_request_is_refused()
        assert seen["count"] >= 1000
        for op in OPERATIONS:
            good = fuzz.call(
                fuzz.client.request(f"math.numbers.{op}", b'{"a": 6, "b": 3}', timeout=5)
            )
            assert json.loads(good.data)["region"] == "east"
    finally:
        fuzz.close()


def test_requests_without_a_reply_neither_flood_the_log_nor_stop_the_service(
    region: LocalRegion, tmp_path: Path
) -> None:
    log = tmp_path / "add.log"
    calculator = Service("calculator", service_env(region, "calculator", OPERATION="add"), log)
    try:
        wait_for_log(log, '"message": "serving"')

        async def flood() -> bytes:
            client = await client_as(region, "requester")
            try:
                for _ in range(2000):
                    await client.publish("math.numbers.add", b'{"a": 1, "b": 2}')
                await client.flush()
                reply = await client.request("math.numbers.add", b'{"a": 1, "b": 2}', timeout=5)
                return bytes(reply.data)
            finally:
                await client.close()

        assert json.loads(asyncio.run(flood()))["result"] == 3.0
    finally:
        calculator.stop()
    lines = log.read_text().splitlines()
    assert sum("without a reply subject" in line for line in lines) == 1
    assert len(lines) < 10, lines  # no line per message, no error per message


def test_a_service_with_another_identity_cannot_serve(region: LocalRegion, tmp_path: Path) -> None:
    env = service_env(region, "requester", OPERATION="multiply")  # wrong identity's cert
    env["NATS_CERT_FILE"], env["NATS_KEY_FILE"] = (
        str(p) for p in region.client_files("requester")[:2]
    )
    impostor = Service("calculator", env, tmp_path / "impostor.log")
    try:
        time.sleep(2)

        async def ask() -> bool:
            client = await client_as(region, "admin")
            try:
                reply = await client.request(
                    "math.numbers.multiply", b'{"a": 2, "b": 3}', timeout=2
                )
                return bool(json.loads(reply.data)["region"] != "impostor")
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                return True
            finally:
                await client.close()

        assert asyncio.run(ask())
    finally:
        impostor.stop()
    assert "permissions violation" in (tmp_path / "impostor.log").read_text().lower()


def test_missing_configuration_is_named() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services", "recorder"],
        check=False,
        cwd=PROJECT_DIR,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "NATS_URL is required" in result.stderr


class StallingProxy(TcpProxy):
    """The region's load balancer, able to stop forwarding while every connection stays open:
    servers that went silent without closing (a frozen node), so a flush is never answered."""

    def __init__(self, region: LocalRegion) -> None:
        super().__init__((LOOPBACK, free_port()), [(LOOPBACK, p.client) for p in region.ports])
        self.flowing = threading.Event()
        self.flowing.set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                while not self.flowing.is_set():
                    await asyncio.sleep(0.05)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


@pytest.mark.parametrize("servers", ["silent", "gone"])
def test_sigterm_stops_a_calculator_whose_servers_went_away(
    region: LocalRegion, tmp_path: Path, servers: str
) -> None:
    """Silent (connections open, nothing answers): the drain waits for flushes (nats-py: 10 s
    each, then a 30 s drain timeout) and the close for a TLS close_notify (30 s). Gone (every
    connection reset, as when the killed demo's servers stop with it): the client reconnects,
    and closing it then can fail inside nats-py. Either way the stop ends in time, cleanly."""
    proxy = StallingProxy(region)
    proxy.start()
    log = tmp_path / "calculator.log"
    env = service_env(region, "calculator", OPERATION="add")
    env["NATS_URL"] = f"tls://{proxy.listen[0]}:{proxy.listen[1]}"
    calculator = Service("calculator", env, log)
    try:
        wait_for_log(log, '"message": "serving"')
        if servers == "silent":
            proxy.flowing.clear()
        else:
            proxy.stop()
            wait_for_log(log, "disconnected from nats")
        started = time.monotonic()
        calculator.stop()
        took = time.monotonic() - started
    finally:
        calculator.stop(signal.SIGKILL)
        proxy.stop()  # once more for "gone": stopping a stopped proxy does nothing
    text = log.read_text()
    assert calculator.process.returncode == 0, text[-2000:]
    assert '"message": "stopped"' in text
    assert "Traceback" not in text
    if servers == "silent":
        assert "graceful stop took too long; leaving the connection" in text
        assert STOP_SECONDS <= took < STOP_SECONDS + CLOSE_SECONDS + 3, took
    else:
        assert took < STOP_SECONDS + CLOSE_SECONDS + 3, took
