"""infra.nats_conf reproduces, for our values, the nats.conf the pinned NATS chart renders.

The golden files were produced by the real chart (tools/chart_golden.py); any change to
chart_values that the rendition does not follow the same way makes this fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.monitoring import EXPORTER_PORT, EXPORTER_PORT_NAME, nats_pod_annotations
from infra.nats_conf import (
    INCLUDE_KEY,
    RESTART_ANNOTATION,
    render_nats_conf,
    restart_fingerprint,
    to_nats_conf_text,
)
from infra.nats_values import CHART_INSTANCE_LABEL, chart_values
from tests.chart_cases import CHART_CASES
from tools.chart_golden import chart_conf_to_json

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("case", sorted(CHART_CASES))
def test_rendition_matches_the_real_chart(case: str) -> None:
    golden = json.loads((GOLDEN / f"{case}.json").read_text())
    assert render_nats_conf(chart_values(CHART_CASES[case])) == golden


@pytest.mark.parametrize("case", sorted(CHART_CASES))
def test_the_pods_as_the_real_chart_renders_them(case: str) -> None:
    """The real chart put the program's restart fingerprint on the pod template (and no
    checksum of the whole config, which would roll the pods for reloadable changes too),
    mounted the runtime ConfigMap beside its config, and has the reloader watch its files."""
    golden = json.loads((GOLDEN / f"{case}.pod.json").read_text())
    spec = CHART_CASES[case]
    values = chart_values(spec)
    assert golden["annotations"] == {
        RESTART_ANNOTATION: restart_fingerprint(render_nats_conf(values)),
        **nats_pod_annotations(spec.scraping),
    }
    assert "runtime" in golden["volumes"]
    assert "/etc/nats-runtime" in golden["nats_mounts"]
    assert "/etc/nats-runtime/routes.conf" in golden["reloader_watches"]
    assert "/etc/nats-runtime/gateways.conf" in golden["reloader_watches"]
    conf = render_nats_conf(values)
    assert conf["cluster"][INCLUDE_KEY] == "../nats-runtime/routes.conf"
    assert conf["gateway"]["tls"][INCLUDE_KEY] == "../nats-runtime/gateways.conf"


def test_every_case_has_a_golden_file() -> None:
    stems = {p.name.split(".")[0] for p in GOLDEN.glob("*.json")}
    assert stems == set(CHART_CASES)
    assert len(list(GOLDEN.glob("*.json"))) == 2 * len(CHART_CASES)


def test_text_form_round_trips_through_the_chart_parser() -> None:
    conf = render_nats_conf(chart_values(CHART_CASES["east"]))
    text = to_nats_conf_text(conf)
    assert '"server_name": $SERVER_NAME' in text
    assert '"max_file_store": 10Gi' in text
    assert chart_conf_to_json(text) == conf


@pytest.mark.parametrize("case", sorted(CHART_CASES))
def test_the_exporter_sidecar_as_the_real_chart_renders_it(case: str) -> None:
    """The real chart ran our JSON patch: -healthz first (a flag after the URL would be taken
    for a second URL), the stable server name instead of the per-start server id, JetStream
    and gateway metrics, the monitor URL last; the PodMonitor exactly where the operator
    scrapes, with the release label kube-prometheus-stack selects by and the release name
    (the region) on every series."""
    spec = CHART_CASES[case]
    exporter = json.loads((GOLDEN / f"{case}.pod.json").read_text())["exporter"]
    assert exporter["ports"] == [{"containerPort": EXPORTER_PORT, "name": EXPORTER_PORT_NAME}]
    args = exporter["args"]
    assert args[0] == "-healthz"
    assert args[-1] == "http://localhost:8222/"
    assert all(a.startswith("-") for a in args[:-1])
    assert "-use_internal_server_name" in args
    assert "-use_internal_server_id" not in args
    assert {"-varz", "-connz", "-routez", "-gatewayz", f"-port={EXPORTER_PORT}"} <= set(args)
    assert ("-jsz=all" in args) == spec.jetstream
    monitor = json.loads((GOLDEN / f"{case}.pod.json").read_text())["pod_monitor"]
    if not spec.scraping.operator:
        assert monitor is None
        return
    assert monitor["spec"]["podTargetLabels"] == [CHART_INSTANCE_LABEL]
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": EXPORTER_PORT_NAME}]
    assert monitor["spec"]["selector"]["matchLabels"] == spec.names.selector_labels()
    assert monitor["metadata"]["labels"]["release"] == spec.scraping.release
