"""The processes the local supercluster starts, and how to stop them: only ever the ones it
started (a process id is reused once its process is gone, so a recorded id alone proves
nothing), whatever signal ends the run, and never two runs on one state directory."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Started:
    """A process as it was when recorded: its id and its start time (clock ticks since boot,
    field 22 of /proc/<pid>/stat), which together name one process for the life of the
    machine."""

    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> Started | None:
        ticks = _start_ticks(pid)
        return None if ticks is None else cls(pid, ticks)

    def running(self) -> bool:
        """Still this very process, and running: not exited (a zombie waiting for its parent
        counts as exited), not a new process that was given the same id."""
        fields = _stat_fields(self.pid)
        return fields is not None and fields[0] not in "ZX" and int(fields[19]) == self.start_ticks

    def as_json(self) -> dict[str, int]:
        return {"pid": self.pid, "start_ticks": self.start_ticks}

    @classmethod
    def from_json(cls, value: object) -> Started | None:
        if not isinstance(value, dict):
            return None  # an older record without start times: nothing can be proven
        pid, ticks = value.get("pid"), value.get("start_ticks")
        return cls(pid, ticks) if isinstance(pid, int) and isinstance(ticks, int) else None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    return text[text.rindex(")") + 2 :].split()


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22; fields here start at field 3


def children_of(parent: int) -> list[Started]:
    """Processes whose parent is `parent`: everything it started that still runs, recorded
    anywhere or not (a signal can arrive between starting a process and recording it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and int(fields[1]) == parent:
            found.append(Started(int(entry.name), int(fields[19])))
    return found


def _signal(process: Started, signum: int, *, group: bool) -> None:
    """After checking it is still the recorded process: to its own group when it leads one
    and `group` (servers and services are started in a session of their own), else to it."""
    if not process.running():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group and os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signum)
        else:
            os.kill(process.pid, signum)


def stop_all(processes: Iterable[Started], timeout: float = 15.0, *, group: bool = True) -> int:
    """SIGTERM to each that is still the recorded process, SIGKILL to what outlives `timeout`;
    returns how many were running."""
    running = [p for p in processes if p.running()]
    for process in running:
        _signal(process, signal.SIGTERM, group=group)
    deadline = time.monotonic() + timeout
    while any(p.running() for p in running) and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in running:
        _signal(process, signal.SIGKILL, group=group)
    return len(running)


def stop_with_parent() -> list[str]:
    """A command prefix that has the kernel send SIGTERM to the process when the process that
    started it dies, however it dies (SIGKILL included): util-linux's setpriv."""
    found = shutil.which("setpriv")
    return [found, "--pdeathsig", "TERM", "--"] if found else []


class StateDirInUseError(RuntimeError):
    """Another run holds the state directory."""


def _lock_path(state_dir: Path) -> Path:
    return state_dir.parent / f".{state_dir.name}.lock"


@contextlib.contextmanager
def exclusive(state_dir: Path) -> Iterator[None]:
    """Holds the state directory for this run; the kernel releases the lock when the process
    ends, however it ends, so a stale lock never blocks the next run."""
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(_lock_path(state_dir), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise StateDirInUseError(
                f"{state_dir} is in use by a running `./dev demo` (pid {holder}); stop it "
                f"(Ctrl-C in its terminal, or `./dev down --state-dir {state_dir}`) or choose "
                "another --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def in_use(state_dir: Path) -> bool:
    try:
        with exclusive(state_dir):
            return False
    except StateDirInUseError:
        return True


@dataclass(frozen=True)
class Record:
    """pids.json: the run (`up`) and every process it started."""

    up: Started | None
    processes: tuple[Started, ...]

    @classmethod
    def read(cls, path: Path) -> Record:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(None, ())
        processes = (Started.from_json(p) for p in raw.get("processes", []))
        return cls(Started.from_json(raw.get("up")), tuple(p for p in processes if p))

    def write(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "up": self.up.as_json() if self.up else None,
                    "processes": [p.as_json() for p in self.processes],
                }
            )
        )


class Stopped(Exception):  # noqa: N818 (a signal, not an error)
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopOnSignal:
    """SIGINT, SIGTERM, SIGHUP and SIGQUIT end the run by raising Stopped once; during the
    clean-up that follows, further signals (a second Ctrl-C) only say it is under way, so the
    clean-up always finishes."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

    def __init__(self) -> None:
        self.armed = True
        self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    def _handle(self, signum: int, _frame: object) -> None:
        if self.armed:
            self.armed = False
            raise Stopped(signum)
        print("-- still stopping every process it started", flush=True)

    def shield(self) -> None:
        self.armed = False

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def run_exclusively(
    state_dir: Path, work: Callable[[], None], *, clean_up: Callable[[], None] = lambda: None
) -> int | None:
    """Run `work` holding `state_dir`, then `clean_up` and stop every process this process
    started, however it ends. Returns None when `work` finished, 2 when the state directory is
    in use (said on stderr), 128 + the signal when a signal ended it."""
    try:
        with exclusive(state_dir):
            signals = StopOnSignal()
            code: int | None = None
            try:
                work()
            except Stopped as stopped:
                print(f"-- {stopped}: stopping", flush=True)
                code = 128 + stopped.signum
            finally:
                while True:
                    try:
                        signals.shield()
                        clean_up()
                        # Anything started but not yet recorded when a signal came.
                        stop_all(children_of(os.getpid()))
                        break
                    except Stopped:
                        continue  # a signal before the shield: clean up (again) to the end
                signals.restore()
                print("-- stopped every process it started", flush=True)
            return code
    except StateDirInUseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
