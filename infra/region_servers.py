"""A region's servers as its release has them, whoever answers, and the route URLs that name
them. The control service is told them (SERVERS, NAMESPACE) and expects every one in a put, so
a server that is paused, restarting or gone is missed, not simply left out; and a route must
name one of them by a name its certificate carries, at its cluster port. Standard library
only: the control service in the services image uses it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from infra.route_grammar import parse_route

# The names a server is reached at inside its cluster, below `<pod>.<cluster>-headless`: the
# forms every server certificate carries (infra/pki.py in_cluster_names), the namespace's.
QUALIFIERS = ("", ".{namespace}", ".{namespace}.svc", ".{namespace}.svc.cluster.local")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)


@dataclass(frozen=True)
class RegionRelease:
    """The region (its NATS cluster), the release's namespace and its servers: server name
    (`<prefix><cluster>-<ordinal>`) -> cluster port."""

    region: str
    namespace: str
    servers: Mapping[str, int] = field(default_factory=dict)


def pod_of(server_name: str, region: str) -> str | None:
    """The pod a server runs in: server names are `<prefix><cluster>-<ordinal>` (the chart's
    serverNamePrefix and the StatefulSet's pod name)."""
    match = re.fullmatch(rf"(?:.*-)?({re.escape(region)}-[0-9]+)", server_name, re.ASCII)
    return match.group(1) if match else None


def servers_setting(names: Sequence[str], cluster_port: int | Sequence[int]) -> str:
    """SERVERS as the release writes it: each server's name and cluster port (one port for all,
    as in a cluster, or one per server, as on one machine)."""
    ports = [cluster_port] * len(names) if isinstance(cluster_port, int) else list(cluster_port)
    return json.dumps(dict(zip(names, ports, strict=True)))


def parse_servers(text: str, region: str) -> dict[str, int]:
    """SERVERS: `{"<server name>": <cluster port>, ...}`, at least one, each named after a pod
    of `region`; ValueError saying what is wrong."""
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise ValueError(f"SERVERS is not JSON: {error}") from None
    if not isinstance(raw, dict) or not raw:
        raise ValueError('SERVERS must map each server to its cluster port: {"east-0": 6222}')
    servers = {}
    for name, port in raw.items():
        if pod_of(name, region) is None:
            raise ValueError(
                f"SERVERS: {name[:80]!r} is not a server of {region} (<prefix>{region}-N)"
            )
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"SERVERS[{name!r}]: a port, 1-65535")
        servers[name] = port
    return servers


def check_namespace(namespace: str) -> str:
    """NAMESPACE: the release's namespace, a DNS label (RFC 1123, as Kubernetes names it)."""
    if not _LABEL.fullmatch(namespace):
        raise ValueError(f"NAMESPACE must be a lower-case DNS label, got {namespace[:80]!r}")
    return namespace


def route_hosts(pod: str, release: RegionRelease) -> tuple[str, ...]:
    """Every host a route may name `pod` by."""
    base = f"{pod}.{release.region}-headless"
    return tuple(base + q.format(namespace=release.namespace) for q in QUALIFIERS)


def names_server(route: str, name: str, cluster_port: int, release: RegionRelease) -> bool:
    """Whether `route` dials the server `name`: one of its hosts, at its cluster port."""
    pod = pod_of(name, release.region)
    parsed = parse_route(route)
    return (
        pod is not None and parsed.port == cluster_port and parsed.host in route_hosts(pod, release)
    )


def foreign(routes: Sequence[str], ports: Mapping[str, int], release: RegionRelease) -> list[int]:
    """The indexes of the routes that name none of the servers in `ports` (name -> cluster
    port)."""
    return [
        index
        for index, route in enumerate(routes)
        if not any(names_server(route, name, port, release) for name, port in ports.items())
    ]
