"""`dailyfeed restore-publisher` through the CLI runner, on both store backends: the activity service (feign) or
the broker (a fake Kafka transport) is down while members write, then comes back and the restore delivers."""

from __future__ import annotations

import json

from pymongo.errors import ServerSelectionTimeoutError

from dailyfeed.deadletters import dead_letter_event
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.extension import get_container

from ..support.deadletters import (
    FEIGN_DEAD_LETTERS,
    KAFKA_LISTENER_DEAD_LETTERS,
    KAFKA_PUBLISHER_DEAD_LETTERS,
    MEMBER_ACTIVITIES,
    activity_documents,
    documents,
    post_event,
)


def write_posts(client, token, count: int, member_id: int = 7) -> list[int]:
    ids = []
    for n in range(count):
        response = client.post("/api/posts", json={"content": f"post {n}"}, headers=token(member_id))
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["data"]["id"])
    return ids


def test_posts_written_while_the_activity_service_is_down_are_recorded_by_restore_publisher(
    app, client, token, db, runner, activity_service_down
):
    activity_service_down.down()
    post_ids = write_posts(client, token, 5)
    dead = documents(db, FEIGN_DEAD_LETTERS)
    assert len(dead) == 5 and {d["status"] for d in dead} == {"pending"}
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 0

    activity_service_down.up()
    result = runner.invoke(args=["restore-publisher"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "restored 5, skipped 0, failed 0"
    activities = documents(db, MEMBER_ACTIVITIES)
    assert [a["message_key"] for a in activities] == [d["message_key"] for d in dead]  # original keys, oldest first
    assert [(a["post_id"], a["member_id"], a["member_activity_type"]) for a in activities] == [
        (post_id, 7, "POST_CREATE") for post_id in post_ids
    ]
    for doc in documents(db, FEIGN_DEAD_LETTERS):
        assert (doc["status"], doc["is_completed"], doc["is_editing"]) == ("completed", True, False)

    again = runner.invoke(args=["restore-publisher"])
    assert again.exit_code == 0, again.output
    assert again.output.splitlines()[-1] == "restored 0, skipped 0, failed 0"
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 5


def test_a_transport_still_down_leaves_dead_letters_pending_and_the_run_fails(fake):
    app = fake.app
    client, runner, db = app.test_client(), app.test_cli_runner(), get_container(app).db
    token = _token(app)
    fake.fail_with()
    write_posts(client, token, 5)
    assert db[KAFKA_PUBLISHER_DEAD_LETTERS].count_documents({"status": "pending"}) == 5

    result = runner.invoke(args=["restore-publisher"])

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[-1] == "restored 0, skipped 2, failed 3"
    assert sum("did not take it, left pending" in line for line in lines) == 3
    assert sum("left pending: the post-service transport is down" in line for line in lines) == 2  # gave up
    tried, untouched = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)[:3], documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)[3:]
    for doc in tried:
        assert (doc["status"], doc["is_editing"], doc["attempts"]) == ("pending", False, 2)
        assert doc["error"]["type"] == "TransportUnavailable" and doc["last_attempt_at"] is not None
    assert [doc["attempts"] for doc in untouched] == [1, 1]

    fake.recover()
    result = runner.invoke(args=["restore-publisher"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "restored 5, skipped 0, failed 0"
    assert [e.message_key for e in fake.published] == [
        d["message_key"] for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    ]
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 5


def test_republishing_something_already_recorded_is_a_success_not_a_duplicate(fake):
    app = fake.app
    db = get_container(app).db
    fake.fail_with()
    write_posts(app.test_client(), _token(app), 2)
    fake.recover()
    # One of them got through after all (e.g. the broker took it just after the timeout).
    first = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)[0]
    get_container(app).activity_service.record_activity(dead_letter_event(first))

    result = app.test_cli_runner().invoke(args=["restore-publisher"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "restored 2, skipped 0, failed 0"
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 2


def test_handoff_then_restore_listener_reaches_the_activities_the_live_path_stores(
    app, client, token, db, runner, activity_service_down, live_store
):
    activity_service_down.down()
    post_id = write_posts(client, token, 2)[0]
    comment = client.post("/api/comments", json={"postId": post_id, "content": "hi"}, headers=token(8))
    assert client.post(f"/api/posts/{post_id}/like", headers=token(9)).status_code == 201
    assert client.post(f"/api/comments/{comment.get_json()['data']['id']}/like", headers=token(9)).status_code == 201
    dead = documents(db, FEIGN_DEAD_LETTERS)
    assert len(dead) == 5

    handoff = runner.invoke(args=["restore-publisher", "--mode", "handoff"])

    assert handoff.exit_code == 0, handoff.output
    assert handoff.output.splitlines()[-1] == "restored 5, skipped 0, failed 0"
    assert {d["status"] for d in documents(db, FEIGN_DEAD_LETTERS)} == {"completed"}
    handed = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert [(h["message_key"], h["category"], json.loads(h["payload"])) for h in handed] == [
        (d["message_key"], d["category"], json.loads(d["payload"])) for d in dead
    ]
    assert {(h["status"], h["is_completed"], h["is_editing"]) for h in handed} == {("pending", False, False)}
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 0  # handing off records nothing by itself

    restore = runner.invoke(args=["restore-listener"])

    assert restore.exit_code == 0, restore.output
    assert restore.output.splitlines()[-1] == "restored 5, skipped 0, failed 0"
    assert {d["status"] for d in documents(db, KAFKA_LISTENER_DEAD_LETTERS)} == {"completed"}
    assert activity_documents(db) == live_store([dead_letter_event(d) for d in dead])


def test_handing_off_twice_keeps_one_listener_dead_letter(
    app, client, token, db, runner, activity_service_down, dead_letters
):
    activity_service_down.down()
    write_posts(client, token, 1)
    (doc,) = documents(db, FEIGN_DEAD_LETTERS)
    # A run that copied it and died before marking it: the copy is there, the publisher dead letter still pending.
    dead_letters.hand_off(FEIGN_DEAD_LETTERS, doc, dead_letter_event(doc))

    result = runner.invoke(args=["restore-publisher", "--mode", "handoff"])

    assert result.exit_code == 0, result.output
    assert f"already in {KAFKA_LISTENER_DEAD_LETTERS}" in result.output
    assert db[KAFKA_LISTENER_DEAD_LETTERS].count_documents({}) == 1
    assert documents(db, FEIGN_DEAD_LETTERS)[0]["status"] == "completed"


def test_a_publisher_dead_letter_without_an_event_is_marked_failed_with_the_reason(fake):
    app = fake.app
    db = get_container(app).db
    fake.fail_with()
    write_posts(app.test_client(), _token(app), 3)
    fake.recover()
    broken = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)[1]
    db[KAFKA_PUBLISHER_DEAD_LETTERS].update_one({"_id": broken["_id"]}, {"$set": {"payload": "{broken"}})

    result = app.test_cli_runner().invoke(args=["restore-publisher"])

    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "restored 2, skipped 0, failed 1"
    assert (
        f"failed   {broken['message_key']} [{KAFKA_PUBLISHER_DEAD_LETTERS}]: marked failed: payload is not JSON"
        in result.output
    )
    doc = db[KAFKA_PUBLISHER_DEAD_LETTERS].find_one({"_id": broken["_id"]})
    assert (doc["status"], doc["is_completed"], doc["attempts"]) == ("failed", False, 2)
    assert doc["error"]["type"] == "InvalidEvent" and "payload is not JSON" in doc["error"]["message"]
    assert [e.message_key for e in fake.published] == [
        d["message_key"] for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS) if d["_id"] != broken["_id"]
    ]


def _token(app):
    from dailyfeed.tokens import issue_member_token

    secret = get_container(app).settings["auth.jwt-secret"]
    return lambda member_id: {"Authorization": f"Bearer {issue_member_token(secret, member_id, 3600)}"}


def test_an_event_no_content_service_publishes_is_left_pending_for_a_handoff(db, dead_letters, runner):
    follow = ActivityEvent.new(ActivityType.MEMBER_FOLLOW, 9, following_id=7)
    dead_letters.record_publisher_failure("kafka", follow, RuntimeError("unreachable"))

    republish = runner.invoke(args=["restore-publisher"])

    assert republish.exit_code == 1
    assert (
        "no content service publishes MEMBER events; left pending, restore it with --mode handoff" in republish.output
    )
    (doc,) = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    assert (doc["status"], doc["attempts"]) == ("pending", 2)
    handoff = runner.invoke(args=["restore-publisher", "--mode", "handoff"])
    assert handoff.exit_code == 0 and handoff.output.splitlines()[-1] == "restored 1, skipped 0, failed 0"


def test_a_store_that_fails_mid_run_is_reported_plainly(app, db, dead_letters, runner, monkeypatch):
    for n in range(3):
        dead_letters.record_publisher_failure("feign", post_event(n), RuntimeError("unreachable"))

    def store_gone(*args, **kwargs):
        raise ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")

    monkeypatch.setattr(dead_letters, "claim_batch", store_gone)
    result = runner.invoke(args=["restore-publisher"])

    assert result.exit_code == 1
    assert "Error: the store failed: ServerSelectionTimeoutError: 127.0.0.1:27017: connection refused" in result.output
    assert "Traceback" not in result.output
