"""The Kafka listener's batch logic against a fake consumer and the embedded store: what gets stored, what
becomes a dead letter, what is committed and when it seeks back."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import deque
from dataclasses import replace
from datetime import datetime, timezone
from typing import NamedTuple

import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import TopicPartition

from dailyfeed.activity.listener import ActivityListener, BatchOutcome
from dailyfeed.activity.repository import ActivityRepository, FollowRepository
from dailyfeed.activity.service import ActivityService
from dailyfeed.deadletters import DeadLetterStore, DeadLetterStoreError
from dailyfeed.delivery import ConsumerOptions, RetryPolicy
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.store import KAFKA_LISTENER_DEAD_LETTERS, MEMBER_ACTIVITIES, connect, ensure_indexes, forget_mock

TOPIC = "member-activity-20261122"
TP0, TP1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple = ()


def record(tp: TopicPartition, offset: int, value: bytes | None, key: bytes | None = None, headers=()) -> Record:
    return Record(tp.topic, tp.partition, offset, key, value, headers)


def event_record(tp: TopicPartition, offset: int, event: ActivityEvent) -> Record:
    return record(tp, offset, event.to_bytes(), event.message_key.encode())


def new_event(member_id: int = 7, post_id: int = 12, kind=ActivityType.POST_CREATE) -> ActivityEvent:
    return ActivityEvent.new(kind, member_id, post_id=post_id)


class FakeConsumer:
    """Hands out prepared batches; remembers commits, seeks, subscription and whether it was started/stopped."""

    def __init__(self, batches=(), start_error: Exception | None = None):
        self.batches = deque(batches)
        self.start_error = start_error
        self.commits: list[dict] = []
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.pattern = None
        self.started = self.stopped = False
        self.committed = threading.Event()  # set at the first commit (the listener runs in a thread of its own)

    def subscribe(self, pattern=None):
        self.pattern = pattern

    async def start(self):
        if self.start_error is not None:
            raise self.start_error
        self.started = True

    async def stop(self):
        self.stopped = True

    async def getmany(self, timeout_ms=0, max_records=None):
        if self.batches:
            return self.batches.popleft()
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets):
        self.commits.append(dict(offsets))
        self.committed.set()

    def seek(self, tp, offset):
        self.seeks.append((tp, offset))


class FlakyActivities:
    """The real service, failing its first `failures` bulk stores."""

    def __init__(self, service: ActivityService, failures: int):
        self.service = service
        self.failures = failures
        self.calls = 0
        self.failed = threading.Event()  # set once a store has failed

    def record_activities(self, events):
        self.calls += 1
        if self.calls <= self.failures:
            self.failed.set()
            raise ConnectionError("store is down")
        return self.service.record_activities(events)


class FlakyDeadLetters:
    """The real dead-letter store, failing its first `failures` writes."""

    def __init__(self, store: DeadLetterStore, failures: int):
        self.store = store
        self.failures = failures
        self.calls = 0

    def record_listener_failure(self, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise DeadLetterStoreError("dead letters are down too")
        return self.store.record_listener_failure(**kwargs)


@pytest.fixture
def db():
    uri = f"mongomock://listener-{uuid.uuid4().hex[:8]}"
    database = connect(uri, "test")
    ensure_indexes(database)
    yield database
    forget_mock(uri)


def make_listener(
    db, *, store_failures: int = 0, dead_letter_failures: int = 0, store_retries: int = 2, consumer_factory=None
) -> tuple[ActivityListener, FlakyActivities, FlakyDeadLetters]:
    activities = FlakyActivities(ActivityService(ActivityRepository(db), FollowRepository(db)), store_failures)
    dead_letters = FlakyDeadLetters(DeadLetterStore(db), dead_letter_failures)
    quick = RetryPolicy(attempts=None, base_s=0.001, max_s=0.01)
    options = ConsumerOptions(
        bootstrap_servers="unused",
        group_id="g",
        poll_timeout_ms=10,
        reconnect=quick,
        store_retry=replace(quick, attempts=store_retries + 1),
    )
    listener = ActivityListener(
        activities, dead_letters, consumer_factory=consumer_factory or FakeConsumer, options=options
    )
    return listener, activities, dead_letters


def handle(listener: ActivityListener, consumer: FakeConsumer, batch: dict) -> BatchOutcome:
    return asyncio.run(listener.handle_batch(consumer, batch))


def stored(db) -> dict[str, dict]:
    return {doc["message_key"]: doc for doc in db[MEMBER_ACTIVITIES].find()}


def dead_letters(db) -> list[dict]:
    return list(db[KAFKA_LISTENER_DEAD_LETTERS].find().sort("origin.offset", 1))


def test_a_batch_is_stored_with_its_keys_then_committed_past_its_last_records(db):
    listener, activities, _ = make_listener(db)
    events = [new_event(7, 12), new_event(8, 13, ActivityType.LIKE_POST), new_event(9, 14)]
    consumer = FakeConsumer()
    batch = {
        TP0: [event_record(TP0, 40, events[0]), event_record(TP0, 41, events[1])],
        TP1: [event_record(TP1, 5, events[2])],
    }

    assert handle(listener, consumer, batch) is BatchOutcome.COMMITTED

    docs = stored(db)
    assert set(docs) == {e.message_key for e in events}
    like = docs[events[1].message_key]
    assert (like["member_id"], like["post_id"], like["member_activity_type"]) == (8, 13, "LIKE_POST")
    assert consumer.commits == [{TP0: 42, TP1: 6}]
    assert activities.calls == 1  # one bulk upsert for the batch
    assert dead_letters(db) == []


def test_records_in_the_java_originals_format_are_stored(db):
    listener, _, _ = make_listener(db)
    key = "member_activity:kafka_event:LIKE_CANCEL_POST###12###7###2025-11-27 10:20:30.123456000"
    java_value = json.dumps(
        {
            "memberId": 7,
            "postId": 12,
            "memberActivityType": "LIKE_POST_CANCEL",
            "createdAt": [2025, 11, 27, 10, 20, 30, 123456000],
        }
    ).encode()
    consumer = FakeConsumer()
    batch = {
        TP0: [record(TP0, 0, java_value, key.encode(), headers=(("__TypeId__", b"com.dailyfeed.MemberActivityEvent"),))]
    }

    assert handle(listener, consumer, batch) is BatchOutcome.COMMITTED

    doc = stored(db)[key]
    assert doc["member_activity_type"] == "LIKE_POST_CANCEL"
    assert doc["comment_id"] is None and doc["updated_at"] is None
    # BSON dates keep milliseconds
    assert doc["created_at"].replace(tzinfo=timezone.utc) == datetime(
        2025, 11, 27, 10, 20, 30, 123000, tzinfo=timezone.utc
    )
    assert consumer.commits == [{TP0: 1}]


def test_poison_records_become_dead_letters_with_their_origin_and_the_rest_is_stored(db):
    listener, _, _ = make_listener(db)
    good = [new_event(1, 1), new_event(2, 2)]
    consumer = FakeConsumer()
    batch = {
        TP0: [
            event_record(TP0, 10, good[0]),
            record(TP0, 11, b"not json at all", b"k-11"),
            record(
                TP0,
                12,
                json.dumps(
                    {
                        "memberId": 3,
                        "postId": 3,
                        "memberActivityType": "POST_EXPLODE",
                        "createdAt": "2026-11-22T10:00:00Z",
                    }
                ).encode(),
                b"k-12",
            ),
            record(
                TP0,
                13,
                json.dumps(
                    {"postId": 4, "memberActivityType": "POST_CREATE", "createdAt": "2026-11-22T10:00:00Z"}
                ).encode(),
                b"k-13",
            ),
            event_record(TP0, 14, good[1]),
        ]
    }

    assert handle(listener, consumer, batch) is BatchOutcome.COMMITTED

    assert set(stored(db)) == {e.message_key for e in good}
    letters = dead_letters(db)
    assert [d["origin"]["offset"] for d in letters] == [11, 12, 13]
    assert letters[0]["origin"] == {
        "topic": TOPIC,
        "partition": 0,
        "offset": 11,
        "key": "k-11",
        "value": "not json at all",
    }
    assert "not JSON" in letters[0]["error"]["message"]
    assert "POST_EXPLODE" in letters[1]["error"]["message"]
    assert "memberId" in letters[2]["error"]["message"]
    assert all(d["status"] == "pending" and d["topic"] == TOPIC for d in letters)
    assert consumer.commits == [{TP0: 15}]


def test_a_store_that_recovers_within_the_retries_stores_the_batch(db):
    listener, activities, _ = make_listener(db, store_failures=2, store_retries=2)
    event = new_event()
    consumer = FakeConsumer()

    assert handle(listener, consumer, {TP0: [event_record(TP0, 0, event)]}) is BatchOutcome.COMMITTED

    assert list(stored(db)) == [event.message_key]
    assert activities.calls == 3
    assert dead_letters(db) == []
    assert consumer.commits == [{TP0: 1}]


def test_a_store_that_keeps_failing_turns_each_event_into_a_listener_dead_letter(db):
    listener, activities, _ = make_listener(db, store_failures=99, store_retries=2)
    events = [new_event(1, 1), new_event(2, 2, ActivityType.POST_DELETE)]
    consumer = FakeConsumer()
    batch = {TP0: [event_record(TP0, 3, events[0])], TP1: [event_record(TP1, 8, events[1])]}

    assert handle(listener, consumer, batch) is BatchOutcome.COMMITTED

    assert activities.calls == 3  # the first attempt and two retries
    assert stored(db) == {}
    letters = {d["message_key"]: d for d in dead_letters(db)}
    assert set(letters) == {e.message_key for e in events}
    letter = letters[events[1].message_key]
    assert json.loads(letter["payload"]) == events[1].to_json()
    assert letter["category"] == "POST"
    assert letter["origin"]["partition"] == 1 and letter["origin"]["offset"] == 8
    assert letter["error"] == {"type": "ConnectionError", "message": "store is down"}
    assert consumer.commits == [{TP0: 4, TP1: 9}]


def test_when_dead_letters_fail_too_nothing_is_committed_and_the_batch_is_read_again(db):
    listener, _, letters_store = make_listener(db, store_failures=99, store_retries=0, dead_letter_failures=1)
    events = [new_event(1, 1), new_event(2, 2)]
    batch = {
        TP0: [event_record(TP0, 20, events[0]), event_record(TP0, 21, events[1])],
        TP1: [record(TP1, 7, b"{broken", b"x")],
    }
    consumer = FakeConsumer()

    assert handle(listener, consumer, batch) is BatchOutcome.REWOUND
    assert consumer.commits == []
    assert sorted(consumer.seeks) == [(TP0, 20), (TP1, 7)]

    # The same records come back (as they would after the seek); now the dead letters can be written.
    assert handle(listener, consumer, batch) is BatchOutcome.COMMITTED
    assert {d["message_key"] for d in dead_letters(db)} == {
        events[0].message_key,
        events[1].message_key,
        f"unparsed:{TOPIC}:1:7",
    }
    assert consumer.commits == [{TP0: 22, TP1: 8}]


def test_a_poison_dead_letter_that_cannot_be_stored_stops_the_commit_of_stored_records(db):
    listener, _, _ = make_listener(db, dead_letter_failures=1)
    event = new_event()
    batch = {TP0: [event_record(TP0, 0, event), record(TP0, 1, b"\xff\xfe", b"bad")]}
    consumer = FakeConsumer()

    assert handle(listener, consumer, batch) is BatchOutcome.REWOUND
    assert consumer.commits == [] and consumer.seeks == [(TP0, 0)]

    assert handle(listener, consumer, batch) is BatchOutcome.COMMITTED
    assert list(stored(db)) == [event.message_key]  # stored twice, kept once
    assert [d["origin"]["offset"] for d in dead_letters(db)] == [1]


def test_redelivered_records_and_repeats_within_a_batch_leave_one_document(db):
    listener, _, _ = make_listener(db)
    event = new_event()
    consumer = FakeConsumer()
    handle(listener, consumer, {TP0: [event_record(TP0, 0, event), event_record(TP0, 1, event)]})
    handle(listener, consumer, {TP0: [event_record(TP0, 0, event)]})

    assert db[MEMBER_ACTIVITIES].count_documents({"message_key": event.message_key}) == 1
    assert consumer.commits == [{TP0: 2}, {TP0: 1}]


def test_stopping_while_the_store_is_retried_commits_nothing_and_keeps_no_dead_letter(db):
    listener, activities, _ = make_listener(db, store_failures=99, store_retries=5)
    listener.options = replace(listener.options, store_retry=RetryPolicy(attempts=6, base_s=5.0, max_s=5.0))
    consumer = FakeConsumer()

    async def scenario():
        task = asyncio.ensure_future(listener.handle_batch(consumer, {TP0: [event_record(TP0, 0, new_event())]}))
        assert await asyncio.to_thread(activities.failed.wait, 5)  # the first store failed: now it backs off
        listener._stop_requested.set()
        listener._wake_up()
        return await asyncio.wait_for(task, 2)

    assert asyncio.run(scenario()) is BatchOutcome.ABANDONED
    assert consumer.commits == [] and dead_letters(db) == []


def test_a_failed_commit_is_reported_and_the_stored_records_stay(db):
    listener, _, _ = make_listener(db)
    event = new_event()

    class RebalancedConsumer(FakeConsumer):
        async def commit(self, offsets):
            raise RuntimeError("partition was revoked")

    assert handle(listener, RebalancedConsumer(), {TP0: [event_record(TP0, 0, event)]}) is BatchOutcome.NOT_COMMITTED
    assert list(stored(db)) == [event.message_key]


def run_until_the_second_consumer_commits(db, consumers: list[FakeConsumer]):
    """A listener thread whose consumers are `consumers`, one after another, stopped once the second committed;
    (the listener, the consumers it made)."""
    made: list[FakeConsumer] = []

    def factory():
        made.append(consumers[len(made)])
        return made[-1]

    listener, _, _ = make_listener(db, consumer_factory=factory)
    listener.start()
    try:
        assert consumers[1].committed.wait(10)
    finally:
        listener.stop(timeout=5)
    return listener, made


def test_the_listener_thread_retries_an_unreachable_broker_then_consumes_until_stopped(db):
    event = new_event()
    consumers = [
        FakeConsumer(start_error=KafkaConnectionError("Unable to bootstrap")),
        FakeConsumer([{TP0: [event_record(TP0, 0, event)]}]),
    ]
    listener, made = run_until_the_second_consumer_commits(db, consumers)

    assert not listener.running
    assert list(stored(db)) == [event.message_key]
    assert made[1].commits == [{TP0: 1}]
    assert made[1].pattern == r"^member-activity-\d{8}$"
    assert made[0].stopped and made[1].stopped
    assert not any(t.name == "dailyfeed-listener" and t.is_alive() for t in threading.enumerate())


def test_a_consumer_failing_mid_poll_is_closed_and_replaced_and_the_records_are_consumed(db, caplog):
    event = new_event(7, 31)

    class FailingPoll(FakeConsumer):
        async def getmany(self, timeout_ms=0, max_records=None):
            raise KafkaConnectionError("connection to the coordinator lost (injected)")

    consumers = [FailingPoll(), FakeConsumer([{TP0: [event_record(TP0, 3, event)]}])]
    listener, made = run_until_the_second_consumer_commits(db, consumers)

    assert not listener.running and len(made) == 2
    assert made[0].started and made[0].stopped and made[0].commits == []  # the failed one was closed
    assert made[1].commits == [{TP0: 4}] and made[1].stopped
    assert list(stored(db)) == [event.message_key]
    [failed] = [r for r in caplog.records if r.getMessage().startswith("listener consumer failed")]
    assert failed.levelname == "ERROR"
    assert failed.getMessage().startswith(
        "listener consumer failed (KafkaConnectionError: connection to the coordinator lost (injected)); "
        "restarting it in "
    )
    assert failed.exc_info and failed.exc_info[0] is KafkaConnectionError  # the traceback, to find out why


def test_a_seek_that_fails_after_a_rebalance_still_rewinds_the_other_partitions(db, caplog):
    from aiokafka.errors import IllegalStateError

    class Rebalanced(FakeConsumer):
        def seek(self, tp, offset):
            if tp == TP1:  # revoked meanwhile: its next owner starts from the committed offset
                raise IllegalStateError(f"No current assignment for partition {tp}")
            super().seek(tp, offset)

    listener, _, _ = make_listener(db, store_failures=99, store_retries=0, dead_letter_failures=99)
    consumer = Rebalanced()
    batch = {TP0: [event_record(TP0, 20, new_event(7, 31))], TP1: [event_record(TP1, 7, new_event(8, 32))]}
    with caplog.at_level("INFO", logger="dailyfeed.activity.listener"):
        assert handle(listener, consumer, batch) is BatchOutcome.REWOUND
    assert consumer.seeks == [(TP0, 20)] and consumer.commits == []
    assert stored(db) == {} and dead_letters(db) == []
    assert f"could not seek {TP1} back to 7" in caplog.text
