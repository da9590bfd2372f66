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

from infra.nats_conf import INCLUDE_KEY
from infra.nats_values import NATS_CHART_VERSION, chart_values
from tests.chart_cases import CHART_CASES

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "tests" / "golden"


def chart_conf_to_json(text: str) -> dict[str, Any]:
    """The chart's nats.conf is JSON except for bare `$SERVER_NAME`, sizes like `10Gi` and
    `include <file>;` directives."""
    text = re.sub(r":\s*\$SERVER_NAME", ': "$SERVER_NAME"', text)
    text = re.sub(r"^(\s*)include (\S+);", rf'\1"{INCLUDE_KEY}": "\2"', text, flags=re.MULTILINE)
    text = re.sub(r":\s*(\d+[KMGT]i?B?)(\s*[,\n}])", r': "\1"\2', text)
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def pod_facts(
    stateful_set: dict[str, Any], pod_monitor: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What the program relies on in the rendered pod: its annotations, the volumes, what the
    nats container mounts, which files the config reloader watches, the exporter sidecar's
    arguments and ports, and the chart's PodMonitor when it renders one; and of the StatefulSet
    how the pods stop (termination grace, preStop) and what becomes of their claims."""
    template = stateful_set["spec"]["template"]
    containers = {c["name"]: c for c in template["spec"]["containers"]}
    args = containers["reloader"]["args"]
    exporter = containers.get("prom-exporter")
    return {
        "annotations": template["metadata"].get("annotations") or {},
        "volumes": sorted(v["name"] for v in template["spec"]["volumes"]),
        "nats_mounts": sorted(m["mountPath"] for m in containers["nats"]["volumeMounts"]),
        "reloader_watches": sorted(args[i + 1] for i, a in enumerate(args) if a == "-config"),
        "exporter": ({"args": exporter["args"], "ports": exporter["ports"]} if exporter else None),
        "pod_monitor": pod_monitor,
        "termination_grace_period_seconds": template["spec"].get("terminationGracePeriodSeconds"),
        "pre_stop": containers["nats"].get("lifecycle", {}).get("preStop"),
        "readiness_probe": containers["nats"].get("readinessProbe"),
        "claim_templates": sorted(
            c["metadata"]["name"] for c in stateful_set["spec"].get("volumeClaimTemplates") or []
        ),
        "pvc_retention_policy": stateful_set["spec"].get("persistentVolumeClaimRetentionPolicy"),
    }


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
        monitor = next((v for k, v in manifests.items() if k.endswith("pod-monitor.yaml")), None)
        # The whole StatefulSet too, which tests validate against Kubernetes' schema.
        path = GOLDEN_DIR / f"{case}.stateful-set.yaml"
        path.write_text(stateful_set if stateful_set.endswith("\n") else stateful_set + "\n")
        print(f"wrote {path.relative_to(GOLDEN_DIR.parent.parent)}")
        facts = pod_facts(yaml.safe_load(stateful_set), yaml.safe_load(monitor or "null"))
        path = GOLDEN_DIR / f"{case}.pod.json"
        path.write_text(json.dumps(facts, indent=2) + "\n")
        print(f"wrote {path.relative_to(GOLDEN_DIR.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
