"""Connecting to a local region as one of its identities: that identity's certificate and
inbox prefix, through the region's load balancer (as clients in the clouds do) or straight to
one of its servers."""

from __future__ import annotations

import ssl
from typing import Any

import nats
from nats.aio.client import Client

from infra.identities import IdentityName, identity
from localnet.region import LOOPBACK, LocalRegion


async def connect_as(
    region: LocalRegion, who: IdentityName, *, server: int | None = None, **options: Any
) -> Client:
    """`options` go to nats.connect; reconnecting is off unless they turn it on."""
    cert, key, ca = region.client_files(who)
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    address = (
        f"{region.lb_address}:{region.lb_client_port}"
        if server is None
        else f"{LOOPBACK}:{region.ports[server].client}"
    )
    return await nats.connect(
        servers=[f"tls://{address}"],
        tls=context,
        tls_hostname=region.spec.endpoint,
        inbox_prefix=identity(who).inbox_prefix.encode(),
        **{"allow_reconnect": False, **options},
    )
