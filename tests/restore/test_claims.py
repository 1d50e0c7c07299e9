"""Claiming dead letters (SPEC section 8: "safe to run twice at once"), on both store backends. Whole restores
racing each other (threads, and two `dailyfeed restore-listener` processes) are in
tests/integration/test_restore_concurrency.py: they need a real server (mongomock is not thread-safe)."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timezone

from dailyfeed.deadletters import DeadLetterStore, Status, claims, new_claim_token

from .conftest import KAFKA_LISTENER_DEAD_LETTERS, documents, listener_dead_letter, post_event


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
        return [doc_id for doc_id in ids
                if dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc_id, token) is not None]

    assert_each_claimed_once(db, dead_letters, race(claim_each), 20)


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


def test_a_dead_letter_given_back_is_claimed_again_at_the_next_generation_and_a_stale_claimant_loses(db,
                                                                                                     dead_letters):
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
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, bad["_id"], "discarder",
                              statuses=(Status.PENDING, Status.FAILED)) is not None


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
        return [doc["_id"] for at in range(0, 20, 5)
                for doc in dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, candidates[at:at + 5], token)]

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
    assert [holder(dead_letters, stored[doc["_id"]]) for doc in (free, held, crashed, done)] == \
        ["run", "other run", "run", None]
    assert stored[done["_id"]]["status"] == "completed" and "claim_token" not in stored[done["_id"]]
    assert [c["token"] for c in db["dead_letter_claims"].find({"dead_letter": done["_id"]})] == ["finisher"]


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
        [f"{KAFKA_LISTENER_DEAD_LETTERS}/{doc['_id']}/1" for doc in docs] + [
            f"{KAFKA_LISTENER_DEAD_LETTERS}/{third['_id']}/2"])


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
        ("pending", False, 2), ("pending", False, 2), ("pending", False, 1), ("pending", False, 1)]
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
    assert dead_letters.claim_of(KAFKA_LISTENER_DEAD_LETTERS, held)["token"] == "holder" == \
        dead_letters.claim_of(KAFKA_LISTENER_DEAD_LETTERS, claimed)["token"]
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
