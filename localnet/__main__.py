"""`./dev demo` (python -m localnet up) and `python -m localnet down`.

`up` starts the local supercluster, runs the application in both regions, shows geo-affinity,
fails the east calculators over to west, waits for every answer to be recorded, prints a
report, and stops everything it started (or, with --keep-running, waits for Ctrl-C first).
`down` stops whatever an earlier `up` left running.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from localnet.control import ENDPOINTS
from localnet.control import run as control_run
from localnet.database import mysql_url
from localnet.demo import Supercluster, stop_leftovers
from localnet.options import DEFAULT_STATE_DIR, DemoOptions
from localnet.ports import port_range
from localnet.processes import Record, in_use, run_exclusively, stop_all
from localnet.showcase import demonstrate


def up(options: DemoOptions, keep_running: bool) -> int:
    cluster = Supercluster(options, say=lambda line: print(f"-- {line}", flush=True))
    outcome = {"code": 1}

    def run() -> None:
        outcome["code"] = demonstrate(cluster, options)
        if keep_running:
            print(
                f"\nrunning; state in {options.state_dir}. Ctrl-C (or `./dev down "
                f"--state-dir {options.state_dir}`) stops it.",
                flush=True,
            )
            while True:
                time.sleep(3600)

    stopped = run_exclusively(options.state_dir, run, clean_up=cluster.down)
    if stopped is None:
        return outcome["code"]
    if stopped == 2:  # the state directory is in use
        return 2
    # A kept-running demo whose report was good ends well when it is told to stop.
    return outcome["code"] if keep_running and outcome["code"] == 0 else stopped


def down(state_dir: Path, timeout: float = 90.0) -> int:
    """Stop a running `up` through its own clean-up (SIGTERM, then wait for it to let go of
    the state directory), then anything a killed run left behind."""
    record = Record.read(state_dir / "pids.json")
    running = in_use(state_dir)
    if running:
        if record.up is None or not record.up.running():
            print(f"error: {state_dir} is in use, but not by the run its pids file names")
            return 1
        stop_all([record.up], timeout=timeout, group=False)
    stopped = stop_leftovers(state_dir)
    print(f"{'stopped the running demo; ' if running else ''}{stopped} leftover process(es)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localnet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start, demonstrate, report, stop")
    start.add_argument(
        "--rtt-ms",
        type=float,
        default=70.0,
        help="round trip between the regions (default 70, us-east-1 to westus)",
    )
    start.add_argument("--requests", type=int, default=500, help="requests per region")
    start.add_argument("--concurrency", type=int, default=32)
    start.add_argument(
        "--mysql",
        help="record into mysql://user@host:port/db instead of the embedded database; the "
        "password from MYSQL_PASSWORD or --mysql-password-file, never the command line",
    )
    start.add_argument("--mysql-password-file", type=Path, help="a file holding the password")
    start.add_argument(
        "--keep-running", action="store_true", help="after the report, keep running until Ctrl-C"
    )
    start.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    start.add_argument(
        "--port-base", type=int, help="allocate ports upward from here (default: any free ports)"
    )
    start.add_argument(
        "--prometheus",
        action="store_true",
        help="run a Prometheus (Debian's) scraping the services and evaluating the alert rules",
    )
    start.add_argument(
        "--cloud",
        action="store_true",
        help="the clouds' ways where they differ: the chart's reloader reloads the servers "
        "(control puts answer pending), west runs without JetStream, and with --prometheus "
        "the requesters are scraped as Jobs and the report shows what the alerts make of it",
    )
    stop = commands.add_parser("down", help="stop what an earlier up left running")
    stop.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    control = commands.add_parser(
        "control", help="a region's control service: status, get, put (of a kept-running demo)"
    )
    control.add_argument("endpoint", choices=sorted(ENDPOINTS))
    control.add_argument("--region", default="east")
    control.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    control.add_argument("--routes", nargs="*", metavar="URL", help="put: the region's routes")
    control.add_argument(
        "--clear", action="store_true", help="put: back to the release's own routes"
    )
    control.add_argument(
        "--cut", nargs="*", metavar="REGION", help="put: regions to cut off (none: reconnect all)"
    )
    control.add_argument(
        "--force",
        action="store_true",
        help="put: allow an empty route list, or a cut of every gateway",
    )
    return parser


def _put_body(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, object]:
    if args.clear and args.routes is not None:
        parser.error("put takes --routes URL... or --clear, not both")
    body: dict[str, object] = {}
    if args.clear or args.routes is not None:
        body["routes"] = None if args.clear else list(args.routes)
    if args.cut is not None:
        body["cut_gateways"] = list(args.cut)
    if not body:
        parser.error("put needs --routes URL..., --clear or --cut [REGION...]")
    if args.force:
        body["force"] = True
    return body


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "down":
        return down(args.state_dir)
    if args.command == "control":
        body = _put_body(args, parser) if args.endpoint == "put" else None
        return control_run(args.state_dir, args.region, args.endpoint, body)
    if args.requests < 1 or args.rtt_ms < 0:
        parser.error("--requests must be at least 1 and --rtt-ms not negative")
    if args.port_base is not None and not 1024 <= args.port_base <= 65000:
        parser.error("--port-base must be between 1024 and 65000")
    try:
        port_range()  # LOCALNET_PORTS, checked before anything starts
    except ValueError as error:
        parser.error(str(error))
    # nats-py's TLS connections make asyncio warn on every close; not the user's business.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    mysql = None
    if args.mysql is not None:
        try:
            mysql = mysql_url(args.mysql, os.environ, args.mysql_password_file)
        except (ValueError, OSError) as error:
            parser.error(str(error))
    os.umask(0o077)  # what the run writes (keys, logs, the database) is this user's alone
    options = (DemoOptions.cloud if args.cloud else DemoOptions)(
        state_dir=args.state_dir,
        rtt_ms=args.rtt_ms,
        requests=args.requests,
        concurrency=args.concurrency,
        mysql=mysql,
        port_base=args.port_base,
        prometheus=args.prometheus,
    )
    started = time.monotonic()
    code = up(options, args.keep_running)
    print(f"-- done in {time.monotonic() - started:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
