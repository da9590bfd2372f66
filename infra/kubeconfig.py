"""Kubeconfigs for the Kubernetes provider and for humans, built from the cluster's outputs."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any


def eks_kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token`, so it holds no long-lived
    credential: whoever uses it needs the aws CLI and an identity with an EKS access entry."""
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": [
                "eks",
                "get-token",
                "--cluster-name",
                cluster_name,
                "--region",
                region,
                "--output",
                "json",
            ],
            "interactiveMode": "Never",
        }
    }
    return _single_context(cluster_name, endpoint, ca_data, user)


def _single_context(name: str, server: str, ca_data: str, user: dict[str, Any]) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    return json.dumps(config, indent=2)


def aks_kubeconfig(kubeconfigs: Sequence[Any]) -> str:
    """AKS returns kubeconfigs base64-encoded; take the first (the user credential)."""
    if not kubeconfigs:
        raise ValueError("AKS returned no kubeconfig for the cluster user")
    first = kubeconfigs[0]
    value = first["value"] if isinstance(first, dict) else first.value
    return base64.b64decode(value).decode()
