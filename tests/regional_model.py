"""What nats-server v2.14.2 does with per-region answer streams, as pure functions the facts test
(tests/test_regional_answers_facts.py) checks the live servers against: when a source stalled
by a cut asks for its consumer again, what a sourced message's `Nats-Stream-Source` says, and
the account `mappings` that store each region's publishes under a subject of that region.

Read at tag v2.14.2 (commit 1d065926bb99ed14ebe9cf6a21529d28310fc8d3) of nats-io/nats-server;
every number below names its line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# server/stream.go 3060-3065: the source consumer's heartbeat, and how often the aggregate's
# leader looks for a source it has not heard from for longer than the same interval
# (the ticker at 4195, the stall test at 4241-4246).
HEARTBEAT_SECONDS = 1.0
HEALTH_CHECK_SECONDS = 10.0
# server/stream.go 3425 and 4176-4180: a consumer request with no answer is given up after 30 s,
# then retried with one more failure counted (4062-4072).
REQUEST_WAIT_SECONDS = 30.0
# server/stream.go 3379-3392: the back-off is 5 s x 2 x failures, at most 2 minutes.
BACKOFF_STEP_SECONDS = 10.0
BACKOFF_CAP_SECONDS = 120.0
# server/stream.go 3882-3883: every scheduled request adds 100-200 ms of jitter.
JITTER_SECONDS = (0.1, 0.2)


def retry_backoff(failures: int) -> float:
    """The delay the aggregate's leader adds before asking again after `failures` failed
    requests (stream.go 3387-3392)."""
    return min(BACKOFF_STEP_SECONDS * failures, BACKOFF_CAP_SECONDS)


def request_times(first: float, until: float) -> list[float]:
    """When the leader asks the origin for a source consumer, from its first request at `first`
    (seconds after the cut) while no answer comes: each unanswered request is abandoned after
    30 s and the next one waits the back-off (the lowest jitter; add up to 0.1 s a request)."""
    times = [first]
    failures = 0
    while times[-1] < until:
        failures += 1
        times.append(times[-1] + REQUEST_WAIT_SECONDS + retry_backoff(failures) + JITTER_SECONDS[0])
    return times


def first_request_window() -> tuple[float, float]:
    """Seconds after the cut between which the first request goes out: the last heartbeat came
    up to 1 s before the cut, the next tick that finds it more than 10 s old comes within one
    more interval (stream.go 4241-4264), then the jitter (3882-3883)."""
    earliest = HEALTH_CHECK_SECONDS - HEARTBEAT_SECONDS + JITTER_SECONDS[0]
    return earliest, 2 * HEALTH_CHECK_SECONDS + JITTER_SECONDS[1]


def resume_after_heal(cut_seconds: float, step: float = 0.05) -> tuple[float, float]:
    """Fewest and most seconds after the link returns until the stalled source is asked for
    again and so resumes, over every first-request time the source allows, when nothing else
    restarts the source. A request sent while cut off is lost, not answered late."""
    earliest, latest = first_request_window()
    spread = JITTER_SECONDS[1] - JITTER_SECONDS[0]
    fewest, most = float("inf"), 0.0
    first = earliest
    while first <= latest:
        times = request_times(first, cut_seconds)
        resumed = next(t for t in times if t >= cut_seconds)
        # request_times takes the lowest jitter; each retry may add up to `spread` more.
        fewest = min(fewest, resumed - cut_seconds)
        most = max(most, resumed + spread * times.index(resumed) - cut_seconds)
        first += step
    return max(fewest, 0.0), most


@dataclass(frozen=True)
class SourcedFrom:
    """A sourced message's origin, as `Nats-Stream-Source` carries it (stream.go 4470-4502,
    written at 4405): the origin stream, its sequence there, the source's filter and
    transform destination (`>` for none, from the source's index name, 1079-1124), and the
    subject the message had in the origin."""

    stream: str
    sequence: int
    filter: str
    destination: str
    subject: str


def sourced_from(header: str) -> SourcedFrom:
    """Names and subjects hold no spaces, so the five fields split on them."""
    stream, sequence, filter_, destination, subject = header.split(" ")
    return SourcedFrom(stream, int(sequence), filter_, destination, subject)


def regional_subject(subject: str, region: str) -> str:
    """`answers.significant` stored by east as `answers.east.significant`."""
    head, _, tail = subject.partition(".")
    return f"{head}.{region}.{tail}"


def cluster_mappings(subjects: tuple[str, ...], regions: tuple[str, ...]) -> dict[str, Any]:
    """An account's `mappings`: each subject, published through a server of cluster `region`,
    becomes that region's subject. Each destination needs a weight (opts.go 3438-3442); the
    `cluster` key scopes it to one cluster (3434-3435, accounts.go 729-739)."""
    return {
        subject: [
            {"destination": regional_subject(subject, region), "weight": 100, "cluster": region}
            for region in regions
        ]
        for subject in subjects
    }
