"""The fact table of metric names and labels the alert rules and dashboards may use, each with
where it comes from. tests/test_metric_facts.py holds the services' rows to what they really
expose and the exporter's rows to the flags the real chart renders; tests/test_alert_rules.py
and tests/test_dashboards.py hold every query to this table.

Exporter rows: prometheus-nats-exporter v0.20.1 (commit 5394ebbd55f2), the image the chart
nats-2.14.2 runs (values.yaml:398-432). The chart passes `-prefix=nats`, and a prefix replaces
the system name (`gnatsd`, `jetstream`) as the metric namespace (collector/collector.go:456-461,
65-79); names are prometheus.BuildFQName(namespace, subsystem, name). varz metrics are built
from the /varz JSON keys, flattened, with the label `server_id` only
(collector/collector.go:337-405); the keys are nats-server v2.14.2's (commit 1d065926bb99,
server/monitor.go). With `-use_internal_server_name` the `server_id` label holds the server's
name (main.go:185-191).

Service rows: services/metrics.py and infra/region_health.py, exposed by prometheus_client
0.26.0: a Counter `x` as `x_total` (metrics.py:332-335), a Histogram as `x_bucket` (with `le`),
`x_count` and `x_sum` (metrics.py:694-705), a Gauge as itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Fact:
    name: str
    labels: frozenset[str]
    source: str
    # The exporter flag that makes the exporter emit it (None: not the exporter).
    flag: str | None = None


def _labels(*names: str) -> frozenset[str]:
    return frozenset(names)


_VARZ = "collector/collector.go:337-405 (varz key {key}, nats-server server/monitor.go:{line})"
_JSZ_SERVER = ("server_id", "server_name", "cluster", "domain", "meta_leader", "is_meta_leader")
_JSZ_STREAM = (
    *_JSZ_SERVER,
    "account",
    "account_name",
    "account_id",
    "stream_name",
    "stream_leader",
    "is_stream_leader",
    "stream_raft_group",
)
_JSZ_CONSUMER = (
    *_JSZ_STREAM,
    "consumer_name",
    "consumer_leader",
    "is_consumer_leader",
    "consumer_desc",
)
_GATEWAY = ("gateway_name", "cid", "remote_gateway_name", "server_id")


def _varz(key: str, line: int) -> Fact:
    return Fact(f"nats_varz_{key}", _labels("server_id"), _VARZ.format(key=key, line=line), "-varz")


# A varz time (a string Go wrote as RFC 3339) becomes a gauge only for the keys the exporter
# lists (collector/collector.go:350-359, `start` and `config_load_time`), parsed as a time
# (383-390) and set to the time in Unix *milliseconds* (collector.go:252-253, parseDateString
# in collector/connz.go:408-416); the gauge's one label is `server_id` (collector.go:65-84),
# the server's name with `-use_internal_server_name` (main.go:185-191).
_VARZ_TIME = (
    "collector/collector.go:350-359, 383-390, 252-253; collector/connz.go:408-416 (Unix "
    "milliseconds; varz key {key}, nats-server server/monitor.go:{line})"
)


def _varz_time(key: str, line: int) -> Fact:
    return Fact(
        f"nats_varz_{key}", _labels("server_id"), _VARZ_TIME.format(key=key, line=line), "-varz"
    )


EXPORTER: tuple[Fact, ...] = (
    _varz("connections", 1269),
    _varz("in_msgs", 1274),
    _varz("out_msgs", 1278),
    _varz("slow_consumers", 1282),
    _varz_time("start", 1261),
    _varz_time("config_load_time", 1287),
    Fact(
        "nats_healthz_status_value",
        _labels("server_id", "value"),
        "collector/healthz.go:55-60 (1 = ok; value = the status, or unreachable: 106-123)",
        "-healthz",
    ),
    Fact(
        "nats_gatewayz_outbound_gateway_conn_rtt",
        _labels(*_GATEWAY),
        "collector/gatewayz.go:42, 122-126 (one series per connected gateway, 68-70)",
        "-gatewayz",
    ),
    Fact(
        "nats_stream_total_messages",
        _labels(*_JSZ_STREAM),
        "collector/jsz.go:92-101 (labels), 213-218",
        "-jsz=all",
    ),
    Fact(
        "nats_consumer_num_pending",
        _labels(*_JSZ_CONSUMER),
        "collector/jsz.go:111-115 (labels), 318-324",
        "-jsz=all",
    ),
    Fact(
        "nats_consumer_num_ack_pending",
        _labels(*_JSZ_CONSUMER),
        "collector/jsz.go:111-115 (labels), 297-303",
        "-jsz=all",
    ),
)

_SERVICES = "services/metrics.py"
_HEALTH = "infra/region_health.py (the control service)"


def _counter(name: str, *labels: str) -> Fact:
    return Fact(f"{name}_total", _labels(*labels), _SERVICES)


def _histogram(name: str, *labels: str) -> tuple[Fact, ...]:
    return (
        Fact(f"{name}_bucket", _labels(*labels, "le"), _SERVICES),
        Fact(f"{name}_count", _labels(*labels), _SERVICES),
        Fact(f"{name}_sum", _labels(*labels), _SERVICES),
    )


SERVICES: tuple[Fact, ...] = (
    _counter("supercluster_calculator_requests", "region", "operation"),
    _counter("supercluster_calculator_errors", "region", "operation", "code"),
    *_histogram("supercluster_calculator_duration_seconds", "region", "operation"),
    _counter("supercluster_requester_answers", "region", "operation", "served_by"),
    _counter("supercluster_requester_errors", "region", "operation", "kind"),
    *_histogram("supercluster_requester_latency_seconds", "region", "operation", "locality"),
    _counter("supercluster_requester_unpublished", "region"),
    _counter("supercluster_recorder_stored", "region"),
    _counter("supercluster_recorder_dead_letters", "region"),
    Fact("supercluster_recorder_consumer_pending", _labels("region"), _SERVICES),
    _counter("supercluster_control_puts", "region", "outcome"),
    _counter("supercluster_control_rollbacks", "region"),
    _counter("supercluster_control_reload_failures", "region"),
    Fact("supercluster_servers", _labels("region"), _HEALTH),
    Fact("supercluster_health_gathered_time_seconds", _labels("region"), _HEALTH),
    Fact("supercluster_gateway_servers", _labels("region", "remote"), _HEALTH),
    Fact("supercluster_route_peers", _labels("region", "server"), _HEALTH),
    Fact("supercluster_jetstream_meta_leader", _labels("region"), _HEALTH),
    Fact("supercluster_jetstream_meta_peers_offline", _labels("region"), _HEALTH),
    Fact("supercluster_stream_replicas_behind", _labels("region", "account", "stream"), _HEALTH),
    Fact(
        "supercluster_tls_cert_not_after_seconds", _labels("region", "server", "listener"), _HEALTH
    ),
    Fact(
        "supercluster_server_config_stale_seconds",
        _labels("region", "server"),
        "services/reload_watch.py and infra/reload_check.py (the control service): the "
        "servers' files against /varz config_load_time, nats-server v2.14.2 "
        "server/monitor.go:1810, set only by a reload that worked (server/reload.go:1481)",
    ),
    Fact("supercluster_recorder_held_seconds", _labels("region"), _SERVICES),
)

# Labels Prometheus adds to every series of a target. `job` and `instance` always (and the
# series `up` per target: prometheus scrape/scrape.go, scrapeHealthMetricName = "up", which
# the live test reads from Debian's 2.42); a PodMonitor adds namespace, pod, container,
# endpoint (prometheus-operator v0.86.1 pkg/prometheus/promcfg.go:1481-1536) and its
# podTargetLabels, sanitised: app_kubernetes_io_instance on the exporter's
# (infra/nats_values.py), app_kubernetes_io_name and nats_io_region on the services'
# (infra/monitoring.py); the annotation-driven job's labelmap gives the same pod labels.
TARGET_LABELS = _labels(
    "job",
    "instance",
    "namespace",
    "pod",
    "container",
    "endpoint",
    "app_kubernetes_io_instance",
    "app_kubernetes_io_name",
    "nats_io_region",
)
UP = Fact("up", frozenset(), "prometheus scrape/scrape.go scrapeHealthMetricName")

FACTS: dict[str, Fact] = {f.name: f for f in (*EXPORTER, *SERVICES, UP)}


_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}")
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"})


@dataclass(frozen=True)
class Query:
    """What a PromQL expression refers to: metric names, the labels each selector matches on,
    and the labels it groups or joins by."""

    metrics: frozenset[str]
    matched: dict[str, frozenset[str]]
    grouped: frozenset[str]


def parse_query(expr: str) -> Query:
    text = re.sub(r'"[^"]*"', '""', expr)  # label values and strings
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = text.replace("$__rate_interval", "")
    text = re.sub(r"(?<![\w.])\d[\d.]*(?:e[+-]?\d+)?", " ", text)  # numbers: 0.9, 1e3
    grouped = {label.strip() for group in _GROUPING.findall(text) for label in group.split(",")} - {
        ""
    }
    text = _GROUPING.sub(" ", text)
    matched: dict[str, frozenset[str]] = {}
    for selector in _SELECTOR.finditer(text):
        labels = frozenset(m.split("=")[0].strip("!~ ") for m in selector.group(2).split(",") if m)
        matched[selector.group(1) or ""] = labels
    text = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    metrics = {
        w.group(0)
        for w in _WORD.finditer(text)
        if w.group(0) not in _KEYWORDS and not text[w.end() :].lstrip().startswith("(")
    }
    return Query(frozenset(metrics), matched, frozenset(grouped))


def unknown_in(expr: str) -> list[str]:
    """What `expr` names that the fact table does not have: metrics, and labels that none of
    its metrics (nor the scrape) carries."""
    query = parse_query(expr)
    problems = [f"metric {m}" for m in sorted(query.metrics) if m not in FACTS]
    known = set(TARGET_LABELS)
    for name in query.metrics & set(FACTS):
        known |= FACTS[name].labels
    for name, labels in query.matched.items():
        carried = TARGET_LABELS | (FACTS[name].labels if name in FACTS else frozenset())
        problems += [f"label {label} on {name}" for label in sorted(labels - carried)]
    problems += [f"label {label}" for label in sorted(query.grouped - known)]
    return problems
