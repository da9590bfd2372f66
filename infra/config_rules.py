"""Rules that relate stack config keys to each other and to the clouds' facts, checked once every
key is valid on its own; each problem is reported against the key a user would change. This
module holds the whole check and the rules between the region's own keys; the rules from the
clouds' facts are in infra/config_rules_cloud.py, those over JetStream objects in
infra/config_rules_jetstream.py."""

from __future__ import annotations

from datetime import date

from infra.config_model import (
    DNS_LABEL,
    AksConfig,
    Cloud,
    ConfigIssue,
    EksConfig,
    RawStackConfig,
)
from infra.config_rules_cloud import (
    check_aks,
    check_eks,
    check_kubernetes_version,
    check_nodes,
    check_region,
)
from infra.config_rules_jetstream import check_jetstream


def cross_check(cfg: RawStackConfig, stack: str, today: date) -> list[ConfigIssue]:
    """Rules that span keys, each reported against the key a user would change."""
    issues: list[ConfigIssue] = []
    add = issues.append
    other = "aks" if cfg.cloud == "aws" else "eks"
    if getattr(cfg, other) is not None:
        add(ConfigIssue(other, f"only valid when cloud is {_cloud_of(other)!r}, not {cfg.cloud!r}"))

    issues += check_region(cfg)

    if cfg.cluster_name is None and not DNS_LABEL.match(stack):
        add(
            ConfigIssue(
                "clusterName",
                f"defaults to the stack name {stack!r}, which is not a "
                "DNS label; set clusterName to 1-24 lowercase letters, digits and '-'",
            )
        )

    issues += check_kubernetes_version(cfg, today)
    issues += check_nodes(cfg)
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
    issues += check_jetstream(cfg.jetstream, cfg.nats, cfg.cluster_name or stack)
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
        issues += check_eks(cfg.eks or EksConfig())
    else:
        issues += check_aks(cfg.aks or AksConfig(), cfg.region)
    return issues


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
