"""An evaluator of identity-based IAM policies, for the operators and wildcards our policies use,
so tests can ask "would AWS allow this call?" of a policy document.

Semantics (AWS IAM User Guide, "Policy evaluation logic" and "IAM JSON policy elements"): an
explicit Deny wins, otherwise any matching Allow allows, otherwise the call is implicitly
denied. Action names match case-insensitively with `*` and `?`; resource ARNs match per
colon-separated segment, case-sensitively, `*` spanning any characters of its segment (slashes
included). Within a Condition, every operator must hold; within an operator every key must hold;
a key with several values holds if any value matches. A condition on a key absent from the
request is false, except `Null`, whose "true" means absent and "false" means present.
An operator this evaluator does not know raises, so it never allows by accident.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Decision = Literal["allow", "implicit deny", "explicit deny"]


@dataclass(frozen=True)
class Call:
    """One API call as IAM authorizes it: the action, the resource, the request's context keys
    (tags in the request, tags on the resource, the creating action for tag-on-create)."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


def evaluate(policy: Mapping[str, Any], call: Call) -> Decision:
    allowed = False
    for statement in policy["Statement"]:
        if not _applies(statement, call):
            continue
        if statement["Effect"] == "Deny":
            return "explicit deny"
        allowed = True
    return "allow" if allowed else "implicit deny"


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _applies(statement: Mapping[str, Any], call: Call) -> bool:
    if {"NotAction", "NotResource", "NotPrincipal"} & set(statement):
        raise NotImplementedError("Not* elements are not evaluated here")
    actions = _listed(statement["Action"])
    if not any(_glob(a.lower(), call.action.lower()) for a in actions):
        return False
    if not any(_arn_matches(r, call.resource) for r in _listed(statement["Resource"])):
        return False
    return all(
        _condition(operator, keys, call.context)
        for operator, keys in statement.get("Condition", {}).items()
    )


def _glob(pattern: str, value: str) -> bool:
    """`*` any characters, `?` one; nothing else is special (IAM has no character classes)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _arn_matches(pattern: str, arn: str) -> bool:
    if pattern == "*":
        return True
    wanted, given = pattern.split(":", 5), arn.split(":", 5)
    if len(wanted) != 6 or len(given) != 6:
        return False
    return all(_glob(w, g) for w, g in zip(wanted, given, strict=True))


def _condition(operator: str, keys: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    present = {k.lower(): v for k, v in context.items()}
    for key, expected in keys.items():
        values = [str(v) for v in _listed(expected)]
        actual = present.get(key.lower())
        if operator == "Null":
            (want_absent,) = values
            if (actual is None) != (want_absent == "true"):
                return False
        elif operator == "StringEquals":
            if actual is None or actual not in values:
                return False
        elif operator == "StringLike":
            if actual is None or not any(_glob(v, actual) for v in values):
                return False
        else:
            raise NotImplementedError(f"condition operator {operator} is not evaluated here")
    return True
