"""What every cluster component hands to the rest of the program, whichever cloud it runs on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pulumi
from pulumi_kubernetes import Provider as KubernetesProvider


class KubernetesPlatform(Protocol):
    """A ready cluster: a provider to create objects with, and the resources those objects must
    depend on so that `pulumi destroy` removes them before the nodes and add-ons they run on."""

    provider: KubernetesProvider
    kubeconfig: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    storage_class_name: pulumi.Output[str]
    workload_dependencies: Sequence[pulumi.Resource]
    # What the public LoadBalancer Service needs from the cloud beyond the cluster: annotations
    # (Azure: the static IP to take) and the resources they name, which must outlive the Service.
    lb_annotations: pulumi.Output[dict[str, str]]
    lb_dependencies: Sequence[pulumi.Resource]
