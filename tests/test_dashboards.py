"""The Grafana dashboards without a screenshot: every panel queries metrics and labels that
exist (the fact table, tests/metric_facts.py), on the dashboards' data source variable, and
the files in monitoring/ are the generated ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.dashboards import APPLICATION, DASHBOARDS
from offline.stack_files import PROJECT_DIR
from tests.metric_facts import parse_query, unknown_in
from tests.promtool_cases import promtool_test


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


# One requester run as Prometheus holds it: the Job is scraped once a minute during its 90 s
# linger (METRICS_LINGER_SECONDS), every sample already the run's total, then its pod is gone.
_RUN_LABELS = 'region="east",operation="add",pod="requester-abc12"'
_LATENCY = "supercluster_requester_latency_seconds"
_LINGER = "_x5 {n} {n} stale"
REQUESTER_RUN = {
    f'{_LATENCY}_count{{{_RUN_LABELS},locality="in_region"}}': _LINGER.format(n=90),
    f'{_LATENCY}_count{{{_RUN_LABELS},locality="cross_region"}}': _LINGER.format(n=10),
    **{
        f'{_LATENCY}_bucket{{{_RUN_LABELS},locality="{where}",le="{le}"}}': _LINGER.format(n=n)
        for where, counts in (("in_region", (45, 90, 90)), ("cross_region", (0, 5, 10)))
        for le, n in zip(("0.25", "0.5", "+Inf"), counts, strict=True)
    },
    f'supercluster_requester_answers_total{{{_RUN_LABELS},served_by="east"}}': _LINGER.format(n=90),
    f'supercluster_requester_answers_total{{{_RUN_LABELS},served_by="west"}}': _LINGER.format(n=8),
    f'supercluster_requester_errors_total{{{_RUN_LABELS},kind="failed"}}': _LINGER.format(n=2),
    'supercluster_requester_unpublished_total{region="east",pod="requester-abc12"}': (
        _LINGER.format(n=3)
    ),
}
# Per requester query, in panel order: how many series the run gives it.
SERIES_PER_QUERY = [1, 2, 2, 2, 1, 1]
# Grafana's $__rate_interval at a one-minute scrape: at least four scrapes.
RATE_INTERVAL = "4m"


def _requester_queries() -> list[str]:
    return [
        t["expr"].replace("$__rate_interval", RATE_INTERVAL)
        for p in APPLICATION["panels"]
        for t in p["targets"]
        if any(m.startswith("supercluster_requester_") for m in parse_query(t["expr"]).metrics)
    ]


@pytest.mark.live
def test_the_requester_panels_show_a_run_that_was_scraped_only_while_it_lingered(
    tmp_path: Path,
) -> None:
    """promtool evaluates each requester query at the linger's last scrape (6m) and after
    the pod is gone (15m): every series of the run shows a value above 0, and the share
    served in east is the run's 90 of 100. A rate() over these samples is 0, or nothing once
    the pod is gone."""
    queries = _requester_queries()
    assert len(queries) == len(SERIES_PER_QUERY)
    checks = [
        {
            "expr": f"count(({q}) > 0)",
            "eval_time": at,
            "exp_samples": [{"labels": "{}", "value": n}],
        }
        for at in ("6m", "15m")
        for q, n in zip(queries, SERIES_PER_QUERY, strict=True)
    ]
    checks.append(
        {
            "expr": queries[0],
            "eval_time": "15m",
            "exp_samples": [{"labels": '{region="east"}', "value": 0.9}],
        }
    )
    result = promtool_test(tmp_path, REQUESTER_RUN, {"promql_expr_test": checks}, rules=False)
    assert result.returncode == 0, result.stdout + result.stderr
