"""The wait for volumes on destroy (infra/volumes.py, infra/kube_client.py,
components/volumes.py): which volumes it waits for, that it ends when they are gone, fails with
their names at the timeout, gives up on a cluster that no longer answers, reads the API with
the kubeconfig shapes the program makes, and sits in the EKS destroy order between the
workloads and the storage driver."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import time
import urllib.error
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.volumes import VolumesReleasedProvider
from infra.kube_client import (
    REQUEST_TIMEOUT_SECONDS,
    CredentialError,
    access_from_kubeconfig,
    list_persistent_volumes,
)
from infra.kubeconfig import eks_kubeconfig
from infra.volumes import (
    PROVISIONER_FINALIZER,
    UnreachableError,
    VolumesLeftError,
    remaining_volumes,
    wait_until_released,
)
from offline.evaluate import Evaluation
from tests.conftest import depends_on, named
from tests.kube_api import TOKEN, ConfigMapServer, configmap_api


def _pv(
    name: str, cls: str = "gp3", phase: str = "Bound", deleting: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "finalizers": [PROVISIONER_FINALIZER]}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T05:00:00Z"
    return {
        "metadata": meta,
        "spec": {
            "storageClassName": cls,
            "persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {"namespace": "nats", "name": f"east-js-{name}"},
        },
        "status": {"phase": phase},
    }


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_only_the_regions_class_counts() -> None:
    listing = {"items": [_pv("b"), _pv("a", phase="Released", deleting=True), _pv("c", "other")]}
    left = remaining_volumes(listing, "gp3")
    assert [v.name for v in left] == ["a", "b"]
    assert left[0].describe() == "a (being deleted, claim nats/east-js-a, reclaimPolicy Delete)"
    assert remaining_volumes({"items": None}, "gp3") == []


def test_the_wait_ends_when_the_driver_deleted_the_volumes() -> None:
    t = FakeTime()
    listings: Iterator[Mapping[str, Any]] = iter(
        [{"items": [_pv("a"), _pv("b")]}, {"items": [_pv("a")]}, {"items": []}]
    )
    result = wait_until_released(lambda: next(listings), "gp3", clock=t.clock, sleep=t.sleep)
    assert (result.unreachable, result.polls, result.waited) == (False, 3, 4.0)


def test_the_timeout_names_what_is_left_and_what_to_do() -> None:
    t = FakeTime()
    with pytest.raises(VolumesLeftError) as raised:
        wait_until_released(
            lambda: {"items": [_pv("pvc-1", phase="Released")]},
            "gp3",
            timeout_seconds=60,
            clock=t.clock,
            sleep=t.sleep,
        )
    message = str(raised.value)
    assert "1 PersistentVolume(s) of StorageClass 'gp3' still exist after 60 s" in message
    assert "pvc-1 (Released, claim nats/east-js-pvc-1, reclaimPolicy Delete)" in message
    assert "csi-provisioner" in message
    assert "pulumi destroy" in message
    assert t.now == 60


def _unreachable() -> Mapping[str, Any]:
    raise UnreachableError("no route")


def test_a_cluster_that_never_answers_is_given_up_on_in_bounded_time() -> None:
    t = FakeTime()
    result = wait_until_released(_unreachable, "gp3", clock=t.clock, sleep=t.sleep)
    assert result.unreachable
    assert 15 <= result.waited <= 17


def test_giving_up_on_a_silent_cluster_takes_under_30_seconds_with_slow_failures() -> None:
    """Each listing that cannot connect may take the client's whole 10 s timeout."""
    t = FakeTime()

    def slow() -> Mapping[str, Any]:
        t.now += REQUEST_TIMEOUT_SECONDS
        raise UnreachableError("timed out")

    result = wait_until_released(slow, "gp3", clock=t.clock, sleep=t.sleep)
    assert result.unreachable
    assert result.waited < 30


def test_a_cluster_that_answered_and_then_stopped_is_waited_for_until_the_timeout() -> None:
    """Once volumes were seen, losing the API is no proof they are gone."""
    t = FakeTime()
    calls: list[int] = []

    def listing() -> Mapping[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            return {"items": [_pv("a")]}
        raise UnreachableError("timed out")

    with pytest.raises(VolumesLeftError, match="a \\(Bound"):
        wait_until_released(listing, "gp3", timeout_seconds=100, clock=t.clock, sleep=t.sleep)
    assert t.now == 100


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, ConfigMapServer, Path]]:
    with configmap_api(tmp_path / "account", {}) as (url, state):
        yield url, state, tmp_path / "account"


