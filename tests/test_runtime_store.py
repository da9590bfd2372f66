"""The control service's stores write only over the version their state was computed from: a
write computed from an older read fails (ConflictError) instead of overwriting a change made in
between, and writers that retry on conflict lose nothing. The ConfigMap store runs against a
test API server that honours resourceVersion as Kubernetes does (tests/kube_api.py)."""

from __future__ import annotations

import json
import threading
import urllib.error
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from infra.runtime_config import RuntimeState, runtime_files
from services.runtime_store import (
    ConfigMapStore,
    ConflictError,
    FileStore,
    RuntimeStore,
    store_from,
)
from tests.kube_api import configmap_api


def _note(state: RuntimeState, entry: str) -> RuntimeState:
    return replace(state, history=(*state.history, {"change": entry}))


def _append_many(store: RuntimeStore, writer: str, count: int) -> int:
    """What the control service does per put: read, compute, write over that version, and on
    a conflict all of it again. Returns how many conflicts it met."""
    conflicts = 0
    for n in range(count):
        while True:
            snapshot = store.read()
            try:
                store.write(_note(snapshot.state, f"{writer}-{n}"), snapshot.version)
                break
            except ConflictError:
                conflicts += 1
    return conflicts


def _race(store_of: Callable[[], RuntimeStore], writers: int = 4, each: int = 15) -> int:
    conflicts: list[int] = []
    threads = [
        threading.Thread(
            target=lambda w=w: conflicts.append(_append_many(store_of(), f"w{w}", each))
        )
        for w in range(writers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sum(conflicts)


def test_the_file_store_refuses_a_write_over_a_changed_state(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    first = store.read()
    assert first.state == RuntimeState()
    version = store.write(RuntimeState(("tls://a:6222",)), first.version)
    with pytest.raises(ConflictError):  # computed from the first read: stale
        store.write(RuntimeState(("tls://b:6222",)), first.version)
    assert store.read().state.routes == ("tls://a:6222",)
    assert store.read().version == version
    assert (tmp_path / "routes.conf").read_text() == 'routes: ["tls://a:6222"]\n'


def test_file_store_writers_at_once_lose_nothing(tmp_path: Path) -> None:
    _race(lambda: FileStore(tmp_path))
    entries = [e["change"] for e in FileStore(tmp_path).read().state.history]
    assert sorted(entries) == sorted(f"w{w}-{n}" for w in range(4) for n in range(15))


def test_the_configmap_store_writes_over_the_version_it_read(tmp_path: Path) -> None:
    with configmap_api(tmp_path / "account", runtime_files(RuntimeState())) as (url, api):
        store = ConfigMapStore("nats", "east-runtime", tmp_path / "account", url)
        first = store.read()
        assert first.version == "1"
        assert store.write(RuntimeState(("tls://a:6222",)), first.version) == "2"
        # A second writer computed its state from version 1 too: refused, not overwritten.
        with pytest.raises(ConflictError):
            store.write(RuntimeState(("tls://b:6222",)), first.version)
        assert api.conflicts == 1
        assert json.loads(api.data["state.json"])["routes"] == ["tls://a:6222"]
        assert api.data["routes.conf"] == 'routes: ["tls://a:6222"]\n'
        assert api.object()["metadata"]["labels"]  # the rest of the object is kept
        stranger = ConfigMapStore("nats", "east-runtime", tmp_path / "nowhere", url)
        (tmp_path / "nowhere").mkdir()
        (tmp_path / "nowhere" / "token").write_text("stolen")
        (tmp_path / "nowhere" / "ca.crt").write_bytes(
            (tmp_path / "account" / "ca.crt").read_bytes()
        )
        with pytest.raises(urllib.error.HTTPError, match="401"):
            stranger.read()


def test_configmap_writers_at_once_lose_nothing(tmp_path: Path) -> None:
    """Two control pods overlapping in a rollout, and two more: every change is kept, and the
    race was real (the API server refused stale writes)."""
    account = tmp_path / "account"
    with configmap_api(account, runtime_files(RuntimeState())) as (url, api):
        conflicts = _race(lambda: ConfigMapStore("nats", "east-runtime", account, url))
        entries = [e["change"] for e in json.loads(api.data["state.json"])["history"]]
    assert sorted(entries) == sorted(f"w{w}-{n}" for w in range(4) for n in range(15))
    assert api.updates == 60
    assert conflicts == api.conflicts > 0


def test_a_store_is_named_by_its_kind() -> None:
    assert isinstance(store_from("file:/tmp/x"), FileStore)
    assert isinstance(store_from("configmap:nats/east-runtime"), ConfigMapStore)
    for bad in ("file:", "configmap:nats", "s3://bucket"):
        with pytest.raises(ValueError, match="RUNTIME_STORE"):
            store_from(bad)
