"""Config rules from the clouds' facts (infra/cloud_facts.py): the region, the Kubernetes
version under standard support, the node pool and its zones, and the EKS and AKS networks."""

from __future__ import annotations

import re
from datetime import date, timedelta

from infra.cloud_facts import (
    AKS_VERSIONS,
    AWS_REGIONS,
    AZURE_ZONAL_REGIONS,
    AZURE_ZONELESS_REGIONS,
    EKS_VERSIONS,
    SUPPORT_WARNING_DAYS,
    SupportWindow,
    supported_versions,
)
from infra.config_model import (
    AKS_MANAGED_NODE_RANGE,
    AWS_INSTANCE_TYPE,
    AWS_REGION,
    AZURE_REGION,
    AZURE_VM_SIZE,
    AZURE_ZONES,
    AksConfig,
    Cloud,
    ConfigIssue,
    EksConfig,
    RawStackConfig,
)
from infra.storage import PVC_RETENTION_MIN_KUBERNETES, minor


def check_region(cfg: RawStackConfig) -> list[ConfigIssue]:
    """The region is one of the cloud's, by its name's form and by the cloud's list."""
    issues: list[ConfigIssue] = []
    add = issues.append
    region_rule = AWS_REGION if cfg.cloud == "aws" else AZURE_REGION
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
    elif cfg.cloud == "aws" and cfg.region not in AWS_REGIONS:
        add(
            ConfigIssue(
                "region",
                "is not an AWS region (infra/cloud_facts.py, from the pinned pulumi-aws); "
                "regions: " + ", ".join(sorted(AWS_REGIONS)),
                cfg.region,
                has_value=True,
            )
        )
    elif cfg.cloud == "azure" and cfg.region not in AZURE_ZONAL_REGIONS | AZURE_ZONELESS_REGIONS:
        add(
            ConfigIssue(
                "region",
                "is not an Azure region in Microsoft's region list (infra/cloud_facts.py); "
                "regions with zones: " + ", ".join(sorted(AZURE_ZONAL_REGIONS)),
                cfg.region,
                has_value=True,
            )
        )
    return issues


def version_windows(cloud: Cloud) -> dict[str, SupportWindow]:
    return EKS_VERSIONS if cloud == "aws" else AKS_VERSIONS


def check_kubernetes_version(cfg: RawStackConfig, today: date) -> list[ConfigIssue]:
    """Only a version under the cloud's standard support: past its end, EKS upgrades the control
    plane itself (and the next `pulumi up` would try a downgrade), AKS stops supporting it."""
    windows = version_windows(cfg.cloud)
    service = "EKS" if cfg.cloud == "aws" else "AKS"
    supported = supported_versions(windows, today)
    allowed = f"under standard support on {today}: {', '.join(supported) or 'none known'}"
    window = windows.get(cfg.kubernetes_version)
    if window is None:
        message = f"is not a Kubernetes version {service} offers; {allowed}"
    elif today < window.available:
        message = f"is not yet offered by {service} (from {window.available}); {allowed}"
    elif today >= window.standard_support_ends:
        message = (
            f"left {service} standard support on {window.standard_support_ends}"
            + (" (EKS then upgrades the control plane itself)" if cfg.cloud == "aws" else "")
            + f"; {allowed}"
        )
    elif minor(cfg.kubernetes_version) < minor(PVC_RETENTION_MIN_KUBERNETES):
        message = (
            f"is older than {PVC_RETENTION_MIN_KUBERNETES}, where the NATS StatefulSet's "
            "persistentVolumeClaimRetentionPolicy (its volumes deleted with it) is GA; "
            f"{allowed}"
        )
    else:
        return []
    return [ConfigIssue("kubernetesVersion", message, cfg.kubernetes_version, has_value=True)]


def config_warnings(cfg: RawStackConfig, today: date) -> list[str]:
    """What is valid today but needs attention soon."""
    windows = version_windows(cfg.cloud)
    window = windows.get(cfg.kubernetes_version)
    if window is None or window.standard_support_ends - today > timedelta(SUPPORT_WARNING_DAYS):
        return []
    days = (window.standard_support_ends - today).days
    newer = [v for v in supported_versions(windows, today) if v > cfg.kubernetes_version]
    return [
        f"kubernetesVersion {cfg.kubernetes_version} leaves standard support on "
        f"{window.standard_support_ends} (in {days} days); move to "
        f"{', '.join(newer) or 'a newer version'} before then"
    ]


def region_has_zones(cloud: Cloud, region: str) -> bool:
    """AWS regions all have zones; Azure's are listed (infra.cloud_facts)."""
    return cloud == "aws" or region in AZURE_ZONAL_REGIONS


def check_nodes(cfg: RawStackConfig) -> list[ConfigIssue]:
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
            (AWS_INSTANCE_TYPE, "m6i.large")
            if cfg.cloud == "aws"
            else (AZURE_VM_SIZE, "Standard_D2s_v5")
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
        elif nodes.zones and cfg.region in AZURE_ZONELESS_REGIONS:
            issues.append(
                ConfigIssue(
                    "nodes.zones",
                    f"{cfg.region} has no availability zones, so AKS refuses zones there: set "
                    "nodes.zones to [] (the servers are then spread over hosts), or use a region "
                    f"with zones: {', '.join(sorted(AZURE_ZONAL_REGIONS))}",
                    nodes.zones,
                    has_value=True,
                )
            )
    return issues


def check_eks(eks: EksConfig) -> list[ConfigIssue]:
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


def check_aks(aks: AksConfig, region: str) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    if aks.disk_sku.endswith("_ZRS") and region in AZURE_ZONELESS_REGIONS:
        issues.append(
            ConfigIssue(
                "aks.diskSku",
                f"zone-redundant disks need a region with zones, and {region} has none; "
                "use Premium_LRS or StandardSSD_LRS",
                aks.disk_sku,
                has_value=True,
            )
        )
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
