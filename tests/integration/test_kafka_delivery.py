"""publish-type = kafka end to end on the real broker and FerretDB: the app publishes, the listener thread (or
`dailyfeed listen`) records, and the stored documents are what a member would see.

Each test has its own topic prefix, consumer group and database (tests/support/kafka.py: KafkaApps)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from dailyfeed.activity.listener import ActivityListener
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.extension import get_container
from dailyfeed.store import (
    FEIGN_DEAD_LETTERS,
    KAFKA_LISTENER_DEAD_LETTERS,
    KAFKA_PUBLISHER_DEAD_LETTERS,
    MEMBER_ACTIVITIES,
)
from dailyfeed.transport.topics import DateTopics

from ..support import ROOT
from ..support.kafka import (
    Api,
    activities,
    committed_offsets,
    describe_topic,
    make_topics,
    produce,
    topic_names,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.mongo]


def today_topic(app) -> str:
    return DateTopics.from_settings(get_container(app).settings).upcoming()[0]


def consumed(app) -> int:
    """How many records the app's consumer group has committed, over all its topics."""
    settings = get_container(app).settings
    return sum(committed_offsets(settings["kafka.bootstrap-servers"], settings["kafka.consumer.group-id"]).values())


def wait_consumed(app, count: int, timeout: float = 60) -> None:
    wait_until(lambda: consumed(app) >= count, timeout, 0.2, f"the listener commits {count} records")


def ok(response, status=(200, 201)):
    assert response.status_code in status, response.json
    return response.json["data"]


def test_every_content_action_is_recorded_once_with_the_acting_member(kafka_apps):
    app = kafka_apps.app()
    api = Api(app)
    post = ok(api.post(7, "/api/posts", json={"title": "t", "content": "first"}))["id"]
    ok(api.put(7, f"/api/posts/{post}", json={"content": "edited"}))
    ok(api.post(9, f"/api/posts/{post}/like"))
    ok(api.delete(9, f"/api/posts/{post}/like"))
    comment = ok(api.post(8, "/api/comments", json={"postId": post, "content": "hi"}))["id"]
    reply = ok(api.post(9, "/api/comments/replies", json={"postId": post, "parentId": comment, "content": "re"}))["id"]
    ok(api.put(8, f"/api/comments/{comment}", json={"content": "hi!"}))
    ok(api.post(7, f"/api/comments/{comment}/like"))
    ok(api.delete(7, f"/api/comments/{comment}/like"))
    ok(api.delete(9, f"/api/comments/{reply}"))
    ok(api.delete(7, f"/api/posts/{post}"))
    expected = sorted(
        [
            (7, "POST_CREATE", post, None),
            (7, "POST_UPDATE", post, None),
            (9, "LIKE_POST", post, None),
            (9, "LIKE_POST_CANCEL", post, None),
            (8, "COMMENT_CREATE", post, comment),
            (9, "COMMENT_CREATE", post, reply),
            (8, "COMMENT_UPDATE", post, comment),
            (7, "LIKE_COMMENT", post, comment),
            (7, "LIKE_COMMENT_CANCEL", post, comment),
            (9, "COMMENT_DELETE", post, reply),
            (7, "POST_DELETE", post, None),
        ]
    )

    wait_consumed(app, len(expected))

    docs = activities(app)
    assert sorted((d["member_id"], d["member_activity_type"], d["post_id"], d["comment_id"]) for d in docs) == expected
    assert len({d["message_key"] for d in docs}) == len(expected)
    db = get_container(app).db
    assert db[KAFKA_PUBLISHER_DEAD_LETTERS].count_documents({}) == 0
    assert db[KAFKA_LISTENER_DEAD_LETTERS].count_documents({}) == 0


def test_the_same_record_delivered_three_times_is_one_document(kafka_apps):
    app = kafka_apps.app()
    transport = get_container(app).transports["post-service"]
    event = ActivityEvent.new(ActivityType.LIKE_POST, 5, post_id=77)
    transport.publish(event)
    transport.publish(event)  # a retry of the same action: same key
    produce(kafka_apps.bootstrap, [{"topic": today_topic(app), "key": event.message_key, "value": event.to_bytes()}])

    wait_consumed(app, 3)

    [doc] = activities(app)
    assert (doc["message_key"], doc["member_id"], doc["post_id"]) == (event.message_key, 5, 77)


def test_a_poison_record_becomes_one_listener_dead_letter_and_the_records_after_it_are_stored(kafka_apps):
    app = kafka_apps.app()
    topic = today_topic(app)
    after = [ActivityEvent.new(ActivityType.POST_CREATE, 3, post_id=30 + i) for i in range(2)]
    [(_, _, poison_offset), *_] = produce(
        kafka_apps.bootstrap,
        [
            {"topic": topic, "partition": 0, "key": "junk-key", "value": b"\x00 not an event"},
            *({"topic": topic, "partition": 0, "key": e.message_key, "value": e.to_bytes()} for e in after),
        ],
    )

    wait_consumed(app, 3)

    assert {d["message_key"] for d in activities(app)} == {e.message_key for e in after}
    [letter] = get_container(app).db[KAFKA_LISTENER_DEAD_LETTERS].find()
    assert letter["origin"] == {
        "topic": topic,
        "partition": 0,
        "offset": poison_offset,
        "key": "junk-key",
        "value": "\x00 not an event",
    }
    assert letter["status"] == "pending" and "not JSON" in letter["error"]["message"]


