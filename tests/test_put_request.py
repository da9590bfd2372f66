"""What a config.put may say and which server keys a cut pins (infra/put_request.py): every
field strictly typed and bounded, a refusal naming its field, a pin as nats-server computes it,
and the pins a release gives its control service."""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infra.peers import gateway_pins, read_peers
from infra.pki import spki_pin
from infra.put_request import MAX_ROUTES, Put, PutError, parse_pins, parse_put, pins_for
from offline.tls_mocks import private_key

EAST, WEST, CENTRAL = "e" * 64, "a" * 64, "c" * 64
PINS = {"east": (EAST,), "west": (WEST,), "central": (CENTRAL,)}


def put(body: Any) -> Put:
    return parse_put(json.dumps(body).encode())


def test_a_put_sets_routes_clears_them_or_empties_them_when_forced() -> None:
    assert put({"routes": ["tls://east-3.east-headless:6222", "nats://[fd00::1]:6222"]}) == Put(
        ("tls://east-3.east-headless:6222", "nats://[fd00::1]:6222"), sets_routes=True
    )
    assert put({"routes": None}) == Put(None, sets_routes=True)
    assert put({"routes": [], "force": True}) == Put((), sets_routes=True, force=True)
    assert put({"cut_gateways": ["west"]}) == Put(cut_gateways=("west",), sets_cut=True)
    assert put({"cut_gateways": []}) == Put(sets_cut=True)


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (b"\xff\xfe", "body", "not JSON"),
        (b"[" * 100_000, "body", "a put has at most 16384"),
        (b"[" * 10_000, "body", "nested too deeply"),
        (b'["routes"]', "body", "JSON object"),
        (b'{"routes": ["tls://a:1"], "routez": []}', "routez", "known: routes, cut_gateways"),
        (b'{"cut_gateways": "west"}', "cut_gateways", "list of region names"),
        (b'{"cut_gateways": [["west"]]}', "cut_gateways[0]", "must be a region name"),
        (b'{"cut_gateways": ["west", "west"]}', "cut_gateways", "twice"),
        (b'{"gateways": []}', "gateways", "cannot reload a gateway list"),
        (b'{"routes": [], "force": 1}', "force", "true or false"),
        (b'{"force": true}', "routes", "nothing to change"),
        (b'{"routes": []}', "routes", '"force": true'),
        (b'{"routes": "tls://a:6222"}', "routes", "list of route URLs"),
        (b'{"routes": [6222]}', "routes[0]", "must be a route URL string"),
        (b'{"routes": ["tls://a:0"]}', "routes[0]", "port '0': 1 to 65535"),
        (b'{"routes": ["tls://a:6222", "tls://b:65536"]}', "routes[1]", "port '65536'"),
        (b'{"routes": ["tls://a:6222/path"]}', "routes[0]", "no user, path"),
        (b'{"routes": ["tls://user:pw@a:6222"]}', "routes[0]", "no user, path"),
        (b'{"routes": ["tls://a:6222\\n}"]}', "routes[0]", "printable ASCII"),
        (b'{"routes": ["tls://a:6222\\n"]}', "routes[0]", "printable ASCII"),
        (b'{"routes": ["tls://a:6222", "tls://a:6222"]}', "routes", "twice"),
    ],
)
def test_a_bad_put_names_its_field(body: bytes, field: str, says: str) -> None:
    with pytest.raises(PutError) as raised:
        parse_put(body)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")
    assert says in str(raised.value)


def test_a_put_is_bounded() -> None:
    many = [f"tls://east-{i}.east-headless:6222" for i in range(MAX_ROUTES + 1)]
    with pytest.raises(PutError, match=f"at most {MAX_ROUTES}"):
        put({"routes": many})
    assert put({"routes": many[:MAX_ROUTES]}).routes == tuple(many[:MAX_ROUTES])


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (b'{"cut_gateways": 0}', "cut_gateways", "got int"),
        (b'{"cut_gateways": false}', "cut_gateways", "got bool"),
        (b'{"cut_gateways": {}}', "cut_gateways", "got dict"),
        (b'{"cut_gateways": ""}', "cut_gateways", "got str"),
        (b'{"cut_gateways": null}', "cut_gateways", "got null"),
        (b'{"cut_gateways": ["West"]}', "cut_gateways[0]", "not a region name"),
        (b'{"cut_gateways": ["w\\u0435st"]}', "cut_gateways[0]", "not a region name"),
        (b'{"routes": ["tls://a:6222"], "routes": null}', "body", "given twice"),
        (b'{"routes": ["tls://a:6222"], "force": NaN}', "body", "NaN is not JSON"),
        (b'{"routes": [], "force": 0}', "force", "got int"),
        (b'{"routes": ["tls://A:6222", "tls://a:6222"]}', "routes", "twice"),
        (b" " * 1_000_000, "body", "1000000 bytes"),
    ],
)
def test_every_field_is_strictly_typed(body: bytes, field: str, says: str) -> None:
    with pytest.raises(PutError) as raised:
        parse_put(body)
    assert raised.value.field == field
    assert says in str(raised.value)


