"""IAM documents for EKS: who may assume each role, and what the Load Balancer Controller may do.

Every document is a plain dict so tests can read it; components serialise it with json.dumps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

PolicyDocument = dict[str, Any]

LB_CONTROLLER_NAMESPACE = "kube-system"
LB_CONTROLLER_SERVICE_ACCOUNT = "aws-load-balancer-controller"
EBS_CSI_NAMESPACE = "kube-system"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
# Tag the controller puts on every load balancer, target group and security group it creates;
# the mutating permissions below are scoped to resources that carry it.
LB_CLUSTER_TAG = "elbv2.k8s.aws/cluster"


def partition(region: str) -> str:
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


def managed_policy_arn(region: str, name: str) -> str:
    return f"arn:{partition(region)}:iam::aws:policy/{name}"


def cluster_role_policies(region: str) -> list[str]:
    return [managed_policy_arn(region, "AmazonEKSClusterPolicy")]


def node_role_policies(region: str) -> list[str]:
    return [
        managed_policy_arn(region, name)
        for name in (
            "AmazonEKSWorkerNodePolicy",
            "AmazonEKS_CNI_Policy",
            "AmazonEC2ContainerRegistryReadOnly",
        )
    ]


def ebs_csi_policy(region: str) -> str:
    return managed_policy_arn(region, "service-role/AmazonEBSCSIDriverPolicy")


def service_trust_policy(service: str) -> PolicyDocument:
    """Lets an AWS service (eks.amazonaws.com, ec2.amazonaws.com) assume the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


def issuer_host(issuer_url: str) -> str:
    return issuer_url.removeprefix("https://")


def irsa_trust_policy(
    oidc_provider_arn: str, issuer_url: str, namespace: str, service_account: str
) -> PolicyDocument:
    """Lets exactly one Kubernetes service account assume the role through the cluster's OIDC
    provider (IAM Roles for Service Accounts)."""
    host = issuer_host(issuer_url)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        f"{host}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


# The reads controller v2.13.0 makes for an NLB Service (its EC2 client has no other methods;
# tests/test_aws_lb_controller_facts.py lists each call with its source).
_READ_ACTIONS = [
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeInstances",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "elasticloadbalancing:DescribeListenerAttributes",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
]

# What may change or delete a load balancer or target group, on ones it tagged as its own.
_OWNED_LB_ACTIONS = [
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:ModifyListenerAttributes",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:SetIpAddressType",
    "elasticloadbalancing:SetSecurityGroups",
    "elasticloadbalancing:SetSubnets",
]


