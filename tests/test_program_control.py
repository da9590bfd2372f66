"""The control service in the clouds, under mocks: the runtime ConfigMap made once and then left
to the service, the service account's one permission, the Deployment and the server keys it
may pin when it cuts a region off."""

from __future__ import annotations

import hashlib
import json

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from offline.evaluate import Evaluation
from tests.conftest import depends_on, named
from tests.test_program_region import sans, server_certificate

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RELEASE = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SECRET = "kubernetes:core/v1:Secret"


def test_the_runtime_config_map_is_made_once_and_never_reverted(east: Evaluation) -> None:
    runtime = named(east, CONFIG_MAP, "-nats-runtime")
    assert runtime.inputs["metadata"]["name"] == "east-runtime"
    # A later `pulumi up` compares nothing in its data: the control service's changes stay.
    assert runtime.ignore_changes == ["data"]
    data = runtime.inputs["data"]
    assert (data["routes.conf"], data["gateways.conf"]) == ("", "")  # the release's own apply
    assert json.loads(data["state.json"]) == {
        "routes": None,
        "cut_gateways": [],
        "pinned": [],
        "history": [],
    }
    release = named(east, RELEASE, "-nats-release")
    assert depends_on(east, release, runtime)  # mounted by the release's pods


def test_the_control_service_may_touch_that_one_config_map_and_nothing_else(
    east: Evaluation,
) -> None:
    (role,) = east.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
    assert role.inputs["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["east-runtime"],
            "verbs": ["get", "update"],
        }
    ]
    (binding,) = east.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    assert binding.inputs["roleRef"]["name"] == role.inputs["metadata"]["name"]
    assert binding.inputs["subjects"] == [
        {"kind": "ServiceAccount", "name": "east-control", "namespace": "nats"}
    ]
    control = named(east, DEPLOYMENT, "-control-service")
    pod = control.inputs["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "east-control"
    (container,) = pod["containers"]
    assert container["args"] == ["control"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CLUSTER"] == "east"
    assert env["RUNTIME_STORE"] == "configmap:nats/east-runtime"
    assert env["RELOAD"] == "reloader"
    # Each server itself, by a name its certificate carries (services/server_links.py).
    assert env["SERVER_URLS"] == "tls://{pod}.east-headless.nats.svc:4222"
    # The release's servers, so a put expects every one whether it answers or not: a scale
    # changes this, and so restarts the service with the new list.
    assert json.loads(env["SERVERS"]) == {f"aws-us-east-1-east-{i}": 6222 for i in range(3)}
    assert env["NAMESPACE"] == "nats"
    dns, _ = sans(server_certificate(east))
    assert "*.east-headless.nats.svc" in dns
    secrets = {
        v["secret"]["secretName"]: [i["key"] for i in v["secret"].get("items", [])]
        for v in pod["volumes"]
        if "secret" in v
    }
    # its own identity whole; of the servers' Secrets only what is public, to see whether the
    # servers loaded them (tests/test_reloader_facts.py)
    assert secrets == {
        "nats-client-control": [],
        "east-server-tls": ["tls.crt"],
        "nats-ca": ["ca.crt"],
    }
    assert env["WATCH_CONFIG"] == "/etc/nats-config/nats.conf"
    assert depends_on(east, control, named(east, RELEASE, "-nats-release"))


def test_a_region_without_the_services_image_runs_no_control_service(
    deployed: dict[str, Evaluation],
) -> None:
    central = deployed["central"]  # app disabled, no image: the ConfigMap, but no service
    assert named(central, CONFIG_MAP, "-nats-runtime")
    assert [r for r in central.of_type(DEPLOYMENT) if r.name.endswith("-control-service")] == []


def test_the_control_service_knows_the_keys_the_servers_present_on_their_gateways(
    east: Evaluation, west: Evaluation
) -> None:
    """West's service may pin east's servers and its own (east, deployed first, knew only
    itself): each pin is the SHA-256 of the key in the certificate that region's servers
    present, as nats-server computes it (auth.go matchesPinnedCert)."""
    presented = {ev.outputs["natsClusterName"].value: _server_key_pin(ev) for ev in (east, west)}
    assert east.outputs["gatewayPin"].value == presented["east"]
    assert west.outputs["gatewayPin"].value == presented["west"]
    assert _pins(east) == {"east": [presented["east"]]}
    assert _pins(west) == {"east": [presented["east"]], "west": [presented["west"]]}


def _pins(evaluation: Evaluation) -> dict[str, list[str]]:
    control = named(evaluation, DEPLOYMENT, "-control-service")
    (container,) = control.inputs["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    pins: dict[str, list[str]] = json.loads(env["GATEWAY_PINS"])
    return pins


def _server_key_pin(evaluation: Evaluation) -> str:
    secret = named(evaluation, SECRET, "-nats-pki-server")
    data = secret.inputs["stringData"]["value"]  # a secret input
    cert = x509.load_pem_x509_certificate(data["tls.crt"].encode())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()
