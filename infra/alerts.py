"""The alert rules: what pages someone, after how long, and which runbook they open.

One table (`ALERTS`) makes the PrometheusRule, the plain rules file (monitoring/rules.yml, for
a Prometheus without the operator) and, with its windows scaled down, the rules the local
Prometheus evaluates against the local supercluster (localnet/prometheus.py). Every metric
name comes from the fact table in tests/test_metric_facts.py; every rule has a firing and a
non-firing `promtool test rules` case in tests/test_alert_rules.py. docs/observability.md
has a section per alert with the reasons for its threshold and window.

Where the series come from (`source`):
- "exporter": the chart's prometheus-nats-exporter sidecar (nats_*), only in the clusters;
- "services": the services and the control service (supercluster_*, services/metrics.py),
  also on the local supercluster, where a real Prometheus evaluates these rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from infra.region_health import REPLICA_LAG_LIMIT, REPLICA_SILENCE_NS

GROUP = "nats-supercluster"
Severity = Literal["critical", "warning"]
Source = Literal["exporter", "services"]
_MINUTE, _HOUR, _DAY = 60, 3600, 86400
# Where each runbook lives (docs/), relative to the repository or to monitoring.runbookBaseUrl.
CONTROL_RUNBOOK = "docs/runtime-control.md#runtime-control-the-control-service"
QUORUM_RUNBOOK = "docs/operations.md#jetstream-quorum"
CERTIFICATES_RUNBOOK = "docs/operations.md#rotating-certificates"
TROUBLESHOOTING_RUNBOOK = "docs/operations.md#troubleshooting"
APPLICATION_RUNBOOK = "docs/architecture.md#the-application"


@dataclass(frozen=True)
class Alert:
    """`expr` names its range windows `{like_this}`; `windows` gives them in seconds, so the
    local Prometheus can run the same expression on a shorter clock."""

    name: str
    expr: str
    for_seconds: int
    severity: Severity
    summary: str
    description: str
    runbook: str
    source: Source = "services"
    windows: Mapping[str, int] = field(default_factory=dict)


ALERTS: tuple[Alert, ...] = (
    Alert(
        "NatsGatewayDown",
        "max by (region, remote) (supercluster_gateway_servers)"
        " < on (region) group_left () max by (region) (supercluster_servers)",
        2 * _MINUTE,
        "critical",
        "{{ $labels.region }}: not every server has a gateway to {{ $labels.remote }}",
        "Some servers of the region have no outbound gateway to a region of the supercluster "
        "(a cut by the control service counts too): requests and JetStream traffic to that "
        "region take other servers' gateways or wait.",
        TROUBLESHOOTING_RUNBOOK,
    ),
    Alert(
        "NatsRouteMissing",
        "max by (region, server) (supercluster_route_peers)"
        " < on (region) group_left () (max by (region) (supercluster_servers) - 1)",
        2 * _MINUTE,
        "critical",
        "{{ $labels.server }} is not routed to every other server of {{ $labels.region }}",
        "A running server of the region lacks a route to another running one: messages "
        "between their clients are not delivered.",
        TROUBLESHOOTING_RUNBOOK,
    ),
    Alert(
        "NatsRegionUnseen",
        "max by (region) (supercluster_servers) == 0"
        " or max by (region) (changes(supercluster_health_gathered_time_seconds[{stale}])) == 0",
        2 * _MINUTE,
        "critical",
        "The control service of {{ $labels.region }} sees none of the region's servers",
        "Its gatherings get no reply from the region's servers, or none has succeeded for "
        "3 minutes (disconnected, or stuck): the region's gateway, route and JetStream alerts "
        "then rest on a view that is empty or old.",
        TROUBLESHOOTING_RUNBOOK,
        windows={"stale": 3 * _MINUTE},
    ),
    Alert(
        "NatsServerUnhealthy",
        "max by (app_kubernetes_io_instance, server_id) (nats_healthz_status_value) == 0",
        2 * _MINUTE,
        "critical",
        "{{ $labels.server_id }} ({{ $labels.app_kubernetes_io_instance }}) is not healthy",
        "The server's /healthz is not ok or does not answer its exporter (JetStream not "
        "current, or the server is down while its pod runs).",
        TROUBLESHOOTING_RUNBOOK,
        source="exporter",
    ),
    Alert(
        "NatsJetStreamMetaLeaderMissing",
        "max by (region) (supercluster_jetstream_meta_leader) == 0",
        1 * _MINUTE,
        "critical",
        "{{ $labels.region }}: the JetStream meta group has no leader",
        "No JetStream server of the region knows a meta leader: streams and consumers cannot "
        "be created, changed or deleted anywhere this region can see.",
        QUORUM_RUNBOOK,
    ),
    Alert(
        "NatsJetStreamPeerOffline",
        "max by (region) (supercluster_jetstream_meta_peers_offline) > 0",
        5 * _MINUTE,
        "warning",
        "{{ $labels.region }} sees JetStream meta peers offline",
        "The meta leader reports peers it has not heard from: one more lost server can cost "
        "the meta group its majority.",
        QUORUM_RUNBOOK,
    ),
    Alert(
        "NatsStreamReplicasNotCurrent",
        "max by (region, account, stream) (supercluster_stream_replicas_behind) > 0",
        5 * _MINUTE,
        "warning",
        "{{ $labels.region }}: stream {{ $labels.stream }} has replicas not current",
        "The stream's leader reports replicas offline, unheard for over "
        f"{REPLICA_SILENCE_NS // 10**9} s, or more than {REPLICA_LAG_LIMIT:,} operations "
        "behind it: the stream has less redundancy than declared until they catch up.",
        QUORUM_RUNBOOK,
    ),
    Alert(
        "NatsConsumerLagGrowing",
        "max by (account, stream_name, consumer_name)"
        ' (nats_consumer_num_pending{is_consumer_leader="true"}) > 1000'
        " and max by (account, stream_name, consumer_name)"
        ' (deriv(nats_consumer_num_pending{is_consumer_leader="true"}[{trend}])) > 0',
        10 * _MINUTE,
        "warning",
        "Consumer {{ $labels.consumer_name }} on {{ $labels.stream_name }} is falling behind",
        "More than 1,000 messages wait for the consumer and the backlog keeps growing: its "
        "client is down, stuck or slower than the publishers.",
        APPLICATION_RUNBOOK,
        source="exporter",
        windows={"trend": 10 * _MINUTE},
    ),
    Alert(
        "RecorderDown",
        'min by (nats_io_region) (up{app_kubernetes_io_name="recorder"}) == 0',
        1 * _MINUTE,
        "critical",
        "The recorder in {{ $labels.nats_io_region }} is down",
        "Its metrics do not answer: nothing is written to the database; the answers wait in "
        "the stream (no loss while they stay within its limits).",
        APPLICATION_RUNBOOK,
    ),
    Alert(
        "RecorderDeadLetters",
        "sum by (region) (increase(supercluster_recorder_dead_letters_total[{recent}])) > 0",
        0,
        "warning",
        "The recorder in {{ $labels.region }} dead-lettered messages",
        "Messages that cannot be rows went to the dead_letters table with their reason.",
        APPLICATION_RUNBOOK,
        windows={"recent": 10 * _MINUTE},
    ),
    Alert(
        "AnswersUnpublished",
        "max by (region) (max_over_time(supercluster_requester_unpublished_total[{run}])) > 0",
        0,
        "critical",
        "A requester run in {{ $labels.region }} left answers unpublished",
        "JetStream did not take some answers within the requester's retry budget; each is "
        'logged whole ("not published") to be published again.',
        APPLICATION_RUNBOOK,
        windows={"run": 15 * _MINUTE},
    ),
    Alert(
        "ControlRollback",
        "sum by (region) (increase(supercluster_control_rollbacks_total[{recent}])) > 0",
        0,
        "warning",
        "A runtime change in {{ $labels.region }} was rolled back",
        "The control service applied a change the region did not show within its verify "
        "window and restored the state of before; config.get's history says why.",
        CONTROL_RUNBOOK,
        windows={"recent": 15 * _MINUTE},
    ),
    Alert(
        "NatsServerConfigStale",
        "max by (region, server) (supercluster_server_config_stale_seconds) > 0",
        2 * _MINUTE,
        "critical",
        "{{ $labels.server }} has not loaded the files it is given",
        "The server's configuration files changed more than 2 minutes ago and it has not "
        "loaded them (its reload failed, or none came): it runs its previous configuration, "
        "and while an unreloadable change is pending every later reload fails, certificate "
        "renewals included.",
        CONTROL_RUNBOOK,
    ),
    Alert(
        "NatsServerRestarting",
        "changes(max by (app_kubernetes_io_instance, server_id)"
        " (nats_varz_start)[{restarts}:{step}]) > 2",
        0,
        "warning",
        "{{ $labels.server_id }} ({{ $labels.app_kubernetes_io_instance }}) restarted more "
        "than twice in an hour",
        "A rolling upgrade restarts each server once; more is a crash loop, an OOM kill or a "
        "node going away.",
        "docs/observability.md#natsserverrestarting",
        source="exporter",
        windows={"restarts": _HOUR, "step": _MINUTE},
    ),
    Alert(
        "NatsCertificateExpiring",
        "min by (region, server, listener) (supercluster_tls_cert_not_after_seconds)"
        f" - time() < {14 * _DAY}",
        10 * _MINUTE,
        "warning",
        "The {{ $labels.listener }} certificate of {{ $labels.server }} expires within 14 days",
        "pulumi up renews certificates 30 days before they expire; one this close was not "
        "renewed (no pulumi up since), or the server has not reloaded the renewed files.",
        CERTIFICATES_RUNBOOK,
    ),
    Alert(
        "InRegionShareFalling",
        "(sum by (region) (max_over_time("
        'supercluster_requester_latency_seconds_count{locality="in_region"}[{run}]))'
        " or on (region) 0 * sum by (region)"
        " (max_over_time(supercluster_requester_latency_seconds_count[{run}])))"
        " / sum by (region) (max_over_time(supercluster_requester_latency_seconds_count[{run}]))"
        " < 0.9"
        " and sum by (region)"
        " (max_over_time(supercluster_requester_latency_seconds_count[{run}])) >= 100",
        0,
        "warning",
        "Less than 90% of {{ $labels.region }}'s requests were served in the region",
        "Geo-affinity is lost: the region's calculators are missing or not yet known to every "
        "server, so requests cross a gateway (about 70 ms more between the clouds).",
        APPLICATION_RUNBOOK,
        windows={"run": 15 * _MINUTE},
    ),
    Alert(
        "RecorderStuck",
        "max by (region) (supercluster_recorder_held_seconds) > 0",
        5 * _MINUTE,
        "critical",
        "The recorder in {{ $labels.region }} has held a batch for 5 minutes",
        "The recorder runs but cannot store the batch it holds (the database is out, or refuses "
        "even a dead letter): nothing is recorded; the answers wait in the stream, and its "
        "consumer's backlog is not counted while the batch is held.",
        APPLICATION_RUNBOOK,
    ),
)


def duration(seconds: int) -> str:
    """A Prometheus duration: 2m, 1h, 90s."""
    for unit, size in (("h", _HOUR), ("m", _MINUTE)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _scaled(seconds: int, scale: float) -> int:
    return 0 if seconds == 0 else max(1, round(seconds * scale))


def rule(alert: Alert, base_url: str = "", scale: float = 1.0) -> dict[str, Any]:
    """One alerting rule; `scale` shortens its windows and `for` (the local Prometheus)."""
    windows = {k: duration(_scaled(v, scale)) for k, v in alert.windows.items()}
    expr = re.sub(r"\{(\w+)\}", lambda m: windows.get(m.group(1), m.group(0)), alert.expr)
    found: dict[str, Any] = {"alert": alert.name, "expr": expr}
    if alert.for_seconds:
        found["for"] = duration(_scaled(alert.for_seconds, scale))
    found["labels"] = {"severity": alert.severity}
    found["annotations"] = {
        "summary": alert.summary,
        "description": alert.description,
        "runbook_url": base_url + alert.runbook,
    }
    return found


def rule_groups(
    base_url: str = "", scale: float = 1.0, sources: tuple[Source, ...] = ("exporter", "services")
) -> dict[str, Any]:
    """A rules file (what a PrometheusRule's spec holds): one group, the alerts of `sources`."""
    rules = [rule(a, base_url, scale) for a in ALERTS if a.source in sources]
    return {"groups": [{"name": GROUP, "rules": rules}]}


def rules_text(groups: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(groups), sort_keys=False, width=100)
