"""Every metric of dailyfeed, declared here and nowhere else (the README's "Operating it" lists them), and the small
calls the code paths make into them.

Prometheus conventions: the `dailyfeed_` prefix, counters end in `_total` (prometheus_client adds it), base units
(seconds), label values from small fixed sets (services, transports, outcomes, collections, statuses; the lag's
topic and partition are bounded by the retention's days times the partitions).

Two kinds:
- events counted where they happen (requests, publishes, the listener, restores): process-wide objects on
  prometheus_client's default registry, incremented by the functions below; each costs a dict lookup and a locked
  add, and nothing at all with `metrics.enabled = false` (`set_enabled`);
- state read when scraped (circuit breakers, dead letters, consumer lag): `StateCollector`, bound to one app's
  container, reading through the caches of dailyfeed.ops.sources so a scrape never reads the store more than once
  per cache period nor waits on Kafka.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric

# The `_created` series of every counter would double the exposition for a timestamp nobody queries here.
disable_created_metrics()

_enabled = True


def set_enabled(enabled: bool) -> None:
    """Count or not (setting metrics.enabled; process-wide, like the default registry the counters live on)."""
    global _enabled
    _enabled = bool(enabled)


def enabled() -> bool:
    return _enabled


# --- HTTP ------------------------------------------------------------------------------------------------------

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: The `method` label's values: any other method a client sends is counted as `other` (a label per method sent
#: would let one client grow /metrics without bound).
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
OTHER_METHOD = "other"

HTTP_REQUESTS = Counter(
    "dailyfeed_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "dailyfeed_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)

# --- publishing (the content side) -----------------------------------------------------------------------------

DELIVERED, DEAD_LETTERED, UNDONE = "delivered", "dead_lettered", "undone"
PUBLISH_OUTCOMES = (DELIVERED, DEAD_LETTERED, UNDONE)

PUBLISHES = Counter(
    "dailyfeed_publishes",
    "Activity events published by the content side, by service, transport and outcome: delivered, "
    "dead_lettered (kept for a restore) or undone (neither: the write was undone and answered 503).",
    ["service", "transport", "outcome"],
)
PUBLISH_DURATION = Histogram(
    "dailyfeed_publish_duration_seconds",
    "Time a publish took until delivered or failed (dead letter not included), by transport.",
    ["transport"],
    buckets=_LATENCY_BUCKETS,
)

# --- the Kafka listener ----------------------------------------------------------------------------------------

LISTENER_CONSUMED = Counter(
    "dailyfeed_listener_records_consumed", "Records the listener polled (again after a rewind)."
)
LISTENER_STORED = Counter("dailyfeed_listener_activities_stored", "Activities the listener stored for the first time.")
LISTENER_DUPLICATES = Counter(
    "dailyfeed_listener_duplicates",
    "Records whose message key was stored already (redeliveries): nothing stored twice.",
)
LISTENER_DEAD_LETTERS = Counter(
    "dailyfeed_listener_dead_letters",
    "Records kept as listener dead letters, by reason: poison (cannot be parsed) or "
    "store_failed (storing failed after the retries).",
    ["reason"],
)
LISTENER_BATCHES = Counter(
    "dailyfeed_listener_batches",
    "Batches handled, by outcome: committed, not-committed (commit failed: redelivered), "
    "rewound (a dead letter could not be stored), abandoned (stopped while retrying).",
    ["outcome"],
)
LISTENER_STORE_RETRIES = Counter("dailyfeed_listener_store_retries", "Retries of a failed batch store.")
LISTENER_COMMIT_DURATION = Histogram(
    "dailyfeed_listener_commit_duration_seconds", "Time an offset commit took.", buckets=_LATENCY_BUCKETS
)
LISTENER_BATCH_OUTCOMES = ("committed", "not-committed", "rewound", "abandoned")

# --- dead letters kept ----------------------------------------------------------------------------------------

DEAD_LETTERS_KEPT = Counter(
    "dailyfeed_dead_letters_kept",
    "Failures kept as dead letters (a new dead letter, or a new attempt on one), by collection "
    "and error type (the exception's class name: a few values, so a new one stands out).",
    ["collection", "error_type"],
)

# --- restores --------------------------------------------------------------------------------------------------

RESTORED_DEAD_LETTERS = Counter(
    "dailyfeed_restore_dead_letters",
    "Dead letters a restore settled, by job (publisher, listener) and outcome (restored, skipped, failed).",
    ["job", "outcome"],
)
RESTORE_PASSES = Counter("dailyfeed_restore_passes", "Restore passes run, by job.", ["job"])
RESTORE_OUTCOMES = ("restored", "skipped", "failed")
TASKS_ENDED = Counter(
    "dailyfeed_deadletter_tasks_ended",
    "Dead-letter tasks that ended, by action (replay, discard, requeue, undiscard) and state "
    "(completed, cancelled, failed).",
    ["action", "state"],
)
REDRIVE_PASSES = Counter(
    "dailyfeed_redrive_passes",
    "Automatic redrive passes a serving process ran once a transport answered again, by transport "
    "and outcome: delivered (nothing failed) or failed (some dead letter failed: the next pass "
    "waits longer). The dead letters they settled: dailyfeed_restore_dead_letters_total"
    '{job="redrive"}.',
    ["transport", "outcome"],
)
REDRIVE_OUTCOMES = ("delivered", "failed")

# --- the publication relay (crash-safe publishing) -------------------------------------------------------------

RELAY_OUTCOMES = ("delivered", "dead_lettered", "dropped", "left")
RELAYED_PUBLICATIONS = Counter(
    "dailyfeed_outbox_relayed",
    "Owed events a relay settled, by outcome: delivered, dead_lettered, dropped (its change "
    "never landed) or left (neither delivered nor kept: owed for the next pass).",
    ["outcome"],
)
for _outcome in RELAY_OUTCOMES:
    RELAYED_PUBLICATIONS.labels(_outcome)

# --- the metrics' own reads ------------------------------------------------------------------------------------

SOURCE_ERRORS = Counter(
    "dailyfeed_metrics_source_errors",
    "Reads for the metrics that failed, by source (dead_letters, outbox, consumer_lag): the "
    "series of that source are left out of the scrape (dead letters, outbox) or keep their last "
    "read (lag).",
    ["source"],
)
for _source in ("dead_letters", "outbox", "consumer_lag"):
    SOURCE_ERRORS.labels(_source)

# --- read when scraped (StateCollector) ------------------------------------------------------------------------

BREAKER_STATE = "dailyfeed_circuit_breaker_state"
BREAKER_STATES = ("closed", "half-open", "open")
DEAD_LETTERS = "dailyfeed_dead_letters"
DEAD_LETTERS_OLDEST = "dailyfeed_dead_letters_oldest_pending_age_seconds"
DEAD_LETTERS_READ_AT = "dailyfeed_dead_letters_read_timestamp_seconds"
OUTBOX_OWED = "dailyfeed_outbox_publications"
OUTBOX_OLDEST = "dailyfeed_outbox_oldest_age_seconds"
CONSUMER_LAG = "dailyfeed_listener_consumer_lag"
CONSUMER_LAG_SECONDS = "dailyfeed_listener_consumer_lag_seconds"
WORKER_UP = "dailyfeed_worker_up"
CONSUMER_LAG_READ_AT = "dailyfeed_listener_consumer_lag_read_timestamp_seconds"


# --- the calls the code paths make -----------------------------------------------------------------------------

# The children of the per-request metrics by label values: `.labels()` validates and takes a lock on every call; a
# plain dict read does not (label values come from small fixed sets, so these stay small: request_done folds the
# method, the only label a client spells).
_request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_publish_children: dict[tuple[Any, Any, str], tuple[Any, Any]] = {}


def request_done(route: str, method: str, status: int, seconds: float) -> None:
    """`route` is the matched rule's template (or a fixed word), `method` as the client sent it (folded here)."""
    if _enabled:
        if method not in HTTP_METHODS:
            method = OTHER_METHOD
        children = _request_children.get((route, method, status))
        if children is None:
            children = _request_children[route, method, status] = (
                HTTP_REQUESTS.labels(route, method, str(status)),
                HTTP_DURATION.labels(route, method),
            )
        children[0].inc()
        children[1].observe(seconds)


