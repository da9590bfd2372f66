"""Renders the pinned NATS chart with the values of tests/chart_cases.py and stores the `nats.conf`
it produces in tests/golden/, the reference `tests/test_chart_conformance.py` holds
`infra.nats_conf.render_nats_conf` to.

Needs what CI does not have: the chart's source at the pinned version and the PyPI package
`helm-python-sdk` (Helm's Go SDK over a C ABI, no helm binary). Run it whenever chart_values or
the chart version changes:

    python -m venv /tmp/helm && /tmp/helm/bin/pip install helm-python-sdk pydantic
    PYTHONPATH=. /tmp/helm/bin/python -m tools.chart_golden /path/to/k8s/helm/charts/nats
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from infra.nats_values import NATS_CHART_VERSION, chart_values
from tests.chart_cases import CHART_CASES

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "tests" / "golden"


def chart_conf_to_json(text: str) -> dict[str, Any]:
    """The chart's nats.conf is JSON except for bare `$SERVER_NAME` and sizes like `10Gi`."""
    text = re.sub(r":\s*\$SERVER_NAME", ': "$SERVER_NAME"', text)
    text = re.sub(r":\s*(\d+[KMGT]i?B?)(\s*[,\n}])", r': "\1"\2', text)
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def main(chart_dir: str) -> int:
    import helm_python as helm  # noqa: PLC0415 (a tool-only dependency)
    import yaml  # noqa: PLC0415

    chart = helm.Chart.load(chart_dir)
    if chart.version != NATS_CHART_VERSION:
        print(f"chart is {chart.version}, the program pins {NATS_CHART_VERSION}", file=sys.stderr)
        return 1
    GOLDEN_DIR.mkdir(exist_ok=True)
    for case, spec in CHART_CASES.items():
        manifests = chart.render(
            chart_values(spec), name=spec.names.release, namespace=spec.names.namespace
        )
        config_map = next(v for k, v in manifests.items() if k.endswith("config-map.yaml"))
        conf = chart_conf_to_json(yaml.safe_load(config_map)["data"]["nats.conf"])
        path = GOLDEN_DIR / f"{case}.json"
        path.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
        print(f"wrote {path.relative_to(GOLDEN_DIR.parent.parent)}")
        stateful_set = next(v for k, v in manifests.items() if k.endswith("stateful-set.yaml"))
        template = yaml.safe_load(stateful_set)["spec"]["template"]
        path = GOLDEN_DIR / f"{case}.pod-annotations.json"
        annotations = template["metadata"].get("annotations") or {}
        path.write_text(json.dumps(annotations, indent=2, sort_keys=True) + "\n")
        print(f"wrote {path.relative_to(GOLDEN_DIR.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
