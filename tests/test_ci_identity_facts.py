"""The CI identities can do what the program does and no more: facts about the Azure built-in roles
and the AWS session the workflows ask for, read from their sources, checked against the
documented setup commands (docs/deploying.md, parsed here so the docs and the code cannot
drift), the workflows and the resources the program registers under the mocks.

Sources:
- MicrosoftDocs/azure-docs, articles/role-based-access-control/built-in-roles/privileged.md
  (commit 0b8729ea, generated 2026-07-01): Contributor (b24988ac-...) allows `*` but its
  NotActions include `Microsoft.Authorization/*/Write` and `Microsoft.Authorization/*/Delete`;
  Role Based Access Control Administrator (f58310d9-...) allows
  `Microsoft.Authorization/roleAssignments/write` and `/delete`, `*/read` and
  `Microsoft.Support/*`. built-in-roles/networking.md: Network Contributor is 4d97b98b-...;
  built-in-roles/general.md: Reader (acdd72a7-...) allows `*/read` only.
  delegate-role-assignments-examples.md (same commit), "Constrain roles": a condition on the
  assignment of the delegate, one clause for `roleAssignments/write` testing the requested
  `@Request[...:RoleDefinitionId]`, one for `roleAssignments/delete` testing the existing
  `@Resource[...:RoleDefinitionId]`, each with `ForAnyOfAnyValues:GuidEquals`.
- MicrosoftDocs/azure-docs articles/aks/control-kubeconfig-access.md: listing a cluster's user
  credentials is the action `listClusterUserCredential/action` of
  `Microsoft.ContainerService/managedClusters`; on a cluster without Entra ID integration those
  credentials act as the admin's.
- aws-actions/configure-aws-credentials v6.2.3, commit e6de0542 (the SHA stack.yml pins):
  action.yml, input `role-duration-seconds`, one hour by default; src/index.ts sets the default
  to 3600 and takes the input as an integer; src/assumeRole.ts passes it as `DurationSeconds`
  to STS unchanged and checks it against nothing, so a value above the role's maximum session
  duration is refused by STS at the assume call and the action fails the step with STS's
  message (src/index.ts, `setFailed`), after retrying the call (12 attempts by default,
  exponential backoff from 50 ms: src/helpers.ts `retryAndBackoff`, under two minutes in all);
  README.md: 900 to 43200 seconds.
- AWS IAM User Guide, "Methods to assume a role" / role chaining: a session obtained by chaining
  roles lasts at most one hour, whatever the role's maximum session duration.
"""

from __future__ import annotations

import re
import shlex
from fnmatch import fnmatchcase
from typing import Any

import yaml

from infra.endpoint import NETWORK_CONTRIBUTOR_ROLE
from offline.evaluate import Evaluation
from offline.stack_files import PROJECT_DIR

CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
# (actions, notActions) of the built-in roles, privileged.md / general.md at 0b8729ea
ROLES: dict[str, tuple[list[str], list[str]]] = {
    CONTRIBUTOR: (
        ["*"],
        [
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
            "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
            "Microsoft.Subscription/cancel/action",
            "Microsoft.Subscription/enable/action",
        ],
    ),
    RBAC_ADMINISTRATOR: (
        [
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ],
        [],
    ),
    READER: (["*/read"], []),
}
WRITE = "Microsoft.Authorization/roleAssignments/write"
DELETE = "Microsoft.Authorization/roleAssignments/delete"
LIST_USER_CREDENTIALS = (
    "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action"
)
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"

# configure-aws-credentials v6.2.3
CONFIGURE_AWS_CREDENTIALS = (
    "aws-actions/configure-aws-credentials@e6de054238d6b7531b4efff3b6587d9aade6a06c"
)
DEFAULT_SESSION_SECONDS = 3600
MIN_SESSION_SECONDS, MAX_SESSION_SECONDS = 900, 43200


def allows(role: str, action: str) -> bool:
    """Azure RBAC: an action is granted when an Actions pattern matches it and no NotActions
    pattern does; `*` matches any run of characters; operation names compare case-insensitively."""
    actions, not_actions = ROLES[role]

    def matches(pattern: str) -> bool:
        return fnmatchcase(action.lower(), pattern.lower())

    return any(map(matches, actions)) and not any(map(matches, not_actions))


def _documented_commands() -> list[list[str]]:
    """Every `az role assignment create` in docs/deploying.md, continuation lines joined."""
    text = (PROJECT_DIR / "docs" / "deploying.md").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        shlex.split(line.strip(), comments=True)
        for line in joined.splitlines()
        if line.strip().startswith("az role assignment create")
    ]


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def _condition_clauses(condition: str) -> dict[str, tuple[str, set[str]]]:
    """For each action the condition names: the attribute source it tests and the role ids."""
    clauses = re.findall(
        r"ActionMatches\{'([^']+)'\}\)\)\s*OR\s*\(@(Request|Resource)"
        r"\[Microsoft\.Authorization/roleAssignments:RoleDefinitionId\]"
        r" ForAnyOfAnyValues:GuidEquals \{([^}]*)\}\)",
        condition,
    )
    return {a: (source, {g.strip() for g in ids.split(",")}) for a, source, ids in clauses}


