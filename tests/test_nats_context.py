"""The context command against a real region: the files it writes connect with TLS verified."""

from __future__ import annotations

import asyncio
import json
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from infra.nats_values import client_url, nats_context
from localnet.region import LocalRegion
from localnet.supercluster import RegionPlan, plan_supercluster
from tools.nats_context import main, write_context

ENDPOINT = "127.0.0.4"  # an IP endpoint, like Azure's load balancer


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegion]:
    (west,) = plan_supercluster(
        tmp_path_factory.mktemp("ctx"),
        [RegionPlan("west", ENDPOINT, ENDPOINT, "azure-westus-", replicas=1, standalone=True)],
    )
    west.write()
    west.start()
    yield west
    west.stop()


def stack_output(region: LocalRegion) -> dict[str, str]:
    """The `natsContext` output exactly as the program builds it."""
    cert, key, ca = region.client_files("admin")
    url = client_url(ENDPOINT, region.lb_client_port)
    return nats_context("west", url, ca.read_text(), cert.read_text(), key.read_text())


@pytest.mark.live
def test_written_context_connects_with_verified_tls(region: LocalRegion, tmp_path: Path) -> None:
    path = write_context("west", stack_output(region), tmp_path)
    assert path == tmp_path / "nats" / "context" / "west.json"
    context = json.loads(path.read_text())
    for file in ("ca", "cert", "key"):
        assert stat.S_IMODE(Path(context[file]).stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(context["key"]).parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    async def connect() -> str:
        tls = ssl.create_default_context(cafile=context["ca"])
        tls.load_cert_chain(context["cert"], context["key"])
        client = await nats.connect(servers=[context["url"]], tls=tls, allow_reconnect=False)
        name = client._server_info["server_name"]
        await client.close()
        return str(name)

    assert asyncio.run(connect()) == "azure-westus-west-0"


@pytest.mark.live
def test_the_command_writes_every_stack_given(
    region: LocalRegion, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    given = tmp_path / "outputs.json"
    given.write_text(
        json.dumps(
            {"west": stack_output(region), "east": {**stack_output(region), "url": "tls://e:4222"}}
        )
    )
    assert main(["--from-json", str(given), "--config-dir", str(tmp_path / "cfg")]) == 0
    written = sorted(p.name for p in (tmp_path / "cfg" / "nats" / "context").iterdir())
    assert written == ["east.json", "west.json"]
    assert "nats --context west" in capsys.readouterr().out


def test_an_incomplete_output_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks cert_pem, key_pem"):
        write_context("west", {"url": "tls://x:4222", "ca_pem": "x"}, tmp_path)