def test_thirty_three_routes_are_refused() -> None:
    routes = [f"tls://east-{i}.east-headless:6222" for i in range(33)]
    with pytest.raises(PutError, match="33 routes; at most 32"):
        put({"routes": routes})


def test_a_cut_pins_every_known_region_but_the_ones_cut_off() -> None:
    cut_west = put({"cut_gateways": ["west"]})
    assert pins_for(cut_west, "east", PINS, {"west", "central"}) == (CENTRAL, EAST)
    assert pins_for(put({"cut_gateways": []}), "east", PINS, {"west"}) == ()
    everyone = put({"cut_gateways": ["west", "central"]})
    with pytest.raises(PutError, match=r'every gateway of east .*"force": true'):
        pins_for(everyone, "east", PINS, set())
    forced = put({"cut_gateways": ["west", "central"], "force": True})
    assert pins_for(forced, "east", PINS, set()) == (EAST,)  # its own key: never an empty pin set


@pytest.mark.parametrize(
    ("body", "pins", "connected", "field", "says"),
    [
        ({"cut_gateways": ["east"]}, PINS, set(), "cut_gateways[0]", "known: central, west"),
        ({"cut_gateways": ["west", "north"]}, PINS, set(), "cut_gateways[1]", "'north'"),
        ({"cut_gateways": ["west"]}, {"west": (WEST,)}, set(), "cut_gateways", "own region"),
        ({"cut_gateways": ["west"]}, {}, set(), "cut_gateways", "GATEWAY_PINS"),
        (  # a region that joined after this release would be cut off with the one named
            {"cut_gateways": ["west"]},
            PINS,
            {"west", "north"},
            "cut_gateways",
            "north connected, but this release has no key for it",
        ),
    ],
)
def test_a_cut_that_would_do_more_than_asked_is_refused(
    body: dict[str, Any],
    pins: dict[str, tuple[str, ...]],
    connected: set[str],
    field: str,
    says: str,
) -> None:
    with pytest.raises(PutError) as raised:
        pins_for(put(body), "east", pins, connected)
    assert raised.value.field == field
    assert says in str(raised.value)


def test_gateway_pins_come_as_hex_keys_by_region() -> None:
    assert parse_pins(json.dumps({"east": [EAST]})) == {"east": (EAST,)}
    assert parse_pins("") == {}
    for bad in ("{", "[]", '{"east": "x"}', json.dumps({"east": [EAST.upper()]})):
        with pytest.raises(ValueError, match="GATEWAY_PINS"):
            parse_pins(bad)


def test_a_pin_is_the_sha256_of_the_key_as_the_server_sees_it_in_the_certificate() -> None:
    """pulumi-tls's public_key_pem is x509.MarshalPKIXPublicKey in a PUBLIC KEY block
    (terraform-provider-tls internal/provider/common_key.go, setPublicKeyAttributes);
    nats-server pins sha256(cert.RawSubjectPublicKeyInfo) (v2.14.2 auth.go matchesPinnedCert).
    The live test checks the servers against these pins."""
    key = private_key({"algorithm": "ECDSA", "ecdsaCurve": "P256"})
    cert = locally_signed_cert_for(key["privateKeyPem"])
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki_pin(key["publicKeyPem"]) == hashlib.sha256(spki).hexdigest()
    with pytest.raises(ValueError, match="PUBLIC KEY"):
        spki_pin(cert.public_bytes(serialization.Encoding.PEM).decode())


def test_the_pins_a_release_gives_its_control_service() -> None:
    reading = read_peers(
        "east",
        {
            "west": {"gatewayUrl": "tls://w:7222", "natsClusterName": "west", "gatewayPin": WEST},
            "old": {"gatewayUrl": "tls://o:7222", "natsClusterName": "old"},  # before pins
        },
    )
    assert gateway_pins("east", EAST, reading) == {"east": [EAST], "west": [WEST]}


def locally_signed_cert_for(private_key_pem: str) -> x509.Certificate:
    """A certificate for that key, as the servers present it."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nats-server")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
