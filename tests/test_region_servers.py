"""The region's servers as the control service is told them (SERVERS, NAMESPACE), the names a
route may give them, the put's time budget against the CLI's patience, and the log throttle
against forged callers: decisions without a server (issue 24)."""

from __future__ import annotations

import fnmatch
import logging
from typing import Any

import pytest

from infra.control_plane import control_deployment
from infra.nats_values import RegionNames
from infra.pki import server_sans
from infra.put_budget import (
    CLI_SECONDS,
    MAX_VERIFY_SECONDS,
    PUT_SECONDS,
    QUEUE_SECONDS,
    ROUND_SECONDS,
    Budget,
    window,
)
from infra.region_servers import (
    RegionRelease,
    check_namespace,
    foreign,
    parse_servers,
    route_hosts,
    servers_setting,
)
from localnet import control as cli
from services.logs import Throttle
from services.settings import ControlSettings, SettingsError

EAST = RegionRelease("east", "nats", {"aws-us-east-1-east-0": 6222})


def test_servers_are_named_after_the_regions_pods_with_their_cluster_ports() -> None:
    names = [f"aws-us-east-1-east-{i}" for i in range(3)]
    assert parse_servers(servers_setting(names, 6222), "east") == dict.fromkeys(names, 6222)
    local = servers_setting(names, [41001, 41002, 41003])  # one machine: a port each
    assert parse_servers(local, "east")["aws-us-east-1-east-2"] == 41003
    for text, says in [
        ("", "not JSON"),
        ("[]", "must map each server"),
        ("{}", "must map each server"),
        ('{"azure-westus-west-0": 6222}', "not a server of east"),
        ('{"aws-us-east-1-east-0": "6222"}', "a port"),
        ('{"aws-us-east-1-east-0": true}', "a port"),
        ('{"aws-us-east-1-east-0": 70000}', "a port"),
    ]:
        with pytest.raises(ValueError, match=says):
            parse_servers(text, "east")
    assert check_namespace("nats") == "nats"
    for bad in ("", "Nats", "nats.svc", "-nats", "n" * 64):
        with pytest.raises(ValueError, match="NAMESPACE"):
            check_namespace(bad)


def test_the_names_a_route_may_give_a_server_are_those_its_certificate_carries() -> None:
    names = RegionNames("east", "nats")
    sans = server_sans(names.service, names.headless_service, names.namespace, "lb.example")
    hosts = route_hosts("east-1", EAST)
    assert hosts == (
        "east-1.east-headless",
        "east-1.east-headless.nats",
        "east-1.east-headless.nats.svc",
        "east-1.east-headless.nats.svc.cluster.local",
    )
    for host in hosts:  # a wildcard covers one label, as TLS name checks match it
        assert any(
            fnmatch.fnmatchcase(host, san) and host.count(".") == san.count(".")
            for san in sans.dns_names
        ), host
    ports = {"aws-us-east-1-east-1": 6222}
    assert foreign([f"tls://{h}:6222" for h in hosts], ports, EAST) == []
    assert foreign(["tls://east-1.east-headless.nowhere:6222"], ports, EAST) == [0]


def test_the_control_deployment_knows_the_releases_servers_and_namespace() -> None:
    names = RegionNames("east", "ops")
    servers = [f"aws-us-east-1-east-{i}" for i in range(5)]
    deployment = control_deployment(names, "image:1", "east", {}, servers)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert parse_servers(env["SERVERS"], "east") == dict.fromkeys(servers, 6222)
    assert env["NAMESPACE"] == "ops"
    settings = ControlSettings.from_env({**env, "CLUSTER": "east"})
    assert (settings.servers, settings.namespace) == (dict.fromkeys(servers, 6222), "ops")


def _control_env(**changes: str) -> dict[str, Any]:
    return {
        "CLUSTER": "east",
        "RUNTIME_STORE": "file:/tmp/x",
        "SERVERS": '{"aws-us-east-1-east-0": 6222}',
        "NAMESPACE": "nats",
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"SERVERS": ""}, "SERVERS is required"),
        ({"SERVERS": '{"west-0": 6222}'}, "not a server of east"),
        ({"NAMESPACE": ""}, "NAMESPACE is required"),
        ({"NAMESPACE": "a.b"}, "NAMESPACE must be"),
        ({"VERIFY_SECONDS": str(MAX_VERIFY_SECONDS + 1)}, "VERIFY_SECONDS must be between"),
    ],
)
def test_control_settings_name_what_is_wrong(changes: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        ControlSettings.from_env(_control_env(**changes))


def test_a_put_and_its_rollback_fit_the_budget_and_the_cli_waits_longer() -> None:
    """The CLI gives up only after the service must have answered: its timeout and the
    service's budget come from infra/put_budget.py."""
    assert cli.call.__defaults__ == (CLI_SECONDS,)
    assert cli.run.__defaults__ == (CLI_SECONDS,)
    assert CLI_SECONDS > PUT_SECONDS
    budget = Budget.starting(100.0)
    # A verification may end one round after its phase: the last still within the budget.
    assert budget.restored + ROUND_SECONDS == 100.0 + PUT_SECONDS - QUEUE_SECONDS
    assert budget.applied - 100.0 == budget.restored - (budget.applied + ROUND_SECONDS)
    assert budget.applied - 100.0 > MAX_VERIFY_SECONDS  # the longest verification allowed
    assert window(10, until=budget.applied, now=100.0) == 10
    assert window(10, until=budget.applied, now=budget.applied - 3) == 3
    assert window(10, until=budget.applied, now=budget.applied + 3) == 0


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


def test_the_log_throttle_is_bounded_in_all_whatever_the_keys() -> None:
    """Even keyed by a caller's own words (which the service no longer does), at most `lines`
    lines an interval; one a key an interval; the unlogged counted in the next line."""
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("test-throttle")
    logger.addHandler(_Collect(records))
    logger.setLevel(logging.INFO)
    throttle = Throttle(logger, interval_seconds=60, lines=3)
    for n in range(2000):
        throttle.event(f"forged-{n}", "refused", now=n / 1000)
    assert len(records) == 3
    for second in range(60, 180):
        throttle.event("reply status", "refused", now=float(second))
    assert len(records) == 5  # at 60 s and 120 s
    assert records[-1].fields["since_last_log"] == 60  # type: ignore[attr-defined]
    assert throttle.total == 2120
    assert len(throttle._seen) <= throttle.keys
