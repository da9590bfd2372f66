"""The kubelet and the chart's config reloader, on this machine: what turns a changed
ConfigMap or Secret into a server reload in the clouds (the facts, with their sources, are in
tests/test_reloader_facts.py and infra/reload_check.py).

Each server has a reloader of its own, as each pod has its sidecar. At start it finds the
files to watch as the chart and the reloader do (nats.conf, what it includes, every TLS file
it names, keys included: infra.reload_check.watched_files) and keeps each one's SHA-256. When
a file's content differs from what it last signalled for, the change reaches the pod `delay`
seconds later (the kubelet's sync; a change undone meanwhile never arrives), and the reloader
sends SIGHUP; the same content written again signals nothing. A server that is not running is
tried again every `retry_wait` seconds, `retries` times; then the reloader gives up, as the
real one exits and its restart takes the files as they are then without signalling. Unlike
the real one, it reads the server's log for what became of the reload (`reloads`), which only
tests look at."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from infra.reload_check import watched_files
from localnet.region import LocalRegion

# nack cmd/nats-server-config-reloader/main.go:65-66 defaults: 30 retries, 4 s apart.
RETRIES = 30
RETRY_WAIT = 4.0


@dataclass(frozen=True)
class Reload:
    """One signal: when (monotonic), to which server, for which files, and what the server
    logged (None: reloaded; else its error, or why no signal was sent)."""

    at: float
    ordinal: int
    files: tuple[str, ...]
    outcome: str | None


@dataclass
class _Sidecar:
    files: tuple[str, ...]
    applied: dict[str, str]
    arriving_since: float | None = None
    tries: int = 0
    next_try: float = 0.0
    unsent: tuple[str, ...] = field(default_factory=tuple)


def _digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:  # replaced right now: the reloader waits for it to come back
        return None


class ConfigMapReloader:
    def __init__(
        self,
        region: LocalRegion,
        delay: float = 2.0,
        poll: float = 0.2,
        *,
        retries: int = RETRIES,
        retry_wait: float = RETRY_WAIT,
    ) -> None:
        self.region = region
        self.delay = delay
        self.poll = poll
        self.retries = retries
        self.retry_wait = retry_wait
        self.reloads: list[Reload] = []
        self.sidecars: dict[int, _Sidecar] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="configmap-reloader", daemon=True)

    def config(self, ordinal: int) -> Path:
        return self.region.workdir / self.region.spec.names.pod(ordinal) / "nats.conf"

    def _start(self, ordinal: int) -> _Sidecar:
        """What the sidecar watches and the digests it starts from (its start, or a restart)."""
        files = watched_files(str(self.config(ordinal)), lambda p: Path(p).read_text(), keys=True)
        return _Sidecar(files, {f: _digest(f) or "" for f in files})

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            for ordinal, sidecar in self.sidecars.items():
                self._step(ordinal, sidecar, time.monotonic())

    def _step(self, ordinal: int, sidecar: _Sidecar, now: float) -> None:
        if sidecar.unsent:
            if now >= sidecar.next_try:
                self._signal(ordinal, sidecar, sidecar.unsent, now)
            return
        current = {f: _digest(f) for f in sidecar.files}
        changed = tuple(f for f, d in current.items() if d is not None and d != sidecar.applied[f])
        if not changed:
            sidecar.arriving_since = None
            return
        if sidecar.arriving_since is None:
            sidecar.arriving_since = now
        if now - sidecar.arriving_since < self.delay:  # the kubelet's sync
            return
        sidecar.arriving_since = None
        sidecar.applied.update({f: current[f] or "" for f in changed})
        self._signal(ordinal, sidecar, changed, now)

    def _signal(self, ordinal: int, sidecar: _Sidecar, files: tuple[str, ...], now: float) -> None:
        try:
            outcome = self.region.reload(ordinal)
        except RuntimeError as error:  # not running: try again later, or give up
            sidecar.tries += 1
            if sidecar.tries <= self.retries:
                sidecar.unsent, sidecar.next_try = files, now + self.retry_wait
                return
            self.sidecars[ordinal] = self._start(ordinal)
            outcome = f"gave up after {self.retries} tries ({error}); restarted"
        except TimeoutError as error:
            outcome = str(error)
        sidecar.unsent, sidecar.tries = (), 0
        self.reloads.append(Reload(now, ordinal, files, outcome))

    def signalled(self, ordinal: int) -> list[Reload]:
        return [r for r in self.reloads if r.ordinal == ordinal]

    def start(self) -> ConfigMapReloader:
        self.sidecars = {i: self._start(i) for i in range(len(self.region.processes))}
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def __enter__(self) -> ConfigMapReloader:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
