"""What is seen of the listener besides the stored records: the trace context and message key a record brings,
the metrics an operator graphs, the log lines an operator reads (as JSON, the machine format), and how a poll
waits for records and ends when the listener is stopped."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import replace

from prometheus_client import REGISTRY

from dailyfeed.activity.listener import BatchOutcome
from dailyfeed.telemetry import logs

from ..support.kafka import wait_until
from .test_listener import (
    TOPIC,
    TP0,
    TP1,
    FakeConsumer,
    db,  # noqa: F401 (a fixture)
    dead_letters,
    event_record,
    handle,
    make_listener,
    new_event,
    record,
    stored,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def figures() -> dict[str, float]:
    """The listener's counters as /metrics shows them (totals since the process started)."""

    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    found = {
        "consumed": sample("dailyfeed_listener_records_consumed_total"),
        "stored": sample("dailyfeed_listener_activities_stored_total"),
        "duplicates": sample("dailyfeed_listener_duplicates_total"),
        "retries": sample("dailyfeed_listener_store_retries_total"),
        "commits": sample("dailyfeed_listener_commit_duration_seconds_count"),
        "commit_seconds": sample("dailyfeed_listener_commit_duration_seconds_sum"),
    }
    for reason in ("poison", "store_failed"):
        found[f"dead_letters:{reason}"] = sample("dailyfeed_listener_dead_letters_total", reason=reason)
    for outcome in ("committed", "not-committed", "rewound", "abandoned"):
        found[f"batches:{outcome}"] = sample("dailyfeed_listener_batches_total", outcome=outcome)
    return found


def moved(before: dict[str, float]) -> dict[str, float]:
    """The counters that changed since `before`, by how much."""
    after = figures()
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


def json_lines(caplog) -> list[dict]:
    """The listener's log records as the JSON log format writes them."""
    formatter = logs.json_formatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "dailyfeed.activity.listener"]


# --- what a record brings: its key and its trace context ------------------------------------------------------


def test_an_activity_is_stored_under_its_records_key_with_the_trace_context_of_its_headers(db):  # noqa: F811
    listener, _, _ = make_listener(db)
    traced, untraced, keyed = new_event(7, 12), new_event(8, 13), new_event(9, 14)
    # The record key is the message key, also when it is not the one the event would derive (another producer's).
    own_key = "member_activity:kafka_event:POST_CREATE###14###9###from-another-producer"
    batch = {
        TP0: [
            record(
                TP0,
                0,
                traced.to_bytes(),
                traced.message_key.encode(),
                headers=(("__TypeId__", b"com.dailyfeed.MemberActivityEvent"), ("traceparent", TRACEPARENT.encode())),
            ),
            event_record(TP0, 1, untraced),
            record(TP0, 2, keyed.to_bytes(), own_key.encode()),
        ]
    }

    assert handle(listener, FakeConsumer(), batch) is BatchOutcome.COMMITTED

    docs = stored(db)
    assert set(docs) == {traced.message_key, untraced.message_key, own_key}
    assert docs[traced.message_key]["traceparent"] == TRACEPARENT
    assert "traceparent" not in docs[untraced.message_key]
    assert docs[own_key]["member_id"] == 9

    # Redelivered under its own key, it is known: still one document.
    assert handle(listener, FakeConsumer(), {TP0: [record(TP0, 2, keyed.to_bytes(), own_key.encode())]}) is (
        BatchOutcome.COMMITTED
    )
    assert len(stored(db)) == 3


def test_a_poison_record_keeps_its_trace_context_and_its_log_line_names_where_it_came_from(db, caplog):  # noqa: F811
    listener, _, _ = make_listener(db)
    batch = {TP1: [record(TP1, 11, b"{not json", b"k-11", headers=(("traceparent", TRACEPARENT.encode()),))]}
    before = figures()

    with caplog.at_level(logging.INFO, logger="dailyfeed.activity.listener"):
        assert handle(listener, FakeConsumer(), batch) is BatchOutcome.COMMITTED

    [letter] = dead_letters(db)
    assert letter["traceparent"] == TRACEPARENT
    [line] = [line for line in json_lines(caplog) if line["message"].startswith("poison record")]
    assert line["level"] == "WARNING"
    assert line["message"].startswith(f"poison record {TOPIC}[1]@11: record value is not JSON")
    assert line["message"].endswith("; keeping it as a listener dead letter")
    assert (line["topic"], line["partition"], line["offset"], line["trace_id"]) == (TOPIC, 1, 11, TRACE_ID)
    changes = moved(before)
    changes.pop("commit_seconds", None)
    assert changes == {"consumed": 1, "dead_letters:poison": 1, "commits": 1}


