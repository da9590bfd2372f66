"""Where the local programs listen (localnet/ports.py): never in the kernel's ephemeral range,
where an outgoing connection or another process's bind to port 0 could take a port between its
choice and the server's bind; and, per test worker, in a slice no other worker picks from."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

import pytest

from localnet.__main__ import main as demo_main
from localnet.ports import LOOPBACK, PORTS_ENV, free_port, port_range
from tests.distribution import worker_ports


def test_ports_are_chosen_below_the_kernels_ephemeral_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PORTS_ENV, raising=False)
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    low, high = port_range()
    assert high < ephemeral_low
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == 200  # never the same one twice in a process
    assert all(low <= p <= high for p in ports)


def test_the_configured_range_is_used_whole_and_then_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        base = 29_000 + taken.getsockname()[1] % 1000  # a range no other test uses
    monkeypatch.setenv(PORTS_ENV, f"{base}-{base + 9}")
    with socket.socket() as occupied:
        occupied.bind((LOOPBACK, base))  # somebody listens here: never handed out
        ports = {free_port() for _ in range(9)}
        assert ports == set(range(base + 1, base + 10))
        with pytest.raises(RuntimeError, match=f"no free port found in {base}-{base + 9}"):
            free_port()


@pytest.mark.parametrize("value", ["10000", "9-20000", "30000-20000", "a-b", "20000-70000"])
def test_a_malformed_range_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(PORTS_ENV, value)
    with pytest.raises(ValueError, match=f"{PORTS_ENV}='{value}': expected low-high"):
        port_range()


def test_each_worker_has_a_slice_of_its_own() -> None:
    whole = (10_000, 32_767)
    slices = [tuple(map(int, worker_ports(n, 3, whole).split("-"))) for n in range(3)]
    assert slices[0][0] == whole[0]
    assert slices[-1][1] <= whole[1]
    for (_, high), (low, _) in itertools.pairwise(slices):
        assert high < low  # disjoint and in order
    assert all(high - low > 7_000 for low, high in slices)


def test_the_demo_refuses_a_malformed_range_before_it_starts_anything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PORTS_ENV, "abc")
    with pytest.raises(SystemExit) as exited:
        demo_main(["up", "--state-dir", str(tmp_path / "state")])
    assert exited.value.code == 2
    assert f"{PORTS_ENV}='abc': expected low-high within 1024-65535" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()
