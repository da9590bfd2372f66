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


def _select_step_calls(tmp_path: Path, command: str, backend_url: str) -> list[str]:
    """Runs stack.yml's select step with a `pulumi` that records its arguments and, like the
    real CLI, fails to select a stack that does not exist unless asked to create it."""
    steps = _workflow("stack.yml")["jobs"]["pulumi"]["steps"]  # type: ignore[index]
    (script,) = [s["run"] for s in steps if str(s.get("name", "")).startswith("Select the stack")]
    tmp_path.mkdir()
    fake = tmp_path / "pulumi"
    log = tmp_path / "calls"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        'case "$*" in *"stack select"*--create*) exit 0;; *"stack select"*) exit 255;; esac\n'
    )
    fake.chmod(0o755)
    result = subprocess.run(
        ["bash", "-e", "-c", script],
        env={
            "PATH": f"{tmp_path}:/usr/bin:/bin",
            "STACK": "west",
            "COMMAND": command,
            "IMAGE": "",
            "PULUMI_BACKEND_URL": backend_url,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    calls = log.read_text().splitlines()
    assert (result.returncode == 0) is (command != "destroy"), calls
    return calls


def test_a_first_run_creates_the_stack_but_destroy_never_does(tmp_path: Path) -> None:
    assert _select_step_calls(tmp_path / "a", "up", "s3://bucket")[1] == (
        "stack select --create --secrets-provider passphrase west"
    )
    assert _select_step_calls(tmp_path / "b", "preview", "")[1] == "stack select --create west"
    assert _select_step_calls(tmp_path / "c", "destroy", "s3://bucket")[1] == "stack select west"
