"""Who may connect, as what user, in which account, with which permissions.

Every client authenticates with its own certificate (mTLS, `verify_and_map`): the server maps
the certificate's subject to a user below. One identity per workload, each allowed only the
subjects it needs; `tests/test_local_region.py` proves the matrix against a real server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

APP_ACCOUNT = "APP"
SYSTEM_ACCOUNT = "SYS"
CERT_ORGANIZATION = "nats-supercluster"

# Request subjects of the calculators (seed 001's services): math.numbers.<op>.
MATH_SUBJECTS = "math.numbers.*"
MATH_OPERATIONS = ("add", "subtract", "multiply", "divide")
# What the requester publishes answers to, and the stream that keeps them.
ANSWER_SUBJECTS = ("answers.significant", "answers.throwaway")
ANSWERS_STREAM = "answers"
RECORDER_CONSUMER = "recorder"

IdentityName = Literal["admin", "system", "calculator", "requester", "recorder"]


@dataclass(frozen=True)
class Identity:
    name: IdentityName
    account: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    # Lets a service answer requests on their reply subjects without a publish grant.
    allow_responses: bool = False
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


def _consumer_api(verb: str) -> str:
    return f"$JS.API.CONSUMER.{verb}.{ANSWERS_STREAM}.{RECORDER_CONSUMER}"


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
        publish=(">",),
        subscribe=(">",),
        description="server monitoring through the system account ($SYS)",
    ),
    Identity(
        name="calculator",
        account=APP_ACCOUNT,
        subscribe=("math.numbers.>", "$SRV.>"),
        allow_responses=True,
        description="the add/subtract/multiply/divide services: answer requests, be discovered",
    ),
    Identity(
        name="requester",
        account=APP_ACCOUNT,
        publish=(MATH_SUBJECTS, *ANSWER_SUBJECTS),
        subscribe=("_INBOX.requester.>",),
        description="sends math requests, publishes answers into JetStream",
    ),
    Identity(
        name="recorder",
        account=APP_ACCOUNT,
        publish=(
            _consumer_api("MSG.NEXT"),
            _consumer_api("INFO"),
            f"$JS.ACK.{ANSWERS_STREAM}.{RECORDER_CONSUMER}.>",
        ),
        subscribe=("_INBOX.recorder.>",),
        description="pulls answers from its durable consumer and acknowledges them",
    ),
)


def identity(name: IdentityName) -> Identity:
    return next(i for i in IDENTITIES if i.name == name)


def permissions_block(who: Identity) -> dict[str, Any] | None:
    """The `permissions` of a NATS user; None means everything in its account."""
    if who.publish == (">",) and who.subscribe == (">",):
        return None
    block: dict[str, Any] = {
        "publish": {"allow": list(who.publish)} if who.publish else {"deny": [">"]},
        "subscribe": {"allow": list(who.subscribe)} if who.subscribe else {"deny": [">"]},
    }
    if who.allow_responses:
        block["allow_responses"] = True
    return block


def accounts_block(identities: tuple[Identity, ...] = IDENTITIES) -> dict[str, Any]:
    """The `accounts` section: APP (JetStream on) and SYS, each user keyed by certificate DN."""
    accounts: dict[str, Any] = {
        APP_ACCOUNT: {"jetstream": "enabled", "users": []},
        SYSTEM_ACCOUNT: {"users": []},
    }
    for who in identities:
        user: dict[str, Any] = {"user": who.subject_dn}
        permissions = permissions_block(who)
        if permissions is not None:
            user["permissions"] = permissions
        accounts[who.account]["users"].append(user)
    return accounts
