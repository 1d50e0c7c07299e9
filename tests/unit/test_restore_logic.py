"""Pure restore logic, no store: pacing, the summary, what a dead letter restores to, option parsing."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click
import pytest

from dailyfeed.deadletters import Selection, dead_letter_event
from dailyfeed.events import ActivityEvent, ActivityType, InvalidEvent
from dailyfeed.restore.jobs import Outcome, Pacer, RecordResult, RestoreOptions, Summary
from dailyfeed.restore.options import SinceType

AT = datetime(2026, 11, 22, 10, 20, 30, 123456, tzinfo=timezone.utc)
EVENT = ActivityEvent.new(ActivityType.LIKE_COMMENT, 9, post_id=12, comment_id=40, at=AT)


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pacer_spaces_records_at_the_rate():
    clock = FakeClock()
    pacer = Pacer(10, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        pacer.wait()
    assert clock.now - 100.0 == pytest.approx(0.4)  # the first goes at once, then one every 0.1 s


def test_pacer_does_not_burst_after_a_slow_record():
    clock = FakeClock()
    pacer = Pacer(10, clock=clock, sleep=clock.sleep)
    pacer.wait()
    clock.now += 5.0  # a record took 5 s: no credit is saved up for the ones after it
    pacer.wait()
    pacer.wait()
    assert clock.slept == [pytest.approx(0.1)]


def test_pacer_without_a_rate_never_sleeps():
    clock = FakeClock()
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        pacer.wait()
    assert clock.slept == []


def test_summary_counts_outcomes_and_says_whether_anything_failed():
    summary = Summary()
    for outcome in (Outcome.RESTORED, Outcome.RESTORED, Outcome.SKIPPED):
        summary.add(RecordResult(outcome, "c", "k"))
    assert (summary.line(), summary.ok) == ("restored 2, skipped 1, failed 0", True)
    summary.add(RecordResult(Outcome.FAILED, "c", "k"))
    assert (summary.line(), summary.ok) == ("restored 2, skipped 1, failed 1", False)


@pytest.mark.parametrize("options", [dict(batch_size=0), dict(limit=0), dict(rate=0), dict(rate=-1)])
def test_restore_options_refuse_nonsense(options):
    with pytest.raises(ValueError):
        RestoreOptions(**options)


def test_selection_adds_only_the_filters_given_and_never_looks_at_a_claim_mirror():
    assert Selection().claimable_query() == {"status": "pending"}
    query = Selection(category="POST", since=AT, key="k").claimable_query()
    assert query == {"status": "pending", "category": "POST", "created_at": {"$gte": AT}, "message_key": "k"}


# --- what a dead letter restores to -------------------------------------------------------------------------------


def test_a_canonical_payload_restores_to_its_event_under_the_dead_letters_key():
    doc = {"message_key": EVENT.message_key, "category": "COMMENT_LIKE", "payload": json.dumps(EVENT.to_json())}
    assert dead_letter_event(doc) == EVENT


def test_an_unparsed_listener_dead_letter_gets_one_more_try_at_its_raw_record():
    doc = {
        "message_key": "unparsed:member-activity-20261122:0:5",
        "category": None,
        "payload": None,
        "origin": {
            "topic": "member-activity-20261122",
            "partition": 0,
            "offset": 5,
            "key": EVENT.message_key,
            "value": EVENT.to_bytes().decode(),
        },
    }
    assert dead_letter_event(doc) == EVENT


def test_a_raw_record_of_the_java_original_restores_too():
    value = json.dumps(
        {
            "memberId": 9,
            "postId": 12,
            "commentId": 40,
            "memberActivityType": "LIKE_COMMENT",
            "createdAt": [2026, 11, 22, 10, 20, 30, 123456000],
        }
    )
    doc = {"message_key": "unparsed:t:0:1", "payload": None, "origin": {"key": EVENT.message_key, "value": value}}
    assert dead_letter_event(doc) == EVENT


@pytest.mark.parametrize(
    "doc, reason",
    [
        ({"message_key": "k", "payload": None, "origin": {"value": "{not json"}}, "not JSON"),
        ({"message_key": "k", "payload": None, "origin": None}, "no payload and no raw record"),
        ({"message_key": "k", "payload": "][", "category": "POST"}, "payload is not JSON"),
        (
            {"message_key": "k", "payload": json.dumps({"memberId": 1, "memberActivityType": "NOPE"})},
            "unknown activity",
        ),
        (
            {"message_key": EVENT.message_key, "category": "POST", "payload": json.dumps(EVENT.to_json())},
            "does not match",
        ),
    ],
)
def test_a_dead_letter_without_an_event_says_why(doc, reason):
    with pytest.raises(InvalidEvent, match=reason):
        dead_letter_event(doc)


# --- --since ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-22", datetime(2026, 11, 22, tzinfo=timezone.utc)),
        ("2026-11-22T10:20:30", datetime(2026, 11, 22, 10, 20, 30, tzinfo=timezone.utc)),
        ("2026-11-22T10:20:30Z", datetime(2026, 11, 22, 10, 20, 30, tzinfo=timezone.utc)),
        ("2026-11-22 12:20:30+02:00", datetime(2026, 11, 22, 10, 20, 30, tzinfo=timezone.utc)),
    ],
)
def test_since_takes_iso_dates_and_date_times_as_utc(text, expected):
    assert SinceType().convert(text, None, None) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "22/11/2026", ""])
def test_since_refuses_what_is_not_iso(text):
    with pytest.raises(click.BadParameter):
        SinceType().convert(text, None, None)
