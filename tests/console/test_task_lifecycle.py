"""Replay tasks (SPEC 8a) past their happy path, on both stores: the audit trail of a cancel and a resume as an
auditor reads it, a resume that lost a race, two runners taking the same task at once, a runner that stops between
chunks and gives the task back at once, and the lock of a selection freed whichever way a task ends."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from pymongo.errors import AutoReconnect

from dailyfeed.errors import Conflict
from dailyfeed.events import utcnow
from dailyfeed.extension import get_container
from dailyfeed.restore import actions, tasks
from dailyfeed.restore.tasks import TaskRunner, TaskWorker, task_store
from dailyfeed.store import KAFKA_PUBLISHER_DEAD_LETTERS, MEMBER_ACTIVITIES
from dailyfeed.transport.base import TransportUnavailable

from ..support.deadletters import documents
from ..support.kafka import wait_until
from ..support.metrics import value
from .test_tasks_api import kafka_dead_letters, named, runner_of


def test_a_cancel_and_a_resume_are_audited_with_who_why_the_selection_and_what_had_moved(fake):
    alice, bob, carol = named(fake.app, "alice"), named(fake.app, "bob"), named(fake.app, "carol")
    kafka_dead_letters(fake.app, 6)
    task = alice.post("/tasks", {"action": "replay", "all": True, "rate": 2, "reason": "broker back"}).json["data"]
    store = task_store(get_container(fake.app))
    lease = store.acquire(store.runnable()[0], owner="runner-a")

    def cancel_after_the_first_chunk(doc):
        if doc["moved"] == 2 and not doc["cancel_requested"]:
            assert bob.post(f"/tasks/{task['id']}/cancel", {"reason": "too slow"}).status_code == 200

    runner_of(fake.app).run(lease, on_progress=cancel_after_the_first_chunk)
    resumed = carol.post(f"/tasks/{task['id']}/resume", {"reason": "go on"})
    assert resumed.status_code == 200

    trail = alice.data(alice.get(f"/audit?task={task['id']}"))["content"]
    assert [
        (e["actor"], e["action"], e["outcome"], e["via"], e["selection"], e["reason"], e["resultCount"]) for e in trail
    ] == [
        ("carol", "task-replay", "resumed", "api", "all dead letters", "go on", None),
        ("alice", "task-replay", "cancelled", "task", "all dead letters", "broker back", 4),
        ("bob", "task-replay", "cancel-requested", "api", "all dead letters", "too slow", 2),
        ("alice", "task-replay", "started", "api", "all dead letters", "broker back", None),
    ]
    assert {e["task"] for e in trail} == {task["id"]}


def test_a_resume_that_read_the_task_before_another_resume_ran_it_to_its_end_is_refused_and_frees_the_selection(
    fake,
):
    alice = named(fake.app)
    kafka_dead_letters(fake.app, 2)
    task = alice.post("/tasks", {"action": "replay", "all": True}).json["data"]
    assert alice.post(f"/tasks/{task['id']}/cancel", {}).json["data"]["state"] == "cancelled"
    store = task_store(get_container(fake.app))
    stale = store.get(task["id"])  # what a second console read just before the first resume
    assert alice.post(f"/tasks/{task['id']}/resume", {}).status_code == 200
    assert runner_of(fake.app).run_pending() == 1  # ... which ran to its end and freed the lock

    store.get = lambda task_id: stale
    with pytest.raises(Conflict, match=f"task {task['id']} has just changed; look at it again"):
        store.resume(task["id"], actor="bob", via="api")

    again = alice.post("/tasks", {"action": "replay", "all": True})  # the refused resume kept no lock
    assert again.status_code == 201, again.json


def test_two_runners_reading_the_same_task_at_once_only_one_of_them_runs_it(fake):
    alice = named(fake.app)
    kafka_dead_letters(fake.app, 3)
    task = alice.post("/tasks", {"action": "replay", "all": True}).json["data"]
    store = task_store(get_container(fake.app))
    [seen_by_a] = store.runnable()
    [seen_by_b] = store.runnable()

    won = store.acquire(seen_by_a, owner="runner-a")
    lost = store.acquire(seen_by_b, owner="runner-b")

    assert won is not None and lost is None
    assert alice.data(alice.get(f"/tasks/{task['id']}"))["runner"] == "runner-a"


def test_a_runner_that_stops_between_chunks_gives_the_task_back_and_another_process_goes_on_at_once(fake):
    alice = named(fake.app)
    db = kafka_dead_letters(fake.app, 4)
    task = alice.post("/tasks", {"action": "replay", "all": True, "rate": 2}).json["data"]
    store = task_store(get_container(fake.app))
    stopping = threading.Event()

    def stop_after_the_first_chunk(doc):
        if doc["moved"] == 2:
            stopping.set()  # the serving process is shutting down

    runner_of(fake.app, "runner-a").run(
        store.acquire(store.runnable()[0], owner="runner-a"), on_progress=stop_after_the_first_chunk, stop=stopping
    )
    left = alice.data(alice.get(f"/tasks/{task['id']}"))
    assert (left["state"], left["moved"]) == ("running", 2)

    assert runner_of(fake.app, "runner-b").run_pending() == 1  # no wait for a lease to run out
    done = alice.data(alice.get(f"/tasks/{task['id']}"))
    assert (done["state"], done["moved"]) == ("completed", 4)
    assert len(fake.published) == 4 and {d["status"] for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)} == {
        "completed"
    }


def test_a_resumed_task_frees_its_selection_when_it_ends(fake):
    alice = named(fake.app)
    kafka_dead_letters(fake.app, 2)
    task = alice.post("/tasks", {"action": "replay", "all": True}).json["data"]
    alice.post(f"/tasks/{task['id']}/cancel", {})
    alice.post(f"/tasks/{task['id']}/resume", {})
    assert alice.post("/tasks", {"action": "replay", "all": True}).status_code == 409  # it runs again
    assert runner_of(fake.app).run_pending() == 1

    after = alice.post("/tasks", {"action": "discard", "all": True, "expectedCount": 0})
    assert after.status_code == 201, after.json


def test_a_task_id_that_is_not_one_is_a_400_naming_it(fake):
    refused = named(fake.app).get("/tasks/nope")
    assert refused.status_code == 400 and refused.json["message"] == "'nope' is not a task id (24 hex digits)"


def test_a_task_worker_stops_quietly_also_when_it_never_started_and_waits_for_the_work_in_hand(fake):
    container = get_container(fake.app)
    TaskWorker(container, poll_s=60).stop()  # a serving process that fails before it started its threads

    in_upkeep, upkeep_done = threading.Event(), threading.Event()

    def slow_upkeep():  # the retention purge, say, in hand when the process stops
        in_upkeep.set()
        threading.Event().wait(0.3)
        upkeep_done.set()

    worker = TaskWorker(container, poll_s=60, upkeep=slow_upkeep)
    worker.start()
    assert in_upkeep.wait(10)
    worker.stop()
    assert upkeep_done.is_set()
    assert [t for t in threading.enumerate() if t.name == "dailyfeed-tasks"] == []


def test_a_fast_task_moves_at_most_two_hundred_dead_letters_a_chunk(fake):
    alice = named(fake.app)
    kafka_dead_letters(fake.app, 250)
    alice.post("/tasks", {"action": "replay", "all": True, "rate": 10000})
    store = task_store(get_container(fake.app))
    seen = []
    runner_of(fake.app).run(store.acquire(store.runnable()[0], owner="runner-a"), on_progress=seen.append)
    assert [doc["moved"] for doc in seen] == [0, 200, 250, 250]


class Ticking:
    """time.monotonic for the runner: a quarter of a second passes between two readings."""

    def __init__(self):
        self.now = 100.0

    def monotonic(self) -> float:
        self.now += 0.25
        return self.now


@pytest.mark.parametrize(
    "rate,count,waits",
    [
        (2, 5, [0.75, 0.75, 0.25, 0.0]),  # 2, 2, 1 dead letters at 2 a second (each chunk took 0.25 s), then none left
        (1, 2, [0.75, 0.75, 0.0]),  # one at a time
        (0.5, 1, [1.75, 0.0]),  # a chunk is never less than one dead letter
    ],
)
def test_each_chunk_takes_its_share_of_a_second_at_the_task_rate(fake, monkeypatch, rate, count, waits):
    monkeypatch.setattr(tasks, "time", Ticking())
    alice = named(fake.app)
    kafka_dead_letters(fake.app, count)
    task = alice.post("/tasks", {"action": "replay", "all": True, "rate": rate}).json["data"]
    sleeps = []
    container = get_container(fake.app)
    assert TaskRunner(container, task_store(container), owner="runner-a", sleep=sleeps.append).run_pending() == 1
    assert sleeps == waits
    assert alice.data(alice.get(f"/tasks/{task['id']}"))["state"] == "completed"


def test_a_replay_task_in_record_mode_records_the_events_here_without_the_transport(fake):
    alice = named(fake.app)
    db = kafka_dead_letters(fake.app, 3)
    fake.fail_with(TransportUnavailable("broker still frozen"))
    task = alice.post("/tasks", {"action": "replay", "all": True, "mode": "record"}).json["data"]
    assert runner_of(fake.app).run_pending() == 1
    done = alice.data(alice.get(f"/tasks/{task['id']}"))
    assert (done["state"], done["mode"], done["moved"], done["failed"]) == ("completed", "record", 3, 0)
    assert fake.published == [] and db[MEMBER_ACTIVITIES].count_documents({}) == 3


def test_a_discard_task_counts_what_it_discarded_and_nothing_failed_or_skipped(fake):
    alice = named(fake.app)
    kafka_dead_letters(fake.app, 3)
    task = alice.post("/tasks", {"action": "discard", "all": True, "expectedCount": 3, "rate": 2}).json["data"]
    assert runner_of(fake.app).run_pending() == 1
    done = alice.data(alice.get(f"/tasks/{task['id']}"))
    assert (done["state"], done["moved"], done["failed"], done["skipped"]) == ("completed", 3, 0, 0)


def test_a_store_fault_leaves_the_task_running_for_a_later_runner_and_a_bug_fails_it_saying_why(
    fake, monkeypatch, caplog
):
    alice = named(fake.app)
    kafka_dead_letters(fake.app, 2)
    task = alice.post("/tasks", {"action": "replay", "all": True}).json["data"]
    caplog.set_level(logging.INFO, logger="dailyfeed.restore.tasks")

    def store_down(*args, **kwargs):
        raise AutoReconnect("store down (injected)")

    monkeypatch.setattr(actions, "act", store_down)
    assert runner_of(fake.app).run_pending() == 1
    assert alice.data(alice.get(f"/tasks/{task['id']}"))["state"] == "running"
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"task {task['id']} stopped by a store fault (store down (injected)); its lease runs out and it is resumed"
    ]

    def bug(*args, **kwargs):
        raise KeyError("selection")

    monkeypatch.setattr(actions, "act", bug)
    store = task_store(get_container(fake.app))
    ran_out = {**store.get(task["id"]), "lease_until": utcnow()}  # the first runner's lease, run out
    runner_of(fake.app).run(store.acquire(ran_out, owner="runner-b"))
    failed = alice.data(alice.get(f"/tasks/{task['id']}"))
    assert (failed["state"], failed["error"]) == ("failed", "KeyError: 'selection'")
    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert logged.getMessage() == f"task {task['id']} failed" and logged.exc_info is not None


def test_a_replay_whose_dead_letters_another_restore_holds_waits_for_them_instead_of_ending(fake):
    alice = named(fake.app)
    db = kafka_dead_letters(fake.app, 3)
    container = get_container(fake.app)
    held = [
        container.dead_letters.claim(KAFKA_PUBLISHER_DEAD_LETTERS, d["_id"], "restore-by-hand")
        for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    ]
    assert all(held)
    task = alice.post("/tasks", {"action": "replay", "all": True, "rate": 100}).json["data"]
    waits = []

    def wait(seconds):
        waits.append(seconds)
        if seconds >= 1.0:  # meanwhile the other restore ends, giving them back
            container.dead_letters.release_all("restore-by-hand")

    assert TaskRunner(container, task_store(container), owner="runner-a", sleep=wait).run_pending() == 1
    done = alice.data(alice.get(f"/tasks/{task['id']}"))
    assert (done["state"], done["moved"], done["skipped"]) == ("completed", 3, 3)
    assert [w for w in waits if w >= 1.0] == [1.0] and len(fake.published) == 3  # one wait of a second


def test_a_discard_task_does_not_wait_for_a_dead_letter_another_restore_holds_and_says_it_skipped_it(fake):
    alice = named(fake.app)
    db = kafka_dead_letters(fake.app, 3)
    container = get_container(fake.app)
    [first, *_] = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    assert container.dead_letters.claim(KAFKA_PUBLISHER_DEAD_LETTERS, first["_id"], "restore-by-hand")
    task = alice.post("/tasks", {"action": "discard", "all": True, "expectedCount": 3}).json["data"]
    waits = []
    assert TaskRunner(container, task_store(container), owner="runner-a", sleep=waits.append).run_pending() == 1
    done = alice.data(alice.get(f"/tasks/{task['id']}"))
    # the held one is counted skipped by each chunk that met it: the one that discarded the others, and the last
    assert (done["state"], done["moved"], done["skipped"]) == ("completed", 2, 2)
    assert [w for w in waits if w >= 1.0] == []
    assert [d["status"] for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)] == ["pending", "discarded", "discarded"]


def test_a_failed_task_says_why_in_its_audit_and_once_resumed_shows_no_old_error_nor_end(fake):
    alice = named(fake.app)
    db = kafka_dead_letters(fake.app, 3)

    def refuse(event):
        raise TransportUnavailable(f"broker still frozen, {event.message_key} refused")

    fake._deliver = refuse
    task = alice.post("/tasks", {"action": "replay", "filter": {"collection": "kafka-publisher"}}).json["data"]
    before = fake.app.test_client().get("/metrics").text
    runner_of(fake.app).run_pending()

    failed = alice.data(alice.get(f"/tasks/{task['id']}"))
    assert (failed["state"], failed["failed"], failed["finishedAt"] is not None) == ("failed", 3, True)
    [ended] = [e for e in alice.data(alice.get(f"/audit?task={task['id']}"))["content"] if e["outcome"] == "failed"]
    assert (ended["selection"], ended["detail"]) == ("collection kafka_publisher_dead_letters", failed["error"])
    last = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)[-1]["message_key"]
    assert ended["detail"] == (  # the reason of the last dead letter it tried
        f"post-service (kafka) did not take it, left pending: TransportUnavailable: broker still frozen, {last} refused"
    )
    after = fake.app.test_client().get("/metrics").text
    ended_total = "dailyfeed_deadletter_tasks_ended_total"
    assert (
        value(after, ended_total, action="replay", state="failed")
        - (value(before, ended_total, action="replay", state="failed") or 0)
        == 1
    )

    resumed = alice.data(alice.post(f"/tasks/{task['id']}/resume", {}))
    assert (resumed["state"], resumed["error"], resumed["finishedAt"], resumed["secondsLeft"]) == (
        "running",
        None,
        None,
        None,
    )


def test_when_one_of_two_tasks_ends_it_frees_its_own_selection_and_is_audited_as_itself(fake):
    alice, bob = named(fake.app, "alice"), named(fake.app, "bob")
    kafka_dead_letters(fake.app, 2)
    first = alice.post("/tasks", {"action": "replay", "filter": {"category": "POST"}}).json["data"]
    second = bob.post("/tasks", {"action": "discard", "filter": {"category": "COMMENT"}, "expectedCount": 0})
    second = second.json["data"]
    bob.post(f"/tasks/{second['id']}/cancel", {})  # nobody runs it: it ends at once

    assert alice.post("/tasks", {"action": "requeue", "filter": {"category": "COMMENT"}}).status_code == 201
    assert alice.post("/tasks", {"action": "requeue", "filter": {"category": "POST"}}).status_code == 409
    [ended] = [
        e for e in alice.data(alice.get(f"/audit?task={second['id']}"))["content"] if e["outcome"] == "cancelled"
    ]
    assert (ended["actor"], ended["action"], ended["selection"]) == ("bob", "task-discard", "category COMMENT")
    assert alice.data(alice.get(f"/tasks/{first['id']}"))["state"] == "running"


def test_a_runner_that_renews_its_lease_after_every_chunk_keeps_its_task_past_the_first_lease(fake, monkeypatch):
    now = [utcnow()]
    monkeypatch.setattr(tasks, "utcnow", lambda: now[0])
    alice = named(fake.app)
    kafka_dead_letters(fake.app, 4)
    task = alice.post("/tasks", {"action": "replay", "all": True, "rate": 1}).json["data"]
    container = get_container(fake.app)
    store = task_store(container)
    lease_s = container.settings["tasks.lease-s"]
    taken_by_another = []

    def a_lease_later(doc):  # each chunk ends just before the lease it renewed runs out
        now[0] += timedelta(seconds=lease_s * 0.9)
        taken_by_another.append(runner_of(fake.app, "runner-b").run_pending())

    runner_of(fake.app, "runner-a").run(store.acquire(store.runnable()[0], owner="runner-a"), on_progress=a_lease_later)

    assert set(taken_by_another) == {0}
    done = alice.data(alice.get(f"/tasks/{task['id']}"))
    assert (done["state"], done["moved"]) == ("completed", 4)
    assert len(fake.published) == 4


def test_a_discard_task_needs_the_count_confirmed_and_refuses_one_that_changed_saying_what_it_is_now(fake):
    alice = named(fake.app)
    kafka_dead_letters(fake.app, 3)
    unconfirmed = alice.post("/tasks", {"action": "discard", "all": True})
    assert unconfirmed.status_code == 400
    assert unconfirmed.json["message"] == "expectedCount is required: the count a dry run answered, as confirmed"
    changed = alice.post("/tasks", {"action": "discard", "all": True, "expectedCount": 2})
    assert changed.status_code == 409
    assert changed.json["message"] == (
        "the selection now matches 3 dead letters to discard, not 2; look again and confirm the new count"
    )


def test_the_task_worker_runs_the_retention_upkeep_at_its_own_interval_and_outlives_a_failing_pass(fake, caplog):
    container = get_container(fake.app)
    upkeeps = []

    def upkeep():
        upkeeps.append(1)
        if len(upkeeps) == 1:
            raise AutoReconnect("store down (injected)")

    caplog.set_level(logging.INFO, logger="dailyfeed.restore.tasks")
    often = TaskWorker(container, poll_s=0.01, upkeep=upkeep, upkeep_every_s=0.0)
    often.start()
    [thread] = [t for t in threading.enumerate() if t.name == "dailyfeed-tasks"]
    assert thread.daemon  # it never keeps a stopping process alive
    try:
        wait_until(lambda: len(upkeeps) >= 3, 10, 0.01, "an upkeep at every poll")
    finally:
        often.stop()
    assert "background tasks: a pass failed; trying again in 0.0 s" in [r.getMessage() for r in caplog.records]

    upkeeps.clear()
    hourly = TaskWorker(container, poll_s=0.01, upkeep=upkeep, upkeep_every_s=3600.0)
    hourly.start()
    try:
        wait_until(lambda: upkeeps, 10, 0.01, "the first upkeep at once")
        alice = named(fake.app)
        kafka_dead_letters(fake.app, 1)
        task = alice.post("/tasks", {"action": "replay", "all": True}).json["data"]
        wait_until(lambda: alice.data(alice.get(f"/tasks/{task['id']}"))["state"] == "completed", 10, 0.01, "polls")
    finally:
        hourly.stop()
    assert len(upkeeps) == 1  # many polls, one upkeep an hour


def test_a_runner_asked_to_stop_takes_no_task(fake):
    alice = named(fake.app)
    kafka_dead_letters(fake.app, 1)
    task = alice.post("/tasks", {"action": "replay", "all": True}).json["data"]
    stopping = threading.Event()
    stopping.set()
    assert runner_of(fake.app).run_pending(stopping) == 0
    assert alice.data(alice.get(f"/tasks/{task['id']}"))["moved"] == 0 and fake.published == []


def test_the_tasks_settings_give_a_task_its_default_rate_and_its_runner_its_lease(apps, monkeypatch):
    now = [utcnow()]
    monkeypatch.setattr(tasks, "utcnow", lambda: now[0])
    app = apps.make({"tasks.rate": 7.0, "tasks.lease-s": 45})
    alice = named(app)
    kafka_dead_letters(app, 1)
    task = alice.post("/tasks", {"action": "replay", "all": True}).json["data"]
    assert task["rateLimit"] == 7.0
    store = task_store(get_container(app))
    assert store.acquire(store.runnable()[0], owner="runner-a") is not None
    now[0] += timedelta(seconds=44)
    assert store.runnable() == []  # still leased
    now[0] += timedelta(seconds=2)
    assert [str(doc["_id"]) for doc in store.runnable()] == [task["id"]]


def test_cancelling_a_task_that_ended_is_a_409_saying_its_state(fake):
    alice = named(fake.app)
    task = alice.post("/tasks", {"action": "replay", "all": True}).json["data"]
    alice.post(f"/tasks/{task['id']}/cancel", {})
    again = alice.post(f"/tasks/{task['id']}/cancel", {})
    assert again.status_code == 409
    assert again.json["message"] == f"task {task['id']} is cancelled; only a running task can be cancelled"
