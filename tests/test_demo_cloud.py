"""`./dev demo --cloud --prometheus`: the demo on the clouds' ways where they differ from the
local defaults (the chart's reloader reloads, west runs no JetStream, the requester is a Job
scraped while it runs and then gone), with a real Prometheus evaluating the alert rules on it.
Each difference is shown as the alerts see it: no meta leader missing for the region without
JetStream, a put with nothing to load applied at once and kept, the Jobs' totals still in
Prometheus after their targets went, and NatsRegionUnseen firing when west's servers stop and
resolving when they return."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_local_supercluster import processes_under, run_demo

pytestmark = pytest.mark.live


def test_the_cloud_variant_shows_what_the_alerts_see(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = run_demo(
        state, "--cloud", "--prometheus", "--requests", "60", "--rtt-ms", "0", timeout=400
    )
    assert "NOT AS PROMISED" not in out
    # Only east's three servers run JetStream.
    assert "over 3 servers" in out
    assert (
        "west runs no JetStream: meta leader series {'east': '1'}, "
        "NatsJetStreamMetaLeaderMissing quiet"
    ) in out
    assert re.search(
        r"a put that changes nothing \(reloader path\): applied in [\d.]+ s, "
        r"3 s later applied: nothing for the servers to load",
        out,
    )
    # 60 from west, 60 + 30 (the failover) from east, each run a Job of its own.
    jobs = re.search(r"requester Jobs ended \(no requester target left: True\); (.*)", out)
    assert jobs is not None, out
    assert "{'east': 90, 'west': 60}" in jobs.group(1) or "{'west': 60, 'east': 90}" in (
        jobs.group(1)
    )
    unseen = re.search(
        r"west's servers stopped: NatsRegionUnseen fired after ([\d.]+) s; "
        r"servers back: resolved after ([\d.]+) s",
        out,
    )
    assert unseen is not None, out
    # 6 s of staleness and 4 s of `for` on the local clock, behind a gathering and a scrape.
    assert 4 <= float(unseen.group(1)) <= 60
    assert processes_under(state) == []
