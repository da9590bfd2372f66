"""Stack `east` (AWS) evaluated as a whole under mocks: what exists, what flows, what waits."""

from __future__ import annotations

import ipaddress
import json

import pytest

from infra.config import ConfigError, parse_stack_config
from offline.evaluate import Evaluation, EvaluationError, evaluate_stack
from offline.mocks import CloudMocks
from offline.mocks_aws import MockAccount
from offline.mocks_common import SECRET_SIG, SIG_KEY
from offline.stack_files import load_stack_config
from tests.conftest import depends_on, named

CLUSTER = "aws:eks/cluster:Cluster"
NODES = "aws:eks/nodeGroup:NodeGroup"
SUBNET = "aws:ec2/subnet:Subnet"
RELEASE = "kubernetes:helm.sh/v3:Release"
STORAGE = "kubernetes:storage.k8s.io/v1:StorageClass"
ADDON = "aws:eks/addon:Addon"
ROLE = "aws:iam/role:Role"
OIDC = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
# The components __main__.py builds; everything else is created inside one of them.
TOP_LEVEL = {
    "nats-supercluster:aws:EksCluster",
    "nats-supercluster:nats:PeerStacks",
    "nats-supercluster:pki:SuperclusterCa",
    "nats-supercluster:nats:Region",
    "nats-supercluster:nats:JetStream",
    "nats-supercluster:app:Application",
    "nats-supercluster:nats:Control",
    "nats-supercluster:monitoring:Monitoring",
}


def test_network_spans_three_zones_with_tagged_subnets(east: Evaluation) -> None:
    vpc = east.one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["cidrBlock"] == "10.10.0.0/16"
    subnets = east.of_type(SUBNET)
    assert len(subnets) == 6
    zones = {s.inputs["availabilityZone"] for s in subnets}
    assert zones == {"us-east-1a", "us-east-1b", "us-east-1c"}
    for subnet in subnets:
        tags = subnet.inputs["tags"]
        assert tags["kubernetes.io/cluster/nats-supercluster-east"] == "shared"
        role = (
            "kubernetes.io/role/elb"
            if "-public-" in subnet.name
            else "kubernetes.io/role/internal-elb"
        )
        assert tags[role] == "1"
        assert ipaddress.IPv4Network(subnet.inputs["cidrBlock"]).subnet_of(
            ipaddress.IPv4Network("10.10.0.0/16")
        )
    nats = east.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == 3
    for zone in ("us-east-1a", "us-east-1b", "us-east-1c"):
        routes = named(east, "aws:ec2/routeTable:RouteTable", f"-private-{zone}")
        (own_nat,) = [n for n in nats if n.name.endswith(zone)]
        assert routes.inputs["routes"][0]["natGatewayId"].startswith("nat-")
        assert depends_on(east, routes, own_nat)
        assert not any(depends_on(east, routes, n) for n in nats if n is not own_nat)
    assert len(east.of_type("aws:ec2/internetGateway:InternetGateway")) == 1


def test_cluster_uses_api_auth_encryption_and_private_subnets(east: Evaluation) -> None:
    cluster = east.one(CLUSTER)
    assert cluster.inputs["name"] == "nats-supercluster-east"
    assert cluster.inputs["version"] == "1.35"
    assert cluster.inputs["accessConfig"]["authenticationMode"] == "API"
    assert cluster.inputs["encryptionConfig"]["resources"] == ["secrets"]
    key = east.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    assert cluster.inputs["encryptionConfig"]["provider"]["keyArn"] == key.state["arn"]
    assert cluster.inputs["upgradePolicy"] == {"supportType": "STANDARD"}
    private = [s for s in east.of_type(SUBNET) if "-private-" in s.name]
    assert all(depends_on(east, cluster, s) for s in private)
    public = [s for s in east.of_type(SUBNET) if "-public-" in s.name]
    assert not any(depends_on(east, cluster, s) for s in public)


def test_node_group_runs_in_private_subnets_after_its_policies(east: Evaluation) -> None:
    nodes = east.one(NODES)
    assert nodes.inputs["scalingConfig"] == {"desiredSize": 3, "minSize": 3, "maxSize": 6}
    assert nodes.inputs["instanceTypes"] == ["m6i.large"]
    assert nodes.inputs["clusterName"] == "nats-supercluster-east"
    assert len(nodes.inputs["subnetIds"]) == 3
    assert all(i.startswith("subnet-") for i in nodes.inputs["subnetIds"])
    private = [s for s in east.of_type(SUBNET) if "-private-" in s.name]
    assert all(depends_on(east, nodes, s) for s in private)
    node_policies = [
        r
        for r in east.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if "-node-role-" in r.name
    ]
    assert {p.inputs["policyArn"].rsplit("/", 1)[-1] for p in node_policies} == {
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonEC2ContainerRegistryReadOnly",
    }
    assert all(p.urn in nodes.dependencies for p in node_policies)
    assert depends_on(east, nodes, east.one(CLUSTER))


