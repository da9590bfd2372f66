"""A stolen pod key must not make a server: a `nats-server` holding a client identity's key and
certificate (signed by the supercluster's own CA) tries to join a region's cluster through its
route port and the supercluster through a region's public gateway load balancer. As a control,
the same intruder with a server certificate does join, so the refusal is the identity's doing.

The intruder skips verifying the server it dials (`insecure`), as an attacker would; the
accepting servers map its certificate's subject to the one user routes and gateways accept
(infra.identities.SERVER_SUBJECT_DN, nats-server auth.go isRouterAuthorized /
isGatewayAuthorized at v2.14.2).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.identities import IDENTITIES
from infra.pki import SubjectAltNames, client_spec, server_spec
from localnet.pki import issue
from localnet.ports import LOOPBACK, free_port
from localnet.region import LocalRegion
from localnet.supercluster import RegionPlan, running_supercluster
from services.config_check import server_binary as nats_server_binary

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LocalRegion]]:
    with running_supercluster(
        tmp_path_factory.mktemp("intruders"),
        [
            RegionPlan("east", "east.lb.nats.test", "127.0.0.1", "aws-us-east-1-"),
            RegionPlan("west", "127.0.0.2", "127.0.0.2", "azure-westus-"),
        ],
    ) as regions:
        yield regions


class Intruder:
    """A nats-server of the attacker's, with the key and certificate it stole."""

    def __init__(self, workdir: Path, region: LocalRegion, holding: str, block: dict[str, object]):
        workdir.mkdir(parents=True)
        if holding == "server":
            stolen = issue(server_spec(SubjectAltNames(("localhost",), ())), region.ca)
            (workdir / "tls.crt").write_bytes(stolen.cert_pem)
            (workdir / "tls.key").write_bytes(stolen.key_pem)
        else:
            cert, key, _ = region.client_files(holding)
            (workdir / "tls.crt").write_bytes(cert.read_bytes())
            (workdir / "tls.key").write_bytes(key.read_bytes())
        tls = {
            "cert_file": str(workdir / "tls.crt"),
            "key_file": str(workdir / "tls.key"),
            "ca_file": str(region.workdir / "ca.crt"),
            "insecure": True,
        }
        name = f"intruder-{holding}"
        conf = {
            "server_name": name,
            "host": LOOPBACK,
            "port": free_port(),
            **{key: {**value, "tls": tls} for key, value in block.items()},  # type: ignore[dict-item]
        }
        (workdir / "nats.conf").write_text(json.dumps(conf, indent=2))
        self.name = name
        self.log = workdir / "server.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [nats_server_binary(), "-c", str(workdir / "nats.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def logged(self, text: str) -> bool:
        return text in self.log.read_text()


def _routes(region: LocalRegion) -> set[str]:
    return {
        str(r.get("remote_name", ""))
        for i in range(region.spec.replicas)
        for r in region.monitor(i, "routez").get("routes") or []
    }


def _inbound_gateways(region: LocalRegion) -> set[str]:
    return {
        name
        for i in range(region.spec.replicas)
        for name in region.monitor(i, "gatewayz").get("inbound_gateways") or {}
    }


def _joined_or_refused(intruder: Intruder, joined: object, error: str) -> bool:
    """Waits until the intruder is in, or the region has told it why not."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if callable(joined) and joined():
            return True
        if intruder.logged(error):
            return False
        time.sleep(0.2)
    raise TimeoutError(f"{intruder.name}: neither joined nor refused; see {intruder.log}")


@pytest.mark.parametrize(
    ("holding", "joins"),
    [("server", True), ("calculator", False), ("requester", False), ("admin", False)],
)
def test_only_a_server_identity_opens_a_route(
    regions: dict[str, LocalRegion], tmp_path: Path, holding: str, joins: bool
) -> None:
    east = regions["east"]
    route = f"tls://{LOOPBACK}:{east.ports[0].cluster}"
    intruder = Intruder(
        tmp_path / "intruder",
        east,
        holding,
        {"cluster": {"name": "east", "host": LOOPBACK, "port": free_port(), "routes": [route]}},
    )
    try:
        joined = _joined_or_refused(
            intruder, lambda: intruder.name in _routes(east), "Authorization Violation"
        )
        assert joined is joins, intruder.log.read_text()[-2000:]
    finally:
        intruder.stop()


@pytest.mark.parametrize(("holding", "joins"), [("server", True), ("calculator", False)])
def test_only_a_server_identity_opens_a_gateway_through_the_public_load_balancer(
    regions: dict[str, LocalRegion], tmp_path: Path, holding: str, joins: bool
) -> None:
    west = regions["west"]
    public_gateway = f"tls://{west.lb_address}:{west.spec.gateway_port}"
    intruder = Intruder(
        tmp_path / "intruder",
        west,
        holding,
        {
            "gateway": {
                "name": f"rogue-{holding}",
                "host": LOOPBACK,
                "port": free_port(),
                "gateways": [{"name": "west", "urls": [public_gateway]}],
            }
        },
    )
    try:
        joined = _joined_or_refused(
            intruder,
            lambda: f"rogue-{holding}" in _inbound_gateways(west),
            "Authorization Violation",
        )
        assert joined is joins, intruder.log.read_text()[-2000:]
    finally:
        intruder.stop()


def test_the_client_identities_are_not_the_server_identity() -> None:
    """A guard on the naming: no client certificate may carry the servers' subject."""
    server = server_spec(SubjectAltNames((), ()))
    for who in IDENTITIES:
        spec = client_spec(who)
        assert (spec.common_name, spec.organizational_unit) != (
            server.common_name,
            server.organizational_unit,
        )
