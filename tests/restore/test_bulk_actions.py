"""Bulk dead-letter actions (deadletters/bulk.py: discard, re-queue, undo a discard, purge) as the console, its
tasks and the CLI use them: what they change, what they leave to a restore that holds a dead letter, and what
they count. On both store backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pymongo.errors import PyMongoError

from dailyfeed.deadletters import Selection
from dailyfeed.store import FEIGN_DEAD_LETTERS, KAFKA_LISTENER_DEAD_LETTERS

from ..support.deadletters import documents, listener_dead_letter, post_event, publisher_dead_letter


def statuses(db, collection: str) -> list[str]:
    return [doc["status"] for doc in documents(db, collection)]


def three_feign_and_one_listener(db, dead_letters) -> list[dict]:
    for n in range(3):
        publisher_dead_letter(dead_letters, post_event(n))
    listener_dead_letter(dead_letters, post_event(9), offset=9)
    return documents(db, FEIGN_DEAD_LETTERS)


def test_a_limit_counts_what_a_restore_holds_and_each_action_stops_at_it(db, dead_letters, stepping_clock):
    held, second, third = three_feign_and_one_listener(db, dead_letters)
    assert dead_letters.claim(FEIGN_DEAD_LETTERS, held["_id"], "a-restore") is not None
    everything = Selection()

    # a task's chunk of 2: the held one (skipped) and the next; the listener side is left for the next chunk
    chunk = dead_letters.discard_matching(everything, limit=2)
    assert (chunk.done, chunk.skipped) == (1, 1)
    assert statuses(db, FEIGN_DEAD_LETTERS) == ["pending", "discarded", "pending"]
    assert statuses(db, KAFKA_LISTENER_DEAD_LETTERS) == ["pending"]

    # the held one is counted skipped once, whichever collection comes after it
    rest = dead_letters.discard_matching(everything)
    assert (rest.done, rest.skipped) == (2, 1)
    assert statuses(db, FEIGN_DEAD_LETTERS) == ["pending", "discarded", "discarded"]
    assert statuses(db, KAFKA_LISTENER_DEAD_LETTERS) == ["discarded"]

    undone = dead_letters.undiscard_matching(everything, limit=2)
    assert (undone.done, undone.skipped) == (2, 0)
    assert statuses(db, FEIGN_DEAD_LETTERS) == ["pending"] * 3
    assert statuses(db, KAFKA_LISTENER_DEAD_LETTERS) == ["discarded"]

    for doc in (second, third):
        dead_letters.claim(FEIGN_DEAD_LETTERS, doc["_id"], "a-restore")
        dead_letters.fail(FEIGN_DEAD_LETTERS, doc["_id"], "a-restore", "no event in it")
    requeued = dead_letters.requeue_matching(everything, limit=1)
    assert (requeued.done, requeued.skipped) == (1, 0)
    assert statuses(db, FEIGN_DEAD_LETTERS) == ["pending", "pending", "failed"]


def test_one_taken_by_another_restore_after_the_lease_ran_out_is_left_to_it_and_counted_skipped(
    db, dead_letters, set_clock, monkeypatch
):
    held, late, taken = three_feign_and_one_listener(db, dead_letters)[:3]
    dead_letters.claim(FEIGN_DEAD_LETTERS, held["_id"], "a-restore")
    discard = dead_letters.discard

    def slow_discard(collection, doc_id, token):
        if doc_id == late["_id"]:  # the store stalled past the action's lease; another restore took one meanwhile
            set_clock.now += timedelta(seconds=dead_letters.lease_seconds + 1)
            assert dead_letters.claim(FEIGN_DEAD_LETTERS, taken["_id"], "another-restore") is not None
        return discard(collection, doc_id, token)

    monkeypatch.setattr(dead_letters, "discard", slow_discard)
    result = dead_letters.discard_matching(Selection(collections=(FEIGN_DEAD_LETTERS,)))
    # the late one nobody took is still this action's to finish; the taken one is the other restore's
    assert (result.done, result.skipped) == (1, 2)
    assert statuses(db, FEIGN_DEAD_LETTERS) == ["pending", "discarded", "pending"]


def test_two_bulk_actions_at_once_do_not_give_back_each_others_dead_letters(db, dead_letters, monkeypatch):
    three_feign_and_one_listener(db, dead_letters)
    discard, other = dead_letters.discard, {}

    def discard_while_another_operator_acts(collection, doc_id, token):
        if collection == FEIGN_DEAD_LETTERS and not other:
            # another operator's action starts and ends while this one holds the feign ones
            other["result"] = dead_letters.discard_matching(Selection(collections=(KAFKA_LISTENER_DEAD_LETTERS,)))
        return discard(collection, doc_id, token)

    monkeypatch.setattr(dead_letters, "discard", discard_while_another_operator_acts)
    result = dead_letters.discard_matching(Selection(collections=(FEIGN_DEAD_LETTERS,)))
    assert (result.done, result.skipped) == (3, 0)
    assert (other["result"].done, other["result"].skipped) == (1, 0)
    assert statuses(db, FEIGN_DEAD_LETTERS) == ["discarded"] * 3


def test_a_store_failure_midway_keeps_what_was_done_and_holds_nothing_back(db, dead_letters, monkeypatch):
    three_feign_and_one_listener(db, dead_letters)
    discard, calls = dead_letters.discard, []

    def failing_discard(collection, doc_id, token):
        calls.append(doc_id)
        if len(calls) == 2:
            raise PyMongoError("store down")
        return discard(collection, doc_id, token)

    monkeypatch.setattr(dead_letters, "discard", failing_discard)
    with pytest.raises(PyMongoError):
        dead_letters.discard_matching(Selection(collections=(FEIGN_DEAD_LETTERS,)))
    assert statuses(db, FEIGN_DEAD_LETTERS) == ["discarded", "pending", "pending"]
    monkeypatch.undo()
    # the operator tries again at once: nothing is held by the failed action until its lease ends
    again = dead_letters.discard_matching(Selection(collections=(FEIGN_DEAD_LETTERS,)))
    assert (again.done, again.skipped) == (2, 0)


def test_purge_deletes_what_was_completed_before_the_cutoff_also_when_kept_by_an_older_version(
    db, dead_letters, set_clock
):
    for n in range(5):
        publisher_dead_letter(dead_letters, post_event(n))
    old_done, old_discarded, older_version, recent_done, pending = documents(db, FEIGN_DEAD_LETTERS)
    for doc in (old_done, old_discarded, older_version):
        dead_letters.claim(FEIGN_DEAD_LETTERS, doc["_id"], "t")
    dead_letters.complete(FEIGN_DEAD_LETTERS, old_done["_id"], "t")
    dead_letters.discard(FEIGN_DEAD_LETTERS, old_discarded["_id"], "t")
    dead_letters.complete(FEIGN_DEAD_LETTERS, older_version["_id"], "t")
    # completed by a version that did not record completed_at: only updated_at tells when
    db[FEIGN_DEAD_LETTERS].update_one({"_id": older_version["_id"]}, {"$unset": {"completed_at": ""}})
    cutoff = set_clock.now + timedelta(days=1)
    set_clock.now += timedelta(days=2)
    dead_letters.claim(FEIGN_DEAD_LETTERS, recent_done["_id"], "u")
    dead_letters.complete(FEIGN_DEAD_LETTERS, recent_done["_id"], "u")

    dry = dead_letters.purge_completed(cutoff, dry_run=True, discarded=True)
    assert dry.dead_letters == 3
    assert len(documents(db, FEIGN_DEAD_LETTERS)) == 5

    purged = dead_letters.purge_completed(cutoff)  # discarded ones are kept unless asked for
    assert purged.dead_letters == 2
    left = {doc["_id"]: doc["status"] for doc in documents(db, FEIGN_DEAD_LETTERS)}
    assert left == {old_discarded["_id"]: "discarded", recent_done["_id"]: "completed", pending["_id"]: "pending"}
