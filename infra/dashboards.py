"""The Grafana dashboards: the supercluster (servers, routes, gateways, message rates,
JetStream, certificates) and the application (latency and the share served in each region,
failover, the calculators, the recorder, the control service). Grafana's dashboard JSON
model, on a `datasource` variable so they work with any Prometheus data source; shipped as
ConfigMaps for the grafana sidecar (infra/monitoring.py) and as files in monitoring/.
tests/test_dashboards.py checks that every query names metrics of the fact table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_RATE = "$__rate_interval"
# The requester is a Job, scraped only while it lingers after its run (90 s,
# METRICS_LINGER_SECONDS): each sample already holds the run's totals, so a rate over them is
# 0 or nothing. Its panels show the totals of the runs in this window instead, as the alert
# rules read them (the `run` window of AnswersUnpublished and InRegionShareFalling).
_RUN = "15m"
_WIDTH, _HEIGHT = 12, 8


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"


def _dashboard(uid: str, title: str, panels: tuple[Panel, ...]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["nats", "nats-supercluster"],
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Data source",
                }
            ]
        },
        "panels": [
            {
                "id": i + 1,
                "type": "timeseries",
                "title": panel.title,
                "datasource": _DATASOURCE,
                "gridPos": {
                    "h": _HEIGHT,
                    "w": _WIDTH,
                    "x": (i % 2) * _WIDTH,
                    "y": (i // 2) * _HEIGHT,
                },
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "targets": [
                    {
                        "refId": chr(ord("A") + j),
                        "datasource": _DATASOURCE,
                        "expr": expr,
                        "legendFormat": legend,
                    }
                    for j, (expr, legend) in enumerate(panel.queries)
                ],
            }
            for i, panel in enumerate(panels)
        ],
    }


OVERVIEW = _dashboard(
    "nats-supercluster-overview",
    "NATS supercluster",
    (
        Panel(
            "Servers per region",
            (
                ("max by (region) (supercluster_servers)", "{{region}} (control service)"),
                (
                    "count by (app_kubernetes_io_instance) (nats_varz_connections)",
                    "{{app_kubernetes_io_instance}} (exporters)",
                ),
            ),
        ),
        Panel(
            "Server health (1 = ok)",
            (
                (
                    "max by (app_kubernetes_io_instance, server_id) (nats_healthz_status_value)",
                    "{{server_id}}",
                ),
            ),
        ),
        Panel(
            "Route peers per server",
            (("max by (region, server) (supercluster_route_peers)", "{{server}}"),),
        ),
        Panel(
            "Servers with a gateway to each region",
            (
                (
                    "max by (region, remote) (supercluster_gateway_servers)",
                    "{{region}} -> {{remote}}",
                ),
            ),
        ),
        Panel(
            "Gateway round trip",
            (
                (
                    "max by (gateway_name, remote_gateway_name) (nats_gatewayz_outbound_gateway_conn_rtt)",
                    "{{gateway_name}} -> {{remote_gateway_name}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Messages per second",
            (
                (
                    f"sum by (app_kubernetes_io_instance) (rate(nats_varz_in_msgs[{_RATE}]))",
                    "{{app_kubernetes_io_instance}} in",
                ),
                (
                    f"sum by (app_kubernetes_io_instance) (rate(nats_varz_out_msgs[{_RATE}]))",
                    "{{app_kubernetes_io_instance}} out",
                ),
            ),
        ),
        Panel(
            "Client connections and slow consumers",
            (
                (
                    "sum by (app_kubernetes_io_instance) (nats_varz_connections)",
                    "{{app_kubernetes_io_instance}} connections",
                ),
                (
                    "sum by (app_kubernetes_io_instance) (nats_varz_slow_consumers)",
                    "{{app_kubernetes_io_instance}} slow consumers",
                ),
            ),
        ),
        Panel(
            "JetStream meta group",
            (
                (
                    "max by (region) (supercluster_jetstream_meta_leader)",
                    "{{region}} knows a leader",
                ),
                (
                    "max by (region) (supercluster_jetstream_meta_peers_offline)",
                    "{{region}} peers offline",
                ),
            ),
        ),
        Panel(
            "Stream messages (leaders)",
            (
                (
                    'sum by (stream_name) (nats_stream_total_messages{is_stream_leader="true"})',
                    "{{stream_name}}",
                ),
            ),
        ),
        Panel(
            "Stream replicas behind",
            (("max by (region, stream) (supercluster_stream_replicas_behind)", "{{stream}}"),),
        ),
        Panel(
            "Consumer backlog (leaders)",
            (
                (
                    'max by (stream_name, consumer_name) (nats_consumer_num_pending{is_consumer_leader="true"})',
                    "{{stream_name}}/{{consumer_name}} pending",
                ),
                (
                    'max by (stream_name, consumer_name) (nats_consumer_num_ack_pending{is_consumer_leader="true"})',
                    "{{stream_name}}/{{consumer_name}} unacknowledged",
                ),
            ),
        ),
        Panel(
            "Days until a certificate expires",
            (
                (
                    "(min by (region, server, listener) (supercluster_tls_cert_not_after_seconds) - time()) / 86400",
                    "{{server}} {{listener}}",
                ),
            ),
            unit="d",
        ),
    ),
)

APPLICATION = _dashboard(
    "nats-supercluster-application",
    "NATS supercluster: application",
    (
        Panel(
            "Share of requests served in the requester's region (runs of the last 15 minutes)",
            (
                (
                    f'sum by (region) (max_over_time(supercluster_requester_latency_seconds_count{{locality="in_region"}}[{_RUN}]))'
                    f" / sum by (region) (max_over_time(supercluster_requester_latency_seconds_count[{_RUN}]))",
                    "{{region}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Answers by serving region (failover; runs of the last 15 minutes)",
            (
                (
                    f"sum by (region, served_by) (max_over_time(supercluster_requester_answers_total[{_RUN}]))",
                    "{{region}} served by {{served_by}}",
                ),
            ),
        ),
        Panel(
            "Request latency p50 / p99 (runs of the last 15 minutes)",
            tuple(
                (
                    f"histogram_quantile({q}, sum by (region, locality, le) (max_over_time(supercluster_requester_latency_seconds_bucket[{_RUN}])))",
                    f"{{{{region}}}} {{{{locality}}}} p{int(q * 100)}",
                )
                for q in (0.5, 0.99)
            ),
            unit="s",
        ),
        Panel(
            "Requester failures and unpublished answers (runs of the last 15 minutes)",
            (
                (
                    f"sum by (region, kind) (max_over_time(supercluster_requester_errors_total[{_RUN}]))",
                    "{{region}} {{kind}}",
                ),
                (
                    f"sum by (region) (max_over_time(supercluster_requester_unpublished_total[{_RUN}]))",
                    "{{region}} unpublished",
                ),
            ),
        ),
        Panel(
            "Calculator requests and refusals",
            (
                (
                    f"sum by (region, operation) (rate(supercluster_calculator_requests_total[{_RATE}]))",
                    "{{region}} {{operation}}",
                ),
                (
                    f"sum by (region, code) (rate(supercluster_calculator_errors_total[{_RATE}]))",
                    "{{region}} refused {{code}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Calculator p99",
            (
                (
                    f"histogram_quantile(0.99, sum by (region, operation, le) (rate(supercluster_calculator_duration_seconds_bucket[{_RATE}])))",
                    "{{region}} {{operation}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Recorder: backlog, stored, dead letters",
            (
                ("max by (region) (supercluster_recorder_consumer_pending)", "{{region}} backlog"),
                (
                    f"sum by (region) (rate(supercluster_recorder_stored_total[{_RATE}]))",
                    "{{region}} stored/s",
                ),
                (
                    f"sum by (region) (increase(supercluster_recorder_dead_letters_total[{_RATE}]))",
                    "{{region}} dead letters",
                ),
            ),
        ),
        Panel(
            "Control service: puts, rollbacks, failed reloads",
            (
                (
                    f"sum by (region, outcome) (increase(supercluster_control_puts_total[{_RATE}]))",
                    "{{region}} {{outcome}}",
                ),
                (
                    f"sum by (region) (increase(supercluster_control_rollbacks_total[{_RATE}]))",
                    "{{region}} rolled back",
                ),
                (
                    f"sum by (region) (increase(supercluster_control_reload_failures_total[{_RATE}]))",
                    "{{region}} reload failed",
                ),
            ),
        ),
    ),
)

DASHBOARDS: dict[str, dict[str, Any]] = {
    "nats-supercluster-overview": OVERVIEW,
    "nats-supercluster-application": APPLICATION,
}
