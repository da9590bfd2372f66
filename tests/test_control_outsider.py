"""The outsider's attacks on the control service (issue 24), on real servers: a server paused
during a put, a service killed mid-put, route names that reach no server, forged callers, and a
server restarting while a put is verified. Each test prints what it measured."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from typing import Any

import pytest

from infra.put_budget import PUT_SECONDS, QUEUE_SECONDS
from infra.put_request import parse_put
from localnet.clients import connect_as
from localnet.demo import Supercluster
from localnet.region import LocalRegion
from localnet.rehearsals.common import wait_until
from services.control_put import ChangeFailed, Timing
from tests.control_live import (
    ADMIN_DN,
    base_routes,
    call,
    gateways,
    meshed,
    put_base,
    server_name,
    whole,
)
from tests.control_steps import bystander, outcome_of, paused, put_at, state_of, transaction

pytestmark = pytest.mark.live

# A loopback address nothing on this machine listens on: where the hosts files send names that
# must reach no server (a server never resolves a name outside its region's hosts file).
NOWHERE = "127.0.0.254"
FILES = ("routes.conf", "gateways.conf")


def _files(region: LocalRegion) -> dict[str, str]:
    return {name: (region.runtime_dir / name).read_text() for name in FILES}


def _put(region: LocalRegion, body: Any) -> tuple[bool, Any]:
    return asyncio.run(put_at(region, body))


def _lift_cut(cluster: Supercluster, region: LocalRegion) -> None:
    """Whatever a test or the code under test left, the shared cluster whole again."""
    if state_of(region)["cut_gateways"] or not whole(cluster):
        ok, answer = call(region, "admin", "config.put", {"cut_gateways": []}, wait=15)
        assert ok, answer
    wait_until(lambda: whole(cluster), 30, "every region gatewayed both ways")


def test_a_forced_cut_while_a_server_is_paused_is_not_applied(
    control_cluster: Supercluster,
) -> None:
    """Item 1: the region's servers are the release's, not whoever answers. With one paused, a
    forced cut is not applied: it would not reach that server, which would go on running
    without it once it goes on."""
    east = control_cluster.regions["east"]
    put_base(east)
    before = _files(east)
    silent = bystander(east)
    name = server_name(east, silent)
    try:
        with paused(east, silent):
            began = time.monotonic()
            ok, cut = _put(east, {"cut_gateways": ["west"], "force": True})
            took = time.monotonic() - began
            assert not ok, cut
            assert f"{name} did not answer" in str(cut), cut
            assert took < PUT_SECONDS, took
            assert _files(east) == before
        east.wait_healthy(silent)
        time.sleep(3)  # what the paused server runs once it goes on
        assert "west" in gateways(east, silent)
        ok, config = call(east, "admin", "config.get", wait=15)
        assert ok, config
        assert config["cut_gateways"] == []
    finally:
        _lift_cut(control_cluster, east)
    print(f"paused {name}: a forced cut refused in {took:.1f} s: {str(cut)[:120]}")


def test_routes_leaving_out_a_paused_server_are_refused_as_while_it_runs(
    control_cluster: Supercluster,
) -> None:
    """Item 2: the partition check counts the region's servers, not the ones that answer."""
    east = control_cluster.regions["east"]
    put_base(east)
    before = _files(east)
    silent = bystander(east)
    name = server_name(east, silent)
    others = [r for i, r in enumerate(base_routes(east)) if i != silent]
    try:
        with paused(east, silent):
            began = time.monotonic()
            ok, routes = _put(east, {"routes": others})
            took = time.monotonic() - began
            assert not ok, routes
            assert f"would leave {name} out" in str(routes), routes
            assert _files(east) == before
    finally:
        east.wait_healthy(silent)
        if _files(east) != before:
            put_base(east)
    ok, running = _put(east, {"routes": others})
    assert not ok
    assert f"would leave {name} out" in str(running)
    print(f"paused {name}: routes leaving it out refused in {took:.1f} s: {str(routes)[:100]}")


