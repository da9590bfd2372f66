"""`./dev rehearse <operation>`: run a day-2 operation on the local supercluster under traffic,
print what was measured, and exit 0 only when the operation kept its promise."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from localnet.processes import run_exclusively
from localnet.rehearsals import add_region, destroy, reload, rotate, scale, upgrade
from localnet.rehearsals.common import Report, Say
from offline.stack_files import PROJECT_DIR

REHEARSALS: dict[str, tuple[Callable[[Path, Say], Report], str]] = {
    "add-region": (
        add_region.rehearse,
        "central joins east and west at run time; then each region cut off in turn",
    ),
    "destroy": (
        destroy.rehearse,
        "every region destroyed in engine order: central, west, east; then with east gone",
    ),
    "reload": (reload.rehearse, "each kind of configuration change: reloaded live or not"),
    "rotate": (rotate.rehearse, "server and client certificates, then the CA in three stages"),
    "scale": (scale.rehearse, "east from 3 to 5 servers and back to 3"),
    "upgrade": (
        upgrade.rehearse,
        "every server from the previous nats-server release to the pinned one",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev rehearse", description=__doc__)
    parser.add_argument(
        "operation",
        choices=sorted(REHEARSALS),
        help="; ".join(f"{name}: {what}" for name, (_, what) in sorted(REHEARSALS.items())),
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="where the servers keep their files (default .local/rehearsals/<operation>)",
    )
    args = parser.parse_args(argv)
    state_dir = args.state_dir or PROJECT_DIR / ".local" / "rehearsals" / args.operation
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    rehearse, _ = REHEARSALS[args.operation]
    result: list[Report] = []

    def work() -> None:
        result.append(rehearse(state_dir, lambda line: print(f"-- {line}", flush=True)))

    stopped = run_exclusively(state_dir, work)
    if stopped is not None:
        return stopped
    print(result[0].render(), flush=True)
    return 0 if result[0].held else 1


if __name__ == "__main__":
    sys.exit(main())
