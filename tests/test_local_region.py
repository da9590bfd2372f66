"""Two real 3-server regions, configured by the same functions as the cloud release, joined as the
clouds would be: east deployed first knowing no peer, west second listing east.

East's load balancer has a DNS name (like an AWS NLB), west's an IP (like an Azure LB).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from infra.identities import IDENTITIES, Identity, identity
from infra.pki import ca_spec, client_spec
from localnet.pki import issue, issue_ca
from localnet.region import LocalRegion
from localnet.supercluster import RegionPlan, running_supercluster

pytestmark = pytest.mark.live

EAST_NAME = "east.lb.nats.test"
WEST_IP = "127.0.0.2"


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LocalRegion]]:
    with running_supercluster(
        tmp_path_factory.mktemp("supercluster"),
        [
            RegionPlan("east", EAST_NAME, "127.0.0.1", "aws-us-east-1-"),
            RegionPlan("west", WEST_IP, WEST_IP, "azure-westus-"),
        ],
    ) as regions:
        _wait_for_mesh(list(regions.values()))
        yield regions


def _wait_for_mesh(regions: list[LocalRegion], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(
            _gateways(r, i) == ({o.name for o in regions} - {r.name},) * 2
            for r in regions
            for i in range(r.spec.replicas)
        ):
            return
        time.sleep(0.2)
    raise TimeoutError("gateways did not mesh")


def _gateways(region: LocalRegion, ordinal: int) -> tuple[set[str], set[str]]:
    gatewayz = region.monitor(ordinal, "gatewayz")
    return (
        set(gatewayz.get("outbound_gateways") or {}),
        set(gatewayz.get("inbound_gateways") or {}),
    )


def _tls(cert: Path | None, key: Path | None, ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


class Session:
    """A client connection that records the errors the server sends it (permission denials)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc = Client()

    async def on_error(self, error: Exception) -> None:
        self.errors.append(str(error).lower())

    def denied(self, verb: str, subject: str) -> bool:
        return any(
            f"permissions violation for {verb}" in e and subject.lower() in e for e in self.errors
        )


async def connect(
    region: LocalRegion,
    who: Identity,
    *,
    hostname: str | None = None,
    context: ssl.SSLContext | None = None,
) -> Session:
    session = Session()
    cert, key, ca = region.client_files(who.name)
    endpoint = region.spec.endpoint
    await session.nc.connect(
        servers=[f"tls://{region.lb_address}:{region.lb_client_port}"],
        tls=context or _tls(cert, key, ca),
        tls_hostname=hostname or endpoint,
        inbox_prefix=who.inbox_prefix.encode(),
        error_cb=session.on_error,
        allow_reconnect=False,
        connect_timeout=3,
        max_reconnect_attempts=0,
    )
    return session


