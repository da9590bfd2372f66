"""The region's monitoring objects (infra/monitoring.py decides them): the services'
PodMonitor and the PrometheusRule where the cluster runs the Prometheus operator, otherwise the
rules file as a ConfigMap; the Grafana dashboards as ConfigMaps. The NATS servers' own scraping
(the exporter sidecar, its PodMonitor or annotations) is in the chart values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_kubernetes import Provider as KubernetesProvider
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.core.v1 import ConfigMap

from infra.config import StackConfig
from infra.monitoring import MONITORING_API, monitoring_objects


@dataclass(frozen=True)
class MonitoringArgs:
    config: StackConfig
    kubernetes: KubernetesProvider
    # The namespace they live in: made before them, deleted after them.
    after: Sequence[pulumi.Resource]


class Monitoring(pulumi.ComponentResource):
    objects: list[pulumi.CustomResource]

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("nats-supercluster:monitoring:Monitoring", name, None, opts)
        cfg = args.config
        on_cluster = pulumi.ResourceOptions(
            parent=self, provider=args.kubernetes, depends_on=list(args.after)
        )
        self.objects = []
        for manifest in monitoring_objects(cfg.cluster_name, cfg.nats.namespace, cfg.monitoring):
            resource_name = f"{name}-{manifest['kind'].lower()}-{manifest['metadata']['name']}"
            if manifest["apiVersion"] == MONITORING_API:
                self.objects.append(
                    CustomResource(
                        resource_name,
                        api_version=manifest["apiVersion"],
                        kind=manifest["kind"],
                        metadata=manifest["metadata"],
                        spec=manifest["spec"],
                        opts=on_cluster,
                    )
                )
            else:
                self.objects.append(
                    ConfigMap(
                        resource_name,
                        metadata=manifest["metadata"],
                        data=manifest["data"],
                        opts=on_cluster,
                    )
                )
        self.register_outputs({})
