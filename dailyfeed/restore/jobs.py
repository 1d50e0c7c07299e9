"""The restore jobs of SPEC section 8, without click: `restore-publisher` and `restore-listener`.

A pass walks the pending dead letters oldest first (a keyset cursor per collection, so a dead letter given back
during the pass is not taken again in the same pass), a batch at a time, and claims them before working on them.
Only what was processed is marked completed; a dead letter with no event to be had is marked failed with the
reason; a transport or store failure gives it back, still pending, with attempts + 1. Whatever the pass still
holds when it stops (finished, crashed, interrupted) it gives back.

A batch costs a few round trips, not a few per dead letter: one read of the candidates (per collection), one
insert of their claims and one read checking them (claims are documents of their own: claiming writes no dead
letter), then one bulk insert of the activities (restore-listener) or of the copies (handoff), and one update
completing them with one delete of their claims (updates of at most deadletters.MAX_UPDATE dead letters each). The
completion is the only write a restored dead letter costs. Republishing still sends one event at a time (a
transport has no batch); its completions are batched. The rare paths (a dead letter marked failed, a transport
failure) are written one dead letter at a time.

| outcome  | meaning                                                                                   |
|----------|-------------------------------------------------------------------------------------------|
| restored | delivered (republish), copied to the listener side (handoff) or stored (listener restore);  |
|          | an activity that was already recorded counts here: the upsert by message key is a no-op    |
| skipped  | not touched: another restore holds it, or its transport is down for the rest of this pass |
| failed   | marked failed (no event in it), or given back pending after a transport or store failure  |
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from itertools import islice
from typing import Any, Callable, Iterable, Mapping

from pymongo.errors import PyMongoError

from ..deadletters import (
    LISTENER_DEAD_LETTERS,
    PUBLISHER_DEAD_LETTERS,
    DeadLetterStore,
    Selection,
    dead_letter_event,
    new_claim_token,
)
from ..events import ActivityEvent, Category, InvalidEvent, as_utc, publishing_service
from ..store import KAFKA_LISTENER_DEAD_LETTERS
from ..telemetry import metrics
from ..transport.base import Transport, TransportError, TransportUnavailable

log = logging.getLogger(__name__)

#: a publisher restore stops using a service's transport for the rest of a pass after this many failures in a row
TRANSPORT_DOWN_AFTER = 3


class Outcome(str, Enum):
    RESTORED = "restored"
    SKIPPED = "skipped"
    FAILED = "failed"


class Mode(str, Enum):
    REPUBLISH = "republish"  # through the transport configured for the event's service
    HANDOFF = "handoff"  # into kafka_listener_dead_letters, as the original did


@dataclass(frozen=True)
class RecordResult:
    outcome: Outcome
    collection: str
    key: str
    detail: str = ""

    def line(self) -> str:
        """As a command prints it: outcome, key, collection and what happened."""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.outcome.value:<8} {self.key} [{self.collection}]{detail}"


@dataclass
class Summary:
    restored: int = 0
    skipped: int = 0
    failed: int = 0

    def add(self, result: RecordResult) -> None:
        setattr(self, result.outcome.value, getattr(self, result.outcome.value) + 1)

    def merge(self, other: "Summary") -> None:
        self.restored += other.restored
        self.skipped += other.skipped
        self.failed += other.failed

    @property
    def total(self) -> int:
        return self.restored + self.skipped + self.failed

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def line(self) -> str:
        return f"restored {self.restored}, skipped {self.skipped}, failed {self.failed}"


@dataclass(frozen=True)
class RestoreOptions:
    batch_size: int = 50
    limit: int | None = None  # dead letters taken per pass
    rate: float | None = None  # dead letters per second
    selection: Selection = field(default_factory=Selection)

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive")


class Pacer:
    """At most `rate` dead letters a second: a token bucket holding a single token, so no burst after a pause."""

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        if not self.interval:
            return
        now = self._clock()
        if self._next is not None and now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


Report = Callable[[RecordResult], None]
Emit = Callable[[Iterable[RecordResult]], None]


class RestoreJob:
    """One restore: `run()` is one pass over the pending dead letters, `preview()` the same pass read-only."""

    collections: tuple[str, ...] = ()
    name = ""  # the `job` label of its metrics

    def __init__(
        self, dead_letters: DeadLetterStore, options: RestoreOptions | None = None, *, pacer: Pacer | None = None
    ):
        self.dead_letters = dead_letters
        self.options = options or RestoreOptions()
        self.pacer = pacer or Pacer(self.options.rate)
        self.token = new_claim_token()  # this run's claims
        metrics.declare_restore(self.name)

    def pending(self) -> int:
        """How many dead letters a pass would take now (for a progress bar)."""
        count = self.dead_letters.count_claimable(self.collections, self.options.selection)
        return count if self.options.limit is None else min(count, self.options.limit)

    def run(self, report: Report | None = None, summary: Summary | None = None) -> Summary:
        """One pass. `summary` is updated as records are done, so an interrupted pass still has its counts."""
        summary = Summary() if summary is None else summary

        def emit(results: Iterable[RecordResult]) -> None:
            for result in results:
                summary.add(result)
                metrics.restore_settled(self.name, result.outcome.value)
                if report is not None:
                    report(result)

        limit = self.options.limit
        cursors: dict[str, tuple[Any, Any] | None] = dict.fromkeys(self.collections)
        taken = 0
        metrics.restore_pass(self.name)
        self._start_pass()
        try:
            while limit is None or taken < limit:
                candidates = self._next_candidates(cursors, self._batch_size(taken))
                if not candidates:
                    break
                wanted = []
                for collection, candidate in candidates:
                    cursors[collection] = (candidate["created_at"], candidate["_id"])
                    reason = self._not_now(candidate)
                    if reason:
                        emit([RecordResult(Outcome.SKIPPED, collection, _key(candidate), reason)])
                    else:
                        wanted.append((collection, candidate))
                batch = self._claim(wanted)
                held = {(collection, doc["_id"]) for collection, doc in batch}
                emit(
                    RecordResult(Outcome.SKIPPED, collection, _key(candidate), "taken by another restore")
                    for collection, candidate in wanted
                    if (collection, candidate["_id"]) not in held
                )
                taken += len(batch)
                self._handle(batch, emit)
        finally:
            try:
                self.dead_letters.release_all(self.token)
            except Exception as exc:  # the store is failing: the leases will run out instead
                log.warning("could not give back this run's claims (%s); they free up when their lease ends", exc)
        return summary

    def preview(self, report: Report | None = None) -> Summary:
        """What `run()` would do now, changing nothing: no claims, no marks, no deliveries."""
        summary = Summary()
        claimable = self.dead_letters.iter_claimable(self.collections, self.options.selection)
        for collection, doc in islice(claimable, self.options.limit):
            result = self._preview(collection, doc)
            summary.add(result)
            if report is not None:
                report(result)
        return summary

    # --- for subclasses ---------------------------------------------------------------------------------------

    def _start_pass(self) -> None:
        pass

    def _not_now(self, candidate: Mapping[str, Any]) -> str | None:
        """A reason to leave a candidate alone in this pass, without claiming it."""
        return None

    def _handle(self, batch: list[tuple[str, dict[str, Any]]], emit: Emit) -> None:
        """Restore a batch of claimed dead letters, oldest first; `emit` the result of each as it is settled (so
        that an interrupted batch still counts what it finished). Whatever it leaves held, the pass gives back."""
        raise NotImplementedError

    def _preview(self, collection: str, doc: dict[str, Any]) -> RecordResult:
        """What a --dry-run says of a dead letter: cannot be restored, or what restoring it would do."""
        try:
            event = dead_letter_event(doc)
        except InvalidEvent as exc:
            return RecordResult(Outcome.FAILED, collection, doc["message_key"], f"cannot be restored: {exc}")
        outcome, detail = self._plan(doc, event)
        return RecordResult(outcome, collection, doc["message_key"], detail)

    def _plan(self, doc: dict[str, Any], event: ActivityEvent) -> tuple[Outcome, str]:
        raise NotImplementedError

    # --- helpers ----------------------------------------------------------------------------------------------

    def _batch_size(self, taken: int) -> int:
        size = self.options.batch_size
        if self.options.rate:
            size = min(size, max(1, int(self.options.rate)))  # about a second of work: claims never go stale
        if self.options.limit is not None:
            size = min(size, self.options.limit - taken)
        return size

    def _next_candidates(self, cursors: dict[str, Any], size: int) -> list[tuple[str, dict[str, Any]]]:
        found = [
            (name, doc)
            for name in self.collections
            for doc in self.dead_letters.candidates(name, self.options.selection, after=cursors[name], limit=size)
        ]
        found.sort(key=lambda item: (as_utc(item[1]["created_at"]), item[1]["_id"]))
        return found[:size]

    def _claim(self, wanted: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        """Claim the candidates, a batch per collection: the claimed ones, in the candidates' order."""
        claimed = {}
        for collection, candidates in _by_collection(wanted).items():
            for doc in self.dead_letters.claim_batch(collection, candidates, self.token):
                claimed[collection, doc["_id"]] = doc
        return [
            (collection, claimed[collection, candidate["_id"]])
            for collection, candidate in wanted
            if (collection, candidate["_id"]) in claimed
        ]

    def _fail(self, collection: str, doc: Mapping[str, Any], error: InvalidEvent) -> RecordResult:
        self.dead_letters.fail(collection, doc["_id"], self.token, error)
        return RecordResult(Outcome.FAILED, collection, doc["message_key"], f"marked failed: {error}")

    def _events(
        self, batch: list[tuple[str, dict[str, Any]]], emit: Emit
    ) -> list[tuple[str, dict[str, Any], ActivityEvent]]:
        """The event of each dead letter, paced; one without an event is marked failed (and emitted) here."""
        events = []
        for collection, doc in batch:
            self.pacer.wait()
            try:
                events.append((collection, doc, dead_letter_event(doc)))
            except InvalidEvent as exc:
                emit([self._fail(collection, doc, exc)])
        return events

    def _complete(self, done: list[tuple[str, dict[str, Any], str]], emit: Emit) -> None:
        """Mark processed dead letters completed, one update per collection, and emit them restored."""
        for collection, docs in _by_collection([(collection, doc) for collection, doc, _ in done]).items():
            self.dead_letters.complete_batch(collection, docs, self.token)
        emit(RecordResult(Outcome.RESTORED, collection, doc["message_key"], detail) for collection, doc, detail in done)


