"""The GitHub workflows, checked with real linters from PyPI: the GitHub workflow JSON schema
(check-jsonschema's vendored copy) and zizmor's security audits (offline)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from offline.stack_files import PROJECT_DIR, stack_names

WORKFLOWS = PROJECT_DIR / ".github" / "workflows"
BIN = Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, check=False)


def _workflow(name: str) -> dict[object, object]:
    document: dict[object, object] = yaml.safe_load((WORKFLOWS / name).read_text())
    return document


def test_workflows_match_the_github_schema() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 5
    result = _run(
        str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing() -> None:
    result = _run(
        str(BIN / "zizmor"), "--offline", "--config", ".github/zizmor.yml", str(WORKFLOWS)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_every_action_is_pinned_to_a_commit() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        for uses in re.findall(r"uses:\s*(\S+)", path.read_text()):
            if uses.startswith("./"):
                continue
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), f"{path.name}: {uses}"


def test_workflows_start_with_no_permissions() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        if path.name == "test.yml":
            assert _workflow(path.name)["permissions"] == {"contents": "read"}
        else:
            assert _workflow(path.name)["permissions"] == {}, path.name


def test_deploy_goes_east_west_central_and_destroy_the_reverse() -> None:
    deploy = _workflow("deploy.yml")["jobs"]
    destroy = _workflow("destroy.yml")["jobs"]
    assert isinstance(deploy, dict)
    assert isinstance(destroy, dict)
    assert "east" in deploy["west"]["needs"]
    assert "west" in deploy["central"]["needs"]
    assert destroy["west"]["needs"] == "central"
    assert destroy["east"]["needs"] == "west"
    assert [deploy[s]["with"]["stack"] for s in ("east", "west", "central")] == stack_names()


def test_preview_covers_every_stack_and_test_runs_the_readme_command() -> None:
    preview = _workflow("preview.yml")["jobs"]
    assert isinstance(preview, dict)
    assert sorted(preview["preview"]["strategy"]["matrix"]["stack"]) == sorted(stack_names())
    readme = (PROJECT_DIR / "README.md").read_text()
    assert "./dev test" in readme
    steps = _workflow("test.yml")["jobs"]["test"]["steps"]  # type: ignore[index]
    assert steps[-1]["run"] == "./dev test"
