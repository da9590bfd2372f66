"""Connecting to a local region as one of its identities: that identity's certificate and
inbox prefix, through the region's load balancer (as clients in the clouds do) or straight to
one of its servers; a service's environment and the provider's connection say the same."""

from __future__ import annotations

import json
import os
import ssl
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client

from infra.identities import MATH_OPERATIONS, IdentityName, identity
from localnet.ports import LOOPBACK
from localnet.region import LocalRegion
from services.calculator import subject as calculator_subject


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


def service_env(
    region: LocalRegion, identity: str, extra: dict[str, str], health_file: Path
) -> dict[str, str]:
    """A service's environment: the region's load balancer, the identity's own files."""
    cert, key, ca = region.client_files(identity)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NATS_URL": f"tls://{region.lb_address}:{region.lb_client_port}",
        "NATS_TLS_HOSTNAME": region.spec.endpoint,
        "NATS_CA_FILE": str(ca),
        "NATS_CERT_FILE": str(cert),
        "NATS_KEY_FILE": str(key),
        "REGION": region.name,
        "HEALTH_FILE": str(health_file),
        **extra,
    }


def admin_connection(region: LocalRegion) -> dict[str, Any]:
    cert, key, ca = region.client_files("admin")
    return {
        "url": f"tls://{region.lb_address}:{region.lb_client_port}",
        "tls_hostname": region.spec.endpoint,
        "ca_pem": ca.read_text(),
        "cert_pem": cert.read_text(),
        "key_pem": key.read_text(),
        "timeout_seconds": 60,
    }


async def served_in_region(region: LocalRegion) -> bool:
    """A request for each operation, entering at each server of the region as the requester,
    answered from the region itself."""
    probe = json.dumps({"a": 1, "b": 1}).encode()
    for ordinal, process in enumerate(region.processes):
        if process is None:
            continue
        client = await connect_as(region, "requester", server=ordinal, dont_randomize=True)
        try:
            for operation in MATH_OPERATIONS:
                try:
                    reply = await client.request(calculator_subject(operation), probe, timeout=2)
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    return False
                if json.loads(reply.data).get("region") != region.name:
                    return False
        finally:
            await client.close()
    return True
