"""JetStream resources in the whole program under mocks: inputs, dependencies, secrets."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest

from offline.evaluate import Evaluation, EvaluationError, evaluate_stack
from offline.monitor import Registration
from offline.stack_files import PROJECT_DIR, load_stack_config
from tests.conftest import after, depends_on, named

DYNAMIC = "pulumi-python:dynamic:Resource"


def js_object(ev: Evaluation, suffix: str) -> Registration:
    return named(ev, DYNAMIC, suffix)


def test_seed_stream_and_consumer_are_declared_by_east(east: Evaluation) -> None:
    stream = js_object(east, "-jetstream-stream-answers")
    assert stream.inputs["kind"] == "stream"
    assert stream.inputs["subjects"] == ["answers.significant", "answers.throwaway"]
    assert stream.inputs["storage"] == "file"
    assert stream.inputs["max_age"] == 5 * 24 * 3600 * 10**9
    assert stream.inputs["placement"] == {"cluster": "east"}
    assert stream.inputs["num_replicas"] == 3
    consumer = js_object(east, "-jetstream-consumer-answers-recorder")
    assert consumer.inputs["stream"] == "answers"
    assert consumer.inputs["durable_name"] == "recorder"
    assert consumer.inputs["ack_policy"] == "explicit"
    assert depends_on(east, consumer, stream)


def test_jetstream_objects_wait_for_the_release(east: Evaluation) -> None:
    release = named(east, "kubernetes:helm.sh/v3:Release", "-nats-release")
    for registration in east.of_type(DYNAMIC):
        if registration.name.endswith("-volumes-released"):
            continue  # the platform's wait for volumes on destroy (tests/test_volumes.py)
        assert depends_on(east, registration, release), registration.name


def test_connection_goes_through_the_endpoint_as_admin_and_stays_secret(
    east: Evaluation,
) -> None:
    stream = js_object(east, "-jetstream-stream-answers")
    assert "connection" in stream.secret_inputs()
    connection = stream.inputs["connection"]["value"]
    assert connection["url"] == east.outputs["clientUrl"].value
    assert "BEGIN" in connection["key_pem"]
    assert connection["timeout_seconds"] == 600
    assert connection["unreachable_seconds"] == 20  # refresh and delete of a region gone


def test_objects_go_before_their_servers_leave_the_meta_group(east: Evaluation) -> None:
    """Destroy deletes a resource before what it depends on: the application, then the
    JetStream objects, then the region's membership, then the release."""
    membership = named(east, DYNAMIC, "-nats-meta-peers")
    release = named(east, "kubernetes:helm.sh/v3:Release", "-nats-release")
    assert depends_on(east, membership, release)
    for suffix in ("-jetstream-stream-answers", "-jetstream-consumer-answers-recorder"):
        assert depends_on(east, js_object(east, suffix), membership), suffix
    recorder = named(east, "kubernetes:apps/v1:Deployment", "-app-recorder")
    assert depends_on(east, recorder, js_object(east, "-jetstream-stream-answers"))
    connection = membership.inputs["connection"]["value"]
    assert (connection["timeout_seconds"], connection["unreachable_seconds"]) == (600, 20)


def test_the_serialised_provider_carries_no_credentials(east: Evaluation) -> None:
    for registration in east.of_type(DYNAMIC):
        serialised = registration.inputs["__provider"]  # Pulumi marks it secret; it is not
        raw = base64.b64decode(serialised["value"])
        for secret in (b"PRIVATE KEY", b"BEGIN CERTIFICATE", b"tls://"):
            assert secret not in raw, registration.name


def test_outputs_list_what_was_created_with_placement(east: Evaluation, west: Evaluation) -> None:
    assert east.outputs["jetstream"].value == {
        "streams": [
            {
                "name": "answers",
                "subjects": ["answers.significant", "answers.throwaway"],
                "cluster": "east",
                "replicas": 3,
            }
        ],
        "consumers": [{"stream": "answers", "name": "recorder"}],
    }
    assert west.outputs["jetstream"].value == {"streams": [], "consumers": []}
    assert [r.name for r in west.of_type(DYNAMIC)] == ["nats-supercluster-west-nats-meta-peers"]


def test_a_stream_a_peer_already_declares_is_refused(east: Evaluation) -> None:
    config = load_stack_config("west")
    del config["nats-supercluster:jetstream"]  # back to the default: `answers` again
    with pytest.raises(EvaluationError, match="'answers' is already declared by stack 'east'"):
        evaluate_stack("west", config, stack_outputs=after(east))


def test_overlapping_subjects_with_a_peer_are_refused(east: Evaluation) -> None:
    config = load_stack_config("west")
    config["nats-supercluster:jetstream"] = json.dumps(
        {"streams": [{"name": "everything", "subjects": ["answers.>"]}], "consumers": []}
    )
    with pytest.raises(EvaluationError, match=r"overlaps 'answers\.significant'"):
        evaluate_stack("west", config, stack_outputs=after(east))


def test_west_can_place_its_own_stream_and_kv(east: Evaluation) -> None:
    config = load_stack_config("west")
    config["nats-supercluster:jetstream"] = json.dumps(
        {
            "streams": [
                {
                    "name": "audit",
                    "subjects": ["audit.>"],
                    "replicas": 1,
                    "placement": {"cluster": "east"},
                }
            ],
            "consumers": [{"stream": "audit", "name": "archiver", "deliverPolicy": "new"}],
            "kv": [{"bucket": "settings", "history": 5, "ttl": "1h"}],
            "connectTimeoutSeconds": 120,
            "unreachableSeconds": 7,
        }
    )
    ev = evaluate_stack("west", config, stack_outputs=after(east))
    audit = js_object(ev, "-stream-audit")
    assert audit.inputs["placement"] == {"cluster": "east"}
    kv = js_object(ev, "-stream-KV_settings")
    assert kv.inputs["subjects"] == ["$KV.settings.>"]
    assert kv.inputs["max_msgs_per_subject"] == 5
    assert kv.inputs["placement"] == {"cluster": "west"}
    assert kv.inputs["connection"]["value"]["timeout_seconds"] == 120
    membership = named(ev, DYNAMIC, "-nats-meta-peers").inputs["connection"]["value"]
    for connection in (kv.inputs["connection"]["value"], membership):
        assert (connection["timeout_seconds"], connection["unreachable_seconds"]) == (120, 7)
    archiver = js_object(ev, "-consumer-audit-archiver")
    assert archiver.inputs["deliver_policy"] == "new"


@pytest.mark.parametrize(
    ("resource", "provider"),
    [
        ("-jetstream-stream-answers", "components.jetstream JetStreamProvider"),
        ("-nats-meta-peers", "components.meta_peers MetaPeersProvider"),
    ],
)
def test_the_provider_loads_in_a_fresh_interpreter_in_the_project_directory(
    east: Evaluation, resource: str, provider: str
) -> None:
    """Pulumi runs dynamic providers as `python -m pulumi.dynamic` in the program directory,
    which imports the provider's module from there; do the same with what the program sent."""
    serialised = js_object(east, resource).inputs["__provider"]["value"]
    loader = (
        "import base64, sys, dill\n"
        "provider = dill.loads(base64.b64decode(sys.stdin.read()))\n"
        "print(type(provider).__module__, type(provider).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", loader],
        input=serialised,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert result.stdout.split() == provider.split()
