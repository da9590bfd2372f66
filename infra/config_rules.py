"""Rules that relate stack config keys to each other and to the clouds' facts, checked once every
key is valid on its own; each problem is reported against the key a user would change."""

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
    DNS_LABEL,
    AksConfig,
    Cloud,
    ConfigIssue,
    EksConfig,
    NatsConfig,
    RawStackConfig,
)
from infra.jetstream import JetStreamConfig, kv_stream_name, parse_duration, subjects_overlap
from infra.storage import PVC_RETENTION_MIN_KUBERNETES, minor


def cross_check(cfg: RawStackConfig, stack: str, today: date) -> list[ConfigIssue]:
    """Rules that span keys, each reported against the key a user would change."""
    issues: list[ConfigIssue] = []
    add = issues.append
    other = "aks" if cfg.cloud == "aws" else "eks"
    if getattr(cfg, other) is not None:
        add(ConfigIssue(other, f"only valid when cloud is {_cloud_of(other)!r}, not {cfg.cloud!r}"))

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

    if cfg.cluster_name is None and not DNS_LABEL.match(stack):
        add(
            ConfigIssue(
                "clusterName",
                f"defaults to the stack name {stack!r}, which is not a "
                "DNS label; set clusterName to 1-24 lowercase letters, digits and '-'",
            )
        )

    issues += _check_kubernetes_version(cfg, today)
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

    issues += _check_pki(cfg)
    issues += _check_monitoring(cfg)
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
        issues += _check_aks(cfg.aks or AksConfig(), cfg.region)
    return issues


def version_windows(cloud: Cloud) -> dict[str, SupportWindow]:
    return EKS_VERSIONS if cloud == "aws" else AKS_VERSIONS


def _check_kubernetes_version(cfg: RawStackConfig, today: date) -> list[ConfigIssue]:
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


def _check_pki(cfg: RawStackConfig) -> list[ConfigIssue]:
    pki = cfg.pki
    issues = []
    if pki.ca_generations != sorted(set(pki.ca_generations)):
        issues.append(
            ConfigIssue(
                "pki.caGenerations",
                "must list one or two CA generations, oldest first, without repeats "
                "(a rotation: [1] -> [1, 2] -> [2])",
                pki.ca_generations,
                has_value=True,
            )
        )
    if pki.issuing_generation is not None and pki.issuing_generation not in pki.ca_generations:
        issues.append(
            ConfigIssue(
                "pki.issuingGeneration",
                f"must be one of the trusted pki.caGenerations {pki.ca_generations}",
                pki.issuing_generation,
                has_value=True,
            )
        )
    return issues


def _check_monitoring(cfg: RawStackConfig) -> list[ConfigIssue]:
    """The release label goes with the operator, both ways. kube-prometheus-stack's Prometheus
    selects PodMonitors and PrometheusRules by `release: <its release>` unless told otherwise
    (kube-prometheus-stack-79.0.0, the chart of prometheus-operator v0.86.1: values.yaml
    podMonitorSelectorNilUsesHelmValues 4189, podMonitorSelector 4194, ruleSelectorNilUses
    HelmValues 4141, ruleSelector 4146; templates/prometheus/prometheus.yaml 202-211 and
    270-279): without the label it would scrape none of the region and evaluate no rule, and
    nothing would say so. A Prometheus that selects everything matches the label as well."""
    monitoring = cfg.monitoring
    if monitoring.prometheus_operator and monitoring.prometheus_release is None:
        return [
            ConfigIssue(
                "monitoring.prometheusRelease",
                "is required with monitoring.prometheusOperator: true: the Helm release name of "
                "kube-prometheus-stack (a label value, e.g. 'kube-prometheus-stack'), whose "
                "Prometheus selects PodMonitors and PrometheusRules by `release: <name>`; "
                "without it the region is neither scraped nor alerted on",
            )
        ]
    if monitoring.prometheus_release is None or monitoring.prometheus_operator:
        return []
    return [
        ConfigIssue(
            "monitoring.prometheusRelease",
            "labels PodMonitors and PrometheusRules, which only exist with "
            "monitoring.prometheusOperator: true; set that too, or remove this key",
            monitoring.prometheus_release,
            has_value=True,
        )
    ]


def _cloud_of(block: str) -> Cloud:
    return "aws" if block == "eks" else "azure"


def _check_nodes(cfg: RawStackConfig) -> list[ConfigIssue]:
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


def _check_aks(aks: AksConfig, region: str) -> list[ConfigIssue]:
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