class PublisherRestore(RestoreJob):
    """`restore-publisher`: publisher dead letters of both collections, republished or handed off."""

    collections = PUBLISHER_DEAD_LETTERS
    name = "publisher"

    def __init__(
        self,
        dead_letters: DeadLetterStore,
        transports: Mapping[str, Transport],
        options: RestoreOptions | None = None,
        *,
        mode: Mode = Mode.REPUBLISH,
        pacer: Pacer | None = None,
    ):
        super().__init__(dead_letters, options, pacer=pacer)
        self.transports = transports
        self.mode = Mode(mode)
        self._failures_in_a_row: dict[str, int] = {}
        self._down: dict[str, str] = {}

    def _start_pass(self) -> None:
        self._failures_in_a_row.clear()
        self._down.clear()

    def _not_now(self, candidate: Mapping[str, Any]) -> str | None:
        service = _service_of(candidate.get("category"))
        if self.mode is Mode.REPUBLISH and service in self._down:
            return f"left pending: the {service} transport is down ({self._down[service]})"
        return None

    def _handle(self, batch: list[tuple[str, dict[str, Any]]], emit: Emit) -> None:
        if self.mode is Mode.HANDOFF:
            self._hand_off(batch, emit)
        else:
            self._republish(batch, emit)

    def _hand_off(self, batch: list[tuple[str, dict[str, Any]]], emit: Emit) -> None:
        events = self._events(batch, emit)
        copied = self.dead_letters.hand_off_batch(events)
        self._complete(
            [
                (
                    collection,
                    doc,
                    f"handed off to {KAFKA_LISTENER_DEAD_LETTERS}"
                    if new
                    else f"already in {KAFKA_LISTENER_DEAD_LETTERS}",
                )
                for (collection, doc, _), new in zip(events, copied)
            ],
            emit,
        )

    def _republish(self, batch: list[tuple[str, dict[str, Any]]], emit: Emit) -> None:
        """One publish per dead letter (a transport takes one event at a time); those delivered are marked
        completed together, also when the batch is interrupted, so that the next run does not deliver them again."""
        delivered: list[tuple[str, dict[str, Any], str]] = []
        later: list[tuple[str, dict[str, Any]]] = []
        try:
            for collection, doc in batch:
                reason = self._not_now(doc)  # its transport went down earlier in this batch
                if reason:
                    later.append((collection, doc))
                    emit([RecordResult(Outcome.SKIPPED, collection, doc["message_key"], reason)])
                    continue
                self.pacer.wait()
                try:
                    event = dead_letter_event(doc)
                except InvalidEvent as exc:
                    emit([self._fail(collection, doc, exc)])
                    continue
                result = self._publish(collection, doc, event)
                if isinstance(result, RecordResult):
                    emit([result])
                else:
                    delivered.append((collection, doc, result))
        except BaseException:
            try:
                self._complete(delivered, emit)
            except Exception as exc:  # already failing: the leases run out, and they are delivered again
                log.warning("could not mark %d delivered dead letters completed (%s)", len(delivered), exc)
            raise
        self._complete(delivered, emit)
        for collection, docs in _by_collection(later).items():
            self.dead_letters.release_batch(collection, docs, self.token)

    def _publish(self, collection: str, doc: dict[str, Any], event: ActivityEvent) -> RecordResult | str:
        """Publish one event: the detail of a delivery, or the result of a failure (the dead letter given back)."""
        key = doc["message_key"]
        service = publishing_service(event.category)
        transport = self.transports.get(service) if service else None
        if transport is None:
            reason = (
                f"no content service publishes {event.category.value} events; "
                "left pending, restore it with --mode handoff"
            )
            self.dead_letters.release(collection, doc["_id"], self.token, error=reason)
            return RecordResult(Outcome.FAILED, collection, key, reason)
        try:
            transport.publish(event)
        except TransportError as exc:
            self.dead_letters.release(collection, doc["_id"], self.token, error=exc)
            if isinstance(exc, TransportUnavailable):
                failures = self._failures_in_a_row[service] = self._failures_in_a_row.get(service, 0) + 1
                if failures >= TRANSPORT_DOWN_AFTER:
                    self._down[service] = f"{failures} failures in a row"
            return RecordResult(
                Outcome.FAILED,
                collection,
                key,
                f"{service} ({transport.kind}) did not take it, left pending: {type(exc).__name__}: {exc}",
            )
        self._failures_in_a_row[service] = 0
        return f"republished via {service} ({transport.kind})"

    def _plan(self, doc: dict[str, Any], event: ActivityEvent) -> tuple[Outcome, str]:
        if self.mode is Mode.HANDOFF:
            return Outcome.RESTORED, f"hand off to {KAFKA_LISTENER_DEAD_LETTERS}"
        service = publishing_service(event.category)
        transport = self.transports.get(service) if service else None
        if transport is None:
            return Outcome.FAILED, f"no content service publishes {event.category.value} events"
        return Outcome.RESTORED, f"republish via {service} ({transport.kind})"


