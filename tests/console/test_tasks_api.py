"""Tasks, the audit trail and the viewer role through the admin API, on both stores: every task state and
transition (running -> completed | cancelled | failed, failed/cancelled -> running), one running task per
selection, a runner that dies and another that resumes, the audit record of every action, and a viewer's 403s."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dailyfeed.deadletters import Status
from dailyfeed.events import utcnow
from dailyfeed.extension import get_container
from dailyfeed.restore.tasks import TaskRunner, task_store
from dailyfeed.store import AUDIT, DEAD_LETTER_TASKS, FEIGN_DEAD_LETTERS, KAFKA_PUBLISHER_DEAD_LETTERS
from dailyfeed.tokens import issue_admin_token, issue_viewer_token
from dailyfeed.transport.base import TransportUnavailable

from ..support.console import Admin, bearer
from ..support.deadletters import documents, post_event, snapshot


def named(app, name="alice", viewer=False):
    secret = get_container(app).settings["auth.jwt-secret"]
    issue = issue_viewer_token if viewer else issue_admin_token
    return Admin(app, bearer(issue(secret, 600, name)))


def kafka_dead_letters(app, count):
    store = get_container(app).dead_letters
    for n in range(count):
        store.record_publisher_failure("kafka", post_event(n), TransportUnavailable("broker down"))
    return get_container(app).db


def runner_of(app, owner="runner-a"):
    container = get_container(app)
    return TaskRunner(container, task_store(container), owner=owner, sleep=lambda seconds: None)


def audit_of(db, **query):
    return [
        (e["actor"], e["action"], e["outcome"], e["via"], e["dry_run_count"], e["result_count"])
        for e in db[AUDIT].find(query).sort([("at", 1), ("_id", 1)])
    ]


# --- states and transitions ---------------------------------------------------------------------------------------


def test_a_replay_task_runs_in_chunks_at_its_rate_and_completes_with_every_dead_letter_delivered_once(fake):
    alice = named(fake.app)
    db = kafka_dead_letters(fake.app, 5)
    started = alice.post("/tasks", {"action": "replay", "all": True, "rate": 2, "reason": "broker back"})
    assert started.status_code == 201, started.json
    task = started.json["data"]
    assert (task["state"], task["total"], task["moved"], task["rateLimit"], task["actor"]) == (
        "running",
        5,
        0,
        2,
        "alice",
    )
    assert fake.published == []  # nothing moves inside the request
    seen = []
    runner = runner_of(fake.app)
    [doc] = task_store(get_container(fake.app)).runnable()
    runner.run(
        task_store(get_container(fake.app)).acquire(doc, owner="runner-a"),
        on_progress=lambda d: seen.append(d["moved"]),
    )
    assert seen[:4] == [0, 2, 4, 5]  # chunks of `rate` dead letters: a second of work each
    done = alice.data(alice.get(f"/tasks/{task['id']}"))
    assert (done["state"], done["moved"], done["failed"], done["secondsLeft"], done["finishedAt"] is not None) == (
        "completed",
        5,
        0,
        None,
        True,
    )
    assert sorted(e.message_key for e in fake.published) == sorted(
        d["message_key"] for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    )
    assert {d["status"] for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)} == {"completed"}
    assert audit_of(db, task=doc["_id"]) == [
        ("alice", "task-replay", "started", "api", 5, None),
        ("alice", "task-replay", "completed", "task", 5, 5),
    ]
    scraped = fake.app.test_client().get("/metrics").text
    assert 'dailyfeed_deadletter_tasks_ended_total{action="replay",state="completed"}' in scraped


def test_a_task_that_moves_nothing_fails_with_the_reason_and_a_resume_after_the_fix_completes_it(fake):
    alice = named(fake.app)
    db = kafka_dead_letters(fake.app, 3)
    fake.fail_with(TransportUnavailable("broker still frozen"))
    task = alice.post("/tasks", {"action": "replay", "filter": {"collection": "kafka-publisher"}}).json["data"]
    assert runner_of(fake.app).run_pending() == 1
    failed = alice.data(alice.get(f"/tasks/{task['id']}"))
    assert failed["state"] == "failed" and "broker still frozen" in failed["error"]
    assert {(d["status"], d["attempts"]) for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)} == {("pending", 2)}
    assert runner_of(fake.app).run_pending() == 0  # a failed task is not run again by itself

    fake.recover()
    resumed = alice.post(f"/tasks/{task['id']}/resume", {"reason": "thawed"})
    assert resumed.status_code == 200 and resumed.json["data"]["state"] == "running"
    assert runner_of(fake.app, "runner-b").run_pending() == 1
    assert alice.data(alice.get(f"/tasks/{task['id']}"))["state"] == "completed"
    assert sorted(e.message_key for e in fake.published) == sorted(
        d["message_key"] for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    )  # each exactly once
    again = alice.post(f"/tasks/{task['id']}/resume", {})
    assert again.status_code == 409 and "only a failed or cancelled task" in again.json["message"]


def test_cancel_of_a_task_nobody_runs_ends_it_at_once_and_cancel_while_running_stops_between_chunks(fake):
    alice = named(fake.app)
    db = kafka_dead_letters(fake.app, 6)
    first = alice.post("/tasks", {"action": "replay", "all": True, "rate": 2}).json["data"]
    cancelled = alice.post(f"/tasks/{first['id']}/cancel", {"reason": "wrong selection"})
    assert cancelled.status_code == 200 and cancelled.json["data"]["state"] == "cancelled"
    assert fake.published == [] and runner_of(fake.app).run_pending() == 0
    assert alice.post(f"/tasks/{first['id']}/cancel", {}).status_code == 409

    second = alice.post("/tasks", {"action": "replay", "all": True, "rate": 2}).json["data"]  # the lock was freed
    store = task_store(get_container(fake.app))
    lease = store.acquire(store.runnable()[0], owner="runner-a")

    def cancel_during_the_second_chunk(doc):  # called as a chunk is about to start
        if doc["moved"] == 2 and not doc["cancel_requested"]:
            assert alice.post(f"/tasks/{second['id']}/cancel", {}).json["data"]["state"] == "running"

    runner_of(fake.app).run(lease, on_progress=cancel_during_the_second_chunk)
    stopped = alice.data(alice.get(f"/tasks/{second['id']}"))
    assert (stopped["state"], stopped["moved"]) == ("cancelled", 4)  # the chunk in hand ends, no other starts
    assert len(fake.published) == 4  # what moved stays moved; the rest is still pending
    assert [d["status"] for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)].count("pending") == 2


def test_one_running_task_per_collection_and_selection(fake):
    alice = named(fake.app)
    kafka_dead_letters(fake.app, 2)
    first = alice.post("/tasks", {"action": "replay", "filter": {"category": "POST"}})
    assert first.status_code == 201
    same = alice.post("/tasks", {"action": "discard", "filter": {"category": "post"}, "expectedCount": 2})
    assert same.status_code == 409 and first.json["data"]["id"] in same.json["message"]
    narrower = alice.post("/tasks", {"action": "replay", "filter": {"category": "POST", "collection": "feign"}})
    assert narrower.status_code == 409  # the same selection in one of the collections the first one runs on
    other = alice.post("/tasks", {"action": "replay", "filter": {"category": "COMMENT"}})
    assert other.status_code == 201  # a selection of its own
    assert get_container(fake.app).db[DEAD_LETTER_TASKS].count_documents({"state": "running"}) == 2


def test_a_runner_that_died_leaves_a_lease_that_runs_out_and_another_process_resumes_the_task(fake):
    alice = named(fake.app)
    db = kafka_dead_letters(fake.app, 4)
    task = alice.post("/tasks", {"action": "replay", "all": True, "rate": 2}).json["data"]
    store = task_store(get_container(fake.app))
    dead = store.acquire(store.runnable()[0], owner="runner-killed")
    assert store.runnable() == [] and store.acquire(store.get(task["id"]), owner="runner-b") is None  # leased
    db[DEAD_LETTER_TASKS].update_one({}, {"$set": {"lease_until": utcnow() - timedelta(seconds=1)}})  # it ran out
    assert runner_of(fake.app, "runner-b").run_pending() == 1
    assert store.renew(dead) is None  # the dead runner, were it to wake, has lost the task
    assert alice.data(alice.get(f"/tasks/{task['id']}"))["state"] == "completed"
    assert len(fake.published) == 4 and len({e.message_key for e in fake.published}) == 4


@pytest.mark.parametrize("action,status,expected", [("discard", "discarded", True), ("requeue", None, False)])
def test_discard_and_requeue_tasks(fake, action, status, expected):
    alice = named(fake.app)
    db = kafka_dead_letters(fake.app, 3)
    body = {"action": action, "all": True}
    if expected:
        assert alice.post("/tasks", {**body, "expectedCount": 2}).status_code == 409  # not what is there now
        body["expectedCount"] = 3
    task = alice.post("/tasks", body).json["data"]
    runner_of(fake.app).run_pending()
    done = alice.data(alice.get(f"/tasks/{task['id']}"))
    assert done["state"] == "completed"
    if status:
        assert done["moved"] == 3 and {d["status"] for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)} == {status}
    else:  # nothing failed: nothing to re-queue
        assert (done["total"], done["moved"]) == (0, 0)


def test_the_task_list_and_bad_task_requests(fake):
    alice = named(fake.app)
    kafka_dead_letters(fake.app, 1)
    task = alice.post("/tasks", {"action": "replay", "all": True}).json["data"]
    listed = alice.data(alice.get("/tasks?state=running"))["content"]
    assert [t["id"] for t in listed] == [task["id"]]
    assert alice.data(alice.get("/tasks?state=completed"))["content"] == []
    for body, problem in [
        ({"action": "explode", "all": True}, "action"),
        ({"action": "replay"}, "explicitly"),
        ({"action": "replay", "all": True, "rate": 0}, "rate"),
        ({"action": "discard", "all": True}, "expectedCount is required"),
    ]:
        refused = alice.post("/tasks", body)
        assert refused.status_code == 400 and problem in refused.json["message"], refused.json
    assert alice.get("/tasks/0123456789abcdef01234567").status_code == 404
    assert alice.get("/tasks/nope").status_code == 400


# --- the audit trail ----------------------------------------------------------------------------------------------


def test_every_action_is_audited_with_the_admins_name_the_counts_and_the_reason(app, dead_letters, db):
    alice, bob = named(app, "alice"), named(app, "bob")
    for n in range(3):
        dead_letters.record_publisher_failure("feign", post_event(n), TransportUnavailable("down"))
    assert alice.post("/dead-letters/discard", {"all": True, "dryRun": True}).json["data"]["matching"] == 3
    assert db[AUDIT].count_documents({}) == 0  # a dry run is not an action
    assert alice.post("/dead-letters/discard", {"all": True, "expectedCount": 2}).status_code == 409
    assert (
        alice.post(
            "/dead-letters/discard", {"filter": {"collection": "feign"}, "expectedCount": 3, "reason": "test data"}
        ).status_code
        == 200
    )
    assert bob.post("/dead-letters/undiscard", {"all": True, "reason": "oops"}).json["data"]["undone"] == 3
    assert bob.post("/dead-letters/requeue", {"all": True}).status_code == 200
    assert audit_of(db) == [
        ("alice", "discard", "refused", "api", 2, None),
        ("alice", "discard", "done", "api", 3, 3),
        ("bob", "undiscard", "done", "api", None, 3),
        ("bob", "requeue", "done", "api", None, 0),
    ]
    entries = alice.data(alice.get("/audit?actor=bob"))
    assert entries["total"] == 2 and [e["action"] for e in entries["content"]] == ["requeue", "undiscard"]
    [discarded] = alice.data(alice.get("/audit?action=discard&outcome="))["content"][:1]
    assert (discarded["reason"], discarded["selection"], discarded["resultCount"]) == (
        "test data",
        "collection feign_dead_letters",
        3,
    )
    assert alice.get("/audit?actor=bob&action=discard").status_code == 400
    assert alice.get("/audit?since=yesterday").status_code == 400


def test_the_audit_trail_is_append_only_nothing_an_action_does_changes_an_entry(fake):
    alice = named(fake.app)
    db = kafka_dead_letters(fake.app, 2)
    task = alice.post("/tasks", {"action": "replay", "all": True}).json["data"]
    first = list(db[AUDIT].find())
    runner_of(fake.app).run_pending()
    alice.post("/dead-letters/replay", {"all": True})
    assert list(db[AUDIT].find({"_id": {"$in": [e["_id"] for e in first]}})) == first
    outcomes = [e["outcome"] for e in alice.data(alice.get(f"/audit?task={task['id']}"))["content"]]
    assert outcomes == ["completed", "started"]


# --- the viewer ---------------------------------------------------------------------------------------------------

READS = ["/overview", "/dead-letters", "/tasks", "/audit"]
ACTIONS = [
    ("/dead-letters/replay", {"all": True, "dryRun": True}),
    ("/dead-letters/discard", {"all": True, "dryRun": True}),
    ("/dead-letters/requeue", {"all": True}),
    ("/dead-letters/undiscard", {"all": True}),
    ("/tasks", {"action": "replay", "all": True}),
    ("/tasks/0123456789abcdef01234567/cancel", {}),
    ("/tasks/0123456789abcdef01234567/resume", {}),
]


def test_a_viewer_reads_everything_and_gets_403_on_every_action(app, dead_letters, db):
    dead_letters.record_publisher_failure("feign", post_event(1), TransportUnavailable("down"))
    bob = named(app, "bob", viewer=True)
    for path in READS:
        assert bob.get(path).status_code == 200, path
    [letter] = bob.data(bob.get("/dead-letters"))["content"]
    assert bob.get(f"/dead-letters/{letter['id']}").status_code == 200
    before = snapshot(db)
    for path, body in ACTIONS:
        refused = bob.post(path, body)
        assert refused.status_code == 403 and "scope admin" in refused.json["message"], path
    assert snapshot(db) == before and db[AUDIT].count_documents({}) == 0
    assert db[FEIGN_DEAD_LETTERS].find_one()["status"] == Status.PENDING.value


def test_tasks_and_audit_need_a_console_token(app, tokens):
    client = app.test_client()
    for path in ("/api/admin/tasks", "/api/admin/audit"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=tokens["member"]).status_code == 403
    assert (
        client.post("/api/admin/tasks", json={"action": "replay", "all": True}, headers=tokens["service"]).status_code
        == 403
    )