# --- metrics --------------------------------------------------------------------------------------------------


def test_a_polled_batch_counts_its_records_new_activities_duplicates_outcome_and_commit_time(db):  # noqa: F811
    listener, _, _ = make_listener(db)
    known, fresh = new_event(1, 1), new_event(2, 2)
    handle(listener, FakeConsumer(), {TP0: [event_record(TP0, 0, known)]})

    class SlowCommit(FakeConsumer):
        async def commit(self, offsets):
            await asyncio.sleep(0.02)
            await super().commit(offsets)

    batch = {TP0: [event_record(TP0, 1, known), event_record(TP0, 2, fresh), event_record(TP0, 3, fresh)]}
    before = figures()
    assert asyncio.run(listener.poll_once(SlowCommit([batch]))) is BatchOutcome.COMMITTED

    changes = moved(before)
    commit_seconds = changes.pop("commit_seconds")
    # one new activity; the known key and the repeat within the batch are duplicates
    assert changes == {"consumed": 3, "stored": 1, "duplicates": 2, "batches:committed": 1, "commits": 1}
    assert 0.02 <= commit_seconds < 10  # how long that commit took, not a clock reading


def test_a_store_that_keeps_failing_counts_its_retries_and_each_event_dead_lettered(db):  # noqa: F811
    listener, _, _ = make_listener(db, store_failures=99, store_retries=2)
    batch = {TP0: [event_record(TP0, 0, new_event(1, 1)), event_record(TP0, 1, new_event(2, 2))]}
    before = figures()

    assert asyncio.run(listener.poll_once(FakeConsumer([batch]))) is BatchOutcome.COMMITTED

    changes = moved(before)
    changes.pop("commit_seconds", None)
    assert changes == {
        "consumed": 2,
        "retries": 2,
        "dead_letters:store_failed": 2,
        "batches:committed": 1,
        "commits": 1,
    }


def test_a_batch_of_poison_only_stores_nothing_and_counts_nothing_stored(db):  # noqa: F811
    listener, activities, _ = make_listener(db)
    before = figures()

    assert handle(listener, FakeConsumer(), {TP0: [record(TP0, 4, b"[1, 2", b"k")]}) is BatchOutcome.COMMITTED

    assert activities.calls == 0 and stored(db) == {}
    changes = moved(before)
    assert (changes.get("stored", 0), changes.get("duplicates", 0)) == (0, 0)


def test_the_outcome_of_a_rewound_batch_is_counted(db):  # noqa: F811
    listener, _, _ = make_listener(db, dead_letter_failures=99)
    before = figures()

    batch = {TP0: [record(TP0, 4, b"{broken", b"k")]}
    assert asyncio.run(listener.poll_once(FakeConsumer([batch]))) is BatchOutcome.REWOUND

    assert moved(before) == {"consumed": 1, "batches:rewound": 1}


# --- log lines ------------------------------------------------------------------------------------------------


def test_log_lines_of_a_store_retry_and_a_batch_it_could_not_keep(db, caplog):  # noqa: F811
    listener, _, _ = make_listener(db, store_failures=99, store_retries=1, dead_letter_failures=99)
    batch = {TP0: [event_record(TP0, 20, new_event(1, 1))], TP1: [event_record(TP1, 7, new_event(2, 2))]}

    with caplog.at_level(logging.INFO, logger="dailyfeed.activity.listener"):
        assert handle(listener, FakeConsumer(), batch) is BatchOutcome.REWOUND

    messages = [line["message"] for line in json_lines(caplog)]
    assert messages[0].startswith(
        "storing 2 activities failed (attempt 1/2: ConnectionError: store is down); retrying in "
    )
    assert messages[1] == (
        "storing 2 activities failed after 2 attempts (ConnectionError: store is down); "
        "keeping each as a listener dead letter"
    )
    assert messages[2].startswith(
        "a listener dead letter could not be stored (dead letters are down too); nothing committed, "
        "the batch of 2 records is read again in "
    )
    assert messages[2].endswith(" s")


