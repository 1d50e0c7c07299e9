"""Automatic redrive (SPEC 8a, issue 23): once a transport answers again, the serving process republishes that
transport's pending publisher dead letters by itself, without anyone running `dailyfeed restore-publisher`.

Every `redrive.interval-s` a thread looks at each transport in use:
- does it answer? Its breaker is not open (half-open lets the pass's first publish be the breaker's trial), and for
  Kafka the broker answers a metadata request. While it does not, nothing is read from the store.
- is there something to redrive? A pending dead letter of its collection (`kafka_publisher_dead_letters` or
  `feign_dead_letters`) that fewer than `redrive.max-passes` redrive passes have failed; one that many failed is left
  pending for a person (the console and `dailyfeed deadletters` show it; its `redrive_passes` says why). The store
  is asked only when there may be some (on FerretDB v1 the question reads the whole collection): at the first look,
  when the transport answers again after it did not, when this process kept a failure since the last look, after a
  pass that failed (at its delay), and otherwise every RESCAN_EVERY intervals (what another process kept).
- then one pass: the restore job of `restore-publisher` (republish mode) limited to that collection, at most
  `redrive.rate` dead letters a second. A pass that failed any dead letter doubles the wait before the next pass of
  that transport (interval-s, 2x, 4x, ... at most `redrive.backoff-max-s`); a clean one, or the transport coming back
  after it was down, resets it.

Two serving processes redriving at once never deliver a dead letter twice: the job claims each one before
publishing it (dailyfeed.deadletters.claims), so each is republished by one process and completed once.

Each pass is counted (`dailyfeed_redrive_passes_total`, and the dead letters it settled under
`dailyfeed_restore_dead_letters_total{job="redrive"}`), logged, and handed to every callback in `on_pass` (a
`RedrivePass`): the hook an audit trail subscribes to (`redriver.on_pass.append(...)`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

from ..config import Settings
from ..deadletters import PUBLISHER_COLLECTIONS, DeadLetterStore, Selection, audit
from ..events import utcnow
from ..telemetry import metrics
from ..transport.base import Transport
from .jobs import Outcome, Pacer, PublisherRestore, RecordResult, RestoreOptions, Summary

log = logging.getLogger(__name__)

KAFKA_CHECK_S = 2.0  # how long a redrive waits for the broker's answer to a metadata request
RESCAN_EVERY = 20  # intervals between looks for work that nothing in this process announced
REDRIVE_PASSES_FIELD = "redrive_passes"  # on a dead letter: redrive passes that failed it


@dataclass(frozen=True)
class RedriveOptions:
    interval_s: float = 15.0
    rate: float = 20.0
    backoff_max_s: float = 600.0
    max_passes: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> "RedriveOptions":
        return cls(
            interval_s=settings["redrive.interval-s"],
            rate=settings["redrive.rate"],
            backoff_max_s=settings["redrive.backoff-max-s"],
            max_passes=settings["redrive.max-passes"],
        )

    def delay_after(self, failed_passes: int) -> float:
        """The wait before the next pass after `failed_passes` failing passes in a row (0: the interval)."""
        return min(self.interval_s * 2**failed_passes, self.backoff_max_s)


@dataclass(frozen=True)
class RedrivePass:
    """What one redrive pass did: the record an audit trail keeps."""

    transport: str
    collection: str
    started_at: datetime
    seconds: float
    summary: Summary
    results: tuple[RecordResult, ...]
    next_pass_in_s: float


class RedriveStopped(Exception):
    """The process is stopping: the pass ends here and gives back what it holds."""


class RedriveJob(PublisherRestore):
    """`restore-publisher --mode republish` on one collection, leaving alone the dead letters that `max_passes`
    redrive passes failed, and counting on each dead letter the passes that failed it."""

    name = "redrive"

    def __init__(
        self,
        dead_letters: DeadLetterStore,
        transports: Mapping[Any, Transport],
        collection: str,
        options: RedriveOptions,
        stopping: Callable[[], bool],
    ):
        restore = RestoreOptions(
            batch_size=max(1, min(50, int(options.rate))),
            rate=options.rate,
            selection=Selection(collections=(collection,)),
        )
        super().__init__(dead_letters, transports, restore, pacer=Pacer(options.rate))
        self.collections = (collection,)
        self.max_passes = options.max_passes
        self._stopping = stopping

    def redrivable(self, candidate: Mapping[str, Any]) -> bool:
        return candidate.get(REDRIVE_PASSES_FIELD, 0) < self.max_passes

    def has_work(self) -> bool:
        """A pending dead letter that may still be redriven (whether another restore holds it, claiming tells);
        reads candidates a batch at a time until one is found."""
        after = None
        collection = self.collections[0]
        while True:
            batch = self.dead_letters.candidates(collection, self.options.selection, after=after, limit=100)
            if any(self.redrivable(doc) for doc in batch):
                return True
            if len(batch) < 100:
                return False
            after = (batch[-1]["created_at"], batch[-1]["_id"])

    def _not_now(self, candidate: Mapping[str, Any]) -> str | None:
        if self._stopping():
            raise RedriveStopped()
        if not self.redrivable(candidate):
            return (
                f"left pending for a person: {candidate.get(REDRIVE_PASSES_FIELD)} redrive passes failed it "
                f"(redrive.max-passes = {self.max_passes})"
            )
        return super()._not_now(candidate)

    def _publish(self, collection: str, doc: dict[str, Any], event: Any) -> RecordResult | str:
        result = super()._publish(collection, doc, event)
        if isinstance(result, RecordResult) and result.outcome is Outcome.FAILED:
            self.dead_letters.db[collection].update_one({"_id": doc["_id"]}, {"$inc": {REDRIVE_PASSES_FIELD: 1}})
            if doc.get(REDRIVE_PASSES_FIELD, 0) + 1 >= self.max_passes:
                log.warning(
                    "redrive: %s failed %d redrive passes; left pending for a person (%s)",
                    doc["message_key"],
                    self.max_passes,
                    result.detail,
                )
        return result


@dataclass
class _TransportState:
    transport: Transport
    collection: str
    down: bool = False
    failed_passes: int = 0
    next_at: float = 0.0  # by the clock: no pass before it
    kept_seen: int = -1  # the dead-letter store's `kept` at the last look for work (-1: never looked)
    rescan_at: float = 0.0  # by the clock: look for work then even if nothing announced any


class Redriver:
    """The serving process's redrive thread; `run_once()` is one look at every transport (what the thread does
    every interval), for tests and for callers that drive it themselves."""

    component = "redrive"

    def __init__(
        self,
        dead_letters: DeadLetterStore,
        transports: Mapping[Any, Transport],
        options: RedriveOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.dead_letters = dead_letters
        self.transports = transports
        self.options = options or RedriveOptions()
        self.on_pass: list[Callable[[RedrivePass], None]] = []  # e.g. the audit trail's recorder
        self._clock = clock
        self._states: dict[str, _TransportState] = {}
        for transport in transports.values():
            kind = str(transport.kind)
            self._states.setdefault(kind, _TransportState(transport, PUBLISHER_COLLECTIONS[transport.kind]))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        metrics.declare_redrive(self._states)

    @classmethod
    def from_container(cls, container: Any) -> "Redriver":
        return cls(container.dead_letters, container.transports, RedriveOptions.from_settings(container.settings))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dailyfeed-redrive", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.options.interval_s):
            try:
                self.run_once()
            except Exception:  # the store failing, say: the next look tries again
                log.exception("redrive: a look at the transports failed")

    def run_once(self) -> list[RedrivePass]:
        done = []
        for kind, state in self._states.items():
            if self._stop.is_set():
                break
            report = self._look(kind, state)
            if report is not None:
                done.append(report)
        return done

    def _look(self, kind: str, state: _TransportState) -> RedrivePass | None:
        if self._clock() < state.next_at:
            return None
        reason = _not_answering(state.transport)
        if reason is not None:
            if not state.down:
                log.info("redrive: the %s transport does not answer (%s); waiting for it", kind, reason)
            state.down = True
            return None
        recovered = state.down
        if recovered:
            log.info("redrive: the %s transport answers again", kind)
            state.down, state.failed_passes = False, 0
        now, kept = self._clock(), self.dead_letters.kept
        if not (recovered or state.failed_passes or kept != state.kept_seen or now >= state.rescan_at):
            return None
        state.kept_seen, state.rescan_at = kept, now + self.options.interval_s * RESCAN_EVERY
        job = RedriveJob(self.dead_letters, self.transports, state.collection, self.options, self._stop.is_set)
        if not job.has_work():
            state.failed_passes = 0  # nothing left that may fail: the next pass starts without a delay
            return None
        return self._pass(kind, state, job)

    def _pass(self, kind: str, state: _TransportState, job: RedriveJob) -> RedrivePass:
        started_at, started = utcnow(), time.monotonic()
        results: list[RecordResult] = []
        summary = Summary()
        log.info(
            "redrive: republishing the pending dead letters of %s (at most %g a second)",
            state.collection,
            self.options.rate,
        )
        try:
            job.run(report=results.append, summary=summary)
        except RedriveStopped:
            log.info("redrive: stopped during a pass of %s; what it held is given back", state.collection)
        if summary.failed:
            state.failed_passes += 1
        else:
            state.failed_passes = 0
        delay = self.options.delay_after(state.failed_passes)
        state.next_at = self._clock() + (delay if summary.failed else 0.0)
        outcome = "failed" if summary.failed else "delivered"
        metrics.redrive_pass(kind, outcome)
        (log.warning if summary.failed else log.info)(
            "redrive of %s: %s%s",
            state.collection,
            summary.line(),
            f"; next pass in {delay:.0f} s" if summary.failed else "",
        )
        report = RedrivePass(
            transport=kind,
            collection=state.collection,
            started_at=started_at,
            seconds=time.monotonic() - started,
            summary=summary,
            results=tuple(results),
            next_pass_in_s=delay if summary.failed else 0.0,
        )
        for callback in list(self.on_pass):
            try:
                callback(report)
            except Exception:
                log.exception("redrive: a pass callback failed")
        return report


def audit_passes(db: Any) -> Callable[[RedrivePass], None]:
    """An `on_pass` callback that records each redrive pass in the dead-letter audit trail, as the actor "redrive":
    what a person sees there includes the dead letters no one asked to restore."""

    def record(done: RedrivePass) -> None:
        audit.record(
            db,
            actor="redrive",
            action="redrive",
            via="redrive",
            outcome="failed" if done.summary.failed else "done",
            selection=Selection(collections=(done.collection,)),
            result_count=done.summary.restored,
            detail=f"{done.transport} transport: {done.summary.line()}",
        )

    return record


def _not_answering(transport: Transport) -> str | None:
    """Why the transport would not take a publish now, or None when it would (or may: half-open is a trial)."""
    breaker = getattr(transport, "breaker", None)
    if breaker is not None and breaker.state == breaker.OPEN:
        return "circuit breaker open"
    check = getattr(transport, "check_connected", None)
    if check is not None:
        try:
            check(KAFKA_CHECK_S)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
    return None
