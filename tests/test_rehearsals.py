"""Each day-2 rehearsal, run small: its promise must hold on real servers under traffic."""

from __future__ import annotations

from pathlib import Path

import pytest

from localnet.rehearsals import add_region, destroy, reload, rotate, scale, upgrade

pytestmark = pytest.mark.live


def test_adding_a_region_and_the_partition_table(tmp_path: Path) -> None:
    report = add_region.rehearse(
        tmp_path,
        lambda _line: None,
        writes=5,
        two_region_cuts=("west",),
        three_region_cuts=("east",),  # the one that moves the leader; ./dev rehearse cuts all
    )
    assert report.held, report.render()
    lines = "\n".join(report.lines)
    assert "east and west lists unchanged: east lists no peer; west lists east" in lines
    assert "3 + 3 + 1, east cut off: meta leader azure-" in lines  # moved to west or central
    assert "3 + 3, west cut off: meta leader none" in lines


def test_scaling_a_region_up_and_down(tmp_path: Path) -> None:
    report = scale.rehearse(tmp_path, lambda _line: None)
    assert report.held, report.render()
    lines = "\n".join(report.lines)
    assert "route peers per server [4, 4, 4, 4, 4]" in lines
    assert (
        "peers removed from the meta group: ['aws-us-east-1-east-3', 'aws-us-east-1-east-4']"
        in lines
    )


def test_a_rolling_upgrade_of_one_region(tmp_path: Path) -> None:
    report = upgrade.rehearse(tmp_path, lambda _line: None, regions=("east",))
    assert report.held, report.render()
    assert f"before: ['{upgrade.previous_release()}']" in report.lines[0]


def test_rotating_certificates_and_the_ca(tmp_path: Path) -> None:
    report = rotate.rehearse(tmp_path, lambda _line: None)
    assert report.held, report.render()


def test_reloading_what_reloads_and_restarting_only_for_the_rest(tmp_path: Path) -> None:
    report = reload.rehearse(tmp_path, lambda _line: None)
    assert report.held, report.render()
    assert "the lame duck duration: refused by reload" in "\n".join(report.lines)


def test_destroying_every_region_in_engine_order_and_with_a_region_gone(tmp_path: Path) -> None:
    report = destroy.rehearse(
        tmp_path, lambda _line: None, unreachable_seconds=2, traffic_seconds=1
    )
    assert report.held, report.render()
    lines = "\n".join(report.lines)
    # The engine's order: the application, then JetStream objects, then the membership, then
    # the release; the last region alone removes no peer.
    east = lines[lines.index("destroy east") :]
    order = [
        "app-calculator-add",
        "consumer-answers-recorder",
        "stream-answers",
        "meta-peers",
        "nats-release",
        "nats-ns",
    ]
    positions = [east.index(step) for step in order]
    assert positions == sorted(positions)