def permitted_by_condition(condition: str, action: str, role_id: str) -> bool:
    clauses = _condition_clauses(condition)
    if action not in clauses:
        return True
    return role_id in clauses[action][1]


def _deploy_condition() -> str:
    (command,) = [c for c in _documented_commands() if _option(c, "--role") == RBAC_ADMINISTRATOR]
    assert _option(command, "--condition-version") == "2.0"
    return _option(command, "--condition")


def test_contributor_alone_cannot_make_the_role_assignment() -> None:
    assert allows(CONTRIBUTOR, "Microsoft.Network/publicIPAddresses/write")  # the control
    assert allows(CONTRIBUTOR, "Microsoft.ContainerService/managedClusters/write")
    assert not allows(CONTRIBUTOR, WRITE)
    assert not allows(CONTRIBUTOR, DELETE)
    assert allows(RBAC_ADMINISTRATOR, WRITE)
    assert allows(RBAC_ADMINISTRATOR, DELETE)
    roles = {_option(c, "--role") for c in _documented_commands()}
    assert {"Contributor", RBAC_ADMINISTRATOR, READER} <= roles
    assert not roles & {"Owner", "User Access Administrator", OWNER}


def test_the_condition_admits_exactly_the_role_the_program_assigns(
    deployed: dict[str, Evaluation],
) -> None:
    assigned = {
        str(r.inputs["roleDefinitionId"]).rsplit("/", 1)[1]
        for e in deployed.values()
        for r in e.of_type(ROLE_ASSIGNMENT)
    }
    assert assigned == {NETWORK_CONTRIBUTOR_ROLE}
    condition = _deploy_condition()
    clauses = _condition_clauses(condition)
    # Adding is judged on the requested role, removing on the existing assignment's role.
    assert clauses == {WRITE: ("Request", assigned), DELETE: ("Resource", assigned)}
    assert permitted_by_condition(condition, WRITE, NETWORK_CONTRIBUTOR_ROLE)
    assert permitted_by_condition(condition, DELETE, NETWORK_CONTRIBUTOR_ROLE)
    for escalation in (OWNER, CONTRIBUTOR, RBAC_ADMINISTRATOR):
        assert not permitted_by_condition(condition, WRITE, escalation)
        assert not permitted_by_condition(condition, DELETE, escalation)


def test_the_preview_identity_only_reads() -> None:
    (preview,) = [c for c in _documented_commands() if _option(c, "--role") == READER]
    assert "--condition" not in preview
    for action in (WRITE, "Microsoft.Network/publicIPAddresses/write", LIST_USER_CREDENTIALS):
        assert not allows(READER, action)
    assert allows(READER, "Microsoft.ContainerService/managedClusters/read")


def _stack_job() -> dict[str, Any]:
    workflow = yaml.safe_load((PROJECT_DIR / ".github/workflows/stack.yml").read_text())
    job: dict[str, Any] = workflow["jobs"]["pulumi"]
    return job


def _session_seconds() -> dict[str, int]:
    expression = _stack_job()["env"]["AWS_SESSION_SECONDS"]
    found = re.fullmatch(
        r"\$\{\{ inputs\.command == 'preview' && '(\d+)' \|\| '(\d+)' \}\}", expression
    )
    assert found, expression
    return {
        "preview": int(found.group(1)),
        "up": int(found.group(2)),
        "destroy": int(found.group(2)),
    }


def test_deploys_and_destroys_get_a_session_that_outlasts_the_job() -> None:
    job = _stack_job()
    steps = job["steps"]
    (aws,) = [s for s in steps if s.get("id") == "aws"]
    assert aws["uses"].split(" ")[0] == CONFIGURE_AWS_CREDENTIALS
    assert aws["with"]["role-duration-seconds"] == "${{ env.AWS_SESSION_SECONDS }}"
    assert "role-chaining" not in aws["with"]  # a chained session would stop at one hour
    seconds = _session_seconds()
    assert seconds["preview"] == DEFAULT_SESSION_SECONDS
    for command in ("up", "destroy"):
        assert seconds[command] >= job["timeout-minutes"] * 60 > DEFAULT_SESSION_SECONDS
        assert MIN_SESSION_SECONDS <= seconds[command] <= MAX_SESSION_SECONDS
    # The documented role setup allows exactly what the workflow asks for.
    docs = (PROJECT_DIR / "docs" / "deploying.md").read_text()
    durations = re.findall(r"--max-session-duration (\d+)", docs)
    assert len(durations) >= 2
    assert {int(d) for d in durations} == {seconds["up"]}


def test_a_refused_session_stops_the_job_with_what_to_raise() -> None:
    steps = _stack_job()["steps"]
    index = next(i for i, s in enumerate(steps) if s.get("id") == "aws")
    explain = steps[index + 1]
    assert explain["if"] == "failure() && steps.aws.outcome == 'failure'"
    assert "--max-session-duration $AWS_SESSION_SECONDS" in explain["run"]
    assert explain["run"].rstrip().endswith("exit 1")
    # Nothing of Pulumi's runs before the session exists.
    assert not any("pulumi" in str(s.get("uses", "")) for s in steps[:index])
