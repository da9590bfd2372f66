"""A second `pulumi up` with nothing changed is a no-op (issue 18, item 8).

Run 1 is the session fixture `deployed`. Run 2 evaluates every stack file again with run 1's
outputs as state (offline/replay.py): resources in state are not created again, so keys,
certificates and passwords are the ones run 1 got, as the engine hands them back on a real
second `up`. Every resource must then be registered with the same inputs (secrets by their plain
values), provider reference, parent and dependencies (offline/second_up.py says why dependency
order is not compared). The check is shown to fail: on a program with a timestamp input, and on
the real program evaluated again without state (fresh keys), naming resource and property.

Dynamic resources carry their provider pickled by dill in the `__provider` input. Serialized by
the pulumi 3.272.0 wheel (requirements.txt), `pulumi/dynamic/dynamic.py`, `serialize_provider`:
dill.dumps(recurse=True) with dict items sorted; the wheel's file is identical to
sdk/python/lib/pulumi/dynamic/dynamic.py at pulumi/pulumi 1b5949891b (after v3.259.0). Diffed
by `pulumi/dynamic/__main__.py`, `DynamicResourceProviderServicer.Diff`: the provider's own
`diff` decides; only when it returns `changes=None` (DIFF_UNKNOWN) does the engine compare all
inputs, `__provider` included (pkg/resource/deploy/step_generator.go, `diffResource`). So the
blob is checked for being the same in two processes with different hash seeds, and both
providers are checked to answer `changes=False` when only `__provider` differs.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dill  # type: ignore[import-untyped]  # no stubs
import pytest

from components.jetstream import JetStreamProvider
from components.meta_peers import MetaPeersProvider
from components.volumes import VolumesReleasedProvider
from infra.pki import CA_VALIDITY_HOURS, EARLY_RENEWAL_HOURS, LEAF_VALIDITY_HOURS
from offline.evaluate import Evaluation, StackOutput, evaluate_stack
from offline.mocks_common import SECRET_SIG, SIG_KEY
from offline.monitor import Registration
from offline.second_up import differences, evaluate_again, second_up
from offline.stack_files import PROJECT_DIR, load_stack_config, stack_names
from tests.conftest import after, named
from tools.python_source import parse_file

STACKS = stack_names()
DYNAMIC = "pulumi-python:dynamic:Resource"


@pytest.fixture(scope="module")
def again(deployed: dict[str, Evaluation]) -> dict[str, Evaluation]:
    return second_up(deployed, {s: load_stack_config(s) for s in STACKS})


def test_every_stack_file_is_evaluated_twice(
    deployed: dict[str, Evaluation], again: dict[str, Evaluation]
) -> None:
    assert list(again) == list(deployed) == STACKS
    assert set(STACKS) >= {"east", "west", "central"}
    assert all(again[s].resources for s in STACKS)


@pytest.mark.parametrize("stack", STACKS)
def test_a_second_up_registers_every_resource_as_the_first(
    stack: str, deployed: dict[str, Evaluation], again: dict[str, Evaluation]
) -> None:
    found = differences(deployed[stack], again[stack])
    assert [str(d) for d in found] == []
    assert len(again[stack].resources) == len(deployed[stack].resources)


def test_resources_in_state_are_answered_from_it(
    deployed: dict[str, Evaluation], again: dict[str, Evaluation]
) -> None:
    """The mocks mint a new key on every create; run 2 has run 1's, so it came from state."""
    for stack in STACKS:
        first = {r.urn: r for r in deployed[stack].resources}
        keys = again[stack].of_type("tls:index/privateKey:PrivateKey")
        assert keys
        for key in keys:
            assert key.state["privateKeyPem"] == first[key.urn].state["privateKeyPem"]
        assert {r.urn: r.id for r in again[stack].resources} == {
            urn: r.id for urn, r in first.items()
        }


def test_without_state_the_real_program_would_change_its_secrets(
    deployed: dict[str, Evaluation],
) -> None:
    """The comparison sees through secrets in the real program: evaluated again as a first
    `up` (new keys), the certificates in the Kubernetes Secrets and the dynamic resources'
    connections differ, and each is named."""
    stack = STACKS[-1]
    fresh = evaluate_stack(
        stack,
        load_stack_config(stack),
        stack_outputs=after(*(deployed[s] for s in STACKS[:-1])),
    )
    found = differences(deployed[stack], fresh)
    where = {(d.resource, d.what) for d in found}
    server = named(deployed[stack], "kubernetes:core/v1:Secret", "-pki-server")
    assert (f"{server.type} {server.name}", "inputs.stringData.tls.key") in where
    assert (f"{server.type} {server.name}", "inputs.stringData.tls.crt") in where
    ca = named(deployed[stack], "kubernetes:core/v1:Secret", "-pki-ca")  # the CA stack's: kept
    assert not any(r == f"{ca.type} {ca.name}" for r, _ in where)
    for dynamic in deployed[stack].of_type(DYNAMIC):
        assert (f"{DYNAMIC} {dynamic.name}", "inputs.connection.key_pem") in where
    assert all("PRIVATE KEY" not in d.first + d.second for d in found)  # secrets by digest


