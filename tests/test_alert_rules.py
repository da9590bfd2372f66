"""Every alert rule under `promtool test rules` (Debian's prometheus 2.42, installed by ./dev):
series shaped as the fact table says (tests/test_metric_facts.py), one case where the alert
fires with exactly the labels and annotations an operator gets, and one where it stays quiet
(below its threshold, or above it for less than its `for`). The harness:
tests/promtool_cases.py; the rules as shipped: tests/test_alert_rules_shipped.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.alerts import ALERTS
from tests.promtool_cases import EAST, SERVER, Case, fires, quiet, run_case

EAST_WEST = {"region": "east", "remote": "west"}
STREAM = 'account="APP",stream="answers"'
CONSUMER = (
    'account="APP",stream_name="answers",consumer_name="recorder",server_id="aws-us-east-1-east-1"'
)
RECORDER_UP = 'up{app_kubernetes_io_name="recorder",nats_io_region="east",instance="10.0.0.9:9090"}'
LATENCY = "supercluster_requester_latency_seconds_count"
# central's server, which no control service of its own watches: the exporter beside it does
START = 'nats_varz_start{app_kubernetes_io_instance="central",server_id="azure-centralus-central-0"'

# alert -> (firing, quiet)
CASES: dict[str, tuple[Case, Case]] = {
    "NatsGatewayDown": (
        fires(
            {
                f"supercluster_servers{{{EAST}}}": "3x20",
                f'supercluster_gateway_servers{{{EAST},remote="west"}}': "3x5 2x15",
            },
            "10m",
            EAST_WEST,
        ),
        # one server without its gateway for a minute (a redial): shorter than `for`
        quiet(
            {
                f"supercluster_servers{{{EAST}}}": "3x20",
                f'supercluster_gateway_servers{{{EAST},remote="west"}}': "3x5 2 3x14",
            },
            "10m",
        ),
    ),
    "NatsRouteMissing": (
        fires(
            {
                f"supercluster_servers{{{EAST}}}": "3x20",
                f"supercluster_route_peers{{{EAST},{SERVER}}}": "2x5 1x15",
            },
            "10m",
            {"region": "east", "server": "aws-us-east-1-east-0"},
        ),
        # a server down: the others route to each other, which is all that runs
        quiet(
            {
                f"supercluster_servers{{{EAST}}}": "3x5 2x15",
                f"supercluster_route_peers{{{EAST},{SERVER}}}": "2x5 1x15",
            },
            "10m",
        ),
    ),
    "NatsRegionUnseen": (
        # the control service's gatherings find none of east's servers (every other rule
        # stays quiet on this, 0 < 0 being false: tests/test_alert_cases.py)
        fires(
            {
                f"supercluster_servers{{{EAST}}}": "3x5 0x15",
                f"supercluster_health_gathered_time_seconds{{{EAST}}}": "0+15x20",
            },
            "10m",
            {"region": "east"},
        ),
        # one empty gathering (the control service reconnecting through a server's restart)
        quiet(
            {
                f"supercluster_servers{{{EAST}}}": "3x5 0 3x14",
                f"supercluster_health_gathered_time_seconds{{{EAST}}}": "0+15x20",
            },
            "10m",
        ),
    ),
    "NatsServerUnhealthy": (
        fires(
            {
                'nats_healthz_status_value{app_kubernetes_io_instance="east",'
                'server_id="aws-us-east-1-east-1",value="ok"}': "1x5 stale",
                'nats_healthz_status_value{app_kubernetes_io_instance="east",'
                'server_id="aws-us-east-1-east-1",value="unreachable"}': "_x6 0x14",
            },
            "12m",
            {"app_kubernetes_io_instance": "east", "server_id": "aws-us-east-1-east-1"},
        ),
        quiet(
            {
                'nats_healthz_status_value{app_kubernetes_io_instance="east",'
                'server_id="aws-us-east-1-east-1",value="ok"}': "1x20"
            },
            "12m",
        ),
    ),
    "NatsJetStreamMetaLeaderMissing": (
        fires(
            {f"supercluster_jetstream_meta_leader{{{EAST}}}": "1x5 0x15"}, "10m", {"region": "east"}
        ),
        # an election: no leader for one evaluation
        quiet({f"supercluster_jetstream_meta_leader{{{EAST}}}": "1x5 0 1x14"}, "10m"),
    ),
    "NatsJetStreamPeerOffline": (
        fires(
            {f"supercluster_jetstream_meta_peers_offline{{{EAST}}}": "0x5 1x15"},
            "15m",
            {"region": "east"},
        ),
        # a rolling restart: one peer offline for three minutes
        quiet({f"supercluster_jetstream_meta_peers_offline{{{EAST}}}": "0x5 1x3 0x12"}, "15m"),
    ),
    "NatsStreamReplicasNotCurrent": (
        fires(
            {f"supercluster_stream_replicas_behind{{{EAST},{STREAM}}}": "0x5 1x15"},
            "15m",
            {"region": "east", "account": "APP", "stream": "answers"},
        ),
        quiet(
            {f"supercluster_stream_replicas_behind{{{EAST},{STREAM}}}": "0x5 2x2 0x13"},
            "15m",
        ),
    ),
    "NatsConsumerLagGrowing": (
        fires(
            {f'nats_consumer_num_pending{{{CONSUMER},is_consumer_leader="true"}}': "0+100x40"},
            "30m",
            {"account": "APP", "stream_name": "answers", "consumer_name": "recorder"},
        ),
        # a large but steady backlog on the leader; a follower's stale copy growing
        quiet(
            {
                f'nats_consumer_num_pending{{{CONSUMER},is_consumer_leader="true"}}': "5000x40",
                'nats_consumer_num_pending{account="APP",stream_name="answers",'
                'consumer_name="recorder",server_id="aws-us-east-1-east-2",'
                'is_consumer_leader="false"}': "0+100x40",
            },
            "30m",
        ),
    ),
    "RecorderDown": (
        fires({RECORDER_UP: "1x5 0x15"}, "10m", {"nats_io_region": "east"}),
        quiet({RECORDER_UP: "1x20"}, "10m"),
    ),
    "RecorderDeadLetters": (
        fires(
            {f"supercluster_recorder_dead_letters_total{{{EAST}}}": "0x5 1x15"},
            "8m",
            {"region": "east"},
        ),
        # the same dead letter, ten minutes on: nothing new
        quiet({f"supercluster_recorder_dead_letters_total{{{EAST}}}": "0x5 1x20"}, "20m"),
    ),
    "AnswersUnpublished": (
        fires(
            {f'supercluster_requester_unpublished_total{{{EAST},pod="requester-x"}}': "0 0 3 3 3"},
            "5m",
            {"region": "east"},
        ),
        quiet(
            {f'supercluster_requester_unpublished_total{{{EAST},pod="requester-x"}}': "0x10"}, "5m"
        ),
    ),
    "ControlRollback": (
        fires(
            {f"supercluster_control_rollbacks_total{{{EAST}}}": "0x5 1x15"},
            "8m",
            {"region": "east"},
        ),
        quiet({f"supercluster_control_rollbacks_total{{{EAST}}}": "0x20"}, "8m"),
    ),
    "NatsServerConfigStale": (
        # behind since its files changed (the gauge starts past the control's 120 s grace)
        fires(
            {f"supercluster_server_config_stale_seconds{{{EAST},{SERVER}}}": "0x5 120+60x15"},
            "10m",
            {"region": "east", "server": "aws-us-east-1-east-0"},
        ),
        # behind for a minute (its reload came late), then current again: shorter than `for`
        quiet(
            {f"supercluster_server_config_stale_seconds{{{EAST},{SERVER}}}": "0x5 120 0x14"},
            "10m",
        ),
    ),
    "NatsServerRestarting": (
        # three starts after the first (Unix milliseconds, as the exporter sets them), the
        # last in a pod the StatefulSet replaced (a new address, the same server name)
        fires(
            {
                f'{START},instance="10.0.0.5:7777"}}': "1000000x10 2000000x10 3000000x10 stale",
                f'{START},instance="10.0.0.9:7777"}}': "_x31 4000000x9",
            },
            "45m",
            {"app_kubernetes_io_instance": "central", "server_id": "azure-centralus-central-0"},
        ),
        # one restart, into a replaced pod: a rolling upgrade
        quiet(
            {
                f'{START},instance="10.0.0.5:7777"}}': "1000000x20 stale",
                f'{START},instance="10.0.0.9:7777"}}': "_x21 2000000x24",
            },
            "45m",
        ),
    ),
    "NatsCertificateExpiring": (
        # promtool's clock starts at 0 (1970): 10 days after it
        fires(
            {
                f'supercluster_tls_cert_not_after_seconds{{{EAST},{SERVER},listener="gateway"}}': (
                    "864000x40"
                )
            },
            "30m",
            {"region": "east", "server": "aws-us-east-1-east-0", "listener": "gateway"},
        ),
        quiet(
            {
                f'supercluster_tls_cert_not_after_seconds{{{EAST},{SERVER},listener="gateway"}}': (
                    "2592000x40"
                )
            },
            "30m",
        ),
    ),
    "InRegionShareFalling": (
        # east: half its requests served in east; west: none (only cross-region series)
        fires(
            {
                f'{LATENCY}{{{EAST},operation="add",locality="in_region"}}': "0 50x10",
                f'{LATENCY}{{{EAST},operation="add",locality="cross_region"}}': "0 50x10",
                f'{LATENCY}{{region="west",operation="add",locality="cross_region"}}': "0 200x10",
            },
            "5m",
            {"region": "east"},
            {"region": "west"},
        ),
        # east 97.6% in-region; west all cross-region but only 20 requests
        quiet(
            {
                f'{LATENCY}{{{EAST},operation="add",locality="in_region"}}': "0 200x10",
                f'{LATENCY}{{{EAST},operation="add",locality="cross_region"}}': "0 5x10",
                f'{LATENCY}{{region="west",operation="add",locality="cross_region"}}': "0 20x10",
            },
            "5m",
        ),
    ),
    "RecorderStuck": (
        # the database gone: one batch held from minute 6 on
        fires(
            {f"supercluster_recorder_held_seconds{{{EAST}}}": "0x5 30+60x15"},
            "15m",
            {"region": "east"},
        ),
        # a database restart: the batch held for four minutes, then stored
        quiet(
            {f"supercluster_recorder_held_seconds{{{EAST}}}": "0x5 30 90 150 210 0x10"},
            "15m",
        ),
    ),
}


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    assert set(CASES) == {a.name for a in ALERTS}
    for firing, silent in CASES.values():
        assert firing.fired
        assert not silent.fired


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_alert_fires(tmp_path: Path, name: str) -> None:
    result = run_case(tmp_path, name, CASES[name][0])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_alert_stays_quiet(tmp_path: Path, name: str) -> None:
    result = run_case(tmp_path, name, CASES[name][1])
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails_promtool(tmp_path: Path) -> None:
    """The harness can fail: the firing case of one alert, expected quiet."""
    firing = CASES["NatsGatewayDown"][0]
    result = run_case(tmp_path, "NatsGatewayDown", Case(firing.series, firing.at, []))
    assert result.returncode != 0
    assert "NatsGatewayDown" in result.stdout + result.stderr
