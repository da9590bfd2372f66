"""The AWS network plan: one private and one public subnet per zone, carved from the VPC range."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from infra.cloud_facts import EKS_UNSUPPORTED_ZONE_IDS


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


class ZoneError(ValueError):
    """A configured zone the account cannot give EKS; the message says which and what to use."""


def check_eks_zones(
    region: str, configured: Sequence[str], names: Sequence[str], zone_ids: Sequence[str]
) -> tuple[str, ...]:
    """The configured zones, checked against the account's own zones (`names` and `zone_ids`,
    as EC2 DescribeAvailabilityZones answers during preview): each must exist, and its zone ID
    must be one where EKS places clusters. Zone names map to different zone IDs in each account,
    so this cannot be decided from the config alone."""
    ids = dict(zip(names, zone_ids, strict=True))
    refused = EKS_UNSUPPORTED_ZONE_IDS.get(region, frozenset())
    problems = []
    for zone in configured:
        if zone not in ids:
            problems.append(f"{zone} is not an available zone of {region} in this account")
        elif ids[zone] in refused:
            problems.append(
                f"{zone} is zone {ids[zone]} in this account, where EKS cannot place a cluster "
                "(UnsupportedAvailabilityZoneException)"
            )
    if problems:
        usable = ", ".join(f"{n} ({i})" for n, i in sorted(ids.items()) if i not in refused)
        raise ZoneError(
            f"nodes.zones: {'; '.join(problems)}. Set nodes.zones to 2 or 3 of: {usable}"
        )
    return tuple(configured)
