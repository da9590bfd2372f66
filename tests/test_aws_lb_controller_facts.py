"""The AWS calls the Load Balancer Controller makes for the NATS Service, as facts read from its
source, and the program's IAM policy evaluated against each (tests/iam_policy.py).

Source: kubernetes-sigs/aws-load-balancer-controller at tag v2.13.0 (commit f4f3c580), the
version chart 1.13.0 installs (aws/eks-charts stable/aws-load-balancer-controller/Chart.yaml:
appVersion v2.13.0). The Service: type LoadBalancer, annotations type=external,
nlb-target-type=ip, scheme=internet-facing, healthcheck-protocol=tcp (port, interval, timeout and
thresholds set too: tests/test_rollout_facts.py), target-group-attributes
deregistration_delay.timeout_seconds=30, TCP ports 4222 and 7222; pods on EKS managed nodes,
whose ENIs carry only the EKS-created cluster security group, in a namespace labelled for
readiness gate injection (the gates are read with DescribeTargetHealth).
"""

from __future__ import annotations

import pytest

from infra import aws_iam
from infra.endpoint import AWS_LB_ANNOTATIONS, AWS_LOAD_BALANCER_CLASS
from infra.versions import AWS_LB_CONTROLLER_CHART_VERSION
from tests.iam_policy import Call, evaluate

TAG = "elbv2.k8s.aws/cluster"
ACCOUNT = "123456789012"
ELB = f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}"
EC2 = f"arn:aws:ec2:us-east-1:{ACCOUNT}"
NLB = f"{ELB}:loadbalancer/net/k8s-nats-eastpubl-0a1b2c3d4e/50dc6c495c0c9188"
TARGET_GROUP = f"{ELB}:targetgroup/k8s-nats-eastpubl-5e6f7a8b9c/73e2d6bc24d8a067"
LISTENER = f"{ELB}:listener/net/k8s-nats-eastpubl-0a1b2c3d4e/50dc6c495c0c9188/f2f7dc8efc522ab2"
# Security groups: the controller's per-Service frontend group and the shared backend group
# carry its tag; the EKS cluster group on the node (and pod) ENIs does not.
FRONTEND_SG = f"{EC2}:security-group/sg-0f1e2d3c4b5a69788"
CLUSTER_SG = f"{EC2}:security-group/sg-0123456789abcdef0"
OWNED = {f"aws:ResourceTag/{TAG}": "nats-supercluster-east"}
SENT = {f"aws:RequestTag/{TAG}": "nats-supercluster-east"}
EKS_CLUSTER_SG_TAGS = {
    "aws:ResourceTag/kubernetes.io/cluster/nats-supercluster-east": "owned",
    "aws:ResourceTag/aws:eks:cluster-name": "nats-supercluster-east",
}

