"""Monitoring under mocks, per stack: the exporter sidecar in the release's values, the pods'
scrape annotations or PodMonitors, the rules (PrometheusRule or a rules ConfigMap) and the
dashboards; every object valid against its schema: Kubernetes' own (PyPI kubernetes-validate)
for core objects, and for the operator's kinds the schema facts of their CRDs below."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from infra.alerts import ALERTS, rule_groups
from infra.dashboards import DASHBOARDS
from infra.monitoring import EXPORTER_ARGS_PATCH
from offline.evaluate import Evaluation, evaluate_stack
from offline.monitor import Registration
from offline.stack_files import load_stack_config
from tests.conftest import named

RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
KUBERNETES_VERSION = "1.35.0"
BASE_URL = "https://github.com/org/nats-supercluster/blob/main/"
SCRAPE = {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics"}

# prometheus-operator v0.86.1 (commit f7f07bcdfb41), the API the NATS chart's own tests use
# (nats-io/k8s nats-2.14.2 test/go.mod:9), example/prometheus-operator-crd/: what its CRDs'
# OpenAPI schemas require of the fields these objects set.
_DURATION = (
    "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": {"type": "string", "minLength": 1}, "labels": _STRINGS},
}
POD_MONITOR_SCHEMA: dict[str, Any] = {  # monitoring.coreos.com_podmonitors.yaml
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],  # 1373-1374: spec
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},  # 16, 1376-1377
        "kind": {"const": "PodMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["selector"],  # 1267-1268
            "properties": {
                "podMetricsEndpoints": {  # 173
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string"},  # 785-790
                            "port": {"type": "string"},  # 791-796: the container port's name
                        },
                    },
                },
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},  # 1152-1156
                "selector": {  # 1202-1241
                    "type": "object",
                    "properties": {"matchLabels": _STRINGS},
                },
            },
        },
    },
}
PROMETHEUS_RULE_SCHEMA: dict[str, Any] = {  # monitoring.coreos.com_prometheusrules.yaml
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],  # 260-261: spec
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "properties": {
                "groups": {  # 48-155
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],  # 149-150
                        "properties": {
                            "name": {"type": "string", "minLength": 1},  # 79-81
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],  # 145-146
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "annotations": _STRINGS,
                                        "labels": _STRINGS,
                                        "expr": {
                                            "anyOf": [{"type": "integer"}, {"type": "string"}]
                                        },
                                        "for": {"type": "string", "pattern": _DURATION},  # 124-127
                                    },
                                    # pkg/apis/monitoring/v1/prometheusrule_types.go:118-144:
                                    # a rule records or alerts, not both
                                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def integral(value: Any) -> Any:
    """The mocks pass numbers as doubles (protobuf Struct): 9090.0 back to 9090."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def manifest(resource: Registration) -> dict[str, Any]:
    return dict(integral(resource.inputs))


def valid_kubernetes(resource: Registration) -> None:
    kubernetes_validate.validate(manifest(resource), KUBERNETES_VERSION, strict=True)


@pytest.fixture(scope="module")
def operated() -> Evaluation:
    """East in a cluster running kube-prometheus-stack, dashboards in its namespace."""
    config = load_stack_config("east")
    config["nats-supercluster:monitoring"] = json.dumps(
        {
            "prometheusOperator": True,
            "prometheusRelease": "kube-prometheus-stack",
            "dashboardNamespace": "monitoring",
            "runbookBaseUrl": BASE_URL,
        }
    )
    return evaluate_stack("east", config)


def services(evaluation: Evaluation) -> list[Registration]:
    return [
        r
        for r in (*evaluation.of_type(DEPLOYMENT), *evaluation.of_type(JOB))
        if "-lbc-" not in r.name
    ]