class ListenerRestore(RestoreJob):
    """`restore-listener`: listener dead letters upserted into member_activities by message key, a batch at a
    time, through the activity service (the same write the live path does)."""

    collections = LISTENER_DEAD_LETTERS
    name = "listener"

    def __init__(
        self,
        dead_letters: DeadLetterStore,
        activity_service: Any,
        options: RestoreOptions | None = None,
        *,
        pacer: Pacer | None = None,
    ):
        super().__init__(dead_letters, options, pacer=pacer)
        self.activity_service = activity_service

    def _handle(self, batch: list[tuple[str, dict[str, Any]]], emit: Emit) -> None:
        events = self._events(batch, emit)
        if not events:
            return
        try:
            self.activity_service.record_activities([event for _, _, event in events])
        except PyMongoError as exc:
            for collection, docs in _by_collection([(collection, doc) for collection, doc, _ in events]).items():
                self.dead_letters.release_batch(collection, docs, self.token, error=exc)
            emit(
                RecordResult(
                    Outcome.FAILED,
                    collection,
                    doc["message_key"],
                    f"could not store the activity, left pending: {type(exc).__name__}: {exc}",
                )
                for collection, doc, _ in events
            )
            return
        self._complete([(collection, doc, _as_key(doc, event)) for collection, doc, event in events], emit)

    def _plan(self, doc: dict[str, Any], event: ActivityEvent) -> tuple[Outcome, str]:
        known = self.activity_service.activity_by_key(event.message_key) is not None
        return Outcome.RESTORED, f"{'already recorded' if known else 'not recorded yet'} {_as_key(doc, event)}".strip()


def _by_collection(items: Iterable[tuple[str, Any]]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for collection, item in items:
        grouped.setdefault(collection, []).append(item)
    return grouped


def _key(doc: Mapping[str, Any]) -> str:
    return doc.get("message_key", str(doc["_id"]))


def _as_key(doc: Mapping[str, Any], event: ActivityEvent) -> str:
    return "" if doc.get("message_key") == event.message_key else f"as {event.message_key}"


def _service_of(category: Any) -> str | None:
    try:
        return publishing_service(Category(category))
    except ValueError:
        return None
