"""How Prometheus finds the region's metrics, decided once for the NATS release and the
services: the chart's exporter sidecar and its flags, PodMonitors where the cluster runs the
Prometheus operator, the conventional `prometheus.io/*` pod annotations where it does not, and
the Kubernetes objects that carry the alert rules (infra/alerts.py) and the dashboards
(infra/dashboards.py). docs/observability.md explains each choice; the chart facts cited here
are from nats-io/k8s tag nats-2.14.2, helm/charts/nats/."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.alerts import rule_groups, rules_text
from infra.config_model import MonitoringConfig
from infra.dashboards import DASHBOARDS

# The chart's exporter: values.yaml:398-432 (`promExporter.port: 7777`) and
# files/stateful-set/prom-exporter-container.yaml:4-6 (the container port `prom-metrics`).
EXPORTER_PORT = 7777
EXPORTER_PORT_NAME = "prom-metrics"
# Every service serves its metrics here (services/metrics.py, METRICS_PORT).
METRICS_PORT = 9090
METRICS_PORT_NAME = "metrics"
METRICS_PATH = "/metrics"
# The requester is a Job that finishes in seconds; it keeps its metrics up this long after its
# run so that a scrape every minute (the prometheus chart's default) sees the run's totals.
REQUESTER_LINGER_SECONDS = 90

# The exporter's flags. The chart passes `-port -connz -routez -subz -varz -prefix=nats
# -use_internal_server_id`, then `-jsz=all` with JetStream and `-gatewayz` with a gateway, and
# last the monitor URL (prom-exporter-container.yaml:13-31). Two changes, as a JSON patch on
# the rendered container (templates/_helpers.tpl:242-246, nats.loadMergePatch):
# - `-use_internal_server_name` instead of `-use_internal_server_id` (index 6): nats-server
#   makes a new server id at every start, the exporter labels every series with the one it
#   read at its own start; the server name is stable (prometheus-nats-exporter v0.20.1
#   main.go:146-147 and 176-191: the id case is tested first, so it has to go);
# - `-healthz` (main.go:123), inserted first: Go's flag parsing stops at the first argument
#   that is not a flag (main.go:148,157), so a flag appended after the URL would be read as
#   a second URL and stop the exporter (main.go:193-201).
EXPORTER_ARGS_PATCH: tuple[dict[str, str], ...] = (
    {"op": "replace", "path": "/args/6", "value": "-use_internal_server_name"},
    {"op": "add", "path": "/args/0", "value": "-healthz"},
)

# The pod labels Prometheus copies onto every series: a PodMonitor's podTargetLabels, and the
# `labelmap __meta_kubernetes_pod_label_(.+)` of the conventional annotation-driven job, both
# sanitised to app_kubernetes_io_name, app_kubernetes_io_instance, nats_io_region.
APP_NAME_LABEL = "app.kubernetes.io/name"
APP_PART_OF_LABEL = "app.kubernetes.io/part-of"
REGION_LABEL = "nats.io/region"
# The grafana chart's dashboard sidecar and kube-prometheus-stack's (label grafana_dashboard,
# value "1" for the latter, any value for the former).
DASHBOARD_LABEL = "grafana_dashboard"
# kube-prometheus-stack selects PodMonitors and PrometheusRules with this label.
RELEASE_LABEL = "release"
MONITORING_API = "monitoring.coreos.com/v1"


@dataclass(frozen=True)
class Scraping:
    """How this region's Prometheus scrapes and takes rules: by the operator's objects
    (`release`: kube-prometheus-stack's selector label), or by pod annotations."""

    operator: bool = False
    release: str | None = None

    @classmethod
    def of(cls, config: MonitoringConfig) -> Scraping:
        return cls(config.prometheus_operator, config.prometheus_release)

    def selector_labels(self) -> dict[str, str]:
        """Labels that make kube-prometheus-stack pick an object up."""
        return {RELEASE_LABEL: self.release} if self.release else {}


def scrape_annotations(port: int) -> dict[str, str]:
    """The conventional annotations a Prometheus without the operator scrapes pods by."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": METRICS_PATH,
    }


def exporter_values(scraping: Scraping, target_labels: Sequence[str]) -> dict[str, Any]:
    """The chart's `promExporter` block: the sidecar with the flags above, and the chart's own
    PodMonitor (files/pod-monitor.yaml, made only when both flags are on,
    templates/pod-monitor.yaml:2-5) where the operator runs, with the pod labels each series
    should carry and the release label kube-prometheus-stack selects by."""
    pod_monitor: dict[str, Any] = {"enabled": scraping.operator}
    if scraping.operator:
        merge: dict[str, Any] = {"spec": {"podTargetLabels": list(target_labels)}}
        if scraping.selector_labels():
            merge["metadata"] = {"labels": scraping.selector_labels()}
        pod_monitor["merge"] = merge
    return {
        "enabled": True,
        "patch": [dict(op) for op in EXPORTER_ARGS_PATCH],
        "podMonitor": pod_monitor,
    }


def nats_pod_annotations(scraping: Scraping) -> dict[str, str]:
    """Annotations on the NATS pods: the exporter's port, unless PodMonitors do the finding."""
    return {} if scraping.operator else scrape_annotations(EXPORTER_PORT)


def scraped(manifest: Mapping[str, Any], scraping: Scraping) -> dict[str, Any]:
    """A workload manifest whose pods carry the scrape annotations, unless PodMonitors do the
    finding (then unchanged)."""
    copied: dict[str, Any] = json.loads(json.dumps(manifest))
    if scraping.operator:
        return copied
    metadata = copied["spec"]["template"]["metadata"]
    metadata["annotations"] = {
        **metadata.get("annotations", {}),
        **scrape_annotations(METRICS_PORT),
    }
    return copied


def services_pod_monitor(namespace: str, name: str, scraping: Scraping) -> dict[str, Any]:
    """One PodMonitor for every service of the application and the control service: their
    pods carry `app.kubernetes.io/part-of: nats-supercluster` and a `metrics` port (the
    database's pods have no such port, so they are no target)."""
    return {
        "apiVersion": MONITORING_API,
        "kind": "PodMonitor",
        "metadata": {"name": name, "namespace": namespace, "labels": scraping.selector_labels()},
        "spec": {
            "selector": {"matchLabels": {APP_PART_OF_LABEL: "nats-supercluster"}},
            "podTargetLabels": [APP_NAME_LABEL, REGION_LABEL],
            "podMetricsEndpoints": [{"port": METRICS_PORT_NAME, "path": METRICS_PATH}],
        },
    }


def prometheus_rule(
    namespace: str, name: str, rules: Mapping[str, Any], scraping: Scraping
) -> dict[str, Any]:
    """The alert rules as a PrometheusRule: its spec is a Prometheus rules file (`groups`)."""
    return {
        "apiVersion": MONITORING_API,
        "kind": "PrometheusRule",
        "metadata": {"name": name, "namespace": namespace, "labels": scraping.selector_labels()},
        "spec": dict(rules),
    }


def rules_config_map(namespace: str, name: str, rules_text: str) -> dict[str, Any]:
    """The same rules as a plain rules file, for a Prometheus without the operator to mount
    (its `rule_files`)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"nats-supercluster.rules.yml": rules_text},
    }


def dashboard_config_map(namespace: str, name: str, dashboard: Mapping[str, Any]) -> dict[str, Any]:
    """A Grafana dashboard where the grafana sidecar finds it: a ConfigMap labelled
    grafana_dashboard (charts/grafana values.yaml:1085-1125; kube-prometheus-stack sets the
    value "1", values.yaml:1536-1542, which the grafana chart's any-value default accepts)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {DASHBOARD_LABEL: "1"}},
        "data": {f"{name}.json": json.dumps(dashboard, indent=2, sort_keys=True)},
    }


def monitoring_objects(
    cluster: str, namespace: str, config: MonitoringConfig
) -> list[dict[str, Any]]:
    """The region's monitoring objects, besides the chart's PodMonitor: the services'
    PodMonitor and the PrometheusRule where the operator runs, else the rules file as a
    ConfigMap; and the dashboards. Names are the region's, so regions never collide."""
    scraping = Scraping.of(config)
    rules = rule_groups(base_url=config.runbook_base_url)
    objects = (
        [
            services_pod_monitor(namespace, f"{cluster}-services", scraping),
            prometheus_rule(namespace, f"{cluster}-alerts", rules, scraping),
        ]
        if scraping.operator
        else [rules_config_map(namespace, f"{cluster}-alert-rules", rules_text(rules))]
    )
    if config.dashboards:
        where = config.dashboard_namespace or namespace
        objects += [dashboard_config_map(where, name, d) for name, d in DASHBOARDS.items()]
    return objects
