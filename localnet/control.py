"""`./dev control status|get|put`: the control service of a region of a running `./dev demo
--keep-running`, called as that region's admin (through the APP account's import), the way
`nats req supercluster.<region>.<endpoint>` does with the admin context in the clouds."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import Any

import nats

from infra.identities import CONTROL_PREFIX
from infra.put_budget import CLI_SECONDS

ENDPOINTS = {"status": "status", "get": "config.get", "put": "config.put"}
# The service's error codes: a request refused before anything changed, a change that failed
# verification and was rolled back, a read turned away while too many wait.
OUTCOMES = {"400": "refused", "500": "failed", "503": "busy"}
REGIONS_FILE = "regions.json"


def connection_of(state_dir: Path, region: str) -> dict[str, str]:
    """What the demo wrote of each region (`regions.json`): its load balancer and files."""
    path = state_dir / REGIONS_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: start the local supercluster with `./dev demo --keep-running`"
        )
    regions: dict[str, dict[str, str]] = json.loads(path.read_text())
    if region not in regions:
        raise KeyError(f"no region {region!r} in {path}; regions: {', '.join(sorted(regions))}")
    return regions[region]


async def call(
    connection: dict[str, str],
    region: str,
    endpoint: str,
    body: dict[str, Any] | None,
    seconds: float = CLI_SECONDS,
) -> tuple[bool, Any]:
    """(True, answer) or (False, the service's error description)."""
    context = ssl.create_default_context(cafile=connection["ca"])
    context.load_cert_chain(connection["cert"], connection["key"])
    client = await nats.connect(
        servers=[connection["url"]],
        tls=context,
        tls_hostname=connection["tls_hostname"],
        inbox_prefix=b"_INBOX.admin",
        allow_reconnect=False,
    )
    try:
        reply = await client.request(
            f"{CONTROL_PREFIX}.{region}.{ENDPOINTS[endpoint]}",
            json.dumps(body).encode() if body is not None else b"",
            timeout=seconds,
        )
    finally:
        await client.close()
    headers = reply.headers or {}
    code = headers.get("Nats-Service-Error-Code")
    if code:
        return False, f"{OUTCOMES.get(code, 'error ' + code)}: {headers.get('Nats-Service-Error')}"
    return True, json.loads(reply.data)


NO_ANSWER = (
    "no answer within {seconds:g} s from the control service of {region}. A put may still have "
    "been applied: removing a running server's route closes that route's connections, and a "
    "reply crossing them is lost with them. `./dev control get --region {region}` shows the "
    "routes and the history; a put is declarative, so repeating it is safe."
)


def run(
    state_dir: Path,
    region: str,
    endpoint: str,
    body: dict[str, Any] | None,
    seconds: float = CLI_SECONDS,
) -> int:
    """0: answered; 1: refused (the service's error); 2: nobody answered. `seconds`: longer
    than the service takes to answer a put at the most (infra/put_budget.py)."""
    connection = connection_of(state_dir, region)
    try:
        ok, answer = asyncio.run(call(connection, region, endpoint, body, seconds))
    except nats.errors.NoRespondersError:
        print(
            f"no control service of {region} is serving (is `./dev demo` still running? Right "
            "after a route change, the server this request reached may not see it yet: ask "
            "again; a put is declarative, so repeating it is safe)"
        )
        return 2
    except nats.errors.TimeoutError:
        print(NO_ANSWER.format(seconds=seconds, region=region))
        return 2
    print(json.dumps(answer, indent=2) if ok else answer)
    return 0 if ok else 1
