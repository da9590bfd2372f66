"""Bad stack configs: each names its key and what is allowed, stops the whole program before
any resource is registered, and every problem is reported at once."""

from __future__ import annotations

import pytest

from infra.config import ConfigError
from offline.evaluate import EvaluationError, evaluate_stack
from tests.config_inputs import AWS, AZURE, P, parse, with_

INVALID: list[tuple[str, dict[str, str], str, str]] = [
    # (case, config, key named in the error, text that says what is allowed)
    ("cloud missing", {f"{P}:region": "us-east-1"}, "cloud", "'aws' or 'azure'"),
    ("cloud unknown", with_(AWS, cloud="gcp"), "cloud", "'aws' or 'azure'"),
    ("region missing", {f"{P}:cloud": "aws"}, "region", "required"),
    ("azure region on aws", with_(AWS, region="westus"), "region", "us-east-1"),
    ("aws region that does not exist", with_(AWS, region="us-east-99"), "region", "us-east-2"),
    ("peers as a string", with_(AWS, peers="east"), "peers", "valid list"),
    ("replicas a boolean", with_(AWS, nats={"replicas": True}), "nats.replicas", "not true"),
    (
        "unreachable after no time at all",
        with_(AWS, jetstream={"unreachableSeconds": 0}),
        "jetstream.unreachableSeconds",
        "greater than or equal to 1",
    ),
    (
        "stream bytes past 64 bits",
        with_(AWS, jetstream={"streams": [{"name": "s", "subjects": ["s.>"], "maxBytes": 10**30}]}),
        "jetstream.streams[0].maxBytes",
        "64-bit",
    ),
    (
        "stream bytes a float",
        with_(AWS, jetstream={"streams": [{"name": "s", "subjects": ["s.>"], "maxBytes": 1e30}]}),
        "jetstream.streams[0].maxBytes",
        "integer",
    ),
    (
        "stream age past 64 bits",
        with_(
            AWS, jetstream={"streams": [{"name": "s", "subjects": ["s.>"], "maxAge": f"{10**20}d"}]}
        ),
        "jetstream.streams[0].maxAge",
        "292 years",
    ),
    ("aws region on azure", with_(AZURE, region="us-west-2"), "region", "westus"),
    ("misspelt key", with_(AWS, clusterNmae="east"), "clusterNmae", "clusterName"),
    ("misspelt nested key", with_(AWS, nodes={"cnt": 3}), "nodes.cnt", "minCount"),
    ("cluster name not dns", with_(AWS, clusterName="East_1"), "clusterName", "DNS label"),
    ("cluster name too long", with_(AWS, clusterName="a" * 30), "clusterName", "1-24"),
    ("stack name not dns", AWS, "clusterName", "set clusterName"),
    ("version unquoted", with_(AWS, kubernetesVersion="1.3"), "kubernetesVersion", "quoted"),
    ("version unknown", with_(AWS, kubernetesVersion="1.24"), "kubernetesVersion", "1.35, 1.36"),
    (
        "version out of eks support",
        with_(AWS, kubernetesVersion="1.33"),
        "kubernetesVersion",
        "left EKS standard support on 2026-07-29",
    ),
    (
        "version out of aks support",
        with_(AZURE, kubernetesVersion="1.32"),
        "kubernetesVersion",
        "left AKS standard support on 2026-03-31",
    ),
    (
        "zones in a region without zones",
        with_(AZURE, nodes={"zones": ["1", "2", "3"]}),
        "nodes.zones",
        "westus has no availability zones",
    ),
    ("azure region unknown", with_(AZURE, region="westus9"), "region", "westus2, westus3"),
    (
        "zone-redundant disks without zones",
        with_(AZURE, aks={"diskSku": "Premium_ZRS"}),
        "aks.diskSku",
        "Premium_LRS",
    ),
    ("node count zero", with_(AWS, nodes={"count": 0, "minCount": 1}), "nodes.count", "1"),
    ("count above max", with_(AWS, nodes={"count": 9, "maxCount": 6}), "nodes.count", "maxCount"),
    ("count not a number", with_(AWS, nodes={"count": "three"}), "nodes.count", "integer"),
    ("disk too small", with_(AWS, nodes={"diskSizeGb": 8}), "nodes.diskSizeGb", "30"),
    (
        "azure size on aws",
        with_(AWS, nodes={"instanceType": "Standard_D2s_v5"}),
        "nodes.instanceType",
        "m6i.large",
    ),
    (
        "aws size on azure",
        with_(AZURE, nodes={"instanceType": "m6i.large"}),
        "nodes.instanceType",
        "Standard_D2s_v5",
    ),
    (
        "zone of another region",
        with_(AWS, nodes={"zones": ["us-west-2a", "us-west-2b"]}),
        "nodes.zones",
        "us-east-1a",
    ),
    ("one aws zone", with_(AWS, nodes={"zones": ["us-east-1a"]}), "nodes.zones", "2 or 3"),
    ("azure zone 4", with_(AZURE, nodes={"zones": ["1", "4"]}), "nodes.zones", "'1', '2'"),
    (
        "zone repeated",
        with_(AWS, nodes={"zones": ["us-east-1a", "us-east-1a"]}),
        "nodes.zones",
        "repeat",
    ),
    ("aks block on aws", with_(AWS, aks={"skuTier": "Free"}), "aks", "'azure'"),
    ("eks block on azure", with_(AZURE, eks={}), "eks", "'aws'"),
    ("public vpc range", with_(AWS, eks={"vpcCidr": "8.8.0.0/16"}), "eks.vpcCidr", "10.0.0.0/8"),
    ("not a cidr", with_(AWS, eks={"vpcCidr": "10.10.0.0/33"}), "eks.vpcCidr", "IPv4"),
    ("vpc too small", with_(AWS, eks={"vpcCidr": "10.10.0.0/24"}), "eks.vpcCidr", "/16 to /20"),
    (
        "service overlaps vpc",
        with_(AWS, eks={"serviceCidr": "10.10.128.0/20"}),
        "eks.serviceCidr",
        "eks.vpcCidr",
    ),
    (
        "nat mode unknown",
        with_(AWS, eks={"natGateways": "none"}),
        "eks.natGateways",
        "'perZone' or 'single'",
    ),
    (
        "bad principal arn",
        with_(AWS, eks={"adminPrincipalArns": ["alice"]}),
        "eks.adminPrincipalArns[0]",
        "arn:aws",
    ),
    (
        "sku tier unknown",
        with_(AZURE, aks={"skuTier": "Premium"}),
        "aks.skuTier",
        "'Free' or 'Standard'",
    ),
    (
        "pods overlap aks nodes",
        with_(AZURE, aks={"podCidr": "10.224.0.0/16"}),
        "aks.podCidr",
        "10.224.0.0/12",
    ),
    (
        "service overlaps pods",
        with_(AZURE, aks={"serviceCidr": "10.244.0.0/20", "dnsServiceIp": "10.244.0.10"}),
        "aks.serviceCidr",
        "aks.podCidr",
    ),
    (
        "dns ip outside services",
        with_(AZURE, aks={"dnsServiceIp": "10.1.0.10"}),
        "aks.dnsServiceIp",
        "inside aks.serviceCidr",
    ),
    (
        "operator switch not a boolean",
        with_(AWS, monitoring={"prometheusOperator": "sometimes"}),
        "monitoring.prometheusOperator",
        "valid boolean",
    ),
    (
        "release label not a label value",
        with_(AWS, monitoring={"prometheusOperator": True, "prometheusRelease": "kube prom"}),
        "monitoring.prometheusRelease",
        "Kubernetes label value",
    ),
    (
        "release label without the operator",
        with_(AWS, monitoring={"prometheusRelease": "kube-prometheus-stack"}),
        "monitoring.prometheusRelease",
        "prometheusOperator: true",
    ),
    (
        "operator without its release label",
        with_(AWS, monitoring={"prometheusOperator": True}),
        "monitoring.prometheusRelease",
        "'kube-prometheus-stack'",
    ),
    (
        "dashboard namespace not a namespace",
        with_(AWS, monitoring={"dashboardNamespace": "Grafana"}),
        "monitoring.dashboardNamespace",
        "namespace name",
    ),
    (
        "runbook base without a trailing slash",
        with_(AWS, monitoring={"runbookBaseUrl": "https://example.com/repo"}),
        "monitoring.runbookBaseUrl",
        "ending in '/'",
    ),
    (
        "misspelt monitoring key",
        with_(AWS, monitoring={"prometheusOperater": True}),
        "monitoring.prometheusOperater",
        "prometheusOperator",
    ),
    ("peer is self", with_(AZURE, peers=["west"]), "peers", "itself"),
    ("peer not a stack name", with_(AZURE, peers=["east stack"]), "peers[0]", "stack name"),
    (
        "consumer on an undeclared stream",
        with_(AWS, jetstream={"consumers": [{"stream": "nope", "name": "c"}]}),
        "jetstream.consumers[0].stream",
        "declared: answers",
    ),
    (
        "stream duration unreadable",
        with_(
            AWS,
            jetstream={
                "streams": [{"name": "s", "subjects": ["s"], "maxAge": "1 week"}],
                "consumers": [],
            },
        ),
        "jetstream.streams[0].maxAge",
        "duration like",
    ),
    (
        "stream subjects overlap",
        with_(
            AWS,
            jetstream={
                "streams": [{"name": "a", "subjects": ["x.>"]}, {"name": "b", "subjects": ["x.y"]}],
                "consumers": [],
            },
        ),
        "jetstream.streams[1].subjects",
        "overlaps 'x.>'",
    ),
    (
        "more replicas than servers",
        with_(
            AWS,
            jetstream={
                "streams": [{"name": "s", "subjects": ["s"], "replicas": 5}],
                "consumers": [],
            },
        ),
        "jetstream.streams[0].replicas",
        "3 server(s)",
    ),
    (
        "backoff longer than deliveries",
        with_(
            AWS,
            jetstream={
                "consumers": [
                    {"stream": "answers", "name": "c", "maxDeliver": 2, "backoff": ["1s", "2s"]}
                ]
            },
        ),
        "jetstream.consumers[0].maxDeliver",
        "backoff",
    ),
    (
        "stream in a region without jetstream",
        with_(AWS, nats={"jetstream": False}),
        "jetstream.streams[0].placement.cluster",
        "nats.jetstream is false",
    ),
    (
        "one jetstream server without peers",
        with_(AWS, nats={"replicas": 1}),
        "nats.replicas",
        "list peers",
    ),
    (
        "unknown stream storage",
        with_(AWS, jetstream={"streams": [{"name": "s", "subjects": ["s"], "storage": "disk"}]}),
        "jetstream.streams[0].storage",
        "'file' or 'memory'",
    ),
    (
        "application without an image",
        with_(AWS, app={"enabled": True}),
        "app.image",
        "app.enabled to false",
    ),
    (
        "image reference malformed",
        with_(AWS, app={"image": "Not An Image!"}),
        "app.image",
        "container image reference",
    ),
    ("reserved tag prefix", with_(AWS, tags={"aws:owner": "me"}), "tags.aws:owner", "reserved"),
    (
        "ca generations out of order",
        with_(AWS, pki={"caGenerations": [2, 1]}),
        "pki.caGenerations",
        "oldest first",
    ),
    (
        "three ca generations",
        with_(AWS, pki={"caGenerations": [1, 2, 3]}),
        "pki.caGenerations",
        "at most 2",
    ),
    (
        "issuing ca not trusted",
        with_(AWS, pki={"caGenerations": [1, 2], "issuingGeneration": 3}),
        "pki.issuingGeneration",
        "[1, 2]",
    ),
]


