"""How long a `config.put` may take, from its arrival to its answer, and how long the CLI waits
for that answer: one place for both, so the CLI never gives up on a put the service is still
bound to answer. Standard library only: the control service in the services image uses it."""

from __future__ import annotations

import time
from dataclasses import dataclass

# A put is answered within PUT_SECONDS of its arrival: at most QUEUE_SECONDS waiting behind the
# put before it (then it is answered busy, nothing changed), the rest for its own work.
PUT_SECONDS = 50.0
QUEUE_SECONDS = 10.0
# What the CLI (`./dev control`, localnet/control.py) waits: the budget and the round trips.
CLI_SECONDS = PUT_SECONDS + 10.0
# VERIFY_SECONDS at most: the verification of a change, and of its rollback, each fit half of
# the work budget with the checks and the reloads before them.
MAX_VERIFY_SECONDS = 15
# How long one server's reload is asked again when it does not answer.
RELOAD_SECONDS = 4.0
# One request to one server (services/server_asks.py), and a round of verification: a server
# that does not answer is waited for over its own connection (twice this), then the service's.
ASK_SECONDS = 1.0
ROUND_SECONDS = 3 * ASK_SECONDS


@dataclass(frozen=True)
class Budget:
    """When a put's change must have shown (checks, reloads, verification), and when its
    rollback must have (reloads, verification): monotonic times."""

    applied: float
    restored: float

    @classmethod
    def starting(cls, now: float | None = None) -> Budget:
        """The budget of a put whose work starts `now` (default: this moment): half the work
        budget for each phase, each less the round of verification that may end after it."""
        start = time.monotonic() if now is None else now
        phase = (PUT_SECONDS - QUEUE_SECONDS) / 2 - ROUND_SECONDS
        return cls(start + phase, start + 2 * phase + ROUND_SECONDS)


def window(seconds: float, until: float, now: float | None = None) -> float:
    """`seconds`, or what is left until `until` if that is less (never below 0)."""
    left = until - (time.monotonic() if now is None else now)
    return max(0.0, min(seconds, left))