def test_a_server_silent_after_the_check_rolls_the_put_back_within_the_budget(
    control_cluster: Supercluster,
) -> None:
    """Item 1: a server that stops answering between the check and its reload makes the change
    fail and roll back, named, in less than the put's budget (the CLI waits longer)."""
    east = control_cluster.regions["east"]
    put_base(east)
    before = _files(east)
    silent = bystander(east)

    async def run() -> tuple[str, float]:
        async with transaction(control_cluster, east, Timing(verify=5)) as steps:
            written = await steps.store_checked(parse_put(b'{"routes": null}'), ADMIN_DN)
            with paused(east, silent):
                began = time.monotonic()
                with pytest.raises(ChangeFailed) as failed:
                    await steps.apply_by_request(written)
                return str(failed.value), time.monotonic() - began

    why, took = asyncio.run(run())
    print(f"silent after the check: answered in {took:.1f} s: {why[:160]}")
    assert took < PUT_SECONDS - QUEUE_SECONDS, took
    assert why.startswith("rolled back: "), why
    assert f"{server_name(east, silent)} did not answer" in why, why
    assert _files(east) == before
    east.wait_healthy(silent)
    wait_until(lambda: meshed(east), 20, "east's servers routed to one another")
    urls = {u.removeprefix("tls://") for u in base_routes(east)}
    assert set(east.monitor(silent, "varz")["cluster"]["urls"]) == urls


def test_a_change_left_pending_by_a_killed_service_is_verified_before_it_is_recorded(
    control_cluster: Supercluster,
) -> None:
    """Item 3: a cut stored, then the service killed (SIGKILL) before it reloaded more than
    east-0. The restarted service finds it pending, sees the servers do not run it, restores
    the state of before (east-0 reloaded back) and records why; the next, unrelated put then
    applies nothing that was never confirmed."""
    east, west = control_cluster.regions["east"], control_cluster.regions["west"]
    put_base(east)
    before = _files(east)

    async def store() -> str:
        async with transaction(control_cluster, east, Timing()) as steps:
            body = b'{"cut_gateways": ["west"], "force": true}'
            written = await steps.store_checked(parse_put(body), ADMIN_DN)
            return written.change

    try:
        change = asyncio.run(store())
        service = control_cluster.services["control-east"]
        os.killpg(service.pid, signal.SIGKILL)
        service.wait(timeout=10)
        assert outcome_of(east, change) == "pending"
        assert east.reload(0) is None  # east-0 alone loaded it before the kill
        wait_until(lambda: "west" not in gateways(east, 0), 20, "east-0 cut from west")
        control_cluster.start_control("east")
        wait_until(lambda: outcome_of(east, change) != "pending", 60, "the change resolved")
        outcome = outcome_of(east, change)
        assert outcome.startswith("rolled back: "), outcome
        assert _files(east) == before
        assert state_of(east)["cut_gateways"] == []
        wait_until(lambda: whole(control_cluster), 30, "east and west gatewayed both ways")
        ok, routes = call(east, "admin", "config.put", {"routes": None}, wait=15)
        assert ok, routes
        assert routes["outcome"] == "applied", routes
        time.sleep(3)
        assert all("west" in gateways(east, i) for i in range(east.spec.replicas))
        assert all("east" in gateways(west, i) for i in range(west.spec.replicas))
    finally:
        if "control-east" not in control_cluster.services or (
            control_cluster.services["control-east"].poll() is not None
        ):
            control_cluster.start_control("east")
        _lift_cut(control_cluster, east)
        put_base(east)
    print(f"killed mid-put: recorded {outcome[:160]}")


def test_route_names_that_reach_no_server_are_refused_every_time(
    control_cluster: Supercluster,
) -> None:
    """Item 4: `<pod>.<headless>.nowhere` at each server's cluster port names no server of the
    region (the hosts files send it where nothing listens): refused unless forced, every time."""
    east = control_cluster.regions["east"]
    put_base(east)
    before = _files(east)
    names = east.spec.names
    hosts = [f"{names.pod(i)}.{names.headless_service}.nowhere" for i in range(3)]
    east.add_hosts(hosts, address=NOWHERE)
    for ordinal in range(3):
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect((NOWHERE, east.ports[ordinal].cluster))
    routes = [f"tls://{h}:{east.ports[i].cluster}" for i, h in enumerate(hosts)]
    refusals = []
    for _ in range(3):
        began = time.monotonic()
        ok, error = _put(east, {"routes": routes})
        refusals.append(time.monotonic() - began)
        assert not ok, error
        assert str(error).startswith("routes[0]: "), error
        assert "names no server of east" in str(error), error
        assert _files(east) == before
    assert meshed(east)
    print(f"nowhere names: refused 3 of 3, in {', '.join(f'{t:.1f}' for t in refusals)} s")


