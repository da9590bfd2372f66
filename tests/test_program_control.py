"""The control service in the clouds, under mocks: the runtime ConfigMap made once and then left
to the service, the service account's one permission, the Deployment."""

from __future__ import annotations

import json

from offline.evaluate import Evaluation
from tests.conftest import depends_on, named

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RELEASE = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def test_the_runtime_config_map_is_made_once_and_never_reverted(east: Evaluation) -> None:
    runtime = named(east, CONFIG_MAP, "-nats-runtime")
    assert runtime.inputs["metadata"]["name"] == "east-runtime"
    # A later `pulumi up` compares nothing in its data: the control service's changes stay.
    assert runtime.ignore_changes == ["data"]
    assert runtime.inputs["data"]["routes.conf"] == ""  # the release's own routes apply
    assert json.loads(runtime.inputs["data"]["state.json"]) == {"routes": None, "history": []}
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
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {"nats-client-control"}  # only its own identity
    assert depends_on(east, control, named(east, RELEASE, "-nats-release"))


def test_a_region_without_the_services_image_runs_no_control_service(
    deployed: dict[str, Evaluation],
) -> None:
    central = deployed["central"]  # app disabled, no image: the ConfigMap, but no service
    assert named(central, CONFIG_MAP, "-nats-runtime")
    assert [r for r in central.of_type(DEPLOYMENT) if r.name.endswith("-control-service")] == []
