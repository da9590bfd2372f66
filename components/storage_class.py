"""Creates a StorageClass from its pure spec in infra.storage (shared by EKS and AKS)."""

from __future__ import annotations

import pulumi
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs
from pulumi_kubernetes.storage.v1 import StorageClass

from infra.storage import StorageClassSpec


def storage_class(name: str, spec: StorageClassSpec, opts: pulumi.ResourceOptions) -> StorageClass:
    return StorageClass(
        name,
        metadata=ObjectMetaArgs(name=spec.name, annotations=spec.annotations),
        provisioner=spec.provisioner,
        parameters=spec.parameters,
        reclaim_policy=spec.reclaim_policy,
        volume_binding_mode=spec.volume_binding_mode,
        allow_volume_expansion=spec.allow_volume_expansion,
        opts=opts,
    )
