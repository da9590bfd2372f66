"""The stack config model: the shipped stacks parse, defaults resolve, versions follow the
clouds' calendars, and the stacks a region reads are checked before any resource (bad keys and
values: tests/test_config_invalid.py)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pulumi_aws as aws
import pytest
import yaml

from infra.cloud_facts import AWS_REGIONS
from infra.config import ConfigError
from infra.peers import referenced_stack_issues
from offline.evaluate import Evaluation, EvaluationError, evaluate_stack, qualified
from offline.stack_files import load_stack_config, stack_names
from tests.config_inputs import AWS, AZURE, P, parse, with_


def test_shipped_stacks_parse_to_their_clouds() -> None:
    east = parse(load_stack_config("east"), "east")
    west = parse(load_stack_config("west"), "west")
    assert (east.cloud, east.region, east.cluster_name) == ("aws", "us-east-1", "east")
    assert (west.cloud, west.region, west.cluster_name) == ("azure", "westus", "west")
    assert west.peers == ("east",)
    assert east.eks is not None
    assert east.aks is None
    assert west.aks is not None
    assert west.eks is None


def test_defaults_resolve_per_cloud() -> None:
    aws = parse(AWS)
    azure = parse(AZURE, "west")
    assert aws.cluster_name == "east"
    assert aws.nodes.instance_type == "m6i.large"
    assert aws.nodes.zones == ("us-east-1a", "us-east-1b", "us-east-1c")
    assert azure.nodes.instance_type == "Standard_D2s_v5"
    assert azure.nodes.zones == ()  # westus has no zones
    assert parse(with_(AZURE, region="westus2"), "west").nodes.zones == ("1", "2", "3")
    assert (aws.kubernetes_version, azure.kubernetes_version) == ("1.35", "1.35")
    assert (aws.nodes.count, aws.nodes.min_count, aws.nodes.max_count) == (3, 3, 6)
    assert str(aws.require_eks().vpc_cidr) == "10.10.0.0/16"
    assert azure.require_aks().sku_tier == "Standard"
    with pytest.raises(ValueError, match="not azure"):
        aws.require_aks()


def test_azure_region_without_zones_is_allowed_with_an_empty_list() -> None:
    cfg = parse(with_(AZURE, nodes={"zones": []}), "west")
    assert cfg.nodes.zones == ()


def test_a_version_near_its_end_warns_and_past_it_is_refused() -> None:
    """EKS 1.34 leaves standard support on 2026-12-02 (the fact table's source: the EKS user
    guide); then EKS upgrades a STANDARD-policy control plane itself."""
    near = parse(with_(AWS, kubernetesVersion="1.34"), "east", today=date(2026, 11, 22))
    assert near.warnings == (
        "kubernetesVersion 1.34 leaves standard support on 2026-12-02 (in 10 days); "
        "move to 1.35, 1.36 before then",
    )
    assert parse(with_(AWS, kubernetesVersion="1.35"), "east").warnings == ()
    with pytest.raises(ConfigError, match="left EKS standard support on 2026-12-02"):
        parse(with_(AWS, kubernetesVersion="1.34"), "east", today=date(2026, 12, 2))
    with pytest.raises(ConfigError, match="not yet offered by AKS"):
        parse(with_(AZURE, kubernetesVersion="1.36"), "west", today=date(2026, 5, 1))


def test_the_shipped_stacks_ask_for_supported_versions_today() -> None:
    """On the real date: a stack file whose version left support fails here first, with the
    message a user would get from `pulumi up`."""
    for stack in ("east", "west", "central"):
        parse(load_stack_config(stack), stack, today=date.today())


def test_objects_arrive_as_json_text_like_pulumi_sends_them() -> None:
    cfg = parse(with_(AWS, nodes='{"count": 4, "maxCount": 8}', tags='{"team": "platform"}'))
    assert cfg.nodes.count == 4
    assert cfg.tags == {"team": "platform"}


def test_other_projects_keys_are_ignored() -> None:
    cfg = parse({**AWS, "aws:region": "eu-west-1", "kubernetes:context": "x"})
    assert cfg.region == "us-east-1"


def test_the_aws_regions_are_the_pinned_providers() -> None:
    """infra/cloud_facts.py's table is pulumi-aws's own list at the pinned version."""
    assert {r.value for r in aws.Region} == AWS_REGIONS


@pytest.mark.parametrize(
    ("change", "key", "says"),
    [
        ({"pki": {"caStack": "westt"}}, "pki.caStack", "'organization/nats-supercluster/westt' "
         "does not exist"),
        ({"pki": {"caStack": "central"}}, "pki.caStack", "publishes no CA"),
        ({"peers": ["east", "north"]}, "peers", "'organization/nats-supercluster/north' does "
         "not exist"),
        ({"clusterName": "east"}, "clusterName", "already the NATS cluster name"),
    ],
)  # fmt: skip
def test_the_stacks_a_region_reads_are_checked_before_any_resource(
    east: Evaluation, change: dict[str, Any], key: str, says: str
) -> None:
    """East deployed, central created but not deployed: each of these used to fail only after
    31-59 resources, some with another resource's error."""
    outputs = {
        qualified(P, "east"): east.output_values(),
        qualified(P, "central"): {},
    }
    raw = dict(load_stack_config("west"))
    for name, value in change.items():
        raw[f"{P}:{name}"] = value if isinstance(value, str) else json.dumps(value)
    with pytest.raises(EvaluationError) as caught:
        evaluate_stack("west", raw, stack_outputs=outputs)
    assert isinstance(caught.value.cause, ConfigError), caught.value.cause
    assert caught.value.cause.keys == [key]
    assert says in str(caught.value.cause)
    assert caught.value.resources == []


def test_a_peer_created_but_not_deployed_is_not_an_error() -> None:
    issues = referenced_stack_issues(
        "west",
        {"east": "o/p/east", "central": "o/p/central"},
        None,
        {"o/p/east": {"natsClusterName": "east"}, "o/p/central": {}},
    )
    assert issues == []
    twins = referenced_stack_issues(
        "west",
        {"east": "o/p/east", "east2": "o/p/east2"},
        None,
        {"o/p/east": {"natsClusterName": "east"}, "o/p/east2": {"natsClusterName": "east"}},
    )
    assert [(i.key, i.value) for i in twins] == [("peers", "east2")]


def test_a_stack_file_with_aliases_is_refused_before_it_can_expand(tmp_path: Path) -> None:
    """A billion laughs: nine levels of nine aliases would be 10^9 strings as config text."""
    levels = ["a0: &a0 [lol]"] + [
        f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)
    ]
    (tmp_path / "Pulumi.yaml").write_text("name: nats-supercluster\n")
    (tmp_path / "Pulumi.laughs.yaml").write_text(
        "config:\n" + "".join(f"  {line}\n" for line in levels)
    )
    with pytest.raises(yaml.YAMLError, match="take no aliases"):
        load_stack_config("laughs", tmp_path)


def test_a_peer_without_a_stack_file_is_named_not_called_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: nats-supercluster\n")
    (tmp_path / "Pulumi.west.yaml").write_text("config:\n  nats-supercluster:peers: [east]\n")
    with pytest.raises(ValueError, match=r"'east' .*no Pulumi\.<stack>\.yaml") as caught:
        stack_names(tmp_path)
    assert "cycle" not in str(caught.value)
