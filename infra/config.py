"""The typed stack configuration, validated in full before the program registers any resource.

Pulumi hands the program its config as a flat map of strings (`project:key` -> value, objects as
JSON). `parse_stack_config` turns that map into a `StackConfig` with every default resolved, or
raises `ConfigError` listing every bad key, the value it got and what is allowed. The keys are
`infra.config_model`, the rules between keys `infra.config_rules` (with those from the clouds'
facts in `infra.config_rules_cloud` and those over JetStream objects in
`infra.config_rules_jetstream`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError

from infra.config_model import (
    AZURE_ZONES,
    AksConfig,
    AppConfig,
    Cloud,
    ConfigIssue,
    EksConfig,
    MonitoringConfig,
    NatsConfig,
    PkiConfig,
    RawStackConfig,
)
from infra.config_rules import cross_check
from infra.config_rules_cloud import config_warnings, region_has_zones
from infra.jetstream import JetStreamConfig

__all__ = ["Cloud", "ConfigError", "ConfigIssue", "StackConfig", "parse_stack_config"]


@dataclass(frozen=True)
class Nodes:
    instance_type: str
    count: int
    min_count: int
    max_count: int
    disk_size_gb: int
    zones: tuple[str, ...]


@dataclass(frozen=True)
class StackConfig:
    """A validated stack configuration with every default resolved."""

    project: str
    stack: str
    cloud: Cloud
    region: str
    cluster_name: str
    kubernetes_version: str
    nodes: Nodes
    peers: tuple[str, ...]
    tags: Mapping[str, str]
    nats: NatsConfig
    pki: PkiConfig
    jetstream: JetStreamConfig
    app: AppConfig
    monitoring: MonitoringConfig
    eks: EksConfig | None
    aks: AksConfig | None
    # Valid now, but worth a `pulumi up` warning (a version near the end of its support).
    warnings: tuple[str, ...] = ()

    def require_app_image(self) -> str:
        if self.app.image is None:
            raise ValueError("app.image is not set")
        return self.app.image

    @property
    def owns_ca(self) -> bool:
        return self.pki.ca_stack.split("/")[-1] == self.stack

    def require_eks(self) -> EksConfig:
        if self.eks is None:
            raise ValueError(f"stack {self.stack!r} runs on {self.cloud}, not aws")
        return self.eks

    def require_aks(self) -> AksConfig:
        if self.aks is None:
            raise ValueError(f"stack {self.stack!r} runs on {self.cloud}, not azure")
        return self.aks


class ConfigError(ValueError):
    """Raised with every problem in a stack's config; nothing has been created when it is."""

    def __init__(self, project: str, stack: str, issues: list[ConfigIssue]) -> None:
        self.project = project
        self.stack = stack
        self.issues = issues
        lines = "\n".join(f"  - {i.render(project)}" for i in issues)
        super().__init__(
            f"stack {stack!r} has {len(issues)} invalid config value(s); "
            f"nothing was created:\n{lines}"
        )

    @property
    def keys(self) -> list[str]:
        return [i.key for i in self.issues]


DEFAULT_INSTANCE_TYPE: Mapping[Cloud, str] = {"aws": "m6i.large", "azure": "Standard_D2s_v5"}


def default_zones(cloud: Cloud, region: str) -> tuple[str, ...]:
    """The first three zones: AWS names them after the region, Azure numbers them; none in an
    Azure region without zones."""
    if cloud == "aws":
        return tuple(f"{region}{letter}" for letter in "abc")
    return AZURE_ZONES if region_has_zones(cloud, region) else ()


def parse_stack_config(
    raw: Mapping[str, Any], *, project: str, stack: str, today: date | None = None
) -> StackConfig:
    """Validate Pulumi's flat config map for `project`; raise ConfigError naming every bad key.
    `today` decides which Kubernetes versions are still under standard support."""
    prefix = f"{project}:"
    values = {k[len(prefix) :]: _decode(v) for k, v in raw.items() if k.startswith(prefix)}
    try:
        parsed = RawStackConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(project, stack, _issues_from(exc)) from None
    today = today or date.today()
    issues = cross_check(parsed, stack, today)
    if issues:
        raise ConfigError(project, stack, issues)
    return _resolve(parsed, project, stack, tuple(config_warnings(parsed, today)))


def _decode(value: Any) -> Any:
    """Objects and lists arrive as JSON text; scalars stay strings for pydantic to coerce."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _issues_from(exc: ValidationError) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = _key_path(loc)
        if err["type"] == "extra_forbidden":
            known = ", ".join(_known_keys(loc[:-1]))
            issues.append(ConfigIssue(key, f"unknown key; known keys here: {known}"))
        elif err["type"] == "missing":
            issues.append(ConfigIssue(key, "is required" + _allowed_hint(loc)))
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            issues.append(ConfigIssue(key, message, err.get("input"), has_value=True))
    return issues


def _key_path(loc: list[str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path


def _known_keys(loc: list[str]) -> list[str]:
    model: type[BaseModel] = RawStackConfig
    for part in loc:
        if part.isdigit():
            continue
        field = next(
            (f for name, f in model.model_fields.items() if (f.alias or name) == part), None
        )
        nested = _model_in(field.annotation) if field else None
        if nested is None:
            return []
        model = nested
    return sorted(f.alias or n for n, f in model.model_fields.items())


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _allowed_hint(loc: list[str]) -> str:
    return "; allowed: 'aws' or 'azure'" if loc == ["cloud"] else ""


def _resolve(
    cfg: RawStackConfig, project: str, stack: str, warnings: tuple[str, ...]
) -> StackConfig:
    nodes = cfg.nodes
    return StackConfig(
        project=project,
        stack=stack,
        cloud=cfg.cloud,
        region=cfg.region,
        cluster_name=cfg.cluster_name or stack,
        kubernetes_version=cfg.kubernetes_version,
        nodes=Nodes(
            instance_type=nodes.instance_type or DEFAULT_INSTANCE_TYPE[cfg.cloud],
            count=nodes.count,
            min_count=nodes.min_count,
            max_count=nodes.max_count,
            disk_size_gb=nodes.disk_size_gb,
            zones=tuple(nodes.zones)
            if nodes.zones is not None
            else default_zones(cfg.cloud, cfg.region),
        ),
        peers=tuple(cfg.peers),
        tags=dict(cfg.tags),
        nats=cfg.nats,
        pki=cfg.pki,
        jetstream=cfg.jetstream,
        app=cfg.app,
        eks=(cfg.eks or EksConfig()) if cfg.cloud == "aws" else None,
        aks=(cfg.aks or AksConfig()) if cfg.cloud == "azure" else None,
        monitoring=cfg.monitoring,
        warnings=warnings,
    )
