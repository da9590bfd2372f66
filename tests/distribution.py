"""How `./dev test` spreads the suite over worker processes (pytest-xdist, `--dist loadgroup`).

A fixture wider than a test is set up once per worker that needs it, and the live ones start
servers; so tests that share one run on one worker: those using a session fixture (a running
supercluster, the evaluated stacks) form a group named after it, those using a module fixture a
group per module, and the rest go wherever a worker is free. Live tests are handed out first,
since they take longest and mostly wait, so that the short pure tests fill the end.
"""

from __future__ import annotations

import pytest

from tests.lanes import LIVE

_SHARED_SCOPES = {"session": 0, "package": 1, "module": 2}


def group_of(item: pytest.Item) -> str | None:
    """The group an item runs in, or None to run it wherever a worker is free."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    shared = {}
    for name, definitions in info.name2fixturedefs.items():
        definition = definitions[-1]
        if definition.scope in _SHARED_SCOPES and definition.func.__module__.startswith("tests."):
            shared[name] = definition  # plugins' wide fixtures (tmp_path_factory) cost nothing
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


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):
        return  # one process: keep the usual order
    for item in items:
        group = group_of(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: item.get_closest_marker(LIVE) is None)
