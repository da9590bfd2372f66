"""A Kubernetes API server for one ConfigMap, over HTTPS with a bearer token, that honours
`metadata.resourceVersion` on update as Kubernetes does (there is no API server here; this is
the stand-in the control service's ConfigMap store is tested against):

- every successful update gives the object a new resourceVersion;
- an update naming a resourceVersion other than the current one is refused with 409 Conflict
  and a Status (kubernetes v1.30.0 staging/src/k8s.io/apiserver/pkg/registry/generic/registry/
  store.go Update, lines 623-631: "the object has been modified; please apply your changes to
  the latest version and try again");
- an update with no resourceVersion is applied unconditionally, since ConfigMaps allow it
  (pkg/registry/core/configmap/strategy.go: AllowUnconditionalUpdate returns true);
- a request without the token (or a client certificate of the test CA) gets 401.

It also lists PersistentVolumes (`volumes`, as `GET /api/v1/persistentvolumes` returns them),
which the wait for volumes on destroy reads (components/volumes.py).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from infra.pki import SubjectAltNames, ca_spec, server_spec
from localnet.pki import issue, issue_ca

TOKEN = "test-token"
VOLUMES_PATH = "/api/v1/persistentvolumes"


@dataclass
class ConfigMapServer:
    namespace: str
    name: str
    data: dict[str, str]
    version: int = 1
    conflicts: int = 0
    updates: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_lists: int = 0
    # The Authorization header or client certificate subject of each request.
    callers: list[str] = field(default_factory=list)

    def volume_list(self) -> dict[str, Any]:
        with self.lock:
            self.volume_lists += 1
            return {
                "apiVersion": "v1",
                "kind": "PersistentVolumeList",
                "metadata": {"resourceVersion": str(self.version)},
                "items": [dict(v) for v in self.volumes],
            }

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps/{self.name}"

    def object(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": str(self.version),
                "labels": {"app.kubernetes.io/managed-by": "pulumi"},
            },
            "data": dict(self.data),
        }

    def update(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            named = (body.get("metadata") or {}).get("resourceVersion")
            if named and named != str(self.version):
                self.conflicts += 1
                return 409, {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "Conflict",
                    "code": 409,
                    "message": f'Operation cannot be fulfilled on configmaps "{self.name}": the '
                    "object has been modified; please apply your changes to the latest version "
                    "and try again",
                }
            self.data = dict(body.get("data") or {})
            self.version += 1
            self.updates += 1
            return 200, self.object()


def _handler(server: ConfigMapServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _allowed(self) -> bool:
            peer = self.connection.getpeercert()
            caller = self.headers.get("Authorization") or str(peer.get("subject") if peer else "")
            server.callers.append(caller)
            if self.headers.get("Authorization") != f"Bearer {TOKEN}" and not peer:
                self._send(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
                return False
            if self.path not in {server.path, VOLUMES_PATH}:
                self._send(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                return False
            return True

        def do_GET(self) -> None:
            if not self._allowed():
                return
            if self.path == VOLUMES_PATH:
                self._send(200, server.volume_list())
            else:
                with server.lock:
                    self._send(200, server.object())

        def do_PUT(self) -> None:
            if not self._allowed():
                return
            if self.path == VOLUMES_PATH:
                self._send(405, {"kind": "Status", "code": 405, "reason": "MethodNotAllowed"})
            else:
                length = int(self.headers.get("Content-Length") or 0)
                self._send(*server.update(json.loads(self.rfile.read(length))))

    return Handler


@contextmanager
def configmap_api(
    account: Path, data: dict[str, str], namespace: str = "nats", name: str = "east-runtime"
) -> Iterator[tuple[str, ConfigMapServer]]:
    """Serves the ConfigMap on loopback; writes the service account's token and ca.crt into
    `account` as Kubernetes mounts them. Yields the API server's URL and its state."""
    ca = issue_ca(ca_spec("kube-test"))
    served = issue(server_spec(SubjectAltNames(("localhost",), ("127.0.0.1",))), ca)
    account.mkdir(parents=True, exist_ok=True)
    (account / "token").write_text(TOKEN)
    (account / "ca.crt").write_bytes(ca.cert_pem)
    (account / "tls.crt").write_bytes(served.cert_pem)
    (account / "tls.key").write_bytes(served.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(account / "tls.crt", account / "tls.key")
    # Client certificates of the test CA authenticate too (AKS kubeconfigs carry one).
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=ca.cert_pem.decode())
    state = ConfigMapServer(namespace, name, data)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