def test_a_failed_commit_names_the_offsets_that_will_be_delivered_again(db, caplog):  # noqa: F811
    listener, _, _ = make_listener(db)
    other = "member-activity-20261121"

    class Revoked(FakeConsumer):
        async def commit(self, offsets):
            raise RuntimeError("partition was revoked")

    batch = {
        TP1: [event_record(TP1, 5, new_event(1, 1))],
        TP0: [event_record(TP0, 40, new_event(2, 2))],
        type(TP0)(other, 3): [event_record(type(TP0)(other, 3), 9, new_event(3, 3))],
    }
    with caplog.at_level(logging.INFO, logger="dailyfeed.activity.listener"):
        assert handle(listener, Revoked(), batch) is BatchOutcome.NOT_COMMITTED

    [line] = json_lines(caplog)
    assert line["level"] == "WARNING"
    assert line["message"] == (
        f"could not commit offsets {other}[3]=10, {TOPIC}[0]=41, {TOPIC}[1]=6 (RuntimeError: partition was revoked); "
        "those records will be delivered again"
    )


def test_at_debug_a_committed_batch_is_summed_up_in_one_line(db, caplog):  # noqa: F811
    listener, _, _ = make_listener(db)
    other = "member-activity-20261121"
    tp_other = type(TP0)(other, 2)
    known = new_event(1, 1)
    handle(listener, FakeConsumer(), {TP0: [event_record(TP0, 0, known)]})
    batch = {
        TP0: [event_record(TP0, 1, known), record(TP0, 2, b"{broken", b"k")],
        tp_other: [event_record(tp_other, 8, new_event(2, 2))],
    }

    with caplog.at_level(logging.DEBUG, logger="dailyfeed.activity.listener"):
        assert handle(listener, FakeConsumer(), batch) is BatchOutcome.COMMITTED

    [line] = [line for line in json_lines(caplog) if line["level"] == "DEBUG"]
    assert line["message"] == (
        f"batch of 3 records from {other}, {TOPIC}: 1 new activities, 1 dead letters; "
        f"committed {other}[2]=9, {TOPIC}[0]=3"
    )


def test_a_seek_that_fails_is_logged_with_its_reason(db, caplog):  # noqa: F811
    class Revoked(FakeConsumer):
        def seek(self, tp, offset):
            raise RuntimeError(f"No current assignment for partition {tp.topic}-{tp.partition}")

    listener, _, _ = make_listener(db, dead_letter_failures=99)
    with caplog.at_level(logging.INFO, logger="dailyfeed.activity.listener"):
        assert handle(listener, Revoked(), {TP0: [record(TP0, 3, b"{broken", b"k")]}) is BatchOutcome.REWOUND

    [line] = [line for line in json_lines(caplog) if line["level"] == "INFO"]
    assert line["message"] == f"could not seek {TP0} back to 3: No current assignment for partition {TOPIC}-0"


# --- the poll -------------------------------------------------------------------------------------------------


class ArrivingConsumer(FakeConsumer):
    """Polls as aiokafka does: waits up to `timeout_ms` for records, hands out at most `max_records` of them
    (the rest stay for the next poll), and answers an empty poll at once with timeout_ms=0."""

    def __init__(self):
        super().__init__()
        self.pending: list = []
        self.arrived = asyncio.Event()

    def produce(self, records):
        self.pending.extend(records)
        self.arrived.set()

    async def getmany(self, timeout_ms=0, max_records=None):
        if not self.pending:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), timeout_ms / 1000)
            except asyncio.TimeoutError:
                return {}
        take = len(self.pending) if max_records is None else max_records
        handed, self.pending = self.pending[:take], self.pending[take:]
        return {TP0: handed}


def test_a_poll_waits_for_records_that_arrive_within_the_poll_timeout(db):  # noqa: F811
    listener, _, _ = make_listener(db)
    listener.options = replace(listener.options, poll_timeout_ms=30_000)
    event = new_event()

    async def scenario():
        consumer = ArrivingConsumer()
        asyncio.get_running_loop().call_later(0.05, consumer.produce, [event_record(TP0, 0, event)])
        return await asyncio.wait_for(listener.poll_once(consumer), 10), consumer

    outcome, consumer = asyncio.run(scenario())
    assert outcome is BatchOutcome.COMMITTED
    assert consumer.commits == [{TP0: 1}] and list(stored(db)) == [event.message_key]


