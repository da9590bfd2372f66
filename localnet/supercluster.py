"""Several local regions joined into a supercluster, in deploy order: like `pulumi up -s east`
then `-s west`, each region lists only the regions deployed before it as gateway peers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from infra.nats_values import Gateway, RegionNames, RegionSpec, gateway_url
from infra.pki import ca_spec, is_ip
from infra.region_servers import RegionRelease, route_hosts
from localnet.links import link_address
from localnet.pki import Issued, issue_ca
from localnet.ports import LOOPBACK, free_port
from localnet.region import LocalRegion

NAMESPACE = "nats"


@dataclass(frozen=True)
class RegionPlan:
    cluster: str
    # The load balancer's public name or address, as the cloud would report it.
    endpoint: str
    # Where that load balancer listens on this machine (a loopback address).
    lb_address: str
    server_name_prefix: str
    replicas: int = 3
    jetstream: bool = True
    # One server with no routes or gateways (see localnet.region.localize).
    standalone: bool = False
    gateway_delay_ms: float = 0.0


def plan_supercluster(
    workdir: Path,
    plans: list[RegionPlan],
    *,
    project: str = "nats-supercluster",
    ca: Issued | None = None,
    linked: bool = False,
) -> list[LocalRegion]:
    """`linked`: each region reaches each other region's gateway through a link of its own
    (localnet.links.GatewayLinks), so one pair of regions can be cut apart while the others
    stay connected. It needs every endpoint to be a name, which each region resolves to its
    link."""
    ca = ca or issue_ca(ca_spec(project))
    gateway_ports = {p.cluster: free_port(p.lb_address) for p in plans}
    # Every name a route may give a server (infra/region_servers.py route_hosts), as the
    # cluster's DNS resolves them.
    hosts = {
        host: LOOPBACK
        for plan in plans
        for i in range(plan.replicas)
        for host in route_hosts(
            RegionNames(plan.cluster, NAMESPACE).pod(i), RegionRelease(plan.cluster, NAMESPACE)
        )
    }
    hosts.update({p.endpoint: p.lb_address for p in plans if not is_ip(p.endpoint)})
    if linked and any(is_ip(p.endpoint) for p in plans):
        raise ValueError("linked regions need load balancer names, not addresses")
    regions: list[LocalRegion] = []
    for index, plan in enumerate(plans):
        peers = tuple(
            Gateway(before.cluster, gateway_url(before.endpoint, gateway_ports[before.cluster]))
            for before in plans[:index]
        )
        spec = RegionSpec(
            names=RegionNames(plan.cluster, NAMESPACE),
            replicas=plan.replicas,
            endpoint=plan.endpoint,
            peers=peers,
            server_name_prefix=plan.server_name_prefix,
            jetstream=plan.jetstream,
            storage_class="local",
            storage_size="1Gi",
            gateway_port=gateway_ports[plan.cluster],
        )
        regions.append(
            LocalRegion(
                spec=spec,
                workdir=workdir / plan.cluster,
                ca=ca,
                lb_address=plan.lb_address,
                lb_client_port=free_port(plan.lb_address),
                hosts=(
                    {
                        **hosts,
                        **{
                            other.endpoint: link_address(index, other_index)
                            for other_index, other in enumerate(plans)
                            if other_index != index
                        },
                    }
                    if linked
                    else hosts
                ),
                standalone=plan.standalone,
                gateway_delay_ms=plan.gateway_delay_ms,
            )
        )
    return regions


@contextlib.contextmanager
def running_supercluster(
    workdir: Path, plans: list[RegionPlan]
) -> Iterator[dict[str, LocalRegion]]:
    """The planned regions' servers, started for the block and stopped after it, whatever
    happens (a region that failed to start included), by region name."""
    planned = plan_supercluster(workdir, plans)
    try:
        for region in planned:
            region.write()
            region.start()
        yield {r.name: r for r in planned}
    finally:
        for region in planned:
            region.stop()