TINY_PROGRAM = """
import time

import pulumi_tls as tls
from pulumi_kubernetes.core.v1 import ConfigMap

key = tls.PrivateKey("key", algorithm="ECDSA", ecdsa_curve="P256")
ConfigMap("stable", data={"publicKey": key.public_key_pem})
ConfigMap("stamped", data={"at": str(time.time_ns()), "name": "same"})
"""


def test_a_timestamp_input_is_reported_with_its_resource_and_property(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: tiny\nruntime: python\n")
    (tmp_path / "__main__.py").write_text(TINY_PROGRAM)
    first = evaluate_stack("dev", {}, project_dir=tmp_path)
    time.sleep(0.001)
    second = evaluate_again(first, {}, project_dir=tmp_path)
    found = differences(first, second)
    assert [(d.resource, d.what) for d in found] == [
        ("kubernetes:core/v1:ConfigMap stamped", "inputs.data.at")
    ]
    assert str(found[0]).startswith("dev: kubernetes:core/v1:ConfigMap stamped: inputs.data.at: ")
    # Without state the key is minted again, and the ConfigMap that carries it moves too.
    fresh = evaluate_stack("dev", {}, project_dir=tmp_path)
    assert [(d.resource, d.what) for d in differences(first, fresh)] == [
        ("kubernetes:core/v1:ConfigMap stable", "inputs.data.publicKey"),
        ("kubernetes:core/v1:ConfigMap stamped", "inputs.data.at"),
    ]


def _registration(**changes: Any) -> Registration:
    base: dict[str, Any] = {
        "urn": "urn:pulumi:s::p::t:m:R::r",
        "type": "t:m:R",
        "name": "r",
        "parent": "",
        "custom": True,
        "provider": "urn:pulumi:s::p::pulumi:providers:t::default::id-1",
        "dependencies": ["urn:a", "urn:b"],
        "property_dependencies": {"x": ["urn:a", "urn:b"]},
        "inputs": {"x": 1, "password": {SIG_KEY: SECRET_SIG, "value": "hunter2"}},
    }
    return Registration(**{**base, **changes})


def _evaluation(
    *resources: Registration, outputs: dict[str, StackOutput] | None = None
) -> Evaluation:
    return Evaluation("s", list(resources), outputs or {}, [], 0.0, [], [])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"dependencies": ["urn:b", "urn:a"]}, []),
        ({"property_dependencies": {"x": ["urn:b", "urn:a"]}}, []),
        ({"dependencies": ["urn:a"]}, [("dependencies", "['urn:b']", "[]")]),
        ({"provider": "urn:pulumi:s::p::pulumi:providers:t::default::id-2"}, [("provider",)]),
        (
            {"inputs": {"x": 1.5, "password": {SIG_KEY: SECRET_SIG, "value": "hunter2"}}},
            [("inputs.x", "1", "1.5")],
        ),
        (
            {"inputs": {"x": 1, "password": {SIG_KEY: SECRET_SIG, "value": "hunter3"}}},
            [("inputs.password",)],
        ),
        ({"inputs": {"x": 1, "password": "hunter2"}}, [("inputs.password",)]),
        ({"inputs": {"x": 1}}, [("inputs.password",)]),
    ],
)
def test_what_counts_as_a_difference(
    changes: dict[str, Any], expected: list[tuple[str, ...]]
) -> None:
    found = differences(_evaluation(_registration()), _evaluation(_registration(**changes)))
    assert [
        (d.what, d.first, d.second)[: len(e)] for d, e in zip(found, expected, strict=False)
    ] == expected
    assert len(found) == len(expected)
    assert all("hunter" not in d.first + d.second for d in found)  # secrets shown as a digest


def test_a_resource_gone_or_new_and_a_changed_stack_output_are_reported() -> None:
    first = _evaluation(_registration(), outputs={"ca": StackOutput("a", True)})
    second = _evaluation(
        _registration(urn="urn:pulumi:s::p::t:m:R::other", name="other"),
        outputs={"ca": StackOutput("b", True)},
    )
    found = differences(first, second)
    assert [(d.resource, d.what) for d in found] == [
        ("t:m:R other", "registered"),
        ("t:m:R r", "registered"),
        ("", "outputs.ca"),
    ]
    assert (found[0].first, found[0].second) == ("False", "True")
    assert found[2].first != found[2].second
    assert found[2].first.startswith("[secret sha256:")


def _plain(value: Any) -> Any:
    if isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG:
        return value["value"]
    return value


