"""How `./dev test` spreads the suite over worker processes (pytest-xdist, `--dist loadgroup`).

A fixture wider than a test is set up once per worker that needs it, and the live ones start
servers; so tests that share one run on one worker: those using a session fixture (a running
supercluster, the evaluated stacks) form a group named after it, those using a module fixture a
group per module, and the rest go wherever a worker is free. Live tests come first, the biggest
units first, and the pure ones fill the end (`_order`), so that both workers end together.

xdist's own loadgroup carries a test's group in its id, which pytest 9.2 no longer lets a
plugin change, so it groups nothing there (pytest-xdist issue #1386, open, with pytest 9.2.0
and xdist 3.8.0 as pinned). Here the workers write each test's group to a file the controller
names, and the controller's scheduler reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

from localnet.ports import PORTS_ENV, port_range
from tests.lanes import LIVE

_SHARED_SCOPES = {"session": 0, "package": 1, "module": 2}
_GROUPS_KEY = "distribution_groups"
_GROUPS = pytest.StashKey[Path]()


def group_of(item: pytest.Item) -> str | None:
    """The group an item runs in, or None to run it wherever a worker is free."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    shared = {}
    for name, definitions in info.name2fixturedefs.items():
        definition = definitions[-1]
        if definition.scope in _SHARED_SCOPES and definition.baseid:
            shared[name] = definition  # plugins' own (tmp_path_factory: no baseid) cost nothing
    if not shared:
        return None
    widest = min(_SHARED_SCOPES[d.scope] for d in shared.values())
    if widest == _SHARED_SCOPES["module"]:
        return item.nodeid.split("::")[0]
    # The one the others are built on (`east` and `west` on `deployed`): its users share it.
    bases: list[str] = sorted(
        str(name)
        for name, definition in shared.items()
        if _SHARED_SCOPES[definition.scope] == widest and not set(definition.argnames) & set(shared)
    )
    return bases[0]


def _order(item: pytest.Item, group: str | None) -> tuple[int, int]:
    """Live before pure; in each, the groups sharing a session fixture (the control service's
    running supercluster: the longest unit of all), then those sharing a module fixture, then
    tests sharing nothing. A worker takes the next unit when it is down to its last pending
    test, so the big units go first and the small ones even out the end."""
    kind = 2 if group is None else 1 if group.endswith(".py") else 0
    return 0 if item.get_closest_marker(LIVE) is not None else 1, kind


class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped
    """xdist's scheduling by scope, the scope of a test being its group (or the test itself),
    in the order the workers collected them (no reordering by size)."""

    def __init__(self, config: pytest.Config, log: Producer | None, groups: Path) -> None:
        super().__init__(config, log)
        self.groups_file = groups
        self._groups: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self._groups is None:  # read once every worker has collected (schedule)
            self._groups = json.loads(self.groups_file.read_text())
        return self._groups.get(nodeid, nodeid)


def worker_ports(worker: int, workers: int, whole: tuple[int, int]) -> str:
    """The slice of `whole` worker number `worker` picks its listening ports from (as
    LOCALNET_PORTS), disjoint from the other workers' so that two never pick the same one."""
    low, high = whole
    size = (high - low + 1) // workers
    return f"{low + worker * size}-{low + (worker + 1) * size - 1}"


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        # The servers a worker's tests start, in process or as programs, listen in its slice.
        os.environ[PORTS_ENV] = worker_ports(
            int(workerinput["workerid"].removeprefix("gw")),
            int(workerinput["workercount"]),
            port_range(),
        )
    if workerinput is None and config.getoption("dist", "no") == "loadgroup":
        config.stash[_GROUPS] = Path(tempfile.mkdtemp(prefix="pytest-groups-")) / "groups.json"


def pytest_unconfigure(config: pytest.Config) -> None:
    groups = config.stash.get(_GROUPS, None)
    if groups is not None:
        shutil.rmtree(groups.parent, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """The controller tells each worker where to write the groups."""
    groups = node.config.stash.get(_GROUPS, None)
    if groups is not None:
        node.workerinput[_GROUPS_KEY] = str(groups)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LoadScopeScheduling | None:
    groups = config.stash.get(_GROUPS, None)
    if groups is None:
        return None
    config.option.loadscopereorder = False  # the order the workers collected
    return GroupScheduling(config, log, groups)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker: the items in the order above, and their groups written for the
    controller (every worker writes the same; a whole file replaces another at once)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or _GROUPS_KEY not in workerinput:
        return  # one process: the usual order
    groups = {item.nodeid: group_of(item) for item in items}
    items.sort(key=lambda item: _order(item, groups[item.nodeid]))
    path = Path(workerinput[_GROUPS_KEY])
    partial = path.with_name(f"{path.name}.{os.getpid()}")
    partial.write_text(json.dumps({k: f"@{g}" for k, g in groups.items() if g is not None}))
    partial.replace(path)
