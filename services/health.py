"""Liveness for the Kubernetes probes: a service touches a file while it is connected to NATS;
`python -m services.health FILE MAX_AGE` succeeds while that file is fresh."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from nats.aio.client import Client

HEARTBEAT_FILE = Path("/tmp/healthy")
INTERVAL_SECONDS = 5.0


async def heartbeat(client: Client, path: Path) -> None:
    """Runs for the life of the service; stops touching the file while disconnected."""
    while True:
        if client.is_connected:
            path.touch()
        await asyncio.sleep(INTERVAL_SECONDS)


def fresh(path: Path, max_age_seconds: float, now: float | None = None) -> bool:
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age <= max_age_seconds


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HEARTBEAT_FILE
    limit = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    sys.exit(0 if fresh(target, limit) else 1)
