"""Reads this stack's config from the Pulumi runtime and validates it (infra.config)."""

from __future__ import annotations

import pulumi
from pulumi.runtime import config as runtime_config

from infra.config import StackConfig, parse_stack_config


def read_stack_config() -> StackConfig:
    """Every key of the stack, not just known ones, so a misspelt key is an error, not a default.
    Pulumi's public Config API reads one known key at a time, hence the runtime's own map."""
    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    config = parse_stack_config(raw, project=pulumi.get_project(), stack=pulumi.get_stack())
    for warning in config.warnings:
        pulumi.log.warn(warning)
    return config
