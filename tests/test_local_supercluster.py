"""The local supercluster (`./dev demo`) as a product and as the harness for failure tests."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.jetstream_ops import Connection, JetStreamAdmin, with_admin
from localnet.clients import admin_connection
from localnet.database import database_env, mysql_url
from localnet.demo import Supercluster
from localnet.options import DemoOptions
from localnet.region import LocalRegion
from offline.stack_files import PROJECT_DIR

pytestmark = pytest.mark.live


def processes_under(state_dir: Path) -> list[str]:
    """Command lines that mention the state directory (servers and services live there)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(state_dir) in line:
                found.append(line)
    return found


def run_demo(state: Path, *options: str, timeout: float) -> str:
    """`./dev demo` with `options` run to its end: what it printed, once it exited 0."""
    result = subprocess.run(
        [sys.executable, "-m", "localnet", "up", *options, "--state-dir", str(state)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_the_demo_runs_reports_and_leaves_nothing_behind(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = run_demo(state, "--requests", "60", "--rtt-ms", "40", timeout=300)
    assert "gateways connected both ways: yes" in out
    assert "over 6 servers" in out
    assert re.search(r"requests from east: 60/60 answered, 0 failed, 100% served in east", out)
    assert re.search(r"requests from west: 60/60 answered, 0 failed, 100% served in west", out)
    failover = re.search(
        r"failover .*: 30/30 answered, 0 failed, served by \{'west': 30\}; "
        r"cross-region latency p50 ([\d.]+) ms",
        out,
    )
    assert failover is not None
    assert float(failover.group(1)) >= 40  # the added round trip is there
    assert "records stored: 150 of 150 published (0 missing)" in out
    assert processes_under(state) == []
    # Keys, logs and the database are the user's alone: the directory, and what the run wrote.
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    written = [state / "answers.db", *(state / "logs").iterdir()]
    assert len(written) > 1
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in written)


@pytest.mark.parametrize(
    ("url", "environ", "password_file", "expected"),
    [
        ("mysql://app@db:3306/answers", {}, None, ("mysql://app@db:3306/answers", "")),
        ("mysql://app@db/answers", {"MYSQL_PASSWORD": "p@ss:w/rd"}, None,
         ("mysql://app:p%40ss%3Aw%2Frd@db/answers", "p@ss:w/rd")),
        ("mysql://app@db/answers", {"MYSQL_PASSWORD": "ignored"}, "from-file\n",
         ("mysql://app:from-file@db/answers", "from-file")),
    ],
)  # fmt: skip
def test_the_mysql_password_comes_from_the_environment_or_a_file(
    tmp_path: Path,
    url: str,
    environ: dict[str, str],
    password_file: str | None,
    expected: tuple[str, str],
) -> None:
    path = None
    if password_file is not None:
        path = tmp_path / "password"
        path.write_text(password_file)
    got = mysql_url(url, environ, path)
    env = database_env(got, tmp_path)
    assert (got, env["DB_PASSWORD"]) == expected
    assert (env["DB_USER"], env["DB_HOST"], env["DB_NAME"]) == ("app", "db", "answers")


def test_a_password_on_the_command_line_is_refused_before_anything_starts(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "localnet", "up", "--state-dir", str(tmp_path / "s"),
         "--mysql", "mysql://app:secret@127.0.0.1:3306/answers"],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "MYSQL_PASSWORD" in result.stderr
    assert not (tmp_path / "s").exists()


def test_down_stops_a_demo_kept_running(tmp_path: Path) -> None:
    state = tmp_path / "state"
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localnet",
            "up",
            "--requests",
            "10",
            "--rtt-ms",
            "0",
            "--keep-running",
            "--state-dir",
            str(state),
            "--port-base",
            "41000",
        ],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    deadline = time.monotonic() + 240
    for line in demo.stdout:
        if line.startswith("running;"):
            break
        assert time.monotonic() < deadline
    assert processes_under(state)
    configs = list(state.glob("*/*/nats.conf"))
    assert configs
    ports = [int(p) for c in configs for p in re.findall(r'"port": (\d+)', c.read_text())]
    assert ports
    assert all(41000 <= port < 41100 for port in ports), ports
    down = subprocess.run(
        [sys.executable, "-m", "localnet", "down", "--state-dir", str(state)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert down.returncode == 0
    demo.wait(timeout=60)
    demo.stdout.close()
    deadline = time.monotonic() + 30
    while processes_under(state) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_under(state) == []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supercluster]:
    with Supercluster(
        DemoOptions(
            state_dir=tmp_path_factory.mktemp("harness") / "state",
            rtt_ms=10,
            requests=40,
            concurrency=8,
        ),
        say=lambda _line: None,
    ).running() as supercluster:
        yield supercluster


def _gateway_proxies(cluster: Supercluster) -> list[object]:
    return [region.proxies[1] for region in cluster.regions.values()]


def _in_background(work: Callable[[], dict[str, Any]]) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(work()), daemon=True)
    thread.start()
    return thread, result


def _stream_info(region: LocalRegion) -> dict[str, Any]:
    async def info(admin: JetStreamAdmin) -> dict[str, Any]:
        found: dict[str, Any] = await admin.api("STREAM.INFO.answers")
        return found

    result: dict[str, Any] = asyncio.run(
        with_admin(Connection.from_inputs(admin_connection(region)), info)
    )
    return result


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_killing_the_stream_leader_loses_no_answer(cluster: Supercluster) -> None:
    """SIGKILL to the `answers` stream's leader while 3,000 answers are being published: the
    requester retries through the election (deduplicated by Nats-Msg-Id) and every answer is
    recorded once."""
    east = cluster.regions["east"]
    before_records = cluster.records()
    first_seq = _stream_info(east)["state"]["last_seq"]
    thread, summary = _in_background(lambda: cluster.request("east", 3000, 31, concurrency=64))
    _wait_until(
        lambda: _stream_info(east)["state"]["last_seq"] > first_seq + 300, 60, "no publishes"
    )
    leader = _stream_info(east)["cluster"]["leader"]
    ordinal = int(leader.rsplit("-", 1)[1])
    process = east.processes[ordinal]
    assert process is not None
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    east.processes[ordinal] = None
    try:
        # Until the election ends the stream's info names no leader at all.
        _wait_until(
            lambda: _stream_info(east)["cluster"].get("leader", "") not in ("", leader),
            30,
            "no election",
        )
    finally:
        east.restart_server(ordinal)
        thread.join(timeout=300)  # a failure here must not leave publishes to the next test
    assert summary["answered"] == 3000, summary
    assert summary["published"] == 3000, summary
    assert (summary["failed"], summary["unpublished"]) == (0, 0)
    assert cluster.wait_for_records(before_records + 3000) == before_records + 3000


def test_killing_the_recorders_consumer_leader_delays_records_and_loses_none(
    cluster: Supercluster,
) -> None:
    """The recorder's fetches fail while its consumer elects a new leader (503, no responders):
    it must wait that out, not die with the backlog unrecorded."""
    east = cluster.regions["east"]
    before_records = cluster.records()
    summary = cluster.request("east", 1500, 33, concurrency=64)
    assert summary["published"] == 1500, summary

    async def consumer_leader(admin: JetStreamAdmin) -> str:
        info = await admin.api("CONSUMER.INFO.answers.recorder")
        return str(info.get("cluster", {}).get("leader", ""))

    connection = Connection.from_inputs(admin_connection(east))
    leader = asyncio.run(with_admin(connection, consumer_leader))
    ordinal = int(leader.rsplit("-", 1)[1])
    process = east.processes[ordinal]
    assert process is not None
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    east.processes[ordinal] = None
    try:
        _wait_until(
            lambda: asyncio.run(with_admin(connection, consumer_leader)) not in ("", leader),
            30,
            "no consumer leader elected",
        )
    finally:
        east.restart_server(ordinal)
    assert cluster.wait_for_records(before_records + 1500) == before_records + 1500
    assert cluster.services["recorder-east"].poll() is None  # still running


def test_a_gateway_cut_loses_no_answer_published_from_the_far_region(
    cluster: Supercluster,
) -> None:
    """West publishes 4,000 answers to the stream in east while the link between the regions
    is down for 10 s: west keeps answering its own requests, its publishes wait out the cut
    within the retry budget, and every answer is recorded once."""
    east = cluster.regions["east"]
    before_records = cluster.records()
    first_seq = _stream_info(east)["state"]["last_seq"]
    thread, summary = _in_background(lambda: cluster.request("west", 4000, 32, concurrency=64))
    _wait_until(
        lambda: _stream_info(east)["state"]["last_seq"] > first_seq + 300, 60, "no publishes"
    )
    for proxy in _gateway_proxies(cluster):
        proxy.cut()  # type: ignore[attr-defined]
    time.sleep(10)
    for proxy in _gateway_proxies(cluster):
        proxy.restore()  # type: ignore[attr-defined]
    thread.join(timeout=300)
    assert summary["answered"] == 4000, summary
    assert summary["served_by"] == {"west": 4000}
    assert summary["published"] == 4000, summary
    assert (summary["failed"], summary["unpublished"]) == (0, 0)
    assert cluster.wait_for_records(before_records + 4000) == before_records + 4000


def test_a_cut_link_keeps_regions_serving_and_cross_region_resumes(
    cluster: Supercluster,
) -> None:
    for proxy in _gateway_proxies(cluster):
        proxy.cut()  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 30
        while any(cluster.gateways(n) for n in cluster.regions) and time.monotonic() < deadline:
            time.sleep(0.2)
        for seed, region in enumerate(("east", "west"), start=10):
            # West's answers cannot reach the stream in east while the link is down; a short
            # retry budget reports them unpublished instead of waiting out the default minute.
            summary = cluster.request(region, 40, seed, retry_seconds=2)
            assert summary["answered"] == 40
            assert summary["served_by"] == {region: 40}
            if region == "west":
                assert summary["unpublished"] == 40 - summary["published"] > 0
    finally:
        for proxy in _gateway_proxies(cluster):
            proxy.restore()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while not all(cluster.gateways(n) for n in cluster.regions):
        assert time.monotonic() < deadline, "gateways did not reconnect"
        time.sleep(0.5)
    cluster.stop_calculators("west")
    crossing = cluster.request("west", 20, seed=12)
    assert crossing["failed"] == 0
    assert crossing["served_by"] == {"east": 20}


def test_losing_one_of_three_servers_keeps_replicated_streams_writable(
    cluster: Supercluster,
) -> None:
    east = cluster.regions["east"]
    leader, _ = cluster.meta_leader()
    east.stop_server(2)
    try:
        acks = asyncio.run(_publish_answers(east, 50))
        assert len(acks) == 50
        assert len(set(acks)) == 50  # 50 distinct stream sequences, none lost
    finally:
        east.restart_server(2)
    assert leader


async def _publish_answers(region: LocalRegion, count: int) -> list[int]:
    async def publish(admin: JetStreamAdmin) -> list[int]:
        js = admin.client.jetstream()
        sequences = []
        for i in range(count):
            record = {
                "request_id": f"loss-{os.getpid()}-{i}",
                "op": "add",
                "a": 1,
                "b": 1,
                "result": 2,
                "served_by": "east",
                "requested_in": "east",
            }
            ack = await js.publish("answers.significant", json.dumps(record).encode(), timeout=10)
            sequences.append(ack.seq)
        return sequences

    sequences: list[int] = await with_admin(
        Connection.from_inputs(admin_connection(region)), publish
    )
    return sequences
