"""The control service's decisions without a server: what a config.put may say, what the
runtime files say, which keys a cut pins, who asked, and what status makes of the servers'
replies (shaped as nats-server v2.14.2 sends them; the live test checks the same against real
servers)."""

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

from infra.callers import caller, reply_allowed
from infra.peers import gateway_pins, read_peers
from infra.pki import spki_pin
from infra.put_request import MAX_ROUTES, Put, PutError, parse_pins, parse_put, pins_for
from infra.runtime_config import (
    HISTORY_KEPT,
    RuntimeState,
    applied,
    rolled_back,
    runtime_files,
    with_outcome,
)
from infra.runtime_status import (
    Replies,
    connected_regions,
    effective,
    region_servers,
    status,
)
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


def test_the_runtime_files_are_empty_until_an_operator_changes_them() -> None:
    empty = runtime_files(RuntimeState())
    assert (empty["routes.conf"], empty["gateways.conf"]) == ("", "")
    files = runtime_files(RuntimeState(("tls://a:6222", "tls://b:6222")))
    assert files["routes.conf"] == 'routes: ["tls://a:6222", "tls://b:6222"]\n'
    assert runtime_files(RuntimeState(()))["routes.conf"] == "routes: []\n"
    cut = runtime_files(RuntimeState(None, ("west",), (CENTRAL, EAST)))
    assert cut["gateways.conf"] == f'pinned_certs: ["{CENTRAL}", "{EAST}"]\n'
    assert cut["routes.conf"] == ""


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


def test_the_connected_regions_are_this_regions_gateways_in_and_out() -> None:
    replies = Replies()
    replies.add("varz", [_reply("e0", {"cluster": {"name": "east"}}), _reply("w0", _west())])
    replies.add(
        "gatewayz",
        [
            _reply("e0", {"outbound_gateways": {"west": {}}, "inbound_gateways": {"north": []}}),
            _reply("w0", {"outbound_gateways": {"south": {}}}),  # not east's
        ],
    )
    assert connected_regions(replies, "east") == {"west", "north"}


def _west() -> dict[str, Any]:
    return {"cluster": {"name": "west"}}


def _reply(server: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"server": {"name": server}, "data": data}


def test_state_survives_its_file_and_keeps_the_last_changes() -> None:
    state = RuntimeState()
    for n in range(HISTORY_KEPT + 5):
        state = applied(state, put({"routes": [f"tls://h{n}:6222"]}), "CN=admin", f"t{n}")
    assert len(state.history) == HISTORY_KEPT
    assert state.history[-1] == {
        "who": "CN=admin",
        "when": f"t{HISTORY_KEPT + 4}",
        "routes": [f"tls://h{HISTORY_KEPT + 4}:6222"],
    }
    assert RuntimeState.from_json(state.to_json()) == state
    assert RuntimeState.from_json("") == RuntimeState()
    back = applied(state, put({"routes": None}), "CN=admin", "later")
    assert back.routes is None
    assert back.history[-1]["routes"] is None
    cut = applied(back, put({"cut_gateways": ["west"]}), "CN=admin", "cut", pinned=(EAST,))
    assert (cut.cut_gateways, cut.pinned, cut.history[-1]["cut_gateways"]) == (
        ("west",),
        (EAST,),
        ["west"],
    )
    assert "routes" not in cut.history[-1]  # a put changes what it names, nothing else
    routed = applied(cut, put({"routes": ["tls://a:6222"]}), "CN=admin", "routes")
    assert (routed.cut_gateways, routed.pinned) == (("west",), (EAST,))
    lifted = applied(routed, put({"cut_gateways": []}), "CN=admin", "lift")
    assert (lifted.cut_gateways, lifted.pinned, lifted.routes) == ((), (), ("tls://a:6222",))
    assert RuntimeState.from_json(lifted.to_json()) == lifted


def test_the_caller_is_what_the_server_says_about_the_importer() -> None:
    info = json.dumps({"acc": "APP", "user": "CN=admin,O=nats-supercluster", "rtt": "1ms"})
    assert caller({"Nats-Request-Info": info}) == "CN=admin,O=nats-supercluster in account APP"
    assert caller(None).startswith("unknown")
    assert caller({"Nats-Request-Info": "{not json"}).startswith("unknown")


@pytest.mark.parametrize(
    ("reply", "allowed"),
    [
        ("_INBOX.system.abc.1", True),
        ("_R_.xyz.abc", True),
        ("_INBOX.systemx.1", False),
        ("_INBOX.admin.1", False),  # the admin's replies come back through the import (_R_)
        ("$JS.API.SERVER.REMOVE", False),
        ("$SYS.REQ.SERVER.X.RELOAD", False),
        ("", False),
    ],
)
def test_answers_go_only_into_callers_inboxes(reply: str, allowed: bool) -> None:
    assert reply_allowed(reply, ("_INBOX.system.", "_R_.")) is allowed


def _server(name: str, cluster: str) -> dict[str, Any]:
    return {"name": name, "cluster": cluster, "id": f"ID-{name}"}