# (the call, when it happens, where v2.13.0 makes it)
CALLS: list[tuple[Call, str, str]] = [
    # Discovery, every reconcile
    (Call("ec2:DescribeSubnets", "*"), "subnet discovery", "pkg/networking/subnet_resolver.go"),
    (Call("ec2:DescribeAvailabilityZones", "*"), "zone type", "pkg/networking/az_info_provider.go:90"),
    (Call("ec2:DescribeSecurityGroups", "*"), "stack, backend, ENI groups", "pkg/deploy/ec2/tagging_manager.go:151"),
    (Call("ec2:DescribeInstances", "*"), "pod ENIs via nodes", "pkg/networking/node_info_provider.go:57"),
    (Call("ec2:DescribeVpcs", "*"), "before registering targets", "pkg/networking/vpc_info_provider.go:134"),
    (Call("elasticloadbalancing:DescribeLoadBalancers", "*"), "discovery", "pkg/deploy/elbv2/tagging_manager.go:316"),
    (Call("elasticloadbalancing:DescribeTags", "*"), "discovery", "pkg/deploy/elbv2/tagging_manager.go:437"),
    (Call("elasticloadbalancing:DescribeTargetGroups", "*"), "discovery, TGB webhook", "pkg/deploy/elbv2/tagging_manager.go:395"),
    (Call("elasticloadbalancing:DescribeListeners", "*"), "discovery", "pkg/deploy/elbv2/tagging_manager.go:195"),
    # The listener-rule synthesizer runs for Service stacks too and lists each listener's rules.
    (Call("elasticloadbalancing:DescribeRules", "*"), "every NLB listener", "pkg/deploy/elbv2/tagging_manager.go:228"),
    (Call("elasticloadbalancing:DescribeListenerAttributes", "*"), "TCP listener create/update", "pkg/deploy/elbv2/listener_manager.go:106"),
    (Call("elasticloadbalancing:DescribeLoadBalancerAttributes", "*"), "LB create/update", "pkg/deploy/elbv2/load_balancer_attributes_reconciler.go:81"),
    (Call("elasticloadbalancing:DescribeTargetGroupAttributes", "*"), "TG create/update", "pkg/deploy/elbv2/target_group_attributes_reconciler.go:86"),
    (Call("elasticloadbalancing:DescribeTargetHealth", "*"), "TGB reconcile", "pkg/targetgroupbinding/targets_manager.go:210"),
    # Security groups: a frontend group per Service, the shared backend group, tagged at creation
    (Call("ec2:CreateSecurityGroup", f"{EC2}:security-group/*", SENT), "frontend and backend groups", "pkg/deploy/ec2/security_group_manager.go:64"),
    (Call("ec2:CreateSecurityGroup", f"{EC2}:vpc/vpc-0a1b2c3d", SENT), "the group's VPC", "pkg/deploy/ec2/security_group_manager.go:64"),
    (Call("ec2:CreateTags", FRONTEND_SG, {**SENT, "ec2:CreateAction": "CreateSecurityGroup"}), "tags in CreateSecurityGroup", "pkg/networking/backend_sg_provider.go:274"),
    (Call("ec2:AuthorizeSecurityGroupIngress", FRONTEND_SG, OWNED), "4222, 7222 from 0.0.0.0/0", "pkg/service/model_build_managed_sg.go:78"),
    # The pods' ports opened on the EKS cluster group, which lacks the controller's tag
    (Call("ec2:AuthorizeSecurityGroupIngress", CLUSTER_SG, EKS_CLUSTER_SG_TAGS), "tcp 4222-7222 from the backend group", "pkg/targetgroupbinding/networking_manager.go:518"),
    (Call("ec2:RevokeSecurityGroupIngress", CLUSTER_SG, EKS_CLUSTER_SG_TAGS), "drift, TGB cleanup", "pkg/networking/security_group_manager.go:129"),
    (Call("ec2:DeleteSecurityGroup", FRONTEND_SG, OWNED), "Service deleted", "pkg/deploy/ec2/security_group_synthesizer.go:74"),
    # The NLB, its target groups and listeners, all tagged in their create requests
    (Call("elasticloadbalancing:CreateLoadBalancer", NLB, SENT), "first reconcile", "pkg/deploy/elbv2/load_balancer_manager.go:62"),
    (Call("elasticloadbalancing:AddTags", NLB, {**SENT, "elasticloadbalancing:CreateAction": "CreateLoadBalancer"}), "tags in CreateLoadBalancer", "pkg/deploy/elbv2/load_balancer_manager.go:62"),
    (Call("elasticloadbalancing:CreateTargetGroup", TARGET_GROUP, SENT), "one per port", "pkg/deploy/elbv2/target_group_manager.go:69"),
    (Call("elasticloadbalancing:AddTags", TARGET_GROUP, {**SENT, "elasticloadbalancing:CreateAction": "CreateTargetGroup"}), "tags in CreateTargetGroup", "pkg/deploy/elbv2/target_group_manager.go:69"),
    (Call("elasticloadbalancing:ModifyTargetGroup", TARGET_GROUP, OWNED), "health check changed on a live NLB", "pkg/deploy/elbv2/target_group_manager.go:138"),
    (Call("elasticloadbalancing:ModifyTargetGroupAttributes", TARGET_GROUP, OWNED), "deregistration delay 30 s", "pkg/deploy/elbv2/target_group_attributes_reconciler.go:37"),
    (Call("elasticloadbalancing:CreateListener", LISTENER, SENT), "one per port", "pkg/deploy/elbv2/listener_manager.go:87"),
    # Listeners are tagged in CreateListener (feature gate ListenerRulesTagging, on by default)
    (Call("elasticloadbalancing:AddTags", LISTENER, {**SENT, "elasticloadbalancing:CreateAction": "CreateListener"}), "tags in CreateListener", "pkg/deploy/elbv2/listener_manager.go:78"),
    (Call("elasticloadbalancing:AddTags", LISTENER, OWNED), "listener tag drift", "pkg/deploy/elbv2/listener_manager.go:149"),
    (Call("elasticloadbalancing:ModifyListener", LISTENER, OWNED), "listener drift", "pkg/deploy/elbv2/listener_manager.go"),
    (Call("elasticloadbalancing:RegisterTargets", TARGET_GROUP, OWNED), "pods ready", "pkg/targetgroupbinding/targets_manager.go:85"),
    (Call("elasticloadbalancing:DeregisterTargets", TARGET_GROUP, OWNED), "pods gone", "pkg/targetgroupbinding/targets_manager.go:114"),
    (Call("elasticloadbalancing:SetSecurityGroups", NLB, OWNED), "group set changed", "pkg/deploy/elbv2/load_balancer_manager.go:229"),
    (Call("elasticloadbalancing:DeleteListener", LISTENER, OWNED), "a port removed", "pkg/deploy/elbv2/listener_manager.go"),
    (Call("elasticloadbalancing:DeleteLoadBalancer", NLB, OWNED), "Service deleted", "pkg/deploy/elbv2/load_balancer_synthesizer.go:69"),
    (Call("elasticloadbalancing:DeleteTargetGroup", TARGET_GROUP, OWNED), "Service deleted", "pkg/deploy/elbv2/target_group_synthesizer.go"),
    # Made by ELB on the first load balancer of an account
    (Call("iam:CreateServiceLinkedRole", "*", {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}), "first NLB in the account", "implicit, ELB"),
]  # fmt: skip

