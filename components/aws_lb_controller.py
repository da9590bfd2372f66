"""The AWS Load Balancer Controller, which turns the NATS LoadBalancer Service into an NLB."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import iam
from pulumi_kubernetes import Provider as KubernetesProvider
from pulumi_kubernetes.helm.v3 import Release, ReleaseArgs, RepositoryOptsArgs

from infra import aws_iam, versions


@dataclass(frozen=True)
class LoadBalancerControllerArgs:
    cluster_name: pulumi.Input[str]
    region: str
    vpc_id: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    kubernetes: KubernetesProvider
    # The nodes it runs on: the release must be removed before them on destroy.
    runs_on: Sequence[pulumi.Resource]


class LoadBalancerController(pulumi.ComponentResource):
    """IAM policy and IRSA role, then the controller's Helm release in kube-system."""

    release: Release

    def __init__(
        self,
        name: str,
        args: LoadBalancerControllerArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("nats-supercluster:aws:LoadBalancerController", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        policy = iam.Policy(
            f"{name}-policy",
            description="AWS Load Balancer Controller, scoped to NLBs it creates",
            policy=json.dumps(aws_iam.lb_controller_policy(args.region)),
            opts=child,
        )
        role = iam.Role(
            f"{name}-role",
            assume_role_policy=pulumi.Output.all(
                args.oidc_provider_arn, args.oidc_issuer_url
            ).apply(
                lambda a: json.dumps(
                    aws_iam.irsa_trust_policy(
                        a[0],
                        a[1],
                        aws_iam.LB_CONTROLLER_NAMESPACE,
                        aws_iam.LB_CONTROLLER_SERVICE_ACCOUNT,
                    )
                )
            ),
            opts=child,
        )
        attachment = iam.RolePolicyAttachment(
            f"{name}-policy", role=role.name, policy_arn=policy.arn, opts=child
        )
        values = pulumi.Output.all(args.cluster_name, args.vpc_id, role.arn).apply(
            lambda a: aws_iam.lb_controller_values(a[0], args.region, a[1], a[2])
        )
        self.release = Release(
            f"{name}-release",
            ReleaseArgs(
                chart=versions.AWS_LB_CONTROLLER_CHART,
                version=versions.AWS_LB_CONTROLLER_CHART_VERSION,
                repository_opts=RepositoryOptsArgs(repo=versions.AWS_LB_CONTROLLER_REPO),
                namespace=aws_iam.LB_CONTROLLER_NAMESPACE,
                values=values,
                atomic=True,
                cleanup_on_fail=True,
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.kubernetes,
                depends_on=[attachment, *args.runs_on],
            ),
        )
        self.register_outputs({"releaseStatus": self.release.status})
