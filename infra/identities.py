"""Who may connect, as what user, in which account, with which permissions; and which certificate
identity the servers themselves carry.

Every client authenticates with its own certificate (mTLS, `verify_and_map`): the server maps
the certificate's subject to a user below. One identity per workload, each allowed only the
subjects it needs. No identity may make another party (a service, JetStream, the servers)
publish to an API subject for it. Reply subjects are how such a deputy is steered: whoever
answers a message publishes to the reply subject its sender chose. So:

- JetStream's account (APP) has one direct client, the admin. Everyone else reaches it through
  service imports, which rewrite the reply subject to a mapping that leads back into the
  caller's own account: JetStream's answers to them (a publish's ack, a pull's messages and
  statuses, an ack's confirmation) land where there is no JetStream API and no stream to write.
  A reply like `$JS.API.STREAM.DELETE.answers` or `$KV.settings.x` then reaches nothing;
- the calculators and the requester share SERVICES: math requests stay in one account (the
  queue group keeps its geo-affinity), the requester publishes answers through an import, and
  the calculators answer only into the requester's inbox and import mappings (no
  `allow_responses`, which would let a request's reply subject name any subject);
- the recorder has RECORDER, importing only its consumer's pull, info and ack subjects;
- the system identity may only read (monitoring requests), not kick, reload or step down; the
  control identity (operations: the program's scale-down, the control service) may read, reload
  a server's configuration and remove a departed JetStream peer, nothing else.

`tests/test_local_region.py` and `tests/test_deputies.py` prove this against real servers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

APP_ACCOUNT = "APP"
SERVICES_ACCOUNT = "SERVICES"
RECORDER_ACCOUNT = "RECORDER"
SYSTEM_ACCOUNT = "SYS"
CERT_ORGANIZATION = "nats-supercluster"

# Every server certificate of the supercluster carries this subject; routes and gateways accept
# only peers that present it (`verify_and_map` with this user on both listeners), so a client's
# certificate, signed by the same CA, cannot open a route or a gateway. The servers' string form
# of a subject (Go's RDN sequence) lists CN first, then OU, then O; the match is exact.
SERVER_COMMON_NAME = "nats-server"
SERVER_UNIT = "server"
SERVER_SUBJECT_DN = f"CN={SERVER_COMMON_NAME},OU={SERVER_UNIT},O={CERT_ORGANIZATION}"

# The control service's endpoints (services/control.py): <prefix>.<cluster>.<endpoint>.
CONTROL_PREFIX = "supercluster"
CONTROL_READS = ("status", "config.get")
CONTROL_WRITES = ("config.put",)

# Request subjects of the calculators (seed 001's services): math.numbers.<op>.
MATH_SUBJECTS = "math.numbers.*"
MATH_OPERATIONS = ("add", "subtract", "multiply", "divide")
# What the requester publishes answers to, and the stream that keeps them.
ANSWER_SUBJECTS = ("answers.significant", "answers.throwaway")
ANSWERS_STREAM = "answers"
RECORDER_CONSUMER = "recorder"

IdentityName = Literal["admin", "system", "control", "calculator", "requester", "recorder"]

# Monitoring requests the servers answer on the system account, all read-only (nats-server
# v2.14.2 server/events.go:1267-1352 and 1361-1445). Not granted: PROFILEZ (runs a CPU profile),
# and the mutating KICK, LDM and RELOAD.
SERVER_READS = (
    "IDZ",
    "STATSZ",
    "VARZ",
    "SUBSZ",
    "CONNZ",
    "ROUTEZ",
    "GATEWAYZ",
    "LEAFZ",
    "ACCOUNTZ",
    "JSZ",
    "HEALTHZ",
    "EXPVARZ",
    "IPQUEUESZ",
    "RAFTZ",
)
ACCOUNT_READS = ("SUBSZ", "CONNZ", "LEAFZ", "JSZ", "INFO", "STATZ", "CONNS")


@dataclass(frozen=True)
class ServiceExport:
    """A subject one account lets another call; `stream` where one request gets many replies
    (a pull request's messages, a discovery ping's answers)."""

    subject: str
    exporter: str
    importer: str
    response_type: Literal["singleton", "stream"] = "singleton"
    # The importer shares who calls (`share`): the exporter's service then sees the caller's
    # account and user in the Nats-Request-Info header (the control service's audit record).
    share_caller: bool = False


@dataclass(frozen=True)
class Identity:
    name: IdentityName
    account: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    description: str = ""

    @property
    def inbox_prefix(self) -> str:
        """Each identity reads replies only under its own inbox, so no client can read the
        replies meant for another."""
        return f"_INBOX.{self.name}"

    @property
    def subject_dn(self) -> str:
        """The certificate subject as the server prints it (RFC 2253), i.e. the mapped user."""
        return f"CN={self.name},O={CERT_ORGANIZATION}"


_MONITORING = (
    "$SYS.REQ.SERVER.PING",
    *(f"$SYS.REQ.SERVER.PING.{verb}" for verb in SERVER_READS),
    *(f"$SYS.REQ.SERVER.*.{verb}" for verb in SERVER_READS),
    *(f"$SYS.REQ.ACCOUNT.*.{verb}" for verb in ACCOUNT_READS),
)


def _inbox(name: IdentityName) -> str:
    return f"_INBOX.{name}.>"


def _consumer_api(verb: str) -> str:
    return f"$JS.API.CONSUMER.{verb}.{ANSWERS_STREAM}.{RECORDER_CONSUMER}"


SERVICE_EXPORTS = (
    # The requester's publishes into the `answers` stream (JetStream acks each one).
    *(ServiceExport(subject, APP_ACCOUNT, SERVICES_ACCOUNT) for subject in ANSWER_SUBJECTS),
    # The recorder's calls on its durable consumer.
    ServiceExport(_consumer_api("MSG.NEXT"), APP_ACCOUNT, RECORDER_ACCOUNT, "stream"),
    ServiceExport(_consumer_api("INFO"), APP_ACCOUNT, RECORDER_ACCOUNT),
    ServiceExport(f"$JS.ACK.{ANSWERS_STREAM}.{RECORDER_CONSUMER}.>", APP_ACCOUNT, RECORDER_ACCOUNT),
    # Service discovery ($SRV.PING/INFO/STATS) of the calculators, for the admin.
    ServiceExport("$SRV.>", SERVICES_ACCOUNT, APP_ACCOUNT, "stream"),
    # The control service runs in the system account; the admin calls it from APP.
    *(
        ServiceExport(
            f"{CONTROL_PREFIX}.*.{endpoint}", SYSTEM_ACCOUNT, APP_ACCOUNT, share_caller=True
        )
        for endpoint in (*CONTROL_READS, *CONTROL_WRITES)
    ),
)
# Where a reply to an imported request goes in the exporting account (nats-server's reserved
# response prefix); it leads back to the importer's own reply subject.
IMPORT_REPLIES = "_R_.>"


def _imports_of(account: str) -> tuple[str, ...]:
    return tuple(e.subject for e in SERVICE_EXPORTS if e.importer == account)


IDENTITIES: tuple[Identity, ...] = (
    Identity(
        name="admin",
        account=APP_ACCOUNT,
        publish=(">",),
        subscribe=(">",),
        description="operators and the program itself: JetStream management in APP",
    ),
    Identity(
        name="system",
        account=SYSTEM_ACCOUNT,
        publish=(*_MONITORING, *(f"{CONTROL_PREFIX}.*.{e}" for e in CONTROL_READS)),
        subscribe=(_inbox("system"), "$SYS.SERVER.>", "$SYS.ACCOUNT.>"),
        description="monitoring: the servers' read-only requests and events in $SYS, and the "
        "control service's status and config.get",
    ),
    Identity(
        name="control",
        account=SYSTEM_ACCOUNT,
        publish=(
            *_MONITORING,
            "$SYS.REQ.SERVER.*.RELOAD",
            "$JS.API.SERVER.REMOVE",
            # The control service's answers: to the system identity, and through the import
            # mappings to the admin.
            _inbox("system"),
            IMPORT_REPLIES,
        ),
        subscribe=(_inbox("control"), f"{CONTROL_PREFIX}.>", "$SRV.>"),
        description="operations: reload the servers' configuration, remove departed JetStream "
        "peers, read the servers' state; the control service's identity",
    ),
    Identity(
        name="calculator",
        account=SERVICES_ACCOUNT,
        # Replies only into its callers' inboxes: the requester's, and the import mappings of
        # the admin's discovery requests ($SRV.PING/INFO/STATS).
        publish=(_inbox("requester"), IMPORT_REPLIES),
        subscribe=("math.numbers.>", "$SRV.>"),
        description="the add/subtract/multiply/divide services: answer requests, be discovered",
    ),
    Identity(
        name="requester",
        account=SERVICES_ACCOUNT,
        publish=(MATH_SUBJECTS, *_imports_of(SERVICES_ACCOUNT)),
        subscribe=(_inbox("requester"),),
        description="sends math requests, publishes answers into JetStream",
    ),
    Identity(
        name="recorder",
        account=RECORDER_ACCOUNT,
        publish=_imports_of(RECORDER_ACCOUNT),
        subscribe=(_inbox("recorder"),),
        description="pulls answers from its durable consumer and acknowledges them",
    ),
)


def identity(name: IdentityName) -> Identity:
    return next(i for i in IDENTITIES if i.name == name)


def permissions_block(who: Identity) -> dict[str, Any] | None:
    """The `permissions` of a NATS user; None means everything in its account."""
    if who.publish == (">",) and who.subscribe == (">",):
        return None
    return {
        "publish": {"allow": list(who.publish)} if who.publish else {"deny": [">"]},
        "subscribe": {"allow": list(who.subscribe)} if who.subscribe else {"deny": [">"]},
    }


def accounts_block(identities: tuple[Identity, ...] = IDENTITIES) -> dict[str, Any]:
    """The `accounts` section: APP (JetStream on), SERVICES and RECORDER (no JetStream, each
    importing what it calls in APP), SYS; the service exports and imports between them; each
    user keyed by certificate DN."""
    accounts: dict[str, Any] = {
        APP_ACCOUNT: {"jetstream": "enabled", "users": []},
        SERVICES_ACCOUNT: {"users": []},
        RECORDER_ACCOUNT: {"users": []},
        SYSTEM_ACCOUNT: {"users": []},
    }
    for export in SERVICE_EXPORTS:
        entry: dict[str, Any] = {"service": export.subject, "accounts": [export.importer]}
        if export.response_type != "singleton":
            entry["response_type"] = export.response_type
        accounts[export.exporter].setdefault("exports", []).append(entry)
        imported: dict[str, Any] = {
            "service": {"account": export.exporter, "subject": export.subject}
        }
        if export.share_caller:
            imported["share"] = True
        accounts[export.importer].setdefault("imports", []).append(imported)
    for who in identities:
        user: dict[str, Any] = {"user": who.subject_dn}
        permissions = permissions_block(who)
        if permissions is not None:
            user["permissions"] = permissions
        accounts[who.account]["users"].append(user)
    return accounts
