"""`dailyfeed deadletters list | show | discard | stats`, through the CLI runner, on both store backends."""

from __future__ import annotations

import json

from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.extension import get_container

from ..support.deadletters import (
    FEIGN_DEAD_LETTERS,
    KAFKA_LISTENER_DEAD_LETTERS,
    KAFKA_PUBLISHER_DEAD_LETTERS,
    documents,
    listener_dead_letter,
    post_event,
    publisher_dead_letter,
)


def test_list_shows_dead_letters_oldest_first_with_filters_and_a_cap(db, dead_letters, runner):
    for n in range(3):
        publisher_dead_letter(dead_letters, post_event(n))
    like = ActivityEvent.new(ActivityType.LIKE_POST, 9, post_id=5, at=post_event(0).created_at)
    listener_dead_letter(dead_letters, like, offset=1)

    everything = runner.invoke(args=["deadletters", "list"])
    assert everything.exit_code == 0, everything.output
    rows = everything.output.splitlines()[1:]
    assert [row.split()[0] for row in rows] == [
        str(d["_id"]) for d in documents(db, FEIGN_DEAD_LETTERS) + documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    ]
    assert post_event(0).message_key in rows[0] and "activity service unreachable" in rows[0]

    likes = runner.invoke(args=["deadletters", "list", "--category", "post_like"])
    assert likes.output.splitlines()[1:] == [rows[3]]
    listener = runner.invoke(args=["deadletters", "list", "--collection", "listener"])
    assert listener.output.splitlines()[1:] == [rows[3]]
    capped = runner.invoke(args=["deadletters", "list", "--limit", "2"])
    assert capped.output.splitlines()[1:] == rows[:2] + ["showing 2 of 4; use --limit to see more"]
    none = runner.invoke(args=["deadletters", "list", "--status", "discarded"])
    assert (none.exit_code, none.output.strip()) == (0, "no dead letters match")


def test_show_finds_a_dead_letter_by_id_or_by_key(db, dead_letters, runner):
    publisher_dead_letter(dead_letters, post_event(1))
    (doc,) = documents(db, FEIGN_DEAD_LETTERS)

    for id_or_key in (str(doc["_id"]), doc["message_key"]):
        result = runner.invoke(args=["deadletters", "show", id_or_key])
        assert result.exit_code == 0, result.output
        header, body = result.output.split("\n", 1)
        assert header == f"# {FEIGN_DEAD_LETTERS}"
        shown = json.loads(body)
        assert (shown["_id"], shown["message_key"], shown["status"]) == (str(doc["_id"]), doc["message_key"], "pending")
        assert json.loads(shown["payload"]) == post_event(1).to_json()


def test_show_and_discard_say_clearly_when_nothing_matches(runner, db):
    for args in (
        ["deadletters", "show", "member_activity:kafka_event:nope"],
        ["deadletters", "discard", "--yes", "6b033eca45a4029c7d4110fb"],
    ):
        result = runner.invoke(args=args)
        assert result.exit_code == 1
        assert f"no dead letter has the id or message key '{args[-1]}'" in result.output


def test_discard_asks_first_and_a_discarded_dead_letter_is_never_restored(db, dead_letters, runner):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (doc,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)

    declined = runner.invoke(args=["deadletters", "discard", doc["message_key"]], input="n\n")
    assert declined.exit_code == 1 and "Discard" in declined.output and "Aborted" in declined.output
    assert documents(db, KAFKA_LISTENER_DEAD_LETTERS)[0]["status"] == "pending"

    accepted = runner.invoke(args=["deadletters", "discard", doc["message_key"]], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert f"discarded {KAFKA_LISTENER_DEAD_LETTERS} {doc['_id']}" in accepted.output
    stored = documents(db, KAFKA_LISTENER_DEAD_LETTERS)[0]
    assert (stored["status"], stored["is_completed"], stored["is_editing"]) == ("discarded", False, False)

    restore = runner.invoke(args=["restore-listener"])
    assert restore.output.splitlines()[-1] == "restored 0, skipped 0, failed 0"
    again = runner.invoke(args=["deadletters", "discard", "--yes", str(doc["_id"])])
    assert again.exit_code == 1 and "is discarded; only pending or failed dead letters can be discarded" in again.output


def test_discard_of_a_key_in_two_collections_needs_the_id_or_the_collection(db, dead_letters, runner):
    publisher_dead_letter(dead_letters, post_event(1))
    assert runner.invoke(args=["restore-publisher", "--mode", "handoff"]).exit_code == 0
    key = post_event(1).message_key

    ambiguous = runner.invoke(args=["deadletters", "discard", "--yes", key])
    assert ambiguous.exit_code == 1 and "matches 2 dead letters" in ambiguous.output

    completed = runner.invoke(args=["deadletters", "discard", "--yes", "--collection", "feign", key])
    assert completed.exit_code == 1 and "is completed" in completed.output

    chosen = runner.invoke(args=["deadletters", "discard", "--yes", "--collection", "listener", key])
    assert chosen.exit_code == 0, chosen.output
    assert documents(db, KAFKA_LISTENER_DEAD_LETTERS)[0]["status"] == "discarded"
    assert documents(db, FEIGN_DEAD_LETTERS)[0]["status"] == "completed"


def test_discard_refuses_a_dead_letter_a_restore_is_working_on(db, dead_letters, runner):
    listener_dead_letter(dead_letters, post_event(1), offset=1)
    (doc,) = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "a running restore") is not None

    result = runner.invoke(args=["deadletters", "discard", "--yes", str(doc["_id"])])

    assert result.exit_code == 1 and "is being restored right now" in result.output
    assert documents(db, KAFKA_LISTENER_DEAD_LETTERS)[0]["status"] == "pending"


def test_stats_counts_by_collection_status_and_category_with_the_oldest_pending(db, dead_letters, runner):
    for n in range(3):
        publisher_dead_letter(dead_letters, post_event(n), kind="kafka")
    publisher_dead_letter(
        dead_letters, ActivityEvent.new(ActivityType.LIKE_POST, 9, post_id=5, at=post_event(9).created_at), kind="kafka"
    )
    listener_dead_letter(dead_letters, None, value=b"garbage", offset=3)
    assert runner.invoke(args=["restore-listener"]).exit_code == 1  # the garbage one becomes failed

    result = runner.invoke(args=["deadletters", "stats"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{KAFKA_PUBLISHER_DEAD_LETTERS}: 4 dead letters; oldest pending ")
    assert lines[1].split() == ["pending", "4", "POST", "3,", "POST_LIKE", "1"]
    assert lines[2] == f"{FEIGN_DEAD_LETTERS}: 0 dead letters"
    assert lines[3] == f"{KAFKA_LISTENER_DEAD_LETTERS}: 1 dead letter"
    assert lines[4].split() == ["failed", "1", "unparsed", "1"]


def test_list_and_stats_of_an_empty_embedded_store_say_a_cli_cannot_see_the_apps_store(db, dead_letters, runner):
    """Issue 19: as restore-publisher does, `list` and `stats` say that a separate process has its own embedded
    store, instead of suggesting that there are no dead letters."""
    embedded = get_container(runner.app).settings["mongo.uri"].startswith("mongomock://")
    note = "cannot see another process's dead letters"
    for args in (["deadletters", "list"], ["deadletters", "stats"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0
        assert (note in result.stderr) is embedded, result.stderr
    publisher_dead_letter(dead_letters, post_event(1))
    for args in (["deadletters", "list", "--status", "discarded"], ["deadletters", "stats"]):
        assert note not in runner.invoke(args=args).stderr  # the store has dead letters: it is the app's
