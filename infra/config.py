"""The typed stack configuration, validated in full before the program registers any resource.

Pulumi hands the program its config as a flat map of strings (`project:key` -> value, objects as
JSON). `parse_stack_config` turns that map into a `StackConfig` with every default resolved, or
raises `ConfigError` listing every bad key, the value it got and what is allowed.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from infra.jetstream import JetStreamConfig, kv_stream_name, parse_duration, subjects_overlap

Cloud = Literal["aws", "azure"]

_DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,22}[a-z0-9])?$")
_K8S_VERSION = re.compile(r"^1\.(\d{2})$")
_STACK_REF = re.compile(r"^([A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+$")
_AWS_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
_AZURE_REGION = re.compile(r"^[a-z][a-z0-9]+$")
_AWS_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_AZURE_VM_SIZE = re.compile(r"^Standard_[A-Za-z0-9_]+$")
_AWS_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")

MIN_KUBERNETES_MINOR = 31
AZURE_ZONES = ("1", "2", "3")
# AKS puts its nodes in a managed virtual network with this range when none is given; the pod and
# service ranges must stay clear of it.
AKS_MANAGED_NODE_RANGE = ipaddress.IPv4Network("10.224.0.0/12")
_PRIVATE_RANGES = tuple(
    ipaddress.IPv4Network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)


def _dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(
            "must be a DNS label: 1-24 characters of lowercase letters, digits and '-', "
            "starting with a letter and not ending with '-'"
        )
    return value


def _kubernetes_version(value: str) -> str:
    match = _K8S_VERSION.match(value)
    if not match:
        raise ValueError(
            "must be a quoted 'MAJOR.MINOR' string such as '1.34' "
            "(unquoted YAML reads 1.30 as the number 1.3)"
        )
    if int(match.group(1)) < MIN_KUBERNETES_MINOR:
        raise ValueError(f"must be 1.{MIN_KUBERNETES_MINOR} or newer")
    return value


def _stack_ref(value: str) -> str:
    if not _STACK_REF.match(value):
        raise ValueError("must be a stack name such as 'east' or 'org/nats-supercluster/east'")
    return value


def _private_network(value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    if not any(value.subnet_of(r) for r in _PRIVATE_RANGES):
        raise ValueError(
            "must be a private range inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 "
            "or 100.64.0.0/10"
        )
    return value


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat an entry")
    return values


def _matching(pattern: str, example: str) -> Callable[[str], str]:
    """A validator for a Kubernetes quantity, with an example in its message."""

    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(f"must be a Kubernetes quantity like {example}")
        return value

    return check


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
KubernetesVersion = Annotated[str, AfterValidator(_kubernetes_version)]
StackRef = Annotated[str, AfterValidator(_stack_ref)]
PrivateNetwork = Annotated[ipaddress.IPv4Network, AfterValidator(_private_network)]
AwsPrincipalArn = Annotated[str, Field(pattern=_AWS_PRINCIPAL_ARN.pattern)]


class _Model(BaseModel):
    """Keys are camelCase in stack config (Pulumi's convention); unknown keys are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class NodesConfig(_Model):
    """The Kubernetes worker pool that runs NATS and the application."""

    instance_type: str | None = Field(
        None, description="EC2 instance type or Azure VM size; default m6i.large / Standard_D2s_v5"
    )
    count: int = Field(3, ge=1, le=100, description="nodes at creation")
    min_count: int = Field(3, ge=1, le=100, description="lower autoscaling bound")
    max_count: int = Field(6, ge=1, le=100, description="upper autoscaling bound")
    disk_size_gb: int = Field(100, ge=30, le=2048, description="OS disk per node")
    zones: Annotated[list[str], AfterValidator(_unique)] | None = Field(
        None, description="zones to spread over; default the region's first three"
    )


class EksConfig(_Model):
    """Settings that only exist on AWS."""

    vpc_cidr: PrivateNetwork = ipaddress.IPv4Network("10.10.0.0/16")
    service_cidr: PrivateNetwork = ipaddress.IPv4Network("172.20.0.0/16")
    nat_gateways: Literal["perZone", "single"] = "perZone"
    public_access_cidrs: list[ipaddress.IPv4Network] = Field(
        default_factory=lambda: [ipaddress.IPv4Network("0.0.0.0/0")], min_length=1
    )
    admin_principal_arns: list[AwsPrincipalArn] = Field(default_factory=list)


class AksConfig(_Model):
    """Settings that only exist on Azure."""

    pod_cidr: PrivateNetwork = ipaddress.IPv4Network("10.244.0.0/16")
    service_cidr: PrivateNetwork = ipaddress.IPv4Network("10.0.0.0/16")
    dns_service_ip: ipaddress.IPv4Address = ipaddress.IPv4Address("10.0.0.10")
    sku_tier: Literal["Free", "Standard"] = "Standard"
    upgrade_channel: Literal["none", "patch", "stable", "rapid", "node-image"] = "patch"
    disk_sku: Literal["Premium_LRS", "Premium_ZRS", "StandardSSD_LRS", "StandardSSD_ZRS"] = (
        "Premium_LRS"
    )
    authorized_ip_ranges: list[ipaddress.IPv4Network] = Field(default_factory=list)


class NatsConfig(_Model):
    """The NATS servers of this region."""

    replicas: int = Field(3, ge=1, le=5, description="servers in this region")
    namespace: DnsLabel = "nats"
    jetstream: bool = Field(True, description="run JetStream on this region's servers")
    storage_size: Annotated[str, AfterValidator(_matching(r"[1-9][0-9]*Gi", "'10Gi'"))] = "10Gi"
    cpu: Annotated[
        str, AfterValidator(_matching(r"[1-9][0-9]*m|[0-9]+(\.[0-9]+)?", "'500m' or '1'"))
    ] = "1"
    memory: Annotated[str, AfterValidator(_matching(r"[1-9][0-9]*(Mi|Gi)", "'512Mi' or '2Gi'"))] = (
        "2Gi"
    )


_IMAGE = re.compile(
    r"^[a-z0-9]([a-z0-9._/-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$"
)


def _image(value: str) -> str:
    if not _IMAGE.match(value):
        raise ValueError(
            "must be a container image reference like "
            "'ghcr.io/org/nats-supercluster-services:<tag>'"
        )
    return value


class AppConfig(_Model):
    """The application of seed 001 on this region (services/)."""

    enabled: bool = True
    image: Annotated[str, AfterValidator(_image)] | None = None
    calculator_replicas: int = Field(3, ge=1, le=50)
    requests: int = Field(1000, ge=1, le=10_000_000)
    concurrency: int = Field(64, ge=1, le=10_000)
    mysql_image: Annotated[str, AfterValidator(_image)] = "mysql:8.4"
    mysql_storage_size: Annotated[str, AfterValidator(_matching(r"[1-9][0-9]*Gi", "'10Gi'"))] = (
        "10Gi"
    )


class PkiConfig(_Model):
    """Who owns the supercluster's CA: that stack creates it, every other stack reads it."""

    ca_stack: StackRef = "east"


class _RawStackConfig(_Model):
    cloud: Cloud
    region: str = Field(min_length=1)
    cluster_name: DnsLabel | None = None
    kubernetes_version: KubernetesVersion = "1.34"
    nodes: NodesConfig = NodesConfig()
    peers: Annotated[list[StackRef], AfterValidator(_unique)] = Field(default_factory=list)
    tags: dict[Annotated[str, Field(min_length=1, max_length=127)], str] = Field(
        default_factory=dict
    )
    nats: NatsConfig = NatsConfig()
    pki: PkiConfig = PkiConfig()
    jetstream: JetStreamConfig = JetStreamConfig()
    app: AppConfig = AppConfig()
    eks: EksConfig | None = None
    aks: AksConfig | None = None


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
    eks: EksConfig | None
    aks: AksConfig | None

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


@dataclass(frozen=True)
class ConfigIssue:
    key: str
    message: str
    value: Any = None
    has_value: bool = False

    def render(self, project: str) -> str:
        got = f" (got {self.value!r})" if self.has_value else ""
        return f"{project}:{self.key}: {self.message}{got}"


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
    """The first three zones: AWS names them after the region, Azure numbers them."""
    if cloud == "aws":
        return tuple(f"{region}{letter}" for letter in "abc")
    return AZURE_ZONES


def parse_stack_config(raw: Mapping[str, Any], *, project: str, stack: str) -> StackConfig:
    """Validate Pulumi's flat config map for `project`; raise ConfigError naming every bad key."""
    prefix = f"{project}:"
    values = {k[len(prefix) :]: _decode(v) for k, v in raw.items() if k.startswith(prefix)}
    try:
        parsed = _RawStackConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(project, stack, _issues_from(exc)) from None
    issues = _cross_check(parsed, stack)
    if issues:
        raise ConfigError(project, stack, issues)
    return _resolve(parsed, project, stack)


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
    model: type[BaseModel] = _RawStackConfig
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


def _cross_check(cfg: _RawStackConfig, stack: str) -> list[ConfigIssue]:
    """Rules that span keys, each reported against the key a user would change."""
    issues: list[ConfigIssue] = []
    add = issues.append
    other = "aks" if cfg.cloud == "aws" else "eks"
    if getattr(cfg, other) is not None:
        add(ConfigIssue(other, f"only valid when cloud is {_cloud_of(other)!r}, not {cfg.cloud!r}"))

    region_rule = _AWS_REGION if cfg.cloud == "aws" else _AZURE_REGION
    if not region_rule.match(cfg.region):
        example = "us-east-1" if cfg.cloud == "aws" else "westus"
        add(
            ConfigIssue(
                "region",
                f"is not an {cfg.cloud} region name like {example!r}",
                cfg.region,
                has_value=True,
            )
        )

    if cfg.cluster_name is None and not _DNS_LABEL.match(stack):
        add(
            ConfigIssue(
                "clusterName",
                f"defaults to the stack name {stack!r}, which is not a "
                "DNS label; set clusterName to 1-24 lowercase letters, digits and '-'",
            )
        )

    issues += _check_nodes(cfg)
    if stack in cfg.peers or any(p.split("/")[-1] == stack for p in cfg.peers):
        add(
            ConfigIssue(
                "peers",
                f"must not list this stack ({stack!r}) itself",
                list(cfg.peers),
                has_value=True,
            )
        )
    for key in cfg.tags:
        if key.lower().startswith(("aws:", "azure", "microsoft", "windows")):
            add(ConfigIssue(f"tags.{key}", "uses a prefix reserved by the cloud provider"))

    issues += _check_jetstream(cfg.jetstream, cfg.nats, cfg.cluster_name or stack)
    if cfg.app.enabled and cfg.app.image is None:
        add(
            ConfigIssue(
                "app.image",
                "is required while app.enabled is true: build "
                "services/Dockerfile and push it (README, 'The application'), or set "
                "app.enabled to false",
            )
        )
    if cfg.nats.jetstream and cfg.nats.replicas < 3 and not cfg.peers:
        add(
            ConfigIssue(
                "nats.replicas",
                "fewer than 3 JetStream servers form a meta group only "
                "with gateway peers; list peers, use 3 replicas, or set nats.jetstream "
                "to false",
                cfg.nats.replicas,
                has_value=True,
            )
        )
    if cfg.cloud == "aws":
        issues += _check_eks(cfg.eks or EksConfig())
    else:
        issues += _check_aks(cfg.aks or AksConfig())
    return issues


def _cloud_of(block: str) -> Cloud:
    return "aws" if block == "eks" else "azure"


def _check_nodes(cfg: _RawStackConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    nodes = cfg.nodes
    if not nodes.min_count <= nodes.count <= nodes.max_count:
        issues.append(
            ConfigIssue(
                "nodes.count",
                f"must lie between nodes.minCount ({nodes.min_count}) and nodes.maxCount "
                f"({nodes.max_count})",
                nodes.count,
                has_value=True,
            )
        )

    if nodes.instance_type is not None:
        rule, example = (
            (_AWS_INSTANCE_TYPE, "m6i.large")
            if cfg.cloud == "aws"
            else (_AZURE_VM_SIZE, "Standard_D2s_v5")
        )
        if not rule.match(nodes.instance_type):
            issues.append(
                ConfigIssue(
                    "nodes.instanceType",
                    f"is not an {cfg.cloud} machine size like {example!r}",
                    nodes.instance_type,
                    has_value=True,
                )
            )

    if nodes.zones is not None:
        if cfg.cloud == "aws":
            bad = [z for z in nodes.zones if not re.fullmatch(re.escape(cfg.region) + "[a-z]", z)]
            if bad or not 2 <= len(nodes.zones) <= 3:
                issues.append(
                    ConfigIssue(
                        "nodes.zones",
                        f"must name 2 or 3 zones of {cfg.region} such as {cfg.region}a "
                        "(EKS needs two; the subnet plan holds three)",
                        nodes.zones,
                        has_value=True,
                    )
                )
        elif any(z not in AZURE_ZONES for z in nodes.zones):
            issues.append(
                ConfigIssue(
                    "nodes.zones",
                    "allowed zones are '1', '2' and '3' (an empty list for a region without zones)",
                    nodes.zones,
                    has_value=True,
                )
            )
    return issues


def _check_jetstream(js: JetStreamConfig, nats: NatsConfig, cluster: str) -> list[ConfigIssue]:
    """What the JetStream server would refuse, or what would make a stack fight itself."""
    names = [s.name for s in js.streams] + [kv_stream_name(k.bucket) for k in js.kv]
    issues = [
        ConfigIssue("jetstream.streams", f"declares {duplicate!r} more than once")
        for duplicate in sorted({n for n in names if names.count(n) > 1})
    ]
    issues += _check_streams(js, nats, cluster)
    issues += _check_kv(js, nats)
    issues += _check_consumers(js)
    return issues


def _check_streams(js: JetStreamConfig, nats: NatsConfig, cluster: str) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    add = issues.append
    for i, stream in enumerate(js.streams):
        key = f"jetstream.streams[{i}]"
        here = stream.placement.cluster in (None, cluster)
        if stream.mirror is not None and (stream.subjects or stream.sources):
            add(ConfigIssue(f"{key}.mirror", "a mirror takes no subjects and no sources"))
        if stream.mirror is None and not stream.subjects and not stream.sources:
            add(ConfigIssue(f"{key}.subjects", "needs subjects (or sources, or a mirror)"))
        if here and not nats.jetstream:
            add(
                ConfigIssue(
                    f"{key}.placement.cluster",
                    f"places the stream in {cluster!r}, "
                    "where nats.jetstream is false; place it in another cluster",
                )
            )
        max_age = parse_duration(stream.max_age)
        if max_age and parse_duration(stream.duplicate_window) > max_age:
            add(
                ConfigIssue(
                    f"{key}.duplicateWindow",
                    f"must not exceed maxAge ({stream.max_age})",
                    stream.duplicate_window,
                    has_value=True,
                )
            )
        if here and stream.replicas and stream.replicas > nats.replicas:
            add(
                ConfigIssue(
                    f"{key}.replicas",
                    f"exceeds the {nats.replicas} server(s) of this region (nats.replicas)",
                    stream.replicas,
                    has_value=True,
                )
            )
        for j, other in enumerate(js.streams[:i]):
            clash = [
                (a, b) for a in stream.subjects for b in other.subjects if subjects_overlap(a, b)
            ]
            if clash:
                add(
                    ConfigIssue(
                        f"{key}.subjects",
                        f"{clash[0][0]!r} overlaps {clash[0][1]!r} "
                        f"of jetstream.streams[{j}] ({other.name})",
                    )
                )
    return issues


def _check_kv(js: JetStreamConfig, nats: NatsConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for i, kv in enumerate(js.kv):
        if kv.replicas and kv.replicas > nats.replicas:
            issues.append(
                ConfigIssue(
                    f"jetstream.kv[{i}].replicas",
                    f"exceeds the {nats.replicas} server(s) of this region",
                    kv.replicas,
                    has_value=True,
                )
            )
        if not nats.jetstream:
            issues.append(ConfigIssue(f"jetstream.kv[{i}]", "this region runs no JetStream"))
    return issues


def _check_consumers(js: JetStreamConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    add = issues.append
    streams = {s.name: s for s in js.streams}
    seen: set[tuple[str, str]] = set()
    for i, consumer in enumerate(js.consumers):
        key = f"jetstream.consumers[{i}]"
        if (consumer.stream, consumer.name) in seen:
            add(
                ConfigIssue(
                    f"{key}.name", f"{consumer.name!r} is declared twice on {consumer.stream!r}"
                )
            )
        seen.add((consumer.stream, consumer.name))
        target = streams.get(consumer.stream)
        if target is None:
            known = ", ".join(sorted(streams)) or "none"
            add(
                ConfigIssue(
                    f"{key}.stream",
                    f"names a stream not declared in jetstream.streams (declared: {known})",
                    consumer.stream,
                    has_value=True,
                )
            )
        elif target.subjects:
            for subject in consumer.filter_subjects:
                if not any(subjects_overlap(subject, s) for s in target.subjects):
                    add(
                        ConfigIssue(
                            f"{key}.filterSubjects",
                            f"{subject!r} matches none of "
                            f"stream {target.name!r}'s subjects {target.subjects}",
                        )
                    )
        if consumer.backoff and 0 < consumer.max_deliver <= len(consumer.backoff):
            add(
                ConfigIssue(
                    f"{key}.maxDeliver",
                    f"must be greater than the number of backoff steps ({len(consumer.backoff)})",
                    consumer.max_deliver,
                    has_value=True,
                )
            )
    return issues


def _check_eks(eks: EksConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    if not 16 <= eks.vpc_cidr.prefixlen <= 20:
        issues.append(
            ConfigIssue(
                "eks.vpcCidr",
                "must be a /16 to /20 network (room for three private and three public subnets)",
                str(eks.vpc_cidr),
                has_value=True,
            )
        )
    if eks.service_cidr.overlaps(eks.vpc_cidr):
        issues.append(
            ConfigIssue(
                "eks.serviceCidr",
                f"must not overlap eks.vpcCidr ({eks.vpc_cidr})",
                str(eks.service_cidr),
                has_value=True,
            )
        )
    if not 12 <= eks.service_cidr.prefixlen <= 24:
        issues.append(
            ConfigIssue(
                "eks.serviceCidr",
                "must be a /12 to /24 network (an EKS rule)",
                str(eks.service_cidr),
                has_value=True,
            )
        )
    return issues


def _check_aks(aks: AksConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for key, net in (("aks.podCidr", aks.pod_cidr), ("aks.serviceCidr", aks.service_cidr)):
        if net.overlaps(AKS_MANAGED_NODE_RANGE):
            issues.append(
                ConfigIssue(
                    key,
                    f"must not overlap {AKS_MANAGED_NODE_RANGE}, the node network AKS creates",
                    str(net),
                    has_value=True,
                )
            )
    if aks.pod_cidr.overlaps(aks.service_cidr):
        issues.append(
            ConfigIssue(
                "aks.serviceCidr",
                f"must not overlap aks.podCidr ({aks.pod_cidr})",
                str(aks.service_cidr),
                has_value=True,
            )
        )
    hosts = aks.service_cidr
    if aks.dns_service_ip not in hosts or aks.dns_service_ip in (
        hosts.network_address,
        hosts.network_address + 1,
        hosts.broadcast_address,
    ):
        issues.append(
            ConfigIssue(
                "aks.dnsServiceIp",
                f"must be a usable address inside aks.serviceCidr ({hosts}), not its first",
                str(aks.dns_service_ip),
                has_value=True,
            )
        )
    return issues


def _resolve(cfg: _RawStackConfig, project: str, stack: str) -> StackConfig:
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
    )