def test_records_in_the_java_originals_format_are_stored(kafka_apps):
    app = kafka_apps.app()
    key = "member_activity:kafka_event:COMMENT_CREATE###41###6###2025-11-27 10:20:30.123456789"
    value = {
        "memberId": 6,
        "postId": 40,
        "commentId": 41,
        "memberActivityType": "COMMENT_CREATE",
        "createdAt": [2025, 11, 27, 10, 20, 30, 123456789],
    }  # no updatedAt at all
    produce(
        kafka_apps.bootstrap,
        [
            {
                "topic": today_topic(app),
                "key": key,
                "value": value,
                "headers": [
                    ("__TypeId__", b"click.dailyfeed.code.domain.member.activity.dto.MemberActivityTransportDto")
                ],
            }
        ],
    )

    wait_consumed(app, 1)

    [doc] = activities(app)
    assert doc["message_key"] == key
    assert (doc["member_id"], doc["post_id"], doc["comment_id"], doc["member_activity_type"]) == (
        6,
        40,
        41,
        "COMMENT_CREATE",
    )
    assert doc["created_at"] == datetime(2025, 11, 27, 10, 20, 30, 123000, tzinfo=timezone.utc)
    assert doc["updated_at"] is None


def test_records_on_yesterdays_topic_and_on_a_date_topic_created_later_are_stored(kafka_apps):
    app = kafka_apps.app()
    topics = DateTopics.from_settings(get_container(app).settings)
    assert consumed(app) == 0
    old = ActivityEvent.new(ActivityType.POST_CREATE, 11, post_id=1, at=datetime.now(timezone.utc) - timedelta(days=3))
    yesterday = topics.for_day(topics.today() - timedelta(days=1))
    brand_new = topics.for_day(topics.today() + timedelta(days=30))
    new = ActivityEvent.new(ActivityType.POST_CREATE, 12, post_id=2)
    make_topics(kafka_apps.bootstrap, [yesterday, brand_new])  # both after the listener subscribed
    produce(
        kafka_apps.bootstrap,
        [
            {"topic": yesterday, "key": old.message_key, "value": old.to_bytes()},
            {"topic": brand_new, "key": new.message_key, "value": new.to_bytes()},
        ],
    )

    wait_until(lambda: len(activities(app)) == 2, 60, 0.2, "both records are stored")

    assert {d["message_key"] for d in activities(app)} == {old.message_key, new.message_key}


def test_a_listener_killed_after_storing_before_committing_loses_and_duplicates_nothing(kafka_apps):
    app = kafka_apps.app(run_background=False)  # no listener in the app: this test runs its own
    dailyfeed = get_container(app)
    api = Api(app)
    posts = [ok(api.post(4, "/api/posts", json={"content": f"p{i}"}))["id"] for i in range(5)]

    class Killed(asyncio.CancelledError):
        """The process dies here: no commit, no leaving the group."""

    class DiesBeforeCommit:
        def __init__(self, consumer):
            self.consumer = consumer

        def __getattr__(self, name):
            return getattr(self.consumer, name)

        async def commit(self, offsets):
            raise Killed()

        async def stop(self):
            pass  # a killed process does not say goodbye: the broker notices by the session timeout

    settings = dailyfeed.settings
    first = ActivityListener.from_settings(settings, dailyfeed.activity_service, dailyfeed.dead_letters)
    make_consumer = first.consumer_factory
    first.consumer_factory = lambda: DiesBeforeCommit(make_consumer())
    first.start()
    wait_until(lambda: not first.running, 60, 0.1, "the first listener stores a batch and dies")
    stored_before = {d["post_id"] for d in activities(app)}
    assert stored_before and stored_before <= set(posts)
    assert consumed(app) == 0  # it died before committing

    second = ActivityListener.from_settings(settings, dailyfeed.activity_service, dailyfeed.dead_letters)
    second.start()
    try:
        wait_consumed(app, 5)
    finally:
        second.stop()

    docs = activities(app)
    assert sorted(d["post_id"] for d in docs) == sorted(posts)  # each once: none lost, none twice
    assert all(d["member_activity_type"] == "POST_CREATE" and d["member_id"] == 4 for d in docs)