def test_the_schema_checks_can_fail() -> None:
    broken = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labels": {"grafana_dashboard": 1}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    rule = {"alert": "A", "record": "b", "expr": "up"}
    spec = {"groups": [{"name": "g", "rules": [rule]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PrometheusRule",
                "metadata": {"name": "r", "namespace": "nats"},
                "spec": spec,
            },
            PROMETHEUS_RULE_SCHEMA,
        )


@pytest.mark.parametrize("stack", ["east", "west", "central"])
def test_the_exporter_runs_beside_every_server(deployed: dict[str, Evaluation], stack: str) -> None:
    values = named(deployed[stack], RELEASE, "-nats-release").inputs["values"]
    exporter = values["promExporter"]
    assert exporter["enabled"] is True
    assert exporter["patch"] == [dict(p) for p in EXPORTER_ARGS_PATCH]
    assert exporter["podMonitor"] == {"enabled": False}  # the shipped stacks: annotations
    annotations = values["podTemplate"]["merge"]["metadata"]["annotations"]
    assert {**SCRAPE, "prometheus.io/port": "7777"}.items() <= annotations.items()


@pytest.mark.parametrize("stack", ["east", "west", "central"])
def test_annotations_rules_and_dashboards_without_the_operator(
    deployed: dict[str, Evaluation], stack: str
) -> None:
    evaluation = deployed[stack]
    assert evaluation.of_type(POD_MONITOR) == []
    assert evaluation.of_type(PROMETHEUS_RULE) == []
    for workload in services(evaluation):
        pod = workload.inputs["spec"]["template"]
        assert {**SCRAPE, "prometheus.io/port": "9090"}.items() <= pod["metadata"][
            "annotations"
        ].items(), workload.name
        (container,) = pod["spec"]["containers"]
        assert integral(container["ports"]) == [{"name": "metrics", "containerPort": 9090}]
        assert {"name": "METRICS_PORT", "value": "9090"} in container["env"]
        valid_kubernetes(workload)
    rules = named(evaluation, CONFIG_MAP, f"-{stack}-alert-rules")
    assert yaml.safe_load(rules.inputs["data"]["nats-supercluster.rules.yml"]) == rule_groups()
    valid_kubernetes(rules)
    for name, dashboard in DASHBOARDS.items():
        config_map = named(evaluation, CONFIG_MAP, f"-{name}")
        assert config_map.inputs["metadata"]["labels"] == {"grafana_dashboard": "1"}
        assert config_map.inputs["metadata"]["namespace"] == "nats"
        assert json.loads(config_map.inputs["data"][f"{name}.json"]) == dashboard
        valid_kubernetes(config_map)


def test_the_requester_job_lingers_for_a_scrape(east: Evaluation) -> None:
    (container,) = east.one(JOB).inputs["spec"]["template"]["spec"]["containers"]
    assert {"name": "METRICS_LINGER_SECONDS", "value": "90"} in container["env"]


def test_pod_monitors_and_a_prometheus_rule_with_the_operator(operated: Evaluation) -> None:
    values = named(operated, RELEASE, "-nats-release").inputs["values"]
    assert values["promExporter"]["podMonitor"] == {
        "enabled": True,
        "merge": {
            "metadata": {"labels": {"release": "kube-prometheus-stack"}},
            "spec": {"podTargetLabels": ["app.kubernetes.io/instance"]},
        },
    }
    assert "prometheus.io/scrape" not in values["podTemplate"]["merge"]["metadata"]["annotations"]
    (monitor,) = operated.of_type(POD_MONITOR)
    jsonschema.validate(manifest(monitor), POD_MONITOR_SCHEMA)
    assert monitor.inputs["metadata"]["labels"] == {"release": "kube-prometheus-stack"}
    spec = monitor.inputs["spec"]
    assert spec["selector"]["matchLabels"] == {"app.kubernetes.io/part-of": "nats-supercluster"}
    assert spec["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics"}]
    for workload in services(operated):
        pod = workload.inputs["spec"]["template"]
        assert "prometheus.io/scrape" not in (pod["metadata"].get("annotations") or {})
        assert pod["metadata"]["labels"]["app.kubernetes.io/part-of"] == "nats-supercluster"
        assert {"app.kubernetes.io/name", "nats.io/region"} <= set(pod["metadata"]["labels"])
        valid_kubernetes(workload)
    (rules,) = operated.of_type(PROMETHEUS_RULE)
    jsonschema.validate(manifest(rules), PROMETHEUS_RULE_SCHEMA)
    assert rules.inputs["metadata"] == {
        "name": "east-alerts",
        "namespace": "nats",
        "labels": {"release": "kube-prometheus-stack"},
    }
    assert rules.inputs["spec"] == rule_groups(base_url=BASE_URL)
    urls = [r["annotations"]["runbook_url"] for r in rules.inputs["spec"]["groups"][0]["rules"]]
    assert len(urls) == len(ALERTS)
    assert all(u.startswith(BASE_URL + "docs/") for u in urls)
    assert [r for r in operated.of_type(CONFIG_MAP) if r.name.endswith("-alert-rules")] == []
    dashboards = [r for r in operated.of_type(CONFIG_MAP) if "grafana_dashboard" in str(r.inputs)]
    assert {r.inputs["metadata"]["namespace"] for r in dashboards} == {"monitoring"}
    assert len(dashboards) == len(DASHBOARDS)


def test_the_monitoring_objects_wait_for_their_namespace(operated: Evaluation) -> None:
    namespace = named(operated, "kubernetes:core/v1:Namespace", "-nats-ns")
    component = operated.one("nats-supercluster:monitoring:Monitoring")
    children = [r for r in operated.resources if r.parent == component.urn]
    assert len(children) == 2 + len(DASHBOARDS)
    for child in children:
        assert namespace.urn in child.dependencies, child.name
