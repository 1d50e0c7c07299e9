"""What the dead-letter actions (restore/actions.py) answer an integrator and record in the audit trail: the whole
JSON body of discard, re-queue and undo-discard, dry run and done; the 4xx naming what is missing or stale; the
refused and done audit entries; a task's chunk limit; and a "record" replay beside other listener dead letters or
another replay running at once. On both stores."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dailyfeed.deadletters import Selection, Status, audit
from dailyfeed.extension import get_container
from dailyfeed.restore import actions
from dailyfeed.store import AUDIT, FEIGN_DEAD_LETTERS, KAFKA_LISTENER_DEAD_LETTERS, MEMBER_ACTIVITIES
from dailyfeed.transport.base import TransportUnavailable

from ..support.deadletters import documents, listener_dead_letter, post_event


def feign_letters(dead_letters, count: int) -> None:
    for n in range(count):
        dead_letters.record_publisher_failure("feign", post_event(n), TransportUnavailable("down"))


def statuses(db, collection: str) -> list[str]:
    return [doc["status"] for doc in documents(db, collection)]


def fail(dead_letters, collection: str, doc) -> None:
    dead_letters.claim(collection, doc["_id"], "a-restore")
    dead_letters.fail(collection, doc["_id"], "a-restore", "no event in it")


FEIGN = {"filter": {"collection": "feign"}}
SELECTED = "collection feign_dead_letters"


def test_discard_requeue_and_undiscard_answer_the_whole_body_dry_run_and_done(admin, dead_letters, db):
    feign_letters(dead_letters, 4)
    first, _, third, done = documents(db, FEIGN_DEAD_LETTERS)
    dead_letters.claim(FEIGN_DEAD_LETTERS, done["_id"], "a-restore")
    dead_letters.complete(FEIGN_DEAD_LETTERS, done["_id"], "a-restore")  # completed: no action takes it
    fail(dead_letters, FEIGN_DEAD_LETTERS, first)

    def answer(action, body):
        return admin.data(admin.post(f"/dead-letters/{action}", body))

    assert answer("requeue", {**FEIGN, "dryRun": True}) == {
        "action": "requeue",
        "dryRun": True,
        "matching": 1,
        "selection": SELECTED,
        "details": [],
    }
    assert answer("requeue", FEIGN) == {
        "action": "requeue",
        "dryRun": False,
        "requeued": 1,
        "skipped": 0,
        "failed": 0,
        "selection": SELECTED,
        "details": [],
    }
    assert answer("discard", {**FEIGN, "dryRun": True}) == {
        "action": "discard",
        "dryRun": True,
        "matching": 3,
        "selection": SELECTED,
        "details": [],
    }
    assert answer("discard", {**FEIGN, "expectedCount": 3}) == {
        "action": "discard",
        "dryRun": False,
        "discarded": 3,
        "skipped": 0,
        "failed": 0,
        "selection": SELECTED,
        "details": [],
    }
    # a restore holds one discarded dead letter right now (a discard undone by another operator, say)
    held = dead_letters.claim(FEIGN_DEAD_LETTERS, third["_id"], "a-restore", statuses=(Status.DISCARDED,))
    assert held is not None
    assert answer("undiscard", {**FEIGN, "dryRun": True}) == {
        "action": "undiscard",
        "dryRun": True,
        "matching": 3,
        "selection": SELECTED,
        "details": [],
    }
    assert answer("undiscard", FEIGN) == {
        "action": "undiscard",
        "dryRun": False,
        "undone": 2,
        "skipped": 1,
        "failed": 0,
        "selection": SELECTED,
        "details": [],
    }
    assert statuses(db, FEIGN_DEAD_LETTERS) == ["pending", "pending", "discarded", "completed"]


def test_a_discard_without_the_confirmed_count_or_with_a_stale_one_says_so_and_is_audited(app, admin, dead_letters, db):
    feign_letters(dead_letters, 2)
    missing = admin.post("/dead-letters/discard", FEIGN)
    assert missing.status_code == 400
    assert missing.json["message"] == "expectedCount is required: the count a dry run answered, as confirmed"
    stale = admin.post("/dead-letters/discard", {**FEIGN, "expectedCount": 3, "reason": "test data"})
    assert stale.status_code == 409
    assert stale.json["message"] == (
        "the selection now matches 2 dead letters to discard, not 3; look again and confirm the new count"
    )
    assert admin.data(admin.post("/dead-letters/discard", {**FEIGN, "expectedCount": 2, "reason": "test data"}))
    entries = admin.data(admin.get("/audit?action=discard&outcome="))["content"]
    assert [
        (e["outcome"], e["selection"], e["dryRunCount"], e["resultCount"], e["reason"], e["detail"]) for e in entries
    ] == [
        ("done", SELECTED, 2, 2, "test data", "discarded 2, skipped 0, failed 0"),
        ("refused", SELECTED, 3, None, "test data", stale.json["message"]),
    ]
    assert statuses(db, FEIGN_DEAD_LETTERS) == ["discarded", "discarded"]


@pytest.mark.parametrize(
    "action,options,before,after",
    [
        ("discard", {"expected": actions.CONFIRMED}, "pending", "discarded"),
        ("requeue", {}, "failed", "pending"),
        ("undiscard", {}, "discarded", "pending"),
    ],
)
def test_a_tasks_chunk_acts_on_at_most_its_limit(app, dead_letters, db, action, options, before, after):
    container = get_container(app)
    feign_letters(dead_letters, 3)
    for doc in documents(db, FEIGN_DEAD_LETTERS):
        if before == "failed":
            fail(dead_letters, FEIGN_DEAD_LETTERS, doc)
        elif before == "discarded":
            dead_letters.claim(FEIGN_DEAD_LETTERS, doc["_id"], "t")
            dead_letters.discard(FEIGN_DEAD_LETTERS, doc["_id"], "t")
    chunk = actions.act(action, container, Selection(), dry_run=False, limit=2, **options)
    assert chunk.done == 2
    assert statuses(db, FEIGN_DEAD_LETTERS) == [after, after, before]


def test_a_record_replay_takes_only_its_own_copies_and_says_which_had_no_event(app, admin, dead_letters, db):
    feign_letters(dead_letters, 2)
    broken = documents(db, FEIGN_DEAD_LETTERS)[1]
    db[FEIGN_DEAD_LETTERS].update_one({"_id": broken["_id"]}, {"$set": {"payload": "{not json"}})
    listener_dead_letter(dead_letters, post_event(9), offset=9)  # another listener dead letter, not chosen
    chosen = [str(doc["_id"]) for doc in documents(db, FEIGN_DEAD_LETTERS)]

    answer = admin.data(admin.post("/dead-letters/replay", {"ids": chosen, "mode": "record"}))
    assert (answer["restored"], answer["skipped"], answer["failed"]) == (1, 0, 1)
    [failed] = [d for d in answer["details"] if d["outcome"] == "failed"]
    assert (failed["collection"], failed["key"]) == ("feign", broken["message_key"])
    assert failed["detail"].startswith("marked failed: ")
    assert {d["message_key"] for d in db[MEMBER_ACTIVITIES].find()} == {post_event(0).message_key}
    by_key = {d["message_key"]: d["status"] for d in documents(db, KAFKA_LISTENER_DEAD_LETTERS)}
    assert by_key == {post_event(0).message_key: "completed", post_event(9).message_key: "pending"}


def test_a_record_replay_whose_copies_another_replay_recorded_first_counts_them_skipped(app, dead_letters, db):
    container = get_container(app)
    feign_letters(dead_letters, 2)
    hand_off, other = dead_letters.hand_off_batch, {}

    def hand_off_then_another_replay_records(events):
        copied = hand_off(events)
        # another operator's replay of the listener side runs between this hand-off and its recording
        other["answer"] = actions.replay(
            container, Selection(collections=(KAFKA_LISTENER_DEAD_LETTERS,)), dry_run=False
        )
        return copied

    container.dead_letters.hand_off_batch = hand_off_then_another_replay_records
    seen = []
    answer = actions.replay(
        container, Selection(collections=(FEIGN_DEAD_LETTERS,)), dry_run=False, mode="record", report=seen.append
    )
    assert other["answer"].counts == {"restored": 2, "skipped": 0, "failed": 0}
    assert answer.counts == {"restored": 0, "skipped": 2, "failed": 0}  # the two replays add up to the 2 there were
    assert [(r.outcome.value, r.collection, r.key, r.detail) for r in seen] == [
        (
            "skipped",
            KAFKA_LISTENER_DEAD_LETTERS,
            post_event(n).message_key,
            "handed off here, recorded by another restore running at once",
        )
        for n in range(2)
    ]
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 2


def test_refusals_say_what_is_wrong(app, admin, dead_letters):
    container = get_container(app)
    no_filter = admin.post("/dead-letters/discard", {"expectedCount": 1})
    assert no_filter.status_code == 400
    assert no_filter.json["message"] == (
        "no filter and no ids: this would act on every dead letter; give a filter or ids, "
        'or ask for all explicitly ("all": true)'
    )
    refusals = {
        "unknown action 'purge'; actions are replay, discard, requeue, undiscard": lambda: actions.count(
            "purge", container, Selection()
        ),
        "mode must be one of republish, record, got 'sideways'": lambda: actions.replay(
            container, Selection(), dry_run=True, mode="sideways"
        ),
        "a replay takes pending dead letters; re-queue failed ones first": lambda: actions.count(
            "replay", container, Selection(status=Status.FAILED)
        ),
    }
    for message, call in refusals.items():
        with pytest.raises(actions.InvalidInput) as refused:
            call()
        assert refused.value.message == message
    feign_letters(dead_letters, 2)
    assert actions.count("replay", container, Selection()) == 2  # no mode given: a republish


def test_a_replay_answers_each_dead_letter_by_its_short_collection_name(admin, dead_letters, db):
    feign_letters(dead_letters, 1)
    listener_dead_letter(dead_letters, post_event(9), offset=9)
    answer = admin.data(admin.post("/dead-letters/replay", {"all": True}))
    assert answer == {
        "action": "replay",
        "dryRun": False,
        "restored": 2,
        "skipped": 0,
        "failed": 0,
        "selection": "all dead letters",
        "details": [
            {
                "outcome": "restored",
                "collection": "feign",
                "key": post_event(0).message_key,
                "detail": "republished via post-service (feign)",
            },
            {"outcome": "restored", "collection": "listener", "key": post_event(9).message_key, "detail": ""},
        ],
    }


def test_a_purge_is_audited_with_what_it_deleted_and_why(app, dead_letters, db, set_clock):
    container = get_container(app)
    feign_letters(dead_letters, 2)
    done, discarded = documents(db, FEIGN_DEAD_LETTERS)
    for doc in (done, discarded):
        dead_letters.claim(FEIGN_DEAD_LETTERS, doc["_id"], "t")
    dead_letters.complete(FEIGN_DEAD_LETTERS, done["_id"], "t")
    dead_letters.discard(FEIGN_DEAD_LETTERS, discarded["_id"], "t")
    cutoff = set_clock.now + timedelta(days=1)

    first = actions.purge(container, cutoff, actor="alice", via="cli", reason="tidy up")
    assert first.dead_letters == 1 and statuses(db, FEIGN_DEAD_LETTERS) == ["discarded"]
    second = actions.purge(container, cutoff, actor="bob", via="api", discarded=True)
    assert second.dead_letters == 1 and statuses(db, FEIGN_DEAD_LETTERS) == []
    entries = [
        (e["actor"], e["action"], e["outcome"], e["via"], e["resultCount"], e["reason"], e["detail"])
        for e in map(audit.as_json, db[AUDIT].find().sort([("at", 1), ("_id", 1)]))
    ]
    day = f"{cutoff:%Y-%m-%d %H:%M:%S}Z"
    assert entries == [
        ("alice", "purge", "done", "cli", 1, "tidy up", f"completed before {day}; 2 claims"),
        ("bob", "purge", "done", "api", 1, None, f"completed and discarded before {day}; 0 claims"),
    ]

    # the serving process's retention purge measures the days from the time it is given
    feign_letters(dead_letters, 1)
    set_clock.now += timedelta(days=2)
    [late] = documents(db, FEIGN_DEAD_LETTERS)
    dead_letters.claim(FEIGN_DEAD_LETTERS, late["_id"], "t")
    dead_letters.complete(FEIGN_DEAD_LETTERS, late["_id"], "t")
    container.settings = container.settings.with_overrides({"deadletters.retention-days": 30})
    assert actions.purge_by_retention(container, now=set_clock.now + timedelta(days=31)).dead_letters == 1
