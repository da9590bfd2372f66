"""The public load balancer in front of a region's NATS servers: clients on 4222, gateways on 7222.

The program creates this Service itself (not the chart), before the NATS release, so its address
is known when the release's gateway config and the server certificate are made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.config import Cloud
from infra.nats_values import CLIENT_PORT, GATEWAY_PORT

# How the NLB follows a rolling StatefulSet (tests/test_rollout_facts.py has the sources and
# checks these against the chart's shutdown timings):
# - a target leaves the group as soon as its pod terminates; the server it fronts has closed its
#   client listener at once (lame duck) and closes its clients within the chart's lame duck
#   duration (30 s), so draining longer buys nothing, and 30 s is under the pod's 60 s
#   termination grace: the target is gone before the kubelet could kill the server;
# - a TCP check on the traffic port: a server in lame duck refuses it at once; 2 checks 10 s
#   apart (the fewest NLB takes) make a new target healthy 20 s after the NLB starts checking
#   it instead of the default 30 s; before that the NLB keeps a new target `initial` for up to
#   5 minutes, which is most of what the readiness gate waits for on each pod of a roll
#   (infra/rollout.py);
# - 2 failures mark a crashed server's target unhealthy after about 20 s.
DEREGISTRATION_DELAY_SECONDS = 30
HEALTH_CHECK_INTERVAL_SECONDS = 10
HEALTH_CHECK_TIMEOUT_SECONDS = 10
HEALTHY_THRESHOLD = 2
UNHEALTHY_THRESHOLD = 2

_AWS = "service.beta.kubernetes.io/aws-load-balancer-"
AWS_LB_ANNOTATIONS = {
    # The AWS Load Balancer Controller makes an NLB with pod IPs as targets.
    f"{_AWS}type": "external",
    f"{_AWS}nlb-target-type": "ip",
    f"{_AWS}scheme": "internet-facing",
    f"{_AWS}healthcheck-protocol": "tcp",
    f"{_AWS}healthcheck-port": "traffic-port",
    f"{_AWS}healthcheck-interval": str(HEALTH_CHECK_INTERVAL_SECONDS),
    f"{_AWS}healthcheck-timeout": str(HEALTH_CHECK_TIMEOUT_SECONDS),
    f"{_AWS}healthcheck-healthy-threshold": str(HEALTHY_THRESHOLD),
    f"{_AWS}healthcheck-unhealthy-threshold": str(UNHEALTHY_THRESHOLD),
    f"{_AWS}target-group-attributes": (
        f"deregistration_delay.timeout_seconds={DEREGISTRATION_DELAY_SECONDS}"
    ),
}

# The namespace label that has the controller's pod webhook give each new pod a readiness gate
# which turns true only once the pod's target is healthy in the NLB, so a rolling update never
# takes the next server down before its replacement serves (controller docs
# pod_readiness_gate.md). The webhook acts when a pod is created: the namespace must carry it
# before the release makes the pods, and the Service must exist before them too.
READINESS_GATE_INJECT = "elbv2.k8s.aws/pod-readiness-gate-inject"


def namespace_labels(cloud: Cloud) -> dict[str, str]:
    """AWS: the readiness gate injection (the targets are pods). Azure's load balancer targets
    the nodes, and kube-proxy already follows the pods' readiness: nothing to add."""
    return {READINESS_GATE_INJECT: "enabled"} if cloud == "aws" else {}


# The AWS Load Balancer Controller's class. Its Service webhook writes it into the spec on CREATE
# only, and Kubernetes refuses to change it once set: a later update that omitted it would be
# refused, so the program states it itself (tests/test_aws_lb_controller_facts.py has the source).
AWS_LOAD_BALANCER_CLASS = "service.k8s.aws/nlb"


def load_balancer_class(cloud: Cloud) -> str | None:
    """AWS: the controller's class; Azure: none (the cloud provider serves unclassed Services)."""
    return AWS_LOAD_BALANCER_CLASS if cloud == "aws" else None


# Azure: the Service takes a public IP the program owns (so the address survives the Service
# being replaced) by its name and resource group. Source: AKS docs, static-ip.md ("Use a static
# public IP address ... with the AKS load balancer"), which recommends these annotations;
# cloud-provider-azure v1.36.5 getPublicIPAddressResourceGroup / determinePublicIPName.
AZURE_PIP_NAME = "service.beta.kubernetes.io/azure-pip-name"
AZURE_PIP_RESOURCE_GROUP = "service.beta.kubernetes.io/azure-load-balancer-resource-group"
# The role the cluster's identity needs on the IP's resource group to read and join the IP
# (built-in "Network Contributor"; Microsoft's built-in roles reference).
NETWORK_CONTRIBUTOR_ROLE = "4d97b98b-1d4f-4787-a291-c67834d212e7"


def azure_static_ip_annotations(resource_group: str, ip_name: str) -> dict[str, str]:
    """The IP must carry none of the cloud provider's own tags (k8s-azure-service,
    k8s-azure-cluster-name): without them it counts as user-created and is never deleted with
    the Service."""
    return {AZURE_PIP_RESOURCE_GROUP: resource_group, AZURE_PIP_NAME: ip_name}


def role_definition_id(subscription_id: str, role: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    )


def address_field(cloud: Cloud) -> str:
    """AWS load balancers are reached by a DNS name, Azure's by an IP."""
    return "hostname" if cloud == "aws" else "ip"


def lb_annotations(cloud: Cloud, platform: Mapping[str, str] | None = None) -> dict[str, str]:
    """The cloud's annotations, the platform's (Azure: the static IP), and the wait. Pulumi's
    built-in Service await also waits for ready endpoints, which cannot exist before the release
    this Service feeds; `pulumi.com/waitFor` replaces it with the one wait that matters: an
    address in the status."""
    wait = {
        "pulumi.com/waitFor": f"jsonpath={{.status.loadBalancer.ingress[0].{address_field(cloud)}}}"
    }
    return {**(AWS_LB_ANNOTATIONS if cloud == "aws" else {}), **(platform or {}), **wait}


@dataclass(frozen=True)
class LbPort:
    """A TCP port of the load balancer, forwarded to the chart's container port of that name."""

    name: str
    port: int


def lb_ports() -> tuple[LbPort, ...]:
    return (LbPort("nats", CLIENT_PORT), LbPort("gateway", GATEWAY_PORT))


def ingress_address(cloud: Cloud, ingress: Sequence[Mapping[str, Any]] | None) -> str:
    """The address the cloud gave the load balancer (`status.loadBalancer.ingress[0]`)."""
    key = address_field(cloud)
    if not ingress or not ingress[0].get(key):
        raise ValueError(f"the load balancer reports no {key} yet: {ingress!r}")
    return str(ingress[0][key])
