"""Who called the control service and where it may answer (infra/callers.py): the caller as
the server names the importer, and answers only into the callers' inboxes."""

from __future__ import annotations

import json

import pytest

from infra.callers import caller, reply_allowed


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
