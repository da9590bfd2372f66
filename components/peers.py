"""The other regions, read through StackReferences: their gateways, and the CA if one owns it."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import pulumi

from infra.config import ConfigError, StackConfig
from infra.peers import (
    PeerReading,
    read_peers,
    referenced_stack_issues,
    stack_reference_name,
)
from infra.quorum import quorum_warning

# The engine's built-in function behind StackReference (pulumi pkg/resource/deploy/builtins.go
# readStackOutputs): {name} -> {name, outputs, secretOutputNames}; an unknown stack is an error.
READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs"


class PeerStacks(pulumi.ComponentResource):
    """One StackReference per peer (and for the CA's stack when it is not a peer)."""

    reading: pulumi.Output[PeerReading]

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nats-supercluster:nats:PeerStacks", name, None, opts)
        organization = pulumi.get_organization()
        self._refs: dict[str, pulumi.StackReference] = {}
        for stack in (*config.peers, *(() if config.owns_ca else (config.pki.ca_stack,))):
            if stack not in self._refs:
                self._refs[stack] = pulumi.StackReference(
                    f"{name}-{stack.replace('/', '-')}",
                    stack_name=stack_reference_name(stack, organization, config.project),
                    opts=pulumi.ResourceOptions(parent=self),
                )
        outputs = {
            peer: pulumi.Output.all(
                gatewayUrl=self._refs[peer].get_output("gatewayUrl"),
                natsClusterName=self._refs[peer].get_output("natsClusterName"),
                jetstreamServers=self._refs[peer].get_output("jetstreamServers"),
                jetstream=self._refs[peer].get_output("jetstream"),
                gatewayPin=self._refs[peer].get_output("gatewayPin"),
            )
            for peer in config.peers
        }
        own = config.cluster_name
        # Output.all() of no keywords gives a list, not a dict.
        all_outputs = pulumi.Output.all(**outputs) if outputs else pulumi.Output.from_input({})
        self.reading = all_outputs.apply(lambda values: _logged(read_peers(own, values), self))
        self.register_outputs({})

    def jetstream_quorum(self, own_cluster: str, own_servers: int) -> pulumi.Output[str]:
        """The quorum verdict over this region and its deployed peers, warned about when fragile."""

        def check(reading: PeerReading) -> str:
            counts = {own_cluster: own_servers}
            counts.update({p.cluster_name: p.jetstream_servers for p in reading.peers})
            warning = quorum_warning(counts)
            if warning:
                pulumi.log.warn(warning, self)
            return warning or "no partition between the known regions can stall JetStream"

        return self.reading.apply(check)

    def cas(
        self, stack: str, generations: Sequence[int]
    ) -> tuple[dict[int, pulumi.Output[str]], dict[int, pulumi.Output[str]]]:
        """The CA generations `stack` publishes (its `caCerts` and secret `caKeys`); each
        asked for must be there, so the CA's stack is deployed first at every rotation stage."""
        ref = self._refs[stack]
        certs: dict[int, pulumi.Output[str]] = {}
        keys: dict[int, pulumi.Output[str]] = {}
        for generation in generations:
            certs[generation] = ref.get_output("caCerts").apply(
                partial(_generation, stack=stack, output="caCerts", generation=generation)
            )
            keys[generation] = pulumi.Output.secret(
                ref.get_output("caKeys").apply(
                    partial(_generation, stack=stack, output="caKeys", generation=generation)
                )
            )
        return certs, keys


def check_referenced_stacks(config: StackConfig) -> None:
    """Before any resource: every peer and the CA's stack exist, the CA's stack publishes a CA,
    and no deployed peer already has this region's NATS cluster name. Raises ConfigError."""
    organization = pulumi.get_organization()

    def qualified(stack: str) -> str:
        return stack_reference_name(stack, organization, config.project)

    peers = {peer: qualified(peer) for peer in config.peers}
    ca_stack = None if config.owns_ca else qualified(config.pki.ca_stack)
    found = {name: _read_outputs(name) for name in {*peers.values(), ca_stack} if name}
    issues = referenced_stack_issues(config.cluster_name, peers, ca_stack, found)
    if issues:
        raise ConfigError(config.project, config.stack, issues)


def _read_outputs(stack: str) -> dict[str, Any] | None:
    try:
        result = pulumi.runtime.invoke(READ_STACK_OUTPUTS, {"name": stack})
    except Exception as error:  # the engine's answer for a stack that does not exist
        if "unknown stack" in str(error):
            return None
        raise
    outputs: dict[str, Any] = dict(result.value.get("outputs") or {})
    return outputs


def _logged(reading: PeerReading, resource: pulumi.Resource) -> PeerReading:
    for reason in reading.skipped:
        pulumi.log.warn(reason, resource)
    return reading


def _generation(value: object, *, stack: str, output: str, generation: int) -> str:
    found = value.get(str(generation)) if isinstance(value, dict) else None
    if not found:
        short = stack.rsplit("/", maxsplit=1)[-1]
        raise ValueError(
            f"stack {stack!r} owns the supercluster CA but publishes no generation "
            f"{generation} in {output!r}: list it in that stack's pki.caGenerations and "
            f"deploy it first (pulumi up -s {short})"
        )
    return str(found)
