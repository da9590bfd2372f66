"""The harness of tests/test_regional_answers_facts.py: east and west (3 + 3 real servers,
configured by the project's own localnet machinery) joined by gateway links that can be cut,
servers that can be SIGKILLed and restarted on their own stores, the JetStream API as raw
requests (so error codes stay visible), and a publisher that publishes answers as the
requester does (SERVICES account, through the import, each with a Nats-Msg-Id)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.client import Client

from infra.identities import APP_ACCOUNT, IdentityName
from localnet.clients import connect_as
from localnet.links import GatewayLinks
from localnet.region import LocalRegion
from localnet.rehearsals.add_region import EAST, WEST
from localnet.supercluster import plan_supercluster


@dataclass
class TwoRegions:
    regions: dict[str, LocalRegion]
    links: GatewayLinks

    @classmethod
    @contextlib.contextmanager
    def running(cls, workdir: Path) -> Iterator[TwoRegions]:
        planned = plan_supercluster(workdir, [EAST, WEST], linked=True)
        for region in planned:
            region.write()
        links = GatewayLinks(planned)
        links.start()
        try:
            for region in planned:
                region.start()
            two = cls({r.name: r for r in planned}, links)
            wait_for(two.meshed, 60, "gateways meshed both ways")
            wait_for(lambda: two.meta_leaders() != set(), 60, "a meta leader")
            yield two
        finally:
            for region in planned:
                region.stop()
            links.stop()

    def __getitem__(self, name: str) -> LocalRegion:
        return self.regions[name]

    def running_servers(self, name: str) -> list[int]:
        region = self.regions[name]
        return [i for i, p in enumerate(region.processes) if p is not None]

    def meshed(self) -> bool:
        """Every running server has its outbound gateway to the other region."""
        for name, region in self.regions.items():
            others = set(self.regions) - {name}
            for ordinal in self.running_servers(name):
                if (
                    set(region.monitor(ordinal, "gatewayz").get("outbound_gateways") or {})
                    != others
                ):
                    return False
        return True

    def meta_view(self, name: str, ordinal: int) -> str:
        """The JetStream meta leader the server names, or ''."""
        try:
            meta = self.regions[name].monitor(ordinal, "jsz").get("meta_cluster") or {}
        except OSError:
            meta = {}
        return str(meta.get("leader") or "")

    def meta_views(self, names: tuple[str, ...] | None = None) -> list[str]:
        """The meta leader each running server (of `names`) names, or ''."""
        return [
            self.meta_view(name, ordinal)
            for name in names or tuple(self.regions)
            for ordinal in self.running_servers(name)
        ]

    def meta_leaders(self, names: tuple[str, ...] | None = None) -> set[str]:
        return set(self.meta_views(names)) - {""}

    def meta_agreed(self) -> bool:
        """Every running server knows the same meta leader."""
        views = self.meta_views()
        return len(set(views)) == 1 and views[0] != ""

    def ordinal_of(self, name: str, server: str) -> int:
        spec = self.regions[name].spec
        names = [spec.server_name_prefix + spec.names.pod(i) for i in range(spec.replicas)]
        return names.index(server)

    def kill(self, name: str, ordinal: int) -> None:
        """SIGKILL: no lame duck, no flush, as a lost machine."""
        region = self.regions[name]
        process = region.processes[ordinal]
        if process is not None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        region.processes[ordinal] = None

    def restart(self, name: str, ordinal: int) -> None:
        """On its own JetStream store. Call it from a thread that outlives the server: the
        server gets SIGTERM when the thread that started it ends (setpriv --pdeathsig,
        localnet/processes.py), so never from asyncio.to_thread."""
        region = self.regions[name]
        region.processes[ordinal] = region.start_server(ordinal)

    def listening(self, name: str, ordinal: int) -> bool:
        """Its monitoring port answers (its health waits for a meta leader, which a lone
        region does not have)."""
        try:
            self.regions[name].monitor(ordinal, "varz")
        except OSError:
            return False
        return True

    def region_of(self, server: str) -> str:
        return next(
            name
            for name, region in self.regions.items()
            if server.startswith(region.spec.server_name_prefix)
        )

    def set_mappings(self, mappings: dict[str, Any]) -> list[str | None]:
        """The APP account's `mappings` in every server's file, then a reload of each running
        server (as the chart's reloader would); what each reload reported."""
        results = []
        for name, region in self.regions.items():
            conf = copy.deepcopy(region.conf)
            conf["accounts"][APP_ACCOUNT]["mappings"] = mappings
            region.write_conf(conf)
            results += [region.reload(i) for i in self.running_servers(name)]
        return results


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `condition` held; raises TimeoutError naming `what`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} within {timeout:g} s")
        time.sleep(0.1)
    return time.monotonic() - started


async def connect(region: LocalRegion, who: IdentityName = "admin") -> Client:
    """Through the region's load balancer, reconnecting (to a live server) when its server
    dies."""
    return await connect_as(
        region, who, allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )


async def api(nc: Client, subject: str, body: Any = None, timeout: float = 5) -> dict[str, Any]:
    """One `$JS.API` request; the answer as it came, error included. No answer: {}."""
    payload = json.dumps(body).encode() if body is not None else b""
    try:
        reply = await nc.request(f"$JS.API.{subject}", payload, timeout=timeout)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
        return {}
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


