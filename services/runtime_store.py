"""Where the control service keeps a region's runtime configuration: the files the servers
include (locally, the region's `nats-runtime` directory) or the ConfigMap they are mounted from
(in the clouds), whose data the program creates once and then leaves to this service."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol

from infra.runtime_config import STATE_FILE, RuntimeState, runtime_files

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
API_SERVER = "https://kubernetes.default.svc"


class RuntimeStore(Protocol):
    def read(self) -> RuntimeState: ...

    def write(self, state: RuntimeState) -> None: ...


class FileStore:
    """A directory with the state and the files each server includes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def read(self) -> RuntimeState:
        path = self.directory / STATE_FILE
        return RuntimeState.from_json(path.read_text()) if path.exists() else RuntimeState()

    def write(self, state: RuntimeState) -> None:
        for name, text in runtime_files(state).items():
            fresh = self.directory / f".{name}.new"
            fresh.write_text(text)
            fresh.replace(self.directory / name)  # whole or not at all, like a ConfigMap update


class ConfigMapStore:
    """The region's runtime ConfigMap through the Kubernetes API, as the pod's service account
    (its Role allows get and update on this one ConfigMap). An update carries the version it
    read, so two writers never overwrite each other unseen (409: read again)."""

    def __init__(self, namespace: str, name: str, account: Path = SERVICE_ACCOUNT) -> None:
        self.url = f"{API_SERVER}/api/v1/namespaces/{namespace}/configmaps/{name}"
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

    def read(self) -> RuntimeState:
        data = self._call("GET").get("data") or {}
        return RuntimeState.from_json(data.get(STATE_FILE, ""))

    def write(self, state: RuntimeState) -> None:
        for _ in range(3):
            current = self._call("GET")
            current["data"] = {**(current.get("data") or {}), **runtime_files(state)}
            try:
                self._call("PUT", current)
                return
            except urllib.error.HTTPError as error:
                if error.code != 409:  # someone else's update came first: read again
                    raise
        raise RuntimeError(f"{self.url}: updated by others three times in a row")


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
