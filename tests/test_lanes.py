"""The lane guard (tests/lanes.py): which commands start a server program, and that a test
outside the live lane cannot start one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.lanes import Guard, LaneError, server_program


@pytest.mark.parametrize(
    ("argv", "program"),
    [
        # localnet/region.py: a server in its own mount namespace, tied to its parent
        (
            ["setpriv", "--pdeathsig", "TERM", "unshare", "--mount", "sh", "-c",
             'mount --bind "/x/hosts" /etc/hosts && exec "/v/bin/nats-server" -c "/x/nats.conf"'],
            "nats-server",
        ),
        (["/usr/sbin/mariadbd", "--datadir=/x"], "mariadbd"),
        (["/usr/bin/prometheus", "--config.file=p.yml"], "prometheus"),
        ([sys.executable, "-m", "services", "calculator"], "python -m services"),
        ([sys.executable, "-m", "localnet", "up"], "python -m localnet"),
        # one-shot tools: they print or check and exit
        (["/v/bin/nats-server", "-t", "-c", "nats.conf"], None),
        ([sys.executable, "-m", "localnet", "--help"], None),
        (["/usr/bin/promtool", "test", "rules", "t.yml"], None),
        ([sys.executable, "-c", "print(1)"], None),
        (["git", "ls-files"], None),
    ],
)  # fmt: skip
def test_which_commands_start_a_server(argv: list[str], program: str | None) -> None:
    assert server_program(argv) == program


def test_a_test_outside_the_live_lane_cannot_start_a_server(
    request: pytest.FixtureRequest,
) -> None:
    """This test is not marked live: with the guard on it, starting nats-server fails before
    any process exists, naming the marker; a tool still runs."""
    guard = Guard()
    guard.install()
    guard.item = request.node
    try:
        with pytest.raises(LaneError, match=r"starts nats-server but is not marked live"):
            subprocess.Popen(["sh", "-c", "exec nats-server -c /nonexistent.conf"])
        done = subprocess.run(
            [sys.executable, "-c", "print('tool')"], check=True, capture_output=True
        )
        assert done.stdout == b"tool\n"
    finally:
        guard.uninstall()


@pytest.mark.live
def test_a_live_test_may(request: pytest.FixtureRequest) -> None:
    guard = Guard()
    guard.install()
    guard.item = request.node
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "localnet", "--help"], stdout=subprocess.DEVNULL
        )
        assert process.wait(timeout=60) == 0
        guard.check(["nats-server", "-c", "x.conf"])  # allowed: raises nothing
    finally:
        guard.uninstall()
