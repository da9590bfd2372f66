"""Who calls the control service, as far as it can know, and where it may answer. Standard
library only: the control service in the services image uses it.

nats-server v2.14.2 writes `Nats-Request-Info` (accounts.go:163 ClientInfoHdr) only into a
message that crosses a service import: client.go processServiceImport places the requester's
client info there (client.go:4895-4948), through setHeader (client.go:4611), which drops any
value the client wrote first. So the admin, who calls through APP's import, is named by the
server; the `system` identity, which calls the reads in the system account directly, crosses no
import, and its header is whatever it wrote. Nothing the service keys a decision on, the log
throttle included, is taken from that header."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence


def caller(headers: Mapping[str, str] | None) -> str:
    """Who made a request, as `Nats-Request-Info` says: the server's word for a request that
    came through the import (account and user, the certificate's subject), the caller's own
    for one that did not (see above)."""
    raw = (headers or {}).get("Nats-Request-Info")
    if not raw:
        return "unknown (no Nats-Request-Info header)"
    try:
        info = json.loads(raw)
    except ValueError:
        return "unknown (unreadable Nats-Request-Info header)"
    if not isinstance(info, dict):
        return "unknown (unreadable Nats-Request-Info header)"
    return f"{str(info.get('user') or '?')[:200]} in account {str(info.get('acc') or '?')[:64]}"


def reply_allowed(reply: str, prefixes: Sequence[str]) -> bool:
    """The control service answers only into its callers' inboxes: a reply subject naming
    anything else (an API) would make it a deputy."""
    return bool(reply) and any(reply.startswith(p) for p in prefixes)
