"""The JetStream quorum rule over regions, with no dependency beyond the standard library: the
program warns with it and the control service (in the services image) reports it."""

from __future__ import annotations

from collections.abc import Mapping


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
