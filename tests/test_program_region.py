"""The single pass under mocks, per stack and east -> west in deploy order: the load balancer's
address reaches the gateway config and the certificate, west finds east, secrets stay secret."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from infra.nats_conf import INCLUDE_KEY, RESTART_ANNOTATION, render_nats_conf
from offline.evaluate import Evaluation, EvaluationError, evaluate_stack
from offline.mocks_common import SUBSCRIPTION_ID
from offline.monitor import Registration
from offline.stack_files import load_stack_config
from tests.conftest import after, depends_on, named

SERVICE = "kubernetes:core/v1:Service"
RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
SIGNED = "tls:index/locallySignedCert:LocallySignedCert"
PUBLIC_IP = "azure-native:network:PublicIPAddress"
DYNAMIC = "pulumi-python:dynamic:Resource"


def nats_release(ev: Evaluation) -> Registration:
    return named(ev, RELEASE, "-nats-release")


def lb_address(ev: Evaluation) -> str:
    ingress = named(ev, SERVICE, "-endpoint-lb").state["status"]["loadBalancer"]["ingress"][0]
    return str(ingress.get("hostname") or ingress.get("ip"))


def server_certificate(ev: Evaluation) -> x509.Certificate:
    return x509.load_pem_x509_certificate(
        named(ev, SIGNED, "-pki-server-cert").state["certPem"].encode()
    )


def sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        alt.get_values_for_type(x509.DNSName),
        [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)],
    )


def test_the_program_creates_the_load_balancer_not_the_chart(
    deployed: dict[str, Evaluation],
) -> None:
    for ev in deployed.values():
        service = named(ev, SERVICE, "-endpoint-lb")
        assert service.inputs["spec"]["type"] == "LoadBalancer"
        assert service.inputs["spec"]["selector"] == {
            "app.kubernetes.io/name": "nats",
            "app.kubernetes.io/instance": ev.outputs["natsClusterName"].value,
            "app.kubernetes.io/component": "nats",
        }
        assert [(p["name"], p["port"]) for p in service.inputs["spec"]["ports"]] == [
            ("nats", 4222),
            ("gateway", 7222),
        ]
        values = nats_release(ev).inputs["values"]
        assert values["service"] == {"enabled": True}  # the chart's own stays in-cluster
        assert "merge" not in values.get("service", {})


def test_aws_endpoint_is_an_internet_facing_nlb_with_ip_targets(east: Evaluation) -> None:
    service = named(east, SERVICE, "-endpoint-lb")
    # The controller's webhook would set the class on CREATE only; an update omitting it would
    # then be refused as a change of an immutable field, so the program sets it from the start.
    assert service.inputs["spec"]["loadBalancerClass"] == "service.k8s.aws/nlb"
    annotations = service.inputs["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"
    assert annotations["pulumi.com/waitFor"] == (
        "jsonpath={.status.loadBalancer.ingress[0].hostname}"
    )


def test_azure_endpoint_takes_the_static_ip_the_program_owns(west: Evaluation) -> None:
    """The Service names a Standard static IP in the stack's resource group, so its address (in
    the certificate, in the peers' gateway lists) survives the Service being replaced. The mock
    cloud gives the Service that IP only if it exists and the cluster's identity has a role on
    it, as AKS does; otherwise it would stay pending."""
    service = named(west, SERVICE, "-endpoint-lb")
    assert "loadBalancerClass" not in service.inputs["spec"]  # AKS serves unclassed Services
    ip = west.one(PUBLIC_IP)
    group = west.one("azure-native:resources:ResourceGroup")
    assert service.inputs["metadata"]["annotations"] == {
        "service.beta.kubernetes.io/azure-load-balancer-resource-group": group.state["name"],
        "service.beta.kubernetes.io/azure-pip-name": ip.state["name"],
        "pulumi.com/waitFor": "jsonpath={.status.loadBalancer.ingress[0].ip}",
    }
    assert lb_address(west) == ip.state["ipAddress"]
    assert west.outputs["gatewayUrl"].value == f"tls://{ip.state['ipAddress']}:7222"
    assert ip.inputs["sku"] == {"name": "Standard"}
    assert ip.inputs["publicIPAllocationMethod"] == "Static"
    assert "zones" not in ip.inputs  # westus has none
    # Tags the cloud provider puts on IPs it owns (and may delete): never on this one.
    assert not {"k8s-azure-service", "k8s-azure-cluster-name", "service"} & set(ip.inputs["tags"])
    (role,) = west.of_type("azure-native:authorization:RoleAssignment")
    cluster = west.one("azure-native:containerservice:ManagedCluster")
    assert role.inputs["scope"] == (
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{group.state['name']}"
    )
    assert role.inputs["principalId"] == cluster.state["identity"]["principalId"]
    assert role.inputs["roleDefinitionId"].endswith(
        "/roleDefinitions/4d97b98b-1d4f-4787-a291-c67834d212e7"  # Network Contributor
    )
    assert depends_on(west, service, ip)
    assert depends_on(west, service, role)  # deleted before the role it needs to let go


def test_endpoint_is_deleted_before_the_controller_and_nodes(east: Evaluation) -> None:
    service = named(east, SERVICE, "-endpoint-lb")
    assert depends_on(east, service, named(east, RELEASE, "lbc-release"))
    assert depends_on(east, service, east.one("aws:eks/nodeGroup:NodeGroup"))


def test_lb_address_reaches_gateway_advertise_urls_and_certificate(
    deployed: dict[str, Evaluation],
) -> None:
    for ev in deployed.values():
        address = lb_address(ev)
        gateway = nats_release(ev).inputs["values"]["config"]["gateway"]["merge"]
        assert gateway["advertise"] == f"{address}:7222"
        assert gateway["gateways"][0] == {
            "name": ev.outputs["natsClusterName"].value,
            "urls": [f"tls://{address}:7222"],
        }
        assert ev.outputs["gatewayUrl"].value == f"tls://{address}:7222"
        assert ev.outputs["clientUrl"].value == f"tls://{address}:4222"
        dns, ips = sans(server_certificate(ev))
        assert address in (dns if ev.outputs["cloud"].value == "aws" else ips)
        cluster = ev.outputs["natsClusterName"].value
        assert f"*.{cluster}-headless.nats.svc.cluster.local" in dns
        assert f"{cluster}.nats.svc" in dns


def test_release_waits_for_its_service_and_secrets(deployed: dict[str, Evaluation]) -> None:
    for ev in deployed.values():
        release = nats_release(ev)
        assert depends_on(ev, release, named(ev, SERVICE, "-endpoint-lb"))
        assert depends_on(ev, release, named(ev, SECRET, "-pki-server"))
        assert depends_on(ev, release, named(ev, SECRET, "-pki-ca"))
        assert release.inputs["chart"] == "nats"
        assert release.inputs["version"] == "2.14.2"
        assert release.inputs["name"] == ev.outputs["natsClusterName"].value


def test_the_release_waits_as_long_as_a_roll_of_its_servers_may_take(
    deployed: dict[str, Evaluation],
) -> None:
    """east (AWS, 3 servers): 4 steps of 415 s, each waiting for its NLB target and readiness
    gate; west (Azure, 3) and central (Azure, 1) keep the 900 s floor (infra/rollout.py)."""
    timeouts = {stack: nats_release(ev).inputs["timeout"] for stack, ev in deployed.items()}
    assert timeouts == {"east": 1660, "west": 900, "central": 900}
    for ev in deployed.values():
        assert nats_release(ev).inputs["atomic"] is True  # a timeout rolls back: another roll


def test_west_lists_east_and_east_lists_only_itself(east: Evaluation, west: Evaluation) -> None:
    east_gateways = nats_release(east).inputs["values"]["config"]["gateway"]["merge"]["gateways"]
    west_gateways = nats_release(west).inputs["values"]["config"]["gateway"]["merge"]["gateways"]
    assert [g["name"] for g in east_gateways] == ["east"]
    assert west_gateways[1] == {"name": "east", "urls": [east.outputs["gatewayUrl"].value]}
    (reference,) = [r for r in west.reads if r.type == "pulumi:pulumi:StackReference"]
    assert reference.inputs["name"] == "organization/nats-supercluster/east"


def test_names_are_unique_across_regions(east: Evaluation, west: Evaluation) -> None:
    def identity(ev: Evaluation) -> tuple[str, str]:
        values = nats_release(ev).inputs["values"]
        return values["fullnameOverride"], values["config"]["serverNamePrefix"]

    assert identity(east) == ("east", "aws-us-east-1-")
    assert identity(west) == ("west", "azure-westus-")


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_no_key_material_in_chart_values(deployed: dict[str, Evaluation]) -> None:
    for ev in deployed.values():
        values = nats_release(ev).inputs["values"]
        assert not any("-----BEGIN" in s for s in _strings(values))
        tls = values["config"]["nats"]["tls"]
        assert tls["secretName"] == f"{ev.outputs['natsClusterName'].value}-server-tls"
        assert values["tlsCA"]["secretName"] == "nats-ca"


def test_values_render_tls_everywhere_and_the_accounts(east: Evaluation) -> None:
    conf = render_nats_conf(nats_release(east).inputs["values"])
    assert conf["tls"]["verify_and_map"] is True
    assert conf["cluster"]["tls"]["verify_and_map"] is True
    assert conf["gateway"]["tls"]["verify_and_map"] is True
    assert conf["system_account"] == "SYS"
    users = {u["user"] for u in conf["accounts"]["SERVICES"]["users"]}
    assert "CN=requester,O=nats-supercluster" in users
    assert [u["user"] for u in conf["accounts"]["APP"]["users"]] == ["CN=admin,O=nats-supercluster"]
    assert conf["jetstream"]["max_file_store"] == "10Gi"


def test_one_ca_signs_both_regions(east: Evaluation, west: Evaluation) -> None:
    assert len(east.of_type("tls:index/selfSignedCert:SelfSignedCert")) == 1
    assert west.of_type("tls:index/selfSignedCert:SelfSignedCert") == []
    ca = x509.load_pem_x509_certificate(east.outputs["caCert"].value.encode())
    assert west.outputs["caCert"].value == east.outputs["caCert"].value
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    for ev in (east, west):
        for signed in ev.of_type(SIGNED):
            cert = x509.load_pem_x509_certificate(signed.state["certPem"].encode())
            assert cert.issuer == ca.subject
            cert.verify_directly_issued_by(ca)


def test_ca_key_and_private_keys_stay_secret(east: Evaluation, west: Evaluation) -> None:
    assert east.outputs["caKeys"].secret
    assert "caKeys" not in west.outputs
    assert "caCerts" not in west.outputs
    for ev in (east, west):
        for signed in ev.of_type(SIGNED):
            assert "caPrivateKeyPem" in signed.secret_inputs()
        for secret in ev.of_type(SECRET):
            data = secret.inputs["stringData"]
            if "tls.key" in data:
                assert "stringData" in secret.secret_inputs(), secret.name
        context = ev.outputs["natsContext"]
        assert context.secret
        assert context.value["url"] == ev.outputs["clientUrl"].value
        assert "PRIVATE KEY" in context.value["key_pem"]


def test_each_identity_gets_its_own_client_secret(west: Evaluation) -> None:
    names = {s.inputs["metadata"]["name"] for s in west.of_type(SECRET)}
    assert {
        f"nats-client-{i}" for i in ("admin", "system", "calculator", "requester", "recorder")
    } <= names
    subjects = set()
    for signed in west.of_type(SIGNED):
        cert = x509.load_pem_x509_certificate(signed.state["certPem"].encode())
        subjects.add(cert.subject.rfc4514_string())
    assert "CN=recorder,O=nats-supercluster" in subjects


def test_two_regions_warn_about_jetstream_quorum(east: Evaluation, west: Evaluation) -> None:
    assert not any("quorum" in w for w in east.warnings)
    assert any("need 4 for a meta leader" in w for w in west.warnings)
    assert "if east or west is cut off" in west.outputs["jetstreamQuorum"].value


def test_a_peer_not_yet_deployed_is_skipped_with_a_message(east: Evaluation) -> None:
    config = load_stack_config("west")
    config["nats-supercluster:peers"] = json.dumps(["east", "central"])
    outputs = after(east) | {"organization/nats-supercluster/central": {}}
    ev = evaluate_stack("west", config, stack_outputs=outputs)
    gateways = nats_release(ev).inputs["values"]["config"]["gateway"]["merge"]["gateways"]
    assert [g["name"] for g in gateways] == ["west", "east"]
    assert any("'central' has no gatewayUrl" in w for w in ev.warnings)


def test_a_peer_with_the_same_cluster_name_is_an_error(east: Evaluation) -> None:
    config = load_stack_config("west")
    config["nats-supercluster:clusterName"] = "east"
    with pytest.raises(EvaluationError, match="already the NATS cluster name of peer") as caught:
        evaluate_stack("west", config, stack_outputs=after(east))
    assert caught.value.resources == []  # found before anything is registered


def test_west_needs_the_ca_stack_deployed_first(east: Evaluation) -> None:
    outputs = {
        "organization/nats-supercluster/east": {
            k: v
            for k, v in east.output_values().items()
            if k not in ("caCert", "caCerts", "caKeys")
        }
    }
    with pytest.raises(Exception, match="deploy it first"):
        evaluate_stack("west", load_stack_config("west"), stack_outputs=outputs)


def test_jetstream_can_be_turned_off_per_region(east: Evaluation) -> None:
    config = load_stack_config("west")
    config["nats-supercluster:nats"] = json.dumps({"jetstream": False})
    ev = evaluate_stack("west", config, stack_outputs=after(east))
    assert nats_release(ev).inputs["values"]["config"]["jetstream"]["enabled"] is False
    assert ev.outputs["jetstreamServers"].value == 0
    assert not any("quorum" in w for w in ev.warnings)


def test_the_static_ip_is_zone_redundant_where_the_region_has_zones(
    deployed: dict[str, Evaluation],
) -> None:
    central = deployed["central"]  # centralus has zones; westus has none
    assert central.one(PUBLIC_IP).inputs["zones"] == ["1", "2", "3"]
    assert lb_address(central) == central.one(PUBLIC_IP).state["ipAddress"]


def test_routes_and_gateways_accept_only_the_server_identity_the_pki_issues(
    deployed: dict[str, Evaluation],
) -> None:
    """The issued server certificate (pulumi-tls, via the mocks' real signing) carries exactly
    the subject the release's route and gateway listeners map to their one user."""
    for ev in deployed.values():
        cert = server_certificate(ev)
        assert cert.subject.rfc4514_string() == "CN=nats-server,OU=server,O=nats-supercluster"
        config = nats_release(ev).inputs["values"]["config"]
        for listener in ("cluster", "gateway"):
            assert config[listener]["tls"]["merge"]["verify_and_map"] is True
            assert config[listener]["merge"]["authorization"] == {
                "user": cert.subject.rfc4514_string()
            }
        # The gateway's TLS also includes the runtime pins (empty until a cut).
        assert set(config["gateway"]["tls"]["merge"]) == {"verify_and_map", INCLUDE_KEY}
        for who in ("calculator", "requester", "admin"):
            signed = named(ev, SIGNED, f"-pki-{who}-cert")
            subject = x509.load_pem_x509_certificate(signed.state["certPem"].encode()).subject
            assert subject.rfc4514_string() == f"CN={who},O=nats-supercluster"


def restart_annotation(ev: Evaluation) -> str:
    values = nats_release(ev).inputs["values"]
    return str(values["podTemplate"]["merge"]["metadata"]["annotations"][RESTART_ANNOTATION])


def test_scaling_reloads_while_a_new_gateway_list_restarts(
    east: Evaluation, west: Evaluation
) -> None:
    """Servers added or removed change only the routes, which the servers reload: the pod
    template is unchanged, so the StatefulSet adds or removes pods and rolls none. Listing
    another peer changes the gateway list, which nats-server cannot reload: the fingerprint
    changes and the pods roll one at a time (PDB). A new region never needs the existing ones
    to list it (implicit discovery), so adding a region restarts nothing."""
    assert nats_release(east).inputs["values"]["podTemplate"]["configChecksumAnnotation"] is False
    config = load_stack_config("west")
    config["nats-supercluster:nats"] = json.dumps({"replicas": 5})
    config["nats-supercluster:nodes"] = json.dumps({"count": 5, "maxCount": 6})
    scaled = evaluate_stack("west", config, stack_outputs=after(east))
    assert restart_annotation(scaled) == restart_annotation(west)
    assert len(render_nats_conf(nats_release(scaled).inputs["values"])["cluster"]["routes"]) == 5
    config = load_stack_config("west")
    config["nats-supercluster:peers"] = json.dumps(["east", "central"])
    central = evaluate_stack(
        "central", load_stack_config("central"), stack_outputs=after(east, west)
    )
    relisted = evaluate_stack("west", config, stack_outputs=after(east, central))
    assert restart_annotation(relisted) != restart_annotation(west)


def test_departed_servers_are_removed_from_the_meta_group_after_the_release(
    deployed: dict[str, Evaluation],
) -> None:
    """A dynamic resource, after the release, as the control identity: its servers are the
    region's pods, so after a scale-down it removes the departed ones (infra.meta_ops, the code
    the scale rehearsal runs against real servers), and on destroy all of them."""
    for ev in deployed.values():
        (peers,) = [r for r in ev.of_type(DYNAMIC) if r.name.endswith("-meta-peers")]
        cluster = ev.outputs["natsClusterName"].value
        prefix = peers.inputs["serverNamePrefix"]
        replicas = 1 if cluster == "central" else 3
        assert peers.inputs["servers"] == [f"{prefix}{cluster}-{i}" for i in range(replicas)]
        assert depends_on(ev, peers, nats_release(ev))
        assert "connection" in peers.secret_inputs()
        control = named(ev, SIGNED, "-pki-control-cert")
        assert peers.inputs["connection"]["value"]["cert_pem"] == control.state["certPem"]
