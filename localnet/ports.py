"""Where the local supercluster's programs listen: a port free now, never one the kernel might
hand to somebody else before the program binds it.

A port chosen by binding to port 0 comes from the kernel's ephemeral range, which is also where
every outgoing connection on the machine takes its local port; and another process choosing at
the same moment may be offered the same one. Between the choice and the server's own bind,
either can take it ("bind: address already in use", seen with three test workers). So ports are
chosen at random below the ephemeral range (/proc/sys/net/ipv4/ip_local_port_range), or from
the range in LOCALNET_PORTS ("low-high"), which the test workers set to disjoint slices; or
upward from a base (`--port-base`).
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"
PORTS_ENV = "LOCALNET_PORTS"
LOWEST = 10_000
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")

_HANDED_OUT: set[tuple[str, int]] = set()
_PORT_BASE: list[int] = []  # empty: at random in port_range()


def use_ports_from(base: int | None) -> None:
    """Hand out ports upward from `base` (skipping ones in use) instead of at random."""
    _PORT_BASE[:] = [base] if base else []


def port_range() -> tuple[int, int]:
    """The ports to choose from: LOCALNET_PORTS, or from LOWEST up to the ephemeral range."""
    configured = os.environ.get(PORTS_ENV, "")
    if configured:
        low, _, high = configured.partition("-")
        if not (low.isdigit() and high.isdigit() and 1024 <= int(low) < int(high) <= 65535):
            raise ValueError(f"{PORTS_ENV}={configured!r}: expected low-high within 1024-65535")
        return int(low), int(high)
    try:
        ephemeral_low = int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32_768  # Linux's default
    return LOWEST, max(ephemeral_low - 1, LOWEST + 1_000)


def free_port(host: str = LOOPBACK) -> int:
    """A port free now and not handed out before in this process (a program may not have
    bound the last one yet)."""
    low, high = port_range()
    for _ in range(10_000):
        if _PORT_BASE:
            candidate = _PORT_BASE[0]
            _PORT_BASE[0] += 1
            if candidate > 65535:
                raise RuntimeError("no free port left above the configured base")
        else:
            candidate = random.randint(low, high)
        if (host, candidate) in _HANDED_OUT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((host, candidate))
            except OSError:
                continue  # in use: try another
        _HANDED_OUT.add((host, candidate))
        return candidate
    raise RuntimeError(f"no free port found in {low}-{high}")
