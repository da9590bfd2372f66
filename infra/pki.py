"""The certificates of the supercluster: one CA for every region, a server certificate per region
whose names cover every way a peer or client reaches it, and one client certificate per identity.

Both the Pulumi program (pulumi-tls) and the local supercluster (cryptography) issue exactly
these specs, so what runs locally is what the clouds get.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from dataclasses import dataclass

from infra.identities import CERT_ORGANIZATION, SERVER_COMMON_NAME, SERVER_UNIT, Identity

KEY_ALGORITHM = "ECDSA"
ECDSA_CURVE = "P256"
CA_VALIDITY_HOURS = 10 * 365 * 24
LEAF_VALIDITY_HOURS = 365 * 24
# pulumi-tls renews a leaf (replaces it on the next `pulumi up`) this long before it expires.
EARLY_RENEWAL_HOURS = 30 * 24

SERVER_USAGES = ("digital_signature", "key_encipherment", "server_auth", "client_auth")
CLIENT_USAGES = ("digital_signature", "key_encipherment", "client_auth")
CA_USAGES = ("cert_signing", "crl_signing", "digital_signature")


@dataclass(frozen=True)
class SubjectAltNames:
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]


@dataclass(frozen=True)
class CertSpec:
    common_name: str
    organization: str
    usages: tuple[str, ...]
    sans: SubjectAltNames = SubjectAltNames((), ())
    validity_hours: int = LEAF_VALIDITY_HOURS
    organizational_unit: str | None = None


def ca_spec(project: str, generation: int = 1) -> CertSpec:
    """Each CA generation has its own subject, so a bundle of two (a rotation) never leaves a
    verifier to guess which one issued a certificate."""
    return CertSpec(
        common_name=f"{project} CA {generation}",
        organization=CERT_ORGANIZATION,
        usages=CA_USAGES,
        validity_hours=CA_VALIDITY_HOURS,
    )


def in_cluster_names(service: str, headless: str, namespace: str) -> tuple[str, ...]:
    """Every name a client or route peer uses inside Kubernetes: the client Service at each level
    of qualification, and each pod behind the headless Service (routes dial `<pod>.<headless>`).
    `localhost` serves `kubectl port-forward` with full verification."""
    names: list[str] = ["localhost"]
    for base, wildcard in ((service, False), (headless, True)):
        for suffix in ("", f".{namespace}", f".{namespace}.svc", f".{namespace}.svc.cluster.local"):
            names.append(f"*.{base}{suffix}" if wildcard else f"{base}{suffix}")
    return tuple(names)


def server_sans(service: str, headless: str, namespace: str, endpoint: str) -> SubjectAltNames:
    """The in-cluster names plus the public endpoint: a DNS name (AWS NLB) or an IP (Azure LB)."""
    dns = list(in_cluster_names(service, headless, namespace))
    ips: list[str] = []
    if is_ip(endpoint):
        ips.append(endpoint)
    elif endpoint not in dns:
        dns.append(endpoint)
    return SubjectAltNames(tuple(dns), tuple(ips))


def server_spec(sans: SubjectAltNames) -> CertSpec:
    """Servers present this certificate to clients and, as clients themselves, to route and
    gateway peers, hence both server and client auth. Its subject is the one identity routes
    and gateways accept (infra.identities.SERVER_SUBJECT_DN), the same in every region."""
    return CertSpec(
        common_name=SERVER_COMMON_NAME,
        organization=CERT_ORGANIZATION,
        organizational_unit=SERVER_UNIT,
        usages=SERVER_USAGES,
        sans=sans,
    )


def client_spec(who: Identity) -> CertSpec:
    """No SANs: the server maps the subject DN (`CN=<name>,O=...`) to the identity's user."""
    return CertSpec(common_name=who.name, organization=CERT_ORGANIZATION, usages=CLIENT_USAGES)


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_PUBLIC_KEY_PEM = re.compile(
    r"-----BEGIN PUBLIC KEY-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*-----END PUBLIC KEY-----"
)


def spki_pin(public_key_pem: str) -> str:
    """What nats-server's `pinned_certs` lists for a key: the hex SHA-256 of the certificate's
    SubjectPublicKeyInfo (auth.go matchesPinnedCert). pulumi-tls's `public_key_pem` is that
    structure in a PUBLIC KEY block (terraform-provider-tls common_key.go,
    x509.MarshalPKIXPublicKey)."""
    match = _PUBLIC_KEY_PEM.search(public_key_pem)
    if match is None:
        raise ValueError("not a PEM public key (-----BEGIN PUBLIC KEY-----)")
    try:
        der = base64.b64decode("".join(match.group("body").split()), validate=True)
    except binascii.Error as error:
        raise ValueError(f"the PEM public key is not base64: {error}") from None
    return hashlib.sha256(der).hexdigest()
