"""Which changes the servers apply by reload and which need a restart, on real servers: the
program's restart fingerprint (infra.nats_conf) must change exactly when a reload cannot apply
the change, so the chart rolls the servers for those and only those (a reloadable change rolling
every pod would restart a JetStream region for nothing)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509

from infra.pki import server_sans, server_spec
from localnet.pki import issue
from localnet.region import LocalRegion
from localnet.rehearsals.reload import CHANGES, apply
from localnet.supercluster import RegionPlan, plan_supercluster

pytestmark = pytest.mark.live

Change = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegion]:
    (east,) = plan_supercluster(
        tmp_path_factory.mktemp("reload"),
        [RegionPlan("east", "east.lb.nats.test", "127.0.0.1", "aws-us-east-1-")],
    )
    east.write()
    east.start()
    yield east
    east.stop()


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_restart_fingerprint_changes_exactly_when_a_reload_cannot_apply(
    region: LocalRegion, change: str
) -> None:
    edit, reloadable = CHANGES[change]
    moved, reloaded, errors = apply(region, edit)
    assert reloaded is reloadable, errors
    assert moved is not reloadable
    if not reloadable:
        assert all(e and "config reload not supported" in e for e in errors), errors


def test_certificates_are_reloaded_without_a_restart(region: LocalRegion) -> None:
    """Re-issued server certificate files, then a reload: new connections get the new
    certificate, the servers keep running, the fingerprint (which sees only the paths) stays."""
    before = _served_serial(region)
    started = [region.monitor(i, "varz")["start"] for i in range(3)]
    names = region.spec.names
    sans = server_sans(names.service, names.headless_service, names.namespace, region.spec.endpoint)
    renewed = issue(server_spec(sans), region.ca)
    (region.workdir / "server.crt").write_bytes(renewed.cert_pem)
    (region.workdir / "server.key").write_bytes(renewed.key_pem)
    assert [region.reload(i) for i in range(3)] == [None] * 3
    assert _served_serial(region) == x509.load_pem_x509_certificate(renewed.cert_pem).serial_number
    assert _served_serial(region) != before
    assert [region.monitor(i, "varz")["start"] for i in range(3)] == started


def _served_serial(region: LocalRegion) -> int:
    """The serial number of the certificate the servers present to a new client."""
    context = ssl.create_default_context(cafile=str(region.workdir / "ca.crt"))
    with socket.create_connection((region.lb_address, region.lb_client_port), timeout=5) as raw:
        raw.recv(4096)  # NATS sends INFO in the clear first, then the client starts TLS
        with context.wrap_socket(raw, server_hostname=region.spec.endpoint) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number
