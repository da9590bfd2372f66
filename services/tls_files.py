"""A TLS context that follows its files: when the mounted certificate, key or CA bundle changes
(a re-issued certificate, a CA rotation's stages), the same context takes them in, so every new
connection, a reconnect included, presents the new certificate and trusts the new bundle, and
no open connection is dropped for it. Kubernetes updates a mounted Secret by swapping a symlink,
which changes the files' modification times."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

CHECK_SECONDS = 5.0


class TlsFiles:
    def __init__(self, cert: Path, key: Path, ca: Path) -> None:
        self.cert, self.key, self.ca = cert, key, ca
        self.context = ssl.create_default_context(cafile=str(ca))
        self.context.load_cert_chain(str(cert), str(key))
        self._seen = self._stamp()
        self.reloads = 0

    def _stamp(self) -> tuple[float, ...]:
        return tuple(p.stat().st_mtime for p in (self.cert, self.key, self.ca))

    def refresh(self) -> bool:
        """Take in changed files; True when it did. A CA bundle only adds trust here (an SSL
        context cannot forget a CA): retiring an old CA is the servers' side of a rotation."""
        try:
            stamp = self._stamp()
        except FileNotFoundError:
            return False  # mid-swap: try again on the next check
        if stamp == self._seen:
            return False
        self.context.load_verify_locations(cafile=str(self.ca))
        self.context.load_cert_chain(str(self.cert), str(self.key))
        self._seen = stamp
        self.reloads += 1
        return True

    async def follow(self, logger: logging.Logger, every: float = CHECK_SECONDS) -> None:
        """Runs for the life of the service."""
        while True:
            await asyncio.sleep(every)
            try:
                if self.refresh():
                    logger.info(
                        "certificate files reloaded", extra={"fields": {"cert": str(self.cert)}}
                    )
            except (OSError, ssl.SSLError) as error:  # half-written files: the next check retries
                logger.warning(
                    "certificate files not reloaded", extra={"fields": {"error": str(error)}}
                )
