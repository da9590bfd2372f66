"""The region's control service (services/control.py) in its cluster: its service account,
allowed to get and update the region's runtime ConfigMap and nothing else, and its Deployment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_kubernetes import Provider as KubernetesProvider
from pulumi_kubernetes.apps.v1 import Deployment
from pulumi_kubernetes.core.v1 import ServiceAccount
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs
from pulumi_kubernetes.rbac.v1 import Role, RoleBinding, RoleRefArgs, SubjectArgs

from infra.config import StackConfig
from infra.control_plane import control_account_name, control_deployment, control_role
from infra.monitoring import Scraping, scraped
from infra.nats_values import RegionNames, server_name_prefix


@dataclass(frozen=True)
class RegionControlArgs:
    config: StackConfig
    image: str
    kubernetes: KubernetesProvider
    # The known regions' server keys by NATS cluster name (infra.peers.gateway_pins).
    gateway_pins: pulumi.Output[dict[str, list[str]]]
    # The release (whose servers it controls), the runtime ConfigMap and the control identity's
    # Secret: made before it, deleted after it.
    after: Sequence[pulumi.Resource]


class RegionControl(pulumi.ComponentResource):
    deployment: Deployment

    def __init__(
        self, name: str, args: RegionControlArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("nats-supercluster:nats:Control", name, None, opts)
        cfg = args.config
        names = RegionNames(cfg.cluster_name, cfg.nats.namespace)
        on_cluster = pulumi.ResourceOptions(
            parent=self, provider=args.kubernetes, depends_on=list(args.after)
        )
        account = ServiceAccount(
            f"{name}-account",
            metadata=ObjectMetaArgs(name=control_account_name(names), namespace=names.namespace),
            automount_service_account_token=False,  # only its own pod asks for the token
            opts=on_cluster,
        )
        manifest = control_role(names)
        role = Role(
            f"{name}-role", metadata=manifest["metadata"], rules=manifest["rules"], opts=on_cluster
        )
        binding = RoleBinding(
            f"{name}-binding",
            metadata=ObjectMetaArgs(name=control_account_name(names), namespace=names.namespace),
            role_ref=RoleRefArgs(
                api_group="rbac.authorization.k8s.io",
                kind="Role",
                name=manifest["metadata"]["name"],
            ),
            subjects=[
                SubjectArgs(
                    kind="ServiceAccount",
                    name=control_account_name(names),
                    namespace=names.namespace,
                )
            ],
            opts=on_cluster,
        )
        scraping = Scraping.of(cfg.monitoring)
        prefix = server_name_prefix(cfg.cloud, cfg.region)
        servers = [prefix + names.pod(i) for i in range(cfg.nats.replicas)]
        deployment = args.gateway_pins.apply(
            lambda pins: scraped(
                control_deployment(names, args.image, cfg.stack, pins, servers), scraping
            )
        )
        self.deployment = Deployment(
            f"{name}-service",
            metadata=deployment.apply(lambda d: d["metadata"]),
            spec=deployment.apply(lambda d: d["spec"]),
            opts=pulumi.ResourceOptions.merge(
                on_cluster, pulumi.ResourceOptions(depends_on=[account, role, binding])
            ),
        )
        self.register_outputs({})
