"""restore-publisher over real Kafka, with FerretDB: posts written while the app cannot reach the broker become
kafka publisher dead letters; restored with the real broker, they reach the topic with their original keys and the
listener records each once. "Broker down" is the writing app pointed at a closed port: the shared broker is never
touched."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from dailyfeed.deadletters import dead_letter_event
from dailyfeed.events import ActivityEvent
from dailyfeed.extension import get_container
from dailyfeed.store import KAFKA_PUBLISHER_DEAD_LETTERS, MEMBER_ACTIVITIES

from ..support.apps import free_port
from ..support.kafka import Api, run_async, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.mongo]


def test_posts_written_while_kafka_is_unreachable_are_recorded_after_restore_publisher(kafka_apps):
    tag = uuid.uuid4().hex[:8]
    unreachable = kafka_apps.app(
        run_background=False,
        tag=tag,
        **{"kafka.bootstrap-servers": f"127.0.0.1:{free_port()}", "kafka.producer.send-timeout-ms": 1000},
    )
    api = Api(unreachable)
    post_ids = []
    for n in range(5):
        response = api.post(7, "/api/posts", json={"content": f"written while Kafka was away {n}"})
        assert response.status_code == 201, response.json
        post_ids.append(response.json["data"]["id"])
    db = get_container(unreachable).db
    dead = list(db[KAFKA_PUBLISHER_DEAD_LETTERS].find().sort("created_at", 1))
    assert len(dead) == 5 and {d["status"] for d in dead} == {"pending"}
    assert all(d["topic"].startswith(f"t{tag}-member-activity-") for d in dead)
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 0

    # The same store, the real broker, the listener running: the state after the broker came back.
    restored = kafka_apps.app(tag=tag)
    result = restored.test_cli_runner().invoke(args=["restore-publisher"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "restored 5, skipped 0, failed 0"
    assert len(re.findall(r"republished via post-service \(kafka\)", result.output)) == 5
    activities = wait_until(
        lambda: (docs := list(db[MEMBER_ACTIVITIES].find().sort("created_at", 1))) and len(docs) >= 5 and docs,
        timeout=60,
        what="the listener records 5 activities",
    )
    assert [a["message_key"] for a in activities] == [d["message_key"] for d in dead]  # the original keys
    assert [(a["post_id"], a["member_id"], a["member_activity_type"]) for a in activities] == [
        (post_id, 7, "POST_CREATE") for post_id in post_ids
    ]
    assert {(d["status"], d["is_completed"]) for d in db[KAFKA_PUBLISHER_DEAD_LETTERS].find()} == {("completed", True)}

    again = restored.test_cli_runner().invoke(args=["restore-publisher"])
    assert again.exit_code == 0 and again.output.splitlines()[-1] == "restored 0, skipped 0, failed 0"
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 5


def test_restore_publisher_with_kafka_still_unreachable_leaves_every_dead_letter_pending(kafka_apps):
    tag = uuid.uuid4().hex[:8]
    closed_port = {"kafka.bootstrap-servers": f"127.0.0.1:{free_port()}", "kafka.producer.send-timeout-ms": 1000}
    app = kafka_apps.app(run_background=False, tag=tag, **closed_port)
    for n in range(4):
        assert Api(app).post(7, "/api/posts", json={"content": f"p{n}"}).status_code == 201
    db = get_container(app).db

    result = app.test_cli_runner().invoke(args=["restore-publisher"])

    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "restored 0, skipped 1, failed 3"
    assert "post-service (kafka) did not take it, left pending: TransportUnavailable" in result.output
    docs = list(db[KAFKA_PUBLISHER_DEAD_LETTERS].find().sort("created_at", 1))
    assert [(d["status"], d["is_editing"], d["attempts"]) for d in docs] == [
        ("pending", False, 2),
        ("pending", False, 2),
        ("pending", False, 2),
        ("pending", False, 1),
    ]


def raw_records(bootstrap: str, topics: set[str], count: int, timeout_s: float = 60) -> list:
    """The first `count` records of `topics`, read from the beginning by a consumer group of this test's own."""
    from aiokafka import AIOKafkaConsumer

    async def read():
        consumer = AIOKafkaConsumer(
            *sorted(topics),
            bootstrap_servers=bootstrap,
            group_id=f"raw-{uuid.uuid4().hex}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            records = []
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=1000)).values():
                    records.extend(batch)
            return records
        finally:
            await consumer.stop()

    return run_async(read, timeout=timeout_s)


