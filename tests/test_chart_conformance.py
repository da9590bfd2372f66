"""infra.nats_conf reproduces, for our values, the nats.conf the pinned NATS chart renders.

The golden files were produced by the real chart (tools/chart_golden.py); any change to
chart_values that the rendition does not follow the same way makes this fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.nats_conf import render_nats_conf, to_nats_conf_text
from infra.nats_values import chart_values
from tests.chart_cases import CHART_CASES
from tools.chart_golden import chart_conf_to_json

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("case", sorted(CHART_CASES))
def test_rendition_matches_the_real_chart(case: str) -> None:
    golden = json.loads((GOLDEN / f"{case}.json").read_text())
    assert render_nats_conf(chart_values(CHART_CASES[case])) == golden


def test_every_case_has_a_golden_file() -> None:
    assert {p.stem for p in GOLDEN.glob("*.json")} == set(CHART_CASES)


def test_text_form_round_trips_through_the_chart_parser() -> None:
    conf = render_nats_conf(chart_values(CHART_CASES["east"]))
    text = to_nats_conf_text(conf)
    assert '"server_name": $SERVER_NAME' in text
    assert '"max_file_store": 10Gi' in text
    assert chart_conf_to_json(text) == conf
