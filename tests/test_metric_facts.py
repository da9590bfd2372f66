"""The fact table (tests/metric_facts.py) against its sources: the services expose exactly its
rows, the exporter rows need only flags the real chart renders, and every alert rule names
only what the table has."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from infra.alerts import ALERTS, rule
from infra.region_health import FAMILIES, region_health
from infra.runtime_status import Replies
from services import metrics
from tests.chart_cases import CHART_CASES
from tests.metric_facts import EXPORTER, FACTS, SERVICES, parse_query, unknown_in

GOLDEN = Path(__file__).parent / "golden"
NOT_AFTER = "2027-12-06T10:00:00Z"


def _replies() -> Replies:
    """One east server with a gateway, a route and JetStream leading a stream."""
    replies = Replies()
    name = "aws-us-east-1-east-0"
    varz = {
        "cluster": {"name": "east", "tls_cert_not_after": NOT_AFTER},
        "gateway": {"name": "east", "tls_cert_not_after": NOT_AFTER},
        "tls_cert_not_after": NOT_AFTER,
        "start": "2026-12-06T10:00:00.123456789Z",
    }
    replies.add("varz", [{"server": {"name": name}, "data": varz}])
    replies.add("routez", [{"server": {"name": name}, "data": {"routes": [{"remote_name": "b"}]}}])
    gatewayz: dict[str, dict[str, object]] = {"outbound_gateways": {"west": {}}}
    replies.add("gatewayz", [{"server": {"name": name}, "data": gatewayz}])
    stream = {"name": "answers", "cluster": {"name": "east", "leader": name, "replicas": []}}
    jsz = {
        "config": {"max_memory": 1},
        "meta_cluster": {"leader": name, "replicas": []},
        "account_details": [{"name": "APP", "stream_detail": [stream]}],
    }
    replies.add("jsz", [{"server": {"name": name}, "data": jsz}])
    return replies


def exposed() -> dict[str, frozenset[str]]:
    """What the services' registry serves once every metric has a series: sample name ->
    label names (the `_created` companions aside)."""
    metrics.calculator_ready("east", "add")
    metrics.requester_ready("east")
    metrics.recorder_ready("east")
    metrics.control_ready("east")
    metrics.CALCULATOR_SECONDS.labels("east", "add").observe(0.01)
    metrics.REQUESTER_ANSWERS.labels("east", "add", "east")
    metrics.REQUESTER_ERRORS.labels("east", "add", "failed")
    metrics.REQUESTER_SECONDS.labels("east", "add", "in_region").observe(0.01)
    metrics.REGION_HEALTH.update(region_health(_replies(), "east", ["west"], 1.0))
    metrics.CONFIG_STALE.update("east", {"aws-us-east-1-east-0": 0.0})
    found: dict[str, frozenset[str]] = {}
    text = generate_latest(REGISTRY).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("supercluster_") and not sample.name.endswith("_created"):
                found[sample.name] = frozenset(sample.labels)
    return found


def test_the_services_expose_exactly_the_tables_rows() -> None:
    served = exposed()
    assert {f.name: f.labels for f in SERVICES} == served
    assert {n for n in served if not n.endswith(("_total", "_bucket", "_count", "_sum"))} >= set(
        FAMILIES
    )


def test_the_exporter_rows_need_only_flags_the_chart_renders() -> None:
    """Each exporter metric comes with a flag in the exporter's arguments as the real chart
    rendered them (tests/golden), under the chart's prefix."""
    for case, spec in CHART_CASES.items():
        args = json.loads((GOLDEN / f"{case}.pod.json").read_text())["exporter"]["args"]
        assert "-prefix=nats" in args
        for fact in EXPORTER:
            assert fact.name.startswith("nats_")
            if fact.flag == "-jsz=all" and not spec.jetstream:
                assert fact.flag not in args  # no JetStream metrics where none runs
                continue
            assert fact.flag in args, (case, fact.name)


def test_every_rule_names_only_metrics_and_labels_of_the_table() -> None:
    for alert in ALERTS:
        expr = rule(alert)["expr"]
        assert parse_query(expr).metrics, alert.name
        assert unknown_in(expr) == [], alert.name
        # `up` is the scrape's own: a services alert may use it beside the services' series
        sources = {FACTS[m].flag is not None for m in parse_query(expr).metrics if m != "up"}
        assert sources <= {alert.source == "exporter"}, alert.name


def test_the_scanner_finds_what_the_table_lacks() -> None:
    assert unknown_in("sum by (region) (rate(supercluster_recorder_stord_total[5m]))") == [
        "metric supercluster_recorder_stord_total",
        "label region",
    ]
    assert unknown_in('supercluster_servers{zone="a"} > 0.5') == [
        "label zone on supercluster_servers"
    ]
    assert unknown_in("max by (colour) (supercluster_servers)") == ["label colour"]
    assert unknown_in("max by (pod) (supercluster_servers) - time() < 1e3") == []
