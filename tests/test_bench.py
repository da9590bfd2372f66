"""The live benchmarks run end to end (at a small size) and report what they claim to."""

from __future__ import annotations

import re

import pytest

from bench import live


@pytest.mark.live
def test_live_benchmarks_report_every_figure() -> None:
    lines = "\n".join(live.run(requests=100, messages=200))
    assert re.search(
        r"concurrency 64: \d+ req/s .*sequential loop \(concurrency 1\): \d+ req/s", lines
    )
    assert "geo-affinity east: 100.0% of 100 served in-region" in lines
    assert "geo-affinity west: 100.0% of 100 served in-region" in lines
    assert re.search(r"cross-region .*served by \{'west': \d+\}, 0 failed", lines)
    ingests = re.findall(
        r"recorder ingest .*\((\d+) of (\d+) in .*lost (\d+), duplicated (\d+)", lines
    )
    assert len(ingests) == 2
    for rows, messages, lost, duplicated in ingests:
        assert rows == messages == "200"
        assert (lost, duplicated) == ("0", "0")
