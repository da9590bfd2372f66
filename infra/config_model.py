"""The stack configuration's shape: every key, its type, range and default (pydantic models).

The rules that relate keys to each other live in `infra.config_rules`; `infra.config` parses
Pulumi's config map with both.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from infra.config_base import ConfigModel
from infra.jetstream import JetStreamConfig

Cloud = Literal["aws", "azure"]

DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,22}[a-z0-9])?$")
_K8S_VERSION = re.compile(r"^1\.(\d{2})$")
_STACK_REF = re.compile(r"^([A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+$")
AWS_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
AZURE_REGION = re.compile(r"^[a-z][a-z0-9]+$")
AWS_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
AZURE_VM_SIZE = re.compile(r"^Standard_[A-Za-z0-9_]+$")
_AWS_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")

AZURE_ZONES = ("1", "2", "3")
# AKS puts its nodes in a managed virtual network with this range when none is given; the pod and
# service ranges must stay clear of it.
AKS_MANAGED_NODE_RANGE = ipaddress.IPv4Network("10.224.0.0/12")
_PRIVATE_RANGES = tuple(
    ipaddress.IPv4Network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)


def _dns_label(value: str) -> str:
    if not DNS_LABEL.match(value):
        raise ValueError(
            "must be a DNS label: 1-24 characters of lowercase letters, digits and '-', "
            "starting with a letter and not ending with '-'"
        )
    return value


def _kubernetes_version(value: str) -> str:
    if not _K8S_VERSION.match(value):
        raise ValueError(
            "must be a quoted 'MAJOR.MINOR' string such as '1.35' "
            "(unquoted YAML reads 1.30 as the number 1.3)"
        )
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


class NodesConfig(ConfigModel):
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


class EksConfig(ConfigModel):
    """Settings that only exist on AWS."""

    vpc_cidr: PrivateNetwork = ipaddress.IPv4Network("10.10.0.0/16")
    service_cidr: PrivateNetwork = ipaddress.IPv4Network("172.20.0.0/16")
    nat_gateways: Literal["perZone", "single"] = "perZone"
    public_access_cidrs: list[ipaddress.IPv4Network] = Field(
        default_factory=lambda: [ipaddress.IPv4Network("0.0.0.0/0")], min_length=1
    )
    admin_principal_arns: Annotated[list[AwsPrincipalArn], AfterValidator(_unique)] = Field(
        default_factory=list
    )


class AksConfig(ConfigModel):
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


class NatsConfig(ConfigModel):
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


class AppConfig(ConfigModel):
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


class PkiConfig(ConfigModel):
    """Who owns the supercluster's CA (that stack creates it, every other stack reads it), and
    which CA generations are trusted and which one signs: a CA rotation is three rounds of
    `pulumi up` over the stacks, [1] -> [1, 2] (trust) -> issuing 2 (issue) -> [2] (retire)."""

    ca_stack: StackRef = "east"
    ca_generations: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1], min_length=1, max_length=2
    )
    issuing_generation: Annotated[int, Field(ge=1)] | None = None

    @property
    def issuing(self) -> int:
        """The generation that signs this region's certificates: by default the oldest
        trusted one (so trusting a new CA changes no certificate until asked to)."""
        return self.issuing_generation or min(self.ca_generations)


_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_BASE_URL = re.compile(r"^https?://[^\s#?]+/$")


def _label_value(value: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise ValueError(
            "must be a Kubernetes label value: 1-63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit (the release name of "
            "kube-prometheus-stack, e.g. 'kube-prometheus-stack')"
        )
    return value


def _namespace(value: str) -> str:
    if not _NAMESPACE.match(value):
        raise ValueError("must be a Kubernetes namespace name: 1-63 of a-z, 0-9 and '-'")
    return value


def _base_url(value: str) -> str:
    if value and not _BASE_URL.match(value):
        raise ValueError(
            "must be empty (links relative to the repository) or an http(s) URL ending in "
            "'/', e.g. 'https://github.com/org/nats-supercluster/blob/main/'"
        )
    return value


class MonitoringConfig(ConfigModel):
    """How the region is scraped, alerted on and shown (docs/observability.md). The metrics
    themselves (the chart's exporter, the services) are always on."""

    # The cluster runs the Prometheus operator: PodMonitors and a PrometheusRule. Otherwise the
    # pods carry the conventional prometheus.io scrape annotations and the rules ship as a
    # ConfigMap holding a plain rules file.
    prometheus_operator: bool = False
    # kube-prometheus-stack selects PodMonitors and PrometheusRules by `release: <its release>`;
    # only meaningful with prometheusOperator.
    prometheus_release: Annotated[str, AfterValidator(_label_value)] | None = None
    # The Grafana dashboards as ConfigMaps for the grafana sidecar (label grafana_dashboard).
    dashboards: bool = True
    # Where the dashboard ConfigMaps go (the grafana chart's sidecar watches its own namespace
    # unless told otherwise); default nats.namespace. It must exist.
    dashboard_namespace: Annotated[str, AfterValidator(_namespace)] | None = None
    # Prefix of the alerts' runbook links; empty: repository-relative (docs/operations.md#...).
    runbook_base_url: Annotated[str, AfterValidator(_base_url)] = ""


class RawStackConfig(ConfigModel):
    cloud: Cloud
    region: str = Field(min_length=1)
    cluster_name: DnsLabel | None = None
    kubernetes_version: KubernetesVersion = "1.35"
    nodes: NodesConfig = NodesConfig()
    peers: Annotated[list[StackRef], AfterValidator(_unique)] = Field(default_factory=list)
    tags: dict[Annotated[str, Field(min_length=1, max_length=127)], str] = Field(
        default_factory=dict
    )
    nats: NatsConfig = NatsConfig()
    pki: PkiConfig = PkiConfig()
    jetstream: JetStreamConfig = JetStreamConfig()
    app: AppConfig = AppConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    eks: EksConfig | None = None
    aks: AksConfig | None = None


@dataclass(frozen=True)
class ConfigIssue:
    key: str
    message: str
    value: Any = None
    has_value: bool = False

    def render(self, project: str) -> str:
        got = f" (got {self.value!r})" if self.has_value else ""
        return f"{project}:{self.key}: {self.message}{got}"
