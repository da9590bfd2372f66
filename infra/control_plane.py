"""The region's control service in Kubernetes (services/control.py): the runtime ConfigMap the
servers include (made once by the program, then the service's), the service account allowed to
get and update that one ConfigMap and nothing else, and the Deployment."""

from __future__ import annotations

from typing import Any

from infra.nats_values import ROUTES_FILE, RegionNames
from infra.runtime_config import STATE_FILE, RuntimeState, routes_file
from infra.workloads import Program, app_labels, service_pod

CONTROL = "control"


def runtime_config_map(names: RegionNames) -> dict[str, Any]:
    """Empty runtime configuration: the release's own routes apply until an operator changes
    them. The program creates it once and ignores changes to its data afterwards."""
    state = RuntimeState()
    return {
        "metadata": {"name": names.runtime_config_map, "namespace": names.namespace},
        "data": {STATE_FILE: state.to_json(), ROUTES_FILE: routes_file(state)},
    }


def control_role(names: RegionNames) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{names.cluster}-{CONTROL}", "namespace": names.namespace},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [names.runtime_config_map],
                "verbs": ["get", "update"],
            }
        ],
    }


def control_account_name(names: RegionNames) -> str:
    return f"{names.cluster}-{CONTROL}"


def control_deployment(names: RegionNames, image: str, region: str) -> dict[str, Any]:
    labels = app_labels(f"{names.cluster}-{CONTROL}", region)
    program = Program(
        CONTROL,
        [CONTROL],
        [
            {"name": "CLUSTER", "value": names.cluster},
            {
                "name": "RUNTIME_STORE",
                "value": f"configmap:{names.namespace}/{names.runtime_config_map}",
            },
            # The chart's reloader applies the ConfigMap once it reaches the pods.
            {"name": "RELOAD", "value": "reloader"},
        ],
    )
    pod = service_pod(names, program, image, region, labels)
    pod["spec"]["serviceAccountName"] = control_account_name(names)
    pod["spec"]["automountServiceAccountToken"] = True  # its one permission: the ConfigMap
    return {
        "metadata": {
            "name": f"{names.cluster}-{CONTROL}",
            "namespace": names.namespace,
            "labels": labels,
        },
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": pod},
    }
