"""What destroy decides before it touches a server: which meta group peers a departing region
removes and in what order, the order the engine deletes each stack's resources in, and that
refresh and delete give up on a silent endpoint in bounded time."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from infra.jetstream_ops import Connection, JetStreamUnreachableError, connect
from infra.meta_ops import Departure, MetaGroup, departure_plan
from infra.pki import ca_spec
from localnet.pki import issue_ca
from offline.evaluate import Evaluation
from offline.graph import create_order, delete_order, dependencies

E = [f"aws-us-east-1-east-{i}" for i in range(3)]
W = [f"azure-westus-west-{i}" for i in range(3)]
C = ["azure-centralus-central-0"]


def group(
    leader: str,
    peers: list[str],
    offline: tuple[str, ...] | list[str] = (),
    behind: tuple[str, ...] | list[str] = (),
) -> MetaGroup:
    """The leader's view; offline peers are not current either, as the server reports them."""
    return MetaGroup(leader, frozenset(peers), frozenset(offline), frozenset({*offline, *behind}))


def test_a_region_leaves_with_its_meta_leader_last() -> None:
    plan = departure_plan(group(W[1], E + W + C), "azure-westus-")
    assert plan.remove == (W[0], W[2], W[1])


def test_the_last_region_removes_nobody_its_group_ends_with_it() -> None:
    alone = departure_plan(group(E[0], E), "aws-us-east-1-")
    assert alone == Departure((), alone.reason)
    assert "no other region's server is online" in alone.reason
    # The others are all gone without leaving: removing would only lose the leader's quorum.
    assert departure_plan(group(E[0], E + W, offline=W), "aws-us-east-1-").remove == ()


def test_peers_of_a_gone_region_go_first_when_the_survivors_need_them() -> None:
    # East lost out of band: 4 of 7 online. Removing central alone would leave west 3 of 6.
    plan = departure_plan(group(W[0], E + W + C, offline=E), "azure-centralus-")
    assert plan.remove == (*E, *C)
    assert "majority" in plan.reason
    # A peer the leader has not heard from for 10 s counts as not online, offline or not.
    assert departure_plan(group(W[0], E + W + C, behind=E), "azure-centralus-").remove == (
        *E,
        *C,
    )


def test_other_regions_peers_are_left_alone_while_the_survivors_keep_a_majority() -> None:
    plan = departure_plan(group(E[0], E + W + C, offline=[W[2]]), "azure-centralus-")
    assert plan.remove == tuple(C)


def test_a_region_not_in_the_group_removes_nothing() -> None:
    assert departure_plan(group(E[0], E), "azure-westus-").remove == ()


def test_every_stack_is_deleted_dependents_first(deployed: dict[str, Evaluation]) -> None:
    for stack, evaluation in deployed.items():
        order = delete_order(evaluation)
        assert len(order) == len(evaluation.resources), stack
        position = {r.urn: i for i, r in enumerate(order)}
        for resource in order:
            for needed in dependencies(resource) & position.keys():
                assert position[resource.urn] < position[needed], (stack, resource.name)
        assert create_order(evaluation) == list(reversed(order))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("url", ["tls://127.0.0.1:{port}", "tls://gone.invalid:4222"])
def test_a_silent_endpoint_is_given_up_on_after_unreachable_seconds(url: str) -> None:
    """nats-py 2.x retries a refused first connect without end when asked not to reconnect;
    each attempt is bounded, so teardown ends near `unreachable_seconds`."""
    ca = issue_ca(ca_spec("destroy-plan"))
    connection = Connection(
        url=url.format(port=_closed_port()),
        ca_pem=ca.cert_pem.decode(),
        cert_pem=ca.cert_pem.decode(),  # any certificate: nothing answers to check it
        key_pem=ca.key_pem.decode(),
        unreachable_seconds=2,
    ).for_teardown()
    started = time.monotonic()
    with pytest.raises(JetStreamUnreachableError, match="within 2 s"):
        asyncio.run(asyncio.wait_for(connect(connection), 10))  # the old code never ended
    assert time.monotonic() - started < 4
