"""What a local supercluster runs: its regions and the options `./dev demo` and the tests start
it with (localnet/demo.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localnet.supercluster import RegionPlan
from offline.stack_files import PROJECT_DIR

DEFAULT_STATE_DIR = PROJECT_DIR / ".local" / "supercluster"
REGIONS = (
    # (cluster, load balancer name or address, where it listens, server name prefix)
    ("east", "east.lb.nats.test", "127.0.0.1", "aws-us-east-1-"),
    ("west", "127.0.0.2", "127.0.0.2", "azure-westus-"),
)


@dataclass(frozen=True)
class DemoOptions:
    state_dir: Path = DEFAULT_STATE_DIR
    rtt_ms: float = 70.0
    requests: int = 500
    concurrency: int = 32
    # `mysql://user:password@host:port/database`, or None for the embedded database.
    mysql: str | None = None
    # First port to hand out (load balancers, then servers), or None for kernel-chosen ports.
    port_base: int | None = None
    # The regions, in deploy order; None: the demo's east and west.
    plans: tuple[RegionPlan, ...] | None = None
    # Each pair of regions joined by a link of its own (localnet.links), so pairs can be cut.
    linked: bool = False
    # Regions `up` starts; the others wait for `start_region`. None: all of them.
    start: tuple[str, ...] | None = None
    # Regions that run the calculators; None: all. The recorder runs in the first region.
    app_regions: tuple[str, ...] | None = None
    recorder: bool = True
    # Every server runs this nats-server instead of the pinned one (a rolling upgrade's start).
    server_binary: str | None = None
    # A real Prometheus scraping the services and evaluating the alert rules (scaled down).
    prometheus: bool = False
    # The clouds' reload path: the control services only write the files and watch, and a
    # stand-in for the kubelet and the chart's reloader (localnet/reloader.py) reloads.
    reloader: bool = False
    # Regions of the demo's own plan whose servers run without JetStream (`nats.jetstream:
    # false`), as a region may in the clouds; the first region keeps it (the stream is there).
    jetstream_off: tuple[str, ...] = ()

    def region_plans(self) -> tuple[RegionPlan, ...]:
        if self.plans is not None:
            return self.plans
        return tuple(
            RegionPlan(
                name,
                endpoint,
                address,
                prefix,
                jetstream=name not in self.jetstream_off,
                gateway_delay_ms=self.rtt_ms / 2,
            )
            for name, endpoint, address, prefix in REGIONS
        )

    @classmethod
    def cloud(cls, **options: Any) -> DemoOptions:
        """The clouds' ways where they differ from the local defaults: the chart's reloader
        reloads (not the control service), west runs without JetStream (the two-region layout
        infra/quorum.py recommends), and, with Prometheus, the requester is scraped as a Job."""
        return cls(**{"reloader": True, "jetstream_off": ("west",), **options})
