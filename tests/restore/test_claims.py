"""Claiming dead letters (SPEC section 8: "safe to run twice at once"), on both store backends. Whole restores
racing each other (threads, and two `dailyfeed restore-listener` processes) are in
tests/integration/test_restore_concurrency.py: they need a real server (mongomock is not thread-safe)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import mongomock.collection as mongomock_collection
import pytest
from pymongo.errors import BulkWriteError

from dailyfeed.deadletters import DeadLetterStore, Selection, Status, claims, new_claim_token
from dailyfeed.deadletters.model import insert_unordered
from dailyfeed.events import as_utc

from ..support.deadletters import (
    FEIGN_DEAD_LETTERS,
    KAFKA_LISTENER_DEAD_LETTERS,
    KAFKA_PUBLISHER_DEAD_LETTERS,
    documents,
    listener_dead_letter,
    post_event,
    publisher_dead_letter,
    snapshot,
)

COLLECTIONS = (FEIGN_DEAD_LETTERS, KAFKA_PUBLISHER_DEAD_LETTERS, KAFKA_LISTENER_DEAD_LETTERS)


def race(claim, claimants=6):
    """Start `claimants` threads together, each claiming with its own token; (token, id) of every win."""
    wins: list[tuple[str, object]] = []
    start = threading.Barrier(claimants)

    def claimant():
        token = new_claim_token()
        start.wait()
        wins.extend((token, doc_id) for doc_id in claim(token))

    threads = [threading.Thread(target=claimant) for _ in range(claimants)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return wins


def holder(dead_letters, doc):
    claim = dead_letters.claim_of(KAFKA_LISTENER_DEAD_LETTERS, doc)
    return claim and claim["token"]


def assert_each_claimed_once(db, dead_letters, wins, count):
    assert sorted(Counter(doc_id for _, doc_id in wins).values()) == [1] * count
    holders = {doc_id: token for token, doc_id in wins}
    for doc in documents(db, KAFKA_LISTENER_DEAD_LETTERS):
        assert holder(dead_letters, doc) == holders[doc["_id"]]
        assert doc["is_editing"] is False and "claim_token" not in doc  # claims are not mirrored onto it


def test_racing_claimants_each_get_a_dead_letter_once(db, dead_letters):
    for n in range(20):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    ids = [doc["_id"] for doc in documents(db, KAFKA_LISTENER_DEAD_LETTERS)]

    def claim_each(token):
        return [doc_id for doc_id in ids if dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc_id, token) is not None]

    assert_each_claimed_once(db, dead_letters, race(claim_each), 20)


def test_two_claimants_past_the_uniqueness_check_at_the_same_instant_still_get_one_claim(db, dead_letters, monkeypatch):
    """The worst interleaving, forced: on the embedded store each claim's insert waits (up to a second) right after
    mongomock checked the `_id` is free and before it stores the claim, for the other claimant to get there too.
    Only one may win (SPEC 8: a restore is safe to run twice at once). A real server decides in one step; there this
    is the plain race."""
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    [doc] = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    together = threading.Barrier(2, timeout=1.0)
    stored = mongomock_collection.helpers.patch_datetime_awareness_in_document

    def checked_then_wait(data):  # mongomock calls this between its `_id` check and storing the document
        if isinstance(data, dict) and "lease_until" in data:
            try:
                together.wait()
            except threading.BrokenBarrierError:  # the other claimant never got here
                pass
        return stored(data)

    monkeypatch.setattr(mongomock_collection.helpers, "patch_datetime_awareness_in_document", checked_then_wait)
    wins = race(
        lambda token: [doc["_id"]] if dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], token) else [],
        claimants=2,
    )
    assert len(wins) == 1
    assert holder(dead_letters, documents(db, KAFKA_LISTENER_DEAD_LETTERS)[0]) == wins[0][0]


def test_a_held_dead_letter_is_not_claimed_again(db, dead_letters):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (doc,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "first") is not None
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "second") is None


def test_the_claim_of_a_crashed_run_is_taken_over_when_its_lease_ends(db, dead_letters):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (doc,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    crashed = DeadLetterStore(db, lease_seconds=0)  # its lease is over as soon as it is taken
    assert crashed.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "crashed") is not None

    taken = dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "next")
    assert taken is not None and taken["claim_token"] == "next"
    # The crashed run, were it to wake up, no longer holds it and cannot mark it.
    assert crashed.complete(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "crashed") is False
    assert db[KAFKA_LISTENER_DEAD_LETTERS].find_one({"_id": doc["_id"]})["status"] == "pending"


def test_a_dead_letter_given_back_is_claimed_again_at_the_next_generation_and_a_stale_claimant_loses(db, dead_letters):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (doc,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, [doc], "first")
    assert dead_letters.release(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "first") is True
    assert holder(dead_letters, doc) is None

    (taken,) = dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, [doc], "second")
    # a claimant that read the dead letter when it was free, a moment later: the held claim decides
    assert dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, [doc], "stale") == []
    assert (taken["lease_generation"], holder(dead_letters, doc)) == (2, "second")
    assert dead_letters.release(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "first") is False


def test_a_claimant_that_read_a_dead_letter_before_it_was_completed_does_not_take_it(db, dead_letters):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (read_earlier,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    (claimed,) = dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, [read_earlier], "first")
    assert dead_letters.complete_batch(KAFKA_LISTENER_DEAD_LETTERS, [claimed], "first") == [read_earlier["_id"]]

    assert dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, [read_earlier], "late") == []
    # the completed dead letter's claim is kept: the late claimant collided with it
    assert [(c["generation"], c["token"]) for c in db["dead_letter_claims"].find()] == [(1, "first")]
    assert documents(db, KAFKA_LISTENER_DEAD_LETTERS)[0]["status"] == "completed"


def test_a_claimant_taking_over_an_ended_lease_checks_the_dead_letter_and_lets_a_finished_one_go(db, dead_letters):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (read_earlier,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    short = DeadLetterStore(db, lease_seconds=0)
    (claimed,) = short.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, [read_earlier], "slow")
    assert short.complete_batch(KAFKA_LISTENER_DEAD_LETTERS, [claimed], "slow") == [read_earlier["_id"]]

    # its lease is over, so the late claimant gets the next generation, reads the dead letter and lets it go
    assert dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, [read_earlier], "late") == []
    claims = sorted(db["dead_letter_claims"].find(), key=lambda c: c["generation"])
    assert [(c["generation"], c["token"]) for c in claims] == [(1, "slow"), (2, "late")]
    assert claims[1]["released_at"] is not None
    assert holder(dead_letters, read_earlier) is None


def test_complete_fail_and_release_mark_only_a_held_dead_letter(db, dead_letters):
    for n in range(3):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    done, bad, given_back = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    for doc in (done, bad, given_back):
        assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "run") is not None
    assert dead_letters.complete(KAFKA_LISTENER_DEAD_LETTERS, done["_id"], "someone else") is False
    assert dead_letters.complete(KAFKA_LISTENER_DEAD_LETTERS, done["_id"], "run") is True
    assert dead_letters.fail(KAFKA_LISTENER_DEAD_LETTERS, bad["_id"], "run", ValueError("no event")) is True
    assert dead_letters.release(KAFKA_LISTENER_DEAD_LETTERS, given_back["_id"], "run", error="broker down") is True

    done, bad, given_back = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert (done["status"], done["is_completed"], done["is_editing"]) == ("completed", True, False)
    assert done["attempts"] == 1  # the original failure only: completing is not an attempt that failed
    assert (bad["status"], bad["is_completed"], bad["is_editing"]) == ("failed", False, False)
    assert bad["error"] == {"type": "ValueError", "message": "no event"} and bad["attempts"] == 2
    assert (given_back["status"], given_back["is_editing"]) == ("pending", False)
    assert given_back["error"]["message"] == "broker down" and given_back["attempts"] == 2
    for doc in (done, bad, given_back):
        assert "claim_token" not in doc and "lease_until" not in doc
    # Given back, it can be claimed again; finished, it cannot.
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, given_back["_id"], "again") is not None
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, done["_id"], "again") is None
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, bad["_id"], "again") is None
    assert (
        dead_letters.claim(
            KAFKA_LISTENER_DEAD_LETTERS, bad["_id"], "discarder", statuses=(Status.PENDING, Status.FAILED)
        )
        is not None
    )


def test_release_all_gives_back_what_a_run_holds_without_counting_an_attempt(db, dead_letters):
    for n in range(3):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    before = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    first, second, third = before
    dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, first["_id"], "run")
    dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, second["_id"], "run")
    dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, third["_id"], "other run")
    assert dead_letters.release_all("run") == 2
    assert [holder(dead_letters, doc) for doc in (first, second, third)] == [None, None, "other run"]
    assert documents(db, KAFKA_LISTENER_DEAD_LETTERS) == before  # no attempt counted: not even written
    assert dead_letters.release_all("run") == 0


# --- a batch at a time (what the restore jobs do) -------------------------------------------------------------------


def test_racing_batch_claimants_each_get_a_dead_letter_once(db, dead_letters):
    for n in range(20):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    candidates = documents(db, KAFKA_LISTENER_DEAD_LETTERS)

    def claim_in_batches(token):
        return [
            doc["_id"]
            for at in range(0, 20, 5)
            for doc in dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, candidates[at : at + 5], token)
        ]

    assert_each_claimed_once(db, dead_letters, race(claim_in_batches), 20)


def test_a_batch_claim_skips_what_is_held_and_takes_over_what_a_crashed_run_held(db, dead_letters):
    for n in range(4):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    free, held, crashed, done = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, held["_id"], "other run") is not None
    assert DeadLetterStore(db, lease_seconds=0).claim(KAFKA_LISTENER_DEAD_LETTERS, crashed["_id"], "crashed")
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, done["_id"], "finisher") is not None
    assert dead_letters.complete(KAFKA_LISTENER_DEAD_LETTERS, done["_id"], "finisher")
    # As read by a restore before the others got to them: all four looked free.
    candidates = [free, held, crashed, done]

    claimed = dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, candidates, "run")

    assert [doc["_id"] for doc in claimed] == [free["_id"], crashed["_id"]]
    assert [(doc["claim_token"], doc["lease_generation"]) for doc in claimed] == [("run", 1), ("run", 2)]
    stored = {doc["_id"]: doc for doc in documents(db, KAFKA_LISTENER_DEAD_LETTERS)}
    assert [holder(dead_letters, stored[doc["_id"]]) for doc in (free, held, crashed, done)] == [
        "run",
        "other run",
        "run",
        None,
    ]
    assert stored[done["_id"]]["status"] == "completed" and "claim_token" not in stored[done["_id"]]
    assert [c["token"] for c in db["dead_letter_claims"].find({"dead_letter": done["_id"]})] == ["finisher"]


def test_a_run_whose_lease_ran_out_may_still_finish_or_give_back_what_nobody_took_over_but_once(db, dead_letters):
    for n in range(3):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    docs = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    slow = DeadLetterStore(db, lease_seconds=0)  # every lease of this run has run out by the time it finishes
    claimed = slow.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, docs, "slow run")

    assert slow.release_batch(KAFKA_LISTENER_DEAD_LETTERS, claimed[:1], "slow run", error="down") == 1
    assert slow.fail(KAFKA_LISTENER_DEAD_LETTERS, docs[1]["_id"], "slow run", "bad") is True
    assert slow.discard(KAFKA_LISTENER_DEAD_LETTERS, docs[2]["_id"], "slow run") is True
    # given back or finished: none of them is the run's any more
    assert slow.release_batch(KAFKA_LISTENER_DEAD_LETTERS, claimed[:1], "slow run", error="down") == 0
    assert slow.fail(KAFKA_LISTENER_DEAD_LETTERS, docs[1]["_id"], "slow run", "bad") is False
    assert slow.requeue(KAFKA_LISTENER_DEAD_LETTERS, docs[1]["_id"], "slow run") is False
    assert slow.discard(KAFKA_LISTENER_DEAD_LETTERS, docs[2]["_id"], "slow run") is False

    stored = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert [(d["status"], d["attempts"]) for d in stored] == [("pending", 2), ("failed", 2), ("discarded", 1)]
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, docs[0]["_id"], "next")["lease_generation"] == 2


def test_complete_batch_marks_only_what_the_run_still_holds(db, dead_letters):
    for n in range(3):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    docs = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    short = DeadLetterStore(db, lease_seconds=0)
    claimed = short.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, docs, "slow run")
    # The slow run's lease ran out; another run took the last one over.
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, docs[2]["_id"], "next") is not None

    done = short.complete_batch(KAFKA_LISTENER_DEAD_LETTERS, claimed, "slow run")

    assert done == [docs[0]["_id"], docs[1]["_id"]]
    first, second, third = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert {(d["status"], d["is_completed"], d["is_editing"]) for d in (first, second)} == {("completed", True, False)}
    assert (third["status"], holder(dead_letters, third)) == ("pending", "next")
    # Claims are kept (a stale claimant collides with them): the completed ones' and both of the third's.
    assert sorted(c["_id"] for c in db["dead_letter_claims"].find()) == sorted(
        [f"{KAFKA_LISTENER_DEAD_LETTERS}/{doc['_id']}/1" for doc in docs]
        + [f"{KAFKA_LISTENER_DEAD_LETTERS}/{third['_id']}/2"]
    )


def test_release_batch_gives_back_with_an_attempt_counted_only_for_an_error(db, dead_letters):
    for n in range(4):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    docs = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    claimed = dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, docs, "run")

    assert dead_letters.release_batch(KAFKA_LISTENER_DEAD_LETTERS, claimed[:2], "run", error="store down") == 2
    assert dead_letters.release_batch(KAFKA_LISTENER_DEAD_LETTERS, claimed[2:], "someone else") == 0
    assert dead_letters.release_batch(KAFKA_LISTENER_DEAD_LETTERS, claimed[2:], "run") == 2

    stored = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert [(d["status"], d["is_editing"], d["attempts"]) for d in stored] == [
        ("pending", False, 2),
        ("pending", False, 2),
        ("pending", False, 1),
        ("pending", False, 1),
    ]
    assert stored[0]["error"]["message"] == "store down" and "claim_token" not in stored[0]
    assert [holder(dead_letters, doc) for doc in stored] == [None] * 4
    assert len(dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, stored, "again")) == 4


def test_batches_larger_than_one_update_are_marked_and_finished_in_several(db, dead_letters, monkeypatch):
    monkeypatch.setattr(claims, "MAX_UPDATE", 2)
    for n in range(5):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    docs = documents(db, KAFKA_LISTENER_DEAD_LETTERS)

    claimed = dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, docs, "run")
    assert [doc["_id"] for doc in claimed] == [doc["_id"] for doc in docs]
    assert {holder(dead_letters, doc) for doc in documents(db, KAFKA_LISTENER_DEAD_LETTERS)} == {"run"}
    assert dead_letters.release_batch(KAFKA_LISTENER_DEAD_LETTERS, claimed[:3], "run") == 3
    assert dead_letters.complete_batch(KAFKA_LISTENER_DEAD_LETTERS, claimed[3:], "run") == [d["_id"] for d in docs[3:]]
    assert [d["status"] for d in documents(db, KAFKA_LISTENER_DEAD_LETTERS)] == ["pending"] * 3 + ["completed"] * 2


def test_claim_of_tells_who_holds_a_dead_letter_until_it_is_given_back(db, dead_letters):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (doc,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert dead_letters.claim_of(KAFKA_LISTENER_DEAD_LETTERS, doc) is None
    claimed = dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "holder")
    (held,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert (
        dead_letters.claim_of(KAFKA_LISTENER_DEAD_LETTERS, held)["token"]
        == "holder"
        == dead_letters.claim_of(KAFKA_LISTENER_DEAD_LETTERS, claimed)["token"]
    )
    assert dead_letters.claim_of(KAFKA_LISTENER_DEAD_LETTERS, held)["lease_until"] > datetime.now(timezone.utc)
    dead_letters.release(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "holder")
    (released,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert dead_letters.claim_of(KAFKA_LISTENER_DEAD_LETTERS, released) is None
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "next") is not None
    assert dead_letters.complete(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "next") is True
    (finished,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert dead_letters.claim_of(KAFKA_LISTENER_DEAD_LETTERS, finished) is None


def test_claim_of_a_crashed_runs_claim_is_nobody_once_its_lease_ran_out(db, dead_letters):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (doc,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert DeadLetterStore(db, lease_seconds=0).claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "crashed")
    assert dead_letters.claim_of(KAFKA_LISTENER_DEAD_LETTERS, doc) is None


# --- holders and non-holders, across the three collections -------------------------------------------------------


def one_in_each_collection(db, dead_letters, n=0):
    """A pending dead letter in each collection; {collection: document}."""
    publisher_dead_letter(dead_letters, post_event(n), "feign")
    publisher_dead_letter(dead_letters, post_event(n + 1), "kafka")
    listener_dead_letter(dead_letters, post_event(n + 2), offset=n + 2)
    return {name: documents(db, name)[-1] for name in COLLECTIONS}


def claims_of(db, collection, doc_id):
    return sorted(c["_id"] for c in db["dead_letter_claims"].find() if c["_id"].startswith(f"{collection}/{doc_id}/"))


def test_release_by_a_non_holder_changes_nothing_and_by_the_holder_gives_it_back(db, dead_letters):
    docs = one_in_each_collection(db, dead_letters)
    for name, doc in docs.items():
        assert dead_letters.claim(name, doc["_id"], "holder") is not None
    before = snapshot(db)
    for name, doc in docs.items():
        assert dead_letters.release(name, doc["_id"], "not the holder", error="ignored") is False
        assert dead_letters.release_batch(name, [doc], "not the holder", error="ignored") == 0
        assert dead_letters.complete(name, doc["_id"], "not the holder") is False
        assert dead_letters.complete_batch(name, [doc], "not the holder") == []
        assert dead_letters.fail(name, doc["_id"], "not the holder", "ignored") is False
        assert dead_letters.discard(name, doc["_id"], "not the holder") is False
    assert dead_letters.release_all("not the holder") == 0
    assert snapshot(db) == before

    for name, doc in docs.items():
        assert dead_letters.release(name, doc["_id"], "holder") is True
        [given_back] = documents(db, name, _id=doc["_id"])
        assert (given_back["status"], given_back["is_editing"], given_back["attempts"]) == ("pending", False, 1)
        assert given_back["error"] == doc["error"] and given_back["last_attempt_at"] == doc["last_attempt_at"]
        assert "claim_token" not in given_back and "lease_until" not in given_back
        assert claims_of(db, name, doc["_id"]) == [f"{name}/{doc['_id']}/1"]  # kept: a stale claimant collides
        assert dead_letters.release(name, doc["_id"], "holder") is False  # no longer held


def test_release_all_gives_back_what_the_run_holds_in_every_collection(db, dead_letters):
    mine = one_in_each_collection(db, dead_letters, 0)
    theirs = one_in_each_collection(db, dead_letters, 10)
    for name in COLLECTIONS:
        dead_letters.claim(name, mine[name]["_id"], "run")
        dead_letters.claim(name, theirs[name]["_id"], "other run")
    done = one_in_each_collection(db, dead_letters, 20)
    for name in COLLECTIONS:  # finished by the run: not held any more, not given back
        dead_letters.claim(name, done[name]["_id"], "run")
        assert dead_letters.complete(name, done[name]["_id"], "run")

    assert dead_letters.release_all("run") == 3

    for name in COLLECTIONS:
        [released] = documents(db, name, _id=mine[name]["_id"])
        assert (released["is_editing"], released["status"], released["attempts"]) == (False, "pending", 1)
        assert "claim_token" not in released and "lease_until" not in released
        assert dead_letters.claim_of(name, documents(db, name, _id=theirs[name]["_id"])[0])["token"] == "other run"
        assert documents(db, name, _id=done[name]["_id"])[0]["status"] == "completed"
    assert dead_letters.release_all("run") == 0


def test_release_batch_touches_only_its_own_collection(db, dead_letters):
    docs = one_in_each_collection(db, dead_letters)
    claimed = {name: dead_letters.claim(name, doc["_id"], "run") for name, doc in docs.items()}
    assert dead_letters.release_batch(FEIGN_DEAD_LETTERS, [], "run") == 0
    assert dead_letters.release_batch(FEIGN_DEAD_LETTERS, [claimed[FEIGN_DEAD_LETTERS]], "run", error="down") == 1
    assert {name: dead_letters.claim_of(name, documents(db, name)[0]) is not None for name in COLLECTIONS} == {
        FEIGN_DEAD_LETTERS: False,
        KAFKA_PUBLISHER_DEAD_LETTERS: True,
        KAFKA_LISTENER_DEAD_LETTERS: True,
    }
    released = documents(db, FEIGN_DEAD_LETTERS)[0]
    assert released["attempts"] == 2 and released["error"] == {"type": "Error", "message": "down"}


def test_complete_batch_does_not_report_a_dead_letter_whose_lost_claim_was_given_back(db, dead_letters):
    for n in range(3):
        publisher_dead_letter(dead_letters, post_event(n), "kafka")
    docs = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    slow = DeadLetterStore(db, lease_seconds=0)
    claimed = slow.claim_batch(KAFKA_PUBLISHER_DEAD_LETTERS, docs, "slow run")
    # The slow run's leases ran out: one dead letter was taken over and given back, one taken over and finished.
    assert dead_letters.claim(KAFKA_PUBLISHER_DEAD_LETTERS, docs[1]["_id"], "next")
    assert dead_letters.release(KAFKA_PUBLISHER_DEAD_LETTERS, docs[1]["_id"], "next")
    assert dead_letters.claim(KAFKA_PUBLISHER_DEAD_LETTERS, docs[2]["_id"], "next")
    assert dead_letters.complete(KAFKA_PUBLISHER_DEAD_LETTERS, docs[2]["_id"], "next")

    done = slow.complete_batch(KAFKA_PUBLISHER_DEAD_LETTERS, claimed, "slow run")

    # only what this run completed now: the given-back one is left pending, the other run's completion is its own
    assert done == [docs[0]["_id"]]
    first, given_back, finished = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    assert (first["status"], given_back["status"], finished["status"]) == ("completed", "pending", "completed")
    assert given_back["is_editing"] is False and given_back["is_completed"] is False
    assert claims_of(db, KAFKA_PUBLISHER_DEAD_LETTERS, first["_id"]) == [  # a claim outlives the completion
        f"{KAFKA_PUBLISHER_DEAD_LETTERS}/{first['_id']}/1"
    ]
    assert claims_of(db, KAFKA_PUBLISHER_DEAD_LETTERS, given_back["_id"]) == [
        f"{KAFKA_PUBLISHER_DEAD_LETTERS}/{given_back['_id']}/{g}" for g in (1, 2)
    ]


def test_complete_batch_of_nothing_completes_nothing(db, dead_letters):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    assert dead_letters.complete_batch(KAFKA_LISTENER_DEAD_LETTERS, [], "run") == []
    assert documents(db, KAFKA_LISTENER_DEAD_LETTERS)[0]["status"] == "pending"


def test_complete_fail_and_discard_finish_a_held_dead_letter_and_let_go_of_its_claim(db, dead_letters):
    docs = one_in_each_collection(db, dead_letters)
    finish = {
        FEIGN_DEAD_LETTERS: lambda name, doc: dead_letters.complete(name, doc["_id"], "run"),
        KAFKA_PUBLISHER_DEAD_LETTERS: lambda name, doc: dead_letters.fail(name, doc["_id"], "run", "bad"),
        KAFKA_LISTENER_DEAD_LETTERS: lambda name, doc: dead_letters.discard(name, doc["_id"], "run"),
    }
    for name, doc in docs.items():
        assert dead_letters.claim(name, doc["_id"], "run") is not None
        assert finish[name](name, doc) is True
        assert dead_letters.claim_of(name, documents(db, name, _id=doc["_id"])[0]) is None  # nobody holds it
    completed, failed, discarded = (documents(db, name)[0] for name in COLLECTIONS)
    assert (completed["status"], completed["is_completed"], completed["attempts"]) == ("completed", True, 1)
    assert completed["completed_at"] is not None
    assert (failed["status"], failed["is_completed"], failed["attempts"]) == ("failed", False, 2)
    assert failed["error"] == {"type": "Error", "message": "bad"}
    assert (discarded["status"], discarded["is_completed"], discarded["attempts"]) == ("discarded", False, 1)
    assert discarded["discarded_at"] is not None
    for doc in (completed, failed, discarded):
        assert doc["is_editing"] is False and "claim_token" not in doc and "lease_until" not in doc


def test_a_claim_is_a_document_of_its_own_with_the_lease(db, dead_letters):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (doc,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    claimed = DeadLetterStore(db, lease_seconds=120).claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "run")
    (stored,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert stored == doc  # not mirrored onto the dead letter: its one write is its completion (README)
    assert claimed["claim_token"] == "run" and claimed["lease_generation"] == 1
    [claim] = db["dead_letter_claims"].find()
    assert (claim["_id"], claim["token"]) == (f"{KAFKA_LISTENER_DEAD_LETTERS}/{doc['_id']}/1", "run")
    assert (as_utc(claim["lease_until"]) - as_utc(claim["created_at"])).total_seconds() == 120
    assert dead_letters.claim_of(KAFKA_LISTENER_DEAD_LETTERS, stored)["token"] == "run"
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, "no such id", "run") is None


def test_an_insert_refused_for_another_reason_than_a_duplicate_is_raised():
    class Refusing:
        def __init__(self, codes):
            self.codes = codes

        def insert_many(self, docs, ordered):
            assert ordered is False
            raise BulkWriteError({"writeErrors": [{"code": code, "index": n} for n, code in enumerate(self.codes)]})

    assert insert_unordered(Refusing([11000, 11000]), [{}, {}, {}]) == {0, 1}
    with pytest.raises(BulkWriteError):
        insert_unordered(Refusing([11000, 121]), [{}, {}])
    assert insert_unordered(Refusing([121]), []) == set()


CANONICAL = {
    "_id",
    "message_key",
    "category",
    "payload",
    "created_at",
    "updated_at",
    "topic",
    "origin",
    "attempts",
    "error",
    "last_attempt_at",
    "status",
    "is_completed",
    "is_editing",  # SPEC section 7
    "traceparent",
}  # the trace context of the request that caused it (dailyfeed.telemetry.tracing)


def test_every_step_keeps_the_canonical_shape_and_stamps_its_time(db, dead_letters, stepping_clock):
    docs = one_in_each_collection(db, dead_letters)
    steps = {  # collection -> (finish the claim, the fields it adds, whether it is a failed attempt)
        FEIGN_DEAD_LETTERS: (lambda name, doc: dead_letters.complete(name, doc["_id"], "run"), {"completed_at"}, False),
        KAFKA_PUBLISHER_DEAD_LETTERS: (
            lambda name, doc: dead_letters.fail(name, doc["_id"], "run", "bad"),
            set(),
            True,
        ),
        KAFKA_LISTENER_DEAD_LETTERS: (
            lambda name, doc: dead_letters.discard(name, doc["_id"], "run"),
            {"discarded_at"},
            False,
        ),
    }
    for name, doc in docs.items():
        assert set(doc) == CANONICAL
        dead_letters.claim(name, doc["_id"], "run")
        [claimed] = documents(db, name)
        assert set(claimed) == CANONICAL  # a claim lives in dead_letter_claims
        assert dead_letters.release(name, doc["_id"], "run", error="down")
        [released] = documents(db, name)
        assert set(released) == CANONICAL
        assert released["updated_at"] > claimed["updated_at"] and released["last_attempt_at"] == released["updated_at"]
        dead_letters.claim(name, doc["_id"], "run")
        [claimed] = documents(db, name)
        finish, added, attempt = steps[name]
        assert finish(name, doc)
        [finished] = documents(db, name)
        assert set(finished) == CANONICAL | added
        assert finished["updated_at"] > claimed["updated_at"]
        assert finished["is_completed"] is (name == FEIGN_DEAD_LETTERS)
        assert (finished["last_attempt_at"] == finished["updated_at"]) is attempt
        for field in added:
            assert finished[field] == finished["updated_at"]

    # the failed one re-queued: pending again, its error and attempts kept, stamped with when
    [failed] = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    assert dead_letters.claim(KAFKA_PUBLISHER_DEAD_LETTERS, failed["_id"], "run", statuses=(Status.FAILED,))
    assert dead_letters.requeue(KAFKA_PUBLISHER_DEAD_LETTERS, failed["_id"], "run") is True
    [requeued] = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    assert set(requeued) == CANONICAL | {"requeued_at"}
    assert (requeued["status"], requeued["is_completed"], requeued["is_editing"]) == ("pending", False, False)
    assert requeued["requeued_at"] == requeued["updated_at"] > failed["updated_at"]
    assert (requeued["error"], requeued["attempts"]) == (failed["error"], failed["attempts"])


def test_release_batch_and_release_all_stamp_the_time_they_gave_back(db, dead_letters, stepping_clock):
    docs = one_in_each_collection(db, dead_letters)
    claimed = {name: dead_letters.claim(name, doc["_id"], "run") for name, doc in docs.items()}
    held = {name: documents(db, name)[0] for name in COLLECTIONS}
    assert dead_letters.release_batch(FEIGN_DEAD_LETTERS, [claimed[FEIGN_DEAD_LETTERS]], "run") == 1
    assert dead_letters.release_all("run") == 2
    for name in COLLECTIONS:
        [released] = documents(db, name)
        assert released == held[name]  # giving back without an error ends the claim's lease, nothing more
        assert dead_letters.claim_of(name, released) is None
        [claim] = db["dead_letter_claims"].find({"collection": name})
        assert claim["released_at"] is not None and as_utc(claim["lease_until"]) <= as_utc(claim["released_at"])


def test_a_lease_that_ends_this_very_moment_has_ended(db, dead_letters, set_clock):
    """For the dead letter and for its claim alike: a claim abandoned at a lease end equal to now is taken over."""
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (doc,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert DeadLetterStore(db, lease_seconds=0).claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "crashed")
    # The crashed run's claim never reached the dead letter:
    db[KAFKA_LISTENER_DEAD_LETTERS].update_one(
        {"_id": doc["_id"]},
        {"$set": {"is_editing": False}, "$unset": {"lease_until": "", "claim_token": "", "lease_generation": ""}},
    )
    taken = dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "next")
    assert taken is not None and taken["lease_generation"] == 2


def test_a_run_whose_lease_ends_this_very_moment_cannot_finish_what_another_run_took_over_then(
    db, dead_letters, set_clock
):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (doc,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    slow = DeadLetterStore(db, lease_seconds=0)  # its lease ends the moment it is taken (the clock stands still)
    (claimed,) = slow.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, [doc], "slow run")
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "next")["lease_generation"] == 2

    assert slow.complete_batch(KAFKA_LISTENER_DEAD_LETTERS, [claimed], "slow run") == []
    assert slow.release_batch(KAFKA_LISTENER_DEAD_LETTERS, [claimed], "slow run", error="too late") == 0

    (stored,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert (stored["status"], stored["attempts"], holder(dead_letters, stored)) == ("pending", 1, "next")


def test_a_dead_letter_given_back_is_free_at_once_even_to_a_run_whose_clock_is_behind(db, dead_letters, set_clock):
    """Giving back ends a lease at the giver's time; a run on a host whose clock lags that must not see the dead
    letter as still held until its own clock gets there."""
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (doc,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "first") is not None
    set_clock.now += timedelta(seconds=1)
    assert dead_letters.release(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "first") is True

    set_clock.now -= timedelta(seconds=1)  # another run, its clock a second behind the first one's
    assert dead_letters.claim_of(KAFKA_LISTENER_DEAD_LETTERS, doc) is None
    assert dead_letters.count_claimable([KAFKA_LISTENER_DEAD_LETTERS], Selection()) == 1
    taken = dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "second")
    assert taken is not None and taken["lease_generation"] == 2
    assert holder(dead_letters, doc) == "second"


def test_complete_batch_stamps_the_time_of_completion(db, dead_letters, stepping_clock):
    for n in range(2):
        publisher_dead_letter(dead_letters, post_event(n), "feign")
    claimed = dead_letters.claim_batch(FEIGN_DEAD_LETTERS, documents(db, FEIGN_DEAD_LETTERS), "run")
    held = documents(db, FEIGN_DEAD_LETTERS)
    assert len(dead_letters.complete_batch(FEIGN_DEAD_LETTERS, claimed, "run")) == 2
    for before, after in zip(held, documents(db, FEIGN_DEAD_LETTERS)):
        assert after["completed_at"] == after["updated_at"] and after["updated_at"] > before["updated_at"]
        assert set(after) == CANONICAL | {"completed_at"}


def test_a_dead_letter_finished_just_before_the_batch_claim_is_not_claimed_whatever_its_place(db, dead_letters):
    for n in range(3):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    done, free, other = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, done["_id"], "finisher") is not None
    assert dead_letters.complete(KAFKA_LISTENER_DEAD_LETTERS, done["_id"], "finisher")

    claimed = dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, [done, free, other], "run")  # as read before

    assert [doc["_id"] for doc in claimed] == [free["_id"], other["_id"]]
    assert documents(db, KAFKA_LISTENER_DEAD_LETTERS)[0]["status"] == "completed"
    assert claims_of(db, KAFKA_LISTENER_DEAD_LETTERS, done["_id"]) == [f"{KAFKA_LISTENER_DEAD_LETTERS}/{done['_id']}/1"]
