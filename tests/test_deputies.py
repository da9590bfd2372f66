"""Confused deputies, on the real supercluster (the `control_cluster` fixture, from east): whoever
answers a message publishes to the reply subject its sender chose, so each answer is an attack
on whatever subject a client names. Seven deputies answer for the clients outside JetStream's
account (APP):

- a calculator's answer and a calculator's error reply (division by zero: an empty body), for
  the requester (SERVICES);
- JetStream's publish ack, when the requester publishes `answers.significant` through its
  import;
- a pull request's status (409 or 404: an empty body) and a pull request's message, when the
  recorder (RECORDER) calls `$JS.API.CONSUMER.MSG.NEXT.answers.recorder` through its import (a
  delivered message keeps its stream subject, `answers.significant`, so even inside APP it
  reaches no API and no key; it is aimed all the same);
- an ack's (empty) confirmation and `+NXT`'s status (its next request asks for a status only),
  when the recorder acks through its import.

Each is aimed at four targets, `$JS.API.STREAM.DELETE.answers`, `$JS.API.STREAM.PURGE.answers`,
`$JS.API.CONSUMER.DELETE.answers.recorder` and a KV key (`$KV.deputies.target`): 7 x 4 = 28
attacks. No attacker's own publish is refused (permissions do not look at reply subjects); each
attack must end in the one observed way expected of its deputy:

- a calculator's answer or error reply is refused by the calculator's own publish permissions
  (only inboxes and import mappings): the servers log the violation;
- JetStream answers into the import's reply mapping: an admin subscription on `_R_.>` in APP
  sees each answer go there, and the mapping leads back into the attacker's own account, which
  has no stream and no JetStream (the `$JS.API.>` nats-server imports into every account
  answers there only "JetStream not enabled for account").

An admin subscription on the four targets in APP sees nothing arrive, and afterwards the stream
(its first sequence, its count but for the messages published here), its consumer and the key
are as they were. The deputies still serve their clients.

The control, that the targets are live: tests/test_deputies_control.py.

Left behind: nothing this module published (its messages are deleted from `answers`), but the
recorder's consumer has acknowledged the one message the recorder pulled (its ack confirmations
are real acks) and holds four more delivered and unacknowledged (the pull-message attacks'),
which it redelivers.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from infra.identities import ANSWERS_STREAM, RECORDER_CONSUMER, IdentityName, identity
from infra.jetstream import kv_stream_name
from infra.jetstream_ops import JetStreamAdmin, JetStreamApiError
from localnet.clients import connect_as
from localnet.demo import Supercluster
from localnet.region import LocalRegion
from tests.deputies_kit import (
    BUCKET,
    NEXT,
    STATUS_ONLY,
    TARGETS,
    ServerLogs,
    decoded,
    deputies_bucket,
    last_message,
    pull,
    until,
)

pytestmark = pytest.mark.live

MARKER = "Deputies-Test"  # a header on every message this module publishes into `answers`
# Where JetStream answers a request imported into APP: the servers' reply mappings.
IMPORT_REPLIES = "_R_.>"
SEEDS = 6


@pytest.fixture(scope="module")
def east(control_cluster: Supercluster) -> LocalRegion:
    return control_cluster.regions["east"]


@pytest.fixture(scope="module")
def bucket(east: LocalRegion) -> Iterator[str]:
    with deputies_bucket(east) as name:
        yield name


# --- the attacks ------------------------------------------------------------------------------


@dataclass
class Watch:
    """The admin listening in APP: on the targets, where nothing may arrive, and on the import
    reply mappings, where JetStream answers whoever called it through an import."""

    arrived: list[Msg] = field(default_factory=list)
    rerouted: list[Msg] = field(default_factory=list)

    async def start(self, admin: Client) -> None:
        async def on_target(msg: Msg) -> None:
            self.arrived.append(msg)

        async def on_mapping(msg: Msg) -> None:
            self.rerouted.append(msg)

        for target in TARGETS.values():
            await admin.subscribe(target, cb=on_target)
        await admin.subscribe(IMPORT_REPLIES, cb=on_mapping)
        await admin.flush()


@dataclass
class Attackers:
    requester: Client
    recorder: Client
    # What the servers said to each (a refused publish would be here).
    errors: dict[IdentityName, list[str]]
    # The ack subject of the message the recorder pulled, as the recorder does.
    ack_subject: str = ""

    def client(self, who: IdentityName) -> Client:
        return self.requester if who == "requester" else self.recorder


Attack = Callable[[Attackers, str], Awaitable[None]]


async def calculator_answer(kit: Attackers, target: str) -> None:
    await kit.requester.publish("math.numbers.add", b'{"a": 1, "b": 2}', reply=target)


async def calculator_error(kit: Attackers, target: str) -> None:
    await kit.requester.publish("math.numbers.divide", b'{"a": 1, "b": 0}', reply=target)


async def publish_ack(kit: Attackers, target: str) -> None:
    await kit.requester.publish(
        "answers.significant", b'{"deputies": "ack"}', reply=target, headers={MARKER: "attack"}
    )


async def pull_status(kit: Attackers, target: str) -> None:
    await kit.recorder.publish(NEXT, STATUS_ONLY, reply=target)


async def pull_message(kit: Attackers, target: str) -> None:
    await kit.recorder.publish(NEXT, b'{"batch": 1, "no_wait": true}', reply=target)


async def ack_confirmation(kit: Attackers, target: str) -> None:
    await kit.recorder.publish(kit.ack_subject, b"+ACK", reply=target)


async def ack_next(kit: Attackers, target: str) -> None:
    await kit.recorder.publish(kit.ack_subject, b"+NXT " + STATUS_ONLY, reply=target)


Stopper = Literal["deputy's permissions", "import mapping"]


@dataclass(frozen=True)
class Deputy:
    name: str
    attack: Attack
    # The identity that aims it, and what must stop it.
    attacker: IdentityName
    stopper: Stopper


DEPUTIES = [
    Deputy("calculator answer", calculator_answer, "requester", "deputy's permissions"),
    Deputy("calculator error reply", calculator_error, "requester", "deputy's permissions"),
    Deputy("publish ack", publish_ack, "requester", "import mapping"),
    Deputy("pull status", pull_status, "recorder", "import mapping"),
    Deputy("pull message", pull_message, "recorder", "import mapping"),
    Deputy("ack confirmation", ack_confirmation, "recorder", "import mapping"),
    Deputy("+NXT", ack_next, "recorder", "import mapping"),
]


def _describe(msg: Msg) -> str:
    headers = msg.headers or {}
    if "Status" in headers:
        return f"status {headers['Status']} {headers.get('Description', '')}".strip()
    if msg.reply.startswith("$JS.ACK."):
        return f"the message of stream seq {msg.reply.split('.')[-4]}"
    if not msg.data:
        return "an empty confirmation"
    return f"`{msg.data.decode()}`"


@dataclass(frozen=True)
class State:
    stream: dict[str, Any]
    consumer: dict[str, Any]
    key: dict[str, Any]
    bucket: dict[str, Any]


async def _state(js: JetStreamAdmin) -> State:
    return State(
        stream=await js.stream_info(ANSWERS_STREAM),
        consumer=await js.api(f"CONSUMER.INFO.{ANSWERS_STREAM}.{RECORDER_CONSUMER}"),
        key=await last_message(js, kv_stream_name(BUCKET), TARGETS["KV key"]),
        bucket=(await js.stream_info(kv_stream_name(BUCKET)))["state"],
    )


def test_no_deputy_acts_on_app_for_services_or_recorder(
    control_cluster: Supercluster, east: LocalRegion, bucket: str
) -> None:
    rows = asyncio.run(_attack_all(control_cluster, east, bucket))
    print("\n| deputy | aimed at | what stopped it |\n|---|---|---|")
    for row in rows:
        print(f"| {' | '.join(row)} |")
    assert len(rows) == len(DEPUTIES) * len(TARGETS) == 28


async def _connect(
    region: LocalRegion, who: IdentityName, errors: dict[IdentityName, list[str]]
) -> Client:
    said = errors.setdefault(who, [])

    async def on_error(error: Exception) -> None:
        said.append(str(error))

    return await connect_as(region, who, error_cb=on_error)


async def _attack_all(
    cluster: Supercluster, east: LocalRegion, bucket: str
) -> list[tuple[str, str, str]]:
    assert bucket == BUCKET
    admin = await connect_as(east, "admin")
    errors: dict[IdentityName, list[str]] = {}
    kit = Attackers(
        await _connect(east, "requester", errors), await _connect(east, "recorder", errors), errors
    )
    js = JetStreamAdmin(admin, timeout_seconds=20)
    watch = Watch()
    before = await _state(js)
    published: list[int] = []
    try:
        await watch.start(admin)
        # Messages for the pull and ack attacks, published as the requester publishes.
        for n in range(SEEDS):
            ack = await kit.requester.request(
                "answers.significant", b'{"deputies": %d}' % n, timeout=5, headers={MARKER: "seed"}
            )
            published.append(int(json.loads(ack.data)["seq"]))
        kit.ack_subject = (await pull(kit.recorder, "recorder", NEXT)).reply

        async def seen_by_watch() -> bool:  # the seeds' acks and the pulled message
            return len(watch.rerouted) == SEEDS + 1

        await until(seen_by_watch, "the admin sees JetStream answer through the mappings")
        watch.rerouted.clear()

        logs = ServerLogs(cluster)
        rows = []
        for deputy in DEPUTIES:
            for label, target in TARGETS.items():
                outcome, answer = await _attack(kit, watch, logs, deputy, target)
                rows.append((deputy.name, label, outcome))
                if deputy.attack is publish_ack:
                    assert answer is not None
                    published.append(int(json.loads(answer.data)["seq"]))

        await asyncio.sleep(0.5)  # anything late arrives now
        assert watch.arrived == [], [(m.subject, m.headers, m.data) for m in watch.arrived]
        _assert_unchanged(before, await _state(js), published)
        await _still_served(kit)
        assert errors == {"requester": [], "recorder": []}
        return rows
    finally:
        await _forget(js, before)
        for client in (kit.requester, kit.recorder, admin):
            await client.close()


async def _attack(
    kit: Attackers, watch: Watch, logs: ServerLogs, deputy: Deputy, target: str
) -> tuple[str, Msg | None]:
    """One deputy aimed at one target: what stopped it, and JetStream's answer if it gave one."""
    who = deputy.attacker
    logs.mark()
    told, answered, arrived = len(kit.errors[who]), len(watch.rerouted), len(watch.arrived)
    await deputy.attack(kit, target)
    await kit.client(who).flush()
    violation = f'Publish Violation - Subject "{target}"'

    def violations() -> list[str]:
        return [line for line in logs.lines() if violation in line]

    async def stopped() -> bool:
        if len(kit.errors[who]) > told:  # the attacker's own publish refused
            return True
        if deputy.stopper == "deputy's permissions":
            return bool(violations())
        return len(watch.rerouted) > answered

    await until(stopped, f"{deputy.name} aimed at {target}: what stopped it")
    assert kit.errors[who][told:] == [], (deputy.name, target, kit.errors[who][told:])
    assert len(watch.arrived) == arrived, f"{deputy.name} reached {target} in APP"
    if deputy.stopper == "deputy's permissions":
        (line, *others) = violations()
        assert others == [], others
        assert '"SERVICES/user:CN=calculator,O=nats-supercluster"' in line, line
        return f"the calculator's publish permissions (servers log `{violation}`)", None
    (answer, *more) = watch.rerouted[answered:]
    assert more == [], (deputy.name, target, [_describe(m) for m in more])
    home = "SERVICES" if who == "requester" else "RECORDER"
    return (
        f"JetStream answered ({_describe(answer)}) into the import's reply mapping (`_R_.…` "
        f"in APP), which leads back to {home}, where JetStream is not enabled",
        answer,
    )


