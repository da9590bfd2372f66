"""Service configuration from the environment, with errors that name the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from infra.identities import MATH_OPERATIONS
from infra.put_budget import MAX_VERIFY_SECONDS
from infra.put_request import parse_pins
from infra.region_servers import check_namespace, parse_servers
from infra.reload_check import GRACE_SECONDS, SPREAD_SECONDS
from infra.runtime_checks import server_urls


class SettingsError(ValueError):
    """A missing or malformed environment variable; the message names it."""


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, default)
    if value is None or value == "":
        raise SettingsError(f"{name} is required")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _file(env: Mapping[str, str], name: str) -> Path:
    path = Path(_get(env, name))
    if not path.is_file():
        raise SettingsError(f"{name} points to {path}, which is not a readable file")
    return path


@dataclass(frozen=True)
class NatsSettings:
    """Where to connect and the identity's mounted certificate (NATS_CA/CERT/KEY_FILE)."""

    url: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    tls_hostname: str | None
    identity: str
    region: str
    health_file: Path

    @classmethod
    def from_env(cls, identity: str, env: Mapping[str, str] | None = None) -> NatsSettings:
        env = os.environ if env is None else env
        url = _get(env, "NATS_URL")
        if not url.startswith("tls://"):
            raise SettingsError(f"NATS_URL must be a tls:// URL, got {url!r}")
        return cls(
            url=url,
            ca_file=_file(env, "NATS_CA_FILE"),
            cert_file=_file(env, "NATS_CERT_FILE"),
            key_file=_file(env, "NATS_KEY_FILE"),
            tls_hostname=env.get("NATS_TLS_HOSTNAME") or None,
            identity=identity,
            region=_get(env, "REGION"),
            health_file=Path(env.get("HEALTH_FILE", "/tmp/healthy")),
        )


@dataclass(frozen=True)
class MetricsSettings:
    """METRICS_PORT: where the service serves its Prometheus metrics (0, the default: not at
    all; several services share one machine locally, while every pod sets 9090);
    METRICS_ADDRESS: the address it listens on; METRICS_LINGER_SECONDS: how long a program
    that finishes (the requester) keeps serving them afterwards, so a scrape sees its totals."""

    port: int = 0
    address: str = "0.0.0.0"
    linger_seconds: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MetricsSettings:
        env = os.environ if env is None else env
        return cls(
            port=_int(env, "METRICS_PORT", 0, 0, 65535),
            address=env.get("METRICS_ADDRESS") or "0.0.0.0",
            linger_seconds=_int(env, "METRICS_LINGER_SECONDS", 0, 0, 3600),
        )


@dataclass(frozen=True)
class CalculatorSettings:
    operation: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CalculatorSettings:
        env = os.environ if env is None else env
        operation = _get(env, "OPERATION")
        if operation not in MATH_OPERATIONS:
            raise SettingsError(
                f"OPERATION must be one of {', '.join(MATH_OPERATIONS)}, got {operation!r}"
            )
        return cls(operation)


@dataclass(frozen=True)
class RequesterSettings:
    requests: int
    concurrency: int
    timeout_seconds: int
    # How long a request or a publish keeps being retried, in time rather than attempts, so a
    # JetStream leader election or a cut between regions of up to this long loses nothing.
    # Keep it under the stream's duplicate window (2 min by default), which makes retries safe.
    retry_seconds: int
    seed: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RequesterSettings:
        env = os.environ if env is None else env
        return cls(
            requests=_int(env, "REQUESTS", 1000, 1, 10_000_000),
            concurrency=_int(env, "CONCURRENCY", 64, 1, 10_000),
            timeout_seconds=_int(env, "REQUEST_TIMEOUT_SECONDS", 2, 1, 60),
            retry_seconds=_int(env, "RETRY_SECONDS", 60, 0, 600),
            seed=_int(env, "SEED", 1, 0, 2**31),
        )


