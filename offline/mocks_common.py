"""What every mock answer is made of: the mocked AWS account and Azure subscription, how a
secret input is marked, and deterministic tokens (the same names give the same ids each run)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

ACCOUNT_ID = "123456789012"
SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"


def digest(*parts: str, length: int = 12) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def unwrap(value: Any) -> Any:
    """Mocks see secret inputs wrapped; clouds see the plain value."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """A registered input as the provider receives it, secrets unwrapped."""
    return unwrap(value)


def fake_pem_b64(name: str) -> str:
    body = base64.b64encode(f"mock certificate authority for {name}".encode()).decode()
    pem = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
    return base64.b64encode(pem.encode()).decode()
