"""The mock evaluation harness (offline/evaluate.py) leaves nothing behind for a later test.

A failed run stops waiting for the program's Outputs at the first failed RPC (pulumi
runtime/stack.py `wait_for_rpcs`), so Outputs it never needed are still pending when their event
loop closes. Destroyed later by the garbage collector, during whichever test runs then, they log
"Task was destroyed but it is pending!" and a never-started one warns that its coroutine was never
awaited, which this suite's `filterwarnings = error` turns into that test's failure (CI, stop 22:
tests/test_program_east.py failed on four such warnings from an earlier evaluation).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path
from typing import Any

import pytest

from offline.evaluate import EvaluationError, evaluate_stack

# An Output waits on a future nothing resolves; another becomes a task as the run fails, too late
# to start; a ConfigMap's input raises, which fails its RegisterResource RPC and the run.
FAILING_PROGRAM = """
import asyncio

import pulumi
from pulumi_kubernetes.core.v1 import ConfigMap

never = asyncio.get_event_loop().create_future()
pulumi.Output.from_input(never).apply(lambda value: value)


def refuse(value: str) -> str:
    asyncio.ensure_future(asyncio.sleep(3600))
    raise ValueError("refused " + value)


ConfigMap("broken", data={"key": pulumi.Output.from_input("value").apply(refuse)})
"""


def _pending_tasks() -> list[asyncio.Task[Any]]:
    return [o for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done()]


def test_a_failed_evaluation_leaves_no_task_pending(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: failing\nruntime: python\n")
    (tmp_path / "__main__.py").write_text(FAILING_PROGRAM)
    before = {id(task) for task in _pending_tasks()}  # a live fixture's loop may run tasks
    with pytest.raises(EvaluationError, match="refused value"):
        evaluate_stack("dev", {}, project_dir=tmp_path)
    left = [task for task in _pending_tasks() if id(task) not in before]
    assert left == []
    unraisable: list[str] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append(f"{u.err_msg}: {u.exc_value!r}")
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert unraisable == []
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]
