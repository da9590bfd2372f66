"""Is a second `pulumi up` with nothing changed a no-op?

Each stack is evaluated again with the first run's outputs as state (offline/replay.py), the same
config and the same peer stack outputs; every resource must then be registered with the same
inputs (secrets compared by their plain values), dependencies, parent and provider, or the
engine would diff it on every `up`. `differences` names each resource and property that moved.

What the engine diffs (pkg/resource/deploy/step_generator.go, `stepGenerator.diff` and
`diffResource`, pulumi/pulumi at 1b5949891b, after v3.259.0): the provider reference, then the
inputs through the provider's Diff. Dependencies are not diffed; the SDK gathers them in sets of
resource objects, so their order follows memory addresses and differs from run to run. They are
compared here as sets: a dependency gained or lost is reported, a reordering is not.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offline.evaluate import Evaluation, evaluate_stack, qualified
from offline.mocks_common import SECRET_SIG, SIG_KEY
from offline.monitor import Registration
from offline.replay import state_of
from offline.stack_files import PROJECT_DIR, project_name

_ABSENT = object()


@dataclass(frozen=True)
class Difference:
    stack: str
    resource: str  # "<type> <name>", or "" for the stack itself
    what: str  # "inputs.<path>", "provider", "dependencies", "missing", "outputs.<name>", ...
    first: str
    second: str

    def __str__(self) -> str:
        where = f"{self.stack}: {self.resource}" if self.resource else self.stack
        return f"{where}: {self.what}: {self.first} -> {self.second}"


def evaluate_again(
    first: Evaluation,
    config: Mapping[str, str],
    *,
    project_dir: Path = PROJECT_DIR,
    stack_outputs: Mapping[str, Mapping[str, Any]] | None = None,
) -> Evaluation:
    """The stack evaluated once more, the way the next `up` runs it: from `first`'s state."""
    return evaluate_stack(
        first.stack,
        config,
        project_dir=project_dir,
        stack_outputs=stack_outputs,
        state=state_of(first.resources),
    )


def second_up(
    first_runs: Mapping[str, Evaluation],
    configs: Mapping[str, Mapping[str, str]],
    *,
    project_dir: Path = PROJECT_DIR,
) -> dict[str, Evaluation]:
    """Every stack again, in deploy order, each seeing its peers' outputs as it saw them the
    first time (those of the stacks deployed before it)."""
    project = project_name(project_dir)
    again: dict[str, Evaluation] = {}
    earlier: list[Evaluation] = []
    for stack, first in first_runs.items():
        outputs = {qualified(project, e.stack): e.output_values() for e in earlier}
        again[stack] = evaluate_again(
            first, configs[stack], project_dir=project_dir, stack_outputs=outputs
        )
        earlier.append(first)
    return again


def differences(first: Evaluation, second: Evaluation) -> list[Difference]:
    """Everything the second run registered, read, invoked or exported differently."""
    found = _registrations(first.stack, first.resources, second.resources)
    found += _registrations(first.stack, first.reads, second.reads, kind="read ")
    if Counter(first.invokes) != Counter(second.invokes):
        found.append(
            Difference(first.stack, "", "invokes", str(first.invokes), str(second.invokes))
        )
    for key in sorted(first.outputs.keys() | second.outputs.keys()):
        a, b = first.outputs.get(key), second.outputs.get(key)
        if a is None or b is None or a.secret != b.secret:
            found.append(Difference(first.stack, "", f"outputs.{key}", _show(a), _show(b)))
            continue
        for path, x, y in _changes(a.value, b.value, f"outputs.{key}", a.secret):
            found.append(Difference(first.stack, "", path, x, y))
    return found


def _registrations(
    stack: str, first: list[Registration], second: list[Registration], kind: str = ""
) -> list[Difference]:
    before = {r.urn: r for r in first}
    after = {r.urn: r for r in second}
    found: list[Difference] = []
    for urn in sorted(before.keys() | after.keys()):
        a, b = before.get(urn), after.get(urn)
        if a is None or b is None:
            name = _label(a or b)  # type: ignore[arg-type]  # one of them is there
            found.append(Difference(stack, kind + name, "registered", str(bool(a)), str(bool(b))))
            continue
        label = kind + _label(a)
        for field in ("type", "parent", "custom", "provider", "ignore_changes"):
            if getattr(a, field) != getattr(b, field):
                found.append(
                    Difference(
                        stack, label, field, _show(getattr(a, field)), _show(getattr(b, field))
                    )
                )
        if set(a.dependencies) != set(b.dependencies):
            found.append(
                Difference(
                    stack,
                    label,
                    "dependencies",
                    _show(sorted(set(a.dependencies) - set(b.dependencies))),
                    _show(sorted(set(b.dependencies) - set(a.dependencies))),
                )
            )
        for key in sorted(a.property_dependencies.keys() | b.property_dependencies.keys()):
            x, y = (
                set(a.property_dependencies.get(key, [])),
                set(b.property_dependencies.get(key, [])),
            )
            if x != y:
                found.append(
                    Difference(
                        stack,
                        label,
                        f"propertyDependencies.{key}",
                        _show(sorted(x - y)),
                        _show(sorted(y - x)),
                    )
                )
        for path, first_value, second_value in _changes(a.inputs, b.inputs, "inputs"):
            found.append(Difference(stack, label, path, first_value, second_value))
    return found


def _label(registration: Registration) -> str:
    return f"{registration.type} {registration.name}"


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def _changes(a: Any, b: Any, path: str, secret: bool = False) -> Iterator[tuple[str, str, str]]:
    """(path, first, second) for every leaf that differs; secrets by their plain values, shown
    only as a digest."""
    if _is_secret(a) and _is_secret(b):
        yield from _changes(a.get("value"), b.get("value"), path, True)
    elif isinstance(a, dict) and isinstance(b, dict) and not (_is_secret(a) or _is_secret(b)):
        for key in sorted(a.keys() | b.keys(), key=str):
            x, y = a.get(key, _ABSENT), b.get(key, _ABSENT)
            yield from _changes(x, y, f"{path}.{key}", secret)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _changes(x, y, f"{path}[{index}]", secret)
    elif a != b or type(a) is not type(b):
        hidden = secret or _is_secret(a) or _is_secret(b)  # a secret made plain stays hidden
        yield path, _show(a, hidden), _show(b, hidden)


def _show(value: Any, secret: bool = False) -> str:
    if value is _ABSENT:
        return "(absent)"
    if secret or _is_secret(value):
        digest = hashlib.sha256(repr(value).encode()).hexdigest()[:12]
        return f"[secret sha256:{digest}]"
    text = repr(value)
    return text if len(text) <= 120 else f"{text[:100]}... ({len(text)} chars)"
