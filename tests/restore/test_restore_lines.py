"""The line `restore-listener` and `restore-publisher` print for each dead letter, as an operator reads it: the
outcome, the dead letter's key and collection, and what happened (restore/jobs.py), in a run and in a dry run;
and how many a pass would take (the progress bar's length). On both store backends."""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect

from dailyfeed.deadletters import Selection, dead_letter_event
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.restore.jobs import ListenerRestore, RestoreOptions
from dailyfeed.store import FEIGN_DEAD_LETTERS, KAFKA_LISTENER_DEAD_LETTERS, KAFKA_PUBLISHER_DEAD_LETTERS

from ..support.deadletters import documents, listener_dead_letter, post_event, publisher_dead_letter

LISTENER = f"[{KAFKA_LISTENER_DEAD_LETTERS}]"


def lines(result) -> list[str]:
    return result.output.splitlines()[:-1]  # the summary line is the last


def test_restore_listener_lines_say_what_was_recorded_before_and_under_which_key(
    db, dead_letters, dailyfeed, runner, monkeypatch
):
    recorded, fresh, late = post_event(0), post_event(1), post_event(2)
    dailyfeed.activity_service.record_activities([recorded])
    listener_dead_letter(dead_letters, recorded, offset=0)
    listener_dead_letter(dead_letters, fresh, offset=1)
    # the listener could not parse it when it came (an older version); its raw record parses now
    listener_dead_letter(dead_letters, None, offset=2, value=late.to_bytes())
    listener_dead_letter(dead_letters, None, offset=3, value=b"garbage")
    unparsed = [doc["message_key"] for doc in documents(db, KAFKA_LISTENER_DEAD_LETTERS)[2:]]

    dry = runner.invoke(args=["restore-listener", "--dry-run"])
    assert lines(dry)[:3] == [
        f"would restore {recorded.message_key} {LISTENER}: already recorded",
        f"would restore {fresh.message_key} {LISTENER}: not recorded yet",
        f"would restore {unparsed[0]} {LISTENER}: not recorded yet as {late.message_key}",
    ]
    assert lines(dry)[3].startswith(f"would fail    {unparsed[1]} {LISTENER}: cannot be restored: ")

    def refused(events):
        raise AutoReconnect("member_activities: connection reset")

    monkeypatch.setattr(dailyfeed.activity_service, "record_activities", refused)
    down = runner.invoke(args=["restore-listener"])
    reason = "could not store the activity, left pending: AutoReconnect: member_activities: connection reset"
    assert [line for line in lines(down) if "could not store" in line] == [
        f"failed   {key} {LISTENER}: {reason}" for key in (recorded.message_key, fresh.message_key, unparsed[0])
    ]
    assert lines(down)[0].startswith(f"failed   {unparsed[1]} {LISTENER}: marked failed: ")  # no event in it
    monkeypatch.undo()

    done = runner.invoke(args=["restore-listener"])
    assert not [line for line in lines(done) if line.startswith("failed")]
    assert sorted(line for line in lines(done) if line.startswith("restored")) == sorted(
        [
            f"restored {recorded.message_key} {LISTENER}",
            f"restored {fresh.message_key} {LISTENER}",
            f"restored {unparsed[0]} {LISTENER}: as {late.message_key}",
        ]
    )


def test_restore_publisher_lines_name_what_was_left_pending_and_why(db, dead_letters, runner, activity_service_down):
    follow = ActivityEvent.new(ActivityType.MEMBER_FOLLOW, 9, following_id=7)
    dead_letters.record_publisher_failure("kafka", follow, RuntimeError("unreachable"))
    for n in range(5):
        publisher_dead_letter(dead_letters, post_event(n))
    activity_service_down.down()

    result = runner.invoke(args=["restore-publisher"])
    assert result.exit_code == 1
    assert (
        f"failed   {follow.message_key} [{KAFKA_PUBLISHER_DEAD_LETTERS}]: no content service publishes MEMBER events;"
        " left pending, restore it with --mode handoff" in lines(result)
    )
    # three failures in a row: the rest of the batch is left pending without trying the transport
    assert [line for line in lines(result) if line.startswith("skipped")] == [
        f"skipped  {post_event(n).message_key} [{FEIGN_DEAD_LETTERS}]: left pending: the post-service transport is "
        "down (3 failures in a row)"
        for n in (3, 4)
    ]
    assert [doc["attempts"] for doc in documents(db, FEIGN_DEAD_LETTERS)] == [2, 2, 2, 1, 1]


def test_a_handoff_whose_copy_is_already_there_says_so(db, dead_letters, runner):
    publisher_dead_letter(dead_letters, post_event(0))
    [letter] = documents(db, FEIGN_DEAD_LETTERS)
    # an earlier handoff copied it and crashed before completing it
    assert dead_letters.hand_off_batch([(FEIGN_DEAD_LETTERS, letter, dead_letter_event(letter))]) == [True]
    again = runner.invoke(args=["restore-publisher", "--mode", "handoff"])
    assert lines(again) == [
        f"restored {post_event(0).message_key} [{FEIGN_DEAD_LETTERS}]: already in {KAFKA_LISTENER_DEAD_LETTERS}"
    ]
    assert len(documents(db, KAFKA_LISTENER_DEAD_LETTERS)) == 1


def test_the_progress_bar_counts_what_a_pass_will_take_at_most_its_limit(dead_letters, dailyfeed):
    for n in range(3):
        listener_dead_letter(dead_letters, post_event(n), offset=n)

    def pending(limit):
        options = RestoreOptions(limit=limit, selection=Selection())
        return ListenerRestore(dead_letters, dailyfeed.activity_service, options).pending()

    assert (pending(None), pending(2), pending(5)) == (3, 2, 3)


def test_a_dead_letter_another_restore_holds_is_skipped_named_and_left_to_it(db, dead_letters, runner):
    for n in range(3):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    held = documents(db, KAFKA_LISTENER_DEAD_LETTERS)[1]
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, held["_id"], "another-restore") is not None

    result = runner.invoke(args=["restore-listener"])
    assert result.exit_code == 0, result.output
    assert [line for line in lines(result) if line.startswith("skipped")] == [
        f"skipped  {held['message_key']} {LISTENER}: taken by another restore"
    ]
    assert sorted(line for line in lines(result) if line.startswith("restored")) == sorted(
        f"restored {post_event(n).message_key} {LISTENER}" for n in (0, 2)
    )
    assert "skipped 1" in result.output.splitlines()[-1]
    left = documents(db, KAFKA_LISTENER_DEAD_LETTERS, status="pending")
    assert [doc["message_key"] for doc in left] == [held["message_key"]]  # still the other restore's to finish


def test_a_slow_rate_below_one_a_second_restores(dead_letters, runner):
    listener_dead_letter(dead_letters, post_event(0), offset=0)
    result = runner.invoke(args=["restore-listener", "--rate", "0.5", "--limit", "1", "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    assert lines(result) == [f"restored {post_event(0).message_key} {LISTENER}"]


@pytest.mark.parametrize(
    "options, problem",
    [
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"limit": 0}, "limit must be at least 1"),
        ({"rate": 0.0}, "rate must be positive"),
        ({"rate": -2.0}, "rate must be positive"),
    ],
)
def test_restore_options_refuse_what_no_pass_could_do_naming_it(options, problem):
    with pytest.raises(ValueError, match=f"^{problem}$"):
        RestoreOptions(**options)


def test_restore_options_take_the_smallest_values_that_work():
    options = RestoreOptions(batch_size=1, limit=1, rate=0.25)
    assert (options.batch_size, options.limit, options.rate) == (1, 1, 0.25)
