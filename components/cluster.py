"""Picks the cluster component for the stack's cloud."""

from __future__ import annotations

from components.platform import KubernetesPlatform
from infra.config import StackConfig


def build_cluster(name: str, config: StackConfig) -> KubernetesPlatform:
    """Imports only the stack's own cloud SDK: importing pulumi_aws.ec2 alone costs about a second,
    which an Azure stack should not pay (and the reverse for azure-native)."""
    if config.cloud == "aws":
        from components.eks import EksCluster, EksClusterArgs  # noqa: PLC0415

        return EksCluster(name, EksClusterArgs(config=config))
    from components.aks import AksCluster, AksClusterArgs  # noqa: PLC0415

    return AksCluster(name, AksClusterArgs(config=config))
