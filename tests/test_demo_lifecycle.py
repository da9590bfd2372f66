"""`./dev demo` stops everything it started, whatever ends it (SIGTERM, SIGHUP, Ctrl-C twice, a
signal during start-up, SIGKILL), signals nothing it did not start, and refuses a second run on
a state directory in use."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localnet.processes import Started, children_of
from offline.stack_files import PROJECT_DIR

pytestmark = pytest.mark.live


class Demo:
    """`python -m localnet up` in a session of its own, read line by line."""

    def __init__(self, state: Path, *extra: str) -> None:
        self.state = state
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localnet",
                "up",
                "--requests",
                "10",
                "--rtt-ms",
                "0",
                "--state-dir",
                str(state),
                *extra,
            ],
            cwd=PROJECT_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []

    def wait_for(self, prefix: str, timeout: float = 240) -> None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith(prefix):
                return
            assert time.monotonic() < deadline, "".join(self.lines)
        raise AssertionError(f"{prefix!r} never came:\n{''.join(self.lines)}")

    def started(self) -> list[Started]:
        """Every process the run has started, recorded or not: its children."""
        found = children_of(self.process.pid)
        assert found, "".join(self.lines)
        return found

    def finish(self, timeout: float = 120) -> int:
        code = self.process.wait(timeout=timeout)
        assert self.process.stdout is not None
        self.lines += self.process.stdout.readlines()
        self.process.stdout.close()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def demos() -> Iterator[list[Demo]]:
    started: list[Demo] = []
    yield started
    for demo in started:  # whatever a failed test left
        demo.kill()
        subprocess.run(
            [sys.executable, "-m", "localnet", "down", "--state-dir", str(demo.state)],
            cwd=PROJECT_DIR,
            capture_output=True,
            timeout=120,
            check=False,
        )


def _gone(processes: list[Started], timeout: float = 30) -> list[Started]:
    deadline = time.monotonic() + timeout
    while (alive := [p for p in processes if p.running()]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_a_running_demo_stops_everything_it_started(
    tmp_path: Path, demos: list[Demo], signum: int
) -> None:
    demo = Demo(tmp_path / "state", "--keep-running")
    demos.append(demo)
    demo.wait_for("running;")
    started = demo.started()
    # 6 servers, west's 4 calculators (east's were stopped for the failover), the recorder,
    # the 2 control services
    assert len(started) == 13, started
    os.kill(demo.process.pid, signum)
    assert demo.finish() == 0  # the report was good; a kept-running demo ends cleanly
    assert _gone(started) == []
    assert "stopped every process it started" in "".join(demo.lines)


def test_ctrl_c_twice_still_stops_everything(tmp_path: Path, demos: list[Demo]) -> None:
    demo = Demo(tmp_path / "state", "--keep-running")
    demos.append(demo)
    demo.wait_for("running;")
    started = demo.started()
    os.kill(demo.process.pid, signal.SIGINT)
    time.sleep(0.3)  # the second one lands in the middle of the clean-up
    os.kill(demo.process.pid, signal.SIGINT)
    demo.finish()
    assert _gone(started) == []
    assert "still stopping" in "".join(demo.lines)


def test_a_signal_during_start_up_stops_what_was_started(tmp_path: Path, demos: list[Demo]) -> None:
    demo = Demo(tmp_path / "state")
    demos.append(demo)
    demo.wait_for("-- starting region west")
    started = demo.started()  # east's servers, perhaps some of west's
    os.kill(demo.process.pid, signal.SIGTERM)
    code = demo.finish()
    assert code == 128 + signal.SIGTERM, "".join(demo.lines)[-3000:]
    assert _gone(started) == []
    assert children_of(demo.process.pid) == []


def test_sigkill_to_the_demo_takes_its_processes_with_it(tmp_path: Path, demos: list[Demo]) -> None:
    """No clean-up code runs on SIGKILL; the kernel tells every started process that its
    parent died (setpriv --pdeathsig), and they stop."""
    demo = Demo(tmp_path / "state", "--keep-running")
    demos.append(demo)
    demo.wait_for("running;")
    started = demo.started()
    os.kill(demo.process.pid, signal.SIGKILL)
    demo.finish()
    assert _gone(started) == []


def test_a_second_run_on_a_state_dir_in_use_refuses_and_down_stops_the_first(
    tmp_path: Path, demos: list[Demo]
) -> None:
    first = Demo(tmp_path / "state", "--keep-running")
    demos.append(first)
    first.wait_for("running;")
    started = first.started()
    second = Demo(tmp_path / "state")
    demos.append(second)
    assert second.finish(timeout=60) == 2
    assert "is in use by a running `./dev demo`" in "".join(second.lines)
    assert all(p.running() for p in started)  # the first was not touched
    down = subprocess.run(
        [sys.executable, "-m", "localnet", "down", "--state-dir", str(tmp_path / "state")],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopped the running demo" in down.stdout
    first.finish()
    assert _gone(started) == []


def test_down_signals_only_processes_that_are_still_the_ones_recorded(tmp_path: Path) -> None:
    """A pids file naming a process id that now belongs to someone else (same id, other start
    time), or written in the old form without start times, must not get anyone killed."""
    state = tmp_path / "state"
    state.mkdir()
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    leftover = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        real = Started.of(leftover.pid)
        assert real is not None
        records = {
            "up": None,
            "processes": [
                {"pid": bystander.pid, "start_ticks": 1},  # an id reused by the bystander
                real.as_json(),  # a true leftover
                bystander.pid,  # the old form: a bare id
            ],
        }
        (state / "pids.json").write_text(json.dumps(records))
        down = subprocess.run(
            [sys.executable, "-m", "localnet", "down", "--state-dir", str(state)],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert down.returncode == 0, down.stderr
        assert "1 leftover process(es)" in down.stdout
        assert leftover.wait(timeout=10) == -signal.SIGTERM
        assert bystander.poll() is None  # untouched
    finally:
        for process in (bystander, leftover):
            process.kill()
            process.wait(timeout=10)
