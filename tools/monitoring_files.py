"""Writes the monitoring files the repository ships for setups outside this program: the alert
rules as a plain Prometheus rules file and the Grafana dashboards as JSON, all generated from
infra/ (tests/test_alert_rules_shipped.py and tests/test_dashboards.py hold the files to the
code).

    .venv/bin/python -m tools.monitoring_files
"""

from __future__ import annotations

import json
import sys

from infra.alerts import rule_groups, rules_text
from infra.dashboards import DASHBOARDS
from offline.stack_files import PROJECT_DIR

MONITORING_DIR = PROJECT_DIR / "monitoring"


def main() -> int:
    MONITORING_DIR.mkdir(exist_ok=True)
    files = {"rules.yml": rules_text(rule_groups())}
    for name, dashboard in DASHBOARDS.items():
        files[f"{name}.json"] = json.dumps(dashboard, indent=2, sort_keys=True) + "\n"
    for name, text in files.items():
        (MONITORING_DIR / name).write_text(text)
        print(f"wrote monitoring/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
