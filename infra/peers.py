"""Other regions of the supercluster, as read from their stacks' outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.jetstream import DeclaredStream, streams_from_summary
from infra.nats_values import Gateway


def stack_reference_name(peer: str, organization: str, project: str) -> str:
    """`east` means `<organization>/<project>/east`; a qualified name is taken as it is."""
    return peer if "/" in peer else f"{organization}/{project}/{peer}"


@dataclass(frozen=True)
class PeerRegion:
    stack: str
    cluster_name: str
    gateway_url: str
    jetstream_servers: int
    streams: tuple[DeclaredStream, ...] = ()
    gateway_pin: str | None = None  # its servers' key (None: a stack from before the pins)


@dataclass(frozen=True)
class PeerReading:
    peers: tuple[PeerRegion, ...]
    skipped: tuple[str, ...]


def read_peers(own_cluster: str, outputs: Mapping[str, Mapping[str, Any] | None]) -> PeerReading:
    """Peers whose stacks have been deployed; a stack with no gateway yet (not deployed, or
    destroyed) is skipped with a reason rather than failing this region. Two regions with one
    NATS cluster name would merge into one gateway: that is an error."""
    peers: list[PeerRegion] = []
    skipped: list[str] = []
    for stack, values in outputs.items():
        if not values or not values.get("gatewayUrl") or not values.get("natsClusterName"):
            skipped.append(
                f"peer stack {stack!r} has no gatewayUrl output yet (not deployed?); "
                "it will connect to this region when it is deployed"
            )
            continue
        name = str(values["natsClusterName"])
        if name == own_cluster or any(p.cluster_name == name for p in peers):
            raise ValueError(
                f"peer stack {stack!r} uses NATS cluster name {name!r}, which "
                "another region already has; set a unique clusterName"
            )
        peers.append(
            PeerRegion(
                stack,
                name,
                str(values["gatewayUrl"]),
                int(values.get("jetstreamServers") or 0),
                tuple(streams_from_summary(values.get("jetstream"))),
                str(values["gatewayPin"]) if values.get("gatewayPin") else None,
            )
        )
    return PeerReading(tuple(peers), tuple(skipped))


def peer_gateways(reading: PeerReading) -> tuple[Gateway, ...]:
    return tuple(Gateway(p.cluster_name, p.gateway_url) for p in reading.peers)


def quorum_warning(jetstream_servers: Mapping[str, int]) -> str | None:
    """JetStream's meta group needs a majority of all JetStream servers. If cutting one region
    off from the others leaves neither side a majority, that partition stops JetStream updates
    everywhere (nats-server issue 4502): say so, and how to avoid it."""
    total = sum(jetstream_servers.values())
    if len(jetstream_servers) < 2 or total == 0:
        return None
    majority = total // 2 + 1
    fragile = sorted(
        region
        for region, servers in jetstream_servers.items()
        if servers < majority and total - servers < majority
    )
    if not fragile:
        return None
    counts = ", ".join(f"{r}={n}" for r, n in sorted(jetstream_servers.items()))
    return (
        f"JetStream quorum: {total} servers ({counts}) need {majority} for a meta leader; if "
        f"{' or '.join(fragile)} is cut off from the rest, neither side keeps a majority and "
        "JetStream stops everywhere. Add a small third region (README, 'JetStream quorum') or "
        "turn JetStream off in one region."
    )


def gateway_pins(own_cluster: str, own_pin: str, reading: PeerReading) -> dict[str, list[str]]:
    """The server keys of this region and of each deployed peer that publishes one, by NATS
    cluster name: what the control service may pin when it cuts a region off."""
    pins = {own_cluster: [own_pin]}
    pins.update({p.cluster_name: [p.gateway_pin] for p in reading.peers if p.gateway_pin})
    return pins
