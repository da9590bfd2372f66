"""nats-supercluster: one region of a NATS supercluster per stack (`pulumi up -s east`)."""

import pulumi

from components.cluster import build_cluster
from components.stack_config import read_stack_config
from infra.naming import base_name

config = read_stack_config()  # validated in full before any resource exists
platform = build_cluster(base_name(config), config)

pulumi.export("cloud", config.cloud)
pulumi.export("region", config.region)
pulumi.export("natsClusterName", config.cluster_name)
pulumi.export("clusterName", platform.cluster_name)
pulumi.export("kubeconfig", platform.kubeconfig)
