"""Creates a StorageClass from its pure spec in infra.storage (shared by EKS and AKS)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.storage import StorageClassSpec


def storage_class(
    name: str, spec: StorageClassSpec, opts: pulumi.ResourceOptions
) -> k8s.storage.v1.StorageClass:
    return k8s.storage.v1.StorageClass(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=spec.name, annotations=spec.annotations),
        provisioner=spec.provisioner,
        parameters=spec.parameters,
        reclaim_policy=spec.reclaim_policy,
        volume_binding_mode=spec.volume_binding_mode,
        allow_volume_expansion=spec.allow_volume_expansion,
        opts=opts,
    )
