"""One region of the supercluster as processes on this machine.

Each server runs the configuration the chart would render from `chart_values` (infra/nats_conf),
changed only where a single machine differs from a Kubernetes cluster: ports (all servers share
one host), file paths (certificates and the JetStream store), and binding to loopback. Names stay
as in the cluster: routes dial `<pod>.<headless service>`, gateways dial the load balancer's name,
and certificates carry the SANs the cloud program issues. The servers resolve those names through
their own /etc/hosts, bound in a private mount namespace, so the machine's is never touched.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from infra.identities import IDENTITIES
from infra.nats_conf import render_nats_conf, to_nats_conf_text
from infra.nats_values import RegionSpec, chart_values, host_port
from infra.pki import client_spec, server_sans, server_spec, spki_pin
from infra.runtime_files import GATEWAYS_FILE, ROUTES_FILE, RUNTIME_DIR
from localnet.pki import Issued, issue
from localnet.ports import LOOPBACK, free_port
from localnet.processes import stop_with_parent
from localnet.proxy import TcpProxy
from services.config_check import server_binary as nats_server_binary


@dataclass(frozen=True)
class ServerPorts:
    client: int
    cluster: int
    gateway: int
    monitor: int

    @classmethod
    def allocate(cls) -> ServerPorts:
        return cls(free_port(), free_port(), free_port(), free_port())


@dataclass(frozen=True)
class LocalPaths:
    cert: Path
    key: Path
    ca: Path
    store: Path
    pid: Path


def localize(
    conf: dict[str, Any],
    ordinal_ports: list[ServerPorts],
    ordinal: int,
    paths: LocalPaths,
    *,
    standalone: bool = False,
) -> dict[str, Any]:
    """The chart's config for server `ordinal`, with loopback ports and local file paths.
    `standalone` drops routes and gateways: a single JetStream server of its own, which a
    clustered server can never be (it needs routes or peers to form its meta group)."""
    local = copy.deepcopy(conf)
    if standalone:
        local.pop("cluster", None)
        local.pop("gateway", None)
    ports = ordinal_ports[ordinal]
    local["host"] = LOOPBACK
    local["port"] = ports.client
    local["pid_file"] = str(paths.pid)
    local.pop("http_port", None)
    local["http"] = host_port(LOOPBACK, ports.monitor)
    blocks = (
        local.get("tls"),
        local.get("cluster", {}).get("tls"),
        local.get("gateway", {}).get("tls"),
    )
    for block in blocks:
        if block is not None:
            block.update(cert_file=str(paths.cert), key_file=str(paths.key), ca_file=str(paths.ca))
    if standalone:
        return local
    cluster = local["cluster"]
    cluster["host"] = LOOPBACK
    cluster["port"] = ports.cluster
    # Route i dials server i; a route to a server not planned here keeps its port.
    cluster["routes"] = [
        _with_port(route, ordinal_ports[i].cluster) if i < len(ordinal_ports) else route
        for i, route in enumerate(cluster["routes"])
    ]
    gateway = local["gateway"]
    gateway["host"] = LOOPBACK
    gateway["port"] = ports.gateway
    if "jetstream" in local:
        local["jetstream"]["store_dir"] = str(paths.store)
    return local


def _with_port(url: str, port: int) -> str:
    return f"{url.rsplit(':', 1)[0]}:{port}"


@dataclass
class LocalRegion:
    """A region's servers, certificates and load balancer under `workdir`."""

    spec: RegionSpec
    workdir: Path
    ca: Issued
    # Where the region's load balancer listens: its endpoint's address on this machine.
    lb_address: str
    lb_client_port: int
    hosts: dict[str, str]
    standalone: bool = False
    # Added to every gateway connection into this region, each way: the distance between
    # regions, which loopback does not have (and this kernel has no netem).
    gateway_delay_ms: float = 0.0
    ports: list[ServerPorts] = field(default_factory=list)
    # A nats-server binary per server where it is not the pinned one (a rolling upgrade).
    binaries: dict[int, str] = field(default_factory=dict)
    # The chart's rendering the servers' files were last written from.
    conf: dict[str, Any] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes] | None] = field(default_factory=list)
    proxies: list[TcpProxy] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.names.cluster

    @property
    def runtime_dir(self) -> Path:
        """The region's runtime configuration (the ConfigMap in the clouds), which each
        server's nats.conf includes from `../nats-runtime/`."""
        return self.workdir / RUNTIME_DIR

    def write(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.runtime_dir.mkdir(exist_ok=True)
        for included in (ROUTES_FILE, GATEWAYS_FILE):
            (self.runtime_dir / included).touch()
        self.trust([self.ca])
        self.issue_certificates(self.ca)
        (self.workdir / "hosts").write_text(
            "".join(f"{address} {name}\n" for name, address in sorted(self.hosts.items()))
        )
        self.ports = [ServerPorts.allocate() for _ in range(self.spec.replicas)]
        self.write_conf(render_nats_conf(chart_values(self.spec)))

    def trust(self, cas: list[Issued]) -> None:
        """The CA bundle the servers and this region's clients verify peers with (the chart's
        CA Secret and each client Secret's ca.crt); servers take it in on their next reload."""
        _replace(self.workdir / "ca.crt", b"".join(ca.cert_pem for ca in cas))

    def issue_certificates(self, ca: Issued) -> None:
        """The server certificate and every identity's client certificate, signed by `ca`, in
        place of the files the servers and clients use (servers on reload, clients on their
        next look at the files)."""
        names = self.spec.names
        sans = server_sans(
            names.service, names.headless_service, names.namespace, self.spec.endpoint
        )
        server = issue(server_spec(sans), ca)
        _replace(self.workdir / "server.key", server.key_pem, private=True)
        _replace(self.workdir / "server.crt", server.cert_pem)
        for who in IDENTITIES:
            client = issue(client_spec(who), ca)
            _replace(self.workdir / f"{who.name}.key", client.key_pem, private=True)
            _replace(self.workdir / f"{who.name}.crt", client.cert_pem)

    def gateway_pin(self) -> str:
        """The servers' key as gateway `pinned_certs` names it (the cloud's `gatewayPin`)."""
        cert = x509.load_pem_x509_certificate((self.workdir / "server.crt").read_bytes())
        public = cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return spki_pin(public.decode())

    def write_conf(self, conf: dict[str, Any]) -> None:
        """Each server's nats.conf from the chart's rendering `conf` (what the ConfigMap would
        hold), as the chart mounts it; running servers see it on their next reload."""
        self.conf = conf
        for ordinal in range(len(self.ports)):
            server_dir = self.workdir / self.spec.names.pod(ordinal)
            server_dir.mkdir(exist_ok=True)
            paths = LocalPaths(
                cert=self.workdir / "server.crt",
                key=self.workdir / "server.key",
                ca=self.workdir / "ca.crt",
                store=server_dir / "jetstream",
                pid=server_dir / "nats.pid",
            )
            local = localize(conf, self.ports, ordinal, paths, standalone=self.standalone)
            (server_dir / "nats.conf").write_text(to_nats_conf_text(local))

    def reload(self, ordinal: int, timeout: float = 15.0) -> str | None:
        """SIGHUP to the server, as the chart's config reloader sends on a file change; None
        when it reloaded, else the error it logged."""
        process = self.processes[ordinal]
        if process is None or process.poll() is not None:
            raise RuntimeError(f"{self.spec.names.pod(ordinal)} is not running")
        log = self.workdir / self.spec.names.pod(ordinal) / "server.log"
        seen = log.stat().st_size
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with log.open("rb") as handle:
                handle.seek(seen)
                text = handle.read().decode(errors="replace")
            for line in text.splitlines():
                if "Reloaded server configuration" in line:
                    return None
                if "Failed to reload server configuration" in line:
                    return line.split("Failed to reload server configuration:", 1)[-1].strip()
            time.sleep(0.1)
        raise TimeoutError(f"{self.spec.names.pod(ordinal)} did not report its reload")

    def start(self) -> None:
        """Start the servers and the load balancer; if they do not come up, stop them all."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.processes = [self.start_server(i) for i in range(self.spec.replicas)]
        self.proxies = [
            TcpProxy(
                (self.lb_address, self.lb_client_port), [(LOOPBACK, p.client) for p in self.ports]
            )
        ]
        if not self.standalone:
            self.proxies.append(
                TcpProxy(
                    (self.lb_address, self.spec.gateway_port),
                    [(LOOPBACK, p.gateway) for p in self.ports],
                    one_way_delay_ms=self.gateway_delay_ms,
                )
            )
        for proxy in self.proxies:
            proxy.start()
        for ordinal in range(self.spec.replicas):
            self.wait_healthy(ordinal)

    def start_server(self, ordinal: int) -> subprocess.Popen[bytes]:
        server_dir = self.workdir / self.spec.names.pod(ordinal)
        hosts = self.workdir / "hosts"
        binary = self.binaries.get(ordinal) or nats_server_binary()
        script = (
            f'mount --bind "{hosts}" /etc/hosts && exec "{binary}" -c "{server_dir / "nats.conf"}"'
        )

        env = {
            **os.environ,
            "SERVER_NAME": self.spec.server_name_prefix + self.spec.names.pod(ordinal),
        }
        with (server_dir / "server.log").open("ab") as log:
            return subprocess.Popen(
                [*stop_with_parent(), *_private_mounts(), "sh", "-c", script],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop_server(self, ordinal: int) -> None:
        process = self.processes[ordinal]
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes[ordinal] = None

    def lame_duck(self, ordinals: list[int], timeout: float = 60.0) -> None:
        """Lame duck mode, as the chart's preStop hook starts it (`nats-server -sl=ldm`):
        the server stops taking clients, hands its JetStream leaderships over, moves its
        clients away over the grace period and exits; several at once, as the StatefulSet
        (podManagementPolicy Parallel) terminates pods."""
        going = [(i, self.processes[i]) for i in ordinals]
        for _, process in going:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        for ordinal, process in going:
            if process is not None:
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.stop_server(ordinal)
            self.processes[ordinal] = None

    def add_hosts(self, names: list[str], address: str = LOOPBACK) -> None:
        """Names of new servers (or, with another `address`, names that must reach nothing),
        resolvable in every server's hosts file (a rewrite of the same file, which the servers'
        bind mounts see)."""
        self.hosts.update(dict.fromkeys(names, address))
        (self.workdir / "hosts").write_text(
            "".join(f"{address} {name}\n" for name, address in sorted(self.hosts.items()))
        )

    def restart_server(self, ordinal: int) -> None:
        self.stop_server(ordinal)
        self.processes[ordinal] = self.start_server(ordinal)
        self.wait_healthy(ordinal)

    def stop(self) -> None:
        for proxy in self.proxies:
            proxy.stop()
        self.proxies = []
        for ordinal in range(len(self.processes)):
            self.stop_server(ordinal)

    def monitor(self, ordinal: int, path: str) -> Any:
        url = f"http://{host_port(LOOPBACK, self.ports[ordinal].monitor)}/{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())

    def wait_healthy(self, ordinal: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{host_port(LOOPBACK, self.ports[ordinal].monitor)}/healthz"
        while True:
            process = self.processes[ordinal]
            if process is not None and process.poll() is not None:
                log = (self.workdir / self.spec.names.pod(ordinal) / "server.log").read_text()
                raise RuntimeError(f"{self.spec.names.pod(ordinal)} exited:\n{log[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.spec.names.pod(ordinal)} not healthy in {timeout}s")
            time.sleep(0.1)

    def client_files(self, identity: str) -> tuple[Path, Path, Path]:
        return (
            self.workdir / f"{identity}.crt",
            self.workdir / f"{identity}.key",
            self.workdir / "ca.crt",
        )


def _private_mounts() -> list[str]:
    """A mount namespace of the server's own: as root directly, otherwise as a user namespace."""
    if os.geteuid() == 0:
        return ["unshare", "--mount"]
    return ["unshare", "--user", "--map-root-user", "--mount"]


def _replace(path: Path, data: bytes, *, private: bool = False) -> None:
    """Whole or not at all, as Kubernetes swaps a Secret's files: a reader never sees half."""
    fresh = path.with_name(f".{path.name}.new")
    fresh.write_bytes(data)
    fresh.chmod(0o600 if private else 0o644)
    fresh.replace(path)