def lb_controller_policy(region: str) -> PolicyDocument:
    """What the AWS Load Balancer Controller (v2.13.0, chart 1.13.0) needs to run Network Load
    Balancers for Services: the controller's official iam_policy.json at that version, less what
    it provably never calls here. Removed: the ALB/Ingress-only permissions (WAF, Shield, Cognito,
    ACM, IAM server certificates, listener rules, listener certificates, trust stores,
    application load balancers), which the chart values turn off or which only Ingress objects
    use, and the reads no code path of that version calls. Kept as upstream has them: security
    group ingress on any group (the controller opens the pods' ports on the EKS cluster security
    group, which does not carry its tag), tagging listeners (it tags them in CreateListener),
    and ownership conditions on every change to load balancers, target groups and its own
    security groups."""
    p = partition(region)
    owned = {"Null": {f"aws:ResourceTag/{LB_CLUSTER_TAG}": "false"}}
    tagged_on_create = {"Null": {f"aws:RequestTag/{LB_CLUSTER_TAG}": "false"}}
    # Re-tagging its own resources, never claiming one by adding the cluster tag.
    retag_owned = {
        "Null": {
            f"aws:RequestTag/{LB_CLUSTER_TAG}": "true",
            f"aws:ResourceTag/{LB_CLUSTER_TAG}": "false",
        }
    }
    nlb_arns = [
        f"arn:{p}:elasticloadbalancing:*:*:targetgroup/*/*",
        f"arn:{p}:elasticloadbalancing:*:*:loadbalancer/net/*/*",
    ]
    security_groups = f"arn:{p}:ec2:*:*:security-group/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CreateElbServiceLinkedRole",
                "Effect": "Allow",
                "Action": "iam:CreateServiceLinkedRole",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}
                },
            },
            {"Sid": "Discover", "Effect": "Allow", "Action": _READ_ACTIONS, "Resource": "*"},
            {
                "Sid": "OpenTargetPorts",
                "Effect": "Allow",
                "Action": [
                    "ec2:AuthorizeSecurityGroupIngress",
                    "ec2:RevokeSecurityGroupIngress",
                ],
                "Resource": "*",
            },
            {
                "Sid": "CreateSecurityGroups",
                "Effect": "Allow",
                "Action": "ec2:CreateSecurityGroup",
                "Resource": "*",
            },
            {
                "Sid": "TagSecurityGroupsOnCreate",
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": security_groups,
                "Condition": {
                    "StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"},
                    **tagged_on_create,
                },
            },
            {
                "Sid": "RetagOwnedSecurityGroups",
                "Effect": "Allow",
                "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
                "Resource": security_groups,
                "Condition": retag_owned,
            },
            {
                "Sid": "DeleteOwnedSecurityGroups",
                "Effect": "Allow",
                "Action": "ec2:DeleteSecurityGroup",
                "Resource": "*",
                "Condition": owned,
            },
            {
                "Sid": "CreateTaggedLoadBalancers",
                "Effect": "Allow",
                "Action": [
                    "elasticloadbalancing:CreateLoadBalancer",
                    "elasticloadbalancing:CreateTargetGroup",
                ],
                "Resource": "*",
                "Condition": tagged_on_create,
            },
            {
                "Sid": "ManageListeners",
                "Effect": "Allow",
                "Action": [
                    "elasticloadbalancing:CreateListener",
                    "elasticloadbalancing:DeleteListener",
                    "elasticloadbalancing:ModifyListener",
                ],
                "Resource": "*",
            },
            {
                "Sid": "RetagOwnedLoadBalancers",
                "Effect": "Allow",
                "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
                "Resource": nlb_arns,
                "Condition": retag_owned,
            },
            {
                "Sid": "TagListeners",
                "Effect": "Allow",
                "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
                "Resource": f"arn:{p}:elasticloadbalancing:*:*:listener/net/*/*/*",
            },
            {
                "Sid": "ManageOwnedLoadBalancers",
                "Effect": "Allow",
                "Action": _OWNED_LB_ACTIONS,
                "Resource": "*",
                "Condition": owned,
            },
            {
                "Sid": "TagLoadBalancersOnCreate",
                "Effect": "Allow",
                "Action": "elasticloadbalancing:AddTags",
                "Resource": nlb_arns,
                "Condition": {
                    "StringEquals": {
                        "elasticloadbalancing:CreateAction": [
                            "CreateTargetGroup",
                            "CreateLoadBalancer",
                        ]
                    },
                    **tagged_on_create,
                },
            },
            {
                "Sid": "RegisterTargets",
                "Effect": "Allow",
                "Action": [
                    "elasticloadbalancing:RegisterTargets",
                    "elasticloadbalancing:DeregisterTargets",
                ],
                "Resource": f"arn:{p}:elasticloadbalancing:*:*:targetgroup/*/*",
            },
        ],
    }


def lb_controller_values(
    cluster_name: str, region: str, vpc_id: str, role_arn: str
) -> dict[str, Any]:
    """Helm values for the controller: IRSA service account, two replicas, ALB extras off."""
    return {
        "clusterName": cluster_name,
        "region": region,
        "vpcId": vpc_id,
        "replicaCount": 2,
        "serviceAccount": {
            "create": True,
            "name": LB_CONTROLLER_SERVICE_ACCOUNT,
            "annotations": {"eks.amazonaws.com/role-arn": role_arn},
        },
        "enableShield": False,
        "enableWaf": False,
        "enableWafv2": False,
        "podDisruptionBudget": {"maxUnavailable": 1},
    }


def cluster_admin_access_policy(region: str) -> str:
    return f"arn:{partition(region)}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def cluster_admins(runner_arn: str, configured: Sequence[str]) -> list[str]:
    """Who gets cluster-admin through an access entry: the identity running `pulumi up` (which
    needs it to create the cluster's objects) and the configured principals, each once. EKS
    allows one access entry per principal, so a principal listed twice, or the creator listed
    beside EKS's own bootstrap entry, fails with ResourceInUseException; the program therefore
    turns the bootstrap entry off and manages every entry itself."""
    admins: list[str] = []
    for arn in (runner_arn, *configured):
        if arn not in admins:
            admins.append(arn)
    return admins


def principal_key(arn: str) -> str:
    """A stable short name for a principal's access entry: reordering the list renames nothing."""
    return hashlib.sha256(arn.encode()).hexdigest()[:10]
