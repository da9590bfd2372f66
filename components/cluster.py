"""Picks the cluster component for the stack's cloud."""

from __future__ import annotations

from components.aks import AksCluster, AksClusterArgs
from components.eks import EksCluster, EksClusterArgs
from components.platform import KubernetesPlatform
from infra.config import StackConfig


def build_cluster(name: str, config: StackConfig) -> KubernetesPlatform:
    if config.cloud == "aws":
        return EksCluster(name, EksClusterArgs(config=config))
    return AksCluster(name, AksClusterArgs(config=config))
