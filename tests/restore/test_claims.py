"""Claiming dead letters (SPEC section 8: "safe to run twice at once"), on both store backends. Whole restores
racing each other (threads, and two `dailyfeed restore-listener` processes) are in
tests/integration/test_restore_concurrency.py: they need a real server (mongomock is not thread-safe)."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from pymongo.errors import BulkWriteError

from dailyfeed.restore import deadletters
from dailyfeed.restore.deadletters import DeadLetterStore, Status, as_utc, new_claim_token

from .conftest import (
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


def assert_each_claimed_once(db, wins, count):
    assert sorted(Counter(doc_id for _, doc_id in wins).values()) == [1] * count
    holders = {doc_id: token for token, doc_id in wins}
    for doc in documents(db, KAFKA_LISTENER_DEAD_LETTERS):
        assert doc["is_editing"] is True and doc["claim_token"] == holders[doc["_id"]]


def test_racing_claimants_each_get_a_dead_letter_once(db, dead_letters):
    for n in range(20):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    ids = [doc["_id"] for doc in documents(db, KAFKA_LISTENER_DEAD_LETTERS)]

    def claim_each(token):
        return [doc_id for doc_id in ids
                if dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc_id, token) is not None]

    assert_each_claimed_once(db, race(claim_each), 20)


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


def test_a_claim_abandoned_before_it_reached_the_dead_letter_is_taken_over_after_its_lease(db, dead_letters):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (doc,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert DeadLetterStore(db, lease_seconds=0).claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "crashed")
    # As if the run died between taking the claim and writing it onto the dead letter:
    db[KAFKA_LISTENER_DEAD_LETTERS].update_one({"_id": doc["_id"]}, {
        "$set": {"is_editing": False}, "$unset": {"lease_until": "", "claim_token": "", "lease_generation": ""}})
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "next")["claim_token"] == "next"


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
    first, second, third = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, first["_id"], "run")
    dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, second["_id"], "run")
    dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, third["_id"], "other run")
    assert dead_letters.release_all("run") == 2
    first, second, third = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert (first["is_editing"], second["is_editing"], third["is_editing"]) == (False, False, True)
    assert first["attempts"] == second["attempts"] == 1


# --- a batch at a time (what the restore jobs do) -------------------------------------------------------------------

def test_racing_batch_claimants_each_get_a_dead_letter_once(db, dead_letters):
    for n in range(20):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    candidates = documents(db, KAFKA_LISTENER_DEAD_LETTERS)

    def claim_in_batches(token):
        return [doc["_id"] for at in range(0, 20, 5)
                for doc in dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, candidates[at:at + 5], token)]

    assert_each_claimed_once(db, race(claim_in_batches), 20)


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
    stored = {doc["_id"]: doc for doc in documents(db, KAFKA_LISTENER_DEAD_LETTERS)}
    for doc in claimed:  # as stored, with the claim on it
        assert {k: stored[doc["_id"]][k] for k in ("claim_token", "lease_generation", "is_editing", "status")} == \
            {k: doc[k] for k in ("claim_token", "lease_generation", "is_editing", "status")}
    assert (stored[free["_id"]]["lease_generation"], stored[crashed["_id"]]["lease_generation"]) == (1, 2)
    assert stored[held["_id"]]["claim_token"] == "other run"
    assert stored[done["_id"]]["status"] == "completed" and "claim_token" not in stored[done["_id"]]
    assert not [c for c in db["dead_letter_claims"].find() if c["_id"].startswith(
        f"{KAFKA_LISTENER_DEAD_LETTERS}/{done['_id']}/")]  # its claim, taken a moment too late, let go again


def test_complete_batch_marks_only_what_the_run_still_holds_and_lets_go_of_the_claims(db, dead_letters):
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
    assert (third["status"], third["claim_token"]) == ("pending", "next")
    # The finished ones' claims are gone; the slow run's lost claim stays, so that a stale claimant collides.
    assert sorted(c["_id"] for c in db["dead_letter_claims"].find()) == [
        f"{KAFKA_LISTENER_DEAD_LETTERS}/{third['_id']}/{generation}" for generation in (1, 2)]


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
    assert len(dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, stored, "again")) == 4


def test_batches_larger_than_one_update_are_marked_and_finished_in_several(db, dead_letters, monkeypatch):
    monkeypatch.setattr(deadletters, "MAX_UPDATE", 2)
    for n in range(5):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    docs = documents(db, KAFKA_LISTENER_DEAD_LETTERS)

    claimed = dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, docs, "run")
    assert [doc["_id"] for doc in claimed] == [doc["_id"] for doc in docs]
    assert {doc["claim_token"] for doc in documents(db, KAFKA_LISTENER_DEAD_LETTERS)} == {"run"}
    assert dead_letters.release_batch(KAFKA_LISTENER_DEAD_LETTERS, claimed[:3], "run") == 3
    assert dead_letters.complete_batch(KAFKA_LISTENER_DEAD_LETTERS, claimed[3:], "run") == [d["_id"] for d in docs[3:]]
    assert [d["status"] for d in documents(db, KAFKA_LISTENER_DEAD_LETTERS)] == ["pending"] * 3 + ["completed"] * 2


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
        assert documents(db, name, _id=theirs[name]["_id"])[0]["claim_token"] == "other run"
        assert documents(db, name, _id=done[name]["_id"])[0]["status"] == "completed"
    assert dead_letters.release_all("run") == 0


def test_release_batch_touches_only_its_own_collection(db, dead_letters):
    docs = one_in_each_collection(db, dead_letters)
    for name, doc in docs.items():
        dead_letters.claim(name, doc["_id"], "run")
    assert dead_letters.release_batch(FEIGN_DEAD_LETTERS, [], "run") == 0
    assert dead_letters.release_batch(FEIGN_DEAD_LETTERS, [docs[FEIGN_DEAD_LETTERS]], "run", error="down") == 1
    assert {name: documents(db, name)[0]["is_editing"] for name in COLLECTIONS} == {
        FEIGN_DEAD_LETTERS: False, KAFKA_PUBLISHER_DEAD_LETTERS: True, KAFKA_LISTENER_DEAD_LETTERS: True}
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

    assert done == [docs[0]["_id"], docs[2]["_id"]]  # the given-back one is not completed, so not reported
    first, given_back, finished = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    assert (first["status"], given_back["status"], finished["status"]) == ("completed", "pending", "completed")
    assert given_back["is_editing"] is False and given_back["is_completed"] is False
    assert claims_of(db, KAFKA_PUBLISHER_DEAD_LETTERS, first["_id"]) == []
    assert claims_of(db, KAFKA_PUBLISHER_DEAD_LETTERS, given_back["_id"]) == [
        f"{KAFKA_PUBLISHER_DEAD_LETTERS}/{given_back['_id']}/{g}" for g in (1, 2)]


def test_complete_batch_of_nothing_completes_nothing(db, dead_letters):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    assert dead_letters.complete_batch(KAFKA_LISTENER_DEAD_LETTERS, [], "run") == []
    assert documents(db, KAFKA_LISTENER_DEAD_LETTERS)[0]["status"] == "pending"


def test_complete_fail_and_discard_finish_a_held_dead_letter_and_let_go_of_its_claim(db, dead_letters):
    docs = one_in_each_collection(db, dead_letters)
    finish = {FEIGN_DEAD_LETTERS: lambda name, doc: dead_letters.complete(name, doc["_id"], "run"),
              KAFKA_PUBLISHER_DEAD_LETTERS: lambda name, doc: dead_letters.fail(name, doc["_id"], "run", "bad"),
              KAFKA_LISTENER_DEAD_LETTERS: lambda name, doc: dead_letters.discard(name, doc["_id"], "run")}
    for name, doc in docs.items():
        assert dead_letters.claim(name, doc["_id"], "run") is not None
        assert finish[name](name, doc) is True
        assert claims_of(db, name, doc["_id"]) == []
    completed, failed, discarded = (documents(db, name)[0] for name in COLLECTIONS)
    assert (completed["status"], completed["is_completed"], completed["attempts"]) == ("completed", True, 1)
    assert completed["completed_at"] is not None
    assert (failed["status"], failed["is_completed"], failed["attempts"]) == ("failed", False, 2)
    assert failed["error"] == {"type": "Error", "message": "bad"}
    assert (discarded["status"], discarded["is_completed"], discarded["attempts"]) == ("discarded", False, 1)
    assert discarded["discarded_at"] is not None
    for doc in (completed, failed, discarded):
        assert doc["is_editing"] is False and "claim_token" not in doc and "lease_until" not in doc


def test_a_claim_marks_the_dead_letter_with_its_lease(db, dead_letters):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (doc,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    claimed = DeadLetterStore(db, lease_seconds=120).claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "run")
    (stored,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert (stored["is_editing"], stored["claim_token"], stored["lease_generation"]) == (True, "run", 1)
    lease = as_utc(stored["lease_until"]) - as_utc(stored["updated_at"])
    assert lease.total_seconds() == 120
    assert claimed["claim_token"] == "run" and claimed["lease_generation"] == 1
    [claim] = db["dead_letter_claims"].find()
    assert set(claim) == {"_id", "token", "lease_until", "created_at"}
    assert (claim["_id"], claim["token"]) == (f"{KAFKA_LISTENER_DEAD_LETTERS}/{doc['_id']}/1", "run")
    assert as_utc(claim["lease_until"]) == as_utc(stored["lease_until"])
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, "no such id", "run") is None


def test_a_held_dead_letter_without_a_lease_end_can_be_claimed():
    now = datetime(2026, 11, 22, tzinfo=timezone.utc)
    pending = {"status": "pending", "is_editing": True}
    assert deadletters._claimable({**pending, "lease_until": None}, now, (Status.PENDING,))
    assert deadletters._claimable({**pending, "lease_until": now}, now, (Status.PENDING,))
    assert not deadletters._claimable({**pending, "lease_until": now + timedelta(seconds=1)}, now, (Status.PENDING,))
    assert deadletters._claimable({"status": "pending", "is_editing": False}, now, (Status.PENDING,))
    assert not deadletters._claimable({"status": "failed"}, now, (Status.PENDING,))
    assert not deadletters._claimable(None, now, (Status.PENDING,))


def test_an_insert_refused_for_another_reason_than_a_duplicate_is_raised():
    class Refusing:
        def __init__(self, codes):
            self.codes = codes

        def insert_many(self, docs, ordered):
            assert ordered is False
            raise BulkWriteError({"writeErrors": [{"code": code, "index": n} for n, code in enumerate(self.codes)]})

    assert deadletters._insert_unordered(Refusing([11000, 11000]), [{}, {}, {}]) == {0, 1}
    with pytest.raises(BulkWriteError):
        deadletters._insert_unordered(Refusing([11000, 121]), [{}, {}])
    assert deadletters._insert_unordered(Refusing([121]), []) == set()


CANONICAL = {"_id", "message_key", "category", "payload", "created_at", "updated_at", "topic", "origin", "attempts",
             "error", "last_attempt_at", "status", "is_completed", "is_editing"}  # SPEC section 7


def test_every_step_keeps_the_canonical_shape_and_stamps_its_time(db, dead_letters, stepping_clock):
    docs = one_in_each_collection(db, dead_letters)
    steps = {  # collection -> (finish the claim, the fields it adds, whether it is a failed attempt)
        FEIGN_DEAD_LETTERS: (lambda name, doc: dead_letters.complete(name, doc["_id"], "run"), {"completed_at"},
                             False),
        KAFKA_PUBLISHER_DEAD_LETTERS: (lambda name, doc: dead_letters.fail(name, doc["_id"], "run", "bad"), set(),
                                       True),
        KAFKA_LISTENER_DEAD_LETTERS: (lambda name, doc: dead_letters.discard(name, doc["_id"], "run"),
                                      {"discarded_at"}, False),
    }
    for name, doc in docs.items():
        assert set(doc) == CANONICAL
        dead_letters.claim(name, doc["_id"], "run")
        [claimed] = documents(db, name)
        assert set(claimed) == CANONICAL | {"claim_token", "lease_until", "lease_generation"}
        assert dead_letters.release(name, doc["_id"], "run", error="down")
        [released] = documents(db, name)
        assert set(released) == CANONICAL | {"lease_generation"}
        assert released["updated_at"] > claimed["updated_at"] and released["last_attempt_at"] == released["updated_at"]
        dead_letters.claim(name, doc["_id"], "run")
        [claimed] = documents(db, name)
        finish, added, attempt = steps[name]
        assert finish(name, doc)
        [finished] = documents(db, name)
        assert set(finished) == CANONICAL | {"lease_generation"} | added
        assert finished["updated_at"] > claimed["updated_at"]
        assert finished["is_completed"] is (name == FEIGN_DEAD_LETTERS)
        assert (finished["last_attempt_at"] == finished["updated_at"]) is attempt
        for field in added:
            assert finished[field] == finished["updated_at"]


def test_release_batch_and_release_all_stamp_the_time_they_gave_back(db, dead_letters, stepping_clock):
    docs = one_in_each_collection(db, dead_letters)
    for name, doc in docs.items():
        dead_letters.claim(name, doc["_id"], "run")
    held = {name: documents(db, name)[0] for name in COLLECTIONS}
    assert dead_letters.release_batch(FEIGN_DEAD_LETTERS, [held[FEIGN_DEAD_LETTERS]], "run") == 1
    assert dead_letters.release_all("run") == 2
    for name in COLLECTIONS:
        [released] = documents(db, name)
        assert released["updated_at"] > held[name]["updated_at"]
        assert released["last_attempt_at"] == held[name]["last_attempt_at"]  # giving back is not an attempt
        assert set(released) == CANONICAL | {"lease_generation"}


def test_a_lease_that_ends_this_very_moment_has_ended(db, dead_letters, monkeypatch):
    """For the dead letter and for its claim alike: a claim abandoned at a lease end equal to now is taken over."""
    moment = datetime(2026, 11, 22, 10, 0, 0, tzinfo=timezone.utc)  # whole milliseconds: stored exactly
    monkeypatch.setattr(deadletters, "utcnow", lambda: moment)
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (doc,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert DeadLetterStore(db, lease_seconds=0).claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "crashed")
    # The crashed run's claim never reached the dead letter:
    db[KAFKA_LISTENER_DEAD_LETTERS].update_one({"_id": doc["_id"]}, {
        "$set": {"is_editing": False}, "$unset": {"lease_until": "", "claim_token": "", "lease_generation": ""}})
    taken = dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "next")
    assert taken is not None and taken["lease_generation"] == 2


def test_complete_batch_stamps_the_time_of_completion(db, dead_letters, stepping_clock):
    for n in range(2):
        publisher_dead_letter(dead_letters, post_event(n), "feign")
    claimed = dead_letters.claim_batch(FEIGN_DEAD_LETTERS, documents(db, FEIGN_DEAD_LETTERS), "run")
    held = documents(db, FEIGN_DEAD_LETTERS)
    assert len(dead_letters.complete_batch(FEIGN_DEAD_LETTERS, claimed, "run")) == 2
    for before, after in zip(held, documents(db, FEIGN_DEAD_LETTERS)):
        assert after["completed_at"] == after["updated_at"] and after["updated_at"] > before["updated_at"]
        assert set(after) == CANONICAL | {"lease_generation", "completed_at"}


def test_a_dead_letter_finished_just_before_the_batch_claim_is_not_claimed_whatever_its_place(db, dead_letters):
    for n in range(3):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    done, free, other = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, done["_id"], "finisher") is not None
    assert dead_letters.complete(KAFKA_LISTENER_DEAD_LETTERS, done["_id"], "finisher")

    claimed = dead_letters.claim_batch(KAFKA_LISTENER_DEAD_LETTERS, [done, free, other], "run")  # as read before

    assert [doc["_id"] for doc in claimed] == [free["_id"], other["_id"]]
    assert documents(db, KAFKA_LISTENER_DEAD_LETTERS)[0]["status"] == "completed"
    assert claims_of(db, KAFKA_LISTENER_DEAD_LETTERS, done["_id"]) == []
