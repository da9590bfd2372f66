"""The supercluster's CAs for this stack: made here if it owns them, read from the owning stack
otherwise; and what the stack trusts and signs with (pki.caGenerations, pki.issuingGeneration)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.peers import PeerStacks
from components.pki import SuperclusterCas, Trust, trust
from infra.config import StackConfig


@dataclass(frozen=True)
class OwnedCas:
    """What the owning stack publishes for the others: each generation's certificate, and
    (secret) key."""

    certs: dict[str, pulumi.Output[str]]
    keys: pulumi.Output[dict[str, str]]


def supercluster_trust(
    name: str, config: StackConfig, peers: PeerStacks
) -> tuple[Trust, OwnedCas | None]:
    generations = list(config.pki.ca_generations)
    if config.owns_ca:
        cas = SuperclusterCas(f"{name}-ca", config.project, generations)
        certs, keys = cas.certs, cas.keys
        owned = OwnedCas(
            {str(g): pem for g, pem in certs.items()},
            pulumi.Output.secret(pulumi.Output.all(**{str(g): key for g, key in keys.items()})),
        )
    else:
        certs, keys = peers.cas(config.pki.ca_stack, generations)
        owned = None
    return trust(certs, keys, generations, config.pki.issuing), owned
