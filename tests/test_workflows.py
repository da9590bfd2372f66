"""The GitHub workflows, checked with real linters from PyPI: the GitHub workflow JSON schema
(check-jsonschema's vendored copy) and zizmor's security audits (offline)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def _run_step(
    script: str, bin_dir: Path, tool: str, body: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """A workflow step's script under bash -e, with a fake `tool` (a shell script of `body`)
    first on PATH and only `env` besides."""
    fake = bin_dir / tool
    fake.write_text("#!/bin/sh\n" + body)
    fake.chmod(0o755)
    return subprocess.run(
        ["bash", "-e", "-c", script],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def _select_step_calls(tmp_path: Path, command: str, backend_url: str) -> list[str]:
    """Runs stack.yml's select step with a `pulumi` that records its arguments and, like the
    real CLI, fails to select a stack that does not exist unless asked to create it."""
    steps = _workflow("stack.yml")["jobs"]["pulumi"]["steps"]  # type: ignore[index]
    (script,) = [s["run"] for s in steps if str(s.get("name", "")).startswith("Select the stack")]
    tmp_path.mkdir()
    log = tmp_path / "calls"
    result = _run_step(
        script,
        tmp_path,
        "pulumi",
        f'echo "$*" >> "{log}"\n'
        'case "$*" in *"stack select"*--create*) exit 0;; *"stack select"*) exit 255;; esac\n',
        {"STACK": "west", "COMMAND": command, "IMAGE": "", "PULUMI_BACKEND_URL": backend_url},
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


def _triggers(name: str) -> dict[object, object]:
    document = _workflow(name)
    triggers = document.get("on", document.get(True))  # YAML 1.1 reads a bare `on` as true
    assert isinstance(triggers, dict)
    return triggers


def _stack_job() -> dict[str, Any]:
    job: dict[str, Any] = _workflow("stack.yml")["jobs"]["pulumi"]  # type: ignore[index]
    return job


def test_previews_run_only_for_branches_of_this_repository_in_the_preview_environment() -> None:
    # `pull_request` runs the pull request's own workflow files, never with the base branch's
    # secrets on their own: what guards the secrets is the environment (below), not this file.
    assert list(_triggers("preview.yml")) == ["pull_request"]
    job = _workflow("preview.yml")["jobs"]["preview"]  # type: ignore[index]
    assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert job["with"]["environment"] == "preview"
    assert job["with"]["command"] == "preview"
    for name in ("deploy.yml", "destroy.yml"):
        jobs = _workflow(name)["jobs"]
        assert isinstance(jobs, dict)
        for caller in jobs.values():
            if caller.get("uses") == "./.github/workflows/stack.yml":
                assert caller["with"]["environment"] == "production", name


def test_callers_pass_the_two_secrets_by_name_and_nothing_else() -> None:
    # The values are secrets of the environments: the called job gets them by naming its
    # environment, which GitHub holds until a reviewer approves. The caller must still name them
    # (an environment secret a caller does not pass reads as empty), and names no other.
    names = {"PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE"}
    for path in WORKFLOWS.glob("*.yml"):
        jobs = _workflow(path.name)["jobs"]
        assert isinstance(jobs, dict)
        for name, job in jobs.items():
            if job.get("uses") != "./.github/workflows/stack.yml":
                assert "secrets" not in job, f"{path.name}: {name}"
                continue
            assert job["secrets"] == {n: f"${{{{ secrets.{n} }}}}" for n in names}, name
    declared = _triggers("stack.yml")["workflow_call"]["secrets"]  # type: ignore[index]
    assert set(declared) == names


def test_the_stack_job_checks_its_environment_before_any_code_or_secret() -> None:
    job = _stack_job()
    assert job["environment"] == "${{ inputs.environment }}"
    assert job["permissions"]["actions"] == "read"
    assert "secrets." not in yaml.safe_dump(job["env"])
    steps = job["steps"]
    assert steps[0]["name"] == "The environment requires a reviewer"
    assert "secrets." not in yaml.safe_dump(steps[0])
    assert "uses" not in steps[0]
    for step in steps[1:]:
        if "secrets." in yaml.safe_dump(step):
            assert str(step.get("uses", "")).startswith("pulumi/actions") or "pulumi login" in str(
                step.get("run", "")
            )


def _environment_check(tmp_path: Path, environment: str, settings: object) -> tuple[int, str]:
    """Runs the first step of stack.yml with a `gh` that answers with `settings` (None: the API
    refuses) and the real `jq`."""
    script = _stack_job()["steps"][0]["run"]
    tmp_path.mkdir()
    if settings is None:
        answer = "echo 'HTTP 404: Not Found' >&2\nexit 1\n"
    else:
        (tmp_path / "settings.json").write_text(json.dumps(settings))
        answer = (f'test "$*" = "api repos/o/r/environments/{environment}" '
                  f'&& cat "{tmp_path}/settings.json"\n')  # fmt: skip
    result = _run_step(
        script,
        tmp_path,
        "gh",
        answer,
        {"REPOSITORY": "o/r", "ENVIRONMENT": environment, "GH_TOKEN": "token"},
    )
    return result.returncode, result.stdout + result.stderr


def _reviewers(prevent_self_review: bool, reviewers: int = 1) -> dict[str, object]:
    return {
        "type": "required_reviewers",
        "prevent_self_review": prevent_self_review,
        "reviewers": [{"type": "Team", "reviewer": {"slug": "maintainers"}}] * reviewers,
    }


def test_the_environment_check_passes_only_a_protected_environment(tmp_path: Path) -> None:
    branch_policy = {"protected_branches": False, "custom_branch_policies": True}
    cases: list[tuple[str, object, bool]] = [
        ("preview", {"protection_rules": [_reviewers(True)]}, True),
        ("preview", {"protection_rules": []}, False),  # anyone's run starts at once
        ("preview", {"protection_rules": [{"type": "wait_timer", "wait_timer": 5}]}, False),
        ("preview", {"protection_rules": [_reviewers(True, reviewers=0)]}, False),
        # The rule without its reviewers listed (a token that may not see them) still counts.
        (
            "preview",
            {"protection_rules": [{"type": "required_reviewers", "prevent_self_review": True}]},
            True,
        ),
        ("preview", {"protection_rules": [_reviewers(False)]}, False),  # authors approve themselves
        ("preview", None, False),  # the environment does not exist, or cannot be read
        (
            "production",
            {"protection_rules": [_reviewers(False)], "deployment_branch_policy": branch_policy},
            True,
        ),
        (
            "production",
            {"protection_rules": [_reviewers(False)], "deployment_branch_policy": None},
            False,
        ),
        ("production", {"protection_rules": [], "deployment_branch_policy": branch_policy}, False),
    ]
    for number, (environment, settings, passes) in enumerate(cases):
        code, output = _environment_check(tmp_path / str(number), environment, settings)
        assert (code == 0) is passes, (environment, settings, output)
        if not passes:
            assert "::error::" in output, output
