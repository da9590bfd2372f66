"""The alert rules as shipped: monitoring/rules.yml is the generated file and promtool accepts
it, every runbook opens a section of the docs that exists, each alert has its section in
docs/observability.md, and the local Prometheus's rules keep their expressions on a shorter
clock."""

from __future__ import annotations

import re
import subprocess

from infra.alerts import ALERTS, rule_groups, rules_text
from offline.stack_files import PROJECT_DIR
from tests.promtool_cases import promtool
from tools.doc_check import anchors as doc_anchors

RULES_FILE = PROJECT_DIR / "monitoring" / "rules.yml"
OBSERVABILITY_DOC = PROJECT_DIR / "docs" / "observability.md"


def test_the_shipped_rules_file_is_the_generated_one_and_promtool_accepts_it() -> None:
    """monitoring/rules.yml is for a Prometheus without the operator; `python -m
    tools.monitoring_files` writes it."""
    assert RULES_FILE.read_text() == rules_text(rule_groups())
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES_FILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_runbooks_point_into_the_docs_and_each_alert_has_its_section() -> None:
    doc = OBSERVABILITY_DOC.read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", doc, re.MULTILINE)
    }
    for alert in ALERTS:
        assert alert.name.lower() in anchors, alert.name
        path, _, anchor = alert.runbook.partition("#")
        assert path in {
            "docs/operations.md",
            "docs/runtime-control.md",
            "docs/architecture.md",
            "docs/observability.md",
        }
        assert anchor in doc_anchors((PROJECT_DIR / path).read_text()), alert.runbook
    based = rule_groups(base_url="https://example.com/repo/blob/main/")
    urls = {r["annotations"]["runbook_url"] for r in based["groups"][0]["rules"]}
    assert all(u.startswith("https://example.com/repo/blob/main/docs/") for u in urls)


def test_scaled_rules_keep_their_expressions_on_a_shorter_clock() -> None:
    """What the local Prometheus evaluates: the services' alerts only, windows and `for`
    divided, nothing else changed."""
    scaled = rule_groups(scale=1 / 30, sources=("services",))["groups"][0]["rules"]
    full = {r["alert"]: r for r in rule_groups()["groups"][0]["rules"]}
    assert {r["alert"] for r in scaled} == {a.name for a in ALERTS if a.source == "services"}
    gateway = next(r for r in scaled if r["alert"] == "NatsGatewayDown")
    assert (gateway["for"], full["NatsGatewayDown"]["for"]) == ("4s", "2m")
    dead = next(r for r in scaled if r["alert"] == "RecorderDeadLetters")
    assert "[20s]" in dead["expr"]
    assert dead["expr"].replace("[20s]", "[10m]") == full["RecorderDeadLetters"]["expr"]
