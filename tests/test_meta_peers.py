"""The meta group's membership kept in step with the region's servers: the pure decisions, and
the program's dynamic provider (components/meta_peers.py) against real servers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from components.meta_peers import MetaPeersProvider
from infra.meta_ops import MetaGroup, departed_peers, meta_group
from localnet.clients import admin_connection
from localnet.region import LocalRegion
from localnet.rehearsals.common import wait_until
from localnet.rehearsals.scale import meta_group_of
from localnet.supercluster import RegionPlan, running_supercluster


def _reply(server: str, leader: str, others: dict[str, bool]) -> dict[str, Any]:
    replicas = [{"name": n, "offline": off, "current": not off} for n, off in others.items()]
    return {
        "server": {"name": server},
        "data": {"meta_cluster": {"leader": leader, "cluster_size": 6, "replicas": replicas}},
    }


def test_the_group_is_read_from_its_leader_and_departed_peers_are_this_regions_only() -> None:
    replies = [
        _reply("east-1", "east-0", {"east-0": False}),  # a follower's partial view
        _reply("east-0", "east-0", {"east-1": False, "east-3": True, "west-0": True}),
    ]
    group = meta_group(replies)
    assert group == MetaGroup(
        "east-0",
        frozenset({"east-0", "east-1", "east-3", "west-0"}),
        frozenset({"east-3", "west-0"}),
        frozenset({"east-3", "west-0"}),  # offline peers are not current either
    )
    assert departed_peers(group, "east-", ["east-0", "east-1"]) == ["east-3"]
    assert departed_peers(group, "east-", []) == ["east-0", "east-1", "east-3"]
    with pytest.raises(ValueError, match="no server reported"):
        meta_group([{"server": {"name": "x"}, "data": {}}])


@pytest.fixture
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LocalRegion]]:
    with running_supercluster(
        tmp_path_factory.mktemp("meta"),
        [
            RegionPlan("east", "east.lb.nats.test", "127.0.0.1", "aws-us-east-1-"),
            RegionPlan("west", "west.lb.nats.test", "127.0.0.2", "azure-westus-"),
        ],
    ) as regions:
        east = regions["east"]
        wait_until(lambda: len(meta_group_of(east).peers) == 6, 30, "a meta group of 6")
        yield regions


def _props(region: LocalRegion, via: LocalRegion, servers: list[str]) -> dict[str, Any]:
    cert, key, _ = via.client_files("control")
    connection = {
        **admin_connection(via),
        "cert_pem": cert.read_text(),
        "key_pem": key.read_text(),
        "inbox_prefix": "_INBOX.control",
    }
    return {
        "connection": connection,
        "serverNamePrefix": region.spec.server_name_prefix,
        "servers": servers,
    }


@pytest.mark.live
def test_the_provider_removes_departed_servers_and_on_delete_the_whole_region(
    regions: dict[str, LocalRegion],
) -> None:
    east, west = regions["east"], regions["west"]
    names = [west.spec.server_name_prefix + west.spec.names.pod(i) for i in range(3)]
    provider = MetaPeersProvider()
    created = provider.create(_props(west, east, names)).outs
    assert created is not None
    assert created["removed"] == []  # nothing departed
    west.lame_duck([2])  # west scaled to 2: its last pod is gone
    updated = provider.update("azure-westus-", {}, _props(west, east, names[:2])).outs
    assert updated is not None
    assert updated["removed"] == ["azure-westus-west-2"]
    assert meta_group_of(east).peers == {f"aws-us-east-1-east-{i}" for i in range(3)} | set(
        names[:2]
    )
    provider.delete("azure-westus-", _props(west, east, names[:2]))  # west destroyed
    wait_until(
        lambda: meta_group_of(east).peers == {f"aws-us-east-1-east-{i}" for i in range(3)},
        30,
        "east alone in the meta group",
    )
