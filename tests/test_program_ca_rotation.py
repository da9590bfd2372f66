"""A CA rotation as config under mocks: each stage is one `pulumi up` per stack (east, the CA's
owner, first), and each stack trusts and signs with what its config says."""

from __future__ import annotations

import json

import pytest
from cryptography import x509

from offline.evaluate import Evaluation, EvaluationError, evaluate_in_order, evaluate_stack
from offline.stack_files import load_stack_config, stack_names
from tests.conftest import after, named

SIGNED = "tls:index/locallySignedCert:LocallySignedCert"
SECRET = "kubernetes:core/v1:Secret"


def _stage(generations: list[int], issuing: int | None = None) -> dict[str, Evaluation]:
    pki: dict[str, object] = {"caGenerations": generations}
    if issuing is not None:
        pki["issuingGeneration"] = issuing
    configs = {}
    for stack in stack_names():
        config = load_stack_config(stack)
        config["nats-supercluster:pki"] = json.dumps(pki)
        configs[stack] = config
    return evaluate_in_order(stack_names(), configs)


def _bundle(ev: Evaluation) -> list[str]:
    pem = named(ev, SECRET, "-pki-ca").inputs["stringData"]["value"]["ca.crt"]
    return [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(pem.encode())]


def _issuers(ev: Evaluation) -> set[str]:
    return {
        x509.load_pem_x509_certificate(r.state["certPem"].encode()).issuer.rfc4514_string()
        for r in ev.of_type(SIGNED)
    }


CA1 = "CN=nats-supercluster CA 1,O=nats-supercluster"
CA2 = "CN=nats-supercluster CA 2,O=nats-supercluster"


@pytest.mark.parametrize(
    ("generations", "issuing", "bundle", "issuer"),
    [
        ([1], None, [CA1], CA1),
        ([1, 2], None, [CA1, CA2], CA1),  # stage 1, trust: nothing re-issued yet
        ([1, 2], 2, [CA1, CA2], CA2),  # stage 2, issue
        ([2], None, [CA2], CA2),  # stage 3, retire
    ],
)
def test_each_stage_trusts_and_signs_as_configured(
    generations: list[int], issuing: int | None, bundle: list[str], issuer: str
) -> None:
    stacks = _stage(generations, issuing)
    east = stacks["east"]
    assert sorted(east.outputs["caCerts"].value) == [str(g) for g in generations]
    assert east.outputs["caKeys"].secret
    for ev in stacks.values():
        assert _bundle(ev) == bundle
        assert _issuers(ev) == {issuer}
        for secret in ev.of_type(SECRET):
            data = secret.inputs["stringData"]["value"]
            if "ca.crt" in data and "tls.crt" in data:  # a client's Secret
                loaded = x509.load_pem_x509_certificates(data["ca.crt"].encode())
                assert [c.subject.rfc4514_string() for c in loaded] == bundle
        cert_pem = ev.outputs["caCert"].value
        assert len(x509.load_pem_x509_certificates(cert_pem.encode())) == len(bundle)


def test_a_stack_cannot_trust_a_generation_its_ca_stack_has_not_made() -> None:
    """West asks for generation 2 while east still publishes only 1: deploy east first."""
    east = evaluate_stack("east", load_stack_config("east"))
    config = load_stack_config("west")
    config["nats-supercluster:pki"] = json.dumps({"caGenerations": [1, 2]})
    with pytest.raises(EvaluationError, match=r"publishes no generation 2 .*pulumi up -s east"):
        evaluate_stack("west", config, stack_outputs=after(east))
