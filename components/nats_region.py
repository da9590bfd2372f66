"""One NATS region in one pass: load balancer first, then certificates naming it, then the chart
with the load balancer as the gateway `advertise` and the peers' gateways."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.core.v1 import ConfigMap, Namespace
from pulumi_kubernetes.helm.v3 import Release, ReleaseArgs, RepositoryOptsArgs
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from components.endpoint import NatsEndpoint, NatsEndpointArgs
from components.meta_peers import MetaPeers, MetaPeersArgs
from components.pki import RegionPki, RegionPkiArgs, Trust
from components.platform import KubernetesPlatform
from infra.config import StackConfig
from infra.control_plane import runtime_config_map
from infra.endpoint import namespace_labels
from infra.monitoring import Scraping
from infra.nats_values import (
    NATS_CHART,
    NATS_CHART_REPO,
    NATS_CHART_VERSION,
    RegionNames,
    RegionSpec,
    Resources,
    chart_values,
    client_url,
    gateway_url,
    server_name_prefix,
)
from infra.peers import PeerReading, peer_gateways
from infra.rollout import release_timeout_seconds


@dataclass(frozen=True)
class NatsRegionArgs:
    config: StackConfig
    platform: KubernetesPlatform
    trust: Trust
    peers: pulumi.Output[PeerReading]


class NatsRegion(pulumi.ComponentResource):
    endpoint: pulumi.Output[str]
    client_url: pulumi.Output[str]
    gateway_url: pulumi.Output[str]
    pki: RegionPki
    namespace: Namespace
    release: Release
    runtime_config: ConfigMap
    # The servers' membership in the JetStream meta group (None without JetStream).
    meta_peers: MetaPeers | None

    def __init__(
        self, name: str, args: NatsRegionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("nats-supercluster:nats:Region", name, None, opts)
        cfg = args.config
        platform = args.platform
        names = RegionNames(cfg.cluster_name, cfg.nats.namespace)
        on_cluster = pulumi.ResourceOptions(
            parent=self,
            provider=platform.provider,
            depends_on=list(platform.workload_dependencies),
        )
        # Labelled on creation: the LB controller injects readiness gates only into pods made
        # after the label (infra.endpoint.namespace_labels), and the release follows this.
        self.namespace = Namespace(
            f"{name}-ns",
            metadata=ObjectMetaArgs(name=names.namespace, labels=namespace_labels(cfg.cloud)),
            opts=on_cluster,
        )
        namespace_name = self.namespace.metadata.apply(lambda m: str(m.name))

        public = NatsEndpoint(
            f"{name}-endpoint",
            NatsEndpointArgs(
                cloud=cfg.cloud,
                names=names,
                namespace=namespace_name,
                kubernetes=platform.provider,
                runs_on=[*platform.workload_dependencies, *platform.lb_dependencies],
                platform_annotations=platform.lb_annotations,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.endpoint = public.address
        self.pki = RegionPki(
            f"{name}-pki",
            RegionPkiArgs(
                names=names,
                trust=args.trust,
                endpoint=public.address,
                kubernetes=platform.provider,
                namespace=namespace_name,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        def values(endpoint: str, reading: PeerReading, storage_class: str) -> dict[str, object]:
            return chart_values(
                RegionSpec(
                    names=names,
                    replicas=cfg.nats.replicas,
                    endpoint=endpoint,
                    peers=peer_gateways(reading),
                    server_name_prefix=server_name_prefix(cfg.cloud, cfg.region),
                    jetstream=cfg.nats.jetstream,
                    storage_class=storage_class,
                    storage_size=cfg.nats.storage_size,
                    resources=Resources(cpu=cfg.nats.cpu, memory=cfg.nats.memory),
                    zonal=bool(cfg.nodes.zones),
                    scraping=Scraping.of(cfg.monitoring),
                )
            )

        # The runtime configuration the servers include: made here once, then the control
        # service's; its data is never reverted by a later `pulumi up`.
        runtime = runtime_config_map(names)
        self.runtime_config = ConfigMap(
            f"{name}-runtime",
            metadata=ObjectMetaArgs(name=runtime["metadata"]["name"], namespace=namespace_name),
            data=runtime["data"],
            opts=pulumi.ResourceOptions.merge(
                on_cluster, pulumi.ResourceOptions(ignore_changes=["data"])
            ),
        )
        self.release = Release(
            f"{name}-release",
            ReleaseArgs(
                name=names.release,
                chart=NATS_CHART,
                version=NATS_CHART_VERSION,
                repository_opts=RepositoryOptsArgs(repo=NATS_CHART_REPO),
                namespace=namespace_name,
                values=pulumi.Output.all(
                    public.address, args.peers, platform.storage_class_name
                ).apply(lambda a: values(a[0], a[1], a[2])),
                # Covers a roll of every server, each step waiting for its NLB target on AWS.
                timeout=release_timeout_seconds(cfg.cloud, cfg.nats.replicas),
                atomic=True,
                cleanup_on_fail=True,
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=platform.provider,
                depends_on=[
                    public.service,
                    self.pki.server_secret,
                    self.pki.ca_secret,
                    self.runtime_config,
                    *platform.workload_dependencies,
                ],
            ),
        )
        self.client_url = public.address.apply(client_url)
        self.gateway_url = public.address.apply(gateway_url)
        self.meta_peers = None
        if cfg.nats.jetstream:
            prefix = server_name_prefix(cfg.cloud, cfg.region)
            self.meta_peers = MetaPeers(
                f"{name}-meta-peers",
                MetaPeersArgs(
                    server_name_prefix=prefix,
                    servers=[prefix + names.pod(i) for i in range(cfg.nats.replicas)],
                    client_url=self.client_url,
                    ca_pem=args.trust.bundle_pem,
                    control_cert_pem=self.pki.control_cert_pem,
                    control_key_pem=self.pki.control_key_pem,
                    tls_hostname=public.address,
                    connect_timeout_seconds=cfg.jetstream.connect_timeout_seconds,
                    unreachable_seconds=cfg.jetstream.unreachable_seconds,
                    after=[self.release],
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs(
            {
                "clientUrl": self.client_url,
                "gatewayUrl": self.gateway_url,
                "release": self.release.status,
            }
        )
