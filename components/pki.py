"""Certificates with pulumi-tls, stored as Kubernetes Secrets that the chart and workloads mount.

Key material lives in Pulumi state as secrets and in Kubernetes Secrets; chart values carry only
Secret names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_tls as tls
from pulumi_kubernetes import Provider as KubernetesProvider
from pulumi_kubernetes.core.v1 import Secret
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from infra.identities import IDENTITIES
from infra.nats_values import CA_SECRET_KEY, RegionNames
from infra.pki import (
    EARLY_RENEWAL_HOURS,
    ECDSA_CURVE,
    KEY_ALGORITHM,
    CertSpec,
    SubjectAltNames,
    ca_spec,
    client_spec,
    server_sans,
    server_spec,
    spki_pin,
)


@dataclass(frozen=True)
class CaMaterial:
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]


@dataclass(frozen=True)
class Trust:
    """What a region trusts and what signs for it: the bundle of every trusted CA generation
    (servers and clients verify peers with it) and the issuing generation's certificate and key."""

    bundle_pem: pulumi.Output[str]
    issuing: CaMaterial


def trust(
    certs: Mapping[int, pulumi.Output[str]],
    keys: Mapping[int, pulumi.Output[str]],
    generations: Sequence[int],
    issuing: int,
) -> Trust:
    bundle = pulumi.Output.all(*(certs[g] for g in generations)).apply(_concatenated)
    return Trust(bundle, CaMaterial(certs[issuing], keys[issuing]))


def _concatenated(pems: list[str]) -> str:
    return "".join(pems)