def published(service: Any, transport: Any, outcome: str, seconds: float | None = None) -> None:
    if _enabled:
        children = _publish_children.get((service, transport, outcome))
        if children is None:
            children = _publish_children[service, transport, outcome] = (
                PUBLISHES.labels(str(service), str(transport), outcome),
                PUBLISH_DURATION.labels(str(transport)),
            )
        children[0].inc()
        if seconds is not None:
            children[1].observe(seconds)


def listener_polled(records: int) -> None:
    if _enabled:
        LISTENER_CONSUMED.inc(records)


def listener_stored(new: int, duplicates: int) -> None:
    if _enabled:
        LISTENER_STORED.inc(new)
        LISTENER_DUPLICATES.inc(duplicates)


def listener_dead_lettered(reason: str, count: int = 1) -> None:
    if _enabled:
        LISTENER_DEAD_LETTERS.labels(reason).inc(count)


def listener_batch(outcome: str) -> None:
    if _enabled:
        LISTENER_BATCHES.labels(outcome).inc()


def listener_store_retry() -> None:
    if _enabled:
        LISTENER_STORE_RETRIES.inc()


def listener_committed(seconds: float) -> None:
    if _enabled:
        LISTENER_COMMIT_DURATION.observe(seconds)


def dead_letter_kept(collection: str, error_type: str) -> None:
    if _enabled:
        DEAD_LETTERS_KEPT.labels(collection, error_type[:80]).inc()


