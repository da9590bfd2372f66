"""The clouds' reload path on real servers: the stand-in for the kubelet and the chart's
reloader (localnet/reloader.py) signals a server only when a file it watches changed content,
certificates included (tests/test_reloader_facts.py has the sources); and, on that path, a
put the servers have nothing to load for is recorded applied at once, never left to a watch
that waits for a reload the reloader will not send."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.micro.request import Request

from infra.pki import ca_spec
from localnet.clients import connect_as
from localnet.demo import Supercluster
from localnet.pki import issue_ca
from localnet.region import LocalRegion
from localnet.rehearsals.common import wait_until
from localnet.reloader import ConfigMapReloader
from services import metrics
from services.config_check import ConfigChecker
from services.control import Control
from services.control_put import Timing
from services.runtime_store import FileStore
from tests.control_live import ADMIN_DN, base_routes, call

pytestmark = pytest.mark.live

DELAY = 1.0  # the kubelet's sync, scaled down
PENDING = 8.0  # PENDING_SECONDS, scaled down


@pytest.fixture
def east(control_cluster: Supercluster) -> LocalRegion:
    return control_cluster.regions["east"]


def _loaded(region: LocalRegion) -> list[str]:
    return [region.monitor(i, "varz")["config_load_time"] for i in range(region.spec.replicas)]


def test_the_stand_in_signals_changed_content_only_certificates_included(
    east: LocalRegion,
) -> None:
    routes = east.runtime_dir / "routes.conf"
    bundle = east.workdir / "ca.crt"
    original = routes.read_text()
    try:
        with ConfigMapReloader(east, delay=DELAY) as reloader:
            before = _loaded(east)
            bundle.write_bytes(bundle.read_bytes())  # the same content again
            routes.write_text(original + "# a comment\n")  # changed, and changed back
            time.sleep(DELAY / 3)  # before the kubelet's next sync
            routes.write_text(original)
            time.sleep(DELAY + 2)
            assert reloader.reloads == []
            assert _loaded(east) == before
            east.trust([east.ca, issue_ca(ca_spec("reloader-test", 2))])  # a CA added
            # The stand-in records a signal once the server has reloaded: wait for both.
            wait_until(
                lambda: (
                    len(reloader.reloads) >= east.spec.replicas
                    and all(a != b for a, b in zip(_loaded(east), before, strict=True))
                ),
                DELAY + 15,
                "every server reloaded the trust bundle",
            )
            assert sorted(r.ordinal for r in reloader.reloads) == [0, 1, 2]  # once each
            assert all(r.outcome is None and r.files == (str(bundle),) for r in reloader.reloads)
    finally:
        routes.write_text(original)
        east.trust([east.ca])
        for ordinal in range(east.spec.replicas):
            assert east.reload(ordinal) is None


def _request(client: Client, body: dict[str, Any]) -> Request:
    headers = {"Nats-Request-Info": json.dumps({"user": ADMIN_DN.split(" in ")[0], "acc": "APP"})}
    msg = Msg(client, "supercluster.east.config.put", "", json.dumps(body).encode(), headers)
    return Request(msg)


def test_in_the_clouds_a_repeated_put_is_applied_at_once_and_never_rolled_back(
    east: LocalRegion,
) -> None:
    """The same routes in another order, twice, through a control service on the reloader
    path: the first changes the files (the reloader signals, the watch records it applied),
    the second changes nothing: applied at once, and still applied after a watch would have
    given up. Then the same put on the request path: applied, no reload."""
    ok, answer = call(east, "admin", "config.put", {"routes": base_routes(east)}, wait=15)
    assert ok, answer
    put = {"routes": list(reversed(base_routes(east)))}
    store = FileStore(east.runtime_dir)

    async def run() -> tuple[dict[str, Any], dict[str, Any], float, dict[str, str], float]:
        client = await connect_as(east, "control", allow_reconnect=True)
        service = Control(
            client,
            "east",
            store,
            reload_by_request=False,
            logger=logging.getLogger("control-cloud-noop"),
            checker=ConfigChecker("east"),
            timing=Timing(verify=10, pending=PENDING),
        )
        rollbacks = metrics.CONTROL_ROLLBACKS.labels("east")._value.get()
        try:
            first = await service.config_put(_request(client, put))
            change = first["applied"]["change"]
            deadline = time.monotonic() + PENDING + 10
            while _outcomes(store).get(change) == "pending" and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            began = time.monotonic()
            second = await service.config_put(_request(client, put))
            took = time.monotonic() - began
            await asyncio.sleep(PENDING + 2)  # a watch would have given up by now
            rolled = metrics.CONTROL_ROLLBACKS.labels("east")._value.get() - rollbacks
            return first, second, took, _outcomes(store), rolled
        finally:
            await service.stop()
            await client.close()

    try:
        with ConfigMapReloader(east, delay=DELAY):
            first, second, took, outcomes, rolled = asyncio.run(run())
        assert first["outcome"] == "pending"
        assert outcomes[first["applied"]["change"]] == "applied"
        assert outcomes[second["applied"]["change"]] == "applied: nothing for the servers to load"
        assert second["outcome"] == "applied"
        assert took < 3.0, took
        assert rolled == 0
        ok, again = call(east, "admin", "config.put", put, wait=15)  # the request path
        assert ok, again
        assert (again["outcome"], again["applied"]["reloads"]) == ("applied", {})
        print(f"a repeated put on the reloader path: applied in {took:.1f} s, nothing rolled back")
    finally:
        ok, answer = call(east, "admin", "config.put", {"routes": base_routes(east)}, wait=15)
        assert ok, answer


def _outcomes(store: FileStore) -> dict[str, str]:
    return {str(e.get("change")): str(e.get("outcome")) for e in store.read().state.history}
