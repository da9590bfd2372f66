"""Docs that stay true: every file, test, `./dev` command and option, stack config key and
relative link that README.md and docs/*.md cite must exist, and every stack config key the
model has must be in the configuration reference. `python -m tools.doc_check` prints what is
wrong; tests/test_docs.py runs it in `./dev test`."""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.util
import io
import re
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from infra.config_base import ConfigModel
from infra.config_model import RawStackConfig
from infra.jetstream import JetStreamConfig
from tools.python_source import parse_file

PROJECT_DIR = Path(__file__).resolve().parent.parent
TOP_DIRS = ("infra", "components", "services", "localnet", "offline", "tools", "tests", "bench",
            "docs", ".github", ".ci")  # fmt: skip
ROOT_FILE = re.compile(
    r"(Pulumi(\.[\w-]+)?\.yaml|requirements[\w-]*\.(txt|in)|pyproject\.toml|__main__\.py|dev)"
)
CONFIG_SECTIONS = ("nodes", "nats", "pki", "jetstream", "app", "monitoring", "eks", "aks")
CONFIG_TABLE_HEADER = "| key | default | allowed |"

_TICKED = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
_DEV = re.compile(r"\./dev(?:\s+([a-z][\w-]*))?((?:[ \t]+[^\s`|;]+)*)")
_PATHLIKE = re.compile(r"[\w.-]+(/[\w.*<>{}-]+)+/?")
_KEY = re.compile(rf"({'|'.join(CONFIG_SECTIONS)})\.[A-Za-z][\w.*]*")
_FILE_NAME = re.compile(r".*\.(conf|py|ya?ml|json|md|txt|in|toml|sh|crt|key)")


@dataclass(frozen=True)
class Problem:
    doc: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.what}"


def documents(project: Path = PROJECT_DIR) -> list[Path]:
    return [project / "README.md", *sorted((project / "docs").glob("*.md"))]


def check(doc: str, text: str, project: Path = PROJECT_DIR) -> list[Problem]:
    """Everything `text` (the document `doc`, relative to the project) cites that does not
    exist."""
    found: list[Problem] = []
    here = (project / doc).parent
    for line_no, token in _ticked_and_fenced(text):
        found += [Problem(doc, line_no, w) for w in _check_token(token, project)]
    for line_no, line in enumerate(text.splitlines(), 1):
        for match in _DEV.finditer(line):
            found += [Problem(doc, line_no, w) for w in _check_dev(match, project)]
        for target in _LINK.findall(line):
            found += [Problem(doc, line_no, w) for w in _check_link(target, here, text)]
    return found


def _ticked_and_fenced(text: str) -> Iterator[tuple[int, str]]:
    """Backticked spans, and the words of fenced blocks that look like project paths."""
    fenced = {m.start(): m.group(0) for m in _FENCE.finditer(text)}
    for start, block in fenced.items():
        first = text.count("\n", 0, start) + 1
        for offset, line in enumerate(block.splitlines()):
            for word in re.split(r"[\s,()]+", line):
                if word.split("/", 1)[0] in TOP_DIRS and "/" in word:
                    yield first + offset, word
    outside = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for line_no, line in enumerate(outside.splitlines(), 1):
        for span in _TICKED.findall(line):
            yield line_no, span


def _check_token(token: str, project: Path) -> list[str]:
    token = token.strip()
    path, _, test = token.partition("::")
    if _PATHLIKE.fullmatch(path) and path.split("/", 1)[0] in TOP_DIRS:
        return _check_path(path, test, project)
    if ROOT_FILE.fullmatch(token):
        return [] if (project / token).exists() else [f"no file {token}"]
    if _KEY.fullmatch(token) and not _FILE_NAME.fullmatch(token):
        return [] if _known_key(token) else [f"no stack config key {token}"]
    return []


def _check_path(path: str, test: str, project: Path) -> list[str]:
    if "<" in path or "{" in path:  # a placeholder, e.g. Pulumi.<stack>.yaml
        return []
    matches = sorted(project.glob(path.rstrip("/"))) if "*" in path else [project / path]
    if not matches or not all(m.exists() for m in matches):
        return [f"no file {path}"]
    if test and not _defines(matches[0], test):
        return [f"{path} has no test {test}"]
    return []


def _defines(path: Path, name: str) -> bool:
    tree = parse_file(path)
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
        for node in ast.walk(tree)
    )


