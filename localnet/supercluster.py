"""Several local regions joined into a supercluster, in deploy order: like `pulumi up -s east`
then `-s west`, each region lists only the regions deployed before it as gateway peers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra.nats_values import Gateway, RegionNames, RegionSpec, gateway_url
from infra.pki import ca_spec, is_ip
from localnet.pki import Issued, issue_ca
from localnet.region import LOOPBACK, LocalRegion, free_port

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
) -> list[LocalRegion]:
    ca = ca or issue_ca(ca_spec(project))
    gateway_ports = {p.cluster: free_port(p.lb_address) for p in plans}
    hosts = {
        f"{names.pod(i)}.{names.headless_service}": LOOPBACK
        for names, replicas in ((RegionNames(p.cluster, NAMESPACE), p.replicas) for p in plans)
        for i in range(replicas)
    }
    hosts.update({p.endpoint: p.lb_address for p in plans if not is_ip(p.endpoint)})
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
                hosts=hosts,
                standalone=plan.standalone,
                gateway_delay_ms=plan.gateway_delay_ms,
            )
        )
    return regions
