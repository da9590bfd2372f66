"""The stack's default JetStream objects on a local region, made by the dynamic provider
`pulumi up` uses (components/jetstream.py)."""

from __future__ import annotations

from typing import Any

from components.jetstream import JetStreamProvider
from infra.jetstream import JetStreamConfig, declared_objects
from localnet.clients import admin_connection
from localnet.region import LocalRegion


def create_seed_jetstream(region: LocalRegion) -> list[str]:
    """The stack's default JetStream objects, made by the dynamic provider `pulumi up` uses;
    returns what was done to each."""
    provider = JetStreamProvider()
    done = []
    for declared in declared_objects(JetStreamConfig(), region.name, region.spec.replicas):
        props: dict[str, Any] = {
            "connection": admin_connection(region),
            "kind": declared.kind,
            "adopt": declared.adopt,
            **declared.request,
        }
        if declared.kind == "consumer":
            props["stream"] = declared.stream
        outs = provider.create(props).outs or {}
        done.append(f"{declared.kind} {declared.key}: {outs.get('action')}")
    return done
