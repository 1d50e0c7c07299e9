"""`dailyfeed deadletters retry | discard --matching | purge` (the console's actions from a shell), through the
CLI runner, on both store backends."""

from __future__ import annotations

from datetime import timedelta

from dailyfeed.events import utcnow
from dailyfeed.store import DEAD_LETTER_CLAIMS

from ..support.deadletters import (
    FEIGN_DEAD_LETTERS,
    KAFKA_LISTENER_DEAD_LETTERS,
    MEMBER_ACTIVITIES,
    documents,
    listener_dead_letter,
    post_event,
    publisher_dead_letter,
    snapshot,
)


def test_retry_restores_one_dead_letter_now_by_id_or_key(db, dead_letters, runner):
    for n in range(2):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    first, second = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    for id_or_key in (str(first["_id"]), second["message_key"]):
        result = runner.invoke(args=["deadletters", "retry", id_or_key])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[-1] == "restored 1, skipped 0, failed 0"
    assert {d["message_key"] for d in db[MEMBER_ACTIVITIES].find()} == {first["message_key"], second["message_key"]}
    again = runner.invoke(args=["deadletters", "retry", str(first["_id"])])
    assert again.exit_code == 1 and "is completed; only pending or failed" in again.output


def test_retry_of_a_failed_one_requeues_it_first_and_a_failure_is_kept(db, dead_letters, runner, activity_service_down):
    listener_dead_letter(dead_letters, None, offset=5, value=b"{not json", key=b"k")
    assert runner.invoke(args=["restore-listener"]).exit_code == 1  # marked failed: cannot be parsed
    [failed] = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert failed["status"] == "failed"
    result = runner.invoke(args=["deadletters", "retry", failed["message_key"]])
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith(f"re-queued {KAFKA_LISTENER_DEAD_LETTERS} {failed['_id']}")
    [after] = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert (after["status"], after["attempts"]) == ("failed", failed["attempts"] + 1)  # tried again, still no event

    activity_service_down.down()
    publisher_dead_letter(dead_letters, post_event(1))
    down = runner.invoke(args=["deadletters", "retry", post_event(1).message_key])
    assert down.exit_code == 1 and "restored 0, skipped 0, failed 1" in down.output
    [letter] = documents(db, FEIGN_DEAD_LETTERS)
    assert (letter["status"], letter["attempts"]) == ("pending", 2)


def test_retry_status_failed_requeues_the_failed_ones_that_match(db, dead_letters, runner):
    for offset in (1, 2):
        listener_dead_letter(dead_letters, None, offset=offset, value=b"{bad", key=b"k")
    runner.invoke(args=["restore-listener"])
    assert {d["status"] for d in documents(db, KAFKA_LISTENER_DEAD_LETTERS)} == {"failed"}
    narrow = runner.invoke(
        args=["deadletters", "retry", "--status", "failed", "--key", "unparsed:member-activity-20261122:0:1"]
    )
    assert narrow.exit_code == 0 and narrow.output.startswith("re-queued 1 failed dead letter to pending")
    rest = runner.invoke(args=["deadletters", "retry", "--status", "failed", "--collection", "listener"])
    assert rest.output.startswith("re-queued 1 failed dead letter to pending")
    assert [(d["status"], d["attempts"]) for d in documents(db, KAFKA_LISTENER_DEAD_LETTERS)] == [("pending", 2)] * 2
    both = runner.invoke(args=["deadletters", "retry", "x", "--status", "failed"])
    assert both.exit_code == 2


def test_discard_matching_uses_the_filters_confirms_the_count_and_refuses_no_filter(db, dead_letters, runner):
    for n in range(3):
        publisher_dead_letter(dead_letters, post_event(n))
    listener_dead_letter(dead_letters, post_event(9), offset=9)
    before = snapshot(db)
    refused = runner.invoke(args=["deadletters", "discard", "--matching", "--yes"])
    assert refused.exit_code == 2 and "add --all" in refused.output
    declined = runner.invoke(args=["deadletters", "discard", "--matching", "--collection", "feign"], input="n\n")
    assert declined.exit_code == 1 and "Discard 3 dead letters (collection feign_dead_letters)?" in declined.output
    assert snapshot(db) == before

    done = runner.invoke(
        args=["deadletters", "discard", "--matching", "--collection", "feign", "--since", "2026-11-22"], input="y\n"
    )
    assert done.exit_code == 0
    assert done.output.splitlines()[-1] == "discarded 3, skipped 0 (held by a restore right now)"
    assert {d["status"] for d in documents(db, FEIGN_DEAD_LETTERS)} == {"discarded"}
    assert documents(db, KAFKA_LISTENER_DEAD_LETTERS)[0]["status"] == "pending"
    everything = runner.invoke(args=["deadletters", "discard", "--matching", "--all", "--yes"])
    assert everything.output.strip() == "discarded 1, skipped 0 (held by a restore right now)"


def test_purge_deletes_only_completed_dead_letters_and_claims_older_than_the_days(
    db, dead_letters, runner, monkeypatch
):
    for n in range(2):
        listener_dead_letter(dead_letters, post_event(n), offset=n)
    listener_dead_letter(dead_letters, post_event(5), offset=5)
    long_ago = utcnow() - timedelta(days=40)
    monkeypatch.setattr("dailyfeed.deadletters.claims.utcnow", lambda: long_ago)
    old = dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, documents(db, KAFKA_LISTENER_DEAD_LETTERS)[0]["_id"], "t")
    dead_letters.complete(KAFKA_LISTENER_DEAD_LETTERS, old["_id"], "t")
    third = documents(db, KAFKA_LISTENER_DEAD_LETTERS)[2]
    dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, third["_id"], "u")
    dead_letters.release(KAFKA_LISTENER_DEAD_LETTERS, third["_id"], "u")  # a released claim, 40 days old
    monkeypatch.undo()
    assert runner.invoke(args=["deadletters", "retry", post_event(1).message_key]).exit_code == 0  # completed now

    dry = runner.invoke(args=["deadletters", "purge", "--completed-older-than", "30", "--dry-run"])
    # the claims of the completed one and of the released one: a claim is never deleted when its dead letter is
    # finished (deadletters/claims.py), only its lease ends; purge is what removes old ones
    assert dry.output.startswith("would delete 1 completed dead letter and 2 claims older than 30 days")
    done = runner.invoke(args=["deadletters", "purge", "--completed-older-than", "30"])
    assert done.exit_code == 0 and done.output.startswith("deleted 1 completed dead letter and 2 claims")
    assert [(d["message_key"], d["status"]) for d in documents(db, KAFKA_LISTENER_DEAD_LETTERS)] == [
        (post_event(1).message_key, "completed"),
        (post_event(5).message_key, "pending"),
    ]
    retried = documents(db, KAFKA_LISTENER_DEAD_LETTERS)[0]["_id"]  # its claim (taken by retry just now) stays
    assert [claim["dead_letter"] for claim in db[DEAD_LETTER_CLAIMS].find()] == [retried]
    assert runner.invoke(args=["deadletters", "purge", "--completed-older-than", "0"]).exit_code == 2
