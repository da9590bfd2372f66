"""Alert rules under `promtool test rules` on the input shapes that decide them beyond the two
cases each has in tests/test_alert_rules.py: a region's view gone stale, a region without
JetStream, one certificate exported by two control services, and a region seen empty, on
which no rule but NatsRegionUnseen fires."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.alerts import ALERTS
from tests.promtool_cases import EAST, Case, expected, fires, promtool_test, quiet, run_case

CENTRAL = 'server="azure-centralus-central-0"'
# More cases for alerts whose behaviour turns on more than one input shape.
MORE_CASES: dict[str, tuple[str, Case]] = {
    # the control service disconnected: it keeps its last view (3 servers), whose time stops
    "the region's view gone stale": (
        "NatsRegionUnseen",
        fires(
            {
                f"supercluster_servers{{{EAST}}}": "3x20",
                f"supercluster_health_gathered_time_seconds{{{EAST}}}": "0+15x5 75x15",
            },
            "10m",
            {"region": "east"},
        ),
    ),
    # west runs no JetStream: its control service exports no meta-leader series at all
    "a region without JetStream": (
        "NatsJetStreamMetaLeaderMissing",
        quiet(
            {
                'supercluster_servers{region="west"}': "3x20",
                f"supercluster_jetstream_meta_leader{{{EAST}}}": "1x20",
            },
            "10m",
        ),
    ),
    # central's certificate, exported by east's and west's control services (a pod each):
    # one alert, under the server's region
    "a certificate two control services watch": (
        "NatsCertificateExpiring",
        fires(
            {
                f'supercluster_tls_cert_not_after_seconds{{region="central",{CENTRAL},'
                f'listener="gateway",pod="{pod}"}}': "864000x40"
                for pod in ("control-east-x", "control-west-y")
            },
            "30m",
            {"region": "central", "server": "azure-centralus-central-0", "listener": "gateway"},
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(MORE_CASES))
def test_more_cases(tmp_path: Path, case: str) -> None:
    name, expected_case = MORE_CASES[case]
    result = run_case(tmp_path, name, expected_case)
    assert result.returncode == 0, result.stdout + result.stderr


def test_with_no_server_seen_only_the_region_unseen_alert_fires(tmp_path: Path) -> None:
    """The control service sees none of east's servers for 20 minutes: every other rule
    stays quiet on that view (0 < 0 is false), which is why NatsRegionUnseen exists."""
    unseen = {
        f"supercluster_servers{{{EAST}}}": "3x5 0x20",
        f"supercluster_health_gathered_time_seconds{{{EAST}}}": "0+15x25",
    }
    checks = [
        {
            "eval_time": "20m",
            "alertname": a.name,
            "exp_alerts": [expected(a.name, {"region": "east"})]
            if a.name == "NatsRegionUnseen"
            else [],
        }
        for a in ALERTS
    ]
    result = promtool_test(tmp_path, unseen, {"alert_rule_test": checks})
    assert result.returncode == 0, result.stdout + result.stderr
