"""StorageClasses for JetStream: zonal SSD volumes, created where the pod lands, expandable."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StorageClassSpec:
    name: str
    provisioner: str
    parameters: dict[str, str]
    default: bool
    # Volumes must be created in the zone the scheduler picks for the pod, or a NATS server can be
    # bound to a disk in another zone and never start.
    volume_binding_mode: str = "WaitForFirstConsumer"
    allow_volume_expansion: bool = True
    # Delete, so `pulumi destroy` leaves no billed disks behind; JetStream data is replicated.
    reclaim_policy: str = "Delete"
    annotations: dict[str, str] = field(default_factory=dict)


DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def eks_gp3() -> StorageClassSpec:
    """EKS creates no default StorageClass; this one is encrypted gp3 through the EBS CSI driver."""
    return StorageClassSpec(
        name="gp3",
        provisioner="ebs.csi.aws.com",
        parameters={"type": "gp3", "encrypted": "true", "fsType": "ext4"},
        default=True,
        annotations={DEFAULT_CLASS_ANNOTATION: "true"},
    )


def aks_jetstream(disk_sku: str) -> StorageClassSpec:
    """A premium (or configured) Azure managed disk class for JetStream, not the cluster default."""
    return StorageClassSpec(
        name="jetstream",
        provisioner="disk.csi.azure.com",
        parameters={"skuName": disk_sku, "cachingMode": "None", "fsType": "ext4"},
        default=False,
    )


# The servers' claims go with their StatefulSet, so `pulumi destroy` (which deletes the release)
# leaves no claim and hence no volume behind; a scale-down keeps the departed servers' claims,
# so scaling back up finds their data. The StatefulSet controller makes the set the claims'
# owner for whenDeleted=Delete, and the garbage collector deletes them with it.
PVC_RETENTION_POLICY = {"whenDeleted": "Delete", "whenScaled": "Retain"}
# The field is GA (StatefulSetAutoDeletePVC) from Kubernetes 1.32; the config refuses older.
PVC_RETENTION_MIN_KUBERNETES = "1.32"


def minor(version: str) -> int:
    """The minor number of a `1.NN` Kubernetes version."""
    return int(version.split(".")[1])