def test_oidc_issuer_flows_into_irsa_trust_policies(east: Evaluation) -> None:
    cluster = east.one(CLUSTER)
    issuer = cluster.state["identities"][0]["oidcs"][0]["issuer"]
    oidc = east.one(OIDC)
    assert oidc.inputs["url"] == issuer
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    host = issuer.removeprefix("https://")
    expected = {
        "ebs-csi-role": "system:serviceaccount:kube-system:ebs-csi-controller-sa",
        "lbc-role": "system:serviceaccount:kube-system:aws-load-balancer-controller",
    }
    for suffix, subject in expected.items():
        trust = json.loads(named(east, ROLE, suffix).inputs["assumeRolePolicy"])
        (statement,) = trust["Statement"]
        assert statement["Principal"]["Federated"] == oidc.state["arn"]
        assert statement["Condition"]["StringEquals"][f"{host}:sub"] == subject


def test_ebs_csi_addon_waits_for_nodes_and_backs_the_default_gp3_class(east: Evaluation) -> None:
    addon = east.one(ADDON)
    assert addon.inputs["addonName"] == "aws-ebs-csi-driver"
    assert addon.inputs["serviceAccountRoleArn"] == named(east, ROLE, "ebs-csi-role").state["arn"]
    assert depends_on(east, addon, east.one(NODES))
    gp3 = east.one(STORAGE)
    assert gp3.inputs["metadata"]["name"] == "gp3"
    assert gp3.inputs["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"
    }
    assert gp3.inputs["provisioner"] == "ebs.csi.aws.com"
    assert gp3.inputs["parameters"]["type"] == "gp3"
    assert depends_on(east, gp3, addon)


def test_lb_controller_release_is_pinned_and_wired_to_its_role_and_vpc(east: Evaluation) -> None:
    release = named(east, RELEASE, "lbc-release")
    assert release.inputs["chart"] == "aws-load-balancer-controller"
    assert release.inputs["version"] == "1.13.0"
    assert release.inputs["namespace"] == "kube-system"
    values = release.inputs["values"]
    assert values["clusterName"] == "nats-supercluster-east"
    vpc_id = east.one("aws:ec2/vpc:Vpc")
    assert values["vpcId"].startswith("vpc-")
    assert depends_on(east, release, vpc_id)
    role = named(east, ROLE, "lbc-role")
    assert (
        values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"] == role.state["arn"]
    )
    policy = east.one("aws:iam/policy:Policy")
    assert json.loads(policy.inputs["policy"])["Statement"]


def test_destroy_order_removes_cluster_objects_before_nodes_and_cluster(east: Evaluation) -> None:
    nodes, cluster = east.one(NODES), east.one(CLUSTER)
    for k8s_object in (named(east, RELEASE, "lbc-release"), east.one(STORAGE)):
        assert depends_on(east, k8s_object, nodes), k8s_object.name
        assert depends_on(east, k8s_object, cluster), k8s_object.name
    assert depends_on(east, nodes, cluster)
    assert depends_on(east, cluster, east.one("aws:ec2/vpc:Vpc"))


def test_every_resource_has_a_parent_and_aws_ones_use_the_stack_region(east: Evaluation) -> None:
    provider = east.one("pulumi:providers:aws")
    assert provider.inputs["region"] == "us-east-1"
    default_tags = json.loads(provider.inputs["defaultTags"])["tags"]
    assert default_tags["stack"] == "east"
    for resource in east.resources:
        if resource.type in TOP_LEVEL:
            continue
        assert resource.parent, resource.name
        assert east.ancestors(resource)[-1].type in TOP_LEVEL
        if resource.type.startswith("aws:"):
            assert resource.provider.startswith(provider.urn), resource.name
        if resource.type.startswith("kubernetes:"):
            assert "pulumi:providers:kubernetes" in resource.provider


def test_kubeconfig_is_secret_everywhere_and_points_at_the_cluster(east: Evaluation) -> None:
    k8s_provider = east.one("pulumi:providers:kubernetes")
    wrapped = k8s_provider.inputs["kubeconfig"]
    assert wrapped[SIG_KEY] == SECRET_SIG
    kubeconfig = json.loads(wrapped["value"])
    cluster = east.one(CLUSTER)
    assert kubeconfig["clusters"][0]["cluster"]["server"] == cluster.state["endpoint"]
    assert (
        kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]
        == cluster.state["certificateAuthority"]["data"]
    )
    output = east.outputs["kubeconfig"]
    assert output.secret
    assert json.loads(output.value) == kubeconfig
    assert {k for k, v in east.outputs.items() if v.secret} == {
        "kubeconfig",
        "caKeys",
        "natsContext",
    }
    assert east.outputs["region"].value == "us-east-1"
    assert east.outputs["clusterName"].value == "nats-supercluster-east"


