"""Asking one server of the region by its name: its configuration, routes and gateways, and a
reload. nats-server makes a new server id at every start (v2.14.2 server.go:703-730 NewServer:
a fresh server nkey, its public key the id), so an id captured earlier names nobody once that
server restarted; a name stays. The system account's monitoring pings take a
filter (nats-server v2.14.2 events.go:1981-1988 EventFilterOptions: `server_name`, and
`exact_match` for the whole name rather than a substring; filterRequest, events.go:2087-2099;
zReq returns without answering when it applies, events.go:2297), so a ping filtered to one
name is answered by that server alone, whatever its id. A reload is addressed by id only
(`$SYS.REQ.SERVER.<id>.RELOAD`, events.go:70), so the id is read, by name, right before it.
Each request goes over the connection straight to that server where there is one
(services/server_links.py), else over the service's own."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

import nats.errors
from nats.aio.client import Client

from infra.region_servers import pod_of
from infra.runtime_checks import Expectation, gateways_of, problems
from infra.runtime_status import Replies
from services.server_links import ServerLinks

KINDS = ("varz", "routez", "gatewayz")
# Seconds between the tries of a reload nobody answered.
RETRY_PAUSE = 0.5


class ByName:
    """The region's servers, each asked by its name."""

    def __init__(
        self, client: Client, cluster: str, links: ServerLinks | None, ask_seconds: float
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.links = links
        self.ask_seconds = ask_seconds

    async def _request(
        self, name: str, subject: str, body: bytes, until: float | None
    ) -> dict[str, Any] | None:
        pod = pod_of(name, self.cluster)
        if self.links is not None and pod is not None:
            reply = await self.links.request(pod, subject, self._seconds(2, until), body)
            if reply is not None:
                return reply
        seconds = self._seconds(1, until)
        if seconds <= 0:
            return None
        try:
            msg = await self.client.request(subject, body, timeout=seconds)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            return None
        found: dict[str, Any] = json.loads(msg.data)
        return found

    def _seconds(self, asks: int, until: float | None) -> float:
        wanted = self.ask_seconds * asks
        return wanted if until is None else max(0.0, min(wanted, until - time.monotonic()))

    async def ask(self, name: str, kind: str, until: float | None = None) -> dict[str, Any] | None:
        """The server `name`'s reply to the `kind` ping (VARZ, ROUTEZ, GATEWAYZ), or None when
        it did not answer (by `until`, a monotonic time, when given)."""
        body = json.dumps({"server_name": name, "exact_match": True}).encode()
        reply = await self._request(name, f"$SYS.REQ.SERVER.PING.{kind.upper()}", body, until)
        if reply is None or (reply.get("server") or {}).get("name") != name:
            return None
        return reply

    async def reload(self, name: str, until: float) -> str:
        """The server `name` reloads its configuration: "reloaded", "failed: <why>" (it refused
        the configuration), or "no answer" when it did not answer by `until` (asked again
        meanwhile; its reply may also be lost with a route the reload closed)."""
        while True:
            varz = await self.ask(name, "VARZ", until)
            server_id = str(((varz or {}).get("data") or {}).get("server_id") or "")
            if server_id:
                subject = f"$SYS.REQ.SERVER.{server_id}.RELOAD"
                reply = await self._request(name, subject, b"", until)
                if reply is not None:
                    error = reply.get("error")
                    return f"failed: {error.get('description')}" if error else "reloaded"
            if time.monotonic() + RETRY_PAUSE >= until:
                return "no answer"
            await asyncio.sleep(RETRY_PAUSE)

    @property
    def round_seconds(self) -> float:
        """The longest a round of `problems` takes: a server that does not answer is waited
        for over its own connection, then over the service's."""
        return 3 * self.ask_seconds

    async def problems(self, expectation: Expectation, names: Iterable[str]) -> list[str]:
        """What is still wrong with the region (infra/runtime_checks.py problems), each of
        `names` asked itself: a round takes as long as the slowest answer."""
        names = sorted(names)
        asked = [(kind, name) for kind in KINDS for name in names]
        answers = await asyncio.gather(*(self.ask(name, kind) for kind, name in asked))
        replies = Replies()
        for (kind, _), answer in zip(asked, answers, strict=True):
            if answer is not None:
                replies.add(kind, [answer])
        return problems(
            expectation, replies.varz, replies.routez, gateways_of(replies.gatewayz, names)
        )
