"""Shared fixtures: each stack file evaluated once under mocks, the local supercluster the
control service's live tests share, and graph helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from offline.evaluate import Evaluation, evaluate_in_order, qualified
from offline.monitor import Registration
from offline.stack_files import load_stack_config, project_name, stack_names

pytest_plugins = ("tests.lanes", "tests.distribution")

if TYPE_CHECKING:
    from localnet.demo import Supercluster


@pytest.fixture(scope="session")
def deployed() -> dict[str, Evaluation]:
    """Every stack file, evaluated in deploy order with earlier stacks' outputs."""
    stacks = stack_names()
    return evaluate_in_order(stacks, {s: load_stack_config(s) for s in stacks})


@pytest.fixture(scope="session")
def control_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supercluster]:
    """East and west (3 + 3 servers), their calculators and control services, no recorder:
    started once for the control service's live test modules."""
    from localnet.demo import Supercluster  # noqa: PLC0415 (live tests only)
    from localnet.options import DemoOptions  # noqa: PLC0415 (live tests only)

    with Supercluster(
        DemoOptions(
            state_dir=tmp_path_factory.mktemp("control") / "state", rtt_ms=0, recorder=False
        ),
        say=lambda _line: None,
    ).running() as supercluster:
        yield supercluster


@pytest.fixture(scope="session")
def east(deployed: dict[str, Evaluation]) -> Evaluation:
    return deployed["east"]


@pytest.fixture(scope="session")
def west(deployed: dict[str, Evaluation]) -> Evaluation:
    return deployed["west"]


def after(*deployed: Evaluation) -> dict[str, dict[str, object]]:
    """Stack outputs as a later stack's StackReferences see them."""
    return {qualified(project_name(), e.stack): e.output_values() for e in deployed}


def depends_on(evaluation: Evaluation, dependent: Registration, dependency: Registration) -> bool:
    """True when `dependent` reaches `dependency` through declared or property dependencies or
    its provider (a resource is deleted before its provider), which is what makes `pulumi
    destroy` delete `dependent` first."""
    seen: set[str] = set()
    stack = [dependent.urn]
    while stack:
        urn = stack.pop()
        if urn in seen:
            continue
        seen.add(urn)
        resource = next((r for r in evaluation.resources if r.urn == urn), None)
        if resource is None:
            continue
        edges = set(resource.dependencies)
        for urns in resource.property_dependencies.values():
            edges.update(urns)
        if resource.provider:
            edges.add(resource.provider.rsplit("::", 1)[0])
        if dependency.urn in edges:
            return True
        stack.extend(edges)
    return False


def named(evaluation: Evaluation, type_: str, suffix: str) -> Registration:
    matches = [r for r in evaluation.of_type(type_) if r.name.endswith(suffix)]
    assert len(matches) == 1, f"{type_} ending {suffix!r}: {[r.name for r in matches]}"
    return matches[0]
