"""How a region's runtime files reach its servers in the clouds, on this machine: the kubelet
copies a changed ConfigMap into the pods some time after the update (its sync period, up to a
minute or two), then the chart's config reloader sees the files change and sends the server
SIGHUP. Here a thread watches the region's runtime directory, waits `delay` seconds after a
change, and reloads each running server by SIGHUP, so the control service's cloud path (answer
"pending", watch the servers, record the outcome) runs against real servers."""

from __future__ import annotations

import threading
import time
from types import TracebackType

from infra.runtime_files import GATEWAYS_FILE, ROUTES_FILE
from localnet.region import LocalRegion


class ConfigMapReloader:
    def __init__(self, region: LocalRegion, delay: float = 2.0, poll: float = 0.2) -> None:
        self.region = region
        self.delay = delay
        self.poll = poll
        self.reloads: list[tuple[float, dict[int, str | None]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="configmap-reloader", daemon=True)

    def _files(self) -> tuple[str, ...]:
        return tuple(
            (self.region.runtime_dir / name).read_text() for name in (ROUTES_FILE, GATEWAYS_FILE)
        )

    def _run(self) -> None:
        seen = self._files()
        while not self._stop.wait(self.poll):
            current = self._files()
            if current == seen:
                continue
            if self._stop.wait(self.delay):  # the kubelet's sync
                return
            seen = self._files()
            outcomes: dict[int, str | None] = {}
            for ordinal, process in enumerate(self.region.processes):
                if process is not None and process.poll() is None:
                    try:
                        outcomes[ordinal] = self.region.reload(ordinal)
                    except (RuntimeError, TimeoutError) as error:  # stopped meanwhile
                        outcomes[ordinal] = str(error)
            self.reloads.append((time.monotonic(), outcomes))

    def __enter__(self) -> ConfigMapReloader:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