def err_code(answer: dict[str, Any]) -> int | None:
    error = answer.get("error")
    return int(error["err_code"]) if error else None


async def subject_counts(nc: Client, stream: str) -> dict[str, int]:
    """Messages per subject in the stream (answered by its leader, no meta leader needed)."""
    info = await api(nc, f"STREAM.INFO.{stream}", {"subjects_filter": ">"})
    if "state" not in info:
        return {}
    return {k: int(v) for k, v in (info["state"].get("subjects") or {}).items()}


async def until_holds(nc: Client, stream: str, expected: Counter[str], timeout: float) -> float:
    """Seconds until the stream holds at least `expected` messages on each subject."""
    started = time.monotonic()
    while True:
        counts = await subject_counts(nc, stream)
        if all(counts.get(subject, 0) >= n for subject, n in expected.items()):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{stream} holding {dict(expected)} within {timeout:g} s: {counts}")
        await asyncio.sleep(0.1)


async def restart(two: TwoRegions, name: str, ordinals: list[int], timeout: float = 30) -> None:
    """Servers restarted from the event loop's thread (see TwoRegions.restart), listening."""
    for ordinal in ordinals:
        two.restart(name, ordinal)
    started = time.monotonic()
    while not all(two.listening(name, o) for o in ordinals):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{name} servers {ordinals} listening within {timeout:g} s")
        await asyncio.sleep(0.1)


async def wait_meta(
    two: TwoRegions,
    wanted: Callable[[list[str]], bool],
    timeout: float,
    regions: tuple[str, ...] | None = None,
) -> None:
    """Until the meta leaders the running servers (of `regions`) name satisfy `wanted`."""
    started = time.monotonic()
    while not wanted(await asyncio.to_thread(two.meta_views, regions)):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"meta leader state within {timeout:g} s")
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class Stored:
    sequence: int
    subject: str
    headers: dict[str, str]


async def stream_state(nc: Client, stream: str, timeout: float = 20) -> dict[str, Any]:
    """The stream's state, waiting out a group still electing its leader."""
    started = time.monotonic()
    while "state" not in (info := await api(nc, f"STREAM.INFO.{stream}")):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"no state of {stream} within {timeout:g} s: {info}")
        await asyncio.sleep(0.2)
    state: dict[str, Any] = info["state"]
    return state


async def message_at(nc: Client, stream: str, sequence: int) -> Stored | None:
    message = (await api(nc, f"STREAM.MSG.GET.{stream}", {"seq": sequence})).get("message")
    if not message:
        return None
    return Stored(int(message["seq"]), message["subject"], _headers(message.get("hdrs")))


async def stored(nc: Client, stream: str) -> list[Stored]:
    """Every message of the stream, by sequence (these streams delete none)."""
    state = await stream_state(nc, stream)
    first, last = int(state["first_seq"]), int(state["last_seq"])
    found = []
    for start in range(first, last + 1, 50):
        batch = range(start, min(start + 50, last + 1))
        found += await asyncio.gather(*(message_at(nc, stream, seq) for seq in batch))
    messages = [m for m in found if m is not None]
    if len(messages) != int(state["messages"]):  # an unanswered read must not hide a duplicate
        raise RuntimeError(f"read {len(messages)} of {state['messages']} messages of {stream}")
    return messages


def _headers(encoded: str | None) -> dict[str, str]:
    if not encoded:
        return {}
    lines = base64.b64decode(encoded).decode().split("\r\n")[1:]
    return dict(line.split(": ", 1) for line in lines if ": " in line)


@dataclass
class Publisher:
    """Publishes `answers.significant` at up to `rate` per second through the region's load balancer
    as the requester, each message with its own Nats-Msg-Id; retries a failed publish with the
    same id until it is acknowledged (as services/requester.py does)."""

    region: LocalRegion
    prefix: str
    rate: float = 25.0
    acked: dict[str, str] = field(default_factory=dict)  # Nats-Msg-Id -> the acking stream
    first_try: int = 0
    retries: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> Publisher:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self, drain_seconds: float = 30) -> None:
        """Stop taking new ids; wait for the one in hand to be acknowledged."""
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, drain_seconds)

    @property
    def published(self) -> int:
        return len(self.acked)

    def summary(self) -> tuple[int, int, int]:
        """Answers acknowledged, how many on the first try, and the retries it took."""
        return self.published, self.first_try, self.retries

    async def _run(self) -> None:
        nc = await connect(self.region, "requester")
        js = nc.jetstream(timeout=2)
        try:
            n = 0
            while not self._stop.is_set():
                n += 1
                msg_id = f"{self.prefix}-{n}"
                tried = 0
                while True:
                    tried += 1
                    try:
                        ack = await js.publish(
                            "answers.significant", msg_id.encode(), headers={"Nats-Msg-Id": msg_id}
                        )
                    except (nats.errors.Error, TimeoutError):
                        self.retries += 1
                        await asyncio.sleep(0.2)
                        continue
                    self.acked[msg_id] = ack.stream
                    self.first_try += tried == 1
                    break
                await asyncio.sleep(1 / self.rate)
        finally:
            await nc.close()
