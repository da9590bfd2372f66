"""The runtime routes grammar, and that it agrees with the system that consumes it: every route
the grammar accepts, the pinned nats-server parses, and inputs Python's own notions accept but
the server refuses (non-ASCII digits, malformed IPv6 literals) never pass the grammar; what
slips past both (a port over 65535 parses in nats-server) is refused by the grammar."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.config_model import DNS_LABEL
from infra.route_grammar import (
    MAX_ROUTE_CHARS,
    REGION,
    GrammarError,
    check_region,
    parse_route,
)
from infra.runtime_config import RuntimeState, runtime_files
from services.config_check import ConfigChecker

LONG_LABEL = "a" * 63


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("tls://east-3.east-headless:6222", "tls://east-3.east-headless:6222"),
        ("nats://EAST-3.East-Headless:6222", "nats://east-3.east-headless:6222"),
        ("tls://10.0.0.7:6222", "tls://10.0.0.7:6222"),
        ("tls://[fd00::1]:6222", "tls://[fd00::1]:6222"),
        ("tls://[::ffff:10.0.0.1]:1", "tls://[::ffff:10.0.0.1]:1"),
        (f"tls://{LONG_LABEL}.b:65535", f"tls://{LONG_LABEL}.b:65535"),
        ("tls://3com.example:6222", "tls://3com.example:6222"),  # RFC 1123: a digit first
    ],
)
def test_routes_the_grammar_accepts(text: str, url: str) -> None:
    assert parse_route(text).url == url


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("tls://east-0.east-headless:\u0666\u0662\u0662\u0662", "printable ASCII"),  # Arabic
        ("tls://east-0.east-headless:\uff16\uff12\uff12\uff12", "printable ASCII"),  # fullwidth
        ("tls://ea\u0455t-0.east-headless:6222", "printable ASCII"),  # Cyrillic s
        ("tls://[:::::::]:6222", "not an IPv6 address"),
        ("tls://[fe80::1%eth0]:6222", "without a zone"),
        ("tls://[10.0.0.1]:6222", "not an IPv6 address"),
        ("tls://10.0.0.256:6222", "not an IPv4 address"),
        ("tls://010.0.0.1:6222", "not an IPv4 address"),
        ("tls://1.2.3:6222", "not an IPv4 address"),
        ("tls://fd00::1:6222", "not a route URL"),
        ("tls://" + "a" * 5000 + ":6222", "at most"),
        (f"tls://{LONG_LABEL}a.b:6222", "1-63 letters"),
        ("tls://" + ".".join([LONG_LABEL] * 4) + ":6222", "at most 253"),
        ("tls://-east.x:6222", "inner hyphens"),
        ("tls://east-.x:6222", "inner hyphens"),
        ("tls://east..x:6222", "inner hyphens"),
        ("tls://east.x.:6222", "inner hyphens"),
        ("tls://under_score:6222", "inner hyphens"),
        ("tls://example.123:6222", "not all digits"),
        ("tls://:6222", "host is empty"),
        ("tls://a:0", "1 to 65535"),
        ("tls://a:65536", "1 to 65535"),
        ("tls://a:099999", "1 to 65535"),
        ("tls://a:+622", "1 to 65535"),
        ("tls://a:", "1 to 65535"),
        ("tls://a", "not a route URL"),
        ("http://a:6222", "scheme 'http'"),
        ("TLS://a:6222", "not a route URL"),
        ("tls://a:6222/x", "no user, path"),
        ("tls://u@a:6222", "no user, path"),
        ("tls://a:6222?x", "no user, path"),
        ('tls://a"b:6222', "inner hyphens"),
        ("tls://a\\b:6222", "inner hyphens"),
        ("tls://a b:6222", "inner hyphens"),
        ("tls://a:6222\n", "printable ASCII"),
    ],
)
def test_routes_the_grammar_refuses_say_what_is_allowed(text: str, says: str) -> None:
    with pytest.raises(GrammarError, match=re.escape(says)):
        parse_route(text)


def test_a_route_is_at_most_a_whole_name_and_a_port_long() -> None:
    host = ".".join([LONG_LABEL] * 3 + ["a" * 61])  # 253 characters
    assert len(parse_route(f"nats://{host}:65535").url) == MAX_ROUTE_CHARS


def test_a_region_name_is_the_stack_configs_cluster_name() -> None:
    assert REGION.pattern == DNS_LABEL.pattern.removeprefix("^").removesuffix("$").replace(
        "([", "(?:["
    )
    assert check_region("east") == "east"
    for bad in ("East", "east_1", "1east", "e" * 25, "\u0435ast", ""):
        with pytest.raises(GrammarError, match="region name"):
            check_region(bad)


def _routes_file(routes: list[str]) -> dict[str, str]:
    return RuntimeState(tuple(routes)).servers_see()


def test_the_server_refuses_what_python_would_take_and_the_grammar_refuses_it_first() -> None:
    """What `\\d` and a bracket check would have let through, put before nats-server 2.14.2:
    its parser refuses each, which would fail every later reload of the region."""
    checker = ConfigChecker("east")
    lax = [
        "tls://east-0.east-headless:\u0666\u0662\u0662\u0662",
        "tls://[:::::::]:6222",
    ]
    for route in lax:
        files = {"routes.conf": "routes: [" + json.dumps(route, ensure_ascii=False) + "]\n"}
        refusal = asyncio.run(checker.refusal(files))
        assert refusal is not None
        assert "error parsing route url" in refusal, refusal
        with pytest.raises(GrammarError):
            parse_route(route)
    # ...and what the server takes that the grammar refuses: no port above 65535 reaches it.
    assert asyncio.run(checker.refusal(_routes_file(["tls://a:99999"]))) is None
    with pytest.raises(GrammarError, match="1 to 65535"):
        parse_route("tls://a:99999")


def test_the_server_refuses_a_malformed_pin() -> None:
    checker = ConfigChecker("east")
    bad = {"gateways.conf": 'pinned_certs: ["zz"]\n', "routes.conf": ""}
    refusal = asyncio.run(checker.refusal(bad))
    assert refusal is not None
    assert "pinned_certs" in refusal
    good = runtime_files(RuntimeState(None, ("west",), ("ab" * 32,)))
    assert (
        asyncio.run(checker.refusal({k: v for k, v in good.items() if k != "state.json"})) is None
    )


_label = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z")
_name = (
    st.lists(_label, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda h: not h.split(".")[-1].isdigit())
)
_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
_route = st.builds(
    lambda scheme, host, port: f"{scheme}://{host}:{port}",
    st.sampled_from(["nats", "tls"]),
    st.one_of(_name, _ipv4, _ipv6),
    st.integers(1, 65535),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_route, min_size=1, max_size=32, unique=True))
def test_every_route_list_the_grammar_accepts_the_server_parses(routes: list[str]) -> None:
    urls = [parse_route(r).url for r in routes]
    if len(set(urls)) != len(urls):  # the same host in other letters
        return
    assert asyncio.run(ConfigChecker("east").refusal(_routes_file(urls))) is None
