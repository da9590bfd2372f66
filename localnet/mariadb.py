"""A private MariaDB server (Debian's mariadb-server) in a directory of its own, on loopback,
that tests and the local supercluster can stop and start again like an outage."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from localnet.ports import LOOPBACK, free_port


def available() -> bool:
    return shutil.which("mariadbd") is not None or Path("/usr/sbin/mariadbd").exists()


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found is None:
        raise RuntimeError(f"{name} not found: install Debian's mariadb-server")
    return found


@dataclass
class MariaDb:
    workdir: Path
    database: str = "answers"
    user: str = "recorder"
    password: str = "local-test-password"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def socket(self) -> Path:
        return self.workdir / "mariadb.sock"

    def _as_root(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def install(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                _binary("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *self._as_root(),
            ],
            check=True,
            capture_output=True,
        )
        self.start()
        statements = (
            f"CREATE DATABASE IF NOT EXISTS {self.database};"
            f"CREATE USER IF NOT EXISTS '{self.user}'@'127.0.0.1' IDENTIFIED BY '{self.password}';"
            f"GRANT ALL ON {self.database}.* TO '{self.user}'@'127.0.0.1';"
        )
        self.sql(statements)

    def start(self) -> None:
        with (self.workdir / "mariadb.log").open("ab") as log:  # the child keeps its own copy
            self.process = self._spawn(log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited; see {self.workdir / 'mariadb.log'}")
            probe = subprocess.run(
                [_binary("mariadb-admin"), f"--socket={self.socket}", "-uroot", "ping"],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError("mariadbd did not answer within 30 s")

    def _spawn(self, log: BinaryIO) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                _binary("mariadbd"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.socket}",
                f"--port={self.port}",
                f"--bind-address={LOOPBACK}",
                f"--pid-file={self.workdir / 'mariadb.pid'}",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=64M",
                *self._as_root(),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None

    def sql(self, statements: str) -> str:
        result = subprocess.run(
            [
                _binary("mariadb"),
                f"--socket={self.socket}",
                "-uroot",
                "--batch",
                "--skip-column-names",
                "-e",
                statements,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout

    def environment(self) -> dict[str, str]:
        return {
            "DB_HOST": LOOPBACK,
            "DB_PORT": str(self.port),
            "DB_USER": self.user,
            "DB_PASSWORD": self.password,
            "DB_NAME": self.database,
        }
