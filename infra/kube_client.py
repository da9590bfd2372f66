"""Just enough of a Kubernetes API client to read from the stack's own kubeconfig, as
infra/kubeconfig.py makes it: EKS (a token from the `aws eks get-token` exec plugin), AKS (a
client certificate, or a token), over HTTPS checked against the kubeconfig's CA.

Standard library only, so a Pulumi dynamic provider can use it without the Kubernetes SDK.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.volumes import UnreachableError

EXEC_TIMEOUT_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class KubeAccess:
    """Where the API server is and how to prove who we are to it."""

    server: str
    ca_pem: bytes
    token: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    # The exec credential plugin (EKS): run for a token on each use.
    exec_command: tuple[str, ...] = ()
    exec_env: tuple[tuple[str, str], ...] = ()


def _b64(value: str | None) -> bytes | None:
    return base64.b64decode(value) if value else None


def access_from_kubeconfig(text: str) -> KubeAccess:
    """The current context's cluster and user. Accepts the JSON the program writes for EKS and
    the YAML AKS returns."""
    config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise ValueError("the kubeconfig is not a mapping")
    current = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    if current not in contexts:
        raise ValueError(f"the kubeconfig has no current context {current!r}")
    context = contexts[current]
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in config.get("users") or []}
    cluster = clusters[context["cluster"]]
    user = users[context["user"]]
    ca = _b64(cluster.get("certificate-authority-data"))
    if ca is None:
        raise ValueError("the kubeconfig's cluster has no certificate-authority-data")
    plugin = user.get("exec")
    return KubeAccess(
        server=str(cluster["server"]).rstrip("/"),
        ca_pem=ca,
        token=user.get("token"),
        cert_pem=_b64(user.get("client-certificate-data")),
        key_pem=_b64(user.get("client-key-data")),
        exec_command=(plugin["command"], *(plugin.get("args") or [])) if plugin else (),
        exec_env=tuple((e["name"], e["value"]) for e in (plugin or {}).get("env") or []),
    )


class CredentialError(RuntimeError):
    """The kubeconfig's credential plugin failed: a fault here (no aws CLI, no AWS identity),
    not a sign that the cluster is gone (`aws eks get-token` signs locally)."""


def exec_token(access: KubeAccess) -> str:
    """Runs the credential plugin and takes the token from its ExecCredential."""
    env = {**os.environ, **dict(access.exec_env)}
    try:
        done = subprocess.run(
            list(access.exec_command),
            env=env,
            capture_output=True,
            text=True,
            timeout=EXEC_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CredentialError(f"credential plugin {access.exec_command[0]!r}: {error}") from error
    if done.returncode != 0:
        raise CredentialError(
            f"credential plugin {access.exec_command[0]!r} exited {done.returncode}: "
            f"{done.stderr.strip()[-500:]}"
        )
    token = (json.loads(done.stdout).get("status") or {}).get("token")
    if not token:
        raise CredentialError(f"credential plugin {access.exec_command[0]!r} returned no token")
    return str(token)


def get_json(access: KubeAccess, path: str) -> dict[str, Any]:
    """GET `path` from the API server. UnreachableError when it cannot be asked; an HTTP error
    (refused credentials, missing rights) is raised as it is."""
    headers = {"Accept": "application/json"}
    token = exec_token(access) if access.exec_command else access.token
    if token:
        headers["Authorization"] = f"Bearer {token}"
    context = ssl.create_default_context(cadata=access.ca_pem.decode())
    with tempfile.TemporaryDirectory() as scratch:
        if access.cert_pem and access.key_pem:
            cert, key = Path(scratch) / "tls.crt", Path(scratch) / "tls.key"
            cert.write_bytes(access.cert_pem)
            key.touch(mode=0o600)
            key.write_bytes(access.key_pem)
            context.load_cert_chain(cert, key)
        request = urllib.request.Request(access.server + path, headers=headers)
        try:
            with urllib.request.urlopen(
                request, context=context, timeout=REQUEST_TIMEOUT_SECONDS
            ) as response:
                body: dict[str, Any] = json.loads(response.read())
                return body
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError) as error:
            raise UnreachableError(f"{access.server}: {error}") from error


def list_persistent_volumes(access: KubeAccess) -> dict[str, Any]:
    return get_json(access, "/api/v1/persistentvolumes")
