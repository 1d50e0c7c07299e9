"""`dailyfeed restore-listener` and the options both restores share, through the CLI runner, on both backends."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from pymongo.errors import AutoReconnect

from dailyfeed.deadletters import DeadLetterStore
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.extension import get_container
from dailyfeed.restore import cli as restore_cli
from dailyfeed.restore import jobs
from dailyfeed.restore.jobs import Pacer

from ..support.deadletters import (
    KAFKA_LISTENER_DEAD_LETTERS,
    KAFKA_PUBLISHER_DEAD_LETTERS,
    MEMBER_ACTIVITIES,
    T0,
    activity_documents,
    documents,
    listener_dead_letter,
    mixed_events,
    post_event,
    publisher_dead_letter,
    snapshot,
)


def summary_line(result) -> str:
    return result.output.splitlines()[-1]


def test_listener_dead_letters_of_every_origin_restore_to_what_the_live_path_stores(
    db, dead_letters, runner, live_store
):
    events = mixed_events()
    java_value = json.dumps(
        {
            "memberId": 11,
            "postId": 12,
            "memberActivityType": "LIKE_POST",
            "createdAt": [2026, 11, 22, 9, 0, 0, 5000],
            "__extra": "ignored",
        }
    ).encode()
    java_key = "member_activity:kafka_event:LIKE_POST###12###11###2026-11-22 09:00:00.000005000"
    # The records the live Kafka listener would have consumed for the same actions: (value, key).
    records = [(e.to_bytes(), e.message_key.encode()) for e in events] + [(java_value, java_key.encode())]

    for event in events[:2]:  # the content side could not publish them; handed off below
        publisher_dead_letter(dead_letters, event, kind="kafka")
    for n, event in enumerate(events[2:4]):  # parsed by the listener, the store failed
        listener_dead_letter(dead_letters, event, offset=n)
    for n, (value, key) in enumerate(records[4:], start=10):  # raw records the listener kept unparsed
        listener_dead_letter(dead_letters, None, value=value, key=key, offset=n, error=ValueError("poison?"))
    assert db[KAFKA_LISTENER_DEAD_LETTERS].count_documents({"payload": None}) == 4

    assert runner.invoke(args=["restore-publisher", "--mode", "handoff"]).exit_code == 0
    result = runner.invoke(args=["restore-listener"])

    assert result.exit_code == 0, result.output
    assert summary_line(result) == "restored 8, skipped 0, failed 0"
    restored = activity_documents(db)
    assert restored == live_store(records, via_bytes=True)  # the Kafka listener's path
    assert restored == live_store([ActivityEvent.from_bytes(v, k) for v, k in records])  # record_activity
    assert restored[events[-1].message_key]["following_id"] == 7
    # the Jackson date array [.., 9, 0, 0, 5000 ns], to the millisecond a store keeps
    assert restored[java_key]["created_at"].replace(tzinfo=None) == datetime(2026, 11, 22, 9, 0, 0)


def test_a_corrupt_dead_letter_is_marked_failed_the_rest_restored_and_the_run_fails(db, dead_letters, runner):
    for n in range(3):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    listener_dead_letter(
        dead_letters, None, value=b"\x00not json{", key=b"k", offset=99, error=ValueError("record value is not JSON")
    )
    corrupt = db[KAFKA_LISTENER_DEAD_LETTERS].find_one({"payload": None})

    result = runner.invoke(args=["restore-listener"])

    assert result.exit_code == 1
    assert summary_line(result) == "restored 3, skipped 0, failed 1"
    assert (
        f"failed   {corrupt['message_key']} [{KAFKA_LISTENER_DEAD_LETTERS}]: marked failed: record value is not JSON"
    ) in result.output
    doc = db[KAFKA_LISTENER_DEAD_LETTERS].find_one({"_id": corrupt["_id"]})
    assert (doc["status"], doc["is_completed"], doc["is_editing"], doc["attempts"]) == ("failed", False, False, 2)
    assert doc["error"]["type"] == "InvalidEvent" and "not JSON" in doc["error"]["message"]
    assert db[KAFKA_LISTENER_DEAD_LETTERS].count_documents({"status": "completed"}) == 3
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 3

    again = runner.invoke(args=["restore-listener"])  # a failed one is left for a human: not taken again
    assert again.exit_code == 0 and summary_line(again) == "restored 0, skipped 0, failed 0"
    assert "nothing to restore" in again.output


def test_dry_run_changes_nothing_and_says_what_it_would_do(db, dead_letters, runner):
    for n in range(3):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    listener_dead_letter(dead_letters, None, value=b"garbage", offset=50)
    for n in range(3, 5):
        publisher_dead_letter(dead_letters, post_event(n))
    before = snapshot(db)

    listener = runner.invoke(args=["restore-listener", "--dry-run"])
    republish = runner.invoke(args=["restore-publisher", "--dry-run"])
    handoff = runner.invoke(args=["restore-publisher", "--dry-run", "--mode", "handoff", "--limit", "1"])

    assert snapshot(db) == before
    assert (listener.exit_code, republish.exit_code, handoff.exit_code) == (0, 0, 0)
    assert summary_line(listener) == "dry run, nothing changed: would restore 3, skip 0, fail 1"
    assert listener.output.count("would restore member_activity:") == 3 and "would fail    unparsed:" in listener.output
    assert (
        f"would restore {post_event(3).message_key} [feign_dead_letters]: republish via post-service (feign)"
        in republish.output
    )
    assert summary_line(handoff) == "dry run, nothing changed: would restore 1, skip 0, fail 0"
    assert "hand off to kafka_listener_dead_letters" in handoff.output


def test_dry_run_leaves_out_only_what_another_restore_holds_right_now(db, dead_letters, runner):
    for n in range(4):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    free, held, abandoned, given_back = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, held["_id"], "other run")
    assert DeadLetterStore(db, lease_seconds=0).claim(KAFKA_LISTENER_DEAD_LETTERS, abandoned["_id"], "crashed run")
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, given_back["_id"], "other run")
    assert dead_letters.release(KAFKA_LISTENER_DEAD_LETTERS, given_back["_id"], "other run")

    result = runner.invoke(args=["restore-listener", "--dry-run"])

    assert result.exit_code == 0, result.output
    assert summary_line(result) == "dry run, nothing changed: would restore 3, skip 0, fail 0"
    assert [doc["message_key"] in result.output for doc in (free, held, abandoned, given_back)] == [
        True,
        False,
        True,
        True,
    ]


def test_dry_run_does_not_call_the_transport(fake):
    app = fake.app
    db = get_container(app).db
    publisher_dead_letter(get_container(app).dead_letters, post_event(1), kind="kafka")
    before = snapshot(db)
    result = app.test_cli_runner().invoke(args=["restore-publisher", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert fake.published == [] and snapshot(db) == before


def test_limit_takes_the_oldest_and_stops(db, dead_letters, runner, stepping_clock):
    for n in (4, 0, 3, 1, 2, 5, 6, 7, 8, 9):  # written out of order: "oldest" is the dead letter's age
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    oldest = [d["message_key"] for d in documents(db, KAFKA_LISTENER_DEAD_LETTERS)][:4]

    result = runner.invoke(args=["restore-listener", "--limit", "4", "--batch-size", "3"])

    assert result.exit_code == 0, result.output
    assert summary_line(result) == "restored 4, skipped 0, failed 0"
    assert sorted(a["message_key"] for a in documents(db, MEMBER_ACTIVITIES)) == sorted(oldest)
    assert db[KAFKA_LISTENER_DEAD_LETTERS].count_documents({"status": "pending"}) == 6


def test_small_batches_still_restore_everything_once(db, dead_letters, runner):
    for n in range(11):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    result = runner.invoke(args=["restore-listener", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert summary_line(result) == "restored 11, skipped 0, failed 0"
    assert result.output.count("restored member_activity:") == 11
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 11


def test_rate_paces_the_restore(db, dead_letters, runner, monkeypatch):
    class VirtualTime:  # the pacer's clock and sleep: no real waiting, and no timing in the assertion
        now, sleeps = 0.0, []

        def clock(self):
            return self.now

        def sleep(self, seconds):
            self.sleeps.append(seconds)
            self.now += seconds

    virtual = VirtualTime()
    monkeypatch.setattr(jobs, "Pacer", lambda rate: Pacer(rate, clock=virtual.clock, sleep=virtual.sleep))
    for n in range(20):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    result = runner.invoke(args=["restore-listener", "--rate", "40"])
    assert result.exit_code == 0, result.output
    assert summary_line(result) == "restored 20, skipped 0, failed 0"
    # 20 records at 40 a second: each after the first waits its 1/40 s, so the last starts 19/40 s after the first
    assert virtual.sleeps == [pytest.approx(1 / 40)] * 19 and virtual.now == pytest.approx(19 / 40)


def test_filters_take_only_matching_dead_letters(db, dead_letters, runner, stepping_clock):
    like = ActivityEvent.new(ActivityType.LIKE_POST, 9, post_id=101, at=T0)
    listener_dead_letter(dead_letters, like, offset=1)
    for n in range(2, 5):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    docs = documents(db, KAFKA_LISTENER_DEAD_LETTERS)

    by_category = runner.invoke(args=["restore-listener", "--category", "post_like"])
    assert summary_line(by_category) == "restored 1, skipped 0, failed 0"
    assert [a["message_key"] for a in documents(db, MEMBER_ACTIVITIES)] == [like.message_key]

    by_key = runner.invoke(args=["restore-listener", "--key", docs[2]["message_key"]])
    assert summary_line(by_key) == "restored 1, skipped 0, failed 0"

    since = docs[3]["created_at"]  # the dead letter's own time, as the store keeps it
    by_since = runner.invoke(args=["restore-listener", "--since", _iso(since + timedelta(milliseconds=1))])
    assert summary_line(by_since) == "restored 0, skipped 0, failed 0"
    by_since = runner.invoke(args=["restore-listener", "--since", _iso(since)])
    assert summary_line(by_since) == "restored 1, skipped 0, failed 0"
    assert db[KAFKA_LISTENER_DEAD_LETTERS].count_documents({"status": "pending"}) == 1  # docs[1] remains


@pytest.mark.parametrize(
    "args, message",
    [
        (["restore-listener", "--batch-size", "0"], "--batch-size"),
        (["restore-listener", "--limit", "-1"], "--limit"),
        (["restore-listener", "--rate", "0"], "--rate"),
        (["restore-listener", "--category", "LIKES"], "'LIKES' is not one of"),
        (["restore-listener", "--since", "last tuesday"], "is not an ISO date"),
        (["restore-publisher", "--since", "9999-12-31T23:59:59-01:00"], "outside the years 1970-9999"),  # issue 19 (5)
        (["restore-listener", "--since", "1970-01-01T00:30:00+01:00"], "outside the years 1970-9999"),
        (["restore-listener", "--key", " "], "must not be empty"),
        (["restore-listener", "--watch", "0"], "--watch"),
        (["restore-listener", "--dry-run", "--watch", "5"], "--dry-run cannot be combined with --watch"),
        (["restore-publisher", "--mode", "replay"], "'replay' is not one of"),
    ],
)
def test_bad_options_are_usage_errors(runner, db, dead_letters, args, message):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    before = snapshot(db)
    result = runner.invoke(args=args)
    assert result.exit_code == 2
    assert message in result.output
    assert snapshot(db) == before


def test_watch_runs_passes_until_interrupted_and_gives_back_what_it_holds(db, dead_letters, runner, monkeypatch):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    pauses = []

    def pause(seconds):
        pauses.append(seconds)
        if len(pauses) == 1:  # a new failure arrives while the restore waits
            listener_dead_letter(dead_letters, post_event(2), offset=2)
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(restore_cli, "_wait_between_passes", pause)
    result = runner.invoke(args=["restore-listener", "--watch", "2"])

    assert result.exit_code == 0, result.output
    assert pauses == [2.0, 2.0]
    assert summary_line(result) == "restored 2, skipped 0, failed 0"
    assert "interrupted" in result.output
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 2


def test_an_interrupted_run_gives_back_its_claims_and_says_so(fake):
    app = fake.app
    db = get_container(app).db
    store = get_container(app).dead_letters
    for n in range(4):
        publisher_dead_letter(store, post_event(n), kind="kafka")
    deliver = fake._deliver

    def ctrl_c_on_the_third(event):
        if len(fake.published) == 2:
            raise KeyboardInterrupt
        deliver(event)

    fake._deliver = ctrl_c_on_the_third
    result = app.test_cli_runner().invoke(args=["restore-publisher", "--batch-size", "4"])

    assert result.exit_code == 130
    assert "interrupted: this run's claims were given back" in result.output
    assert summary_line(result) == "restored 2, skipped 0, failed 0"
    docs = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    assert [d["status"] for d in docs] == ["completed", "completed", "pending", "pending"]
    assert not any(d["is_editing"] for d in docs) and all("claim_token" not in d for d in docs)
    assert [d["attempts"] for d in docs[2:]] == [1, 1]  # an interruption is not a failed attempt

    fake._deliver = deliver
    again = app.test_cli_runner().invoke(args=["restore-publisher"])
    assert summary_line(again) == "restored 2, skipped 0, failed 0"


def test_on_a_terminal_a_progress_bar_replaces_the_lines_and_failures_are_listed(db, dead_letters, runner, monkeypatch):
    for n in range(3):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    listener_dead_letter(dead_letters, None, value=b"garbage", offset=9)
    monkeypatch.setattr(restore_cli, "_stdout_is_a_terminal", lambda: True)

    result = runner.invoke(args=["restore-listener"])

    assert result.exit_code == 1
    assert "restore-listener" in result.output  # the bar's label
    assert "restored member_activity:" not in result.output  # no line per restored record
    assert "failed   unparsed:member-activity-20261122:0:9" in result.output
    assert summary_line(result) == "restored 3, skipped 0, failed 1"


def _iso(at) -> str:
    return at.replace(tzinfo=None).isoformat() + "Z"


def test_a_store_failure_on_recording_gives_the_batch_back_with_the_error(
    db, dead_letters, dailyfeed, runner, monkeypatch
):
    for n in range(3):
        listener_dead_letter(dead_letters, post_event(n), offset=n)

    def refused(events):
        raise AutoReconnect("member_activities: connection reset")

    monkeypatch.setattr(dailyfeed.activity_service, "record_activities", refused)
    result = runner.invoke(args=["restore-listener"])

    assert result.exit_code == 1
    assert summary_line(result) == "restored 0, skipped 0, failed 3"
    assert result.output.count("could not store the activity, left pending: AutoReconnect") == 3
    docs = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert [(d["status"], d["is_editing"], d["attempts"]) for d in docs] == [("pending", False, 2)] * 3
    assert {d["error"]["message"] for d in docs} == {"member_activities: connection reset"}
    assert all("claim_token" not in d for d in docs)

    monkeypatch.undo()
    again = runner.invoke(args=["restore-listener"])
    assert summary_line(again) == "restored 3, skipped 0, failed 0"
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 3


def test_release_all_failing_in_the_finally_of_a_finished_restore_is_only_a_warning(
    db, dead_letters, runner, monkeypatch, caplog
):
    for n in range(3):
        listener_dead_letter(dead_letters, post_event(n), offset=n)

    def store_gone(token):
        raise AutoReconnect("127.0.0.1:27017: connection closed (injected)")

    monkeypatch.setattr(dead_letters, "release_all", store_gone)
    result = runner.invoke(args=["restore-listener"])

    assert result.exit_code == 0, result.output
    assert summary_line(result) == "restored 3, skipped 0, failed 0"
    assert "could not give back this run's claims (127.0.0.1:27017: connection closed (injected))" in caplog.text
    assert {(d["status"], d["is_editing"]) for d in documents(db, KAFKA_LISTENER_DEAD_LETTERS)} == {
        ("completed", False)
    }
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 3


def test_release_all_failing_after_a_failed_restore_does_not_hide_the_first_error(
    db, dead_letters, runner, monkeypatch, caplog
):
    for n in range(3):
        listener_dead_letter(dead_letters, post_event(n), offset=n)

    def store_gone(*args, **kwargs):
        raise AutoReconnect("store went away while completing (injected)")

    def release_all_gone(token):
        raise AutoReconnect("store still away (injected)")

    monkeypatch.setattr(dead_letters, "complete_batch", store_gone)
    monkeypatch.setattr(dead_letters, "release_all", release_all_gone)
    result = runner.invoke(args=["restore-listener"])

    assert result.exit_code == 1
    assert "the store failed: AutoReconnect: store went away while completing (injected)" in result.output
    assert "could not give back this run's claims (store still away (injected))" in caplog.text
    # Held until their lease runs out; stored already, so the next run completes them without a duplicate.
    # still pending and still held by the failed run's claims: their leases end by themselves
    left = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert {d["status"] for d in left} == {"pending"}
    assert all(dead_letters.claim_of(KAFKA_LISTENER_DEAD_LETTERS, d) is not None for d in left)
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 3