def test_a_batch_holds_at_most_max_records_and_the_rest_come_with_the_next_poll(db):  # noqa: F811
    listener, _, _ = make_listener(db)
    listener.options = replace(listener.options, max_records=2)
    events = [new_event(n, n) for n in range(1, 6)]
    consumer = ArrivingConsumer()
    consumer.produce([event_record(TP0, n, e) for n, e in enumerate(events)])

    async def three_polls():
        return [await listener.poll_once(consumer) for _ in range(3)]

    assert asyncio.run(three_polls()) == [BatchOutcome.COMMITTED] * 3
    assert consumer.commits == [{TP0: 2}, {TP0: 4}, {TP0: 5}]
    assert len(stored(db)) == 5


def test_stopping_ends_a_waiting_poll_at_once_and_an_idle_listener_piles_up_no_waiting_tasks(db):  # noqa: F811
    listener, _, _ = make_listener(db)
    listener.options = replace(listener.options, poll_timeout_ms=30_000)
    consumer = ArrivingConsumer()

    async def scenario():
        listener._wake = asyncio.Event()  # as run() makes it
        short = replace(listener.options, poll_timeout_ms=1)
        long_wait, listener.options = listener.options, short
        tasks_before = len(asyncio.all_tasks())
        for _ in range(20):  # idle polls, each with its wait for a stop request
            assert await listener.poll_once(consumer) is BatchOutcome.EMPTY
        await asyncio.sleep(0)  # the last poll's cancelled wait ends
        left_behind = len(asyncio.all_tasks()) - tasks_before
        listener.options = long_wait
        poll = asyncio.ensure_future(listener.poll_once(consumer))
        await asyncio.sleep(0.05)
        listener._stop_requested.set()  # what stop() does, from the loop's own thread
        listener._wake_up()
        return left_behind, await asyncio.wait_for(poll, 5)

    left_behind, outcome = asyncio.run(scenario())
    assert left_behind == 0
    assert outcome is BatchOutcome.EMPTY and consumer.commits == []


def test_at_debug_a_batch_whose_store_failed_or_that_held_only_poison_is_summed_up_too(db, caplog):  # noqa: F811
    failing, _, _ = make_listener(db, store_failures=99, store_retries=0)
    poison_only, _, _ = make_listener(db)

    with caplog.at_level(logging.DEBUG, logger="dailyfeed.activity.listener"):
        batch = {TP0: [event_record(TP0, 0, new_event(1, 1)), event_record(TP0, 1, new_event(2, 2))]}
        assert handle(failing, FakeConsumer(), batch) is BatchOutcome.COMMITTED
        assert handle(poison_only, FakeConsumer(), {TP1: [record(TP1, 4, b"{", b"k")]}) is BatchOutcome.COMMITTED

    summaries = [line["message"] for line in json_lines(caplog) if line["level"] == "DEBUG"]
    assert summaries == [
        f"batch of 2 records from {TOPIC}: 0 new activities, 2 dead letters; committed {TOPIC}[0]=2",
        f"batch of 1 records from {TOPIC}: 0 new activities, 1 dead letters; committed {TOPIC}[1]=5",
    ]


# --- the listener made from the settings, and its thread ------------------------------------------------------


def test_a_listener_made_from_the_settings_consumes_as_its_group_commits_itself_and_stores(db, monkeypatch, caplog):  # noqa: F811
    import aiokafka

    from dailyfeed.activity.listener import ActivityListener
    from dailyfeed.activity.repository import ActivityRepository, FollowRepository
    from dailyfeed.activity.service import ActivityService
    from dailyfeed.config import load_settings
    from dailyfeed.deadletters import DeadLetterStore

    event = new_event(5, 6)
    made = []

    class Consumer(FakeConsumer):
        def __init__(self, **config):
            super().__init__([{TP0: [event_record(TP0, 0, event), record(TP0, 1, b"{", b"k")]}])
            self.config = config
            made.append(self)

    monkeypatch.setattr(aiokafka, "AIOKafkaConsumer", Consumer)
    settings = load_settings(
        {"kafka.bootstrap-servers": "kafka-1:9092", "kafka.consumer.group-id": "activity-group"}, environ={}
    )
    listener = ActivityListener.from_settings(
        settings, ActivityService(ActivityRepository(db), FollowRepository(db)), DeadLetterStore(db)
    )
    with caplog.at_level(logging.INFO, logger="dailyfeed.activity.listener"):
        listener.start()
        try:
            wait_until(lambda: made, 10, what="the listener made its consumer")
            assert made[0].committed.wait(10)
            described = listener.liveness()["consuming"]
            # a daemon thread of its own, named so in a thread dump: it never holds up the process's exit
            [thread] = [t for t in threading.enumerate() if t.name == "dailyfeed-listener"]
            assert thread.daemon
        finally:
            listener.stop(timeout=5)

    assert made[0].config == {
        "bootstrap_servers": "kafka-1:9092",
        "group_id": "activity-group",
        "client_id": "dailyfeed-listener",
        "auto_offset_reset": "earliest",  # a new day's topic is read from its first record
        "enable_auto_commit": False,  # offsets are committed only once the batch is stored
        "metadata_max_age_ms": settings["kafka.consumer.metadata-max-age-ms"],
    }
    assert described == r"topics ^member\-activity\-\d{8}$ on kafka-1:9092 as group activity-group"
    assert f"listener consuming {described}" in [line["message"] for line in json_lines(caplog)]
    assert list(stored(db)) == [event.message_key]
    assert [d["origin"]["offset"] for d in dead_letters(db)] == [1]
    assert made[0].commits == [{TP0: 2}]


