"""The strict grammar of what an operator may put into a region's runtime configuration: route
URLs and region names. Python's own notions are too lax for a file nats-server will parse
(`\\d` matches Arabic-Indic digits, a bracketed host need not be an IPv6 address), so every
rule here is spelled out in ASCII and IP literals go through `ipaddress`. nats-server itself
parses what passes (services/config_check.py) before anything is stored. Standard library only:
the control service in the services image uses it."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

SCHEMES = ("nats", "tls")
MAX_HOST = 253  # RFC 1123 / RFC 1035: a whole name, without the trailing dot
MAX_LABEL = 63
# scheme, "://", a bracketed IPv6 literal or a whole name, ":", five digits
MAX_ROUTE_CHARS = len("nats://") + MAX_HOST + len(":65535")

_URL = re.compile(r"(?P<scheme>[a-z]+)://(?P<host>\[[^\]]*\]|[^:/\[\]]*):(?P<port>[^:]*)", re.ASCII)
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_DOTTED = re.compile(r"[0-9.]+", re.ASCII)
# A region is its NATS cluster name: the stack config's clusterName (a DNS label, 1-24).
REGION = re.compile(r"[a-z](?:[a-z0-9-]{0,22}[a-z0-9])?", re.ASCII)


@dataclass(frozen=True)
class Route:
    """A route URL taken apart: the host as written (an IPv6 literal without its brackets,
    a name in lower case, as DNS compares names)."""

    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


class GrammarError(ValueError):
    """What is wrong with a value and what is allowed instead."""


def parse_route(text: str) -> Route:
    """`nats|tls://host:port`, host an RFC 1123 name, an IPv4 address or a bracketed IPv6
    address, port 1-65535 in ASCII digits; raises GrammarError saying what is allowed."""
    if len(text) > MAX_ROUTE_CHARS:
        raise GrammarError(f"{len(text)} characters; a route has at most {MAX_ROUTE_CHARS}")
    if not text.isascii() or not text.isprintable():
        raise GrammarError("only printable ASCII characters are allowed in a route")
    rest = text.partition("://")[2]
    if any(c in rest for c in "/?#@"):
        raise GrammarError(f"{text!r}: a route has no user, path, query or fragment")
    match = _URL.fullmatch(text)
    if match is None:
        raise GrammarError(
            f"{text!r} is not a route URL like tls://east-3.east-headless:6222 "
            "(scheme nats or tls, a host, a port; no user, path or query)"
        )
    scheme, host, port = match.group("scheme", "host", "port")
    if scheme not in SCHEMES:
        raise GrammarError(f"scheme {scheme!r}: nats or tls")
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise GrammarError(f"port {port!r}: 1 to 65535, in digits")
    return Route(scheme, _host(host), int(port))


def _host(host: str) -> str:
    if host.startswith("["):
        inner = host[1:-1]
        try:
            address = ipaddress.IPv6Address(inner)
        except ValueError:
            raise GrammarError(f"host {host!r}: not an IPv6 address") from None
        if address.scope_id is not None:
            raise GrammarError(f"host {host!r}: an IPv6 address without a zone")
        return inner
    if _DOTTED.fullmatch(host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise GrammarError(f"host {host!r}: not an IPv4 address (four numbers 0-255)") from None
    return check_hostname(host)


def check_hostname(host: str) -> str:
    """An RFC 1123 host name (lower-cased): labels of letters, digits and inner hyphens, at
    most 63 characters each and 253 in all, the last not all digits (that would be an
    address)."""
    if not host:
        raise GrammarError("the host is empty")
    if len(host) > MAX_HOST:
        raise GrammarError(f"host of {len(host)} characters: at most {MAX_HOST}")
    labels = host.split(".")
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise GrammarError(
                f"host label {label[: MAX_LABEL + 1]!r}: 1-{MAX_LABEL} letters, digits or inner "
                "hyphens"
            )
    if _DIGITS.fullmatch(labels[-1]):
        raise GrammarError(f"host {host!r}: the last label of a name is not all digits")
    return host.lower()


def check_region(name: str) -> str:
    """A region's NATS cluster name, as the stack config allows it."""
    if not REGION.fullmatch(name):
        raise GrammarError(
            f"{name[:30]!r} is not a region name (a lower-case DNS label of 1-24 characters)"
        )
    return name
