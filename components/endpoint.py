"""The region's public LoadBalancer Service, created before NATS so its address is known."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_kubernetes import Provider as KubernetesProvider
from pulumi_kubernetes.core.v1 import Service, ServicePortArgs, ServiceSpecArgs
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from infra.config import Cloud
from infra.endpoint import ingress_address, lb_annotations, lb_ports, load_balancer_class
from infra.nats_values import RegionNames


@dataclass(frozen=True)
class NatsEndpointArgs:
    cloud: Cloud
    names: RegionNames
    namespace: pulumi.Input[str]
    kubernetes: KubernetesProvider
    # The load balancer controller and nodes (and on Azure the static IP and the role that lets
    # the cluster use it): the Service, and its cloud load balancer, is deleted before them.
    runs_on: Sequence[pulumi.Resource]
    # The platform's own annotations (Azure: which static IP to take).
    platform_annotations: pulumi.Input[dict[str, str]]


class NatsEndpoint(pulumi.ComponentResource):
    """Clients (4222) and gateways (7222) of the region, through the cloud's load balancer."""

    service: Service
    address: pulumi.Output[str]

    def __init__(
        self, name: str, args: NatsEndpointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("nats-supercluster:nats:Endpoint", name, None, opts)
        names = args.names
        cloud = args.cloud
        self.service = Service(
            f"{name}-lb",
            metadata=ObjectMetaArgs(
                name=names.public_service,
                namespace=args.namespace,
                annotations=pulumi.Output.from_input(args.platform_annotations).apply(
                    lambda platform: lb_annotations(cloud, platform)
                ),
            ),
            spec=ServiceSpecArgs(
                type="LoadBalancer",
                load_balancer_class=load_balancer_class(args.cloud),
                selector=names.selector_labels(),
                ports=[
                    ServicePortArgs(name=p.name, port=p.port, target_port=p.name, protocol="TCP")
                    for p in lb_ports()
                ],
                # Gateways and clients reconnect to any server; no need to pin them to one.
                session_affinity="None",
            ),
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.kubernetes, depends_on=list(args.runs_on)
            ),
        )
        self.address = self.service.status.apply(
            lambda status: ingress_address(
                cloud,
                [{"hostname": i.hostname, "ip": i.ip} for i in (status.load_balancer.ingress or [])]
                if status and status.load_balancer
                else None,
            )
        )
        self.register_outputs({"address": self.address})
