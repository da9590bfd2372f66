"""Pure decisions in infra/: subnet plan, names, IAM documents, kubeconfigs, storage classes."""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
from typing import Any

import pytest

from infra import aws_iam
from infra.aws_iam import cluster_admins, principal_key
from infra.config import parse_stack_config
from infra.endpoint import ingress_address, lb_annotations
from infra.jetstream import ConsumerSpec, consumer_request, parse_duration, subjects_overlap
from infra.jetstream_changes import Changes, consumer_changes, managed_view, stream_changes
from infra.kubeconfig import aks_kubeconfig, eks_kubeconfig
from infra.naming import base_name, common_tags, kubernetes_cluster_name
from infra.network import ZoneError, check_eks_zones, elb_subnet_tags, subnet_plan
from infra.peers import read_peers, stack_reference_name
from infra.pki import server_sans
from infra.quorum import quorum_warning
from infra.storage import DEFAULT_CLASS_ANNOTATION, aks_jetstream, eks_gp3

ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")


@pytest.mark.parametrize("cidr", ["10.10.0.0/16", "172.16.0.0/18", "192.168.0.0/20"])
def test_subnet_plan_is_disjoint_and_inside_the_vpc(cidr: str) -> None:
    vpc = ipaddress.IPv4Network(cidr)
    plan = subnet_plan(vpc, ZONES)
    subnets = [s for zone in plan for s in (zone.private, zone.public)]
    assert [z.zone for z in plan] == list(ZONES)
    assert all(s.subnet_of(vpc) for s in subnets)
    assert not any(a.overlaps(b) for a, b in itertools.combinations(subnets, 2))
    assert all(z.private.num_addresses == 4 * z.public.num_addresses for z in plan)


def test_subnet_plan_refuses_more_zones_than_it_has_room_for() -> None:
    with pytest.raises(ValueError, match="1 to 3 zones"):
        subnet_plan(ipaddress.IPv4Network("10.0.0.0/16"), (*ZONES, "us-east-1d"))


def test_subnet_tags_mark_public_and_internal_load_balancer_subnets() -> None:
    public = elb_subnet_tags("c1", public=True)
    private = elb_subnet_tags("c1", public=False)
    assert public == {"kubernetes.io/role/elb": "1", "kubernetes.io/cluster/c1": "shared"}
    assert private["kubernetes.io/role/internal-elb"] == "1"
    assert "kubernetes.io/role/elb" not in private


def test_names_and_tags_derive_from_project_and_stack() -> None:
    raw = {
        "p:cloud": "aws",
        "p:region": "us-east-1",
        "p:tags": '{"team": "platform"}',
        "p:app": '{"enabled": false}',
    }
    east = parse_stack_config(raw, project="p", stack="east")
    other = parse_stack_config(raw, project="p", stack="east2")
    assert base_name(east) == "p-east" != base_name(other)
    assert kubernetes_cluster_name(east) == "p-east"
    assert common_tags(east) == {
        "project": "p",
        "stack": "east",
        "nats-cluster": "east",
        "managed-by": "pulumi",
        "team": "platform",
    }


@pytest.mark.parametrize(
    ("region", "partition"),
    [("us-east-1", "aws"), ("us-gov-west-1", "aws-us-gov"), ("cn-north-1", "aws-cn")],
)
def test_policy_arns_follow_the_partition(region: str, partition: str) -> None:
    assert aws_iam.ebs_csi_policy(region).startswith(f"arn:{partition}:iam::aws:policy/")
    assert all(a.startswith(f"arn:{partition}:") for a in aws_iam.node_role_policies(region))


def test_irsa_trust_is_limited_to_one_service_account() -> None:
    doc = aws_iam.irsa_trust_policy(
        "arn:aws:iam::1:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC",
        "https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
        "kube-system",
        "sa",
    )
    (statement,) = doc["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"]["StringEquals"] == {
        "oidc.eks.us-east-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:kube-system:sa",
        "oidc.eks.us-east-1.amazonaws.com/id/ABC:aud": "sts.amazonaws.com",
    }


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def test_lb_controller_values_wire_irsa_and_turn_alb_extras_off() -> None:
    values = aws_iam.lb_controller_values("c", "us-east-1", "vpc-1", "arn:aws:iam::1:role/r")
    assert values["serviceAccount"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"
    }
    assert values["serviceAccount"]["name"] == aws_iam.LB_CONTROLLER_SERVICE_ACCOUNT
    assert (values["enableWaf"], values["enableWafv2"], values["enableShield"]) == (
        False,
        False,
        False,
    )
    assert values["replicaCount"] >= 2


