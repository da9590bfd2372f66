"""What the NATS chart renders into `nats.conf` from `chart_values`, for the values this program
sets. The chart stays the truth in the clouds; this rendition lets the local supercluster and the
tests run exactly that configuration. `tests/test_chart_conformance.py` compares it with output
the real chart produced (see `tools/chart_golden.py`).

The chart writes the config as JSON with two bare tokens that are NATS syntax, not JSON:
`$SERVER_NAME` (an environment variable) and sizes such as `10Gi`. Here they are the strings
SERVER_NAME_VARIABLE and the size text; `to_nats_conf_text` writes them back bare.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

SERVER_NAME_VARIABLE = "$SERVER_NAME"
# A values key ending in `$include` becomes an `include <file>;` directive where it stands (the
# chart's nats.formatConfig); "zz" sorts it last in its block, after what it may replace.
INCLUDE_KEY = "zz$include"

# The chart's defaults (values.yaml of the pinned chart) for what chart_values leaves unset.
_PORTS = {"nats": 4222, "cluster": 6222, "gateway": 7222, "monitor": 8222}
_CERT_DIRS = {
    "nats": "/etc/nats-certs/nats",
    "cluster": "/etc/nats-certs/cluster",
    "gateway": "/etc/nats-certs/gateway",
}
_CA_DIR = "/etc/nats-ca-cert"
_STORE_DIR = "/data"


def render_nats_conf(values: dict[str, Any]) -> dict[str, Any]:
    """The chart's config.yaml, cluster.yaml, gateway.yaml, tls.yaml and jetstream.yaml, applied
    to `values`, followed by `config.merge` (a deep merge, as the chart's mergeOverwrite)."""
    config = values["config"]
    name = values["fullnameOverride"]
    ca = values.get("tlsCA", {})
    conf: dict[str, Any] = {
        "server_name": SERVER_NAME_VARIABLE,
        "lame_duck_grace_period": "10s",
        "lame_duck_duration": "30s",
        "pid_file": "/var/run/nats/nats.pid",
        "port": _PORTS["nats"],
    }
    nats_tls = config.get("nats", {}).get("tls", {})
    if nats_tls.get("enabled"):
        conf["tls"] = _tls("nats", nats_tls, ca)

    cluster = config.get("cluster", {})
    if cluster.get("enabled"):
        proto = "tls" if cluster.get("tls", {}).get("enabled") else "nats"
        block: dict[str, Any] = {
            "name": name,
            "port": _PORTS["cluster"],
            "no_advertise": True,
            "routes": [
                f"{proto}://{name}-{i}.{name}-headless:{_PORTS['cluster']}"
                for i in range(int(cluster.get("replicas", 3)))
            ],
        }
        if cluster.get("tls", {}).get("enabled"):
            block["tls"] = _tls("cluster", cluster["tls"], ca)
        conf["cluster"] = _merged(block, cluster.get("merge"))

    gateway = config.get("gateway", {})
    if gateway.get("enabled"):
        block = {"name": name, "port": _PORTS["gateway"]}
        if gateway.get("tls", {}).get("enabled"):
            block["tls"] = _tls("gateway", gateway["tls"], ca)
        conf["gateway"] = _merged(block, gateway.get("merge"))

    conf["http_port"] = _PORTS["monitor"]

    jetstream = config.get("jetstream", {})
    if jetstream.get("enabled"):
        pvc = jetstream.get("fileStore", {}).get("pvc", {})
        block = {
            "max_memory_store": 0,
            "store_dir": _STORE_DIR,
            "max_file_store": pvc.get("size", "10Gi"),
        }
        conf["jetstream"] = _merged(block, jetstream.get("merge"))

    return _merged(conf, config.get("merge"))


def _tls(protocol: str, tls: dict[str, Any], ca: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = {}
    if tls.get("secretName"):
        directory = _CERT_DIRS[protocol]
        block["cert_file"] = f"{directory}/{tls.get('cert', 'tls.crt')}"
        block["key_file"] = f"{directory}/{tls.get('key', 'tls.key')}"
    if ca.get("enabled") and (ca.get("secretName") or ca.get("configMapName")):
        block["ca_file"] = f"{_CA_DIR}/{ca.get('key', 'ca.crt')}"
    return _merged(block, tls.get("merge"))


def _merged(base: dict[str, Any], patch: dict[str, Any] | None) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in (patch or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def to_nats_conf_text(conf: dict[str, Any]) -> str:
    """JSON, with the server-name variable and sizes bare and include keys as directives, as
    the chart writes them."""
    text = json.dumps(conf, indent=2, sort_keys=True)
    text = re.sub(rf'"{re.escape(INCLUDE_KEY)}": "(.*)",?', r"include \1;", text)
    text = text.replace(f'"{SERVER_NAME_VARIABLE}"', SERVER_NAME_VARIABLE)
    jetstream = conf.get("jetstream", {})
    size = jetstream.get("max_file_store")
    if isinstance(size, str):
        text = text.replace(f'"max_file_store": "{size}"', f'"max_file_store": {size}')
    return text


# What a running nats-server applies on reload (SIGHUP, which the chart's config reloader sends
# when a mounted file changes), as (block, key) pairs; None is the top level. Everything else
# needs a restart. Source: nats-server v2.14.2 server/reload.go: accounts and permissions
# (1682-1745), the cluster block but its host and port (validateClusterOpts 2760), TLS
# certificates of every listener (the files are read again at parse time), and of the gateway
# block only its TLS ("config reload not supported for Gateway" otherwise, 1753-1781).
# tests/test_reload.py checks each kind of change on real servers.
RELOADABLE: frozenset[tuple[str | None, str]] = frozenset(
    {
        (None, "accounts"),
        (None, "tls"),
        ("cluster", "routes"),
        ("cluster", "tls"),
        ("cluster", "authorization"),
        ("gateway", "tls"),
    }
)
# The pod annotation whose value changes exactly when the servers must restart to apply a
# change; every other change is applied by reload without a restart.
RESTART_ANNOTATION = "nats-supercluster/restart-fingerprint"


def restart_fingerprint(conf: dict[str, Any]) -> str:
    """A digest of the parts of `conf` that a reload cannot change."""
    kept = {
        key: (
            {k: v for k, v in value.items() if (key, k) not in RELOADABLE}
            if isinstance(value, dict)
            else value
        )
        for key, value in conf.items()
        if (None, key) not in RELOADABLE
    }
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]
