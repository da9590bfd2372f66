"""Bare stack configs and the helpers that build and parse them, shared by the config tests
(tests/test_config.py, tests/test_config_invalid.py)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from infra.config import StackConfig, parse_stack_config

P = "nats-supercluster"
# Bare minimal configs; the application needs an image, so these switch it off.
AWS = {f"{P}:cloud": "aws", f"{P}:region": "us-east-1", f"{P}:app": '{"enabled": false}'}
AZURE = {f"{P}:cloud": "azure", f"{P}:region": "westus", f"{P}:app": '{"enabled": false}'}


# The day the version calendar is read on, so these tests do not change with the date.
TODAY = date(2026, 11, 22)


def parse(raw: dict[str, str], stack: str = "east", today: date = TODAY) -> StackConfig:
    return parse_stack_config(raw, project=P, stack=stack, today=today)


def with_(base: dict[str, str], **values: Any) -> dict[str, str]:
    raw = dict(base)
    for key, value in values.items():
        raw[f"{P}:{key}"] = value if isinstance(value, str) else json.dumps(value)
    return raw
