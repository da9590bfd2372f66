"""Reads Pulumi.<stack>.yaml the way the Pulumi CLI hands it to a program: a flat map of strings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent


def project_name(project_dir: Path = PROJECT_DIR) -> str:
    document = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    return str(document["name"])


def stack_names(project_dir: Path = PROJECT_DIR) -> list[str]:
    """The stacks with a Pulumi.<stack>.yaml, in deploy order: the CA's stack and each stack's
    peers before it (the order `pulumi up` must follow for the first deploy)."""
    needs = stack_needs(project_dir)
    names = sorted(needs)
    for name in names:
        missing = sorted(needs[name] - set(names))
        if missing:
            raise ValueError(
                f"stack {name!r} references {', '.join(repr(m) for m in missing)} (peers or "
                f"pki.caStack), which has no Pulumi.<stack>.yaml; stacks: {', '.join(names)}"
            )
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and needs[n] <= set(ordered)]
        if not ready:
            raise ValueError(f"stacks reference each other in a cycle: {needs}")
        ordered.append(ready[0])
    return ordered


def stack_needs(project_dir: Path = PROJECT_DIR) -> dict[str, set[str]]:
    """For each stack, the stacks it reads through StackReferences (peers and the CA's owner)."""
    project = project_name(project_dir)
    names = sorted(p.name.split(".")[1] for p in project_dir.glob("Pulumi.*.yaml"))
    return {
        name: _referenced(load_stack_config(name, project_dir), project) - {name} for name in names
    }


def _referenced(config: dict[str, str], project: str) -> set[str]:
    peers = json.loads(config.get(f"{project}:peers", "[]"))
    ca_stack = json.loads(config.get(f"{project}:pki", "{}")).get("caStack", "east")
    return {str(p).split("/")[-1] for p in [*peers, ca_stack]} - {""}


MAX_STACK_FILE_BYTES = 1 << 20


class _NoAliases(yaml.SafeLoader):
    """A stack file needs no anchors or aliases, and nested aliases expand exponentially once
    turned into config text (a billion laughs): refuse them where they appear."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.YAMLError(
                f"YAML alias *{event.anchor} {event.start_mark}: stack files take no aliases"
            )
        return super().compose_node(parent, index)


def load_stack_config(stack: str, project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """Objects and lists become JSON, scalars their text, as with `pulumi config --json`."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    text = path.read_text()
    if len(text) > MAX_STACK_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_STACK_FILE_BYTES} bytes")
    document = yaml.load(text, Loader=_NoAliases) or {}  # a SafeLoader without aliases
    return {key: config_text(value) for key, value in (document.get("config") or {}).items()}


def config_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
