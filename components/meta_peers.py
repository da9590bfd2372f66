"""Keeps the JetStream meta group in step with the region's servers: after a scale-down, the
departed servers are removed from the group (else the quorum counts them as offline peers);
on destroy, all of the region's servers are, so no region leaves ghosts in the others' group.

A Pulumi dynamic provider over infra.meta_ops, acting as the `control` identity through the
region's load balancer once the release has rolled; like the JetStream provider it holds no
credentials (they are secret resource inputs) and imports inside its methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult


def _remove_departed(props: dict[str, Any], keep: Sequence[str]) -> list[str]:
    import asyncio  # noqa: PLC0415 (see the module docstring)

    from infra.jetstream_ops import Connection, connect  # noqa: PLC0415
    from infra.meta_ops import remove_departed  # noqa: PLC0415

    async def run() -> list[str]:
        client = await connect(Connection.from_inputs(props["connection"]))
        try:
            return await remove_departed(client, props["serverNamePrefix"], keep)
        finally:
            await client.close()

    return asyncio.run(run())


class MetaPeersProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        removed = _remove_departed(props, props["servers"])
        return CreateResult(id_=props["serverNamePrefix"], outs={**props, "removed": removed})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("servers", "serverNamePrefix", "connection")
        return DiffResult(changes=any(olds.get(k) != news.get(k) for k in keys))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**news, "removed": _remove_departed(news, news["servers"])})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        _remove_departed(props, [])


@dataclass(frozen=True)
class MetaPeersArgs:
    server_name_prefix: str
    servers: Sequence[str]
    client_url: pulumi.Input[str]
    ca_pem: pulumi.Input[str]
    control_cert_pem: pulumi.Input[str]
    control_key_pem: pulumi.Input[str]
    tls_hostname: pulumi.Input[str]
    # The release: peers are reconciled once it has rolled, and removed before it goes.
    after: Sequence[pulumi.Resource]


class MetaPeers(Resource):
    removed: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: MetaPeersArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        connection: pulumi.Output[dict[str, Any]] = pulumi.Output.secret(
            pulumi.Output.all(
                args.client_url,
                args.ca_pem,
                args.control_cert_pem,
                args.control_key_pem,
                args.tls_hostname,
            ).apply(
                lambda a: {
                    "url": a[0],
                    "ca_pem": a[1],
                    "cert_pem": a[2],
                    "key_pem": a[3],
                    "tls_hostname": a[4],
                    "timeout_seconds": 600,
                    "inbox_prefix": "_INBOX.control",
                }
            )
        )
        super().__init__(
            MetaPeersProvider(),
            name,
            {
                "connection": connection,
                "serverNamePrefix": args.server_name_prefix,
                "servers": list(args.servers),
                "removed": None,
            },
            pulumi.ResourceOptions.merge(
                opts,
                pulumi.ResourceOptions(
                    depends_on=list(args.after), additional_secret_outputs=["connection"]
                ),
            ),
        )
