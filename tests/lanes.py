"""The two test lanes and the guard that keeps them apart.

A test marked `live` starts real server programs (nats-server, MariaDB, Prometheus) or the
project's services as processes; every other test starts none and makes the fast lane
(`./dev test --fast`, `pytest -m "not live"`). The lanes cannot drift: while a test that is not
marked `live` runs (its fixtures' set-up included), starting one of those programs fails it with
a message naming the marker. Short-lived tools stay allowed everywhere: `nats-server -t` (the
configuration check), `--help`, promtool, git, and Python interpreters that run no service.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

LIVE = "live"
# Programs that serve until stopped; a test starting one belongs to the live lane.
SERVER_PROGRAMS = frozenset(
    {"nats-server", "mariadbd", "mysqld", "mariadb-install-db", "prometheus"}
)
# `python -m <package>` runs that start the project's long-running programs.
SERVER_PACKAGES = frozenset({"services", "localnet", "localnet.rehearsals", "bench"})
# Arguments that make a program print and exit instead of serving; nats-server's `-t` checks a
# configuration and exits.
_HELP_FLAGS = frozenset({"--help", "-h", "--version"})
_ONE_SHOT_FLAGS = _HELP_FLAGS | {"-t", "-v"}


class LaneError(RuntimeError):
    """A test outside the live lane started a server program."""


def server_program(argv: Sequence[str]) -> str | None:
    """The server program `argv` starts (looking through wrappers such as unshare and
    setpriv), or None when it starts none."""
    words = [os.path.basename(w) for a in argv for w in _words(a)]
    for index, word in enumerate(words):
        rest = set(words[index + 1 :])
        if word in SERVER_PROGRAMS:
            one_shot = _ONE_SHOT_FLAGS if word == "nats-server" else _HELP_FLAGS
            return None if one_shot & rest else word
        if word == "-m" and index + 1 < len(words) and words[index + 1] in SERVER_PACKAGES:
            return None if _HELP_FLAGS & rest else f"python -m {words[index + 1]}"
    return None


def _words(arg: str) -> list[str]:
    """An argument, and the words of a shell script given as one (`sh -c "... exec nats-server
    ..."`)."""
    if not any(c.isspace() for c in arg):
        return [arg]
    try:
        return shlex.split(arg)
    except ValueError:
        return arg.split()


def _argv(args: Any) -> list[str]:
    if isinstance(args, str | bytes | os.PathLike):
        return [os.fsdecode(args)]
    return [os.fsdecode(a) for a in args]


class Guard:
    """Wraps subprocess.Popen for the session; `item` is the test being set up, run or torn
    down (None between tests)."""

    def __init__(self) -> None:
        self.item: pytest.Item | None = None
        self._original: Callable[..., None] = subprocess.Popen.__init__

    def install(self) -> None:
        original = self._original
        guard = self

        def guarded(popen: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
            guard.check(_argv(args))
            original(popen, args, *rest, **kwargs)

        subprocess.Popen.__init__ = guarded  # type: ignore[method-assign, assignment]

    def uninstall(self) -> None:
        subprocess.Popen.__init__ = self._original  # type: ignore[method-assign]

    def check(self, argv: Sequence[str]) -> None:
        item = self.item
        if item is None or item.get_closest_marker(LIVE) is not None:
            return
        program = server_program(argv)
        if program is not None:
            raise LaneError(
                f"{item.nodeid} starts {program} but is not marked live: add "
                "`pytestmark = pytest.mark.live` to its module (or @pytest.mark.live to it), "
                "so that `./dev test --fast` leaves it out"
            )


_GUARD = Guard()


def pytest_configure() -> None:
    _GUARD.install()


def pytest_unconfigure() -> None:
    _GUARD.uninstall()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    _GUARD.item = item
    try:
        yield
    finally:
        _GUARD.item = None
