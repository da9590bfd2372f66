"""The application's workloads under mocks, per region."""

from __future__ import annotations

import json
from typing import Any

from offline.evaluate import Evaluation, evaluate_stack
from offline.monitor import Registration
from offline.stack_files import load_stack_config
from tests.conftest import after, depends_on, named

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
IMAGE = "ghcr.io/nats-supercluster/nats-supercluster/services:main"


def container(workload: Registration) -> dict[str, Any]:
    (only,) = workload.inputs["spec"]["template"]["spec"]["containers"]
    return dict(only)


def mounted_secrets(workload: Registration) -> set[str]:
    volumes = workload.inputs["spec"]["template"]["spec"]["volumes"]
    return {v["secret"]["secretName"] for v in volumes if "secret" in v}


def env(workload: Registration) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(workload)["env"]}


def test_four_calculators_per_region_with_their_own_identity(
    deployed: dict[str, Evaluation],
) -> None:
    for stack in ("east", "west"):
        ev = deployed[stack]
        calculators = [r for r in ev.of_type(DEPLOYMENT) if "-calculator-" in r.name]
        assert sorted(env(c)["OPERATION"] for c in calculators) == [
            "add",
            "divide",
            "multiply",
            "subtract",
        ]
        for calculator in calculators:
            assert calculator.inputs["spec"]["replicas"] == 3
            assert container(calculator)["image"] == IMAGE
            assert container(calculator)["args"] == ["calculator"]
            assert mounted_secrets(calculator) == {"nats-client-calculator"}
            assert env(calculator)["NATS_URL"] == f"tls://{stack}.nats.svc:4222"
            assert env(calculator)["REGION"] == stack
            security = container(calculator)["securityContext"]
            assert security["runAsNonRoot"] is True
            assert security["readOnlyRootFilesystem"] is True
            assert "livenessProbe" in container(calculator)
            keys = {
                c["topologyKey"]
                for c in calculator.inputs["spec"]["template"]["spec"]["topologySpreadConstraints"]
            }
            assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def test_recorder_and_database_run_where_the_consumer_is_declared(
    east: Evaluation,
    west: Evaluation,
) -> None:
    recorder = named(east, DEPLOYMENT, "-app-recorder")
    assert mounted_secrets(recorder) == {"nats-client-recorder"}
    assert env(recorder)["DB_PASSWORD"] == {
        "secretKeyRef": {"name": "answers-db", "key": "password"}
    }
    assert env(recorder)["DB_HOST"] == "answers-db.nats.svc"
    database = east.one("kubernetes:apps/v1:StatefulSet")
    (mysql,) = database.inputs["spec"]["template"]["spec"]["containers"]
    assert mysql["image"] == "mysql:8.4"
    (claim,) = database.inputs["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "gp3"
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert depends_on(east, recorder, database)
    assert [r for r in west.of_type(DEPLOYMENT) if r.name.endswith("-recorder")] == []
    assert west.of_type("kubernetes:apps/v1:StatefulSet") == []


def test_database_passwords_are_generated_and_secret(east: Evaluation) -> None:
    passwords = east.of_type("random:index/randomPassword:RandomPassword")
    assert len(passwords) == 2
    assert all(p.inputs["length"] == 32 for p in passwords)
    secret = named(east, "kubernetes:core/v1:Secret", "-app-db")
    assert "stringData" in secret.secret_inputs()
    data = secret.inputs["stringData"]["value"]
    assert set(data) == {"password", "root-password"}
    assert data["password"] != data["root-password"]
    assert all(len(v) == 32 for v in data.values())


def test_the_requester_runs_after_the_calculators_and_jetstream(east: Evaluation) -> None:
    job = east.one("kubernetes:batch/v1:Job")
    assert mounted_secrets(job) == {"nats-client-requester"}
    assert env(job)["REQUESTS"] == "1000"
    for calculator in (r for r in east.of_type(DEPLOYMENT) if "-calculator-" in r.name):
        assert depends_on(east, job, calculator)
    stream = named(east, "pulumi-python:dynamic:Resource", "-stream-answers")
    assert depends_on(east, job, stream)
    release = named(east, "kubernetes:helm.sh/v3:Release", "-nats-release")
    for workload in (*east.of_type(DEPLOYMENT), job):
        if "-lbc-" not in workload.name:
            assert depends_on(east, workload, release), workload.name


def test_the_tie_breaker_region_runs_no_application(deployed: dict[str, Evaluation]) -> None:
    central = deployed["central"]
    assert central.of_type("nats-supercluster:app:Application") == []
    assert central.of_type(DEPLOYMENT) == []


def test_replicas_and_load_come_from_config(east: Evaluation) -> None:
    config = load_stack_config("west")
    config["nats-supercluster:app"] = json.dumps(
        {
            "image": "registry.example.com/team/services:1.2.3",
            "calculatorReplicas": 5,
            "requests": 50,
            "concurrency": 5,
        }
    )
    ev = evaluate_stack("west", config, stack_outputs=after(east))
    calculator = named(ev, DEPLOYMENT, "-calculator-add")
    assert calculator.inputs["spec"]["replicas"] == 5
    assert container(calculator)["image"] == "registry.example.com/team/services:1.2.3"
    assert env(ev.one("kubernetes:batch/v1:Job"))["CONCURRENCY"] == "5"
