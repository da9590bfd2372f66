"""Each day-2 rehearsal, run small: its promise must hold on real servers under traffic."""

from __future__ import annotations

from pathlib import Path

from localnet.rehearsals import add_region


def test_adding_a_region_and_the_partition_table(tmp_path: Path) -> None:
    report = add_region.rehearse(tmp_path, lambda _line: None, writes=5, two_region_cuts=("west",))
    assert report.held, report.render()
    lines = "\n".join(report.lines)
    assert "east and west lists unchanged: east lists no peer; west lists east" in lines
    assert "3 + 3 + 1, east cut off: meta leader azure-" in lines  # moved to west or central
    assert "3 + 3, west cut off: meta leader none" in lines
