"""The distribution over workers (tests/distribution.py), run on a small suite of its own:
tests sharing a session fixture run on one worker, whatever module they are in; so do those of
a module sharing a module fixture; the rest go wherever a worker is free. xdist's own
loadgroup groups nothing with pytest 9.2 (pytest-xdist issue #1386): this fails on it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from offline.stack_files import PROJECT_DIR

CONFTEST = """
import pytest

@pytest.fixture(scope="session")
def shared():
    return object()

@pytest.fixture(scope="session")
def built_on(shared):
    return shared
"""
SESSION_USERS = """
def test_a(shared): pass
def test_b(built_on): pass
def test_c(shared): pass
"""
MODULE_USERS = """
import pytest

@pytest.fixture(scope="module")
def here():
    return object()

def test_m1(here): pass
def test_m2(here): pass
def test_m3(here): pass
"""
LONERS = "\n".join(f"def test_{n}(): pass" for n in range(8))


def _run(tmp_path: Path, workers: int) -> str:
    """The small suite on `workers` workers: pytest's verbose output."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_first.py").write_text(SESSION_USERS)
    (suite / "test_second.py").write_text(SESSION_USERS.replace("test_", "test_other_"))
    (suite / "test_a_module.py").write_text(MODULE_USERS)  # collected before the session users
    (suite / "test_loners.py").write_text(LONERS)
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "xdist.plugin", "-p", "tests.distribution"),
            *("-p", "no:cacheprovider"),
            *("-n", str(workers), "--dist", "loadgroup", "-v", "-c", os.devnull),
            *("--rootdir", str(tmp_path), str(suite)),
        ],
        cwd=tmp_path,
        # Only the plugins it needs: hypothesis' and asyncio's cost each process a second.
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_the_units_sharing_a_session_fixture_go_first_then_modules_then_the_rest(
    tmp_path: Path,
) -> None:
    ran = re.findall(r"\[gw0\] .*PASSED \S+::(\w+)", _run(tmp_path, 1))
    kinds = [
        "loner" if t[5:].isdigit() else "module" if t.startswith("test_m") else "session"
        for t in ran
    ]
    assert kinds == ["session"] * 6 + ["module"] * 3 + ["loner"] * 8, ran


def test_tests_sharing_a_fixture_run_on_one_worker(tmp_path: Path) -> None:
    stdout = _run(tmp_path, 2)
    ran = {test: worker for worker, test in re.findall(r"\[(gw\d)\] .*PASSED \S+::(\w+)", stdout)}
    assert len(ran) == 6 + 3 + 8, stdout
    session = {ran[t] for t in ran if t.startswith(("test_a", "test_b", "test_c", "test_other"))}
    module = {ran[t] for t in ("test_m1", "test_m2", "test_m3")}
    assert len(session) == 1, ran
    assert len(module) == 1, ran