def restore_settled(job: str, outcome: str) -> None:
    if _enabled:
        RESTORED_DEAD_LETTERS.labels(job, outcome).inc()


def restore_pass(job: str) -> None:
    if _enabled:
        RESTORE_PASSES.labels(job).inc()


def task_ended(action: str, state: str) -> None:
    if _enabled:
        TASKS_ENDED.labels(action, state).inc()


def redrive_pass(transport: str, outcome: str) -> None:
    if _enabled:
        REDRIVE_PASSES.labels(transport, outcome).inc()


def relayed(outcome: str) -> None:
    if _enabled:
        RELAYED_PUBLICATIONS.labels(outcome).inc()


def source_failed(source: str) -> None:
    SOURCE_ERRORS.labels(source).inc()


def declare_publishes(pairs: Iterable[tuple[Any, Any]]) -> None:
    """Show the publish series of the configured (service, transport) pairs at 0 from the start, so that a rate
    over them exists before the first failure."""
    for service, transport in pairs:
        for outcome in PUBLISH_OUTCOMES:
            PUBLISHES.labels(str(service), str(transport), outcome)


def declare_listener() -> None:
    for outcome in LISTENER_BATCH_OUTCOMES:
        LISTENER_BATCHES.labels(outcome)
    for reason in ("poison", "store_failed"):
        LISTENER_DEAD_LETTERS.labels(reason)


def declare_restore(job: str) -> None:
    RESTORE_PASSES.labels(job)
    for outcome in RESTORE_OUTCOMES:
        RESTORED_DEAD_LETTERS.labels(job, outcome)


def declare_redrive(transports: Iterable[str]) -> None:
    declare_restore("redrive")
    for transport in transports:
        for outcome in REDRIVE_OUTCOMES:
            REDRIVE_PASSES.labels(str(transport), outcome)


# --- state read when scraped -----------------------------------------------------------------------------------


