"""What the state metrics read, cached so that scraping stays cheap.

- Dead letters: `DeadLetterStore.stats()` (counts by collection, status and category; the oldest pending), read at
  most once per `metrics.deadletters-cache-s` however many scrapes come (on FerretDB v1 every count scans).
- Consumer lag: `transport.lag.read_consumer_lag` (the group's high watermark minus committed offset, from
  outside the listener), read in a background thread every `metrics.lag-interval-s`, so a scrape never waits on
  Kafka. The thread starts with the first scrape; before it, the first read is made at once (`listen
  --metrics-port` makes it before its listener starts, so its first scrape shows what was waiting).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from . import metrics

log = logging.getLogger(__name__)


class DeadLetterStatsCache:
    def __init__(self, read: Callable[[], Any], ttl_s: float, clock: Callable[[], float] = time.monotonic):
        self._read = read
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._stats: Any = None
        self._read_at = 0.0

    def get(self) -> Any:
        """The stats, read now when the cached ones are older than the TTL; None when the store did not answer."""
        with self._lock:  # concurrent scrapes share one read
            if self._stats is not None and self._clock() - self._read_at < self.ttl_s:
                return self._stats
            try:
                stats = self._read()
            except Exception as exc:
                metrics.source_failed("dead_letters")
                log.warning("metrics: could not read the dead-letter stats (%s: %s)", type(exc).__name__, exc)
                self._stats = None
                return None
            self._stats, self._read_at = stats, self._clock()
            return stats


class LagMonitor:
    def __init__(self, read: Callable[[], list], interval_s: float,
                 on_start: Callable[["LagMonitor"], None] | None = None):
        self._read = read
        self._on_start = on_start  # e.g. register with the container, which stops it on close
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._first = threading.Lock()
        self._lags: list = []
        self._read_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Read the lag now; False (and the last read kept) when Kafka did not answer."""
        try:
            lags = self._read()
        except Exception as exc:
            metrics.source_failed("consumer_lag")
            log.warning("metrics: could not read the consumer lag (%s: %s)", type(exc).__name__, exc)
            return False
        with self._lock:
            self._lags, self._read_at = lags, time.time()
        return True

    def snapshot(self) -> tuple[list, float | None]:
        """The last read (partition lags, Unix time of the read); starts the background reads on first use."""
        with self._first:
            if self._read_at is None and self._thread is None:
                self.refresh()
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="dailyfeed-lag-monitor", daemon=True)
                self._thread.start()
                if self._on_start is not None:
                    self._on_start(self)
        with self._lock:
            return list(self._lags), self._read_at

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=15)
