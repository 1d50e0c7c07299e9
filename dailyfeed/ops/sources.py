"""What the state metrics read, cached so that scraping stays cheap.

- Dead letters: counts by collection and status and the oldest pending, read by `read_dead_letter_stats`: one
  query per collection that streams only `status` and `created_at` of each document, counted here. Not
  `DeadLetterStore.stats()`: it sends a count per collection, status and category (up to 28 per collection) plus
  a sorted find, and on FerretDB v1 each of them scans the collection: 2,000 dead letters took 33 s on the loaded
  2-core machine (bench/metrics_cost.py), where one pass per collection took 8-15 s for 10,000 (on FerretDB v1
  even a count or an estimated count reads every document). Too long for a scrape, and too costly to repeat
  often: `DeadLetterStatsCache` reads in a thread of its own when scraped and the last read is older than
  `metrics.deadletters-cache-s`, and never sooner than READ_SPACING times the last read's duration after it (the
  store spends at most a tenth of its time on these reads, however large the dead-letter collections grow); one
  read at a time. A scrape waits for a read at most `wait_s` (2 s), then shows the last one (its time is a metric
  of its own). No scrapes, no reads.
- Consumer lag: `transport.lag.read_consumer_lag` (the group's high watermark minus committed offset, from
  outside the listener), read in a background thread every `metrics.lag-interval-s`, so a scrape never waits on
  Kafka. The thread starts with the first scrape; before it, the first read is made at once (`listen
  --metrics-port` makes it before its listener starts, so its first scrape shows what was waiting). The dead-letter
  console shows the same reads (with the latest failure's reason), so a page never waits on Kafka either.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable

from ..deadletters import DeadLetterStats, Status
from ..events import as_utc
from ..telemetry import metrics

log = logging.getLogger(__name__)


def read_dead_letter_stats(db: Any, collections: Iterable[str]) -> DeadLetterStats:
    """Counts by collection and status, and the oldest pending dead letter of each collection: one read of each
    collection (its documents' status and created_at only)."""
    counts: dict[str, dict[str, dict[str | None, int]]] = {}
    oldest: dict[str, datetime | None] = {}
    pending = Status.PENDING.value
    for name in collections:
        by_status: dict[str, int] = {}
        first: datetime | None = None
        for doc in db[name].find({}, {"_id": 0, "status": 1, "created_at": 1}):
            status = doc.get("status")
            by_status[status] = by_status.get(status, 0) + 1
            if status == pending:
                created = as_utc(doc.get("created_at"))
                if created is not None and (first is None or created < first):
                    first = created
        counts[name] = {status: {None: n} for status, n in by_status.items()}
        oldest[name] = first
    return DeadLetterStats(counts=counts, oldest_pending=oldest)


READ_SPACING = 9.0  # after a read that took d seconds, the next starts no sooner than 9 d later


class DeadLetterStatsCache:
    def __init__(
        self,
        read: Callable[[], Any],
        ttl_s: float,
        *,
        wait_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        source: str = "dead_letters",
    ):
        self._read = read
        self.source = source  # what it reads, as counted by dailyfeed_metrics_source_errors (also: outbox)
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self._clock = clock
        self._lock = threading.Lock()
        self._stats: Any = None
        self._read_at = 0.0  # by `clock`, when the last read ended
        self._took = 0.0  # how long the last read took
        self.read_time: float | None = None  # Unix time of the last successful read
        self._reading: threading.Event | None = None

    def get(self) -> Any:
        """The stats: cached while younger than the TTL; otherwise a read is started (unless one runs) and awaited
        at most `wait_s`, after which the last read is returned. None when the last read failed (or none is done)."""
        with self._lock:
            age = self._clock() - self._read_at
            if self._stats is not None and age < max(self.ttl_s, READ_SPACING * self._took):
                return self._stats
            if self._reading is None:
                self._reading = threading.Event()
                threading.Thread(
                    target=self._refresh, args=(self._reading,), name="dailyfeed-dead-letter-stats", daemon=True
                ).start()
            reading = self._reading
        reading.wait(self.wait_s)
        with self._lock:
            return self._stats

    def expire(self) -> None:
        """Make the next `get` read (as if the TTL and the spacing had passed)."""
        with self._lock:
            self._read_at, self._took = float("-inf"), 0.0

    @property
    def reading(self) -> bool:
        """A read is under way."""
        return self._reading is not None

    def _refresh(self, done: threading.Event) -> None:
        started = self._clock()
        try:
            stats = self._read()
        except Exception as exc:
            metrics.source_failed(self.source)
            log.warning("metrics: could not read the %s stats (%s: %s)", self.source, type(exc).__name__, exc)
            stats = None
        with self._lock:
            self._stats, self._read_at = stats, self._clock()
            self._took = self._read_at - started
            if stats is not None:
                self.read_time = time.time()
            self._reading = None
        done.set()


@dataclass(frozen=True)
class LagReading:
    """The last lag read that worked (its partitions, Unix time), and why and when the latest read failed if it
    did (both None once a read worked again)."""

    partitions: list
    read_at: float | None
    error: str | None = None
    failed_at: float | None = None


class LagMonitor:
    def __init__(
        self, read: Callable[[], list], interval_s: float, on_start: Callable[["LagMonitor"], None] | None = None
    ):
        self._read = read
        self._on_start = on_start  # e.g. register with the container, which stops it on close
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._first = threading.Lock()
        self._lags: list = []
        self._read_at: float | None = None
        self._error: str | None = None
        self._failed_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Read the lag now; False (and the last read kept) when Kafka did not answer."""
        try:
            lags = self._read()
        except Exception as exc:
            metrics.source_failed("consumer_lag")
            log.warning("metrics: could not read the consumer lag (%s: %s)", type(exc).__name__, exc)
            with self._lock:
                self._error, self._failed_at = str(exc) or type(exc).__name__, time.time()
            return False
        with self._lock:
            self._lags, self._read_at, self._error, self._failed_at = lags, time.time(), None, None
        return True

    def snapshot(self) -> tuple[list, float | None]:
        """The last read (partition lags, Unix time of the read); starts the background reads on first use."""
        reading = self.reading()
        return reading.partitions, reading.read_at

    def reading(self) -> LagReading:
        """The last read and the latest failure; starts the background reads on first use."""
        with self._first:
            if self._read_at is None and self._thread is None:
                self.refresh()
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="dailyfeed-lag-monitor", daemon=True)
                self._thread.start()
                if self._on_start is not None:
                    self._on_start(self)
        with self._lock:
            return LagReading(list(self._lags), self._read_at, self._error, self._failed_at)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=15)
