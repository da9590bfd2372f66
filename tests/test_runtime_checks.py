"""Whether routes keep a region whole, before and after a change, decided from VARZ, ROUTEZ and
GATEWAYZ replies shaped as nats-server v2.14.2 sends them (`cluster.cluster_port`,
`cluster.urls` as host:port, `config_digest`, `routes[].remote_name`); tests/test_control_live.py
holds the same decisions against real servers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.put_request import PutError, parse_put
from infra.region_servers import RegionRelease, names_server, pod_of
from infra.runtime_checks import (
    Expectation,
    RegionServer,
    expected,
    gateways_of,
    problems,
    refuse_routes,
    region_of,
    route_urls,
    silent,
    stranded,
)
from infra.runtime_config import HISTORY_BYTES, MAX_STATE_BYTES

PREFIX = "aws-us-east-1-"
EAST = RegionRelease("east", "nats", {f"{PREFIX}east-{i}": 6222 for i in range(3)})


def _varz(ordinal: int, port: int = 6222, digest: str = "d0", urls: Any = ()) -> dict[str, Any]:
    return {
        "server_id": f"ID{ordinal}",
        "config_digest": digest,
        "config_load_time": f"loaded {digest}",
        "cluster": {"name": "east", "cluster_port": port, "urls": list(urls)},
    }


def _servers(count: int = 3) -> dict[str, RegionServer]:
    varz = {f"{PREFIX}east-{i}": _varz(i) for i in range(count)}
    varz["azure-westus-west-0"] = {"cluster": {"name": "west", "cluster_port": 6222}}
    return region_of(varz, "east")


def route(ordinal: int, port: int = 6222, suffix: str = "") -> str:
    return f"tls://east-{ordinal}.east-headless{suffix}:{port}"


def test_a_server_is_its_pod_and_a_route_names_it_by_pod_headless_service_and_port() -> None:
    servers = _servers()
    assert sorted(servers) == [f"{PREFIX}east-{i}" for i in range(3)]
    assert pod_of(f"{PREFIX}east-12", "east") == "east-12"
    assert pod_of("east-0", "east") == "east-0"
    assert pod_of(f"{PREFIX}west-0", "east") is None
    one = f"{PREFIX}east-1"
    assert names_server(route(1), one, 6222, EAST)
    for suffix in (".nats", ".nats.svc", ".nats.svc.cluster.local"):  # what its certificate carries
        assert names_server(route(1, suffix=suffix), one, 6222, EAST)
    assert not names_server(route(1, port=6223), one, 6222, EAST)
    assert not names_server(route(2), one, 6222, EAST)
    assert not names_server("tls://east-1.other-headless:6222", one, 6222, EAST)
    assert not names_server("tls://10.0.0.1:6222", one, 6222, EAST)
    # The names: the first two labels right, reaching no server of the region.
    for suffix in (".nowhere", ".other.svc", ".nats.svc.cluster", ".nats.svc.cluster.local.x"):
        assert not names_server(route(1, suffix=suffix), one, 6222, EAST), suffix


@pytest.mark.parametrize(
    ("routes", "lost"),
    [
        ([route(0), route(1), route(2)], []),
        ([route(0), route(1)], ["east-2"]),  # on paper east-2 dials both; see the module
        ([route(0), route(1), route(2), route(7)], []),  # a server the region lacks: none
        ([route(0)], ["east-1", "east-2"]),
        ([route(0, port=1)], ["east-0", "east-1", "east-2"]),  # the one-route put
        (["tls://east-0.east-headless:1"], ["east-0", "east-1", "east-2"]),
        (["tls://10.0.0.1:6222"], ["east-0", "east-1", "east-2"]),
        ([], ["east-0", "east-1", "east-2"]),
    ],
)
def test_routes_that_leave_a_running_server_out_may_strand_it(
    routes: list[str], lost: list[str]
) -> None:
    assert stranded(routes, _servers(), EAST) == [PREFIX + n for n in lost]


def test_a_partition_is_refused_naming_the_servers_unless_forced() -> None:
    body = {"routes": [route(0)]}
    with pytest.raises(PutError) as raised:
        refuse_routes(parse_put(json.dumps(body).encode()), _servers(), EAST)
    assert raised.value.field == "routes"
    message = str(raised.value)
    assert f"would leave {PREFIX}east-1, {PREFIX}east-2 out" in message
    assert "east-2.east-headless:6222" in message
    assert '"force": true' in message
    forced = parse_put(json.dumps({**body, "force": True}).encode())
    refuse_routes(forced, _servers(), EAST)  # no error
    refuse_routes(parse_put(b'{"routes": null}'), _servers(), EAST)
    refuse_routes(parse_put(b'{"cut_gateways": []}'), _servers(), EAST)
    refuse_routes(parse_put(json.dumps(body).encode()), _servers(1), EAST)  # alone


def test_the_regions_servers_are_the_releases_whether_they_answer_or_not() -> None:
    """Issue 24: east-2 paused, so only east-0 and east-1 answer. It is still expected, and a
    list leaving it out is refused as it is while it runs."""
    answering = _servers(2)
    assert silent(EAST, answering) == [f"{PREFIX}east-2"]
    servers = expected(EAST, answering)
    assert sorted(servers) == [f"{PREFIX}east-{i}" for i in range(3)]
    assert servers[f"{PREFIX}east-2"] == RegionServer(f"{PREFIX}east-2", "", 6222)
    assert servers[f"{PREFIX}east-0"] == answering[f"{PREFIX}east-0"]  # as it answered
    with pytest.raises(PutError, match=f"would leave {PREFIX}east-2 out"):
        refuse_routes(
            parse_put(json.dumps({"routes": [route(0), route(1)]}).encode()), servers, EAST
        )
    # A server of the region the release does not know yet (a scale-up) counts once it answers.
    grown = {**_servers(4)}
    assert sorted(expected(EAST, grown)) == [f"{PREFIX}east-{i}" for i in range(4)]
    assert silent(EAST, grown) == []


@pytest.mark.parametrize(
    "name",
    [
        "tls://east-0.east-headless.nowhere:6222",  # the issue's: reaches no running server
        "tls://east-7.east-headless:6222",  # no server of the region has that pod
        "tls://east-0.east-headless:1",  # another port
        "tls://10.0.0.1:6222",  # an address: not matched to a server
        "tls://east-0.east-headless.prod.svc:6222",  # another namespace's
    ],
)
def test_a_route_naming_no_server_of_the_region_is_refused_unless_forced(name: str) -> None:
    routes = [route(0), route(1), route(2), name]
    with pytest.raises(PutError) as raised:
        refuse_routes(parse_put(json.dumps({"routes": routes}).encode()), _servers(), EAST)
    assert raised.value.field == "routes[3]"
    assert "names no server of east" in str(raised.value)
    assert "east-0.east-headless:6222" in str(raised.value)  # how to name one
    forced = parse_put(json.dumps({"routes": routes, "force": True}).encode())
    refuse_routes(forced, _servers(), EAST)  # no error: verified and rolled back if it splits
    qualified = [route(0, suffix=".nats"), route(1, suffix=".nats.svc"), route(2)]
    refuse_routes(parse_put(json.dumps({"routes": qualified}).encode()), _servers(), EAST)


def _routez(names: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    return {
        PREFIX + n: {"routes": [{"remote_name": PREFIX + p} for p in peers]}
        for n, peers in names.items()
    }


WHOLE = _routez({"east-0": ["east-1", "east-2"], "east-1": ["east-0", "east-2"],
                 "east-2": ["east-0", "east-1"]})  # fmt: skip


def _expect(**changes: Any) -> Expectation:
    before = region_of({PREFIX + f"east-{i}": _varz(i) for i in range(3)}, "east")
    return Expectation(frozenset(before), before, **changes)


def _after(digest: str = "d1", urls: Any = ()) -> dict[str, dict[str, Any]]:
    return {PREFIX + f"east-{i}": _varz(i, digest=digest, urls=urls) for i in range(3)}


def test_a_change_holds_when_every_server_loaded_it_runs_it_and_every_pair_is_routed() -> None:
    wanted = route_urls([route(0), route(1)])
    assert wanted == frozenset({"east-0.east-headless:6222", "east-1.east-headless:6222"})
    runs = sorted(wanted)
    assert problems(_expect(route_urls=wanted), _after(urls=runs), WHOLE, {}) == []
    assert problems(_expect(), _after("d0"), WHOLE, {}) == [
        f"{PREFIX}east-{i} has not loaded the change" for i in range(3)
    ]
    assert problems(_expect(back=True), _after("d0"), WHOLE, {}) == []
    # Reloaded into a configuration equal to the old one (routes the release already had):
    # the digest stays, the load time moves.
    same = {n: {**v, "config_load_time": "later"} for n, v in _after("d0").items()}
    assert problems(_expect(), same, WHOLE, {}) == []
    assert problems(_expect(back=True), _after("d1"), WHOLE, {}) == [
        f"{PREFIX}east-{i} has not gone back to its configuration of before" for i in range(3)
    ]
    missing = {k: v for k, v in _after().items() if not k.endswith("east-1")}
    assert problems(_expect(), missing, WHOLE, {}) == [f"{PREFIX}east-1 did not answer"]
    split = _routez({"east-0": ["east-1", "east-2"], "east-1": ["east-0"], "east-2": ["east-0"]})
    assert problems(_expect(), _after(), split, {}) == [
        f"{PREFIX}east-1 has no route to {PREFIX}east-2",
        f"{PREFIX}east-2 has no route to {PREFIX}east-1",
    ]
    stale = problems(_expect(route_urls=wanted), _after(urls=["x:1"]), WHOLE, {})
    assert stale[0].endswith("runs routes ['x:1']")


def test_a_cut_holds_when_the_regions_cut_are_gone_and_the_others_stay() -> None:
    gatewayz: dict[str, dict[str, Any]] = {
        PREFIX + "east-0": {"outbound_gateways": {"central": {}}, "inbound_gateways": {}},
        PREFIX + "east-1": {"inbound_gateways": {"west": [{}]}},
    }
    seen = gateways_of(gatewayz, [PREFIX + "east-0", PREFIX + "east-1", PREFIX + "east-2"])
    assert seen[PREFIX + "east-2"] == set()
    expect = _expect(cut=frozenset({"west"}), kept=frozenset({"central"}))
    assert problems(expect, _after(), WHOLE, seen) == ["still gatewayed to west"]
    no_west = {**seen, PREFIX + "east-1": set()}
    assert problems(expect, _after(), WHOLE, no_west) == []
    nothing = {n: set[str]() for n in seen}
    assert problems(expect, _after(), WHOLE, nothing) == [
        "no longer gatewayed to central, which the change kept"
    ]


def test_state_stays_far_below_what_a_configmap_holds() -> None:
    """The largest put the grammar allows, recorded as often as the history keeps: the runtime
    files stay under MAX_STATE_BYTES (itself a quarter of a ConfigMap's 1 MiB)."""
    from infra.runtime_config import RuntimeState, applied, runtime_files  # noqa: PLC0415

    host = ".".join(["a" * 63] * 3 + ["b" * 57])
    big = parse_put(json.dumps({"routes": [f"tls://{host}:{p}" for p in range(1, 33)]}).encode())
    state = RuntimeState()
    for n in range(40):
        state = applied(state, big, "CN=admin", f"t{n}", change=f"c{n}")
    size = sum(len(t.encode()) for t in runtime_files(state).values())
    assert len(json.dumps(list(state.history))) <= HISTORY_BYTES
    assert size < MAX_STATE_BYTES
    assert state.history[-1]["change"] == "c39"


def test_a_change_is_verified_whole_not_only_what_the_put_named() -> None:
    """A routes put over a stored cut must find the cut in effect too (issue 24: a cut left
    pending must not be applied, unverified, by the next put)."""
    from infra.runtime_checks import expectation_of  # noqa: PLC0415
    from infra.runtime_config import RuntimeState  # noqa: PLC0415

    servers = _servers()
    state = RuntimeState(routes=(route(0), route(1), route(2)), cut_gateways=("west",))
    expect = expectation_of(servers, state, {"west", "central"})
    assert (expect.cut, expect.kept) == (frozenset({"west"}), frozenset({"central"}))
    assert expect.route_urls == route_urls(state.routes)
    runs = _after(urls=sorted(route_urls(state.routes) or ()))
    assert problems(expect, runs, WHOLE, {n: {"west"} for n in servers}) == [
        "still gatewayed to west",
        "no longer gatewayed to central, which the change kept",
    ]
    nothing_cut = expectation_of(servers, RuntimeState(), {"west"})
    assert (nothing_cut.cut, nothing_cut.kept, nothing_cut.route_urls) == (
        frozenset(),
        frozenset(),
        None,
    )
