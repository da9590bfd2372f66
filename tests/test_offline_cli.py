"""`./dev offline` (python -m offline): labelled offline, prints the tree, keeps secrets hidden."""

from __future__ import annotations

import pytest

from offline.__main__ import main


def test_demo_prints_each_stacks_tree_and_hides_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["west"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OFFLINE:")
    # west reads east's outputs (CA, gateway), so east is evaluated first, as it is deployed first
    assert out.index("== stack east:") < out.index("== stack west:")
    lines = out.splitlines()
    component = next(i for i, line in enumerate(lines) if "azure:AksCluster" in line)
    cluster = next(i for i, line in enumerate(lines) if "containerservice:ManagedCluster" in line)
    indent = len(lines[cluster]) - len(lines[cluster].lstrip())
    assert indent > len(lines[component]) - len(lines[component].lstrip())
    assert "kubeconfig: [secret]" in out
    assert "mock-token-" not in out
    assert "region: westus" in out


def test_demo_refuses_an_unknown_stack(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["north"])
    assert exited.value.code == 2
    assert "no stack file for north; stacks: east, west" in capsys.readouterr().err
