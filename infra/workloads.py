"""The application's Kubernetes objects as plain manifests (the API's own field names).

Each workload mounts only its own identity's Secret, runs as a non-root user on a read-only root
filesystem, spreads over zones and hosts, and has requests, limits and probes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.identities import RECORDER_CONSUMER
from infra.jetstream import JetStreamConfig
from infra.monitoring import METRICS_PORT, METRICS_PORT_NAME, REQUESTER_LINGER_SECONDS
from infra.nats_values import CA_SECRET_KEY, CLIENT_PORT, RegionNames

IDENTITY_DIR = "/etc/nats/identity"
HEALTH_FILE = "/tmp/healthy"
DB_NAME = "answers"
DB_USER = "recorder"
DB_PORT = 3306
PASSWORD_KEY = "password"
ROOT_PASSWORD_KEY = "root-password"


@dataclass(frozen=True)
class AppNames:
    names: RegionNames

    @property
    def namespace(self) -> str:
        return self.names.namespace

    def calculator(self, operation: str) -> str:
        return f"calculator-{operation}"

    @property
    def requester(self) -> str:
        return "requester"

    @property
    def recorder(self) -> str:
        return "recorder"

    @property
    def database(self) -> str:
        return "answers-db"

    @property
    def database_secret(self) -> str:
        return "answers-db"


def records_here(jetstream: JetStreamConfig) -> bool:
    """The recorder and its database run where the recorder's consumer is declared: one
    recorder for the supercluster's one `answers` stream."""
    return any(c.name == RECORDER_CONSUMER for c in jetstream.consumers)


def in_cluster_url(names: RegionNames) -> str:
    """The chart's client Service; the server certificate names it at this qualification."""
    return f"tls://{names.service}.{names.namespace}.svc:{CLIENT_PORT}"


def app_labels(app: str, region: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/part-of": "nats-supercluster",
        "nats.io/region": region,
    }