def _check_dev(match: re.Match[str], project: Path) -> list[str]:
    command, rest = match.group(1), match.group(2) or ""
    if command is None:
        return []
    commands = dev_commands(project)
    if command not in commands:
        return [f"./dev has no command {command!r} (it has {', '.join(sorted(commands))})"]
    words = rest.split()
    usage = dev_usage(command, project)
    wrong = []
    operation = words[0] if words and not words[0].startswith(("-", "<")) else None
    if command == "rehearse" and operation is not None and operation not in usage:
        wrong.append(f"./dev rehearse has no operation {operation!r}")
    for word in words:
        flag = word.split("=", 1)[0]
        if re.fullmatch(r"--[a-z][a-z-]*", flag) and usage and flag not in usage:
            wrong.append(f"./dev {command} has no option {flag}")
    return wrong


@functools.cache
def dev_commands(project: Path = PROJECT_DIR) -> dict[str, list[str]]:
    """The `./dev` script's commands, each with the Python module (and argument) it runs."""
    script = (project / "dev").read_text()
    branches = re.findall(r"^  ([a-z][\w-]*)\)\n(.*?)^    ;;", script, re.MULTILINE | re.DOTALL)
    found = {}
    for name, body in branches:
        module = re.search(r'-m ([\w.]+)((?: [a-z]+)?) "\$@"', body)
        found[name] = [module.group(1), *module.group(2).split()] if module else []
    return found


@functools.cache
def dev_usage(command: str, project: Path = PROJECT_DIR) -> str:
    """What `./dev <command> --help` prints ("" for a command that runs no Python module):
    the module's own `main` asked for help in this process, whose imports the other checks
    share (a `python -m` per command cost about 2 s of start-up each)."""
    module = dev_commands(project)[command]
    if not module:
        return ""
    name, *words = module
    spec = importlib.util.find_spec(name)
    package = spec is not None and spec.submodule_search_locations is not None
    entry = importlib.import_module(f"{name}.__main__" if package else name)
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), contextlib.suppress(SystemExit):
        entry.main([*words, "--help"])
    return shown.getvalue()


def _check_link(target: str, here: Path, text: str) -> list[str]:
    if re.match(r"[a-z]+:", target):  # https:, mailto:
        return []
    file, _, anchor = target.partition("#")
    doc = (here / file).resolve() if file else None
    if doc is not None and not doc.exists():
        return [f"link to a missing file {target}"]
    if not anchor:
        return []
    headings = doc.read_text() if doc is not None else text
    if anchor not in anchors(headings):
        return [f"link to a missing section {target}"]
    return []


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings: lower case, punctuation dropped,
    spaces as hyphens."""
    outside = _FENCE.sub("", markdown)
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", outside, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def config_keys(model: type[ConfigModel] = RawStackConfig, prefix: str = "") -> list[str]:
    """Every key of the stack config model as a stack file spells it (`nodes.minCount`);
    `jetstream`'s objects are documented by kind, so it counts as one key."""
    keys = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        nested = [t for t in _types(field.annotation) if issubclass(t, ConfigModel)]
        if nested and key != "jetstream":
            keys += config_keys(nested[0], key + ".")
        else:
            keys.append(key)
    return keys


def _types(annotation: object) -> list[type]:
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    members = typing.get_args(annotation) if union else (annotation,)
    return [m for m in members if isinstance(m, type)]


def _known_key(token: str) -> bool:
    key = token.removesuffix(".*")
    if key in config_keys():
        return True
    section, _, rest = key.partition(".")
    if section == "jetstream":
        fields = {f.alias or n for n, f in JetStreamConfig.model_fields.items()}
        return rest.split(".", 1)[0] in fields
    return token.endswith(".*") and section in CONFIG_SECTIONS


def undocumented_keys(configuration: str) -> list[str]:
    """The model's keys missing from the configuration reference's key table."""
    table = configuration.split(CONFIG_TABLE_HEADER, 1)[1].split("\n\n", 1)[0]
    documented = {
        key.removesuffix(".*")
        for row in table.splitlines()
        for key in _TICKED.findall(row.split("|")[1] if row.count("|") > 1 else "")
    }
    return [k for k in config_keys() if k not in documented]


def all_problems(project: Path = PROJECT_DIR) -> list[Problem]:
    found = []
    for path in documents(project):
        found += check(str(path.relative_to(project)), path.read_text(), project)
    configuration = project / "docs" / "configuration.md"
    found += [
        Problem("docs/configuration.md", 0, f"stack config key {k} is not documented")
        for k in undocumented_keys(configuration.read_text())
    ]
    return found


if __name__ == "__main__":
    problems = all_problems()
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)
