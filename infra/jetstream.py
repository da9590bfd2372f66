"""JetStream streams, consumers and KV buckets as code: the typed config, the subject grammar,
and the JetStream API requests the stack's objects become.

How an object on the server differs from its request is infra/jetstream_changes.py; names and
subjects unique across the supercluster, infra/jetstream_domain.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from infra.config_base import INT64_MAX, ConfigModel
from infra.identities import ANSWER_SUBJECTS, ANSWERS_STREAM, RECORDER_CONSUMER

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SUBJECT = re.compile(r"^[^\s.*>]+(\.[^\s.*>]+|\.\*)*(\.>)?$|^\*(\.[^\s.*>]+|\.\*)*(\.>)?$|^>$")
_DURATION = re.compile(r"^(\d+)(ns|us|ms|s|m|h|d)$")
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}


def parse_duration(text: str) -> int:
    """`5d`, `30s`, `250ms`, `0` -> nanoseconds (the JetStream API's unit)."""
    if text == "0":
        return 0
    match = _DURATION.match(text)
    if not match:
        raise ValueError("must be a duration like '30s', '5m', '2h', '5d' or '0'")
    nanoseconds = int(match.group(1)) * _UNITS[match.group(2)]
    if nanoseconds > INT64_MAX:
        raise ValueError("is longer than JetStream can hold (64-bit nanoseconds, about 292 years)")
    return nanoseconds


def _duration(text: str) -> str:
    parse_duration(text)
    return text


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("must be 1-64 letters, digits, '-' or '_'")
    return value


def _subject(value: str) -> str:
    if not _SUBJECT.match(value):
        raise ValueError(
            "must be a NATS subject: dot-separated tokens, '*' for one token, '>' only last"
        )
    return value


Duration = Annotated[str, AfterValidator(_duration)]
Name = Annotated[str, AfterValidator(_name)]
Subject = Annotated[str, AfterValidator(_subject)]


class Placement(ConfigModel):
    cluster: Name | None = Field(None, description="default: this stack's NATS cluster")
    tags: list[str] = Field(default_factory=list)


class SourceConfig(ConfigModel):
    name: Name
    filter_subject: Subject | None = None


class StreamSpec(ConfigModel):
    name: Name
    subjects: list[Subject] = Field(default_factory=list)
    storage: Literal["file", "memory"] = "file"
    retention: Literal["limits", "interest", "workqueue"] = "limits"
    replicas: int | None = Field(None, ge=1, le=5, description="default min(3, region servers)")
    max_age: Duration = "0"
    max_bytes: int = Field(-1, ge=-1)
    max_msgs: int = Field(-1, ge=-1)
    max_msgs_per_subject: int = Field(-1, ge=-1)
    discard: Literal["old", "new"] = "old"
    duplicate_window: Duration = "2m"
    placement: Placement = Placement()
    description: str = ""
    compression: Literal["none", "s2"] = "none"
    allow_direct: bool = False
    deny_delete: bool = False
    deny_purge: bool = False
    sources: list[SourceConfig] = Field(default_factory=list)
    mirror: SourceConfig | None = None
    adopt: bool = Field(False, description="take over an existing stream that differs")


class ConsumerSpec(ConfigModel):
    stream: Name
    name: Name
    filter_subjects: list[Subject] = Field(default_factory=list)
    deliver_policy: Literal["all", "last", "new", "last_per_subject"] = "all"
    ack_policy: Literal["explicit", "all", "none"] = "explicit"
    ack_wait: Duration = "30s"
    max_deliver: int = Field(-1, ge=-1)
    backoff: list[Duration] = Field(default_factory=list)
    max_ack_pending: int = Field(1000, ge=-1)
    sample_frequency: Annotated[str, Field(pattern=r"^([0-9]|[1-9][0-9]|100)%?$")] | None = None
    description: str = ""
    adopt: bool = False


class KvSpec(ConfigModel):
    bucket: Name
    history: int = Field(1, ge=1, le=64)
    ttl: Duration = "0"
    max_value_size: int = Field(-1, ge=-1)
    storage: Literal["file", "memory"] = "file"
    replicas: int | None = Field(None, ge=1, le=5)
    description: str = ""
    adopt: bool = False


def _seed_streams() -> list[StreamSpec]:
    return [
        StreamSpec(
            name=ANSWERS_STREAM,
            subjects=list(ANSWER_SUBJECTS),
            storage="file",
            max_age="5d",
            description="answers from the requesters, drained by the recorder",
        )
    ]


def _seed_consumers() -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            stream=ANSWERS_STREAM,
            name=RECORDER_CONSUMER,
            ack_policy="explicit",
            max_deliver=5,
            backoff=["5s", "30s", "2m"],
            max_ack_pending=1000,
            description="the recorder's durable pull consumer",
        )
    ]


class JetStreamConfig(ConfigModel):
    """Defaults to seed 001's `answers` stream and the recorder's consumer."""

    streams: list[StreamSpec] = Field(default_factory=_seed_streams)
    consumers: list[ConsumerSpec] = Field(default_factory=_seed_consumers)
    kv: list[KvSpec] = Field(default_factory=list)
    connect_timeout_seconds: int = Field(600, ge=5, le=3600)
    # Refresh and destroy: a region silent this long is gone (a timeout per resource).
    unreachable_seconds: int = Field(20, ge=1, le=600)


def kv_stream_name(bucket: str) -> str:
    return f"KV_{bucket}"


