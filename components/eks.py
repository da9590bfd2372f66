"""An EKS cluster ready for NATS: network, control plane, nodes, IRSA, EBS CSI, LB controller."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import (
    GetAvailabilityZonesFilterArgs,
    ProviderDefaultTagsArgs,
    eks,
    get_availability_zones,
    get_caller_identity,
    iam,
    kms,
)
from pulumi_aws import Provider as AwsProvider
from pulumi_aws.iam import get_session_context
from pulumi_kubernetes import Provider as KubernetesProvider

from components.aws_lb_controller import LoadBalancerController, LoadBalancerControllerArgs
from components.aws_network import AwsNetwork, AwsNetworkArgs
from components.storage_class import storage_class
from components.volumes import VolumesReleased, VolumesReleasedArgs
from infra import aws_iam, versions
from infra.config import StackConfig
from infra.kubeconfig import eks_kubeconfig
from infra.naming import common_tags, kubernetes_cluster_name
from infra.network import check_eks_zones
from infra.storage import eks_gp3
from infra.volumes import DEFAULT_TIMEOUT_SECONDS as VOLUMES_TIMEOUT_SECONDS


@dataclass(frozen=True)
class EksClusterArgs:
    config: StackConfig


class EksCluster(pulumi.ComponentResource):
    """Implements KubernetesPlatform on AWS.

    Destroy order is carried by dependencies: Kubernetes objects made with `provider` must depend
    on `workload_dependencies` (the node group, the EBS CSI add-on, the LB controller and the
    wait for the volumes), so they go first, then the wait until the driver deleted their
    volumes, then the controller, add-on and nodes, then the cluster, then the network.
    """

    provider: KubernetesProvider
    kubeconfig: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    storage_class_name: pulumi.Output[str]
    workload_dependencies: Sequence[pulumi.Resource]
    lb_annotations: pulumi.Output[dict[str, str]]
    lb_dependencies: Sequence[pulumi.Resource]

    def __init__(
        self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("nats-supercluster:aws:EksCluster", name, None, opts)
        cfg = args.config
        eks_cfg = cfg.require_eks()
        region = cfg.region
        cluster_name = kubernetes_cluster_name(cfg)
        tags = common_tags(cfg)

        aws_provider = AwsProvider(
            f"{name}-aws",
            region=region,
            default_tags=ProviderDefaultTagsArgs(tags=tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        child = pulumi.ResourceOptions(parent=self, provider=aws_provider)
        # Asked of the account during preview, before anything is created.
        account = pulumi.InvokeOptions(provider=aws_provider, parent=self)
        zones = _checked_zones(region, cfg.nodes.zones, account)
        runner = _runner_arn(account)

        network = AwsNetwork(
            f"{name}-net",
            AwsNetworkArgs(
                cluster_name=cluster_name,
                vpc_cidr=eks_cfg.vpc_cidr,
                zones=zones,
                nat_per_zone=eks_cfg.nat_gateways == "perZone",
            ),
            opts=pulumi.ResourceOptions(parent=self, providers=[aws_provider]),
        )

        cluster_role, cluster_policies = _role(
            f"{name}-cluster-role",
            "eks.amazonaws.com",
            aws_iam.cluster_role_policies(region),
            child,
        )
        secrets_key = kms.Key(
            f"{name}-secrets",
            description=f"Envelope encryption of Kubernetes secrets in {cluster_name}",
            enable_key_rotation=True,
            deletion_window_in_days=7,
            opts=child,
        )
        cluster = eks.Cluster(
            f"{name}-cluster",
            name=cluster_name,
            version=cfg.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config=eks.ClusterVpcConfigArgs(
                subnet_ids=network.private_subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=True,
                public_access_cidrs=[str(c) for c in eks_cfg.public_access_cidrs],
            ),
            access_config=eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                # Every admin's entry, the runner's included, is managed below instead.
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            kubernetes_network_config=eks.ClusterKubernetesNetworkConfigArgs(
                service_ipv4_cidr=str(eks_cfg.service_cidr),
            ),
            encryption_config=eks.ClusterEncryptionConfigArgs(
                resources=["secrets"],
                provider=eks.ClusterEncryptionConfigProviderArgs(key_arn=secrets_key.arn),
            ),
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            # Standard support only: extended support bills six times the control-plane price.
            upgrade_policy=eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=cluster_policies)
            ),
        )

        admin_access = []
        for principal in aws_iam.cluster_admins(runner, eks_cfg.admin_principal_arns):
            key = aws_iam.principal_key(principal)
            entry = eks.AccessEntry(
                f"{name}-admin-{key}",
                cluster_name=cluster.name,
                principal_arn=principal,
                type="STANDARD",
                opts=child,
            )
            admin_access.append(
                eks.AccessPolicyAssociation(
                    f"{name}-admin-{key}",
                    cluster_name=cluster.name,
                    principal_arn=entry.principal_arn,
                    policy_arn=aws_iam.cluster_admin_access_policy(region),
                    access_scope=eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    opts=child,
                )
            )

        node_role, node_policies = _role(
            f"{name}-node-role", "ec2.amazonaws.com", aws_iam.node_role_policies(region), child
        )
        nodes = cfg.nodes
        node_group = eks.NodeGroup(
            f"{name}-nodes",
            cluster_name=cluster.name,
            node_role_arn=node_role.arn,
            subnet_ids=network.private_subnet_ids,
            instance_types=[nodes.instance_type],
            ami_type=versions.EKS_NODE_AMI_TYPE,
            disk_size=nodes.disk_size_gb,
            scaling_config=eks.NodeGroupScalingConfigArgs(
                desired_size=nodes.count, min_size=nodes.min_count, max_size=nodes.max_count
            ),
            update_config=eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels={"nats.io/cluster": cfg.cluster_name},
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=node_policies)
            ),
        )

        issuer_url = cluster.identities.apply(_oidc_issuer)
        oidc = iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer_url,
            client_id_lists=["sts.amazonaws.com"],
            opts=child,
        )

        ebs_role = iam.Role(
            f"{name}-ebs-csi-role",
            assume_role_policy=pulumi.Output.all(oidc.arn, issuer_url).apply(
                lambda a: json.dumps(
                    aws_iam.irsa_trust_policy(
                        a[0], a[1], aws_iam.EBS_CSI_NAMESPACE, aws_iam.EBS_CSI_SERVICE_ACCOUNT
                    )
                )
            ),
            opts=child,
        )
        ebs_policy = iam.RolePolicyAttachment(
            f"{name}-ebs-csi",
            role=ebs_role.name,
            policy_arn=aws_iam.ebs_csi_policy(region),
            opts=child,
        )
        # The add-on only turns ACTIVE once its pods run, so it waits for the nodes.
        ebs_addon = eks.Addon(
            f"{name}-ebs-csi",
            cluster_name=cluster.name,
            addon_name=versions.EBS_CSI_ADDON,
            service_account_role_arn=ebs_role.arn,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=[node_group, ebs_policy])
            ),
        )

        self.kubeconfig = pulumi.Output.secret(
            # Output.all turns typed outputs into plain dicts, so take `data` out first.
            pulumi.Output.all(
                cluster.name,
                cluster.endpoint,
                cluster.certificate_authority.apply(lambda c: c.data),
            ).apply(lambda a: eks_kubeconfig(a[0], a[1], a[2], region))
        )
        # The runner's access comes first and goes last: every object made with this provider
        # is created after it and deleted before it.
        self.provider = KubernetesProvider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            delete_unreachable=True,
            # A Secret or ConfigMap whose data changes is updated in place, not deleted and
            # re-created under its fixed name (tests/test_kubernetes_provider_facts.py).
            enable_secret_mutable=True,
            enable_config_map_mutable=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=admin_access),
        )
        on_cluster = pulumi.ResourceOptions(parent=self, provider=self.provider)

        gp3 = storage_class(
            f"{name}-gp3",
            eks_gp3(),
            pulumi.ResourceOptions.merge(
                on_cluster, pulumi.ResourceOptions(depends_on=[ebs_addon])
            ),
        )
        controller = LoadBalancerController(
            f"{name}-lbc",
            LoadBalancerControllerArgs(
                cluster_name=cluster.name,
                region=region,
                vpc_id=network.vpc_id,
                oidc_provider_arn=oidc.arn,
                oidc_issuer_url=issuer_url,
                kubernetes=self.provider,
                runs_on=[node_group],
            ),
            opts=pulumi.ResourceOptions(parent=self, providers=[aws_provider]),
        )

        self.cluster_name = cluster.name
        self.storage_class_name = gp3.metadata.apply(lambda m: str(m.name))
        # On destroy, everything on the cluster goes first (it depends on this), then this waits
        # until the EBS CSI driver has deleted every gp3 volume, then the add-on, the class and
        # the nodes the driver runs on go (components/volumes.py).
        volumes = VolumesReleased(
            f"{name}-volumes-released",
            VolumesReleasedArgs(
                kubeconfig=self.kubeconfig,
                storage_class=self.storage_class_name,
                timeout_seconds=VOLUMES_TIMEOUT_SECONDS,
                outlived_by=[ebs_addon, gp3, node_group, *admin_access],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.workload_dependencies = [node_group, ebs_addon, controller.release, gp3, volumes]
        # The NLB's address comes from the controller; nothing else to bind.
        self.lb_annotations = pulumi.Output.from_input({})
        self.lb_dependencies = []
        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "kubeconfig": self.kubeconfig,
                "oidcProviderArn": oidc.arn,
                "vpcId": network.vpc_id,
            }
        )


def _role(
    name: str, service: str, policy_arns: list[str], opts: pulumi.ResourceOptions
) -> tuple[iam.Role, list[iam.RolePolicyAttachment]]:
    role = iam.Role(
        name,
        assume_role_policy=json.dumps(aws_iam.service_trust_policy(service)),
        opts=opts,
    )
    attachments = [
        iam.RolePolicyAttachment(
            f"{name}-{arn.rsplit('/', 1)[-1]}", role=role.name, policy_arn=arn, opts=opts
        )
        for arn in policy_arns
    ]
    return role, attachments


def _oidc_issuer(identities: Sequence[eks.outputs.ClusterIdentity]) -> str:
    """The cluster's OIDC issuer URL, which IRSA trusts; EKS always reports exactly one."""
    oidcs = identities[0].oidcs if identities else None
    issuer = oidcs[0].issuer if oidcs else None
    if not issuer:
        raise ValueError("EKS reported no OIDC issuer for the cluster")
    return issuer


def _checked_zones(
    region: str, configured: tuple[str, ...], account: pulumi.InvokeOptions
) -> tuple[str, ...]:
    """The configured zones, refused during preview if this account maps one to a zone ID EKS
    does not support (zone names map to different IDs in each account)."""
    found = get_availability_zones(
        state="available",
        filters=[GetAvailabilityZonesFilterArgs(name="zone-type", values=["availability-zone"])],
        opts=account,
    )
    return check_eks_zones(region, configured, found.names, found.zone_ids)


def _runner_arn(account: pulumi.InvokeOptions) -> str:
    """The IAM principal running this `pulumi up`; for an assumed role, the role's ARN with its
    path, which is what EKS records for a principal (not the STS session ARN)."""
    caller = get_caller_identity(opts=account)
    return str(get_session_context(arn=caller.arn, opts=account).issuer_arn)