# What the policy must refuse: another's resources, claiming a resource by tagging it, and the
# ALB-only integrations the chart values turn off.
FOREIGN_NLB = f"{ELB}:loadbalancer/net/someone-elses/1111111111111111"
REFUSED: list[tuple[Call, str]] = [
    (Call("ec2:DeleteSecurityGroup", CLUSTER_SG, EKS_CLUSTER_SG_TAGS), "the EKS cluster group"),
    (Call("ec2:CreateTags", CLUSTER_SG, SENT), "claiming the cluster group with the tag"),
    (Call("elasticloadbalancing:DeleteLoadBalancer", FOREIGN_NLB), "a load balancer not its own"),
    (Call("elasticloadbalancing:AddTags", FOREIGN_NLB, SENT), "claiming a foreign NLB"),
    (Call("elasticloadbalancing:ModifyLoadBalancerAttributes", FOREIGN_NLB), "a foreign NLB"),
    (Call("elasticloadbalancing:CreateLoadBalancer", NLB), "an untagged load balancer"),
    (Call("elasticloadbalancing:CreateRule", LISTENER), "ALB listener rules"),
    (Call("wafv2:AssociateWebACL", NLB), "WAF (enableWafv2: false)"),
    (Call("shield:CreateProtection", NLB), "Shield (enableShield: false)"),
    (Call("acm:ListCertificates", "*"), "ACM (Ingress only)"),
    (Call("iam:CreateServiceLinkedRole", "*", {"iam:AWSServiceName": "ec2.amazonaws.com"}), "other service roles"),
]  # fmt: skip


def test_the_facts_are_for_the_pinned_controller() -> None:
    assert AWS_LB_CONTROLLER_CHART_VERSION == "1.13.0"  # installs controller v2.13.0


@pytest.mark.parametrize(
    ("call", "when", "source"),
    CALLS,
    ids=[f"{c.action.split(':')[1]}-{i}" for i, (c, _, _) in enumerate(CALLS)],
)
def test_the_policy_allows_every_call_the_controller_makes(
    call: Call, when: str, source: str
) -> None:
    decision = evaluate(aws_iam.lb_controller_policy("us-east-1"), call)
    assert decision == "allow", f"{call} ({when}; {source})"


@pytest.mark.parametrize(("call", "what"), REFUSED, ids=[w for _, w in REFUSED])
def test_the_policy_refuses_what_the_controller_has_no_business_doing(
    call: Call, what: str
) -> None:
    assert evaluate(aws_iam.lb_controller_policy("us-east-1"), call) == "implicit deny", what


def test_the_service_is_classed_and_annotated_for_the_controller() -> None:
    """The Service mutating webhook (webhooks/core/service_mutator.go:40-55, chart
    enableServiceMutatorWebhook true, operations [CREATE]) sets spec.loadBalancerClass to
    service.k8s.aws/nlb on CREATE only; Kubernetes refuses a later change of the field ("may not
    change once set", validateLoadBalancerClassField), so an update omitting it would fail."""
    assert AWS_LOAD_BALANCER_CLASS == "service.k8s.aws/nlb"
    assert (
        AWS_LB_ANNOTATIONS["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
    )


def test_the_evaluator_follows_iam_semantics() -> None:
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "elasticloadbalancing:Describe*",
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": "arn:aws:ec2:*:*:security-group/*",
                "Condition": {
                    "Null": {"aws:RequestTag/t": "true", "aws:ResourceTag/t": "false"},
                    "StringEquals": {"ec2:CreateAction": ["A", "B"]},
                },
            },
            {"Effect": "Deny", "Action": "elasticloadbalancing:DescribeTags", "Resource": "*"},
        ]
    }
    sg = "arn:aws:ec2:us-east-1:1:security-group/sg-1"
    assert evaluate(policy, Call("ELASTICLOADBALANCING:describeRules", "*")) == "allow"
    assert evaluate(policy, Call("elasticloadbalancing:DescribeTags", "*")) == "explicit deny"
    ok = {"aws:ResourceTag/t": "x", "ec2:CreateAction": "B"}
    assert evaluate(policy, Call("ec2:CreateTags", sg, ok)) == "allow"
    assert evaluate(policy, Call("ec2:CreateTags", sg, {**ok, "aws:RequestTag/t": "y"})) == (
        "implicit deny"
    )
    assert evaluate(policy, Call("ec2:CreateTags", sg, {"aws:ResourceTag/t": "x"})) == (
        "implicit deny"
    )
    subnet = "arn:aws:ec2:us-east-1:1:subnet/subnet-1"
    assert evaluate(policy, Call("ec2:CreateTags", subnet, ok)) == "implicit deny"
    with pytest.raises(NotImplementedError):
        evaluate(
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "*",
                        "Resource": "*",
                        "Condition": {"ForAnyValue:StringLike": {"k": "v"}},
                    }
                ]
            },
            Call("s3:GetObject", "*", {"k": "v"}),
        )
