"""Where the control service keeps a region's runtime configuration: the files the servers
include (locally, the region's `nats-runtime` directory) or the ConfigMap they are mounted from
(in the clouds), whose data the program creates once and then leaves to this service.

Every write is conditional on the version its state was computed from (compare and swap), so
two control services writing at once (a rollout overlaps two pods) never overwrite each other
unseen: the later one gets ConflictError, reads again, checks its change again and re-applies it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from infra.runtime_config import STATE_FILE, RuntimeState, runtime_files

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
API_SERVER = "https://kubernetes.default.svc"
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class Snapshot:
    """The state as read, and the version a write must name to replace it."""

    state: RuntimeState
    version: str


class ConflictError(RuntimeError):
    """The store changed since the version a write named."""


class RuntimeStore(Protocol):
    def read(self) -> Snapshot: ...

    def write(self, state: RuntimeState, version: str) -> str:
        """Replace the state read at `version`; the new version. ConflictError if it changed."""
        ...


class FileStore:
    """A directory with the state and the files each server includes. The version is the
    digest of the state file; a lock on the directory makes check-and-replace one step."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.directory / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _current(self) -> tuple[str, str]:
        path = self.directory / STATE_FILE
        text = path.read_text() if path.exists() else ""
        return text, hashlib.sha256(text.encode()).hexdigest()

    def read(self) -> Snapshot:
        with self._locked():
            text, version = self._current()
        return Snapshot(RuntimeState.from_json(text), version)

    def write(self, state: RuntimeState, version: str) -> str:
        with self._locked():
            if self._current()[1] != version:
                raise ConflictError(f"{self.directory}: changed since it was read")
            files = runtime_files(state)
            # The state last: whoever reads it new finds the files it describes new too.
            for name in sorted(files, key=lambda n: n == STATE_FILE):
                text = files[name]
                fresh = self.directory / f".{name}.new"
                fresh.write_text(text)
                fresh.replace(self.directory / name)  # whole or not at all, like a ConfigMap
            return self._current()[1]


class ConfigMapStore:
    """The region's runtime ConfigMap through the Kubernetes API, as the pod's service account
    (its Role allows get and update on this one ConfigMap). An update carries the
    resourceVersion of the read its state came from; the API server refuses it with 409 when
    the ConfigMap changed since (optimistic concurrency)."""

    def __init__(
        self,
        namespace: str,
        name: str,
        account: Path = SERVICE_ACCOUNT,
        api_server: str = API_SERVER,
    ) -> None:
        self.url = f"{api_server}/api/v1/namespaces/{namespace}/configmaps/{name}"
        self.account = account

    def _call(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        token = (self.account / "token").read_text().strip()
        context = ssl.create_default_context(cafile=str(self.account / "ca.crt"))
        request = urllib.request.Request(
            self.url,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            found: dict[str, Any] = json.loads(response.read())
            return found

    def read(self) -> Snapshot:
        current = self._call("GET")
        data = current.get("data") or {}
        version = str((current.get("metadata") or {}).get("resourceVersion") or "")
        if not version:
            raise RuntimeError(f"{self.url}: the API server gave no resourceVersion")
        return Snapshot(RuntimeState.from_json(data.get(STATE_FILE, "")), version)

    def write(self, state: RuntimeState, version: str) -> str:
        current = self._call("GET")
        metadata = current.get("metadata") or {}
        # The version the state was computed from, not the one just read: an update made in
        # between must fail this write, not be overwritten by it.
        body = {
            **current,
            "metadata": {**metadata, "resourceVersion": version},
            "data": {**(current.get("data") or {}), **runtime_files(state)},
        }
        try:
            updated = self._call("PUT", body)
        except urllib.error.HTTPError as error:
            if error.code == 409:  # Conflict: the ConfigMap is no longer at `version`
                raise ConflictError(f"{self.url}: changed since version {version}") from None
            raise
        return str((updated.get("metadata") or {}).get("resourceVersion") or "")


def store_from(spec: str) -> RuntimeStore:
    """`file:<directory>` or `configmap:<namespace>/<name>` (RUNTIME_STORE)."""
    kind, _, where = spec.partition(":")
    if kind == "file" and where:
        return FileStore(Path(where))
    namespace, _, name = where.partition("/")
    if kind == "configmap" and namespace and name:
        return ConfigMapStore(namespace, name)
    raise ValueError(
        f"RUNTIME_STORE must be file:<dir> or configmap:<namespace>/<name>, got {spec!r}"
    )