def test_every_category_restored_through_the_real_kafka_transport_keeps_its_key_and_event_bytes(kafka_apps):
    tag = uuid.uuid4().hex[:8]
    unreachable = kafka_apps.app(
        run_background=False,
        tag=tag,
        **{"kafka.bootstrap-servers": f"127.0.0.1:{free_port()}", "kafka.producer.send-timeout-ms": 1000},
    )
    api = Api(unreachable)
    post = api.post(7, "/api/posts", json={"content": "p"}).json["data"]
    comment = api.post(8, "/api/comments", json={"postId": post["id"], "content": "c"}).json["data"]
    assert api.post(9, f"/api/comments/{comment['id']}/like").status_code == 201
    assert api.post(9, f"/api/posts/{post['id']}/like").status_code == 201
    db = get_container(unreachable).db
    dead = list(db[KAFKA_PUBLISHER_DEAD_LETTERS].find().sort("created_at", 1))
    assert [d["category"] for d in dead] == ["POST", "COMMENT", "COMMENT_LIKE", "POST_LIKE"]

    restored = kafka_apps.app(run_background=False, tag=tag)
    result = restored.test_cli_runner().invoke(args=["restore-publisher"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "restored 4, skipped 0, failed 0"
    assert "republished via comment-service (kafka)" in result.output
    records = raw_records(kafka_apps.bootstrap, {d["topic"] for d in dead}, 4)
    by_key = {r.key: r for r in records}
    assert set(by_key) == {d["message_key"].encode() for d in dead}  # the original keys, as bytes
    for letter in dead:
        record = by_key[letter["message_key"].encode()]
        assert record.topic == letter["topic"]
        assert json.loads(record.value) == json.loads(letter["payload"])  # the canonical event, unchanged
        assert ActivityEvent.from_bytes(record.value, record.key) == dead_letter_event(letter)
    assert {d["status"] for d in db[KAFKA_PUBLISHER_DEAD_LETTERS].find()} == {"completed"}


def test_the_real_kafka_transports_open_circuit_fails_a_restore_fast_and_keeps_every_dead_letter(kafka_apps):
    tag = uuid.uuid4().hex[:8]
    app = kafka_apps.app(
        run_background=False,
        tag=tag,
        **{
            "kafka.bootstrap-servers": f"127.0.0.1:{free_port()}",
            "kafka.producer.send-timeout-ms": 1000,
            "circuit.window-size": 2,
            "circuit.minimum-calls": 2,
            "circuit.failure-rate": 1.0,
            "circuit.open-wait-s": 600,
        },
    )
    for n in range(4):
        assert Api(app).post(7, "/api/posts", json={"content": f"p{n}"}).status_code == 201
    db = get_container(app).db
    transport = get_container(app).transports["post-service"]
    assert transport.breaker.state == "open"
    assert [d["error"]["type"] for d in db[KAFKA_PUBLISHER_DEAD_LETTERS].find().sort("created_at", 1)] == [
        "TransportUnavailable",
        "TransportUnavailable",
        "CircuitOpen",
        "CircuitOpen",
    ]

    result = app.test_cli_runner().invoke(args=["restore-publisher"])

    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "restored 0, skipped 1, failed 3"
    assert result.output.count("did not take it, left pending: CircuitOpen") == 3  # not attempted: no timeouts
    docs = list(db[KAFKA_PUBLISHER_DEAD_LETTERS].find().sort("created_at", 1))
    assert [(d["status"], d["is_editing"], d["attempts"]) for d in docs] == [
        ("pending", False, 2),
        ("pending", False, 2),
        ("pending", False, 2),
        ("pending", False, 1),
    ]

    # A process with the broker reachable (its own breaker, closed) restores all four.
    restored = kafka_apps.app(run_background=False, tag=tag)
    again = restored.test_cli_runner().invoke(args=["restore-publisher"])
    assert again.exit_code == 0 and again.output.splitlines()[-1] == "restored 4, skipped 0, failed 0"
    assert len(raw_records(kafka_apps.bootstrap, {d["topic"] for d in docs}, 4)) == 4
