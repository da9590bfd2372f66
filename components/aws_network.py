"""The VPC the EKS cluster lives in: public and private subnets over the configured zones."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
from pulumi_aws import ec2

from infra.network import elb_subnet_tags, subnet_plan


@dataclass(frozen=True)
class AwsNetworkArgs:
    cluster_name: str
    vpc_cidr: ipaddress.IPv4Network
    zones: tuple[str, ...]
    nat_per_zone: bool


class AwsNetwork(pulumi.ComponentResource):
    """VPC, internet gateway, NAT gateway(s), and per zone a public subnet (load balancers, NAT)
    and a private subnet (nodes and pods) with the tags the Load Balancer Controller looks for."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    public_subnet_ids: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: AwsNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("nats-supercluster:aws:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        vpc = ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(args.vpc_cidr),
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": name},
            opts=child,
        )
        igw = ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={"Name": name}, opts=child)
        public_routes = ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={"Name": f"{name}-public"},
            opts=child,
        )

        public_ids: list[pulumi.Output[str]] = []
        private_ids: list[pulumi.Output[str]] = []
        nat_ids: list[pulumi.Output[str]] = []
        for plan in subnet_plan(args.vpc_cidr, args.zones):
            public = ec2.Subnet(
                f"{name}-public-{plan.zone}",
                vpc_id=vpc.id,
                cidr_block=str(plan.public),
                availability_zone=plan.zone,
                map_public_ip_on_launch=False,
                tags={
                    "Name": f"{name}-public-{plan.zone}",
                    **elb_subnet_tags(args.cluster_name, public=True),
                },
                opts=child,
            )
            ec2.RouteTableAssociation(
                f"{name}-public-{plan.zone}",
                subnet_id=public.id,
                route_table_id=public_routes.id,
                opts=child,
            )
            public_ids.append(public.id)
            if args.nat_per_zone or not nat_ids:
                eip = ec2.Eip(
                    f"{name}-nat-{plan.zone}",
                    domain="vpc",
                    tags={"Name": f"{name}-nat-{plan.zone}"},
                    opts=child,
                )
                nat = ec2.NatGateway(
                    f"{name}-nat-{plan.zone}",
                    allocation_id=eip.id,
                    subnet_id=public.id,
                    tags={"Name": f"{name}-nat-{plan.zone}"},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
                nat_ids.append(nat.id)

            private = ec2.Subnet(
                f"{name}-private-{plan.zone}",
                vpc_id=vpc.id,
                cidr_block=str(plan.private),
                availability_zone=plan.zone,
                tags={
                    "Name": f"{name}-private-{plan.zone}",
                    **elb_subnet_tags(args.cluster_name, public=False),
                },
                opts=child,
            )
            private_routes = ec2.RouteTable(
                f"{name}-private-{plan.zone}",
                vpc_id=vpc.id,
                routes=[
                    ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat_ids[-1])
                ],
                tags={"Name": f"{name}-private-{plan.zone}"},
                opts=child,
            )
            ec2.RouteTableAssociation(
                f"{name}-private-{plan.zone}",
                subnet_id=private.id,
                route_table_id=private_routes.id,
                opts=child,
            )
            private_ids.append(private.id)

        self.vpc_id = vpc.id
        self.private_subnet_ids = pulumi.Output.all(*private_ids)
        self.public_subnet_ids = pulumi.Output.all(*public_ids)
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "privateSubnetIds": self.private_subnet_ids,
                "publicSubnetIds": self.public_subnet_ids,
            }
        )