def test_eks_kubeconfig_authenticates_with_the_aws_cli_only() -> None:
    config = json.loads(eks_kubeconfig("c1", "https://api.example", "Q0E=", "us-east-1"))
    (user,) = config["users"]
    assert user["user"]["exec"]["command"] == "aws"
    assert user["user"]["exec"]["args"][:4] == ["eks", "get-token", "--cluster-name", "c1"]
    assert "us-east-1" in user["user"]["exec"]["args"]
    assert "token" not in user["user"]
    assert config["clusters"][0]["cluster"] == {
        "server": "https://api.example",
        "certificate-authority-data": "Q0E=",
    }
    assert config["current-context"] == "c1"


def test_aks_kubeconfig_decodes_the_first_credential() -> None:
    first = base64.b64encode(b"apiVersion: v1\nkind: Config\n").decode()
    assert aks_kubeconfig([{"name": "clusterUser", "value": first}, {"value": "x"}]) == (
        "apiVersion: v1\nkind: Config\n"
    )
    with pytest.raises(ValueError, match="no kubeconfig"):
        aks_kubeconfig([])


def test_storage_classes_bind_in_the_pods_zone_and_clean_up() -> None:
    gp3, premium = eks_gp3(), aks_jetstream("Premium_ZRS")
    for spec in (gp3, premium):
        assert spec.volume_binding_mode == "WaitForFirstConsumer"
        assert spec.allow_volume_expansion
        assert spec.reclaim_policy == "Delete"
    assert gp3.annotations == {DEFAULT_CLASS_ANNOTATION: "true"}
    assert gp3.parameters["type"] == "gp3"
    assert gp3.parameters["encrypted"] == "true"
    assert premium.parameters["skuName"] == "Premium_ZRS"
    assert premium.provisioner == "disk.csi.azure.com"
    assert not premium.default


@pytest.mark.parametrize(
    ("servers", "fragile"),
    [
        ({"east": 3}, None),
        ({"east": 3, "west": 3}, "if east or west is cut off"),
        ({"east": 3, "west": 3, "central": 1}, None),
        ({"east": 3, "west": 0}, None),
        ({"east": 3, "west": 1}, None),
        ({"east": 1, "west": 1}, "if east or west is cut off"),
        ({"east": 3, "west": 3, "central": 0}, "if east or west is cut off"),
    ],
)
def test_quorum_warning_only_when_a_partition_can_stall_jetstream(
    servers: dict[str, int], fragile: str | None
) -> None:
    warning = quorum_warning(servers)
    if fragile is None:
        assert warning is None
    else:
        assert warning is not None
        assert fragile in warning


def test_peers_are_read_from_deployed_stacks_only() -> None:
    reading = read_peers(
        "west",
        {
            "east": {
                "gatewayUrl": "tls://e:7222",
                "natsClusterName": "east",
                "jetstreamServers": 3,
            },
            "central": None,
            "north": {"natsClusterName": "north"},
        },
    )
    assert [p.cluster_name for p in reading.peers] == ["east"]
    assert len(reading.skipped) == 2
    assert stack_reference_name("east", "acme", "nats-supercluster") == (
        "acme/nats-supercluster/east"
    )
    assert stack_reference_name("other/proj/east", "acme", "p") == "other/proj/east"
    with pytest.raises(ValueError, match="unique clusterName"):
        read_peers("east", {"east": {"gatewayUrl": "tls://e:7222", "natsClusterName": "east"}})


def test_server_sans_cover_cluster_names_and_the_endpoint() -> None:
    by_name = server_sans("east", "east-headless", "nats", "lb.example.com")
    by_ip = server_sans("west", "west-headless", "nats", "20.1.2.3")
    assert "lb.example.com" in by_name.dns_names
    assert by_name.ip_addresses == ()
    assert by_ip.ip_addresses == ("20.1.2.3",)
    assert "20.1.2.3" not in by_ip.dns_names
    for names in (by_name.dns_names, by_ip.dns_names):
        assert "localhost" in names
    assert "*.east-headless.nats.svc.cluster.local" in by_name.dns_names
    assert "east.nats.svc" in by_name.dns_names


