"""The NATS region: names, gateway list and the official chart's values.

`chart_values` is the single place that decides the server configuration. The chart turns these
values into `nats.conf` (see `infra/nats_conf.py`, which reproduces that rendering and is checked
against the real chart); the cloud release and the local supercluster both start from here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from infra.identities import SERVER_SUBJECT_DN, SYSTEM_ACCOUNT, accounts_block
from infra.monitoring import Scraping, exporter_values, nats_pod_annotations
from infra.nats_conf import INCLUDE_KEY, RESTART_ANNOTATION, render_nats_conf, restart_fingerprint
from infra.runtime_files import (
    GATEWAYS_INCLUDE,
    ROUTES_INCLUDE,
    RUNTIME_DIR,
)
from infra.storage import PVC_RETENTION_POLICY

CLIENT_PORT = 4222
CLUSTER_PORT = 6222
GATEWAY_PORT = 7222
MONITOR_PORT = 8222

NATS_CHART = "nats"
NATS_CHART_REPO = "https://nats-io.github.io/k8s/helm/charts/"
NATS_CHART_VERSION = "2.14.2"

CA_SECRET_KEY = "ca.crt"
# The region's runtime configuration (infra.runtime_config): a ConfigMap mounted beside the
# chart's /etc/nats-config, its routes file included from nats.conf's `cluster` block and its
# gateways file from the `gateway` block's `tls`.
RUNTIME_VOLUME = "runtime"
# Labels the chart puts on its pods; the program's own LoadBalancer Service selects them.
CHART_NAME_LABEL = "app.kubernetes.io/name"
CHART_INSTANCE_LABEL = "app.kubernetes.io/instance"
CHART_COMPONENT_LABEL = "app.kubernetes.io/component"


@dataclass(frozen=True)
class Resources:
    cpu: str = "1"
    memory: str = "2Gi"


@dataclass(frozen=True)
class Gateway:
    """One region as a gateway peer: its NATS cluster name and where its load balancer listens."""

    name: str
    url: str


@dataclass(frozen=True)
class RegionNames:
    """Kubernetes names of one region; the release name is the cluster name, so the chart's
    fullname, StatefulSet, NATS cluster and gateway all carry it."""

    cluster: str
    namespace: str

    @property
    def release(self) -> str:
        return self.cluster

    @property
    def service(self) -> str:
        return self.cluster

    @property
    def headless_service(self) -> str:
        return f"{self.cluster}-headless"

    @property
    def public_service(self) -> str:
        return f"{self.cluster}-public"

    @property
    def server_tls_secret(self) -> str:
        return f"{self.cluster}-server-tls"

    @property
    def ca_secret(self) -> str:
        return "nats-ca"

    @property
    def config_map(self) -> str:
        """The chart's ConfigMap holding nats.conf (`<fullname>-config`)."""
        return f"{self.release}-config"

    @property
    def runtime_config_map(self) -> str:
        """The ConfigMap holding the region's runtime configuration (infra.runtime_config)."""
        return f"{self.cluster}-runtime"

    def client_tls_secret(self, identity: str) -> str:
        return f"nats-client-{identity}"

    def pod(self, ordinal: int) -> str:
        return f"{self.cluster}-{ordinal}"

    def selector_labels(self) -> dict[str, str]:
        return {
            CHART_NAME_LABEL: NATS_CHART,
            CHART_INSTANCE_LABEL: self.release,
            CHART_COMPONENT_LABEL: "nats",
        }


@dataclass(frozen=True)
class RegionSpec:
    names: RegionNames
    replicas: int
    # The public load balancer's hostname (AWS) or IP (Azure).
    endpoint: str
    peers: tuple[Gateway, ...]
    server_name_prefix: str
    jetstream: bool
    storage_class: str
    storage_size: str
    resources: Resources = Resources()
    gateway_port: int = GATEWAY_PORT
    # The nodes span availability zones; without them (an Azure region like westus) the
    # servers are spread over hosts only.
    zonal: bool = True
    # How Prometheus finds the exporter sidecar (infra/monitoring.py).
    scraping: Scraping = field(default_factory=Scraping)


