"""What a dead letter holds once a failure is kept (deadletters/store.py), field by field, because the console, the
CLI and the restore jobs read every one of them: the event to send again, why it failed, where it came from, how
often, its trace context, and that it waits (pending) for a restore. Then a repeat of the same failure, a raw
record the listener could not parse, a store that fails too, and the hand-off of a publisher dead letter to the
listener's collection."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from dailyfeed.deadletters import store as store_module
from dailyfeed.deadletters.model import MAX_RAW_CHARS, DeadLetterStoreError, Status
from dailyfeed.deadletters.store import DeadLetterStore
from dailyfeed.store import FEIGN_DEAD_LETTERS, KAFKA_LISTENER_DEAD_LETTERS, KAFKA_PUBLISHER_DEAD_LETTERS
from dailyfeed.transport.base import TransportUnavailable

from ..support.deadletters import T0, post_event

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TOPIC = "member-activity-2026-11-22"


@pytest.fixture
def clock(monkeypatch):
    """The dead letters' clock, moved by hand."""
    now = {"at": T0}
    monkeypatch.setattr(store_module, "utcnow", lambda: now["at"])
    return now


def kept(db, collection: str) -> list[dict]:
    """The documents of a collection, times as UTC whether the store hands them back naive or aware."""
    return [
        {k: v.replace(tzinfo=timezone.utc) if isinstance(v, datetime) else v for k, v in doc.items()}
        for doc in db[collection].find({}, {"_id": 0})
    ]


def test_a_publisher_failure_is_kept_whole_and_pending(dead_letters, db, clock):
    event = post_event(1).with_traceparent(TRACEPARENT)
    dead_letters.record_publisher_failure("kafka", event, TransportUnavailable("broker down"), topic=TOPIC)
    assert kept(db, KAFKA_PUBLISHER_DEAD_LETTERS) == [
        {
            "message_key": event.message_key,
            "category": "POST",
            "payload": json.dumps(event.to_json()),
            "created_at": T0,
            "topic": TOPIC,
            "origin": None,
            "attempts": 1,
            "traceparent": TRACEPARENT,
            "error": {"type": "TransportUnavailable", "message": "broker down"},
            "last_attempt_at": T0,
            "updated_at": T0,
            "status": "pending",
            "is_completed": False,
            "is_editing": False,
        }
    ]
    assert kept(db, FEIGN_DEAD_LETTERS) == [] and kept(db, KAFKA_LISTENER_DEAD_LETTERS) == []
    dead_letters.record_publisher_failure("feign", post_event(2), TransportUnavailable("activity service down"))
    [feign] = kept(db, FEIGN_DEAD_LETTERS)
    assert feign["message_key"] == post_event(2).message_key and feign["topic"] is None
    assert feign["traceparent"] is None and feign["error"]["message"] == "activity service down"


