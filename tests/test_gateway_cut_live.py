"""Cutting one region off while the others stay joined, on real servers: east, west and central
(3 + 3 + 1, as Pulumi.central.yaml adds it), each with its control service knowing the three
regions' server keys (GATEWAY_PINS, as `pulumi up` gives it from the peers' `gatewayPin`).
East cuts west off: the reload pins central's key and its own on east's gateways, so the
gateways between east and west close both ways while east and central stay connected, which
only holds when each pin is the key the servers really present (nats-server v2.14.2 auth.go
matchesPinnedCert); JetStream keeps its majority (east + central, 4 of 7)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from localnet.control import call, connection_of
from localnet.demo import Supercluster
from localnet.options import DemoOptions
from localnet.region import LocalRegion
from localnet.rehearsals.add_region import CENTRAL, EAST, WEST
from localnet.rehearsals.common import wait_until
from localnet.traffic import Traffic

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supercluster]:
    with Supercluster(
        DemoOptions(
            state_dir=tmp_path_factory.mktemp("cut") / "state",
            rtt_ms=0,
            plans=(EAST, WEST, CENTRAL),
            app_regions=("east", "west"),
            recorder=False,
        ),
        say=lambda _line: None,
    ).running() as supercluster:
        yield supercluster


def control(cluster: Supercluster, region: str, endpoint: str, body: Any = None) -> Any:
    connection = connection_of(cluster.options.state_dir, region)
    ok, answer = asyncio.run(call(connection, region, endpoint, body))
    assert ok, answer
    return answer


def test_east_cuts_west_off_and_keeps_central(three: Supercluster) -> None:
    east, west, central = (three.regions[n] for n in ("east", "west", "central"))
    wait_until(lambda: _whole(three), 30, "every pair of regions gatewayed both ways")
    traffic = [Traffic(three.regions[n]).start() for n in ("east", "west")]
    try:
        cut = control(three, "east", "put", {"cut_gateways": ["west"]})  # no force: central stays
        assert set(cut["applied"]["reloads"].values()) == {"reloaded"}, cut
        closed = wait_until(lambda: not _joined(east, west), 20, "no gateway east-west")
        assert _joined_both_ways(east, central)
        assert _joined_both_ways(west, central)  # a cut is between two regions only
        seen = control(three, "east", "status")
        for server in seen["servers"]:
            if server["cluster"] == "east":
                assert "west" not in server["gateways"]["outbound"], server
                assert "central" in server["gateways"]["outbound"], server
        assert seen["jetstream"]["meta_leader"] is not None  # east + central: 4 of 7
        control(three, "east", "put", {"cut_gateways": []})
        back = wait_until(lambda: _whole(three), 30, "every pair of regions gatewayed again")
    finally:
        summaries = [t.stop() for t in traffic]
        if not _whole(three):
            control(three, "east", "put", {"cut_gateways": []})
    print(f"cut: east-west closed {closed:.1f} s after the put; whole {back:.1f} s after lifting")
    for summary in summaries:
        print(summary.line())
        assert summary.failed == 0, summary.line()
        assert summary.disconnects == 0, summary.line()


def _gateways(region: LocalRegion, ordinal: int, way: str) -> set[str]:
    return set(region.monitor(ordinal, "gatewayz").get(f"{way}_gateways") or {})


def _joined(a: LocalRegion, b: LocalRegion) -> bool:
    """Any gateway connection, either way, between the two regions."""
    return any(
        b.name in _gateways(a, i, way)
        for i in range(a.spec.replicas)
        for way in ("inbound", "outbound")
    ) or any(
        a.name in _gateways(b, i, way)
        for i in range(b.spec.replicas)
        for way in ("inbound", "outbound")
    )


def _joined_both_ways(a: LocalRegion, b: LocalRegion) -> bool:
    """Every server of each region has its gateway out to the other."""
    return all(
        y.name in _gateways(x, i, "outbound")
        for x, y in ((a, b), (b, a))
        for i in range(x.spec.replicas)
    )


def _whole(cluster: Supercluster) -> bool:
    return all(cluster.gateways(name) for name in cluster.regions)
