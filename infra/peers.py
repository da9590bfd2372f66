"""Other regions of the supercluster, as read from their stacks' outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.config_model import ConfigIssue
from infra.jetstream_domain import DeclaredStream, streams_from_summary
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


def gateway_pins(own_cluster: str, own_pin: str, reading: PeerReading) -> dict[str, list[str]]:
    """The server keys of this region and of each deployed peer that publishes one, by NATS
    cluster name: what the control service may pin when it cuts a region off."""
    pins = {own_cluster: [own_pin]}
    pins.update({p.cluster_name: [p.gateway_pin] for p in reading.peers if p.gateway_pin})
    return pins


def referenced_stack_issues(
    own_cluster: str,
    peers: Mapping[str, str],
    ca_stack: str | None,
    found: Mapping[str, Mapping[str, Any] | None],
) -> list[ConfigIssue]:
    """What the stacks this one reads say about its config, checked before anything exists.
    `peers`: each `peers` entry -> its qualified name; `ca_stack`: the qualified name of the CA's
    stack when another stack owns it; `found`: qualified name -> its outputs, None when no such
    stack exists."""
    issues: list[ConfigIssue] = []
    names: dict[str, str] = {}
    for entry, qualified in peers.items():
        outputs = found.get(qualified)
        if outputs is None:
            issues.append(
                ConfigIssue(
                    "peers",
                    f"stack {qualified!r} does not exist (`pulumi stack ls`); create and deploy "
                    "it first, or remove it from peers",
                    entry,
                    has_value=True,
                )
            )
            continue
        name = outputs.get("natsClusterName")
        if not name:
            continue  # created but not deployed: it connects to this region when it is
        if name == own_cluster:
            issues.append(
                ConfigIssue(
                    "clusterName",
                    f"is already the NATS cluster name of peer stack {qualified!r}; two regions "
                    "with one name would merge into one gateway: give this region its own",
                    own_cluster,
                    has_value=True,
                )
            )
        elif name in names:
            issues.append(
                ConfigIssue(
                    "peers",
                    f"{names[name]!r} and {qualified!r} both use NATS cluster name {name!r}",
                    entry,
                    has_value=True,
                )
            )
        names[str(name)] = qualified
    if ca_stack is not None:
        outputs = found.get(ca_stack)
        if outputs is None:
            issues.append(
                ConfigIssue(
                    "pki.caStack",
                    f"stack {ca_stack!r} does not exist (`pulumi stack ls`); name the stack "
                    "that owns the CA (the one without pki.caStack), deployed first",
                    ca_stack,
                    has_value=True,
                )
            )
        elif not outputs.get("caCerts"):
            issues.append(
                ConfigIssue(
                    "pki.caStack",
                    f"stack {ca_stack!r} publishes no CA (no caCerts output): it is not the CA's "
                    "stack, or it is not deployed yet (deploy it first)",
                    ca_stack,
                    has_value=True,
                )
            )
    return issues
