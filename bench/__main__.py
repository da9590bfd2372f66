"""`./dev bench`: live figures on the local supercluster (bench/live.py), then program
evaluation time per stack under mocks.

Two figures per stack, because they answer different questions:
- cold: a fresh Python process, as `pulumi up` starts one: SDK imports plus evaluation;
- warm: the same evaluation again in a process whose SDK modules are already imported.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench import live
from offline.evaluate import evaluate_in_order, evaluate_stack, qualified
from offline.stack_files import PROJECT_DIR, load_stack_config, project_name, stack_names

# Reads the outputs of the stacks deployed before this one from stdin (JSON), then times the
# stack's evaluation from a cold start, SDK imports included.
_COLD_PROBE = """
import json, sys, time
peers = json.load(sys.stdin)
started = time.perf_counter()
from bench import live
from offline.evaluate import evaluate_stack
from offline.stack_files import load_stack_config
evaluation = evaluate_stack(sys.argv[1], load_stack_config(sys.argv[1]), stack_outputs=peers)
print(json.dumps({"seconds": time.perf_counter() - started,
                  "resources": len(evaluation.resources)}))
"""


def cold_seconds(stack: str, peers: dict[str, Any]) -> tuple[float, int]:
    result = subprocess.run(
        [sys.executable, "-c", _COLD_PROBE, stack],
        cwd=PROJECT_DIR,
        check=True,
        capture_output=True,
        text=True,
        input=json.dumps(peers),
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return float(measured["seconds"]), int(measured["resources"])


def warm_seconds(stack: str, peers: dict[str, Any]) -> float:
    config = load_stack_config(stack)
    started = time.perf_counter()
    evaluate_stack(stack, config, stack_outputs=peers)
    return time.perf_counter() - started


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median reported)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per live measurement")
    parser.add_argument(
        "--messages", type=int, default=3000, help="answers for the recorder ingest measurement"
    )
    parser.add_argument("--only", choices=["program", "live"], help="run one group only")
    args = parser.parse_args(argv)
    if args.only != "program":
        logging.getLogger("asyncio").setLevel(logging.ERROR)
        print(
            f"local supercluster, 70 ms between regions; {datetime.now(UTC):%Y-%m-%d}; "
            f"{machine()}\n"
        )
        for line in live.run(args.requests, args.messages):
            print(line, flush=True)
        print()
        if args.only == "live":
            return 0
    print(f"program evaluation under mocks; {datetime.now(UTC):%Y-%m-%d}; {machine()}")
    print(f"median of {args.runs} runs\n")
    print(f"{'stack':<8}{'resources':>10}{'cold s':>10}{'warm s':>10}")
    stacks = stack_names()
    deployed = evaluate_in_order(stacks, {s: load_stack_config(s) for s in stacks})
    for index, stack in enumerate(stacks):
        peers = {qualified(project_name(), s): deployed[s].output_values() for s in stacks[:index]}
        colds = [cold_seconds(stack, peers) for _ in range(args.runs)]
        warms = [warm_seconds(stack, peers) for _ in range(args.runs)]
        cold = statistics.median(c for c, _ in colds)
        print(f"{stack:<8}{colds[0][1]:>10}{cold:>10.2f}{statistics.median(warms):>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
