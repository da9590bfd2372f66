"""Runs __main__.py for one stack under mocks, in-process, and returns what it registered.

Each evaluation runs in a fresh contextvars.Context: Pulumi keeps its settings, config and root
stack resource in context variables, so stacks evaluated one after another never share state.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import runpy
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import set_all_config, set_mocks
from pulumi.runtime.settings import SETTINGS, get_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from offline.mocks import CloudMocks
from offline.mocks_aws import MockAccount
from offline.monitor import RecordingMonitor, Registration, settle_and_close
from offline.replay import PriorState, ReplayMonitor
from offline.stack_files import PROJECT_DIR, project_name

# What `pulumi.get_organization()` answers under mocks; stack references qualify with it.
ORGANIZATION = "organization"


@dataclass(frozen=True)
class StackOutput:
    value: Any
    secret: bool


@dataclass
class Evaluation:
    stack: str
    resources: list[Registration]
    outputs: dict[str, StackOutput]
    invokes: list[str]
    seconds: float
    reads: list[Registration]
    warnings: list[str]

    def output_values(self) -> dict[str, Any]:
        """The outputs as another stack's StackReference reads them."""
        return {key: output.value for key, output in self.outputs.items()}

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> Registration:
        found = self.of_type(type_)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_}, found {len(found)}")
        return found[0]

    def ancestors(self, resource: Registration) -> list[Registration]:
        chain = []
        while resource.parent:
            parent = [r for r in self.resources if r.urn == resource.parent]
            if not parent:
                break
            resource = parent[0]
            chain.append(resource)
        return chain


class EvaluationError(Exception):
    """The program raised; `resources` holds whatever it had registered by then."""

    def __init__(self, cause: BaseException, resources: list[Registration]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.resources = resources


def evaluate_stack(
    stack: str,
    config: Mapping[str, str],
    *,
    project_dir: Path = PROJECT_DIR,
    stack_outputs: Mapping[str, Mapping[str, Any]] | None = None,
    account: MockAccount | None = None,
    state: Mapping[str, PriorState] | None = None,
) -> Evaluation:
    """Evaluate the program as `pulumi up` would, with the clouds mocked. `stack_outputs` are
    other stacks' outputs by qualified name (`organization/<project>/<stack>`); `account` is
    who runs it and how the account names its zones; `state`, by URN, is what an earlier `up`
    left (resources in it are answered from it, as the engine does, not created again)."""
    project = project_name(project_dir)
    region = config.get(f"{project}:region", "us-east-1")
    cloud = CloudMocks(region, dict(stack_outputs or {}), account)
    monitor = RecordingMonitor(cloud) if state is None else ReplayMonitor(cloud, state)
    loop = asyncio.new_event_loop()  # Pulumi's runner drives the current loop of the thread
    asyncio.set_event_loop(loop)
    try:
        return contextvars.Context().run(_evaluate, stack, dict(config), project_dir, monitor)
    finally:
        # After a failure, RPCs may still run on the loop's executor threads; wait for them
        # before closing the event loops they gave themselves.
        loop.run_until_complete(loop.shutdown_default_executor())
        monitor.close()
        settle_and_close(loop)
        asyncio.set_event_loop(None)


def _evaluate(
    stack: str, config: dict[str, str], project_dir: Path, monitor: RecordingMonitor
) -> Evaluation:
    project = project_name(project_dir)
    log = _WarningLog()
    set_mocks(
        monitor.mocks,
        project=project,
        stack=stack,
        preview=False,
        monitor=monitor,
        organization=ORGANIZATION,
        logger=log,
    )
    set_all_config(config)
    # Tasks a failed evaluation left behind belong to a closed loop; Pulumi's own test
    # decorator clears these two before every run.
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    outputs: dict[str, StackOutput] = {}

    async def program() -> None:
        runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")
        root = get_root_resource()
        for key, value in getattr(root, "outputs", {}).items():
            output = pulumi.Output.from_input(value)
            outputs[key] = StackOutput(await output.future(), bool(await output.is_secret()))

    started = time.perf_counter()
    try:
        _sync_await(run_pulumi_func(program))
    except Exception as exc:
        raise EvaluationError(exc, monitor.registrations) from exc
    seconds = time.perf_counter() - started
    return Evaluation(
        stack,
        monitor.registrations,
        outputs,
        monitor.invokes,
        seconds,
        monitor.reads,
        log.warnings,
    )


class _WarningLog(logging.Logger):
    """Keeps what the program logged at warning level (pulumi.log.warn) for tests to read."""

    def __init__(self) -> None:
        super().__init__("pulumi-program")
        self.warnings: list[str] = []

    def warning(self, msg: object, *_args: object, **_kwargs: Any) -> None:
        self.warnings.append(str(msg))


def qualified(project: str, stack: str) -> str:
    return f"{ORGANIZATION}/{project}/{stack}"


def evaluate_in_order(
    stacks: list[str], configs: Mapping[str, Mapping[str, str]], *, project_dir: Path = PROJECT_DIR
) -> dict[str, Evaluation]:
    """Evaluate stacks one after another, as `pulumi up -s` would be run, each seeing the
    outputs of those before it through its StackReferences."""
    project = project_name(project_dir)
    done: dict[str, Evaluation] = {}
    for stack in stacks:
        outputs = {qualified(project, s): e.output_values() for s, e in done.items()}
        done[stack] = evaluate_stack(
            stack, configs[stack], project_dir=project_dir, stack_outputs=outputs
        )
    return done
