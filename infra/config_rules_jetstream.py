"""Config rules over the JetStream objects a stack declares (jetstream.streams, .kv,
.consumers): what the JetStream server would refuse, or what would make a stack fight itself."""

from __future__ import annotations

from infra.config_model import ConfigIssue, NatsConfig
from infra.jetstream import JetStreamConfig, kv_stream_name, parse_duration, subjects_overlap


def check_jetstream(js: JetStreamConfig, nats: NatsConfig, cluster: str) -> list[ConfigIssue]:
    """What the JetStream server would refuse, or what would make a stack fight itself."""
    names = [s.name for s in js.streams] + [kv_stream_name(k.bucket) for k in js.kv]
    issues = [
        ConfigIssue("jetstream.streams", f"declares {duplicate!r} more than once")
        for duplicate in sorted({n for n in names if names.count(n) > 1})
    ]
    issues += _check_streams(js, nats, cluster)
    issues += _check_kv(js, nats)
    issues += _check_consumers(js)
    return issues


def _check_streams(js: JetStreamConfig, nats: NatsConfig, cluster: str) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    add = issues.append
    for i, stream in enumerate(js.streams):
        key = f"jetstream.streams[{i}]"
        here = stream.placement.cluster in (None, cluster)
        if stream.mirror is not None and (stream.subjects or stream.sources):
            add(ConfigIssue(f"{key}.mirror", "a mirror takes no subjects and no sources"))
        if stream.mirror is None and not stream.subjects and not stream.sources:
            add(ConfigIssue(f"{key}.subjects", "needs subjects (or sources, or a mirror)"))
        if here and not nats.jetstream:
            add(
                ConfigIssue(
                    f"{key}.placement.cluster",
                    f"places the stream in {cluster!r}, "
                    "where nats.jetstream is false; place it in another cluster",
                )
            )
        max_age = parse_duration(stream.max_age)
        if max_age and parse_duration(stream.duplicate_window) > max_age:
            add(
                ConfigIssue(
                    f"{key}.duplicateWindow",
                    f"must not exceed maxAge ({stream.max_age})",
                    stream.duplicate_window,
                    has_value=True,
                )
            )
        if here and stream.replicas and stream.replicas > nats.replicas:
            add(
                ConfigIssue(
                    f"{key}.replicas",
                    f"exceeds the {nats.replicas} server(s) of this region (nats.replicas)",
                    stream.replicas,
                    has_value=True,
                )
            )
        for j, other in enumerate(js.streams[:i]):
            clash = [
                (a, b) for a in stream.subjects for b in other.subjects if subjects_overlap(a, b)
            ]
            if clash:
                add(
                    ConfigIssue(
                        f"{key}.subjects",
                        f"{clash[0][0]!r} overlaps {clash[0][1]!r} "
                        f"of jetstream.streams[{j}] ({other.name})",
                    )
                )
    return issues


def _check_kv(js: JetStreamConfig, nats: NatsConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for i, kv in enumerate(js.kv):
        if kv.replicas and kv.replicas > nats.replicas:
            issues.append(
                ConfigIssue(
                    f"jetstream.kv[{i}].replicas",
                    f"exceeds the {nats.replicas} server(s) of this region",
                    kv.replicas,
                    has_value=True,
                )
            )
        if not nats.jetstream:
            issues.append(ConfigIssue(f"jetstream.kv[{i}]", "this region runs no JetStream"))
    return issues


def _check_consumers(js: JetStreamConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    add = issues.append
    streams = {s.name: s for s in js.streams}
    seen: set[tuple[str, str]] = set()
    for i, consumer in enumerate(js.consumers):
        key = f"jetstream.consumers[{i}]"
        if (consumer.stream, consumer.name) in seen:
            add(
                ConfigIssue(
                    f"{key}.name", f"{consumer.name!r} is declared twice on {consumer.stream!r}"
                )
            )
        seen.add((consumer.stream, consumer.name))
        target = streams.get(consumer.stream)
        if target is None:
            known = ", ".join(sorted(streams)) or "none"
            add(
                ConfigIssue(
                    f"{key}.stream",
                    f"names a stream not declared in jetstream.streams (declared: {known})",
                    consumer.stream,
                    has_value=True,
                )
            )
        elif target.subjects:
            for subject in consumer.filter_subjects:
                if not any(subjects_overlap(subject, s) for s in target.subjects):
                    add(
                        ConfigIssue(
                            f"{key}.filterSubjects",
                            f"{subject!r} matches none of "
                            f"stream {target.name!r}'s subjects {target.subjects}",
                        )
                    )
        if consumer.backoff and 0 < consumer.max_deliver <= len(consumer.backoff):
            add(
                ConfigIssue(
                    f"{key}.maxDeliver",
                    f"must be greater than the number of backoff steps ({len(consumer.backoff)})",
                    consumer.max_deliver,
                    has_value=True,
                )
            )
    return issues
