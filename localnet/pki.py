"""Issues the specs of infra.pki with `cryptography`, for servers and clients on this machine."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from infra.pki import CertSpec


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes


_EXTENDED = {
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
}


def issue_ca(spec: CertSpec) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(spec)
    builder = _builder(spec, name, name, key.public_key()).add_extension(
        x509.BasicConstraints(ca=True, path_length=0), critical=True
    )
    builder = builder.add_extension(_key_usage(spec, ca=True), critical=True)
    return _sign(builder, key, key)


def issue(spec: CertSpec, ca: Issued) -> Issued:
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key must be ECDSA")
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(spec, _name(spec), ca_cert.subject, key.public_key())
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    builder = builder.add_extension(_key_usage(spec, ca=False), critical=True)
    extended = [_EXTENDED[u] for u in spec.usages if u in _EXTENDED]
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in spec.sans.dns_names]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in spec.sans.ip_addresses]
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return _sign(builder, key, ca_key)


def _name(spec: CertSpec) -> x509.Name:
    """In the order Go's x509 writes a subject (O, OU, CN), as pulumi-tls does."""
    unit = (
        [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, spec.organizational_unit)]
        if spec.organizational_unit
        else []
    )
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, spec.organization),
            *unit,
            x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name),
        ]
    )


def _builder(
    spec: CertSpec, subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=spec.validity_hours))
    )


def _key_usage(spec: CertSpec, *, ca: bool) -> x509.KeyUsage:
    usages = set(spec.usages)
    return x509.KeyUsage(
        digital_signature="digital_signature" in usages,
        content_commitment=False,
        key_encipherment="key_encipherment" in usages and not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign="cert_signing" in usages,
        crl_sign="crl_signing" in usages,
        encipher_only=False,
        decipher_only=False,
    )


def _sign(
    builder: x509.CertificateBuilder,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
) -> Issued:
    cert = builder.sign(signer, hashes.SHA256())
    return Issued(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