class StateCollector:
    """The state of one app's container: its transports' breakers, its dead letters and, when it uses Kafka, the
    listener group's lag. `dead_letters` and `lag` are the caches of dailyfeed.ops.sources (or None)."""

    def __init__(
        self,
        transports: Iterable[Any],
        dead_letters: Any = None,
        lag: Any = None,
        collections: Iterable[str] = (),
        statuses: Iterable[str] = (),
        publications: Any = None,
        workers: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None,
    ):
        self.workers = workers  # the background workers' liveness by name (what /healthz shows), e.g. the listener
        self.transports = list(transports)
        self.dead_letters = dead_letters
        self.publications = publications  # a cache of the publication registry's stats (or None: registry off)
        self.lag = lag
        self.collections = tuple(collections)
        self.statuses = tuple(statuses)

    def collect(self) -> Iterator[Metric]:
        yield self._breakers()
        if self.workers is not None:
            yield self._workers()
        if self.dead_letters is not None:
            yield from self._dead_letters()
        if self.publications is not None:
            yield from self._publications()
        if self.lag is not None:
            yield from self._lag()

    def _breakers(self) -> Metric:
        family = GaugeMetricFamily(
            BREAKER_STATE,
            "Circuit breaker of each transport in use: 1 for its current state "
            "(closed, half-open, open), 0 for the others.",
            labels=["transport", "state"],
        )
        seen = set()
        for transport in self.transports:
            breaker = getattr(transport, "breaker", None)
            kind = str(transport.kind)
            if breaker is None or kind in seen:
                continue
            seen.add(kind)
            current = breaker.state
            for state in BREAKER_STATES:
                family.add_metric([kind, state], 1.0 if state == current else 0.0)
        return family

    def _workers(self) -> Metric:
        family = GaugeMetricFamily(
            WORKER_UP,
            "1 while a background worker of this process is alive and not stuck "
            "(its /healthz component is UP: for the listener, a poll within "
            "kafka.consumer.poll-ttl-s and no batch in hand longer than consume-ttl-s), else 0.",
            labels=["worker"],
        )
        for name, report in self.workers().items():
            family.add_metric([name], 1.0 if report.get("status") == "UP" else 0.0)
        return family

    def _dead_letters(self) -> Iterator[Metric]:
        stats = self.dead_letters.get()
        if stats is None:  # the store did not answer: no numbers rather than wrong ones (see SOURCE_ERRORS)
            return
        counts = GaugeMetricFamily(
            DEAD_LETTERS,
            "Dead letters stored, by collection and status (read from the store "
            "at most once per metrics.deadletters-cache-s, in the background).",
            labels=["collection", "status"],
        )
        oldest = GaugeMetricFamily(
            DEAD_LETTERS_OLDEST,
            "Age of the oldest pending dead letter of each collection (0 when none is pending).",
            labels=["collection"],
        )
        now = datetime.now(timezone.utc)
        for collection in self.collections:
            for status in self.statuses:
                counts.add_metric([collection, status], float(stats.total(collection, status)))
            first = stats.oldest_pending.get(collection)
            oldest.add_metric([collection], max(0.0, (now - first).total_seconds()) if first else 0.0)
        yield counts
        yield oldest
        if self.dead_letters.read_time is not None:
            yield GaugeMetricFamily(
                DEAD_LETTERS_READ_AT,
                "When the dead-letter counts shown were read from the store (Unix time).",
                value=self.dead_letters.read_time,
            )

    def _publications(self) -> Iterator[Metric]:
        stats = self.publications.get()
        if stats is None:  # the store did not answer (SOURCE_ERRORS counts it)
            return
        yield GaugeMetricFamily(
            OUTBOX_OWED,
            "Events owed by stored content changes and not yet published "
            "(the publication registry; read at most once per metrics.deadletters-cache-s).",
            value=float(stats.outstanding),
        )
        yield GaugeMetricFamily(
            OUTBOX_OLDEST,
            "Age of the oldest owed event (0 when none): past outbox.grace-s it waits for a relay.",
            value=stats.oldest_age_s(datetime.now(timezone.utc)),
        )

    def _lag(self) -> Iterator[Metric]:
        lags, read_at = self.lag.snapshot()
        if read_at is None:
            return
        family = GaugeMetricFamily(
            CONSUMER_LAG,
            "Records waiting for the listener's consumer group on each date topic "
            "partition: the high watermark minus the committed offset (from the oldest kept "
            "when the group never committed).",
            labels=["topic", "partition"],
        )
        seconds = GaugeMetricFamily(
            CONSUMER_LAG_SECONDS,
            "How old the oldest record waiting for the listener's "
            "group is on each date topic partition (its producer timestamp, read with the "
            "offsets; it grows between reads while nothing is consumed), 0 when none waits.",
            labels=["topic", "partition"],
        )
        now = time.time()
        for item in lags:
            family.add_metric([item.topic, str(item.partition)], float(item.lag))
            seconds.add_metric([item.topic, str(item.partition)], round(item.lag_seconds(now), 3))
        yield family
        yield seconds
        yield GaugeMetricFamily(
            CONSUMER_LAG_READ_AT, "When the consumer lag was last read from Kafka (Unix time).", value=read_at
        )


class _Chain:
    """A collector yielding what other collectors yield."""

    def __init__(self, *collectors: Any):
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def registry_for(state: StateCollector) -> CollectorRegistry:
    """What one app exposes: the process-wide metrics (with the process and Python collectors) and its state."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Chain(REGISTRY, state))
    return registry
