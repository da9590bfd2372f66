"""Pinned versions of everything the program installs into a cluster. Upgrade here, on purpose."""

from __future__ import annotations

AWS_LB_CONTROLLER_CHART = "aws-load-balancer-controller"
AWS_LB_CONTROLLER_CHART_VERSION = "1.13.0"
AWS_LB_CONTROLLER_REPO = "https://aws.github.io/eks-charts"

EBS_CSI_ADDON = "aws-ebs-csi-driver"
EKS_NODE_AMI_TYPE = "AL2023_x86_64_STANDARD"
AKS_NODE_OS_SKU = "AzureLinux"