def host_port(host: str, port: int) -> str:
    """`host:port`, with brackets around an IPv6 address."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def gateway_url(endpoint: str, port: int = GATEWAY_PORT) -> str:
    return f"tls://{host_port(endpoint, port)}"


def client_url(endpoint: str, port: int = CLIENT_PORT) -> str:
    return f"tls://{host_port(endpoint, port)}"


def gateways(spec: RegionSpec) -> list[dict[str, Any]]:
    """This region first, then its peers. A region only needs the peers deployed before it:
    a gateway that connects in is answered by a connection back, so the first region never
    has to be told about the later ones."""
    own = Gateway(spec.names.cluster, gateway_url(spec.endpoint, spec.gateway_port))
    seen: set[str] = set()
    listed: list[dict[str, Any]] = []
    for gateway in (own, *spec.peers):
        if gateway.name in seen:
            continue
        seen.add(gateway.name)
        listed.append({"name": gateway.name, "urls": [gateway.url]})
    return listed


def chart_values(spec: RegionSpec) -> dict[str, Any]:
    """Values for the official NATS chart. TLS everywhere from Kubernetes Secrets referenced by
    name (no key material in values); mTLS with certificate-to-user mapping for clients, and for
    servers on routes and gateways (only the servers' identity is accepted there); the accounts;
    JetStream on PVCs."""
    names = spec.names
    server_tls = {"enabled": True, "secretName": names.server_tls_secret}
    # Routes and gateways: mutual TLS, and the peer's certificate must carry the servers' own
    # subject, so no client certificate of the same CA opens a route or a gateway.
    peers_only = {"tls": {**server_tls, "merge": {"verify_and_map": True}}}
    server_identity = {"authorization": {"user": SERVER_SUBJECT_DN}}
    # The runtime routes file, last in the cluster block so that its `routes`, when an operator
    # set them through the control service, replace the release's own.
    runtime_routes = {INCLUDE_KEY: ROUTES_INCLUDE}
    values: dict[str, Any] = {
        "fullnameOverride": names.cluster,
        "config": {
            "serverNamePrefix": spec.server_name_prefix,
            "cluster": {
                "enabled": True,
                "replicas": spec.replicas,
                **peers_only,
                "merge": {**server_identity, **runtime_routes},
            },
            "gateway": {
                "enabled": True,
                # The runtime gateways file, last in the gateway's TLS block: the keys it pins
                # while an operator cuts a region off (empty otherwise).
                "tls": {
                    **server_tls,
                    "merge": {"verify_and_map": True, INCLUDE_KEY: GATEWAYS_INCLUDE},
                },
                "merge": {
                    "advertise": host_port(spec.endpoint, spec.gateway_port),
                    "gateways": gateways(spec),
                    **server_identity,
                },
            },
            "nats": {"tls": {**server_tls, "merge": {"verify_and_map": True}}},
            "jetstream": {
                "enabled": spec.jetstream,
                "fileStore": {
                    "pvc": {"size": spec.storage_size, "storageClassName": spec.storage_class}
                },
            },
            "merge": {"accounts": accounts_block(), "system_account": SYSTEM_ACCOUNT},
        },
        "tlsCA": {"enabled": True, "secretName": names.ca_secret, "key": CA_SECRET_KEY},
        "container": {
            "resources": {
                "requests": {"cpu": spec.resources.cpu, "memory": spec.resources.memory},
                "limits": {"memory": spec.resources.memory},
            },
            # GOMEMLIMIT keeps the Go heap under the container limit instead of being OOM-killed.
            "env": {"GOMEMLIMIT": _go_mem_limit(spec.resources.memory)},
            "patch": [
                {
                    "op": "add",
                    "path": "/volumeMounts/-",
                    "value": {"name": RUNTIME_VOLUME, "mountPath": f"/etc/{RUNTIME_DIR}"},
                }
            ],
        },
        "podTemplate": {
            # Reloadable changes are reloaded by the chart's config reloader without a restart;
            # the pods roll only when the restart fingerprint (added below) changes.
            "configChecksumAnnotation": False,
            "topologySpreadConstraints": _spread(spec.zonal),
            "patch": [
                {
                    "op": "add",
                    "path": "/spec/volumes/-",
                    "value": {
                        "name": RUNTIME_VOLUME,
                        "configMap": {"name": names.runtime_config_map},
                    },
                }
            ],
        },
        # The JetStream claims are deleted with the StatefulSet, kept on a scale-down.
        "statefulSet": {
            "merge": {"spec": {"persistentVolumeClaimRetentionPolicy": dict(PVC_RETENTION_POLICY)}}
        },
        "podDisruptionBudget": {"enabled": True},
        "service": {"enabled": True},
        "natsBox": {"enabled": False},
        # Server, route, gateway, JetStream and health metrics (infra/monitoring.py).
        "promExporter": exporter_values(spec.scraping, [CHART_INSTANCE_LABEL]),
    }
    return with_restart_fingerprint(values, nats_pod_annotations(spec.scraping))


def with_restart_fingerprint(
    values: dict[str, Any], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    """The values, with the pod annotation that rolls the servers only for a change a reload
    cannot apply (infra.nats_conf.restart_fingerprint), beside `annotations`."""
    fingerprint = restart_fingerprint(render_nats_conf(values))
    template = values["podTemplate"]
    return {
        **values,
        "podTemplate": {
            **template,
            "merge": {
                "metadata": {
                    "annotations": {**(annotations or {}), RESTART_ANNOTATION: fingerprint}
                }
            },
        },
    }


def _spread(zonal: bool) -> dict[str, dict[str, object]]:
    """One server per host, and as even as possible over zones where the nodes have zones."""
    domains = ["topology.kubernetes.io/zone"] if zonal else []
    return {
        domain: {"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}
        for domain in (*domains, "kubernetes.io/hostname")
    }


def _go_mem_limit(memory: str) -> str:
    """90% of a Kubernetes quantity like '2Gi', in MiB."""
    units = {"Mi": 1, "Gi": 1024}
    number, unit = memory[:-2], memory[-2:]
    return f"{int(float(number) * units[unit] * 0.9)}MiB"


def server_name_prefix(cloud: str, region: str) -> str:
    """Server names say where a server runs: `aws-us-east-1-east-0`."""
    return f"{cloud}-{region}-"


def nats_context(
    name: str, client_url: str, ca_pem: str, cert_pem: str, key_pem: str
) -> dict[str, str]:
    """What the `nats` CLI needs for a context, with the PEMs inline (a secret output); the
    context command writes them to files."""
    return {
        "name": name,
        "url": client_url,
        "ca_pem": ca_pem,
        "cert_pem": cert_pem,
        "key_pem": key_pem,
        "description": f"NATS region {name} (admin identity)",
    }