def subjects_overlap(a: str, b: str) -> bool:
    """True when some subject matches both patterns (`*` one token, `>` one or more)."""
    return _tokens_overlap(a.split("."), b.split("."))


def _tokens_overlap(left: list[str], right: list[str]) -> bool:
    if not left or not right:
        return not left and not right
    if ">" in (left[0], right[0]):
        return True
    if left[0] == right[0] or "*" in (left[0], right[0]):
        return _tokens_overlap(left[1:], right[1:])
    return False


# --- API requests -----------------------------------------------------------------------------


def _replicas(requested: int | None, own_servers: int, placed_here: bool) -> int:
    return requested or (min(3, own_servers) if placed_here else 3)


def _placement(placement: Placement, own_cluster: str) -> dict[str, Any]:
    block: dict[str, Any] = {"cluster": placement.cluster or own_cluster}
    if placement.tags:
        block["tags"] = list(placement.tags)
    return block


def _source(source: SourceConfig) -> dict[str, Any]:
    block: dict[str, Any] = {"name": source.name}
    if source.filter_subject:
        block["filter_subject"] = source.filter_subject
    return block


def stream_request(spec: StreamSpec, own_cluster: str, own_servers: int) -> dict[str, Any]:
    """The `config` of a `$JS.API.STREAM.CREATE` request, with every field this program manages."""
    placement = _placement(spec.placement, own_cluster)
    config: dict[str, Any] = {
        "name": spec.name,
        "subjects": list(spec.subjects),
        "storage": spec.storage,
        "retention": spec.retention,
        "num_replicas": _replicas(spec.replicas, own_servers, placement["cluster"] == own_cluster),
        "max_age": parse_duration(spec.max_age),
        "max_bytes": spec.max_bytes,
        "max_msgs": spec.max_msgs,
        "max_msgs_per_subject": spec.max_msgs_per_subject,
        "discard": spec.discard,
        "duplicate_window": parse_duration(spec.duplicate_window),
        "placement": placement,
        "description": spec.description,
        "compression": spec.compression,
        "allow_direct": spec.allow_direct,
        "deny_delete": spec.deny_delete,
        "deny_purge": spec.deny_purge,
        "sources": [_source(s) for s in spec.sources],
    }
    if spec.mirror is not None:
        config["mirror"] = _source(spec.mirror)
    return config


def consumer_request(spec: ConsumerSpec) -> dict[str, Any]:
    """The `config` of a `$JS.API.CONSUMER.CREATE` request for a durable pull consumer.
    With a backoff the server uses its first step as the ack wait, so the request does too
    (otherwise every read would report drift)."""
    backoff = [parse_duration(b) for b in spec.backoff]
    config: dict[str, Any] = {
        "durable_name": spec.name,
        "name": spec.name,
        "deliver_policy": spec.deliver_policy,
        "ack_policy": spec.ack_policy,
        "ack_wait": backoff[0] if backoff else parse_duration(spec.ack_wait),
        "max_deliver": spec.max_deliver,
        "backoff": backoff,
        "max_ack_pending": spec.max_ack_pending,
        "description": spec.description,
        "replay_policy": "instant",
    }
    if len(spec.filter_subjects) == 1:
        config["filter_subject"] = spec.filter_subjects[0]
    elif spec.filter_subjects:
        config["filter_subjects"] = list(spec.filter_subjects)
    if spec.sample_frequency is not None:
        config["sample_freq"] = spec.sample_frequency
    return config


def kv_request(spec: KvSpec, own_cluster: str, own_servers: int) -> dict[str, Any]:
    """A KV bucket is a stream with these settings (as the NATS clients make it)."""
    ttl = parse_duration(spec.ttl)
    two_minutes = parse_duration("2m")
    return {
        "name": kv_stream_name(spec.bucket),
        "subjects": [f"$KV.{spec.bucket}.>"],
        "storage": spec.storage,
        "retention": "limits",
        "num_replicas": _replicas(spec.replicas, own_servers, placed_here=True),
        "max_age": ttl,
        "max_bytes": -1,
        "max_msgs": -1,
        "max_msgs_per_subject": spec.history,
        "max_msg_size": spec.max_value_size,
        "discard": "new",
        "duplicate_window": min(ttl, two_minutes) if ttl else two_minutes,
        "placement": {"cluster": own_cluster},
        "description": spec.description,
        "compression": "none",
        "allow_direct": True,
        "allow_rollup_hdrs": True,
        "deny_delete": True,
        "deny_purge": False,
        "sources": [],
    }


@dataclass(frozen=True)
class Declared:
    """One JetStream object this stack manages, ready for the provider."""

    kind: Literal["stream", "consumer"]
    request: dict[str, Any]
    adopt: bool
    stream: str = ""

    @property
    def key(self) -> str:
        return (
            f"{self.stream}/{self.request['name']}"
            if self.kind == "consumer"
            else str(self.request["name"])
        )


def declared_objects(config: JetStreamConfig, own_cluster: str, own_servers: int) -> list[Declared]:
    """Streams and KV buckets first, then consumers (which need their stream)."""
    objects = [
        Declared("stream", stream_request(s, own_cluster, own_servers), s.adopt)
        for s in config.streams
    ]
    objects += [
        Declared("stream", kv_request(k, own_cluster, own_servers), k.adopt) for k in config.kv
    ]
    objects += [
        Declared("consumer", consumer_request(c), c.adopt, stream=c.stream)
        for c in config.consumers
    ]
    return objects