def test_post_service_on_kafka_and_comment_service_on_feign_are_both_recorded(kafka_apps):
    app = kafka_apps.app(**{"publish-type.comment-service": "feign"})
    api = Api(app)
    post = ok(api.post(1, "/api/posts", json={"content": "by kafka"}))["id"]
    ok(api.post(1, f"/api/posts/{post}/like"))
    comment = ok(api.post(2, "/api/comments", json={"postId": post, "content": "by feign"}))["id"]
    ok(api.post(3, f"/api/comments/{comment}/like"))

    wait_consumed(app, 2)  # only the post-service events travel by Kafka
    wait_until(lambda: len(activities(app)) == 4, 30, 0.1, "all four activities are stored")

    assert sorted((d["member_activity_type"], d["member_id"]) for d in activities(app)) == [
        ("COMMENT_CREATE", 2),
        ("LIKE_COMMENT", 3),
        ("LIKE_POST", 1),
        ("POST_CREATE", 1),
    ]
    assert consumed(app) == 2
    db = get_container(app).db
    assert db[FEIGN_DEAD_LETTERS].count_documents({}) == 0
    assert db[KAFKA_PUBLISHER_DEAD_LETTERS].count_documents({}) == 0


def test_start_up_creates_today_and_tomorrow_with_the_configured_partitions_and_retention(kafka_apps):
    app = kafka_apps.app(**{"kafka.topic.partitions": 3, "kafka.topic.retention-ms": 172800000})
    for topic in DateTopics.from_settings(get_container(app).settings).upcoming():
        assert describe_topic(kafka_apps.bootstrap, topic) == {"partitions": 3, "retention.ms": "172800000"}


def test_topics_ensure_and_prune_from_the_command_line(kafka_apps):
    app = kafka_apps.app(run_background=False)
    topics = DateTopics.from_settings(get_container(app).settings)
    today = topics.today()
    runner = app.test_cli_runner()

    first = runner.invoke(args=["topics", "ensure"])
    again = runner.invoke(args=["topics", "ensure"])
    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    upcoming = topics.upcoming()
    assert first.output.splitlines() == [f"{upcoming[0]}: created", f"{upcoming[1]}: created"]
    assert again.output.splitlines() == [f"{upcoming[0]}: exists", f"{upcoming[1]}: exists"]

    old = [topics.for_day(today - timedelta(days=n)) for n in (30, 3)]
    kept = topics.for_day(today - timedelta(days=2))
    make_topics(kafka_apps.bootstrap, [*old, kept])
    wait_until(lambda: {*old, kept} <= set(topic_names(kafka_apps.bootstrap)), 10, 0.1, "the broker lists them")

    dry = runner.invoke(args=["topics", "prune", "--keep-days", "2", "--dry-run"])
    assert dry.exit_code == 0 and dry.output.splitlines() == [f"would delete {t}" for t in sorted(old)]
    assert set(old) <= set(topic_names(kafka_apps.bootstrap))  # a dry run deletes nothing

    pruned = runner.invoke(args=["topics", "prune", "--keep-days", "2"])
    assert pruned.exit_code == 0 and pruned.output.splitlines() == [f"deleted {t}" for t in sorted(old)]
    wait_until(lambda: not set(old) & set(topic_names(kafka_apps.bootstrap)), 10, 0.1, "the old topics are gone")
    assert {kept, *upcoming} <= set(topic_names(kafka_apps.bootstrap))

    nothing = runner.invoke(args=["topics", "prune", "--keep-days", "2"])
    assert nothing.exit_code == 0 and nothing.output.strip() == "no date topic is older than 2 days"


def test_dailyfeed_listen_records_until_sigterm_and_commits_what_it_stored(kafka_apps):
    app = kafka_apps.app(run_background=False)
    settings = get_container(app).settings
    events = [ActivityEvent.new(ActivityType.POST_CREATE, 21, post_id=200 + i) for i in range(3)]
    for event in events:
        get_container(app).transports["post-service"].publish(event)
    env = {
        **os.environ,
        "DAILYFEED_CONFIG": str(ROOT / "config" / "test.toml"),
        "DAILYFEED_MONGO_URI": settings["mongo.uri"],
        "DAILYFEED_MONGO_DATABASE": settings["mongo.database"],
        "DAILYFEED_KAFKA_BOOTSTRAP_SERVERS": settings["kafka.bootstrap-servers"],
        "DAILYFEED_KAFKA_TOPIC_PREFIX": settings["kafka.topic.prefix"],
        "DAILYFEED_KAFKA_CONSUMER_GROUP_ID": settings["kafka.consumer.group-id"],
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "from dailyfeed.cli import main; main(prog_name='dailyfeed')", "listen"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: len(activities(app)) == 3 or process.poll() is not None,
            60,
            0.2,
            "dailyfeed listen stores the three records",
        )
        wait_consumed(app, 3)
        assert process.poll() is None, "dailyfeed listen ended by itself"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "dailyfeed listening: topics" in output and "dailyfeed listener stopped" in output
    assert {d["message_key"] for d in activities(app)} == {e.message_key for e in events}
    assert get_container(app).db[MEMBER_ACTIVITIES].count_documents({}) == 3