class SuperclusterCas(pulumi.ComponentResource):
    """The supercluster's CA generations, made by the stack named in `pki.caStack`: one per
    generation it lists, each with its own subject (infra.pki.ca_spec)."""

    certs: dict[int, pulumi.Output[str]]
    keys: dict[int, pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        project: str,
        generations: Sequence[int],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("nats-supercluster:pki:SuperclusterCa", name, None, opts)
        self.certs, self.keys = {}, {}
        for generation in generations:
            spec = ca_spec(project, generation)
            key = _private_key(f"{name}-v{generation}-key", pulumi.ResourceOptions(parent=self))
            cert = tls.SelfSignedCert(
                f"{name}-v{generation}-cert",
                private_key_pem=key.private_key_pem,
                subject=tls.SelfSignedCertSubjectArgs(
                    common_name=spec.common_name, organization=spec.organization
                ),
                is_ca_certificate=True,
                validity_period_hours=spec.validity_hours,
                allowed_uses=list(spec.usages),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.certs[generation] = cert.cert_pem
            self.keys[generation] = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({"certPems": {str(g): pem for g, pem in self.certs.items()}})


@dataclass(frozen=True)
class RegionPkiArgs:
    names: RegionNames
    trust: Trust
    # The load balancer's hostname or IP: it goes into the server certificate's SANs.
    endpoint: pulumi.Input[str]
    kubernetes: KubernetesProvider
    namespace: pulumi.Input[str]


class RegionPki(pulumi.ComponentResource):
    """The region's server certificate and one client certificate per identity, as Secrets."""

    server_secret: Secret
    ca_secret: Secret
    client_secrets: dict[str, Secret]
    admin_cert_pem: pulumi.Output[str]
    admin_key_pem: pulumi.Output[str]
    # The program's own operations identity (scale-down peer removal).
    control_cert_pem: pulumi.Output[str]
    control_key_pem: pulumi.Output[str]
    # The servers' key as gateway `pinned_certs` names it (the control service's cuts).
    server_key_pin: pulumi.Output[str]

    def __init__(
        self, name: str, args: RegionPkiArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("nats-supercluster:pki:RegionPki", name, None, opts)
        names = args.names
        child = pulumi.ResourceOptions(parent=self)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.kubernetes)

        sans = pulumi.Output.from_input(args.endpoint).apply(
            lambda endpoint: server_sans(
                names.service, names.headless_service, names.namespace, endpoint
            )
        )
        # The SANs are known only once the load balancer has an address, so they go to the
        # request as outputs; the rest of the spec is plain.
        server_cert, server_key, server_public = _issue(
            f"{name}-server",
            server_spec(SubjectAltNames((), ())),
            args.trust.issuing,
            child,
            dns_names=sans.apply(lambda s: list(s.dns_names)),
            ip_addresses=sans.apply(lambda s: list(s.ip_addresses)),
        )
        self.server_key_pin = server_public.apply(spki_pin)
        self.server_secret = _tls_secret(
            f"{name}-server",
            secret_name=names.server_tls_secret,
            namespace=args.namespace,
            cert=server_cert,
            key=server_key,
            ca=None,
            opts=on_cluster,
        )
        self.ca_secret = Secret(
            f"{name}-ca",
            metadata=ObjectMetaArgs(name=names.ca_secret, namespace=args.namespace),
            string_data={CA_SECRET_KEY: args.trust.bundle_pem},
            opts=on_cluster,
        )
        self.client_secrets = {}
        for who in IDENTITIES:
            cert, key, _ = _issue(f"{name}-{who.name}", client_spec(who), args.trust.issuing, child)
            self.client_secrets[who.name] = _tls_secret(
                f"{name}-{who.name}",
                secret_name=names.client_tls_secret(who.name),
                namespace=args.namespace,
                cert=cert,
                key=key,
                ca=args.trust.bundle_pem,
                opts=on_cluster,
            )
            if who.name == "admin":
                self.admin_cert_pem, self.admin_key_pem = cert, key
            if who.name == "control":
                self.control_cert_pem, self.control_key_pem = cert, key
        self.register_outputs({"serverSecret": self.server_secret.metadata.name})


def _private_key(name: str, opts: pulumi.ResourceOptions) -> tls.PrivateKey:
    return tls.PrivateKey(name, algorithm=KEY_ALGORITHM, ecdsa_curve=ECDSA_CURVE, opts=opts)


def _issue(
    name: str,
    spec: CertSpec,
    ca: CaMaterial,
    opts: pulumi.ResourceOptions,
    *,
    dns_names: pulumi.Input[list[str]] | None = None,
    ip_addresses: pulumi.Input[list[str]] | None = None,
) -> tuple[pulumi.Output[str], pulumi.Output[str], pulumi.Output[str]]:
    """The certificate, the private key (secret) and the public key, all PEM."""
    key = _private_key(f"{name}-key", opts)
    request = tls.CertRequest(
        f"{name}-csr",
        private_key_pem=key.private_key_pem,
        subject=tls.CertRequestSubjectArgs(
            common_name=spec.common_name,
            organization=spec.organization,
            organizational_unit=spec.organizational_unit,
        ),
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        opts=opts,
    )
    cert = tls.LocallySignedCert(
        f"{name}-cert",
        cert_request_pem=request.cert_request_pem,
        ca_cert_pem=ca.cert_pem,
        ca_private_key_pem=ca.key_pem,
        validity_period_hours=spec.validity_hours,
        early_renewal_hours=EARLY_RENEWAL_HOURS,
        allowed_uses=list(spec.usages),
        opts=opts,
    )
    return cert.cert_pem, pulumi.Output.secret(key.private_key_pem), key.public_key_pem


def _tls_secret(
    name: str,
    *,
    secret_name: str,
    namespace: pulumi.Input[str],
    cert: pulumi.Output[str],
    key: pulumi.Output[str],
    ca: pulumi.Output[str] | None,
    opts: pulumi.ResourceOptions,
) -> Secret:
    data: dict[str, pulumi.Input[str]] = {"tls.crt": cert, "tls.key": key}
    if ca is not None:
        data[CA_SECRET_KEY] = ca
    return Secret(
        name,
        metadata=ObjectMetaArgs(name=secret_name, namespace=namespace),
        type="kubernetes.io/tls",
        string_data=data,
        opts=opts,
    )
