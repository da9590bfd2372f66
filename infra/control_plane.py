"""The region's control service in Kubernetes (services/control.py): the runtime ConfigMap the
servers include (made once by the program, then the service's), the service account allowed to
get and update that one ConfigMap and nothing else, and the Deployment, which mounts the files
the servers load where the chart mounts them for the servers, read-only and without any key
(the certificate item of the server Secret only), so the service sees whether each server
loaded them (services/reload_watch.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from infra.nats_values import CA_SECRET_KEY, CLIENT_PORT, CLUSTER_PORT, RegionNames
from infra.region_servers import servers_setting
from infra.runtime_config import RuntimeState, runtime_files
from infra.runtime_files import RUNTIME_DIR
from infra.workloads import Program, app_labels, service_pod

CONTROL = "control"
# Where the chart mounts the servers' files (tests/golden/*.stateful-set.yaml); nats.conf names
# them by these paths, so the control service mounts them at the same ones.
CONFIG_DIR = "/etc/nats-config"
NATS_CONF = f"{CONFIG_DIR}/nats.conf"
CERT_DIRS = ("/etc/nats-certs/nats", "/etc/nats-certs/cluster", "/etc/nats-certs/gateway")
CA_DIR = "/etc/nats-ca-cert"
CERT_KEY = "tls.crt"  # the server Secret's certificate; its tls.key is never mounted here


def runtime_config_map(names: RegionNames) -> dict[str, Any]:
    """Empty runtime configuration: the release's own routes and gateways apply until an
    operator changes them. The program creates it once and ignores changes to its data."""
    return {
        "metadata": {"name": names.runtime_config_map, "namespace": names.namespace},
        "data": runtime_files(RuntimeState()),
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


def server_urls_template(names: RegionNames) -> str:
    return f"tls://{{pod}}.{names.headless_service}.{names.namespace}.svc:{CLIENT_PORT}"


def control_account_name(names: RegionNames) -> str:
    return f"{names.cluster}-{CONTROL}"


def control_deployment(
    names: RegionNames,
    image: str,
    region: str,
    gateway_pins: Mapping[str, Sequence[str]],
    servers: Sequence[str],
) -> dict[str, Any]:
    """`gateway_pins`: the known regions' server keys (infra.peers.gateway_pins), what a cut
    pins; they are public keys, so plain in the environment. `servers`: the release's server
    names (a scale changes them, and so rolls this Deployment with the new list)."""
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
            {"name": "GATEWAY_PINS", "value": json.dumps(dict(sorted(gateway_pins.items())))},
            # Each server itself, by its pod's name in the headless Service (which every
            # server certificate carries), so reloads never depend on the routes they change.
            {"name": "SERVER_URLS", "value": server_urls_template(names)},
            # The servers' nats.conf, which names the other files, as mounted below.
            {"name": "WATCH_CONFIG", "value": NATS_CONF},
            # The region's servers, so a put expects every one, answering or not, and the
            # namespace the names of their routes carry.
            {"name": "SERVERS", "value": servers_setting(servers, CLUSTER_PORT)},
            {"name": "NAMESPACE", "value": names.namespace},
        ],
    )
    pod = service_pod(names, program, image, region, labels)
    pod["spec"]["serviceAccountName"] = control_account_name(names)
    pod["spec"]["automountServiceAccountToken"] = True  # its one permission: the ConfigMap
    volumes, mounts = servers_files(names)
    pod["spec"]["volumes"] += volumes
    pod["spec"]["containers"][0]["volumeMounts"] += mounts
    return {
        "metadata": {
            "name": f"{names.cluster}-{CONTROL}",
            "namespace": names.namespace,
            "labels": labels,
        },
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": pod},
    }


def servers_files(names: RegionNames) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and read-only mounts of what the servers load, keys left out: the chart's
    config ConfigMap, the runtime ConfigMap, the server certificate at each listener's path
    and the CA."""
    runtime_dir = f"/etc/{RUNTIME_DIR}"
    volumes: list[dict[str, Any]] = [
        {"name": "servers-config", "configMap": {"name": names.config_map}},
        {"name": "servers-runtime", "configMap": {"name": names.runtime_config_map}},
        {
            "name": "servers-cert",
            "secret": {
                "secretName": names.server_tls_secret,
                "items": [{"key": CERT_KEY, "path": CERT_KEY}],
            },
        },
        {
            "name": "servers-ca",
            "secret": {
                "secretName": names.ca_secret,
                "items": [{"key": CA_SECRET_KEY, "path": CA_SECRET_KEY}],
            },
        },
    ]
    mounts = [
        {"name": "servers-config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "servers-runtime", "mountPath": runtime_dir, "readOnly": True},
        *({"name": "servers-cert", "mountPath": d, "readOnly": True} for d in CERT_DIRS),
        {"name": "servers-ca", "mountPath": CA_DIR, "readOnly": True},
    ]
    return volumes, mounts
