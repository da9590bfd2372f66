"""nats-supercluster: one region of a NATS supercluster per stack (`pulumi up -s east`)."""

import pulumi

from components.cluster import build_cluster
from components.control import RegionControl, RegionControlArgs
from components.jetstream import JetStreamArgs, JetStreamResources
from components.monitoring import Monitoring, MonitoringArgs
from components.nats_region import NatsRegion, NatsRegionArgs
from components.peers import PeerStacks, check_referenced_stacks
from components.stack_config import read_stack_config
from components.trust import supercluster_trust
from components.workloads import Application, ApplicationArgs
from infra.jetstream import declared_objects
from infra.naming import base_name
from infra.nats_values import nats_context
from infra.peers import gateway_pins

config = read_stack_config()  # validated in full before any resource exists
check_referenced_stacks(config)  # peers and the CA's stack, also before any resource
name = base_name(config)

platform = build_cluster(name, config)
peers = PeerStacks(f"{name}-peers", config)
trusted, owned_cas = supercluster_trust(name, config, peers)
region = NatsRegion(f"{name}-nats", NatsRegionArgs(config, platform, trusted, peers.reading))
jetstream_servers = config.nats.replicas if config.nats.jetstream else 0
jetstream = JetStreamResources(
    f"{name}-jetstream",
    JetStreamArgs(
        objects=declared_objects(config.jetstream, config.cluster_name, config.nats.replicas),
        client_url=region.client_url,
        ca_pem=trusted.bundle_pem,
        admin_cert_pem=region.pki.admin_cert_pem,
        admin_key_pem=region.pki.admin_key_pem,
        timeout_seconds=config.jetstream.connect_timeout_seconds,
        unreachable_seconds=config.jetstream.unreachable_seconds,
        peers=peers.reading,
        # Deleted before the servers leave the meta group and before the release.
        after=[region.release, *([region.meta_peers] if region.meta_peers else [])],
    ),
)

Monitoring(
    f"{name}-monitoring",
    MonitoringArgs(config=config, kubernetes=platform.provider, after=[region.namespace]),
)

if config.app.image is not None:  # the control service runs from the services image
    RegionControl(
        f"{name}-control",
        RegionControlArgs(
            config=config,
            image=config.app.image,
            kubernetes=platform.provider,
            gateway_pins=pulumi.Output.all(region.pki.server_key_pin, peers.reading).apply(
                lambda a: gateway_pins(config.cluster_name, a[0], a[1])
            ),
            after=[region.release, region.runtime_config, region.pki.client_secrets["control"]],
        ),
    )

if config.app.enabled:
    Application(
        f"{name}-app",
        ApplicationArgs(
            config=config,
            image=config.require_app_image(),
            kubernetes=platform.provider,
            client_secrets=region.pki.client_secrets,
            storage_class=platform.storage_class_name,
            after=[region.release, *jetstream.objects.values()],
        ),
    )

pulumi.export("cloud", config.cloud)
pulumi.export("region", config.region)
pulumi.export("clusterName", platform.cluster_name)
pulumi.export("kubeconfig", platform.kubeconfig)
pulumi.export("natsClusterName", config.cluster_name)
pulumi.export("clientUrl", region.client_url)
pulumi.export("gatewayUrl", region.gateway_url)
pulumi.export("gatewayPin", region.pki.server_key_pin)  # the servers' public key, pinned by cuts
pulumi.export("jetstreamServers", jetstream_servers)
pulumi.export("jetstream", jetstream.summary)
pulumi.export("jetstreamQuorum", peers.jetstream_quorum(config.cluster_name, jetstream_servers))
pulumi.export("caCert", trusted.bundle_pem)  # every trusted CA generation
if owned_cas is not None:
    pulumi.export("caCerts", owned_cas.certs)
    pulumi.export("caKeys", owned_cas.keys)  # a secret; the other regions sign with them
pulumi.export(
    "natsContext",
    pulumi.Output.secret(
        pulumi.Output.all(
            region.client_url,
            trusted.bundle_pem,
            region.pki.admin_cert_pem,
            region.pki.admin_key_pem,
        ).apply(lambda a: nats_context(config.stack, a[0], a[1], a[2], a[3]))
    ),
)