async def request_when_served(session: Session, subject: str, timeout: float = 5.0) -> bytes:
    """Request, retrying while no responder is known yet: a subscription made through one
    server reaches the others (routes, gateways) a moment later."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return bytes((await session.nc.request(subject, b"{}", timeout=2)).data)
        except nats.errors.NoRespondersError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def assert_refused(region: LocalRegion, context: ssl.SSLContext) -> None:
    """Refused: connecting fails, or (TLS 1.3 lets the client finish its side of the handshake
    before the server has checked its certificate) the first round trip does."""
    try:
        session = await connect(region, identity("admin"), context=context)
    except (ssl.SSLError, NatsError, OSError):
        return
    try:
        with pytest.raises((ssl.SSLError, NatsError, OSError, asyncio.TimeoutError)):
            await session.nc.flush(timeout=3)
    finally:
        await session.nc.close()


@pytest_asyncio.fixture
async def east_admin(regions: dict[str, LocalRegion]) -> AsyncIterator[Session]:
    session = await connect(regions["east"], identity("admin"))
    yield session
    await session.nc.close()


def test_gateways_connect_both_ways_though_only_west_lists_east(
    regions: dict[str, LocalRegion],
) -> None:
    east, west = regions["east"], regions["west"]
    assert [g["name"] for g in _configured_gateways(east)] == ["east"]
    assert [g["name"] for g in _configured_gateways(west)] == ["west", "east"]
    for ordinal in range(3):
        assert _gateways(east, ordinal) == ({"west"}, {"west"})
        assert _gateways(west, ordinal) == ({"east"}, {"east"})


def _configured_gateways(region: LocalRegion) -> list[dict[str, object]]:
    from infra.nats_values import gateways  # noqa: PLC0415

    return gateways(region.spec)


def test_jetstream_has_one_meta_leader_over_both_regions(regions: dict[str, LocalRegion]) -> None:
    deadline = time.monotonic() + 30  # the election can outlast the gateways' meshing
    while True:
        metas = [region.monitor(0, "jsz")["meta_cluster"] for region in regions.values()]
        leaders = {meta.get("leader") for meta in metas}
        if None not in leaders or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [meta["cluster_size"] for meta in metas] == [6, 6]
    (leader,) = leaders
    assert leader is not None
    assert leader.startswith(("aws-us-east-1-east-", "azure-westus-west-"))


def test_server_names_are_unique_across_the_supercluster(regions: dict[str, LocalRegion]) -> None:
    names = [r.monitor(i, "varz")["server_name"] for r in regions.values() for i in range(3)]
    assert len(set(names)) == 6
    assert {n.rsplit("-", 2)[0] for n in names} == {"aws-us-east-1", "azure-westus"}


@pytest.mark.asyncio
async def test_clients_verify_the_endpoint_name_and_ip(regions: dict[str, LocalRegion]) -> None:
    for region in regions.values():
        session = await connect(region, identity("admin"))
        assert session.nc.is_connected
        await session.nc.close()
    with pytest.raises((ssl.SSLError, NatsError, OSError)):
        await connect(regions["east"], identity("admin"), hostname="impostor.example.com")


@pytest.mark.asyncio
async def test_a_client_without_a_certificate_is_refused(regions: dict[str, LocalRegion]) -> None:
    _, _, ca = regions["east"].client_files("admin")
    await assert_refused(regions["east"], _tls(None, None, ca))


@pytest.mark.asyncio
async def test_a_client_from_another_ca_is_refused(
    regions: dict[str, LocalRegion], tmp_path: Path
) -> None:
    foreign = issue(client_spec(identity("admin")), issue_ca(ca_spec("someone-else")))
    (tmp_path / "c.crt").write_bytes(foreign.cert_pem)
    (tmp_path / "c.key").write_bytes(foreign.key_pem)
    _, _, ca = regions["east"].client_files("admin")
    await assert_refused(regions["east"], _tls(tmp_path / "c.crt", tmp_path / "c.key", ca))


@pytest.mark.asyncio
async def test_a_certificate_of_our_ca_without_a_user_is_refused(
    regions: dict[str, LocalRegion], tmp_path: Path
) -> None:
    stranger = Identity(name="admin", account="APP")
    spec = client_spec(stranger)
    spec = type(spec)(common_name="mallory", organization=spec.organization, usages=spec.usages)
    issued = issue(spec, regions["east"].ca)
    (tmp_path / "m.crt").write_bytes(issued.cert_pem)
    (tmp_path / "m.key").write_bytes(issued.key_pem)
    _, _, ca = regions["east"].client_files("admin")
    await assert_refused(regions["east"], _tls(tmp_path / "m.crt", tmp_path / "m.key", ca))


# (identity, verb, subject, allowed): what each workload may and may not do.
MATRIX: list[tuple[str, str, str, bool]] = [
    ("requester", "publish", "math.numbers.add", True),
    ("requester", "publish", "answers.significant", True),
    ("requester", "publish", "answers.throwaway", True),
    ("requester", "publish", "answers.forged", False),
    ("requester", "publish", "$JS.API.STREAM.DELETE.answers", False),
    ("requester", "subscribe", "_INBOX.requester.x", True),
    ("requester", "subscribe", "_INBOX.recorder.x", False),
    ("requester", "subscribe", "math.numbers.add", False),
    ("calculator", "subscribe", "math.numbers.add", True),
    ("calculator", "subscribe", "$SRV.PING", True),
    ("calculator", "subscribe", "answers.significant", False),
    ("calculator", "subscribe", "_INBOX.requester.x", False),
    ("calculator", "publish", "math.numbers.add", False),
    ("calculator", "publish", "answers.significant", False),
    ("calculator", "publish", "_INBOX.requester.x", True),
    ("calculator", "publish", "_R_.abc.def", True),
    ("calculator", "publish", "_INBOX.admin.x", False),
    ("calculator", "publish", "_INBOX.recorder.x", False),
    ("calculator", "publish", "$JS.API.STREAM.DELETE.answers", False),
    ("calculator", "publish", "$SRV.PING", False),
    ("recorder", "publish", "$JS.API.CONSUMER.MSG.NEXT.answers.recorder", True),
    ("recorder", "publish", "$JS.API.CONSUMER.INFO.answers.recorder", True),
    ("recorder", "publish", "$JS.ACK.answers.recorder.1.2.3.4.5.6.7", True),
    ("recorder", "publish", "$JS.API.CONSUMER.MSG.NEXT.answers.other", False),
    ("recorder", "publish", "$JS.API.STREAM.PURGE.answers", False),
    ("recorder", "publish", "answers.significant", False),
    ("recorder", "subscribe", "_INBOX.recorder.x", True),
    ("recorder", "subscribe", "answers.>", False),
    ("recorder", "publish", "$JS.API.CONSUMER.DELETE.answers.recorder", False),
    ("admin", "publish", "anything.at.all", True),
    ("admin", "subscribe", ">", True),
    ("system", "publish", "$SYS.REQ.SERVER.PING", True),
    ("system", "publish", "$SYS.REQ.SERVER.PING.VARZ", True),
    ("system", "publish", "$SYS.REQ.SERVER.NDXYZ.JSZ", True),
    ("system", "publish", "$SYS.REQ.ACCOUNT.APP.CONNZ", True),
    ("system", "publish", "$SYS.REQ.SERVER.NDXYZ.KICK", False),
    ("system", "publish", "$SYS.REQ.SERVER.NDXYZ.LDM", False),
    ("system", "publish", "$SYS.REQ.SERVER.NDXYZ.RELOAD", False),
    ("system", "publish", "$SYS.REQ.SERVER.PING.PROFILEZ", False),
    ("system", "publish", "$JS.API.SERVER.REMOVE", False),
    ("system", "subscribe", "_INBOX.system.x", True),
    ("system", "subscribe", "$SYS.SERVER.>", True),
    ("system", "subscribe", "$SYS.REQ.>", False),
    ("system", "subscribe", ">", False),
    ("control", "publish", "$SYS.REQ.SERVER.NDXYZ.RELOAD", True),
    ("control", "publish", "$JS.API.SERVER.REMOVE", True),
    ("control", "publish", "$SYS.REQ.SERVER.PING.JSZ", True),
    ("control", "publish", "$SYS.REQ.SERVER.NDXYZ.KICK", False),
    ("control", "publish", "$JS.API.META.LEADER.STEPDOWN", False),
    ("control", "subscribe", "_INBOX.control.x", True),
    ("control", "subscribe", "$SYS.>", False),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("who", "verb", "subject", "allowed"), MATRIX, ids=[f"{w}-{v}-{s}" for w, v, s, _ in MATRIX]
)
async def test_permission_matrix(
    regions: dict[str, LocalRegion], who: str, verb: str, subject: str, allowed: bool
) -> None:
    session = await connect(regions["west"], identity(who))  # type: ignore[arg-type]
    try:
        if verb == "publish":
            await session.nc.publish(subject, b"probe")
        else:
            await session.nc.subscribe(subject)
        await session.nc.flush(timeout=3)
        await asyncio.sleep(0.05)
        verb_in_error = "publish" if verb == "publish" else "subscription"
        assert session.denied(verb_in_error, subject) is not allowed, session.errors
    finally:
        await session.nc.close()


def test_every_identity_is_in_the_matrix() -> None:
    assert {who for who, *_ in MATRIX} == {i.name for i in IDENTITIES}


@pytest.mark.asyncio
async def test_a_calculator_may_answer_requests_it_receives(
    regions: dict[str, LocalRegion],
) -> None:
    calculator = await connect(regions["east"], identity("calculator"))
    requester = await connect(regions["east"], identity("requester"))

    async def answer(msg: Msg) -> None:
        await msg.respond(b"42")

    await calculator.nc.subscribe("math.numbers.add", queue="math", cb=answer)
    await calculator.nc.flush()
    assert await request_when_served(requester, "math.numbers.add") == b"42"
    assert calculator.errors == []
    assert requester.errors == []
    await calculator.nc.close()
    await requester.nc.close()


@pytest.mark.asyncio
async def test_accounts_are_isolated(regions: dict[str, LocalRegion], east_admin: Session) -> None:
    system = await connect(regions["east"], identity("system"))
    leaked = await system.nc.subscribe("answers.significant")
    await system.nc.flush()
    await east_admin.nc.publish("answers.significant", b"app only")
    await east_admin.nc.flush()
    with pytest.raises(asyncio.TimeoutError):
        await leaked.next_msg(timeout=0.5)
    inbox = system.nc.new_inbox()
    pongs = await system.nc.subscribe(inbox)
    await system.nc.publish("$SYS.REQ.SERVER.PING", b"", reply=inbox)
    servers: set[bytes] = set()
    deadline = time.monotonic() + 3
    while len(servers) < 6 and time.monotonic() < deadline:
        msg = await pongs.next_msg(timeout=3)
        servers.add(msg.data.split(b'"name":"', 1)[1].split(b'"', 1)[0])
    assert len(servers) == 6
    await system.nc.close()


@pytest.mark.asyncio
async def test_queue_requests_are_served_in_the_requesters_region(
    regions: dict[str, LocalRegion],
) -> None:
    calculators = {
        name: await connect(region, identity("calculator")) for name, region in regions.items()
    }
    for name, session in calculators.items():

        async def answer(msg: Msg, served_by: bytes = name.encode()) -> None:
            await msg.respond(served_by)

        for _ in range(2):
            await session.nc.subscribe("math.numbers.add", queue="math", cb=answer)
        await session.nc.flush()
    for name, region in regions.items():
        requester = await connect(region, identity("requester"))
        await request_when_served(requester, "math.numbers.add")
        served = [
            (await requester.nc.request("math.numbers.add", b"{}", timeout=3)).data
            for _ in range(40)
        ]
        assert set(served) == {name.encode()}
        await requester.nc.close()

    await calculators["east"].nc.close()
    requester = await connect(regions["east"], identity("requester"))
    served = []
    for _ in range(20):
        try:
            served.append((await requester.nc.request("math.numbers.add", b"{}", timeout=2)).data)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            await asyncio.sleep(0.1)
    assert served
    assert set(served) == {b"west"}
    await requester.nc.close()
    await calculators["west"].nc.close()
