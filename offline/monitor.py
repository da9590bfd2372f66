"""The monitor the mocked program talks to: it records what the program registered (with
parents, dependencies and secrets, which the SDK's MockMonitor leaves out) and answers a refused
invoke as the engine does."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import grpc  # type: ignore[import-untyped]  # no stubs; only RpcError and StatusCode
from pulumi.runtime import Mocks
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.rpc import deserialize_properties

from offline.mocks_common import SECRET_SIG, SIG_KEY


class EngineError(grpc.RpcError):  # type: ignore[misc]  # grpc has no type hints
    """What the Pulumi engine answers for a failed call: a gRPC status with its details."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return self._details


@dataclass
class Registration:
    """One resource as the program registered it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    provider: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    inputs: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    ignore_changes: list[str] = field(default_factory=list)
    id: str = ""  # what the provider answered; a later `up` reads it back from state

    def secret_inputs(self) -> set[str]:
        """Top-level input names whose value (or part of it) was marked secret."""
        return {k for k, v in self.inputs.items() if _contains_secret(v)}


def _contains_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return value.get(SIG_KEY) == SECRET_SIG or any(_contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_secret(v) for v in value)
    return False


def settle_and_close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still pending on `loop`, let it end, then close the loop. Outputs that an
    evaluation never needed (an apply nobody awaited, an Output made on a worker thread's loop
    that never ran) are otherwise destroyed pending whenever the garbage collector gets to them,
    in some later test, where a never-started coroutine's RuntimeWarning fails that test."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


class RecordingMonitor(MockMonitor):
    """A MockMonitor that also keeps what MockResourceArgs leaves out: parent and dependencies."""

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self.invokes: list[str] = []
        self.reads: list[Registration] = []
        self._thread_loops: list[asyncio.AbstractEventLoop] = []

    def _live_thread_loop(self) -> None:
        """MockMonitor runs on worker threads and gives each one an event loop it never closes;
        create it here instead, so `close` can."""
        try:
            if not asyncio.get_event_loop_policy().get_event_loop().is_closed():
                return
        except RuntimeError:
            pass
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._thread_loops.append(loop)

    def close(self) -> None:
        for loop in self._thread_loops:
            settle_and_close(loop)
        self._thread_loops.clear()

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        self._live_thread_loop()
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        urn = response.urn
        registration = self.resources.get(urn)
        self.registrations.append(
            Registration(
                urn=urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=bool(request.custom),
                provider=request.provider,
                dependencies=list(request.dependencies),
                property_dependencies={
                    k: list(v.urns) for k, v in request.propertyDependencies.items()
                },
                inputs=deserialize_properties(request.object),
                state=dict(registration.state) if registration else {},
                ignore_changes=list(request.ignoreChanges),
                id=str(registration.id or "") if registration else "",
            )
        )
        return response

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        self._live_thread_loop()
        response = super().ReadResource(request)  # type: ignore[no-untyped-call]
        self.reads.append(
            Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=True,
                provider=request.provider,
                dependencies=list(request.dependencies),
                property_dependencies={},
                inputs=deserialize_properties(request.properties),
            )
        )
        return response

    def Invoke(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        """A refused invoke reaches the program as the engine sends it: a gRPC error, which the
        SDK raises to the caller (and does not also fail the run, as an exception here would)."""
        self._live_thread_loop()
        self.invokes.append(request.tok)
        try:
            return super().Invoke(request)  # type: ignore[no-untyped-call]
        except Exception as error:
            raise EngineError(str(error)) from error
