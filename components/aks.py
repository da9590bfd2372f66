"""An AKS cluster ready for NATS: resource group, zoned autoscaling pool, JetStream StorageClass."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_azure_native.containerservice as aks
from pulumi_azure_native import authorization, network, resources
from pulumi_kubernetes import Provider as KubernetesProvider

from components.storage_class import storage_class
from infra import versions
from infra.config import StackConfig
from infra.endpoint import (
    NETWORK_CONTRIBUTOR_ROLE,
    azure_static_ip_annotations,
    role_definition_id,
)
from infra.kubeconfig import aks_kubeconfig
from infra.naming import base_name, common_tags, kubernetes_cluster_name
from infra.storage import aks_jetstream


@dataclass(frozen=True)
class AksClusterArgs:
    config: StackConfig


# The pool's node count as Pulumi addresses it inside the cluster's inputs (camelCase path).
AUTOSCALED_COUNT = "agentPoolProfiles[0].count"


class AksCluster(pulumi.ComponentResource):
    """Implements KubernetesPlatform on Azure. The cluster's system-assigned identity manages the
    Azure load balancer and disks, so no credential of ours is involved."""

    provider: KubernetesProvider
    kubeconfig: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    storage_class_name: pulumi.Output[str]
    workload_dependencies: Sequence[pulumi.Resource]

    lb_annotations: pulumi.Output[dict[str, str]]
    lb_dependencies: Sequence[pulumi.Resource]

    def __init__(
        self, name: str, args: AksClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("nats-supercluster:azure:AksCluster", name, None, opts)
        cfg = args.config
        aks_cfg = cfg.require_aks()
        nodes = cfg.nodes
        tags = common_tags(cfg)
        child = pulumi.ResourceOptions(parent=self)

        group = resources.ResourceGroup(f"{name}-rg", location=cfg.region, tags=tags, opts=child)
        cluster = aks.ManagedCluster(
            f"{name}-cluster",
            resource_group_name=group.name,
            resource_name_=kubernetes_cluster_name(cfg),
            location=cfg.region,
            dns_prefix=base_name(cfg),
            kubernetes_version=cfg.kubernetes_version,
            identity=aks.ManagedClusterIdentityArgs(type=aks.ResourceIdentityType.SYSTEM_ASSIGNED),
            sku=aks.ManagedClusterSKUArgs(name="Base", tier=aks_cfg.sku_tier),
            enable_rbac=True,
            agent_pool_profiles=[
                aks.ManagedClusterAgentPoolProfileArgs(
                    name="system",
                    mode="System",
                    type="VirtualMachineScaleSets",
                    os_type="Linux",
                    os_sku=versions.AKS_NODE_OS_SKU,
                    vm_size=nodes.instance_type,
                    os_disk_size_gb=nodes.disk_size_gb,
                    count=nodes.count,
                    enable_auto_scaling=True,
                    min_count=nodes.min_count,
                    max_count=nodes.max_count,
                    availability_zones=list(nodes.zones) or None,
                    node_labels={"nats.io/cluster": cfg.cluster_name},
                    upgrade_settings=aks.AgentPoolUpgradeSettingsArgs(max_surge="33%"),
                )
            ],
            network_profile=aks.ContainerServiceNetworkProfileArgs(
                network_plugin="azure",
                network_plugin_mode="overlay",
                pod_cidr=str(aks_cfg.pod_cidr),
                service_cidr=str(aks_cfg.service_cidr),
                dns_service_ip=str(aks_cfg.dns_service_ip),
                load_balancer_sku="standard",
                outbound_type="loadBalancer",
            ),
            api_server_access_profile=aks.ManagedClusterAPIServerAccessProfileArgs(
                authorized_ip_ranges=[str(r) for r in aks_cfg.authorized_ip_ranges]
            )
            if aks_cfg.authorized_ip_ranges
            else None,
            auto_upgrade_profile=aks.ManagedClusterAutoUpgradeProfileArgs(
                upgrade_channel=aks_cfg.upgrade_channel
            ),
            oidc_issuer_profile=aks.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
            tags=tags,
            # The autoscaler owns the pool's size; re-sending `count` on every update would
            # fight it (count is only the size at creation).
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=[AUTOSCALED_COUNT]),
        )
        self._static_ip(name, cfg, group, cluster)

        credentials = aks.list_managed_cluster_user_credentials_output(
            resource_group_name=group.name,
            resource_name=cluster.name,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        self.kubeconfig = pulumi.Output.secret(credentials.kubeconfigs.apply(aks_kubeconfig))
        self.provider = KubernetesProvider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            delete_unreachable=True,
            # A Secret or ConfigMap whose data changes is updated in place, not deleted and
            # re-created under its fixed name (tests/test_kubernetes_provider_facts.py).
            enable_secret_mutable=True,
            enable_config_map_mutable=True,
            opts=child,
        )
        jetstream = storage_class(
            f"{name}-jetstream",
            aks_jetstream(aks_cfg.disk_sku),
            pulumi.ResourceOptions(parent=self, provider=self.provider),
        )

        self.cluster_name = cluster.name
        self.storage_class_name = jetstream.metadata.apply(lambda m: str(m.name))
        self.workload_dependencies = [cluster, jetstream]
        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "kubeconfig": self.kubeconfig,
                "resourceGroup": group.name,
            }
        )

    def _static_ip(
        self,
        name: str,
        cfg: StackConfig,
        group: resources.ResourceGroup,
        cluster: aks.ManagedCluster,
    ) -> None:
        """A Standard static public IP in the stack's resource group for the NATS Service, so the
        region's address (in its certificate and in its peers' gateway lists) survives the
        Service being replaced; and the cluster identity's right to use it."""
        child = pulumi.ResourceOptions(parent=self)
        address = network.PublicIPAddress(
            f"{name}-nats-ip",
            resource_group_name=group.name,
            location=cfg.region,
            sku=network.PublicIPAddressSkuArgs(name="Standard"),
            public_ip_allocation_method="Static",
            public_ip_address_version="IPv4",
            zones=list(cfg.nodes.zones) or None,
            tags=common_tags(cfg),
            opts=child,
        )
        client = authorization.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        )
        role = authorization.RoleAssignment(
            f"{name}-nats-ip-role",
            scope=group.id,
            role_definition_id=client.subscription_id.apply(
                lambda subscription: role_definition_id(subscription, NETWORK_CONTRIBUTOR_ROLE)
            ),
            principal_id=cluster.identity.apply(_principal_id),
            # A new identity may not have replicated yet; the type skips the directory lookup.
            principal_type="ServicePrincipal",
            opts=child,
        )
        self.lb_annotations = pulumi.Output.all(group.name, address.name).apply(
            lambda a: azure_static_ip_annotations(a[0], a[1])
        )
        self.lb_dependencies = [address, role]


def _principal_id(identity: aks.outputs.ManagedClusterIdentityResponse | None) -> str:
    if identity is None or not identity.principal_id:
        raise ValueError("AKS reported no system-assigned identity for the cluster")
    return str(identity.principal_id)
