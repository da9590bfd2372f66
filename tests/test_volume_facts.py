"""No volume outlives its stack: the upstream facts behind the PVC retention policy and the wait
for volumes on destroy, with their sources, and the program checked against them.

Sources (paraphrased):
- NATS chart, nats-io/k8s helm/charts/nats at chart version 2.14.2 (commit 957650f):
  `statefulSet.merge` is merged into the whole StatefulSet object (values.yaml "merge or patch
  the stateful set"; templates render files/stateful-set/stateful-set.yaml through
  nats.loadMergePatch), so `spec.persistentVolumeClaimRetentionPolicy` can be set there; the
  real chart's rendering is in tests/golden/*.stateful-set.yaml (tools/chart_golden.py).
- Kubernetes: `persistentVolumeClaimRetentionPolicy` (feature StatefulSetAutoDeletePVC) is GA
  in v1.32 (KEP-1847; kubernetes CHANGELOG-1.32). pkg/controller/statefulset/
  stateful_set_utils.go (isClaimOwnerUpToDate, stored copy at commit 0fe831c3): with
  whenDeleted=Delete and whenScaled=Retain the claim's only owner reference is the StatefulSet,
  so the garbage collector deletes the claims when the set is deleted.
- kubernetes-csi/external-provisioner v6.3.0, the csi-provisioner the newest aws-ebs-csi-driver
  ships (kubernetes-sigs/aws-ebs-csi-driver v1.64.0 charts/aws-ebs-csi-driver/values.yaml:
  sidecars.provisioner.image.tag v6.3.0-eksbuild.4): cmd/csi-provisioner/csi-provisioner.go:410
  turns on AddFinalizer; vendor/sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller/
  controller.go:89 names the finalizer `external-provisioner.volume.kubernetes.io/finalizer`,
  added to a bound volume whose reclaim policy is Delete (line 1210) and removed only after the
  driver deleted the disk (line 1666). A PersistentVolume thus exists until its EBS volume is
  gone, and only a running driver can make it go.
- pulumi/pulumi-kubernetes provider/pkg/await/await.go Deletion (mirrored at
  v4.32.0-27-g94977969; the program pins 4.34.2): a delete returns once the object is gone, so
  the namespace (with the MySQL claim, which has no retention policy) is gone before anything
  it depends on is deleted.
- AKS FAQ (learn.microsoft.com/azure/aks/faq, "Why are two resource groups created with AKS?"):
  the node resource group holds the cluster's infrastructure, storage included, and AKS deletes
  it with the cluster. The Azure disk CSI driver creates a dynamically provisioned disk in that
  group unless the StorageClass names another `resourceGroup` (azuredisk-csi-driver
  docs/driver-parameters.md); the program's class names none, so deleting the cluster deletes
  the disks, and no wait is needed on Azure.
"""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from infra.config import ConfigError, parse_stack_config
from infra.nats_values import chart_values
from infra.storage import PVC_RETENTION_MIN_KUBERNETES, PVC_RETENTION_POLICY, aks_jetstream
from tests.chart_cases import CHART_CASES

GOLDEN = Path(__file__).parent / "golden"
P = "nats-supercluster"
FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"


@pytest.mark.parametrize("case", sorted(CHART_CASES))
def test_the_real_chart_puts_the_retention_policy_on_the_stateful_set(case: str) -> None:
    assert chart_values(CHART_CASES[case])["statefulSet"]["merge"]["spec"] == {
        "persistentVolumeClaimRetentionPolicy": PVC_RETENTION_POLICY
    }
    rendered = yaml.safe_load((GOLDEN / f"{case}.stateful-set.yaml").read_text())
    assert rendered["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Delete",
        "whenScaled": "Retain",
    }
    pod = json.loads((GOLDEN / f"{case}.pod.json").read_text())
    assert pod["pvc_retention_policy"] == PVC_RETENTION_POLICY
    assert pod["claim_templates"] == ([f"{case}-js"] if CHART_CASES[case].jetstream else [])


@pytest.mark.parametrize("version", ["1.32.0", "1.36.0"])
def test_the_rendered_stateful_set_is_valid_kubernetes(version: str) -> None:
    """Strict schema validation of the real chart's StatefulSet at the oldest Kubernetes the
    config allows and a current one; the schema knows the field (strict refuses an unknown key
    in it)."""
    rendered = yaml.safe_load((GOLDEN / "east.stateful-set.yaml").read_text())
    rendered["metadata"]["namespace"] = "nats"
    kubernetes_validate.validate(rendered, version, strict=True)
    rendered["spec"]["persistentVolumeClaimRetentionPolicy"]["whenRemoved"] = "Delete"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(rendered, version, strict=True)


def test_a_kubernetes_version_without_the_retention_policy_is_refused() -> None:
    """1.31 lies in the version tables (infra/cloud_facts.py); on a day it was still supported
    the config refuses it for the retention policy, naming the reason."""
    from datetime import date  # noqa: PLC0415

    raw = {
        f"{P}:cloud": "aws",
        f"{P}:region": "us-east-1",
        f"{P}:app": '{"enabled": false}',
        f"{P}:kubernetesVersion": "1.31",
    }
    with pytest.raises(ConfigError, match="persistentVolumeClaimRetentionPolicy"):
        parse_stack_config(raw, project=P, stack="east", today=date(2025, 6, 1))
    ok = {**raw, f"{P}:kubernetesVersion": PVC_RETENTION_MIN_KUBERNETES}
    assert parse_stack_config(ok, project=P, stack="east", today=date(2025, 6, 1))


def test_azure_disks_live_in_the_node_resource_group() -> None:
    """No `resourceGroup` parameter: the driver puts the disks in the node resource group,
    which AKS deletes with the cluster (module docstring)."""
    spec = aks_jetstream("Premium_LRS")
    assert spec.provisioner == "disk.csi.azure.com"
    assert "resourceGroup" not in spec.parameters
    assert spec.reclaim_policy == "Delete"
