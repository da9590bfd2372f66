"""pulumi-tls as the provider answers: real keys, requests and certificates (with `cryptography`),
so tests can read the SANs the program asked for out of the certificate it would get."""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def private_key(inputs: dict[str, Any]) -> dict[str, Any]:
    if inputs.get("algorithm") != "ECDSA":
        raise ValueError(f"the mocks issue ECDSA keys only, not {inputs.get('algorithm')}")
    key = ec.generate_private_key(ec.SECP256R1())
    return {
        "privateKeyPem": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode(),
        "publicKeyPem": key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    }


def self_signed_cert(inputs: dict[str, Any]) -> dict[str, Any]:
    key = _key(inputs["privateKeyPem"])
    name = _name(inputs.get("subject") or {})
    builder = _validity(inputs).subject_name(name).issuer_name(name).public_key(key.public_key())
    builder = builder.add_extension(
        x509.BasicConstraints(ca=bool(inputs.get("isCaCertificate")), path_length=None), True
    )
    return {"certPem": _pem(builder.sign(key, hashes.SHA256()))}


def cert_request(inputs: dict[str, Any]) -> dict[str, Any]:
    key = _key(inputs["privateKeyPem"])
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        _name(inputs.get("subject") or {})
    )
    alt = _alt_names(inputs)
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    request = builder.sign(key, hashes.SHA256())
    return {"certRequestPem": request.public_bytes(serialization.Encoding.PEM).decode()}


def locally_signed_cert(inputs: dict[str, Any]) -> dict[str, Any]:
    request = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
    ca_cert = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
    ca_key = _key(inputs["caPrivateKeyPem"])
    builder = (
        _validity(inputs)
        .subject_name(request.subject)
        .issuer_name(ca_cert.subject)
        .public_key(request.public_key())
    )
    for extension in request.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return {"certPem": _pem(builder.sign(ca_key, hashes.SHA256()))}


def _key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("expected an ECDSA key")
    return key


def _name(subject: dict[str, Any]) -> x509.Name:
    attributes = []
    if subject.get("organization"):
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
    if subject.get("organizationalUnit"):
        attributes.append(
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, subject["organizationalUnit"])
        )
    if subject.get("commonName"):
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, subject["commonName"]))
    return x509.Name(attributes)


def _alt_names(inputs: dict[str, Any]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in inputs.get("dnsNames") or []]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in inputs.get("ipAddresses") or []]
    return names


def _validity(inputs: dict[str, Any]) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    hours = int(inputs.get("validityPeriodHours") or 24)
    return (
        x509.CertificateBuilder()
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(hours=hours))
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()
