"""The services' Prometheus metrics (prometheus_client), served on METRICS_PORT.

Every series carries `region`, the region the process runs in, so the alert rules
(infra/alerts.py) and dashboards (infra/dashboards.py) need nothing from the scrape
configuration but the pod's own labels. The names are the fact table's
(tests/test_metric_facts.py): a Counter `x` is exposed as `x_total`, a Histogram as
`x_bucket`, `x_count` and `x_sum` (prometheus_client 0.26.0 metrics.py:332-335, 694-705).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from infra.region_health import FAMILIES, Sample
from infra.reload_check import STALE_FAMILY, STALE_HELP, STALE_LABELS
from services.settings import MetricsSettings

# Calculators: what they were asked, what they refused, how long an answer took.
CALCULATOR_REQUESTS = Counter(
    "supercluster_calculator_requests",
    "Requests a calculator received",
    ["region", "operation"],
)
CALCULATOR_ERRORS = Counter(
    "supercluster_calculator_errors",
    "Requests a calculator refused (code 400, 413, 422) or could not answer (no_reply)",
    ["region", "operation", "code"],
)
CALCULATOR_SECONDS = Histogram(
    "supercluster_calculator_duration_seconds",
    "Time a calculator took to answer",
    ["region", "operation"],
)
# The requester: answers by the region that served them, latency in or across regions, what
# failed after its retries, and answers JetStream did not take.
REQUESTER_ANSWERS = Counter(
    "supercluster_requester_answers",
    "Requests answered, by the region whose calculator served them",
    ["region", "operation", "served_by"],
)
REQUESTER_ERRORS = Counter(
    "supercluster_requester_errors",
    "Requests that failed after their retries (failed) or were refused by a calculator",
    ["region", "operation", "kind"],
)
REQUESTER_SECONDS = Histogram(
    "supercluster_requester_latency_seconds",
    "Request latency, retries included, served in the requester's region or another",
    ["region", "operation", "locality"],
)
REQUESTER_UNPUBLISHED = Counter(
    "supercluster_requester_unpublished",
    "Answers JetStream did not take within the retry budget (logged whole to republish)",
    ["region"],
)
# The recorder: rows stored, messages dead-lettered, what its consumer still holds, how long
# it has held a batch it could not store.
RECORDER_STORED = Counter(
    "supercluster_recorder_stored", "Answers stored in the database", ["region"]
)
RECORDER_DEAD_LETTERS = Counter(
    "supercluster_recorder_dead_letters",
    "Messages written to dead_letters instead of answers",
    ["region"],
)
RECORDER_PENDING = Gauge(
    "supercluster_recorder_consumer_pending",
    "Messages the recorder's consumer has not delivered yet, as of the last fetch",
    ["region"],
)
RECORDER_HELD = Gauge(
    "supercluster_recorder_held_seconds",
    "How long the recorder has held the batch it cannot store yet (or waited for its database "
    "at start); 0 when it holds none",
    ["region"],
)
# The control service: puts by outcome, rollbacks (by request or after a pending change did
# not show), and server reloads that failed.
CONTROL_PUTS = Counter(
    "supercluster_control_puts",
    "config.put requests, by outcome (applied, pending, rolled_back, refused, superseded)",
    ["region", "outcome"],
)
CONTROL_ROLLBACKS = Counter(
    "supercluster_control_rollbacks",
    "Runtime changes rolled back because the region did not show them",
    ["region"],
)
CONTROL_RELOAD_FAILURES = Counter(
    "supercluster_control_reload_failures",
    "Server reloads that failed (the server refused the configuration)",
    ["region"],
)
PUT_OUTCOMES = ("applied", "pending", "rolled_back", "refused", "superseded")


class RegionHealth(Collector):
    """The control service's latest view of its region (infra/region_health.py), exposed as
    it was last gathered: a server or stream that is gone has no series any more."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def update(self, samples: Iterable[Sample]) -> None:
        self.samples = list(samples)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (text, labels) in FAMILIES.items():
            family = GaugeMetricFamily(name, text, labels=list(labels))
            for sample in self.samples:
                if sample.name == name:
                    values = dict(sample.labels)
                    family.add_metric([values[label] for label in labels], sample.value)
            yield family


REGION_HEALTH = RegionHealth()
REGISTRY.register(REGION_HEALTH)


class ConfigStale(Collector):
    """How long each server of the region has been behind its files (services/reload_watch.py),
    as last computed: a server that no longer answers has no series."""

    def __init__(self) -> None:
        self.region = ""
        self.values: dict[str, float] = {}

    def update(self, region: str, values: dict[str, float]) -> None:
        self.region, self.values = region, dict(values)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(STALE_FAMILY, STALE_HELP, labels=list(STALE_LABELS))
        for server, seconds in sorted(self.values.items()):
            family.add_metric([self.region, server], seconds)
        yield family


CONFIG_STALE = ConfigStale()
REGISTRY.register(CONFIG_STALE)


def serve(settings: MetricsSettings) -> None:
    """Serve the metrics on their own thread, unless METRICS_PORT is 0."""
    if settings.port:
        start_http_server(settings.port, addr=settings.address)


def calculator_ready(region: str, operation: str) -> None:
    """The calculator's series from 0, so the first refusal is an increase."""
    CALCULATOR_REQUESTS.labels(region, operation)
    for code in ("400", "413", "422", "no_reply"):
        CALCULATOR_ERRORS.labels(region, operation, code)


def requester_ready(region: str) -> None:
    REQUESTER_UNPUBLISHED.labels(region)


def recorder_ready(region: str) -> None:
    RECORDER_STORED.labels(region)
    RECORDER_DEAD_LETTERS.labels(region)
    RECORDER_PENDING.labels(region)
    RECORDER_HELD.labels(region)


def control_ready(region: str) -> None:
    for outcome in PUT_OUTCOMES:
        CONTROL_PUTS.labels(region, outcome)
    CONTROL_ROLLBACKS.labels(region)
    CONTROL_RELOAD_FAILURES.labels(region)
