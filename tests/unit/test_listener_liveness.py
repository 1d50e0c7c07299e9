"""The listener's liveness catches a stuck loop (issue 23): no poll completed within kafka.consumer.poll-ttl-s, or a
batch in hand longer than kafka.consumer.consume-ttl-s, is DOWN on /healthz; a loop that keeps retrying an
unreachable broker is not stuck. A fake consumer whose calls hang on purpose, and a clock the test moves."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import TopicPartition

from dailyfeed.activity.listener import ActivityListener
from dailyfeed.activity.repository import ActivityRepository, FollowRepository
from dailyfeed.activity.service import ActivityService
from dailyfeed.app import create_app
from dailyfeed.deadletters import DeadLetterStore
from dailyfeed.delivery import ConsumerOptions, RetryPolicy
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.extension import get_container

from ..support.kafka import wait_until

TP = TopicPartition("member-activity-20261205", 0)
POLL_TTL, CONSUME_TTL = 30.0, 120.0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class HangingConsumer:
    """getmany waits until `release_poll` is set, then hands out one record; commit waits for `release_commit`."""

    def __init__(self, loop_events: dict):
        self.events = loop_events
        self.polling = threading.Event()
        self.committing = threading.Event()
        self.committed = threading.Event()
        self.handed_out = False

    def subscribe(self, pattern=None):
        pass

    async def start(self):
        pass

    async def stop(self):
        pass

    async def getmany(self, timeout_ms=0, max_records=None):
        self.polling.set()
        if self.handed_out:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        await _wait(self.events["release_poll"])
        self.handed_out = True
        event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=12)
        return {TP: [_Record(TP.topic, TP.partition, 0, event.message_key.encode(), event.to_bytes())]}

    async def commit(self, offsets):
        self.committing.set()
        await _wait(self.events["release_commit"])
        self.committed.set()

    def seek(self, tp, offset):
        pass


class _Record:
    def __init__(self, topic, partition, offset, key, value):
        self.topic, self.partition, self.offset, self.key, self.value, self.headers = (
            topic,
            partition,
            offset,
            key,
            value,
            (),
        )


async def _wait(flag: threading.Event) -> None:
    while not flag.is_set():  # a thread's event, polled: the hang is what the test wants, not a busy loop
        await asyncio.sleep(0.01)


@pytest.fixture
def db(apps):
    """A fresh embedded store with its indexes (an app's)."""
    return get_container(apps.make()).db


def listener_with(db, consumer_factory, clock) -> ActivityListener:
    quick = RetryPolicy(attempts=None, base_s=0.001, max_s=0.01)
    options = ConsumerOptions(
        bootstrap_servers="unused",
        group_id="g",
        poll_timeout_ms=10,
        reconnect=quick,
        store_retry=quick,
        poll_ttl_s=POLL_TTL,
        consume_ttl_s=CONSUME_TTL,
    )
    return ActivityListener(
        ActivityService(ActivityRepository(db), FollowRepository(db)),
        DeadLetterStore(db),
        consumer_factory=consumer_factory,
        options=options,
        clock=clock,
    )


def hanging(db, *, poll: bool, commit: bool) -> tuple[ActivityListener, HangingConsumer, Clock, dict]:
    """A started listener whose consumer's poll and/or commit hang until released (events["release_..."])."""
    clock, events = Clock(), {"release_poll": threading.Event(), "release_commit": threading.Event()}
    for name, hangs in (("release_poll", poll), ("release_commit", commit)):
        if not hangs:
            events[name].set()
    consumer = HangingConsumer(events)
    listener = listener_with(db, lambda: consumer, clock)
    listener.start()
    return listener, consumer, clock, events


def release(listener: ActivityListener, events: dict) -> None:
    for event in events.values():
        event.set()
    listener.stop(timeout=5)


@pytest.mark.parametrize(
    "hangs, still_up_after, down_after, reason",
    [
        # a poll hanging longer than the poll TTL
        ("poll", POLL_TTL - 1, POLL_TTL + 1, "no poll completed for 31 s (kafka.consumer.poll-ttl-s = 30)"),
        # a commit hanging: polls are older than the poll TTL, but with a batch in hand only the consume TTL counts
        (
            "commit",
            POLL_TTL + 1,
            POLL_TTL + 1 + CONSUME_TTL,
            "one batch has been processing for 151 s (kafka.consumer.consume-ttl-s = 120)",
        ),
    ],
    ids=["stuck-poll", "stuck-commit"],
)
def test_a_hanging_poll_or_batch_is_down_past_its_ttl_and_up_again_once_it_returns(
    db, hangs, still_up_after, down_after, reason
):
    listener, consumer, clock, events = hanging(db, poll=hangs == "poll", commit=hangs == "commit")
    try:
        assert (consumer.polling if hangs == "poll" else consumer.committing).wait(5)
        start = clock.now
        clock.now = start + still_up_after
        assert listener.liveness()["status"] == "UP"
        clock.now = start + (POLL_TTL if hangs == "poll" else CONSUME_TTL)  # a TTL reached is not yet passed
        assert listener.liveness()["status"] == "UP"
        clock.now = start + down_after
        assert listener.liveness() == {"status": "DOWN", "reason": reason}

        events[f"release_{hangs}"].set()
        assert consumer.committed.wait(5)
        wait_until(lambda: listener.liveness()["status"] == "UP", 5, what="UP again once it returned")
    finally:
        release(listener, events)


def test_a_listener_retrying_an_unreachable_broker_is_not_stuck(db):
    clock, attempts = Clock(), []

    class Unreachable(HangingConsumer):
        async def start(self):
            attempts.append(clock.now)
            raise KafkaConnectionError("Unable to bootstrap (injected)")

    listener = listener_with(db, lambda: Unreachable({}), clock)
    listener.start()
    try:
        wait_until(lambda: attempts, 5)
        clock.now += POLL_TTL * 10
        seen = len(attempts)
        wait_until(lambda: len(attempts) > seen + 1, 5, what="another connect attempt after the clock moved")
        assert listener.liveness()["status"] == "UP"
    finally:
        listener.stop(timeout=5)


def test_an_up_listener_says_what_it_consumes_and_how_long_ago_it_last_polled_and_a_stopped_one_why_it_is_down(db):
    listener, consumer, clock, events = hanging(db, poll=True, commit=False)
    try:
        assert consumer.polling.wait(5)
        clock.now += 12.34
        assert listener.liveness() == {
            "status": "UP",
            "consuming": "pattern ^member-activity-\\d{8}$",
            "lastPollSecondsAgo": 12.3,
        }
    finally:
        release(listener, events)
    assert listener.liveness() == {"status": "DOWN", "reason": "stopped: the process is shutting down"}


def test_healthz_answers_503_naming_the_stuck_listener(db):
    app = create_app({"mongo.uri": f"mongomock://healthz-{uuid.uuid4().hex[:8]}"})
    listener, consumer, clock, events = hanging(db, poll=True, commit=True)
    container = get_container(app)
    container.background.append(listener)
    try:
        assert consumer.polling.wait(5)
        assert app.test_client().get("/healthz").status_code == 200
        clock.now += POLL_TTL + 5
        answer = app.test_client().get("/healthz")
        assert answer.status_code == 503
        assert answer.json["components"]["listener"]["status"] == "DOWN"
        assert answer.json["components"]["process"] == {"status": "UP"}
    finally:
        release(listener, events)
        container.close()