def test_a_listener_that_does_not_stop_in_time_is_cancelled_and_its_thread_ends(db, caplog):  # noqa: F811
    committing = asyncio.Event

    class HangingCommit(FakeConsumer):
        """Its commit never returns, and a stop request does not end it (only a cancel does)."""

        async def commit(self, offsets):
            self.committed.set()
            await committing().wait()

    consumer = HangingCommit([{TP0: [event_record(TP0, 0, new_event())]}])
    listener, _, _ = make_listener(db, consumer_factory=lambda: consumer)
    with caplog.at_level(logging.INFO, logger="dailyfeed.activity.listener"):
        listener.start()
        assert consumer.committed.wait(10)
        listener.stop(timeout=0.2)

    assert not listener.running and consumer.stopped
    messages = [(line["level"], line["message"]) for line in json_lines(caplog)]
    assert ("WARNING", "listener did not stop within 0 s; cancelling it") in messages
    assert ("WARNING", "listener cancelled") in messages
    assert not any(level == "ERROR" for level, _ in messages)


def test_a_consumer_that_fails_to_close_is_logged_at_debug_and_replaced(db, caplog):  # noqa: F811
    from aiokafka.errors import KafkaConnectionError

    event = new_event()

    class Unclosable(FakeConsumer):
        async def stop(self):
            raise KafkaConnectionError("broker gone while closing")

    consumers = [
        Unclosable(start_error=KafkaConnectionError("Unable to bootstrap")),
        FakeConsumer([{TP0: [event_record(TP0, 0, event)]}]),
    ]
    listener, _, _ = make_listener(db, consumer_factory=lambda: consumers.pop(0))
    second = consumers[1]
    with caplog.at_level(logging.DEBUG, logger="dailyfeed.activity.listener"):
        listener.start()
        try:
            assert second.committed.wait(10)
        finally:
            listener.stop(timeout=5)

    assert list(stored(db)) == [event.message_key]
    messages = [line["message"] for line in json_lines(caplog)]
    assert "closing the consumer: KafkaConnectionError: KafkaConnectionError: broker gone while closing" in messages
    assert any(m.startswith("listener cannot reach Kafka (") and "Unable to bootstrap" in m for m in messages)
    assert messages[-1] == "listener stopped"


def test_a_stop_request_ends_a_long_poll_at_once_and_the_thread_with_it(db, caplog):  # noqa: F811
    consumer = ArrivingConsumer()
    listener, _, _ = make_listener(db, consumer_factory=lambda: consumer)
    listener.options = replace(listener.options, poll_timeout_ms=60_000)
    with caplog.at_level(logging.INFO, logger="dailyfeed.activity.listener"):
        listener.start()
        wait_until(lambda: "listener consuming pattern" in caplog.text, 10, what="the listener polling")
        listener.stop(timeout=30)

    assert not listener.running and consumer.stopped
    assert [line["level"] for line in json_lines(caplog)] == ["INFO", "INFO"]  # consuming, stopped: no warning
    assert listener.liveness() == {"status": "DOWN", "reason": "stopped: the process is shutting down"}


def test_a_listener_stopped_before_it_started_stays_stopped(db):  # noqa: F811
    """An app that is closed before its background work started (a failed start-up) stops its listener too."""
    listener, _, _ = make_listener(db)
    listener.stop(timeout=1)
    listener.start()  # too late: it stops at once, before it made a consumer

    wait_until(lambda: not listener.running, 5, what="the thread ended")
    assert listener.liveness() == {"status": "DOWN", "reason": "stopped: the process is shutting down"}
