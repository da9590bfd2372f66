"""The supercluster is one JetStream domain: the streams each stack declares, published in its
`jetstream` output, and the names and subjects a stack may not share with its peers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from infra.jetstream import Declared, subjects_overlap


@dataclass(frozen=True)
class DeclaredStream:
    name: str
    subjects: tuple[str, ...]
    cluster: str


def collisions(
    ours: Iterable[DeclaredStream], theirs: Mapping[str, Iterable[DeclaredStream]]
) -> list[str]:
    """Stream names and subjects this stack declares that a peer already declares."""
    problems: list[str] = []
    for peer, streams in theirs.items():
        for other in streams:
            for mine in ours:
                if mine.name == other.name:
                    problems.append(
                        f"stream {mine.name!r} is already declared by stack "
                        f"{peer!r} (placed in {other.cluster})"
                    )
                    continue
                clash = [
                    (s, t) for s in mine.subjects for t in other.subjects if subjects_overlap(s, t)
                ]
                if clash:
                    s, t = clash[0]
                    problems.append(
                        f"stream {mine.name!r} subject {s!r} overlaps {t!r} of "
                        f"stream {other.name!r} declared by stack {peer!r}"
                    )
    return problems


def declared_streams(objects: Iterable[Declared]) -> list[DeclaredStream]:
    return [
        DeclaredStream(
            str(o.request["name"]),
            tuple(o.request.get("subjects", ())),
            str(o.request["placement"]["cluster"]),
        )
        for o in objects
        if o.kind == "stream"
    ]


def jetstream_summary(objects: Iterable[Declared]) -> dict[str, list[dict[str, Any]]]:
    """The `jetstream` stack output: what this stack created and where it is placed; peers
    read it to keep names and subjects unique across the supercluster."""
    summary: dict[str, list[dict[str, Any]]] = {"streams": [], "consumers": []}
    for o in objects:
        if o.kind == "stream":
            summary["streams"].append(
                {
                    "name": o.request["name"],
                    "subjects": list(o.request["subjects"]),
                    "cluster": o.request["placement"]["cluster"],
                    "replicas": o.request["num_replicas"],
                }
            )
        else:
            summary["consumers"].append({"stream": o.stream, "name": o.request["name"]})
    return summary


def streams_from_summary(summary: Mapping[str, Any] | None) -> list[DeclaredStream]:
    return [
        DeclaredStream(str(s["name"]), tuple(s.get("subjects") or ()), str(s.get("cluster")))
        for s in (summary or {}).get("streams", [])
    ]
