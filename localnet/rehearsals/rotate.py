"""Certificate rotation without downtime, under traffic.

1. Leaves: every server and client certificate re-issued by the same CA. The servers reload
   (the chart's reloader sends SIGHUP when a mounted file changes); the clients take the new
   files into their TLS context (services.tls_files), so nothing reconnects.
2. The CA, through a trust bundle, in three stages applied region by region, as three
   `pulumi up` rounds over the stacks (pki.caGenerations / pki.issuingGeneration):
   trust (every party trusts old and new CA), issue (every certificate re-issued by the new
   CA), retire (only the new CA is trusted). At no moment does a region or a client refuse
   another: the gateways stay connected and no request fails.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import nats
from cryptography import x509

from infra.identities import identity
from infra.pki import ca_spec, client_spec
from localnet.demo import Supercluster
from localnet.options import DemoOptions
from localnet.pki import issue, issue_ca
from localnet.region import LocalRegion
from localnet.rehearsals.common import Report, Say, stream_messages, wait_until
from localnet.traffic import Traffic
from services.tls_files import CHECK_SECONDS


def served_issuer(region: LocalRegion) -> str:
    """The issuer of the certificate a new client connection is shown."""
    context = ssl.create_default_context(cafile=str(region.workdir / "ca.crt"))
    with socket.create_connection((region.lb_address, region.lb_client_port), timeout=5) as raw:
        raw.recv(4096)  # INFO in the clear, then TLS
        with context.wrap_socket(raw, server_hostname=region.spec.endpoint) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).issuer.rfc4514_string()


def _connects(region: LocalRegion, cert: bytes, key: bytes, workdir: Path) -> bool:
    """Whether a client with this certificate is let in (and may make a round trip)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "c.crt").write_bytes(cert)
    (workdir / "c.key").write_bytes(key)

    async def attempt() -> bool:
        context = ssl.create_default_context(cafile=str(region.workdir / "ca.crt"))
        context.load_cert_chain(str(workdir / "c.crt"), str(workdir / "c.key"))
        try:
            client = await nats.connect(
                servers=[f"tls://{region.lb_address}:{region.lb_client_port}"],
                tls=context,
                tls_hostname=region.spec.endpoint,
                error_cb=_quiet,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=3,
            )
        except (OSError, ssl.SSLError, nats.errors.Error):
            return False
        try:
            await client.flush(timeout=3)
            return True
        except (OSError, nats.errors.Error, TimeoutError):
            return False
        finally:
            await client.close()

    return asyncio.run(attempt())


async def _quiet(_error: Exception) -> None:
    """A refused client's errors are the expected outcome here, not news."""


class Rotation:
    """Applies a step region by region, reloading each region's servers, and checks after each
    that the regions still reach one another."""

    def __init__(self, cluster: Supercluster, say: Say) -> None:
        self.cluster = cluster
        self.say = say
        self.reload_errors: list[str] = []
        self.mesh_broken: list[str] = []

    def step(self, what: str, change: Callable[[LocalRegion], None]) -> None:
        for name, region in self.cluster.regions.items():
            change(region)
            for ordinal in range(region.spec.replicas):
                error = region.reload(ordinal)
                if error:
                    self.reload_errors.append(f"{what}, {region.spec.names.pod(ordinal)}: {error}")
            if not all(self.cluster.gateways(n) for n in self.cluster.regions):
                self.mesh_broken.append(f"{what}, after {name}")
            self.say(f"{what}: {name} done")
        time.sleep(CHECK_SECONDS + 1)  # the clients' next look at their files


def rehearse(workdir: Path, say: Say, *, rtt_ms: float = 10.0) -> Report:
    report = Report("certificate rotation: leaves, then the CA through a trust bundle")
    cluster = Supercluster(
        DemoOptions(state_dir=workdir / "supercluster", rtt_ms=rtt_ms, recorder=False), say=say
    )
    try:
        cluster.up()
        east = cluster.regions["east"]
        old_ca = east.ca
        new_ca = issue_ca(ca_spec("nats-supercluster", generation=2))
        messages_before = stream_messages(east)
        calculator_logs = sorted((cluster.options.state_dir / "logs").glob("calculator-*.log"))
        log_sizes = {p: p.stat().st_size for p in calculator_logs}
        rotation = Rotation(cluster, say)
        traffic = [Traffic(region).start() for region in cluster.regions.values()]
        time.sleep(1)

        rotation.step("re-issued leaves (same CA)", lambda r: r.issue_certificates(old_ca))
        rotation.step("stage 1, trust old + new CA", lambda r: r.trust([old_ca, new_ca]))
        rotation.step("stage 2, issue by the new CA", lambda r: r.issue_certificates(new_ca))
        rotation.step("stage 3, retire the old CA", lambda r: r.trust([new_ca]))
        wait_until(
            lambda: all(cluster.gateways(n) for n in cluster.regions), 30, "gateways connected"
        )
        summaries = [t.stop() for t in traffic]

        issuers = {name: served_issuer(region) for name, region in cluster.regions.items()}
        stale = issue(client_spec(identity("requester")), old_ca)
        fresh = issue(client_spec(identity("requester")), new_ca)
        old_refused = not _connects(east, stale.cert_pem, stale.key_pem, workdir / "old")
        new_accepted = _connects(east, fresh.cert_pem, fresh.key_pem, workdir / "new")
        calculator_disconnects = sum(
            path.read_bytes()[log_sizes[path] :].count(b"disconnected from nats")
            for path in calculator_logs
        )
        published = sum(s.published for s in summaries)
        stored = stream_messages(east) - messages_before
        for summary in summaries:
            report.figure(summary.line())
        report.figure(
            f"servers reloaded 4 times each, errors {rotation.reload_errors or 'none'}; "
            f"gateways checked after every region's step, broken {rotation.mesh_broken or 'never'}"
        )
        report.figure(
            f"issuer now shown to clients: {sorted(set(issuers.values()))}; a client "
            f"certificate of the old CA {'refused' if old_refused else 'ACCEPTED'}, of the new "
            f"CA {'accepted' if new_accepted else 'REFUSED'}; calculator disconnects "
            f"{calculator_disconnects}"
        )
        report.promise(
            "every reload applied and the gateways stayed connected at every step",
            not rotation.reload_errors and not rotation.mesh_broken,
        )
        report.promise(
            f"0 client disconnects, 0 failed requests, 0 answers lost ({published} published, "
            f"{stored} stored)",
            all(s.disconnects == 0 and s.failed == 0 for s in summaries)
            and calculator_disconnects == 0
            and stored == published,
        )
        report.promise(
            "afterwards only the new CA is trusted: servers show its certificates, a client "
            "certificate of the old CA is refused, one of the new is accepted",
            set(issuers.values()) == {"CN=nats-supercluster CA 2,O=nats-supercluster"}
            and old_refused
            and new_accepted,
        )
    finally:
        cluster.down()
    return report