def _fake_aws(bin_dir: Path, token: str) -> Path:
    """An `aws` on the PATH that answers `aws eks get-token` with an ExecCredential and records
    its arguments."""
    bin_dir.mkdir()
    log = bin_dir / "args.json"
    script = bin_dir / "aws"
    credential = {
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "status": {"token": token},
    }
    script.write_text(
        "#!/usr/bin/env python3\nimport json, sys\n"
        f"open({str(log)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        f"print({json.dumps(json.dumps(credential))})\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


def _ca_data(account: Path) -> str:
    return base64.b64encode((account / "ca.crt").read_bytes()).decode()


def test_the_eks_kubeconfig_is_read_through_its_exec_plugin(
    api: tuple[str, ConfigMapServer, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state, account = api
    state.volumes = [_pv("pvc-1")]
    log = _fake_aws(tmp_path / "bin", TOKEN)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    kubeconfig = eks_kubeconfig("nats-supercluster-east", url, _ca_data(account), "us-east-1")
    listing = list_persistent_volumes(access_from_kubeconfig(kubeconfig))
    assert [v.name for v in remaining_volumes(listing, "gp3")] == ["pvc-1"]
    assert json.loads(log.read_text()) == [
        "eks",
        "get-token",
        "--cluster-name",
        "nats-supercluster-east",
        "--region",
        "us-east-1",
        "--output",
        "json",
    ]
    assert state.callers == [f"Bearer {TOKEN}"]


def test_a_wrong_token_is_an_error_not_an_absent_cluster(
    api: tuple[str, ConfigMapServer, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _, account = api
    _fake_aws(tmp_path / "bin", "not-the-token")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    access = access_from_kubeconfig(eks_kubeconfig("c", url, _ca_data(account), "us-east-1"))
    with pytest.raises(urllib.error.HTTPError, match="401"):
        list_persistent_volumes(access)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(CredentialError, match="'aws'"):
        list_persistent_volumes(access)


def _aks_kubeconfig(url: str, account: Path) -> str:
    """The shape of AKS's user credentials (YAML, a client certificate and key)."""

    def b64(name: str) -> str:
        return base64.b64encode((account / name).read_bytes()).decode()

    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "aks",
                    "cluster": {"server": url, "certificate-authority-data": b64("ca.crt")},
                }
            ],
            "users": [
                {
                    "name": "clusterUser_rg_aks",
                    "user": {
                        "client-certificate-data": b64("tls.crt"),
                        "client-key-data": b64("tls.key"),
                    },
                }
            ],
            "contexts": [
                {"name": "aks", "context": {"cluster": "aks", "user": "clusterUser_rg_aks"}}
            ],
            "current-context": "aks",
        }
    )


def test_the_aks_kubeconfig_is_read_with_its_client_certificate(
    api: tuple[str, ConfigMapServer, Path],
) -> None:
    url, state, account = api
    state.volumes = [_pv("disk-1", "jetstream")]
    listing = list_persistent_volumes(access_from_kubeconfig(_aks_kubeconfig(url, account)))
    assert [v.name for v in remaining_volumes(listing, "jetstream")] == ["disk-1"]
    assert "commonName" in state.callers[0]
    assert not state.callers[0].startswith("Bearer")


def _provider_props(url: str, account: Path, timeout: int) -> dict[str, Any]:
    return {
        "kubeconfig": _aks_kubeconfig(url, account),
        "storageClass": "gp3",
        "timeoutSeconds": timeout,
    }


def test_the_provider_delete_returns_once_the_volumes_are_gone(
    api: tuple[str, ConfigMapServer, Path],
) -> None:
    """The driver deletes the last volume about a second into the wait."""
    url, state, account = api
    state.volumes = [_pv("pvc-1"), _pv("other", "jetstream")]

    def driver() -> None:
        time.sleep(1)
        with state.lock:
            state.volumes = [v for v in state.volumes if v["metadata"]["name"] != "pvc-1"]

    threading.Thread(target=driver, daemon=True).start()
    started = time.monotonic()
    VolumesReleasedProvider().delete("gp3", _provider_props(url, account, 30))
    assert time.monotonic() - started < 10
    assert state.volume_lists == 2


def test_the_provider_delete_fails_naming_the_volumes_left(
    api: tuple[str, ConfigMapServer, Path],
) -> None:
    url, state, account = api
    state.volumes = [_pv("pvc-stuck", phase="Released", deleting=True)]
    with pytest.raises(VolumesLeftError, match="pvc-stuck \\(being deleted"):
        VolumesReleasedProvider().delete("gp3", _provider_props(url, account, 1))


def test_create_and_update_touch_nothing() -> None:
    provider = VolumesReleasedProvider()
    props = {"kubeconfig": "{}", "storageClass": "gp3", "timeoutSeconds": 600}
    assert provider.create(props).id == "gp3"
    assert not provider.diff("gp3", props, dict(props)).changes
    assert provider.diff("gp3", props, {**props, "timeoutSeconds": 60}).changes


WAIT = "pulumi-python:dynamic:Resource"


def test_on_eks_the_wait_sits_between_the_workloads_and_the_driver(east: Evaluation) -> None:
    """Everything made on the cluster depends on the wait (deleted before it); the wait depends
    on the EBS CSI add-on, the StorageClass and the nodes (deleted after it)."""
    wait = named(east, WAIT, "-volumes-released")
    addon = named(east, "aws:eks/addon:Addon", "-ebs-csi")
    gp3 = named(east, "kubernetes:storage.k8s.io/v1:StorageClass", "-gp3")
    nodes = named(east, "aws:eks/nodeGroup:NodeGroup", "-nodes")
    for dependency in (addon, gp3, nodes):
        assert depends_on(east, wait, dependency), dependency.name
        assert not depends_on(east, dependency, wait), dependency.name
    release = named(east, "kubernetes:helm.sh/v3:Release", "-nats-release")
    namespace = named(east, "kubernetes:core/v1:Namespace", "-nats-ns")
    assert depends_on(east, release, wait)
    assert depends_on(east, namespace, wait)
    assert wait.inputs["storageClass"] == "gp3"
    assert "kubeconfig" in wait.secret_inputs()


def test_on_aks_there_is_no_wait(west: Evaluation) -> None:
    """AKS deletes the node resource group, and the disks in it, with the cluster
    (tests/test_volume_facts.py)."""
    assert not [r for r in west.of_type(WAIT) if r.name.endswith("-volumes-released")]
