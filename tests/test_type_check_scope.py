"""mypy analyses only the parts of the provider SDKs the program uses (pyproject.toml: the
packages are skipped, the used modules followed), which makes a cold `mypy` minutes faster. A
module the code starts to use must join the followed list, or its types would silently become
`Any`; this test finds every provider module the code imports or reaches by attribute and checks
that mypy's most specific override for it follows it."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import tomllib
from collections.abc import Iterator
from pathlib import Path

from tools.python_source import parse_file

PROJECT_DIR = Path(__file__).resolve().parent.parent
PACKAGES = ("pulumi_aws", "pulumi_azure_native", "pulumi_kubernetes")


def _config() -> dict[str, object]:
    return tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["mypy"]  # type: ignore[no-any-return]


def _sources() -> Iterator[Path]:
    for entry in _config()["files"]:  # type: ignore[attr-defined]
        path = PROJECT_DIR / entry
        yield from [path] if path.is_file() else sorted(path.rglob("*.py"))


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _used(tree: ast.AST) -> set[str]:
    """The provider modules a file imports, and those it reaches as attributes of an imported
    package or module (`aws.ec2.Vpc`)."""
    found: set[str] = set()
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    found.add(alias.name)
                    aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] not in PACKAGES:
                continue
            found.add(node.module)
            for alias in node.names:
                qualified = f"{node.module}.{alias.name}"
                if _is_module(qualified):
                    found.add(qualified)
                    aliases[alias.asname or alias.name] = qualified
                else:  # a class or function: where it is defined
                    value = getattr(importlib.import_module(node.module), alias.name)
                    found.add(getattr(value, "__module__", node.module))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            base = aliases.get(node.value.id)
            if base is not None and _is_module(f"{base}.{node.attr}"):
                found.add(f"{base}.{node.attr}")
    return found


def _follow_imports(module: str) -> str:
    """mypy's setting for `module`: the most specific override wins (an exact name, then the
    longest `prefix.*`)."""
    best: tuple[int, str] | None = None
    for override in _config().get("overrides", []):  # type: ignore[attr-defined]
        if "follow_imports" not in override:
            continue
        patterns = override["module"]
        for pattern in [patterns] if isinstance(patterns, str) else patterns:
            if pattern == module:
                rank = 10_000
            elif pattern.endswith(".*") and (
                module == pattern[:-2] or module.startswith(pattern[:-1])
            ):
                rank = len(pattern)
            else:
                continue
            if best is None or rank > best[0]:
                best = (rank, override["follow_imports"])
    return best[1] if best else "normal"


def test_every_provider_module_the_code_uses_is_analysed() -> None:
    used: dict[str, set[str]] = {}
    for path in _sources():
        for module in _used(parse_file(path)):
            used.setdefault(module, set()).add(str(path.relative_to(PROJECT_DIR)))
    assert {m.split(".")[0] for m in used} == set(PACKAGES)
    skipped = {m: sorted(files) for m, files in used.items() if _follow_imports(m) != "silent"}
    assert not skipped, f"add these to the followed list in pyproject.toml: {skipped}"


def test_the_rest_of_each_provider_is_skipped() -> None:
    """The point of the list: an unused service of each provider is not analysed."""
    for unused in ("pulumi_aws.sagemaker", "pulumi_azure_native.web", "pulumi_kubernetes.node"):
        assert _follow_imports(unused) == "skip", unused
    assert _follow_imports("pulumi_aws.ec2._inputs") == "silent"
