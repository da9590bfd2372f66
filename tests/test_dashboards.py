"""The Grafana dashboards without a screenshot: every panel queries metrics and labels that
exist (the fact table, tests/metric_facts.py), on the dashboards' data source variable, and
the files in monitoring/ are the generated ones."""

from __future__ import annotations

import json

import pytest

from infra.dashboards import DASHBOARDS
from offline.stack_files import PROJECT_DIR
from tests.metric_facts import parse_query, unknown_in


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_names_metrics_of_the_fact_table(name: str) -> None:
    dashboard = DASHBOARDS[name]
    assert dashboard["uid"] == name
    variables = [v["name"] for v in dashboard["templating"]["list"]]
    assert variables == ["datasource"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert parse_query(target["expr"]).metrics, target["expr"]
            assert unknown_in(target["expr"]) == [], (panel["title"], target["expr"])


def test_the_overview_and_the_application_cover_what_the_issue_asks() -> None:
    """Servers, routes, gateways, message rates and JetStream; latency and the share served
    in-region per region, failover, recorder lag."""
    used = {
        name: set().union(
            *(parse_query(t["expr"]).metrics for p in d["panels"] for t in p["targets"])
        )
        for name, d in DASHBOARDS.items()
    }
    assert {
        "supercluster_servers",
        "supercluster_route_peers",
        "supercluster_gateway_servers",
        "nats_varz_in_msgs",
        "nats_stream_total_messages",
        "supercluster_jetstream_meta_leader",
    } <= used["nats-supercluster-overview"]
    assert {
        "supercluster_requester_latency_seconds_bucket",
        "supercluster_requester_latency_seconds_count",
        "supercluster_requester_answers_total",
        "supercluster_recorder_consumer_pending",
    } <= used["nats-supercluster-application"]


def test_the_shipped_dashboard_files_are_the_generated_ones() -> None:
    """`python -m tools.monitoring_files` writes them."""
    for name, dashboard in DASHBOARDS.items():
        shipped = json.loads((PROJECT_DIR / "monitoring" / f"{name}.json").read_text())
        assert shipped == dashboard
