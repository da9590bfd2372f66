"""Keeps the JetStream meta group in step with the region's servers: after a scale-down, the
departed servers are removed from the group (else the quorum counts them as offline peers);
on destroy, the region leaves the group (infra.meta_ops.departure_plan), after the region's
JetStream objects are gone (they depend on this resource) and before its servers stop.

A Pulumi dynamic provider over infra.meta_ops, acting as the `control` identity through the
region's load balancer once the release has rolled; like the JetStream provider it holds no
credentials (they are secret resource inputs) and imports inside its methods. A region that
does not answer within `unreachable_seconds` on delete is gone already: its servers cannot
leave, and the warning says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult


def _with_control(props: dict[str, Any], work: Any, *, teardown: bool = False) -> Any:
    import asyncio  # noqa: PLC0415 (see the module docstring)

    from infra.jetstream_ops import Connection, connect  # noqa: PLC0415

    connection = Connection.from_inputs(props["connection"])
    if teardown:
        connection = connection.for_teardown()

    async def run() -> Any:
        client = await connect(connection)
        try:
            return await work(client)
        finally:
            await client.close()

    return asyncio.run(run())


def _remove_departed(props: dict[str, Any], keep: Sequence[str]) -> list[str]:
    from infra.meta_ops import remove_departed  # noqa: PLC0415

    removed: list[str] = _with_control(
        props, lambda client: remove_departed(client, props["serverNamePrefix"], keep)
    )
    return removed


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
        import sys  # noqa: PLC0415

        from infra.jetstream_ops import JetStreamUnreachableError  # noqa: PLC0415
        from infra.meta_ops import leave  # noqa: PLC0415

        prefix = props["serverNamePrefix"]
        try:
            plan = _with_control(props, lambda client: leave(client, prefix), teardown=True)
        except JetStreamUnreachableError as error:
            print(
                f"warning: {prefix}*: region unreachable, its servers stay in the JetStream "
                f"meta group as offline peers until another region's departure or an operator "
                f"removes them (docs/destroying.md#destroying-regions) ({error})",
                file=sys.stderr,
            )
            return
        removed = ", ".join(plan.remove) or "none"
        print(f"{prefix}*: left the meta group: removed {removed} ({plan.reason})", file=sys.stderr)


@dataclass(frozen=True)
class MetaPeersArgs:
    server_name_prefix: str
    servers: Sequence[str]
    client_url: pulumi.Input[str]
    ca_pem: pulumi.Input[str]
    control_cert_pem: pulumi.Input[str]
    control_key_pem: pulumi.Input[str]
    tls_hostname: pulumi.Input[str]
    connect_timeout_seconds: int
    unreachable_seconds: int
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
                    "timeout_seconds": args.connect_timeout_seconds,
                    "unreachable_seconds": args.unreachable_seconds,
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
