"""JetStream streams, consumers and KV buckets from stack config, as Pulumi resources backed by a
dynamic provider on nats-py (infra/jetstream_ops.py does the work).

The provider is serialised into the state by Pulumi; it holds no connection details and imports
inside its methods, so the credentials travel only as (secret) resource inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from infra.jetstream import Declared
from infra.jetstream_domain import collisions, declared_streams, jetstream_summary
from infra.peers import PeerReading

# Resource properties that are not part of the JetStream request.
_CONTROL = ("connection", "kind", "stream", "adopt", "action")


def _split(props: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    request = {k: v for k, v in props.items() if k not in _CONTROL and not k.startswith("__")}
    control = {k: props[k] for k in _CONTROL if k in props}
    return request, control


def _run(props: Mapping[str, Any], work: Any, *, teardown: bool = False) -> Any:
    """`teardown` (refresh, delete): give up on a silent endpoint after its
    `unreachable_seconds` and raise JetStreamUnreachableError."""
    import asyncio  # noqa: PLC0415 (imports inside methods: see the module docstring)

    from infra.jetstream_ops import Connection, Target, with_admin  # noqa: PLC0415

    request, control = _split(props)
    target = Target(kind=control["kind"], request=request, stream=control.get("stream", ""))
    connection = Connection.from_inputs(control["connection"])
    if teardown:
        connection = connection.for_teardown()
    return target, asyncio.run(with_admin(connection, lambda admin: work(admin, target)))


def _unreachable(what: str, props: Mapping[str, Any], error: Exception) -> None:
    """Pulumi shows a dynamic provider's stderr with the resource."""
    import sys  # noqa: PLC0415

    kind, name = props.get("kind", "object"), props.get("name", "?")
    print(f"warning: {kind} {name}: region unreachable, {what} ({error})", file=sys.stderr)


class JetStreamProvider(ResourceProvider):
    """Create adopts an identical object, update changes what the server can change in place,
    diff marks the rest as replacements, read reports drift, delete removes."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        from infra.jetstream_ops import ensure  # noqa: PLC0415

        adopt = bool(props.get("adopt"))
        target, action = _run(props, lambda admin, t: ensure(admin, t, adopt=adopt))
        return CreateResult(
            id_=_object_id(target.kind, target.stream, target.name),
            outs={**props, "action": action},
        )

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from infra.jetstream_ops import JetStreamUnreachableError  # noqa: PLC0415

        try:
            _, actual = _run(props, lambda admin, t: t.read(admin), teardown=True)
        except JetStreamUnreachableError as error:
            _unreachable("the last known state is kept", props, error)
            return ReadResult(id_, props)
        if actual is None:
            return ReadResult(None, {})  # deleted out of band: the next up creates it again
        return ReadResult(id_, {**props, **actual})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        from infra.jetstream_ops import Target  # noqa: PLC0415

        old_request, old_control = _split(olds)
        new_request, new_control = _split(news)
        target = Target(kind=new_control["kind"], request=new_request)
        changes = target.changes(old_request, new_request)
        moved = old_control.get("stream") != new_control.get("stream")
        replaces = [*changes.replace, *(["stream"] if moved else [])]
        reconnect = old_control.get("connection") != new_control.get("connection")
        return DiffResult(
            changes=changes.any or moved or reconnect,
            replaces=replaces,
            delete_before_replace=True,  # the name is the identity: the old one must go first
        )

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old_request, _ = _split(olds)
        new_request, _ = _split(news)
        if old_request != new_request:
            _run(news, lambda admin, t: t.write(admin, update=True))
        return UpdateResult(outs={**news, "action": "updated"})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """An unreachable region's objects leave the state with a warning: their data goes
        with the region's servers and volumes (docs/destroying.md#destroying-regions)."""
        from infra.jetstream_ops import JetStreamUnreachableError  # noqa: PLC0415

        try:
            _run(props, lambda admin, t: t.delete(admin), teardown=True)
        except JetStreamUnreachableError as error:
            _unreachable("removed from the state without deleting it", props, error)


def _object_id(kind: str, stream: str, name: str) -> str:
    return f"{stream}/{name}" if kind == "consumer" else name


class JetStreamObject(Resource):
    """One stream, KV bucket (a stream) or consumer."""

    def __init__(
        self, name: str, props: Mapping[str, Any], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        secret = pulumi.ResourceOptions(additional_secret_outputs=["connection"])
        super().__init__(
            JetStreamProvider(), name, dict(props), pulumi.ResourceOptions.merge(opts, secret)
        )


@dataclass(frozen=True)
class JetStreamArgs:
    objects: Sequence[Declared]
    client_url: pulumi.Output[str]
    ca_pem: pulumi.Output[str]
    admin_cert_pem: pulumi.Output[str]
    admin_key_pem: pulumi.Output[str]
    timeout_seconds: int
    unreachable_seconds: int
    peers: pulumi.Output[PeerReading]
    # The release and the servers' meta group membership: JetStream objects are made after
    # them and deleted before them, so the objects are gone before their servers leave.
    after: Sequence[pulumi.Resource]


class JetStreamResources(pulumi.ComponentResource):
    """Connects through the region's endpoint as `admin`, once no peer declares the same
    stream names or subjects (the supercluster is one JetStream domain)."""

    objects: dict[str, JetStreamObject]
    summary: pulumi.Output[dict[str, list[dict[str, Any]]]]

    def __init__(
        self, name: str, args: JetStreamArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("nats-supercluster:nats:JetStream", name, None, opts)
        ours = declared_streams(args.objects)

        def connection(
            url: str, ca: str, cert: str, key: str, reading: PeerReading
        ) -> dict[str, Any]:
            problems = collisions(ours, {p.stack: p.streams for p in reading.peers})
            if problems:
                raise ValueError(
                    "JetStream names must be unique in the supercluster: " + "; ".join(problems)
                )
            return {
                "url": url,
                "ca_pem": ca,
                "cert_pem": cert,
                "key_pem": key,
                "timeout_seconds": args.timeout_seconds,
                "unreachable_seconds": args.unreachable_seconds,
            }

        inputs: pulumi.Output[dict[str, Any]] = pulumi.Output.all(
            args.client_url, args.ca_pem, args.admin_cert_pem, args.admin_key_pem, args.peers
        ).apply(lambda a: connection(a[0], a[1], a[2], a[3], a[4]))
        inputs = pulumi.Output.secret(inputs)
        self.objects = {}
        for declared in args.objects:
            needs = [self.objects[declared.stream]] if declared.stream in self.objects else []
            props: dict[str, Any] = {
                "connection": inputs,
                "kind": declared.kind,
                "adopt": declared.adopt,
                **declared.request,
            }
            if declared.kind == "consumer":
                props["stream"] = declared.stream
            self.objects[declared.key] = JetStreamObject(
                f"{name}-{declared.kind}-{declared.key.replace('/', '-')}",
                props,
                pulumi.ResourceOptions(parent=self, depends_on=[*args.after, *needs]),
            )
        summary = jetstream_summary(args.objects)
        self.summary = pulumi.Output.all(*[o.id for o in self.objects.values()]).apply(
            lambda _: summary
        )
        self.register_outputs({"summary": self.summary})