def test_single_nat_and_admin_principals_change_the_graph() -> None:
    config = load_stack_config("east")
    config["nats-supercluster:eks"] = json.dumps(
        {
            "natGateways": "single",
            "adminPrincipalArns": ["arn:aws:iam::123456789012:role/platform-admins"],
        }
    )
    config["nats-supercluster:nodes"] = json.dumps({"zones": ["us-east-1a", "us-east-1b"]})
    ev = evaluate_stack("east", config)
    (nat,) = ev.of_type("aws:ec2/natGateway:NatGateway")
    private_routes = [
        r for r in ev.of_type("aws:ec2/routeTable:RouteTable") if "-private-" in r.name
    ]
    assert len(private_routes) == 2
    assert all(depends_on(ev, r, nat) for r in private_routes)
    assert len(ev.of_type(SUBNET)) == 4
    entries = ev.of_type(ACCESS_ENTRY)
    assert {e.inputs["principalArn"] for e in entries} == {RUNNER_ROLE, PLATFORM_ADMINS}
    for association in ev.of_type(ACCESS_POLICY):
        assert association.inputs["policyArn"].endswith("AmazonEKSClusterAdminPolicy")
        assert association.inputs["accessScope"] == {"type": "cluster"}


# Who runs `pulumi up` in the mocked account: an STS session of the CI role, whose IAM path is
# /ci/. EKS records the role, with its path, never the session ARN.
RUNNER_ROLE = "arn:aws:iam::123456789012:role/ci/nats-supercluster-ci"
PLATFORM_ADMINS = "arn:aws:iam::123456789012:role/platform-admins"
ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
ACCESS_POLICY = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"


def test_the_runner_gets_cluster_admin_through_an_entry_the_program_manages(
    east: Evaluation,
) -> None:
    cluster = east.one(CLUSTER)
    assert cluster.inputs["accessConfig"]["bootstrapClusterCreatorAdminPermissions"] is False
    (entry,) = east.of_type(ACCESS_ENTRY)
    assert entry.inputs["principalArn"] == RUNNER_ROLE
    (association,) = east.of_type(ACCESS_POLICY)
    provider = east.one("pulumi:providers:kubernetes")
    # Objects are made after the runner may make them, and deleted before it loses the right.
    assert depends_on(east, provider, association)
    assert depends_on(east, named(east, RELEASE, "-nats-release"), association)
    assert {"aws:index/getCallerIdentity:getCallerIdentity"} <= set(east.invokes)


def test_listing_the_runner_as_an_admin_makes_one_entry_not_a_conflict() -> None:
    """EKS allows one access entry per principal (ResourceInUseException otherwise, which the
    mocks answer too); listing the identity that runs `pulumi up` used to hit exactly that."""
    config = load_stack_config("east")
    config["nats-supercluster:eks"] = json.dumps(
        {"adminPrincipalArns": [PLATFORM_ADMINS, RUNNER_ROLE, PLATFORM_ADMINS]}
    )
    with pytest.raises(ConfigError, match="must not repeat"):
        parse_stack_config(config, project="nats-supercluster", stack="east")
    config["nats-supercluster:eks"] = json.dumps({"adminPrincipalArns": [RUNNER_ROLE]})
    ev = evaluate_stack("east", config)
    assert [e.inputs["principalArn"] for e in ev.of_type(ACCESS_ENTRY)] == [RUNNER_ROLE]


def test_the_mocks_refuse_a_second_entry_for_a_principal_as_eks_does() -> None:
    mocks = CloudMocks("us-east-1")
    mocks._eks_cluster(
        "c", {"name": "c", "accessConfig": {"bootstrapClusterCreatorAdminPermissions": True}}
    )
    with pytest.raises(ValueError, match="ResourceInUseException"):
        mocks._access_entry("e", {"clusterName": "c", "principalArn": RUNNER_ROLE})
    mocks._access_entry("e", {"clusterName": "c", "principalArn": PLATFORM_ADMINS})
    with pytest.raises(ValueError, match="ResourceInUseException"):
        mocks._access_entry("e", {"clusterName": "c", "principalArn": PLATFORM_ADMINS})


def test_a_zone_this_account_maps_to_an_eks_refused_zone_id_fails_in_preview() -> None:
    """Zone names map to different zone IDs per account; EKS refuses use1-az3 for a cluster.
    In an account where us-east-1c is use1-az3, the program stops before creating anything,
    naming the zone and the usable ones."""
    account = MockAccount(
        zone_ids={
            "us-east-1a": "use1-az1",
            "us-east-1b": "use1-az2",
            "us-east-1c": "use1-az3",
            "us-east-1d": "use1-az4",
        }
    )
    with pytest.raises(EvaluationError) as caught:
        evaluate_stack("east", load_stack_config("east"), account=account)
    message = str(caught.value)
    assert (
        "us-east-1c is zone use1-az3 in this account, where EKS cannot place a cluster" in message
    )
    assert "us-east-1d (use1-az4)" in message
    assert "us-east-1c (use1-az3)" not in message
    created = [r for r in caught.value.resources if r.custom and not r.type.startswith("pulumi:")]
    assert created == []


def test_more_servers_give_the_release_more_time() -> None:
    """Five servers on AWS: six steps of 415 s (infra/rollout.py)."""
    config = load_stack_config("east")
    config["nats-supercluster:nats"] = json.dumps({"replicas": 5})
    ev = evaluate_stack("east", config)
    assert named(ev, RELEASE, "-nats-release").inputs["timeout"] == 2490