def test_the_same_failure_again_counts_an_attempt_on_the_one_dead_letter_and_makes_it_pending(dead_letters, db, clock):
    event = post_event(1)
    dead_letters.record_publisher_failure("kafka", event, TransportUnavailable("broker down"), topic=TOPIC)
    # a restore took it and failed it meanwhile
    db[KAFKA_PUBLISHER_DEAD_LETTERS].update_one(
        {}, {"$set": {"status": Status.FAILED.value, "is_completed": True, "is_editing": True}}
    )
    clock["at"] = T0 + timedelta(minutes=5)
    dead_letters.record_publisher_failure("kafka", event, TimeoutError("no acknowledgement"), topic=TOPIC)
    [doc] = kept(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    assert doc["attempts"] == 2 and doc["created_at"] == T0
    assert doc["last_attempt_at"] == doc["updated_at"] == T0 + timedelta(minutes=5)
    assert doc["error"] == {"type": "TimeoutError", "message": "no acknowledgement"}
    assert (doc["status"], doc["is_completed"], doc["is_editing"]) == ("pending", False, False)
    dead_letters.record_publisher_failure("kafka", event, TransportUnavailable("broker down"), topic=TOPIC)
    assert kept(db, KAFKA_PUBLISHER_DEAD_LETTERS)[0]["attempts"] == 3


def test_a_record_the_listener_could_not_parse_is_keyed_by_where_it_came_from(dead_letters, db, clock):
    origin = {"topic": TOPIC, "partition": 3, "offset": 42, "key": b"k-1", "value": b"x" * (MAX_RAW_CHARS + 10)}
    for _ in range(2):  # redelivered: the same dead letter
        dead_letters.record_listener_failure(origin=origin, error=ValueError("not JSON"), traceparent=TRACEPARENT)
    [doc] = kept(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert doc["message_key"] == f"unparsed:{TOPIC}:3:42" and doc["attempts"] == 2
    assert doc["category"] is None and doc["payload"] is None and doc["topic"] == TOPIC
    assert doc["origin"] == {
        "topic": TOPIC,
        "partition": 3,
        "offset": 42,
        "key": "k-1",
        "value": "x" * MAX_RAW_CHARS + "…(truncated)",
    }
    assert doc["traceparent"] == TRACEPARENT and doc["error"] == {"type": "ValueError", "message": "not JSON"}


def test_a_parsed_event_the_listener_could_not_store_keeps_its_own_trace_context_first(dead_letters, db, clock):
    origin = {"topic": TOPIC, "partition": 0, "offset": 7, "key": None, "value": "{}"}
    traced, untraced = post_event(1).with_traceparent(TRACEPARENT), post_event(2)
    dead_letters.record_listener_failure(
        origin=origin, error=OSError("store down"), event=traced, traceparent=OTHER_TRACEPARENT
    )
    dead_letters.record_listener_failure(
        origin=origin, error=OSError("store down"), event=untraced, traceparent=OTHER_TRACEPARENT
    )
    by_key = {doc["message_key"]: doc for doc in kept(db, KAFKA_LISTENER_DEAD_LETTERS)}
    assert by_key[traced.message_key]["traceparent"] == TRACEPARENT
    assert by_key[untraced.message_key]["traceparent"] == OTHER_TRACEPARENT
    assert by_key[traced.message_key]["payload"] == json.dumps(traced.to_json())
    assert by_key[traced.message_key]["category"] == "POST" and by_key[traced.message_key]["origin"] == origin


class Unreachable:
    """A database whose every write times out."""

    def __getitem__(self, name):
        return self

    def insert_one(self, document):
        raise ServerSelectionTimeoutError("no servers")

    update_one = insert_one


def test_a_store_that_fails_too_is_named_to_the_caller():
    with pytest.raises(DeadLetterStoreError) as failed:
        DeadLetterStore(Unreachable()).record_publisher_failure("feign", post_event(1), TransportUnavailable("down"))
    assert str(failed.value) == "could not store dead letter in feign_dead_letters: no servers"


def test_a_hand_off_copies_the_publisher_dead_letter_pending_once(dead_letters, db, clock):
    event = post_event(1).with_traceparent(TRACEPARENT)
    dead_letters.record_publisher_failure("feign", event, TransportUnavailable("down"), topic=TOPIC)
    source = db[FEIGN_DEAD_LETTERS].find_one()
    clock["at"] = T0 + timedelta(hours=1)
    assert dead_letters.hand_off(FEIGN_DEAD_LETTERS, source, event) is True
    assert kept(db, KAFKA_LISTENER_DEAD_LETTERS) == [
        {
            "message_key": event.message_key,
            "category": "POST",
            "payload": json.dumps(event.to_json()),
            "is_completed": False,
            "is_editing": False,
            "created_at": T0,
            "updated_at": T0 + timedelta(hours=1),
            "topic": TOPIC,
            "error": {"type": "TransportUnavailable", "message": "down"},
            "attempts": 0,
            "last_attempt_at": None,
            "origin": {"handoff_from": FEIGN_DEAD_LETTERS, "dead_letter_id": str(source["_id"])},
            "traceparent": TRACEPARENT,
            "status": "pending",
        }
    ]
    assert dead_letters.hand_off(FEIGN_DEAD_LETTERS, source, event) is False
    # a dead letter without its creation time is handed off as created now; the batch answers per item
    later = post_event(2)
    assert dead_letters.hand_off_batch(
        [(FEIGN_DEAD_LETTERS, source, event), (FEIGN_DEAD_LETTERS, {"_id": "x"}, later)]
    ) == [False, True]
    [handed] = [doc for doc in kept(db, KAFKA_LISTENER_DEAD_LETTERS) if doc["message_key"] == later.message_key]
    assert handed["created_at"] == T0 + timedelta(hours=1)
    assert db[KAFKA_LISTENER_DEAD_LETTERS].count_documents({}) == 2