async def _still_served(kit: Attackers) -> None:
    """The calculators answer the requester; the recorder's consumer is there for it. (Its
    CONSUMER.INFO gets two answers, one from APP through the import and one from RECORDER's own
    `$JS.API.>`, which nats-server imports from the system account into every account and which
    says "JetStream not enabled for account"; either may come first.)"""
    answer = await kit.requester.request("math.numbers.add", b'{"a": 2, "b": 3}', timeout=5)
    assert json.loads(answer.data)["result"] == 5
    inbox = f"{identity('recorder').inbox_prefix}.deputies.{uuid.uuid4().hex}"
    answers: list[dict[str, Any]] = []

    async def on_answer(msg: Msg) -> None:
        answers.append(json.loads(msg.data))

    subscription = await kit.recorder.subscribe(inbox, cb=on_answer)
    try:
        await kit.recorder.publish(
            f"$JS.API.CONSUMER.INFO.{ANSWERS_STREAM}.{RECORDER_CONSUMER}", b"", reply=inbox
        )

        async def info() -> bool:
            return any(a.get("name") == RECORDER_CONSUMER for a in answers)

        await until(info, "the recorder reads its consumer's info")
    finally:
        await subscription.unsubscribe()


def _assert_unchanged(before: State, after: State, published: list[int]) -> None:
    """The stream, its consumer and the key as they were; the stream grew by exactly the
    messages published here (a publish-ack attack stores its message, as any publish does)."""
    assert after.stream["created"] == before.stream["created"]
    assert after.stream["config"] == before.stream["config"]
    assert after.consumer["created"] == before.consumer["created"]
    assert after.consumer["config"] == before.consumer["config"]
    old, new = before.stream["state"], after.stream["state"]
    assert len(published) == len(set(published)) == SEEDS + len(TARGETS), published
    assert new["first_seq"] == (old["first_seq"] or min(published)), (old, new)
    assert new["messages"] == old["messages"] + len(published), (old, new, published)
    assert new["last_seq"] == old["last_seq"] + len(published), (old, new, published)
    assert after.key == before.key
    assert after.bucket["messages"] == before.bucket["messages"]
    assert after.bucket["last_seq"] == before.bucket["last_seq"]


async def _forget(js: JetStreamAdmin, before: State) -> None:
    """Delete what this module published into `answers`: the stream holds what it held."""
    first = int(before.stream["state"]["last_seq"]) + 1
    last = int((await js.stream_info(ANSWERS_STREAM))["state"]["last_seq"])
    for seq in range(first, last + 1):
        try:
            found = await js.api(f"STREAM.MSG.GET.{ANSWERS_STREAM}", {"seq": seq})
        except JetStreamApiError:
            continue
        if MARKER.encode() in decoded(found["message"], "hdrs"):
            await js.api(f"STREAM.MSG.DELETE.{ANSWERS_STREAM}", {"seq": seq, "no_erase": True})
    messages = (await js.stream_info(ANSWERS_STREAM))["state"]["messages"]
    assert messages == before.stream["state"]["messages"]
