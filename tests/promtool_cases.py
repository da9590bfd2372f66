"""The harness for alert cases under `promtool test rules`: a case's input series, when to look
and the alerts expected then, run against the rules the code generates."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.alerts import ALERTS, rule, rule_groups, rules_text

EAST = 'region="east"'
SERVER = 'server="aws-us-east-1-east-0"'


@dataclass(frozen=True)
class Case:
    """Input series (PromQL selector -> promtool values, one per minute), when to look, and
    the alerts' labels then (besides alertname and severity); [] means none."""

    series: dict[str, str]
    at: str
    fired: list[dict[str, str]]


def fires(series: dict[str, str], at: str, *fired: dict[str, str]) -> Case:
    return Case(series, at, list(fired))


def quiet(series: dict[str, str], at: str) -> Case:
    return Case(series, at, [])


def promtool() -> str:
    found = shutil.which("promtool") or "/usr/bin/promtool"
    assert Path(found).exists(), "promtool is missing: ./dev test installs Debian's prometheus"
    return found


def expected(name: str, labels: dict[str, str]) -> dict[str, Any]:
    """The alert as promtool reports it: the rule's labels and its annotations with
    `{{ $labels.x }}` filled in."""
    (alert,) = (a for a in ALERTS if a.name == name)
    spec = rule(alert)
    annotations = {
        key: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
        for key, text in spec["annotations"].items()
    }
    return {"exp_labels": {**spec["labels"], **labels}, "exp_annotations": annotations}


def promtool_test(
    tmp_path: Path, series: dict[str, str], checks: dict[str, Any], *, rules: bool = True
) -> subprocess.CompletedProcess[str]:
    """One `promtool test rules` run: `series` (one value per minute) and `checks` keyed by
    promtool's kind of test (alert_rule_test, promql_expr_test), against the rules the code
    generates, or none."""
    if rules:
        (tmp_path / "rules.yml").write_text(rules_text(rule_groups()))
    test = {
        "rule_files": ["rules.yml"] if rules else [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                **checks,
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    return subprocess.run(
        [promtool(), "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


def run_case(tmp_path: Path, name: str, case: Case) -> subprocess.CompletedProcess[str]:
    check = {
        "eval_time": case.at,
        "alertname": name,
        "exp_alerts": [expected(name, labels) for labels in case.fired],
    }
    return promtool_test(tmp_path, case.series, {"alert_rule_test": [check]})