PROVIDER_BLOBS = """
import json
from pulumi.dynamic.dynamic import serialize_provider
from components.jetstream import JetStreamProvider
from components.meta_peers import MetaPeersProvider
from components.volumes import VolumesReleasedProvider
classes = (JetStreamProvider, MetaPeersProvider, VolumesReleasedProvider)
print(json.dumps({c.__name__: serialize_provider(c()) for c in classes}))
"""


def test_the_pickled_dynamic_provider_is_the_same_in_every_process(
    deployed: dict[str, Evaluation], again: dict[str, Evaluation]
) -> None:
    recorded: dict[str, set[str]] = {}
    for stack in STACKS:
        for run in (deployed, again):
            for resource in run[stack].of_type(DYNAMIC):
                blob = _plain(resource.inputs["__provider"])
                provider = dill.loads(base64.b64decode(blob))
                recorded.setdefault(type(provider).__name__, set()).add(blob)
    assert set(recorded) == {"JetStreamProvider", "MetaPeersProvider", "VolumesReleasedProvider"}
    assert all(len(blobs) == 1 for blobs in recorded.values()), "differs within one process"
    children = [  # two interpreters at once, with different hash seeds
        subprocess.Popen(
            [sys.executable, "-c", PROVIDER_BLOBS],
            cwd=PROJECT_DIR,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(PROJECT_DIR)},
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in ("0", "4242")
    ]
    outs = [child.communicate(timeout=120)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]
    for out in outs:
        assert {k: {v} for k, v in json.loads(out).items()} == recorded


def test_the_dynamic_providers_diff_ignores_a_changed_provider_blob(
    deployed: dict[str, Evaluation],
) -> None:
    """Should dill or the SDK ever pickle differently, the providers' own diff (not the
    engine's input diff) decides, and it does not look at `__provider`."""
    providers = {
        "JetStreamProvider": JetStreamProvider(),
        "MetaPeersProvider": MetaPeersProvider(),
        "VolumesReleasedProvider": VolumesReleasedProvider(),
    }
    seen = set()
    for stack in STACKS:
        for resource in deployed[stack].of_type(DYNAMIC):
            olds = {k: _plain(v) for k, v in resource.inputs.items()}
            for secret in ("connection", "kubeconfig"):
                if secret in olds:
                    olds[secret] = _plain(olds[secret])
            news = {**olds, "__provider": base64.b64encode(b"another pickle").decode()}
            name = type(dill.loads(base64.b64decode(olds["__provider"]))).__name__
            seen.add(name)
            result = providers[name].diff(resource.id, olds, news)
            assert result.changes is False, resource.name
    assert seen == set(providers)


# Clock and entropy reads in the modules the program imports (nested imports included), each
# with why it cannot reach an input. A new one fails here until it is argued.
CLOCK_READS = {
    ("infra/config.py", "date.today"): "which Kubernetes versions are supported: checks only",
    ("infra/jetstream_ops.py", "time.monotonic"): "retry deadlines inside provider operations",
    ("infra/sys_ping.py", "time.monotonic"): "ping timing inside a provider operation",
    ("infra/meta_ops.py", "time.monotonic"): "deadlines of peer removal inside a provider",
    ("infra/volumes.py", "time.monotonic"): "the volume wait's deadline inside a provider",
}
_CLOCK_NAMES = {
    "now",
    "utcnow",
    "today",
    "time",
    "time_ns",
    "monotonic",
    "perf_counter",
    "uuid1",
    "uuid4",
    "urandom",
    "token_hex",
    "token_bytes",
    "token_urlsafe",
    "random",
    "randint",
    "choice",
    "getrandbits",
    "shuffle",
    "sample",
    "getpid",
}


def _program_modules() -> set[Path]:
    todo, seen = [PROJECT_DIR / "__main__.py"], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(parse_file(path)):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                base = PROJECT_DIR / name.replace(".", "/")
                todo += [p for p in (base.with_suffix(".py"), base / "__init__.py") if p.exists()]
    return seen


def test_no_input_is_derived_from_the_clock_or_randomness(
    deployed: dict[str, Evaluation],
) -> None:
    reads = set()
    for path in _program_modules():
        for node in ast.walk(parse_file(path)):
            if isinstance(node, ast.Attribute) and node.attr in _CLOCK_NAMES:
                reads.add((str(path.relative_to(PROJECT_DIR)), ast.unparse(node)))
    assert reads == set(CLOCK_READS)
    # pulumi-tls and pulumi-random: validity from constants, no keepers that could move.
    for stack in STACKS:
        for resource in deployed[stack].resources:
            if resource.type.startswith("tls:index/") and "validityPeriodHours" in resource.inputs:
                assert resource.inputs["validityPeriodHours"] in (
                    CA_VALIDITY_HOURS,
                    LEAF_VALIDITY_HOURS,
                )
                assert resource.inputs.get("earlyRenewalHours", EARLY_RENEWAL_HOURS) in (
                    EARLY_RENEWAL_HOURS,
                    0,
                )
            if resource.type.startswith("random:index/"):
                assert "keepers" not in resource.inputs, resource.name