def test_forged_callers_neither_flood_the_log_nor_pass_the_busy_limit(
    control_cluster: Supercluster,
) -> None:
    """Item 5: the `system` identity calls the reads directly (no import), so the server leaves
    its `Nats-Request-Info` as written (client.go processServiceImport sets it only on a
    service import): each request claims another caller. The log stays bounded, and the reads
    still wait in one bounded queue."""
    east = control_cluster.regions["east"]
    log = control_cluster.options.state_dir / "logs" / "control-east.log"

    async def flood(count: int, *, outside: bool) -> tuple[int, int]:
        system = await connect_as(east, "system", server=0)
        inbox = system.new_inbox()
        answered = busy = 0
        done = asyncio.Event()

        async def got(msg: Any) -> None:
            nonlocal answered, busy
            if msg.headers and msg.headers.get("Nats-Service-Error-Code") == "503":
                busy += 1
            else:
                answered += 1
            if answered + busy == count:
                done.set()

        await system.subscribe(f"{inbox}.*", cb=got)
        for n in range(count):
            forged = json.dumps({"acc": "APP", "user": f"CN=forged-{n},O=nats-supercluster"})
            await system.publish(
                "supercluster.east.status",
                b"",
                reply=f"forged.{n}" if outside else f"{inbox}.{n}",
                headers={"Nats-Request-Info": forged},
            )
        await system.flush()
        try:
            if not outside:
                await asyncio.wait_for(done.wait(), 60)
        finally:
            await system.close()
        return answered, busy

    def written() -> tuple[int, int]:
        text = log.read_bytes()
        return text.count(b"\n"), len(text)

    lines, size = written()
    asyncio.run(flood(300, outside=True))
    time.sleep(2)
    lines_300 = written()[0] - lines
    asyncio.run(flood(2000, outside=True))
    time.sleep(2)
    answered, busy = asyncio.run(flood(1000, outside=False))
    time.sleep(1)
    added_lines, added_bytes = (a - b for a, b in zip(written(), (lines, size), strict=True))
    print(
        f"forged callers: 300 outside replies wrote {lines_300} lines; with 2,000 more and 1,000 "
        f"reads ({answered} answered, {busy} busy): {added_lines} lines, {added_bytes} bytes"
    )
    assert busy > 0
    assert answered + busy == 1000
    assert lines_300 <= 2
    assert added_lines <= 4
    assert added_bytes <= 4096


def test_a_server_restarting_during_a_put_does_not_roll_it_back(
    control_cluster: Supercluster,
) -> None:
    """Item 6: nats-server makes a new server id at every start. A server restarted after the
    put's check is reloaded and verified by its name, and the change is applied; a server
    restarting while a change is watched is followed by name too."""
    east = control_cluster.regions["east"]
    put_base(east)

    async def run() -> tuple[str, list[str]]:
        async with transaction(control_cluster, east, Timing(verify=15)) as steps:
            written = await steps.store_checked(parse_put(b'{"routes": null}'), ADMIN_DN)
            # In this thread: a server started from a worker thread is sent SIGTERM when that
            # thread ends (localnet/processes.py stop_with_parent, the parent-death signal).
            east.restart_server(2)
            result = await steps.apply_by_request(written)
            back = parse_put(json.dumps({"routes": base_routes(east)}).encode())
            watched = await steps.store_checked(back, ADMIN_DN)
            verifying = asyncio.ensure_future(
                steps.verified(watched.expectation, watched.servers, 20)
            )
            await asyncio.sleep(1)  # nothing reloaded yet: the change does not show
            assert not verifying.done()
            east.restart_server(1)  # the loop waits meanwhile; the verification goes on after
            for ordinal in (0, 2):
                assert await asyncio.to_thread(east.reload, ordinal) is None
            found = await verifying
            await steps.record(watched.change, "applied" if not found else "not confirmed")
            return str(result["outcome"]), found

    try:
        applied, found = asyncio.run(run())
    finally:
        wait_until(lambda: meshed(east), 30, "east's servers routed to one another")
        put_base(east)
    print(f"restarts during a put: {applied}; watched through a restart: {found or 'applied'}")
    assert applied == "applied"
    assert found == []
