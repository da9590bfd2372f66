"""Whether each server of the region runs the files it is given, seen from the control
service (the decision: infra/reload_check.py). The service reads the same files the servers
load: locally the region's directory, in the clouds read-only mounts of the same ConfigMaps and
of the server Secret's certificate, never its key (infra/control_plane.py). At every collection
it notes each server's content (digests, as the chart's reloader keeps them) and since when it
may have been there: since the service last saw the content before (a file's modification time
would not do: a ConfigMap update, or locally the store's next write, rewrites files whose
content stays the same). It exports per server how long the server has been behind: a reload
that failed or never came, on either path, in any region."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from infra.region_servers import pod_of
from infra.reload_check import (
    Timeline,
    observed,
    stale_seconds,
    unix_seconds,
    watched_files,
)
from infra.runtime_checks import region_of


class ReloadWatch:
    """`config`: the servers' nats.conf as this service sees it, `{pod}` standing for a
    server's pod where each has its own (locally); `grace` and `spread` as in
    infra.reload_check.stale_seconds."""

    def __init__(
        self,
        cluster: str,
        config: str,
        *,
        grace: float,
        spread: float,
        logger: logging.Logger,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cluster = cluster
        self.config = config
        self.grace = grace
        self.spread = spread
        self.logger = logger
        self.clock = clock
        self.timelines: dict[str, Timeline] = {}
        self.looked: dict[str, float] = {}  # when each server's files were last read
        self._unreadable: set[str] = set()

    def content(self, pod: str) -> str:
        """The digest of a server's files (not its key); OSError when one is missing."""
        config = self.config.replace("{pod}", pod)
        files = watched_files(config, lambda p: Path(p).read_text(), keys=False)
        digest = hashlib.sha256()
        for path in files:
            digest.update(f"{path}\0".encode())
            digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
        return digest.hexdigest()

    def stale(self, varz: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
        """Each answering server of the region: seconds behind its files (0: current). A
        server whose files cannot be read (or whose load time cannot) is left out, and logged
        once."""
        found = {}
        now = self.clock()
        for name, server in region_of(varz, self.cluster).items():
            pod = pod_of(name, self.cluster)
            if pod is None or not server.config_load_time:
                continue
            try:
                digest = self.content(pod)
                loaded_at = unix_seconds(server.config_load_time)
            except (OSError, ValueError) as error:  # a file missing or unreadable
                if name not in self._unreadable:
                    self._unreadable.add(name)
                    self.logger.warning(
                        "cannot read a server's files",
                        extra={"fields": {"server": name, "error": str(error)}},
                    )
                continue
            self._unreadable.discard(name)
            # new content appeared after the last look, which was before this one's clock
            timeline = observed(self.timelines.get(name, ()), digest, self.looked.get(name, now))
            self.timelines[name], self.looked[name] = timeline, now
            found[name] = stale_seconds(
                timeline, loaded_at, now, grace=self.grace, spread=self.spread
            )
        return found