def _stack_for(raw: dict[str, str]) -> str:
    """The bare AWS config runs as a stack whose name is not a DNS label (one of the cases);
    the others as the stack of their cloud."""
    if raw is AWS:
        return "Bad_Stack"
    return "west" if raw.get(f"{P}:cloud") == "azure" else "east"


@pytest.mark.parametrize(
    ("raw", "key", "allowed"), [pytest.param(c, k, a, id=i) for i, c, k, a in INVALID]
)
def test_invalid_config_names_key_and_what_is_allowed(
    raw: dict[str, str], key: str, allowed: str
) -> None:
    stack = _stack_for(raw)
    with pytest.raises(ConfigError) as caught:
        parse(raw, stack)
    assert key in caught.value.keys
    line = next(line for line in str(caught.value).splitlines() if f"{P}:{key}:" in line)
    assert allowed in line


@pytest.mark.parametrize(("raw", "key"), [pytest.param(c, k, id=i) for i, c, k, _ in INVALID])
def test_invalid_config_stops_the_program_before_any_resource(
    raw: dict[str, str], key: str
) -> None:
    stack = _stack_for(raw)
    with pytest.raises(EvaluationError) as caught:
        evaluate_stack(stack, raw)
    assert isinstance(caught.value.cause, ConfigError)
    assert key in caught.value.cause.keys
    assert caught.value.resources == []


def test_every_problem_is_reported_at_once() -> None:
    raw = with_(AWS, cloud="gcp", nodes={"count": -1}, clusterNmae="x")
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    assert set(caught.value.keys) >= {"cloud", "nodes.count", "clusterNmae"}
    assert "nothing was created" in str(caught.value)
