"""The JetStream dynamic provider against real servers, called as the Pulumi engine calls it:
create, a second run, in-place update, replacement, drift, delete, adoption, retries.

`solo` is a 1-server region, `trio` a 3-server one (replicas 3); both are reached through their
load balancer with TLS hostname checks and the admin certificate, as in the clouds.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi.dynamic import CreateResult, ReadResult

from components.jetstream import JetStreamProvider
from infra.jetstream import (
    ConsumerSpec,
    KvSpec,
    StreamSpec,
    consumer_request,
    kv_request,
    stream_request,
)
from infra.jetstream_ops import (
    Connection,
    JetStreamApiError,
    JetStreamUnreachableError,
    ObjectDiffersError,
    Target,
    with_admin,
)
from localnet.clients import admin_connection
from localnet.region import LocalRegion
from localnet.supercluster import RegionPlan, plan_supercluster

pytestmark = pytest.mark.live


def _region(tmp: Path, name: str, replicas: int) -> LocalRegion:
    plan = RegionPlan(
        name,
        f"{name}.lb.nats.test",
        "127.0.0.1",
        "local-",
        replicas=replicas,
        standalone=replicas == 1,
    )
    (region,) = plan_supercluster(tmp, [plan])
    region.write()
    region.start()
    return region


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegion]:
    region = _region(tmp_path_factory.mktemp("solo"), "solo", 1)
    yield region
    region.stop()


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegion]:
    region = _region(tmp_path_factory.mktemp("trio"), "trio", 3)
    yield region
    region.stop()


def connection(region: LocalRegion, timeout: float = 30) -> dict[str, Any]:
    return {**admin_connection(region), "timeout_seconds": timeout}


def stream_props(region: LocalRegion, **spec: Any) -> dict[str, Any]:
    request = stream_request(StreamSpec(**spec), region.name, region.spec.replicas)
    return {"connection": connection(region), "kind": "stream", "adopt": False, **request}


def consumer_props(region: LocalRegion, **spec: Any) -> dict[str, Any]:
    consumer = ConsumerSpec(**spec)
    return {
        "connection": connection(region),
        "kind": "consumer",
        "adopt": False,
        "stream": consumer.stream,
        **consumer_request(consumer),
    }


def server_view(props: dict[str, Any]) -> dict[str, Any] | None:
    """What the server holds for the fields the props manage, read independently."""
    request = {
        k: v
        for k, v in props.items()
        if k not in ("connection", "kind", "stream", "adopt", "action")
    }
    target = Target(props["kind"], request, props.get("stream", ""))

    result: dict[str, Any] | None = asyncio.run(
        with_admin(Connection.from_inputs(props["connection"]), target.read)
    )
    return result


def out_of_band(region: LocalRegion, subject: str, body: dict[str, Any]) -> None:
    asyncio.run(
        with_admin(Connection.from_inputs(connection(region)), lambda a: a.api(subject, body))
    )


provider = JetStreamProvider()


def outs(result: CreateResult | ReadResult) -> dict[str, Any]:
    assert result.outs is not None
    return dict(result.outs)


def test_stream_lifecycle(solo: LocalRegion) -> None:
    props = stream_props(solo, name="orders", subjects=["orders.>"], max_age="1h")
    created = provider.create(props)
    assert created.id == "orders"
    assert outs(created)["action"] == "created"
    assert server_view(props) == {
        k: v for k, v in props.items() if k not in ("connection", "kind", "adopt")
    }

    again = provider.create(props)  # a second run finds it identical and adopts it
    assert outs(again)["action"] == "adopted"
    assert provider.diff("orders", props, props).changes is False

    longer = {**props, "max_age": 2 * props["max_age"], "description": "kept two hours"}
    diff = provider.diff("orders", props, longer)
    assert diff.changes is True
    assert diff.replaces == []
    provider.update("orders", props, longer)
    view = server_view(longer)
    assert view is not None
    assert view["max_age"] == longer["max_age"]
    assert view["description"] == "kept two hours"

    provider.delete("orders", longer)
    assert server_view(longer) is None
    assert provider.read("orders", longer).id is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"storage": "memory"}, "storage"),
        ({"retention": "workqueue"}, "retention"),
    ],
)
def test_what_the_server_cannot_update_is_a_replacement(
    solo: LocalRegion, change: dict[str, str], field: str
) -> None:
    props = stream_props(solo, name=f"imm-{field}", subjects=[f"imm.{field}"])
    provider.create(props)
    changed = {**props, **change}
    diff = provider.diff(props["name"], props, changed)
    assert diff.replaces == [field]
    assert diff.delete_before_replace is True
    with pytest.raises(JetStreamApiError, match="can not change"):
        provider.update(props["name"], props, changed)  # the server agrees: no in-place update
    provider.delete(props["name"], props)


def test_cancelling_deny_delete_is_a_replacement(solo: LocalRegion) -> None:
    props = stream_props(solo, name="audit", subjects=["audit.>"], deny_delete=True)
    provider.create(props)
    relaxed = {**props, "deny_delete": False}
    assert provider.diff("audit", props, relaxed).replaces == ["deny_delete"]
    with pytest.raises(JetStreamApiError, match="can not cancel deny"):
        provider.update("audit", props, relaxed)
    stricter = stream_props(solo, name="audit2", subjects=["audit2.>"])
    provider.create(stricter)
    assert provider.diff("audit2", stricter, {**stricter, "deny_delete": True}).replaces == []
    for p in (props, stricter):
        provider.delete(p["name"], p)


def test_drift_is_reported_by_read(solo: LocalRegion) -> None:
    props = stream_props(solo, name="drifty", subjects=["drifty.>"], max_age="1h")
    provider.create(props)
    out_of_band(
        solo,
        "STREAM.UPDATE.drifty",
        {
            **{k: v for k, v in props.items() if k not in ("connection", "kind", "adopt")},
            "max_age": 7_200_000_000_000,
        },
    )
    refreshed = provider.read("drifty", props)
    assert outs(refreshed)["max_age"] == 7_200_000_000_000
    diff = provider.diff("drifty", outs(refreshed), props)
    assert diff.changes is True
    assert diff.replaces == []
    provider.update("drifty", outs(refreshed), props)
    assert server_view(props)["max_age"] == props["max_age"]  # type: ignore[index]
    provider.delete("drifty", props)


def test_an_existing_different_stream_is_adopted_only_when_asked(solo: LocalRegion) -> None:
    theirs = stream_props(solo, name="legacy", subjects=["legacy.>"], max_age="1h")
    provider.create(theirs)
    ours = stream_props(solo, name="legacy", subjects=["legacy.>"], max_age="5d")
    with pytest.raises(ObjectDiffersError, match="set adopt: true"):
        provider.create(ours)
    taken = provider.create({**ours, "adopt": True})
    assert outs(taken)["action"] == "updated"
    assert server_view(ours)["max_age"] == ours["max_age"]  # type: ignore[index]
    provider.delete("legacy", ours)


def test_consumer_lifecycle(solo: LocalRegion) -> None:
    stream = stream_props(
        solo, name="answers", subjects=["answers.significant", "answers.throwaway"]
    )
    provider.create(stream)
    props = consumer_props(
        solo,
        stream="answers",
        name="recorder",
        max_deliver=5,
        backoff=["1s", "5s"],
        filter_subjects=["answers.significant"],
    )
    created = provider.create(props)
    assert created.id == "answers/recorder"
    assert outs(provider.create(props))["action"] == "adopted"
    patient = {**props, "max_ack_pending": 50, "max_deliver": 9}
    assert provider.diff("answers/recorder", props, patient).replaces == []
    provider.update("answers/recorder", props, patient)
    assert server_view(patient)["max_ack_pending"] == 50  # type: ignore[index]
    latest = {**patient, "deliver_policy": "new"}
    assert provider.diff("answers/recorder", patient, latest).replaces == ["deliver_policy"]
    with pytest.raises(JetStreamApiError, match="can not be updated"):
        provider.update("answers/recorder", patient, latest)
    provider.delete("answers/recorder", patient)
    assert server_view(patient) is None
    provider.delete("answers", stream)


def test_kv_bucket_lifecycle(solo: LocalRegion) -> None:
    request = kv_request(KvSpec(bucket="settings", history=5, ttl="1h"), "solo", 1)
    props = {"connection": connection(solo), "kind": "stream", "adopt": False, **request}
    assert provider.create(props).id == "KV_settings"
    deeper = {**props, "max_msgs_per_subject": 10}
    assert provider.diff("KV_settings", props, deeper).replaces == []
    provider.update("KV_settings", props, deeper)
    assert server_view(deeper)["max_msgs_per_subject"] == 10  # type: ignore[index]
    in_memory = {**deeper, "storage": "memory"}
    assert provider.diff("KV_settings", deeper, in_memory).replaces == ["storage"]
    provider.delete("KV_settings", deeper)


def test_the_server_refusing_a_config_is_a_clear_error(solo: LocalRegion) -> None:
    props = stream_props(solo, name="toomany", subjects=["toomany.>"], replicas=3)
    with pytest.raises(JetStreamApiError, match=r"(?i)insufficient resources|replicas"):
        provider.create(props)


def test_replicas_three_are_spread_over_the_cluster(trio: LocalRegion) -> None:
    props = stream_props(trio, name="orders", subjects=["orders.>"])
    assert props["num_replicas"] == 3
    provider.create(props)

    info = asyncio.run(
        with_admin(Connection.from_inputs(props["connection"]), lambda a: a.stream_info("orders"))
    )
    cluster = info["cluster"]
    assert cluster["name"] == "trio"
    assert cluster["leader"].startswith("local-trio-")
    assert len(cluster["replicas"]) == 2
    provider.delete("orders", props)


def test_unreachable_then_reached_when_the_server_starts(solo: LocalRegion) -> None:
    solo.stop_server(0)
    props = stream_props(solo, name="late", subjects=["late.>"])
    props["connection"]["timeout_seconds"] = 60
    result: dict[str, Any] = {}

    def create() -> None:
        started = time.monotonic()
        result["outs"] = provider.create(props).outs
        result["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=create)
    worker.start()
    time.sleep(3)
    assert worker.is_alive()  # still retrying
    solo.restart_server(0)
    worker.join(timeout=60)
    assert result["outs"]["action"] == "created"
    assert result["seconds"] >= 3
    provider.delete("late", props)


def test_unreachable_past_the_limit_is_a_clear_error(solo: LocalRegion) -> None:
    solo.stop_server(0)
    try:
        props = stream_props(solo, name="never", subjects=["never.>"])
        props["connection"]["timeout_seconds"] = 2
        started = time.monotonic()
        with pytest.raises(JetStreamUnreachableError, match=r"within 2 s .*attempts"):
            provider.create(props)
        assert 2 <= time.monotonic() - started < 15
    finally:
        solo.restart_server(0)
