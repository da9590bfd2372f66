"""Stack `west` (Azure) evaluated as a whole under mocks."""

from __future__ import annotations

import base64
import json

from offline.evaluate import Evaluation, evaluate_stack
from offline.mocks_common import SECRET_SIG, SIG_KEY
from offline.stack_files import load_stack_config
from tests.conftest import after, depends_on

CLUSTER = "azure-native:containerservice:ManagedCluster"
GROUP = "azure-native:resources:ResourceGroup"
STORAGE = "kubernetes:storage.k8s.io/v1:StorageClass"
RELEASE = "kubernetes:helm.sh/v3:Release"


def test_cluster_lives_in_its_resource_group_in_westus(west: Evaluation) -> None:
    group, cluster = west.one(GROUP), west.one(CLUSTER)
    assert group.inputs["location"] == "westus"
    assert cluster.inputs["location"] == "westus"
    assert cluster.inputs["resourceGroupName"] == group.state["name"]
    assert depends_on(west, cluster, group)
    assert cluster.inputs["resourceName"] == "nats-supercluster-west"
    assert cluster.inputs["identity"] == {"type": "SystemAssigned"}
    assert cluster.inputs["kubernetesVersion"] == "1.35"
    assert cluster.inputs["enableRBAC"] is True
    assert group.inputs["tags"]["stack"] == "west"


def test_node_pool_in_westus_has_no_zones_and_autoscales(west: Evaluation) -> None:
    """westus has no availability zones (Microsoft's region list): AKS refuses zones there.
    The autoscaler owns the size: `count` is the size at creation and later changes to it are
    ignored (a property path in camelCase, as the engine takes it)."""
    cluster = west.one(CLUSTER)
    (pool,) = cluster.inputs["agentPoolProfiles"]
    assert "availabilityZones" not in pool
    assert cluster.ignore_changes == ["agentPoolProfiles[0].count"]
    assert pool["enableAutoScaling"] is True
    assert (pool["count"], pool["minCount"], pool["maxCount"]) == (3, 3, 6)
    assert pool["vmSize"] == "Standard_D2s_v5"
    assert pool["mode"] == "System"


def test_network_profile_keeps_ranges_from_config(west: Evaluation) -> None:
    network = west.one(CLUSTER).inputs["networkProfile"]
    assert network["networkPlugin"] == "azure"
    assert network["networkPluginMode"] == "overlay"
    assert (network["podCidr"], network["serviceCidr"], network["dnsServiceIP"]) == (
        "10.244.0.0/16",
        "10.0.0.0/16",
        "10.0.0.10",
    )
    assert network["loadBalancerSku"] == "standard"


def test_user_credentials_become_a_secret_kubeconfig_and_provider(west: Evaluation) -> None:
    assert "azure-native:containerservice:listManagedClusterUserCredentials" in west.invokes
    provider = west.one("pulumi:providers:kubernetes")
    wrapped = provider.inputs["kubeconfig"]
    assert wrapped[SIG_KEY] == SECRET_SIG
    kubeconfig = json.loads(wrapped["value"])
    assert kubeconfig["clusters"][0]["cluster"]["server"].endswith(".hcp.westus.azmk8s.io:443")
    assert kubeconfig["current-context"] == "nats-supercluster-west"
    output = west.outputs["kubeconfig"]
    assert output.secret
    assert json.loads(output.value) == kubeconfig
    assert {k for k, v in west.outputs.items() if v.secret} == {"kubeconfig", "natsContext"}


def test_jetstream_storage_class_is_made_on_the_cluster(west: Evaluation) -> None:
    storage = west.one(STORAGE)
    assert storage.inputs["provisioner"] == "disk.csi.azure.com"
    assert storage.inputs["parameters"]["skuName"] == "Premium_LRS"
    assert storage.inputs["volumeBindingMode"] == "WaitForFirstConsumer"
    provider = west.one("pulumi:providers:kubernetes")
    assert storage.provider.startswith(provider.urn)
    assert depends_on(west, storage, west.one(CLUSTER))


def test_every_resource_sits_under_a_top_level_component(west: Evaluation) -> None:
    top_level = {
        "nats-supercluster:azure:AksCluster",
        "nats-supercluster:nats:PeerStacks",
        "nats-supercluster:nats:Region",
        "nats-supercluster:nats:JetStream",
        "nats-supercluster:app:Application",
        "nats-supercluster:nats:Control",
        "nats-supercluster:monitoring:Monitoring",
    }
    for resource in west.resources:
        if resource.type in top_level:
            continue
        assert west.ancestors(resource)[-1].type in top_level, resource.name
    cluster_children = [r for r in west.resources if r.type.startswith("azure-native:")]
    assert all(
        west.ancestors(r)[-1].type == "nats-supercluster:azure:AksCluster" for r in cluster_children
    )


def test_regional_azure_cluster_and_options_from_config(east: Evaluation) -> None:
    config = load_stack_config("west")
    config["nats-supercluster:region"] = "westus2"  # zone-redundant disks need a zonal region
    config["nats-supercluster:nodes"] = json.dumps({"zones": [], "count": 4, "maxCount": 9})
    config["nats-supercluster:aks"] = json.dumps(
        {"skuTier": "Free", "diskSku": "Premium_ZRS", "authorizedIpRanges": ["203.0.113.0/24"]}
    )
    ev = evaluate_stack("west", config, stack_outputs=after(east))
    cluster = ev.one(CLUSTER)
    (pool,) = cluster.inputs["agentPoolProfiles"]
    assert "availabilityZones" not in pool
    assert (pool["count"], pool["maxCount"]) == (4, 9)
    assert cluster.inputs["sku"] == {"name": "Base", "tier": "Free"}
    assert cluster.inputs["apiServerAccessProfile"]["authorizedIPRanges"] == ["203.0.113.0/24"]
    assert ev.one(STORAGE).inputs["parameters"]["skuName"] == "Premium_ZRS"


def test_mocked_credentials_are_what_the_kubeconfig_carries(west: Evaluation) -> None:
    # The mocks answer like AKS: base64 of a kubeconfig. The program must decode, not pass it on.
    raw = west.outputs["kubeconfig"].value
    assert not raw.startswith(base64.b64encode(b"{").decode())
    assert json.loads(raw)["kind"] == "Config"


def test_servers_spread_over_hosts_where_there_are_no_zones(
    east: Evaluation, west: Evaluation
) -> None:
    def spread(ev: Evaluation) -> set[str]:
        release = next(r for r in ev.of_type(RELEASE) if r.name.endswith("-nats-release"))
        return set(release.inputs["values"]["podTemplate"]["topologySpreadConstraints"])

    assert spread(west) == {"kubernetes.io/hostname"}
    assert spread(east) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