def _spread(labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": labels},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _nats_env(names: RegionNames, region: str) -> list[dict[str, Any]]:
    return [
        {"name": "NATS_URL", "value": in_cluster_url(names)},
        {"name": "NATS_CA_FILE", "value": f"{IDENTITY_DIR}/{CA_SECRET_KEY}"},
        {"name": "NATS_CERT_FILE", "value": f"{IDENTITY_DIR}/tls.crt"},
        {"name": "NATS_KEY_FILE", "value": f"{IDENTITY_DIR}/tls.key"},
        {"name": "REGION", "value": region},
        {"name": "HEALTH_FILE", "value": HEALTH_FILE},
        {"name": "METRICS_PORT", "value": str(METRICS_PORT)},
    ]


def _identity_volume(names: RegionNames, identity: str) -> dict[str, Any]:
    return {
        "name": "identity",
        "secret": {"secretName": names.client_tls_secret(identity), "defaultMode": 0o400},
    }


@dataclass(frozen=True)
class Program:
    """One service program: the identity it runs as, its arguments and environment."""

    identity: str
    args: list[str]
    env: list[dict[str, Any]]
    probed: bool = True


def service_pod(
    names: RegionNames, program: Program, image: str, region: str, labels: dict[str, str]
) -> dict[str, Any]:
    identity, args, env, probed = program.identity, program.args, program.env, program.probed
    container: dict[str, Any] = {
        "name": args[0],
        "image": image,
        "args": args,
        "env": [*_nats_env(names, region), *env],
        "ports": [{"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": _container_security(),
        "volumeMounts": [
            {"name": "identity", "mountPath": IDENTITY_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if probed:
        check = {"exec": {"command": ["python", "-m", "services.health", HEALTH_FILE, "30"]}}
        container["readinessProbe"] = {**check, "periodSeconds": 5, "failureThreshold": 2}
        container["livenessProbe"] = {
            **check,
            "periodSeconds": 15,
            "failureThreshold": 4,
            "initialDelaySeconds": 20,
        }
    return {
        "metadata": {"labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"fsGroup": 10001},
            "topologySpreadConstraints": _spread(labels),
            "containers": [container],
            "volumes": [_identity_volume(names, identity), {"name": "tmp", "emptyDir": {}}],
        },
    }


def calculator_deployment(
    app: AppNames, operation: str, image: str, replicas: int, region: str
) -> dict[str, Any]:
    labels = {**app_labels(app.calculator(operation), region), "nats.io/operation": operation}
    return {
        "metadata": {
            "name": app.calculator(operation),
            "namespace": app.namespace,
            "labels": labels,
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": service_pod(
                app.names,
                Program("calculator", ["calculator"], [{"name": "OPERATION", "value": operation}]),
                image,
                region,
                labels,
            ),
        },
    }


def requester_job(
    app: AppNames, image: str, requests: int, concurrency: int, region: str
) -> dict[str, Any]:
    labels = app_labels(app.requester, region)
    program = Program(
        "requester",
        ["requester"],
        [
            {"name": "REQUESTS", "value": str(requests)},
            {"name": "CONCURRENCY", "value": str(concurrency)},
            {"name": "METRICS_LINGER_SECONDS", "value": str(REQUESTER_LINGER_SECONDS)},
        ],
        probed=False,
    )
    pod = service_pod(app.names, program, image, region, labels)
    pod["spec"]["restartPolicy"] = "Never"
    return {
        "metadata": {"namespace": app.namespace, "labels": labels},
        "spec": {"backoffLimit": 3, "ttlSecondsAfterFinished": 86_400, "template": pod},
    }


def recorder_deployment(app: AppNames, image: str, region: str) -> dict[str, Any]:
    labels = app_labels(app.recorder, region)
    secret = app.database_secret
    env: list[dict[str, Any]] = [
        {"name": "DB_HOST", "value": f"{app.database}.{app.namespace}.svc"},
        {"name": "DB_PORT", "value": str(DB_PORT)},
        {"name": "DB_USER", "value": DB_USER},
        {"name": "DB_NAME", "value": DB_NAME},
        {
            "name": "DB_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": secret, "key": PASSWORD_KEY}},
        },
    ]
    return {
        "metadata": {"name": app.recorder, "namespace": app.namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": service_pod(
                app.names, Program("recorder", ["recorder"], env), image, region, labels
            ),
        },
    }


def database_statefulset(
    app: AppNames, image: str, storage_class: Any, storage_size: str, region: str
) -> dict[str, Any]:
    """The official MySQL image with a PVC; credentials from the generated Secret.
    `storage_class` is a name, or a value of the caller's that resolves to one."""
    labels = app_labels(app.database, region)
    secret = app.database_secret

    def from_secret(key: str) -> dict[str, Any]:
        return {"valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    ping = {
        "exec": {
            "command": ["sh", "-c", 'mysqladmin ping -h 127.0.0.1 -uroot -p"$MYSQL_ROOT_PASSWORD"']
        }
    }
    return {
        "metadata": {"name": app.database, "namespace": app.namespace, "labels": labels},
        "spec": {
            "serviceName": app.database,
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"fsGroup": 999},
                    "containers": [
                        {
                            "name": "mysql",
                            "image": image,
                            "ports": [{"name": "mysql", "containerPort": DB_PORT}],
                            "env": [
                                {"name": "MYSQL_DATABASE", "value": DB_NAME},
                                {"name": "MYSQL_USER", "value": DB_USER},
                                {"name": "MYSQL_PASSWORD", **from_secret(PASSWORD_KEY)},
                                {"name": "MYSQL_ROOT_PASSWORD", **from_secret(ROOT_PASSWORD_KEY)},
                            ],
                            "resources": {
                                "requests": {"cpu": "250m", "memory": "512Mi"},
                                "limits": {"memory": "1Gi"},
                            },
                            "readinessProbe": {**ping, "periodSeconds": 10},
                            "livenessProbe": {
                                **ping,
                                "periodSeconds": 20,
                                "initialDelaySeconds": 60,
                            },
                            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}],
                        }
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": storage_class,
                        "resources": {"requests": {"storage": storage_size}},
                    },
                }
            ],
        },
    }


def database_service(app: AppNames, region: str) -> dict[str, Any]:
    labels = app_labels(app.database, region)
    return {
        "metadata": {"name": app.database, "namespace": app.namespace, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [{"name": "mysql", "port": DB_PORT, "targetPort": "mysql"}],
        },
    }
