"""A replay task against real Kafka (a private broker) and FerretDB while the broker is frozen mid-task (SIGSTOP:
its sockets stay open, nothing answers): the task fails with the reason, what it moved stays moved and the rest
stays pending; after the thaw and a resume it completes, and every dead letter is delivered: each key reaches the
topic and the listener records each exactly once.

On the topic itself delivery is at least once, and this test measures by how much: a send that timed out against
the frozen broker was still in the producer's hands, and the broker takes it once thawed; the resumed task sends that
dead letter again (it cannot know). Only those can be there twice, and the listener's upsert by message key (SPEC
section 6) records each once."""

from __future__ import annotations

import pytest

from dailyfeed.events import ActivityEvent, ActivityType, Service, utcnow
from dailyfeed.extension import get_container
from dailyfeed.restore.tasks import TaskRunner, task_store
from dailyfeed.store import AUDIT, KAFKA_PUBLISHER_DEAD_LETTERS
from dailyfeed.tokens import issue_admin_token
from dailyfeed.transport.base import TransportUnavailable
from dailyfeed.transport.topics import DateTopics

from ..support.apps import make_app
from ..support.console import Admin, bearer
from ..support.kafka import KafkaApps, activities, describe_topic, make_topics, run_async, wait_until
from ..support.records import read_records

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.mongo]

LETTERS = 12
RATE = 4  # a chunk of four a second


@pytest.fixture
def kafka_apps(private_broker, mongo_uri):
    apps = KafkaApps(make_app, private_broker.bootstrap, mongo_uri)
    yield apps
    apps.close()


def records_on(bootstrap: str, topic: str, partitions: int) -> int:
    """How many records the topic holds (the sum of its partitions' end offsets)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    async def count() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await consumer.start()
        try:
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
            return sum(ends.values())
        finally:
            await consumer.stop()

    return run_async(count, 30)


def test_a_replay_task_fails_with_the_reason_while_the_broker_is_frozen_and_after_a_resume_delivers_each_once(
    private_broker, kafka_apps
):
    # the listener runs (it records what reaches the topic); the task worker is left asleep: this test runs the task
    app = kafka_apps.app(run_background=True, **{"kafka.producer.send-timeout-ms": 1500, "tasks.poll-s": 600.0})
    container = get_container(app)
    topic = DateTopics.from_settings(container.settings).upcoming()[0]
    make_topics(private_broker.bootstrap, [topic])  # the app made it at start-up already, unless that failed
    now = utcnow()
    events = [ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=500 + n, at=now) for n in range(LETTERS)]
    for event in events:
        container.dead_letters.record_publisher_failure(
            "kafka", event, TransportUnavailable("broker was down"), topic=topic
        )
    keys = {event.message_key for event in events}
    alice = Admin(app, bearer(issue_admin_token(container.settings["auth.jwt-secret"], 600, "alice")))
    started = alice.post("/tasks", {"action": "replay", "filter": {"collection": "kafka-publisher"}, "rate": RATE})
    assert started.status_code == 201, started.json
    task_id = started.json["data"]["id"]
    store = task_store(container)
    runner = TaskRunner(container, store, owner="serving-1")
    frozen = []

    def freeze_after_the_first_chunk(doc):
        if doc["moved"] >= RATE and not frozen:
            private_broker.freeze()
            frozen.append(doc["moved"])

    try:
        runner.run(store.acquire(store.get(task_id), owner=runner.owner), on_progress=freeze_after_the_first_chunk)
        failed = alice.data(alice.get(f"/tasks/{task_id}"))
        assert frozen and failed["state"] == "failed", failed
        assert "did not take it" in failed["error"] and "TransportUnavailable" in failed["error"], failed["error"]
        db = container.db
        letters = list(db[KAFKA_PUBLISHER_DEAD_LETTERS].find())
        assert len(letters) == LETTERS  # nothing lost
        moved = [d for d in letters if d["status"] == "completed"]
        assert len(moved) == failed["moved"] == frozen[0]
        assert {d["status"] for d in letters} == {"completed", "pending"}
    finally:
        private_broker.thaw()

    transport = container.transports[Service.POST]
    wait_until(lambda: _answers(transport), 60, 0.5, "the thawed broker answers again")
    resumed = alice.post(f"/tasks/{task_id}/resume", {"reason": "broker thawed"})
    assert resumed.status_code == 200 and resumed.json["data"]["state"] == "running"
    TaskRunner(container, store, owner="serving-2").run_pending()
    done = alice.data(alice.get(f"/tasks/{task_id}"))
    assert (done["state"], done["moved"]) == ("completed", LETTERS), done
    letters = list(db[KAFKA_PUBLISHER_DEAD_LETTERS].find())
    assert {d["status"] for d in letters} == {"completed"}
    on_topic = read_records(private_broker.bootstrap, topic, LETTERS, timeout_s=60)
    assert {r["key"] for r in on_topic} <= keys
    recorded = wait_until(
        lambda: (found := activities(app)) and len(found) >= LETTERS and found,
        90,
        0.5,
        "the listener records every replayed dead letter",
    )
    assert sorted(a["message_key"] for a in recorded) == sorted(keys)  # each exactly once
    total = records_on(private_broker.bootstrap, topic, describe_topic(private_broker.bootstrap, topic)["partitions"])
    assert LETTERS <= total <= LETTERS + failed["failed"], (total, failed["failed"])
    outcomes = [(e["outcome"], e["via"]) for e in db[AUDIT].find({"task": store.get(task_id)["_id"]}).sort("at", 1)]
    assert outcomes == [("started", "api"), ("failed", "task"), ("resumed", "api"), ("completed", "task")]


def _answers(transport) -> bool:
    try:
        transport.check_connected(5.0)
    except TransportUnavailable:
        return False
    return True