def test_lb_annotations_wait_for_the_clouds_address_field() -> None:
    assert lb_annotations("aws")["pulumi.com/waitFor"].endswith("ingress[0].hostname}")
    assert lb_annotations("azure") == {
        "pulumi.com/waitFor": "jsonpath={.status.loadBalancer.ingress[0].ip}"
    }
    assert ingress_address("aws", [{"hostname": "x.elb.amazonaws.com"}]) == "x.elb.amazonaws.com"
    with pytest.raises(ValueError, match="no ip yet"):
        ingress_address("azure", [{"hostname": "x"}])


def test_durations_are_nanoseconds() -> None:
    assert parse_duration("5d") == 5 * 86_400 * 10**9
    assert parse_duration("250ms") == 250 * 10**6
    assert parse_duration("0") == 0
    with pytest.raises(ValueError, match="duration like"):
        parse_duration("5 days")


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("a.b", "a.b", True),
        ("a.*", "a.b", True),
        ("a.>", "a.b.c", True),
        ("a", "a.>", False),
        ("a.b", "a.c", False),
        (">", "x", True),
        ("a.*.c", "a.b.*", True),
        ("a.b", "a.b.c", False),
        ("$KV.x.>", "$KV.y.>", False),
    ],
)
def test_subject_overlap(a: str, b: str, overlap: bool) -> None:
    assert subjects_overlap(a, b) is overlap
    assert subjects_overlap(b, a) is overlap


def test_stream_change_rules_follow_the_server() -> None:
    base = {"storage": "file", "retention": "limits", "max_age": 1, "deny_delete": False}
    assert stream_changes(base, {**base, "max_age": 2}) == Changes(("max_age",), ())
    assert stream_changes(base, {**base, "storage": "memory"}).replace == ("storage",)
    assert stream_changes(base, {**base, "retention": "interest"}).replace == ()
    assert stream_changes(base, {**base, "retention": "workqueue"}).replace == ("retention",)
    assert stream_changes(base, {**base, "deny_delete": True}).replace == ()
    assert stream_changes({**base, "deny_delete": True}, base).replace == ("deny_delete",)
    consumer = {"deliver_policy": "all", "ack_wait": 1}
    assert consumer_changes(consumer, {**consumer, "ack_wait": 2}).replace == ()
    assert consumer_changes(consumer, {**consumer, "deliver_policy": "new"}).replace == (
        "deliver_policy",
    )


def test_managed_view_ignores_what_the_program_does_not_manage() -> None:
    requested = {
        "name": "s",
        "subjects": ["s.>"],
        "placement": {"cluster": "east"},
        "description": "",
    }
    actual = {
        "name": "s",
        "subjects": ["s.>"],
        "max_consumers": -1,
        "placement": {"cluster": "east", "tags": []},
        "metadata": {"x": "y"},
    }
    assert managed_view(requested, actual) == requested


def test_backoff_sets_the_ack_wait_as_the_server_does() -> None:
    request = consumer_request(
        ConsumerSpec(stream="s", name="c", backoff=["5s", "30s"], max_deliver=4)
    )
    assert request["ack_wait"] == 5 * 10**9
    assert request["backoff"] == [5 * 10**9, 30 * 10**9]


def test_zones_are_checked_by_the_accounts_zone_ids() -> None:
    names = ["us-east-1a", "us-east-1b", "us-east-1c"]
    ids = ["use1-az3", "use1-az1", "use1-az2"]
    assert check_eks_zones("us-east-1", ("us-east-1b", "us-east-1c"), names, ids) == (
        "us-east-1b",
        "us-east-1c",
    )
    with pytest.raises(ZoneError, match=r"us-east-1a is zone use1-az3 .*EKS cannot place"):
        check_eks_zones("us-east-1", ("us-east-1a", "us-east-1b"), names, ids)
    with pytest.raises(ZoneError, match="us-east-1f is not an available zone of us-east-1"):
        check_eks_zones("us-east-1", ("us-east-1b", "us-east-1f"), names, ids)
    # In another region the same zone ID means nothing to EKS's list.
    assert check_eks_zones("eu-west-1", ("eu-west-1a",), ["eu-west-1a"], ["euw1-az3"])


def test_cluster_admins_are_the_runner_and_the_configured_each_once() -> None:
    runner = "arn:aws:iam::123456789012:role/ci/runner"
    other = "arn:aws:iam::123456789012:role/admins"
    assert cluster_admins(runner, [other, runner]) == [runner, other]
    assert principal_key(runner) == principal_key(runner) != principal_key(other)