@dataclass(frozen=True)
class RecorderSettings:
    """DB_DRIVER=mysql (DB_HOST, DB_PORT, DB_USER, DB_PASSWORD, DB_NAME) or sqlite (DB_PATH)."""

    driver: str
    batch_size: int
    db_host: str = ""
    db_port: int = 3306
    db_user: str = ""
    db_password: str = ""
    db_name: str = "answers"
    db_path: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RecorderSettings:
        env = os.environ if env is None else env
        driver = env.get("DB_DRIVER", "mysql")
        batch_size = _int(env, "BATCH_SIZE", 100, 1, 10_000)
        if driver == "sqlite":
            return cls(
                driver=driver,
                db_path=_get(env, "DB_PATH"),
                batch_size=batch_size,
            )
        if driver != "mysql":
            raise SettingsError(f"DB_DRIVER must be mysql or sqlite, got {driver!r}")
        return cls(
            driver=driver,
            db_host=_get(env, "DB_HOST"),
            db_port=_int(env, "DB_PORT", 3306, 1, 65535),
            db_user=_get(env, "DB_USER"),
            db_password=_get(env, "DB_PASSWORD"),
            db_name=_get(env, "DB_NAME", "answers"),
            batch_size=batch_size,
        )


@dataclass(frozen=True)
class ControlSettings:
    """CLUSTER: the region's NATS cluster name; RUNTIME_STORE: file:<dir> or
    configmap:<namespace>/<name>; RELOAD: `request` (the service asks each server to reload)
    or `reloader` (the chart's reloader does when the ConfigMap reaches the pods);
    GATEWAY_PINS: the known regions' server keys, which a cut pins (none: no cuts);
    SERVERS: the region's servers as the release has them, name -> cluster port (a put
    expects every one; infra/region_servers.py); NAMESPACE: the release's namespace (route
    names carry it); VERIFY_SECONDS: how long a change reloaded by request may take to show
    before it is rolled back (at most MAX_VERIFY_SECONDS, infra/put_budget.py, so a put and
    its rollback fit the put's budget); PENDING_SECONDS: the same for a change the ConfigMap
    carries; SERVER_URLS:
    how to reach each server itself (a `{pod}` template or a JSON object; services/
    server_links.py); COLLECT_SECONDS: how often it gathers the region's health for its
    metrics (infra/region_health.py); WATCH_CONFIG: the servers' nats.conf as this service
    sees it (`{pod}` for a server's own; "" watches nothing), whose files it compares with what
    each server loaded; RELOAD_GRACE_SECONDS and RELOAD_SPREAD_SECONDS: how long a server may
    take to load changed files, and how much earlier its pod may have them than this service's
    (infra/reload_check.py)."""

    cluster: str
    store: str
    reload: str
    gateway_pins: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    servers: Mapping[str, int] = field(default_factory=dict)
    namespace: str = "nats"
    verify_seconds: int = 10
    pending_seconds: int = 300
    server_urls: str = ""
    collect_seconds: int = 15
    watch_config: str = ""
    reload_grace_seconds: int = GRACE_SECONDS
    reload_spread_seconds: int = SPREAD_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ControlSettings:
        env = os.environ if env is None else env
        reload = env.get("RELOAD", "reloader")
        if reload not in ("request", "reloader"):
            raise SettingsError(f"RELOAD must be request or reloader, got {reload!r}")
        store = _get(env, "RUNTIME_STORE")
        if not store.startswith(("file:", "configmap:")):
            raise SettingsError(
                f"RUNTIME_STORE must be file:<dir> or configmap:<namespace>/<name>, got {store!r}"
            )
        cluster = _get(env, "CLUSTER")
        try:
            pins = parse_pins(env.get("GATEWAY_PINS", ""))
            server_urls(env.get("SERVER_URLS", ""))
            servers = parse_servers(_get(env, "SERVERS"), cluster)
            namespace = check_namespace(_get(env, "NAMESPACE"))
        except ValueError as error:
            raise SettingsError(str(error)) from None
        return cls(
            cluster,
            store,
            reload,
            pins,
            servers=servers,
            namespace=namespace,
            verify_seconds=_int(env, "VERIFY_SECONDS", 10, 1, MAX_VERIFY_SECONDS),
            pending_seconds=_int(env, "PENDING_SECONDS", 300, 10, 3600),
            server_urls=env.get("SERVER_URLS", ""),
            collect_seconds=_int(env, "COLLECT_SECONDS", 15, 1, 300),
            watch_config=env.get("WATCH_CONFIG", ""),
            reload_grace_seconds=_int(env, "RELOAD_GRACE_SECONDS", GRACE_SECONDS, 1, 3600),
            reload_spread_seconds=_int(env, "RELOAD_SPREAD_SECONDS", SPREAD_SECONDS, 0, 3600),
        )
