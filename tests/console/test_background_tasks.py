"""What the serving process runs by itself (dailyfeed.background): the tasks others start, and the retention purge
of completed and discarded dead letters (audited; the audit trail kept). On both stores."""

from __future__ import annotations

from datetime import timedelta

from dailyfeed.events import utcnow
from dailyfeed.extension import get_container
from dailyfeed.restore.actions import purge_by_retention
from dailyfeed.store import AUDIT, FEIGN_DEAD_LETTERS, KAFKA_LISTENER_DEAD_LETTERS, MEMBER_ACTIVITIES
from dailyfeed.tokens import issue_admin_token
from dailyfeed.transport.base import TransportUnavailable

from ..support.console import Admin, bearer
from ..support.deadletters import documents, listener_dead_letter, post_event
from ..support.kafka import wait_until


def test_a_serving_process_runs_a_task_started_through_the_api(store_uri, apps):
    app = apps.make({"mongo.uri": store_uri, "tasks.poll-s": 0.1}, run_background=True)
    container = get_container(app)
    for n in range(3):
        listener_dead_letter(container.dead_letters, post_event(n), offset=n)
    admin = Admin(app, bearer(issue_admin_token(container.settings["auth.jwt-secret"], 600, "alice")))
    task = admin.post("/tasks", {"action": "replay", "filter": {"collection": "listener"}}).json["data"]

    def ended():
        answer = admin.data(admin.get(f"/tasks/{task['id']}"))
        return answer if answer["state"] != "running" else None

    done = wait_until(ended, 30, 0.1, "the serving process runs the task")
    assert (done["state"], done["moved"]) == ("completed", 3)
    assert container.db[MEMBER_ACTIVITIES].count_documents({}) == 3


def test_retention_purges_old_completed_and_discarded_dead_letters_keeps_the_rest_and_is_audited(
    store_uri, apps, monkeypatch
):
    app = apps.make({"mongo.uri": store_uri, "deadletters.retention-days": 30})
    container = get_container(app)
    store, db = container.dead_letters, container.db
    for n in range(4):
        store.record_publisher_failure("feign", post_event(n), TransportUnavailable("down"))
    listener_dead_letter(store, post_event(9), offset=9)
    old, recent, now = utcnow() - timedelta(days=31), utcnow() - timedelta(days=29), utcnow()
    letters = documents(db, FEIGN_DEAD_LETTERS)
    marks = [
        {"status": "completed", "completed_at": old},
        {"status": "discarded", "discarded_at": old},
        {"status": "discarded", "discarded_at": recent},
        {"status": "pending", "created_at": old},
    ]
    for doc, mark in zip(letters, marks):
        db[FEIGN_DEAD_LETTERS].update_one({"_id": doc["_id"]}, {"$set": mark})
    db[AUDIT].insert_one({"at": old, "actor": "alice", "action": "discard"})  # an old entry is kept

    result = purge_by_retention(container, now=now)
    assert result.dead_letters == 2
    assert sorted(d["status"] for d in documents(db, FEIGN_DEAD_LETTERS)) == ["discarded", "pending"]
    assert len(documents(db, KAFKA_LISTENER_DEAD_LETTERS)) == 1
    assert [(e["actor"], e["action"], e.get("result_count")) for e in db[AUDIT].find().sort("at", 1)] == [
        ("alice", "discard", None),
        ("retention", "purge", 2),
    ]
    assert purge_by_retention(container, now=now).dead_letters == 0
    assert db[AUDIT].count_documents({}) == 2  # a purge that deleted nothing is not worth an entry


def test_retention_off_purges_nothing(app):
    container = get_container(app)
    container.settings = container.settings.with_overrides({"deadletters.retention-days": 0})
    assert purge_by_retention(container) is None