def _replies() -> Replies:
    """Three servers in east, two in west. The stream `answers` is R3 in east, led by e1:
    its leader lists the two others; each follower lists the others but itself, the leader
    included (nats-server v2.14.2, jetstream_cluster.go clusterInfo: peers other than
    the reporting node's own ID)."""
    replies = Replies()
    east, west = ["e0", "e1", "e2"], ["w0", "w1"]
    servers = [*(_server(n, "east") for n in east), *(_server(n, "west") for n in west)]
    replies.add(
        "varz",
        (
            {
                "server": s,
                "data": {
                    "server_id": s["id"],
                    "version": "2.14.2",
                    "cluster": {"name": s["cluster"], "urls": [f"{s['name']}:6222"]},
                    "gateway": {"gateways": [{"name": "west", "urls": ["w:7222"]}]},
                    "jetstream": {"config": {"max_memory": 1}},
                },
            }
            for s in servers
        ),
    )
    replies.add("healthz", ({"server": s, "data": {"status": "ok"}} for s in servers))

    def stream_view(name: str) -> dict[str, Any]:
        others = [n for n in east if n != name]
        return {
            "name": "answers",
            "cluster": {"name": "east", "leader": "e1", "replicas": [{"name": n} for n in others]},
        }

    def jsz(name: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "meta_cluster": {
                "leader": "w0",
                "replicas": [{"name": n, "offline": n == "e2"} for n in [*east, "w1"]],
            }
        }
        if name in east:
            data["account_details"] = [{"name": "APP", "stream_detail": [stream_view(name)]}]
        return data

    replies.add("jsz", ({"server": s, "data": jsz(s["name"])} for s in servers))
    return replies


def test_status_takes_each_stream_from_its_leader_and_the_meta_group_from_its_leader() -> None:
    report = status("east", _replies())
    assert [s["name"] for s in report["servers"]] == ["e0", "e1", "e2", "w0", "w1"]
    assert all(s["healthy"] and s["version"] == "2.14.2" for s in report["servers"])
    (answers,) = report["jetstream"]["streams"]
    assert answers == {
        "account": "APP",
        "name": "answers",
        "cluster": "east",
        "leader": "e1",
        "replicas": ["e0", "e1", "e2"],
    }
    assert report["jetstream"]["meta_leader"] == "w0"
    assert report["jetstream"]["meta_peers"] == ["e0", "e1", "e2", "w0", "w1"]
    assert report["jetstream"]["meta_offline"] == ["e2"]
    assert "neither side keeps a majority" not in report["quorum"]  # 3 + 2: east holds one


def test_status_without_a_meta_leader_says_so_and_two_equal_regions_are_fragile() -> None:
    replies = _replies()
    for name in list(replies.varz):
        if name == "e2":
            del replies.varz[name]
    for name in replies.jsz:
        replies.jsz[name] = {}
    report = status("east", replies)
    assert report["jetstream"] == {
        "meta_leader": None,
        "meta_peers": [],
        "meta_offline": [],
        "streams": [],
    }
    assert "neither side keeps a majority" in report["quorum"]  # 2 + 2


def test_a_region_reloads_only_its_own_servers() -> None:
    assert region_servers(_replies(), "west") == {"w0": "ID-w0", "w1": "ID-w1"}
    assert region_servers(_replies(), "central") == {}


def test_config_get_shows_the_regions_routes_as_run_and_the_override() -> None:
    state = applied(RuntimeState(), put({"routes": ["tls://e0:6222"]}), "CN=admin", "now")
    got = effective(_replies(), "east", state)
    assert got["routes"] == {"e0": ["e0:6222"], "e1": ["e1:6222"], "e2": ["e2:6222"]}
    assert got["gateways"]["e0"] == [{"name": "west", "urls": ["w:7222"]}]
    assert got["runtime_routes"] == ["tls://e0:6222"]
    assert got["history"] == [{"who": "CN=admin", "when": "now", "routes": ["tls://e0:6222"]}]


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


def test_a_change_is_pending_until_its_outcome_is_recorded_and_a_later_one_supersedes_it() -> None:
    first = applied(
        RuntimeState(), put({"routes": ["tls://a:6222"]}), "CN=admin", "t1", change="c1"
    )
    assert first.history[-1]["outcome"] == "pending"
    second = applied(first, put({"routes": ["tls://b:6222"]}), "CN=admin", "t2", change="c2")
    assert [h["outcome"] for h in second.history] == ["superseded by c2", "pending"]
    done = with_outcome(second, "c2", "applied")
    assert [h["outcome"] for h in done.history] == ["superseded by c2", "applied"]
    back = rolled_back(done, first, "c2", "east-1 has no route to east-2")
    assert back.routes == ("tls://a:6222",)
    assert back.history[-1]["outcome"] == "rolled back: east-1 has no route to east-2"
    assert back.history[-1]["routes"] == ["tls://b:6222"]  # what was tried stays on record
