"""On destroy, waits until the storage driver has deleted every volume of the region's
StorageClass (infra/volumes.py), between the workloads on the cluster, which depend on it and
are deleted first, and the driver, the class and the nodes, which it depends on and which are
deleted after it. Creating or updating it does nothing.

A Pulumi dynamic provider like components/meta_peers.py: no credentials in the provider (the
kubeconfig is a secret input) and imports inside its methods.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

_INPUTS = ("kubeconfig", "storageClass", "timeoutSeconds")


def _wait(props: dict[str, Any]) -> None:
    from infra.kube_client import access_from_kubeconfig, list_persistent_volumes  # noqa: PLC0415
    from infra.volumes import wait_until_released  # noqa: PLC0415

    access = access_from_kubeconfig(props["kubeconfig"])
    storage_class = str(props["storageClass"])
    result = wait_until_released(
        lambda: list_persistent_volumes(access),
        storage_class,
        timeout_seconds=float(props["timeoutSeconds"]),
    )
    if result.unreachable:
        # The cluster is gone already; its disks are out of any driver's reach. Say so.
        print(
            f"warning: the Kubernetes API did not answer for {result.waited:.0f} s; not "
            f"waiting for volumes of StorageClass {storage_class!r} (look for leftover disks "
            "in the cloud console)",
            file=sys.stderr,
        )


class VolumesReleasedProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=str(props["storageClass"]), outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only recorded: what the guard waits for is read at delete, from the last state.
        return DiffResult(changes=any(olds.get(k) != news.get(k) for k in _INPUTS))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=news)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        _wait(props)


@dataclass(frozen=True)
class VolumesReleasedArgs:
    kubeconfig: pulumi.Input[str]
    storage_class: pulumi.Input[str]
    timeout_seconds: int
    # The driver, the class and the nodes the driver runs on: deleted after this waited.
    outlived_by: Sequence[pulumi.Resource]


class VolumesReleased(Resource):
    def __init__(
        self, name: str, args: VolumesReleasedArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            VolumesReleasedProvider(),
            name,
            {
                "kubeconfig": pulumi.Output.secret(args.kubeconfig),
                "storageClass": args.storage_class,
                "timeoutSeconds": args.timeout_seconds,
            },
            pulumi.ResourceOptions.merge(
                opts,
                pulumi.ResourceOptions(
                    depends_on=list(args.outlived_by), additional_secret_outputs=["kubeconfig"]
                ),
            ),
        )
