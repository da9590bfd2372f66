"""A second `pulumi up` under mocks: every resource already in state is answered from it.

On an `up` after the first, the engine hands each resource its state from the last run: the
provider's Create is not called again, so the outputs the program sees are the ones recorded
then (for unchanged inputs). `ReplayMonitor` does the same: a registration whose URN is in
`state` gets that id and those outputs, and the mocks that mint fresh values (keys,
certificates, random suffixes) are never asked again. Reads and invokes still go to the cloud
mocks, as the engine sends them to the providers on every run; the mocks answer those from
their arguments, the account and the peer stacks' outputs alone, so as they did the first time.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi.runtime import Mocks
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs

from offline.monitor import RecordingMonitor, Registration


@dataclass(frozen=True)
class PriorState:
    """What the state file keeps of one resource: its id and its outputs."""

    id: str
    outputs: Mapping[str, Any]


def state_of(registrations: Sequence[Registration]) -> dict[str, PriorState]:
    return {r.urn: PriorState(r.id, dict(r.state)) for r in registrations}


class _StateFirst(Mocks):
    """Answers the registration in flight on this thread from state, if it is there."""

    def __init__(self, cloud: Mocks, state: Mapping[str, PriorState]) -> None:
        self.cloud = cloud
        self.state = state
        self.in_flight = threading.local()

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        urn = getattr(self.in_flight, "urn", None)
        prior = self.state.get(urn) if urn else None
        if prior is None:
            return self.cloud.new_resource(args)
        return prior.id or None, dict(prior.outputs)

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return self.cloud.call(args)


class ReplayMonitor(RecordingMonitor):
    def __init__(self, cloud: Mocks, state: Mapping[str, PriorState]) -> None:
        self.replay = _StateFirst(cloud, state)
        super().__init__(self.replay)

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        self.replay.in_flight.urn = self.make_urn(request.parent, request.type, request.name)
        try:
            return super().RegisterResource(request)
        finally:
            self.replay.in_flight.urn = None
