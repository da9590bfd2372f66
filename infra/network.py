"""The AWS network plan: one private and one public subnet per zone, carved from the VPC range."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class ZoneSubnets:
    zone: str
    private: ipaddress.IPv4Network
    public: ipaddress.IPv4Network


def subnet_plan(vpc: ipaddress.IPv4Network, zones: tuple[str, ...]) -> list[ZoneSubnets]:
    """Split the VPC into quarters: three large private quarters (pods take VPC addresses under the
    VPC CNI) and the fourth split again for the small public subnets that hold load balancers and
    NAT gateways."""
    if not 1 <= len(zones) <= 3:
        raise ValueError(f"the plan holds 1 to 3 zones, not {len(zones)}")
    quarters = list(vpc.subnets(prefixlen_diff=2))
    publics = list(quarters[3].subnets(prefixlen_diff=2))
    return [
        ZoneSubnets(zone=zone, private=quarters[i], public=publics[i])
        for i, zone in enumerate(zones)
    ]


def elb_subnet_tags(cluster_name: str, *, public: bool) -> dict[str, str]:
    """Tags the AWS Load Balancer Controller uses to find subnets for internet-facing (public)
    and internal (private) load balancers."""
    role = "kubernetes.io/role/elb" if public else "kubernetes.io/role/internal-elb"
    return {role: "1", f"kubernetes.io/cluster/{cluster_name}": "shared"}
