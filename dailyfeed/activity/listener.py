"""The Kafka listener: consume the date topics and record each event as a member activity (SPEC section 6).

Delivery is at least once: a batch is stored with one bulk insert that the unique message-key index deduplicates,
and only then are its offsets committed, so a redelivered record leaves exactly one document.

| what happens to a batch                          | result                                              |
|--------------------------------------------------|-----------------------------------------------------|
| records parse and store                          | stored, offsets committed                           |
| a record cannot be parsed (poison)               | listener dead letter with its origin, the rest go on|
| storing fails `store-retries` more times         | each event of the batch becomes a dead letter       |
| a dead letter cannot be stored either            | nothing committed: seek back, back off, try again   |
| the listener stops (Ctrl-C, SIGTERM, app close)  | stops between batches: all it stored is committed   |

Stuck detection (Karafka's polling_ttl and consuming_ttl, arroyo's stuck detector): the loop notes when it last made
progress (a poll returned, or a failed connect was given up for a retry) and when the batch in hand was taken;
`liveness()` is DOWN once the first is older than `poll_ttl_s` or the second than `consume_ttl_s`. A broker that is
down keeps the loop retrying, which is progress (readiness says Kafka is down); a call that never returns is not.

It runs in a thread of its own with its own event loop; store calls go to a worker thread so the consumer's
heartbeats keep going while the store is slow. Inside the app it is started by dailyfeed.background; standalone
it is `dailyfeed listen`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from ..config import Settings
from ..deadletters import DeadLetterStoreError, ListenerDeadLetterSink
from ..delivery import Backoff, ConsumerOptions, consumer_options
from ..events import ActivityEvent
from ..telemetry import metrics
from ..telemetry.tracing import from_record_headers, trace_id_of
from ..transport.loop import loop_factory, run_loop
from ..transport.topics import DateTopics, describe_error
from .service import ActivityService

log = logging.getLogger(__name__)


class BatchOutcome(str, enum.Enum):
    EMPTY = "empty"  # nothing was polled
    COMMITTED = "committed"  # stored (or dead-lettered) and committed
    NOT_COMMITTED = "not-committed"  # handled, but the commit failed: it will be redelivered and deduplicated
    REWOUND = "rewound"  # a dead letter could not be stored: offsets sought back, nothing committed
    ABANDONED = "abandoned"  # the listener was stopped while retrying: nothing committed


def record_event(record: Any) -> ActivityEvent:
    """The event of a consumed record, with the trace context its `traceparent` header carries (headers are read
    only when the record has some: most have none)."""
    headers = getattr(record, "headers", None)
    return ActivityEvent.from_bytes(record.value, record.key, from_record_headers(headers) if headers else None)


def record_origin(record: Any) -> dict[str, Any]:
    """Where a consumed record came from, raw, as a listener dead letter keeps it."""
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key,
        "value": record.value,
    }


class ActivityListener:
    def __init__(
        self,
        activities: ActivityService,
        dead_letters: ListenerDeadLetterSink,
        *,
        consumer_factory: Callable[[], Any],
        options: ConsumerOptions,
        describe: str = "",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.activities = activities
        self.dead_letters = dead_letters
        self.consumer_factory = consumer_factory  # called on the listener's loop (aiokafka needs a running loop)
        self.options = options
        self.describe = describe or f"pattern {options.pattern}"
        self._backoff = Backoff(options.reconnect)  # pauses while dead letters cannot be stored either
        self._stop_requested = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._clock = clock
        self._progress_at = clock()  # the loop's last progress: a poll returned, a connect attempt ended
        self._batch_since: float | None = None  # when the batch in hand was taken (None: none in hand)

    @classmethod
    def from_settings(
        cls, settings: Settings, activities: ActivityService, dead_letters: ListenerDeadLetterSink
    ) -> "ActivityListener":
        options = consumer_options(settings, DateTopics.from_settings(settings).pattern)

        def consumer_factory() -> Any:
            from aiokafka import AIOKafkaConsumer

            return AIOKafkaConsumer(
                bootstrap_servers=options.bootstrap_servers,
                group_id=options.group_id,
                client_id="dailyfeed-listener",
                auto_offset_reset=options.offset_reset,
                enable_auto_commit=False,
                metadata_max_age_ms=options.metadata_max_age_ms,
            )

        return cls(
            activities,
            dead_letters,
            consumer_factory=consumer_factory,
            options=options,
            describe=f"topics {options.pattern} on {options.bootstrap_servers} as group {options.group_id}",
        )

    # --- lifecycle: a thread of its own -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            metrics.declare_listener()
            self._thread = threading.Thread(
                target=lambda: run_loop(self._main(), loop_factory(self.options.event_loop)),
                name="dailyfeed-listener",
                daemon=True,
            )
            self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop between batches (what was stored is committed) and wait for the thread to end."""
        self._stop_requested.set()
        with self._lock:
            loop, thread = self._loop, self._thread
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._wake_up)
            except RuntimeError:  # the loop already ended
                pass
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout)
        if thread.is_alive() and loop is not None:
            log.warning("listener did not stop within %.0f s; cancelling it", timeout)
            try:
                loop.call_soon_threadsafe(self._cancel)
            except RuntimeError:
                pass
            thread.join(5)
        if thread.is_alive():
            log.error("listener thread did not stop")

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _main(self) -> None:
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._task = asyncio.current_task()
        if self._stop_requested.is_set():
            return
        try:
            await self.run()
        except asyncio.CancelledError:
            log.warning("listener cancelled")

    @property
    def stopping(self) -> bool:
        return self._stop_requested.is_set()

    component = "listener"  # its name among /healthz's components

    def liveness(self) -> dict[str, Any]:
        """This listener's part of /healthz: UP while its thread runs and its loop is not stuck, DOWN with the reason
        once it ended or is stuck (no progress within poll_ttl_s, a batch in hand longer than consume_ttl_s)."""
        if self.running:
            now = self._clock()
            since_progress, batch_since = now - self._progress_at, self._batch_since
            if batch_since is not None and now - batch_since > self.options.consume_ttl_s:
                return {
                    "status": "DOWN",
                    "reason": f"one batch has been processing for {now - batch_since:.0f} s "
                    f"(kafka.consumer.consume-ttl-s = {self.options.consume_ttl_s:g})",
                }
            if batch_since is None and since_progress > self.options.poll_ttl_s:
                return {
                    "status": "DOWN",
                    "reason": f"no poll completed for {since_progress:.0f} s "
                    f"(kafka.consumer.poll-ttl-s = {self.options.poll_ttl_s:g})",
                }
            return {"status": "UP", "consuming": self.describe, "lastPollSecondsAgo": round(since_progress, 1)}
        if self.stopping:
            return {"status": "DOWN", "reason": "stopped: the process is shutting down"}
        return {"status": "DOWN", "reason": "the listener thread ended unexpectedly (see the log)"}

    async def _sleep(self, seconds: float) -> None:
        """Pause, but wake up at once when the listener is asked to stop."""
        if self._wake is None:
            self._wake = asyncio.Event()
        if self.stopping:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    # --- the loop ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until stopped; a consumer that cannot start or fails is replaced after a pause."""
        if self._wake is None:
            self._wake = asyncio.Event()
        connect_backoff = Backoff(self.options.reconnect)
        while not self.stopping:
            consumer = self.consumer_factory()
            consumer.subscribe(pattern=self.options.pattern)
            try:
                await consumer.start()
            except Exception as exc:
                delay = connect_backoff.next()
                log.warning("listener cannot reach Kafka (%s); retrying in %.1f s", describe_error(exc), delay)
                self._progress_at = self._clock()  # retrying an unreachable broker is not being stuck
                await self._close(consumer)
                await self._sleep(delay)
                continue
            connect_backoff.reset()
            log.info("listener consuming %s", self.describe)
            try:
                while not self.stopping:
                    await self.poll_once(consumer)
            except Exception as exc:
                delay = connect_backoff.next()
                log.error(
                    "listener consumer failed (%s); restarting it in %.1f s", describe_error(exc), delay, exc_info=True
                )
                await self._sleep(delay)
            finally:
                await self._close(consumer)
        log.info("listener stopped")

    async def _close(self, consumer: Any) -> None:
        try:
            await asyncio.wait_for(consumer.stop(), 10)
        except Exception as exc:
            log.debug("closing the consumer: %s: %s", type(exc).__name__, exc)

    async def poll_once(self, consumer: Any) -> BatchOutcome:
        """Poll one batch and handle it. The wait for records ends early when the listener is stopped."""
        poll = asyncio.ensure_future(
            consumer.getmany(timeout_ms=self.options.poll_timeout_ms, max_records=self.options.max_records)
        )
        wake = asyncio.ensure_future(self._wake.wait()) if self._wake is not None else None
        try:
            await asyncio.wait([f for f in (poll, wake) if f is not None], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if wake is not None:
                wake.cancel()
        if not poll.done():
            poll.cancel()
            try:
                await poll
            except asyncio.CancelledError:
                pass
            return BatchOutcome.EMPTY
        batches = poll.result()
        self._progress_at = self._clock()
        if not batches:
            return BatchOutcome.EMPTY
        self._batch_since = self._progress_at
        try:
            outcome = await self.handle_batch(consumer, batches)
        finally:
            self._batch_since = None
            self._progress_at = self._clock()
        metrics.listener_batch(outcome.value)
        return outcome

    async def handle_batch(self, consumer: Any, batches: Mapping[Any, Sequence[Any]]) -> BatchOutcome:
        batches = {tp: list(records) for tp, records in batches.items() if records}
        if not batches:
            return BatchOutcome.EMPTY
        records = [record for partition_records in batches.values() for record in partition_records]
        metrics.listener_polled(len(records))
        events: list[tuple[Any, ActivityEvent]] = []
        poison: list[tuple[Any, Exception]] = []
        for record in records:
            try:
                events.append((record, record_event(record)))
            except Exception as exc:  # InvalidEvent mostly; whatever it is, this record cannot be recorded
                poison.append((record, exc))
        try:
            stored = await self._store(events)
            if stored is None:
                return BatchOutcome.ABANDONED
            new, failed = stored
            for record, error in poison:
                traceparent = from_record_headers(getattr(record, "headers", None))
                log.warning(
                    "poison record %s[%d]@%d: %s; keeping it as a listener dead letter",
                    record.topic,
                    record.partition,
                    record.offset,
                    error,
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "trace_id": trace_id_of(traceparent),
                    },
                )
                await asyncio.to_thread(
                    self.dead_letters.record_listener_failure,
                    origin=record_origin(record),
                    error=error,
                    traceparent=traceparent,
                )
                metrics.listener_dead_lettered("poison")
        except DeadLetterStoreError as exc:
            delay = self._backoff.next()
            log.error(
                "a listener dead letter could not be stored (%s); nothing committed, the batch of %d "
                "records is read again in %.1f s",
                exc,
                len(records),
                delay,
            )
            self._rewind(consumer, batches)
            await self._sleep(delay)
            return BatchOutcome.REWOUND
        self._backoff.reset()
        offsets = {tp: partition_records[-1].offset + 1 for tp, partition_records in batches.items()}
        started = time.perf_counter()
        try:
            await consumer.commit(offsets)
            metrics.listener_committed(time.perf_counter() - started)
        except Exception as exc:  # rebalanced away, broker gone: the next owner reads them again (deduplicated)
            log.warning(
                "could not commit offsets %s (%s: %s); those records will be delivered again",
                _describe_offsets(offsets),
                type(exc).__name__,
                exc,
            )
            return BatchOutcome.NOT_COMMITTED
        if log.isEnabledFor(logging.DEBUG):  # its arguments sort topics and offsets: only when shown
            log.debug(
                "batch of %d records from %s: %d new activities, %d dead letters; committed %s",
                len(records),
                ", ".join(sorted({tp.topic for tp in batches})),
                new,
                len(poison) + failed,
                _describe_offsets(offsets),
            )
        return BatchOutcome.COMMITTED

    async def _store(self, events: list[tuple[Any, ActivityEvent]]) -> tuple[int, int] | None:
        """Store the events with one bulk write, retried; after the last retry each one becomes a dead letter.
        Returns (new activities, dead-lettered events), or None when stopped while retrying."""
        if not events:
            return 0, 0
        by_key: dict[str, ActivityEvent] = {}
        for _, event in events:  # a key twice in one batch (a redelivery) is stored once
            by_key.setdefault(event.message_key, event)
        unique = list(by_key.values())
        error: Exception | None = None
        policy, attempt = self.options.store_retry, 0
        while True:
            attempt += 1
            try:
                new = await asyncio.to_thread(self.activities.record_activities, unique)
            except Exception as exc:
                error = exc
                if not policy.retries_left(attempt):
                    break
                metrics.listener_store_retry()
                delay = policy.delay(attempt)
                log.warning(
                    "storing %d activities failed (attempt %d/%s: %s: %s); retrying in %.2f s",
                    len(unique),
                    attempt,
                    policy.attempts,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await self._sleep(delay)
                if self.stopping:
                    return None
            else:
                # duplicates: redelivered keys already stored, and a key twice in this batch
                metrics.listener_stored(new, len(events) - new)
                return new, 0
        log.error(
            "storing %d activities failed after %d attempts (%s: %s); keeping each as a listener dead letter",
            len(unique),
            attempt,
            type(error).__name__,
            error,
        )
        for record, event in events:
            await asyncio.to_thread(
                self.dead_letters.record_listener_failure, origin=record_origin(record), error=error, event=event
            )
        metrics.listener_dead_lettered("store_failed", len(events))
        return 0, len(events)

    def _rewind(self, consumer: Any, batches: Mapping[Any, Sequence[Any]]) -> None:
        for tp, records in batches.items():
            try:
                consumer.seek(tp, records[0].offset)
            except Exception as exc:  # no longer assigned: its next owner starts from the committed offset
                log.info("could not seek %s back to %d: %s", tp, records[0].offset, exc)


def _describe_offsets(offsets: Mapping[Any, int]) -> str:
    return ", ".join(
        f"{tp.topic}[{tp.partition}]={offset}"
        for tp, offset in sorted(offsets.items(), key=lambda item: (item[0].topic, item[0].partition))
    )
